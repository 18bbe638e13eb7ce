#!/usr/bin/env bats
# parlae status (no account): integrations, database, secret store, account counts.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() { suite_setup; suite_migrate; parlae account add one >/dev/null; parlae account add two >/dev/null; }
setup() { setup_home; }

# Distinct values for every secret variable of the contract.
set_all_secrets() {
	export SIKKA_APP_ID=app-id-visible SIKKA_APP_KEY=sekrit-sikka-app-key-1f2e
	export PARLAE_STATE_SECRET=sekrit-state-secret-0123456789abcdef0123
	export PARLAE_MASTER_KEY=sekrit-master-key-aa55aa55aa55aa55aa55aa55
	export PARLAE_MASTER_KEY_NEW=sekrit-master-key-new-77
	export AWS_SECRET_ACCESS_KEY=sekrit-aws-secret-9d8c AWS_SESSION_TOKEN=sekrit-aws-session-7b6a
	export VAPI_WEBHOOK_SECRET=sekrit-vapi-webhook-5e4d VAPI_API_KEY=sekrit-vapi-api-key-3c2b
	export OPENAI_API_KEY=sekrit-openai-1a09 STRIPE_SECRET_KEY=sekrit-stripe-f8e7
	export TWILIO_ACCOUNT_SID=AC123 TWILIO_AUTH_TOKEN=sekrit-twilio-token-d6c5 TWILIO_FROM_NUMBER=+15550001111
}
secret_values() { env | sed -n 's/^[A-Z_]*=\(sekrit-.*\)$/\1/p'; }

@test "status --json reports integrations, database, store and accounts" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y TWILIO_ACCOUNT_SID=AC1 TWILIO_AUTH_TOKEN=t TWILIO_FROM_NUMBER=+15550001111
	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '.integrations' <<<"$output")" '{"sikka":true,"vapi":false,"twilio":true,"openai":false,"stripe":false}'
	assert_equal "$(jq -c '.database | [.reachable, .schemaVersion, .latestSchemaVersion]' <<<"$output")" '[true,4,4]'
	assert_equal "$(jq -c '.secretStore | [.backend, .reachable, .location]' <<<"$output")" "[\"file\",true,\"$HOME/.local/share/parlae/vault\"]"
	assert_equal "$(jq -c '.accounts' <<<"$output")" '{"connected":0,"connecting":0,"pending":2,"failed":0}'
}

@test "accounts are counted by their integration's status" {
	sql "INSERT INTO pms_integrations (account_id, provider, status, secret_ref) VALUES ('one', 'SIKKA', 'ACTIVE', 'parlae/pms/sikka/one')"
	run --separate-stderr parlae status --json
	assert_equal "$(jq -c '.accounts' <<<"$output")" '{"connected":1,"connecting":0,"pending":1,"failed":0}'
	sql "UPDATE pms_integrations SET status = 'ERROR' WHERE account_id = 'one'"
	run --separate-stderr parlae status --json
	assert_equal "$(jq -c '.accounts' <<<"$output")" '{"connected":0,"connecting":0,"pending":1,"failed":1}'
}

@test "status never prints the value of a secret variable, even with -vv" {
	set_all_secrets
	run parlae status --json -vv
	assert_success
	refute_secrets_in "$output" $(secret_values)
	run parlae status -vv
	refute_secrets_in "$output" $(secret_values)
	assert_equal "$(jq -c '.integrations' <<<"$(parlae status --json)")" '{"sikka":true,"vapi":true,"twilio":true,"openai":true,"stripe":true}'
}

@test "a password in the database URL is masked in -vv traces" {
	url="postgresql://parlae:sekrit-db-pass-44@localhost:1/x?host=$PL_PG_SOCK&connect_timeout=1"
	PARLAE_DATABASE_URL=$url run parlae status -vv
	refute_secrets_in "$output" sekrit-db-pass-44
	assert_output --partial "trace: sql: connect 'postgresql://parlae:***@localhost:1/x"
}

@test "status with the database down reports it and still exits 0" {
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.database | [.reachable, .schemaVersion]' <<<"$output")" '[false,0]'
	assert_regex "$(jq -r '.database.error' <<<"$output")" '^cannot connect to the database'
}

@test "status --check is healthy when the database, schema, store and Sikka are fine" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y
	run --separate-stderr parlae status --check
	assert_success
	assert_line --regexp '^database +reachable, schema version 4 of 4$'
}

@test "status --check exits 1 without the Sikka app credentials" {
	run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_line --regexp '^integrations +sikka no'
}

@test "status --check exits 1 when the database is down" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae status --check
	assert_equal "$status" 1
}

@test "status --check exits 1 when the schema is behind" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y
	PARLAE_DATABASE_URL=$(pg_new_database t_status_empty) run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_line --regexp "schema version 0 of 4 \(run 'parlae db migrate'\)"
}

@test "a secret store directory open to others is reported unusable" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y
	mkdir -m 755 "$BATS_TEST_TMPDIR/vault"
	PARLAE_SECRET_STORE=file:$BATS_TEST_TMPDIR/vault run --separate-stderr parlae status --check --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '.secretStore | [.backend, .reachable]' <<<"$output")" '["file",false]'
	assert_equal "$(jq -r '.secretStore.error' <<<"$output")" "secret store $BATS_TEST_TMPDIR/vault has mode 0755, open to other users"
}

@test "a 0700 secret store directory is usable" {
	mkdir -m 700 "$BATS_TEST_TMPDIR/vault"
	PARLAE_SECRET_STORE=file:$BATS_TEST_TMPDIR/vault run --separate-stderr parlae status --json
	assert_equal "$(jq -c '.secretStore.reachable' <<<"$output")" 'true'
}

@test "a malformed PARLAE_SECRET_STORE is reported" {
	PARLAE_SECRET_STORE=vault run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.secretStore | [.backend, .reachable]' <<<"$output")" '[null,false]'
	assert_regex "$(jq -r '.secretStore.error' <<<"$output")" "^PARLAE_SECRET_STORE='vault' is not file:"
}

@test "status takes no positional argument yet" {
	run --separate-stderr parlae status a b
	assert_equal "$status" 2
}
