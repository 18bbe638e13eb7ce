/*
 * parlae help and parlae version: both read the command table. `parlae COMMAND -h` prints the
 * command's usage, options with their defaults and examples (cmd/doc.c), in 80 columns;
 * `parlae help COMMAND` opens its manual page when man(1) can find it, else prints the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/account.h"
#include "../lib/buf.h"
#include "../lib/json.h"
#include "../lib/banned.h"

#ifndef PARLAE_VERSION
#define PARLAE_VERSION "0.0.0"
#endif

#define WIDTH 80

extern char **environ;

static const char *const global_help[][2] = {
    {"--json", "machine output: one JSON document on stdout (JSON Lines for streams)"},
    {"-q, --quiet", "less on stderr"},
    {"-v, --verbose", "more on stderr; -vv traces HTTP and SQL with secrets masked"},
    {"--color=WHEN", "auto (default: only on a TTY, never with NO_COLOR), always or never"},
    {"--config FILE", "config file (default $PARLAE_CONFIG, else $XDG_CONFIG_HOME/parlae/config)"},
    {"--profile NAME", "a [profile NAME] section of the config file (PARLAE_PROFILE)"},
    {"--dry-run", "mutating commands print what they would do and change nothing"},
    {"--version, --help", "as usual; --list-cmds lists the commands"},
};

/*
 * text's words up to column WIDTH on as many lines as they need, the first from column col
 * (the cursor is at column at), the others from column indent. A word longer than a line
 * stands alone.
 */
static void wrap_from(FILE *out, size_t at, size_t col, size_t indent, const char *text)
{
	const char *p = text;
	int first = 1;

	for (; at < col; at++)
		fputc(' ', out);
	while (*p) {
		size_t len = strcspn(p, " ");

		if (!first && at + 1 + len > WIDTH) {
			fprintf(out, "\n%*s", (int)indent, "");
			at = indent;
		} else if (!first) {
			fputc(' ', out);
			at++;
		}
		fwrite(p, 1, len, out);
		at += len;
		first = 0;
		p += len;
		while (*p == ' ')
			p++;
	}
	fputc('\n', out);
}

static void wrap(FILE *out, size_t at, size_t col, const char *text)
{
	wrap_from(out, at, col, col, text);
}

/* "  LABEL   TEXT", TEXT from column col, or on the next line when LABEL reaches it. */
static void item(FILE *out, const char *label, size_t col, const char *text)
{
	size_t at = 2 + strlen(label);

	fprintf(out, "  %s", label);
	if (at + 2 > col) {
		fputc('\n', out);
		at = 0;
	}
	wrap(out, at, col, text);
}

static void print_overview(FILE *out)
{
	size_t width = 0;

	fputs("usage: parlae [GLOBAL OPTIONS] COMMAND [SUBCOMMAND] [OPTIONS] [ARGS]\n\ncommands:\n",
	      out);
	for (size_t i = 0; i < ncommands; i++)
		if (strlen(commands[i].name) > width)
			width = strlen(commands[i].name);
	for (size_t i = 0; i < ncommands; i++)
		item(out, commands[i].name, width + 4, commands[i].summary);
	fputs("\nglobal options (before or after the command):\n", out);
	for (size_t i = 0; i < sizeof(global_help) / sizeof(global_help[0]); i++)
		item(out, global_help[i][0], 21, global_help[i][1]);
	fputs("\n'parlae COMMAND -h' for a command's options and examples, 'parlae help COMMAND'\n"
	      "for its manual, 'parlae help exit-codes' for the exit statuses.\n",
	      out);
}

/* --- manual pages ---------------------------------------------------------------------- */

/* "parlae-status" for "status" and "status x", "parlae-db" for "db migrate". */
static void page_name(const char *name, char *out, size_t size)
{
	snprintf(out, size, "parlae-%.*s", (int)strcspn(name, " "), name);
}

/* Whether man(1) is on PATH. */
static int have_man(void)
{
	const char *path = getenv("PATH"), *p;
	char file[PATH_MAX];

	for (p = path; p && *p; p += *p == ':') {
		size_t len = strcspn(p, ":");
		int n = snprintf(file, sizeof(file), "%.*s/man", (int)len, p);

		if (len && n > 0 && (size_t)n < sizeof(file) && access(file, X_OK) == 0)
			return 1;
		p += len;
	}
	return 0;
}

/*
 * The page beside the binary: man/ of a clone (./parlae, .build/san/parlae) or share/man/man1
 * of an installation prefix that man(1) may not search. 0 and its path in out, or -1.
 */
static int page_beside_binary(const char *page, char *out, size_t size)
{
	static const char *const dirs[] = {"man", "../../man", "../share/man/man1"};
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct stat st;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	if (!(slash = strrchr(exe, '/')))
		return -1;
	*slash = '\0';
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int len = snprintf(out, size, "%s/%s/%s.1", exe, dirs[i], page);

		if (len > 0 && (size_t)len < size && stat(out, &st) == 0 && S_ISREG(st.st_mode))
			return 0;
	}
	return -1;
}

/*
 * Run man with args and wait for it; its exit status, or -1 if it could not run. quiet sends
 * its output nowhere. While it runs (a pager, perhaps) Ctrl-C is the pager's, not ours.
 */
static int run_man(char *const args[], int quiet)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct sigaction ign, old_int, old_quit;
	sigset_t deflt;
	pid_t pid;
	int status = -1, r;

	fflush(stdout);
	fflush(stderr);
	if (posix_spawn_file_actions_init(&fa))
		return -1;
	if (posix_spawnattr_init(&attr)) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGQUIT);
	sigaddset(&deflt, SIGTERM);
	r = posix_spawnattr_setsigdefault(&attr, &deflt) ||
	    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF) ||
	    (quiet && (posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) ||
	               posix_spawn_file_actions_adddup2(&fa, 1, 2)));
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	if (!r && sigaction(SIGINT, &ign, &old_int) == 0) {
		if (sigaction(SIGQUIT, &ign, &old_quit) == 0) {
			if (posix_spawnp(&pid, "man", &fa, &attr, args, environ) == 0) {
				while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
					;
				status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			}
			sigaction(SIGQUIT, &old_quit, NULL);
		}
		sigaction(SIGINT, &old_int, NULL);
	}
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return status;
}

/*
 * How man(1) can show the page for a command or group name: "-l" and the file beside the
 * binary, or "" and the page's name when man finds it installed. 0, or -1 when it cannot.
 */
static int find_page(const char *name, char *how, size_t how_size, char *page, size_t size)
{
	char *args[] = {"man", "-w", page, NULL};

	page_name(name, page, size);
	if (!have_man())
		return -1;
	if (page_beside_binary(page, how, how_size) == 0)
		return 0;
	if (run_man(args, 1) != 0)
		return -1;
	how[0] = '\0';
	return 0;
}

/* 0 when man showed the page, -1 when it could not be found or shown. */
static int open_page(const char *name)
{
	char file[PATH_MAX], page[128];
	char *local[] = {"man", "-l", file, NULL}, *installed[] = {"man", page, NULL};

	if (find_page(name, file, sizeof(file), page, sizeof(page)) < 0)
		return -1;
	return run_man(file[0] ? local : installed, 0) == 0 ? 0 : -1;
}

/* --- a command's help ------------------------------------------------------------------ */

static const struct cmd_optdoc *optdoc(const struct cmd *c, const char *name)
{
	for (const struct cmd_optdoc *d = c->doc ? c->doc->options : NULL; d && d->name; d++)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

/* "-n, --lines N", "    --wait[=SECONDS]": the option as typed, its short form first. */
static void option_label(const struct cmd *c, const struct option *o, struct pl_buf *b)
{
	const struct cmd_optdoc *d = optdoc(c, o->name);
	const char *arg = d && d->arg ? d->arg : "VALUE";

	if (o->val > 0 && o->val < 128 && c->shortopts && strchr(c->shortopts, o->val))
		pl_buf_addf(b, "-%c, --%s", o->val, o->name);
	else
		pl_buf_addf(b, "    --%s", o->name);
	if (o->has_arg == required_argument)
		pl_buf_addf(b, " %s", arg);
	else if (o->has_arg == optional_argument)
		pl_buf_addf(b, "[=%s]", arg);
}

static void print_options(const struct cmd *c, FILE *out)
{
	struct pl_buf label = PL_BUF_INIT, text = PL_BUF_INIT;
	size_t col = 0;

	if (!c->options || !c->options->name)
		return;
	for (const struct option *o = c->options; o->name; o++) {
		pl_buf_reset(&label);
		option_label(c, o, &label);
		if (label.len + 6 > col)
			col = label.len + 6;
	}
	if (col > 28)
		col = 28;
	fputs("\noptions:\n", out);
	for (const struct option *o = c->options; o->name; o++) {
		const struct cmd_optdoc *d = optdoc(c, o->name);

		pl_buf_reset(&label);
		pl_buf_reset(&text);
		option_label(c, o, &label);
		pl_buf_adds(&text, d ? d->meaning : "");
		if (d && d->dflt)
			pl_buf_addf(&text, " (default %s)", d->dflt);
		item(out, label.buf, col, text.buf);
	}
	pl_buf_release(&label);
	pl_buf_release(&text);
}

static void print_command(const struct cmd *c, FILE *out)
{
	char how[PATH_MAX], page[128];

	fputs("usage:", out);
	wrap(out, 6, 7, c->usage);
	fputc('\n', out);
	wrap(out, 0, 0, c->summary);
	print_options(c, out);
	if (c->doc && c->doc->examples[0]) {
		fputs("\nexamples:\n", out);
		for (size_t i = 0; i < 3 && c->doc->examples[i]; i++) {
			const char *ex = c->doc->examples[i];

			/* A long example goes on over lines of its own, indented under it. */
			fputs("  $ ", out);
			for (; *ex; ex++) {
				fputc(*ex, out);
				if (*ex == '\n')
					fputs("  ", out);
			}
			fputc('\n', out);
		}
	}
	fputs("\nThe global options apply too: --json, -q, -v, --color, --config, --profile,\n"
	      "--dry-run (see 'parlae help').\n",
	      out);
	if (find_page(c->name, how, sizeof(how), page, sizeof(page)) == 0)
		fprintf(out, "The manual: 'parlae help %s'.\n", c->name);
}

/* The subcommands of a group, each usage with its summary under it; -1 if name is none. */
static int print_group(const char *name, FILE *out)
{
	char how[PATH_MAX], page[128];
	size_t n = strlen(name);
	int found = 0;

	for (size_t i = 0; i < ncommands; i++) {
		if (strncmp(commands[i].name, name, n) || commands[i].name[n] != ' ')
			continue;
		if (!found++)
			fputs("usage:\n", out);
		wrap_from(out, 0, 2, 9, commands[i].usage);
		wrap(out, 0, 6, commands[i].summary);
	}
	if (!found)
		return -1;
	fprintf(out, "\n'parlae %s SUBCOMMAND -h' for a subcommand's options and examples.\n",
	        name);
	if (find_page(name, how, sizeof(how), page, sizeof(page)) == 0)
		fprintf(out, "The manual: 'parlae help %s'.\n", name);
	return 0;
}

int cmd_print_help(struct cmd_ctx *ctx, const char *name, FILE *out)
{
	const struct cmd *c = name ? cmd_find(name) : NULL;

	(void)ctx;
	if (!name) {
		print_overview(out);
		return 0;
	}
	if (c) {
		print_command(c, out);
		return 0;
	}
	return print_group(name, out);
}

static int exit_codes(struct cmd_ctx *ctx)
{
	const struct pl_err_info *t;
	size_t n;

	t = pl_err_table(&n);
	if (ctx->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			pl_json_append(a, json_pack("{s:i, s:s, s:s}", "code", t[i].code, "name",
			                            t[i].name, "meaning", t[i].meaning));
		cmd_print_json(ctx, a);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		printf("%-4d %-12s %s\n", t[i].code, t[i].name, t[i].meaning);
	return 0;
}

/* Each documented option as -h shows it, and the examples. */
static void add_doc_json(json_t *o, const struct cmd *c)
{
	json_t *docs = pl_json_x(json_array()), *ex = pl_json_x(json_array());
	const struct cmd_optdoc *d = c->doc ? c->doc->options : NULL;

	for (; d && d->name; d++) {
		const struct option *opt = c->options;
		char shortopt[3] = "", longopt[64];

		while (opt && opt->name && strcmp(opt->name, d->name))
			opt++;
		if (opt && opt->name && opt->val > 0 && opt->val < 128 && c->shortopts &&
		    strchr(c->shortopts, opt->val))
			snprintf(shortopt, sizeof(shortopt), "-%c", opt->val);
		snprintf(longopt, sizeof(longopt), "--%s", d->name);
		json_array_append_new(
		    docs, pl_json_x(json_pack("{s:s, s:s?, s:s?, s:b, s:s, s:s?}", "name", longopt,
		                              "short", *shortopt ? shortopt : NULL, "arg", d->arg,
		                              "argOptional",
		                              opt && opt->name && opt->has_arg == optional_argument,
		                              "meaning", d->meaning, "default", d->dflt)));
	}
	for (size_t i = 0; c->doc && i < 3 && c->doc->examples[i]; i++)
		json_array_append_new(ex, pl_json_x(json_string(c->doc->examples[i])));
	json_object_set_new(o, "optionHelp", docs);
	json_object_set_new(o, "examples", ex);
}

static json_t *command_json(const struct cmd *c)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:s}", "name", c->name, "usage", c->usage, "summary", c->summary);
	json_t *opts = json_array();
	char page[128];

	for (const struct option *opt = c->options; opt && opt->name; opt++)
		pl_json_append(opts, json_sprintf("--%s", opt->name));
	pl_json_set(o, "options", opts);
	add_doc_json(o, c);
	page_name(c->name, page, sizeof(page));
	pl_json_set(o, "manPage", pl_json_x(json_string(page)));
	return o;
}

int cmd_help(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_buf name = PL_BUF_INIT;
	int c, r = 0;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1)
		return PL_EUSAGE;
	for (int i = optind; i < argc; i++)
		pl_buf_addf(&name, "%s%s", name.len ? " " : "", argv[i]);
	if (name.len && !strcmp(name.buf, "exit-codes")) {
		r = exit_codes(ctx);
	} else if (ctx->json) {
		const struct cmd *found = name.len ? cmd_find(name.buf) : NULL;
		json_t *a = json_array();

		/* All commands, or a group's ("help db"). */
		for (size_t i = 0; !found && i < ncommands; i++)
			if (!name.len || (!strncmp(commands[i].name, name.buf, name.len) &&
			                  commands[i].name[name.len] == ' '))
				pl_json_append(a, command_json(&commands[i]));
		if (found)
			cmd_print_json(ctx, command_json(found));
		else if (json_array_size(a))
			cmd_print_json(ctx, json_pack("{s:O}", "commands", a));
		else
			r = cmd_usage_error(ctx, "no command '%s'", name.buf);
		json_decref(a);
	} else if (!name.len) {
		cmd_print_help(ctx, NULL, stdout);
	} else if (!cmd_find(name.buf) && !cmd_is_group(name.buf)) {
		r = cmd_usage_error(ctx, "no command '%s'", name.buf);
	} else if (open_page(name.buf) < 0) {
		cmd_print_help(ctx, name.buf, stdout);
	}
	pl_buf_release(&name);
	return r;
}

int cmd_version(struct cmd_ctx *ctx, int argc, char **argv)
{

	if (cmd_parse_none(ctx, argc, argv))
		return PL_EUSAGE;
	if (ctx->json)
		cmd_print_json(ctx, json_pack("{s:s}", "version", PARLAE_VERSION));
	else
		printf("parlae %s\n", PARLAE_VERSION);
	return 0;
}
