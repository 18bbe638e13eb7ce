/* Printing for the commands: errors, notes, JSON, tables and colour. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/json.h"
#include "../lib/banned.h"

int cmd_stdout_tty(void)
{
	return isatty(STDOUT_FILENO);
}

int cmd_use_color(const struct cmd_ctx *ctx, FILE *f)
{
	const char *no = getenv("NO_COLOR"), *term = getenv("TERM");

	if (ctx->color >= 0)
		return ctx->color;
	return isatty(fileno(f)) && !(no && *no) && !(term && !strcmp(term, "dumb"));
}

static void print_error(struct cmd_ctx *ctx, int code, const char *msg, const char *hint)
{
	fflush(stdout);
	if (ctx->json) {
		json_t *e =
		    pl_json_x(json_pack("{s:{s:s, s:s, s:s?}}", "error", "code", pl_err_name(code),
		                        "message", msg, "hint", hint && *hint ? hint : NULL));
		char *s = pl_json_dump(e);

		fprintf(stderr, "%s\n", s);
		free(s);
		json_decref(e);
		return;
	}
	if (cmd_use_color(ctx, stderr))
		fprintf(stderr, "\033[31mparlae:\033[m %s", msg);
	else
		fprintf(stderr, "parlae: %s", msg);
	if (hint && *hint)
		fprintf(stderr, " (%s)", hint);
	fputc('\n', stderr);
}

int cmd_fail(struct cmd_ctx *ctx, const struct pl_err *err)
{
	int code = err->code ? err->code : PL_EINTERNAL;

	print_error(ctx, code, err->msg[0] ? err->msg : "unexpected error", err->hint);
	return code;
}

int cmd_usage_error(struct cmd_ctx *ctx, const char *fmt, ...)
{
	struct pl_err err = PL_ERR_INIT;
	va_list ap;

	/* Through pl_err: the text quotes what was typed, which need not be UTF-8. */
	va_start(ap, fmt);
	pl_err_vset(&err, PL_EUSAGE, fmt, ap);
	va_end(ap);
	if (ctx->cmd)
		pl_err_hint(&err, "usage: %s", ctx->cmd->usage);
	else
		pl_err_hint(&err, "see 'parlae help'");
	print_error(ctx, PL_EUSAGE, err.msg, err.hint);
	return PL_EUSAGE;
}

void cmd_note(struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (ctx->verbosity < 0 || ctx->json)
		return;
	fflush(stdout); /* keep data and notes in order when both go to one pipe */
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cmd_print_json(struct cmd_ctx *ctx, json_t *doc)
{
	size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
	char *s;

	(void)ctx;
	if (cmd_stdout_tty())
		flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER;
	s = json_dumps(doc, flags);
	if (s) {
		puts(s);
		free(s);
	}
	json_decref(doc);
}

void cmd_table_init(struct cmd_table *t, size_t ncols, ...)
{
	va_list ap;

	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->alloc = 8;
	t->cells = pl_xcalloc(t->alloc * ncols, sizeof(char *));
	va_start(ap, ncols);
	for (size_t i = 0; i < ncols; i++)
		t->cells[i] = pl_xstrdup(va_arg(ap, const char *));
	va_end(ap);
	t->nrows = 1;
}

void cmd_table_row(struct cmd_table *t, ...)
{
	va_list ap;

	if (t->nrows == t->alloc) {
		t->alloc *= 2;
		t->cells = pl_xrealloc(t->cells, t->alloc * t->ncols * sizeof(char *));
	}
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);

		t->cells[t->nrows * t->ncols + i] = pl_xstrdup(s ? s : "-");
	}
	va_end(ap);
	t->nrows++;
}

/* Control characters from the database never reach the terminal as such. */
static void put_cell(const char *s, size_t width, int last)
{
	size_t n = 0;

	for (; *s; s++, n++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, stdout);
	if (!last)
		for (; n < width + 2; n++)
			fputc(' ', stdout);
}

void cmd_table_print(struct cmd_ctx *ctx, struct cmd_table *t)
{
	int tty = cmd_stdout_tty(), bold = tty && cmd_use_color(ctx, stdout);
	size_t widths[16] = {0};

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols && c < 16; c++) {
			size_t len = strlen(t->cells[r * t->ncols + c]);

			if (len > widths[c])
				widths[c] = len;
		}
	for (size_t r = tty ? 0 : 1; r < t->nrows; r++) {
		if (r == 0 && bold)
			fputs("\033[1m", stdout);
		for (size_t c = 0; c < t->ncols; c++) {
			if (tty)
				put_cell(t->cells[r * t->ncols + c], widths[c], c + 1 == t->ncols);
			else
				printf("%s%s", c ? "\t" : "", t->cells[r * t->ncols + c]);
		}
		if (r == 0 && bold)
			fputs("\033[m", stdout);
		fputc('\n', stdout);
	}
}

void cmd_table_release(struct cmd_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

int cmd_read_input(const char *path, size_t cap, struct pl_buf *out, struct pl_err *err)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char chunk[8192];
	size_t n;
	int r = 0;

	if (!f)
		return pl_err_set(err, PL_EUSAGE, "cannot open %s: %s", path, strerror(errno));
	pl_buf_init(out, cap);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (pl_buf_add(out, chunk, n) < 0) {
			if (cap % (1 << 20) == 0)
				r = pl_err_set(err, PL_EBADINPUT, "%s is larger than %zu MiB", path,
				               cap >> 20);
			else
				r = pl_err_set(err, PL_EBADINPUT, "%s is larger than %zu KiB", path,
				               cap >> 10);
			break;
		}
	}
	if (!r && ferror(f))
		r = pl_err_set(err, PL_EUSAGE, "cannot read %s", path);
	if (f != stdin)
		fclose(f);
	return r;
}

void cmd_progress(const char *label, size_t done, size_t total)
{
	static const char bar[] = "##############################";
	int width = 30, filled = total ? (int)(done * (size_t)width / total) : width;

	fprintf(stderr, "\r%s%s[%.*s%*s] %zu/%zu", label, *label ? " " : "", filled, bar,
	        width - filled, "", done, total);
	if (done == total)
		fputc('\n', stderr);
}

int cmd_parse_number(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
