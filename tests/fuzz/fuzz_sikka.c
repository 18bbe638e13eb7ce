/*
 * The Sikka response parser: error envelopes (alone or wrapped in [...], any value types)
 * under each HTTP status parlae maps, a successful answer's body, and the request_key answer
 * read from it. The first input byte picks the status (byte % 11 indexes statuses[]: "B" 400,
 * "C" 401, "G" 500, "J" 200), the rest is the body. A list envelope's
 * items are read field by field as pl_sikka_authorized_practices does.
 */
#include <jansson.h>

#include "fuzz.h"
#include "json.h"
#include "sikka.h"

static const long statuses[] = {400, 401, 404, 412, 429, 500, 503, 504, 200, 201, 204};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_sikka sk;
	struct pl_sikka_call call;
	struct pl_sikka_key key;
	struct pl_err err = PL_ERR_INIT;
	const char *body;
	json_t *doc = NULL;
	long status;

	if (!size)
		return 0;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	body = (const char *)data + 1;
	size--;

	memset(&sk, 0, sizeof(sk));
	(void)pl_sikka_check(&sk, "GET /v4/patients", status, body, size, &err);
	(void)pl_sikka_key_expired(&sk);

	/* The answer to a call as the data calls and request_key read it. */
	memset(&call, 0, sizeof(call));
	snprintf(call.what, sizeof(call.what), "POST /v4/request_key");
	pl_err_clear(&err);
	if (!pl_sikka_answer(&sk, &call, 200, body, size, &doc, &err) && doc) {
		pl_err_clear(&err);
		if (!pl_sikka_key_from(doc, &key, &err)) {
			json_t *env = json_is_array(doc) ? json_array_get(doc, 0) : doc;
			char buf[64];
			const char *want = pl_json_text(env, "request_key", buf, sizeof(buf));

			/* The key kept is the one sent, whatever other fields were read after it. */
			if (!want || strlen(want) != key.request_key.len ||
			    memcmp(want, key.request_key.data, key.request_key.len) != 0)
				abort();
			pl_sikka_key_release(&key);
		}
	}
	if (doc) {
		json_t *items = json_object_get(json_is_array(doc) ? json_array_get(doc, 0) : doc, "items");
		static const char *const fields[] = {"office_id", "secret_key", "practice_id",
						     "practice_name", "practice_management_system", NULL};
		char buf[64];

		for (size_t i = 0; i < json_array_size(items); i++)
			for (size_t k = 0; fields[k]; k++)
				(void)pl_json_text0(json_array_get(items, i), fields[k], buf, sizeof(buf));
	}
	pl_json_wipe_decref(doc);
	return 0;
}
