/* The migration half of the db module: schema_migrations and the compiled-in sql/. */
#include "db.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "trace.h"
#include "banned.h"

/* One advisory lock key for "someone is migrating": concurrent runs take turns. */
/* However long another migration takes: the lock timeout does not apply to this wait. */
#define MIGRATE_LOCK   "SELECT set_config('lock_timeout', '0', false), pg_advisory_lock(7052315001)"
#define MIGRATE_UNLOCK "SELECT pg_advisory_unlock(7052315001)"

static int schema_table_exists(struct pl_db *db, int *exists, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	int r = pl_db_query(db, &res, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0,
	                    NULL, err);

	if (!r)
		*exists = !strcmp(pl_db_val(&res, 0, 0), "t");
	pl_db_res_clear(&res);
	return r;
}

static void entry_set(struct pl_schema_entry *e, int version, const char *name, const char *at)
{
	e->version = version;
	pl_strlcpy(e->name, name ? name : "", sizeof(e->name));
	pl_strlcpy(e->applied_at, at ? at : "", sizeof(e->applied_at));
}

int pl_db_schema_status(struct pl_db *db, struct pl_schema_status *st, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const struct pl_migration *m;
	size_t nm;
	int exists = 0, r, rows = 0;

	memset(st, 0, sizeof(*st));
	m = pl_db_migrations(&nm);
	st->latest = nm ? m[nm - 1].version : 0;
	if ((r = schema_table_exists(db, &exists, err)))
		return r;
	if (exists) {
		r = pl_db_query(
		    db, &res,
		    "SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations ORDER BY version",
		    0, NULL, err);
		if (r)
			return r;
		rows = pl_db_rows(&res);
	}
	st->applied = pl_xcalloc((size_t)rows + 1, sizeof(*st->applied));
	st->pending = pl_xcalloc(nm + 1, sizeof(*st->pending));
	for (int i = 0; i < rows; i++) {
		int v = atoi(pl_db_val(&res, i, 0));

		entry_set(&st->applied[st->napplied++], v, pl_db_val(&res, i, 1),
		          pl_db_val(&res, i, 2));
		if (v > st->version)
			st->version = v;
	}
	for (size_t i = 0; i < nm; i++) {
		int done = 0;

		for (size_t j = 0; j < st->napplied; j++)
			done |= st->applied[j].version == m[i].version;
		if (!done)
			entry_set(&st->pending[st->npending++], m[i].version, m[i].name, NULL);
	}
	pl_db_res_clear(&res);
	return 0;
}

void pl_db_schema_status_release(struct pl_schema_status *st)
{
	free(st->applied);
	free(st->pending);
	memset(st, 0, sizeof(*st));
}

/* A migration is several statements: the simple-query protocol runs them in one go. */
static int run_script(struct pl_db *db, const struct pl_migration *m, struct pl_err *err)
{
	PGresult *res;
	int r = 0;

	pl_trace(2, "sql: migration %04d-%s", m->version, m->name);
	res = PQexec(db->conn, m->sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		r = pl_err_set(err, PL_EDATABASE, "migration %04d-%s failed: %s", m->version,
		               m->name, msg ? msg : PQerrorMessage(db->conn));
	}
	PQclear(res);
	return r;
}

static int apply(struct pl_db *db, const struct pl_migration *m, struct pl_err *err)
{
	char version[16];
	const char *params[2] = {version, m->name};
	int r;

	snprintf(version, sizeof(version), "%d", m->version);
	if ((r = pl_db_begin(db, err)))
		return r;
	r = run_script(db, m, err);
	if (!r)
		r = pl_db_query(db, NULL,
		                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
		                params, err);
	if (!r)
		r = pl_db_commit(db, err);
	if (r)
		pl_db_rollback(db);
	return r;
}

/*
 * Migrations run as the role that owns parlae's tables: one that may not create in the schema
 * (the commands' own role) is told so before a statement fails halfway.
 */
static int may_create(struct pl_db *db, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	int r = pl_db_query(db, &res,
	                    "SELECT has_schema_privilege(current_schema(), 'CREATE'), current_user",
	                    0, NULL, err);

	if (!r && strcmp(pl_db_val(&res, 0, 0), "t")) {
		pl_err_set(err, PL_ECONFIG,
		           "db migrate: role %.64s may not create tables in the schema: migrations "
		           "run as the role that owns parlae's tables",
		           pl_db_val(&res, 0, 1));
		r = pl_err_hint(err, "run it with PARLAE_DATABASE_URL connecting as that owner; "
		                     "every other command connects as parlae_app (sql/roles.sql)");
	}
	pl_db_res_clear(&res);
	return r;
}

int pl_db_migrate(struct pl_db *db, int dry_run, size_t *applied_now, struct pl_err *err)
{
	struct pl_schema_status st;
	const struct pl_migration *m;
	size_t nm;
	int r, exists = 0;

	*applied_now = 0;
	if (dry_run) {
		if ((r = pl_db_schema_status(db, &st, err)))
			return r;
		*applied_now = st.npending;
		pl_db_schema_status_release(&st);
		return 0;
	}
	if ((r = pl_db_query(db, NULL, MIGRATE_LOCK, 0, NULL, err)))
		return r;
	/* Only what is missing is created: a role that may not create (parlae_app) finds an
	 * up-to-date schema nothing to do. */
	r = schema_table_exists(db, &exists, err);
	if (!r && !exists && !(r = may_create(db, err)))
		r = pl_db_query(db, NULL,
		                "CREATE TABLE schema_migrations ("
		                " version integer PRIMARY KEY, name text NOT NULL,"
		                " applied_at timestamptz NOT NULL DEFAULT now())",
		                0, NULL, err);
	if (!r)
		r = pl_db_schema_status(db, &st, err);
	if (!r && st.npending && (r = may_create(db, err)))
		pl_db_schema_status_release(&st);
	else if (!r) {
		m = pl_db_migrations(&nm);
		for (size_t i = 0; i < st.npending && !r; i++) {
			for (size_t j = 0; j < nm; j++)
				if (m[j].version == st.pending[i].version)
					r = apply(db, &m[j], err);
			if (!r)
				(*applied_now)++;
		}
		pl_db_schema_status_release(&st);
	}
	{
		struct pl_err ignored = PL_ERR_INIT;

		pl_db_query(db, NULL, MIGRATE_UNLOCK, 0, NULL, &ignored);
	}
	return r;
}
