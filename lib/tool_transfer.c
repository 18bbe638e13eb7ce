/*
 * transferToHuman: texts the staff number (best effort) and returns the destination, so a
 * caller who asks for a human is never stranded.
 */
#include "tool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "encode.h"
#include "json.h"
#include "twilio.h"
#include "utf8.h"
#include "banned.h"

#define SMS_MAX_CHARS  1600 /* Twilio's limit for one (concatenated) message */
#define SMS_MARGIN     1.0  /* seconds of the tool's time kept for after the text */
#define KEPT_MAX_BYTES 1000 /* of a reason or a summary in the call's log, as of a message */

/*
 * Text the staff (best effort), for every tool that does: the text is cut between characters to
 * one (concatenated) SMS, sent through Twilio, then wiped, since it holds what the caller said.
 * 1 when it went (sid set), else 0 and why: Twilio's error code, or that SMS is not configured
 * or the service could not be reached (never the text).
 */
int pl_tool_text_staff(struct pl_tool_ctx *c, const char *staff, struct pl_buf *text, char *sid,
                       size_t sid_size, char *why, size_t why_size)
{
	struct pl_err serr = PL_ERR_INIT;
	long code = 0;
	double t0;
	int sent;

	/* What the caller said gets no line of its own: a forged "URGENT. Message ..." say. */
	if (text->len) /* an empty buffer is the shared "", not to be written */
		pl_tool_plain(text->buf);
	/* Twilio refuses a longer text (21617): the staff get its beginning. */
	text->len = pl_tool_sms_cut(text->buf, SMS_MAX_CHARS);
	text->buf[text->len] = '\0';
	t0 = pl_monotonic();
	/* Inside the tool's time, with a moment left to record what happened and answer. */
	sent = !pl_twilio_sms(c->s->cfg, c->deadline ? c->deadline - SMS_MARGIN : 0, staff,
	                      text->buf, sid, sid_size, &code, &serr);
	c->s->upstream_s += pl_monotonic() - t0;
	pl_buf_wipe(text);
	*why = '\0';
	if (sent)
		return 1;
	if (code)
		snprintf(why, why_size, "Twilio error %ld", code);
	else if (serr.code == PL_ECONFIG)
		snprintf(why, why_size, "SMS not configured");
	else if (serr.code == PL_ETIMEOUT)
		snprintf(why, why_size, "SMS service timed out");
	else
		snprintf(why, why_size, "SMS service unreachable");
	return 0;
}

/*
 * A caller who asks for a human is never stranded: with transfers enabled the answer is the
 * destination whatever happens to the text to the staff, which is best effort. The call log
 * keeps whether it went and, if not, why: Twilio's error code or that it could not be reached
 * (never the text, which holds what the caller said).
 */
int pl_tool_transfer_to_human(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                              struct pl_err *err)
{
	const char *reason = pl_tool_text(a, "reason"), *summary = pl_tool_text(a, "summary");
	const char *params[6];
	struct pl_buf body = PL_BUF_INIT;
	char staff[40], sid[64], why[64], kept_reason[KEPT_MAX_BYTES + 1],
	    kept_summary[KEPT_MAX_BYTES + 1];
	int r, enabled, sent;

	if ((r = pl_tool_staff(c, staff, sizeof(staff), &enabled, err)))
		return r;
	if (!*staff || !enabled) {
		*out = pl_tool_result(
		    0, !*staff ? "No staff number is set up for transfers at this practice."
		               : "Transfers are not enabled for this practice's number.");
		return 0;
	}
	pl_buf_addf(&body, "Caller %s asks for a person: %s.%s%s",
	            c->caller ? c->caller : "(unknown)", reason, summary ? " " : "",
	            summary ? summary : "");
	sent = pl_tool_text_staff(c, staff, &body, sid, sizeof(sid), why, sizeof(why));
	/* The log keeps their beginnings, cut between characters: a payload may hold 1 MiB. */
	pl_utf8_copy(kept_reason, sizeof(kept_reason), reason);
	if (summary)
		pl_utf8_copy(kept_summary, sizeof(kept_summary), summary);
	params[0] = c->account;
	params[1] = c->call_id;
	params[2] = kept_reason;
	params[3] = summary ? kept_summary : NULL;
	params[4] = sent ? "true" : "false";
	params[5] = sent ? NULL : why;
	if ((r = pl_tool_db(c, err)))
		return r;
	r = pl_db_query(c->db, NULL,
	                "UPDATE vapi_call_logs SET transfer_requested = true, transfer_reason = $3,"
	                " transfer_summary = $4, sms_sent = $5::boolean, sms_error = $6,"
	                " status = 'transferred', updated_at = now()"
	                " WHERE account_id = $1 AND call_id = $2",
	                6, params, err);
	if (r)
		return r;
	*out = pl_tool_result(1, "I'm transferring you to our staff now.");
	pl_json_set(*out, "destination",
	            pl_json_x(json_pack("{s:s, s:o, s:s}", "type", "number", "number",
	                                pl_tool_string(staff), "message", "Transferring you now")));
	pl_json_set(*out, "smsSent", json_boolean(sent));
	pl_json_set(*out, "smsSid", sent ? pl_tool_string(sid) : json_null());
	if (!sent)
		pl_json_set(*out, "smsError", pl_json_x(json_string(why)));
	return 0;
}
