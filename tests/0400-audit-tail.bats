#!/usr/bin/env bats
# parlae audit tail: the last N, the filters, --since, the output shapes, --cursor-file, and -f
# following concurrent writers across a lost connection (architecture invariant 6).
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
	suite_migrate
}
setup() {
	setup_home
	export TZ=UTC
}

teardown() {
	local f pid
	# A follower left behind by a failed test must not outlive it.
	for f in "$BATS_TEST_TMPDIR"/*/pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
	done
	return 0
}

# A database of this test's own, migrated (event 1 is db.migrate).
fresh_db() {
	export PARLAE_DATABASE_URL
	PARLAE_DATABASE_URL=$(pg_new_app_database "t_0400_$1")
}

# N events named PREFIX.01, PREFIX.02, ... in one transaction; accounts alternate alpha, beta.
seed() { # PREFIX N
	sql "INSERT INTO audit_events (actor, host, account_id, action, resource_type, resource_id, outcome, error_code)
		SELECT 'ops@test', 'testhost', CASE WHEN i % 2 = 1 THEN 'alpha' ELSE 'beta' END,
		       '$1.' || lpad(i::text, 2, '0'), 'thing', 'r' || i,
		       CASE WHEN i % 5 = 0 THEN 'failure' ELSE 'success' END,
		       CASE WHEN i % 5 = 0 THEN 'upstream' END
		FROM generate_series(1, $2) i" >/dev/null
}

head_seq() { sql "SELECT seq FROM audit_chain_head"; }
iso_of() { sql "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM audit_events WHERE seq = $1"; }

# The sequence numbers (first field) of plain or JSON output.
seqs() { if [[ ${1:0:1} == "{" ]]; then jq -r .seq <<<"$1"; else cut -f1 <<<"$1"; fi; }

# --- followers ---------------------------------------------------------------------------------

# Start `parlae audit tail -f ARGS` in the background with SIGINT at its default (a background job
# of a script ignores it otherwise); stdout, stderr and the exit status go to DIR. Returns once
# it has run LISTEN and read what was there.
follow_start() { # DIR ARGS...
	local dir=$1 i
	shift
	mkdir -p "$dir"
	rm -f "$dir/rc"
	(
		env --default-signal=INT parlae audit tail -f "$@" >"$dir/out" 2>"$dir/err" &
		echo $! >"$dir/pid"
		rc=0
		wait $! || rc=$?
		echo $rc >"$dir/rc"
	) 3>&- &
	for i in $(seq 1 200); do
		[ -s "$dir/pid" ] && [ "$(follower_idle)" -ge 1 ] && return 0
		[ -f "$dir/rc" ] && break
		sleep 0.05
	done
	echo "the follower did not start: $(cat "$dir/err")" >&2
	return 1
}

# How many followers of this database are idle after their first read (LISTEN comes first):
# connections named for the command (or FOLLOWER_APP, the name the test gave them).
follower_idle() {
	sql "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND application_name = '${FOLLOWER_APP:-parlae audit tail}' AND state = 'idle'
		AND query NOT LIKE 'LISTEN%'"
}

wait_lines() { # DIR N: until the follower has printed N lines (at most 20 s)
	local i
	for i in $(seq 1 400); do
		[ "$(wc -l <"$1/out")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "the follower printed $(wc -l <"$1/out") lines, not $2; stderr: $(cat "$1/err")" >&2
	return 1
}

follow_stop() { # DIR [SIGNAL]: Ctrl-C (or SIGNAL), then its exit status
	local i
	kill -"${2:-INT}" "$(cat "$1/pid")"
	for i in $(seq 1 200); do
		[ -s "$1/rc" ] && break
		sleep 0.05
	done
	rm -f "$1/pid"
	cat "$1/rc"
}

# --- the last N --------------------------------------------------------------------------------

@test "tail prints the last 20 events, oldest first, one tab-separated line each" {
	fresh_db last
	seed seed 30
	run --separate-stderr parlae audit tail
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(seqs "$output")" "$(seq 12 31)"
	assert_equal "${lines[19]}" "31	$(iso_of 31)	ops@test	testhost	beta	seed.30	thing	r30	failure	upstream"
	assert_equal "${lines[0]}" "12	$(iso_of 12)	ops@test	testhost	alpha	seed.11	thing	r11	success	-"
}

@test "tail -n N prints the last N; -n larger than the log prints it all; -n 0 prints nothing" {
	fresh_db n
	seed seed 10
	run --separate-stderr parlae audit tail -n 3
	assert_success
	assert_equal "$(seqs "$output")" "$(seq 9 11)"
	run --separate-stderr parlae audit tail -n 1000
	assert_success
	assert_equal "$(seqs "$output")" "$(seq 1 11)"
	assert_equal "${lines[0]}" "1	$(iso_of 1)	$(sql "SELECT actor FROM audit_events WHERE seq = 1")	$(hostname)	-	db.migrate	schema	9	success	-"
	run --separate-stderr parlae audit tail -n 0
	assert_success
	assert_equal "$output" ""
	assert_equal "$stderr" ""
}

@test "a database without the schema says to migrate; a filter that matches nothing prints nothing" {
	export PARLAE_DATABASE_URL
	PARLAE_DATABASE_URL=$(pg_new_database t_0400_empty)
	run --separate-stderr parlae audit tail
	assert_equal "$status" 7
	assert_equal "$output" ""
	assert_regex "$stderr" "run 'parlae db migrate'"
	PARLAE_DATABASE_URL=$(pg_migrate_as_app "$PARLAE_DATABASE_URL")
	run --separate-stderr parlae audit tail --action 'nothing.*'
	assert_success
	assert_equal "$output" ""
	assert_equal "$stderr" ""
}

@test "bad -n, account, since or extra arguments are usage errors" {
	run --separate-stderr parlae audit tail -n -1
	assert_equal "$status" 2
	assert_equal "$output" ""
	assert_regex "$stderr" "^parlae: -n takes a number of events, not '-1' \(usage: parlae audit tail "
	run --separate-stderr parlae audit tail -n ten
	assert_equal "$status" 2
	run --separate-stderr parlae audit tail --account 'Bad Id'
	assert_equal "$status" 2
	assert_regex "$stderr" "^parlae: invalid account id 'Bad Id'"
	run --separate-stderr parlae audit tail --since 5x
	assert_equal "$status" 2
	assert_regex "$stderr" "^parlae: --since takes ISO 8601 or a duration, not '5x'"
	run --separate-stderr parlae audit tail --since 2026-13-01
	assert_equal "$status" 2
	run --separate-stderr parlae audit tail --since 2026-02-30T10:00Z
	assert_equal "$status" 2
	run --separate-stderr parlae audit tail extra
	assert_equal "$status" 2
	assert_regex "$stderr" "^parlae: unexpected argument 'extra'"
	run --separate-stderr parlae audit verify extra
	assert_equal "$status" 2
	run --separate-stderr parlae audit tail --json -n x
	assert_equal "$status" 2
	assert_equal "$(jq -r .error.code <<<"$stderr")" "usage"
}

# --- filters -----------------------------------------------------------------------------------

@test "--account keeps one account's events" {
	fresh_db account
	seed seed 10
	run --separate-stderr parlae audit tail --account beta
	assert_success
	assert_equal "$(seqs "$output")" "$(printf '%s\n' 3 5 7 9 11)"
	assert_equal "$(cut -f5 <<<"$output" | sort -u)" "beta"
	run --separate-stderr parlae audit tail --account beta -n 2
	assert_equal "$(seqs "$output")" "$(printf '%s\n' 9 11)"
	run --separate-stderr parlae audit tail --account gamma
	assert_success
	assert_equal "$output" ""
}

@test "--action takes a glob: * and ? are wildcards, % and _ match themselves" {
	fresh_db action
	seed seed 12
	for a in 'pct%x' 'pctax' 'under_x' 'underax' 'star*' 'starx' 'q?' 'qx'; do
		sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('o', 'h', '$a', 'success')" >/dev/null
	done
	acts() { parlae audit tail -n 100 --action "$1" | cut -f6 | paste -sd' '; }
	assert_equal "$(acts 'seed.1?')" "seed.10 seed.11 seed.12"
	assert_equal "$(acts 'seed.0*')" "seed.01 seed.02 seed.03 seed.04 seed.05 seed.06 seed.07 seed.08 seed.09"
	assert_equal "$(acts 'pct%x')" "pct%x"
	assert_equal "$(acts 'pct%*')" "pct%x"
	assert_equal "$(acts 'under_x')" "under_x"
	assert_equal "$(acts 'under?x')" "under_x underax"
	assert_equal "$(acts 'under_')" ""
	assert_equal "$(acts 'under??')" "under_x underax"
	assert_equal "$(acts 'star\*')" "star*"
	assert_equal "$(acts 'q\?')" "q?"
	assert_equal "$(acts '%')" ""
	assert_equal "$(acts '*.add')" ""
	assert_equal "$(acts 'db.*')" "db.migrate"
	run --separate-stderr parlae audit tail --action 'seed.1?' --account alpha
	assert_equal "$(cut -f6 <<<"$output" | paste -sd' ')" "seed.11"
}

@test "--since takes ISO 8601 in UTC or with an offset, and includes that instant" {
	fresh_db since_iso
	seed early 5
	sleep 0.01
	seed late 5
	t=$(iso_of 7)
	run --separate-stderr parlae audit tail --since "$t"
	assert_success
	assert_equal "$(seqs "$output")" "$(seq 7 11)"
	# The same instant two hours east of UTC.
	t2=$(sql "SELECT to_char(occurred_at AT TIME ZONE 'Etc/GMT-2', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+02:00\"') FROM audit_events WHERE seq = 7")
	run --separate-stderr parlae audit tail --since "$t2"
	assert_equal "$(seqs "$output")" "$(seq 7 11)"
	run --separate-stderr parlae audit tail --since "$t2" -n 2
	assert_equal "$(seqs "$output")" "$(seq 10 11)"
	run --separate-stderr parlae audit tail --since 2000-01-01
	assert_equal "$(seqs "$output")" "$(seq 1 11)"
	run --separate-stderr parlae audit tail --since 2999-01-01T00:00Z
	assert_success
	assert_equal "$output" ""
}

@test "--since takes a duration before now: 2s, 1h30m, 1d" {
	fresh_db since_dur
	seed old 3
	sleep 3
	seed new 2
	run --separate-stderr parlae audit tail --since 2s
	assert_success
	assert_equal "$(cut -f6 <<<"$output" | paste -sd' ')" "new.01 new.02"
	for d in 1h30m 1d 90s 15m; do
		run --separate-stderr parlae audit tail --since "$d"
		assert_equal "$(seqs "$output")" "$(seq 1 6)"
	done
}

# --- output shapes -----------------------------------------------------------------------------

@test "--json prints one compact JSON object per event, in the contract's shape and order" {
	fresh_db json
	sql "INSERT INTO audit_events (actor, host, account_id, action, resource_type, resource_id, outcome, error_code, metadata)
		VALUES (E'ops \"q\"\\tx', 'h', 'happy', 'sikka.callback', 'pms_integration', 'parlae/pms/sikka/happy', 'denied', 'security',
		        '{\"officeId\": \"D36225\", \"n\": [1, 2], \"s\": \"a b\\\"c\\n\", \"u\": \"Ünï\"}')" >/dev/null
	run --separate-stderr parlae audit tail -n 1 --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 1
	assert_equal "$output" "{\"seq\":2,\"occurredAt\":\"$(iso_of 2)\",\"actor\":\"ops \\\"q\\\"\\tx\",\"host\":\"h\",\"account\":\"happy\",\"action\":\"sikka.callback\",\"resourceType\":\"pms_integration\",\"resourceId\":\"parlae/pms/sikka/happy\",\"outcome\":\"denied\",\"errorCode\":\"security\",\"metadata\":{\"n\":[1,2],\"s\":\"a b\\\"c\\n\",\"u\":\"Ünï\",\"officeId\":\"D36225\"},\"hash\":\"$(sql "SELECT hash FROM audit_events WHERE seq = 2")\"}"
	# The values are the database's, byte for byte.
	assert_equal "$(jq -r .actor <<<"$output")" "$(sql "SELECT actor FROM audit_events WHERE seq = 2")"
	assert_equal "$(jq -cS .metadata <<<"$output")" "$(sql "SELECT metadata::text FROM audit_events WHERE seq = 2" | jq -cS .)"
	run --separate-stderr parlae audit tail -n 2 --json
	assert_equal "$(jq -c '[.seq, .account, .resourceId, .errorCode, .metadata]' <<<"${lines[0]}")" '[1,null,"9",null,{"from":0,"applied":[1,2,3,4,5,6,7,8,9]}]'
}

@test "on a terminal: a table with a header, failures in capitals, colour only when it is on" {
	fresh_db tty
	seed seed 5
	TERM=dumb run script -qec "parlae audit tail -n 2" /dev/null
	assert_success
	out=${output//$'\r'/}
	assert_equal "$out" "    SEQ  TIME                 ACTOR                 ACCOUNT           ACTION              RESOURCE                      OUTCOME
      5  $(sql "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM audit_events WHERE seq = 5")  ops@test              beta              seed.04             thing r4                      success
      6  $(sql "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM audit_events WHERE seq = 6")  ops@test              alpha             seed.05             thing r5                      FAILURE upstream"
	TERM=xterm run script -qec "parlae audit tail -n 1" /dev/null
	assert_regex "$output" $'^\e\\[1m    SEQ  TIME'
	assert_regex "$output" $'\e\\[1;31mFAILURE upstream\e\\[m'
	TERM=xterm NO_COLOR=1 run script -qec "parlae audit tail -n 1" /dev/null
	[[ $output != *$'\e'* ]] || fail "colour with NO_COLOR: $output"
	TERM=xterm run script -qec "parlae audit tail -n 1 --color=never" /dev/null
	[[ $output != *$'\e'* ]] || fail "colour with --color=never"
	assert_regex "$output" "FAILURE upstream"
	# Not a terminal: no colour even when it would be on.
	TERM=xterm run --separate-stderr parlae audit tail -n 1
	[[ $output != *$'\e'* ]]
}

@test "control characters from the database never reach the terminal or break a line" {
	fresh_db controls
	sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES (E'evil\\x1b[31m\\nactor', E'h\\tx', 'x', 'success')" >/dev/null
	run --separate-stderr parlae audit tail -n 1
	assert_equal "$output" "2	$(iso_of 2)	evil?[31m?actor	h?x	-	x	-	-	success	-"
	TERM=xterm run script -qec "parlae audit tail -n 1" /dev/null
	[[ $output != *$'\e[31m'* ]] || fail "an escape sequence reached the terminal"
	assert_regex "$output" 'evil\?\[31m\?actor'
}

# --- --cursor-file -----------------------------------------------------------------------------

@test "--cursor-file resumes after the last event printed, across runs" {
	fresh_db cursor
	seed a 4
	cur=$BATS_TEST_TMPDIR/ship/audit.cursor
	mkdir -p "${cur%/*}"
	run --separate-stderr parlae audit tail --cursor-file "$cur"
	assert_success
	assert_equal "$(seqs "$output")" "$(seq 1 5)"
	assert_equal "$(cat "$cur")" "5"
	run --separate-stderr parlae audit tail --cursor-file "$cur" --json
	assert_success
	assert_equal "$output" ""
	assert_equal "$(cat "$cur")" "5"
	seed b 3
	run --separate-stderr parlae audit tail --cursor-file "$cur" --json
	assert_equal "$(seqs "$output")" "$(seq 6 8)"
	assert_equal "$(cat "$cur")" "8"
	# -n with a cursor: the first N after it, so that nothing is skipped.
	seed c 5
	run --separate-stderr parlae audit tail --cursor-file "$cur" -n 2
	assert_equal "$(seqs "$output")" "$(seq 9 10)"
	assert_equal "$(cat "$cur")" "10"
	run --separate-stderr parlae --dry-run audit tail --cursor-file "$cur" -n 1
	assert_equal "$(seqs "$output")" "11"
	assert_equal "$(cat "$cur")" "10"
	run --separate-stderr parlae audit tail --cursor-file "$cur"
	assert_equal "$(seqs "$output")" "$(seq 11 13)"
	assert_equal "$(cat "$cur")" "13"
	# Written by rename: nothing else is left beside it.
	assert_equal "$(ls -A "${cur%/*}")" "audit.cursor"
	run --separate-stderr parlae audit tail --cursor-file "$cur"
	assert_equal "$output" ""
}

@test "interrupted midway, tail leaves whole lines and a cursor file naming the last of them" {
	fresh_db cursor_interrupt
	sql "DO \$\$ BEGIN FOR i IN 1..400 LOOP
		INSERT INTO audit_events (actor, host, action, outcome) SELECT 'o', 'h', 'many', 'success' FROM generate_series(1, 50);
		COMMIT; END LOOP; END \$\$" >/dev/null
	cur=$BATS_TEST_TMPDIR/c
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	# A slow reader: parlae fills the pipe and waits on it when the signal comes.
	{ sleep 1; cat; } <"$BATS_TEST_TMPDIR/pipe" >"$BATS_TEST_TMPDIR/out" 3>&- &
	reader=$!
	parlae audit tail --json --cursor-file "$cur" >"$BATS_TEST_TMPDIR/pipe" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	sleep 0.5
	kill -INT $pid
	rc=0
	wait $pid || rc=$?
	wait $reader
	assert_equal "$rc" 130
	assert_equal "$(cat "$BATS_TEST_TMPDIR/err")" '{"error":{"code":"interrupted","message":"interrupted","hint":null}}'
	n=$(wc -l <"$BATS_TEST_TMPDIR/out")
	[ "$n" -gt 0 ] && [ "$n" -lt 20001 ] || fail "printed $n lines"
	# Every line whole, in order from the first, and the cursor names the last.
	assert_equal "$(jq -r .seq "$BATS_TEST_TMPDIR/out")" "$(seq 1 "$n")"
	assert_equal "$(tail -c 1 "$BATS_TEST_TMPDIR/out" | od -An -c | tr -d ' ')" '\n'
	assert_equal "$(cat "$cur")" "$n"
	# The next run goes on from there.
	run --separate-stderr parlae audit tail --json --cursor-file "$cur" -n 3
	assert_equal "$(seqs "$output")" "$(seq $((n + 1)) $((n + 3)))"
}

@test "--cursor-file with filters records the last event it printed" {
	fresh_db cursor_filter
	seed a 6
	cur=$BATS_TEST_TMPDIR/c
	run --separate-stderr parlae audit tail --cursor-file "$cur" --account alpha
	assert_equal "$(seqs "$output")" "$(printf '%s\n' 2 4 6)"
	assert_equal "$(cat "$cur")" "6"
	seed b 2
	run --separate-stderr parlae audit tail --cursor-file "$cur" --account alpha
	assert_equal "$(seqs "$output")" "8"
}

@test "a cursor file that does not hold an event number is refused, and left alone" {
	fresh_db cursor_bad
	cur=$BATS_TEST_TMPDIR/c
	echo "hello" >"$cur"
	run --separate-stderr parlae audit tail --cursor-file "$cur"
	assert_equal "$status" 65
	assert_equal "$output" ""
	assert_regex "$stderr" "^parlae: the cursor file .*/c does not hold an event number"
	assert_equal "$(cat "$cur")" "hello"
	run --separate-stderr parlae audit tail --cursor-file "$BATS_TEST_TMPDIR/no/such/dir/c"
	assert_equal "$status" 3
	assert_regex "$stderr" "^parlae: cannot write the cursor file"
}

# --- follow ------------------------------------------------------------------------------------

@test "-f prints the last N, then each new event as it commits; Ctrl-C exits 130, quietly" {
	fresh_db follow
	seed a 3
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" -n 2 --json
	wait_lines "$d" 2
	sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('o', 'h', 'live.1', 'success')" >/dev/null
	wait_lines "$d" 3
	parlae account add live >/dev/null
	wait_lines "$d" 4
	assert_equal "$(follow_stop "$d")" 130
	assert_equal "$(jq -r '.seq' "$d/out")" "$(seq 3 6)"
	assert_equal "$(jq -r '.action' "$d/out" | tail -n 2)" "$(printf 'live.1\naccount.add')"
	assert_equal "$(cat "$d/err")" ""
}

@test "pg_stat_activity names the command holding a connection; PARLAE_DATABASE_URL's own name wins" {
	fresh_db appname
	named() { sql "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_activity
		WHERE datname = current_database() AND usename = 'parlae_app' AND pid <> pg_backend_pid()"; }
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" -n 0
	assert_equal "$(named)" "parlae audit tail"
	assert_equal "$(follow_stop "$d")" 130
	FOLLOWER_APP=ops-tail PARLAE_DATABASE_URL="$PARLAE_DATABASE_URL application_name=ops-tail" \
		follow_start "$d" -n 0
	assert_equal "$(named)" "ops-tail"
	assert_equal "$(follow_stop "$d")" 130
}

@test "-f with filters prints only the matching new events, and Ctrl-C while idle exits 130" {
	fresh_db follow_filter
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" -n 0 --account alpha
	seed x 4
	wait_lines "$d" 2
	assert_equal "$(follow_stop "$d")" 130
	assert_equal "$(cut -f1,5,6 "$d/out")" "$(printf '2\talpha\tx.01\n4\talpha\tx.03')"
	assert_equal "$(cat "$d/err")" ""
}

@test "a follower prints exactly the committed events while four writers append at once" {
	fresh_db concurrent
	d=$BATS_TEST_TMPDIR/f
	start=$(head_seq)
	follow_start "$d" -n 0 --json
	writer_parlae() { for i in $(seq 1 15); do parlae account add "w$1-$i" >/dev/null 2>&1; done; }
	writer_psql() {
		for i in $(seq 1 20); do
			# Several events in one transaction, and a rolled-back one that never commits.
			psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" >/dev/null 2>&1 <<-SQL
				BEGIN;
				INSERT INTO audit_events (actor, host, action, outcome) SELECT 'w$1', 'h', 'bulk.$i', 'success' FROM generate_series(1, 3);
				COMMIT;
				BEGIN;
				INSERT INTO audit_events (actor, host, action, outcome) VALUES ('w$1', 'h', 'rolled.back', 'success');
				ROLLBACK;
			SQL
		done
	}
	writer_parlae 1 3>&- &
	p1=$!
	writer_parlae 2 3>&- &
	p2=$!
	writer_psql 3 3>&- &
	p3=$!
	writer_psql 4 3>&- &
	p4=$!
	wait $p1 $p2 $p3 $p4
	committed=$(sql "SELECT seq FROM audit_events WHERE seq > $start ORDER BY seq")
	assert_equal "$(wc -l <<<"$committed")" $((15 * 2 + 20 * 3 * 2))
	wait_lines "$d" "$(wc -l <<<"$committed")"
	sleep 0.2 # anything extra would show now
	assert_equal "$(follow_stop "$d")" 130
	assert_equal "$(jq -r .seq "$d/out")" "$committed"
	assert_equal "$(jq -r .seq "$d/out" | sort -u | wc -l)" "$(wc -l <<<"$committed")"
	assert_equal "$(jq -r .action "$d/out" | grep -c rolled.back || true)" 0
	assert_equal "$(cat "$d/err")" ""
}

@test "a follower whose connection is killed says so, reconnects and catches up" {
	fresh_db reconnect
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" -n 1 --json
	sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('o', 'h', 'before', 'success')" >/dev/null
	wait_lines "$d" 2
	killed=$(sql_admin "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'parlae audit tail'")
	assert_equal "$killed" 1
	# Appended while it is away: it must still print them, once each.
	for i in 1 2 3; do
		sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('o', 'h', 'while.$i', 'success')" >/dev/null
	done
	wait_lines "$d" 5
	# And it listens again.
	parlae account add after >/dev/null
	wait_lines "$d" 6
	assert_equal "$(follow_stop "$d")" 130
	assert_equal "$(jq -r .seq "$d/out")" "$(seq 1 6)"
	assert_equal "$(jq -r .action "$d/out" | paste -sd' ')" "db.migrate before while.1 while.2 while.3 account.add"
	assert_regex "$(sed -n 1p "$d/err")" "^parlae: lost the connection to the database: .*; reconnecting$"
	assert_equal "$(sed -n 2p "$d/err")" "parlae: reconnected; catching up after event 2"
	assert_equal "$(wc -l <"$d/err")" 2
}

@test "a follower started with -q reconnects without a word" {
	fresh_db reconnect_quiet
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" -q -n 0
	sql_admin "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'parlae audit tail'" >/dev/null
	sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('o', 'h', 'quiet', 'success')" >/dev/null
	wait_lines "$d" 1
	assert_equal "$(follow_stop "$d")" 130
	assert_equal "$(cut -f6 "$d/out")" "quiet"
	assert_equal "$(cat "$d/err")" ""
}

@test "a follower with a cursor file records each event it prints" {
	fresh_db follow_cursor
	cur=$BATS_TEST_TMPDIR/c
	echo 1 >"$cur"
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" --cursor-file "$cur"
	seed y 2
	wait_lines "$d" 2
	assert_equal "$(follow_stop "$d")" 130
	assert_equal "$(seqs "$(cat "$d/out")")" "$(seq 2 3)"
	assert_equal "$(cat "$cur")" "3"
}

@test "a follower stopped by TERM exits 130 with its last line whole and its cursor file in place" {
	fresh_db follow_term
	cur=$BATS_TEST_TMPDIR/ship/c
	mkdir -p "${cur%/*}"
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" --json --cursor-file "$cur"
	seed z 3
	wait_lines "$d" 4
	assert_equal "$(follow_stop "$d" TERM)" 130
	assert_equal "$(cat "$d/err")" ""
	assert_equal "$(jq -r .seq "$d/out")" "$(seq 1 4)"
	assert_equal "$(cat "$cur")" "4"
	assert_equal "$(ls -A "${cur%/*}")" "c"
}

@test "--json: an interrupted follow ends quietly too: exit 130, nothing on stderr" {
	fresh_db follow_json_err
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" --json -n 0
	assert_equal "$(follow_stop "$d")" 130
	assert_equal "$(cat "$d/err")" ""
	assert_equal "$(cat "$d/out")" ""
}

@test "a follower is woken by the database, not by polling: idle, it runs no statement" {
	fresh_db nopoll
	d=$BATS_TEST_TMPDIR/f
	follow_start "$d" -n 0
	# The follower's own backend: when it last changed state, and what it last ran. A poll
	# would move both; statistics counters are flushed too late to tell.
	backend="SELECT state || '|' || state_change || '|' || query FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'parlae audit tail'"
	# Settled: idle, and the same across a short pause (its start-up is over).
	for _ in $(seq 1 30); do
		first=$(sql_admin "$backend")
		sleep 0.3
		before=$(sql_admin "$backend")
		[[ $before == idle\|* && $before == "$first" ]] && break
	done
	sleep 2
	after=$(sql_admin "$backend")
	assert_equal "$(follow_stop "$d")" 130
	assert_regex "$before" '^idle\|'
	assert_equal "$after" "$before"
}

# --- memory ------------------------------------------------------------------------------------

@test "tail streams: 100,000 events take no more memory than ten" {
	fresh_db memory
	# In transactions of 50: the chain head's row versions stay on one page.
	sql "DO \$\$ BEGIN FOR i IN 1..2000 LOOP
		INSERT INTO audit_events (actor, host, account_id, action, outcome, metadata)
		SELECT 'ops@test', 'testhost', 'alpha', 'mem.test', 'success', '{\"k\": \"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"}'
		FROM generate_series(1, 50); COMMIT; END LOOP; END \$\$" >/dev/null
	# The peak resident memory of a command (KB), its exit status and how many lines it printed
	# (read as they come, kept nowhere).
	# Under ASan freed memory waits in a quarantine, which would count as growth: none here.
	rss() { ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0 python3 -c 'import resource, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
n = sum(b.count(b"\n") for b in iter(lambda: p.stdout.read(65536), b""))
rc = p.wait()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc, n)' "$@"; }
	read -r small rc lines < <(rss parlae audit tail -n 10 --json)
	assert_equal "$rc $lines" "0 10"
	read -r big rc lines < <(rss parlae audit tail -n 100000 --json)
	assert_equal "$rc $lines" "0 100000"
	read -r plain rc lines < <(rss parlae audit tail -n 100000)
	read -r verify rc lines < <(rss parlae audit verify)
	assert_equal "$rc" 0
	echo "# max RSS (KB): -n 10 $small; -n 100000 --json $big; plain $plain; verify $verify" >&3
	# Holding the rows would take over 30 MB (100,000 lines of ~330 bytes); a few MB of slack
	# is for the sanitizers' allocator, whose caches grow a little with the number of mallocs.
	[ $((big - small)) -lt 8192 ] || fail "RSS grew from $small KB to $big KB"
	[ $((plain - small)) -lt 8192 ] || fail "RSS grew from $small KB to $plain KB"
	[ $((verify - small)) -lt 8192 ] || fail "verify's RSS grew from $small KB to $verify KB"
}
