#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "banned.h"

char pl_buf_empty[1];

void *pl_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

void *pl_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		abort();
	return p;
}

void *pl_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

char *pl_xstrdup(const char *s)
{
	return pl_xstrndup(s, strlen(s));
}

char *pl_xstrndup(const char *s, size_t n)
{
	char *p = pl_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int pl_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);

	if (!n)
		return -1;
	if (len >= n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

int pl_buf_read_fd(struct pl_buf *b, int fd)
{
	char chunk[4096];
	ssize_t got;
	int r = 0;

	while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -1;
			break;
		}
		if (pl_buf_add(b, chunk, (size_t)got) < 0) {
			errno = EFBIG;
			r = -1;
			break;
		}
	}
	/* The chunk may have held a key. */
	explicit_bzero(chunk, sizeof(chunk));
	return r;
}

size_t pl_path_dirlen(const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return n;
}

int pl_path_join(struct pl_buf *b, const char *dir, const char *name)
{
	size_t n = pl_path_dirlen(dir);

	if (pl_buf_add(b, dir, n) < 0)
		return -1;
	if ((n == 0 || dir[n - 1] != '/') && pl_buf_addch(b, '/') < 0)
		return -1;
	return pl_buf_adds(b, name);
}

int pl_fsync_parent(const char *path)
{
	struct pl_buf dir = PL_BUF_INIT;
	const char *slash = strrchr(path, '/');
	int fd, r = 0;

	if (slash == path)
		pl_buf_adds(&dir, "/");
	else if (slash)
		pl_buf_add(&dir, path, (size_t)(slash - path));
	else
		pl_buf_adds(&dir, ".");
	if ((fd = open(dir.buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) < 0 && errno != EINVAL)
			r = -1;
		close(fd);
	}
	pl_buf_release(&dir);
	return r;
}

int pl_check_private_file(const struct stat *sb, const char *what, const char *path,
                          struct pl_err *err)
{
	/* Another user's file, even 0600, is theirs to read and to swap for a key of theirs. */
	if (sb->st_uid != geteuid()) {
		pl_err_set(err, PL_ECONFIG,
		           "%s %s is owned by another user (uid %u), not by this user (uid %u)",
		           what, path, (unsigned)sb->st_uid, (unsigned)geteuid());
		return pl_err_hint(err, "chown %u %s", (unsigned)geteuid(), path);
	}
	if (sb->st_mode & 077) {
		pl_err_set(err, PL_ECONFIG, "%s %s has mode %04o: others may read the key", what,
		           path, (unsigned)(sb->st_mode & 07777));
		return pl_err_hint(err, "chmod 600 %s", path);
	}
	return 0;
}

void pl_buf_init(struct pl_buf *b, size_t cap)
{
	b->buf = pl_buf_empty;
	b->len = b->alloc = 0;
	b->cap = cap ? cap : PL_BUF_DEFAULT_CAP;
}

static int grow(struct pl_buf *b, size_t extra)
{
	size_t want;

	if (extra > b->cap - b->len)
		return -1;
	want = b->len + extra + 1;
	if (want <= b->alloc)
		return 0;
	if (want < b->alloc * 2)
		want = b->alloc * 2;
	if (want < 64)
		want = 64;
	if (b->alloc == 0) {
		b->buf = pl_xmalloc(want);
		b->buf[0] = '\0';
	} else {
		b->buf = pl_xrealloc(b->buf, want);
	}
	b->alloc = want;
	return 0;
}

int pl_buf_add(struct pl_buf *b, const void *data, size_t n)
{
	if (grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return 0;
}

int pl_buf_adds(struct pl_buf *b, const char *s)
{
	return pl_buf_add(b, s, strlen(s));
}

int pl_buf_addch(struct pl_buf *b, char c)
{
	return pl_buf_add(b, &c, 1);
}

int pl_buf_vaddf(struct pl_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || grow(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int pl_buf_addf(struct pl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = pl_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void pl_buf_reset(struct pl_buf *b)
{
	b->len = 0;
	if (b->alloc)
		b->buf[0] = '\0';
}

void pl_buf_release(struct pl_buf *b)
{
	if (b->alloc)
		free(b->buf);
	pl_buf_init(b, b->cap);
}

void pl_buf_wipe(struct pl_buf *b)
{
	if (b->alloc)
		explicit_bzero(b->buf, b->alloc);
	pl_buf_release(b);
}

char *pl_buf_detach(struct pl_buf *b, size_t *len)
{
	char *s = b->alloc ? b->buf : pl_xstrdup("");

	if (len)
		*len = b->len;
	pl_buf_init(b, b->cap);
	return s;
}
