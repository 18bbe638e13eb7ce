-- Each tool may run at most PARLAE_TOOL_CALL_LIMIT (5) times per Vapi call: an agent stuck in a
-- loop is told to hand the caller to a person. The runs per tool are counted in the call's log,
-- by the same statement that counts its tool calls, so that the count holds across processes
-- (several `vapi listen` workers, a replay beside them). {"bookAppointment": 2, ...}

ALTER TABLE vapi_call_logs
	ADD COLUMN tool_counts jsonb NOT NULL DEFAULT '{}'::jsonb;
