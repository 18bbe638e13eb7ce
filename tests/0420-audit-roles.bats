#!/usr/bin/env bats
# sql/roles.sql, run by a database administrator after the first migration: parlae_app, the role
# every command but db migrate connects as, which owns nothing and so cannot change the audit
# log's history; parlae_auditor, which may only read it (architecture invariant 5, "Against whom").
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
	suite_migrate
	parlae account add first >/dev/null
}
setup() {
	setup_home
	DB=${PARLAE_DATABASE_URL##*dbname=}
	# status --check also wants a store its key opens (an empty one opens under any key).
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
}

sql_as() { psql -XAtq -v ON_ERROR_STOP=1 "$(db_url_as "$1")" -c "$2"; }

# The DBA's command, as the superuser; extra psql arguments (-v ...) first.
roles_sql() { pg_roles_sql "$(db_url_as pgadmin)" "$@"; }

grants() {
	sql_admin "SELECT string_agg(grantee || ':' || table_name || ':' || privilege_type, ' ' ORDER BY grantee, table_name, privilege_type)
		FROM information_schema.role_table_grants WHERE grantee IN ($1)"
}

events() { sql "SELECT count(*) FROM audit_events"; }

@test "roles.sql is not a migration: db migrate neither compiles nor applies it" {
	[[ ! $(basename "$PL_TOP/sql/roles.sql") =~ ^[0-9]{4}- ]]
	run --separate-stderr parlae db status --json
	assert_success
	assert_equal "$(jq -r '[.applied[], .pending[]] | map(.name) | map(select(test("role"))) | length' <<<"$output")" 0
}

@test "without -v db it refuses and creates nothing" {
	run --separate-stderr roles_sql -v app=nobody_0420 -v auditor=nobody2_0420
	assert_equal "$status" 3
	assert_regex "$stderr" "roles.sql: name the database: psql -v db=NAME -f sql/roles.sql"
	assert_equal "$(sql "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'nobody%_0420'")" 0
}

@test "on a database that was never migrated it says to migrate first" {
	pg_new_database t_0420_empty >/dev/null
	run --separate-stderr roles_sql -v db=t_0420_empty
	assert_equal "$status" 3
	assert_regex "$stderr" "roles.sql: no audit_events here: run parlae db migrate \(as the owner\) first"
}

@test "it says which role does what, and the roles carry no power" {
	run --separate-stderr roles_sql -v db="$DB"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "roles.sql: on $DB, parlae_app runs the commands, parlae_auditor reads the audit log, parlae owns the tables and only migrates"
	assert_equal "$(sql "SELECT string_agg(rolname || ':' || rolcanlogin || rolsuper || rolcreatedb || rolcreaterole || rolinherit || rolreplication || rolbypassrls, ' ' ORDER BY rolname)
		FROM pg_roles WHERE rolname IN ('parlae_app', 'parlae_auditor')")" \
		"parlae_app:truefalsefalsefalsefalsefalsefalse parlae_auditor:truefalsefalsefalsefalsefalsefalse"
	assert_equal "$(sql "SELECT pg_has_role('parlae_app', 'parlae', 'MEMBER'), pg_has_role('parlae_auditor', 'parlae', 'MEMBER')")" "f|f"
}

@test "parlae_app may use the operational tables, append to and read the audit log, and nothing more" {
	assert_equal "$(grants "'parlae_app'")" "$(echo parlae_app:accounts:{DELETE,INSERT,SELECT,UPDATE} parlae_app:audit_chain_head:SELECT \
		parlae_app:audit_events:{INSERT,SELECT} parlae_app:oauth_states:{DELETE,INSERT,SELECT,UPDATE} \
		parlae_app:pms_integrations:{DELETE,INSERT,SELECT,UPDATE} parlae_app:pms_registrations:{INSERT,SELECT,UPDATE} \
		parlae_app:schema_migrations:SELECT \
		parlae_app:vapi_call_logs:{DELETE,INSERT,SELECT,UPDATE} parlae_app:vapi_phone_numbers:{DELETE,INSERT,SELECT,UPDATE} \
		parlae_app:vapi_webhook_signatures:{DELETE,INSERT,SELECT})"
	assert_equal "$(grants "'parlae_auditor'")" "parlae_auditor:audit_chain_head:SELECT parlae_auditor:audit_events:SELECT"
	assert_equal "$(sql "SELECT has_schema_privilege('parlae_app', 'public', 'CREATE'), has_database_privilege('parlae_app', '$DB', 'CREATE'),
		has_schema_privilege('parlae_auditor', 'public', 'CREATE')")" "f|f|f"
	# It owns nothing in the database.
	assert_equal "$(sql "SELECT count(*) FROM pg_class WHERE relowner = 'parlae_app'::regrole")" 0
	assert_equal "$(sql "SELECT count(*) FROM pg_proc WHERE proowner = 'parlae_app'::regrole")" 0
}

@test "parlae_app cannot disable, drop or alter anything of the audit log, nor change an event" {
	n=$(events)
	for stmt in "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only" \
		"ALTER TABLE audit_events DISABLE TRIGGER USER" \
		"ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_forward" \
		"DROP TRIGGER audit_events_chain ON audit_events" \
		"DROP TABLE audit_events" \
		"ALTER TABLE audit_events ADD COLUMN x int" \
		"ALTER TABLE audit_events OWNER TO parlae_app" \
		"CREATE RULE skip AS ON INSERT TO audit_events DO INSTEAD NOTHING" \
		"CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NULL; END \$\$" \
		"ALTER FUNCTION audit_events_chain() SECURITY INVOKER" \
		"DROP FUNCTION audit_canonical(audit_events)" \
		"SET session_replication_role = replica" \
		"SET ROLE parlae" \
		"UPDATE audit_events SET outcome = 'failure'" \
		"DELETE FROM audit_events" \
		"TRUNCATE audit_events" \
		"UPDATE audit_chain_head SET seq = seq + 1" \
		"DELETE FROM audit_chain_head" \
		"SELECT * FROM audit_chain_head FOR UPDATE" \
		"CREATE TABLE public.audit_shadow (i int)"; do
		run --separate-stderr sql "$stmt"
		assert_equal "$status" 1
		assert_regex "$stderr" "(must be owner of|permission denied)"
	done
	assert_equal "$(events)" "$n"
	run --separate-stderr parlae audit verify
	assert_success
}

@test "nothing parlae_app can set decides seq, prev_hash or hash: session settings, temporary tables, search_path" {
	before=$(sql "SELECT seq || ':' || hash FROM audit_chain_head")
	# The forgery that worked against migration 0003: chain state in session settings, plus
	# temporary tables standing in for the head and the log, first on the search_path, plus
	# values for the chained columns themselves.
	run --separate-stderr psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" <<-'SQL'
		BEGIN;
		SELECT set_config('parlae.audit_tx', txid_current()::text, true) IS NOT NULL;
		SELECT set_config('parlae.audit_seq', '1000000', true) IS NOT NULL;
		SELECT set_config('parlae.audit_hash', repeat('f', 64), true) IS NOT NULL;
		CREATE TEMP TABLE audit_chain_head (one boolean, seq bigint, hash text);
		INSERT INTO pg_temp.audit_chain_head VALUES (true, 5000, repeat('e', 64));
		CREATE TEMP TABLE audit_events (seq bigint, hash text);
		INSERT INTO pg_temp.audit_events VALUES (7000, repeat('d', 64));
		SET LOCAL search_path = pg_temp, public;
		INSERT INTO public.audit_events (seq, prev_hash, hash, occurred_at, actor, host, action, outcome)
			VALUES (99, repeat('a', 64), repeat('b', 64), '2001-01-01', 'app', 'h', 'forged.append', 'success');
		COMMIT;
	SQL
	assert_success
	seq=${before%%:*}
	assert_equal "$(sql "SELECT seq || ':' || prev_hash || ':' || action || ':' || (occurred_at > now() - interval '1 hour') FROM audit_events ORDER BY seq DESC LIMIT 1")" \
		"$((seq + 1)):${before#*:}:forged.append:true"
	assert_equal "$(sql "SELECT seq FROM audit_chain_head")" "$((seq + 1))"
	run --separate-stderr parlae audit verify
	assert_success
	assert_regex "$output" "^audit log intact: $((seq + 1)) events"
}

@test "appends chain across savepoints, rollbacks and several in one transaction" {
	seq=$(sql "SELECT seq FROM audit_chain_head")
	psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" >/dev/null <<-'SQL'
		BEGIN;
		INSERT INTO audit_events (actor, host, action, outcome) VALUES ('app', 'h', 'tx.one', 'success');
		SAVEPOINT s;
		INSERT INTO audit_events (actor, host, action, outcome) VALUES ('app', 'h', 'tx.undone', 'success');
		ROLLBACK TO SAVEPOINT s;
		INSERT INTO audit_events (actor, host, action, outcome) SELECT 'app', 'h', 'tx.many', 'success' FROM generate_series(1, 3);
		COMMIT;
		BEGIN;
		INSERT INTO audit_events (actor, host, action, outcome) VALUES ('app', 'h', 'tx.rolledback', 'success');
		ROLLBACK;
	SQL
	assert_equal "$(sql "SELECT string_agg(seq || ':' || action, ' ' ORDER BY seq) FROM audit_events WHERE seq > $seq")" \
		"$((seq + 1)):tx.one $((seq + 2)):tx.many $((seq + 3)):tx.many $((seq + 4)):tx.many"
	assert_equal "$(sql "SELECT seq FROM audit_chain_head")" "$((seq + 4))"
	run --separate-stderr parlae audit verify
	assert_success
}

@test "status shows the audit log protected as parlae_app; as the owner or a superuser --check fails naming why" {
	run --separate-stderr parlae status --json
	assert_success
	assert_equal "$(jq -c '.audit | [.protected, .reason, .lastEvent]' <<<"$output")" "[true,null,$(sql "SELECT seq FROM audit_chain_head")]"
	PARLAE_DATABASE_URL=$(db_url_as parlae) SIKKA_APP_ID=a SIKKA_APP_KEY=k run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_line "audit log     NOT protected: connected as parlae, the owner of its tables: run the commands as parlae_app (sql/roles.sql)"
	assert_equal "$stderr" "parlae: status --check: the audit log is not protected: connected as parlae, the owner of its tables: run the commands as parlae_app (sql/roles.sql)"
	PARLAE_DATABASE_URL=$(db_url_as pgadmin) SIKKA_APP_ID=a SIKKA_APP_KEY=k run --separate-stderr parlae status --check --json
	assert_equal "$status" 1
	assert_equal "$(jq -r .audit.reason <<<"$output")" "connected as pgadmin, a superuser: run the commands as parlae_app (sql/roles.sql)"
	assert_equal "$stderr" "parlae: status --check: the audit log is not protected: connected as pgadmin, a superuser: run the commands as parlae_app (sql/roles.sql)"
}

@test "a role that may act as the owner is not protected either, nor is a log whose trigger the owner disabled" {
	sql_admin "DROP ROLE IF EXISTS deputy_0420; CREATE ROLE deputy_0420 LOGIN IN ROLE parlae" >/dev/null
	PARLAE_DATABASE_URL=$(db_url_as deputy_0420) run --separate-stderr parlae status --json
	assert_equal "$(jq -r .audit.reason <<<"$output")" "connected as deputy_0420, which may act as parlae, the owner of its tables: run the commands as parlae_app (sql/roles.sql)"
	sql_owner "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only" >/dev/null
	SIKKA_APP_ID=a SIKKA_APP_KEY=k run --separate-stderr parlae status --check
	sql_owner "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only" >/dev/null
	assert_equal "$status" 1
	assert_equal "$stderr" "parlae: status --check: the audit log is not protected: a trigger that guards it is disabled or missing: enable it as the owner, then run 'parlae audit verify'"
	SIKKA_APP_ID=a SIKKA_APP_KEY=k run --separate-stderr parlae status --check
	assert_success
}

@test "db migrate as parlae_app: nothing to do is fine, a pending migration says to run it as the owner" {
	run --separate-stderr parlae db migrate
	assert_success
	assert_equal "$output" "schema is current (version $(sql "SELECT max(version) FROM schema_migrations"))"
	sql_owner "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)" >/dev/null
	run --separate-stderr parlae db migrate
	sql_owner "INSERT INTO schema_migrations (version, name) SELECT max(version) + 1, 'audit-chain-state' FROM schema_migrations" >/dev/null
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: db migrate: role parlae_app may not create tables in the schema: migrations run as the role that owns parlae's tables (run it with PARLAE_DATABASE_URL connecting as that owner; every other command connects as parlae_app (sql/roles.sql))"
}

@test "the auditor can tail and verify but cannot insert, update or delete" {
	PARLAE_DATABASE_URL=$(db_url_as parlae_auditor) run --separate-stderr parlae audit tail -n 1 --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -r .seq <<<"$output")" "$(sql "SELECT seq FROM audit_chain_head")"
	PARLAE_DATABASE_URL=$(db_url_as parlae_auditor) run --separate-stderr parlae audit verify
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
	PARLAE_DATABASE_URL=$(db_url_as parlae_auditor) run --separate-stderr parlae account add viaauditor
	assert_equal "$status" 7
	assert_equal "$(events)" "$n"
}

@test "a table a later migration creates is parlae_app's to use without running roles.sql again" {
	sql_owner "CREATE TABLE later_0420 (id serial PRIMARY KEY, v text)" >/dev/null
	run --separate-stderr sql "INSERT INTO later_0420 (v) VALUES ('x') RETURNING id"
	sql_owner "DROP TABLE later_0420" >/dev/null
	assert_success
	assert_equal "$output" "1"
}

@test "running it again changes nothing, and takes back privileges granted since" {
	before=$(grants "'parlae_app', 'parlae_auditor'")
	sql_admin "GRANT UPDATE, DELETE, TRUNCATE ON audit_events TO parlae_app; GRANT INSERT ON audit_events, accounts TO parlae_auditor;
		GRANT parlae TO parlae_app; ALTER ROLE parlae_auditor CREATEDB" >/dev/null
	run --separate-stderr roles_sql -v db="$DB"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(grants "'parlae_app', 'parlae_auditor'")" "$before"
	assert_equal "$(sql "SELECT rolcreatedb FROM pg_roles WHERE rolname = 'parlae_auditor'")" "f"
	assert_equal "$(sql "SELECT pg_has_role('parlae_app', 'parlae', 'MEMBER')")" "f"
}

@test "the role names can be chosen with -v app= and -v auditor=" {
	run --separate-stderr roles_sql -v db="$DB" -v app=web_0420 -v auditor=compliance_0420
	assert_success
	assert_equal "$output" "roles.sql: on $DB, web_0420 runs the commands, compliance_0420 reads the audit log, parlae owns the tables and only migrates"
	PARLAE_DATABASE_URL=$(db_url_as web_0420) run --separate-stderr parlae account add named-app
	assert_success
	assert_equal "$(sql_as compliance_0420 "SELECT action || ':' || account_id FROM audit_events ORDER BY seq DESC LIMIT 1")" "account.add:named-app"
}

@test "the database's or the schema's owner, CREATEROLE, a superuser's login and the server's files are not protected either" {
	# parlae_app owning the database may drop the log's tables.
	sql_admin "ALTER DATABASE \"$DB\" OWNER TO parlae_app" >/dev/null
	run --separate-stderr parlae status --json
	sql_admin "ALTER DATABASE \"$DB\" OWNER TO parlae" >/dev/null
	assert_equal "$(jq -r .audit.reason <<<"$output")" "connected as parlae_app, the owner of the database (who may drop its tables): run the commands as parlae_app (sql/roles.sql)"
	# roles.sql refuses to leave it so.
	sql_admin "ALTER DATABASE \"$DB\" OWNER TO parlae_app" >/dev/null
	run --separate-stderr roles_sql -v db="$DB"
	sql_admin "ALTER DATABASE \"$DB\" OWNER TO parlae" >/dev/null
	assert_equal "$status" 3
	assert_regex "$stderr" "roles.sql: the command role or the auditor owns the database or its schema"
	# CREATEROLE lets a role (before PostgreSQL 16) grant itself the owner's role.
	sql_admin "ALTER ROLE parlae_app CREATEROLE" >/dev/null
	run --separate-stderr parlae status --json
	sql_admin "ALTER ROLE parlae_app NOCREATEROLE" >/dev/null
	assert_equal "$(jq -r .audit.reason <<<"$output")" "connected as parlae_app, which has CREATEROLE and so may make itself the owner: run the commands as parlae_app (sql/roles.sql)"
	# A superuser's login that sets the role to parlae_app is still a superuser's session.
	PARLAE_DATABASE_URL="$(db_url_as pgadmin) options='-c role=parlae_app'" run --separate-stderr parlae status --json
	assert_equal "$(jq -r .audit.reason <<<"$output")" "logged in as pgadmin, a superuser: run the commands as parlae_app (sql/roles.sql)"
	# Writing the server's files changes anything.
	sql_admin "GRANT pg_write_server_files TO parlae_app" >/dev/null
	run --separate-stderr parlae status --json
	sql_admin "REVOKE pg_write_server_files FROM parlae_app" >/dev/null
	assert_equal "$(jq -r .audit.reason <<<"$output")" "connected as parlae_app, which may write the server's files or run programs there: run the commands as parlae_app (sql/roles.sql)"
	run --separate-stderr parlae status --json
	assert_equal "$(jq -c .audit.protected <<<"$output")" "true"
}

@test "a transaction left open on the chain head fails a command after the lock timeout instead of hanging it" {
	# parlae_app can hold the head's lock by appending and not committing; the command waits
	# 10 s (PL_DB_LOCK_TIMEOUT), fails naming the cause, and records its failure once the
	# holder is gone.
	psql -XAtq "$PARLAE_DATABASE_URL" -c BEGIN \
		-c "INSERT INTO audit_events (actor, host, action, outcome) VALUES ('app', 'h', 'held.open', 'success')" \
		-c "SELECT pg_sleep(12)" -c ROLLBACK >/dev/null &
	holder=$!
	for _ in $(seq 1 100); do
		[ "$(sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'audit_chain_head' AND l.mode = 'RowShareLock'")" -gt 0 ] && break
		sleep 0.05
	done
	run --separate-stderr parlae account add held-open
	wait "$holder"
	assert_equal "$status" 7
	assert_equal "$stderr" "parlae: database error: canceling statement due to lock timeout (another session held a lock it needed for 10s) (a transaction left open (one that wrote to the audit log holds its chain head) blocks it: find it with pg_blocking_pids() in pg_stat_activity)"
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id = 'held-open'")" 0
	assert_equal "$(sql "SELECT action || ':' || outcome || ':' || error_code FROM audit_events ORDER BY seq DESC LIMIT 1")" "account.add:failure:database"
	run --separate-stderr parlae audit verify
	assert_success
}
