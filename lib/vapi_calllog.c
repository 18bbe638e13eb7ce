/*
 * A Vapi call's log (one vapi_call_logs row per account and call id, updated as its tool calls
 * run, closed by the end-of-call report) and the audit event of each tool call.
 */
#include "vapi_handle.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "json.h"
#include "utf8.h"
#include "banned.h"

int pl_vapi_log_call(struct pl_db *db, const char *account, const char *call_id,
                     const char *phone_id, const char *tool, long long *count, struct pl_err *err)
{
	const char *params[4] = {call_id, account, phone_id, tool};
	struct pl_db_res res = PL_DB_RES_INIT;
	int r;

	/* The same call id under another account is another row: never this one. */
	r = pl_db_query(db, &res,
	                "INSERT INTO vapi_call_logs (call_id, account_id, vapi_phone_id, "
	                "tool_calls, tool_counts)"
	                " VALUES ($1, $2, $3, 1, jsonb_build_object($4::text, 1))"
	                " ON CONFLICT (account_id, call_id) DO UPDATE"
	                " SET tool_calls = vapi_call_logs.tool_calls + 1,"
	                " tool_counts = vapi_call_logs.tool_counts || jsonb_build_object($4::text,"
	                " coalesce((vapi_call_logs.tool_counts ->> $4::text)::bigint, 0) + 1),"
	                " updated_at = now()"
	                " RETURNING (tool_counts ->> $4::text)::bigint",
	                4, params, err);
	if (r)
		return r;
	*count = pl_db_rows(&res) ? atoll(pl_db_val(&res, 0, 0)) : 0;
	pl_db_res_clear(&res);
	return 0;
}

int pl_vapi_audit_call(struct pl_session *s, const struct pl_vapi_audit *a, struct pl_err *err)
{
	struct pl_audit_event ev = {a->account, "vapi.tool", "tool_call", a->tool_call_id, NULL};
	json_t *meta = pl_json_x(json_pack("{s:s, s:s, s:b, s:b, s:s?}", "tool", a->tool, "callId",
	                                   a->call_id, "operatorAccess", a->operator_access,
	                                   "success", a->success, "access", a->rule));
	char *text;
	int r;

	if (a->call_limit)
		pl_json_set(meta, "callLimit", json_true());
	text = pl_json_dump(meta);
	ev.metadata = text;
	r = pl_audit_append(s, &ev, a->code, err);
	free(text);
	json_decref(meta);
	return r;
}

int pl_vapi_end_call(struct pl_session *s, const char *account, const char *call_id,
                     struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[2] = {account, call_id};
	struct pl_db *db;
	int r, found;

	if ((r = pl_session_db(s, &db, err)))
		return r;
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
	                          pl_utf8_cut(call_id, 80), call_id, account);
}
