#!/usr/bin/env bats
# The manual pages and the help agree with the command table: every command answers -h, has a
# page whose SYNOPSIS shows its usage line verbatim, and parlae(1)'s EXIT STATUS is the binary's.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/man

# The pages rendered once, with man's warnings (the test of warnings reads them), and each
# command's usage as `parlae help COMMAND --json` gives it, asked once per command for the file
# (three tests asked every command, a parlae and a jq each).
setup_file() {
	man_render_all --warnings
	(
		export HOME=$BATS_FILE_TMPDIR/home LC_ALL=C.UTF-8
		mkdir -p "$HOME"
		parlae --list-cmds >"$BATS_FILE_TMPDIR/cmds" || exit
		while read -r cmd; do
			parlae help "$cmd" --json || exit
		done <"$BATS_FILE_TMPDIR/cmds" >"$BATS_FILE_TMPDIR/help.json"
		jq -r '"\(.name)\t\(.usage)"' "$BATS_FILE_TMPDIR/help.json" >"$BATS_FILE_TMPDIR/usage.tsv"
	)
}
setup() {
	export HOME=$BATS_TEST_TMPDIR/home MANWIDTH=200 LC_ALL=C.UTF-8
	mkdir -p "$HOME"
	unset MANPAGER PAGER MANROFFOPT MAN_KEEP_FORMATTING MANOPT
	declare -gA pl_usage=()
	local name u
	while IFS=$'\t' read -r name u; do pl_usage[$name]=$u; done <"$BATS_FILE_TMPDIR/usage.tsv"
}

# The page as man(1) shows it, without a pager (rendered once, in setup_file).
render() { man_cat "$1"; }

# The lines of one section of a rendered page, without the page's 7-column indentation.
section() { awk -v want="$1" '/^[^ ]/ { on = ($0 == want); next } on' | sed 's/^       //'; }

# The commands of the table, one per line, and the usage line of one of them.
commands() { parlae --list-cmds; }
usage_of() { [ -z "${pl_usage[$1]+set}" ] || printf '%s\n' "${pl_usage[$1]}"; }

@test "every command answers -h and --help with its usage, exit 0 and nothing on stderr" {
	while read -r cmd; do
		for flag in -h --help; do
			run --separate-stderr parlae $cmd $flag
			assert_success
			assert_equal "$stderr" ""
			assert_regex "${lines[0]}" "^usage: parlae $cmd( |\$)"
		done
	done < <(commands)
}

@test "parlae help COMMAND without man prints exactly what COMMAND -h prints" {
	while read -r cmd; do
		run --separate-stderr env PATH="$BATS_TEST_TMPDIR" "$PL_TEST_BIN/parlae" help $cmd
		assert_success
		assert_equal "$stderr" ""
		assert_equal "$output" "$(env PATH="$BATS_TEST_TMPDIR" "$PL_TEST_BIN/parlae" $cmd -h)"
	done < <(commands)
}

@test "each command's page shows its usage line verbatim in SYNOPSIS" {
	while read -r cmd; do
		page=parlae-${cmd%% *}.1
		usage=$(usage_of "$cmd")
		[ -n "$usage" ] || fail "no usage line for '$cmd'"
		[ -f "$PL_TOP/man/$page" ] || fail "no man/$page for '$cmd'"
		synopsis=$(render "$page" | section SYNOPSIS)
		grep -Fxq -- "$usage" <<<"$synopsis" ||
			fail "SYNOPSIS of $page lacks '$usage'; it renders as:"$'\n'"$synopsis"
	done < <(commands)
}

@test "there is one page per command word, and no page for a word that is not a command" {
	expected=$(commands | cut -d' ' -f1 | sort -u | sed 's/.*/parlae-&.1/')
	actual=$(cd "$PL_TOP/man" && ls parlae-*.1 | sort)
	assert_equal "$actual" "$expected"
}

@test "each command page's NAME is the page's own name" {
	while read -r word; do
		run --separate-stderr render "parlae-$word.1"
		assert_success
		assert_regex "$(section NAME <<<"$output" | head -n1)" "^parlae-$word - [a-z]"
	done < <(commands | cut -d' ' -f1 | sort -u)
}

@test "parlae(1) shows the overview's usage in SYNOPSIS and every command's usage in COMMANDS" {
	run --separate-stderr render parlae.1
	assert_success
	page=$output
	overview=$(parlae --help | sed -n '1s/^usage: //p')
	grep -Fxq -- "$overview" <<<"$(section SYNOPSIS <<<"$page")" || fail "SYNOPSIS lacks '$overview'"
	listed=$(section COMMANDS <<<"$page")
	while read -r cmd; do
		usage=$(usage_of "$cmd")
		grep -Fxq -- "$usage" <<<"$listed" || fail "COMMANDS of parlae.1 lacks '$usage'"
	done < <(commands)
}

@test "the EXIT STATUS table of parlae(1) is parlae help exit-codes: same codes and names, in order" {
	run --separate-stderr parlae help exit-codes
	assert_success
	expected=$(awk '{ print $1, $2 }' <<<"$output")
	actual=$(render parlae.1 | section "EXIT STATUS" | awk '$1 ~ /^[0-9]+$/ { print $1, $2 }')
	assert_equal "$actual" "$expected"
	assert_equal "$(wc -l <<<"$actual")" 15
}

@test "every page renders without warnings from man or groff" {
	for f in "$PL_TOP"/man/*.1; do
		# man --warnings -P cat -l, as setup_file ran it.
		run --separate-stderr man_cat "${f##*/}"
		assert_success
		assert_equal "$stderr" ""
		[ -n "$output" ] || fail "$f renders empty"
		run --separate-stderr groff -t -man -ww -z "$f"
		assert_success
		assert_equal "$stderr" ""
	done
}

@test "every parlae page another page refers to exists" {
	refs=$(for f in "$PL_TOP"/man/*.1; do render "$(basename "$f")"; done |
		grep -o 'parlae-[a-z]*(1)' | sort -u)
	[ -n "$refs" ] || fail "no page refers to another"
	while read -r ref; do
		[ -f "$PL_TOP/man/${ref%(1)}.1" ] || fail "a page refers to $ref, which does not exist"
	done <<<"$refs"
}

@test "parlae help --json lists exactly the commands of --list-cmds, with their usage" {
	run --separate-stderr parlae help --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -r '.commands[].name' <<<"$output")" "$(commands)"
	# Each command's usage, as `parlae help COMMAND --json` gives it (setup_file), in that order.
	slurp want "$BATS_FILE_TMPDIR/usage.tsv"
	assert_equal "$(jq -r '.commands[] | "\(.name)\t\(.usage)"' <<<"$output")" "$want"
	assert_equal "$(cut -f1 "$BATS_FILE_TMPDIR/usage.tsv")" "$(commands)"
}

@test "every test SECURITY.md names (NNNN \"title\") exists in tests/NNNN-*.bats" {
	run python3 - "$PL_TOP" <<-'PY'
		import glob, re, sys
		top = sys.argv[1]
		text = " ".join(open(top + "/SECURITY.md").read().split())
		refs = re.findall(r'\b(\d{4}) ((?:"[^"]+"(?:, )?)+)', text)
		missing, n = [], 0
		for code, quoted in refs:
		    files = glob.glob(f"{top}/tests/{code}-*.bats")
		    titles = set()
		    for f in files:
		        titles |= set(re.findall(r'^@test "(.*)" \{$', open(f).read(), re.M))
		    for title in re.findall(r'"([^"]+)"', quoted):
		        n += 1
		        if title.replace('\\"', '"') not in titles:
		            missing.append(f'{code} "{title}"')
		print(n)
		print("\n".join(missing))
		sys.exit(1 if missing or n == 0 else 0)
	PY
	assert_success
	[ "${lines[0]}" -ge 30 ] || fail "only ${lines[0]} tests named"
}
