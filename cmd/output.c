/* Printing for the commands: errors, notes, JSON, tables and colour. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/encode.h"
#include "../lib/json.h"
#include "../lib/utf8.h"
#include "../lib/banned.h"

/* --- the terminal filter ------------------------------------------------------------------ */

/*
 * stdout and stderr are replaced at start-up by streams that write to the same descriptors
 * through escape_text: whatever a command prints, and whatever it quotes from outside (a
 * redirect's error, an upstream's message, a payload's strings, a row of the database), a
 * control character reaches the terminal as text. parlae's own colours pass through
 * cmd_color. The stream also keeps the first write error, so that the exit code says output
 * was lost (cmd_finish_output).
 */
struct filter {
	int fd;
	unsigned keep;          /* CMD_KEEP_* controls passed as they are */
	int raw;                /* cmd_color is writing: no escaping */
	int error;              /* errno of the first failed write, else 0 */
	unsigned char carry[4]; /* the start of a character the next write completes */
	size_t ncarry;
};

static struct filter out_filter = {STDOUT_FILENO, CMD_KEEP_NL | CMD_KEEP_TAB, 0, 0, {0}, 0};
static struct filter err_filter = {
    STDERR_FILENO, CMD_KEEP_NL | CMD_KEEP_TAB | CMD_KEEP_CR, 0, 0, {0}, 0};

/* The bytes of a character that starts with lead, or 0 if no character starts so. */
static size_t lead_len(unsigned char lead)
{
	if (lead < 0x80)
		return 1;
	if (lead >= 0xc2 && lead <= 0xdf)
		return 2;
	if (lead >= 0xe0 && lead <= 0xef)
		return 3;
	if (lead >= 0xf0 && lead <= 0xf4)
		return 4;
	return 0;
}

/* form then the byte's two hex digits: "\x1b", "\u009b". */
static void add_escape(struct pl_buf *b, const char *form, unsigned char c)
{
	char hex[3];

	pl_hex(&c, 1, hex);
	pl_buf_adds(b, form);
	pl_buf_add(b, hex, 2);
}

/*
 * Escape len bytes of s into b; returns how many were used: fewer than len only when !final
 * and s ends inside a character, which the caller carries over. C0 controls (but those in
 * keep) and bytes that are not UTF-8 become "\x1b"; DEL and the C1 controls (U+0080-U+009F,
 * read by some terminals as CSI) become "\u009b", a form that is also valid inside the JSON
 * strings where jansson leaves them raw.
 */
static size_t escape_text(struct pl_buf *b, const unsigned char *s, size_t len, unsigned keep,
                          int final)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n = lead_len(c);

		if (c < 0x20) {
			if ((c == '\n' && (keep & CMD_KEEP_NL)) ||
			    (c == '\t' && (keep & CMD_KEEP_TAB)) ||
			    (c == '\r' && (keep & CMD_KEEP_CR)))
				pl_buf_addch(b, (char)c);
			else
				add_escape(b, "\\x", c);
			i++;
		} else if (c == 0x7f) {
			add_escape(b, "\\u00", c);
			i++;
		} else if (n == 1) {
			size_t run = i;

			while (i < len && s[i] >= 0x20 && s[i] < 0x7f)
				i++;
			pl_buf_add(b, s + run, i - run);
		} else if (n && i + n > len && !final) {
			break;
		} else if (n && i + n <= len && pl_utf8_valid((const char *)s + i, n)) {
			if (c == 0xc2 && s[i + 1] < 0xa0)
				add_escape(b, "\\u00", s[i + 1]);
			else
				pl_buf_add(b, s + i, n);
			i += n;
		} else {
			add_escape(b, "\\x", c);
			i++;
		}
	}
	return i;
}

void cmd_escape(struct pl_buf *b, const char *s, size_t len, unsigned keep)
{
	escape_text(b, (const unsigned char *)s, len, keep, 1);
}

static int write_all(struct filter *f, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(f->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!f->error)
				f->error = w < 0 ? errno : EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t filter_write(void *cookie, const char *buf, size_t size)
{
	struct filter *f = cookie;
	struct pl_buf in = PL_BUF_INIT, out = PL_BUF_INIT;
	size_t done = 0;
	int r = 0;

	if (f->error) {
		errno = f->error;
		return -1;
	}
	if (f->raw)
		return write_all(f, buf, size) ? -1 : (ssize_t)size;
	/* In pieces, so that the escaped text stays small; a piece can end inside a character,
	 * which is carried over to the next. */
	while (!r && done < size) {
		size_t n = size - done < 4096 ? size - done : 4096, used;

		pl_buf_reset(&in);
		pl_buf_reset(&out);
		pl_buf_add(&in, f->carry, f->ncarry);
		pl_buf_add(&in, buf + done, n);
		done += n;
		used = escape_text(&out, (const unsigned char *)in.buf, in.len, f->keep, 0);
		f->ncarry = in.len - used; /* at most 3: the start of one character */
		memcpy(f->carry, in.buf + used, f->ncarry);
		r = write_all(f, out.buf, out.len);
	}
	pl_buf_release(&in);
	pl_buf_release(&out);
	if (r < 0) {
		errno = f->error;
		return -1;
	}
	return (ssize_t)size;
}

/* What is carried is not a whole character: show its bytes. */
static void filter_drain(struct filter *f)
{
	struct pl_buf b = PL_BUF_INIT;

	if (!f->ncarry)
		return;
	escape_text(&b, f->carry, f->ncarry, f->keep, 1);
	f->ncarry = 0;
	if (!f->error)
		write_all(f, b.buf, b.len);
	pl_buf_release(&b);
}

static int filter_close(void *cookie)
{
	struct filter *f = cookie;

	filter_drain(f);
	if (f->error) {
		errno = f->error;
		return -1;
	}
	return 0;
}

static FILE *filter_open(struct filter *f, FILE *old, int mode)
{
	cookie_io_functions_t io = {NULL, filter_write, NULL, filter_close};
	FILE *fp = fopencookie(f, "w", io);

	if (!fp)
		return old;
	setvbuf(fp, NULL, mode, BUFSIZ);
	return fp;
}

void cmd_output_init(void)
{
	stdout = filter_open(&out_filter, stdout, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF);
	stderr = filter_open(&err_filter, stderr, _IONBF);
}

FILE *cmd_raw_stdout(void)
{
	static FILE *raw;
	int fd;

	/* readline draws its prompt and line with escape sequences: it gets the descriptor. */
	if (raw)
		return raw;
	fflush(stdout);
	fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (fd >= 0 && !(raw = fdopen(fd, "w")))
		close(fd);
	return raw ? raw : stdout;
}

void cmd_color(FILE *f, const char *sgr)
{
	struct filter *flt = f == stdout ? &out_filter : f == stderr ? &err_filter : NULL;

	if (!flt) {
		fputs(sgr, f);
		return;
	}
	fflush(f);
	filter_drain(flt);
	flt->raw = 1;
	fputs(sgr, f);
	fflush(f);
	flt->raw = 0;
}

/* The quiet end of a reader that went away, as git's check_pipe: what SIGPIPE would do. */
static void pipe_closed(void)
{
	signal(SIGPIPE, SIG_DFL);
	raise(SIGPIPE);
	_exit(CMD_EXIT_PIPE);
}

int cmd_output_error(struct cmd_ctx *ctx)
{
	struct pl_err err = PL_ERR_INIT;

	if (out_filter.error == EPIPE)
		pipe_closed();
	pl_err_set(&err, PL_EIO, "cannot write to standard output: %s",
	           strerror(out_filter.error ? out_filter.error : EIO));
	return cmd_fail(ctx, &err);
}

int cmd_flush_stdout(struct cmd_ctx *ctx)
{
	if (fflush(stdout) == 0 && !ferror(stdout) && !out_filter.error)
		return 0;
	return cmd_output_error(ctx);
}

int cmd_finish_output(struct cmd_ctx *ctx, int r)
{
	int failed = fflush(stdout) != 0 || ferror(stdout) || out_filter.error;

	filter_drain(&out_filter);
	failed |= out_filter.error != 0;
	if (!failed)
		return r;
	if (out_filter.error == EPIPE)
		pipe_closed();
	/* A command that failed has said so already; one message is enough. */
	return r ? r : cmd_output_error(ctx);
}

int cmd_stdout_tty(void)
{
	return isatty(STDOUT_FILENO);
}

int cmd_use_color(const struct cmd_ctx *ctx, FILE *f)
{
	const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
	/* The filtered streams have no descriptor of their own (fileno is -1): ask about theirs. */
	int fd = f == stdout ? STDOUT_FILENO : f == stderr ? STDERR_FILENO : fileno(f);

	if (ctx->color >= 0)
		return ctx->color;
	return isatty(fd) && !(no && *no) && !(term && !strcmp(term, "dumb"));
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
	if (cmd_use_color(ctx, stderr)) {
		cmd_color(stderr, "\033[31m");
		fputs("parlae:", stderr);
		cmd_color(stderr, "\033[m");
		fprintf(stderr, " %s", msg);
	} else {
		fprintf(stderr, "parlae: %s", msg);
	}
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
			cmd_color(stdout, "\033[1m");
		for (size_t c = 0; c < t->ncols; c++) {
			if (tty)
				put_cell(t->cells[r * t->ncols + c], widths[c], c + 1 == t->ncols);
			else
				printf("%s%s", c ? "\t" : "", t->cells[r * t->ncols + c]);
		}
		if (r == 0 && bold)
			cmd_color(stdout, "\033[m");
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
