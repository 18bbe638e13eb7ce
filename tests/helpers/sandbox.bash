# The demo's local services, shared by tests/demo (make demo) and tests/sandbox (make sandbox,
# make sandbox-stop): a PostgreSQL whose data is kept in .demo/pg, and the upstream fakes of
# tests/fakes/ (Sikka, whose state is kept in .demo/sandbox/sikka-state.json, and Twilio), each
# on 127.0.0.1 with its port, pid and log in .demo/sandbox/.
# The caller sets `top` (the project), loads helpers/pg.bash, defines die(), and calls sb_init.

sb_init() {
	demo=$top/.demo
	pgdir=$demo/pg
	sbdir=$demo/sandbox
	port=5432 # the socket lives in a private directory, so the usual port cannot clash
	pgbin=$(pg_bindir) || die "PostgreSQL is not installed (make installs it: run 'make demo')"
}

# PostgreSQL refuses to run as root; as pg.bash does, as root the server runs as nobody, which
# must reach its data directory. Root's home is 0700 on Debian, so a clone there keeps its
# cluster in /var/lib/parlae-demo/ID (ID from the clone's path; kept between runs like .demo)
# and .demo/pg is a link to it. A fresh .demo (after `rm -rf .demo`) starts that cluster over.
sb_place_pgdir() {
	local id home
	if [ "$(id -u)" != 0 ]; then
		mkdir -p "$pgdir"
		chmod 755 "$pgdir"
		return 0
	fi
	if [ -L "$pgdir" ]; then
		pgdir=$(readlink -f "$pgdir")
		[ -d "$pgdir" ] || die "$demo/pg points to $pgdir, which is gone: rm -rf .demo to start over"
		return 0
	fi
	mkdir -p "$pgdir"
	chmod 755 "$pgdir"
	chown nobody "$pgdir"
	runuser -u nobody -- test -x "$pgdir" && return 0
	# Unreachable, so it has never held a cluster the server could use.
	id=$(printf '%s' "$top" | sha256sum | cut -c1-16)
	home=/var/lib/parlae-demo/$id
	mkdir -p /var/lib/parlae-demo
	chmod 755 /var/lib/parlae-demo
	rm -rf "$home"
	mkdir -m 755 "$home"
	chown nobody "$home"
	rm -rf "$pgdir"
	ln -s "$home" "$pgdir"
	echo "(.demo is not reachable by the user the server runs as: the cluster lives in $home)"
	pgdir=$home
}

# The socket path must fit in sun_path (107 bytes); a deep checkout gets a short directory in
# /tmp, the same one each time (named after the clone, so that a restarted sandbox is where
# .demo/env says), recorded in .demo/sandbox/sock-dir so that whoever stops the server removes it.
sb_socket_dir() {
	sock=$pgdir/sock
	if [ $((${#sock} + 18)) -gt 107 ]; then
		sock=/tmp/parlae-demo-sock.$(id -u).$(printf '%s' "$top" | sha256sum | cut -c1-12)
		# Left by an earlier run, it is ours (or, as root, the server's user's); else not ours.
		if [ -L "$sock" ] || { [ -e "$sock" ] && ! { [ -O "$sock" ] ||
			{ [ "$(id -u)" = 0 ] && [ "$(stat -c %U "$sock")" = nobody ]; }; }; }; then
			die "$sock is in the way (not a directory of ours): remove it"
		fi
		mkdir -p "$sbdir"
		echo "$sock" >"$sbdir/sock-dir"
	fi
	mkdir -p "$sock"
	chmod 755 "$sock"
	[ "$(id -u)" = 0 ] && chown nobody "$sock"
	return 0
}

# The data directory, through .demo/pg's link if it is one (the server's user cannot pass $top).
sb_pgdata() { echo "$(readlink -f "$pgdir")/data"; }

sb_pg_running() {
	local data
	data=$(sb_pgdata)
	[ -f "$data/PG_VERSION" ] && pg_as_owner "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

# Start the demo's PostgreSQL, creating its data directory on the first run only; sets sock and
# admin (the superuser's connection string).
sb_pg_start() {
	mkdir -p "$demo"
	chmod 755 "$demo"
	sb_place_pgdir
	if [ ! -f "$pgdir/data/PG_VERSION" ]; then
		rm -rf "$pgdir/data"
		mkdir -p "$pgdir/data"
		chmod 700 "$pgdir/data"
		[ "$(id -u)" = 0 ] && chown nobody "$pgdir/data"
		pg_as_owner "$pgbin/initdb" -D "$pgdir/data" -U pgadmin --auth=trust -E UTF8 --no-locale \
			>"$pgdir/initdb.log" 2>&1 || { cat "$pgdir/initdb.log" >&2; die "initdb failed"; }
		echo "created a new cluster in .demo/pg/data"
	else
		echo "reusing the cluster in .demo/pg/data"
	fi
	# Left running by an interrupted run: stop it so that it listens where we expect.
	sb_pg_running && sb_pg_stop
	sb_socket_dir
	# fd 3 closed: the server outlives a sandbox started from bats, which waits for fd 3.
	pg_as_owner "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
		-o "-k $sock -c listen_addresses= -p $port" start >"$pgdir/pg_ctl.log" 2>&1 3>&- ||
		{ cat "$pgdir/pg_ctl.log" "$pgdir/server.log" >&2; die "PostgreSQL did not start"; }
	admin="host=$sock port=$port user=pgadmin dbname=postgres"
}

# Stop it if it runs, and remove a temp socket directory.
sb_pg_stop() {
	local d
	if sb_pg_running; then
		pg_as_owner "$pgbin/pg_ctl" -D "$(sb_pgdata)" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ -s "$sbdir/sock-dir" ]; then
		d=$(<"$sbdir/sock-dir")
		case $d in /tmp/parlae-demo-sock.*) [ -L "$d" ] || rm -rf "$d" ;; esac
		rm -f "$sbdir/sock-dir"
	fi
}

# A secret the demo generates once and keeps (mode 0600) in .demo/NAME: 32 random bytes in hex.
# Sets sb_made=1 when it had to make it.
sb_secret_file() {
	local f=$demo/$1
	if [ ! -s "$f" ]; then
		(umask 077 && openssl rand -hex 32 >"$f.tmp") || die "openssl rand failed"
		mv "$f.tmp" "$f"
		sb_made=1
	fi
	chmod 600 "$f"
}

# The Sikka application the sandbox knows (id and key) and the Twilio token: 0600 files, made
# on the first run; the key and the token reach the fakes through their control APIs (a
# command line would show them in ps).
sb_app_files() {
	if [ ! -s "$demo/sikka-app-id" ]; then
		(umask 077 && echo parlae-demo >"$demo/sikka-app-id")
	fi
	chmod 600 "$demo/sikka-app-id"
	sb_secret_file sikka-app-key
	sb_secret_file twilio-auth-token
}

# The process in PIDFILE if it is still the fake NAME (a pid can be reused after a reboot).
sb_fake_pid() { # NAME
	local pid
	pid=$(cat "$sbdir/$1.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && sb_alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "tests/fakes/$1\.py" || return 1
	echo "$pid"
}

# Start the fake NAME (tests/fakes/NAME.py ARGS...) in a session of its own, on the port it had
# before if that is free (an environment sourced earlier keeps working), else on any; sets
# sb_url. Its port, pid and log are .demo/sandbox/NAME.{port,pid,log}.
sb_fake_start() { # NAME ARGS...
	local name=$1 prev try pid
	shift
	mkdir -p "$sbdir"
	prev=$(cat "$sbdir/$name.port" 2>/dev/null) || prev=
	[[ $prev =~ ^[0-9]+$ ]] || prev=
	for try in $prev 0; do
		rm -f "$sbdir/$name.port"
		# In a session of its own, as pg_ctl does for the server: a ^C that a step shrugs
		# off does not take the sandbox away from the steps that follow.
		setsid python3 "$top/tests/fakes/$name.py" --port "$try" --port-file "$sbdir/$name.port" \
			"$@" </dev/null >"$sbdir/$name.log" 2>&1 3>&- &
		pid=$!
		echo "$pid" >"$sbdir/$name.pid"
		for _ in $(seq 1 400); do
			[ -s "$sbdir/$name.port" ] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if [ -s "$sbdir/$name.port" ]; then
			sb_url=http://127.0.0.1:$(<"$sbdir/$name.port")
			return 0
		fi
		kill "$pid" 2>/dev/null || true
		rm -f "$sbdir/$name.pid"
	done
	cat "$sbdir/$name.log" >&2
	die "the fake $name did not start (log: .demo/sandbox/$name.log)"
}

# Whether PID runs (a zombie does not: where init is slow to reap, kill -0 still finds it).
sb_alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# Stop the fake NAME if it runs; 0 if it was running.
sb_fake_stop() { # NAME
	local pid
	pid=$(sb_fake_pid "$1") || { rm -f "$sbdir/$1.pid"; return 1; }
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		sb_alive "$pid" || break
		sleep 0.05
	done
	if sb_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	rm -f "$sbdir/$1.pid"
	return 0
}

# POST JSON (on stdin) to a fake's control API: sb_control URL PATH.
sb_control() {
	curl -sS --fail-with-body -o /dev/null -X POST -H 'Content-Type: application/json' \
		--data-binary @- "$1/__fake/$2"
}

# The fake Sikka, remembering what it learnt (--state), with the demo's application; sets sikka.
sb_sikka_start() {
	sb_fake_start sikka --state "$sbdir/sikka-state.json"
	sikka=$sb_url
	printf '{"app_id":"%s","app_key":"%s"}' "$(<"$demo/sikka-app-id")" "$(<"$demo/sikka-app-key")" |
		sb_control "$sikka" app || die "could not configure the fake Sikka"
}

# The fake Twilio, for transferToHuman's SMS to the staff; sets twilio.
SB_TWILIO_SID=AC5a4db0c0a1d2e3f405162738495a6b7c
SB_TWILIO_FROM=+15550009999
sb_twilio_start() {
	sb_fake_start twilio --account-sid "$SB_TWILIO_SID"
	twilio=$sb_url
	printf '{"auth_token":"%s"}' "$(<"$demo/twilio-auth-token")" |
		sb_control "$twilio" account || die "could not configure the fake Twilio"
}
