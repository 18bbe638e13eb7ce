/*
 * The HIPAA audit log. Every mutating command appends one event with its outcome, failures
 * included; the database chains and guards the rows (sql/0002-audit.sql). Metadata never
 * holds a secret or patient data.
 */
#ifndef PL_AUDIT_H
#define PL_AUDIT_H

#include "err.h"
#include "session.h"

struct pl_audit_event {
	const char *account_id;	/* may be NULL */
	const char *action;	/* "account.add", "db.migrate", ... */
	const char *resource_type;
	const char *resource_id;
	const char *metadata; /* a JSON object as text, or NULL for {} */
};

/* "success" for 0, "denied" for a refusal (PL_ENO, PL_ESECURITY), else "failure". */
const char *pl_audit_outcome(int code);

/*
 * Append ev with the outcome of code (and its error name) in the session's current
 * transaction, or on its own when none is open.
 */
int pl_audit_append(struct pl_session *s, const struct pl_audit_event *ev, int code,
		    struct pl_err *err);

/*
 * End a mutation and record it. code 0: append the success event inside the open transaction
 * and commit, so the change and its record land together. Otherwise: roll back, then append
 * the failure on its own (best effort: a database that is gone cannot be written). Returns
 * the final code; err keeps the first failure's message.
 */
int pl_audit_finish(struct pl_session *s, const struct pl_audit_event *ev, int code,
		    struct pl_err *err);

#endif
