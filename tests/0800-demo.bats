#!/usr/bin/env bats
# make demo, the way a newcomer first runs it: from a clone inside a 0700 directory (root's home
# on Debian), as root, twice (the second run reuses what the first made); then make sandbox, to
# keep exploring, from the same kind of clone.
bats_require_minimum_version 1.5.0
load helpers/common

setup() {
	home=$BATS_TEST_TMPDIR/home
	mkdir -m 700 "$home"
	proj=$home/parlae
	mkdir -p "$proj/tests"
	# What the demo and the sandbox read of a clone (sql/roles.sql: the demo grants the roles).
	cp -r "$PL_TOP/sql" "$proj/"
	cp -r "$PL_TOP/tests/demo" "$PL_TOP/tests/sandbox" "$PL_TOP/tests/helpers" "$PL_TOP/tests/fakes" \
		"$proj/tests/"
}

teardown() {
	# A test that failed half way must not leave the sandbox running.
	if [ -x "$proj/tests/sandbox" ]; then "$proj/tests/sandbox" stop >/dev/null 2>&1 || true; fi
	# The cluster of a clone the server cannot reach lives outside it (see sb_place_pgdir).
	[ -L "$proj/.demo/pg" ] && rm -rf "$(readlink -f "$proj/.demo/pg")"
	rm -rf "$proj/.demo"
}

@test "make demo works from a clone in a 0700 directory, and again on a second run; it applies every migration, as parlae(1) and parlae-db(1) show" {
	run --separate-stderr "$proj/tests/demo"
	assert_success
	assert_output --partial "created a new cluster"
	assert_output --partial "connected happy-dental: Happy Teeth Dental (Dentrix, office D36225)"
	assert_output --partial '"message": "I found your record."'
	assert_output --partial "audit log intact:"
	# The waiter was seen listening (not given up on after 5 s of polling).
	assert_output --partial $'(waiting in the background)\n'
	# It applies every migration of sql/, and the examples of parlae(1) and parlae-db(1) show
	# that same list.
	want=$(cd "$PL_TOP/sql" && ls [0-9][0-9][0-9][0-9]-*.sql | sed 's/\.sql$//; s/^/applied /')
	assert_equal "$(grep '^applied ' <<<"$output")" "$want"
	for page in parlae.1 parlae-db.1; do
		shown=$(LC_ALL=C MANWIDTH=200 man -P cat -l "$PL_TOP/man/$page")
		assert_equal "$(sed -n 's/^ *\(applied .*\)/\1/p' <<<"$shown")" "$want"
	done
	# parlae-db(1)'s db status and --dry-run too.
	assert_equal "$(sed -n 's/^ *would apply /applied /p' <<<"$shown")" "$want"
	assert_equal "$(sed -n 's/^ *\([0-9]\{4\}\) \+\([^ ]*\) \+pending .*/applied \1-\2/p' <<<"$shown")" "$want"
	# The latest migration's number (numbers may be reserved and not yet used).
	assert_regex "$shown" "schema is current \(version $(tail -n 1 <<<"$want" | sed 's/^applied 0*\([0-9]*\)-.*/\1/')\)"
	if [ "$(id -u)" = 0 ]; then
		# The server runs as nobody, which cannot enter $home: the cluster is kept elsewhere.
		[ -L "$proj/.demo/pg" ]
		assert_equal "$(stat -c %U "$(readlink -f "$proj/.demo/pg")/data")" nobody
	fi
	run --separate-stderr "$proj/tests/demo"
	assert_success
	assert_output --partial "reusing the cluster"
	assert_output --partial "(it answered at once: happy-dental is still connected from an earlier run)"
}

# In a new shell from another directory, as a user would: source .demo/env, then `parlae ARGS`.
in_env() {
	bash -c 'cd / && . "$1/.demo/env" && shift && parlae "$@"' _ "$proj" "$@"
}

# The result of the first tool call of a reply, as JSON.
first_result() { jq -r '.results[0].result' <<<"$1"; }

@test "make sandbox after the demo: parlae works from .demo/env, a tool call for the practice too, after a restart too; stop leaves nothing running" {
	run --separate-stderr "$proj/tests/demo"
	assert_success
	assert_output --partial $'$ make sandbox\n$ . .demo/env\n'

	run --separate-stderr "$proj/tests/sandbox"
	assert_success
	assert_output --partial "  . .demo/env"
	env1=$(cat "$proj/.demo/env")
	# No secret in .demo/env: it reads each from its 0600 file.
	for f in master-key state-secret sikka-app-key twilio-auth-token; do
		assert_equal "$(stat -c %a "$proj/.demo/$f")" 600
		grep -qF "$(cat "$proj/.demo/$f")" "$proj/.demo/env" && fail ".demo/env holds the value of $f"
		grep -qF "\$(cat $proj/.demo/$f)" "$proj/.demo/env" || fail ".demo/env does not read $f"
	done
	run --separate-stderr bash -c 'cd / && . "$1/.demo/env" && command -v parlae' _ "$proj"
	assert_success
	assert_output "$proj/.demo/bin/parlae"

	run --separate-stderr in_env vapi tool invoke getPatientInfo --account happy-dental --args '{"query":"Ana Diaz"}'
	assert_success
	assert_equal "$(first_result "$output" | jq -c '[.success, .found, .patient.firstName]')" '[true,true,"Ana"]'
	# A transfer texts the staff number through the fake Twilio.
	run --separate-stderr in_env vapi tool invoke transferToHuman --account happy-dental --args '{"reason":"a billing question"}'
	assert_success
	assert_equal "$(first_result "$output" | jq -r '.success')" true
	twilio=$(bash -c '. "$1/.demo/env" && echo "$TWILIO_API_URL"' _ "$proj")
	assert_equal "$(curl -sS "$twilio/__fake/messages" | jq -r '.[0].to')" +15550002000
	run --separate-stderr in_env status --check
	assert_success

	# Restarted, the fake Sikka still knows the practice and parlae's keys (no API2007), and the
	# services come back where they were, so a shell that sourced .demo/env keeps working.
	run --separate-stderr "$proj/tests/sandbox" start
	assert_success
	assert_output --partial "(it was running: restarted)"
	assert_equal "$(cat "$proj/.demo/env")" "$env1"
	run --separate-stderr in_env vapi tool invoke getPatientInfo --account happy-dental --args '{"query":"Ana Diaz"}'
	assert_success
	assert_equal "$(first_result "$output" | jq -c '[.success, .found, .patient.firstName]')" '[true,true,"Ana"]'

	pids=$(cat "$proj/.demo/sandbox/sikka.pid" "$proj/.demo/sandbox/twilio.pid")
	data=$(readlink -f "$proj/.demo/pg")/data
	pgpid=$(head -n 1 "$data/postmaster.pid")
	run --separate-stderr "$proj/tests/sandbox" stop
	assert_success
	assert_output "sandbox stopped; the data stays in .demo/"
	for pid in $pids $pgpid; do
		# A zombie has stopped (this machine's init may be slow to reap the orphans).
		st=$(ps -o stat= -p "$pid") || continue
		[[ $st == Z* ]] || fail "process $pid is still running: $(ps -o pid,stat,args -p "$pid")"
	done
	run pgrep -f "$proj/tests/fakes/"
	assert_failure 1
	[ ! -e "$data/postmaster.pid" ] || fail "PostgreSQL left its postmaster.pid"
	[ ! -e "$proj/.demo/env" ] || fail ".demo/env is still there"
	run --separate-stderr "$proj/tests/sandbox" stop
	assert_success
	assert_output "the sandbox is not running"
}

@test "make sandbox before any demo says to run make demo first, and starts nothing" {
	run --separate-stderr "$proj/tests/sandbox"
	assert_failure 1
	assert_equal "$output" ""
	assert_equal "$stderr" "sandbox: nothing to explore yet: run 'make demo' first (it onboards the practice the sandbox serves)"
	[ ! -e "$proj/.demo/env" ] || fail ".demo/env was written"
	run pgrep -f "$proj/tests/fakes/"
	assert_failure 1
}
