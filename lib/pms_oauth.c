/* sikka oauth-url: the authorize URL with its signed, single-use state. */
#include "pms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "audit.h"
#include "buf.h"
#include "encode.h"
#include "http.h"
#include "pms_internal.h"
#include "state.h"
#include "banned.h"

#define DEFAULT_TTL 600
#define MAX_TTL     86400

void pl_pms_oauth_res_release(struct pl_pms_oauth_res *res)
{
	free(res->url);
	free(res->state);
	memset(res, 0, sizeof(*res));
}

/* The integration must exist (pms setup) before a practice can be sent to authorize. */
static int require_integration(struct pl_db *db, const char *account, struct pl_err *err)
{
	const char *params[1] = {account};
	int r, found = 0;

	r = pl_db_exists(
	    db, "SELECT 1 FROM pms_integrations WHERE account_id = $1 AND provider = 'SIKKA'", 1,
	    params, &found, err);
	if (r || found)
		return r;
	pl_err_set(err, PL_ENOTFOUND, "account '%s' has no Sikka integration", account);
	return pl_err_hint(err, "run 'parlae pms setup %s' first", account);
}

static int redirect_uri(struct pl_session *s, const char *given, struct pl_buf *out,
                        struct pl_err *err)
{
	const char *base = pl_config_get(s->cfg, "APP_BASE_URL");
	size_t n;

	if (given) {
		int r = pl_http_check_url(given, "--redirect-uri", err);

		if (r)
			return r;
		pl_buf_adds(out, given);
		return 0;
	}
	if (!base) {
		pl_err_set(err, PL_ECONFIG,
		           "APP_BASE_URL is not set and no --redirect-uri was given");
		return pl_err_hint(
		    err,
		    "export APP_BASE_URL=https://your-backend.example or pass --redirect-uri URL");
	}
	n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	pl_buf_addf(out, "%.*s/pms/sikka/oauth/callback", (int)n, base);
	return 0;
}

int pl_pms_oauth_url(struct pl_session *s, const struct pl_pms_oauth_req *req,
                     struct pl_pms_oauth_res *res, struct pl_err *err)
{
	struct pl_audit_event ev = {req->account, "sikka.oauth_url", "oauth_state", NULL, NULL};
	struct pl_secret key = PL_SECRET_INIT;
	struct pl_buf uri = PL_BUF_INIT, url = PL_BUF_INIT, meta = PL_BUF_INIT;
	const char *app_id = pl_config_get(s->cfg, "SIKKA_APP_ID");
	const char *authorize = pl_config_get(s->cfg, "SIKKA_AUTHORIZE_URL");
	long ttl = req->ttl ? req->ttl : DEFAULT_TTL;
	struct pl_state st = {0};
	char issued[32];
	struct pl_db *db;
	int r;

	memset(res, 0, sizeof(*res));
	if (ttl < 1 || ttl > MAX_TTL)
		return pl_err_set(err, PL_EUSAGE, "--ttl must be between 1 and %d seconds",
		                  MAX_TTL);
	if ((r = pl_account_check_id(req->account, err)) || (r = pl_session_db(s, &db, err)))
		return r;
	/* From here on a refusal is recorded: someone tried to start an onboarding. */
	if ((r = redirect_uri(s, req->redirect_uri, &uri, err)))
		goto failed;
	if (!app_id) {
		r = pl_err_set(err, PL_ECONFIG, "SIKKA_APP_ID is not set");
		pl_err_hint(
		    err,
		    "export the system's Sikka app credentials SIKKA_APP_ID and SIKKA_APP_KEY");
		goto failed;
	}
	if ((r = pl_state_key(s->cfg, &key, err)) ||
	    (r = pl_account_require(db, req->account, err)) ||
	    (r = require_integration(db, req->account, err)))
		goto failed;
	pl_strlcpy(st.account, req->account, sizeof(st.account));
	if (pl_random_hex(st.nonce, 16) < 0) {
		r = pl_err_set(err, PL_EINTERNAL, "no randomness available for the state's nonce");
		goto out;
	}
	st.issued_at = time(NULL);
	st.expires_at = st.issued_at + ttl;
	if (!(res->state = pl_state_sign(&key, &st))) {
		r = pl_err_set(err, PL_EINTERNAL, "cannot sign the OAuth state");
		goto out;
	}
	pl_pms_iso_utc(st.expires_at, res->expires_at, sizeof(res->expires_at));
	pl_pms_iso_utc(st.issued_at, issued, sizeof(issued));
	{
		char *a = pl_http_escape(app_id), *u = pl_http_escape(uri.buf),
		     *t = pl_http_escape(res->state);

		pl_buf_addf(&url, "%s%sapp_id=%s&redirect_uri=%s&state=%s", authorize,
		            strchr(authorize, '?') ? "&" : "?", a, u, t);
		free(a);
		free(u);
		free(t);
	}
	res->url = pl_buf_detach(&url, NULL);
	ev.resource_id = st.nonce;
	pl_buf_addf(&meta, "{\"expiresAt\":\"%s\"}", res->expires_at);
	ev.metadata = meta.buf;
	if (s->dry_run)
		goto out;
	if (!(r = pl_db_begin(db, err))) {
		const char *params[5] = {st.nonce, req->account, uri.buf, issued, res->expires_at};

		r = pl_db_query(db, NULL,
		                "INSERT INTO oauth_states (nonce, account_id, redirect_uri, "
		                "issued_at, expires_at)"
		                " VALUES ($1, $2, $3, $4, $5)",
		                5, params, err);
	}
	if (!r) {
		const char *params[1] = {req->account};

		r = pl_db_query(
		    db, NULL,
		    "UPDATE pms_integrations SET status = 'CONNECTING', last_error = NULL,"
		    " updated_at = now() WHERE account_id = $1 AND provider = 'SIKKA'"
		    " AND status <> 'ACTIVE'",
		    1, params, err);
	}
	r = pl_audit_finish(s, &ev, r, err);
	goto out;
failed:
	if (!s->dry_run && r != PL_EUSAGE)
		pl_audit_finish(s, &ev, r, err);
out:
	pl_secret_release(&key);
	pl_buf_release(&uri);
	pl_buf_release(&url);
	pl_buf_release(&meta);
	if (r)
		pl_pms_oauth_res_release(res);
	return r;
}
