/*
 * Small pieces of the base layer, each written once: hex and base64 both ways, "HH:MM",
 * random bytes and the monotonic clock. They depend on libc and buf alone, so that any module
 * (http included) may use them without pulling in the database or the store.
 */
#ifndef PL_ENCODE_H
#define PL_ENCODE_H

#include <stddef.h>

#include "buf.h"

/* n bytes as lowercase hex into out, which has room for 2n+1 (NUL-terminated). */
void pl_hex(const unsigned char *data, size_t n, char *out);

/* The value of one hex digit (either case), or -1. */
int pl_hex_digit(int c);

/* The n hex digits at s (n even, either case) as n/2 bytes into out; -1 (out undefined) if not. */
int pl_hex_decode(const char *s, size_t n, unsigned char *out);

/*
 * Base64 (RFC 4648): the standard alphabet ('+', '/') unless PL_BASE64_URL ('-', '_').
 * Encoding pads with '=' only with PL_BASE64_PAD. Decoding takes only the chosen alphabet,
 * or either with PL_BASE64_ANY; padding only with PL_BASE64_PAD, and then exactly as encoding
 * writes it; with PL_BASE64_STRICT the unused bits of the last character must be zero, so
 * that each value has one spelling (what is signed must not have two).
 */
#define PL_BASE64_URL    1
#define PL_BASE64_PAD    2
#define PL_BASE64_ANY    4
#define PL_BASE64_STRICT 8

/* Append the encoding of len bytes at data to out. */
void pl_base64_encode(struct pl_buf *out, const void *data, size_t len, int flags);

/*
 * Decode the len characters at s into out (size bytes) and set *outlen; -1 when s is not
 * base64 as flags say, or decodes to more than size bytes. Nothing but out keeps the bytes
 * (a key may go through here).
 */
int pl_base64_decode(const char *s, size_t len, int flags, unsigned char *out, size_t size,
                     size_t *outlen);

/*
 * "HH:MM" (or "H:MM") → minutes since midnight, or -1 (s NULL included). 24:00 (1440) only
 * with PL_HHMM_END, for the end of a day; 24:30 never. With PL_HHMM_SECONDS, a ':' and more
 * may follow (the seconds of "10:00:00", ignored); otherwise the text must end there.
 */
#define PL_HHMM_END     1
#define PL_HHMM_SECONDS 2
int pl_hhmm(const char *s, int flags);

/* n bytes from the kernel's random source; -1 if it cannot give them. */
int pl_random_bytes(void *buf, size_t n);

/* Fill buf (size >= 2n+1, n <= 64) with n random bytes as lowercase hex; -1 if no randomness. */
int pl_random_hex(char *buf, size_t n);

/* Seconds on the monotonic clock: for durations and deadlines, never for dates. */
double pl_monotonic(void);

#endif
