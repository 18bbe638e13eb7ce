/*
 * parlae: the command table, the global options and dispatch. Everything a command does is
 * in lib/; this file only decides which command runs and with what set up.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/suggest.h"
#include "../lib/trace.h"
#include "../lib/banned.h"

#ifndef PARLAE_VERSION
#define PARLAE_VERSION "0.0.0"
#endif

const struct cmd commands[] = {
    {"account add", cmd_account_add, NEEDS_DB,
     "parlae account add ACCOUNT [--name NAME] [--email EMAIL]", "create a practice account", "",
     opts_account_add, "account", &doc_account_add},
    {"account list", cmd_account_list, NEEDS_DB, "parlae account list", "list practice accounts",
     "", NULL, NULL, &doc_account_list},
    {"audit checkpoint", cmd_audit_checkpoint, NEEDS_DB, "parlae audit checkpoint [--output FILE]",
     "verify the chain since the last checkpoint, then append a signed checkpoint of its head", "",
     opts_audit_checkpoint, NULL, &doc_audit_checkpoint},
    {"audit tail", cmd_audit_tail, NEEDS_DB,
     "parlae audit tail [-n N] [-f] [--account ACCOUNT] [--action GLOB] [--since TIME] "
     "[--cursor-file FILE]",
     "print audit events, oldest first, and follow new ones as they commit", "n:f", opts_audit_tail,
     NULL, &doc_audit_tail},
    {"audit verify", cmd_audit_verify, NEEDS_DB,
     "parlae audit verify [--checkpoints FILE --public-key FILE]",
     "check that the audit log is complete and unaltered, and holds its signed checkpoints", "",
     opts_audit_verify, NULL, &doc_audit_verify},
    {"db migrate", cmd_db_migrate, NEEDS_DB, "parlae db migrate",
     "apply the schema migrations compiled into parlae", "", NULL, NULL, &doc_db_migrate},
    {"db status", cmd_db_status, NEEDS_DB, "parlae db status",
     "list applied and pending schema migrations", "", NULL, NULL, &doc_db_status},
    {"help", cmd_help, 0, "parlae help [COMMAND | exit-codes]", "show help for parlae or a command",
     "", NULL, "command", &doc_help},
    {"pms assign", cmd_pms_assign, NEEDS_DB, "parlae pms assign REGISTRATION ACCOUNT",
     "match a pending marketplace registration to an account, and connect it", "", NULL, NULL,
     &doc_pms_assign},
    {"pms cancel", cmd_pms_cancel, NEEDS_DB, "parlae pms cancel --payload FILE|-",
     "handle a marketplace cancellation: its practice's integration becomes inactive", "",
     opts_pms_payload, NULL, &doc_pms_cancel},
    {"pms disconnect", cmd_pms_disconnect, NEEDS_DB, "parlae pms disconnect ACCOUNT",
     "end an integration: revoke its key at Sikka, delete its secret, make it inactive", "", NULL,
     "account", &doc_pms_disconnect},
    {"pms purchase", cmd_pms_purchase, NEEDS_DB, "parlae pms purchase --payload FILE|-",
     "handle a marketplace registration: keep it, match it, connect the practice", "",
     opts_pms_payload, NULL, &doc_pms_purchase},
    {"pms registrations", cmd_pms_registrations, NEEDS_DB, "parlae pms registrations [--pending]",
     "list the marketplace registrations and cancellations received", "", opts_pms_registrations,
     NULL, &doc_pms_registrations},
    {"pms setup", cmd_pms_setup, NEEDS_DB,
     "parlae pms setup ACCOUNT [--provider sikka] [--timezone TZ] [--hours SPEC] "
     "[--practice-id ID]",
     "enable a practice's PMS integration through Sikka", "", opts_pms_setup, "account",
     &doc_pms_setup},
    {"secrets list", cmd_secrets_list, NEEDS_CONFIG, "parlae secrets list",
     "list the secret store's names, versions and dates, never values", "", NULL, NULL,
     &doc_secrets_list},
    {"secrets rotate", cmd_secrets_rotate, NEEDS_DB,
     "parlae secrets rotate [ACCOUNT... | --all] [--within DURATION] [--force] [--concurrency N] | "
     "--master-key",
     "refresh Sikka request keys before they expire, safely from many hosts; or re-key the file "
     "store",
     "", opts_secrets_rotate, "account", &doc_secrets_rotate},
    {"shell", cmd_shell, NEEDS_CONFIG, "parlae shell",
     "an interactive session with history and completion", "", NULL, NULL, &doc_shell},
    {"sikka callback", cmd_sikka_callback, NEEDS_DB,
     "parlae sikka callback (--url CALLBACK_URL|- | --code CODE --state STATE | --error ERROR "
     "--state STATE) [--practice-id ID]",
     "complete onboarding from the redirect the practice's browser landed on", "",
     opts_sikka_callback, NULL, &doc_sikka_callback},
    {"sikka oauth-url", cmd_sikka_oauth_url, NEEDS_DB,
     "parlae sikka oauth-url ACCOUNT [--redirect-uri URL] [--ttl SECONDS]",
     "print the Sikka authorize URL with a signed, single-use state", "", opts_sikka_oauth_url,
     "account", &doc_sikka_oauth_url},
    {"status", cmd_status, NEEDS_CONFIG, "parlae status [ACCOUNT] [--wait[=SECONDS]] [--check]",
     "what is configured and reachable, or one account's connection status", "", opts_status,
     "account", &doc_status},
    {"vapi listen", cmd_vapi_listen, NEEDS_DB,
     "parlae vapi listen [--port N] [--bind ADDR] [--auth secret|hmac|bearer|any] "
     "[--forward-to URL] [--record DIR] [--redact|--no-redact] [--threads N] "
     "[--max-connections N]",
     "serve Vapi's server URL from the terminal: authenticate, run the handlers or relay, record",
     "", opts_vapi_listen, NULL, &doc_vapi_listen},
    {"vapi phone add", cmd_vapi_phone_add, NEEDS_DB,
     "parlae vapi phone add ACCOUNT --vapi-id ID --number E164 [--staff-forward E164] "
     "[--transfer|--no-transfer] [--move]",
     "register the Vapi phone number that maps calls to an account", "", opts_vapi_phone_add,
     "account", &doc_vapi_phone_add},
    {"vapi phone list", cmd_vapi_phone_list, NEEDS_DB, "parlae vapi phone list [--account ACCOUNT]",
     "list the registered Vapi phone numbers", "", opts_vapi_phone_list, NULL,
     &doc_vapi_phone_list},
    {"vapi phone remove", cmd_vapi_phone_remove, NEEDS_DB, "parlae vapi phone remove VAPI_ID",
     "remove a Vapi phone number's registration", "", NULL, "phone", &doc_vapi_phone_remove},
    {"vapi replay", cmd_vapi_replay, NEEDS_DB,
     "parlae vapi replay FILE|DIR... [--target URL [--auth secret|hmac|bearer]] [--concurrency N] "
     "[--expect-dir DIR [--update-expected]]",
     "replay recorded Vapi messages locally or against a backend, with a latency summary", "",
     opts_vapi_replay, NULL, &doc_vapi_replay},
    {"vapi tool invoke", cmd_vapi_tool_invoke, NEEDS_DB,
     "parlae vapi tool invoke (TOOL [--account ACCOUNT] [--args JSON|@FILE|-] [--call-id ID] "
     "[--caller E164] | --payload FILE|- [--target URL [--auth secret|hmac|bearer]] [--as-of "
     "now|payload]) [--expect FILE]",
     "run a voice-agent tool call through parlae's handlers, or send it to a backend", "",
     opts_vapi_tool_invoke, NULL, &doc_vapi_tool_invoke},
    {"version", cmd_version, 0, "parlae version", "print parlae's version", "", NULL, NULL,
     &doc_version},
};
const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

enum global_opt {
	OPT_JSON = 1000,
	OPT_QUIET,
	OPT_VERBOSE,
	OPT_COLOR,
	OPT_CONFIG,
	OPT_PROFILE,
	OPT_DRY_RUN,
	OPT_VERSION,
	OPT_HELP,
	OPT_LIST_CMDS,
};

static const struct option global_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"color", required_argument, NULL, OPT_COLOR},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {"list-cmds", no_argument, NULL, OPT_LIST_CMDS},
    {NULL, 0, NULL, 0},
};
#define NGLOBAL (sizeof(global_options) / sizeof(global_options[0]) - 1)

void cmd_ctx_init(struct cmd_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->color = -1;
	pl_config_init(&ctx->cfg);
	pl_session_init(&ctx->session, &ctx->cfg);
}

void cmd_ctx_release(struct cmd_ctx *ctx)
{
	pl_session_release(&ctx->session);
	pl_config_release(&ctx->cfg);
}

/* PARLAE_TRACE=/abs/file: the -vv trace is also appended there, whatever -v says (as GIT_TRACE). */
static int trace_fd = -1;

static void trace_open(void)
{
	const char *path = getenv("PARLAE_TRACE");

	if (!path || !*path)
		return;
	if (*path != '/') {
		fprintf(stderr, "parlae: PARLAE_TRACE must be an absolute path; not tracing\n");
		return;
	}
	trace_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (trace_fd < 0)
		fprintf(stderr, "parlae: cannot open PARLAE_TRACE %s: %s; not tracing\n", path,
		        strerror(errno));
}

/* One line, its control characters shown as text; to the file in one write, so that lines
 * of processes tracing to one file do not mix. */
static void trace_line(int level, const char *line, void *arg)
{
	const struct cmd_ctx *ctx = arg;
	struct pl_buf b = PL_BUF_INIT;
	size_t head;

	pl_buf_addf(&b, "trace[%ld]: ", (long)getpid());
	head = b.len;
	cmd_escape(&b, line, strlen(line), 0);
	pl_buf_addch(&b, '\n');
	if (ctx->verbosity >= 2 && level <= ctx->verbosity)
		fprintf(stderr, "trace: %s", b.buf + head);
	if (trace_fd >= 0 && write(trace_fd, b.buf, b.len) != (ssize_t)b.len) {
		/* A trace that cannot be written is not a reason to fail the command. */
	}
	pl_buf_release(&b);
}

void cmd_apply_settings(struct cmd_ctx *ctx)
{
	int on = ctx->verbosity >= 2 || trace_fd >= 0;

	pl_trace_set(on ? trace_line : NULL, ctx, trace_fd >= 0 ? 2 : ctx->verbosity);
	ctx->session.dry_run = ctx->dry_run;
}

static int set_global(struct cmd_ctx *ctx, int c, const char *arg);

/* Applies a global option wherever it stands; 0 if handled, 1 if not global, else PL_EUSAGE. */
static int apply_global(struct cmd_ctx *ctx, int c, const char *arg)
{
	int r = set_global(ctx, c, arg);

	cmd_apply_settings(ctx);
	return r;
}

static int set_global(struct cmd_ctx *ctx, int c, const char *arg)
{
	switch (c) {
	case OPT_JSON:
		ctx->json = 1;
		return 0;
	case 'q':
	case OPT_QUIET:
		ctx->verbosity = -1;
		return 0;
	case 'v':
	case OPT_VERBOSE:
		ctx->verbosity = ctx->verbosity < 0 ? 1 : ctx->verbosity + 1;
		return 0;
	case OPT_COLOR:
		if (!strcmp(arg, "auto"))
			ctx->color = -1;
		else if (!strcmp(arg, "always"))
			ctx->color = 1;
		else if (!strcmp(arg, "never"))
			ctx->color = 0;
		else
			return cmd_usage_error(
			    ctx, "--color must be auto, always or never, not '%s'", arg);
		return 0;
	case OPT_CONFIG:
		ctx->config_file = arg;
		return 0;
	case OPT_PROFILE:
		ctx->profile = arg;
		return 0;
	case OPT_DRY_RUN:
		ctx->dry_run = 1;
		return 0;
	}
	return 1;
}

/* After getopt_long reports a problem, the option it was looking at is argv[optind - 1]. */
static const char *option_name(char **argv)
{
	return optind > 0 && argv[optind - 1] ? argv[optind - 1] : "";
}

/* The command's options and the global ones, as one getopt_long table. */
static void merge_options(const struct cmd *cmd, struct option *all, size_t nall, char *shorts,
                          size_t nshorts)
{
	size_t n = 0;

	for (const struct option *o = cmd->options; o && o->name && n + NGLOBAL + 1 < nall; o++)
		all[n++] = *o;
	/* --version, --help and --list-cmds only mean something before the command. */
	for (size_t i = 0; i < NGLOBAL && global_options[i].val < OPT_VERSION; i++)
		all[n++] = global_options[i];
	memset(&all[n], 0, sizeof(all[n]));
	snprintf(shorts, nshorts, ":%sqv", cmd->shortopts ? cmd->shortopts : "");
}

/*
 * getopt_long, quietly, over a copy of argv (it permutes what it scans: the command must see argv
 * as it was given) with cmd's options and the global ones. visit gets each result, with the long
 * option matched (NULL for a short option or a problem) and its value, until it returns non-zero.
 */
static int walk_options(const struct cmd *cmd, int argc, char **argv,
                        int (*visit)(int c, const struct option *o, const char *value, void *arg),
                        void *arg)
{
	struct option all[64];
	char shorts[64], **copy;
	int c, idx = -1, r = 0;

	copy = pl_xcalloc((size_t)argc + 1, sizeof(*copy));
	memcpy(copy, argv, (size_t)argc * sizeof(*copy));
	merge_options(cmd, all, 64, shorts, sizeof(shorts));
	optind = 0;
	opterr = 0;
	while (!r && (c = getopt_long(argc, copy, shorts, all, &idx)) != -1) {
		r = visit(c, idx >= 0 && c != '?' && c != ':' ? &all[idx] : NULL, optarg, arg);
		idx = -1;
	}
	free(copy);
	optind = 0;
	return r;
}

static int visit_global(int c, const struct option *o, const char *value, void *arg)
{
	(void)o;
	return c >= OPT_JSON || c == 'q' || c == 'v' ? apply_global(arg, c, value) : 0;
}

/*
 * Global options may stand after the command: apply them all before the command runs, so that
 * --config, --profile and --json hold for set-up too. Problems are left for cmd_getopt to report.
 */
static int scan_globals(struct cmd_ctx *ctx, int argc, char **argv)
{
	return walk_options(ctx->cmd, argc, argv, visit_global, ctx);
}

/*
 * The usage error for what getopt_long refused, arg being the word it was reading: an unknown
 * long option names the nearest of opts ("--jsn": did you mean '--json'?), a flag given a value
 * says so. getopt_long sets optopt to 0 for an unknown long option, to the option's value for
 * a flag given one, and to the character for an unknown short option.
 */
static int bad_option(struct cmd_ctx *ctx, const char *arg, const struct option *opts)
{
	const char *cands[64], *near;
	char word[128];
	size_t n = 0;
	int is_long = !strncmp(arg, "--", 2);

	if (is_long) {
		pl_strlcpy(word, arg + 2, sizeof(word));
		word[strcspn(word, "=")] = '\0';
	}
	for (const struct option *o = opts; is_long && o->name && n < 64; o++) {
		if (optopt && o->val == optopt && !strcmp(o->name, word) && strchr(arg, '='))
			return cmd_usage_error(ctx, "option '--%s' takes no value", word);
		cands[n++] = o->name;
	}
	if (optopt > 0 && optopt < 128)
		return cmd_usage_error(ctx, "unknown option '-%c'", optopt);
	if (is_long && (near = pl_suggest(word, cands, n)))
		return cmd_usage_error(ctx, "unknown option '%s'; did you mean '--%s'?", arg, near);
	return cmd_usage_error(ctx, "unknown option '%s'", arg);
}

int cmd_getopt(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct option all[64];
	char shorts[64];
	int c;

	merge_options(ctx->cmd, all, 64, shorts, sizeof(shorts));
	opterr = 0;
	for (;;) {
		c = getopt_long(argc, argv, shorts, all, NULL);
		if (c == '?')
			return bad_option(ctx, option_name(argv), all), '?';
		if (c == ':')
			return cmd_usage_error(ctx, "option '%s' needs a value", option_name(argv)),
			       '?';
		if (c >= OPT_JSON || c == 'q' || c == 'v')
			continue; /* applied by scan_globals */
		return c;
	}
}

int cmd_parse_none(struct cmd_ctx *ctx, int argc, char **argv)
{
	if (cmd_getopt(ctx, argc, argv) != -1)
		return PL_EUSAGE;
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* --- finding commands ------------------------------------------------------------------ */

const struct cmd *cmd_find(const char *name)
{
	for (size_t i = 0; i < ncommands; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* Whether name is the first word of some two-word command ("db"). */
int cmd_is_group(const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < ncommands; i++)
		if (!strncmp(commands[i].name, name, n) && commands[i].name[n] == ' ')
			return 1;
	return 0;
}

/* The closest of the first words (group == NULL) or of a group's second words. */
static const char *suggest(const char *word, const char *group)
{
	static char words[sizeof(commands) / sizeof(commands[0])][64];
	const char *cands[sizeof(commands) / sizeof(commands[0])];
	size_t n = 0, glen = group ? strlen(group) : 0;

	for (size_t i = 0; i < ncommands; i++) {
		const char *name = commands[i].name;

		if (group && (strncmp(name, group, glen) || name[glen] != ' '))
			continue;
		pl_strlcpy(words[n], group ? name + glen + 1 : name, sizeof(words[n]));
		words[n][strcspn(words[n], " ")] = '\0';
		cands[n] = words[n];
		n++;
	}
	return pl_suggest(word, cands, n);
}

static void list_group(struct pl_buf *b, const char *group)
{
	size_t glen = strlen(group);

	for (size_t i = 0; i < ncommands; i++)
		if (!strncmp(commands[i].name, group, glen) && commands[i].name[glen] == ' ')
			pl_buf_addf(b, "%s%s", b->len ? ", " : "", commands[i].name + glen + 1);
}

#define MAX_CMD_WORDS 3

static void join_words(char *out, size_t size, char **argv, int k)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < k && n < size; i++)
		n += (size_t)snprintf(out + n, size - n, "%s%s", i ? " " : "", argv[i]);
}

/* How many of argv's first words may name a command. */
static int command_words(int argc, char **argv)
{
	int words = 0;

	while (words < argc && words < MAX_CMD_WORDS && argv[words][0] != '-')
		words++;
	return words;
}

/* The command argv's first words name, the longest name first; *consumed says how many. */
static const struct cmd *find_command(int argc, char **argv, int *consumed)
{
	const struct cmd *cmd;
	char name[192];

	for (int k = command_words(argc, argv); k >= 1; k--) {
		join_words(name, sizeof(name), argv, k);
		if ((cmd = cmd_find(name))) {
			*consumed = k;
			return cmd;
		}
	}
	return NULL;
}

/* -h or --help anywhere before "--" asks for the command's usage. */
static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	return 0;
}

/* Resolve argv to a command, the longest name first; *consumed says how many words named it. */
static int lookup(struct cmd_ctx *ctx, int argc, char **argv, const struct cmd **out, int *consumed)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf subs = PL_BUF_INIT;
	char name[192];
	const char *s, *next;
	int words = command_words(argc, argv), k;

	if ((*out = find_command(argc, argv, consumed)))
		return 0;
	for (k = words < MAX_CMD_WORDS ? words : MAX_CMD_WORDS - 1; k >= 1; k--) {
		join_words(name, sizeof(name), argv, k);
		if (!cmd_is_group(name))
			continue;
		next = k < words ? argv[k] : NULL;
		/* "parlae db -h": the group's subcommands, as "parlae help db" lists them. */
		if (!next && wants_help(argc - k + 1, argv + k - 1)) {
			cmd_print_help(ctx, name, stdout);
			return CMD_EXIT_HELP;
		}
		list_group(&subs, name);
		if (!next)
			pl_err_set(&err, PL_EUSAGE, "'parlae %s' needs a subcommand: %s", name,
			           subs.buf);
		else if ((s = suggest(next, name)))
			pl_err_set(&err, PL_EUSAGE,
			           "unknown command 'parlae %s %s'; did you mean 'parlae %s %s'?",
			           name, next, name, s);
		else
			pl_err_set(&err, PL_EUSAGE,
			           "unknown command 'parlae %s %s'; subcommands: %s", name, next,
			           subs.buf);
		pl_buf_release(&subs);
		return cmd_fail(ctx, &err);
	}
	if ((s = suggest(argv[0], NULL)))
		pl_err_set(&err, PL_EUSAGE, "unknown command '%s'; did you mean '%s'?", argv[0], s);
	else
		pl_err_set(&err, PL_EUSAGE, "unknown command '%s'", argv[0]);
	pl_err_hint(&err, "run 'parlae help' for the list of commands");
	return cmd_fail(ctx, &err);
}

static int setup(struct cmd_ctx *ctx, unsigned needs)
{
	struct pl_err err = PL_ERR_INIT;

	cmd_apply_settings(ctx);
	if (needs && !ctx->config_loaded) {
		if (pl_config_load(&ctx->cfg, ctx->config_file, ctx->profile, &err))
			return cmd_fail(ctx, &err);
		ctx->config_loaded = 1;
	}
	return 0;
}

int cmd_run(struct cmd_ctx *ctx, int argc, char **argv)
{
	const struct cmd *cmd;
	int consumed, r;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--json"))
			ctx->json = 1; /* so that even "unknown command" is reported as JSON */
	if ((r = lookup(ctx, argc, argv, &cmd, &consumed)))
		return r == CMD_EXIT_HELP ? 0 : r;
	ctx->cmd = cmd;
	ctx->cfg.command = cmd->name;
	argc -= consumed - 1;
	argv += consumed - 1;
	if (wants_help(argc, argv))
		return cmd_print_help(ctx, cmd->name, stdout), 0;
	if ((r = scan_globals(ctx, argc, argv)) || (r = setup(ctx, cmd->needs)))
		return r;
	r = cmd->fn(ctx, argc, argv);
	fflush(stdout);
	return r;
}

static int visit_picked(int c, const struct option *o, const char *value, void *arg)
{
	int (*const *pick)(const char *name, const char *value) = arg;

	return c == '?' || (o && (*pick)(o->name, value));
}

int cmd_line_has_option(int argc, char **argv, int (*pick)(const char *name, const char *value))
{
	const struct cmd *cmd;
	int c, consumed, r = 0;

	optind = 0;
	opterr = 0;
	while (!r && (c = getopt_long(argc, argv, "+:qvh", global_options, NULL)) != -1)
		r = c == '?';
	argc -= optind;
	argv += optind;
	optind = 0;
	if (r || argc == 0)
		return r;
	/* Without a command there is no table to judge by (and nothing runs). */
	if (!(cmd = find_command(argc, argv, &consumed)))
		return 1;
	return walk_options(cmd, argc - consumed + 1, argv + consumed - 1, visit_picked, &pick);
}

static void list_cmds(void)
{
	for (size_t i = 0; i < ncommands; i++)
		puts(commands[i].name);
}

int cmd_main(struct cmd_ctx *ctx, int argc, char **argv)
{
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:qvh", global_options, NULL)) != -1) {
		switch (c) {
		case OPT_VERSION:
			printf("parlae %s\n", PARLAE_VERSION);
			return 0;
		case 'h':
		case OPT_HELP:
			cmd_print_help(ctx, NULL, stdout);
			return 0;
		case OPT_LIST_CMDS:
			list_cmds();
			return 0;
		case '?':
			return bad_option(ctx, argv[optind - 1], global_options);
		case ':':
			return cmd_usage_error(ctx, "option '%s' needs a value", argv[optind - 1]);
		default:
			if ((c = apply_global(ctx, c, optarg)))
				return c;
		}
	}
	if (optind >= argc) {
		cmd_print_help(ctx, NULL, stderr);
		return PL_EUSAGE;
	}
	if (!strcmp(argv[optind], "__complete"))
		return cmd_complete_main(ctx, argc - optind, argv + optind);
	return cmd_run(ctx, argc - optind, argv + optind);
}

/*
 * Ctrl-C, a TERM or a QUIT: stop at once with the contract's 130. Nothing is half-done by
 * stopping: PostgreSQL rolls back an open transaction and drops the session's advisory locks when
 * the connection goes, and the secret store only ever renames complete files into place.
 */
static void on_interrupt(int sig)
{
	static const char msg[] = "parlae: interrupted\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more can be done from a signal handler */
	}
	_exit(PL_EINTERRUPTED);
}

/*
 * Before anything reads a secret: no core file and no ptrace by another user (the process holds
 * the master key and practices' keys), and the signals that end a command end it without a dump.
 */
static int harden(void)
{
	static const int stops[] = {SIGINT, SIGTERM, SIGQUIT};
	const struct rlimit no_core = {0, 0};
	struct sigaction sa;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		fprintf(stderr, "parlae: cannot turn core dumps off: %s\n", strerror(errno));
		return -1;
	}
	if (setrlimit(RLIMIT_CORE, &no_core) < 0) {
		fprintf(stderr, "parlae: cannot set the core size limit to 0: %s\n",
		        strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		if (sigaction(stops[i], &sa, NULL) < 0) {
			fprintf(stderr, "parlae: cannot handle signal %d: %s\n", stops[i],
			        strerror(errno));
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cmd_ctx ctx;
	int r;

	if (harden() < 0)
		return PL_EINTERNAL;
	cmd_output_init();
	trace_open();
	cmd_ctx_init(&ctx);
	cmd_apply_settings(&ctx);
	r = cmd_main(&ctx, argc, argv);
	r = cmd_finish_output(&ctx, r);
	cmd_ctx_release(&ctx);
	return r;
}
