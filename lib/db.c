#include "db.h"

#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "encode.h"
#include "trace.h"
#include "banned.h"

static void notice_quiet(void *arg, const PGresult *res)
{
	(void)arg;
	(void)res;
}

/* The statements prepared on a connection: their text, and their name there ("s" + index). */
struct pl_db_stmts {
	char *sql[PL_DB_STMTS_MAX];
	int n;
};

static void stmts_free(struct pl_db *db)
{
	if (!db->stmts)
		return;
	for (int i = 0; i < db->stmts->n; i++)
		free(db->stmts->sql[i]);
	free(db->stmts);
	db->stmts = NULL;
}

/*
 * The name of sql prepared on db, preparing it now if need be; 0, or -1 when it runs unprepared
 * (not asked for, the cache full, or the server refused to prepare it: running it as usual
 * then reports the error exactly as before).
 */
static int stmt_name(struct pl_db *db, const char *sql, int nparams, char name[16])
{
	struct pl_db_stmts *st;
	PGresult *res;
	int i, ok;

	if (!db->prepare)
		return -1;
	if (!db->stmts)
		db->stmts = pl_xcalloc(1, sizeof(*db->stmts));
	st = db->stmts;
	for (i = 0; i < st->n; i++)
		if (!strcmp(st->sql[i], sql))
			break;
	snprintf(name, 16, "pl_s%d", i);
	if (i < st->n)
		return 0;
	if (st->n == PL_DB_STMTS_MAX || db->in_tx)
		return -1; /* in a transaction a failed PREPARE would abort it */
	res = PQprepare(db->conn, name, sql, nparams, NULL);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		return -1;
	st->sql[st->n++] = pl_xstrdup(sql);
	return 0;
}

int pl_db_connect(struct pl_db *db, const char *conninfo, const char *app, struct pl_err *err)
{
	/*
	 * Later keywords win, and the caller's conninfo comes last: its own timeout stays. A lock
	 * held elsewhere (an open transaction holding the audit log's chain head, say) fails a
	 * statement after LOCK_TIMEOUT instead of hanging the command.
	 */
	const char *keys[] = {"connect_timeout", "application_name", "client_encoding",
	                      "options",         "dbname",           NULL};
	const char *vals[] = {"10",     app, "UTF8", "-c lock_timeout=" PL_DB_LOCK_TIMEOUT,
	                      conninfo, NULL};
	double t0;

	db->in_tx = 0;
	db->prepare = 0;
	db->stmts = NULL;
	db->waited_s = 0;
	if (pl_trace_on(2)) {
		char *masked = pl_trace_mask_conninfo(conninfo);

		pl_trace(2, "sql: connect '%s'", masked);
		free(masked);
	}
	t0 = pl_monotonic();
	db->conn = PQconnectdbParams(keys, vals, 1);
	db->waited_s += pl_monotonic() - t0;
	if (!db->conn)
		return pl_err_set(err, PL_EDATABASE,
		                  "cannot connect to the database: out of memory");
	if (PQstatus(db->conn) != CONNECTION_OK) {
		pl_err_set(err, PL_EDATABASE, "cannot connect to the database: %s",
		           PQerrorMessage(db->conn));
		PQfinish(db->conn);
		db->conn = NULL;
		return pl_err_hint(err, "check PARLAE_DATABASE_URL and that PostgreSQL is running");
	}
	PQsetNoticeReceiver(db->conn, notice_quiet, NULL);
	return 0;
}

void pl_db_close(struct pl_db *db)
{
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	db->in_tx = 0;
	stmts_free(db);
}

/*
 * The statement and, of its parameters, only how many and how long: a parameter can be a
 * transfer's reason, a caller's number or a key, and no list of names would catch them all.
 */
static void trace_query(const char *sql, int n, const char *const *params)
{
	struct pl_buf b = PL_BUF_INIT;

	pl_buf_addf(&b, "sql: %s", sql);
	if (n)
		pl_buf_addf(&b, " -- %d parameter%s:", n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++) {
		if (!params[i])
			pl_buf_addf(&b, " $%d NULL", i + 1);
		else
			pl_buf_addf(&b, " $%d %zu bytes", i + 1, strlen(params[i]));
	}
	for (char *p = b.buf; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	pl_trace(2, "%s", b.buf);
	pl_buf_release(&b);
}

static int result_error(struct pl_db *db, PGresult *res, struct pl_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	/* libpq's own text ("FATAL:  terminating connection ...") when the server's has no
	 * fields, as when it ended the session: the severity says nothing the message does not. */
	if (!msg || !*msg) {
		msg = PQerrorMessage(db->conn);
		if (!strncmp(msg, "FATAL:  ", 8) || !strncmp(msg, "ERROR:  ", 8))
			msg += 8;
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		pl_err_set(err, PL_EDATABASE, "lost the connection to the database: %s", msg);
		return pl_err_hint(err, "check that PostgreSQL is running, then retry");
	}
	if (state && !strcmp(state, "23505"))
		return pl_err_set(err, PL_ECONFLICT, "%s", msg);
	if (state && !strcmp(state, "55P03")) {
		pl_err_set(err, PL_EDATABASE,
		           "database error: %s (another session held a lock it needed "
		           "for " PL_DB_LOCK_TIMEOUT ")",
		           msg);
		return pl_err_hint(err, "a transaction left open (one that wrote to the audit log "
		                        "holds its chain head) blocks it: find it with "
		                        "pg_blocking_pids() in pg_stat_activity");
	}
	if (state && !strcmp(state, "42P01")) {
		pl_err_set(err, PL_EDATABASE, "database error: %s", msg);
		return pl_err_hint(err, "the schema is missing or old: run 'parlae db migrate'");
	}
	return pl_err_set(err, PL_EDATABASE, "database error: %s", msg);
}

int pl_db_query(struct pl_db *db, struct pl_db_res *out, const char *sql, int nparams,
                const char *const *params, struct pl_err *err)
{
	PGresult *res;
	ExecStatusType st;
	char name[16];
	double t0;

	if (!db->conn)
		return pl_err_set(err, PL_EDATABASE, "not connected to the database");
	if (pl_trace_on(2))
		trace_query(sql, nparams, params);
	t0 = pl_monotonic();
	/* A statement prepared through the protocol is planned again, result type and all, when
	 * the schema changes under it (0360 "a schema change under a running listener"). */
	if (!stmt_name(db, sql, nparams, name))
		res = PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
	else
		res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	db->waited_s += pl_monotonic() - t0;
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int r = result_error(db, res, err);

		PQclear(res);
		return r;
	}
	if (out)
		out->res = res;
	else
		PQclear(res);
	return 0;
}

int pl_db_begin(struct pl_db *db, struct pl_err *err)
{
	int r = pl_db_query(db, NULL, "BEGIN", 0, NULL, err);

	db->in_tx = !r;
	return r;
}

int pl_db_commit(struct pl_db *db, struct pl_err *err)
{
	int r = pl_db_query(db, NULL, "COMMIT", 0, NULL, err);

	db->in_tx = 0;
	return r;
}

void pl_db_rollback(struct pl_db *db)
{
	struct pl_err ignored = PL_ERR_INIT;

	if (db->in_tx && db->conn && PQstatus(db->conn) == CONNECTION_OK)
		pl_db_query(db, NULL, "ROLLBACK", 0, NULL, &ignored);
	db->in_tx = 0;
}

int pl_db_exists(struct pl_db *db, const char *sql, int nparams, const char *const *params,
                 int *found, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	int r = pl_db_query(db, &res, sql, nparams, params, err);

	if (!r)
		*found = pl_db_rows(&res) > 0;
	pl_db_res_clear(&res);
	return r;
}

int pl_db_alive(const struct pl_db *db)
{
	return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

int pl_db_usable(struct pl_db *db)
{
	/* The server's last words (FATAL: terminating connection), then its end of the stream. */
	for (int i = 0; i < 4 && pl_db_alive(db); i++) {
		struct pollfd p = {PQsocket(db->conn), POLLIN, 0};

		if (p.fd < 0 || poll(&p, 1, 0) < 0)
			return 0;
		if (!p.revents)
			return 1; /* nothing from the server: the connection is as it was left */
		if (!PQconsumeInput(db->conn))
			return 0; /* it read the end: libpq has marked the connection bad */
	}
	return 0;
}

int pl_db_rows(const struct pl_db_res *res)
{
	return res->res ? PQntuples(res->res) : 0;
}

const char *pl_db_val(const struct pl_db_res *res, int row, int col)
{
	if (!res->res || PQgetisnull(res->res, row, col))
		return NULL;
	return PQgetvalue(res->res, row, col);
}

void pl_db_res_clear(struct pl_db_res *res)
{
	PQclear(res->res);
	res->res = NULL;
}

int pl_db_listen(struct pl_db *db, const char *channel, struct pl_err *err)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	return pl_db_query(db, NULL, sql, 0, NULL, err);
}

static int drain(struct pl_db *db, struct pl_err *err)
{
	PGnotify *n;
	int got = 0;

	if (!PQconsumeInput(db->conn)) {
		pl_err_set(err, PL_EDATABASE, "lost the connection to the database: %s",
		           PQerrorMessage(db->conn));
		return -1;
	}
	while ((n = PQnotifies(db->conn))) {
		got = 1;
		PQfreemem(n);
	}
	return got;
}

int pl_db_wait(struct pl_db *db, long timeout_ms, int *notified, struct pl_err *err)
{
	return pl_db_wait_fd(db, timeout_ms, -1, notified, err);
}

int pl_db_wait_fd(struct pl_db *db, long timeout_ms, int stop_fd, int *notified, struct pl_err *err)
{
	struct pollfd pfd[2] = {{PQsocket(db->conn), POLLIN, 0}, {stop_fd, POLLIN, 0}};
	int got, r;

	*notified = 0;
	if ((got = drain(db, err)) < 0)
		return PL_EDATABASE;
	if (got) {
		*notified = 1;
		return 0;
	}
	r = poll(pfd, stop_fd >= 0 ? 2 : 1, timeout_ms < 0 ? -1 : (int)timeout_ms);
	if ((r < 0 && errno == EINTR) || (r > 0 && stop_fd >= 0 && pfd[1].revents))
		return pl_err_set(err, PL_EINTERRUPTED, "interrupted");
	if (r < 0)
		return pl_err_set(err, PL_EDATABASE, "waiting for the database: %s",
		                  strerror(errno));
	if (r == 0)
		return 0;
	if ((got = drain(db, err)) < 0)
		return PL_EDATABASE;
	*notified = got;
	return 0;
}

void pl_db_keepalive(struct pl_db *db, int idle_s)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	int fd = db->conn ? PQsocket(db->conn) : -1, on = 1, interval = 10, count = 3;

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
		return;
	/* Best effort: without them the connection still works, it is only noticed later. */
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

int pl_db_len(const struct pl_db_res *res, int row, int col)
{
	return res->res ? PQgetlength(res->res, row, col) : 0;
}

/* Read and drop whatever results the connection still has for the statement. */
static void stream_finish(struct pl_db_stream *st)
{
	PGresult *res;

	while ((res = PQgetResult(st->db->conn)))
		PQclear(res);
	st->active = 0;
}

int pl_db_stream_start(struct pl_db *db, struct pl_db_stream *st, const char *sql, int nparams,
                       const char *const *params, struct pl_err *err)
{
	st->db = db;
	st->row.res = NULL;
	st->active = 0;
	if (!db->conn)
		return pl_err_set(err, PL_EDATABASE, "not connected to the database");
	if (pl_trace_on(2))
		trace_query(sql, nparams, params);
	if (!PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0))
		return result_error(db, NULL, err);
	st->active = 1;
	if (!PQsetSingleRowMode(db->conn)) {
		stream_finish(st);
		return pl_err_set(err, PL_EINTERNAL, "cannot stream the rows of a statement");
	}
	return 0;
}

int pl_db_stream_next(struct pl_db_stream *st, int *has_row, struct pl_err *err)
{
	PGresult *res;
	int r = 0;

	*has_row = 0;
	PQclear(st->row.res);
	st->row.res = NULL;
	if (!st->active)
		return 0;
	res = PQgetResult(st->db->conn);
	switch (PQresultStatus(res)) {
	case PGRES_SINGLE_TUPLE:
		st->row.res = res;
		*has_row = 1;
		return 0;
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
		break;
	default:
		r = result_error(st->db, res, err);
	}
	PQclear(res);
	stream_finish(st);
	return r;
}

void pl_db_stream_end(struct pl_db_stream *st)
{
	PGcancel *cancel;
	char msg[256];

	PQclear(st->row.res);
	st->row.res = NULL;
	if (!st->active)
		return;
	/* The server would otherwise send every remaining row before the next statement. */
	if (PQstatus(st->db->conn) == CONNECTION_OK && (cancel = PQgetCancel(st->db->conn))) {
		PQcancel(cancel, msg, (int)sizeof(msg));
		PQfreeCancel(cancel);
	}
	stream_finish(st);
}
