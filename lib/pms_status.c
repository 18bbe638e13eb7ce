/* An account's connection status, and the NOTIFY-driven wait for it to settle. */
#include "pms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "encode.h"
#include "handshake.h"
#include "sikka.h"
#include "store.h"
#include "banned.h"

#define SETUP_LOOK_AGAIN 2.0 /* seconds between looks while SETUP_REQUIRED */

void pl_pms_status_release(struct pl_pms_status *st)
{
	free(st->practice_name);
	free(st->pms_type);
	free(st->office_id);
	free(st->last_error);
	memset(st, 0, sizeof(*st));
}

static char *dup_or_null(const char *s)
{
	return s ? pl_xstrdup(s) : NULL;
}

/*
 * The account's status as it reads (see PL_ACCOUNT_STATUS_SQL). *valid_for: while connecting,
 * how many seconds until its last OAuth state expires and it reads failed; else -1.
 */
static int read_status(struct pl_db *db, const char *account, struct pl_pms_status *st,
                       double *valid_for, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	const char *v;
	int r;

	pl_pms_status_release(st);
	r = pl_db_query(
	    db, &res,
	    "SELECT " PL_ACCOUNT_STATUS_SQL ", p.practice_name, p.pms_type, p.office_id,"
	    " " PL_ACCOUNT_ERROR_SQL ","
	    " to_char(p.token_expiry AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " to_char(p.last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " (SELECT extract(epoch FROM max(o.expires_at) - now()) FROM oauth_states o"
	    " WHERE o.account_id = p.account_id AND o.provider = p.provider),"
	    " p.account_id IS NOT NULL, p.status = 'SETUP_REQUIRED'"
	    " FROM accounts a LEFT JOIN pms_integrations p"
	    " ON p.account_id = a.id AND p.provider = 'SIKKA' WHERE a.id = $1",
	    1, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res) == 0) {
		pl_db_res_clear(&res);
		return pl_account_missing(db, account, err);
	}
	pl_strlcpy(st->account, account, sizeof(st->account));
	pl_strlcpy(st->status, pl_account_status_name(pl_db_val(&res, 0, 0)), sizeof(st->status));
	pl_strlcpy(st->provider, "SIKKA", sizeof(st->provider));
	st->practice_name = dup_or_null(pl_db_val(&res, 0, 1));
	st->pms_type = dup_or_null(pl_db_val(&res, 0, 2));
	st->office_id = dup_or_null(pl_db_val(&res, 0, 3));
	st->last_error = dup_or_null(pl_db_val(&res, 0, 4));
	v = pl_db_val(&res, 0, 5);
	pl_strlcpy(st->token_expiry, v ? v : "", sizeof(st->token_expiry));
	v = pl_db_val(&res, 0, 6);
	pl_strlcpy(st->last_sync_at, v ? v : "", sizeof(st->last_sync_at));
	v = pl_db_val(&res, 0, 7);
	*valid_for = v && !strcmp(st->status, "connecting") ? strtod(v, NULL) : -1;
	v = pl_db_val(&res, 0, 8);
	st->set_up = v && !strcmp(v, "t");
	v = pl_db_val(&res, 0, 9);
	st->setup_required = v && !strcmp(v, "t");
	pl_db_res_clear(&res);
	return 0;
}

/*
 * A practice that bought the app before Sikka listed it: look again, and connect it if it is
 * listed now (pl_handshake_complete). Whatever fails here leaves it waiting: a status is read
 * either way.
 */
static void try_complete(struct pl_session *s, const char *account)
{
	struct pl_err ignored = PL_ERR_INIT;
	struct pl_store *store = NULL;
	struct pl_sikka sk = {0};
	int done;

	if (!s->dry_run && !pl_sikka_init(&sk, s->cfg, &ignored) &&
	    !pl_store_open(s->cfg, &store, &ignored))
		pl_handshake_complete(s, store, &sk, account, &done, &ignored);
	pl_store_close(store);
	if (sk.base)
		pl_sikka_release(&sk);
}

int pl_pms_status(struct pl_session *s, const char *account, struct pl_pms_status *st,
                  struct pl_err *err)
{
	struct pl_db *db;
	double valid_for;
	int r;

	memset(st, 0, sizeof(*st));
	if ((r = pl_account_check_id(account, err)) || (r = pl_session_db(s, &db, err)))
		return r;
	if ((r = read_status(db, account, st, &valid_for, err)) || !st->setup_required)
		return r;
	try_complete(s, account);
	return read_status(db, account, st, &valid_for, err);
}

static int settled(const struct pl_pms_status *st)
{
	return !strcmp(st->status, "connected") || !strcmp(st->status, "failed");
}

int pl_pms_wait(struct pl_session *s, const char *account, double timeout, struct pl_pms_status *st,
                struct pl_err *err)
{
	double deadline = pl_monotonic() + timeout, valid_for, expires;
	struct pl_db *db;
	int r, notified;

	memset(st, 0, sizeof(*st));
	if ((r = pl_account_check_id(account, err)) || (r = pl_session_db(s, &db, err)))
		return r;
	/* LISTEN before the first read, so a change between the two is not missed. */
	if ((r = pl_db_listen(db, "parlae_pms", err)))
		return r;
	for (;;) {
		double now, until;

		if ((r = read_status(db, account, st, &valid_for, err)) || settled(st))
			return r;
		if (st->setup_required) {
			try_complete(s, account);
			if ((r = read_status(db, account, st, &valid_for, err)) || settled(st))
				return r;
			/* Sikka says nothing when it lists the practice: look again soon. */
			valid_for = SETUP_LOOK_AGAIN;
		}
		if (!st->set_up) {
			pl_err_set(err, PL_ENOTFOUND, "account '%s' has no integration to wait for",
			           account);
			return pl_err_hint(err, "run 'parlae pms setup %s' first", account);
		}
		/* Nothing notifies when the last state expires: look again then, it reads failed.
		 */
		expires = valid_for >= 0 ? pl_monotonic() + valid_for : deadline;
		do {
			now = pl_monotonic();
			if (now >= deadline) {
				pl_err_set(err, PL_ETIMEOUT, "account '%s' is still %s after %g s",
				           account, st->status, timeout);
				return pl_err_hint(err, "finish the authorization in the browser, "
				                        "or wait longer with --wait=SECONDS");
			}
			until = expires < deadline ? expires : deadline;
			if ((r = pl_db_wait(db, until > now ? (long)((until - now) * 1000) + 1 : 0,
			                    &notified, err)))
				return r;
		} while (!notified && pl_monotonic() < expires);
	}
}
