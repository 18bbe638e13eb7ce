# Starting and stopping the upstream fakes of tests/fakes/ on free ports.
# start_sikka DIR: exports SIKKA_API_URL, SIKKA_AUTHORIZE_URL, SIKKA_APP_ID, SIKKA_APP_KEY, FAKE_SIKKA.

start_fake() { # NAME DIR ARGS...
	local name=$1 dir=$2 i
	shift 2
	mkdir -p "$dir"
	rm -f "$dir/$name.port"
	python3 "$PL_TOP/tests/fakes/$name.py" --port 0 --port-file "$dir/$name.port" "$@" \
		>"$dir/$name.log" 2>&1 3>&- &
	echo $! >"$dir/$name.pid"
	for i in $(seq 1 100); do
		[ -s "$dir/$name.port" ] && return 0
		sleep 0.05
	done
	echo "fake $name did not start:" >&2
	cat "$dir/$name.log" >&2
	return 1
}

stop_fake() { # NAME DIR
	local pid
	pid=$(cat "$2/$1.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

sikka_env() { # DIR
	local port
	read -r port <"$1/sikka.port"
	export FAKE_SIKKA=http://127.0.0.1:$port
	export SIKKA_API_URL=$FAKE_SIKKA SIKKA_AUTHORIZE_URL=$FAKE_SIKKA/portal/authapp.aspx
	export SIKKA_APP_ID=test-app-id SIKKA_APP_KEY=sekrit-app-key-0f9e8d7c
}

start_sikka() { # DIR
	start_fake sikka "$1" --app-id test-app-id --app-key sekrit-app-key-0f9e8d7c && sikka_env "$1"
}

stop_sikka() { stop_fake sikka "$1"; }

# POST JSON to the fake's control API; prints the answer.
fake() { # PATH JSON
	curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' --data "$2" "$FAKE_SIKKA/__fake/$1"
}
fake_get() { curl -sS --fail-with-body "$FAKE_SIKKA/__fake/$1"; }

# fake_posts URL JSON [URL JSON]...: POST each JSON to its URL, in that order, in one curl (a
# curl per call was most of a test's setup); it stops at, and fails with, the first that fails.
fake_posts() {
	local args=()
	while [ $# -ge 2 ]; do
		[ ${#args[@]} -eq 0 ] || args+=(--next)
		args+=(--fail-with-body -X POST -H 'Content-Type: application/json' --data "$2" "$1")
		shift 2
	done
	curl -sS --fail-early "${args[@]}"
}

# start_twilio DIR: exports TWILIO_API_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER, FAKE_TWILIO.
start_twilio() {
	start_fake twilio "$1" --account-sid AC0123456789abcdef0123456789abcdef --auth-token sekrit-twilio-token-5a4b && twilio_env "$1"
}
twilio_env() {
	local port
	read -r port <"$1/twilio.port"
	export FAKE_TWILIO=http://127.0.0.1:$port
	export TWILIO_API_URL=$FAKE_TWILIO TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef
	export TWILIO_AUTH_TOKEN=sekrit-twilio-token-5a4b TWILIO_FROM_NUMBER=+15550009999
}
stop_twilio() { stop_fake twilio "$1"; }
twilio_fake() { curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' --data "$2" "$FAKE_TWILIO/__fake/$1"; }
twilio_get() { curl -sS --fail-with-body "$FAKE_TWILIO/__fake/$1"; }

# start_target DIR: a fake deployed backend; exports FAKE_TARGET and VAPI_WEBHOOK_SECRET.
start_target() {
	start_fake vapi_target "$1" --auth secret --secret sekrit-vapi-webhook-77aa && target_env "$1"
}
target_env() {
	local port
	read -r port <"$1/vapi_target.port"
	export FAKE_TARGET=http://127.0.0.1:$port
	export VAPI_WEBHOOK_SECRET=sekrit-vapi-webhook-77aa
}
stop_target() { stop_fake vapi_target "$1"; }
target_fake() { curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' --data "$2" "$FAKE_TARGET/__fake/$1"; }

# start_aws DIR: the fake AWS Secrets Manager (region us-east-1) with one long-term key pair.
# aws_env DIR exports AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# FAKE_AWS and PARLAE_SECRET_STORE=aws:us-east-1; call it in setup(), since common.bash unsets
# every AWS_* variable in each test.
FAKE_AWS_KEY_ID=AKIAFAKEPARLAE000001
FAKE_AWS_SECRET='fake/Secret+Key=0123456789abcdefABCDEF'
start_aws() {
	start_fake aws_secrets "$1" --access-key-id "$FAKE_AWS_KEY_ID" \
		--secret-access-key "$FAKE_AWS_SECRET" --region us-east-1 && aws_env "$1"
}
aws_env() {
	local port
	read -r port <"$1/aws_secrets.port"
	export FAKE_AWS=http://127.0.0.1:$port
	export AWS_ENDPOINT_URL_SECRETS_MANAGER=$FAKE_AWS AWS_ACCESS_KEY_ID=$FAKE_AWS_KEY_ID
	export AWS_SECRET_ACCESS_KEY=$FAKE_AWS_SECRET PARLAE_SECRET_STORE=aws:us-east-1
}
stop_aws() { stop_fake aws_secrets "$1"; }
aws_fake() { curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' --data "$2" "$FAKE_AWS/__fake/$1"; }
aws_get() { curl -sS --fail-with-body "$FAKE_AWS/__fake/$1"; }
