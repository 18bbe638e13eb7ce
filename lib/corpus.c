/*
 * The recorded corpus: directory, key, file layout, and the redaction of Vapi messages and
 * responses into stable pseudonyms.
 *
 * Redaction walks the JSON document and decides each string by its key (compared folded:
 * lowercase, without '-' and '_') and, for two keys, by the key of the object holding it.
 * It is a whitelist: what is not known to be safe is replaced.
 *
 * Kept as they are (not PHI, and a replay needs them):
 *   - ids: "id" and keys ending in "Id"/"_id"/"-id"/"ID" (toolCallId, orgId, assistantId,
 *     phoneNumberId, accountId, patientId, providerId, appointmentId; smsSid does not end so
 *     and goes as text). A PMS's patient id is kept on purpose: a replay books for "the same"
 *     patient; it names a row in the practice's system, not a person.
 *   - type, role, status, endedReason, timezone, appointmentType, urgency,
 *     confirmationNumber, method, object;
 *   - "name" under function, functionCall, tool or results (a tool's name), and "number"
 *     under phoneNumber (the practice's own line, which says which account a call is for);
 *   - dates and times of service: values shaped like YYYY-MM-DD... or HH:MM... under
 *     date, time, start, end, slots, timestamp and keys ending in "date", "time" or "at"
 *     (startTime, createdAt, appointmentDate): availability and booking replay only with
 *     them. Anything else under those keys is treated as free text;
 *   - numbers under 1,000,000, reals, booleans and null (durations, counts, flags);
 *   - object keys (only values are redacted), and the empty string.
 * Replaced by a pseudonym of the same kind (HMAC-SHA256 of the value with the corpus key):
 *   - names: firstName, lastName, middleName, fullName, patientName, preferredName, nickname,
 *     customerName, callerName, and "name" anywhere else (customer.name) → Name-<6 hex>
 *     (case and surrounding blanks ignored, so "Ana" and "ana " are one patient);
 *   - phones: phone, phoneNumber (a string), cell, mobile, homePhone, workPhone,
 *     callerNumber, callbackNumber, number (customer.number) and any value shaped like a
 *     phone number → +1555 and 7 digits (the E.164 digits are hashed, so "555-123-4567" and
 *     "+15551234567" give one pseudonym);
 *   - emails: email, emailAddress, and any value shaped like one → <12 hex>@example.invalid;
 *   - dates of birth: dob, dateOfBirth, birthDate, birthday, and any YYYY-MM-DD value under
 *     a key not listed above → a valid date from 1920 to 2005 (what follows the date, a time,
 *     is kept);
 *   - every other string (addresses, notes, reason, summary, transcript, messages, query,
 *     spoken messages, error texts, URLs, unknown arguments) → text-<12 hex>, except a string
 *     that holds a JSON object or array (tool arguments, result strings), which is parsed,
 *     redacted the same way and written back as compact JSON;
 *   - integers of 1,000,000 and more under keys not listed above → a phone or text pseudonym.
 * Names, texts and emails already in pseudonym form are kept, so redacting twice changes
 * nothing for them (a replay against a sandbox seeded with pseudonyms compares equal);
 * phone numbers and dates cannot be told from real ones and are hashed again.
 *
 * Nothing here prints or traces a body: bodies go only to the corpus files.
 */
#include "corpus.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "encode.h"
#include "json.h"
#include "utf8.h"
#include "vapi.h"
#include "banned.h"

#define KEY_LEN   32
#define MAX_DEPTH PL_VAPI_MAX_DEPTH

struct pl_corpus {
	char *dir;
	int redact;
	int keyed; /* the key is DIR/.key (else a random one of this process) */
	unsigned char key[KEY_LEN];
	EVP_MAC_CTX *mac; /* HMAC-SHA256 keyed once, duplicated for each value */
	pthread_mutex_t lock;
	unsigned long seq;
};

/* --- redaction ----------------------------------------------------------------------------- */

enum kind { K_KEEP, K_WHEN, K_NAME, K_PHONE, K_EMAIL, K_DOB, K_ANY };

static int in_list(const char *folded, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(folded, *list))
			return 1;
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

static const char *const dob_keys[] = {"dob", "dateofbirth", "birthdate", "birthday", NULL};
static const char *const name_keys[] = {
    "firstname",     "lastname",   "middlename", "fullname",      "patientname",
    "preferredname", "nickname",   "givenname",  "familyname",    "surname",
    "customername",  "callername", "guarantor",  "guarantorname", NULL};
static const char *const phone_keys[] = {
    "phone",     "phonenumber",  "cell",           "cellphone",     "mobile", "homephone",
    "workphone", "callernumber", "callbacknumber", "contactnumber", "number", NULL};
static const char *const email_keys[] = {"email", "emailaddress", NULL};
static const char *const safe_keys[] = {"type",        "role",     "status",
                                        "endedreason", "timezone", "appointmenttype",
                                        "urgency",     "method",   "confirmationnumber",
                                        "object",      NULL};
static const char *const when_keys[] = {"date", "time", "start", "end", "slots", "timestamp", NULL};
static const char *const tool_parents[] = {"function", "functioncall", "tool", "results", NULL};

/* toolCallId, orgId, patient_id, call-id, ID: an identifier, not a person. */
static int is_id_key(const char *key)
{
	size_t n = strlen(key);

	if (!strcmp(key, "id") || !strcmp(key, "ID") || !strcmp(key, "Id"))
		return 1;
	return n > 2 && (ends_with(key, "Id") || ends_with(key, "ID") || ends_with(key, "_id") ||
	                 ends_with(key, "-id"));
}

static enum kind classify(const char *key, const char *parent)
{
	char k[64], p[64];

	if (!key)
		return K_ANY;
	pl_vapi_fold(key, k, sizeof(k));
	pl_vapi_fold(parent ? parent : "", p, sizeof(p));
	if (in_list(k, dob_keys))
		return K_DOB;
	if (!strcmp(k, "name"))
		return in_list(p, tool_parents) ? K_KEEP : K_NAME;
	if (!strcmp(k, "number") && !strcmp(p, "phonenumber"))
		return K_KEEP;
	if (in_list(k, name_keys))
		return K_NAME;
	if (in_list(k, phone_keys))
		return K_PHONE;
	if (in_list(k, email_keys))
		return K_EMAIL;
	if (is_id_key(key) || in_list(k, safe_keys))
		return K_KEEP;
	if (in_list(k, when_keys) || ends_with(k, "date") || ends_with(k, "time") ||
	    ends_with(k, "at"))
		return K_WHEN;
	return K_ANY;
}

static int digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* "2026-12-01", "2026-12-01T10:00:00", "1990-04-01 00:00:00Z": a date first. */
static int date_shaped(const char *s)
{
	return strlen(s) >= 10 && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' &&
	       digits(s + 8, 2);
}

/* A date or a time of day, then only what times are written with. */
static int when_shaped(const char *s)
{
	size_t start;

	if (date_shaped(s))
		start = 10;
	else if (isdigit((unsigned char)s[0]) && s[1] == ':' && digits(s + 2, 2))
		start = 4;
	else if (digits(s, 2) && s[2] == ':' && digits(s + 3, 2))
		start = 5;
	else
		return 0;
	return strlen(s) <= 40 && strspn(s + start, "0123456789:.TZ+- ") == strlen(s + start);
}

static int email_shaped(const char *s)
{
	const char *at = strchr(s, '@');

	return at && at > s && strchr(at + 1, '.') && !strpbrk(s, " \t\r\n<>\"") &&
	       !strchr(at + 1, '@');
}

/* Already a pseudonym of this module: kept, so that redacting twice changes nothing. */
static int hex_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return 0;
	return 1;
}

static int is_pseudonym(const char *s)
{
	size_t n = strlen(s);

	return (n == 11 && !strncmp(s, "Name-", 5) && hex_run(s + 5, 6)) ||
	       (n == 17 && !strncmp(s, "text-", 5) && hex_run(s + 5, 12)) ||
	       (n == 12 + 16 && hex_run(s, 12) && !strcmp(s + 12, "@example.invalid"));
}

static void mac(const struct pl_corpus *c, const char *kind, const char *v, size_t n,
                unsigned char out[32])
{
	/* A copy per value: c->mac itself is only read, so threads may share the corpus. */
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(c->mac);
	size_t len = 0;

	if (!ctx || !EVP_MAC_update(ctx, (const unsigned char *)kind, strlen(kind) + 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)v, n) ||
	    !EVP_MAC_final(ctx, out, &len, 32) || len != 32)
		abort(); /* libcrypto out of memory, as pl_xmalloc */
	EVP_MAC_CTX_free(ctx);
}

/* Fetching HMAC and SHA-256 costs more than hashing a value: done once per corpus. */
static int init_mac(struct pl_corpus *c, struct pl_err *err)
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end()};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);

	c->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	if (!c->mac || !EVP_MAC_init(c->mac, c->key, KEY_LEN, params))
		return pl_err_set(err, PL_EINTERNAL, "libcrypto has no HMAC-SHA256");
	return 0;
}

static uint64_t mac_u64(const struct pl_corpus *c, const char *kind, const char *v, size_t n)
{
	unsigned char h[32];
	uint64_t x = 0;

	mac(c, kind, v, n, h);
	for (int i = 0; i < 8; i++)
		x = x << 8 | h[i];
	return x;
}

static void mac_hex(const struct pl_corpus *c, const char *kind, const char *v, size_t n, char *out,
                    size_t hexlen)
{
	unsigned char h[32];
	char hex[65];

	mac(c, kind, v, n, h);
	pl_hex(h, 32, hex);
	memcpy(out, hex, hexlen);
	out[hexlen] = '\0';
}

/* Lowercase, blanks around dropped: one person however the agent wrote them. */
static char *normal_text(const char *s)
{
	size_t n;
	char *t;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	t = pl_xstrndup(s, n);
	for (char *p = t; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return t;
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm). */
static void civil(long z, int *y, unsigned *m, unsigned *d)
{
	long era, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	yoe = z - era * 146097;
	yoe = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
	doy = z - era * 146097 - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static json_t *pseudo_text(const struct pl_corpus *c, const char *s)
{
	char out[32] = "text-";

	mac_hex(c, "text", s, strlen(s), out + 5, 12);
	return pl_json_x(json_string(out));
}

static json_t *pseudo_name(const struct pl_corpus *c, const char *s)
{
	char out[32] = "Name-", *t;

	if (is_pseudonym(s))
		return pl_json_x(json_string(s));
	t = normal_text(s);
	mac_hex(c, "name", t, strlen(t), out + 5, 6);
	free(t);
	return pl_json_x(json_string(out));
}

static json_t *pseudo_email(const struct pl_corpus *c, const char *s)
{
	char out[64], *t = normal_text(s);

	mac_hex(c, "email", t, strlen(t), out, 12);
	free(t);
	memcpy(out + 12, "@example.invalid", sizeof("@example.invalid"));
	return pl_json_x(json_string(out));
}

static json_t *pseudo_phone(const struct pl_corpus *c, const char *e164)
{
	char out[16];

	snprintf(out, sizeof(out), "+1555%07u",
	         (unsigned)(mac_u64(c, "phone", e164, strlen(e164)) % 10000000u));
	return pl_json_x(json_string(out));
}

/* A valid date from 1920-01-01 to 2005-12-31, then what followed the date when it is a time. */
static json_t *pseudo_date(const struct pl_corpus *c, const char *s)
{
	const long first = -18262, span = 31412; /* 1920-01-01 .. 2005-12-31 */
	struct pl_buf b = PL_BUF_INIT;
	const char *rest = s + 10;
	unsigned m, d;
	json_t *v;
	int y;

	civil(first + (long)(mac_u64(c, "date", s, 10) % (uint64_t)span), &y, &m, &d);
	pl_buf_addf(&b, "%04d-%02u-%02u", y, m, d);
	if (*rest && strspn(rest, "0123456789:.TZ+- ") == strlen(rest))
		pl_buf_adds(&b, rest);
	v = pl_json_x(json_string(b.buf));
	pl_buf_release(&b);
	return v;
}

static json_t *walk(const struct pl_corpus *c, json_t *v, const char *key, const char *parent,
                    int depth);

/* A string that holds a JSON object or array: redacted inside, written back compact. */
static json_t *inner_json(const struct pl_corpus *c, const char *s, const char *key,
                          const char *parent, int depth)
{
	struct pl_err err = PL_ERR_INIT;
	json_t *doc, *red;
	char *text;

	if (depth >= MAX_DEPTH || (*s != '{' && *s != '['))
		return NULL;
	if (pl_json_parse(s, strlen(s), PL_VAPI_MAX_BODY, MAX_DEPTH, "a string", &doc, &err))
		return NULL;
	if (!json_is_object(doc) && !json_is_array(doc)) {
		json_decref(doc);
		return NULL;
	}
	red = walk(c, doc, key, parent, depth + 1);
	json_decref(doc);
	text = pl_json_dump(red);
	json_decref(red);
	doc = pl_json_x(json_string(text));
	free(text);
	return doc;
}

/* Whatever the key, by its shape. */
static json_t *by_shape(const struct pl_corpus *c, const char *s, const char *key,
                        const char *parent, int depth)
{
	char e164[32];
	json_t *v;

	if (!*s || is_pseudonym(s))
		return pl_json_x(json_string(s));
	if ((v = inner_json(c, s, key, parent, depth)))
		return v;
	if (date_shaped(s))
		return pseudo_date(c, s);
	pl_phone_digits(s, e164, sizeof(e164));
	if (*e164)
		return pseudo_phone(c, e164);
	if (email_shaped(s))
		return pseudo_email(c, s);
	return pseudo_text(c, s);
}

static json_t *string(const struct pl_corpus *c, const char *s, const char *key, const char *parent,
                      int depth)
{
	char e164[32];

	switch (classify(key, parent)) {
	case K_KEEP:
		return pl_json_x(json_string(s));
	case K_WHEN:
		if (when_shaped(s))
			return pl_json_x(json_string(s));
		break;
	case K_NAME:
		if (*s)
			return pseudo_name(c, s);
		break;
	case K_PHONE:
		pl_phone_digits(s, e164, sizeof(e164));
		if (*e164)
			return pseudo_phone(c, e164);
		break;
	case K_EMAIL:
		if (email_shaped(s) && !is_pseudonym(s))
			return pseudo_email(c, s);
		break;
	case K_DOB:
		if (date_shaped(s))
			return pseudo_date(c, s);
		break;
	case K_ANY:
		break;
	}
	return by_shape(c, s, key, parent, depth);
}

static json_t *number(const struct pl_corpus *c, json_t *v, const char *key, const char *parent,
                      int depth)
{
	json_int_t n = json_integer_value(v);
	enum kind k = classify(key, parent);
	char text[32];

	if (k == K_KEEP || k == K_WHEN || (n < 1000000 && n > -1000000))
		return json_incref(v);
	snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, n);
	return k == K_PHONE ? string(c, text, key, parent, depth)
	                    : by_shape(c, text, key, parent, depth);
}

/* A new reference: v redacted. key is v's key (an array's for its items), parent the key of
 * the object holding v. */
static json_t *walk(const struct pl_corpus *c, json_t *v, const char *key, const char *parent,
                    int depth)
{
	const char *k;
	json_t *item, *out;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		out = json_object();
		json_object_foreach(v, k, item)
		    pl_json_set(out, k, walk(c, item, k, key, depth + 1));
		return pl_json_x(out);
	case JSON_ARRAY:
		out = json_array();
		json_array_foreach(v, i, item)
		    pl_json_append(out, walk(c, item, key, parent, depth + 1));
		return pl_json_x(out);
	case JSON_STRING:
		return string(c, json_string_value(v), key, parent, depth);
	case JSON_INTEGER:
		return number(c, v, key, parent, depth);
	default:
		return json_incref(v);
	}
}

int pl_corpus_redact(struct pl_corpus *c, const char *in, size_t len, struct pl_buf *out,
                     struct pl_err *err)
{
	json_t *doc, *red;
	char *text;
	int r;

	/* jansson's message quotes the text near the fault: a body's PHI. */
	if ((r = pl_json_parse(in, len, PL_VAPI_MAX_BODY, MAX_DEPTH, "the body", &doc, err))) {
		pl_err_clear(err);
		return pl_err_set(err, r,
		                  "the body is not a JSON document of at most 1 MiB and "
		                  "%d levels",
		                  MAX_DEPTH);
	}
	red = walk(c, doc, NULL, NULL, 0);
	json_decref(doc);
	text = pl_json_dump(red);
	json_decref(red);
	r = pl_buf_adds(out, text) < 0 ? pl_err_set(err, PL_EBADINPUT, "the body is too large") : 0;
	free(text);
	return r;
}

/* --- files --------------------------------------------------------------------------------- */

static int io_error(struct pl_err *err, const char *what, const char *path)
{
	return pl_err_set(err, PL_EIO, "cannot %s %s: %s", what, path, strerror(errno));
}

/* A new file holding data, 0600, created beside path and linked to it: -EEXIST when path
 * is there already (and replace is 0), else 0 or the error. */
static int put_file(const char *path, const char *data, size_t len, int replace, struct pl_err *err)
{
	struct pl_buf tmp = PL_BUF_INIT;
	int fd, r = 0;

	pl_buf_addf(&tmp, "%s.tmp.XXXXXX", path);
	if ((fd = mkstemp(tmp.buf)) < 0) {
		r = io_error(err, "create a file beside", path);
		goto out;
	}
	if (fchmod(fd, 0600) < 0) {
		r = io_error(err, "chmod", tmp.buf);
		goto out;
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = io_error(err, "write", path);
			goto out;
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = io_error(err, "write", path);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = io_error(err, "write", path);
		goto out;
	}
	fd = -1;
	if (replace ? rename(tmp.buf, path) < 0 : link(tmp.buf, path) < 0) {
		r = !replace && errno == EEXIST ? -EEXIST : io_error(err, "write", path);
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (tmp.len)
		unlink(tmp.buf); /* after a rename it is gone already */
	pl_buf_release(&tmp);
	return r;
}

int pl_corpus_put(const char *path, const char *data, size_t len, struct pl_err *err)
{
	int r = put_file(path, data, len, 1, err);

	if (!r && pl_fsync_parent(path) < 0)
		r = io_error(err, "sync the directory of", path);
	return r;
}

static int read_key(struct pl_corpus *c, const char *path, int strict, struct pl_err *err)
{
	unsigned char buf[KEY_LEN + 1];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : io_error(err, "read", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return pl_err_set(err, PL_ECONFIG, "%s is not a regular file", path);
	}
	if (strict && pl_check_private_file(&st, "the corpus key", path, err)) {
		close(fd);
		return err->code;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != KEY_LEN) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return pl_err_set(err, PL_ECONFIG, "%s is not a corpus key (32 bytes)", path);
	}
	memcpy(c->key, buf, KEY_LEN);
	OPENSSL_cleanse(buf, sizeof(buf));
	c->keyed = 1;
	return 0;
}

static int make_key(struct pl_corpus *c, const char *path, struct pl_err *err)
{
	int r;

	if (pl_random_bytes(c->key, KEY_LEN) < 0)
		return pl_err_set(err, PL_EINTERNAL, "no randomness for the corpus key");
	r = put_file(path, (const char *)c->key, KEY_LEN, 0, err);
	if (r == -EEXIST) /* another recorder made it first: theirs is the key */
		return read_key(c, path, 1, err);
	if (!r)
		c->keyed = 1;
	return r;
}

static struct pl_corpus *corpus_new(const char *dir, int redact)
{
	struct pl_corpus *c = pl_xcalloc(1, sizeof(*c));

	c->dir = pl_xstrdup(dir);
	c->redact = redact;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static int open_dir(const char *dir, struct pl_err *err)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return io_error(err, "create the corpus directory", dir);
	if (lstat(dir, &st) < 0)
		return io_error(err, "read", dir);
	if (!S_ISDIR(st.st_mode))
		return pl_err_set(err, PL_EUSAGE, "%s is not a directory", dir);
	if (st.st_uid != geteuid()) {
		pl_err_set(err, PL_ECONFIG, "the corpus directory %s is owned by another user",
		           dir);
		return pl_err_hint(err, "record into a directory of your own");
	}
	if (st.st_mode & 077) {
		pl_err_set(
		    err, PL_ECONFIG,
		    "the corpus directory %s has mode %04o: others may read what is recorded", dir,
		    (unsigned)(st.st_mode & 07777));
		return pl_err_hint(err, "chmod 700 %s", dir);
	}
	return 0;
}

int pl_corpus_open(const char *dir, int redact, struct pl_corpus **out, struct pl_err *err)
{
	struct pl_buf key = PL_BUF_INIT, raw = PL_BUF_INIT;
	struct pl_corpus *c = NULL;
	struct stat st;
	int r;

	*out = NULL;
	if ((r = open_dir(dir, err)))
		goto out;
	c = corpus_new(dir, redact);
	pl_buf_addf(&key, "%s/.key", dir);
	pl_buf_addf(&raw, "%s/.raw", dir);
	/* One corpus is redacted (it has .key) or raw (.raw), never both: a replay of it
	 * compares responses redacted or raw accordingly. */
	if (redact) {
		if (lstat(raw.buf, &st) == 0) {
			r = pl_err_set(err, PL_EUSAGE,
			               "%s holds a corpus recorded without redaction", dir);
			pl_err_hint(err, "record a redacted corpus into another directory");
			goto out;
		}
		r = read_key(c, key.buf, 1, err);
		if (r == -ENOENT)
			r = make_key(c, key.buf, err);
	} else {
		if (lstat(key.buf, &st) == 0) {
			r = pl_err_set(err, PL_EUSAGE, "%s holds a redacted corpus", dir);
			pl_err_hint(err, "record without redaction into another directory");
			goto out;
		}
		r = put_file(raw.buf, "", 0, 0, err);
		if (r == -EEXIST)
			r = 0;
	}
	if (!r)
		r = init_mac(c, err);
out:
	pl_buf_release(&key);
	pl_buf_release(&raw);
	if (r) {
		pl_corpus_close(c);
		return r;
	}
	*out = c;
	return 0;
}

int pl_corpus_load(const char *dir, struct pl_corpus **out, struct pl_err *err)
{
	struct pl_buf key = PL_BUF_INIT;
	struct pl_corpus *c = corpus_new(dir, 1);
	int r;

	*out = NULL;
	pl_buf_addf(&key, "%s/.key", dir);
	r = read_key(c, key.buf, 0, err);
	if (r == -ENOENT) {
		r = pl_random_bytes(c->key, KEY_LEN) < 0
		        ? pl_err_set(err, PL_EINTERNAL, "no randomness for a comparison key")
		        : 0;
	}
	if (!r)
		r = init_mac(c, err);
	pl_buf_release(&key);
	if (r) {
		pl_corpus_close(c);
		return r;
	}
	*out = c;
	return 0;
}

int pl_corpus_keyed(const struct pl_corpus *c)
{
	return c->keyed;
}

/* Letters, digits, '.', '_', '-' of a call id, at most 64: it goes into a file name. */
static void safe_id(const char *id, char *out, size_t size)
{
	size_t n = 0;

	for (; id && *id && n + 1 < size && n < 64; id++)
		out[n++] = isalnum((unsigned char)*id) || strchr("._-", *id) ? *id : '_';
	out[n] = '\0';
	if (!n)
		snprintf(out, size, "nocall");
}

/* The body as it is written: redacted, or a note when it is not JSON and cannot be. */
static void body_text(struct pl_corpus *c, const char *body, size_t len, struct pl_buf *out)
{
	struct pl_err err = PL_ERR_INIT;

	if (!c->redact || !len) {
		pl_buf_add(out, body, len);
		return;
	}
	if (pl_corpus_redact(c, body, len, out, &err)) {
		pl_buf_reset(out);
		pl_buf_addf(out, "{\"redacted\":\"not JSON\",\"bytes\":%zu}", len);
	}
	pl_buf_addch(out, '\n');
}

int pl_corpus_write(struct pl_corpus *c, const char *call_id, const char *request, size_t rlen,
                    const char *response, size_t plen, struct pl_err *err)
{
	struct pl_buf req = PL_BUF_INIT, resp = PL_BUF_INIT, path = PL_BUF_INIT;
	char id[80], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int r = -EEXIST;

	safe_id(call_id, id, sizeof(id));
	if (!gmtime_r(&now, &tm) || !strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm))
		return pl_err_set(err, PL_EINTERNAL, "cannot format the time");
	body_text(c, request, rlen, &req);
	body_text(c, response ? response : "", response ? plen : 0, &resp);
	/* The request's name is claimed by link(): two writers (or a restart within the same
	 * second) never overwrite each other's exchange. */
	while (r == -EEXIST) {
		unsigned long n;

		pthread_mutex_lock(&c->lock);
		n = ++c->seq;
		pthread_mutex_unlock(&c->lock);
		pl_buf_reset(&path);
		pl_buf_addf(&path, "%s/%s-%s-%06lu.json", c->dir, stamp, id, n);
		r = put_file(path.buf, req.buf, req.len, 0, err);
	}
	if (r)
		goto out;
	path.len -= strlen(".json");
	path.buf[path.len] = '\0';
	pl_buf_adds(&path, ".response.json");
	r = pl_corpus_put(path.buf, resp.buf, resp.len, err);
out:
	pl_buf_wipe(&req);
	pl_buf_wipe(&resp);
	pl_buf_release(&path);
	return r;
}

void pl_corpus_close(struct pl_corpus *c)
{
	if (!c)
		return;
	OPENSSL_cleanse(c->key, sizeof(c->key));
	EVP_MAC_CTX_free(c->mac);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}
