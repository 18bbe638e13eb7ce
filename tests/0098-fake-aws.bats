#!/usr/bin/env bats
# The fake AWS Secrets Manager (tests/fakes/aws_secrets.py) answers as upstreams.md and AWS say:
# it verifies SigV4 for real and keeps version stages, so the store suites can trust it. Driven
# with curl's own SigV4 (--aws-sigv4, as libcurl signs for parlae) and, for requests curl will not
# make (a tampered body, a missing signed header, an old date), with a separate signer below.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes

AKID=AKIAFAKEPARLAE000001
SKEY='fake/Secret+Key=0123456789abcdefABCDEF'
T1=11111111-1111-4111-8111-111111111111
T2=22222222-2222-4222-8222-222222222222
T3=33333333-3333-4333-8333-333333333333
T4=44444444-4444-4444-8444-444444444444

setup_file() {
	start_fake aws_secrets "$BATS_FILE_TMPDIR" --access-key-id "$AKID" --secret-access-key "$SKEY" --region us-east-1
	export FAKE_AWS=http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/aws_secrets.port")
}

teardown_file() {
	stop_fake aws_secrets "$BATS_FILE_TMPDIR"
}

setup() {
	ctl reset '{}' >/dev/null
}

# ctl PATH [JSON]: the control API (GET without a body, POST with one).
ctl() { curl -sSf "$FAKE_AWS/__fake/$1" ${2:+-H 'Content-Type: application/json' -d "$2"}; }

# call CURL-ARGS...: sets $code and $body.
call() {
	code=$(curl -sS -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' "$@")
	slurp body "$BATS_TEST_TMPDIR/body"
}

# sm OPERATION JSON [CURL-ARGS...]: a request signed by curl, as libcurl signs for parlae.
# Later --user / --aws-sigv4 arguments override the defaults; SM_TYPE replaces the content type.
sm() {
	local op=$1 data=$2
	shift 2
	call --aws-sigv4 "aws:amz:us-east-1:secretsmanager" --user "$AKID:$SKEY" \
		-H "Content-Type: ${SM_TYPE:-application/x-amz-json-1.1}" -H "X-Amz-Target: secretsmanager.$op" \
		--data-binary "$data" "$@" "$FAKE_AWS/"
}

# err: "STATUS TYPE" of the last answer.
err() { echo "$code $(jq -r .__type <<<"$body")"; }

# sigv4 BODY: an independent SigV4 signer for POST / (Python, from the AWS spec). Prints the
# X-Amz-Date and Authorization values on two lines. Environment knobs: SIG_OP (GetSecretValue),
# SIG_SIGNED (content-type;host;x-amz-date;x-amz-target), SIG_DATE (now), SIG_KEY, SIG_AKID,
# SIG_TOKEN (an x-amz-security-token value to sign).
sigv4() {
	python3 - "$1" "$FAKE_AWS" <<'EOF'
import hashlib, hmac, os, sys, time
body, url = sys.argv[1].encode(), sys.argv[2]
host = url.split("://", 1)[1].rstrip("/")
amzdate = os.environ.get("SIG_DATE") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
hdrs = {"content-type": "application/x-amz-json-1.1", "host": host, "x-amz-date": amzdate,
        "x-amz-target": "secretsmanager." + os.environ.get("SIG_OP", "GetSecretValue"),
        "x-amz-security-token": os.environ.get("SIG_TOKEN", "")}
signed = os.environ.get("SIG_SIGNED", "content-type;host;x-amz-date;x-amz-target").split(";")
creq = "\n".join(["POST", "/", "", "".join(f"{h}:{hdrs.get(h, '')}\n" for h in signed),
                  ";".join(signed), hashlib.sha256(body).hexdigest()])
scope = f"{amzdate[:8]}/us-east-1/secretsmanager/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
k = ("AWS4" + os.environ["SIG_KEY"]).encode()
for part in (amzdate[:8], "us-east-1", "secretsmanager", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
print(amzdate)
print(f"AWS4-HMAC-SHA256 Credential={os.environ['SIG_AKID']}/{scope}, "
      f"SignedHeaders={';'.join(signed)}, Signature={sig}")
EOF
}

# raw SIGNED-BODY SENT-BODY [CURL-ARGS...]: sign one body with sigv4, send another. SEND_OP
# sends another X-Amz-Target than the signed SIG_OP.
raw() {
	local sig date auth
	sig=$(SIG_KEY=${SIG_KEY:-$SKEY} SIG_AKID=${SIG_AKID:-$AKID} sigv4 "$1") || return 1
	date=$(sed -n 1p <<<"$sig")
	auth=$(sed -n 2p <<<"$sig")
	local sent=$2
	shift 2
	call -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: secretsmanager.${SEND_OP:-${SIG_OP:-GetSecretValue}}" \
		-H "X-Amz-Date: $date" -H "Authorization: $auth" --data-binary "$sent" "$@" "$FAKE_AWS/"
}

# Helpers taking fixed arguments then optional extra curl arguments (e.g. --user, -H).
create() { # NAME TOKEN VALUE [CURL-ARGS...]
	local n=$1 t=$2 v=$3
	shift 3
	sm CreateSecret "{\"Name\":\"$n\",\"ClientRequestToken\":\"$t\",\"SecretString\":\"$v\"}" "$@"
}
put() { # NAME TOKEN VALUE [STAGES-JSON]
	sm PutSecretValue "{\"SecretId\":\"$1\",\"ClientRequestToken\":\"$2\",\"SecretString\":\"$3\"${4:+,\"VersionStages\":$4}}"
}
get() { # NAME [CURL-ARGS...]
	local n=$1
	shift
	sm GetSecretValue "{\"SecretId\":\"$n\"}" "$@"
}
get_stage() { # NAME STAGE
	sm GetSecretValue "{\"SecretId\":\"$1\",\"VersionStage\":\"$2\"}"
}
swap() { # NAME STAGE MOVE-TO [REMOVE-FROM]
	sm UpdateSecretVersionStage "{\"SecretId\":\"$1\",\"VersionStage\":\"$2\",\"MoveToVersionId\":\"$3\"${4:+,\"RemoveFromVersionId\":\"$4\"}}"
}
stages() { # NAME: the fake's view, {version: [stages]}
	ctl "secrets?name=$1" | jq -c '.versions | map_values(.stages)'
}

# ---- operations --------------------------------------------------------------------------------

@test "aws: CreateSecret then GetSecretValue: the value, AWSCURRENT, VersionId = ClientRequestToken" {
	create parlae/acct/D36225 "$T1" '{\"refresh_key\":\"rk-1\"}'
	assert_equal "$code" 200
	assert_regex "$(jq -r .ARN <<<"$body")" '^arn:aws:secretsmanager:us-east-1:123456789012:secret:parlae/acct/D36225-[A-Za-z0-9]{6}$'
	assert_equal "$(jq -c '[.Name, .VersionId]' <<<"$body")" "[\"parlae/acct/D36225\",\"$T1\"]"
	arn=$(jq -r .ARN <<<"$body")

	get parlae/acct/D36225
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.Name, .VersionId, .SecretString, .VersionStages, (.CreatedDate|type)]' <<<"$body")" \
		"[\"parlae/acct/D36225\",\"$T1\",\"{\\\"refresh_key\\\":\\\"rk-1\\\"}\",[\"AWSCURRENT\"],\"number\"]"
	# By ARN, by VersionId, by stage.
	sm GetSecretValue "{\"SecretId\":\"$arn\",\"VersionId\":\"$T1\",\"VersionStage\":\"AWSCURRENT\"}"
	assert_equal "$code $(jq -r .VersionId <<<"$body")" "200 $T1"
	# The content type is AWS's.
	run curl -sS -o /dev/null -w '%{content_type}' --aws-sigv4 "aws:amz:us-east-1:secretsmanager" --user "$AKID:$SKEY" \
		-H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: secretsmanager.GetSecretValue' \
		--data-binary '{"SecretId":"parlae/acct/D36225"}' "$FAKE_AWS/"
	assert_output application/x-amz-json-1.1

	run ctl "secrets?name=parlae/acct/D36225"
	assert_equal "$(jq -c "[.current, .current_version, .versions[\"$T1\"].stages]" <<<"$output")" \
		"[\"{\\\"refresh_key\\\":\\\"rk-1\\\"}\",\"$T1\",[\"AWSCURRENT\"]]"
}

@test "aws: CreateSecret is idempotent on token and value; a new value or token for the name is refused" {
	create s1 "$T1" v1
	assert_equal "$code" 200
	create s1 "$T1" v1
	assert_equal "$code $(jq -r .VersionId <<<"$body")" "200 $T1"
	create s1 "$T1" v1-changed
	assert_equal "$(err)" '400 ResourceExistsException'
	assert_equal "$(jq -r .Message <<<"$body")" "You can't modify an existing version, you can only create a new version."
	create s1 "$T2" v2
	assert_equal "$(err)" '400 ResourceExistsException'
	assert_equal "$(jq -r .Message <<<"$body")" 'The operation failed because the secret s1 already exists.'
	run ctl "secrets?name=s1"
	assert_equal "$(jq -c '[.version_order, .current]' <<<"$output")" "[[\"$T1\"],\"v1\"]"
}

@test "aws: a missing secret or stage is ResourceNotFoundException; bad members are ValidationException" {
	get nope
	assert_equal "$(err)" '400 ResourceNotFoundException'
	assert_equal "$body" '{"__type":"ResourceNotFoundException","Message":"Secrets Manager can'"'"'t find the specified secret."}'
	create s1 "$T1" v1
	get_stage s1 AWSPENDING
	assert_equal "$(err)" '400 ResourceNotFoundException'
	assert_equal "$(jq -r .Message <<<"$body")" "Secrets Manager can't find the specified secret value for staging label: AWSPENDING"
	sm GetSecretValue "{\"SecretId\":\"s1\",\"VersionId\":\"$T2\"}"
	assert_equal "$(err)" '400 ResourceNotFoundException'

	create s2 short-token v1
	assert_equal "$(err)" '400 ValidationException'
	assert_equal "$(jq -r .message <<<"$body")" "1 validation error detected: Value 'short-token' at 'clientRequestToken' failed to satisfy constraint: Member must have length greater than or equal to 32"
	sm GetSecretValue '{}'
	assert_equal "$(err)" '400 ValidationException'
	sm CreateSecret "{\"Name\":\"bad name\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"x\"}"
	assert_equal "$(err)" '400 InvalidParameterException'
}

@test "aws: PutSecretValue: the new version becomes AWSCURRENT, the old AWSPREVIOUS; retries are idempotent" {
	create s1 "$T1" v1
	put s1 "$T2" v2
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.VersionId, .VersionStages]' <<<"$body")" "[\"$T2\",[\"AWSCURRENT\"]]"
	assert_equal "$(stages s1)" "{\"$T1\":[\"AWSPREVIOUS\"],\"$T2\":[\"AWSCURRENT\"]}"
	get_stage s1 AWSPREVIOUS
	assert_equal "$(jq -r .SecretString <<<"$body")" v1

	# The same token and value again: nothing changes.
	put s1 "$T2" v2
	assert_equal "$code $(jq -c .VersionStages <<<"$body")" '200 ["AWSCURRENT"]'
	# The same token with another value: refused.
	put s1 "$T2" v2-other
	assert_equal "$(err)" '400 ResourceExistsException'

	put s1 "$T3" v3
	assert_equal "$(stages s1)" "{\"$T1\":[],\"$T2\":[\"AWSPREVIOUS\"],\"$T3\":[\"AWSCURRENT\"]}"
	# A version without stages is deprecated: DescribeSecret leaves it out, VersionId still reads it.
	sm DescribeSecret '{"SecretId":"s1"}'
	assert_equal "$(jq -c .VersionIdsToStages <<<"$body")" "{\"$T2\":[\"AWSPREVIOUS\"],\"$T3\":[\"AWSCURRENT\"]}"
	sm GetSecretValue "{\"SecretId\":\"s1\",\"VersionId\":\"$T1\"}"
	assert_equal "$code $(jq -c '[.SecretString, .VersionStages]' <<<"$body")" '200 ["v1",[]]'

	put nope "$T1" v1
	assert_equal "$(err)" '400 ResourceNotFoundException'
}

@test "aws: rotation: AWSPENDING first, then UpdateSecretVersionStage moves AWSCURRENT (old → AWSPREVIOUS)" {
	create s1 "$T1" v1
	put s1 "$T2" v2 '["AWSPENDING"]'
	assert_equal "$code $(jq -c .VersionStages <<<"$body")" '200 ["AWSPENDING"]'
	get s1
	assert_equal "$(jq -r .SecretString <<<"$body")" v1
	get_stage s1 AWSPENDING
	assert_equal "$(jq -r .SecretString <<<"$body")" v2

	swap s1 AWSCURRENT "$T2" "$T1"
	assert_equal "$code" 200
	assert_equal "$(jq -c 'keys' <<<"$body")" '["ARN","Name"]'
	get s1
	assert_equal "$(jq -c '[.SecretString, .VersionId]' <<<"$body")" "[\"v2\",\"$T2\"]"
	sm DescribeSecret '{"SecretId":"s1"}'
	assert_equal "$(jq -c .VersionIdsToStages <<<"$body")" "{\"$T1\":[\"AWSPREVIOUS\"],\"$T2\":[\"AWSPENDING\",\"AWSCURRENT\"]}"

	# AWSPENDING can be removed on its own; AWSCURRENT cannot.
	sm UpdateSecretVersionStage "{\"SecretId\":\"s1\",\"VersionStage\":\"AWSPENDING\",\"RemoveFromVersionId\":\"$T2\"}"
	assert_equal "$code" 200
	sm UpdateSecretVersionStage "{\"SecretId\":\"s1\",\"VersionStage\":\"AWSCURRENT\",\"RemoveFromVersionId\":\"$T2\"}"
	assert_equal "$(err)" '400 InvalidParameterException'
	assert_equal "$(stages s1)" "{\"$T1\":[\"AWSPREVIOUS\"],\"$T2\":[\"AWSCURRENT\"]}"

	# A PutSecretValue with AWSPENDING takes the label from whichever version has it; a retry
	# of an existing token changes no stage.
	put s1 "$T3" v3 '["AWSPENDING"]'
	put s1 "$T4" v4 '["AWSPENDING"]'
	assert_equal "$code $(jq -c .VersionStages <<<"$body")" '200 ["AWSPENDING"]'
	put s1 "$T3" v3 '["AWSPENDING"]'
	assert_equal "$code $(jq -c .VersionStages <<<"$body")" '200 []'
	assert_equal "$(stages s1)" "{\"$T1\":[\"AWSPREVIOUS\"],\"$T2\":[\"AWSCURRENT\"],\"$T3\":[],\"$T4\":[\"AWSPENDING\"]}"
}

@test "aws: the compare-and-swap: a stale RemoveFromVersionId, or none, is refused and changes nothing" {
	create s1 "$T1" v1
	put s1 "$T2" host-a '["AWSPENDING"]'
	swap s1 AWSCURRENT "$T2" "$T1"
	assert_equal "$code" 200
	# Host B read T1 as current before A swapped: its swap must fail.
	put s1 "$T3" host-b '["AWSPENDING"]'
	swap s1 AWSCURRENT "$T3" "$T1"
	assert_equal "$(err)" '400 InvalidParameterException'
	assert_regex "$(jq -r .Message <<<"$body")" 'RemoveFromVersionId'
	# Moving a held label without RemoveFromVersionId fails too.
	swap s1 AWSCURRENT "$T3"
	assert_equal "$(err)" '400 InvalidParameterException'
	# An unknown target version.
	swap s1 AWSCURRENT 99999999-9999-4999-8999-999999999999 "$T2"
	assert_equal "$(err)" '400 ResourceNotFoundException'
	get s1
	assert_equal "$(jq -r .SecretString <<<"$body")" host-a
	assert_equal "$(stages s1)" "{\"$T1\":[\"AWSPREVIOUS\"],\"$T2\":[\"AWSCURRENT\"],\"$T3\":[\"AWSPENDING\"]}"
	run ctl counters
	assert_equal "$(jq -c '.outcomes.UpdateSecretVersionStage' <<<"$output")" '{"ok":1,"InvalidParameterException":2,"ResourceNotFoundException":1}'
}

@test "aws: twenty racing swaps from the same current version: exactly one wins" {
	create s1 "$T1" v1
	for i in $(seq 10 29); do
		put s1 "aaaaaaaa-aaaa-4aaa-8aaa-0000000000$i" "v$i" '["AWSPENDING"]'
	done
	for i in $(seq 10 29); do
		curl -sS -o /dev/null -w '%{http_code}\n' --aws-sigv4 "aws:amz:us-east-1:secretsmanager" --user "$AKID:$SKEY" \
			-H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: secretsmanager.UpdateSecretVersionStage' \
			--data-binary "{\"SecretId\":\"s1\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"aaaaaaaa-aaaa-4aaa-8aaa-0000000000$i\",\"RemoveFromVersionId\":\"$T1\"}" \
			"$FAKE_AWS/" >"$BATS_TEST_TMPDIR/swap.$i" &
	done
	wait
	assert_equal "$(cat "$BATS_TEST_TMPDIR"/swap.* | sort | uniq -c | awk '{print $1 "x" $2}' | tr '\n' ' ')" '1x200 19x400 '
	run ctl "secrets?name=s1"
	assert_equal "$(jq -r '.versions[.current_version].value == .current and .current != "v1"' <<<"$output")" true
	assert_equal "$(jq -r '.stages.AWSPREVIOUS' <<<"$output")" "$T1"
}

@test "aws: ListSecrets pages with MaxResults and NextToken; a bad token is refused" {
	for n in a b c d e; do create "list/$n" "$T1" "v-$n"; done
	sm ListSecrets '{"MaxResults":2}'
	assert_equal "$(jq -c '[.SecretList[].Name]' <<<"$body")" '["list/a","list/b"]'
	assert_equal "$(jq -c '.SecretList[0].SecretVersionsToStages' <<<"$body")" "{\"$T1\":[\"AWSCURRENT\"]}"
	tok=$(jq -r .NextToken <<<"$body")
	sm ListSecrets "{\"MaxResults\":2,\"NextToken\":\"$tok\"}"
	assert_equal "$(jq -c '[.SecretList[].Name]' <<<"$body")" '["list/c","list/d"]'
	tok=$(jq -r .NextToken <<<"$body")
	sm ListSecrets "{\"MaxResults\":2,\"NextToken\":\"$tok\"}"
	assert_equal "$(jq -c '[[.SecretList[].Name], .NextToken]' <<<"$body")" '[["list/e"],null]'
	sm ListSecrets '{"Filters":[{"Key":"name","Values":["list/c"]}]}'
	assert_equal "$(jq -c '[.SecretList[].Name]' <<<"$body")" '["list/c"]'
	sm ListSecrets '{"NextToken":"garbage!"}'
	assert_equal "$(err)" '400 InvalidNextTokenException'
	sm ListSecrets '{"MaxResults":0}'
	assert_equal "$(err)" '400 ValidationException'
}

@test "aws: DeleteSecret schedules (then InvalidRequestException), RestoreSecret undoes, force removes" {
	create s1 "$T1" v1
	sm DeleteSecret '{"SecretId":"s1","RecoveryWindowInDays":7}'
	assert_equal "$code" 200
	get s1
	assert_equal "$(err)" '400 InvalidRequestException'
	sm ListSecrets '{}'
	assert_equal "$(jq '.SecretList | length' <<<"$body")" 0
	sm DescribeSecret '{"SecretId":"s1"}'
	assert_equal "$code $(jq '.DeletedDate|type' <<<"$body")" '200 "number"'
	create s1 "$T2" v2
	assert_equal "$(err)" '400 InvalidRequestException'
	sm RestoreSecret '{"SecretId":"s1"}'
	get s1
	assert_equal "$code $(jq -r .SecretString <<<"$body")" '200 v1'
	sm DeleteSecret '{"SecretId":"s1","ForceDeleteWithoutRecovery":true}'
	get s1
	assert_equal "$(err)" '400 ResourceNotFoundException'
}

# ---- SigV4 -------------------------------------------------------------------------------------

@test "sigv4: a wrong secret key is refused (400 InvalidSignatureException) and nothing is stored" {
	create s1 "$T1" v1 --user "$AKID:not-the-secret"
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" '^The request signature we calculated does not match the signature you provided\.'
	# The message shows the canonical request, as AWS's does.
	assert_regex "$(jq -r .message <<<"$body")" 'content-type;host;x-amz-date;x-amz-target'
	run ctl secrets
	assert_output '{}'
	run ctl counters
	assert_equal "$(jq -c '[.signature_failures, .auth_failures.signature, .outcomes.CreateSecret]' <<<"$output")" \
		'[1,1,{"InvalidSignatureException":1}]'
}

@test "sigv4: an unknown access key is UnrecognizedClientException; no Authorization is MissingAuthenticationToken" {
	get s1 --user "AKIANOBODY0000000000:$SKEY"
	assert_equal "$code" 400
	assert_equal "$body" '{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}'
	call -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: secretsmanager.GetSecretValue' --data-binary '{"SecretId":"s1"}' "$FAKE_AWS/"
	assert_equal "$(err)" '400 MissingAuthenticationTokenException'
	# A key removed through the control API stops working.
	create s1 "$T1" v1
	ctl keys/remove "{\"access_key_id\":\"$AKID\"}" >/dev/null
	get s1
	assert_equal "$(err)" '400 UnrecognizedClientException'
}

@test "sigv4: a body other than the one signed is refused; the same signer's honest request passes" {
	create s1 "$T1" v1
	raw '{"SecretId":"s1"}' '{"SecretId":"s1"}'
	assert_equal "$code $(jq -r .SecretString <<<"$body")" '200 v1'
	raw '{"SecretId":"s1"}' '{"SecretId":"s2"}'
	assert_equal "$(err)" '400 InvalidSignatureException'
	# The operation is covered too: a signed GetSecretValue replayed as PutSecretValue fails
	# (signed as PutSecretValue it passes; replayed as CreateSecret it fails).
	payload="{\"SecretId\":\"s1\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"v2\"}"
	SEND_OP=PutSecretValue raw "$payload" "$payload"
	assert_equal "$(err)" '400 InvalidSignatureException'
	SIG_OP=PutSecretValue raw "$payload" "$payload"
	assert_equal "$code" 200
	SIG_OP=PutSecretValue SEND_OP=CreateSecret raw "$payload" "$payload"
	assert_equal "$(err)" '400 InvalidSignatureException'
	# An x-amz-content-sha256 that is not the body's hash is refused even when signed.
	create s2 "$T1" v1 -H "x-amz-content-sha256: $(printf 'other' | sha256sum | cut -d' ' -f1)"
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" "x-amz-content-sha256"
	run ctl "secrets?name=s1"
	assert_equal "$(jq -c '[.current, .version_order]' <<<"$output")" "[\"v2\",[\"$T1\",\"$T2\"]]"
	run ctl counters
	assert_equal "$(jq .signature_failures <<<"$output")" 4
}

@test "sigv4: host or x-amz-date not signed, or a signed header not sent, is refused" {
	create s1 "$T1" v1
	SIG_SIGNED='content-type;x-amz-date;x-amz-target' raw '{"SecretId":"s1"}' '{"SecretId":"s1"}'
	assert_equal "$(err)" '400 IncompleteSignatureException'
	assert_equal "$(jq -r .message <<<"$body")" "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
	SIG_SIGNED='content-type;host;x-amz-target' raw '{"SecretId":"s1"}' '{"SecretId":"s1"}'
	assert_equal "$(err)" '400 IncompleteSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" "X-Amz-Date"
	# Signing only host and x-amz-date is allowed (the rest is then unprotected) ...
	SIG_SIGNED='host;x-amz-date' raw '{"SecretId":"s1"}' '{"SecretId":"s1"}'
	assert_equal "$code" 200
	# ... but a header listed as signed must be in the request (libcurl's empty "Expect:" trap).
	SIG_SIGNED='content-type;expect;host;x-amz-date;x-amz-target' raw '{"SecretId":"s1"}' '{"SecretId":"s1"}'
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" 'not in the request: expect'
	run ctl counters
	assert_equal "$(jq -c '[.auth_failures.incomplete, .auth_failures.signature]' <<<"$output")" '[2,1]'
}

@test "sigv4: a credential scope for another region or service is refused" {
	create s1 "$T1" v1
	get s1 --aws-sigv4 "aws:amz:eu-west-1:secretsmanager"
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_equal "$(jq -r .message <<<"$body")" "Credential should be scoped to a valid region, not 'eu-west-1'. "
	get s1 --aws-sigv4 "aws:amz:us-east-1:ssm"
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" "scoped to correct service: 'secretsmanager'"
	# The fake's region can be changed: then us-east-1 is the wrong one.
	ctl options '{"region":"eu-west-1"}' >/dev/null
	get s1 --aws-sigv4 "aws:amz:eu-west-1:secretsmanager"
	assert_equal "$code" 200
	get s1
	assert_equal "$(err)" '400 InvalidSignatureException'
}

@test "sigv4: more than 15 minutes of clock skew either way is refused" {
	create s1 "$T1" v1
	# The fake's clock 16 minutes ahead: curl's fresh signature is too old.
	ctl clock '{"offset":960}' >/dev/null
	get s1
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" '^Signature expired: [0-9]{8}T[0-9]{6}Z is now earlier than [0-9]{8}T[0-9]{6}Z \([0-9]{8}T[0-9]{6}Z - 15 min\.\)$'
	# 16 minutes behind: the signature is from the future.
	ctl clock '{"offset":-960}' >/dev/null
	get s1
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" '^Signature not yet current: '
	# 14 minutes either way is fine.
	for off in 840 -840; do
		ctl clock "{\"offset\":$off}" >/dev/null
		get s1
		assert_equal "$code/$off" "200/$off"
	done
	# And a request signed 16 minutes ago by the signer, with the fake's clock right.
	ctl clock '{"offset":0}' >/dev/null
	SIG_DATE=$(date -u -d '16 minutes ago' +%Y%m%dT%H%M%SZ) raw '{"SecretId":"s1"}' '{"SecretId":"s1"}'
	assert_equal "$(err)" '400 InvalidSignatureException'
	assert_regex "$(jq -r .message <<<"$body")" '^Signature expired'
	run ctl counters
	assert_equal "$(jq .auth_failures.skew <<<"$output")" 3
}

@test "sigv4: session tokens: an ASIA key needs its X-Amz-Security-Token, signed; expired tokens are refused" {
	create s1 "$T1" v1
	ctl keys '{"access_key_id":"ASIAFAKEPARLAE000002","secret_access_key":"tmp-secret-1","session_token":"FwoGZXIvYXdzEBYaDFAKE+token/=="}' >/dev/null
	get s1 --user ASIAFAKEPARLAE000002:tmp-secret-1 -H 'X-Amz-Security-Token: FwoGZXIvYXdzEBYaDFAKE+token/=='
	assert_equal "$code $(jq -r .SecretString <<<"$body")" '200 v1'
	get s1 --user ASIAFAKEPARLAE000002:tmp-secret-1
	assert_equal "$(err)" '400 UnrecognizedClientException'
	get s1 --user ASIAFAKEPARLAE000002:tmp-secret-1 -H 'X-Amz-Security-Token: FwoGZXIvYXdzEBYaDOTHER'
	assert_equal "$(err)" '400 UnrecognizedClientException'
	# A long-term key with a token is a mismatch too.
	get s1 -H 'X-Amz-Security-Token: FwoGZXIvYXdzEBYaDFAKE+token/=='
	assert_equal "$(err)" '400 UnrecognizedClientException'
	# The token sent but not signed.
	SIG_AKID=ASIAFAKEPARLAE000002 SIG_KEY=tmp-secret-1 raw '{"SecretId":"s1"}' '{"SecretId":"s1"}' \
		-H 'X-Amz-Security-Token: FwoGZXIvYXdzEBYaDFAKE+token/=='
	assert_equal "$(err)" '400 IncompleteSignatureException'
	SIG_AKID=ASIAFAKEPARLAE000002 SIG_KEY=tmp-secret-1 SIG_TOKEN='FwoGZXIvYXdzEBYaDFAKE+token/==' \
		SIG_SIGNED='content-type;host;x-amz-date;x-amz-security-token;x-amz-target' \
		raw '{"SecretId":"s1"}' '{"SecretId":"s1"}' -H 'X-Amz-Security-Token: FwoGZXIvYXdzEBYaDFAKE+token/=='
	assert_equal "$code" 200
	# Expired.
	ctl keys '{"access_key_id":"ASIAFAKEPARLAE000002","secret_access_key":"tmp-secret-1","session_token":"FwoGZXIvYXdzEBYaDFAKE+token/==","expired":true}' >/dev/null
	get s1 --user ASIAFAKEPARLAE000002:tmp-secret-1 -H 'X-Amz-Security-Token: FwoGZXIvYXdzEBYaDFAKE+token/=='
	assert_equal "$body" '{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}'
	# An ASIA key without a token cannot be configured.
	run curl -sS -w ' %{http_code}' "$FAKE_AWS/__fake/keys" -d '{"access_key_id":"ASIAX","secret_access_key":"s"}'
	assert_output --partial '400'
}

# ---- protocol, faults, control -----------------------------------------------------------------

@test "protocol: an unknown X-Amz-Target, another content type or bad JSON are refused after signing" {
	sm GetSecrets '{}'
	assert_equal "$(err)" '400 UnknownOperationException'
	SM_TYPE=application/json sm GetSecretValue '{"SecretId":"s1"}'
	assert_equal "$(err)" '400 SerializationException'
	sm GetSecretValue '{"SecretId":'
	assert_equal "$(err)" '400 SerializationException'
	sm GetSecretValue '["s1"]'
	assert_equal "$(err)" '400 SerializationException'
}

@test "faults: throttling twice then success; 500 and 503; a delay; an answer lost after a put" {
	create s1 "$T1" v1
	run ctl faults '{"operation":"GetSecretValue","type":"ThrottlingException","count":2}'
	assert_success
	get s1
	assert_equal "$body" '{"__type":"ThrottlingException","message":"Rate exceeded"}'
	assert_equal "$code" 400
	get s1
	assert_equal "$(err)" '400 ThrottlingException'
	get s1
	assert_equal "$code" 200

	ctl faults '[{"status":500},{"status":503}]' >/dev/null
	get s1
	assert_equal "$body" '{"__type":"InternalServiceError","Message":"An error occurred on the server side."}'
	assert_equal "$code" 500
	get s1
	assert_equal "$(err)" '503 ServiceUnavailable'

	ctl faults '{"delay_ms":300}' >/dev/null
	start=$(date +%s%N)
	get s1
	assert_equal "$code" 200
	[ $(( ($(date +%s%N) - start) / 1000000 )) -ge 300 ]

	# The put happens, the connection drops; the retry with the same token is idempotent.
	ctl faults '{"operation":"PutSecretValue","when":"after","close":true}' >/dev/null
	run curl -sS --aws-sigv4 "aws:amz:us-east-1:secretsmanager" --user "$AKID:$SKEY" \
		-H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: secretsmanager.PutSecretValue' \
		--data-binary "{\"SecretId\":\"s1\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"v2\"}" "$FAKE_AWS/"
	assert_failure 52
	put s1 "$T2" v2
	assert_equal "$code $(jq -c .VersionStages <<<"$body")" '200 ["AWSCURRENT"]'
	assert_equal "$(stages s1)" "{\"$T1\":[\"AWSPREVIOUS\"],\"$T2\":[\"AWSCURRENT\"]}"

	# A fault for one secret only.
	create s2 "$T1" v1
	ctl faults '{"secret_id":"s2","status":500}' >/dev/null
	get s1
	assert_equal "$code" 200
	get s2
	assert_equal "$code" 500
	run ctl counters
	assert_equal "$(jq .faults <<<"$output")" 7
}

@test "control: seeded secrets, the request log, keep-alive, reset" {
	run ctl secrets "[{\"name\":\"seeded\",\"value\":\"s-1\",\"version_id\":\"$T1\"},{\"name\":\"seeded\",\"value\":\"s-2\",\"version_id\":\"$T2\",\"stages\":[\"AWSPENDING\"]}]"
	assert_success
	get_stage seeded AWSPENDING
	assert_equal "$code $(jq -r .SecretString <<<"$body")" '200 s-2'
	run ctl 'requests?n=1'
	assert_equal "$(jq -c '.[0] | [.operation, .secret_id, .access_key_id, .status, .type]' <<<"$output")" \
		"[\"GetSecretValue\",\"seeded\",\"$AKID\",200,null]"

	# Two requests, one connection.
	run curl -sS -o /dev/null -o /dev/null -w '%{num_connects}\n' --aws-sigv4 "aws:amz:us-east-1:secretsmanager" --user "$AKID:$SKEY" \
		-H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: secretsmanager.GetSecretValue' \
		--data-binary '{"SecretId":"seeded"}' "$FAKE_AWS/" "$FAKE_AWS/"
	assert_output $'1\n0'

	run ctl clock
	assert_equal "$(jq -c '[.offset, .max_skew]' <<<"$output")" '[0,900]'
	ctl clock '{"offset":5000}' >/dev/null
	ctl reset '{}' >/dev/null
	run ctl secrets
	assert_output '{}'
	run ctl clock
	assert_equal "$(jq .offset <<<"$output")" 0
	run ctl counters
	assert_equal "$(jq -c '[.requests, .faults, .signature_failures]' <<<"$output")" '[0,0,0]'
}
