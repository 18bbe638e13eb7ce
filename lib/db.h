/*
 * PostgreSQL through libpq: connect, parameterized queries only, transactions, and the
 * migrations compiled into the binary. PGresult and PGconn never leave this module.
 */
#ifndef PL_DB_H
#define PL_DB_H

#include <stddef.h>

#include "err.h"

struct pg_conn;
struct pg_result;

struct pl_db_stmts;

struct pl_db {
	struct pg_conn *conn;
	int in_tx;
	/*
	 * A long-lived connection (a server's) sets prepare after connecting: each statement is
	 * then prepared on its first run and executed by name after, parsed and planned once per
	 * connection rather than once per run (at most PL_DB_STMTS_MAX of them; more run as usual).
	 */
	int prepare;
	struct pl_db_stmts *stmts;
	/* Seconds spent connecting and in pl_db_query, summed until the session collects them. */
	double waited_s;
};

#define PL_DB_STMTS_MAX 32

struct pl_db_res {
	struct pg_result *res;
};

#define PL_DB_RES_INIT                                                                             \
	{                                                                                          \
		NULL                                                                               \
	}

/* How long a statement waits for a lock another session holds before it fails. */
#define PL_DB_LOCK_TIMEOUT "10s"

/*
 * conninfo is a libpq connection string or URI ("" for libpq's PG* defaults). The server shows
 * the connection as application_name app ("parlae status"), unless conninfo names another.
 */
int pl_db_connect(struct pl_db *db, const char *conninfo, const char *app, struct pl_err *err);
void pl_db_close(struct pl_db *db);

/*
 * Run one parameterized statement (params may hold NULLs for SQL NULL). res may be NULL when
 * the rows are not wanted; otherwise the caller clears it with pl_db_res_clear. A unique
 * violation is PL_ECONFLICT; everything else PL_EDATABASE.
 */
int pl_db_query(struct pl_db *db, struct pl_db_res *res, const char *sql, int nparams,
                const char *const *params, struct pl_err *err);

int pl_db_begin(struct pl_db *db, struct pl_err *err);
int pl_db_commit(struct pl_db *db, struct pl_err *err);
/* Roll back if a transaction is open; never fails (a dead connection has no transaction). */
void pl_db_rollback(struct pl_db *db);

/* LISTEN on a channel (a fixed identifier of ours, never user input). */
int pl_db_listen(struct pl_db *db, const char *channel, struct pl_err *err);

/*
 * Wait for a notification for at most timeout_ms (-1: no limit). *notified is 1 when one or
 * more arrived (all are consumed: they only say "look again"), 0 on timeout.
 */
int pl_db_wait(struct pl_db *db, long timeout_ms, int *notified, struct pl_err *err);

/*
 * Like pl_db_wait, but also returns PL_EINTERRUPTED as soon as stop_fd (a pipe a signal
 * handler writes to; -1 for none) is readable, so that a wait ends at once on Ctrl-C.
 */
int pl_db_wait_fd(struct pl_db *db, long timeout_ms, int stop_fd, int *notified,
                  struct pl_err *err);

/*
 * For a connection that waits a long time (a follower): TCP keepalives, so that a server that
 * vanished without a word (a dead host, a cut network) is noticed within about idle_s + 30 s
 * rather than hours. Nothing to do on a Unix socket.
 */
void pl_db_keepalive(struct pl_db *db, int idle_s);

/*
 * Streaming (libpq single-row mode): the rows of one statement one at a time, so memory does
 * not grow with the result. Between start and the end of the rows the connection runs
 * nothing else. The current row is row 0 of st->row, read with pl_db_val and pl_db_len.
 */
struct pl_db_stream {
	struct pl_db *db;
	struct pl_db_res row;
	int active;
};

int pl_db_stream_start(struct pl_db *db, struct pl_db_stream *st, const char *sql, int nparams,
                       const char *const *params, struct pl_err *err);
/* *has_row is 1 with the next row in st->row, 0 after the last (the stream is then done). */
int pl_db_stream_next(struct pl_db_stream *st, int *has_row, struct pl_err *err);
/* Stop early (cancel the statement, drop what is left); harmless on a finished stream. */
void pl_db_stream_end(struct pl_db_stream *st);

/* Whether a query returns any row: *found 1 or 0. */
int pl_db_exists(struct pl_db *db, const char *sql, int nparams, const char *const *params,
                 int *found, struct pl_err *err);

/* Whether the connection is still up (a batch checks this to fail as a whole when it went). */
int pl_db_alive(const struct pl_db *db);

/*
 * Whether an idle connection can serve the next statement: one the server has closed since its
 * last use (a restart, pg_terminate_backend) shows it only once the close is read, which this
 * does without waiting (a poll and, when the server said something, libpq reading it).
 */
int pl_db_usable(struct pl_db *db);

int pl_db_rows(const struct pl_db_res *res);
/* The text of a field, or NULL for SQL NULL. Valid until pl_db_res_clear. */
const char *pl_db_val(const struct pl_db_res *res, int row, int col);
/* The byte length of a field (0 for SQL NULL). */
int pl_db_len(const struct pl_db_res *res, int row, int col);
void pl_db_res_clear(struct pl_db_res *res);

/* Migrations, from sql/NNNN-name.sql, compiled in. */
struct pl_migration {
	int version;
	const char *name;
	const char *sql;
};

struct pl_schema_entry {
	int version;
	char name[64];
	char applied_at[32]; /* ISO 8601 UTC, "" if pending */
};

struct pl_schema_status {
	int version; /* highest applied, 0 for an empty database */
	int latest;  /* highest this binary knows */
	struct pl_schema_entry *applied;
	size_t napplied;
	struct pl_schema_entry *pending;
	size_t npending;
};

const struct pl_migration *pl_db_migrations(size_t *n);

/* The schema's state; an empty database has no schema_migrations table and version 0. */
int pl_db_schema_status(struct pl_db *db, struct pl_schema_status *st, struct pl_err *err);
void pl_db_schema_status_release(struct pl_schema_status *st);

/*
 * Apply pending migrations, each in its own transaction, serialized across processes by an
 * advisory lock. *applied_now receives how many this call applied (or would, with dry_run).
 */
int pl_db_migrate(struct pl_db *db, int dry_run, size_t *applied_now, struct pl_err *err);

#endif
