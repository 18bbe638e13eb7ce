#include "store.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "banned.h"

const char *pl_store_backend_name(enum pl_store_backend b)
{
	return b == PL_STORE_AWS ? "aws" : "file";
}

int pl_store_parse_spec(const char *spec, struct pl_store_spec *out, struct pl_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!spec) {
		pl_err_set(err, PL_ECONFIG, "no secret store: PARLAE_SECRET_STORE is unset and HOME is unknown");
		return pl_err_hint(err, "set PARLAE_SECRET_STORE=file:/path/to/vault");
	}
	if (!strncmp(spec, "file:", 5) && spec[5] == '/') {
		out->backend = PL_STORE_FILE;
		if (pl_strlcpy(out->location, spec + 5, sizeof(out->location)) < 0)
			return pl_err_set(err, PL_ECONFIG, "PARLAE_SECRET_STORE: path too long");
		return 0;
	}
	if (!strncmp(spec, "aws:", 4)) {
		pl_err_set(err, PL_ECONFIG, "PARLAE_SECRET_STORE: the aws: backend is not available in this version");
		return pl_err_hint(err, "use file:PATH");
	}
	pl_err_set(err, PL_ECONFIG, "PARLAE_SECRET_STORE='%.200s' is not file:/ABSOLUTE/PATH or aws:REGION",
		   spec);
	return pl_err_hint(err, "for example PARLAE_SECRET_STORE=file:/var/lib/parlae/vault");
}

/* The nearest existing ancestor of a path that does not exist must let us create it. */
static int probe_parent(const char *dir, struct pl_err *err)
{
	char path[4096];
	struct stat st;
	char *slash;

	pl_strlcpy(path, dir, sizeof(path));
	while ((slash = strrchr(path, '/'))) {
		*(slash == path ? slash + 1 : slash) = '\0';
		if (stat(path, &st) == 0) {
			if (S_ISDIR(st.st_mode) && access(path, W_OK | X_OK) == 0)
				return 0;
			break;
		}
		if (slash == path)
			break;
	}
	return pl_err_set(err, PL_ECONFIG, "secret store %s does not exist and cannot be created under %s",
			  dir, path);
}

int pl_store_probe(const struct pl_store_spec *spec, struct pl_err *err)
{
	struct stat st;

	if (spec->backend != PL_STORE_FILE)
		return pl_err_set(err, PL_ECONFIG, "unsupported secret store backend");
	if (stat(spec->location, &st) < 0) {
		if (errno == ENOENT)
			return probe_parent(spec->location, err);
		return pl_err_set(err, PL_ECONFIG, "secret store %s: %s", spec->location, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return pl_err_set(err, PL_ECONFIG, "secret store %s is not a directory", spec->location);
	if (st.st_mode & 077) {
		pl_err_set(err, PL_ECONFIG, "secret store %s has mode %04o, open to other users",
			   spec->location, (unsigned)(st.st_mode & 07777));
		return pl_err_hint(err, "chmod 700 %s", spec->location);
	}
	if (access(spec->location, W_OK | X_OK) < 0)
		return pl_err_set(err, PL_ECONFIG, "secret store %s is not writable: %s", spec->location,
				  strerror(errno));
	return 0;
}
