# store-tool: put/get/delete in the secret store through libparlae (tests/helpers/store-tool.c),
# built against the library of the parlae under test (the sanitizer build's sits next to it).
# shellcheck shell=bash

build_store_tool() { build_c_tool store-tool; }

store_tool() { "$BATS_FILE_TMPDIR/store-tool" "$@"; }

# slow_rekey OLD NEW WHEN DELAY_US: a re-key in the background whose renames from the
# WHEN-th on are each held DELAY_US microseconds; sets REKEY_PID (strace's). LeakSanitizer
# cannot run under ptrace: in the sanitizer build it is off for this one process.
slow_rekey() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	PARLAE_MASTER_KEY=$1 PARLAE_MASTER_KEY_NEW=$2 strace -f -o /dev/null -qq \
		-e trace=renameat -e inject=renameat:delay_exit="$4":when="$3" \
		parlae secrets rotate --master-key >"$BATS_TEST_TMPDIR/rekey.out" 2>"$BATS_TEST_TMPDIR/rekey.err" &
	REKEY_PID=$!
}

# wait_for CONDITION...: until the command succeeds (at most 30 s).
wait_for() {
	local i
	for i in $(seq 1 1500); do
		"$@" && return 0
		sleep 0.02
	done
	echo "never: $*" >&2
	return 1
}

# kill_rekey: the re-key slow_rekey started dies (kill -9) where it is held, as in a crash;
# strace, which would sit out the rest of its delay, too.
kill_rekey() {
	kill -9 "$(pgrep -P "$REKEY_PID")"
	kill -9 "$REKEY_PID"
	wait "$REKEY_PID" || true
}
