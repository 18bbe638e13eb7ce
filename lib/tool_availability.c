/*
 * checkAvailability: free slots on a day in the practice's timezone, from Sikka's own slot
 * search where the PMS has one, else office hours minus the day's booked appointments.
 */
#include "tool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encode.h"
#include "http.h"
#include "json.h"
#include "banned.h"

struct busy {
	int start, end;
	char provider[64];
};

static int overlaps_busy(const struct busy *b, size_t n, int start, int end, const char *provider)
{
	for (size_t i = 0; i < n; i++)
		if ((!provider || !*b[i].provider || !strcmp(provider, b[i].provider)) &&
		    start < b[i].end && b[i].start < end)
			return 1;
	return 0;
}

/* Office hours minus the day's booked appointments, in slots of `duration` aligned to each range.
 */
static int computed_slots(struct pl_tool_ctx *c, const char *date, int duration,
                          const char *provider, json_t *slots, struct pl_err *err)
{
	json_t *ranges = json_object_get(c->hours, pl_tool_weekday(pl_tool_day(date))), *range,
	       *doc = NULL, *a;
	struct busy *busy = NULL;
	struct pl_buf q = PL_BUF_INIT;
	size_t i, nbusy = 0;
	int r;

	if (!json_array_size(ranges))
		return 0; /* closed that day */
	pl_buf_addf(&q, "startdate=%s&enddate=%s", date, date);
	if (provider) {
		char *e = pl_http_escape(provider);

		pl_buf_addf(&q, "&provider_id=%s", e);
		free(e);
	}
	r = pl_tool_sikka(c, "GET", "/v4/appointments", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	busy = pl_xcalloc(json_array_size(pl_tool_items(doc)) + 1, sizeof(*busy));
	json_array_foreach(pl_tool_items(doc), i, a)
	{
		const char *st = pl_tool_field(a, "status");
		long long len = pl_tool_digits(pl_tool_field(a, "length"), PL_TOOL_UPSTREAM_MIN);
		int start = pl_hhmm(pl_tool_field(a, "time"), PL_HHMM_SECONDS);

		if (start < 0 ||
		    (st && (!strcasecmp(st, "cancelled") || !strcasecmp(st, "broken"))))
			continue;
		/* A length missing or unreadable ("30abc", "0"): the time stays taken, for the
		 * default length, rather than be offered as free. */
		busy[nbusy].start = start;
		busy[nbusy].end = start + (len > 0 ? (int)len : PL_TOOL_DURATION_DFL);
		snprintf(busy[nbusy].provider, sizeof(busy[nbusy].provider), "%s",
		         provider && pl_tool_field(a, "provider_id")
		             ? pl_tool_field(a, "provider_id")
		             : "");
		nbusy++;
	}
	json_array_foreach(ranges, i, range)
	{
		int from = pl_hhmm(json_string_value(json_array_get(range, 0)), PL_HHMM_SECONDS);
		int to = pl_hhmm(json_string_value(json_array_get(range, 1)),
		                 PL_HHMM_END | PL_HHMM_SECONDS);

		for (int t = from; t >= 0 && t + duration <= to; t += duration) {
			char s[6], e[6];

			if (!strcmp(date, c->today) && t < c->now_minute)
				continue;
			if (overlaps_busy(busy, nbusy, t, t + duration, NULL))
				continue;
			pl_tool_hhmm(t, s);
			pl_tool_hhmm(t + duration, e);
			pl_json_append(slots,
			               pl_json_x(json_pack("{s:s, s:s, s:s?}", "start", s, "end", e,
			                                   "providerId", provider)));
		}
	}
	free(busy);
	json_decref(doc);
	return 0;
}

/* Sikka's own free-slot search (Orthotrac, Dolphin, Planet DDS). */
static int native_slots(struct pl_tool_ctx *c, const char *date, int duration, const char *provider,
                        json_t *slots, struct pl_err *err)
{
	struct pl_buf q = PL_BUF_INIT;
	json_t *doc = NULL, *it;
	size_t i;
	int r;

	pl_buf_addf(&q, "startdate=%s&enddate=%s", date, date);
	if (provider) {
		char *e = pl_http_escape(provider);

		pl_buf_addf(&q, "&provider_id=%s", e);
		free(e);
	}
	r = pl_tool_sikka(c, "GET", "/v4/appointments_available_slots", q.buf, NULL, &doc, err);
	pl_buf_release(&q);
	if (r)
		return r;
	json_array_foreach(pl_tool_items(doc), i, it)
	{
		const char *t = pl_tool_field(it, "time") ? pl_tool_field(it, "time")
		                                          : pl_tool_field(it, "start_time");
		const char *len = pl_tool_field(it, "length");
		long long n = len ? pl_tool_digits(len, PL_TOOL_UPSTREAM_MIN) : duration;
		int start = pl_hhmm(t && strlen(t) > 10 ? t + 11 : t, PL_HHMM_SECONDS);
		int end = pl_tool_field(it, "end_time")
		              ? pl_hhmm(strlen(pl_tool_field(it, "end_time")) > 10
		                            ? pl_tool_field(it, "end_time") + 11
		                            : pl_tool_field(it, "end_time"),
		                        PL_HHMM_END | PL_HHMM_SECONDS)
		              : start + (int)n;
		char s[6], e[6];

		/* A free slot whose length cannot be read ("30abc", "0") is not offered. */
		if (start < 0 || (!pl_tool_field(it, "end_time") && n <= 0) ||
		    end - start < duration)
			continue;
		if (!strcmp(date, c->today) && start < c->now_minute)
			continue;
		pl_tool_hhmm(start, s);
		pl_tool_hhmm(start + duration, e);
		pl_json_append(
		    slots, pl_json_x(json_pack("{s:s, s:s, s:s?}", "start", s, "end", e,
		                               "providerId", pl_tool_field(it, "provider_id"))));
	}
	json_decref(doc);
	return 0;
}

int pl_tool_check_availability(struct pl_tool_ctx *c, const struct pl_tool_args *a, json_t **out,
                               struct pl_err *err)
{
	const char *provider = pl_tool_text(a, "providerId");
	long day = pl_tool_day(pl_tool_text(a, "date")), today = pl_tool_day(c->today);
	int duration = (int)pl_tool_num(a, "duration"), r;
	char date[11], msg[160];
	json_t *slots;

	/* A past date means the same weekday to come: callers say "Monday", the model guesses. */
	while (day < today)
		day += 7;
	pl_tool_date(day, date);
	slots = pl_json_x(json_array());
	r = c->native_slots ? native_slots(c, date, duration, provider, slots, err)
	                    : computed_slots(c, date, duration, provider, slots, err);
	if (r) {
		json_decref(slots);
		return r;
	}
	if (json_array_size(slots))
		snprintf(msg, sizeof(msg), "There are %zu openings on %s.", json_array_size(slots),
		         date);
	else
		snprintf(msg, sizeof(msg), "There are no openings on %s.", date);
	*out = pl_tool_result(json_array_size(slots) > 0, msg);
	pl_json_set(*out, "date", pl_json_x(json_string(date)));
	pl_json_set(*out, "timezone", pl_json_x(json_string(c->timezone)));
	pl_json_set(*out, "slots", slots);
	return 0;
}
