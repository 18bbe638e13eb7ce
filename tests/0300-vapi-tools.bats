#!/usr/bin/env bats
# vapi tool invoke: the four tools through parlae's handlers against the fake Sikka and Twilio,
# every payload shape, bad input, --target and --expect.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() { vapi_setup; }

# The result text of call N of a reply, as JSON.
result_of() { jq -r ".results[$2].result" <<<"$1"; }

@test "checkAvailability: office hours minus booked appointments, in the practice's time zone" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-check-availability.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '.results[0] | [.toolCallId, .name, has("result")]' <<<"$output")" '["call_avail_01","checkAvailability",true]'
	r=$(result_of "$output" 0)
	assert_equal "$(jq -c '[.success, .date, .timezone, (.slots | length), .slots[0], (.slots | map(.start) | index("09:00"))]' <<<"$r")" \
		'[true,"2026-12-01","America/New_York",17,{"start":"08:00","end":"08:30","providerId":null},null]'
	[[ $output != *$'\n'* ]] || [[ $(wc -l <<<"$output") -eq 1 ]]
}

@test "checkAvailability: a past date moves to the same weekday next week" {
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-11-24","duration":60}'
	assert_success
	r=$(result_of "$output" 0)
	assert_equal "$(jq -c '[.date, (.slots | length), .slots[0].end]' <<<"$r")" '["2026-12-01",8,"09:00"]'
}

@test "checkAvailability today drops the slots already past" {
	run --separate-stderr parlae vapi tool invoke check-availability --account happy --args '{"date":"2026-11-30"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.slots[0].start, (.slots | length)]')" '["10:00",14]'
}

@test "checkAvailability: office hours may end at 24:00, never at 24:30" {
	saved=$(sql_owner "SELECT config::text FROM pms_integrations WHERE account_id = 'happy'")
	sql_owner "UPDATE pms_integrations SET config = jsonb_set(config, '{hours}', '{\"tue\":[[\"22:00\",\"24:00\"]]}') WHERE account_id = 'happy'"
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	ends=$(result_of "$output" 0 | jq -c '[.slots[].end]')
	sql_owner "UPDATE pms_integrations SET config = jsonb_set(config, '{hours}', '{\"tue\":[[\"22:00\",\"24:30\"]]}') WHERE account_id = 'happy'"
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	sql_owner "UPDATE pms_integrations SET config = '$saved' WHERE account_id = 'happy'"
	assert_equal "$ends" '["22:30","23:00","23:30","24:00"]'
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .slots]')" '[false,[]]'
}

@test "checkAvailability with no opening is success false, not an error" {
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-05"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .slots, .message]')" '[false,[],"There are no openings on 2026-12-05."]'
}

@test "getPatientInfo with string arguments and a matching caller returns the record" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-get-patient-info-string-args.json"
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .found, .verified, .patient]')" \
		'[true,true,true,{"id":"P1","firstName":"Ana","lastName":"Diaz","nextAppointment":{"start":"2026-12-15T10:00","providerId":"DR1"}}]'
}

@test "getPatientInfo for a caller who is not the patient says only that a record exists" {
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --caller +15559990000 --args '{"query":"Ana Diaz"}'
	assert_success
	r=$(result_of "$output" 0)
	assert_equal "$(jq -c '[.success, .found, .verified, has("patient")]' <<<"$r")" '[true,true,false,false]'
	[[ $output != *Diaz* && $output != *P1* ]]
}

@test "getPatientInfo with no match is success false" {
	run --separate-stderr parlae vapi tool invoke lookupPatient --account happy --caller +15551234567 --args '{"phone":"+15550000000"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .found]')" '[false,false]'
}

@test "a direct look-up without --caller is the operator's and is audited as such" {
	run --separate-stderr parlae vapi tool invoke get_patient_info --account happy --args '{"firstName":"Ana","lastName":"Diaz"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.found, .operatorAccess, .patient.id]')" '[true,true,"P1"]'
	assert_equal "$(sql "SELECT metadata->>'operatorAccess' FROM audit_events WHERE action = 'vapi.tool' ORDER BY seq DESC LIMIT 1")" "true"
}

@test "bookAppointment books through the writeback and waits for it" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-book-appointment.json"
	assert_success
	r=$(result_of "$output" 0)
	assert_equal "$(jq -c '[.success, .status, .start]' <<<"$r")" '[true,"booked","2026-12-01T10:00:00"]'
	assert_regex "$(jq -r .appointmentId <<<"$r")" '^[0-9]+$'
	assert_equal "$(fake_get state | jq -c '[.writebacks[-1].body | .patient_id, .date, .time, .provider_id, .check_spu]')" '["P1","2026-12-01","10:00","DR1","true"]'
}

@test "bookAppointment on a taken slot reports failed, never booked" {
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-01T09:00:00","patientId":"P1"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .status]')" '[false,"failed"]'
}

@test "bookAppointment still pending at the bound is reported pending" {
	fake writeback '{"pending_polls":-1}' >/dev/null
	PARLAE_WRITEBACK_WAIT=1 run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .status, .appointmentId]')" '[false,"pending",null]'
}

@test "bookAppointment with the SPU offline says so" {
	fake spu '{"office_id":"D36225","online":false}' >/dev/null
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .status]')" '[false,"failed"]'
	assert_regex "$(result_of "$output" 0 | jq -r .message)" "scheduling system is offline"
}

@test "transferToHuman texts the staff, logs the transfer and returns the destination" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-transfer-to-human.json"
	assert_success
	r=$(result_of "$output" 0)
	assert_equal "$(jq -c '[.success, .destination.type, .destination.number]' <<<"$r")" '[true,"number","+15550002000"]'
	assert_regex "$(jq -r .smsSid <<<"$r")" '^SM[0-9a-f]{32}$'
	assert_equal "$(jq -c '[.smsSent, has("smsError")]' <<<"$r")" '[true,false]'
	assert_equal "$(twilio_get messages | jq -c '.[-1] | [.to, .from]')" '["+15550002000","+15550009999"]'
	assert_regex "$(twilio_get messages | jq -r '.[-1].body')" 'billing question'
	assert_equal "$(sql "SELECT transfer_requested || '|' || transfer_reason || '|' || status || '|' || sms_sent || '|' || coalesce(sms_error, '-') FROM vapi_call_logs WHERE account_id = 'happy' AND call_id = '9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e04'")" "true|billing question|transferred|true|-"
}

@test "transferToHuman when Twilio refuses the staff number (21211) still returns the destination, smsSent false" {
	twilio_fake faults '{"status":400,"body":"{\"code\":21211,\"message\":\"The To number is not a valid phone number.\",\"status\":400}","count":1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke transferToHuman --account happy --call-id c-21211 --args '{"reason":"x"}'
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .destination.number, .smsSent, .smsSid, .smsError]')" '[true,"+15550002000",false,null,"Twilio error 21211"]'
	assert_equal "$(sql "SELECT transfer_requested || '|' || sms_sent || '|' || sms_error FROM vapi_call_logs WHERE account_id = 'happy' AND call_id = 'c-21211'")" "true|false|Twilio error 21211"
}

@test "transferToHuman without a staff number is success false" {
	parlae account add nostaff >/dev/null
	run --separate-stderr parlae vapi tool invoke transferToHuman --account nostaff --args '{"reason":"x"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.success, .message]')" '[false,"No staff number is set up for transfers at this practice."]'
}

@test "an expired request key is refreshed once through the locked path and the call retried" {
	before=$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'happy'")
	fake expire '{"office_id":"D36225"}' >/dev/null
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -r .success)" "true"
	assert_equal "$(fake_get counters | jq -c '.grants.refresh_key')" "1"
	assert_equal "$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'happy'")" "$((before + 1))"
	assert_equal "$(sql "SELECT outcome FROM audit_events WHERE action = 'secrets.rotate' ORDER BY seq DESC LIMIT 1")" "success"
}

@test "two calls in one message, kebab-case and snake_case, answered in order with names as received" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-two-calls.json"
	assert_success
	assert_equal "$(jq -c '[.results[] | [.toolCallId, .name]]' <<<"$output")" '[["call_multi_a","get-patient-info"],["call_multi_b","check_availability"]]'
	assert_equal "$(sql "SELECT tool_calls FROM vapi_call_logs WHERE call_id = '9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e05'")" "2"
}

@test "the legacy function-call gets {\"result\":...}" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/function-call-legacy.json"
	assert_success
	assert_equal "$(jq -c 'keys' <<<"$output")" '["result"]'
	assert_equal "$(jq -r .result <<<"$output" | jq -c '[.date, (.slots | .[0].end)]')" '["2026-12-03","09:00"]'
}

@test "toolCalls and toolWithToolCallList are read when toolCallList is absent; a repeated id runs once" {
	msg='{"message":{"type":"tool-calls","call":{"id":"c-shapes","phoneNumberId":"pn-happy-dental"},
	      "toolCalls":[{"id":"t1","function":{"name":"checkAvailability","arguments":{"date":"2026-12-01"}}},
	                   {"id":"t1","function":{"name":"checkAvailability","arguments":{"date":"2026-12-01"}}}]}}'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$msg"
	assert_success
	assert_equal "$(jq -c '[.results[].toolCallId]' <<<"$output")" '["t1"]'
	msg='{"message":{"type":"tool-calls","call":{"id":"c-nested","phoneNumberId":"pn-happy-dental"},
	      "toolWithToolCallList":[{"toolCall":{"id":"n1","function":{"name":"checkAvailability","arguments":"{\"date\":\"2026-12-01\"}"}}}]}}'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$msg"
	assert_success
	assert_equal "$(jq -c '[.results[].toolCallId]' <<<"$output")" '["n1"]'
}

@test "malformed, oversized and too deep payloads exit 65 with nothing on stdout" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/malformed-truncated.json"
	assert_equal "$status" 65
	assert_equal "$output" ""
	assert_regex "$stderr" "^parlae: the payload is not valid JSON"
	head -c 1048577 /dev/zero | tr '\0' ' ' >"$BATS_TEST_TMPDIR/big"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/big"
	assert_equal "$status" 65
	assert_regex "$stderr" "larger than 1 MiB"
	deep=$(printf '[%.0s' {1..100})
	run --separate-stderr parlae vapi tool invoke --payload - <<<"{\"message\":$deep"
	assert_equal "$status" 65
	assert_regex "$stderr" "nests deeper than"
}

@test "bad arguments are an error result; all calls failing gives the error's exit code" {
	run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"tomorrow"}'
	assert_equal "$status" 65
	assert_equal "$(jq -r '.results[0].error' <<<"$output")" "checkAvailability: date must be YYYY-MM-DD"
	run --separate-stderr parlae vapi tool invoke nosuchTool --account happy
	assert_equal "$status" 5
}

@test "one call failing among several gives exit 9" {
	msg='{"message":{"type":"tool-calls","call":{"id":"c-partial","phoneNumberId":"pn-happy-dental"},
	      "toolCallList":[{"id":"a","function":{"name":"checkAvailability","arguments":{"date":"2026-12-01"}}},
	                      {"id":"b","function":{"name":"checkAvailability","arguments":{}}}]}}'
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$msg"
	assert_equal "$status" 9
	assert_equal "$(jq -c '[.results[] | has("result")]' <<<"$output")" '[true,false]'
}

@test "an unknown phone number id is exit 5" {
	run --separate-stderr parlae vapi tool invoke --payload - <<<'{"message":{"type":"tool-calls","call":{"id":"x","phoneNumberId":"pn-nobody"},"toolCallList":[{"id":"a","function":{"name":"checkAvailability","arguments":{}}}]}}'
	assert_equal "$status" 5
	assert_equal "$output" ""
	assert_regex "$stderr" "no account has the Vapi phone number id 'pn-nobody'"
}

@test "an end-of-call-report closes the call's log" {
	parlae vapi tool invoke --payload "$FIX/tool-calls-book-appointment.json" >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/end-of-call-report.json"
	assert_success --stderr '^closed the log of call'
	assert_equal "$(sql "SELECT status || '|' || (ended_at IS NOT NULL) FROM vapi_call_logs WHERE call_id = '9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e03'")" "ended|true"
}

@test "--target sends as Vapi would, with each auth mode, and prints the backend's answer" {
	for mode in secret hmac bearer; do
		target_fake auth "{\"mode\":\"$mode\",\"secret\":\"$VAPI_WEBHOOK_SECRET\"}" >/dev/null
		run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-check-availability.json" --target "$FAKE_TARGET/vapi/webhook" --auth $mode
		assert_success --stderr 'HTTP 200 in [0-9]+ ms'
		assert_equal "$(jq -c '[.results[0].toolCallId, (.results[0].result | fromjson | .success)]' <<<"$output")" '["call_avail_01",true]'
		assert_regex "$stderr" "^HTTP 200 in [0-9]+ ms$"
	done
}

@test "--target refusing the secret is exit 3 naming VAPI_WEBHOOK_SECRET; a dead target is exit 6" {
	target_fake auth '{"mode":"secret","secret":"another"}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-check-availability.json" --target "$FAKE_TARGET/"
	assert_equal "$status" 3
	assert_regex "$stderr" "check VAPI_WEBHOOK_SECRET"
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-check-availability.json" --target "http://127.0.0.1:1/"
	assert_equal "$status" 6
}

@test "--expect compares semantically: equal exits 0, different exits 1 and shows where" {
	parlae vapi tool invoke --payload "$FIX/tool-calls-check-availability.json" >"$BATS_TEST_TMPDIR/want.json"
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-check-availability.json" --expect "$BATS_TEST_TMPDIR/want.json"
	assert_success
	sed 's/08:00/07:00/' "$BATS_TEST_TMPDIR/want.json" >"$BATS_TEST_TMPDIR/other.json"
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-check-availability.json" --expect "$BATS_TEST_TMPDIR/other.json"
	assert_equal "$status" 1
	assert_regex "$stderr" 'results\[0\]\.result\.slots\[0\]\.start'
}

@test "no patient data in the audit log or a -vv trace" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-get-patient-info-string-args.json" -vv
	assert_success --stderr 'trace: '
	[[ $stderr == *"trace: http: GET"* ]]
	refute_secrets_in "$stderr" Diaz ana@example.com 1990-04-01 "$SIKKA_APP_KEY"
	audit=$(sql "SELECT string_agg(coalesce(metadata::text, '') || coalesce(resource_id, ''), ' ') FROM audit_events")
	refute_secrets_in "$audit" Ana Diaz 5551234567 1990-04-01 "billing question"
}

@test "vapi phone list shows the numbers; phone add checks E.164" {
	run --separate-stderr parlae vapi phone list --json
	assert_success
	assert_equal "$(jq -c '.[] | select(.vapiId == "pn-happy-dental") | [.account, .number, .staffForward, .transferEnabled]' <<<"$output")" '["happy","+15550001000","+15550002000",true]'
	run --separate-stderr parlae vapi phone add happy --vapi-id pn-2 --number 5551234
	assert_equal "$status" 2
}

@test "--as-of payload takes now from the payload's timestamp" {
	jq -c '.message.toolCallList[0].function.arguments.date = "2026-11-11"' "$FIX/tool-calls-check-availability.json" >"$BATS_TEST_TMPDIR/asof.json"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/asof.json" --as-of payload
	assert_success
	assert_equal "$(result_of "$output" 0 | jq -c '[.date, (.slots | length)]')" '["2026-11-11",18]'
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/asof.json"
	assert_equal "$(result_of "$output" 0 | jq -r .date)" "2026-12-02"
}

@test "-vv traces mask a patient search in the URL and patient fields in answers" {
	fake seed '{"office_id":"D36225","append":true,"patients":[{"patient_id":"P7","firstname":"Zed","lastname":"Quill","homephone":"+15553330000","address_line1":"1 Main St","email":"zq@example.com"}]}' >/dev/null
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args '{"query":"zq@example.com"}' -vv
	assert_success --stderr 'trace: '
	[[ $stderr == *"trace: http: GET "*"/v4/patients?email=***"* ]]
	refute_secrets_in "$stderr" zq@example.com zq%40example.com Quill 5553330000 "1 Main St"
}

@test "a slow Sikka cannot hold a booking past Vapi's 20 s: it answers in time, as pending or an error" {
	fake latency '{"ms":6000}' >/dev/null
	# Unbounded, four lookups and the POST at 6 s each would finish, late, as "booked".
	run --separate-stderr parlae vapi tool invoke bookAppointment --account happy --args '{"startTime":"2026-12-02T11:00:00","patientId":"P1"}'
	fake latency '{"ms":0}' >/dev/null
	r=$(jq -r '.results[0].result // empty' <<<"$output")
	if [ -n "$r" ]; then
		assert_equal "$(jq -c '[.success, .status]' <<<"$r")" '[false,"pending"]'
	else
		assert_regex "$(jq -r '.results[0].error' <<<"$output")" "ran out of time|timed out"
	fi
}
