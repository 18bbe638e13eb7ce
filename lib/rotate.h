/*
 * Refreshing a practice's Sikka request key, exactly once across processes and hosts
 * (architecture invariant 4): a session-level advisory lock per account, a re-read of the
 * secret once it is held, the new refresh key persisted before anything else, and a fallback
 * to the request_key grant when the refresh key is rejected. `secrets rotate` and the tool
 * handlers (on an expired key) both come through here.
 */
#ifndef PL_ROTATE_H
#define PL_ROTATE_H

#include <time.h>

#include "err.h"
#include "session.h"
#include "sikka.h"
#include "store.h"

struct pl_rotate_req {
	const char *account;
	/* Refresh only if the stored version is still this one (a handler that met an expired
	 * key), or, when NULL, only if the key expires within `within` seconds (or force). */
	const char *stale_version;
	long within;
	int force;
	long wait_ms; /* how long to wait for another process's lock; 0: skip at once */
};

enum pl_rotate_outcome {
	PL_ROTATED,
	PL_ROTATE_NOT_DUE,    /* fresh enough, or someone else just refreshed it */
	PL_ROTATE_LOCKED,     /* another process holds it: counted as done by that process */
};

struct pl_rotate_res {
	enum pl_rotate_outcome outcome;
	int fallback; /* the refresh key was rejected; the secret key got a new one */
	char version[PL_STORE_VERSION_MAX];
	time_t expires_at;
};

int pl_rotate_account(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
		      const struct pl_rotate_req *req, struct pl_rotate_res *res,
		      struct pl_err *err);

#endif
