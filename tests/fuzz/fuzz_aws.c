/*
 * The AWS Secrets Manager answer parsers: an error answer's __type and Message mapped to a
 * pl_err (under each HTTP status), and a 2xx answer's body read as a JSON object whose
 * SecretList items are read as `secrets list` reads them.
 * lib/store_aws.c keeps both static, so the harness includes the file itself; the first input
 * byte picks the status (byte % 7 indexes statuses[]: "?" 400, "@" 403, "A" 404, "E" 200),
 * the rest is the body.
 */
#include "store_aws.c" /* found through -Ilib */

#include "fuzz.h"

static const long statuses[] = {400, 403, 404, 409, 500, 503, 200};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf body = PL_BUF_INIT;
	char type[80];
	json_t *doc = NULL;
	long status;

	if (!size)
		return 0;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	pl_buf_add(&body, data + 1, size - 1);

	(void)error_answer("GetSecretValue", status, &body, type, sizeof(type), &err);
	if (strlen(type) >= sizeof(type) || strchr(err.msg, '\n'))
		abort(); /* the type overflowed, or a second line of Message reached the error */

	pl_err_clear(&err);
	if (!parse_answer("ListSecrets", &body, &doc, &err)) {
		const json_t *list = json_object_get(doc, "SecretList"), *item;
		struct pl_store_entry e;
		size_t i;

		/* A 2xx ListSecrets answer's items, as secrets list reads them. */
		json_array_foreach(list, i, item)
			(void)list_item(item, &e);
		pl_json_wipe_decref(doc);
	}

	pl_buf_release(&body);
	return 0;
}
