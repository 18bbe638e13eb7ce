/*
 * store-tool: the secret store's get, put and delete for the bats tests, which have no
 * command for them yet (as git's test-tool exposes internals). The value of a put is read from
 * stdin so that it never stands in argv; a get writes the value to stdout as it is.
 *
 *   store-tool put NAME          < value   prints the new version id
 *   store-tool put-if NAME EXPECTED < value  the same, only over version EXPECTED ("" for none)
 *   store-tool get NAME [VERSION]          prints the value
 *   store-tool delete NAME
 *   store-tool open-all                    for every version of every secret, "NAME VERSION
 *                                          CODE": 0 when it opens, else get's exit code
 *   store-tool put-each < lines            one put per line "NAME<TAB>VALUE" (the value stored
 *                                          with its newline, as put NAME <<<VALUE would), in
 *                                          one process; prints each new version id
 *
 * Exits with the library's error code after printing "store-tool: MESSAGE (HINT)" on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "store.h"
#include "banned.h"

static int read_stdin(struct pl_secret *value, struct pl_err *err)
{
	struct pl_buf b = PL_BUF_INIT;
	char chunk[4096];
	ssize_t n;

	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) > 0)
		pl_buf_add(&b, chunk, (size_t)n);
	explicit_bzero(chunk, sizeof(chunk));
	if (n < 0) {
		pl_buf_wipe(&b);
		return pl_err_set(err, PL_EBADINPUT, "reading stdin failed");
	}
	pl_secret_set(value, b.buf, b.len);
	pl_buf_wipe(&b);
	return 0;
}

/* One get per version of every secret listed: whether this key opens each. */
static int open_all(struct pl_store *st, struct pl_err *err)
{
	struct pl_store_entry *v = NULL;
	size_t n = 0;
	int r;

	if ((r = pl_store_list(st, &v, &n, err)))
		return r;
	for (size_t i = 0; i < n; i++) {
		const char *versions[2] = {v[i].version, v[i].previous};

		for (int k = 0; k < 2 && versions[k][0]; k++) {
			struct pl_secret value = PL_SECRET_INIT;
			struct pl_err e = PL_ERR_INIT;

			printf("%s %s %d\n", v[i].name, versions[k],
			       pl_store_get(st, v[i].name, versions[k], &value, NULL, &e));
			pl_secret_release(&value);
		}
	}
	free(v);
	return 0;
}

/* A put per line of stdin, "NAME\tVALUE\n": seeding hundreds of secrets in one process. */
static int put_each(struct pl_store *st, struct pl_err *err)
{
	struct pl_secret all = PL_SECRET_INIT;
	char version[PL_STORE_VERSION_MAX];
	int r;

	if ((r = read_stdin(&all, err)))
		return r;
	for (size_t i = 0; i < all.len && !r;) {
		const char *line = (const char *)all.data + i, *end, *tab;
		struct pl_secret value = PL_SECRET_INIT;
		char name[256]; /* a name is at most 255 bytes */

		end = memchr(line, '\n', all.len - i);
		tab = memchr(line, '\t', end ? (size_t)(end - line) : all.len - i);
		if (!end || !tab || (size_t)(tab - line) >= sizeof(name)) {
			r = pl_err_set(err, PL_EUSAGE,
			               "put-each: the line at byte %zu is not NAME<TAB>VALUE<LF>",
			               i);
			break;
		}
		memcpy(name, line, (size_t)(tab - line));
		name[tab - line] = '\0';
		pl_secret_set(&value, tab + 1, (size_t)(end - tab));
		if (!(r = pl_store_put(st, name, &value, version, err)))
			printf("%s\n", version);
		pl_secret_release(&value);
		i = (size_t)(end - (const char *)all.data) + 1;
	}
	pl_secret_release(&all);
	return r;
}

static int run(struct pl_store *st, int argc, char **argv, struct pl_err *err)
{
	struct pl_secret value = PL_SECRET_INIT;
	char version[PL_STORE_VERSION_MAX];
	int r;

	if (argc == 3 && !strcmp(argv[1], "put")) {
		if (!(r = read_stdin(&value, err)) &&
		    !(r = pl_store_put(st, argv[2], &value, version, err)))
			printf("%s\n", version);
	} else if (argc == 4 && !strcmp(argv[1], "put-if")) {
		if (!(r = read_stdin(&value, err)) &&
		    !(r = pl_store_put_if(st, argv[2], &value, argv[3], version, err)))
			printf("%s\n", version);
	} else if ((argc == 3 || argc == 4) && !strcmp(argv[1], "get")) {
		if (!(r = pl_store_get(st, argv[2], argc == 4 ? argv[3] : NULL, &value, version,
		                       err)))
			fwrite(value.data, 1, value.len, stdout);
	} else if (argc == 3 && !strcmp(argv[1], "delete")) {
		r = pl_store_delete(st, argv[2], err);
	} else if (argc == 2 && !strcmp(argv[1], "open-all")) {
		r = open_all(st, err);
	} else if (argc == 2 && !strcmp(argv[1], "put-each")) {
		r = put_each(st, err);
	} else {
		r = pl_err_set(err, PL_EUSAGE,
		               "usage: store-tool put NAME | put-if NAME EXPECTED | "
		               "get NAME [VERSION] | delete NAME | open-all | put-each");
	}
	pl_secret_release(&value);
	return r;
}

int main(int argc, char **argv)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_config cfg;
	struct pl_store *st = NULL;
	int r;

	pl_config_init(&cfg);
	if (!(r = pl_config_load(&cfg, NULL, NULL, &err)) && !(r = pl_store_open(&cfg, &st, &err)))
		r = run(st, argc, argv, &err);
	if (r) {
		fprintf(stderr, "store-tool: %s", err.msg);
		if (err.hint[0])
			fprintf(stderr, " (%s)", err.hint);
		fputc('\n', stderr);
	}
	pl_store_close(st);
	pl_config_release(&cfg);
	return r;
}
