#!/usr/bin/env bats
# The fake Sikka ONE API (tests/fakes/sikka.py) answers as upstreams.md says Sikka does: the
# other suites trust it, so it is tested on its own, with curl.
bats_require_minimum_version 1.5.0
load helpers/common

APP='"app_id":"test-app","app_key":"test-key"'

start_fake() { # DIR [ARGS...]: start a fake in the background, its port in DIR/port
	local dir=$1 i
	shift
	python3 "$BATS_TEST_DIRNAME/fakes/sikka.py" --port 0 --port-file "$dir/port" "$@" \
		2>"$dir/stderr" 3>&- &
	echo $! >"$dir/pid"
	for i in $(seq 200); do
		[ -s "$dir/port" ] && return 0
		sleep 0.05
	done
	echo "the fake did not start: $(cat "$dir/stderr")" >&2
	return 1
}

setup_file() {
	start_fake "$BATS_FILE_TMPDIR" --app-id test-app --app-key test-key
	export FAKE_SIKKA="http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/port")"
}

teardown_file() { kill "$(cat "$BATS_FILE_TMPDIR/pid")"; }

setup() { ctl reset '{}' >/dev/null; }

# A test that started a fake of its own and failed half way does not leave it running.
teardown() {
	local p
	for p in "$BATS_TEST_TMPDIR"/*/pid; do
		[ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
	done
	return 0
}

# ctl PATH [JSON]: the control API (GET without a body, POST with one).
ctl() { curl -sSf "$FAKE_SIKKA/__fake/$1" ${2:+-H 'Content-Type: application/json' -d "$2"}; }

# call CURL-ARGS...: a Sikka request; sets $code, $body and $headers.
call() {
	code=$(curl -sS -o "$BATS_TEST_TMPDIR/body" -D "$BATS_TEST_TMPDIR/headers" -w '%{http_code}' "$@")
	slurp body "$BATS_TEST_TMPDIR/body"
	slurp headers "$BATS_TEST_TMPDIR/headers"
	# As tr -d '\r' would, before $(...) dropped the trailing newlines.
	headers=${headers//$'\r'/}
	headers=${headers%"${headers##*[!$'\n']}"}
}

grant() { call "$FAKE_SIKKA/v4/request_key" -H 'Content-Type: application/json' -d "{$1,$APP}"; }
practices() { call "$FAKE_SIKKA/v4/authorized_practices?show=all" -H 'App-Id: test-app' -H "App-Key: ${1:-test-key}"; }
data() { call "$FAKE_SIKKA/v4/$1" -H "Request-Key: $KEY" "${@:2}"; }

# A connected office: a code exchanged, access ON; leaves the keys in $KEY and $REFRESH.
connect() {
	local office=${1:-D36225}
	ctl access "{\"office_id\":\"$office\"}" >/dev/null
	grant "\"grant_type\":\"authorization_code\",\"code\":\"$(ctl code "{\"office_id\":\"$office\"}" | jq -r .code)\""
	[ "$code" = 200 ]
	KEY=$(jq -r .request_key <<<"$body")
	REFRESH=$(jq -r .refresh_key <<<"$body")
}

all_strings() { jq -e '[.. | scalars | type] | unique == ["string"]' <<<"$1" >/dev/null; }
envelope() { jq -c '[.http_code, .http_code_desc, .error_code]' <<<"$1"; }

@test "a wrong app key gets 401 API2003 in Sikka's envelope, every value a string" {
	practices wrong-key
	assert_equal "$code" 401
	assert_equal "$(envelope "$body")" '["401","Unauthorized","API2003"]'
	assert_equal "$(jq -c 'keys_unsorted' <<<"$body")" \
		'["http_code","http_code_desc","error_code","short_message","long_message","more_information"]'
	all_strings "$body"
	assert_regex "$headers" $'\nContent-Type: application/json'

	call "$FAKE_SIKKA/v4/request_key" -d '{"grant_type":"request_key","office_id":"D36225","secret_key":"x","app_id":"test-app","app_key":"nope"}'
	assert_equal "$code" 401
	assert_equal "$(jq -r .error_code <<<"$body")" API2003
}

@test "authorized_practices lists the configured practices in a list envelope of strings" {
	ctl practices '[{"office_id":"D1","secret_key":"s1","practice_name":"One"},{"office_id":"D2","practice_id":2,"practice_management_system":"Dolphin"}]' >/dev/null
	practices
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.offset, .limit, .total_count, (.pagination | keys), [.items[] | [.office_id, .practice_id, .secret_key[:2], .practice_management_system]]]' <<<"$body")" \
		'["0","50","2",["current","first","last","next","previous"],[["D1","1","s1","Dentrix"],["D2","2","93","Dolphin"]]]'
	assert_regex "$(jq -r '.items[0].data_insert_date' <<<"$body")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$'
	all_strings "$body"

	call "$FAKE_SIKKA/v4/authorized_practices?show=all&limit=1&offset=1" -H 'App-Id: test-app' -H 'App-Key: test-key'
	assert_equal "$(jq -c '[.offset, .total_count, [.items[].office_id], .pagination.next]' <<<"$body")" '["1","2",["D2"],""]'
}

@test "the authorize page redirects with a code, the state and the office id" {
	ctl authorize '{"office_id":"D36225"}' >/dev/null
	call -G "$FAKE_SIKKA/portal/authapp.aspx" --data-urlencode app_id=test-app \
		--data-urlencode redirect_uri=https://app.test/pms/sikka/oauth/callback --data-urlencode state=s1.abc-_
	assert_equal "$code" 302
	location=$(sed -n 's/^Location: //p' <<<"$headers")
	assert_regex "$location" '^https://app\.test/pms/sikka/oauth/callback\?code=[0-9a-f]{32}&state=s1\.abc-_&office_id=D36225$'

	code_=$(sed 's/.*code=\([0-9a-f]*\).*/\1/' <<<"$location")
	grant "\"grant_type\":\"authorization_code\",\"code\":\"$code_\""
	assert_equal "$code" 200
	assert_equal "$(jq -r .issued_to <<<"$body")" D36225
}

@test "the authorize page can deny, leave out the office id, and refuses a wrong app id" {
	ctl authorize '{"deny":true}' >/dev/null
	call "$FAKE_SIKKA/portal/authapp.aspx?app_id=test-app&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&state=xyz"
	assert_equal "$code" 302
	assert_equal "$(sed -n 's/^Location: //p' <<<"$headers")" 'https://app.test/cb?error=access_denied&state=xyz'

	ctl authorize '{"deny":false,"include_office_id":false}' >/dev/null
	call "$FAKE_SIKKA/portal/authapp.aspx?app_id=test-app&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&state=xyz"
	assert_regex "$(sed -n 's/^Location: //p' <<<"$headers")" '^https://app\.test/cb\?code=[0-9a-f]{32}&state=xyz$'

	call "$FAKE_SIKKA/portal/authapp.aspx?app_id=other&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&state=xyz"
	assert_equal "$code" 400
	refute_regex "$headers" 'Location:'
}

@test "an authorization code is exchanged once; using it again is refused" {
	c=$(ctl code '{"office_id":"D77"}' | jq -r .code)
	grant "\"grant_type\":\"authorization_code\",\"code\":\"$c\""
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.issued_to, .status, .expires_in, (.request_key | test("^[0-9a-f]{32}$")), (.refresh_key | length > 0)]' <<<"$body")" \
		'["D77","active","86400 second(s)",true,true]'
	assert_regex "$(jq -r .end_time <<<"$body")" '^[0-9-]{10}T[0-9:]{8}$'
	all_strings "$body"

	grant "\"grant_type\":\"authorization_code\",\"code\":\"$c\""
	assert_equal "$code" 401
	assert_equal "$(envelope "$body")" '["401","Unauthorized","API2007"]'
	assert_equal "$(ctl counters | jq -c .grants)" '{"authorization_code":1,"request_key":0,"refresh_key":0}'
}

@test "the request_key grant needs the practice's secret key and practice location access ON" {
	ctl practices '[{"office_id":"D5","secret_key":"sk5","practice_id":"3"}]' >/dev/null
	grant '"grant_type":"request_key","office_id":"D5","secret_key":"sk5"'
	assert_equal "$code" 401
	assert_equal "$(jq -r .error_code <<<"$body")" API2007

	call "$FAKE_SIKKA/v4/practice_location" -H 'App-Id: test-app' -H 'App-Key: test-key' -d '{"office_id":"D9","practice_id":"3","access":"ON"}'
	assert_equal "$code" 401
	assert_equal "$(jq -r .error_code <<<"$body")" API2007
	call "$FAKE_SIKKA/v4/practice_location" -H 'App-Id: test-app' -H 'App-Key: test-key' -d '{"office_id":"D5","practice_id":"3","access":"ON"}'
	assert_equal "$code" 200
	assert_equal "$(envelope "$body")" '["200","OK","API4006"]'
	assert_equal "$(ctl state | jq -r '.offices.D5.access')" ON

	grant '"grant_type":"request_key","office_id":"D5","secret_key":"wrong"'
	assert_equal "$code" 401
	grant '"grant_type":"request_key","office_id":"D5","secret_key":"sk5"'
	assert_equal "$code" 200
	assert_equal "$(jq -r .issued_to <<<"$body")" D5
}

@test "a refresh rotates the refresh key and refuses the old one" {
	connect
	old_key=$KEY old_refresh=$REFRESH
	grant "\"grant_type\":\"refresh_key\",\"refresh_key\":\"$old_refresh\""
	assert_equal "$code" 200
	new_key=$(jq -r .request_key <<<"$body") new_refresh=$(jq -r .refresh_key <<<"$body")
	[ "$new_key" != "$old_key" ] && [ "$new_refresh" != "$old_refresh" ]

	grant "\"grant_type\":\"refresh_key\",\"refresh_key\":\"$old_refresh\""
	assert_equal "$code" 401
	assert_equal "$(envelope "$body")" '["401","Unauthorized","API2007"]'

	assert_equal "$(ctl state | jq -c '.offices.D36225.valid_refresh_keys')" "[\"$new_refresh\"]"
	grant "\"grant_type\":\"refresh_key\",\"refresh_key\":\"$new_refresh\""
	assert_equal "$code" 200
	assert_equal "$(ctl counters | jq -c '[.refreshes, .invalid_refresh, .grants.refresh_key]')" '[{"D36225":2},{"D36225":1},2]'
}

@test "racing one refresh key from many clients refreshes exactly once" {
	connect
	for i in $(seq 20); do
		curl -s -o /dev/null -w '%{http_code}\n' "$FAKE_SIKKA/v4/request_key" \
			-d "{\"grant_type\":\"refresh_key\",\"refresh_key\":\"$REFRESH\",$APP}" &
	done >"$BATS_TEST_TMPDIR/codes"
	wait
	assert_equal "$(sort "$BATS_TEST_TMPDIR/codes" | uniq -c | awk '{print $2 ":" $1}' | paste -sd' ')" '200:1 401:19'
	assert_equal "$(ctl counters | jq -c '[.refreshes, .invalid_refresh]')" '[{"D36225":1},{"D36225":19}]'
}

@test "an expired request key gets 400 API1025, an unknown one 401, a missing one 400 API1004" {
	ctl keys '{"lifetime":120}' >/dev/null
	connect
	assert_equal "$(jq -r .expires_in <<<"$body")" '120 second(s)'
	data patients
	assert_equal "$code" 200

	assert_equal "$(ctl expire '{"office_id":"D36225"}')" '{"expired":1}'
	data patients
	assert_equal "$code" 400
	assert_equal "$(envelope "$body")" '["400","BadRequest","API1025"]'
	assert_equal "$(ctl state | jq -c '.offices.D36225 | [.valid_request_keys, .request_keys[0].expired]')" '[[],true]'

	call "$FAKE_SIKKA/v4/patients" -H "Request-Key: 0123456789abcdef0123456789abcdef"
	assert_equal "$code" 401
	call "$FAKE_SIKKA/v4/patients"
	assert_equal "$code" 400
	assert_equal "$(jq -r .error_code <<<"$body")" API1004
}

@test "data calls answer list envelopes filtered by their query parameters" {
	connect
	ctl seed '{"office_id":"D36225",
		"patients":[{"patient_id":"P1","firstname":"Ann","lastname":"Lee","cell":"(555) 123-4567","email":"ann@x.test"},
		            {"patient_id":"P2","firstname":"Bob","lastname":"Lee","homephone":"555-999-0000"}],
		"providers":[{"provider_id":"DR1","firstname":"Jo","lastname":"Molar"}],
		"operatories":[{"operatory":"OP1"}],
		"appointments":[{"patient_id":"P1","provider_id":"DR1","date":"2026-12-01","time":"09:00","length":60},
		                {"patient_id":"P2","provider_id":"DR1","date":"2026-12-03","time":"10:00"}]}' >/dev/null
	data 'patients?lastname=lee'
	assert_equal "$(jq -c '[.total_count, [.items[].patient_id]]' <<<"$body")" '["2",["P1","P2"]]'
	all_strings "$body"
	data 'patients?cell=5551234567'
	assert_equal "$(jq -c '[.items[].patient_id]' <<<"$body")" '["P1"]'
	data 'patients?phone=5559990000'
	assert_equal "$(jq -c '[.items[].patient_id]' <<<"$body")" '["P2"]'
	data 'patients?email=ANN@x.test'
	assert_equal "$(jq -c '[.items[].patient_id]' <<<"$body")" '["P1"]'
	data 'patients?search=bob'
	assert_equal "$(jq -c '[.items[].patient_id]' <<<"$body")" '["P2"]'
	data 'appointments?startdate=2026-12-02&enddate=2026-12-31'
	assert_equal "$(jq -c '[.items[] | [.patient_id, .date, .time, .length]]' <<<"$body")" '[["P2","2026-12-03T00:00:00","10:00","30"]]'
	data 'appointments?patient_id=P1'
	assert_equal "$(jq -r '.total_count' <<<"$body")" 1
	data 'appointments?startdate=12/01/2026'
	assert_equal "$code" 400
	data providers
	assert_equal "$(jq -c '[.items[].provider_id]' <<<"$body")" '["DR1"]'
	data operatories
	assert_equal "$(jq -c '[.items[].operatory]' <<<"$body")" '["OP1"]'
	data practices
	assert_equal "$(jq -c '[.items[] | [.practice_name, has("secret_key")]]' <<<"$body")" '[["Happy Teeth Dental",false]]'
}

@test "available slots are served only for Orthotrac, Dolphin and Planet DDS" {
	connect
	ctl seed '{"office_id":"D36225","slots":[{"date":"2026-12-01","time":"09:00","length":"30","provider_id":"DR1"}]}' >/dev/null
	data 'appointments_available_slots?startdate=2026-12-01&enddate=2026-12-01'
	assert_equal "$code" 400
	assert_equal "$(jq -r .error_code <<<"$body")" API1026

	ctl practices '[{"office_id":"D36225","practice_management_system":"Planet DDS"}]' >/dev/null
	data 'appointments_available_slots?startdate=2026-12-01&enddate=2026-12-01'
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.items[] | [.time, .provider_id]]' <<<"$body")" '[["09:00","DR1"]]'
}

@test "a booking is a writeback: 201 API2016, pending, then completed with the created id" {
	connect
	ctl seed '{"office_id":"D36225","patients":[{"patient_id":"P1","firstname":"Ann","lastname":"Lee"}]}' >/dev/null
	ctl writeback '{"pending_polls":2}' >/dev/null
	data appointment -d '{"patient_id":"P1","date":"2026-12-01","time":"10:00","description":"Cleaning","provider_id":"DR1","length":"30","operatory":"OP1","practice_id":"1"}'
	assert_equal "$code" 201
	assert_equal "$(jq -c '[.error_code, .long_message]' <<<"$body")" '["API2016","Id:275495"]'
	for i in 1 2; do
		data 'writeback_status?id=275495'
		assert_equal "$(jq -c '.items[0] | [.is_completed, .has_error]' <<<"$body")" '["False","False"]'
	done
	data 'writeback_status?id=275495'
	assert_equal "$(jq -c '.items[0] | [.is_completed, .has_error, .result]' <<<"$body")" '["True","False","Success"]'
	all_strings "$body"
	created=$(jq -r '.items[0].created_id' <<<"$body")
	data 'appointments?patient_id=P1'
	assert_equal "$(jq -c '[.items[] | [.appointment_sr_no, .time]]' <<<"$body")" "[[\"$created\",\"10:00\"]]"

	ctl writeback '{"pending_polls":0}' >/dev/null
	data appointment -d '{"patient_id":"P1","date":"2026-12-01","time":"10:15","provider_id":"DR1","length":"30","practice_id":"1"}'
	data 'writeback_status?id=275496'
	assert_equal "$(jq -c '.items[0] | [.is_completed, .has_error]' <<<"$body")" '["True","True"]'
	assert_regex "$(jq -r '.items[0].result' <<<"$body")" '^Slot not available'

	ctl spu '{"office_id":"D36225","online":false}' >/dev/null
	data appointment -d '{"patient_id":"P1","date":"2026-12-02","time":"10:00","provider_id":"DR1","length":"30","practice_id":"1","check_spu":"true"}'
	assert_equal "$code" 412
	assert_equal "$(envelope "$body")" '["412","PreconditionFailed","API2017"]'
}

@test "a fault answers 500 once, then service is normal" {
	ctl faults '{"method":"GET","path":"/v4/authorized_practices","status":500}' >/dev/null
	practices
	assert_equal "$code" 500
	assert_equal "$(envelope "$body")" '["500","InternalServerError","API2001"]'
	practices
	assert_equal "$code" 200
	assert_equal "$(ctl faults)" '{"faults":[]}'
}

@test "a fault can send a malformed body" {
	ctl faults '{"path":"/v4/request_key","status":200,"body":"{\"request_key\":"}' >/dev/null
	grant '"grant_type":"request_key","office_id":"D36225","secret_key":"x"'
	assert_equal "$code" 200
	assert_equal "$body" '{"request_key":'
	assert_regex "$headers" $'\nContent-Length: 15($|\n)'
}

@test "a fault can answer 429 with Retry-After and the rate-limit headers, twice" {
	ctl faults '{"path":"/v4/*","status":429,"retry_after":2,"count":2}' >/dev/null
	for i in 1 2; do
		practices
		assert_equal "$code" 429
		assert_regex "$headers" $'\nRetry-After: 2\n'
		assert_regex "$headers" $'\nX-Rate-Limit-Remaining: 0\n'
	done
	practices
	assert_equal "$code" 200
}

@test "a fault's Retry-After can be an HTTP-date, that many seconds after the answer" {
	ctl faults '{"path":"/v4/*","status":503,"retry_after":{"date":120}}' >/dev/null
	practices
	assert_equal "$code" 503
	date=$(sed -n 's/^Retry-After: \(.*\)$/\1/p' <<<"$headers")
	assert_regex "$date" '^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$'
	delta=$(($(date -u -d "$date" +%s) - $(date -u +%s)))
	[ "$delta" -ge 118 ] && [ "$delta" -le 120 ]
	run curl -sS -X POST -H 'Content-Type: application/json' --data '{"retry_after":{"when":1}}' "$FAKE_SIKKA/__fake/faults"
	assert_regex "$output" 'retry_after is seconds'
}

@test "a fault can delay the answer or drop the connection" {
	ctl faults '[{"path":"/v4/authorized_practices","delay_ms":300},{"path":"/v4/authorized_practices","close":true}]' >/dev/null
	run curl -sS -o /dev/null -w '%{http_code} %{time_total}' -H 'App-Id: test-app' -H 'App-Key: test-key' "$FAKE_SIKKA/v4/authorized_practices"
	assert_success
	read -r c t <<<"$output"
	assert_equal "$c" 200
	awk -v t="$t" 'BEGIN { exit !(t >= 0.3) }'

	run curl -sS -H 'App-Id: test-app' -H 'App-Key: test-key' "$FAKE_SIKKA/v4/authorized_practices"
	assert_equal "$status" 52 # empty reply from server
}

@test "a fault can pick one grant type and let the first matches through" {
	connect
	ctl faults '{"path":"/v4/request_key","grant_type":"refresh_key","skip":1,"status":503}' >/dev/null
	grant '"grant_type":"request_key","office_id":"D36225","secret_key":"'"$(ctl state | jq -r '.practices[0].secret_key')"'"'
	assert_equal "$code" 200
	grant "\"grant_type\":\"refresh_key\",\"refresh_key\":\"$REFRESH\""
	assert_equal "$code" 200
	grant "\"grant_type\":\"refresh_key\",\"refresh_key\":\"$(jq -r .refresh_key <<<"$body")\""
	assert_equal "$code" 503
	assert_equal "$(envelope "$body")" '["503","ServiceUnavailable","API2002"]'
}

@test "a fault after handling loses the answer but keeps the effect" {
	connect
	ctl faults '{"path":"/v4/request_key","grant_type":"refresh_key","when":"after","status":502}' >/dev/null
	grant "\"grant_type\":\"refresh_key\",\"refresh_key\":\"$REFRESH\""
	assert_equal "$code" 502
	assert_equal "$(ctl counters | jq -c '[.refreshes, .faults]')" '[{"D36225":1},1]'
	assert_equal "$(ctl state | jq -c --arg rk "$REFRESH" '.offices.D36225 | [(.valid_refresh_keys | length), (.valid_refresh_keys | index($rk))]')" '[1,null]'
}

@test "counters count requests by method and path across many concurrent keep-alive clients" {
	ctl counters/reset '{}' >/dev/null
	for i in $(seq 25); do
		curl -s -o /dev/null -H 'App-Id: test-app' -H 'App-Key: test-key' \
			"$FAKE_SIKKA/v4/authorized_practices" "$FAKE_SIKKA/v4/authorized_practices" \
			"$FAKE_SIKKA/v4/authorized_practices" "$FAKE_SIKKA/v4/authorized_practices" &
	done
	wait
	call "$FAKE_SIKKA/v4/nothing-here"
	assert_equal "$code" 404
	assert_equal "$(ctl counters | jq -c .requests)" '{"GET /v4/authorized_practices":100,"GET /v4/nothing-here":1}'
}

@test "the fake writes its port file, stays quiet and exits 0 on SIGTERM" {
	dir=$BATS_TEST_TMPDIR/second
	mkdir -p "$dir"
	start_fake "$dir" --latency-ms 50
	assert_regex "$(cat "$dir/port")" '^[0-9]+$'
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$dir/port")/v4/authorized_practices" \
		-H 'App-Id: fake-app-id' -H 'App-Key: fake-app-key'
	assert_output 200
	kill -TERM "$(cat "$dir/pid")"
	rc=0
	wait "$(cat "$dir/pid")" || rc=$?
	assert_equal "$rc" 0
	assert_equal "$(cat "$dir/stderr")" ""
}

@test "with --state, a restarted fake still knows its practices, keys and data (0600 file); without it, it forgets" {
	dir=$BATS_TEST_TMPDIR/kept
	mkdir -p "$dir"
	start_fake "$dir" --app-id test-app --app-key test-key --state "$dir/state.json"
	url=http://127.0.0.1:$(cat "$dir/port")
	post() { curl -sSf -H 'Content-Type: application/json' -d "$2" "$url/__fake/$1"; }
	post access '{"office_id":"D36225"}' >/dev/null
	post seed '{"office_id":"D36225","patients":[{"patient_id":"P1","firstname":"Ana"}]}' >/dev/null
	secret=$(curl -sSf "$url/__fake/state" | jq -r '.practices[0].secret_key')
	key=$(curl -sSf -H 'Content-Type: application/json' "$url/v4/request_key" \
		-d "{\"grant_type\":\"request_key\",\"office_id\":\"D36225\",\"secret_key\":\"$secret\",$APP}" |
		jq -r .request_key)
	[ -n "$key" ] && [ "$key" != null ] || fail "no request key"
	assert_equal "$(stat -c %a "$dir/state.json")" 600
	kill -TERM "$(cat "$dir/pid")"
	wait "$(cat "$dir/pid")" || true
	rm "$dir/port"

	start_fake "$dir" --app-id test-app --app-key test-key --state "$dir/state.json"
	url=http://127.0.0.1:$(cat "$dir/port")
	call "$url/v4/patients" -H "Request-Key: $key"
	assert_equal "$code" 200
	assert_equal "$(jq -r '.items[0].firstname' <<<"$body")" Ana
	assert_equal "$(curl -sSf "$url/__fake/state" | jq -r '.offices.D36225.access')" ON
	kill -TERM "$(cat "$dir/pid")"
	wait "$(cat "$dir/pid")" || true
	assert_equal "$(cat "$dir/stderr")" ""
	rm "$dir/port"

	# The same without --state: the key is unknown after a restart (what the sandbox met).
	start_fake "$dir" --app-id test-app --app-key test-key
	call "http://127.0.0.1:$(cat "$dir/port")/v4/patients" -H "Request-Key: $key"
	assert_equal "$code" 401
	assert_equal "$(jq -r .error_code <<<"$body")" API2007
	kill -TERM "$(cat "$dir/pid")"
	wait "$(cat "$dir/pid")" || true
}

@test "--state refuses a file it did not write: exit 1, said on stderr" {
	echo '{"other":1}' >"$BATS_TEST_TMPDIR/state.json"
	run --separate-stderr python3 "$BATS_TEST_DIRNAME/fakes/sikka.py" --port 0 --state "$BATS_TEST_TMPDIR/state.json"
	assert_failure 1
	assert_equal "$stderr" "fake-sikka: $BATS_TEST_TMPDIR/state.json is not a state file of this fake"
}

# ---- the other writebacks (issue 13): reschedule, cancel, new patient -----------------------

# seed_two: patients P1 and P2, provider DR1, appointments A1 (P1) and A9 (P2) on 2026-12-01.
seed_two() {
	ctl seed '{"office_id":"D36225",
		"patients":[{"patient_id":"P1","firstname":"Ana","lastname":"Diaz","cell":"+15551234567"},
		            {"patient_id":"P2","firstname":"Bob","lastname":"Lee"}],
		"providers":[{"provider_id":"DR1"},{"provider_id":"DR2"}],
		"appointments":[{"appointment_sr_no":"A1","patient_id":"P1","provider_id":"DR1","date":"2026-12-01","time":"09:00","length":"30","description":"Cleaning"},
		                {"appointment_sr_no":"A9","patient_id":"P2","provider_id":"DR1","date":"2026-12-01","time":"10:00","length":"30"}]}' >/dev/null
}
# poll ID: one writeback_status poll; prints [is_completed, has_error, result, created_id].
poll() {
	data "writeback_status?id=$1"
	jq -c '.items[0] | [.is_completed, .has_error, .result, .created_id]' <<<"$body"
}
# appt ID: the appointment as /v4/appointments lists it: [date, time, length, provider, status].
appt() {
	data "appointments?appointment_sr_no=$1"
	jq -c '.items[0] | [.date, .time, .length, .provider_id, .status]' <<<"$body"
}
PUT_A1='{"patient_id":"P1","date":"2026-12-02","time":"11:00","description":"Cleaning","provider_id":"DR2","length":"45","operatory":"OP1","practice_id":"1"}'
CANCEL='{"op":"replace","path":"/appointment_status","value":"broken","practice_id":"1"}'
NEW_PATIENT='{"firstname":"Sam","lastname":"Okafor","cell":"+15553217654","email":"sam@example.com","birthdate":"1985-07-19","practice_id":"1"}'

@test "a reschedule is a PUT writeback: 200 API0007, pending, then the appointment moved" {
	connect
	seed_two
	data appointments/A1 -X PUT -d "$PUT_A1"
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.http_code, .http_code_desc, .error_code, .long_message]' <<<"$body")" '["200","OK","API0007","Id:275495"]'
	all_strings "$body"
	assert_equal "$(poll 275495)" '["False","False","",""]'
	assert_equal "$(appt A1)" '["2026-12-01T00:00:00","09:00","30","DR1","Scheduled"]'
	assert_equal "$(poll 275495)" '["True","False","Success",""]'
	all_strings "$body"
	data 'writeback_status?id=275495' # poll ran in a subshell: read the answer again
	assert_equal "$(jq -c '.items[0] | [.api_name, .method]' <<<"$body")" '["appointments","PUT"]'
	assert_equal "$(appt A1)" '["2026-12-02T00:00:00","11:00","45","DR2","Scheduled"]'
	assert_equal "$(ctl counters | jq -c '[.writebacks, .requests["PUT /v4/appointments/A1"]]')" '[1,1]'
}

@test "a reschedule onto another appointment of the provider fails at completion; onto its own time it does not" {
	connect
	seed_two
	ctl writeback '{"pending_polls":0}' >/dev/null
	data appointments/A1 -X PUT -d '{"patient_id":"P1","date":"2026-12-01","time":"09:45","provider_id":"DR1","length":"30","practice_id":"1"}'
	assert_equal "$code" 200
	assert_equal "$(poll 275495)" '["True","True","Slot not available: overlaps appointment A9.",""]'
	assert_equal "$(appt A1)" '["2026-12-01T00:00:00","09:00","30","DR1","Scheduled"]'

	data appointments/A1 -X PUT -d '{"patient_id":"P1","date":"2026-12-01","time":"09:15","provider_id":"DR1","length":"30","practice_id":"1"}'
	assert_equal "$(poll 275496)" '["True","False","Success",""]'
	assert_equal "$(appt A1)" '["2026-12-01T00:00:00","09:15","30","DR1","Scheduled"]'
}

@test "a cancel is a PATCH writeback: 200 API0007, then the appointment is broken; cancelling it again fails" {
	connect
	seed_two
	data appointments/A1 -X PATCH -d "$CANCEL"
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.http_code, .error_code, .long_message]' <<<"$body")" '["200","API0007","Id:275495"]'
	assert_equal "$(poll 275495)" '["False","False","",""]'
	assert_equal "$(appt A1 | jq -r '.[4]')" Scheduled
	assert_equal "$(poll 275495)" '["True","False","Success",""]'
	data 'writeback_status?id=275495' # poll ran in a subshell: read the answer again
	assert_equal "$(jq -c '.items[0] | [.api_name, .method]' <<<"$body")" '["appointments","PATCH"]'
	# Still listed, as broken; the other appointment is untouched.
	data 'appointments?patient_id=P1'
	assert_equal "$(jq -c '[.items[] | [.appointment_sr_no, .status]]' <<<"$body")" '[["A1","Broken"]]'
	assert_equal "$(appt A9 | jq -r '.[4]')" Scheduled

	data appointments/A1 -X PATCH -d "$CANCEL"
	assert_equal "$code" 200
	poll 275496 >/dev/null
	assert_equal "$(poll 275496)" '["True","True","Appointment A1 is broken.",""]'
	# A broken appointment cannot be moved either.
	ctl writeback '{"pending_polls":0}' >/dev/null
	data appointments/A1 -X PUT -d "$PUT_A1"
	assert_equal "$(poll 275497)" '["True","True","Appointment A1 is broken.",""]'
}

@test "a new patient is a POST /v4/patient writeback: 201 API2016, then the patient exists" {
	connect
	seed_two
	data patient -d "$NEW_PATIENT"
	assert_equal "$code" 201
	assert_equal "$(jq -c '[.http_code, .http_code_desc, .error_code, .long_message]' <<<"$body")" '["201","Created","API2016","Id:275495"]'
	assert_equal "$(poll 275495)" '["False","False","",""]'
	data 'patients?cell=5553217654'
	assert_equal "$(jq -r .total_count <<<"$body")" 0
	result=$(poll 275495)
	created=$(jq -r '.[3]' <<<"$result")
	assert_regex "$created" '^[0-9]+$'
	assert_equal "$result" "[\"True\",\"False\",\"Success\",\"$created\"]"
	data 'writeback_status?id=275495' # poll ran in a subshell: read the answer again
	assert_equal "$(jq -c '.items[0] | [.api_name, .method]' <<<"$body")" '["patient","POST"]'
	data "patients?patient_id=$created"
	assert_equal "$(jq -c '.items[0] | [.firstname, .lastname, .cell, .email, .birthdate, .practice_id, .status]' <<<"$body")" \
		'["Sam","Okafor","+15553217654","sam@example.com","1985-07-19T00:00:00","1","Active"]'
	all_strings "$body"
}

@test "the new writebacks check the request key, the practice, the appointment and the body" {
	connect
	seed_two
	# Another office's key: its appointments are not this office's.
	ctl practices '[{"office_id":"D36225"},{"office_id":"D2"}]' >/dev/null
	ctl access '{"office_id":"D2"}' >/dev/null
	other=$(ctl issue '{"office_id":"D2"}' | jq -r .request_key)
	call "$FAKE_SIKKA/v4/appointments/A1" -X PATCH -H "Request-Key: $other" -d "$CANCEL"
	assert_equal "$code" 404
	assert_equal "$(envelope "$body")" '["404","NotFound","API2009"]'

	call "$FAKE_SIKKA/v4/appointments/A1" -X PATCH -d "$CANCEL"
	assert_equal "$code" 400
	assert_equal "$(jq -r .error_code <<<"$body")" API1004
	call "$FAKE_SIKKA/v4/patient" -H 'Request-Key: 0123456789abcdef0123456789abcdef' -d "$NEW_PATIENT"
	assert_equal "$code" 401
	assert_equal "$(jq -r .error_code <<<"$body")" API2007

	data appointments/A404 -X PATCH -d "$CANCEL"
	assert_equal "$code" 404
	assert_equal "$(envelope "$body")" '["404","NotFound","API2009"]'
	assert_equal "$(jq -r .long_message <<<"$body")" 'Appointment A404 was not found.'
	all_strings "$body"
	data appointments/A404 -X PUT -d "$PUT_A1"
	assert_equal "$code" 404

	# check: METHOD PATH BODY STATUS CODE
	check() {
		data "$2" -X "$1" -d "$3"
		assert_equal "$code $(jq -r .error_code <<<"$body")" "$4 $5"
	}
	check PATCH appointments/A1 '{"op":"replace","path":"/appointment_status","value":"broken"}' 400 API1020
	check PATCH appointments/A1 '{"op":"replace","path":"/appointment_status","value":"broken","practice_id":"7"}' 400 API1026
	check PATCH appointments/A1 '{"op":"replace","path":"/appointment_status","value":"broken","practice_id":"1"' 400 API1026
	check PATCH appointments/A1 "[$CANCEL]" 400 API1026
	check PATCH appointments/A1 '{"op":"add","path":"/appointment_status","value":"broken","practice_id":"1"}' 400 API1026
	check PATCH appointments/A1 '{"op":"replace","path":"/date","value":"2026-12-09","practice_id":"1"}' 400 API1026
	check PATCH appointments/A1 '{"op":"replace","path":"/appointment_status","value":"scheduled","practice_id":"1"}' 400 API1026
	check PATCH appointments/A1 '{"path":"/appointment_status","value":"broken","practice_id":"1"}' 400 API1020
	check PUT appointments/A1 '{"patient_id":"P1","time":"11:00","provider_id":"DR1","length":"30","practice_id":"1"}' 400 API1020
	check PUT appointments/A1 '{"patient_id":"P1","date":"12/02/2026","time":"11:00","provider_id":"DR1","length":"30","practice_id":"1"}' 400 API1026
	check PUT appointments/A1 '{"patient_id":"P1","date":"2026-12-02","time":"11am","provider_id":"DR1","length":"30","practice_id":"1"}' 400 API1026
	check PUT appointments/A1 '{"patient_id":"P1","date":"2026-12-02","time":"11:00","provider_id":"DR1","length":"30abc","practice_id":"1"}' 400 API1026
	check PUT appointments/A1 '{"patient_id":"P2","date":"2026-12-02","time":"11:00","provider_id":"DR1","length":"30","practice_id":"1"}' 400 API1026
	check PUT appointments/A1 'not json' 400 API1026
	check POST patient '{"firstname":"Sam","practice_id":"1"}' 400 API1020
	check POST patient '{"firstname":"Sam","lastname":"Okafor"}' 400 API1020
	check POST patient '{"firstname":"Sam","lastname":"Okafor","birthdate":"07/19/1985","practice_id":"1"}' 400 API1026
	check POST patient '"Sam Okafor"' 400 API1026
	check GET appointments/A1 '' 405 API1026
	check DELETE appointments/A1 '' 405 API1026
	check PUT patient "$NEW_PATIENT" 405 API1026
	# Nothing was queued, nothing changed.
	assert_equal "$(ctl counters | jq .writebacks)" 0
	assert_equal "$(appt A1)" '["2026-12-01T00:00:00","09:00","30","DR1","Scheduled"]'
}

@test "the new writebacks can stay pending or fail, like a booking, and change nothing then" {
	connect
	seed_two
	ctl writeback '{"pending_polls":-1}' >/dev/null
	data appointments/A1 -X PUT -d "$PUT_A1"
	data appointments/A9 -X PATCH -d "$CANCEL"
	data patient -d "$NEW_PATIENT"
	for id in 275495 275496 275497; do
		for i in 1 2 3; do
			assert_equal "$(poll $id)" '["False","False","",""]'
		done
	done
	assert_equal "$(ctl state | jq -c '[.writebacks[] | [.id, .polls, .is_completed]]')" \
		'[["275495",3,false],["275496",3,false],["275497",3,false]]'

	ctl writeback '{"pending_polls":1,"fail":true,"result":"The PMS record is locked."}' >/dev/null
	data appointments/A1 -X PUT -d "$PUT_A1"
	data appointments/A9 -X PATCH -d "$CANCEL"
	data patient -d "$NEW_PATIENT"
	for id in 275498 275499 275500; do
		poll $id >/dev/null
		assert_equal "$(poll $id)" '["True","True","The PMS record is locked.",""]'
	done
	assert_equal "$(appt A1)" '["2026-12-01T00:00:00","09:00","30","DR1","Scheduled"]'
	assert_equal "$(appt A9 | jq -r '.[4]')" Scheduled
	data 'patients?lastname=okafor'
	assert_equal "$(jq -r .total_count <<<"$body")" 0

	# An offline SPU keeps them pending, or refuses them at once with check_spu.
	ctl writeback '{"pending_polls":0,"fail":false}' >/dev/null
	ctl spu '{"office_id":"D36225","online":false}' >/dev/null
	data appointments/A9 -X PATCH -d "$CANCEL"
	assert_equal "$(poll 275501)" '["False","False","",""]'
	data appointments/A9 -X PATCH -d '{"op":"replace","path":"/appointment_status","value":"broken","practice_id":"1","check_spu":"true"}'
	assert_equal "$code" 412
	assert_equal "$(envelope "$body")" '["412","PreconditionFailed","API2017"]'
	ctl spu '{"office_id":"D36225","online":true}' >/dev/null
	assert_equal "$(poll 275501)" '["True","False","Success",""]'
}

@test "the new writebacks take the fault mechanism's 5xx and latency" {
	connect
	seed_two
	ctl faults '[{"method":"PATCH","path":"/v4/appointments/*","status":503},{"method":"PUT","path":"/v4/appointments/A1","status":500},{"method":"POST","path":"/v4/patient","status":502}]' >/dev/null
	data appointments/A1 -X PATCH -d "$CANCEL"
	assert_equal "$code $(envelope "$body")" '503 ["503","ServiceUnavailable","API2002"]'
	data appointments/A1 -X PUT -d "$PUT_A1"
	assert_equal "$code $(envelope "$body")" '500 ["500","InternalServerError","API2001"]'
	data patient -d "$NEW_PATIENT"
	assert_equal "$code $(envelope "$body")" '502 ["502","BadGateway","API2001"]'
	assert_equal "$(ctl counters | jq -c '[.faults, .writebacks]')" '[3,0]'

	ctl latency '{"ms":300}' >/dev/null
	run curl -sS -o /dev/null -w '%{http_code} %{time_total}' -X PATCH -H "Request-Key: $KEY" -d "$CANCEL" "$FAKE_SIKKA/v4/appointments/A1"
	read -r c t <<<"$output"
	assert_equal "$c" 200
	awk -v t="$t" 'BEGIN { exit !(t >= 0.3) }'
	assert_equal "$(ctl counters | jq .writebacks)" 1
}

@test "appointments are listed for one patient: patient_id filters, with the date range" {
	connect
	ctl seed '{"office_id":"D36225","appointments":[
		{"appointment_sr_no":"A1","patient_id":"P1","provider_id":"DR1","date":"2026-12-01","time":"09:00"},
		{"appointment_sr_no":"A2","patient_id":"P1","provider_id":"DR1","date":"2026-12-20","time":"08:00"},
		{"appointment_sr_no":"A3","patient_id":"P2","provider_id":"DR1","date":"2026-12-10","time":"10:00"},
		{"appointment_sr_no":"A4","patient_id":"P10","provider_id":"DR1","date":"2026-12-11","time":"10:00"}]}' >/dev/null
	data 'appointments?patient_id=P1'
	assert_equal "$(jq -c '[.total_count, [.items[].appointment_sr_no]]' <<<"$body")" '["2",["A1","A2"]]'
	data 'appointments?patient_id=P1&startdate=2026-12-05&enddate=2027-03-05'
	assert_equal "$(jq -c '[.items[].appointment_sr_no]' <<<"$body")" '["A2"]'
	data 'appointments?patient_id=P3'
	assert_equal "$(jq -c '[.total_count, .items]' <<<"$body")" '["0",[]]'
}

@test "without show=all authorized_practices lists only location 1 of a multi-location office" {
	ctl practices '[{"office_id":"D7","practice_id":"1","practice_name":"Main St"},{"office_id":"D7","practice_id":"2","practice_name":"Oak Ave"},{"office_id":"D8","practice_id":"3"}]' >/dev/null
	call "$FAKE_SIKKA/v4/authorized_practices" -H 'App-Id: test-app' -H 'App-Key: test-key'
	assert_equal "$code" 200
	assert_equal "$(jq -c '[.total_count, [.items[] | [.office_id, .practice_id]]]' <<<"$body")" '["1",[["D7","1"]]]'
	practices
	assert_equal "$(jq -c '[.total_count, [.items[] | [.office_id, .practice_id, .customer_id]]]' <<<"$body")" \
		'["3",[["D7","1","MC-D7"],["D7","2","MC-D7"],["D8","3","MC-D8"]]]'
	all_strings "$body"
}

@test "DELETE /v4/refresh_key needs the app credentials, then revokes the key: it no longer refreshes" {
	connect
	call -X DELETE "$FAKE_SIKKA/v4/refresh_key" -H 'App-Id: test-app' -H 'App-Key: nope' \
		-H 'Content-Type: application/json' -d "{\"refresh_key\":\"$REFRESH\"}"
	assert_equal "$code" 401
	assert_equal "$(jq -r .error_code <<<"$body")" API2003
	call -X DELETE "$FAKE_SIKKA/v4/refresh_key" -H 'App-Id: test-app' -H 'App-Key: test-key' \
		-H 'Content-Type: application/json' -d '{}'
	assert_equal "$code" 400
	assert_equal "$(jq -r .error_code <<<"$body")" API1020
	call -X DELETE "$FAKE_SIKKA/v4/refresh_key" -H 'App-Id: test-app' -H 'App-Key: test-key' \
		-H 'Content-Type: application/json' -d "{\"refresh_key\":\"$REFRESH\"}"
	assert_equal "$code" 200
	all_strings "$body"
	assert_equal "$(ctl counters | jq -c .revoked_refresh)" '{"D36225":1}'
	grant "\"grant_type\":\"refresh_key\",\"refresh_key\":\"$REFRESH\""
	assert_equal "$code" 401
	assert_equal "$(jq -r .error_code <<<"$body")" API2007
	call -X DELETE "$FAKE_SIKKA/v4/refresh_key" -H 'App-Id: test-app' -H 'App-Key: test-key' \
		-H 'Content-Type: application/json' -d "{\"refresh_key\":\"$REFRESH\"}"
	assert_equal "$code" 401
}

@test "/__fake/registration produces the marketplace's PascalCase body for an office, every value a string" {
	ctl practices '[{"office_id":"D7","practice_name":"Main St Dental"}]' >/dev/null
	run ctl "registration?office_id=D7&email=a@example.com"
	assert_success
	assert_equal "$(jq -c '[.MasterCustomerID, .EmailAddress, .PracticeName, .Source, (keys | length)]' <<<"$output")" \
		'["MC-D7","a@example.com","Main St Dental","Sikka",14]'
	all_strings "$output"
	first=$(jq -r .PartnerRegistrationID <<<"$output")
	run ctl registration '{"customer_id":"MC-NEW","kind":"cancel","registration_id":"PR-9"}'
	assert_equal "$(jq -c '[.MasterCustomerID, .PartnerRegistrationID, has("CancelDate"), has("Order#")]' <<<"$output")" \
		'["MC-NEW","PR-9",true,true]'
	refute [ "$first" = PR-9 ]
}
