/* parlae status [--check] */
#include "cmd.h"
#include "../lib/status.h"
#include "../lib/banned.h"

const struct option opts_status[] = {
	{"check", no_argument, NULL, 'c'},
	{NULL, 0, NULL, 0},
};

static json_t *system_json(const struct pl_status_system *st)
{
	return json_pack("{s:{s:b, s:b, s:b, s:b, s:b}, s:{s:b, s:i, s:i, s:s?},"
			 " s:{s:s?, s:b, s:s?, s:s?}, s:{s:I, s:I, s:I, s:I}}",
			 "integrations", "sikka", st->integrations.sikka, "vapi", st->integrations.vapi,
			 "twilio", st->integrations.twilio, "openai", st->integrations.openai, "stripe",
			 st->integrations.stripe,
			 "database", "reachable", st->db_reachable, "schemaVersion", st->schema_version,
			 "latestSchemaVersion", st->schema_latest, "error",
			 st->db_reachable ? NULL : st->db_err.msg,
			 "secretStore", "backend", st->store_backend, "reachable", st->store_usable,
			 "location", st->store_backend ? st->store_location : NULL, "error",
			 st->store_usable ? NULL : st->store_err.msg,
			 "accounts", "connected", (json_int_t)st->accounts.connected, "connecting",
			 (json_int_t)st->accounts.connecting, "pending", (json_int_t)st->accounts.pending,
			 "failed", (json_int_t)st->accounts.failed);
}

static const char *yes(int b)
{
	return b ? "yes" : "no";
}

static void print_system(const struct pl_status_system *st)
{
	printf("integrations  sikka %s, vapi %s, twilio %s, openai %s, stripe %s\n",
	       yes(st->integrations.sikka), yes(st->integrations.vapi), yes(st->integrations.twilio),
	       yes(st->integrations.openai), yes(st->integrations.stripe));
	if (st->db_reachable)
		printf("database      reachable, schema version %d of %d%s\n", st->schema_version,
		       st->schema_latest,
		       st->schema_version < st->schema_latest ? " (run 'parlae db migrate')" : "");
	else
		printf("database      unreachable: %s\n", st->db_err.msg);
	if (!st->store_backend)
		printf("secret store  misconfigured: %s\n", st->store_err.msg);
	else if (st->store_usable)
		printf("secret store  %s:%s, usable\n", st->store_backend, st->store_location);
	else
		printf("secret store  %s:%s, not usable: %s\n", st->store_backend, st->store_location,
		       st->store_err.msg);
	printf("accounts      %ld connected, %ld connecting, %ld pending, %ld failed\n",
	       st->accounts.connected, st->accounts.connecting, st->accounts.pending,
	       st->accounts.failed);
}

int cmd_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pl_status_system st;
	int c, check = 0;

	while ((c = cmd_getopt(ctx, argc, argv)) != -1) {
		switch (c) {
		case 'c':
			check = 1;
			break;
		default:
			return PL_EUSAGE;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	pl_status_system(&ctx->session, &st);
	if (ctx->json)
		cmd_print_json(ctx, system_json(&st));
	else
		print_system(&st);
	return check && !pl_status_system_healthy(&st) ? PL_ENO : 0;
}
