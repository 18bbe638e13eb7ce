/*
 * The INI-style config-file parser, for the default section and for a named profile (a value
 * it keeps must never be a secret's), and the duration parser behind settings and options.
 */
#include "config.h"
#include "fuzz.h"

static void parse(const char *text, size_t len, const char *profile)
{
	struct pl_config cfg;
	struct pl_err err = PL_ERR_INIT;

	pl_config_init(&cfg);
	if (!pl_config_parse(&cfg, text, len, "fuzz.ini", profile, &err)) {
		for (size_t i = 0; i < cfg.from_file.n; i++)
			if (pl_config_is_secret(cfg.from_file.v[i].key))
				abort(); /* a secret was taken from the file */
	}
	pl_config_release(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);

	parse((const char *)data, size, NULL);
	parse((const char *)data, size, "staging");
	(void)pl_parse_duration(text); /* PARLAE_HTTP_TIMEOUT, --within: "1h30m" */
	free(text);
	return 0;
}
