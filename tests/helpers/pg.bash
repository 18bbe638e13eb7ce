# A throwaway PostgreSQL: initdb in a temp dir, a unix socket in that dir, no TCP.
# PostgreSQL's server programs refuse to run as root, so as root they run as `nobody`.
# Usage: pg_start DIR   (exports PL_PG_SOCK, PL_PG_PORT, PL_PG_ADMIN) ; pg_stop DIR

pg_bindir() {
	local d
	d=$(pg_config --bindir 2>/dev/null)
	if [ -x "$d/initdb" ]; then echo "$d"; return; fi
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && { echo "$d"; return; }
	done
	echo "pg_start: no initdb found (install postgresql)" >&2
	return 1
}

pg_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	local dir=$1 bin port
	bin=$(pg_bindir) || return 1
	mkdir -p "$dir/data" "$dir/sock"
	[ "$(id -u)" = 0 ] && chown nobody "$dir" "$dir/data" "$dir/sock"
	chmod 700 "$dir/data"
	chmod 755 "$dir" "$dir/sock"
	pg_as_owner "$bin/initdb" -D "$dir/data" -U pgadmin --auth=trust -E UTF8 --no-locale \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
	port=$((20000 + RANDOM % 20000))
	pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-k $dir/sock -c listen_addresses= -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
		start >"$dir/pg_ctl.log" 2>&1 || { cat "$dir/pg_ctl.log" "$dir/server.log" >&2; return 1; }
	export PL_PG_DIR=$dir PL_PG_SOCK=$dir/sock PL_PG_PORT=$port PL_PG_BIN=$bin
	export PL_PG_ADMIN="host=$dir/sock port=$port user=pgadmin dbname=postgres"
	# The role parlae runs as in production: owns its database, is not a superuser.
	psql -XAtq -v ON_ERROR_STOP=1 "$PL_PG_ADMIN" \
		-c "CREATE ROLE parlae LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" >/dev/null
}

pg_stop() {
	local dir=$1
	[ -d "$dir/data" ] || return 0
	pg_as_owner "$(pg_bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
	rm -rf "$dir"
}

# A fresh database owned by the parlae role; prints its libpq URL (as that owner).
pg_new_database() {
	local name=$1
	psql -XAtq -v ON_ERROR_STOP=1 "$PL_PG_ADMIN" -c "CREATE DATABASE \"$name\" OWNER parlae" >/dev/null || return 1
	echo "host=$PL_PG_SOCK port=$PL_PG_PORT user=parlae dbname=$name"
}

# sql/roles.sql as the superuser at ADMIN_URL, one run at a time: roles belong to the whole
# cluster, and suites running side by side would otherwise alter the same role at once
# ("tuple concurrently updated").
pg_roles_sql() { # ADMIN_URL PSQL_ARGS...
	local admin=$1
	shift
	flock "$PL_PG_DIR/roles.lock" psql -X "$admin" "$@" -f "$PL_TOP/sql/roles.sql"
}

# Run sql/roles.sql on a migrated database (OWNER_URL) as the superuser, as a database
# administrator would; prints the URL the commands use: the parlae_app role's.
pg_grant_app() {
	local url=$1 db=${1##*dbname=}
	pg_roles_sql "$PL_PG_ADMIN" -q -v ON_ERROR_STOP=1 -v db="$db" >/dev/null || return 1
	echo "${url/user=parlae/user=parlae_app}"
}

# Migrate a database as its owner (OWNER_URL), then pg_grant_app.
pg_migrate_as_app() {
	PARLAE_DATABASE_URL=$1 "$PARLAE_BIN" db migrate >/dev/null && pg_grant_app "$1"
}

# pg_new_database and pg_migrate_as_app in one.
pg_new_app_database() {
	local url
	url=$(pg_new_database "$1") && pg_migrate_as_app "$url"
}
