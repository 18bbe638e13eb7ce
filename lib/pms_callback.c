/*
 * sikka callback: the contract's steps 1-3 (the state verified and used once, the practice's
 * denial, the code exchanged for the office it was issued to, that office's practice found),
 * then steps 4-6 through pl_pms_connect.
 */
#include "pms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "buf.h"
#include "sikka.h"
#include "state.h"
#include "utf8.h"
#include "banned.h"

/* Use the nonce once: one conditional UPDATE, so two callbacks racing cannot both pass. */
static int consume_state(struct pl_db *db, const struct pl_state *st, struct pl_err *err)
{
	const char *params[2] = {st->nonce, st->account};
	struct pl_db_res res = PL_DB_RES_INIT;
	int r, used;

	r = pl_db_query(
	    db, &res,
	    "UPDATE oauth_states SET consumed_at = now() WHERE nonce = $1 AND account_id = $2"
	    " AND consumed_at IS NULL AND expires_at > now() RETURNING 1",
	    2, params, err);
	if (r)
		return r;
	used = pl_db_rows(&res) == 0;
	pl_db_res_clear(&res);
	if (!used)
		return 0;
	pl_err_set(err, PL_ESECURITY, "the OAuth state was already used, or was not issued here");
	return pl_err_hint(err, "start again with 'parlae sikka oauth-url %s'", st->account);
}

/*
 * Step 3: code → office → the location Sikka lists for it that the account chose (chosen), or
 * its only one; its secret key is moved to *out.
 */
static int find_practice(struct pl_sikka *sk, const struct pl_pms_redirect *in, const char *account,
                         const char *chosen, struct pl_sikka_practice *out, struct pl_err *err)
{
	size_t at;

	struct pl_sikka_key exchanged = {0};
	struct pl_sikka_practice *list = NULL;
	struct pl_secret code = PL_SECRET_INIT;
	size_t n = 0;
	int r;

	pl_secret_set(&code, in->code, strlen(in->code));
	r = pl_sikka_request_key(sk, PL_SIKKA_AUTHORIZATION_CODE, NULL, &code, &exchanged, err);
	if (r)
		goto out;
	if (!exchanged.issued_to[0]) {
		r = pl_err_set(err, PL_EUPSTREAM,
		               "Sikka's code exchange named no office (issued_to)");
		goto out;
	}
	/* The redirect's office_id is a query parameter anyone can edit: issued_to is the truth. */
	if (in->office_id && strcmp(in->office_id, exchanged.issued_to)) {
		r = pl_err_set(
		    err, PL_ESECURITY,
		    "the redirect's office_id does not match the office the code was issued to");
		pl_err_hint(
		    err, "the redirect URL was altered: start again with 'parlae sikka oauth-url'");
		goto out;
	}
	if ((r = pl_sikka_authorized_practices(sk, &list, &n, err)))
		goto out;
	r = pl_pms_pick_location(list, n, 0, exchanged.issued_to, chosen, account, &at, err);
	if (r == PL_ENOTFOUND || (!r && !list[at].secret_key.len)) {
		r = pl_err_set(err, PL_ENOTFOUND, "no practice found: is the SPU running?");
		pl_err_hint(err, "Sikka lists no authorized practice for office %s yet",
		            exchanged.issued_to);
	} else if (!r) {
		*out = list[at];
		memset(&list[at].secret_key, 0, sizeof(list[at].secret_key)); /* moved */
	}
out:
	pl_secret_release(&code);
	pl_sikka_key_release(&exchanged);
	pl_sikka_practices_free(list, n);
	return r;
}

/*
 * Any failure once the account is known: ERROR with last_error and one failure event, on a
 * new connection if this one was lost (once). When even that fails, err says so; the row,
 * left CONNECTING, reads failed once its state expires (PL_ACCOUNT_ABANDONED_SQL).
 */
static void mark_failed(struct pl_session *s, const struct pl_audit_event *ev, int code,
                        struct pl_err *err)
{
	struct pl_err again = PL_ERR_INIT;
	const char *params[2] = {ev->account_id, err->msg};
	int lost, recorded;

	pl_db_rollback(&s->db);
	lost = !pl_db_alive(&s->db);
	/* A connected practice whose re-authorization failed keeps working keys. */
	recorded =
	    !pl_audit_fail(s, ev, code,
	                   "UPDATE pms_integrations SET status = CASE WHEN status ="
	                   " 'ACTIVE' THEN status ELSE 'ERROR' END, last_error = $2,"
	                   " updated_at = now() WHERE account_id = $1 AND provider = 'SIKKA'",
	                   2, params, &again);
	if (!recorded && lost) {
		char msg[sizeof(err->msg)];

		snprintf(msg, sizeof(msg), "%s; could not reconnect to record the failure: %s",
		         err->msg, again.msg);
		pl_strlcpy(err->msg, msg, sizeof(err->msg));
	}
	if (!lost)
		return;
	/* The code is spent: a retry of this callback cannot succeed, a new link can. */
	pl_err_hint(err,
	            "%sthe practice must authorize again with a new link from "
	            "'parlae sikka oauth-url %s'",
	            recorded ? "recorded as failed; " : "check that PostgreSQL is running; then ",
	            ev->account_id);
}

int pl_pms_callback(struct pl_session *s, const struct pl_pms_redirect *in,
                    struct pl_pms_callback_res *res, struct pl_err *err)
{
	struct pl_audit_event ev = {NULL, "sikka.callback", "pms_integration", NULL, NULL};
	struct pl_secret key = PL_SECRET_INIT;
	struct pl_buf ref = PL_BUF_INIT;
	struct pl_sikka_practice practice = {0};
	char version[PL_STORE_VERSION_MAX] = "", chosen[64];
	struct pl_store *store = NULL;
	struct pl_sikka sk = {0};
	struct pl_state st;
	struct pl_db *db;
	int r, trusted = 0;

	memset(res, 0, sizeof(*res));
	pl_strlcpy(res->status, "failed", sizeof(res->status));
	if ((r = pl_state_key(s->cfg, &key, err)) || (r = pl_session_db(s, &db, err)))
		goto out;
	/* Step 1: the state is signed, current, and used for the first time. */
	if ((r = pl_state_verify(&key, in->state, time(NULL), &st, err))) {
		if (!s->dry_run)
			pl_audit_finish(s, &ev, r, err);
		goto out;
	}
	ev.account_id = st.account;
	pl_strlcpy(res->account, st.account, sizeof(res->account));
	pl_buf_addf(&ref, PL_PMS_SECRET_PREFIX "%s", st.account);
	ev.resource_id = ref.buf;
	if (s->dry_run) {
		pl_strlcpy(res->status, "verified", sizeof(res->status));
		goto out;
	}
	/* The code is single-use: everything that could refuse later is checked before spending it.
	 */
	if ((r = pl_sikka_init(&sk, s->cfg, err)) || (r = pl_store_open(s->cfg, &store, err)) ||
	    (r = pl_store_ready(store, err))) {
		pl_audit_finish(s, &ev, r, err);
		goto out;
	}
	sk.account = st.account; /* named in the remedy of a refusal */
	if ((r = consume_state(db, &st, err))) {
		/* A replayed state says nothing about the practice: its row is left alone. */
		pl_audit_finish(s, &ev, r, err);
		goto out;
	}
	trusted = 1;
	/* Step 2: the practice said no. */
	if (in->error) {
		r = pl_err_set(err, PL_ENO, "the practice denied access: %.*s",
		               pl_utf8_cut(in->error, 100), in->error);
		goto out;
	}
	if (!in->practice_id &&
	    (r = pl_pms_chosen_location(db, st.account, chosen, sizeof(chosen), err)))
		goto out;
	if ((r = find_practice(&sk, in, st.account,
	                       in->practice_id ? in->practice_id
	                       : chosen[0]     ? chosen
	                                       : NULL,
	                       &practice, err)))
		goto out;
	pl_strlcpy(res->office_id, practice.office_id, sizeof(res->office_id));
	pl_strlcpy(res->practice_name, practice.practice_name, sizeof(res->practice_name));
	pl_strlcpy(res->pms_type, practice.pms_type, sizeof(res->pms_type));
	/* Steps 4-6. */
	{
		struct pl_pms_connect_req cr = {st.account, &practice, NULL, &ev, NULL, NULL};

		if (!(r = pl_pms_connect(s, store, &sk, &cr, version, err)))
			pl_strlcpy(res->status, "connected", sizeof(res->status));
	}
out:
	if (r && trusted)
		mark_failed(s, &ev, r, err);
	pl_store_close(store);
	if (sk.base)
		pl_sikka_release(&sk);
	pl_secret_release(&key);
	pl_secret_release(&practice.secret_key);
	pl_buf_release(&ref);
	return r;
}
