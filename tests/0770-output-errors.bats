#!/usr/bin/env bats
# Output errors are errors (cli.md, exit codes): stdout or a named output file that cannot be
# written is exit 74 (io) with one message; a reader that closes the pipe early ends the command
# quietly, as git does. Each test began as a write failure reported as success (issue 11).
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes

setup_file() {
	suite_setup
	suite_migrate
	start_sikka "$BATS_FILE_TMPDIR/fakes"
	local k=$BATS_FILE_TMPDIR/keys
	mkdir -p "$k"
	openssl genpkey -algorithm ed25519 -out "$k/signing.pem" 2>/dev/null
	chmod 600 "$k/signing.pem"
}
teardown_file() { stop_sikka "$BATS_FILE_TMPDIR/fakes"; }

setup() {
	setup_home
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	export PARLAE_STATE_SECRET=sekrit-state-secret-for-tests-0123456789
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
	export PARLAE_SECRET_STORE=file:$BATS_FILE_TMPDIR/vault APP_BASE_URL=https://backend.example
	export PARLAE_AUDIT_SIGNING_KEY_FILE=$BATS_FILE_TMPDIR/keys/signing.pem
	if [ "$(sql "SELECT count(*) FROM accounts WHERE id = 'out'")" = 0 ]; then
		parlae account add out --name "Output Dental" >/dev/null
		parlae pms setup out --timezone UTC >/dev/null
	fi
}

# The command line given, run with stdout on /dev/full: sets status and stderr.
into_full() { run --separate-stderr bash -c '"$@" >/dev/full' _ "$@"; }

# With a file size limit of 0 bytes, as on a full file system: writes to files fail with EFBIG
# (SIGXFSZ ignored, so that the write fails instead of the signal ending the process). stdout
# goes to OUT; stderr through a pipe, which the limit does not touch. no_space OUT CMD...
no_space() {
	run --separate-stderr bash -c 'set -o pipefail; out=$1; shift
		(trap "" XFSZ; ulimit -f 0; exec "$@" >"$out") 2>&1 | cat >&2' _ "$@"
}

@test "every listed command into /dev/full exits 74 with one line on stderr" {
	for cmd in "account list" "audit tail" "audit tail -n 3" "status" "status -q" \
		"sikka oauth-url out -q" "help" "--version" "db status"; do
		# shellcheck disable=SC2086 # the words of the command
		into_full parlae $cmd
		assert_equal "$cmd: $status" "$cmd: 74"
		assert_equal "$cmd: $stderr" "$cmd: parlae: cannot write to standard output: No space left on device"
	done
}

@test "--json: an output error is one JSON error object on stderr" {
	into_full parlae account list --json
	assert_equal "$status" 74
	assert_equal "$(jq -c '.error | [.code, .message]' <<<"$stderr")" \
		'["io","cannot write to standard output: No space left on device"]'
	assert_equal "$(wc -l <<<"$stderr")" 1
	for cmd in "audit tail" "status" "sikka oauth-url out"; do
		# shellcheck disable=SC2086 # the words of the command
		into_full parlae $cmd --json
		assert_equal "$cmd: $status" "$cmd: 74"
		assert_equal "$cmd: $(jq -r .error.code <<<"$stderr")" "$cmd: io"
	done
}

@test "audit tail --json into a file on a full file system exits 74, not 70" {
	no_space "$BATS_TEST_TMPDIR/out" parlae audit tail --json -n 5
	assert_equal "$status" 74
	assert_equal "$(jq -c '.error | [.code, .message]' <<<"$stderr")" '["io","cannot write to standard output: File too large"]'
	no_space "$BATS_TEST_TMPDIR/out" parlae audit tail -n 5
	assert_equal "$status" 74
	assert_equal "$stderr" "parlae: cannot write to standard output: File too large"
}

@test "audit tail -f into /dev/full stops at the first event with exit 74" {
	run --separate-stderr timeout 20 bash -c 'parlae audit tail -f -n 1 >/dev/full'
	assert_equal "$status" 74
	assert_equal "$stderr" "parlae: cannot write to standard output: No space left on device"
}

@test "audit tail | head -1 ends quietly: nothing on stderr, exit 0 or 141" {
	for i in $(seq 1 30); do sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('t', 'h', 'x.$i', 'success')" >/dev/null; done
	run --separate-stderr bash -c 'set -o pipefail; parlae audit tail -n 30 | head -c 1 >/dev/null'
	assert_equal "$stderr" ""
	[[ $status == 0 || $status == 141 ]]
	# A reader gone before anything is written, with SIGPIPE ignored as some parents do: EPIPE.
	run --separate-stderr bash -c 'trap "" PIPE; parlae audit tail -n 30 | (exec 0<&-; true); echo "${PIPESTATUS[0]}"'
	assert_equal "$stderr" ""
	assert_equal "$output" 141
}

@test "audit tail -f | head -1 ends when the reader goes and the next event comes" {
	timeout 30 bash -c 'parlae audit tail -f -n 1 | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}" >"$1"' _ "$BATS_TEST_TMPDIR/rc" \
		2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	# head has gone after the first line; the next event makes the follower write, and end.
	for _ in $(seq 1 50); do
		sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('t', 'h', 'ping', 'success')" >/dev/null
		[ -s "$BATS_TEST_TMPDIR/rc" ] && break
		sleep 0.2
	done
	wait "$pid"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rc")" 141
	assert_equal "$(cat "$BATS_TEST_TMPDIR/err")" ""
}

@test "audit checkpoint --output on a full file system exits 74 and leaves no partial line" {
	no_space /dev/null parlae audit checkpoint --output "$BATS_TEST_TMPDIR/cp.jsonl"
	assert_equal "$status" 74
	assert_regex "$stderr" "^parlae: cannot write to the checkpoint file $BATS_TEST_TMPDIR/cp.jsonl: File too large$"
	assert_equal "$(wc -c <"$BATS_TEST_TMPDIR/cp.jsonl")" 0
	assert_equal "$(sql "SELECT outcome || '|' || error_code FROM audit_events WHERE action = 'audit.checkpoint' ORDER BY seq DESC LIMIT 1")" "failure|io"
}

@test "audit tail --cursor-file on a full file system exits 74 and keeps the old cursor" {
	echo 1 >"$BATS_TEST_TMPDIR/cursor"
	no_space /dev/null parlae audit tail --cursor-file "$BATS_TEST_TMPDIR/cursor"
	assert_equal "$status" 74
	assert_regex "$stderr" "^parlae: cannot write the cursor file $BATS_TEST_TMPDIR/cursor: File too large$"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/cursor")" 1
	assert_equal "$(ls "$BATS_TEST_TMPDIR" | grep -c cursor)" 1
}

@test "a command that succeeds with its output written has an empty stderr and exit 0" {
	run --separate-stderr parlae account list
	assert_success
	assert_equal "$stderr" ""
	assert_regex "$output" "out	Output Dental"
}
