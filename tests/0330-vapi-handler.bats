#!/usr/bin/env bats
# The one Vapi message handler (issue 13): flat and nested items, transfer-destination-request
# answered with the staff number, the tool timeout from the payload, at most 5 runs of a tool
# per call counted in the database, the caller rule from the tool table, one stderr line per
# failed call and a readable reply on a terminal. Each test began as a reproduction on the old
# code (the caller rule's excepted: it guards the move of the rule into the dispatcher).
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() {
	vapi_setup_file
	# A second practice whose number has a staff line but transfers turned off.
	parlae account add quiet >/dev/null
	parlae vapi phone add quiet --vapi-id pn-quiet --number +15550007000 --staff-forward +15550008000 --no-transfer >/dev/null
}
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	fake counters/reset '{}' >/dev/null
}
teardown() { fake latency '{"ms":0}' >/dev/null; }

# msg CALL_ID CALLER TOOL ARGS: a tool-calls payload for the happy practice (CALLER "" for none).
msg() {
	jq -nc --arg c "$1" --arg n "$2" --arg t "$3" --argjson a "$4" \
		'{message: {type: "tool-calls",
		  call: ({id: $c, phoneNumberId: "pn-happy-dental"} + (if $n == "" then {} else {customer: {number: $n}} end)),
		  toolCallList: [{id: "t1", type: "function", function: {name: $t, arguments: $a}}]}}'
}
result_of() { jq -r ".results[$2].result" <<<"$1"; }
requests() { fake_get counters | jq -r --arg k "$1" '.requests[$k] // 0'; }
last_audit() { sql "SELECT metadata->>'$1' FROM audit_events WHERE action = 'vapi.tool' ORDER BY seq DESC LIMIT 1"; }
ms_now() { date +%s%3N; }
# A tool that ran out of time: Sikka timed out (6), or no time was left to ask it (8).
timed_out() {
	[[ $status == 6 || $status == 8 ]] || fail "exit $status, not 6 or 8"
	assert_regex "$(jq -r '.results[0].error' <<<"$output")" "timed out|ran out of time"
}

# --- items as Vapi sends them -----------------------------------------------------------------

@test "flat items run like nested ones: {id,name,arguments} and {id,name,parameters}" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-flat-items.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.results[] | [.toolCallId, .name, has("result")]]' <<<"$output")" \
		'[["call_flat_01","checkAvailability",true],["call_flat_02","getPatientInfo",true]]'
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .date, (.slots | length)]')" '[true,"2026-12-01",8]'
	assert_equal "$(result_of "$output" 1 | jq -c '[.found, .verified, .patient.id]')" '[true,true,"P1"]'
	assert_equal "$(sql "SELECT tool_calls FROM vapi_call_logs WHERE call_id = '9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e08'")" "2"
}

@test "a flat item with neither a function nor a name is bad input: exit 65, nothing run" {
	run --separate-stderr parlae vapi tool invoke --payload - <<<'{"message":{"type":"tool-calls","call":{"id":"c-noname","phoneNumberId":"pn-happy-dental"},"toolCallList":[{"id":"t1","arguments":{}}]}}'
	assert_failure 65
	assert_output ""
	assert_equal "$stderr" "parlae: tool call 0 is not an object with a function or a name"
	assert_equal "$(sql "SELECT count(*) FROM vapi_call_logs WHERE call_id = 'c-noname'")" "0"
}

# --- transfers, the way Vapi does them ----------------------------------------------------------

@test "transfer-destination-request is answered with the staff number when transfers are on" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/transfer-destination-request.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" '{"destination":{"type":"number","number":"+15550002000","message":"I'"'"'m transferring you to our staff now."},"message":"I'"'"'m transferring you to our staff now."}'
	assert_equal "$(sql "SELECT account_id || '|' || transfer_requested || '|' || status FROM vapi_call_logs WHERE call_id = '9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e09'")" "happy|true|transferred"
}

@test "transfer-destination-request with transfers off is {\"error\":...}: exit 5, one line on stderr" {
	jq -c '.message.call.phoneNumberId = "pn-quiet" | .message.call.id = "c-quiet"' "$FIX/transfer-destination-request.json" >"$BATS_TEST_TMPDIR/quiet.json"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/quiet.json"
	assert_failure 5
	assert_equal "$output" '{"error":"Transfers are not enabled for this practice'"'"'s number."}'
	assert_equal "$stderr" "parlae: vapi tool invoke: transfer-destination-request: Transfers are not enabled for this practice's number."
	assert_equal "$(sql "SELECT count(*) FROM vapi_call_logs WHERE call_id = 'c-quiet'")" "0"
}

@test "vapi replay answers the recorded flat-item and transfer messages locally" {
	run --separate-stderr parlae vapi replay "$FIX/tool-calls-flat-items.json" "$FIX/transfer-destination-request.json" --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.total, .ok, .failed, .skipped]' <<<"$output")" '[2,2,0,0]'
	run --separate-stderr parlae vapi replay "$FIX/transfer-destination-request.json" --dry-run
	assert_success
	assert_equal "$stderr" ""
	assert_regex "${lines[0]}" "transfer-destination-request.json \([0-9]+ bytes\): transfer-destination-request: would answer with the staff number$"
}

# --- the tool timeout ---------------------------------------------------------------------------

@test "the tool timeout comes from the payload's assistant server: a slow Sikka ends inside it" {
	fake latency '{"ms":4000}' >/dev/null
	msg c-slow "" checkAvailability '{"date":"2026-12-01"}' | jq -c '.message.call.assistant = {server: {timeoutSeconds: 1}}' >"$BATS_TEST_TMPDIR/slow.json"
	t0=$(ms_now)
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/slow.json"
	elapsed=$(($(ms_now) - t0))
	timed_out
	assert_regex "$(jq -r '.results[0].error' <<<"$output")" "timed out|ran out of time"
	((elapsed < 2500)) || { echo "took $elapsed ms, the timeout is 1 s" >&2; return 1; }
	# The message's own assistant, when the call's has no server.
	jq -c 'del(.message.call.assistant) | .message.assistant = {server: {timeoutSeconds: 1}}' "$BATS_TEST_TMPDIR/slow.json" >"$BATS_TEST_TMPDIR/slow2.json"
	t0=$(ms_now)
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/slow2.json"
	elapsed=$(($(ms_now) - t0))
	timed_out
	((elapsed < 2500)) || { echo "took $elapsed ms, the timeout is 1 s" >&2; return 1; }
}

@test "PARLAE_TOOL_TIMEOUT sets the timeout when the payload does not; a bad value is exit 3" {
	fake latency '{"ms":4000}' >/dev/null
	t0=$(ms_now)
	PARLAE_TOOL_TIMEOUT=1 run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	elapsed=$(($(ms_now) - t0))
	timed_out
	((elapsed < 2500)) || { echo "took $elapsed ms, the timeout is 1 s" >&2; return 1; }
	fake latency '{"ms":0}' >/dev/null
	PARLAE_TOOL_TIMEOUT=301 run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	assert_failure 3
	assert_output ""
	assert_equal "$stderr" "parlae: PARLAE_TOOL_TIMEOUT must be a whole number from 1 to 300"
}

@test "a booking keeps 2 s of the timeout in hand: pending or an error inside it, never booked late" {
	fake latency '{"ms":1500}' >/dev/null
	msg c-slowbook +15551234567 bookAppointment '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}' | jq -c '.message.call.assistant = {server: {timeoutSeconds: 4}}' >"$BATS_TEST_TMPDIR/book.json"
	t0=$(ms_now)
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/book.json" --account happy
	elapsed=$(($(ms_now) - t0))
	((elapsed < 3500)) || { echo "took $elapsed ms: 4 s less the 2 s kept in hand" >&2; return 1; }
	r=$(jq -r '.results[0].result // empty' <<<"$output")
	if [ -n "$r" ]; then
		assert_equal "$(jq -c '[.success, .status]' <<<"$r")" '[false,"pending"]'
	else
		assert_regex "$(jq -r '.results[0].error' <<<"$output")" "timed out|ran out of time"
	fi
}

# --- the per-call limit -------------------------------------------------------------------------

@test "a tool runs at most 5 times per call, counted in the database across processes; the 6th says transfer" {
	msg c-loop +15551234567 checkAvailability '{"date":"2026-12-01"}' >"$BATS_TEST_TMPDIR/loop.json"
	# Three processes at once, then two more: the count is the database's, not a process's.
	for i in 1 2 3; do parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/loop.json" >"$BATS_TEST_TMPDIR/par.$i" & done
	wait
	for i in 4 5; do
		run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/loop.json"
		assert_success
		assert_equal "$(result_of "$output" 0 | jq -c '[.success, (.slots | length)]')" '[true,17]'
	done
	assert_equal "$(sql "SELECT tool_counts->>'checkAvailability' FROM vapi_call_logs WHERE call_id = 'c-loop'")" "5"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/loop.json"
	assert_success
	assert_equal "$stderr" ""
	r=$(result_of "$output" 0)
	assert_equal "$(jq -c '[.success, .callLimitReached, has("slots")]' <<<"$r")" '[false,true,false]'
	assert_regex "$(jq -r .message <<<"$r")" "already run 5 times on this call.*transfer the caller"
	assert_equal "$(last_audit callLimit)|$(last_audit success)" "true|false"
	assert_equal "$(sql "SELECT tool_counts->>'checkAvailability' || '|' || tool_calls FROM vapi_call_logs WHERE call_id = 'c-loop'")" "6|6"
	# Sikka was asked five times, not six.
	assert_equal "$(requests 'GET /v4/appointments')" 5
	# Another tool on the same call still runs.
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg c-loop +15551234567 getPatientInfo '{"phone":"+15551234567"}')"
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .found]')" '[true,true]'
}

@test "PARLAE_TOOL_CALL_LIMIT sets the runs per call" {
	msg c-two "" checkAvailability '{"date":"2026-12-05"}' >"$BATS_TEST_TMPDIR/two.json"
	for i in 1 2; do PARLAE_TOOL_CALL_LIMIT=2 parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/two.json" >/dev/null; done
	PARLAE_TOOL_CALL_LIMIT=2 run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/two.json"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .callLimitReached]')" '[false,true]'
	PARLAE_TOOL_CALL_LIMIT=two run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/two.json"
	assert_failure 3
	assert_equal "$stderr" "parlae: PARLAE_TOOL_CALL_LIMIT must be a whole number from 1 to 1000"
}

# --- the caller rule, from the table ------------------------------------------------------------

@test "the caller rule applies by any name of a tool that touches a patient: a mismatched caller changes nothing" {
	# A flat item, the snake_case name and a snake_case patient_id: still the table's bookAppointment.
	jq -nc '{message: {type: "tool-calls", call: {id: "c-rule", phoneNumberId: "pn-happy-dental", customer: {number: "+15559990000"}},
		toolCallList: [{id: "t1", name: "book_appointment", parameters: {start_time: "2026-12-02T11:00:00", patient_id: "P1"}}]}}' >"$BATS_TEST_TMPDIR/rule.json"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/rule.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .status, .verified]')" '[false,"failed",false]'
	assert_equal "$(requests 'POST /v4/appointment')" 0
	assert_equal "$(requests 'GET /v4/providers')" 0
	assert_equal "$(fake_get counters | jq .writebacks)" 0
	assert_equal "$(last_audit tool)|$(last_audit access)" "bookAppointment|unverified-caller"
	# lookupPatient, the alias, shows a stranger no record.
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg c-rule +15559990000 lookupPatient '{"phone":"+15551234567"}')"
	assert_equal "$(result_of "$output" 0 | jq -c '[.found, .verified, has("patient")]')" '[true,false,false]'
	assert_equal "$(last_audit tool)|$(last_audit access)" "getPatientInfo|unverified-caller"
}

# --- what a person sees -------------------------------------------------------------------------

@test "each failed call is one line on stderr; stdout stays exactly Vapi's response" {
	jq -nc '{message: {type: "tool-calls", call: {id: "c-fail", phoneNumberId: "pn-happy-dental"},
		toolCallList: [{id: "ok1", name: "checkAvailability", arguments: {date: "2026-12-05"}},
		               {id: "bad1", name: "checkAvailability", arguments: {date: "tomorrow"}},
		               {id: "bad2", name: "noSuchTool", arguments: {}}]}}' >"$BATS_TEST_TMPDIR/fail.json"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/fail.json"
	assert_failure 9
	assert_equal "$(jq -c '[.results[] | [.toolCallId, has("result"), has("error")]]' <<<"$output")" '[["ok1",true,false],["bad1",false,true],["bad2",false,true]]'
	assert_equal "$stderr" "parlae: vapi tool invoke: checkAvailability (bad1): checkAvailability: date must be YYYY-MM-DD
parlae: vapi tool invoke: noSuchTool (bad2): unknown tool 'noSuchTool'; the tools are getPatientInfo, checkAvailability, bookAppointment, transferToHuman, getAppointments, rescheduleAppointment, cancelAppointment, createPatient, takeMessage"
	# With --json, stderr is one JSON error naming them all; stdout is the same reply.
	piped=$output
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/fail.json" --json
	assert_failure 9
	assert_equal "$(jq -c '[.results[] | [.toolCallId, has("result")]]' <<<"$output")" "$(jq -c '[.results[] | [.toolCallId, has("result")]]' <<<"$piped")"
	assert_equal "$(jq -r .error.code <<<"$stderr")" "partial"
	assert_equal "$(jq -r .error.message <<<"$stderr")" "vapi tool invoke: checkAvailability (bad1): checkAvailability: date must be YYYY-MM-DD; noSuchTool (bad2): unknown tool 'noSuchTool'; the tools are getPatientInfo, checkAvailability, bookAppointment, transferToHuman, getAppointments, rescheduleAppointment, cancelAppointment, createPatient, takeMessage"
	# The legacy shape has no id.
	run --separate-stderr parlae vapi tool invoke --payload - <<<'{"message":{"type":"function-call","call":{"id":"c-fail","phoneNumberId":"pn-happy-dental"},"functionCall":{"name":"transferToHuman","parameters":{}}}}'
	assert_failure 65
	assert_equal "$output" '{"result":"transferToHuman: reason is required"}'
	assert_equal "$stderr" "parlae: vapi tool invoke: transferToHuman: transferToHuman: reason is required"
}

@test "vapi replay -v names each failed call: source, toolCallId, tool and error" {
	jq -nc '{message: {type: "tool-calls", call: {id: "c-rv", phoneNumberId: "pn-happy-dental"},
		toolCallList: [{id: "ok1", name: "checkAvailability", arguments: {date: "2026-12-05"}},
		               {id: "bad1", name: "checkAvailability", arguments: {duration: "30abc", date: "2026-12-05"}}]}}' >"$BATS_TEST_TMPDIR/rv.json"
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/rv.json" -v
	assert_failure 9
	assert_line --index 0 --regexp '^replayed 1 message in .*: 0 ok, 1 failed, 0 skipped'
	assert_equal "$stderr" "parlae: $BATS_TEST_TMPDIR/rv.json: a tool call ended in an error
parlae: $BATS_TEST_TMPDIR/rv.json: tool call bad1 (checkAvailability): checkAvailability: duration must be a whole number of minutes from 5 to 480"
	# Without -v, one line per failed message, as before.
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/rv.json"
	assert_failure 9
	assert_equal "$stderr" "parlae: $BATS_TEST_TMPDIR/rv.json: a tool call ended in an error"
}

@test "piped, the reply is byte for byte Vapi's; on a terminal it is indented with results shown as JSON" {
	msg c-tty "" checkAvailability '{"date":"2026-12-05"}' | jq -c '.message.toolCallList[0].id = "c1"' >"$BATS_TEST_TMPDIR/tty.json"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/tty.json"
	assert_success
	assert_equal "$output" '{"results":[{"toolCallId":"c1","name":"checkAvailability","result":"{\"success\":false,\"message\":\"There are no openings on 2026-12-05.\",\"date\":\"2026-12-05\",\"timezone\":\"America/New_York\",\"slots\":[]}"}]}'
	TERM=dumb run script -qec "parlae vapi tool invoke --payload $BATS_TEST_TMPDIR/tty.json" /dev/null
	assert_success
	output=${output//$'\r'/}
	assert_equal "$output" '{
  "results": [
    {
      "toolCallId": "c1",
      "name": "checkAvailability",
      "result": {
        "success": false,
        "message": "There are no openings on 2026-12-05.",
        "date": "2026-12-05",
        "timezone": "America/New_York",
        "slots": []
      }
    }
  ]
}'
	# --json on a terminal stays Vapi's bytes.
	TERM=dumb run script -qec "parlae vapi tool invoke --payload $BATS_TEST_TMPDIR/tty.json --json" /dev/null
	assert_success
	assert_equal "${output//$'\r'/}" '{"results":[{"toolCallId":"c1","name":"checkAvailability","result":"{\"success\":false,\"message\":\"There are no openings on 2026-12-05.\",\"date\":\"2026-12-05\",\"timezone\":\"America/New_York\",\"slots\":[]}"}]}'
}

@test "getPatientInfo with a phone of no digits and no name finds nobody (it crashed)" {
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args '{"phone":"abc"}'
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .found, .verified]')" '[false,false,false]'
	assert_equal "$(requests 'GET /v4/patients')" 0
}
