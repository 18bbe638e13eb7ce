#include "vapi.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "session.h"
#include "utf8.h"
#include "banned.h"

void pl_vapi_fold(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; *in && n + 1 < size; in++)
		if (*in != '-' && *in != '_')
			out[n++] = (char)tolower((unsigned char)*in);
	out[n] = '\0';
}

json_t *pl_vapi_arg(const json_t *args, const char *name)
{
	char want[64], have[64];
	const char *key;
	json_t *v;

	if (!json_is_object(args))
		return NULL;
	if ((v = json_object_get(args, name)))
		return v;
	pl_vapi_fold(name, want, sizeof(want));
	json_object_foreach((json_t *)args, key, v)
	{
		pl_vapi_fold(key, have, sizeof(have));
		if (!strcmp(want, have))
			return v;
	}
	return NULL;
}

const char *pl_vapi_arg_text(const json_t *args, const char *name, char *buf, size_t size)
{
	return pl_vapi_text(pl_vapi_arg(args, name), buf, size);
}

const char *pl_vapi_text(const json_t *v, char *buf, size_t size)
{
	if (json_is_string(v))
		return *json_string_value(v) ? json_string_value(v) : NULL;
	if (json_is_integer(v)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	}
	if (json_is_real(v)) {
		snprintf(buf, size, "%g", json_real_value(v));
		return buf;
	}
	return NULL;
}

void pl_phone_digits(const char *in, char *out, size_t size)
{
	size_t n = 0;
	int plus = 0;
	char d[32];

	out[0] = '\0';
	if (!in)
		return;
	for (; *in; in++) {
		if (isdigit((unsigned char)*in)) {
			if (n + 1 >= sizeof(d))
				return;
			d[n++] = *in;
		} else if (!strchr("+-. ()", *in)) {
			return; /* letters: not a phone number */
		} else if (*in == '+' && !n) {
			plus = 1;
		}
	}
	d[n] = '\0';
	/*
	 * Ten digits are NANP without its country code, unless a '+' says they are all there:
	 * +47 95551234 (Norway) is not (479) 555-1234 (Arkansas), whose caller it would verify.
	 */
	if (n == 10 && !plus)
		snprintf(out, size, "1%s", d);
	else if (n >= 8 && n <= 15)
		snprintf(out, size, "%s", d);
}

/* message.call.assistant.server.timeoutSeconds, else message.assistant.server's: 1-300. */
static int read_timeout(json_t *msg, json_t *call)
{
	json_t *t = json_object_get(json_object_get(json_object_get(call, "assistant"), "server"),
	                            "timeoutSeconds");
	double v;

	if (!json_is_number(t))
		t = json_object_get(json_object_get(json_object_get(msg, "assistant"), "server"),
		                    "timeoutSeconds");
	if (!json_is_number(t))
		return 0;
	v = json_number_value(t);
	return v >= 1 && v <= 300 ? (int)v : 0;
}

static char *dup_text(const json_t *v)
{
	return json_is_string(v) ? pl_xstrdup(json_string_value(v)) : NULL;
}

/* Arguments arrive as an object or as a JSON string holding one. */
static void read_args(struct pl_vapi_call *c, json_t *raw)
{
	struct pl_err err = PL_ERR_INIT;
	json_t *parsed;

	if (!raw || json_is_null(raw)) {
		c->args = json_object();
	} else if (json_is_object(raw)) {
		c->args = json_incref(raw);
	} else if (json_is_string(raw)) {
		if (!*json_string_value(raw)) {
			c->args = json_object();
		} else if (pl_json_parse(json_string_value(raw), json_string_length(raw),
		                         PL_VAPI_MAX_BODY, PL_VAPI_MAX_DEPTH, "arguments", &parsed,
		                         &err)) {
			c->bad_args = pl_xstrdup(err.msg);
		} else if (!json_is_object(parsed)) {
			json_decref(parsed);
			c->bad_args = pl_xstrdup("arguments are not a JSON object");
		} else {
			c->args = parsed;
		}
	} else {
		c->bad_args = pl_xstrdup("arguments are not a JSON object");
	}
}

/* A copy made valid UTF-8: a direct call's name comes from argv, and goes into the reply. */
static char *valid_dup(const char *s)
{
	size_t size = 3 * strlen(s) + 1; /* each invalid byte may become U+FFFD, 3 bytes */
	char *copy = pl_xmalloc(size);

	pl_utf8_copy(copy, size, s);
	return copy;
}

static int add_call(struct pl_vapi_msg *m, const char *id, const char *name, json_t *raw_args,
                    struct pl_err *err)
{
	struct pl_vapi_call *c;

	if (!name)
		return pl_err_set(err, PL_EBADINPUT, "a tool call has no function name");
	for (size_t i = 0; i < m->ncalls; i++)
		if (id && *id && !strcmp(m->calls[i].id, id))
			return 0; /* a repeated id runs once */
	if (m->ncalls == PL_VAPI_MAX_CALLS)
		return pl_err_set(err, PL_EBADINPUT, "more than %d tool calls in one message",
		                  PL_VAPI_MAX_CALLS);
	c = &m->calls[m->ncalls++];
	memset(c, 0, sizeof(*c));
	c->id = valid_dup(id ? id : "");
	c->name = valid_dup(name);
	read_args(c, raw_args);
	return 0;
}

/*
 * One list only: toolCallList, else toolCalls, else toolWithToolCallList[].toolCall. Items come
 * nested or flat, as Vapi's own documents show both; either way the arguments are
 * `arguments`, else `parameters`.
 */
static int read_calls(struct pl_vapi_msg *m, json_t *msg, struct pl_err *err)
{
	json_t *list = json_object_get(msg, "toolCallList"), *item;
	int nested = 0;
	size_t i;

	if (!json_is_array(list) || !json_array_size(list))
		list = json_object_get(msg, "toolCalls");
	if (!json_is_array(list) || !json_array_size(list)) {
		list = json_object_get(msg, "toolWithToolCallList");
		nested = 1;
	}
	if (!json_is_array(list) || !json_array_size(list))
		return pl_err_set(err, PL_EBADINPUT, "the tool-calls message has no tool calls");
	m->calls = pl_xcalloc(PL_VAPI_MAX_CALLS, sizeof(*m->calls));
	json_array_foreach(list, i, item)
	{
		json_t *call = nested ? json_object_get(item, "toolCall") : item;
		json_t *fn = json_object_get(call, "function");
		json_t *where = json_is_object(fn) ? fn : call, *args;
		int r;

		/* Nested {"id","function":{"name","arguments"}} or flat {"id","name","arguments"}.
		 */
		if (!json_is_object(call) ||
		    (!json_is_object(fn) && !json_is_string(json_object_get(call, "name"))))
			return pl_err_set(
			    err, PL_EBADINPUT,
			    "tool call %zu is not an object with a function or a name", i);
		args = json_object_get(where, "arguments");
		if (!args)
			args = json_object_get(where, "parameters");
		r = add_call(m, json_string_value(json_object_get(call, "id")),
		             json_string_value(json_object_get(where, "name")), args, err);
		if (r)
			return r;
	}
	return 0;
}

int pl_vapi_parse(const char *body, size_t len, struct pl_vapi_msg *out, struct pl_err *err)
{
	json_t *doc = NULL, *msg, *call, *ts;
	const char *type;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = pl_json_parse(body, len, PL_VAPI_MAX_BODY, PL_VAPI_MAX_DEPTH, "the payload", &doc,
	                       err)))
		return r;
	msg = json_object_get(doc, "message");
	type = json_string_value(json_object_get(msg, "type"));
	if (!json_is_object(msg) || !type) {
		r = pl_err_set(err, PL_EBADINPUT,
		               "the payload is not a Vapi server message (no message.type)");
		goto out;
	}
	snprintf(out->type, sizeof(out->type), "%s", type);
	call = json_object_get(msg, "call");
	out->call_id = dup_text(json_object_get(call, "id"));
	out->phone_number_id = dup_text(json_object_get(call, "phoneNumberId"));
	out->caller = dup_text(json_object_get(json_object_get(call, "customer"), "number"));
	if (!out->caller)
		out->caller = dup_text(json_object_get(json_object_get(msg, "customer"), "number"));
	out->account_hint = dup_text(json_object_get(
	    json_object_get(json_object_get(msg, "assistant"), "metadata"), "accountId"));
	if (!out->account_hint)
		out->account_hint = dup_text(json_object_get(
		    json_object_get(json_object_get(call, "assistant"), "metadata"), "accountId"));
	out->called_number =
	    dup_text(json_object_get(json_object_get(call, "phoneNumber"), "number"));
	out->timeout_s = read_timeout(msg, call);
	ts = json_object_get(msg, "timestamp");
	if (json_is_integer(ts))
		out->timestamp_ms = json_integer_value(ts);
	else if (json_is_real(ts) && json_real_value(ts) > -9.2e18 && json_real_value(ts) < 9.2e18)
		out->timestamp_ms =
		    (long long)json_real_value(ts); /* beyond: absent (the cast is UB) */
	if (!strcmp(type, "tool-calls")) {
		r = read_calls(out, msg, err);
	} else if (!strcmp(type, "function-call")) {
		json_t *fc = json_object_get(msg, "functionCall");

		out->legacy = 1;
		out->calls = pl_xcalloc(1, sizeof(*out->calls));
		if (!json_is_object(fc))
			r = pl_err_set(err, PL_EBADINPUT,
			               "the function-call message has no functionCall");
		else
			r = add_call(out, "", json_string_value(json_object_get(fc, "name")),
			             json_object_get(fc, "parameters"), err);
	}
out:
	json_decref(doc);
	if (r)
		pl_vapi_msg_release(out);
	return r;
}

void pl_vapi_msg_release(struct pl_vapi_msg *m)
{
	for (size_t i = 0; i < m->ncalls; i++) {
		free(m->calls[i].id);
		free(m->calls[i].name);
		free(m->calls[i].bad_args);
		json_decref(m->calls[i].args);
	}
	free(m->calls);
	free(m->call_id);
	free(m->phone_number_id);
	free(m->caller);
	free(m->account_hint);
	free(m->called_number);
	memset(m, 0, sizeof(*m));
}

json_t *pl_vapi_reply(const struct pl_vapi_msg *m, const struct pl_vapi_outcome *out)
{
	json_t *results;

	if (m->legacy)
		return pl_json_x(
		    json_pack("{s:s}", "result", out[0].result ? out[0].result : out[0].error));
	results = json_array();
	for (size_t i = 0; i < m->ncalls; i++) {
		const struct pl_vapi_outcome *o = &out[i];

		pl_json_append(results, pl_json_x(json_pack(
		                            "{s:s, s:s, s:s}", "toolCallId", m->calls[i].id, "name",
		                            m->calls[i].name, o->result ? "result" : "error",
		                            o->result ? o->result : o->error)));
	}
	return pl_json_x(json_pack("{s:o}", "results", results));
}

int pl_vapi_status(const struct pl_vapi_outcome *out, size_t n)
{
	size_t errors = 0;
	int code = 0;

	for (size_t i = 0; i < n; i++) {
		if (out[i].error) {
			errors++;
			code = out[i].code ? out[i].code : PL_EINTERNAL;
		}
	}
	if (!errors)
		return 0;
	return errors == n ? code : PL_EPARTIAL;
}

void pl_vapi_sign(const char *secret, const char *ts, const char *body, size_t len, char out[65])
{
	unsigned char mac[32];
	unsigned int n = sizeof(mac);
	struct pl_buf msg = PL_BUF_INIT;

	pl_buf_addf(&msg, "%s.", ts);
	pl_buf_add(&msg, body, len);
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg.buf,
	          msg.len, mac, &n) ||
	    n != sizeof(mac))
		abort(); /* HMAC-SHA256 fails only when memory does, which aborts everywhere */
	pl_hex(mac, sizeof(mac), out);
	pl_buf_release(&msg);
}

int pl_vapi_direct(const char *tool, const char *args_json, size_t len, struct pl_vapi_msg *out,
                   struct pl_err *err)
{
	json_t *raw = NULL;
	char id[24] = "call_";
	int r = 0;

	memset(out, 0, sizeof(*out));
	snprintf(out->type, sizeof(out->type), "tool-calls");
	if (args_json && (r = pl_json_parse(args_json, len, PL_VAPI_MAX_BODY, PL_VAPI_MAX_DEPTH,
	                                    "--args", &raw, err)))
		return r;
	if (raw && !json_is_object(raw)) {
		json_decref(raw);
		return pl_err_set(err, PL_EBADINPUT, "--args must be a JSON object");
	}
	out->calls = pl_xcalloc(1, sizeof(*out->calls));
	if (pl_random_hex(id + 5, 8) < 0)
		snprintf(id + 5, sizeof(id) - 5, "direct");
	r = add_call(out, id, tool, raw, err);
	json_decref(raw);
	if (r)
		pl_vapi_msg_release(out);
	return r;
}

char **pl_vapi_auth_headers(enum pl_vapi_auth auth, const char *secret, const char *body,
                            size_t len)
{
	char **h = pl_xcalloc(4, sizeof(*h));
	struct pl_buf b = PL_BUF_INIT;

	h[0] = pl_xstrdup("Content-Type: application/json");
	if (auth == PL_VAPI_AUTH_SECRET) {
		pl_buf_addf(&b, "X-Vapi-Secret: %s", secret);
		h[1] = pl_buf_detach(&b, NULL);
	} else if (auth == PL_VAPI_AUTH_BEARER) {
		pl_buf_addf(&b, "Authorization: Bearer %s", secret);
		h[1] = pl_buf_detach(&b, NULL);
	} else {
		char ts[24], sig[65];

		snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
		pl_vapi_sign(secret, ts, body, len, sig);
		pl_buf_addf(&b, "x-timestamp: %s", ts);
		h[1] = pl_buf_detach(&b, NULL);
		pl_buf_addf(&b, "x-signature: %s", sig);
		h[2] = pl_buf_detach(&b, NULL);
	}
	return h;
}

void pl_vapi_headers_free(char **h)
{
	for (size_t i = 0; h && h[i]; i++) {
		explicit_bzero(h[i], strlen(h[i]));
		free(h[i]);
	}
	free(h);
}

json_t *pl_vapi_expand(json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	if (json_is_string(v)) {
		json_t *inner = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);

		if (inner && (json_is_object(inner) || json_is_array(inner)))
			return inner;
		json_decref(inner);
		return json_incref(v);
	}
	if (json_is_object(v)) {
		json_t *o = pl_json_x(json_object());

		json_object_foreach(v, key, item) pl_json_set(o, key, pl_vapi_expand(item));
		return o;
	}
	if (json_is_array(v)) {
		json_t *a = pl_json_x(json_array());

		json_array_foreach(v, i, item) pl_json_append(a, pl_vapi_expand(item));
		return a;
	}
	return json_incref(v);
}

static void diff_values(const char *path, json_t *e, json_t *a, struct pl_buf *out)
{
	const char *key;
	json_t *item;
	char sub[512];
	size_t i;

	if (json_equal(e, a))
		return;
	if (json_is_object(e) && json_is_object(a)) {
		json_object_foreach(e, key, item)
		{
			snprintf(sub, sizeof(sub), "%s.%s", path, key);
			diff_values(sub, item, json_object_get(a, key), out);
		}
		json_object_foreach(a, key, item)
		{
			if (!json_object_get(e, key)) {
				snprintf(sub, sizeof(sub), "%s.%s", path, key);
				diff_values(sub, NULL, item, out);
			}
		}
		return;
	}
	if (json_is_array(e) && json_is_array(a) && json_array_size(e) == json_array_size(a)) {
		json_array_foreach(e, i, item)
		{
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			diff_values(sub, item, json_array_get(a, i), out);
		}
		return;
	}
	{
		char *es = e ? json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		char *as = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

		pl_buf_addf(out, "%s\n- %s\n+ %s\n", *path ? path : ".", es ? es : "(absent)",
		            as ? as : "(absent)");
		free(es);
		free(as);
	}
}

void pl_vapi_diff(json_t *expected, json_t *actual, struct pl_buf *diff)
{
	diff_values("", expected, actual, diff);
}

int pl_vapi_compare(const char *expected, size_t elen, const char *actual, size_t alen,
                    struct pl_buf *diff, struct pl_err *err)
{
	json_t *e = NULL, *a = NULL, *ne, *na;
	int r;

	if ((r = pl_json_parse(expected, elen, PL_VAPI_MAX_BODY, PL_VAPI_MAX_DEPTH, "--expect", &e,
	                       err)))
		return -r;
	if ((r = pl_json_parse(actual, alen, PL_VAPI_MAX_BODY, PL_VAPI_MAX_DEPTH, "the response",
	                       &a, err))) {
		json_decref(e);
		return -r;
	}
	ne = pl_vapi_expand(e);
	na = pl_vapi_expand(a);
	r = json_equal(ne, na) ? 0 : 1;
	if (r)
		diff_values("", ne, na, diff);
	json_decref(e);
	json_decref(a);
	json_decref(ne);
	json_decref(na);
	return r;
}

int pl_vapi_post(const struct pl_config *cfg, const char *url, enum pl_vapi_auth auth,
                 const char *body, size_t len, struct pl_http_resp *resp, struct pl_err *err)
{
	const char *secret = pl_config_get(cfg, "VAPI_WEBHOOK_SECRET");
	struct pl_http_req req = {0};
	struct pl_http http;
	char **headers;
	int r;

	memset(resp, 0, sizeof(*resp));
	if (!secret) {
		pl_err_set(err, PL_ECONFIG, "VAPI_WEBHOOK_SECRET is not set");
		return pl_err_hint(err, "export the secret the backend expects from Vapi");
	}
	if ((r = pl_http_check_url(url, "--target", err)) || (r = pl_http_init(&http, cfg, err)))
		return r;
	headers = pl_vapi_auth_headers(auth, secret, body, len);
	req.method = "POST";
	req.url = url;
	req.headers = (const char *const *)headers;
	req.body = body;
	req.body_len = len;
	req.idempotent = 0; /* a tool call may book: never sent twice */
	req.peer = "the target";
	r = pl_http_send(&http, &req, resp, err);
	pl_vapi_headers_free(headers);
	pl_http_release(&http);
	if (r)
		return r;
	if (resp->status == 401 || resp->status == 403) {
		pl_err_set(err, PL_ECONFIG, "the target refused the credentials (HTTP %ld)",
		           resp->status);
		return pl_err_hint(err, "check VAPI_WEBHOOK_SECRET and --auth");
	}
	if (resp->status != 200)
		return pl_err_set(err, PL_EUPSTREAM, "the target answered HTTP %ld", resp->status);
	return 0;
}
