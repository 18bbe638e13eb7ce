/*
 * Which account a Vapi message is for: --account, the assistant's metadata, the Vapi phone
 * number id, or the called number, in the contract's order.
 */
#include "vapi_handle.h"

#include <stdio.h>
#include <string.h>

#include "account.h"
#include "db.h"
#include "utf8.h"
#include "banned.h"

static int account_for_phone(struct pl_db *db, const char *phone_id, char *account, size_t size,
                             struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {phone_id};
	int r;

	r = pl_db_query(db, &res,
	                "SELECT account_id FROM vapi_phone_numbers WHERE vapi_phone_id = $1", 1,
	                params, err);
	if (r)
		return r;
	if (!pl_db_rows(&res)) {
		pl_db_res_clear(&res);
		pl_err_set(err, PL_ENOTFOUND, "no account has the Vapi phone number id '%.*s'",
		           pl_utf8_cut(phone_id, 80), phone_id);
		return pl_err_hint(err,
		                   "register it with 'parlae vapi phone add ACCOUNT --vapi-id "
		                   "%.*s --number E164'",
		                   pl_utf8_cut(phone_id, 80), phone_id);
	}
	snprintf(account, size, "%s", pl_db_val(&res, 0, 0));
	pl_db_res_clear(&res);
	return 0;
}

/* The one account the called number (E.164 digits) is registered to. */
static int account_for_number(struct pl_db *db, const char *number, char *account, size_t size,
                              struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	char digits[32];
	const char *params[1] = {digits};
	int r, n;

	pl_phone_digits(number, digits, sizeof(digits));
	r = pl_db_query(db, &res,
	                "SELECT DISTINCT account_id FROM vapi_phone_numbers"
	                " WHERE regexp_replace(number, '[^0-9]', '', 'g') = $1 LIMIT 2",
	                1, params, err);
	if (r)
		return r;
	n = (int)pl_db_rows(&res);
	if (n == 1)
		snprintf(account, size, "%s", pl_db_val(&res, 0, 0));
	pl_db_res_clear(&res);
	/* A number two accounts registered says nothing about which one the call is for. */
	if (n != 1)
		return pl_err_set(err, PL_ENOTFOUND, "%s account has the called number %.*s",
		                  n ? "more than one" : "no", pl_utf8_cut(number, 40), number);
	return 0;
}

/* Every statement on a call, a number or a patient then names that account. */
int pl_vapi_account(struct pl_db *db, const char *override, const struct pl_vapi_msg *m,
                    char *account, size_t size, struct pl_err *err)
{
	struct pl_err ignored = PL_ERR_INIT;
	int r;

	if (override) {
		if ((r = pl_account_check_id(override, err)) ||
		    (r = pl_account_require(db, override, err)))
			return r;
		snprintf(account, size, "%s", override);
		return 0;
	}
	if (m->account_hint && pl_account_id_valid(m->account_hint)) {
		r = pl_account_require(db, m->account_hint, &ignored);
		if (!r) {
			snprintf(account, size, "%s", m->account_hint);
			return 0;
		}
		if (r != PL_ENOTFOUND) {
			*err = ignored;
			return r;
		}
	}
	if (m->phone_number_id) {
		r = account_for_phone(db, m->phone_number_id, account, size, err);
		if (r != PL_ENOTFOUND || !m->called_number ||
		    account_for_number(db, m->called_number, account, size, &ignored))
			return r;
		pl_err_clear(err);
		return 0;
	}
	if (m->called_number)
		return account_for_number(db, m->called_number, account, size, err);
	pl_err_set(err, PL_EUSAGE,
	           "no account: give --account ACCOUNT, or a payload whose "
	           "message.call.phoneNumberId is registered");
	return pl_err_hint(err, "see 'parlae vapi phone list'");
}
