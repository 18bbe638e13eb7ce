#!/usr/bin/env bats
# The fault matrix: each mutating command against each fault. Every cell checks the contract's
# exit code, a one-line message, consistent state afterwards and no secret in the output.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi
load helpers/store

setup_file() {
	vapi_setup_file
	build_store_tool
	parlae account add fm-setup >/dev/null
	parlae account add fm-cb >/dev/null
	parlae pms setup fm-cb >/dev/null
}
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	export PARLAE_HTTP_TIMEOUT=1
	fake_posts "$FAKE_SIKKA/__fake/latency" '{"ms":0}' "$FAKE_TWILIO/__fake/faults/clear" '{}' \
		"$FAKE_TARGET/__fake/faults/clear" '{}' \
		"$FAKE_TARGET/__fake/auth" "{\"mode\":\"secret\",\"secret\":\"$VAPI_WEBHOOK_SECRET\"}" >/dev/null
}

secrets_of_run() {
	echo "$SIKKA_APP_KEY" "$PARLAE_MASTER_KEY" "$PARLAE_STATE_SECRET" "$TWILIO_AUTH_TOKEN" "$VAPI_WEBHOOK_SECRET"
	fake_get state | jq -r '.offices.D36225.request_keys[]?.request_key, .offices.D36225.refresh_keys[]?.refresh_key, .practices[].secret_key'
}

# The invariants that must hold after any cell.
consistent() {
	assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE status = 'ACTIVE' AND secret_ref IS NULL")" "0"
	assert_equal "$(sql "SELECT status FROM pms_integrations WHERE account_id = 'happy'")" "ACTIVE"
	# The connected practice still has a key the fake accepts, whatever just failed.
	key=$(parlae_key happy)
	fake_get state | jq -e --arg k "$key" '[.offices.D36225.request_keys[] | select(.request_key == $k and (.expired | not) and (.revoked | not))] | length == 1' >/dev/null
	# The audit chain is intact.
	assert_equal "$(sql "SELECT count(*) FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1 WHERE b.prev_hash <> a.hash")" "0"
}

# The stored request key of an account.
parlae_key() { store_tool get "parlae/pms/sikka/$1" | jq -r .requestKey; }

# cell EXPECTED_STATUS COMMAND...: run, check status, one line on stderr (or a JSON error
# result on stdout for tool calls), no secret anywhere.
cell() {
	local want=$1
	shift
	run --separate-stderr "$@"
	if [ "$status" != "$want" ]; then
		echo "cell '$*': status $status, wanted $want; stderr: $stderr" >&2
		return 1
	fi
	if [ "$want" != 0 ]; then
		if [ -n "$stderr" ]; then
			# One message line (a --target run also says the status and latency it saw).
			[ "$(printf '%s\n' "$stderr" | grep -c '^parlae: ')" = 1 ] || { echo "cell '$*': not one message: $stderr" >&2; return 1; }
			[ "$(printf '%s\n' "$stderr" | grep -vc '^parlae: \|^HTTP [0-9]* in ')" = 0 ] || { echo "cell '$*': stray lines: $stderr" >&2; return 1; }
		else
			jq -e '.results[0].error | length > 0' <<<"$output" >/dev/null || { echo "cell '$*': no message" >&2; return 1; }
		fi
	fi
	refute_secrets_in "$output $stderr" $(secrets_of_run)
}

# A fault on the fake Sikka for the next requests to PATH.
sikka_fault() { fake faults "{\"method\":\"*\",\"path\":\"$1\",\"count\":-1,$2}" >/dev/null; }
clear_faults() { fake faults/clear '{}' >/dev/null; twilio_fake faults/clear '{}' >/dev/null; curl -sS -X POST "$FAKE_TARGET/__fake/faults/clear" >/dev/null; }

upstream_faults=('"status":500' '"delay_ms":2500' '"status":200,"body":"{not json"' '"status":401')
upstream_codes=(6 8 6 3)

@test "pms setup × upstream 5xx, timeout, malformed body, 401" {
	for i in 0 1 2 3; do
		sikka_fault /v4/authorized_practices "${upstream_faults[$i]}"
		cell "${upstream_codes[$i]}" parlae pms setup fm-setup
		clear_faults
		assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE account_id = 'fm-setup'")" "0"
	done
	consistent
}

@test "sikka callback × upstream faults on each of its calls" {
	for path in /v4/request_key /v4/authorized_practices /v4/practice_location; do
		for i in 0 1 2 3; do
			code=$(fake code '{"office_id":"D36225"}' | jq -r .code)
			state=$(parlae sikka oauth-url fm-cb --json | jq -r .state)
			sikka_fault "$path" "${upstream_faults[$i]}"
			cell "${upstream_codes[$i]}" parlae sikka callback --code "$code" --state "$state"
			clear_faults
			assert_equal "$(sql "SELECT status FROM pms_integrations WHERE account_id = 'fm-cb'")" "ERROR"
			[ ! -e "$BATS_FILE_TMPDIR/vault/parlae~pms~sikka~fm-cb.cur" ]
		done
	done
	consistent
}

@test "vapi tool invoke (Sikka data) × upstream faults" {
	for i in 0 1 2 3; do
		sikka_fault /v4/appointments "${upstream_faults[$i]}"
		cell "${upstream_codes[$i]}" parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
		clear_faults
	done
	consistent
}

@test "secrets rotate × upstream faults: exit 6 (8 for a timeout, 3 for rejected credentials), nothing lost" {
	before=$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'happy'")
	for i in 0 1 2 3; do
		sikka_fault /v4/request_key "${upstream_faults[$i]}"
		cell "${upstream_codes[$i]}" parlae secrets rotate happy --force
		clear_faults
		assert_equal "$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'happy'")" "$before"
	done
	consistent
}

@test "transferToHuman (Twilio) × upstream faults: the destination is still returned, the text marked unsent" {
	for i in 0 1 2 3; do
		twilio_fake faults "{\"count\":-1,${upstream_faults[$i]}}" >/dev/null
		cell 0 parlae vapi tool invoke transferToHuman --account happy --call-id "fm-xfer-$i" --args '{"reason":"x"}'
		assert_equal "$stderr" ""
		assert_equal "$(jq -r '.results[0].result' <<<"$output" | jq -c '[.success, .destination.number, .smsSent]')" '[true,"+15550002000",false]'
		clear_faults
	done
	assert_equal "$(sql "SELECT string_agg(sms_sent || ':' || sms_error, ',' ORDER BY call_id) FROM vapi_call_logs WHERE account_id = 'happy' AND call_id LIKE 'fm-xfer-%'")" \
		"false:SMS service unreachable,false:SMS service timed out,false:SMS service unreachable,false:Twilio error 20003"
	consistent
}

@test "vapi tool invoke --target × upstream 5xx, timeout, 401" {
	for i in 0 1 3; do
		curl -sS -X POST -H 'Content-Type: application/json' --data "{\"count\":-1,${upstream_faults[$i]}}" "$FAKE_TARGET/__fake/faults" >/dev/null
		cell "${upstream_codes[$i]}" parlae vapi tool invoke --payload "$BATS_TEST_DIRNAME/fixtures/vapi/tool-calls-check-availability.json" --target "$FAKE_TARGET/"
		clear_faults
	done
}

@test "every command × the database down at the start: exit 7" {
	down=$(closed_db_url)
	state=$(parlae sikka oauth-url fm-cb --json | jq -r .state)
	for cmd in "db migrate" "account add x" "account list" "pms setup happy" "sikka oauth-url happy" \
		"sikka callback --code c --state $state" "vapi phone add happy --vapi-id p --number +15550001111" \
		"vapi tool invoke checkAvailability --account happy" "secrets rotate happy" "status happy"; do
		# shellcheck disable=SC2086
		PARLAE_DATABASE_URL=$down cell 7 parlae $cmd
	done
	consistent
}

# Start a command against a slow Sikka, then kill its database connection mid-command.
@test "the database killed mid-command: exit 7, nothing half-done" {
	export PARLAE_HTTP_TIMEOUT=10
	fake latency '{"ms":1500}' >/dev/null
	for cmd in "pms setup fm-setup" "vapi tool invoke checkAvailability --account happy --args {\"date\":\"2026-12-01\"}" "secrets rotate happy --force"; do
		# shellcheck disable=SC2086
		parlae $cmd >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
		pid=$!
		sleep 0.7
		sql_admin "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'parlae %' AND datname = current_database()" >/dev/null
		status=0
		wait $pid || status=$?
		if [ "$status" != 7 ]; then
			echo "'$cmd': status $status; $(cat "$BATS_TEST_TMPDIR/err")" >&2
			return 1
		fi
		refute_secrets_in "$(cat "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err")" $(secrets_of_run)
	done
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE account_id = 'fm-setup'")" "0"
	consistent
}

@test "the secret store unwritable or unusable: exit 3 naming it; nothing half-done" {
	before=$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'happy'")
	mkdir "$BATS_FILE_TMPDIR/vault/parlae~pms~sikka~fm-cb.cur"
	code=$(fake code '{"office_id":"D36225"}' | jq -r .code)
	state=$(parlae sikka oauth-url fm-cb --json | jq -r .state)
	cell 3 parlae sikka callback --code "$code" --state "$state"
	rmdir "$BATS_FILE_TMPDIR/vault/parlae~pms~sikka~fm-cb.cur"
	assert_equal "$(sql "SELECT status FROM pms_integrations WHERE account_id = 'fm-cb'")" "ERROR"
	chmod 755 "$BATS_FILE_TMPDIR/vault"
	cell 3 parlae secrets rotate happy --force
	chmod 700 "$BATS_FILE_TMPDIR/vault"
	assert_equal "$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'happy'")" "$before"
	consistent
}

@test "interrupted by SIGINT or SIGTERM mid-command: exit 130, nothing half-done" {
	export PARLAE_HTTP_TIMEOUT=10
	fake latency '{"ms":1500}' >/dev/null
	for sig in INT TERM; do
		for cmd in "pms setup fm-setup" "secrets rotate happy --force" "vapi tool invoke checkAvailability --account happy --args {\"date\":\"2026-12-01\"}"; do
			# shellcheck disable=SC2086
			parlae $cmd >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
			pid=$!
			sleep 0.7
			kill -s $sig $pid
			status=0
			wait $pid || status=$?
			assert_equal "$status" 130
			assert_equal "$(cat "$BATS_TEST_TMPDIR/err")" "parlae: interrupted"
		done
	done
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE account_id = 'fm-setup'")" "0"
	# The rotation's lock went with its connection: a new one goes through.
	run --separate-stderr parlae secrets rotate happy --force
	assert_success
	consistent
}

@test "Retry-After as an HTTP-date is waited for like the seconds form; a date in the past is no wait" {
	parlae account add fm-retry >/dev/null
	fake counters/reset '{}' >/dev/null
	fake faults '{"path":"/v4/authorized_practices","status":503,"retry_after":{"date":3}}' >/dev/null
	start=$(date +%s%N)
	run --separate-stderr parlae -vv pms setup fm-retry
	elapsed_ms=$((($(date +%s%N) - start) / 1000000))
	assert_equal "$status" 0
	assert_equal "$(fake_get counters | jq '.requests["GET /v4/authorized_practices"]')" 2
	# The date has whole seconds: 3 s from the answer is a wait of 2 to 3 s, never the 0 it was.
	wait=$(sed -n 's/^.*http: retrying in \([0-9]*\) ms (Retry-After)$/\1/p' <<<"$stderr")
	[ "$wait" -ge 2000 ] && [ "$wait" -le 3000 ] || { echo "waited '$wait' ms: $stderr" >&2; false; }
	[ "$elapsed_ms" -ge 2000 ] || { echo "the command took $elapsed_ms ms" >&2; false; }

	fake counters/reset '{}' >/dev/null
	fake faults '{"path":"/v4/authorized_practices","status":503,"retry_after":{"date":-60}}' >/dev/null
	run --separate-stderr parlae -vv pms setup fm-retry
	assert_equal "$status" 0
	assert_equal "$(fake_get counters | jq '.requests["GET /v4/authorized_practices"]')" 2
	assert_equal "$(grep -c 'http: retrying in 0 ms (Retry-After)$' <<<"$stderr")" 1
}
