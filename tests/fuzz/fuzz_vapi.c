/*
 * The Vapi server-message parser and what reads its result: every call's arguments, the
 * reply built from it, a direct call with the input as --args, and the reply comparison
 * (a document compared with itself must be equal; the input's two lines compared in turn).
 */
#include <jansson.h>

#include "fuzz.h"
#include "tool.h"
#include "vapi.h"

static const char *const arg_names[] = {"date", "duration", "time", "query", "firstName",
					"lastName", "phone", "reason", NULL};

static void read_message(const struct pl_vapi_msg *m)
{
	struct pl_vapi_outcome *out = pl_xcalloc(m->ncalls ? m->ncalls : 1, sizeof(*out));
	char buf[64];
	json_t *reply;

	pl_phone_digits(m->caller, buf, sizeof(buf));

	for (size_t i = 0; i < m->ncalls; i++) {
		for (size_t k = 0; arg_names[k]; k++)
			(void)pl_vapi_arg_text(m->calls[i].args, arg_names[k], buf, sizeof(buf));
		(void)pl_tool_find(m->calls[i].name);
		/* Half the calls "fail", so both reply shapes are built. */
		if (i % 2)
			out[i].error = "failed";
		else
			out[i].result = m->calls[i].bad_args ? m->calls[i].bad_args : "ok";
		out[i].code = i % 2 ? 6 : 0;
	}
	if (m->ncalls) {
		(void)pl_vapi_status(out, m->ncalls);
		reply = pl_vapi_reply(m, out);
		free(json_dumps(reply, JSON_COMPACT));
		json_decref(reply);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nl = memchr(data, '\n', size);
	struct pl_vapi_msg m;
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf diff = PL_BUF_INIT;

	if (!pl_vapi_parse(text, size, &m, &err)) {
		read_message(&m);
		pl_vapi_msg_release(&m);
	}

	pl_err_clear(&err);
	if (!pl_vapi_direct("checkAvailability", text, size, &m, &err)) {
		read_message(&m);
		pl_vapi_msg_release(&m);
	}

	pl_err_clear(&err);
	if (pl_vapi_compare(text, size, text, size, &diff, &err) > 0)
		abort(); /* a document differs from itself */
	pl_buf_release(&diff);

	if (nl) {
		size_t first = (size_t)(nl - text);

		pl_err_clear(&err);
		(void)pl_vapi_compare(text, first, nl + 1, size - first - 1, &diff, &err);
		pl_buf_release(&diff);
	}
	return 0;
}
