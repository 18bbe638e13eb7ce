#include "trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "banned.h"

static pl_trace_fn hook;
static void *hook_arg;
static int hook_level;

void pl_trace_set(pl_trace_fn fn, void *arg, int level)
{
	hook = fn;
	hook_arg = arg;
	hook_level = fn ? level : 0;
}

int pl_trace_on(int level)
{
	return hook && level <= hook_level;
}

void pl_trace(int level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (!pl_trace_on(level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hook(level, line, hook_arg);
}

/*
 * Both forms: "postgresql://user:PASSWORD@host/db" and "... password=PASSWORD ...".
 * Masking is textual so that it also works on strings libpq would reject.
 */
char *pl_trace_mask_conninfo(const char *s)
{
	struct pl_buf b = PL_BUF_INIT;
	const char *scheme = strstr(s, "://");

	if (scheme) {
		const char *auth = scheme + 3, *at = strchr(auth, '@'), *slash = strchr(auth, '/');
		const char *colon = strchr(auth, ':');

		if (at && (!slash || at < slash) && colon && colon < at) {
			pl_buf_add(&b, s, (size_t)(colon + 1 - s));
			pl_buf_adds(&b, "***");
			s = at;
		}
	}
	while (*s) {
		const char *p = strstr(s, "password=");

		if (!p || (p > s && p[-1] != ' ' && p[-1] != '?' && p[-1] != '&')) {
			if (!p) {
				pl_buf_adds(&b, s);
				break;
			}
			pl_buf_add(&b, s, (size_t)(p + 9 - s));
			s = p + 9;
			continue;
		}
		pl_buf_add(&b, s, (size_t)(p + 9 - s));
		pl_buf_adds(&b, "***");
		s = p + 9;
		if (*s == '\'') {
			for (s++; *s && *s != '\''; s++)
				if (*s == '\\' && s[1])
					s++;
			if (*s)
				s++;
		} else {
			s += strcspn(s, " &");
		}
	}
	return pl_buf_detach(&b, NULL);
}
