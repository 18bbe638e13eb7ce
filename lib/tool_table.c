/*
 * The tool table: every tool the voice agent may call, with its aliases, its argument schema
 * and whether it touches a patient. Adding a tool is one row here and one handler file.
 * Arguments are read strictly from the schema before any handler runs.
 */
#include "tool.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "utf8.h"
#include "vapi.h"
#include "banned.h"

#define DURATION(dflt)                                                                             \
	{                                                                                          \
		"duration", PL_ARG_NUMBER, 0, 5, 480, dflt, NULL,                                  \
		    "duration must be a whole number of minutes from 5 to 480"                     \
	}
#define PROVIDER_ID                                                                                \
	{                                                                                          \
		"providerId", PL_ARG_ID, 0, 0, 0, 0, NULL,                                         \
		    "providerId must be a number or letters and digits"                            \
	}
#define TEXT(name)                                                                                 \
	{                                                                                          \
		name, PL_ARG_TEXT, 0, 0, 0, 0, NULL, NULL                                          \
	}
#define PHONE(name)                                                                                \
	{                                                                                          \
		name, PL_ARG_PHONE, 0, 0, 0, 0, NULL, NULL                                         \
	}
#define END_OF_SCHEMA                                                                              \
	{                                                                                          \
		NULL, PL_ARG_TEXT, 0, 0, 0, 0, NULL, NULL                                          \
	}

static const struct pl_tool_arg get_patient_info_args[] = {
    TEXT("query"),    PHONE("phone"),      TEXT("firstName"),
    TEXT("lastName"), TEXT("dateOfBirth"), END_OF_SCHEMA,
};

static const struct pl_tool_arg check_availability_args[] = {
    {"date", PL_ARG_DATE, 1, 0, 0, 0, NULL, "date must be YYYY-MM-DD"},
    DURATION(PL_TOOL_DURATION_DFL),
    PROVIDER_ID,
    TEXT("appointmentType"),
    END_OF_SCHEMA,
};

static const struct pl_tool_arg book_appointment_args[] = {
    {"startTime", PL_ARG_DATETIME, 1, 0, 0, 0, NULL,
     "startTime must be a local time like 2026-12-01T10:00:00"},
    {"patientId", PL_ARG_PATIENT_ID, 0, 0, 0, 0, NULL,
     "patientId must be a number or letters and digits"},
    PROVIDER_ID,
    DURATION(PL_TOOL_DURATION_DFL),
    TEXT("firstName"),
    TEXT("lastName"),
    PHONE("phone"),
    TEXT("appointmentType"),
    TEXT("notes"),
    END_OF_SCHEMA,
};

static const struct pl_tool_arg transfer_to_human_args[] = {
    {"reason", PL_ARG_TEXT, 1, 0, 0, 0, NULL, "reason is required"},
    TEXT("summary"),
    TEXT("patientInfo"),
    END_OF_SCHEMA,
};

#define APPOINTMENT_ID                                                                             \
	{                                                                                          \
		"appointmentId", PL_ARG_ID, 1, 0, 0, 0, NULL,                                      \
		    "appointmentId is required: a number or letters and digits"                    \
	}

static const struct pl_tool_arg get_appointments_args[] = {
    {"patientId", PL_ARG_PATIENT_ID, 0, 0, 0, 0, NULL,
     "patientId must be a number or letters and digits"},
    {"from", PL_ARG_DATE, 0, 0, 0, 0, NULL, "from must be YYYY-MM-DD"},
    {"to", PL_ARG_DATE, 0, 0, 0, 0, NULL, "to must be YYYY-MM-DD"},
    END_OF_SCHEMA,
};

static const struct pl_tool_arg reschedule_appointment_args[] = {
    APPOINTMENT_ID,
    {"startTime", PL_ARG_DATETIME, 1, 0, 0, 0, NULL,
     "startTime must be a local time like 2026-12-01T10:00:00"},
    DURATION(PL_TOOL_DURATION_DFL),
    END_OF_SCHEMA,
};

static const struct pl_tool_arg cancel_appointment_args[] = {
    APPOINTMENT_ID,
    TEXT("reason"),
    END_OF_SCHEMA,
};

#define CHANGE_REFUSAL                                                                             \
	"I can only change appointments for the patient calling from the phone number on file. "   \
	"The office staff can verify who you are and help you."

static const struct pl_tool_arg create_patient_args[] = {
    {"firstName", PL_ARG_TEXT, 1, 0, 0, 0, NULL, NULL},
    {"lastName", PL_ARG_TEXT, 1, 0, 0, 0, NULL, NULL},
    {"phone", PL_ARG_PHONE, 1, 0, 0, 0, NULL, NULL},
    TEXT("email"),
    {"dateOfBirth", PL_ARG_DATE, 0, 0, 0, 0, NULL, "dateOfBirth must be YYYY-MM-DD"},
    END_OF_SCHEMA,
};

static const struct pl_tool_arg take_message_args[] = {
    {"message", PL_ARG_TEXT, 1, 0, 0, 0, NULL, NULL},
    PHONE("callbackNumber"),
    {"urgency", PL_ARG_ENUM, 0, 0, 0, 0, "normal|urgent", "urgency must be normal or urgent"},
    END_OF_SCHEMA,
};

static const char *const get_patient_info_aliases[] = {"lookupPatient", NULL};

const struct pl_tool pl_tools[] = {
    {"getPatientInfo", get_patient_info_aliases, get_patient_info_args, PL_TOOL_TOUCHES_PATIENT,
     NULL, pl_tool_get_patient_info},
    {"checkAvailability", NULL, check_availability_args, 0, NULL, pl_tool_check_availability},
    {"bookAppointment", NULL, book_appointment_args, PL_TOOL_TOUCHES_PATIENT | PL_TOOL_WRITEBACK,
     "I can only book for the patient calling from the phone number on file. The office staff "
     "can verify who you are and book it for you.",
     pl_tool_book_appointment},
    {"transferToHuman", NULL, transfer_to_human_args, PL_TOOL_NO_PMS, NULL,
     pl_tool_transfer_to_human},
    {"getAppointments", NULL, get_appointments_args, PL_TOOL_TOUCHES_PATIENT,
     "I can only share appointments with the patient calling from the phone number on file. The "
     "office staff can verify who you are and help you.",
     pl_tool_get_appointments},
    {"rescheduleAppointment", NULL, reschedule_appointment_args,
     PL_TOOL_TOUCHES_PATIENT | PL_TOOL_WRITEBACK, CHANGE_REFUSAL, pl_tool_reschedule_appointment},
    {"cancelAppointment", NULL, cancel_appointment_args,
     PL_TOOL_TOUCHES_PATIENT | PL_TOOL_WRITEBACK, CHANGE_REFUSAL, pl_tool_cancel_appointment},
    {"createPatient", NULL, create_patient_args, PL_TOOL_TOUCHES_PATIENT | PL_TOOL_WRITEBACK, NULL,
     pl_tool_create_patient},
    {"takeMessage", NULL, take_message_args, PL_TOOL_NO_PMS, NULL, pl_tool_take_message},
    {NULL, NULL, NULL, 0, NULL, NULL},
};

static int same_name(const char *folded, const char *name)
{
	char f[64];

	pl_vapi_fold(name, f, sizeof(f));
	return !strcmp(folded, f);
}

const struct pl_tool *pl_tool_find(const char *name)
{
	char f[64];

	pl_vapi_fold(name, f, sizeof(f));
	for (const struct pl_tool *t = pl_tools; t->name; t++) {
		if (same_name(f, t->name))
			return t;
		for (size_t i = 0; t->aliases && t->aliases[i]; i++)
			if (same_name(f, t->aliases[i]))
				return t;
	}
	return NULL;
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
		n = pl_tool_digits(json_string_value(a), max);
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
 * PL_TOOL_ID_MAX + 1 bytes). -1 for anything else.
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
	if (!json_is_string(a) || strlen(s = json_string_value(a)) > PL_TOOL_ID_MAX)
		return -1;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return -1;
	*out = s;
	return 0;
}

static int one_of(const char *choices, const char *s)
{
	size_t n = strlen(s);

	for (const char *p = choices; p && *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && !strncmp(p, s, n))
			return 1;
		p = bar ? bar + 1 : p + len;
	}
	return 0;
}

/* What may follow a time's HH:MM: nothing, or ":SS" (00-59) and nothing after it. */
static int seconds_or_none(const char *s)
{
	if (!*s)
		return 1;
	return s[0] == ':' && s[1] >= '0' && s[1] <= '5' && s[2] >= '0' && s[2] <= '9' && !s[3];
}

/* One argument: 0 and v filled (text NULL when absent), or -1 when unreadable. */
static int parse_one(const struct pl_tool_arg *def, const json_t *args, struct pl_tool_val *v)
{
	const json_t *raw = pl_vapi_arg(args, def->name);
	const char *t;

	v->text = NULL;
	v->num = 0;
	switch (def->type) {
	case PL_ARG_NUMBER:
		if (arg_number(args, def->name, def->min, def->max, def->dflt, &v->num))
			return -1;
		if (raw && !json_is_null(raw) &&
		    !(json_is_string(raw) && !*json_string_value(raw))) {
			snprintf(v->buf, sizeof(v->buf), "%lld", v->num);
			v->text = v->buf;
		}
		return 0;
	case PL_ARG_ID:
	case PL_ARG_PATIENT_ID:
		return arg_id(args, def->name, v->buf, sizeof(v->buf), &v->text);
	default:
		break;
	}
	/*
	 * An object, array or boolean where a date, phone or choice goes is bad input: taken as
	 * absent, {"urgency":["urgent"]} was a normal message and {"from":{...}} today. Free text
	 * of the wrong type is still left out: a summary must never keep a caller from a person.
	 */
	if (def->type != PL_ARG_TEXT && raw && !json_is_null(raw) && !json_is_string(raw) &&
	    !json_is_number(raw))
		return -1;
	t = pl_vapi_text(raw, v->buf, sizeof(v->buf));
	if (!t)
		return 0;
	/* Dates exactly YYYY-MM-DD, times YYYY-MM-DDTHH:MM[:SS]: handlers cut them by position. */
	if ((def->type == PL_ARG_DATE || def->type == PL_ARG_DATETIME) &&
	    (!pl_tool_date_shape(t) || pl_tool_day(t) < 0))
		return -1;
	if (def->type == PL_ARG_DATE && t[10])
		return -1;
	if (def->type == PL_ARG_DATETIME &&
	    ((t[10] != 'T' && t[10] != ' ') || strlen(t) < 16 || t[13] != ':' ||
	     pl_hhmm(t + 11, PL_HHMM_SECONDS) < 0 || !seconds_or_none(t + 16)))
		return -1;
	if (def->type == PL_ARG_ENUM && !one_of(def->choices, t))
		return -1;
	v->text = t;
	return 0;
}

int pl_tool_parse_args(const struct pl_tool *t, const json_t *args, struct pl_tool_args *a,
                       struct pl_err *err)
{
	memset(a, 0, sizeof(*a));
	a->schema = t->args;
	for (const struct pl_tool_arg *def = t->args; def->name; def++) {
		struct pl_tool_val *v = &a->v[a->n++];

		if (a->n > PL_TOOL_MAX_ARGS)
			return pl_err_set(err, PL_EINTERNAL, "%s: too many arguments in the schema",
			                  t->name);
		if (parse_one(def, args, v) < 0 || (def->required && !v->text)) {
			if (def->bad)
				return pl_tool_bad_args(err, t->name, def->bad);
			return pl_err_set(err, PL_EBADINPUT, "%s: %s %s", t->name, def->name,
			                  v->text || !def->required ? "is not valid"
			                                            : "is required");
		}
	}
	return 0;
}

static const struct pl_tool_val *val(const struct pl_tool_args *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->schema[i].name, name))
			return &a->v[i];
	return NULL;
}

const char *pl_tool_text(const struct pl_tool_args *a, const char *name)
{
	const struct pl_tool_val *v = val(a, name);

	return v ? v->text : NULL;
}

long long pl_tool_num(const struct pl_tool_args *a, const char *name)
{
	const struct pl_tool_val *v = val(a, name);

	return v ? v->num : 0;
}
