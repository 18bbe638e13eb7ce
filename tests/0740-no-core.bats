#!/usr/bin/env bats
# A process that holds secrets never leaves a core: its core size limit is 0 whatever ulimit -c
# says, and SIGQUIT ends a command like SIGTERM (130) instead of dumping it.
bats_require_minimum_version 1.5.0
load helpers/common

setup_file() { suite_setup; }
setup() {
	setup_home
	export PARLAE_MASTER_KEY=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
	export PARLAE_STATE_SECRET=sekrit-state-secret-for-tests-0123456789
	mkdir "$BATS_TEST_TMPDIR/cwd"
	cd "$BATS_TEST_TMPDIR/cwd"
	mkfifo payload
}

# Start a command that blocks reading the FIFO "payload"; returns once it has opened it, that is
# once it is past start-up. QUIT is given its default action (a background job ignores it).
# bats keeps fd 3 for itself: the writer's fd is allocated.
start_blocked() {
	ulimit -c unlimited
	env --default-signal=QUIT parlae vapi tool invoke --payload payload >out 2>err &
	pid=$!
	exec {writer}>payload
}

# Send SIGNAL to the blocked command and set $status to how it ended.
stop_with() {
	kill "-$1" "$pid"
	status=0
	wait "$pid" || status=$?
	exec {writer}>&-
}

@test "a running command has a core size limit of 0 whatever ulimit -c says" {
	start_blocked
	limits=$(grep '^Max core file size' "/proc/$pid/limits")
	stop_with TERM
	assert_equal "$status" 130
	assert_regex "$limits" '^Max core file size +0 +0 +bytes *$'
}

@test "SIGQUIT during a command ends it with 130 and no core file" {
	start_blocked
	stop_with QUIT
	assert_equal "$status" 130
	assert_equal "$(cat err)" "parlae: interrupted"
	assert_equal "$(cat out)" ""
	# The core pattern here is a file in the working directory: nothing but what the test made.
	run ls -A
	assert_output $'err\nout\npayload'
}
