/*
 * UTF-8 at the boundary: text from outside (arguments, upstream answers, payloads) is made
 * valid before it reaches jansson or an error message, and text cut to a length is cut
 * between characters, so that every string parlae emits in JSON is valid UTF-8.
 */
#ifndef PL_UTF8_H
#define PL_UTF8_H

#include <stddef.h>

/* Whether the len bytes at s are valid UTF-8 (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
int pl_utf8_valid(const char *s, size_t len);

/*
 * Copy the NUL-terminated src into dst (size bytes, size > 0) as valid UTF-8: each invalid
 * byte becomes U+FFFD, and the copy ends at the last whole character that fits. dst is
 * always NUL-terminated; returns the bytes written, not counting the NUL.
 */
size_t pl_utf8_copy(char *dst, size_t size, const char *src);

/*
 * The length of the longest prefix of the NUL-terminated s of at most max bytes that does not
 * end inside a character: for "%.*s" in place of "%.Ns", as an int.
 */
int pl_utf8_cut(const char *s, size_t max);

#endif
