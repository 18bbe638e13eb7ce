#include "store.h"

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
#include "store_aws.h"
#include "banned.h"

/*
 * The file backend's layout: one directory (0700), and for each secret NAME.cur and, once it
 * has been replaced, NAME.prev (0600), where NAME is the secret's name with '/' as '~'. A file
 * is a small clear header, then AES-256-GCM of the value:
 *
 *   "PLSECRET" | format 1 | len(version) | len(name) | version | name | nonce | ct | tag
 *
 * (lengths one byte each; a 12-byte nonce, a 16-byte tag).
 *
 * The header is the associated data, built when reading from the name asked for, so a file
 * copied under another name, or edited to claim another version, does not open. Names and
 * versions are not secret; list reads headers only, so it needs no key.
 * Temporary files start with '.', which no name can, so readers never mistake one for a secret.
 */
#define MAGIC      "PLSECRET"
#define MAGIC_LEN  8
#define FORMAT     1
#define KEY_LEN    32
#define NONCE_LEN  12
#define TAG_LEN    16
#define HEADER_MAX (MAGIC_LEN + 3 + 20 + 255)
/* The AWS Secrets Manager limit, so that a value fits either backend. */
#define VALUE_MAX 65536
/* A base longer than this could not take its suffix within NAME_MAX (255): it is hashed. */
#define BASE_MAX     240
#define KEY_FILE_MAX 4096

/* Every public function below dispatches on spec.backend: aws: lives in store_aws.c. */
struct pl_store {
	struct pl_store_spec spec;
	const struct pl_config *cfg; /* for the master key, read on first use */
	unsigned char key[KEY_LEN];
	int have_key;
	struct pl_store_aws *aws; /* the aws: backend's state */
};

struct header {
	char version[21];
	char name[256];
	size_t len; /* bytes of header in the file, where the nonce starts */
};

void pl_secret_set(struct pl_secret *s, const void *data, size_t len)
{
	s->data = pl_xmalloc(len + 1);
	if (len)
		memcpy(s->data, data, len);
	s->data[len] = '\0';
	s->len = len;
}

void pl_secret_release(struct pl_secret *s)
{
	if (s->data) {
		OPENSSL_cleanse(s->data, s->len + 1);
		free(s->data);
	}
	s->data = NULL;
	s->len = 0;
}

const char *pl_store_backend_name(enum pl_store_backend b)
{
	return b == PL_STORE_AWS ? "aws" : "file";
}

int pl_store_parse_spec(const char *spec, struct pl_store_spec *out, struct pl_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!spec) {
		pl_err_set(err, PL_ECONFIG,
		           "no secret store: PARLAE_SECRET_STORE is unset and HOME is unknown");
		return pl_err_hint(err, "set PARLAE_SECRET_STORE=file:/path/to/vault");
	}
	if (!strncmp(spec, "file:", 5) && spec[5] == '/') {
		out->backend = PL_STORE_FILE;
		if (pl_strlcpy(out->location, spec + 5, sizeof(out->location)) < 0)
			return pl_err_set(err, PL_ECONFIG, "PARLAE_SECRET_STORE: path too long");
		return 0;
	}
	if (!strncmp(spec, "aws:", 4)) {
		size_t n = strlen(spec + 4);

		if (n == 0 || n > 63 ||
		    strspn(spec + 4, "abcdefghijklmnopqrstuvwxyz0123456789-") != n) {
			pl_err_set(
			    err, PL_ECONFIG,
			    "PARLAE_SECRET_STORE='%.200s': the region must be like us-east-1",
			    spec);
			return pl_err_hint(err, "for example PARLAE_SECRET_STORE=aws:us-east-1");
		}
		out->backend = PL_STORE_AWS;
		pl_strlcpy(out->location, spec + 4, sizeof(out->location));
		return 0;
	}
	pl_err_set(err, PL_ECONFIG,
	           "PARLAE_SECRET_STORE='%.200s' is not file:/ABSOLUTE/PATH or aws:REGION", spec);
	return pl_err_hint(err, "for example PARLAE_SECRET_STORE=file:/var/lib/parlae/vault");
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

/* An existing store directory: ours alone and writable. */
static int check_dir_stat(const char *dir, const struct stat *st, struct pl_err *err)
{
	if (!S_ISDIR(st->st_mode))
		return pl_err_set(err, PL_ECONFIG, "secret store %s is not a directory", dir);
	if (st->st_mode & 077) {
		pl_err_set(err, PL_ECONFIG, "secret store %s has mode %04o, open to other users",
		           dir, (unsigned)(st->st_mode & 07777));
		return pl_err_hint(err, "chmod 700 %s", dir);
	}
	if (access(dir, W_OK | X_OK) < 0)
		return pl_err_set(err, PL_ECONFIG, "secret store %s is not writable: %s", dir,
		                  strerror(errno));
	return 0;
}

int pl_store_probe(const struct pl_store_spec *spec, struct pl_err *err)
{
	struct stat st;

	/* Nothing local to check for aws: (pl_store_ready asks the service). */
	if (spec->backend == PL_STORE_AWS)
		return 0;
	if (stat(spec->location, &st) < 0) {
		if (errno == ENOENT)
			return probe_parent(spec->location, err);
		return pl_err_set(err, PL_ECONFIG, "secret store %s: %s", spec->location,
		                  strerror(errno));
	}
	return check_dir_stat(spec->location, &st, err);
}

/* --- names ------------------------------------------------------------------------------ */

int pl_store_check_name(const char *name, struct pl_err *err)
{
	size_t n = strlen(name);
	int start = 1;

	if (n == 0 || n > 255)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (c == '/') {
			if (start)
				goto bad; /* a leading slash or an empty segment */
			start = 1;
			continue;
		}
		/* A segment starting with a letter or digit can be neither "." nor "..". */
		if (!alnum && (start || (c != '_' && c != '.' && c != '-')))
			goto bad;
		start = 0;
	}
	if (start)
		goto bad; /* a trailing slash */
	return 0;
bad:
	pl_err_set(err, PL_EUSAGE, "invalid secret name '%.80s'", name);
	return pl_err_hint(err, "use '/'-separated segments of a-z, 0-9, '_', '.' and '-', each "
	                        "starting with a letter or digit, at most 255 bytes");
}

/*
 * The file name stem of a checked name: '/' becomes '~', which names never contain, so the
 * mapping cannot collide. A stem too long for a file name is "~h" and the name's SHA-256
 * instead; it too can never be another name's stem, since names start with a letter or digit.
 */
static void name_base(const char *name, char *base, size_t size)
{
	size_t n = strlen(name);
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (n <= BASE_MAX && n < size) {
		for (size_t i = 0; i <= n; i++)
			base[i] = name[i] == '/' ? '~' : name[i];
		return;
	}
	EVP_Digest(name, n, md, &mdlen, EVP_sha256(), NULL);
	snprintf(base, size, "~h");
	for (unsigned int i = 0; i < mdlen && 2 + 2 * i + 2 < size; i++)
		snprintf(base + 2 + 2 * i, 3, "%02x", md[i]);
}

static void file_names(const char *name, char *cur, char *prev, size_t size)
{
	char base[BASE_MAX + 1];

	name_base(name, base, sizeof(base));
	snprintf(cur, size, "%s.cur", base);
	snprintf(prev, size, "%s.prev", base);
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

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Exactly KEY_LEN bytes from 64 hex digits or base64 (padded or not); -1 otherwise. */
static int decode_key(const char *s, size_t n, unsigned char *key)
{
	unsigned int acc = 0;
	size_t bits = 0, out = 0;
	int r = 0;

	if (n == 2 * KEY_LEN && strspn(s, "0123456789abcdefABCDEF") >= n) {
		for (size_t i = 0; i < KEY_LEN; i++)
			key[i] = (unsigned char)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
		return 0;
	}
	while (n && s[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++) {
		int v = b64val(s[i]);

		if (v < 0 || out > KEY_LEN) {
			r = -1;
			break;
		}
		acc = (acc << 6 | (unsigned int)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (out < KEY_LEN)
				key[out] = (unsigned char)(acc >> bits);
			out++;
		}
	}
	OPENSSL_cleanse(&acc, sizeof(acc));
	return !r && out == KEY_LEN && bits < 6 ? 0 : -1;
}

/* The contents of PARLAE_MASTER_KEY_FILE, wiped by the caller. */
static int read_key_file(const char *path, struct pl_buf *b, struct pl_err *err)
{
	char chunk[512];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_MASTER_KEY_FILE %s: %s", path, strerror(errno));
		return pl_err_hint(err, "point PARLAE_MASTER_KEY_FILE at a file holding the key");
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

static int load_key(struct pl_store *st, struct pl_err *err)
{
	const char *env = pl_config_get(st->cfg, "PARLAE_MASTER_KEY");
	const char *file = pl_config_get(st->cfg, "PARLAE_MASTER_KEY_FILE");
	struct pl_buf b = PL_BUF_INIT;
	const char *text = env;
	size_t n;
	int r = 0;

	if (st->have_key)
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
	if (decode_key(text, n, st->key) < 0) {
		OPENSSL_cleanse(st->key, sizeof(st->key));
		r = pl_err_set(err, PL_ECONFIG, "%s must be 32 bytes (64 hex digits or base64)",
		               env ? "PARLAE_MASTER_KEY" : "the key in PARLAE_MASTER_KEY_FILE");
		pl_err_hint(err, "generate one with 'openssl rand -hex 32'");
		goto out;
	}
	st->have_key = 1;
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
static int open_dir(struct pl_store *st, int create, int *dfd, struct pl_err *err)
{
	const char *dir = st->spec.location;
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

static int sync_dir(struct pl_store *st, int dfd, struct pl_err *err)
{
	if (fsync(dfd) < 0)
		return pl_err_set(err, PL_ECONFIG, "secret store %s: fsync: %s", st->spec.location,
		                  strerror(errno));
	return 0;
}

int pl_store_open(const struct pl_config *cfg, struct pl_store **out, struct pl_err *err)
{
	struct pl_store *st = pl_xcalloc(1, sizeof(*st));
	int r, dfd;

	*out = NULL;
	st->cfg = cfg;
	if ((r = pl_store_parse_spec(pl_config_get(cfg, "PARLAE_SECRET_STORE"), &st->spec, err)))
		goto fail;
	if (st->spec.backend == PL_STORE_AWS) {
		if ((r = pl_store_aws_open(cfg, st->spec.location, &st->aws, err)))
			goto fail;
		*out = st;
		return 0;
	}
	/* A store open to other users is refused before anything is read from it. */
	if ((r = open_dir(st, 0, &dfd, err)))
		goto fail;
	if (dfd >= 0)
		close(dfd);
	*out = st;
	return 0;
fail:
	free(st);
	return r;
}

int pl_store_ready(struct pl_store *st, struct pl_err *err)
{
	if (st->spec.backend == PL_STORE_AWS)
		return pl_store_aws_ready(st->aws, err);
	return load_key(st, err);
}

void pl_store_close(struct pl_store *st)
{
	if (!st)
		return;
	pl_store_aws_close(st->aws);
	OPENSSL_cleanse(st->key, sizeof(st->key));
	free(st);
}

/* --- one file ----------------------------------------------------------------------------- */

static int file_err(struct pl_store *st, const char *file, const char *what, struct pl_err *err)
{
	return pl_err_set(err, PL_ECONFIG, "secret store %s/%s: %s", st->spec.location, file, what);
}

/*
 * Open a secret file for reading after checking it is a regular 0600 file. *fd is -1 (and 0
 * returned) when it does not exist.
 */
static int open_secret(struct pl_store *st, int dfd, const char *file, int *fd, struct stat *sb,
                       struct pl_err *err)
{
	*fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0) {
		if (errno == ENOENT)
			return 0;
		return file_err(st, file, strerror(errno), err);
	}
	if (fstat(*fd, sb) < 0 || !S_ISREG(sb->st_mode)) {
		close(*fd);
		*fd = -1;
		return file_err(st, file, "not a regular file", err);
	}
	if ((sb->st_mode & 07777) != 0600) {
		pl_err_set(err, PL_ECONFIG, "secret file %s/%s has mode %04o, not 0600",
		           st->spec.location, file, (unsigned)(sb->st_mode & 07777));
		close(*fd);
		*fd = -1;
		return pl_err_hint(err, "chmod 600 %s/%s", st->spec.location, file);
	}
	return 0;
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

static int bad_file(struct pl_store *st, const char *file, struct pl_err *err)
{
	file_err(st, file, "not a parlae secret file (bad header)", err);
	return pl_err_hint(err, "move it out of the store directory");
}

/* The header of an open secret file, read from its start. */
static int read_header(struct pl_store *st, int fd, const char *file, struct header *h,
                       struct pl_err *err)
{
	unsigned char buf[HEADER_MAX];
	size_t got;

	if (read_full(fd, buf, sizeof(buf), &got) < 0)
		return file_err(st, file, strerror(errno), err);
	if (parse_header(buf, got, h) < 0)
		return bad_file(st, file, err);
	return 0;
}

/* The version recorded in a file's header; "" when the file does not exist. */
static int file_version(struct pl_store *st, int dfd, const char *file, char *version, size_t size,
                        struct pl_err *err)
{
	struct header h;
	struct stat sb;
	int fd, r;

	version[0] = '\0';
	if ((r = open_secret(st, dfd, file, &fd, &sb, err)) || fd < 0)
		return r;
	r = read_header(st, fd, file, &h, err);
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
 * Decrypt the open file of secret name. want is the version asked for or NULL; *skip is set
 * (and nothing decrypted) when the file holds another version.
 */
static int decrypt_file(struct pl_store *st, int fd, const char *file, const struct stat *sb,
                        const char *name, const char *want, struct pl_secret *out, char *version,
                        int *skip, struct pl_err *err)
{
	unsigned char *buf = NULL, *pt = NULL, aad[HEADER_MAX];
	EVP_CIPHER_CTX *ctx = NULL;
	size_t got, ctlen, aadlen;
	struct header h;
	int r = 0, n1 = 0, n2 = 0;

	*skip = 0;
	if (sb->st_size < 0 || (size_t)sb->st_size > HEADER_MAX + NONCE_LEN + VALUE_MAX + TAG_LEN)
		return bad_file(st, file, err);
	buf = pl_xmalloc((size_t)sb->st_size + 1);
	if (read_full(fd, buf, (size_t)sb->st_size + 1, &got) < 0) {
		r = file_err(st, file, strerror(errno), err);
		goto out;
	}
	if (parse_header(buf, got, &h) < 0 || got < h.len + NONCE_LEN + TAG_LEN) {
		r = bad_file(st, file, err);
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
	    !EVP_DecryptInit_ex(ctx, NULL, NULL, st->key, buf + h.len) ||
	    !EVP_DecryptUpdate(ctx, NULL, &n1, aad, (int)aadlen) ||
	    !EVP_DecryptUpdate(ctx, pt, &n1, buf + h.len + NONCE_LEN, (int)ctlen) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, buf + got - TAG_LEN) ||
	    EVP_DecryptFinal_ex(ctx, pt + n1, &n2) <= 0) {
		r = no_key(name, err);
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

/* --- get, put, delete --------------------------------------------------------------------- */

static int not_found(const char *name, const char *version, struct pl_err *err)
{
	if (version)
		pl_err_set(err, PL_ENOTFOUND, "secret %s has no version '%.40s'", name, version);
	else
		pl_err_set(err, PL_ENOTFOUND, "no secret %s in the store", name);
	return pl_err_hint(err, "see 'parlae secrets list'");
}

int pl_store_get(struct pl_store *st, const char *name, const char *version_in,
                 struct pl_secret *out, char *version_out, struct pl_err *err)
{
	char files[2][BASE_MAX + 8];
	struct stat sb;
	int r, dfd, fd, skip = 1;

	if (st->spec.backend == PL_STORE_AWS)
		return pl_store_aws_get(st->aws, name, version_in, out, version_out, err);
	out->data = NULL;
	out->len = 0;
	/* The key first, so that a store set up without one says so whatever is asked. */
	if ((r = pl_store_check_name(name, err)) || (r = load_key(st, err)) ||
	    (r = open_dir(st, 0, &dfd, err)))
		return r;
	if (dfd < 0)
		return not_found(name, NULL, err);
	file_names(name, files[0], files[1], sizeof(files[0]));
	/* Current first: a version asked for is usually the current one. */
	for (int i = 0; i < (version_in ? 2 : 1) && skip; i++) {
		if ((r = open_secret(st, dfd, files[i], &fd, &sb, err)))
			goto out;
		if (fd < 0) {
			if (i == 0 && !version_in) {
				r = not_found(name, NULL, err);
				goto out;
			}
			continue;
		}
		r = decrypt_file(st, fd, files[i], &sb, name, version_in, out, version_out, &skip,
		                 err);
		close(fd);
		if (r)
			goto out;
	}
	if (skip)
		r = not_found(name, version_in, err);
out:
	close(dfd);
	return r;
}

static int encrypt_value(struct pl_store *st, const char *name, const char *version,
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
	    !EVP_EncryptInit_ex(ctx, NULL, NULL, st->key, nonce) ||
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
	snprintf(buf, size, ".tmp-%02x%02x%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3],
	         raw[4], raw[5], raw[6], raw[7]);
	return 0;
}

/* Write blob to a new 0600 temporary file in the store, synced; its name in tmp. */
static int write_temp(struct pl_store *st, int dfd, const struct pl_buf *blob, char *tmp,
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
		return file_err(st, tmp, strerror(errno), err);
	/* The umask may have taken bits we need, or left none to take. */
	if (fchmod(fd, 0600) < 0 ||
	    write_full(fd, (const unsigned char *)blob->buf, blob->len) < 0 || fsync(fd) < 0) {
		int e = errno;

		close(fd);
		return file_err(st, tmp, strerror(e), err); /* the caller removes it */
	}
	if (close(fd) < 0)
		return file_err(st, tmp, strerror(errno), err);
	return 0;
}

/*
 * The current file becomes the previous one by a hard link renamed over NAME.prev: the current
 * name keeps pointing at it until the new version is renamed over it, so there is always a
 * readable current version.
 */
static int keep_previous(struct pl_store *st, int dfd, const char *cur, const char *prev,
                         struct pl_err *err)
{
	char tmp[32];

	if (temp_name(tmp, sizeof(tmp)) < 0)
		return pl_err_set(err, PL_EINTERNAL, "no randomness for a file name");
	if (linkat(dfd, cur, dfd, tmp, 0) < 0)
		return file_err(st, cur, strerror(errno), err);
	if (renameat(dfd, tmp, dfd, prev) < 0) {
		int e = errno;

		unlinkat(dfd, tmp, 0);
		return file_err(st, prev, strerror(e), err);
	}
	/* Renaming a link over another link to the same file (a previous put that stopped
	 * after this step) does nothing and leaves the temporary name behind. */
	unlinkat(dfd, tmp, 0);
	return 0;
}

/* Writers take the directory's lock, so that two never hand out the same version id. */
static int lock_dir(struct pl_store *st, int dfd, struct pl_err *err)
{
	while (flock(dfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return pl_err_set(err, PL_ECONFIG, "secret store %s: lock: %s",
			                  st->spec.location, strerror(errno));
	return 0;
}

/* Whether the current file of name opens under the key in use. */
static int opens_with_key(struct pl_store *st, int dfd, const char *file, const char *name,
                          struct pl_err *err)
{
	struct pl_secret value = PL_SECRET_INIT;
	struct stat sb;
	int fd, skip, r;

	if ((r = open_secret(st, dfd, file, &fd, &sb, err)) || fd < 0)
		return r;
	r = decrypt_file(st, fd, file, &sb, name, NULL, &value, NULL, &skip, err);
	close(fd);
	pl_secret_release(&value);
	if (r == PL_ECONFIG)
		pl_err_hint(err, "the store's master key changed (secrets rotate --master-key?): "
		                 "use the new PARLAE_MASTER_KEY");
	return r;
}

int pl_store_put(struct pl_store *st, const char *name, const struct pl_secret *value,
                 char *version, struct pl_err *err)
{
	return pl_store_put_if(st, name, value, NULL, version, err);
}

int pl_store_put_if(struct pl_store *st, const char *name, const struct pl_secret *value,
                    const char *expected, char *version, struct pl_err *err)
{
	char cur[BASE_MAX + 8], prev[BASE_MAX + 8], vcur[32], vprev[32], tmp[32] = "";
	struct pl_buf blob = PL_BUF_INIT;
	unsigned long long a = 0, b = 0;
	int r, dfd = -1;

	if (st->spec.backend == PL_STORE_AWS)
		return pl_store_aws_put_if(st->aws, name, value, expected, version, err);
	version[0] = '\0';
	if ((r = pl_store_check_name(name, err)))
		return r;
	if (value->len > VALUE_MAX)
		return pl_err_set(err, PL_EBADINPUT, "secret %s is %zu bytes, more than %d", name,
		                  value->len, VALUE_MAX);
	if ((r = load_key(st, err)) || (r = open_dir(st, 1, &dfd, err)) ||
	    (r = lock_dir(st, dfd, err)))
		goto out;
	file_names(name, cur, prev, sizeof(cur));
	if ((r = file_version(st, dfd, cur, vcur, sizeof(vcur), err)) ||
	    (r = file_version(st, dfd, prev, vprev, sizeof(vprev), err)))
		goto out;
	/* A re-key may have finished while a rotation waited for the lock: it must not write under
	 * a key the store no longer uses (an unconditional put, as a new onboarding, may replace
	 * a secret nobody can open any more). */
	if (expected && vcur[0] && (r = opens_with_key(st, dfd, cur, name, err)))
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
	if ((r = encrypt_value(st, name, version, value, &blob, err)) ||
	    (r = write_temp(st, dfd, &blob, tmp, sizeof(tmp), err)))
		goto out;
	if (vcur[0])
		r = keep_previous(st, dfd, cur, prev, err);
	else if (vprev[0] && unlinkat(dfd, prev, 0) < 0 && errno != ENOENT)
		r = file_err(st, prev, strerror(errno), err);
	if (r)
		goto out;
	if (renameat(dfd, tmp, dfd, cur) < 0) {
		r = file_err(st, cur, strerror(errno), err);
		goto out;
	}
	tmp[0] = '\0';
	r = sync_dir(st, dfd, err);
out:
	if (tmp[0])
		unlinkat(dfd, tmp, 0);
	if (r)
		version[0] = '\0';
	if (dfd >= 0)
		close(dfd);
	pl_buf_release(&blob);
	return r;
}

int pl_store_delete(struct pl_store *st, const char *name, struct pl_err *err)
{
	char cur[BASE_MAX + 8], prev[BASE_MAX + 8];
	int r, dfd, found = 0;

	if (st->spec.backend == PL_STORE_AWS)
		return pl_store_aws_delete(st->aws, name, err);
	if ((r = pl_store_check_name(name, err)) || (r = open_dir(st, 0, &dfd, err)))
		return r;
	if (dfd < 0)
		return not_found(name, NULL, err);
	if ((r = lock_dir(st, dfd, err)))
		goto out;
	file_names(name, cur, prev, sizeof(cur));
	/* Previous first: an interrupted delete leaves a whole secret, never a lone old version. */
	if (unlinkat(dfd, prev, 0) == 0)
		found = 1;
	else if (errno != ENOENT)
		r = file_err(st, prev, strerror(errno), err);
	if (!r && unlinkat(dfd, cur, 0) == 0)
		found = 1;
	else if (!r && errno != ENOENT)
		r = file_err(st, cur, strerror(errno), err);
	if (!r)
		r = found ? sync_dir(st, dfd, err) : not_found(name, NULL, err);
out:
	close(dfd);
	return r;
}

/* --- list --------------------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pl_store_entry *)a)->name,
	              ((const struct pl_store_entry *)b)->name);
}

/*
 * One NAME.cur file into e. *keep is cleared for a file whose header names a secret that does
 * not live under that file name: a copy, which get would not open either.
 */
static int list_one(struct pl_store *st, int dfd, const char *file, struct pl_store_entry *e,
                    int *keep, struct pl_err *err)
{
	char cur[BASE_MAX + 8], prev[BASE_MAX + 8];
	struct pl_err ignored = PL_ERR_INIT;
	struct header h;
	struct stat sb;
	struct tm tm;
	int r, fd;

	*keep = 0;
	if ((r = open_secret(st, dfd, file, &fd, &sb, err)) || fd < 0)
		return r; /* gone since readdir: deleted meanwhile */
	r = read_header(st, fd, file, &h, err);
	close(fd);
	if (r)
		return r;
	if (pl_store_check_name(h.name, &ignored))
		return 0;
	file_names(h.name, cur, prev, sizeof(cur));
	if (strcmp(cur, file))
		return 0;
	if ((r = file_version(st, dfd, prev, e->previous, sizeof(e->previous), err)))
		return r;
	pl_strlcpy(e->name, h.name, sizeof(e->name));
	pl_strlcpy(e->version, h.version, sizeof(e->version));
	gmtime_r(&sb.st_mtim.tv_sec, &tm);
	strftime(e->updated_at, sizeof(e->updated_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	*keep = 1;
	return 0;
}

int pl_store_list(struct pl_store *st, struct pl_store_entry **out, size_t *n, struct pl_err *err)
{
	size_t alloc = 16;
	struct dirent *d;
	DIR *dir = NULL;
	int r, dfd, keep;

	if (st->spec.backend == PL_STORE_AWS)
		return pl_store_aws_list(st->aws, out, n, err);
	*out = pl_xcalloc(alloc, sizeof(**out));
	*n = 0;
	if ((r = open_dir(st, 0, &dfd, err)) || dfd < 0)
		return r;
	if (!(dir = fdopendir(dfd))) {
		close(dfd);
		return pl_err_set(err, PL_ECONFIG, "secret store %s: %s", st->spec.location,
		                  strerror(errno));
	}
	while ((d = readdir(dir))) {
		size_t len = strlen(d->d_name);

		if (d->d_name[0] == '.' || len < 5 || strcmp(d->d_name + len - 4, ".cur"))
			continue;
		if (*n == alloc) {
			alloc *= 2;
			*out = pl_xrealloc(*out, alloc * sizeof(**out));
		}
		memset(&(*out)[*n], 0, sizeof(**out));
		if ((r = list_one(st, dirfd(dir), d->d_name, &(*out)[*n], &keep, err)))
			break;
		*n += (size_t)keep;
	}
	closedir(dir);
	if (r) {
		*n = 0;
		return r;
	}
	qsort(*out, *n, sizeof(**out), entry_cmp);
	return 0;
}

/* --- re-keying the file store ------------------------------------------------------------- */

static int has_ext(const char *s, const char *ext)
{
	size_t a = strlen(s), b = strlen(ext);

	return a > b && !strcmp(s + a - b, ext);
}

/*
 * Re-encrypt one file under new_key, unless it already is. The file is replaced atomically,
 * so at every instant it opens under exactly one of the two keys.
 */
static int rekey_file(struct pl_store *st, int dfd, const char *file, const unsigned char *new_key,
                      int dry_run, int *done, struct pl_err *err)
{
	unsigned char old_key[KEY_LEN];
	struct pl_secret value = PL_SECRET_INIT;
	struct pl_buf blob = PL_BUF_INIT;
	struct header h;
	struct stat sb;
	char version[PL_STORE_VERSION_MAX], tmp[32] = "";
	int fd = -1, skip, r;

	*done = 0;
	if ((r = open_secret(st, dfd, file, &fd, &sb, err)) || fd < 0)
		return r;
	if ((r = read_header(st, fd, file, &h, err)) || lseek(fd, 0, SEEK_SET) < 0)
		goto out;
	r = decrypt_file(st, fd, file, &sb, h.name, NULL, &value, version, &skip, err);
	if (r) {
		/* Perhaps an earlier, interrupted run already did this one. */
		memcpy(old_key, st->key, KEY_LEN);
		memcpy(st->key, new_key, KEY_LEN);
		lseek(fd, 0, SEEK_SET);
		pl_err_clear(err);
		r = decrypt_file(st, fd, file, &sb, h.name, NULL, &value, version, &skip, err);
		memcpy(st->key, old_key, KEY_LEN);
		OPENSSL_cleanse(old_key, sizeof(old_key));
		if (r) {
			pl_err_set(err, PL_ECONFIG,
			           "neither PARLAE_MASTER_KEY nor PARLAE_MASTER_KEY_NEW opens %s",
			           h.name);
			r = pl_err_hint(err, "check both keys");
		}
		goto out;
	}
	*done = 1;
	if (dry_run)
		goto out;
	memcpy(old_key, st->key, KEY_LEN);
	memcpy(st->key, new_key, KEY_LEN);
	r = encrypt_value(st, h.name, version, &value, &blob, err);
	memcpy(st->key, old_key, KEY_LEN);
	OPENSSL_cleanse(old_key, sizeof(old_key));
	if (!r && !(r = write_temp(st, dfd, &blob, tmp, sizeof(tmp), err)) &&
	    renameat(dfd, tmp, dfd, file) < 0)
		r = file_err(st, file, strerror(errno), err);
	if (r && tmp[0])
		unlinkat(dfd, tmp, 0);
out:
	if (fd >= 0)
		close(fd);
	pl_secret_release(&value);
	pl_buf_release(&blob);
	return r;
}

int pl_store_rekey(struct pl_store *st, int dry_run, size_t *n, struct pl_err *err)
{
	const char *text = pl_config_get(st->cfg, "PARLAE_MASTER_KEY_NEW");
	unsigned char new_key[KEY_LEN];
	struct dirent *e;
	DIR *d = NULL;
	int r, dfd = -1;

	*n = 0;
	if (st->spec.backend == PL_STORE_AWS)
		return pl_err_set(err, PL_EUSAGE, "the aws: store does not use PARLAE_MASTER_KEY");
	if (!text) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_MASTER_KEY_NEW is not set");
		return pl_err_hint(err,
		                   "export the new 32-byte key, e.g. from 'openssl rand -hex 32'");
	}
	if (decode_key(text, strlen(text), new_key) < 0) {
		OPENSSL_cleanse(new_key, sizeof(new_key));
		pl_err_set(err, PL_ECONFIG,
		           "PARLAE_MASTER_KEY_NEW must be 32 bytes (64 hex digits or base64)");
		return pl_err_hint(err, "generate one with 'openssl rand -hex 32'");
	}
	if ((r = load_key(st, err)))
		goto out;
	if (!CRYPTO_memcmp(new_key, st->key, KEY_LEN)) {
		r = pl_err_set(err, PL_EUSAGE, "PARLAE_MASTER_KEY_NEW is the key already in use");
		goto out;
	}
	if ((r = open_dir(st, 0, &dfd, err)) || dfd < 0)
		goto out;
	/* Writers wait while the store changes keys under them. */
	if ((r = lock_dir(st, dfd, err)))
		goto out;
	if (!(d = fdopendir(dup(dfd)))) {
		r = pl_err_set(err, PL_ECONFIG, "secret store %s: %s", st->spec.location,
		               strerror(errno));
		goto out;
	}
	while (!r && (e = readdir(d))) {
		int done;

		if (e->d_name[0] == '.' ||
		    !(has_ext(e->d_name, ".cur") || has_ext(e->d_name, ".prev")))
			continue;
		r = rekey_file(st, dfd, e->d_name, new_key, dry_run, &done, err);
		*n += (size_t)done && has_ext(e->d_name, ".cur");
	}
	if (!r && !dry_run)
		r = sync_dir(st, dfd, err);
	if (!r && !dry_run)
		memcpy(st->key, new_key, KEY_LEN);
out:
	if (d)
		closedir(d);
	if (dfd >= 0)
		close(dfd);
	OPENSSL_cleanse(new_key, sizeof(new_key));
	return r;
}
