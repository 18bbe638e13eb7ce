# fish completion for parlae.
# The candidates come from `parlae __complete WORD...`, which reads parlae's own command table
# (and the database, for account ids), so nothing here lists commands or options by hand.

function __parlae_complete
    # The words before the cursor, without the command name, then the one being completed
    # (quoted, so that an empty word is still passed).
    set -l words (commandline -opc)
    set -l prog $words[1]
    set -e words[1]
    set -l cur (commandline -ct)
    # Complete with the parlae being typed when it is a path (./parlae), else the one on PATH.
    if not string match -q -- '*/*' $prog; or not test -x $prog
        set prog parlae
    end
    command $prog __complete $words "$cur" 2>/dev/null
end

complete -c parlae -f -a '(__parlae_complete)'
