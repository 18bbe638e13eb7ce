#!/usr/bin/env bats
# A directory given with a trailing slash (a shell's completion adds one) names the files in
# it with one slash, never "dir//file": vapi replay DIR/, PARLAE_SECRET_STORE=file:DIR/, the
# XDG directories.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() { suite_setup; suite_migrate; }
setup() {
	setup_home
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa SIKKA_APP_ID=id SIKKA_APP_KEY=key
}

@test "vapi replay DIR/ and DIR// name each file with one slash" {
	d=$BATS_TEST_TMPDIR/calls
	mkdir -p "$d"
	echo '{}' >"$d/a.json"
	for arg in "$d/" "$d//" "$d"; do
		run --separate-stderr parlae vapi replay "$arg" --dry-run
		assert_equal "$status" 0
		assert_equal "$output" "$d/a.json (3 bytes): would fail: the payload is not a Vapi server message (no message.type)"$'\n'"would replay 1 message; nothing was sent or run"
	done
}

@test "PARLAE_SECRET_STORE=file:DIR/ names the store's files with one slash" {
	d=$BATS_TEST_TMPDIR/vault
	mkdir -m 700 "$d"
	install -m 644 /dev/null "$d/x.cur"
	PARLAE_SECRET_STORE=file:$d/ run --separate-stderr parlae status --check
	assert_equal "$status" 1
	assert_line "secret store  file:$d/, not usable: secret file $d/x.cur has mode 0644, not 0600"
	assert_equal "$stderr" "parlae: status --check: the secret store is not usable: secret file $d/x.cur has mode 0644, not 0600"
}

@test "XDG_DATA_HOME=DIR/ and HOME=DIR/ give the default store with one slash" {
	XDG_DATA_HOME=$BATS_TEST_TMPDIR/data/ run --separate-stderr parlae status --json
	assert_equal "$(jq -r .secretStore.location <<<"$output")" "$BATS_TEST_TMPDIR/data/parlae/vault"
	HOME=$HOME/ run --separate-stderr parlae status --json
	assert_equal "$(jq -r .secretStore.location <<<"$output")" "$HOME/.local/share/parlae/vault"
}
