/*
 * Fuzz target: the client config loader (core/config.c, core/json_locate.c).
 *
 * The input is the file's text. It is loaded over the defaults, then again
 * over what the first load left (a load replaces what it sets, failed or
 * not), checked as a whole, and freed (LeakSanitizer). An error must carry
 * a message and a place inside the text; the JSON locators must stay inside
 * the text whatever it holds.
 */
#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct mgrok_client_conf c;
	struct mgrok_conf_error err;

	mgrok_client_conf_defaults(&c);
	int rc = mgrok_client_conf_load_text(&c, "fuzz.json", text, size, &err);
	fuzz_conf_error_check(&err, rc, text, size);
	fuzz_json_locators(text, size, rc ? err.key : NULL);
	int again = mgrok_client_conf_load_text(&c, "fuzz.json", text, size, &err);
	fuzz_conf_error_check(&err, again, text, size);
	FUZZ_ASSERT(again == rc, "loaded once: %d, twice: %d", rc, again);
	if (rc == 0) {
		rc = mgrok_client_conf_check(&c, &err);
		fuzz_conf_error_check(&err, rc, NULL, 0);
	}
	mgrok_client_conf_free(&c);
	return 0;
}
