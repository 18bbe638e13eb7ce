/* Office hours: the --hours text of pms setup into the JSON that free slots are computed from. */
#include "pms.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encode.h"
#include "json.h"
#include "utf8.h"
#include "banned.h"

static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static int day_index(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n == 3 && !strncmp(s, days[i], 3))
			return i;
	return -1;
}

static int hours_error(struct pl_err *err, const char *part)
{
	pl_err_set(err, PL_EUSAGE, "--hours: cannot read '%.*s'", pl_utf8_cut(part, 60), part);
	return pl_err_hint(
	    err,
	    "write day ranges and times like 'mon-fri 08:00-12:00,13:00-17:00; sat 09:00-13:00'");
}

/* One "mon-fri 08:00-12:00,13:00-17:00" clause into ranges[day][...] (minutes). */
static int parse_clause(char *clause, json_t *week, struct pl_err *err)
{
	char *sp, *days_part, *times, *tok, *save = NULL;
	int from, to;

	while (isspace((unsigned char)*clause))
		clause++;
	sp = clause + strcspn(clause, " \t");
	if (!*sp)
		return hours_error(err, clause);
	*sp = '\0';
	days_part = clause;
	times = sp + 1;
	{
		char *dash = strchr(days_part, '-');

		from = day_index(days_part, dash ? (size_t)(dash - days_part) : strlen(days_part));
		to = dash ? day_index(dash + 1, strlen(dash + 1)) : from;
		if (from < 0 || to < 0 || to < from)
			return hours_error(err, days_part);
	}
	for (tok = strtok_r(times, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = tok, *dash;
		int a, b;

		while (isspace((unsigned char)*t))
			t++;
		for (char *e = t + strlen(t); e > t && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		dash = strchr(t, '-');
		if (!dash)
			return hours_error(err, t);
		*dash = '\0'; /* 24:00 ends a day; it starts none */
		a = pl_hhmm(t, 0);
		b = pl_hhmm(dash + 1, PL_HHMM_END);
		*dash = '-';
		if (a < 0 || b < 0 || b <= a)
			return hours_error(err, t);
		for (int d = from; d <= to; d++) {
			json_t *list = json_object_get(week, days[d]);
			char sa[6], sb[6];

			if (!list) {
				list = json_array();
				pl_json_set(week, days[d], list);
			}
			/* Ranges of a day are given in order and do not overlap. */
			if (json_array_size(list)) {
				const char *last = json_string_value(json_array_get(
				    json_array_get(list, json_array_size(list) - 1), 1));

				if (pl_hhmm(last, PL_HHMM_END) > a)
					return hours_error(err, t);
			}
			snprintf(sa, sizeof(sa), "%02d:%02d", a / 60, a % 60);
			snprintf(sb, sizeof(sb), "%02d:%02d", b / 60, b % 60);
			pl_json_append(list, json_pack("[s, s]", sa, sb));
		}
	}
	return 0;
}

int pl_pms_parse_hours(const char *spec, char **json_out, struct pl_err *err)
{
	char *copy = pl_xstrdup(spec), *clause, *save = NULL;
	json_t *week = json_object(), *ordered = json_object();
	int r = 0, any = 0;

	*json_out = NULL;
	for (clause = strtok_r(copy, ";", &save); clause && !r;
	     clause = strtok_r(NULL, ";", &save)) {
		if (!clause[strspn(clause, " \t\n")])
			continue; /* "a; ; b" and a trailing ';' */
		any = 1;
		r = parse_clause(clause, week, err);
	}
	if (!r && !any)
		r = hours_error(err, spec);
	if (!r) {
		for (int d = 0; d < 7; d++)
			if (json_object_get(week, days[d]))
				pl_json_set(ordered, days[d],
				            json_incref(json_object_get(week, days[d])));
		*json_out = pl_json_dump(ordered);
	}
	json_decref(week);
	json_decref(ordered);
	free(copy);
	return r;
}
