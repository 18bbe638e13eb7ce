/* Decoding the redirect the practice's browser landed on (code, state, error, office_id). */
#include "pms.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encode.h"
#include "utf8.h"
#include "banned.h"

void pl_pms_redirect_release(struct pl_pms_redirect *r)
{
	char **fields[] = {&r->code, &r->state, &r->error, &r->office_id, &r->practice_id};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (*fields[i])
			explicit_bzero(*fields[i], strlen(*fields[i]));
		free(*fields[i]);
		*fields[i] = NULL;
	}
}

/* Percent-decoding as browsers encode queries ('+' is a space); NUL bytes are refused. */
static char *query_decode(const char *s, size_t n)
{
	struct pl_buf b = PL_BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 2 < n ? pl_hex_digit((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? pl_hex_digit((unsigned char)s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi | lo) == 0) {
				pl_buf_release(&b);
				return NULL;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		pl_buf_addch(&b, c);
	}
	return pl_buf_detach(&b, NULL);
}

int pl_pms_parse_redirect(const char *url, struct pl_pms_redirect *out, struct pl_err *err)
{
	const char *q = strchr(url, '?'), *end;

	memset(out, 0, sizeof(*out));
	if (strlen(url) > 8192)
		return pl_err_set(err, PL_EBADINPUT, "the redirect URL is longer than 8 KiB");
	q = q ? q + 1 : url; /* a bare query string is accepted too */
	end = q + strcspn(q, "#\r\n");
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q)), *eq;
		size_t len = amp ? (size_t)(amp - q) : (size_t)(end - q);
		char **field = NULL;
		char *value;

		eq = memchr(q, '=', len);
		if (eq) {
			size_t klen = (size_t)(eq - q);

			if (klen == 4 && !strncmp(q, "code", 4))
				field = &out->code;
			else if (klen == 5 && !strncmp(q, "state", 5))
				field = &out->state;
			else if (klen == 5 && !strncmp(q, "error", 5))
				field = &out->error;
			else if (klen == 9 && !strncmp(q, "office_id", 9))
				field = &out->office_id;
		}
		if (field) {
			value = query_decode(eq + 1, len - (size_t)(eq + 1 - q));
			if (!value || *field || !pl_utf8_valid(value, strlen(value))) {
				free(value);
				pl_pms_redirect_release(out);
				return pl_err_set(
				    err, PL_EBADINPUT,
				    "the redirect URL has a malformed or repeated '%.*s'",
				    (int)(eq - q), q);
			}
			*field = value;
		}
		q += len + (amp ? 1 : 0);
	}
	if (!out->state) {
		pl_pms_redirect_release(out);
		pl_err_set(err, PL_EBADINPUT, "the redirect URL has no state");
		return pl_err_hint(err, "paste the whole URL the practice's browser landed on");
	}
	if (!out->code && !out->error) {
		pl_pms_redirect_release(out);
		return pl_err_set(err, PL_EBADINPUT,
		                  "the redirect URL has neither a code nor an error");
	}
	return 0;
}
