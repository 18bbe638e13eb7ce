/* pms setup: the app credentials tested live, provider and configuration recorded. */
#include "pms.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "account.h"
#include "audit.h"
#include "buf.h"
#include "json.h"
#include "pms_internal.h"
#include "sikka.h"
#include "utf8.h"
#include "banned.h"

void pl_pms_setup_res_release(struct pl_pms_setup_res *res)
{
	free(res->features_json);
	free(res->config_json);
	memset(res, 0, sizeof(*res));
}

static int unknown_timezone(const char *tz, struct pl_err *err)
{
	pl_err_set(err, PL_EUSAGE, "--timezone: unknown time zone '%.*s'", pl_utf8_cut(tz, 64), tz);
	return pl_err_hint(err, "use an IANA name such as America/New_York or UTC");
}

static int check_timezone(struct pl_db *db, const char *tz, struct pl_err *err)
{
	const char *params[1] = {tz};
	int r, found = 0;

	/* PostgreSQL's own zone database: the same one that computes local times later. */
	r = pl_db_exists(db, "SELECT 1 FROM pg_timezone_names WHERE name = $1", 1, params, &found,
	                 err);
	if (r || found)
		return r;
	return unknown_timezone(tz, err);
}

/*
 * The app credentials work if Sikka lists the practices that authorized the app. A dry run
 * only checks that they are set: it sends nothing anywhere.
 */
static int test_app_credentials(struct pl_session *s, const char *account, struct pl_err *err)
{
	struct pl_sikka sk;
	struct pl_sikka_practice *p = NULL;
	size_t n = 0;
	int r;

	if ((r = pl_sikka_init(&sk, s->cfg, err)))
		return r;
	sk.account = account;
	r = s->dry_run ? 0 : pl_sikka_authorized_practices(&sk, &p, &n, err);
	pl_sikka_practices_free(p, n);
	pl_sikka_release(&sk);
	return r;
}

/* The configuration given on this run: only what was given, so a second setup keeps the rest. */
static char *given_config(const struct pl_pms_setup_req *req, const char *hours)
{
	json_t *cfg = json_object();
	char *text;

	if (req->timezone)
		pl_json_set(cfg, "timezone", json_string(req->timezone));
	if (req->hours)
		pl_json_set(cfg, "hours", json_loads(hours, 0, NULL));
	if (req->practice_id)
		pl_json_set(cfg, "practiceId", json_string(req->practice_id));
	text = pl_json_dump(cfg);
	json_decref(cfg);
	return text;
}

static const char *const default_features =
    "{\"patients\":true,\"appointments\":true,\"booking\":true,\"availableSlots\":null}";

/* Record provider and configuration: a new row gets the defaults, an existing one the changes. */
static int record_setup(struct pl_db *db, const char *account, const char *full, const char *given,
                        struct pl_pms_setup_res *res, struct pl_err *err)
{
	struct pl_db_res rows = PL_DB_RES_INIT;
	const char *params[3] = {account, full, given};
	int r;

	/* A second setup changes the configuration, never the connection state. */
	r = pl_db_query(
	    db, &rows,
	    "INSERT INTO pms_integrations AS p (account_id, provider, config, features)"
	    " VALUES ($1, 'SIKKA', $2::jsonb, '{\"patients\":true,\"appointments\":true,"
	    "\"booking\":true,\"availableSlots\":null}')"
	    " ON CONFLICT (account_id, provider) DO UPDATE"
	    " SET config = p.config || $3::jsonb, updated_at = now()"
	    " RETURNING " PL_ACCOUNT_STATUS_SQL ", features::text, config::text",
	    3, params, err);
	if (r)
		return r;
	pl_strlcpy(res->status, pl_account_status_name(pl_db_val(&rows, 0, 0)),
	           sizeof(res->status));
	res->features_json = pl_xstrdup(pl_db_val(&rows, 0, 1));
	res->config_json = pl_xstrdup(pl_db_val(&rows, 0, 2));
	pl_db_res_clear(&rows);
	return 0;
}

int pl_pms_ensure_integration(struct pl_db *db, const char *account, struct pl_err *err)
{
	const char *params[2] = {account, NULL};
	char *hours = NULL;
	json_t *cfg;
	char *text;
	int r;

	if ((r = pl_pms_parse_hours(PL_PMS_DEFAULT_HOURS, &hours, err)))
		return r;
	cfg = pl_json_x(
	    json_pack("{s:s, s:o}", "timezone", "UTC", "hours", json_loads(hours, 0, NULL)));
	text = pl_json_dump(cfg);
	params[1] = text;
	r = pl_db_query(
	    db, NULL,
	    "INSERT INTO pms_integrations (account_id, provider, config, features)"
	    " VALUES ($1, 'SIKKA', $2::jsonb, '{\"patients\":true,\"appointments\":true,"
	    "\"booking\":true,\"availableSlots\":null}')"
	    " ON CONFLICT (account_id, provider) DO NOTHING",
	    2, params, err);
	free(text);
	free(hours);
	json_decref(cfg);
	return r;
}

int pl_pms_setup(struct pl_session *s, const struct pl_pms_setup_req *req,
                 struct pl_pms_setup_res *res, struct pl_err *err)
{
	struct pl_audit_event ev = {req->account, "pms.setup", "pms_integration", NULL, NULL};
	const char *tz = req->timezone ? req->timezone : "UTC";
	struct pl_buf config = PL_BUF_INIT, meta = PL_BUF_INIT, rid = PL_BUF_INIT;
	char *hours = NULL, *given = NULL;
	struct pl_db *db = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	if (req->provider && strcasecmp(req->provider, "sikka")) {
		pl_err_set(err, PL_EUSAGE, "--provider: '%.*s' is not supported",
		           pl_utf8_cut(req->provider, 32), req->provider);
		return pl_err_hint(err, "the only provider is sikka");
	}
	if ((r = pl_account_check_id(req->account, err)) ||
	    (req->practice_id && (r = pl_pms_check_practice_id(req->practice_id, err))) ||
	    (r = pl_pms_parse_hours(req->hours ? req->hours : PL_PMS_DEFAULT_HOURS, &hours, err)) ||
	    (r = pl_session_db(s, &db, err)))
		goto out;
	/* Bytes that are not UTF-8 name no zone, and could go neither into JSON nor to the
	 * database. */
	if (!pl_utf8_valid(tz, strlen(tz))) {
		r = unknown_timezone(tz, err);
		goto out;
	}
	pl_buf_addf(&rid, "%s/SIKKA", req->account);
	ev.resource_id = rid.buf;
	{
		json_t *cfg = pl_json_x(
		    json_pack("{s:s, s:o}", "timezone", tz, "hours", json_loads(hours, 0, NULL)));
		char *text;

		if (req->practice_id)
			pl_json_set(cfg, "practiceId", json_string(req->practice_id));
		text = pl_json_dump(cfg);

		pl_buf_reset(&config);
		pl_buf_adds(&config, text);
		free(text);
		json_decref(cfg);
	}
	given = given_config(req, hours);
	pl_buf_addf(&meta, "{\"provider\":\"SIKKA\",\"config\":%s}", given);
	ev.metadata = meta.buf;
	pl_strlcpy(res->provider, "SIKKA", sizeof(res->provider));
	if ((r = pl_account_require(db, req->account, err)) || (r = check_timezone(db, tz, err)) ||
	    (r = test_app_credentials(s, req->account, err)))
		goto done;
	if (s->dry_run) {
		res->features_json = pl_xstrdup(default_features);
		res->config_json = pl_xstrdup(config.buf);
		pl_strlcpy(res->status, "pending", sizeof(res->status));
		goto out;
	}
	if (!(r = pl_db_begin(db, err)))
		r = record_setup(db, req->account, config.buf, given, res, err);
done:
	/* Failures are recorded too, except a usage error, which attempted nothing. */
	if (!s->dry_run && r != PL_EUSAGE)
		r = pl_audit_finish(s, &ev, r, err);
out:
	pl_buf_release(&config);
	pl_buf_release(&meta);
	pl_buf_release(&rid);
	free(hours);
	free(given);
	if (r)
		pl_pms_setup_res_release(res);
	return r;
}
