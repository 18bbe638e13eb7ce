/*
 * The base layer's small decoders, each written once in lib/encode.c: base64 in every
 * alphabet and padding (what a strict decode accepts must encode back to the same text, and
 * every encoding must decode back to its bytes), hex, "HH:MM", and Retry-After's value.
 */
#include "encode.h"
#include "fuzz.h"
#include "http.h"

static const int b64_flags[] = {0,
                                PL_BASE64_URL,
                                PL_BASE64_PAD,
                                PL_BASE64_URL | PL_BASE64_PAD,
                                PL_BASE64_ANY,
                                PL_BASE64_ANY | PL_BASE64_PAD,
                                PL_BASE64_STRICT,
                                PL_BASE64_URL | PL_BASE64_STRICT,
                                PL_BASE64_PAD | PL_BASE64_STRICT,
                                PL_BASE64_URL | PL_BASE64_PAD | PL_BASE64_STRICT};

static void base64(const uint8_t *data, size_t size)
{
	unsigned char *out = pl_xmalloc(size + 1);

	for (size_t i = 0; i < sizeof(b64_flags) / sizeof(b64_flags[0]); i++) {
		int flags = b64_flags[i];
		struct pl_buf enc = PL_BUF_INIT;
		size_t n;

		/* The input as bytes: encoded, then decoded back to itself. */
		pl_base64_encode(&enc, data, size, flags);
		if (enc.len != (flags & PL_BASE64_PAD ? (size + 2) / 3 * 4 : (size * 4 + 2) / 3) ||
		    pl_base64_decode(enc.buf, enc.len, flags | PL_BASE64_STRICT, out, size + 1, &n) ||
		    n != size || memcmp(out, data, size))
			abort(); /* an encoding that does not decode to its bytes */
		pl_buf_release(&enc);

		/* The input as text: a strict decode must have read the one spelling. */
		if (pl_base64_decode((const char *)data, size, flags, out, size + 1, &n) == 0) {
			if (n > size * 3 / 4 + 1)
				abort();
			if ((flags & PL_BASE64_STRICT) && !(flags & PL_BASE64_ANY)) {
				pl_base64_encode(&enc, out, n, flags);
				if (enc.len != size || memcmp(enc.buf, data, size))
					abort(); /* two spellings of one value */
				pl_buf_release(&enc);
			}
		}
	}
	free(out);
}

static void hex(const uint8_t *data, size_t size)
{
	unsigned char *back = pl_xmalloc(size + 1);
	char *text = pl_xmalloc(2 * size + 1);

	pl_hex(data, size, text);
	if (strlen(text) != 2 * size || pl_hex_decode(text, 2 * size, back) ||
	    memcmp(back, data, size))
		abort();
	(void)pl_hex_decode((const char *)data, size, back);
	free(back);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	long ms;

	base64(data, size);
	hex(data, size);
	for (int flags = 0; flags < 4; flags++) {
		int m = pl_hhmm(text, flags);

		if (m < -1 || m > 1440 || (m == 1440 && !(flags & PL_HHMM_END)))
			abort();
	}
	ms = pl_http_retry_after(text, (time_t)1767225600);
	if (ms < -1 || ms > 10000)
		abort();
	free(text);
	return 0;
}
