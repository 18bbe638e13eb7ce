#include "encode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "banned.h"

static const char hex_digits[] = "0123456789abcdef";

void pl_hex(const unsigned char *data, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_digits[data[i] >> 4];
		out[2 * i + 1] = hex_digits[data[i] & 15];
	}
	out[2 * n] = '\0';
}

int pl_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int pl_hex_decode(const char *s, size_t n, unsigned char *out)
{
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = pl_hex_digit((unsigned char)s[i]),
		    lo = pl_hex_digit((unsigned char)s[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void pl_base64_encode(struct pl_buf *out, const void *data, size_t len, int flags)
{
	const unsigned char *d = data;
	const char *tab = flags & PL_BASE64_URL ? b64_url : b64_std;

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)d[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (unsigned)d[i + 1] << 8;
		if (n > 2)
			v |= d[i + 2];
		pl_buf_addch(out, tab[(v >> 18) & 63]);
		pl_buf_addch(out, tab[(v >> 12) & 63]);
		if (n > 1)
			pl_buf_addch(out, tab[(v >> 6) & 63]);
		else if (flags & PL_BASE64_PAD)
			pl_buf_addch(out, '=');
		if (n > 2)
			pl_buf_addch(out, tab[v & 63]);
		else if (flags & PL_BASE64_PAD)
			pl_buf_addch(out, '=');
	}
}

static int b64_value(int c, int flags)
{
	int url = flags & PL_BASE64_URL, any = flags & PL_BASE64_ANY;

	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if ((c == '+' && (!url || any)) || (c == '-' && (url || any)))
		return 62;
	if ((c == '/' && (!url || any)) || (c == '_' && (url || any)))
		return 63;
	return -1;
}

int pl_base64_decode(const char *s, size_t len, int flags, unsigned char *out, size_t size,
                     size_t *outlen)
{
	unsigned acc = 0;
	size_t bits = 0, n = 0, pad = 0;
	int r = 0;

	*outlen = 0;
	if (flags & PL_BASE64_PAD) {
		if (len % 4)
			return -1;
		while (pad < 2 && len && s[len - 1] == '=') {
			len--;
			pad++;
		}
		if (pad && pad != 4 - len % 4) /* "QQ=" is not how "A" is written */
			return -1;
	}
	if (len % 4 == 1) /* six bits: not a byte */
		return -1;
	for (size_t i = 0; i < len && !r; i++) {
		int v = b64_value((unsigned char)s[i], flags);

		if (v < 0) {
			r = -1;
			break;
		}
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= size)
				r = -1;
			else
				out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (!r && (flags & PL_BASE64_STRICT) && bits && (acc & ((1u << bits) - 1)))
		r = -1;
	explicit_bzero(&acc, sizeof(acc));
	*outlen = r ? 0 : n;
	return r;
}

int pl_hhmm(const char *s, int flags)
{
	int h, m;
	size_t i = 0;

	if (!s || s[0] < '0' || s[0] > '9')
		return -1;
	h = s[i++] - '0';
	if (s[i] >= '0' && s[i] <= '9')
		h = h * 10 + (s[i++] - '0');
	if (s[i] != ':' || s[i + 1] < '0' || s[i + 1] > '9' || s[i + 2] < '0' || s[i + 2] > '9')
		return -1;
	m = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
	i += 3;
	if (s[i] && !((flags & PL_HHMM_SECONDS) && s[i] == ':'))
		return -1;
	if (m > 59 || h > 24 || (h == 24 && (m || !(flags & PL_HHMM_END))))
		return -1;
	return h * 60 + m;
}

int pl_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t got = getrandom(p, n, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int pl_random_hex(char *buf, size_t n)
{
	unsigned char raw[64];

	if (n > sizeof(raw) || pl_random_bytes(raw, n) < 0)
		return -1;
	pl_hex(raw, n, buf);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

double pl_monotonic(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		abort(); /* cannot fail for CLOCK_MONOTONIC on Linux: no clock, no deadlines */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
