-- Nothing a role below the owner can set decides an event's seq, prev_hash or hash.
-- 0003 carried the chain from one event to the next of a transaction in session settings, which
-- any role may set (set_config): a role with INSERT alone could make the next event follow any
-- sequence number and hash it chose. Now the chain continues from the rows themselves: the last
-- event (the primary key's far end, so the cost stays flat however large the log or the
-- transaction) or the chain head when it is further on (a log whose tail was deleted).
--
-- The definer functions also run with a fixed search_path that ends with pg_temp, so that a
-- temporary table or function of the caller's can never stand in for one of ours.

CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
	head audit_chain_head;
	last_seq bigint;
	last_hash text;
BEGIN
	-- The lock orders appends (commit order is sequence order); only the owner can take it,
	-- since locking a row needs UPDATE on the table.
	SELECT * INTO STRICT head FROM audit_chain_head FOR UPDATE;
	SELECT seq, hash INTO last_seq, last_hash FROM audit_events ORDER BY seq DESC LIMIT 1;
	IF last_seq IS NULL OR last_seq < head.seq THEN
		last_seq := head.seq;
		last_hash := head.hash;
	END IF;
	NEW.seq := last_seq + 1;
	NEW.occurred_at := clock_timestamp();
	NEW.prev_hash := last_hash;
	NEW.hash := encode(sha256(convert_to(last_hash || audit_canonical(NEW), 'UTF8')), 'hex');
	PERFORM pg_notify('parlae_audit', NEW.seq::text);
	RETURN NEW;
END
$$;

-- At commit, once per event of the transaction: the first firing moves the head to the last
-- event; the others find it there already.
CREATE OR REPLACE FUNCTION audit_chain_head_write() RETURNS trigger LANGUAGE plpgsql
	SECURITY DEFINER AS $$
BEGIN
	UPDATE audit_chain_head h SET seq = e.seq, hash = e.hash
		FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) e
		WHERE h.seq < e.seq;
	RETURN NULL;
END
$$;

DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION audit_events_chain() SET search_path = %I, pg_temp',
		current_schema());
	EXECUTE format('ALTER FUNCTION audit_chain_head_write() SET search_path = %I, pg_temp',
		current_schema());
END
$$;

-- The definer functions are triggers: nobody calls them directly.
REVOKE ALL ON FUNCTION audit_events_chain(), audit_chain_head_write() FROM PUBLIC;
