/*
 * The -vv trace masker: a scanner over JSON and form text that must never fail, whatever it
 * is handed (truncated bodies, stray quotes and escapes).
 */
#include "fuzz.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *masked = pl_http_mask((const char *)data, size);

	if (!masked)
		abort();
	free(masked);
	return 0;
}
