# Shared by the vapi suites: one connected practice behind the fakes, its number and staff line.
# shellcheck shell=bash

vapi_setup_file() {
	suite_setup
	suite_migrate
	start_sikka "$BATS_FILE_TMPDIR/fakes"
	start_twilio "$BATS_FILE_TMPDIR/fakes"
	start_target "$BATS_FILE_TMPDIR/fakes"
	vapi_env
	parlae account add happy >/dev/null
	parlae pms setup happy --timezone America/New_York >/dev/null
	code=$(fake code '{"office_id":"D36225"}' | jq -r .code)
	state=$(parlae sikka oauth-url happy --json | jq -r .state)
	parlae sikka callback --code "$code" --state "$state" >/dev/null
	parlae vapi phone add happy --vapi-id pn-happy-dental --number +15550001000 --staff-forward +15550002000 --transfer >/dev/null
}

vapi_teardown_file() {
	stop_sikka "$BATS_FILE_TMPDIR/fakes"
	stop_twilio "$BATS_FILE_TMPDIR/fakes"
	stop_target "$BATS_FILE_TMPDIR/fakes"
}

vapi_env() {
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	twilio_env "$BATS_FILE_TMPDIR/fakes"
	target_env "$BATS_FILE_TMPDIR/fakes"
	export PARLAE_STATE_SECRET=sekrit-state-secret-for-tests-0123456789
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
	export PARLAE_SECRET_STORE=file:$BATS_FILE_TMPDIR/vault APP_BASE_URL=https://backend.example
	# Monday 2026-11-30, 10:00 in New York: the fixtures' December dates are ahead.
	export PARLAE_NOW=2026-11-30T15:00:00Z
}

# Fresh data in the fake Sikka for each test.
vapi_setup() {
	setup_home
	vapi_env
	# Tests reuse the fixtures' call ids: none starts with runs counted against the per-call limit.
	sql_owner "UPDATE vapi_call_logs SET tool_counts = '{}'" >/dev/null
	fake_posts "$FAKE_SIKKA/__fake/faults/clear" '{}' \
		"$FAKE_SIKKA/__fake/spu" '{"office_id":"D36225","online":true}' \
		"$FAKE_SIKKA/__fake/writeback" '{"pending_polls":1,"fail":false,"reject_overlap":true}' \
		"$FAKE_SIKKA/__fake/seed" '{"office_id":"D36225",
		"patients":[{"patient_id":"P1","firstname":"Ana","lastname":"Diaz","cell":"+15551234567","birthdate":"1990-04-01","email":"ana@example.com"}],
		"providers":[{"provider_id":"DR1","first_name":"Lee"}],
		"operatories":[{"operatory":"OP1"}],
		"appointments":[{"appointment_sr_no":"A1","patient_id":"P9","provider_id":"DR1","date":"2026-12-01","time":"09:00","length":"30"},
		                {"appointment_sr_no":"A2","patient_id":"P1","provider_id":"DR1","date":"2026-12-15","time":"10:00","length":"30"}]}' >/dev/null
}

# Every text of a fixture that is a patient's or a caller's: arguments (parsed when a string),
# the customer, the transcript and the summary, but dates of service and ids (0365, 0370).
phi_of() {
	jq -r '
		def args: if type == "string" then (try fromjson catch .) else . end;
		[(.message.toolCallList[]?.function.arguments | args),
		 (.message.toolCallList[]?.arguments | args), (.message.toolCallList[]?.parameters | args),
		 (.message.functionCall.parameters? | args),
		 .message.call.customer?, .message.customer?,
		 .message.artifact.transcript?, .message.analysis.summary?]
		| map(select(. != null))
		| [.[] | if type == "object" then (to_entries[]
			| select(.key | test("^(date|startTime|duration|appointmentType|urgency|.*Id|type|.*(Time|Date))$") | not)
			| .value) else . end]
		| .[] | select(type == "string" and length >= 4)' "$1" 2>/dev/null || true
}
