/*
 * vapi replay: many recorded Vapi messages (files, directories in name order, JSON Lines),
 * run through parlae's own handlers or sent to a deployed backend with many in flight.
 */
#ifndef PL_REPLAY_H
#define PL_REPLAY_H

#include <stddef.h>

#include "err.h"
#include "session.h"
#include "vapi.h"

struct pl_replay_req {
	const char *const *paths;
	size_t npaths;
	const char *target; /* NULL: local handlers */
	enum pl_vapi_auth auth;
	int concurrency;
	void (*progress)(size_t done, size_t total, void *arg);
	void *arg;
	/* Each failure, as it happens: where it came from and why (no payload content). */
	void (*failure)(const char *source, const char *why, void *arg);
	/* Locally, each tool call of a failure that ended in an error: its id ("" for the legacy
	 * shape), its name as received and the error. */
	void (*call_failed)(const char *source, const char *tool_call_id, const char *tool,
	                    const char *error, void *arg);
	/*
	 * With s->dry_run nothing is sent, run or written: instead each message, in order, where
	 * it came from, its size and what the replay would do with it (one line of valid UTF-8;
	 * the message's type, never its content).
	 */
	void (*listed)(const char *source, size_t bytes, const char *what, void *arg);
	/*
	 * --expect-dir: each response is compared with DIR/NAME.response.json (lib/expect.h),
	 * NAME the message file's name without .json ("calls-3" for line 3 of calls.jsonl);
	 * differs gets each one that differs, its lines of differences; update_expected writes
	 * them instead. A message with no response (skipped, failed) is not compared.
	 */
	const char *expect_dir;
	int update_expected;
	void (*differs)(const char *name, const char *diff, void *arg);
};

struct pl_replay_summary {
	size_t total, ok, failed, skipped;
	double seconds;
	double p50_ms, p95_ms, p99_ms;
	size_t same, differ, written; /* --expect-dir */
};

/*
 * PL_EUSAGE/PL_EBADINPUT when the inputs cannot be read (a NUL byte is bad input, named by
 * file and line), PL_ECONFIG without VAPI_WEBHOOK_SECRET for a target; otherwise 0 and the
 * summary (with s->dry_run, only total).
 */
int pl_replay(struct pl_session *s, const struct pl_replay_req *req, struct pl_replay_summary *sum,
              struct pl_err *err);

#endif
