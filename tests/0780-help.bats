#!/usr/bin/env bats
# Help that helps: `CMD -h` from the command table (options, defaults, examples, 80 columns),
# `parlae help CMD` opening the manual page when man can find it, the man pages' OPTIONS held
# to the table, and "did you mean" wherever a name is typed.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi
load helpers/man

setup_file() {
	vapi_setup_file
	man_render_all
}
teardown_file() { vapi_teardown_file; }
setup() {
	vapi_setup
	export MANWIDTH=200 LC_ALL=C.UTF-8
	unset MANPAGER PAGER MANROFFOPT MAN_KEEP_FORMATTING MANOPT MANPATH
	bin=$BATS_TEST_TMPDIR/fakebin
	mkdir -p "$bin"
}

commands() { parlae --list-cmds; }

# Holds the OPTIONS section of each man page to the command table of `parlae help --json` (on
# stdin): every option of a page's commands is there with the same default (or none), and every
# option there is one of theirs. Prints what disagrees and exits 1.
check_man_options() {
	python3 -c "$(cat <<-'PY'
		import json, os, re, subprocess, sys
		top, rendered, doc = sys.argv[1], sys.argv[2], json.load(sys.stdin)
		pages, bad = {}, []
		for c in doc["commands"]:
		    pages.setdefault(c["manPage"], []).append(c)
		for page, cmds in sorted(pages.items()):
		    # Each page as man shows it, rendered once in setup_file (helpers/man.bash).
		    cache = f"{rendered}/{page}.1"
		    if os.path.isfile(f"{cache}.rc") and open(f"{cache}.rc").read().strip() == "0":
		        with open(f"{cache}.out", encoding="utf-8") as f:
		            text = f.read()
		    else:
		        text = subprocess.run(["man", "-P", "cat", "-l", f"{top}/man/{page}.1"],
		                              capture_output=True, text=True, check=True).stdout
		    lines, on = [], False
		    for line in text.splitlines():
		        if line and not line[0].isspace():
		            on = line == "OPTIONS"
		        elif on:
		            lines.append(line[7:] if line.startswith("       ") else line.strip())
		    # An item's tag starts at the margin with an option; its text follows, indented.
		    items = []
		    for line in lines:
		        if line.startswith("-"):
		            parts = re.split(r"\s{2,}", line, maxsplit=1)
		            items.append([set(re.findall(r"--[a-z][a-z-]*", parts[0])), parts[1:]])
		        elif items and line.strip():
		            if line[0].isspace():
		                items[-1][1].append(line.strip())
		            else:
		                items.append([set(), []])
		    documented = {n: " ".join(" ".join(b).split()) for names, b in items for n in names}
		    table = set()
		    for c in cmds:
		        for o in c["optionHelp"]:
		            table.add(o["name"])
		            body, d = documented.get(o["name"]), o["default"]
		            if body is None:
		                bad.append(f"{page}: {c['name']} {o['name']} is not in OPTIONS")
		            elif d is not None and not re.search(
		                    r"\bdefault (is )?" + re.escape(d) + r"(?![\w/-])", body, re.I):
		                bad.append(f"{page}: {o['name']}: default {d} in the table; OPTIONS: {body}")
		            elif d is None and re.search(r"\bdefault\b", body, re.I):
		                bad.append(f"{page}: {o['name']}: no default in the table; OPTIONS: {body}")
		    for n in sorted(set(documented) - table):
		        bad.append(f"{page}: OPTIONS documents {n}, which none of its commands has")
		print("\n".join(bad))
		sys.exit(1 if bad else 0)
	PY
	)" "$PL_TOP" "$BATS_FILE_TMPDIR/man"
}

# A copy of parlae with no manual page beside it, as installed in PREFIX/bin.
lone_parlae() {
	mkdir -p "$BATS_TEST_TMPDIR/prefix/bin"
	cp "$(readlink -f "$PARLAE_BIN")" "$BATS_TEST_TMPDIR/prefix/bin/parlae"
	echo "$BATS_TEST_TMPDIR/prefix/bin/parlae"
}

# A man(1) that finds every page ("man -w") and records how it was asked to show one.
fake_man() {
	cat >"$bin/man" <<-'SH'
		#!/bin/sh
		if [ "$1" = -w ]; then echo "/usr/share/man/man1/$2.1.gz"; exit 0; fi
		echo "$*" >>"${0%/*}/man.log"
		echo "the manual, as man shows it"
	SH
	chmod +x "$bin/man"
}

@test "every CMD -h, the overview and every group's list fit in 80 columns" {
	lone=$(lone_parlae)
	while read -r cmd; do
		run --separate-stderr parlae $cmd -h
		assert_success
		long=$(awk 'length > 80' <<<"$output")
		[ -z "$long" ] || fail "parlae $cmd -h has lines over 80 columns:"$'\n'"$long"
	done < <(commands)
	for group in $(commands | awk 'NF > 1 { print $1 }' | sort -u); do
		MANPATH=$BATS_TEST_TMPDIR run --separate-stderr "$lone" help "$group"
		assert_success
		assert_line --index 0 "usage:"
		assert_equal "$(awk 'length > 80' <<<"$output")" ""
	done
	run --separate-stderr parlae --help
	assert_success
	assert_equal "$(awk 'length > 80' <<<"$output")" ""
	# The longest command name no longer runs into its summary.
	assert_line "  vapi tool invoke   run a voice-agent tool call through parlae's handlers, or"
}

@test "GROUP -h lists the group's subcommands; GROUP alone is still a usage error" {
	run --separate-stderr parlae db -h
	assert_success
	assert_equal "${lines[0]}" "usage:"
	assert_equal "${lines[1]}" "  parlae db migrate"
	assert_equal "${lines[2]}" "      apply the schema migrations compiled into parlae"
	assert_line "'parlae db SUBCOMMAND -h' for a subcommand's options and examples."
	run --separate-stderr parlae vapi tool --help
	assert_success
	assert_line --index 2 "         [--call-id ID] [--caller E164] | --payload FILE|- [--target URL [--auth"
	run --separate-stderr parlae db
	assert_failure 2
	assert_equal "$stderr" "parlae: 'parlae db' needs a subcommand: migrate, status"
}

@test "status -h lists its options with their values, meanings and defaults, and examples" {
	run --separate-stderr parlae status -h
	assert_success
	assert_equal "${lines[0]}" "usage: parlae status [ACCOUNT] [--wait[=SECONDS]] [--check]"
	assert_line "options:"
	assert_line "      --check             exit 1 unless all is healthy (with ACCOUNT: connected)"
	assert_line "      --wait[=SECONDS]    with ACCOUNT: wait until it is connected or failed, at"
	assert_line "                          most SECONDS, 0 to 86400 (default 60)"
	assert_line "examples:"
	assert_line '  $ parlae status happy-dental --wait 900'
	refute_output --partial "man parlae-status"
}

@test "a long usage line is wrapped, and short options are shown with their long ones" {
	run --separate-stderr parlae vapi tool invoke -h
	assert_success
	assert_line --index 0 "usage: parlae vapi tool invoke (TOOL [--account ACCOUNT] [--args JSON|@FILE|-]"
	assert_line --index 1 "       [--call-id ID] [--caller E164] | --payload FILE|- [--target URL [--auth"
	assert_line "      --auth secret|hmac|bearer"
	assert_line "                            how a --target request is authenticated (default"
	run --separate-stderr parlae audit tail -h
	assert_success
	assert_line "  -n, --lines N             the last N events, or the first N after the cursor"
	assert_line "  -f, --follow              follow new events as they commit, until interrupted"
}

@test "every option of the table is documented for -h, and -h shows each with its default" {
	run --separate-stderr parlae help --json
	assert_success
	json=$output
	# The table's own checks for every command at once (four jq per command were ~4 s of CPU):
	# optionHelp names the options, in order, and gives each a meaning.
	assert_equal "$(jq -r '.commands[] | select([.optionHelp[].name] != .options) | .name' <<<"$json")" ""
	assert_equal "$(jq -r '.commands[] | select(any(.optionHelp[]; (.meaning // "") == "")) | .name' <<<"$json")" ""
	# COMMAND, option and default, one option a line.
	jq -r '.commands[] | .name as $c | .optionHelp[] | [$c, .name, .default // ""] | @tsv' <<<"$json" \
		>"$BATS_TEST_TMPDIR/options"
	while read -r cmd; do
		help=$(parlae $cmd -h | tr -s ' \n' '  ')
		while IFS=$'\t' read -r c name dflt; do
			[ "$c" = "$cmd" ] || continue
			[[ $help == *"$name"* ]] || fail "parlae $cmd -h does not show $name"
			[ -z "$dflt" ] || [[ $help == *"(default $dflt)"* ]] ||
				fail "parlae $cmd -h does not show $name's default $dflt"
		done <"$BATS_TEST_TMPDIR/options"
	done < <(commands)
}

@test "every command has one to three examples, each a parlae command line" {
	run --separate-stderr parlae help --json
	assert_success
	assert_equal "$(jq '[.commands[] | .examples | length | select(. < 1 or . > 3)] | length' <<<"$output")" 0
	assert_equal "$(jq -r '.commands[].examples[]' <<<"$output" | grep -cv '^parlae \|^    ')" 0
	while read -r cmd; do
		n=$(parlae $cmd -h | grep -c '^  \$ parlae ')
		[ "$n" -ge 1 ] && [ "$n" -le 3 ] || fail "parlae $cmd -h shows $n examples"
	done < <(commands)
}

@test "every option in the table is in its man page's OPTIONS with the same default, and vice versa" {
	run --separate-stderr parlae help --json
	assert_success
	json=$output
	run --separate-stderr check_man_options <<<"$json"
	assert_success
	assert_output ""
}

@test "the man page check fails on a default, an option or an item that disagrees" {
	json=$(parlae help --json)
	run --separate-stderr check_man_options <<<"$(jq -c '(.commands[] | select(.name == "status")
		| .optionHelp[] | select(.name == "--wait") | .default) = "30"' <<<"$json")"
	assert_failure 1
	assert_output --regexp "^parlae-status: --wait: default 30 in the table; OPTIONS: .*\(default 60;"
	run --separate-stderr check_man_options <<<"$(jq -c '(.commands[] | select(.name == "vapi phone add")
		| .optionHelp) += [{"name":"--bogus","default":null}]' <<<"$json")"
	assert_failure 1
	assert_output "parlae-vapi: vapi phone add --bogus is not in OPTIONS"
	run --separate-stderr check_man_options <<<"$(jq -c '(.commands[] | select(.name == "sikka callback")
		| .optionHelp) |= .[1:]' <<<"$json")"
	assert_failure 1
	assert_output "parlae-sikka: OPTIONS documents --url, which none of its commands has"
}

@test "parlae help COMMAND opens the page beside the binary with man -l" {
	fake_man
	PATH=$bin:$PATH run --separate-stderr parlae help status
	assert_success
	assert_output "the manual, as man shows it"
	run cat "$bin/man.log"
	assert_output --regexp '^-l /.*/man/parlae-status\.1$'
	page=${output#-l }
	[ "$page" -ef "$PL_TOP/man/parlae-status.1" ] || fail "man -l was given $page"
	# A group opens its page too, and so does the real man: the page itself is shown.
	PATH=$bin:$PATH run --separate-stderr parlae help vapi
	assert_success
	assert_equal "$(tail -n1 "$bin/man.log")" "-l ${page%/*}/parlae-vapi.1"
	run --separate-stderr parlae help status
	assert_success
	assert_line --index 0 --regexp '^PARLAE-STATUS\(1\) +parlae manual +PARLAE-STATUS\(1\)$'
	assert_line --regexp '^       --wait\[=SECONDS\]$'
}

@test "with no page beside the binary, parlae help COMMAND opens the installed page" {
	fake_man
	lone=$(lone_parlae)
	PATH=$bin:$PATH run --separate-stderr "$lone" help vapi tool invoke
	assert_success
	assert_output "the manual, as man shows it"
	assert_equal "$(cat "$bin/man.log")" "parlae-vapi"
	# The page of an installation prefix that man does not search is shown from its file.
	mkdir -p "$BATS_TEST_TMPDIR/prefix/share/man/man1"
	cp "$PL_TOP/man/parlae-db.1" "$BATS_TEST_TMPDIR/prefix/share/man/man1/"
	PATH=$bin:$PATH run --separate-stderr "$lone" help db migrate
	assert_success
	assert_equal "$(tail -n1 "$bin/man.log")" "-l $BATS_TEST_TMPDIR/prefix/bin/../share/man/man1/parlae-db.1"
}

@test "without a manual, parlae help COMMAND prints exactly what COMMAND -h prints, naming no manual" {
	lone=$(lone_parlae)
	mkdir -p "$BATS_TEST_TMPDIR/noman"
	while read -r cmd; do
		MANPATH=$BATS_TEST_TMPDIR/noman run --separate-stderr "$lone" help $cmd
		assert_success
		assert_equal "$output" "$(MANPATH=$BATS_TEST_TMPDIR/noman "$lone" $cmd -h)"
		assert_line --index 0 --regexp "^usage: parlae $cmd( |\$)"
		refute_output --partial "man parlae"
		refute_output --partial "The manual"
	done < <(commands)
	# No man at all: the same text.
	run --separate-stderr env PATH="$BATS_TEST_TMPDIR/noman" "$lone" help status
	assert_success
	assert_equal "$output" "$(MANPATH=$BATS_TEST_TMPDIR/noman "$lone" status -h)"
	# In a clone, -h says where the manual is.
	run --separate-stderr parlae status -h
	assert_success
	assert_equal "${lines[${#lines[@]} - 1]}" "The manual: 'parlae help status'."
}

@test "parlae help --json describes each option and gives the examples and the page" {
	run --separate-stderr parlae help status --json
	assert_success
	assert_equal "$(jq -c '[.optionHelp[] | select(.name == "--wait")][0]' <<<"$output")" \
		'{"name":"--wait","short":null,"arg":"SECONDS","argOptional":true,"meaning":"with ACCOUNT: wait until it is connected or failed, at most SECONDS, 0 to 86400","default":"60"}'
	assert_equal "$(jq -r '.manPage, (.examples | length)' <<<"$output")" $'parlae-status\n3'
	run --separate-stderr parlae help audit tail --json
	assert_success
	assert_equal "$(jq -c '.optionHelp[0] | [.name, .short, .arg, .default]' <<<"$output")" '["--lines","-n","N","20"]'
}

# --- did you mean --------------------------------------------------------------------------

@test "a mistyped option names the nearest option of the command or the global ones" {
	run --separate-stderr parlae status --jsn
	assert_failure 2
	assert_equal "$stderr" "parlae: unknown option '--jsn'; did you mean '--json'? (usage: parlae status [ACCOUNT] [--wait[=SECONDS]] [--check])"
	run --separate-stderr parlae account add x --nmae=X
	assert_failure 2
	assert_regex "$stderr" "^parlae: unknown option '--nmae=X'; did you mean '--name'\\? \\(usage: "
	run --separate-stderr parlae status happy --wiat
	assert_failure 2
	assert_regex "$stderr" "^parlae: unknown option '--wiat'; did you mean '--wait'\\?"
	run --separate-stderr parlae --jsn version
	assert_failure 2
	assert_equal "$stderr" "parlae: unknown option '--jsn'; did you mean '--json'? (see 'parlae help')"
	# Nothing near: no guess.
	run --separate-stderr parlae status --frobnicate
	assert_failure 2
	assert_regex "$stderr" "^parlae: unknown option '--frobnicate' \\(usage: "
	# A flag given a value says so.
	run --separate-stderr parlae status --check=yes
	assert_failure 2
	assert_regex "$stderr" "^parlae: option '--check' takes no value \\(usage: "
}

@test "status ACCOUNT --wait 30, with a space, is --wait=30" {
	run --separate-stderr parlae status happy --wait 30 --json
	assert_success
	assert_equal "$(jq -r .status <<<"$output")" connected
	run --separate-stderr parlae status --wait 2.5 happy
	assert_success
	assert_line "status        connected"
	# A word that is not a number is the account; a number out of range is refused.
	run --separate-stderr parlae status --wait happy
	assert_success
	run --separate-stderr parlae status happy --wait 90000
	assert_failure 2
	assert_regex "$stderr" "^parlae: --wait takes a number of seconds, not '90000'"
	run --separate-stderr parlae status --wait 30
	assert_failure 2
	assert_regex "$stderr" "^parlae: --wait needs an ACCOUNT"
}

@test "a mistyped account names the nearest account; with none near, how to create it" {
	parlae account add happy-dental >/dev/null
	run --separate-stderr parlae status happy-dentl
	assert_failure 5
	assert_equal "$stderr" "parlae: no account 'happy-dentl'; did you mean 'happy-dental'?"
	run --separate-stderr parlae sikka oauth-url hapyp-dental
	assert_failure 5
	assert_equal "$stderr" "parlae: no account 'hapyp-dental'; did you mean 'happy-dental'?"
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account hapy --args '{}'
	assert_failure 5
	assert_equal "$stderr" "parlae: no account 'hapy'; did you mean 'happy'?"
	run --separate-stderr parlae pms setup zzz-clinic --json
	assert_failure 5
	assert_equal "$stderr" '{"error":{"code":"not_found","message":"no account '"'zzz-clinic'"'","hint":"create it with '"'parlae account add zzz-clinic'"'"}}'
}

@test "a mistyped key in the config file names the nearest setting" {
	cfg=$BATS_TEST_TMPDIR/config
	printf 'SIKKA_APP_DI = x\n' >"$cfg"
	run --separate-stderr parlae --config "$cfg" status
	assert_failure 3
	assert_equal "$stderr" "parlae: $cfg:1: unknown setting 'SIKKA_APP_DI'; did you mean 'SIKKA_APP_ID'?"
	printf '# ok\napp_base_url = https://x.example\n' >"$cfg"
	run --separate-stderr parlae --config "$cfg" status
	assert_failure 3
	assert_equal "$stderr" "parlae: $cfg:2: unknown setting 'app_base_url'; did you mean 'APP_BASE_URL'?"
	printf 'SIKKA_APP_KY = not-printed\n' >"$cfg"
	run --separate-stderr parlae --config "$cfg" status
	assert_failure 3
	assert_equal "$stderr" "parlae: $cfg:1: unknown setting 'SIKKA_APP_KY'; did you mean 'SIKKA_APP_KEY'? (SIKKA_APP_KEY is a secret: set it in the environment, not in this file)"
	printf 'NOTHING_LIKE_IT = 1\n' >"$cfg"
	run --separate-stderr parlae --config "$cfg" status
	assert_failure 3
	assert_equal "$stderr" "parlae: $cfg:1: unknown setting 'NOTHING_LIKE_IT'"
}

@test "an unknown tool lists the tools" {
	run --separate-stderr parlae vapi tool invoke bookAppt --account happy --args '{}'
	assert_failure 5
	assert_equal "$(jq -r '.results[0].error' <<<"$output")" \
		"unknown tool 'bookAppt'; the tools are getPatientInfo, checkAvailability, bookAppointment, transferToHuman, getAppointments, rescheduleAppointment, cancelAppointment, createPatient, takeMessage"
}

@test "--args naming a file without @ says how to read it" {
	f=$BATS_TEST_TMPDIR/args.json
	echo '{"query":"Ana Diaz"}' >"$f"
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args "$f"
	assert_failure 65
	assert_output ""
	assert_regex "$stderr" "^parlae: .* \\(to read a file, use --args @$f\\)\$"
	# Text that names no file gets no such hint.
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --args "{nope"
	assert_failure 65
	refute_regex "$stderr" "to read a file"
}
