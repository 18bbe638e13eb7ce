#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "store.h"
#include "utf8.h"
#include "banned.h"

static int set(const struct pl_session *s, const char *name)
{
	return pl_config_get(s->cfg, name) != NULL;
}

static void count_accounts(struct pl_db *db, struct pl_status_system *out)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	struct pl_err ignored = PL_ERR_INIT;

	if (pl_db_query(db, &res,
	                "SELECT " PL_ACCOUNT_STATUS_SQL ", count(*) FROM accounts a"
	                " LEFT JOIN pms_integrations p ON p.account_id = a.id"
	                " AND p.provider = 'SIKKA' GROUP BY 1",
	                0, NULL, &ignored))
		return;
	for (int i = 0; i < pl_db_rows(&res); i++) {
		const char *name = pl_account_status_name(pl_db_val(&res, i, 0));
		long n = atol(pl_db_val(&res, i, 1));

		if (!strcmp(name, "connected"))
			out->accounts.connected += n;
		else if (!strcmp(name, "connecting"))
			out->accounts.connecting += n;
		else if (!strcmp(name, "pending"))
			out->accounts.pending += n;
		else
			out->accounts.failed += n;
	}
	pl_db_res_clear(&res);
}

static void check_audit(struct pl_session *s, struct pl_status_system *out)
{
	struct pl_err e = PL_ERR_INIT;

	if (pl_audit_protection(s, &out->audit, &e))
		pl_strlcpy(out->audit.reason, "cannot tell whether it is protected",
		           sizeof(out->audit.reason));
}

/*
 * Informational: a checkpoint file is kept off this host as often as on it. Never shown when
 * it cannot be so: beyond the log, or (with PARLAE_AUDIT_PUBLIC_KEY) not signed by that key.
 */
static void last_checkpoint(struct pl_session *s, struct pl_status_system *out)
{
	const char *path = pl_config_get(s->cfg, "PARLAE_AUDIT_CHECKPOINTS");
	long long seq = 0;

	out->last_checkpoint = -1;
	if (path &&
	    !pl_audit_last_checkpoint(path, pl_config_get(s->cfg, "PARLAE_AUDIT_PUBLIC_KEY"),
	                              out->audit.last_event, &seq, &out->checkpoint_err) &&
	    seq > 0)
		out->last_checkpoint = seq;
}

static void list_problems(struct pl_status_system *out)
{
	size_t n = 0;

	char line[1024];

	/* Formatted whole, then cut between characters: the messages quoted are outside text. */
#define PROBLEM(...)                                                                               \
	do {                                                                                       \
		if (n < PL_STATUS_PROBLEMS_MAX) {                                                  \
			snprintf(line, sizeof(line), __VA_ARGS__);                                 \
			pl_utf8_copy(out->problems[n++], sizeof(out->problems[0]), line);          \
		}                                                                                  \
	} while (0)
	if (!out->db_reachable)
		PROBLEM("the database is unreachable: %s", out->db_err.msg);
	else if (out->schema_version != out->schema_latest)
		PROBLEM("the schema is at version %d of %d (run 'parlae db migrate')",
		        out->schema_version, out->schema_latest);
	else if (!out->audit.is_protected)
		PROBLEM("the audit log is not protected: %s", out->audit.reason);
	if (!out->store.reachable)
		PROBLEM("the secret store is not usable: %s", out->store.err.msg);
	else if (!out->store.key_opens)
		PROBLEM("the secret store does not open with the master key: %s",
		        out->store.key_err.msg);
	if (out->store.rekey_unfinished)
		PROBLEM("the secret store has an unfinished re-key (rerun 'parlae secrets rotate "
		        "--master-key' with both keys)");
	if (!out->integrations.sikka)
		PROBLEM("SIKKA_APP_ID and SIKKA_APP_KEY are not both set");
#undef PROBLEM
	out->nproblems = n;
}

void pl_status_system(struct pl_session *s, struct pl_status_system *out)
{
	struct pl_schema_status schema;
	struct pl_db *db;

	memset(out, 0, sizeof(*out));
	out->integrations.sikka = set(s, "SIKKA_APP_ID") && set(s, "SIKKA_APP_KEY");
	out->integrations.vapi = set(s, "VAPI_API_KEY") || set(s, "VAPI_WEBHOOK_SECRET");
	out->integrations.twilio = set(s, "TWILIO_ACCOUNT_SID") && set(s, "TWILIO_AUTH_TOKEN") &&
	                           set(s, "TWILIO_FROM_NUMBER");
	out->integrations.openai = set(s, "OPENAI_API_KEY");
	out->integrations.stripe = set(s, "STRIPE_SECRET_KEY");

	{
		size_t n;
		const struct pl_migration *m = pl_db_migrations(&n);

		out->schema_latest = n ? m[n - 1].version : 0;
	}
	if (!pl_session_db(s, &db, &out->db_err) &&
	    !pl_db_schema_status(db, &schema, &out->db_err)) {
		out->db_reachable = 1;
		out->schema_version = schema.version;
		pl_db_schema_status_release(&schema);
		if (out->schema_version > 0) {
			count_accounts(db, out);
			check_audit(s, out);
			last_checkpoint(s, out);
		}
	}

	pl_store_check(s->cfg, &out->store);
	list_problems(out);
}
