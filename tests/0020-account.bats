#!/usr/bin/env bats
# parlae account add | account list
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() { suite_setup; suite_migrate; }
setup() { setup_home; }

@test "account add creates the account and says so" {
	run --separate-stderr parlae account add happy-dental --name "Happy Dental"
	assert_success
	assert_equal "$output" "created account happy-dental"
	assert_equal "$stderr" ""
	assert_equal "$(sql "SELECT id || '|' || name FROM accounts")" "happy-dental|Happy Dental"
}

@test "account add of an existing id exits 10 with a clear message and changes nothing" {
	run --separate-stderr parlae account add happy-dental --name Other
	assert_equal "$status" 10
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: account 'happy-dental' already exists (see 'parlae account list')"
	assert_equal "$(sql "SELECT name FROM accounts WHERE id = 'happy-dental'")" "Happy Dental"
}

@test "a duplicate with --json gives the conflict error object" {
	run --separate-stderr parlae account add happy-dental --json
	assert_equal "$status" 10
	assert_equal "$(jq -c '.error | [.code, .message]' <<<"$stderr")" '["conflict","account '"'happy-dental'"' already exists"]'
}

@test "account add writes a success event and the duplicate a failure event" {
	run sql "SELECT outcome || '|' || coalesce(error_code, '-') || '|' || account_id || '|' || resource_type || '|' || resource_id FROM audit_events WHERE action = 'account.add' ORDER BY seq"
	assert_equal "$output" $'success|-|happy-dental|account|happy-dental\nfailure|conflict|happy-dental|account|happy-dental\nfailure|conflict|happy-dental|account|happy-dental'
}

@test "the audit event carries the actor from PARLAE_ACTOR and the host" {
	PARLAE_ACTOR=ops@example run parlae account add actor-check
	assert_success
	assert_equal "$(sql "SELECT actor || '|' || host FROM audit_events WHERE account_id = 'actor-check'")" "ops@example|$(hostname)"
}

@test "account add --dry-run changes nothing and writes no event" {
	before=$(sql "SELECT count(*) FROM audit_events")
	run --separate-stderr parlae account add dry-one --dry-run
	assert_success
	assert_equal "$output" "would create account dry-one"
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id = 'dry-one'")" "0"
	assert_equal "$(sql "SELECT count(*) FROM audit_events")" "$before"
}

@test "account add --dry-run of an existing id reports the conflict" {
	run --separate-stderr parlae --dry-run account add happy-dental
	assert_equal "$status" 10
}

@test "invalid account ids are refused with exit 2" {
	for id in "../x" "Upper" "-lead" "" "a b" "$(printf 'a%.0s' {1..64})"; do
		run --separate-stderr parlae account add -- "$id"
		assert_equal "$status" 2
		assert_regex "$stderr" "^parlae: invalid account id"
	done
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE id NOT IN ('happy-dental', 'actor-check')")" "0"
}

@test "a 63-character id is accepted" {
	id=$(printf 'a%.0s' {1..63})
	run --separate-stderr parlae account add "$id"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(sql "SELECT id FROM accounts WHERE id = '$id'")" "$id"
	run --separate-stderr parlae account add "a$id"
	assert_failure 2
	assert_equal "$(sql "SELECT count(*) FROM accounts WHERE length(id) > 63")" "0"
}

@test "SQL in a name is stored literally" {
	name="x'); DROP TABLE accounts; --"
	run --separate-stderr parlae account add sqli --name "$name"
	assert_success
	assert_equal "$(sql "SELECT name FROM accounts WHERE id = 'sqli'")" "$name"
}

@test "account add without ACCOUNT is a usage error" {
	run --separate-stderr parlae account add
	assert_equal "$status" 2
	assert_equal "$stderr" "parlae: missing ACCOUNT (usage: parlae account add ACCOUNT [--name NAME] [--email EMAIL])"
}

@test "account list --json lists accounts with their connection status" {
	run --separate-stderr parlae account list --json
	assert_success
	assert_equal "$(jq -c '[.[] | select(.id == "happy-dental") | [.id, .name, .status]]' <<<"$output")" '[["happy-dental","Happy Dental","pending"]]'
	assert_regex "$(jq -r '.[0].createdAt' <<<"$output")" '^[0-9-]{10}T[0-9:]{8}Z$'
}

@test "account list without a TTY prints tab-separated rows, no header" {
	run --separate-stderr parlae account list
	assert_success
	assert_line --regexp $'^happy-dental\tHappy Dental\t-\tpending\t[0-9T:Z-]+$'
	refute_line --partial "ACCOUNT"
}

@test "account list against a database that is down exits 7" {
	PARLAE_DATABASE_URL=$(closed_db_url) run --separate-stderr parlae account list
	assert_equal "$status" 7
	assert_regex "$stderr" "^parlae: cannot connect to the database"
}

@test "account add against an unmigrated database says to migrate" {
	url=$(pg_new_database t_account_unmigrated)
	PARLAE_DATABASE_URL=$url run --separate-stderr parlae account add x
	assert_equal "$status" 7
	assert_regex "$stderr" "run 'parlae db migrate'"
}
