#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "encode.h"
#include "trace.h"
#include "utf8.h"
#include "banned.h"

#define DEFAULT_MAX_BODY   ((size_t)4 << 20)
#define MAX_RETRY_AFTER_MS 10000L

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!s)
		return 0;
	v = strtod(s, &end);
	if (end == s || *end || !(v > 0) || v > 3600)
		return -1;
	*out = v;
	return 0;
}

int pl_http_init(struct pl_http *h, const struct pl_config *cfg, struct pl_err *err)
{
	const char *ca = pl_config_get(cfg, "PARLAE_CA_BUNDLE");
	double total = 15;

	memset(h, 0, sizeof(*h));
	if (parse_seconds(pl_config_get(cfg, "PARLAE_HTTP_TIMEOUT"), &total) < 0) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_HTTP_TIMEOUT must be a number of seconds");
		return pl_err_hint(err, "for example PARLAE_HTTP_TIMEOUT=15 or 2.5");
	}
	if (ca && access(ca, R_OK) != 0)
		return pl_err_set(err, PL_ECONFIG, "PARLAE_CA_BUNDLE: cannot read %s", ca);
	pthread_once(&global_once, global_init);
	h->curl = curl_easy_init();
	if (!h->curl)
		return pl_err_set(err, PL_EINTERNAL, "cannot initialise libcurl");
	h->timeout_ms = (long)(total * 1000);
	h->connect_timeout_ms = h->timeout_ms < 5000 ? h->timeout_ms : 5000;
	h->max_retries = 2;
	h->max_body = DEFAULT_MAX_BODY;
	h->ca_bundle = ca ? pl_xstrdup(ca) : NULL;
	return 0;
}

void pl_http_release(struct pl_http *h)
{
	if (h->curl && !h->borrowed)
		curl_easy_cleanup(h->curl);
	free(h->ca_bundle);
	memset(h, 0, sizeof(*h));
}

void pl_http_borrow(struct pl_http *h, void *curl)
{
	if (h->curl && !h->borrowed)
		curl_easy_cleanup(h->curl);
	h->curl = curl;
	h->borrowed = 1;
}

int pl_http_check_url(const char *url, const char *what, struct pl_err *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int ok;

	if (!u)
		return pl_err_set(err, PL_EINTERNAL, "out of memory parsing %s", what);
	/* Without a default scheme, "host/path" is refused rather than taken as http. */
	ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host &&
	     (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	if (ok)
		return 0;
	pl_err_set(err, PL_EUSAGE, "%s must be an http(s) URL", what);
	return pl_err_hint(err, "give it as http://HOST[:PORT]/PATH or https://HOST/PATH");
}

void pl_http_resp_release(struct pl_http_resp *resp)
{
	pl_buf_wipe(&resp->body); /* answers carry keys */
}

char *pl_http_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct pl_buf b = PL_BUF_INIT;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~", c)) {
			pl_buf_addch(&b, (char)c);
		} else {
			char enc[3] = {'%', hex[c >> 4], hex[c & 15]};

			pl_buf_add(&b, enc, 3);
		}
	}
	return pl_buf_detach(&b, NULL);
}

/* Fields whose values never reach a trace: credentials and patient data. */
/* Fields whose values never reach a trace: credentials and patient data, by exact name... */
static const char *const masked_fields[] = {
    "secret_key", "app_key",    "code",    "key",   "password",    "token",      "SecretString",
    "Body",       "To",         "search",  "query", "number",      "summary",    "reason",
    "patient",    "cell",       "dob",     "notes", "patientInfo", "middlename", "description",
    "message",    "transcript", "content", NULL,
};

/* ...and by any name that contains one of these (homephone, address_line1, preferred_name). */
static const char *const masked_parts[] = {
    "phone", "name", "address", "birth", "email",  "zip",
    "city",  "_key", "Key",     "ssn",   "number", NULL,
};

static int is_masked(const char *name, size_t len)
{
	char key[64];

	for (size_t i = 0; masked_fields[i]; i++)
		if (strlen(masked_fields[i]) == len && !strncasecmp(masked_fields[i], name, len))
			return 1;
	if (len >= sizeof(key))
		return 1; /* a key this long is not one we know to be harmless */
	memcpy(key, name, len);
	key[len] = '\0';
	for (size_t i = 0; masked_parts[i]; i++)
		if (strcasestr(key, masked_parts[i]))
			return 1;
	return 0;
}

/* The end of a JSON string starting after its opening quote at i: the closing quote or len. */
static size_t string_end(const char *t, size_t len, size_t i)
{
	while (i < len && t[i] != '"')
		i += t[i] == '\\' ? 2 : 1;
	return i < len ? i : len;
}

/* Form and query text ("a=1&secret_key=..."): masked values become "***". */
static void mask_query(struct pl_buf *b, const char *t, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start = i;

		if (!(i == 0 || t[i - 1] == '&' || t[i - 1] == '?') ||
		    !isalpha((unsigned char)t[i])) {
			pl_buf_addch(b, t[i++]);
			continue;
		}
		while (i < len && (isalnum((unsigned char)t[i]) || t[i] == '_'))
			i++;
		pl_buf_add(b, t + start, i - start);
		if (i < len && t[i] == '=' && is_masked(t + start, i - start)) {
			pl_buf_adds(b, "=***");
			while (i < len && t[i] != '&' && t[i] != '"')
				i++;
		}
	}
}

/* How deep JSON inside JSON strings is unwrapped; deeper, such a string is masked whole. */
#define MASK_MAX_DEPTH 4

static void mask_json(struct pl_buf *b, const char *t, size_t len, int depth);

/* Whether the JSON string text (escaped, without its quotes) begins an object or an array. */
static int holds_json(const char *t, size_t len)
{
	size_t i = 0;

	while (i < len && (t[i] == ' ' || (t[i] == '\\' && i + 1 < len && strchr("nrt", t[i + 1]))))
		i += t[i] == ' ' ? 1 : 2;
	return i < len && (t[i] == '{' || t[i] == '[');
}

/*
 * A string that holds JSON ("arguments":"{\"query\":\"Ana Diaz\"}", a tool's result): its
 * value is masked as JSON of its own and written back as a string. q is its opening quote.
 */
static void mask_inner(struct pl_buf *b, const char *q, size_t qlen, int depth)
{
	json_t *v = depth < MASK_MAX_DEPTH ? json_loadb(q, qlen, JSON_DECODE_ANY, NULL) : NULL;
	json_t *masked_str = NULL;
	struct pl_buf inner = PL_BUF_INIT;
	char *text = NULL;

	if (v && json_is_string(v)) {
		mask_json(&inner, json_string_value(v), json_string_length(v), depth + 1);
		masked_str = json_stringn_nocheck(inner.buf, inner.len);
		text = masked_str ? json_dumps(masked_str, JSON_ENCODE_ANY) : NULL;
	}
	pl_buf_adds(b, text ? text : "\"***\"");
	free(text);
	json_decref(masked_str);
	json_decref(v);
	pl_buf_release(&inner);
}

/*
 * A scanner, not a parser: a string value whose key (JSON "key": or form key=) names a
 * masked field becomes "***", and so does such a field in a query inside any string (an
 * "href" that carries a key); a string that holds JSON is masked as JSON itself. It never
 * fails on malformed text; objects under a masked key are left to their own fields' names.
 */
static void mask_json(struct pl_buf *b, const char *t, size_t len, int depth)
{
	size_t i = 0;

	if (len && t[0] != '{' && t[0] != '[') {
		mask_query(b, t, len);
		return;
	}
	while (i < len) {
		size_t start, end, k;

		if (t[i] != '"') {
			pl_buf_addch(b, t[i++]);
			continue;
		}
		start = i + 1;
		end = string_end(t, len, start);
		if (end < len && holds_json(t + start, end - start)) {
			mask_inner(b, t + i, end + 1 - i, depth);
		} else {
			pl_buf_addch(b, '"');
			mask_query(b, t + start, end - start);
			if (end < len)
				pl_buf_addch(b, '"');
		}
		i = end + 1;
		for (k = i; k < len && t[k] == ' '; k++)
			;
		if (k >= len || t[k] != ':' || !is_masked(t + start, end - start))
			continue;
		for (k++; k < len && t[k] == ' '; k++)
			;
		if (k < len && t[k] == '"') {
			pl_buf_add(b, t + i, k - i);
			pl_buf_adds(b, "\"***\"");
			i = string_end(t, len, k + 1) + 1;
		}
	}
}

char *pl_http_mask(const char *t, size_t len)
{
	struct pl_buf b = PL_BUF_INIT;

	mask_json(&b, t, len, 0);
	return pl_buf_detach(&b, NULL);
}

static const char *const masked_headers[] = {"App-Key",
                                             "Request-Key",
                                             "Authorization",
                                             "X-Vapi-Secret",
                                             "x-signature",
                                             "X-Amz-Security-Token",
                                             NULL};

static void trace_request(const struct pl_http_req *req, int attempt)
{
	/* A query can carry a search for a patient: its values go through the same mask. */
	if (pl_trace_on(1)) {
		struct pl_buf url = PL_BUF_INIT;
		const char *q = strchr(req->url, '?');

		pl_buf_add(&url, req->url, q ? (size_t)(q + 1 - req->url) : strlen(req->url));
		if (q)
			mask_query(&url, q + 1, strlen(q + 1));
		pl_trace(1, "http: %s %s%s", req->method, url.buf, attempt ? " (retry)" : "");
		pl_buf_release(&url);
	}
	if (!pl_trace_on(2))
		return;
	for (const char *const *h = req->headers; h && *h; h++) {
		size_t n = strcspn(*h, ":");
		const char *value = *h + n + ((*h)[n] ? 1 : 0);
		int secret = 0;

		for (size_t i = 0; masked_headers[i]; i++)
			secret |= strlen(masked_headers[i]) == n &&
			          !strncasecmp(*h, masked_headers[i], n);
		value += strspn(value, " ");
		pl_trace(2, "http: > %.*s: %s", (int)n, *h, secret ? "***" : value);
	}
	if (req->body) {
		char *m = pl_http_mask(req->body, req->body_len);

		pl_trace(2, "http: > %s", m);
		free(m);
	}
}

static void trace_response(const struct pl_http_resp *resp)
{
	pl_trace(1, "http: < %ld (%.0f ms, %zu bytes)", resp->status, resp->seconds * 1000,
	         resp->body.len);
	if (pl_trace_on(2) && resp->body.len) {
		char *m = pl_http_mask(resp->body.buf, resp->body.len);

		pl_trace(2, "http: < %.*s", pl_utf8_cut(m, 1500), m);
		free(m);
	}
}

struct sink {
	struct pl_buf *body;
	int overflow;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;

	if (pl_buf_add(s->body, data, size * n) < 0) {
		s->overflow = 1;
		return 0;
	}
	return size * n;
}

struct retry_hint {
	long after_ms;
};

/*
 * A Retry-After value in milliseconds, capped: delay-seconds ("120") or an HTTP-date ("Wed, 21
 * Oct 2026 07:28:00 GMT", or the two obsolete forms, as curl_getdate reads them), a date in
 * the past being 0; -1 for anything else, which leaves the retry to the backoff.
 */
long pl_http_retry_after(const char *value, time_t now)
{
	size_t n = strspn(value, "0123456789");
	time_t when;

	if (n && !value[n]) {
		long v = n > 5 ? MAX_RETRY_AFTER_MS : strtol(value, NULL, 10) * 1000;

		return v > MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : v;
	}
	if (!*value || (when = curl_getdate(value, &now)) == -1)
		return -1;
	if (when <= now)
		return 0;
	return when - now > MAX_RETRY_AFTER_MS / 1000 ? MAX_RETRY_AFTER_MS
	                                              : (long)(when - now) * 1000;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct retry_hint *hint = arg;
	size_t len = size * n, vlen;
	const char *v;
	char value[128];

	if (len > 12 && !strncasecmp(data, "Retry-After:", 12)) {
		v = data + 12;
		vlen = len - 12;
		while (vlen && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		while (vlen && strchr(" \t\r\n", v[vlen - 1]))
			vlen--;
		if (vlen < sizeof(value)) {
			memcpy(value, v, vlen);
			value[vlen] = '\0';
			hint->after_ms = pl_http_retry_after(value, time(NULL));
		}
	}
	return len;
}

void pl_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0)
		;
}

long pl_backoff_ms(int attempt)
{
	unsigned char r;

	if (pl_random_bytes(&r, 1) < 0)
		r = 128; /* no randomness: the pause without its jitter, rather than no retry */
	return (long)(250.0 * (1 << attempt) * (0.5 + r / 256.0));
}

/* 429 means the request was not handled; a 503 from a gateway may come after the origin did. */
static int retryable_status(long status, int idempotent)
{
	if (status == 429)
		return 1;
	return idempotent && status >= 500;
}

/* Set one option unless an earlier one failed: the first failure is the one reported. */
#define SETOPT(rc, c, opt, val)                                                                    \
	do {                                                                                       \
		if ((rc) == CURLE_OK)                                                              \
			(rc) = curl_easy_setopt((c), (opt), (val));                                \
	} while (0)

/* A deadline (a tool call's budget) shortens the attempt to the time left. */
static CURLcode within_deadline(const struct pl_http *h, CURL *c)
{
	CURLcode rc = CURLE_OK;
	double left;
	long ms;

	if (!h->deadline)
		return CURLE_OK;
	left = h->deadline - pl_monotonic();
	ms = left > 0.1 ? (long)(left * 1000) : 100;
	if (ms < h->timeout_ms)
		rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
	if (rc == CURLE_OK && ms < h->connect_timeout_ms)
		rc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms);
	return rc;
}

/* Whether a retry after wait_ms still has time for an answer before the deadline. */
static int retry_fits(const struct pl_http *h, long wait_ms)
{
	return !h->deadline || pl_monotonic() + (double)wait_ms / 1000 + 0.5 < h->deadline;
}

/*
 * What every transfer of a handle shares: its timeouts, certificate checks and callbacks.
 * pl_http_send sets it after each reset; a slot of pl_http_run once, for all its requests.
 * Not CURLE_OK when libcurl refuses an option (one this build lacks, or out of memory): the
 * request must not leave half set up, without its timeouts or its certificate checks.
 */
static CURLcode setup_common(struct pl_http *h, CURL *c, struct sink *sink, struct retry_hint *hint,
                             char *errbuf)
{
	CURLcode rc = CURLE_OK;

	SETOPT(rc, c, CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(rc, c, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(rc, c, CURLOPT_NOSIGNAL, 1L);
	SETOPT(rc, c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	SETOPT(rc, c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	SETOPT(rc, c, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(rc, c, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(rc, c, CURLOPT_TCP_NODELAY, 1L);
	if (h->ca_bundle)
		SETOPT(rc, c, CURLOPT_CAINFO, h->ca_bundle);
	SETOPT(rc, c, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(rc, c, CURLOPT_WRITEDATA, sink);
	SETOPT(rc, c, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(rc, c, CURLOPT_HEADERDATA, hint);
	SETOPT(rc, c, CURLOPT_USERAGENT, "parlae");
	return rc;
}

/* What one request sets, on a handle with nothing else of a request's set (see reuse_slot). */
static CURLcode setup_request(CURL *c, const struct pl_http_req *req, struct curl_slist *headers)
{
	CURLcode rc = CURLE_OK;

	SETOPT(rc, c, CURLOPT_URL, req->url);
	SETOPT(rc, c, CURLOPT_HTTPHEADER, headers);
	/* libcurl signs every header it sends, so callers add none with an empty value. */
	if (req->aws_sigv4)
		SETOPT(rc, c, CURLOPT_AWS_SIGV4, req->aws_sigv4);
	if (req->user) {
		SETOPT(rc, c, CURLOPT_USERNAME, req->user);
		SETOPT(rc, c, CURLOPT_PASSWORD, req->password ? req->password : "");
	}
	/* A body goes with any method (Sikka's PUT and PATCH writebacks and its DELETE of a refresh
	 * key have one). */
	if (!strcmp(req->method, "POST") || req->body) {
		SETOPT(rc, c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		SETOPT(rc, c, CURLOPT_POSTFIELDSIZE_LARGE,
		       (curl_off_t)(req->body ? req->body_len : 0));
	}
	if (strcmp(req->method, "GET") && strcmp(req->method, "POST"))
		SETOPT(rc, c, CURLOPT_CUSTOMREQUEST, req->method);
	return rc;
}

/* Everything a transfer needs, for a handle just reset. */
static CURLcode setup_easy(struct pl_http *h, CURL *c, const struct pl_http_req *req,
                           struct curl_slist *headers, struct sink *sink, struct retry_hint *hint,
                           char *errbuf)
{
	CURLcode rc = setup_common(h, c, sink, hint, errbuf);

	return rc == CURLE_OK ? setup_request(c, req, headers) : rc;
}

/*
 * No answer: the rows of the exit-code mapping that are not an upstream's answer (an answer
 * is the upstream's module's to judge: Sikka's table is in sikka.c). A deadline that ran out
 * is a timeout (8), naming the setting; anything else is unreachable (6). attempts: 0 when
 * not counted.
 */
static int transport_error(const struct pl_http *h, const char *peer, CURLcode rc,
                           const char *errbuf, int attempts, struct pl_err *err)
{
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	char tries[32] = "";

	if (attempts)
		snprintf(tries, sizeof(tries), " (%d attempt%s)", attempts,
		         attempts > 1 ? "s" : "");
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		pl_err_set(err, PL_ETIMEOUT, "%s timed out: %s%s", peer, why, tries);
		return pl_err_hint(
		    err, "no answer within %g s: retry later, or raise PARLAE_HTTP_TIMEOUT",
		    (double)h->timeout_ms / 1000);
	}
	pl_err_set(err, PL_EUPSTREAM, "%s unreachable: %s%s", peer, why, tries);
	return pl_err_hint(err, "check the network and the URL of %s, then retry", peer);
}

static int setup_failed(const struct pl_http_req *req, CURLcode rc, struct pl_err *err)
{
	return pl_err_set(err, PL_EINTERNAL, "cannot set up the request to %s: libcurl: %s",
	                  req->peer, curl_easy_strerror(rc));
}

/* A header list of the request's headers; NULL only for none (running out of memory aborts). */
static struct curl_slist *header_list(const char *const *headers)
{
	struct curl_slist *list = NULL, *more;

	for (const char *const *p = headers; p && *p; p++) {
		if (!(more = curl_slist_append(list, *p)))
			abort(); /* out of memory, as in pl_xmalloc */
		list = more;
	}
	return list;
}

int pl_http_send(struct pl_http *h, const struct pl_http_req *req, struct pl_http_resp *resp,
                 struct pl_err *err)
{
	long backoff;
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc = CURLE_OK;
	int attempt;

	memset(resp, 0, sizeof(*resp));
	pl_buf_init(&resp->body, h->max_body);
	headers = header_list(req->headers);
	for (attempt = 0;; attempt++) {
		struct sink sink = {&resp->body, 0};
		struct retry_hint hint = {-1};
		CURL *c = h->curl;

		curl_easy_reset(c);
		pl_buf_reset(&resp->body);
		errbuf[0] = '\0';
		if ((rc = setup_easy(h, c, req, headers, &sink, &hint, errbuf)) != CURLE_OK ||
		    (rc = within_deadline(h, c)) != CURLE_OK) {
			curl_slist_free_all(headers);
			return setup_failed(req, rc, err);
		}
		trace_request(req, attempt);
		rc = curl_easy_perform(c);
		resp->attempts = attempt + 1;
		if (curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &resp->seconds) != CURLE_OK)
			resp->seconds = 0;
		if (sink.overflow) {
			curl_slist_free_all(headers);
			return pl_err_set(err, PL_EUPSTREAM,
			                  "%s sent a response larger than %zu bytes", req->peer,
			                  h->max_body);
		}
		if (rc == CURLE_OK && (rc = curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE,
		                                              &resp->status)) != CURLE_OK) {
			curl_slist_free_all(headers);
			return pl_err_set(err, PL_EINTERNAL, "no status from libcurl for %s: %s",
			                  req->peer, curl_easy_strerror(rc));
		}
		if (rc == CURLE_OK) {
			long wait;

			trace_response(resp);
			wait = hint.after_ms >= 0 ? hint.after_ms : pl_backoff_ms(attempt);
			if (attempt >= h->max_retries ||
			    !retryable_status(resp->status, req->idempotent) ||
			    !retry_fits(h, wait))
				break;
			pl_trace(1, "http: retrying in %ld ms%s", wait,
			         hint.after_ms >= 0 ? " (Retry-After)" : "");
			pl_sleep_ms(wait);
			continue;
		}
		pl_trace(1, "http: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
		if (attempt >= h->max_retries || !req->idempotent ||
		    !retry_fits(h, backoff = pl_backoff_ms(attempt)))
			break;
		pl_sleep_ms(backoff);
	}
	curl_slist_free_all(headers);
	if (rc != CURLE_OK)
		return transport_error(h, req->peer, rc, errbuf, attempt + 1, err);
	return 0;
}

/* --- many requests in flight from one process ---------------------------------------------- */

/*
 * libcurl's event-driven interface: epoll says which sockets are ready and
 * curl_multi_socket_action handles those alone (curl_multi_perform walked every transfer and
 * curl_multi_poll every socket, each round). libcurl says which sockets to watch, for what,
 * through on_socket, and when it must run even if none is ready (its timeouts, a transfer just
 * added) through on_timer.
 */

#define IDLE_MS 1000 /* the longest wait: libcurl's timeouts are then run, due or not */

/* What a slot's handle holds beyond the shared options, for the next request to undo. */
enum {
	SET_BODY = 1,   /* POSTFIELDS: the method stays POST until CURLOPT_HTTPGET */
	SET_CUSTOM = 2, /* CUSTOMREQUEST */
	SET_SHORT = 4,  /* timeouts shortened to a deadline */
	SET_AWS = 8,    /* AWS_SIGV4, and HTTPAUTH with it */
	SET_USER = 16,  /* USERNAME and PASSWORD */
};

struct slot {
	CURL *easy;
	int ready;                  /* set up since the last reset (setup_common) */
	int set;                    /* SET_*: the last request's own options */
	struct curl_slist *headers; /* the last request's, kept while the next has the same */
	CURLU *url;                 /* the last request's URL, parsed (see slot_url) */
	char *url_text;             /* its text, while it is the handle's */
	struct sink sink;
	struct retry_hint hint;
	char errbuf[CURL_ERROR_SIZE];
	struct pl_http_job *job;
	struct pl_http_job storage;
	int busy;
};

struct loop {
	CURLM *multi;
	int epfd;
	unsigned char *watched; /* by socket: what epoll watches it for (CURL_POLL_*), | WATCHED */
	size_t nwatched;
	double timer;  /* pl_monotonic() when libcurl's timeouts are due; 0 now, -1 none */
	int sys_errno; /* why epoll failed, for the "broken" path */
};

#define WATCHED 8

static void free_headers(struct curl_slist *list)
{
	for (struct curl_slist *p = list; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data)); /* a header can carry a secret */
	curl_slist_free_all(list);
}

/* Whether list holds exactly the headers of a request (then it is sent again as it is). */
static int same_headers(const struct curl_slist *list, const char *const *headers)
{
	const char *const *h = headers;

	for (; list && h && *h; list = list->next, h++)
		if (strcmp(list->data, *h))
			return 0;
	return !list && !(h && *h);
}

/*
 * A slot's URL, parsed once while its requests keep it (a replay's one target): libcurl then
 * copies the parsed form for each transfer instead of parsing the text again. A URL that does
 * not parse here goes to libcurl as text, to be refused there as it always was.
 */
static CURLcode slot_url(struct slot *s, const char *url)
{
	CURLcode rc;

	if (s->ready && s->url_text && !strcmp(s->url_text, url))
		return CURLE_OK;
	free(s->url_text);
	s->url_text = NULL;
	if (!s->url && !(s->url = curl_url()))
		return CURLE_OUT_OF_MEMORY;
	if (curl_url_set(s->url, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		rc = curl_easy_setopt(s->easy, CURLOPT_CURLU, NULL);
		return rc != CURLE_OK ? rc : curl_easy_setopt(s->easy, CURLOPT_URL, url);
	}
	/* No text beside it: libcurl would show the old one in its messages. */
	if ((rc = curl_easy_setopt(s->easy, CURLOPT_URL, NULL)) == CURLE_OK &&
	    (rc = curl_easy_setopt(s->easy, CURLOPT_CURLU, s->url)) == CURLE_OK)
		s->url_text = pl_xstrdup(url);
	return rc;
}

/*
 * A request on a slot's handle. Options persist on a handle between transfers (a reset is
 * what clears them): the shared ones are set once, and then only what a request has of its
 * own, after undoing what the previous request had and this one has not (its method, its
 * body, a deadline's shorter timeouts, its credentials). A handle not ready (new, after a
 * failure here, or after a transfer that connected: see finish_slot) is reset and set up whole.
 */
static CURLcode slot_request(struct pl_http *h, struct slot *s, const struct pl_http_req *req)
{
	CURL *c = s->easy;
	CURLcode rc = CURLE_OK;
	int body = !strcmp(req->method, "POST") || req->body;
	int custom = strcmp(req->method, "GET") && strcmp(req->method, "POST");

	if (!s->ready) {
		curl_easy_reset(c);
		rc = setup_common(h, c, &s->sink, &s->hint, s->errbuf);
		SETOPT(rc, c, CURLOPT_PRIVATE, s);
		s->set = 0;
	}
	if (rc == CURLE_OK)
		rc = slot_url(s, req->url);
	if (!s->ready || !same_headers(s->headers, req->headers)) {
		free_headers(s->headers);
		s->headers = header_list(req->headers);
		SETOPT(rc, c, CURLOPT_HTTPHEADER, s->headers);
	}
	if (body) {
		SETOPT(rc, c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		SETOPT(rc, c, CURLOPT_POSTFIELDSIZE_LARGE,
		       (curl_off_t)(req->body ? req->body_len : 0));
	} else if (s->set & SET_BODY) {
		SETOPT(rc, c, CURLOPT_POSTFIELDS, NULL);
		SETOPT(rc, c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
		SETOPT(rc, c, CURLOPT_HTTPGET, 1L);
	}
	if (custom)
		SETOPT(rc, c, CURLOPT_CUSTOMREQUEST, req->method);
	else if (s->set & SET_CUSTOM)
		SETOPT(rc, c, CURLOPT_CUSTOMREQUEST, NULL);
	if (req->aws_sigv4) {
		SETOPT(rc, c, CURLOPT_AWS_SIGV4, req->aws_sigv4);
	} else if (s->set & SET_AWS) {
		SETOPT(rc, c, CURLOPT_AWS_SIGV4, NULL);
		SETOPT(rc, c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC); /* the default */
	}
	if (req->user) {
		SETOPT(rc, c, CURLOPT_USERNAME, req->user);
		SETOPT(rc, c, CURLOPT_PASSWORD, req->password ? req->password : "");
	} else if (s->set & SET_USER) {
		SETOPT(rc, c, CURLOPT_USERNAME, NULL);
		SETOPT(rc, c, CURLOPT_PASSWORD, NULL);
	}
	if (h->deadline || (s->set & SET_SHORT)) {
		SETOPT(rc, c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
		SETOPT(rc, c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
		if (rc == CURLE_OK)
			rc = within_deadline(h, c);
	}
	if (rc != CURLE_OK) {
		curl_easy_reset(c); /* nothing half set stays */
		free_headers(s->headers);
		s->headers = NULL;
		free(s->url_text);
		s->url_text = NULL;
		s->ready = 0;
		return rc;
	}
	s->ready = 1;
	s->set = (body ? SET_BODY : 0) | (custom ? SET_CUSTOM : 0) | (h->deadline ? SET_SHORT : 0) |
	         (req->aws_sigv4 ? SET_AWS : 0) | (req->user ? SET_USER : 0);
	return CURLE_OK;
}

/* 0, or -1 with job->code and job->err set when libcurl would not take the request. */
static int start_slot(struct pl_http *h, CURLM *multi, struct slot *s)
{
	struct pl_http_job *job = s->job;
	CURLcode rc;
	CURLMcode mc;

	memset(&job->resp, 0, sizeof(job->resp));
	pl_buf_init(&job->resp.body, h->max_body);
	s->sink.body = &job->resp.body;
	s->sink.overflow = 0;
	s->hint.after_ms = -1;
	s->errbuf[0] = '\0';
	if ((rc = slot_request(h, s, &job->req)) != CURLE_OK) {
		job->code = setup_failed(&job->req, rc, &job->err);
		return -1;
	}
	trace_request(&job->req, 0);
	if ((mc = curl_multi_add_handle(multi, s->easy)) != CURLM_OK) {
		job->code = pl_err_set(&job->err, PL_EINTERNAL,
		                       "cannot start the request to %s: libcurl: %s", job->req.peer,
		                       curl_multi_strerror(mc));
		return -1;
	}
	return 0;
}

static void finish_slot(struct pl_http *h, struct slot *s, CURLcode rc)
{
	struct pl_http_job *job = s->job;
	long connects = 1;

	/* libcurl counts a handle's retries on a fresh connection (a reused one found closed) until
	 * a reset and gives up after 5, over all its transfers: a transfer that connected, which
	 * every retry does, has the handle reset before the next request (keep-alive makes that
	 * rare). */
	if (curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects) != CURLE_OK || connects)
		s->ready = 0;
	job->resp.attempts = 1;
	if (curl_easy_getinfo(s->easy, CURLINFO_TOTAL_TIME, &job->resp.seconds) != CURLE_OK)
		job->resp.seconds = 0;
	pl_err_clear(&job->err);
	job->code = 0;
	if (s->sink.overflow) {
		job->code =
		    pl_err_set(&job->err, PL_EUPSTREAM, "%s sent a response larger than %zu bytes",
		               job->req.peer, h->max_body);
	} else if (rc != CURLE_OK) {
		job->code = transport_error(h, job->req.peer, rc, s->errbuf, 0, &job->err);
	} else if ((rc = curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &job->resp.status)) !=
	           CURLE_OK) {
		job->code = pl_err_set(&job->err, PL_EINTERNAL, "no status from libcurl for %s: %s",
		                       job->req.peer, curl_easy_strerror(rc));
	} else {
		trace_response(&job->resp);
	}
}

/* Hand a job that has ended (answered, failed, or never started) to done(); the slot is free. */
static void hand_over(struct slot *s, void (*done)(struct pl_http_job *, void *), void *arg)
{
	struct pl_http_job finished = *s->job;

	s->busy = 0;
	done(&finished, arg);
}

/*
 * The next job into the free slot s: 1 when one is in flight there, 0 when next() has none.
 * A job libcurl will not take ends at once, through done(), and the slot takes the next.
 */
static int fill_slot(struct pl_http *h, CURLM *multi, struct slot *s,
                     int (*next)(struct pl_http_job *, void *),
                     void (*done)(struct pl_http_job *, void *), void *arg)
{
	for (;;) {
		memset(s->job, 0, sizeof(*s->job));
		if (!next(s->job, arg))
			return 0;
		if (start_slot(h, multi, s) == 0) {
			s->busy = 1;
			return 1;
		}
		hand_over(s, done, arg);
	}
}

/* libcurl's CURLMOPT_SOCKETFUNCTION: watch fd for what it says, or no longer. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *socketp)
{
	struct loop *l = arg;
	struct epoll_event ev;
	int op;

	(void)easy;
	(void)socketp;
	if (fd < 0)
		return 0; /* libcurl never names a socket it has not got */
	if ((size_t)fd >= l->nwatched) {
		size_t n = (size_t)fd + 64;

		l->watched = pl_xrealloc(l->watched, n);
		memset(l->watched + l->nwatched, 0, n - l->nwatched);
		l->nwatched = n;
	}
	if (what == CURL_POLL_REMOVE) {
		l->watched[fd] = 0;
		/* ENOENT, EBADF: closed before (the kernel took it out of the set), or its number
		 * is now another file's, one never added. */
		if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT &&
		    errno != EBADF) {
			l->sys_errno = errno;
			return -1;
		}
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	ev.data.fd = fd;
	op = l->watched[fd] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	/* A socket closed without a REMOVE leaves its number to the next one: the set then has it
	 * still (EEXIST on an ADD) or no longer (ENOENT on a MOD). */
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0 &&
	    (errno != (op == EPOLL_CTL_ADD ? EEXIST : ENOENT) ||
	     epoll_ctl(l->epfd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) <
	         0)) {
		l->sys_errno = errno;
		return -1;
	}
	l->watched[fd] = (unsigned char)(WATCHED | (what & CURL_POLL_INOUT));
	return 0;
}

/*
 * libcurl's CURLMOPT_TIMERFUNCTION: -1 none, 0 at once, else in ms milliseconds. A millisecond
 * more, since libcurl rounds down, and a timeout run before it is due is not asked for again.
 */
static int on_timer(CURLM *multi, long ms, void *arg)
{
	struct loop *l = arg;

	(void)multi;
	l->timer = ms < 0 ? -1 : ms == 0 ? 0 : pl_monotonic() + (double)(ms + 1) / 1000;
	return 0;
}

/* How long epoll may wait: until libcurl's timer, and at most IDLE_MS. */
static int wait_ms(const struct loop *l)
{
	double left;

	if (l->timer < 0)
		return IDLE_MS;
	left = (l->timer - pl_monotonic()) * 1000;
	if (left <= 0)
		return 0;
	return left >= IDLE_MS ? IDLE_MS : (int)ceil(left);
}

/* One wait for ready sockets or libcurl's timer, and libcurl's work on what is due. */
static CURLMcode step(struct loop *l, struct epoll_event *events, int nevents)
{
	CURLMcode mc = CURLM_OK;
	int n, running;

	n = epoll_wait(l->epfd, events, nevents, wait_ms(l));
	if (n < 0) {
		if (errno == EINTR)
			return CURLM_OK;
		l->sys_errno = errno;
		return CURLM_INTERNAL_ERROR;
	}
	for (int i = 0; i < n && mc == CURLM_OK; i++) {
		int fd = events[i].data.fd, bits = 0;
		uint32_t ev = events[i].events;

		if (ev & EPOLLIN)
			bits |= CURL_CSELECT_IN;
		if (ev & EPOLLOUT)
			bits |= CURL_CSELECT_OUT;
		/* An error or a hang-up ends what the socket was watched for, as poll says it. */
		if ((ev & (EPOLLERR | EPOLLHUP)) && (size_t)fd < l->nwatched)
			bits |= l->watched[fd] & CURL_POLL_INOUT;
		mc = curl_multi_socket_action(l->multi, fd, bits, &running);
	}
	if (mc == CURLM_OK && (n == 0 || (l->timer >= 0 && pl_monotonic() >= l->timer))) {
		l->timer = -1; /* libcurl sets the next one, if any, from inside the call */
		mc = curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	return mc;
}

static int loop_init(struct loop *l, int concurrency)
{
	memset(l, 0, sizeof(*l));
	l->timer = -1;
	l->epfd = -1;
	if (!(l->multi = curl_multi_init()))
		return -1;
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)concurrency) !=
	        CURLM_OK ||
	    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l) != CURLM_OK ||
	    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l) != CURLM_OK)
		return -1;
	return 0;
}

/* After the easy handles: libcurl still closes sockets (and says so to on_socket) here. */
static void loop_release(struct loop *l)
{
	if (l->multi)
		curl_multi_cleanup(l->multi);
	if (l->epfd >= 0)
		close(l->epfd);
	free(l->watched);
}

int pl_http_run(struct pl_http *h, int concurrency, int (*next)(struct pl_http_job *, void *),
                void (*done)(struct pl_http_job *, void *), void *arg)
{
	struct loop l;
	struct slot *slots;
	struct epoll_event *events;
	int more = 1, active = 0, r = 0;
	CURLMcode mc = CURLM_OK;

	if (concurrency < 1)
		concurrency = 1;
	slots = pl_xcalloc((size_t)concurrency, sizeof(*slots));
	events = pl_xcalloc((size_t)concurrency, sizeof(*events));
	if (loop_init(&l, concurrency) < 0) {
		r = PL_EINTERNAL;
		goto out;
	}
	for (int i = 0; i < concurrency; i++) {
		if (!(slots[i].easy = curl_easy_init())) {
			r = PL_EINTERNAL;
			goto out;
		}
		slots[i].job = &slots[i].storage;
	}
	for (;;) {
		CURLMsg *msg;
		int left;

		for (int i = 0; i < concurrency && more; i++) {
			if (slots[i].busy)
				continue;
			if (!fill_slot(h, l.multi, &slots[i], next, done, arg))
				more = 0;
			else
				active++;
		}
		if (!active)
			break;
		if ((mc = step(&l, events, concurrency)) != CURLM_OK)
			goto broken;
		while ((msg = curl_multi_info_read(l.multi, &left))) {
			struct slot *s = NULL;
			CURLcode result;

			if (msg->msg != CURLMSG_DONE)
				continue;
			result = msg->data.result;
			if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s) !=
			        CURLE_OK ||
			    !s) {
				mc = CURLM_INTERNAL_ERROR;
				goto broken;
			}
			if ((mc = curl_multi_remove_handle(l.multi, s->easy)) != CURLM_OK)
				goto broken;
			finish_slot(h, s, result);
			{
				struct pl_http_job finished = *s->job;

				s->busy = 0;
				active--;
				/* Refill the slot before the caller's work on the answer, so that
				 * work overlaps the transfers still in flight instead of stalling
				 * them. */
				if (more) {
					if (fill_slot(h, l.multi, s, next, done, arg))
						active++;
					else
						more = 0;
				}
				done(&finished, arg);
			}
			more = 1; /* done() may have queued more work (a retry, a fallback) */
		}
	}
	goto out;
broken:
	/* libcurl's multi handle or epoll failed (out of memory, or worse): every job still in
	 * flight ends failed, through done(), and so does the run. */
	for (int i = 0; i < concurrency; i++) {
		struct slot *s = &slots[i];

		if (!s->busy)
			continue;
		curl_multi_remove_handle(l.multi, s->easy); /* best effort: the handle is failing */
		pl_err_clear(&s->job->err);
		if (l.sys_errno)
			s->job->code = pl_err_set(&s->job->err, PL_EINTERNAL,
			                          "the request to %s was cut off: epoll: %s",
			                          s->job->req.peer, strerror(l.sys_errno));
		else
			s->job->code = pl_err_set(&s->job->err, PL_EINTERNAL,
			                          "the request to %s was cut off: libcurl: %s",
			                          s->job->req.peer, curl_multi_strerror(mc));
		hand_over(s, done, arg);
	}
	r = PL_EINTERNAL;
out:
	for (int i = 0; i < concurrency; i++) {
		if (slots[i].easy)
			curl_easy_cleanup(slots[i].easy);
		free_headers(slots[i].headers);
		curl_url_cleanup(slots[i].url);
		free(slots[i].url_text);
	}
	loop_release(&l);
	free(slots);
	free(events);
	return r;
}
