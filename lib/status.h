/*
 * What is configured and reachable: the integrations (booleans, never values), the database
 * and its schema, the secret store, and accounts counted by connection status.
 */
#ifndef PL_STATUS_H
#define PL_STATUS_H

#include "audit.h"
#include "err.h"
#include "session.h"

struct pl_status_system {
	struct {
		int sikka, vapi, twilio, openai, stripe;
	} integrations;
	int db_reachable;
	int schema_version; /* highest applied migration */
	int schema_latest;  /* highest this binary knows */
	struct pl_err db_err;
	const char *store_backend; /* "file" or "aws", NULL when the setting is malformed */
	char store_location[4096];
	int store_usable;
	struct pl_err store_err;
	struct pl_audit_protection audit; /* when the database is reachable and migrated */
	char audit_problem[320];          /* --check's sentence when it is not protected */
	/* The newest checkpoint in PARLAE_AUDIT_CHECKPOINTS: -1 when unset or none yet. */
	long long last_checkpoint;
	struct pl_err checkpoint_err; /* its file unreadable or its last line torn */
	struct {
		long connected, connecting, pending, failed;
	} accounts;
};

/* Fill out; unreachable parts are reported in it, not as an error. */
void pl_status_system(struct pl_session *s, struct pl_status_system *out);

/*
 * --check without an account: database reachable and current, store usable, audit log
 * protected, Sikka set. Each item that is not is one sentence in problems (at most max);
 * returns how many, so 0 means healthy. The sentences point into st or are constant.
 */
size_t pl_status_system_problems(const struct pl_status_system *st, const char **problems,
                                 size_t max);

#endif
