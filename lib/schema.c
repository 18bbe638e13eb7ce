#include "schema.h"

#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "banned.h"

/* The migrations applied now get the time the database recorded for them. */
static void fill_applied_at(struct pl_db *db, struct pl_schema_status *before, size_t applied)
{
	struct pl_schema_status after;
	struct pl_err ignored = PL_ERR_INIT;

	if (!applied || pl_db_schema_status(db, &after, &ignored))
		return;
	for (size_t i = 0; i < applied; i++)
		for (size_t j = 0; j < after.napplied; j++)
			if (after.applied[j].version == before->pending[i].version)
				memcpy(before->pending[i].applied_at, after.applied[j].applied_at,
				       sizeof(before->pending[i].applied_at));
	pl_db_schema_status_release(&after);
}

int pl_schema_migrate(struct pl_session *s, struct pl_schema_status *before, size_t *applied,
                      struct pl_err *err)
{
	struct pl_audit_event ev = {NULL, "db.migrate", "schema", NULL, NULL};
	struct pl_buf meta = PL_BUF_INIT;
	struct pl_db *db;
	char version[16];
	int r;

	memset(before, 0, sizeof(*before));
	*applied = 0;
	if ((r = pl_session_db(s, &db, err)) || (r = pl_db_schema_status(db, before, err)))
		return r;
	r = pl_db_migrate(db, s->dry_run, applied, err);
	if (s->dry_run)
		return r;
	fill_applied_at(db, before, *applied);
	pl_buf_addf(&meta, "{\"from\":%d,\"applied\":[", before->version);
	for (size_t i = 0; i < *applied; i++)
		pl_buf_addf(&meta, "%s%d", i ? "," : "", before->pending[i].version);
	pl_buf_adds(&meta, "]}");
	snprintf(version, sizeof(version), "%d",
	         *applied ? before->pending[*applied - 1].version : before->version);
	ev.resource_id = version;
	ev.metadata = meta.buf;
	/* A failure before the audit table exists cannot be recorded: finish is best effort then.
	 */
	r = pl_audit_finish(s, &ev, r, err);
	pl_buf_release(&meta);
	return r;
}
