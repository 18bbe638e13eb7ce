/*
 * Sikka's marketplace handshake, from the terminal: a registration (a practice bought the app)
 * or a cancellation, PascalCase JSON as Sikka POSTs it, kept in pms_registrations whatever
 * becomes of it, matched to an account by its contact email, and carried through the
 * callback's steps 4-6 (pl_pms_connect) once Sikka lists the practice. The body's Source is
 * never taken as authentication: handling one is the operator's act. Audited with ids only.
 */
#ifndef PL_HANDSHAKE_H
#define PL_HANDSHAKE_H

#include <stddef.h>

#include "err.h"
#include "session.h"

#define PL_HANDSHAKE_MAX_BODY (1 << 20)

struct pl_handshake_res {
	long long row;          /* the pms_registrations row kept; 0 when none was */
	char registration[129]; /* PartnerRegistrationID; "" for a malformed body */
	char customer[129];     /* MasterCustomerID */
	char account[64];       /* the matched account, "" when none */
	/* pending | setup_required | active | matched (connecting failed) | cancelled |
	 * unmatched | duplicate | malformed */
	char state[16];
	long long duplicate_of;
	char office_id[64], practice_id[64];
	char note[512]; /* why it is where it is, "" when nothing needs saying */
};

/*
 * pms purchase: keep the registration, match it by EmailAddress, then connect the practice
 * (ACTIVE) or mark it SETUP_REQUIRED. 0 whatever the state (res->state says); PL_EBADINPUT for
 * a body that is not a registration (kept as received: res->row); other codes when the
 * registration could not be kept, or connecting failed (kept, matched: assign again).
 */
int pl_handshake_purchase(struct pl_session *s, const char *body, size_t len,
                          struct pl_handshake_res *res, struct pl_err *err);

/*
 * pms cancel: keep the cancellation, and make the integration its registration matched (by
 * PartnerRegistrationID, else MasterCustomerID, else EmailAddress) INACTIVE with the reason;
 * no other account is touched. PL_ENOTFOUND (kept, unmatched) when it matches nothing.
 */
int pl_handshake_cancel(struct pl_session *s, const char *body, size_t len,
                        struct pl_handshake_res *res, struct pl_err *err);

/* pms assign: match a pending registration to account, then as pms purchase. */
int pl_handshake_assign(struct pl_session *s, const char *registration, const char *account,
                        struct pl_handshake_res *res, struct pl_err *err);

struct pl_handshake_row {
	long long row, duplicate_of;
	char kind[16], state[16], received_at[32];
	/* owned, NULL when none; practice_name and email only while it is pending */
	char *registration, *customer, *order, *account, *practice_name, *email, *note;
};

struct pl_handshake_list {
	struct pl_handshake_row *v;
	size_t n;
};

/* Every registration, those waiting for an operator first (pending: only those: pending,
 * unmatched, malformed), then the newest first. */
int pl_handshake_list(struct pl_session *s, int pending, struct pl_handshake_list *out,
                      struct pl_err *err);
void pl_handshake_list_release(struct pl_handshake_list *l);

struct pl_store;
struct pl_sikka;

/*
 * SETUP_REQUIRED completes itself: if the account's integration is SETUP_REQUIRED and Sikka
 * now lists its registration's practice, connect it (access on, a key, ACTIVE), exactly once
 * across processes (rotation's per-account lock, and the row changes only from
 * SETUP_REQUIRED). *completed says whether this call did it. Nothing to do, or another process
 * holding the lock, is 0; so is Sikka not listing it yet (the row's last_error says why).
 */
int pl_handshake_complete(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
                          const char *account, int *completed, struct pl_err *err);

/* The accounts whose integration is SETUP_REQUIRED (a NULL-terminated array of owned strings,
 * free each and the array). */
int pl_handshake_waiting(struct pl_session *s, char ***accounts, struct pl_err *err);

#endif
