/*
 * What is configured and reachable: the integrations (booleans, never values), the database
 * and its schema, the secret store, and accounts counted by connection status.
 */
#ifndef PL_STATUS_H
#define PL_STATUS_H

#include "err.h"
#include "session.h"
#include "store.h"

struct pl_status_system {
	struct {
		int sikka, vapi, twilio, openai, stripe;
	} integrations;
	int db_reachable;
	int schema_version; /* highest applied migration */
	int schema_latest;  /* highest this binary knows */
	struct pl_err db_err;
	struct pl_store_health store;
	struct {
		long connected, connecting, pending, failed;
	} accounts;
};

/* Fill out; unreachable parts are reported in it, not as an error. */
void pl_status_system(struct pl_session *s, struct pl_status_system *out);

/* --check without an account: database reachable and current, store usable with its key and
 * no re-key unfinished, Sikka set. */
int pl_status_system_healthy(const struct pl_status_system *st);

#endif
