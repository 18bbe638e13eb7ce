#!/usr/bin/env bats
# The fake Twilio Messages API (tests/fakes/twilio.py) and the fake Vapi-webhook backend
# (tests/fakes/vapi_target.py) answer as upstreams.md says: the other suites trust them, so they
# are tested on their own, with curl.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes

AC=AC0123456789abcdef0123456789abcdef
TOKEN=twilio-token-5e4d3c2b1a
SECRET=vapi-secret-9a8b7c6d

setup_file() {
	start_fake twilio "$BATS_FILE_TMPDIR" --account-sid "$AC" --auth-token "$TOKEN"
	start_fake vapi_target "$BATS_FILE_TMPDIR" --auth secret --secret "$SECRET"
	export FAKE_TWILIO=http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/twilio.port")
	export FAKE_TARGET=http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/vapi_target.port")
}

teardown_file() {
	stop_fake twilio "$BATS_FILE_TMPDIR"
	stop_fake vapi_target "$BATS_FILE_TMPDIR"
}

setup() {
	ctl "$FAKE_TWILIO" reset '{}' >/dev/null
	ctl "$FAKE_TARGET" reset '{}' >/dev/null
}

# ctl BASE PATH [JSON]: a fake's control API (GET without a body, POST with one).
ctl() { curl -sSf "$1/__fake/$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }

# call CURL-ARGS...: sets $code, $body and $headers.
call() {
	code=$(curl -sS -o "$BATS_TEST_TMPDIR/body" -D "$BATS_TEST_TMPDIR/headers" -w '%{http_code}' "$@")
	body=$(cat "$BATS_TEST_TMPDIR/body")
	headers=$(tr -d '\r' <"$BATS_TEST_TMPDIR/headers")
}

# sms [AUTH] FORM-ARGS...: POST to the Messages resource with Basic auth (default: the right one).
sms() {
	local auth=$AC:$TOKEN
	case ${1-} in *:*) auth=$1; shift ;; esac
	call -u "$auth" "$FAKE_TWILIO/2010-04-01/Accounts/$AC/Messages.json" "$@"
}

# hook CURL-ARGS...: POST a JSON payload (from $payload) to the target.
hook() { call "$FAKE_TARGET/" -H 'Content-Type: application/json' --data-binary "$payload" "$@"; }

hmac_hex() { printf '%s' "$2" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1; }

# hook_hmac TS [KEY]: a request signed as Vapi signs: x-signature = HMAC(KEY, "TS.<body>").
hook_hmac() {
	hook -H "x-timestamp: $1" -H "x-signature: $(hmac_hex "${2:-$SECRET}" "$1.$payload")"
}

result_of() { jq -r ".results[$1].result" <<<"$body"; }

TOOL_CALLS='{"message":{"type":"tool-calls","timestamp":1794393640000,
 "toolCallList":[
  {"id":"call_a","type":"function","function":{"name":"get-patient-info","arguments":{"phone":"+15551234567"}}},
  {"id":"call_b","type":"function","function":{"name":"check_availability","arguments":"{\"date\":\"2026-12-02\"}"}}],
 "toolWithToolCallList":[],
 "call":{"id":"call-0001","orgId":"org-0001","phoneNumberId":"pn-happy-dental","customer":{"number":"+15551234567"}}}}'

# ---- Twilio ------------------------------------------------------------------------------------

@test "twilio: a message is created: 201, an SM sid, queued, and recorded" {
	sms --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 \
		--data-urlencode 'Body=Transfer: billing question, caller +15557654321'
	assert_equal "$code" 201
	assert_regex "$(jq -r .sid <<<"$body")" '^SM[0-9a-f]{32}$'
	assert_equal "$(jq -c '[.status, .to, .from, .body, .account_sid, .direction]' <<<"$body")" \
		"[\"queued\",\"+15551234567\",\"+15005550006\",\"Transfer: billing question, caller +15557654321\",\"$AC\",\"outbound-api\"]"
	assert_regex "$(jq -r .date_created <<<"$body")" '^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} \+0000$'
	assert_equal "$(jq -r .uri <<<"$body")" "/2010-04-01/Accounts/$AC/Messages/$(jq -r .sid <<<"$body").json"
	sid=$(jq -r .sid <<<"$body")

	run ctl "$FAKE_TWILIO" messages
	assert_success
	assert_equal "$(jq -c "[length, .[0].sid == \"$sid\", .[0].to, .[0].from, .[0].body, .[0].account_sid]" <<<"$output")" \
		"[1,true,\"+15551234567\",\"+15005550006\",\"Transfer: billing question, caller +15557654321\",\"$AC\"]"
	run ctl "$FAKE_TWILIO" counters
	assert_equal "$(jq -c '[.requests, .created]' <<<"$output")" '[1,1]'

	# The resource can be fetched back.
	call -u "$AC:$TOKEN" "$FAKE_TWILIO/2010-04-01/Accounts/$AC/Messages/$sid.json"
	assert_equal "$code" 200
	assert_equal "$(jq -r .sid <<<"$body")" "$sid"
}

@test "twilio: a MessagingServiceSid stands in for From" {
	sms --data-urlencode To=+15551234567 -d MessagingServiceSid=MG0123456789abcdef0123456789abcdef -d Body=hi
	assert_equal "$code" 201
	assert_equal "$(jq -c '[.from, .messaging_service_sid]' <<<"$body")" '[null,"MG0123456789abcdef0123456789abcdef"]'
}

@test "twilio: wrong credentials get 401 with code 20003, and nothing is sent" {
	sms "$AC:not-the-token" --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code" 401
	assert_equal "$body" '{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}'
	grep -qx 'WWW-Authenticate: Basic realm="Twilio API"' <<<"$headers"
	call "$FAKE_TWILIO/2010-04-01/Accounts/$AC/Messages.json" --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code" 401
	assert_equal "$(jq .code <<<"$body")" 20003
	run ctl "$FAKE_TWILIO" messages
	assert_output '[]'
	run ctl "$FAKE_TWILIO" counters
	assert_equal "$(jq .unauthorized <<<"$output")" 2
}

@test "twilio: a To that is not an E.164 number gets 400 code 21211" {
	for to in +1555 +1555123456a not-a-number 5551234567 +10551234567; do
		sms --data-urlencode "To=$to" --data-urlencode From=+15005550006 -d Body=hi
		assert_equal "$code/$to" "400/$to"
		assert_equal "$(jq -c '[.code, .status, .more_info]' <<<"$body")" '[21211,400,"https://www.twilio.com/docs/errors/21211"]'
	done
	run ctl "$FAKE_TWILIO" messages
	assert_output '[]'
}

@test "twilio: missing Body, To or From get 21602, 21604, 21603" {
	sms --data-urlencode To=+15551234567 --data-urlencode From=+15005550006
	assert_equal "$code $(jq .code <<<"$body")" '400 21602'
	sms --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code $(jq .code <<<"$body")" '400 21604'
	sms --data-urlencode To=+15551234567 -d Body=hi
	assert_equal "$code $(jq .code <<<"$body")" '400 21603'
	# A JSON body is not read: Twilio takes form parameters only.
	sms -H 'Content-Type: application/json' -d '{"To":"+15551234567","From":"+15005550006","Body":"hi"}'
	assert_equal "$code $(jq .code <<<"$body")" '400 21604'
	run ctl "$FAKE_TWILIO" counters
	assert_equal "$(jq -c '[.rejected, .errors["21602"], .errors["21604"], .errors["21603"]]' <<<"$output")" '[4,1,2,1]'
}

@test "twilio: faults: a 429 with code 20429 once, then a message; a 503 with Retry-After; a delay" {
	run ctl "$FAKE_TWILIO" faults '{"status":429}'
	assert_success
	sms --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code" 429
	assert_equal "$(jq -c '[.code, .status]' <<<"$body")" '[20429,429]'
	sms --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code" 201

	ctl "$FAKE_TWILIO" faults '{"status":503,"retry_after":7,"path":"/2010-04-01/*"}' >/dev/null
	sms --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code" 503
	grep -qx 'Retry-After: 7' <<<"$headers"

	ctl "$FAKE_TWILIO" faults '{"delay_ms":400}' >/dev/null
	start=$(date +%s%N)
	sms --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code" 201
	[ $(( ($(date +%s%N) - start) / 1000000 )) -ge 400 ]

	run ctl "$FAKE_TWILIO" counters
	assert_equal "$(jq -c '[.faults, .created]' <<<"$output")" '[3,2]'
}

@test "twilio: a dropped connection, and a fault after the send loses only the answer" {
	ctl "$FAKE_TWILIO" faults '{"close":true}' >/dev/null
	run curl -sS -u "$AC:$TOKEN" "$FAKE_TWILIO/2010-04-01/Accounts/$AC/Messages.json" --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_failure 52
	ctl "$FAKE_TWILIO" faults '{"status":500,"when":"after"}' >/dev/null
	sms --data-urlencode To=+15551234567 --data-urlencode From=+15005550006 -d Body=hi
	assert_equal "$code $(jq .code <<<"$body")" '500 20500'
	run ctl "$FAKE_TWILIO" messages
	assert_equal "$(jq length <<<"$output")" 1
}

# ---- the Vapi target ---------------------------------------------------------------------------

@test "target: secret mode accepts X-Vapi-Secret and refuses a wrong or missing one" {
	payload=$TOOL_CALLS
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 200
	hook -H "X-Vapi-Secret: $SECRET-not"
	assert_equal "$code" 401
	assert_equal "$body" '{"error":"unauthorized"}'
	hook
	assert_equal "$code" 401
	hook -H "Authorization: Bearer $SECRET"
	assert_equal "$code" 401
	run ctl "$FAKE_TARGET" counters
	assert_equal "$(jq -c '[.requests, .authorized, .unauthorized]' <<<"$output")" '[4,1,3]'
}

@test "target: bearer mode accepts the token and refuses a wrong one or another scheme" {
	run ctl "$FAKE_TARGET" auth "{\"mode\":\"bearer\",\"secret\":\"tok-123\"}"
	assert_success
	assert_equal "$(jq -r .mode <<<"$output")" bearer
	payload=$TOOL_CALLS
	hook -H 'Authorization: Bearer tok-123'
	assert_equal "$code" 200
	hook -H 'Authorization: Bearer tok-1234'
	assert_equal "$code" 401
	hook -H 'Authorization: Basic tok-123'
	assert_equal "$code" 401
	hook -H 'X-Vapi-Secret: tok-123'
	assert_equal "$code" 401
}

@test "target: hmac mode accepts a signature over \"<ts>.<body>\" with seconds or milliseconds" {
	ctl "$FAKE_TARGET" auth '{"mode":"hmac"}' >/dev/null
	payload=$TOOL_CALLS
	hook_hmac "$(date +%s)"
	assert_equal "$code" 200
	hook_hmac "$(date +%s%3N)"
	assert_equal "$code" 200
	hook_hmac "$(( $(date +%s) - 250 ))"
	assert_equal "$code" 200
	# The fake keeps what it received: a test can check the client's headers itself.
	run ctl "$FAKE_TARGET" 'requests?n=1'
	assert_success
	ts=$(jq -r '.[0].headers["x-timestamp"]' <<<"$output")
	assert_equal "$(jq -r '.[0].headers["x-signature"]' <<<"$output")" "$(hmac_hex "$SECRET" "$ts.$payload")"
	assert_equal "$(jq -r '.[0].body' <<<"$output")" "$payload"
	assert_equal "$(jq -c '.[0] | [.status, .authorized, .auth_error]' <<<"$output")" '[200,true,null]'
}

@test "target: hmac mode refuses a stale or future timestamp, a wrong key, a changed body, an uppercase or missing signature" {
	ctl "$FAKE_TARGET" auth '{"mode":"hmac"}' >/dev/null
	payload=$TOOL_CALLS
	hook_hmac "$(( $(date +%s) - 400 ))"
	assert_equal "$code" 401
	hook_hmac "$(( ($(date +%s) - 400) * 1000 ))"
	assert_equal "$code" 401
	hook_hmac "$(( $(date +%s) + 400 ))"
	assert_equal "$code" 401
	hook_hmac "$(date +%s)" wrong-key
	assert_equal "$code" 401
	ts=$(date +%s)
	hook -H "x-timestamp: $ts" -H "x-signature: $(hmac_hex "$SECRET" "$ts.$payload x")"
	assert_equal "$code" 401
	hook -H "x-timestamp: $ts" -H "x-signature: $(hmac_hex "$SECRET" "$ts.$payload" | tr a-f A-F)"
	assert_equal "$code" 401
	hook -H "x-timestamp: $ts"
	assert_equal "$code" 401
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 401
	assert_equal "$body" '{"error":"unauthorized"}'
	run ctl "$FAKE_TARGET" requests
	assert_equal "$(jq -r '.[0].auth_error' <<<"$output")" 'x-timestamp outside the allowed window'
	assert_equal "$(jq -r '.[3].auth_error' <<<"$output")" 'bad x-signature'
	run ctl "$FAKE_TARGET" counters
	assert_equal "$(jq -c '[.requests, .authorized, .unauthorized]' <<<"$output")" '[8,0,8]'
}

@test "target: toolCallList gets one result per call, in order, each one line of JSON text" {
	payload=$TOOL_CALLS
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.results[] | [.toolCallId, .name]]' <<<"$body")" \
		'[["call_a","get-patient-info"],["call_b","check_availability"]]'
	assert_equal "$(result_of 0)" '{"success":true,"message":"ok from fake target","tool":"get-patient-info"}'
	assert_equal "$(result_of 1)" '{"success":true,"message":"ok from fake target","tool":"check_availability"}'
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/body")" 0
}

@test "target: toolCalls, then toolWithToolCallList[].toolCall, are read when toolCallList is absent" {
	payload='{"message":{"type":"tool-calls","toolCalls":[{"id":"tc_1","type":"function","function":{"name":"bookAppointment","arguments":{}}},{"id":"tc_1","type":"function","function":{"name":"bookAppointment","arguments":{}}}]}}'
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.results[] | [.toolCallId, .name]]' <<<"$body")" '[["tc_1","bookAppointment"]]'
	assert_equal "$(result_of 0)" '{"success":true,"message":"ok from fake target","tool":"bookAppointment"}'

	payload='{"message":{"type":"tool-calls","toolWithToolCallList":[{"type":"function","function":{"name":"transferToHuman","parameters":{"type":"object"}},"toolCall":{"id":"tw_1","type":"function","function":{"name":"transferToHuman","arguments":"{\"reason\":\"billing\"}"}}}]}}'
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.results[] | [.toolCallId, .name]]' <<<"$body")" '[["tw_1","transferToHuman"]]'
	assert_equal "$(result_of 0)" '{"success":true,"message":"ok from fake target","tool":"transferToHuman"}'
}

@test "target: the legacy function-call gets {\"result\":...}, other messages {}, malformed JSON 400" {
	payload='{"message":{"type":"function-call","functionCall":{"name":"checkAvailability","parameters":"{\"date\":\"2026-12-03\"}"}}}'
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 200
	assert_equal "$(jq -c keys <<<"$body")" '["result"]'
	assert_equal "$(jq -r .result <<<"$body")" '{"success":true,"message":"ok from fake target","tool":"checkAvailability"}'

	payload='{"message":{"type":"end-of-call-report","endedReason":"customer-ended-call"}}'
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code $body" '200 {}'

	payload='{"message":{"type":"tool-calls","toolCallList":[{"id":"call_bad","function":{"name":"x","arguments":{"date":"2026-12-'
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 400
	assert_equal "$(jq -r .error <<<"$body")" 'invalid JSON'
	# Authentication comes first: a malformed body with a wrong secret is a 401.
	hook -H 'X-Vapi-Secret: nope'
	assert_equal "$code" 401
	run ctl "$FAKE_TARGET" counters
	assert_equal "$(jq -c '[.requests, .authorized, .unauthorized, .malformed]' <<<"$output")" '[4,3,1,1]'
}

@test "target: faults answer before authentication; reset restores the start-up mode and secret" {
	ctl "$FAKE_TARGET" faults '{"status":503,"count":2}' >/dev/null
	payload=$TOOL_CALLS
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 503
	hook -H 'X-Vapi-Secret: wrong'
	assert_equal "$code" 503
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code" 200
	ctl "$FAKE_TARGET" faults '{"status":500,"body":"{\"oops\":1}"}' >/dev/null
	hook -H "X-Vapi-Secret: $SECRET"
	assert_equal "$code $body" '500 {"oops":1}'
	run ctl "$FAKE_TARGET" counters
	assert_equal "$(jq -c '[.requests, .authorized, .unauthorized, .faults]' <<<"$output")" '[4,1,0,3]'

	ctl "$FAKE_TARGET" auth '{"mode":"bearer","secret":"other"}' >/dev/null
	ctl "$FAKE_TARGET" reset '{}' >/dev/null
	run ctl "$FAKE_TARGET" auth
	assert_equal "$(jq -c '[.mode, .secret]' <<<"$output")" "[\"secret\",\"$SECRET\"]"
	run ctl "$FAKE_TARGET" requests
	assert_output '[]'
}

@test "target: only the last 100 requests are kept; connections are kept alive" {
	payload='{"message":{"type":"status-update"}}'
	urls=()
	for i in $(seq 105); do urls+=("$FAKE_TARGET/hook/$i"); done
	run curl -sS -o /dev/null -w '%{num_connects}\n' -H "X-Vapi-Secret: $SECRET" --data-binary "$payload" "${urls[@]}"
	assert_success
	# curl reuses one connection for all of them
	assert_equal "$(grep -c '^1$' <<<"$output")" 1
	run ctl "$FAKE_TARGET" requests
	assert_equal "$(jq -c '[length, .[0].path, .[-1].path, .[-1].seq]' <<<"$output")" '[100,"/hook/6","/hook/105",105]'
	run ctl "$FAKE_TARGET" 'requests?n=3'
	assert_equal "$(jq -c '[.[].path]' <<<"$output")" '["/hook/103","/hook/104","/hook/105"]'
}
