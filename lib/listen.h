/*
 * vapi listen: Vapi's server URL served from the terminal, on libmicrohttpd, a thread per
 * connection. Every POST (any path) is authenticated with VAPI_WEBHOOK_SECRET, then either runs
 * through the one message handler (pl_vapi_handle, as vapi tool invoke and replay do) or is
 * relayed to --forward-to; GET /healthz and GET /metrics say how it goes. At most --threads
 * requests run at once, each with a session from a pool (a database connection and a curl
 * handle reused from one request to the next).
 * What several listeners behind one URL must share (the HMAC signatures already accepted, the
 * call logs) lives in PostgreSQL.
 */
#ifndef PL_LISTEN_H
#define PL_LISTEN_H

#include <stddef.h>

#include "config.h"
#include "corpus.h"
#include "err.h"
#include "listen_auth.h"

#define PL_LISTEN_DEFAULT_PORT            8787
#define PL_LISTEN_DEFAULT_THREADS         32
#define PL_LISTEN_DEFAULT_MAX_CONNECTIONS 256
#define PL_LISTEN_STOP_GRACE              5 /* seconds a stop waits for bodies still arriving */
#define PL_LISTEN_DB_MAX                  8 /* database connections at most, however many --threads */

/* One exchange, as the log line shows it: never a body, a header's value, a number or an
 * argument. */
struct pl_listen_event {
	char time[32];       /* ISO 8601 UTC with milliseconds */
	const char *call_id; /* letters, digits and ".:_-" only, or NULL when none */
	const char *tools;   /* canonical tool names, comma-separated, "" when none */
	const char *outcome; /* ok, partial, error, skipped, ended, forwarded, refused, ... */
	const char *reason;  /* a fixed phrase for a refusal or an error code's name, or NULL */
	const char *method, *path; /* the path cut to 64 bytes of safe characters */
	int status;                /* the HTTP status answered */
	double ms;                 /* from the request's headers to its answer */
	double upstream_ms; /* of ms, waiting on upstreams: Sikka and Twilio, or --forward-to */
	double database_ms; /* of ms, connecting to PostgreSQL and waiting on its statements */
};

struct pl_listen_opts {
	const char *bind;    /* an address ("127.0.0.1", "::1", "0.0.0.0") */
	int port;            /* 0: a free one, see pl_listen_port */
	int threads;         /* requests run at once: sessions in the pool */
	int max_connections; /* open at once, idle or not (0: the default); more are closed */
	enum pl_listen_auth auth;
	const char *forward_to;   /* relay to this URL instead of running the handlers */
	struct pl_corpus *corpus; /* --record: each exchange written there, or NULL */
	/* Called from the serving threads after each exchange (one at a time: serialised). */
	void (*log)(const struct pl_listen_event *ev, void *arg);
	void *arg;
};

struct pl_listen;

/*
 * Start serving. PL_ECONFIG when VAPI_WEBHOOK_SECRET is not set (named), PL_EUSAGE for an
 * address that is not one, PL_EIO when the port cannot be bound (in use, not allowed).
 */
int pl_listen_start(struct pl_config *cfg, const struct pl_listen_opts *o, struct pl_listen **out,
                    struct pl_err *err);

/* The port bound (the one picked for --port 0). */
int pl_listen_port(const struct pl_listen *l);

/* Stop taking new connections; requests already in flight go on. */
void pl_listen_quiesce(struct pl_listen *l);

/* Requests received and not yet answered. */
long pl_listen_in_flight(struct pl_listen *l);

/*
 * Whether a stop may close the connections now: no request runs (its body whole, its answer
 * not yet sent), nor, unless cut_uploads, is still being received. When so, no request starts
 * to run any more (one whose body arrives later is closed unanswered, never run). A request
 * whose body is slow to come must not hold a stop for ever: the caller cuts uploads after
 * PL_LISTEN_STOP_GRACE seconds.
 */
int pl_listen_drained(struct pl_listen *l, int cut_uploads);

/* Close every connection, stop the threads, release everything (after quiesce and a wait). */
void pl_listen_stop(struct pl_listen *l);

/* The Prometheus text of /metrics (for tests of the format); the caller frees it. */
char *pl_listen_metrics(struct pl_listen *l);

#endif
