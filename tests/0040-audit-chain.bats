#!/usr/bin/env bats
# The audit log is append-only and hash-chained (architecture invariant 5).
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
	suite_migrate
	parlae account add first --name "Ünïcode Dental" >/dev/null
	parlae account add first >/dev/null 2>&1 || true
}
setup() { setup_home; }

# The text of one field of row SEQ as the database renders it; NULL prints as a marker.
field() {
	sql "SELECT coalesce(($2)::text, E'\\x01NULL') FROM audit_events WHERE seq = $1"
}

# Recompute a row's hash in the shell from the database's text renderings.
recompute() {
	local seq=$1 canon="" expr v prev
	for expr in "seq" "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" \
		actor host account_id action resource_type resource_id outcome error_code request_id metadata; do
		v=$(field "$seq" "$expr")
		if [ "$v" = $'\x01NULL' ]; then
			canon+="-;"
		else
			canon+="$(printf %s "$v" | wc -c):$v;"
		fi
	done
	prev=$(sql "SELECT prev_hash FROM audit_events WHERE seq = $seq")
	printf '%s%s' "$prev" "$canon" | sha256sum | cut -d' ' -f1
}

@test "a row's hash recomputed from the database's text renderings matches" {
	for seq in $(sql "SELECT seq FROM audit_events ORDER BY seq"); do
		assert_equal "$(recompute "$seq")" "$(sql "SELECT hash FROM audit_events WHERE seq = $seq")"
	done
}

@test "the chain is well formed: contiguous, linked, starting from 64 zeros, head at the end" {
	assert_equal "$(sql "SELECT prev_hash FROM audit_events WHERE seq = 1")" "$(printf '0%.0s' {1..64})"
	assert_equal "$(sql "SELECT count(*) FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1 WHERE b.prev_hash <> a.hash")" "0"
	assert_equal "$(sql "SELECT max(seq) = count(*) AND min(seq) = 1 FROM audit_events")" "t"
	assert_equal "$(sql "SELECT h.seq || h.hash = e.seq || e.hash FROM audit_chain_head h JOIN audit_events e ON e.seq = h.seq")" "t"
	assert_equal "$(sql "SELECT seq FROM audit_chain_head")" "$(sql "SELECT max(seq) FROM audit_events")"
}

@test "audit rows cannot be updated, deleted or truncated, even by their owner" {
	run sql_owner "UPDATE audit_events SET outcome = 'success' WHERE seq = 1"
	assert_failure 1
	assert_output --partial "the audit log is append-only: UPDATE on audit_events refused"
	run sql_owner "DELETE FROM audit_events WHERE seq = 1"
	assert_failure 1
	assert_output --partial "DELETE on audit_events refused"
	run sql_owner "TRUNCATE audit_events"
	assert_failure 1
	assert_output --partial "TRUNCATE on audit_events refused"
}

@test "the chain head cannot be moved back or removed, even by its owner" {
	run sql_owner "UPDATE audit_chain_head SET seq = 0"
	assert_failure 1
	assert_output --partial "only moves forward"
	run sql_owner "DELETE FROM audit_chain_head"
	assert_failure 1
}

@test "an insert cannot choose its own sequence number, time or hash" {
	sql "INSERT INTO audit_events (seq, occurred_at, actor, host, action, outcome, prev_hash, hash) VALUES (999, '2000-01-01', 'x', 'h', 'forged', 'success', 'p', 'q')"
	row=$(sql "SELECT seq, occurred_at > now() - interval '1 hour', hash <> 'q' FROM audit_events WHERE action = 'forged'")
	assert_equal "$row" "$(sql "SELECT max(seq) FROM audit_events")|t|t"
}

@test "concurrent writers get contiguous sequence numbers and one valid chain" {
	for i in $(seq 1 12); do parlae account add "par-$i" >/dev/null & done
	wait
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id LIKE 'par-%'")" "12"
	assert_equal "$(sql "SELECT max(seq) = count(*) FROM audit_events")" "t"
	assert_equal "$(sql "SELECT count(*) FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1 WHERE b.prev_hash <> a.hash")" "0"
	last=$(sql "SELECT max(seq) FROM audit_events")
	assert_equal "$(recompute "$last")" "$(sql "SELECT hash FROM audit_events WHERE seq = $last")"
}

@test "every event carries actor, host, request id and outcome; failures carry an error code" {
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action <> 'forged' AND (actor = '' OR host = '' OR coalesce(request_id, '') !~ '^[0-9a-f]{32}$')")" "0"
	assert_equal "$(sql "SELECT error_code FROM audit_events WHERE outcome = 'failure' AND action = 'account.add'")" "conflict"
}

@test "an insert notifies listeners on parlae_audit" {
	out=$(psql -XAtq "$PARLAE_DATABASE_URL" <<'SQL'
LISTEN parlae_audit;
INSERT INTO audit_events (actor, host, action, outcome) VALUES ('t', 'h', 'notify.test', 'success');
SELECT 1;
SQL
)
	assert_regex "$out" 'Asynchronous notification "parlae_audit" with payload "[0-9]+" received'
}

@test "many events in one transaction chain correctly and move the head once, at commit" {
	psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" >/dev/null <<'SQL'
BEGIN;
INSERT INTO audit_events (actor, host, action, outcome) SELECT 't', 'h', 'bulk', 'success' FROM generate_series(1, 500);
SAVEPOINT s;
INSERT INTO audit_events (actor, host, action, outcome) VALUES ('t', 'h', 'rolled-back', 'success');
ROLLBACK TO SAVEPOINT s;
INSERT INTO audit_events (actor, host, action, outcome) VALUES ('t', 'h', 'after-savepoint', 'success');
COMMIT;
SQL
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action = 'rolled-back'")" "0"
	assert_equal "$(sql "SELECT max(seq) = count(*) FROM audit_events")" "t"
	assert_equal "$(sql "SELECT count(*) FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1 WHERE b.prev_hash <> a.hash")" "0"
	assert_equal "$(sql "SELECT h.seq || h.hash = e.seq || e.hash FROM audit_chain_head h JOIN audit_events e ON e.seq = h.seq")" "t"
	assert_equal "$(sql "SELECT action FROM audit_events ORDER BY seq DESC LIMIT 1")" "after-savepoint"
	last=$(sql "SELECT max(seq) FROM audit_events")
	assert_equal "$(recompute "$last")" "$(sql "SELECT hash FROM audit_events WHERE seq = $last")"
}
