#include "tools.h"

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
#include "pms.h"
#include "rotate.h"
#include "sikka.h"
#include "store.h"
#include "twilio.h"
#include "utf8.h"
#include "banned.h"

#define DEFAULT_DURATION       30
#define DEFAULT_WRITEBACK_WAIT 10.0 /* seconds: Vapi gives a tool 20 */
#define REFRESH_LOCK_WAIT_MS   5000
#define BOOKING_BUDGET         18.0 /* seconds, of Vapi's 20 */
#define MIN_DURATION           5
#define MAX_DURATION           480  /* minutes: a tool's duration argument */
#define MAX_UPSTREAM_MINUTES   1440 /* an appointment's length from Sikka: at most a day */
#define ID_MAX                 64
#define SMS_MAX_CHARS          1600 /* Twilio's limit for one (concatenated) message */

struct ctx {
	struct pl_session *s;
	struct pl_db *db;
	const char *account;
	const char *caller;
	int operator_access;
	const char *rule; /* which access rule let this tool call see a patient, for the audit */
	const char *call_id;
	const char *phone_id;
	time_t now;
	char today[11]; /* the practice's local date, YYYY-MM-DD */
	int now_minute; /* minutes since local midnight */
	char timezone[64];
	json_t *hours; /* {"mon":[["08:00","12:00"]],...} */
	char pms_type[128];
	int native_slots;
	/* The practice's keys, loaded on the first Sikka call. */
	int keys_loaded, refreshed;
	double deadline;          /* a booking's budget (monotonic seconds), 0 when none */
	long timeout_ms, retries; /* the HTTP limits configured, restored after a booking */
	struct pl_store *store;
	struct pl_sikka sk;
	struct pl_pms_keys keys;
	char version[PL_STORE_VERSION_MAX];
};

/* --- small helpers ----------------------------------------------------------------------- */

static json_t *result(int success, const char *message)
{
	return pl_json_x(json_pack("{s:b, s:s}", "success", success, "message", message));
}

static int bad_args(struct pl_err *err, const char *tool, const char *what)
{
	return pl_err_set(err, PL_EBADINPUT, "%s: %s", tool, what);
}

/*
 * The value of s when it is nothing but ASCII digits (no sign, no space) and at most max, else -1.
 * Numbers from arguments and from upstream answers go through here: atoi read "30abc" as 30.
 */
static long long digits_value(const char *s, long long max)
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

/*
 * A whole-number argument: a JSON integer or a string of digits, from min to max. Absent (or
 * null, or "", as for text arguments) leaves *v at dflt. -1 for anything else: "30abc", "-5",
 * 30.5, true, an object, or a number out of range.
 */
static int arg_number(const json_t *args, const char *name, long long min, long long max,
                      long long dflt, long long *v)
{
	const json_t *a = pl_vapi_arg(args, name);
	long long n;

	*v = dflt;
	if (!a || json_is_null(a) || (json_is_string(a) && !*json_string_value(a)))
		return 0;
	if (json_is_integer(a))
		n = json_integer_value(a);
	else if (json_is_string(a))
		n = digits_value(json_string_value(a), max);
	else
		return -1;
	if (n < min || n > max)
		return -1;
	*v = n;
	return 0;
}

/*
 * An id argument (patientId, providerId): a JSON integer not below zero, or a string of 1 to 64
 * letters, digits, '.', '_' or '-'. *out is NULL when absent, else borrowed or in buf (at least
 * ID_MAX + 1 bytes). -1 for anything else.
 */
static int arg_id(const json_t *args, const char *name, char *buf, size_t size, const char **out)
{
	const json_t *a = pl_vapi_arg(args, name);
	const char *s;

	*out = NULL;
	if (!a || json_is_null(a) || (json_is_string(a) && !*json_string_value(a)))
		return 0;
	if (json_is_integer(a)) {
		if (json_integer_value(a) < 0)
			return -1;
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(a));
		*out = buf;
		return 0;
	}
	if (!json_is_string(a) || strlen(s = json_string_value(a)) > ID_MAX)
		return -1;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return -1;
	*out = s;
	return 0;
}

static void hhmm(int minutes, char out[6])
{
	snprintf(out, 6, "%02d:%02d", (minutes / 60) % 100, minutes % 60);
}

/* Days since the epoch of a YYYY-MM-DD date, or -1. */
static long day_number(const char *date)
{
	struct tm tm = {0};
	const char *end;

	if (!date || strlen(date) < 10 || !(end = strptime(date, "%Y-%m-%d", &tm)) ||
	    (*end && *end != 'T' && *end != ' '))
		return -1;
	return (long)(timegm(&tm) / 86400);
}

static void date_of(long day, char out[11])
{
	time_t t = (time_t)day * 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

static const char *const weekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const char *weekday(long day)
{
	return weekdays[((day % 7) + 11) % 7]; /* 1970-01-01 was a Thursday */
}

/* --- the practice: configuration, clock, keys ---------------------------------------------- */

static int load_integration(struct ctx *c, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {c->account};
	const char *cfg, *pms, *slots;
	json_t *config;
	int r;

	r = pl_db_query(c->db, &res,
	                "SELECT status, config::text, coalesce(pms_type, ''),"
	                " coalesce(features->>'availableSlots', 'false')"
	                " FROM pms_integrations WHERE account_id = $1 AND provider = 'SIKKA'",
	                1, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res) == 0 || strcmp(pl_db_val(&res, 0, 0), "ACTIVE")) {
		pl_db_res_clear(&res);
		pl_err_set(err, PL_ENOTFOUND, "account '%s' is not connected to Sikka", c->account);
		return pl_err_hint(err, "see 'parlae status %s'", c->account);
	}
	cfg = pl_db_val(&res, 0, 1);
	pms = pl_db_val(&res, 0, 2);
	slots = pl_db_val(&res, 0, 3);
	config = json_loads(cfg, 0, NULL);
	snprintf(c->timezone, sizeof(c->timezone), "%s",
	         json_string_value(json_object_get(config, "timezone")) ?: "UTC");
	c->hours = json_incref(json_object_get(config, "hours"));
	json_decref(config);
	snprintf(c->pms_type, sizeof(c->pms_type), "%s", pms);
	c->native_slots = !strcmp(slots, "true");
	pl_db_res_clear(&res);
	return 0;
}

/* The practice's local date and time of `now`, from PostgreSQL's zone database. */
static int local_clock(struct ctx *c, struct pl_err *err)
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

static int load_keys(struct ctx *c, struct pl_err *err)
{
	int r;

	if (c->keys_loaded)
		return 0;
	if (!c->store && (r = pl_store_open(c->s->cfg, &c->store, err)))
		return r;
	if (!c->sk.base && (r = pl_sikka_init(&c->sk, c->s->cfg, err)))
		return r;
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
 * A data call. An expired request key (400 API1025) is refreshed once, through the same
 * locked path as `secrets rotate`, and the call retried with the new key.
 */
/* Within a booking's budget, each request gets only the time left and no retries. */
static int within_budget(struct ctx *c, struct pl_err *err)
{
	double left;

	c->sk.http.timeout_ms = c->timeout_ms;
	c->sk.http.max_retries = (int)c->retries;
	if (!c->deadline)
		return 0;
	left = c->deadline - pl_monotonic();
	if (left < 0.5)
		return pl_err_set(err, PL_ETIMEOUT,
		                  "the booking ran out of time (Vapi waits 20 s)");
	if ((long)(left * 1000) < c->timeout_ms)
		c->sk.http.timeout_ms = (long)(left * 1000);
	c->sk.http.max_retries = 0;
	return 0;
}

static int sikka_call(struct ctx *c, const char *method, const char *path, const char *query,
                      const char *body, json_t **doc, struct pl_err *err);

/* A read of a multi-location office's data is the onboarded location's (practice_id). */
static int sikka(struct ctx *c, const char *method, const char *path, const char *query,
                 const char *body, json_t **doc, struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	int r;

	if ((r = load_keys(c, err)))
		return r;
	if (strcmp(method, "GET") || !c->keys.practice_id[0] ||
	    !strcmp(path, "/v4/writeback_status") || (query && strstr(query, "practice_id=")))
		return sikka_call(c, method, path, query, body, doc, err);
	pl_buf_addf(&q, "%s%spractice_id=%s", query ? query : "", query ? "&" : "",
	            c->keys.practice_id);
	r = sikka_call(c, method, path, q.buf, body, doc, err);
	pl_buf_release(&q);
	return r;
}

static int sikka_call(struct ctx *c, const char *method, const char *path, const char *query,
                      const char *body, json_t **doc, struct pl_err *err)
{
	struct pl_rotate_req rq = {c->account, NULL, 0, 0, REFRESH_LOCK_WAIT_MS};
	struct pl_rotate_res rs;
	int r;

	if ((r = load_keys(c, err)) || (r = within_budget(c, err)))
		return r;
	r = pl_sikka_data(&c->sk, method, path, query, body, &c->keys.request_key, doc, err);
	if (!r || !pl_sikka_key_expired(&c->sk) || c->refreshed)
		return r;
	c->refreshed = 1;
	rq.stale_version = c->version;
	if ((r = pl_rotate_account(c->s, c->store, &c->sk, &rq, &rs, err)))
		return r;
	c->keys_loaded = 0;
	if ((r = load_keys(c, err)))
		return r;
	return pl_sikka_data(&c->sk, method, path, query, body, &c->keys.request_key, doc, err);
}

static json_t *items(json_t *doc)
{
	json_t *it = json_object_get(doc, "items");

	return json_is_array(it) ? it : NULL;
}

static const char *text(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* --- getPatientInfo -------------------------------------------------------------------------- */

static const char *const phone_fields[] = {"cell", "phone", "homephone", "workphone", NULL};

static int patient_has_phone(const json_t *p, const char *digits)
{
	char d[32];

	for (size_t i = 0; phone_fields[i]; i++) {
		pl_phone_digits(text(p, phone_fields[i]), d, sizeof(d));
		if (*d && !strcmp(d, digits))
			return 1;
	}
	return 0;
}

/*
 * Patients matching the arguments. A phone is matched exactly (E.164) after a broad search.
 * *found is a new array on success, NULL on failure.
 */
static int find_patients(struct ctx *c, const char *query, const char *phone, const char *first,
                         const char *last, const char *dob, json_t **found, struct pl_err *err)
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
	} else {
		char *f = pl_http_escape(first), *l = pl_http_escape(last);

		pl_buf_addf(&q, "firstname=%s&lastname=%s", f, l);
		free(f);
		free(l);
	}
	r = sikka(c, "GET", "/v4/patients", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	*found = pl_json_x(json_array());
	json_array_foreach(items(doc), i, p)
	{
		const char *bd = text(p, "birthdate");

		if (*digits && !patient_has_phone(p, digits))
			continue;
		/* Family members share a phone: the names given must match too. */
		if (*digits && first && last &&
		    (!text(p, "firstname") || strcasecmp(text(p, "firstname"), first) ||
		     !text(p, "lastname") || strcasecmp(text(p, "lastname"), last)))
			continue;
		if (dob && bd && strncmp(bd, dob, 10))
			continue;
		json_array_append(*found, p);
	}
	json_decref(doc);
	return 0;
}

/* The patient with exactly this id (a new reference), or NULL when Sikka has none. */
static int patient_by_id(struct ctx *c, const char *id, json_t **patient, struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	json_t *doc = NULL, *p;
	char *e = pl_http_escape(id);
	size_t i;
	int r;

	*patient = NULL;
	pl_buf_addf(&q, "patient_id=%s", e);
	free(e);
	r = sikka(c, "GET", "/v4/patients", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	/* The filter is Sikka's: only an exact id is taken, should it ever answer more. */
	json_array_foreach(items(doc), i, p)
	{
		if (text(p, "patient_id") && !strcmp(text(p, "patient_id"), id)) {
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
static int caller_may_act_for(struct ctx *c, const char *patient_id, int *ok, struct pl_err *err)
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
	if ((r = patient_by_id(c, patient_id, &p, err)))
		return r;
	if (p && patient_has_phone(p, caller)) {
		c->rule = "verified-caller";
		*ok = 1;
	}
	json_decref(p);
	return 0;
}

/* The patient's next appointment from now, or JSON null. */
static int next_appointment(struct ctx *c, const char *patient_id, json_t **out, struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	char until[11];
	json_t *doc = NULL, *a;
	size_t i;
	int r;

	*out = json_null();
	date_of(day_number(c->today) + 366, until);
	{
		char *e = pl_http_escape(patient_id);

		pl_buf_addf(&q, "patient_id=%s&startdate=%s&enddate=%s", e, c->today, until);
		free(e);
	}
	r = sikka(c, "GET", "/v4/appointments", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	json_array_foreach(items(doc), i, a)
	{
		const char *date = text(a, "date"), *time = text(a, "time"),
		           *st = text(a, "status");
		char start[20];

		if (!date || !time ||
		    (st && (!strcasecmp(st, "cancelled") || !strcasecmp(st, "broken"))))
			continue;
		if (day_number(date) == day_number(c->today) &&
		    pl_hhmm(time, PL_HHMM_SECONDS) < c->now_minute)
			continue;
		snprintf(start, sizeof(start), "%.10sT%.5s", date, time);
		json_decref(*out);
		*out = pl_json_x(
		    json_pack("{s:s, s:s?}", "start", start, "providerId", text(a, "provider_id")));
		break;
	}
	json_decref(doc);
	return 0;
}

static int get_patient_info(struct ctx *c, const json_t *args, json_t **out, struct pl_err *err)
{
	char b1[64], b2[64];
	const char *query = pl_vapi_arg_text(args, "query", b1, sizeof(b1));
	const char *phone = pl_vapi_arg_text(args, "phone", b2, sizeof(b2));
	const char *first = pl_vapi_arg_text(args, "firstName", NULL, 0);
	const char *last = pl_vapi_arg_text(args, "lastName", NULL, 0);
	const char *dob = pl_vapi_arg_text(args, "dateOfBirth", NULL, 0);
	char caller[32] = "";
	json_t *found = NULL, *p, *next = NULL;
	int r, verified;

	if (!query && !phone && !(first && last))
		return bad_args(err, "getPatientInfo",
		                "give query, phone, or firstName and lastName");
	if ((r = find_patients(c, query, phone, first, last, dob, &found, err)))
		goto out;
	if (!json_array_size(found)) {
		*out = result(0, "I couldn't find a patient matching that information.");
		json_object_set_new(*out, "found", json_false());
		json_object_set_new(*out, "verified", json_false());
		goto out;
	}
	p = json_array_get(found, 0);
	pl_phone_digits(c->caller, caller, sizeof(caller));
	verified = *caller && patient_has_phone(p, caller);
	c->rule = c->operator_access ? "operator"
	          : verified         ? "verified-caller"
	                             : "unverified-caller";
	if (!verified && !c->operator_access) {
		/* PHI minimisation: a caller who is not the patient learns only that a record
		 * exists. */
		*out = result(1, "I found a matching record, but I can only share details with the "
		                 "patient calling from the phone number on file.");
		json_object_set_new(*out, "found", json_true());
		json_object_set_new(*out, "verified", json_false());
		goto out;
	}
	if ((r = next_appointment(c, text(p, "patient_id") ? text(p, "patient_id") : "", &next,
	                          err)))
		goto out;
	*out = result(1, "I found your record.");
	json_object_set_new(*out, "found", json_true());
	json_object_set_new(*out, "verified", verified ? json_true() : json_false());
	if (c->operator_access)
		json_object_set_new(*out, "operatorAccess", json_true());
	json_object_set_new(
	    *out, "patient",
	    pl_json_x(json_pack("{s:s?, s:s?, s:s?, s:O}", "id", text(p, "patient_id"), "firstName",
	                        text(p, "firstname"), "lastName", text(p, "lastname"),
	                        "nextAppointment", next)));
out:
	json_decref(found);
	json_decref(next);
	return r;
}

/* --- checkAvailability ------------------------------------------------------------------------ */

struct busy {
	int start, end;
	char provider[64];
};

static int overlaps_busy(const struct busy *b, size_t n, int start, int end, const char *provider)
{
	for (size_t i = 0; i < n; i++)
		if ((!provider || !*b[i].provider || !strcmp(provider, b[i].provider)) &&
		    start < b[i].end && b[i].start < end)
			return 1;
	return 0;
}

/* Office hours minus the day's booked appointments, in slots of `duration` aligned to each range.
 */
static int computed_slots(struct ctx *c, const char *date, int duration, const char *provider,
                          json_t *slots, struct pl_err *err)
{
	json_t *ranges = json_object_get(c->hours, weekday(day_number(date))), *range, *doc = NULL,
	       *a;
	struct busy *busy = NULL;
	struct pl_buf q = PL_BUF_INIT;
	size_t i, nbusy = 0;
	int r;

	if (!json_array_size(ranges))
		return 0; /* closed that day */
	pl_buf_addf(&q, "startdate=%s&enddate=%s", date, date);
	if (provider) {
		char *e = pl_http_escape(provider);

		pl_buf_addf(&q, "&provider_id=%s", e);
		free(e);
	}
	r = sikka(c, "GET", "/v4/appointments", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	busy = pl_xcalloc(json_array_size(items(doc)) + 1, sizeof(*busy));
	json_array_foreach(items(doc), i, a)
	{
		const char *st = text(a, "status");
		long long len = digits_value(text(a, "length"), MAX_UPSTREAM_MINUTES);
		int start = pl_hhmm(text(a, "time"), PL_HHMM_SECONDS);

		if (start < 0 ||
		    (st && (!strcasecmp(st, "cancelled") || !strcasecmp(st, "broken"))))
			continue;
		/* A length missing or unreadable ("30abc", "0"): the time stays taken, for the
		 * default length, rather than be offered as free. */
		busy[nbusy].start = start;
		busy[nbusy].end = start + (len > 0 ? (int)len : DEFAULT_DURATION);
		snprintf(busy[nbusy].provider, sizeof(busy[nbusy].provider), "%s",
		         provider && text(a, "provider_id") ? text(a, "provider_id") : "");
		nbusy++;
	}
	json_array_foreach(ranges, i, range)
	{
		int from = pl_hhmm(json_string_value(json_array_get(range, 0)), PL_HHMM_SECONDS);
		int to = pl_hhmm(json_string_value(json_array_get(range, 1)),
		                 PL_HHMM_END | PL_HHMM_SECONDS);

		for (int t = from; t >= 0 && t + duration <= to; t += duration) {
			char s[6], e[6];

			if (!strcmp(date, c->today) && t < c->now_minute)
				continue;
			if (overlaps_busy(busy, nbusy, t, t + duration, NULL))
				continue;
			hhmm(t, s);
			hhmm(t + duration, e);
			json_array_append_new(
			    slots, pl_json_x(json_pack("{s:s, s:s, s:s?}", "start", s, "end", e,
			                               "providerId", provider)));
		}
	}
	free(busy);
	json_decref(doc);
	return 0;
}

/* Sikka's own free-slot search (Orthotrac, Dolphin, Planet DDS). */
static int native_slots(struct ctx *c, const char *date, int duration, const char *provider,
                        json_t *slots, struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	json_t *doc = NULL, *it;
	size_t i;
	int r;

	pl_buf_addf(&q, "startdate=%s&enddate=%s", date, date);
	if (provider) {
		char *e = pl_http_escape(provider);

		pl_buf_addf(&q, "&provider_id=%s", e);
		free(e);
	}
	r = sikka(c, "GET", "/v4/appointments_available_slots", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	json_array_foreach(items(doc), i, it)
	{
		const char *t = text(it, "time") ? text(it, "time") : text(it, "start_time");
		const char *len = text(it, "length");
		long long n = len ? digits_value(len, MAX_UPSTREAM_MINUTES) : duration;
		int start = pl_hhmm(t && strlen(t) > 10 ? t + 11 : t, PL_HHMM_SECONDS);
		int end = text(it, "end_time") ? pl_hhmm(strlen(text(it, "end_time")) > 10
		                                             ? text(it, "end_time") + 11
		                                             : text(it, "end_time"),
		                                         PL_HHMM_END | PL_HHMM_SECONDS)
		                               : start + (int)n;
		char s[6], e[6];

		/* A free slot whose length cannot be read ("30abc", "0") is not offered. */
		if (start < 0 || (!text(it, "end_time") && n <= 0) || end - start < duration)
			continue;
		if (!strcmp(date, c->today) && start < c->now_minute)
			continue;
		hhmm(start, s);
		hhmm(start + duration, e);
		json_array_append_new(slots,
		                      pl_json_x(json_pack("{s:s, s:s, s:s?}", "start", s, "end", e,
		                                          "providerId", text(it, "provider_id"))));
	}
	json_decref(doc);
	return 0;
}

static int check_availability(struct ctx *c, const json_t *args, json_t **out, struct pl_err *err)
{
	char b1[32], b2[ID_MAX + 1], date[11], msg[160];
	const char *given = pl_vapi_arg_text(args, "date", b1, sizeof(b1));
	const char *provider;
	long day = day_number(given), today = day_number(c->today);
	long long dur;
	int duration, r;
	json_t *slots;

	if (day < 0 || strlen(given) != 10)
		return bad_args(err, "checkAvailability", "date must be YYYY-MM-DD");
	if (arg_number(args, "duration", MIN_DURATION, MAX_DURATION, DEFAULT_DURATION, &dur))
		return bad_args(err, "checkAvailability",
		                "duration must be a whole number of minutes from 5 to 480");
	if (arg_id(args, "providerId", b2, sizeof(b2), &provider))
		return bad_args(err, "checkAvailability",
		                "providerId must be a number or letters and digits");
	duration = (int)dur;
	/* A past date means the same weekday to come: callers say "Monday", the model guesses. */
	while (day < today)
		day += 7;
	date_of(day, date);
	slots = json_array();
	r = c->native_slots ? native_slots(c, date, duration, provider, slots, err)
	                    : computed_slots(c, date, duration, provider, slots, err);
	if (r) {
		json_decref(slots);
		return r;
	}
	if (json_array_size(slots))
		snprintf(msg, sizeof(msg), "There are %zu openings on %s.", json_array_size(slots),
		         date);
	else
		snprintf(msg, sizeof(msg), "There are no openings on %s.", date);
	*out = result(json_array_size(slots) > 0, msg);
	json_object_set_new(*out, "date", json_string(date));
	json_object_set_new(*out, "timezone", json_string(c->timezone));
	json_object_set_new(*out, "slots", slots);
	return 0;
}

/* --- bookAppointment ----------------------------------------------------------------------------
 */

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	nanosleep(&ts, NULL);
}

static const char *first_id(struct ctx *c, const char *path, const char *field, char *buf,
                            size_t size, struct pl_err *err, int *r)
{
	json_t *doc = NULL;
	const char *v;

	*r = sikka(c, "GET", path, NULL, NULL, &doc, err);
	if (*r)
		return NULL;
	v = text(json_array_get(items(doc), 0), field);
	if (v)
		snprintf(buf, size, "%s", v);
	json_decref(doc);
	return v ? buf : NULL;
}

/* Poll the writeback until it completes or the bound passes; *item gets the last answer. */
static int wait_writeback(struct ctx *c, const char *id, json_t **item, struct pl_err *err)
{
	const char *env = pl_config_get(c->s->cfg, "PARLAE_WRITEBACK_WAIT");
	double bound = env ? atof(env) : DEFAULT_WRITEBACK_WAIT, deadline, pause = 0.25;
	struct pl_buf q = PL_BUF_INIT;
	int r = 0;

	if (!(bound > 0) || bound > DEFAULT_WRITEBACK_WAIT)
		bound = DEFAULT_WRITEBACK_WAIT;
	deadline = pl_monotonic() + bound;
	{
		char *e = pl_http_escape(id);

		pl_buf_addf(&q, "id=%s", e);
		free(e);
	}
	*item = NULL;
	for (;;) {
		json_t *doc = NULL;
		const char *done;

		if ((r = sikka(c, "GET", "/v4/writeback_status", q.buf, NULL, &doc, err)))
			break;
		json_decref(*item);
		*item = json_incref(json_array_get(items(doc), 0));
		json_decref(doc);
		done = text(*item, "is_completed");
		if ((done && !strcasecmp(done, "true")) || pl_monotonic() + pause > deadline)
			break;
		sleep_s(pause);
		pause = pause < 1 ? pause * 2 : 1;
	}
	pl_buf_release(&q);
	return r;
}

static int book_within_budget(struct ctx *c, const json_t *args, json_t **out, struct pl_err *err)
{
	char b1[ID_MAX + 1], b3[ID_MAX + 1], b4[64], pid_buf[64], prov_buf[64], op_buf[64],
	    practice[64], length[8];
	const char *start = pl_vapi_arg_text(args, "startTime", NULL, 0);
	const char *patient, *provider;
	const char *type = pl_vapi_arg_text(args, "appointmentType", NULL, 0);
	const char *notes = pl_vapi_arg_text(args, "notes", NULL, 0);
	const char *first = pl_vapi_arg_text(args, "firstName", NULL, 0);
	const char *last = pl_vapi_arg_text(args, "lastName", NULL, 0);
	const char *phone = pl_vapi_arg_text(args, "phone", b4, sizeof(b4));
	const char *operatory, *done, *failed, *created;
	long long duration;
	int r, minute, ok;
	char date[11], time_s[6], wid[32] = "", desc[512];
	json_t *body = NULL, *doc = NULL, *item = NULL;
	struct pl_buf d = PL_BUF_INIT;
	char *text_body;

	if (!start || day_number(start) < 0 || strlen(start) < 16 ||
	    (minute = pl_hhmm(start + 11, PL_HHMM_SECONDS)) < 0)
		return bad_args(err, "bookAppointment",
		                "startTime must be a local time like 2026-12-01T10:00:00");
	if (arg_id(args, "patientId", b1, sizeof(b1), &patient))
		return bad_args(err, "bookAppointment",
		                "patientId must be a number or letters and digits");
	if (arg_id(args, "providerId", b3, sizeof(b3), &provider))
		return bad_args(err, "bookAppointment",
		                "providerId must be a number or letters and digits");
	if (!patient && !(first && last && phone))
		return bad_args(err, "bookAppointment",
		                "give patientId, or firstName, lastName and phone");
	if (arg_number(args, "duration", MIN_DURATION, MAX_DURATION, DEFAULT_DURATION, &duration))
		return bad_args(err, "bookAppointment",
		                "duration must be a whole number of minutes from 5 to 480");
	snprintf(date, sizeof(date), "%.10s", start);
	snprintf(length, sizeof(length), "%lld", duration);
	hhmm(minute, time_s);
	if (patient) {
		/* Booking for a patient named by id: only that patient, or the operator. */
		if ((r = caller_may_act_for(c, patient, &ok, err)))
			return r;
		if (!ok) {
			*out = result(
			    0, "I can only book for the patient calling from the phone number "
			       "on file. The office staff can verify who you are and book it "
			       "for you.");
			json_object_set_new(*out, "status", json_string("failed"));
			json_object_set_new(*out, "verified", json_false());
			return 0;
		}
	} else {
		json_t *found = NULL;

		if ((r = find_patients(c, NULL, phone, first, last, NULL, &found, err)))
			return r;
		patient = text(json_array_get(found, 0), "patient_id");
		if (patient)
			snprintf(pid_buf, sizeof(pid_buf), "%s", patient);
		json_decref(found);
		if (!patient) {
			*out = result(
			    0, "I couldn't find your record with that name and phone number, so I "
			       "can't book it; the office can help you register.");
			json_object_set_new(*out, "status", json_string("failed"));
			return 0;
		}
		patient = pid_buf;
	}
	if (!provider && !(provider = first_id(c, "/v4/providers", "provider_id", prov_buf,
	                                       sizeof(prov_buf), err, &r))) {
		if (r)
			return r;
		return bad_args(err, "bookAppointment",
		                "no providerId given and the practice lists no provider");
	}
	operatory = first_id(c, "/v4/operatories", "operatory", op_buf, sizeof(op_buf), err, &r);
	if (r)
		return r;
	if (c->keys.practice_id[0]) {
		snprintf(practice, sizeof(practice), "%s", c->keys.practice_id);
	} else if (!first_id(c, "/v4/practices", "practice_id", practice, sizeof(practice), err,
	                     &r)) {
		if (r)
			return r;
		snprintf(practice, sizeof(practice), "1");
	}
	pl_buf_addf(&d, "%s%s%s", type ? type : "appointment", notes ? ": " : "",
	            notes ? notes : "");
	/* Sikka's field is short: cut between characters, or jansson refuses the body. */
	pl_utf8_copy(desc, sizeof(desc), d.buf);
	pl_buf_release(&d);
	body = pl_json_x(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:s}", "patient_id",
	                           patient, "date", date, "time", time_s, "description", desc,
	                           "provider_id", provider, "length", length, "operatory",
	                           operatory, "practice_id", practice, "check_spu", "true"));
	text_body = pl_json_dump(body);
	json_decref(body);
	r = sikka(c, "POST", "/v4/appointment", NULL, text_body, &doc, err);
	free(text_body);
	if (r && !strcmp(c->sk.last_code, "API2017")) {
		*out = result(
		    0, "The office's scheduling system is offline right now, so I can't book "
		       "it; someone from the office will call you back.");
		json_object_set_new(*out, "status", json_string("failed"));
		json_object_set_new(*out, "start", json_string(start));
		return 0;
	}
	if (r)
		return r;
	{
		const char *lm = text(doc, "long_message"), *id = lm ? strstr(lm, "Id:") : NULL;

		if (id)
			snprintf(wid, sizeof(wid), "%.*s", pl_utf8_cut(id + 3, 30), id + 3);
		json_decref(doc);
		if (!*wid)
			return pl_err_set(err, PL_EUPSTREAM,
			                  "Sikka accepted the booking but named no writeback id");
	}
	/* The writeback was accepted: if polling fails now, the booking is pending, not failed. */
	if (wait_writeback(c, wid, &item, err))
		pl_err_clear(err);
	done = text(item, "is_completed");
	failed = text(item, "has_error");
	created = text(item, "created_id");
	if (!done || strcasecmp(done, "true")) {
		*out = result(
		    0, "I've sent the booking to the office, but it isn't confirmed yet; the "
		       "office will confirm it with you.");
		json_object_set_new(*out, "status", json_string("pending"));
	} else if (failed && !strcasecmp(failed, "true")) {
		*out = result(
		    0, "I couldn't book that time; it may have just been taken. Would another "
		       "time work?");
		json_object_set_new(*out, "status", json_string("failed"));
		json_object_set_new(*out, "reason", json_string(text(item, "result") ?: "failed"));
	} else {
		*out = result(1, "You're booked.");
		json_object_set_new(*out, "status", json_string("booked"));
		json_object_set_new(*out, "appointmentId",
		                    created && *created ? json_string(created) : json_null());
	}
	json_object_set_new(*out, "confirmationNumber", json_string(wid));
	json_object_set_new(*out, "start", json_string(start));
	json_decref(item);
	return 0;
}

/*
 * The whole booking, lookups and polling included, stays inside Vapi's 20 s tool timeout: an
 * agent that gave up would ask again and book twice.
 */
static int book_appointment(struct ctx *c, const json_t *args, json_t **out, struct pl_err *err)
{
	int r;

	c->deadline = pl_monotonic() + BOOKING_BUDGET;
	r = book_within_budget(c, args, out, err);
	c->deadline = 0;
	if (c->keys_loaded) {
		c->sk.http.timeout_ms = c->timeout_ms;
		c->sk.http.max_retries = (int)c->retries;
	}
	return r;
}

/* --- transferToHuman ---------------------------------------------------------------------------
 */

/*
 * The length in bytes of the longest prefix of s (valid UTF-8) that Twilio counts as at most max
 * characters. A character beyond U+FFFF counts twice (two UTF-16 units, as Twilio may count it),
 * so that the cut is short enough whichever way it counts.
 */
static size_t sms_cut(const char *s, size_t max)
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

/*
 * A caller who asks for a human is never stranded: with transfers enabled the answer is the
 * destination whatever happens to the text to the staff, which is best effort. The call log
 * keeps whether it went and, if not, why: Twilio's error code or that it could not be reached
 * (never the text, which holds what the caller said).
 */
static int transfer_to_human(struct ctx *c, const json_t *args, json_t **out, struct pl_err *err)
{
	const char *reason = pl_vapi_arg_text(args, "reason", NULL, 0);
	const char *summary = pl_vapi_arg_text(args, "summary", NULL, 0);
	const char *params[6] = {c->account, c->phone_id, NULL, NULL, NULL, NULL};
	struct pl_db_res res = PL_DB_RES_INIT;
	struct pl_buf body = PL_BUF_INIT;
	struct pl_err serr = PL_ERR_INIT;
	char staff[40] = "", sid[64], why[64] = "";
	long code = 0;
	int r, enabled = 0, sent;

	if (!reason)
		return bad_args(err, "transferToHuman", "reason is required");
	r = pl_db_query(c->db, &res,
	                "SELECT staff_forward_number, transfer_enabled FROM vapi_phone_numbers"
	                " WHERE account_id = $1 AND staff_forward_number IS NOT NULL"
	                " ORDER BY (vapi_phone_id = $2) IS TRUE DESC, vapi_phone_id LIMIT 1",
	                2, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res)) {
		snprintf(staff, sizeof(staff), "%s", pl_db_val(&res, 0, 0));
		enabled = !strcmp(pl_db_val(&res, 0, 1), "t");
	}
	pl_db_res_clear(&res);
	if (!*staff || !enabled) {
		*out =
		    result(0, !*staff ? "No staff number is set up for transfers at this practice."
		                      : "Transfers are not enabled for this practice's number.");
		return 0;
	}
	pl_buf_addf(&body, "Caller %s asks for a person: %s.%s%s",
	            c->caller ? c->caller : "(unknown)", reason, summary ? " " : "",
	            summary ? summary : "");
	/* Twilio refuses a longer text (21617): the staff get its beginning. */
	body.len = sms_cut(body.buf, SMS_MAX_CHARS);
	body.buf[body.len] = '\0';
	sent = !pl_twilio_sms(c->s->cfg, staff, body.buf, sid, sizeof(sid), &code, &serr);
	pl_buf_wipe(&body);
	if (!sent) {
		if (code)
			snprintf(why, sizeof(why), "Twilio error %ld", code);
		else if (serr.code == PL_ECONFIG)
			snprintf(why, sizeof(why), "SMS not configured");
		else
			snprintf(why, sizeof(why), "SMS service unreachable");
	}
	params[0] = c->account;
	params[1] = c->call_id;
	params[2] = reason;
	params[3] = summary;
	params[4] = sent ? "true" : "false";
	params[5] = sent ? NULL : why;
	r = pl_db_query(c->db, NULL,
	                "UPDATE vapi_call_logs SET transfer_requested = true, transfer_reason = $3,"
	                " transfer_summary = $4, sms_sent = $5::boolean, sms_error = $6,"
	                " status = 'transferred', updated_at = now()"
	                " WHERE account_id = $1 AND call_id = $2",
	                6, params, err);
	if (r)
		return r;
	*out = result(1, "I'm transferring you to our staff now.");
	json_object_set_new(*out, "destination",
	                    pl_json_x(json_pack("{s:s, s:s, s:s}", "type", "number", "number",
	                                        staff, "message", "Transferring you now")));
	json_object_set_new(*out, "smsSent", json_boolean(sent));
	json_object_set_new(*out, "smsSid", sent ? json_string(sid) : json_null());
	if (!sent)
		json_object_set_new(*out, "smsError", json_string(why));
	return 0;
}

/* --- running a message ---------------------------------------------------------------------------
 */

void pl_vapi_outcomes_release(struct pl_vapi_outcome *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(out[i].result);
		free(out[i].error);
	}
	memset(out, 0, n * sizeof(*out));
}

static int account_for_phone(struct pl_db *db, const char *phone_id, char *account, size_t size,
                             struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {phone_id};
	int r;

	r = pl_db_query(db, &res,
	                "SELECT account_id FROM vapi_phone_numbers WHERE vapi_phone_id = $1", 1,
	                params, err);
	if (r)
		return r;
	if (!pl_db_rows(&res)) {
		pl_db_res_clear(&res);
		pl_err_set(err, PL_ENOTFOUND, "no account has the Vapi phone number id '%.*s'",
		           pl_utf8_cut(phone_id, 80), phone_id);
		return pl_err_hint(err,
		                   "register it with 'parlae vapi phone add ACCOUNT --vapi-id "
		                   "%.*s --number E164'",
		                   pl_utf8_cut(phone_id, 80), phone_id);
	}
	snprintf(account, size, "%s", pl_db_val(&res, 0, 0));
	pl_db_res_clear(&res);
	return 0;
}

/* The one account the called number (E.164 digits) is registered to. */
static int account_for_number(struct pl_db *db, const char *number, char *account, size_t size,
                              struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	char digits[32];
	const char *params[1] = {digits};
	int r, n;

	pl_phone_digits(number, digits, sizeof(digits));
	r = pl_db_query(db, &res,
	                "SELECT DISTINCT account_id FROM vapi_phone_numbers"
	                " WHERE regexp_replace(number, '[^0-9]', '', 'g') = $1 LIMIT 2",
	                1, params, err);
	if (r)
		return r;
	n = (int)pl_db_rows(&res);
	if (n == 1)
		snprintf(account, size, "%s", pl_db_val(&res, 0, 0));
	pl_db_res_clear(&res);
	/* A number two accounts registered says nothing about which one the call is for. */
	if (n != 1)
		return pl_err_set(err, PL_ENOTFOUND, "%s account has the called number %.*s",
		                  n ? "more than one" : "no", pl_utf8_cut(number, 40), number);
	return 0;
}

/*
 * Which account a message is for (the contract's "Which account"): --account, else the
 * assistant's metadata.accountId when that account exists, else the account its Vapi phone
 * number id is registered to, else the one its called number is registered to. Every statement
 * on a call, a number or a patient then names that account.
 */
static int resolve_account(struct pl_db *db, const struct pl_tools_req *req,
                           const struct pl_vapi_msg *m, char *account, size_t size,
                           struct pl_err *err)
{
	struct pl_err ignored = PL_ERR_INIT;
	int r;

	if (req && req->account) {
		if ((r = pl_account_check_id(req->account, err)) ||
		    (r = pl_account_require(db, req->account, err)))
			return r;
		snprintf(account, size, "%s", req->account);
		return 0;
	}
	if (m->account_hint && pl_account_id_valid(m->account_hint)) {
		r = pl_account_require(db, m->account_hint, &ignored);
		if (!r) {
			snprintf(account, size, "%s", m->account_hint);
			return 0;
		}
		if (r != PL_ENOTFOUND) {
			*err = ignored;
			return r;
		}
	}
	if (m->phone_number_id) {
		r = account_for_phone(db, m->phone_number_id, account, size, err);
		if (r != PL_ENOTFOUND || !m->called_number ||
		    account_for_number(db, m->called_number, account, size, &ignored))
			return r;
		pl_err_clear(err);
		return 0;
	}
	if (m->called_number)
		return account_for_number(db, m->called_number, account, size, err);
	pl_err_set(err, PL_EUSAGE,
	           "no account: give --account ACCOUNT, or a payload whose "
	           "message.call.phoneNumberId is registered");
	return pl_err_hint(err, "see 'parlae vapi phone list'");
}

static int parse_now(const struct pl_tools_req *req, const struct pl_vapi_msg *m,
                     const struct pl_config *cfg, time_t *now, struct pl_err *err)
{
	const char *env = pl_config_get(cfg, "PARLAE_NOW");
	struct tm tm = {0};
	const char *end;

	*now = time(NULL);
	if (req->as_of_payload) {
		if (!m->timestamp_ms)
			return pl_err_set(err, PL_EBADINPUT,
			                  "--as-of payload: the payload has no timestamp");
		*now = (time_t)(m->timestamp_ms / 1000);
		return 0;
	}
	if (!env)
		return 0;
	end = strptime(env, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end || (*end && strcmp(end, "Z") && strcmp(end, "+00:00"))) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_NOW must be an ISO 8601 UTC time");
		return pl_err_hint(err, "for example PARLAE_NOW=2026-12-01T14:00:00Z");
	}
	*now = timegm(&tm);
	return 0;
}

static int log_call(struct ctx *c, struct pl_err *err)
{
	const char *params[3] = {c->call_id, c->account, c->phone_id};

	/* The same call id under another account is another row: never this one. */
	return pl_db_query(
	    c->db, NULL,
	    "INSERT INTO vapi_call_logs (call_id, account_id, vapi_phone_id, tool_calls)"
	    " VALUES ($1, $2, $3, 1) ON CONFLICT (account_id, call_id) DO UPDATE"
	    " SET tool_calls = vapi_call_logs.tool_calls + 1, updated_at = now()",
	    3, params, err);
}

/* One audit event per tool call: which tool and how it went, never what the patient said. */
static int audit_call(struct ctx *c, const struct pl_vapi_call *call, int code, int success,
                      struct pl_err *err)
{
	struct pl_audit_event ev = {c->account, "vapi.tool", "tool_call", call->id, NULL};
	int r;
	json_t *meta =
	    pl_json_x(json_pack("{s:s, s:s, s:b, s:b, s:s?}", "tool", pl_vapi_tool_name(call->tool),
	                        "callId", c->call_id, "operatorAccess", c->operator_access,
	                        "success", success, "access", c->rule));
	char *text = pl_json_dump(meta);

	ev.metadata = text;
	r = pl_audit_append(c->s, &ev, code, err);
	free(text);
	json_decref(meta);
	return r;
}

/* An unknown tool's error lists the tools, for the agent's prompt and the operator alike. */
static int unknown_tool(const char *name, struct pl_err *err)
{
	struct pl_buf tools = PL_BUF_INIT;

	for (int t = 0; strcmp(pl_vapi_tool_name((enum pl_vapi_tool)t), "unknown"); t++)
		pl_buf_addf(&tools, "%s%s", t ? ", " : "", pl_vapi_tool_name((enum pl_vapi_tool)t));
	pl_err_set(err, PL_ENOTFOUND, "unknown tool '%.*s'; the tools are %s",
	           pl_utf8_cut(name, 80), name, tools.buf);
	pl_buf_release(&tools);
	return err->code;
}

static int run_one(struct ctx *c, const struct pl_vapi_call *call, int integration_err,
                   const struct pl_err *ierr, json_t **res, struct pl_err *err)
{
	if (call->bad_args)
		return pl_err_set(err, PL_EBADINPUT, "%s: %s", call->name, call->bad_args);
	if (call->tool == PL_TOOL_UNKNOWN)
		return unknown_tool(call->name, err);
	if (call->tool != PL_TOOL_TRANSFER_TO_HUMAN && integration_err) {
		*err = *ierr;
		return integration_err;
	}
	if (c->s->dry_run) {
		char msg[128];

		snprintf(msg, sizeof(msg), "would run %s", pl_vapi_tool_name(call->tool));
		*res = result(1, msg);
		json_object_set_new(*res, "dryRun", json_true());
		return 0;
	}
	switch (call->tool) {
	case PL_TOOL_GET_PATIENT_INFO:
		return get_patient_info(c, call->args, res, err);
	case PL_TOOL_CHECK_AVAILABILITY:
		return check_availability(c, call->args, res, err);
	case PL_TOOL_BOOK_APPOINTMENT:
		return book_appointment(c, call->args, res, err);
	case PL_TOOL_TRANSFER_TO_HUMAN:
		return transfer_to_human(c, call->args, res, err);
	default:
		return pl_err_set(err, PL_EINTERNAL, "no handler for %s", call->name);
	}
}

int pl_tools_run(struct pl_session *s, const struct pl_tools_req *req, const struct pl_vapi_msg *m,
                 struct pl_vapi_outcome *out, char *account, size_t account_size,
                 struct pl_err *err)
{
	struct pl_err ierr = PL_ERR_INIT;
	char call_id[40];
	struct ctx c = {0};
	int r, integration_err;

	c.s = s;
	c.operator_access = req->operator_access;
	c.caller = req->caller ? req->caller : m->caller;
	c.phone_id = m->phone_number_id;
	if ((r = pl_session_db(s, &c.db, err)) ||
	    (r = resolve_account(c.db, req, m, account, account_size, err)))
		return r;
	c.account = account;
	if ((r = parse_now(req, m, s->cfg, &c.now, err)))
		return r;
	if (req->call_id || m->call_id) {
		c.call_id = req->call_id ? req->call_id : m->call_id;
	} else {
		if (pl_random_hex(call_id, 16) < 0)
			return pl_err_set(err, PL_EINTERNAL,
			                  "no randomness available for a call id");
		c.call_id = call_id;
	}
	integration_err = load_integration(&c, &ierr);
	if (!integration_err && (r = local_clock(&c, err)))
		goto out;
	for (size_t i = 0; i < m->ncalls; i++) {
		struct pl_err cerr = PL_ERR_INIT;
		json_t *res = NULL;
		int code;

		if (!s->dry_run && !r && (r = log_call(&c, err)))
			goto out;
		c.rule = NULL;
		code = run_one(&c, &m->calls[i], integration_err, &ierr, &res, &cerr);
		if (code) {
			out[i].code = code;
			out[i].error = pl_xstrdup(cerr.msg);
			json_decref(res);
		} else {
			out[i].result = pl_json_dump(res);
		}
		/* A call that ran but could not be recorded still answers the agent; the run fails.
		 */
		if (!s->dry_run && !r &&
		    (r = audit_call(&c, &m->calls[i], code,
		                    !code && json_is_true(json_object_get(res, "success")), err)))
			pl_err_prefix(
			    err, "the tool calls ran, but their audit events could not be written");
		if (!code)
			json_decref(res);
	}
out:
	json_decref(c.hours);
	pl_pms_keys_release(&c.keys);
	if (c.sk.base)
		pl_sikka_release(&c.sk);
	pl_store_close(c.store);
	return r;
}

int pl_tools_end_call(struct pl_session *s, const struct pl_tools_req *req,
                      const struct pl_vapi_msg *m, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	char account[64];
	const char *params[2] = {account, m->call_id};
	struct pl_db *db;
	int r, found;

	if (!m->call_id)
		return pl_err_set(err, PL_EBADINPUT, "the end-of-call-report has no call id");
	if ((r = pl_session_db(s, &db, err)) ||
	    (r = resolve_account(db, req, m, account, sizeof(account), err)))
		return r;
	if (s->dry_run)
		return 0;
	/* Only the call of the account the report is for: a call id is not unique across them. */
	r = pl_db_query(db, &res,
	                "UPDATE vapi_call_logs SET status = CASE WHEN transfer_requested"
	                " THEN 'transferred' ELSE 'ended' END, ended_at = now(), updated_at = now()"
	                " WHERE account_id = $1 AND call_id = $2 RETURNING 1",
	                2, params, err);
	if (r)
		return r;
	found = pl_db_rows(&res) > 0;
	pl_db_res_clear(&res);
	return found ? 0
	             : pl_err_set(err, PL_ENOTFOUND, "no call log for call %.*s of account %s",
	                          pl_utf8_cut(m->call_id, 80), m->call_id, account);
}
