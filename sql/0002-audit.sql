-- The HIPAA audit log: append-only and hash-chained (architecture invariant 5).
-- A one-row chain head is locked and advanced by every insert, so sequence numbers follow
-- commit order, appending reads nothing but the head, and a deleted last row is noticed.

CREATE TABLE audit_chain_head (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq bigint NOT NULL,
	hash text NOT NULL
);

INSERT INTO audit_chain_head (seq, hash) VALUES (0, repeat('0', 64));

CREATE TABLE audit_events (
	seq bigint PRIMARY KEY,
	occurred_at timestamptz NOT NULL,
	actor text NOT NULL,
	host text NOT NULL,
	account_id text,
	action text NOT NULL,
	resource_type text,
	resource_id text,
	outcome text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
	error_code text,
	request_id text,
	metadata jsonb NOT NULL DEFAULT '{}',
	prev_hash text NOT NULL,
	hash text NOT NULL
);

CREATE INDEX audit_events_account ON audit_events (account_id, seq);

-- "<byte length>:<value>;" or "-;" for NULL.
CREATE FUNCTION audit_field(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN v IS NULL THEN '-;' ELSE octet_length(v)::text || ':' || v || ';' END
$$;

-- The canonical form, from the database's own text renderings, which audit verify refetches.
CREATE FUNCTION audit_canonical(e audit_events) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT audit_field(e.seq::text)
		|| audit_field(to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
		|| audit_field(e.actor) || audit_field(e.host) || audit_field(e.account_id)
		|| audit_field(e.action) || audit_field(e.resource_type) || audit_field(e.resource_id)
		|| audit_field(e.outcome) || audit_field(e.error_code) || audit_field(e.request_id)
		|| audit_field(e.metadata::text)
$$;

-- SECURITY DEFINER: a role with INSERT alone on audit_events can append.
CREATE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path FROM CURRENT AS $$
DECLARE
	head audit_chain_head;
BEGIN
	SELECT * INTO head FROM audit_chain_head FOR UPDATE;
	NEW.seq := head.seq + 1;
	NEW.occurred_at := clock_timestamp();
	NEW.prev_hash := head.hash;
	NEW.hash := encode(sha256(convert_to(head.hash || audit_canonical(NEW), 'UTF8')), 'hex');
	UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash;
	PERFORM pg_notify('parlae_audit', NEW.seq::text);
	RETURN NEW;
END
$$;

CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
	FOR EACH ROW EXECUTE FUNCTION audit_events_chain();

CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();

-- The head only moves forward, one event at a time, and is never removed.
CREATE FUNCTION audit_chain_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.seq <> OLD.seq + 1 THEN
		RAISE EXCEPTION 'the audit chain head only advances by one event'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE ON audit_chain_head
	FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward();
CREATE TRIGGER audit_chain_head_keep BEFORE DELETE ON audit_chain_head
	FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
	FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
