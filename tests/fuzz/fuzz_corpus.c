/*
 * The corpus redactor, pl_corpus_redact (what vapi listen --record writes through). First
 * byte even: the rest is a whole body; it must redact exactly when it parses, into one JSON
 * document of valid UTF-8. Odd: the rest is one string value put where a Vapi message carries
 * a name, a caller's number and free text in arguments (as an object and as a JSON string);
 * none of them may come out unchanged unless it is empty, already a pseudonym, JSON text (it
 * is redacted inside), or shaped like a phone number or a date (a pseudonym of that shape may
 * fall on it by chance).
 */
#include <jansson.h>

#include "corpus.h"
#include "fuzz.h"
#include "json.h"
#include "utf8.h"
#include "vapi.h"

static struct pl_corpus *corpus;

static void whole(const char *text, size_t len)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf out = PL_BUF_INIT;
	json_t *doc = NULL;
	int parses =
	    !pl_json_parse(text, len, PL_VAPI_MAX_BODY, PL_VAPI_MAX_DEPTH, "in", &doc, &err);
	int r;

	json_decref(doc);
	pl_err_clear(&err);
	r = pl_corpus_redact(corpus, text, len, &out, &err);
	if ((r == 0) != parses)
		abort(); /* redacted what does not parse, or refused what does */
	if (!r) {
		if (!pl_utf8_valid(out.buf, out.len) ||
		    pl_json_parse(out.buf, out.len, PL_VAPI_MAX_BODY * 8, PL_VAPI_MAX_DEPTH, "out",
		                  &doc, &err))
			abort(); /* the redacted body is not one JSON document */
		json_decref(doc);
	} else if (memchr(err.msg, '"', strlen(err.msg)) || strchr(err.msg, '\'')) {
		abort(); /* the error quotes the body */
	}
	pl_buf_release(&out);
}

static int may_stay(const char *s)
{
	char digits[32];
	json_t *v;

	if (!*s || (strlen(s) >= 10 && s[4] == '-' && s[7] == '-'))
		return 1;
	pl_phone_digits(s, digits, sizeof(digits));
	if (*digits)
		return 1;
	if ((v = json_loads(s, JSON_DECODE_ANY, NULL)) && (json_is_object(v) || json_is_array(v))) {
		json_decref(v);
		return 1;
	}
	json_decref(v);
	return (strlen(s) == 11 && !strncmp(s, "Name-", 5)) ||
	       (strlen(s) == 17 && !strncmp(s, "text-", 5)) || strstr(s, "@example.invalid");
}

static void placed(const char *s)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf out = PL_BUF_INIT;
	json_t *msg, *red, *args;
	char *text, *inner;

	args = pl_json_x(json_pack("{s:s, s:s, s:s}", "notes", s, "firstName", s, "phone", s));
	inner = pl_json_dump(args);
	msg = pl_json_x(
	    json_pack("{s:{s:s, s:{s:{s:s, s:s}}, s:[{s:s, s:{s:s, s:o}}, {s:s, s:{s:s, s:s}}]}}",
	              "message", "type", "tool-calls", "call", "customer", "number", s, "name", s,
	              "toolCallList", "id", "a", "function", "name", "x", "arguments", args, "id",
	              "b", "function", "name", "y", "arguments", inner));
	text = pl_json_dump(msg);
	if (pl_corpus_redact(corpus, text, strlen(text), &out, &err) ||
	    pl_json_parse(out.buf, out.len, PL_VAPI_MAX_BODY * 8, 64, "out", &red, &err))
		abort(); /* a message we built is JSON */
	if (!may_stay(s)) {
		json_t *m = json_object_get(red, "message"), *call0, *a1;
		const char *got[6];

		call0 = json_array_get(json_object_get(m, "toolCallList"), 0);
		args = json_object_get(json_object_get(call0, "function"), "arguments");
		a1 = json_loads(
		    json_string_value(json_object_get(
		        json_object_get(json_array_get(json_object_get(m, "toolCallList"), 1),
		                        "function"),
		        "arguments")),
		    0, NULL);
		got[0] = json_string_value(json_object_get(
		    json_object_get(json_object_get(m, "call"), "customer"), "number"));
		got[1] = json_string_value(json_object_get(
		    json_object_get(json_object_get(m, "call"), "customer"), "name"));
		got[2] = json_string_value(json_object_get(args, "notes"));
		got[3] = json_string_value(json_object_get(args, "firstName"));
		got[4] = json_string_value(json_object_get(a1, "notes"));
		got[5] = json_string_value(json_object_get(a1, "phone"));
		for (int i = 0; i < 6; i++)
			if (!got[i] || !strcmp(got[i], s))
				abort(); /* a value came through unredacted */
		json_decref(a1);
	}
	json_decref(red);
	json_decref(msg);
	free(text);
	free(inner);
	pl_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_err err = PL_ERR_INIT;
	char *s;

	if (!corpus && pl_corpus_load("/nonexistent/fuzz-corpus", &corpus, &err))
		abort();
	if (!size)
		return 0;
	if (!(data[0] & 1)) {
		whole((const char *)data + 1, size - 1);
		return 0;
	}
	s = fuzz_cstr(data + 1, size - 1);
	if (pl_utf8_valid(s, strlen(s)))
		placed(s);
	free(s);
	return 0;
}
