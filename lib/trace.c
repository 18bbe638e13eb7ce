#include "trace.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "utf8.h"
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

/* A trace line is at most this long, cut between characters. */
#define TRACE_LINE_MAX 4096

void pl_trace(int level, const char *fmt, ...)
{
	struct pl_buf b = PL_BUF_INIT;
	va_list ap;

	if (!pl_trace_on(level))
		return;
	va_start(ap, fmt);
	pl_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	b.buf[pl_utf8_cut(b.buf, TRACE_LINE_MAX)] = '\0';
	hook(level, b.buf, hook_arg);
	pl_buf_release(&b);
}

/* libpq's keywords whose values are secrets. */
static int secret_keyword(const char *k, size_t n)
{
	return (n == 8 && !strncmp(k, "password", n)) || (n == 11 && !strncmp(k, "sslpassword", n));
}

/* The end of a key/value value starting at s: a quoted one with its escapes, or a bare word
 * (in which a backslash also escapes), as libpq reads them. */
static const char *kv_value_end(const char *s)
{
	if (*s == '\'') {
		for (s++; *s && *s != '\''; s++)
			if (*s == '\\' && s[1])
				s++;
		return *s ? s + 1 : s;
	}
	for (; *s && !isspace((unsigned char)*s); s++)
		if (*s == '\\' && s[1])
			s++;
	return s;
}

static void mask_into(struct pl_buf *b, const char *s, int depth);

/* "host=h password = 'p w' dbname=d": each value of a secret keyword becomes "***". */
static void mask_kv(struct pl_buf *b, const char *s, int depth)
{
	while (*s) {
		const char *k = s, *v, *end;
		size_t klen;

		if (isspace((unsigned char)*s) || *s == '=') {
			pl_buf_addch(b, *s++);
			continue;
		}
		while (*s && !isspace((unsigned char)*s) && *s != '=')
			s++;
		klen = (size_t)(s - k);
		v = s + strspn(s, " \t\n\r\f\v");
		if (*v != '=') {
			pl_buf_add(b, k, (size_t)(v - k));
			s = v;
			continue;
		}
		v++;
		v += strspn(v, " \t\n\r\f\v");
		pl_buf_add(b, k, (size_t)(v - k));
		end = kv_value_end(v);
		if (secret_keyword(k, klen)) {
			pl_buf_adds(b, "***");
		} else if (klen == 6 && !strncmp(k, "dbname", 6) && depth < 2) {
			/* A dbname can itself be a URI or a connection string. */
			int quoted = *v == '\'' && end - v >= 2 && end[-1] == '\'';
			char *inner =
			    pl_xstrndup(v + quoted, (size_t)(end - v) - 2 * (size_t)quoted);

			if (quoted)
				pl_buf_addch(b, '\'');
			mask_into(b, inner, depth + 1);
			if (quoted)
				pl_buf_addch(b, '\'');
			free(inner);
		} else {
			pl_buf_add(b, v, (size_t)(end - v));
		}
		s = end;
	}
}

/* postgresql://user:PASSWORD@host/db?password=PASSWORD&sslpassword=PASSWORD */
static void mask_uri(struct pl_buf *b, const char *s)
{
	const char *auth = strstr(s, "://") + 3, *query = strchr(auth, '?');
	const char *at = NULL, *colon;

	for (const char *p = auth; *p && p != query; p++)
		if (*p == '@')
			at = p; /* the last one: a password may hold an '@' that was not encoded */
	colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon) {
		pl_buf_add(b, s, (size_t)(colon + 1 - s));
		pl_buf_adds(b, "***");
		s = at;
	}
	if (!query) {
		pl_buf_adds(b, s);
		return;
	}
	pl_buf_add(b, s, (size_t)(query + 1 - s));
	for (s = query + 1; *s;) {
		size_t klen = strcspn(s, "=&"), vlen;

		pl_buf_add(b, s, klen);
		s += klen;
		if (*s == '=') {
			vlen = strcspn(s + 1, "&");
			pl_buf_addch(b, '=');
			if (secret_keyword(s - klen, klen))
				pl_buf_adds(b, "***");
			else
				pl_buf_add(b, s + 1, vlen);
			s += 1 + vlen;
		}
		if (*s == '&')
			pl_buf_addch(b, *s++);
	}
}

static void mask_into(struct pl_buf *b, const char *s, int depth)
{
	if (!strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11))
		mask_uri(b, s);
	else
		mask_kv(b, s, depth);
}

/*
 * Every form libpq reads a password in: key/value with spaces or tabs around '=', quoted
 * values with escaped quotes, sslpassword, a URI's user:password@ and its ?password= or
 * &password=, a dbname that is itself one of these. Masking is textual so that it also works
 * on strings libpq would reject.
 */
char *pl_trace_mask_conninfo(const char *s)
{
	struct pl_buf b = PL_BUF_INIT;

	mask_into(&b, s, 0);
	return pl_buf_detach(&b, NULL);
}
