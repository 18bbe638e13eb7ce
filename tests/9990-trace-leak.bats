#!/usr/bin/env bats
# The harness-level check on -vv traces: tests/run has every command of the run append its -vv
# trace to one file (PARLAE_TRACE), and tests/helpers/trace-check fails if any secret or
# patient's data the tests use is in it. Here: the check can fail, and it is not vacuous.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	export PARLAE_TRACE=$BATS_TEST_TMPDIR/trace
}

check() { run --separate-stderr "$PL_TOP/tests/helpers/trace-check" "$@"; }

@test "the trace check finds a planted secret and patient data, naming the kind and line, never the value" {
	cat >"$BATS_TEST_TMPDIR/planted" <<-'EOF'
		trace[1]: http: GET http://127.0.0.1:1/v4/patients?firstname=***
		trace[1]: sql: SELECT 1 -- 1 parameter: $1 5 bytes
		trace[1]: http: > App-Key: sekrit-app-key-0f9e8d7c
		trace[1]: http: < {"results":"{\"firstname\":\"Ana\",\"cell\":\"(555) 123-4567\"}"}
		trace[1]: http: > To=%2B15557654321&Body=Caller+asks
		trace[1]: sql: connect 'host=/tmp user=parlae password = sekrit-db-pass-44'
		trace[1]: http: < {"request_key":"9f86d081884c7d659a2feaa0c55ad015","sid":"SM9f86d081884c7d659a2feaa0c55ad015"}
	EOF
	check "$BATS_TEST_TMPDIR/planted"
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_line "trace-check: line 3 of the trace holds a secret SIKKA_APP_KEY"
	assert_line "trace-check: line 4 of the trace holds a patient name"
	assert_line "trace-check: line 4 of the trace holds a patient phone"
	assert_line "trace-check: line 5 of the trace holds a caller phone"
	assert_line "trace-check: line 6 of the trace holds a database password"
	assert_line "trace-check: line 7 of the trace holds a key-like token (32 hex digits)"
	assert_equal "$(grep -c 'line 7 ' <<<"$output")" 1
	refute_secrets_in "$output" sekrit-app-key-0f9e8d7c Ana 4567 sekrit-db-pass-44 7654321 9f86d081
}

@test "the trace check fails a trace that holds no HTTP or no SQL: a run that traced nothing cannot pass" {
	echo 'trace[1]: sql: SELECT 1' >"$BATS_TEST_TMPDIR/sql-only"
	check "$BATS_TEST_TMPDIR/sql-only"
	assert_equal "$status" 1
	assert_equal "$output" "trace-check: the trace has 0 HTTP and 1 SQL lines: nothing was traced"
}

@test "PARLAE_TRACE takes the -vv trace of a tool call without -vv: stderr stays empty, the check passes" {
	run --separate-stderr parlae vapi tool invoke --payload "$FIX/tool-calls-get-patient-info-string-args.json"
	assert_success
	assert_equal "$stderr" ""
	# HTTP to Sikka with its headers and bodies, and SQL: the -vv level, though -v was not given.
	grep -q '^trace\[[0-9]*\]: http: GET ' "$PARLAE_TRACE"
	grep -q '^trace\[[0-9]*\]: http: < {' "$PARLAE_TRACE"
	grep -q '^trace\[[0-9]*\]: sql: INSERT INTO ' "$PARLAE_TRACE"
	check "$PARLAE_TRACE"
	assert_success
	assert_regex "$output" '^trace-check: [0-9]+ lines \([0-9]+ HTTP, [0-9]+ SQL\) against [0-9]+ values: 0 leaks$'
}

@test "PARLAE_TRACE appends: two commands, one file, every line whole" {
	parlae account list >/dev/null
	n=$(wc -l <"$PARLAE_TRACE")
	parlae account list >/dev/null
	assert_equal "$(wc -l <"$PARLAE_TRACE")" $((2 * n))
	assert_equal "$(grep -vc '^trace\[[0-9]*\]: ' "$PARLAE_TRACE")" 0
	assert_equal "$(stat -c %a "$PARLAE_TRACE")" 600
}

@test "a relative PARLAE_TRACE is refused with a warning and the command runs" {
	PARLAE_TRACE=trace.txt run --separate-stderr parlae account list
	assert_success --stderr 'must be an absolute path'
	assert_equal "$stderr" "parlae: PARLAE_TRACE must be an absolute path; not tracing"
	[ ! -e trace.txt ]
}
