/*
 * jansson helpers: strict parsing with size and depth limits, and reading Sikka's
 * string-valued fields. json_t references follow jansson's rules; each function says
 * whether it returns a new or a borrowed reference.
 */
#ifndef PL_JSON_H
#define PL_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

#define PL_JSON_MAX_DEPTH 64

/*
 * Parse text (len bytes, NUL not required) into a new reference; PL_EBADINPUT with the
 * position of the problem when it is not one well-formed JSON document, nests deeper than
 * max_depth, or is longer than max_len bytes. what names the input in the message.
 */
int pl_json_parse(const char *text, size_t len, size_t max_len, int max_depth, const char *what,
                  json_t **out, struct pl_err *err);

/*
 * A field as text: a string's value, or a number or boolean rendered as Sikka would send it
 * ("6", "True"); NULL when absent or null. Borrowed, or written into buf for non-strings.
 */
const char *pl_json_text(const json_t *obj, const char *key, char *buf, size_t size);

/* Like pl_json_text, but "" instead of NULL. */
const char *pl_json_text0(const json_t *obj, const char *key, char *buf, size_t size);

/*
 * Zero every string inside v, then drop the reference: for documents that carried keys,
 * so that freed memory does not keep them.
 */
void pl_json_wipe_decref(json_t *v);

/*
 * Serialise compactly into a new string the caller frees; keys in insertion order. NULL only
 * for v NULL: running out of memory aborts.
 */
char *pl_json_dump(const json_t *v);

/*
 * v, checked: a jansson constructor (json_pack, json_string...) returns NULL for text that is
 * not UTF-8 or when memory runs out. Text from outside is made valid before it gets there, so
 * NULL can only be the second, and like pl_xmalloc this aborts.
 */
json_t *pl_json_x(json_t *v);

/*
 * json_object_set_new and json_array_append_new, checked: value is stolen in any case. They
 * fail for a NULL object or value, a key that is not UTF-8, or when memory runs out; with
 * keys that are literals (or come from a parsed document) and values from checked
 * constructors, only the last is left, and like pl_json_x this aborts.
 */
void pl_json_set(json_t *obj, const char *key, json_t *value);
void pl_json_append(json_t *array, json_t *value);

#endif
