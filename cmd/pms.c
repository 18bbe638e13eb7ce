/* parlae pms setup */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/readline.h>

#include <jansson.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/pms.h"
#include "../lib/banned.h"

const struct option opts_pms_setup[] = {
    {"provider", required_argument, NULL, 'p'},
    {"timezone", required_argument, NULL, 't'},
    {"hours", required_argument, NULL, 'H'},
    {"practice-id", required_argument, NULL, 'P'},
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

/* One day's ranges as "08:00-12:00,13:00-17:00" into b; "" for a day with none. */
static void day_ranges(json_t *hours, const char *day, struct pl_buf *b)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(hours, day), i, r)
	    pl_buf_addf(b, "%s%s-%s", i ? "," : "", json_string_value(json_array_get(r, 0)),
	                json_string_value(json_array_get(r, 1)));
}

/*
 * What was recorded, on stderr: "time zone America/New_York; hours mon-fri 08:00-17:00" with
 * consecutive days of the same hours joined, so the operator sees the defaults that applied.
 */
static void note_recorded(struct cmd_ctx *ctx, const char *config_json)
{
	static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
	json_t *config = json_loads(config_json, 0, NULL), *hours;
	struct pl_buf out = PL_BUF_INIT, cur = PL_BUF_INIT, next = PL_BUF_INIT;
	int first = -1;

	if (!config)
		return;
	hours = json_object_get(config, "hours");
	for (int d = 0; d <= 7; d++) {
		pl_buf_reset(&next);
		if (d < 7)
			day_ranges(hours, days[d], &next);
		if (first >= 0 && (d == 7 || strcmp(cur.buf, next.buf))) {
			if (cur.len)
				pl_buf_addf(&out, "%s%s%s%s %s", out.len ? "; " : "", days[first],
				            d - 1 > first ? "-" : "",
				            d - 1 > first ? days[d - 1] : "", cur.buf);
			first = -1;
		}
		if (first < 0) {
			first = d;
			pl_buf_reset(&cur);
			pl_buf_adds(&cur, next.buf);
		}
	}
	cmd_note(ctx, "%s time zone %s; hours %s", ctx->dry_run ? "would record" : "recorded",
	         json_string_value(json_object_get(config, "timezone")),
	         out.len ? out.buf : "none");
	pl_buf_release(&out);
	pl_buf_release(&cur);
	pl_buf_release(&next);
	json_decref(config);
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
		case 'P':
			req.practice_id = optarg;
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
		note_recorded(ctx, res.config_json);
		if (!req.timezone && isatty(STDERR_FILENO))
			cmd_note(ctx, "warning: no --timezone: the office hours are taken as UTC");
		if (strcmp(res.status, "connected"))
			cmd_note(ctx, "next: parlae sikka oauth-url %s", req.account);
	}
	pl_pms_setup_res_release(&res);
out:
	for (int i = 0; i < 3; i++)
		free(asked[i]);
	return r;
}
