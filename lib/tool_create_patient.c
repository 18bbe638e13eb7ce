/*
 * createPatient: a new patient through Sikka's asynchronous writeback (POST /v4/patient), unless
 * one with that name and phone exists, which is returned instead. The writeback is waited for
 * like a booking: one still pending or failed is reported as such, never as created.
 */
#include "tool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "vapi.h"
#include "banned.h"

#define NAME_MAX_BYTES  100 /* a first or last name */
#define EMAIL_MAX_BYTES 254 /* RFC 5321's longest address */

static int bad(struct pl_err *err, const char *what)
{
	return pl_tool_bad_args(err, "createPatient", what);
}

/* The first patient Sikka lists with these names and this phone (a new reference), or NULL. */
static int find(struct pl_tool_ctx *c, const char *first, const char *last, const char *phone,
                json_t **patient, struct pl_err *err)
{
	json_t *found = NULL;
	int r;

	*patient = NULL;
	if ((r = pl_tool_find_patients(c, NULL, phone, first, last, NULL, &found, err)))
		return r;
	*patient = json_incref(json_array_get(found, 0));
	json_decref(found);
	return 0;
}

/*
 * The patient exists already. Its id goes only to the patient calling (or the operator): any
 * caller can say a name and a number, and the id is what the other tools act on.
 */
static json_t *existing(struct pl_tool_ctx *c, const json_t *patient)
{
	const char *id = pl_tool_field(patient, "patient_id");
	json_t *out;

	if (!pl_tool_caller_is(c, patient)) {
		out =
		    pl_tool_result(0, "There is already a patient record with that name and phone "
		                      "number. The office staff can verify who you are and help "
		                      "you.");
		pl_json_set(out, "verified", json_false());
		id = NULL;
	} else {
		out = pl_tool_result(1, "You're already registered with us.");
	}
	pl_json_set(out, "created", json_false());
	pl_json_set(out, "status", pl_json_x(json_string("existing")));
	pl_json_set(out, "patientId", id ? pl_tool_string(id) : json_null());
	return out;
}

static json_t *not_created(const char *status, const char *message)
{
	json_t *out = pl_tool_result(0, message);

	pl_json_set(out, "created", json_false());
	pl_json_set(out, "status", pl_json_x(json_string(status)));
	pl_json_set(out, "patientId", json_null());
	return out;
}

/*
 * The new record's id: Sikka's created_id, else (it is not attested for this writeback) the
 * patient a read finds with that name and cell. The writeback is done whatever the read says:
 * a read that fails leaves the id unknown, never the patient uncreated.
 */
static json_t *created_id(struct pl_tool_ctx *c, const char *created, const char *first,
                          const char *last, const char *cell)
{
	struct pl_err rerr = PL_ERR_INIT;
	json_t *p = NULL, *id;

	if (*created)
		return pl_tool_string(created);
	if (find(c, first, last, cell, &p, &rerr) || !pl_tool_field(p, "patient_id")) {
		json_decref(p);
		return json_null();
	}
	id = pl_tool_string(pl_tool_field(p, "patient_id"));
	json_decref(p);
	return id;
}

int pl_tool_create_patient(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                           struct pl_err *err)
{
	const char *first = pl_tool_text(a, "firstName"), *last = pl_tool_text(a, "lastName");
	const char *phone = pl_tool_text(a, "phone"), *email = pl_tool_text(a, "email");
	const char *dob = pl_tool_text(a, "dateOfBirth");
	char digits[32], cell[34], practice[64], wid[32], created[128], reason[256];
	enum pl_writeback state;
	json_t *patient = NULL, *body, *doc = NULL;
	char *text_body;
	int r;

	if (strlen(first) > NAME_MAX_BYTES || strlen(last) > NAME_MAX_BYTES)
		return bad(err, "firstName and lastName must be at most 100 bytes each");
	/* A new line or an escape in a name would be the practice's record for good. */
	if (!pl_tool_is_plain(first) || !pl_tool_is_plain(last) || !pl_tool_is_plain(email))
		return bad(err, "firstName, lastName and email must have no control characters");
	pl_phone_digits(phone, digits, sizeof(digits));
	if (!*digits)
		return bad(err, "phone must be a phone number");
	if (email && (strlen(email) > EMAIL_MAX_BYTES || !strchr(email, '@')))
		return bad(err, "email is not valid");
	if (dob && pl_tool_day(dob) > pl_tool_day(c->today))
		return bad(err, "dateOfBirth is in the future");
	snprintf(cell, sizeof(cell), "+%s", digits);
	if ((r = find(c, first, last, cell, &patient, err)))
		return r;
	if (patient) {
		*out = existing(c, patient);
		json_decref(patient);
		return 0;
	}
	if ((r = pl_tool_practice_id(c, practice, sizeof(practice), err)))
		return r;
	body = pl_json_x(json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:s}", "firstname", first,
	                           "lastname", last, "cell", cell, "email", email, "birthdate", dob,
	                           "practice_id", practice, "check_spu", "true"));
	text_body = pl_json_dump(body);
	json_decref(body);
	r = pl_tool_sikka(c, "POST", "/v4/patient", NULL, text_body, &doc, err);
	free(text_body);
	if (r && !strcmp(c->sk.last_code, "API2017")) {
		*out = not_created("failed", "The office's system is offline right now, so I can't "
		                             "register you; someone from the office will call you "
		                             "back.");
		return 0;
	}
	if (r)
		return r;
	r = pl_tool_writeback_id(doc, "new patient", wid, sizeof(wid), err);
	json_decref(doc);
	if (r)
		return r;
	pl_tool_writeback_wait(c, wid, &state, created, sizeof(created), reason, sizeof(reason));
	if (state == PL_WB_PENDING) {
		*out =
		    not_created("pending", "I've sent your details to the office, but your record "
		                           "isn't confirmed yet; the office will confirm it with "
		                           "you.");
	} else if (state == PL_WB_FAILED) {
		*out = not_created("failed", "I couldn't create your patient record; the office "
		                             "staff will help you register.");
		pl_json_set(*out, "reason", pl_json_x(json_string(reason)));
	} else {
		*out = pl_tool_result(1, "You're registered as a new patient.");
		pl_json_set(*out, "created", json_true());
		pl_json_set(*out, "status", pl_json_x(json_string("created")));
		pl_json_set(*out, "patientId", created_id(c, created, first, last, cell));
	}
	pl_json_set(*out, "confirmationNumber", pl_tool_string(wid));
	return 0;
}
