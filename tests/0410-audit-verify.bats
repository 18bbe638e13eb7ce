#!/usr/bin/env bats
# parlae audit verify recomputes the hash chain in C from the database's text renderings and
# checks the chain head. Each tampering runs as the superuser with triggers disabled
# (session_replication_role = replica), in a database of its own.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
}
setup() { setup_home; }

# A database of this test's own with 7 events: db.migrate, three account.add, three psql inserts.
log_db() { # NAME
	export PARLAE_DATABASE_URL
	PARLAE_DATABASE_URL=$(pg_new_app_database "t_0410_$1") || return 1
	for a in a1 a2 a3; do parlae account add "$a" >/dev/null; done
	sql "INSERT INTO audit_events (actor, host, account_id, action, outcome, metadata)
		SELECT 'ops@test', 'testhost', 'a1', 'seed.' || i, 'success', jsonb_build_object('i', i)
		FROM generate_series(1, 3) i" >/dev/null
	[ "$(sql "SELECT seq FROM audit_chain_head")" = 7 ]
}

# Run SQL as the superuser with the append-only and chain triggers switched off.
tamper() {
	psql -XAtq -v ON_ERROR_STOP=1 "$(db_url_as pgadmin)" >/dev/null <<-SQL
		SET session_replication_role = replica;
		$1
	SQL
}

hash_of() { sql "SELECT hash FROM audit_events WHERE seq = $1"; }

# What a forger who knows the algorithm would store as the hash of row SEQ as it now stands.
rehash() { # SEQ
	tamper "UPDATE audit_events e SET hash = encode(sha256(convert_to(e.prev_hash || audit_canonical(e), 'UTF8')), 'hex') WHERE seq = $1"
}

assert_broken() { # SEQ PROBLEM
	run --separate-stderr parlae audit verify
	assert_equal "$status" 1
	assert_equal "$stderr" ""
	assert_equal "$output" "audit log BROKEN at event $1: $2"
	run --separate-stderr parlae audit verify --json
	assert_equal "$status" 1
	assert_equal "$(jq -c '[.intact, .firstBadSeq, .problem]' <<<"$output")" "[false,$1,$(jq -Rn --arg p "$2" '$p')]"
	# One broken range: the walk goes on past it and finds nothing else.
	assert_equal "$(jq -c '.breaks' <<<"$output")" "[{\"seq\":$1,\"reason\":$(jq -Rn --arg p "$2" '$p')}]"
}

@test "an intact log verifies: exit 0, the number of events and the chain head" {
	log_db intact
	run --separate-stderr parlae audit verify
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "audit log intact: 7 events, chain head at event 7 ($(hash_of 7))"
	run --separate-stderr parlae audit verify --json
	assert_success
	assert_equal "$output" "{\"intact\":true,\"events\":7,\"breaks\":[],\"checkpoints\":null,\"firstBadSeq\":null,\"problem\":null,\"head\":{\"seq\":7,\"hash\":\"$(hash_of 7)\"}}"
}

@test "a freshly migrated log of one event verifies" {
	export PARLAE_DATABASE_URL
	PARLAE_DATABASE_URL=$(pg_new_app_database t_0410_fresh)
	run --separate-stderr parlae audit verify
	assert_success
	assert_equal "$output" "audit log intact: 1 event, chain head at event 1 ($(hash_of 1))"
}

@test "verify agrees with the chain the database computed, including non-ASCII and JSON metadata" {
	log_db unicode
	sql "INSERT INTO audit_events (actor, host, account_id, action, resource_id, outcome, error_code, request_id, metadata)
		VALUES ('Zoë ☃', E'h\\tt', NULL, 'x.y', '', 'failure', 'upstream', 'r1',
		        '{\"nested\": {\"a\": [1, 2.50, null, true]}, \"s\": \"é\\\\n\"}')" >/dev/null
	run --separate-stderr parlae audit verify
	assert_success
	assert_regex "$output" "^audit log intact: 8 events"
}

@test "an edited event is found: its hash no longer matches" {
	log_db edit
	tamper "UPDATE audit_events SET outcome = 'failure', error_code = 'upstream' WHERE seq = 3"
	assert_broken 3 "its hash does not match its contents: it was altered"
}

@test "edits to the metadata, the time or the request id are found too" {
	log_db edit_meta
	tamper "UPDATE audit_events SET metadata = '{\"i\": 99}' WHERE seq = 6"
	assert_broken 6 "its hash does not match its contents: it was altered"
	log_db edit_time
	tamper "UPDATE audit_events SET occurred_at = occurred_at + interval '1 microsecond' WHERE seq = 2"
	assert_broken 2 "its hash does not match its contents: it was altered"
	log_db edit_request
	tamper "UPDATE audit_events SET request_id = NULL WHERE seq = 4"
	assert_broken 4 "its hash does not match its contents: it was altered"
}

@test "an edited event given a recomputed hash breaks the link to the next one" {
	log_db edit_rehash
	tamper "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"
	rehash 3
	assert_broken 4 "its prev_hash is not the hash of the event before it"
}

@test "a deleted event in the middle is found" {
	log_db delete_middle
	tamper "DELETE FROM audit_events WHERE seq = 4"
	assert_broken 4 "it is missing (the next event is 5)"
}

@test "a deleted first event is found" {
	log_db delete_first
	tamper "DELETE FROM audit_events WHERE seq = 1"
	assert_broken 1 "it is missing (the next event is 2)"
}

@test "a deleted last event is found: the chain head remembers it" {
	log_db delete_last
	tamper "DELETE FROM audit_events WHERE seq = 7"
	assert_broken 7 "it is missing: the chain head says the log ends at event 7, but the last event is 6"
}

@test "a forged event after the last, even with a correct hash, is found: the chain head ends before it" {
	log_db forge_end
	tamper "INSERT INTO audit_events (seq, occurred_at, actor, host, action, outcome, metadata, prev_hash, hash)
		SELECT 8, now(), 'mallory', 'h', 'account.add', 'success', '{}', hash, 'x' FROM audit_events WHERE seq = 7"
	rehash 8
	assert_broken 8 "it is not part of the chain: the chain head ends the log at event 7"
}

@test "a forged event before the first is found" {
	log_db forge_zero
	tamper "INSERT INTO audit_events (seq, occurred_at, actor, host, action, outcome, prev_hash, hash)
		VALUES (0, now(), 'mallory', 'h', 'forged', 'success', repeat('0', 64), repeat('0', 64))"
	assert_broken 0 "it is not part of the chain: sequence numbers start at 1"
}

@test "a forged event put in the place of a deleted one is found" {
	log_db forge_replace
	tamper "DELETE FROM audit_events WHERE seq = 5;
		INSERT INTO audit_events (seq, occurred_at, actor, host, action, outcome, metadata, prev_hash, hash)
		SELECT 5, now(), 'mallory', 'h', 'forged', 'success', '{}', hash, 'x' FROM audit_events WHERE seq = 4"
	rehash 5
	assert_broken 6 "its prev_hash is not the hash of the event before it"
}

@test "two events swapped (their sequence numbers exchanged) are found" {
	log_db reorder
	tamper "UPDATE audit_events SET seq = -2 WHERE seq = 2;
		UPDATE audit_events SET seq = 2 WHERE seq = 4;
		UPDATE audit_events SET seq = 4 WHERE seq = -2"
	assert_broken 2 "its prev_hash is not the hash of the event before it"
}

@test "two neighbours swapped with their contents renumbered are found" {
	log_db reorder_next
	tamper "UPDATE audit_events SET seq = -5 WHERE seq = 5;
		UPDATE audit_events SET seq = 5 WHERE seq = 6;
		UPDATE audit_events SET seq = 6 WHERE seq = -5"
	assert_broken 5 "its prev_hash is not the hash of the event before it"
}

@test "a chain head that does not match the last event is found" {
	log_db head_hash
	tamper "UPDATE audit_chain_head SET hash = repeat('a', 64)"
	assert_broken 7 "the chain head's hash is not its hash"
}

@test "a missing chain head is found" {
	log_db head_gone
	tamper "DELETE FROM audit_chain_head"
	run --separate-stderr parlae audit verify
	assert_equal "$status" 1
	assert_equal "$output" "audit log BROKEN: the chain head (audit_chain_head) is missing"
	run --separate-stderr parlae audit verify --json
	assert_equal "$status" 1
	assert_equal "$output" '{"intact":false,"events":7,"breaks":[{"seq":null,"reason":"the chain head (audit_chain_head) is missing"}],"checkpoints":null,"firstBadSeq":null,"problem":"the chain head (audit_chain_head) is missing","head":null}'
}

@test "verify sees one snapshot: events appended while it runs do not break it" {
	log_db concurrent
	sql "DO \$\$ BEGIN FOR i IN 1..100 LOOP
		INSERT INTO audit_events (actor, host, action, outcome) SELECT 'o', 'h', 'bulk', 'success' FROM generate_series(1, 50);
		COMMIT; END LOOP; END \$\$" >/dev/null
	(for i in $(seq 1 30); do sql "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('o', 'h', 'during', 'success')" >/dev/null; done) 3>&- &
	writer=$!
	for i in $(seq 1 5); do
		run --separate-stderr parlae audit verify
		assert_success
	done
	wait $writer
	run --separate-stderr parlae audit verify
	assert_success
	assert_equal "$output" "audit log intact: 5037 events, chain head at event 5037 ($(hash_of 5037))"
}

@test "without the database verify exits 7" {
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae audit verify
	assert_equal "$status" 7
	assert_equal "$output" ""
	assert_regex "$stderr" "^parlae: cannot connect to the database"
}
