-- The roles parlae's commands connect as. NOT a migration (parlae db migrate never runs it:
-- the owner of parlae's tables has no CREATEROLE): a database administrator runs it, as a
-- superuser or a role with CREATEROLE that may grant on parlae's tables, after the first
-- `parlae db migrate`:
--
--   psql -v db=parlae -f sql/roles.sql
--   psql -v db=parlae -v app=parlae_web -v auditor=compliance -f sql/roles.sql
--
-- owner   the role that owns the database's tables (whoever ran `parlae db migrate`): only
--         `parlae db migrate` connects as it. It must not be a superuser.
-- app     (default parlae_app) every other command: SELECT, INSERT, UPDATE and DELETE on the
--         operational tables (and on those later migrations create), SELECT on
--         schema_migrations, no DELETE on pms_registrations (a marketplace registration is
--         never lost), SELECT and INSERT on audit_events (it appends through the
--         SECURITY DEFINER trigger, which numbers and chains the event), SELECT on
--         audit_chain_head; SELECT, INSERT and DELETE (no UPDATE) on vapi_webhook_signatures.
--         It owns nothing, so it cannot disable, drop or alter anything of the audit log,
--         nor change an event once written.
-- auditor (default parlae_auditor) SELECT on audit_events and audit_chain_head and nothing
--         else: enough for `parlae audit tail` and `parlae audit verify`.
--
-- The roles can log in but get no password here: set one (\password NAME) or authenticate them
-- another way in pg_hba.conf. Safe to run again: it creates what is missing and resets the two
-- roles' privileges on the database to exactly these.
\set ON_ERROR_STOP on
\set QUIET on

\if :{?db}
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: name the database: psql -v db=NAME -f sql/roles.sql'; END $$;
\endif
\if :{?app}
\else
\set app parlae_app
\endif
\if :{?auditor}
\else
\set auditor parlae_auditor
\endif

-- Roles belong to the cluster: create them once, and make sure they carry no power.
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app') AS create_app,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'auditor') AS create_auditor \gset
\if :create_app
CREATE ROLE :"app" LOGIN;
\endif
\if :create_auditor
CREATE ROLE :"auditor" LOGIN;
\endif
ALTER ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"auditor" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;

-- Privileges belong to the database.
\connect :"db"
\set ON_ERROR_STOP on
\set QUIET on
SELECT to_regclass('audit_events') IS NULL AS unmigrated \gset
\if :unmigrated
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: no audit_events here: run parlae db migrate (as the owner) first'; END $$;
\endif
SELECT n.nspname AS schema, pg_get_userbyid(c.relowner) AS owner
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.oid = 'audit_events'::regclass \gset
SELECT :'owner' IN (:'app', :'auditor') AS owner_is_role,
       (SELECT rolsuper FROM pg_roles WHERE rolname = :'owner') AS owner_is_super \gset
\if :owner_is_role
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: the command role and the auditor must not own parlae''s tables'; END $$;
\endif
\if :owner_is_super
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: parlae''s tables are owned by a superuser: migrate as a role that is not one'; END $$;
\endif
-- Neither role may be a member of the owner (it could SET ROLE to it).
SELECT format('REVOKE %I FROM %I', :'owner', r.rolname)
	FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
	WHERE m.roleid = :'owner'::regrole AND r.rolname IN (:'app', :'auditor') \gexec
-- Whoever owns the database or the schema may drop the log's tables: neither role may.
SELECT EXISTS (SELECT 1 FROM pg_roles r, pg_database d, pg_namespace n
	WHERE r.rolname IN (:'app', :'auditor') AND d.datname = current_database()
	AND n.nspname = :'schema'
	AND (pg_has_role(r.oid, d.datdba, 'MEMBER') OR pg_has_role(r.oid, n.nspowner, 'MEMBER')))
	AS owns_container \gset
\if :owns_container
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: the command role or the auditor owns the database or its schema (and so may drop the audit log): give them to the owner of parlae''s tables (ALTER DATABASE ... OWNER TO ...)'; END $$;
\endif

REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM :"app", :"auditor";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA :"schema" FROM :"app", :"auditor";
REVOKE ALL ON SCHEMA :"schema" FROM :"app", :"auditor";
REVOKE ALL ON DATABASE :"db" FROM :"app", :"auditor";
-- Nobody but the owner creates objects next to parlae's (PostgreSQL before 15 let everyone).
REVOKE CREATE ON SCHEMA :"schema" FROM PUBLIC;

GRANT CONNECT ON DATABASE :"db" TO :"app", :"auditor";
GRANT USAGE ON SCHEMA :"schema" TO :"app", :"auditor";

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA :"schema" TO :"app";
REVOKE ALL ON :"schema".audit_events, :"schema".audit_chain_head, :"schema".schema_migrations
	FROM :"app";
GRANT SELECT, INSERT ON :"schema".audit_events TO :"app";
GRANT SELECT ON :"schema".audit_chain_head, :"schema".schema_migrations TO :"app";
GRANT SELECT ON :"schema".audit_events, :"schema".audit_chain_head TO :"auditor";
-- vapi listen's accepted HMAC signatures (0009) are inserted once and pruned, never changed.
SELECT to_regclass(format('%I.vapi_webhook_signatures', :'schema')) IS NOT NULL AS has_signatures \gset
\if :has_signatures
REVOKE UPDATE ON :"schema".vapi_webhook_signatures FROM :"app";
\endif
-- A marketplace registration is never lost (pms_registrations, migration 0008): the app may
-- change its state and drop its personal fields, never delete it.
SELECT to_regclass(:'schema' || '.pms_registrations') IS NOT NULL AS has_registrations \gset
\if :has_registrations
REVOKE DELETE ON :"schema".pms_registrations FROM :"app";
\endif

-- Tables that later migrations create are the app's to use without running this again.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema"
	GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema"
	GRANT USAGE, SELECT ON SEQUENCES TO :"app";

\echo roles.sql: on :db, :app runs the commands, :auditor reads the audit log, :owner owns the tables and only migrates
