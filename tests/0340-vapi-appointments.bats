#!/usr/bin/env bats
# getAppointments, rescheduleAppointment and cancelAppointment against the fake Sikka: the
# patient's own appointments only, the writebacks waited for (booked or cancelled, pending,
# failed), Sikka's errors, strict arguments; through vapi tool invoke and vapi replay.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi
REFUSAL="I can only change appointments for the patient calling from the phone number on file. The office staff can verify who you are and help you."

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }

# vapi_setup's practice (P1 Ana Diaz, +15551234567; A1 of P9 on 12-01, A2 of P1 on 12-15), and
# more of Ana's: one earlier today (now is 10:00 in New York), one broken, one in April.
setup() {
	vapi_setup
	fake seed '{"office_id":"D36225","append":true,"appointments":[
		{"appointment_sr_no":"A3","patient_id":"P1","provider_id":"DR1","date":"2026-11-30","time":"09:00","length":"30"},
		{"appointment_sr_no":"A4","patient_id":"P1","provider_id":"DR1","date":"2026-12-20","time":"09:00","length":"30","status":"Broken"},
		{"appointment_sr_no":"A5","patient_id":"P1","provider_id":"DR1","date":"2027-04-01","time":"14:00","length":"60"}]}' >/dev/null
	curl -sS -X POST "$FAKE_SIKKA/__fake/counters/reset" >/dev/null
}

result_of() { jq -r ".results[${2:-0}].result" <<<"$1"; }
# The fake's appointment: [date, time, length, status].
appt() {
	curl -sS -H "Request-Key: $(fake_get state | jq -r '.offices.D36225.valid_request_keys[-1]')" \
		"$FAKE_SIKKA/v4/appointments?appointment_sr_no=$1" | jq -c '.items[0] | [.date[:10], .time, .length, .status]'
}
# Sikka requests that change something: PUT, PATCH or POST, by path.
writes() { fake_get counters | jq -c '[.requests | to_entries[] | select(.key | test("^(PUT|PATCH|POST) /v4/(appointment|patient)")) | .key]'; }
last_access() { sql "SELECT metadata->>'access' FROM audit_events WHERE action = 'vapi.tool' ORDER BY seq DESC LIMIT 1"; }

# --- getAppointments --------------------------------------------------------------------------

@test "getAppointments from the recorded payload: the caller's upcoming appointments, in the next 90 days" {
	fake seed '{"office_id":"D36225","append":true,"appointments":[{"appointment_sr_no":"A6","patient_id":"P1","provider_id":"DR1","date":"2026-12-22","time":"08:30","length":"30","description":"Crown prep upper left"}]}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-get-appointments.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '.results[0] | [.toolCallId, .name]' <<<"$output")" '["call_appts_01","getAppointments"]'
	assert_equal "$(result_of "$output" | jq -c '[.success, .message, .appointments]')" \
		'[true,"There are 2 upcoming appointments.",[{"appointmentId":"A2","start":"2026-12-15T10:00","providerId":"DR1","description":""},{"appointmentId":"A6","start":"2026-12-22T08:30","providerId":"DR1","description":"Crown prep upper left"}]]'
	assert_equal "$(last_access)" verified-caller
}

@test "getAppointments: from and to choose the days; a patientId is the operator's to give" {
	run --separate-stderr parlae vapi tool invoke getAppointments --account happy --args '{"patientId":"P1","from":"2027-01-01","to":"2027-06-30"}'
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, [.appointments[] | [.appointmentId, .start]]]')" '[true,[["A5","2027-04-01T14:00"]]]'
	assert_equal "$(last_access)" operator
	run --separate-stderr parlae vapi tool invoke getAppointments --account happy --args '{"patientId":"P1","from":"2026-12-16","to":"2026-12-31"}'
	assert_equal "$(result_of "$output" | jq -c '[.success, .message, .appointments]')" '[false,"I don'"'"'t see any upcoming appointments.",[]]'
}

@test "getAppointments for a caller who is not the patient is refused: nothing read" {
	run --separate-stderr parlae vapi tool invoke getAppointments --account happy --caller +15559990000
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .verified, has("appointments")]')" '[false,false,false]'
	assert_equal "$(fake_get counters | jq '.requests["GET /v4/appointments"] // 0')" 0
	assert_equal "$(last_access)" unverified-caller
	# Naming the patient does not help.
	run --separate-stderr parlae vapi tool invoke getAppointments --account happy --caller +15559990000 --args '{"patientId":"P1"}'
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .verified, has("appointments")]')" '[false,false,false]'
	assert_equal "$(fake_get counters | jq '.requests["GET /v4/appointments"] // 0')" 0
}

@test "getAppointments: bad arguments are exit 65" {
	for args in '{"from":"2026-13-01","patientId":"P1"}' '{"to":"tomorrow","patientId":"P1"}' \
		'{"patientId":"P1","from":"2026-12-10","to":"2026-12-01"}' '{"patientId":"P1;drop"}' \
		'{"patientId":"P1","from":"2026-12-01","to":"2028-12-01"}' '{}'; do
		run --separate-stderr parlae vapi tool invoke getAppointments --account happy --args "$args"
		assert_equal "$status" 65
		assert_regex "$(jq -r '.results[0].error' <<<"$output")" '^getAppointments: '
	done
}

@test "getAppointments: a description is given to the agent, never to the audit log or a trace" {
	fake seed '{"office_id":"D36225","append":true,"appointments":[{"appointment_sr_no":"A7","patient_id":"P1","provider_id":"DR1","date":"2026-12-23","time":"08:30","description":"Extraction tooth 14 anxious patient"}]}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-get-appointments.json" -vv
	assert_success --stderr 'trace: '
	assert_regex "$(result_of "$output")" 'Extraction tooth 14'
	refute_secrets_in "$stderr" "Extraction tooth" Diaz 5551234567
	audit=$(sql "SELECT string_agg(coalesce(metadata::text, '') || coalesce(resource_id, ''), ' ') FROM audit_events")
	refute_secrets_in "$audit" "Extraction tooth" Diaz 5551234567
}

# --- rescheduleAppointment --------------------------------------------------------------------

@test "rescheduleAppointment from the recorded payload moves the appointment and waits for it" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-reschedule-appointment.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .appointmentId, .start]')" '[true,"booked","A2","2026-12-16T11:00:00"]'
	assert_equal "$(appt A2)" '["2026-12-16","11:00","30","Scheduled"]'
	assert_equal "$(fake_get state | jq -c '[.writebacks[-1] | .method, .target, .body.patient_id, .body.provider_id, .body.check_spu]')" '["PUT","A2","P1","DR1","true"]'
	assert_equal "$(last_access)" verified-caller
}

@test "rescheduleAppointment still pending at the bound is pending, and nothing moved yet" {
	fake writeback '{"pending_polls":-1}' >/dev/null
	PARLAE_WRITEBACK_WAIT=1 run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-reschedule-appointment.json"
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .appointmentId]')" '[false,"pending","A2"]'
	assert_equal "$(appt A2)" '["2026-12-15","10:00","30","Scheduled"]'
}

@test "rescheduleAppointment onto a taken time fails, never booked; a failed writeback too" {
	run --separate-stderr parlae vapi tool invoke rescheduleAppointment --account happy --caller +15551234567 --args '{"appointmentId":"A2","startTime":"2026-12-01T09:00:00"}'
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .reason]')" '[false,"failed","Slot not available: overlaps appointment A1."]'
	assert_equal "$(appt A2)" '["2026-12-15","10:00","30","Scheduled"]'
	fake writeback '{"fail":true}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-reschedule-appointment.json"
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status]')" '[false,"failed"]'
	assert_equal "$(appt A2)" '["2026-12-15","10:00","30","Scheduled"]'
}

@test "rescheduleAppointment keeps the appointment's length unless a duration is given" {
	run --separate-stderr parlae vapi tool invoke rescheduleAppointment --account happy --args '{"appointmentId":"A5","startTime":"2027-04-02T09:00:00"}'
	assert_success
	assert_equal "$(appt A5)" '["2027-04-02","09:00","60","Scheduled"]'
	run --separate-stderr parlae vapi tool invoke rescheduleAppointment --account happy --args '{"appointmentId":"A5","startTime":"2027-04-02T09:00:00","duration":"45"}'
	assert_equal "$(appt A5)" '["2027-04-02","09:00","45","Scheduled"]'
}

@test "rescheduleAppointment to a time already past fails and sends nothing" {
	run --separate-stderr parlae vapi tool invoke rescheduleAppointment --account happy --args '{"appointmentId":"A2","startTime":"2026-11-30T09:30:00"}'
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status]')" '[false,"failed"]'
	assert_equal "$(writes)" '[]'
}

# --- cancelAppointment ------------------------------------------------------------------------

@test "cancelAppointment from the recorded payload breaks the appointment and waits for it" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-cancel-appointment.json"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .appointmentId, .start]')" '[true,"cancelled","A2","2026-12-15T10:00"]'
	assert_equal "$(appt A2)" '["2026-12-15","10:00","30","Broken"]'
	assert_equal "$(fake_get state | jq -c '.writebacks[-1] | [.method, .target, .body.op, .body.path, .body.value, .body.practice_id]')" '["PATCH","A2","replace","/appointment_status","broken","1"]'
	# Cancelled, it is no longer the caller's to change, nor listed.
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-cancel-appointment.json"
	assert_equal "$(result_of "$output" | jq -c '[.success, .message]')" "[false,\"$REFUSAL\"]"
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-get-appointments.json"
	assert_equal "$(result_of "$output" | jq -c '.appointments')" '[]'
}

@test "cancelAppointment pending is pending, failed is failed, never cancelled" {
	fake writeback '{"pending_polls":-1}' >/dev/null
	PARLAE_WRITEBACK_WAIT=1 run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-cancel-appointment.json"
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .appointmentId, .start]')" '[false,"pending","A2","2026-12-15T10:00"]'
	fake writeback '{"pending_polls":0,"fail":true,"result":"Appointment is locked in the PMS."}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-cancel-appointment.json"
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .reason]')" '[false,"failed","Appointment is locked in the PMS."]'
	assert_equal "$(appt A2)" '["2026-12-15","10:00","30","Scheduled"]'
}

# --- the three: Sikka down, whose appointment, arguments, replay ------------------------------

@test "Sikka answering 5xx to the write is an error, exit 6, and nothing is reported done" {
	fake faults '{"method":"PATCH","path":"/v4/appointments/*","status":503,"count":-1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-cancel-appointment.json"
	assert_equal "$status" 6
	assert_equal "$(jq -c '.results[0] | [has("result"), (.error | test("503|unavailable|Sikka"; "i"))]' <<<"$output")" '[false,true]'
	fake faults/clear '{}' >/dev/null
	fake faults '{"method":"PUT","path":"/v4/appointments/A2","status":500,"count":-1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-reschedule-appointment.json"
	assert_equal "$status" 6
	assert_equal "$(appt A2)" '["2026-12-15","10:00","30","Scheduled"]'
	fake faults/clear '{}' >/dev/null
	fake faults '{"method":"GET","path":"/v4/appointments","status":502,"count":-1}' >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-get-appointments.json"
	assert_equal "$status" 6
}

@test "a caller who is not the patient changes nothing and is told staff will verify" {
	for tool in rescheduleAppointment cancelAppointment; do
		run --separate-stderr parlae vapi tool invoke "$tool" --account happy --caller +15559990000 --args '{"appointmentId":"A2","startTime":"2026-12-16T11:00:00"}'
		assert_success
		assert_equal "$(result_of "$output" | jq -c '[.success, .status, .verified, .message]')" "[false,\"failed\",false,\"$REFUSAL\"]"
		assert_equal "$(last_access)" unverified-caller
	done
	assert_equal "$(writes)" '[]'
	assert_equal "$(appt A2)" '["2026-12-15","10:00","30","Scheduled"]'
}

@test "an appointmentId of another patient, or of nobody, is refused the same way and nothing is sent" {
	mine=$(jq -c '.message.toolCallList[0].function.arguments.appointmentId = "A1"' "$FIX/tool-calls-cancel-appointment.json")
	run --separate-stderr parlae vapi tool invoke --payload - <<<"$mine"
	assert_success
	other=$(result_of "$output")
	assert_equal "$other" "{\"success\":false,\"message\":\"$REFUSAL\",\"status\":\"failed\",\"verified\":false}"
	assert_equal "$(last_access)" not-callers-appointment
	run --separate-stderr parlae vapi tool invoke rescheduleAppointment --account happy --caller +15551234567 --args '{"appointmentId":"A1","startTime":"2026-12-16T11:00:00"}'
	assert_equal "$(result_of "$output" | jq -c '[.success, .message]')" "[false,\"$REFUSAL\"]"
	run --separate-stderr parlae vapi tool invoke cancelAppointment --account happy --caller +15551234567 --args '{"appointmentId":"A404"}'
	assert_equal "$(result_of "$output")" "$other"
	# Word for word what a caller who is not the patient hears.
	run --separate-stderr parlae vapi tool invoke cancelAppointment --account happy --caller +15559990000 --args '{"appointmentId":"A2"}'
	assert_equal "$(result_of "$output")" "$other"
	assert_equal "$(writes)" '[]'
	assert_equal "$(appt A1)" '["2026-12-01","09:00","30","Scheduled"]'
}

@test "the operator may change any appointment; one that does not exist is success false" {
	run --separate-stderr parlae vapi tool invoke cancelAppointment --account happy --args '{"appointmentId":"A1"}'
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status]')" '[true,"cancelled"]'
	assert_equal "$(last_access)" operator
	run --separate-stderr parlae vapi tool invoke cancelAppointment --account happy --args '{"appointmentId":"A404"}'
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .appointmentId]')" '[false,"failed","A404"]'
	assert_equal "$(writes)" '["PATCH /v4/appointments/A1"]'
}

@test "the operator's search pages through Sikka's appointments to find the one to change" {
	fake seed "$(jq -nc '{office_id:"D36225",append:true,appointments:[range(600) | {appointment_sr_no:"B\(.)",patient_id:"P9",provider_id:"DR2",date:"2027-02-01",time:"08:00"}]}')" >/dev/null
	run --separate-stderr parlae vapi tool invoke cancelAppointment --account happy --args '{"appointmentId":"B550"}'
	assert_success
	assert_equal "$(result_of "$output" | jq -c '[.success, .status, .start]')" '[true,"cancelled","2027-02-01T08:00"]'
	assert_equal "$(appt B550 | jq -r '.[3]')" Broken
	assert_equal "$(fake_get counters | jq -c '[.requests["GET /v4/appointments"], .requests["PATCH /v4/appointments/B550"]]')" '[3,1]'
}

@test "reschedule and cancel: bad arguments are exit 65 and send nothing" {
	check() { # TOOL ARGS
		run --separate-stderr parlae vapi tool invoke "$1" --account happy --caller +15551234567 --args "$2"
		assert_equal "$status" 65
		assert_regex "$(jq -r '.results[0].error' <<<"$output")" "^$1: "
	}
	check rescheduleAppointment '{"startTime":"2026-12-16T11:00:00"}'
	check rescheduleAppointment '{"appointmentId":"A2"}'
	check rescheduleAppointment '{"appointmentId":"A2","startTime":"tomorrow at 11"}'
	check rescheduleAppointment '{"appointmentId":"A2","startTime":"2026-12-1T10:00:00"}'
	check rescheduleAppointment '{"appointmentId":"A2","startTime":"2026-12-16T11:00:00","duration":"30abc"}'
	check rescheduleAppointment '{"appointmentId":"A2","startTime":"2026-12-16T11:00:00","duration":1000}'
	check rescheduleAppointment '{"appointmentId":"A2/../A1","startTime":"2026-12-16T11:00:00"}'
	check cancelAppointment '{}'
	check cancelAppointment '{"appointmentId":{"id":"A2"}}'
	check cancelAppointment '{"appointmentId":"A 2"}'
	assert_equal "$(writes)" '[]'
}

@test "vapi replay runs the recorded payloads of the three tools" {
	# In this order: the list, then A2 moved, then A2 cancelled.
	mkdir "$BATS_TEST_TMPDIR/corpus"
	cp "$FIX/tool-calls-get-appointments.json" "$BATS_TEST_TMPDIR/corpus/1-get.json"
	cp "$FIX/tool-calls-reschedule-appointment.json" "$BATS_TEST_TMPDIR/corpus/2-reschedule.json"
	cp "$FIX/tool-calls-cancel-appointment.json" "$BATS_TEST_TMPDIR/corpus/3-cancel.json"
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/corpus" --json
	assert_success
	assert_equal "$(jq -c '[.total, .ok, .failed, .skipped]' <<<"$output")" '[3,3,0,0]'
	assert_equal "$(appt A2)" '["2026-12-16","11:00","30","Broken"]'
	assert_equal "$(sql "SELECT string_agg(t, ' ' ORDER BY seq) FROM (SELECT seq, metadata->>'tool' || ':' || (metadata->>'success') AS t FROM audit_events WHERE action = 'vapi.tool' ORDER BY seq DESC LIMIT 3) last")" \
		"getAppointments:true rescheduleAppointment:true cancelAppointment:true"
}
