#!/usr/bin/env bats
# sql/roles.sql, run by a database administrator: a writer that may only append to the audit log
# (through the SECURITY DEFINER trigger) and an auditor that may only read it.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
	parlae db migrate >/dev/null
	parlae account add first >/dev/null
}
setup() {
	setup_home
	DB=${PARLAE_DATABASE_URL##*dbname=}
}

as_admin_url() { echo "${PARLAE_DATABASE_URL/user=parlae/user=pgadmin}"; }
url_of() { echo "${PARLAE_DATABASE_URL/user=parlae/user=$1}"; }
sql_as() { psql -XAtq -v ON_ERROR_STOP=1 "$(url_of "$1")" -c "$2"; }

# The DBA's command, as the superuser; extra psql arguments (-v ...) first.
roles_sql() { psql -X "$(as_admin_url)" "$@" -f "$PL_TOP/sql/roles.sql"; }

events() { sql "SELECT count(*) FROM audit_events"; }

@test "roles.sql is not a migration: db migrate neither compiles nor applies it" {
	[[ ! $(basename "$PL_TOP/sql/roles.sql") =~ ^[0-9]{4}- ]]
	run --separate-stderr parlae db status --json
	assert_success
	assert_equal "$(jq -r '[.applied[], .pending[]] | map(.name) | map(select(test("role"))) | length' <<<"$output")" 0
	assert_equal "$(sql "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'parlae_audit%'")" 0
}

@test "without -v db it refuses and creates nothing" {
	run --separate-stderr roles_sql
	assert_equal "$status" 3
	assert_regex "$stderr" "roles.sql: name the database: psql -v db=NAME -f sql/roles.sql"
	assert_equal "$(sql "SELECT count(*) FROM pg_roles WHERE rolname IN ('parlae_audit_writer', 'parlae_auditor')")" 0
}

@test "run as the superuser it creates a writer and an auditor that carry no power" {
	run --separate-stderr roles_sql -v db="$DB"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "roles.sql: parlae_audit_writer may append to the audit log of $DB, and parlae_auditor may read it"
	assert_equal "$(sql "SELECT string_agg(rolname || ':' || rolcanlogin || rolsuper || rolcreatedb || rolcreaterole || rolinherit || rolreplication || rolbypassrls, ' ' ORDER BY rolname)
		FROM pg_roles WHERE rolname IN ('parlae_audit_writer', 'parlae_auditor')")" \
		"parlae_audit_writer:truefalsefalsefalsefalsefalsefalse parlae_auditor:truefalsefalsefalsefalsefalsefalse"
}

@test "the writer holds INSERT on audit_events and the auditor SELECT on the log, nothing more" {
	roles_sql -v db="$DB" >/dev/null
	assert_equal "$(sql "SELECT string_agg(grantee || ':' || table_name || ':' || privilege_type, ' ' ORDER BY grantee, table_name, privilege_type)
		FROM information_schema.role_table_grants WHERE grantee IN ('parlae_audit_writer', 'parlae_auditor')")" \
		"parlae_audit_writer:audit_events:INSERT parlae_auditor:audit_chain_head:SELECT parlae_auditor:audit_events:SELECT"
	assert_equal "$(sql "SELECT has_schema_privilege('parlae_audit_writer', 'public', 'USAGE'), has_schema_privilege('parlae_audit_writer', 'public', 'CREATE'),
		has_database_privilege('parlae_audit_writer', '$DB', 'CONNECT'), has_database_privilege('parlae_audit_writer', '$DB', 'CREATE')")" "t|f|t|f"
	assert_equal "$(sql "SELECT count(*) FROM information_schema.column_privileges WHERE grantee IN ('parlae_audit_writer', 'parlae_auditor') AND table_name <> 'audit_events' AND table_name <> 'audit_chain_head'")" 0
}

@test "the writer appends through the SECURITY DEFINER trigger, chained, but cannot read, update or delete" {
	roles_sql -v db="$DB" >/dev/null
	before=$(sql "SELECT seq FROM audit_chain_head")
	run --separate-stderr sql_as parlae_audit_writer "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('app', 'h', 'writer.append', 'success')"
	assert_success
	assert_equal "$(sql "SELECT seq || ':' || action FROM audit_events ORDER BY seq DESC LIMIT 1")" "$((before + 1)):writer.append"
	assert_equal "$(sql "SELECT seq FROM audit_chain_head")" "$((before + 1))"
	for stmt in "SELECT count(*) FROM audit_events" \
		"UPDATE audit_events SET outcome = 'failure'" \
		"DELETE FROM audit_events" \
		"TRUNCATE audit_events" \
		"SELECT * FROM audit_chain_head" \
		"UPDATE audit_chain_head SET seq = seq + 1" \
		"INSERT INTO accounts (id) VALUES ('sneaky')" \
		"SELECT * FROM accounts"; do
		run --separate-stderr sql_as parlae_audit_writer "$stmt"
		assert_equal "$status" 1
		assert_regex "$stderr" "permission denied for table (audit_events|audit_chain_head|accounts)"
	done
	run --separate-stderr parlae audit verify
	assert_success
}

@test "the writer can append through parlae: a command it may not run still records its failure" {
	roles_sql -v db="$DB" >/dev/null
	PARLAE_DATABASE_URL=$(url_of parlae_audit_writer) PARLAE_ACTOR=app@web1 run --separate-stderr parlae account add viawriter
	assert_equal "$status" 7
	assert_equal "$output" ""
	assert_regex "$stderr" "permission denied for table accounts"
	assert_equal "$(sql "SELECT actor || '|' || account_id || '|' || action || '|' || outcome || '|' || error_code FROM audit_events ORDER BY seq DESC LIMIT 1")" \
		"app@web1|viawriter|account.add|failure|database"
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id = 'viawriter'")" 0
	run --separate-stderr parlae audit verify
	assert_success
}

@test "the auditor can tail and verify but cannot insert, update or delete" {
	roles_sql -v db="$DB" >/dev/null
	PARLAE_DATABASE_URL=$(url_of parlae_auditor) run --separate-stderr parlae audit tail -n 1 --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -r .seq <<<"$output")" "$(sql "SELECT seq FROM audit_chain_head")"
	PARLAE_DATABASE_URL=$(url_of parlae_auditor) run --separate-stderr parlae audit verify
	assert_success
	assert_regex "$output" "^audit log intact: "
	n=$(events)
	for stmt in "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('a', 'h', 'auditor.append', 'success')" \
		"UPDATE audit_events SET outcome = 'failure'" \
		"DELETE FROM audit_events" \
		"UPDATE audit_chain_head SET seq = seq + 1" \
		"SELECT * FROM accounts"; do
		run --separate-stderr sql_as parlae_auditor "$stmt"
		assert_equal "$status" 1
		assert_regex "$stderr" "permission denied for table (audit_events|audit_chain_head|accounts)"
	done
	# A command it may not run cannot even record its failure.
	PARLAE_DATABASE_URL=$(url_of parlae_auditor) run --separate-stderr parlae account add viaauditor
	assert_equal "$status" 7
	assert_equal "$(events)" "$n"
}

@test "running it again changes nothing, and takes back privileges granted since" {
	roles_sql -v db="$DB" >/dev/null
	sql_admin "GRANT SELECT, UPDATE ON audit_events, accounts TO parlae_audit_writer; ALTER ROLE parlae_auditor CREATEDB" >/dev/null
	run --separate-stderr roles_sql -v db="$DB"
	assert_success
	assert_equal "$(sql "SELECT string_agg(grantee || ':' || table_name || ':' || privilege_type, ' ' ORDER BY grantee, table_name, privilege_type)
		FROM information_schema.role_table_grants WHERE grantee IN ('parlae_audit_writer', 'parlae_auditor')")" \
		"parlae_audit_writer:audit_events:INSERT parlae_auditor:audit_chain_head:SELECT parlae_auditor:audit_events:SELECT"
	assert_equal "$(sql "SELECT rolcreatedb FROM pg_roles WHERE rolname = 'parlae_auditor'")" "f"
}

@test "the role names can be chosen with -v writer= and -v auditor=" {
	run --separate-stderr roles_sql -v db="$DB" -v writer=app_audit_0420 -v auditor=compliance_0420
	assert_success
	assert_equal "$output" "roles.sql: app_audit_0420 may append to the audit log of $DB, and compliance_0420 may read it"
	run --separate-stderr sql_as app_audit_0420 "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('app', 'h', 'named.writer', 'success')"
	assert_success
	assert_equal "$(sql_as compliance_0420 "SELECT action FROM audit_events ORDER BY seq DESC LIMIT 1")" "named.writer"
}
