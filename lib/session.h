/*
 * What one command invocation carries through the library: its configuration, a database
 * connection opened on first use, who is acting (for the audit log), and --dry-run.
 */
#ifndef PL_SESSION_H
#define PL_SESSION_H

#include "config.h"
#include "db.h"
#include "err.h"

/*
 * A server's pool of database connections (vapi listen): a session with a lender borrows a
 * connection on first use and gives it back at pl_session_idle, so that a request waiting on
 * Sikka holds none. get waits for a free one (or opens one while fewer than the pool's size);
 * put takes back a live one, or counts a closed one (conn NULL) as gone.
 */
struct pl_db_lender {
	int (*get)(void *arg, struct pl_db *db, struct pl_err *err);
	void (*put)(void *arg, struct pl_db *db);
	void *arg;
};

struct pl_session {
	struct pl_config *cfg;
	struct pl_db db;
	int dry_run;
	int reconnected; /* the one new connection a command may open after losing its first */
	char host[256];
	char request_id[33]; /* 128 random bits, hex: ties one invocation's audit events together */
	void *curl; /* a server's curl handle, lent to each request's Sikka client, or NULL */
	double upstream_s; /* time spent waiting on Sikka and Twilio, summed (vapi listen's log) */
	double db_s;       /* and on the database, from connections given back (pl_session_idle) */
	const struct pl_db_lender *lender; /* NULL: the session's own connection */
	int borrowed;                      /* db is the lender's, to go back at pl_session_idle */
};

/* No connection yet; cfg must outlive the session. */
void pl_session_init(struct pl_session *s, struct pl_config *cfg);

/* The database, connected on first call (PARLAE_DATABASE_URL, else DATABASE_URL, else PG*). */
int pl_session_db(struct pl_session *s, struct pl_db **db, struct pl_err *err);

/*
 * After the connection was lost mid-command, a new one, so that the command can still record
 * how it ended (the row's error, the audit event). Once per invocation: a database that drops
 * the second connection too, or refuses it, is not chased further, and no later call
 * (pl_session_db included) connects again. A live connection is kept as it is.
 */
int pl_session_reconnect(struct pl_session *s, struct pl_err *err);

/*
 * Between two steps of a request: a borrowed connection goes back to its pool (never inside a
 * transaction). Nothing for a session with a connection of its own.
 */
void pl_session_idle(struct pl_session *s);

/* The time spent on the database since db_s was last set to 0, the connection held included. */
double pl_session_db_seconds(const struct pl_session *s);

/* A new connection to the session's database (PARLAE_DATABASE_URL, else DATABASE_URL, PG*). */
int pl_session_open_db(const struct pl_config *cfg, struct pl_db *db, struct pl_err *err);

/* Who is acting: PARLAE_ACTOR, else USER@hostname. */
const char *pl_session_actor(const struct pl_session *s);

void pl_session_release(struct pl_session *s);

#endif
