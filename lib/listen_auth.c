/*
 * vapi listen's authentication decision (see listen_auth.h). Secrets and tokens are compared
 * through their SHA-256 in constant time, so that neither their length nor their first
 * differing byte shows in the time taken; a refusal names the check that failed, never a byte
 * of what the request sent.
 */
#include "listen_auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vapi.h"
#include "banned.h"

/* Whether two strings are equal, in time that depends on neither (their hashes compared). */
static int same_secret(const char *a, const char *b)
{
	unsigned char ha[SHA256_DIGEST_LENGTH], hb[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)a, strlen(a), ha);
	SHA256((const unsigned char *)b, strlen(b), hb);
	return CRYPTO_memcmp(ha, hb, sizeof(ha)) == 0;
}

/* The bearer token of an Authorization header, or NULL when it is not a bearer one. */
static const char *bearer(const char *v)
{
	if (!v || strncasecmp(v, "Bearer ", 7))
		return NULL;
	for (v += 7; *v == ' '; v++)
		;
	return v;
}

/* An x-timestamp within PL_LISTEN_SKEW of now: NULL, else why not. */
static const char *check_timestamp(const char *ts, time_t now)
{
	char *end;
	long long t;

	if (strlen(ts) > 16)
		return "x-timestamp is not a number";
	errno = 0;
	t = strtoll(ts, &end, 10);
	if (end == ts || *end || errno)
		return "x-timestamp is not a number";
	if (llabs(t - (long long)now) > PL_LISTEN_SKEW)
		return "x-timestamp outside 300 s";
	return NULL;
}

const char *pl_listen_auth_headers(enum pl_listen_auth mode, const char *secret,
                                   const struct pl_listen_creds *c, time_t now,
                                   struct pl_listen_authn *a)
{
	const char *token = bearer(c->authorization), *why;
	int any = mode == PL_LISTEN_AUTH_ANY;

	memset(a, 0, sizeof(*a));
	if (!secret || !*secret)
		return "no secret to check against";
	if (any && !c->secret && !token && !c->signature)
		return "no credentials";
	if ((any || mode == PL_LISTEN_AUTH_HMAC) && (c->signature || !any)) {
		if (!c->signature || !c->timestamp)
			return c->signature ? "no x-timestamp" : "no x-signature";
		if ((why = check_timestamp(c->timestamp, now)))
			return why;
		a->used = PL_LISTEN_AUTH_HMAC;
		a->hmac = 1;
	}
	if ((any || mode == PL_LISTEN_AUTH_SECRET) && (c->secret || !any)) {
		if (!c->secret)
			return "no x-vapi-secret";
		if (!same_secret(c->secret, secret))
			return "wrong x-vapi-secret";
		if (!a->used)
			a->used = PL_LISTEN_AUTH_SECRET;
	}
	if ((any || mode == PL_LISTEN_AUTH_BEARER) && (token || !any)) {
		if (!token)
			return "no bearer token";
		if (!same_secret(token, secret))
			return "wrong bearer token";
		if (!a->used)
			a->used = PL_LISTEN_AUTH_BEARER;
	}
	return NULL;
}

const char *pl_listen_auth_body(const char *secret, const struct pl_listen_creds *c,
                                const char *body, size_t len, struct pl_listen_authn *a)
{
	char want[65], got[65];
	size_t n;
	int r;

	a->signature[0] = '\0';
	if (!a->hmac)
		return NULL; /* authenticated by its headers */
	if (!c->signature || !c->timestamp || !secret)
		return "bad signature"; /* not what the headers' checks saw */
	if ((n = strlen(c->signature)) != 64)
		return "bad signature";
	for (size_t i = 0; i < n; i++)
		got[i] = (char)(c->signature[i] >= 'A' && c->signature[i] <= 'F'
		                    ? c->signature[i] - 'A' + 'a'
		                    : c->signature[i]);
	got[64] = '\0';
	pl_vapi_sign(secret, c->timestamp, body, len, want);
	r = CRYPTO_memcmp(want, got, 64);
	explicit_bzero(want, sizeof(want));
	if (r)
		return "bad signature";
	memcpy(a->signature, got, sizeof(got));
	return NULL;
}

const char *pl_listen_auth(enum pl_listen_auth mode, const char *secret,
                           const struct pl_listen_creds *c, const char *body, size_t len,
                           time_t now, struct pl_listen_authn *a)
{
	const char *why = pl_listen_auth_headers(mode, secret, c, now, a);

	return why ? why : pl_listen_auth_body(secret, c, body, len, a);
}
