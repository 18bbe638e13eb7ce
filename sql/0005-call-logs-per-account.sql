-- A call log belongs to its account. 0001 keyed vapi_call_logs on the Vapi call id alone, so a
-- payload for another account with the same call id updated (and an end-of-call-report closed)
-- this account's row. The key is now (account_id, call_id): the same call id seen for two
-- accounts is two rows, and every statement on a call names the account.
--
-- A transfer texts the staff on a best-effort basis: the log keeps whether the text went and,
-- when it did not, why (Twilio's error code or that the service could not be reached; never
-- the text itself).

ALTER TABLE vapi_call_logs DROP CONSTRAINT vapi_call_logs_pkey;
ALTER TABLE vapi_call_logs ADD PRIMARY KEY (account_id, call_id);

ALTER TABLE vapi_call_logs
	ADD COLUMN sms_sent boolean,
	ADD COLUMN sms_error text CHECK (char_length(sms_error) <= 200);
