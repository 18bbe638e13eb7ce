# vapi listen in a test: started in the background, driven with curl, stopped with SIGTERM.
# shellcheck shell=bash

# listen_start ARGS...: parlae ARGS (vapi listen among them, with --port 0) in the background;
# sets LPID, URL (the address it says it listens on), LPORT and LADDR; its stdout and stderr go to
# $LOUT and $LERR.
listen_start() {
	local i
	LOUT=$BATS_TEST_TMPDIR/listen.out LERR=$BATS_TEST_TMPDIR/listen.err
	parlae "$@" >"$LOUT" 2>"$LERR" 3>&- &
	LPID=$!
	for i in $(seq 1 200); do
		URL=$(sed -n 's|^listening on \(http://[^ ]*\) .*|\1|p' "$LERR" | head -n1)
		[ -n "$URL" ] || URL=$(head -n1 "$LOUT" | jq -r '.listening // empty' 2>/dev/null)
		if [ -n "$URL" ]; then
			LPORT=${URL##*:} LADDR=${URL#http://}
			LADDR=${LADDR%:*}
			return 0
		fi
		kill -0 "$LPID" 2>/dev/null || break
		sleep 0.05
	done
	echo "the listener did not start:" >&2
	cat "$LERR" >&2
	return 1
}

# listen_cleanup (a teardown): a listener that a failed test left running is stopped.
listen_cleanup() {
	if [ -n "${LPID:-}" ]; then
		kill -TERM "$LPID" 2>/dev/null
		wait "$LPID" 2>/dev/null
	fi
	LPID=
}

# stop_listener: SIGTERM, and its exit status in $LSTATUS.
stop_listener() {
	kill -TERM "$LPID"
	LSTATUS=0
	wait "$LPID" || LSTATUS=$?
	LPID=
}

# post FILE [CURL ARGS...]: POST the file's bytes to the listener (on loopback, whatever it is
# bound to); the status in $code, the answer in $body.
post() {
	local file=$1
	shift
	code=$(curl -sS -o "$BATS_TEST_TMPDIR/answer" -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' --data-binary @"$file" "$@" \
		"http://127.0.0.1:$LPORT/api/vapi")
	body=$(cat "$BATS_TEST_TMPDIR/answer")
}

# hmac_sig FILE TIMESTAMP: Vapi's X-Signature of the file's bytes at that time.
hmac_sig() {
	{
		printf '%s.' "$2"
		cat "$1"
	} | openssl dgst -sha256 -hmac "$VAPI_WEBHOOK_SECRET" -hex | sed 's/^.*= //'
}
