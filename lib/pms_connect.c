/*
 * The callback's steps 4-6, the one way a practice becomes ACTIVE: the location's access on,
 * a request key, the keys stored, then the row and its audit event in one transaction. The
 * callback, the marketplace handshake and the completion of SETUP_REQUIRED all come here.
 */
#include "pms.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "buf.h"
#include "json.h"
#include "pms_internal.h"
#include "sikka.h"
#include "banned.h"

void pl_pms_iso_utc(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *const slots_pms[] = {"orthotrac", "dolphin", "planet dds", NULL};

/* Sikka's native free-slot search exists only for these PMSs. */
static int has_native_slots(const char *pms)
{
	char lower[128];
	size_t i;

	for (i = 0; pms[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)pms[i]);
	lower[i] = '\0';
	for (i = 0; slots_pms[i]; i++)
		if (strstr(lower, slots_pms[i]))
			return 1;
	return 0;
}

/* Step 6: ACTIVE with the reference, in the transaction that records the success. */
static int activate(struct pl_session *s, const char *account, const struct pl_sikka_practice *p,
                    const struct pl_sikka_key *key, const char *ref, const char *version,
                    const char *only_from, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	char expiry[32];
	const char *params[9];
	int r;

	pl_pms_iso_utc(key->expires_at, expiry, sizeof(expiry));
	params[0] = account;
	params[1] = p->office_id;
	params[2] = p->practice_name;
	params[3] = p->pms_type;
	params[4] = ref;
	params[5] = version;
	params[6] = expiry;
	params[7] = has_native_slots(p->pms_type) ? "true" : "false";
	params[8] = only_from;
	r = pl_db_query(&s->db, &res,
	                "UPDATE pms_integrations SET status = 'ACTIVE', office_id = $2,"
	                " practice_name = $3, pms_type = $4, secret_ref = $5, secret_version = $6,"
	                " token_expiry = $7, last_error = NULL, last_sync_at = now(),"
	                " features = features || jsonb_build_object('availableSlots', $8::boolean),"
	                " updated_at = now() WHERE account_id = $1 AND provider = 'SIKKA'"
	                " AND ($9::text IS NULL OR status = $9) RETURNING 1",
	                9, params, err);
	if (r)
		return r;
	if (pl_db_rows(&res) == 0)
		r = pl_err_set(err, PL_ECONFLICT, "account '%s' was connected meanwhile", account);
	pl_db_res_clear(&res);
	return r;
}

/* ev's metadata (a JSON object, or NULL) with what was connected. */
static char *metadata(const struct pl_audit_event *ev, const struct pl_sikka_practice *p,
                      const char *version)
{
	json_t *m = ev->metadata ? json_loads(ev->metadata, 0, NULL) : NULL;
	char *text;

	if (!json_is_object(m)) {
		json_decref(m);
		m = json_object();
	}
	pl_json_set(m, "officeId", json_string(p->office_id));
	pl_json_set(m, "practiceId", json_string(p->practice_id));
	pl_json_set(m, "pmsType", json_string(p->pms_type));
	pl_json_set(m, "secretVersion", json_string(version));
	text = pl_json_dump(m);
	json_decref(m);
	return text;
}

int pl_pms_connect(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
                   const struct pl_pms_connect_req *req, char *version, struct pl_err *err)
{
	const struct pl_sikka_practice *p = req->practice;
	struct pl_audit_event ev = *req->ev;
	struct pl_secret replaced = PL_SECRET_INIT;
	struct pl_err ignored = PL_ERR_INIT;
	struct pl_sikka_key key = {0};
	struct pl_pms_keys keys = {0};
	struct pl_buf ref = PL_BUF_INIT;
	char *meta = NULL;
	int r;

	version[0] = '\0';
	pl_buf_addf(&ref, PL_PMS_SECRET_PREFIX "%s", req->account);
	/* Step 4. */
	if ((r = pl_sikka_practice_location_on(sk, p->office_id, p->practice_id, err)) ||
	    (r = pl_sikka_request_key(sk, PL_SIKKA_REQUEST_KEY, p->office_id, &p->secret_key, &key,
	                              err)))
		goto out;
	/* Step 5: the secret first; a crash after this leaves a secret no ACTIVE row points at,
	 * which the next attempt overwrites. */
	pl_strlcpy(keys.office_id, p->office_id, sizeof(keys.office_id));
	keys.secret_key = p->secret_key;
	keys.request_key = key.request_key;
	keys.refresh_key = key.refresh_key;
	keys.token_expiry = key.expires_at;
	pl_strlcpy(keys.practice_name, p->practice_name, sizeof(keys.practice_name));
	pl_strlcpy(keys.pms_type, p->pms_type, sizeof(keys.pms_type));
	pl_strlcpy(keys.practice_id, p->practice_id, sizeof(keys.practice_id));
	/* A re-authorization keeps what it replaces, to put it back if step 6 fails. */
	if (pl_store_get(store, ref.buf, NULL, &replaced, NULL, &ignored))
		pl_secret_release(&replaced);
	/* keys borrows the practice's and key's secrets: their owners release them. */
	if ((r = pl_pms_keys_write(store, req->account, &keys, NULL, version, err)))
		goto out;
	/* Step 6. */
	meta = metadata(req->ev, p, version);
	ev.metadata = meta;
	if (!(r = pl_db_begin(&s->db, err)) &&
	    !(r = activate(s, req->account, p, &key, ref.buf, version, req->only_from, err)) &&
	    !(r = req->also_sql ? pl_db_query(&s->db, NULL, req->also_sql, 1, &req->also_param, err)
	                        : 0) &&
	    !(r = pl_audit_append(s, &ev, PL_OK, err)))
		r = pl_db_commit(&s->db, err);
out:
	if (r)
		pl_db_rollback(&s->db);
	/* The row still names the keys it had: the store must hold them again. */
	if (r && version[0] && replaced.len) {
		char restored[PL_STORE_VERSION_MAX];

		pl_store_put_if(store, ref.buf, &replaced, version, restored, &ignored);
	}
	pl_secret_release(&replaced);
	pl_sikka_key_release(&key);
	pl_buf_release(&ref);
	free(meta);
	return r;
}
