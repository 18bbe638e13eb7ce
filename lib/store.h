/*
 * The secret store: where practices' keys live, never in the database. Its location comes
 * from PARLAE_SECRET_STORE: "file:PATH" (the default, a directory of AES-256-GCM encrypted
 * files under PARLAE_MASTER_KEY) or "aws:REGION" (AWS Secrets Manager).
 * Values travel in struct pl_secret, whose bytes are wiped when released.
 */
#ifndef PL_STORE_H
#define PL_STORE_H

#include <stddef.h>

#include "config.h"
#include "err.h"

enum pl_store_backend {
	PL_STORE_FILE,
	PL_STORE_AWS,
};

struct pl_store_spec {
	enum pl_store_backend backend;
	char location[4096]; /* the directory, or the region */
};

/* A secret value: len bytes at data (NUL-terminated for convenience, not counted). */
struct pl_secret {
	unsigned char *data;
	size_t len;
};

#define PL_SECRET_INIT                                                                             \
	{                                                                                          \
		NULL, 0                                                                            \
	}

/* Copy len bytes into a fresh secret (owned by s; release with pl_secret_release). */
void pl_secret_set(struct pl_secret *s, const void *data, size_t len);

/* Wipe (OPENSSL_cleanse) and free. */
void pl_secret_release(struct pl_secret *s);

/* Parse a PARLAE_SECRET_STORE value; PL_ECONFIG naming the variable when it is malformed. */
int pl_store_parse_spec(const char *spec, struct pl_store_spec *out, struct pl_err *err);

const char *pl_store_backend_name(enum pl_store_backend b);

/*
 * Whether the store can be used here without changing it: for a file store, its directory is
 * 0700 and writable, or can be created under a writable parent. 0 if usable, else PL_ECONFIG
 * with the reason.
 */
int pl_store_probe(const struct pl_store_spec *spec, struct pl_err *err);

/*
 * Secret names are slash-separated segments of [a-z0-9][a-z0-9_.-]*, at most 255 bytes in
 * all ("parlae/pms/sikka/happy-dental"); anything else (empty segments, "..", uppercase,
 * control characters) is PL_EUSAGE. This is what keeps a name from escaping the store.
 */
int pl_store_check_name(const char *name, struct pl_err *err);

struct pl_store;

/*
 * Open the store named by PARLAE_SECRET_STORE in cfg. Opening reads no key: the master key
 * (PARLAE_MASTER_KEY, else the file named by PARLAE_MASTER_KEY_FILE; 32 bytes as 64 hex
 * digits or base64) is loaded on the first get or put, and its absence then is PL_ECONFIG
 * naming both variables. The returned store is freed with pl_store_close.
 */
int pl_store_open(const struct pl_config *cfg, struct pl_store **out, struct pl_err *err);
void pl_store_close(struct pl_store *st);

/* Whether the store can be read and written now (its key loads): checked before a step that
 * cannot be undone, such as spending a single-use code. */
int pl_store_ready(struct pl_store *st, struct pl_err *err);

/*
 * Write a new current version of name; the version it replaces becomes the previous one
 * (one previous version is kept). Atomic: a crash leaves either the old or the new version
 * current, never a torn file. version (at least PL_STORE_VERSION_MAX bytes) receives the
 * new version's id.
 */
#define PL_STORE_VERSION_MAX 80
int pl_store_put(struct pl_store *st, const char *name, const struct pl_secret *value,
                 char *version, struct pl_err *err);

/*
 * The same, only if the current version is still `expected` (a compare-and-swap: racing
 * writers cannot both win); PL_ECONFLICT otherwise. expected "" means "no secret yet".
 */
int pl_store_put_if(struct pl_store *st, const char *name, const struct pl_secret *value,
                    const char *expected, char *version, struct pl_err *err);

/*
 * Read the current version (version_in NULL) or a given one (current or previous).
 * PL_ENOTFOUND when there is no such secret or version; PL_ECONFIG when the master key does
 * not open it ("the key does not open the store"). version_out may be NULL.
 */
int pl_store_get(struct pl_store *st, const char *name, const char *version_in,
                 struct pl_secret *out, char *version_out, struct pl_err *err);

/* Remove every version of name; PL_ENOTFOUND if there was none. */
int pl_store_delete(struct pl_store *st, const char *name, struct pl_err *err);

struct pl_store_entry {
	char name[256];
	char version[PL_STORE_VERSION_MAX];
	char previous[PL_STORE_VERSION_MAX]; /* "" when there is none */
	char updated_at[32];                 /* ISO 8601 UTC of the current version */
};

/* Every secret, sorted by name; no key needed, no value read. *out freed by the caller. */
int pl_store_list(struct pl_store *st, struct pl_store_entry **out, size_t *n, struct pl_err *err);

/*
 * Re-encrypt every secret (current and previous versions) under PARLAE_MASTER_KEY_NEW, one
 * file at a time, each replaced atomically: a crash leaves every file readable under the old
 * or the new key, and running again finishes the job (files already under the new key are
 * left alone). *n counts the secrets. Afterwards only the new key opens the store.
 */
int pl_store_rekey(struct pl_store *st, int dry_run, size_t *n, struct pl_err *err);

#endif
