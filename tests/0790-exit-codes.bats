#!/usr/bin/env bats
# The exit codes of Sikka's answers (parlae(1), "Sikka's answers"): every row of the table
# through each command that talks to Sikka: pms setup, sikka callback, secrets rotate and a
# tool call. A rejected credential or authorization is 3 naming what to check or the step to
# redo, not found 5, a failing or unreachable Sikka 6, no answer in time 8.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

setup_file() {
	vapi_setup_file
	parlae account add ec-setup >/dev/null
	parlae account add ec-cb >/dev/null
	parlae pms setup ec-cb >/dev/null 2>&1
}
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	export PARLAE_HTTP_TIMEOUT=1
	fake access '{"office_id":"D36225","access":"ON"}' >/dev/null
}

# A tool call's remedy names its account too.
TOOL_ACCOUNT=happy

# A fault on every request to PATH until cleared.
sikka_fault() { fake faults "{\"method\":\"*\",\"path\":\"$1\",\"count\":-1,$2}" >/dev/null; }

# A fresh code and state for ec-cb, as the practice's redirect would bring them.
callback_args() {
	code=$(fake code '{"office_id":"D36225"}' | jq -r .code)
	state=$(parlae sikka oauth-url ec-cb --json | jq -r .state)
}

# row CODE FAULT MESSAGE [HINT]: the fault on the first Sikka request of each command; each
# exits CODE with MESSAGE, where {call} is that request and {account} the command's account.
# pms setup and sikka callback add " (HINT)"; secrets rotate names the account before the
# message; a tool call's error is the message, in Vapi's response.
row() {
	local want=$1 fault=$2 msg=$3 hint=${4:+ ($4)} m
	m=${msg//\{call\}/GET /v4/authorized_practices}
	sikka_fault /v4/authorized_practices "$fault"
	run --separate-stderr parlae pms setup ec-setup
	fake faults/clear '{}' >/dev/null
	assert_equal "pms setup: $status" "pms setup: $want"
	assert_equal "$stderr" "parlae: ${m//\{account\}/ec-setup}$hint"
	assert_equal "$output" ""

	callback_args
	m=${msg//\{call\}/POST /v4/request_key}
	sikka_fault /v4/request_key "$fault"
	run --separate-stderr parlae sikka callback --code "$code" --state "$state"
	fake faults/clear '{}' >/dev/null
	assert_equal "sikka callback: $status" "sikka callback: $want"
	assert_equal "$stderr" "parlae: ${m//\{account\}/ec-cb}$hint"

	sikka_fault /v4/request_key "$fault"
	run --separate-stderr parlae secrets rotate happy --force
	fake faults/clear '{}' >/dev/null
	assert_equal "secrets rotate: $status" "secrets rotate: $want"
	assert_equal "$stderr" "parlae: happy: ${m//\{account\}/happy}"

	m=${msg//\{call\}/GET /v4/appointments}
	sikka_fault /v4/appointments "$fault"
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	fake faults/clear '{}' >/dev/null
	assert_equal "tool call: $status" "tool call: $want"
	assert_equal "$(jq -r '.results[0].error' <<<"$output")" "${m//\{account\}/$TOOL_ACCOUNT}"
}

@test "401 API2003, the app's credentials rejected: exit 3 naming SIKKA_APP_ID / SIKKA_APP_KEY" {
	row 3 '"status":401' "Sikka rejected the app credentials: check SIKKA_APP_ID / SIKKA_APP_KEY (API2003)"
}

@test "401 API2007, the practice's authorization refused: exit 3, run sikka oauth-url again (was 5)" {
	row 3 '"status":401,"body":{"error_code":"API2007","short_message":"Practice not authorized"}' \
		"Sikka refused the practice's authorization: run 'parlae sikka oauth-url {account}' again (API2007: Practice not authorized)"
}

@test "400 API1025 and API1004, the request key expired or missing: exit 3, run secrets rotate (was 6)" {
	row 3 '"status":400,"body":{"error_code":"API1004","short_message":"Request key missing"}' \
		"Sikka refused the practice's request key: run 'parlae secrets rotate {account} --force' (API1004: Request key missing)"
	# A tool call refreshes an expired key once (naming its account), then gives up.
	TOOL_ACCOUNT=happy row 3 '"status":400,"body":{"error_code":"API1025","short_message":"Request key expired"}' \
		"Sikka refused the practice's request key: run 'parlae secrets rotate {account} --force' (API1025: Request key expired)"
}

@test "401 or 403 without a code Sikka documents: exit 3 naming both the variables and the step (was 6)" {
	row 3 '"status":403,"body":"Forbidden"' \
		"Sikka refused {call} (HTTP 403): check SIKKA_APP_ID / SIKKA_APP_KEY, or run 'parlae sikka oauth-url {account}' again"
	row 3 '"status":401,"body":{"error_code":"API9999","short_message":"?"}' \
		"Sikka refused {call} (HTTP 401 API9999): check SIKKA_APP_ID / SIKKA_APP_KEY, or run 'parlae sikka oauth-url {account}' again"
}

@test "404: exit 5, not found" {
	row 5 '"status":404' "Sikka {call} failed: HTTP 404 API2009: Not found"
}

@test "400 API1020 and API1026, a parameter missing or invalid: exit 65" {
	row 65 '"status":400' "Sikka {call} failed: HTTP 400 API1026: Invalid parameter"
	row 65 '"status":400,"body":{"error_code":"API1020","short_message":"Parameter missing"}' \
		"Sikka {call} failed: HTTP 400 API1020: Parameter missing"
}

@test "412 API2017, the SPU offline: exit 6, ask the office to start it" {
	row 6 '"status":412' "Sikka {call} failed: HTTP 412 API2017: SPU offline" \
		"the practice's Sikka SPU is offline: ask the office to start it"
}

@test "429 after the retries, and 500, 503, 504: exit 6" {
	row 6 '"status":429,"retry_after":0' "Sikka {call} failed: HTTP 429 API2011: Too many requests" \
		"Sikka is limiting parlae's requests: retry later"
	row 6 '"status":500' "Sikka {call} failed: HTTP 500 API2001: Internal server error"
	row 6 '"status":503,"retry_after":0' "Sikka {call} failed: HTTP 503 API2002: Service unavailable"
	row 6 '"status":504' "Sikka {call} failed: HTTP 504 API2022: Gateway timeout"
	row 6 '"status":500,"body":{"error_code":"API2010","short_message":"Data not uploaded yet"}' \
		"Sikka {call} failed: HTTP 500 API2010: Data not uploaded yet" \
		"the practice's data has not reached Sikka yet: retry later"
}

@test "Sikka unreachable: exit 6; no answer within PARLAE_HTTP_TIMEOUT: exit 8 (was 6)" {
	callback_args
	for cmd in "pms setup ec-setup" "sikka callback --code $code --state $state" "secrets rotate happy --force" \
		"vapi tool invoke checkAvailability --account happy --args {\"date\":\"2026-12-01\"}"; do
		# shellcheck disable=SC2086
		SIKKA_API_URL=http://127.0.0.1:1 run --separate-stderr parlae $cmd
		assert_equal "$cmd: $status" "$cmd: 6"
		[[ "$stderr$(jq -r '.results[0].error' <<<"$output" 2>/dev/null)" == *"Sikka unreachable: "* ]] || fail "$cmd: $stderr $output"
	done
	callback_args
	for cmd in "pms setup ec-setup" "sikka callback --code $code --state $state" "secrets rotate happy --force" \
		"vapi tool invoke checkAvailability --account happy --args {\"date\":\"2026-12-01\"}"; do
		sikka_fault '*' '"delay_ms":1500'
		# shellcheck disable=SC2086
		run --separate-stderr parlae $cmd
		fake faults/clear '{}' >/dev/null
		assert_equal "$cmd: $status" "$cmd: 8"
		[[ "$stderr$(jq -r '.results[0].error' <<<"$output" 2>/dev/null)" == *"Sikka timed out: "* ]] || fail "$cmd: $stderr $output"
	done
	sikka_fault /v4/authorized_practices '"delay_ms":1500'
	run --separate-stderr parlae pms setup ec-setup --json
	assert_equal "$status" 8
	assert_equal "$(jq -r '.error | [.code, .hint] | join("|")' <<<"$stderr")" \
		"timeout|no answer within 1 s: retry later, or raise PARLAE_HTTP_TIMEOUT"
}

@test "a code spent twice: exit 3 naming the account's oauth-url, recorded as config (was 5)" {
	callback_args
	parlae sikka callback --code "$code" --state "$state" >/dev/null
	state=$(parlae sikka oauth-url ec-cb --json | jq -r .state)
	run --separate-stderr parlae sikka callback --code "$code" --state "$state" --json
	assert_equal "$status" 3
	assert_equal "$(jq -c .error <<<"$stderr")" \
		"{\"code\":\"config\",\"message\":\"Sikka refused the practice's authorization: run 'parlae sikka oauth-url ec-cb' again (API2007: Practice not authorized)\",\"hint\":null}"
	assert_equal "$(sql "SELECT outcome || '|' || error_code FROM audit_events WHERE account_id = 'ec-cb' AND action = 'sikka.callback' ORDER BY seq DESC LIMIT 1")" "failure|config"
}

@test "a practice that withdrew parlae's access: rotate and tool calls exit 3, run oauth-url again (was 5)" {
	fake revoke '{"office_id":"D36225","keys":"all"}' >/dev/null
	fake access '{"office_id":"D36225","access":"OFF"}' >/dev/null
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	assert_equal "$status" 3
	assert_equal "$(jq -r '.results[0].error' <<<"$output")" \
		"Sikka refused the practice's authorization: run 'parlae sikka oauth-url $TOOL_ACCOUNT' again (API2007: Practice not authorized)"
	# The refresh key refused, then the secret key: the fallback still happens, and says so.
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets rotate happy --force
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: happy: Sikka refused the practice's authorization: run 'parlae sikka oauth-url happy' again (API2007: Practice not authorized)"
	assert_equal "$(fake_get counters | jq -c '[.requests["POST /v4/request_key"], .invalid_refresh.D36225]')" '[2,1]'
	# Access back on: the secret key gets new keys and the tools work again.
	fake access '{"office_id":"D36225","access":"ON"}' >/dev/null
	run --separate-stderr parlae secrets rotate happy --force
	assert_success
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	assert_success
}
