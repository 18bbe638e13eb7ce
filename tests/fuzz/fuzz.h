/*
 * Shared by the libFuzzer harnesses: each parses one input with a library function and
 * releases everything it got back, so that a leak is a finding like a crash.
 */
#ifndef PL_FUZZ_H
#define PL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated string (the caller frees it); cut at an embedded NUL. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = pl_xmalloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
