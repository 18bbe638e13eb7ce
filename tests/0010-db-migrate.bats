#!/usr/bin/env bats
# parlae db migrate | db status against a real PostgreSQL.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() { suite_setup; }
setup() { setup_home; }

@test "db status on an empty database lists every migration as pending" {
	run --separate-stderr parlae db status --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.schemaVersion, (.applied|length), [.pending[].name]]' <<<"$output")" '[0,0,["core","audit","audit-head","audit-chain-state","call-logs-per-account","tool-call-counts","call-log-messages","practice-lifecycle","webhook-signatures"]]'
}

@test "db migrate --dry-run says what it would apply and changes nothing" {
	run --separate-stderr parlae db migrate --dry-run
	assert_success
	assert_equal "$output" $'would apply 0001-core\nwould apply 0002-audit\nwould apply 0003-audit-head\nwould apply 0004-audit-chain-state\nwould apply 0005-call-logs-per-account\nwould apply 0006-tool-call-counts\nwould apply 0007-call-log-messages\nwould apply 0008-practice-lifecycle\nwould apply 0009-webhook-signatures'
	assert_equal "$(sql "SELECT to_regclass('accounts') IS NULL")" "t"
}

@test "db migrate applies every migration, each recorded in schema_migrations" {
	run --separate-stderr parlae db migrate
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" $'applied 0001-core\napplied 0002-audit\napplied 0003-audit-head\napplied 0004-audit-chain-state\napplied 0005-call-logs-per-account\napplied 0006-tool-call-counts\napplied 0007-call-log-messages\napplied 0008-practice-lifecycle\napplied 0009-webhook-signatures'
	assert_equal "$(sql "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM schema_migrations")" "1:core,2:audit,3:audit-head,4:audit-chain-state,5:call-logs-per-account,6:tool-call-counts,7:call-log-messages,8:practice-lifecycle,9:webhook-signatures"
}

@test "migrating twice is a no-op" {
	before=$(sql "SELECT string_agg(version || '@' || applied_at, ',') FROM schema_migrations")
	run --separate-stderr parlae db migrate --json
	assert_success
	assert_equal "$output" '{"applied":[],"schemaVersion":9,"dryRun":false}'
	assert_equal "$(sql "SELECT string_agg(version || '@' || applied_at, ',') FROM schema_migrations")" "$before"
}

@test "db status --json shows the applied migrations and none pending" {
	run --separate-stderr parlae db status --json
	assert_success
	assert_equal "$(jq -c '[.schemaVersion, [.applied[].version], .pending]' <<<"$output")" '[9,[1,2,3,4,5,6,7,8,9],[]]'
	assert_regex "$(jq -r '.applied[0].appliedAt' <<<"$output")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$'
}

@test "db status without a TTY prints tab-separated rows" {
	run --separate-stderr parlae db status
	assert_success
	assert_regex "${lines[0]}" $'^0001\tcore\tapplied\t[0-9T:Z-]+$'
	assert_regex "${lines[1]}" $'^0002\taudit\tapplied\t'
}

@test "db migrate writes an audit event with its outcome" {
	assert_equal "$(sql "SELECT action, outcome, resource_id, metadata::text FROM audit_events WHERE action = 'db.migrate' ORDER BY seq LIMIT 1")" \
		'db.migrate|success|9|{"from": 0, "applied": [1, 2, 3, 4, 5, 6, 7, 8, 9]}'
}

@test "the parlae role needs no superuser: migrations ran as the database owner" {
	assert_equal "$(sql "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" "f"
	assert_equal "$(sql "SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'")" "parlae"
}

@test "two migrations started together both succeed and apply each migration once" {
	url=$(pg_new_database "t_migrate_race")
	PARLAE_DATABASE_URL=$url parlae db migrate >"$BATS_TEST_TMPDIR/a" 2>&1 &
	PARLAE_DATABASE_URL=$url parlae db migrate >"$BATS_TEST_TMPDIR/b" 2>&1 &
	wait %1; a=$?
	wait %2; b=$?
	assert_equal "$a $b" "0 0"
	assert_equal "$(PARLAE_DATABASE_URL=$url sql "SELECT count(*) FROM schema_migrations")" "9"
}

@test "db migrate against a database that is down exits 7 naming the cause" {
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae db migrate
	assert_equal "$status" 7
	assert_equal "$output" ""
	assert_regex "$stderr" "^parlae: cannot connect to the database: .*\(check PARLAE_DATABASE_URL and that PostgreSQL is running\)$"
}
