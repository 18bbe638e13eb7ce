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
	PL_ROTATE_NOT_DUE, /* fresh enough, or someone else just refreshed it */
	PL_ROTATE_LOCKED,  /* another process holds it: counted as done by that process */
};

struct pl_rotate_res {
	enum pl_rotate_outcome outcome;
	int fallback; /* the refresh key was rejected; the secret key got a new one */
	char version[PL_STORE_VERSION_MAX];
	time_t expires_at;
};

/*
 * The per-account lock rotation takes (a session-level advisory lock on db): *got says whether
 * it was taken within wait_ms. Whatever changes an account's keys or finishes its connection
 * outside rotation (completing SETUP_REQUIRED, disconnect) holds it too.
 */
int pl_rotate_lock(struct pl_db *db, const char *account, long wait_ms, int *got,
                   struct pl_err *err);
void pl_rotate_unlock(struct pl_db *db, const char *account);

int pl_rotate_account(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
                      const struct pl_rotate_req *req, struct pl_rotate_res *res,
                      struct pl_err *err);

struct pl_rotate_batch_req {
	const char *const *accounts; /* the accounts to rotate, or NULL with all */
	size_t naccounts;
	int all;     /* every connected (ACTIVE) integration */
	long within; /* seconds: rotate keys expiring sooner than this */
	int force;   /* due or not */
	int concurrency;
	void (*progress)(size_t done, size_t total, void *arg);
	/* Each account's outcome: rotated, skipped, not_due or failed (with why). */
	void (*outcome)(const char *account, const char *outcome, const char *why, void *arg);
	void *arg;
};

struct pl_rotate_summary {
	size_t rotated, skipped, not_due, failed;
	size_t completed; /* SETUP_REQUIRED integrations this run connected */
	int fail_code;    /* the failures' common code, PL_EUPSTREAM when they differ */
};

/*
 * First, each SETUP_REQUIRED integration among the accounts (with all: every one) whose
 * practice Sikka now lists is connected (pl_handshake_complete). Then:
 * refresh many accounts with up to `concurrency` requests in flight from this process (one
 * curl multi handle), each under its advisory lock (held on one connection, no transaction
 * per request). Accounts another process holds are skipped and count as done there. With
 * s->dry_run, nothing is sent or written. Returns 0 with the summary, or an error that kept
 * the whole batch from running (database, store, Sikka credentials).
 */
int pl_rotate_batch(struct pl_session *s, const struct pl_rotate_batch_req *req,
                    struct pl_rotate_summary *sum, struct pl_err *err);

/*
 * Exit status of a batch: 0 none failed, 9 some; when all failed, their common cause if they
 * share one (3 credentials or store, 5 not connected, 7 the database), else 6.
 */
int pl_rotate_status(const struct pl_rotate_summary *sum);

/*
 * secrets rotate --master-key: re-encrypt the file store under PARLAE_MASTER_KEY_NEW (see
 * pl_store_rekey), recorded in the audit log. *n counts the secrets.
 */
int pl_rotate_master_key(struct pl_session *s, size_t *n, struct pl_err *err);

#endif
