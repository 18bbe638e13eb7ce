/*
 * The file backend of the secret store: a directory of AES-256-GCM encrypted files under
 * PARLAE_MASTER_KEY, behind the operations table of store_backend.h.
 */
#include "store_backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "encode.h"
#include "utf8.h"
#include "banned.h"

/*
 * The layout: one directory (0700), and for each secret NAME.cur and, once it has been
 * replaced, NAME.prev (0600), where NAME is the secret's name with '/' as '~'. A file is a
 * small clear header, then AES-256-GCM of the value:
 *
 *   "PLSECRET" | format 1 | len(version) | len(name) | version | name | nonce | ct | tag
 *
 * (lengths one byte each; a 12-byte nonce, a 16-byte tag).
 *
 * The header is the associated data, built when reading from the name asked for, so a file
 * copied under another name, or edited to claim another version, does not open. Names and
 * versions are not secret; list reads headers only, so it needs no key.
 *
 * Files whose names start with '.', which no secret's can, are never taken for secrets:
 * - ".tmp-*": a writer's temporary file (a crashed writer's is removed by the next re-key);
 * - ".key-check": the store's record of its key, a file of the same format holding
 *   KEY_CHECK_VALUE under the name ".key-check". Every writer, under the directory's lock,
 *   checks that its key opens it, so a secret is never written under a key the store no
 *   longer uses (a store from before this record gets one once one of its secrets opens);
 * - ".rekey": the marker of an unfinished re-key, KEY_CHECK_VALUE under the NEW key and the
 *   name ".rekey", so that only a rerun with that key finishes it. Writers are refused while
 *   it exists.
 * - ".writers": empty, a lock only: taken shared by a writer that holds the key from before
 *   its read until its write (file_hold), exclusive by a re-key, each before the directory's.
 * Every file in the directory, and the directory, must be the running user's.
 */
#define MAGIC      "PLSECRET"
#define MAGIC_LEN  8
#define FORMAT     1
#define KEY_LEN    32
#define NONCE_LEN  12
#define TAG_LEN    16
#define HEADER_MAX (MAGIC_LEN + 3 + 20 + 255)
#define VALUE_MAX  65536
/* A base longer than this could not take its suffix within NAME_MAX (255): it is hashed. */
#define BASE_MAX     240
#define KEY_FILE_MAX 4096

#define KEY_CHECK       ".key-check"
#define REKEY_MARK      ".rekey"
#define TMP_PREFIX      ".tmp-"
#define WRITERS         ".writers"
#define KEY_CHECK_VALUE "parlae secret store key check 1"
/* What decrypt_file returns when the key does not open a file (the caller says which). */
#define WRONG_KEY (-1)

struct store_file {
	char dir[4096];
	const struct pl_config *cfg; /* for the master key, read on first use */
	unsigned char key[KEY_LEN];
	int have_key;
	int writers; /* WRITERS, open and locked shared while the key is held; else -1 */
};

struct header {
	char version[21];
	char name[256];
	size_t len; /* bytes of header in the file, where the nonce starts */
};

static int file_parse(const char *spec, const char *location, struct pl_err *err)
{
	if (location[0] != '/') {
		pl_err_set(err, PL_ECONFIG,
		           "PARLAE_SECRET_STORE='%.*s' is not file:/ABSOLUTE/PATH or aws:REGION",
		           pl_utf8_cut(spec, 200), spec);
		return pl_err_hint(err,
		                   "for example PARLAE_SECRET_STORE=file:/var/lib/parlae/vault");
	}
	if (strlen(location) >= sizeof(((struct store_file *)0)->dir))
		return pl_err_set(err, PL_ECONFIG, "PARLAE_SECRET_STORE: path too long");
	return 0;
}

/* The nearest existing ancestor of a path that does not exist must let us create it. */
static int probe_parent(const char *dir, struct pl_err *err)
{
	char path[4096];
	struct stat st;
	char *slash;

	pl_strlcpy(path, dir, sizeof(path));
	while ((slash = strrchr(path, '/'))) {
		*(slash == path ? slash + 1 : slash) = '\0';
		if (stat(path, &st) == 0) {
			if (S_ISDIR(st.st_mode) && access(path, W_OK | X_OK) == 0)
				return 0;
			break;
		}
		if (slash == path)
			break;
	}
	return pl_err_set(err, PL_ECONFIG,
	                  "secret store %s does not exist and cannot be created under %s", dir,
	                  path);
}

/* Not ours alone: another user owns it, or may read or write it. */
static int check_owner_mode(const char *path, const struct stat *sb, mode_t want,
                            struct pl_err *err)
{
	const char *what = S_ISDIR(sb->st_mode) ? "secret store" : "secret file";

	if (sb->st_uid != geteuid()) {
		pl_err_set(err, PL_ECONFIG, "%s %s is owned by uid %u, not by this user (uid %u)",
		           what, path, (unsigned)sb->st_uid, (unsigned)geteuid());
		return pl_err_hint(err, "chown %u %s", (unsigned)geteuid(), path);
	}
	if (want == 0700 && (sb->st_mode & 077)) {
		pl_err_set(err, PL_ECONFIG, "secret store %s has mode %04o, open to other users",
		           path, (unsigned)(sb->st_mode & 07777));
		return pl_err_hint(err, "chmod 700 %s", path);
	}
	if (want == 0600 && (sb->st_mode & 07777) != 0600) {
		pl_err_set(err, PL_ECONFIG, "secret file %s has mode %04o, not 0600", path,
		           (unsigned)(sb->st_mode & 07777));
		return pl_err_hint(err, "chmod 600 %s", path);
	}
	return 0;
}

/* An existing store directory: ours alone and writable. */
static int check_dir_stat(const char *dir, const struct stat *st, struct pl_err *err)
{
	int r;

	if (!S_ISDIR(st->st_mode))
		return pl_err_set(err, PL_ECONFIG, "secret store %s is not a directory", dir);
	if ((r = check_owner_mode(dir, st, 0700, err)))
		return r;
	if (access(dir, W_OK | X_OK) < 0)
		return pl_err_set(err, PL_ECONFIG, "secret store %s is not writable: %s", dir,
		                  strerror(errno));
	return 0;
}

/*
 * The file name stem of a checked name: '/' becomes '~', which names never contain, so the
 * mapping cannot collide. A stem too long for a file name is "~h" and the name's SHA-256
 * instead; it too can never be another name's stem, since names start with a letter or digit.
 */
static int name_base(const char *name, char *base, size_t size, struct pl_err *err)
{
	size_t n = strlen(name);
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (n <= BASE_MAX && n < size) {
		for (size_t i = 0; i <= n; i++)
			base[i] = name[i] == '/' ? '~' : name[i];
		return 0;
	}
	if (size < 3 + 2 * sizeof(md) || !EVP_Digest(name, n, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != sizeof(md))
		return pl_err_set(err, PL_EINTERNAL, "cannot hash a secret's name (SHA-256)");
	base[0] = '~';
	base[1] = 'h';
	pl_hex(md, sizeof(md), base + 2);
	return 0;
}

static int file_names(const char *name, char *cur, char *prev, size_t size, struct pl_err *err)
{
	char base[BASE_MAX + 1];
	int r;

	if ((r = name_base(name, base, sizeof(base), err)))
		return r;
	snprintf(cur, size, "%s.cur", base);
	snprintf(prev, size, "%s.prev", base);
	return 0;
}

/* Version ids are decimal counters without leading zeros: "1", "2", ... */
static int parse_version(const char *s, unsigned long long *out)
{
	char *end;

	if (!*s || *s == '0' || strlen(s) > 19 || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/* --- the master key ------------------------------------------------------------------- */

/* Exactly KEY_LEN bytes from 64 hex digits or base64 (padded or not); -1 otherwise. */
static int decode_key(const char *s, size_t n, unsigned char *key)
{
	size_t got = 0;

	if (n == 2 * KEY_LEN && pl_hex_decode(s, n, key) == 0)
		return 0;
	while (n && s[n - 1] == '=')
		n--;
	return pl_base64_decode(s, n, PL_BASE64_ANY, key, KEY_LEN, &got) == 0 && got == KEY_LEN
	           ? 0
	           : -1;
}

/* The contents of PARLAE_MASTER_KEY_FILE (ours alone, as the store is), wiped by the caller. */
static int read_key_file(const char *path, struct pl_buf *b, struct pl_err *err)
{
	char chunk[512];
	struct stat sb;
	ssize_t got;
	int r, fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_MASTER_KEY_FILE %s: %s", path, strerror(errno));
		return pl_err_hint(err, "point PARLAE_MASTER_KEY_FILE at a file holding the key");
	}
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return pl_err_set(err, PL_ECONFIG, "PARLAE_MASTER_KEY_FILE %s: %s", path,
		                  strerror(errno));
	}
	if ((r = pl_check_private_file(&sb, "PARLAE_MASTER_KEY_FILE", path, err))) {
		close(fd);
		return r;
	}
	b->cap = KEY_FILE_MAX;
	while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 || pl_buf_add(b, chunk, (size_t)got) < 0) {
			OPENSSL_cleanse(chunk, sizeof(chunk));
			close(fd);
			return pl_err_set(err, PL_ECONFIG, "PARLAE_MASTER_KEY_FILE %s: %s", path,
			                  got < 0 ? strerror(errno) : "too large for a key");
		}
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	close(fd);
	return 0;
}

static int load_key(struct store_file *fs, struct pl_err *err)
{
	const char *env = pl_config_get(fs->cfg, "PARLAE_MASTER_KEY");
	const char *file = pl_config_get(fs->cfg, "PARLAE_MASTER_KEY_FILE");
	struct pl_buf b = PL_BUF_INIT;
	const char *text = env;
	size_t n;
	int r = 0;

	if (fs->have_key)
		return 0;
	if (!env && !file) {
		pl_err_set(err, PL_ECONFIG,
		           "PARLAE_MASTER_KEY is not set: it is needed to read or "
		           "write the secret store");
		return pl_err_hint(err,
		                   "export PARLAE_MASTER_KEY (or PARLAE_MASTER_KEY_FILE naming a "
		                   "file) with 32 bytes, e.g. from 'openssl rand -hex 32'");
	}
	if (!env) {
		if ((r = read_key_file(file, &b, err)))
			goto out;
		text = b.buf;
	}
	n = strlen(text);
	/* A key file written by echo or an editor ends with a newline that is not key. */
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	if (decode_key(text, n, fs->key) < 0) {
		OPENSSL_cleanse(fs->key, sizeof(fs->key));
		r = pl_err_set(err, PL_ECONFIG, "%s must be 32 bytes (64 hex digits or base64)",
		               env ? "PARLAE_MASTER_KEY" : "the key in PARLAE_MASTER_KEY_FILE");
		pl_err_hint(err, "generate one with 'openssl rand -hex 32'");
		goto out;
	}
	fs->have_key = 1;
out:
	pl_buf_wipe(&b);
	return r;
}

/* --- the directory ---------------------------------------------------------------------- */

/* mkdir -p, each directory we create 0700 whatever the umask. */
static int make_dirs(const char *dir, struct pl_err *err)
{
	char path[4096];

	if (pl_strlcpy(path, dir, sizeof(path)) < 0)
		return pl_err_set(err, PL_ECONFIG, "PARLAE_SECRET_STORE: path too long");
	for (char *p = path + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) == 0) {
			if (chmod(path, 0700) < 0)
				return pl_err_set(err, PL_ECONFIG, "secret store: chmod %s: %s",
				                  path, strerror(errno));
		} else if (errno != EEXIST) {
			return pl_err_set(err, PL_ECONFIG, "cannot create secret store %s: %s",
			                  path, strerror(errno));
		}
		*p = c;
		if (!c)
			return 0;
	}
}

/*
 * Open the store's directory (creating it when create is set) after checking that it is ours
 * alone. *dfd is -1 when it does not exist and create is not set.
 */
static int open_dir(struct store_file *fs, int create, int *dfd, struct pl_err *err)
{
	const char *dir = fs->dir;
	struct stat sb;
	int r = 0;

	*dfd = -1;
	if (create && stat(dir, &sb) < 0 && errno == ENOENT && (r = make_dirs(dir, err)))
		return r;
	*dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dfd < 0) {
		if (errno == ENOENT && !create)
			return 0;
		return pl_err_set(err, PL_ECONFIG, "secret store %s: %s", dir, strerror(errno));
	}
	if (fstat(*dfd, &sb) < 0 || (r = check_dir_stat(dir, &sb, err))) {
		r = r ? r
		      : pl_err_set(err, PL_ECONFIG, "secret store %s: %s", dir, strerror(errno));
		close(*dfd);
		*dfd = -1;
		return r;
	}
	return 0;
}

static int sync_dir(struct store_file *fs, int dfd, struct pl_err *err)
{
	if (fsync(dfd) < 0)
		return pl_err_set(err, PL_ECONFIG, "secret store %s: fsync: %s", fs->dir,
		                  strerror(errno));
	return 0;
}

static int file_open(const struct pl_config *cfg, const char *location, void **out,
                     struct pl_err *err)
{
	struct store_file *fs = pl_xcalloc(1, sizeof(*fs));
	int r, dfd;

	*out = NULL;
	fs->cfg = cfg;
	fs->writers = -1;
	/* file:/var/lib/vault/ is file:/var/lib/vault: its files are named with one slash. */
	pl_strlcpy(fs->dir, location, sizeof(fs->dir));
	fs->dir[pl_path_dirlen(fs->dir)] = '\0';
	/* A store open to other users is refused before anything is read from it. */
	if ((r = open_dir(fs, 0, &dfd, err))) {
		free(fs);
		return r;
	}
	if (dfd >= 0)
		close(dfd);
	*out = fs;
	return 0;
}

static void file_unhold(void *be);

static void file_close(void *be)
{
	struct store_file *fs = be;

	if (!fs)
		return;
	file_unhold(fs);
	OPENSSL_cleanse(fs->key, sizeof(fs->key));
	free(fs);
}

/* --- one file ----------------------------------------------------------------------------- */

static int file_err(struct store_file *fs, const char *file, const char *what, struct pl_err *err)
{
	return pl_err_set(err, PL_ECONFIG, "secret store %s/%s: %s", fs->dir, file, what);
}

/*
 * Open a file of the store for reading after checking it is a regular 0600 file of ours.
 * *fd is -1 (and 0 returned) when it does not exist.
 */
static int open_secret(struct store_file *fs, int dfd, const char *file, int *fd, struct stat *sb,
                       struct pl_err *err)
{
	char path[4096 + 256];
	int r;

	*fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0) {
		if (errno == ENOENT)
			return 0;
		return file_err(fs, file, strerror(errno), err);
	}
	if (fstat(*fd, sb) < 0 || !S_ISREG(sb->st_mode)) {
		close(*fd);
		*fd = -1;
		return file_err(fs, file, "not a regular file", err);
	}
	snprintf(path, sizeof(path), "%s/%s", fs->dir, file);
	if ((r = check_owner_mode(path, sb, 0600, err))) {
		close(*fd);
		*fd = -1;
	}
	return r;
}

/* Read up to size bytes; *got receives how many (fewer only at end of file). */
static int read_full(int fd, unsigned char *buf, size_t size, size_t *got)
{
	*got = 0;
	while (*got < size) {
		ssize_t n = read(fd, buf + *got, size - *got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The header bytes for a version and name: also the associated data of the encryption. */
static size_t build_header(unsigned char *h, const char *version, const char *name)
{
	size_t vlen = strlen(version), nlen = strlen(name);

	memcpy(h, MAGIC, MAGIC_LEN);
	h[MAGIC_LEN] = FORMAT;
	h[MAGIC_LEN + 1] = (unsigned char)vlen;
	h[MAGIC_LEN + 2] = (unsigned char)nlen;
	memcpy(h + MAGIC_LEN + 3, version, vlen);
	memcpy(h + MAGIC_LEN + 3 + vlen, name, nlen);
	return MAGIC_LEN + 3 + vlen + nlen;
}

static int parse_header(const unsigned char *buf, size_t len, struct header *h)
{
	size_t vlen, nlen;
	unsigned long long v;

	if (len < MAGIC_LEN + 3 || memcmp(buf, MAGIC, MAGIC_LEN) || buf[MAGIC_LEN] != FORMAT)
		return -1;
	vlen = buf[MAGIC_LEN + 1];
	nlen = buf[MAGIC_LEN + 2];
	if (vlen == 0 || vlen >= sizeof(h->version) || nlen == 0 ||
	    len < MAGIC_LEN + 3 + vlen + nlen)
		return -1;
	memcpy(h->version, buf + MAGIC_LEN + 3, vlen);
	h->version[vlen] = '\0';
	memcpy(h->name, buf + MAGIC_LEN + 3 + vlen, nlen);
	h->name[nlen] = '\0';
	h->len = MAGIC_LEN + 3 + vlen + nlen;
	if (parse_version(h->version, &v) < 0 || memchr(h->name, '\0', nlen))
		return -1;
	return 0;
}

static int bad_file(struct store_file *fs, const char *file, struct pl_err *err)
{
	file_err(fs, file, "not a parlae secret file (bad header)", err);
	return pl_err_hint(err, "move it out of the store directory");
}

/* The header of an open secret file, read from its start. */
static int read_header(struct store_file *fs, int fd, const char *file, struct header *h,
                       struct pl_err *err)
{
	unsigned char buf[HEADER_MAX];
	size_t got;

	if (read_full(fd, buf, sizeof(buf), &got) < 0)
		return file_err(fs, file, strerror(errno), err);
	if (parse_header(buf, got, h) < 0)
		return bad_file(fs, file, err);
	return 0;
}

/* The version recorded in a file's header; "" when the file does not exist. */
static int file_version(struct store_file *fs, int dfd, const char *file, char *version,
                        size_t size, struct pl_err *err)
{
	struct header h;
	struct stat sb;
	int fd, r;

	version[0] = '\0';
	if ((r = open_secret(fs, dfd, file, &fd, &sb, err)) || fd < 0)
		return r;
	r = read_header(fs, fd, file, &h, err);
	close(fd);
	if (!r)
		pl_strlcpy(version, h.version, size);
	return r;
}

static int no_key(const char *name, struct pl_err *err)
{
	pl_err_set(err, PL_ECONFIG, "the key does not open the store (secret %s)", name);
	return pl_err_hint(err, "check PARLAE_MASTER_KEY / PARLAE_MASTER_KEY_FILE; a secret file "
	                        "copied, renamed or edited does not open either");
}

/*
 * Decrypt the open file of secret name under key. want is the version asked for or NULL;
 * *skip is set (and nothing decrypted) when the file holds another version. WRONG_KEY, with
 * err untouched, when the key does not open it.
 */
static int decrypt_file(struct store_file *fs, int fd, const char *file, const struct stat *sb,
                        const char *name, const char *want, const unsigned char *key,
                        struct pl_secret *out, char *version, int *skip, struct pl_err *err)
{
	unsigned char *buf = NULL, *pt = NULL, aad[HEADER_MAX];
	EVP_CIPHER_CTX *ctx = NULL;
	size_t got, ctlen = 0, aadlen;
	struct header h;
	int r = 0, n1 = 0, n2 = 0;

	*skip = 0;
	if (sb->st_size < 0 || (size_t)sb->st_size > HEADER_MAX + NONCE_LEN + VALUE_MAX + TAG_LEN)
		return bad_file(fs, file, err);
	buf = pl_xmalloc((size_t)sb->st_size + 1);
	if (read_full(fd, buf, (size_t)sb->st_size + 1, &got) < 0) {
		r = file_err(fs, file, strerror(errno), err);
		goto out;
	}
	if (parse_header(buf, got, &h) < 0 || got < h.len + NONCE_LEN + TAG_LEN) {
		r = bad_file(fs, file, err);
		goto out;
	}
	if (want && strcmp(want, h.version)) {
		*skip = 1;
		goto out;
	}
	/* Built from the name asked for, not the one in the file: that is what binds them. */
	aadlen = build_header(aad, h.version, name);
	ctlen = got - h.len - NONCE_LEN - TAG_LEN;
	pt = pl_xmalloc(ctlen + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || !EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) ||
	    !EVP_DecryptInit_ex(ctx, NULL, NULL, key, buf + h.len) ||
	    !EVP_DecryptUpdate(ctx, NULL, &n1, aad, (int)aadlen) ||
	    !EVP_DecryptUpdate(ctx, pt, &n1, buf + h.len + NONCE_LEN, (int)ctlen) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, buf + got - TAG_LEN) ||
	    EVP_DecryptFinal_ex(ctx, pt + n1, &n2) <= 0) {
		r = WRONG_KEY;
		goto out;
	}
	pt[ctlen] = '\0';
	out->data = pt;
	out->len = ctlen;
	pt = NULL;
	if (version)
		pl_strlcpy(version, h.version, PL_STORE_VERSION_MAX);
out:
	EVP_CIPHER_CTX_free(ctx);
	if (pt) {
		OPENSSL_cleanse(pt, ctlen + 1);
		free(pt);
	}
	free(buf);
	return r;
}

/*
 * Whether key opens the file of name (its header's name when name is NULL): *opens 1 or 0,
 * -1 when there is no such file. Anything else wrong with the file is an error.
 */
static int file_opens(struct store_file *fs, int dfd, const char *file, const char *name,
                      const unsigned char *key, int *opens, struct pl_err *err)
{
	struct pl_secret value = PL_SECRET_INIT;
	struct header h;
	struct stat sb;
	int fd, skip, r;

	*opens = -1;
	if ((r = open_secret(fs, dfd, file, &fd, &sb, err)) || fd < 0)
		return r;
	if (!name && !(r = read_header(fs, fd, file, &h, err)) && lseek(fd, 0, SEEK_SET) < 0)
		r = file_err(fs, file, strerror(errno), err);
	if (!r)
		r = decrypt_file(fs, fd, file, &sb, name ? name : h.name, NULL, key, &value, NULL,
		                 &skip, err);
	close(fd);
	pl_secret_release(&value);
	*opens = r == 0;
	return r == WRONG_KEY ? 0 : r;
}

static int encrypt_value(const unsigned char *key, const char *name, const char *version,
                         const struct pl_secret *value, struct pl_buf *blob, struct pl_err *err)
{
	unsigned char head[HEADER_MAX], nonce[NONCE_LEN], tag[TAG_LEN], *ct;
	EVP_CIPHER_CTX *ctx = NULL;
	size_t hlen = build_header(head, version, name);
	int n1 = 0, n2 = 0, r = 0;

	if (RAND_bytes(nonce, NONCE_LEN) != 1)
		return pl_err_set(err, PL_EINTERNAL, "no randomness for a nonce");
	pl_buf_add(blob, head, hlen);
	pl_buf_add(blob, nonce, NONCE_LEN);
	/* The ciphertext goes straight into the blob, which holds no plaintext. */
	ct = pl_xmalloc(value->len + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || !EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) ||
	    !EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) ||
	    !EVP_EncryptUpdate(ctx, NULL, &n1, head, (int)hlen) ||
	    (value->len && !EVP_EncryptUpdate(ctx, ct, &n1, value->data, (int)value->len)) ||
	    !EVP_EncryptFinal_ex(ctx, ct + n1, &n2) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag)) {
		r = pl_err_set(err, PL_EINTERNAL, "encrypting secret %s failed", name);
		goto out;
	}
	pl_buf_add(blob, ct, value->len);
	pl_buf_add(blob, tag, TAG_LEN);
out:
	EVP_CIPHER_CTX_free(ctx);
	free(ct);
	return r;
}

/* A fresh name for a temporary file: a leading '.' keeps it apart from secrets. */
static int temp_name(char *buf, size_t size)
{
	unsigned char raw[8];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	snprintf(buf, size, TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2],
	         raw[3], raw[4], raw[5], raw[6], raw[7]);
	return 0;
}

/* Write blob to a new 0600 temporary file in the store, synced; its name in tmp. */
static int write_temp(struct store_file *fs, int dfd, const struct pl_buf *blob, char *tmp,
                      size_t size, struct pl_err *err)
{
	int fd = -1;

	for (int tries = 0; fd < 0 && tries < 5; tries++) {
		if (temp_name(tmp, size) < 0)
			return pl_err_set(err, PL_EINTERNAL, "no randomness for a file name");
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		return file_err(fs, tmp, strerror(errno), err);
	/* The umask may have taken bits we need, or left none to take. */
	if (fchmod(fd, 0600) < 0 ||
	    write_full(fd, (const unsigned char *)blob->buf, blob->len) < 0 || fsync(fd) < 0) {
		int e = errno;

		close(fd);
		return file_err(fs, tmp, strerror(e), err); /* the caller removes it */
	}
	if (close(fd) < 0)
		return file_err(fs, tmp, strerror(errno), err);
	return 0;
}

/* Rename the temporary file tmp over file; tmp is "" once it is in place. */
static int rename_in(struct store_file *fs, int dfd, char *tmp, const char *file,
                     struct pl_err *err)
{
	if (renameat(dfd, tmp, dfd, file) < 0)
		return file_err(fs, file, strerror(errno), err);
	tmp[0] = '\0';
	return 0;
}

/* Replace file by value encrypted under key as secret name, version: atomically. */
static int write_file(struct store_file *fs, int dfd, const char *file, const char *name,
                      const char *version, const struct pl_secret *value, const unsigned char *key,
                      struct pl_err *err)
{
	struct pl_buf blob = PL_BUF_INIT;
	char tmp[32] = "";
	int r;

	if (!(r = encrypt_value(key, name, version, value, &blob, err)) &&
	    !(r = write_temp(fs, dfd, &blob, tmp, sizeof(tmp), err)))
		r = rename_in(fs, dfd, tmp, file, err);
	if (tmp[0])
		unlinkat(dfd, tmp, 0);
	pl_buf_release(&blob);
	return r;
}

/* The key-check record or the re-key marker (file is also its name), under key. */
static int write_record(struct store_file *fs, int dfd, const char *file, const unsigned char *key,
                        struct pl_err *err)
{
	const struct pl_secret value = {(unsigned char *)KEY_CHECK_VALUE,
	                                sizeof(KEY_CHECK_VALUE) - 1};
	int r;

	if ((r = write_file(fs, dfd, file, file, "1", &value, key, err)))
		return r;
	return sync_dir(fs, dfd, err);
}

/*
 * The current file becomes the previous one by a hard link renamed over NAME.prev: the current
 * name keeps pointing at it until the new version is renamed over it, so there is always a
 * readable current version.
 */
static int keep_previous(struct store_file *fs, int dfd, const char *cur, const char *prev,
                         struct pl_err *err)
{
	char tmp[32];

	if (temp_name(tmp, sizeof(tmp)) < 0)
		return pl_err_set(err, PL_EINTERNAL, "no randomness for a file name");
	if (linkat(dfd, cur, dfd, tmp, 0) < 0)
		return file_err(fs, cur, strerror(errno), err);
	if (renameat(dfd, tmp, dfd, prev) < 0) {
		int e = errno;

		unlinkat(dfd, tmp, 0);
		return file_err(fs, prev, strerror(e), err);
	}
	/* Renaming a link over another link to the same file (a previous put that stopped
	 * after this step) does nothing and leaves the temporary name behind. */
	unlinkat(dfd, tmp, 0);
	return 0;
}

/* Writers and the re-key take the directory's lock: one at a time, one key at a time. */
static int lock_dir(struct store_file *fs, int dfd, struct pl_err *err)
{
	while (flock(dfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return pl_err_set(err, PL_ECONFIG, "secret store %s: lock: %s", fs->dir,
			                  strerror(errno));
	return 0;
}

/*
 * WRITERS, created (0600) the first time, locked how: shared by writers that hold the key,
 * exclusive by a re-key, and always before the directory's lock, so that a re-key waits for
 * those holders, never the other way round while it holds the directory.
 */
static int lock_writers(struct store_file *fs, int dfd, int how, int *fd, struct pl_err *err)
{
	char path[4096 + 256];
	struct stat sb;
	int r = 0;

	*fd = openat(dfd, WRITERS, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return file_err(fs, WRITERS, strerror(errno), err);
	snprintf(path, sizeof(path), "%s/%s", fs->dir, WRITERS);
	if (fstat(*fd, &sb) < 0)
		r = file_err(fs, WRITERS, strerror(errno), err);
	else if (!S_ISREG(sb.st_mode))
		r = file_err(fs, WRITERS, "not a regular file", err);
	else if (sb.st_uid != geteuid())
		r = check_owner_mode(path, &sb, 0600, err);
	else if (fchmod(*fd, 0600) < 0) /* the umask may have taken bits */
		r = file_err(fs, WRITERS, strerror(errno), err);
	while (!r && flock(*fd, how) < 0)
		if (errno != EINTR)
			r = file_err(fs, WRITERS, strerror(errno), err);
	if (r) {
		close(*fd);
		*fd = -1;
	}
	return r;
}

/* A store not created yet has no key to keep: nothing is held. */
static int file_hold(void *be, struct pl_err *err)
{
	struct store_file *fs = be;
	int r, dfd;

	if (fs->writers >= 0)
		return 0;
	if ((r = open_dir(fs, 0, &dfd, err)) || dfd < 0)
		return r;
	r = lock_writers(fs, dfd, LOCK_SH, &fs->writers, err);
	close(dfd);
	return r;
}

static void file_unhold(void *be)
{
	struct store_file *fs = be;

	if (fs->writers >= 0)
		close(fs->writers);
	fs->writers = -1;
}

/* --- the store's key ---------------------------------------------------------------------- */

static int has_ext(const char *s, const char *ext)
{
	size_t a = strlen(s), b = strlen(ext);

	return a > b && !strcmp(s + a - b, ext);
}

static int is_secret_file(const char *file)
{
	return file[0] != '.' && (has_ext(file, ".cur") || has_ext(file, ".prev"));
}

/*
 * A listing of the open directory dfd, from its start: a dup shares its offset with dfd and
 * with every earlier listing, hence the rewind. Closed with closedir.
 */
static int list_dir(struct store_file *fs, int dfd, DIR **d, struct pl_err *err)
{
	int fd = dup(dfd);

	if (fd < 0 || !(*d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return pl_err_set(err, PL_ECONFIG, "secret store %s: %s", fs->dir, strerror(errno));
	}
	rewinddir(*d);
	return 0;
}

/* The name of some secret's current file in the store; "" when there is none. */
static int first_secret(struct store_file *fs, int dfd, char *file, size_t size, struct pl_err *err)
{
	struct dirent *e;
	DIR *d;
	int r;

	file[0] = '\0';
	if ((r = list_dir(fs, dfd, &d, err)))
		return r;
	while ((e = readdir(d)))
		if (is_secret_file(e->d_name) && has_ext(e->d_name, ".cur")) {
			pl_strlcpy(file, e->d_name, size);
			break;
		}
	closedir(d);
	return 0;
}

/*
 * Whether key opens the store: its key-check record, else (a store written before there was
 * one) its first secret, else (an empty store) yes. *record says whether there is a record;
 * *what names what did not open.
 */
static int key_opens(struct store_file *fs, int dfd, const unsigned char *key, int *opens,
                     int *record, char *what, size_t size, struct pl_err *err)
{
	char file[BASE_MAX + 8];
	int r;

	snprintf(what, size, "its key-check record");
	if ((r = file_opens(fs, dfd, KEY_CHECK, KEY_CHECK, key, opens, err)))
		return r;
	*record = *opens >= 0;
	if (*record)
		return 0;
	if ((r = first_secret(fs, dfd, file, sizeof(file), err)))
		return r;
	*opens = 1;
	if (!file[0])
		return 0;
	snprintf(what, size, "secret file %s", file);
	if ((r = file_opens(fs, dfd, file, NULL, key, opens, err)))
		return r;
	/* Deleted since it was listed (check takes no lock): nothing shows that the key opens. */
	*opens = *opens > 0;
	return 0;
}

static int retired_key(const char *what, struct pl_err *err)
{
	pl_err_set(err, PL_ECONFIG, "the key does not open the store (%s)", what);
	return pl_err_hint(err, "if the store was re-keyed ('parlae secrets rotate --master-key'), "
	                        "use its PARLAE_MASTER_KEY_NEW as PARLAE_MASTER_KEY");
}

static int rekey_unfinished(struct pl_err *err)
{
	pl_err_set(err, PL_ECONFIG, "the secret store has an unfinished re-key");
	return pl_err_hint(err, "rerun 'parlae secrets rotate --master-key' with both keys");
}

static int has_marker(struct store_file *fs, int dfd, int *marked, struct pl_err *err)
{
	struct stat sb;

	*marked = fstatat(dfd, REKEY_MARK, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	if (!*marked && errno != ENOENT)
		return file_err(fs, REKEY_MARK, strerror(errno), err);
	return 0;
}

/*
 * Under the lock, before a write: no re-key is unfinished, and the key in hand is the store's
 * (a store without a key-check record gets one now).
 */
static int writer_may_write(struct store_file *fs, int dfd, struct pl_err *err)
{
	char what[BASE_MAX + 32];
	int r, marked, opens, record;

	if ((r = has_marker(fs, dfd, &marked, err)))
		return r;
	if (marked)
		return rekey_unfinished(err);
	if ((r = key_opens(fs, dfd, fs->key, &opens, &record, what, sizeof(what), err)))
		return r;
	if (!opens)
		return retired_key(what, err);
	return record ? 0 : write_record(fs, dfd, KEY_CHECK, fs->key, err);
}

/* Every file of the store is ours, 0600. */
static int check_files(struct store_file *fs, int dfd, struct pl_err *err)
{
	struct dirent *e;
	struct stat sb;
	char path[4096 + 256];
	DIR *d;
	int r;

	if ((r = list_dir(fs, dfd, &d, err)))
		return r;
	while (!r && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", fs->dir, e->d_name);
		/* Gone since readdir, or no file (refused when opened as one). */
		if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
			continue;
		r = check_owner_mode(path, &sb, 0600, err);
	}
	closedir(d);
	return r;
}

static void file_check(void *be, struct pl_store_health *h)
{
	struct store_file *fs = be;
	char what[BASE_MAX + 32];
	int dfd, opens, record;

	if (open_dir(fs, 0, &dfd, &h->err))
		return;
	if (dfd < 0) {
		/* Not there yet: usable if it can be created, and empty, so any key opens it. */
		if ((h->reachable = !probe_parent(fs->dir, &h->err)))
			h->key_opens = !load_key(fs, &h->key_err);
		return;
	}
	if (check_files(fs, dfd, &h->err) || has_marker(fs, dfd, &h->rekey_unfinished, &h->err))
		goto out;
	h->reachable = 1;
	if (load_key(fs, &h->key_err) ||
	    key_opens(fs, dfd, fs->key, &opens, &record, what, sizeof(what), &h->key_err))
		h->key_opens = 0;
	else if (!(h->key_opens = opens))
		retired_key(what, &h->key_err);
out:
	close(dfd);
}

/* --- get, put, delete --------------------------------------------------------------------- */

static int file_get(void *be, const char *name, const char *version_in, struct pl_secret *out,
                    char *version_out, struct pl_err *err)
{
	struct store_file *fs = be;
	char files[2][BASE_MAX + 8];
	struct stat sb;
	int r, dfd, fd, skip = 1;

	/* The key first, so that a store set up without one says so whatever is asked. */
	if ((r = load_key(fs, err)) || (r = open_dir(fs, 0, &dfd, err)))
		return r;
	if (dfd < 0)
		return pl_store_not_found(name, NULL, err);
	if ((r = file_names(name, files[0], files[1], sizeof(files[0]), err)))
		goto out;
	/* Current first: a version asked for is usually the current one. */
	for (int i = 0; i < (version_in ? 2 : 1) && skip; i++) {
		if ((r = open_secret(fs, dfd, files[i], &fd, &sb, err)))
			goto out;
		if (fd < 0) {
			if (i == 0 && !version_in) {
				r = pl_store_not_found(name, NULL, err);
				goto out;
			}
			continue;
		}
		r = decrypt_file(fs, fd, files[i], &sb, name, version_in, fs->key, out, version_out,
		                 &skip, err);
		close(fd);
		if (r == WRONG_KEY)
			r = no_key(name, err);
		if (r)
			goto out;
	}
	if (skip)
		r = pl_store_not_found(name, version_in, err);
out:
	close(dfd);
	return r;
}

static int file_put_if(void *be, const char *name, const struct pl_secret *value,
                       const char *expected, char *version, struct pl_err *err)
{
	struct store_file *fs = be;
	char cur[BASE_MAX + 8], prev[BASE_MAX + 8], vcur[32], vprev[32], tmp[32] = "";
	struct pl_buf blob = PL_BUF_INIT;
	unsigned long long a = 0, b = 0;
	int r, dfd = -1;

	/* Which key encrypts is decided only under the lock: a re-key may have finished while
	 * this writer waited for it, and the key it loaded is then no longer the store's. */
	if ((r = load_key(fs, err)) || (r = open_dir(fs, 1, &dfd, err)) ||
	    (r = lock_dir(fs, dfd, err)) || (r = writer_may_write(fs, dfd, err)))
		goto out;
	if ((r = file_names(name, cur, prev, sizeof(cur), err)))
		goto out;
	if ((r = file_version(fs, dfd, cur, vcur, sizeof(vcur), err)) ||
	    (r = file_version(fs, dfd, prev, vprev, sizeof(vprev), err)))
		goto out;
	/* Compare and swap, under the directory's lock: another writer got there first. */
	if (expected && strcmp(expected, vcur)) {
		r = pl_err_set(err, PL_ECONFLICT,
		               "secret %s changed while it was being replaced "
		               "(version %s, expected %s)",
		               name, vcur[0] ? vcur : "none", expected[0] ? expected : "none");
		goto out;
	}
	/* Ids only grow, even past a previous version left behind by an interrupted delete. */
	if (vcur[0])
		parse_version(vcur, &a);
	if (vprev[0])
		parse_version(vprev, &b);
	snprintf(version, PL_STORE_VERSION_MAX, "%llu", (a > b ? a : b) + 1);
	if ((r = encrypt_value(fs->key, name, version, value, &blob, err)) ||
	    (r = write_temp(fs, dfd, &blob, tmp, sizeof(tmp), err)))
		goto out;
	if (vcur[0])
		r = keep_previous(fs, dfd, cur, prev, err);
	else if (vprev[0] && unlinkat(dfd, prev, 0) < 0 && errno != ENOENT)
		r = file_err(fs, prev, strerror(errno), err);
	if (r || (r = rename_in(fs, dfd, tmp, cur, err)))
		goto out;
	r = sync_dir(fs, dfd, err);
out:
	if (tmp[0])
		unlinkat(dfd, tmp, 0);
	if (dfd >= 0)
		close(dfd);
	pl_buf_release(&blob);
	return r;
}

static int file_del(void *be, const char *name, struct pl_err *err)
{
	struct store_file *fs = be;
	char cur[BASE_MAX + 8], prev[BASE_MAX + 8];
	int r, dfd, found = 0, marked;

	if ((r = open_dir(fs, 0, &dfd, err)))
		return r;
	if (dfd < 0)
		return pl_store_not_found(name, NULL, err);
	if ((r = lock_dir(fs, dfd, err)) || (r = has_marker(fs, dfd, &marked, err)))
		goto out;
	if (marked) {
		r = rekey_unfinished(err);
		goto out;
	}
	if ((r = file_names(name, cur, prev, sizeof(cur), err)))
		goto out;
	/* Previous first: an interrupted delete leaves a whole secret, never a lone old version. */
	if (unlinkat(dfd, prev, 0) == 0)
		found = 1;
	else if (errno != ENOENT)
		r = file_err(fs, prev, strerror(errno), err);
	if (!r && unlinkat(dfd, cur, 0) == 0)
		found = 1;
	else if (!r && errno != ENOENT)
		r = file_err(fs, cur, strerror(errno), err);
	if (!r)
		r = found ? sync_dir(fs, dfd, err) : pl_store_not_found(name, NULL, err);
out:
	close(dfd);
	return r;
}

/* --- list --------------------------------------------------------------------------------- */

/*
 * One NAME.cur file into e. *keep is cleared for a file whose header names a secret that does
 * not live under that file name: a copy, which get would not open either.
 */
static int list_one(struct store_file *fs, int dfd, const char *file, struct pl_store_entry *e,
                    int *keep, struct pl_err *err)
{
	char cur[BASE_MAX + 8], prev[BASE_MAX + 8];
	struct pl_err ignored = PL_ERR_INIT;
	struct header h;
	struct stat sb;
	struct tm tm;
	int r, fd;

	*keep = 0;
	if ((r = open_secret(fs, dfd, file, &fd, &sb, err)) || fd < 0)
		return r; /* gone since readdir: deleted meanwhile */
	r = read_header(fs, fd, file, &h, err);
	close(fd);
	if (r)
		return r;
	if (pl_store_check_name(h.name, &ignored))
		return 0;
	if ((r = file_names(h.name, cur, prev, sizeof(cur), err)))
		return r;
	if (strcmp(cur, file))
		return 0;
	if ((r = file_version(fs, dfd, prev, e->previous, sizeof(e->previous), err)))
		return r;
	pl_strlcpy(e->name, h.name, sizeof(e->name));
	pl_strlcpy(e->version, h.version, sizeof(e->version));
	gmtime_r(&sb.st_mtim.tv_sec, &tm);
	strftime(e->updated_at, sizeof(e->updated_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	*keep = 1;
	return 0;
}

static int file_list(void *be, struct pl_store_entry **out, size_t *n, struct pl_err *err)
{
	struct store_file *fs = be;
	size_t alloc = 16;
	struct dirent *d;
	DIR *dir = NULL;
	int r, dfd, keep;

	*out = pl_xcalloc(alloc, sizeof(**out));
	if ((r = open_dir(fs, 0, &dfd, err)) || dfd < 0)
		return r;
	if (!(dir = fdopendir(dfd))) {
		close(dfd);
		return pl_err_set(err, PL_ECONFIG, "secret store %s: %s", fs->dir, strerror(errno));
	}
	while ((d = readdir(dir))) {
		if (!is_secret_file(d->d_name) || !has_ext(d->d_name, ".cur"))
			continue;
		if (*n == alloc) {
			alloc *= 2;
			*out = pl_xrealloc(*out, alloc * sizeof(**out));
		}
		memset(&(*out)[*n], 0, sizeof(**out));
		if ((r = list_one(fs, dirfd(dir), d->d_name, &(*out)[*n], &keep, err)))
			break;
		*n += (size_t)keep;
	}
	closedir(dir);
	return r;
}

/* --- re-keying ------------------------------------------------------------------------------ */

struct rekey_entry {
	char file[BASE_MAX + 8];
	int tmp;       /* a crashed writer's temporary file, removed */
	int under_old; /* to re-encrypt */
};

struct rekey {
	struct store_file *fs;
	int dfd;
	unsigned char key[KEY_LEN]; /* PARLAE_MASTER_KEY_NEW */
	struct rekey_entry *v;
	size_t n;
	int marked; /* an earlier run left its marker */
	int todo;   /* anything to change: a finished re-key run again changes nothing */
};

static int load_new_key(struct rekey *rk, struct pl_err *err)
{
	const char *text = pl_config_get(rk->fs->cfg, "PARLAE_MASTER_KEY_NEW");
	int r;

	if (!text) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_MASTER_KEY_NEW is not set");
		return pl_err_hint(err,
		                   "export the new 32-byte key, e.g. from 'openssl rand -hex 32'");
	}
	if (decode_key(text, strlen(text), rk->key) < 0) {
		pl_err_set(err, PL_ECONFIG,
		           "PARLAE_MASTER_KEY_NEW must be 32 bytes (64 hex digits or base64)");
		return pl_err_hint(err, "generate one with 'openssl rand -hex 32'");
	}
	if ((r = load_key(rk->fs, err)))
		return r;
	if (!CRYPTO_memcmp(rk->key, rk->fs->key, KEY_LEN))
		return pl_err_set(err, PL_EUSAGE,
		                  "PARLAE_MASTER_KEY_NEW is the key already in use");
	return 0;
}

/* The secret files and crashed writers' temporary files, read before anything changes. */
static int rekey_collect(struct rekey *rk, struct pl_err *err)
{
	size_t alloc = 0;
	struct dirent *e;
	DIR *d;
	int r;

	if ((r = list_dir(rk->fs, rk->dfd, &d, err)))
		return r;
	while ((e = readdir(d))) {
		int tmp = !strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX));

		if (!tmp && !is_secret_file(e->d_name))
			continue;
		if (rk->n == alloc) {
			alloc = alloc ? 2 * alloc : 64;
			rk->v = pl_xrealloc(rk->v, alloc * sizeof(*rk->v));
		}
		memset(&rk->v[rk->n], 0, sizeof(*rk->v));
		pl_strlcpy(rk->v[rk->n].file, e->d_name, sizeof(rk->v[rk->n].file));
		rk->v[rk->n++].tmp = tmp;
	}
	closedir(d);
	return 0;
}

static int neither_key(struct rekey *rk, const char *file, struct pl_err *err)
{
	pl_err_set(err, PL_ECONFIG,
	           "neither PARLAE_MASTER_KEY nor PARLAE_MASTER_KEY_NEW opens %s/%s: nothing was "
	           "re-encrypted",
	           rk->fs->dir, file);
	return pl_err_hint(err, "check both keys; move a file that is not parlae's out of the "
	                        "store");
}

/* Under which key file (of secret name, or its header's when NULL) opens: *old 1 or 0. */
static int which_key(struct rekey *rk, const char *file, const char *name, int *old,
                     struct pl_err *err)
{
	int r, opens;

	*old = 0;
	if ((r = file_opens(rk->fs, rk->dfd, file, name, rk->fs->key, &opens, err)))
		return r;
	if (opens) { /* or there is no such file */
		*old = opens > 0;
		return 0;
	}
	if ((r = file_opens(rk->fs, rk->dfd, file, name, rk->key, &opens, err)))
		return r;
	return opens ? 0 : neither_key(rk, file, err);
}

/*
 * Before anything changes: an earlier run's marker must be for this new key, and the
 * key-check record and every secret file must open under one of the two keys.
 */
static int rekey_precheck(struct rekey *rk, size_t *n, struct pl_err *err)
{
	int r, opens, old;

	if ((r = file_opens(rk->fs, rk->dfd, REKEY_MARK, REKEY_MARK, rk->key, &opens, err)))
		return r;
	if (!opens) {
		pl_err_set(err, PL_ECONFIG,
		           "the secret store has an unfinished re-key to another key: "
		           "PARLAE_MASTER_KEY_NEW does not open %s/" REKEY_MARK,
		           rk->fs->dir);
		return pl_err_hint(err, "rerun with the PARLAE_MASTER_KEY_NEW it was started with");
	}
	rk->marked = opens > 0;
	if ((r = which_key(rk, KEY_CHECK, KEY_CHECK, &old, err)) ||
	    (r = file_opens(rk->fs, rk->dfd, KEY_CHECK, KEY_CHECK, rk->key, &opens, err)))
		return r;
	rk->todo = rk->marked || opens != 1;
	for (size_t i = 0; i < rk->n; i++) {
		if (!rk->v[i].tmp &&
		    (r = which_key(rk, rk->v[i].file, NULL, &rk->v[i].under_old, err)))
			return r;
		rk->todo |= rk->v[i].tmp || rk->v[i].under_old;
		*n += (size_t)(rk->v[i].under_old && has_ext(rk->v[i].file, ".cur"));
	}
	return 0;
}

/* One file from the old key to the new, replaced atomically. */
static int rekey_one(struct rekey *rk, const char *file, struct pl_err *err)
{
	struct pl_secret value = PL_SECRET_INIT;
	char version[PL_STORE_VERSION_MAX];
	struct header h;
	struct stat sb;
	int fd, skip, r;

	if ((r = open_secret(rk->fs, rk->dfd, file, &fd, &sb, err)) || fd < 0)
		return r;
	if (!(r = read_header(rk->fs, fd, file, &h, err)) && lseek(fd, 0, SEEK_SET) < 0)
		r = file_err(rk->fs, file, strerror(errno), err);
	if (!r)
		r = decrypt_file(rk->fs, fd, file, &sb, h.name, NULL, rk->fs->key, &value, version,
		                 &skip, err);
	close(fd);
	if (r == WRONG_KEY)
		r = neither_key(rk, file, err);
	if (!r)
		r = write_file(rk->fs, rk->dfd, file, h.name, version, &value, rk->key, err);
	pl_secret_release(&value);
	return r;
}

/* The marker first, then the files, the temporary files, the key-check; the marker last. */
static int rekey_apply(struct rekey *rk, struct pl_err *err)
{
	int r;

	if (!rk->marked && (r = write_record(rk->fs, rk->dfd, REKEY_MARK, rk->key, err)))
		return r;
	for (size_t i = 0; i < rk->n; i++) {
		if (rk->v[i].under_old && (r = rekey_one(rk, rk->v[i].file, err)))
			return r;
		/* Under the lock no writer is alive: a temporary file is a dead one's. */
		if (rk->v[i].tmp && unlinkat(rk->dfd, rk->v[i].file, 0) < 0 && errno != ENOENT)
			return file_err(rk->fs, rk->v[i].file, strerror(errno), err);
	}
	if ((r = write_record(rk->fs, rk->dfd, KEY_CHECK, rk->key, err)))
		return r;
	if (unlinkat(rk->dfd, REKEY_MARK, 0) < 0)
		return file_err(rk->fs, REKEY_MARK, strerror(errno), err);
	return sync_dir(rk->fs, rk->dfd, err);
}

static int file_rekey(void *be, int dry_run, size_t *n, struct pl_err *err)
{
	struct rekey rk = {be, -1, {0}, NULL, 0, 0, 0};
	int r, writers = -1;

	/* A store that does not exist yet is created under the new key, as a writer would create
	 * it: else the first writer would give it the key being retired. */
	if ((r = load_new_key(&rk, err)) || (r = open_dir(rk.fs, !dry_run, &rk.dfd, err)) ||
	    rk.dfd < 0)
		goto out;
	/* Writers that hold the key finish first; the others wait while the store changes keys
	 * under them, and decide theirs after. */
	if ((!dry_run && (r = lock_writers(rk.fs, rk.dfd, LOCK_EX, &writers, err))) ||
	    (r = lock_dir(rk.fs, rk.dfd, err)) || (r = rekey_collect(&rk, err)) ||
	    (r = rekey_precheck(&rk, n, err)) || dry_run ||
	    (rk.todo && (r = rekey_apply(&rk, err))))
		goto out;
	memcpy(rk.fs->key, rk.key, KEY_LEN);
out:
	if (r)
		*n = 0;
	if (rk.dfd >= 0)
		close(rk.dfd);
	if (writers >= 0)
		close(writers);
	free(rk.v);
	OPENSSL_cleanse(rk.key, sizeof(rk.key));
	return r;
}

const struct pl_store_ops pl_store_file_ops = {
    .prefix = "file:",
    .name = "file",
    .parse = file_parse,
    .open = file_open,
    .close = file_close,
    .get = file_get,
    .put_if = file_put_if,
    .del = file_del,
    .list = file_list,
    .check = file_check,
    .rekey = file_rekey,
    .hold = file_hold,
    .unhold = file_unhold,
};
