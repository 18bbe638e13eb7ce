#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"
#include "banned.h"

static const struct pl_err_info table[] = {
    {PL_OK, "ok", "success"},
    {PL_ENO, "no", "the answer is no: not connected, verification failed, chain broken, denied"},
    {PL_EUSAGE, "usage", "usage error: unknown command or option, missing argument"},
    {PL_ECONFIG, "config",
     "configuration missing or invalid, including credentials an upstream rejects"},
    {PL_ESECURITY, "security",
     "security rejection of input: bad, expired or replayed state, bad signature"},
    {PL_ENOTFOUND, "not_found", "not found: account, integration, secret, tool, practice"},
    {PL_EUPSTREAM, "upstream",
     "upstream error: Sikka, Twilio, AWS or a target failed after retries"},
    {PL_EDATABASE, "database", "database error"},
    {PL_ETIMEOUT, "timeout", "timed out: a --wait or deadline ran out"},
    {PL_EPARTIAL, "partial", "partial success: some items of a batch failed"},
    {PL_ECONFLICT, "conflict", "already exists"},
    {PL_EBADINPUT, "bad_input", "bad input data: malformed JSON, wrong shape, oversized input"},
    {PL_EINTERNAL, "internal", "a bug in parlae (never expected)"},
    {PL_EIO, "io", "output or a local file could not be written: disk full, read-only file system"},
    {PL_EINTERRUPTED, "interrupted", "interrupted"},
};

/*
 * A message is one line of valid UTF-8: a newline from a lower layer (libpq, curl) ends it,
 * bytes that are not UTF-8 become U+FFFD, and a long one is cut between characters, so that
 * it can always go into JSON.
 */
__attribute__((format(printf, 3, 0))) static void set_text(char *dst, size_t size, const char *fmt,
                                                           va_list ap)
{
	char raw[2048];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	raw[strcspn(raw, "\r\n")] = '\0';
	pl_utf8_copy(dst, size, raw);
}

int pl_err_vset(struct pl_err *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	err->hint[0] = '\0';
	set_text(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int pl_err_set(struct pl_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pl_err_vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int pl_err_hint(struct pl_err *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_text(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
	return err->code;
}

int pl_err_prefix(struct pl_err *err, const char *fmt, ...)
{
	char head[256], old[sizeof(err->msg)], hint[sizeof(err->hint)];
	va_list ap;

	va_start(ap, fmt);
	set_text(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	memcpy(hint, err->hint, sizeof(hint));
	pl_err_set(err, err->code, "%s: %s", head, old);
	memcpy(err->hint, hint, sizeof(hint));
	return err->code;
}

void pl_err_clear(struct pl_err *err)
{
	err->code = PL_OK;
	err->msg[0] = err->hint[0] = '\0';
}

const char *pl_err_name(int code)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == code)
			return table[i].name;
	return "internal";
}

const struct pl_err_info *pl_err_table(size_t *n)
{
	*n = sizeof(table) / sizeof(table[0]);
	return table;
}
