/*
 * The secret store's backends behind one table of operations. store.c checks what callers give
 * (names, sizes) and dispatches here; nothing outside the store module (store.c, store_file.c,
 * store_aws.c) includes this header or knows which backend it talks to.
 *
 * What every backend promises, beyond the meaning of its store.h namesake:
 * - put_if decides which key or credentials it writes with only after it has shut out every
 *   other writer of the store (the file store: its directory's lock), and refuses (PL_ECONFIG)
 *   to write with a key the store no longer uses, naming the variable of the key that replaced
 *   it. A secret is never written under a key that is being retired.
 * - A change of key (rekey) is one writer among the others: it checks everything it will
 *   change before changing anything, leaves a durable mark until it has finished, and while
 *   that mark exists every writer is refused; a rerun with the same keys finishes it. It
 *   starts only once every hold is released, and a hold waits for it to end.
 * - check changes nothing and reports what `status` shows: whether the store can be reached
 *   and is ours alone, whether the configured key opens it, and whether a re-key is unfinished.
 */
#ifndef PL_STORE_BACKEND_H
#define PL_STORE_BACKEND_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "store.h"

struct pl_store_ops {
	const char *prefix; /* of PARLAE_SECRET_STORE: "file:" or "aws:" */
	const char *name;   /* "file" or "aws" */
	/* Whether the text after the prefix is a location of this backend (PL_ECONFIG if not). */
	int (*parse)(const char *spec, const char *location, struct pl_err *err);
	/* The backend's state in *out (freed with close); nothing secret is read yet. */
	int (*open)(const struct pl_config *cfg, const char *location, void **out,
	            struct pl_err *err);
	void (*close)(void *be);
	/* Names and sizes are already checked; out, version and version_out are initialised. */
	int (*get)(void *be, const char *name, const char *version_in, struct pl_secret *out,
	           char *version_out, struct pl_err *err);
	int (*put_if)(void *be, const char *name, const struct pl_secret *value,
	              const char *expected, char *version, struct pl_err *err);
	int (*del)(void *be, const char *name, struct pl_err *err);
	/* In any order (store.c sorts); *out, allocated here, is freed by the caller. */
	int (*list)(void *be, struct pl_store_entry **out, size_t *n, struct pl_err *err);
	/* Fill reachable, key_opens, rekey_unfinished and their errors in h; change nothing. */
	void (*check)(void *be, struct pl_store_health *h);
	/* NULL for a backend that has no master key of its own. */
	int (*rekey)(void *be, int dry_run, size_t *n, struct pl_err *err);
	/* Keep the key from changing (rekey waits) until unhold or close; NULL with rekey. */
	int (*hold)(void *be, struct pl_err *err);
	void (*unhold)(void *be);
};

/* PL_ENOTFOUND for a secret (version NULL) or one of its versions, worded alike by all. */
int pl_store_not_found(const char *name, const char *version, struct pl_err *err);

extern const struct pl_store_ops pl_store_file_ops;
extern const struct pl_store_ops pl_store_aws_ops;

#endif
