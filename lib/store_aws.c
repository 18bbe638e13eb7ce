#include "store_backend.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "session.h"
#include "utf8.h"
#include "banned.h"

/*
 * AWS Secrets Manager's JSON protocol: POST / with X-Amz-Target: secretsmanager.<Operation>,
 * signed by libcurl (SigV4). Every call here is safe to send again: writes carry a
 * ClientRequestToken derived from what they write, so a retry after a lost answer finds the
 * version it made instead of making another; the http module retries 5xx and 429/503, and
 * this one retries a 400 ThrottlingException.
 *
 * A compare-and-swap is Secrets Manager's own: the new version is written with the
 * AWSPENDING label only, then UpdateSecretVersionStage moves AWSCURRENT to it, which AWS
 * refuses unless RemoveFromVersionId still holds AWSCURRENT.
 */

#define PEER           "AWS Secrets Manager"
#define SERVICE        "secretsmanager"
#define VALUE_MAX      65536             /* SecretString's limit, as the file store's */
#define ANSWER_MAX     ((size_t)1 << 20) /* a value JSON-escaped fits many times over */
#define ANSWER_DEPTH   16
#define THROTTLE_TRIES 3
#define LIST_PAGES_MAX 1000
#define TOKEN_LEN      64

struct pl_store_aws {
	const struct pl_config *cfg; /* the credentials are read from it on each call */
	struct pl_http http;
	char *url; /* the endpoint, ending in '/' */
	char sigv4[128];
};

struct creds {
	const char *akid, *secret, *token;
};

/* A call's outcome: the parsed 2xx answer, or the __type of an error answer. */
struct answer {
	json_t *doc; /* new reference, wiped and released by answer_release */
	char type[80];
	long status;
	int attempts; /* HTTP attempts of the last try */
};

static void answer_release(struct answer *ans)
{
	pl_json_wipe_decref(ans->doc);
	ans->doc = NULL;
}

static void aws_close(void *be);

/* A region: lowercase letters, digits and '-'. */
static int aws_parse(const char *spec, const char *region, struct pl_err *err)
{
	size_t n = strlen(region);

	if (n == 0 || n > 63 || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != n) {
		pl_err_set(err, PL_ECONFIG,
		           "PARLAE_SECRET_STORE='%.*s': the region must be like us-east-1",
		           pl_utf8_cut(spec, 200), spec);
		return pl_err_hint(err, "for example PARLAE_SECRET_STORE=aws:us-east-1");
	}
	return 0;
}

/*
 * The endpoint (https://secretsmanager.REGION.amazonaws.com/, or
 * AWS_ENDPOINT_URL_SECRETS_MANAGER) and an HTTP client; no request is sent and the
 * credentials are read on first use.
 */
static int aws_open(const struct pl_config *cfg, const char *region, void **out, struct pl_err *err)
{
	const char *ep = pl_config_get(cfg, "AWS_ENDPOINT_URL_SECRETS_MANAGER");
	struct pl_store_aws *a = pl_xcalloc(1, sizeof(*a));
	struct pl_buf url = PL_BUF_INIT;
	int r;

	*out = NULL;
	a->cfg = cfg;
	if (ep && strncmp(ep, "https://", 8) && strncmp(ep, "http://", 7)) {
		pl_err_set(err, PL_ECONFIG,
		           "AWS_ENDPOINT_URL_SECRETS_MANAGER='%.*s' is not an http(s) URL",
		           pl_utf8_cut(ep, 200), ep);
		r = pl_err_hint(err, "unset it to use https://secretsmanager.%s.amazonaws.com/",
		                region);
		goto fail;
	}
	if ((r = pl_http_init(&a->http, cfg, err)))
		goto fail;
	a->http.max_body = ANSWER_MAX;
	if (ep)
		pl_buf_addf(&url, "%s%s", ep, ep[strlen(ep) - 1] == '/' ? "" : "/");
	else
		pl_buf_addf(&url, "https://" SERVICE ".%s.amazonaws.com/", region);
	a->url = pl_buf_detach(&url, NULL);
	snprintf(a->sigv4, sizeof(a->sigv4), "aws:amz:%s:" SERVICE, region);
	*out = a;
	return 0;
fail:
	aws_close(a);
	return r;
}

static void aws_close(void *be)
{
	struct pl_store_aws *a = be;

	if (!a)
		return;
	if (a->http.curl)
		pl_http_release(&a->http);
	free(a->url);
	free(a);
}

/* --- credentials and calls ------------------------------------------------------------------ */

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int get_creds(struct pl_store_aws *a, struct creds *c, struct pl_err *err)
{
	c->akid = pl_config_get(a->cfg, "AWS_ACCESS_KEY_ID");
	c->secret = pl_config_get(a->cfg, "AWS_SECRET_ACCESS_KEY");
	c->token = pl_config_get(a->cfg, "AWS_SESSION_TOKEN");
	if (!c->akid || !c->secret) {
		pl_err_set(err, PL_ECONFIG,
		           "%s is not set: the aws: secret store needs AWS credentials",
		           !c->akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
		return pl_err_hint(err, "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and "
		                        "AWS_SESSION_TOKEN with temporary credentials");
	}
	/* Temporary keys are useless without their token: say so before AWS does, less clearly. */
	if (!c->token && !strncmp(c->akid, "ASIA", 4)) {
		pl_err_set(err, PL_ECONFIG,
		           "AWS_ACCESS_KEY_ID is a temporary key (ASIA...) and "
		           "AWS_SESSION_TOKEN is not set");
		return pl_err_hint(err,
		                   "export the AWS_SESSION_TOKEN issued with AWS_ACCESS_KEY_ID "
		                   "and AWS_SECRET_ACCESS_KEY");
	}
	if (has_ctl(c->akid) || (c->token && has_ctl(c->token))) {
		pl_err_set(err, PL_ECONFIG, "%s contains control characters",
		           has_ctl(c->akid) ? "AWS_ACCESS_KEY_ID" : "AWS_SESSION_TOKEN");
		return pl_err_hint(err, "check AWS_ACCESS_KEY_ID and AWS_SESSION_TOKEN");
	}
	return 0;
}

static int is_auth_error(const char *type)
{
	static const char *const auth[] = {
	    "UnrecognizedClientException",         "InvalidClientTokenId",
	    "InvalidSignatureException",           "SignatureDoesNotMatch",
	    "IncompleteSignatureException",        "ExpiredTokenException",
	    "MissingAuthenticationTokenException", NULL,
	};

	for (size_t i = 0; auth[i]; i++)
		if (!strcmp(type, auth[i]))
			return 1;
	return 0;
}

/*
 * An error answer into err: the code, AWS's type and the first line of its message (AWS
 * appends the canonical request to a signature mismatch, and that may show a session token).
 */
static int error_answer(const char *op, long status, const struct pl_buf *body, char *type,
                        size_t tsize, struct pl_err *err)
{
	struct pl_err perr = PL_ERR_INIT;
	char msg[208] = "";
	json_t *doc = NULL;
	int code;

	type[0] = '\0';
	if (body->len && !pl_json_parse(body->buf, body->len, body->len + 1, ANSWER_DEPTH, "answer",
	                                &doc, &perr)) {
		const char *t = json_string_value(json_object_get(doc, "__type"));
		const char *m = json_string_value(json_object_get(doc, "Message"));

		if (!m)
			m = json_string_value(json_object_get(doc, "message"));
		if (t)
			pl_strlcpy(type, strchr(t, '#') ? strchr(t, '#') + 1 : t, tsize);
		if (m) {
			size_t n = strcspn(m, "\r\n");

			snprintf(msg, sizeof(msg), "%.*s", (int)(n < 200 ? n : 200), m);
		}
	}
	json_decref(doc);
	/* A validation message may quote the member it refuses: never the value's. */
	if (!strcmp(type, "ValidationException") && strstr(msg, "secretString"))
		snprintf(msg, sizeof(msg), "the secret value was refused");
	if (status >= 500) {
		pl_err_set(err, PL_EUPSTREAM, PEER " %s failed: HTTP %ld%s%s%s%s", op, status,
		           type[0] ? " " : "", type, msg[0] ? ": " : "", msg);
		return pl_err_hint(err, "AWS may be having trouble: retry later");
	}
	if (is_auth_error(type)) {
		pl_err_set(err, PL_ECONFIG, PEER " refused the credentials: %s: %s", type, msg);
		if (strstr(msg, "Signature expired") || strstr(msg, "Signature not yet current"))
			return pl_err_hint(err,
			                   "check this host's clock: AWS refuses requests signed "
			                   "more than 15 minutes off");
		return pl_err_hint(err, "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
		                        "AWS_SESSION_TOKEN");
	}
	if (!strcmp(type, "AccessDeniedException")) {
		pl_err_set(err, PL_ECONFIG, PEER " denied %s: %s", op, msg);
		return pl_err_hint(err, "grant the identity of AWS_ACCESS_KEY_ID secretsmanager:%s",
		                   op);
	}
	if (!strcmp(type, "ThrottlingException")) {
		pl_err_set(err, PL_EUPSTREAM, PEER " is throttling %s (%d tries)", op,
		           THROTTLE_TRIES);
		return pl_err_hint(err, "retry later, or spread the calls out");
	}
	code = !strcmp(type, "ResourceNotFoundException") ? PL_ENOTFOUND
	       : !strcmp(type, "ResourceExistsException") ? PL_ECONFLICT
	                                                  : PL_EUPSTREAM;
	pl_err_set(err, code, PEER " %s failed: HTTP %ld%s%s%s%s", op, status, type[0] ? " " : "",
	           type, msg[0] ? ": " : "", msg);
	return code;
}

static int parse_answer(const char *op, const struct pl_buf *body, json_t **doc, struct pl_err *err)
{
	struct pl_err perr = PL_ERR_INIT;

	if (!body->len) {
		*doc = json_object();
		return 0;
	}
	if (pl_json_parse(body->buf, body->len, body->len + 1, ANSWER_DEPTH, "answer", doc,
	                  &perr) ||
	    !json_is_object(*doc)) {
		pl_json_wipe_decref(*doc);
		*doc = NULL;
		pl_err_set(err, PL_EUPSTREAM, PEER " sent a malformed answer to %s", op);
		return pl_err_hint(err, "check AWS_ENDPOINT_URL_SECRETS_MANAGER, or retry later");
	}
	return 0;
}

/*
 * One operation: req (borrowed) as the body. 0 with ans->doc on a 2xx; otherwise the mapped
 * code, err, and ans->type when AWS named the error.
 */
static int call(struct pl_store_aws *a, const char *op, const json_t *req, struct answer *ans,
                struct pl_err *err)
{
	struct pl_buf token = PL_BUF_INIT;
	struct pl_http_req hr = {0};
	const char *headers[4];
	char target[80], *body;
	struct creds c;
	size_t nh = 0;
	int r;

	memset(ans, 0, sizeof(*ans));
	if ((r = get_creds(a, &c, err)))
		return r;
	if (!(body = pl_json_dump(req)))
		return pl_err_set(err, PL_EINTERNAL, "cannot encode the %s request", op);
	snprintf(target, sizeof(target), "X-Amz-Target: " SERVICE ".%s", op);
	headers[nh++] = "Content-Type: application/x-amz-json-1.1";
	headers[nh++] = target;
	if (c.token) {
		pl_buf_addf(&token, "X-Amz-Security-Token: %s", c.token);
		headers[nh++] = token.buf;
	}
	headers[nh] = NULL;
	hr.method = "POST";
	hr.url = a->url;
	hr.headers = headers;
	hr.body = body;
	hr.body_len = strlen(body);
	hr.idempotent = 1; /* reads, and writes made idempotent by their tokens */
	hr.peer = PEER;
	hr.aws_sigv4 = a->sigv4;
	hr.user = c.akid;
	hr.password = c.secret;
	for (int try = 0;; try++) {
		struct pl_http_resp resp;

		r = pl_http_send(&a->http, &hr, &resp, err);
		if (!r) {
			ans->status = resp.status;
			ans->attempts = resp.attempts;
			if (resp.status >= 200 && resp.status < 300)
				r = parse_answer(op, &resp.body, &ans->doc, err);
			else
				r = error_answer(op, resp.status, &resp.body, ans->type,
				                 sizeof(ans->type), err);
		}
		pl_http_resp_release(&resp);
		/* 429 and 503 are the http module's to retry; AWS mostly throttles with a 400. */
		if (r && ans->status == 400 && !strcmp(ans->type, "ThrottlingException") &&
		    try + 1 < THROTTLE_TRIES) {
			pl_err_clear(err);
			pl_sleep_ms(pl_backoff_ms(try));
			continue;
		}
		break;
	}
	explicit_bzero(body, strlen(body));
	free(body);
	pl_buf_wipe(&token);
	return r;
}

/* --- helpers for the operations --------------------------------------------------------------- */

static int conflict(const char *name, const char *current, const char *expected, struct pl_err *err)
{
	return pl_err_set(err, PL_ECONFLICT,
	                  "secret %s changed while it was being replaced (version %s, expected %s)",
	                  name, current[0] ? current : "none", expected[0] ? expected : "none");
}

/*
 * The ClientRequestToken of a write: lowercase hex HMAC-SHA256 of what it writes and what it
 * replaces, so that the same write sent again is the same version, and any other is not.
 * Keyed with the AWS secret key, because version ids are shown and stored: a plain hash of a
 * guessable value would let anyone who sees the id test guesses.
 */
static void client_token(const char *key, const char *kind, const char *name, const char *replaces,
                         const struct pl_secret *value, char out[TOKEN_LEN + 1])
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end()};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	unsigned char md[32];
	size_t n = 0;

	if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)kind, strlen(kind) + 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)name, strlen(name) + 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)replaces, strlen(replaces) + 1) ||
	    (value->len && !EVP_MAC_update(ctx, value->data, value->len)) ||
	    !EVP_MAC_final(ctx, md, &n, sizeof(md)) || n != sizeof(md))
		abort(); /* HMAC-SHA256 does not fail */
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	pl_hex(md, sizeof(md), out);
}

/* Whether a JSON array of labels holds label. */
static int has_stage(const json_t *stages, const char *label)
{
	size_t i;
	json_t *v;

	json_array_foreach(stages, i, v)
	{
		if (json_is_string(v) && !strcmp(json_string_value(v), label))
			return 1;
	}
	return 0;
}

/* The version holding label in a VersionIdsToStages-like object; NULL if none. Borrowed. */
static const char *holder(const json_t *map, const char *label)
{
	const char *vid;
	json_t *stages;

	json_object_foreach((json_t *)map, vid, stages)
	{
		if (has_stage(stages, label))
			return vid;
	}
	return NULL;
}

/* The value as a JSON string; PL_EBADINPUT unless it is UTF-8 text, as SecretString must be. */
static int value_json(const char *name, const struct pl_secret *value, json_t **out,
                      struct pl_err *err)
{
	*out = json_stringn(value->len ? (const char *)value->data : "", value->len);
	if (!*out)
		return pl_err_set(err, PL_EBADINPUT,
		                  "secret %s is not UTF-8 text, which the aws: store requires",
		                  name);
	return 0;
}

/* The version now holding AWSCURRENT ("" when none); PL_ENOTFOUND when there is no secret. */
static int current_version(struct pl_store_aws *a, const char *name, char *version,
                           struct pl_err *err)
{
	json_t *req = json_pack("{s:s}", "SecretId", name);
	struct answer ans;
	const char *cur;
	int r;

	version[0] = '\0';
	r = call(a, "DescribeSecret", req, &ans, err);
	json_decref(req);
	if (r == PL_ENOTFOUND)
		return pl_store_not_found(name, NULL, err);
	if (r)
		return r;
	if (json_object_get(ans.doc, "DeletedDate")) {
		pl_err_set(err, PL_ECONFLICT, "secret %s is scheduled for deletion in AWS", name);
		r = pl_err_hint(
		    err, "restore it (aws secretsmanager restore-secret) or delete it for good");
	} else if ((cur = holder(json_object_get(ans.doc, "VersionIdsToStages"), "AWSCURRENT"))) {
		pl_strlcpy(version, cur, PL_STORE_VERSION_MAX);
	}
	answer_release(&ans);
	return r;
}

/* CreateSecret with token as its first version; PL_ECONFLICT when the name exists. */
static int create(struct pl_store_aws *a, const char *name, const json_t *value, const char *token,
                  struct pl_err *err)
{
	json_t *req = json_pack("{s:s, s:s, s:O}", "Name", name, "ClientRequestToken", token,
	                        "SecretString", value);
	struct answer ans;
	int r = call(a, "CreateSecret", req, &ans, err);

	json_decref(req);
	if (r == PL_ECONFLICT)
		pl_err_set(err, PL_ECONFLICT, "secret %s already exists", name);
	answer_release(&ans);
	return r;
}

/*
 * PutSecretValue as version token (only AWSPENDING when pending is set, else AWSCURRENT).
 * *current says whether the version holds AWSCURRENT now: a retry of a write that already
 * won. PL_ENOTFOUND when there is no secret.
 */
static int put_value(struct pl_store_aws *a, const char *name, const json_t *value,
                     const char *token, int pending, int *current, struct pl_err *err)
{
	json_t *req = json_pack("{s:s, s:s, s:O}", "SecretId", name, "ClientRequestToken", token,
	                        "SecretString", value);
	struct answer ans;
	int r;

	*current = 0;
	if (pending)
		json_object_set_new(req, "VersionStages", json_pack("[s]", "AWSPENDING"));
	r = call(a, "PutSecretValue", req, &ans, err);
	json_decref(req); /* the value is the caller's to wipe, and may be sent again */
	if (!r)
		*current = has_stage(json_object_get(ans.doc, "VersionStages"), "AWSCURRENT");
	answer_release(&ans);
	return r;
}

/*
 * The compare-and-swap: AWSCURRENT moves from expected to token, or AWS refuses because
 * expected no longer holds it. A refusal is re-read, since a retried swap whose first answer
 * was lost is refused too: success if AWSCURRENT is already ours, else PL_ECONFLICT.
 */
static int swap(struct pl_store_aws *a, const char *name, const char *token, const char *expected,
                struct pl_err *err)
{
	json_t *req =
	    json_pack("{s:s, s:s, s:s, s:s}", "SecretId", name, "VersionStage", "AWSCURRENT",
	              "MoveToVersionId", token, "RemoveFromVersionId", expected);
	char cur[PL_STORE_VERSION_MAX];
	struct answer ans;
	int r = call(a, "UpdateSecretVersionStage", req, &ans, err);

	json_decref(req);
	answer_release(&ans);
	if (r != PL_ENOTFOUND && strcmp(ans.type, "InvalidParameterException"))
		return r;
	pl_err_clear(err);
	if ((r = current_version(a, name, cur, err)) == PL_ENOTFOUND)
		return conflict(name, "", expected, err);
	if (r)
		return r;
	return strcmp(cur, token) ? conflict(name, cur, expected, err) : 0;
}

/* Unconditional: whatever is current is replaced (a few rounds if other writers race us). */
static int put_any(struct pl_store_aws *a, const char *key, const char *name, const json_t *value,
                   const struct pl_secret *raw, char *version, struct pl_err *err)
{
	char cur[PL_STORE_VERSION_MAX], token[TOKEN_LEN + 1];
	int r = PL_ECONFLICT, is_current;

	for (int round = 0; round < 3; round++) {
		pl_err_clear(err);
		r = current_version(a, name, cur, err);
		if (r == PL_ENOTFOUND) {
			pl_err_clear(err);
			client_token(key, "put", name, "", raw, token);
			r = create(a, name, value, token, err);
			if (r == PL_ECONFLICT)
				continue; /* created by someone else meanwhile */
		} else if (!r) {
			client_token(key, "put", name, cur, raw, token);
			r = put_value(a, name, value, token, 0, &is_current, err);
			/* Not current: this very write was made before, then replaced. */
			if (!r && !is_current && cur[0])
				r = swap(a, name, token, cur, err);
			if (r == PL_ECONFLICT || r == PL_ENOTFOUND)
				continue;
		}
		if (!r)
			pl_strlcpy(version, token, PL_STORE_VERSION_MAX);
		return r;
	}
	return r;
}

static int aws_put_if(void *be, const char *name, const struct pl_secret *value,
                      const char *expected, char *version, struct pl_err *err)
{
	struct pl_store_aws *a = be;
	char token[TOKEN_LEN + 1] = "";
	struct creds c;
	json_t *v = NULL;
	int r, is_current;

	if ((r = get_creds(a, &c, err)) || (r = value_json(name, value, &v, err)))
		return r;
	if (!expected) {
		r = put_any(a, c.secret, name, v, value, version, err);
		goto out;
	}
	client_token(c.secret, "put-if", name, expected, value, token);
	if (!expected[0]) {
		char cur[PL_STORE_VERSION_MAX];

		/* Say which version is there, as the file store does, when AWS says. */
		if ((r = create(a, name, v, token, err)) == PL_ECONFLICT) {
			struct pl_err ignored = PL_ERR_INIT;

			if (!current_version(a, name, cur, &ignored))
				r = conflict(name, cur, expected, err);
		}
	} else {
		r = put_value(a, name, v, token, 1, &is_current, err);
		if (r == PL_ENOTFOUND)
			r = conflict(name, "", expected, err);
		else if (!r && !is_current)
			r = swap(a, name, token, expected, err);
	}
	if (!r)
		pl_strlcpy(version, token, PL_STORE_VERSION_MAX);
out:
	pl_json_wipe_decref(v);
	return r;
}

/* VersionIds are 32 to 64 characters: anything else cannot name one. */
static int valid_version(const char *v)
{
	size_t n = strlen(v);

	return n >= 32 && n <= TOKEN_LEN && !has_ctl(v);
}

static int aws_get(void *be, const char *name, const char *version_in, struct pl_secret *out,
                   char *version_out, struct pl_err *err)
{
	struct pl_store_aws *a = be;
	struct answer ans;
	json_t *req, *s, *stages;
	const char *vid;
	int r;

	if (version_in && !valid_version(version_in))
		return pl_store_not_found(name, version_in, err);
	req = json_pack("{s:s}", "SecretId", name);
	if (version_in)
		json_object_set_new(req, "VersionId", json_string(version_in));
	r = call(a, "GetSecretValue", req, &ans, err);
	json_decref(req);
	/* InvalidRequestException: scheduled for deletion, which is gone as far as parlae cares. */
	if (r == PL_ENOTFOUND || (r && !strcmp(ans.type, "InvalidRequestException")))
		return pl_store_not_found(name, version_in, err);
	if (r)
		return r;
	s = json_object_get(ans.doc, "SecretString");
	stages = json_object_get(ans.doc, "VersionStages");
	vid = json_string_value(json_object_get(ans.doc, "VersionId"));
	/* As in the file store, only the current and the previous version are readable. */
	if (version_in && !has_stage(stages, "AWSCURRENT") && !has_stage(stages, "AWSPREVIOUS")) {
		r = pl_store_not_found(name, version_in, err);
	} else if (!json_is_string(s) || !vid) {
		pl_err_set(err, PL_ECONFIG, "secret %s holds no text value (SecretString)", name);
		r = pl_err_hint(err, "parlae writes text; was it written by another tool?");
	} else {
		pl_secret_set(out, json_string_value(s), json_string_length(s));
		if (version_out)
			pl_strlcpy(version_out, vid, PL_STORE_VERSION_MAX);
	}
	answer_release(&ans);
	return r;
}

static int aws_del(void *be, const char *name, struct pl_err *err)
{
	struct pl_store_aws *a = be;
	struct answer ans;
	json_t *req;
	int r;

	req = json_pack("{s:s, s:b}", "SecretId", name, "ForceDeleteWithoutRecovery", 1);
	r = call(a, "DeleteSecret", req, &ans, err);
	json_decref(req);
	answer_release(&ans);
	/* Gone on a retry: the first attempt, whose answer was lost, deleted it. */
	if (r == PL_ENOTFOUND && ans.attempts > 1) {
		pl_err_clear(err);
		return 0;
	}
	return r == PL_ENOTFOUND ? pl_store_not_found(name, NULL, err) : r;
}

static void iso_date(const json_t *v, char *out, size_t size)
{
	struct tm tm;
	time_t t;
	double d;

	out[0] = '\0';
	if (!json_is_number(v))
		return;
	/* Refuse what time_t cannot hold before the cast (also false for NaN). */
	d = json_number_value(v);
	if (!(d > 0 && d < 1e11))
		return;
	t = (time_t)d;
	if (gmtime_r(&t, &tm))
		strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One ListSecrets item into e; 0 when it is not a secret parlae could have written. */
static int list_item(const json_t *item, struct pl_store_entry *e)
{
	struct pl_err ignored = PL_ERR_INIT;
	const char *name = json_string_value(json_object_get(item, "Name"));
	const json_t *map = json_object_get(item, "SecretVersionsToStages");
	const char *cur = holder(map, "AWSCURRENT"), *prev = holder(map, "AWSPREVIOUS");
	const json_t *when = json_object_get(item, "LastChangedDate");

	if (!name || pl_store_check_name(name, &ignored) || !cur || strlen(cur) > TOKEN_LEN ||
	    (prev && strlen(prev) > TOKEN_LEN))
		return 0;
	memset(e, 0, sizeof(*e));
	pl_strlcpy(e->name, name, sizeof(e->name));
	pl_strlcpy(e->version, cur, sizeof(e->version));
	pl_strlcpy(e->previous, prev ? prev : "", sizeof(e->previous));
	iso_date(json_is_number(when) ? when : json_object_get(item, "CreatedDate"), e->updated_at,
	         sizeof(e->updated_at));
	return 1;
}

static int aws_list(void *be, struct pl_store_entry **out, size_t *n, struct pl_err *err)
{
	struct pl_store_aws *a = be;
	char *next = NULL;
	size_t alloc = 16;
	int r = 0;

	*out = pl_xcalloc(alloc, sizeof(**out));
	*n = 0;
	for (int page = 0; page < LIST_PAGES_MAX; page++) {
		json_t *req = json_pack("{s:i}", "MaxResults", 100), *item;
		struct answer ans;
		const char *tok;
		size_t i;

		if (next)
			json_object_set_new(req, "NextToken", json_string(next));
		free(next);
		next = NULL;
		r = call(a, "ListSecrets", req, &ans, err);
		json_decref(req);
		if (r)
			break;
		json_array_foreach(json_object_get(ans.doc, "SecretList"), i, item)
		{
			if (*n == alloc) {
				alloc *= 2;
				*out = pl_xrealloc(*out, alloc * sizeof(**out));
			}
			*n += (size_t)list_item(item, &(*out)[*n]);
		}
		tok = json_string_value(json_object_get(ans.doc, "NextToken"));
		if (tok && *tok)
			next = pl_xstrdup(tok);
		answer_release(&ans);
		if (!next)
			break;
	}
	free(next);
	return r;
}

/* Credentials present and accepted by one cheap authenticated call; no master key here. */
static void aws_check(void *be, struct pl_store_health *h)
{
	struct pl_store_aws *a = be;
	json_t *req = json_pack("{s:i}", "MaxResults", 1);
	struct answer ans;

	h->reachable = !call(a, "ListSecrets", req, &ans, &h->err);
	json_decref(req);
	answer_release(&ans);
}

const struct pl_store_ops pl_store_aws_ops = {
    .prefix = "aws:",
    .name = "aws",
    .parse = aws_parse,
    .open = aws_open,
    .close = aws_close,
    .get = aws_get,
    .put_if = aws_put_if,
    .del = aws_del,
    .list = aws_list,
    .check = aws_check,
    .rekey = NULL,
};
