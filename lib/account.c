#include "account.h"

#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "suggest.h"
#include "utf8.h"
#include "banned.h"

int pl_account_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		         (i > 0 && (c == '_' || c == '-'));

		if (!ok)
			return 0;
	}
	return 1;
}

int pl_account_check_id(const char *id, struct pl_err *err)
{
	if (pl_account_id_valid(id))
		return 0;
	pl_err_set(err, PL_EUSAGE, "invalid account id '%.*s'", pl_utf8_cut(id, 80), id);
	return pl_err_hint(err,
	                   "use 1-63 of a-z, 0-9, '_' and '-', starting with a letter or digit");
}

const char *pl_account_status_name(const char *db_status)
{
	if (!db_status || !strcmp(db_status, "INACTIVE"))
		return "pending";
	if (!strcmp(db_status, "ACTIVE"))
		return "connected";
	if (!strcmp(db_status, "CONNECTING") || !strcmp(db_status, "SETUP_REQUIRED"))
		return "connecting";
	return "failed";
}

static int exists(struct pl_db *db, const char *id, int *found, struct pl_err *err)
{
	const char *params[1] = {id};

	return pl_db_exists(db, "SELECT 1 FROM accounts WHERE id = $1", 1, params, found, err);
}

int pl_account_missing(struct pl_db *db, const char *id, struct pl_err *err)
{
	struct pl_err ignored = PL_ERR_INIT;
	struct pl_db_res res = PL_DB_RES_INIT;
	const char **ids, *near;
	int n;

	/* A near id is only a courtesy: if the list cannot be read, the error is still this. */
	if (!pl_db_query(db, &res, "SELECT id FROM accounts ORDER BY id", 0, NULL, &ignored)) {
		n = pl_db_rows(&res);
		ids = pl_xcalloc((size_t)n + 1, sizeof(*ids));
		for (int i = 0; i < n; i++)
			ids[i] = pl_db_val(&res, i, 0);
		if ((near = pl_suggest(id, ids, (size_t)n)))
			pl_err_set(err, PL_ENOTFOUND, "no account '%s'; did you mean '%s'?", id,
			           near);
		free(ids);
		pl_db_res_clear(&res);
		if (near)
			return err->code;
	}
	pl_err_set(err, PL_ENOTFOUND, "no account '%s'", id);
	return pl_err_hint(err, "create it with 'parlae account add %s'", id);
}

int pl_account_require(struct pl_db *db, const char *id, struct pl_err *err)
{
	int r, found = 0;

	if ((r = exists(db, id, &found, err)))
		return r;
	return found ? 0 : pl_account_missing(db, id, err);
}

static int conflict(const char *id, struct pl_err *err)
{
	pl_err_set(err, PL_ECONFLICT, "account '%s' already exists", id);
	return pl_err_hint(err, "see 'parlae account list'");
}

int pl_account_check_email(const char *email, struct pl_err *err)
{
	size_t n = strlen(email);
	const char *at = strchr(email, '@');

	if (n <= 254 && at && at > email && at[1] && !strchr(at + 1, '@') &&
	    strcspn(email, " \t\r\n") == n && pl_utf8_valid(email, n))
		return 0;
	pl_err_set(err, PL_EUSAGE, "--email: '%.*s' is not an email address",
	           pl_utf8_cut(email, 80), email);
	return pl_err_hint(err, "give the practice's contact address, like frontdesk@example.com");
}

int pl_account_add(struct pl_session *s, const char *id, const char *name, const char *email,
                   struct pl_err *err)
{
	struct pl_audit_event ev = {id, "account.add", "account", id, NULL};
	const char *params[3] = {id, name, email};
	struct pl_db *db;
	int r, found = 0;

	if ((r = pl_account_check_id(id, err)))
		return r;
	if (name && !pl_utf8_valid(name, strlen(name)))
		return pl_err_set(err, PL_EUSAGE, "--name '%s' is not UTF-8 text", name);
	if (email && (r = pl_account_check_email(email, err)))
		return r;
	if ((r = pl_session_db(s, &db, err)))
		return r;
	if (s->dry_run) {
		if (!(r = exists(db, id, &found, err)) && found)
			r = conflict(id, err);
		return r;
	}
	r = pl_db_begin(db, err);
	if (!r) {
		r = pl_db_query(db, NULL,
		                "INSERT INTO accounts (id, name, email) VALUES ($1, $2, $3)", 3,
		                params, err);
		if (r == PL_ECONFLICT)
			conflict(id, err);
	}
	return pl_audit_finish(s, &ev, r, err);
}

int pl_account_list(struct pl_session *s, struct pl_account_list *out, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	struct pl_db *db;
	int r, n;

	memset(out, 0, sizeof(*out));
	if ((r = pl_session_db(s, &db, err)))
		return r;
	r = pl_db_query(
	    db, &res,
	    "SELECT a.id, a.name, " PL_ACCOUNT_STATUS_SQL ","
	    " to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), a.email"
	    " FROM accounts a LEFT JOIN pms_integrations p"
	    " ON p.account_id = a.id AND p.provider = 'SIKKA' ORDER BY a.id",
	    0, NULL, err);
	if (r)
		return r;
	n = pl_db_rows(&res);
	out->v = pl_xcalloc((size_t)n + 1, sizeof(*out->v));
	for (int i = 0; i < n; i++) {
		struct pl_account *a = &out->v[out->n++];
		const char *name = pl_db_val(&res, i, 1);

		pl_strlcpy(a->id, pl_db_val(&res, i, 0), sizeof(a->id));
		a->name = name ? pl_xstrdup(name) : NULL;
		pl_strlcpy(a->status, pl_account_status_name(pl_db_val(&res, i, 2)),
		           sizeof(a->status));
		pl_strlcpy(a->created_at, pl_db_val(&res, i, 3), sizeof(a->created_at));
		a->email = pl_db_val(&res, i, 4) ? pl_xstrdup(pl_db_val(&res, i, 4)) : NULL;
	}
	pl_db_res_clear(&res);
	return 0;
}

void pl_account_list_release(struct pl_account_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].email);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}
