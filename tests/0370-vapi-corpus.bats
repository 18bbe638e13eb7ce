#!/usr/bin/env bats
# The recorded corpus (lib/corpus.c: what vapi listen --record writes) and vapi replay
# --expect-dir. The corpus writer is driven by tests/helpers/corpus_tool.c, a small program
# built here against the libparlae.a of the parlae under test (the sanitizer's for a
# sanitizer build): each fixture is answered by parlae's own handler (vapi tool invoke
# --payload, as the listener answers) and the exchange written through pl_corpus_write.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi
SHARED_FIX=$BATS_TEST_DIRNAME/../../shared/fixtures/vapi

setup_file() {
	vapi_setup_file
	build_c_tool corpus_tool
}
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	export CT=$BATS_FILE_TMPDIR/corpus_tool
}

# Every fixture file (ours, and the shared ones when they are beside the repository).
fixtures() {
	ls "$FIX"/*.json
	[ ! -d "$SHARED_FIX" ] || ls "$SHARED_FIX"/*.json
}

# A fixture under a call id of its own (a tool runs a limited number of times per call).
copy_fix() { # FIXTURE DEST CALL_ID
	jq -c --arg id "$3" '.message.call.id = $id' "$1" >"$2"
}

# Record one exchange: the handler's answer to the fixture, through the corpus writer.
record() { # DIR FIXTURE [--no-redact]
	local resp=$BATS_TEST_TMPDIR/resp.json
	parlae vapi tool invoke --payload "$2" >"$resp" 2>/dev/null || true
	"$CT" write "$1" ${3:-} "$(jq -r '.message.call.id // "-"' "$2" 2>/dev/null || echo -)" "$2" "$resp"
}

@test "no PHI of any fixture, nor of the patient the handlers answered with, survives in a recorded corpus" {
	local dir=$BATS_TEST_TMPDIR/corpus raw=$BATS_TEST_TMPDIR/raw values=() f v n=0
	local phone='^[-+0-9 ().]{10,}$'
	# The seeded patient the answers carry, as the fake holds her.
	values=(Ana Diaz 5551234567 555-123-4567)
	while IFS= read -r f; do
		record "$dir" "$f"
		record "$raw" "$f" --no-redact
		while IFS= read -r v; do
			values+=("$v")
			# A phone also in its digits (a date of birth such as 1985-07-19 is not a phone).
			if [[ $v =~ $phone && ! $v =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then values+=("${v//[^0-9]/}"); fi
		done < <(phi_of "$f")
		n=$((n + 1))
	done < <(fixtures)
	[ "$n" -ge 8 ]
	assert_equal "$(find "$dir" -name '*.response.json' | wc -l)" "$n"
	# The answers did carry the patient: the raw corpus holds her, and every other value.
	grep -rqF '"firstName":"Ana"' "$raw"
	grep -rqF 'prefers morning' "$raw"
	grep -rqF 'Booked a cleaning for Dec 1 10:00.' "$raw"
	[ "${#values[@]}" -ge 16 ]
	for v in "${values[@]}"; do
		grep -rqaF -- "$v" "$raw" || fail "the raw corpus lacks '$v': the test proves nothing"
		! grep -rlaF -- "$v" "$dir" || fail "'$v' survived redaction"
	done
	# Nor the rest of her record, wherever it might have gone.
	for v in ana@example.com 1990-04-01 04/01/1990; do
		! grep -rlaiF -- "$v" "$dir" || fail "'$v' survived redaction"
	done
	# What replays need is kept: ids, tool names, dates of service, the practice's number id.
	grep -rqF '"name":"bookAppointment"' "$dir"
	grep -rqF '"startTime":"2026-12-01T10:00:00"' "$dir"
	grep -rqF '"phoneNumberId":"pn-happy-dental"' "$dir"
	grep -rqF '"id":"call_book_01"' "$dir"
	grep -rqE '"firstName\\*":\\*"Name-[0-9a-f]{6}\\*"' "$dir"
	# The truncated fixture is not JSON: only its size is written.
	grep -rqF '{"redacted":"not JSON","bytes":' "$dir"
}

@test "the same value gets the same pseudonym within a corpus, another in another corpus" {
	local a=$BATS_TEST_TMPDIR/a b=$BATS_TEST_TMPDIR/b msg1 msg2
	msg1='{"message":{"type":"tool-calls","call":{"id":"c1","customer":{"number":"+15551234567","name":"Ana Diaz"}},
		"toolCallList":[{"id":"t1","type":"function","function":{"name":"getPatientInfo",
		"arguments":{"phone":"555-123-4567","firstName":"Ana","lastName":"Diaz","dateOfBirth":"1990-04-01","email":"Ana@Example.com","query":"lives at 12 Elm St"}}}]}}'
	msg2='{"message":{"type":"tool-calls","call":{"id":"c2","customer":{"number":"(555) 123-4567"}},
		"toolCallList":[{"id":"t2","type":"function","function":{"name":"bookAppointment",
		"arguments":"{\"firstName\":\" ana \",\"email\":\"ana@example.com\",\"dob\":\"1990-04-01\",\"startTime\":\"2026-12-01T10:00:00\"}"}}]}}'
	run --separate-stderr "$CT" redact "$a" <<<"$msg1"
	assert_success
	r1=$output
	run --separate-stderr "$CT" redact "$a" <<<"$msg2"
	assert_success
	r2=$output
	args2=$(jq -r '.message.toolCallList[0].function.arguments' <<<"$r2")
	phone=$(jq -r .message.call.customer.number <<<"$r1")
	[[ $phone =~ ^\+1555[0-9]{7}$ ]]
	assert_equal "$(jq -r '.message.toolCallList[0].function.arguments.phone' <<<"$r1")" "$phone"
	assert_equal "$(jq -r .message.call.customer.number <<<"$r2")" "$phone"
	first=$(jq -r '.message.toolCallList[0].function.arguments.firstName' <<<"$r1")
	[[ $first =~ ^Name-[0-9a-f]{6}$ ]]
	assert_equal "$(jq -r .firstName <<<"$args2")" "$first"
	[[ $(jq -r .message.call.customer.name <<<"$r1") =~ ^Name-[0-9a-f]{6}$ ]]
	email=$(jq -r '.message.toolCallList[0].function.arguments.email' <<<"$r1")
	[[ $email =~ ^[0-9a-f]{12}@example\.invalid$ ]]
	assert_equal "$(jq -r .email <<<"$args2")" "$email"
	dob=$(jq -r '.message.toolCallList[0].function.arguments.dateOfBirth' <<<"$r1")
	[[ $dob =~ ^(19[2-9][0-9]|200[0-5])-[0-9]{2}-[0-9]{2}$ ]]
	assert_equal "$(date -d "$dob" +%F)" "$dob"
	assert_equal "$(jq -r .dob <<<"$args2")" "$dob"
	[[ $(jq -r '.message.toolCallList[0].function.arguments.query' <<<"$r1") =~ ^text-[0-9a-f]{12}$ ]]
	# Kept: ids, the tool's name, the appointment's time.
	assert_equal "$(jq -c '[.message.call.id, .message.toolCallList[0].id, .message.toolCallList[0].function.name]' <<<"$r1")" '["c1","t1","getPatientInfo"]'
	assert_equal "$(jq -r .startTime <<<"$args2")" "2026-12-01T10:00:00"
	# Names, emails and texts already redacted stay as they are.
	run --separate-stderr "$CT" redact "$a" <<<"$r1"
	assert_success
	assert_equal "$(jq -c '.message.toolCallList[0].function.arguments | [.firstName, .email, .query]' <<<"$output")" \
		"$(jq -c '.message.toolCallList[0].function.arguments | [.firstName, .email, .query]' <<<"$r1")"
	# Another corpus, another key: other pseudonyms.
	run --separate-stderr "$CT" redact "$b" <<<"$msg1"
	assert_success
	[ "$(jq -r .message.call.customer.number <<<"$output")" != "$phone" ]
	[ "$(jq -r '.message.toolCallList[0].function.arguments.firstName' <<<"$output")" != "$first" ]
	# A body that is not JSON is refused without quoting it.
	run --separate-stderr "$CT" redact "$a" <<<'{"firstName":"Ana'
	assert_equal "$status" 65
	[[ $stderr != *Ana* ]]
}

@test "a corpus is 0700 with a 0600 key and 0600 exchanges named by time, call id and number" {
	local dir=$BATS_TEST_TMPDIR/modes
	umask 022
	record "$dir" "$FIX/tool-calls-check-availability.json"
	echo '{}' >"$BATS_TEST_TMPDIR/empty.json"
	"$CT" write "$dir" - "$FIX/end-of-call-report.json" "$BATS_TEST_TMPDIR/empty.json"
	"$CT" write "$dir" '../a/b c' "$FIX/end-of-call-report.json" "$BATS_TEST_TMPDIR/empty.json"
	assert_equal "$(stat -c %a "$dir")" "700"
	assert_equal "$(stat -c '%a %s' "$dir/.key")" "600 32"
	run ls "$dir"
	assert_equal "${#lines[@]}" 6
	for f in "${lines[@]}"; do
		[[ $f =~ ^[0-9]{8}T[0-9]{6}Z-(9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e01|nocall|\.\._a_b_c)-[0-9]{6}(\.response)?\.json$ ]] || fail "unexpected name $f"
		assert_equal "$(stat -c %a "$dir/$f")" "600"
	done
	# Only letters, digits, '.', '_' and '-' of a call id go into a name; none is nocall.
	assert_equal "$(ls "$dir" | grep -c -- 'Z-\.\._a_b_c-[0-9]*\.json$')" "1"
	assert_equal "$(ls "$dir" | grep -c -- 'Z-nocall-[0-9]*\.json$')" "1"
	# No temporary file is left behind.
	assert_equal "$(find "$dir" -name '*.tmp.*' | wc -l)" "0"
	# A directory others may read is refused, and so is recording raw into a redacted corpus.
	mkdir -m 755 "$BATS_TEST_TMPDIR/open"
	run --separate-stderr "$CT" write "$BATS_TEST_TMPDIR/open" - "$FIX/end-of-call-report.json" "$BATS_TEST_TMPDIR/empty.json"
	assert_equal "$status" 3
	assert_regex "$stderr" "has mode 0755: others may read what is recorded \(chmod 700 "
	run --separate-stderr "$CT" write "$dir" --no-redact - "$FIX/end-of-call-report.json" "$BATS_TEST_TMPDIR/empty.json"
	assert_equal "$status" 2
	assert_regex "$stderr" "holds a redacted corpus"
	chmod 644 "$dir/.key"
	run --separate-stderr "$CT" write "$dir" - "$FIX/end-of-call-report.json" "$BATS_TEST_TMPDIR/empty.json"
	assert_equal "$status" 3
	assert_regex "$stderr" "the corpus key .*/.key has mode 0644"
}

@test "eight threads writing to one corpus at once lose no exchange and leave no temporary file" {
	local dir=$BATS_TEST_TMPDIR/busy
	echo '{"results":[]}' >"$BATS_TEST_TMPDIR/resp.json"
	run --separate-stderr "$CT" threads "$dir" 8 50 "$FIX/tool-calls-two-calls.json" "$BATS_TEST_TMPDIR/resp.json"
	assert_success
	assert_equal "$(find "$dir" -name '*Z-call-threads-*.json' ! -name '*.response.json' | wc -l)" "400"
	assert_equal "$(find "$dir" -name '*Z-call-threads-*.response.json' | wc -l)" "400"
	assert_equal "$(find "$dir" -type f ! -name '*.json' ! -name .key | wc -l)" "0"
	# Each request has its response, and every file is one whole JSON document.
	for f in "$dir"/*.json; do
		case $f in *.response.json) ;; *) [ -f "${f%.json}.response.json" ] || fail "no response for $f" ;; esac
	done
	assert_equal "$(cat "$dir"/*.json | jq -c . | wc -l)" "800"
}

@test "a recorded corpus replays green against itself, then red with exit 1 naming the field when the fake's data change" {
	local dir=$BATS_TEST_TMPDIR/day
	copy_fix "$FIX/tool-calls-check-availability.json" "$BATS_TEST_TMPDIR/avail.json" corpus-gate
	record "$dir" "$BATS_TEST_TMPDIR/avail.json"
	run --separate-stderr parlae vapi replay "$dir" --expect-dir "$dir"
	assert_success
	assert_line --index 1 "expected responses: 1 same, 0 differ"
	# A new appointment at 10:00 on December 1st: the slots change.
	fake seed '{"office_id":"D36225","append":true,"appointments":[{"appointment_sr_no":"A9","patient_id":"P9","provider_id":"DR1","date":"2026-12-01","time":"10:00","length":"60"}]}' >/dev/null
	run --separate-stderr parlae vapi replay "$dir" --expect-dir "$dir" --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '[.ok, .failed, .expected.same, .expected.differ]' <<<"$output")" '[1,0,0,1]'
	name=$(basename "$(ls "$dir"/*Z-corpus-gate-000001.json)" .json)
	# The spoken message (redacted: it is text) and the slots, each named.
	assert_regex "$stderr" "^parlae: $name differs from its expected response:"$'\n'"$name: \.results\[0\]\.result\.message"$'\n'"- \"text-[0-9a-f]{12}\""$'\n'"\+ \"text-[0-9a-f]{12}\""$'\n'"$name: \.results\[0\]\.result\.slots"$'\n'"- \[.*\{\"start\":\"10:00\".*"$'\n'"\+ \[.*"
	assert_equal "${#stderr_lines[@]}" 7
	# The ignore file skips them (and a comment, a blank line): green again.
	printf '# slots move with the calendar\n\n/results/*/result/slots\n/results/0/result/message\n' >"$dir/ignore"
	run --separate-stderr parlae vapi replay "$dir" --expect-dir "$dir"
	assert_success
	assert_line --index 1 "expected responses: 1 same, 0 differ"
	# The ignore file is read strictly.
	printf '/results/*/result/slots\nresults/0\n' >"$dir/ignore"
	run --separate-stderr parlae vapi replay "$dir" --expect-dir "$dir"
	assert_equal "$status" 65
	assert_equal "$stderr" "parlae: $dir/ignore:2: not a JSON pointer (or more than 256) (one pointer a line, like /results/*/result/appointmentId)"
}

@test "--update-expected writes each response 0600; a plain directory keeps them raw, a redacted corpus redacted" {
	local msgs=$BATS_TEST_TMPDIR/msgs exp=$BATS_TEST_TMPDIR/exp red=$BATS_TEST_TMPDIR/red
	mkdir "$msgs"
	copy_fix "$FIX/tool-calls-two-calls.json" "$msgs/tool-calls-two-calls.json" corpus-upd-1
	copy_fix "$FIX/function-call-legacy.json" "$msgs/function-call-legacy.json" corpus-upd-2
	echo "not a message" >"$msgs/README"
	run --separate-stderr parlae vapi replay "$msgs" --expect-dir "$exp" --update-expected
	assert_success
	assert_line --index 1 "wrote 2 expected responses"
	assert_equal "$(ls "$exp" | tr '\n' ' ')" "function-call-legacy.response.json tool-calls-two-calls.response.json "
	assert_equal "$(stat -c %a "$exp/tool-calls-two-calls.response.json")" "600"
	assert_equal "$(jq -r '.results[0].result | fromjson | .patient.firstName' "$exp/tool-calls-two-calls.response.json")" "Ana"
	run --separate-stderr parlae vapi replay "$msgs" --expect-dir "$exp"
	assert_success
	assert_line --index 1 "expected responses: 2 same, 0 differ"
	# The patient's record changes: the difference names the field, never her name.
	fake seed '{"office_id":"D36225",
		"patients":[{"patient_id":"P1","firstname":"Ana","lastname":"Diazz","cell":"+15551234567","birthdate":"1990-04-01"}]}' >/dev/null
	run --separate-stderr parlae vapi replay "$msgs" --expect-dir "$exp"
	assert_equal "$status" 1
	assert_line --index 1 "expected responses: 1 same, 1 differ"
	assert_regex "$stderr" "tool-calls-two-calls: \.results\[0\]\.result\.patient\.lastName"$'\n'"- \"Name-[0-9a-f]{6}\""$'\n'"\+ \"Name-[0-9a-f]{6}\""
	[[ $stderr != *Diaz* ]]
	# Into a redacted corpus the responses are written redacted (the same messages under
	# other call ids).
	for f in "$msgs"/*.json; do copy_fix "$f" "$f.new" "corpus-red-$(basename "$f")" && mv "$f.new" "$f"; done
	"$CT" redact "$red" <<<'{}' >/dev/null
	run --separate-stderr parlae vapi replay "$msgs" --expect-dir "$red" --update-expected
	assert_success
	[[ $(jq -r '.results[0].result | fromjson | .patient.lastName' "$red/tool-calls-two-calls.response.json") =~ ^Name-[0-9a-f]{6}$ ]]
	! grep -rqaF Diaz "$red"
	run --separate-stderr parlae vapi replay "$msgs" --expect-dir "$red"
	assert_success
	# A missing expectation is a difference that says how to make it.
	rm "$red/function-call-legacy.response.json"
	run --separate-stderr parlae vapi replay "$msgs" --expect-dir "$red"
	assert_equal "$status" 1
	assert_regex "$stderr" "function-call-legacy: no $red/function-call-legacy.response.json \(--update-expected writes it\)"
}

@test "--expect-dir with --target compares the backend's answers" {
	local msgs=$BATS_TEST_TMPDIR/msgs exp=$BATS_TEST_TMPDIR/exp
	target_fake auth "{\"mode\":\"secret\",\"secret\":\"$VAPI_WEBHOOK_SECRET\"}" >/dev/null
	mkdir "$msgs"
	cp "$FIX/tool-calls-check-availability.json" "$FIX/tool-calls-two-calls.json" "$msgs/"
	run --separate-stderr parlae vapi replay "$msgs" --target "$FAKE_TARGET/vapi/webhook" --expect-dir "$exp" --update-expected
	assert_success
	run --separate-stderr parlae vapi replay "$msgs" --target "$FAKE_TARGET/vapi/webhook" --expect-dir "$exp" --concurrency 2
	assert_success
	assert_line --index 1 "expected responses: 2 same, 0 differ"
	target_fake faults '{"method":"POST","path":"/vapi/webhook","count":1,"body":"{\"results\":[{\"toolCallId\":\"call_avail_01\",\"name\":\"checkAvailability\",\"result\":\"{\\\"success\\\":false}\"}]}"}' >/dev/null
	run --separate-stderr parlae vapi replay "$msgs" --target "$FAKE_TARGET/vapi/webhook" --expect-dir "$exp" --concurrency 1
	assert_equal "$status" 1
	assert_regex "$stderr" "tool-calls-check-availability: \.results\[0\]\.result\.success"$'\n'"- true"$'\n'"\+ false"
}

@test "--update-expected goes with --expect-dir" {
	run --separate-stderr parlae vapi replay "$FIX/tool-calls-two-calls.json" --update-expected
	assert_equal "$status" 2
	assert_regex "$stderr" "--update-expected goes with --expect-dir"
	run --separate-stderr parlae vapi replay "$FIX/tool-calls-two-calls.json" --expect-dir "$BATS_TEST_TMPDIR/none"
	assert_equal "$status" 2
	assert_regex "$stderr" "--expect-dir .*/none is not a directory"
}
