/* parlae account add | account list */
#include "cmd.h"
#include "../lib/account.h"
#include "../lib/json.h"
#include "../lib/banned.h"

const struct option opts_account_add[] = {
    {"name", required_argument, NULL, 'n'},
    {"email", required_argument, NULL, 'e'},
    {NULL, 0, NULL, 0},
};

int cmd_account_add(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_err err = PL_ERR_INIT;
	const char *name = NULL, *email = NULL, *id;
	int c;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'e':
			email = optarg;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind >= argc)
		return cmd_usage_error(ctx, "missing ACCOUNT");
	if (optind + 1 < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	id = argv[optind];
	if (pl_account_add(&ctx->session, id, name, email, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json)
		cmd_print_json(ctx,
		               pl_json_x(json_pack("{s:s, s:s?, s:s?, s:b}", "id", id, "name", name,
		                                   "email", email, "dryRun", ctx->dry_run)));
	else
		printf("%s account %s\n", ctx->dry_run ? "would create" : "created", id);
	return 0;
}

int cmd_account_list(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_account_list list;
	struct pl_err err = PL_ERR_INIT;
	struct cmd_table t;

	if (cmd_parse_none(ctx, argc, argv))
		return PL_EUSAGE;
	if (pl_account_list(&ctx->session, &list, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		json_t *a = pl_json_x(json_array());

		for (size_t i = 0; i < list.n; i++)
			pl_json_append(a, json_pack("{s:s, s:s?, s:s?, s:s, s:s}", "id",
			                            list.v[i].id, "name", list.v[i].name, "email",
			                            list.v[i].email, "status", list.v[i].status,
			                            "createdAt", list.v[i].created_at));
		cmd_print_json(ctx, a);
	} else {
		cmd_table_init(&t, 5, "ACCOUNT", "NAME", "EMAIL", "STATUS", "CREATED");
		for (size_t i = 0; i < list.n; i++)
			cmd_table_row(&t, list.v[i].id, list.v[i].name, list.v[i].email,
			              list.v[i].status, list.v[i].created_at);
		cmd_table_print(ctx, &t);
		cmd_table_release(&t);
	}
	pl_account_list_release(&list);
	return 0;
}
