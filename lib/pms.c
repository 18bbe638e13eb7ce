#include "pms.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "audit.h"
#include "buf.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "sikka.h"
#include "state.h"
#include "store.h"
#include "utf8.h"
#include "banned.h"

#define DEFAULT_HOURS "mon-fri 08:00-17:00"
#define DEFAULT_TTL   600
#define MAX_TTL       86400

static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static void iso_utc(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --- office hours ------------------------------------------------------------------------- */

static int day_index(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n == 3 && !strncmp(s, days[i], 3))
			return i;
	return -1;
}

static int hours_error(struct pl_err *err, const char *part)
{
	pl_err_set(err, PL_EUSAGE, "--hours: cannot read '%.*s'", pl_utf8_cut(part, 60), part);
	return pl_err_hint(
	    err,
	    "write day ranges and times like 'mon-fri 08:00-12:00,13:00-17:00; sat 09:00-13:00'");
}

/* One "mon-fri 08:00-12:00,13:00-17:00" clause into ranges[day][...] (minutes). */
static int parse_clause(char *clause, json_t *week, struct pl_err *err)
{
	char *sp, *days_part, *times, *tok, *save = NULL;
	int from, to;

	while (isspace((unsigned char)*clause))
		clause++;
	sp = clause + strcspn(clause, " \t");
	if (!*sp)
		return hours_error(err, clause);
	*sp = '\0';
	days_part = clause;
	times = sp + 1;
	{
		char *dash = strchr(days_part, '-');

		from = day_index(days_part, dash ? (size_t)(dash - days_part) : strlen(days_part));
		to = dash ? day_index(dash + 1, strlen(dash + 1)) : from;
		if (from < 0 || to < 0 || to < from)
			return hours_error(err, days_part);
	}
	for (tok = strtok_r(times, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = tok, *dash;
		int a, b;

		while (isspace((unsigned char)*t))
			t++;
		for (char *e = t + strlen(t); e > t && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		dash = strchr(t, '-');
		if (!dash)
			return hours_error(err, t);
		*dash = '\0'; /* 24:00 ends a day; it starts none */
		a = pl_hhmm(t, 0);
		b = pl_hhmm(dash + 1, PL_HHMM_END);
		*dash = '-';
		if (a < 0 || b < 0 || b <= a)
			return hours_error(err, t);
		for (int d = from; d <= to; d++) {
			json_t *list = json_object_get(week, days[d]);
			char sa[6], sb[6];

			if (!list) {
				list = json_array();
				pl_json_set(week, days[d], list);
			}
			/* Ranges of a day are given in order and do not overlap. */
			if (json_array_size(list)) {
				const char *last = json_string_value(json_array_get(
				    json_array_get(list, json_array_size(list) - 1), 1));

				if (pl_hhmm(last, PL_HHMM_END) > a)
					return hours_error(err, t);
			}
			snprintf(sa, sizeof(sa), "%02d:%02d", a / 60, a % 60);
			snprintf(sb, sizeof(sb), "%02d:%02d", b / 60, b % 60);
			pl_json_append(list, json_pack("[s, s]", sa, sb));
		}
	}
	return 0;
}

int pl_pms_parse_hours(const char *spec, char **json_out, struct pl_err *err)
{
	char *copy = pl_xstrdup(spec), *clause, *save = NULL;
	json_t *week = json_object(), *ordered = json_object();
	int r = 0, any = 0;

	*json_out = NULL;
	for (clause = strtok_r(copy, ";", &save); clause && !r;
	     clause = strtok_r(NULL, ";", &save)) {
		if (!clause[strspn(clause, " \t\n")])
			continue; /* "a; ; b" and a trailing ';' */
		any = 1;
		r = parse_clause(clause, week, err);
	}
	if (!r && !any)
		r = hours_error(err, spec);
	if (!r) {
		for (int d = 0; d < 7; d++)
			if (json_object_get(week, days[d]))
				pl_json_set(ordered, days[d],
				            json_incref(json_object_get(week, days[d])));
		*json_out = pl_json_dump(ordered);
	}
	json_decref(week);
	json_decref(ordered);
	free(copy);
	return r;
}

/* --- setup ----------------------------------------------------------------------------------- */

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
	    (r = pl_pms_parse_hours(req->hours ? req->hours : DEFAULT_HOURS, &hours, err)) ||
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
		char *text = pl_json_dump(cfg);

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

/* --- oauth-url --------------------------------------------------------------------------- */

void pl_pms_oauth_res_release(struct pl_pms_oauth_res *res)
{
	free(res->url);
	free(res->state);
	memset(res, 0, sizeof(*res));
}

/* The integration must exist (pms setup) before a practice can be sent to authorize. */
static int require_integration(struct pl_db *db, const char *account, struct pl_err *err)
{
	const char *params[1] = {account};
	int r, found = 0;

	r = pl_db_exists(
	    db, "SELECT 1 FROM pms_integrations WHERE account_id = $1 AND provider = 'SIKKA'", 1,
	    params, &found, err);
	if (r || found)
		return r;
	pl_err_set(err, PL_ENOTFOUND, "account '%s' has no Sikka integration", account);
	return pl_err_hint(err, "run 'parlae pms setup %s' first", account);
}

static int redirect_uri(struct pl_session *s, const char *given, struct pl_buf *out,
                        struct pl_err *err)
{
	const char *base = pl_config_get(s->cfg, "APP_BASE_URL");
	size_t n;

	if (given) {
		if (strncmp(given, "https://", 8) && strncmp(given, "http://", 7))
			return pl_err_set(err, PL_EUSAGE, "--redirect-uri must be an http(s) URL");
		pl_buf_adds(out, given);
		return 0;
	}
	if (!base) {
		pl_err_set(err, PL_ECONFIG,
		           "APP_BASE_URL is not set and no --redirect-uri was given");
		return pl_err_hint(
		    err,
		    "export APP_BASE_URL=https://your-backend.example or pass --redirect-uri URL");
	}
	n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	pl_buf_addf(out, "%.*s/pms/sikka/oauth/callback", (int)n, base);
	return 0;
}

int pl_pms_oauth_url(struct pl_session *s, const struct pl_pms_oauth_req *req,
                     struct pl_pms_oauth_res *res, struct pl_err *err)
{
	struct pl_audit_event ev = {req->account, "sikka.oauth_url", "oauth_state", NULL, NULL};
	struct pl_secret key = PL_SECRET_INIT;
	struct pl_buf uri = PL_BUF_INIT, url = PL_BUF_INIT, meta = PL_BUF_INIT;
	const char *app_id = pl_config_get(s->cfg, "SIKKA_APP_ID");
	const char *authorize = pl_config_get(s->cfg, "SIKKA_AUTHORIZE_URL");
	long ttl = req->ttl ? req->ttl : DEFAULT_TTL;
	struct pl_state st = {0};
	char issued[32];
	struct pl_db *db;
	int r;

	memset(res, 0, sizeof(*res));
	if (ttl < 1 || ttl > MAX_TTL)
		return pl_err_set(err, PL_EUSAGE, "--ttl must be between 1 and %d seconds",
		                  MAX_TTL);
	if ((r = pl_account_check_id(req->account, err)) || (r = pl_session_db(s, &db, err)))
		return r;
	/* From here on a refusal is recorded: someone tried to start an onboarding. */
	if ((r = redirect_uri(s, req->redirect_uri, &uri, err)))
		goto failed;
	if (!app_id) {
		r = pl_err_set(err, PL_ECONFIG, "SIKKA_APP_ID is not set");
		pl_err_hint(
		    err,
		    "export the system's Sikka app credentials SIKKA_APP_ID and SIKKA_APP_KEY");
		goto failed;
	}
	if ((r = pl_state_key(s->cfg, &key, err)) ||
	    (r = pl_account_require(db, req->account, err)) ||
	    (r = require_integration(db, req->account, err)))
		goto failed;
	pl_strlcpy(st.account, req->account, sizeof(st.account));
	if (pl_random_hex(st.nonce, 16) < 0) {
		r = pl_err_set(err, PL_EINTERNAL, "no randomness available for the state's nonce");
		goto out;
	}
	st.issued_at = time(NULL);
	st.expires_at = st.issued_at + ttl;
	if (!(res->state = pl_state_sign(&key, &st))) {
		r = pl_err_set(err, PL_EINTERNAL, "cannot sign the OAuth state");
		goto out;
	}
	iso_utc(st.expires_at, res->expires_at, sizeof(res->expires_at));
	iso_utc(st.issued_at, issued, sizeof(issued));
	{
		char *a = pl_http_escape(app_id), *u = pl_http_escape(uri.buf),
		     *t = pl_http_escape(res->state);

		pl_buf_addf(&url, "%s%sapp_id=%s&redirect_uri=%s&state=%s", authorize,
		            strchr(authorize, '?') ? "&" : "?", a, u, t);
		free(a);
		free(u);
		free(t);
	}
	res->url = pl_buf_detach(&url, NULL);
	ev.resource_id = st.nonce;
	pl_buf_addf(&meta, "{\"expiresAt\":\"%s\"}", res->expires_at);
	ev.metadata = meta.buf;
	if (s->dry_run)
		goto out;
	if (!(r = pl_db_begin(db, err))) {
		const char *params[5] = {st.nonce, req->account, uri.buf, issued, res->expires_at};

		r = pl_db_query(db, NULL,
		                "INSERT INTO oauth_states (nonce, account_id, redirect_uri, "
		                "issued_at, expires_at)"
		                " VALUES ($1, $2, $3, $4, $5)",
		                5, params, err);
	}
	if (!r) {
		const char *params[1] = {req->account};

		r = pl_db_query(
		    db, NULL,
		    "UPDATE pms_integrations SET status = 'CONNECTING', last_error = NULL,"
		    " updated_at = now() WHERE account_id = $1 AND provider = 'SIKKA'"
		    " AND status <> 'ACTIVE'",
		    1, params, err);
	}
	r = pl_audit_finish(s, &ev, r, err);
	goto out;
failed:
	if (!s->dry_run && r != PL_EUSAGE)
		pl_audit_finish(s, &ev, r, err);
out:
	pl_secret_release(&key);
	pl_buf_release(&uri);
	pl_buf_release(&url);
	pl_buf_release(&meta);
	if (r)
		pl_pms_oauth_res_release(res);
	return r;
}

/* --- callback ------------------------------------------------------------------------------ */

void pl_pms_redirect_release(struct pl_pms_redirect *r)
{
	char **fields[] = {&r->code, &r->state, &r->error, &r->office_id};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (*fields[i])
			explicit_bzero(*fields[i], strlen(*fields[i]));
		free(*fields[i]);
		*fields[i] = NULL;
	}
}

/* Percent-decoding as browsers encode queries ('+' is a space); NUL bytes are refused. */
static char *query_decode(const char *s, size_t n)
{
	struct pl_buf b = PL_BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 2 < n ? pl_hex_digit((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? pl_hex_digit((unsigned char)s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi | lo) == 0) {
				pl_buf_release(&b);
				return NULL;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		pl_buf_addch(&b, c);
	}
	return pl_buf_detach(&b, NULL);
}

int pl_pms_parse_redirect(const char *url, struct pl_pms_redirect *out, struct pl_err *err)
{
	const char *q = strchr(url, '?'), *end;

	memset(out, 0, sizeof(*out));
	if (strlen(url) > 8192)
		return pl_err_set(err, PL_EBADINPUT, "the redirect URL is longer than 8 KiB");
	q = q ? q + 1 : url; /* a bare query string is accepted too */
	end = q + strcspn(q, "#\r\n");
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q)), *eq;
		size_t len = amp ? (size_t)(amp - q) : (size_t)(end - q);
		char **field = NULL;
		char *value;

		eq = memchr(q, '=', len);
		if (eq) {
			size_t klen = (size_t)(eq - q);

			if (klen == 4 && !strncmp(q, "code", 4))
				field = &out->code;
			else if (klen == 5 && !strncmp(q, "state", 5))
				field = &out->state;
			else if (klen == 5 && !strncmp(q, "error", 5))
				field = &out->error;
			else if (klen == 9 && !strncmp(q, "office_id", 9))
				field = &out->office_id;
		}
		if (field) {
			value = query_decode(eq + 1, len - (size_t)(eq + 1 - q));
			if (!value || *field || !pl_utf8_valid(value, strlen(value))) {
				free(value);
				pl_pms_redirect_release(out);
				return pl_err_set(
				    err, PL_EBADINPUT,
				    "the redirect URL has a malformed or repeated '%.*s'",
				    (int)(eq - q), q);
			}
			*field = value;
		}
		q += len + (amp ? 1 : 0);
	}
	if (!out->state) {
		pl_pms_redirect_release(out);
		pl_err_set(err, PL_EBADINPUT, "the redirect URL has no state");
		return pl_err_hint(err, "paste the whole URL the practice's browser landed on");
	}
	if (!out->code && !out->error) {
		pl_pms_redirect_release(out);
		return pl_err_set(err, PL_EBADINPUT,
		                  "the redirect URL has neither a code nor an error");
	}
	return 0;
}

static const char *const slots_pms[] = {"orthotrac", "dolphin", "planet dds", NULL};

/* Sikka's native free-slot search exists only for these PMSs. */
static int has_native_slots(const char *pms)
{
	char lower[128];
	size_t i;

	for (i = 0; pms[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)pms[i]);
	lower[i] = '\0';
	for (i = 0; slots_pms[i]; i++)
		if (strstr(lower, slots_pms[i]))
			return 1;
	return 0;
}

/* Use the nonce once: one conditional UPDATE, so two callbacks racing cannot both pass. */
static int consume_state(struct pl_db *db, const struct pl_state *st, struct pl_err *err)
{
	const char *params[2] = {st->nonce, st->account};
	struct pl_db_res res = PL_DB_RES_INIT;
	int r, used;

	r = pl_db_query(
	    db, &res,
	    "UPDATE oauth_states SET consumed_at = now() WHERE nonce = $1 AND account_id = $2"
	    " AND consumed_at IS NULL AND expires_at > now() RETURNING 1",
	    2, params, err);
	if (r)
		return r;
	used = pl_db_rows(&res) == 0;
	pl_db_res_clear(&res);
	if (!used)
		return 0;
	pl_err_set(err, PL_ESECURITY, "the OAuth state was already used, or was not issued here");
	return pl_err_hint(err, "start again with 'parlae sikka oauth-url %s'", st->account);
}

struct keys {
	struct pl_sikka_practice practice; /* the practice whose office the code was issued to */
	struct pl_sikka_key key;
};

/* Steps 3 and 4: code → office → practice → access on → request key. */
static int fetch_keys(struct pl_session *s, const char *account, const struct pl_pms_redirect *in,
                      struct keys *k, struct pl_err *err)
{
	struct pl_sikka sk;
	struct pl_sikka_key exchanged = {0};
	struct pl_sikka_practice *list = NULL;
	struct pl_secret code = PL_SECRET_INIT;
	size_t n = 0;
	int r;

	if ((r = pl_sikka_init(&sk, s->cfg, err)))
		return r;
	sk.account = account;
	pl_secret_set(&code, in->code, strlen(in->code));
	r = pl_sikka_request_key(&sk, PL_SIKKA_AUTHORIZATION_CODE, NULL, &code, &exchanged, err);
	if (r)
		goto out;
	if (!exchanged.issued_to[0]) {
		r = pl_err_set(err, PL_EUPSTREAM,
		               "Sikka's code exchange named no office (issued_to)");
		goto out;
	}
	/* The redirect's office_id is a query parameter anyone can edit: issued_to is the truth. */
	if (in->office_id && strcmp(in->office_id, exchanged.issued_to)) {
		r = pl_err_set(
		    err, PL_ESECURITY,
		    "the redirect's office_id does not match the office the code was issued to");
		pl_err_hint(
		    err, "the redirect URL was altered: start again with 'parlae sikka oauth-url'");
		goto out;
	}
	if ((r = pl_sikka_authorized_practices(&sk, &list, &n, err)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].office_id, exchanged.issued_to)) {
			k->practice = list[i];
			memset(&list[i].secret_key, 0, sizeof(list[i].secret_key)); /* moved */
			break;
		}
	}
	if (!k->practice.office_id[0] || !k->practice.secret_key.len) {
		r = pl_err_set(err, PL_ENOTFOUND, "no practice found: is the SPU running?");
		pl_err_hint(err, "Sikka lists no authorized practice for office %s yet",
		            exchanged.issued_to);
		goto out;
	}
	if ((r = pl_sikka_practice_location_on(&sk, k->practice.office_id, k->practice.practice_id,
	                                       err)))
		goto out;
	r = pl_sikka_request_key(&sk, PL_SIKKA_REQUEST_KEY, k->practice.office_id,
	                         &k->practice.secret_key, &k->key, err);
out:
	pl_secret_release(&code);
	pl_sikka_key_release(&exchanged);
	pl_sikka_practices_free(list, n);
	pl_sikka_release(&sk);
	return r;
}

void pl_pms_keys_release(struct pl_pms_keys *k)
{
	pl_secret_release(&k->secret_key);
	pl_secret_release(&k->request_key);
	pl_secret_release(&k->refresh_key);
	memset(k, 0, sizeof(*k));
}

static void secret_field(json_t *o, const char *key, struct pl_secret *out)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		pl_secret_set(out, json_string_value(v), json_string_length(v));
}

static time_t parse_iso(const char *s)
{
	struct tm tm = {0};

	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return 0;
	return timegm(&tm);
}

int pl_pms_keys_read(struct pl_store *st, const char *account, struct pl_pms_keys *k, char *version,
                     struct pl_err *err)
{
	struct pl_secret blob = PL_SECRET_INIT;
	struct pl_buf name = PL_BUF_INIT;
	struct pl_err perr = PL_ERR_INIT;
	json_t *o = NULL;
	char buf[64];
	int r;

	memset(k, 0, sizeof(*k));
	pl_buf_addf(&name, PL_PMS_SECRET_PREFIX "%s", account);
	r = pl_store_get(st, name.buf, NULL, &blob, version, err);
	if (!r &&
	    pl_json_parse((const char *)blob.data, blob.len, blob.len + 1, 4, "secret", &o, &perr))
		r = pl_err_set(err, PL_ECONFIG, "the secret %s is not what parlae stored",
		               name.buf);
	if (!r) {
		pl_strlcpy(k->office_id, pl_json_text0(o, "officeId", buf, sizeof(buf)),
		           sizeof(k->office_id));
		secret_field(o, "secretKey", &k->secret_key);
		secret_field(o, "requestKey", &k->request_key);
		secret_field(o, "refreshKey", &k->refresh_key);
		k->token_expiry = parse_iso(json_string_value(json_object_get(o, "tokenExpiry")));
		pl_strlcpy(k->practice_name, pl_json_text0(o, "practiceName", buf, sizeof(buf)),
		           sizeof(k->practice_name));
		pl_strlcpy(k->pms_type, pl_json_text0(o, "pmsType", buf, sizeof(buf)),
		           sizeof(k->pms_type));
		if (!k->request_key.len)
			r = pl_err_set(err, PL_ECONFIG, "the secret %s holds no request key",
			               name.buf);
	}
	pl_json_wipe_decref(o);
	pl_secret_release(&blob);
	pl_buf_release(&name);
	if (r)
		pl_pms_keys_release(k);
	return r;
}

static const char *sdata(const struct pl_secret *s)
{
	return s->len ? (const char *)s->data : "";
}

int pl_pms_keys_write(struct pl_store *st, const char *account, const struct pl_pms_keys *k,
                      const char *expected, char *version, struct pl_err *err)
{
	struct pl_secret blob = PL_SECRET_INIT;
	struct pl_buf name = PL_BUF_INIT;
	char expiry[32], *text;
	json_t *o;
	int r;

	iso_utc(k->token_expiry, expiry, sizeof(expiry));
	o = json_pack("{s:s, s:s%, s:s%, s:s%, s:s, s:s, s:s}", "officeId", k->office_id,
	              "secretKey", sdata(&k->secret_key), k->secret_key.len, "requestKey",
	              sdata(&k->request_key), k->request_key.len, "refreshKey",
	              sdata(&k->refresh_key), k->refresh_key.len, "tokenExpiry", expiry,
	              "practiceName", k->practice_name, "pmsType", k->pms_type);
	text = pl_json_dump(o);
	pl_secret_set(&blob, text, strlen(text));
	explicit_bzero(text, strlen(text));
	free(text);
	pl_json_wipe_decref(o);
	pl_buf_addf(&name, PL_PMS_SECRET_PREFIX "%s", account);
	r = pl_store_put_if(st, name.buf, &blob, expected, version, err);
	pl_secret_release(&blob);
	pl_buf_release(&name);
	return r;
}

/* Step 6: ACTIVE with the reference, in the transaction that records the success. */
static int activate(struct pl_session *s, const char *account, const struct keys *k,
                    const char *ref, const char *version, struct pl_err *err)
{
	char expiry[32];
	const char *params[8];

	iso_utc(k->key.expires_at, expiry, sizeof(expiry));
	params[0] = account;
	params[1] = k->practice.office_id;
	params[2] = k->practice.practice_name;
	params[3] = k->practice.pms_type;
	params[4] = ref;
	params[5] = version;
	params[6] = expiry;
	params[7] = has_native_slots(k->practice.pms_type) ? "true" : "false";
	return pl_db_query(
	    &s->db, NULL,
	    "UPDATE pms_integrations SET status = 'ACTIVE', office_id = $2,"
	    " practice_name = $3, pms_type = $4, secret_ref = $5, secret_version = $6,"
	    " token_expiry = $7, last_error = NULL, last_sync_at = now(),"
	    " features = features || jsonb_build_object('availableSlots', $8::boolean),"
	    " updated_at = now() WHERE account_id = $1 AND provider = 'SIKKA'",
	    8, params, err);
}

/*
 * Any failure once the account is known: ERROR with last_error and one failure event, on a
 * new connection if this one was lost (once). When even that fails, err says so; the row,
 * left CONNECTING, reads failed once its state expires (PL_ACCOUNT_ABANDONED_SQL).
 */
static void mark_failed(struct pl_session *s, const struct pl_audit_event *ev, int code,
                        struct pl_err *err)
{
	struct pl_err again = PL_ERR_INIT;
	const char *params[2] = {ev->account_id, err->msg};
	int lost, recorded;

	pl_db_rollback(&s->db);
	lost = !pl_db_alive(&s->db);
	/* A connected practice whose re-authorization failed keeps working keys. */
	recorded =
	    !pl_audit_fail(s, ev, code,
	                   "UPDATE pms_integrations SET status = CASE WHEN status ="
	                   " 'ACTIVE' THEN status ELSE 'ERROR' END, last_error = $2,"
	                   " updated_at = now() WHERE account_id = $1 AND provider = 'SIKKA'",
	                   2, params, &again);
	if (!recorded && lost) {
		char msg[sizeof(err->msg)];

		snprintf(msg, sizeof(msg), "%s; could not reconnect to record the failure: %s",
		         err->msg, again.msg);
		pl_strlcpy(err->msg, msg, sizeof(err->msg));
	}
	if (!lost)
		return;
	/* The code is spent: a retry of this callback cannot succeed, a new link can. */
	pl_err_hint(err,
	            "%sthe practice must authorize again with a new link from "
	            "'parlae sikka oauth-url %s'",
	            recorded ? "recorded as failed; " : "check that PostgreSQL is running; then ",
	            ev->account_id);
}

int pl_pms_callback(struct pl_session *s, const struct pl_pms_redirect *in,
                    struct pl_pms_callback_res *res, struct pl_err *err)
{
	struct pl_audit_event ev = {NULL, "sikka.callback", "pms_integration", NULL, NULL};
	struct pl_secret key = PL_SECRET_INIT, replaced = PL_SECRET_INIT;
	struct pl_err ignored = PL_ERR_INIT;
	struct pl_buf ref = PL_BUF_INIT, meta = PL_BUF_INIT;
	char version[PL_STORE_VERSION_MAX] = "";
	struct pl_store *store = NULL;
	struct keys k = {0};
	struct pl_state st;
	struct pl_db *db;
	int r, trusted = 0;

	memset(res, 0, sizeof(*res));
	pl_strlcpy(res->status, "failed", sizeof(res->status));
	if ((r = pl_state_key(s->cfg, &key, err)) || (r = pl_session_db(s, &db, err)))
		goto out;
	/* Step 1: the state is signed, current, and used for the first time. */
	if ((r = pl_state_verify(&key, in->state, time(NULL), &st, err))) {
		if (!s->dry_run)
			pl_audit_finish(s, &ev, r, err);
		goto out;
	}
	ev.account_id = st.account;
	pl_strlcpy(res->account, st.account, sizeof(res->account));
	pl_buf_addf(&ref, PL_PMS_SECRET_PREFIX "%s", st.account);
	ev.resource_id = ref.buf;
	if (s->dry_run) {
		pl_strlcpy(res->status, "verified", sizeof(res->status));
		goto out;
	}
	/* The code is single-use: everything that could refuse later is checked before spending it.
	 */
	{
		struct pl_sikka sk;

		if ((r = pl_sikka_init(&sk, s->cfg, err))) {
			pl_audit_finish(s, &ev, r, err);
			goto out;
		}
		pl_sikka_release(&sk);
	}
	if ((r = pl_store_open(s->cfg, &store, err)) || (r = pl_store_ready(store, err))) {
		pl_audit_finish(s, &ev, r, err);
		goto out;
	}
	if ((r = consume_state(db, &st, err))) {
		/* A replayed state says nothing about the practice: its row is left alone. */
		pl_audit_finish(s, &ev, r, err);
		goto out;
	}
	trusted = 1;
	/* Step 2: the practice said no. */
	if (in->error) {
		r = pl_err_set(err, PL_ENO, "the practice denied access: %.*s",
		               pl_utf8_cut(in->error, 100), in->error);
		goto out;
	}
	/* Steps 3-4. */
	if ((r = fetch_keys(s, st.account, in, &k, err)))
		goto out;
	pl_strlcpy(res->office_id, k.practice.office_id, sizeof(res->office_id));
	pl_strlcpy(res->practice_name, k.practice.practice_name, sizeof(res->practice_name));
	pl_strlcpy(res->pms_type, k.practice.pms_type, sizeof(res->pms_type));
	/* Step 5: the secret first; a crash after this leaves a secret no ACTIVE row points at,
	 * which the next attempt overwrites. */
	{
		struct pl_pms_keys keys = {0};

		pl_strlcpy(keys.office_id, k.practice.office_id, sizeof(keys.office_id));
		keys.secret_key = k.practice.secret_key;
		keys.request_key = k.key.request_key;
		keys.refresh_key = k.key.refresh_key;
		keys.token_expiry = k.key.expires_at;
		pl_strlcpy(keys.practice_name, k.practice.practice_name,
		           sizeof(keys.practice_name));
		pl_strlcpy(keys.pms_type, k.practice.pms_type, sizeof(keys.pms_type));
		/* A re-authorization keeps what it replaces, to put it back if step 6 fails. */
		if (pl_store_get(store, ref.buf, NULL, &replaced, NULL, &ignored))
			pl_secret_release(&replaced);
		/* keys borrows k's secrets: k releases them. */
		if ((r = pl_pms_keys_write(store, st.account, &keys, NULL, version, err)))
			goto out;
	}
	/* Step 6. */
	{
		json_t *m = json_pack("{s:s, s:s, s:s}", "officeId", k.practice.office_id,
		                      "pmsType", k.practice.pms_type, "secretVersion", version);
		char *text = pl_json_dump(m);

		pl_buf_adds(&meta, text ? text : "{}");
		free(text);
		json_decref(m);
	}
	ev.metadata = meta.buf;
	if (!(r = pl_db_begin(db, err)) &&
	    !(r = activate(s, st.account, &k, ref.buf, version, err)) &&
	    !(r = pl_audit_append(s, &ev, PL_OK, err)))
		r = pl_db_commit(db, err);
	if (!r)
		pl_strlcpy(res->status, "connected", sizeof(res->status));
out:
	/* The row still names the keys it had: the store must hold them again. */
	if (r && version[0] && replaced.len) {
		char restored[PL_STORE_VERSION_MAX];

		pl_store_put_if(store, ref.buf, &replaced, version, restored, &ignored);
	}
	if (r && trusted)
		mark_failed(s, &ev, r, err);
	pl_secret_release(&replaced);
	pl_store_close(store);
	pl_secret_release(&key);
	pl_secret_release(&k.practice.secret_key);
	pl_sikka_key_release(&k.key);
	pl_buf_release(&ref);
	pl_buf_release(&meta);
	return r;
}

/* --- status ---------------------------------------------------------------------------------- */

void pl_pms_status_release(struct pl_pms_status *st)
{
	free(st->practice_name);
	free(st->pms_type);
	free(st->office_id);
	free(st->last_error);
	memset(st, 0, sizeof(*st));
}

static char *dup_or_null(const char *s)
{
	return s ? pl_xstrdup(s) : NULL;
}

/*
 * The account's status as it reads (see PL_ACCOUNT_STATUS_SQL). *valid_for: while connecting,
 * how many seconds until its last OAuth state expires and it reads failed; else -1.
 */
static int read_status(struct pl_db *db, const char *account, struct pl_pms_status *st,
                       double *valid_for, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	const char *v;
	int r;

	pl_pms_status_release(st);
	r = pl_db_query(
	    db, &res,
	    "SELECT " PL_ACCOUNT_STATUS_SQL ", p.practice_name, p.pms_type, p.office_id,"
	    " " PL_ACCOUNT_ERROR_SQL ","
	    " to_char(p.token_expiry AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " to_char(p.last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " (SELECT extract(epoch FROM max(o.expires_at) - now()) FROM oauth_states o"
	    " WHERE o.account_id = p.account_id AND o.provider = p.provider),"
	    " p.account_id IS NOT NULL"
	    " FROM accounts a LEFT JOIN pms_integrations p"
	    " ON p.account_id = a.id AND p.provider = 'SIKKA' WHERE a.id = $1",
	    1, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res) == 0) {
		pl_db_res_clear(&res);
		return pl_account_missing(db, account, err);
	}
	pl_strlcpy(st->account, account, sizeof(st->account));
	pl_strlcpy(st->status, pl_account_status_name(pl_db_val(&res, 0, 0)), sizeof(st->status));
	pl_strlcpy(st->provider, "SIKKA", sizeof(st->provider));
	st->practice_name = dup_or_null(pl_db_val(&res, 0, 1));
	st->pms_type = dup_or_null(pl_db_val(&res, 0, 2));
	st->office_id = dup_or_null(pl_db_val(&res, 0, 3));
	st->last_error = dup_or_null(pl_db_val(&res, 0, 4));
	v = pl_db_val(&res, 0, 5);
	pl_strlcpy(st->token_expiry, v ? v : "", sizeof(st->token_expiry));
	v = pl_db_val(&res, 0, 6);
	pl_strlcpy(st->last_sync_at, v ? v : "", sizeof(st->last_sync_at));
	v = pl_db_val(&res, 0, 7);
	*valid_for = v && !strcmp(st->status, "connecting") ? strtod(v, NULL) : -1;
	v = pl_db_val(&res, 0, 8);
	st->set_up = v && !strcmp(v, "t");
	pl_db_res_clear(&res);
	return 0;
}

int pl_pms_status(struct pl_session *s, const char *account, struct pl_pms_status *st,
                  struct pl_err *err)
{
	struct pl_db *db;
	double valid_for;
	int r;

	memset(st, 0, sizeof(*st));
	if ((r = pl_account_check_id(account, err)) || (r = pl_session_db(s, &db, err)))
		return r;
	return read_status(db, account, st, &valid_for, err);
}

static int settled(const struct pl_pms_status *st)
{
	return !strcmp(st->status, "connected") || !strcmp(st->status, "failed");
}

int pl_pms_wait(struct pl_session *s, const char *account, double timeout, struct pl_pms_status *st,
                struct pl_err *err)
{
	double deadline = pl_monotonic() + timeout, valid_for, expires;
	struct pl_db *db;
	int r, notified;

	memset(st, 0, sizeof(*st));
	if ((r = pl_account_check_id(account, err)) || (r = pl_session_db(s, &db, err)))
		return r;
	/* LISTEN before the first read, so a change between the two is not missed. */
	if ((r = pl_db_listen(db, "parlae_pms", err)))
		return r;
	for (;;) {
		double now, until;

		if ((r = read_status(db, account, st, &valid_for, err)) || settled(st))
			return r;
		if (!st->set_up) {
			pl_err_set(err, PL_ENOTFOUND, "account '%s' has no integration to wait for",
			           account);
			return pl_err_hint(err, "run 'parlae pms setup %s' first", account);
		}
		/* Nothing notifies when the last state expires: look again then, it reads failed.
		 */
		expires = valid_for >= 0 ? pl_monotonic() + valid_for : deadline;
		do {
			now = pl_monotonic();
			if (now >= deadline) {
				pl_err_set(err, PL_ETIMEOUT, "account '%s' is still %s after %g s",
				           account, st->status, timeout);
				return pl_err_hint(err, "finish the authorization in the browser, "
				                        "or wait longer with --wait=SECONDS");
			}
			until = expires < deadline ? expires : deadline;
			if ((r = pl_db_wait(db, until > now ? (long)((until - now) * 1000) + 1 : 0,
			                    &notified, err)))
				return r;
		} while (!notified && pl_monotonic() < expires);
	}
}
