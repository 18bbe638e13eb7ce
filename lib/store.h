/*
 * The secret store: where practices' keys live, never in the database. Its location comes
 * from PARLAE_SECRET_STORE: "file:PATH" (the default, an encrypted directory) or "aws:REGION".
 */
#ifndef PL_STORE_H
#define PL_STORE_H

#include "err.h"

enum pl_store_backend {
	PL_STORE_FILE,
	PL_STORE_AWS,
};

struct pl_store_spec {
	enum pl_store_backend backend;
	char location[4096]; /* the directory, or the region */
};

/* Parse a PARLAE_SECRET_STORE value; PL_ECONFIG naming the variable when it is malformed. */
int pl_store_parse_spec(const char *spec, struct pl_store_spec *out, struct pl_err *err);

const char *pl_store_backend_name(enum pl_store_backend b);

/*
 * Whether the store can be used here without changing it: for a file store, its directory is
 * 0700 and writable, or can be created under a writable parent. 0 if usable, else PL_ECONFIG
 * with the reason.
 */
int pl_store_probe(const struct pl_store_spec *spec, struct pl_err *err);

#endif
