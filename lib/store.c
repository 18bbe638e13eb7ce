#include "store.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store_backend.h"
#include "utf8.h"
#include "banned.h"

/* The AWS Secrets Manager limit, so that a value fits either backend. */
#define VALUE_MAX 65536

/* What the public functions check before dispatching: the backends trust it. */
struct pl_store {
	const struct pl_store_ops *ops;
	void *be;
};

static const struct pl_store_ops *const backends[] = {&pl_store_file_ops, &pl_store_aws_ops};

void pl_secret_set(struct pl_secret *s, const void *data, size_t len)
{
	s->data = pl_xmalloc(len + 1);
	if (len)
		memcpy(s->data, data, len);
	s->data[len] = '\0';
	s->len = len;
}

void pl_secret_release(struct pl_secret *s)
{
	if (s->data) {
		OPENSSL_cleanse(s->data, s->len + 1);
		free(s->data);
	}
	s->data = NULL;
	s->len = 0;
}

/* The backend and location named by a PARLAE_SECRET_STORE value. */
static int parse_spec(const char *spec, const struct pl_store_ops **ops, const char **location,
                      struct pl_err *err)
{
	if (!spec) {
		pl_err_set(err, PL_ECONFIG,
		           "no secret store: PARLAE_SECRET_STORE is unset and HOME is unknown");
		return pl_err_hint(err, "set PARLAE_SECRET_STORE=file:/path/to/vault");
	}
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		size_t n = strlen(backends[i]->prefix);

		if (strncmp(spec, backends[i]->prefix, n))
			continue;
		*ops = backends[i];
		*location = spec + n;
		return backends[i]->parse(spec, spec + n, err);
	}
	pl_err_set(err, PL_ECONFIG,
	           "PARLAE_SECRET_STORE='%.*s' is not file:/ABSOLUTE/PATH or aws:REGION",
	           pl_utf8_cut(spec, 200), spec);
	return pl_err_hint(err, "for example PARLAE_SECRET_STORE=file:/var/lib/parlae/vault");
}

int pl_store_not_found(const char *name, const char *version, struct pl_err *err)
{
	if (version)
		pl_err_set(err, PL_ENOTFOUND, "secret %s has no version '%.*s'", name,
		           pl_utf8_cut(version, 40), version);
	else
		pl_err_set(err, PL_ENOTFOUND, "no secret %s in the store", name);
	return pl_err_hint(err, "see 'parlae secrets list'");
}

int pl_store_check_name(const char *name, struct pl_err *err)
{
	size_t n = strlen(name);
	int start = 1;

	if (n == 0 || n > 255)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (c == '/') {
			if (start)
				goto bad; /* a leading slash or an empty segment */
			start = 1;
			continue;
		}
		/* A segment starting with a letter or digit can be neither "." nor "..". */
		if (!alnum && (start || (c != '_' && c != '.' && c != '-')))
			goto bad;
		start = 0;
	}
	if (start)
		goto bad; /* a trailing slash */
	return 0;
bad:
	pl_err_set(err, PL_EUSAGE, "invalid secret name '%.*s'", pl_utf8_cut(name, 80), name);
	return pl_err_hint(err, "use '/'-separated segments of a-z, 0-9, '_', '.' and '-', each "
	                        "starting with a letter or digit, at most 255 bytes");
}

int pl_store_open(const struct pl_config *cfg, struct pl_store **out, struct pl_err *err)
{
	struct pl_store *st = pl_xcalloc(1, sizeof(*st));
	const char *location;
	int r;

	*out = NULL;
	if ((r = parse_spec(pl_config_get(cfg, "PARLAE_SECRET_STORE"), &st->ops, &location, err)) ||
	    (r = st->ops->open(cfg, location, &st->be, err))) {
		free(st);
		return r;
	}
	*out = st;
	return 0;
}

void pl_store_close(struct pl_store *st)
{
	if (!st)
		return;
	st->ops->close(st->be);
	free(st);
}

/* The first of h's failures into err, in the order status lists them. */
static int health_err(const struct pl_store_health *h, struct pl_err *err)
{
	if (!h->reachable) {
		*err = h->err;
		return err->code;
	}
	if (!h->key_opens) {
		*err = h->key_err;
		return err->code;
	}
	if (h->rekey_unfinished) {
		pl_err_set(err, PL_ECONFIG, "the secret store has an unfinished re-key");
		return pl_err_hint(err,
		                   "rerun 'parlae secrets rotate --master-key' with both keys");
	}
	return 0;
}

static void health_init(struct pl_store_health *h, const struct pl_store_ops *ops)
{
	memset(h, 0, sizeof(*h));
	h->backend = ops ? ops->name : NULL;
	h->key_opens = -1;
}

int pl_store_check(const struct pl_config *cfg, struct pl_store_health *h)
{
	const struct pl_store_ops *ops = NULL;
	const char *location = NULL;
	struct pl_store *st = NULL;
	struct pl_err ignored = PL_ERR_INIT;
	int r;

	health_init(h, NULL);
	if ((r = parse_spec(pl_config_get(cfg, "PARLAE_SECRET_STORE"), &ops, &location, &h->err)))
		return r;
	h->backend = ops->name;
	pl_strlcpy(h->location, location, sizeof(h->location));
	if ((r = pl_store_open(cfg, &st, &h->err)))
		return r;
	st->ops->check(st->be, h);
	pl_store_close(st);
	return health_err(h, &ignored);
}

int pl_store_ready(struct pl_store *st, struct pl_err *err)
{
	struct pl_store_health h;

	health_init(&h, st->ops);
	st->ops->check(st->be, &h);
	return health_err(&h, err);
}

int pl_store_key_ready(struct pl_store *st, struct pl_err *err)
{
	return st->ops->rekey ? pl_store_ready(st, err) : 0;
}

int pl_store_hold(struct pl_store *st, struct pl_err *err)
{
	return st->ops->hold ? st->ops->hold(st->be, err) : 0;
}

void pl_store_unhold(struct pl_store *st)
{
	if (st->ops->unhold)
		st->ops->unhold(st->be);
}

int pl_store_put(struct pl_store *st, const char *name, const struct pl_secret *value,
                 char *version, struct pl_err *err)
{
	return pl_store_put_if(st, name, value, NULL, version, err);
}

int pl_store_put_if(struct pl_store *st, const char *name, const struct pl_secret *value,
                    const char *expected, char *version, struct pl_err *err)
{
	int r;

	version[0] = '\0';
	if ((r = pl_store_check_name(name, err)))
		return r;
	if (value->len > VALUE_MAX)
		return pl_err_set(err, PL_EBADINPUT, "secret %s is %zu bytes, more than %d", name,
		                  value->len, VALUE_MAX);
	if ((r = st->ops->put_if(st->be, name, value, expected, version, err)))
		version[0] = '\0';
	return r;
}

int pl_store_get(struct pl_store *st, const char *name, const char *version_in,
                 struct pl_secret *out, char *version_out, struct pl_err *err)
{
	int r;

	out->data = NULL;
	out->len = 0;
	if (version_out)
		version_out[0] = '\0';
	if ((r = pl_store_check_name(name, err)))
		return r;
	return st->ops->get(st->be, name, version_in, out, version_out, err);
}

int pl_store_delete(struct pl_store *st, const char *name, struct pl_err *err)
{
	int r;

	if ((r = pl_store_check_name(name, err)))
		return r;
	return st->ops->del(st->be, name, err);
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pl_store_entry *)a)->name,
	              ((const struct pl_store_entry *)b)->name);
}

int pl_store_list(struct pl_store *st, struct pl_store_entry **out, size_t *n, struct pl_err *err)
{
	int r;

	*out = NULL;
	*n = 0;
	if ((r = st->ops->list(st->be, out, n, err))) {
		*n = 0;
		return r;
	}
	qsort(*out, *n, sizeof(**out), entry_cmp);
	return 0;
}

int pl_store_rekey(struct pl_store *st, int dry_run, size_t *n, struct pl_err *err)
{
	*n = 0;
	if (!st->ops->rekey)
		return pl_err_set(err, PL_EUSAGE, "the %s: store does not use PARLAE_MASTER_KEY",
		                  st->ops->name);
	return st->ops->rekey(st->be, dry_run, n, err);
}
