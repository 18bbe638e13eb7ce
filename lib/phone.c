#include "phone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "audit.h"
#include "buf.h"
#include "banned.h"

static int e164(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 9 || n > 16 || s[0] != '+' || s[1] == '0')
		return 0;
	return strspn(s + 1, "0123456789") == n - 1;
}

int pl_phone_add(struct pl_session *s, const struct pl_phone *p, struct pl_err *err)
{
	struct pl_audit_event ev = {p->account, "vapi.phone_add", "vapi_phone_number", p->vapi_id,
	                            NULL};
	const char *params[5];
	char meta[128];
	struct pl_db *db;
	int r;

	if ((r = pl_account_check_id(p->account, err)))
		return r;
	if (!*p->vapi_id || strlen(p->vapi_id) > 120 ||
	    strspn(p->vapi_id,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
	        strlen(p->vapi_id))
		return pl_err_set(
		    err, PL_EUSAGE,
		    "--vapi-id must be Vapi's phone number id (letters, digits, - _ .)");
	if (!e164(p->number))
		return pl_err_set(err, PL_EUSAGE, "--number must be E.164, like +15551234567");
	if (*p->staff_forward && !e164(p->staff_forward))
		return pl_err_set(err, PL_EUSAGE,
		                  "--staff-forward must be E.164, like +15557654321");
	if (p->transfer_enabled && !*p->staff_forward)
		return pl_err_set(err, PL_EUSAGE,
		                  "--transfer needs --staff-forward: where would the call go?");
	if ((r = pl_session_db(s, &db, err)) || (r = pl_account_require(db, p->account, err)))
		return r;
	if (s->dry_run)
		return 0;
	snprintf(meta, sizeof(meta), "{\"transferEnabled\":%s,\"staffForward\":%s}",
	         p->transfer_enabled ? "true" : "false", *p->staff_forward ? "true" : "false");
	ev.metadata = meta;
	params[0] = p->vapi_id;
	params[1] = p->account;
	params[2] = p->number;
	params[3] = *p->staff_forward ? p->staff_forward : NULL;
	params[4] = p->transfer_enabled ? "true" : "false";
	if (!(r = pl_db_begin(db, err))) {
		r = pl_db_query(
		    db, NULL,
		    "INSERT INTO vapi_phone_numbers (vapi_phone_id, account_id, number,"
		    " staff_forward_number, transfer_enabled) VALUES ($1, $2, $3, $4, $5)"
		    " ON CONFLICT (vapi_phone_id) DO UPDATE SET account_id = EXCLUDED.account_id,"
		    " number = EXCLUDED.number, staff_forward_number = "
		    "EXCLUDED.staff_forward_number,"
		    " transfer_enabled = EXCLUDED.transfer_enabled, updated_at = now()",
		    5, params, err);
	}
	return pl_audit_finish(s, &ev, r, err);
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
	r = pl_db_query(
	    db, &res,
	    "SELECT vapi_phone_id, account_id, number, coalesce(staff_forward_number, ''),"
	    " transfer_enabled FROM vapi_phone_numbers WHERE $1::text IS NULL OR account_id = $1"
	    " ORDER BY account_id, vapi_phone_id",
	    1, params, err);
	if (r)
		return r;
	rows = pl_db_rows(&res);
	*out = pl_xcalloc((size_t)rows + 1, sizeof(**out));
	for (int i = 0; i < rows; i++) {
		struct pl_phone *p = &(*out)[i];

		pl_strlcpy(p->vapi_id, pl_db_val(&res, i, 0), sizeof(p->vapi_id));
		pl_strlcpy(p->account, pl_db_val(&res, i, 1), sizeof(p->account));
		pl_strlcpy(p->number, pl_db_val(&res, i, 2), sizeof(p->number));
		pl_strlcpy(p->staff_forward, pl_db_val(&res, i, 3), sizeof(p->staff_forward));
		p->transfer_enabled = !strcmp(pl_db_val(&res, i, 4), "t");
	}
	*n = (size_t)rows;
	pl_db_res_clear(&res);
	return 0;
}
