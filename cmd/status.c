/* parlae status [ACCOUNT] [--wait[=SECONDS]] [--check] */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/encode.h"
#include "../lib/json.h"
#include "../lib/pms.h"
#include "../lib/status.h"
#include "../lib/utf8.h"
#include "../lib/banned.h"

#define DEFAULT_WAIT 60.0

const struct option opts_status[] = {
    {"check", no_argument, NULL, 'c'},
    {"wait", optional_argument, NULL, 'w'},
    {NULL, 0, NULL, 0},
};

static json_t *audit_json(const struct pl_status_system *st)
{
	if (!st->db_reachable || st->schema_version <= 0)
		return json_null();
	return json_pack(
	    "{s:b, s:s?, s:o, s:o, s:s?}", "protected", st->audit.is_protected, "reason",
	    st->audit.is_protected ? NULL : st->audit.reason, "lastEvent",
	    st->audit.last_event >= 0 ? json_integer(st->audit.last_event) : json_null(),
	    "lastCheckpoint",
	    st->last_checkpoint > 0 ? json_integer(st->last_checkpoint) : json_null(),
	    "checkpointError", st->checkpoint_err.code ? st->checkpoint_err.msg : NULL);
}

/* Why the store is not usable, or its key does not open it; NULL when neither. */
static const char *store_error(const struct pl_store_health *h)
{
	return !h->reachable ? h->err.msg : !h->key_opens ? h->key_err.msg : NULL;
}

static json_t *store_json(const struct pl_store_health *h)
{
	/* The location comes from PARLAE_SECRET_STORE, which may hold any bytes. */
	char location[sizeof(h->location)];

	pl_utf8_copy(location, sizeof(location), h->location);
	return json_pack("{s:s?, s:b, s:s?, s:s?, s:o, s:b}", "backend", h->backend, "reachable",
	                 h->reachable, "location", h->backend ? location : NULL, "error",
	                 store_error(h), "keyOpens",
	                 h->key_opens < 0 ? json_null() : json_boolean(h->key_opens),
	                 "rekeyUnfinished", h->rekey_unfinished);
}

static json_t *system_json(const struct pl_status_system *st)
{
	return json_pack(
	    "{s:{s:b, s:b, s:b, s:b, s:b}, s:{s:b, s:i, s:i, s:s?},"
	    " s:o, s:o, s:{s:I, s:I, s:I, s:I}}",
	    "integrations", "sikka", st->integrations.sikka, "vapi", st->integrations.vapi,
	    "twilio", st->integrations.twilio, "openai", st->integrations.openai, "stripe",
	    st->integrations.stripe, "database", "reachable", st->db_reachable, "schemaVersion",
	    st->schema_version, "latestSchemaVersion", st->schema_latest, "error",
	    st->db_reachable ? NULL : st->db_err.msg, "secretStore", store_json(&st->store),
	    "audit", audit_json(st), "accounts", "connected", (json_int_t)st->accounts.connected,
	    "connecting", (json_int_t)st->accounts.connecting, "pending",
	    (json_int_t)st->accounts.pending, "failed", (json_int_t)st->accounts.failed);
}

static const char *yes(int b)
{
	return b ? "yes" : "no";
}

static void print_store(const struct pl_store_health *h)
{
	if (!h->backend) {
		printf("secret store  misconfigured: %s\n", h->err.msg);
		return;
	}
	printf("secret store  %s:%s, ", h->backend, h->location);
	if (!h->reachable)
		printf("not usable: %s", h->err.msg);
	else if (!h->key_opens)
		printf("reachable, but the master key does not open it: %s", h->key_err.msg);
	else
		printf("usable%s", h->key_opens > 0 ? ", the master key opens it" : "");
	if (h->rekey_unfinished)
		printf("; an unfinished re-key");
	putchar('\n');
}

static void print_system(const struct pl_status_system *st)
{
	printf("integrations  sikka %s, vapi %s, twilio %s, openai %s, stripe %s\n",
	       yes(st->integrations.sikka), yes(st->integrations.vapi),
	       yes(st->integrations.twilio), yes(st->integrations.openai),
	       yes(st->integrations.stripe));
	if (st->db_reachable)
		printf("database      reachable, schema version %d of %d%s\n", st->schema_version,
		       st->schema_latest,
		       st->schema_version < st->schema_latest ? " (run 'parlae db migrate')" : "");
	else
		printf("database      unreachable: %s\n", st->db_err.msg);
	print_store(&st->store);
	if (st->db_reachable && st->schema_version > 0) {
		if (st->audit.is_protected)
			printf("audit log     protected, last event %lld", st->audit.last_event);
		else
			printf("audit log     NOT protected: %s", st->audit.reason);
		if (st->last_checkpoint > 0)
			printf("; last checkpoint at event %lld", st->last_checkpoint);
		else if (st->checkpoint_err.code)
			printf("; checkpoints: %s", st->checkpoint_err.msg);
		putchar('\n');
	}
	/* Counts read from nowhere would be a claim: none are shown without the database. */
	if (st->db_reachable && st->schema_version > 0)
		printf("accounts      %ld connected, %ld connecting, %ld pending, %ld failed\n",
		       st->accounts.connected, st->accounts.connecting, st->accounts.pending,
		       st->accounts.failed);
	else
		printf("accounts      unknown (%s)\n", st->db_reachable
		                                           ? "the schema is not migrated"
		                                           : "the database is unreachable");
}

/* --check: each failing item on stderr (even with -q: it is the answer), exit 1 if any. */
static int report_problems(const struct pl_status_system *st)
{
	fflush(stdout);
	for (size_t i = 0; i < st->nproblems; i++)
		fprintf(stderr, "parlae: status --check: %s\n", st->problems[i]);
	return st->nproblems ? PL_ENO : 0;
}

static json_t *account_json(const struct pl_pms_status *st)
{
	char now[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s, s:b, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s}", "account",
	                 st->account, "isConnected", !strcmp(st->status, "connected"), "status",
	                 st->status, "provider", st->provider, "practiceName", st->practice_name,
	                 "pmsType", st->pms_type, "officeId", st->office_id, "tokenExpiry",
	                 st->token_expiry[0] ? st->token_expiry : NULL, "lastSyncAt",
	                 st->last_sync_at[0] ? st->last_sync_at : NULL, "error", st->last_error,
	                 "timestamp", now);
}

static void print_account(const struct pl_pms_status *st)
{
	printf("account       %s\nstatus        %s\n", st->account, st->status);
	if (st->practice_name)
		printf("practice      %s (%s, office %s)\n", st->practice_name,
		       st->pms_type ? st->pms_type : "unknown PMS",
		       st->office_id ? st->office_id : "?");
	if (st->token_expiry[0])
		printf("token expiry  %s\n", st->token_expiry);
	if (st->last_sync_at[0])
		printf("last sync     %s\n", st->last_sync_at);
	if (st->last_error)
		printf("error         %s\n", st->last_error);
}

static int parse_wait(const char *s, double *out)
{
	char *end;
	double v;

	if (!s) {
		*out = DEFAULT_WAIT;
		return 0;
	}
	v = strtod(s, &end);
	if (end == s || *end || !(v >= 0) || v > 86400)
		return -1;
	*out = v;
	return 0;
}

/* "30" or "2.5": a word after --wait that is its time, not an account ("1e3" is one). */
static int is_seconds(const char *s)
{
	size_t digits = strspn(s, "0123456789");

	if (!digits)
		return 0;
	if (s[digits] == '.')
		return s[digits + 1] && !s[digits + 1 + strspn(s + digits + 1, "0123456789")];
	return !s[digits];
}

/* --- a wait on a terminal: one status line on stderr, rewritten each second ------------------ */

#define CLEAR_LINE "\r\033[K"

static volatile sig_atomic_t line_shown;

/* Ctrl-C during the wait: the status line goes, and one short line says why parlae stopped. */
static void on_wait_stop(int sig)
{
	static const char msg[] = "parlae: interrupted\n";
	ssize_t n = 0;

	(void)sig;
	if (line_shown)
		n = write(STDERR_FILENO, CLEAR_LINE, sizeof(CLEAR_LINE) - 1);
	n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	_exit(PL_EINTERRUPTED);
}

/* A wait sent to the background (`status --wait &`, as parlae-sikka(1) shows) keeps quiet. */
static int in_foreground(void)
{
	return tcgetpgrp(STDERR_FILENO) == getpgrp();
}

static void show_line(const char *account, double elapsed, double seconds)
{
	if (!in_foreground())
		return;
	fprintf(stderr, "\rwaiting for %s to connect\u2026 %.0fs (timeout %gs)", account, elapsed,
	        seconds);
	fflush(stderr);
	line_shown = 1;
}

static void clear_line(void)
{
	if (line_shown && in_foreground())
		cmd_color(stderr, CLEAR_LINE);
	line_shown = 0;
}

/*
 * pl_pms_wait in slices that end on the second, the line redrawn between them. Nothing is
 * missed between two slices: the session keeps listening, and each slice reads the status
 * before it waits.
 */
static int wait_on_tty(struct cmd_ctx *ctx, const char *account, double seconds,
                       struct pl_pms_status *st, struct pl_err *err)
{
	static const int stops[] = {SIGINT, SIGTERM};
	struct sigaction sa, old[2];
	double start = pl_monotonic(), elapsed = 0;
	char hint[sizeof(err->hint)];
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wait_stop;
	for (size_t i = 0; i < 2; i++)
		sigaction(stops[i], &sa, &old[i]);
	for (;;) {
		double slice = (double)(long)elapsed + 1 - elapsed;

		show_line(account, (double)(long)elapsed, seconds);
		if (slice > seconds - elapsed)
			slice = seconds - elapsed;
		r = pl_pms_wait(&ctx->session, account, slice, st, err);
		elapsed = pl_monotonic() - start;
		if (r != PL_ETIMEOUT || elapsed >= seconds)
			break;
		pl_pms_status_release(st);
	}
	clear_line();
	for (size_t i = 0; i < 2; i++)
		sigaction(stops[i], &old[i], NULL);
	/* The last slice's message counts its own time: the wait's is the whole of it. */
	if (r == PL_ETIMEOUT) {
		pl_strlcpy(hint, err->hint, sizeof(hint));
		pl_err_set(err, PL_ETIMEOUT, "account '%s' is still %s after %g s", account,
		           st->status, seconds);
		pl_err_hint(err, "%s", hint);
	}
	return r;
}

static int status_account(struct cmd_ctx *ctx, const char *account, int wait, double seconds,
                          int check)
{
	struct pl_pms_status st;
	struct pl_err err = PL_ERR_INIT;
	int r;

	if (wait && ctx->verbosity >= 0 && isatty(STDERR_FILENO))
		r = wait_on_tty(ctx, account, seconds, &st, &err);
	else if (wait)
		r = pl_pms_wait(&ctx->session, account, seconds, &st, &err);
	else
		r = pl_pms_status(&ctx->session, account, &st, &err);
	if (r && r != PL_ETIMEOUT) {
		pl_pms_status_release(&st);
		return cmd_fail(ctx, &err);
	}
	if (ctx->json)
		cmd_print_json(ctx, account_json(&st));
	else
		print_account(&st);
	if (r)
		cmd_fail(ctx, &err);
	else if ((wait || check) && strcmp(st.status, "connected"))
		r = PL_ENO;
	pl_pms_status_release(&st);
	return r;
}

int cmd_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_status_system st;
	const char *arg;
	int c, check = 0, wait = 0;
	double seconds = DEFAULT_WAIT;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'c':
			check = 1;
			break;
		case 'w':
			wait = 1;
			/* "--wait 30" means "--wait=30", when the word after it is a number. */
			arg = optarg;
			if (!arg && optind < argc && is_seconds(argv[optind]))
				arg = argv[optind++];
			if (parse_wait(arg, &seconds) < 0)
				return cmd_usage_error(
				    ctx, "--wait takes a number of seconds, not '%s'", arg);
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	if (optind < argc)
		return status_account(ctx, argv[optind], wait, seconds, check);
	if (wait)
		return cmd_usage_error(ctx, "--wait needs an ACCOUNT");
	pl_status_system(&ctx->session, &st);
	if (ctx->json)
		cmd_print_json(ctx, pl_json_x(system_json(&st)));
	else
		print_system(&st);
	return check ? report_problems(&st) : 0;
}
