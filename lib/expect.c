#include "expect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpus.h"
#include "json.h"
#include "utf8.h"
#include "vapi.h"
#include "banned.h"

#define MAX_POINTERS 256
#define MAX_TOKENS   32

struct pointer {
	char **tok; /* unescaped reference tokens */
	size_t n;
};

struct pl_expect {
	char *dir;
	int update;
	struct pl_corpus *corpus;
	struct pointer *ptr;
	size_t nptr;
};

static void pointers_release(struct pl_expect *x)
{
	for (size_t i = 0; i < x->nptr; i++) {
		for (size_t j = 0; j < x->ptr[i].n; j++)
			free(x->ptr[i].tok[j]);
		free(x->ptr[i].tok);
	}
	free(x->ptr);
	x->ptr = NULL;
	x->nptr = 0;
}

/* One RFC 6901 reference token: "~1" is '/', "~0" is '~'; -1 for another '~'. */
static int unescape(const char *s, size_t n, char **out)
{
	char *t = pl_xmalloc(n + 1);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '~') {
			t[k++] = s[i];
			continue;
		}
		if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1')) {
			free(t);
			return -1;
		}
		t[k++] = s[++i] == '0' ? '~' : '/';
	}
	t[k] = '\0';
	*out = t;
	return 0;
}

static int parse_pointer(const char *line, size_t len, struct pointer *p)
{
	const char *s = line + 1, *end = line + len;

	p->tok = NULL;
	p->n = 0;
	if (!len || line[0] != '/')
		return -1;
	while (1) {
		const char *slash = memchr(s, '/', (size_t)(end - s));
		const char *stop = slash ? slash : end;

		if (p->n == MAX_TOKENS)
			return -1;
		p->tok = pl_xrealloc(p->tok, (p->n + 1) * sizeof(*p->tok));
		if (unescape(s, (size_t)(stop - s), &p->tok[p->n]) < 0)
			return -1;
		p->n++;
		if (!slash)
			return 0;
		s = slash + 1;
	}
}

int pl_expect_set_ignore(struct pl_expect *x, const char *text, size_t len, struct pl_err *err)
{
	const char *p = text, *end = text + len;
	size_t lineno = 0;

	pointers_release(x);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		struct pointer ptr = {NULL, 0};

		lineno++;
		while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n && p[0] != '#') {
			if (x->nptr == MAX_POINTERS || memchr(p, '\0', n) || !pl_utf8_valid(p, n) ||
			    parse_pointer(p, n, &ptr) < 0) {
				for (size_t j = 0; j < ptr.n; j++)
					free(ptr.tok[j]);
				free(ptr.tok);
				pl_err_set(err, PL_EBADINPUT,
				           "%s/ignore:%zu: not a JSON pointer (or more than %d)",
				           x->dir, lineno, MAX_POINTERS);
				return pl_err_hint(err, "one pointer a line, like "
				                        "/results/*/result/appointmentId");
			}
			x->ptr = pl_xrealloc(x->ptr, (x->nptr + 1) * sizeof(*x->ptr));
			x->ptr[x->nptr++] = ptr;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

static int index_of(const char *tok, size_t size, size_t *i)
{
	char *end;
	unsigned long v;

	if (!*tok || tok[strspn(tok, "0123456789")] || (tok[0] == '0' && tok[1]))
		return -1;
	errno = 0;
	v = strtoul(tok, &end, 10);
	if (errno || v >= size)
		return -1;
	*i = v;
	return 0;
}

static void drop(json_t *v, char *const *tok, size_t n)
{
	const char *key;
	json_t *item;
	void *tmp;
	size_t i;
	int all = !strcmp(tok[0], "*");

	if (json_is_object(v)) {
		if (!all) {
			if (n == 1)
				json_object_del(v, tok[0]);
			else if ((item = json_object_get(v, tok[0])))
				drop(item, tok + 1, n - 1);
			return;
		}
		json_object_foreach_safe(v, tmp, key, item)
		{
			if (n == 1)
				json_object_del(v, key);
			else
				drop(item, tok + 1, n - 1);
		}
	} else if (json_is_array(v)) {
		/* Items are nulled, not removed: the indices of the others stay. */
		for (i = 0; i < json_array_size(v); i++) {
			size_t want;

			if (!all && (index_of(tok[0], json_array_size(v), &want) < 0 || want != i))
				continue;
			if (n == 1)
				json_array_set_new(v, i, json_null());
			else
				drop(json_array_get(v, i), tok + 1, n - 1);
		}
	}
}

void pl_expect_drop_ignored(const struct pl_expect *x, json_t *doc)
{
	for (size_t i = 0; i < x->nptr; i++)
		if (x->ptr[i].n)
			drop(doc, x->ptr[i].tok, x->ptr[i].n);
}

static int read_file(const char *path, struct pl_buf *out, int *missing, struct pl_err *err)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	*missing = 0;
	if (!f) {
		if (errno == ENOENT) {
			*missing = 1;
			return 0;
		}
		return pl_err_set(err, PL_EIO, "cannot read %s: %s", path, strerror(errno));
	}
	pl_buf_init(out, PL_VAPI_MAX_BODY + 1);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (pl_buf_add(out, chunk, n) < 0) {
			fclose(f);
			return pl_err_set(err, PL_EBADINPUT, "%s is larger than 1 MiB", path);
		}
	}
	fclose(f);
	return 0;
}

int pl_expect_open(const char *dir, int update, struct pl_expect **out, struct pl_err *err)
{
	struct pl_expect *x = pl_xcalloc(1, sizeof(*x));
	struct pl_buf path = PL_BUF_INIT, text = PL_BUF_INIT;
	struct stat st;
	int r, missing;

	*out = NULL;
	x->dir = pl_xstrdup(dir);
	x->update = update;
	if (update && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = pl_err_set(err, PL_EIO, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		r = pl_err_set(err, PL_EUSAGE, "--expect-dir %s is not a directory", dir);
		goto out;
	}
	if ((r = pl_corpus_load(dir, &x->corpus, err)))
		goto out;
	pl_buf_addf(&path, "%s/ignore", dir);
	if ((r = read_file(path.buf, &text, &missing, err)))
		goto out;
	if (!missing)
		r = pl_expect_set_ignore(x, text.buf, text.len, err);
out:
	pl_buf_release(&path);
	pl_buf_release(&text);
	if (r) {
		pl_expect_close(x);
		return r;
	}
	*out = x;
	return 0;
}

/* A body redacted and normalised with the ignored fields gone; NULL when it is not JSON. */
static json_t *prepare(struct pl_expect *x, const char *text, size_t len, int redact)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf red = PL_BUF_INIT;
	json_t *doc = NULL, *norm;

	if (redact) {
		if (pl_corpus_redact(x->corpus, text, len, &red, &err))
			goto out;
		text = red.buf;
		len = red.len;
	}
	if (pl_json_parse(text, len, PL_VAPI_MAX_BODY, PL_VAPI_MAX_DEPTH, "a response", &doc,
	                  &err)) {
		doc = NULL;
		goto out;
	}
	norm = pl_vapi_expand(doc);
	json_decref(doc);
	doc = norm;
	pl_expect_drop_ignored(x, doc);
out:
	pl_buf_release(&red);
	return doc;
}

int pl_expect_check(struct pl_expect *x, const char *name, const char *actual, size_t len,
                    struct pl_buf *diff, struct pl_err *err)
{
	struct pl_buf path = PL_BUF_INIT, want = PL_BUF_INIT, body = PL_BUF_INIT;
	int keyed = pl_corpus_keyed(x->corpus), missing, r = 0;
	json_t *e = NULL, *a = NULL;

	pl_buf_addf(&path, "%s/%s.response.json", x->dir, name);
	if (x->update) {
		/* A redacted corpus keeps redacted expectations; another directory what came. */
		if (!keyed)
			pl_buf_add(&body, actual, len);
		else if (pl_corpus_redact(x->corpus, actual, len, &body, err))
			pl_buf_addf(&body, "{\"redacted\":\"not JSON\",\"bytes\":%zu}", len);
		if (!body.len || body.buf[body.len - 1] != '\n')
			pl_buf_addch(&body, '\n');
		pl_err_clear(err);
		r = pl_corpus_put(path.buf, body.buf, body.len, err);
		goto out;
	}
	if ((r = read_file(path.buf, &want, &missing, err)))
		goto out;
	if (missing) {
		pl_buf_addf(diff, "%s: no %s (--update-expected writes it)\n", name, path.buf);
		r = 1;
		goto out;
	}
	e = prepare(x, want.buf, want.len, !keyed);
	a = prepare(x, actual, len, 1);
	if (!e || !a) {
		pl_buf_addf(diff, "%s: %s is not JSON\n", name,
		            !e ? "the expected response" : "the response");
		r = 1;
	} else if (!json_equal(e, a)) {
		struct pl_buf d = PL_BUF_INIT;

		pl_vapi_diff(e, a, &d);
		for (char *p = d.buf, *nl; *p; p = nl + 1) {
			nl = strchr(p, '\n');
			if (!nl)
				break;
			/* Field lines are named by the message; "- " and "+ " lines follow. */
			if (strncmp(p, "- ", 2) && strncmp(p, "+ ", 2))
				pl_buf_addf(diff, "%s: ", name);
			pl_buf_add(diff, p, (size_t)(nl - p + 1));
		}
		pl_buf_release(&d);
		r = 1;
	}
out:
	json_decref(e);
	json_decref(a);
	pl_buf_release(&path);
	pl_buf_release(&want);
	pl_buf_wipe(&body);
	return r;
}

void pl_expect_close(struct pl_expect *x)
{
	if (!x)
		return;
	pointers_release(x);
	pl_corpus_close(x->corpus);
	free(x->dir);
	free(x);
}
