#include "audit.h"

#include "banned.h"

const char *pl_audit_outcome(int code)
{
	if (code == PL_OK)
		return "success";
	if (code == PL_ENO || code == PL_ESECURITY)
		return "denied";
	return "failure";
}

int pl_audit_append(struct pl_session *s, const struct pl_audit_event *ev, int code,
		    struct pl_err *err)
{
	struct pl_db *db;
	const char *params[10];
	int r;

	if ((r = pl_session_db(s, &db, err)))
		return r;
	params[0] = pl_session_actor(s);
	params[1] = s->host;
	params[2] = ev->account_id;
	params[3] = ev->action;
	params[4] = ev->resource_type;
	params[5] = ev->resource_id;
	params[6] = pl_audit_outcome(code);
	params[7] = code ? pl_err_name(code) : NULL;
	params[8] = s->request_id[0] ? s->request_id : NULL;
	params[9] = ev->metadata ? ev->metadata : "{}";
	return pl_db_query(db, NULL,
			   "INSERT INTO audit_events (actor, host, account_id, action, resource_type,"
			   " resource_id, outcome, error_code, request_id, metadata)"
			   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
			   10, params, err);
}

int pl_audit_finish(struct pl_session *s, const struct pl_audit_event *ev, int code,
		    struct pl_err *err)
{
	struct pl_err ignored = PL_ERR_INIT;

	if (!code) {
		code = pl_audit_append(s, ev, PL_OK, err);
		if (!code && s->db.in_tx)
			code = pl_db_commit(&s->db, err);
		if (!code)
			return 0;
	}
	pl_db_rollback(&s->db);
	if (s->db.conn)
		pl_audit_append(s, ev, code, &ignored);
	return code;
}
