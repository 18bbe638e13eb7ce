/*
 * Completion from the command table: the bash, zsh and fish scripts call
 * `parlae __complete WORD...`, and `parlae shell` calls cmd_complete in-process.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "../lib/account.h"
#include "../lib/buf.h"
#include "../lib/phone.h"
#include "../lib/banned.h"

static const char *const global_longs[] = {
    "--json",        "--quiet",  "--verbose", "--color=auto", "--color=always",
    "--color=never", "--config", "--profile", "--dry-run",    NULL};

/* Whether word is an option whose value is the next word ("--name X", "--profile P"). */
static int takes_value(const struct cmd *c, const char *word)
{
	static const char *const global_valued[] = {"--config", "--profile", "--color", NULL};

	if (strncmp(word, "--", 2) || strchr(word, '='))
		return 0;
	for (size_t i = 0; global_valued[i]; i++)
		if (!strcmp(word, global_valued[i]))
			return 1;
	for (const struct option *o = c ? c->options : NULL; o && o->name; o++)
		if (!strcmp(word + 2, o->name) && o->has_arg == required_argument)
			return 1;
	return 0;
}

struct sink {
	const char *prefix;
	void (*emit)(const char *, void *);
	void *arg;
};

static void offer(struct sink *s, const char *word)
{
	if (!strncmp(word, s->prefix, strlen(s->prefix)))
		s->emit(word, s->arg);
}

/* First words, or the second words of a group, each once (the table is sorted). */
static void offer_words(struct sink *s, const char *group)
{
	size_t glen = group ? strlen(group) : 0;
	char last[64] = "";

	for (size_t i = 0; i < ncommands; i++) {
		const char *name = commands[i].name;
		char word[64];

		if (group) {
			if (strncmp(name, group, glen) || name[glen] != ' ')
				continue;
			pl_strlcpy(word, name + glen + 1, sizeof(word));
			word[strcspn(word, " ")] = '\0';
		} else {
			pl_strlcpy(word, name, sizeof(word));
			word[strcspn(word, " ")] = '\0';
		}
		if (strcmp(word, last))
			offer(s, word);
		pl_strlcpy(last, word, sizeof(last));
	}
}

static void offer_options(struct sink *s, const struct cmd *c)
{
	char word[80];

	for (const struct option *o = c ? c->options : NULL; o && o->name; o++) {
		snprintf(word, sizeof(word), "--%s", o->name);
		offer(s, word);
	}
	for (size_t i = 0; global_longs[i]; i++)
		offer(s, global_longs[i]);
}

static int load_config(struct cmd_ctx *ctx)
{
	struct pl_err err = PL_ERR_INIT;

	if (!ctx->config_loaded) {
		if (pl_config_load(&ctx->cfg, ctx->config_file, ctx->profile, &err))
			return -1;
		ctx->config_loaded = 1;
	}
	return 0;
}

/* Account ids come from the database; completion stays silent if it cannot be reached. */
static void offer_accounts(struct cmd_ctx *ctx, struct sink *s)
{
	struct pl_account_list list;
	struct pl_err err = PL_ERR_INIT;

	if (load_config(ctx) || pl_account_list(&ctx->session, &list, &err))
		return;
	for (size_t i = 0; i < list.n; i++)
		offer(s, list.v[i].id);
	pl_account_list_release(&list);
}

/* The registered Vapi phone number ids, likewise. */
static void offer_phones(struct cmd_ctx *ctx, struct sink *s)
{
	struct pl_err err = PL_ERR_INIT;
	struct pl_phone *v;
	size_t n;

	if (load_config(ctx) || pl_phone_list(&ctx->session, NULL, &v, &n, &err))
		return;
	for (size_t i = 0; i < n; i++)
		offer(s, v[i].vapi_id);
	free(v);
}

void cmd_complete(struct cmd_ctx *ctx, int nwords, char **words, void (*emit)(const char *, void *),
                  void *arg)
{
	struct sink s = {nwords > 0 ? words[nwords - 1] : "", emit, arg};
	const char *pos[3] = {NULL, NULL, NULL};
	const struct cmd *c = NULL;
	char name[192] = "";
	int npos = 0;

	/* The command is the longest run of leading words that names one. */
	for (int i = 0; i < nwords - 1; i++) {
		if (words[i][0] == '-') {
			i += takes_value(c, words[i]); /* its value is not a command word */
			continue;
		}
		if (c || npos == 3)
			continue; /* an argument of the command */
		pos[npos++] = words[i];
		snprintf(name + strlen(name), sizeof(name) - strlen(name), "%s%s",
		         npos > 1 ? " " : "", words[i]);
		c = cmd_find(name);
	}
	if (s.prefix[0] == '-') {
		offer_options(&s, c);
	} else if (npos == 0) {
		offer_words(&s, NULL);
	} else if (!c) {
		offer_words(&s, name);
	} else if (c->args && !strcmp(c->args, "account")) {
		offer_accounts(ctx, &s);
	} else if (c->args && !strcmp(c->args, "phone")) {
		offer_phones(ctx, &s);
	} else if (c->args && !strcmp(c->args, "command")) {
		offer_words(&s, npos >= 2 ? pos[1] : NULL);
	}
}

static void print_line(const char *word, void *arg)
{
	(void)arg;
	puts(word);
}

/* parlae __complete WORD... : the words typed so far, the last one being completed. */
int cmd_complete_main(struct cmd_ctx *ctx, int argc, char **argv)
{
	cmd_complete(ctx, argc - 1, argv + 1, print_line, NULL);
	return 0;
}
