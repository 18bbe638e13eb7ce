#include "audit.h"

#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "utf8.h"
#include "banned.h"

const char *pl_audit_outcome(int code)
{
	if (code == PL_OK)
		return "success";
	if (code == PL_ENO || code == PL_ESECURITY)
		return "denied";
	return "failure";
}

int pl_audit_append(struct pl_session *s, const struct pl_audit_event *ev, int code,
                    struct pl_err *err)
{
	struct pl_db *db;
	const char *params[10];
	int r;

	if ((r = pl_session_db(s, &db, err)))
		return r;
	params[0] = pl_session_actor(s);
	params[1] = s->host;
	params[2] = ev->account_id;
	params[3] = ev->action;
	params[4] = ev->resource_type;
	params[5] = ev->resource_id;
	params[6] = pl_audit_outcome(code);
	params[7] = code ? pl_err_name(code) : NULL;
	params[8] = s->request_id[0] ? s->request_id : NULL;
	params[9] = ev->metadata ? ev->metadata : "{}";
	return pl_db_query(
	    db, NULL,
	    "INSERT INTO audit_events (actor, host, account_id, action, resource_type,"
	    " resource_id, outcome, error_code, request_id, metadata)"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
	    10, params, err);
}

int pl_audit_finish(struct pl_session *s, const struct pl_audit_event *ev, int code,
                    struct pl_err *err)
{
	struct pl_err ignored = PL_ERR_INIT;

	if (!code) {
		code = pl_audit_append(s, ev, PL_OK, err);
		if (!code && s->db.in_tx)
			code = pl_db_commit(&s->db, err);
		if (!code)
			return 0;
	}
	pl_db_rollback(&s->db);
	if (s->db.conn)
		pl_audit_append(s, ev, code, &ignored);
	return code;
}

/* The triggers of sql/0002 and 0003 that keep the log append-only and chained. */
#define AUDIT_TRIGGERS                                                                             \
	"'audit_events_chain', 'audit_events_append_only', 'audit_events_no_truncate',"            \
	" 'audit_chain_head_write', 'audit_chain_head_forward', 'audit_chain_head_keep',"          \
	" 'audit_chain_head_no_truncate'"
#define AUDIT_NTRIGGERS "7"
#define RUN_AS_APP      "run the commands as parlae_app (sql/roles.sql)"

/*
 * What makes a role able to rewrite the log, as a phrase naming it, or NULL: for the role the
 * commands run as and for the role that logged in (SET ROLE or options=-crole= can tell them
 * apart), in that order. Owning the database or the schema is enough to drop the tables;
 * CREATEROLE (before PostgreSQL 16) to grant oneself the owner's role; writing the server's
 * files or running programs there to change anything.
 */
#define AUDIT_POWER_SQL                                                                            \
	"SELECT format(CASE"                                                                       \
	"  WHEN r.rolsuper THEN '%1$s as %2$s, a superuser'"                                       \
	"  WHEN r.oid = o.tab THEN '%1$s as %2$s, the owner of its tables'"                        \
	"  WHEN pg_has_role(r.oid, o.tab, 'MEMBER') OR pg_has_role(r.oid, o.head, 'MEMBER')"       \
	"   THEN '%1$s as %2$s, which may act as %3$s, the owner of its tables'"                   \
	"  WHEN r.oid = o.db"                                                                      \
	"   THEN '%1$s as %2$s, the owner of the database (who may drop its tables)'"              \
	"  WHEN pg_has_role(r.oid, o.db, 'MEMBER')"                                                \
	"   THEN '%1$s as %2$s, which may act as %4$s, the owner of the database (who may drop "   \
	"its tables)'"                                                                             \
	"  WHEN pg_has_role(r.oid, o.nsp, 'MEMBER')"                                               \
	"   THEN '%1$s as %2$s, which may act as %5$s, the owner of schema %6$s (who may drop "    \
	"its tables)'"                                                                             \
	"  WHEN r.rolcreaterole AND current_setting('server_version_num')::int < 160000"           \
	"   THEN '%1$s as %2$s, which has CREATEROLE and so may make itself the owner'"            \
	"  WHEN coalesce(pg_has_role(r.oid, to_regrole('pg_execute_server_program'), 'MEMBER')"    \
	"   OR pg_has_role(r.oid, to_regrole('pg_write_server_files'), 'MEMBER'), false)"          \
	"   THEN '%1$s as %2$s, which may write the server''s files or run programs there'"        \
	"  END, CASE WHEN r.rolname = current_user THEN 'connected' ELSE 'logged in' END,"         \
	"  r.rolname, pg_get_userbyid(o.tab), pg_get_userbyid(o.db), pg_get_userbyid(o.nsp),"      \
	"  o.nspname), r.rolname = current_user AS cur"                                            \
	" FROM pg_roles r, (SELECT c.relowner AS tab, h.relowner AS head, d.datdba AS db,"         \
	"  n.nspowner AS nsp, n.nspname FROM pg_class c"                                           \
	"  JOIN pg_namespace n ON n.oid = c.relnamespace, pg_class h, pg_database d"               \
	"  WHERE c.oid = 'audit_events'::regclass AND h.oid = 'audit_chain_head'::regclass"        \
	"  AND d.datname = current_database()) o"                                                  \
	" WHERE r.rolname IN (current_user, session_user)"

int pl_audit_protection(struct pl_session *s, struct pl_audit_protection *out, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *power;
	struct pl_db *db;
	int r;

	memset(out, 0, sizeof(*out));
	out->last_event = -1;
	if ((r = pl_session_db(s, &db, err)))
		return r;
	r = pl_db_query(db, &res,
	                "SELECT (SELECT p.format FROM (" AUDIT_POWER_SQL
	                ") p WHERE p.format IS NOT NULL"
	                "  ORDER BY p.cur DESC LIMIT 1),"
	                " (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid IN"
	                "  ('audit_events'::regclass, 'audit_chain_head'::regclass)"
	                "  AND t.tgname IN (" AUDIT_TRIGGERS
	                ") AND t.tgenabled IN ('O', 'A')) = " AUDIT_NTRIGGERS ","
	                " CASE WHEN has_table_privilege('audit_chain_head', 'SELECT')"
	                "  THEN (SELECT seq FROM audit_chain_head) END",
	                0, NULL, err);
	if (r)
		return r;
	if ((power = pl_db_val(&res, 0, 0)))
		/* Role and schema names are at most 63 bytes each: the sentence fits whole. */
		snprintf(out->reason, sizeof(out->reason), "%.*s: " RUN_AS_APP,
		         pl_utf8_cut(power, sizeof(out->reason) - sizeof(RUN_AS_APP) - 2), power);
	else if (strcmp(pl_db_val(&res, 0, 1), "t"))
		snprintf(out->reason, sizeof(out->reason),
		         "a trigger that guards it is disabled or missing: enable it as the owner, "
		         "then run 'parlae audit verify'");
	else
		out->is_protected = 1;
	if (pl_db_val(&res, 0, 2))
		out->last_event = strtoll(pl_db_val(&res, 0, 2), NULL, 10);
	pl_db_res_clear(&res);
	return 0;
}

int pl_audit_fail(struct pl_session *s, const struct pl_audit_event *ev, int code, const char *sql,
                  int nparams, const char *const *params, struct pl_err *err)
{
	struct pl_err ignored = PL_ERR_INIT;
	int r;

	pl_db_rollback(&s->db);
	if ((r = pl_session_reconnect(s, err)))
		return r;
	if (sql && !pl_db_begin(&s->db, &ignored) &&
	    !pl_db_query(&s->db, NULL, sql, nparams, params, &ignored) &&
	    !pl_audit_append(s, ev, code, &ignored) && !pl_db_commit(&s->db, &ignored))
		return 0;
	/* The row could not say it: the event still does. */
	pl_db_rollback(&s->db);
	return pl_audit_append(s, ev, code, err);
}

/* --- --since ------------------------------------------------------------------------------ */

/* "1h30m": *secs, or -1 when text is not a duration (the contract's grammar, in config). */
static int parse_duration(const char *text, long long *secs)
{
	long v = pl_parse_duration(text);

	if (v < 0)
		return -1;
	*secs = v;
	return 0;
}

/* Exactly n digits at *p, advancing it; -1 if not. */
static int digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

static int days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/* ISO 8601 to seconds since the epoch and microseconds; -1 if it is not one. */
static int parse_iso(const char *text, time_t *out, long *usec)
{
	const char *p = text;
	struct tm tm;
	int zone = 0, offset = 0, v;

	memset(&tm, 0, sizeof(tm));
	*usec = 0;
	if ((v = digits(&p, 4)) < 1900 || *p++ != '-')
		return -1;
	tm.tm_year = v - 1900;
	if ((v = digits(&p, 2)) < 1 || v > 12 || *p++ != '-')
		return -1;
	tm.tm_mon = v - 1;
	if ((v = digits(&p, 2)) < 1 || v > days_in_month(tm.tm_year + 1900, tm.tm_mon + 1))
		return -1;
	tm.tm_mday = v;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if ((tm.tm_hour = digits(&p, 2)) < 0 || tm.tm_hour > 23 || *p++ != ':')
			return -1;
		if ((tm.tm_min = digits(&p, 2)) < 0 || tm.tm_min > 59)
			return -1;
		if (*p == ':') {
			p++;
			if ((tm.tm_sec = digits(&p, 2)) < 0 || tm.tm_sec > 59)
				return -1;
			if (*p == '.' || *p == ',') {
				long scale = 100000;

				if (*++p < '0' || *p > '9')
					return -1;
				for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
					*usec += (*p - '0') * scale;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			zone = 1;
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, hh, mm = 0;

			if ((hh = digits(&p, 2)) < 0 || hh > 23)
				return -1;
			if (*p == ':')
				p++;
			if (*p && ((mm = digits(&p, 2)) < 0 || mm > 59))
				return -1;
			zone = 1;
			offset = sign * (hh * 3600 + mm * 60);
		}
	}
	if (*p)
		return -1;
	if (zone) {
		*out = timegm(&tm) - offset;
	} else {
		tm.tm_isdst = -1;
		*out = mktime(&tm);
	}
	return *out == (time_t)-1 && !zone ? -1 : 0;
}

int pl_audit_parse_since(const char *text, time_t now, char *out, size_t size, struct pl_err *err)
{
	long long secs;
	long usec = 0;
	time_t t;
	struct tm tm;
	char day[32];

	if (!parse_duration(text, &secs))
		t = now - (time_t)secs;
	else if (parse_iso(text, &t, &usec) < 0) {
		pl_err_set(err, PL_EUSAGE, "--since takes ISO 8601 or a duration, not '%.*s'",
		           pl_utf8_cut(text, 80), text);
		return pl_err_hint(err, "e.g. 2026-11-24T08:00:00Z, 90s, 15m, 2h, 1d or 1h30m");
	}
	if (!gmtime_r(&t, &tm) || !strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm) ||
	    snprintf(out, size, "%s.%06ld+00", day, usec) >= (int)size)
		return pl_err_set(err, PL_EUSAGE, "--since '%.*s' is out of range",
		                  pl_utf8_cut(text, 80), text);
	return 0;
}

/* --- the cursor file ----------------------------------------------------------------------- */

/* *seq is 0 when the file does not exist yet: everything is after it. */
static int read_cursor(const char *path, long long *seq, struct pl_err *err)
{
	char text[64], *end;
	ssize_t n;
	int fd;

	*seq = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		return pl_err_set(err, PL_ECONFIG, "cannot read the cursor file %s: %s", path,
		                  strerror(errno));
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return pl_err_set(err, PL_ECONFIG, "cannot read the cursor file %s: %s", path,
		                  strerror(errno));
	text[n] = '\0';
	errno = 0;
	*seq = strtoll(text, &end, 10);
	if (end == text || text[0] < '0' || text[0] > '9' || errno || *seq < 0 ||
	    (*end && strcmp(end, "\n"))) {
		pl_err_set(err, PL_EBADINPUT, "the cursor file %s does not hold an event number",
		           path);
		return pl_err_hint(
		    err, "it holds the last sequence number printed; remove it to start over");
	}
	return 0;
}

/* The cursor file could not be written: io (a full disk, a read-only file system), or a
 * configuration error when the place named does not exist. */
static int cursor_io_error(const char *what, const char *path, struct pl_err *err)
{
	int code = errno == ENOENT || errno == ENOTDIR ? PL_ECONFIG : PL_EIO;

	return pl_err_set(err, code, "cannot %s the cursor file %s: %s", what, path,
	                  strerror(errno));
}

/* Write seq atomically: a temporary file beside it, fsynced, renamed over it, the directory
 * fsynced. */
static int write_cursor(const char *path, long long seq, struct pl_err *err)
{
	struct pl_buf tmp = PL_BUF_INIT;
	char text[32];
	int fd = -1, r = 0, len = snprintf(text, sizeof(text), "%lld\n", seq);

	pl_buf_addf(&tmp, "%s.XXXXXX", path);
	if ((fd = mkstemp(tmp.buf)) < 0) {
		r = cursor_io_error("write", path, err);
		goto out;
	}
	if (write(fd, text, (size_t)len) != len || fsync(fd) < 0) {
		r = cursor_io_error("write", path, err);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = cursor_io_error("write", path, err);
		goto out;
	}
	fd = -1;
	if (rename(tmp.buf, path) < 0) {
		r = cursor_io_error("replace", path, err);
		goto out;
	}
	pl_buf_reset(&tmp);
	if (pl_fsync_parent(path) < 0)
		r = cursor_io_error("sync the directory of", path, err);
out:
	if (fd >= 0)
		close(fd);
	if (tmp.len)
		unlink(tmp.buf);
	pl_buf_release(&tmp);
	return r;
}

/* --- audit tail ----------------------------------------------------------------------------- */

#define TAIL_COLS                                                                                  \
	"seq, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "      \
	"actor,"                                                                                   \
	" host, account_id, action, resource_type, resource_id, outcome, error_code, request_id,"  \
	" metadata, hash"

#define RECONNECT_FIRST_MS 250
#define RECONNECT_MAX_MS   10000
#define KEEPALIVE_IDLE_S   30

struct tail {
	struct pl_session *s;
	const struct pl_audit_tail_req *req;
	struct pl_buf filters; /* " AND ..." with $2.. */
	const char *params[4]; /* $1 then the filters' values */
	int nparams;
	struct pl_buf like;
	long long last;      /* every event up to here has been considered */
	long long printed;   /* the last event printed, 0 for none */
	long long cursor_at; /* what the cursor file says */
};

static int stopped(const struct tail *t)
{
	return t->req->stop && *t->req->stop;
}

/* A glob as a LIKE pattern with '\' as its escape: '*' and '?' are the only wildcards. */
static void glob_to_like(const char *glob, struct pl_buf *out)
{
	for (const char *p = glob; *p; p++) {
		switch (*p) {
		case '*':
			pl_buf_addch(out, '%');
			break;
		case '?':
			pl_buf_addch(out, '_');
			break;
		default:
			/* A '\\' quotes the next character; a final one is literal. */
			if (*p == '\\' && p[1])
				p++;
			if (*p == '%' || *p == '_' || *p == '\\')
				pl_buf_addch(out, '\\');
			pl_buf_addch(out, *p);
		}
	}
}

static void build_filters(struct tail *t)
{
	const struct pl_audit_tail_req *req = t->req;

	t->nparams = 1; /* $1 is the position */
	if (req->account) {
		t->params[t->nparams++] = req->account;
		pl_buf_addf(&t->filters, " AND account_id = $%d", t->nparams);
	}
	if (req->action) {
		glob_to_like(req->action, &t->like);
		t->params[t->nparams++] = t->like.buf;
		pl_buf_addf(&t->filters, " AND action LIKE $%d ESCAPE E'\\\\'", t->nparams);
	}
	if (req->since) {
		t->params[t->nparams++] = req->since;
		pl_buf_addf(&t->filters, " AND occurred_at >= $%d::timestamptz", t->nparams);
	}
}

static long long to_seq(const char *text)
{
	return text ? strtoll(text, NULL, 10) : 0;
}

/* Emit the rows of a running stream; *n counts them. */
static int emit_rows(struct tail *t, struct pl_db_stream *st, long long *n, struct pl_err *err)
{
	struct pl_audit_row ev;
	const struct pl_db_res *row = &st->row;
	int r, has_row;

	for (;;) {
		if ((r = pl_db_stream_next(st, &has_row, err)) || !has_row)
			return r;
		ev.seq_text = pl_db_val(row, 0, 0);
		ev.seq = to_seq(ev.seq_text);
		ev.occurred_at = pl_db_val(row, 0, 1);
		ev.actor = pl_db_val(row, 0, 2);
		ev.host = pl_db_val(row, 0, 3);
		ev.account_id = pl_db_val(row, 0, 4);
		ev.action = pl_db_val(row, 0, 5);
		ev.resource_type = pl_db_val(row, 0, 6);
		ev.resource_id = pl_db_val(row, 0, 7);
		ev.outcome = pl_db_val(row, 0, 8);
		ev.error_code = pl_db_val(row, 0, 9);
		ev.request_id = pl_db_val(row, 0, 10);
		ev.metadata = pl_db_val(row, 0, 11);
		ev.hash = pl_db_val(row, 0, 12);
		if (stopped(t)) {
			pl_db_stream_end(st);
			return pl_err_set(err, PL_EINTERRUPTED, "interrupted");
		}
		if ((r = t->req->emit(&ev, t->req->arg))) {
			pl_db_stream_end(st);
			return r;
		}
		t->printed = ev.seq;
		if (ev.seq > t->last)
			t->last = ev.seq;
		(*n)++;
	}
}

/* The chain head: every event up to it has committed. */
static int read_head(struct pl_db *db, long long *head, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	int r = pl_db_query(db, &res, "SELECT seq FROM audit_chain_head", 0, NULL, err);

	if (!r)
		*head = pl_db_rows(&res) ? to_seq(pl_db_val(&res, 0, 0)) : 0;
	pl_db_res_clear(&res);
	return r;
}

/*
 * Events after t->last (limit: at most that many, -1 for all). *complete is 1 when every
 * event up to the head read beforehand has been considered.
 */
static int read_after(struct tail *t, long long limit, int *complete, struct pl_err *err)
{
	struct pl_buf sql = PL_BUF_INIT;
	struct pl_db_stream st;
	struct pl_db *db;
	char after[32], lim[32];
	long long head = 0, n = 0;
	int r;

	if ((r = pl_session_db(t->s, &db, err)) || (r = read_head(db, &head, err)))
		return r;
	snprintf(after, sizeof(after), "%lld", t->last);
	t->params[0] = after;
	pl_buf_addf(&sql, "SELECT " TAIL_COLS " FROM audit_events WHERE seq > $1%s ORDER BY seq",
	            t->filters.buf);
	if (limit >= 0) {
		snprintf(lim, sizeof(lim), "%lld", limit);
		pl_buf_addf(&sql, " LIMIT %s", lim);
	}
	if (!(r = pl_db_stream_start(db, &st, sql.buf, t->nparams, t->params, err)))
		r = emit_rows(t, &st, &n, err);
	pl_buf_release(&sql);
	*complete = limit < 0 || n < limit;
	if (!r && *complete && head > t->last)
		t->last = head;
	return r;
}

/* The last t->req->limit events that match, oldest first. */
static int read_last(struct tail *t, struct pl_err *err)
{
	struct pl_buf sql = PL_BUF_INIT;
	struct pl_db_stream st;
	struct pl_db *db;
	char offset[32];
	long long head = 0, n = 0;
	int r;

	if ((r = pl_session_db(t->s, &db, err)) || (r = read_head(db, &head, err)))
		return r;
	if (t->req->limit > 0) {
		/* One statement, one snapshot: where the last N start, then the rows from there. */
		snprintf(offset, sizeof(offset), "%lld", t->req->limit - 1);
		t->params[0] = offset;
		pl_buf_addf(
		    &sql,
		    "SELECT " TAIL_COLS " FROM audit_events WHERE seq >= coalesce((SELECT seq"
		    " FROM audit_events WHERE true%s ORDER BY seq DESC OFFSET $1::bigint LIMIT 1),"
		    " 0)%s ORDER BY seq",
		    t->filters.buf, t->filters.buf);
		if (!(r = pl_db_stream_start(db, &st, sql.buf, t->nparams, t->params, err)))
			r = emit_rows(t, &st, &n, err);
		pl_buf_release(&sql);
	}
	if (!r && head > t->last)
		t->last = head;
	return r;
}

static int save_cursor(struct tail *t, struct pl_err *err)
{
	int r;

	if (!t->req->cursor_file || t->s->dry_run || t->printed <= t->cursor_at)
		return 0;
	if (t->req->flush && (r = t->req->flush(t->req->arg)))
		return pl_err_set(err, r, "cannot write the events out: %s", strerror(errno));
	if ((r = write_cursor(t->req->cursor_file, t->printed, err)))
		return r;
	t->cursor_at = t->printed;
	return 0;
}

static void notice(struct tail *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(struct tail *t, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!t->req->notice)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->req->notice(msg, t->req->arg);
}

/* Sleep ms, or less if stopped; 1 when stopped. */
static int pause_ms(struct tail *t, int ms)
{
	struct pollfd pfd = {t->req->stop_fd, POLLIN, 0};

	if (stopped(t))
		return 1;
	if (t->req->stop_fd >= 0) {
		if (poll(&pfd, 1, ms) > 0)
			return 1;
	} else {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
	return stopped(t);
}

/* libpq's messages run on over several lines; a notice is one. */
static const char *first_line(const char *msg, char *buf, size_t size)
{
	snprintf(buf, size, "%s", msg);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* After a lost connection: back off, reconnect and LISTEN again, until it works or a stop. */
static int reconnect(struct tail *t, const struct pl_err *lost, struct pl_err *err)
{
	struct pl_db *db;
	int delay = RECONNECT_FIRST_MS;
	char line[512];

	notice(t, "%s; reconnecting", first_line(lost->msg, line, sizeof(line)));
	for (;;) {
		struct pl_err e = PL_ERR_INIT;

		pl_db_close(&t->s->db);
		if (pause_ms(t, delay))
			return pl_err_set(err, PL_EINTERRUPTED, "interrupted");
		if (!pl_session_db(t->s, &db, &e) && !pl_db_listen(db, "parlae_audit", &e)) {
			pl_db_keepalive(db, KEEPALIVE_IDLE_S);
			notice(t, "reconnected; catching up after event %lld", t->last);
			return 0;
		}
		delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
		notice(t, "cannot reconnect: %s; retrying in %.1f s",
		       first_line(e.msg, line, sizeof(line)), delay / 1000.0);
	}
}

/* A failure the follow loop gets over: the connection went away. */
static int lost_connection(struct tail *t, int r)
{
	return r == PL_EDATABASE && !pl_db_alive(&t->s->db);
}

static int follow(struct tail *t, int catch_up, struct pl_err *err)
{
	struct pl_db *db;
	int r, notified, complete;

	for (;;) {
		struct pl_err e = PL_ERR_INIT;

		if (catch_up) {
			r = read_after(t, -1, &complete, &e);
			if (!r)
				r = save_cursor(t, &e);
		} else {
			r = pl_session_db(t->s, &db, &e);
			if (!r)
				r = pl_db_wait_fd(db, -1, t->req->stop_fd, &notified, &e);
			if (!r && stopped(t))
				r = pl_err_set(&e, PL_EINTERRUPTED, "interrupted");
			if (!r && !notified)
				continue;
		}
		if (lost_connection(t, r)) {
			if ((r = reconnect(t, &e, err)))
				return r;
			catch_up = 1;
			continue;
		}
		if (r) {
			*err = e;
			return r;
		}
		catch_up = !catch_up;
	}
}

int pl_audit_tail(struct pl_session *s, const struct pl_audit_tail_req *req, struct pl_err *err)
{
	struct tail t = {s, req, PL_BUF_INIT, {NULL}, 0, PL_BUF_INIT, 0, 0, 0};
	struct pl_db *db;
	int r, complete = 1;

	build_filters(&t);
	if (req->cursor_file && (r = read_cursor(req->cursor_file, &t.cursor_at, err)))
		goto out;
	t.last = t.cursor_at;
	if ((r = pl_session_db(s, &db, err)))
		goto out;
	/* LISTEN before the first read, so that nothing committed in between is missed. */
	if (req->follow && (r = pl_db_listen(db, "parlae_audit", err)))
		goto out;
	if (req->follow)
		pl_db_keepalive(db, KEEPALIVE_IDLE_S);
	if (req->cursor_file || req->limit < 0)
		r = read_after(&t, req->limit, &complete, err);
	else
		r = read_last(&t, err);
	if (!r)
		r = save_cursor(&t, err);
	if (!r && req->follow)
		r = follow(&t, !complete, err);
	if (r) {
		struct pl_err ignored = PL_ERR_INIT;

		/* Stopped or failed midway: what was printed stays printed, and the cursor says so.
		 */
		save_cursor(&t, &ignored);
	}
out:
	pl_buf_release(&t.filters);
	pl_buf_release(&t.like);
	return r;
}
