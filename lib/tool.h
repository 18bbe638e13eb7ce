/*
 * The voice agent's tools: one table (name, aliases, argument schema, whether the tool touches a
 * patient, handler) and what a handler needs to talk to the practice's Sikka. Adding a tool is
 * one row in tool_table.c and one handler file; the dispatcher (vapi_handle.c) parses the
 * arguments from the schema and applies the caller rule before the handler runs.
 */
#ifndef PL_TOOL_H
#define PL_TOOL_H

#include <jansson.h>
#include <time.h>

#include "err.h"
#include "pms.h"
#include "session.h"
#include "sikka.h"
#include "store.h"

#define PL_TOOL_ID_MAX       64   /* an id argument: at most this many bytes */
#define PL_TOOL_MAX_ARGS     12   /* arguments in one row's schema */
#define PL_TOOL_DURATION_DFL 30   /* minutes, when a tool's duration is not given */
#define PL_TOOL_UPSTREAM_MIN 1440 /* an appointment's length from Sikka: at most a day */

/* --- the schema ---------------------------------------------------------------------------- */

enum pl_tool_type {
	PL_ARG_TEXT,       /* a string, or a number rendered as text; "" is absent */
	PL_ARG_NUMBER,     /* a JSON integer or a string of digits, min..max; "30abc" is bad */
	PL_ARG_ID,         /* an integer >= 0, or 1-64 letters, digits, '.', '_', '-' */
	PL_ARG_PATIENT_ID, /* an id naming the patient acted for: the caller rule applies to it */
	PL_ARG_DATE,       /* YYYY-MM-DD */
	PL_ARG_DATETIME,   /* local ISO 8601, YYYY-MM-DDTHH:MM[:SS] */
	PL_ARG_PHONE,      /* text (a phone number, matched by its digits) */
	PL_ARG_ENUM,       /* text, one of choices ("normal|urgent") */
};

struct pl_tool_arg {
	const char *name; /* camelCase; kebab-case and snake_case keys match too */
	enum pl_tool_type type;
	int required;
	long long min, max, dflt; /* PL_ARG_NUMBER: the range, and the value when absent */
	const char *choices;      /* PL_ARG_ENUM: "a|b|c" */
	const char *bad;          /* the error when missing (if required) or unreadable */
};

/* One argument once parsed: text is NULL when absent (num is then the default). */
struct pl_tool_val {
	const char *text; /* borrowed from the call's arguments, or in buf */
	long long num;
	char buf[32];
};

struct pl_tool_args {
	const struct pl_tool_arg *schema;
	size_t n;
	struct pl_tool_val v[PL_TOOL_MAX_ARGS];
};

/* An argument's text by its schema name, or NULL when absent. */
const char *pl_tool_text(const struct pl_tool_args *a, const char *name);
/* A number argument by its schema name (its default when absent). */
long long pl_tool_num(const struct pl_tool_args *a, const char *name);

/* --- the table ----------------------------------------------------------------------------- */

struct pl_tool_ctx;

#define PL_TOOL_TOUCHES_PATIENT 0x1 /* the caller rule applies (see vapi_handle.c) */
#define PL_TOOL_NO_PMS          0x2 /* runs without a connected Sikka integration */
#define PL_TOOL_WRITEBACK       0x4 /* waits for a writeback: keeps time in hand, has a status */

typedef int pl_tool_fn(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                       struct pl_err *err);

struct pl_tool {
	const char *name;               /* canonical, camelCase */
	const char *const *aliases;     /* other names, NULL-terminated, or NULL */
	const struct pl_tool_arg *args; /* ended by a row with name NULL */
	unsigned flags;
	const char
	    *refusal; /* PL_TOOL_TOUCHES_PATIENT: what the agent says when the rule refuses */
	pl_tool_fn *run;
};

/* The table's rows, ended by a row with name NULL. */
extern const struct pl_tool pl_tools[];

/* The tool by name: camelCase, kebab-case or snake_case, or an alias; NULL when none. */
const struct pl_tool *pl_tool_find(const char *name);

/*
 * Parse call arguments (an object) against t's schema into a; PL_EBADINPUT "<tool>: <why>" for
 * a required argument missing or any argument unreadable. a borrows from args.
 */
int pl_tool_parse_args(const struct pl_tool *t, const json_t *args, struct pl_tool_args *a,
                       struct pl_err *err);

/* --- the context of one message's tool calls ----------------------------------------------- */

struct pl_tool_ctx {
	struct pl_session *s;
	struct pl_db *db;
	const char *account;
	const char *caller; /* the caller's number as given, or NULL */
	int operator_access;
	const char *rule; /* which access rule let this call see a patient (audited), or NULL */
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
	double deadline;          /* the call's budget (monotonic seconds), 0 when none */
	int timeout_s;            /* Vapi's tool timeout for this message, seconds */
	int writeback;            /* the running tool writes: its requests are never retried */
	long timeout_ms, retries; /* the HTTP limits configured, restored after a budget */
	struct pl_store *store;
	struct pl_sikka sk;
	struct pl_pms_keys keys;
	char version[PL_STORE_VERSION_MAX];
};

/* Load the account's Sikka integration (timezone, hours, PMS); PL_ENOTFOUND if not connected. */
int pl_tool_load_integration(struct pl_tool_ctx *c, struct pl_err *err);
/*
 * Both in one statement: the integration (*icode and ierr as pl_tool_load_integration returns
 * them) and, when connected, the clock (its failure returned, as pl_tool_local_clock's).
 */
int pl_tool_load_practice(struct pl_tool_ctx *c, int *icode, struct pl_err *ierr,
                          struct pl_err *err);
/* Set c->today and c->now_minute: c->now in the practice's timezone. */
int pl_tool_local_clock(struct pl_tool_ctx *c, struct pl_err *err);
/*
 * c->db connected again: vapi listen gives a request's connection back to its pool while the
 * tool runs (pl_session_idle), so a tool that writes to the database asks for it first.
 */
int pl_tool_db(struct pl_tool_ctx *c, struct pl_err *err);
/* Release what the context loaded (keys, store, Sikka client, hours). */
void pl_tool_ctx_release(struct pl_tool_ctx *c);
/* Restore the HTTP limits after a budgeted call (c->deadline back to 0). */
void pl_tool_end_budget(struct pl_tool_ctx *c);

/*
 * One Sikka data call with the practice's keys (an expired key refreshed once), within
 * c->deadline when set. *doc a new reference on success.
 */
int pl_tool_sikka(struct pl_tool_ctx *c, const char *method, const char *path, const char *query,
                  const char *body, json_t **doc, struct pl_err *err);
/* The "items" array of a Sikka answer, or NULL (borrowed). */
/* The location a write is for: the onboarded one, else the practice's first, else "1". */
int pl_tool_practice_id(struct pl_tool_ctx *c, char *buf, size_t size, struct pl_err *err);
json_t *pl_tool_items(json_t *doc);
/* A string field, or NULL (borrowed). */
const char *pl_tool_field(const json_t *o, const char *key);
/* The first item's field of a GET path, copied into buf; NULL with *r 0 when none. */
const char *pl_tool_first_id(struct pl_tool_ctx *c, const char *path, const char *field, char *buf,
                             size_t size, struct pl_err *err, int *r);

/* Whether one of the patient's phones has these E.164 digits. */
int pl_tool_patient_has_phone(const json_t *patient, const char *digits);
/* Patients matching (query | phone | first+last), dob filtering; *found a new array. */
int pl_tool_find_patients(struct pl_tool_ctx *c, const char *query, const char *phone,
                          const char *first, const char *last, const char *dob, json_t **found,
                          struct pl_err *err);
/* The patient with exactly this id (new reference), or *patient NULL when Sikka has none. */
int pl_tool_patient_by_id(struct pl_tool_ctx *c, const char *id, json_t **patient,
                          struct pl_err *err);
/* Whether the caller may see this patient's record (sets c->rule): operator or caller's phone. */
int pl_tool_caller_is(struct pl_tool_ctx *c, const json_t *patient);
/* The caller rule for a patient id: *ok when the operator or the patient calling (c->rule set). */
int pl_tool_caller_may_act_for(struct pl_tool_ctx *c, const char *patient_id, int *ok,
                               struct pl_err *err);

enum pl_writeback { PL_WB_DONE, PL_WB_PENDING, PL_WB_FAILED };

/* The writeback id Sikka names in a write's answer ("... Id:123") into buf; PL_EUPSTREAM
 * "Sikka accepted the <what> but named no writeback id" when it names none. */
int pl_tool_writeback_id(const json_t *doc, const char *what, char *buf, size_t size,
                         struct pl_err *err);
/*
 * Wait for writeback id within PARLAE_WRITEBACK_WAIT (at most 10 s) and c->deadline:
 * *state done, pending (still running, or polling failed: never reported as done) or failed.
 * created (if not NULL) gets Sikka's created_id, reason its failure text ("" when none).
 */
void pl_tool_writeback_wait(struct pl_tool_ctx *c, const char *id, enum pl_writeback *state,
                            char *created, size_t csize, char *reason, size_t rsize);

/* The staff number for transfers (the call's own number first), "" if none; *enabled. */
int pl_tool_staff(struct pl_tool_ctx *c, char *staff, size_t size, int *enabled,
                  struct pl_err *err);
struct pl_buf;
/*
 * Text the staff number (best effort): text cut to one SMS, sent, then wiped. 1 when it went
 * (sid set); 0 when not, why ("Twilio error N", "SMS not configured", ...) never the text.
 */
int pl_tool_text_staff(struct pl_tool_ctx *c, const char *staff, struct pl_buf *text, char *sid,
                       size_t sid_size, char *why, size_t why_size);
/* Bytes of s's longest prefix Twilio counts as at most max characters (one SMS). */
size_t pl_tool_sms_cut(const char *s, size_t max);
/*
 * Each control character of s (C0, DEL, C1, U+2028, U+2029) made one space, in place: text from
 * the caller goes into a text to the staff or a Sikka record with no line of its own to forge.
 */
void pl_tool_plain(char *s);
/* Whether s (NULL too) has no control character pl_tool_plain would replace. */
int pl_tool_is_plain(const char *s);
/* A JSON string of s made valid UTF-8 (text from upstream), a new reference. */
json_t *pl_tool_string(const char *s);
/* {"success":success,"message":message} (new reference). */
json_t *pl_tool_result(int success, const char *message);
/* PL_EBADINPUT "<tool>: <what>". */
int pl_tool_bad_args(struct pl_err *err, const char *tool, const char *what);
/* The value of s when only ASCII digits and at most max, else -1. */
long long pl_tool_digits(const char *s, long long max);
/* Days since the epoch of a YYYY-MM-DD date (a time may follow), or -1 (also for 2026-02-30). */
long pl_tool_day(const char *date);
/* Whether s begins with "YYYY-MM-DD" in ASCII digits (what is cut from it then goes out as is). */
int pl_tool_date_shape(const char *s);
/* The YYYY-MM-DD of a day number. */
void pl_tool_date(long day, char out[11]);
/* "sun".."sat" of a day number. */
const char *pl_tool_weekday(long day);
/* "HH:MM" of minutes since midnight. */
void pl_tool_hhmm(int minutes, char out[6]);

/* The handlers, one per file. */
pl_tool_fn pl_tool_get_patient_info, pl_tool_check_availability, pl_tool_book_appointment,
    pl_tool_transfer_to_human;
/* tool_appointments.c */
pl_tool_fn pl_tool_get_appointments, pl_tool_reschedule_appointment, pl_tool_cancel_appointment;
/* New patients and messages for the staff (issue 13). */
pl_tool_fn pl_tool_create_patient, pl_tool_take_message;

#endif
