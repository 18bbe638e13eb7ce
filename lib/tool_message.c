/*
 * takeMessage: a message for the staff. It is kept in the call's log (the only place a message
 * is kept: never an audit event or a trace) and texted to the staff number on a best-effort
 * basis, so the caller is told it was taken even when the text does not go.
 */
#include "tool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "json.h"
#include "utf8.h"
#include "vapi.h"
#include "banned.h"

#define MESSAGE_MAX_BYTES 1000 /* what is kept of a message, cut between characters */
#define MESSAGES_PER_CALL "20" /* sql/0007's check */

/* Keep the message in the call's log; *index its place there, -1 when the log is full. */
static int keep(struct pl_tool_ctx *c, const char *message, const char *callback,
                const char *urgency, int *index, struct pl_err *err)
{
	const char *params[5] = {c->account, c->call_id, message, callback, urgency};
	struct pl_db_res res = PL_DB_RES_INIT;
	int r;

	if ((r = pl_tool_db(c, err)))
		return r;
	r = pl_db_query(c->db, &res,
	                "UPDATE vapi_call_logs SET messages = messages || jsonb_build_array("
	                "jsonb_build_object('at', now(), 'message', $3::text, 'callbackNumber',"
	                " $4::text, 'urgency', $5::text, 'smsSent', NULL, 'smsError', NULL)),"
	                " updated_at = now()"
	                " WHERE account_id = $1 AND call_id = $2"
	                " AND jsonb_array_length(messages) < " MESSAGES_PER_CALL
	                " RETURNING jsonb_array_length(messages) - 1",
	                5, params, err);
	if (r)
		return r;
	*index = pl_db_rows(&res) ? atoi(pl_db_val(&res, 0, 0)) : -1;
	pl_db_res_clear(&res);
	return 0;
}

/* Record whether the text to the staff went (and why not) on the message kept at index. */
static int mark_sent(struct pl_tool_ctx *c, int index, int sent, const char *why,
                     struct pl_err *err)
{
	char i[16];
	const char *params[5] = {c->account, c->call_id, i, sent ? "true" : "false",
	                         sent ? NULL : why};
	int r;

	snprintf(i, sizeof(i), "%d", index);
	if ((r = pl_tool_db(c, err)))
		return r;
	return pl_db_query(c->db, NULL,
	                   "UPDATE vapi_call_logs SET messages = jsonb_set(messages, ARRAY[$3],"
	                   " messages->($3::int) || jsonb_build_object('smsSent', $4::boolean,"
	                   " 'smsError', $5::text)), updated_at = now()"
	                   " WHERE account_id = $1 AND call_id = $2",
	                   5, params, err);
}

int pl_tool_take_message(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                         struct pl_err *err)
{
	const char *callback = pl_tool_text(a, "callbackNumber");
	const char *urgency = pl_tool_text(a, "urgency") ? pl_tool_text(a, "urgency") : "normal";
	char message[MESSAGE_MAX_BYTES + 1], digits[32], number[34] = "";
	char staff[40], sid[64], why[64];
	struct pl_buf text = PL_BUF_INIT;
	int r, enabled, index, sent = 0;

	if (callback) {
		pl_phone_digits(callback, digits, sizeof(digits));
		if (!*digits)
			return pl_tool_bad_args(err, "takeMessage",
			                        "callbackNumber must be a phone number");
	} else {
		pl_phone_digits(c->caller, digits, sizeof(digits));
	}
	if (*digits)
		snprintf(number, sizeof(number), "+%s", digits);
	pl_utf8_copy(message, sizeof(message), pl_tool_text(a, "message"));
	if ((r = keep(c, message, *number ? number : NULL, urgency, &index, err)))
		goto out;
	if (index < 0) {
		*out = pl_tool_result(0, "I can't take more messages on this call. Let me transfer "
		                         "you to the office staff instead.");
		pl_json_set(*out, "taken", json_false());
		pl_json_set(*out, "smsSent", json_false());
		goto out;
	}
	if ((r = pl_tool_staff(c, staff, sizeof(staff), &enabled, err)))
		goto out;
	/* Transfers enabled or not, the staff line is where messages for the staff go. */
	if (*staff) {
		pl_buf_addf(&text, "%sMessage for the office from caller %s, call back on %s: %s",
		            strcmp(urgency, "urgent") ? "" : "URGENT. ",
		            c->caller ? c->caller : "(unknown)", *number ? number : "(no number)",
		            message);
		sent = pl_tool_text_staff(c, staff, &text, sid, sizeof(sid), why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "no staff number");
	}
	if ((r = mark_sent(c, index, sent, why, err)))
		goto out;
	*out = pl_tool_result(1, strcmp(urgency, "urgent")
	                             ? "I've taken your message for the office staff; they will "
	                               "get back to you."
	                             : "I've taken your message and marked it urgent; the office "
	                               "staff will get back to you as soon as they can.");
	pl_json_set(*out, "taken", json_true());
	pl_json_set(*out, "smsSent", json_boolean(sent));
	if (!sent)
		pl_json_set(*out, "smsError", pl_json_x(json_string(why)));
out:
	explicit_bzero(message, sizeof(message));
	return r;
}
