/* parlae db migrate | db status */
#include <string.h>

#include "cmd.h"
#include "../lib/json.h"
#include "../lib/schema.h"
#include "../lib/banned.h"

static json_t *entries_json(const struct pl_schema_entry *e, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		pl_json_append(a, json_pack("{s:i, s:s, s:s?}", "version", e[i].version, "name",
		                            e[i].name, "appliedAt",
		                            e[i].applied_at[0] ? e[i].applied_at : NULL));
	return a;
}

int cmd_db_migrate(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_schema_status before;
	struct pl_err err = PL_ERR_INIT;
	size_t applied = 0;
	int r;

	if (cmd_parse_none(ctx, argc, argv))
		return PL_EUSAGE;
	r = pl_schema_migrate(&ctx->session, &before, &applied, &err);
	if (r && !applied) {
		pl_db_schema_status_release(&before);
		return cmd_fail(ctx, &err);
	}
	if (ctx->json) {
		cmd_print_json(
		    ctx, json_pack("{s:o, s:i, s:b}", "applied",
		                   entries_json(before.pending, applied), "schemaVersion",
		                   applied ? before.pending[applied - 1].version : before.version,
		                   "dryRun", ctx->dry_run));
	} else {
		for (size_t i = 0; i < applied; i++)
			printf("%s %04d-%s\n", ctx->dry_run ? "would apply" : "applied",
			       before.pending[i].version, before.pending[i].name);
		if (!applied)
			printf("schema is current (version %d)\n", before.version);
	}
	pl_db_schema_status_release(&before);
	return r ? cmd_fail(ctx, &err) : 0;
}

int cmd_db_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_schema_status st;
	struct pl_err err = PL_ERR_INIT;
	struct pl_db *db;
	struct cmd_table t;
	char v[16];

	if (cmd_parse_none(ctx, argc, argv))
		return PL_EUSAGE;
	if (pl_session_db(&ctx->session, &db, &err) || pl_db_schema_status(db, &st, &err))
		return cmd_fail(ctx, &err);
	if (ctx->json) {
		cmd_print_json(ctx, json_pack("{s:i, s:o, s:o}", "schemaVersion", st.version,
		                              "applied", entries_json(st.applied, st.napplied),
		                              "pending", entries_json(st.pending, st.npending)));
	} else {
		cmd_table_init(&t, 4, "VERSION", "NAME", "STATE", "APPLIED");
		for (size_t i = 0; i < st.napplied; i++) {
			snprintf(v, sizeof(v), "%04d", st.applied[i].version);
			cmd_table_row(&t, v, st.applied[i].name, "applied",
			              st.applied[i].applied_at);
		}
		for (size_t i = 0; i < st.npending; i++) {
			snprintf(v, sizeof(v), "%04d", st.pending[i].version);
			cmd_table_row(&t, v, st.pending[i].name, "pending", NULL);
		}
		cmd_table_print(ctx, &t);
		cmd_table_release(&t);
	}
	pl_db_schema_status_release(&st);
	return 0;
}
