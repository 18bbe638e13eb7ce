/*
 * The schema as an operator changes it: `db migrate`, audited like every mutation.
 */
#ifndef PL_SCHEMA_H
#define PL_SCHEMA_H

#include "db.h"
#include "session.h"

/*
 * Apply the pending migrations (with s->dry_run, only report them). before receives the
 * schema as found (release it with pl_db_schema_status_release, even on error); the first
 * *applied of before->pending are those applied now. Writes a db.migrate audit event once
 * the audit table exists.
 */
int pl_schema_migrate(struct pl_session *s, struct pl_schema_status *before, size_t *applied,
                      struct pl_err *err);

#endif
