#include "suggest.h"

#include <string.h>

#include "banned.h"

#define MAX_LEN 127

/* Optimal string alignment distance, in bytes, over three rows of the dynamic programme. */
static size_t distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t rows[3][MAX_LEN + 1], *prev2 = rows[0], *prev = rows[1], *cur = rows[2], *t;

	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);

			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < best)
				best = prev2[j - 2] + 1;
			cur[j] = best;
		}
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

const char *pl_suggest(const char *word, const char *const *cands, size_t n)
{
	size_t lw = strlen(word), best_d = (size_t)-1;
	const char *best = NULL;

	if (lw > MAX_LEN)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t lc, d;

		if (!cands[i] || (lc = strlen(cands[i])) > MAX_LEN)
			continue;
		d = distance(word, lw, cands[i], lc);
		if (d < best_d) {
			best_d = d;
			best = cands[i];
		}
	}
	return best && best_d <= 2 && best_d < lw ? best : NULL;
}
