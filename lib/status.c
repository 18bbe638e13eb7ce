#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "store.h"
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
	snprintf(out->audit_problem, sizeof(out->audit_problem),
	         "the audit log is not protected: %s", out->audit.reason);
}

/* Informational: a checkpoint file is kept off this host as often as on it. */
static void last_checkpoint(struct pl_session *s, struct pl_status_system *out)
{
	const char *path = pl_config_get(s->cfg, "PARLAE_AUDIT_CHECKPOINTS");
	long long seq = 0;

	out->last_checkpoint = -1;
	if (path && !pl_audit_last_checkpoint(path, &seq, &out->checkpoint_err) && seq > 0)
		out->last_checkpoint = seq;
}

void pl_status_system(struct pl_session *s, struct pl_status_system *out)
{
	struct pl_schema_status schema;
	struct pl_store_spec spec;
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

	if (!pl_store_parse_spec(pl_config_get(s->cfg, "PARLAE_SECRET_STORE"), &spec,
	                         &out->store_err)) {
		out->store_backend = pl_store_backend_name(spec.backend);
		pl_strlcpy(out->store_location, spec.location, sizeof(out->store_location));
		if (spec.backend == PL_STORE_AWS) {
			/* Usable means the credentials work against the service now. */
			struct pl_store *st = NULL;

			out->store_usable = !pl_store_open(s->cfg, &st, &out->store_err) &&
			                    !pl_store_ready(st, &out->store_err);
			pl_store_close(st);
		} else {
			out->store_usable = !pl_store_probe(&spec, &out->store_err);
		}
	}
}

size_t pl_status_system_problems(const struct pl_status_system *st, const char **problems,
                                 size_t max)
{
	size_t n = 0;

#define PROBLEM(text)                                                                              \
	do {                                                                                       \
		if (n < max)                                                                       \
			problems[n++] = (text);                                                    \
	} while (0)
	if (!st->db_reachable)
		PROBLEM(st->db_err.msg);
	else if (st->schema_version != st->schema_latest)
		PROBLEM("the database schema is not current: run 'parlae db migrate'");
	else if (!st->audit.is_protected)
		PROBLEM(st->audit_problem);
	if (!st->store_usable)
		PROBLEM(st->store_err.msg);
	if (!st->integrations.sikka)
		PROBLEM("the Sikka app credentials are not set: export SIKKA_APP_ID and "
		        "SIKKA_APP_KEY");
#undef PROBLEM
	return n;
}
