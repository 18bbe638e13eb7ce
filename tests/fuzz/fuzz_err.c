/*
 * The error path: pl_err_set, pl_err_hint and pl_err_prefix quoting hostile text (whole, and
 * cut by pl_utf8_cut at the input's first byte as a length, as messages cut what they quote),
 * then the commands' printer of an error (cmd_fail, included from cmd/output.c since it is
 * the command's, not the library's) in --json and in text. The message and hint must be valid
 * UTF-8 of one line, the JSON must parse back and carry them unchanged, and the text form
 * must be valid UTF-8 too.
 */
#include <jansson.h>
#include <stdio.h>

#include "../../cmd/output.c"
#include "err.h"
#include "fuzz.h"
#include "utf8.h"

static void valid_line(const char *s)
{
	if (!pl_utf8_valid(s, strlen(s)) || strpbrk(s, "\r\n"))
		abort(); /* a message that is not one line of UTF-8 */
}

/* What cmd_fail prints for err, with --json or not, as one string the caller frees. */
static char *printed(const struct pl_err *err, int json, size_t *len)
{
	struct cmd_ctx ctx;
	FILE *saved = stderr, *mem;
	char *text = NULL;

	memset(&ctx, 0, sizeof(ctx));
	ctx.json = json;
	ctx.color = 0;
	if (!(mem = open_memstream(&text, len)))
		abort();
	stderr = mem;
	if (cmd_fail(&ctx, err) != (err->code ? err->code : PL_EINTERNAL))
		abort();
	stderr = saved;
	fclose(mem);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	size_t cut = size ? data[0] : 0, len;
	struct pl_err err = PL_ERR_INIT;
	json_t *doc, *e;
	json_error_t jerr;
	char *out;

	pl_err_set(&err, size % 2 ? PL_EBADINPUT : 0, "reading '%s': %.*s", text,
	           pl_utf8_cut(text, cut), text);
	valid_line(err.msg);
	pl_err_hint(&err, "%.*s (%s)", pl_utf8_cut(text, cut), text, text);
	valid_line(err.hint);
	pl_err_prefix(&err, "%s", text);
	valid_line(err.msg);
	valid_line(err.hint);

	out = printed(&err, 1, &len);
	if (!pl_utf8_valid(out, len) || !(doc = json_loadb(out, len, 0, &jerr)))
		abort(); /* the JSON error is not UTF-8 or not JSON */
	e = json_object_get(doc, "error");
	if (strcmp(json_string_value(json_object_get(e, "message")),
	           err.msg[0] ? err.msg : "unexpected error") ||
	    (err.hint[0] && strcmp(json_string_value(json_object_get(e, "hint")), err.hint)) ||
	    strcmp(json_string_value(json_object_get(e, "code")),
	           pl_err_name(err.code ? err.code : PL_EINTERNAL)))
		abort(); /* the printed error is not the error */
	json_decref(doc);
	free(out);

	out = printed(&err, 0, &len);
	if (!pl_utf8_valid(out, len))
		abort();
	free(out);

	pl_err_clear(&err);
	free(text);
	return 0;
}
