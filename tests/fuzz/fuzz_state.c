/*
 * The OAuth state verifier. Each input is tried twice: as a state token as received (the
 * signature check must refuse it without reading the payload), and as the payload of a token
 * signed here with the harness's key, so the decoder behind the signature is reached too.
 * A state that verifies must survive pl_state_sign → pl_state_verify unchanged.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "encode.h"
#include "fuzz.h"
#include "state.h"

/* The key the seed states in corpus/state were signed with (tests/fuzz/README). */
#define FUZZ_STATE_KEY "fuzz-state-secret-0123456789abcdef0123456789"
#define FUZZ_NOW ((time_t)1767225600) /* 2026-01-01T00:00:00Z */

static void check(const struct pl_secret *key, const char *text)
{
	struct pl_state st, again;
	struct pl_err err = PL_ERR_INIT;
	char *resigned;

	if (pl_state_verify(key, text, FUZZ_NOW, &st, &err))
		return;
	resigned = pl_state_sign(key, &st);
	if (!resigned || pl_state_verify(key, resigned, FUZZ_NOW, &again, &err) ||
	    memcmp(&st, &again, sizeof(st)) != 0)
		abort(); /* a state we accepted does not round-trip */
	free(resigned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_secret key = {(unsigned char *)FUZZ_STATE_KEY, sizeof(FUZZ_STATE_KEY) - 1};
	struct pl_buf tok = PL_BUF_INIT;
	unsigned char mac[32];
	unsigned int n = sizeof(mac);
	char *text = fuzz_cstr(data, size);

	check(&key, text);

	pl_base64_encode(&tok, data, size, PL_BASE64_URL);
	if (!HMAC(EVP_sha256(), key.data, (int)key.len, (const unsigned char *)tok.buf, tok.len,
	          mac, &n))
		abort();
	pl_buf_addch(&tok, '.');
	pl_base64_encode(&tok, mac, sizeof(mac), PL_BASE64_URL);
	check(&key, tok.buf);

	pl_buf_release(&tok);
	free(text);
	return 0;
}
