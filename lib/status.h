/*
 * What is configured and reachable: the integrations (booleans, never values), the database
 * and its schema, the secret store, and accounts counted by connection status.
 */
#ifndef PL_STATUS_H
#define PL_STATUS_H

#include "audit.h"
#include "err.h"
#include "session.h"
#include "store.h"

#define PL_STATUS_PROBLEMS_MAX 8

/*
 * --check without an account is healthy when the database is reachable and its schema
 * current, the audit log protected, the secret store usable with its key and no re-key
 * unfinished, and the Sikka app credentials set: anything else is one of problems.
 */
struct pl_status_system {
	struct {
		int sikka, vapi, twilio, openai, stripe;
	} integrations;
	int db_reachable;
	int schema_version; /* highest applied migration */
	int schema_latest;  /* highest this binary knows */
	struct pl_err db_err;
	struct pl_store_health store;
	struct pl_audit_protection audit; /* when the database is reachable and migrated */
	/* The newest checkpoint in PARLAE_AUDIT_CHECKPOINTS: -1 when unset or none yet. */
	long long last_checkpoint;
	struct pl_err checkpoint_err; /* its file unreadable or its last line torn */
	/* What makes --check fail: one sentence each, in the order shown. */
	char problems[PL_STATUS_PROBLEMS_MAX][640];
	size_t nproblems;
	struct {
		long connected, connecting, pending, failed;
	} accounts;
};

/* Fill out; unreachable parts are reported in it, not as an error. */
void pl_status_system(struct pl_session *s, struct pl_status_system *out);

#endif
