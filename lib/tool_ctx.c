/*
 * What every tool handler shares: the practice's integration and clock, one Sikka call path
 * with its keys (refreshed once when expired) and the call's time budget, finding patients,
 * the caller rule, and waiting for a writeback.
 */
#include "tool.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "pms.h"
#include "rotate.h"
#include "sikka.h"
#include "store.h"
#include "utf8.h"
#include "vapi.h"
#include "banned.h"

#define DEFAULT_WRITEBACK_WAIT 10.0 /* seconds: Vapi gives a tool 20 */
#define REFRESH_LOCK_WAIT_MS   5000

/* --- small helpers ----------------------------------------------------------------------- */

json_t *pl_tool_result(int success, const char *message)
{
	return pl_json_x(json_pack("{s:b, s:s}", "success", success, "message", message));
}

int pl_tool_bad_args(struct pl_err *err, const char *tool, const char *what)
{
	return pl_err_set(err, PL_EBADINPUT, "%s: %s", tool, what);
}

/*
 * The value of s when it is nothing but ASCII digits (no sign, no space) and at most max, else -1.
 * Numbers from arguments and from upstream answers go through here: atoi read "30abc" as 30.
 */
long long pl_tool_digits(const char *s, long long max)
{
	long long v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	return v;
}

void pl_tool_hhmm(int minutes, char out[6])
{
	snprintf(out, 6, "%02d:%02d", (minutes / 60) % 100, minutes % 60);
}

/* Days since the epoch of a YYYY-MM-DD date, or -1. */
int pl_tool_date_shape(const char *s)
{
	static const char shape[] = "dddd-dd-dd";

	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
			return 0;
	return 1;
}

long pl_tool_day(const char *date)
{
	struct tm tm = {0};
	const char *end;
	time_t t;
	int mday;

	if (!date || strlen(date) < 10 || !(end = strptime(date, "%Y-%m-%d", &tm)) ||
	    (*end && *end != 'T' && *end != ' '))
		return -1;
	/*
	 * strptime takes any day up to 31, and timegm moves 2026-02-30 on to 2026-03-02 (in tm
	 * too): a day that is not in its month is no date, here or at Sikka.
	 */
	mday = tm.tm_mday;
	t = timegm(&tm);
	if (tm.tm_mday != mday)
		return -1;
	return (long)(t / 86400);
}

void pl_tool_date(long day, char out[11])
{
	time_t t = (time_t)day * 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

static const char *const weekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

const char *pl_tool_weekday(long day)
{
	return weekdays[((day % 7) + 11) % 7]; /* 1970-01-01 was a Thursday */
}

/* --- the practice: configuration, clock, keys ---------------------------------------------- */

#define INTEGRATION_COLS                                                                           \
	"status, config::text, coalesce(pms_type, ''),"                                            \
	" coalesce(features->>'availableSlots', 'false')"

/* The integration's row (INTEGRATION_COLS first) into c; PL_ENOTFOUND when not connected. */
static int integration_from(struct pl_tool_ctx *c, const struct pl_db_res *res, struct pl_err *err)
{
	const char *cfg, *pms, *slots;
	json_t *config;

	if (pl_db_rows(res) == 0 || strcmp(pl_db_val(res, 0, 0), "ACTIVE")) {
		pl_err_set(err, PL_ENOTFOUND, "account '%s' is not connected to Sikka", c->account);
		return pl_err_hint(err, "see 'parlae status %s'", c->account);
	}
	cfg = pl_db_val(res, 0, 1);
	pms = pl_db_val(res, 0, 2);
	slots = pl_db_val(res, 0, 3);
	config = json_loads(cfg, 0, NULL);
	/* Cut between characters: the name goes into results. */
	pl_utf8_copy(c->timezone, sizeof(c->timezone),
	             json_string_value(json_object_get(config, "timezone")) ?: "UTC");
	c->hours = json_incref(json_object_get(config, "hours"));
	json_decref(config);
	snprintf(c->pms_type, sizeof(c->pms_type), "%s", pms);
	c->native_slots = !strcmp(slots, "true");
	return 0;
}

int pl_tool_load_integration(struct pl_tool_ctx *c, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {c->account};
	int r;

	r = pl_db_query(c->db, &res,
	                "SELECT " INTEGRATION_COLS
	                " FROM pms_integrations WHERE account_id = $1 AND provider = 'SIKKA'",
	                1, params, err);
	if (!r)
		r = integration_from(c, &res, err);
	pl_db_res_clear(&res);
	return r;
}

int pl_tool_load_practice(struct pl_tool_ctx *c, int *icode, struct pl_err *ierr,
                          struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	struct pl_err e = PL_ERR_INIT;
	char epoch[32];
	const char *params[2] = {c->account, epoch};
	int r;

	snprintf(epoch, sizeof(epoch), "%lld", (long long)c->now);
	/* The zone as pl_tool_load_integration reads it: a string, else UTC. */
	r = pl_db_query(c->db, &res,
	                "SELECT " INTEGRATION_COLS
	                ", to_char(t, 'YYYY-MM-DD'), to_char(t, 'HH24:MI')"
	                " FROM pms_integrations, LATERAL (SELECT to_timestamp($2::bigint) AT TIME"
	                " ZONE CASE WHEN jsonb_typeof(config->'timezone') = 'string'"
	                " THEN config->>'timezone' ELSE 'UTC' END AS t) l"
	                " WHERE account_id = $1 AND provider = 'SIKKA'",
	                2, params, &e);
	if (r) {
		/* A zone PostgreSQL does not know, say: one step at a time tells which failed. */
		*icode = pl_tool_load_integration(c, ierr);
		return *icode ? 0 : pl_tool_local_clock(c, err);
	}
	if (!(*icode = integration_from(c, &res, ierr))) {
		snprintf(c->today, sizeof(c->today), "%s", pl_db_val(&res, 0, 4));
		c->now_minute = pl_hhmm(pl_db_val(&res, 0, 5), 0);
	}
	pl_db_res_clear(&res);
	return 0;
}

/* The practice's local date and time of `now`, from PostgreSQL's zone database. */
int pl_tool_local_clock(struct pl_tool_ctx *c, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	char epoch[32];
	const char *params[2] = {epoch, c->timezone};
	int r;

	snprintf(epoch, sizeof(epoch), "%lld", (long long)c->now);
	r = pl_db_query(c->db, &res,
	                "SELECT to_char(to_timestamp($1::bigint) AT TIME ZONE $2, 'YYYY-MM-DD'),"
	                " to_char(to_timestamp($1::bigint) AT TIME ZONE $2, 'HH24:MI')",
	                2, params, err);
	if (r)
		return r;
	snprintf(c->today, sizeof(c->today), "%s", pl_db_val(&res, 0, 0));
	c->now_minute = pl_hhmm(pl_db_val(&res, 0, 1), 0);
	pl_db_res_clear(&res);
	return 0;
}

static int load_keys(struct pl_tool_ctx *c, struct pl_err *err)
{
	int r;

	if (c->keys_loaded)
		return 0;
	if (!c->store && (r = pl_store_open(c->s->cfg, &c->store, err)))
		return r;
	if (!c->sk.base) {
		if ((r = pl_sikka_init(&c->sk, c->s->cfg, err)))
			return r;
		c->sk.account = c->account; /* named in the remedy of a refusal */
		/* vapi listen keeps one handle per thread: no new connection per call. */
		if (c->s->curl)
			pl_http_borrow(&c->sk.http, c->s->curl);
	}
	pl_pms_keys_release(&c->keys);
	if ((r = pl_pms_keys_read(c->store, c->account, &c->keys, c->version, err)))
		return r;
	c->keys_loaded = 1;
	if (!c->timeout_ms) {
		c->timeout_ms = c->sk.http.timeout_ms;
		c->retries = c->sk.http.max_retries;
	}
	return 0;
}

/*
 * Within a call's budget each request gets only the time left, retries included (none at all
 * for a tool that writes: a booking is never sent twice, and its lookups keep it short).
 */
static int within_budget(struct pl_tool_ctx *c, struct pl_err *err)
{
	c->sk.http.timeout_ms = c->timeout_ms;
	c->sk.http.max_retries = (int)c->retries;
	c->sk.http.deadline = c->deadline;
	if (!c->deadline)
		return 0;
	if (c->deadline - pl_monotonic() < 0.5)
		return pl_err_set(err, PL_ETIMEOUT,
		                  "the tool call ran out of time (Vapi waits %d s)", c->timeout_s);
	if (c->writeback)
		c->sk.http.max_retries = 0;
	return 0;
}

/* One request to Sikka, its time added to what the session waited on upstreams. */
static int timed_data(struct pl_tool_ctx *c, const char *method, const char *path,
                      const char *query, const char *body, json_t **doc, struct pl_err *err)
{
	double t0 = pl_monotonic();
	int r = pl_sikka_data(&c->sk, method, path, query, body, &c->keys.request_key, doc, err);

	c->s->upstream_s += pl_monotonic() - t0;
	return r;
}

/*
 * A data call. An expired request key (400 API1025) is refreshed once, through the same
 * locked path as `secrets rotate`, and the call retried with the new key.
 */
int pl_tool_sikka(struct pl_tool_ctx *c, const char *method, const char *path, const char *query,
                  const char *body, json_t **doc, struct pl_err *err)
{
	struct pl_rotate_req rq = {c->account, NULL, 0, 0, REFRESH_LOCK_WAIT_MS};
	struct pl_rotate_res rs;
	struct pl_buf q = PL_BUF_INIT;
	int r;

	if ((r = load_keys(c, err)) || (r = within_budget(c, err)))
		return r;
	/* A read of a multi-location office's data is the onboarded location's. */
	if (!strcmp(method, "GET") && c->keys.practice_id[0] &&
	    strcmp(path, "/v4/writeback_status") && !(query && strstr(query, "practice_id="))) {
		pl_buf_addf(&q, "%s%spractice_id=%s", query ? query : "", query ? "&" : "",
		            c->keys.practice_id);
		query = q.buf;
	}
	r = timed_data(c, method, path, query, body, doc, err);
	if (!r || !pl_sikka_key_expired(&c->sk) || c->refreshed)
		goto out;
	c->refreshed = 1;
	rq.stale_version = c->version;
	if ((r = pl_rotate_account(c->s, c->store, &c->sk, &rq, &rs, err)))
		goto out;
	c->keys_loaded = 0;
	if ((r = load_keys(c, err)))
		goto out;
	r = timed_data(c, method, path, query, body, doc, err);
out:
	pl_buf_release(&q);
	return r;
}

int pl_tool_practice_id(struct pl_tool_ctx *c, char *buf, size_t size, struct pl_err *err)
{
	int r;

	if ((r = load_keys(c, err)))
		return r;
	if (c->keys.practice_id[0]) {
		pl_strlcpy(buf, c->keys.practice_id, size);
		return 0;
	}
	if (!pl_tool_first_id(c, "/v4/practices", "practice_id", buf, size, err, &r)) {
		if (r)
			return r;
		pl_strlcpy(buf, "1", size);
	}
	return 0;
}

json_t *pl_tool_items(json_t *doc)
{
	json_t *it = json_object_get(doc, "items");

	return json_is_array(it) ? it : NULL;
}

const char *pl_tool_field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* --- patients and the caller rule ---------------------------------------------------------- */

static const char *const phone_fields[] = {"cell", "phone", "homephone", "workphone", NULL};

int pl_tool_patient_has_phone(const json_t *p, const char *digits)
{
	char d[32];

	for (size_t i = 0; phone_fields[i]; i++) {
		pl_phone_digits(pl_tool_field(p, phone_fields[i]), d, sizeof(d));
		if (*d && !strcmp(d, digits))
			return 1;
	}
	return 0;
}

/*
 * Patients matching the arguments. A phone is matched exactly (E.164) after a broad search.
 * *found is a new array on success, NULL on failure.
 */
int pl_tool_find_patients(struct pl_tool_ctx *c, const char *query, const char *phone,
                          const char *first, const char *last, const char *dob, json_t **found,
                          struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	char digits[32] = "";
	json_t *doc = NULL, *p;
	size_t i;
	int r;

	*found = NULL;
	if (phone)
		pl_phone_digits(phone, digits, sizeof(digits));
	else if (query)
		pl_phone_digits(query, digits, sizeof(digits));
	if (*digits) {
		char *e =
		    pl_http_escape(strlen(digits) > 10 ? digits + strlen(digits) - 10 : digits);

		pl_buf_addf(&q, "search=%s", e);
		free(e);
	} else if (query) {
		char *e = pl_http_escape(query);

		pl_buf_addf(&q, "%s=%s", strchr(query, '@') ? "email" : "search", e);
		free(e);
	} else if (first && last) {
		char *f = pl_http_escape(first), *l = pl_http_escape(last);

		pl_buf_addf(&q, "firstname=%s&lastname=%s", f, l);
		free(f);
		free(l);
	} else {
		/* A phone with no digits and no name to go by: nobody matches (it crashed). */
		*found = pl_json_x(json_array());
		return 0;
	}
	r = pl_tool_sikka(c, "GET", "/v4/patients", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	*found = pl_json_x(json_array());
	json_array_foreach(pl_tool_items(doc), i, p)
	{
		const char *bd = pl_tool_field(p, "birthdate");

		if (*digits && !pl_tool_patient_has_phone(p, digits))
			continue;
		/* Family members share a phone: the names given must match too. */
		if (*digits && first && last &&
		    (!pl_tool_field(p, "firstname") ||
		     strcasecmp(pl_tool_field(p, "firstname"), first) ||
		     !pl_tool_field(p, "lastname") ||
		     strcasecmp(pl_tool_field(p, "lastname"), last)))
			continue;
		if (dob && bd && strncmp(bd, dob, 10))
			continue;
		pl_json_append(*found, json_incref(p));
	}
	json_decref(doc);
	return 0;
}

/* The patient with exactly this id (a new reference), or NULL when Sikka has none. */
int pl_tool_patient_by_id(struct pl_tool_ctx *c, const char *id, json_t **patient,
                          struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	json_t *doc = NULL, *p;
	char *e = pl_http_escape(id);
	size_t i;
	int r;

	*patient = NULL;
	pl_buf_addf(&q, "patient_id=%s", e);
	free(e);
	r = pl_tool_sikka(c, "GET", "/v4/patients", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	/* The filter is Sikka's: only an exact id is taken, should it ever answer more. */
	json_array_foreach(pl_tool_items(doc), i, p)
	{
		if (pl_tool_field(p, "patient_id") && !strcmp(pl_tool_field(p, "patient_id"), id)) {
			*patient = json_incref(p);
			break;
		}
	}
	json_decref(doc);
	return 0;
}

/*
 * Whose data a call may touch: a patient's record or appointments only for the patient whose
 * phone is the caller's number, or for the operator's own direct invoke (no --caller). *ok
 * says whether this call may act for patient_id; c->rule records which rule decided.
 */
int pl_tool_caller_may_act_for(struct pl_tool_ctx *c, const char *patient_id, int *ok,
                               struct pl_err *err)
{
	char caller[32] = "";
	json_t *p = NULL;
	int r;

	*ok = 0;
	if (c->operator_access) {
		c->rule = "operator";
		*ok = 1;
		return 0;
	}
	c->rule = "unverified-caller";
	pl_phone_digits(c->caller, caller, sizeof(caller));
	if (!*caller)
		return 0; /* nobody to compare: not verified, and Sikka is not asked */
	if ((r = pl_tool_patient_by_id(c, patient_id, &p, err)))
		return r;
	*ok = p && pl_tool_caller_is(c, p);
	json_decref(p);
	return 0;
}

int pl_tool_caller_is(struct pl_tool_ctx *c, const json_t *patient)
{
	char caller[32] = "";
	int verified;

	pl_phone_digits(c->caller, caller, sizeof(caller));
	verified = *caller && pl_tool_patient_has_phone(patient, caller);
	c->rule = c->operator_access ? "operator"
	          : verified         ? "verified-caller"
	                             : "unverified-caller";
	return verified || c->operator_access;
}

const char *pl_tool_first_id(struct pl_tool_ctx *c, const char *path, const char *field, char *buf,
                             size_t size, struct pl_err *err, int *r)
{
	json_t *doc = NULL;
	const char *v;

	*r = pl_tool_sikka(c, "GET", path, NULL, NULL, &doc, err);
	if (*r)
		return NULL;
	v = pl_tool_field(json_array_get(pl_tool_items(doc), 0), field);
	if (v)
		snprintf(buf, size, "%s", v);
	json_decref(doc);
	return v ? buf : NULL;
}

/* --- writebacks ---------------------------------------------------------------------------- */

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	nanosleep(&ts, NULL);
}

int pl_tool_writeback_id(const json_t *doc, const char *what, char *buf, size_t size,
                         struct pl_err *err)
{
	const char *lm = pl_tool_field(doc, "long_message"), *id = lm ? strstr(lm, "Id:") : NULL;

	*buf = '\0';
	if (id && id[3])
		snprintf(buf, size, "%.*s", pl_utf8_cut(id + 3, size > 2 ? size - 2 : 0), id + 3);
	if (!*buf)
		return pl_err_set(err, PL_EUPSTREAM,
		                  "Sikka accepted the %s but named no writeback id", what);
	return 0;
}

/* Poll the writeback until it completes or the bound passes; *item gets the last answer. */
static int poll_writeback(struct pl_tool_ctx *c, const char *id, json_t **item, struct pl_err *err)
{
	const char *env = pl_config_get(c->s->cfg, "PARLAE_WRITEBACK_WAIT");
	double bound = env ? atof(env) : DEFAULT_WRITEBACK_WAIT, deadline, pause = 0.25;
	struct pl_buf q = PL_BUF_INIT;
	char *e;
	int r = 0;

	if (!(bound > 0) || bound > DEFAULT_WRITEBACK_WAIT)
		bound = DEFAULT_WRITEBACK_WAIT;
	deadline = pl_monotonic() + bound;
	/* Never past the call's own budget: an answer after it would not be heard. */
	if (c->deadline && c->deadline - 0.5 < deadline)
		deadline = c->deadline - 0.5;
	e = pl_http_escape(id);
	pl_buf_addf(&q, "id=%s", e);
	free(e);
	*item = NULL;
	for (;;) {
		json_t *doc = NULL;
		const char *done;

		if ((r = pl_tool_sikka(c, "GET", "/v4/writeback_status", q.buf, NULL, &doc, err)))
			break;
		json_decref(*item);
		*item = json_incref(json_array_get(pl_tool_items(doc), 0));
		json_decref(doc);
		done = pl_tool_field(*item, "is_completed");
		if ((done && !strcasecmp(done, "true")) || pl_monotonic() + pause > deadline)
			break;
		sleep_s(pause);
		pause = pause < 1 ? pause * 2 : 1;
	}
	pl_buf_release(&q);
	return r;
}

void pl_tool_writeback_wait(struct pl_tool_ctx *c, const char *id, enum pl_writeback *state,
                            char *created, size_t csize, char *reason, size_t rsize)
{
	struct pl_err err = PL_ERR_INIT;
	json_t *item = NULL;
	const char *done, *failed, *v;

	/* The write was accepted: if polling fails now, it is pending, not failed. */
	(void)poll_writeback(c, id, &item, &err);
	done = pl_tool_field(item, "is_completed");
	failed = pl_tool_field(item, "has_error");
	if (created && csize)
		*created = '\0';
	if (reason && rsize)
		*reason = '\0';
	if (!done || strcasecmp(done, "true")) {
		*state = PL_WB_PENDING;
	} else if (failed && !strcasecmp(failed, "true")) {
		*state = PL_WB_FAILED;
		v = pl_tool_field(item, "result");
		if (reason && rsize)
			pl_utf8_copy(reason, rsize, v ? v : "failed");
	} else {
		*state = PL_WB_DONE;
		v = pl_tool_field(item, "created_id");
		if (created && csize && v)
			pl_utf8_copy(created, csize, v);
	}
	json_decref(item);
}

/* --- the context ----------------------------------------------------------------------------- */

void pl_tool_end_budget(struct pl_tool_ctx *c)
{
	c->deadline = 0;
	c->writeback = 0;
	if (c->keys_loaded) {
		c->sk.http.timeout_ms = c->timeout_ms;
		c->sk.http.max_retries = (int)c->retries;
		c->sk.http.deadline = 0;
	}
}

void pl_tool_ctx_release(struct pl_tool_ctx *c)
{
	json_decref(c->hours);
	c->hours = NULL;
	pl_pms_keys_release(&c->keys);
	if (c->sk.base)
		pl_sikka_release(&c->sk);
	pl_store_close(c->store);
	c->store = NULL;
}

/* --- the database -------------------------------------------------------------------------- */

int pl_tool_db(struct pl_tool_ctx *c, struct pl_err *err)
{
	return pl_session_db(c->s, &c->db, err);
}

/* --- the staff ----------------------------------------------------------------------------- */

int pl_tool_staff(struct pl_tool_ctx *c, char *staff, size_t size, int *enabled, struct pl_err *err)
{
	const char *params[2] = {c->account, c->phone_id};
	struct pl_db_res res = PL_DB_RES_INIT;
	int r;

	*staff = '\0';
	*enabled = 0;
	if ((r = pl_tool_db(c, err)))
		return r;
	/* The number the call came in on first, else the account's first with a staff number. */
	r = pl_db_query(c->db, &res,
	                "SELECT staff_forward_number, transfer_enabled FROM vapi_phone_numbers"
	                " WHERE account_id = $1 AND staff_forward_number IS NOT NULL"
	                " ORDER BY (vapi_phone_id = $2) IS TRUE DESC, vapi_phone_id LIMIT 1",
	                2, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res)) {
		snprintf(staff, size, "%s", pl_db_val(&res, 0, 0));
		*enabled = !strcmp(pl_db_val(&res, 0, 1), "t");
	}
	pl_db_res_clear(&res);
	return 0;
}

/*
 * The length in bytes of the longest prefix of s (valid UTF-8) that Twilio counts as at most max
 * characters. A character beyond U+FFFF counts twice (two UTF-16 units, as Twilio may count it),
 * so that the cut is short enough whichever way it counts.
 */
size_t pl_tool_sms_cut(const char *s, size_t max)
{
	size_t i = 0, units = 0;

	while (s[i]) {
		size_t n = 1, w = (unsigned char)s[i] >= 0xf0 ? 2 : 1;

		while (s[i + n] && ((unsigned char)s[i + n] & 0xc0) == 0x80)
			n++;
		if (units + w > max)
			break;
		units += w;
		i += n;
	}
	return i;
}

/* The bytes of the control character at r (C0, DEL, C1, U+2028, U+2029), or 0. */
static size_t control_at(const unsigned char *r)
{
	if (*r < 0x20 || *r == 0x7f)
		return 1;
	if (r[0] == 0xc2 && r[1] >= 0x80 && r[1] <= 0x9f)
		return 2; /* C1: U+0080-U+009F */
	if (r[0] == 0xe2 && r[1] == 0x80 && (r[2] == 0xa8 || r[2] == 0xa9))
		return 3; /* U+2028, U+2029: a new line on the staff's phone */
	return 0;
}

int pl_tool_is_plain(const char *s)
{
	for (const unsigned char *r = (const unsigned char *)s; r && *r; r++)
		if (control_at(r))
			return 0;
	return 1;
}

void pl_tool_plain(char *s)
{
	char *w = s;

	for (const unsigned char *r = (const unsigned char *)s; *r;) {
		size_t n = control_at(r);

		if (n) {
			*w++ = ' ';
			r += n;
		} else {
			*w++ = (char)*r++;
		}
	}
	*w = '\0';
}

json_t *pl_tool_string(const char *s)
{
	size_t size = 3 * strlen(s) + 1; /* each invalid byte may become U+FFFD, 3 bytes */
	char *copy = pl_xmalloc(size);
	json_t *v;

	pl_utf8_copy(copy, size, s);
	v = pl_json_x(json_string(copy));
	free(copy);
	return v;
}
