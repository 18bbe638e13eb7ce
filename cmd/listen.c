/* parlae vapi listen: options, the log lines, and stopping on a signal; the server is lib/listen.c
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/corpus.h"
#include "../lib/encode.h"
#include "../lib/json.h"
#include "../lib/listen.h"
#include "../lib/banned.h"

const struct option opts_vapi_listen[] = {
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"auth", required_argument, NULL, 'u'},
    {"forward-to", required_argument, NULL, 'f'},
    {"record", required_argument, NULL, 'r'},
    {"redact", no_argument, NULL, 'R'},
    {"no-redact", no_argument, NULL, 'N'},
    {"threads", required_argument, NULL, 't'},
    {"max-connections", required_argument, NULL, 'm'},
    {NULL, 0, NULL, 0},
};

/* One line per exchange: text on stderr, or a JSON line on stdout with --json. */
static void log_exchange(const struct pl_listen_event *ev, void *arg)
{
	struct cmd_ctx *ctx = arg;

	if (ctx->json) {
		json_t *doc = pl_json_x(
		    json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:s?, s:i, s:f, s:f, s:f}", "time",
		              ev->time, "method", ev->method, "path", ev->path, "callId",
		              ev->call_id, "tools", ev->tools, "outcome", ev->outcome, "reason",
		              ev->reason, "status", ev->status, "latencyMs", ev->ms, "upstreamMs",
		              ev->upstream_ms, "databaseMs", ev->database_ms));

		cmd_print_json(ctx, doc);
		fflush(stdout);
		return;
	}
	if (ctx->verbosity < 0)
		return;
	fprintf(stderr, "%s %s %s call %s %s %s%s%s%s %d %.1f ms\n", ev->time, ev->method, ev->path,
	        ev->call_id ? ev->call_id : "-", *ev->tools ? ev->tools : "-", ev->outcome,
	        ev->reason ? " (" : "", ev->reason ? ev->reason : "", ev->reason ? ")" : "",
	        ev->status, ev->ms);
}

static int parse_listen_auth(const char *s, enum pl_listen_auth *out)
{
	static const char *const names[] = {"any", "secret", "hmac", "bearer"};

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i])) {
			*out = (enum pl_listen_auth)i;
			return 0;
		}
	return -1;
}

/*
 * Until the first SIGINT or SIGTERM; then no new connections, the requests in flight finish,
 * and 0. A second signal while they finish ends parlae at once with 130. A request whose body
 * has not arrived within PL_LISTEN_STOP_GRACE seconds is closed unanswered (it never ran): a
 * client that sends a body slowly, or never, does not hold the stop.
 */
static int serve_until_stopped(struct cmd_ctx *ctx, struct pl_listen *l, const sigset_t *stops)
{
	const struct timespec tick = {0, 50 * 1000 * 1000};
	static const char msg[] = "parlae: interrupted\n";
	double t0;
	long n;

	while (sigwaitinfo(stops, NULL) < 0)
		if (errno != EINTR)
			return PL_EINTERNAL;
	pl_listen_quiesce(l);
	if ((n = pl_listen_in_flight(l)) > 0 && ctx->verbosity >= 0)
		fprintf(stderr, "parlae: stopping: finishing %ld request%s in flight\n", n,
		        n == 1 ? "" : "s");
	t0 = pl_monotonic();
	while (!pl_listen_drained(l, pl_monotonic() - t0 >= PL_LISTEN_STOP_GRACE)) {
		if (sigtimedwait(stops, NULL, &tick) >= 0) {
			fflush(stdout);
			if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
				/* exiting all the same */
			}
			_exit(PL_EINTERRUPTED);
		}
	}
	if ((n = pl_listen_in_flight(l)) > 0 && ctx->verbosity >= 0)
		fprintf(stderr,
		        "parlae: stopping: closing %ld request%s whose body did not arrive "
		        "within %d s (not run)\n",
		        n, n == 1 ? "" : "s", PL_LISTEN_STOP_GRACE);
	return 0;
}

int cmd_vapi_listen(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_listen_opts o = {0};
	struct pl_err err = PL_ERR_INIT;
	struct pl_corpus *corpus = NULL;
	struct pl_listen *l;
	const char *record = NULL;
	int redact = -1, c, r;
	sigset_t stops, old;
	long n;
	char url[128];

	o.bind = "127.0.0.1";
	o.port = PL_LISTEN_DEFAULT_PORT;
	o.threads = PL_LISTEN_DEFAULT_THREADS;
	o.max_connections = PL_LISTEN_DEFAULT_MAX_CONNECTIONS;
	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'p':
			if (cmd_parse_number(optarg, 0, 65535, &n) < 0)
				return cmd_usage_error(ctx, "--port must be 0 to 65535");
			o.port = (int)n;
			break;
		case 'b':
			/* The only way off loopback (no variable or config key sets it): the
			 * operator's explicit choice, so nothing to warn about. */
			o.bind = optarg;
			break;
		case 'u':
			if (parse_listen_auth(optarg, &o.auth) < 0)
				return cmd_usage_error(
				    ctx, "--auth is secret, hmac, bearer or any, not '%s'", optarg);
			break;
		case 'f':
			o.forward_to = optarg;
			break;
		case 'r':
			record = optarg;
			break;
		case 'R':
		case 'N':
			if (redact >= 0 && redact != (c == 'R'))
				return cmd_usage_error(
				    ctx, "--redact and --no-redact contradict each other");
			redact = c == 'R';
			break;
		case 't':
			if (cmd_parse_number(optarg, 1, 1024, &n) < 0)
				return cmd_usage_error(ctx, "--threads must be 1 to 1024");
			o.threads = (int)n;
			break;
		case 'm':
			if (cmd_parse_number(optarg, 1, 100000, &n) < 0)
				return cmd_usage_error(ctx,
				                       "--max-connections must be 1 to 100000");
			o.max_connections = (int)n;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (redact >= 0 && !record)
		return cmd_usage_error(ctx, "--redact and --no-redact go with --record DIR");
	if (!pl_config_get(&ctx->cfg, "VAPI_WEBHOOK_SECRET")) {
		pl_err_set(&err, PL_ECONFIG, "VAPI_WEBHOOK_SECRET is not set");
		pl_err_hint(&err, "export the secret Vapi sends (the assistant's server secret): "
		                  "every request is checked against it");
		return cmd_fail(ctx, &err);
	}
	if (record) {
		if ((r = pl_corpus_open(record, redact != 0, &corpus, &err)))
			return cmd_fail(ctx, &err);
		if (!redact && ctx->verbosity >= 0)
			fprintf(stderr,
			        "parlae: --no-redact: recording raw payloads into %s; they "
			        "hold patients' data\n",
			        record);
	}
	o.corpus = corpus;
	o.log = log_exchange;
	o.arg = ctx;
	/* The serving threads inherit the mask: only this thread takes the stop signals. */
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	if ((r = pthread_sigmask(SIG_BLOCK, &stops, &old))) {
		pl_corpus_close(corpus);
		pl_err_set(&err, PL_EINTERNAL, "cannot block signals: %s", strerror(r));
		return cmd_fail(ctx, &err);
	}
	if ((r = pl_listen_start(&ctx->cfg, &o, &l, &err))) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pl_corpus_close(corpus);
		return cmd_fail(ctx, &err);
	}
	snprintf(url, sizeof(url), strchr(o.bind, ':') ? "http://[%s]:%d" : "http://%s:%d", o.bind,
	         pl_listen_port(l));
	if (ctx->json) {
		cmd_print_json(ctx, pl_json_x(json_pack("{s:s, s:i}", "listening", url, "port",
		                                        pl_listen_port(l))));
		fflush(stdout);
	} else if (ctx->verbosity >= 0) {
		fprintf(stderr, "listening on %s (%s)\n", url,
		        o.forward_to ? "forwarding" : "parlae's handlers");
	}
	r = serve_until_stopped(ctx, l, &stops);
	pl_listen_stop(l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pl_corpus_close(corpus);
	return r;
}
