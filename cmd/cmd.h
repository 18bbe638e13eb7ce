/*
 * What the command files share: the command table, the invocation context, option parsing
 * that also accepts the global options after the command, and the printers (data on stdout,
 * everything else on stderr).
 */
#ifndef PL_CMD_H
#define PL_CMD_H

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

#include "../lib/config.h"
#include "../lib/err.h"
#include "../lib/session.h"

enum cmd_needs {
	NEEDS_CONFIG = 1 << 0, /* read the config file before running */
	NEEDS_DB = 1 << 1,     /* uses the database, connected on first use after option parsing,
	                          so that a usage error is reported as one even when it is down */
};

struct cmd_ctx;

/* The help of one long option: -h and `parlae help --json` print these, man pages agree. */
struct cmd_optdoc {
	const char *name;    /* as in the option table, without "--" */
	const char *arg;     /* its value ("SECONDS"), NULL for a flag */
	const char *meaning; /* a short phrase */
	const char *dflt;    /* the default, as the man page writes it; NULL for none */
};

/* What -h shows beyond the usage line and the summary. */
struct cmd_doc {
	const struct cmd_optdoc *options; /* one per long option of the command, {0}-terminated */
	const char *examples[4];          /* one to three command lines, NULL-terminated */
};

struct cmd {
	const char *name; /* "status", or "db migrate" for a subcommand */
	int (*fn)(struct cmd_ctx *ctx, int argc, char **argv);
	unsigned needs;
	const char *usage;            /* the synopsis, exactly as in the man page */
	const char *summary;          /* one line */
	const char *shortopts;        /* getopt short options, "" for none */
	const struct option *options; /* long options, {0}-terminated; NULL for none */
	const char *args; /* what positional words complete to: "account", "command", "phone"
	                     (a registered Vapi phone number id) or NULL */
	const struct cmd_doc *doc; /* options and examples for -h; NULL for none */
};

/* Whether name is the first word of some two-word command ("db"). */
int cmd_is_group(const char *name);

extern const struct cmd commands[];
extern const size_t ncommands;

struct cmd_ctx {
	struct pl_config cfg;
	struct pl_session session;
	const struct cmd *cmd; /* the command running */
	const char *config_file, *profile;
	int json;
	int verbosity; /* -1 quiet, 0 normal, 1 -v, 2 -vv */
	int color;     /* 0 never, 1 always, -1 auto */
	int dry_run;
	int in_shell;
	int config_loaded;
};

#define CMD_EXIT_HELP (-2)

void cmd_ctx_init(struct cmd_ctx *ctx);
void cmd_ctx_release(struct cmd_ctx *ctx);

/* Make the library follow ctx's -v level and --dry-run. */
void cmd_apply_settings(struct cmd_ctx *ctx);

/* parlae's whole command line: global options, then a command; returns the exit status. */
int cmd_main(struct cmd_ctx *ctx, int argc, char **argv);

/* Run argv[0..] as a command (argv[0] is the command name); returns its exit status. */
int cmd_run(struct cmd_ctx *ctx, int argc, char **argv);

/*
 * getopt_long over the running command's options (from its table entry) plus the global ones,
 * which the dispatcher has already applied and which are skipped here. Returns the option's
 * value, -1 at the end, or '?' after printing a usage error.
 */
int cmd_getopt(struct cmd_ctx *ctx, int argc, char **argv);

/*
 * Whether a command line (argv as cmd_main takes it) gives its command a long option for which
 * pick(name, value) is non-zero, judged by getopt_long with the command's own options, so an
 * abbreviation or a --name=value form counts as the full name. An option the command refuses
 * (unknown, ambiguous: "--c" for --caller or --call-id) and a line naming no command count too:
 * nothing tells what they hold. Prints nothing.
 */
int cmd_line_has_option(int argc, char **argv, int (*pick)(const char *name, const char *value));

/* For commands that take no options and no arguments: 0, or PL_EUSAGE after a message. */
int cmd_parse_none(struct cmd_ctx *ctx, int argc, char **argv);

/* Usage error: message and the command's usage line on stderr; returns PL_EUSAGE. */
int cmd_usage_error(struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print err (JSON with --json) on stderr; returns err->code. */
int cmd_fail(struct cmd_ctx *ctx, const struct pl_err *err);

/* A warning or note on stderr, unless --quiet. */
void cmd_note(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read FILE, or stdin for "-", whole, into out (at most cap bytes: more is PL_EBADINPUT). */
struct pl_buf;
int cmd_read_input(const char *path, size_t cap, struct pl_buf *out, struct pl_err *err);

/* Print a JSON document on stdout and release it (steals the reference). */
void cmd_print_json(struct cmd_ctx *ctx, json_t *doc);

/* A whole number in [min, max] ("16"); -1 for anything else ("16x", "", "1e3"). */
int cmd_parse_number(const char *s, long min, long max, long *out);

/* Draw a progress bar on stderr ("\rLABEL [####   ] done/total"); a newline when done. */
void cmd_progress(const char *label, size_t done, size_t total);

/*
 * The output layer. cmd_output_init replaces stdout and stderr by streams that show control
 * characters and bytes that are not UTF-8 as text ("\x1b", "\u009b", "\xff"), whoever
 * prints: nothing from outside drives the terminal. Kept as they are: newline and tab, and on
 * stderr carriage return (progress bars). cmd_escape does the same to a string.
 */
#define CMD_KEEP_NL  1u
#define CMD_KEEP_TAB 2u
#define CMD_KEEP_CR  4u
void cmd_output_init(void);
struct pl_buf;
void cmd_escape(struct pl_buf *b, const char *s, size_t len, unsigned keep);

/* Write parlae's own escape sequence (a colour) to stdout or stderr, past the filter. */
void cmd_color(FILE *f, const char *sgr);

/* stdout as the descriptor is, unfiltered: for readline, which draws with escape sequences. */
FILE *cmd_raw_stdout(void);

/* The exit status of a reader that closed the pipe, as a SIGPIPE would have it. */
#define CMD_EXIT_PIPE 141

/*
 * Output errors are errors. cmd_flush_stdout: 0, or after a failed write to stdout the
 * message "cannot write to standard output" and PL_EIO (a closed pipe ends the process
 * quietly, as SIGPIPE would). cmd_output_error: the same without flushing. cmd_finish_output,
 * at exit: r, or PL_EIO when r is 0 and stdout could not be written.
 */
int cmd_flush_stdout(struct cmd_ctx *ctx);
int cmd_output_error(struct cmd_ctx *ctx);
int cmd_finish_output(struct cmd_ctx *ctx, int r);

/* Whether stdout is a terminal; whether colour is on for a stream. */
int cmd_stdout_tty(void);
int cmd_use_color(const struct cmd_ctx *ctx, FILE *f);

/* A table: a header row then data rows; on a TTY aligned with a header, else tab-separated. */
struct cmd_table {
	size_t ncols, nrows, alloc;
	char **cells; /* nrows * ncols, owned */
};
void cmd_table_init(struct cmd_table *t, size_t ncols, ...);
void cmd_table_row(struct cmd_table *t, ...); /* ncols strings; NULL prints as "-" */
void cmd_table_print(struct cmd_ctx *ctx, struct cmd_table *t);
void cmd_table_release(struct cmd_table *t);

/* The command table, for completion and help. */
const struct cmd *cmd_find(const char *name);
/* Candidates for completing words[nwords-1] after words[0..nwords-2]; one per line on out. */
void cmd_complete(struct cmd_ctx *ctx, int nwords, char **words, void (*emit)(const char *, void *),
                  void *arg);
/* Print usage for a command or group name; -1 if there is no such command. */
int cmd_print_help(struct cmd_ctx *ctx, const char *name, FILE *out);

/* Commands. */
int cmd_help(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_version(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_db_migrate(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_db_status(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_account_add(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_account_list(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_audit_tail(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_audit_verify(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_audit_checkpoint(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_status(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_shell(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_pms_setup(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_pms_purchase(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_pms_cancel(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_pms_assign(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_pms_registrations(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_pms_disconnect(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_sikka_oauth_url(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_sikka_callback(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_vapi_phone_add(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_vapi_phone_list(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_vapi_phone_remove(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_vapi_tool_invoke(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_vapi_replay(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_vapi_listen(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_secrets_rotate(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_secrets_list(struct cmd_ctx *ctx, int argc, char **argv);
int cmd_complete_main(struct cmd_ctx *ctx, int argc, char **argv);

extern const struct option opts_account_add[];
extern const struct option opts_audit_tail[];
extern const struct option opts_audit_verify[];
extern const struct option opts_audit_checkpoint[];
extern const struct option opts_status[];
extern const struct option opts_pms_setup[];
extern const struct option opts_pms_payload[];
extern const struct option opts_pms_registrations[];
extern const struct option opts_sikka_oauth_url[];
extern const struct option opts_sikka_callback[];
extern const struct option opts_vapi_phone_add[];
extern const struct option opts_vapi_phone_list[];
extern const struct option opts_vapi_tool_invoke[];
extern const struct option opts_vapi_replay[];
extern const struct option opts_vapi_listen[];
extern const struct option opts_secrets_rotate[];

/* The help of each command (cmd/doc.c). */
extern const struct cmd_doc doc_account_add;
extern const struct cmd_doc doc_account_list;
extern const struct cmd_doc doc_audit_checkpoint;
extern const struct cmd_doc doc_audit_tail;
extern const struct cmd_doc doc_audit_verify;
extern const struct cmd_doc doc_db_migrate;
extern const struct cmd_doc doc_db_status;
extern const struct cmd_doc doc_help;
extern const struct cmd_doc doc_pms_assign;
extern const struct cmd_doc doc_pms_cancel;
extern const struct cmd_doc doc_pms_disconnect;
extern const struct cmd_doc doc_pms_purchase;
extern const struct cmd_doc doc_pms_registrations;
extern const struct cmd_doc doc_pms_setup;
extern const struct cmd_doc doc_secrets_list;
extern const struct cmd_doc doc_secrets_rotate;
extern const struct cmd_doc doc_shell;
extern const struct cmd_doc doc_sikka_callback;
extern const struct cmd_doc doc_sikka_oauth_url;
extern const struct cmd_doc doc_status;
extern const struct cmd_doc doc_vapi_phone_add;
extern const struct cmd_doc doc_vapi_phone_list;
extern const struct cmd_doc doc_vapi_phone_remove;
extern const struct cmd_doc doc_vapi_replay;
extern const struct cmd_doc doc_vapi_listen;
extern const struct cmd_doc doc_vapi_tool_invoke;
extern const struct cmd_doc doc_version;

#endif
