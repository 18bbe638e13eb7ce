/*
 * vapi listen's server. libmicrohttpd parses HTTP and gives each connection a thread of its
 * own, so that a request waiting on Sikka holds up no other connection. The thread borrows a
 * session from a pool of at most --threads (a database connection and a curl handle, kept from
 * one request to the next) for the time of one request; more requests than that wait for one.
 * (A pool of MHD threads each serving several connections in turn, the first design, served
 * 16 connections at a quarter of the rate at 100 ms upstream latency: connections were not
 * spread evenly over the threads, and a thread's requests queued behind one another.)
 *
 * A POST is authenticated before anything else happens: the headers first (a missing or wrong
 * secret or bearer token, an HMAC timestamp outside +-300 s: 401 before the body is read), then
 * the HMAC over the body, then the signature is recorded as accepted in PostgreSQL, where a
 * second use of it (by this listener or another behind the same URL) is refused. Only then
 * does the one message handler run (pl_vapi_handle), or the body go to --forward-to.
 */
#include "listen.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "db.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "session.h"
#include "store.h"
#include "tool.h"
#include "utf8.h"
#include "vapi.h"
#include "vapi_handle.h"
#include "banned.h"

#define MAX_DISCARD   ((size_t)16 << 20) /* a chunked body past 1 MiB is dropped up to this */
#define PRUNE_EVERY   64                 /* accepted signatures between two prunes, per thread */
#define LOG_TOOLS_MAX 8
#define HEALTH_TTL    1.0 /* seconds a /healthz answer is given again */

/* --- metrics ------------------------------------------------------------------------------- */

static const char *const outcomes[] = {
    "ok",      "partial",   "error",     "skipped",     "ended",        "forwarded",
    "refused", "too_large", "bad_input", "unavailable", "not_recorded",
};
#define NOUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))
enum {
	O_OK,
	O_PARTIAL,
	O_ERROR,
	O_SKIPPED,
	O_ENDED,
	O_FORWARDED,
	O_REFUSED,
	O_TOO_LARGE,
	O_BAD_INPUT,
	O_UNAVAILABLE,
	O_NOT_RECORDED,
};

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct metrics {
	pthread_mutex_t lock;
	size_t ntools;      /* rows of pl_tools; then "unknown", then "none" */
	unsigned long *req; /* (ntools + 2) * NOUTCOMES */
	unsigned long hist[NBUCKETS + 1];
	double sum;
	unsigned long count, upstream_errors;
	long in_flight;
	long running;     /* of in_flight, those whose body is whole (see pl_listen_drained) */
	long connections; /* open, idle or not */
	unsigned long connections_refused; /* over --max-connections */
	double refused_logged;             /* when a refusal was last logged (monotonic) */
	int closing;                       /* no request starts to run any more */
};

/* --- the server ---------------------------------------------------------------------------- */

struct worker {
	struct pl_session s;
	struct pl_http sikka; /* its curl handle is lent to each request's Sikka client */
	struct pl_http fwd;   /* --forward-to */
	int has_sikka, has_fwd;
	unsigned accepted; /* signatures, for pruning */
	struct worker *next, *idle_next;
};

struct pl_listen {
	struct pl_config *cfg;
	struct pl_listen_opts o;
	const char *secret;
	struct MHD_Daemon *d;
	int port;
	int listen_fd; /* after quiesce: closed once the daemon has stopped */
	volatile int stopping;
	pthread_mutex_t lock; /* logging */
	pthread_mutex_t pool_lock;
	pthread_cond_t freed;
	struct worker *workers, *idle; /* all of them; those not serving a request */
	int nworkers;
	/* Database connections, lent to a request's session for its steps (not its waits). */
	pthread_mutex_t db_lock;
	pthread_cond_t db_freed;
	struct pl_db *db_idle; /* db_max of them; the first db_nidle are open and free */
	int db_nidle, db_open, db_max;
	struct pl_db_lender lender;
	struct metrics m;
	/* /healthz's last answer, given again within HEALTH_TTL: anyone may ask, and each check
	 * takes a session from the pool and asks the store (with aws:, a call to AWS). */
	pthread_mutex_t health_lock;
	double health_at;
	int health_status;
	char health_body[96];
};

/* One request's state, from its headers to its answer. */
struct req {
	double t0;
	struct pl_buf body;
	int post;
	int too_large;
	int answered; /* on its headers (401, 413): nothing more of it is read or run */
	int running;  /* its body whole: it runs, and a stop waits for it */
	struct pl_listen_authn authn; /* what its credentials were found to be (forwarding) */
};

static void metrics_init(struct metrics *m)
{
	for (m->ntools = 0; pl_tools[m->ntools].name; m->ntools++)
		;
	m->req = pl_xcalloc((m->ntools + 2) * NOUTCOMES, sizeof(*m->req));
	pthread_mutex_init(&m->lock, NULL);
}

static size_t tool_index(const struct metrics *m, const char *name)
{
	const struct pl_tool *t = name ? pl_tool_find(name) : NULL;

	if (!name)
		return m->ntools + 1;
	return t ? (size_t)(t - pl_tools) : m->ntools;
}

static const char *tool_label(const struct metrics *m, size_t i)
{
	return i < m->ntools ? pl_tools[i].name : i == m->ntools ? "unknown" : "none";
}

char *pl_listen_metrics(struct pl_listen *l)
{
	struct metrics *m = &l->m;
	struct pl_buf b = PL_BUF_INIT;
	unsigned long cum = 0;

	pthread_mutex_lock(&m->lock);
	pl_buf_adds(&b, "# HELP parlae_listen_requests_total Requests answered, by tool call "
	                "(tool \"none\": a request without one) and outcome.\n"
	                "# TYPE parlae_listen_requests_total counter\n");
	for (size_t t = 0; t < m->ntools + 2; t++)
		for (size_t o = 0; o < NOUTCOMES; o++)
			if (m->req[t * NOUTCOMES + o])
				pl_buf_addf(
				    &b,
				    "parlae_listen_requests_total{tool=\"%s\",outcome=\"%s\"} "
				    "%lu\n",
				    tool_label(m, t), outcomes[o], m->req[t * NOUTCOMES + o]);
	pl_buf_adds(&b, "# HELP parlae_listen_request_duration_seconds Time from a request's "
	                "headers to its answer.\n"
	                "# TYPE parlae_listen_request_duration_seconds histogram\n");
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += m->hist[i];
		pl_buf_addf(&b, "parlae_listen_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
		            buckets[i], cum);
	}
	pl_buf_addf(&b,
	            "parlae_listen_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n"
	            "parlae_listen_request_duration_seconds_sum %.6f\n"
	            "parlae_listen_request_duration_seconds_count %lu\n",
	            m->count, m->sum, m->count);
	pl_buf_addf(&b,
	            "# HELP parlae_listen_upstream_errors_total Tool calls or relays that failed "
	            "upstream (Sikka, Twilio, the --forward-to backend).\n"
	            "# TYPE parlae_listen_upstream_errors_total counter\n"
	            "parlae_listen_upstream_errors_total %lu\n"
	            "# HELP parlae_listen_in_flight Requests received and not yet answered.\n"
	            "# TYPE parlae_listen_in_flight gauge\n"
	            "parlae_listen_in_flight %ld\n"
	            "# HELP parlae_listen_connections Connections open, idle or not.\n"
	            "# TYPE parlae_listen_connections gauge\n"
	            "parlae_listen_connections %ld\n"
	            "# HELP parlae_listen_connections_refused_total Connections closed at once: "
	            "--max-connections were open.\n"
	            "# TYPE parlae_listen_connections_refused_total counter\n"
	            "parlae_listen_connections_refused_total %lu\n",
	            m->upstream_errors, m->in_flight, m->connections, m->connections_refused);
	pthread_mutex_unlock(&m->lock);
	return pl_buf_detach(&b, NULL);
}

static void count(struct metrics *m, size_t tool, int outcome)
{
	pthread_mutex_lock(&m->lock);
	m->req[tool * NOUTCOMES + (size_t)outcome]++;
	pthread_mutex_unlock(&m->lock);
}

static void observe(struct metrics *m, double seconds, int upstream_errors)
{
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < NBUCKETS && seconds > buckets[i]; i++)
		;
	m->hist[i]++;
	m->sum += seconds;
	m->count++;
	m->upstream_errors += (unsigned long)upstream_errors;
	pthread_mutex_unlock(&m->lock);
}

static void in_flight(struct metrics *m, long d)
{
	pthread_mutex_lock(&m->lock);
	m->in_flight += d;
	pthread_mutex_unlock(&m->lock);
}

long pl_listen_in_flight(struct pl_listen *l)
{
	long n;

	pthread_mutex_lock(&l->m.lock);
	n = l->m.in_flight;
	pthread_mutex_unlock(&l->m.lock);
	return n;
}

int pl_listen_drained(struct pl_listen *l, int cut_uploads)
{
	int drained;

	pthread_mutex_lock(&l->m.lock);
	drained = !l->m.running && (cut_uploads || !l->m.in_flight);
	if (drained)
		l->m.closing = 1;
	pthread_mutex_unlock(&l->m.lock);
	return drained;
}

/* --- the database pool: at most db_max connections, however many requests run -------------- */

/*
 * A connection for a session's step: a free one, else a new one while fewer than db_max are
 * open, else wait for one (a request is never failed because the pool is busy).
 */
static int db_get(void *arg, struct pl_db *db, struct pl_err *err)
{
	struct pl_listen *l = arg;
	int r;

	pthread_mutex_lock(&l->db_lock);
	while (!l->db_nidle && l->db_open >= l->db_max)
		pthread_cond_wait(&l->db_freed, &l->db_lock);
	if (l->db_nidle) {
		*db = l->db_idle[--l->db_nidle];
		pthread_mutex_unlock(&l->db_lock);
		if (pl_db_usable(db))
			return 0;
		pl_db_close(db); /* dropped by the server: this place opens a new one */
	} else {
		l->db_open++;
		pthread_mutex_unlock(&l->db_lock);
	}
	if ((r = pl_session_open_db(l->cfg, db, err))) {
		pthread_mutex_lock(&l->db_lock);
		l->db_open--;
		pthread_cond_signal(&l->db_freed);
		pthread_mutex_unlock(&l->db_lock);
		return r;
	}
	db->prepare = 1; /* kept for the listener's life: each statement is planned once */
	return 0;
}

/* A connection back: kept when it is still up, else its place is free for a new one. */
static void db_put(void *arg, struct pl_db *db)
{
	struct pl_listen *l = arg;

	pl_db_rollback(db); /* never a transaction left open into another request */
	if (db->conn && !pl_db_alive(db))
		pl_db_close(db);
	pthread_mutex_lock(&l->db_lock);
	if (db->conn)
		l->db_idle[l->db_nidle++] = *db;
	else
		l->db_open--;
	pthread_cond_signal(&l->db_freed);
	pthread_mutex_unlock(&l->db_lock);
}

/* --- workers: at most --threads sessions, each serving one request at a time ------------- */

/*
 * A session for one request: an idle one (its database connection and curl handle kept from
 * the last request), else a new one while there are fewer than --threads, else wait for one.
 */
static struct worker *worker_get(struct pl_listen *l)
{
	struct pl_err err = PL_ERR_INIT;
	struct worker *w;

	pthread_mutex_lock(&l->pool_lock);
	while (!l->idle && l->nworkers >= l->o.threads)
		pthread_cond_wait(&l->freed, &l->pool_lock);
	if ((w = l->idle)) {
		l->idle = w->idle_next;
		pthread_mutex_unlock(&l->pool_lock);
		return w;
	}
	l->nworkers++;
	pthread_mutex_unlock(&l->pool_lock);
	w = pl_xcalloc(1, sizeof(*w));
	pl_session_init(&w->s, l->cfg);
	w->s.lender = &l->lender;
	if (!l->o.forward_to && !pl_http_init(&w->sikka, l->cfg, &err)) {
		w->has_sikka = 1;
		w->s.curl = w->sikka.curl;
	}
	if (l->o.forward_to && !pl_http_init(&w->fwd, l->cfg, &err))
		w->has_fwd = 1;
	pthread_mutex_lock(&l->pool_lock);
	w->next = l->workers;
	l->workers = w;
	pthread_mutex_unlock(&l->pool_lock);
	return w;
}

static void worker_put(struct pl_listen *l, struct worker *w)
{
	pl_db_rollback(&w->s.db);
	pl_session_idle(&w->s); /* its database connection back to the pool */
	pthread_mutex_lock(&l->pool_lock);
	w->idle_next = l->idle;
	l->idle = w;
	pthread_cond_signal(&l->freed);
	pthread_mutex_unlock(&l->pool_lock);
}

static void worker_free(struct worker *w)
{
	pl_session_release(&w->s);
	if (w->has_sikka)
		pl_http_release(&w->sikka);
	if (w->has_fwd)
		pl_http_release(&w->fwd);
	free(w);
}

/*
 * A long-running session: a connection the database dropped (a restart) is opened again on the
 * next request (db_get), rather than once per process as a command does.
 */
static void fresh_session(struct worker *w)
{
	w->s.reconnected = 0;
	w->s.upstream_s = 0;
	w->s.db_s = 0;
	if (pl_random_hex(w->s.request_id, 16) < 0)
		w->s.request_id[0] = '\0';
}

/* --- answers ------------------------------------------------------------------------------- */

static enum MHD_Result answer(struct pl_listen *l, struct MHD_Connection *conn, int status,
                              const char *type, const char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
	    (l->stopping &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	r = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result answer_json(struct pl_listen *l, struct MHD_Connection *conn, int status,
                                   const char *body)
{
	return answer(l, conn, status, "application/json", body, strlen(body));
}

/* {"error":"..."}: our own text, or an error message (valid UTF-8). */
static enum MHD_Result answer_error(struct pl_listen *l, struct MHD_Connection *conn, int status,
                                    const char *msg)
{
	json_t *doc = pl_json_x(json_pack("{s:s}", "error", msg));
	char *text = pl_json_dump(doc);
	enum MHD_Result r = answer_json(l, conn, status, text);

	free(text);
	json_decref(doc);
	return r;
}

/* --- the log line -------------------------------------------------------------------------- */

static void now_iso(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Text from a request, made fit for a log line: safe characters only, cut. */
static void safe_copy(char *out, size_t size, const char *s)
{
	size_t n = 0;

	for (; s && *s && n + 1 < size; s++)
		out[n++] = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		            (*s >= '0' && *s <= '9') || strchr("._:-/", *s))
		               ? *s
		               : '_';
	out[n] = '\0';
}

struct exchange {
	struct pl_listen_event ev;
	char call_id[65], path[65];
	struct pl_buf tools;
	int upstream_errors;
	double upstream_s; /* the session's, or the relay's */
	double database_s; /* the session's */
};

static void exchange_init(struct exchange *x, const char *method, const char *url)
{
	memset(x, 0, sizeof(*x));
	x->tools = (struct pl_buf)PL_BUF_INIT;
	safe_copy(x->path, sizeof(x->path), url);
	x->ev.method = method;
	x->ev.path = x->path;
}

/* The tool names and call id of a message, for the log (canonical names only). */
static void exchange_msg(struct exchange *x, const struct pl_vapi_msg *m)
{
	if (m->call_id) {
		safe_copy(x->call_id, sizeof(x->call_id), m->call_id);
		x->ev.call_id = x->call_id;
	}
	for (size_t i = 0; i < m->ncalls && i < LOG_TOOLS_MAX; i++) {
		const struct pl_tool *t = pl_tool_find(m->calls[i].name);

		pl_buf_addf(&x->tools, "%s%s", i ? "," : "", t ? t->name : "unknown");
	}
	if (m->ncalls > LOG_TOOLS_MAX)
		pl_buf_adds(&x->tools, ",...");
}

/* One line of the log, from any serving thread: the log sees them one at a time. */
static void emit(struct pl_listen *l, const struct pl_listen_event *ev)
{
	if (!l->o.log)
		return;
	pthread_mutex_lock(&l->lock);
	l->o.log(ev, l->o.arg);
	pthread_mutex_unlock(&l->lock);
}

static void exchange_end(struct pl_listen *l, struct req *q, struct exchange *x, int status,
                         int outcome, const char *reason)
{
	double seconds = pl_monotonic() - q->t0;

	now_iso(x->ev.time);
	x->ev.status = status;
	x->ev.outcome = outcomes[outcome];
	x->ev.reason = reason;
	x->ev.tools = x->tools.buf;
	x->ev.ms = seconds * 1000;
	x->ev.upstream_ms = x->upstream_s * 1000;
	x->ev.database_ms = x->database_s * 1000;
	observe(&l->m, seconds, x->upstream_errors);
	emit(l, &x->ev);
	pl_buf_release(&x->tools);
}

/* --- authentication ------------------------------------------------------------------------ */

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* The request's credentials, for pl_listen_auth_headers and pl_listen_auth_body. */
static struct pl_listen_creds creds(struct MHD_Connection *conn)
{
	struct pl_listen_creds c = {header(conn, "x-vapi-secret"),
	                            header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
	                            header(conn, "x-signature"), header(conn, "x-timestamp")};

	return c;
}

/*
 * The HMAC over the body (when the headers carried one), then the signature recorded as
 * accepted: a second use within the window is a replay. *unavailable when the database could
 * not say (the request is not run).
 */
static const char *check_body(struct pl_listen *l, struct worker *w, struct MHD_Connection *conn,
                              struct req *q, int *unavailable)
{
	struct pl_listen_creds c = creds(conn);
	const char *params[2], *why;
	struct pl_db_res res = PL_DB_RES_INIT;
	struct pl_err err = PL_ERR_INIT;
	struct pl_db *db;
	int r, fresh;

	*unavailable = 0;
	if ((why = pl_listen_auth_body(l->secret, &c, q->body.buf, q->body.len, &q->authn)))
		return why;
	if (!q->authn.hmac)
		return NULL;
	params[0] = q->authn.signature;
	params[1] = c.timestamp;
	if ((r = pl_session_db(&w->s, &db, &err)) ||
	    (r = pl_db_query(db, &res,
	                     "INSERT INTO vapi_webhook_signatures (signature, signed_at)"
	                     " VALUES ($1, to_timestamp($2::bigint)) ON CONFLICT DO NOTHING"
	                     " RETURNING 1",
	                     2, params, &err))) {
		*unavailable = 1;
		return "the database is unavailable";
	}
	fresh = pl_db_rows(&res) == 1;
	pl_db_res_clear(&res);
	if (!fresh)
		return "replayed signature";
	if (++w->accepted % PRUNE_EVERY == 1) {
		char window[16];
		const char *p[1] = {window};

		snprintf(window, sizeof(window), "%d", 2 * PL_LISTEN_SKEW);
		if (pl_db_query(db, NULL,
		                "DELETE FROM vapi_webhook_signatures"
		                " WHERE signed_at < now() - make_interval(secs => $1::int)",
		                1, p, &err)) {
			/* pruning waits for the next time */
		}
	}
	return NULL;
}

/* --- the endpoints ------------------------------------------------------------------------- */

/* The checks themselves, into l->health_status and l->health_body (under health_lock). */
static void health_check(struct pl_listen *l)
{
	struct worker *w = worker_get(l);
	struct pl_err err = PL_ERR_INIT;
	struct pl_store_health h;
	struct pl_db *db;
	int db_ok = 0, store_ok = 1;

	fresh_session(w);
	for (int attempt = 0; attempt < 2 && !db_ok; attempt++) {
		db_ok = !pl_session_db(&w->s, &db, &err) &&
		        !pl_db_query(db, NULL, "SELECT 1", 0, NULL, &err);
		if (!db_ok) {
			pl_db_close(&w->s.db);
			w->s.reconnected = 0;
		}
	}
	if (!l->o.forward_to) {
		memset(&h, 0, sizeof(h));
		store_ok = !pl_store_check(l->cfg, &h) && h.reachable && h.key_opens != 0;
	}
	worker_put(l, w);
	snprintf(l->health_body, sizeof(l->health_body), "{\"ok\":%s,\"database\":%s,\"store\":%s}",
	         db_ok && store_ok ? "true" : "false", db_ok ? "true" : "false",
	         l->o.forward_to ? "null"
	         : store_ok      ? "true"
	                         : "false");
	l->health_status = db_ok && store_ok ? 200 : 503;
}

/*
 * The checks at most once per HEALTH_TTL: a flood of /healthz (no credentials needed) costs one
 * check a second, not one session from the pool and one call to the store each; those that
 * come while a check runs wait for its answer.
 */
static enum MHD_Result healthz(struct pl_listen *l, struct MHD_Connection *conn)
{
	char body[sizeof(l->health_body)];
	double now;
	int status;

	pthread_mutex_lock(&l->health_lock);
	now = pl_monotonic();
	if (!l->health_status || now - l->health_at >= HEALTH_TTL) {
		health_check(l);
		l->health_at = pl_monotonic();
	}
	status = l->health_status;
	memcpy(body, l->health_body, sizeof(body));
	pthread_mutex_unlock(&l->health_lock);
	return answer_json(l, conn, status, body);
}

static enum MHD_Result metrics(struct pl_listen *l, struct MHD_Connection *conn)
{
	char *text = pl_listen_metrics(l);
	enum MHD_Result r = answer(l, conn, 200, "text/plain; version=0.0.4", text, strlen(text));

	free(text);
	return r;
}

static int error_status(int code)
{
	switch (code) {
	case PL_EBADINPUT:
		return 400;
	case PL_ENOTFOUND:
		return 404;
	case PL_EDATABASE:
		return 503;
	case PL_EUPSTREAM:
		return 502;
	case PL_ETIMEOUT:
		return 504;
	default:
		return 500;
	}
}

/* --record: the exchange into the corpus; 0, or -1 when it could not be written. */
static int record(struct pl_listen *l, const char *call_id, const struct req *q, const char *resp,
                  size_t len)
{
	struct pl_err err = PL_ERR_INIT;

	if (!l->o.corpus)
		return 0;
	return pl_corpus_write(l->o.corpus, call_id, q->body.buf, q->body.len, resp, len, &err) ? -1
	                                                                                        : 0;
}

/* The library's own handlers: the same pl_vapi_handle as vapi tool invoke. */
static enum MHD_Result run_local(struct pl_listen *l, struct worker *w, struct MHD_Connection *conn,
                                 struct req *q, struct exchange *x)
{
	struct pl_vapi_ctx ctx = {0};
	struct pl_vapi_answer ans;
	struct pl_err err = PL_ERR_INIT;
	struct metrics *m = &l->m;
	enum MHD_Result res;
	int r, outcome, unrecorded;

	r = pl_vapi_handle(&w->s, &ctx, q->body.buf, q->body.len, &ans, &err);
	pl_db_rollback(&w->s.db);
	pl_session_idle(&w->s); /* the database connection back before the answer goes out */
	x->upstream_s = w->s.upstream_s;
	x->database_s = pl_session_db_seconds(&w->s);
	exchange_msg(x, &ans.msg);
	for (size_t i = 0; ans.out && i < ans.msg.ncalls; i++) {
		count(m, tool_index(m, ans.msg.calls[i].name), ans.out[i].result ? O_OK : O_ERROR);
		x->upstream_errors += ans.out[i].code == PL_EUPSTREAM;
	}
	if (ans.body) {
		outcome = r                           ? O_NOT_RECORDED
		          : ans.status == 0           ? O_OK
		          : ans.status == PL_EPARTIAL ? O_PARTIAL
		                                      : O_ERROR;
		res = answer(l, conn, 200, "application/json", ans.body, ans.len);
		unrecorded = record(l, ans.msg.call_id, q, ans.body, ans.len);
		exchange_end(l, q, x, 200, outcome,
		             r            ? pl_err_name(r)
		             : unrecorded ? "not written to --record"
		                          : NULL);
	} else if (!r) {
		outcome = ans.kind == PL_VAPI_ENDED ? O_ENDED : O_SKIPPED;
		count(m, tool_index(m, NULL), outcome);
		res = answer_json(l, conn, 200, "{}");
		exchange_end(l, q, x, 200, outcome, NULL);
	} else {
		int status = error_status(r);

		outcome = r == PL_EBADINPUT ? O_BAD_INPUT : status == 503 ? O_UNAVAILABLE : O_ERROR;
		if (!ans.msg.ncalls)
			count(m, tool_index(m, NULL), outcome);
		x->upstream_errors += r == PL_EUPSTREAM && !ans.out;
		res = answer_error(l, conn, status, err.msg);
		exchange_end(l, q, x, status, outcome, pl_err_name(r));
	}
	pl_vapi_answer_release(&ans);
	return res;
}

/* --forward-to: the body as received, signed again, and the backend's answer as it came. */
static enum MHD_Result forward(struct pl_listen *l, struct worker *w, struct MHD_Connection *conn,
                               struct req *q, struct exchange *x)
{
	static const enum pl_vapi_auth modes[] = {PL_VAPI_AUTH_SECRET, PL_VAPI_AUTH_SECRET,
	                                          PL_VAPI_AUTH_HMAC, PL_VAPI_AUTH_BEARER};
	struct pl_http_req hr = {0};
	struct pl_http_resp resp;
	struct pl_vapi_msg m;
	struct pl_err err = PL_ERR_INIT;
	enum MHD_Result res;
	char **headers;
	double t0;
	int r, unrecorded;

	if (!pl_vapi_parse(q->body.buf, q->body.len, &m, &err)) {
		exchange_msg(x, &m);
		for (size_t i = 0; i < m.ncalls; i++)
			count(&l->m, tool_index(&l->m, m.calls[i].name), O_FORWARDED);
		if (!m.ncalls)
			count(&l->m, tool_index(&l->m, NULL), O_FORWARDED);
	} else {
		memset(&m, 0, sizeof(m));
		count(&l->m, tool_index(&l->m, NULL), O_FORWARDED);
	}
	if (!w->has_fwd) {
		res = answer_error(l, conn, 502, "the backend could not be reached");
		exchange_end(l, q, x, 502, O_UNAVAILABLE, "upstream");
		pl_vapi_msg_release(&m);
		return res;
	}
	headers = pl_vapi_auth_headers(modes[l->o.auth       ? (int)l->o.auth
	                                     : q->authn.used ? (int)q->authn.used
	                                                     : 1],
	                               l->secret, q->body.buf, q->body.len);
	hr.method = "POST";
	hr.url = l->o.forward_to;
	hr.headers = (const char *const *)headers;
	hr.body = q->body.buf;
	hr.body_len = q->body.len;
	hr.idempotent = 0; /* a tool call may book: never sent twice */
	hr.peer = "the --forward-to backend";
	t0 = pl_monotonic();
	r = pl_http_send(&w->fwd, &hr, &resp, &err);
	x->upstream_s = pl_monotonic() - t0;
	pl_vapi_headers_free(headers);
	if (r) {
		x->upstream_errors++;
		res = answer_error(l, conn, 502, "the backend could not be reached");
		exchange_end(l, q, x, 502, O_UNAVAILABLE, "upstream");
	} else {
		x->upstream_errors += resp.status >= 500;
		res = answer(l, conn, (int)resp.status, "application/json", resp.body.buf,
		             resp.body.len);
		unrecorded =
		    resp.status == 200 && record(l, m.call_id, q, resp.body.buf, resp.body.len);
		exchange_end(l, q, x, (int)resp.status, O_FORWARDED,
		             unrecorded ? "not written to --record" : NULL);
	}
	pl_http_resp_release(&resp);
	pl_vapi_msg_release(&m);
	return res;
}

static enum MHD_Result refuse(struct pl_listen *l, struct MHD_Connection *conn, struct req *q,
                              struct exchange *x, int status, int outcome, const char *why)
{
	enum MHD_Result r;

	q->answered = 1; /* nothing more of it is read or run */
	count(&l->m, tool_index(&l->m, NULL), outcome);
	r = answer_error(l, conn, status,
	                 status == 401   ? "unauthorized"
	                 : status == 413 ? "the body is over 1 MiB"
	                                 : why);
	exchange_end(l, q, x, status, outcome, why);
	return r;
}

/*
 * A GET, a HEAD or another method: answered on its headers alone. A body it carries is never
 * read (MHD closes the connection after the answer), so that no request without credentials
 * makes the listener hold a body, or waits for one that does not come.
 */
static enum MHD_Result not_post(struct pl_listen *l, struct MHD_Connection *conn,
                                const char *method, const char *url)
{
	int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, "HEAD");

	if (get && !strcmp(url, "/healthz"))
		return healthz(l, conn);
	if (get && !strcmp(url, "/metrics"))
		return metrics(l, conn);
	return answer_error(l, conn, get ? 404 : 405,
	                    get ? "not found: POST Vapi's messages, GET /healthz or /metrics"
	                        : "method not allowed");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct pl_listen *l = cls;
	struct req *q = *con_cls;
	struct exchange x;
	struct worker *w;
	enum MHD_Result res;
	const char *why;
	int unavailable;

	(void)version;
	if (!q) {
		const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
		struct pl_listen_creds c;

		q = pl_xcalloc(1, sizeof(*q));
		q->t0 = pl_monotonic();
		pl_buf_init(&q->body, PL_VAPI_MAX_BODY);
		*con_cls = q;
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return not_post(l, conn, method, url); /* its body, if any, is never read */
		q->post = 1;
		in_flight(&l->m, 1);
		exchange_init(&x, method, url);
		if (cl && strtoull(cl, NULL, 10) > PL_VAPI_MAX_BODY)
			return refuse(l, conn, q, &x, 413, O_TOO_LARGE, "over 1 MiB");
		c = creds(conn);
		if ((why = pl_listen_auth_headers(l->o.auth, l->secret, &c, time(NULL), &q->authn)))
			return refuse(l, conn, q, &x, 401, O_REFUSED, why);
		pl_buf_release(&x.tools);
		return MHD_YES;
	}
	if (!q->post || q->answered) { /* answered on its headers already */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!q->too_large && pl_buf_add(&q->body, upload_data, *upload_data_size) < 0) {
			q->too_large = 1;
			pl_buf_release(&q->body);
		}
		if (q->too_large && (q->body.len += *upload_data_size) > MAX_DISCARD)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&l->m.lock);
	if (!l->m.closing) {
		q->running = 1;
		l->m.running++;
	}
	pthread_mutex_unlock(&l->m.lock);
	if (!q->running)
		return MHD_NO; /* the listener stops: closed unanswered, never run */
	exchange_init(&x, method, url);
	if (q->too_large)
		return refuse(l, conn, q, &x, 413, O_TOO_LARGE, "over 1 MiB");
	w = worker_get(l);
	fresh_session(w);
	if ((why = check_body(l, w, conn, q, &unavailable))) {
		x.database_s = pl_session_db_seconds(&w->s); /* an HMAC's signature, recorded */
		res = refuse(l, conn, q, &x, unavailable ? 503 : 401,
		             unavailable ? O_UNAVAILABLE : O_REFUSED, why);
	} else if (l->o.forward_to) {
		pl_session_idle(&w->s); /* the relay needs no database connection */
		res = forward(l, w, conn, q, &x);
	} else {
		res = run_local(l, w, conn, q, &x);
	}
	worker_put(l, w);
	return res;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct pl_listen *l = cls;
	struct req *q = *con_cls;

	(void)conn;
	(void)toe;
	if (!q)
		return;
	if (q->post)
		in_flight(&l->m, -1);
	if (q->running) {
		pthread_mutex_lock(&l->m.lock);
		l->m.running--;
		pthread_mutex_unlock(&l->m.lock);
	}
	pl_buf_release(&q->body);
	free(q);
	*con_cls = NULL;
}

/* --- connections: at most --max-connections open ------------------------------------------ */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct pl_listen *l = cls;

	(void)conn;
	(void)socket_context;
	pthread_mutex_lock(&l->m.lock);
	l->m.connections += toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
	pthread_mutex_unlock(&l->m.lock);
}

/*
 * Each connection costs a thread (and, before its credentials can be judged, up to a 1 MiB
 * body): past --max-connections a new one is closed at once, before a byte of it is read, and
 * logged (at most once a second; /metrics counts them all). Behind a tunnel every client is
 * the same address, so the limit is on connections, not on clients.
 */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct pl_listen *l = cls;
	struct pl_listen_event ev;
	double now;
	int full, log = 0;

	(void)addr;
	(void)addrlen;
	pthread_mutex_lock(&l->m.lock);
	full = l->m.connections >= l->o.max_connections;
	if (full) {
		l->m.connections_refused++;
		now = pl_monotonic();
		if (!l->m.refused_logged || now - l->m.refused_logged >= 1) {
			l->m.refused_logged = now;
			log = 1;
		}
	}
	pthread_mutex_unlock(&l->m.lock);
	if (log) {
		memset(&ev, 0, sizeof(ev));
		now_iso(ev.time);
		ev.method = "-";
		ev.path = "-";
		ev.tools = "";
		ev.outcome = "refused";
		ev.reason = "over --max-connections";
		emit(l, &ev);
	}
	return full ? MHD_NO : MHD_YES;
}

/* --- start and stop ------------------------------------------------------------------------ */

int pl_listen_start(struct pl_config *cfg, const struct pl_listen_opts *o, struct pl_listen **out,
                    struct pl_err *err)
{
	const char *secret = pl_config_get(cfg, "VAPI_WEBHOOK_SECRET");
	struct addrinfo hints = {0}, *ai = NULL;
	const union MHD_DaemonInfo *info;
	struct pl_listen *l;
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC;
	char port[8];
	int r;

	*out = NULL;
	if (!secret) {
		pl_err_set(err, PL_ECONFIG, "VAPI_WEBHOOK_SECRET is not set");
		return pl_err_hint(err, "export the secret Vapi sends (the assistant's server "
		                        "secret): every request is checked against it");
	}
	if (o->forward_to && (r = pl_http_check_url(o->forward_to, "--forward-to", err)))
		return r;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", o->port);
	if ((r = getaddrinfo(o->bind, port, &hints, &ai)) || !ai) {
		pl_err_set(err, PL_EUSAGE, "--bind %s is not an address here (%s)", o->bind,
		           gai_strerror(r));
		return err->code;
	}
	l = pl_xcalloc(1, sizeof(*l));
	l->cfg = cfg;
	l->o = *o;
	l->secret = secret;
	l->listen_fd = -1;
	metrics_init(&l->m);
	if (l->o.threads < 1)
		l->o.threads = 1;
	if (l->o.max_connections < 1)
		l->o.max_connections = PL_LISTEN_DEFAULT_MAX_CONNECTIONS;
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->health_lock, NULL);
	pthread_mutex_init(&l->pool_lock, NULL);
	pthread_cond_init(&l->freed, NULL);
	l->db_max = l->o.threads < PL_LISTEN_DB_MAX ? l->o.threads : PL_LISTEN_DB_MAX;
	l->db_idle = pl_xcalloc((size_t)l->db_max, sizeof(*l->db_idle));
	pthread_mutex_init(&l->db_lock, NULL);
	pthread_cond_init(&l->db_freed, NULL);
	l->lender.get = db_get;
	l->lender.put = db_put;
	l->lender.arg = l;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	l->d = MHD_start_daemon(flags, (uint16_t)o->port, on_accept, l, on_request, l,
	                        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED,
	                        on_completed, l, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
	                        MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
	                        /* on_accept's limit; MHD's own one above it, in case */
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned)l->o.max_connections + 1,
	                        MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!l->d) {
		int e = errno;

		pthread_cond_destroy(&l->freed);
		pthread_mutex_destroy(&l->pool_lock);
		pthread_mutex_destroy(&l->lock);
		pthread_mutex_destroy(&l->health_lock);
		pthread_cond_destroy(&l->db_freed);
		pthread_mutex_destroy(&l->db_lock);
		free(l->db_idle);
		free(l->m.req);
		free(l);
		pl_err_set(err, PL_ECONFIG, "cannot listen on %s port %d: %s", o->bind, o->port,
		           e ? strerror(e) : "refused");
		return pl_err_hint(err, "choose another --port, or --port 0 for a free one");
	}
	info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
	l->port = info ? info->port : o->port;
	*out = l;
	return 0;
}

int pl_listen_port(const struct pl_listen *l)
{
	return l->port;
}

void pl_listen_quiesce(struct pl_listen *l)
{
	if (l->stopping)
		return;
	l->stopping = 1;
	l->listen_fd = MHD_quiesce_daemon(l->d);
	/* Refuse new connections at once (the socket itself is closed after the threads end). */
	if (l->listen_fd >= 0 && shutdown(l->listen_fd, SHUT_RDWR) < 0) {
		/* connections then wait in the backlog until the stop, and are reset */
	}
}

void pl_listen_stop(struct pl_listen *l)
{
	struct worker *w, *next;

	if (!l)
		return;
	MHD_stop_daemon(l->d);
	if (l->listen_fd >= 0)
		close(l->listen_fd);
	for (w = l->workers; w; w = next) {
		next = w->next;
		worker_free(w);
	}
	while (l->db_nidle > 0)
		pl_db_close(&l->db_idle[--l->db_nidle]);
	free(l->db_idle);
	pthread_cond_destroy(&l->db_freed);
	pthread_mutex_destroy(&l->db_lock);
	pthread_cond_destroy(&l->freed);
	pthread_mutex_destroy(&l->pool_lock);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->health_lock);
	pthread_mutex_destroy(&l->m.lock);
	free(l->m.req);
	free(l);
}
