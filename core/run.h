/* What both programs do once configured: the log level, the context,
 * signals, and the loop. */
#ifndef MGROK_RUN_H
#define MGROK_RUN_H

#include "context.h"

struct mgrok_run_ops {
	void (*stop)(void *arg);   /* SIGTERM, SIGINT: then the loop ends */
	void (*reload)(void *arg); /* SIGHUP; NULL leaves SIGHUP alone */
	/* Once the signals are watched, before the loop runs: where READY=1 is
	 * safe (a reload at once must not kill the process); may be NULL. */
	void (*started)(void *arg);
	/* The first SIGTERM or SIGINT, when set: stop taking new work and end
	 * the loop (ev_break) once the work in hand is done; a second signal
	 * calls stop and ends it at once. NULL: stop at the first. */
	void (*drain)(void *arg);
};

/* The config's level, moved by -v (+1 each) and -q (-1 each); the config's
 * format (enum mgrok_log_format); whether stderr is the journal. */
void mgrok_log_setup(int conf_level, int verbosity, int format);
/* A process's context on the default loop, bound to the plugin host table.
 * MGROK_NO_AUTOTUNE in the environment turns window auto-tuning off
 * (benchmarks: the fixed 256 KiB window of doc/protocol.md 3.3).
 * $NOTIFY_SOCKET opens ctx->notify's socket (notify.h). */
void mgrok_run_init(struct mgrok_ctx *ctx);
/* Runs the loop until a stop signal; SIGPIPE is ignored. Tells the service
 * manager (ctx->notify) STOPPING=1 on a stop signal, and RELOADING=1 then
 * READY=1 around a reload. */
void mgrok_run(struct mgrok_ctx *ctx, const struct mgrok_run_ops *ops, void *arg);
void mgrok_run_free(struct mgrok_ctx *ctx);

#endif
