#include "utf8.h"

#include <string.h>

#include "banned.h"

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* The length of the valid character at s (len bytes available), or 0 if it is not one. */
static size_t char_len(const unsigned char *s, size_t len)
{
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte's range rules out overlongs, surrogates and code points > U+10FFFF. */
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

int pl_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0, n; i < len; i += n)
		if (!(n = char_len(p + i, len - i)))
			return 0;
	return 1;
}

size_t pl_utf8_copy(char *dst, size_t size, const char *src)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t len = strlen(src), out = 0;

	for (size_t i = 0; i < len;) {
		size_t n = char_len(p + i, len - i);
		const char *from = n ? src + i : replacement;
		size_t take = n ? n : sizeof(replacement) - 1;

		if (out + take >= size)
			break;
		memcpy(dst + out, from, take);
		out += take;
		i += n ? n : 1;
	}
	dst[out] = '\0';
	return out;
}

int pl_utf8_cut(const char *s, size_t max)
{
	size_t i = 0;

	while (s[i] && i < max) {
		size_t n = char_len((const unsigned char *)s + i, strnlen(s + i, 4));

		if (!n)
			n = 1; /* an invalid byte is a character of its own */
		if (i + n > max)
			break;
		i += n;
	}
	return (int)i;
}
