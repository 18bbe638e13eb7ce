/*
 * The error type of libparlae: a code from the exit-code table of the command-line
 * contract plus a one-line message and an optional hint saying what to do next.
 * Library functions fill a caller's struct pl_err and return its code; only cmd/ prints.
 */
#ifndef PL_ERR_H
#define PL_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum pl_code {
	PL_OK = 0,
	PL_ENO = 1,
	PL_EUSAGE = 2,
	PL_ECONFIG = 3,
	PL_ESECURITY = 4,
	PL_ENOTFOUND = 5,
	PL_EUPSTREAM = 6,
	PL_EDATABASE = 7,
	PL_ETIMEOUT = 8,
	PL_EPARTIAL = 9,
	PL_ECONFLICT = 10,
	PL_EBADINPUT = 65,
	PL_EINTERNAL = 70,
	PL_EIO = 74,
	PL_EINTERRUPTED = 130,
};

struct pl_err {
	int code;
	char msg[512];
	char hint[256];
};

#define PL_ERR_INIT                                                                                \
	{                                                                                          \
		0, "", ""                                                                          \
	}

struct pl_err_info {
	int code;
	const char *name;    /* the --json error code: "usage", "config", ... */
	const char *meaning; /* one line, as in parlae(1) */
};

/*
 * Set code and message; returns code so that `return pl_err_set(...)` reads naturally. The
 * message, the hint and a prefix are kept valid UTF-8 (U+FFFD for bytes that are not) and cut
 * between characters, whatever text from outside they quote.
 */
int pl_err_set(struct pl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* pl_err_set with a va_list. */
int pl_err_vset(struct pl_err *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Set the hint (what the operator should do next); returns err->code. */
int pl_err_hint(struct pl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the message with context ("reading FILE: <old message>"); returns err->code. */
int pl_err_prefix(struct pl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void pl_err_clear(struct pl_err *err);

/* The --json name of a code ("internal" for a code outside the table). */
const char *pl_err_name(int code);

/* The whole table, in order of code; *n receives its length. */
const struct pl_err_info *pl_err_table(size_t *n);

#endif
