#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* Depth of nesting outside strings; jansson's own limit is far above what we accept. */
static int too_deep(const char *t, size_t len, int max)
{
	int depth = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = t[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return 1;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 0;
}

int pl_json_parse(const char *text, size_t len, size_t max_len, int max_depth, const char *what,
                  json_t **out, struct pl_err *err)
{
	json_error_t jerr;

	*out = NULL;
	if (len > max_len)
		return pl_err_set(err, PL_EBADINPUT, "%s is larger than %zu bytes", what, max_len);
	if (too_deep(text, len, max_depth))
		return pl_err_set(err, PL_EBADINPUT, "%s nests deeper than %d levels", what,
		                  max_depth);
	*out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!*out) {
		/* jansson quotes the text it stopped at ("near 'Ana'"): a payload's words, maybe a
		 * patient's, never go into a message. "near end of file" says nothing and stays. */
		char *near = strstr(jerr.text, " near '");

		if (near)
			*near = '\0';
		return pl_err_set(err, PL_EBADINPUT,
		                  "%s is not valid JSON: %s at line %d column %d", what, jerr.text,
		                  jerr.line, jerr.column);
	}
	return 0;
}

const char *pl_json_text(const json_t *obj, const char *key, char *buf, size_t size)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	}
	if (json_is_real(v)) {
		snprintf(buf, size, "%.17g", json_real_value(v));
		return buf;
	}
	if (json_is_boolean(v)) {
		snprintf(buf, size, "%s", json_is_true(v) ? "True" : "False");
		return buf;
	}
	return NULL;
}

const char *pl_json_text0(const json_t *obj, const char *key, char *buf, size_t size)
{
	const char *s = pl_json_text(obj, key, buf, size);

	return s ? s : "";
}

char *pl_json_dump(const json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;

	if (v && !s)
		abort();
	return s;
}

json_t *pl_json_x(json_t *v)
{
	if (!v)
		abort();
	return v;
}

void pl_json_set(json_t *obj, const char *key, json_t *value)
{
	if (json_object_set_new(obj, key, value) != 0)
		abort();
}

void pl_json_append(json_t *array, json_t *value)
{
	if (json_array_append_new(array, value) != 0)
		abort();
}

static void wipe(json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	if (json_is_string(v)) {
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, item) wipe(item);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item) wipe(item);
	}
}

void pl_json_wipe_decref(json_t *v)
{
	if (v && v->refcount == 1)
		wipe(v);
	json_decref(v);
}
