#include "session.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "encode.h"
#include "banned.h"

void pl_session_init(struct pl_session *s, struct pl_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	if (gethostname(s->host, sizeof(s->host) - 1) < 0)
		pl_strlcpy(s->host, "localhost", sizeof(s->host));
	if (pl_random_hex(s->request_id, 16) < 0)
		s->request_id[0] = '\0';
}

/* PARLAE_DATABASE_URL, else DATABASE_URL (config's fallback), else libpq's PG* defaults. */
int pl_session_open_db(const struct pl_config *cfg, struct pl_db *db, struct pl_err *err)
{
	const char *url = pl_config_get(cfg, "PARLAE_DATABASE_URL");
	char app[64]; /* PostgreSQL keeps 63 bytes of it */

	/* pg_stat_activity then says which command holds a connection: "parlae audit tail". */
	snprintf(app, sizeof(app), "parlae%s%s", cfg->command ? " " : "",
	         cfg->command ? cfg->command : "");
	return pl_db_connect(db, url ? url : "", app, err);
}

static int open_db(struct pl_session *s, struct pl_err *err)
{
	return pl_session_open_db(s->cfg, &s->db, err);
}

void pl_session_idle(struct pl_session *s)
{
	if (!s->borrowed || s->db.in_tx)
		return;
	s->db_s += s->db.waited_s; /* the connection's count goes back with it, emptied */
	s->db.waited_s = 0;
	s->lender->put(s->lender->arg, &s->db);
	memset(&s->db, 0, sizeof(s->db));
	s->borrowed = 0;
}

double pl_session_db_seconds(const struct pl_session *s)
{
	return s->db_s + s->db.waited_s;
}

int pl_session_db(struct pl_session *s, struct pl_db **db, struct pl_err *err)
{
	int r;

	if (s->lender && !s->db.conn) {
		pl_session_idle(s); /* one it closed: its place in the pool is free again */
		if ((r = s->lender->get(s->lender->arg, &s->db, err)))
			return r;
		s->borrowed = 1;
		*db = &s->db;
		return 0;
	}
	if (!s->db.conn && s->reconnected)
		return pl_err_set(err, PL_EDATABASE,
		                  "lost the connection to the database, and could not reconnect");
	if (!s->db.conn && (r = open_db(s, err)))
		return r;
	*db = &s->db;
	return 0;
}

int pl_session_reconnect(struct pl_session *s, struct pl_err *err)
{
	if (pl_db_alive(&s->db))
		return 0;
	if (s->reconnected)
		return pl_err_set(err, PL_EDATABASE, "lost the connection to the database again");
	s->reconnected = 1;
	pl_db_close(&s->db);
	return open_db(s, err);
}

const char *pl_session_actor(const struct pl_session *s)
{
	const char *a = pl_config_get(s->cfg, "PARLAE_ACTOR");

	return a ? a : "unknown";
}

void pl_session_release(struct pl_session *s)
{
	if (s->borrowed) {
		pl_db_rollback(&s->db);
		pl_session_idle(s);
	}
	pl_db_close(&s->db);
}
