# The manual pages rendered once per suite file (setup_file): they do not change while it runs,
# and man and groff take ~0.2 s of CPU a page, which suites asked for a hundred times.
# shellcheck shell=bash

# man_render_all [--warnings]: each man/*.1 as `man -P cat -l` shows it (MANWIDTH=200,
# LC_ALL=C.UTF-8, no pager or formatting settings), with what it wrote on stderr and its exit
# code; --warnings is man's (groff's warnings on stderr; the page itself is the same).
man_render_all() {
	local d=$BATS_FILE_TMPDIR/man
	mkdir -p "$d" || return
	(
		export MANWIDTH=200 LC_ALL=C.UTF-8
		unset MANPAGER PAGER MANROFFOPT MAN_KEEP_FORMATTING MANOPT MANPATH
		for f in "$PL_TOP"/man/*.1; do
			rc=0
			man "$@" -P cat -l "$f" >"$d/${f##*/}.out" 2>"$d/${f##*/}.err" || rc=$?
			echo "$rc" >"$d/${f##*/}.rc"
		done
	)
}

# man_cat PAGE: what `man -P cat -l man/PAGE` prints, on stdout and stderr, and its exit code;
# from man_render_all's files when they hold PAGE, else from man.
man_cat() {
	local f=$BATS_FILE_TMPDIR/man/$1 rc
	if [ ! -f "$f.rc" ]; then
		man -P cat -l "$PL_TOP/man/$1"
		return
	fi
	read -r rc <"$f.rc"
	cat "$f.out"
	cat "$f.err" >&2
	return "$rc"
}
