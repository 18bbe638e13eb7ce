/*
 * The Vapi phone numbers that map incoming calls to a practice account, and where a
 * transfer to a human goes.
 */
#ifndef PL_PHONE_H
#define PL_PHONE_H

#include <stddef.h>

#include "err.h"
#include "session.h"

struct pl_phone {
	char vapi_id[128];
	char account[64];
	char number[32];
	char staff_forward[32]; /* "" when none */
	int transfer_enabled;
};

/* Register (or update) a number; numbers must be E.164 (+ and 8-15 digits). Audited. */
int pl_phone_add(struct pl_session *s, const struct pl_phone *p, struct pl_err *err);

/* Every number, or one account's (account NULL: all); *out freed by the caller. */
int pl_phone_list(struct pl_session *s, const char *account, struct pl_phone **out, size_t *n,
                  struct pl_err *err);

#endif
