/*
 * parlae audit tail [-n N] [-f] [--account ACCOUNT] [--action GLOB] [--since TIME] [--cursor-file
 * FILE] | audit verify [--checkpoints FILE --public-key FILE] | audit checkpoint [--output FILE]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/account.h"
#include "../lib/audit.h"
#include "../lib/buf.h"
#include "../lib/json.h"
#include "../lib/utf8.h"
#include "../lib/banned.h"

#define DEFAULT_LINES 20

enum {
	OPT_ACCOUNT = 'a',
	OPT_ACTION = 'A',
	OPT_SINCE = 's',
	OPT_CURSOR = 'c',
	OPT_CHECKPOINTS = 'k',
	OPT_PUBLIC_KEY = 'P',
	OPT_OUTPUT = 'o',
};

const struct option opts_audit_tail[] = {
    {"lines", required_argument, NULL, 'n'},
    {"follow", no_argument, NULL, 'f'},
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"action", required_argument, NULL, OPT_ACTION},
    {"since", required_argument, NULL, OPT_SINCE},
    {"cursor-file", required_argument, NULL, OPT_CURSOR},
    {NULL, 0, NULL, 0},
};

const struct option opts_audit_verify[] = {
    {"checkpoints", required_argument, NULL, OPT_CHECKPOINTS},
    {"public-key", required_argument, NULL, OPT_PUBLIC_KEY},
    {NULL, 0, NULL, 0},
};

const struct option opts_audit_checkpoint[] = {
    {"output", required_argument, NULL, OPT_OUTPUT},
    {NULL, 0, NULL, 0},
};

/* --- Ctrl-C and TERM: a flag for the row loops and a pipe that ends a wait at once ------- */

static volatile sig_atomic_t interrupted;
static int stop_pipe[2] = {-1, -1};

static void on_stop(int sig)
{
	int saved = errno;
	ssize_t n;

	(void)sig;
	interrupted = 1;
	n = write(stop_pipe[1], "x", 1);
	(void)n;
	errno = saved;
}

static const int stop_signals[] = {SIGINT, SIGTERM};
#define NSTOP (sizeof(stop_signals) / sizeof(stop_signals[0]))

struct interrupt {
	struct sigaction old[NSTOP];
	int installed[NSTOP];
};

/*
 * Instead of parlae's own handler, which exits at once: stop between two events, so that the
 * last line is whole, stdout is flushed and the cursor file says what was printed. A signal
 * that is ignored (a background job's SIGINT) stays ignored.
 */
static void catch_stop(struct interrupt *in)
{
	struct sigaction sa;

	memset(in, 0, sizeof(*in));
	interrupted = 0;
	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	/* A write in progress completes (lines stay whole); a wait for the database still ends
	 * at once, through the pipe. A second signal ends parlae even if it is stuck. */
	sa.sa_flags = SA_RESETHAND | SA_RESTART;
	for (size_t i = 0; i < NSTOP; i++)
		if (!sigaction(stop_signals[i], NULL, &in->old[i]) &&
		    in->old[i].sa_handler != SIG_IGN)
			in->installed[i] = !sigaction(stop_signals[i], &sa, NULL);
}

static void release_stop(struct interrupt *in)
{
	for (size_t i = 0; i < NSTOP; i++)
		if (in->installed[i])
			sigaction(stop_signals[i], &in->old[i], NULL);
	for (int i = 0; i < 2; i++) {
		if (stop_pipe[i] >= 0)
			close(stop_pipe[i]);
		stop_pipe[i] = -1;
	}
}

/* --- printing events ----------------------------------------------------------------------- */

struct out {
	struct cmd_ctx *ctx;
	int json, tty, color, follow;
	struct pl_buf line;
};

/* A text column: its value, or null. */
static json_t *text_json(const char *s)
{
	return s ? pl_json_x(json_string(s)) : json_null();
}

/*
 * One event as one compact line, keys in the contract's order. metadata is jsonb's text: it
 * goes in as the JSON it is (jsonb's key order kept), or as null if it cannot be read.
 */
static void json_line(struct pl_buf *b, const struct pl_audit_row *ev)
{
	json_t *meta = ev->metadata ? json_loads(ev->metadata, JSON_DECODE_ANY, NULL) : NULL;
	json_t *doc = pl_json_x(json_pack(
	    "{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "seq",
	    (json_int_t)strtoll(ev->seq_text, NULL, 10), "occurredAt", text_json(ev->occurred_at),
	    "actor", text_json(ev->actor), "host", text_json(ev->host), "account",
	    text_json(ev->account_id), "action", text_json(ev->action), "resourceType",
	    text_json(ev->resource_type), "resourceId", text_json(ev->resource_id), "outcome",
	    text_json(ev->outcome), "errorCode", text_json(ev->error_code), "metadata",
	    meta ? meta : json_null(), "hash", text_json(ev->hash)));
	char *text = pl_json_dump(doc);

	pl_buf_adds(b, text);
	pl_buf_addch(b, '\n');
	free(text);
	json_decref(doc);
}

/* A field of a tab-separated line: "-" for NULL; tabs and other controls become '?'. */
static void plain_field(struct pl_buf *b, const char *s, int last)
{
	size_t start = b->len;

	pl_buf_adds(b, s ? s : "-");
	for (size_t i = start; i < b->len; i++)
		if ((unsigned char)b->buf[i] < 0x20 || b->buf[i] == 0x7f)
			b->buf[i] = '?';
	pl_buf_addch(b, last ? '\n' : '\t');
}

static void plain_line(struct pl_buf *b, const struct pl_audit_row *ev)
{
	const char *fields[] = {ev->seq_text,   ev->occurred_at, ev->actor,         ev->host,
	                        ev->account_id, ev->action,      ev->resource_type, ev->resource_id,
	                        ev->outcome,    ev->error_code};
	size_t n = sizeof(fields) / sizeof(fields[0]);

	for (size_t i = 0; i < n; i++)
		plain_field(b, fields[i], i + 1 == n);
}

/*
 * A cell of width columns (counted in UTF-8 characters), cut with "…" when longer; control
 * characters from the database never reach the terminal as such.
 */
static void cell(struct pl_buf *b, const char *s, size_t width, int right)
{
	size_t chars = 0, keep = 0; /* keep: the bytes of the first width-1 characters */
	const char *p;

	if (!s)
		s = "-";
	for (p = s; *p; p++)
		if (((unsigned char)*p & 0xc0) != 0x80 && chars++ == width - 1)
			keep = (size_t)(p - s);
	if (chars > width) {
		for (size_t i = 0; i < keep; i++)
			pl_buf_addch(b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
		pl_buf_adds(b, "\xe2\x80\xa6"); /* an ellipsis */
		return;
	}
	if (right)
		for (size_t i = chars; i < width; i++)
			pl_buf_addch(b, ' ');
	for (p = s; *p; p++)
		pl_buf_addch(b, (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	if (!right)
		for (size_t i = chars; i < width; i++)
			pl_buf_addch(b, ' ');
}

/* The event's time in the local zone, as people read it. */
static void local_time(const char *iso, char *out, size_t size)
{
	struct tm tm;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (!iso || !strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(out, size, "%s", iso ? iso : "-");
		return;
	}
	t = timegm(&tm);
	if (!localtime_r(&t, &tm) || !strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, size, "%s", iso);
}

static void tty_header(struct out *o)
{
	struct pl_buf *b = &o->line;

	pl_buf_reset(b);
	if (o->color)
		cmd_color(stdout, "\033[1m");
	cell(b, "SEQ", 7, 1);
	pl_buf_adds(b, "  ");
	cell(b, "TIME", 19, 0);
	pl_buf_adds(b, "  ");
	cell(b, "ACTOR", 20, 0);
	pl_buf_adds(b, "  ");
	cell(b, "ACCOUNT", 16, 0);
	pl_buf_adds(b, "  ");
	cell(b, "ACTION", 18, 0);
	pl_buf_adds(b, "  ");
	cell(b, "RESOURCE", 28, 0);
	pl_buf_adds(b, "  OUTCOME");
	fwrite(b->buf, 1, b->len, stdout);
	if (o->color)
		cmd_color(stdout, "\033[m");
	fputc('\n', stdout);
}

/* What the line holds so far, then a colour of parlae's own, past the output filter. */
static void put_color(struct pl_buf *b, const char *sgr)
{
	fwrite(b->buf, 1, b->len, stdout);
	pl_buf_reset(b);
	cmd_color(stdout, sgr);
}

static void tty_line(struct out *o, const struct pl_audit_row *ev)
{
	struct pl_buf *b = &o->line, res = PL_BUF_INIT;
	int ok = ev->outcome && !strcmp(ev->outcome, "success");
	int denied = ev->outcome && !strcmp(ev->outcome, "denied");
	char when[32];

	local_time(ev->occurred_at, when, sizeof(when));
	cell(b, ev->seq_text, 7, 1);
	pl_buf_adds(b, "  ");
	cell(b, when, 19, 0);
	pl_buf_adds(b, "  ");
	cell(b, ev->actor, 20, 0);
	pl_buf_adds(b, "  ");
	cell(b, ev->account_id, 16, 0);
	pl_buf_adds(b, "  ");
	cell(b, ev->action, 18, 0);
	pl_buf_adds(b, "  ");
	if (ev->resource_type && ev->resource_id)
		pl_buf_addf(&res, "%s %s", ev->resource_type, ev->resource_id);
	else
		pl_buf_adds(&res, ev->resource_type ? ev->resource_type : "-");
	cell(b, res.buf, 28, 0);
	pl_buf_release(&res);
	pl_buf_adds(b, "  ");
	if (ok) {
		pl_buf_adds(b, "success");
	} else {
		/* Failures stand out: in capitals, and in colour where colour is on. */
		if (o->color)
			put_color(b, denied ? "\033[1;33m" : "\033[1;31m");
		pl_buf_adds(b, denied ? "DENIED" : "FAILURE");
		if (ev->error_code) {
			pl_buf_addch(b, ' ');
			cell(b, ev->error_code, strlen(ev->error_code), 0);
		}
		if (o->color)
			put_color(b, "\033[m");
	}
	pl_buf_addch(b, '\n');
}

static int emit(const struct pl_audit_row *ev, void *arg)
{
	struct out *o = arg;

	pl_buf_reset(&o->line);
	if (o->json)
		json_line(&o->line, ev);
	else if (o->tty)
		tty_line(o, ev);
	else
		plain_line(&o->line, ev);
	fwrite(o->line.buf, 1, o->line.len, stdout);
	/* A follower's reader sees each event as it commits. */
	if (o->follow)
		fflush(stdout);
	return ferror(stdout) ? PL_EIO : 0;
}

static int flush_out(void *arg)
{
	(void)arg;
	return fflush(stdout) || ferror(stdout) ? PL_EIO : 0;
}

static void notice(const char *msg, void *arg)
{
	struct out *o = arg;

	if (o->ctx->verbosity >= 0)
		fprintf(stderr, "parlae: %s\n", msg);
}

/* --- the commands -------------------------------------------------------------------------- */

/* An option's file name into *out: 0, or PL_EUSAGE for an empty one. */
static int file_arg(struct cmd_ctx *ctx, const char *opt, const char **out)
{
	if (!*optarg)
		return cmd_usage_error(ctx, "--%s needs a file name", opt);
	*out = optarg;
	return 0;
}

static int parse_lines(const char *s, long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || errno || v > 1000000000000LL)
		return -1;
	*out = v;
	return 0;
}

int cmd_audit_tail(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_audit_tail_req req;
	struct pl_err err = PL_ERR_INIT;
	struct out o;
	struct interrupt in;
	char since[64];
	int c, r, lines_set = 0;

	memset(&req, 0, sizeof(req));
	req.limit = DEFAULT_LINES;
	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'n':
			if (parse_lines(optarg, &req.limit) < 0)
				return cmd_usage_error(ctx, "-n takes a number of events, not '%s'",
				                       optarg);
			lines_set = 1;
			break;
		case 'f':
			req.follow = 1;
			break;
		case OPT_ACCOUNT:
			if (!pl_account_id_valid(optarg))
				return cmd_usage_error(ctx, "invalid account id '%.*s'",
				                       pl_utf8_cut(optarg, 80), optarg);
			req.account = optarg;
			break;
		case OPT_ACTION:
			if (!*optarg)
				return cmd_usage_error(
				    ctx, "--action needs a pattern such as 'sikka.*'");
			if (!pl_utf8_valid(optarg, strlen(optarg)))
				return cmd_usage_error(ctx, "--action '%s' is not UTF-8 text",
				                       optarg);
			req.action = optarg;
			break;
		case OPT_SINCE:
			if (pl_audit_parse_since(optarg, time(NULL), since, sizeof(since), &err))
				return cmd_usage_error(ctx, "%s", err.msg);
			req.since = since;
			break;
		case OPT_CURSOR:
			if (file_arg(ctx, "cursor-file", &req.cursor_file))
				return PL_EUSAGE;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	/* Since a time, or after a cursor, every event unless -n says how many. */
	if (!lines_set && (req.since || req.cursor_file))
		req.limit = -1;

	memset(&o, 0, sizeof(o));
	o.ctx = ctx;
	pl_buf_init(&o.line, 0);
	o.json = ctx->json;
	o.tty = !o.json && cmd_stdout_tty();
	o.color = o.tty && cmd_use_color(ctx, stdout);
	o.follow = req.follow;
	req.emit = emit;
	req.flush = flush_out;
	req.notice = notice;
	req.arg = &o;
	req.stop = &interrupted;
	catch_stop(&in);
	req.stop_fd = stop_pipe[0];
	if (o.tty) {
		tty_header(&o);
		if (o.follow)
			fflush(stdout);
	}
	r = pl_audit_tail(&ctx->session, &req, &err);
	release_stop(&in);
	pl_buf_release(&o.line);
	/* Events that could not be written: one message about stdout (none for a closed pipe). */
	if (r == PL_EIO && ferror(stdout))
		return cmd_output_error(ctx);
	/* Ctrl-C (or TERM) is how a follow ends, as with tail -f: 130 says so, nothing more. */
	if (r == PL_EINTERRUPTED && req.follow)
		return r;
	return r ? cmd_fail(ctx, &err) : 0;
}

/* An event number, or null for none. */
static json_t *seq_json(long long seq, long long none)
{
	return seq == none ? json_null() : json_integer((json_int_t)seq);
}

static json_t *verify_json(const struct pl_audit_verify_result *res)
{
	const struct pl_audit_break *first = res->nbreaks ? &res->breaks[0] : NULL;
	json_t *breaks = json_array(), *failed = json_array(), *checkpoints = json_null(), *head;

	for (size_t i = 0; breaks && i < res->nbreaks; i++)
		json_array_append_new(breaks,
		                      json_pack("{s:o, s:s}", "seq",
		                                seq_json(res->breaks[i].seq, PL_AUDIT_NO_SEQ),
		                                "reason", res->breaks[i].reason));
	for (size_t i = 0; failed && i < res->nfailed; i++)
		json_array_append_new(failed, json_pack("{s:I, s:o, s:s}", "line",
		                                        (json_int_t)res->failed[i].line, "seq",
		                                        seq_json(res->failed[i].seq, 0), "reason",
		                                        res->failed[i].reason));
	if (res->checkpoints_given)
		checkpoints = json_pack("{s:I, s:O}", "checked",
		                        (json_int_t)res->checkpoints_checked, "failed", failed);
	/* A set that fails leaves no object: the JSON output is not built. */
	if (checkpoints && *res->checkpoints_problem &&
	    json_object_set_new(checkpoints, "problem", json_string(res->checkpoints_problem))) {
		json_decref(checkpoints);
		checkpoints = NULL;
	}
	json_decref(failed);
	head = res->head_seq < 0 ? json_null()
	                         : json_pack("{s:I, s:s}", "seq", (json_int_t)res->head_seq, "hash",
	                                     res->head_hash);
	/* firstBadSeq and problem: the first break, as verify reported before it went on. */
	return json_pack("{s:b, s:I, s:o, s:o, s:o, s:s?, s:o}", "intact", res->intact, "events",
	                 (json_int_t)res->events, "breaks", breaks, "checkpoints", checkpoints,
	                 "firstBadSeq", first ? seq_json(first->seq, PL_AUDIT_NO_SEQ) : json_null(),
	                 "problem", first ? first->reason : NULL, "head", head);
}

/* "audit log BROKEN" and the like, in red where colour is on. */
static void alarm_word(int color, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void alarm_word(int color, const char *fmt, ...)
{
	va_list ap;

	if (color)
		cmd_color(stdout, "\033[1;31m");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (color)
		cmd_color(stdout, "\033[m");
}

static void print_verify(struct cmd_ctx *ctx, const struct pl_audit_verify_result *res)
{
	int color = cmd_use_color(ctx, stdout);

	if (res->intact) {
		printf("audit log intact: %lld event%s, chain head at event %lld (%s)\n",
		       res->events, res->events == 1 ? "" : "s", res->head_seq, res->head_hash);
		if (res->checkpoints_given)
			printf("checkpoints intact: %ld line%s, the newest at event %lld\n",
			       res->checkpoints_checked, res->checkpoints_checked == 1 ? "" : "s",
			       res->newest_checkpoint);
		return;
	}
	for (size_t i = 0; i < res->nbreaks; i++) {
		alarm_word(color, "audit log BROKEN");
		if (res->breaks[i].seq != PL_AUDIT_NO_SEQ)
			printf(" at event %lld", res->breaks[i].seq);
		printf(": %s\n", res->breaks[i].reason);
	}
	if (res->more_breaks) {
		alarm_word(color, "audit log BROKEN");
		printf(": %lld more broken ranges not shown\n", res->more_breaks);
	}
	for (size_t i = 0; i < res->nfailed; i++) {
		alarm_word(color, "checkpoint line %ld FAILED", res->failed[i].line);
		printf(": %s\n", res->failed[i].reason);
	}
	if (res->more_failed) {
		alarm_word(color, "checkpoints FAILED");
		printf(": %lld more lines not shown\n", res->more_failed);
	}
	if (*res->checkpoints_problem) {
		alarm_word(color, "checkpoints FAILED");
		printf(": %s\n", res->checkpoints_problem);
	}
}

/* The file options of verify and checkpoint; each command's table admits only its own. */
struct file_opts {
	const char *checkpoints, *public_key, *output;
};

static int parse_file_opts(struct cmd_ctx *ctx, int argc, char **argv, struct file_opts *f)
{
	const char **dst;
	int c;

	memset(f, 0, sizeof(*f));
	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		const struct option *o = ctx->cmd->options;

		while (o->name && o->val != c)
			o++;
		dst = c == OPT_CHECKPOINTS  ? &f->checkpoints
		      : c == OPT_PUBLIC_KEY ? &f->public_key
		      : c == OPT_OUTPUT     ? &f->output
		                            : NULL;
		if (!dst || !o->name || file_arg(ctx, o->name, dst))
			return PL_EUSAGE;
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	return 0;
}

int cmd_audit_verify(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_audit_verify_req req = {&interrupted, NULL, NULL};
	struct pl_audit_verify_result res;
	struct pl_err err = PL_ERR_INIT;
	struct file_opts f;
	struct interrupt in;
	json_t *doc = NULL;
	int r;

	if (parse_file_opts(ctx, argc, argv, &f))
		return PL_EUSAGE;
	if (!f.checkpoints != !f.public_key)
		return cmd_usage_error(ctx, "--checkpoints and --public-key go together");
	req.checkpoints = f.checkpoints;
	req.public_key = f.public_key;
	catch_stop(&in);
	r = pl_audit_verify(&ctx->session, &req, &res, &err);
	release_stop(&in);
	if (!r && ctx->json && !(doc = verify_json(&res)))
		r = pl_err_set(&err, PL_EINTERNAL, "cannot build the JSON output");
	else if (!r && ctx->json)
		cmd_print_json(ctx, doc);
	else if (!r)
		print_verify(ctx, &res);
	if (!r && !res.intact)
		r = PL_ENO;
	else if (r)
		r = cmd_fail(ctx, &err);
	pl_audit_verify_release(&res);
	return r;
}

int cmd_audit_checkpoint(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_audit_checkpoint_req req = {NULL, &interrupted};
	struct pl_audit_checkpoint_result res;
	struct pl_err err = PL_ERR_INIT;
	struct file_opts f;
	struct interrupt in;
	json_t *doc = NULL;
	int r;

	if (parse_file_opts(ctx, argc, argv, &f))
		return PL_EUSAGE;
	req.output = f.output;
	catch_stop(&in);
	r = pl_audit_checkpoint(&ctx->session, &req, &res, &err);
	release_stop(&in);
	/* The line is the checkpoint's JSON: --json prints it as a document, dry runs and stdout
	 * as it is. */
	if (r)
		cmd_fail(ctx, &err);
	else if (ctx->json && (doc = json_loadb(res.line.buf, res.line.len, 0, NULL)))
		cmd_print_json(ctx, doc);
	else if (ctx->json || ctx->dry_run || !res.path)
		fwrite(res.line.buf, 1, res.line.len, stdout);
	else
		printf("checkpoint of event %lld appended to %s\n", res.seq, res.path);
	pl_audit_checkpoint_release(&res);
	return r;
}
