/*
 * The four tool handlers of the voice agent, run on a parsed Vapi message with the practice's
 * stored Sikka keys: getPatientInfo, checkAvailability, bookAppointment, transferToHuman.
 * A business outcome (no patient, no slot, booking pending) is a result with success false;
 * only a call that could not run is an error. Every call is logged and audited, without PHI.
 */
#ifndef PL_TOOLS_H
#define PL_TOOLS_H

#include "err.h"
#include "session.h"
#include "vapi.h"

struct pl_tools_req {
	const char *account; /* NULL: from the message's phoneNumberId */
	const char *caller;  /* overrides the message's caller (direct invoke --caller) */
	int operator_access; /* a direct invoke without --caller: the operator's own look-up */
	const char *call_id; /* overrides the message's call id; NULL and none: a new one */
	int as_of_payload;   /* "now" is the message's timestamp */
};

/*
 * Run every call of m, filling out[m->ncalls]. Returns non-zero when nothing could run
 * (unknown account → PL_ENOTFOUND, database down, ...), or when the calls ran but could not
 * be recorded (the database went away): out[] is then filled and the reply still stands.
 * account receives the account used.
 */
int pl_tools_run(struct pl_session *s, const struct pl_tools_req *req, const struct pl_vapi_msg *m,
                 struct pl_vapi_outcome *out, char *account, size_t account_size,
                 struct pl_err *err);

void pl_vapi_outcomes_release(struct pl_vapi_outcome *out, size_t n);

/*
 * Close a call's log (an end-of-call-report): the call of the account the message is for, found
 * as pl_tools_run finds it (req may be NULL). PL_ENOTFOUND if that account has no such call, or
 * no account can be found for the message.
 */
int pl_tools_end_call(struct pl_session *s, const struct pl_tools_req *req,
                      const struct pl_vapi_msg *m, struct pl_err *err);

#endif
