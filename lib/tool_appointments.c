/*
 * A patient's appointments: getAppointments lists the upcoming ones, rescheduleAppointment moves
 * one (Sikka's PUT /v4/appointments/{id} writeback), cancelAppointment breaks one (PATCH, status
 * "broken"); both changes are waited for like a booking and a writeback still pending or failed
 * is reported as such, never as done.
 *
 * Whose appointments: a patientId argument is checked against the caller by the dispatcher.
 * Without one, the patients are those whose phone is the caller's number (a family may share
 * it), and an appointmentId must be one of theirs: any other id, another patient's or none at
 * all, is refused in the same words as a caller who is not the patient, and nothing is sent to
 * Sikka. The operator's own invoke (no --caller) may act on any appointment. Descriptions are
 * the practice's free text about a patient: they go to the agent, never to the audit or trace.
 */
#include "tool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "utf8.h"
#include "vapi.h"
#include "banned.h"

#define LIST_DAYS     90  /* getAppointments: today to this many days ahead by default */
#define MAX_SPAN_DAYS 366 /* from..to at most a year; an appointment to change within a year */
#define MAX_PATIENTS  5   /* patients sharing the caller's phone that are looked at */
#define MAX_LISTED    20  /* appointments in one answer: the agent reads them out */
#define DESC_MAX      160 /* bytes of an appointment's description given to the agent */
#define PAGE          500 /* appointments asked for at once */
#define MAX_PAGES     20  /* the operator's search: 10,000 appointments to come */

static int closed(const json_t *a)
{
	const char *st = pl_tool_field(a, "status");

	return st && (!strcasecmp(st, "cancelled") || !strcasecmp(st, "canceled") ||
	              !strcasecmp(st, "broken") || !strcasecmp(st, "deleted"));
}

/* "YYYY-MM-DDTHH:MM" of an appointment, or "" when Sikka's date or time cannot be read. */
static void start_of(const json_t *a, char out[17])
{
	const char *date = pl_tool_field(a, "date"), *time = pl_tool_field(a, "time");
	int m = time ? pl_hhmm(time, PL_HHMM_SECONDS) : -1;

	*out = '\0';
	if (!date || m < 0 || pl_tool_day(date) < 0)
		return;
	/* Only "YYYY-MM-DD" is taken: what follows goes out as it is, so it must be ASCII. */
	if (!pl_tool_date_shape(date))
		return;
	snprintf(out, 17, "%.10sT%02d:%02d", date, m / 60, m % 60);
}

/* Whether an appointment is still to come (not closed, not earlier today). */
static int upcoming(const struct pl_tool_ctx *c, const json_t *a)
{
	char start[17];

	start_of(a, start);
	if (!*start || closed(a))
		return 0;
	if (strncmp(start, c->today, 10) < 0)
		return 0;
	return strncmp(start, c->today, 10) || pl_hhmm(start + 11, 0) >= c->now_minute;
}

/* Page `page` of a patient's appointments from..to, or everyone's when patient is NULL. */
static int appointments_of(struct pl_tool_ctx *c, const char *patient, const char *from,
                           const char *to, int page, json_t **doc, struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	char *e = patient ? pl_http_escape(patient) : NULL;
	int r;

	if (e)
		pl_buf_addf(&q, "patient_id=%s&", e);
	pl_buf_addf(&q, "startdate=%s&enddate=%s&limit=%d", from, to, PAGE);
	if (page)
		pl_buf_addf(&q, "&offset=%d", page); /* Sikka's offset counts pages */
	free(e);
	r = pl_tool_sikka(c, "GET", "/v4/appointments", q.buf, NULL, doc, err);
	pl_buf_release(&q);
	return r;
}

/*
 * The ids of the patients whose phone is the caller's number (a new array, at most
 * MAX_PATIENTS); empty when there is no caller or no such patient. Sets c->rule.
 */
static int callers_patients(struct pl_tool_ctx *c, json_t **ids, struct pl_err *err)
{
	char digits[32] = "";
	json_t *found = NULL, *p;
	size_t i;
	int r;

	*ids = pl_json_x(json_array());
	c->rule = "unverified-caller";
	pl_phone_digits(c->caller, digits, sizeof(digits));
	if (!*digits)
		return 0; /* nobody to compare: not verified, and Sikka is not asked */
	if ((r = pl_tool_find_patients(c, NULL, c->caller, NULL, NULL, NULL, &found, err))) {
		json_decref(*ids);
		*ids = NULL;
		return r;
	}
	json_array_foreach(found, i, p)
	{
		const char *id = pl_tool_field(p, "patient_id");

		if (id && *id && pl_tool_caller_is(c, p) && json_array_size(*ids) < MAX_PATIENTS)
			pl_json_append(*ids, pl_tool_string(id));
	}
	json_decref(found);
	c->rule = json_array_size(*ids) ? "verified-caller" : "unverified-caller";
	return 0;
}

/* What the agent hears when the caller may not touch it; nothing was read or changed. */
static json_t *refused(const char *tool, int writeback)
{
	const struct pl_tool *t = pl_tool_find(tool);
	json_t *res = pl_tool_result(0, t && t->refusal ? t->refusal
	                                                : "I can only help the patient calling "
	                                                  "from the phone number on file. The "
	                                                  "office staff can verify who you are and "
	                                                  "help you.");

	if (writeback)
		pl_json_set(res, "status", pl_json_x(json_string("failed")));
	pl_json_set(res, "verified", json_false());
	return res;
}

/* --- getAppointments ----------------------------------------------------------------------- */

static int by_start(const void *a, const void *b)
{
	const char *x = pl_tool_field(*(json_t *const *)a, "start"),
	           *y = pl_tool_field(*(json_t *const *)b, "start");

	return strcmp(x ? x : "", y ? y : "");
}

/* Append patient's upcoming appointments from..to to list. */
static int list_for(struct pl_tool_ctx *c, const char *patient, const char *from, const char *to,
                    json_t *list, struct pl_err *err)
{
	json_t *doc = NULL, *a;
	size_t i;
	int r;

	if ((r = appointments_of(c, patient, from, to, 0, &doc, err)))
		return r;
	json_array_foreach(pl_tool_items(doc), i, a)
	{
		const char *id = pl_tool_field(a, "appointment_sr_no"),
		           *pid = pl_tool_field(a, "patient_id"),
		           *desc = pl_tool_field(a, "description");
		char start[17], cut[DESC_MAX + 1];

		/* Sikka's filter is trusted for nothing: only this patient's, to come. */
		if (!id || !pid || strcmp(pid, patient) || !upcoming(c, a))
			continue;
		start_of(a, start);
		if (strncmp(start, from, 10) < 0 || strncmp(start, to, 10) > 0)
			continue;
		snprintf(cut, sizeof(cut), "%.*s", desc ? pl_utf8_cut(desc, DESC_MAX) : 0,
		         desc ? desc : "");
		pl_json_append(
		    list, pl_json_x(json_pack("{s:o, s:s, s:o, s:o}", "appointmentId",
		                              pl_tool_string(id), "start", start, "providerId",
		                              pl_tool_field(a, "provider_id")
		                                  ? pl_tool_string(pl_tool_field(a, "provider_id"))
		                                  : json_null(),
		                              "description", pl_tool_string(cut))));
	}
	json_decref(doc);
	return 0;
}

int pl_tool_get_appointments(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                             struct pl_err *err)
{
	const char *patient = pl_tool_text(a, "patientId");
	const char *from = pl_tool_text(a, "from"), *to = pl_tool_text(a, "to");
	char from_d[11], to_d[11], msg[160];
	json_t *ids = NULL, *list, *v;
	size_t i, n;
	int r = 0;

	snprintf(from_d, sizeof(from_d), "%s", from ? from : c->today);
	if (to)
		snprintf(to_d, sizeof(to_d), "%s", to);
	else
		pl_tool_date(pl_tool_day(from_d) + LIST_DAYS, to_d);
	if (pl_tool_day(to_d) < pl_tool_day(from_d))
		return pl_tool_bad_args(err, "getAppointments", "to must not be before from");
	if (pl_tool_day(to_d) - pl_tool_day(from_d) > MAX_SPAN_DAYS)
		return pl_tool_bad_args(err, "getAppointments",
		                        "from and to must be at most a year apart");
	if (patient) {
		/* The dispatcher's caller rule let this patient through. */
		ids = pl_json_x(json_pack("[s]", patient));
	} else if (c->operator_access) {
		return pl_tool_bad_args(err, "getAppointments",
		                        "give patientId: without --caller there is no caller's "
		                        "patient to list");
	} else {
		if ((r = callers_patients(c, &ids, err)))
			return r;
		if (!json_array_size(ids)) {
			json_decref(ids);
			*out = refused("getAppointments", 0);
			return 0;
		}
	}
	list = pl_json_x(json_array());
	json_array_foreach(ids, i, v)
	{
		if ((r = list_for(c, json_string_value(v), from_d, to_d, list, err)))
			goto out;
	}
	/* One patient's come sorted from Sikka; a family's are merged by time. */
	if (json_array_size(list) > 1) {
		json_t **all = pl_xcalloc(json_array_size(list), sizeof(*all));

		n = json_array_size(list);
		for (i = 0; i < n; i++)
			all[i] = json_incref(json_array_get(list, i));
		qsort(all, n, sizeof(*all), by_start);
		json_array_clear(list);
		for (i = 0; i < n; i++)
			if (i < MAX_LISTED)
				pl_json_append(list, all[i]);
			else
				json_decref(all[i]);
		free(all);
	}
	n = json_array_size(list);
	if (n)
		snprintf(msg, sizeof(msg), "There %s %zu upcoming appointment%s.",
		         n == 1 ? "is" : "are", n, n == 1 ? "" : "s");
	else
		snprintf(msg, sizeof(msg), "I don't see any upcoming appointments.");
	*out = pl_tool_result(n > 0, msg);
	pl_json_set(*out, "appointments", list);
	list = NULL;
out:
	json_decref(list);
	json_decref(ids);
	return r;
}

/* --- rescheduleAppointment, cancelAppointment ------------------------------------------------ */

/*
 * The appointment `id` this call may change (a new reference in *appt), to come within a year:
 * the operator's, any; a caller's, one of their patients'. *appt NULL when there is none it may
 * change, c->rule then saying why ("unverified-caller": no patient has the caller's number;
 * "not-callers-appointment": the id is not one of theirs).
 */
static int appointment_to_change(struct pl_tool_ctx *c, const char *id, json_t **appt,
                                 struct pl_err *err)
{
	char until[11];
	json_t *ids = NULL, *v;
	size_t i;
	int r = 0;

	*appt = NULL;
	pl_tool_date(pl_tool_day(c->today) + MAX_SPAN_DAYS, until);
	if (c->operator_access) {
		c->rule = "operator";
		ids = pl_json_x(json_pack("[n]"));
	} else {
		if ((r = callers_patients(c, &ids, err)))
			return r;
		if (!json_array_size(ids))
			goto out;
	}
	json_array_foreach(ids, i, v)
	{
		const char *patient = json_string_value(v); /* NULL: the operator's, anyone's */

		for (int page = 0; !*appt && page < MAX_PAGES; page++) {
			json_t *doc = NULL, *a;
			size_t j, n;

			if ((r = appointments_of(c, patient, c->today, until, page, &doc, err)))
				goto out;
			n = json_array_size(pl_tool_items(doc));
			json_array_foreach(pl_tool_items(doc), j, a)
			{
				const char *sr = pl_tool_field(a, "appointment_sr_no"),
				           *pid = pl_tool_field(a, "patient_id");

				if (sr && !strcmp(sr, id) && upcoming(c, a) &&
				    (!patient || (pid && !strcmp(pid, patient)))) {
					*appt = json_incref(a);
					break;
				}
			}
			json_decref(doc);
			if (n < PAGE)
				break;
		}
		if (*appt)
			break;
	}
	if (!*appt && !c->operator_access)
		c->rule = "not-callers-appointment";
out:
	json_decref(ids);
	return r;
}

enum change { RESCHEDULE, CANCEL };

static const char *const change_tool[] = {"rescheduleAppointment", "cancelAppointment"};

static json_t *change_failed(const char *message)
{
	json_t *out = pl_tool_result(0, message);

	pl_json_set(out, "status", pl_json_x(json_string("failed")));
	return out;
}

/* The write's body: a reschedule sends the booking's fields, a cancel the status patch. */
/* An appointment's field as a JSON string ("" when absent), made valid UTF-8. */
static json_t *upstream(const json_t *appt, const char *key)
{
	const char *v = pl_tool_field(appt, key);

	return pl_tool_string(v ? v : "");
}

static char *change_body(enum change what, const json_t *appt, const char *start,
                         long long duration)
{
	const char *practice = pl_tool_field(appt, "practice_id");
	char date[11], time_s[6], length[24];
	json_t *body = pl_json_x(json_object());
	char *text;

	if (what == CANCEL) {
		pl_json_set(body, "op", pl_json_x(json_string("replace")));
		pl_json_set(body, "path", pl_json_x(json_string("/appointment_status")));
		pl_json_set(body, "value", pl_json_x(json_string("broken")));
	} else {
		snprintf(date, sizeof(date), "%.10s", start);
		pl_tool_hhmm(pl_hhmm(start + 11, PL_HHMM_SECONDS), time_s);
		snprintf(length, sizeof(length), "%lld", duration);
		pl_json_set(body, "patient_id", upstream(appt, "patient_id"));
		pl_json_set(body, "date", pl_json_x(json_string(date)));
		pl_json_set(body, "time", pl_json_x(json_string(time_s)));
		pl_json_set(body, "description", upstream(appt, "description"));
		pl_json_set(body, "provider_id", upstream(appt, "provider_id"));
		pl_json_set(body, "length", pl_json_x(json_string(length)));
		if (pl_tool_field(appt, "operatory"))
			pl_json_set(body, "operatory", upstream(appt, "operatory"));
	}
	pl_json_set(body, "practice_id",
	            practice && *practice ? upstream(appt, "practice_id")
	                                  : pl_json_x(json_string("1")));
	pl_json_set(body, "check_spu", pl_json_x(json_string("true")));
	text = pl_json_dump(body);
	json_decref(body);
	return text;
}

static int change(struct pl_tool_ctx *c, enum change what, const struct pl_tool_args *a,
                  json_t **out, struct pl_err *err)
{
	const char *tool = change_tool[what], *id = pl_tool_text(a, "appointmentId");
	const char *start = pl_tool_text(a, "startTime");
	char was[17], path[96], wid[32], reason[256];
	long long duration = 0;
	enum pl_writeback state;
	json_t *appt = NULL, *doc = NULL;
	char *body, *e;
	int r;

	if (what == RESCHEDULE) {
		long day = pl_tool_day(start), today = pl_tool_day(c->today);

		if (day < today ||
		    (day == today && pl_hhmm(start + 11, PL_HHMM_SECONDS) < c->now_minute)) {
			*out = change_failed("That time has already passed; which day and time "
			                     "would you like instead?");
			pl_json_set(*out, "appointmentId", pl_json_x(json_string(id)));
			return 0;
		}
	}
	if ((r = appointment_to_change(c, id, &appt, err)))
		return r;
	if (!appt) {
		if (!c->operator_access) {
			*out = refused(tool, 1);
			return 0;
		}
		*out = change_failed("I couldn't find an upcoming appointment with that number.");
		pl_json_set(*out, "appointmentId", pl_json_x(json_string(id)));
		return 0;
	}
	start_of(appt, was);
	if (what == RESCHEDULE) {
		/* Without a duration the appointment keeps its length. */
		duration =
		    pl_tool_text(a, "duration")
		        ? pl_tool_num(a, "duration")
		        : pl_tool_digits(pl_tool_field(appt, "length"), PL_TOOL_UPSTREAM_MIN);
		if (duration <= 0)
			duration = PL_TOOL_DURATION_DFL;
	}
	body = change_body(what, appt, start, duration);
	e = pl_http_escape(id);
	snprintf(path, sizeof(path), "/v4/appointments/%s", e);
	free(e);
	r = pl_tool_sikka(c, what == CANCEL ? "PATCH" : "PUT", path, NULL, body, &doc, err);
	free(body);
	json_decref(appt);
	if (r && (!strcmp(c->sk.last_code, "API2017") || !strcmp(c->sk.last_code, "API2009"))) {
		*out = change_failed(
		    !strcmp(c->sk.last_code, "API2017")
		        ? "The office's scheduling system is offline right now, so I can't change "
		          "it; someone from the office will call you back."
		        : "I couldn't find that appointment in the office's schedule any more.");
		pl_err_clear(err);
		r = 0;
		goto answer;
	}
	if (r)
		return r;
	r = pl_tool_writeback_id(doc, what == CANCEL ? "cancellation" : "change", wid, sizeof(wid),
	                         err);
	json_decref(doc);
	if (r)
		return r;
	pl_tool_writeback_wait(c, wid, &state, NULL, 0, reason, sizeof(reason));
	if (state == PL_WB_PENDING) {
		*out = pl_tool_result(
		    0, what == CANCEL ? "I've sent the cancellation to the office, but it "
		                        "isn't confirmed yet; the office will confirm it with "
		                        "you."
		                      : "I've sent the change to the office, but it isn't "
		                        "confirmed yet; the office will confirm it with you.");
		pl_json_set(*out, "status", pl_json_x(json_string("pending")));
	} else if (state == PL_WB_FAILED) {
		*out = change_failed(what == CANCEL
		                         ? "I couldn't cancel that appointment; the office will "
		                           "help you with it."
		                         : "I couldn't move it to that time; it may have just been "
		                           "taken. Would another time work?");
		pl_json_set(*out, "reason", pl_tool_string(reason));
	} else {
		*out = pl_tool_result(1, what == CANCEL ? "Your appointment is cancelled."
		                                        : "Your appointment is moved.");
		pl_json_set(*out, "status",
		            pl_json_x(json_string(what == CANCEL ? "cancelled" : "booked")));
	}
answer:
	pl_json_set(*out, "appointmentId", pl_json_x(json_string(id)));
	pl_json_set(*out, "start", pl_json_x(json_string(what == CANCEL ? was : start)));
	return 0;
}

int pl_tool_reschedule_appointment(struct pl_tool_ctx *c, const struct pl_tool_args *a,
                                   json_t **out, struct pl_err *err)
{
	return change(c, RESCHEDULE, a, out, err);
}

int pl_tool_cancel_appointment(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                               struct pl_err *err)
{
	return change(c, CANCEL, a, out, err);
}
