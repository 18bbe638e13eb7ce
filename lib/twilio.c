#include "twilio.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "json.h"
#include "utf8.h"
#include "banned.h"

static int twilio_error(long status, const char *body, size_t len, long *refused,
                        struct pl_err *err)
{
	struct pl_err ignored = PL_ERR_INIT;
	json_t *doc = NULL;
	long code = 0;
	const char *msg = "";

	if (!pl_json_parse(body, len, len + 1, 8, "x", &doc, &ignored)) {
		code = (long)json_integer_value(json_object_get(doc, "code"));
		msg = json_string_value(json_object_get(doc, "message"));
		msg = msg ? msg : "";
	}
	if (status < 500)
		*refused = code ? code : status == 401 ? 20003 : 0;
	if (code == 20003 || status == 401) {
		pl_err_set(err, PL_ECONFIG, "Twilio rejected the credentials (20003)");
		pl_err_hint(err, "check TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN");
	} else if (code == 21211 || code == 21604 || code == 21602 || code == 21603) {
		pl_err_set(err, PL_ECONFIG, "Twilio refused the message (%ld): %.*s", code,
		           pl_utf8_cut(msg, 200), msg);
		pl_err_hint(err, code == 21603
		                     ? "check TWILIO_FROM_NUMBER"
		                     : "check the staff number with 'parlae vapi phone list'");
	} else {
		pl_err_set(err, PL_EUPSTREAM, "Twilio failed: HTTP %ld %ld %.*s", status, code,
		           pl_utf8_cut(msg, 200), msg);
	}
	json_decref(doc);
	return err->code;
}

int pl_twilio_sms(const struct pl_config *cfg, double deadline, const char *to, const char *body,
                  char *sid, size_t sid_size, long *code, struct pl_err *err)
{
	const char *account = pl_config_get(cfg, "TWILIO_ACCOUNT_SID");
	const char *token = pl_config_get(cfg, "TWILIO_AUTH_TOKEN");
	const char *from = pl_config_get(cfg, "TWILIO_FROM_NUMBER");
	const char *base = pl_config_get(cfg, "TWILIO_API_URL");
	struct pl_buf url = PL_BUF_INIT, form = PL_BUF_INIT, auth = PL_BUF_INIT;
	struct pl_http http;
	struct pl_http_req req = {0};
	struct pl_http_resp resp = {0};
	const char *headers[3];
	char *e_to, *e_from, *e_body, *basic;
	long refused = 0;
	int r;

	sid[0] = '\0';
	if (code)
		*code = 0;
	if (!account || !token || !from) {
		pl_err_set(err, PL_ECONFIG, "%s is not set",
		           !account ? "TWILIO_ACCOUNT_SID"
		           : !token ? "TWILIO_AUTH_TOKEN"
		                    : "TWILIO_FROM_NUMBER");
		return pl_err_hint(err,
		                   "transfers text the staff through Twilio: set "
		                   "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER");
	}
	if ((r = pl_http_init(&http, cfg, err)))
		return r;
	http.deadline = deadline;
	pl_buf_addf(&url, "%s/2010-04-01/Accounts/%s/Messages.json", base, account);
	e_to = pl_http_escape(to);
	e_from = pl_http_escape(from);
	e_body = pl_http_escape(body);
	pl_buf_addf(&form, "To=%s&From=%s&Body=%s", e_to, e_from, e_body);
	free(e_to);
	free(e_from);
	free(e_body);
	/* Basic auth by hand: CURLOPT_USERPWD would need the handle, which http keeps to itself. */
	{
		struct pl_buf raw = PL_BUF_INIT;
		size_t n;

		pl_buf_addf(&raw, "%s:%s", account, token);
		n = 4 * ((raw.len + 2) / 3) + 1;
		basic = pl_xmalloc(n);
		EVP_EncodeBlock((unsigned char *)basic, (const unsigned char *)raw.buf,
		                (int)raw.len);
		pl_buf_wipe(&raw);
	}
	pl_buf_addf(&auth, "Authorization: Basic %s", basic);
	explicit_bzero(basic, strlen(basic));
	free(basic);
	headers[0] = auth.buf;
	headers[1] = "Content-Type: application/x-www-form-urlencoded";
	headers[2] = NULL;
	req.method = "POST";
	req.url = url.buf;
	req.headers = headers;
	req.body = form.buf;
	req.body_len = form.len;
	req.idempotent = 0; /* a retried POST could text the staff twice */
	req.peer = "Twilio";
	r = pl_http_send(&http, &req, &resp, err);
	if (!r && (resp.status < 200 || resp.status >= 300))
		r = twilio_error(resp.status, resp.body.buf, resp.body.len, &refused, err);
	if (code)
		*code = refused;
	if (!r) {
		struct pl_err ignored = PL_ERR_INIT;
		json_t *doc = NULL;

		if (pl_json_parse(resp.body.buf, resp.body.len, resp.body.len + 1, 8, "x", &doc,
		                  &ignored) ||
		    !json_is_string(json_object_get(doc, "sid")))
			r = pl_err_set(err, PL_EUPSTREAM, "Twilio's answer has no message sid");
		else
			snprintf(sid, sid_size, "%s",
			         json_string_value(json_object_get(doc, "sid")));
		json_decref(doc);
	}
	pl_http_resp_release(&resp);
	pl_http_release(&http);
	pl_buf_wipe(&auth);
	pl_buf_release(&url);
	pl_buf_release(&form);
	return r;
}
