/*
 * OAuth state for the Sikka onboarding redirect: base64url(payload).base64url(HMAC-SHA256),
 * signed with PARLAE_STATE_SECRET (at least 32 bytes). The payload carries the account, the
 * issue and expiry times and a 128-bit nonce; single use is enforced by the database
 * (oauth_states), not here.
 */
#ifndef PL_STATE_H
#define PL_STATE_H

#include <time.h>

#include "config.h"
#include "err.h"
#include "store.h"

#define PL_STATE_MIN_SECRET 32

struct pl_state {
	char account[64];
	char nonce[33]; /* 32 lowercase hex digits */
	time_t issued_at;
	time_t expires_at;
};

/* The signing key from PARLAE_STATE_SECRET; PL_ECONFIG if unset or shorter than 32 bytes. */
int pl_state_key(const struct pl_config *cfg, struct pl_secret *key, struct pl_err *err);

/* Sign st into a new string (the caller frees it); NULL only if libcrypto fails. */
char *pl_state_sign(const struct pl_secret *key, const struct pl_state *st);

/*
 * Check the signature (constant time) and the expiry against now, and decode. PL_ESECURITY
 * with the reason ("malformed", "bad signature", "expired") otherwise.
 */
int pl_state_verify(const struct pl_secret *key, const char *text, time_t now, struct pl_state *out,
                    struct pl_err *err);

#endif
