/* parlae sikka oauth-url | sikka callback */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/pms.h"
#include "../lib/banned.h"

const struct option opts_sikka_oauth_url[] = {
    {"redirect-uri", required_argument, NULL, 'r'},
    {"ttl", required_argument, NULL, 't'},
    {NULL, 0, NULL, 0},
};

const struct option opts_sikka_callback[] = {
    {"url", required_argument, NULL, 'u'},         {"code", required_argument, NULL, 'c'},
    {"state", required_argument, NULL, 's'},       {"error", required_argument, NULL, 'e'},
    {"practice-id", required_argument, NULL, 'P'}, {NULL, 0, NULL, 0},
};

int cmd_sikka_oauth_url(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_pms_oauth_req req = {0};
	struct pl_pms_oauth_res res;
	struct pl_err err = PL_ERR_INIT;
	int c;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'r':
			req.redirect_uri = optarg;
			break;
		case 't':
			if (cmd_parse_number(optarg, 1, 86400, &req.ttl) < 0)
				return cmd_usage_error(
				    ctx, "--ttl must be a number of seconds, not '%s'", optarg);
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind >= argc)
		return cmd_usage_error(ctx, "missing ACCOUNT");
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	req.account = argv[optind];
	if (pl_pms_oauth_url(&ctx->session, &req, &res, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		cmd_print_json(ctx, json_pack("{s:s, s:s, s:s}", "url", res.url, "state", res.state,
		                              "expiresAt", res.expires_at));
	} else {
		puts(res.url);
		cmd_note(ctx, "send this link to the practice; it expires at %s", res.expires_at);
	}
	pl_pms_oauth_res_release(&res);
	return 0;
}

#define MAX_URL 16384

/*
 * --url - on a terminal: a prompt, and the line typed or pasted (Enter ends it, as a paste of
 * the address bar does not). Piped, the whole input as before, without a prompt.
 */
static int read_redirect(struct pl_buf *out, struct pl_err *err)
{
	int c;

	if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
		return cmd_read_input("-", MAX_URL, out, err);
	fputs("Paste the URL your browser was redirected to: ", stderr);
	fflush(stderr);
	pl_buf_init(out, MAX_URL);
	while ((c = getchar()) != EOF && c != '\n')
		if (pl_buf_addch(out, (char)c) < 0)
			return pl_err_set(err, PL_EBADINPUT, "the URL is longer than %d KiB",
			                  MAX_URL >> 10);
	if (c == EOF && ferror(stdin))
		return pl_err_set(err, PL_EUSAGE, "cannot read the URL: %s", strerror(errno));
	if (c == EOF)
		fputc('\n', stderr); /* Ctrl-D ended the line the prompt is on */
	return 0;
}

static json_t *callback_json(const struct pl_pms_callback_res *res, const char *error)
{
	return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?}", "account", res->account, "status",
	                 res->status, "practiceName",
	                 res->practice_name[0] ? res->practice_name : NULL, "pmsType",
	                 res->pms_type[0] ? res->pms_type : NULL, "officeId",
	                 res->office_id[0] ? res->office_id : NULL, "error", error);
}

int cmd_sikka_callback(struct cmd_ctx *ctx, int argc, char **argv)
{
	const char *url = NULL, *code = NULL, *state = NULL, *error = NULL, *practice = NULL;
	struct pl_pms_redirect in = {0};
	struct pl_pms_callback_res res;
	struct pl_err err = PL_ERR_INIT;
	int c, r, in_error;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 'c':
			code = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'e':
			error = optarg;
			break;
		case 'P':
			practice = optarg;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (url ? (code || state || error) : (!state || !!code == !!error))
		return cmd_usage_error(
		    ctx, "give --url, or --code with --state, or --error with --state");
	if (practice && pl_pms_check_practice_id(practice, &err))
		return cmd_fail(ctx, &err);
	if (url) {
		struct pl_buf stdin_url = PL_BUF_INIT;

		/* --url -: the redirect from stdin, so the code stays out of argv and history. */
		if (!strcmp(url, "-")) {
			if (read_redirect(&stdin_url, &err)) {
				pl_buf_wipe(&stdin_url);
				return cmd_fail(ctx, &err);
			}
			stdin_url.buf[strcspn(stdin_url.buf, "\r\n")] = '\0';
			url = stdin_url.buf;
		}
		r = pl_pms_parse_redirect(url, &in, &err);
		pl_buf_wipe(&stdin_url);
		if (r)
			return cmd_fail(ctx, &err);
	} else {
		in.state = pl_xstrdup(state);
		in.code = code ? pl_xstrdup(code) : NULL;
		in.error = error ? pl_xstrdup(error) : NULL;
	}
	in.practice_id = practice ? pl_xstrdup(practice) : NULL;
	r = pl_pms_callback(&ctx->session, &in, &res, &err);
	in_error = in.error != NULL;
	pl_pms_redirect_release(&in);
	if (ctx->json && res.account[0])
		cmd_print_json(ctx, callback_json(&res, r ? err.msg : NULL));
	else if (!r && !ctx->dry_run)
		printf("connected %s: %s (%s, office %s)\n", res.account, res.practice_name,
		       res.pms_type, res.office_id);
	else if (!r)
		printf("state is valid for %s; would %s\n", res.account,
		       in_error ? "record the practice's refusal" : "exchange the code");
	return r ? cmd_fail(ctx, &err) : 0;
}
