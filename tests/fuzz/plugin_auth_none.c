/* plugins/auth-none compiled into a fuzz target, its entry renamed so that
 * several plugins can share one binary. */
#define mgrok_plugin_entry fuzz_auth_none_entry
#include "../../plugins/auth-none/auth_none.c"
