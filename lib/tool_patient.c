/*
 * getPatientInfo (alias lookupPatient): finds a patient; the full record only for the patient
 * calling from the phone on file, or the operator. The dispatcher refuses a "patient" in the
 * result unless pl_tool_caller_is said so.
 */
#include "tool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "vapi.h"
#include "banned.h"

/* The patient's next appointment from now, or JSON null. */
static int next_appointment(struct pl_tool_ctx *c, const char *patient_id, json_t **out,
                            struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	char until[11];
	json_t *doc = NULL, *a;
	size_t i;
	int r;

	*out = json_null();
	pl_tool_date(pl_tool_day(c->today) + 366, until);
	{
		char *e = pl_http_escape(patient_id);

		pl_buf_addf(&q, "patient_id=%s&startdate=%s&enddate=%s", e, c->today, until);
		free(e);
	}
	r = pl_tool_sikka(c, "GET", "/v4/appointments", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	/*
	 * Sikka's filter and order are trusted for nothing: only this patient's, not closed, to
	 * come, and the earliest of them (another patient's visit was told when it came first).
	 */
	json_array_foreach(pl_tool_items(doc), i, a)
	{
		const char *date = pl_tool_field(a, "date"), *st = pl_tool_field(a, "status"),
		           *pid = pl_tool_field(a, "patient_id");
		int m = pl_hhmm(pl_tool_field(a, "time"), PL_HHMM_SECONDS);
		long day = date ? pl_tool_day(date) : -1;
		char start[20];

		if (!pid || strcmp(pid, patient_id) || m < 0 || day < 0 ||
		    !pl_tool_date_shape(date) || day < pl_tool_day(c->today) ||
		    (day == pl_tool_day(c->today) && m < c->now_minute) ||
		    (st && (!strcasecmp(st, "cancelled") || !strcasecmp(st, "canceled") ||
		            !strcasecmp(st, "broken") || !strcasecmp(st, "deleted"))))
			continue;
		snprintf(start, sizeof(start), "%.10sT%02d:%02d", date, m / 60, m % 60);
		if (!json_is_null(*out) &&
		    strcmp(start, json_string_value(json_object_get(*out, "start"))) >= 0)
			continue;
		json_decref(*out);
		*out = pl_json_x(json_pack("{s:s, s:o?}", "start", start, "providerId",
		                           pl_tool_field(a, "provider_id")
		                               ? pl_tool_string(pl_tool_field(a, "provider_id"))
		                               : NULL));
	}
	json_decref(doc);
	return 0;
}

int pl_tool_get_patient_info(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                             struct pl_err *err)
{
	const char *query = pl_tool_text(a, "query");
	const char *phone = pl_tool_text(a, "phone");
	const char *first = pl_tool_text(a, "firstName");
	const char *last = pl_tool_text(a, "lastName");
	const char *dob = pl_tool_text(a, "dateOfBirth");
	const char *id;
	json_t *found = NULL, *p, *next = NULL;
	int r, may_see;

	if (!query && !phone && !(first && last))
		return pl_tool_bad_args(err, "getPatientInfo",
		                        "give query, phone, or firstName and lastName");
	if ((r = pl_tool_find_patients(c, query, phone, first, last, dob, &found, err)))
		goto out;
	if (!json_array_size(found)) {
		*out = pl_tool_result(0, "I couldn't find a patient matching that information.");
		pl_json_set(*out, "found", json_false());
		pl_json_set(*out, "verified", json_false());
		goto out;
	}
	p = json_array_get(found, 0);
	may_see = pl_tool_caller_is(c, p);
	if (!may_see) {
		/* PHI minimisation: a caller who is not the patient learns only that a record
		 * exists. */
		*out = pl_tool_result(1, "I found a matching record, but I can only share details "
		                         "with the patient calling from the phone number on file.");
		pl_json_set(*out, "found", json_true());
		pl_json_set(*out, "verified", json_false());
		goto out;
	}
	id = pl_tool_field(p, "patient_id");
	if ((r = next_appointment(c, id ? id : "", &next, err)))
		goto out;
	*out = pl_tool_result(1, "I found your record.");
	pl_json_set(*out, "found", json_true());
	pl_json_set(*out, "verified", json_boolean(!strcmp(c->rule, "verified-caller")));
	if (c->operator_access)
		pl_json_set(*out, "operatorAccess", json_true());
	pl_json_set(*out, "patient",
	            pl_json_x(json_pack("{s:s?, s:s?, s:s?, s:O}", "id", id, "firstName",
	                                pl_tool_field(p, "firstname"), "lastName",
	                                pl_tool_field(p, "lastname"), "nextAppointment", next)));
out:
	json_decref(found);
	json_decref(next);
	return r;
}
