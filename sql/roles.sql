-- The audit log's two least-privileged roles. NOT a migration (parlae db migrate never runs it:
-- parlae's own role has no CREATEROLE): a database administrator runs it, as a superuser or a
-- role with CREATEROLE that may grant on parlae's tables, after `parlae db migrate`:
--
--   psql -v db=parlae -f sql/roles.sql
--   psql -v db=parlae -v writer=app_audit -v auditor=compliance -f sql/roles.sql
--
-- writer  (default parlae_audit_writer): INSERT on audit_events, USAGE on its schema and CONNECT
--         on the database, and nothing else. It appends through the SECURITY DEFINER trigger,
--         which numbers and chains the event; it cannot read, change or delete any event.
-- auditor (default parlae_auditor): SELECT on audit_events and audit_chain_head, USAGE and
--         CONNECT, and nothing else: enough for `parlae audit tail` and `parlae audit verify`.
--
-- Both roles can log in but get no password here: set one (\password NAME) or authenticate them
-- another way in pg_hba.conf. Safe to run again: it creates what is missing and resets the two
-- roles' privileges on the database to exactly these.
\set ON_ERROR_STOP on
\set QUIET on

\if :{?db}
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: name the database: psql -v db=NAME -f sql/roles.sql'; END $$;
\endif
\if :{?writer}
\else
\set writer parlae_audit_writer
\endif
\if :{?auditor}
\else
\set auditor parlae_auditor
\endif

-- Roles belong to the cluster: create them once, and make sure they carry no power.
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'writer') AS create_writer,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'auditor') AS create_auditor \gset
\if :create_writer
CREATE ROLE :"writer" LOGIN;
\endif
\if :create_auditor
CREATE ROLE :"auditor" LOGIN;
\endif
ALTER ROLE :"writer" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"auditor" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;

-- Privileges belong to the database.
\connect :"db"
\set ON_ERROR_STOP on
\set QUIET on
SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.oid = 'audit_events'::regclass \gset

REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM :"writer", :"auditor";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA :"schema" FROM :"writer", :"auditor";
REVOKE ALL ON SCHEMA :"schema" FROM :"writer", :"auditor";
REVOKE ALL ON DATABASE :"db" FROM :"writer", :"auditor";

GRANT CONNECT ON DATABASE :"db" TO :"writer", :"auditor";
GRANT USAGE ON SCHEMA :"schema" TO :"writer", :"auditor";
GRANT INSERT ON :"schema".audit_events TO :"writer";
GRANT SELECT ON :"schema".audit_events, :"schema".audit_chain_head TO :"auditor";

\echo roles.sql: :writer may append to the audit log of :db, and :auditor may read it
