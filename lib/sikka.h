/*
 * The Sikka ONE API v4 client. Sikka sends every value as a string and reports errors in an
 * envelope with an API code; this module turns both into C values and pl_err codes, from one
 * table in sikka.c (a rejected credential is PL_ECONFIG naming the variable or the step to
 * redo, not found PL_ENOTFOUND, anything else PL_EUPSTREAM). Keys travel as pl_secret.
 */
#ifndef PL_SIKKA_H
#define PL_SIKKA_H

#include <jansson.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "store.h"

struct pl_sikka {
	struct pl_http http;
	char *base;                   /* SIKKA_API_URL, no trailing slash */
	const char *app_id, *app_key; /* from the environment, not owned */
	const char *account;          /* the calls' account, named in remedies; NULL: "ACCOUNT" */
	char last_code[16];           /* API code of the last error envelope, "" if none */
	long last_status;             /* HTTP status of the last response */
};

/* Needs SIKKA_APP_ID and SIKKA_APP_KEY (PL_ECONFIG naming the one missing). */
int pl_sikka_init(struct pl_sikka *sk, const struct pl_config *cfg, struct pl_err *err);
void pl_sikka_release(struct pl_sikka *sk);

struct pl_sikka_practice {
	char office_id[64];
	char practice_id[64]; /* the location within the office */
	char customer_id[64]; /* the marketplace's MasterCustomerID */
	char practice_name[256];
	char pms_type[128];
	struct pl_secret secret_key;
};

/* GET /v4/authorized_practices?show=all: every practice location that authorized the app (all
 * pages; without show=all Sikka lists only location 1 of a multi-location office). */
int pl_sikka_authorized_practices(struct pl_sikka *sk, struct pl_sikka_practice **out, size_t *n,
                                  struct pl_err *err);
void pl_sikka_practices_free(struct pl_sikka_practice *p, size_t n);

/* POST /v4/practice_location: turn the app's access to the practice location on. */
int pl_sikka_practice_location_on(struct pl_sikka *sk, const char *office_id,
                                  const char *practice_id, struct pl_err *err);

/* DELETE /v4/refresh_key: revoke a refresh key (it no longer refreshes). */
int pl_sikka_revoke_refresh_key(struct pl_sikka *sk, const struct pl_secret *refresh_key,
                                struct pl_err *err);

enum pl_sikka_grant {
	PL_SIKKA_AUTHORIZATION_CODE, /* credential: the redirect's code */
	PL_SIKKA_REQUEST_KEY,        /* credential: the office's secret key (office_id needed) */
	PL_SIKKA_REFRESH_KEY,        /* credential: the current refresh key */
};

struct pl_sikka_key {
	struct pl_secret request_key;
	struct pl_secret refresh_key;
	char issued_to[64];
	time_t expires_at; /* from expires_in, counted from when the answer arrived */
};

/* POST /v4/request_key with one of the three grants. */
int pl_sikka_request_key(struct pl_sikka *sk, enum pl_sikka_grant grant, const char *office_id,
                         const struct pl_secret *credential, struct pl_sikka_key *out,
                         struct pl_err *err);
void pl_sikka_key_release(struct pl_sikka_key *k);

/*
 * A data call with the practice's request key (GET with a query, or POST with a JSON body).
 * *doc receives the answer's envelope (a new reference; NULL for an empty answer). An expired
 * key is PL_ECONFIG with sk->last_code "API1025": callers refresh and retry once.
 */
int pl_sikka_data(struct pl_sikka *sk, const char *method, const char *path, const char *query,
                  const char *body, const struct pl_secret *request_key, json_t **doc,
                  struct pl_err *err);

/* Whether the last error was Sikka's "request key expired". */
int pl_sikka_key_expired(const struct pl_sikka *sk);

/*
 * Whether the last error was Sikka refusing a practice's credential (a code, a secret, refresh
 * or request key: API2007) rather than failing: a rejected refresh key is worth a try with the
 * secret key. An answer that never came leaves the last code as it was: ask only after one.
 */
int pl_sikka_refused_practice(const struct pl_sikka *sk);

/* A prepared request (for many in flight through pl_http_run); it owns what req points at. */
struct pl_sikka_call {
	struct pl_http_req req;
	struct pl_buf url, app_id, app_key, body;
	const char *headers[8];
	char what[128];
};

void pl_sikka_call_init(struct pl_sikka *sk, struct pl_sikka_call *c, const char *method,
                        const char *path, const char *query, const char *body,
                        const char *extra_header, int idempotent);
void pl_sikka_call_release(struct pl_sikka_call *c);

/* Interpret the answer to c: the error envelope, or the body as a new JSON reference. */
int pl_sikka_answer(struct pl_sikka *sk, const struct pl_sikka_call *c, long status,
                    const char *body, size_t len, json_t **doc, struct pl_err *err);

/* The JSON body of a request_key call (the caller wipes and frees it), and its answer. */
char *pl_sikka_key_body(struct pl_sikka *sk, enum pl_sikka_grant grant, const char *office_id,
                        const struct pl_secret *credential);
int pl_sikka_key_from(json_t *doc, struct pl_sikka_key *out, struct pl_err *err);

/*
 * Turn a response into an error when it is one: 0 for 2xx, else the envelope's message and
 * code mapped to a pl_err code. Also used by the data calls of lib/tools.
 */
int pl_sikka_check(struct pl_sikka *sk, const char *call, long status, const char *body, size_t len,
                   struct pl_err *err);

#endif
