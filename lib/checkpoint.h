/*
 * Signed checkpoints of the audit chain: one JSON line per checkpoint, in a file kept outside
 * the database, each an Ed25519 signature over a (seq, hash) of the chain and over the line
 * before it (prev), so that the lines are chained too. Whoever owns the audit table can
 * recompute the chain, but not these signatures (architecture invariant 5).
 */
#ifndef PL_CHECKPOINT_H
#define PL_CHECKPOINT_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "err.h"

/* The longest line a checkpoint file may hold (a checkpoint takes about 340 bytes). */
#define PL_CHECKPOINT_LINE_MAX 1024

struct pl_checkpoint {
	long long seq;
	char hash[65]; /* the chain's hash at event seq */
	char prev[65]; /* sha256 of the line before it in the file (its bytes, no newline); zeros */
	char at[21];   /* when it was signed: 2026-11-24T08:00:00Z */
	char key[65];  /* the signing key's id: sha256 of its DER SubjectPublicKeyInfo, hex */
	char sig[89];  /* base64 of the 64-byte Ed25519 signature */
};

/* An Ed25519 key: a private one signs and verifies, a public one only verifies. */
struct pl_checkpoint_key;

/*
 * Load a PEM key. A private key (what names the variable, e.g. PARLAE_AUDIT_SIGNING_KEY_FILE)
 * must be a regular file owned by the running user with no access for group or others; a key
 * of another type than Ed25519, or a file that holds none, is PL_ECONFIG. *out is freed with
 * pl_checkpoint_key_free.
 */
int pl_checkpoint_key_load(const char *path, int private_key, const char *what,
                           struct pl_checkpoint_key **out, struct pl_err *err);
void pl_checkpoint_key_free(struct pl_checkpoint_key *k);

/* The key's id as checkpoints carry it (owned by k). */
const char *pl_checkpoint_key_id(const struct pl_checkpoint_key *k);

/* A line's hash as the next line's prev names it: lower-hex sha256 of its bytes; -1 on failure. */
int pl_checkpoint_line_hash(const char *line, size_t len, char out[65]);

/* Sign (seq, hash) after the line whose hash is prev, at time now, with a private key into cp. */
int pl_checkpoint_sign(const struct pl_checkpoint_key *k, long long seq, const char *hash,
                       const char *prev, time_t now, struct pl_checkpoint *cp, struct pl_err *err);

/* Append cp as one line, its newline included:
 * {"seq":N,"hash":...,"prev":...,"at":...,"key":...,"sig":...} */
void pl_checkpoint_format(const struct pl_checkpoint *cp, struct pl_buf *out);

/* Parse one line (len bytes, without its newline): 0, or -1 with what is wrong in why. */
int pl_checkpoint_parse(const char *line, size_t len, struct pl_checkpoint *cp, char *why,
                        size_t size);

/*
 * Whether k signed cp as it stands: 0 yes; 1 no, with why (another key, a signature that does
 * not match its seq, hash and time); an error code when the check could not run.
 */
int pl_checkpoint_check(const struct pl_checkpoint_key *k, const struct pl_checkpoint *cp,
                        char *why, size_t size, struct pl_err *err);

/* --- the file: appended to under an exclusive lock, one whole line per write ----------- */

#define PL_CHECKPOINT_READ   0 /* any owner and mode: an auditor reads the operator's file */
#define PL_CHECKPOINT_OWN    1 /* owned by the running user, not writable by group or others */
#define PL_CHECKPOINT_APPEND 2 /* opened to append, under an exclusive lock */

/*
 * Open path and lock it (shared to read, exclusive to append) until close. A symbolic link or
 * anything but a regular file is PL_ECONFIG, and so is, with PL_CHECKPOINT_OWN, a file of
 * another user or one that group or others may write. *fd is -1 when the file does not exist
 * yet: pl_checkpoint_file_append then creates it.
 */
int pl_checkpoint_file_open(const char *path, int flags, int *fd, struct pl_err *err);

/*
 * The newest line of the open file, without its newline, into line (empty when the file is
 * empty or fd is -1). A last line with no newline (a write cut short) or longer than any
 * checkpoint is PL_EBADINPUT: it is reported, never taken.
 */
int pl_checkpoint_file_last(int fd, const char *path, struct pl_buf *line, struct pl_err *err);

/*
 * Append line (ending in a newline) in one write, then fsync; on a short write the file is
 * cut back to where it was. When *fd is -1 the file is created (0644 less the umask: never
 * writable by others; a symbolic link in its place is not followed; failing if another
 * process created it meanwhile: PL_ECONFLICT), locked, and its directory synced.
 */
int pl_checkpoint_file_append(const char *path, int *fd, const char *line, size_t len,
                              struct pl_err *err);

/*
 * Call fn for each line of the open file fd (none when fd is -1) in order (lineno from 1);
 * problem is NULL, or says why the line cannot be a checkpoint (incomplete, too long). A
 * non-zero return from fn stops the walk and is returned.
 */
int pl_checkpoint_file_each(int fd, const char *path,
                            int (*fn)(long lineno, const char *text, size_t len,
                                      const char *problem, void *arg),
                            void *arg, struct pl_err *err);

#endif
