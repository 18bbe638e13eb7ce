#!/usr/bin/env bats
# --dry-run, on every mutating command of the contract, against the fakes: the command answers
# (exit 0, or the code it documents), and nothing changed anywhere — not a row of any table (a
# data dump as the owner, audit events and sequences included), not the secret store (a
# checksum of the file store's directory; the AWS store's write operations), and no request
# reached Sikka, Twilio or a target, nor a write the AWS store (the fakes' own counters).
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fakes
load helpers/vapi

FIX=$BATS_TEST_DIRNAME/fixtures/vapi

setup_file() {
	vapi_setup_file
	start_aws "$BATS_FILE_TMPDIR/fakes"
	local k=$BATS_FILE_TMPDIR/keys
	mkdir -p "$k"
	openssl genpkey -algorithm ed25519 -out "$k/signing.pem" 2>/dev/null
	chmod 600 "$k/signing.pem"
	# A second practice on the same office whose keys are in the AWS store.
	aws_env "$BATS_FILE_TMPDIR/fakes"
	parlae account add cloud >/dev/null
	parlae pms setup cloud >/dev/null
	code=$(fake code '{"office_id":"D36225"}' | jq -r .code)
	state=$(parlae sikka oauth-url cloud --json | jq -r .state)
	parlae sikka callback --code "$code" --state "$state" >/dev/null
	# A state issued and not yet used, for the callbacks below.
	unset PARLAE_SECRET_STORE AWS_ENDPOINT_URL_SECRETS_MANAGER AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	vapi_env
	parlae account add pending >/dev/null
	parlae pms setup pending >/dev/null
	parlae sikka oauth-url pending --json | jq -r .state >"$BATS_FILE_TMPDIR/state"
	fake code '{"office_id":"D36225"}' | jq -r .code >"$BATS_FILE_TMPDIR/code"
	PARLAE_AUDIT_SIGNING_KEY_FILE=$k/signing.pem parlae audit checkpoint \
		--output "$BATS_FILE_TMPDIR/checkpoints.jsonl" >/dev/null
}
teardown_file() {
	vapi_teardown_file
	stop_aws "$BATS_FILE_TMPDIR/fakes"
}
setup() {
	vapi_setup
	export PARLAE_AUDIT_SIGNING_KEY_FILE=$BATS_FILE_TMPDIR/keys/signing.pem
	export PARLAE_AUDIT_CHECKPOINTS=$BATS_FILE_TMPDIR/checkpoints.jsonl
	read -r STATE <"$BATS_FILE_TMPDIR/state"
	read -r CODE <"$BATS_FILE_TMPDIR/code"
	VAULT=$BATS_FILE_TMPDIR/vault
	read -r FAKE_AWS <"$BATS_FILE_TMPDIR/fakes/aws_secrets.port"
	FAKE_AWS=http://127.0.0.1:$FAKE_AWS
}

# Everything a dry run must leave as it was, as text: every table's rows, in the order they
# lie in the table (a row rewritten with the same values moves), and every sequence, read as
# the owner of parlae's tables by one psql (pg_dump --data-only did it with ~100 ms of the
# server's CPU in catalog queries, twice per dry run); the file store's files with their
# modes and contents, the AWS store's secrets, the checkpoint file, and how many requests
# Sikka, Twilio and the target have received, and how many writes the AWS store (a dry run
# may read a secret, to say whether its key is due).
snapshot_sql="SELECT CASE c.relkind
		WHEN 'S' THEN format('SELECT %L, last_value, is_called FROM %I.%I', c.oid::regclass, n.nspname, c.relname)
		ELSE format('SELECT %L, t::text FROM %I.%I t ORDER BY ctid', c.oid::regclass, n.nspname, c.relname) END
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'S') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
	ORDER BY n.nspname, c.relname"
snapshot() {
	pl_url_as parlae
	psql -XAtq -v ON_ERROR_STOP=1 "$REPLY" <<<"$snapshot_sql"$'\n\\gexec' || return 1
	(cd "$VAULT" && find . -printf '%p %m %s\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) || return 1
	sha256sum <"$PARLAE_AUDIT_CHECKPOINTS" || return 1
	# The fakes' state in one curl and one jq (it was four of each, twice per dry run); keys sorted.
	curl -sS --fail "$FAKE_AWS/__fake/secrets" "$FAKE_SIKKA/__fake/counters" "$FAKE_TWILIO/__fake/counters" \
		"$FAKE_TARGET/__fake/counters" "$FAKE_AWS/__fake/counters" >"$BATS_TEST_TMPDIR/fakes.json" || return 1
	jq -n -r 'def sorted: if type == "object" then to_entries | sort_by(.key) | map(.value |= sorted) | from_entries
			elif type == "array" then map(sorted) else . end;
		[inputs | sorted] as [$secrets, $sikka, $twilio, $target, $aws]
		| ($secrets | tojson),
		  "sikka \([$sikka.requests, $sikka.grants, $sikka.writebacks] | tojson)",
		  "twilio \($twilio.requests | tojson)",
		  "target \($target.requests | tojson)",
		  "aws \($aws.operations | with_entries(select(.key | test("^(Create|Put|Update|Delete|Restore|Tag|Untag|Rotate)"))) | tojson)"' \
		"$BATS_TEST_TMPDIR/fakes.json" || return 1
}

# dry_run STATUS COMMAND...: runs the command (which carries --dry-run), asserts its status,
# and that the snapshot did not move. stdout and stderr are left in $output and $stderr.
dry_run() {
	local want=$1 before after
	shift
	before=$(snapshot) || fail "snapshot failed"
	run --separate-stderr "$@"
	[ "$status" -eq "$want" ] ||
		fail "'$*' exited $status, not $want; stdout: $output; stderr: $stderr"
	after=$(snapshot) || fail "snapshot failed"
	if [ "$before" != "$after" ]; then
		diff <(echo "$before") <(echo "$after") >&2 || true
		fail "'$*' changed something (the diff above: < before, > after)"
	fi
}

@test "the snapshot sees a change: a real account add moves it" {
	before=$(snapshot)
	parlae account add not-dry >/dev/null
	[ "$before" != "$(snapshot)" ]
	before=$(snapshot)
	parlae vapi tool invoke checkAvailability --account happy --args '{"date":"2026-12-01"}' >/dev/null
	diff <(echo "$before") <(snapshot) | grep -q '^> sikka'
}

@test "db migrate --dry-run on an empty database lists the migrations and creates nothing" {
	url=$(pg_new_database t_0760_fresh)
	tables() { psql -XAtq "$url" -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"; }
	PARLAE_DATABASE_URL=$url dry_run 0 parlae db migrate --dry-run
	assert_regex "$output" "would apply 0001-core"
	assert_equal "$stderr" ""
	assert_equal "$(tables)" 0
	PARLAE_DATABASE_URL=$(db_url_as parlae) dry_run 0 parlae --dry-run db migrate
}

@test "account add --dry-run" {
	dry_run 0 parlae account add newcomer --dry-run
	assert_output "would create account newcomer"
	assert_equal "$stderr" ""
	dry_run 10 parlae account add happy --dry-run
}

@test "pms setup --dry-run asks nothing of Sikka" {
	dry_run 0 parlae pms setup pending --timezone Europe/Paris --hours 'mon-fri 09:00-17:00' --dry-run
	assert_regex "$output" "^would enable Sikka for pending"
	assert_equal "$stderr" "would record time zone Europe/Paris; hours mon-fri 09:00-17:00
next: parlae sikka oauth-url pending"
	dry_run 0 parlae --json --dry-run pms setup happy
	assert_equal "$(jq -c '[.success, .provider, .dryRun]' <<<"$output")" '[true,"SIKKA",true]'
}

@test "sikka oauth-url --dry-run records no state" {
	dry_run 0 parlae sikka oauth-url pending --dry-run --json
	assert_equal "$(jq -r '.url | startswith(env.SIKKA_AUTHORIZE_URL)' <<<"$output")" true
	assert_equal "$stderr" ""
}

@test "sikka callback --dry-run checks the state and spends neither the code nor the state" {
	dry_run 0 parlae sikka callback --code "$CODE" --state "$STATE" --dry-run
	assert_output "state is valid for pending; would exchange the code"
	assert_equal "$stderr" ""
	dry_run 0 parlae sikka callback --url "https://backend.example/cb?code=$CODE&state=$STATE" --dry-run
	# A state that does not verify is refused as it would be, and still nothing is recorded.
	dry_run 4 parlae sikka callback --code "$CODE" --state "x${STATE:1}" --dry-run
	dry_run 0 parlae sikka callback --error access_denied --state "$STATE" --dry-run
	assert_output "state is valid for pending; would record the practice's refusal"
}

@test "vapi phone add and remove --dry-run" {
	dry_run 0 parlae vapi phone add pending --vapi-id pn-happy-dental --number +15550001000 --move --dry-run
	assert_output "would move pn-happy-dental from happy to pending"
	dry_run 10 parlae vapi phone add pending --vapi-id pn-happy-dental --number +15550001000 --dry-run
	dry_run 0 parlae vapi phone add happy --vapi-id pn-new --number +15550007000 --dry-run
	dry_run 0 parlae vapi phone remove pn-happy-dental --dry-run --json
	assert_equal "$(jq -c '[.vapiId, .account, .removed, .dryRun]' <<<"$output")" '["pn-happy-dental","happy",false,true]'
	dry_run 5 parlae vapi phone remove pn-nobody --dry-run
}

@test "vapi tool invoke --dry-run calls neither Sikka nor Twilio, and writes no call log" {
	dry_run 0 parlae vapi tool invoke getPatientInfo --account happy --args '{"query":"Ana Diaz"}' --call-id dry-1 --dry-run
	assert_equal "$(jq -r '.results[0].result | fromjson | [.success, .dryRun] | @csv' <<<"$output")" "true,true"
	dry_run 0 parlae vapi tool invoke transferToHuman --account happy --args '{"reason":"billing"}' --dry-run
	dry_run 0 parlae vapi tool invoke --payload "$FIX/tool-calls-two-calls.json" --dry-run
	dry_run 0 parlae vapi tool invoke --payload "$FIX/tool-calls-transfer-to-human.json" --dry-run
	assert_equal "$stderr" ""
}

@test "vapi tool invoke --target --dry-run sends nothing" {
	dry_run 0 parlae vapi tool invoke --payload "$FIX/tool-calls-two-calls.json" --target "$FAKE_TARGET/" --dry-run
	assert_regex "$output" "^would send [0-9]+ bytes to $FAKE_TARGET/"
}

@test "vapi replay --dry-run --target sends nothing: it lists what would be sent" {
	mkdir "$BATS_TEST_TMPDIR/corpus"
	for i in 1 2 3; do
		jq -c ".message.call.id = \"dry-$i\"" "$FIX/tool-calls-check-availability.json" >"$BATS_TEST_TMPDIR/corpus/$i.json"
	done
	dry_run 0 parlae --dry-run vapi replay "$BATS_TEST_TMPDIR/corpus" --target "$FAKE_TARGET/"
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 4
	assert_regex "${lines[0]}" "^$BATS_TEST_TMPDIR/corpus/1.json \([0-9]+ bytes\): would be sent to the target$"
	assert_equal "${lines[3]}" "would send 3 messages to $FAKE_TARGET/; nothing was sent or run"
	dry_run 0 parlae vapi replay "$BATS_TEST_TMPDIR/corpus" --target "$FAKE_TARGET/" --auth hmac --dry-run --json
	assert_equal "$(jq -c '[.dryRun, .total, .target, (.messages | length), .messages[2].what]' <<<"$output")" \
		"[true,3,\"$FAKE_TARGET/\",3,\"would be sent to the target\"]"
}

@test "vapi replay --dry-run runs nothing locally: it lists what each message would do" {
	{
		jq -c '.message.call.id = "dry-l"' "$FIX/tool-calls-two-calls.json"
		jq -c '.message.call.id = "dry-l"' "$FIX/end-of-call-report.json"
		echo '{"message":{"type":"status-update"}}'
		echo '{"message":'
	} >"$BATS_TEST_TMPDIR/calls.jsonl"
	dry_run 0 parlae vapi replay "$BATS_TEST_TMPDIR/calls.jsonl" --dry-run
	assert_equal "$stderr" ""
	assert_regex "${lines[0]}" "calls.jsonl:1 \([0-9]+ bytes\): tool-calls: 2 tool calls would run$"
	assert_regex "${lines[1]}" "calls.jsonl:2 \([0-9]+ bytes\): end-of-call-report: would close the call's log$"
	assert_regex "${lines[2]}" "calls.jsonl:3 \([0-9]+ bytes\): status-update: would be skipped$"
	assert_regex "${lines[3]}" "calls.jsonl:4 \([0-9]+ bytes\): would fail: the payload is not valid JSON"
	assert_equal "${lines[4]}" "would replay 4 messages; nothing was sent or run"
}

@test "secrets rotate --dry-run refreshes no key, for one account, --all and the AWS store" {
	dry_run 0 parlae secrets rotate happy --force --dry-run
	# cloud's keys are in the other store: a failure, as it would be without --dry-run (exit 9).
	dry_run 9 parlae secrets rotate --all --force --dry-run --json
	assert_equal "$(jq -c '[.dryRun, (.accounts[] | [.account, .outcome])]' <<<"$output")" \
		'[true,["cloud","failed"],["happy","rotated"]]'
	aws_env "$BATS_FILE_TMPDIR/fakes"
	dry_run 0 parlae secrets rotate cloud --force --dry-run
	assert_regex "$output" "would rotate 1"
}

@test "secrets rotate --master-key --dry-run re-encrypts nothing" {
	export PARLAE_MASTER_KEY_NEW=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	dry_run 0 parlae secrets rotate --master-key --dry-run
	assert_regex "$output" "^would re-encrypt [1-9][0-9]* secret"
}

@test "audit checkpoint --dry-run appends no line" {
	dry_run 0 parlae audit checkpoint --dry-run
	dry_run 0 parlae audit checkpoint --output "$PARLAE_AUDIT_CHECKPOINTS" --dry-run --json
}

@test "pms purchase, cancel, assign and disconnect --dry-run keep nothing and ask nothing of Sikka" {
	fake_get "registration?office_id=D36225&email=nobody@example.com&registration_id=PR-DRY" >"$BATS_TEST_TMPDIR/reg.json"
	dry_run 0 parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" --dry-run
	assert_equal "$output" "registration PR-DRY: would be kept pending: no account has its email address"
	assert_equal "$stderr" ""
	printf 'not json' >"$BATS_TEST_TMPDIR/bad"
	dry_run 65 parlae pms purchase --payload "$BATS_TEST_TMPDIR/bad" --dry-run
	dry_run 5 parlae pms cancel --payload "$BATS_TEST_TMPDIR/reg.json" --dry-run
	parlae pms purchase --payload "$BATS_TEST_TMPDIR/reg.json" >/dev/null 2>&1
	dry_run 0 parlae pms assign PR-DRY pending --dry-run
	assert_equal "$output" "registration PR-DRY (#$(sql "SELECT id FROM pms_registrations WHERE registration_id = 'PR-DRY'")): would be matched pending: dry run: Sikka is not asked"
	dry_run 0 parlae pms cancel --payload "$BATS_TEST_TMPDIR/reg.json" --dry-run --json
	assert_equal "$(jq -c '[.state, .dryRun]' <<<"$output")" '["cancelled",true]'
	dry_run 0 parlae pms disconnect happy --dry-run
	assert_equal "$output" "would disconnect happy: revoke its refresh key at Sikka, delete its secret, make it inactive"
	dry_run 0 parlae pms disconnect happy --dry-run --json
	assert_equal "$(jq -c '[.status, .dryRun]' <<<"$output")" '["disconnected",true]'
}
