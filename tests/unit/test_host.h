/* A plugin host table for unit tests that load real auth plugins: libc
 * allocation, OpenSSL's random bytes and wipe, and the log lines kept for
 * the tests to read. Only what auth plugins call is filled in. */
#ifndef MGROK_TEST_HOST_H
#define MGROK_TEST_HOST_H

#include "mgrok/plugin.h"

extern const struct mgrok_host test_host;
extern char test_host_log[8192];     /* every line so far, each ending in \n */
extern char test_host_last_log[512]; /* the last line */

#endif
