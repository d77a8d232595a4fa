/* plugins/auth-users compiled into a fuzz target, its entry renamed so that
 * several plugins can share one binary. */
#define mgrok_plugin_entry fuzz_auth_users_entry
#include "../../plugins/auth-users/auth_users.c"
