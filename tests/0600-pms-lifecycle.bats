#!/usr/bin/env bats
# A practice's whole life: Sikka's marketplace handshake (pms purchase | cancel | registrations |
# assign), SETUP_REQUIRED completing itself, every location of a multi-location office, and
# pms disconnect. Every registration is kept, whatever becomes of it.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes

setup_file() {
	suite_setup
	suite_migrate
	start_sikka "$BATS_FILE_TMPDIR/fakes"
}
teardown_file() {
	stop_sikka "$BATS_FILE_TMPDIR/fakes"
	[ ! -f "$BATS_FILE_TMPDIR/fakes/aws_secrets.pid" ] || stop_aws "$BATS_FILE_TMPDIR/fakes"
}

setup() {
	setup_home
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	export PARLAE_STATE_SECRET=sekrit-state-secret-for-tests-0123456789
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
	export PARLAE_SECRET_STORE=file:$BATS_FILE_TMPDIR/vault
	export APP_BASE_URL=https://backend.example PARLAE_HTTP_TIMEOUT=3
	fake reset '{}' >/dev/null
}

# practices JSON: what Sikka lists (show=all).
practices() { fake practices "$1" >/dev/null; }
# registration QUERY: the body Sikka's marketplace sends, into $BATS_TEST_TMPDIR/reg.json.
registration() { fake_get "registration?$1" >"$BATS_TEST_TMPDIR/reg.json"; }
reg_row() { # REGISTRATION-ID: state|account|personal kept
	sql "SELECT state || '|' || coalesce(account_id, '-') || '|' || (personal IS NOT NULL)
	     FROM pms_registrations WHERE registration_id = '$1' AND kind = 'purchase' AND state <> 'duplicate'"
}
integration() { sql "SELECT status || '|' || coalesce(last_error, '-') FROM pms_integrations WHERE account_id = '$1'"; }
events() { sql "SELECT count(*) FROM audit_events WHERE action = '$1' AND account_id IS NOT DISTINCT FROM ${2:-NULL}"; }

@test "a registration whose email matches an account and whose office Sikka lists connects it" {
	practices '[{"office_id":"D100","practice_name":"Bright Smiles"}]'
	parlae account add bright --email Front@Bright.example >/dev/null
	registration "office_id=D100&email=front@bright.example&registration_id=PR-100"
	run --separate-stderr parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.registration, .masterCustomerId, .account, .state, .officeId, .practiceId, .duplicateOf, .dryRun]' <<<"$output")" \
		'["PR-100","MC-D100","bright","active","D100","1",null,false]'
	assert_equal "$(integration bright)" "ACTIVE|-"
	assert_equal "$(reg_row PR-100)" "active|bright|false"
	assert_equal "$(fake_get state | jq -c '.offices.D100.access_practices')" '["1"]'
	run --separate-stderr parlae status bright --json
	assert_equal "$(jq -c '[.status, .practiceName]' <<<"$output")" '["connected","Bright Smiles"]'
	assert_equal "$(sql "SELECT metadata::text FROM audit_events WHERE action = 'pms.purchase' AND account_id = 'bright'")" \
		'{"order": "'"$(jq -r '."Order#"' "$BATS_TEST_TMPDIR/reg.json")"'", "state": "active", "pmsType": "Dentrix", "officeId": "D100", "practiceId": "1", "secretVersion": "1", "registrationId": "PR-100", "masterCustomerId": "MC-D100"}'
}

@test "a registration before its account exists stays pending with its details; pms assign connects it" {
	practices '[{"office_id":"D110","practice_name":"Early Bird Dental"}]'
	registration "office_id=D110&email=hello@early.example&registration_id=PR-110"
	run --separate-stderr parlae pms purchase --payload - <"$BATS_TEST_TMPDIR/reg.json"
	assert_equal "$status" 0
	assert_equal "$output" "registration PR-110 (#$(sql "SELECT id FROM pms_registrations WHERE registration_id = 'PR-110'")): kept pending: no account has its email address"
	assert_equal "$stderr" "next: parlae pms assign PR-110 ACCOUNT"
	assert_equal "$(reg_row PR-110)" "pending|-|true"
	run --separate-stderr parlae pms registrations --pending --json
	assert_success
	assert_equal "$(jq -c '[.[] | select(.registration == "PR-110") | [.kind, .state, .practiceName, .email, .masterCustomerId]]' <<<"$output")" \
		'[["purchase","pending","Early Bird Dental","hello@early.example","MC-D110"]]'

	parlae account add early >/dev/null
	run --separate-stderr parlae pms assign PR-110 early
	assert_success
	assert_equal "$output" "registration PR-110 (#$(sql "SELECT id FROM pms_registrations WHERE registration_id = 'PR-110'")): connected early (office D110, location 1)"
	assert_equal "$stderr" ""
	assert_equal "$(reg_row PR-110)" "active|early|false"
	assert_equal "$(integration early)" "ACTIVE|-"
	run --separate-stderr parlae pms registrations --pending --json
	assert_equal "$(jq '[.[] | select(.registration == "PR-110")] | length' <<<"$output")" 0

	run --separate-stderr parlae pms assign PR-110 early
	assert_failure 10
	assert_equal "$stderr" "parlae: registration PR-110 is already active for early (see 'parlae pms registrations')"
	run --separate-stderr parlae pms assign PR-404 early
	assert_failure 5
	assert_equal "$(events pms.assign "'early'")" 1
}

@test "a body that is not a registration is kept as received, and exits 65" {
	printf 'MasterCustomerID=1&\xff\xfe not json' >"$BATS_TEST_TMPDIR/bad"
	run --separate-stderr parlae pms purchase --payload "$BATS_TEST_TMPDIR/bad"
	assert_failure 65
	assert_equal "$output" ""
	assert_regex "$stderr" "^parlae: not a registration \(.*\): kept as received, as #[0-9]+ \(see 'parlae pms registrations --pending'\)$"
	id=$(sql "SELECT max(id) FROM pms_registrations")
	assert_equal "$(sql "SELECT kind || '|' || state || '|' || encode(raw, 'hex') FROM pms_registrations WHERE id = $id")" \
		"purchase|malformed|$(od -An -tx1 -v "$BATS_TEST_TMPDIR/bad" | tr -d ' \n')"

	run --separate-stderr parlae pms cancel --payload - <<<'{"MasterCustomerID":"MC-1","EmailAddress":"a@b.example"}'
	assert_failure 65
	assert_regex "$stderr" "^parlae: not a registration \(no PartnerRegistrationID"
	run --separate-stderr parlae pms registrations --pending --json
	assert_equal "$(jq -c '[.[] | select(.state == "malformed") | .kind] | sort' <<<"$output")" '["cancel","purchase"]'
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action IN ('pms.purchase', 'pms.cancel') AND outcome <> 'success' AND error_code = 'bad_input'")" 2
}

@test "a repeated PartnerRegistrationID is kept and reported as a duplicate, never applied twice" {
	practices '[{"office_id":"D120"}]'
	parlae account add twice --email twice@example.com >/dev/null
	registration "office_id=D120&email=twice@example.com&registration_id=PR-120"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	first=$(sql "SELECT id FROM pms_registrations WHERE registration_id = 'PR-120'")
	run --separate-stderr parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json"
	assert_success
	assert_equal "$output" "registration PR-120 (#$((first + 1))): kept as a duplicate of #$first, not applied again"
	assert_equal "$(sql "SELECT string_agg(state || ':' || coalesce(duplicate_of::text, '-'), ',' ORDER BY id) FROM pms_registrations WHERE registration_id = 'PR-120'")" \
		"active:-,duplicate:$first"
	assert_equal "$(fake_get counters | jq .grants.request_key)" 1
	assert_equal "$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'twice'")" 1
}

@test "not listed yet: SETUP_REQUIRED, shown as connecting; two rotations at once complete it exactly once" {
	parlae account add later --email later@example.com >/dev/null
	registration "customer_id=MC-D130&email=later@example.com&registration_id=PR-130"
	run --separate-stderr parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json"
	assert_equal "$status" 0
	assert_equal "$stderr" "it completes itself once Sikka lists the practice ('parlae secrets rotate --all' or 'parlae status later')"
	assert_regex "$output" "^registration PR-130 \(#[0-9]+\): matched later; setup required: Sikka lists no practice for customer MC-D130$"
	assert_equal "$(integration later)" "SETUP_REQUIRED|Sikka lists no practice for customer MC-D130"
	run --separate-stderr parlae status later --json
	assert_equal "$(jq -c '[.status, .isConnected]' <<<"$output")" '["connecting",false]'
	run --separate-stderr parlae secrets rotate --all --json
	assert_success
	assert_equal "$(jq .completed <<<"$output")" 0
	assert_equal "$(integration later | cut -d'|' -f1)" SETUP_REQUIRED

	practices '[{"office_id":"D130","customer_id":"MC-D130","practice_name":"Later Dental"}]'
	fake latency '{"ms":200}' >/dev/null
	parlae secrets rotate --all --json >"$BATS_TEST_TMPDIR/a" 2>&1 &
	parlae secrets rotate --all --json >"$BATS_TEST_TMPDIR/b" 2>&1 &
	wait
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$(jq -s -c 'map(.completed) | sort' "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b")" '[0,1]'
	assert_equal "$(integration later)" "ACTIVE|-"
	assert_equal "$(reg_row PR-130)" "active|later|false"
	assert_equal "$(events pms.complete "'later'")" 1
	assert_equal "$(fake_get counters | jq .grants.request_key)" 1
}

@test "status ACCOUNT --wait waits through SETUP_REQUIRED and connects it when Sikka lists the practice" {
	parlae account add waiter --email waiter@example.com >/dev/null
	registration "customer_id=MC-D140&email=waiter@example.com&registration_id=PR-140"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	(sleep 1; fake practices '[{"office_id":"D140","customer_id":"MC-D140"}]' >/dev/null) &
	run --separate-stderr parlae status waiter --wait=20 --json
	wait
	assert_success
	assert_equal "$(jq -c '[.status, .isConnected]' <<<"$output")" '["connected",true]'
	assert_equal "$(events pms.complete "'waiter'")" 1
	# status without --wait completes one too.
	parlae account add looker --email looker@example.com >/dev/null
	registration "customer_id=MC-D141&email=looker@example.com&registration_id=PR-141"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	practices '[{"office_id":"D141","customer_id":"MC-D141"}]'
	run --separate-stderr parlae status looker --json
	assert_equal "$(jq -r .status <<<"$output")" connected
}

@test "a cancellation makes only its practice's integration inactive, with the reason" {
	practices '[{"office_id":"D150"},{"office_id":"D151"}]'
	parlae account add one --email one@example.com >/dev/null
	parlae account add two --email two@example.com >/dev/null
	registration "office_id=D150&email=one@example.com&registration_id=PR-150"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	registration "office_id=D151&email=two@example.com&registration_id=PR-151"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	# Sikka's cancellation of the first, its email not even the account's any more.
	registration "office_id=D150&email=moved@example.com&registration_id=PR-150&kind=cancel"
	run --separate-stderr parlae pms cancel --payload "$BATS_TEST_TMPDIR/reg.json"
	assert_success
	assert_regex "$output" "^cancellation of PR-150 \(#[0-9]+\): one inactive$"
	assert_equal "$(integration one)" "INACTIVE|cancelled in Sikka's marketplace (registration PR-150)"
	assert_equal "$(integration two)" "ACTIVE|-"
	assert_equal "$(reg_row PR-150)" "cancelled|one|false"
	assert_equal "$(reg_row PR-151)" "active|two|false"
	assert_equal "$(events pms.cancel "'one'")" 1

	registration "customer_id=MC-NOBODY&email=nobody@example.com&registration_id=PR-159&kind=cancel"
	run --separate-stderr parlae pms cancel --payload "$BATS_TEST_TMPDIR/reg.json"
	assert_failure 5
	assert_regex "$stderr" "^parlae: the cancellation of PR-159 matches no account: kept as #[0-9]+"
	assert_equal "$(sql "SELECT state FROM pms_registrations WHERE registration_id = 'PR-159'")" unmatched
	assert_equal "$(integration two)" "ACTIVE|-"
}

@test "a multi-location office: several locations is an error listing them; --practice-id chooses, and data calls carry it" {
	practices '[{"office_id":"D160","practice_id":"1","practice_name":"Main St"},{"office_id":"D160","practice_id":"2","practice_name":"Oak Ave"}]'
	parlae account add oak >/dev/null
	parlae pms setup oak >/dev/null
	code=$(fake code '{"office_id":"D160"}' | jq -r .code)
	state=$(parlae sikka oauth-url oak --json | jq -r .state)
	run --separate-stderr parlae sikka callback --code "$code" --state "$state"
	assert_failure 2
	assert_equal "$stderr" "parlae: office D160 has several locations: 1 (Main St), 2 (Oak Ave) (choose one with 'parlae pms setup oak --practice-id ID')"
	assert_equal "$(integration oak)" "ERROR|office D160 has several locations: 1 (Main St), 2 (Oak Ave)"

	run --separate-stderr parlae pms setup oak --practice-id 2
	assert_equal "$status" 0
	assert_equal "$(sql "SELECT config->>'practiceId' FROM pms_integrations WHERE account_id = 'oak'")" 2
	code=$(fake code '{"office_id":"D160"}' | jq -r .code)
	state=$(parlae sikka oauth-url oak --json | jq -r .state)
	run --separate-stderr parlae sikka callback --code "$code" --state "$state" --json
	assert_success
	assert_equal "$(integration oak)" "ACTIVE|-"
	assert_equal "$(fake_get state | jq -c '.offices.D160.access_practices')" '["2"]'
	assert_equal "$(sql "SELECT metadata->>'practiceId' FROM audit_events WHERE action = 'sikka.callback' AND account_id = 'oak' AND outcome = 'success'")" 2

	fake seed '{"office_id":"D160","patients":[{"patient_id":"P2","firstname":"Oli","lastname":"Oak","cell":"+15557770000","practice_id":"2"}],
		"providers":[{"provider_id":"DR2","practice_id":"2"}],"operatories":[{"operatory":"OP2","practice_id":"2"}]}' >/dev/null
	PARLAE_NOW=2026-11-30T15:00:00Z run --separate-stderr parlae vapi tool invoke bookAppointment --account oak --args '{"startTime":"2026-12-01T10:00:00","patientId":"P2"}'
	assert_success
	assert_equal "$(fake_get state | jq -r '.writebacks[-1].body.practice_id')" 2

	run --separate-stderr parlae sikka callback --code x --state y --practice-id 'a b'
	assert_failure 2
}

@test "pms disconnect revokes the refresh key at Sikka, deletes the secret, and makes the row inactive; again: already" {
	practices '[{"office_id":"D170"}]'
	parlae account add gone --email gone@example.com >/dev/null
	registration "office_id=D170&email=gone@example.com&registration_id=PR-170"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	refresh=$(fake_get state | jq -r '.offices.D170.valid_refresh_keys[0]')

	run --separate-stderr parlae pms disconnect gone --dry-run
	assert_success
	assert_equal "$output" "would disconnect gone: revoke its refresh key at Sikka, delete its secret, make it inactive"
	assert_equal "$(integration gone)" "ACTIVE|-"

	run --separate-stderr parlae pms disconnect gone --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" '{"account":"gone","status":"disconnected","revoked":true,"secretDeleted":true,"note":null,"dryRun":false}'
	assert_equal "$(integration gone)" "INACTIVE|disconnected by the operator"
	assert_equal "$(sql "SELECT coalesce(secret_ref, '-') FROM pms_integrations WHERE account_id = 'gone'")" -
	assert_equal "$(ls "$BATS_FILE_TMPDIR/vault" | grep -c 'gone' || true)" 0
	assert_equal "$(fake_get counters | jq -c .revoked_refresh)" '{"D170":1}'
	assert_equal "$(fake_get state | jq -c '.offices.D170.valid_refresh_keys')" '[]'
	assert_equal "$(reg_row PR-170)" "cancelled|gone|false"

	run --separate-stderr parlae pms disconnect gone
	assert_success
	assert_equal "$output" "gone is already disconnected"
	assert_equal "$(events pms.disconnect "'gone'")" 2
	run --separate-stderr parlae pms disconnect nosuch
	assert_failure 5
}

@test "pms disconnect with Sikka failing on DELETE still disconnects locally, and says so" {
	practices '[{"office_id":"D180"}]'
	parlae account add flaky --email flaky@example.com >/dev/null
	registration "office_id=D180&email=flaky@example.com&registration_id=PR-180"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	fake faults '{"method":"DELETE","path":"/v4/refresh_key","status":503,"count":-1}' >/dev/null
	run --separate-stderr parlae pms disconnect flaky
	assert_equal "$status" 0
	assert_equal "$output" "disconnected flaky: refresh key not revoked at Sikka, secret deleted"
	assert_regex "$stderr" "^Sikka did not revoke the refresh key: Sikka DELETE /v4/refresh_key failed: HTTP 503"
	assert_equal "$(integration flaky)" "INACTIVE|disconnected by the operator"
	assert_equal "$(sql "SELECT metadata::text FROM audit_events WHERE action = 'pms.disconnect' AND account_id = 'flaky'")" \
		'{"revoked": false, "secretDeleted": true}'
}

@test "pms disconnect deletes the secret from the aws: store too" {
	start_aws "$BATS_FILE_TMPDIR/fakes"
	practices '[{"office_id":"D190"}]'
	parlae account add cloud --email cloud@example.com >/dev/null
	registration "office_id=D190&email=cloud@example.com&registration_id=PR-190"
	run --separate-stderr parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json"
	assert_success
	assert_equal "$(aws_get secrets | jq -c 'keys')" '["parlae/pms/sikka/cloud"]'
	run --separate-stderr parlae pms disconnect cloud
	assert_success
	assert_equal "$output" "disconnected cloud: refresh key revoked at Sikka, secret deleted"
	assert_equal "$(aws_get secrets | jq -c 'keys')" '[]'
	run --separate-stderr parlae pms disconnect cloud
	assert_equal "$output" "cloud is already disconnected"
}

@test "registrations are audited with ids only: no name, email, phone or address in the log, audit tail or a dump once matched" {
	practices '[{"office_id":"D195"}]'
	parlae account add private --email private@example.com >/dev/null
	registration "office_id=D195&email=private@example.com&registration_id=PR-195&first_name=Zelda&last_name=Quibble&phone=2175550123&address=77%20Secret%20Lane"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	registration "customer_id=MC-D196&email=later-private@example.com&registration_id=PR-196&first_name=Zelda&last_name=Quibble&phone=2175550123&address=77%20Secret%20Lane"
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null
	parlae account add private2 >/dev/null
	parlae pms assign PR-196 private2 >/dev/null
	dump=$(pg_dump "$(db_url_as parlae)")
	refute_secrets_in "$dump" Zelda Quibble 2175550123 "Secret Lane" later-private@example.com
	log=$(sql "SELECT string_agg(coalesce(metadata::text, '') || resource_id, ' ') FROM audit_events")
	refute_secrets_in "$log" Zelda Quibble 2175550123 "Secret Lane" private@example.com
	run --separate-stderr parlae audit tail -n 50 --json
	assert_success
	refute_secrets_in "$output" Zelda Quibble 2175550123 "Secret Lane" private@example.com
}

@test "account add --email keeps the contact address, account list shows it, and a bad one is a usage error" {
	run --separate-stderr parlae account add mail --email frontdesk@mail.example --json
	assert_success
	assert_equal "$output" '{"id":"mail","name":null,"email":"frontdesk@mail.example","dryRun":false}'
	run --separate-stderr parlae account list --json
	assert_equal "$(jq -r '.[] | select(.id == "mail") | .email' <<<"$output")" frontdesk@mail.example
	run --separate-stderr parlae account add nomail --email 'not an address'
	assert_failure 2
	assert_equal "$stderr" "parlae: --email: 'not an address' is not an email address (give the practice's contact address, like frontdesk@example.com)"
}
