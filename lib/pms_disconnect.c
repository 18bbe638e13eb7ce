/*
 * pms disconnect: end an integration. The refresh key is revoked at Sikka where possible, the
 * row becomes INACTIVE (never ACTIVE without its secret: the row first), then the secret
 * leaves the store. Run again, it finishes what a failure left, or says there is nothing left.
 */
#include "pms.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "audit.h"
#include "buf.h"
#include "json.h"
#include "rotate.h"
#include "sikka.h"
#include "utf8.h"
#include "banned.h"

#define LOCK_WAIT_MS 10000

static int read_integration(struct pl_db *db, const char *account, char *status, size_t size,
                            struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	int r;

	r = pl_db_query(db, &res,
	                "SELECT status FROM pms_integrations WHERE account_id = $1"
	                " AND provider = 'SIKKA'",
	                1, params, err);
	if (r)
		return r;
	if (!pl_db_rows(&res)) {
		pl_db_res_clear(&res);
		pl_err_set(err, PL_ENOTFOUND, "account '%s' has no Sikka integration", account);
		return pl_err_hint(err, "there is nothing to disconnect");
	}
	pl_strlcpy(status, pl_db_val(&res, 0, 0), size);
	pl_db_res_clear(&res);
	return 0;
}

/* Ask Sikka to revoke the refresh key; why not, in res->note. */
static void revoke_key(struct pl_session *s, const struct pl_pms_keys *k,
                       struct pl_pms_disconnect_res *res)
{
	struct pl_err why = PL_ERR_INIT;
	struct pl_sikka sk = {0};

	if (!k->refresh_key.len) {
		pl_strlcpy(res->note, "no refresh key was stored", sizeof(res->note));
		return;
	}
	if (!pl_sikka_init(&sk, s->cfg, &why) &&
	    !pl_sikka_revoke_refresh_key(&sk, &k->refresh_key, &why))
		res->revoked = 1;
	else
		snprintf(res->note, sizeof(res->note), "Sikka did not revoke the refresh key: %s",
		         why.msg);
	if (sk.base)
		pl_sikka_release(&sk);
}

int pl_pms_disconnect(struct pl_session *s, const char *account, struct pl_pms_disconnect_res *res,
                      struct pl_err *err)
{
	struct pl_audit_event ev = {account, "pms.disconnect", "pms_integration", NULL, NULL};
	struct pl_buf name = PL_BUF_INIT;
	struct pl_pms_keys k = {0};
	struct pl_store *store = NULL;
	struct pl_err kerr = PL_ERR_INIT;
	char status[32], *meta = NULL;
	struct pl_db *db;
	int r, kr, got = 0;

	memset(res, 0, sizeof(*res));
	if ((r = pl_account_check_id(account, err)) || (r = pl_session_db(s, &db, err)) ||
	    (r = pl_account_require(db, account, err)) ||
	    (r = read_integration(db, account, status, sizeof(status), err)))
		return r;
	pl_buf_addf(&name, PL_PMS_SECRET_PREFIX "%s", account);
	ev.resource_id = name.buf;
	if ((r = pl_store_open(s->cfg, &store, err)))
		goto failed;
	/* Held so that no rotation writes new keys behind us. */
	if (!s->dry_run && (r = pl_rotate_lock(db, account, LOCK_WAIT_MS, &got, err)))
		goto failed;
	if (!s->dry_run && !got) {
		r = pl_err_set(err, PL_ECONFLICT, "another process is refreshing %s's keys",
		               account);
		pl_err_hint(err, "try again in a moment");
		goto failed;
	}
	kr = pl_pms_keys_read(store, account, &k, NULL, &kerr);
	res->had_secret = kr != PL_ENOTFOUND;
	if (!strcmp(status, "INACTIVE") && !res->had_secret) {
		pl_strlcpy(res->status, "already disconnected", sizeof(res->status));
		if (s->dry_run)
			goto out;
		ev.metadata = "{\"already\":true}";
		if (!(r = pl_db_begin(db, err)))
			r = pl_audit_finish(s, &ev, PL_OK, err);
		goto out;
	}
	pl_strlcpy(res->status, "disconnected", sizeof(res->status));
	if (s->dry_run)
		goto out;
	if (kr == 0)
		revoke_key(s, &k, res);
	else if (res->had_secret)
		snprintf(res->note, sizeof(res->note), "the stored keys could not be read: %s",
		         kerr.msg);
	{
		json_t *m = pl_json_x(json_pack("{s:b, s:b}", "revoked", res->revoked,
		                                "secretDeleted", res->had_secret));

		meta = pl_json_dump(m);
		json_decref(m);
	}
	ev.metadata = meta;
	{
		const char *params[1] = {account};

		/* The row first: never an ACTIVE row whose secret is gone. */
		if (!(r = pl_db_begin(db, err)) &&
		    !(r = pl_db_query(
		          db, NULL,
		          "UPDATE pms_integrations SET status = 'INACTIVE', secret_ref = NULL,"
		          " secret_version = NULL, token_expiry = NULL,"
		          " last_error = 'disconnected by the operator', updated_at = now()"
		          " WHERE account_id = $1 AND provider = 'SIKKA'",
		          1, params, err)) &&
		    !(r = pl_db_query(db, NULL,
		                      "UPDATE pms_registrations SET state = 'cancelled',"
		                      " note = 'disconnected by the operator', updated_at = now()"
		                      " WHERE kind = 'purchase' AND account_id = $1"
		                      " AND state IN ('matched', 'setup_required', 'active')",
		                      1, params, err)))
			r = pl_audit_finish(s, &ev, PL_OK, err);
		else
			r = pl_audit_finish(s, &ev, r, err);
	}
	if (r || !res->had_secret)
		goto out;
	if ((r = pl_store_delete(store, name.buf, err)) == PL_ENOTFOUND)
		r = 0;
	if (!r) {
		res->secret_deleted = 1;
		goto out;
	}
	pl_err_hint(err,
	            "the integration is inactive but its secret is still stored: run "
	            "'parlae pms disconnect %s' again",
	            account);
failed:
	if (!s->dry_run)
		pl_audit_finish(s, &ev, r, err);
out:
	if (got)
		pl_rotate_unlock(db, account);
	pl_pms_keys_release(&k);
	pl_store_close(store);
	pl_buf_release(&name);
	free(meta);
	return r;
}
