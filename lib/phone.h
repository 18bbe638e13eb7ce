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

/* What `vapi phone add` asks for. */
struct pl_phone_req {
	const char *vapi_id, *account, *number;
	const char *staff_forward; /* NULL: not given (kept when the id stays with its account) */
	int transfer;              /* -1 not given (kept likewise), 0 off, 1 on */
	int move;                  /* may take the id from the account it is registered to */
};

/* What it did (or, with s->dry_run, would do). */
struct pl_phone_change {
	struct pl_phone phone; /* the registration as it now stands */
	char moved_from[64];   /* the account the id was taken from; "" when none */
	int created;           /* 1 when the id was not registered before */
};

/*
 * Register a number, or update its registration. Numbers must be E.164 (+ and 8-15 digits).
 * An id registered to another account is PL_ECONFLICT (naming it) unless req->move; a move
 * starts from the settings given (the other practice's staff line never follows the number),
 * while an update of the same account keeps those not given. Audited (a move with both
 * accounts); with s->dry_run only checked, and out says what would be.
 */
int pl_phone_add(struct pl_session *s, const struct pl_phone_req *req, struct pl_phone_change *out,
                 struct pl_err *err);

/*
 * Remove the registration of vapi_id; PL_ENOTFOUND when there is none. out receives what was
 * (or, with s->dry_run, would be) removed. Audited.
 */
int pl_phone_remove(struct pl_session *s, const char *vapi_id, struct pl_phone *out,
                    struct pl_err *err);

/* Every number, or one account's (account NULL: all); *out freed by the caller. */
int pl_phone_list(struct pl_session *s, const char *account, struct pl_phone **out, size_t *n,
                  struct pl_err *err);

#endif
