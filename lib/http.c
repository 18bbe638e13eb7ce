#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
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
 * Everything a transfer needs, for one easy handle (also those of a multi batch). Not
 * CURLE_OK when libcurl refuses an option (one this build lacks, or out of memory): the
 * request must not leave half set up, without its timeouts or its certificate checks.
 */
static CURLcode setup_easy(struct pl_http *h, CURL *c, const struct pl_http_req *req,
                           struct curl_slist *headers, struct sink *sink, struct retry_hint *hint,
                           char *errbuf)
{
	CURLcode rc = CURLE_OK;

	SETOPT(rc, c, CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(rc, c, CURLOPT_URL, req->url);
	SETOPT(rc, c, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(rc, c, CURLOPT_NOSIGNAL, 1L);
	SETOPT(rc, c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	SETOPT(rc, c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	SETOPT(rc, c, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(rc, c, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(rc, c, CURLOPT_TCP_NODELAY, 1L);
	if (h->ca_bundle)
		SETOPT(rc, c, CURLOPT_CAINFO, h->ca_bundle);
	SETOPT(rc, c, CURLOPT_HTTPHEADER, headers);
	SETOPT(rc, c, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(rc, c, CURLOPT_WRITEDATA, sink);
	SETOPT(rc, c, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(rc, c, CURLOPT_HEADERDATA, hint);
	SETOPT(rc, c, CURLOPT_USERAGENT, "parlae");
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

struct slot {
	CURL *easy;
	struct curl_slist *headers;
	struct sink sink;
	struct retry_hint hint;
	char errbuf[CURL_ERROR_SIZE];
	struct pl_http_job *job;
	struct pl_http_job storage;
	int busy;
};

/* 0, or -1 with job->code and job->err set when libcurl would not take the request. */
static int start_slot(struct pl_http *h, CURLM *multi, struct slot *s)
{
	struct pl_http_job *job = s->job;
	CURLcode rc;
	CURLMcode mc;

	s->headers = header_list(job->req.headers);
	memset(&job->resp, 0, sizeof(job->resp));
	pl_buf_init(&job->resp.body, h->max_body);
	s->sink.body = &job->resp.body;
	s->sink.overflow = 0;
	s->hint.after_ms = -1;
	s->errbuf[0] = '\0';
	curl_easy_reset(s->easy);
	rc = setup_easy(h, s->easy, &job->req, s->headers, &s->sink, &s->hint, s->errbuf);
	if (rc == CURLE_OK) /* after the reset, which clears it */
		rc = curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
	if (rc != CURLE_OK) {
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
	curl_slist_free_all(s->headers);
	s->headers = NULL;
}

/* Hand a job that has ended (answered, failed, or never started) to done(); the slot is free. */
static void hand_over(struct slot *s, void (*done)(struct pl_http_job *, void *), void *arg)
{
	struct pl_http_job finished = *s->job;

	curl_slist_free_all(s->headers);
	s->headers = NULL;
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

int pl_http_run(struct pl_http *h, int concurrency, int (*next)(struct pl_http_job *, void *),
                void (*done)(struct pl_http_job *, void *), void *arg)
{
	CURLM *multi = curl_multi_init();
	struct slot *slots;
	int running = 0, more = 1, active = 0, r = 0;
	CURLMcode mc;

	if (!multi)
		return PL_EINTERNAL;
	if (concurrency < 1)
		concurrency = 1;
	slots = pl_xcalloc((size_t)concurrency, sizeof(*slots));
	for (int i = 0; i < concurrency; i++) {
		if (!(slots[i].easy = curl_easy_init())) {
			while (i-- > 0)
				curl_easy_cleanup(slots[i].easy);
			free(slots);
			curl_multi_cleanup(multi);
			return PL_EINTERNAL;
		}
		slots[i].job = &slots[i].storage;
	}
	if (curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)concurrency) !=
	    CURLM_OK) {
		r = PL_EINTERNAL;
		goto out;
	}
	for (;;) {
		CURLMsg *msg;
		int left;

		for (int i = 0; i < concurrency && more; i++) {
			if (slots[i].busy)
				continue;
			if (!fill_slot(h, multi, &slots[i], next, done, arg))
				more = 0;
			else
				active++;
		}
		if (!active)
			break;
		if ((mc = curl_multi_perform(multi, &running)) != CURLM_OK)
			goto broken;
		while ((msg = curl_multi_info_read(multi, &left))) {
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
			if ((mc = curl_multi_remove_handle(multi, s->easy)) != CURLM_OK)
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
					if (fill_slot(h, multi, s, next, done, arg))
						active++;
					else
						more = 0;
				}
				done(&finished, arg);
			}
			more = 1; /* done() may have queued more work (a retry, a fallback) */
		}
		if (active && (mc = curl_multi_poll(multi, NULL, 0, 100, NULL)) != CURLM_OK)
			goto broken;
	}
	goto out;
broken:
	/* libcurl's multi handle failed (out of memory, or worse): every job still in flight
	 * ends failed, through done(), and so does the run. */
	for (int i = 0; i < concurrency; i++) {
		struct slot *s = &slots[i];

		if (!s->busy)
			continue;
		curl_multi_remove_handle(multi, s->easy); /* best effort: the handle is failing */
		pl_err_clear(&s->job->err);
		s->job->code = pl_err_set(&s->job->err, PL_EINTERNAL,
		                          "the request to %s was cut off: libcurl: %s",
		                          s->job->req.peer, curl_multi_strerror(mc));
		hand_over(s, done, arg);
	}
	r = PL_EINTERNAL;
out:
	for (int i = 0; i < concurrency; i++)
		curl_easy_cleanup(slots[i].easy);
	free(slots);
	curl_multi_cleanup(multi);
	return r;
}
