#include "handshake.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "audit.h"
#include "buf.h"
#include "encode.h"
#include "json.h"
#include "pms.h"
#include "rotate.h"
#include "sikka.h"
#include "store.h"
#include "utf8.h"
#include "banned.h"

#define ID_MAX 128

/* The fields of a registration that identify it; everything else in the body is personal. */
static const char *const id_fields[] = {"MasterCustomerID",
                                        "PartnerRegistrationID",
                                        "Order#",
                                        "PurchaseDate",
                                        "CancelDate",
                                        "Source",
                                        NULL};

struct body {
	char registration[ID_MAX + 1], customer[ID_MAX + 1], order[ID_MAX + 1], date[65];
	char email[255];
	json_t *personal; /* the body without its ids (a new reference) */
};

/* What is going on: the registration row (inserted when row is 0), for whom, and its event. */
struct job {
	struct pl_session *s;
	const char *kind; /* purchase | cancel */
	struct body *b;   /* the body received, or NULL (assign: the row exists) */
	long long row;
	const char *action;
	struct pl_handshake_res *res;
};

static int session_db(struct pl_session *s, struct pl_err *err)
{
	struct pl_db *db;

	return pl_session_db(s, &db, err);
}

static void body_release(struct body *b)
{
	json_decref(b->personal);
	memset(b, 0, sizeof(*b));
}

/* An id field: printable text of at most ID_MAX bytes; "" when absent. -1 when not one. */
static int id_field(json_t *o, const char *key, char *out, size_t size)
{
	char buf[64];
	const char *v = pl_json_text(o, key, buf, sizeof(buf));

	out[0] = '\0';
	if (!v)
		return 0;
	if (json_is_object(json_object_get(o, key)) || json_is_array(json_object_get(o, key)))
		return -1;
	if (strlen(v) >= size)
		return -1;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -1;
	pl_strlcpy(out, v, size);
	return 0;
}

/* 0 and b filled when text is a registration; else -1 and why. */
static int parse_body(const char *text, size_t len, struct body *b, char *why, size_t whysize)
{
	struct pl_err perr = PL_ERR_INIT;
	json_t *o = NULL;
	const char *bad = NULL;

	memset(b, 0, sizeof(*b));
	if (len > PL_HANDSHAKE_MAX_BODY) {
		snprintf(why, whysize, "larger than %d bytes (the first %d are kept)",
		         PL_HANDSHAKE_MAX_BODY, PL_HANDSHAKE_MAX_BODY);
		return -1;
	}
	if (pl_json_parse(text, len, len + 1, 16, "the registration", &o, &perr)) {
		snprintf(why, whysize, "%s", perr.msg);
		return -1;
	}
	if (!json_is_object(o))
		bad = "it is not a JSON object";
	else if (id_field(o, "PartnerRegistrationID", b->registration, sizeof(b->registration)) ||
	         !b->registration[0])
		bad = "no PartnerRegistrationID (text of at most 128 bytes)";
	else if (id_field(o, "MasterCustomerID", b->customer, sizeof(b->customer)) ||
	         !b->customer[0])
		bad = "no MasterCustomerID (text of at most 128 bytes)";
	else if (id_field(o, "Order#", b->order, sizeof(b->order)))
		bad = "Order# is not text of at most 128 bytes";
	else if (id_field(o, "PurchaseDate", b->date, sizeof(b->date)))
		bad = "PurchaseDate is not text of at most 64 bytes";
	else if (id_field(o, "EmailAddress", b->email, sizeof(b->email)))
		bad = "EmailAddress is not text of at most 254 bytes";
	if (bad) {
		snprintf(why, whysize, "%s", bad);
		json_decref(o);
		return -1;
	}
	b->personal = json_deep_copy(o);
	for (size_t i = 0; id_fields[i]; i++)
		json_object_del(b->personal, id_fields[i]);
	json_decref(o);
	return 0;
}

static void ll(char *buf, size_t size, long long v)
{
	snprintf(buf, size, "%lld", v);
}

/* The event's metadata: the registration's ids and what became of it, never a personal field. */
static char *metadata(const struct job *j)
{
	const struct pl_handshake_res *r = j->res;
	json_t *m = json_object();
	char *text;

	if (r->registration[0])
		pl_json_set(m, "registrationId", json_string(r->registration));
	if (r->customer[0])
		pl_json_set(m, "masterCustomerId", json_string(r->customer));
	if (j->b && j->b->order[0])
		pl_json_set(m, "order", json_string(j->b->order));
	pl_json_set(m, "state", json_string(r->state));
	if (r->duplicate_of)
		pl_json_set(m, "duplicateOf", json_integer(r->duplicate_of));
	text = pl_json_dump(m);
	json_decref(m);
	return text;
}

/*
 * Write the registration row in the open transaction: insert it (j->row 0) or update it.
 * personal is kept only for pending and unmatched. PL_ECONFLICT when the insert met a first
 * registration of the same id (another process kept it meanwhile).
 */
static int write_row(struct job *j, const char *state, const char *account, const char *note,
                     struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	struct pl_db *db = &j->s->db;
	int keep = !strcmp(state, "pending") || !strcmp(state, "unmatched");
	char *personal = keep && j->b ? pl_json_dump(j->b->personal) : NULL;
	char row[32], dup[32];
	int r;

	pl_strlcpy(j->res->state, state, sizeof(j->res->state));
	ll(dup, sizeof(dup), j->res->duplicate_of);
	if (!j->row) {
		const char *params[10] = {j->kind,
		                          state,
		                          j->b->registration,
		                          j->b->customer,
		                          j->b->order[0] ? j->b->order : NULL,
		                          j->b->date[0] ? j->b->date : NULL,
		                          account,
		                          j->res->duplicate_of ? dup : NULL,
		                          personal,
		                          note && *note ? note : NULL};

		r = pl_db_query(db, &res,
		                "INSERT INTO pms_registrations (kind, state, registration_id,"
		                " master_customer_id, order_number, purchase_date, account_id,"
		                " duplicate_of, personal, note)"
		                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9::jsonb,"
		                " left($10, 500)) ON CONFLICT DO NOTHING RETURNING id",
		                10, params, err);
		if (!r && pl_db_rows(&res) == 0)
			r = pl_err_set(err, PL_ECONFLICT, "registration %s was kept meanwhile",
			               j->b->registration);
		if (!r)
			j->row = atoll(pl_db_val(&res, 0, 0));
	} else {
		const char *params[5] = {row, state, account, note && *note ? note : NULL,
		                         keep ? "t" : "f"};

		ll(row, sizeof(row), j->row);
		r = pl_db_query(db, NULL,
		                "UPDATE pms_registrations SET state = $2, account_id = $3,"
		                " note = left($4, 500), updated_at = now(),"
		                " personal = CASE WHEN $5::boolean THEN personal END WHERE id = $1",
		                5, params, err);
	}
	pl_db_res_clear(&res);
	free(personal);
	j->res->row = j->row;
	pl_strlcpy(j->res->account, account ? account : "", sizeof(j->res->account));
	pl_strlcpy(j->res->note, note ? note : "", sizeof(j->res->note));
	return r;
}

/* Append the event (code: its outcome) and commit what the transaction holds. */
static int finish(struct job *j, int code, struct pl_err *err)
{
	struct pl_audit_event ev = {NULL, j->action, "pms_registration", NULL, NULL};
	char row[32], *meta = metadata(j);
	int r;

	ll(row, sizeof(row), j->row);
	ev.account_id = j->res->account[0] ? j->res->account : NULL;
	ev.resource_id = row;
	ev.metadata = meta;
	if (!(r = pl_audit_append(j->s, &ev, code, err)))
		r = pl_db_commit(&j->s->db, err);
	if (r)
		pl_db_rollback(&j->s->db);
	free(meta);
	return r;
}

/* A body that is not a registration, kept as received. */
static int keep_malformed(struct pl_session *s, const char *kind, const char *action,
                          const char *text, size_t len, const char *why,
                          struct pl_handshake_res *res, struct pl_err *err)
{
	struct pl_db_res rows = PL_DB_RES_INIT;
	size_t n = len > PL_HANDSHAKE_MAX_BODY ? PL_HANDSHAKE_MAX_BODY : len;
	char *hex = pl_xmalloc(2 * n + 1);
	const char *params[3] = {kind, hex, why};
	struct job j = {s, kind, NULL, 0, action, res};
	int r;

	pl_hex((const unsigned char *)text, n, hex);
	pl_strlcpy(res->state, "malformed", sizeof(res->state));
	if (!(r = pl_db_begin(&s->db, err)) &&
	    !(r = pl_db_query(&s->db, &rows,
	                      "INSERT INTO pms_registrations (kind, state, raw, note)"
	                      " VALUES ($1, 'malformed', decode($2, 'hex'), left($3, 500))"
	                      " RETURNING id",
	                      3, params, err))) {
		j.row = res->row = atoll(pl_db_val(&rows, 0, 0));
		r = finish(&j, PL_EBADINPUT, err);
	}
	pl_db_res_clear(&rows);
	free(hex);
	if (r) {
		pl_db_rollback(&s->db);
		return r;
	}
	pl_err_set(err, PL_EBADINPUT, "not a registration (%.*s): kept as received, as #%lld",
	           pl_utf8_cut(why, 200), why, res->row);
	return pl_err_hint(err, "see 'parlae pms registrations --pending'");
}

/* The first registration with this id, or 0. */
static int find_first(struct pl_db *db, const char *registration, long long *row,
                      struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {registration};
	int r;

	*row = 0;
	r = pl_db_query(db, &res,
	                "SELECT id FROM pms_registrations WHERE kind = 'purchase'"
	                " AND registration_id = $1 AND state NOT IN ('duplicate', 'malformed')",
	                1, params, err);
	if (!r && pl_db_rows(&res))
		*row = atoll(pl_db_val(&res, 0, 0));
	pl_db_res_clear(&res);
	return r;
}

/* The one account whose contact email is email (letter case aside); *n: how many are. */
static int match_email(struct pl_db *db, const char *email, char *account, size_t size, int *n,
                       struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {email};
	int r;

	*n = 0;
	account[0] = '\0';
	if (!*email)
		return 0;
	r = pl_db_query(
	    db, &res, "SELECT id FROM accounts WHERE lower(email) = lower($1) ORDER BY id LIMIT 2",
	    1, params, err);
	if (!r && (*n = pl_db_rows(&res)) == 1)
		pl_strlcpy(account, pl_db_val(&res, 0, 0), size);
	pl_db_res_clear(&res);
	return r;
}

static int integration_status(struct pl_db *db, const char *account, char *out, size_t size,
                              struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	int r;

	out[0] = '\0';
	r = pl_db_query(db, &res,
	                "SELECT status FROM pms_integrations WHERE account_id = $1"
	                " AND provider = 'SIKKA'",
	                1, params, err);
	if (!r && pl_db_rows(&res))
		pl_strlcpy(out, pl_db_val(&res, 0, 0), size);
	pl_db_res_clear(&res);
	return r;
}

/*
 * Where Sikka lists the practice of customer for account: the chosen location (pms setup
 * --practice-id) or the only one, its secret key moved to *out. Any failure says why in err:
 * not listed yet (PL_ENOTFOUND), several locations (PL_EUSAGE), Sikka not answering.
 */
static int listed(struct pl_session *s, struct pl_sikka *sk, const char *account,
                  const char *customer, struct pl_sikka_practice *out, struct pl_err *err)
{
	struct pl_sikka_practice *list = NULL;
	char chosen[64];
	size_t n = 0, at;
	int r;

	if ((r = pl_pms_chosen_location(&s->db, account, chosen, sizeof(chosen), err)) ||
	    (r = pl_sikka_authorized_practices(sk, &list, &n, err)))
		return r;
	r = pl_pms_pick_location(list, n, 1, customer, chosen[0] ? chosen : NULL, account, &at,
	                         err);
	if (!r && !list[at].secret_key.len)
		r = pl_err_set(err, PL_ENOTFOUND, "Sikka lists customer %s without a secret key",
		               customer);
	if (!r) {
		*out = list[at];
		memset(&list[at].secret_key, 0, sizeof(list[at].secret_key)); /* moved */
	}
	pl_sikka_practices_free(list, n);
	return r;
}

static const char *const registration_active_sql =
    "UPDATE pms_registrations SET state = 'active', note = NULL, updated_at = now()"
    " WHERE id = $1::bigint";

/* The failure of connecting a matched practice: ERROR with why (a connected one stays so). */
static void connect_failed(struct job *j, const char *account, int code, struct pl_err *err)
{
	struct pl_audit_event ev = {account, j->action, "pms_registration", NULL, NULL};
	struct pl_err ignored = PL_ERR_INIT;
	const char *params[2] = {account, err->msg};
	char row[32], *meta;

	pl_strlcpy(j->res->state, "matched", sizeof(j->res->state));
	pl_strlcpy(j->res->note, err->msg, sizeof(j->res->note));
	meta = metadata(j);
	ll(row, sizeof(row), j->row);
	ev.resource_id = row;
	ev.metadata = meta;
	pl_audit_fail(j->s, &ev, code,
	              "UPDATE pms_integrations SET status = CASE WHEN status = 'ACTIVE'"
	              " THEN status ELSE 'ERROR' END, last_error = $2, updated_at = now()"
	              " WHERE account_id = $1 AND provider = 'SIKKA'",
	              2, params, &ignored);
	free(meta);
	pl_err_hint(err,
	            "the registration is kept, matched to %s: try again with "
	            "'parlae pms assign %s %s'",
	            account, j->res->registration, account);
}

/*
 * A registration matched to account: connected at once when Sikka lists the practice (the
 * callback's steps 4-6), else SETUP_REQUIRED, which rotation and status finish later.
 */
static int attach(struct job *j, const char *account, struct pl_err *err)
{
	struct pl_session *s = j->s;
	struct pl_sikka_practice practice = {0};
	struct pl_err why = PL_ERR_INIT;
	struct pl_store *store = NULL;
	struct pl_sikka sk = {0};
	char status[32], version[PL_STORE_VERSION_MAX];
	int r, found;

	if ((r = integration_status(&s->db, account, status, sizeof(status), err)))
		return r;
	if (!strcmp(status, "ACTIVE")) {
		if (s->dry_run) {
			pl_strlcpy(j->res->state, "active", sizeof(j->res->state));
			pl_strlcpy(j->res->account, account, sizeof(j->res->account));
			return 0;
		}
		if (!(r = pl_db_begin(&s->db, err)) &&
		    !(r = write_row(j, "active", account, "the account was already connected",
		                    err)))
			r = finish(j, PL_OK, err);
		return r;
	}
	if (s->dry_run) {
		pl_strlcpy(j->res->state, "matched", sizeof(j->res->state));
		pl_strlcpy(j->res->account, account, sizeof(j->res->account));
		pl_strlcpy(j->res->note, "dry run: Sikka is not asked", sizeof(j->res->note));
		return 0;
	}
	/* Sikka is asked before anything is written, so that one event says what happened. */
	found = !pl_sikka_init(&sk, s->cfg, &why) && !pl_store_open(s->cfg, &store, &why) &&
	        !pl_store_ready(store, &why) &&
	        !listed(s, &sk, account, j->res->customer, &practice, &why);
	if (!found) {
		/* Not listed yet, several locations, or Sikka not answering: it completes itself.
		 */
		const char *params[2] = {account, why.msg};

		if (!(r = pl_db_begin(&s->db, err)) &&
		    !(r = write_row(j, "setup_required", account, why.msg, err)) &&
		    !(r = pl_pms_ensure_integration(&s->db, account, err)) &&
		    !(r = pl_db_query(&s->db, NULL,
		                      "UPDATE pms_integrations SET status = 'SETUP_REQUIRED',"
		                      " last_error = $2, updated_at = now() WHERE account_id = $1"
		                      " AND provider = 'SIKKA' AND status <> 'ACTIVE'",
		                      2, params, err)))
			r = finish(j, PL_OK, err);
		goto out;
	}
	pl_strlcpy(j->res->office_id, practice.office_id, sizeof(j->res->office_id));
	pl_strlcpy(j->res->practice_id, practice.practice_id, sizeof(j->res->practice_id));
	/* The match is kept first: if connecting fails, the registration is not lost. */
	if (!(r = pl_db_begin(&s->db, err)) && !(r = write_row(j, "matched", account, NULL, err)) &&
	    !(r = pl_pms_ensure_integration(&s->db, account, err)))
		r = pl_db_commit(&s->db, err);
	if (r) {
		pl_db_rollback(&s->db);
		goto out;
	}
	pl_strlcpy(j->res->state, "active", sizeof(j->res->state));
	{
		struct pl_audit_event ev = {account, j->action, "pms_registration", NULL, NULL};
		char row[32], *meta = metadata(j);
		struct pl_pms_connect_req cr = {
		    account, &practice, NULL, &ev, registration_active_sql, row};

		ll(row, sizeof(row), j->row);
		ev.resource_id = row;
		ev.metadata = meta;
		r = pl_pms_connect(s, store, &sk, &cr, version, err);
		free(meta);
	}
	if (r)
		connect_failed(j, account, r, err);
out:
	pl_store_close(store);
	if (sk.base)
		pl_sikka_release(&sk);
	pl_secret_release(&practice.secret_key);
	return r;
}

static void res_ids(struct pl_handshake_res *res, const struct body *b)
{
	pl_strlcpy(res->registration, b->registration, sizeof(res->registration));
	pl_strlcpy(res->customer, b->customer, sizeof(res->customer));
}

int pl_handshake_purchase(struct pl_session *s, const char *text, size_t len,
                          struct pl_handshake_res *res, struct pl_err *err)
{
	struct job j = {s, "purchase", NULL, 0, "pms.purchase", res};
	struct body b;
	char why[256], account[64];
	long long first;
	int r, n, tries = 0;

	memset(res, 0, sizeof(*res));
	if ((r = session_db(s, err)))
		return r;
	if (parse_body(text, len, &b, why, sizeof(why))) {
		if (!s->dry_run)
			return keep_malformed(s, "purchase", j.action, text, len, why, res, err);
		return pl_err_set(err, PL_EBADINPUT, "not a registration (%s)", why);
	}
	j.b = &b;
	res_ids(res, &b);
again:
	if ((r = find_first(&s->db, b.registration, &first, err)))
		goto out;
	if (first) {
		/* Sikka sending it again, or an operator replaying a file: kept, not applied twice.
		 */
		res->duplicate_of = first;
		snprintf(why, sizeof(why), "a repeat of registration %s (#%lld): not applied again",
		         b.registration, first);
		if (s->dry_run) {
			pl_strlcpy(res->state, "duplicate", sizeof(res->state));
			pl_strlcpy(res->note, why, sizeof(res->note));
		} else if (!(r = pl_db_begin(&s->db, err)) &&
		           !(r = write_row(&j, "duplicate", NULL, why, err)))
			r = finish(&j, PL_OK, err);
		goto out;
	}
	if ((r = match_email(&s->db, b.email, account, sizeof(account), &n, err)))
		goto out;
	if (n != 1) {
		if (n > 1)
			snprintf(why, sizeof(why),
			         "several accounts have its email address: "
			         "choose one with 'parlae pms assign'");
		else
			snprintf(why, sizeof(why), "no account has its email address");
		if (s->dry_run) {
			pl_strlcpy(res->state, "pending", sizeof(res->state));
			pl_strlcpy(res->note, why, sizeof(res->note));
		} else if (!(r = pl_db_begin(&s->db, err)) &&
		           !(r = write_row(&j, "pending", NULL, why, err)))
			r = finish(&j, PL_OK, err);
	} else {
		r = attach(&j, account, err);
	}
out:
	if (r)
		pl_db_rollback(&s->db);
	if (r == PL_ECONFLICT && !j.row && tries++ == 0)
		goto again; /* another process kept the first one between our look and our insert */
	body_release(&b);
	return r;
}

/* The account a cancellation is for: by registration, else customer, else email. */
static int cancel_target(struct pl_db *db, const struct body *b, char *account, size_t size,
                         struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[2] = {b->registration, b->customer};
	int r, n;

	account[0] = '\0';
	r = pl_db_query(db, &res,
	                "SELECT account_id FROM pms_registrations WHERE kind = 'purchase'"
	                " AND account_id IS NOT NULL AND state <> 'duplicate'"
	                " AND (registration_id = $1 OR master_customer_id = $2)"
	                " ORDER BY registration_id = $1 DESC, id DESC LIMIT 1",
	                2, params, err);
	if (!r && pl_db_rows(&res))
		pl_strlcpy(account, pl_db_val(&res, 0, 0), size);
	pl_db_res_clear(&res);
	if (r || account[0])
		return r;
	return match_email(db, b->email, account, size, &n, err);
}

int pl_handshake_cancel(struct pl_session *s, const char *text, size_t len,
                        struct pl_handshake_res *res, struct pl_err *err)
{
	struct job j = {s, "cancel", NULL, 0, "pms.cancel", res};
	struct pl_db_res rows = PL_DB_RES_INIT;
	struct body b;
	char why[256], reason[256], account[64];
	int r, pending = 0;

	memset(res, 0, sizeof(*res));
	if ((r = session_db(s, err)))
		return r;
	if (parse_body(text, len, &b, why, sizeof(why))) {
		if (!s->dry_run)
			return keep_malformed(s, "cancel", j.action, text, len, why, res, err);
		return pl_err_set(err, PL_EBADINPUT, "not a cancellation (%s)", why);
	}
	j.b = &b;
	res_ids(res, &b);
	if ((r = cancel_target(&s->db, &b, account, sizeof(account), err)))
		goto out;
	snprintf(reason, sizeof(reason), "cancelled in Sikka's marketplace (registration %s)",
	         b.registration);
	if (s->dry_run) {
		const char *params[1] = {b.registration};

		pl_strlcpy(res->account, account, sizeof(res->account));
		if (!account[0] &&
		    (r = pl_db_exists(&s->db,
		                      "SELECT 1 FROM pms_registrations WHERE kind = 'purchase'"
		                      " AND state = 'pending' AND registration_id = $1",
		                      1, params, &pending, err)))
			goto out;
		pl_strlcpy(res->state, account[0] || pending ? "cancelled" : "unmatched",
		           sizeof(res->state));
		if (!account[0] && !pending) {
			r = pl_err_set(err, PL_ENOTFOUND,
			               "the cancellation of %s would match no account",
			               b.registration);
			pl_err_hint(err, "see 'parlae pms registrations'");
		}
		goto out;
	}
	if ((r = pl_db_begin(&s->db, err)))
		goto out;
	if (!account[0]) {
		const char *params[1] = {b.registration};

		/* A registration still waiting for an account is cancelled with it. */
		r = pl_db_query(&s->db, &rows,
		                "UPDATE pms_registrations SET state = 'cancelled', personal = NULL,"
		                " updated_at = now() WHERE kind = 'purchase' AND state = 'pending'"
		                " AND registration_id = $1 RETURNING id",
		                1, params, err);
		pending = !r && pl_db_rows(&rows) > 0;
		pl_db_res_clear(&rows);
		if (r)
			goto out;
		if (!pending) {
			if (!(r = write_row(&j, "unmatched", NULL,
			                    "no registration or account matches it", err)))
				r = finish(&j, PL_ENOTFOUND, err);
			if (!r) {
				r = pl_err_set(
				    err, PL_ENOTFOUND,
				    "the cancellation of %s matches no account: kept as #%lld",
				    b.registration, res->row);
				pl_err_hint(err, "see 'parlae pms registrations --pending'");
			}
			goto out;
		}
		if (!(r = write_row(&j, "cancelled", NULL, "the pending registration is cancelled",
		                    err)))
			r = finish(&j, PL_OK, err);
		goto out;
	}
	{
		const char *params[2] = {account, reason};

		if (!(r = write_row(&j, "cancelled", account, reason, err)) &&
		    !(r = pl_db_query(
		          &s->db, NULL,
		          "UPDATE pms_integrations SET status = 'INACTIVE', last_error = $2,"
		          " updated_at = now() WHERE account_id = $1 AND provider = 'SIKKA'",
		          2, params, err)) &&
		    !(r = pl_db_query(
		          &s->db, NULL,
		          "UPDATE pms_registrations SET state = 'cancelled', updated_at = now()"
		          " WHERE kind = 'purchase' AND account_id = $1"
		          " AND state IN ('matched', 'setup_required', 'active')",
		          1, params, err)))
			r = finish(&j, PL_OK, err);
	}
out:
	if (r && !s->dry_run)
		pl_db_rollback(&s->db);
	body_release(&b);
	return r;
}

int pl_handshake_assign(struct pl_session *s, const char *registration, const char *account,
                        struct pl_handshake_res *res, struct pl_err *err)
{
	struct job j = {s, "purchase", NULL, 0, "pms.assign", res};
	struct pl_db_res rows = PL_DB_RES_INIT;
	const char *params[1] = {registration};
	const char *state, *owner;
	int r;

	memset(res, 0, sizeof(*res));
	if (!*registration || strlen(registration) > ID_MAX ||
	    !pl_utf8_valid(registration, strlen(registration)) ||
	    registration[strcspn(registration, "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r"
	                                       "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18"
	                                       "\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f")]) {
		pl_err_set(err, PL_EUSAGE, "'%.*s' is not a registration id",
		           pl_utf8_cut(registration, 64), registration);
		return pl_err_hint(err, "see 'parlae pms registrations --pending'");
	}
	if ((r = pl_account_check_id(account, err)) || (r = session_db(s, err)) ||
	    (r = pl_account_require(&s->db, account, err)))
		return r;
	r = pl_db_query(&s->db, &rows,
	                "SELECT id, state, account_id, master_customer_id FROM pms_registrations"
	                " WHERE kind = 'purchase' AND registration_id = $1"
	                " AND state NOT IN ('duplicate', 'malformed')",
	                1, params, err);
	if (r)
		return r;
	if (!pl_db_rows(&rows)) {
		pl_db_res_clear(&rows);
		pl_err_set(err, PL_ENOTFOUND, "no registration '%.*s'",
		           pl_utf8_cut(registration, 64), registration);
		return pl_err_hint(err, "see 'parlae pms registrations --pending'");
	}
	j.row = atoll(pl_db_val(&rows, 0, 0));
	state = pl_db_val(&rows, 0, 1);
	owner = pl_db_val(&rows, 0, 2);
	pl_strlcpy(res->registration, registration, sizeof(res->registration));
	pl_strlcpy(res->customer, pl_db_val(&rows, 0, 3), sizeof(res->customer));
	res->row = j.row;
	/* Pending, or matched to this account and not connected yet (a retry). */
	if (strcmp(state, "pending") &&
	    (!owner || strcmp(owner, account) || strcmp(state, "matched"))) {
		r = pl_err_set(err, PL_ECONFLICT, "registration %s is already %s%s%s", registration,
		               state, owner ? " for " : "", owner ? owner : "");
		pl_db_res_clear(&rows);
		return pl_err_hint(err, "see 'parlae pms registrations'");
	}
	pl_db_res_clear(&rows);
	if ((r = attach(&j, account, err)))
		pl_db_rollback(&s->db);
	return r;
}

static char *dup_val(const struct pl_db_res *res, int i, int col)
{
	const char *v = pl_db_val(res, i, col);

	return v ? pl_xstrdup(v) : NULL;
}

int pl_handshake_list(struct pl_session *s, int pending, struct pl_handshake_list *out,
                      struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {pending ? "t" : "f"};
	int r, n;

	memset(out, 0, sizeof(*out));
	if ((r = session_db(s, err)))
		return r;
	r = pl_db_query(&s->db, &res,
	                "SELECT id, kind, state, registration_id, master_customer_id, order_number,"
	                " account_id, personal->>'PracticeName', personal->>'EmailAddress', note,"
	                " duplicate_of, to_char(received_at AT TIME ZONE 'UTC',"
	                " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	                " FROM pms_registrations WHERE NOT $1::boolean"
	                " OR state IN ('pending', 'unmatched', 'malformed')"
	                " ORDER BY state IN ('pending', 'unmatched', 'malformed') DESC, id DESC",
	                1, params, err);
	if (r)
		return r;
	n = pl_db_rows(&res);
	out->v = pl_xcalloc((size_t)n + 1, sizeof(*out->v));
	for (int i = 0; i < n; i++) {
		struct pl_handshake_row *w = &out->v[out->n++];

		w->row = atoll(pl_db_val(&res, i, 0));
		pl_strlcpy(w->kind, pl_db_val(&res, i, 1), sizeof(w->kind));
		pl_strlcpy(w->state, pl_db_val(&res, i, 2), sizeof(w->state));
		w->registration = dup_val(&res, i, 3);
		w->customer = dup_val(&res, i, 4);
		w->order = dup_val(&res, i, 5);
		w->account = dup_val(&res, i, 6);
		w->practice_name = dup_val(&res, i, 7);
		w->email = dup_val(&res, i, 8);
		w->note = dup_val(&res, i, 9);
		w->duplicate_of = pl_db_val(&res, i, 10) ? atoll(pl_db_val(&res, i, 10)) : 0;
		pl_strlcpy(w->received_at, pl_db_val(&res, i, 11), sizeof(w->received_at));
	}
	pl_db_res_clear(&res);
	return 0;
}

void pl_handshake_list_release(struct pl_handshake_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct pl_handshake_row *w = &l->v[i];

		free(w->registration);
		free(w->customer);
		free(w->order);
		free(w->account);
		free(w->practice_name);
		free(w->email);
		free(w->note);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int pl_handshake_waiting(struct pl_session *s, char ***accounts, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	int r, n;

	*accounts = NULL;
	if ((r = session_db(s, err)))
		return r;
	r = pl_db_query(&s->db, &res,
	                "SELECT account_id FROM pms_integrations WHERE provider = 'SIKKA'"
	                " AND status = 'SETUP_REQUIRED' ORDER BY account_id",
	                0, NULL, err);
	if (r)
		return r;
	n = pl_db_rows(&res);
	*accounts = pl_xcalloc((size_t)n + 1, sizeof(**accounts));
	for (int i = 0; i < n; i++)
		(*accounts)[i] = pl_xstrdup(pl_db_val(&res, i, 0));
	pl_db_res_clear(&res);
	return 0;
}

/* Under the lock: the registration a SETUP_REQUIRED integration waits for (row 0: none). */
static int waiting_for(struct pl_db *db, const char *account, long long *row, char *customer,
                       size_t size, char *registration, size_t rsize, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	const char *params[1] = {account};
	int r;

	*row = 0;
	r = pl_db_query(db, &res,
	                "SELECT r.id, r.master_customer_id, r.registration_id"
	                " FROM pms_integrations p JOIN pms_registrations r"
	                " ON r.account_id = p.account_id AND r.kind = 'purchase'"
	                " AND r.state = 'setup_required'"
	                " WHERE p.account_id = $1 AND p.provider = 'SIKKA'"
	                " AND p.status = 'SETUP_REQUIRED' ORDER BY r.id DESC LIMIT 1",
	                1, params, err);
	if (!r && pl_db_rows(&res)) {
		*row = atoll(pl_db_val(&res, 0, 0));
		pl_strlcpy(customer, pl_db_val(&res, 0, 1), size);
		pl_strlcpy(registration, pl_db_val(&res, 0, 2), rsize);
	}
	pl_db_res_clear(&res);
	return r;
}

int pl_handshake_complete(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
                          const char *account, int *completed, struct pl_err *err)
{
	struct pl_handshake_res res = {0};
	struct job j = {s, "purchase", NULL, 0, "pms.complete", &res};
	struct pl_sikka_practice practice = {0};
	struct pl_err why = PL_ERR_INIT;
	char version[PL_STORE_VERSION_MAX], row[32];
	int r, got = 0;

	*completed = 0;
	if ((r = session_db(s, err)) || (r = pl_rotate_lock(&s->db, account, 0, &got, err)) || !got)
		return r;
	/* Read under the lock: another process may have just completed it. */
	if ((r = waiting_for(&s->db, account, &j.row, res.customer, sizeof(res.customer),
	                     res.registration, sizeof(res.registration), err)) ||
	    !j.row || s->dry_run)
		goto out;
	if (listed(s, sk, account, res.customer, &practice, &why)) {
		const char *params[2] = {account, why.msg};
		struct pl_err ignored = PL_ERR_INIT;

		/* Still waiting: the row says why, without an event each time someone looks. */
		pl_db_query(&s->db, NULL,
		            "UPDATE pms_integrations SET last_error = $2 WHERE account_id = $1"
		            " AND provider = 'SIKKA' AND status = 'SETUP_REQUIRED'"
		            " AND last_error IS DISTINCT FROM $2",
		            2, params, &ignored);
		goto out;
	}
	pl_strlcpy(res.account, account, sizeof(res.account));
	pl_strlcpy(res.state, "active", sizeof(res.state));
	{
		struct pl_audit_event ev = {account, j.action, "pms_registration", row, NULL};
		char *meta = metadata(&j);
		struct pl_pms_connect_req cr = {
		    account, &practice, "SETUP_REQUIRED", &ev, registration_active_sql, row};

		ll(row, sizeof(row), j.row);
		ev.metadata = meta;
		r = pl_pms_connect(s, store, sk, &cr, version, err);
		free(meta);
	}
	if (!r) {
		*completed = 1;
	} else if (r == PL_ECONFLICT) {
		r = 0; /* completed meanwhile, not by us */
	} else {
		/* Still SETUP_REQUIRED, with why: the next look tries again. */
		struct pl_audit_event ev = {account, j.action, "pms_registration", row, NULL};
		struct pl_err ignored = PL_ERR_INIT;
		const char *params[2] = {account, err->msg};

		pl_audit_fail(s, &ev, r,
		              "UPDATE pms_integrations SET last_error = $2, updated_at = now()"
		              " WHERE account_id = $1 AND provider = 'SIKKA'"
		              " AND status = 'SETUP_REQUIRED'",
		              2, params, &ignored);
	}
out:
	pl_secret_release(&practice.secret_key);
	pl_rotate_unlock(&s->db, account);
	return r;
}
