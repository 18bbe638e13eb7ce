/*
 * Practice accounts: the tenant that every other record belongs to.
 */
#ifndef PL_ACCOUNT_H
#define PL_ACCOUNT_H

#include <stddef.h>

#include "err.h"
#include "session.h"

struct pl_account {
	char id[64];
	char *name;          /* NULL when none was given */
	char *email;         /* the contact address registrations are matched by, or NULL */
	char status[16];     /* pending | connecting | connected | failed */
	char created_at[32]; /* ISO 8601 UTC */
};

struct pl_account_list {
	struct pl_account *v;
	size_t n;
};

/* Whether id is 1-63 of a-z 0-9 _ -, starting with a letter or digit. */
int pl_account_id_valid(const char *id);

/* PL_EUSAGE with a message when id is not a valid account id. */
int pl_account_check_id(const char *id, struct pl_err *err);

/* PL_ENOTFOUND, naming the nearest account or saying how to create it, unless it exists. */
int pl_account_require(struct pl_db *db, const char *id, struct pl_err *err);

/* The PL_ENOTFOUND of an account id that is not there: "did you mean" the nearest, if any. */
int pl_account_missing(struct pl_db *db, const char *id, struct pl_err *err);

/* PL_EUSAGE unless email looks like an address (one '@', no blanks, at most 254 bytes). */
int pl_account_check_email(const char *email, struct pl_err *err);

/* Create an account (email may be NULL); PL_ECONFLICT if the id exists. Audited, without the
 * email; with s->dry_run only checked. */
int pl_account_add(struct pl_session *s, const char *id, const char *name, const char *email,
                   struct pl_err *err);

/* Every account, ordered by id; release with pl_account_list_release. */
int pl_account_list(struct pl_session *s, struct pl_account_list *out, struct pl_err *err);
void pl_account_list_release(struct pl_account_list *l);

/* The contract's connection status for an integration's database status (NULL: no row). */
const char *pl_account_status_name(const char *db_status);

/*
 * SQL for a pms_integrations row named p, as every reader shows it. A row still CONNECTING
 * when no OAuth state of its account can complete it any more was abandoned: the practice
 * never came back, or a callback could not record how it ended (the database went away).
 * It reads as ERROR with PL_ACCOUNT_NOT_COMPLETED, without anyone having to write that.
 */
#define PL_ACCOUNT_NOT_COMPLETED "authorization was not completed"
#define PL_ACCOUNT_ABANDONED_SQL                                                                   \
	"(p.status = 'CONNECTING' AND NOT EXISTS (SELECT 1 FROM oauth_states o"                    \
	" WHERE o.account_id = p.account_id AND o.provider = p.provider"                           \
	" AND o.expires_at > now()))"
#define PL_ACCOUNT_STATUS_SQL                                                                      \
	"CASE WHEN " PL_ACCOUNT_ABANDONED_SQL " THEN 'ERROR' ELSE p.status END"
#define PL_ACCOUNT_ERROR_SQL                                                                       \
	"CASE WHEN " PL_ACCOUNT_ABANDONED_SQL " THEN '" PL_ACCOUNT_NOT_COMPLETED "'"               \
	" ELSE p.last_error END"

#endif
