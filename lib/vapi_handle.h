/*
 * The one Vapi message handler: a server message in, the exact reply out, with everything a
 * command needs to print and exit. `vapi tool invoke`, `vapi replay` and `vapi listen` all go
 * through pl_vapi_handle; commands parse and print only.
 */
#ifndef PL_VAPI_HANDLE_H
#define PL_VAPI_HANDLE_H

#include <stddef.h>

#include "err.h"
#include "session.h"
#include "vapi.h"

/* The request around one message. */
struct pl_vapi_ctx {
	const char *account; /* --account; NULL: from the message ("Which account") */
	const char *caller;  /* overrides the message's caller (direct invoke --caller) */
	int operator_access; /* a direct invoke without --caller: the operator's own look-up */
	const char *call_id; /* overrides the message's call id; NULL and none: a new one */
	int as_of_payload;   /* "now" is the message's timestamp */
};

enum pl_vapi_kind {
	PL_VAPI_CALLS,    /* tool calls (or the legacy function-call) ran: body is the reply */
	PL_VAPI_ENDED,    /* an end-of-call-report closed the call's log */
	PL_VAPI_TRANSFER, /* a transfer-destination-request: body is the destination or an error */
	PL_VAPI_SKIPPED,  /* another message type: nothing to do */
};

/* What a message came to. Release with pl_vapi_answer_release. */
struct pl_vapi_answer {
	enum pl_vapi_kind kind;
	char *body; /* the reply body (one line, no newline), or NULL when there is none */
	size_t len;
	struct pl_vapi_msg msg;      /* the message as parsed (calls, ids, names) */
	struct pl_vapi_outcome *out; /* per call, msg.ncalls of them */
	int status;       /* the calls' exit status (0, 9, the error's code); 5: no destination */
	char account[64]; /* the account used, "" when none was resolved */
};

/*
 * Handle one server message (body, len bytes). 0 with ans filled; otherwise the error: the
 * message is not one (PL_EBADINPUT), no account (PL_ENOTFOUND/PL_EUSAGE), the database, ...
 * When the calls ran but could not be recorded, ans->body is still the reply to give and the
 * error is returned too. ans is always released by the caller.
 */
int pl_vapi_handle(struct pl_session *s, const struct pl_vapi_ctx *ctx, const char *body,
                   size_t len, struct pl_vapi_answer *ans, struct pl_err *err);

/* The same for a message already parsed (a direct invoke): m is moved into ans. */
int pl_vapi_handle_msg(struct pl_session *s, const struct pl_vapi_ctx *ctx, struct pl_vapi_msg *m,
                       struct pl_vapi_answer *ans, struct pl_err *err);

void pl_vapi_answer_release(struct pl_vapi_answer *ans);

void pl_vapi_outcomes_release(struct pl_vapi_outcome *out, size_t n);

/*
 * Which account a message is for (the contract's "Which account"): override, else the
 * assistant's metadata.accountId when that account exists, else the account of its Vapi phone
 * number id, else the one its called number is registered to.
 */
int pl_vapi_account(struct pl_db *db, const char *override, const struct pl_vapi_msg *m,
                    char *account, size_t size, struct pl_err *err);

/* --- the call log (vapi_calllog.c) --- */

/*
 * Count one run of tool in the call's log, creating the row (account, call id) on the first;
 * *count is this tool's runs on this call, this one included. One statement, so that the
 * count holds across processes.
 */
int pl_vapi_log_call(struct pl_db *db, const char *account, const char *call_id,
                     const char *phone_id, const char *tool, long long *count, struct pl_err *err);

/* One tool call's audit event: which tool and how it went, never what the patient said. */
struct pl_vapi_audit {
	const char *account, *call_id, *tool_call_id;
	const char *tool; /* canonical name, "unknown" when none */
	const char *rule; /* the access rule applied, or NULL */
	int operator_access, success, code;
	int call_limit; /* refused: the tool reached its runs per call */
};
int pl_vapi_audit_call(struct pl_session *s, const struct pl_vapi_audit *a, struct pl_err *err);

/* Close the call's log (end-of-call-report); PL_ENOTFOUND if the account has no such call. */
int pl_vapi_end_call(struct pl_session *s, const char *account, const char *call_id,
                     struct pl_err *err);

#endif
