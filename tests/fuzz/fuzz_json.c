/*
 * The strict JSON reader every parser above goes through (size and depth limits), Sikka's
 * string-valued field reader, and the wiping release used for documents that held keys.
 */
#include <jansson.h>

#include "fuzz.h"
#include "json.h"

static const char *const keys[] = {"error_code", "total_count", "expires_in", "items", "", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_err err = PL_ERR_INIT;
	json_t *doc;
	char buf[32];

	/* The depth limit that the first byte picks, then the document. */
	if (!size)
		return 0;
	if (pl_json_parse((const char *)data + 1, size - 1, 4096, 1 + data[0] % 64, "input", &doc,
			  &err))
		return 0;
	for (size_t i = 0; keys[i]; i++) {
		(void)pl_json_text0(doc, keys[i], buf, sizeof(buf));
		(void)pl_json_text0(json_array_get(doc, 0), keys[i], buf, sizeof(buf));
	}
	free(pl_json_dump(doc));
	pl_json_wipe_decref(doc);
	return 0;
}
