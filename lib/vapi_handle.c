/*
 * The one Vapi message handler. A server message comes in with its request's context; out
 * comes the exact reply (tool calls → {"results":[...]}, the legacy function-call →
 * {"result":...}, a transfer-destination-request → {"destination":...} or {"error":...}), an
 * end-of-call-report closes the call's log, anything else is skipped.
 *
 * Each tool call goes through the same steps, in this order: arguments that are not JSON, an
 * unknown tool, the practice's integration, --dry-run, the schema (pl_tool_parse_args), the
 * caller rule for a tool that touches a patient, the handler, then the log and audit event.
 * The caller rule lives here and only here: a patientId argument is checked before the handler
 * runs, and a result that carries a patient's record is refused unless the rule let it through.
 * A patient a handler finds itself (by the caller's number, or bookAppointment's name and
 * phone) is put to the same test, pl_tool_caller_is, before anything is read or sent.
 */
#include "vapi_handle.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "encode.h"
#include "json.h"
#include "tool.h"
#include "utf8.h"
#include "banned.h"

#define DEFAULT_TOOL_TIMEOUT 20  /* seconds: Vapi's default for a tool's server */
#define WRITEBACK_MARGIN     2.0 /* seconds of it a writeback keeps in hand */
#define DEFAULT_CALL_LIMIT   5   /* runs of one tool per call id */

void pl_vapi_outcomes_release(struct pl_vapi_outcome *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(out[i].result);
		free(out[i].error);
	}
	memset(out, 0, n * sizeof(*out));
}

void pl_vapi_answer_release(struct pl_vapi_answer *ans)
{
	if (ans->out) {
		pl_vapi_outcomes_release(ans->out, ans->msg.ncalls);
		free(ans->out);
	}
	free(ans->body);
	pl_vapi_msg_release(&ans->msg);
	memset(ans, 0, sizeof(*ans));
}

static int parse_now(const struct pl_vapi_ctx *ctx, const struct pl_vapi_msg *m,
                     const struct pl_config *cfg, time_t *now, struct pl_err *err)
{
	const char *env = pl_config_get(cfg, "PARLAE_NOW");
	struct tm tm = {0};
	const char *end;

	*now = time(NULL);
	if (ctx->as_of_payload) {
		if (!m->timestamp_ms)
			return pl_err_set(err, PL_EBADINPUT,
			                  "--as-of payload: the payload has no timestamp");
		*now = (time_t)(m->timestamp_ms / 1000);
		return 0;
	}
	if (!env)
		return 0;
	end = strptime(env, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end || (*end && strcmp(end, "Z") && strcmp(end, "+00:00"))) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_NOW must be an ISO 8601 UTC time");
		return pl_err_hint(err, "for example PARLAE_NOW=2026-12-01T14:00:00Z");
	}
	*now = timegm(&tm);
	return 0;
}

/* An unknown tool's error lists the tools, for the agent's prompt and the operator alike. */
static int unknown_tool(const char *name, struct pl_err *err)
{
	struct pl_buf tools = PL_BUF_INIT;

	for (const struct pl_tool *t = pl_tools; t->name; t++)
		pl_buf_addf(&tools, "%s%s", t == pl_tools ? "" : ", ", t->name);
	pl_err_set(err, PL_ENOTFOUND, "unknown tool '%.*s'; the tools are %s",
	           pl_utf8_cut(name, 80), name, tools.buf);
	pl_buf_release(&tools);
	return err->code;
}

/* The patient a call names by id (the schema's PL_ARG_PATIENT_ID), or NULL. */
static const char *patient_named(const struct pl_tool *t, const struct pl_tool_args *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (t->args[i].type == PL_ARG_PATIENT_ID && a->v[i].text)
			return a->v[i].text;
	return NULL;
}

/* What the agent hears when the caller rule refuses: nothing was read or changed. */
static json_t *refused(const struct pl_tool *t)
{
	json_t *res = pl_tool_result(0, t->refusal ? t->refusal
	                                           : "I can only help the patient calling from the "
	                                             "phone number on file. The office staff can "
	                                             "verify who you are and help you.");

	if (t->flags & PL_TOOL_WRITEBACK)
		pl_json_set(res, "status", pl_json_x(json_string("failed")));
	pl_json_set(res, "verified", json_false());
	return res;
}

/* The caller rule, then the handler; a patient's record leaves only if the rule allowed it. */
static int run_tool(struct pl_tool_ctx *c, const struct pl_tool *t, const struct pl_tool_args *a,
                    json_t **res, struct pl_err *err)
{
	const char *patient = patient_named(t, a);
	int r, ok;

	/* A patient named by id is checked whatever the row says: a flag left off skips nothing. */
	if (patient) {
		if ((r = pl_tool_caller_may_act_for(c, patient, &ok, err)))
			return r;
		if (!ok) {
			*res = refused(t);
			return 0;
		}
	}
	if ((r = t->run(c, a, res, err)))
		return r;
	if (json_object_get(*res, "patient") &&
	    (!(t->flags & PL_TOOL_TOUCHES_PATIENT) || !c->rule ||
	     (strcmp(c->rule, "operator") && strcmp(c->rule, "verified-caller")))) {
		json_decref(*res);
		*res = NULL;
		return pl_err_set(err, PL_EINTERNAL,
		                  "%s returned a patient's record the caller rule did not allow",
		                  t->name);
	}
	return 0;
}

/* The per-call limit and the clock of one message's calls. */
struct limits {
	double start;        /* pl_monotonic() when the message arrived */
	long long per_call;  /* runs of one tool per call id */
	long long count;     /* this run of this tool on this call, from the call log (0: none) */
	int integration_err; /* the practice's integration could not be loaded */
	struct pl_err ierr;  /* and why */
};

/* Beyond the per-call limit the agent is told to hand the caller to a person. */
static json_t *limited(const struct pl_tool *t, long long per_call)
{
	char msg[256];
	json_t *res;

	snprintf(msg, sizeof(msg),
	         "%s has already run %lld times on this call, the most it may; transfer the caller "
	         "to a member of staff.",
	         t->name, per_call);
	res = pl_tool_result(0, msg);
	pl_json_set(res, "callLimitReached", json_true());
	return res;
}

static int run_one(struct pl_tool_ctx *c, const struct pl_vapi_call *call, const struct limits *lim,
                   const struct pl_tool **tp, json_t **res, struct pl_err *err)
{
	const struct pl_tool *t;
	struct pl_tool_args a;
	int r;

	*tp = NULL;
	if (call->bad_args)
		return pl_err_set(err, PL_EBADINPUT, "%s: %s", call->name, call->bad_args);
	if (!(*tp = t = pl_tool_find(call->name)))
		return unknown_tool(call->name, err);
	if (lim->count > lim->per_call) {
		*res = limited(t, lim->per_call);
		return 0;
	}
	if (!(t->flags & PL_TOOL_NO_PMS) && lim->integration_err) {
		*err = lim->ierr;
		return lim->integration_err;
	}
	if (c->s->dry_run) {
		char msg[128];

		snprintf(msg, sizeof(msg), "would run %s", t->name);
		*res = pl_tool_result(1, msg);
		pl_json_set(*res, "dryRun", json_true());
		return 0;
	}
	if ((r = pl_tool_parse_args(t, call->args, &a, err)))
		return r;
	/*
	 * Every tool answers inside Vapi's tool timeout, counted from the message's arrival: an
	 * agent that gave up would ask again (and book twice). A writeback keeps 2 s in hand.
	 */
	c->writeback = (t->flags & PL_TOOL_WRITEBACK) != 0;
	c->deadline = lim->start + c->timeout_s - (c->writeback ? WRITEBACK_MARGIN : 0);
	r = run_tool(c, t, &a, res, err);
	pl_tool_end_budget(c);
	return r;
}

/* A whole number from the environment, from min to max, else dflt; PL_ECONFIG if unreadable. */
static int config_number(const struct pl_config *cfg, const char *name, long long min,
                         long long max, long long dflt, long long *v, struct pl_err *err)
{
	const char *s = pl_config_get(cfg, name);

	*v = dflt;
	if (!s)
		return 0;
	if ((*v = pl_tool_digits(s, max)) < min)
		return pl_err_set(err, PL_ECONFIG, "%s must be a whole number from %lld to %lld",
		                  name, min, max);
	return 0;
}

/*
 * Run every call of m into out[]. Non-zero when nothing could run (unknown account, database
 * down, ...) or when the calls ran but could not be recorded: out[] is then filled and the
 * reply still stands.
 */
static int run_calls(struct pl_session *s, const struct pl_vapi_ctx *ctx,
                     const struct pl_vapi_msg *m, struct pl_vapi_outcome *out, char *account,
                     size_t account_size, struct pl_err *err)
{
	struct limits lim = {pl_monotonic(), 0, 0, 0, PL_ERR_INIT};
	char call_id[40];
	struct pl_tool_ctx c = {0};
	long long timeout;
	int r;

	c.s = s;
	c.operator_access = ctx->operator_access;
	c.caller = ctx->caller ? ctx->caller : m->caller;
	c.phone_id = m->phone_number_id;
	if ((r = config_number(s->cfg, "PARLAE_TOOL_TIMEOUT", 1, 300, DEFAULT_TOOL_TIMEOUT,
	                       &timeout, err)) ||
	    (r = config_number(s->cfg, "PARLAE_TOOL_CALL_LIMIT", 1, 1000, DEFAULT_CALL_LIMIT,
	                       &lim.per_call, err)))
		return r;
	c.timeout_s = m->timeout_s ? m->timeout_s : (int)timeout;
	if ((r = pl_session_db(s, &c.db, err)) ||
	    (r = pl_vapi_account(c.db, ctx->account, m, account, account_size, err)))
		return r;
	c.account = account;
	if ((r = parse_now(ctx, m, s->cfg, &c.now, err)))
		return r;
	if (ctx->call_id || m->call_id) {
		c.call_id = ctx->call_id ? ctx->call_id : m->call_id;
	} else {
		if (pl_random_hex(call_id, 16) < 0)
			return pl_err_set(err, PL_EINTERNAL,
			                  "no randomness available for a call id");
		c.call_id = call_id;
	}
	if ((r = pl_tool_load_practice(&c, &lim.integration_err, &lim.ierr, err)))
		goto out;
	for (size_t i = 0; i < m->ncalls; i++) {
		const struct pl_tool *known = pl_tool_find(m->calls[i].name), *t;
		struct pl_err cerr = PL_ERR_INIT;
		json_t *res = NULL;
		int code;

		lim.count = 0;
		if (!s->dry_run && !r &&
		    ((r = pl_session_db(s, &c.db, err)) ||
		     (r = pl_vapi_log_call(c.db, c.account, c.call_id, c.phone_id,
		                           known ? known->name : "unknown", &lim.count, err))))
			goto out;
		c.rule = NULL;
		/* A server's pooled connection is not held while the tool waits on Sikka. */
		pl_session_idle(s);
		code = run_one(&c, &m->calls[i], &lim, &t, &res, &cerr);
		if (code) {
			out[i].code = code;
			out[i].error = pl_xstrdup(cerr.msg);
		} else {
			out[i].result = pl_json_dump(res);
		}
		/* A call that ran but could not be recorded still answers the agent; the run fails.
		 */
		if (!s->dry_run && !r) {
			struct pl_vapi_audit ev = {
			    c.account,
			    c.call_id,
			    m->calls[i].id,
			    t ? t->name : "unknown",
			    c.rule,
			    c.operator_access,
			    !code && json_is_true(json_object_get(res, "success")),
			    code,
			    t && lim.count > lim.per_call};

			if ((r = pl_vapi_audit_call(s, &ev, err)))
				pl_err_prefix(err,
				              "the tool calls ran, but their audit events could "
				              "not be written");
		}
		json_decref(res);
	}
out:
	pl_tool_ctx_release(&c);
	return r;
}

static int end_call(struct pl_session *s, const struct pl_vapi_ctx *ctx, struct pl_vapi_answer *ans,
                    struct pl_err *err)
{
	struct pl_db *db;
	int r;

	if (!ans->msg.call_id)
		return pl_err_set(err, PL_EBADINPUT, "the end-of-call-report has no call id");
	if ((r = pl_session_db(s, &db, err)) ||
	    (r = pl_vapi_account(db, ctx->account, &ans->msg, ans->account, sizeof(ans->account),
	                         err)))
		return r;
	if (s->dry_run)
		return 0;
	return pl_vapi_end_call(s, ans->account, ans->msg.call_id, err);
}

/*
 * Vapi asks where to transfer the call: the account's staff number when transfers are
 * enabled, which the call's log then records; otherwise an error Vapi speaks instead.
 */
static int transfer_destination(struct pl_session *s, const struct pl_vapi_ctx *ctx,
                                struct pl_vapi_answer *ans, struct pl_err *err)
{
	static const char say[] = "I'm transferring you to our staff now.";
	struct pl_tool_ctx c = {0};
	const char *params[3];
	char staff[40];
	json_t *reply;
	int r, enabled;

	c.s = s;
	c.phone_id = ans->msg.phone_number_id;
	c.account = ans->account;
	if ((r = pl_session_db(s, &c.db, err)) ||
	    (r = pl_vapi_account(c.db, ctx->account, &ans->msg, ans->account, sizeof(ans->account),
	                         err)) ||
	    (r = pl_tool_staff(&c, staff, sizeof(staff), &enabled, err)))
		return r;
	if (!*staff || !enabled) {
		reply = pl_json_x(
		    json_pack("{s:s}", "error",
		              !*staff ? "No staff number is set up for transfers at this practice."
		                      : "Transfers are not enabled for this practice's number."));
		ans->status = PL_ENOTFOUND;
	} else {
		reply = pl_json_x(json_pack("{s:{s:s, s:o, s:s}, s:s}", "destination", "type",
		                            "number", "number", pl_tool_string(staff), "message",
		                            say, "message", say));
	}
	ans->body = pl_json_dump(reply);
	ans->len = strlen(ans->body);
	json_decref(reply);
	if (ans->status || s->dry_run || !ans->msg.call_id)
		return 0;
	params[0] = ans->msg.call_id;
	params[1] = ans->account;
	params[2] = ans->msg.phone_number_id;
	/* The call's log says it was transferred; the end-of-call report keeps that status. */
	return pl_db_query(
	    c.db, NULL,
	    "INSERT INTO vapi_call_logs (call_id, account_id, vapi_phone_id,"
	    " transfer_requested, status) VALUES ($1, $2, $3, true, 'transferred')"
	    " ON CONFLICT (account_id, call_id) DO UPDATE"
	    " SET transfer_requested = true, status = 'transferred', updated_at = now()",
	    3, params, err);
}

int pl_vapi_handle_msg(struct pl_session *s, const struct pl_vapi_ctx *ctx, struct pl_vapi_msg *m,
                       struct pl_vapi_answer *ans, struct pl_err *err)
{
	struct pl_vapi_outcome *last;
	json_t *reply;
	int r;

	memset(ans, 0, sizeof(*ans));
	ans->msg = *m;
	memset(m, 0, sizeof(*m));
	m = &ans->msg;
	if (!m->ncalls) {
		if (!strcmp(m->type, "end-of-call-report")) {
			ans->kind = PL_VAPI_ENDED;
			return end_call(s, ctx, ans, err);
		}
		if (!strcmp(m->type, "transfer-destination-request")) {
			ans->kind = PL_VAPI_TRANSFER;
			return transfer_destination(s, ctx, ans, err);
		}
		ans->kind = PL_VAPI_SKIPPED;
		return 0;
	}
	ans->kind = PL_VAPI_CALLS;
	ans->out = pl_xcalloc(m->ncalls, sizeof(*ans->out));
	r = run_calls(s, ctx, m, ans->out, ans->account, sizeof(ans->account), err);
	last = &ans->out[m->ncalls - 1];
	if (r && !last->result && !last->error)
		return r; /* nothing ran: no reply */
	reply = pl_vapi_reply(m, ans->out);
	ans->body = pl_json_dump(reply);
	ans->len = strlen(ans->body);
	json_decref(reply);
	ans->status = pl_vapi_status(ans->out, m->ncalls);
	return r;
}

int pl_vapi_handle(struct pl_session *s, const struct pl_vapi_ctx *ctx, const char *body,
                   size_t len, struct pl_vapi_answer *ans, struct pl_err *err)
{
	struct pl_vapi_msg m;
	int r;

	memset(ans, 0, sizeof(*ans));
	if ((r = pl_vapi_parse(body, len, &m, err)))
		return r;
	return pl_vapi_handle_msg(s, ctx, &m, ans, err);
}
