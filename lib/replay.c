#include "replay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "encode.h"
#include "expect.h"
#include "http.h"
#include "utf8.h"
#include "vapi_handle.h"
#include "banned.h"

struct item {
	char *source;     /* "dir/file.json" or "file.jsonl:12" */
	const char *body; /* in one of items' texts, NUL-terminated */
	size_t len;
	double ms;
	int outcome; /* 0 ok, 1 failed, 2 skipped */
	char *resp;  /* the response, or NULL (kept for --expect-dir) */
	size_t rlen;
};

struct items {
	struct item *v;
	size_t n, alloc;
	char **texts; /* the files read, which the bodies point into (not a copy per message) */
	size_t ntexts;
};

static void push(struct items *l, const char *source, const char *body, size_t len)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 64;
		l->v = pl_xrealloc(l->v, l->alloc * sizeof(*l->v));
	}
	memset(&l->v[l->n], 0, sizeof(l->v[0]));
	l->v[l->n].source = pl_xstrdup(source);
	l->v[l->n].body = body;
	l->v[l->n].len = len;
	l->n++;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

#define MAX_FILE ((size_t)256 << 20)

/*
 * The whole file, NUL-terminated, in *text (the caller frees it) and its length: one read
 * into a buffer of the file's size (and a byte more, to see the end), not a copy per chunk.
 */
static int read_whole(const char *path, char **text, size_t *len, struct pl_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t alloc = 65536, n = 0;
	char *buf;

	if (fd < 0)
		return pl_err_set(err, PL_EUSAGE, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= MAX_FILE)
		alloc = (size_t)st.st_size + 2;
	buf = pl_xmalloc(alloc);
	for (;;) {
		ssize_t got;

		if (n > MAX_FILE) {
			free(buf);
			close(fd);
			return pl_err_set(err, PL_EBADINPUT, "%s is larger than 256 MiB", path);
		}
		if (n + 1 == alloc) /* it grew, or a pipe: its size was not known */
			buf = pl_xrealloc(buf, alloc *= 2);
		got = read(fd, buf + n, alloc - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;

			free(buf);
			close(fd);
			return pl_err_set(err, PL_EUSAGE, "cannot read %s: %s", path, strerror(e));
		}
		if (!got)
			break;
		n += (size_t)got;
	}
	close(fd);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

static int nul_byte(const char *path, size_t line, struct pl_err *err)
{
	pl_err_set(err, PL_EBADINPUT, "%s:%zu: a NUL byte, which JSON text never holds", path,
	           line);
	return pl_err_hint(err, "a JSON Lines file holds one JSON document per line of UTF-8 text");
}

/*
 * The messages of a file, pointing into its text (kept in l->texts). JSON text never holds a
 * raw NUL: the rest of the file would be lost without a word, so one is an error.
 */
static int load_file(const char *path, struct items *l, struct pl_err *err)
{
	char *all = NULL, *end, *nul;
	size_t len = 0;
	int r;

	if ((r = read_whole(path, &all, &len, err)))
		return r;
	l->texts = pl_xrealloc(l->texts, (l->ntexts + 1) * sizeof(*l->texts));
	l->texts[l->ntexts++] = all;
	end = all + len;
	if (!(has_suffix(path, ".jsonl") || has_suffix(path, ".ndjson"))) {
		if ((nul = memchr(all, '\0', len))) {
			size_t line = 1;

			for (const char *p = all; p < nul; p++)
				line += *p == '\n';
			return nul_byte(path, line, err);
		}
		push(l, path, all, len);
	} else {
		char label[4200];
		size_t lineno = 0;

		/* A line at a time, each looked through while it is in the cache. */
		for (char *p = all, *nl; p < end; p = nl + 1) {
			if (!(nl = memchr(p, '\n', (size_t)(end - p))))
				nl = end;
			if (memchr(p, '\0', (size_t)(nl - p)))
				return nul_byte(path, lineno + 1, err);
			*nl = '\0'; /* each message a string of its own */
			lineno++;
			if (strspn(p, " \t\r") == (size_t)(nl - p))
				continue;
			snprintf(label, sizeof(label), "%s:%zu", path, lineno);
			push(l, label, p, (size_t)(nl - p));
		}
	}
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_path(const char *path, struct items *l, struct pl_err *err)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, alloc = 0;
	int r = 0;

	if (stat(path, &st) < 0)
		return pl_err_set(err, PL_EUSAGE, "cannot read %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return load_file(path, l, err);
	if (!(d = opendir(path)))
		return pl_err_set(err, PL_EUSAGE, "cannot read %s: %s", path, strerror(errno));
	while ((e = readdir(d))) {
		struct pl_buf full = PL_BUF_INIT;

		/* In a directory only messages count: a README beside them is not one, nor a
		 * recorded corpus's responses. */
		if (e->d_name[0] == '.' || has_suffix(e->d_name, ".response.json") ||
		    !(has_suffix(e->d_name, ".json") || has_suffix(e->d_name, ".jsonl") ||
		      has_suffix(e->d_name, ".ndjson")))
			continue;
		pl_path_join(&full, path, e->d_name);
		if (stat(full.buf, &st) == 0 && S_ISREG(st.st_mode)) {
			if (n == alloc) {
				alloc = alloc ? alloc * 2 : 32;
				names = pl_xrealloc(names, alloc * sizeof(*names));
			}
			names[n++] = pl_buf_detach(&full, NULL);
		}
		pl_buf_release(&full);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		if (!r)
			r = load_file(names[i], l, err);
		free(names[i]);
	}
	free(names);
	return r;
}

static void fail(const struct pl_replay_req *req, struct item *it, const char *why)
{
	it->outcome = 1;
	if (req->failure)
		req->failure(it->source, why, req->arg);
}

static void failed_calls(const struct pl_replay_req *req, struct item *it,
                         const struct pl_vapi_answer *ans)
{
	if (ans->kind == PL_VAPI_TRANSFER) {
		fail(req, it, "the transfer-destination-request found no destination");
		if (req->call_failed)
			req->call_failed(it->source, "", "transfer-destination-request",
			                 "no staff number with transfers enabled", req->arg);
		return;
	}
	fail(req, it, "a tool call ended in an error");
	for (size_t i = 0; req->call_failed && i < ans->msg.ncalls; i++)
		if (ans->out[i].error)
			req->call_failed(it->source, ans->msg.calls[i].id, ans->msg.calls[i].name,
			                 ans->out[i].error, req->arg);
}

/* Locally: through the one message handler, as `vapi tool invoke` and `vapi listen` do. */
static void run_local(struct pl_session *s, const struct pl_replay_req *req, struct item *it)
{
	struct pl_vapi_ctx ctx = {0};
	struct pl_vapi_answer ans;
	struct pl_err err = PL_ERR_INIT;
	double start = pl_monotonic() * 1e3;

	if (pl_vapi_handle(s, &ctx, it->body, it->len, &ans, &err))
		fail(req, it, err.msg);
	else if (ans.kind == PL_VAPI_SKIPPED)
		it->outcome = 2;
	else if (ans.status)
		failed_calls(req, it, &ans);
	if (ans.body && req->expect_dir) {
		it->resp = pl_xstrndup(ans.body, ans.len);
		it->rlen = ans.len;
	}
	pl_vapi_answer_release(&ans);
	it->ms = pl_monotonic() * 1e3 - start;
}

struct send_state {
	const struct pl_replay_req *req;
	const char *secret;
	struct items *items;
	size_t next, done;
	char **fixed; /* the headers of every message, unless each is signed (hmac) */
};

static int next_job(struct pl_http_job *job, void *arg)
{
	struct send_state *st = arg;
	struct item *it;

	if (st->next >= st->items->n)
		return 0;
	it = &st->items->v[st->next++];
	job->req.method = "POST";
	job->req.url = st->req->target;
	/* hmac is signed now, as the request leaves; the other ways are the same each time */
	if (st->req->auth != PL_VAPI_AUTH_HMAC && !st->fixed)
		st->fixed = pl_vapi_auth_headers(st->req->auth, st->secret, NULL, 0);
	job->req.headers =
	    (const char *const *)(st->fixed ? st->fixed
	                                    : pl_vapi_auth_headers(st->req->auth, st->secret,
	                                                           it->body, it->len));
	job->req.body = it->body;
	job->req.body_len = it->len;
	job->req.peer = "the target";
	job->user = it;
	return 1;
}

static void job_done(struct pl_http_job *job, void *arg)
{
	struct send_state *st = arg;
	struct item *it = job->user;
	char why[96];

	it->ms = job->resp.seconds * 1000;
	if (job->code) {
		fail(st->req, it, job->err.msg);
	} else if (job->resp.status != 200) {
		snprintf(why, sizeof(why), "the target answered HTTP %ld", job->resp.status);
		fail(st->req, it, why);
	} else if (st->req->expect_dir) {
		it->resp = pl_xstrndup(job->resp.body.buf, job->resp.body.len);
		it->rlen = job->resp.body.len;
	}
	if (!st->fixed)
		pl_vapi_headers_free((char **)job->req.headers);
	pl_http_resp_release(&job->resp);
	st->done++;
	if (st->req->progress)
		st->req->progress(st->done, st->items->n, st->req->arg);
}

/*
 * --dry-run: what each message is, as the replay would take it, without running or sending
 * anything. To a target a message goes as it is, unparsed; locally it is parsed as it would be.
 */
static void list_items(const struct pl_replay_req *req, struct items *items,
                       struct pl_replay_summary *sum)
{
	for (size_t i = 0; i < items->n; i++) {
		struct item *it = &items->v[i];
		struct pl_err err = PL_ERR_INIT;
		struct pl_vapi_msg m;
		char what[sizeof(err.msg) + 64];

		sum->total++;
		if (req->target) {
			snprintf(what, sizeof(what), "would be sent to the target");
		} else if (pl_vapi_parse(it->body, it->len, &m, &err)) {
			snprintf(what, sizeof(what), "would fail: %s", err.msg);
		} else if (!pl_utf8_valid(m.type, strlen(m.type))) {
			snprintf(what, sizeof(what), "a message of another type: would be skipped");
			pl_vapi_msg_release(&m);
		} else {
			if (m.ncalls)
				snprintf(what, sizeof(what), "%s: %zu tool call%s would run",
				         m.type, m.ncalls, m.ncalls == 1 ? "" : "s");
			else if (!strcmp(m.type, "end-of-call-report"))
				snprintf(what, sizeof(what), "%s: would close the call's log",
				         m.type);
			else if (!strcmp(m.type, "transfer-destination-request"))
				snprintf(what, sizeof(what),
				         "%s: would answer with the staff number", m.type);
			else
				snprintf(what, sizeof(what), "%.*s: would be skipped",
				         pl_utf8_cut(m.type, 40), m.type);
			pl_vapi_msg_release(&m);
		}
		if (req->listed)
			req->listed(it->source, it->len, what, req->arg);
	}
}

/* "dir/x.json" → "x"; "dir/calls.jsonl:3" → "calls-3". */
static char *expect_name(const char *source)
{
	const char *base = strrchr(source, '/');
	struct pl_buf b = PL_BUF_INIT;
	const char *colon;

	base = base ? base + 1 : source;
	colon = strrchr(base, ':');
	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		const char *dot = memrchr(base, '.', (size_t)(colon - base));

		pl_buf_addf(&b, "%.*s-%s", (int)((dot ? dot : colon) - base), base, colon + 1);
	} else {
		pl_buf_adds(&b, base);
		if (has_suffix(base, ".json"))
			b.buf[b.len -= 5] = '\0';
	}
	return pl_buf_detach(&b, NULL);
}

static int check_expected(const struct pl_replay_req *req, struct pl_expect *x, struct items *items,
                          struct pl_replay_summary *sum, struct pl_err *err)
{
	for (size_t i = 0; i < items->n; i++) {
		struct item *it = &items->v[i];
		struct pl_buf diff = PL_BUF_INIT;
		char *name;
		int r;

		if (!it->resp)
			continue;
		name = expect_name(it->source);
		r = pl_expect_check(x, name, it->resp, it->rlen, &diff, err);
		if (r == 1 && req->differs)
			req->differs(name, diff.buf, req->arg);
		free(name);
		pl_buf_release(&diff);
		if (r > 1)
			return r;
		if (req->update_expected)
			sum->written++;
		else if (r)
			sum->differ++;
		else
			sum->same++;
	}
	return 0;
}

static int by_ms(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

int pl_replay(struct pl_session *s, const struct pl_replay_req *req, struct pl_replay_summary *sum,
              struct pl_err *err)
{
	struct items items = {0};
	struct pl_expect *expect = NULL;
	double start, *lat;
	size_t nlat = 0;
	int r = 0;

	memset(sum, 0, sizeof(*sum));
	if (req->target)
		r = pl_http_check_url(req->target, "--target", err);
	for (size_t i = 0; i < req->npaths && !r; i++)
		r = load_path(req->paths[i], &items, err);
	if (r)
		goto out;
	start = pl_monotonic() * 1e3;
	if (req->target && !pl_config_get(s->cfg, "VAPI_WEBHOOK_SECRET")) {
		r = pl_err_set(err, PL_ECONFIG, "VAPI_WEBHOOK_SECRET is not set");
		pl_err_hint(err, "export the secret the backend expects from Vapi");
		goto out;
	}
	if (s->dry_run) {
		list_items(req, &items, sum);
		goto out;
	}
	if (req->expect_dir &&
	    (r = pl_expect_open(req->expect_dir, req->update_expected, &expect, err)))
		goto out;
	if (req->target) {
		struct pl_http http;
		struct send_state st = {
		    req, pl_config_get(s->cfg, "VAPI_WEBHOOK_SECRET"), &items, 0, 0, NULL};

		if ((r = pl_http_init(&http, s->cfg, err)))
			goto out;
		r = pl_http_run(&http, req->concurrency, next_job, job_done, &st);
		pl_vapi_headers_free(st.fixed);
		pl_http_release(&http);
		if (r) {
			r = pl_err_set(err, PL_EINTERNAL, "cannot start the transfers");
			goto out;
		}
	} else {
		for (size_t i = 0; i < items.n; i++) {
			run_local(s, req, &items.v[i]);
			if (req->progress)
				req->progress(i + 1, items.n, req->arg);
		}
	}
	sum->seconds = (pl_monotonic() * 1e3 - start) / 1000;
	lat = pl_xcalloc(items.n + 1, sizeof(*lat));
	for (size_t i = 0; i < items.n; i++) {
		struct item *it = &items.v[i];

		sum->total++;
		if (it->outcome == 0)
			sum->ok++;
		else if (it->outcome == 1)
			sum->failed++;
		else
			sum->skipped++;
		if (it->outcome != 2)
			lat[nlat++] = it->ms;
	}
	qsort(lat, nlat, sizeof(*lat), by_ms);
	sum->p50_ms = percentile(lat, nlat, 0.50);
	sum->p95_ms = percentile(lat, nlat, 0.95);
	sum->p99_ms = percentile(lat, nlat, 0.99);
	free(lat);
	if (expect)
		r = check_expected(req, expect, &items, sum, err);
out:
	pl_expect_close(expect);
	for (size_t i = 0; i < items.n; i++) {
		free(items.v[i].source);
		free(items.v[i].resp);
	}
	for (size_t i = 0; i < items.ntexts; i++)
		free(items.texts[i]);
	free(items.texts);
	free(items.v);
	return r;
}
