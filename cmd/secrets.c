/* parlae secrets list */
#include <stdlib.h>

#include "cmd.h"
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
			json_array_append_new(a,
			                      json_pack("{s:s, s:s, s:s?, s:s}", "name", v[i].name,
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
