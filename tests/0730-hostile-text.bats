#!/usr/bin/env bats
# Text from outside that is not UTF-8, or that a length cuts inside a character: parlae makes it
# valid at the boundary (U+FFFD for bytes that are not UTF-8), cuts it between characters, and
# every JSON it prints is valid UTF-8. Each test began as a crash or a lost answer (issue 11).
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

# Fails unless the raw bytes given are one JSON document of valid UTF-8.
assert_json_utf8() {
	python3 -c 'import json, sys; json.loads(sys.stdin.buffer.read().decode("utf-8", "strict"))' <<<"$1"
}

# What an unknown tool's error goes on with.
TOOLS="the tools are getPatientInfo, checkAvailability, bookAppointment, transferToHuman, getAppointments, rescheduleAppointment, cancelAppointment, createPatient, takeMessage"

# N copies of a string.
rep() { local s="" i; for ((i = 0; i < $2; i++)); do s+=$1; done; printf '%s' "$s"; }

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() { vapi_setup; }

@test "a legacy function-call whose unknown name is cut inside a character answers, cut before it" {
	name="$(rep a 79)é"
	msg='{"message":{"type":"function-call","call":{"id":"c-utf8-name","phoneNumberId":"pn-happy-dental"},
	      "functionCall":{"name":"'$name'","parameters":{}}}}'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$msg"
	assert_equal "$status" 5
	assert_equal "$stderr" "parlae: vapi tool invoke: $name: unknown tool '$(rep a 79)'; $TOOLS"
	assert_json_utf8 "$output"
	assert_equal "$(jq -r .result <<<"$output")" "unknown tool '$(rep a 79)'; $TOOLS"
}

@test "a tool-calls name of 4-byte characters is cut between characters at every length" {
	for n in 76 77 78 79 80; do
		name="$(rep a "$n")😀😀"
		msg='{"message":{"type":"tool-calls","call":{"id":"c-utf8-'$n'","phoneNumberId":"pn-happy-dental"},
		      "toolCallList":[{"id":"t1","function":{"name":"'$name'","arguments":{}}}]}}'
		run --separate-stderr parlae vapi tool invoke --payload - <<<"$msg"
		assert_equal "$status" 5
		assert_json_utf8 "$output"
		want="$(rep a "$n")"
		[ "$n" -gt 76 ] || want+="😀"
		assert_equal "$stderr" "parlae: vapi tool invoke: $name (t1): unknown tool '$want'; $TOOLS"
		assert_equal "$(jq -r '.results[0] | [.name, .error] | join("|")' <<<"$output")" "$name|unknown tool '$want'; $TOOLS"
	done
}

@test "a Sikka 500 whose short_message is 150 × é reaches the agent as an error" {
	fake faults '{"method":"GET","path":"/v4/patients","status":500,"count":-1,
		"body":{"error_code":"API9999","short_message":"'"$(rep é 150)"'"}}' >/dev/null
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args '{"query":"Ana Diaz"}'
	assert_equal "$status" 6
	assert_json_utf8 "$output"
	assert_equal "$(jq -r '.results[0].error' <<<"$output")" \
		"Sikka GET /v4/patients failed: HTTP 500 API9999: $(rep é 100)"
	# One line on stderr, the same error.
	assert_equal "$stderr" "parlae: vapi tool invoke: getPatientInfo ($(jq -r '.results[0].toolCallId' <<<"$output")): Sikka GET /v4/patients failed: HTTP 500 API9999: $(rep é 100)"
}

@test "a Sikka error whose message cuts inside a character at 200 bytes is cut before it" {
	fake faults '{"method":"GET","path":"/v4/patients","status":500,"count":-1,
		"body":{"error_code":"API9999","short_message":"'"x$(rep é 150)"'"}}' >/dev/null
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args '{"query":"Ana Diaz"}'
	assert_equal "$status" 6
	assert_json_utf8 "$output"
	assert_equal "$(jq -r '.results[0].error' <<<"$output")" \
		"Sikka GET /v4/patients failed: HTTP 500 API9999: x$(rep é 99)"
	assert_equal "$stderr" "parlae: vapi tool invoke: getPatientInfo ($(jq -r '.results[0].toolCallId' <<<"$output")): Sikka GET /v4/patients failed: HTTP 500 API9999: x$(rep é 99)"
}

@test "pms setup with a time zone that is not UTF-8 is a usage error, the byte shown as U+FFFD" {
	run --separate-stderr parlae pms setup happy --timezone $'\xff'
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: --timezone: unknown time zone '�' (use an IANA name such as America/New_York or UTC)"
	run --separate-stderr parlae --json pms setup happy --timezone $'Europe/\xc3'
	assert_equal "$status" 2
	assert_json_utf8 "$stderr"
	assert_equal "$(jq -r .error.message <<<"$stderr")" "--timezone: unknown time zone 'Europe/�'"
	assert_equal "$(sql "SELECT config->>'timezone' FROM pms_integrations WHERE account_id = 'happy'")" "America/New_York"
}

@test "bookAppointment with 501 bytes of accented notes sends a body, its description cut between characters" {
	notes="x$(rep 'ñé' 125)" # 501 bytes: 511 falls inside a character
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy \
		--args '{"startTime":"2026-12-03T11:00:00","patientId":"P1","notes":"'"$notes"'"}'
	assert_success
	assert_equal "$stderr" ""
	assert_json_utf8 "$output"
	assert_equal "$(jq -r '.results[0].result' <<<"$output" | jq -c '[.success, .status]')" '[true,"booked"]'
	desc=$(fake_get state | jq -r '.writebacks[-1].body.description')
	# "appointment: x" is 14 bytes; then 496 bytes of whole characters fit in 511.
	assert_equal "$desc" "appointment: x$(rep 'ñé' 124)"
}

@test "--json account add of an id that is not UTF-8 prints one JSON error" {
	run --separate-stderr parlae --json account add $'\xff'
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_json_utf8 "$stderr"
	assert_equal "$(jq -c .error <<<"$stderr")" \
		'{"code":"usage","message":"invalid account id '"'�'"'","hint":"use 1-63 of a-z, 0-9, '"'_' and '-'"', starting with a letter or digit"}'
}

@test "each invalid byte becomes one U+FFFD: truncated, overlong, surrogate, beyond U+10FFFF" {
	run --separate-stderr parlae --json account add $'a\xc3(\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80z\xe2\x82'
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_json_utf8 "$stderr"
	assert_equal "$(jq -r .error.message <<<"$stderr")" "invalid account id 'a�(���������z��'"
}

@test "an id cut at 80 bytes keeps whole 2-, 3- and 4-byte characters" {
	for c in é € 😀; do
		for n in 76 77 78 79 80; do
			run --separate-stderr parlae --json account add "$(rep x "$n")$c$c"
			assert_equal "$status" 2
			assert_json_utf8 "$stderr"
			want=$(rep x "$n")
			while :; do
				next="$want$c"
				[ "$(printf '%s' "$next" | wc -c)" -le 80 ] || break
				want=$next
			done
			assert_equal "$(jq -r .error.message <<<"$stderr")" "invalid account id '$want'"
		done
	done
}

@test "an error message longer than 512 bytes is cut between characters" {
	run --separate-stderr parlae --json vapi tool invoke --payload "/nonexistent-/$(rep é 300)"
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_json_utf8 "$stderr"
	msg=$(jq -r .error.message <<<"$stderr")
	# "cannot open /nonexistent-/" is 26 bytes: 511 falls inside the 243rd é.
	assert_equal "$msg" "cannot open /nonexistent-/$(rep é 242)"
}

@test "a usage error quoting an argument that is not UTF-8 is valid JSON" {
	run --separate-stderr parlae --json account add $'--\xff'
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_json_utf8 "$stderr"
	assert_equal "$(jq -r .error.code <<<"$stderr")" "usage"
}

@test "bookAppointment whose writeback id Sikka names in accented text keeps the confirmation number" {
	fake faults '{"method":"POST","path":"/v4/appointment","status":200,"count":1,
		"body":{"long_message":"Id:'"x$(rep é 20)"'"}}' >/dev/null
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy \
		--args '{"startTime":"2026-12-03T11:00:00","patientId":"P1"}'
	assert_json_utf8 "$output"
	assert_equal "$(jq -r '.results[0].result' <<<"$output" | jq -r .confirmationNumber)" "x$(rep é 14)"
}

@test "option values quoted in usage errors are cut between characters" {
	run --separate-stderr parlae --json audit tail --since "x$(rep é 50)"
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_json_utf8 "$stderr"
	assert_equal "$(jq -r .error.message <<<"$stderr")" "--since takes ISO 8601 or a duration, not 'x$(rep é 39)'"
	run --separate-stderr parlae --json audit tail --account $'x\xe2\x82\xac\xff'
	assert_equal "$status" 2
	assert_json_utf8 "$stderr"
	assert_equal "$(jq -r .error.message <<<"$stderr")" "invalid account id 'x€�'"
}

@test "vapi tool invoke with a tool name that is not UTF-8 answers with the name made valid (found by fuzz_reply)" {
	run --separate-stderr parlae vapi tool invoke $'ab\xff\xc3' --account happy --args '{}'
	assert_equal "$status" 5
	assert_equal "$stderr" "parlae: vapi tool invoke: ab�� ($(jq -r '.results[0].toolCallId' <<<"$output")): unknown tool 'ab��'; the tools are getPatientInfo, checkAvailability, bookAppointment, transferToHuman, getAppointments, rescheduleAppointment, cancelAppointment, createPatient, takeMessage"
	assert_json_utf8 "$output"
	assert_equal "$(jq -r '.results[0] | [.name, .error] | join("|")' <<<"$output")" "ab��|unknown tool 'ab��'; the tools are getPatientInfo, checkAvailability, bookAppointment, transferToHuman, getAppointments, rescheduleAppointment, cancelAppointment, createPatient, takeMessage"
}

@test "sikka callback: a code, state, error or office_id that decodes to bytes that are not UTF-8 is bad input" {
	for param in "code=%ff" "code=ab%C3" "error=%ed%a0%80" "office_id=%c0%af"; do
		run --separate-stderr parlae sikka callback --url "https://backend.example/cb?state=s.t&$param"
		assert_equal "$status" 65
		assert_equal "$output" ""
		assert_equal "$stderr" "parlae: the redirect URL has a malformed or repeated '${param%%=*}'"
	done
}

# --- control characters: shown as text, never sent to the terminal (cli.md, after Exit codes) --

# A practice whose Sikka redirect came back with ERROR (URL-encoded) as its error: the callback's
# exit status, stdout and stderr are left in status, output and stderr.
deny_with() { # ACCOUNT ERROR
	parlae account add "$1" >/dev/null
	parlae pms setup "$1" --timezone UTC >/dev/null
	local state
	state=$(parlae sikka oauth-url "$1" --json | jq -r .state)
	run --separate-stderr parlae sikka callback --url "https://backend.example/pms/sikka/oauth/callback?error=$2&state=$state"
}

@test "an escape sequence in a redirect's error reaches stderr as text, and status shows it as text too" {
	deny_with esc1 'access_denied%1b%5b2J%1b%5d0;owned%07%c2%9b31m%7f'
	assert_equal "$status" 1
	assert_equal "$stderr" 'parlae: the practice denied access: access_denied\x1b[2J\x1b]0;owned\x07\u009b31m\u007f'
	run --separate-stderr parlae status esc1
	assert_success
	assert_equal "$stderr" ""
	assert_line 'error         the practice denied access: access_denied\x1b[2J\x1b]0;owned\x07\u009b31m\u007f'
	# No byte of a control character on either stream: C0 but newline and tab, DEL, C1.
	run bash -c 'parlae status esc1 2>&1 | LC_ALL=C grep -c -P "[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]"'
	assert_equal "$output" 0
}

@test "--json keeps such text valid JSON: C0 escaped by jansson, DEL and C1 as JSON escapes" {
	deny_with esc2 'x%1b%5b2J%c2%9b%7f'
	run --separate-stderr parlae status esc2 --json
	assert_success
	assert_json_utf8 "$output"
	assert_equal "$(jq -r .error <<<"$output")" "the practice denied access: x$(printf '\033[2J\302\233\177')"
	[[ $output == *'x\u001B[2J\u009b\u007f"'* ]]
	run bash -c 'parlae status esc2 --json | LC_ALL=C grep -c -P "[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]"'
	assert_equal "$output" 0
}

@test "a C1 control in an argument quoted by a usage error is shown as text; invalid bytes as U+FFFD" {
	run --separate-stderr parlae audit tail --account "$(printf 'b\xff\xc3\xa9\xc2\x9b\x1b')"
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: invalid account id 'b$(printf '\xef\xbf\xbd\xc3\xa9')\\u009b\\x1b' (usage: $(parlae help --json | jq -r '.commands[] | select(.name == "audit tail") | .usage'))"
}

@test "a table cell from the database with an escape sequence is shown as text" {
	sql "UPDATE accounts SET name = E'Evil\\x1b[2J\\u009bName' WHERE id = 'happy'" >/dev/null
	run --separate-stderr parlae account list
	assert_success
	assert_equal "$stderr" ""
	assert_line --partial 'Evil\x1b[2J\u009bName'
	sql "UPDATE accounts SET name = NULL WHERE id = 'happy'" >/dev/null
}

@test "a -vv trace of an answer longer than 1,500 bytes is cut between characters" {
	# The body as a string, so that the fake sends the é as UTF-8, not as \u00e9.
	body='{"error_code":"API9999","short_message":"'"$(rep é 1000)"'"}'
	fake faults "$(jq -nc --arg b "$body" '{method:"GET",path:"/v4/patients",status:500,count:-1,body:$b}')" >/dev/null
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args '{"query":"x"}' -vv
	assert_equal "$status" 6
	python3 -c 'import sys; sys.stdin.buffer.read().decode("utf-8", "strict")' <<<"$stderr"
	line=$(grep -F 'trace: http: < {"error_code":"API9999"' <<<"$stderr" | head -n 1)
	[[ $line == *"ééé" ]]
	[[ $line != *'\x'* ]]
}

@test "malformed JSON is named by line and column, never by the words it stopped at (a patient's name)" {
	run --separate-stderr parlae vapi tool invoke --payload - <<<'{"message":{"type":"tool-calls","toolCallList":[{"id":"a","name":"x","arguments":{"firstName": Zelda}}]}}'
	assert_equal "$status" 65
	assert_equal "$stderr" "parlae: the payload is not valid JSON: invalid token at line 1 column 100"
	printf '{"MasterCustomerID":"MC-1","FirstName": Zelda}' >"$BATS_TEST_TMPDIR/reg.json"
	run --separate-stderr parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json"
	assert_equal "$status" 65
	refute_secrets_in "$output$stderr" Zelda
	[[ $stderr == *"is not valid JSON: invalid token at line 1 column"* ]]
}
