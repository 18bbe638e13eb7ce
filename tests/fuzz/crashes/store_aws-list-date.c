/*
 * Reproducer (open finding, lib/store_aws.c, not fixed here: that file is being edited): a
 * ListSecrets item whose LastChangedDate is a number beyond time_t makes iso_date() cast it to
 * time_t, which is undefined behaviour (UBSan: "1e+300 is outside the range of representable
 * values of type 'long'", lib/store_aws.c iso_date). Build and run from the top directory:
 *
 *   make .build/fuzz/libparlae.a
 *   clang -std=c17 -D_GNU_SOURCE -g -fsanitize=address,undefined,fuzzer-no-link \
 *     -fno-sanitize-recover=all -Ilib $(pkg-config --cflags libpq) \
 *     -o .build/fuzz/store_aws-list-date tests/fuzz/crashes/store_aws-list-date.c \
 *     .build/fuzz/libparlae.a $(pkg-config --libs libcurl jansson libpq openssl readline)
 *   .build/fuzz/store_aws-list-date      # exits 1 with the runtime error until fixed
 *
 * Suggested fix, in iso_date(): read the number as a double and refuse what time_t cannot
 * hold before the cast, e.g.
 *
 *	double d;
 *	...
 *	d = json_number_value(v);
 *	if (!(d > -9.2e18 && d < 9.2e18)) // also false for NaN
 *		return;
 *	t = (time_t)d;
 *
 * Once fixed, fuzz_aws.c should also read a 2xx answer's SecretList through list_item().
 */
#include "store_aws.c"

int main(void)
{
	static const char item_json[] =
		"{\"Name\":\"parlae/pms/sikka/happy\",\"SecretVersionsToStages\":{\"v1\":[\"AWSCURRENT\"]},"
		"\"LastChangedDate\":1e300}";
	json_t *item = json_loads(item_json, 0, NULL);
	struct pl_store_entry e;
	int kept = list_item(item, &e);

	printf("kept %d, updated_at '%s'\n", kept, kept ? e.updated_at : "");
	json_decref(item);
	return 0;
}
