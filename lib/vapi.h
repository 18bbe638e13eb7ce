/*
 * Vapi server messages: parsing every accepted shape of a tool-call message (toolCallList,
 * toolCalls, toolWithToolCallList[].toolCall, the legacy function-call), the reply Vapi
 * expects, and signing a request the way Vapi authenticates to a backend.
 */
#ifndef PL_VAPI_H
#define PL_VAPI_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

#define PL_VAPI_MAX_BODY  ((size_t)1 << 20)
#define PL_VAPI_MAX_DEPTH 32
#define PL_VAPI_MAX_CALLS 64

struct pl_vapi_call {
	char *id;       /* toolCallId; "" for the legacy shape */
	char *name;     /* as received: echoed in the reply; the tool is found by pl_tool_find */
	json_t *args;   /* an object (new reference); a JSON-string argument is parsed */
	char *bad_args; /* why the arguments could not be read, or NULL */
};

struct pl_vapi_msg {
	char type[48];
	int legacy;                               /* function-call: the reply is {"result":"..."} */
	char *call_id, *phone_number_id, *caller; /* NULL when absent */
	char *account_hint;     /* the assistant's metadata.accountId (message or call), or NULL */
	char *called_number;    /* message.call.phoneNumber.number, or NULL */
	long long timestamp_ms; /* 0 when absent */
	int timeout_s; /* the assistant server's timeoutSeconds (1-300), 0 when absent or not */
	struct pl_vapi_call *calls;
	size_t ncalls;
};

/*
 * Parse a server message. PL_EBADINPUT with the reason when it is not JSON, too large
 * (1 MiB), too deep, or not a message. A message that is not a tool call (an
 * end-of-call-report) parses with ncalls 0. A repeated tool-call id is kept once.
 */
int pl_vapi_parse(const char *body, size_t len, struct pl_vapi_msg *out, struct pl_err *err);
void pl_vapi_msg_release(struct pl_vapi_msg *m);

/* An argument by its camelCase name, matching kebab-case and snake_case keys. Borrowed. */
json_t *pl_vapi_arg(const json_t *args, const char *name);
/* The argument as text (strings as is, numbers rendered), or NULL. Borrowed or in buf. */
const char *pl_vapi_arg_text(const json_t *args, const char *name, char *buf, size_t size);
/* The same for a value: a string ("" is absent), or a number rendered into buf. */
const char *pl_vapi_text(const json_t *v, char *buf, size_t size);
/* "get-patient-info", "get_patient_info" and "getPatientInfo" all fold to "getpatientinfo". */
void pl_vapi_fold(const char *in, char *out, size_t size);

/* The outcome of one call: a one-line JSON result text, or an error that kept it from running. */
struct pl_vapi_outcome {
	char *result; /* owned; NULL when error */
	char *error;  /* owned; NULL when result */
	int code;     /* the error's pl_err code, 0 with a result */
};

/* The reply Vapi expects, in call order (a new reference). */
json_t *pl_vapi_reply(const struct pl_vapi_msg *m, const struct pl_vapi_outcome *out);

/* Exit status of a run: 0 all produced a result, 9 some errors, the error's code if all. */
int pl_vapi_status(const struct pl_vapi_outcome *out, size_t n);

/*
 * A message for one direct call (vapi tool invoke TOOL --args ...): args_json is an object's
 * text or NULL for none. PL_EBADINPUT when the arguments are not a JSON object.
 */
int pl_vapi_direct(const char *tool, const char *args_json, size_t len, struct pl_vapi_msg *out,
                   struct pl_err *err);

enum pl_vapi_auth { PL_VAPI_AUTH_SECRET, PL_VAPI_AUTH_HMAC, PL_VAPI_AUTH_BEARER };

/* The headers Vapi would send for body (hmac signed now); a NULL-terminated array the
 * caller frees with pl_vapi_headers_free. */
char **pl_vapi_auth_headers(enum pl_vapi_auth auth, const char *secret, const char *body,
                            size_t len);
void pl_vapi_headers_free(char **h);

/*
 * Send body to a deployed backend as Vapi would (auth from VAPI_WEBHOOK_SECRET, hmac signed at
 * send time). 0 with resp filled on HTTP 200; 401/403 → PL_ECONFIG naming VAPI_WEBHOOK_SECRET;
 * another status, a timeout or a refused connection → PL_EUPSTREAM (resp still filled when an
 * answer came). The caller releases resp.
 */
struct pl_config;
struct pl_http_resp;
int pl_vapi_post(const struct pl_config *cfg, const char *url, enum pl_vapi_auth auth,
                 const char *body, size_t len, struct pl_http_resp *resp, struct pl_err *err);

/*
 * Compare two replies as JSON, parsing result strings that hold JSON; 0 when equal, else 1
 * with the differences appended to diff ("- expected" / "+ actual"); negative (and err set)
 * when either is not JSON.
 */
int pl_vapi_compare(const char *expected, size_t elen, const char *actual, size_t alen,
                    struct pl_buf *diff, struct pl_err *err);

/* pl_vapi_compare's last step, for comparisons that skip fields (lib/expect.c): the
 * differences of two documents expanded by pl_vapi_expand. */
void pl_vapi_diff(json_t *expected, json_t *actual, struct pl_buf *diff);

/* v with every string that holds a JSON object or array parsed into it (a new reference):
 * how replies are compared, and shown on a terminal. */
json_t *pl_vapi_expand(json_t *v);

/* Lowercase hex HMAC-SHA256 of "<ts>.<body>" (65 bytes with the NUL); libcrypto failing
 * (out of memory) aborts, as pl_xmalloc does. */
void pl_vapi_sign(const char *secret, const char *ts, const char *body, size_t len, char out[65]);

/*
 * E.164 digits of a phone number ("555-123-4567" → "15551234567"); "" when not a number. Ten
 * digits are taken as +1 only when no '+' precedes them ("+4795551234" stays "4795551234").
 */
void pl_phone_digits(const char *in, char *out, size_t size);

#endif
