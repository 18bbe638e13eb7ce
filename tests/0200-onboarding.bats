#!/usr/bin/env bats
# Onboarding a practice end to end against the fake Sikka: pms setup, sikka oauth-url, the
# authorize redirect, sikka callback, status. Every failure path leaves nothing half-done.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/store

MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
STATE_SECRET=sekrit-state-secret-for-tests-0123456789

setup_file() {
	suite_setup
	suite_migrate
	start_sikka "$BATS_FILE_TMPDIR/fakes"
}
teardown_file() { stop_sikka "$BATS_FILE_TMPDIR/fakes"; }

setup() {
	setup_home
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	export PARLAE_STATE_SECRET=$STATE_SECRET PARLAE_MASTER_KEY=$MASTER_KEY
	export PARLAE_SECRET_STORE=file:$BATS_FILE_TMPDIR/vault
	export APP_BASE_URL=https://backend.example
	export PARLAE_HTTP_TIMEOUT=3
	fake reset '{}' >/dev/null
}

# A practice account with Sikka set up, ready for oauth-url.
new_account() {
	parlae account add "$1" >/dev/null
	parlae pms setup "$1" --timezone America/New_York >/dev/null
}

# Follow the authorize URL through the fake: prints where the browser lands.
authorize() {
	curl -sS -o /dev/null -w '%{redirect_url}' "$1"
}

# oauth-url then the authorize page: prints the redirect URL.
redirect_for() {
	local url
	url=$(parlae sikka oauth-url "$1") || return 1
	authorize "$url"
}

row() { sql "SELECT status || '|' || coalesce(last_error, '-') FROM pms_integrations WHERE account_id = '$1'"; }
stored() { ls "$BATS_FILE_TMPDIR/vault" 2>/dev/null | grep -c -- "~$1\.cur" || true; }

@test "the whole onboarding: setup, oauth-url, authorize, callback, status" {
	parlae account add happy --name "Happy Teeth"
	run --separate-stderr parlae pms setup happy --timezone America/New_York --hours "mon-fri 08:00-12:00,13:00-17:00; sat 09:00-13:00" --json
	assert_success
	assert_equal "$(jq -c -S '[.success, .provider, .status, .features]' <<<"$output")" \
		'[true,"SIKKA","pending",{"appointments":true,"availableSlots":null,"booking":true,"patients":true}]'
	assert_equal "$(sql "SELECT config::text FROM pms_integrations WHERE account_id = 'happy'")" \
		'{"hours": {"fri": [["08:00", "12:00"], ["13:00", "17:00"]], "mon": [["08:00", "12:00"], ["13:00", "17:00"]], "sat": [["09:00", "13:00"]], "thu": [["08:00", "12:00"], ["13:00", "17:00"]], "tue": [["08:00", "12:00"], ["13:00", "17:00"]], "wed": [["08:00", "12:00"], ["13:00", "17:00"]]}, "timezone": "America/New_York"}'

	run --separate-stderr parlae sikka oauth-url happy --json
	assert_success
	url=$(jq -r .url <<<"$output")
	assert_regex "$url" "^$FAKE_SIKKA/portal/authapp.aspx\?app_id=test-app-id&redirect_uri=https%3A%2F%2Fbackend.example%2Fpms%2Fsikka%2Foauth%2Fcallback&state=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
	assert_equal "$(row happy)" "CONNECTING|-"

	landed=$(authorize "$url")
	assert_regex "$landed" '^https://backend.example/pms/sikka/oauth/callback\?code=.*&state=.*&office_id=D36225$'
	run --separate-stderr parlae sikka callback --url - --json <<<"$landed"
	assert_success
	assert_equal "$output" '{"account":"happy","status":"connected","practiceName":"Happy Teeth Dental","pmsType":"Dentrix","officeId":"D36225","error":null}'

	run --separate-stderr parlae status happy --json
	assert_success
	assert_equal "$(jq -c '[.account, .isConnected, .status, .provider, .practiceName, .pmsType, .error]' <<<"$output")" \
		'["happy",true,"connected","SIKKA","Happy Teeth Dental","Dentrix",null]'
	assert_regex "$(jq -r .tokenExpiry <<<"$output")" '^20[0-9-]{8}T[0-9:]{8}Z$'
	assert_equal "$(sql "SELECT status || '|' || secret_ref || '|' || secret_version || '|' || office_id FROM pms_integrations WHERE account_id = 'happy'")" \
		"ACTIVE|parlae/pms/sikka/happy|1|D36225"
	assert_equal "$(sql "SELECT string_agg(action || ':' || outcome, ',' ORDER BY seq) FROM audit_events WHERE account_id = 'happy'")" \
		"account.add:success,pms.setup:success,sikka.oauth_url:success,sikka.callback:success"
	assert_equal "$(fake_get counters | jq -c '.grants | [.authorization_code, .request_key]')" '[1,1]'
}

@test "a replayed state is refused with exit 4" {
	new_account replay
	landed=$(redirect_for replay)
	parlae sikka callback --url "$landed" >/dev/null
	run --separate-stderr parlae sikka callback --url "$landed"
	assert_equal "$status" 4
	assert_equal "$stderr" "parlae: the OAuth state was already used, or was not issued here (start again with 'parlae sikka oauth-url replay')"
	assert_equal "$(row replay)" "ACTIVE|-"
	assert_equal "$(sql "SELECT outcome || '|' || error_code FROM audit_events WHERE account_id = 'replay' AND action = 'sikka.callback' ORDER BY seq DESC LIMIT 1")" "denied|security"
}

@test "a tampered state is refused with exit 4 before anything else happens" {
	new_account tamper
	state=$(parlae sikka oauth-url tamper --json | jq -r .state)
	payload=$(printf '{"acct":"happy","iat":1,"exp":9999999999,"nonce":"%s"}' 00000000000000000000000000000000 | base64 -w0 | tr '+/' '-_' | tr -d '=')
	run --separate-stderr parlae sikka callback --code abc --state "$payload.${state#*.}"
	assert_equal "$status" 4
	assert_equal "$stderr" "parlae: the OAuth state is not signed by this installation (bad signature) (start again with 'parlae sikka oauth-url ACCOUNT')"
	run --separate-stderr parlae sikka callback --code abc --state "garbage"
	assert_equal "$status" 4
	assert_equal "$(fake_get counters | jq -c '.grants.authorization_code')" "0"
}

@test "an expired state is refused with exit 4" {
	new_account expired
	url=$(parlae sikka oauth-url expired --ttl 1)
	landed=$(authorize "$url")
	sleep 1.2
	run --separate-stderr parlae sikka callback --url "$landed"
	assert_equal "$status" 4
	assert_regex "$stderr" "^parlae: the OAuth state is expired"
}

@test "a redirect whose office_id was edited is refused with exit 4 and marks the integration failed" {
	new_account edited
	landed=$(redirect_for edited)
	run --separate-stderr parlae sikka callback --url "${landed/office_id=D36225/office_id=D99999}"
	assert_equal "$status" 4
	assert_equal "$stderr" "parlae: the redirect's office_id does not match the office the code was issued to (the redirect URL was altered: start again with 'parlae sikka oauth-url')"
	assert_equal "$(row edited)" "ERROR|the redirect's office_id does not match the office the code was issued to"
	assert_equal "$(stored edited)" "0"
}

@test "a practice that denies access: exit 1 and status failed" {
	new_account denied
	fake authorize '{"deny":true}' >/dev/null
	landed=$(redirect_for denied)
	assert_regex "$landed" 'error=access_denied'
	run --separate-stderr parlae sikka callback --url "$landed" --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '[.status, .error]' <<<"$output")" '["failed","the practice denied access: access_denied"]'
	run --separate-stderr parlae status denied --json
	assert_equal "$(jq -c '[.status, .isConnected, .error]' <<<"$output")" '["failed",false,"the practice denied access: access_denied"]'
}

@test "a wrong app key is exit 3 naming the variables" {
	parlae account add wrongkey >/dev/null
	SIKKA_APP_KEY=not-the-key run --separate-stderr parlae pms setup wrongkey
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: Sikka rejected the app credentials: check SIKKA_APP_ID / SIKKA_APP_KEY (API2003)"
	assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE account_id = 'wrongkey'")" "0"
	assert_equal "$(sql "SELECT outcome || '|' || error_code FROM audit_events WHERE account_id = 'wrongkey' AND action = 'pms.setup'")" "failure|config"
}

@test "Sikka failing at each step of the callback: exit 6 (8 without an answer), integration ERROR, no secret stored; a retry succeeds" {
	new_account flaky
	for fault in '{"method":"POST","path":"/v4/request_key","status":500,"count":1}' \
		'{"method":"GET","path":"/v4/authorized_practices","status":500,"count":3}' \
		'{"method":"POST","path":"/v4/practice_location","status":503,"count":3}' \
		'{"method":"POST","path":"/v4/request_key","body":"{not json","status":200,"count":1}' \
		'{"method":"GET","path":"/v4/authorized_practices","delay_ms":5000,"count":3}'; do
		landed=$(redirect_for flaky)
		fake faults "$fault" >/dev/null
		run --separate-stderr parlae sikka callback --url "$landed"
		if [[ $fault == *delay_ms* ]]; then assert_equal "$status" 8; else assert_equal "$status" 6; fi
		assert_regex "$stderr" "^parlae: Sikka "
		assert_equal "$(row flaky | cut -d'|' -f1)" "ERROR"
		assert_equal "$(stored flaky)" "0"
		fake faults/clear '{}' >/dev/null
	done
	landed=$(redirect_for flaky)
	run --separate-stderr parlae sikka callback --url "$landed"
	assert_success
	assert_equal "$(row flaky)" "ACTIVE|-"
}

@test "the database down at the start is exit 7" {
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae sikka callback --code x --state y
	assert_equal "$status" 7
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae pms setup nobody
	assert_equal "$status" 7
}

@test "with two practices authorized, the one the code was issued to is chosen" {
	fake practices '[{"office_id":"D1","practice_name":"First Dental"},{"office_id":"D2","practice_name":"Second Dental","practice_management_system":"Dolphin"}]' >/dev/null
	fake authorize '{"office_id":"D2"}' >/dev/null
	new_account second
	landed=$(redirect_for second)
	run --separate-stderr parlae sikka callback --url "$landed" --json
	assert_success
	assert_equal "$(jq -c '[.officeId, .practiceName, .pmsType]' <<<"$output")" '["D2","Second Dental","Dolphin"]'
	assert_equal "$(sql "SELECT features->>'availableSlots' FROM pms_integrations WHERE account_id = 'second'")" "true"
}

@test "no practice for the office: exit 5 'is the SPU running?'" {
	fake practices '[{"office_id":"D1"}]' >/dev/null
	new_account nospu
	code=$(fake code '{"office_id":"D7"}' | jq -r .code)
	state=$(parlae sikka oauth-url nospu --json | jq -r .state)
	run --separate-stderr parlae sikka callback --code "$code" --state "$state"
	assert_equal "$status" 5
	assert_regex "$stderr" "^parlae: no practice found: is the SPU running\?"
	assert_equal "$(row nospu | cut -d'|' -f1)" "ERROR"
}

@test "a secret-store write failure leaves the integration ERROR; a retry succeeds" {
	new_account storefail
	mkdir -p "$BATS_FILE_TMPDIR/vault"
	chmod 700 "$BATS_FILE_TMPDIR/vault"
	# A directory where the secret's file must go: the store's rename fails, even for root.
	mkdir "$BATS_FILE_TMPDIR/vault/parlae~pms~sikka~storefail.cur"
	landed=$(redirect_for storefail)
	run --separate-stderr parlae sikka callback --url "$landed"
	assert_equal "$status" 3
	assert_equal "$(row storefail | cut -d'|' -f1)" "ERROR"
	rmdir "$BATS_FILE_TMPDIR/vault/parlae~pms~sikka~storefail.cur"
	landed=$(redirect_for storefail)
	run --separate-stderr parlae sikka callback --url "$landed"
	assert_success
	assert_equal "$(row storefail)" "ACTIVE|-"
}

@test "the database failing before the final commit leaves ERROR, and the left-behind secret is overwritten" {
	new_account dbfail
	sql_admin "CREATE FUNCTION refuse_active() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN IF NEW.status = 'ACTIVE' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END \$\$; CREATE TRIGGER refuse_active BEFORE UPDATE ON pms_integrations FOR EACH ROW EXECUTE FUNCTION refuse_active();"
	landed=$(redirect_for dbfail)
	run --separate-stderr parlae sikka callback --url "$landed"
	sql_admin "DROP TRIGGER refuse_active ON pms_integrations; DROP FUNCTION refuse_active();"
	assert_equal "$status" 7
	assert_equal "$(row dbfail)" "ERROR|database error: injected failure"
	assert_equal "$(stored dbfail)" "1"
	run --separate-stderr parlae status dbfail --json
	assert_equal "$(jq -r .isConnected <<<"$output")" "false"
	landed=$(redirect_for dbfail)
	run --separate-stderr parlae sikka callback --url "$landed"
	assert_success
	assert_equal "$(sql "SELECT status || '|' || secret_version FROM pms_integrations WHERE account_id = 'dbfail'")" "ACTIVE|2"
}

@test "status --wait returns as soon as the callback commits" {
	new_account waiter
	landed=$(redirect_for waiter)
	parlae status waiter --wait=20 --json >"$BATS_TEST_TMPDIR/wait.out" 2>&1 &
	pid=$!
	sleep 0.5
	parlae sikka callback --url "$landed" >/dev/null
	wait $pid
	assert_equal "$?" "0"
	assert_equal "$(jq -c '[.status, .isConnected]' "$BATS_TEST_TMPDIR/wait.out")" '["connected",true]'
}

@test "status --wait exits 1 when the onboarding fails and 8 when time runs out" {
	new_account waitfail
	parlae sikka oauth-url waitfail >/dev/null
	run --separate-stderr parlae status waitfail --wait=0.3
	assert_equal "$status" 8
	assert_regex "$stderr" "^parlae: account 'waitfail' is still connecting after 0.3 s"
	fake authorize '{"deny":true}' >/dev/null
	landed=$(redirect_for waitfail)
	parlae sikka callback --url "$landed" >/dev/null 2>&1 || true
	run --separate-stderr parlae status waitfail --wait=5
	assert_equal "$status" 1
}

@test "pms setup says what it recorded, the defaults included, and the next step only until connected" {
	parlae account add recorded >/dev/null
	run --separate-stderr parlae pms setup recorded
	assert_success --stderr 'recorded'
	assert_output "enabled Sikka for recorded (status pending)"
	assert_equal "$stderr" "recorded time zone UTC; hours mon-fri 08:00-17:00
next: parlae sikka oauth-url recorded"
	run --separate-stderr parlae pms setup recorded --timezone America/New_York --hours "mon-fri 08:00-12:00,13:00-17:00; sat 09:00-13:00; sun 10:00-11:00"
	assert_success --stderr 'recorded'
	assert_equal "$(head -1 <<<"$stderr")" "recorded time zone America/New_York; hours mon-fri 08:00-12:00,13:00-17:00; sat 09:00-13:00; sun 10:00-11:00"
	# A connected account: no "next" step.
	parlae sikka callback --url "$(redirect_for recorded)" >/dev/null
	assert_equal "$(row recorded)" "ACTIVE|-"
	run --separate-stderr parlae pms setup recorded --timezone America/New_York
	assert_success --stderr 'recorded'
	refute_regex "$stderr" "next:"
}

@test "status --wait on an account with no integration fails at once: exit 5, run pms setup" {
	parlae account add never-set-up >/dev/null
	start=$(date +%s)
	run --separate-stderr parlae status never-set-up --wait=30
	assert_equal "$status" 5
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: account 'never-set-up' has no integration to wait for (run 'parlae pms setup never-set-up' first)"
	[ $(($(date +%s) - start)) -lt 10 ]
	# Once set up, the same wait waits (and here runs out: nobody authorizes it).
	parlae pms setup never-set-up --timezone UTC >/dev/null 2>&1
	run --separate-stderr parlae status never-set-up --wait=0.2
	assert_equal "$status" 8
}

@test "status --check on an account exits 1 unless connected; an unknown account is 5" {
	new_account checkme
	run --separate-stderr parlae status checkme --check
	assert_equal "$status" 1
	run --separate-stderr parlae status nosuchaccount
	assert_equal "$status" 5
	assert_equal "$stderr" "parlae: no account 'nosuchaccount' (create it with 'parlae account add nosuchaccount')"
}

@test "pms setup checks its arguments" {
	parlae account add args >/dev/null
	run --separate-stderr parlae pms setup </dev/null
	assert_equal "$status" 2
	assert_regex "$stderr" "^parlae: missing ACCOUNT"
	run --separate-stderr parlae pms setup args --timezone Mars/Olympus
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: --timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as America/New_York or UTC)"
	run --separate-stderr parlae pms setup args --hours "mon-fri 9-5"
	assert_equal "$status" 2
	assert_regex "$stderr" "^parlae: --hours: cannot read '9-5'"
	run --separate-stderr parlae pms setup args --provider dentrix
	assert_equal "$status" 2
	run --separate-stderr parlae pms setup nosuch
	assert_equal "$status" 5
	assert_equal "$stderr" "parlae: no account 'nosuch' (create it with 'parlae account add nosuch')"
}

@test "pms setup --hours: 24:00 only ends a day, 24:30 never; H:MM is read as HH:MM" {
	parlae account add hours >/dev/null
	for bad in "mon 08:00-24:30" "mon 24:00-24:00" "mon 24:30-23:00" "mon 08:00-17:60" "mon 08:00-17:00:00" "mon 08:0-17:00"; do
		run --separate-stderr parlae pms setup hours --hours "$bad"
		assert_equal "$status" 2
		assert_equal "$output" ""
		assert_regex "$stderr" "^parlae: --hours: cannot read '${bad#mon }'"
	done
	assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE account_id = 'hours'")" "0"
	run --separate-stderr parlae pms setup hours --hours "mon 8:00-12:00,13:00-24:00; sun 00:00-24:00" --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.success, .status]' <<<"$output")" '[true,"pending"]'
	assert_equal "$(sql "SELECT config->'hours' FROM pms_integrations WHERE account_id = 'hours'")" \
		'{"mon": [["08:00", "12:00"], ["13:00", "24:00"]], "sun": [["00:00", "24:00"]]}'
}

@test "pms setup --dry-run checks that the credentials are set, sends nothing and writes nothing" {
	parlae account add dry >/dev/null
	run --separate-stderr parlae pms setup dry --dry-run --json
	assert_success
	assert_equal "$(jq -c '[.status, .dryRun]' <<<"$output")" '["pending",true]'
	assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE account_id = 'dry'")" "0"
	assert_equal "$(fake_get counters | jq -c '.requests["GET /v4/authorized_practices"]')" "null"
	SIKKA_APP_KEY= run --separate-stderr parlae pms setup dry --dry-run
	assert_equal "$status" 3
	assert_regex "$stderr" "SIKKA_APP_KEY"
}

@test "oauth-url needs the state secret, 32 bytes of it, a redirect URI and a set-up integration" {
	parlae account add needs >/dev/null
	run --separate-stderr parlae sikka oauth-url needs
	assert_equal "$status" 5
	assert_equal "$stderr" "parlae: account 'needs' has no Sikka integration (run 'parlae pms setup needs' first)"
	parlae pms setup needs >/dev/null
	PARLAE_STATE_SECRET= run --separate-stderr parlae sikka oauth-url needs
	assert_equal "$status" 3
	assert_regex "$stderr" "^parlae: PARLAE_STATE_SECRET is not set"
	PARLAE_STATE_SECRET=short run --separate-stderr parlae sikka oauth-url needs
	assert_equal "$status" 3
	assert_regex "$stderr" "^parlae: PARLAE_STATE_SECRET is shorter than 32 bytes"
	APP_BASE_URL= run --separate-stderr parlae sikka oauth-url needs
	assert_equal "$status" 3
	assert_regex "$stderr" "APP_BASE_URL is not set"
	run --separate-stderr parlae sikka oauth-url needs --redirect-uri https://other.example/cb --json
	assert_success
	assert_regex "$(jq -r .url <<<"$output")" 'redirect_uri=https%3A%2F%2Fother.example%2Fcb&'
}

@test "callback needs exactly one way of giving the redirect" {
	run --separate-stderr parlae sikka callback --code x
	assert_equal "$status" 2
	run --separate-stderr parlae sikka callback --url "https://x/cb?code=1" --state y
	assert_equal "$status" 2
	run --separate-stderr parlae sikka callback --url "https://x/cb?code=1"
	assert_equal "$status" 65
	assert_regex "$stderr" "has no state"
}

@test "no secret value ever reaches output, the database or the store files in clear" {
	new_account leak
	out=$BATS_TEST_TMPDIR/all
	{
		parlae sikka oauth-url leak -vv
		landed=$(redirect_for leak)
		parlae sikka callback --url - -vv <<<"$landed"
		parlae status leak --json -vv
		parlae status --json -vv
		parlae secrets list --json
	} >"$out" 2>&1
	grep -q "trace: http: POST $FAKE_SIKKA/v4/request_key" "$out"
	psql_dump=$(pg_dump --no-owner "$PARLAE_DATABASE_URL")
	st=$(fake_get state)
	secret_key=$(fake_get state | jq -r '.. | .secret_key? // empty' | head -n1)
	keys=$(sql "SELECT 1" >/dev/null; fake_get state | jq -r '.. | strings' | grep -E '^[0-9a-f]{32}$' | head -n 20)
	[ -n "$secret_key" ] && [ -n "$keys" ]
	all=$(cat "$out"; echo "$psql_dump"; cat "$BATS_FILE_TMPDIR"/vault/* | tr -c '[:print:]' '.')
	for v in "$SIKKA_APP_KEY" "$PARLAE_MASTER_KEY" "$PARLAE_STATE_SECRET" "$secret_key" $keys; do
		grep -n -F -- "$v" "$out" >&2 || true
		grep -c -F -- "$v" <<<"$psql_dump" >&2 || true
	done
	refute_secrets_in "$all" "$SIKKA_APP_KEY" "$PARLAE_MASTER_KEY" "$PARLAE_STATE_SECRET" "$secret_key" $keys
}

@test "a refused oauth-url is recorded in the audit log" {
	parlae account add refused >/dev/null
	run --separate-stderr parlae sikka oauth-url refused
	assert_equal "$status" 5
	assert_equal "$(sql "SELECT outcome || '|' || error_code FROM audit_events WHERE account_id = 'refused' AND action = 'sikka.oauth_url'")" "failure|not_found"
}

@test "a failed re-authorization of a connected practice keeps it connected, with the keys the row names" {
	build_store_tool
	fake practices '[{"office_id":"D1","practice_name":"First Dental"},{"office_id":"D2","practice_name":"Second Dental"}]' >/dev/null
	fake authorize '{"office_id":"D1"}' >/dev/null
	new_account reauth
	parlae sikka callback --url "$(redirect_for reauth)" >/dev/null
	before=$(store_tool get parlae/pms/sikka/reauth)
	fake authorize '{"office_id":"D2"}' >/dev/null
	sql_admin "CREATE FUNCTION refuse_active2() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN IF NEW.office_id = 'D2' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END \$\$; CREATE TRIGGER refuse_active2 BEFORE UPDATE ON pms_integrations FOR EACH ROW EXECUTE FUNCTION refuse_active2();"
	run --separate-stderr parlae sikka callback --url "$(redirect_for reauth)"
	sql_admin "DROP TRIGGER refuse_active2 ON pms_integrations; DROP FUNCTION refuse_active2();"
	assert_equal "$status" 7
	assert_equal "$(sql "SELECT status || '|' || office_id FROM pms_integrations WHERE account_id = 'reauth'")" "ACTIVE|D1"
	assert_equal "$(store_tool get parlae/pms/sikka/reauth)" "$before"
}

@test "callback --url - on a terminal prompts and reads one line; piped, no prompt" {
	new_account prompted
	landed=$(redirect_for prompted)
	# Typed after the prompt, then Enter, and the input left open: the line is enough.
	mkfifo "$BATS_TEST_TMPDIR/in"
	exec 4<>"$BATS_TEST_TMPDIR/in"
	(sleep 0.5; printf '%s\n' "$landed" >&4) 3>&- &
	rc=0
	timeout 20 script -qfec "NO_COLOR=1 parlae sikka callback --url -" /dev/null <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/tty" 2>&1 || rc=$?
	exec 4>&-
	assert_equal "$rc" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/tty")" "Paste the URL your browser was redirected to: $landed"$'\r\nconnected prompted: Happy Teeth Dental (Dentrix, office D36225)\r'
	# From a pipe: the line alone, nothing on stderr.
	new_account piped
	landed=$(redirect_for piped)
	run --separate-stderr parlae sikka callback --url - <<<"$landed"
	assert_success
	assert_equal "$output" "connected piped: Happy Teeth Dental (Dentrix, office D36225)"
}
