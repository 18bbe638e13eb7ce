-- takeMessage keeps the messages a caller leaves for the staff in the call's log (cli.md: "keeps
-- it in vapi_call_logs"), and nowhere else: never in audit events, never in traces. One call
-- may leave several (each tool runs at most PARLAE_TOOL_CALL_LIMIT times a call), so they are
-- an array, oldest first, of {"at", "message", "callbackNumber", "urgency", "smsSent",
-- "smsError"}. The handler cuts a message to 1,000 bytes (between characters) and keeps at most
-- 20 a call, which the check below holds the table to whatever writes to it.

ALTER TABLE vapi_call_logs
	ADD COLUMN messages jsonb NOT NULL DEFAULT '[]'
		CHECK (CASE WHEN jsonb_typeof(messages) = 'array'
			THEN jsonb_array_length(messages) <= 20 ELSE false END);
