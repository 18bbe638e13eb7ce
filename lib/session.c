#include "session.h"

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
static int open_db(struct pl_session *s, struct pl_err *err)
{
	const char *url = pl_config_get(s->cfg, "PARLAE_DATABASE_URL");

	return pl_db_connect(&s->db, url ? url : "", err);
}

int pl_session_db(struct pl_session *s, struct pl_db **db, struct pl_err *err)
{
	int r;

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
	pl_db_close(&s->db);
}
