/*
 * bookAppointment: books through Sikka's asynchronous writeback and waits for it inside the
 * call's budget; a writeback still pending or failed is reported as such, never as booked.
 * A patientId is checked against the caller by the dispatcher before this runs.
 */
#include "tool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encode.h"
#include "json.h"
#include "utf8.h"
#include "banned.h"

/*
 * The patient named by name and phone (a caller booking for themselves), into buf; *allowed
 * whether the caller rule lets this call act for them. The phone is an argument, anyone's to
 * say: the patient must be the caller (pl_tool_caller_is), as with a patientId.
 */
static int patient_by_name(struct pl_tool_ctx *c, const struct pl_tool_args *a, char *buf,
                           size_t size, const char **patient, int *allowed, struct pl_err *err)
{
	json_t *found = NULL, *p;
	const char *id;
	int r;

	*patient = NULL;
	*allowed = 0;
	if ((r = pl_tool_find_patients(c, NULL, pl_tool_text(a, "phone"),
	                               pl_tool_text(a, "firstName"), pl_tool_text(a, "lastName"),
	                               NULL, &found, err)))
		return r;
	p = json_array_get(found, 0);
	id = pl_tool_field(p, "patient_id");
	if (id) {
		snprintf(buf, size, "%s", id);
		*patient = buf;
		*allowed = pl_tool_caller_is(c, p);
	}
	json_decref(found);
	return 0;
}

static json_t *failed(const char *message)
{
	json_t *out = pl_tool_result(0, message);

	pl_json_set(out, "status", pl_json_x(json_string("failed")));
	return out;
}

int pl_tool_book_appointment(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                             struct pl_err *err)
{
	char pid_buf[64], prov_buf[64], op_buf[64], practice[64], length[8], date[11], time_s[6],
	    wid[32], desc[512], created[128], reason[256];
	const char *start = pl_tool_text(a, "startTime"), *patient = pl_tool_text(a, "patientId");
	const char *provider = pl_tool_text(a, "providerId");
	const char *type = pl_tool_text(a, "appointmentType"), *notes = pl_tool_text(a, "notes");
	const char *operatory;
	enum pl_writeback state;
	json_t *body, *doc = NULL;
	struct pl_buf d = PL_BUF_INIT;
	char *text_body;
	int r;

	if (!patient && !(pl_tool_text(a, "firstName") && pl_tool_text(a, "lastName") &&
	                  pl_tool_text(a, "phone")))
		return pl_tool_bad_args(err, "bookAppointment",
		                        "give patientId, or firstName, lastName and phone");
	snprintf(date, sizeof(date), "%.10s", start);
	snprintf(length, sizeof(length), "%lld", pl_tool_num(a, "duration"));
	pl_tool_hhmm(pl_hhmm(start + 11, PL_HHMM_SECONDS), time_s);
	if (!patient) {
		int allowed;

		if ((r = patient_by_name(c, a, pid_buf, sizeof(pid_buf), &patient, &allowed, err)))
			return r;
		if (!patient) {
			*out =
			    failed("I couldn't find your record with that name and phone number, "
			           "so I can't book it; the office can help you register.");
			return 0;
		}
		if (!allowed) {
			/* The words of the table's refusal: nothing is sent to Sikka to book. */
			*out = failed(pl_tool_find("bookAppointment")->refusal);
			pl_json_set(*out, "verified", json_false());
			return 0;
		}
	}
	if (!provider && !(provider = pl_tool_first_id(c, "/v4/providers", "provider_id", prov_buf,
	                                               sizeof(prov_buf), err, &r))) {
		if (r)
			return r;
		return pl_tool_bad_args(err, "bookAppointment",
		                        "no providerId given and the practice lists no provider");
	}
	operatory =
	    pl_tool_first_id(c, "/v4/operatories", "operatory", op_buf, sizeof(op_buf), err, &r);
	if (r)
		return r;
	if ((r = pl_tool_practice_id(c, practice, sizeof(practice), err)))
		return r;
	pl_buf_addf(&d, "%s%s%s", type ? type : "appointment", notes ? ": " : "",
	            notes ? notes : "");
	/* Sikka's field is short: cut between characters, or jansson refuses the body. */
	pl_utf8_copy(desc, sizeof(desc), d.buf);
	pl_tool_plain(desc);
	pl_buf_release(&d);
	body = pl_json_x(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:s}", "patient_id",
	                           patient, "date", date, "time", time_s, "description", desc,
	                           "provider_id", provider, "length", length, "operatory",
	                           operatory, "practice_id", practice, "check_spu", "true"));
	text_body = pl_json_dump(body);
	json_decref(body);
	r = pl_tool_sikka(c, "POST", "/v4/appointment", NULL, text_body, &doc, err);
	free(text_body);
	if (r && !strcmp(c->sk.last_code, "API2017")) {
		*out =
		    failed("The office's scheduling system is offline right now, so I can't book "
		           "it; someone from the office will call you back.");
		pl_json_set(*out, "start", pl_json_x(json_string(start)));
		return 0;
	}
	if (r)
		return r;
	r = pl_tool_writeback_id(doc, "booking", wid, sizeof(wid), err);
	json_decref(doc);
	if (r)
		return r;
	pl_tool_writeback_wait(c, wid, &state, created, sizeof(created), reason, sizeof(reason));
	if (state == PL_WB_PENDING) {
		*out = pl_tool_result(
		    0, "I've sent the booking to the office, but it isn't confirmed yet; the "
		       "office will confirm it with you.");
		pl_json_set(*out, "status", pl_json_x(json_string("pending")));
	} else if (state == PL_WB_FAILED) {
		*out =
		    failed("I couldn't book that time; it may have just been taken. Would another "
		           "time work?");
		pl_json_set(*out, "reason", pl_json_x(json_string(reason)));
	} else {
		*out = pl_tool_result(1, "You're booked.");
		pl_json_set(*out, "status", pl_json_x(json_string("booked")));
		pl_json_set(*out, "appointmentId",
		            *created ? pl_json_x(json_string(created)) : json_null());
	}
	pl_json_set(*out, "confirmationNumber", pl_json_x(json_string(wid)));
	pl_json_set(*out, "start", pl_json_x(json_string(start)));
	return 0;
}
