/* `mgrokd status` and `mgrok status` (status.c). */
#ifndef MGROK_STATUS_H
#define MGROK_STATUS_H

#include <jansson.h>
#include <stdio.h>

#include "buf.h"
#include "config.h"

/* Reads path's "admin" section into out (the caller frees it). Returns 0,
 * or -1 with err. */
typedef int (*mgrok_status_load_fn)(const char *path, struct mgrok_admin_conf *out, char *err,
                                    size_t errlen);

/* argv[0] is "status". Returns the exit status: 0 printed, 1 the endpoint
 * failed, 2 a usage or configuration error. */
int mgrok_status_main(const char *prog, int argc, char **argv, mgrok_status_load_fn load,
                      const char *default_path);

/* The sessions document as a table. */
void mgrok_status_print(FILE *out, const json_t *doc);

/* An HTTP response (status_response.c, http-parser): its status and body.
 * Returns 0, or -1 when it is none (or the build has no http-parser). */
int mgrok_status_parse_response(const uint8_t *p, size_t len, int *status, struct mgrok_buf *body);

#endif
