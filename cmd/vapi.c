/* parlae vapi phone add | phone list | phone remove | tool invoke | replay */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/http.h"
#include "../lib/json.h"
#include "../lib/phone.h"
#include "../lib/replay.h"
#include "../lib/utf8.h"
#include "../lib/vapi.h"
#include "../lib/vapi_handle.h"
#include "../lib/banned.h"

const struct option opts_vapi_phone_add[] = {
    {"vapi-id", required_argument, NULL, 'i'},
    {"number", required_argument, NULL, 'n'},
    {"staff-forward", required_argument, NULL, 's'},
    {"transfer", no_argument, NULL, 't'},
    {"no-transfer", no_argument, NULL, 'T'},
    {"move", no_argument, NULL, 'm'},
    {NULL, 0, NULL, 0},
};

const struct option opts_vapi_phone_list[] = {
    {"account", required_argument, NULL, 'a'},
    {NULL, 0, NULL, 0},
};

const struct option opts_vapi_tool_invoke[] = {
    {"account", required_argument, NULL, 'a'}, {"args", required_argument, NULL, 'A'},
    {"call-id", required_argument, NULL, 'c'}, {"caller", required_argument, NULL, 'C'},
    {"payload", required_argument, NULL, 'p'}, {"target", required_argument, NULL, 'T'},
    {"auth", required_argument, NULL, 'u'},    {"expect", required_argument, NULL, 'e'},
    {"as-of", required_argument, NULL, 'o'},   {NULL, 0, NULL, 0},
};

static json_t *phone_json(const struct pl_phone *p)
{
	return pl_json_x(json_pack("{s:s, s:s, s:s, s:s?, s:b}", "vapiId", p->vapi_id, "account",
	                           p->account, "number", p->number, "staffForward",
	                           *p->staff_forward ? p->staff_forward : NULL, "transferEnabled",
	                           p->transfer_enabled));
}

int cmd_vapi_phone_add(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_phone_req req = {0};
	struct pl_phone_change res;
	struct pl_err err = PL_ERR_INIT;
	int c;

	req.transfer = -1;
	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'i':
			req.vapi_id = optarg;
			break;
		case 'n':
			req.number = optarg;
			break;
		case 's':
			req.staff_forward = optarg;
			break;
		case 't':
		case 'T':
			if (req.transfer >= 0 && req.transfer != (c == 't'))
				return cmd_usage_error(
				    ctx, "--transfer and --no-transfer contradict each other");
			req.transfer = c == 't';
			break;
		case 'm':
			req.move = 1;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind >= argc)
		return cmd_usage_error(ctx, "missing ACCOUNT");
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	if (!req.vapi_id || !req.number)
		return cmd_usage_error(ctx, "--vapi-id and --number are required");
	req.account = argv[optind];
	if (pl_phone_add(&ctx->session, &req, &res, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		json_t *doc = phone_json(&res.phone);

		json_object_set_new(doc, "movedFrom",
		                    *res.moved_from ? pl_json_x(json_string(res.moved_from))
		                                    : json_null());
		json_object_set_new(doc, "created", json_boolean(res.created));
		json_object_set_new(doc, "dryRun", json_boolean(ctx->dry_run));
		cmd_print_json(ctx, doc);
	} else if (*res.moved_from) {
		printf("%s %s from %s to %s\n", ctx->dry_run ? "would move" : "moved",
		       res.phone.vapi_id, res.moved_from, res.phone.account);
	} else {
		printf("%s %s → %s\n",
		       ctx->dry_run ? (res.created ? "would register" : "would update")
		                    : (res.created ? "registered" : "updated"),
		       res.phone.vapi_id, res.phone.account);
	}
	return 0;
}

int cmd_vapi_phone_remove(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_phone p;
	struct pl_err err = PL_ERR_INIT;

	if (cmd_getopt(ctx, argc, argv) != -1)
		return PL_EUSAGE;
	if (optind >= argc)
		return cmd_usage_error(ctx, "missing VAPI_ID");
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	if (pl_phone_remove(&ctx->session, argv[optind], &p, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		json_t *doc = phone_json(&p);

		json_object_set_new(doc, "removed", json_boolean(!ctx->dry_run));
		json_object_set_new(doc, "dryRun", json_boolean(ctx->dry_run));
		cmd_print_json(ctx, doc);
	} else {
		printf("%s %s (account %s)\n", ctx->dry_run ? "would remove" : "removed", p.vapi_id,
		       p.account);
	}
	return 0;
}

int cmd_vapi_phone_list(struct cmd_ctx *ctx, int argc, char **argv)
{
	const char *account = NULL;
	struct pl_err err = PL_ERR_INIT;
	struct pl_phone *v;
	struct cmd_table t;
	size_t n;
	int c;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		if (c != 'a')
			return PL_EUSAGE;
		account = optarg;
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (pl_phone_list(&ctx->session, account, &v, &n, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, phone_json(&v[i]));
		cmd_print_json(ctx, a);
	} else {
		cmd_table_init(&t, 5, "VAPI ID", "ACCOUNT", "NUMBER", "STAFF", "TRANSFER");
		for (size_t i = 0; i < n; i++)
			cmd_table_row(&t, v[i].vapi_id, v[i].account, v[i].number,
			              *v[i].staff_forward ? v[i].staff_forward : NULL,
			              v[i].transfer_enabled ? "yes" : "no");
		cmd_table_print(ctx, &t);
		cmd_table_release(&t);
	}
	free(v);
	return 0;
}

struct invoke {
	const char *tool, *account, *args, *call_id, *caller, *payload, *target, *expect;
	enum pl_vapi_auth auth;
	int as_of_payload;
};

/* With --expect, the response is compared with a saved one: 1 and the differences if unlike. */
static int check_expect(struct cmd_ctx *ctx, const char *path, const char *actual, size_t len)
{
	struct pl_buf want = PL_BUF_INIT, diff = PL_BUF_INIT;
	struct pl_err err = PL_ERR_INIT;
	int r;

	if ((r = cmd_read_input(path, PL_VAPI_MAX_BODY, &want, &err)))
		return cmd_fail(ctx, &err);
	r = pl_vapi_compare(want.buf, want.len, actual, len, &diff, &err);
	if (r < 0)
		r = cmd_fail(ctx, &err);
	else if (r)
		fprintf(stderr, "parlae: the response differs from %s:\n%s", path, diff.buf);
	pl_buf_release(&want);
	pl_buf_release(&diff);
	return r ? (r < 0 ? -r : PL_ENO) : 0;
}

static int send_to_target(struct cmd_ctx *ctx, const struct invoke *iv, const struct pl_buf *body)
{
	struct pl_http_resp resp;
	struct pl_err err = PL_ERR_INIT;
	int r;

	if (ctx->dry_run) {
		printf("would send %zu bytes to %s\n", body->len, iv->target);
		return 0;
	}
	r = pl_vapi_post(&ctx->cfg, iv->target, iv->auth, body->buf, body->len, &resp, &err);
	if (resp.status)
		cmd_note(ctx, "HTTP %ld in %.0f ms", resp.status, resp.seconds * 1000);
	if (!r) {
		fwrite(resp.body.buf, 1, resp.body.len, stdout);
		if (resp.body.len && resp.body.buf[resp.body.len - 1] != '\n')
			putchar('\n');
		if (iv->expect)
			r = check_expect(ctx, iv->expect, resp.body.buf, resp.body.len);
	} else {
		r = cmd_fail(ctx, &err);
	}
	pl_http_resp_release(&resp);
	return r;
}

/* A line of text from outside (a tool's name, Sikka's message): a CR in it is shown, not obeyed. */
static void say_line(const struct pl_buf *text)
{
	struct pl_buf esc = PL_BUF_INIT;

	cmd_escape(&esc, text->buf, text->len, 0);
	fprintf(stderr, "parlae: vapi tool invoke: %s\n", esc.buf);
	pl_buf_release(&esc);
}

/*
 * One line on stderr per call that failed: stdout stays exactly Vapi's response. With --json,
 * stderr holds one JSON error instead, naming them all.
 */
static void say_failures(struct cmd_ctx *ctx, const struct pl_vapi_answer *ans)
{
	struct pl_buf all = PL_BUF_INIT, line = PL_BUF_INIT;
	struct pl_err err = PL_ERR_INIT;

	if (ans->kind == PL_VAPI_TRANSFER && ans->status) {
		json_t *doc = json_loads(ans->body, 0, NULL);

		pl_buf_addf(&all, "transfer-destination-request: %s",
		            json_string_value(json_object_get(doc, "error")) ?: "no destination");
		json_decref(doc);
	}
	for (size_t i = 0; ans->out && i < ans->msg.ncalls; i++) {
		const struct pl_vapi_call *call = &ans->msg.calls[i];

		if (!ans->out[i].error)
			continue;
		pl_buf_reset(&line);
		if (*call->id)
			pl_buf_addf(&line, "%s (%s): %s", call->name, call->id, ans->out[i].error);
		else
			pl_buf_addf(&line, "%s: %s", call->name, ans->out[i].error);
		if (!ctx->json)
			say_line(&line);
		else
			pl_buf_addf(&all, "%s%s", all.len ? "; " : "", line.buf);
	}
	if (all.len && !ctx->json)
		say_line(&all);
	else if (all.len) {
		pl_err_set(&err, ans->status, "vapi tool invoke: %s", all.buf);
		cmd_fail(ctx, &err);
	}
	pl_buf_release(&line);
	pl_buf_release(&all);
}

/*
 * The reply: as it is when piped or with --json (byte for byte what Vapi would get); on a
 * terminal indented, with result strings that hold JSON shown as JSON.
 */
static void print_reply(struct cmd_ctx *ctx, const struct pl_vapi_answer *ans)
{
	json_t *doc, *shown;
	char *text;

	if (ctx->json || !cmd_stdout_tty() || !(doc = json_loads(ans->body, 0, NULL))) {
		puts(ans->body);
		return;
	}
	shown = pl_vapi_expand(doc);
	text = json_dumps(shown, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	puts(text ? text : ans->body);
	free(text);
	json_decref(shown);
	json_decref(doc);
}

/* Locally: the library's one handler answers; this prints its reply and says what it did. */
static int run_local(struct cmd_ctx *ctx, const struct invoke *iv, struct pl_vapi_msg *m)
{
	struct pl_vapi_ctx vc = {iv->account, iv->caller, !iv->payload && !iv->caller, iv->call_id,
	                         iv->as_of_payload};
	struct pl_vapi_answer ans;
	struct pl_err err = PL_ERR_INIT;
	int r;

	r = pl_vapi_handle_msg(&ctx->session, &vc, m, &ans, &err);
	if (!ans.body) {
		if (r)
			r = cmd_fail(ctx, &err);
		else if (ans.kind == PL_VAPI_ENDED)
			cmd_note(ctx, "closed the log of call %s", ans.msg.call_id);
		else
			cmd_note(ctx, "skipped a '%s' message: it carries no tool call",
			         ans.msg.type);
		pl_vapi_answer_release(&ans);
		return r;
	}
	print_reply(ctx, &ans);
	if (!r)
		say_failures(ctx, &ans);
	r = r ? cmd_fail(ctx, &err) : ans.status;
	if (iv->expect) {
		int e = check_expect(ctx, iv->expect, ans.body, ans.len);

		r = e ? e : r;
	}
	pl_vapi_answer_release(&ans);
	return r;
}

static int parse_auth(const char *s, enum pl_vapi_auth *out)
{
	if (!strcmp(s, "secret"))
		*out = PL_VAPI_AUTH_SECRET;
	else if (!strcmp(s, "hmac"))
		*out = PL_VAPI_AUTH_HMAC;
	else if (!strcmp(s, "bearer"))
		*out = PL_VAPI_AUTH_BEARER;
	else
		return -1;
	return 0;
}

/* Whether --args' inline text is rather the name of a file ("call.json" for "@call.json"). */
static int names_file(const char *args)
{
	struct stat st;

	return args[0] != '@' && strcmp(args, "-") && stat(args, &st) == 0 && S_ISREG(st.st_mode);
}

int cmd_vapi_tool_invoke(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct invoke iv = {0};
	struct pl_vapi_msg m;
	struct pl_buf input = PL_BUF_INIT;
	struct pl_err err = PL_ERR_INIT;
	int c, r;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'a':
			iv.account = optarg;
			break;
		case 'A':
			iv.args = optarg;
			break;
		case 'c':
			if (!*optarg || strlen(optarg) > 128 ||
			    !pl_utf8_valid(optarg, strlen(optarg)))
				return cmd_usage_error(
				    ctx, "--call-id '%s' is not 1-128 bytes of UTF-8 text", optarg);
			iv.call_id = optarg;
			break;
		case 'C':
			iv.caller = optarg;
			break;
		case 'p':
			iv.payload = optarg;
			break;
		case 'T':
			iv.target = optarg;
			break;
		case 'e':
			iv.expect = optarg;
			break;
		case 'u':
			if (parse_auth(optarg, &iv.auth) < 0)
				return cmd_usage_error(
				    ctx, "--auth is secret, hmac or bearer, not '%s'", optarg);
			break;
		case 'o':
			if (strcmp(optarg, "now") && strcmp(optarg, "payload"))
				return cmd_usage_error(ctx, "--as-of is now or payload, not '%s'",
				                       optarg);
			iv.as_of_payload = !strcmp(optarg, "payload");
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	iv.tool = optind < argc ? argv[optind] : NULL;
	if (!iv.tool == !iv.payload)
		return cmd_usage_error(ctx, "give a TOOL, or --payload FILE");
	if (iv.tool && (iv.target || iv.as_of_payload))
		return cmd_usage_error(ctx, "--target and --as-of go with --payload");
	if (iv.payload && (iv.args || iv.caller))
		return cmd_usage_error(
		    ctx, "--args and --caller go with a TOOL; a payload carries its own");
	if (iv.payload) {
		if ((r = cmd_read_input(iv.payload, PL_VAPI_MAX_BODY, &input, &err)))
			goto fail;
		if (iv.target) {
			r = send_to_target(ctx, &iv, &input);
			goto out;
		}
		r = pl_vapi_parse(input.buf, input.len, &m, &err);
	} else {
		if (iv.args && iv.args[0] == '@') {
			if ((r = cmd_read_input(iv.args + 1, PL_VAPI_MAX_BODY, &input, &err)))
				goto fail;
		} else if (iv.args && !strcmp(iv.args, "-")) {
			if ((r = cmd_read_input("-", PL_VAPI_MAX_BODY, &input, &err)))
				goto fail;
		} else if (iv.args) {
			pl_buf_adds(&input, iv.args);
		}
		r = pl_vapi_direct(iv.tool, iv.args ? input.buf : NULL, input.len, &m, &err);
		if (r == PL_EBADINPUT && iv.args && names_file(iv.args))
			pl_err_hint(&err, "to read a file, use --args @%s", iv.args);
	}
	if (r)
		goto fail;
	r = run_local(ctx, &iv, &m);
	pl_vapi_msg_release(&m);
	goto out;
fail:
	r = cmd_fail(ctx, &err);
out:
	pl_buf_release(&input);
	return r;
}

const struct option opts_vapi_replay[] = {
    {"target", required_argument, NULL, 'T'},      {"auth", required_argument, NULL, 'u'},
    {"concurrency", required_argument, NULL, 'c'}, {"expect-dir", required_argument, NULL, 'E'},
    {"update-expected", no_argument, NULL, 'U'},   {NULL, 0, NULL, 0},
};

struct replay_ui {
	int bar;         /* a progress bar on stderr (a TTY) */
	size_t failures; /* shown one per line, the first 20 */
	int verbose;     /* -v: each failed tool call too (the first 20) */
	size_t calls;
	json_t *listed; /* --dry-run --json: what would be replayed */
};

static void on_progress(size_t done, size_t total, void *arg)
{
	struct replay_ui *ui = arg;

	if (ui->bar && (done == total || done % 16 == 0))
		cmd_progress("replaying", done, total);
}

static void on_failure(const char *source, const char *why, void *arg)
{
	struct replay_ui *ui = arg;

	if (ui->failures++ < 20) {
		if (ui->bar)
			fputc('\r', stderr);
		fprintf(stderr, "parlae: %s: %s\n", source, why);
	}
}

/* --expect-dir: what differs, per message (values redacted by lib/expect.c). */
static void on_differs(const char *name, const char *diff, void *arg)
{
	struct replay_ui *ui = arg;

	if (ui->bar)
		fputc('\r', stderr);
	fprintf(stderr, "parlae: %s differs from its expected response:\n%s", name, diff);
}

/* -v: which call of a failed message, and why. */
static void on_call_failed(const char *source, const char *id, const char *tool, const char *error,
                           void *arg)
{
	struct replay_ui *ui = arg;

	if (!ui->verbose || ui->calls++ >= 20)
		return;
	if (ui->bar)
		fputc('\r', stderr);
	if (*id)
		fprintf(stderr, "parlae: %s: tool call %s (%s): %s\n", source, id, tool, error);
	else
		fprintf(stderr, "parlae: %s: %s: %s\n", source, tool, error);
}

/* A copy of s as valid UTF-8: a path or URL from the command line may be any bytes. */
static char *valid_utf8(const char *s)
{
	size_t size = strlen(s) * 3 + 1;
	char *valid = pl_xmalloc(size);

	pl_utf8_copy(valid, size, s);
	return valid;
}

/* --dry-run: one line per message. */
static void on_listed(const char *source, size_t bytes, const char *what, void *arg)
{
	struct replay_ui *ui = arg;
	char *valid = valid_utf8(source);

	if (ui->listed)
		json_array_append_new(
		    ui->listed, pl_json_x(json_pack("{s:s, s:I, s:s}", "source", valid, "bytes",
		                                    (json_int_t)bytes, "what", what)));
	else
		printf("%s (%zu bytes): %s\n", valid, bytes, what);
	free(valid);
}

static int replay_dry_run(struct cmd_ctx *ctx, const struct pl_replay_req *req,
                          const struct pl_replay_summary *sum, struct replay_ui *ui)
{
	if (ctx->json) {
		json_t *doc = pl_json_x(json_pack("{s:b, s:I, s:O}", "dryRun", 1, "total",
		                                  (json_int_t)sum->total, "messages", ui->listed));

		char *target = req->target ? valid_utf8(req->target) : NULL;

		json_object_set_new(doc, "target",
		                    target ? pl_json_x(json_string(target)) : json_null());
		free(target);
		cmd_print_json(ctx, doc);
	} else {
		printf("would %s %zu message%s%s%s; nothing was sent or run\n",
		       req->target ? "send" : "replay", sum->total, sum->total == 1 ? "" : "s",
		       req->target ? " to " : "", req->target ? req->target : "");
	}
	json_decref(ui->listed);
	return 0;
}

int cmd_vapi_replay(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_replay_req req = {0};
	struct pl_replay_summary sum;
	struct pl_err err = PL_ERR_INIT;
	struct replay_ui ui = {0};
	long n;
	int c;

	req.concurrency = 8;
	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'T':
			req.target = optarg;
			break;
		case 'u':
			if (parse_auth(optarg, &req.auth) < 0)
				return cmd_usage_error(
				    ctx, "--auth is secret, hmac or bearer, not '%s'", optarg);
			break;
		case 'c':
			if (cmd_parse_number(optarg, 1, 256, &n) < 0)
				return cmd_usage_error(ctx, "--concurrency must be 1 to 256");
			req.concurrency = (int)n;
			break;
		case 'E':
			req.expect_dir = optarg;
			break;
		case 'U':
			req.update_expected = 1;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind >= argc)
		return cmd_usage_error(ctx, "give at least one FILE or DIR");
	if (req.update_expected && !req.expect_dir)
		return cmd_usage_error(ctx, "--update-expected goes with --expect-dir");
	req.paths = (const char *const *)argv + optind;
	req.npaths = (size_t)(argc - optind);
	ui.bar = isatty(STDERR_FILENO) && ctx->verbosity >= 0 && !ctx->json;
	req.progress = on_progress;
	req.failure = on_failure;
	req.call_failed = on_call_failed;
	ui.verbose = ctx->verbosity > 0;
	req.listed = on_listed;
	req.differs = on_differs;
	req.arg = &ui;
	if (ctx->dry_run) {
		ui.bar = 0;
		ui.listed = ctx->json ? pl_json_x(json_array()) : NULL;
	}
	if (pl_replay(&ctx->session, &req, &sum, &err)) {
		json_decref(ui.listed);
		return cmd_fail(ctx, &err);
	}
	if (ctx->dry_run)
		return replay_dry_run(ctx, &req, &sum, &ui);
	if (ctx->json) {
		json_t *doc = json_pack("{s:I, s:I, s:I, s:I, s:f, s:{s:f, s:f, s:f}}", "total",
		                        (json_int_t)sum.total, "ok", (json_int_t)sum.ok, "failed",
		                        (json_int_t)sum.failed, "skipped", (json_int_t)sum.skipped,
		                        "seconds", sum.seconds, "latencyMs", "p50", sum.p50_ms,
		                        "p95", sum.p95_ms, "p99", sum.p99_ms);

		if (req.expect_dir)
			pl_json_set(
			    doc, "expected",
			    pl_json_x(json_pack("{s:I, s:I, s:I}", "same", (json_int_t)sum.same,
			                        "differ", (json_int_t)sum.differ, "written",
			                        (json_int_t)sum.written)));
		cmd_print_json(ctx, doc);
	} else {
		printf("replayed %zu message%s in %.2f s: %zu ok, %zu failed, %zu skipped; "
		       "latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n",
		       sum.total, sum.total == 1 ? "" : "s", sum.seconds, sum.ok, sum.failed,
		       sum.skipped, sum.p50_ms, sum.p95_ms, sum.p99_ms);
		if (req.update_expected)
			printf("wrote %zu expected response%s\n", sum.written,
			       sum.written == 1 ? "" : "s");
		else if (req.expect_dir)
			printf("expected responses: %zu same, %zu differ\n", sum.same, sum.differ);
	}
	/* A difference is the gate's answer (1); failures without one are 9. */
	return sum.differ ? PL_ENO : sum.failed ? PL_EPARTIAL : 0;
}
