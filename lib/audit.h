/*
 * The HIPAA audit log. Every mutating command appends one event with its outcome, failures
 * included; the database chains and guards the rows (sql/0002-audit.sql). Metadata never
 * holds a secret or patient data.
 */
#ifndef PL_AUDIT_H
#define PL_AUDIT_H

#include <signal.h>
#include <stddef.h>
#include <time.h>

#include "err.h"
#include "session.h"

struct pl_audit_event {
	const char *account_id; /* may be NULL */
	const char *action;     /* "account.add", "db.migrate", ... */
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

/*
 * Record a failure that may have cost the connection: on a new one if it was lost (once per
 * invocation: pl_session_reconnect), run sql (marking the row that failed; NULL for none) and
 * append the failure event, in one transaction; if sql fails, the event alone. Returns 0 once
 * the event is in, else why not (no database to write to) in err.
 */
int pl_audit_fail(struct pl_session *s, const struct pl_audit_event *ev, int code, const char *sql,
                  int nparams, const char *const *params, struct pl_err *err);

/* --- reading the log: audit tail and audit verify ---------------------------------------- */

/* One event as the database renders it. Every pointer is valid only during the callback. */
struct pl_audit_row {
	long long seq;
	const char *seq_text;
	const char *occurred_at; /* ISO 8601 UTC with microseconds: the text that is hashed */
	const char *actor, *host;
	const char *account_id; /* NULL when the event concerns no account */
	const char *action;
	const char *resource_type, *resource_id; /* may be NULL */
	const char *outcome;                     /* success | failure | denied */
	const char *error_code;                  /* NULL on success */
	const char *request_id;                  /* may be NULL */
	const char *metadata;                    /* a JSON object: jsonb's own rendering */
	const char *hash;
};

struct pl_audit_tail_req {
	/*
	 * How many events: -1 for every one that matches. Otherwise the last limit events, or,
	 * with a cursor file, the first limit events after the cursor (so that nothing is skipped:
	 * the next run goes on from there).
	 */
	long long limit;
	int follow;          /* then wait for new events until interrupted */
	const char *account; /* only this account's events; NULL for all */
	const char *action;  /* a glob ('*' any run, '?' one character, '\' quotes); NULL for all */
	const char *since;   /* a timestamptz literal from pl_audit_parse_since; NULL for all */
	const char *cursor_file; /* resume after the event it names; record the last one printed */

	/* Called for each event, oldest first; a non-zero return stops the tail with that code. */
	int (*emit)(const struct pl_audit_row *ev, void *arg);
	/* Called before the cursor file moves: non-zero (a code) when the output failed. */
	int (*flush)(void *arg);
	/* While following: a lost connection, each reconnection attempt, the catch-up. */
	void (*notice)(const char *msg, void *arg);
	void *arg;

	/* Set by a signal handler: stop with PL_EINTERRUPTED. stop_fd (or -1) turns readable
	 * at the same time, so that a wait ends at once. */
	const volatile sig_atomic_t *stop;
	int stop_fd;
};

/*
 * Print (through req->emit) the events that match, streaming them so that memory does not
 * grow with their number; with req->follow, then LISTEN for new ones and print each as it
 * commits, reconnecting after a lost connection (told through req->notice) and catching up
 * from the last event seen, until req->stop. Returns PL_EINTERRUPTED when stopped.
 */
int pl_audit_tail(struct pl_session *s, const struct pl_audit_tail_req *req, struct pl_err *err);

/*
 * --since: ISO 8601 (2026-11-24, 2026-11-24T08:00, ...:00Z, ...:00.5+01:00; without a zone,
 * local time) or a duration before now (90s, 15m, 2h, 1d, 1h30m). Writes the instant into
 * out as a UTC timestamptz literal ("2026-11-24 08:00:00.000000+00"); PL_EUSAGE if neither.
 */
int pl_audit_parse_since(const char *text, time_t now, char *out, size_t size, struct pl_err *err);

struct pl_audit_verify_result {
	int intact;
	long long events;   /* events found sound, from the first */
	int has_bad_seq;    /* whether a first bad event can be named (not for a missing head) */
	long long bad_seq;  /* the first bad event, when not intact and has_bad_seq */
	char problem[256];  /* what is wrong with it */
	long long head_seq; /* the chain head; -1 when it is missing */
	char head_hash[65];
};

/*
 * Recompute the chain from the database's text renderings (architecture invariant 5), in one
 * snapshot, streaming, and check it against the chain head. Returns 0 when the check ran
 * (out->intact says how it went); PL_EINTERRUPTED when *stop was set.
 */
int pl_audit_verify(struct pl_session *s, const volatile sig_atomic_t *stop,
                    struct pl_audit_verify_result *out, struct pl_err *err);

#endif
