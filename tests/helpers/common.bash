# Loaded by every suite: bats-assert, a private HOME, the suite's own database, helpers.
bats_load_library bats-support
bats_load_library bats-assert

# A command that succeeds says nothing on stderr unless the test says what it expects there:
# `assert_success` after `run --separate-stderr` also asserts an empty stderr;
# `assert_success --stderr REGEX` asserts that stderr matches REGEX instead. `run` forgets the
# previous run's stderr, so a merged run is never judged by an older one.
eval "$(declare -f run | sed '1s/^run /bats_run /')"
run() {
	unset stderr stderr_lines
	bats_run "$@"
}
eval "$(declare -f assert_success | sed '1s/^assert_success /bats_assert_success /')"
assert_success() {
	bats_assert_success || return
	[ -n "${stderr+set}" ] || return 0
	if [ "${1:-}" = --stderr ]; then
		[[ $stderr =~ $2 ]] || fail "stderr does not match '$2': $stderr"
	elif [ -n "$stderr" ]; then
		fail "the command succeeded but wrote to stderr: $stderr"
	fi
}

# Nothing from the environment of the person running the tests leaks in.
for v in $(env | sed -n 's/^\(PARLAE_[A-Z_]*\|SIKKA_[A-Z_]*\|VAPI_[A-Z_]*\|TWILIO_[A-Z_]*\|AWS_[A-Z_]*\|OPENAI_[A-Z_]*\|STRIPE_[A-Z_]*\|XDG_[A-Z_]*\|APP_BASE_URL\|DATABASE_URL\|NO_COLOR\)=.*/\1/p'); do
	case $v in PARLAE_BIN) ;; *) unset "$v" ;; esac
done
export PATH=$PL_TEST_BIN:$PATH
# tests/run traces every command of the run at -vv into one file (tests/helpers/trace-check).
[ -z "${PL_TRACE_FILE:-}" ] || export PARLAE_TRACE=$PL_TRACE_FILE

# One database per suite: audit rows cannot be deleted, so suites never share one. It starts
# empty, and PARLAE_DATABASE_URL connects as its owner, the role that migrates.
suite_setup() {
	local name
	name=t_$(basename "$BATS_TEST_FILENAME" .bats | tr -c 'a-z0-9\n' '_')
	export PARLAE_DATABASE_URL
	PARLAE_DATABASE_URL=$(pg_new_database "$name") || return 1
	echo "$PARLAE_DATABASE_URL" >"$BATS_FILE_TMPDIR/dburl"
}

# Migrate the suite's database as its owner, grant the roles (sql/roles.sql), and from then on
# connect as parlae_app, the role every command but db migrate runs as in production.
suite_migrate() {
	PARLAE_DATABASE_URL=$(pg_migrate_as_app "$PARLAE_DATABASE_URL") || return 1
	echo "$PARLAE_DATABASE_URL" >"$BATS_FILE_TMPDIR/dburl"
}

# The same for a suite that migrated its database itself.
suite_grant_app() {
	PARLAE_DATABASE_URL=$(pg_grant_app "$PARLAE_DATABASE_URL") || return 1
	echo "$PARLAE_DATABASE_URL" >"$BATS_FILE_TMPDIR/dburl"
}

setup_home() {
	export HOME=$BATS_TEST_TMPDIR/home
	mkdir -p "$HOME"
	export PARLAE_DATABASE_URL
	PARLAE_DATABASE_URL=$(cat "$BATS_FILE_TMPDIR/dburl")
}

. "$PL_TOP/tests/helpers/pg.bash"

# The suite's database URL as another role: db_url_as ROLE.
db_url_as() { sed "s/user=[^ ]*/user=$1/" <<<"$PARLAE_DATABASE_URL"; }

# SQL as the commands' role (PARLAE_DATABASE_URL), as the owner of parlae's tables (the role
# that migrates: what only the owner may do, such as ALTER TABLE), or as the superuser.
sql() { psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" -c "$1"; }
sql_owner() { psql -XAtq -v ON_ERROR_STOP=1 "$(db_url_as parlae)" -c "$1"; }
sql_admin() { psql -XAtq -v ON_ERROR_STOP=1 "$(db_url_as pgadmin)" -c "$1"; }

# A database URL nothing listens on, for "the database is down".
closed_db_url() { echo "host=$PL_PG_SOCK port=1 user=parlae dbname=nothing connect_timeout=2"; }

# Fails if any of the given values appears in the text.
refute_secrets_in() {
	local text=$1 v
	shift
	for v in "$@"; do
		if [[ $text == *"$v"* ]]; then
			echo "secret value found in output: ${v:0:4}..." >&2
			return 1
		fi
	done
}
