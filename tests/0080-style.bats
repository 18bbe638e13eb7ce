#!/usr/bin/env bats
# How the code reads: one formatting style, and the unsafe string functions banned everywhere.
bats_require_minimum_version 1.5.0
load helpers/common

@test "lib/ and cmd/ follow the checked-in .clang-format" {
	cd "$PL_TOP"
	run clang-format --dry-run --Werror lib/*.c lib/*.h cmd/*.c cmd/*.h
	assert_success
}

@test "every source file includes banned.h, last" {
	cd "$PL_TOP"
	for f in lib/*.c cmd/*.c; do
		last=$(grep '^#include' "$f" | tail -n 1)
		[[ $last == *banned.h* ]] || { echo "$f: last include is $last" >&2; return 1; }
	done
}
