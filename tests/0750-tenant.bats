#!/usr/bin/env bats
# Tenant isolation and whose data a call may touch (issue 11): call logs are kept per (account,
# call id); an end-of-call-report closes only its own account's call; bookAppointment for a
# patientId acts only for that patient's own phone, or for the operator; numbers in arguments
# and in Sikka's answers are read strictly; transferToHuman answers with its destination
# whatever happens to the text to the staff. Each test began as a reproduction on the old code.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

setup_file() {
	vapi_setup_file
	# A second practice with its own number and staff line; no Sikka: transfers need none.
	parlae account add other >/dev/null
	parlae vapi phone add other --vapi-id pn-other --number +15550005000 --staff-forward +15550006000 --transfer >/dev/null
}
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	twilio_fake faults/clear '{}' >/dev/null
	fake counters/reset '{}' >/dev/null
}

# msg PHONE_ID CALL_ID CALLER TOOL ARGS: a tool-calls payload (CALLER "" for none).
msg() {
	jq -nc --arg p "$1" --arg c "$2" --arg n "$3" --arg t "$4" --argjson a "$5" \
		'{message: {type: "tool-calls",
		  call: ({id: $c, phoneNumberId: $p} + (if $n == "" then {} else {customer: {number: $n}} end)),
		  toolCallList: [{id: "t1", type: "function", function: {name: $t, arguments: $a}}]}}'
}
eocr() { jq -nc --arg p "$1" --arg c "$2" '{message: {type: "end-of-call-report", call: {id: $c, phoneNumberId: $p}}}'; }
result0() { jq -r '.results[0].result' <<<"$output"; }
requests() { fake_get counters | jq -r --arg k "$1" '.requests[$k] // 0'; }
log_row() { sql "SELECT $2 FROM vapi_call_logs WHERE account_id = '$1' AND call_id = '$3'"; }
last_audit() { sql "SELECT metadata->>'$1' FROM audit_events WHERE action = 'vapi.tool' ORDER BY seq DESC LIMIT 1"; }

# --- call logs per account ---------------------------------------------------------------------

@test "the same call id under two accounts is two call logs, each with its own transfer" {
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-shared +15551234567 transferToHuman '{"reason":"happy reason","summary":"happy summary"}')"
	assert_success
	assert_equal "$stderr" ""
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-other c-shared +15557770000 transferToHuman '{"reason":"other reason","summary":"other summary"}')"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -r .destination.number)" "+15550006000"
	assert_equal "$(sql "SELECT string_agg(account_id || '|' || vapi_phone_id || '|' || tool_calls || '|' || transfer_reason || '|' || transfer_summary, ',' ORDER BY account_id) FROM vapi_call_logs WHERE call_id = 'c-shared'")" \
		"happy|pn-happy-dental|1|happy reason|happy summary,other|pn-other|1|other reason|other summary"
}

@test "an end-of-call-report closes only the call of the account it resolves to" {
	parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-end +15551234567 checkAvailability '{"date":"2026-12-01"}')" >/dev/null
	parlae vapi tool invoke --payload - <<<"$(msg pn-other c-end +15557770000 transferToHuman '{"reason":"x"}')" >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(eocr pn-other c-end)"
	assert_success --stderr '^closed the log of call'
	assert_equal "$(log_row other "status || '|' || (ended_at IS NOT NULL)" c-end)" "transferred|true"
	assert_equal "$(log_row happy "status || '|' || (ended_at IS NOT NULL)" c-end)" "in-progress|false"
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(eocr pn-happy-dental c-end)"
	assert_success --stderr '^closed the log of call'
	assert_equal "$(log_row happy "status || '|' || (ended_at IS NOT NULL)" c-end)" "ended|true"
}

@test "an end-of-call-report for a call another account had is not found, and changes nothing" {
	parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-only-happy +15551234567 checkAvailability '{"date":"2026-12-01"}')" >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(eocr pn-other c-only-happy)"
	assert_equal "$status" 5
	assert_equal "$output" ""
	assert_regex "$stderr" "no call log for call c-only-happy of account other"
	assert_equal "$(log_row happy "status || '|' || (ended_at IS NULL)" c-only-happy)" "in-progress|true"
	# --account names the account as for tool calls.
	run --separate-stderr parlae vapi tool invoke --payload - --account happy <<<"$(eocr pn-other c-only-happy)"
	assert_success --stderr '^closed the log of call'
	assert_equal "$(log_row happy status c-only-happy)" "ended"
}

@test "a replayed end-of-call-report closes only its own account's call" {
	{
		msg pn-happy-dental c-replay +15551234567 checkAvailability '{"date":"2026-12-01"}'
		msg pn-other c-replay +15557770000 transferToHuman '{"reason":"x"}'
		eocr pn-happy-dental c-replay
	} >"$BATS_TEST_TMPDIR/calls.jsonl"
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/calls.jsonl" --json
	assert_success
	assert_equal "$(log_row happy status c-replay)" "ended"
	assert_equal "$(log_row other "status || '|' || (ended_at IS NULL)" c-replay)" "transferred|true"
}

@test "the account is the assistant's metadata.accountId when it exists, else the phone number id, else the called number" {
	m=$(msg pn-happy-dental c-meta +15557770000 transferToHuman '{"reason":"x"}' | jq -c '.message.assistant = {metadata: {accountId: "other"}}')
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$m"
	assert_success
	assert_equal "$(result0 | jq -r .destination.number)" "+15550006000"
	assert_equal "$(sql "SELECT string_agg(account_id, ',') FROM vapi_call_logs WHERE call_id = 'c-meta'")" "other"
	# An accountId no account has: the phone number id decides.
	m=$(msg pn-happy-dental c-meta2 +15557770000 transferToHuman '{"reason":"x"}' | jq -c '.message.call.assistant = {metadata: {accountId: "nobody"}}')
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$m"
	assert_success
	assert_equal "$(sql "SELECT string_agg(account_id, ',') FROM vapi_call_logs WHERE call_id = 'c-meta2'")" "happy"
	# No phone number id: the called number, compared as E.164 digits.
	m=$(msg "" c-num +15557770000 transferToHuman '{"reason":"x"}' | jq -c 'del(.message.call.phoneNumberId) | .message.call.phoneNumber = {number: "(555) 000-5000"}')
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$m"
	assert_success
	assert_equal "$(sql "SELECT string_agg(account_id, ',') FROM vapi_call_logs WHERE call_id = 'c-num'")" "other"
	run --separate-stderr parlae vapi tool invoke --payload - <<<'{"message":{"type":"end-of-call-report","call":{"id":"c-num","phoneNumber":{"number":"+15550005000"}}}}'
	assert_success --stderr '^closed the log of call'
	assert_equal "$(log_row other status c-num)" "transferred"
	run --separate-stderr parlae vapi tool invoke --payload - <<<'{"message":{"type":"end-of-call-report","call":{"id":"c-num","phoneNumber":{"number":"+15550009876"}}}}'
	assert_equal "$status" 5
	assert_regex "$stderr" "no account has the called number"
}

# --- the caller rule ---------------------------------------------------------------------------

@test "bookAppointment for a patientId whose phone is not the caller's is refused and sends Sikka nothing to book" {
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-stranger +15559990000 bookAppointment '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}')"
	assert_success
	assert_equal "$stderr" ""
	r=$(result0)
	assert_equal "$(jq -c '[.success, .status, .verified, has("appointmentId")]' <<<"$r")" '[false,"failed",false,false]'
	assert_regex "$(jq -r .message <<<"$r")" "office staff can verify who you are"
	assert_equal "$(requests 'POST /v4/appointment')" 0
	assert_equal "$(requests 'GET /v4/providers')" 0
	assert_equal "$(fake_get counters | jq .writebacks)" 0
	assert_equal "$(last_audit access)|$(last_audit operatorAccess)|$(last_audit success)" "unverified-caller|false|false"
	# The same through a direct invoke with --caller.
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --caller +15559990000 --args '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}'
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .status]')" '[false,"failed"]'
	assert_equal "$(requests 'POST /v4/appointment')" 0
}

@test "bookAppointment for a patientId Sikka does not know, or from a call with no caller number, is refused" {
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-nobody +15551234567 bookAppointment '{"startTime":"2026-12-02T11:00:00","patientId":"P404"}')"
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .status, .verified]')" '[false,"failed",false]'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-nocaller "" bookAppointment '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}')"
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .status, .verified]')" '[false,"failed",false]'
	assert_equal "$(requests 'POST /v4/appointment')" 0
}

@test "bookAppointment for a patientId from the patient's own phone books, audited as a verified caller" {
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-own 555-123-4567 bookAppointment '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}')"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .status]')" '[true,"booked"]'
	assert_equal "$(requests 'POST /v4/appointment')" 1
	assert_equal "$(last_audit access)|$(last_audit operatorAccess)" "verified-caller|false"
}

@test "a direct bookAppointment without --caller is the operator's access, audited as such" {
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}'
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .status]')" '[true,"booked"]'
	assert_equal "$(last_audit access)|$(last_audit operatorAccess)" "operator|true"
	# The operator is not asked to match a phone: Sikka is asked only to book.
	assert_equal "$(requests 'GET /v4/patients')" 0
}

# --- strict numbers ----------------------------------------------------------------------------

# The error of each reply in $BATS_TEST_TMPDIR/replies, one a line, by one jq for the test
# (a jq per reply was most of these tests' CPU).
errors_of_replies() { jq -r '.results[0].error' "$BATS_TEST_TMPDIR/replies"; }

# bad_input ERROR ARGS...: `parlae ARGS` is bad input (exit 65); its reply is kept for
# errors_of_replies, and ERROR, the error expected of it, added to the test's want.
bad_input() {
	local error=$1
	shift
	run --separate-stderr parlae "$@"
	assert_equal "$status" 65
	printf '%s\n' "$output" >>"$BATS_TEST_TMPDIR/replies"
	want+=("$error")
}

@test "a duration that is not a whole number of minutes is bad input, and nothing reaches Sikka" {
	local want=()
	: >"$BATS_TEST_TMPDIR/replies"
	for d in '"30abc"' '"-5"' -5 0 '"0"' 30.5 '" 30"' '"30 "' '"1e2"' 481 '"1441"' '"99999999999999999999"' true '[30]'; do
		bad_input "bookAppointment: duration must be a whole number of minutes from 5 to 480" vapi tool invoke bookAppointment --account happy --args "{\"startTime\":\"2026-12-02T11:00:00\",\"patientId\":\"P1\",\"duration\":$d}"
		bad_input "checkAvailability: duration must be a whole number of minutes from 5 to 480" vapi tool invoke checkAvailability --account happy --args "{\"date\":\"2026-12-01\",\"duration\":$d}"
	done
	assert_equal "$(errors_of_replies)" "$(printf '%s\n' "${want[@]}")"
	assert_equal "$(fake_get counters | jq '[.requests[]] | add // 0')" 0
}

@test "a date or start time not exactly YYYY-MM-DD[THH:MM[:SS]] is bad input, and nothing reaches Sikka" {
	local want=()
	: >"$BATS_TEST_TMPDIR/replies"
	for t in 2026-12-1T10:00:00 2026-12-02T1:00 2026-12-02X10:00 ２０２６-12-02T10:00 2026-12-02; do
		bad_input "bookAppointment: startTime must be a local time like 2026-12-01T10:00:00" vapi tool invoke bookAppointment --account happy --args "{\"startTime\":\"$t\",\"patientId\":\"P1\"}"
	done
	for d in 2026-12-1 2026-12-01T10:00 2026-12-01x; do
		bad_input "checkAvailability: date must be YYYY-MM-DD" vapi tool invoke checkAvailability --account happy --args "{\"date\":\"$d\"}"
	done
	assert_equal "$(errors_of_replies)" "$(printf '%s\n' "${want[@]}")"
	assert_equal "$(fake_get counters | jq '[.requests[]] | add // 0')" 0
}

@test "a duration as a JSON integer or a string of digits is sent to Sikka as that number" {
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-02T11:00:00","patientId":"P1","duration":"045"}'
	assert_success
	assert_equal "$(fake_get state | jq -r '.writebacks[-1].body.length')" "45"
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-03T11:00:00","patientId":"P1","duration":60}'
	assert_success
	assert_equal "$(fake_get state | jq -r '.writebacks[-1].body.length')" "60"
}

@test "a patientId or providerId that is not an id is bad input; a numeric id is taken as a JSON integer" {
	local want=()
	: >"$BATS_TEST_TMPDIR/replies"
	for id in '"P1&patient_id=P2"' '"P 1"' -1 1.5 '{"id":1}' "\"$(printf 'a%.0s' {1..65})\""; do
		bad_input "bookAppointment: patientId must be a number or letters and digits" vapi tool invoke bookAppointment --account happy --args "{\"startTime\":\"2026-12-02T11:00:00\",\"patientId\":$id}"
		bad_input "checkAvailability: providerId must be a number or letters and digits" vapi tool invoke checkAvailability --account happy --args "{\"date\":\"2026-12-01\",\"providerId\":$id}"
	done
	assert_equal "$(errors_of_replies)" "$(printf '%s\n' "${want[@]}")"
	assert_equal "$(fake_get counters | jq '[.requests[]] | add // 0')" 0
	fake seed '{"office_id":"D36225","append":true,"patients":[{"patient_id":"1042","firstname":"Bo","lastname":"Num","cell":"+15552220000"}]}' >/dev/null
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-02T11:00:00","patientId":1042,"providerId":"DR1"}'
	assert_success
	assert_equal "$(fake_get state | jq -c '.writebacks[-1].body | [.patient_id, .provider_id]')" '["1042","DR1"]'
}

@test "a booked appointment whose length Sikka gives unreadable still blocks its time, for the default length" {
	fake seed '{"office_id":"D36225","appointments":[
		{"appointment_sr_no":"B1","patient_id":"P9","provider_id":"DR1","date":"2026-12-01","time":"09:00","length":"abc"},
		{"appointment_sr_no":"B2","patient_id":"P9","provider_id":"DR1","date":"2026-12-01","time":"10:00","length":"-30"},
		{"appointment_sr_no":"B3","patient_id":"P9","provider_id":"DR1","date":"2026-12-01","time":"11:00","length":"60abc"}]}' >/dev/null
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	assert_success
	assert_equal "$stderr" ""
	starts=$(result0 | jq -c '[.slots[].start | select(. >= "08:30" and . < "12:00")]')
	assert_equal "$starts" '["08:30","09:30","10:30","11:30"]'
}

# --- transferToHuman: the SMS is best effort ---------------------------------------------------

@test "transferToHuman with a 1,700-character summary texts its first 1,600 characters, cut between characters" {
	summary=$(printf 'é%.0s' {1..1700})
	args=$(jq -nc --arg s "$summary" '{reason: "long", summary: $s}')
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-long +15551234567 transferToHuman "$args")"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .destination, .smsSent]')" '[true,{"type":"number","number":"+15550002000","message":"Transferring you now"},true]'
	body=$(twilio_get messages | jq -r '.[-1].body')
	assert_equal "$(jq -rn --arg b "$body" '$b | length')" 1600
	assert_regex "$body" '^Caller \+15551234567 asks for a person: long\. éé'
	assert_equal "$(log_row happy "sms_sent || '|' || coalesce(sms_error, '-')" c-long)" "true|-"
	# A character beyond U+FFFF counts as two, as Twilio may count it: never over the limit.
	summary=$(printf '😀%.0s' {1..1700})
	args=$(jq -nc --arg s "$summary" '{reason: "emoji", summary: $s}')
	run --separate-stderr parlae vapi tool invoke transferToHuman --account happy --args "$args"
	assert_success
	assert_equal "$(result0 | jq -r .smsSent)" "true"
	body=$(twilio_get messages | jq -r '.[-1].body')
	assert_regex "$body" '😀$'
	assert_equal "$(jq -rn --arg b "$body" '$b | explode | map(if . > 65535 then 2 else 1 end) | add <= 1600')" "true"
}

@test "transferToHuman when Twilio refuses the text (21617) still returns the destination, and logs why" {
	twilio_fake faults '{"status":400,"body":"{\"code\":21617,\"message\":\"The concatenated message body exceeds the 1600 character limit.\",\"status\":400}","count":1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-21617 +15551234567 transferToHuman '{"reason":"Ana Diaz wants a human","summary":"tooth pain"}')"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .destination.type, .destination.number, .smsSent, .smsSid, .smsError]')" '[true,"number","+15550002000",false,null,"Twilio error 21617"]'
	assert_equal "$(log_row happy "transfer_requested || '|' || status || '|' || sms_sent || '|' || sms_error" c-21617)" "true|transferred|false|Twilio error 21617"
}

@test "transferToHuman with Twilio down or unreachable still returns the destination, exit 0" {
	twilio_fake faults '{"status":503,"count":-1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-503 +15551234567 transferToHuman '{"reason":"x"}')"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .destination.number, .smsSent, .smsError]')" '[true,"+15550002000",false,"SMS service unreachable"]'
	assert_equal "$(log_row happy "sms_sent || '|' || sms_error" c-503)" "false|SMS service unreachable"
	twilio_fake faults/clear '{}' >/dev/null
	TWILIO_API_URL=http://127.0.0.1:1 run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-down +15551234567 transferToHuman '{"reason":"x"}')"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .destination.number, .smsSent, .smsError]')" '[true,"+15550002000",false,"SMS service unreachable"]'
	assert_equal "$(log_row happy "sms_sent || '|' || sms_error" c-down)" "false|SMS service unreachable"
}

@test "transferToHuman with Twilio not configured still returns the destination" {
	unset TWILIO_ACCOUNT_SID
	run --separate-stderr parlae vapi tool invoke transferToHuman --account happy --call-id c-nosms --args '{"reason":"x"}'
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .destination.number, .smsSent, .smsError]')" '[true,"+15550002000",false,"SMS not configured"]'
	assert_equal "$(log_row happy "sms_sent || '|' || sms_error" c-nosms)" "false|SMS not configured"
}

# --- an attacker's pass over the tools (s21): each test began as a reproduction -----------------

@test "a caller's 10-digit international number is not a NANP number: +47 95551234 is not (479) 555-1234" {
	fake seed '{"office_id":"D36225","append":true,"patients":[
		{"patient_id":"P47","firstname":"Nora","lastname":"Berg","cell":"(479) 555-1234"},
		{"patient_id":"P48","firstname":"Odd","lastname":"Lie","cell":"+4795550000"}]}' >/dev/null
	# A Norwegian caller (+47 95551234) is not the Arkansas patient (479) 555-1234 ...
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-no1 +4795551234 getPatientInfo '{"query":"479-555-1234"}')"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.found, .verified, has("patient")]')" '[true,false,false]'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-no2 +4795551234 bookAppointment '{"startTime":"2026-12-02T11:00:00","patientId":"P47"}')"
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .status, .verified]')" '[false,"failed",false]'
	assert_equal "$(requests 'POST /v4/appointment')" 0
	# ... nor is the Arkansas caller +1 479 555 0000 the Norwegian patient +47 95550000.
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-no3 +14795550000 getPatientInfo '{"phone":"+4795550000"}')"
	assert_success
	assert_equal "$(result0 | jq -c '[.found, .verified, has("patient")]')" '[true,false,false]'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-no4 +14795550000 getAppointments '{"patientId":"P48"}')"
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .verified, has("appointments")]')" '[false,false,false]'
	# Each patient's own number, in any of its forms, is still the patient.
	for caller in "+1 (479) 555-1234" 1-479-555-1234 4795551234; do
		run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-no5 "$caller" getPatientInfo '{"query":"(479) 555-1234"}')"
		assert_success
		assert_equal "$(result0 | jq -c '[.verified, .patient.id]')" '[true,"P47"]'
	done
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-no6 "+47 955 50 000" getPatientInfo '{"phone":"+4795550000"}')"
	assert_success
	assert_equal "$(result0 | jq -c '[.verified, .patient.id]')" '[true,"P48"]'
}

@test "a called number of 10 international digits is not another account's NANP number" {
	parlae vapi phone add other --vapi-id pn-other-ar --number +14795550100 >/dev/null
	twilio_fake messages/clear '{}' >/dev/null
	call() { jq -nc --arg c "$1" --arg n "$2" '{message: {type: "tool-calls", call: {id: $c, phoneNumber: {number: $n}, customer: {number: "+15557770000"}},
		toolCallList: [{id: "t1", type: "function", function: {name: "transferToHuman", arguments: {reason: "x"}}}]}}'; }
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(call c-called-no +4795550100)"
	assert_equal "$status" 5
	assert_equal "$output" ""
	assert_regex "$stderr" "no account has the called number \+4795550100"
	assert_equal "$(sql "SELECT count(*) FROM vapi_call_logs WHERE call_id = 'c-called-no'")" 0
	assert_equal "$(twilio_get messages | jq length)" 0
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(call c-called-ar "(479) 555-0100")"
	assert_success
	assert_equal "$(sql "SELECT string_agg(account_id, ',') FROM vapi_call_logs WHERE call_id = 'c-called-ar'")" "other"
}

@test "bookAppointment by name and phone acts only for the caller's own patient: another caller is refused and nothing is booked" {
	args='{"startTime":"2026-12-02T11:00:00","firstName":"Ana","lastName":"Diaz","phone":"+15551234567"}'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-byname1 +15559990000 bookAppointment "$args")"
	assert_success
	assert_equal "$stderr" ""
	r=$(result0)
	assert_equal "$(jq -c '[.success, .status, .verified, has("appointmentId"), has("confirmationNumber")]' <<<"$r")" '[false,"failed",false,false,false]'
	assert_regex "$(jq -r .message <<<"$r")" "office staff can verify who you are"
	assert_equal "$(requests 'POST /v4/appointment')" 0
	assert_equal "$(fake_get counters | jq .writebacks)" 0
	assert_equal "$(last_audit access)|$(last_audit success)" "unverified-caller|false"
	# From no number at all, the same.
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-byname2 "" bookAppointment "$args")"
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .status, .verified]')" '[false,"failed",false]'
	assert_equal "$(requests 'POST /v4/appointment')" 0
	# The patient's own phone books, audited as a verified caller; the operator books too.
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-byname3 "(555) 123-4567" bookAppointment "$args")"
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .status]')" '[true,"booked"]'
	assert_equal "$(last_audit access)" "verified-caller"
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-03T11:00:00","firstName":"Ana","lastName":"Diaz","phone":"+15551234567"}'
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .status]')" '[true,"booked"]'
	assert_equal "$(last_audit access)" "operator"
	assert_equal "$(requests 'POST /v4/appointment')" 2
}

@test "a date that is not in the calendar (2026-02-30) or a time with seconds past 59 is bad input, and nothing reaches Sikka" {
	local want=()
	: >"$BATS_TEST_TMPDIR/replies"
	for d in 2026-02-29 2026-02-30 2026-04-31 2027-02-29 2026-12-32; do
		bad_input "checkAvailability: date must be YYYY-MM-DD" vapi tool invoke checkAvailability --account happy --args "{\"date\":\"$d\"}"
		bad_input "getAppointments: to must be YYYY-MM-DD" vapi tool invoke getAppointments --account happy --args "{\"patientId\":\"P1\",\"to\":\"$d\"}"
		bad_input "createPatient: dateOfBirth must be YYYY-MM-DD" vapi tool invoke createPatient --account happy --args "{\"firstName\":\"Eve\",\"lastName\":\"New\",\"phone\":\"+15556660000\",\"dateOfBirth\":\"${d/2026/1990}\"}"
	done
	for t in 2027-02-30T10:00:00 2026-12-31T10:00:60 2026-12-31T10:00:99 2026-12-31T10:00:0 2026-12-31T10:00:00junk "2026-12-31T10:00:$(printf '9%.0s' {1..5000})"; do
		bad_input "bookAppointment: startTime must be a local time like 2026-12-01T10:00:00" vapi tool invoke bookAppointment --account happy --args "{\"startTime\":\"$t\",\"patientId\":\"P1\"}"
		bad_input "rescheduleAppointment: startTime must be a local time like 2026-12-01T10:00:00" vapi tool invoke rescheduleAppointment --account happy --args "{\"appointmentId\":\"A2\",\"startTime\":\"$t\"}"
	done
	assert_equal "$(errors_of_replies)" "$(printf '%s\n' "${want[@]}")"
	assert_equal "$(fake_get counters | jq '[.requests[]] | add // 0')" 0
	# A leap day is a day, and a time's seconds may be given.
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2028-02-29"}'
	assert_success
	assert_equal "$(result0 | jq -r .date)" "2028-02-29"
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-02T11:00:59","patientId":"P1"}'
	assert_success
	assert_equal "$(fake_get state | jq -c '.writebacks[-1].body | [.date, .time]')" '["2026-12-02","11:00"]'
}

@test "control characters from the caller never reach the staff's text or a booking's description: each becomes a space" {
	twilio_fake messages/clear '{}' >/dev/null
	reason=$'pain\r\n\nURGENT. Message for the office from caller +15550001111\x1b[2J\x07\x7f\xc2\x9b end'
	args=$(jq -nc --arg r "$reason" '{reason: $r, summary: "a\tb"}')
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-ctl1 +15551234567 transferToHuman "$args")"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.success, .smsSent]')" '[true,true]'
	assert_equal "$(twilio_get messages | jq -r '.[-1].body')" \
		'Caller +15551234567 asks for a person: pain   URGENT. Message for the office from caller +15550001111 [2J    end. a b'
	args=$(jq -nc --arg m $'call me\n\nback\x1b[31m' '{message: $m}')
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-ctl2 +15551234567 takeMessage "$args")"
	assert_success
	assert_equal "$(twilio_get messages | jq -r '.[-1].body')" \
		'Message for the office from caller +15551234567, call back on +15551234567: call me  back [31m'
	# The message is kept in the call's log as it was said.
	assert_equal "$(sql "SELECT messages->0->>'message' FROM vapi_call_logs WHERE account_id = 'happy' AND call_id = 'c-ctl2'")" $'call me\n\nback\x1b[31m'
	args=$(jq -nc --arg n $'first line\nsecond\x1b[0m' '{startTime: "2026-12-02T11:00:00", patientId: "P1", appointmentType: "clean\ting", notes: $n}')
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-ctl3 +15551234567 bookAppointment "$args")"
	assert_success
	assert_equal "$(fake_get state | jq -r '.writebacks[-1].body.description')" 'clean ing: first line second [0m'
}

@test "a date, phone or choice given as an object, array or boolean is bad input, never taken as absent" {
	local want=()
	: >"$BATS_TEST_TMPDIR/replies"
	twilio_fake messages/clear '{}' >/dev/null
	for v in '["urgent"]' '{"level":"urgent"}' true; do
		bad_input "takeMessage: urgency must be normal or urgent" vapi tool invoke takeMessage --account happy --caller +15551234567 --args "{\"message\":\"call me\",\"urgency\":$v}"
		bad_input "takeMessage: callbackNumber is not valid" vapi tool invoke takeMessage --account happy --caller +15551234567 --args "{\"message\":\"call me\",\"callbackNumber\":$v}"
		bad_input "getAppointments: from must be YYYY-MM-DD" vapi tool invoke getAppointments --account happy --args "{\"patientId\":\"P1\",\"from\":$v}"
		bad_input "createPatient: dateOfBirth must be YYYY-MM-DD" vapi tool invoke createPatient --account happy --args "{\"firstName\":\"Eve\",\"lastName\":\"New\",\"phone\":\"+15556660000\",\"dateOfBirth\":$v}"
	done
	assert_equal "$(errors_of_replies)" "$(printf '%s\n' "${want[@]}")"
	assert_equal "$(fake_get counters | jq '[.requests[]] | add // 0')" 0
	assert_equal "$(twilio_get messages | jq length)" 0
	# Free text of another type is still left out: a caller is never kept from a person by it.
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-types +15551234567 transferToHuman '{"reason":"x","summary":{"a":1},"patientInfo":{"name":"Ana"}}')"
	assert_success
	assert_equal "$(result0 | jq -c '[.success, .destination.number]')" '[true,"+15550002000"]'
	assert_equal "$(twilio_get messages | jq -r '.[-1].body')" 'Caller +15551234567 asks for a person: x.'
}

@test "getPatientInfo's next appointment is the patient's own earliest to come, whatever order or other patients Sikka answers with" {
	# Sikka answers the patient's appointments with another patient's first (its filter not
	# applied), a deleted one, and the patient's own out of order.
	fake faults '{"method":"GET","path":"/v4/appointments","when":"after","count":1,"body":"{\"offset\":\"0\",\"limit\":\"50\",\"total_count\":\"4\",\"items\":[{\"appointment_sr_no\":\"X1\",\"patient_id\":\"P9\",\"provider_id\":\"DR9\",\"date\":\"2026-12-01T00:00:00\",\"time\":\"09:00\"},{\"appointment_sr_no\":\"X2\",\"patient_id\":\"P1\",\"provider_id\":\"DR1\",\"date\":\"2026-12-02T00:00:00\",\"time\":\"08:00\",\"status\":\"Deleted\"},{\"appointment_sr_no\":\"X3\",\"patient_id\":\"P1\",\"provider_id\":\"DR3\",\"date\":\"2026-12-20T00:00:00\",\"time\":\"11:00\"},{\"appointment_sr_no\":\"X4\",\"patient_id\":\"P1\",\"provider_id\":\"DR1\",\"date\":\"2026-12-15T00:00:00\",\"time\":\"9:30\"}]}"}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$(msg pn-happy-dental c-next +15551234567 getPatientInfo '{"query":"555-123-4567"}')"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result0 | jq -c '[.verified, .patient.id, .patient.nextAppointment]')" '[true,"P1",{"start":"2026-12-15T09:30","providerId":"DR1"}]'
}
