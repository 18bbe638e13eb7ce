/*
 * Twilio's Messages API: a text to the practice's staff when a caller asks for a human.
 * Credentials come from TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN, the sender from
 * TWILIO_FROM_NUMBER; 20003 (bad credentials) is PL_ECONFIG naming them.
 */
#ifndef PL_TWILIO_H
#define PL_TWILIO_H

#include "config.h"
#include "err.h"

/* Send body to `to`; sid (at least 64 bytes) receives the message's SID. */
int pl_twilio_sms(const struct pl_config *cfg, const char *to, const char *body, char *sid,
                  size_t sid_size, struct pl_err *err);

#endif
