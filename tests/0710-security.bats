#!/usr/bin/env bats
# The security review, point by point: secrets never from argv, modes, key lengths,
# constant-time comparisons, SQL injection stored literally, names, size caps, TLS always
# verified, traces masked.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

setup_file() { vapi_setup_file; }
teardown_file() { vapi_teardown_file; }
setup() { vapi_setup; }

@test "no option of any command can carry a secret" {
	run --separate-stderr parlae help --json
	assert_success
	opts=$(jq -r '.commands[].options[]' <<<"$output" | sort -u)
	# --master-key is a switch: it says which key to rotate, the key itself comes from the environment.
	# --public-key names a file holding the checkpoints' public key, which is not secret.
	# The list is not empty (else the search below could not fail), and it holds the two switches.
	[ "$(wc -l <<<"$opts")" -ge 20 ]
	assert_equal "$(grep -cx -e '--master-key' -e '--public-key' <<<"$opts")" 2
	run grep -Ei 'key|secret|token|password|passwd' <<<"$(grep -v -e '--master-key' -e '--public-key' <<<"$opts")"
	assert_failure 1
	assert_output ""
	# --code is the redirect's one-time code, which the contract names; it has --url - too.
	assert_equal "$(grep -c -- '--code' <<<"$opts")" "1"
}

@test "ps during a long command shows no secret" {
	fake latency '{"ms":1500}' >/dev/null
	parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}' >/dev/null 2>&1 &
	pid=$!
	sleep 0.5
	args=$(ps -o args= -p $pid; cat /proc/$pid/cmdline | tr '\0' ' ')
	wait $pid
	[[ $args == *checkAvailability* ]]
	refute_secrets_in "$args" "$SIKKA_APP_KEY" "$PARLAE_MASTER_KEY" "$PARLAE_STATE_SECRET" "$TWILIO_AUTH_TOKEN"
}

@test "the store is 0700 with 0600 files; the shell history is 0600" {
	assert_equal "$(stat -c %a "$BATS_FILE_TMPDIR/vault")" "700"
	for f in "$BATS_FILE_TMPDIR"/vault/*; do assert_equal "$(stat -c %a "$f")" "600"; done
}

@test "key lengths: a short master key and a short state secret are refused" {
	PARLAE_MASTER_KEY=00112233 run --separate-stderr parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}'
	assert_equal "$status" 3
	assert_regex "$(jq -r '.results[0].error' <<<"$output")" "PARLAE_MASTER_KEY must be 32 bytes"
	PARLAE_STATE_SECRET=0123456789012345678901234567890 run --separate-stderr parlae sikka oauth-url happy
	assert_equal "$status" 3
	assert_regex "$stderr" "shorter than 32 bytes"
}

# A comparison is of a secret when an operand's name starts with sig, mac, hmac, tag or secret;
# such a comparison must be CRYPTO_memcmp (the pattern skips "_memcmp", so CRYPTO_memcmp passes).
ct_violations() {
	grep -nE '(^|[^_[:alnum:]])(memcmp|bcmp|strcmp|strncmp|strcasecmp|strncasecmp)\(([^;]*[^[:alnum:]_"])?(sig|mac|hmac|tag|secret)' "$@"
}

@test "MACs and signatures are compared in constant time" {
	# The check can fail: the state verifier with an ordinary memcmp is caught.
	sed 's/CRYPTO_memcmp(/memcmp(/' "$PL_TOP/lib/state.c" >"$BATS_TEST_TMPDIR/state.c"
	run ct_violations "$BATS_TEST_TMPDIR/state.c"
	assert_success
	assert_output --partial 'memcmp(sig, want'
	# The tree has none.
	run ct_violations "$PL_TOP"/lib/*.c "$PL_TOP"/cmd/*.c
	assert_failure 1
	assert_output ''
	run grep -c 'CRYPTO_memcmp(sig, want' "$PL_TOP/lib/state.c"
	assert_output 1
}

@test "SQL in every stored text argument is stored literally" {
	evil="x'); DROP TABLE audit_events; --"
	parlae account add sqli --name "$evil" >/dev/null
	assert_equal "$(sql "SELECT name FROM accounts WHERE id = 'sqli'")" "$evil"
	run --separate-stderr parlae vapi tool invoke transferToHuman --account happy --call-id "call-'; DROP TABLE x; --" --args "{\"reason\":\"$evil\",\"summary\":\"$evil\"}"
	assert_success
	assert_equal "$(sql "SELECT transfer_reason FROM vapi_call_logs WHERE call_id = 'call-''; DROP TABLE x; --'")" "$evil"
	run --separate-stderr parlae audit verify
	[ "$status" = 0 ] || [ "$status" = 2 ]
	assert_equal "$(sql "SELECT to_regclass('audit_events') IS NOT NULL")" "t"
}

@test "names that would leave the store are refused" {
	run --separate-stderr parlae account add "../../etc"
	assert_equal "$status" 2
	run --separate-stderr parlae status "../x"
	assert_equal "$status" 2
	run --separate-stderr parlae secrets rotate "a/../../b"
	assert_equal "$status" 2
}

@test "a response larger than the cap is refused, not swallowed" {
	python3 - "$BATS_TEST_TMPDIR/big.port" 3>&- <<'PY' &
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"items":["' + b"a" * 5000000 + b'"]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(srv.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
PY
	srv=$!
	for _ in $(seq 1 100); do [ -s "$BATS_TEST_TMPDIR/big.port" ] && break; sleep 0.05; done
	SIKKA_API_URL=http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/big.port") run --separate-stderr parlae pms setup happy
	kill $srv
	assert_equal "$status" 6
	assert_regex "$stderr" "^parlae: Sikka sent a response larger than 4194304 bytes"
}

@test "TLS is always verified; PARLAE_CA_BUNDLE trusts a private CA, and nothing turns it off" {
	d=$BATS_TEST_TMPDIR/tls
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
	python3 "$PL_TOP/tests/helpers/tls_server.py" "$d/cert.pem" "$d/key.pem" "$d/port" 3>&- &
	srv=$!
	for _ in $(seq 1 100); do [ -s "$d/port" ] && break; sleep 0.05; done
	url=https://127.0.0.1:$(cat "$d/port")
	SIKKA_API_URL=$url run --separate-stderr parlae pms setup happy
	assert_equal "$status" 6
	assert_regex "$stderr" "certificate"
	SIKKA_API_URL=$url PARLAE_CA_BUNDLE=$d/cert.pem run --separate-stderr parlae pms setup happy
	kill $srv
	assert_success --stderr '^recorded time zone'
	run grep -rn 'SSL_VERIFYPEER, 0\|SSL_VERIFYHOST, 0\|INSECURE' "$PL_TOP/lib" "$PL_TOP/cmd"
	assert_failure 1
	assert_output ""
}

@test "-vv traces mask secrets and patient data" {
	run --separate-stderr parlae vapi tool invoke getPatientInfo --account happy --caller +15551234567 --args '{"query":"555-123-4567"}' -vv
	assert_success --stderr 'trace: '
	[[ $stderr == *"trace: http: > App-Key: ***"* ]]
	[[ $stderr == *"trace: http: > Request-Key: ***"* ]]
	refute_secrets_in "$stderr" "$SIKKA_APP_KEY" Diaz ana@example.com 1990-04-01 "$(store_key)"
}

store_key() { fake_get state | jq -r '.offices.D36225.request_keys[-1].request_key'; }

@test "-vv never shows SQL parameters, only their count and lengths" {
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_DIRNAME/fixtures/vapi/tool-calls-transfer-to-human.json" -vv
	assert_success --stderr 'trace: '
	refute_secrets_in "$stderr" "insurance claim" "billing question" 7654321 "$SIKKA_APP_KEY"
	# The call log's insert: its statement, then "-- N parameters: $1 9 bytes ...".
	assert_regex "$stderr" $'trace: sql: INSERT INTO vapi_call_logs[^\n]* -- [0-9]+ parameters: \\$1 [0-9]+ bytes'
	# "billing question" is 16 bytes, the summary 49: their lengths are there, the text is not.
	assert_regex "$stderr" $'trace: sql: [^\n]* 16 bytes[^\n]* 49 bytes'
}

@test "-vv masks JSON inside JSON strings: a tool call's arguments and a target's reply" {
	reply='{"results":[{"toolCallId":"call_pat_01","result":"{\"patient\":{\"firstname\":\"Ana\",\"lastname\":\"Diaz\",\"birthdate\":\"1990-04-01\",\"cell\":\"+15551234567\"}}"}]}'
	target_fake faults "$(jq -nc --arg b "$reply" '{"method":"POST","path":"/vapi/webhook","count":1,"body":$b}')" >/dev/null
	run --separate-stderr parlae vapi tool invoke --payload "$BATS_TEST_DIRNAME/fixtures/vapi/tool-calls-get-patient-info-string-args.json" \
		--target "$FAKE_TARGET/vapi/webhook" -vv
	curl -sS -X POST "$FAKE_TARGET/__fake/faults/clear" >/dev/null
	assert_success --stderr 'trace: '
	assert_equal "$(jq -r '.results[0].result' <<<"$output" | jq -r .patient.lastname)" Diaz
	refute_secrets_in "$stderr" Ana Diaz 1990-04-01 1234567 123-4567 "$VAPI_WEBHOOK_SECRET"
	[[ $stderr == *'"arguments":"{\"query\":\"***\"}"'* ]]
	[[ $stderr == *'\"firstname\":\"***\",\"lastname\":\"***\",\"birthdate\":\"***\",\"cell\":\"***\"'* ]]
}
