/*
 * Configuration: every setting is named by its environment variable and resolved
 * flag > environment > config-file profile > built-in default. The config file is INI-style
 * and may hold only settings that are not secret; this module knows which ones are.
 */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include <stddef.h>

#include "err.h"

struct pl_config_kv {
	char *key;
	char *value;
};

struct pl_config_list {
	struct pl_config_kv *v;
	size_t n, alloc;
};

struct pl_config {
	char *file;                      /* the config file that was read, or NULL */
	char *profile;                   /* the profile selected, or NULL for the default section */
	struct pl_config_list set;       /* explicit settings (flags) */
	struct pl_config_list from_file; /* default section, then the profile's overrides */
	struct pl_config_list defaults;  /* built-in defaults, some derived from HOME and XDG_* */
	const char *command;             /* the command running ("vapi listen"), or NULL */
};

struct pl_config_var {
	const char *name;
	unsigned secret : 1;
	unsigned in_file : 1;     /* may be set in the config file */
	const char *fallback_env; /* another variable read when this one is unset */
};

void pl_config_init(struct pl_config *cfg);

/*
 * Read the config file and compute defaults. file is --config or NULL (then PARLAE_CONFIG,
 * then $XDG_CONFIG_HOME/parlae/config, which may be absent); profile is --profile or NULL
 * (then PARLAE_PROFILE). A named file or profile that does not exist is PL_ECONFIG.
 */
int pl_config_load(struct pl_config *cfg, const char *file, const char *profile,
                   struct pl_err *err);

/* Parse config text; origin names it in messages. Used by pl_config_load and the fuzzer. */
int pl_config_parse(struct pl_config *cfg, const char *text, size_t len, const char *origin,
                    const char *profile, struct pl_err *err);

/* An explicit setting (from a flag); wins over everything else. */
void pl_config_set(struct pl_config *cfg, const char *name, const char *value);

/* The resolved value, or NULL when unset or empty. Owned by cfg or the environment. */
const char *pl_config_get(const struct pl_config *cfg, const char *name);

/* Whether NAME's value must never be shown, stored or logged. */
int pl_config_is_secret(const char *name);

/* Every variable parlae knows, in the order of the contract. */
const struct pl_config_var *pl_config_vars(size_t *n);

void pl_config_release(struct pl_config *cfg);

/* A duration as the contract writes them: 90s, 15m, 2h, 1d or combined (1h30m); -1 if not. */
long pl_parse_duration(const char *s);

#endif
