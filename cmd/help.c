/* parlae help, parlae version, and the completion helper: all read the command table. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "../lib/account.h"
#include "../lib/buf.h"
#include "../lib/json.h"
#include "../lib/banned.h"

#ifndef PARLAE_VERSION
#define PARLAE_VERSION "0.0.0"
#endif

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

static void print_overview(FILE *out)
{
	fputs("usage: parlae [GLOBAL OPTIONS] COMMAND [SUBCOMMAND] [OPTIONS] [ARGS]\n\ncommands:\n",
	      out);
	for (size_t i = 0; i < ncommands; i++)
		fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
	fputs("\nglobal options (before or after the command):\n", out);
	for (size_t i = 0; i < sizeof(global_help) / sizeof(global_help[0]); i++)
		fprintf(out, "  %-20s %s\n", global_help[i][0], global_help[i][1]);
	fputs("\n'parlae help COMMAND' or 'parlae COMMAND -h' for a command, 'parlae help "
	      "exit-codes'\n"
	      "for the exit statuses, 'man parlae' for the whole story.\n",
	      out);
}

static void print_command(const struct cmd *c, FILE *out)
{
	const char *sp = strchr(c->name, ' ');

	fprintf(out, "usage: %s\n\n%s\n\n", c->usage, c->summary);
	fprintf(
	    out,
	    "Global options such as --json and --dry-run are accepted too; see 'parlae help'.\n");
	fprintf(out, "See 'man parlae-%.*s'.\n", sp ? (int)(sp - c->name) : (int)strlen(c->name),
	        c->name);
}

int cmd_print_help(struct cmd_ctx *ctx, const char *name, FILE *out)
{
	const struct cmd *c = name ? cmd_find(name) : NULL;
	size_t n = name ? strlen(name) : 0;
	int found = 0;

	(void)ctx;
	if (!name) {
		print_overview(out);
		return 0;
	}
	if (c) {
		print_command(c, out);
		return 0;
	}
	for (size_t i = 0; i < ncommands; i++) {
		if (!strncmp(commands[i].name, name, n) && commands[i].name[n] == ' ') {
			if (!found++)
				fprintf(out, "usage:\n");
			fprintf(out, "  %-44s %s\n", commands[i].usage, commands[i].summary);
		}
	}
	if (found)
		fprintf(out, "\nSee 'parlae help %s SUBCOMMAND' and 'man parlae-%s'.\n", name,
		        name);
	return found ? 0 : -1;
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

static json_t *command_json(const struct cmd *c)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:s}", "name", c->name, "usage", c->usage, "summary", c->summary);
	json_t *opts = json_array();

	for (const struct option *opt = c->options; opt && opt->name; opt++)
		pl_json_append(opts, json_sprintf("--%s", opt->name));
	pl_json_set(o, "options", opts);
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
	} else if (cmd_print_help(ctx, name.len ? name.buf : NULL, stdout) < 0) {
		r = cmd_usage_error(ctx, "no command '%s'", name.buf);
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
