#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encode.h"
#include "json.h"
#include "banned.h"

#define KEY_FILE_MAX (16 << 10)
#define SIG_LEN      64
#define SIG_B64_LEN  88

struct pl_checkpoint_key {
	EVP_PKEY *pkey;
	char id[65];
};

/* Never ask for a passphrase on the terminal: an encrypted key is simply not read. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

static int key_id(EVP_PKEY *pkey, char out[65])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n = i2d_PUBKEY(pkey, &der), r = -1;

	if (n > 0 && EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32) {
		pl_hex(md, mdlen, out);
		r = 0;
	}
	OPENSSL_free(der);
	return r;
}

static int read_key_file(const char *path, int private_key, const char *what, struct pl_buf *pem,
                         struct pl_err *err)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), r = 0;

	if (fd < 0)
		return pl_err_set(err, PL_ECONFIG, "%s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &sb) < 0)
		r = pl_err_set(err, PL_ECONFIG, "%s %s: %s", what, path, strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		r = pl_err_set(err, PL_ECONFIG, "%s %s is not a regular file", what, path);
	else if (private_key)
		r = pl_check_private_file(&sb, what, path, err);
	pem->cap = KEY_FILE_MAX;
	if (!r && pl_buf_read_fd(pem, fd) < 0)
		r = pl_err_set(err, PL_ECONFIG, "%s %s: %s", what, path,
		               errno == EFBIG ? "too large for a key" : strerror(errno));
	close(fd);
	return r;
}

int pl_checkpoint_key_load(const char *path, int private_key, const char *what,
                           struct pl_checkpoint_key **out, struct pl_err *err)
{
	struct pl_buf pem = PL_BUF_INIT;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	const char *type;
	int r;

	*out = NULL;
	if ((r = read_key_file(path, private_key, what, &pem, err)))
		goto out;
	if (!(bio = BIO_new_mem_buf(pem.buf, (int)pem.len))) {
		r = pl_err_set(err, PL_EINTERNAL, "out of memory");
		goto out;
	}
	pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
	                   : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	ERR_clear_error();
	if (!pkey) {
		pl_err_set(err, PL_ECONFIG, "%s %s does not hold a PEM %s key", what, path,
		           private_key ? "private" : "public");
		pl_err_hint(err, private_key
		                     ? "make one with 'openssl genpkey -algorithm ed25519 "
		                       "-out FILE' (an encrypted key cannot be used)"
		                     : "derive it with 'openssl pkey -in PRIVATE_KEY -pubout'");
		r = err->code;
		goto out;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		type = EVP_PKEY_get0_type_name(pkey);
		pl_err_set(err, PL_ECONFIG, "%s %s holds a key of type %s, not Ed25519", what, path,
		           type ? type : "unknown");
		r = pl_err_hint(err, "checkpoints are signed with Ed25519: 'openssl genpkey "
		                     "-algorithm ed25519'");
		goto out;
	}
	*out = pl_xcalloc(1, sizeof(**out));
	if (key_id(pkey, (*out)->id) < 0) {
		r = pl_err_set(err, PL_EINTERNAL, "cannot encode the public key of %s", path);
		free(*out);
		*out = NULL;
		goto out;
	}
	(*out)->pkey = pkey;
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	pl_buf_wipe(&pem);
	return r;
}

void pl_checkpoint_key_free(struct pl_checkpoint_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *pl_checkpoint_key_id(const struct pl_checkpoint_key *k)
{
	return k->id;
}

/* What is signed: a fixed context string, then seq, hash, prev and time, one per line. */
static void message(struct pl_buf *b, const struct pl_checkpoint *cp)
{
	pl_buf_addf(b, "parlae-audit-checkpoint\n%lld\n%s\n%s\n%s", cp->seq, cp->hash, cp->prev,
	            cp->at);
}

int pl_checkpoint_line_hash(const char *line, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(line, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return -1;
	pl_hex(md, mdlen, out);
	return 0;
}

int pl_checkpoint_sign(const struct pl_checkpoint_key *k, long long seq, const char *hash,
                       const char *prev, time_t now, struct pl_checkpoint *cp, struct pl_err *err)
{
	struct pl_buf msg = PL_BUF_INIT;
	EVP_MD_CTX *ctx = NULL;
	unsigned char sig[SIG_LEN];
	size_t siglen = sizeof(sig);
	struct tm tm;
	int r = 0;

	memset(cp, 0, sizeof(*cp));
	cp->seq = seq;
	if (pl_strlcpy(cp->hash, hash, sizeof(cp->hash)) < 0 ||
	    pl_strlcpy(cp->prev, prev, sizeof(cp->prev)) < 0 || !gmtime_r(&now, &tm) ||
	    !strftime(cp->at, sizeof(cp->at), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return pl_err_set(err, PL_EINTERNAL, "cannot write the checkpoint's fields");
	memcpy(cp->key, k->id, sizeof(cp->key));
	message(&msg, cp);
	if (!(ctx = EVP_MD_CTX_new()) || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)msg.buf, msg.len) != 1 ||
	    siglen != SIG_LEN ||
	    EVP_EncodeBlock((unsigned char *)cp->sig, sig, SIG_LEN) != SIG_B64_LEN) {
		ERR_clear_error();
		r = pl_err_set(err, PL_EINTERNAL, "Ed25519 signing failed");
	}
	EVP_MD_CTX_free(ctx);
	pl_buf_release(&msg);
	return r;
}

void pl_checkpoint_format(const struct pl_checkpoint *cp, struct pl_buf *out)
{
	pl_buf_addf(out,
	            "{\"seq\":%lld,\"hash\":\"%s\",\"prev\":\"%s\",\"at\":\"%s\",\"key\":\"%s\","
	            "\"sig\":\"%s\"}\n",
	            cp->seq, cp->hash, cp->prev, cp->at, cp->key, cp->sig);
}

static int is_hex64(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) == 64 &&
	       strspn(json_string_value(v), "0123456789abcdef") == 64;
}

/* Exactly the shape signing writes: 2026-11-24T08:00:00Z. */
static int is_time(const json_t *v)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	const char *s = json_string_value(v);

	if (!s || json_string_length(v) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
			return 0;
	return 1;
}

static const char *shape_problem(const json_t *doc)
{
	const json_t *seq = json_object_get(doc, "seq"), *sig = json_object_get(doc, "sig");

	if (!json_is_object(doc) || json_object_size(doc) != 6)
		return "it is not a checkpoint: an object of seq, hash, prev, at, key and sig";
	if (!json_is_integer(seq) || json_integer_value(seq) < 1)
		return "its seq is not an event number";
	if (!is_hex64(json_object_get(doc, "hash")))
		return "its hash is not 64 lowercase hex digits";
	if (!is_hex64(json_object_get(doc, "prev")))
		return "its prev is not 64 lowercase hex digits";
	if (!is_time(json_object_get(doc, "at")))
		return "its at is not a time such as 2026-11-24T08:00:00Z";
	if (!is_hex64(json_object_get(doc, "key")))
		return "its key is not a key id of 64 lowercase hex digits";
	if (!json_is_string(sig) || json_string_length(sig) != SIG_B64_LEN)
		return "its sig is not a base64 Ed25519 signature";
	return NULL;
}

int pl_checkpoint_parse(const char *line, size_t len, struct pl_checkpoint *cp, char *why,
                        size_t size)
{
	struct pl_err e = PL_ERR_INIT;
	const char *problem;
	json_t *doc = NULL;

	memset(cp, 0, sizeof(*cp));
	if (pl_json_parse(line, len, PL_CHECKPOINT_LINE_MAX, 4, "it", &doc, &e)) {
		/* jansson quotes the text near the error: it reaches terminals and JSON output as
		 * printable ASCII only. */
		snprintf(why, size, "%s", e.msg);
		for (char *p = why; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
		return -1;
	}
	if ((problem = shape_problem(doc))) {
		snprintf(why, size, "%s", problem);
		json_decref(doc);
		return -1;
	}
	cp->seq = json_integer_value(json_object_get(doc, "seq"));
	pl_strlcpy(cp->hash, json_string_value(json_object_get(doc, "hash")), sizeof(cp->hash));
	pl_strlcpy(cp->prev, json_string_value(json_object_get(doc, "prev")), sizeof(cp->prev));
	pl_strlcpy(cp->at, json_string_value(json_object_get(doc, "at")), sizeof(cp->at));
	pl_strlcpy(cp->key, json_string_value(json_object_get(doc, "key")), sizeof(cp->key));
	pl_strlcpy(cp->sig, json_string_value(json_object_get(doc, "sig")), sizeof(cp->sig));
	json_decref(doc);
	return 0;
}

/* The signature's 64 bytes, from its one canonical base64 spelling only. */
static int decode_sig(const char *b64, unsigned char sig[SIG_LEN])
{
	unsigned char raw[SIG_B64_LEN / 4 * 3];
	char again[SIG_B64_LEN + 1];

	if (strlen(b64) != SIG_B64_LEN ||
	    EVP_DecodeBlock(raw, (const unsigned char *)b64, SIG_B64_LEN) != (int)sizeof(raw) ||
	    EVP_EncodeBlock((unsigned char *)again, raw, SIG_LEN) != SIG_B64_LEN ||
	    strcmp(again, b64))
		return -1;
	memcpy(sig, raw, SIG_LEN);
	return 0;
}

int pl_checkpoint_check(const struct pl_checkpoint_key *k, const struct pl_checkpoint *cp,
                        char *why, size_t size, struct pl_err *err)
{
	struct pl_buf msg = PL_BUF_INIT;
	unsigned char sig[SIG_LEN];
	EVP_MD_CTX *ctx;
	int r = 1, v;

	if (strcmp(cp->key, k->id)) {
		snprintf(why, size,
		         "it was signed by another key (%.12s...), not the public key given",
		         cp->key);
		return 1;
	}
	if (decode_sig(cp->sig, sig) < 0) {
		snprintf(why, size, "its sig is not a base64 Ed25519 signature");
		return 1;
	}
	if (!(ctx = EVP_MD_CTX_new()))
		return pl_err_set(err, PL_EINTERNAL, "out of memory");
	message(&msg, cp);
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) != 1) {
		r = pl_err_set(err, PL_EINTERNAL, "Ed25519 verification failed to start");
	} else if ((v = EVP_DigestVerify(ctx, sig, SIG_LEN, (const unsigned char *)msg.buf,
	                                 msg.len)) == 1) {
		r = 0;
	} else {
		snprintf(why, size,
		         "its signature does not match its seq, hash, prev and time: it was forged "
		         "or altered");
	}
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	pl_buf_release(&msg);
	return r;
}

/* --- the file ------------------------------------------------------------------------------ */

static int file_error(const char *what, const char *path, struct pl_err *err)
{
	return pl_err_set(err, PL_ECONFIG, "cannot %s the checkpoint file %s: %s", what, path,
	                  strerror(errno));
}

/* Writing it failed: io (a full disk, a read-only file system), or a configuration error
 * when the place named does not exist. */
static int write_error(const char *what, const char *path, struct pl_err *err)
{
	int code = errno == ENOENT || errno == ENOTDIR ? PL_ECONFIG : PL_EIO;

	return pl_err_set(err, code, "cannot %s the checkpoint file %s: %s", what, path,
	                  strerror(errno));
}

/*
 * The file the signer appends to is the signer's own and no one else may write to it: whoever
 * could would choose which history the next checkpoint vouches for.
 */
static int check_own_file(const struct stat *sb, const char *path, struct pl_err *err)
{
	if (sb->st_uid != geteuid()) {
		pl_err_set(err, PL_ECONFIG,
		           "the checkpoint file %s is owned by another user (uid %u)", path,
		           (unsigned)sb->st_uid);
		return pl_err_hint(err,
		                   "it must belong to the user who signs: chown it, or sign into a "
		                   "file of that user's own");
	}
	if (sb->st_mode & 022) {
		pl_err_set(err, PL_ECONFIG,
		           "the checkpoint file %s is writable by group or others (mode %04o)",
		           path, (unsigned)(sb->st_mode & 07777));
		return pl_err_hint(err, "chmod 644 %s", path);
	}
	return 0;
}

/* Lock an open checkpoint file, which must be a regular file (fsync and O_APPEND mean it). */
static int lock_file(int fd, const char *path, int flags, struct pl_err *err)
{
	struct stat sb;
	int r;

	if (fstat(fd, &sb) < 0)
		return file_error("read", path, err);
	if (!S_ISREG(sb.st_mode))
		return pl_err_set(err, PL_ECONFIG, "the checkpoint file %s is not a regular file",
		                  path);
	if ((flags & PL_CHECKPOINT_OWN) && (r = check_own_file(&sb, path, err)))
		return r;
	if (flock(fd, flags & PL_CHECKPOINT_APPEND ? LOCK_EX : LOCK_SH) < 0)
		return file_error("lock", path, err);
	return 0;
}

int pl_checkpoint_file_open(const char *path, int flags, int *fd, struct pl_err *err)
{
	int append = flags & PL_CHECKPOINT_APPEND, r;

	*fd =
	    open(path, (append ? O_RDWR | O_APPEND : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (*fd < 0 && errno == ELOOP) {
		pl_err_set(err, PL_ECONFIG, "the checkpoint file %s is a symbolic link", path);
		return pl_err_hint(err, "name the file itself: a link could be pointed elsewhere");
	}
	if (*fd < 0)
		return errno == ENOENT ? 0
		       : append        ? write_error("open", path, err)
		                       : file_error("open", path, err);
	if ((r = lock_file(*fd, path, flags, err))) {
		close(*fd);
		*fd = -1;
	}
	return r;
}

static int torn(const char *path, struct pl_err *err)
{
	pl_err_set(err, PL_EBADINPUT,
	           "the last line of the checkpoint file %s is incomplete (no newline at its end): "
	           "a write was cut short",
	           path);
	return pl_err_hint(err, "look at the file, and remove that incomplete line to go on");
}

int pl_checkpoint_file_last(int fd, const char *path, struct pl_buf *line, struct pl_err *err)
{
	char tail[PL_CHECKPOINT_LINE_MAX + 2];
	const char *begin, *end;
	struct stat sb;
	off_t start;
	ssize_t n;

	pl_buf_reset(line);
	if (fd < 0)
		return 0;
	if (fstat(fd, &sb) < 0)
		return file_error("read", path, err);
	if (!sb.st_size)
		return 0;
	start = sb.st_size > (off_t)sizeof(tail) ? sb.st_size - (off_t)sizeof(tail) : 0;
	if ((n = pread(fd, tail, (size_t)(sb.st_size - start), start)) != sb.st_size - start)
		return n < 0 ? file_error("read", path, err)
		             : pl_err_set(err, PL_ECONFIG,
		                          "the checkpoint file %s changed while "
		                          "it was read",
		                          path);
	if (tail[n - 1] != '\n')
		return torn(path, err);
	end = tail + n - 1;
	begin = memrchr(tail, '\n', (size_t)(end - tail));
	if (!begin && start > 0)
		return pl_err_set(err, PL_EBADINPUT,
		                  "the last line of the checkpoint file %s is longer than any "
		                  "checkpoint",
		                  path);
	begin = begin ? begin + 1 : tail;
	pl_buf_add(line, begin, (size_t)(end - begin));
	return 0;
}

static int create_file(const char *path, int *fd, struct pl_err *err)
{
	int r;

	*fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
	           0644);
	if (*fd < 0 && errno == EEXIST) {
		pl_err_set(err, PL_ECONFLICT,
		           "the checkpoint file %s was created by another process meanwhile", path);
		return pl_err_hint(err, "run the command again");
	}
	if (*fd < 0)
		return write_error("create", path, err);
	if ((r = lock_file(*fd, path, PL_CHECKPOINT_OWN | PL_CHECKPOINT_APPEND, err)))
		return r;
	if (pl_fsync_parent(path) < 0)
		return write_error("sync the directory of", path, err);
	return 0;
}

int pl_checkpoint_file_append(const char *path, int *fd, const char *line, size_t len,
                              struct pl_err *err)
{
	struct stat sb;
	ssize_t n;
	int r, saved;

	if (*fd < 0 && (r = create_file(path, fd, err)))
		return r;
	if (fstat(*fd, &sb) < 0)
		return file_error("read", path, err);
	if ((n = write(*fd, line, len)) != (ssize_t)len) {
		saved = n < 0 ? errno : ENOSPC;
		/* Under the lock nobody else appended: take the partial line back. */
		if (n > 0 && ftruncate(*fd, sb.st_size) < 0)
			return write_error("cut back an incomplete line of", path, err);
		errno = saved;
		return write_error("write to", path, err);
	}
	if (fsync(*fd) < 0)
		return write_error("sync", path, err);
	return 0;
}

int pl_checkpoint_file_each(int fd, const char *path,
                            int (*fn)(long lineno, const char *text, size_t len,
                                      const char *problem, void *arg),
                            void *arg, struct pl_err *err)
{
	struct pl_buf text = PL_BUF_INIT;
	const char *p, *end, *nl, *problem;
	long lineno = 1;
	size_t len;
	int r = 0;

	if (fd < 0)
		return 0;
	if (lseek(fd, 0, SEEK_SET) < 0 || pl_buf_read_fd(&text, fd) < 0)
		r = errno == EFBIG
		        ? pl_err_set(err, PL_EBADINPUT,
		                     "the checkpoint file %s is larger than 64 MiB", path)
		        : file_error("read", path, err);
	for (p = text.buf, end = text.buf + text.len; !r && p < end; p += len + 1, lineno++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		problem = NULL;
		if (!nl)
			problem = "it is incomplete (no newline at its end): a write was cut short";
		else if (len > PL_CHECKPOINT_LINE_MAX)
			problem = "it is longer than any checkpoint";
		r = fn(lineno, p, len, problem, arg);
	}
	pl_buf_release(&text);
	return r;
}
