# The secret store's behaviour that every backend shares: one suite, run against the file
# store by 0100-secrets-store.bats and against AWS Secrets Manager (the fake) by
# 0110-secrets-store-aws.bats, so that the two behave alike. Each suite_* function is the body
# of one test; the .bats file gives it its title and may add what only its backend shows.
# Version ids are whatever the backend hands out ("1", "2" for files; VersionIds for AWS), so
# the tests use the ids that put printed. Needs store_tool (helpers/store.bash), the backend
# configured by the caller's setup, and an empty store at the start of each test.
# shellcheck shell=bash

# sput NAME VALUE: a put that is not the thing under test; prints the new version.
sput() { printf '%s' "$2" | store_tool put "$1"; }

suite_round_trip() {
	printf 'sk-live one\ntwo' >"$BATS_TEST_TMPDIR/value"
	run --separate-stderr store_tool put parlae/pms/sikka/happy-dental <"$BATS_TEST_TMPDIR/value"
	assert_success
	assert_equal "$stderr" ""
	V1=$output
	[ -n "$V1" ]
	store_tool get parlae/pms/sikka/happy-dental >"$BATS_TEST_TMPDIR/back"
	cmp "$BATS_TEST_TMPDIR/value" "$BATS_TEST_TMPDIR/back"
	store_tool get parlae/pms/sikka/happy-dental "$V1" >"$BATS_TEST_TMPDIR/back"
	cmp "$BATS_TEST_TMPDIR/value" "$BATS_TEST_TMPDIR/back"
}

# Sets V1 V2 V3, the versions of a's three puts.
suite_previous_version() {
	V1=$(sput a one)
	run --separate-stderr store_tool put a <<<"two"
	assert_success
	assert_equal "$stderr" ""
	V2=$output
	[ -n "$V2" ] && [ "$V2" != "$V1" ]
	assert_equal "$(store_tool get a)" "two"
	assert_equal "$(store_tool get a "$V1")" "one"
	assert_equal "$(store_tool get a "$V2")" "two"
	V3=$(sput a three)
	[ "$V3" != "$V2" ] && [ "$V3" != "$V1" ]
	assert_equal "$(store_tool get a)" "three"
	assert_equal "$(store_tool get a "$V2")" "two"
	run --separate-stderr store_tool get a "$V1"
	assert_equal "$status" 5
	assert_equal "$output" ""
	assert_equal "$stderr" "store-tool: secret a has no version '${V1:0:40}' (see 'parlae secrets list')"
}

suite_not_found() {
	sput a one >/dev/null
	for args in "get nothing" "delete nothing"; do
		run --separate-stderr store_tool $args
		assert_equal "$status" 5
		assert_equal "$output" ""
		assert_equal "$stderr" "store-tool: no secret nothing in the store (see 'parlae secrets list')"
	done
	for v in 7 0123456789abcdef0123456789abcdef; do
		run --separate-stderr store_tool get a "$v"
		assert_equal "$status" 5
		assert_equal "$stderr" "store-tool: secret a has no version '$v' (see 'parlae secrets list')"
	done
}

suite_delete() {
	sput a one >/dev/null
	sput a two >/dev/null
	sput b other >/dev/null
	run --separate-stderr store_tool delete a
	assert_success
	assert_equal "$output" ""
	assert_equal "$stderr" ""
	for args in "delete a" "get a"; do
		run --separate-stderr store_tool $args
		assert_equal "$status" 5
		assert_equal "$stderr" "store-tool: no secret a in the store (see 'parlae secrets list')"
	done
	assert_equal "$(parlae secrets list | cut -f1)" "b"
	assert_equal "$(store_tool get b)" "other"
	# Written again, it is a new secret with no previous version.
	run --separate-stderr store_tool put a <<<"again"
	assert_success
	assert_equal "$(parlae secrets list --json | jq -c '[.[] | select(.name == "a") | .previous]')" "[null]"
}

# Compare-and-swap: put-if NAME EXPECTED writes only over version EXPECTED ("" for none).
suite_put_if() {
	run --separate-stderr store_tool put-if a "" <<<"one"
	assert_success
	assert_equal "$stderr" ""
	v1=$output
	run --separate-stderr store_tool put-if a "" <<<"other"
	assert_equal "$status" 10
	assert_equal "$output" ""
	assert_equal "$stderr" "store-tool: secret a changed while it was being replaced (version $v1, expected none)"
	run --separate-stderr store_tool put-if a "$v1" <<<"two"
	assert_success
	v2=$output
	[ "$v2" != "$v1" ]
	# A stale expected version is refused and changes nothing.
	run --separate-stderr store_tool put-if a "$v1" <<<"three"
	assert_equal "$status" 10
	assert_equal "$output" ""
	assert_equal "$stderr" "store-tool: secret a changed while it was being replaced (version $v2, expected $v1)"
	assert_equal "$(store_tool get a)" "two"
	assert_equal "$(store_tool get a "$v1")" "one"
	assert_equal "$(parlae secrets list --json | jq -c '[.[] | [.name, .version == $v2, .previous == $v1]]' --arg v1 "$v1" --arg v2 "$v2")" '[["a",true,true]]'
	# Expecting a version of a secret that does not exist is a conflict too.
	run --separate-stderr store_tool put-if b "$v1" <<<"x"
	assert_equal "$status" 10
	assert_equal "$stderr" "store-tool: secret b changed while it was being replaced (version none, expected $v1)"
	run --separate-stderr store_tool get b
	assert_equal "$status" 5
}

suite_put_if_race() {
	local v0 n wins=0
	v0=$(sput race start)
	for n in 1 2 3 4 5 6; do
		(set +e
		 printf 'writer %s' "$n" | store_tool put-if race "$v0" >"$BATS_TEST_TMPDIR/out$n" 2>"$BATS_TEST_TMPDIR/err$n"
		 echo $? >"$BATS_TEST_TMPDIR/rc$n") &
	done
	wait
	for n in 1 2 3 4 5 6; do
		case $(cat "$BATS_TEST_TMPDIR/rc$n") in
		0) wins=$((wins + 1)); winner=$n ;;
		10) assert_regex "$(cat "$BATS_TEST_TMPDIR/err$n")" "^store-tool: secret race changed while it was being replaced" ;;
		*) echo "writer $n: $(cat "$BATS_TEST_TMPDIR/err$n")" >&2; return 1 ;;
		esac
	done
	assert_equal "$wins" 1
	assert_equal "$(store_tool get race)" "writer $winner"
	assert_equal "$(parlae secrets list --json | jq -r '.[0].version')" "$(cat "$BATS_TEST_TMPDIR/out$winner")"
	assert_equal "$(store_tool get race "$v0")" "start"
}

# The caller checks that nothing was created.
suite_bad_names() {
	local name verb
	for name in ../x a/../../x a//b A Secret /abs a/ . .. a/./b .hidden "a b" 'a\b' "" $'a\nb'; do
		for verb in put get delete; do
			run --separate-stderr store_tool $verb "$name" <<<"value"
			assert_equal "$status" 2
			assert_equal "$output" ""
			assert_regex "$stderr" "^store-tool: invalid secret name "
		done
		run --separate-stderr store_tool put-if "$name" "" <<<"value"
		assert_equal "$status" 2
	done
}

# Leaves the store empty.
suite_long_names() {
	local long
	long=$(printf 'a%.0s' {1..250})/$(printf 'b%.0s' {1..4})
	sput "$long" value >/dev/null
	assert_equal "$(store_tool get "$long")" "value"
	assert_equal "$(parlae secrets list | cut -f1)" "$long"
	run --separate-stderr store_tool put "${long}b" <<<"value"
	assert_equal "$status" 2
	store_tool delete "$long"
	assert_equal "$(parlae secrets list --json)" "[]"
}

suite_value_limit() {
	head -c 65536 /dev/zero | tr '\0' 'k' >"$BATS_TEST_TMPDIR/max"
	run --separate-stderr store_tool put big <"$BATS_TEST_TMPDIR/max"
	assert_success
	store_tool get big >"$BATS_TEST_TMPDIR/back"
	cmp "$BATS_TEST_TMPDIR/max" "$BATS_TEST_TMPDIR/back"
	printf k >>"$BATS_TEST_TMPDIR/max"
	run --separate-stderr store_tool put big <"$BATS_TEST_TMPDIR/max"
	assert_equal "$status" 65
	assert_equal "$stderr" "store-tool: secret big is 65537 bytes, more than 65536"
	assert_equal "$(store_tool get big | wc -c)" "65536"
}

suite_list_json() {
	local h1 h2 b1
	h1=$(sput parlae/pms/sikka/happy one-secret-value)
	h2=$(sput parlae/pms/sikka/happy two-secret-value)
	b1=$(sput parlae/pms/sikka/bright three-secret-value)
	run --separate-stderr parlae secrets list --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.[] | [.name, .version, .previous]]' <<<"$output")" \
		"$(jq -cn --arg h1 "$h1" --arg h2 "$h2" --arg b1 "$b1" \
			'[["parlae/pms/sikka/bright",$b1,null],["parlae/pms/sikka/happy",$h2,$h1]]')"
	assert_equal "$(jq -c '[.[0] | keys[]]' <<<"$output")" '["name","previous","updatedAt","version"]'
	assert_regex "$(jq -r '.[1].updatedAt' <<<"$output")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'
	refute_secrets_in "$output" one-secret-value two-secret-value three-secret-value
}

suite_list_text() {
	local a1 a2 c1
	c1=$(sput b/c one)
	a1=$(sput a one)
	a2=$(sput a two)
	run --separate-stderr parlae secrets list
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 2
	assert_regex "${lines[0]}" "^a"$'\t'"$a2"$'\t'"$a1"$'\t''[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$'
	assert_regex "${lines[1]}" "^b/c"$'\t'"$c1"$'\t''-'$'\t''[0-9T:Z-]+$'
}

suite_list_empty() {
	run --separate-stderr parlae secrets list --json
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$output" "[]"
	run --separate-stderr parlae secrets list
	assert_success
	assert_equal "$output" ""
}
