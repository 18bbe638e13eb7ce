-- Appending costs the same inside one large transaction as across many. Before, every event
-- updated the one-row chain head; in one transaction each update leaves a row version the next
-- read must walk past, so the cost per event grew with the transaction. Now the head is locked
-- and read once per transaction, the chain continues from transaction-local settings, and the
-- head is written once, at commit, by a deferred trigger. The lock is still held from the first
-- event to the commit, so sequence order is still commit order.

CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path FROM CURRENT AS $$
DECLARE
	tx text := txid_current()::text;
	head_seq bigint;
	head_hash text;
BEGIN
	IF current_setting('parlae.audit_tx', true) IS DISTINCT FROM tx THEN
		SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_head FOR UPDATE;
	ELSE
		head_seq := current_setting('parlae.audit_seq')::bigint;
		head_hash := current_setting('parlae.audit_hash');
	END IF;
	NEW.seq := head_seq + 1;
	NEW.occurred_at := clock_timestamp();
	NEW.prev_hash := head_hash;
	NEW.hash := encode(sha256(convert_to(head_hash || audit_canonical(NEW), 'UTF8')), 'hex');
	-- Local to the transaction, and undone with a subtransaction that rolls back.
	PERFORM set_config('parlae.audit_tx', tx, true);
	PERFORM set_config('parlae.audit_seq', NEW.seq::text, true);
	PERFORM set_config('parlae.audit_hash', NEW.hash, true);
	PERFORM pg_notify('parlae_audit', NEW.seq::text);
	RETURN NEW;
END
$$;

-- At commit: the first firing moves the head to the transaction's last event; the others find
-- it there already.
CREATE FUNCTION audit_chain_head_write() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path FROM CURRENT AS $$
BEGIN
	UPDATE audit_chain_head SET seq = current_setting('parlae.audit_seq')::bigint,
		hash = current_setting('parlae.audit_hash')
		WHERE seq < current_setting('parlae.audit_seq')::bigint;
	RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER audit_chain_head_write AFTER INSERT ON audit_events
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_chain_head_write();

-- The head now moves by a whole transaction's events at once, and still only forward.
CREATE OR REPLACE FUNCTION audit_chain_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.seq <= OLD.seq THEN
		RAISE EXCEPTION 'the audit chain head only moves forward'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;
