/*
 * A recorded corpus of Vapi exchanges (vapi listen --record, vapi replay --expect-dir):
 * one directory, 0700, holding DIR/.key (the corpus's pseudonymisation key, 0600) and each
 * exchange as DIR/<time>-<call id>-<n>.json plus .response.json (0600). Recording redacts by
 * default: PHI in a message or a response is replaced by stable pseudonyms (a keyed
 * HMAC-SHA256 of the value), the same value giving the same pseudonym within one corpus.
 */
#ifndef PL_CORPUS_H
#define PL_CORPUS_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

struct pl_corpus;

/* Open (create 0700 if missing; refuse a directory group/world-accessible) a corpus
   directory; loads or creates DIR/.key (32 random bytes, 0600). redact: pseudonymise.
   A corpus is redacted (DIR/.key) or raw (DIR/.raw, written when redact is 0, and then no
   key is made): opening one the other way is PL_EUSAGE, so that a replay knows which it is. */
int pl_corpus_open(const char *dir, int redact, struct pl_corpus **out, struct pl_err *err);

/* Write one exchange as DIR/<UTC time YYYYmmddTHHMMSSZ>-<call id>-<n>.json and
   .response.json (0600, written to a temporary file then renamed), redacted unless the
   corpus was opened without. call_id may be NULL ("nocall"). Thread-safe. */
int pl_corpus_write(struct pl_corpus *c, const char *call_id, const char *request, size_t rlen,
                    const char *response, size_t plen, struct pl_err *err);

/* Redact one Vapi message or response body in place (JSON text → JSON text). */
int pl_corpus_redact(struct pl_corpus *c, const char *in, size_t len, struct pl_buf *out,
                     struct pl_err *err);

void pl_corpus_close(struct pl_corpus *c);

/*
 * For comparing (vapi replay --expect-dir): DIR/.key when there is one (redacted corpus:
 * pl_corpus_keyed is then 1), else a random key of this process, so that two bodies can
 * still be compared and shown redacted. Nothing is created and modes are not checked (a
 * corpus checked out by CI is 0644).
 */
int pl_corpus_load(const char *dir, struct pl_corpus **out, struct pl_err *err);
int pl_corpus_keyed(const struct pl_corpus *c);

/* Write path (0600) through a temporary file renamed over it. */
int pl_corpus_put(const char *path, const char *data, size_t len, struct pl_err *err);

#endif
