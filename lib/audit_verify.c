/*
 * audit verify and audit checkpoint: the chain recomputed in C from the database's text
 * renderings, walked past every break, and held to checkpoints signed outside the database.
 */
#include "audit.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "encode.h"
#include "banned.h"

#define VERIFY_COLS                                                                                \
	"seq, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"       \
	" actor::text, host::text, account_id::text, action::text, resource_type::text,"           \
	" resource_id::text, outcome::text, error_code::text, request_id::text, metadata::text,"   \
	" prev_hash, hash"
#define NCANON 12

static const char zero_hash[] = "0000000000000000000000000000000000000000000000000000000000000000";

static long long seq_of(const char *text)
{
	return text ? strtoll(text, NULL, 10) : 0;
}

/* lower-hex sha256(prev || canonical form of the row's first NCANON columns) into hex. */
static int chain_hash(EVP_MD_CTX *ctx, const char *prev, const struct pl_db_res *row, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char len[24];

	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, prev, strlen(prev)))
		return -1;
	for (int c = 0; c < NCANON; c++) {
		const char *v = pl_db_val(row, 0, c);
		int n;

		if (!v) {
			if (!EVP_DigestUpdate(ctx, "-;", 2))
				return -1;
			continue;
		}
		n = snprintf(len, sizeof(len), "%d:", pl_db_len(row, 0, c));
		if (!EVP_DigestUpdate(ctx, len, (size_t)n) ||
		    !EVP_DigestUpdate(ctx, v, (size_t)pl_db_len(row, 0, c)) ||
		    !EVP_DigestUpdate(ctx, ";", 1))
			return -1;
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 32)
		return -1;
	pl_hex(md, mdlen, hex);
	return 0;
}

/* --- what was found ------------------------------------------------------------------------ */

/* Room for one more of a capped list: its index, or -1 when it is full (only counted). */
static long grow(void **v, size_t *n, size_t size, long long *more)
{
	if (*n >= PL_AUDIT_MAX_LIST) {
		(*more)++;
		return -1;
	}
	if (!*n || (*n >= 8 && !(*n & (*n - 1))))
		*v = pl_xrealloc(*v, (*n ? *n * 2 : 8) * size);
	return (long)(*n)++;
}

/* Record a broken range (line 0) or a checkpoint line that failed (line from 1). */
static void found(struct pl_audit_verify_result *out, long line, long long seq, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));
static void found(struct pl_audit_verify_result *out, long line, long long seq, const char *fmt,
                  ...)
{
	char *reason;
	size_t size;
	va_list ap;
	long i;

	out->intact = 0;
	if (!line) {
		if ((i = grow((void **)&out->breaks, &out->nbreaks, sizeof(*out->breaks),
		              &out->more_breaks)) < 0)
			return;
		out->breaks[i].seq = seq;
		reason = out->breaks[i].reason;
		size = sizeof(out->breaks[i].reason);
	} else {
		if ((i = grow((void **)&out->failed, &out->nfailed, sizeof(*out->failed),
		              &out->more_failed)) < 0)
			return;
		out->failed[i].line = line;
		out->failed[i].seq = seq;
		reason = out->failed[i].reason;
		size = sizeof(out->failed[i].reason);
	}
	va_start(ap, fmt);
	vsnprintf(reason, size, fmt, ap);
	va_end(ap);
}

/* --- the walk ------------------------------------------------------------------------------ */

/* A checkpoint whose signature holds, to be found in the chain. */
struct anchor {
	long long seq;
	char hash[65];
	char at[21];
	long line;
};

struct walk {
	struct pl_audit_verify_result *out;
	const volatile sig_atomic_t *stop;
	EVP_MD_CTX *ctx;
	long long expect; /* the next event of the chain */
	char running[65]; /* the stored hash of the chain's last event so far */
	int in_break;     /* the event before was bad: the same broken range goes on */
	int past_head;    /* an event after the chain head was reported */
	int from_anchor;  /* start at event expect, whose stored hash must be running */
	int anchor_found;
	struct anchor *anchors; /* sorted by seq */
	size_t nanchors, next;
};

static void walk_init(struct walk *w, struct pl_audit_verify_result *out,
                      const volatile sig_atomic_t *stop)
{
	memset(w, 0, sizeof(*w));
	memset(out, 0, sizeof(*out));
	out->intact = 1;
	out->head_seq = -1;
	w->out = out;
	w->stop = stop;
	w->expect = 1;
	memcpy(w->running, zero_hash, sizeof(w->running));
}

static void rewritten(struct walk *w, const struct anchor *a, const char *now)
{
	found(w->out, a->line, a->seq,
	      "history rewritten before event %lld: %s (checkpointed at %s)", a->seq, now, a->at);
}

/* The checkpoints up to seq, against the chain's event seq (hash NULL: there is none). */
static void hold_anchors(struct walk *w, long long seq, const char *hash)
{
	char now[96];

	while (w->next < w->nanchors && w->anchors[w->next].seq <= seq) {
		const struct anchor *a = &w->anchors[w->next++];

		if (a->seq < seq) {
			snprintf(now, sizeof(now), "the chain has no event %lld any more", a->seq);
			rewritten(w, a, now);
		} else if (!hash || strcmp(a->hash, hash)) {
			rewritten(w, a, "its hash in the chain is not the one signed");
		}
	}
}

static int walk_row(struct walk *w, const struct pl_db_res *row, struct pl_err *err)
{
	struct pl_audit_verify_result *out = w->out;
	long long seq = seq_of(pl_db_val(row, 0, 0));
	const char *prev = pl_db_val(row, 0, NCANON), *hash = pl_db_val(row, 0, NCANON + 1);
	const char *bad = NULL;
	char computed[65];

	if (seq < 1) {
		found(out, 0, seq, "it is not part of the chain: sequence numbers start at 1");
		return 0;
	}
	if (out->head_seq >= 0 && seq > out->head_seq) {
		if (!w->past_head++)
			found(out, 0, seq,
			      "it is not part of the chain: the chain head ends the log at event "
			      "%lld",
			      out->head_seq);
		return 0;
	}
	if (w->from_anchor && !out->events) {
		/* The checkpoint's event: what came before it is vouched for by the signature. */
		w->anchor_found = seq == w->expect && hash && !strcmp(hash, w->running);
	} else if (seq > w->expect) {
		/* The gap explains the broken link: one range, not two. */
		found(out, 0, w->expect, "it is missing (the next event is %lld)", seq);
		w->in_break = 1;
	} else if (!prev || strcmp(prev, w->running)) {
		bad = seq == 1 ? "its prev_hash is not 64 zeros, the start of the chain"
		               : "its prev_hash is not the hash of the event before it";
	}
	/* Re-synchronise: the event's own hash is checked against its own stored prev_hash. */
	if (chain_hash(w->ctx, prev ? prev : "", row, computed) < 0)
		return pl_err_set(err, PL_EINTERNAL, "SHA-256 failed");
	if (!bad && (!hash || strcmp(hash, computed)))
		bad = "its hash does not match its contents: it was altered";
	if (bad && !w->in_break)
		found(out, 0, seq, "%s", bad);
	w->in_break = bad != NULL;
	hold_anchors(w, seq, hash);
	pl_strlcpy(w->running, hash ? hash : "", sizeof(w->running));
	w->expect = seq + 1;
	out->events++;
	return 0;
}

/* After the last event: the chain head must name it, and the checkpoints left are beyond it. */
static void walk_end(struct walk *w)
{
	struct pl_audit_verify_result *out = w->out;
	long long last = w->expect - 1;
	char now[96];

	if (out->head_seq < 0)
		found(out, 0, PL_AUDIT_NO_SEQ, "the chain head (audit_chain_head) is missing");
	else if (out->head_seq > last)
		found(out, 0, last + 1,
		      "it is missing: the chain head says the log ends at event %lld, but the "
		      "last event is %lld",
		      out->head_seq, last);
	else if (strcmp(out->head_hash, w->running))
		found(out, 0, last, "the chain head's hash is not its hash");
	snprintf(now, sizeof(now), "the chain now ends at event %lld", last);
	for (; w->next < w->nanchors; w->next++)
		rewritten(w, &w->anchors[w->next], now);
}

static int walk_rows(struct pl_db *db, struct walk *w, struct pl_err *err)
{
	struct pl_db_stream st;
	char from[32];
	const char *params[1] = {from};
	int r, has_row;

	/* From the anchor, or every row: a forged event 0 or below is reported too. */
	snprintf(from, sizeof(from), "%lld", w->from_anchor ? w->expect : -(1LL << 62));
	if (!(w->ctx = EVP_MD_CTX_new()))
		return pl_err_set(err, PL_EINTERNAL, "out of memory");
	r = pl_db_stream_start(db, &st,
	                       "SELECT " VERIFY_COLS
	                       " FROM audit_events WHERE seq >= $1::bigint ORDER BY seq",
	                       1, params, err);
	while (!r) {
		if ((r = pl_db_stream_next(&st, &has_row, err)) || !has_row)
			break;
		if (w->stop && *w->stop) {
			r = pl_err_set(err, PL_EINTERRUPTED, "interrupted");
			break;
		}
		r = walk_row(w, &st.row, err);
	}
	pl_db_stream_end(&st);
	EVP_MD_CTX_free(w->ctx);
	w->ctx = NULL;
	if (!r)
		walk_end(w);
	return r;
}

/* The head and the rows in one snapshot, so that appends meanwhile do not count. */
static int walk_snapshot(struct pl_session *s, struct walk *w, struct pl_err *err)
{
	struct pl_db_res res = PL_DB_RES_INIT;
	struct pl_db *db;
	const char *hash;
	int r;

	if ((r = pl_session_db(s, &db, err)) ||
	    (r = pl_db_query(db, NULL, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
	                     err)))
		return r;
	db->in_tx = 1;
	r = pl_db_query(db, &res, "SELECT seq, hash FROM audit_chain_head", 0, NULL, err);
	if (!r && pl_db_rows(&res) == 1 && (hash = pl_db_val(&res, 0, 1))) {
		w->out->head_seq = seq_of(pl_db_val(&res, 0, 0));
		pl_strlcpy(w->out->head_hash, hash, sizeof(w->out->head_hash));
	}
	pl_db_res_clear(&res);
	if (!r)
		r = walk_rows(db, w, err);
	pl_db_rollback(db);
	return r;
}

/* --- audit verify -------------------------------------------------------------------------- */

struct lines {
	struct pl_audit_verify_result *out;
	const struct pl_checkpoint_key *key;
	struct anchor *v;
	size_t n, alloc;
	char prev[65];  /* the hash of the line before, as the next line's prev must name it */
	long malformed; /* the first line that is not a checkpoint at all, 0 for none */
	struct pl_err *err;
};

/* Whether a line that parsed follows the line before it: its prev names that line's hash. */
static int chained(struct lines *l, long lineno, const struct pl_checkpoint *cp)
{
	if (!strcmp(cp->prev, l->prev))
		return 1;
	if (lineno == 1)
		found(l->out, lineno, cp->seq,
		      "its prev is not 64 zeros, the start of the file: lines before it were "
		      "removed");
	else
		found(l->out, lineno, cp->seq,
		      "its prev is not the hash of line %ld: lines were removed, reordered or "
		      "altered before it",
		      lineno - 1);
	return 0;
}

static void add_anchor(struct lines *l, long lineno, const struct pl_checkpoint *cp)
{
	struct anchor *a;

	if (l->n == l->alloc) {
		l->alloc = l->alloc ? 2 * l->alloc : 64;
		l->v = pl_xrealloc(l->v, l->alloc * sizeof(*l->v));
	}
	a = &l->v[l->n++];
	a->seq = cp->seq;
	a->line = lineno;
	memcpy(a->hash, cp->hash, sizeof(a->hash));
	memcpy(a->at, cp->at, sizeof(a->at));
	if (cp->seq > l->out->newest_checkpoint)
		l->out->newest_checkpoint = cp->seq;
}

static int check_line(long lineno, const char *text, size_t len, const char *problem, void *arg)
{
	struct lines *l = arg;
	struct pl_checkpoint cp;
	char why[256];
	int r = 0;

	l->out->checkpoints_checked++;
	if (problem || pl_checkpoint_parse(text, len, &cp, why, sizeof(why)) < 0) {
		found(l->out, lineno, 0, "%s", problem ? problem : why);
		if (!l->malformed)
			l->malformed = lineno;
	} else if ((r = pl_checkpoint_check(l->key, &cp, why, sizeof(why), l->err)) == 1) {
		found(l->out, lineno, cp.seq, "%s", why);
		r = 0;
	} else if (!r && chained(l, lineno, &cp)) {
		add_anchor(l, lineno, &cp);
	}
	if (!r && pl_checkpoint_line_hash(text, len, l->prev) < 0)
		r = pl_err_set(l->err, PL_EINTERNAL, "SHA-256 failed");
	return r;
}

/* Every line of the open checkpoint file fd, checked with key: the sound ones into l. */
static int read_lines(int fd, const char *path, const struct pl_checkpoint_key *key,
                      struct pl_audit_verify_result *out, struct lines *l, struct pl_err *err)
{
	memset(l, 0, sizeof(*l));
	memcpy(l->prev, zero_hash, sizeof(l->prev));
	l->out = out;
	l->key = key;
	l->err = err;
	return pl_checkpoint_file_each(fd, path, check_line, l, err);
}

static int by_seq(const void *a, const void *b)
{
	const struct anchor *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int by_line(const void *a, const void *b)
{
	const struct pl_audit_checkpoint_failure *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

/* The checkpoints of req into l, or a reason why there are none to check against. */
static int verify_lines(const struct pl_audit_verify_req *req, struct pl_audit_verify_result *out,
                        struct lines *l, struct pl_checkpoint_key **key, struct pl_err *err)
{
	int fd = -1, r;

	memset(l, 0, sizeof(*l));
	out->checkpoints_given = 1;
	if (!req->public_key)
		return pl_err_set(err, PL_EUSAGE, "--checkpoints needs --public-key");
	if ((r = pl_checkpoint_key_load(req->public_key, 0, "the public key", key, err)) ||
	    (r = pl_checkpoint_file_open(req->checkpoints, PL_CHECKPOINT_READ, &fd, err)) ||
	    (r = read_lines(fd, req->checkpoints, *key, out, l, err)))
		goto out;
	/* A check that checked nothing is not a pass. */
	if (!out->checkpoints_checked) {
		out->intact = 0;
		snprintf(out->checkpoints_problem, sizeof(out->checkpoints_problem),
		         "no checkpoint to check against: %s %s", req->checkpoints,
		         fd < 0 ? "does not exist" : "is empty");
	}
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int pl_audit_verify(struct pl_session *s, const struct pl_audit_verify_req *req,
                    struct pl_audit_verify_result *out, struct pl_err *err)
{
	struct pl_checkpoint_key *key = NULL;
	struct lines l;
	struct walk w;
	int r = 0;

	walk_init(&w, out, req->stop);
	memset(&l, 0, sizeof(l));
	if (req->checkpoints) {
		if ((r = verify_lines(req, out, &l, &key, err)))
			goto out;
		if (l.n)
			qsort(l.v, l.n, sizeof(*l.v), by_seq);
		w.anchors = l.v;
		w.nanchors = l.n;
	}
	r = walk_snapshot(s, &w, err);
	if (out->nfailed)
		qsort(out->failed, out->nfailed, sizeof(*out->failed), by_line);
out:
	free(l.v);
	pl_checkpoint_key_free(key);
	return r;
}

void pl_audit_verify_release(struct pl_audit_verify_result *out)
{
	free(out->breaks);
	free(out->failed);
	out->breaks = NULL;
	out->failed = NULL;
	out->nbreaks = out->nfailed = 0;
}

/* --- audit checkpoint ---------------------------------------------------------------------- */

/* The newest line of a checkpoint file, parsed; never taken when it is not whole. */
static int parse_last(int fd, const char *path, struct pl_checkpoint *cp, int *found,
                      struct pl_err *err)
{
	struct pl_buf line = PL_BUF_INIT;
	char why[256];
	int r;

	*found = 0;
	if (!(r = pl_checkpoint_file_last(fd, path, &line, err)) && line.len) {
		if (pl_checkpoint_parse(line.buf, line.len, cp, why, sizeof(why)) < 0) {
			pl_err_set(
			    err, PL_EBADINPUT,
			    "the last line of the checkpoint file %s is not a checkpoint: %s", path,
			    why);
			r = pl_err_hint(err, "look at the file: only 'parlae audit checkpoint' "
			                     "writes to it");
		} else {
			*found = 1;
		}
	}
	pl_buf_release(&line);
	return r;
}

/* The newest line must be signed by key: a file holds the lines of one key. */
static int check_newest(const struct pl_checkpoint_key *key, const char *path,
                        const struct pl_checkpoint *cp, struct pl_err *err)
{
	char why[256];
	int r = pl_checkpoint_check(key, cp, why, sizeof(why), err);

	if (r != 1)
		return r;
	pl_err_set(err, PL_ESECURITY, "the newest checkpoint in %s does not hold: %s", path, why);
	return pl_err_hint(err,
	                   "check the file with 'parlae audit verify --checkpoints %s "
	                   "--public-key PUBLIC_KEY'",
	                   path);
}

/* What status may show of the newest line: not beyond the log, and signed when it can tell. */
static int check_last(const char *path, const char *public_key, long long last_event,
                      const struct pl_checkpoint *cp, struct pl_err *err)
{
	struct pl_checkpoint_key *key = NULL;
	int r;

	if (last_event >= 0 && cp->seq > last_event)
		return pl_err_set(err, PL_ESECURITY,
		                  "the newest checkpoint (event %lld) is beyond the last event "
		                  "(%lld): the file was edited",
		                  cp->seq, last_event);
	if (!public_key)
		return 0;
	if (!(r = pl_checkpoint_key_load(public_key, 0, "PARLAE_AUDIT_PUBLIC_KEY", &key, err)))
		r = check_newest(key, path, cp, err);
	pl_checkpoint_key_free(key);
	return r;
}

int pl_audit_last_checkpoint(const char *path, const char *public_key, long long last_event,
                             long long *seq, struct pl_err *err)
{
	struct pl_checkpoint cp;
	int fd = -1, found = 0, r;

	*seq = 0;
	if (!(r = pl_checkpoint_file_open(path, PL_CHECKPOINT_READ, &fd, err)) &&
	    !(r = parse_last(fd, path, &cp, &found, err)) && found &&
	    !(r = check_last(path, public_key, last_event, &cp, err)))
		*seq = cp.seq;
	if (fd >= 0)
		close(fd);
	return r;
}

/* Why the lines of a checkpoint file cannot be built on, or 0: l's first failure. */
static int refuse_lines(const struct pl_audit_verify_result *res, const struct lines *l,
                        const char *path, struct pl_err *err)
{
	const struct pl_audit_checkpoint_failure *f = res->failed;

	if (!res->nfailed)
		return 0;
	if (f->line == l->malformed) {
		pl_err_set(err, PL_EBADINPUT,
		           "line %ld of the checkpoint file %s is not a checkpoint: %s", f->line,
		           path, f->reason);
		return pl_err_hint(err,
		                   "nothing was appended; look at the file: only 'parlae audit "
		                   "checkpoint' writes to it");
	}
	pl_err_set(err, PL_ESECURITY, "checkpoint line %ld of %s does not hold: %s", f->line, path,
	           f->reason);
	return pl_err_hint(err,
	                   "nothing was appended; check the file with 'parlae audit verify "
	                   "--checkpoints %s --public-key PUBLIC_KEY'; a new key starts a new file",
	                   path);
}

/* Why the chain cannot be checkpointed, or 0. */
static int refuse(const struct walk *w, const char *path, const struct anchor *last,
                  struct pl_err *err)
{
	const struct pl_audit_verify_result *res = w->out;
	const struct pl_audit_break *b = res->breaks;

	if (w->from_anchor && !w->anchor_found) {
		pl_err_set(
		    err, PL_ENO,
		    "the audit chain no longer holds the newest checkpoint of %s (event %lld, "
		    "signed at %s): history rewritten before event %lld",
		    path, last->seq, last->at, last->seq);
		return pl_err_hint(err,
		                   "nothing was appended; see what changed with 'parlae audit "
		                   "verify --checkpoints %s --public-key PUBLIC_KEY'",
		                   path);
	}
	if (res->nbreaks || res->more_breaks) {
		if (b->seq == PL_AUDIT_NO_SEQ)
			pl_err_set(err, PL_ENO, "the audit log is broken: %s", b->reason);
		else
			pl_err_set(err, PL_ENO, "the audit log is broken at event %lld: %s", b->seq,
			           b->reason);
		return pl_err_hint(err, "nothing was appended; 'parlae audit verify' lists every "
		                        "break");
	}
	if (res->head_seq < 1)
		return pl_err_set(err, PL_ENO, "the audit log has no event to checkpoint");
	return 0;
}

static int load_signing_key(struct pl_session *s, struct pl_checkpoint_key **key,
                            struct pl_err *err)
{
	const char *file = pl_config_get(s->cfg, "PARLAE_AUDIT_SIGNING_KEY_FILE");

	if (!file) {
		pl_err_set(err, PL_ECONFIG,
		           "PARLAE_AUDIT_SIGNING_KEY_FILE is not set: it names the Ed25519 private "
		           "key that signs checkpoints");
		return pl_err_hint(err, "make one with 'openssl genpkey -algorithm ed25519 -out "
		                        "FILE' and chmod 600 it");
	}
	return pl_checkpoint_key_load(file, 1, "PARLAE_AUDIT_SIGNING_KEY_FILE", key, err);
}

/* The sound line of the highest seq: the one the next checkpoint builds on; NULL for none. */
static const struct anchor *newest(const struct lines *l)
{
	const struct anchor *a = NULL;

	for (size_t i = 0; i < l->n; i++)
		if (!a || l->v[i].seq > a->seq)
			a = &l->v[i];
	return a;
}

/*
 * Every line of the file must hold (a file of one key, each line chained to the one before);
 * then verify since the newest checkpoint (or from the start) and sign the head into out.
 */
static int sign_head(struct pl_session *s, const struct pl_audit_checkpoint_req *req, int fd,
                     const struct pl_checkpoint_key *key, struct pl_audit_checkpoint_result *out,
                     struct pl_err *err)
{
	struct pl_audit_verify_result res, lres;
	const struct anchor *last;
	struct pl_checkpoint cp;
	struct lines l;
	struct walk w;
	int r;

	memset(&lres, 0, sizeof(lres));
	walk_init(&w, &res, req->stop);
	if ((r = read_lines(fd, out->path, key, &lres, &l, err)) ||
	    (r = refuse_lines(&lres, &l, out->path, err)))
		goto out;
	if ((last = newest(&l))) {
		w.from_anchor = 1;
		w.expect = out->since = last->seq;
		memcpy(w.running, last->hash, sizeof(w.running));
	}
	if ((r = walk_snapshot(s, &w, err)) || (r = refuse(&w, out->path, last, err)) ||
	    (r = pl_checkpoint_sign(key, res.head_seq, res.head_hash, l.prev, time(NULL), &cp,
	                            err)))
		goto out;
	out->seq = cp.seq;
	pl_checkpoint_format(&cp, &out->line);
out:
	free(l.v);
	pl_audit_verify_release(&lres);
	pl_audit_verify_release(&res);
	return r;
}

int pl_audit_checkpoint(struct pl_session *s, const struct pl_audit_checkpoint_req *req,
                        struct pl_audit_checkpoint_result *out, struct pl_err *err)
{
	struct pl_audit_event ev = {NULL, "audit.checkpoint", "audit_chain", NULL, NULL};
	struct pl_checkpoint_key *key = NULL;
	struct pl_buf meta = PL_BUF_INIT;
	struct pl_db *db;
	char seq[32];
	int fd = -1, r;

	memset(out, 0, sizeof(*out));
	pl_buf_init(&out->line, PL_CHECKPOINT_LINE_MAX);
	out->path = req->output ? req->output : pl_config_get(s->cfg, "PARLAE_AUDIT_CHECKPOINTS");
	if ((r = pl_session_db(s, &db, err)))
		return r;
	if ((r = load_signing_key(s, &key, err)) ||
	    (out->path &&
	     (r = pl_checkpoint_file_open(
	          out->path, PL_CHECKPOINT_OWN | (s->dry_run ? 0 : PL_CHECKPOINT_APPEND), &fd,
	          err))) ||
	    (r = sign_head(s, req, fd, key, out, err)))
		goto out;
	snprintf(seq, sizeof(seq), "%lld", out->seq);
	pl_buf_addf(&meta, "{\"seq\": %lld}", out->seq);
	ev.resource_id = seq;
	ev.metadata = meta.buf;
	if (!s->dry_run && out->path)
		r = pl_checkpoint_file_append(out->path, &fd, out->line.buf, out->line.len, err);
out:
	/* Closing releases the lock: the line is on disk before the next run reads it. */
	if (fd >= 0)
		close(fd);
	if (!s->dry_run)
		r = pl_audit_finish(s, &ev, r, err);
	pl_checkpoint_key_free(key);
	pl_buf_release(&meta);
	return r;
}

void pl_audit_checkpoint_release(struct pl_audit_checkpoint_result *out)
{
	pl_buf_release(&out->line);
}
