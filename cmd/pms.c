/* parlae pms setup */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/readline.h>

#include <jansson.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/handshake.h"
#include "../lib/json.h"
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

/* --- the marketplace handshake, and the end of an integration ------------------------------ */

const struct option opts_pms_payload[] = {
    {"payload", required_argument, NULL, 'p'},
    {NULL, 0, NULL, 0},
};

const struct option opts_pms_registrations[] = {
    {"pending", no_argument, NULL, 'P'},
    {NULL, 0, NULL, 0},
};

/* A body larger than this is refused unread; up to it, one over 1 MiB is kept cut. */
#define PAYLOAD_CAP (4u << 20)

static json_t *handshake_json(struct cmd_ctx *ctx, const struct pl_handshake_res *res)
{
	json_t *o = pl_json_x(
	    json_pack("{s:n, s:s?, s:s?, s:s?, s:s, s:n, s:s?, s:s?, s:s?, s:b}", "id",
	              "registration", res->registration[0] ? res->registration : NULL,
	              "masterCustomerId", res->customer[0] ? res->customer : NULL, "account",
	              res->account[0] ? res->account : NULL, "state", res->state, "duplicateOf",
	              "officeId", res->office_id[0] ? res->office_id : NULL, "practiceId",
	              res->practice_id[0] ? res->practice_id : NULL, "note",
	              res->note[0] ? res->note : NULL, "dryRun", ctx->dry_run));

	if (res->row)
		json_object_set_new(o, "id", json_integer(res->row));
	if (res->duplicate_of)
		json_object_set_new(o, "duplicateOf", json_integer(res->duplicate_of));
	return o;
}

/* One line on stdout saying what became of it, and the next step on stderr. */
static void handshake_print(struct cmd_ctx *ctx, const char *what,
                            const struct pl_handshake_res *res)
{
	const char *w = ctx->dry_run ? "would be " : "";
	char id[160];

	if (ctx->json) {
		cmd_print_json(ctx, handshake_json(ctx, res));
		return;
	}
	if (res->row)
		snprintf(id, sizeof(id), "%s %s (#%lld)", what, res->registration, res->row);
	else
		snprintf(id, sizeof(id), "%s %s", what, res->registration);
	if (!strcmp(res->state, "active") && res->office_id[0])
		printf("%s: %sconnected %s (office %s, location %s)\n", id, w, res->account,
		       res->office_id, res->practice_id);
	else if (!strcmp(res->state, "active"))
		printf("%s: %smatched %s, which was already connected\n", id, w, res->account);
	else if (!strcmp(res->state, "matched"))
		printf("%s: %smatched %s%s%s\n", id, w, res->account, res->note[0] ? ": " : "",
		       res->note);
	else if (!strcmp(res->state, "setup_required"))
		printf("%s: %smatched %s; setup required: %s\n", id, w, res->account, res->note);
	else if (!strcmp(res->state, "duplicate"))
		printf("%s: %skept as a duplicate of #%lld, not applied again\n", id, w,
		       res->duplicate_of);
	else if (!strcmp(res->state, "cancelled") && res->account[0])
		printf("%s: %s%s inactive\n", id, ctx->dry_run ? "would make " : "", res->account);
	else if (!strcmp(res->state, "cancelled"))
		printf("%s: %scancelled the pending registration; no account was touched\n", id,
		       ctx->dry_run ? "would have " : "");
	else
		printf("%s: %skept %s%s%s\n", id, w, res->state, res->note[0] ? ": " : "",
		       res->note);
	if (!strcmp(res->state, "pending") && !ctx->dry_run)
		cmd_note(ctx, "next: parlae pms assign %s ACCOUNT", res->registration);
	if (!strcmp(res->state, "setup_required") && !ctx->dry_run)
		cmd_note(ctx,
		         "it completes itself once Sikka lists the practice "
		         "('parlae secrets rotate --all' or 'parlae status %s')",
		         res->account);
}

static int payload_cmd(struct cmd_ctx *ctx, int argc, char **argv, int cancel)
{
	struct pl_handshake_res res;
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf body = PL_BUF_INIT;
	const char *payload = NULL;
	int c, r;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'p':
			payload = optarg;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (!payload)
		return cmd_usage_error(ctx, "missing --payload FILE|-");
	if (cmd_read_input(payload, PAYLOAD_CAP, &body, &err)) {
		pl_buf_release(&body);
		return cmd_fail(ctx, &err);
	}
	r = cancel ? pl_handshake_cancel(&ctx->session, body.buf, body.len, &res, &err)
	           : pl_handshake_purchase(&ctx->session, body.buf, body.len, &res, &err);
	pl_buf_wipe(&body);
	if (!r)
		handshake_print(ctx, cancel ? "cancellation of" : "registration", &res);
	return r ? cmd_fail(ctx, &err) : 0;
}

int cmd_pms_purchase(struct cmd_ctx *ctx, int argc, char **argv)
{
	return payload_cmd(ctx, argc, argv, 0);
}

int cmd_pms_cancel(struct cmd_ctx *ctx, int argc, char **argv)
{
	return payload_cmd(ctx, argc, argv, 1);
}

int cmd_pms_assign(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_handshake_res res;
	struct pl_err err = PL_ERR_INIT;

	if (cmd_getopt(ctx, argc, argv) != -1)
		return PL_EUSAGE;
	if (argc - optind < 2)
		return cmd_usage_error(ctx, "missing %s",
		                       optind < argc ? "ACCOUNT" : "REGISTRATION");
	if (argc - optind > 2)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 2]);
	if (pl_handshake_assign(&ctx->session, argv[optind], argv[optind + 1], &res, &err))
		return cmd_fail(ctx, &err);
	handshake_print(ctx, "registration", &res);
	return 0;
}

int cmd_pms_registrations(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_handshake_list list;
	struct pl_err err = PL_ERR_INIT;
	struct cmd_table t;
	int c, pending = 0;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		if (c != 'P')
			return PL_EUSAGE;
		pending = 1;
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (pl_handshake_list(&ctx->session, pending, &list, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < list.n; i++) {
			const struct pl_handshake_row *w = &list.v[i];
			json_t *o = pl_json_x(json_pack(
			    "{s:I, s:s?, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:n, s:s}",
			    "id", (json_int_t)w->row, "registration", w->registration, "kind",
			    w->kind, "state", w->state, "masterCustomerId", w->customer, "order",
			    w->order, "account", w->account, "practiceName", w->practice_name,
			    "email", w->email, "note", w->note, "duplicateOf", "receivedAt",
			    w->received_at));

			if (w->duplicate_of)
				json_object_set_new(o, "duplicateOf",
				                    json_integer(w->duplicate_of));
			pl_json_append(a, o);
		}
		cmd_print_json(ctx, a);
	} else {
		cmd_table_init(&t, 7, "REGISTRATION", "KIND", "STATE", "ACCOUNT", "CUSTOMER",
		               "PRACTICE", "RECEIVED");
		for (size_t i = 0; i < list.n; i++) {
			const struct pl_handshake_row *w = &list.v[i];
			char row[32];

			snprintf(row, sizeof(row), "#%lld", w->row);
			cmd_table_row(&t, w->registration ? w->registration : row, w->kind,
			              w->state, w->account, w->customer, w->practice_name,
			              w->received_at);
		}
		cmd_table_print(ctx, &t);
		cmd_table_release(&t);
	}
	pl_handshake_list_release(&list);
	return 0;
}

int cmd_pms_disconnect(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_pms_disconnect_res res;
	struct pl_err err = PL_ERR_INIT;
	const char *account;

	if (cmd_getopt(ctx, argc, argv) != -1)
		return PL_EUSAGE;
	if (optind >= argc)
		return cmd_usage_error(ctx, "missing ACCOUNT");
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	account = argv[optind];
	if (pl_pms_disconnect(&ctx->session, account, &res, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		cmd_print_json(ctx, pl_json_x(json_pack(
		                        "{s:s, s:s, s:b, s:b, s:s?, s:b}", "account", account,
		                        "status", res.status, "revoked", res.revoked,
		                        "secretDeleted", res.secret_deleted, "note",
		                        res.note[0] ? res.note : NULL, "dryRun", ctx->dry_run)));
		return 0;
	}
	if (!strcmp(res.status, "already disconnected"))
		printf("%s is already disconnected\n", account);
	else if (ctx->dry_run)
		printf("would disconnect %s: revoke its refresh key at Sikka%s, make it inactive\n",
		       account, res.had_secret ? ", delete its secret" : "");
	else
		printf("disconnected %s: refresh key %s, secret %s\n", account,
		       res.revoked ? "revoked at Sikka" : "not revoked at Sikka",
		       res.secret_deleted ? "deleted" : "none stored");
	if (res.note[0] && !ctx->dry_run)
		cmd_note(ctx, "%s", res.note);
	return 0;
}
