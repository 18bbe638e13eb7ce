#include "status.h"

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
	                "SELECT p.status, count(*) FROM accounts a LEFT JOIN pms_integrations p"
	                " ON p.account_id = a.id AND p.provider = 'SIKKA' GROUP BY p.status",
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
		if (out->schema_version > 0)
			count_accounts(db, out);
	}

	pl_store_check(s->cfg, &out->store);
}

int pl_status_system_healthy(const struct pl_status_system *st)
{
	return st->db_reachable && st->schema_version == st->schema_latest && st->store.reachable &&
	       st->store.key_opens && !st->store.rekey_unfinished && st->integrations.sikka;
}
