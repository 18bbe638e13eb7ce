/*
 * Onboarding a practice's PMS through Sikka: setup (app credentials tested, configuration
 * recorded), the OAuth URL with its signed single-use state, the callback that exchanges the
 * code and stores the practice's keys, and the connection status with a NOTIFY-driven wait.
 * Built from sikka, state, store, db and audit; nothing is left half-done (invariant 2).
 */
#ifndef PL_PMS_H
#define PL_PMS_H

#include <time.h>

#include "err.h"
#include "session.h"
#include "store.h"

#define PL_PMS_SECRET_PREFIX "parlae/pms/sikka/"

struct pl_pms_setup_req {
	const char *account;
	const char *provider;    /* "sikka" (the default when NULL) */
	const char *timezone;    /* NULL: UTC */
	const char *hours;       /* NULL: "mon-fri 08:00-17:00" */
	const char *practice_id; /* the location of a multi-location office; NULL: keep */
};

struct pl_pms_setup_res {
	char provider[16];
	char status[16];     /* pending | connecting | connected | failed */
	char *features_json; /* owned; free() */
	char *config_json;   /* owned; free() */
};

/* Tests the app credentials live, then records provider, config and status (audited). */
int pl_pms_setup(struct pl_session *s, const struct pl_pms_setup_req *req,
                 struct pl_pms_setup_res *res, struct pl_err *err);
void pl_pms_setup_res_release(struct pl_pms_setup_res *res);

/* The account's Sikka row with the defaults of pms setup, unless it has one (in the caller's
 * transaction, if one is open). */
struct pl_db;
int pl_pms_ensure_integration(struct pl_db *db, const char *account, struct pl_err *err);

/* "mon-fri 08:00-12:00,13:00-17:00; sat 09:00-13:00" → {"mon":[["08:00","12:00"],...],...}
 * as new JSON text (free()); PL_EUSAGE saying what is wrong. */
int pl_pms_parse_hours(const char *spec, char **json, struct pl_err *err);

struct pl_pms_oauth_req {
	const char *account;
	const char *redirect_uri; /* NULL: $APP_BASE_URL/pms/sikka/oauth/callback */
	long ttl;                 /* seconds; 0: 600 */
};

struct pl_pms_oauth_res {
	char *url;   /* owned */
	char *state; /* owned */
	char expires_at[32];
};

int pl_pms_oauth_url(struct pl_session *s, const struct pl_pms_oauth_req *req,
                     struct pl_pms_oauth_res *res, struct pl_err *err);
void pl_pms_oauth_res_release(struct pl_pms_oauth_res *res);

/* The parts of the redirect the practice's browser landed on. Strings owned. */
struct pl_pms_redirect {
	char *code, *state, *error, *office_id;
	char *practice_id; /* not from the URL: the operator's choice of location, or NULL */
};

/* Parse a redirect URL (or a bare query string); PL_EBADINPUT when it is not one. */
int pl_pms_parse_redirect(const char *url, struct pl_pms_redirect *out, struct pl_err *err);
void pl_pms_redirect_release(struct pl_pms_redirect *r);

struct pl_pms_callback_res {
	char account[64];
	char status[16]; /* connected | failed */
	char practice_name[256];
	char pms_type[128];
	char office_id[64];
};

/* The contract's callback steps 1-6. res->account is set as soon as the state is trusted. */
int pl_pms_callback(struct pl_session *s, const struct pl_pms_redirect *in,
                    struct pl_pms_callback_res *res, struct pl_err *err);

/* What the store keeps under parlae/pms/sikka/ACCOUNT (invariant 1: never the database). */
struct pl_pms_keys {
	char office_id[64];
	struct pl_secret secret_key, request_key, refresh_key;
	time_t token_expiry;
	char practice_name[256];
	char pms_type[128];
	char practice_id[64]; /* the location onboarded; "" in documents from before locations */
};

struct pl_store;

/* Read the account's keys (current version, or PL_ENOTFOUND); version may be NULL. */
int pl_pms_keys_read(struct pl_store *st, const char *account, struct pl_pms_keys *k, char *version,
                     struct pl_err *err);
/* Write them as a new version (only over `expected` when it is not NULL: see
 * pl_store_put_if); version receives its id. */
int pl_pms_keys_write(struct pl_store *st, const char *account, const struct pl_pms_keys *k,
                      const char *expected, char *version, struct pl_err *err);
void pl_pms_keys_release(struct pl_pms_keys *k);

struct pl_sikka;
struct pl_sikka_practice;
struct pl_audit_event;

/*
 * The location to onboard in Sikka's list: among the items whose office_id (by_customer:
 * customer_id) is key, the one whose practice_id is chosen when given, else the only one.
 * PL_ENOTFOUND when none is listed; PL_EUSAGE listing the locations (and how to choose one
 * for account) when several are and none was chosen, or the chosen one is not among them.
 */
int pl_pms_pick_location(const struct pl_sikka_practice *list, size_t n, int by_customer,
                         const char *key, const char *chosen, const char *account, size_t *index,
                         struct pl_err *err);

/* PL_EUSAGE unless id could be a practice_id (1-63 letters, digits, '_' or '-'). */
int pl_pms_check_practice_id(const char *id, struct pl_err *err);

/* The location the account chose with pms setup --practice-id into out ("" for none). */
int pl_pms_chosen_location(struct pl_db *db, const char *account, char *out, size_t size,
                           struct pl_err *err);

struct pl_pms_connect_req {
	const char *account;
	const struct pl_sikka_practice *practice; /* as Sikka lists it, with its secret key */
	/* Only a row in this status becomes ACTIVE (else PL_ECONFLICT: completed meanwhile);
	 * NULL: any. */
	const char *only_from;
	/* Appended with the success; its metadata (a JSON object, or NULL) gets officeId,
	 * pmsType and secretVersion added. */
	const struct pl_audit_event *ev;
	/* Run in the same transaction, with $1 = also_param (a registration marked active), or
	 * NULL. */
	const char *also_sql, *also_param;
};

/*
 * The callback's steps 4-6, shared by the callback, the marketplace handshake and the
 * completion of SETUP_REQUIRED: the location's access on, a request key, the keys stored
 * (version receives their version, "" if none was written), then the row ACTIVE and the
 * event in one transaction. On failure the transaction is rolled back and the store holds
 * again what it held; recording the failure is the caller's.
 */
int pl_pms_connect(struct pl_session *s, struct pl_store *store, struct pl_sikka *sk,
                   const struct pl_pms_connect_req *req, char *version, struct pl_err *err);

struct pl_pms_disconnect_res {
	char status[24];    /* disconnected | already disconnected */
	int had_secret;     /* the store held the account's keys */
	int revoked;        /* Sikka revoked the refresh key */
	int secret_deleted; /* and they are gone from the store */
	char note[512];     /* why the key was not revoked, "" when it was */
};

/*
 * End the account's integration: the refresh key revoked at Sikka where possible (a failure
 * is only noted), the row INACTIVE, then the secret deleted from the store; audited.
 * Idempotent: an inactive row without a secret is "already disconnected". PL_ENOTFOUND when
 * the account has no integration.
 */
int pl_pms_disconnect(struct pl_session *s, const char *account, struct pl_pms_disconnect_res *res,
                      struct pl_err *err);

struct pl_pms_status {
	char account[64];
	char status[16]; /* pending | connecting | connected | failed */
	char provider[16];
	char *practice_name, *pms_type, *office_id, *last_error; /* owned, NULL if none */
	char token_expiry[32], last_sync_at[32];                 /* "" if none */
	int set_up;         /* whether the account has an integration row (pms setup was run) */
	int setup_required; /* bought in the marketplace, waiting for Sikka to list it */
};

/* The connection status of one account; PL_ENOTFOUND if it does not exist. A SETUP_REQUIRED
 * integration whose practice Sikka now lists is connected first (pl_handshake_complete). */
int pl_pms_status(struct pl_session *s, const char *account, struct pl_pms_status *st,
                  struct pl_err *err);

/*
 * Wait until the account is connected or failed: LISTEN first, then read, then wake on each
 * notification and read again. PL_ETIMEOUT after timeout seconds (st holds the last state);
 * PL_ENOTFOUND at once for an account with no integration, which nothing could settle.
 * SETUP_REQUIRED is waited through, looking at Sikka's list every 2 s.
 */
int pl_pms_wait(struct pl_session *s, const char *account, double timeout, struct pl_pms_status *st,
                struct pl_err *err);
void pl_pms_status_release(struct pl_pms_status *st);

#endif
