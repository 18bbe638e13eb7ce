#!/usr/bin/env bats
# The dispatcher: command table, global options, usage errors, --json errors, help.
bats_require_minimum_version 1.5.0
load helpers/common

setup() { export HOME=$BATS_TEST_TMPDIR/home; mkdir -p "$HOME"; }

@test "--version prints the version and nothing else" {
	run --separate-stderr parlae --version
	assert_success
	assert_regex "$output" '^parlae [0-9]+\.[0-9]+\.[0-9]+$'
	assert_equal "$stderr" ""
}

@test "version --json prints one JSON document" {
	run --separate-stderr parlae version --json
	assert_success
	assert_regex "$output" '^\{"version":"[0-9.]+"\}$'
}

@test "--list-cmds lists exactly the commands of the table" {
	run --separate-stderr parlae --list-cmds
	assert_success
	assert_equal "$output" "$(printf '%s\n' 'account add' 'account list' 'audit checkpoint' 'audit tail' 'audit verify' 'db migrate' 'db status' help 'pms assign' 'pms cancel' 'pms disconnect' 'pms purchase' 'pms registrations' 'pms setup' 'secrets list' 'secrets rotate' shell 'sikka callback' 'sikka oauth-url' status 'vapi listen' 'vapi phone add' 'vapi phone list' 'vapi phone remove' 'vapi replay' 'vapi tool invoke' version)"
}

@test "an unknown command exits 2 with a suggestion" {
	run --separate-stderr parlae stauts
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: unknown command 'stauts'; did you mean 'status'? (run 'parlae help' for the list of commands)"
}

@test "commands match by exact name, never by prefix" {
	run --separate-stderr parlae stat
	assert_equal "$status" 2
	assert_regex "$stderr" "unknown command 'stat'; did you mean 'status'\?"
}

@test "an unknown subcommand suggests the nearest one of its group" {
	run --separate-stderr parlae db migrat
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: unknown command 'parlae db migrat'; did you mean 'parlae db migrate'?"
}

@test "a group without a subcommand names its subcommands" {
	run --separate-stderr parlae account
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: 'parlae account' needs a subcommand: add, list"
}

@test "with --json a usage error is a JSON error on stderr" {
	run --separate-stderr parlae --json nosuch
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_equal "$stderr" '{"error":{"code":"usage","message":"unknown command '"'nosuch'"'","hint":"run '"'parlae help'"' for the list of commands"}}'
}

@test "global options work after the command too" {
	run --separate-stderr parlae version --json
	assert_success
	assert_equal "$stderr" ""
	after=$output
	run --separate-stderr parlae --json version
	assert_success
	assert_equal "$stderr" ""
	assert_regex "$output" '^\{"version":"[0-9]+\.[0-9]+\.[0-9]+"'
	assert_equal "$after" "$output"
	# After a command that fails: its error is the JSON one.
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae account list --color=never --json
	assert_failure 7
	assert_equal "$(jq -r .error.code <<<"$stderr")" database
}

@test "an unknown option exits 2 and shows the command's usage" {
	run --separate-stderr parlae account add --bogus x
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: unknown option '--bogus' (usage: parlae account add ACCOUNT [--name NAME] [--email EMAIL])"
}

@test "an option missing its value exits 2" {
	run --separate-stderr parlae account add x --name
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: option '--name' needs a value (usage: parlae account add ACCOUNT [--name NAME] [--email EMAIL])"
}

@test "a bad --color value is a usage error" {
	run --separate-stderr parlae --color=sometimes version
	assert_equal "$status" 2
	assert_regex "$stderr" "^parlae: --color must be auto, always or never, not 'sometimes'"
}

@test "parlae with no command prints the overview on stderr and exits 2" {
	run --separate-stderr parlae
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_regex "$stderr" '^usage: parlae \[GLOBAL OPTIONS\] COMMAND'
}

@test "parlae help lists every command with its summary" {
	run --separate-stderr parlae help
	assert_success
	for c in "account add" "account list" "db migrate" "db status" help shell status version; do
		assert_line --regexp "^  $c +[a-z]"
	done
}

@test "parlae help COMMAND without man and COMMAND --help print the same usage" {
	# Without man(1) on PATH, help prints what --help prints instead of the manual page.
	run --separate-stderr env PATH="$BATS_TEST_TMPDIR" "$PL_TEST_BIN/parlae" help account add
	assert_success
	help=$output
	run --separate-stderr env PATH="$BATS_TEST_TMPDIR" "$PL_TEST_BIN/parlae" account add --help
	assert_success
	assert_equal "$output" "$help"
	assert_line --index 0 "usage: parlae account add ACCOUNT [--name NAME] [--email EMAIL]"
}

@test "parlae help GROUP lists the group's commands when there is no man" {
	run --separate-stderr env PATH="$BATS_TEST_TMPDIR" "$PL_TEST_BIN/parlae" help db
	assert_success
	assert_line --index 1 '  parlae db migrate'
	assert_line --index 2 '      apply the schema migrations compiled into parlae'
	assert_line --index 3 '  parlae db status'
	assert_line --index 4 '      list applied and pending schema migrations'
}

@test "parlae help of an unknown command exits 2" {
	run --separate-stderr parlae help nosuch
	assert_equal "$status" 2
	assert_regex "$stderr" "no command 'nosuch'"
}

@test "parlae help exit-codes prints the contract's table" {
	run --separate-stderr parlae help exit-codes --json
	assert_success
	assert_equal "$(jq -c '[.[] | [.code, .name]]' <<<"$output")" \
		'[[0,"ok"],[1,"no"],[2,"usage"],[3,"config"],[4,"security"],[5,"not_found"],[6,"upstream"],[7,"database"],[8,"timeout"],[9,"partial"],[10,"conflict"],[65,"bad_input"],[70,"internal"],[74,"io"],[130,"interrupted"]]'
}

@test "--version reads no config file and opens no database" {
	mkdir -p "$HOME/.config/parlae"
	printf 'this is not a config file\n' >"$HOME/.config/parlae/config"
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae --version
	assert_success
	assert_equal "$stderr" ""
}
