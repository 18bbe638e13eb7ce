# bash completion for parlae.
# The candidates come from `parlae __complete WORD...`, which reads parlae's own command table
# (and the database, for account ids), so nothing here lists commands or options by hand.

_parlae() {
	local prog=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} keep i w
	local -a words=() cands=()

	# Complete with the parlae being typed when it is a path (./parlae), else the one on PATH.
	[[ $prog == */* && -x $prog ]] || prog=parlae

	# bash splits words at COMP_WORDBREAKS (= and :); parlae wants them whole: --color=never.
	for ((i = 1; i <= COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if ((${#words[@]})) && [[ $w == [=:] || ${words[${#words[@]} - 1]} == *[=:] ]]; then
			words[${#words[@]} - 1]+=$w
		else
			words+=("$w")
		fi
	done
	((${#words[@]})) || words=("")

	mapfile -t cands < <(command "$prog" __complete "${words[@]}" 2>/dev/null)

	# bash replaces only the part of the word after the last break: drop what comes before it.
	keep=${words[${#words[@]} - 1]}
	keep=${keep%"$cur"}
	COMPREPLY=()
	for w in "${cands[@]}"; do
		[[ $w == "$keep"* ]] && COMPREPLY+=("${w#"$keep"}")
	done
	# An option that takes its value after '=' (--color=) is not finished yet.
	if ((${#COMPREPLY[@]} == 1)) && [[ ${COMPREPLY[0]} == *= ]]; then
		compopt -o nospace 2>/dev/null
	fi
	return 0
}

complete -F _parlae parlae
