/*
 * replay_floor: the least client CPU per message a libcurl multi client can spend here, for
 * tests/bench/replay to print beside parlae's and wrk's. It POSTs one message N times with C
 * in flight and does nothing else: whatever it costs is libcurl's own per-transfer work.
 *
 * usage: replay_floor N C URL BODY_FILE HEADER_FILE
 *   BODY_FILE    the message, sent as is (Content-Type: application/json)
 *   HEADER_FILE  one "Name: value" header a line (the secret: a 0600 file, never argv)
 * Exit 0 when every response was 200; 1 when any was not (counted on stderr) or a call
 * failed; 2 on a usage error. No timing inside: the bench measures the process's CPU.
 */
#define _GNU_SOURCE /* explicit_bzero */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per-fd epoll state, so that a mask libcurl asks for again costs no syscall. */
#define MAX_FD    4096
#define REG_NONE  0 /* not in the epoll set */
#define REG_IN    1
#define REG_OUT   2
#define REG_ADDED 4

/* Without progress for this many idle seconds the target is stuck: fail rather than hang. */
#define IDLE_LIMIT 30

static CURLM *multi;
static int epfd = -1;
static long timer_ms = -1;           /* libcurl's timer: -1 none, 0 due now */
static unsigned char reg[MAX_FD];    /* what the epoll set holds for the fd */
static unsigned char wanted[MAX_FD]; /* libcurl is watching the fd */
static int cb_failed;

static void fail(const char *what)
{
	fprintf(stderr, "replay_floor: %s\n", what);
	exit(1);
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

/*
 * An idle kept-alive connection stays in the epoll set (libcurl removes it between transfers
 * and adds it back for the next one: two syscalls saved per message); the kernel drops a
 * closed fd from the set by itself, and the state is cleared here.
 */
static int close_socket(void *u, curl_socket_t s)
{
	(void)u;
	if (s >= 0 && s < MAX_FD)
		reg[s] = wanted[s] = REG_NONE;
	return close(s);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *up, void *sp)
{
	struct epoll_event ev;
	unsigned char mask;

	(void)e;
	(void)up;
	(void)sp;
	if (s < 0 || s >= MAX_FD) {
		cb_failed = 1;
		return -1;
	}
	if (what == CURL_POLL_REMOVE) {
		wanted[s] = 0;
		return 0;
	}
	wanted[s] = 1;
	mask = (unsigned char)(REG_ADDED | (what & CURL_POLL_IN ? REG_IN : 0) |
	                       (what & CURL_POLL_OUT ? REG_OUT : 0));
	if (reg[s] == mask)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.events = (mask & REG_IN ? EPOLLIN : 0) | (mask & REG_OUT ? EPOLLOUT : 0);
	ev.data.fd = s;
	if (epoll_ctl(epfd, reg[s] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) != 0) {
		/* The set and the table disagree (an fd reused behind libcurl's back): resync. */
		int op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

		if (errno != ENOENT && errno != EEXIST) {
			cb_failed = 1;
			return -1;
		}
		if (epoll_ctl(epfd, op, s, &ev) != 0) {
			cb_failed = 1;
			return -1;
		}
	}
	reg[s] = mask;
	return 0;
}

static int on_timer(CURLM *m, long ms, void *u)
{
	(void)m;
	(void)u;
	timer_ms = ms;
	return 0;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f;
	struct stat st;
	char *buf;

	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || st.st_size > 16 * 1024 * 1024) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return buf;
}

/* Each non-empty line of the header file, appended to *list; the file's copy is wiped. */
static int read_headers(const char *path, struct curl_slist **list)
{
	size_t len;
	char *buf, *line, *next;
	struct curl_slist *l;
	int ok = 1;

	buf = read_file(path, &len);
	if (!buf)
		return 0;
	for (line = buf; ok && line < buf + len; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : buf + len;
		line[strcspn(line, "\r\n")] = '\0';
		if (!*line)
			continue;
		l = curl_slist_append(*list, line);
		if (!l)
			ok = 0;
		else
			*list = l;
	}
	explicit_bzero(buf, len);
	free(buf);
	return ok;
}

static long parse_count(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		return -1;
	return v;
}

/* The options every transfer shares, set once: the handles are reused for every message. */
static int setup_handle(CURL *e, CURLU *url, const char *body, size_t blen,
                        struct curl_slist *headers)
{
	return curl_easy_setopt(e, CURLOPT_CURLU, url) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket) != CURLE_OK ||
	       /* no alarm()/signal juggling around name resolution */
	       curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
	       /* no proxy: libcurl would read the *_proxy variables for every transfer */
	       curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http") != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, -1L) != CURLE_OK ||
	       curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, 3600L) != CURLE_OK ||
	       /* a smaller receive buffer: the replies are a few hundred bytes */
	       curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L) != CURLE_OK;
}

int main(int argc, char **argv)
{
	long n, c, started = 0, done = 0, bad = 0;
	int running = 0, idle = 0;
	size_t blen;
	char *body;
	struct curl_slist *headers = NULL, *l;
	CURLU *url;
	CURL **h;
	long i;

	if (argc != 6 || (n = parse_count(argv[1])) < 0 || (c = parse_count(argv[2])) < 0) {
		fprintf(stderr, "usage: replay_floor N C URL BODY_FILE HEADER_FILE\n");
		return 2;
	}
	if (c > n)
		c = n;
	body = read_file(argv[4], &blen);
	if (!body)
		fail("cannot read the body file");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fail("curl_global_init failed");
	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (!l)
		fail("out of memory");
	headers = l;
	if (!read_headers(argv[5], &headers))
		fail("cannot read the header file");
	/* Parsed once: each transfer would otherwise parse the URL string again. */
	url = curl_url();
	if (!url || curl_url_set(url, CURLUPART_URL, argv[3], 0) != CURLUE_OK)
		fail("bad URL");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		fail("epoll_create1 failed");
	multi = curl_multi_init();
	if (!multi || curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, c) != CURLM_OK)
		fail("curl_multi_init failed");
	h = calloc((size_t)c, sizeof(*h));
	if (!h)
		fail("out of memory");
	for (i = 0; i < c; i++) {
		h[i] = curl_easy_init();
		if (!h[i] || setup_handle(h[i], url, body, blen, headers))
			fail("curl_easy_init or an option failed");
		if (curl_multi_add_handle(multi, h[i]) != CURLM_OK)
			fail("curl_multi_add_handle failed");
		started++;
	}

	if (curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
		fail("curl_multi_socket_action failed");
	while (done < n) {
		struct epoll_event evs[64];
		CURLMsg *msg;
		int k, left, ready;

		if (timer_ms == 0) {
			/* A handle just (re-)added sets a 0 ms timer: drive it before waiting. */
			timer_ms = -1;
			if (curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running) !=
			    CURLM_OK)
				fail("curl_multi_socket_action failed");
		} else {
			int wait_ms = timer_ms < 0 || timer_ms > 1000 ? 1000 : (int)timer_ms;

			ready = epoll_wait(epfd, evs, 64, wait_ms);
			if (ready < 0 && errno != EINTR)
				fail("epoll_wait failed");
			if (ready <= 0) {
				if (wait_ms == 1000 && ++idle >= IDLE_LIMIT)
					fail("no progress: is the target stuck?");
				if (curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0,
				                             &running) != CURLM_OK)
					fail("curl_multi_socket_action failed");
			}
			for (k = 0; k < ready; k++) {
				int fd = evs[k].data.fd;
				uint32_t ev = evs[k].events;
				int mask = (ev & EPOLLIN ? CURL_CSELECT_IN : 0) |
				           (ev & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				           (ev & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

				if (!wanted[fd]) {
					/* An idle connection woke (the server closed it): forget
					 * it. */
					if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) != 0)
						fail("epoll_ctl failed");
					reg[fd] = REG_NONE;
					continue;
				}
				if (curl_multi_socket_action(multi, fd, mask, &running) != CURLM_OK)
					fail("curl_multi_socket_action failed");
			}
		}
		if (cb_failed)
			fail("the socket callback failed");
		while ((msg = curl_multi_info_read(multi, &left))) {
			CURL *e = msg->easy_handle;
			long code = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			idle = 0;
			if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
				fail("curl_easy_getinfo failed");
			if (msg->data.result != CURLE_OK || code != 200) {
				if (bad < 3 && msg->data.result != CURLE_OK)
					fprintf(stderr, "replay_floor: %s\n",
					        curl_easy_strerror(msg->data.result));
				else if (bad < 3)
					fprintf(stderr, "replay_floor: HTTP %ld\n", code);
				bad++;
			}
			done++;
			/* msg is invalid after the remove: nothing of it is read below. */
			if (curl_multi_remove_handle(multi, e) != CURLM_OK)
				fail("curl_multi_remove_handle failed");
			if (started < n) {
				if (curl_multi_add_handle(multi, e) != CURLM_OK)
					fail("curl_multi_add_handle failed");
				started++;
			}
		}
	}

	for (i = 0; i < c; i++) {
		if (curl_multi_remove_handle(multi, h[i]) != CURLM_OK)
			fail("curl_multi_remove_handle failed");
		curl_easy_cleanup(h[i]);
	}
	free(h);
	if (curl_multi_cleanup(multi) != CURLM_OK)
		fail("curl_multi_cleanup failed");
	curl_url_cleanup(url);
	curl_slist_free_all(headers);
	free(body);
	close(epfd);
	curl_global_cleanup();
	if (bad) {
		fprintf(stderr, "replay_floor: %ld of %ld responses were not 200\n", bad, n);
		return 1;
	}
	return 0;
}
