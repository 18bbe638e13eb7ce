/*
 * The tool reply builder: what pl_vapi_handle makes of a call's outcome (the result document
 * dumped with pl_json_dump, or the message of the pl_err that kept it from running) and the
 * reply pl_vapi_reply builds from it, in both shapes ({"results":[...]} and the legacy
 * {"result":...}). The input is hostile text in up to three fields split by 0x1f: the tool's
 * name as `vapi tool invoke TOOL` takes it from argv, text that a result quotes (made valid
 * as the tools make outside text valid), and text an error message quotes. The reply must be
 * valid UTF-8, parse back as JSON, and carry each call's id, name and text unchanged.
 */
#include <jansson.h>

#include "err.h"
#include "fuzz.h"
#include "json.h"
#include "utf8.h"
#include "vapi.h"

/* The field-th of the input's 0x1f-separated fields as a C string (cut at a NUL, as argv is). */
static char *field(const uint8_t *data, size_t size, int n)
{
	size_t start = 0, end;

	for (int i = 0; i < n; i++) {
		const uint8_t *sep = memchr(data + start, 0x1f, size - start);

		if (!sep)
			return pl_xstrdup("");
		start = (size_t)(sep - data) + 1;
	}
	end = start;
	while (end < size && data[end] != 0x1f)
		end++;
	return fuzz_cstr(data + start, end - start);
}

static void check_reply(const struct pl_vapi_msg *m, const struct pl_vapi_outcome *out)
{
	json_t *reply = pl_vapi_reply(m, out), *back, *entry;
	const char *want = out[0].result ? out[0].result : out[0].error;
	char *text = json_dumps(reply, JSON_COMPACT);
	json_error_t jerr;

	if (!text || !pl_utf8_valid(text, strlen(text)))
		abort(); /* the reply is not valid UTF-8 */
	if (!(back = json_loads(text, 0, &jerr)))
		abort(); /* the reply is not JSON */
	if (m->legacy) {
		entry = back;
	} else {
		entry = json_array_get(json_object_get(back, "results"), 0);
		if (json_array_size(json_object_get(back, "results")) != m->ncalls ||
		    strcmp(json_string_value(json_object_get(entry, "toolCallId")), m->calls[0].id) ||
		    strcmp(json_string_value(json_object_get(entry, "name")), m->calls[0].name) ||
		    !json_is_string(json_object_get(entry, out[0].result ? "result" : "error")))
			abort(); /* the call's id or name did not come through */
	}
	if (strcmp(json_string_value(json_object_get(entry, out[0].result || m->legacy
	                                                       ? "result"
	                                                       : "error")),
	           want))
		abort(); /* the text changed on its way */
	json_decref(back);
	free(text);
	json_decref(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *name = field(data, size, 0), *quoted = field(data, size, 1),
	     *why = field(data, size, 2);
	size_t vsize = 3 * strlen(quoted) + 1;
	char *valid = pl_xmalloc(vsize);
	struct pl_vapi_msg m;
	struct pl_vapi_outcome out[1];
	struct pl_err err = PL_ERR_INIT;
	json_t *res;

	if (pl_vapi_direct(name, NULL, 0, &m, &err)) {
		if (!pl_utf8_valid(err.msg, strlen(err.msg)))
			abort();
		goto done;
	}

	/* A result, as a tool builds one from outside text. */
	pl_utf8_copy(valid, vsize, quoted);
	res = pl_json_x(json_pack("{s:b, s:s, s:s}", "success", 1, "message", valid, "tool", m.calls[0].name));
	memset(out, 0, sizeof(out));
	out[0].result = pl_json_dump(res);
	json_decref(res);
	check_reply(&m, out);
	m.legacy = 1;
	check_reply(&m, out);
	m.legacy = 0;
	free(out[0].result);

	/* An error, as pl_vapi_handle keeps the message of what failed. */
	memset(out, 0, sizeof(out));
	pl_err_set(&err, PL_EUPSTREAM, "%s: Sikka answered '%s' (%.*s)", m.calls[0].name, why,
	           pl_utf8_cut(quoted, 200), quoted);
	pl_err_hint(&err, "%s", why);
	pl_err_prefix(&err, "unknown tool '%.*s'", pl_utf8_cut(name, 80), name);
	out[0].error = pl_xstrdup(err.msg);
	out[0].code = err.code;
	check_reply(&m, out);
	m.legacy = 1;
	check_reply(&m, out);
	free(out[0].error);
	pl_vapi_msg_release(&m);
done:
	free(valid);
	free(name);
	free(quoted);
	free(why);
	return 0;
}
