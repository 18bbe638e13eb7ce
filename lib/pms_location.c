/*
 * Which location of a multi-location office to onboard: the account's choice (pms setup
 * --practice-id, or the callback's), else the office's only location, else an error that
 * lists them, so that no practice is ever connected to a location nobody chose.
 */
#include "pms.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "sikka.h"
#include "utf8.h"
#include "banned.h"

int pl_pms_check_practice_id(const char *id, struct pl_err *err)
{
	size_t n = strlen(id);

	if (n && n < 64 &&
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	               "0123456789_-") == n)
		return 0;
	return pl_err_set(err, PL_EUSAGE,
	                  "--practice-id must be 1-63 letters, digits, '_' or '-' (a location's "
	                  "practice_id as Sikka lists it)");
}

static int matches(const struct pl_sikka_practice *p, int by_customer, const char *key)
{
	return !strcmp(by_customer ? p->customer_id : p->office_id, key);
}

int pl_pms_pick_location(const struct pl_sikka_practice *list, size_t n, int by_customer,
                         const char *key, const char *chosen, const char *account, size_t *index,
                         struct pl_err *err)
{
	struct pl_buf ids = PL_BUF_INIT;
	size_t found = 0, picked = n, shown = 0;

	for (size_t i = 0; i < n; i++) {
		if (!matches(&list[i], by_customer, key))
			continue;
		found++;
		if (chosen ? !strcmp(list[i].practice_id, chosen) : found == 1)
			picked = i;
		if (shown++ < 10)
			pl_buf_addf(&ids, "%s%s (%.*s)", ids.len ? ", " : "", list[i].practice_id,
			            pl_utf8_cut(list[i].practice_name, 60), list[i].practice_name);
	}
	if (!found) {
		pl_buf_release(&ids);
		pl_err_set(err, PL_ENOTFOUND, "Sikka lists no practice for %s %s",
		           by_customer ? "customer" : "office", key);
		return pl_err_hint(err, "is the practice's SPU installed and running?");
	}
	if (chosen ? picked == n : found > 1) {
		if (chosen)
			pl_err_set(err, PL_EUSAGE, "%s %s has no location %s; its locations: %s%s",
			           by_customer ? "customer" : "office", key, chosen, ids.buf,
			           shown > 10 ? ", ..." : "");
		else
			pl_err_set(err, PL_EUSAGE, "%s %s has several locations: %s%s",
			           by_customer ? "customer" : "office", key, ids.buf,
			           shown > 10 ? ", ..." : "");
		pl_buf_release(&ids);
		return pl_err_hint(err, "choose one with 'parlae pms setup %s --practice-id ID'",
		                   account);
	}
	pl_buf_release(&ids);
	*index = picked;
	return 0;
}

int pl_pms_chosen_location(struct pl_db *db, const char *account, char *out, size_t size,
                           struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	const char *v;
	int r;

	out[0] = '\0';
	r = pl_db_query(db, &res,
	                "SELECT config->>'practiceId' FROM pms_integrations"
	                " WHERE account_id = $1 AND provider = 'SIKKA'",
	                1, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res) && (v = pl_db_val(&res, 0, 0)))
		pl_strlcpy(out, v, size);
	pl_db_res_clear(&res);
	return 0;
}
