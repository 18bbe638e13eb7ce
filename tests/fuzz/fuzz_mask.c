/*
 * The -vv trace maskers: a scanner over JSON and form text (which unwraps JSON held in JSON
 * strings) and the libpq connection string masker, which must never fail, whatever they are
 * handed (truncated bodies, stray quotes and escapes, unterminated quoted values).
 */
#include "fuzz.h"
#include "http.h"
#include "trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *masked = pl_http_mask((const char *)data, size), *s, *conn;

	if (!masked)
		abort();
	free(masked);
	s = fuzz_cstr(data, size);
	if (!(conn = pl_trace_mask_conninfo(s)))
		abort();
	free(conn);
	free(s);
	return 0;
}
