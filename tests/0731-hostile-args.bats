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

# N copies of a string, without a loop (a loop of += is quadratic in bash).
rep() { local s; printf -v s "%$2s" ""; printf '%s' "${s// /$1}"; }

# The hostile values, one per array element.
values() {
	[ "${#hostile[@]}" -eq 0 ] || return 0
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

# Each run is kept (status, stdout, stderr, whether --json) in $BATS_TEST_TMPDIR/runs, and
# judged all at once when the test ends (one python3, not four per run): a contract code, valid
# UTF-8 out and err, no raw control character in stderr but the line ends, and with --json,
# JSON documents.
keep() {
	local json=$1 what=$2 d
	d=$BATS_TEST_TMPDIR/runs/$((++runs))
	mkdir -p "$d"
	printf '%s' "$status" >"$d/status"
	printf '%s' "$output" >"$d/out"
	printf '%s' "$stderr" >"$d/err"
	printf '%s' "$json" >"$d/json"
	printf '%s' "$what" >"$d/what"
}

judge_all() {
	[ "${runs:-0}" -gt 0 ] || fail "nothing was run"
	python3 - "$BATS_TEST_TMPDIR/runs" <<-'PY' || fail "$(cat "$BATS_TEST_TMPDIR/verdict")"
	import json, os, re, sys
	top = sys.argv[1]
	bad = []
	ctl = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
	for n in sorted(os.listdir(top), key=int):
	    d = os.path.join(top, n)
	    rd = lambda f: open(os.path.join(d, f), "rb").read()
	    what = rd("what").decode("utf-8", "replace")
	    code = int(rd("status"))
	    if code not in (0, 1, 2, 3, 4, 5, 6, 9, 10, 65):
	        bad.append(f"{what}: exit {code}: {rd('err')[:300]!r}")
	        continue
	    try:
	        out, err = rd("out").decode("utf-8"), rd("err").decode("utf-8")
	    except UnicodeDecodeError as e:
	        bad.append(f"{what}: output is not UTF-8: {e}")
	        continue
	    if ctl.search(err):
	        bad.append(f"{what}: a raw control character reached stderr: {err[:300]!r}")
	    if rd("json") == b"1":
	        for name, text in (("stdout", out), ("stderr", err)):
	            try:
	                text and json.loads(text)
	            except ValueError:
	                bad.append(f"{what}: {name} is not JSON: {text[:300]!r}")
	open(os.path.join(os.path.dirname(top), "verdict"), "w").write("\n".join(bad))
	print(f"{n} runs judged, {len(bad)} bad", file=sys.stderr)
	sys.exit(1 if bad else 0)
	PY
}

# hostile CMD ARGS...: run the command with each value in place of every "@V@" word, plain or
# with --json in turn (each value meets both modes across the commands of a test).
hostile() {
	local v a json args
	values
	for v in "${hostile[@]}"; do
		for json in $((flip = 1 - ${flip:-0})); do
			args=()
			for a in "$@"; do
				if [ "$a" = @V@ ]; then args+=("$v"); else args+=("${a//@V@/$v}"); fi
			done
			[ $json = 1 ] && args+=(--json)
			run --separate-stderr parlae "${args[@]}"
			keep $json "parlae $1 $2 ($(printf '%.12q' "$v"))"
		done
	done
}

# The same with a JSON argument: the value goes in as a JSON string.
hostile_json_args() {
	local v json tool=$1 key=$2
	shift 2
	values
	for v in "${hostile[@]}"; do
		for json in $((flip = 1 - ${flip:-0})); do
			local j
			j=$(jq -cn --arg v "$v" "{\"$key\": \$v}" 2>/dev/null) || j=$(printf '{"%s":"%s"}' "$key" "$v")
			run --separate-stderr parlae vapi tool invoke "$tool" --account happy --args "$j" "$@" \
				$([ $json = 1 ] && echo --json)
			keep $json "vapi tool invoke $tool $key ($(printf '%.12q' "$v"))"
		done
	done
}

@test "account add: hostile ids and names" {
	hostile account add @V@
	hostile account add hostile-name --name @V@
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id NOT IN ('happy', 'hostile-name')")" 0
	# A name that is not UTF-8 is refused before the database sees it (it was exit 7).
	run --separate-stderr parlae account add bad-name --name $'ab\xff'
	assert_failure 2
	assert_equal "$stderr" "parlae: --name 'ab�' is not UTF-8 text"
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id = 'bad-name'")" 0
	judge_all
}

@test "pms setup: hostile accounts, time zones and hours" {
	hostile pms setup @V@
	hostile pms setup happy --timezone @V@
	hostile pms setup happy --hours @V@
	assert_equal "$(sql "SELECT config->>'timezone' FROM pms_integrations WHERE account_id = 'happy'")" America/New_York
	judge_all
}

@test "sikka oauth-url and callback: hostile accounts, redirect URIs, codes, states and errors" {
	hostile sikka oauth-url @V@
	hostile sikka oauth-url happy --redirect-uri @V@ --dry-run
	hostile sikka callback --code @V@ --state @V@
	hostile sikka callback --error @V@ --state @V@
	hostile sikka callback --url "https://backend.example/cb?code=@V@&state=@V@"
	hostile sikka callback --url "https://backend.example/cb?error=@V@&state=x"
	hostile sikka callback --url @V@
	judge_all
}

@test "status, secrets rotate and audit tail: hostile accounts, actions and times" {
	hostile status @V@
	hostile secrets rotate @V@ --dry-run
	hostile audit tail --account @V@ -n 1
	hostile audit tail --action @V@ -n 1
	hostile audit tail --since @V@ -n 1
	judge_all
}

# The hostile value in one field of a marketplace registration body, or as the whole body.
hostile_body() { # purchase|cancel FIELD|-
	local v json body
	values
	for v in "${hostile[@]}"; do
		for json in $((flip = 1 - ${flip:-0})); do
			if [ "$2" = - ]; then
				body=$v
			else
				body=$(jq -cn --arg v "$v" --arg f "$2" '{MasterCustomerID: "MC-H", PartnerRegistrationID: "PR-H", EmailAddress: "h@example.com", PracticeName: "H"} + {($f): $v}')
			fi
			run --separate-stderr parlae pms "$1" --payload - $([ $json = 1 ] && echo --json) <<<"$body"
			keep $json "pms $1 $2 ($(printf '%.12q' "$v"))"
		done
	done
}

@test "pms purchase, cancel, registrations, assign and disconnect: hostile bodies, ids and accounts" {
	hostile_body purchase -
	hostile_body purchase PartnerRegistrationID
	hostile_body purchase MasterCustomerID
	hostile_body purchase EmailAddress
	hostile_body purchase PracticeName
	hostile_body cancel PartnerRegistrationID
	hostile pms assign @V@ happy
	hostile pms assign PR-H @V@
	hostile pms disconnect @V@ --dry-run
	run --separate-stderr parlae pms registrations
	keep 0 "pms registrations"
	run --separate-stderr parlae pms registrations --json
	keep 1 "pms registrations --json"
	judge_all
}

@test "vapi phone add: hostile ids and numbers" {
	hostile vapi phone add happy --vapi-id @V@ --number +15550009999
	hostile vapi phone add happy --vapi-id pn-hostile --number @V@
	hostile vapi phone add happy --vapi-id pn-hostile --number +15550009999 --staff-forward @V@
	judge_all
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
	judge_all
}

@test "a NUL inside a payload, an argument document or a redirect on stdin is bad input" {
	printf '{"message":{"type":"tool-calls","toolCallList":[]}}\0{}' >"$BATS_TEST_TMPDIR/p.json"
	run --separate-stderr parlae vapi tool invoke --payload - <"$BATS_TEST_TMPDIR/p.json"
	assert_failure 65
	keep 0 "payload with NUL"
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_TMPDIR/p.json" --json
	assert_failure 65
	keep 1 "payload file with NUL"
	printf '{"query":"Ana\0Diaz"}' >"$BATS_TEST_TMPDIR/args"
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args - <"$BATS_TEST_TMPDIR/args"
	assert_failure 65
	keep 0 "args with NUL"
	printf 'https://backend.example/cb?code=a\0b&state=x' >"$BATS_TEST_TMPDIR/url"
	run --separate-stderr parlae sikka callback --url - <"$BATS_TEST_TMPDIR/url"
	assert_failure 65
	keep 0 "url with NUL"
	judge_all
}
