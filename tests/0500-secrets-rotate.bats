#!/usr/bin/env bats
# secrets rotate: refresh exactly once across processes, fall back when a refresh key is
# rejected, lose nothing when Sikka fails or a process is killed; and --master-key.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/store

MASTER=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
NEW_MASTER=0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000

setup_file() {
	suite_setup
	suite_migrate
	start_sikka "$BATS_FILE_TMPDIR/fakes"
	build_store_tool
}
teardown_file() { stop_sikka "$BATS_FILE_TMPDIR/fakes"; }

setup() {
	setup_home
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	export PARLAE_MASTER_KEY=$MASTER PARLAE_SECRET_STORE=file:$BATS_FILE_TMPDIR/vault
	fake faults/clear '{}' >/dev/null
	fake latency '{"ms":0}' >/dev/null
}

# seed PREFIX N MINUTES: N connected accounts PREFIX-1..N whose keys expire in MINUTES,
# with real keys issued by the fake and stored as parlae stores them. The N keys come from one
# curl and one jq (a curl, a date and a jq per account were 800 processes for 200 accounts),
# and go into the store by one store-tool put-each (a store-tool put each was ~25 ms of CPU).
seed() {
	local prefix=$1 n=$2 minutes=$3 i keys secret expiry issues=() sqlf=$BATS_TEST_TMPDIR/seed.sql
	local puts=$BATS_TEST_TMPDIR/seed.puts
	fake access '{"office_id":"D36225","access":"ON"}' >/dev/null
	secret=$(fake_get state | jq -r '.practices[] | select(.office_id == "D36225") | .secret_key')
	expiry=$(date -u -d "+$minutes min" +%Y-%m-%dT%H:%M:%SZ)
	for ((i = 1; i <= n; i++)); do
		issues+=("$FAKE_SIKKA/__fake/issue" '{"office_id":"D36225"}')
	done
	fake_posts "${issues[@]}" >"$BATS_TEST_TMPDIR/issued"
	jq -c --arg s "$secret" --arg e "$expiry" \
		'{officeId:"D36225", secretKey:$s, requestKey:.request_key, refreshKey:.refresh_key,
		  tokenExpiry:$e, practiceName:"Happy Teeth Dental", pmsType:"Dentrix"}' \
		"$BATS_TEST_TMPDIR/issued" >"$BATS_TEST_TMPDIR/keys"
	: >"$sqlf"
	: >"$puts"
	i=0
	while IFS= read -r keys; do
		i=$((i + 1))
		printf 'parlae/pms/sikka/%s-%s\t%s\n' "$prefix" "$i" "$keys" >>"$puts"
		printf "INSERT INTO accounts (id) VALUES ('%s-%s');\n" "$prefix" "$i" >>"$sqlf"
		printf "INSERT INTO pms_integrations (account_id, provider, status, office_id, secret_ref, secret_version, token_expiry) VALUES ('%s-%s', 'SIKKA', 'ACTIVE', 'D36225', 'parlae/pms/sikka/%s-%s', '1', now() + interval '%s minutes');\n" \
			"$prefix" "$i" "$prefix" "$i" "$minutes" >>"$sqlf"
	done <"$BATS_TEST_TMPDIR/keys"
	[ "$i" = "$n" ] || fail "seed: the fake issued $i keys, not $n"
	store_tool put-each <"$puts" >/dev/null
	psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" -f "$sqlf" >/dev/null
}

# Whether ACCOUNT's stored request key is one the fake accepts now.
key_works() {
	local key
	key=$(store_tool get "parlae/pms/sikka/$1" | jq -r .requestKey)
	fake_get state | jq -e --arg k "$key" '[.offices.D36225.request_keys[] | select(.request_key == $k and (.expired | not) and (.revoked | not))] | length == 1' >/dev/null
}

@test "rotate --all refreshes the due accounts and leaves the others" {
	seed due 3 30
	seed fresh 2 600
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets rotate due-1 due-2 due-3 fresh-1 fresh-2 --json
	assert_success
	assert_equal "$(jq -c '[.rotated, .skipped, .notDue, .failed]' <<<"$output")" '[3,0,2,0]'
	assert_equal "$(fake_get counters | jq -c '.grants.refresh_key')" "3"
	for i in 1 2 3; do
		key_works "due-$i"
		assert_equal "$(sql "SELECT secret_version || '|' || (token_expiry > now() + interval '23 hours') FROM pms_integrations WHERE account_id = 'due-$i'")" "2|true"
	done
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action = 'secrets.rotate' AND outcome = 'success' AND account_id LIKE 'due-%'")" "3"
}

@test "--dry-run sends nothing and changes nothing" {
	seed dry 2 30
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets rotate dry-1 dry-2 --dry-run
	assert_success
	assert_equal "$output" "would rotate 2, skipped 0 (held by another process), not due 0, failed 0"
	assert_equal "$(fake_get counters | jq -c '.grants.refresh_key')" "0"
	assert_equal "$(sql "SELECT string_agg(secret_version, ',') FROM pms_integrations WHERE account_id LIKE 'dry-%'")" "1,1"
}

@test "an account locked by another process is skipped and does not fail the run" {
	seed held 1 30
	psql -XAtq "$PARLAE_DATABASE_URL" -c "SELECT pg_advisory_lock(hashtextextended('parlae.rotate:held-1', 0)), pg_sleep(3)" >/dev/null &
	sleep 0.5
	run --separate-stderr parlae secrets rotate held-1 --json
	wait
	assert_success
	assert_equal "$(jq -c '[.rotated, .skipped]' <<<"$output")" '[0,1]'
}

@test "a rejected refresh key falls back to the secret key" {
	seed revoked 1 30
	fake revoke '{"office_id":"D36225","keys":"refresh"}' >/dev/null
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets rotate revoked-1 --json
	assert_success
	assert_equal "$(jq -c '[.rotated, .accounts[0].detail]' <<<"$output")" '[1,"new key from the secret key"]'
	assert_equal "$(fake_get counters | jq -c '[.grants.refresh_key, .grants.request_key, .invalid_refresh.D36225]')" '[0,1,1]'
	key_works revoked-1
	assert_equal "$(sql "SELECT metadata->>'fallback' FROM audit_events WHERE account_id = 'revoked-1' AND action = 'secrets.rotate'")" "true"
}

@test "Sikka down: exit 6, nothing lost, the old keys still work" {
	seed down 2 30
	fake faults '{"method":"POST","path":"/v4/request_key","status":500,"count":-1}' >/dev/null
	run --separate-stderr parlae secrets rotate down-1 down-2
	assert_equal "$status" 6
	assert_regex "$stderr" "down-1: Sikka POST /v4/request_key failed: HTTP 500"
	key_works down-1
	key_works down-2
	assert_equal "$(sql "SELECT string_agg(secret_version, ',') FROM pms_integrations WHERE account_id LIKE 'down-%'")" "1,1"
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action = 'secrets.rotate' AND outcome = 'failure' AND account_id LIKE 'down-%'")" "2"
}

@test "some failing is exit 9" {
	seed part 2 30
	fake faults '{"method":"POST","path":"/v4/request_key","status":500,"count":1}' >/dev/null
	run --separate-stderr parlae secrets rotate part-1 part-2 --concurrency 1
	assert_equal "$status" 9
}

@test "four rotations started together over 200 due accounts refresh each exactly once" {
	seed race 200 30
	# Only these are due: the other tests' accounts are out of the way.
	sql "UPDATE pms_integrations SET token_expiry = now() + interval '1 day' WHERE account_id NOT LIKE 'race-%'"
	fake counters/reset '{}' >/dev/null
	fake latency '{"ms":20}' >/dev/null
	for n in 1 2 3 4; do
		parlae secrets rotate --all --within 2h --json >"$BATS_TEST_TMPDIR/run$n" 2>"$BATS_TEST_TMPDIR/err$n" &
	done
	wait
	total=0
	for n in 1 2 3 4; do
		assert_equal "$(jq -r .failed "$BATS_TEST_TMPDIR/run$n")" "0"
		total=$((total + $(jq '[.accounts[] | select(.account | startswith("race-")) | select(.outcome == "rotated")] | length' "$BATS_TEST_TMPDIR/run$n")))
	done
	assert_equal "$total" "200"
	assert_equal "$(fake_get counters | jq -c '[.grants.refresh_key, (.invalid_refresh | add // 0)]')" '[200,0]'
	assert_equal "$(sql "SELECT count(*) FROM pms_integrations WHERE account_id LIKE 'race-%' AND secret_version = '2'")" "200"
}

@test "killed in the middle of a rotation, a rerun leaves every account with a working key" {
	seed crash 12 30
	fake latency '{"ms":300}' >/dev/null
	parlae secrets rotate crash-{1..12} --concurrency 4 >/dev/null 2>&1 &
	pid=$!
	sleep 0.5
	kill -9 $pid
	wait $pid || true
	fake latency '{"ms":0}' >/dev/null
	run --separate-stderr parlae secrets rotate crash-{1..12} --force
	assert_success
	for i in $(seq 1 12); do key_works "crash-$i"; done
}

@test "after a rotation the tools work with the new key" {
	seed tool 1 30
	parlae secrets rotate tool-1 >/dev/null
	fake revoke '{"office_id":"D36225","keys":"request"}' >/dev/null
	run --separate-stderr parlae secrets rotate tool-1 --force
	assert_success
	sql "UPDATE pms_integrations SET config = '{\"timezone\":\"UTC\",\"hours\":{\"tue\":[[\"08:00\",\"09:00\"]]}}' WHERE account_id = 'tool-1'"
	PARLAE_NOW=2026-11-30T15:00:00Z run --separate-stderr parlae vapi tool invoke checkAvailability --account tool-1 --args '{"date":"2026-12-01"}'
	assert_success
	assert_equal "$(jq -r '.results[0].result' <<<"$output" | jq -c '.slots | length')" "2"
}

@test "an account that is not connected fails with exit 5; the store's key refused is exit 3" {
	run --separate-stderr parlae secrets rotate nosuch-account
	assert_equal "$status" 5
	seed wrongkey 1 30
	PARLAE_MASTER_KEY=$NEW_MASTER run --separate-stderr parlae secrets rotate wrongkey-1
	assert_equal "$status" 3
	assert_regex "$stderr" "the key does not open the store"
}

# Nothing of Sikka's was asked for: no key granted, by refresh key or by secret key.
no_grants() { assert_equal "$(fake_get counters | jq -c '[.grants.refresh_key, .grants.request_key]')" '[0,0]'; }

@test "rotate with the key a re-key retired fails (exit 3) before Sikka is asked: the refresh keys are not spent" {
	export PARLAE_SECRET_STORE=file:$BATS_TEST_TMPDIR/vault
	seed retired 2 30
	PARLAE_MASTER_KEY_NEW=$NEW_MASTER parlae secrets rotate --master-key >/dev/null 2>&1
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets rotate retired-1 retired-2 --json
	assert_equal "$status" 3
	assert_equal "$(jq -c '[.rotated, .skipped, .notDue, .failed]' <<<"$output")" '[0,0,0,2]'
	assert_equal "$(jq -r '[.accounts[].detail] | unique[]' <<<"$output")" "the key does not open the store (its key-check record)"
	no_grants
	PARLAE_MASTER_KEY=$NEW_MASTER key_works retired-1
	PARLAE_MASTER_KEY=$NEW_MASTER key_works retired-2
	assert_equal "$(sql "SELECT string_agg(secret_version, ',') FROM pms_integrations WHERE account_id LIKE 'retired-%'")" "1,1"
}

@test "rotate during an unfinished re-key fails (exit 3) before Sikka is asked, by the batch and by a tool's refresh" {
	export PARLAE_SECRET_STORE=file:$BATS_TEST_TMPDIR/vault
	seed marked 2 30
	# The re-key dies with its marker written and no secret re-encrypted: every secret still
	# opens under the old key, which the store no longer lets anyone write with.
	slow_rekey "$MASTER" "$NEW_MASTER" 1 60000000
	wait_for test -e "$BATS_TEST_TMPDIR/vault/.rekey"
	kill_rekey
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets rotate marked-1 --force
	assert_equal "$status" 3
	assert_equal "$output" "rotated 0, skipped 0 (held by another process), not due 0, failed 1"
	assert_equal "$stderr" "parlae: marked-1: the secret store has an unfinished re-key"
	no_grants
	# A tool whose request key has expired refreshes through pl_rotate_account.
	fake expire '{"office_id":"D36225"}' >/dev/null
	sql "UPDATE pms_integrations SET config = '{\"timezone\":\"UTC\",\"hours\":{\"tue\":[[\"08:00\",\"09:00\"]]}}' WHERE account_id = 'marked-2'"
	PARLAE_NOW=2026-11-30T15:00:00Z run --separate-stderr parlae vapi tool invoke checkAvailability --account marked-2 --args '{"date":"2026-12-01"}'
	assert_equal "$status" 3
	assert_equal "$(jq -c '[.results[] | [.name, .error]]' <<<"$output")" '[["checkAvailability","the secret store has an unfinished re-key"]]'
	assert_equal "$stderr" "parlae: vapi tool invoke: checkAvailability ($(jq -r '.results[0].toolCallId' <<<"$output")): the secret store has an unfinished re-key"
	no_grants
	assert_equal "$(sql "SELECT string_agg(secret_version, ',') FROM pms_integrations WHERE account_id LIKE 'marked-%'")" "1,1"
	# Finished with both keys, the store rotates again.
	PARLAE_MASTER_KEY_NEW=$NEW_MASTER run --separate-stderr parlae secrets rotate --master-key
	assert_success --stderr 'now use the new key'
	PARLAE_MASTER_KEY=$NEW_MASTER run --separate-stderr parlae secrets rotate marked-1 --force
	assert_success
}

@test "a re-key started while a rotation waits on Sikka waits for it: the new keys are stored, then re-encrypted" {
	export PARLAE_SECRET_STORE=file:$BATS_TEST_TMPDIR/vault
	seed inflight 1 30
	fake counters/reset '{}' >/dev/null
	fake faults '{"method":"POST","path":"/v4/request_key","count":1,"delay_ms":3000}' >/dev/null
	parlae secrets rotate inflight-1 >"$BATS_TEST_TMPDIR/rot.out" 2>"$BATS_TEST_TMPDIR/rot.err" &
	rot=$!
	held() { [ "$(fake_get counters | jq .faults)" = 1 ]; }
	wait_for held
	PARLAE_MASTER_KEY_NEW=$NEW_MASTER parlae secrets rotate --master-key >"$BATS_TEST_TMPDIR/rekey.out" 2>"$BATS_TEST_TMPDIR/rekey.err" &
	rekey=$!
	rc=0
	wait "$rot" || rc=$?
	assert_equal "$rc $(cat "$BATS_TEST_TMPDIR/rot.out" "$BATS_TEST_TMPDIR/rot.err")" "0 rotated 1, skipped 0 (held by another process), not due 0, failed 0"
	rc=0
	wait "$rekey" || rc=$?
	assert_equal "$rc $(cat "$BATS_TEST_TMPDIR/rekey.out")" "0 re-encrypted 1 secret under PARLAE_MASTER_KEY_NEW"
	assert_equal "$(fake_get counters | jq -c '[.grants.refresh_key, .grants.request_key]')" '[1,0]'
	PARLAE_MASTER_KEY=$NEW_MASTER key_works inflight-1
	assert_equal "$(PARLAE_MASTER_KEY=$NEW_MASTER parlae secrets list | cut -f1-3)" "parlae/pms/sikka/inflight-1	2	1"
	assert_equal "$(sql "SELECT secret_version FROM pms_integrations WHERE account_id = 'inflight-1'")" "2"
}

@test "usage: accounts or --all, and a duration" {
	run --separate-stderr parlae secrets rotate
	assert_equal "$status" 2
	run --separate-stderr parlae secrets rotate --all x
	assert_equal "$status" 2
	run --separate-stderr parlae secrets rotate --all --within soon
	assert_equal "$status" 2
}

@test "--master-key re-encrypts the store; the old key no longer opens it" {
	seed rekey 3 600
	PARLAE_MASTER_KEY_NEW=$NEW_MASTER run --separate-stderr parlae secrets rotate --master-key --json
	assert_success
	assert_equal "$(jq -c .reencrypted <<<"$output")" "$(ls "$BATS_FILE_TMPDIR/vault" | grep -c '\.cur$')"
	assert_equal "$(sql "SELECT outcome || '|' || (metadata->>'secrets')::int FROM audit_events WHERE action = 'secrets.rekey' ORDER BY seq DESC LIMIT 1")" "success|$(ls "$BATS_FILE_TMPDIR/vault" | grep -c '\.cur$')"
	run --separate-stderr store_tool get parlae/pms/sikka/rekey-1
	assert_equal "$status" 3
	assert_regex "$stderr" "the key does not open the store"
	PARLAE_MASTER_KEY=$NEW_MASTER run --separate-stderr store_tool get parlae/pms/sikka/rekey-1
	assert_success
	# Back again, so the other tests keep their key.
	PARLAE_MASTER_KEY=$NEW_MASTER PARLAE_MASTER_KEY_NEW=$MASTER run parlae secrets rotate --master-key
	assert_success
}

# current_opens KEY...: the current version of every secret of the vault (each NAME.cur file,
# '~' for '/') opens under one of the KEYs. One store-tool open-all per key (the first line of a
# secret is its current version), not a store-tool get per secret and key (~1,100 processes).
current_opens() {
	local f name want key got
	want=$(for f in "$BATS_FILE_TMPDIR"/vault/*.cur; do
		name=${f##*/}
		name=${name%.cur}
		echo "${name//'~'//}"
	done | sort)
	[ -n "$want" ] || fail "no secret in the vault"
	got=$(for key in "$@"; do
		PARLAE_MASTER_KEY=$key store_tool open-all 2>/dev/null || true
		echo
	done | awk 'NF == 0 { run++; next } !first[run FS $1]++ && $3 == 0 { print $1 }' | sort -u)
	assert_equal "$got" "$want"
}

@test "--master-key killed at several points leaves every secret readable, and a rerun finishes" {
	seed crashkey 40 600
	# The check below can fail: before the re-key, the new key opens none of them.
	run current_opens "$NEW_MASTER"
	assert_failure 1
	for delay in 0.005 0.02 0.05; do
		PARLAE_MASTER_KEY_NEW=$NEW_MASTER parlae secrets rotate --master-key >/dev/null 2>&1 &
		pid=$!
		sleep $delay
		kill -9 $pid 2>/dev/null || true
		wait $pid || true
		current_opens "$MASTER" "$NEW_MASTER"
	done
	PARLAE_MASTER_KEY_NEW=$NEW_MASTER run --separate-stderr parlae secrets rotate --master-key
	assert_success --stderr 'now use the new key'
	current_opens "$NEW_MASTER"
	PARLAE_MASTER_KEY=$NEW_MASTER PARLAE_MASTER_KEY_NEW=$MASTER parlae secrets rotate --master-key >/dev/null
}

@test "an account named twice is refreshed once" {
	seed twice 1 30
	fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets rotate twice-1 twice-1 --json
	assert_success
	assert_equal "$(jq -c '[.rotated, .failed]' <<<"$output")" '[1,0]'
	assert_equal "$(fake_get counters | jq -c '[.grants.refresh_key, .grants.request_key]')" '[1,0]'
}
