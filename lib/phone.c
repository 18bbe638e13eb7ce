#include "phone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "audit.h"
#include "buf.h"
#include "json.h"
#include "banned.h"

static int e164(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 9 || n > 16 || s[0] != '+' || s[1] == '0')
		return 0;
	return strspn(s + 1, "0123456789") == n - 1;
}

static int check_vapi_id(const char *id, const char *what, struct pl_err *err)
{
	size_t n = id ? strlen(id) : 0;

	if (!n || n > 120 ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
		return pl_err_set(err, PL_EUSAGE,
		                  "%s must be Vapi's phone number id (letters, digits, - _ .)",
		                  what);
	return 0;
}

static int check_req(const struct pl_phone_req *req, struct pl_err *err)
{
	int r;

	if ((r = pl_account_check_id(req->account, err)) ||
	    (r = check_vapi_id(req->vapi_id, "--vapi-id", err)))
		return r;
	if (!e164(req->number))
		return pl_err_set(err, PL_EUSAGE, "--number must be E.164, like +15551234567");
	if (req->staff_forward && !e164(req->staff_forward))
		return pl_err_set(err, PL_EUSAGE,
		                  "--staff-forward must be E.164, like +15557654321");
	return 0;
}

static void row_to_phone(const struct pl_db_res *res, int row, struct pl_phone *p)
{
	const char *staff = pl_db_val(res, row, 3);

	pl_strlcpy(p->vapi_id, pl_db_val(res, row, 0), sizeof(p->vapi_id));
	pl_strlcpy(p->account, pl_db_val(res, row, 1), sizeof(p->account));
	pl_strlcpy(p->number, pl_db_val(res, row, 2), sizeof(p->number));
	pl_strlcpy(p->staff_forward, staff ? staff : "", sizeof(p->staff_forward));
	p->transfer_enabled = !strcmp(pl_db_val(res, row, 4), "t");
}

#define PHONE_COLUMNS "vapi_phone_id, account_id, number, staff_forward_number, transfer_enabled"

/* The registration of id, if any (*found); lock: hold its row until the transaction ends. */
static int read_phone(struct pl_db *db, const char *id, int lock, struct pl_phone *p, int *found,
                      struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {id};
	int r;

	*found = 0;
	r = pl_db_query(db, &res,
	                lock ? "SELECT " PHONE_COLUMNS " FROM vapi_phone_numbers"
	                       " WHERE vapi_phone_id = $1 FOR UPDATE"
	                     : "SELECT " PHONE_COLUMNS " FROM vapi_phone_numbers"
	                       " WHERE vapi_phone_id = $1",
	                1, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res) > 0) {
		row_to_phone(&res, 0, p);
		*found = 1;
	}
	pl_db_res_clear(&res);
	return 0;
}

/*
 * The registration that req makes of what is registered now (old, when found): settings not
 * given are kept only when the id stays with its account, since another practice's staff line
 * must never receive this one's callers. Refuses a move not asked for, and a transfer with
 * nowhere to go.
 */
static int merge(const struct pl_phone_req *req, const struct pl_phone *old, int found,
                 struct pl_phone_change *out, struct pl_err *err)
{
	struct pl_phone *p = &out->phone;
	int same = found && !strcmp(old->account, req->account);

	memset(out, 0, sizeof(*out));
	out->created = !found;
	pl_strlcpy(p->vapi_id, req->vapi_id, sizeof(p->vapi_id));
	pl_strlcpy(p->account, req->account, sizeof(p->account));
	pl_strlcpy(p->number, req->number, sizeof(p->number));
	if (req->staff_forward)
		pl_strlcpy(p->staff_forward, req->staff_forward, sizeof(p->staff_forward));
	else if (same)
		pl_strlcpy(p->staff_forward, old->staff_forward, sizeof(p->staff_forward));
	if (req->transfer >= 0)
		p->transfer_enabled = req->transfer;
	else if (same)
		p->transfer_enabled = old->transfer_enabled;
	if (found && !same) {
		if (!req->move) {
			pl_err_set(
			    err, PL_ECONFLICT,
			    "the Vapi phone number id '%s' is registered to account '%s': pass "
			    "--move to move it to '%s'",
			    req->vapi_id, old->account, req->account);
			return pl_err_hint(err, "see 'parlae vapi phone list'");
		}
		pl_strlcpy(out->moved_from, old->account, sizeof(out->moved_from));
	}
	if (p->transfer_enabled && !*p->staff_forward)
		return pl_err_set(err, PL_EUSAGE,
		                  "--transfer needs --staff-forward: where would the call go?");
	return 0;
}

/* What is enabled, never the numbers; a move names both accounts. */
static char *add_metadata(const struct pl_phone_req *req, const struct pl_phone_change *c,
                          const char *other)
{
	json_t *m = pl_json_x(json_pack("{s:b, s:b}", "transferEnabled", c->phone.transfer_enabled,
	                                "staffForward", *c->phone.staff_forward != '\0'));
	char *text;

	if (other) {
		json_object_set_new(m, "from", pl_json_x(json_string(other)));
		json_object_set_new(m, "to", pl_json_x(json_string(req->account)));
	}
	text = pl_json_dump(m);
	json_decref(m);
	return text;
}

static int write_phone(struct pl_db *db, const struct pl_phone_change *c, struct pl_err *err)
{
	const struct pl_phone *p = &c->phone;
	const char *params[5] = {p->vapi_id, p->account, p->number,
	                         *p->staff_forward ? p->staff_forward : NULL,
	                         p->transfer_enabled ? "true" : "false"};

	if (c->created)
		return pl_db_query(db, NULL,
		                   "INSERT INTO vapi_phone_numbers (" PHONE_COLUMNS ")"
		                   " VALUES ($1, $2, $3, $4, $5)",
		                   5, params, err);
	return pl_db_query(db, NULL,
	                   "UPDATE vapi_phone_numbers SET account_id = $2, number = $3,"
	                   " staff_forward_number = $4, transfer_enabled = $5, updated_at = now()"
	                   " WHERE vapi_phone_id = $1",
	                   5, params, err);
}

int pl_phone_add(struct pl_session *s, const struct pl_phone_req *req, struct pl_phone_change *out,
                 struct pl_err *err)
{
	struct pl_audit_event ev = {req->account, "vapi.phone_add", "vapi_phone_number",
	                            req->vapi_id, NULL};
	struct pl_phone old = {0};
	struct pl_db *db;
	char *meta;
	int r, found;

	memset(out, 0, sizeof(*out));
	if ((r = check_req(req, err)) || (r = pl_session_db(s, &db, err)) ||
	    (r = pl_account_require(db, req->account, err)))
		return r;
	if (s->dry_run) {
		if ((r = read_phone(db, req->vapi_id, 0, &old, &found, err)))
			return r;
		return merge(req, &old, found, out, err);
	}
	if ((r = pl_db_begin(db, err)) || (r = read_phone(db, req->vapi_id, 1, &old, &found, err)))
		return pl_audit_finish(s, &ev, r, err);
	/* A usage error attempted nothing; a refused move is recorded as refused. */
	if ((r = merge(req, &old, found, out, err)) == PL_EUSAGE) {
		pl_db_rollback(db);
		return r;
	}
	if (!r && (r = write_phone(db, out, err)) == PL_ECONFLICT) {
		pl_err_set(err, PL_ECONFLICT,
		           "the Vapi phone number id '%s' was registered meanwhile", req->vapi_id);
		pl_err_hint(err, "see 'parlae vapi phone list', then try again");
	}
	meta =
	    add_metadata(req, out, found && strcmp(old.account, req->account) ? old.account : NULL);
	ev.metadata = meta;
	r = pl_audit_finish(s, &ev, r, err);
	free(meta);
	return r;
}

int pl_phone_remove(struct pl_session *s, const char *vapi_id, struct pl_phone *out,
                    struct pl_err *err)
{
	struct pl_audit_event ev = {NULL, "vapi.phone_remove", "vapi_phone_number", vapi_id, NULL};
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {vapi_id};
	struct pl_db *db;
	int r, found;

	memset(out, 0, sizeof(*out));
	if ((r = check_vapi_id(vapi_id, "VAPI_ID", err)) || (r = pl_session_db(s, &db, err)))
		return r;
	if (s->dry_run) {
		if ((r = read_phone(db, vapi_id, 0, out, &found, err)))
			return r;
		if (found)
			return 0;
		goto not_found;
	}
	if ((r = pl_db_begin(db, err)))
		return r;
	r = pl_db_query(db, &res,
	                "DELETE FROM vapi_phone_numbers WHERE vapi_phone_id = $1"
	                " RETURNING " PHONE_COLUMNS,
	                1, params, err);
	if (!r && pl_db_rows(&res) > 0) {
		row_to_phone(&res, 0, out);
		ev.account_id = out->account;
	} else if (!r) {
		r = PL_ENOTFOUND;
	}
	pl_db_res_clear(&res);
	if (r != PL_ENOTFOUND)
		return pl_audit_finish(s, &ev, r, err);
not_found:
	pl_err_set(err, PL_ENOTFOUND, "no Vapi phone number id '%s' is registered", vapi_id);
	pl_err_hint(err, "see 'parlae vapi phone list'");
	return s->dry_run ? PL_ENOTFOUND : pl_audit_finish(s, &ev, PL_ENOTFOUND, err);
}

int pl_phone_list(struct pl_session *s, const char *account, struct pl_phone **out, size_t *n,
                  struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	struct pl_db *db;
	int r, rows;

	*out = NULL;
	*n = 0;
	if ((r = pl_session_db(s, &db, err)))
		return r;
	r = pl_db_query(db, &res,
	                "SELECT " PHONE_COLUMNS " FROM vapi_phone_numbers"
	                " WHERE $1::text IS NULL OR account_id = $1"
	                " ORDER BY account_id, vapi_phone_id",
	                1, params, err);
	if (r)
		return r;
	rows = pl_db_rows(&res);
	*out = pl_xcalloc((size_t)rows + 1, sizeof(**out));
	for (int i = 0; i < rows; i++)
		row_to_phone(&res, i, &(*out)[i]);
	*n = (size_t)rows;
	pl_db_res_clear(&res);
	return 0;
}
