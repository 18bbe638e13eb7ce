#include "state.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "encode.h"
#include "json.h"
#include "banned.h"

#define MAX_STATE 1024

int pl_state_key(const struct pl_config *cfg, struct pl_secret *key, struct pl_err *err)
{
	const char *s = pl_config_get(cfg, "PARLAE_STATE_SECRET");

	if (!s) {
		pl_err_set(err, PL_ECONFIG,
		           "PARLAE_STATE_SECRET is not set: it signs the OAuth state");
		return pl_err_hint(err, "export PARLAE_STATE_SECRET with at least 32 random bytes, "
		                        "e.g. from 'openssl rand -hex 32'");
	}
	if (strlen(s) < PL_STATE_MIN_SECRET) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_STATE_SECRET is shorter than %d bytes",
		           PL_STATE_MIN_SECRET);
		return pl_err_hint(
		    err, "use at least 32 random bytes, e.g. from 'openssl rand -hex 32'");
	}
	pl_secret_set(key, s, strlen(s));
	return 0;
}

/* The state's one spelling in base64: URL alphabet, no padding, unused bits zero. */
#define B64 (PL_BASE64_URL | PL_BASE64_STRICT)

/* HMAC-SHA256; -1 only if libcrypto fails (out of memory, no SHA-256). */
static int mac(const struct pl_secret *key, const char *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	if (!HMAC(EVP_sha256(), key->data, (int)key->len, (const unsigned char *)data, len, out,
	          &n) ||
	    n != 32)
		return -1;
	return 0;
}

char *pl_state_sign(const struct pl_secret *key, const struct pl_state *st)
{
	struct pl_buf payload = PL_BUF_INIT, out = PL_BUF_INIT;
	unsigned char sig[32];

	pl_buf_addf(&payload, "{\"acct\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"nonce\":\"%s\"}",
	            st->account, (long long)st->issued_at, (long long)st->expires_at, st->nonce);
	pl_base64_encode(&out, payload.buf, payload.len, B64);
	pl_buf_release(&payload);
	if (mac(key, out.buf, out.len, sig) < 0) {
		pl_buf_release(&out);
		return NULL;
	}
	pl_buf_addch(&out, '.');
	pl_base64_encode(&out, sig, sizeof(sig), B64);
	return pl_buf_detach(&out, NULL);
}

static int bad(struct pl_err *err, const char *why)
{
	pl_err_set(err, PL_ESECURITY, "the OAuth state is %s", why);
	return pl_err_hint(err, "start again with 'parlae sikka oauth-url ACCOUNT'");
}

static int decode_payload(const char *text, size_t len, struct pl_state *out, struct pl_err *err)
{
	unsigned char raw[MAX_STATE];
	size_t raw_len;
	struct pl_err ignored = PL_ERR_INIT;
	json_t *doc = NULL, *iat, *exp;
	const char *acct, *nonce;
	int r = 0;

	if (pl_base64_decode(text, len, B64, raw, sizeof(raw), &raw_len) < 0 ||
	    pl_json_parse((const char *)raw, raw_len, MAX_STATE, 2, "state", &doc, &ignored)) {
		r = bad(err, "malformed");
		goto out;
	}
	acct = json_string_value(json_object_get(doc, "acct"));
	nonce = json_string_value(json_object_get(doc, "nonce"));
	iat = json_object_get(doc, "iat");
	exp = json_object_get(doc, "exp");
	if (!acct || !pl_account_id_valid(acct) || !nonce || strlen(nonce) != 32 ||
	    strspn(nonce, "0123456789abcdef") != 32 || !json_is_integer(iat) ||
	    !json_is_integer(exp)) {
		r = bad(err, "malformed");
		goto out;
	}
	pl_strlcpy(out->account, acct, sizeof(out->account));
	pl_strlcpy(out->nonce, nonce, sizeof(out->nonce));
	out->issued_at = (time_t)json_integer_value(iat);
	out->expires_at = (time_t)json_integer_value(exp);
out:
	json_decref(doc);
	return r;
}

int pl_state_verify(const struct pl_secret *key, const char *text, time_t now, struct pl_state *out,
                    struct pl_err *err)
{
	unsigned char want[32], sig[32];
	size_t sig_len;
	const char *dot;
	size_t len = strlen(text);
	int r;

	memset(out, 0, sizeof(*out));
	dot = strchr(text, '.');
	if (len > MAX_STATE || !dot || strchr(dot + 1, '.'))
		return bad(err, "malformed");
	/* The signature is checked before anything in the payload is believed. */
	if (mac(key, text, (size_t)(dot - text), want) < 0)
		return pl_err_set(err, PL_EINTERNAL, "cannot compute the OAuth state's signature");
	if (pl_base64_decode(dot + 1, strlen(dot + 1), B64, sig, sizeof(sig), &sig_len) < 0 ||
	    sig_len != sizeof(want) || CRYPTO_memcmp(sig, want, sizeof(want)) != 0)
		return bad(err, "not signed by this installation (bad signature)");
	if ((r = decode_payload(text, (size_t)(dot - text), out, err)))
		return r;
	if (now >= out->expires_at)
		return bad(err, "expired");
	return 0;
}
