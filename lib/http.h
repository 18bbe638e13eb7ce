/*
 * HTTP through libcurl, for every upstream: timeouts, bounded retries with jittered
 * exponential backoff (idempotent calls, and 429/503 with Retry-After for any call), capped
 * response bodies, TLS verification always on, and a -vv trace with secrets masked.
 */
#ifndef PL_HTTP_H
#define PL_HTTP_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "err.h"

struct pl_http {
	void *curl; /* one easy handle, reused so connections are kept alive */
	long connect_timeout_ms;
	long timeout_ms;
	int max_retries;
	double deadline; /* pl_monotonic() seconds by which pl_http_send ends, retries included; 0
	                    none */
	size_t max_body;
	char *ca_bundle;
	int borrowed; /* curl is another's (pl_http_borrow): not cleaned up here */
};

struct pl_http_req {
	const char *method; /* "GET" or "POST" */
	const char *url;
	const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
	const char *body;           /* may be NULL */
	size_t body_len;
	int idempotent;   /* safe to send again after a failure */
	const char *peer; /* "Sikka", for messages */
	/* Optional AWS SigV4 signing by libcurl: "aws:amz:REGION:SERVICE", the access key id as
	 * user and the secret key as password (never traced). */
	const char *aws_sigv4;
	const char *user;
	const char *password;
};

struct pl_http_resp {
	long status;
	struct pl_buf body;
	double seconds; /* of the last attempt */
	int attempts;
};

/*
 * Timeouts from the contract: 5 s to connect, 15 s in all (PARLAE_HTTP_TIMEOUT seconds,
 * fractions allowed); PARLAE_CA_BUNDLE names extra trusted roots. PL_ECONFIG for a bad value.
 */
int pl_http_init(struct pl_http *h, const struct pl_config *cfg, struct pl_err *err);
void pl_http_release(struct pl_http *h);

/*
 * Use curl, a handle kept by a long-running server between requests (its connections stay
 * open), instead of h's own, which is cleaned up; pl_http_release then leaves curl alone.
 */
void pl_http_borrow(struct pl_http *h, void *curl);

/*
 * Send req. 0 when a response arrived, whatever its status (the caller interprets it); a
 * 5xx to an idempotent request and a 429/503 are retried first (at most max_retries times).
 * PL_EUPSTREAM when the peer could not be reached or timed out after the retries, or sent
 * more than max_body bytes. resp is initialised here and released by the caller.
 */
int pl_http_send(struct pl_http *h, const struct pl_http_req *req, struct pl_http_resp *resp,
                 struct pl_err *err);
void pl_http_resp_release(struct pl_http_resp *resp);

/* One request of a batch, with its answer or its transport failure. */
struct pl_http_job {
	struct pl_http_req req; /* filled by next(); its strings belong to the caller */
	struct pl_http_resp resp;
	int code; /* 0 when an answer came (any status), else PL_EUPSTREAM with err */
	struct pl_err err;
	void *user; /* the caller's, carried from next() to done() */
};

/*
 * Many requests in flight at once through a curl multi handle: next() fills a job (return 0
 * when there is nothing to send now), done() receives each finished job (release job->resp
 * there) while the others are still running, and may queue more work for next(). The run ends
 * when nothing is in flight and next() has nothing. No retries: callers decide what to resend.
 * h->deadline as next() returns a job shortens that request's timeouts, as in pl_http_send.
 * Linux: the loop waits on epoll.
 */
int pl_http_run(struct pl_http *h, int concurrency, int (*next)(struct pl_http_job *, void *),
                void (*done)(struct pl_http_job *, void *), void *arg);

/*
 * A Retry-After header's value (trimmed) in milliseconds at most 10 s: delay-seconds or an
 * HTTP-date (a date not after now is 0); -1 when it is neither.
 */
long pl_http_retry_after(const char *value, time_t now);

/* Sleep ms milliseconds (resumed after a signal). */
void pl_sleep_ms(long ms);

/* A retry's pause: 250 ms, 500 ms, ... each scaled by a random factor in [0.5, 1.5). */
long pl_backoff_ms(int attempt);

/* Percent-encode s for a query string; the caller frees the result. */
char *pl_http_escape(const char *s);

/*
 * 0 when url is an absolute http:// or https:// URL with a host, as libcurl parses it; else
 * PL_EUSAGE saying that `what` (an option's name) must be one. The URL itself is not repeated:
 * it may carry credentials.
 */
int pl_http_check_url(const char *url, const char *what, struct pl_err *err);

/* Replace the values of secret or personal fields in JSON or form text by "***" (for traces). */
char *pl_http_mask(const char *text, size_t len);

#endif
