#!/usr/bin/env bats
# make demo, the way a newcomer first runs it: from a clone inside a 0700 directory (root's home
# on Debian), as root, twice (the second run reuses what the first made).
bats_require_minimum_version 1.5.0
load helpers/common

setup() {
	home=$BATS_TEST_TMPDIR/home
	mkdir -m 700 "$home"
	proj=$home/parlae
	mkdir -p "$proj/tests"
	cp -r "$PL_TOP/tests/demo" "$PL_TOP/tests/helpers" "$PL_TOP/tests/fakes" "$proj/tests/"
}

teardown() {
	# The cluster of a clone the server cannot reach lives outside it (see place_pgdir).
	[ -L "$proj/.demo/pg" ] && rm -rf "$(readlink -f "$proj/.demo/pg")"
	rm -rf "$proj/.demo"
}

@test "make demo works from a clone in a 0700 directory, and again on a second run" {
	run --separate-stderr "$proj/tests/demo"
	assert_success
	assert_output --partial "created a new cluster"
	assert_output --partial '"state": "ACTIVE"'
	if [ "$(id -u)" = 0 ]; then
		# The server runs as nobody, which cannot enter $home: the cluster is kept elsewhere.
		[ -L "$proj/.demo/pg" ]
		assert_equal "$(stat -c %U "$(readlink -f "$proj/.demo/pg")/data")" nobody
	fi
	run --separate-stderr "$proj/tests/demo"
	assert_success
	assert_output --partial "reusing the cluster"
}
