/*
 * Expected responses for vapi replay --expect-dir: for message NAME, DIR/NAME.response.json,
 * compared the way --expect compares one, skipping the JSON pointers listed in DIR/ignore
 * ('*' matches any key or array index). A redacted corpus (DIR/.key) is compared with the
 * response redacted by its key; any other directory with both sides redacted by a key of
 * the moment, so that a difference never shows a raw value.
 */
#ifndef PL_EXPECT_H
#define PL_EXPECT_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

struct pl_expect;

/* Read DIR/ignore (optional) and DIR/.key (optional). PL_EUSAGE when DIR is not a
 * directory, PL_EBADINPUT naming the line of ignore that is not a JSON pointer. */
int pl_expect_open(const char *dir, int update, struct pl_expect **out, struct pl_err *err);

/*
 * Check (or with update, write) the response to message name. 0 when equal or written; 1 when
 * it differs, with "name: field" lines, "- expected" and "+ actual" appended to diff (values
 * redacted); an error code when DIR/NAME.response.json cannot be written.
 */
int pl_expect_check(struct pl_expect *x, const char *name, const char *actual, size_t len,
                    struct pl_buf *diff, struct pl_err *err);

void pl_expect_close(struct pl_expect *x);

/* Parse ignore-file text into pointers (for the fuzz harness too): 0 or PL_EBADINPUT. */
int pl_expect_set_ignore(struct pl_expect *x, const char *text, size_t len, struct pl_err *err);

/* Remove what the ignore pointers name from doc (object keys deleted, array items nulled). */
void pl_expect_drop_ignored(const struct pl_expect *x, json_t *doc);

#endif
