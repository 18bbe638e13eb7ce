#include "state.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
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

static void b64url(struct pl_buf *out, const unsigned char *data, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)data[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (unsigned)data[i + 1] << 8;
		if (n > 2)
			v |= data[i + 2];
		pl_buf_addch(out, tab[(v >> 18) & 63]);
		pl_buf_addch(out, tab[(v >> 12) & 63]);
		if (n > 1)
			pl_buf_addch(out, tab[(v >> 6) & 63]);
		if (n > 2)
			pl_buf_addch(out, tab[v & 63]);
	}
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict: only the URL alphabet, no padding, no impossible lengths. */
static int b64url_decode(const char *s, size_t len, struct pl_buf *out)
{
	unsigned v = 0;
	int bits = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int d = b64url_value(s[i]);

		if (d < 0)
			return -1;
		v = (v << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			pl_buf_addch(out, (char)((v >> bits) & 0xff));
		}
	}
	/* Leftover bits must be zero, so each state has exactly one encoding. */
	return bits && (v & ((1u << bits) - 1)) ? -1 : 0;
}

static void mac(const struct pl_secret *key, const char *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	HMAC(EVP_sha256(), key->data, (int)key->len, (const unsigned char *)data, len, out, &n);
}

char *pl_state_sign(const struct pl_secret *key, const struct pl_state *st)
{
	struct pl_buf payload = PL_BUF_INIT, out = PL_BUF_INIT;
	unsigned char sig[32];

	pl_buf_addf(&payload, "{\"acct\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"nonce\":\"%s\"}",
	            st->account, (long long)st->issued_at, (long long)st->expires_at, st->nonce);
	b64url(&out, (const unsigned char *)payload.buf, payload.len);
	mac(key, out.buf, out.len, sig);
	pl_buf_addch(&out, '.');
	b64url(&out, sig, sizeof(sig));
	pl_buf_release(&payload);
	return pl_buf_detach(&out, NULL);
}

static int bad(struct pl_err *err, const char *why)
{
	pl_err_set(err, PL_ESECURITY, "the OAuth state is %s", why);
	return pl_err_hint(err, "start again with 'parlae sikka oauth-url ACCOUNT'");
}

static int decode_payload(const char *text, size_t len, struct pl_state *out, struct pl_err *err)
{
	struct pl_buf raw = PL_BUF_INIT;
	struct pl_err ignored = PL_ERR_INIT;
	json_t *doc = NULL, *iat, *exp;
	const char *acct, *nonce;
	int r = 0;

	if (b64url_decode(text, len, &raw) < 0 ||
	    pl_json_parse(raw.buf, raw.len, MAX_STATE, 2, "state", &doc, &ignored)) {
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
	pl_buf_release(&raw);
	return r;
}

int pl_state_verify(const struct pl_secret *key, const char *text, time_t now, struct pl_state *out,
                    struct pl_err *err)
{
	struct pl_buf sig = PL_BUF_INIT;
	unsigned char want[32];
	const char *dot;
	size_t len = strlen(text);
	int r;

	memset(out, 0, sizeof(*out));
	dot = strchr(text, '.');
	if (len > MAX_STATE || !dot || strchr(dot + 1, '.'))
		return bad(err, "malformed");
	/* The signature is checked before anything in the payload is believed. */
	mac(key, text, (size_t)(dot - text), want);
	if (b64url_decode(dot + 1, strlen(dot + 1), &sig) < 0 || sig.len != sizeof(want) ||
	    CRYPTO_memcmp(sig.buf, want, sizeof(want)) != 0) {
		pl_buf_release(&sig);
		return bad(err, "not signed by this installation (bad signature)");
	}
	pl_buf_release(&sig);
	if ((r = decode_payload(text, (size_t)(dot - text), out, err)))
		return r;
	if (now >= out->expires_at)
		return bad(err, "expired");
	return 0;
}
