#!/usr/bin/env bats
# The bash completion (completions/parlae.bash): candidates come from `parlae __complete`, so
# from the command table and, for account ids, from the database.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
	export HOME=$BATS_FILE_TMPDIR/home
	mkdir -p "$HOME"
	suite_migrate
	parlae account add alpha-dental >/dev/null
	parlae account add beta >/dev/null
}
setup() { setup_home; }

# What bash offers for the last of the given words (COMP_WORDS as bash would split the line),
# one per line, from a fresh bash that sourced the completion script.
complete_words() {
	run --separate-stderr bash -c '
		. "$0/completions/parlae.bash" || exit 99
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		_parlae || exit 98
		[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"' "$PL_TOP" "$@"
}

@test "the bash script registers its function for parlae" {
	run --separate-stderr bash -c '. "$0/completions/parlae.bash" && complete -p parlae' "$PL_TOP"
	assert_success
	assert_equal "$output" "complete -F _parlae parlae"
	assert_equal "$stderr" ""
}

@test "parlae st completes to exactly status" {
	complete_words parlae st
	assert_success
	assert_equal "$output" "status"
	assert_equal "$stderr" ""
}

@test "an empty first word offers every command word, once each" {
	complete_words parlae ""
	assert_success
	assert_equal "$output" "$(parlae --list-cmds | cut -d' ' -f1 | uniq)"
}

@test "parlae db offers its subcommands migrate and status" {
	complete_words parlae db ""
	assert_success
	assert_equal "$output" $'migrate\nstatus'
	assert_equal "$stderr" ""
}

@test "parlae account add -- offers its own option and the global ones" {
	complete_words parlae account add --
	assert_success
	assert_line --index 0 "--name"
	assert_line "--json"
	assert_line "--dry-run"
	assert_equal "$stderr" ""
}

@test "parlae account add offers the account ids from the database" {
	complete_words parlae account add ""
	assert_success
	assert_equal "$output" $'alpha-dental\nbeta'
	assert_equal "$stderr" ""
}

@test "a partly typed account id completes to the account it starts" {
	complete_words parlae account add al
	assert_success
	assert_equal "$output" "alpha-dental"
}

@test "an account created since is offered too: nothing is cached" {
	parlae account add gamma >/dev/null
	complete_words parlae account add g
	assert_success
	assert_equal "$output" "gamma"
}

@test "with the database down no account id is offered and nothing is printed on stderr" {
	PARLAE_DATABASE_URL=$(closed_db_url) complete_words parlae account add ""
	assert_success
	assert_equal "$output" ""
	assert_equal "$stderr" ""
}

@test "help offers the command words" {
	complete_words parlae help ""
	assert_success
	assert_equal "$output" "$(parlae --list-cmds | cut -d' ' -f1 | uniq)"
}

@test "a global option before the command does not change what is offered" {
	complete_words parlae --json st
	assert_success
	assert_equal "$output" "status"
}

@test "a word bash split at '=' is passed to parlae whole" {
	complete_words parlae --color = never st
	assert_success
	assert_equal "$output" "status"
}

@test "--color completes to its three values" {
	complete_words parlae --col
	assert_success
	assert_equal "$output" $'--color=auto\n--color=always\n--color=never'
}

@test "an option's value is not taken for a command word" {
	run parlae __complete --profile prod status --
	assert_success
	assert_line -- "--check"
}

@test "a parlae typed as a path completes with that binary" {
	PATH=/usr/bin:/bin complete_words "$PARLAE_BIN" db m
	assert_success
	assert_equal "$output" "migrate"
}

@test "the completion scripts keep no list of commands or options of their own" {
	run grep -n -w -E 'migrate|list|status|version|shell|--name|--check|--json|exit-codes' \
		"$PL_TOP/completions/parlae.bash" "$PL_TOP/completions/_parlae" "$PL_TOP/completions/parlae.fish"
	assert_failure 1
	assert_output ""
}
