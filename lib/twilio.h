/*
 * Twilio's Messages API: a text to the practice's staff when a caller asks for a human.
 * Credentials come from TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN, the sender from
 * TWILIO_FROM_NUMBER; 20003 (bad credentials) is PL_ECONFIG naming them.
 */
#ifndef PL_TWILIO_H
#define PL_TWILIO_H

#include "config.h"
#include "err.h"

/*
 * Send body to `to`; sid (at least 64 bytes) receives the message's SID. On failure, code (when
 * not NULL) receives Twilio's error code when Twilio refused the message (a 4xx answer), else
 * 0: not configured, unreachable, or Twilio's own failure (5xx). deadline (pl_monotonic()
 * seconds, 0 none) bounds the request, retries included.
 */
int pl_twilio_sms(const struct pl_config *cfg, double deadline, const char *to, const char *body,
                  char *sid, size_t sid_size, long *code, struct pl_err *err);

#endif
