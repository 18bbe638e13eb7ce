# store-tool: put/get/delete in the secret store through libparlae (tests/helpers/store-tool.c),
# built against the library of the parlae under test (the sanitizer build's sits next to it).
# shellcheck shell=bash

build_store_tool() {
	local dir lib san=()
	dir=$(dirname "$PARLAE_BIN")
	lib=$PL_TOP/.build/default/libparlae.a
	if [ -f "$dir/libparlae.a" ]; then
		lib=$dir/libparlae.a
		[[ $dir == */.build/san ]] && san=(-fsanitize=address,undefined -fno-sanitize-recover=all)
	fi
	# shellcheck disable=SC2046
	cc -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$PL_TOP/lib" "${san[@]}" \
		-o "$BATS_FILE_TMPDIR/store-tool" "$PL_TOP/tests/helpers/store-tool.c" "$lib" \
		$(pkg-config --libs libcurl jansson libpq openssl)
}

store_tool() { "$BATS_FILE_TMPDIR/store-tool" "$@"; }
