#!/usr/bin/env bats
# Every mutating command of the contract writes an audit event, on success and on failure, with
# actor, host, account, action, resource, outcome and error code; no event holds a secret or
# patient data. The commands run against the fake Sikka and Twilio, as an operator would.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() {
	suite_setup
	start_sikka "$BATS_FILE_TMPDIR/fakes"
	start_twilio "$BATS_FILE_TMPDIR/fakes"
}
teardown_file() {
	stop_sikka "$BATS_FILE_TMPDIR/fakes"
	stop_twilio "$BATS_FILE_TMPDIR/fakes"
}

setup() {
	setup_home
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	twilio_env "$BATS_FILE_TMPDIR/fakes"
	export PARLAE_ACTOR=ops@coverage
	export PARLAE_STATE_SECRET=sekrit-state-secret-for-tests-0123456789
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
	export PARLAE_SECRET_STORE=file:$BATS_FILE_TMPDIR/vault APP_BASE_URL=https://backend.example
	export PARLAE_HTTP_TIMEOUT=3
	# Monday 2026-11-30, 10:00 in New York, as the vapi suites take it.
	export PARLAE_NOW=2026-11-30T15:00:00Z
	HOST=$(hostname)
}

# The newest event, as "actor|host|account|action|resource type|resource id|outcome|error code";
# NULL shows as '-'. With a pattern, the newest event whose action matches it.
event() {
	sql "SELECT concat_ws('|', actor, host, coalesce(account_id, '-'), action, coalesce(resource_type, '-'),
		coalesce(resource_id, '-'), outcome, coalesce(error_code, '-'))
		FROM audit_events WHERE action LIKE '${1:-%}' ORDER BY seq DESC LIMIT 1"
}
meta() { sql "SELECT metadata::text FROM audit_events WHERE action LIKE '${1:-%}' ORDER BY seq DESC LIMIT 1"; }
count() { sql "SELECT count(*) FROM audit_events"; }
# The request id of the newest event: one per invocation, 128 random bits in hex.
request_id() { sql "SELECT request_id FROM audit_events ORDER BY seq DESC LIMIT 1"; }

# The fake practice's records: a patient whose details must never reach the log.
seed_practice() {
	fake spu '{"office_id":"D36225","online":true}' >/dev/null
	fake writeback '{"pending_polls":0,"fail":false,"reject_overlap":true}' >/dev/null
	fake seed '{"office_id":"D36225",
		"patients":[{"patient_id":"P1","firstname":"Ana","lastname":"Diaz","cell":"+15551234567","birthdate":"1990-04-01","email":"ana@example.com"}],
		"providers":[{"provider_id":"DR1","first_name":"Lee"}],
		"operatories":[{"operatory":"OP1"}],
		"appointments":[{"appointment_sr_no":"A2","patient_id":"P1","provider_id":"DR1","date":"2026-12-15","time":"10:00","length":"30"}]}' >/dev/null
}

# These tests run in order against one database, as an onboarding would.

@test "db migrate: the schema version reached, also when nothing was left to apply" {
	run --separate-stderr parlae db migrate
	assert_success
	assert_equal "$(event)" "ops@coverage|$HOST|-|db.migrate|schema|9|success|-"
	assert_equal "$(meta)" '{"from": 0, "applied": [1, 2, 3, 4, 5, 6, 7, 8, 9]}'
	assert_regex "$(request_id)" '^[0-9a-f]{32}$'
	n=$(count)
	run --separate-stderr parlae db migrate
	assert_success
	assert_equal "$(count)" $((n + 1))
	assert_equal "$(event)" "ops@coverage|$HOST|-|db.migrate|schema|9|success|-"
	assert_equal "$(meta)" '{"from": 9, "applied": []}'
	# --dry-run writes nothing.
	run --separate-stderr parlae --dry-run db migrate
	assert_success
	assert_equal "$(count)" $((n + 1))
	# The rest runs as parlae_app, as the commands do in production.
	suite_grant_app
}

@test "account add: the account, and an existing id as a conflict" {
	run --separate-stderr parlae account add happy --name "Happy Teeth"
	assert_success
	assert_equal "$(event)" "ops@coverage|$HOST|happy|account.add|account|happy|success|-"
	assert_equal "$(meta)" '{}'
	run --separate-stderr parlae account add happy
	assert_equal "$status" 10
	assert_equal "$(event)" "ops@coverage|$HOST|happy|account.add|account|happy|failure|conflict"
	n=$(count)
	run --separate-stderr parlae --dry-run account add other
	assert_success
	assert_equal "$(count)" "$n"
}

@test "pms setup: the integration, and app credentials Sikka rejects as a config failure" {
	run --separate-stderr parlae pms setup happy --timezone America/New_York
	assert_success --stderr 'next: parlae sikka oauth-url'
	assert_equal "$(event)" "ops@coverage|$HOST|happy|pms.setup|pms_integration|happy/SIKKA|success|-"
	assert_equal "$(meta)" '{"config": {"timezone": "America/New_York"}, "provider": "SIKKA"}'
	SIKKA_APP_KEY=wrong-app-key-0000 run --separate-stderr parlae pms setup happy
	assert_equal "$status" 3
	assert_equal "$(event)" "ops@coverage|$HOST|happy|pms.setup|pms_integration|happy/SIKKA|failure|config"
}

@test "sikka oauth-url: the state's nonce, never the signed state" {
	run --separate-stderr parlae sikka oauth-url happy --json
	assert_success
	state=$(jq -r .state <<<"$output")
	nonce=$(sql "SELECT nonce FROM oauth_states ORDER BY issued_at DESC LIMIT 1")
	assert_equal "$(event)" "ops@coverage|$HOST|happy|sikka.oauth_url|oauth_state|$nonce|success|-"
	assert_equal "$(meta)" "{\"expiresAt\": \"$(jq -r .expiresAt <<<"$output")\"}"
	assert_equal "$(sql "SELECT count(*) FROM audit_events e WHERE strpos(e::text, '${state#*.}') > 0")" 0
}

@test "sikka callback: a refusal as denied, Sikka failing as upstream, the connection, a replayed state as denied" {
	state=$(parlae sikka oauth-url happy --json | jq -r .state)
	run --separate-stderr parlae sikka callback --error access_denied --state "$state"
	assert_equal "$status" 1
	assert_equal "$(event)" "ops@coverage|$HOST|happy|sikka.callback|pms_integration|parlae/pms/sikka/happy|denied|no"
	# Sikka failing: an upstream failure.
	state=$(parlae sikka oauth-url happy --json | jq -r .state)
	code=$(fake code '{"office_id":"D36225"}' | jq -r .code)
	fake faults '{"method":"GET","path":"/v4/authorized_practices","status":500,"count":3}' >/dev/null
	run --separate-stderr parlae sikka callback --code "$code" --state "$state"
	fake faults/clear '{}' >/dev/null
	assert_equal "$status" 6
	assert_equal "$(event)" "ops@coverage|$HOST|happy|sikka.callback|pms_integration|parlae/pms/sikka/happy|failure|upstream"
	state=$(parlae sikka oauth-url happy --json | jq -r .state)
	code=$(fake code '{"office_id":"D36225"}' | jq -r .code)
	run --separate-stderr parlae sikka callback --code "$code" --state "$state"
	assert_success
	assert_equal "$(event)" "ops@coverage|$HOST|happy|sikka.callback|pms_integration|parlae/pms/sikka/happy|success|-"
	assert_equal "$(meta)" '{"pmsType": "Dentrix", "officeId": "D36225", "practiceId": "1", "secretVersion": "1"}'
	run --separate-stderr parlae sikka callback --code "$code" --state "$state"
	assert_equal "$status" 4
	assert_equal "$(event)" "ops@coverage|$HOST|happy|sikka.callback|pms_integration|parlae/pms/sikka/happy|denied|security"
}

@test "vapi phone add: the Vapi phone id, with what is enabled but not the numbers" {
	run --separate-stderr parlae vapi phone add happy --vapi-id pn-happy-dental --number +15550001000 --staff-forward +15550002000 --transfer
	assert_success
	assert_equal "$(event)" "ops@coverage|$HOST|happy|vapi.phone_add|vapi_phone_number|pn-happy-dental|success|-"
	assert_equal "$(meta)" '{"staffForward": true, "transferEnabled": true}'
	# Moving a phone id to another account is recorded under that account.
	parlae account add other >/dev/null
	run --separate-stderr parlae vapi phone add other --vapi-id pn-moved --number +15550003000
	assert_success
	assert_equal "$(event)" "ops@coverage|$HOST|other|vapi.phone_add|vapi_phone_number|pn-moved|success|-"
	assert_equal "$(meta)" '{"staffForward": false, "transferEnabled": false}'
}

@test "vapi tool invoke: one event per tool call, with its outcome and error code" {
	seed_practice
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-two-calls.json"
	assert_success
	assert_equal "$(sql "SELECT string_agg(concat_ws('|', actor, host, account_id, action, resource_type, resource_id, outcome, coalesce(error_code, '-'), metadata->>'tool', metadata->>'success', metadata->>'operatorAccess'), ' ' ORDER BY seq)
		FROM (SELECT * FROM audit_events ORDER BY seq DESC LIMIT 2) e")" \
		"ops@coverage|$HOST|happy|vapi.tool|tool_call|$(jq -r '.message.toolCallList[0].id' "$FIX/tool-calls-two-calls.json")|success|-|getPatientInfo|true|false ops@coverage|$HOST|happy|vapi.tool|tool_call|$(jq -r '.message.toolCallList[1].id' "$FIX/tool-calls-two-calls.json")|success|-|checkAvailability|true|false"
	# Both calls of one invocation share its request id; the Vapi call id is in the metadata.
	assert_equal "$(sql "SELECT count(DISTINCT request_id) || '|' || string_agg(DISTINCT metadata->>'callId', ',') FROM (SELECT * FROM audit_events ORDER BY seq DESC LIMIT 2) e")" \
		"1|$(jq -r '.message.call.id' "$FIX/tool-calls-two-calls.json")"
	# An operator's own look-up is recorded as such.
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args '{"query":"Ana Diaz"}'
	assert_success
	assert_equal "$(event | cut -d'|' -f1-5,7-)" "ops@coverage|$HOST|happy|vapi.tool|tool_call|success|-"
	assert_equal "$(sql "SELECT metadata->>'operatorAccess' FROM audit_events ORDER BY seq DESC LIMIT 1")" "true"
	# A call that could not run: its duration is not a number (a transfer no longer fails when
	# Twilio does: the text is best effort).
	jq -c '.message.toolCallList[0].function = {name: "bookAppointment", arguments: {startTime: "2026-12-01T10:00:00", patientId: "P1", duration: "30abc"}}' \
		"$FIX/tool-calls-transfer-to-human.json" >"$BATS_TEST_TMPDIR/bad.json"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/bad.json"
	assert_equal "$status" 65
	assert_equal "$(event)" "ops@coverage|$HOST|happy|vapi.tool|tool_call|call_xfer_01|failure|bad_input"
	assert_equal "$(sql "SELECT metadata->>'tool' || '|' || (metadata->>'success') FROM audit_events ORDER BY seq DESC LIMIT 1")" "bookAppointment|false"
}

@test "every event names its actor, host, action, outcome and request id; every failure its error code" {
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE actor <> 'ops@coverage' OR host <> '$HOST'
		OR action !~ '^[a-z]+\.[a-z_]+$' OR request_id !~ '^[0-9a-f]{32}$' OR resource_type IS NULL OR resource_id IS NULL")" 0
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE (outcome = 'success') <> (error_code IS NULL)")" 0
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE account_id IS NULL AND action <> 'db.migrate'")" 0
	assert_equal "$(sql "SELECT string_agg(DISTINCT action, ' ' ORDER BY action) FROM audit_events")" \
		"account.add db.migrate pms.setup sikka.callback sikka.oauth_url vapi.phone_add vapi.tool"
	run --separate-stderr parlae audit verify
	assert_success
}

@test "no event holds a secret or patient data" {
	all=$(sql "SELECT e::text FROM audit_events e ORDER BY seq")
	[ -n "$all" ]
	# parlae's own secrets, and every key, code and secret the fake Sikka ever issued.
	mapfile -t issued < <(fake_get state | jq -r '.practices[].secret_key,
		(.offices[] | .request_keys[].request_key, .refresh_keys[].refresh_key, .codes[].code)')
	[ "${#issued[@]}" -ge 4 ]
	refute_secrets_in "$all" "$SIKKA_APP_KEY" "$PARLAE_STATE_SECRET" "$PARLAE_MASTER_KEY" \
		"$TWILIO_AUTH_TOKEN" wrong-app-key-0000 "${issued[@]}"
	# The patient: name, phone, birth date, e-mail, and what callers said.
	refute_secrets_in "$all" Ana Diaz 5551234567 1990-04-01 ana@example.com "insurance claim" \
		"billing question" 15557654321 15550002000
}
