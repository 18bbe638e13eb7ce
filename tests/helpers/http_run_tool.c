/*
 * A test driver for pl_http_run (lib/http.c), built by tests/0315-http-run-loop.bats against
 * the same libparlae.a as the parlae under test (the sanitizer's for a sanitizer build): the
 * requests, one a line on stdin, go through one run with CONCURRENCY slots.
 *   http_run_tool CONCURRENCY <jobs
 * A job is a line of tab-separated fields, "-" for none:
 *   METHOD URL BODY DEADLINE HEADERS USER PASSWORD AWS_SIGV4
 * DEADLINE is seconds from the job's start (0: none), HEADERS "Name: value" items joined by
 * "|". PARLAE_HTTP_TIMEOUT applies as in parlae. Each finished job prints a line, in the order
 * done() gets them: "N CODE STATUS", and its message when CODE is not 0. Exit 0, or the run's
 * code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "encode.h"
#include "err.h"
#include "http.h"

#define FIELDS 8
#define MAX_JOBS 1000

struct spec {
	char *line;
	char *f[FIELDS];
	char **headers;
	double deadline;
};

struct run {
	struct pl_http *h;
	struct spec *v;
	size_t n, next;
};

static char *field(char *s)
{
	return strcmp(s, "-") ? s : NULL;
}

static int parse(struct spec *j, char *line)
{
	char *p = line, *h;
	size_t n = 0;

	j->line = line;
	for (int i = 0; i < FIELDS; i++) {
		j->f[i] = p;
		if (!(p = strchr(p, '\t')) && i < FIELDS - 1)
			return -1;
		if (p)
			*p++ = '\0';
	}
	for (int i = 0; i < FIELDS; i++)
		j->f[i] = field(j->f[i]);
	if (!j->f[0] || !j->f[1])
		return -1;
	j->deadline = j->f[3] ? strtod(j->f[3], NULL) : 0;
	j->headers = pl_xcalloc(16, sizeof(*j->headers));
	for (h = j->f[4] ? strtok(j->f[4], "|") : NULL; h && n < 15; h = strtok(NULL, "|"))
		j->headers[n++] = h;
	return 0;
}

static int next(struct pl_http_job *job, void *arg)
{
	struct run *r = arg;
	struct spec *j;

	if (r->next >= r->n)
		return 0;
	j = &r->v[r->next];
	job->req.method = j->f[0];
	job->req.url = j->f[1];
	job->req.body = j->f[2];
	job->req.body_len = j->f[2] ? strlen(j->f[2]) : 0;
	job->req.headers = (const char *const *)j->headers;
	job->req.user = j->f[5];
	job->req.password = j->f[6];
	job->req.aws_sigv4 = j->f[7];
	job->req.peer = "the server";
	job->user = (void *)(r->next + 1);
	/* The deadline belongs to the request about to start: the slot reads it now. */
	r->h->deadline = j->deadline > 0 ? pl_monotonic() + j->deadline : 0;
	r->next++;
	return 1;
}

static void done(struct pl_http_job *job, void *arg)
{
	(void)arg;
	printf("%zu %d %ld", (size_t)job->user, job->code, job->resp.status);
	if (job->code)
		printf(" %s", job->err.msg);
	putchar('\n');
	fflush(stdout);
	pl_http_resp_release(&job->resp);
}

int main(int argc, char **argv)
{
	struct pl_config cfg;
	struct pl_err err = PL_ERR_INIT;
	struct pl_http h;
	struct spec v[MAX_JOBS];
	struct run r = {&h, v, 0, 0};
	char line[8192];
	int code;

	if (argc != 2 || atoi(argv[1]) < 1) {
		fprintf(stderr, "usage: http_run_tool CONCURRENCY <jobs\n");
		return 2;
	}
	while (r.n < MAX_JOBS && fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (parse(&v[r.n], pl_xstrdup(line)) < 0) {
			fprintf(stderr, "http_run_tool: a job needs %d tab-separated fields\n", FIELDS);
			return 2;
		}
		r.n++;
	}
	pl_config_init(&cfg);
	if ((code = pl_http_init(&h, &cfg, &err))) {
		fprintf(stderr, "http_run_tool: %s\n", err.msg);
		return code;
	}
	code = pl_http_run(&h, atoi(argv[1]), next, done, &r);
	pl_http_release(&h);
	pl_config_release(&cfg);
	for (size_t i = 0; i < r.n; i++) {
		free(v[i].headers);
		free(v[i].line);
	}
	return code;
}
