/*
 * The secret store: where practices' keys live, never in the database. Its location comes
 * from PARLAE_SECRET_STORE: "file:PATH" (the default, a directory of AES-256-GCM encrypted
 * files under PARLAE_MASTER_KEY, store_file.c) or "aws:REGION" (AWS Secrets Manager,
 * store_aws.c); both sit behind the operations table of store_backend.h.
 * Values travel in struct pl_secret, whose bytes are wiped when released.
 */
#ifndef PL_STORE_H
#define PL_STORE_H

#include <stddef.h>

#include "config.h"
#include "err.h"

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
 * naming both variables; a key file that is another user's or readable by others is refused.
 * A file store whose directory or files are open to, or owned by, another user is refused. The
 * returned store is freed with pl_store_close.
 */
int pl_store_open(const struct pl_config *cfg, struct pl_store **out, struct pl_err *err);
void pl_store_close(struct pl_store *st);

/*
 * What `status` shows of the store, filled by pl_store_check without changing anything.
 * reachable: the store can be used here (for a file store: its directory and files are ours
 * alone, 0700 and 0600, or the directory can be created; for aws: the credentials are accepted).
 * key_opens: the configured master key opens the store (its key-check record, or for a store
 * from before those, one secret; an empty store opens under any key): 1, 0, or -1 where not
 * known or not used (aws:). rekey_unfinished: a re-key was stopped before it finished.
 */
struct pl_store_health {
	const char *backend; /* "file" or "aws"; NULL when PARLAE_SECRET_STORE is malformed */
	char location[4096]; /* the directory, or the region */
	int reachable;
	int key_opens;
	int rekey_unfinished;
	struct pl_err err;     /* why it is not reachable */
	struct pl_err key_err; /* why the key does not open it */
};

/* Fill h for the store named in cfg; 0 when all is well, else the code of the first failure. */
int pl_store_check(const struct pl_config *cfg, struct pl_store_health *h);

/* Whether the store can be read and written now with its key (pl_store_check's items, the first
 * failure in err): checked before a step that cannot be undone, such as spending a single-use
 * code. The writes themselves check again, under the store's lock. */
int pl_store_ready(struct pl_store *st, struct pl_err *err);

/* Whether a write with the store's own master key would be refused now (pl_store_ready, for a
 * backend that has one: its key no longer opens the store, or a re-key is unfinished); 0 with
 * no call for one that has none (aws:). Cheap enough to check before each account of a batch. */
int pl_store_key_ready(struct pl_store *st, struct pl_err *err);

/*
 * Keep the store's master key from changing until pl_store_unhold or pl_store_close: a re-key
 * waits for every holder, and a hold taken during a re-key waits for it to end. For a writer
 * that reads, spends something it cannot get back (a refresh at Sikka), then writes: what
 * pl_store_key_ready says after the hold still stands at the write. Nothing is held for a
 * backend without a master key (aws:) or a file store not created yet.
 */
int pl_store_hold(struct pl_store *st, struct pl_err *err);
void pl_store_unhold(struct pl_store *st);

/*
 * Write a new current version of name; the version it replaces becomes the previous one
 * (one previous version is kept). Atomic: a crash leaves either the old or the new version
 * current, never a torn file. version (at least PL_STORE_VERSION_MAX bytes) receives the
 * new version's id. The key is decided under the store's lock, after any re-key: a key the
 * store no longer uses is refused (PL_ECONFIG, naming PARLAE_MASTER_KEY_NEW), and so is every
 * write while a re-key is unfinished.
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

/* Remove every version of name; PL_ENOTFOUND if there was none. Refused (PL_ECONFIG) while a
 * re-key is unfinished. */
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
 * Re-encrypt every secret (current and previous versions) under PARLAE_MASTER_KEY_NEW, under
 * the store's lock. First every file must open under the old or the new key, else nothing
 * changes (PL_ECONFIG naming the file); then a marker bound to the new key records the
 * unfinished re-key, each file is replaced atomically, the key-check record is rewritten, the
 * temporary files of crashed writers are removed and the marker goes. Killed at any point, a
 * rerun with the same two keys finishes (a third key is refused). *n counts the secrets whose
 * current version was (or, with dry_run, would be) re-encrypted: not those already under the
 * new key.
 * Afterwards only the new key opens the store. PL_EUSAGE for a backend without a master key.
 */
int pl_store_rekey(struct pl_store *st, int dry_run, size_t *n, struct pl_err *err);

#endif
