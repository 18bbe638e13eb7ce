#include "sikka.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "utf8.h"
#include "banned.h"

#define SIKKA_MAX_DEPTH 32

int pl_sikka_init(struct pl_sikka *sk, const struct pl_config *cfg, struct pl_err *err)
{
	const char *base = pl_config_get(cfg, "SIKKA_API_URL");
	size_t n;
	int r;

	memset(sk, 0, sizeof(*sk));
	sk->app_id = pl_config_get(cfg, "SIKKA_APP_ID");
	sk->app_key = pl_config_get(cfg, "SIKKA_APP_KEY");
	if (!sk->app_id || !sk->app_key) {
		pl_err_set(err, PL_ECONFIG, "%s is not set",
		           !sk->app_id ? "SIKKA_APP_ID" : "SIKKA_APP_KEY");
		return pl_err_hint(
		    err,
		    "export the system's Sikka app credentials SIKKA_APP_ID and SIKKA_APP_KEY");
	}
	if ((r = pl_http_init(&sk->http, cfg, err)))
		return r;
	n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	sk->base = pl_xstrndup(base, n);
	return 0;
}

void pl_sikka_release(struct pl_sikka *sk)
{
	pl_http_release(&sk->http);
	free(sk->base);
	memset(sk, 0, sizeof(*sk));
}

/*
 * What an error answer from Sikka means, in ONE table: its exit code and what the message
 * tells the operator to do. parlae(1) shows it as "Sikka's answers" and
 * tests/0790-exit-codes.bats drives each row through the commands that talk to Sikka. The
 * rows that are not answers (unreachable: 6, no answer within PARLAE_HTTP_TIMEOUT: 8) are
 * the http module's, for every upstream alike. A row matches Sikka's error_code when it
 * names one, else the HTTP status; the first match wins.
 */
enum sikka_remedy {
	REMEDY_NONE,
	REMEDY_APP,       /* the app's credentials: SIKKA_APP_ID / SIKKA_APP_KEY */
	REMEDY_AUTHORIZE, /* the practice's authorization: sikka oauth-url again */
	REMEDY_ROTATE,    /* the practice's request key: secrets rotate --force */
	REMEDY_EITHER,    /* a 401 or 403 without a known code: either of the first two */
};

static const struct sikka_error {
	const char *api; /* Sikka's error_code, or NULL for any */
	long lo, hi;     /* the HTTP statuses of a row without api */
	int code;
	enum sikka_remedy remedy;
	const char *hint; /* for a row without a remedy: what to do */
} sikka_errors[] = {
    {"API2003", 0, 0, PL_ECONFIG, REMEDY_APP, NULL},
    {"API2007", 0, 0, PL_ECONFIG, REMEDY_AUTHORIZE, NULL},
    {"API1004", 0, 0, PL_ECONFIG, REMEDY_ROTATE, NULL},
    {"API1025", 0, 0, PL_ECONFIG, REMEDY_ROTATE, NULL},
    {"API1020", 0, 0, PL_EBADINPUT, REMEDY_NONE, NULL},
    {"API1026", 0, 0, PL_EBADINPUT, REMEDY_NONE, NULL},
    {"API2017", 0, 0, PL_EUPSTREAM, REMEDY_NONE,
     "the practice's Sikka SPU is offline: ask the office to start it"},
    {"API2010", 0, 0, PL_EUPSTREAM, REMEDY_NONE,
     "the practice's data has not reached Sikka yet: retry later"},
    {NULL, 401, 401, PL_ECONFIG, REMEDY_EITHER, NULL},
    {NULL, 403, 403, PL_ECONFIG, REMEDY_EITHER, NULL},
    {NULL, 404, 404, PL_ENOTFOUND, REMEDY_NONE, NULL},
    {NULL, 429, 429, PL_EUPSTREAM, REMEDY_NONE, "Sikka is limiting parlae's requests: retry later"},
    {NULL, 0, 999, PL_EUPSTREAM, REMEDY_NONE, NULL},
};

static const struct sikka_error *sikka_error(const char *api, long status)
{
	size_t i, n = sizeof(sikka_errors) / sizeof(sikka_errors[0]);

	for (i = 0; i < n - 1; i++)
		if (sikka_errors[i].api
		        ? !strcmp(api, sikka_errors[i].api)
		        : status >= sikka_errors[i].lo && status <= sikka_errors[i].hi)
			break;
	return &sikka_errors[i];
}

int pl_sikka_check(struct pl_sikka *sk, const char *call, long status, const char *body, size_t len,
                   struct pl_err *err)
{
	struct pl_err perr = PL_ERR_INIT;
	const struct sikka_error *e;
	const char *account = sk->account ? sk->account : "ACCOUNT";
	json_t *doc = NULL, *env;
	char b1[32], b2[32];
	const char *api = "", *msg = "";
	int cut;

	sk->last_status = status;
	sk->last_code[0] = '\0';
	if (status >= 200 && status < 300)
		return 0;
	if (!pl_json_parse(body, len, len + 1, SIKKA_MAX_DEPTH, "response", &doc, &perr)) {
		env = json_is_array(doc) ? json_array_get(doc, 0) : doc;
		api = pl_json_text0(env, "error_code", b1, sizeof(b1));
		msg = pl_json_text0(env, "short_message", b2, sizeof(b2));
		if (!*msg)
			msg = pl_json_text0(env, "long_message", b2, sizeof(b2));
	}
	pl_strlcpy(sk->last_code, api, sizeof(sk->last_code));
	e = sikka_error(api, status);
	cut = pl_utf8_cut(msg, 200);
	/* The remedy is in the message itself: a batch (secrets rotate) shows only messages. */
	switch (e->remedy) {
	case REMEDY_APP:
		pl_err_set(
		    err, e->code,
		    "Sikka rejected the app credentials: check SIKKA_APP_ID / SIKKA_APP_KEY (%s)",
		    api);
		break;
	case REMEDY_AUTHORIZE:
		pl_err_set(
		    err, e->code,
		    "Sikka refused the practice's authorization: run 'parlae sikka oauth-url "
		    "%s' again (%s: %.*s)",
		    account, api, cut, msg);
		break;
	case REMEDY_ROTATE:
		pl_err_set(
		    err, e->code,
		    "Sikka refused the practice's request key: run 'parlae secrets rotate %s "
		    "--force' (%s: %.*s)",
		    account, api, cut, msg);
		break;
	case REMEDY_EITHER:
		pl_err_set(
		    err, e->code,
		    "Sikka refused %s (HTTP %ld%s%s): check SIKKA_APP_ID / SIKKA_APP_KEY, or run "
		    "'parlae sikka oauth-url %s' again",
		    call, status, *api ? " " : "", api, account);
		break;
	case REMEDY_NONE:
		if (*api)
			pl_err_set(err, e->code, "Sikka %s failed: HTTP %ld %s: %.*s", call, status,
			           api, cut, msg);
		else
			pl_err_set(err, e->code, "Sikka %s failed: HTTP %ld", call, status);
		if (e->hint)
			pl_err_hint(err, "%s", e->hint);
		break;
	}
	json_decref(doc);
	return e->code;
}

int pl_sikka_refused_practice(const struct pl_sikka *sk)
{
	return !strcmp(sk->last_code, "API2007");
}

void pl_sikka_call_init(struct pl_sikka *sk, struct pl_sikka_call *c, const char *method,
                        const char *path, const char *query, const char *body,
                        const char *extra_header, int idempotent)
{
	size_t nh = 0;

	memset(c, 0, sizeof(*c));
	pl_buf_init(&c->url, 0);
	pl_buf_init(&c->app_id, 0);
	pl_buf_init(&c->app_key, 0);
	pl_buf_init(&c->body, 0);
	pl_buf_addf(&c->url, "%s%s%s%s", sk->base, path, query ? "?" : "", query ? query : "");
	pl_buf_addf(&c->app_id, "App-Id: %s", sk->app_id);
	pl_buf_addf(&c->app_key, "App-Key: %s", sk->app_key);
	c->headers[nh++] = c->app_id.buf;
	c->headers[nh++] = c->app_key.buf;
	c->headers[nh++] = "Accept: application/json";
	if (body) {
		c->headers[nh++] = "Content-Type: application/json";
		pl_buf_adds(&c->body, body);
	}
	if (extra_header)
		c->headers[nh++] = extra_header;
	c->headers[nh] = NULL;
	c->req.method = method;
	c->req.url = c->url.buf;
	c->req.headers = c->headers;
	c->req.body = body ? c->body.buf : NULL;
	c->req.body_len = body ? c->body.len : 0;
	c->req.idempotent = idempotent;
	c->req.peer = "Sikka";
	snprintf(c->what, sizeof(c->what), "%s %s", method, path);
}

void pl_sikka_call_release(struct pl_sikka_call *c)
{
	pl_buf_wipe(&c->app_key);
	pl_buf_wipe(&c->body); /* request_key bodies carry keys */
	pl_buf_release(&c->url);
	pl_buf_release(&c->app_id);
}

int pl_sikka_answer(struct pl_sikka *sk, const struct pl_sikka_call *c, long status,
                    const char *body, size_t len, json_t **doc, struct pl_err *err)
{
	int r = pl_sikka_check(sk, c->what, status, body, len, err);

	*doc = NULL;
	if (!r && len && pl_json_parse(body, len, len + 1, SIKKA_MAX_DEPTH, "x", doc, err)) {
		r = pl_err_set(err, PL_EUPSTREAM, "Sikka sent a malformed response to %s", c->what);
		pl_err_hint(err, "retry later; if it persists, Sikka's API is misbehaving");
	}
	return r;
}

/* One call: send, check the status, parse the body. *doc is a new reference on success. */
static int call(struct pl_sikka *sk, const char *method, const char *path, const char *query,
                const char *body, const char *extra_header, int idempotent, json_t **doc,
                struct pl_err *err)
{
	struct pl_sikka_call c;
	struct pl_http_resp resp;
	int r;

	*doc = NULL;
	sk->last_status = 0;
	sk->last_code[0] = '\0'; /* an answer that never comes leaves no code behind */
	pl_sikka_call_init(sk, &c, method, path, query, body, extra_header, idempotent);
	r = pl_http_send(&sk->http, &c.req, &resp, err);
	if (!r)
		r = pl_sikka_answer(sk, &c, resp.status, resp.body.buf, resp.body.len, doc, err);
	pl_http_resp_release(&resp);
	pl_sikka_call_release(&c);
	return r;
}

/* Sikka wraps some answers in [...]: the envelope is then the first element. Borrowed. */
static json_t *envelope(json_t *doc)
{
	return json_is_array(doc) ? json_array_get(doc, 0) : doc;
}

static void copy_text(char *dst, size_t size, const json_t *obj, const char *key)
{
	char buf[64];

	pl_strlcpy(dst, pl_json_text0(obj, key, buf, sizeof(buf)), size);
}

void pl_sikka_practices_free(struct pl_sikka_practice *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pl_secret_release(&p[i].secret_key);
	free(p);
}

int pl_sikka_authorized_practices(struct pl_sikka *sk, struct pl_sikka_practice **out, size_t *n,
                                  struct pl_err *err)
{
	struct pl_sikka_practice *v = NULL;
	size_t count = 0, alloc = 0;
	int r = 0;

	*out = NULL;
	*n = 0;
	/* offset is a page index; a page shorter than the limit is the last. */
	for (int page = 0; page < 100 && !r; page++) {
		char query[64], buf[64];
		json_t *doc, *items;
		size_t got;
		const char *total;

		snprintf(query, sizeof(query), "show=all&offset=%d&limit=500", page);
		if ((r = call(sk, "GET", "/v4/authorized_practices", query, NULL, NULL, 1, &doc,
		              err)))
			break;
		items = json_object_get(envelope(doc), "items");
		got = json_array_size(items);
		for (size_t i = 0; i < got; i++) {
			json_t *it = json_array_get(items, i);
			const char *secret = pl_json_text(it, "secret_key", buf, sizeof(buf));
			struct pl_sikka_practice *p;

			if (count == alloc) {
				alloc = alloc ? alloc * 2 : 8;
				v = pl_xrealloc(v, alloc * sizeof(*v));
			}
			p = &v[count++];
			memset(p, 0, sizeof(*p));
			copy_text(p->office_id, sizeof(p->office_id), it, "office_id");
			copy_text(p->practice_id, sizeof(p->practice_id), it, "practice_id");
			copy_text(p->customer_id, sizeof(p->customer_id), it, "customer_id");
			copy_text(p->practice_name, sizeof(p->practice_name), it, "practice_name");
			copy_text(p->pms_type, sizeof(p->pms_type), it,
			          "practice_management_system");
			if (secret)
				pl_secret_set(&p->secret_key, secret, strlen(secret));
		}
		total = pl_json_text(envelope(doc), "total_count", buf, sizeof(buf));
		if (total && count >= (size_t)atol(total))
			got = 0;
		pl_json_wipe_decref(doc);
		if (got < 500)
			break;
	}
	if (r) {
		pl_sikka_practices_free(v, count);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

int pl_sikka_practice_location_on(struct pl_sikka *sk, const char *office_id,
                                  const char *practice_id, struct pl_err *err)
{
	json_t *body = json_pack("{s:s, s:s, s:s}", "office_id", office_id, "practice_id",
	                         practice_id && *practice_id ? practice_id : "1", "access", "ON");
	char *text = pl_json_dump(body);
	json_t *doc = NULL;
	int r;

	/* Turning access on twice is harmless: the call is idempotent and may be retried. */
	r = call(sk, "POST", "/v4/practice_location", NULL, text, NULL, 1, &doc, err);
	json_decref(doc);
	json_decref(body);
	free(text);
	return r;
}

int pl_sikka_revoke_refresh_key(struct pl_sikka *sk, const struct pl_secret *refresh_key,
                                struct pl_err *err)
{
	json_t *body = json_object(), *doc = NULL;
	char *text;
	int r;

	json_object_set_new(body, "refresh_key",
	                    json_stringn((const char *)refresh_key->data, refresh_key->len));
	text = pl_json_dump(body);
	pl_json_wipe_decref(body);
	r = call(sk, "DELETE", "/v4/refresh_key", NULL, text, NULL, 1, &doc, err);
	explicit_bzero(text, strlen(text));
	free(text);
	pl_json_wipe_decref(doc);
	return r;
}

void pl_sikka_key_release(struct pl_sikka_key *k)
{
	pl_secret_release(&k->request_key);
	pl_secret_release(&k->refresh_key);
	memset(k, 0, sizeof(*k));
}

/* Keys live 24 h; a longer life is read as this, so the key is refreshed early rather than
 * its expiry overflowing. */
#define MAX_KEY_LIFE (366L * 86400)

/* "85603 second(s)" → 85603; -1 when there is no number. */
static long parse_expires_in(const char *s)
{
	char *end;
	long v;

	if (!s)
		return -1;
	v = strtol(s, &end, 10);
	if (end == s || v < 0)
		return -1;
	return v > MAX_KEY_LIFE ? MAX_KEY_LIFE : v;
}

char *pl_sikka_key_body(struct pl_sikka *sk, enum pl_sikka_grant grant, const char *office_id,
                        const struct pl_secret *credential)
{
	static const char *const grants[] = {"authorization_code", "request_key", "refresh_key"};
	static const char *const fields[] = {"code", "secret_key", "refresh_key"};
	json_t *body = json_object();
	char *text;

	json_object_set_new(body, "grant_type", json_string(grants[grant]));
	if (office_id)
		json_object_set_new(body, "office_id", json_string(office_id));
	json_object_set_new(body, fields[grant],
	                    json_stringn((const char *)credential->data, credential->len));
	json_object_set_new(body, "app_id", json_string(sk->app_id));
	json_object_set_new(body, "app_key", json_string(sk->app_key));
	text = pl_json_dump(body);
	pl_json_wipe_decref(body);
	return text;
}

int pl_sikka_key_from(json_t *doc, struct pl_sikka_key *out, struct pl_err *err)
{
	json_t *env = envelope(doc);
	char req_buf[64], exp_buf[64], ref_buf[64]; /* one each: a number is rendered into it */
	const char *req_key, *ref_key;
	long expires_in;

	memset(out, 0, sizeof(*out));
	req_key = pl_json_text(env, "request_key", req_buf, sizeof(req_buf));
	expires_in = parse_expires_in(pl_json_text(env, "expires_in", exp_buf, sizeof(exp_buf)));
	ref_key = pl_json_text(env, "refresh_key", ref_buf, sizeof(ref_buf));
	if (!req_key || !*req_key || expires_in < 0)
		return pl_err_set(
		    err, PL_EUPSTREAM,
		    "Sikka's answer to POST /v4/request_key has no request_key or expires_in");
	pl_secret_set(&out->request_key, req_key, strlen(req_key));
	if (ref_key)
		pl_secret_set(&out->refresh_key, ref_key, strlen(ref_key));
	copy_text(out->issued_to, sizeof(out->issued_to), env, "issued_to");
	out->expires_at = time(NULL) + expires_in;
	return 0;
}

int pl_sikka_request_key(struct pl_sikka *sk, enum pl_sikka_grant grant, const char *office_id,
                         const struct pl_secret *credential, struct pl_sikka_key *out,
                         struct pl_err *err)
{
	char *text = pl_sikka_key_body(sk, grant, office_id, credential);
	json_t *doc = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	/* Not idempotent: a code is single-use and a refresh replaces the refresh key. */
	r = call(sk, "POST", "/v4/request_key", NULL, text, NULL, 0, &doc, err);
	explicit_bzero(text, strlen(text));
	free(text);
	if (!r)
		r = pl_sikka_key_from(doc, out, err);
	pl_json_wipe_decref(doc);
	return r;
}

int pl_sikka_data(struct pl_sikka *sk, const char *method, const char *path, const char *query,
                  const char *body, const struct pl_secret *request_key, json_t **doc,
                  struct pl_err *err)
{
	struct pl_buf header = PL_BUF_INIT;
	json_t *raw = NULL;
	int r;

	*doc = NULL;
	pl_buf_adds(&header, "Request-Key: ");
	pl_buf_add(&header, request_key->data, request_key->len);
	/* A write (POST, PUT, PATCH) creates a writeback: sending it twice could book twice. */
	r = call(sk, method, path, query, body, header.buf, !strcmp(method, "GET"), &raw, err);
	pl_buf_wipe(&header);
	if (r)
		return r;
	*doc = json_incref(envelope(raw));
	json_decref(raw);
	return 0;
}

int pl_sikka_key_expired(const struct pl_sikka *sk)
{
	return !strcmp(sk->last_code, "API1025");
}
