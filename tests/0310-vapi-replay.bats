#!/usr/bin/env bats
# vapi replay: directories in name order, JSON Lines, locally or to a target, with a summary.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() { vapi_setup; }

@test "replaying the fixtures directory locally: counts by outcome, failures named, exit 9" {
	run --separate-stderr parlae vapi replay "$FIX" --json
	assert_equal "$status" 9
	# In name order the end-of-call-report comes before its call was logged, and one file is truncated.
	assert_equal "$(jq -c '[.total, .ok, .failed, .skipped]' <<<"$output")" '[15,13,2,0]'
	assert_regex "$stderr" "end-of-call-report.json: no call log for call"
	assert_regex "$stderr" "malformed-truncated.json: the payload is not valid JSON"
	assert_equal "$(sql "SELECT count(*) FROM vapi_call_logs WHERE call_id LIKE '9d2c1a8e-%'")" "13"
}

@test "a JSON Lines file is one message per line; an end-of-call-report after its call closes it" {
	{
		jq -c '.message.call.id = "jl-1"' "$FIX/tool-calls-check-availability.json"
		echo
		jq -c '.message.call.id = "jl-1" | .message.toolCallList[0].id = "x2"' "$FIX/tool-calls-check-availability.json"
		jq -c '.message.call.id = "jl-1"' "$FIX/end-of-call-report.json"
	} >"$BATS_TEST_TMPDIR/calls.jsonl"
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/calls.jsonl" --json
	assert_success
	assert_equal "$(jq -c '[.total, .ok, .failed]' <<<"$output")" '[3,3,0]'
	assert_equal "$(sql "SELECT tool_calls || '|' || status FROM vapi_call_logs WHERE call_id = 'jl-1'")" "2|ended"
}

@test "replaying to a target sends every message, many in flight, signed" {
	target_fake auth "{\"mode\":\"hmac\",\"secret\":\"$VAPI_WEBHOOK_SECRET\"}" >/dev/null
	curl -sS -X POST "$FAKE_TARGET/__fake/counters/reset" >/dev/null
	mkdir "$BATS_TEST_TMPDIR/many"
	for i in $(seq -w 1 40); do
		jq -c ".message.call.id = \"t-$i\"" "$FIX/tool-calls-check-availability.json" >"$BATS_TEST_TMPDIR/many/$i.json"
	done
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/many" --target "$FAKE_TARGET/webhook" --auth hmac --concurrency 8 --json
	assert_success
	assert_equal "$(jq -c '[.total, .ok, .failed]' <<<"$output")" '[40,40,0]'
	assert_equal "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq -c '[.requests, .authorized, .unauthorized]')" '[40,40,0]'
	# Nothing ran locally: the target answered.
	assert_equal "$(sql "SELECT count(*) FROM vapi_call_logs WHERE call_id LIKE 't-%'")" "0"
}

@test "a target that refuses the secret fails every message: exit 9 and the reason" {
	target_fake auth '{"mode":"secret","secret":"another"}' >/dev/null
	run --separate-stderr parlae vapi replay "$FIX/tool-calls-two-calls.json" --target "$FAKE_TARGET/"
	assert_equal "$status" 9
	assert_regex "$stderr" "tool-calls-two-calls.json: the target answered HTTP 401"
	assert_regex "$output" "^replayed 1 message in [0-9.]+ s: 0 ok, 1 failed, 0 skipped"
}

@test "replay needs something to replay and a readable path" {
	run --separate-stderr parlae vapi replay
	assert_equal "$status" 2
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/nope"
	assert_equal "$status" 2
	assert_regex "$stderr" "cannot read .*/nope"
}

@test "a URL that is not an absolute http(s) URL is a usage error before anything is sent: --target, --forward-to, --redirect-uri" {
	curl -sS -X POST "$FAKE_TARGET/__fake/counters/reset" >/dev/null
	hint="(give it as http://HOST[:PORT]/PATH or https://HOST/PATH)"
	# Before, replay sent every message and failed each with libcurl's words, exit 9.
	for url in notaurl "ftp://$(basename "$FAKE_TARGET")/x" "http://" "http://exa mple.com/" "${FAKE_TARGET#http://}/webhook" "https://user:pw@"; do
		run --separate-stderr parlae vapi replay "$FIX/tool-calls-two-calls.json" --target "$url"
		assert_equal "$status" 2
		assert_equal "$output" ""
		assert_equal "$stderr" "parlae: --target must be an http(s) URL $hint"
		run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-two-calls.json" --target "$url"
		assert_equal "$status" 2
		assert_equal "$stderr" "parlae: --target must be an http(s) URL $hint"
		# (a listener that started would serve until killed: timeout turns that into a failure)
		run --separate-stderr timeout 10 parlae vapi listen --port 0 --forward-to "$url"
		assert_equal "$status" 2
		assert_equal "$stderr" "parlae: --forward-to must be an http(s) URL $hint"
		run --separate-stderr parlae sikka oauth-url happy --redirect-uri "$url" --dry-run
		assert_equal "$status" 2
		assert_equal "$stderr" "parlae: --redirect-uri must be an http(s) URL $hint"
	done
	assert_equal "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq .requests)" 0
	# A good one still goes.
	target_fake auth "{\"mode\":\"secret\",\"secret\":\"$VAPI_WEBHOOK_SECRET\"}" >/dev/null
	run --separate-stderr parlae vapi replay "$FIX/tool-calls-two-calls.json" --target "$FAKE_TARGET/webhook" -q
	assert_success
	assert_equal "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq .requests)" 1
}

@test "a NUL byte in a JSON Lines file is bad input naming the file and line: exit 65, nothing replayed" {
	{
		for i in 1 2; do jq -c ".message.call.id = \"nul-$i\"" "$FIX/tool-calls-check-availability.json"; done
		jq -c '.message.call.id = "nul-3"' "$FIX/tool-calls-check-availability.json" | tr -d '\n'
		printf '\0\n'
		jq -c '.message.call.id = "nul-4"' "$FIX/tool-calls-check-availability.json"
	} >"$BATS_TEST_TMPDIR/nul.jsonl"
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/nul.jsonl"
	assert_equal "$status" 65
	assert_output ""
	assert_equal "$stderr" "parlae: $BATS_TEST_TMPDIR/nul.jsonl:3: a NUL byte, which JSON text never holds (a JSON Lines file holds one JSON document per line of UTF-8 text)"
	assert_equal "$(sql "SELECT count(*) FROM vapi_call_logs WHERE call_id LIKE 'nul-%'")" "0"
	# A file of one message too, and to a target: nothing is sent.
	curl -sS -X POST "$FAKE_TARGET/__fake/counters/reset" >/dev/null
	{ printf '{"message":\0'; cat "$FIX/tool-calls-check-availability.json"; } >"$BATS_TEST_TMPDIR/nul.json"
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/nul.json" --target "$FAKE_TARGET/" --json
	assert_equal "$status" 65
	assert_equal "$(jq -r .error.message <<<"$stderr")" "$BATS_TEST_TMPDIR/nul.json:1: a NUL byte, which JSON text never holds"
	assert_equal "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq -r .requests)" "0"
}
