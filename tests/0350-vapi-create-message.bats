#!/usr/bin/env bats
# createPatient and takeMessage (issue 13) through parlae's handlers against the fake Sikka and
# Twilio: an existing patient returned, a writeback created, pending, failed or refused, a staff
# text that fails, bad arguments, where a message is kept (and where it never is), and both
# tools from their recorded payloads by invoke and by replay.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	fake_posts "$FAKE_SIKKA/__fake/counters/reset" '{}' "$FAKE_TWILIO/__fake/messages/clear" '{}' \
		"$FAKE_TWILIO/__fake/faults/clear" '{}' >/dev/null
	# The fixtures' call ids come back test after test: each starts with no call logs.
	sql "DELETE FROM vapi_call_logs"
}

# The result text of call N of a reply, as JSON.
result_of() { jq -r ".results[$2].result" <<<"$1"; }
# How many patients the fake Sikka has, the id its last writeback created, how many writebacks.
patients() { fake_get "state?office_id=D36225" | jq -r '.offices.D36225.data.patients'; }
last_created() { fake_get "state?office_id=D36225" | jq -r '.writebacks[-1].created_id'; }
writebacks() { fake_get counters | jq -r '.writebacks'; }
# A call's messages as kept in its log.
messages_of() { sql "SELECT messages::text FROM vapi_call_logs WHERE account_id = 'happy' AND call_id = '$1'"; }

SAM='{"firstName":"Sam","lastName":"Okafor","phone":"+15553217654","email":"sam@example.com","dateOfBirth":"1985-07-19"}'

@test "createPatient: an existing patient with that name and phone is returned, created false, nothing written" {
	run --separate-stderr parlae vapi tool invoke createPatient --account happy --caller +15551234567 \
		--args '{"firstName":"ana","lastName":"DIAZ","phone":"(555) 123-4567"}'
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .status, .patientId]')" '[true,false,"existing","P1"]'
	assert_equal "$(writebacks)" 0
	assert_equal "$(fake_get counters | jq -c '.requests["POST /v4/patient"] // 0')" 0
	assert_equal "$(sql "SELECT metadata->>'access' FROM audit_events WHERE action = 'vapi.tool' ORDER BY seq DESC LIMIT 1")" "verified-caller"
}

@test "createPatient: an existing patient's id is not told to a caller who is not that patient" {
	run --separate-stderr parlae vapi tool invoke create_patient --account happy --caller +15559990000 \
		--args '{"firstName":"Ana","lastName":"Diaz","phone":"+15551234567"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .status, .patientId, .verified]')" '[false,false,"existing",null,false]'
	[[ $output != *P1* ]]
	assert_equal "$(writebacks)" 0
	assert_equal "$(sql "SELECT metadata->>'access' FROM audit_events WHERE action = 'vapi.tool' ORDER BY seq DESC LIMIT 1")" "unverified-caller"
}

@test "createPatient from its recorded payload: the writeback is waited for and the new patient's id returned" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-create-patient.json"
	assert_success
	assert_equal "$stderr" ""
	r=$(result_of "$output" 0)
	new=$(last_created)
	[ -n "$new" ] && [ "$new" != P1 ]
	assert_equal "$(patients)" 2
	assert_equal "$(jq -c '[.success, .created, .status, .patientId]' <<<"$r")" "[true,true,\"created\",\"$new\"]"
	assert_regex "$(jq -r .confirmationNumber <<<"$r")" '^[0-9]+$'
	# What was sent: Sikka's field names, the phone as E.164, the practice's id.
	assert_equal "$(fake_get "state?office_id=D36225" | jq -c '.writebacks[-1].body | [.firstname, .lastname, .cell, .email, .birthdate, .practice_id]')" \
		'["Sam","Okafor","+15553217654","sam@example.com","1985-07-19","1"]'
	# Asked again, the same patient is returned rather than created twice.
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-create-patient.json"
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .patientId]')" "[true,false,\"$new\"]"
	assert_equal "$(writebacks)" 1
}

@test "createPatient when writeback_status names no created_id: the new record is found by name and cell" {
	fake writeback '{"pending_polls":0}' >/dev/null
	fake faults '{"method":"GET","path":"/v4/writeback_status","when":"after","body":"{\"offset\":0,\"limit\":1,\"total_count\":1,\"items\":[{\"id\":\"1\",\"is_completed\":\"True\",\"has_error\":\"False\",\"result\":\"Success\"}]}"}' >/dev/null
	run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$SAM"
	assert_success
	new=$(last_created)
	[ -n "$new" ] && [ "$new" != P1 ]
	assert_equal "$(patients)" 2
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .status, .patientId]')" "[true,true,\"created\",\"$new\"]"
	# One look-up before the writeback, one after it.
	assert_equal "$(fake_get counters | jq -c '.requests["GET /v4/patients"]')" 2
}

@test "createPatient still pending at the bound is pending, never created" {
	fake writeback '{"pending_polls":-1}' >/dev/null
	PARLAE_WRITEBACK_WAIT=1 run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$SAM"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .status, .patientId]')" '[false,false,"pending",null]'
	assert_regex "$(result_of "$output" 0 | jq -r .message)" "isn't confirmed yet"
}

@test "createPatient: a writeback_status that keeps failing leaves it pending, not failed and not created" {
	fake faults '{"method":"GET","path":"/v4/writeback_status","status":503,"count":-1}' >/dev/null
	PARLAE_WRITEBACK_WAIT=1 run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$SAM"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .status]')" '[false,false,"pending"]'
}

@test "createPatient whose writeback fails is failed, with Sikka's reason" {
	fake writeback '{"pending_polls":0,"fail":true,"result":"Duplicate chart number."}' >/dev/null
	run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$SAM"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .status, .patientId, .reason]')" '[false,false,"failed",null,"Duplicate chart number."]'
	assert_equal "$(patients)" 1
}

@test "createPatient with the practice's SPU offline is failed, saying so" {
	fake spu '{"office_id":"D36225","online":false}' >/dev/null
	run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$SAM"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .created, .status]')" '[false,false,"failed"]'
	assert_regex "$(result_of "$output" 0 | jq -r .message)" "system is offline"
	assert_equal "$(writebacks)" 0
}

@test "createPatient when Sikka answers 5xx is an error (exit 6), and the POST is sent once" {
	fake faults '{"method":"POST","path":"/v4/patient","status":500}' >/dev/null
	run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$SAM"
	assert_equal "$status" 6
	assert_equal "$(jq -c '.results[0] | [has("result"), (.error | test("500|Sikka"))]' <<<"$output")" '[false,true]'
	assert_equal "$(fake_get counters | jq -c '.requests["POST /v4/patient"]')" 1
	assert_equal "$(writebacks)" 0
	# A 5xx on the look-up before it: an error too, and nothing is written.
	fake faults '{"method":"GET","path":"/v4/patients","status":503,"count":-1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$SAM"
	fake faults/clear '{}' >/dev/null
	assert_equal "$status" 6
	assert_equal "$(writebacks)" 0
}

@test "createPatient: bad arguments are exit 65 and nothing reaches Sikka" {
	t() {
		run --separate-stderr parlae vapi tool invoke createPatient --account happy --args "$1"
		assert_equal "$status" 65
		assert_equal "$(jq -r '.results[0].error' <<<"$output")" "createPatient: $2"
	}
	t '{"firstName":"Sam","lastName":"Okafor"}' "phone is required"
	t '{"lastName":"Okafor","phone":"+15553217654"}' "firstName is required"
	t '{"firstName":"Sam","lastName":"Okafor","phone":"call me"}' "phone must be a phone number"
	t '{"firstName":"Sam","lastName":"Okafor","phone":"+15553217654","dateOfBirth":"19/07/1985"}' "dateOfBirth must be YYYY-MM-DD"
	t '{"firstName":"Sam","lastName":"Okafor","phone":"+15553217654","dateOfBirth":"2030-01-01"}' "dateOfBirth is in the future"
	t '{"firstName":"Sam","lastName":"Okafor","phone":"+15553217654","email":"sam.example.com"}' "email is not valid"
	t "{\"firstName\":\"$(printf 'S%.0s' {1..101})\",\"lastName\":\"Okafor\",\"phone\":\"+15553217654\"}" "firstName and lastName must be at most 100 bytes each"
	# A name or email with a control character would stay in the practice's record (s21).
	for bad in '"Sam\nURGENT"' '"Sam\u001b[2J"' '"Sam\u0085"' '"Sam\u2028"' '"Sam\u007f"'; do
		t "{\"firstName\":$bad,\"lastName\":\"Okafor\",\"phone\":\"+15553217654\"}" "firstName, lastName and email must have no control characters"
		t "{\"firstName\":\"Sam\",\"lastName\":\"Okafor\",\"phone\":\"+15553217654\",\"email\":$bad}" "firstName, lastName and email must have no control characters"
	done
	assert_equal "$(fake_get counters | jq -c '.requests | keys | map(select(startswith("POST") or startswith("GET /v4/patients")))')" '[]'
}

@test "takeMessage from its recorded payload texts the staff and keeps the message in the call's log" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-take-message.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .taken, .smsSent, has("smsError")]')" '[true,true,true,false]'
	assert_equal "$(twilio_get messages | jq -c '[length, .[-1].to]')" '[1,"+15550002000"]'
	assert_equal "$(twilio_get messages | jq -r '.[-1].body')" \
		"Message for the office from caller +15551234567, call back on +15551234567: Please call me back about my last bill."
	assert_equal "$(messages_of 9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e15 | jq -c 'map([.message, .callbackNumber, .urgency, .smsSent, .smsError, (.at | type)])')" \
		'[["Please call me back about my last bill.","+15551234567","normal",true,null,"string"]]'
}

@test "takeMessage: the callback number defaults to the caller, urgent is marked, messages of a call add up" {
	run --separate-stderr parlae vapi tool invoke takeMessage --account happy --caller "(555) 765-4321" --call-id m-1 \
		--args '{"message":"My crown came off.","urgency":"urgent"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .taken, .smsSent]')" '[true,true,true]'
	assert_regex "$(result_of "$output" 0 | jq -r .message)" "marked it urgent"
	assert_equal "$(twilio_get messages | jq -r '.[-1].body')" \
		"URGENT. Message for the office from caller (555) 765-4321, call back on +15557654321: My crown came off."
	run --separate-stderr parlae vapi tool invoke take-message --account happy --call-id m-1 --args '{"message":"Also, Tuesday works.","callbackNumber":"555 000 1111"}'
	assert_success
	assert_equal "$(messages_of m-1 | jq -c 'map([.message, .callbackNumber, .urgency])')" \
		'[["My crown came off.","+15557654321","urgent"],["Also, Tuesday works.","+15550001111","normal"]]'
	# No caller and no callback number: kept without one.
	run --separate-stderr parlae vapi tool invoke takeMessage --account happy --call-id m-2 --args '{"message":"Hello."}'
	assert_success
	assert_equal "$(messages_of m-2 | jq -c 'map(.callbackNumber)')" '[null]'
	assert_regex "$(twilio_get messages | jq -r '.[-1].body')" "call back on \(no number\): Hello\.$"
}

@test "takeMessage when the text to the staff fails: still taken, smsSent false, why kept with the message" {
	twilio_fake faults '{"status":400,"body":"{\"code\":21211,\"message\":\"The To number is not a valid phone number.\",\"status\":400}","count":1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke takeMessage --account happy --caller +15551234567 --call-id m-21211 --args '{"message":"Call me."}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .taken, .smsSent, .smsError]')" '[true,true,false,"Twilio error 21211"]'
	assert_equal "$(messages_of m-21211 | jq -c 'map([.message, .smsSent, .smsError])')" '[["Call me.",false,"Twilio error 21211"]]'
	# Twilio down, or not configured at all: the same.
	twilio_fake faults '{"status":503,"count":-1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke takeMessage --account happy --call-id m-503 --args '{"message":"Call me."}'
	twilio_fake faults/clear '{}' >/dev/null
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.taken, .smsSent, .smsError]')" '[true,false,"SMS service unreachable"]'
	TWILIO_AUTH_TOKEN= run --separate-stderr parlae vapi tool invoke takeMessage --account happy --call-id m-conf --args '{"message":"Call me."}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.taken, .smsSent, .smsError]')" '[true,false,"SMS not configured"]'
	assert_equal "$(messages_of m-conf | jq -c 'map([.smsSent, .smsError])')" '[[false,"SMS not configured"]]'
}

@test "a text to the staff that Twilio does not answer ends inside the tool timeout: takeMessage and transferToHuman still answer" {
	# Twilio answers after 5 s; the tool has 3 s (PARLAE_TOOL_TIMEOUT), one of them kept for
	# recording and answering. Before, the text waited on Twilio past Vapi's timeout.
	twilio_fake faults '{"delay_ms":5000,"count":2}' >/dev/null
	t0=$(date +%s%N)
	PARLAE_TOOL_TIMEOUT=3 run --separate-stderr parlae vapi tool invoke takeMessage --account happy --caller +15551234567 --call-id m-slow --args '{"message":"Call me."}'
	t1=$(date +%s%N)
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .taken, .smsSent, .smsError]')" '[true,true,false,"SMS service timed out"]'
	assert_equal "$(messages_of m-slow | jq -c 'map([.message, .smsSent, .smsError])')" '[["Call me.",false,"SMS service timed out"]]'
	[ $(( (t1 - t0) / 1000000 )) -lt 3000 ] || fail "takeMessage took $(( (t1 - t0) / 1000000 )) ms, past its 3 s"
	t0=$(date +%s%N)
	PARLAE_TOOL_TIMEOUT=3 run --separate-stderr parlae vapi tool invoke transferToHuman --account happy --caller +15551234567 --call-id m-slow --args '{"reason":"billing question"}'
	t1=$(date +%s%N)
	twilio_fake faults/clear '{}' >/dev/null
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .destination.number, .smsSent, .smsError]')" '[true,"+15550002000",false,"SMS service timed out"]'
	[ $(( (t1 - t0) / 1000000 )) -lt 3000 ] || fail "transferToHuman took $(( (t1 - t0) / 1000000 )) ms, past its 3 s"
	# Twilio still got both (whether a text that timed out went is not known: smsSent false says
	# it is not known to have gone); the next test starts once the fake has finished with them.
	for _ in $(seq 1 60); do
		[ "$(twilio_get messages | jq length)" = 2 ] && break
		sleep 0.1
	done
	assert_equal "$(twilio_get messages | jq length)" 2
}

@test "takeMessage with no staff number on file is still taken, and needs no Sikka connection" {
	sql_owner "UPDATE vapi_phone_numbers SET staff_forward_number = NULL, transfer_enabled = false WHERE vapi_phone_id = 'pn-happy-dental'"
	sql_owner "UPDATE pms_integrations SET status = 'ERROR' WHERE account_id = 'happy'"
	run --separate-stderr parlae vapi tool invoke takeMessage --account happy --call-id m-nostaff --args '{"message":"Call me."}'
	sql_owner "UPDATE pms_integrations SET status = 'ACTIVE' WHERE account_id = 'happy'"
	sql_owner "UPDATE vapi_phone_numbers SET staff_forward_number = '+15550002000', transfer_enabled = true WHERE vapi_phone_id = 'pn-happy-dental'"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .taken, .smsSent, .smsError]')" '[true,true,false,"no staff number"]'
	assert_equal "$(twilio_get messages | jq length)" 0
	assert_equal "$(messages_of m-nostaff | jq -c 'map([.message, .smsSent])')" '[["Call me.",false]]'
}

@test "takeMessage: bad arguments are exit 65, nothing kept or sent" {
	t() {
		run --separate-stderr parlae vapi tool invoke takeMessage --account happy --call-id m-bad --args "$1"
		assert_equal "$status" 65
		assert_equal "$(jq -r '.results[0].error' <<<"$output")" "takeMessage: $2"
	}
	t '{}' "message is required"
	t '{"message":""}' "message is required"
	t '{"message":"Hi.","urgency":"high"}' "urgency must be normal or urgent"
	t '{"message":"Hi.","urgency":"Urgent"}' "urgency must be normal or urgent"
	t '{"message":"Hi.","callbackNumber":"after five"}' "callbackNumber must be a phone number"
	assert_equal "$(messages_of m-bad)" "[]"
	assert_equal "$(twilio_get messages | jq length)" 0
}

@test "takeMessage keeps at most 1,000 bytes of a message, cut between characters, and 20 messages a call" {
	long=$(printf 'a%.0s' {1..999})é$(printf 'b%.0s' {1..50})
	run --separate-stderr parlae vapi tool invoke takeMessage --account happy --call-id m-long --args "{\"message\":\"$long\"}"
	assert_success
	assert_equal "$(sql "SELECT octet_length(messages->0->>'message') || '|' || right(messages->0->>'message', 1) FROM vapi_call_logs WHERE call_id = 'm-long'")" "999|a"
	assert_equal "$(twilio_get messages | jq -r '.[-1].body | endswith("aaa")')" true
	# A log already holding 20 messages takes no more: the caller is offered the staff instead.
	sql_owner "UPDATE vapi_call_logs SET messages = (SELECT jsonb_agg('{\"message\":\"earlier\"}'::jsonb) FROM generate_series(1, 20)) WHERE call_id = 'm-long'"
	run --separate-stderr parlae vapi tool invoke takeMessage --account happy --call-id m-long --args '{"message":"One more."}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .taken, .smsSent]')" '[false,false,false]'
	assert_equal "$(sql "SELECT jsonb_array_length(messages) FROM vapi_call_logs WHERE call_id = 'm-long'")" 20
	assert_equal "$(twilio_get messages | jq length)" 1
	# The table holds anyone to that, not only the handler.
	run sql_owner "UPDATE vapi_call_logs SET messages = messages || '[{}]' WHERE call_id = 'm-long'"
	assert_failure 1
	assert_output --partial "violates check constraint"
}

@test "transferToHuman keeps at most 1,000 bytes of its reason and of its summary in the call's log, cut between characters" {
	long=$(printf 'a%.0s' {1..999})é$(printf 'b%.0s' {1..50})
	run --separate-stderr parlae vapi tool invoke transferToHuman --account happy --caller +15551234567 --call-id t-long \
		--args "{\"reason\":\"$long\",\"summary\":\"$long$long\"}"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .smsSent]')" '[true,true]'
	assert_equal "$(sql "SELECT octet_length(transfer_reason) || '|' || right(transfer_reason, 1) || '|' ||
		octet_length(transfer_summary) || '|' || right(transfer_summary, 1) FROM vapi_call_logs WHERE call_id = 't-long'")" "999|a|999|a"
}

@test "a message is kept only in the call's log: not in audit events, stderr or the -vv trace; createPatient's data not in the trace" {
	words="Zebrafish-7731 question about my bridge"
	run --separate-stderr parlae -vv vapi tool invoke takeMessage --account happy --caller +15557654321 --call-id m-secret \
		--args "{\"message\":\"$words\",\"callbackNumber\":\"+15558889999\"}"
	assert_equal "$status" 0
	trace=$stderr
	assert_regex "$trace" "http: POST .*Messages"
	assert_regex "$trace" "sql: UPDATE vapi_call_logs"
	refute_secrets_in "$trace" Zebrafish 7731 bridge 8889999
	refute_secrets_in "$(sql "SELECT string_agg(metadata::text || coalesce(resource_id, ''), ' ') FROM audit_events")" Zebrafish 7731 bridge 8889999
	assert_equal "$(messages_of m-secret | jq -r '.[0].message')" "$words"
	run --separate-stderr parlae -vv vapi tool invoke createPatient --account happy --caller +15553217654 --args "$SAM"
	assert_equal "$status" 0
	assert_equal "$(result_of "$output" 0 | jq -r .status)" created
	assert_regex "$stderr" "http: POST .*/v4/patient"
	refute_secrets_in "$stderr" Okafor sam@example.com 1985-07-19 3217654
}

@test "vapi replay runs both recorded payloads: a patient created, a message kept" {
	before=$(sql "SELECT coalesce(max(seq), 0) FROM audit_events")
	mkdir "$BATS_TEST_TMPDIR/two"
	cp "$FIX/tool-calls-create-patient.json" "$FIX/tool-calls-take-message.json" "$BATS_TEST_TMPDIR/two/"
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/two" --json
	assert_success
	assert_equal "$(jq -c '[.total, .ok, .failed, .skipped]' <<<"$output")" '[2,2,0,0]'
	assert_equal "$(patients)" 2
	assert_equal "$(messages_of 9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e15 | jq -c 'map(.message)')" '["Please call me back about my last bill."]'
	assert_equal "$(twilio_get messages | jq length)" 1
	assert_equal "$(sql "SELECT string_agg(metadata->>'tool' || ':' || outcome, ',' ORDER BY seq) FROM audit_events WHERE action = 'vapi.tool' AND seq > $before")" \
		"createPatient:success,takeMessage:success"
}
