#!/usr/bin/env bats
# vapi phone add | list | remove: a Vapi phone id belongs to one account; taking it from another
# needs --move (audited with both), re-adding keeps what is not given again, and remove.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	suite_setup
	suite_migrate
	parlae account add alpha >/dev/null
	parlae account add beta >/dev/null
}
setup() {
	setup_home
	export PARLAE_ACTOR=ops@phone
	sql "DELETE FROM vapi_phone_numbers"
	parlae vapi phone add alpha --vapi-id pn-alpha --number +15550001000 --staff-forward +15550002000 --transfer >/dev/null
}

# The registration of an id as "account|number|staff|transfer" ('-' for no staff number).
row() {
	sql "SELECT concat_ws('|', account_id, number, coalesce(staff_forward_number, '-'), transfer_enabled)
		FROM vapi_phone_numbers WHERE vapi_phone_id = '$1'"
}
# The newest audit event as "account|action|resource id|outcome|error code|metadata".
event() {
	sql "SELECT concat_ws('|', coalesce(account_id, '-'), action, resource_id, outcome, coalesce(error_code, '-'), metadata::text)
		FROM audit_events ORDER BY seq DESC LIMIT 1"
}
events() { sql "SELECT count(*) FROM audit_events"; }

@test "adding another account's Vapi id is a conflict: exit 10, naming that account and --move, nothing changed" {
	run --separate-stderr parlae vapi phone add beta --vapi-id pn-alpha --number +15550003000
	assert_equal "$status" 10
	assert_output ""
	assert_equal "$stderr" "parlae: the Vapi phone number id 'pn-alpha' is registered to account 'alpha': pass --move to move it to 'beta' (see 'parlae vapi phone list')"
	assert_equal "$(row pn-alpha)" "alpha|+15550001000|+15550002000|t"
	# The refusal is recorded, with both accounts.
	assert_equal "$(event)" 'beta|vapi.phone_add|pn-alpha|failure|conflict|{"to": "beta", "from": "alpha", "staffForward": false, "transferEnabled": false}'
}

@test "with --json the conflict is a JSON error with code conflict" {
	run --separate-stderr parlae --json vapi phone add beta --vapi-id pn-alpha --number +15550003000
	assert_equal "$status" 10
	assert_output ""
	assert_equal "$(jq -r '.error.code' <<<"$stderr")" "conflict"
	assert_regex "$(jq -r '.error.message' <<<"$stderr")" "registered to account 'alpha': pass --move"
}

@test "--move moves the id, without the other practice's staff line, audited from and to" {
	run --separate-stderr parlae vapi phone add beta --vapi-id pn-alpha --number +15550003000 --move --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c . <<<"$output")" '{"vapiId":"pn-alpha","account":"beta","number":"+15550003000","staffForward":null,"transferEnabled":false,"movedFrom":"alpha","created":false,"dryRun":false}'
	assert_equal "$(row pn-alpha)" "beta|+15550003000|-|f"
	assert_equal "$(event)" 'beta|vapi.phone_add|pn-alpha|success|-|{"to": "beta", "from": "alpha", "staffForward": false, "transferEnabled": false}'
	run --separate-stderr parlae vapi phone add alpha --vapi-id pn-alpha --number +15550001000 --staff-forward +15550002000 --transfer --move
	assert_success
	assert_output "moved pn-alpha from beta to alpha"
	assert_equal "$(row pn-alpha)" "alpha|+15550001000|+15550002000|t"
}

@test "re-adding to the same account keeps the staff line and the transfer setting not given again" {
	run --separate-stderr parlae vapi phone add alpha --vapi-id pn-alpha --number +15550001111
	assert_success
	assert_equal "$stderr" ""
	assert_output "updated pn-alpha → alpha"
	assert_equal "$(row pn-alpha)" "alpha|+15550001111|+15550002000|t"
	assert_equal "$(event)" 'alpha|vapi.phone_add|pn-alpha|success|-|{"staffForward": true, "transferEnabled": true}'
	# What is given replaces what was: a new staff line, transfers off.
	run --separate-stderr parlae vapi phone add alpha --vapi-id pn-alpha --number +15550001111 --staff-forward +15550004000 --no-transfer --json
	assert_success
	assert_equal "$(jq -c '[.staffForward, .transferEnabled, .movedFrom, .created]' <<<"$output")" '["+15550004000",false,null,false]'
	assert_equal "$(row pn-alpha)" "alpha|+15550001111|+15550004000|f"
	# --transfer alone uses the staff line on file.
	run --separate-stderr parlae vapi phone add alpha --vapi-id pn-alpha --number +15550001111 --transfer
	assert_success
	assert_equal "$(row pn-alpha)" "alpha|+15550001111|+15550004000|t"
}

@test "--transfer with no staff line given or on file is a usage error; so are --transfer and --no-transfer together" {
	before=$(events)
	run --separate-stderr parlae vapi phone add beta --vapi-id pn-beta --number +15550005000 --transfer
	assert_equal "$status" 2
	assert_regex "$stderr" "--transfer needs --staff-forward"
	assert_equal "$(row pn-beta)" ""
	run --separate-stderr parlae vapi phone add beta --vapi-id pn-beta --number +15550005000 --staff-forward +15550006000 --transfer --no-transfer
	assert_equal "$status" 2
	assert_regex "$stderr" "contradict"
	assert_equal "$(events)" "$before"
}

@test "a new id is registered and says so" {
	run --separate-stderr parlae vapi phone add beta --vapi-id pn-beta --number +15550005000
	assert_success
	assert_equal "$stderr" ""
	assert_output "registered pn-beta → beta"
	assert_equal "$(row pn-beta)" "beta|+15550005000|-|f"
}

@test "vapi phone remove removes the registration, audited under its account" {
	run --separate-stderr parlae vapi phone remove pn-alpha --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c . <<<"$output")" '{"vapiId":"pn-alpha","account":"alpha","number":"+15550001000","staffForward":"+15550002000","transferEnabled":true,"removed":true,"dryRun":false}'
	assert_equal "$(row pn-alpha)" ""
	assert_equal "$(event)" 'alpha|vapi.phone_remove|pn-alpha|success|-|{}'
	run --separate-stderr parlae vapi phone list --json
	assert_success
	assert_output "[]"
}

@test "vapi phone remove of an id nobody registered is exit 5, recorded as a failure" {
	run --separate-stderr parlae vapi phone remove pn-nobody
	assert_equal "$status" 5
	assert_output ""
	assert_equal "$stderr" "parlae: no Vapi phone number id 'pn-nobody' is registered (see 'parlae vapi phone list')"
	assert_equal "$(event)" '-|vapi.phone_remove|pn-nobody|failure|not_found|{}'
	assert_equal "$(row pn-alpha)" "alpha|+15550001000|+15550002000|t"
}

@test "vapi phone remove needs exactly one well-formed id: exit 2, nothing recorded" {
	before=$(events)
	run --separate-stderr parlae vapi phone remove
	assert_equal "$status" 2
	assert_regex "$stderr" "missing VAPI_ID"
	run --separate-stderr parlae vapi phone remove pn-alpha pn-beta
	assert_equal "$status" 2
	run --separate-stderr parlae vapi phone remove 'pn alpha'
	assert_equal "$status" 2
	assert_regex "$stderr" "VAPI_ID must be Vapi's phone number id"
	assert_equal "$(events)" "$before"
	assert_equal "$(row pn-alpha)" "alpha|+15550001000|+15550002000|t"
}

@test "--dry-run add, move and remove say what they would do and change nothing" {
	before=$(events)
	run --separate-stderr parlae --dry-run vapi phone add beta --vapi-id pn-alpha --number +15550003000 --move
	assert_success
	assert_output "would move pn-alpha from alpha to beta"
	run --separate-stderr parlae vapi phone add beta --vapi-id pn-alpha --number +15550003000 --dry-run
	assert_equal "$status" 10
	run --separate-stderr parlae vapi phone add alpha --vapi-id pn-alpha --number +15550001111 --dry-run --json
	assert_success
	assert_equal "$(jq -c '[.staffForward, .transferEnabled, .created, .dryRun]' <<<"$output")" '["+15550002000",true,false,true]'
	run --separate-stderr parlae vapi phone remove pn-alpha --dry-run
	assert_success
	assert_output "would remove pn-alpha (account alpha)"
	run --separate-stderr parlae vapi phone remove pn-nobody --dry-run
	assert_equal "$status" 5
	assert_equal "$(events)" "$before"
	assert_equal "$(row pn-alpha)" "alpha|+15550001000|+15550002000|t"
}

@test "help, completion and the shell know vapi phone remove" {
	run --separate-stderr parlae vapi phone remove -h
	assert_success
	assert_line --index 0 "usage: parlae vapi phone remove VAPI_ID"
	run --separate-stderr parlae vapi phone -h
	assert_success
	assert_line "  parlae vapi phone remove VAPI_ID"
	assert_line "      remove a Vapi phone number's registration"
	parlae vapi phone add beta --vapi-id pn-beta --number +15550005000 >/dev/null
	run --separate-stderr parlae __complete vapi phone remove ""
	assert_success
	assert_equal "$output" $'pn-alpha\npn-beta'
	run --separate-stderr parlae __complete vapi phone ""
	assert_equal "$output" $'add\nlist\nremove'
	run --separate-stderr parlae __complete vapi phone add alpha --m
	assert_equal "$output" "--move"
}
