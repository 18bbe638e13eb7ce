#!/usr/bin/env bats
# secrets rotate --master-key against writers and crashes: one key at a time in the file store.
# A re-key is slowed or stopped at a chosen rename with strace's fault injection
# (-e inject=renameat:delay_exit=MICROSECONDS:when=N), so that the races and the crash points
# are the ones named, not whatever the scheduler picks.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/store

KEY_A=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
KEY_B=0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000
KEY_C=c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf

RETIRED="the key does not open the store (its key-check record) (if the store was re-keyed ('parlae secrets rotate --master-key'), use its PARLAE_MASTER_KEY_NEW as PARLAE_MASTER_KEY)"
UNFINISHED="the secret store has an unfinished re-key (rerun 'parlae secrets rotate --master-key' with both keys)"

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
	VAULT=$BATS_TEST_TMPDIR/vault
	export PARLAE_SECRET_STORE=file:$VAULT PARLAE_MASTER_KEY=$KEY_A
	export PARLAE_STATE_SECRET=sekrit-state-secret-for-tests-0123456789 APP_BASE_URL=https://backend.example
}

# seed N: secrets s1..sN under the current key, each with a previous version.
seed() {
	local i
	for i in $(seq 1 "$1"); do
		printf 'old-%s' "$i" | store_tool put "s$i" >/dev/null
		printf 'value-%s' "$i" | store_tool put "s$i" >/dev/null
	done
}

# Every file of the store but the writers' lock: name, inode, modification time and contents.
snapshot() {
	(cd "$VAULT" && ls -A | grep -vx .writers | while read -r f; do
		echo "$f $(stat -c '%i %y' "$f") $(sha256sum <"$f" | cut -c1-64)"
	done)
}

# opens_all KEY: every version of every secret opens under KEY.
# opens_none KEY: no version of any secret opens under KEY (exit 3: the key does not open it).
opens_with() {
	local out
	out=$(PARLAE_MASTER_KEY=$1 store_tool open-all)
	[ -n "$out" ] && [ -z "$(awk -v want="$2" '$3 != want' <<<"$out")" ] ||
		{ echo "under ${1:0:4}..., not all $2:" >&2; echo "$out" >&2; return 1; }
}
opens_all() { opens_with "$1" 0; }
opens_none() { opens_with "$1" 3; }

@test "strace can slow a rename here (the tests below rely on it)" {
	touch "$BATS_TEST_TMPDIR/a"
	run strace -f -o /dev/null -qq -e trace=renameat,rename,renameat2 \
		-e inject=renameat,rename,renameat2:delay_exit=1000:when=1 mv "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
	assert_success
	[ -e "$BATS_TEST_TMPDIR/b" ]
}

@test "a writer racing a re-key 20 times, delayed at a different rename each time, never writes under the retired key" {
	local keys=("$KEY_A" "$KEY_B") i old new when rc
	seed 6
	for i in $(seq 1 20); do
		old=${keys[$(((i - 1) % 2))]}
		new=${keys[$((i % 2))]}
		# Renames: the marker, 12 files, the key-check record (and each earlier winner's 2),
		# each held 50 ms from the when-th on. Half the writers start with the re-key, half
		# once it holds the lock (its marker is there, and at least six renames are left):
		# all load the key that is being retired before they can take the lock.
		if [ $((i % 2)) = 1 ]; then
			slow_rekey "$old" "$new" $(((i * 7) % 16 + 1))+ 50000
		else
			slow_rekey "$old" "$new" $((i / 2 % 8 + 1))+ 50000
			wait_for test -e "$VAULT/.rekey"
		fi
		rc=0
		printf 'new-%s' "$i" | PARLAE_MASTER_KEY=$old store_tool put "new/w$i" \
			>/dev/null 2>"$BATS_TEST_TMPDIR/writer.err" || rc=$?
		wait "$REKEY_PID" || { cat "$BATS_TEST_TMPDIR/rekey.err" >&2; return 1; }
		assert_equal "$(cat "$BATS_TEST_TMPDIR/rekey.err")" "now use the new key as PARLAE_MASTER_KEY; the old one no longer opens the store"
		case $rc in
		0) assert_equal "$(PARLAE_MASTER_KEY=$new store_tool get "new/w$i")" "new-$i" ;;
		3) assert_equal "$(cat "$BATS_TEST_TMPDIR/writer.err")" "store-tool: $RETIRED"
		   [ ! -e "$VAULT/new~w$i.cur" ] ;;
		*) echo "writer $i: exit $rc: $(cat "$BATS_TEST_TMPDIR/writer.err")" >&2; return 1 ;;
		esac
		opens_all "$new"
		opens_none "$old"
		[ ! -e "$VAULT/.rekey" ]
		[ -z "$(ls -A "$VAULT" | grep '^\.tmp-')" ]
	done
}

@test "sikka callback racing a re-key: the new practice's keys end under the new key, or the callback is refused" {
	local keys=("$KEY_A" "$KEY_B") i old new url landed rc
	seed 3
	for i in 1 2 3 4 5 6; do
		old=${keys[$(((i - 1) % 2))]}
		new=${keys[$((i % 2))]}
		parlae account add "cb$i" >/dev/null
		PARLAE_MASTER_KEY=$old parlae pms setup "cb$i" --timezone America/New_York >/dev/null
		url=$(PARLAE_MASTER_KEY=$old parlae sikka oauth-url "cb$i")
		landed=$(curl -sS -o /dev/null -w '%{redirect_url}' "$url")
		slow_rekey "$old" "$new" "$i"+ 50000
		rc=0
		PARLAE_MASTER_KEY=$old parlae sikka callback --url "$landed" >/dev/null 2>"$BATS_TEST_TMPDIR/cb.err" || rc=$?
		wait "$REKEY_PID" || { cat "$BATS_TEST_TMPDIR/rekey.err" >&2; return 1; }
		case $rc in
		0) assert_equal "$(sql "SELECT status FROM pms_integrations WHERE account_id = 'cb$i'")" "ACTIVE"
		   PARLAE_MASTER_KEY=$new store_tool get "parlae/pms/sikka/cb$i" >/dev/null ;;
		3) assert_regex "$(cat "$BATS_TEST_TMPDIR/cb.err")" "^parlae: (the key does not open the store \(its key-check record\) \(if the store was re-keyed .*PARLAE_MASTER_KEY_NEW as PARLAE_MASTER_KEY\)|the secret store has an unfinished re-key \(rerun 'parlae secrets rotate --master-key' with both keys\))$"
		   assert_equal "$(sql "SELECT status FROM pms_integrations WHERE account_id = 'cb$i'")" "$(sql "SELECT status FROM pms_integrations WHERE account_id = 'cb$i' AND status IN ('ERROR', 'INACTIVE', 'CONNECTING')")" ;;
		*) echo "callback $i: exit $rc: $(cat "$BATS_TEST_TMPDIR/cb.err")" >&2; return 1 ;;
		esac
		opens_all "$new"
		opens_none "$old"
	done
}

@test "re-keying a store that does not exist yet creates it under the new key: the retired key cannot write to it" {
	[ ! -e "$VAULT" ]
	PARLAE_MASTER_KEY_NEW=$KEY_B run --separate-stderr parlae secrets rotate --master-key --dry-run
	assert_success
	assert_equal "$output" "would re-encrypt 0 secrets under PARLAE_MASTER_KEY_NEW"
	[ ! -e "$VAULT" ]
	PARLAE_MASTER_KEY_NEW=$KEY_B run --separate-stderr parlae secrets rotate --master-key
	assert_success --stderr 'now use the new key'
	assert_equal "$output" "re-encrypted 0 secrets under PARLAE_MASTER_KEY_NEW"
	assert_equal "$stderr" "now use the new key as PARLAE_MASTER_KEY; the old one no longer opens the store"
	assert_equal "$(stat -c %a "$VAULT")" "700"
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check .writers "
	assert_equal "$(stat -c %a "$VAULT/.key-check")" "600"
	# The next writer with the retired key is refused; the new key writes.
	run --separate-stderr store_tool put s1 <<<"under-a"
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: $RETIRED"
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check .writers "
	PARLAE_MASTER_KEY=$KEY_B run --separate-stderr store_tool put s1 <<<"under-b"
	assert_success
	opens_all "$KEY_B"
	PARLAE_MASTER_KEY=$KEY_B run --separate-stderr parlae status --check
	assert_success
}

@test "a file that neither key opens: exit 3 naming it, and no file is rewritten" {
	seed 5
	# A secret of another store, under another key.
	PARLAE_SECRET_STORE=file:$BATS_TEST_TMPDIR/other PARLAE_MASTER_KEY=$KEY_C store_tool put z <<<"z" >/dev/null
	cp -p "$BATS_TEST_TMPDIR/other/z.cur" "$VAULT/z.cur"
	before=$(snapshot)
	PARLAE_MASTER_KEY_NEW=$KEY_B run --separate-stderr parlae secrets rotate --master-key
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: neither PARLAE_MASTER_KEY nor PARLAE_MASTER_KEY_NEW opens $VAULT/z.cur: nothing was re-encrypted (check both keys; move a file that is not parlae's out of the store)"
	assert_equal "$(snapshot)" "$before"
	rm "$VAULT/z.cur"
	opens_all "$KEY_A"
	assert_equal "$(sql "SELECT outcome || ' ' || error_code FROM audit_events WHERE action = 'secrets.rekey' ORDER BY seq DESC LIMIT 1")" "failure config"
}

@test "a re-key killed midway: status reports it, --check fails naming it, writers are refused, a rerun finishes" {
	seed 5
	# A temporary file a crashed writer left behind.
	head -c 40 "$VAULT/s1.cur" >"$VAULT/.tmp-00deadbeef00cafe"
	chmod 600 "$VAULT/.tmp-00deadbeef00cafe"
	touch -d '2026-01-01' "$VAULT"/*.cur "$VAULT"/*.prev
	# Held for a minute after its 4th rename: the marker and three files are done.
	slow_rekey "$KEY_A" "$KEY_B" 4 60000000
	done3() { [ -e "$VAULT/.rekey" ] && [ "$(find "$VAULT" -name '*.cur' -newermt '2026-06-01' -o -name '*.prev' -newermt '2026-06-01' | wc -l)" = 3 ]; }
	wait_for done3
	kill_rekey
	[ -e "$VAULT/.rekey" ]

	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.secretStore | [.reachable, .keyOpens, .rekeyUnfinished]' <<<"$output")" '[true,true,true]'
	run --separate-stderr parlae status
	assert_line "secret store  file:$VAULT, usable, the master key opens it; an unfinished re-key"
	run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_equal "$stderr" "parlae: status --check: $UNFINISHED"

	# Writers are refused with either key, and so is a delete.
	for key in "$KEY_A" "$KEY_B"; do
		PARLAE_MASTER_KEY=$key run --separate-stderr store_tool put s9 <<<"x"
		assert_equal "$status" 3
		assert_equal "$stderr" "store-tool: $UNFINISHED"
	done
	run --separate-stderr store_tool delete s1
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: $UNFINISHED"

	# A rerun to a third key is refused and changes nothing.
	before=$(snapshot)
	PARLAE_MASTER_KEY_NEW=$KEY_C run --separate-stderr parlae secrets rotate --master-key
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: the secret store has an unfinished re-key to another key: PARLAE_MASTER_KEY_NEW does not open $VAULT/.rekey (rerun with the PARLAE_MASTER_KEY_NEW it was started with)"
	assert_equal "$(snapshot)" "$before"

	# The same two keys finish it.
	PARLAE_MASTER_KEY_NEW=$KEY_B run --separate-stderr parlae secrets rotate --master-key
	assert_success --stderr 'now use the new key'
	# Those of the five whose current file the killed run had not done yet.
	assert_regex "$output" "^re-encrypted [2-5] secrets under PARLAE_MASTER_KEY_NEW$"
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check .writers s1.cur s1.prev s2.cur s2.prev s3.cur s3.prev s4.cur s4.prev s5.cur s5.prev "
	opens_all "$KEY_B"
	opens_none "$KEY_A"
	PARLAE_MASTER_KEY=$KEY_B run --separate-stderr parlae status --check
	assert_success
	assert_equal "$stderr" ""
}

@test "a rerun after a finished re-key changes nothing; the retired key is refused everywhere" {
	seed 3
	PARLAE_MASTER_KEY_NEW=$KEY_B run --separate-stderr parlae secrets rotate --master-key
	assert_success --stderr 'now use the new key'
	before=$(snapshot)
	# Everything opens under the new key already: nothing is rewritten.
	PARLAE_MASTER_KEY_NEW=$KEY_B run --separate-stderr parlae secrets rotate --master-key
	assert_success --stderr 'now use the new key'
	assert_equal "$output" "re-encrypted 0 secrets under PARLAE_MASTER_KEY_NEW"
	assert_equal "$(snapshot)" "$before"
	run --separate-stderr store_tool put s1 <<<"x"
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: $RETIRED"
	run --separate-stderr parlae status --check --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '.secretStore | [.keyOpens, .rekeyUnfinished]' <<<"$output")" '[false,false]'
	# A third key is refused: the record opens under neither.
	PARLAE_MASTER_KEY_NEW=$KEY_C run --separate-stderr parlae secrets rotate --master-key
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: neither PARLAE_MASTER_KEY nor PARLAE_MASTER_KEY_NEW opens $VAULT/.key-check: nothing was re-encrypted (check both keys; move a file that is not parlae's out of the store)"
	assert_equal "$(snapshot)" "$before"
}
