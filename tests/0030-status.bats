#!/usr/bin/env bats
# parlae status (no account): integrations, database, secret store, account counts.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/store

KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
OTHER_KEY=ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

setup_file() { build_store_tool; suite_setup; suite_migrate; parlae account add one >/dev/null; parlae account add two >/dev/null; }
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
	assert_equal "$(jq -c '.database | [.reachable, .schemaVersion, .latestSchemaVersion]' <<<"$output")" '[true,8,8]'
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

@test "every libpq form of a password in PARLAE_DATABASE_URL is masked in -vv traces" {
	s=$PL_PG_SOCK tab=$'\t'
	while IFS='|' read -r url want; do
		PARLAE_DATABASE_URL=$url run --separate-stderr parlae status -vv
		refute_secrets_in "$stderr$output" sekrit-db pass-44 sekrit-ssl
		assert_equal "$(grep -F "trace: sql: connect " <<<"$stderr" | head -n 1)" "trace: sql: connect '$want'"
	done <<-EOF
		host=$s port=1 user=parlae password = sekrit-db-pass-44 dbname=x|host=$s port=1 user=parlae password = *** dbname=x
		host=$s port=1 user=parlae${tab}password=sekrit-db-pass-44 dbname=x|host=$s port=1 user=parlae\x09password=*** dbname=x
		host=$s port=1 password='sekrit-db\' pass-44' dbname=x|host=$s port=1 password=*** dbname=x
		host=$s port=1 sslpassword=sekrit-ssl dbname='password=sekrit-db-pass-44'|host=$s port=1 sslpassword=*** dbname='password=***'
		postgresql://parlae:sekrit-db-pass-44@localhost:1/x?host=$s|postgresql://parlae:***@localhost:1/x?host=$s
		postgresql://parlae@localhost:1/x?password=sekrit-db-pass-44&host=$s|postgresql://parlae@localhost:1/x?password=***&host=$s
		postgres://localhost:1/x?host=$s&password=sekrit-db-pass-44|postgres://localhost:1/x?host=$s&password=***
		postgres://localhost:1/x?host=$s&sslmode&password=sekrit-db-pass-44|postgres://localhost:1/x?host=$s&sslmode&password=***
	EOF
}

@test "status with the database down reports it and still exits 0" {
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.database | [.reachable, .schemaVersion]' <<<"$output")" '[false,0]'
	assert_regex "$(jq -r '.database.error' <<<"$output")" '^cannot connect to the database'
	# On a terminal's report, no account counts are claimed without the database.
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae status
	assert_success
	assert_line 'accounts      unknown (the database is unreachable)'
	refute_line --partial '0 connected'
}

@test "status --check is healthy when the database, schema, store and Sikka are fine" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y PARLAE_MASTER_KEY=$KEY
	run --separate-stderr parlae status --check
	assert_success
	assert_equal "$stderr" ""
	assert_line --regexp '^database +reachable, schema version 8 of 8$'
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
	assert_line --regexp "schema version 0 of 8 \(run 'parlae db migrate'\)"
}

@test "a secret store directory open to others is reported unusable" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y PARLAE_MASTER_KEY=$KEY
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

# --- the secret store's key ----------------------------------------------------------------------

# store_json: the secretStore object of status --json, without its location.
store_json() { parlae status --json | jq -c '.secretStore | del(.location)'; }

@test "status --check fails without a master key, naming it; an empty store opens under any key" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y
	run --separate-stderr parlae status --check --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '.secretStore | [.reachable, .keyOpens, .rekeyUnfinished, .error]' <<<"$output")" \
		'[true,false,false,"PARLAE_MASTER_KEY is not set: it is needed to read or write the secret store"]'
	assert_equal "$stderr" "parlae: status --check: the secret store does not open with the master key: PARLAE_MASTER_KEY is not set: it is needed to read or write the secret store"
	export PARLAE_MASTER_KEY=$KEY
	assert_equal "$(store_json)" '{"backend":"file","reachable":true,"error":null,"keyOpens":true,"rekeyUnfinished":false}'
	mkdir -p -m 700 "$HOME/.local/share/parlae/vault"
	assert_equal "$(PARLAE_MASTER_KEY=$OTHER_KEY store_json)" '{"backend":"file","reachable":true,"error":null,"keyOpens":true,"rekeyUnfinished":false}'
}

@test "status --check fails when the master key does not open the store, and passes with the one that does" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y PARLAE_MASTER_KEY=$KEY
	store_tool put a <<<"value" >/dev/null
	run --separate-stderr parlae status --check
	assert_success
	assert_line --regexp "^secret store  file:$HOME/.local/share/parlae/vault, usable, the master key opens it$"
	PARLAE_MASTER_KEY=$OTHER_KEY run --separate-stderr parlae status --check --json
	assert_equal "$status" 1
	why="the key does not open the store (its key-check record)"
	assert_equal "$(jq -c '.secretStore | [.reachable, .keyOpens, .error]' <<<"$output")" "[true,false,\"$why\"]"
	assert_equal "$stderr" "parlae: status --check: the secret store does not open with the master key: $why"
	PARLAE_MASTER_KEY=$OTHER_KEY run --separate-stderr parlae status
	assert_success
	assert_line "secret store  file:$HOME/.local/share/parlae/vault, reachable, but the master key does not open it: $why"
	# A store from before the key-check record: one of its secrets must open.
	rm "$HOME/.local/share/parlae/vault/.key-check"
	assert_equal "$(store_json | jq -c '[.keyOpens, .error]')" '[true,null]'
	assert_equal "$(PARLAE_MASTER_KEY=$OTHER_KEY store_json | jq -c '[.keyOpens, .error]')" '[false,"the key does not open the store (secret file a.cur)"]'
}

@test "status --check fails on a master key file others may read" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y
	echo "$KEY" >"$BATS_TEST_TMPDIR/key"
	chmod 644 "$BATS_TEST_TMPDIR/key"
	PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/key run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_equal "$stderr" "parlae: status --check: the secret store does not open with the master key: PARLAE_MASTER_KEY_FILE $BATS_TEST_TMPDIR/key has mode 0644: others may read the key"
	chmod 600 "$BATS_TEST_TMPDIR/key"
	PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/key run --separate-stderr parlae status --check
	assert_success
}

@test "status --check fails when the store or one of its files belongs to another user" {
	export SIKKA_APP_ID=x SIKKA_APP_KEY=y PARLAE_MASTER_KEY=$KEY
	vault=$HOME/.local/share/parlae/vault
	store_tool put a <<<"value" >/dev/null
	chown 65534 "$vault/a.cur"
	run --separate-stderr parlae status --check --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '.secretStore | [.reachable, .keyOpens]' <<<"$output")" '[false,null]'
	assert_equal "$stderr" "parlae: status --check: the secret store is not usable: secret file $vault/a.cur is owned by uid 65534, not by this user (uid $(id -u))"
	chown "$(id -u)" "$vault/a.cur"
	chmod 644 "$vault/.key-check"
	run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_equal "$stderr" "parlae: status --check: the secret store is not usable: secret file $vault/.key-check has mode 0644, not 0600"
	chmod 600 "$vault/.key-check"
	chown 65534 "$vault"
	run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_equal "$stderr" "parlae: status --check: the secret store is not usable: secret store $vault is owned by uid 65534, not by this user (uid $(id -u))"
	chown "$(id -u)" "$vault"
	run --separate-stderr parlae status --check
	assert_success
}

@test "status --check names each failing item on stderr" {
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_equal "${#stderr_lines[@]}" 3
	assert_regex "${stderr_lines[0]}" "^parlae: status --check: the database is unreachable: cannot connect to the database: "
	assert_equal "${stderr_lines[1]}${stderr_lines[2]}" "parlae: status --check: the secret store does not open with the master key: PARLAE_MASTER_KEY is not set: it is needed to read or write the secret storeparlae: status --check: SIKKA_APP_ID and SIKKA_APP_KEY are not both set"
}
