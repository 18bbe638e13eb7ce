/* parlae pms setup */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/readline.h>

#include "cmd.h"
#include "../lib/pms.h"
#include "../lib/banned.h"

const struct option opts_pms_setup[] = {
    {"provider", required_argument, NULL, 'p'},
    {"timezone", required_argument, NULL, 't'},
    {"hours", required_argument, NULL, 'H'},
    {NULL, 0, NULL, 0},
};

/* On a terminal, ask for what was not given; the answer may be empty (keep the default). */
static char *ask(const char *prompt)
{
	char *line = readline(prompt);

	if (line && !*line) {
		free(line);
		line = NULL;
	}
	return line;
}

int cmd_pms_setup(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_pms_setup_req req = {0};
	struct pl_pms_setup_res res;
	struct pl_err err = PL_ERR_INIT;
	char *asked[3] = {NULL, NULL, NULL};
	int c, r = 0, tty = isatty(STDIN_FILENO) && isatty(STDERR_FILENO);

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'p':
			req.provider = optarg;
			break;
		case 't':
			req.timezone = optarg;
			break;
		case 'H':
			req.hours = optarg;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	req.account = optind < argc ? argv[optind] : NULL;
	if (!req.account && !tty)
		return cmd_usage_error(ctx, "missing ACCOUNT");
	if (tty) {
		rl_outstream = stderr;
		if (!req.account && !(req.account = asked[0] = ask("Account id: "))) {
			r = cmd_usage_error(ctx, "missing ACCOUNT");
			goto out;
		}
		if (!req.timezone)
			req.timezone = asked[1] = ask("Time zone [UTC]: ");
		if (!req.hours)
			req.hours = asked[2] = ask("Office hours [mon-fri 08:00-17:00]: ");
	}
	if (pl_pms_setup(&ctx->session, &req, &res, &err)) {
		r = cmd_fail(ctx, &err);
		goto out;
	}
	if (ctx->json) {
		cmd_print_json(
		    ctx, json_pack("{s:b, s:s, s:o, s:s, s:o, s:b}", "success", 1, "provider",
		                   res.provider, "features", json_loads(res.features_json, 0, NULL),
		                   "status", res.status, "config",
		                   json_loads(res.config_json, 0, NULL), "dryRun", ctx->dry_run));
	} else {
		printf("%s Sikka for %s (status %s)\n", ctx->dry_run ? "would enable" : "enabled",
		       req.account, res.status);
		cmd_note(ctx, "next: parlae sikka oauth-url %s", req.account);
	}
	pl_pms_setup_res_release(&res);
out:
	for (int i = 0; i < 3; i++)
		free(asked[i]);
	return r;
}
