/*
 * The onboarding redirect URL (or bare query) parser, and the --hours parser of pms setup:
 * both read text a person pastes.
 */
#include "fuzz.h"
#include "pms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size), *json = NULL;
	struct pl_pms_redirect r;
	struct pl_err err = PL_ERR_INIT;

	if (!pl_pms_parse_redirect(text, &r, &err)) {
		if (!r.state || (!r.code && !r.error))
			abort(); /* accepted without what the callback needs */
		pl_pms_redirect_release(&r);
	}
	pl_err_clear(&err);
	if (!pl_pms_parse_hours(text, &json, &err))
		free(json);
	free(text);
	return 0;
}
