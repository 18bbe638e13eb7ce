-- A practice's whole life (issue 14): Sikka's marketplace handshake, every location, disconnect.
--
-- accounts.email is the practice's contact address, which a marketplace registration is matched
-- by. SETUP_REQUIRED is an integration whose practice bought the app but which Sikka does not
-- list yet (its SPU is not installed): `secrets rotate` and `status ACCOUNT` finish it when the
-- practice appears; it reads as `connecting`.
--
-- pms_registrations keeps every registration and cancellation received, whatever became of it:
-- a body that is not one is kept as received (raw, state malformed), a repeated
-- PartnerRegistrationID is kept as a duplicate of the first, an unmatched one stays pending for
-- `pms assign`. Its personal fields (names, email, phone, address) are kept only while it is
-- pending: once matched they are dropped, the ids stay.

ALTER TABLE accounts ADD COLUMN email text
	CHECK (email IS NULL OR (char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'));
CREATE INDEX accounts_email ON accounts (lower(email));

ALTER TABLE pms_integrations DROP CONSTRAINT pms_integrations_status_check;
ALTER TABLE pms_integrations ADD CONSTRAINT pms_integrations_status_check
	CHECK (status IN ('INACTIVE', 'CONNECTING', 'ACTIVE', 'ERROR', 'SETUP_REQUIRED'));

CREATE TABLE pms_registrations (
	id bigserial PRIMARY KEY,
	kind text NOT NULL CHECK (kind IN ('purchase', 'cancel')),
	state text NOT NULL CHECK (state IN ('pending', 'matched', 'setup_required', 'active',
		'cancelled', 'unmatched', 'duplicate', 'malformed')),
	registration_id text CHECK (char_length(registration_id) <= 128),  -- PartnerRegistrationID
	master_customer_id text CHECK (char_length(master_customer_id) <= 128),
	order_number text CHECK (char_length(order_number) <= 128),        -- Order#
	purchase_date text CHECK (char_length(purchase_date) <= 64),
	account_id text REFERENCES accounts (id),
	duplicate_of bigint,     -- the first registration of its id (no foreign key: a
	                         -- self-reference makes pg_dump --data-only warn)
	personal jsonb,          -- while pending or unmatched only
	raw bytea,               -- a malformed body, as received
	note text CHECK (char_length(note) <= 500),
	received_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	CHECK (personal IS NULL OR state IN ('pending', 'unmatched')),
	CHECK (raw IS NULL OR state = 'malformed'),
	CHECK (state = 'malformed' OR registration_id IS NOT NULL),
	CHECK ((state = 'duplicate') = (duplicate_of IS NOT NULL))
);

-- One registration per PartnerRegistrationID; the others are its duplicates.
CREATE UNIQUE INDEX pms_registrations_first ON pms_registrations (registration_id)
	WHERE kind = 'purchase' AND state <> 'duplicate' AND state <> 'malformed';
CREATE INDEX pms_registrations_customer ON pms_registrations (master_customer_id);
CREATE INDEX pms_registrations_account ON pms_registrations (account_id);
