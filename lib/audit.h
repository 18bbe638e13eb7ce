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

#include "buf.h"
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
 * Whether the connected role can change the audit log's history: it cannot when it neither is
 * a superuser nor may act as the tables' owner (membership), and every trigger that guards the
 * log is there and enabled (architecture invariant 5, "Against whom").
 */
struct pl_audit_protection {
	int is_protected;     /* 1 when the role cannot rewrite the log */
	char reason[512];     /* why not, when not: a sentence naming the role */
	long long last_event; /* the chain head's seq; -1 when it cannot be read */
};

int pl_audit_protection(struct pl_session *s, struct pl_audit_protection *out, struct pl_err *err);

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

#define PL_AUDIT_NO_SEQ   (-9223372036854775807LL - 1) /* a problem with no event to name */
#define PL_AUDIT_MAX_LIST 1000 /* breaks or failures kept; more are only counted */

/* One broken range of the chain: its first event and what is wrong with it. */
struct pl_audit_break {
	long long seq; /* PL_AUDIT_NO_SEQ when no event can be named (a missing chain head) */
	char reason[192];
};

/* A checkpoint line that does not hold: malformed, not signed by the key, not chained to the
 * line before it, or no longer in the chain ("history rewritten before event N"). */
struct pl_audit_checkpoint_failure {
	long line;
	long long seq; /* 0 when the line names none */
	char reason[320];
};

struct pl_audit_verify_req {
	const volatile sig_atomic_t *stop; /* set by a signal handler: PL_EINTERRUPTED */
	const char *checkpoints;           /* a checkpoint file to hold the chain to, or NULL */
	const char *public_key;            /* the PEM public key its lines must be signed with */
};

struct pl_audit_verify_result {
	int intact;         /* no break and no checkpoint failure */
	long long events;   /* the events of the chain read */
	long long head_seq; /* the chain head; -1 when it is missing */
	char head_hash[65];
	struct pl_audit_break *breaks; /* in order of seq, at most PL_AUDIT_MAX_LIST */
	size_t nbreaks;
	long long more_breaks; /* found beyond those */
	int checkpoints_given;
	long checkpoints_checked;      /* lines read */
	long long newest_checkpoint;   /* the highest seq among sound lines, 0 for none */
	char checkpoints_problem[320]; /* a file with no line at all (not intact), else "" */
	struct pl_audit_checkpoint_failure *failed; /* in order of line */
	size_t nfailed;
	long long more_failed;
};

/*
 * Recompute the chain from the database's text renderings (architecture invariant 5), in one
 * snapshot, streaming, and check it against the chain head. It goes on past a break: after a
 * bad event it continues from that event's own stored hash, so that every broken range is
 * reported. With req->checkpoints, every line must be signed by req->public_key, name the
 * hash of the line before it, and its (seq, hash) still be in the chain; a file that is
 * missing or empty is no pass (out->checkpoints_problem). Returns 0 when the check ran (out->intact
 * says how it went); PL_EINTERRUPTED when stopped. Release out with pl_audit_verify_release.
 */
int pl_audit_verify(struct pl_session *s, const struct pl_audit_verify_req *req,
                    struct pl_audit_verify_result *out, struct pl_err *err);
void pl_audit_verify_release(struct pl_audit_verify_result *out);

struct pl_audit_checkpoint_req {
	const char *output; /* the checkpoint file; NULL: PARLAE_AUDIT_CHECKPOINTS, else none */
	const volatile sig_atomic_t *stop;
};

struct pl_audit_checkpoint_result {
	const char *path;   /* the file appended to (or that would be), NULL for none */
	long long since;    /* the newest checkpoint before, from which the chain was verified; 0 */
	long long seq;      /* the event signed */
	struct pl_buf line; /* the line, with its newline */
};

/*
 * audit checkpoint: check every line of the file (the signer's own, not writable by others:
 * else PL_ECONFIG), refusing a line that is not a checkpoint (PL_EBADINPUT) or does not hold
 * under the signing key or its chain of lines (PL_ESECURITY); verify the chain since the
 * newest of them, the highest seq (all of it when there is none), refusing (PL_ENO) when it is
 * broken or no longer holds that checkpoint; then sign the chain head after the file's last
 * line with PARLAE_AUDIT_SIGNING_KEY_FILE and append the line (with --dry-run: only build it).
 * Nothing is appended on a refusal. Records the audit event audit.checkpoint. Release out with
 * pl_audit_checkpoint_release.
 */
int pl_audit_checkpoint(struct pl_session *s, const struct pl_audit_checkpoint_req *req,
                        struct pl_audit_checkpoint_result *out, struct pl_err *err);
void pl_audit_checkpoint_release(struct pl_audit_checkpoint_result *out);

/*
 * The seq of the file's last line (for status): 0 when the file does not exist or is empty.
 * A last line that is incomplete or not a checkpoint is PL_EBADINPUT; one beyond last_event
 * (-1: unknown) is PL_ESECURITY, and so is, when public_key names a PEM file, one that key
 * did not sign. The lines before it are not checked: audit verify --checkpoints does that.
 */
int pl_audit_last_checkpoint(const char *path, const char *public_key, long long last_event,
                             long long *seq, struct pl_err *err);

#endif
