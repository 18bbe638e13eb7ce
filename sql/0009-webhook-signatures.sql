-- vapi listen: each HMAC-signed request is accepted once. A listener records the signature it
-- accepts here before running the request (INSERT ... ON CONFLICT DO NOTHING: a signature
-- already present is a replay, refused with 401), so that several listeners behind one server
-- URL refuse a replay that another of them accepted. A signature is only good within +-300 s
-- of its x-timestamp: rows older than that are pruned by the listeners as they go.
-- The signature is an HMAC of the timestamp and the body: it reveals neither.

CREATE TABLE vapi_webhook_signatures (
	signature text PRIMARY KEY CHECK (signature ~ '^[0-9a-f]{64}$'),
	signed_at timestamptz NOT NULL,
	accepted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX vapi_webhook_signatures_signed_at ON vapi_webhook_signatures (signed_at);
