#!/usr/bin/env bats
# The aws:REGION secret store (AWS Secrets Manager), against the fake of tests/fakes/aws_secrets.py,
# which verifies SigV4 for real. First the store suite every backend shares
# (helpers/store-suite.bash, also run by 0100 against the file store), then what only AWS shows:
# credentials, session tokens, throttling, 5xx, lost answers, clock skew, status, and
# 'secrets rotate' through Secrets Manager's compare-and-swap.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/store
load helpers/store-suite

setup_file() {
	suite_setup
	suite_migrate
	start_aws "$BATS_FILE_TMPDIR/fakes"
	start_sikka "$BATS_FILE_TMPDIR/fakes"
	build_store_tool
}
teardown_file() {
	stop_aws "$BATS_FILE_TMPDIR/fakes"
	stop_sikka "$BATS_FILE_TMPDIR/fakes"
}

setup() {
	setup_home
	aws_env "$BATS_FILE_TMPDIR/fakes"
	sikka_env "$BATS_FILE_TMPDIR/fakes"
	fake_posts "$FAKE_AWS/__fake/reset" '{}' "$FAKE_SIKKA/__fake/faults/clear" '{}' \
		"$FAKE_SIKKA/__fake/latency" '{"ms":0}' >/dev/null
}

# A session (temporary) key pair the fake knows once aws_session_key has run.
TMP_KEY_ID=ASIAFAKEPARLAE000002
TMP_SECRET='tmp/Secret+Key=fedcba9876543210FEDCBA'
TMP_TOKEN=FwoGZXIvYXdzEFAKEsessionTOKEN0123456789abcdefghijklmnopqrstuvwxyz
aws_session_key() { # [EXPIRED]
	aws_fake keys "{\"access_key_id\":\"$TMP_KEY_ID\",\"secret_access_key\":\"$TMP_SECRET\",\"session_token\":\"$TMP_TOKEN\",\"expired\":${1:-false}}" >/dev/null
}

requests() { aws_get counters | jq -r .requests; }
ops() { aws_get counters | jq -r ".operations.$1 // 0"; }
view() { aws_get "secrets?name=$1"; }

CRED_HINT="(check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)"

# --- the shared suite ---------------------------------------------------------------------------

@test "a secret put into the store reads back exactly as written" {
	suite_round_trip
	# The version is the ClientRequestToken parlae chose: 64 lowercase hex digits.
	assert_regex "$V1" '^[0-9a-f]{64}$'
	assert_equal "$(view parlae/pms/sikka/happy-dental | jq -r .current_version)" "$V1"
}

@test "a new put keeps the previous version readable; a third put drops the oldest" {
	suite_previous_version
	# Secrets Manager still has the oldest, without a label: it is not parlae's to read.
	assert_equal "$(view a | jq -c '[.stages.AWSCURRENT, .stages.AWSPREVIOUS, (.versions | length)]')" \
		"$(jq -cn --arg a "$V3" --arg b "$V2" '[$a, $b, 3]')"
}

@test "names that could escape the store are refused (exit 2) and nothing is sent" {
	suite_bad_names
	assert_equal "$(requests)" "0"
}

@test "names up to 255 bytes are stored, listed and read back; 256 bytes are refused" {
	suite_long_names
}

@test "a value of 65536 bytes is stored; one byte more is refused (exit 65)" {
	suite_value_limit
	assert_equal "$(ops PutSecretValue)" "0"
}

@test "a missing secret or version is not found (exit 5)" {
	suite_not_found
}

@test "put-if is a compare-and-swap: a stale or absent expected version is refused (exit 10)" {
	suite_put_if
	# Each write went in as AWSPENDING and AWSCURRENT was moved to it by UpdateSecretVersionStage.
	assert_equal "$(aws_get counters | jq -c '.outcomes.UpdateSecretVersionStage')" '{"ok":1,"InvalidParameterException":1}'
}

@test "six writers racing put-if from the same version: exactly one wins" {
	suite_put_if_race
}

@test "secrets list --json shows names, versions and dates, never values" {
	suite_list_json
}

@test "secrets list without a TTY prints tab-separated rows, no header" {
	suite_list_text
}

@test "secrets list on an empty store is empty" {
	suite_list_empty
}

@test "delete removes every version of a secret; deleting it again is not found (exit 5)" {
	suite_delete
	# Deleted for good, not scheduled: the name is free at once.
	assert_equal "$(aws_get secrets | jq -c 'keys')" '["a","b"]'
}

# --- AWS only -----------------------------------------------------------------------------------

@test "without AWS credentials every operation exits 3 naming them, and nothing is sent" {
	msg="AWS_ACCESS_KEY_ID is not set: the aws: secret store needs AWS credentials (export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN with temporary credentials)"
	for unset_var in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
		for args in "put a" "put-if a x" "get a" "delete a"; do
			(unset $unset_var; run --separate-stderr store_tool $args <<<"value"
			 assert_equal "$status" 3
			 assert_equal "$output" ""
			 assert_equal "$stderr" "store-tool: ${msg//AWS_ACCESS_KEY_ID is/$unset_var is}")
		done
	done
	unset AWS_SECRET_ACCESS_KEY
	run --separate-stderr parlae secrets list
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: ${msg//AWS_ACCESS_KEY_ID is/AWS_SECRET_ACCESS_KEY is}"
	assert_equal "$(requests)" "0"
}

@test "a wrong secret key or an unknown access key exits 3 naming the variables; nothing is stored" {
	AWS_SECRET_ACCESS_KEY=not-the-key run --separate-stderr store_tool put a <<<"value"
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "store-tool: AWS Secrets Manager refused the credentials: InvalidSignatureException: The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details. $CRED_HINT"
	AWS_ACCESS_KEY_ID=AKIANOBODYKNOWSTHIS1 run --separate-stderr parlae secrets list
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: AWS Secrets Manager refused the credentials: UnrecognizedClientException: The security token included in the request is invalid. $CRED_HINT"
	AWS_SECRET_ACCESS_KEY=not-the-key run --separate-stderr parlae secrets list --json
	assert_equal "$status" 3
	assert_equal "$(jq -r .error.code <<<"$stderr")" "config"
	assert_equal "$(aws_get secrets)" "{}"
	assert_equal "$(aws_get counters | jq -c '.auth_failures')" '{"signature":2,"unknown_key":1}'
}

@test "session credentials: the token is sent and signed; without it, wrong or expired, exit 3" {
	aws_session_key
	export AWS_ACCESS_KEY_ID=$TMP_KEY_ID AWS_SECRET_ACCESS_KEY=$TMP_SECRET AWS_SESSION_TOKEN=$TMP_TOKEN
	run --separate-stderr store_tool put a <<<"value"
	assert_success
	assert_equal "$(store_tool get a)" "value"
	assert_equal "$(aws_get 'requests?n=10' | jq -r '[.[].access_key_id] | unique | join(",")')" "$TMP_KEY_ID"
	# An ASIA key without its token is refused before anything is sent.
	before=$(requests)
	(unset AWS_SESSION_TOKEN
	 run --separate-stderr store_tool get a
	 assert_equal "$status" 3
	 assert_equal "$stderr" "store-tool: AWS_ACCESS_KEY_ID is a temporary key (ASIA...) and AWS_SESSION_TOKEN is not set (export the AWS_SESSION_TOKEN issued with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	assert_equal "$(requests)" "$before"
	AWS_SESSION_TOKEN=${TMP_TOKEN}x run --separate-stderr store_tool get a
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: AWS Secrets Manager refused the credentials: UnrecognizedClientException: The security token included in the request is invalid. $CRED_HINT"
	# A token sent with a long-term key is refused too.
	AWS_ACCESS_KEY_ID=$FAKE_AWS_KEY_ID AWS_SECRET_ACCESS_KEY=$FAKE_AWS_SECRET run --separate-stderr store_tool get a
	assert_equal "$status" 3
	aws_session_key true
	run --separate-stderr store_tool get a
	assert_equal "$status" 3
	assert_equal "$stderr" "store-tool: AWS Secrets Manager refused the credentials: ExpiredTokenException: The security token included in the request is expired $CRED_HINT"
}

@test "-vv traces the AWS calls with the token, the key and every value masked" {
	aws_session_key
	export AWS_ACCESS_KEY_ID=$TMP_KEY_ID AWS_SECRET_ACCESS_KEY=$TMP_SECRET AWS_SESSION_TOKEN=$TMP_TOKEN
	value=sk-live-aws-7c1d0e9f8a2b4c6d
	sput parlae/pms/sikka/traced "{\"requestKey\":\"$value\"}" >/dev/null
	run --separate-stderr parlae -vv secrets list
	assert_success --stderr 'trace: '
	assert_regex "$stderr" "trace: http: POST $FAKE_AWS/"
	assert_regex "$stderr" "trace: http: > X-Amz-Target: secretsmanager.ListSecrets"
	assert_regex "$stderr" "trace: http: > X-Amz-Security-Token: \*\*\*"
	refute_secrets_in "$output$stderr" "$value" "$TMP_TOKEN" "$TMP_SECRET"
	# A rotation reads and writes the keys: neither the old nor the new ones are traced.
	seed traced 1 30
	old=$(store_tool get parlae/pms/sikka/traced-1)
	run --separate-stderr parlae -vv secrets rotate traced-1
	assert_success --stderr 'trace: '
	new=$(store_tool get parlae/pms/sikka/traced-1)
	assert_regex "$stderr" 'trace: http: > \{"SecretId":"parlae/pms/sikka/traced-1","ClientRequestToken":"[0-9a-f]{64}","SecretString":"\*\*\*","VersionStages":\["AWSPENDING"\]\}'
	assert_regex "$stderr" '"SecretString":"\*\*\*"'
	for k in requestKey refreshKey secretKey; do
		refute_secrets_in "$stderr" "$(jq -r .$k <<<"$old")" "$(jq -r .$k <<<"$new")"
	done
	refute_secrets_in "$stderr" "$TMP_TOKEN" "$TMP_SECRET"
}

@test "throttling is retried with backoff; throttled on every try is exit 6" {
	v=$(sput a value)
	aws_fake counters/reset '{}' >/dev/null
	aws_fake faults '{"operation":"GetSecretValue","status":400,"count":2}' >/dev/null
	run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "value"
	assert_equal "$(ops GetSecretValue)" "3"
	aws_fake faults '{"operation":"PutSecretValue","status":400,"count":-1}' >/dev/null
	run --separate-stderr store_tool put-if a "$v" <<<"new"
	assert_equal "$status" 6
	assert_equal "$stderr" "store-tool: AWS Secrets Manager is throttling PutSecretValue (3 tries) (retry later, or spread the calls out)"
	assert_equal "$(ops PutSecretValue)" "3"
	aws_fake faults/clear '{}' >/dev/null
	# A 429 is the http module's to retry.
	aws_fake faults '{"operation":"GetSecretValue","status":429,"count":1}' >/dev/null
	run --separate-stderr store_tool get a
	assert_success
	assert_equal "$output" "value"
}

@test "a 5xx is retried; still failing after the retries is exit 6 and changes nothing" {
	v=$(sput a value)
	aws_fake counters/reset '{}' >/dev/null
	aws_fake faults '{"operation":"GetSecretValue","status":503,"count":1}' >/dev/null
	run --separate-stderr store_tool get a
	assert_success
	aws_fake faults '{"operation":"PutSecretValue","status":500,"count":-1}' >/dev/null
	run --separate-stderr store_tool put-if a "$v" <<<"new"
	assert_equal "$status" 6
	assert_equal "$stderr" "store-tool: AWS Secrets Manager PutSecretValue failed: HTTP 500 InternalServiceError: An error occurred on the server side. (AWS may be having trouble: retry later)"
	assert_equal "$(ops PutSecretValue)" "3"
	assert_equal "$(store_tool get a)" "value"
	aws_fake faults/clear '{}' >/dev/null
	aws_fake faults '{"operation":"*","close":"reset","count":-1}' >/dev/null
	run --separate-stderr parlae secrets list
	assert_equal "$status" 6
	assert_regex "$stderr" "^parlae: AWS Secrets Manager unreachable: .*\(3 attempts\)"
}

@test "an answer lost after a write: the retry carries the same token and makes no second version" {
	aws_fake faults '{"operation":"CreateSecret","status":500,"when":"after"}' >/dev/null
	run --separate-stderr store_tool put a <<<"one"
	assert_success
	v1=$output
	aws_fake faults '{"operation":"PutSecretValue","close":true,"when":"after"}' >/dev/null
	run --separate-stderr store_tool put a <<<"two"
	assert_success
	v2=$output
	assert_equal "$(view a | jq -c '[.version_order == [$a, $b], .current]' --arg a "$v1" --arg b "$v2")" '[true,"two\n"]'
	# The swap's answer lost: the retry is refused (AWSCURRENT has moved), re-read, and ours.
	aws_fake counters/reset '{}' >/dev/null
	aws_fake faults '{"operation":"UpdateSecretVersionStage","status":500,"when":"after"}' >/dev/null
	run --separate-stderr store_tool put-if a "$v2" <<<"three"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(view a | jq -r '.stages.AWSCURRENT')" "$output"
	assert_equal "$(aws_get counters | jq -c '.outcomes.UpdateSecretVersionStage')" '{"ok":1,"InvalidParameterException":1}'
	# A delete whose answer is lost is done, not "not found".
	aws_fake faults '{"operation":"DeleteSecret","status":500,"when":"after"}' >/dev/null
	run --separate-stderr store_tool delete a
	assert_success
	assert_equal "$(aws_get secrets)" "{}"
}

@test "more than 15 minutes of clock skew is refused by AWS (exit 3) with a hint about the clock" {
	sput a value >/dev/null
	for offset in 1200 -1200; do
		aws_fake clock "{\"offset\":$offset}" >/dev/null
		run --separate-stderr store_tool get a
		assert_equal "$status" 3
		assert_equal "$output" ""
		assert_regex "$stderr" "^store-tool: AWS Secrets Manager refused the credentials: InvalidSignatureException: Signature (expired|not yet current): .* \(check this host's clock: AWS refuses requests signed more than 15 minutes off\)$"
	done
	aws_fake clock '{"offset":600}' >/dev/null
	run --separate-stderr store_tool get a
	assert_success
}

@test "PARLAE_SECRET_STORE aws:REGION: a malformed region is refused (exit 3); the region is signed" {
	for spec in aws: aws:US-EAST-1 aws:us_east_1 "aws:us-east-1/x"; do
		PARLAE_SECRET_STORE=$spec run --separate-stderr parlae secrets list
		assert_equal "$status" 3
		assert_equal "$stderr" "parlae: PARLAE_SECRET_STORE='$spec': the region must be like us-east-1 (for example PARLAE_SECRET_STORE=aws:us-east-1)"
	done
	PARLAE_SECRET_STORE=aws:eu-west-1 run --separate-stderr parlae secrets list
	assert_equal "$status" 3
	assert_regex "$stderr" "InvalidSignatureException: Credential should be scoped to a valid region, not 'eu-west-1'."
	# Without AWS_ENDPOINT_URL_SECRETS_MANAGER, the region's public endpoint.
	unset AWS_ENDPOINT_URL_SECRETS_MANAGER
	PARLAE_HTTP_TIMEOUT=1 PARLAE_SECRET_STORE=aws:eu-west-1 run --separate-stderr parlae -vv secrets list
	assert_equal "$status" 6
	assert_regex "$stderr" "trace: http: POST https://secretsmanager.eu-west-1.amazonaws.com/"
}

@test "secrets list pages through ListSecrets, skips names parlae could not have written, shows no value" {
	seedf=$BATS_TEST_TMPDIR/seed.json
	jq -cn '[range(1; 151) | {name: "parlae/pms/sikka/p\(. + 1000)", value: "page-secret-\(.)"}]
		+ [{name: "Prod/DB-Password", value: "page-secret-x"}]' >"$seedf"
	aws_fake secrets "$(cat "$seedf")" >/dev/null
	aws_fake counters/reset '{}' >/dev/null
	run --separate-stderr parlae secrets list --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[length, .[0].name, .[149].name, (.[0].version | length), .[0].previous]' <<<"$output")" \
		'[150,"parlae/pms/sikka/p1001","parlae/pms/sikka/p1150",36,null]'
	assert_equal "$(ops ListSecrets)" "2"
	assert_equal "$(ops GetSecretValue)" "0"
	[[ $output != *page-secret-* ]]
}

@test "status --json reports the aws backend: reachable with good credentials, not with bad ones" {
	run --separate-stderr parlae status --json
	assert_equal "$stderr" ""
	assert_equal "$(jq -c .secretStore <<<"$output")" '{"backend":"aws","reachable":true,"location":"us-east-1","error":null,"keyOpens":null,"rekeyUnfinished":false}'
	run --separate-stderr parlae status
	assert_regex "$output" "secret store  aws:us-east-1, usable"
	AWS_SECRET_ACCESS_KEY=not-the-key run --separate-stderr parlae status --json
	assert_equal "$(jq -c '[.secretStore.backend, .secretStore.reachable]' <<<"$output")" '["aws",false]'
	assert_regex "$(jq -r .secretStore.error <<<"$output")" "^AWS Secrets Manager refused the credentials: InvalidSignatureException"
	unset AWS_ACCESS_KEY_ID
	run --separate-stderr parlae status --json
	assert_equal "$(jq -r .secretStore.error <<<"$output")" "AWS_ACCESS_KEY_ID is not set: the aws: secret store needs AWS credentials"
	refute_secrets_in "$output$stderr" "$FAKE_AWS_SECRET"
}

@test "secrets rotate --master-key is refused with the aws: store (exit 2)" {
	PARLAE_MASTER_KEY_NEW=0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000 run --separate-stderr parlae secrets rotate --master-key
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: the aws: store does not use PARLAE_MASTER_KEY"
	assert_equal "$(requests)" "0"
}

# --- secrets rotate through Secrets Manager -----------------------------------------------------

# seed PREFIX N MINUTES: N connected accounts PREFIX-1..N whose keys expire in MINUTES, with
# real keys issued by the fake Sikka and stored in the aws: store as parlae stores them (as
# 0500-secrets-rotate.bats seeds the file store); the row keeps the version put printed.
seed() {
	local prefix=$1 n=$2 minutes=$3 i keys secret version sqlf=$BATS_TEST_TMPDIR/seed.sql
	fake access '{"office_id":"D36225","access":"ON"}' >/dev/null
	secret=$(fake_get state | jq -r '.practices[] | select(.office_id == "D36225") | .secret_key')
	: >"$sqlf"
	for i in $(seq 1 "$n"); do
		keys=$(fake issue '{"office_id":"D36225"}')
		version=$(jq -c --arg s "$secret" --arg e "$(date -u -d "+$minutes min" +%Y-%m-%dT%H:%M:%SZ)" \
			'{officeId:"D36225", secretKey:$s, requestKey:.request_key, refreshKey:.refresh_key,
			  tokenExpiry:$e, practiceName:"Happy Teeth Dental", pmsType:"Dentrix"}' <<<"$keys" |
			store_tool put "parlae/pms/sikka/$prefix-$i")
		printf "INSERT INTO accounts (id) VALUES ('%s-%s');\n" "$prefix" "$i" >>"$sqlf"
		printf "INSERT INTO pms_integrations (account_id, provider, status, office_id, secret_ref, secret_version, token_expiry) VALUES ('%s-%s', 'SIKKA', 'ACTIVE', 'D36225', 'parlae/pms/sikka/%s-%s', '%s', now() + interval '%s minutes');\n" \
			"$prefix" "$i" "$prefix" "$i" "$version" "$minutes" >>"$sqlf"
	done
	psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" -f "$sqlf" >/dev/null
}

row_version() { sql "SELECT secret_version FROM pms_integrations WHERE account_id = '$1'"; }

# Whether ACCOUNT's stored request key is one the fake Sikka accepts now.
key_works() {
	local key
	key=$(store_tool get "parlae/pms/sikka/$1" | jq -r .requestKey)
	fake_get state | jq -e --arg k "$key" '[.offices.D36225.request_keys[] | select(.request_key == $k and (.expired | not) and (.revoked | not))] | length == 1' >/dev/null
}

@test "secrets rotate with the aws: store: AWSPENDING, then AWSCURRENT moved; the old version is AWSPREVIOUS" {
	seed rot 2 30
	old1=$(row_version rot-1)
	seq=$(aws_get 'requests?n=1' | jq '.[0].seq')
	run --separate-stderr parlae secrets rotate rot-1 rot-2 --json
	assert_success
	log=$(aws_get 'requests?n=50' | jq -c --argjson seq "$seq" '[.[] | select(.seq > $seq)]')
	assert_equal "$(jq -c '[.rotated, .skipped, .notDue, .failed]' <<<"$output")" '[2,0,0,0]'
	for i in 1 2; do
		key_works "rot-$i"
		new=$(row_version "rot-$i")
		assert_equal "$(view "parlae/pms/sikka/rot-$i" | jq -r .stages.AWSCURRENT)" "$new"
	done
	assert_equal "$(view parlae/pms/sikka/rot-1 | jq -r .stages.AWSPREVIOUS)" "$old1"
	# Per account: read, write as AWSPENDING, move AWSCURRENT; nothing refused.
	assert_equal "$(jq -c '[.[] | select(.secret_id == "parlae/pms/sikka/rot-1") | [.operation, .status]]' <<<"$log")" \
		'[["GetSecretValue",200],["PutSecretValue",200],["UpdateSecretVersionStage",200]]'
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action = 'secrets.rotate' AND outcome = 'success' AND account_id LIKE 'rot-%'")" "2"
	# The tools read the rotated key back from AWS.
	sql "UPDATE pms_integrations SET config = '{\"timezone\":\"UTC\",\"hours\":{\"tue\":[[\"08:00\",\"09:00\"]]}}' WHERE account_id = 'rot-1'"
	PARLAE_NOW=2026-11-30T15:00:00Z run --separate-stderr parlae vapi tool invoke checkAvailability --account rot-1 --args '{"date":"2026-12-01"}'
	assert_success
	assert_equal "$(jq -r '.results[0].result' <<<"$output" | jq -c '.slots | length')" "2"
}

@test "two rotations of one account at once: one refresh, one new version" {
	seed pair 1 30
	old=$(row_version pair-1)
	fake counters/reset '{}' >/dev/null
	fake latency '{"ms":300}' >/dev/null
	for n in 1 2; do
		(set +e; parlae secrets rotate pair-1 --json >"$BATS_TEST_TMPDIR/run$n" 2>"$BATS_TEST_TMPDIR/err$n"
		 echo $? >"$BATS_TEST_TMPDIR/rc$n") &
	done
	wait
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rc1") $(cat "$BATS_TEST_TMPDIR/rc2")" "0 0"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/err1" "$BATS_TEST_TMPDIR/err2")" ""
	assert_equal "$(jq -s '[.[].rotated] | add' "$BATS_TEST_TMPDIR/run1" "$BATS_TEST_TMPDIR/run2")" "1"
	assert_equal "$(fake_get counters | jq -c '[.grants.refresh_key, (.invalid_refresh | add // 0)]')" '[1,0]'
	assert_equal "$(view parlae/pms/sikka/pair-1 | jq -c '[(.version_order | length), .stages.AWSPREVIOUS == $old, .stages.AWSCURRENT == $new]' \
		--arg old "$old" --arg new "$(row_version pair-1)")" '[2,true,true]'
	key_works pair-1
}

@test "a write outside parlae's lock during a rotation is kept: the compare-and-swap refuses the rotation's (exit 6)" {
	seed cas 1 30
	v1=$(row_version cas-1)
	fake latency '{"ms":1500}' >/dev/null
	aws_fake counters/reset '{}' >/dev/null
	(set +e; parlae secrets rotate cas-1 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	 echo $? >"$BATS_TEST_TMPDIR/rc") &
	# Once the rotation has read the secret (and is waiting on Sikka), another writer replaces it.
	for _ in $(seq 1 100); do
		[ "$(ops GetSecretValue)" -ge 1 ] && break
		sleep 0.05
	done
	other=$(store_tool get parlae/pms/sikka/cas-1 | jq -c '.practiceName = "Changed elsewhere"' |
		store_tool put-if parlae/pms/sikka/cas-1 "$v1")
	wait
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rc")" "6"
	assert_regex "$(cat "$BATS_TEST_TMPDIR/err")" "cas-1: secret parlae/pms/sikka/cas-1 changed while it was being replaced \(version $other, expected $v1\)"
	assert_equal "$(view parlae/pms/sikka/cas-1 | jq -r .stages.AWSCURRENT)" "$other"
	assert_equal "$(store_tool get parlae/pms/sikka/cas-1 | jq -r .practiceName)" "Changed elsewhere"
	assert_equal "$(row_version cas-1)" "$v1"
	assert_equal "$(sql "SELECT count(*) FROM audit_events WHERE action = 'secrets.rotate' AND outcome = 'failure' AND account_id = 'cas-1'")" "1"
}
