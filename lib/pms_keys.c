/* The key document under parlae/pms/sikka/ACCOUNT, read and written by the callback, the
 * rotation and the tools. */
#include "pms.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "pms_internal.h"
#include "banned.h"

void pl_pms_keys_release(struct pl_pms_keys *k)
{
	pl_secret_release(&k->secret_key);
	pl_secret_release(&k->request_key);
	pl_secret_release(&k->refresh_key);
	memset(k, 0, sizeof(*k));
}

static void secret_field(json_t *o, const char *key, struct pl_secret *out)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		pl_secret_set(out, json_string_value(v), json_string_length(v));
}

static time_t parse_iso(const char *s)
{
	struct tm tm = {0};

	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return 0;
	return timegm(&tm);
}

int pl_pms_keys_read(struct pl_store *st, const char *account, struct pl_pms_keys *k, char *version,
                     struct pl_err *err)
{
	struct pl_secret blob = PL_SECRET_INIT;
	struct pl_buf name = PL_BUF_INIT;
	struct pl_err perr = PL_ERR_INIT;
	json_t *o = NULL;
	char buf[64];
	int r;

	memset(k, 0, sizeof(*k));
	pl_buf_addf(&name, PL_PMS_SECRET_PREFIX "%s", account);
	r = pl_store_get(st, name.buf, NULL, &blob, version, err);
	if (!r &&
	    pl_json_parse((const char *)blob.data, blob.len, blob.len + 1, 4, "secret", &o, &perr))
		r = pl_err_set(err, PL_ECONFIG, "the secret %s is not what parlae stored",
		               name.buf);
	if (!r) {
		pl_strlcpy(k->office_id, pl_json_text0(o, "officeId", buf, sizeof(buf)),
		           sizeof(k->office_id));
		secret_field(o, "secretKey", &k->secret_key);
		secret_field(o, "requestKey", &k->request_key);
		secret_field(o, "refreshKey", &k->refresh_key);
		k->token_expiry = parse_iso(json_string_value(json_object_get(o, "tokenExpiry")));
		pl_strlcpy(k->practice_name, pl_json_text0(o, "practiceName", buf, sizeof(buf)),
		           sizeof(k->practice_name));
		pl_strlcpy(k->pms_type, pl_json_text0(o, "pmsType", buf, sizeof(buf)),
		           sizeof(k->pms_type));
		pl_strlcpy(k->practice_id, pl_json_text0(o, "practiceId", buf, sizeof(buf)),
		           sizeof(k->practice_id));
		if (!k->request_key.len)
			r = pl_err_set(err, PL_ECONFIG, "the secret %s holds no request key",
			               name.buf);
	}
	pl_json_wipe_decref(o);
	pl_secret_release(&blob);
	pl_buf_release(&name);
	if (r)
		pl_pms_keys_release(k);
	return r;
}

static const char *sdata(const struct pl_secret *s)
{
	return s->len ? (const char *)s->data : "";
}

int pl_pms_keys_write(struct pl_store *st, const char *account, const struct pl_pms_keys *k,
                      const char *expected, char *version, struct pl_err *err)
{
	struct pl_secret blob = PL_SECRET_INIT;
	struct pl_buf name = PL_BUF_INIT;
	char expiry[32], *text;
	json_t *o;
	int r;

	pl_pms_iso_utc(k->token_expiry, expiry, sizeof(expiry));
	o = json_pack("{s:s, s:s%, s:s%, s:s%, s:s, s:s, s:s}", "officeId", k->office_id,
	              "secretKey", sdata(&k->secret_key), k->secret_key.len, "requestKey",
	              sdata(&k->request_key), k->request_key.len, "refreshKey",
	              sdata(&k->refresh_key), k->refresh_key.len, "tokenExpiry", expiry,
	              "practiceName", k->practice_name, "pmsType", k->pms_type);
	if (o && k->practice_id[0])
		pl_json_set(o, "practiceId", json_string(k->practice_id));
	text = pl_json_dump(o);
	pl_secret_set(&blob, text, strlen(text));
	explicit_bzero(text, strlen(text));
	free(text);
	pl_json_wipe_decref(o);
	pl_buf_addf(&name, PL_PMS_SECRET_PREFIX "%s", account);
	r = pl_store_put_if(st, name.buf, &blob, expected, version, err);
	pl_secret_release(&blob);
	pl_buf_release(&name);
	return r;
}
