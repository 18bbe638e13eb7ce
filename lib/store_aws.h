/*
 * The aws:REGION backend of the secret store (AWS Secrets Manager), behind the pl_store_*
 * functions of store.h, which dispatch here: internal to the store module. Each function has
 * the meaning of its store.h namesake; versions are Secrets Manager's VersionIds.
 */
#ifndef PL_STORE_AWS_H
#define PL_STORE_AWS_H

#include "config.h"
#include "err.h"
#include "store.h"

struct pl_store_aws;

/*
 * The endpoint (https://secretsmanager.REGION.amazonaws.com/, or
 * AWS_ENDPOINT_URL_SECRETS_MANAGER) and an HTTP client; no request is sent and the
 * credentials are read on first use. *out is freed with pl_store_aws_close.
 */
int pl_store_aws_open(const struct pl_config *cfg, const char *region, struct pl_store_aws **out,
                      struct pl_err *err);
void pl_store_aws_close(struct pl_store_aws *a);

/* Credentials present and accepted by one cheap authenticated call. */
int pl_store_aws_ready(struct pl_store_aws *a, struct pl_err *err);

/* expected NULL: an unconditional put; "": create only; else a compare-and-swap. */
int pl_store_aws_put_if(struct pl_store_aws *a, const char *name, const struct pl_secret *value,
                        const char *expected, char *version, struct pl_err *err);
int pl_store_aws_get(struct pl_store_aws *a, const char *name, const char *version_in,
                     struct pl_secret *out, char *version_out, struct pl_err *err);
int pl_store_aws_delete(struct pl_store_aws *a, const char *name, struct pl_err *err);
int pl_store_aws_list(struct pl_store_aws *a, struct pl_store_entry **out, size_t *n,
                      struct pl_err *err);

#endif
