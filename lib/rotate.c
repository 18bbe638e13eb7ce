#include "rotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "buf.h"
#include "pms.h"
#include "banned.h"

#define LOCK_KEY "hashtextextended('parlae.rotate:' || $1, 0)"

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int try_lock(struct pl_db *db, const char *account, int *got, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	int r = pl_db_query(db, &res, "SELECT pg_try_advisory_lock(" LOCK_KEY ")", 1, params, err);

	if (!r)
		*got = !strcmp(pl_db_val(&res, 0, 0), "t");
	pl_db_res_clear(&res);
	return r;
}

static void unlock(struct pl_db *db, const char *account)
{
	struct pl_err ignored = PL_ERR_INIT;
	const char *params[1] = {account};

	pl_db_query(db, NULL, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 1, params, &ignored);
}

/* The row as it is now that the lock is held. */
static int read_row(struct pl_db *db, const char *account, char *version, size_t vsize,
		    time_t *expiry, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	int r;

	r = pl_db_query(db, &res,
			"SELECT secret_version, extract(epoch FROM token_expiry)::bigint"
			" FROM pms_integrations WHERE account_id = $1 AND provider = 'SIKKA'"
			" AND status = 'ACTIVE'",
			1, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res) == 0) {
		pl_db_res_clear(&res);
		pl_err_set(err, PL_ENOTFOUND, "account '%s' is not connected to Sikka", account);
		return pl_err_hint(err, "see 'parlae status %s'", account);
	}
	pl_strlcpy(version, pl_db_val(&res, 0, 0) ? pl_db_val(&res, 0, 0) : "", vsize);
	*expiry = pl_db_val(&res, 0, 1) ? (time_t)atoll(pl_db_val(&res, 0, 1)) : 0;
	pl_db_res_clear(&res);
	return 0;
}

/* Refresh with the refresh key; if Sikka rejects it (not merely fails), use the secret key. */
static int refresh(struct pl_sikka *sk, const struct pl_pms_keys *k, struct pl_sikka_key *out,
		   int *fallback, struct pl_err *err)
{
	int r = PL_ENOTFOUND;

	*fallback = 0;
	if (k->refresh_key.len) {
		r = pl_sikka_request_key(sk, PL_SIKKA_REFRESH_KEY, NULL, &k->refresh_key, out, err);
		if (!r || r == PL_EUPSTREAM || r == PL_ECONFIG)
			return r;
	}
	*fallback = 1;
	return pl_sikka_request_key(sk, PL_SIKKA_REQUEST_KEY, k->office_id, &k->secret_key, out, err);
}

static int record(struct pl_session *s, const char *account, const char *version,
		  time_t expiry, int fallback, struct pl_err *err)
{
	struct pl_audit_event ev = {account, "secrets.rotate", "pms_integration", NULL, NULL};
	char exp[32], meta[160];
	struct tm tm;
	const char *params[3] = {account, version, exp};
	int r;

	gmtime_r(&expiry, &tm);
	strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(meta, sizeof(meta), "{\"secretVersion\":\"%s\",\"tokenExpiry\":\"%s\",\"fallback\":%s}",
		 version, exp, fallback ? "true" : "false");
	ev.resource_id = account;
	ev.metadata = meta;
	if (!(r = pl_db_begin(&s->db, err)))
		r = pl_db_query(&s->db, NULL,
				"UPDATE pms_integrations SET secret_version = $2, token_expiry = $3,"
				" last_sync_at = now(), last_error = NULL, updated_at = now()"
				" WHERE account_id = $1 AND provider = 'SIKKA'",
				3, params, err);
	return pl_audit_finish(s, &ev, r, err);
}

int pl_rotate_account(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
		      const struct pl_rotate_req *req, struct pl_rotate_res *res,
		      struct pl_err *err)
{
	struct pl_pms_keys k = {0};
	struct pl_sikka_key fresh = {0};
	char row_version[PL_STORE_VERSION_MAX], stored[PL_STORE_VERSION_MAX];
	struct pl_db *db;
	time_t expiry;
	long waited = 0;
	int r, got = 0, recorded = 0;

	memset(res, 0, sizeof(*res));
	if ((r = pl_session_db(s, &db, err)))
		return r;
	while (!(r = try_lock(db, req->account, &got, err)) && !got && waited < req->wait_ms) {
		sleep_ms(50);
		waited += 50;
	}
	if (r)
		return r;
	if (!got) {
		res->outcome = PL_ROTATE_LOCKED;
		return 0;
	}
	/* Another process may have refreshed between our read and the lock: read again. */
	if ((r = read_row(db, req->account, row_version, sizeof(row_version), &expiry, err)) ||
	    (r = pl_pms_keys_read(store, req->account, &k, stored, err)))
		goto out;
	pl_strlcpy(res->version, stored, sizeof(res->version));
	res->expires_at = k.token_expiry;
	if (req->stale_version ? strcmp(req->stale_version, stored) != 0
			       : !req->force && k.token_expiry > time(NULL) + req->within) {
		res->outcome = PL_ROTATE_NOT_DUE;
		goto out;
	}
	if (s->dry_run) {
		res->outcome = PL_ROTATED;
		goto out;
	}
	if ((r = refresh(sk, &k, &fresh, &res->fallback, err)))
		goto out;
	/* The new refresh key replaces the old one, which may already be dead: persist it first. */
	pl_secret_release(&k.request_key);
	k.request_key = fresh.request_key;
	memset(&fresh.request_key, 0, sizeof(fresh.request_key));
	if (fresh.refresh_key.len) {
		pl_secret_release(&k.refresh_key);
		k.refresh_key = fresh.refresh_key;
		memset(&fresh.refresh_key, 0, sizeof(fresh.refresh_key));
	}
	k.token_expiry = fresh.expires_at;
	if ((r = pl_pms_keys_write(store, req->account, &k, res->version, err)))
		goto out;
	res->expires_at = k.token_expiry;
	res->outcome = PL_ROTATED;
	recorded = 1;
	r = record(s, req->account, res->version, k.token_expiry, res->fallback, err);
out:
	if (r && r != PL_ENOTFOUND && !recorded) {
		struct pl_audit_event ev = {req->account, "secrets.rotate", "pms_integration",
					    req->account, NULL};
		struct pl_err ignored = PL_ERR_INIT;

		if (!s->db.in_tx && !s->dry_run)
			pl_audit_append(s, &ev, r, &ignored);
	}
	unlock(db, req->account);
	pl_pms_keys_release(&k);
	pl_sikka_key_release(&fresh);
	return r;
}
