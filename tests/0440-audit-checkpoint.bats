#!/usr/bin/env bats
# Signed checkpoints: parlae audit checkpoint signs the chain head with an Ed25519 key kept
# outside the database, and audit verify --checkpoints holds the chain to every line, so that
# even the owner of the audit table cannot rewrite history unnoticed. Tampering runs as the
# owner (ALTER TABLE ... DISABLE TRIGGER USER), each test in a database of its own.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
	local k=$BATS_FILE_TMPDIR/keys
	mkdir -p "$k"
	for name in signing other; do
		openssl genpkey -algorithm ed25519 -out "$k/$name.pem" 2>/dev/null
		chmod 600 "$k/$name.pem"
		openssl pkey -in "$k/$name.pem" -pubout -out "$k/$name.pub" 2>/dev/null
	done
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$k/ec.pem" 2>/dev/null
	chmod 600 "$k/ec.pem"
	openssl pkey -in "$k/ec.pem" -pubout -out "$k/ec.pub" 2>/dev/null
}

setup() {
	setup_home
	KEYS=$BATS_FILE_TMPDIR/keys
	PUB=$KEYS/signing.pub
	CP=$BATS_TEST_TMPDIR/checkpoints.jsonl
	export PARLAE_AUDIT_SIGNING_KEY_FILE=$KEYS/signing.pem PARLAE_AUDIT_CHECKPOINTS=$CP
}

# A database of this test's own (commands as parlae_app) with 5 events, all made by parlae
# itself: db.migrate, a1
# added, a2 added, a1 added again (a conflict: a failure event), a3 added.
log_db() { # NAME
	export PARLAE_DATABASE_URL
	PARLAE_DATABASE_URL=$(pg_new_app_database "t_0440_$1") || return 1
	parlae account add a1 >/dev/null
	parlae account add a2 >/dev/null
	parlae account add a1 >/dev/null 2>&1 || true
	parlae account add a3 >/dev/null
	[ "$(head_seq)" = 5 ]
}

head_seq() { sql_owner "SELECT seq FROM audit_chain_head"; }
hash_of() { sql_owner "SELECT hash FROM audit_events WHERE seq = $1"; }

# SQL as the owner of the audit table, with its triggers switched off, as an insider would.
tamper() {
	sql_owner "ALTER TABLE audit_events DISABLE TRIGGER USER;
		ALTER TABLE audit_chain_head DISABLE TRIGGER USER;
		$1;
		ALTER TABLE audit_events ENABLE TRIGGER USER;
		ALTER TABLE audit_chain_head ENABLE TRIGGER USER" >/dev/null
}

# The owner's rewrite of issue 10: delete a1's events, turn a2's success into a failure,
# renumber and recompute every hash with audit_canonical, move the chain head.
REWRITE=$(
	cat <<'SQL'
DELETE FROM audit_events WHERE account_id = 'a1';
UPDATE audit_events SET outcome = 'failure', error_code = 'upstream' WHERE account_id = 'a2';
DO $$
DECLARE
	e audit_events;
	n bigint := 0;
	prev text := repeat('0', 64);
BEGIN
	FOR e IN SELECT * FROM audit_events ORDER BY seq LOOP
		n := n + 1;
		UPDATE audit_events SET seq = n WHERE seq = e.seq;
	END LOOP;
	FOR e IN SELECT * FROM audit_events ORDER BY seq LOOP
		UPDATE audit_events
			SET prev_hash = prev,
			    hash = encode(sha256(convert_to(prev || audit_canonical(e), 'UTF8')), 'hex')
			WHERE seq = e.seq RETURNING hash INTO prev;
	END LOOP;
	UPDATE audit_chain_head SET seq = n, hash = prev;
END
$$
SQL
)

verify_cp() { run --separate-stderr parlae audit verify --checkpoints "${1:-$CP}" --public-key "${2:-$PUB}"; }

@test "audit checkpoint appends one line that openssl verifies, and records audit.checkpoint" {
	log_db first
	run --separate-stderr parlae audit checkpoint
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "checkpoint of event 5 appended to $CP"
	assert_equal "$(wc -l <"$CP")" 1
	line=$(cat "$CP")
	key=$(openssl pkey -pubin -in "$PUB" -outform DER | sha256sum | cut -d' ' -f1)
	assert_equal "$(jq -c '[.seq, .hash, .key]' <<<"$line")" "[5,\"$(hash_of 5)\",\"$key\"]"
	assert_regex "$line" '^\{"seq":5,"hash":"[0-9a-f]{64}","prev":"0{64}","at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z","key":"[0-9a-f]{64}","sig":"[A-Za-z0-9+/]{86}=="\}$'
	# Created by the signer, writable by no one else.
	assert_equal "$(stat -c '%a %u' "$CP")" "644 $(id -u)"
	# The signed message, rebuilt by hand and checked by openssl, not by parlae.
	printf 'parlae-audit-checkpoint\n%s\n%s\n%s\n%s' "$(jq -r .seq <<<"$line")" \
		"$(jq -r .hash <<<"$line")" "$(jq -r .prev <<<"$line")" "$(jq -r .at <<<"$line")" \
		>"$BATS_TEST_TMPDIR/msg"
	jq -r .sig <<<"$line" | base64 -d >"$BATS_TEST_TMPDIR/sig"
	run openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$BATS_TEST_TMPDIR/msg" \
		-sigfile "$BATS_TEST_TMPDIR/sig"
	assert_success
	assert_output "Signature Verified Successfully"
	assert_equal "$(sql_owner "SELECT action, outcome, resource_id, metadata::text FROM audit_events WHERE seq = 6")" \
		'audit.checkpoint|success|5|{"seq": 5}'
	verify_cp
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "audit log intact: 6 events, chain head at event 6 ($(hash_of 6))
checkpoints intact: 1 line, the newest at event 5"
}

@test "--output names the file, --json prints the line's object, and with no file the line goes to stdout" {
	log_db output
	run --separate-stderr parlae audit checkpoint --output "$BATS_TEST_TMPDIR/other.jsonl" --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "$(cat "$BATS_TEST_TMPDIR/other.jsonl")"
	[ ! -e "$CP" ]
	unset PARLAE_AUDIT_CHECKPOINTS
	run --separate-stderr parlae audit checkpoint
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.seq, .hash]' <<<"$output")" "[6,\"$(hash_of 6)\"]"
	[ ! -e "$CP" ]
}

@test "the key file and the checkpoint file may be named in the config file: neither is a secret" {
	log_db config
	unset PARLAE_AUDIT_SIGNING_KEY_FILE PARLAE_AUDIT_CHECKPOINTS
	printf 'PARLAE_AUDIT_SIGNING_KEY_FILE = %s\nPARLAE_AUDIT_CHECKPOINTS = %s\n' \
		"$KEYS/signing.pem" "$CP" >"$BATS_TEST_TMPDIR/config"
	run --separate-stderr parlae --config "$BATS_TEST_TMPDIR/config" audit checkpoint
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "checkpoint of event 5 appended to $CP"
	assert_equal "$(jq -c .seq "$CP")" 5
}

@test "--dry-run verifies and prints the line it would append, and writes nothing" {
	log_db dry
	run --separate-stderr parlae audit checkpoint --dry-run
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.seq, .hash]' <<<"$output")" "[5,\"$(hash_of 5)\"]"
	[ ! -e "$CP" ]
	assert_equal "$(head_seq)" 5
	parlae audit checkpoint >/dev/null
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	run --separate-stderr parlae audit checkpoint --dry-run --json
	assert_success
	assert_equal "$(jq -c '[.seq, .hash]' <<<"$output")" "[6,\"$(hash_of 6)\"]"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
	assert_equal "$(head_seq)" 6
}

@test "two checkpoints in a row: the second verifies from the first and the file holds both" {
	log_db twice
	parlae audit checkpoint >/dev/null
	parlae account add b1 >/dev/null
	run --separate-stderr parlae audit checkpoint
	assert_success
	assert_equal "$output" "checkpoint of event 7 appended to $CP"
	assert_equal "$(jq -c '[.seq, .hash]' "$CP")" "[5,\"$(hash_of 5)\"]
[7,\"$(hash_of 7)\"]"
	# Each line names the sha256 of the line before it (its bytes, without the newline).
	assert_equal "$(sed -n 2p "$CP" | jq -r .prev)" "$(sed -n 1p "$CP" | tr -d '\n' | sha256sum | cut -d' ' -f1)"
	verify_cp
	assert_success
	assert_equal "${lines[1]}" "checkpoints intact: 2 lines, the newest at event 7"
}

@test "issue 10: the owner rewrites history, plain verify says intact, --checkpoints says rewritten" {
	log_db rewrite
	parlae audit checkpoint >/dev/null
	for a in b1 b2 b3; do parlae account add "$a" >/dev/null; done
	at=$(jq -r .at "$CP")
	tamper "$REWRITE"
	# Two a1 events gone, everything renumbered and rehashed: the chain is consistent again.
	assert_equal "$(sql_owner "SELECT count(*) FROM audit_events WHERE account_id = 'a1'")" 0
	assert_equal "$(sql_owner "SELECT outcome FROM audit_events WHERE account_id = 'a2'")" failure
	run --separate-stderr parlae audit verify
	assert_success
	assert_equal "$output" "audit log intact: 7 events, chain head at event 7 ($(hash_of 7))"
	verify_cp
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_equal "$output" "checkpoint line 1 FAILED: history rewritten before event 5: its hash in the chain is not the one signed (checkpointed at $at)"
	run --separate-stderr parlae audit verify --json --checkpoints "$CP" --public-key "$PUB"
	assert_equal "$status" 1
	assert_equal "$(jq -c '[.intact, .breaks, .checkpoints]' <<<"$output")" \
		"[false,[],{\"checked\":1,\"failed\":[{\"line\":1,\"seq\":5,\"reason\":\"history rewritten before event 5: its hash in the chain is not the one signed (checkpointed at $at)\"}]}]"
	# And no new checkpoint vouches for the rewritten chain.
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 1
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: the audit chain no longer holds the newest checkpoint of $CP (event 5, signed at $at): history rewritten before event 5 (nothing was appended; see what changed with 'parlae audit verify --checkpoints $CP --public-key PUBLIC_KEY')"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
}

@test "a history cut short before a checkpoint is reported as rewritten too" {
	log_db truncate
	parlae audit checkpoint >/dev/null
	at=$(jq -r .at "$CP")
	tamper "DELETE FROM audit_events WHERE seq >= 4;
		UPDATE audit_chain_head SET (seq, hash) = (3, (SELECT hash FROM audit_events WHERE seq = 3))"
	run --separate-stderr parlae audit verify
	assert_success
	verify_cp
	assert_equal "$status" 1
	assert_equal "$output" "checkpoint line 1 FAILED: history rewritten before event 5: the chain now ends at event 3 (checkpointed at $at)"
}

@test "checkpoint refuses a broken chain: exit 1, nothing appended, a failure event recorded" {
	log_db broken
	tamper "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 1
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: the audit log is broken at event 3: its hash does not match its contents: it was altered (nothing was appended; 'parlae audit verify' lists every break)"
	[ ! -e "$CP" ]
	assert_equal "$(sql_owner "SELECT action, outcome, error_code FROM audit_events WHERE seq = 6")" \
		"audit.checkpoint|denied|no"
}

@test "checkpoint verifies what came since the last checkpoint and refuses a break there" {
	log_db broken_since
	parlae audit checkpoint >/dev/null
	parlae account add b1 >/dev/null
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	tamper "UPDATE audit_events SET outcome = 'failure' WHERE seq = 7"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 1
	assert_regex "$stderr" "^parlae: the audit log is broken at event 7: its hash does not match"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
}

@test "forged lines are found: seq or hash edited, or another line's signature copied" {
	log_db forged
	parlae audit checkpoint >/dev/null
	parlae audit checkpoint >/dev/null
	first=$(sed -n 1p "$CP")
	second=$(sed -n 2p "$CP")
	{
		echo "$first"
		jq -c '.seq = 4' <<<"$second"
		jq -c --arg h "$(hash_of 3)" '.hash = $h' <<<"$second"
		jq -c --arg s "$(jq -r .sig <<<"$first")" '.sig = $s' <<<"$second"
	} >"$BATS_TEST_TMPDIR/forged"
	verify_cp "$BATS_TEST_TMPDIR/forged"
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	forged="its signature does not match its seq, hash, prev and time: it was forged or altered"
	assert_equal "$output" "checkpoint line 2 FAILED: $forged
checkpoint line 3 FAILED: $forged
checkpoint line 4 FAILED: $forged"
}

@test "a line signed by another key, or a check with another public key, fails" {
	log_db other_key
	parlae audit checkpoint >/dev/null
	PARLAE_AUDIT_SIGNING_KEY_FILE=$KEYS/other.pem parlae audit checkpoint --output "$BATS_TEST_TMPDIR/o" >/dev/null
	cat "$BATS_TEST_TMPDIR/o" >>"$CP"
	other=$(jq -r .key "$BATS_TEST_TMPDIR/o")
	verify_cp
	assert_equal "$status" 1
	assert_equal "$output" "checkpoint line 2 FAILED: it was signed by another key (${other:0:12}...), not the public key given"
	verify_cp "$CP" "$KEYS/other.pub"
	assert_equal "$status" 1
	assert_equal "${lines[0]}" "checkpoint line 1 FAILED: it was signed by another key ($(jq -r .key <<<"$(sed -n 1p "$CP")" | cut -c1-12)...), not the public key given"
	# A file holds one key's lines: signing after another key's line is refused.
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 4
	assert_regex "$stderr" "^parlae: checkpoint line 2 of $CP does not hold: it was signed by another key"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
}

@test "malformed lines are each reported by their line number" {
	log_db malformed
	parlae audit checkpoint >/dev/null
	good=$(cat "$CP")
	{
		echo 'not json'
		echo '{"seq":5}'
		echo
		jq -c '.at = "yesterday"' <<<"$good"
		jq -c '.extra = 1' <<<"$good"
	} >>"$CP"
	run --separate-stderr parlae audit verify --json --checkpoints "$CP" --public-key "$PUB"
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '.checkpoints | [.checked, [.failed[] | [.line, .seq]]]' <<<"$output")" \
		'[6,[[2,null],[3,null],[4,null],[5,null],[6,null]]]'
	assert_equal "$(jq -r '.checkpoints.failed[1:][].reason' <<<"$output")" "it is not a checkpoint: an object of seq, hash, prev, at, key and sig
it is not valid JSON: '[' or '{' expected near end of file at line 1 column 0
its at is not a time such as 2026-11-24T08:00:00Z
it is not a checkpoint: an object of seq, hash, prev, at, key and sig"
	assert_regex "$(jq -r '.checkpoints.failed[0].reason' <<<"$output")" "^it is not valid JSON: "
}

@test "a line of control characters and invalid UTF-8 is reported in plain ASCII and valid JSON" {
	log_db controls
	parlae audit checkpoint >/dev/null
	printf '\033[31m\377\n{"seq":\033]0;x\a}\n' >>"$CP"
	verify_cp
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	[[ $output != *$'\033'* && $output != *$'\377'* && $output != *$'\a'* ]]
	assert_equal "${#lines[@]}" 2
	assert_regex "${lines[0]}" "^checkpoint line 2 FAILED: it is not valid JSON: "
	run --separate-stderr parlae audit verify --json --checkpoints "$CP" --public-key "$PUB"
	assert_equal "$status" 1
	assert_equal "$(jq -c '[.checkpoints.failed[].line]' <<<"$output")" '[2,3]'
}

@test "a torn last line is reported by verify and refused by checkpoint, never taken" {
	log_db torn
	parlae audit checkpoint >/dev/null
	parlae audit checkpoint --dry-run | head -c 60 >>"$CP"
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 65
	assert_equal "$stderr" "parlae: line 2 of the checkpoint file $CP is not a checkpoint: it is incomplete (no newline at its end): a write was cut short (nothing was appended; look at the file: only 'parlae audit checkpoint' writes to it)"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
	verify_cp
	assert_equal "$status" 1
	assert_equal "$output" "checkpoint line 2 FAILED: it is incomplete (no newline at its end): a write was cut short"
}

@test "checkpoint refuses empty lines at the end or in the middle: exit 65, nothing appended" {
	log_db empty_lines
	parlae audit checkpoint >/dev/null
	parlae audit checkpoint >/dev/null
	cp "$CP" "$BATS_TEST_TMPDIR/good"
	printf '\n\n' >>"$CP"
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 65
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: line 3 of the checkpoint file $CP is not a checkpoint: it is not valid JSON: '[' or '{' expected near end of file at line 1 column 0 (nothing was appended; look at the file: only 'parlae audit checkpoint' writes to it)"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
	sed '1a\\' "$BATS_TEST_TMPDIR/good" >"$CP"
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 65
	assert_regex "$stderr" "^parlae: line 2 of the checkpoint file $CP is not a checkpoint: it is not valid JSON"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
	verify_cp
	assert_equal "$status" 1
	assert_equal "${lines[0]}" "checkpoint line 2 FAILED: it is not valid JSON: '[' or '{' expected near end of file at line 1 column 0"
}

@test "checkpoint refuses an older line replayed as the last one: exit 4, nothing appended" {
	log_db replay
	parlae audit checkpoint >/dev/null
	parlae account add b1 >/dev/null
	parlae audit checkpoint >/dev/null
	sed -n 1p "$CP" >>"$CP"
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 4
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: checkpoint line 3 of $CP does not hold: its prev is not the hash of line 2: lines were removed, reordered or altered before it (nothing was appended; check the file with 'parlae audit verify --checkpoints $CP --public-key PUBLIC_KEY'; a new key starts a new file)"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
	assert_equal "$(sql_owner "SELECT action, outcome, error_code FROM audit_events ORDER BY seq DESC LIMIT 1")" \
		"audit.checkpoint|denied|security"
}

@test "the lines are chained: a line removed or reordered in the middle, or the first removed, fails verify" {
	log_db chained
	for i in 1 2 3; do parlae audit checkpoint >/dev/null; done
	cp "$CP" "$BATS_TEST_TMPDIR/all"
	sed 2d "$BATS_TEST_TMPDIR/all" >"$CP"
	verify_cp
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_equal "$output" "checkpoint line 2 FAILED: its prev is not the hash of line 1: lines were removed, reordered or altered before it"
	for n in 1 3 2; do sed -n "${n}p" "$BATS_TEST_TMPDIR/all"; done >"$CP"
	verify_cp
	assert_equal "$status" 1
	assert_equal "$output" "checkpoint line 2 FAILED: its prev is not the hash of line 1: lines were removed, reordered or altered before it
checkpoint line 3 FAILED: its prev is not the hash of line 2: lines were removed, reordered or altered before it"
	sed 1d "$BATS_TEST_TMPDIR/all" >"$CP"
	verify_cp
	assert_equal "$status" 1
	assert_equal "$output" "checkpoint line 1 FAILED: its prev is not 64 zeros, the start of the file: lines before it were removed"
	cp "$BATS_TEST_TMPDIR/all" "$CP"
	verify_cp
	assert_success
	assert_equal "${lines[1]}" "checkpoints intact: 3 lines, the newest at event 7"
}

@test "verify with a checkpoint file that is empty or missing is no pass: exit 1" {
	log_db no_lines
	verify_cp
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_equal "$output" "checkpoints FAILED: no checkpoint to check against: $CP does not exist"
	: >"$CP"
	verify_cp
	assert_equal "$status" 1
	assert_equal "$output" "checkpoints FAILED: no checkpoint to check against: $CP is empty"
	run --separate-stderr parlae audit verify --json --checkpoints "$CP" --public-key "$PUB"
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.intact, .breaks, .checkpoints]' <<<"$output")" \
		"[false,[],{\"checked\":0,\"failed\":[],\"problem\":\"no checkpoint to check against: $CP is empty\"}]"
}

@test "the checkpoint file: a symbolic link is refused by checkpoint and verify, exit 3" {
	log_db symlink
	parlae audit checkpoint --output "$BATS_TEST_TMPDIR/real.jsonl" >/dev/null
	cp "$BATS_TEST_TMPDIR/real.jsonl" "$BATS_TEST_TMPDIR/before"
	ln -s "$BATS_TEST_TMPDIR/real.jsonl" "$CP"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: the checkpoint file $CP is a symbolic link (name the file itself: a link could be pointed elsewhere)"
	cmp "$BATS_TEST_TMPDIR/real.jsonl" "$BATS_TEST_TMPDIR/before"
	verify_cp
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: the checkpoint file $CP is a symbolic link (name the file itself: a link could be pointed elsewhere)"
	rm "$CP"
	ln -s "$BATS_TEST_TMPDIR/nowhere" "$CP"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	[ ! -e "$BATS_TEST_TMPDIR/nowhere" ]
}

@test "checkpoint refuses a file others may write or another user owns, exit 3; verify reads it" {
	log_db file_mode
	parlae audit checkpoint >/dev/null
	cp "$CP" "$BATS_TEST_TMPDIR/before"
	chmod 664 "$CP"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: the checkpoint file $CP is writable by group or others (mode 0664) (chmod 644 $CP)"
	chmod 646 "$CP"
	run --separate-stderr parlae audit checkpoint --dry-run
	assert_equal "$status" 3
	assert_regex "$stderr" "is writable by group or others \(mode 0646\)"
	chmod 644 "$CP"
	chown 65534 "$CP"
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: the checkpoint file $CP is owned by another user (uid 65534) (it must belong to the user who signs: chown it, or sign into a file of that user's own)"
	cmp "$CP" "$BATS_TEST_TMPDIR/before"
	# An auditor reads the operator's file: another owner, any mode.
	chmod 666 "$CP"
	verify_cp
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${lines[1]}" "checkpoints intact: 1 line, the newest at event 5"
}

@test "a signing key open to others, or owned by another user, is refused with exit 3" {
	log_db key_mode
	cp "$KEYS/signing.pem" "$BATS_TEST_TMPDIR/open.pem"
	chmod 644 "$BATS_TEST_TMPDIR/open.pem"
	PARLAE_AUDIT_SIGNING_KEY_FILE=$BATS_TEST_TMPDIR/open.pem run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: PARLAE_AUDIT_SIGNING_KEY_FILE $BATS_TEST_TMPDIR/open.pem has mode 0644: others may read the key (chmod 600 $BATS_TEST_TMPDIR/open.pem)"
	[ ! -e "$CP" ]
	chmod 640 "$BATS_TEST_TMPDIR/open.pem"
	PARLAE_AUDIT_SIGNING_KEY_FILE=$BATS_TEST_TMPDIR/open.pem run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	chmod 600 "$BATS_TEST_TMPDIR/open.pem"
	chown 65534 "$BATS_TEST_TMPDIR/open.pem"
	PARLAE_AUDIT_SIGNING_KEY_FILE=$BATS_TEST_TMPDIR/open.pem run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: PARLAE_AUDIT_SIGNING_KEY_FILE $BATS_TEST_TMPDIR/open.pem is owned by another user (uid 65534), not by this user (uid $(id -u)) (chown $(id -u) $BATS_TEST_TMPDIR/open.pem)"
	[ ! -e "$CP" ]
}

@test "a key that is not Ed25519, or no key at all, is refused with exit 3" {
	log_db key_type
	PARLAE_AUDIT_SIGNING_KEY_FILE=$KEYS/ec.pem run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_regex "$stderr" "^parlae: PARLAE_AUDIT_SIGNING_KEY_FILE $KEYS/ec.pem holds a key of type EC, not Ed25519 "
	verify_cp "$CP" "$KEYS/ec.pub"
	assert_equal "$status" 3
	assert_regex "$stderr" "^parlae: the public key $KEYS/ec.pub holds a key of type EC, not Ed25519 "
	echo "not a key" >"$BATS_TEST_TMPDIR/junk.pem"
	chmod 600 "$BATS_TEST_TMPDIR/junk.pem"
	PARLAE_AUDIT_SIGNING_KEY_FILE=$BATS_TEST_TMPDIR/junk.pem run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_regex "$stderr" "does not hold a PEM private key"
	unset PARLAE_AUDIT_SIGNING_KEY_FILE
	run --separate-stderr parlae audit checkpoint
	assert_equal "$status" 3
	assert_regex "$stderr" "^parlae: PARLAE_AUDIT_SIGNING_KEY_FILE is not set"
	[ ! -e "$CP" ]
}

@test "--checkpoints and --public-key go together" {
	run --separate-stderr parlae audit verify --checkpoints "$CP"
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: --checkpoints and --public-key go together (usage: parlae audit verify [--checkpoints FILE --public-key FILE])"
	run --separate-stderr parlae audit checkpoint extra
	assert_equal "$status" 2
}

@test "verify goes on past a break and reports every broken range, each once" {
	log_db two_breaks
	for a in b1 b2 b3 b4; do parlae account add "$a" >/dev/null; done
	tamper "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2;
		UPDATE audit_events SET metadata = '{\"x\": 1}' WHERE seq = 7"
	run --separate-stderr parlae audit verify
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_equal "$output" "audit log BROKEN at event 2: its hash does not match its contents: it was altered
audit log BROKEN at event 7: its hash does not match its contents: it was altered"
	run --separate-stderr parlae audit verify --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '[.intact, .events, [.breaks[].seq], .firstBadSeq]' <<<"$output")" '[false,9,[2,7],2]'
}

@test "a deletion and a rehashed edit further on are two breaks, and the rest is sound" {
	log_db gap_and_link
	for a in b1 b2 b3 b4; do parlae account add "$a" >/dev/null; done
	tamper "DELETE FROM audit_events WHERE seq = 3;
		UPDATE audit_events SET actor = 'mallory' WHERE seq = 6;
		UPDATE audit_events e SET hash = encode(sha256(convert_to(e.prev_hash || audit_canonical(e), 'UTF8')), 'hex') WHERE seq = 6"
	run --separate-stderr parlae audit verify
	assert_equal "$status" 1
	assert_equal "$output" "audit log BROKEN at event 3: it is missing (the next event is 4)
audit log BROKEN at event 7: its prev_hash is not the hash of the event before it"
}

@test "status shows the newest checkpoint of PARLAE_AUDIT_CHECKPOINTS, and a torn file as such" {
	log_db status
	run --separate-stderr parlae status --json
	assert_equal "$(jq -c '.audit | [.protected, .lastEvent, .lastCheckpoint, .checkpointError]' <<<"$output")" "[true,5,null,null]"
	parlae audit checkpoint >/dev/null
	parlae account add a4 >/dev/null
	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.audit | [.protected, .lastEvent, .lastCheckpoint, .checkpointError]' <<<"$output")" "[true,7,5,null]"
	run --separate-stderr parlae status
	assert_line "audit log     protected, last event 7; last checkpoint at event 5"
	printf '{"seq":7,"ha' >>"$CP"
	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.audit | [.lastCheckpoint, (.checkpointError | test("^the last line of the checkpoint file .* is incomplete"))]' <<<"$output")" "[null,true]"
	# A line edited beyond the log is an error, never shown as the last checkpoint.
	head -n 1 "$CP" | jq -c '.seq = 999999' >"$BATS_TEST_TMPDIR/edited"
	cp "$BATS_TEST_TMPDIR/edited" "$CP"
	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.audit | [.lastCheckpoint, .checkpointError]' <<<"$output")" \
		'[null,"the newest checkpoint (event 999999) is beyond the last event (7): the file was edited"]'
}

@test "status with PARLAE_AUDIT_PUBLIC_KEY shows the newest checkpoint only when its signature holds" {
	log_db status_key
	parlae audit checkpoint >/dev/null
	export PARLAE_AUDIT_PUBLIC_KEY=$PUB
	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.audit | [.lastEvent, .lastCheckpoint, .checkpointError]' <<<"$output")" "[6,5,null]"
	jq -c '.seq = 6' "$CP" >"$BATS_TEST_TMPDIR/edited"
	cp "$BATS_TEST_TMPDIR/edited" "$CP"
	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.audit | [.lastCheckpoint, .checkpointError]' <<<"$output")" \
		"[null,\"the newest checkpoint in $CP does not hold: its signature does not match its seq, hash, prev and time: it was forged or altered\"]"
	PARLAE_AUDIT_PUBLIC_KEY=$KEYS/other.pub run --separate-stderr parlae status
	assert_success
	assert_line --regexp "^audit log     protected, last event 6; checkpoints: the newest checkpoint in $CP does not hold: it was signed by another key"
}
