#include "rotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "audit.h"
#include "http.h"
#include "json.h"
#include "buf.h"
#include "handshake.h"
#include "pms.h"
#include "banned.h"

#define LOCK_KEY "hashtextextended('parlae.rotate:' || $1, 0)"

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

int pl_rotate_lock(struct pl_db *db, const char *account, long wait_ms, int *got,
                   struct pl_err *err)
{
	long waited = 0;
	int r;

	while (!(r = try_lock(db, account, got, err)) && !*got && waited < wait_ms) {
		pl_sleep_ms(50);
		waited += 50;
	}
	return r;
}

void pl_rotate_unlock(struct pl_db *db, const char *account)
{
	unlock(db, account);
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
		if (!r || !pl_sikka_refused_practice(sk))
			return r;
	}
	*fallback = 1;
	return pl_sikka_request_key(sk, PL_SIKKA_REQUEST_KEY, k->office_id, &k->secret_key, out,
	                            err);
}

static void iso_utc(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The row takes a stored version and its expiry, with its event, in one transaction. */
static int record(struct pl_session *s, const char *action, const char *account,
                  const char *version, const char *expiry, const char *meta, struct pl_err *err)
{
	struct pl_audit_event ev = {account, action, "pms_integration", account, meta};
	const char *params[3] = {account, version, expiry};
	int r;

	if (!(r = pl_db_begin(&s->db, err)) &&
	    !(r = pl_db_query(&s->db, NULL,
	                      "UPDATE pms_integrations SET secret_version = $2, token_expiry = $3,"
	                      " last_sync_at = now(), last_error = NULL, updated_at = now()"
	                      " WHERE account_id = $1 AND provider = 'SIKKA'",
	                      3, params, err)) &&
	    !(r = pl_audit_append(s, &ev, PL_OK, err)))
		r = pl_db_commit(&s->db, err);
	/* A failure is recorded once, by the caller (record_failure). */
	pl_db_rollback(&s->db);
	return r;
}

static int record_rotation(struct pl_session *s, const char *account, const char *version,
                           time_t expiry, int fallback, struct pl_err *err)
{
	char exp[32], meta[160];

	iso_utc(expiry, exp, sizeof(exp));
	snprintf(meta, sizeof(meta),
	         "{\"secretVersion\":\"%s\",\"tokenExpiry\":\"%s\",\"fallback\":%s}", version, exp,
	         fallback ? "true" : "false");
	return record(s, "secrets.rotate", account, version, exp, meta, err);
}

/*
 * A run before this one stored new keys but could not update the row (its connection was
 * lost, it was killed): the row takes the store's version and expiry now, recorded as
 * secrets.reconcile. *done says whether there was anything to do.
 */
static int reconcile(struct pl_session *s, const char *account, const char *row_version,
                     const char *stored, time_t expiry, int *done, struct pl_err *err)
{
	char exp[32], meta[192];
	int r;

	*done = 0;
	if (!strcmp(row_version, stored) || s->dry_run)
		return 0;
	iso_utc(expiry, exp, sizeof(exp));
	snprintf(meta, sizeof(meta),
	         "{\"secretVersion\":\"%s\",\"tokenExpiry\":\"%s\",\"rowVersion\":\"%s\"}", stored,
	         exp, row_version);
	if (!(r = record(s, "secrets.reconcile", account, stored, exp, meta, err)))
		*done = 1;
	return r;
}

/*
 * One failure event per failed attempt, on a new connection if this one was lost (once per
 * run). When the new keys were stored but the row could not take them (stored: their
 * version), the row's last_error says so until the next run reconciles it.
 */
static void record_failure(struct pl_session *s, const char *account, int code, const char *why,
                           const char *stored)
{
	struct pl_audit_event ev = {account, "secrets.rotate", "pms_integration", account, NULL};
	struct pl_err ignored = PL_ERR_INIT;
	char meta[128], note[sizeof(ignored.msg)];
	const char *params[2] = {account, note};

	if (s->dry_run)
		return;
	if (stored) {
		snprintf(meta, sizeof(meta), "{\"secretVersion\":\"%s\",\"stored\":true}", stored);
		snprintf(note, sizeof(note),
		         "secret version %s was stored but not recorded here (the next rotation "
		         "records it): %s",
		         stored, why);
		ev.metadata = meta;
	}
	pl_audit_fail(s, &ev, code,
	              stored ? "UPDATE pms_integrations SET last_error = $2, updated_at = now()"
	                       " WHERE account_id = $1 AND provider = 'SIKKA'"
	                     : NULL,
	              2, params, &ignored);
}

int pl_rotate_account(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
                      const struct pl_rotate_req *req, struct pl_rotate_res *res,
                      struct pl_err *err)
{
	struct pl_pms_keys k = {0};
	struct pl_sikka_key fresh = {0};
	char row_version[PL_STORE_VERSION_MAX], stored[PL_STORE_VERSION_MAX];
	const char *written = NULL;
	struct pl_db *db;
	time_t expiry;
	long waited = 0;
	int r, got = 0, reconciled;

	memset(res, 0, sizeof(*res));
	sk->account = req->account;
	if ((r = pl_session_db(s, &db, err)))
		return r;
	while (!(r = try_lock(db, req->account, &got, err)) && !got && waited < req->wait_ms) {
		pl_sleep_ms(50);
		waited += 50;
	}
	if (r)
		return r;
	if (!got) {
		res->outcome = PL_ROTATE_LOCKED;
		return 0;
	}
	/* Another process may have refreshed between our read and the lock: read again. A store
	 * that would refuse the new keys (a retired key, an unfinished re-key) is refused before
	 * Sikka's refresh spends the old ones, and the hold keeps it so until the write. */
	if ((!s->dry_run && (r = pl_store_hold(store, err))) ||
	    (r = pl_store_key_ready(store, err)) ||
	    (r = read_row(db, req->account, row_version, sizeof(row_version), &expiry, err)) ||
	    (r = pl_pms_keys_read(store, req->account, &k, stored, err)) ||
	    (r = reconcile(s, req->account, row_version, stored, k.token_expiry, &reconciled, err)))
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
	if ((r = pl_pms_keys_write(store, req->account, &k, stored, res->version, err)))
		goto out;
	written = res->version;
	res->expires_at = k.token_expiry;
	res->outcome = PL_ROTATED;
	r = record_rotation(s, req->account, res->version, k.token_expiry, res->fallback, err);
out:
	if (r && r != PL_ENOTFOUND)
		record_failure(s, req->account, r, err->msg, written);
	pl_store_unhold(store);
	unlock(db, req->account);
	pl_pms_keys_release(&k);
	pl_sikka_key_release(&fresh);
	return r;
}

/* --- many accounts at once ------------------------------------------------------------------ */

struct item {
	char account[64];
	char stored[PL_STORE_VERSION_MAX]; /* the version read under the lock */
	struct pl_pms_keys keys;
	int fallback;
	struct pl_sikka_call call;
};

struct batch {
	struct item **fallbacks; /* rejected refresh keys waiting for a request_key grant */
	size_t nfallbacks;
	struct pl_session *s;
	struct pl_store *store;
	struct pl_sikka *sk;
	const struct pl_rotate_batch_req *req;
	struct pl_rotate_summary *sum;
	char **accounts;
	size_t n, next, done;
	/* Whether the store would take new keys, checked once: the batch holds the store's
	 * writers lock from before the check to its end, so no re-key can change the answer, and
	 * checking per account would read the whole store once per account. */
	int store_ready;
	struct pl_err store_err;
};

static void report(struct batch *b, const char *account, const char *outcome, const char *why)
{
	if (!strcmp(outcome, "rotated"))
		b->sum->rotated++;
	else if (!strcmp(outcome, "skipped"))
		b->sum->skipped++;
	else if (!strcmp(outcome, "not_due"))
		b->sum->not_due++;
	else
		b->sum->failed++;
	b->done++;
	if (b->req->outcome)
		b->req->outcome(account, outcome, why, b->req->arg);
	if (b->req->progress)
		b->req->progress(b->done, b->n, b->req->arg);
}

/* stored: the version of new keys the store holds though the row does not name them. */
static void failed(struct batch *b, const char *account, const struct pl_err *e, const char *stored)
{
	int code = e->code ? e->code : PL_EINTERNAL;
	char why[sizeof(e->msg) + 96];

	record_failure(b->s, account, code, e->msg, stored);
	if (!b->sum->failed)
		b->sum->fail_code = code;
	else if (b->sum->fail_code != code)
		b->sum->fail_code = PL_EUPSTREAM;
	if (stored)
		snprintf(why, sizeof(why),
		         "%s (the new keys are stored as version %s: the next run records them)",
		         e->msg, stored);
	report(b, account, "failed", stored ? why : e->msg);
}

static void item_free(struct item *it)
{
	pl_sikka_call_release(&it->call);
	pl_pms_keys_release(&it->keys);
	free(it);
}

/* Lock, re-read, decide; an item ready to send, or NULL when this account is settled. */
static struct item *prepare(struct batch *b, const char *account)
{
	struct pl_err err = PL_ERR_INIT;
	char row_version[PL_STORE_VERSION_MAX];
	char note[PL_STORE_VERSION_MAX + 48];
	struct item *it;
	time_t expiry;
	char *body;
	int got = 0, reconciled = 0;

	if (try_lock(&b->s->db, account, &got, &err)) {
		failed(b, account, &err, NULL);
		return NULL;
	}
	if (!got) {
		report(b, account, "skipped", "another process holds it");
		return NULL;
	}
	it = pl_xcalloc(1, sizeof(*it));
	pl_strlcpy(it->account, account, sizeof(it->account));
	/* As pl_rotate_account: a store that would refuse the new keys fails before the refresh
	 * (store_ready is that check's code, made once for the batch). */
	if (b->store_ready)
		err = b->store_err;
	if (b->store_ready ||
	    read_row(&b->s->db, account, row_version, sizeof(row_version), &expiry, &err) ||
	    pl_pms_keys_read(b->store, account, &it->keys, it->stored, &err) ||
	    reconcile(b->s, account, row_version, it->stored, it->keys.token_expiry, &reconciled,
	              &err)) {
		failed(b, account, &err, NULL);
		goto settled;
	}
	if (!b->req->force && it->keys.token_expiry > time(NULL) + b->req->within) {
		snprintf(note, sizeof(note), "recorded version %s, stored by an earlier run",
		         it->stored);
		report(b, account, "not_due", reconciled ? note : NULL);
		goto settled;
	}
	if (b->s->dry_run) {
		report(b, account, "rotated", "dry run: would refresh");
		goto settled;
	}
	it->fallback = !it->keys.refresh_key.len;
	body = it->fallback
	           ? pl_sikka_key_body(b->sk, PL_SIKKA_REQUEST_KEY, it->keys.office_id,
	                               &it->keys.secret_key)
	           : pl_sikka_key_body(b->sk, PL_SIKKA_REFRESH_KEY, NULL, &it->keys.refresh_key);
	pl_sikka_call_init(b->sk, &it->call, "POST", "/v4/request_key", NULL, body, NULL, 0);
	explicit_bzero(body, strlen(body));
	free(body);
	return it;
settled:
	unlock(&b->s->db, account);
	item_free(it);
	return NULL;
}

static int next_job(struct pl_http_job *job, void *arg)
{
	struct batch *b = arg;

	/* Fallbacks first: they hold their account's lock. */
	if (b->nfallbacks) {
		struct item *it = b->fallbacks[--b->nfallbacks];
		char *body = pl_sikka_key_body(b->sk, PL_SIKKA_REQUEST_KEY, it->keys.office_id,
		                               &it->keys.secret_key);

		pl_sikka_call_release(&it->call);
		pl_sikka_call_init(b->sk, &it->call, "POST", "/v4/request_key", NULL, body, NULL,
		                   0);
		explicit_bzero(body, strlen(body));
		free(body);
		job->req = it->call.req;
		job->user = it;
		return 1;
	}
	while (b->next < b->n) {
		struct item *it = prepare(b, b->accounts[b->next++]);

		if (it) {
			job->req = it->call.req;
			job->user = it;
			return 1;
		}
	}
	return 0;
}

/*
 * Persist the new keys (refresh key first, in the store), then the row and the audit event.
 * version receives the stored version ("" when the store write failed).
 */
static int finish(struct batch *b, struct item *it, struct pl_sikka_key *fresh, char *version,
                  struct pl_err *err)
{
	int r;

	pl_secret_release(&it->keys.request_key);
	it->keys.request_key = fresh->request_key;
	memset(&fresh->request_key, 0, sizeof(fresh->request_key));
	if (fresh->refresh_key.len) {
		pl_secret_release(&it->keys.refresh_key);
		it->keys.refresh_key = fresh->refresh_key;
		memset(&fresh->refresh_key, 0, sizeof(fresh->refresh_key));
	}
	it->keys.token_expiry = fresh->expires_at;
	/* The lock keeps other parlae processes out; the compare-and-swap catches anything else. */
	if ((r = pl_pms_keys_write(b->store, it->account, &it->keys, it->stored, version, err))) {
		version[0] = '\0';
		return r;
	}
	return record_rotation(b->s, it->account, version, it->keys.token_expiry, it->fallback,
	                       err);
}

static void job_done(struct pl_http_job *job, void *arg)
{
	struct batch *b = arg;
	struct item *it = job->user;
	struct pl_sikka_key fresh = {0};
	struct pl_err err = PL_ERR_INIT;
	char version[PL_STORE_VERSION_MAX] = "";
	json_t *doc = NULL;
	int r = job->code;

	b->sk->account = it->account;
	if (r)
		err = job->err;
	else
		r = pl_sikka_answer(b->sk, &it->call, job->resp.status, job->resp.body.buf,
		                    job->resp.body.len, &doc, &err);
	if (!r)
		r = pl_sikka_key_from(doc, &fresh, &err);
	pl_json_wipe_decref(doc);
	pl_http_resp_release(&job->resp);
	/* A refresh key Sikka rejects (not merely a failure to answer): the secret key gets a new
	 * one, through the multi handle like every other request, the lock still held. */
	if (r && !job->code && !it->fallback && pl_sikka_refused_practice(b->sk)) {
		it->fallback = 1;
		b->fallbacks =
		    pl_xrealloc(b->fallbacks, (b->nfallbacks + 1) * sizeof(*b->fallbacks));
		b->fallbacks[b->nfallbacks++] = it;
		return;
	}
	if (!r)
		r = finish(b, it, &fresh, version, &err);
	if (r)
		failed(b, it->account, &err, version[0] ? version : NULL);
	else
		report(b, it->account, "rotated",
		       it->fallback ? "new key from the secret key" : NULL);
	pl_sikka_key_release(&fresh);
	unlock(&b->s->db, it->account);
	item_free(it);
}

static int candidates(struct batch *b, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	char within[32];
	const char *params[2] = {within, b->req->force ? "t" : "f"};
	int r;

	if (!b->req->all) {
		/* Each account once: this session's advisory locks stack, so a repeated name would
		 * pass its own lock and refresh twice. */
		b->accounts = pl_xcalloc(b->req->naccounts + 1, sizeof(*b->accounts));
		for (size_t i = 0; i < b->req->naccounts; i++) {
			size_t j = 0;

			while (j < b->n && strcmp(b->accounts[j], b->req->accounts[i]))
				j++;
			if (j == b->n)
				b->accounts[b->n++] = pl_xstrdup(b->req->accounts[i]);
		}
		return 0;
	}
	/* Not-due accounts are counted here and never locked; each due one is checked again, as is
	 * a row that an earlier run could not update (its last_error says so: reconciled then). */
	snprintf(within, sizeof(within), "%ld", b->req->within);
	r = pl_db_query(&b->s->db, &res,
	                "SELECT account_id, $2::boolean OR token_expiry IS NULL"
	                " OR token_expiry < now() + make_interval(secs => $1::double precision)"
	                " OR last_error IS NOT NULL"
	                " FROM pms_integrations WHERE provider = 'SIKKA' AND status = 'ACTIVE'"
	                " ORDER BY account_id",
	                2, params, err);
	if (r)
		return r;
	b->accounts = pl_xcalloc((size_t)pl_db_rows(&res) + 1, sizeof(*b->accounts));
	for (int i = 0; i < pl_db_rows(&res); i++) {
		if (!strcmp(pl_db_val(&res, i, 1), "t"))
			b->accounts[b->n++] = pl_xstrdup(pl_db_val(&res, i, 0));
		else
			b->sum->not_due++;
	}
	pl_db_res_clear(&res);
	return 0;
}

static int named(const struct pl_rotate_batch_req *req, const char *account)
{
	for (size_t i = 0; i < req->naccounts; i++)
		if (!strcmp(req->accounts[i], account))
			return 1;
	return 0;
}

/* Finish the SETUP_REQUIRED integrations whose practice Sikka now lists, each exactly once. */
static void complete_waiting(struct batch *b)
{
	struct pl_err e = PL_ERR_INIT;
	char **waiting = NULL;

	if (pl_handshake_waiting(b->s, &waiting, &e))
		return; /* the rotation that follows meets the same database and says so */
	for (size_t i = 0; waiting[i]; i++) {
		int done = 0;

		if ((b->req->all || named(b->req, waiting[i])) &&
		    !pl_handshake_complete(b->s, b->store, b->sk, waiting[i], &done, &e) && done)
			b->sum->completed++;
		free(waiting[i]);
	}
	free(waiting);
}

int pl_rotate_batch(struct pl_session *s, const struct pl_rotate_batch_req *req,
                    struct pl_rotate_summary *sum, struct pl_err *err)
{
	struct batch b = {.s = s, .req = req, .sum = sum};
	struct pl_sikka sk;
	struct pl_db *db;
	int r;

	memset(sum, 0, sizeof(*sum));
	for (size_t i = 0; i < req->naccounts; i++)
		if ((r = pl_account_check_id(req->accounts[i], err)))
			return r;
	if ((r = pl_session_db(s, &db, err)) || (r = pl_sikka_init(&sk, s->cfg, err)))
		return r;
	b.sk = &sk;
	/* Held for the whole run: a re-key started meanwhile waits for it (pl_store_close). */
	if ((r = pl_store_open(s->cfg, &b.store, err)) ||
	    (!s->dry_run && (r = pl_store_hold(b.store, err))))
		goto out;
	complete_waiting(&b);
	if ((r = candidates(&b, err)))
		goto out;
	b.store_ready = pl_store_key_ready(b.store, &b.store_err);
	r = pl_http_run(&sk.http, req->concurrency, next_job, job_done, &b);
	if (r)
		r = pl_err_set(err, PL_EINTERNAL, "cannot start the transfers");
	else if ((s->reconnected || !pl_db_alive(db)) && sum->failed) {
		r = pl_err_set(err, PL_EDATABASE,
		               "lost the connection to the database during the rotation");
		pl_err_hint(err, "the accounts not rotated keep their keys: run it again");
	}
out:
	for (size_t i = 0; i < b.n; i++)
		free(b.accounts[i]);
	free(b.accounts);
	free(b.fallbacks);
	pl_store_close(b.store);
	pl_sikka_release(&sk);
	return r;
}

int pl_rotate_status(const struct pl_rotate_summary *sum)
{
	if (!sum->failed)
		return 0;
	if (sum->rotated + sum->skipped + sum->not_due)
		return PL_EPARTIAL;
	return sum->fail_code == PL_ECONFIG || sum->fail_code == PL_ENOTFOUND ||
	               sum->fail_code == PL_EDATABASE || sum->fail_code == PL_ETIMEOUT ||
	               sum->fail_code == PL_EBADINPUT
	           ? sum->fail_code
	           : PL_EUPSTREAM;
}

int pl_rotate_master_key(struct pl_session *s, size_t *n, struct pl_err *err)
{
	struct pl_audit_event ev = {NULL, "secrets.rekey", "secret_store", NULL, NULL};
	struct pl_store *st = NULL;
	char meta[64];
	int r;

	*n = 0;
	if (!(r = pl_store_open(s->cfg, &st, err)))
		r = pl_store_rekey(st, s->dry_run, n, err);
	pl_store_close(st);
	if (s->dry_run || r == PL_EUSAGE)
		return r;
	snprintf(meta, sizeof(meta), "{\"secrets\":%zu}", *n);
	ev.metadata = meta;
	/* The store is not the database: without one, the re-keying still stands. */
	{
		struct pl_db *db;
		struct pl_err dberr = PL_ERR_INIT;

		if (pl_session_db(s, &db, &dberr) == 0)
			pl_audit_finish(s, &ev, r, r ? &dberr : err);
	}
	return r;
}
