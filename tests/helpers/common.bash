# Loaded by every suite: bats-assert, a private HOME, the suite's own database, helpers.
# bats loads this file again in every test's own process. Done plainly (bats_load_library forks
# a dirname per library file, then declare -f | sed, env | sed) that took ~0.3 s of CPU per test,
# a third of make check's; so the first load of a run (tests/run sets PL_WORK) writes the
# functions it defined to one file, and every later load sources that file without a fork.
pl_prelude=
[ -z "${PL_WORK:-}" ] || pl_prelude=$PL_WORK/prelude.bash
if [ -n "$pl_prelude" ] && [ -f "$pl_prelude" ]; then
	. "$pl_prelude"
else
	pl_before=" $(declare -F | sed 's/^declare -[a-z-]* //' | tr '\n' ' ')"
	bats_load_library bats-support
	bats_load_library bats-assert
	# `run` and `assert_success` are wrapped below; these are bats' own, but for the file of
	# `run --separate-stderr`'s stderr: a fresh empty one named without forking mktemp (thousands
	# of runs), unique to the process and the run.
	eval "$(declare -f run | sed '1s/^run /bats_run /
		s|bats_run_separate_stderr_file="$(mktemp "${BATS_TEST_TMPDIR}/separate-stderr-XXXXXX")";|bats_run_separate_stderr_file=${BATS_TEST_TMPDIR}/separate-stderr-$BASHPID-$((++pl_run_count)); : >"$bats_run_separate_stderr_file" \|\| return;|')"
	eval "$(declare -f assert_success | sed '1s/^assert_success /bats_assert_success /')"
	if [ -n "$pl_prelude" ]; then
		pl_new=()
		for f in $(declare -F | sed 's/^declare -[a-z-]* //'); do
			[[ $pl_before == *" $f "* ]] || pl_new+=("$f")
		done
		declare -f "${pl_new[@]}" >"$pl_prelude.$$" && mv "$pl_prelude.$$" "$pl_prelude"
	fi
fi

# A command that succeeds says nothing on stderr unless the test says what it expects there:
# `assert_success` after `run --separate-stderr` also asserts an empty stderr;
# `assert_success --stderr REGEX` asserts that stderr matches REGEX instead. `run` forgets the
# previous run's stderr, so a merged run is never judged by an older one.
run() {
	unset stderr stderr_lines
	bats_run "$@"
}
assert_success() {
	bats_assert_success || return
	[ -n "${stderr+set}" ] || return 0
	if [ "${1:-}" = --stderr ]; then
		[[ $stderr =~ $2 ]] || fail "stderr does not match '$2': $stderr"
	elif [ -n "$stderr" ]; then
		fail "the command succeeded but wrote to stderr: $stderr"
	fi
}

# Nothing from the environment of the person running the tests leaks in: every exported
# variable of these names goes (PARLAE_BIN, the binary under test, stays).
for v in "${!PARLAE_@}" "${!SIKKA_@}" "${!VAPI_@}" "${!TWILIO_@}" "${!AWS_@}" "${!OPENAI_@}" \
	"${!STRIPE_@}" "${!XDG_@}" APP_BASE_URL DATABASE_URL NO_COLOR; do
	[[ $v =~ ^((PARLAE|SIKKA|VAPI|TWILIO|AWS|OPENAI|STRIPE|XDG)_[A-Z_]*|APP_BASE_URL|DATABASE_URL|NO_COLOR)$ ]] || continue
	[[ ${v@a} == *x* ]] || continue
	[ "$v" = PARLAE_BIN ] || unset "$v"
done
export PATH=$PL_TEST_BIN:$PATH
# tests/run traces every command of the run at -vv into one file (tests/helpers/trace-check).
[ -z "${PL_TRACE_FILE:-}" ] || export PARLAE_TRACE=$PL_TRACE_FILE

# build_c_tool NAME: tests/helpers/NAME.c linked against the libparlae.a built with the binary
# under test (the sanitizer build's beside .build/san/parlae), as $BATS_FILE_TMPDIR/NAME. Under
# tests/run it is built once for the whole run (in $PL_WORK/tools, ~0.3 s of CPU a build; the
# suites that use store-tool run side by side) and each suite gets a link to it.
build_c_tool() {
	local dir lib san=() out=$BATS_FILE_TMPDIR/$1
	dir=$(dirname "$PARLAE_BIN")
	lib=$PL_TOP/.build/default/libparlae.a
	if [ -f "$dir/libparlae.a" ]; then
		lib=$dir/libparlae.a
		[[ $dir == */.build/san ]] && san=(-fsanitize=address,undefined -fno-sanitize-recover=all)
	fi
	if [ -n "${PL_WORK:-}" ]; then
		mkdir -p "$PL_WORK/tools"
		out=$PL_WORK/tools/$1
		(
			flock 9 || exit
			[ -x "$out" ] && exit 0
			pl_cc_tool "$1" "$lib" "$out.tmp" "${san[@]}" && mv -f "$out.tmp" "$out"
		) 9>"$PL_WORK/tools/$1.lock" || return
		ln -sf "$out" "$BATS_FILE_TMPDIR/$1"
		return
	fi
	pl_cc_tool "$1" "$lib" "$out" "${san[@]}"
}
pl_cc_tool() { # NAME LIB OUT [SANITIZER FLAGS...]
	# shellcheck disable=SC2046
	cc -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$PL_TOP/lib" "${@:4}" \
		-o "$3" "$PL_TOP/tests/helpers/$1.c" "$2" -lpthread \
		$(pkg-config --libs libcurl jansson libpq openssl readline)
}

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
	read -r PARLAE_DATABASE_URL <"$BATS_FILE_TMPDIR/dburl"
}

. "$PL_TOP/tests/helpers/pg.bash"

# The suite's database URL as another role: db_url_as ROLE; pl_url_as ROLE sets REPLY to it
# without a subshell (sql_owner runs in every vapi test's setup).
pl_url_as() {
	local rest
	REPLY=$PARLAE_DATABASE_URL
	[[ $REPLY == *user=* ]] || return 0
	rest=${REPLY#*user=}
	if [[ $rest == *' '* ]]; then rest=" ${rest#* }"; else rest=; fi
	REPLY=${REPLY%%user=*}user=$1$rest
}
db_url_as() { pl_url_as "$1"; echo "$REPLY"; }

# SQL as the commands' role (PARLAE_DATABASE_URL), as the owner of parlae's tables (the role
# that migrates: what only the owner may do, such as ALTER TABLE), or as the superuser.
sql() { psql -XAtq -v ON_ERROR_STOP=1 "$PARLAE_DATABASE_URL" -c "$1"; }
sql_owner() { pl_url_as parlae; psql -XAtq -v ON_ERROR_STOP=1 "$REPLY" -c "$1"; }
sql_admin() { pl_url_as pgadmin; psql -XAtq -v ON_ERROR_STOP=1 "$REPLY" -c "$1"; }

# slurp VAR FILE: VAR holds FILE's text as "$(cat FILE)" would (its trailing newlines dropped),
# read without a process.
slurp() {
	IFS= read -r -d '' "$1" <"$2" || true
	printf -v "$1" '%s' "${!1%"${!1##*[!$'\n']}"}"
}

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
