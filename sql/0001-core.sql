-- The tenant and everything that hangs off it. No column ever holds a credential:
-- pms_integrations keeps only a reference into the secret store.

CREATE TABLE accounts (
	id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
	name text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pms_integrations (
	id bigserial PRIMARY KEY,
	account_id text NOT NULL REFERENCES accounts (id),
	provider text NOT NULL CHECK (provider IN ('SIKKA')),
	status text NOT NULL DEFAULT 'INACTIVE'
		CHECK (status IN ('INACTIVE', 'CONNECTING', 'ACTIVE', 'ERROR')),
	config jsonb NOT NULL DEFAULT '{}',
	features jsonb NOT NULL DEFAULT '{}',
	office_id text,
	practice_name text,
	pms_type text,
	secret_ref text,
	secret_version text,
	token_expiry timestamptz,
	last_sync_at timestamptz,
	last_error text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (account_id, provider),
	CHECK (status <> 'ACTIVE' OR secret_ref IS NOT NULL)
);

CREATE INDEX pms_integrations_due ON pms_integrations (token_expiry) WHERE status = 'ACTIVE';

-- Waiters (status --wait) LISTEN on this channel; the payload is only a wake-up.
CREATE FUNCTION pms_integrations_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('parlae_pms', NEW.account_id);
	RETURN NULL;
END
$$;

CREATE TRIGGER pms_integrations_notify AFTER INSERT OR UPDATE ON pms_integrations
	FOR EACH ROW EXECUTE FUNCTION pms_integrations_notify();

CREATE TABLE oauth_states (
	nonce text PRIMARY KEY,
	account_id text NOT NULL REFERENCES accounts (id),
	provider text NOT NULL DEFAULT 'SIKKA',
	redirect_uri text,
	issued_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	consumed_at timestamptz
);

CREATE TABLE vapi_phone_numbers (
	vapi_phone_id text PRIMARY KEY,
	account_id text NOT NULL REFERENCES accounts (id),
	number text NOT NULL,
	transfer_enabled boolean NOT NULL DEFAULT false,
	staff_forward_number text,
	integration_method text,
	sip_uri text,
	twilio_number text,
	original_phone_number text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX vapi_phone_numbers_account ON vapi_phone_numbers (account_id);

CREATE TABLE vapi_call_logs (
	call_id text PRIMARY KEY,
	account_id text NOT NULL REFERENCES accounts (id),
	vapi_phone_id text,
	status text NOT NULL DEFAULT 'in-progress',
	tool_calls integer NOT NULL DEFAULT 0,
	transfer_requested boolean NOT NULL DEFAULT false,
	transfer_reason text,
	transfer_summary text,
	started_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	ended_at timestamptz
);

CREATE INDEX vapi_call_logs_account ON vapi_call_logs (account_id, started_at);
