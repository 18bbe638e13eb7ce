/*
 * A test driver for lib/corpus.c, built by tests/0370-vapi-corpus.bats against the same
 * libparlae.a as the parlae under test (vapi listen --record is the command that records;
 * this drives the same library functions without a server):
 *   corpus_tool write DIR [--no-redact] CALL_ID REQUEST_FILE RESPONSE_FILE
 *   corpus_tool redact DIR <body >redacted
 *   corpus_tool threads DIR THREADS N REQUEST_FILE RESPONSE_FILE  (THREADS x N writes at once)
 * Exit status: the error's code, its message on stderr.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "corpus.h"
#include "err.h"

static int slurp(const char *path, struct pl_buf *b)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char chunk[4096];
	size_t n;

	if (!f)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (pl_buf_add(b, chunk, n) < 0)
			return -1;
	if (f != stdin)
		fclose(f);
	return 0;
}

struct job {
	struct pl_corpus *c;
	const struct pl_buf *req, *resp;
	int n, failed;
};

static void *writer(void *arg)
{
	struct job *j = arg;

	for (int i = 0; i < j->n; i++) {
		struct pl_err err = PL_ERR_INIT;

		if (pl_corpus_write(j->c, "call-threads", j->req->buf, j->req->len, j->resp->buf,
		                    j->resp->len, &err))
			j->failed++;
	}
	return NULL;
}

static int threads(int argc, char **argv)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf a = PL_BUF_INIT, b = PL_BUF_INIT;
	struct pl_corpus *c;
	struct job jobs[64];
	pthread_t t[64];
	int nt = argc == 7 ? atoi(argv[3]) : 0, failed = 0;

	if (nt < 1 || nt > 64 || slurp(argv[5], &a) < 0 || slurp(argv[6], &b) < 0)
		return 2;
	if (pl_corpus_open(argv[2], 1, &c, &err))
		return err.code;
	for (int i = 0; i < nt; i++) {
		jobs[i] = (struct job){c, &a, &b, atoi(argv[4]), 0};
		if (pthread_create(&t[i], NULL, writer, &jobs[i]))
			return 70;
	}
	for (int i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		failed += jobs[i].failed;
	}
	pl_corpus_close(c);
	pl_buf_release(&a);
	pl_buf_release(&b);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_buf a = PL_BUF_INIT, b = PL_BUF_INIT, out = PL_BUF_INIT;
	struct pl_corpus *c = NULL;
	int redact = 1, i = 3, r;

	if (argc > 1 && !strcmp(argv[1], "threads"))
		return threads(argc, argv);
	if (argc >= 4 && !strcmp(argv[3], "--no-redact")) {
		redact = 0;
		i++;
	}
	if (argc < 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "redact")) ||
	    (!strcmp(argv[1], "write") && argc != i + 3)) {
		fprintf(stderr, "usage: corpus_tool write|redact DIR [--no-redact] ...\n");
		return 2;
	}
	if ((r = pl_corpus_open(argv[2], redact, &c, &err)))
		goto out;
	if (!strcmp(argv[1], "redact")) {
		if (slurp("-", &a) < 0)
			return 74;
		if (!(r = pl_corpus_redact(c, a.buf, a.len, &out, &err)))
			puts(out.buf);
	} else {
		if (slurp(argv[i + 1], &a) < 0 || slurp(argv[i + 2], &b) < 0)
			return 74;
		r = pl_corpus_write(c, strcmp(argv[i], "-") ? argv[i] : NULL, a.buf, a.len, b.buf,
		                    b.len, &err);
	}
out:
	if (r)
		fprintf(stderr, "corpus_tool: %s%s%s%s\n", err.msg, *err.hint ? " (" : "", err.hint,
		        *err.hint ? ")" : "");
	pl_corpus_close(c);
	pl_buf_release(&a);
	pl_buf_release(&b);
	pl_buf_release(&out);
	return r;
}
