#!/usr/bin/env bats
# The encrypted file secret store, driven through 'parlae secrets list' and, for get, put and
# delete (which have no command of their own), the test helper tests/helpers/store-tool.c.
# What every backend must do alike is in helpers/store-suite.bash, which 0110 runs against
# AWS Secrets Manager; this file adds what only the file store shows. No database needed.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/store
load helpers/store-suite

setup_file() { build_store_tool; }

# A fixed key, as hex and as base64 of the same 32 bytes.
KEY_HEX=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
KEY_B64=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
OTHER_KEY=ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

setup() {
	export HOME=$BATS_TEST_TMPDIR/home
	mkdir -p "$HOME"
	VAULT=$BATS_TEST_TMPDIR/vault
	export PARLAE_SECRET_STORE=file:$VAULT PARLAE_MASTER_KEY=$KEY_HEX
}

# put NAME VALUE: a put that is not the thing under test.
put() { printf '%s' "$2" | store_tool put "$1" >/dev/null; }

# The base64 of n bytes.
b64_of() { head -c "$1" /dev/zero | tr '\0' 'k' | base64 -w0; }

mode() { stat -c %a "$1"; }

@test "a secret put into the store reads back exactly as written" {
	suite_round_trip
	assert_equal "$V1" "1"
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check parlae~pms~sikka~happy-dental.cur "
}

@test "the default store is created 0700 with its parents, and secret files are 0600 whatever the umask" {
	unset PARLAE_SECRET_STORE
	(umask 000 && put a one && put a two)
	vault=$HOME/.local/share/parlae/vault
	assert_equal "$(mode "$vault")" "700"
	assert_equal "$(mode "$HOME/.local/share/parlae")" "700"
	assert_equal "$(mode "$HOME/.local")" "700"
	assert_equal "$(mode "$vault/a.cur")" "600"
	assert_equal "$(mode "$vault/a.prev")" "600"
	run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "two"
}

@test "a new put keeps the previous version readable; a third put drops the oldest" {
	suite_previous_version
	assert_equal "$V1 $V2 $V3" "1 2 3"
	# No temporary file is left behind; the key-check record came with the first put.
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check a.cur a.prev "
}

@test "a store directory open to other users is refused (exit 3) and left untouched" {
	mkdir -m 755 "$VAULT"
	run --separate-stderr store_tool put a <<<"value"
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: secret store $VAULT has mode 0755, open to other users (chmod 700 $VAULT)"
	assert_equal "$(ls -A "$VAULT")" ""
	run --separate-stderr parlae secrets list
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: secret store $VAULT has mode 0755, open to other users (chmod 700 $VAULT)"
	chmod 700 "$VAULT"
	put a value
	chmod 750 "$VAULT"
	run --separate-stderr store_tool get a
	assert_equal "$status" 3
	assert_equal "$output" ""
}

@test "a secret file that is not 0600 is refused when read (exit 3)" {
	put a value
	chmod 644 "$VAULT/a.cur"
	run --separate-stderr store_tool get a
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "store-tool: secret file $VAULT/a.cur has mode 0644, not 0600 (chmod 600 $VAULT/a.cur)"
	run --separate-stderr parlae secrets list
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: secret file $VAULT/a.cur has mode 0644, not 0600 (chmod 600 $VAULT/a.cur)"
}

@test "a symbolic link in place of a secret file is refused (exit 3)" {
	put a value
	mv "$VAULT/a.cur" "$BATS_TEST_TMPDIR/elsewhere"
	ln -s "$BATS_TEST_TMPDIR/elsewhere" "$VAULT/a.cur"
	run --separate-stderr store_tool get a
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_regex "$stderr" "^store-tool: secret store $VAULT/a.cur: "
}

@test "without a master key, put and get exit 3 naming PARLAE_MASTER_KEY and write nothing" {
	put a value
	unset PARLAE_MASTER_KEY
	hint="export PARLAE_MASTER_KEY (or PARLAE_MASTER_KEY_FILE naming a file) with 32 bytes, e.g. from 'openssl rand -hex 32'"
	for args in "put b" "put a" "get a" "get nothing"; do
		run --separate-stderr store_tool $args <<<"new"
		assert_equal "$status" 3
		assert_equal "$output" ""
		assert_equal "$stderr" "store-tool: PARLAE_MASTER_KEY is not set: it is needed to read or write the secret store ($hint)"
	done
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check a.cur "
	# Listing reads no value, so it needs no key.
	run --separate-stderr parlae secrets list
	assert_success
	assert_equal "$stderr" ""
}

@test "a key that is not 32 bytes is refused (exit 3), as hex, as base64 or in a key file" {
	msg="store-tool: PARLAE_MASTER_KEY must be 32 bytes (64 hex digits or base64) (generate one with 'openssl rand -hex 32')"
	for key in "${KEY_HEX:0:62}" "${KEY_HEX}00" "$(b64_of 31)" "$(b64_of 33)" "not a key" "${KEY_HEX:0:63}g"; do
		PARLAE_MASTER_KEY=$key run --separate-stderr store_tool put a <<<"value"
		assert_equal "$status" 3
		assert_equal "$stderr" "$msg"
	done
	[ ! -e "$VAULT" ]
	unset PARLAE_MASTER_KEY
	b64_of 33 >"$BATS_TEST_TMPDIR/key"
	chmod 600 "$BATS_TEST_TMPDIR/key"
	PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/key run --separate-stderr store_tool put a <<<"value"
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: the key in PARLAE_MASTER_KEY_FILE must be 32 bytes (64 hex digits or base64) (generate one with 'openssl rand -hex 32')"
	PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/missing run --separate-stderr store_tool put a <<<"value"
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: PARLAE_MASTER_KEY_FILE $BATS_TEST_TMPDIR/missing: No such file or directory (point PARLAE_MASTER_KEY_FILE at a file holding the key)"
}

@test "hex and base64 keys and PARLAE_MASTER_KEY_FILE all open the same store" {
	put a value
	PARLAE_MASTER_KEY=$KEY_B64 run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "value"
	PARLAE_MASTER_KEY=${KEY_B64%=} run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "value"
	unset PARLAE_MASTER_KEY
	echo "$KEY_HEX" >"$BATS_TEST_TMPDIR/hexkey"
	printf '%s\r\n' "$KEY_B64" >"$BATS_TEST_TMPDIR/b64key"
	chmod 600 "$BATS_TEST_TMPDIR/hexkey" "$BATS_TEST_TMPDIR/b64key"
	for f in hexkey b64key; do
		PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/$f run --separate-stderr store_tool get a
		assert_success
		assert_equal "$stderr" ""
		assert_equal "$output" "value"
	done
	# The variable wins over the file.
	echo "$OTHER_KEY" >"$BATS_TEST_TMPDIR/otherkey"
	chmod 600 "$BATS_TEST_TMPDIR/otherkey"
	PARLAE_MASTER_KEY=$KEY_HEX PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/otherkey run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "value"
}

@test "a wrong key exits 3: the key does not open the store" {
	put a value
	PARLAE_MASTER_KEY=$OTHER_KEY run --separate-stderr store_tool get a
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "store-tool: the key does not open the store (secret a) (check PARLAE_MASTER_KEY / PARLAE_MASTER_KEY_FILE; a secret file copied, renamed or edited does not open either)"
}

@test "a secret file copied under another name, or edited to claim another version, does not open" {
	put a one
	put a two
	cp -p "$VAULT/a.cur" "$VAULT/b.cur"
	run --separate-stderr store_tool get b
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_regex "$stderr" "^store-tool: the key does not open the store \(secret b\)"
	# The copy is not listed as a secret of its own.
	assert_equal "$(parlae secrets list | cut -f1-3)" $'a\t2\t1'
	rm "$VAULT/b.cur"
	# Header: "PLSECRET", format, len(version), len(name), then the version at offset 11.
	assert_equal "$(head -c 12 "$VAULT/a.cur" | tail -c 1)" "2"
	printf 1 | dd of="$VAULT/a.cur" bs=1 seek=11 conv=notrunc status=none
	run --separate-stderr store_tool get a 1
	assert_equal "$status" 3
	assert_regex "$stderr" "^store-tool: the key does not open the store \(secret a\)"
}

@test "the value and the key never appear in the store files or in any output" {
	value=sk-live-5f2b8c1e9d7a46b3a0c4e6f8
	put parlae/pms/sikka/happy "$value"
	put parlae/pms/sikka/happy "$value-v2"
	[ "$(grep -rlF -e "$value" -e "$KEY_HEX" -e "$KEY_B64" "$VAULT" | wc -l)" -eq 0 ]
	assert_equal "$(grep -rcF "$value" "$VAULT" | cut -d: -f2 | sort -u)" "0"
	all=""
	for args in "secrets list" "secrets list --json"; do
		run --separate-stderr parlae $args
		all+="$output$stderr"
	done
	PARLAE_MASTER_KEY=$OTHER_KEY run --separate-stderr store_tool get parlae/pms/sikka/happy
	all+="$output$stderr"
	chmod 644 "$VAULT/parlae~pms~sikka~happy.cur"
	run --separate-stderr store_tool get parlae/pms/sikka/happy
	all+="$output$stderr"
	[[ $all == *parlae/pms/sikka/happy* ]]
	refute_secrets_in "$all" "$value" "$KEY_HEX" "$KEY_B64" "$OTHER_KEY"
}

@test "names that could escape the store are refused (exit 2) and nothing is created anywhere" {
	# Everything in the test's directory but bats' own files for 'run --separate-stderr'.
	snapshot() { (cd "$BATS_TEST_TMPDIR" && find . ! -name 'separate-stderr-*' | sort); }
	before=$(snapshot)
	suite_bad_names
	assert_equal "$(snapshot)" "$before"
}

@test "names up to 255 bytes are stored, listed and read back; 256 bytes are refused" {
	suite_long_names
	assert_equal "$(ls -A "$VAULT")" ".key-check"
}

@test "a value of 65536 bytes is stored; one byte more is refused (exit 65)" {
	suite_value_limit
}

@test "a missing secret or version is not found (exit 5)" {
	suite_not_found
}

@test "put-if is a compare-and-swap: a stale or absent expected version is refused (exit 10)" {
	suite_put_if
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check a.cur a.prev "
}

@test "six writers racing put-if from the same version: exactly one wins" {
	suite_put_if_race
}

@test "secrets list --json shows names, versions and dates, never values" {
	suite_list_json
	assert_equal "$(parlae secrets list --json | jq -c '[.[] | [.version, .previous]]')" '[["1",null],["2","1"]]'
}

@test "secrets list without a TTY prints tab-separated rows, no header" {
	suite_list_text
	assert_regex "$(parlae secrets list | cut -f1-3 | tr '\t\n' ': ')" '^a:2:1 b/c:1:- $'
}

@test "secrets list on a store that does not exist yet is empty and creates nothing" {
	suite_list_empty
	[ ! -e "$VAULT" ]
}

@test "secrets list refuses arguments (exit 2); an aws: store without credentials exits 3" {
	run --separate-stderr parlae secrets list extra
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: unexpected argument 'extra' (usage: parlae secrets list)"
	PARLAE_SECRET_STORE=aws:us-east-1 run --separate-stderr parlae secrets list
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: AWS_ACCESS_KEY_ID is not set: the aws: secret store needs AWS credentials (export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN with temporary credentials)"
}

@test "what a killed writer leaves behind breaks neither get, list nor the next put" {
	put a one
	put a two
	# Killed while writing its temporary file: a torn copy under a temporary name.
	head -c 20 "$VAULT/a.cur" >"$VAULT/.tmp-0123456789abcdef"
	chmod 600 "$VAULT/.tmp-0123456789abcdef"
	# Killed after the current file was linked as previous, before the new one was renamed in.
	ln -f "$VAULT/a.cur" "$VAULT/a.prev"
	run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "two"
	run --separate-stderr parlae secrets list
	assert_success
	assert_equal "$(cut -f1-3 <<<"$output")" $'a\t2\t2'
	run --separate-stderr store_tool put a <<<"three"
	assert_success
	assert_equal "$output" "3"
	assert_equal "$(store_tool get a)" "three"
	assert_equal "$(store_tool get a 2)" "two"
	assert_equal "$(parlae secrets list | cut -f1-3)" $'a\t3\t2'
	# A put does not remove the torn file (it may be a live writer's: only a re-key, which
	# excludes every writer, does); nothing else is left.
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check .tmp-0123456789abcdef a.cur a.prev "
}

@test "delete removes every version of a secret; deleting it again is not found (exit 5)" {
	suite_delete
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check a.cur b.cur "
	# Nothing of it is left: written again, it started over at version 1.
	assert_equal "$(parlae secrets list | cut -f1-2 | head -1)" $'a\t1'
}

@test "a store directory or secret file owned by another user is refused (exit 3), as the mode is" {
	put a value
	chown 65534 "$VAULT/a.cur"
	run --separate-stderr store_tool get a
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "store-tool: secret file $VAULT/a.cur is owned by uid 65534, not by this user (uid $(id -u)) (chown $(id -u) $VAULT/a.cur)"
	run --separate-stderr parlae secrets list
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: secret file $VAULT/a.cur is owned by uid 65534, not by this user (uid $(id -u)) (chown $(id -u) $VAULT/a.cur)"
	chown "$(id -u)" "$VAULT/a.cur"
	chown 65534 "$VAULT/.key-check"
	run --separate-stderr store_tool put b <<<"value"
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: secret file $VAULT/.key-check is owned by uid 65534, not by this user (uid $(id -u)) (chown $(id -u) $VAULT/.key-check)"
	chown "$(id -u)" "$VAULT/.key-check"
	chown 65534 "$VAULT"
	for args in "put b" "get a" "delete a"; do
		run --separate-stderr store_tool $args <<<"value"
		assert_equal "$status" 3
		assert_equal "$stderr" "store-tool: secret store $VAULT is owned by uid 65534, not by this user (uid $(id -u)) (chown $(id -u) $VAULT)"
	done
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check a.cur "
}

@test "a PARLAE_MASTER_KEY_FILE that others may read is refused (exit 3) with a chmod hint" {
	put a value
	unset PARLAE_MASTER_KEY
	echo "$KEY_HEX" >"$BATS_TEST_TMPDIR/key"
	for m in 644 640 604 660; do
		chmod "$m" "$BATS_TEST_TMPDIR/key"
		PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/key run --separate-stderr store_tool get a
		assert_equal "$status" 3
		assert_equal "$output" ""
		assert_equal "$stderr" "store-tool: PARLAE_MASTER_KEY_FILE $BATS_TEST_TMPDIR/key has mode 0$m: others may read the key (chmod 600 $BATS_TEST_TMPDIR/key)"
	done
	for m in 600 400; do
		chmod "$m" "$BATS_TEST_TMPDIR/key"
		PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/key run --separate-stderr store_tool get a
		assert_success
		assert_equal "$output" "value"
	done
}

@test "a PARLAE_MASTER_KEY_FILE owned by another user is refused (exit 3) with a chown hint, even at 0600" {
	put a value
	unset PARLAE_MASTER_KEY
	echo "$KEY_HEX" >"$BATS_TEST_TMPDIR/key"
	chmod 600 "$BATS_TEST_TMPDIR/key"
	chown 65534 "$BATS_TEST_TMPDIR/key"
	for args in "get a" "put b"; do
		PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/key run --separate-stderr store_tool $args <<<"other"
		assert_equal "$status" 3
		assert_equal "$output" ""
		assert_equal "$stderr" "store-tool: PARLAE_MASTER_KEY_FILE $BATS_TEST_TMPDIR/key is owned by another user (uid 65534), not by this user (uid $(id -u)) (chown $(id -u) $BATS_TEST_TMPDIR/key)"
	done
	assert_equal "$(ls -A "$VAULT" | tr '\n' ' ')" ".key-check a.cur "
	chown "$(id -u)" "$BATS_TEST_TMPDIR/key"
	PARLAE_MASTER_KEY_FILE=$BATS_TEST_TMPDIR/key run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "value"
}

@test "a put with a key that does not open the store is refused (exit 3) and writes nothing" {
	put a value
	before=$(ls -A --full-time "$VAULT"; cat "$VAULT"/* "$VAULT"/.key-check | sha256sum)
	for args in "put b" "put a" "put-if a 1"; do
		PARLAE_MASTER_KEY=$OTHER_KEY run --separate-stderr store_tool $args <<<"other"
		assert_equal "$status" 3
		assert_equal "$output" ""
		assert_equal "$stderr" "store-tool: the key does not open the store (its key-check record) (if the store was re-keyed ('parlae secrets rotate --master-key'), use its PARLAE_MASTER_KEY_NEW as PARLAE_MASTER_KEY)"
	done
	assert_equal "$(ls -A --full-time "$VAULT"; cat "$VAULT"/* "$VAULT"/.key-check | sha256sum)" "$before"
}

@test "a store written before the key-check record gets one from a put whose key opens a secret" {
	put a value
	rm "$VAULT/.key-check"
	# A key that opens no secret is refused, naming the secret it tried.
	PARLAE_MASTER_KEY=$OTHER_KEY run --separate-stderr store_tool put b <<<"other"
	assert_equal "$status" 3
	assert_regex "$stderr" "^store-tool: the key does not open the store \(secret file a.cur\) "
	[ ! -e "$VAULT/.key-check" ]
	run --separate-stderr store_tool put b <<<"mine"
	assert_success
	[ -e "$VAULT/.key-check" ]
	assert_equal "$(mode "$VAULT/.key-check")" "600"
	# The record is no secret: list and get never see it.
	assert_equal "$(parlae secrets list | cut -f1 | tr '\n' ' ')" "a b "
	run --separate-stderr store_tool get .key-check
	assert_equal "$status" 2
}
