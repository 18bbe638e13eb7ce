/*
 * vapi listen's request path, as lib/listen.c runs it: the credentials of a request's headers
 * and its body through pl_listen_auth (the decision listen.c makes, in its two steps), then,
 * when authenticated, the body through pl_vapi_handle with a session whose database is gone
 * (what the listener's handler reaches before it needs one: the parse and the dispatch), and
 * the answer the listener would make of it.
 *
 * The input: a first byte (its two low bits the --auth mode; bit 2: the harness signs the body
 * itself, so that a right HMAC meets any body), then header lines "Name: value" up to an empty
 * line, then the body. Checked: the decision equals a reference model written apart from it
 * (a wrong credential is always refused, a right one always accepted); a refusal is a fixed
 * phrase; no tool answers without its database; every answer made is valid UTF-8 and JSON.
 */
#include <errno.h>
#include <jansson.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "fuzz.h"
#include "json.h"
#include "listen_auth.h"
#include "session.h"
#include "utf8.h"
#include "vapi.h"
#include "vapi_handle.h"

#define SECRET "fuzz-listen-secret-0123456789"
#define NOW    ((time_t)1764600000) /* 2025-12-01T14:40:00Z; the seeds' x-timestamp is 1764600000 */

static const char *const phrases[] = {
    "no credentials",
    "no x-timestamp",
    "no x-signature",
    "x-timestamp is not a number",
    "x-timestamp outside 300 s",
    "no x-vapi-secret",
    "wrong x-vapi-secret",
    "no bearer token",
    "wrong bearer token",
    "bad signature",
    NULL,
};

struct request {
	char *secret, *authorization, *signature, *timestamp; /* NULL when absent */
	const char *body;
	size_t len;
};

/* The value of a header line, from after "name:" and its blanks to the line's end ("\r" off). */
static char *value_of(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name), end = n;

	if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
		return NULL;
	for (k++; k < n && (line[k] == ' ' || line[k] == '\t'); k++)
		;
	if (end > k && line[end - 1] == '\r')
		end--;
	return fuzz_cstr((const uint8_t *)line + k, end - k);
}

/* The headers (the first of a name counts, as MHD_lookup_connection_value gives it) and body. */
static void split(const uint8_t *data, size_t size, struct request *q)
{
	const char *p = (const char *)data, *end = p + size;
	static const char *const names[] = {"x-vapi-secret", "authorization", "x-signature",
	                                    "x-timestamp"};
	char **slots[] = {&q->secret, &q->authorization, &q->signature, &q->timestamp};

	memset(q, 0, sizeof(*q));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (n == 0 || (n == 1 && *p == '\r')) {
			p += n + 1;
			break;
		}
		for (int i = 0; i < 4; i++)
			if (!*slots[i])
				*slots[i] = value_of(p, n, names[i]);
		p += n + (nl ? 1 : 0);
	}
	q->body = p < end ? p : "";
	q->len = p < end ? (size_t)(end - p) : 0;
}

/* The reference: the contract's rule, written without the library's code. */
static int right_hmac(const struct request *q)
{
	char want[65], *end;
	long long t;

	if (!q->signature || !q->timestamp || strlen(q->timestamp) > 16)
		return 0;
	errno = 0;
	t = strtoll(q->timestamp, &end, 10);
	if (end == q->timestamp || *end || errno || t < NOW - 300 || t > NOW + 300)
		return 0;
	pl_vapi_sign(SECRET, q->timestamp, q->body, q->len, want);
	return strlen(q->signature) == 64 && !strcasecmp(want, q->signature);
}

static int model(enum pl_listen_auth mode, const struct request *q)
{
	const char *a = q->authorization;
	int has_token = a && !strncasecmp(a, "bearer ", 7);
	const char *token = has_token ? a + 7 + strspn(a + 7, " ") : NULL;
	int secret_ok = q->secret && !strcmp(q->secret, SECRET);
	int token_ok = token && !strcmp(token, SECRET);

	switch (mode) {
	case PL_LISTEN_AUTH_SECRET:
		return secret_ok;
	case PL_LISTEN_AUTH_BEARER:
		return token_ok;
	case PL_LISTEN_AUTH_HMAC:
		return right_hmac(q);
	default: /* any: at least one, and each one carried right */
		return (q->secret || token || q->signature) && (!q->secret || secret_ok) &&
		       (!token || token_ok) && (!q->signature || right_hmac(q));
	}
}

static void check_phrase(const char *why)
{
	for (size_t i = 0; phrases[i]; i++)
		if (!strcmp(why, phrases[i]))
			return;
	abort(); /* a refusal that is not one of the fixed phrases */
}

/* What the listener answers a message that passed: pl_vapi_handle, its database gone. */
static void handle(const struct request *q)
{
	static struct pl_config cfg;
	static struct pl_session s;
	static int ready;
	struct pl_vapi_ctx ctx = {0};
	struct pl_vapi_answer ans;
	struct pl_err err = PL_ERR_INIT;
	json_t *doc;
	int r;

	if (!ready) {
		pl_config_init(&cfg);
		pl_session_init(&s, &cfg);
		ready = 1;
	}
	s.reconnected = 1; /* lost, and not to be opened again: pl_session_db fails at once */
	r = pl_vapi_handle(&s, &ctx, q->body, q->len, &ans, &err);
	if (ans.msg.ncalls && ans.body)
		abort(); /* a tool answered without its database */
	if (ans.body) {
		if (!pl_utf8_valid(ans.body, ans.len) ||
		    !(doc = json_loadb(ans.body, ans.len, 0, NULL)))
			abort(); /* the reply is not JSON */
		json_decref(doc);
	} else if (r) {
		/* answer_error: {"error": message}; pl_json_x aborts on what jansson refuses. */
		if (!pl_utf8_valid(err.msg, strlen(err.msg)))
			abort();
		json_decref(pl_json_x(json_pack("{s:s}", "error", err.msg)));
	}
	/* Once the calls ran: the reply built of them, an error quoting each tool's name. */
	if (ans.msg.ncalls) {
		struct pl_vapi_outcome *out = pl_xcalloc(ans.msg.ncalls, sizeof(*out));
		char *text;
		json_t *reply;

		for (size_t i = 0; i < ans.msg.ncalls; i++) {
			struct pl_err e = PL_ERR_INIT;

			pl_err_set(&e, PL_EBADINPUT, "no tool named '%s'", ans.msg.calls[i].name);
			out[i].error = pl_xstrdup(e.msg);
			out[i].code = e.code;
		}
		reply = pl_vapi_reply(&ans.msg, out);
		text = pl_json_dump(reply);
		if (!pl_utf8_valid(text, strlen(text)) || !(doc = json_loads(text, 0, NULL)))
			abort();
		json_decref(doc);
		free(text);
		json_decref(reply);
		pl_vapi_outcomes_release(out, ans.msg.ncalls);
		free(out);
	}
	pl_vapi_answer_release(&ans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum pl_listen_auth mode;
	struct pl_listen_creds c;
	struct pl_listen_authn a;
	struct request q;
	const char *why;
	int sign, want;

	if (size < 1)
		return 0;
	mode = (enum pl_listen_auth)(data[0] & 3);
	sign = (data[0] & 4) != 0;
	split(data + 1, size - 1, &q);
	if (sign && q.signature && q.timestamp) {
		free(q.signature);
		q.signature = pl_xmalloc(65);
		pl_vapi_sign(SECRET, q.timestamp, q.body, q.len, q.signature);
	}
	c = (struct pl_listen_creds){q.secret, q.authorization, q.signature, q.timestamp};
	why = pl_listen_auth(mode, SECRET, &c, q.body, q.len, NOW, &a);
	want = model(mode, &q);
	if ((why == NULL) != want)
		abort(); /* accepted a wrong credential, or refused a right one */
	if (why) {
		check_phrase(why);
	} else {
		if (a.used == PL_LISTEN_AUTH_ANY || (mode && a.used != mode))
			abort(); /* accepted on no credential, or on another than --auth asked */
		if (a.hmac != (a.used == PL_LISTEN_AUTH_HMAC) ||
		    (a.hmac ? strcasecmp(a.signature, q.signature) != 0 : a.signature[0] != '\0'))
			abort(); /* the signature to record as accepted is not the one checked */
		handle(&q);
	}
	free(q.secret);
	free(q.authorization);
	free(q.signature);
	free(q.timestamp);
	return 0;
}
