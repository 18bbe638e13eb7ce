#!/usr/bin/env bats
# Configuration: flag > environment > config-file profile > default; secrets refused in the file.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() { suite_setup; suite_migrate; }
setup() {
	setup_home
	mkdir -p "$HOME/.config/parlae"
	cfg=$HOME/.config/parlae/config
}

store_location() { parlae status --json "$@" | jq -r '.secretStore.location'; }

@test "the built-in default store is under XDG_DATA_HOME, else ~/.local/share" {
	assert_equal "$(store_location)" "$HOME/.local/share/parlae/vault"
	assert_equal "$(XDG_DATA_HOME=/srv/data store_location)" "/srv/data/parlae/vault"
}

@test "the default section of the config file beats the built-in default" {
	printf '# parlae\nPARLAE_SECRET_STORE = file:/from/default\n' >"$cfg"
	assert_equal "$(store_location)" "/from/default"
}

@test "a profile overrides the default section" {
	printf '[default]\nPARLAE_SECRET_STORE = file:/from/default\n\n[profile staging]\nPARLAE_SECRET_STORE = "file:/from/staging"\n' >"$cfg"
	assert_equal "$(store_location --profile staging)" "/from/staging"
	assert_equal "$(PARLAE_PROFILE=staging store_location)" "/from/staging"
	assert_equal "$(store_location)" "/from/default"
}

@test "the environment beats the config file" {
	printf 'PARLAE_SECRET_STORE = file:/from/file\n' >"$cfg"
	assert_equal "$(PARLAE_SECRET_STORE=file:/from/env store_location)" "/from/env"
}

@test "the --profile flag beats PARLAE_PROFILE, and --config beats PARLAE_CONFIG" {
	printf '[profile a]\nPARLAE_SECRET_STORE = file:/a\n[profile b]\nPARLAE_SECRET_STORE = file:/b\n' >"$cfg"
	assert_equal "$(PARLAE_PROFILE=a store_location --profile b)" "/b"
	printf 'PARLAE_SECRET_STORE = file:/other\n' >"$BATS_TEST_TMPDIR/other"
	assert_equal "$(PARLAE_CONFIG=$cfg store_location --config "$BATS_TEST_TMPDIR/other")" "/other"
	assert_equal "$(PARLAE_CONFIG=$BATS_TEST_TMPDIR/other store_location)" "/other"
}

@test "the database URL comes from the config file when the environment has none" {
	printf 'PARLAE_DATABASE_URL = %s\n' "$PARLAE_DATABASE_URL" >"$cfg"
	url=$PARLAE_DATABASE_URL
	unset PARLAE_DATABASE_URL
	run --separate-stderr parlae account list --json
	assert_success
	DATABASE_URL=$url run --separate-stderr env -u PARLAE_DATABASE_URL parlae db status --json
	assert_success
}

@test "a secret in the config file is refused with exit 3 naming the line" {
	printf 'SIKKA_APP_ID = app\nSIKKA_APP_KEY = sekrit-in-file\n' >"$cfg"
	run --separate-stderr parlae status
	assert_equal "$status" 3
	assert_equal "$output" ""
	assert_equal "$stderr" "parlae: $cfg:2: SIKKA_APP_KEY is a secret and may not be kept in the config file (remove it from the file and set it in the environment)"
	refute_secrets_in "$stderr" sekrit-in-file
}

@test "a database URL with a password in the config file is refused" {
	printf 'PARLAE_DATABASE_URL = postgresql://u:sekrit-pw@h/db\n' >"$cfg"
	run --separate-stderr parlae status --json
	assert_equal "$status" 3
	assert_equal "$(jq -r '.error.code' <<<"$stderr")" "config"
	refute_secrets_in "$stderr" sekrit-pw
}

@test "an unknown setting and a malformed line are refused with exit 3" {
	printf 'SIKA_APP_ID = typo\n' >"$cfg"
	run --separate-stderr parlae status
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: $cfg:1: unknown setting 'SIKA_APP_ID'; did you mean 'SIKKA_APP_ID'?"
	printf 'just words\n' >"$cfg"
	run --separate-stderr parlae status
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: $cfg:1: expected 'KEY = value'"
}

@test "a profile that does not exist is refused with exit 3" {
	printf 'PARLAE_SECRET_STORE = file:/x\n' >"$cfg"
	run --separate-stderr parlae status --profile nope
	assert_equal "$status" 3
	assert_equal "$stderr" "parlae: $cfg: no [profile nope] section (add the section or choose another --profile)"
}

@test "a --config file that does not exist is refused with exit 3" {
	run --separate-stderr parlae status --config "$BATS_TEST_TMPDIR/missing"
	assert_equal "$status" 3
	assert_regex "$stderr" "^parlae: cannot open config file .*/missing: No such file or directory$"
}

@test "no config file at the default place is fine" {
	rm -f "$cfg"
	run --separate-stderr parlae status --json
	assert_success
}
