/* plugins/auth-token compiled into a fuzz target, its entry renamed so that
 * several plugins can share one binary. */
#define mgrok_plugin_entry fuzz_auth_token_entry
#include "../../plugins/auth-token/auth_token.c"
