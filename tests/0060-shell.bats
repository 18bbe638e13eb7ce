#!/usr/bin/env bats
# parlae shell: readline on a pty, history, completion; lines run in-process.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() { suite_setup; suite_migrate; parlae account add shelly >/dev/null; }
setup() {
	setup_home
	export XDG_STATE_HOME=$BATS_TEST_TMPDIR/state
}

pty() { "$PL_TOP/tests/helpers/pty-run" "$@"; }

@test "a scripted session runs each line as a command and goes on after an error" {
	run pty --expect 'parlae> ' --send 'account add from-shell --name "Two Words"\n' \
		--expect 'created account from-shell' --send 'nosuch\n' \
		--expect "unknown command 'nosuch'" --send "account list --json\n" \
		--expect '"from-shell"' --send 'exit\n' -- parlae shell
	assert_success
	assert_output --partial "created account from-shell"
	assert_output --partial "parlae: unknown command 'nosuch'"
	assert_equal "$(sql "SELECT name FROM accounts WHERE id = 'from-shell'")" "Two Words"
}

@test "tab completes a command name" {
	run pty --expect 'parlae> ' --send 'versi\t' --expect 'version ' --send '--json\n' \
		--expect '"version"' --send 'exit\n' -- parlae shell
	assert_success
	assert_output --regexp '"version": "[0-9.]+"'
}

@test "tab completes a subcommand, a long option and an account id" {
	run pty --expect 'parlae> ' --send 'account li\t' --expect 'account list ' --send '\n' \
		--expect 'shelly' --send 'account add she\t' --expect 'add shelly ' --send '--na\t' \
		--expect '--name ' --send 'X\n' --expect "already exists" --send 'exit\n' -- parlae shell
	assert_success
	assert_output --partial "parlae: account 'shelly' already exists"
}

@test "Ctrl-D leaves the shell with status 0" {
	run pty --expect 'parlae> ' --send '\x04' -- parlae shell
	assert_success
}

@test "options on one line do not stick to the next" {
	run pty --expect 'parlae> ' --send 'version --json\n' --expect '"version"' \
		--send 'version\n' --expect 'parlae [0-9]' --send 'exit\n' -- parlae shell
	assert_success
	assert_output --regexp $'\nparlae [0-9]+\\.[0-9]+\\.[0-9]+'
}

@test "history is kept in a 0600 file and never records secret-bearing lines" {
	run pty --expect 'parlae> ' --send 'account list\n' --expect 'shelly' \
		--send 'vapi tool invoke x --caller +15551234567\n' --expect 'parlae> .*parlae> ' \
		--send "status --code abc\n" --expect 'parlae> .*parlae> .*parlae> ' \
		--send "vapi tool invoke x --args '{\"q\":1}'\n" --expect 'parlae> .*parlae> .*parlae> .*parlae> ' \
		--send 'vapi tool invoke x --args @file.json\n' --expect 'parlae> .*parlae> .*parlae> .*parlae> .*parlae> ' \
		--send 'exit\n' -- parlae shell
	assert_success
	hist=$XDG_STATE_HOME/parlae/history
	assert_equal "$(stat -c %a "$hist")" "600"
	assert_equal "$(cat "$hist")" $'account list\nvapi tool invoke x --args @file.json'
}

# Type each line of $@ at the prompt, waiting for the next prompt, then exit: the steps for pty.
type_lines() {
	local re='parlae> ' l
	steps=(--expect "$re")
	for l in "$@"; do
		re+='.*parlae> '
		steps+=(--send "$l\n" --expect "$re")
	done
	steps+=(--send 'exit\n')
}

@test "history: abbreviations and = forms of secret-bearing options are judged as the command parses them" {
	type_lines 'vapi tool invoke x --calle +15551234567' \
		'vapi tool invoke x --caller=+15551234567' \
		'sikka callback --cod SECRET --state s' \
		'sikka callback --co=SECRET --state s' \
		'sikka callback --ur "https://cb.example/?code=SECRET&state=s"' \
		"vapi tool invoke x --arg '{\"q\":1}'" \
		"vapi tool invoke x --ar='{\"q\":1}'" \
		'--json vapi tool invoke x --calle=+15551234567' \
		'vapi tool invoke x --cal +15551234567' \
		'nosuch --co SECRET' \
		'vapi tool invoke x --arg @args.json' \
		'vapi tool invoke x --call-i c1' \
		'account list --js'
	run pty "${steps[@]}" -- parlae shell
	assert_success
	assert_equal "$(cat "$XDG_STATE_HOME/parlae/history")" \
		$'vapi tool invoke x --arg @args.json\nvapi tool invoke x --call-i c1\naccount list --js'
}

@test "history from an earlier session is available" {
	mkdir -p "$XDG_STATE_HOME/parlae"
	printf 'version --json\n' >"$XDG_STATE_HOME/parlae/history"
	chmod 600 "$XDG_STATE_HOME/parlae/history"
	run pty --expect 'parlae> ' --send '\x1b[A\n' --expect '"version"' --send 'exit\n' -- parlae shell
	assert_success
}

@test "without a terminal the shell reads lines from stdin" {
	run --separate-stderr parlae shell <<'EOF2'
version
account list --json
EOF2
	assert_success
	assert_line --index 0 --regexp '^parlae [0-9.]+$'
	assert_line --index 1 --partial '"shelly"'
}

@test "an unterminated quote is reported and the shell goes on" {
	run --separate-stderr parlae shell <<'EOF2'
account add "oops
version
EOF2
	assert_success --stderr 'unterminated quote'
	assert_equal "$stderr" "parlae: unterminated quote or too many words"
	assert_regex "$output" '^parlae [0-9.]+$'
}
