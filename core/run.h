/* What both programs do once configured: the log level, the context,
 * signals, and the loop. */
#ifndef MGROK_RUN_H
#define MGROK_RUN_H

#include "context.h"

struct mgrok_run_ops {
	void (*stop)(void *arg);   /* SIGTERM, SIGINT: then the loop ends */
	void (*reload)(void *arg); /* SIGHUP; NULL leaves SIGHUP alone */
};

/* The config's level, moved by -v (+1 each) and -q (-1 each). */
void mgrok_log_setup(int conf_level, int verbosity);
/* A process's context on the default loop, bound to the plugin host table.
 * MGROK_NO_AUTOTUNE in the environment turns window auto-tuning off
 * (benchmarks: the fixed 256 KiB window of doc/protocol.md 3.3). */
void mgrok_run_init(struct mgrok_ctx *ctx);
/* Runs the loop until a stop signal; SIGPIPE is ignored. */
void mgrok_run(struct mgrok_ctx *ctx, const struct mgrok_run_ops *ops, void *arg);
void mgrok_run_free(struct mgrok_ctx *ctx);

#endif
