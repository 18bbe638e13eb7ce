#!/usr/bin/env bats
# vapi listen: Vapi's server URL served from the terminal. Each auth mode right, wrong and
# missing (401 and never run), HMAC replays and stale timestamps, 413, /healthz and /metrics,
# a tool call end to end (the same reply as vapi tool invoke), --forward-to, --record then
# replay, and SIGTERM with a request in flight. Every listener is started with --port 0 in the
# background and stopped by the test (or teardown).
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi
load helpers/listen

FIX=$BATS_TEST_DIRNAME/fixtures/vapi
PAT=$FIX/tool-calls-get-patient-info-string-args.json
AVAIL=$FIX/tool-calls-check-availability.json
# What of the fixtures' patient must never show outside a reply: name, numbers, date of birth.
PHI=(Ana Diaz +15551234567 5551234567 555-123-4567 1990-04-01 ana@example.com)

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	LPID=
}
teardown() { listen_cleanup; }

# The HMAC headers of a body signed at time TS: hmac_sig FILE TS.
# start_listener ARGS...: vapi listen --port 0 ARGS (tests/helpers/listen.bash).
start_listener() { listen_start vapi listen --port 0 "$@"; }

# Requests the fake Sikka received, in all.
sikka_requests() { fake_get counters | jq '[.requests[]] | add // 0'; }

metric() { curl -sS "$URL/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

@test "without VAPI_WEBHOOK_SECRET it does not start: exit 3 naming it" {
	unset VAPI_WEBHOOK_SECRET
	run --separate-stderr parlae vapi listen --port 0
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_regex "$stderr" "^parlae: VAPI_WEBHOOK_SECRET is not set"
}

@test "usage errors: a bad --auth, --port or --threads, --no-redact without --record" {
	run --separate-stderr parlae vapi listen --auth basic
	assert_equal "$status" 2
	assert_regex "$stderr" "--auth is secret, hmac, bearer or any, not 'basic'"
	run --separate-stderr parlae vapi listen --port 65536
	assert_equal "$status" 2
	run --separate-stderr parlae vapi listen --threads 0
	assert_equal "$status" 2
	run --separate-stderr parlae vapi listen --no-redact
	assert_equal "$status" 2
	assert_regex "$stderr" "--redact and --no-redact go with --record DIR"
	run --separate-stderr parlae vapi listen --forward-to ftp://x
	assert_equal "$status" 2
}

@test "--port 0 picks a free port and says it; /healthz is 200; SIGTERM when idle exits 0" {
	start_listener
	assert_regex "$(head -n1 "$LERR")" "^listening on http://127\.0\.0\.1:[0-9]+ \(parlae's handlers\)$"
	[ "$LPORT" -gt 0 ]
	run curl -sS -w ' %{http_code}' "$URL/healthz"
	assert_output '{"ok":true,"database":true,"store":true} 200'
	run curl -sS -w ' %{http_code}' "$URL/nothing"
	assert_output --regexp ' 404$'
	run curl -sS -X PUT -w ' %{http_code}' "$URL/healthz"
	assert_output --regexp ' 405$'
	stop_listener
	assert_equal "$LSTATUS" 0
	# A port in use: exit 3, the port named.
	start_listener
	run --separate-stderr parlae vapi listen --port "$LPORT"
	assert_equal "$status" 3
	assert_regex "$stderr" "cannot listen on 127.0.0.1 port $LPORT: Address already in use"
}

@test "--json: the first line says where it listens, then one JSON line per exchange" {
	start_listener --json
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	post "$AVAIL"
	assert_equal "$code" 401
	stop_listener
	assert_equal "$LSTATUS" 0
	assert_equal "$(head -n1 "$LOUT" | jq -c '[.listening, .port]')" "[\"$URL\",$LPORT]"
	assert_equal "$(sed -n 2p "$LOUT" | jq -c '[.method, .path, .callId, .tools, .outcome, .status, (.latencyMs > 0)]')" \
		'["POST","/api/vapi","9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e01","checkAvailability","ok",200,true]'
	assert_equal "$(sed -n 3p "$LOUT" | jq -c '[.outcome, .reason, .status, .callId]')" '["refused","no credentials",401,null]'
	assert_equal "$(wc -l <"$LOUT")" 3
	assert_equal "$(cat "$LERR")" ""
}

@test "--auth secret: the right X-Vapi-Secret runs the tool; a wrong or missing one is 401 and nothing runs" {
	jq -c '.message.call.id = "c-0360-secret"' "$AVAIL" >"$BATS_TEST_TMPDIR/avail.json"
	AVAIL=$BATS_TEST_TMPDIR/avail.json
	start_listener --auth secret
	before=$(sikka_requests)
	post "$AVAIL" -H 'X-Vapi-Secret: not-the-secret'
	assert_equal "$code $body" '401 {"error":"unauthorized"}'
	post "$AVAIL"
	assert_equal "$code" 401
	post "$AVAIL" -H "Authorization: Bearer $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 401
	assert_equal "$(sikka_requests)" "$before"
	assert_equal "$(sql "SELECT count(*) FROM vapi_call_logs WHERE call_id = 'c-0360-secret'")" 0
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	assert_equal "$(jq -r '.results[0].result' <<<"$body" | jq -c '[.success, .date]')" '[true,"2026-12-01"]'
	[ "$(sikka_requests)" -gt "$before" ]
	stop_listener
	assert_regex "$(sed -n 2p "$LERR")" "^[0-9T:.-]+Z POST /api/vapi call - - refused \(wrong x-vapi-secret\) 401 [0-9.]+ ms$"
	assert_regex "$(sed -n 3p "$LERR")" "refused \(no x-vapi-secret\) 401"
	assert_regex "$(sed -n 5p "$LERR")" "POST /api/vapi call c-0360-secret checkAvailability ok 200 [0-9.]+ ms$"
	refute_secrets_in "$(cat "$LERR" "$LOUT")" "$VAPI_WEBHOOK_SECRET" not-the-secret
}

@test "--auth bearer: the right token runs; a wrong, missing or non-Bearer one is 401 and nothing runs" {
	start_listener --auth bearer
	before=$(sikka_requests)
	post "$AVAIL" -H 'Authorization: Bearer wrong'
	assert_equal "$code" 401
	post "$AVAIL" -H "Authorization: Basic $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 401
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 401
	assert_equal "$(sikka_requests)" "$before"
	post "$AVAIL" -H "Authorization: Bearer $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	stop_listener
	assert_equal "$LSTATUS" 0
}

@test "--auth hmac: a fresh signature runs once; a bad, stale or replayed one is 401 and nothing runs" {
	start_listener --auth hmac
	before=$(sikka_requests)
	now=$(date +%s)
	post "$AVAIL" -H "x-timestamp: $now" -H "x-signature: $(printf '%064d' 0)"
	assert_equal "$code" 401
	stale=$((now - 301))
	post "$AVAIL" -H "x-timestamp: $stale" -H "x-signature: $(hmac_sig "$AVAIL" "$stale")"
	assert_equal "$code" 401
	future=$((now + 400))
	post "$AVAIL" -H "x-timestamp: $future" -H "x-signature: $(hmac_sig "$AVAIL" "$future")"
	assert_equal "$code" 401
	post "$AVAIL" -H "x-signature: $(hmac_sig "$AVAIL" "$now")"
	assert_equal "$code" 401
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 401
	# Signed over other bytes than those sent.
	post "$PAT" -H "x-timestamp: $now" -H "x-signature: $(hmac_sig "$AVAIL" "$now")"
	assert_equal "$code" 401
	assert_equal "$(sikka_requests)" "$before"
	sig=$(hmac_sig "$AVAIL" "$now")
	post "$AVAIL" -H "x-timestamp: $now" -H "x-signature: $sig"
	assert_equal "$code" 200
	after=$(sikka_requests)
	[ "$after" -gt "$before" ]
	# The same request again within the window: refused, not run.
	post "$AVAIL" -H "x-timestamp: $now" -H "x-signature: $sig"
	assert_equal "$code" 401
	assert_equal "$(sikka_requests)" "$after"
	assert_equal "$(sql "SELECT count(*) FROM vapi_webhook_signatures WHERE signature = '$sig'")" 1
	stop_listener
	assert_regex "$(cat "$LERR")" "refused \(bad signature\) 401"
	assert_regex "$(cat "$LERR")" "refused \(x-timestamp outside 300 s\) 401"
	assert_regex "$(cat "$LERR")" "refused \(replayed signature\) 401"
}

@test "an HMAC signature accepted by one listener is refused by another (shared in PostgreSQL)" {
	start_listener --auth hmac
	first=$URL first_pid=$LPID
	now=$(date +%s)
	sig=$(hmac_sig "$AVAIL" "$now")
	post "$AVAIL" -H "x-timestamp: $now" -H "x-signature: $sig"
	assert_equal "$code" 200
	start_listener --auth hmac
	[ "$URL" != "$first" ]
	post "$AVAIL" -H "x-timestamp: $now" -H "x-signature: $sig"
	assert_equal "$code" 401
	stop_listener
	LPID=$first_pid
	stop_listener
	assert_equal "$LSTATUS" 0
}

@test "--auth any (the default): each of the three is accepted; none, or a wrong one, is 401" {
	start_listener
	before=$(sikka_requests)
	post "$AVAIL"
	assert_equal "$code" 401
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET" -H 'Authorization: Bearer wrong'
	assert_equal "$code" 401
	post "$AVAIL" -H "x-timestamp: 1" -H "x-signature: $(hmac_sig "$AVAIL" 1)"
	assert_equal "$code" 401
	assert_equal "$(sikka_requests)" "$before"
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	post "$AVAIL" -H "Authorization: Bearer $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	now=$(date +%s)
	post "$AVAIL" -H "x-timestamp: $now" -H "x-signature: $(hmac_sig "$AVAIL" "$now")"
	assert_equal "$code" 200
	stop_listener
	assert_equal "$(grep -c ' ok 200 ' "$LERR")" 3
	assert_equal "$(grep -c ' refused (' "$LERR")" 3
}

@test "a body over 1 MiB is 413 before it is read, and never runs" {
	start_listener
	head -c 1100000 /dev/zero | tr '\0' ' ' >"$BATS_TEST_TMPDIR/big.json"
	before=$(sikka_requests)
	post "$BATS_TEST_TMPDIR/big.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code $body" '413 {"error":"the body is over 1 MiB"}'
	# Chunked, with no Content-Length: the same once 1 MiB has gone by.
	post "$BATS_TEST_TMPDIR/big.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET" -H 'Transfer-Encoding: chunked'
	assert_equal "$code" 413
	assert_equal "$(sikka_requests)" "$before"
	assert_equal "$(metric 'parlae_listen_requests_total{tool="none",outcome="too_large"}')" 2
	stop_listener
	assert_equal "$LSTATUS" 0
}

@test "/healthz is 503 when the database is down, and 200 again once the listener reconnects" {
	PARLAE_DATABASE_URL=$(closed_db_url) start_listener
	run curl -sS -w ' %{http_code}' "$URL/healthz"
	assert_output '{"ok":false,"database":false,"store":true} 503'
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 503
	stop_listener
	assert_equal "$LSTATUS" 0
	# The database drops the listener's connections (a restart): the next request reconnects.
	start_listener
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	# The listener's own connections (named for its command): at least one is cut.
	killed=$(sql_admin "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'parlae_app' AND application_name = 'parlae vapi listen' AND datname = current_database()")
	[ "$killed" -ge 1 ]
	run curl -sS -w ' %{http_code}' "$URL/healthz"
	assert_output '{"ok":true,"database":true,"store":true} 200'
	sql_admin "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'parlae_app' AND application_name = 'parlae vapi listen' AND datname = current_database()" >/dev/null
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	stop_listener
}

@test "/healthz is 503 when the secret store does not open" {
	# Another master key than the one the practice's keys were stored under.
	PARLAE_MASTER_KEY=0000000000000000000000000000000000000000000000000000000000000001 start_listener
	run curl -sS -w ' %{http_code}' "$URL/healthz"
	assert_output '{"ok":false,"database":true,"store":false} 503'
	stop_listener
}

@test "/metrics counts requests by tool and outcome, the latency histogram, upstream errors, in flight" {
	start_listener
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	post "$FIX/tool-calls-two-calls.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	post "$AVAIL"
	post "$FIX/malformed-truncated.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 400
	fake faults '{"path":"/v4/patients","status":503,"count":-1}' >/dev/null
	post "$PAT" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	run curl -sS -D "$BATS_TEST_TMPDIR/headers" "$URL/metrics"
	assert_success
	grep -qi '^Content-Type: text/plain; version=0.0.4' "$BATS_TEST_TMPDIR/headers"
	m=$output
	# check_availability in the second message counts as checkAvailability.
	assert_equal "$(awk '$1 == "parlae_listen_requests_total{tool=\"checkAvailability\",outcome=\"ok\"}" { print $2 }' <<<"$m")" 2
	assert_equal "$(awk '$1 == "parlae_listen_requests_total{tool=\"getPatientInfo\",outcome=\"ok\"}" { print $2 }' <<<"$m")" 1
	assert_equal "$(awk '$1 == "parlae_listen_requests_total{tool=\"none\",outcome=\"refused\"}" { print $2 }' <<<"$m")" 1
	assert_equal "$(awk '$1 == "parlae_listen_requests_total{tool=\"none\",outcome=\"bad_input\"}" { print $2 }' <<<"$m")" 1
	assert_equal "$(awk '$1 == "parlae_listen_requests_total{tool=\"getPatientInfo\",outcome=\"error\"}" { print $2 }' <<<"$m")" 1
	assert_equal "$(awk '$1 == "parlae_listen_upstream_errors_total" { print $2 }' <<<"$m")" 1
	assert_equal "$(awk '$1 == "parlae_listen_request_duration_seconds_count" { print $2 }' <<<"$m")" 5
	assert_equal "$(awk '$1 == "parlae_listen_request_duration_seconds_bucket{le=\"+Inf\"}" { print $2 }' <<<"$m")" 5
	assert_equal "$(awk '$1 == "parlae_listen_in_flight" { print $2 }' <<<"$m")" 0
	grep -q '^# TYPE parlae_listen_request_duration_seconds histogram$' <<<"$m"
	stop_listener
}

@test "a tool call end to end: the same reply bytes as vapi tool invoke --payload, no PHI in the log" {
	run --separate-stderr parlae vapi tool invoke --payload "$PAT"
	assert_success
	want=$output
	calls=$(sql "SELECT tool_calls FROM vapi_call_logs WHERE call_id = '9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e02'")
	start_listener
	post "$PAT" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	assert_equal "$body" "$want"
	assert_equal "$(jq -r '.results[0].result' <<<"$body" | jq -c '[.success, .verified, .patient.id]')" '[true,true,"P1"]'
	# The call is logged and audited as invoke does it.
	assert_equal "$(sql "SELECT tool_calls FROM vapi_call_logs WHERE call_id = '9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e02'")" $((calls + 1))
	stop_listener
	assert_equal "$LSTATUS" 0
	log=$(cat "$LERR" "$LOUT")
	assert_regex "$log" "call 9d2c1a8e-1f1e-4c1a-9c4e-0a1b2c3d4e02 getPatientInfo ok 200"
	refute_secrets_in "$log" "${PHI[@]}" "$VAPI_WEBHOOK_SECRET"
}

@test "a tool call's hostile call id and tool name reach the log as safe characters only" {
	jq -c '.message.call.id = "id\u001b[31m;rm -rf\n" | .message.toolCallList[0].function.name = "x\u001b]0;pwn\u0007"' "$AVAIL" >"$BATS_TEST_TMPDIR/hostile.json"
	start_listener
	post "$BATS_TEST_TMPDIR/hostile.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	stop_listener
	assert_regex "$(sed -n 2p "$LERR")" " call id__31m_rm_-rf_ unknown error 200 "
	[[ $(cat "$LERR") != *$'\e'* ]]
}

@test "--forward-to relays the body as received, signed again, and the backend's answer" {
	target_fake auth "{\"mode\":\"hmac\",\"secret\":\"$VAPI_WEBHOOK_SECRET\"}" >/dev/null
	target_fake requests/clear '{}' >/dev/null
	start_listener --forward-to "$FAKE_TARGET/webhook"
	assert_regex "$(head -n1 "$LERR")" "\(forwarding\)$"
	before=$(sikka_requests)
	now=$(date +%s)
	post "$AVAIL" -H "x-timestamp: $now" -H "x-signature: $(hmac_sig "$AVAIL" "$now")"
	assert_equal "$code" 200
	assert_equal "$(jq -r '.results[0].result' <<<"$body" | jq -r .message)" "ok from fake target"
	# Nothing ran here.
	assert_equal "$(sikka_requests)" "$before"
	assert_equal "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq -c '[.authorized, .unauthorized]')" '[1,0]'
	# A target that refuses: its status and body come back as they are.
	target_fake auth '{"mode":"secret","secret":"another"}' >/dev/null
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code $body" '401 {"error":"unauthorized"}'
	# A request the listener refuses is not relayed.
	post "$AVAIL"
	assert_equal "$code" 401
	assert_equal "$(curl -sS "$FAKE_TARGET/__fake/counters" | jq -c '.requests')" 2
	stop_listener
	assert_equal "$(grep -c 'checkAvailability forwarded 200' "$LERR")" 1
	assert_equal "$(grep -c 'checkAvailability forwarded 401' "$LERR")" 1
	# The backend is gone: 502.
	start_listener --forward-to http://127.0.0.1:1/webhook
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 502
	stop_listener
}

@test "--record DIR: each exchange saved redacted, 0600 in 0700, and vapi replay runs the corpus" {
	start_listener --record "$BATS_TEST_TMPDIR/corpus"
	post "$PAT" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	post "$AVAIL" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	post "$AVAIL"
	assert_equal "$code" 401
	stop_listener
	assert_equal "$LSTATUS" 0
	assert_equal "$(cat "$LERR" | grep -vc '^listening on')" 3
	dir=$BATS_TEST_TMPDIR/corpus
	assert_equal "$(stat -c %a "$dir")" 700
	assert_equal "$(find "$dir" -name '*.response.json' | wc -l)" 2
	assert_equal "$(find "$dir" -name '*.json' ! -name '*.response.json' | wc -l)" 2
	assert_equal "$(find "$dir" -type f ! -perm 600 | wc -l)" 0
	# No PHI of the fixture in any byte of the corpus.
	for v in "${PHI[@]}"; do
		! grep -rqF -- "$v" "$dir"
	done
	run --separate-stderr parlae vapi replay "$dir" --json
	assert_success
	assert_equal "$(jq -c '[.total, .ok, .failed]' <<<"$output")" '[2,2,0]'
}

@test "a corpus recorded by listen is a regression gate: replay --expect-dir is green, then red when the data changes" {
	jq -c '.message.call.id = "c-0360-gate"' "$AVAIL" >"$BATS_TEST_TMPDIR/gate.json"
	start_listener --record "$BATS_TEST_TMPDIR/gate"
	post "$BATS_TEST_TMPDIR/gate.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	stop_listener
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/gate" --expect-dir "$BATS_TEST_TMPDIR/gate"
	assert_success
	# Another booked appointment at 08:00 on 2026-12-01: that slot is gone from the answer.
	fake seed '{"office_id":"D36225","patients":[],"providers":[{"provider_id":"DR1","first_name":"Lee"}],"operatories":[{"operatory":"OP1"}],
		"appointments":[{"appointment_sr_no":"A9","patient_id":"P9","provider_id":"DR1","date":"2026-12-01","time":"08:00","length":"30"}]}' >/dev/null
	run --separate-stderr parlae vapi replay "$BATS_TEST_TMPDIR/gate" --expect-dir "$BATS_TEST_TMPDIR/gate"
	assert_failure 1
}

@test "--record --no-redact says so on stderr when it starts" {
	start_listener --record "$BATS_TEST_TMPDIR/raw" --no-redact
	stop_listener
	assert_equal "$LSTATUS" 0
	assert_equal "$(head -n1 "$LERR")" "parlae: --no-redact: recording raw payloads into $BATS_TEST_TMPDIR/raw; they hold patients' data"
}

@test "SIGTERM with a request in flight: no new connections, the request completes, exit 0" {
	fake latency '{"ms":1500}' >/dev/null
	start_listener
	curl -sS -o "$BATS_TEST_TMPDIR/inflight" -w '%{http_code}' -X POST -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET" \
		--data-binary @"$AVAIL" "$URL/api/vapi" >"$BATS_TEST_TMPDIR/inflight.code" &
	cpid=$!
	for i in $(seq 1 100); do
		[ "$(curl -sS "$URL/metrics" | awk '$1 == "parlae_listen_in_flight" { print $2 }')" = 1 ] && break
		sleep 0.02
	done
	kill -TERM "$LPID"
	sleep 0.2
	# It takes no new connection while it finishes.
	run curl -sS -m 2 "$URL/healthz"
	assert_failure 7
	wait "$cpid"
	LSTATUS=0
	wait "$LPID" || LSTATUS=$?
	LPID=
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$LSTATUS" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/inflight.code")" 200
	assert_equal "$(jq -r '.results[0].result' "$BATS_TEST_TMPDIR/inflight" | jq -c '[.success, .date]')" '[true,"2026-12-01"]'
	assert_regex "$(cat "$LERR")" "parlae: stopping: finishing 1 request in flight"
	assert_regex "$(cat "$LERR")" "checkAvailability ok 200"
}

@test "a second Ctrl-C while requests finish ends it at once: exit 130" {
	fake latency '{"ms":3000}' >/dev/null
	start_listener
	curl -sS -o /dev/null -X POST -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET" --data-binary @"$AVAIL" "$URL/api/vapi" &
	cpid=$!
	for i in $(seq 1 100); do
		[ "$(curl -sS "$URL/metrics" | awk '$1 == "parlae_listen_in_flight" { print $2 }')" = 1 ] && break
		sleep 0.02
	done
	kill -INT "$LPID"
	sleep 0.2
	kill -INT "$LPID"
	LSTATUS=0
	wait "$LPID" || LSTATUS=$?
	LPID=
	wait "$cpid" || true
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$LSTATUS" 130
	assert_regex "$(cat "$LERR")" "parlae: interrupted"
}

# --- speed and scale (issue 15, item 5): the upstream time in the log, the database pool -------

# pat_call ID: the getPatientInfo payload as call ID, into $BATS_TEST_TMPDIR/ID.json.
pat_call() { jq -c --arg id "$1" '.message.call.id = $id' "$PAT" >"$BATS_TEST_TMPDIR/$1.json"; }

@test "--json: upstreamMs is the time the exchange waited on Sikka (its two requests), 0 for a refusal" {
	fake latency '{"ms":200}' >/dev/null
	start_listener --json
	pat_call c-0360-upstream
	post "$BATS_TEST_TMPDIR/c-0360-upstream.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	post "$BATS_TEST_TMPDIR/c-0360-upstream.json"
	assert_equal "$code" 401
	stop_listener
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$LSTATUS" 0
	# getPatientInfo for the verified caller asks Sikka twice: the patient, their next visit.
	assert_equal "$(sed -n 2p "$LOUT" | jq -c '[.callId, .outcome, (.upstreamMs >= 400), (.upstreamMs <= .latencyMs)]')" \
		'["c-0360-upstream","ok",true,true]'
	assert_equal "$(sed -n 3p "$LOUT" | jq -c '[.outcome, .upstreamMs]')" '["refused",0]'
	assert_equal "$(cat "$LERR")" ""
}

@test "--json: databaseMs is the time the exchange waited on PostgreSQL (a lock held elsewhere shows there, not upstream), 0 for a refusal" {
	start_listener --json
	pat_call c-0360-database
	# The call's log names its account: a session holding the account's row waits it out.
	sql_owner "BEGIN; SELECT 1 FROM accounts WHERE id = 'happy' FOR UPDATE; SELECT pg_sleep(0.8); COMMIT" >/dev/null &
	locker=$!
	for _ in $(seq 1 100); do
		[ "$(sql_admin "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.8)%' AND state = 'active' AND pid <> pg_backend_pid()")" = 1 ] && break
		sleep 0.02
	done
	post "$BATS_TEST_TMPDIR/c-0360-database.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
	assert_equal "$code" 200
	wait "$locker"
	post "$BATS_TEST_TMPDIR/c-0360-database.json"
	assert_equal "$code" 401
	stop_listener
	assert_equal "$LSTATUS" 0
	assert_equal "$(sed -n 2p "$LOUT" | jq -c '[.callId, .outcome, (.databaseMs >= 400), (.upstreamMs < 400),
		(.upstreamMs + .databaseMs <= .latencyMs)]')" '["c-0360-database","ok",true,true,true]'
	assert_equal "$(sed -n 3p "$LOUT" | jq -c '[.outcome, .databaseMs]')" '["refused",0]'
	assert_equal "$(cat "$LERR")" ""
}

@test "16 requests at once with --threads 16 use at most 8 database connections, and each is logged and audited once" {
	fake latency '{"ms":300}' >/dev/null
	start_listener --threads 16 --json
	pids=()
	for i in $(seq 1 16); do
		pat_call "c-0360-pool-$i"
		curl -sS -o "$BATS_TEST_TMPDIR/answer-$i" -w '%{http_code}\n' -X POST -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET" \
			--data-binary @"$BATS_TEST_TMPDIR/c-0360-pool-$i.json" "$URL/api/vapi" >"$BATS_TEST_TMPDIR/code-$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	conns=$(sql_admin "SELECT count(*) FROM pg_stat_activity WHERE usename = 'parlae_app' AND application_name = 'parlae vapi listen' AND datname = current_database()")
	stop_listener
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$LSTATUS" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR"/code-* | sort -u)" 200
	for i in $(seq 1 16); do
		assert_equal "$(jq -r '.results[0].result' "$BATS_TEST_TMPDIR/answer-$i" | jq -c '[.success, .verified, .patient.id]')" '[true,true,"P1"]'
	done
	# Before the pool, each of the 16 requests held a connection of its own.
	[ "$conns" -ge 1 ] && [ "$conns" -le 8 ] || fail "$conns database connections"
	assert_equal "$(sql "SELECT count(*), sum(tool_calls) FROM vapi_call_logs WHERE call_id LIKE 'c-0360-pool-%'")" '16|16'
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action = 'vapi.tool' AND metadata->>'callId' LIKE 'c-0360-pool-%'")" 16
	assert_equal "$(jq -r 'select(.callId != null) | .outcome' "$LOUT" | sort | uniq -c | awk '{ print $1, $2 }')" '16 ok'
	run parlae audit verify
	assert_success
}

@test "a pool smaller than the requests in flight makes them wait, never fail: --threads 2, 10 at once, all 200" {
	fake latency '{"ms":100}' >/dev/null
	start_listener --threads 2 --json
	pids=()
	for i in $(seq 1 10); do
		pat_call "c-0360-wait-$i"
		curl -sS -o /dev/null -w '%{http_code}\n' -X POST -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET" \
			--data-binary @"$BATS_TEST_TMPDIR/c-0360-wait-$i.json" "$URL/api/vapi" >"$BATS_TEST_TMPDIR/code-$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	conns=$(sql_admin "SELECT count(*) FROM pg_stat_activity WHERE usename = 'parlae_app' AND application_name = 'parlae vapi listen' AND datname = current_database()")
	stop_listener
	fake latency '{"ms":0}' >/dev/null
	assert_equal "$LSTATUS" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR"/code-* | tr '\n' ' ')" '200 200 200 200 200 200 200 200 200 200 '
	[ "$conns" -ge 1 ] && [ "$conns" -le 2 ] || fail "$conns database connections"
	assert_equal "$(sql "SELECT count(*), sum(tool_calls) FROM vapi_call_logs WHERE call_id LIKE 'c-0360-wait-%'")" '10|10'
	assert_equal "$(jq -r 'select(.callId != null) | .status' "$LOUT" | sort | uniq -c | awk '{ print $1, $2 }')" '10 200'
}

@test "a schema change under a running listener: its prepared statements are planned again, and every request still runs" {
	start_listener --threads 1 --json
	for i in 1 2 3; do
		case $i in
		2) sql_owner "ALTER TABLE pms_integrations ALTER COLUMN status TYPE varchar(40)" ;;
		3) sql_owner "ALTER TABLE pms_integrations ALTER COLUMN status TYPE text" ;;
		esac
		pat_call "c-0360-plan-$i"
		post "$BATS_TEST_TMPDIR/c-0360-plan-$i.json" -H "X-Vapi-Secret: $VAPI_WEBHOOK_SECRET"
		assert_equal "$code" 200
		assert_equal "$(jq -r '.results[0].result' <<<"$body" | jq -c '[.success, .patient.id]')" '[true,"P1"]'
	done
	stop_listener
	assert_equal "$LSTATUS" 0
	assert_equal "$(jq -r 'select(.callId != null) | .outcome' "$LOUT" | tr '\n' ' ')" 'ok ok ok '
}
