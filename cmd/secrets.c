/* parlae secrets list */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/json.h"
#include "../lib/rotate.h"
#include "../lib/store.h"
#include "../lib/banned.h"

/* Names, versions and dates only: the store's list never reads a value, so none can leak. */
int cmd_secrets_list(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_store_entry *v = NULL;
	struct pl_err err = PL_ERR_INIT;
	struct pl_store *st = NULL;
	struct cmd_table t;
	size_t n = 0;
	int r;

	if (cmd_parse_none(ctx, argc, argv))
		return PL_EUSAGE;
	if ((r = pl_store_open(&ctx->cfg, &st, &err)) || (r = pl_store_list(st, &v, &n, &err))) {
		cmd_fail(ctx, &err);
		goto out;
	}
	if (ctx->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			pl_json_append(a, json_pack("{s:s, s:s, s:s?, s:s}", "name", v[i].name,
			                            "version", v[i].version, "previous",
			                            v[i].previous[0] ? v[i].previous : NULL,
			                            "updatedAt", v[i].updated_at));
		cmd_print_json(ctx, a);
	} else {
		cmd_table_init(&t, 4, "NAME", "VERSION", "PREVIOUS", "UPDATED");
		for (size_t i = 0; i < n; i++)
			cmd_table_row(&t, v[i].name, v[i].version,
			              v[i].previous[0] ? v[i].previous : NULL, v[i].updated_at);
		cmd_table_print(ctx, &t);
		cmd_table_release(&t);
	}
out:
	free(v);
	pl_store_close(st);
	return r;
}

const struct option opts_secrets_rotate[] = {
    {"all", no_argument, NULL, 'a'},        {"within", required_argument, NULL, 'w'},
    {"force", no_argument, NULL, 'f'},      {"concurrency", required_argument, NULL, 'c'},
    {"master-key", no_argument, NULL, 'M'}, {NULL, 0, NULL, 0},
};

struct rotate_ui {
	struct cmd_ctx *ctx;
	int bar;
	json_t *accounts; /* with --json: each account's outcome */
};

static void rotate_progress(size_t done, size_t total, void *arg)
{
	struct rotate_ui *ui = arg;

	if (ui->bar && (done == total || done % 8 == 0))
		cmd_progress("rotating", done, total);
}

static void rotate_outcome(const char *account, const char *outcome, const char *why, void *arg)
{
	struct rotate_ui *ui = arg;

	if (ui->accounts)
		pl_json_append(ui->accounts, json_pack("{s:s, s:s, s:s?}", "account", account,
		                                       "outcome", outcome, "detail", why));
	else if (!strcmp(outcome, "failed"))
		fprintf(stderr, "%sparlae: %s: %s\n", ui->bar ? "\r" : "", account, why);
	else if (ui->ctx->verbosity > 0)
		fprintf(stderr, "%s%s: %s%s%s\n", ui->bar ? "\r" : "", account, outcome,
		        why ? " — " : "", why ? why : "");
}

/* --master-key: re-encrypt the file store under PARLAE_MASTER_KEY_NEW. */
static int cmd_secrets_rekey(struct cmd_ctx *ctx, int extra_args, int other_options)
{
	struct pl_err err = PL_ERR_INIT;
	size_t n = 0;

	if (extra_args || other_options)
		return cmd_usage_error(ctx, "--master-key takes no ACCOUNT, --all or --force");
	if (pl_rotate_master_key(&ctx->session, &n, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json)
		cmd_print_json(ctx, json_pack("{s:I, s:b}", "reencrypted", (json_int_t)n, "dryRun",
		                              ctx->dry_run));
	else
		printf("%s %zu secret%s under PARLAE_MASTER_KEY_NEW\n",
		       ctx->dry_run ? "would re-encrypt" : "re-encrypted", n, n == 1 ? "" : "s");
	if (!ctx->dry_run)
		cmd_note(ctx, "now use the new key as PARLAE_MASTER_KEY; the old one no longer "
		              "opens the store");
	return 0;
}

/* "; connected 2 waiting for Sikka to list them" (a static buffer). */
static const char *completed_note(size_t n)
{
	static char note[96];

	snprintf(note, sizeof(note), "; connected %zu that waited for Sikka to list %s", n,
	         n == 1 ? "it" : "them");
	return note;
}

int cmd_secrets_rotate(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_rotate_batch_req req = {0};
	struct pl_rotate_summary sum;
	struct pl_err err = PL_ERR_INIT;
	struct rotate_ui ui = {ctx, 0, NULL};
	const char *within = "2h";
	int c, master = 0;
	long n;

	req.concurrency = 16;
	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'a':
			req.all = 1;
			break;
		case 'w':
			within = optarg;
			break;
		case 'f':
			req.force = 1;
			break;
		case 'c':
			if (cmd_parse_number(optarg, 1, 256, &n) < 0)
				return cmd_usage_error(ctx, "--concurrency must be 1 to 256");
			req.concurrency = (int)n;
			break;
		case 'M':
			master = 1;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (master)
		return cmd_secrets_rekey(ctx, argc - optind, req.all || req.force);
	if ((req.within = pl_parse_duration(within)) < 0)
		return cmd_usage_error(
		    ctx, "--within takes a duration like 2h, 90m or 1h30m, not '%s'", within);
	req.accounts = (const char *const *)argv + optind;
	req.naccounts = (size_t)(argc - optind);
	if (req.all == (req.naccounts > 0))
		return cmd_usage_error(ctx, "give ACCOUNT... or --all");
	ui.bar = isatty(STDERR_FILENO) && ctx->verbosity >= 0 && !ctx->json;
	ui.accounts = ctx->json ? json_array() : NULL;
	req.progress = rotate_progress;
	req.outcome = rotate_outcome;
	req.arg = &ui;
	if (pl_rotate_batch(&ctx->session, &req, &sum, &err)) {
		json_decref(ui.accounts);
		return cmd_fail(ctx, &err);
	}
	if (ctx->json)
		cmd_print_json(
		    ctx, json_pack("{s:I, s:I, s:I, s:I, s:I, s:b, s:o}", "rotated",
		                   (json_int_t)sum.rotated, "skipped", (json_int_t)sum.skipped,
		                   "notDue", (json_int_t)sum.not_due, "failed",
		                   (json_int_t)sum.failed, "completed", (json_int_t)sum.completed,
		                   "dryRun", ctx->dry_run, "accounts", ui.accounts));
	else
		printf("%s %zu, skipped %zu (held by another process), not due %zu, failed %zu%s\n",
		       ctx->dry_run ? "would rotate" : "rotated", sum.rotated, sum.skipped,
		       sum.not_due, sum.failed, sum.completed ? completed_note(sum.completed) : "");
	return pl_rotate_status(&sum);
}
