#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "suggest.h"
#include "banned.h"

#define CONFIG_MAX_BYTES (1 << 20)

static const struct pl_config_var vars[] = {
    {"PARLAE_DATABASE_URL", 0, 1, "DATABASE_URL"},
    {"SIKKA_APP_ID", 0, 1, NULL},
    {"SIKKA_APP_KEY", 1, 0, NULL},
    {"SIKKA_API_URL", 0, 1, NULL},
    {"SIKKA_AUTHORIZE_URL", 0, 1, NULL},
    {"APP_BASE_URL", 0, 1, NULL},
    {"PARLAE_STATE_SECRET", 1, 0, NULL},
    {"PARLAE_SECRET_STORE", 0, 1, NULL},
    {"PARLAE_MASTER_KEY", 1, 0, NULL},
    {"PARLAE_MASTER_KEY_FILE", 0, 1, NULL},
    {"PARLAE_MASTER_KEY_NEW", 1, 0, NULL},
    {"AWS_ACCESS_KEY_ID", 0, 0, NULL},
    {"AWS_SECRET_ACCESS_KEY", 1, 0, NULL},
    {"AWS_SESSION_TOKEN", 1, 0, NULL},
    {"AWS_ENDPOINT_URL_SECRETS_MANAGER", 0, 1, NULL},
    {"VAPI_WEBHOOK_SECRET", 1, 0, NULL},
    {"VAPI_API_KEY", 1, 0, NULL},
    {"OPENAI_API_KEY", 1, 0, NULL},
    {"STRIPE_SECRET_KEY", 1, 0, NULL},
    {"TWILIO_ACCOUNT_SID", 0, 1, NULL},
    {"TWILIO_AUTH_TOKEN", 1, 0, NULL},
    {"TWILIO_FROM_NUMBER", 0, 1, NULL},
    {"TWILIO_API_URL", 0, 1, NULL},
    {"PARLAE_ACTOR", 0, 1, NULL},
    /* The file that names the key is not a secret; the key in it is. */
    {"PARLAE_AUDIT_SIGNING_KEY_FILE", 0, 1, NULL},
    {"PARLAE_AUDIT_CHECKPOINTS", 0, 1, NULL},
    {"PARLAE_AUDIT_PUBLIC_KEY", 0, 1, NULL},
    {"PARLAE_HTTP_TIMEOUT", 0, 1, NULL},
    {"PARLAE_CA_BUNDLE", 0, 1, NULL},
    {"PARLAE_NOW", 0, 0, NULL},
    {"PARLAE_WRITEBACK_WAIT", 0, 1, NULL},
    {"PARLAE_TOOL_TIMEOUT", 0, 1, NULL},
    {"PARLAE_TOOL_CALL_LIMIT", 0, 1, NULL},
};

static const struct pl_config_var *find_var(const char *name)
{
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (!strcmp(vars[i].name, name))
			return &vars[i];
	return NULL;
}

const struct pl_config_var *pl_config_vars(size_t *n)
{
	*n = sizeof(vars) / sizeof(vars[0]);
	return vars;
}

int pl_config_is_secret(const char *name)
{
	const struct pl_config_var *v = find_var(name);

	return v && v->secret;
}

static const char *list_get(const struct pl_config_list *l, const char *key)
{
	for (size_t i = l->n; i-- > 0;)
		if (!strcmp(l->v[i].key, key))
			return l->v[i].value;
	return NULL;
}

static void list_put(struct pl_config_list *l, const char *key, const char *value)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->v[i].key, key)) {
			free(l->v[i].value);
			l->v[i].value = pl_xstrdup(value);
			return;
		}
	}
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 8;
		l->v = pl_xrealloc(l->v, l->alloc * sizeof(*l->v));
	}
	l->v[l->n].key = pl_xstrdup(key);
	l->v[l->n].value = pl_xstrdup(value);
	l->n++;
}

static void list_release(struct pl_config_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

void pl_config_init(struct pl_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

void pl_config_release(struct pl_config *cfg)
{
	free(cfg->file);
	free(cfg->profile);
	list_release(&cfg->set);
	list_release(&cfg->from_file);
	list_release(&cfg->defaults);
	pl_config_init(cfg);
}

void pl_config_set(struct pl_config *cfg, const char *name, const char *value)
{
	list_put(&cfg->set, name, value);
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

const char *pl_config_get(const struct pl_config *cfg, const char *name)
{
	const struct pl_config_var *v = find_var(name);
	const char *s;

	if ((s = nonempty(list_get(&cfg->set, name))))
		return s;
	if ((s = nonempty(getenv(name))))
		return s;
	if (v && v->fallback_env && (s = nonempty(getenv(v->fallback_env))))
		return s;
	if ((s = nonempty(list_get(&cfg->from_file, name))))
		return s;
	return nonempty(list_get(&cfg->defaults, name));
}

/* $XDG_<kind>_HOME, else $HOME/<fallback>; NULL when neither is known. */
static char *xdg_dir(const char *env, const char *fallback)
{
	const char *home, *s = getenv(env);
	struct pl_buf b = PL_BUF_INIT;

	if (s && *s == '/')
		return pl_xstrndup(s, pl_path_dirlen(s));
	home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	pl_path_join(&b, home, fallback);
	return pl_buf_detach(&b, NULL);
}

static void compute_defaults(struct pl_config *cfg)
{
	struct pl_buf b = PL_BUF_INIT;
	char host[256] = "localhost";
	const char *user = getenv("USER");
	char *data = xdg_dir("XDG_DATA_HOME", ".local/share");

	list_put(&cfg->defaults, "SIKKA_API_URL", "https://api.sikkasoft.com");
	list_put(&cfg->defaults, "SIKKA_AUTHORIZE_URL",
	         "https://api.sikkasoft.com/portal/authapp.aspx");
	list_put(&cfg->defaults, "TWILIO_API_URL", "https://api.twilio.com");
	if (data) {
		pl_buf_adds(&b, "file:");
		pl_path_join(&b, data, "parlae/vault");
		list_put(&cfg->defaults, "PARLAE_SECRET_STORE", b.buf);
		pl_buf_reset(&b);
		free(data);
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	pl_buf_addf(&b, "%s@%s", user && *user ? user : "unknown", host);
	list_put(&cfg->defaults, "PARLAE_ACTOR", b.buf);
	pl_buf_release(&b);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* A database URL with a password inside is a secret too. */
static int has_password(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	int found = 0;

	if (!opts)
		return 0;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, "password") && o->val && *o->val)
			found = 1;
	PQconninfoFree(opts);
	return found;
}

/* An unknown key, naming the setting it was probably meant to be. */
static int unknown_key(const char *key, const char *origin, int lineno, struct pl_err *err)
{
	const char *names[sizeof(vars) / sizeof(vars[0])], *near;
	char upper[128];
	size_t i;

	for (i = 0; key[i] && i + 1 < sizeof(upper); i++)
		upper[i] = (char)toupper((unsigned char)key[i]);
	upper[i] = '\0';
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		names[i] = vars[i].name;
	/* "sikka_app_id" is SIKKA_APP_ID: suggest the exact name before any near one. */
	near = find_var(upper) ? find_var(upper)->name : pl_suggest(upper, names, i);
	if (!near)
		return pl_err_set(err, PL_ECONFIG, "%s:%d: unknown setting '%s'", origin, lineno,
		                  key);
	pl_err_set(err, PL_ECONFIG, "%s:%d: unknown setting '%s'; did you mean '%s'?", origin,
	           lineno, key, near);
	if (pl_config_is_secret(near))
		pl_err_hint(err, "%s is a secret: set it in the environment, not in this file",
		            near);
	return err->code;
}

static int parse_line(struct pl_config *cfg, char *line, const char *origin, int lineno,
                      int *in_wanted, int *saw_profile, const char *profile, struct pl_err *err)
{
	const struct pl_config_var *v;
	char *key, *value, *eq;
	size_t vlen;

	line = trim(line);
	if (!*line || *line == '#' || *line == ';')
		return 0;
	if (*line == '[') {
		char *end = strchr(line, ']'), *name;

		if (!end || *trim(end + 1))
			return pl_err_set(err, PL_ECONFIG, "%s:%d: malformed section header",
			                  origin, lineno);
		*end = '\0';
		name = trim(line + 1);
		if (!strcmp(name, "default")) {
			*in_wanted = 1;
			return 0;
		}
		if (strncmp(name, "profile", 7) || !isspace((unsigned char)name[7]))
			return pl_err_set(err, PL_ECONFIG,
			                  "%s:%d: unknown section [%s]; sections are [default] and "
			                  "[profile NAME]",
			                  origin, lineno, name);
		name = trim(name + 7);
		*in_wanted = profile && !strcmp(name, profile);
		*saw_profile |= *in_wanted;
		return 0;
	}
	eq = strchr(line, '=');
	if (!eq)
		return pl_err_set(err, PL_ECONFIG, "%s:%d: expected 'KEY = value'", origin, lineno);
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	vlen = strlen(value);
	if (vlen >= 2 && (value[0] == '"' || value[0] == '\'') && value[vlen - 1] == value[0]) {
		value[vlen - 1] = '\0';
		value++;
	}
	v = find_var(key);
	if (!v)
		return unknown_key(key, origin, lineno, err);
	if (v->secret || (!strcmp(key, "PARLAE_DATABASE_URL") && has_password(value))) {
		pl_err_set(err, PL_ECONFIG,
		           "%s:%d: %s is a secret and may not be kept in the config file", origin,
		           lineno, key);
		return pl_err_hint(err, "remove it from the file and set it in the environment");
	}
	if (!v->in_file)
		return pl_err_set(err, PL_ECONFIG, "%s:%d: %s cannot be set in the config file",
		                  origin, lineno, key);
	if (*in_wanted)
		list_put(&cfg->from_file, key, value);
	return 0;
}

int pl_config_parse(struct pl_config *cfg, const char *text, size_t len, const char *origin,
                    const char *profile, struct pl_err *err)
{
	char *copy = pl_xstrndup(text, len), *line = copy, *next;
	int in_wanted = 1, saw_profile = 0, lineno = 0, r = 0;

	if (memchr(text, '\0', len)) {
		free(copy);
		return pl_err_set(err, PL_ECONFIG, "%s: not a text file", origin);
	}
	for (; line && !r; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		r = parse_line(cfg, line, origin, ++lineno, &in_wanted, &saw_profile, profile, err);
	}
	free(copy);
	if (!r && profile && !saw_profile) {
		pl_err_set(err, PL_ECONFIG, "%s: no [profile %s] section", origin, profile);
		return pl_err_hint(err, "add the section or choose another --profile");
	}
	return r;
}

static int read_file(const char *path, struct pl_buf *out, struct pl_err *err)
{
	FILE *f = fopen(path, "r");
	char chunk[4096];
	size_t n;

	if (!f)
		return pl_err_set(err, PL_ECONFIG, "cannot open config file %s: %s", path,
		                  strerror(errno));
	pl_buf_init(out, CONFIG_MAX_BYTES);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (pl_buf_add(out, chunk, n) < 0) {
			fclose(f);
			return pl_err_set(err, PL_ECONFIG, "config file %s is larger than 1 MiB",
			                  path);
		}
	}
	if (ferror(f)) {
		fclose(f);
		return pl_err_set(err, PL_ECONFIG, "cannot read config file %s", path);
	}
	fclose(f);
	return 0;
}

int pl_config_load(struct pl_config *cfg, const char *file, const char *profile, struct pl_err *err)
{
	struct pl_buf text = PL_BUF_INIT;
	char *fallback = NULL;
	int explicit = 1, r = 0;

	compute_defaults(cfg);
	if (!profile)
		profile = nonempty(getenv("PARLAE_PROFILE"));
	if (!file)
		file = nonempty(getenv("PARLAE_CONFIG"));
	if (!file) {
		char *dir = xdg_dir("XDG_CONFIG_HOME", ".config");
		struct pl_buf b = PL_BUF_INIT;

		explicit = 0;
		if (dir) {
			pl_path_join(&b, dir, "parlae/config");
			fallback = pl_buf_detach(&b, NULL);
			free(dir);
		}
		file = fallback;
	}
	if (!file || (!explicit && access(file, F_OK) != 0)) {
		if (profile) {
			r = pl_err_set(err, PL_ECONFIG,
			               "profile '%s' requested but there is no config file",
			               profile);
			pl_err_hint(err, "create %s or pass --config FILE",
			            file ? file : "a config file");
		}
		goto out;
	}
	if ((r = read_file(file, &text, err)))
		goto out;
	r = pl_config_parse(cfg, text.buf, text.len, file, profile, err);
	if (!r) {
		cfg->file = pl_xstrdup(file);
		cfg->profile = profile ? pl_xstrdup(profile) : NULL;
	}
out:
	pl_buf_release(&text);
	free(fallback);
	return r;
}

long pl_parse_duration(const char *s)
{
	long total = 0;

	if (!s || !*s)
		return -1;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10), unit;

		if (end == s || v < 0)
			return -1;
		switch (*end) {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		default:
			return -1;
		}
		if (v > 100L * 365 * 86400 / unit)
			return -1;
		total += v * unit;
		s = end + 1;
	}
	return total;
}
