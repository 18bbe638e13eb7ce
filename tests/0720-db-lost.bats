#!/usr/bin/env bats
# The database going away in the middle of a command leaves nothing half-recorded: the callback
# and the rotation reconnect once to record how they ended (the row and one audit event); a row
# left CONNECTING reads failed once its OAuth state expired; a rotation that stored new keys but
# could not update its row is reconciled by the next run. The connection is cut with
# pg_terminate_backend while the command is held in its store write (strace) or in a Sikka call.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/store

setup_file() {
	suite_setup
	suite_migrate
	start_sikka "$BATS_FILE_TMPDIR/fakes"
	build_store_tool
}
teardown_file() {
	# A failed test must not leave the database refusing connections to the next one.
	sql_admin "ALTER DATABASE \"$(db_name)\" CONNECTION LIMIT -1" >/dev/null 2>&1 || true
	stop_sikka "$BATS_FILE_TMPDIR/fakes"
}

setup() {
	setup_home
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	export PARLAE_STATE_SECRET=sekrit-state-secret-for-tests-0123456789
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
	export PARLAE_SECRET_STORE=file:$BATS_FILE_TMPDIR/vault APP_BASE_URL=https://backend.example
	export PARLAE_HTTP_TIMEOUT=15
	fake faults/clear '{}' >/dev/null
}

db_name() { sed -n 's/.*dbname=\([^ ]*\).*/\1/p' <<<"$PARLAE_DATABASE_URL"; }

# Cut every connection parlae has to this suite's database, as a restart or failover would.
cut_connections() {
	sql_admin "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name LIKE 'parlae %' AND datname = current_database()" >/dev/null
}

# New connections of parlae's roles refused (the superuser is exempt): refuse_connections on|off.
refuse_connections() {
	sql_admin "ALTER DATABASE \"$(db_name)\" CONNECTION LIMIT $([ "$1" = on ] && echo 0 || echo -1)" >/dev/null
}

# in_background OUT COMMAND...: start it with stdout in OUT.out and stderr in OUT.err; its pid
# in $pid. finish: wait for it, its exit status in $status, its streams in $output and $stderr.
in_background() {
	local out=$BATS_TEST_TMPDIR/$1
	shift
	"$@" >"$out.out" 2>"$out.err" &
	pid=$!
	last_bg=$out
}
finish() {
	status=0
	wait "$pid" || status=$?
	output=$(cat "$last_bg.out")
	stderr=$(cat "$last_bg.err")
}

# held COMMAND...: the command (a child of strace, which replaces the calling subshell) with each
# rename of the secret store held 2 s once done, so that the test can act after the store write
# and before what follows it. LeakSanitizer cannot run under ptrace: the sanitizer build leaves
# leak checks to the other suites.
held() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 exec strace -f -qq -o /dev/null \
		-e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:delay_exit=2000000 "$@"
}

secret_file() { echo "$BATS_FILE_TMPDIR/vault/parlae~pms~sikka~$1.cur"; }

# Hold the next N answers to POST /v4/request_key for 4 s each; sikka_held N: all N have arrived.
hold_sikka() {
	fake counters/reset '{}' >/dev/null
	fake faults "{\"method\":\"POST\",\"path\":\"/v4/request_key\",\"count\":$1,\"delay_ms\":4000}" >/dev/null
}
sikka_held() { [ "$(fake_get counters | jq .faults)" -ge "$1" ]; }

# A connected practice: account, setup, the authorize redirect, the callback.
new_account() { parlae account add "$1" >/dev/null && parlae pms setup "$1" >/dev/null; }
landing() { curl -sS -o /dev/null -w '%{redirect_url}' "$(parlae sikka oauth-url "$1")"; }
onboard() {
	local a
	for a in "$@"; do
		new_account "$a" && parlae sikka callback --url "$(landing "$a")" >/dev/null || return 1
	done
}

# The row as "STATUS|secret_version|last_error" ('-' for NULL).
row() {
	sql "SELECT status || '|' || coalesce(secret_version, '-') || '|' || coalesce(last_error, '-')
		FROM pms_integrations WHERE account_id = '$1'"
}
# The account's events of ACTION, oldest first, one "outcome|error_code" a line.
events() {
	sql "SELECT outcome || '|' || coalesce(error_code, '-') FROM audit_events
		WHERE account_id = '$1' AND action = '$2' ORDER BY seq"
}
stored_version() {
	parlae secrets list --json | jq -r --arg n "parlae/pms/sikka/$1" '.[] | select(.name == $n) | .version'
}
stored_is() { [ "$(stored_version "$1")" = "$2" ]; }
stored_expiry() { store_tool get "parlae/pms/sikka/$1" | jq -r .tokenExpiry; }
row_expiry() {
	sql "SELECT to_char(token_expiry AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
		FROM pms_integrations WHERE account_id = '$1'"
}
# Whether the account's stored request key is one the fake accepts now.
key_works() {
	local key
	key=$(store_tool get "parlae/pms/sikka/$1" | jq -r .requestKey)
	fake_get state | jq -e --arg k "$key" '[.offices[].request_keys[] | select(.request_key == $k and (.expired | not) and (.revoked | not))] | length == 1' >/dev/null
}
# The account's OAuth states all expired an hour ago, as if the practice never came back.
expire_states() {
	sql_owner "UPDATE oauth_states SET issued_at = issued_at - interval '1 hour',
		expires_at = expires_at - interval '1 hour' WHERE account_id = '$1'" >/dev/null
}
LOST='lost the connection to the database: terminating connection due to administrator command'

@test "strace can hold a command in its store write here" {
	(held sh -c 'touch "$1/a" && mv "$1/a" "$1/b"' - "$BATS_TEST_TMPDIR")
	[ -e "$BATS_TEST_TMPDIR/b" ]
}

# --- sikka callback ------------------------------------------------------------------------------

@test "callback: the connection lost after the store write is recorded on a new one: ERROR, one failure event, exit 7" {
	new_account cb-lost
	url=$(landing cb-lost)
	in_background cb held parlae sikka callback --url "$url"
	wait_for test -e "$(secret_file cb-lost)"
	cut_connections
	finish
	assert_equal "$status" 7
	assert_equal "$stderr" "parlae: $LOST (recorded as failed; the practice must authorize again with a new link from 'parlae sikka oauth-url cb-lost')"
	assert_equal "$(row cb-lost)" "ERROR|-|$LOST"
	assert_equal "$(events cb-lost sikka.callback)" "failure|database"
	# The secret left behind never counts as connected...
	run --separate-stderr parlae status cb-lost --json
	assert_success
	assert_equal "$(jq -c '[.status, .isConnected, .error]' <<<"$output")" "[\"failed\",false,\"$LOST\"]"
	# ...and the next authorization overwrites it.
	run --separate-stderr parlae sikka callback --url "$(landing cb-lost)"
	assert_success
	assert_equal "$(row cb-lost)" "ACTIVE|2|-"
	assert_equal "$(events cb-lost sikka.callback)" "$(printf 'failure|database\nsuccess|-')"
	key_works cb-lost
}

@test "callback: the connection lost and the reconnection refused: exit 7, one line naming both, nothing more; status reads failed once the state expired" {
	new_account cb-down
	url=$(landing cb-down)
	in_background cb held parlae sikka callback --url "$url" --json
	wait_for test -e "$(secret_file cb-down)"
	refuse_connections on
	cut_connections
	finish
	refuse_connections off
	assert_equal "$status" 7
	assert_equal "$(wc -l <<<"$stderr")" "1"
	assert_regex "$(jq -r .error.message <<<"$stderr")" "^$LOST; could not reconnect to record the failure: cannot connect to the database: .*too many connections for database"
	assert_equal "$(jq -r .error.hint <<<"$stderr")" "check that PostgreSQL is running; then the practice must authorize again with a new link from 'parlae sikka oauth-url cb-down'"
	assert_equal "$(jq -c '[.account, .status]' <<<"$output")" '["cb-down","failed"]'
	# Nothing was recorded: the row is still CONNECTING, with no event.
	assert_equal "$(row cb-down)" "CONNECTING|-|-"
	assert_equal "$(events cb-down sikka.callback)" ""
	run --separate-stderr parlae status cb-down --json
	assert_equal "$(jq -r .status <<<"$output")" "connecting"
	# Once its state has expired nobody can complete it: it reads failed, and --wait ends on it.
	expire_states cb-down
	run --separate-stderr parlae status cb-down --json
	assert_success
	assert_equal "$(jq -c '[.status, .isConnected, .error]' <<<"$output")" '["failed",false,"authorization was not completed"]'
	run --separate-stderr parlae status cb-down --wait=60
	assert_equal "$status" 1
	assert_equal "$(sed -n 2p <<<"$output")" "status        failed"
	# A new authorization connects it, over the secret left behind.
	run --separate-stderr parlae sikka callback --url "$(landing cb-down)"
	assert_success
	assert_equal "$(row cb-down)" "ACTIVE|2|-"
	assert_equal "$(events cb-down sikka.callback)" "success|-"
	key_works cb-down
}

# --- status ----------------------------------------------------------------------------------------

@test "status: a CONNECTING row whose state expired reads failed 'authorization was not completed', counted as failed" {
	new_account ttl-gone
	parlae sikka oauth-url ttl-gone >/dev/null
	run --separate-stderr parlae status --json
	before=$(jq -c '[.accounts.connecting, .accounts.failed]' <<<"$output")
	assert_equal "$(parlae status ttl-gone --json | jq -r .status)" "connecting"
	expire_states ttl-gone
	run --separate-stderr parlae status ttl-gone
	assert_success
	assert_equal "$output" "$(printf 'account       ttl-gone\nstatus        failed\nerror         authorization was not completed')"
	run --separate-stderr parlae status --json
	assert_equal "$(jq -c '[.accounts.connecting, .accounts.failed]' <<<"$output")" \
		"$(jq -c '[.[0] - 1, .[1] + 1]' <<<"$before")"
	assert_equal "$(parlae account list --json | jq -r '.[] | select(.id == "ttl-gone") | .status')" "failed"
	run --separate-stderr parlae status ttl-gone --wait=60 --json
	assert_equal "$status" 1
	assert_equal "$(jq -r .error <<<"$output")" "authorization was not completed"
	# The row itself is unchanged: a new link makes it connecting again.
	assert_equal "$(row ttl-gone)" "CONNECTING|-|-"
	parlae sikka oauth-url ttl-gone >/dev/null
	assert_equal "$(parlae status ttl-gone --json | jq -c '[.status, .error]')" '["connecting",null]'
}

@test "status --wait ends with exit 1 when the state expires while it waits" {
	new_account ttl-wait
	parlae sikka oauth-url ttl-wait --ttl 3 >/dev/null
	run --separate-stderr parlae status ttl-wait --wait=120 --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '[.status, .error]' <<<"$output")" '["failed","authorization was not completed"]'
	assert_equal "$stderr" ""
}

# --- secrets rotate ------------------------------------------------------------------------------

@test "rotate: the connection lost after the store write: one failure event and last_error on a new connection, exit 7; the next run takes the store's version" {
	onboard rl-1
	hold_sikka 1
	in_background rot parlae secrets rotate rl-1 --force
	wait_for sikka_held 1
	cut_connections
	finish
	assert_equal "$status" 7
	assert_equal "$stderr" "$(printf '%s\n' \
		"parlae: rl-1: $LOST (the new keys are stored as version 2: the next run records them)" \
		"parlae: lost the connection to the database during the rotation (the accounts not rotated keep their keys: run it again)")"
	assert_equal "$(stored_version rl-1)" "2"
	key_works rl-1
	assert_equal "$(row rl-1)" "ACTIVE|1|secret version 2 was stored but not recorded here (the next rotation records it): $LOST"
	assert_equal "$(events rl-1 secrets.rotate)" "failure|database"
	assert_equal "$(sql "SELECT metadata::text FROM audit_events WHERE account_id = 'rl-1' AND action = 'secrets.rotate'")" \
		'{"stored": true, "secretVersion": "2"}'
	# --all takes it although it is not due (its last_error says why), and records the store's version.
	run --separate-stderr parlae secrets rotate --all --json
	assert_success
	assert_equal "$(jq -c '.accounts[] | select(.account == "rl-1") | [.outcome, .detail]' <<<"$output")" \
		'["not_due","recorded version 2, stored by an earlier run"]'
	assert_equal "$(row rl-1)" "ACTIVE|2|-"
	assert_equal "$(row_expiry rl-1)" "$(stored_expiry rl-1)"
	assert_equal "$(events rl-1 secrets.reconcile)" "success|-"
	assert_equal "$(events rl-1 secrets.rotate)" "failure|database"
	# Reconciled once: the next run has nothing to do.
	run --separate-stderr parlae secrets rotate rl-1 --json
	assert_success
	assert_equal "$(jq -c '.accounts[0] | [.outcome, .detail]' <<<"$output")" '["not_due",null]'
	assert_equal "$(events rl-1 secrets.reconcile)" "success|-"
}

@test "rotate: a batch in flight when the connection goes: nothing rotated in the store is failed without its event; the next run reconciles" {
	onboard bl-1 bl-2 bl-3
	hold_sikka 3
	in_background rot parlae secrets rotate bl-1 bl-2 bl-3 --force --json
	wait_for sikka_held 3
	cut_connections
	finish
	assert_equal "$status" 7
	# The first to reach the database found it gone and was recorded failed on a new connection;
	# the others finished on that connection. Every account has its new keys in the store.
	assert_equal "$(sql "SELECT string_agg(outcome || '|' || coalesce(error_code, '-'), ',' ORDER BY outcome)
		FROM audit_events WHERE action = 'secrets.rotate' AND account_id LIKE 'bl-%'")" "failure|database,success|-,success|-"
	failed=$(sql "SELECT account_id FROM audit_events WHERE action = 'secrets.rotate' AND account_id LIKE 'bl-%' AND outcome = 'failure'")
	for a in bl-1 bl-2 bl-3; do
		assert_equal "$(stored_version $a)" "2"
		key_works $a
		assert_equal "$(events $a secrets.rotate | wc -l)" "1"
		if [ "$a" = "$failed" ]; then
			assert_equal "$(row $a)" "ACTIVE|1|secret version 2 was stored but not recorded here (the next rotation records it): $LOST"
		else
			assert_equal "$(row $a)" "ACTIVE|2|-"
		fi
	done
	run --separate-stderr parlae secrets rotate bl-1 bl-2 bl-3 --json
	assert_success
	assert_equal "$(jq -c '[.rotated, .notDue, .failed]' <<<"$output")" '[0,3,0]'
	for a in bl-1 bl-2 bl-3; do assert_equal "$(row $a)" "ACTIVE|2|-"; done
	assert_equal "$(sql "SELECT string_agg(account_id, ',') FROM audit_events WHERE action = 'secrets.reconcile' AND account_id LIKE 'bl-%'")" "$failed"
}

@test "rotate: the connection lost and the reconnection refused: exit 7, nothing more attempted; the next run takes every stored version" {
	onboard br-1 br-2 br-3
	hold_sikka 3
	in_background rot parlae secrets rotate br-1 br-2 br-3 --force
	wait_for sikka_held 3
	refuse_connections on
	cut_connections
	finish
	refuse_connections off
	assert_equal "$status" 7
	assert_equal "$(tail -n 1 <<<"$stderr")" "parlae: lost the connection to the database during the rotation (the accounts not rotated keep their keys: run it again)"
	assert_equal "$(grep -c '(the new keys are stored as version 2: the next run records them)$' <<<"$stderr")" "3"
	assert_equal "$(fake_get counters | jq .grants.refresh_key)" "3"
	for a in br-1 br-2 br-3; do
		assert_equal "$(stored_version $a)" "2"
		key_works $a
		assert_equal "$(row $a)" "ACTIVE|1|-"
		assert_equal "$(events $a secrets.rotate)" ""
	done
	run --separate-stderr parlae secrets rotate br-1 br-2 br-3 --json
	assert_success
	assert_equal "$(jq -c '[.rotated, .notDue, .failed]' <<<"$output")" '[0,3,0]'
	assert_equal "$(fake_get counters | jq .grants.refresh_key)" "3"
	for a in br-1 br-2 br-3; do
		assert_equal "$(row $a)" "ACTIVE|2|-"
		assert_equal "$(row_expiry $a)" "$(stored_expiry $a)"
		assert_equal "$(events $a secrets.reconcile)" "success|-"
	done
}

@test "rotate: a row update that fails appends one failure event, not two; the next run reconciles" {
	onboard dbl-1
	sql_admin "CREATE FUNCTION refuse_version() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN IF NEW.secret_version IS DISTINCT FROM OLD.secret_version THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END \$\$; CREATE TRIGGER refuse_version BEFORE UPDATE ON pms_integrations FOR EACH ROW EXECUTE FUNCTION refuse_version();" >/dev/null
	run --separate-stderr parlae secrets rotate dbl-1 --force
	sql_admin "DROP TRIGGER refuse_version ON pms_integrations; DROP FUNCTION refuse_version();" >/dev/null
	assert_equal "$(events dbl-1 secrets.rotate)" "failure|database"
	assert_equal "$status" 7
	assert_equal "$stderr" "parlae: dbl-1: database error: injected failure (the new keys are stored as version 2: the next run records them)"
	assert_equal "$(row dbl-1)" "ACTIVE|1|secret version 2 was stored but not recorded here (the next rotation records it): database error: injected failure"
	run --separate-stderr parlae secrets rotate dbl-1
	assert_success
	assert_equal "$(row dbl-1)" "ACTIVE|2|-"
	assert_equal "$(events dbl-1 secrets.reconcile)" "success|-"
	assert_equal "$(events dbl-1 secrets.rotate)" "failure|database"
}

@test "rotate: killed after its store write, the next run takes the store's version" {
	onboard kill-1
	in_background rot held parlae secrets rotate kill-1 --force
	wait_for stored_is kill-1 2
	kill -9 "$(ps -o pid= --ppid "$pid")"
	finish
	assert_equal "$status" 137
	assert_equal "$(row kill-1)" "ACTIVE|1|-"
	run --separate-stderr parlae secrets rotate kill-1 --json
	assert_success
	assert_equal "$(jq -c '.accounts[0] | [.outcome, .detail]' <<<"$output")" '["not_due","recorded version 2, stored by an earlier run"]'
	assert_equal "$(row kill-1)" "ACTIVE|2|-"
	key_works kill-1
}
