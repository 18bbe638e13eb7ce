/*
 * parlae shell: a readline loop that splits each line as a shell would and runs it as a
 * parlae command in this process. An error prints and the loop goes on; exit or Ctrl-D leaves.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "cmd.h"
#include "../lib/buf.h"
#include "../lib/banned.h"

#define MAX_WORDS 256

struct words {
	char *v[MAX_WORDS + 2];
	int n;
	struct pl_buf storage;
};

static void words_release(struct words *w)
{
	for (int i = 0; i < w->n; i++)
		free(w->v[i]);
	w->n = 0;
	pl_buf_release(&w->storage);
}

static int words_push(struct words *w, struct pl_buf *word)
{
	if (w->n == MAX_WORDS)
		return -1;
	w->v[w->n++] = pl_xstrdup(word->buf);
	w->v[w->n] = NULL;
	pl_buf_reset(word);
	return 0;
}

/*
 * Split like sh: blanks separate words; '...' is literal; "..." keeps blanks and honours
 * \" \\ \$ \`; a backslash elsewhere escapes the next character; # starts a comment.
 * -1 for an unterminated quote or too many words. With partial, an open quote is allowed
 * (completion of a half-typed word).
 */
static int split_words(const char *line, struct words *w, int partial)
{
	struct pl_buf word = PL_BUF_INIT;
	int in_word = 0, r = 0;
	char quote = 0;

	w->n = 0;
	w->v[0] = NULL;
	for (const char *p = line; *p; p++) {
		if (quote == '\'') {
			if (*p == '\'')
				quote = 0;
			else
				pl_buf_addch(&word, *p);
		} else if (quote == '"') {
			if (*p == '"')
				quote = 0;
			else if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
				pl_buf_addch(&word, *++p);
			else
				pl_buf_addch(&word, *p);
		} else if (*p == ' ' || *p == '\t' || *p == '\n') {
			if (in_word && (r = words_push(w, &word)))
				break;
			in_word = 0;
		} else if (*p == '#' && !in_word) {
			break;
		} else {
			in_word = 1;
			if (*p == '\'' || *p == '"')
				quote = *p;
			else if (*p == '\\' && p[1])
				pl_buf_addch(&word, *++p);
			else
				pl_buf_addch(&word, *p);
		}
	}
	if (!r && quote && !partial)
		r = -1;
	if (!r && in_word)
		r = words_push(w, &word);
	pl_buf_release(&word);
	return r;
}

/*
 * Lines that carry a secret or patient data never reach the history file: judged after option
 * parsing (cmd_line_has_option), so "--calle", "--cod=X" or "--arg '{...}'" count as the full name.
 */
static int carries_secret(const char *name, const char *value)
{
	if (!strcmp(name, "args"))
		return value && value[0] != '@' && strcmp(value, "-");
	return !strcmp(name, "caller") || !strcmp(name, "code") || !strcmp(name, "url");
}

static char *history_path(void)
{
	struct pl_buf b = PL_BUF_INIT;
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (state && *state == '/')
		pl_buf_addf(&b, "%s/parlae", state);
	else if (home && *home)
		pl_buf_addf(&b, "%s/.local/state/parlae", home);
	else
		return NULL;
	/* mkdir -p, private */
	for (char *p = b.buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(b.buf, 0700);
			*p = '/';
		}
	}
	mkdir(b.buf, 0700);
	pl_buf_adds(&b, "/history");
	return pl_buf_detach(&b, NULL);
}

/* The history file is 0600 whatever the umask, created before readline ever writes it. */
static int open_history(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	fchmod(fd, 0600);
	close(fd);
	return 0;
}

/* --- completion -------------------------------------------------------------------------- */

static struct cmd_ctx *shell_ctx;
static char **matches;
static size_t nmatches, next_match;

static void collect(const char *word, void *arg)
{
	(void)arg;
	matches = pl_xrealloc(matches, (nmatches + 1) * sizeof(*matches));
	matches[nmatches++] = pl_xstrdup(word);
}

static char *generate(const char *text, int state)
{
	(void)text;
	if (!state)
		next_match = 0;
	return next_match < nmatches ? pl_xstrdup(matches[next_match++]) : NULL;
}

static char **attempt_completion(const char *text, int start, int end)
{
	struct words w = {0};
	char *before = pl_xstrndup(rl_line_buffer, (size_t)start);
	char **out = NULL;

	(void)end;
	rl_attempted_completion_over = 1;
	for (size_t i = 0; i < nmatches; i++)
		free(matches[i]);
	nmatches = 0;
	if (!split_words(before, &w, 1)) {
		w.v[w.n++] = pl_xstrdup(text);
		w.v[w.n] = NULL;
		cmd_complete(shell_ctx, w.n, w.v, collect, NULL);
		out = rl_completion_matches(text, generate);
	}
	words_release(&w);
	free(before);
	return out;
}

/* --- the loop ------------------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* A line's words as parlae's command line: argv[0] "parlae", then the words without "parlae". */
static int line_argv(const struct words *w, char **argv)
{
	int argc = 0;

	argv[argc++] = "parlae";
	for (int i = (w->n && !strcmp(w->v[0], "parlae")) ? 1 : 0; i < w->n; i++)
		argv[argc++] = w->v[i];
	argv[argc] = NULL;
	return argc;
}

static int run_line(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_ctx saved = *ctx;
	int r;

	if (argc > 1 && !strcmp(argv[1], "shell")) {
		fprintf(stderr, "parlae: already in the shell\n");
		return 0;
	}
	/* The configuration is read once, when the shell starts. */
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--config", 8) || !strncmp(argv[i], "--profile", 9)) {
			fprintf(stderr, "parlae: give %s when starting the shell, not on a line\n",
			        argv[i][3] == 'o' ? "--config" : "--profile");
			return PL_EUSAGE;
		}
	}
	r = cmd_main(ctx, argc, argv);
	/* Options given on one line do not stick to the next. */
	ctx->json = saved.json;
	ctx->verbosity = saved.verbosity;
	ctx->color = saved.color;
	ctx->dry_run = saved.dry_run;
	ctx->cmd = saved.cmd;
	cmd_apply_settings(ctx);
	fflush(stdout);
	return r;
}

static char *read_line(int tty)
{
	struct pl_buf b = PL_BUF_INIT;
	int c;

	if (tty)
		return readline("parlae> ");
	while ((c = getchar()) != EOF && c != '\n')
		if (pl_buf_addch(&b, (char)c) < 0)
			break;
	if (c == EOF && !b.len) {
		pl_buf_release(&b);
		return NULL;
	}
	return pl_buf_detach(&b, NULL);
}

int cmd_shell(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sigaction sa = {0}, old;
	int tty = isatty(STDIN_FILENO);
	char *hist, *line;

	if (cmd_parse_none(ctx, argc, argv))
		return PL_EUSAGE;
	ctx->in_shell = 1;
	shell_ctx = ctx;
	hist = tty ? history_path() : NULL;
	if (hist && open_history(hist) == 0)
		read_history(hist);
	rl_readline_name = "parlae";
	rl_outstream = cmd_raw_stdout();
	rl_attempted_completion_function = attempt_completion;
	rl_catch_signals = 0;
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, &old);
	if (tty && ctx->verbosity >= 0)
		fprintf(stderr,
		        "parlae shell: type a command without 'parlae', 'help' for the list, "
		        "'exit' or Ctrl-D to leave\n");
	while ((line = read_line(tty))) {
		struct words w = {0};

		interrupted = 0;
		if (split_words(line, &w, 0) < 0) {
			fprintf(stderr, "parlae: unterminated quote or too many words\n");
		} else if (w.n && (!strcmp(w.v[0], "exit") || !strcmp(w.v[0], "quit"))) {
			words_release(&w);
			free(line);
			break;
		} else if (w.n) {
			char *args[MAX_WORDS + 3];
			int nargs = line_argv(&w, args);

			if (tty && !cmd_line_has_option(nargs, args, carries_secret)) {
				add_history(line);
				if (hist)
					append_history(1, hist);
			}
			run_line(ctx, nargs, args);
		}
		words_release(&w);
		free(line);
	}
	if (tty && !line)
		fputc('\n', stderr);
	sigaction(SIGINT, &old, NULL);
	for (size_t i = 0; i < nmatches; i++)
		free(matches[i]);
	free(matches);
	matches = NULL;
	nmatches = 0;
	free(hist);
	rl_clear_history();
	return 0;
}
