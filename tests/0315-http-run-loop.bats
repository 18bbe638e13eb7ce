#!/usr/bin/env bats
# pl_http_run, the loop under vapi replay --target and secrets rotate: many requests in flight
# on libcurl's event-driven interface (epoll, its socket and timer callbacks), each slot's
# handle reused from one request to the next without a reset. Driven two ways: vapi replay
# against the fake target (timeouts, 500s and answers side by side; connections the target
# closes), and tests/helpers/http_run_tool.c, built here against the libparlae.a of the parlae
# under test, for what replay never sends (other methods, a deadline, credentials): nothing of
# one request may stay on the handle for the next. No database: replay --target never opens one.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() {
	start_target "$BATS_FILE_TMPDIR/fakes"
	build_c_tool http_run_tool
}
teardown_file() { stop_target "$BATS_FILE_TMPDIR/fakes"; }
setup() {
	export HOME=$BATS_TEST_TMPDIR/home
	mkdir -p "$HOME"
	target_env "$BATS_FILE_TMPDIR/fakes"
	target_fake reset '{}' >/dev/null
	export TOOL=$BATS_FILE_TMPDIR/http_run_tool
}

# messages N FILE: N tool-call messages, one a line, each its own call id.
messages() {
	local i
	for i in $(seq -w 1 "$1"); do
		jq -c ".message.call.id = \"loop-$i\"" "$FIX/tool-calls-check-availability.json"
	done >"$2"
}

counters() { curl -sS "$FAKE_TARGET/__fake/counters" | jq -c '[.requests, .faults]'; }

@test "16 in flight where 3 time out, 5 get a 500 and 40 are answered: each counted once" {
	messages 48 "$BATS_TEST_TMPDIR/calls.jsonl"
	target_fake faults '[{"path":"/webhook","delay_ms":3000,"count":3},
		{"path":"/webhook","status":500,"count":5}]' >/dev/null
	PARLAE_HTTP_TIMEOUT=1 run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/calls.jsonl" \
		--target "$FAKE_TARGET/webhook" --concurrency 16 --json
	assert_equal "$status" 9
	assert_equal "$(jq -c '[.total, .ok, .failed, .skipped]' <<<"$output")" '[48,40,8,0]'
	assert_equal "$(grep -c '^parlae: .*/calls.jsonl:[0-9]*: the target timed out: ' <<<"$stderr")" 3
	assert_equal "$(grep -c '^parlae: .*/calls.jsonl:[0-9]*: the target answered HTTP 500$' <<<"$stderr")" 5
	assert_equal "$(wc -l <<<"$stderr")" 8
	# The three late answers come after the client gave up: wait for them, so that they
	# land in this test's counters and not the next one's records.
	for _ in $(seq 50); do
		[ "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq .authorized)" = 43 ] && break
		sleep 0.1
	done
	assert_equal "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq -c '[.requests, .faults, .authorized]')" '[48,8,43]'
}

@test "answers with Connection: close: each next request opens a new connection, all answered" {
	messages 30 "$BATS_TEST_TMPDIR/calls.jsonl"
	target_fake faults '{"path":"/webhook","status":200,"body":"{\"results\":[]}",
		"headers":{"Connection":"close"},"count":20}' >/dev/null
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/calls.jsonl" \
		--target "$FAKE_TARGET/webhook" --concurrency 4 --json
	assert_success
	assert_equal "$(jq -c '[.total, .ok, .failed]' <<<"$output")" '[30,30,0]'
	assert_equal "$(counters)" '[30,20]'
}

@test "a reused connection the target closes without an answer is retried on a new one, seven times over" {
	# One slot: requests 3, 6, ... 21 arrive on a reused connection, which the target closes
	# unanswered; libcurl sends each again on a fresh one (fault i fires at request 3i).
	messages 16 "$BATS_TEST_TMPDIR/calls.jsonl"
	target_fake faults "$(jq -nc '[range(1; 8) | {"path": "/webhook", "close": "close", "skip": (2 * .)}]')" >/dev/null
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/calls.jsonl" \
		--target "$FAKE_TARGET/webhook" --concurrency 1 --json
	assert_success
	assert_equal "$(jq -c '[.total, .ok, .failed]' <<<"$output")" '[16,16,0]'
	assert_equal "$(counters)" '[23,7]'
}

@test "a method, a body, headers and credentials of one request never go with the next" {
	target_fake auth '{"mode":"none"}' >/dev/null
	u=$FAKE_TARGET/webhook
	run --separate-stderr "$TOOL" 1 < <(printf '%s\n' \
		"PUT	$u	{\"a\":1}	0	X-One: 1|Content-Type: application/json	user	pass	-" \
		"DELETE	$u	-	0	-	-	-	-" \
		"GET	$u	-	0	-	-	-	-" \
		"POST	$u	{\"b\":2}	0	-	AKIDEXAMPLE	sekrit	aws:amz:us-east-1:secretsmanager" \
		"GET	$u	-	0	X-Two: 2	-	-	-" \
		"PATCH	$u	{\"c\":3}	0	X-Two: 2	-	-	-" \
		"POST	$u	-	0	-	-	-	-")
	assert_success
	assert_equal "$(cut -d' ' -f1,2 <<<"$output" | tr '\n' ,)" "1 0,2 0,3 0,4 0,5 0,6 0,7 0,"
	curl -sS "$FAKE_TARGET/__fake/requests" >"$BATS_TEST_TMPDIR/seen.json"
	assert_equal "$(jq -c '[.[] | .method]' "$BATS_TEST_TMPDIR/seen.json")" \
		'["PUT","DELETE","GET","POST","GET","PATCH","POST"]'
	assert_equal "$(jq -c '[.[] | .body]' "$BATS_TEST_TMPDIR/seen.json")" \
		'["{\"a\":1}","","","{\"b\":2}","","{\"c\":3}",""]'
	assert_equal "$(jq -c '[.[] | .headers["content-length"]]' "$BATS_TEST_TMPDIR/seen.json")" \
		'["7",null,null,"7",null,"7","0"]'
	assert_equal "$(jq -c '[.[] | [.headers["x-one"], .headers["x-two"]]]' "$BATS_TEST_TMPDIR/seen.json")" \
		'[["1",null],[null,null],[null,null],[null,null],[null,"2"],[null,"2"],[null,null]]'
	assert_equal "$(jq -c '[.[] | .headers.authorization // "-" | split(" ")[0]]' "$BATS_TEST_TMPDIR/seen.json")" \
		'["Basic","-","-","AWS4-HMAC-SHA256","-","-","-"]'
}

@test "a deadline set for one request does not shorten the next one's timeout" {
	# One slot, one connection: request 2 has a deadline of 1 s and is answered at once;
	# request 3, on the same connection, has none and is answered after 1.5 s. Request 4 runs out
	# of its deadline (0.5 s); request 5, on the new connection after it, has the full timeout.
	target_fake auth '{"mode":"none"}' >/dev/null
	target_fake faults '[{"path":"/webhook","delay_ms":1500,"skip":2,"count":1},
		{"path":"/webhook","delay_ms":1500,"skip":2,"count":2}]' >/dev/null
	u=$FAKE_TARGET/webhook
	m='{"message":{"type":"status-update"}}'
	PARLAE_HTTP_TIMEOUT=5 run --separate-stderr "$TOOL" 1 < <(printf '%s\n' \
		"POST	$u	$m	0	-	-	-	-" \
		"POST	$u	$m	1	-	-	-	-" \
		"POST	$u	$m	0	-	-	-	-" \
		"POST	$u	$m	0.5	-	-	-	-" \
		"POST	$u	$m	0	-	-	-	-")
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]:0:3}" | tr '\n' ,)" "1 0 200,2 0 200,3 0 200,"
	assert_regex "${lines[3]}" "^4 8 0 the server timed out: Operation timed out after [0-9]+ milliseconds"
	assert_equal "${lines[4]}" "5 0 200"
	assert_equal "${#lines[@]}" 5
	assert_equal "$(counters)" '[5,3]'
}
