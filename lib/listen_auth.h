/*
 * vapi listen's authentication, apart from the server: which credential a request carries, and
 * whether it is right, from its headers and body alone. Pure (no database, no I/O), so that the
 * decision can be tested and fuzzed on its own; lib/listen.c feeds it MHD's headers. That an
 * HMAC signature is accepted only once is the caller's step after it (a database's).
 */
#ifndef PL_LISTEN_AUTH_H
#define PL_LISTEN_AUTH_H

#include <stddef.h>
#include <time.h>

#define PL_LISTEN_SKEW 300 /* seconds an HMAC x-timestamp may differ from now */

enum pl_listen_auth {
	PL_LISTEN_AUTH_ANY, /* whichever of the three the request carries */
	PL_LISTEN_AUTH_SECRET,
	PL_LISTEN_AUTH_HMAC,
	PL_LISTEN_AUTH_BEARER,
};

/* The headers that carry credentials, as received (any bytes); NULL when absent. */
struct pl_listen_creds {
	const char *secret;        /* X-Vapi-Secret */
	const char *authorization; /* Authorization ("Bearer TOKEN") */
	const char *signature;     /* X-Signature: hex HMAC-SHA256 of "TIMESTAMP.BODY" */
	const char *timestamp;     /* X-Timestamp: Unix seconds */
};

/* What the checks found, from the headers' to the body's. */
struct pl_listen_authn {
	enum pl_listen_auth used; /* the credential relied on (HMAC, else secret, else bearer) */
	int hmac;                 /* the HMAC is to be checked over the body */
	char signature[65];       /* once checked: the signature, lowercase hex, else "" */
};

/*
 * The checks on the headers alone, before the body is read: the credentials mode asks for
 * (PL_LISTEN_AUTH_ANY: each of those the request carries, at least one), a secret or bearer
 * token equal to secret (compared in constant time), an HMAC timestamp within PL_LISTEN_SKEW of
 * now. NULL when the request may go on, with *a filled; else why it is refused: a fixed phrase,
 * never a byte of the request.
 */
const char *pl_listen_auth_headers(enum pl_listen_auth mode, const char *secret,
                                   const struct pl_listen_creds *c, time_t now,
                                   struct pl_listen_authn *a);

/*
 * The HMAC over the body, when the headers' checks said so (a->hmac): NULL when it is right,
 * with a->signature set for the caller to record as accepted once; else why not.
 */
const char *pl_listen_auth_body(const char *secret, const struct pl_listen_creds *c,
                                const char *body, size_t len, struct pl_listen_authn *a);

/* Both in turn: the whole decision on one request (but the signature's single use). */
const char *pl_listen_auth(enum pl_listen_auth mode, const char *secret,
                           const struct pl_listen_creds *c, const char *body, size_t len,
                           time_t now, struct pl_listen_authn *a);

#endif
