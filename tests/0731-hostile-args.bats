#!/usr/bin/env bats
# Every command that takes text, given hostile text: bytes that are not UTF-8, 4-byte characters
# at lengths that cut them, control characters, 10 KB values, and NUL where a NUL can travel
# (files and stdin). Whatever the command answers, it answers with a contract exit code (never
# 70 "internal" or a signal), its stdout and stderr are valid UTF-8, no raw control character
# from the input reaches stderr, and with --json both are JSON (issue 11).
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() { vapi_setup; }

rep() { local s="" i; for ((i = 0; i < $2; i++)); do s+=$1; done; printf '%s' "$s"; }

# The hostile values, one per array element.
values() {
	hostile=(
		$'\xff\xfe'
		$'caf\xc3'
		"$(rep a 79)😀"
		"$(rep a 62)😀"
		"$(rep é 200)"
		$'a\e[2J\e]0;pwned\a\rb'
		$'\xc2\x9b31m'
		"$(rep x 10240)"
		"$(rep 😀 2600)"
	)
}

# Judge the last run: a contract code, valid UTF-8 out and err, no raw control character in
# stderr but the line ends, and with --json, JSON documents.
judge() {
	local json=$1 what=$2
	case $status in
	0 | 1 | 2 | 3 | 4 | 5 | 6 | 9 | 10 | 65) ;;
	*) fail "$what: exit $status: $stderr" ;;
	esac
	python3 -c 'import sys; sys.stdin.buffer.read().decode("utf-8", "strict")' <<<"$output" ||
		fail "$what: stdout is not UTF-8"
	python3 -c 'import sys; sys.stdin.buffer.read().decode("utf-8", "strict")' <<<"$stderr" ||
		fail "$what: stderr is not UTF-8"
	python3 -c '
import re, sys
t = sys.stdin.buffer.read().decode("utf-8")
if re.search("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]", t):
    sys.exit(1)' <<<"$stderr" || fail "$what: a raw control character reached stderr: $(od -c <<<"$stderr" | head -5)"
	if [ "$json" = 1 ]; then
		[ -z "$output" ] || jq -e . >/dev/null <<<"$output" || fail "$what: stdout is not JSON"
		[ -z "$stderr" ] || jq -e . >/dev/null <<<"$stderr" || fail "$what: stderr is not JSON: $stderr"
	fi
}

# hostile CMD ARGS...: run the command with each value in place of every "@V@" word, plain and
# with --json.
hostile() {
	local v a json args
	values
	for v in "${hostile[@]}"; do
		for json in 0 1; do
			args=()
			for a in "$@"; do
				if [ "$a" = @V@ ]; then args+=("$v"); else args+=("${a//@V@/$v}"); fi
			done
			[ $json = 1 ] && args+=(--json)
			run --separate-stderr parlae "${args[@]}"
			judge $json "parlae $1 $2 ($(printf '%.12q' "$v"))"
		done
	done
}

# The same with a JSON argument: the value goes in as a JSON string.
hostile_json_args() {
	local v json tool=$1 key=$2
	shift 2
	values
	for v in "${hostile[@]}"; do
		for json in 0 1; do
			local j
			j=$(jq -cn --arg v "$v" "{\"$key\": \$v}" 2>/dev/null) || j=$(printf '{"%s":"%s"}' "$key" "$v")
			run --separate-stderr parlae vapi tool invoke "$tool" --account happy --args "$j" "$@" \
				$([ $json = 1 ] && echo --json)
			judge $json "vapi tool invoke $tool $key ($(printf '%.12q' "$v"))"
		done
	done
}

@test "account add: hostile ids and names" {
	hostile account add @V@
	hostile account add hostile-name --name @V@
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id NOT IN ('happy', 'hostile-name')")" 0
}

@test "pms setup: hostile accounts, time zones and hours" {
	hostile pms setup @V@
	hostile pms setup happy --timezone @V@
	hostile pms setup happy --hours @V@
	assert_equal "$(sql "SELECT timezone FROM pms_integrations WHERE account_id = 'happy'")" America/New_York
}

@test "sikka oauth-url and callback: hostile accounts, redirect URIs, codes, states and errors" {
	hostile sikka oauth-url @V@
	hostile sikka oauth-url happy --redirect-uri @V@ --dry-run
	hostile sikka callback --code @V@ --state @V@
	hostile sikka callback --error @V@ --state @V@
	hostile sikka callback --url "https://backend.example/cb?code=@V@&state=@V@"
	hostile sikka callback --url "https://backend.example/cb?error=@V@&state=x"
	hostile sikka callback --url @V@
}

@test "status, secrets rotate and audit tail: hostile accounts, actions and times" {
	hostile status @V@
	hostile secrets rotate @V@ --dry-run
	hostile audit tail --account @V@ -n 1
	hostile audit tail --action @V@ -n 1
	hostile audit tail --since @V@ -n 1
}

@test "vapi phone add: hostile ids and numbers" {
	hostile vapi phone add happy --vapi-id @V@ --number +15550009999
	hostile vapi phone add happy --vapi-id pn-hostile --number @V@
	hostile vapi phone add happy --vapi-id pn-hostile --number +15550009999 --staff-forward @V@
}

@test "vapi tool invoke: hostile tool names, call ids, callers and arguments" {
	hostile vapi tool invoke @V@ --account happy
	hostile vapi tool invoke getPatientInfo --account @V@ --args '{"query":"x"}'
	hostile vapi tool invoke getPatientInfo --account happy --args @V@
	hostile vapi tool invoke getPatientInfo --account happy --args '{"query":"x"}' --call-id @V@
	hostile vapi tool invoke getPatientInfo --account happy --args '{"query":"Ana Diaz"}' --caller @V@
	hostile_json_args getPatientInfo query
	hostile_json_args checkAvailability date
	hostile_json_args bookAppointment startTime
	hostile_json_args transferToHuman reason
}

@test "a NUL inside a payload, an argument document or a redirect on stdin is bad input" {
	printf '{"message":{"type":"tool-calls","toolCallList":[]}}\0{}' >"$BATS_TEST_TMPDIR/p.json"
	run --separate-stderr parlae vapi tool invoke --payload - <"$BATS_TEST_TMPDIR/p.json"
	assert_failure 65
	judge 0 "payload with NUL"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/p.json" --json
	assert_failure 65
	judge 1 "payload file with NUL"
	printf '{"query":"Ana\0Diaz"}' | { run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args -; assert_failure 65; judge 0 "args with NUL"; }
	printf 'https://backend.example/cb?code=a\0b&state=x' | { run --separate-stderr parlae sikka callback --url -; assert_failure 65; judge 0 "url with NUL"; }
}
