/*
 * A growable byte buffer with a hard cap, always NUL-terminated. Every string that parlae
 * builds from input of unknown size goes through one, so nothing grows without bound.
 */
#ifndef PL_BUF_H
#define PL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include "err.h"

#define PL_BUF_DEFAULT_CAP ((size_t)64 << 20)

struct pl_buf {
	char *buf;    /* NUL-terminated; never NULL after pl_buf_init */
	size_t len;   /* bytes used, not counting the NUL */
	size_t alloc; /* bytes allocated, 0 while buf points at the shared empty string */
	size_t cap;   /* the most len may reach */
};

#define PL_BUF_INIT                                                                                \
	{                                                                                          \
		pl_buf_empty, 0, 0, PL_BUF_DEFAULT_CAP                                             \
	}
extern char pl_buf_empty[1];

/* No allocation; cap 0 means PL_BUF_DEFAULT_CAP. */
void pl_buf_init(struct pl_buf *b, size_t cap);

/* Append; -1 (and nothing appended) when the cap would be passed, else 0. */
int pl_buf_add(struct pl_buf *b, const void *data, size_t n);
int pl_buf_adds(struct pl_buf *b, const char *s);
int pl_buf_addch(struct pl_buf *b, char c);
int pl_buf_addf(struct pl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pl_buf_vaddf(struct pl_buf *b, const char *fmt, va_list ap);

void pl_buf_reset(struct pl_buf *b);

/* Free the contents and re-initialise, keeping the cap. */
void pl_buf_release(struct pl_buf *b);

/* Wipe the contents (explicit_bzero) and release: for buffers that held a secret. */
void pl_buf_wipe(struct pl_buf *b);

/* Hand the string to the caller (who frees it) and re-initialise. */
char *pl_buf_detach(struct pl_buf *b, size_t *len);

/* Allocators that abort on exhaustion: there is no sensible recovery in a CLI. */
void *pl_xmalloc(size_t n);
void *pl_xcalloc(size_t n, size_t size);
void *pl_xrealloc(void *p, size_t n);
char *pl_xstrdup(const char *s);
char *pl_xstrndup(const char *s, size_t n);

/* Copy src into dst of size n, truncating; returns -1 if it did not fit. */
int pl_strlcpy(char *dst, const char *src, size_t n);

/*
 * Append what is left to read from fd until end of file. -1 with errno set on a read error,
 * or with errno EFBIG when the cap would be passed; 0 otherwise.
 */
int pl_buf_read_fd(struct pl_buf *b, int fd);

/* The length of dir without its trailing slashes ("/" keeps its one), for joining a name to
 * it with one slash: "replay/" and "replay" both give "replay/x.json". */
size_t pl_path_dirlen(const char *dir);

/* Append dir, one slash and name (see pl_path_dirlen); as pl_buf_add. */
int pl_path_join(struct pl_buf *b, const char *dir, const char *name);

/* fsync the directory that holds path, so that a file created or renamed there stays; -1
 * with errno on failure (a file system that cannot sync directories counts as success). */
int pl_fsync_parent(const char *path);

/*
 * Whether the open file whose fstat is sb, a key that what (a variable's name) names, is ours
 * alone: owned by the running user, with no permission for group or others. PL_ECONFIG with a
 * chown or chmod hint when it is not.
 */
int pl_check_private_file(const struct stat *sb, const char *what, const char *path,
                          struct pl_err *err);

#endif
