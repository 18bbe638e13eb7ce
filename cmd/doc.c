/*
 * What `parlae COMMAND -h` says beyond the usage line: each option with its value, meaning and
 * default, and a few examples. The command table points here; tests/0780-help.bats holds each
 * option's default to the one its man page gives, and every option to the table.
 */
#include "cmd.h"
#include "../lib/banned.h"

static const struct cmd_optdoc opts_doc_account_add[] = {
    {"name", "NAME", "the practice's display name, shown by 'account list'", NULL},
    {"email", "EMAIL", "the contact address marketplace registrations are matched by", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_account_add = {
    opts_doc_account_add,
    {"parlae account add happy-dental --name 'Happy Dental'",
     "parlae account add happy-dental --email frontdesk@happy.example",
     "parlae account add happy-dental --dry-run", NULL},
};

const struct cmd_doc doc_account_list = {
    NULL,
    {"parlae account list", "parlae account list --json | jq -r '.[].id'", NULL},
};

static const struct cmd_optdoc opts_doc_audit_checkpoint[] = {
    {"output", "FILE", "the checkpoint file to verify from and append to",
     "$PARLAE_AUDIT_CHECKPOINTS"},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_audit_checkpoint = {
    opts_doc_audit_checkpoint,
    {"parlae audit checkpoint --output /var/lib/parlae-checkpoints/audit.jsonl",
     "parlae audit checkpoint --dry-run", NULL},
};

static const struct cmd_optdoc opts_doc_audit_tail[] = {
    {"lines", "N", "the last N events, or the first N after the cursor", "20"},
    {"follow", NULL, "follow new events as they commit, until interrupted", NULL},
    {"account", "ACCOUNT", "only the events of this account", NULL},
    {"action", "GLOB", "only the actions that match GLOB: 'sikka.*', '*.add'", NULL},
    {"since", "TIME", "only the events since TIME: ISO 8601, or a duration ago (2h)", NULL},
    {"cursor-file", "FILE", "resume after the event FILE names; record the last one there", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_audit_tail = {
    opts_doc_audit_tail,
    {"parlae audit tail -n 100 --account happy-dental", "parlae audit tail -f --action 'sikka.*'",
     "parlae audit tail --since 2h --json | jq -r .action"},
};

static const struct cmd_optdoc opts_doc_audit_verify[] = {
    {"checkpoints", "FILE", "hold the chain to the signed checkpoints in FILE", NULL},
    {"public-key", "FILE", "the Ed25519 public key (PEM) that signed the checkpoints", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_audit_verify = {
    opts_doc_audit_verify,
    {"parlae audit verify || echo 'the audit log was tampered with' >&2",
     "parlae audit verify --checkpoints audit.jsonl --public-key checkpoint.pub", NULL},
};

const struct cmd_doc doc_db_migrate = {
    NULL,
    {"parlae db migrate --dry-run", "parlae db migrate", NULL},
};

const struct cmd_doc doc_db_status = {
    NULL,
    {"parlae db status", "parlae db status --json | jq .pending", NULL},
};

const struct cmd_doc doc_help = {
    NULL,
    {"parlae help status", "parlae help exit-codes",
     "parlae help --json | jq -r '.commands[].usage'"},
};

const struct cmd_doc doc_pms_assign = {
    NULL,
    {"parlae pms assign PR-5001 happy-dental", "parlae pms assign PR-5001 happy-dental --json",
     NULL},
};

static const struct cmd_optdoc opts_doc_pms_cancel[] = {
    {"payload", "FILE|-", "the cancellation's body as Sikka sent it; - reads stdin", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_pms_cancel = {
    opts_doc_pms_cancel,
    {"parlae pms cancel --payload cancellation.json", "parlae pms cancel --payload - <body.json",
     NULL},
};

const struct cmd_doc doc_pms_disconnect = {
    NULL,
    {"parlae pms disconnect happy-dental", "parlae pms disconnect happy-dental --dry-run", NULL},
};

static const struct cmd_optdoc opts_doc_pms_purchase[] = {
    {"payload", "FILE|-", "the registration's body as Sikka sent it; - reads stdin", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_pms_purchase = {
    opts_doc_pms_purchase,
    {"parlae pms purchase --payload registration.json",
     "parlae pms purchase --payload - <body.json", NULL},
};

static const struct cmd_optdoc opts_doc_pms_registrations[] = {
    {"pending", NULL, "only those waiting for an operator: pending, unmatched, malformed", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_pms_registrations = {
    opts_doc_pms_registrations,
    {"parlae pms registrations", "parlae pms registrations --pending --json", NULL},
};

static const struct cmd_optdoc opts_doc_pms_setup[] = {
    {"provider", "PROVIDER", "the practice management system's provider, the only one", "sikka"},
    {"timezone", "TZ", "the practice's IANA time zone, e.g. America/New_York", "UTC"},
    {"hours", "SPEC", "the office hours: 'mon-fri 08:00-12:00,13:00-17:00; sat 09:00-13:00'",
     "mon-fri 08:00-17:00"},
    {"practice-id", "ID", "the location to onboard, in an office with several", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_pms_setup = {
    opts_doc_pms_setup,
    {"parlae pms setup happy-dental --timezone America/New_York",
     "parlae pms setup happy-dental --hours 'mon-fri 09:00-17:00; sat 09:00-13:00'", NULL},
};

const struct cmd_doc doc_secrets_list = {
    NULL,
    {"parlae secrets list", "parlae secrets list --json | jq -r '.[].name'", NULL},
};

static const struct cmd_optdoc opts_doc_secrets_rotate[] = {
    {"all", NULL, "every account whose Sikka integration is connected", NULL},
    {"within", "DURATION", "refresh the keys that expire sooner than this from now", "2h"},
    {"force", NULL, "refresh every account given or connected, due or not", NULL},
    {"concurrency", "N", "how many accounts are in flight at once, 1 to 256", "16"},
    {"master-key", NULL, "re-encrypt the file store under PARLAE_MASTER_KEY_NEW instead", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_secrets_rotate = {
    opts_doc_secrets_rotate,
    {"parlae secrets rotate --all", "parlae secrets rotate happy-dental --force",
     "parlae secrets rotate --all --within 6h --dry-run"},
};

const struct cmd_doc doc_shell = {
    NULL,
    {"parlae shell", "parlae --profile staging shell", NULL},
};

static const struct cmd_optdoc opts_doc_sikka_callback[] = {
    {"url", "CALLBACK_URL|-",
     "the redirect the practice's browser landed on; - reads it (prompting on a terminal)", NULL},
    {"code", "CODE", "the redirect's code, with --state", NULL},
    {"state", "STATE", "the redirect's state", NULL},
    {"error", "ERROR", "the redirect's error (the practice said no), with --state", NULL},
    {"practice-id", "ID", "the location to onboard, in an office with several", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_sikka_callback = {
    opts_doc_sikka_callback,
    {"parlae sikka callback --url -", "parlae sikka callback --url - <redirect.txt", NULL},
};

static const struct cmd_optdoc opts_doc_sikka_oauth_url[] = {
    {"redirect-uri", "URL", "where Sikka sends the practice's browser back to",
     "$APP_BASE_URL/pms/sikka/oauth/callback"},
    {"ttl", "SECONDS", "how long the state is valid, 1 to 86400", "600"},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_sikka_oauth_url = {
    opts_doc_sikka_oauth_url,
    {"parlae sikka oauth-url happy-dental",
     "parlae sikka oauth-url happy-dental --ttl 3600 --json | jq -r .url", NULL},
};

static const struct cmd_optdoc opts_doc_status[] = {
    {"check", NULL, "exit 1 unless all is healthy (with ACCOUNT: connected)", NULL},
    {"wait", "SECONDS",
     "with ACCOUNT: wait until it is connected or failed, at most SECONDS, 0 to 86400", "60"},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_status = {
    opts_doc_status,
    {"parlae status", "parlae status --check >/dev/null || echo 'not healthy' >&2",
     "parlae status happy-dental --wait 900"},
};

static const struct cmd_optdoc opts_doc_vapi_phone_add[] = {
    {"vapi-id", "ID", "the number's id at Vapi (its phoneNumberId)", NULL},
    {"number", "E164", "the number callers dial", NULL},
    {"staff-forward", "E164", "the practice's staff line, where transfers go", NULL},
    {"transfer", NULL, "enable transfers to the staff line", NULL},
    {"no-transfer", NULL, "disable transfers (a re-add keeps the setting otherwise)", NULL},
    {"move", NULL, "take the id from the account it is registered to", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_vapi_phone_add = {
    opts_doc_vapi_phone_add,
    {"parlae vapi phone add happy-dental --vapi-id pn-happy-dental \\\n"
     "    --number +15550001000 --staff-forward +15550002000 --transfer",
     NULL},
};

static const struct cmd_optdoc opts_doc_vapi_phone_list[] = {
    {"account", "ACCOUNT", "only this account's numbers", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_vapi_phone_list = {
    opts_doc_vapi_phone_list,
    {"parlae vapi phone list", "parlae vapi phone list --account happy-dental --json", NULL},
};

static const struct cmd_optdoc opts_doc_vapi_phone_remove[] = {
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_vapi_phone_remove = {
    opts_doc_vapi_phone_remove,
    {"parlae vapi phone remove pn-happy-dental",
     "parlae vapi phone remove pn-happy-dental --dry-run", NULL},
};

static const struct cmd_optdoc opts_doc_vapi_replay[] = {
    {"target", "URL", "send to this backend instead of running the handlers here", NULL},
    {"auth", "secret|hmac|bearer", "how a --target request is authenticated", "secret"},
    {"concurrency", "N", "requests in flight to a --target, 1 to 256", "8"},
    {"expect-dir", "DIR", "compare each response with DIR/NAME.response.json: exit 1 if any differ",
     NULL},
    {"update-expected", NULL, "write the responses into the --expect-dir instead", NULL},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_vapi_replay = {
    opts_doc_vapi_replay,
    {"parlae vapi replay recordings/2026-11-30/",
     "parlae vapi replay recordings/ --target https://staging.example/api/vapi \\\n"
     "    --auth hmac --concurrency 16",
     "parlae vapi replay day/ --expect-dir day/", NULL},
};

static const struct cmd_optdoc opts_doc_vapi_listen[] = {
    {"port", "N", "the port to listen on; 0 picks a free one and prints it", "8787"},
    {"bind", "ADDR", "the address to listen on", "127.0.0.1"},
    {"auth", "secret|hmac|bearer|any", "how each request must prove it comes from Vapi", "any"},
    {"forward-to", "URL", "relay each request to this backend and its answer back", NULL},
    {"record", "DIR", "save each exchange there, as vapi replay --expect-dir reads it", NULL},
    {"redact", NULL, "pseudonymise patients' data in what is recorded", "on"},
    {"no-redact", NULL, "record raw payloads (said on stderr at start)", NULL},
    {"threads", "N", "requests run at once; they share at most 8 database connections", "32"},
    {"max-connections", "N", "connections open at once, idle or not; more are closed at once",
     "256"},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_vapi_listen = {
    opts_doc_vapi_listen,
    {"parlae vapi listen", "parlae vapi listen --auth hmac --record corpus/ --json",
     "parlae vapi listen --forward-to https://staging.example/api/vapi", NULL},
};

static const struct cmd_optdoc opts_doc_vapi_tool_invoke[] = {
    {"account", "ACCOUNT", "the account whose data the call uses", NULL},
    {"args", "JSON|@FILE|-", "the call's arguments: inline, from FILE, or standard input", NULL},
    {"call-id", "ID", "the call id its log is kept under; without it, a new one", NULL},
    {"caller", "E164", "the number the caller calls from (none: an operator look-up)", NULL},
    {"payload", "FILE|-", "a recorded Vapi server message, run whole", NULL},
    {"target", "URL", "send the payload to this backend instead", NULL},
    {"auth", "secret|hmac|bearer", "how a --target request is authenticated", "secret"},
    {"expect", "FILE", "compare the reply with a saved one: exit 1 if they differ", NULL},
    {"as-of", "now|payload", "the handlers' now: the clock, or the payload's timestamp", "now"},
    {NULL, NULL, NULL, NULL},
};
const struct cmd_doc doc_vapi_tool_invoke = {
    opts_doc_vapi_tool_invoke,
    {"parlae vapi tool invoke checkAvailability --account happy-dental \\\n"
     "    --args '{\"date\":\"2026-12-01\"}'",
     "parlae vapi tool invoke getPatientInfo --account happy-dental \\\n"
     "    --caller +15551234567 --args @ana.json",
     "parlae vapi tool invoke --payload call.json --as-of payload \\\n"
     "    --expect reply.json"},
};

const struct cmd_doc doc_version = {
    NULL,
    {"parlae version", "parlae version --json | jq -r .version", NULL},
};
