/*
 * "Did you mean ...?": the nearest of a set of names to one that was mistyped, for commands,
 * options, account ids, config keys and tool names alike.
 */
#ifndef PL_SUGGEST_H
#define PL_SUGGEST_H

#include <stddef.h>

/*
 * The candidate nearest to word by Damerau-Levenshtein distance (optimal string alignment:
 * an insertion, a deletion, a substitution or a swap of two neighbours is one edit), when it
 * is at most 2 edits away and fewer edits than word is long; NULL otherwise. The first of
 * equally near candidates wins; NULL candidates and ones longer than 127 bytes are skipped.
 * Returns one of cands, not a copy.
 */
const char *pl_suggest(const char *word, const char *const *cands, size_t n);

#endif
