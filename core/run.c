#include "run.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "buf.h"
#include "host.h"
#include "log.h"
#include "notify.h"

void mgrok_log_setup(int conf_level, int verbosity, int format)
{
	int level = conf_level + verbosity;
	mgrok_log_level = level < MGROK_LOG_ERROR ? MGROK_LOG_ERROR : level;
	mgrok_log_format = format;
	mgrok_log_detect_journal();
}

void mgrok_run_init(struct mgrok_ctx *ctx)
{
	mgrok_ctx_init(ctx, ev_default_loop(EVFLAG_AUTO));
	ctx->autotune = !getenv("MGROK_NO_AUTOTUNE");
	ctx->notify = mgrok_xmalloc(sizeof(*ctx->notify));
	mgrok_notify_init(ctx->notify, ctx->loop, getenv("NOTIFY_SOCKET"));
	mgrok_host_bind(ctx);
}

struct signals {
	ev_signal term, intr, hup;
	const struct mgrok_run_ops *ops;
	void *arg;
	struct mgrok_notify *notify;
	bool draining;
};

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct signals *s = w->signum == SIGTERM ? MGROK_CONTAINER_OF(w, struct signals, term)
	                                         : MGROK_CONTAINER_OF(w, struct signals, intr);
	if (s->ops->drain && !s->draining) {
		MGROK_INFO("signal %d: draining (the same signal again ends at once)", w->signum);
		s->draining = true;
		mgrok_notify_stopping(s->notify);
		s->ops->drain(s->arg);
		return;
	}
	MGROK_INFO("signal %d: shutting down", w->signum);
	if (!s->draining)
		mgrok_notify_stopping(s->notify);
	s->ops->stop(s->arg);
	ev_break(loop, EVBREAK_ALL);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct signals *s = MGROK_CONTAINER_OF(w, struct signals, hup);
	MGROK_INFO("SIGHUP: reloading");
	mgrok_notify_reloading(s->notify);
	s->ops->reload(s->arg);
	mgrok_notify_ready(s->notify);
}

void mgrok_run(struct mgrok_ctx *ctx, const struct mgrok_run_ops *ops, void *arg)
{
	struct signals s = {.ops = ops, .arg = arg, .notify = ctx->notify};
	signal(SIGPIPE, SIG_IGN);
	ev_signal_init(&s.term, on_stop, SIGTERM);
	ev_signal_init(&s.intr, on_stop, SIGINT);
	ev_signal_start(ctx->loop, &s.term);
	ev_signal_start(ctx->loop, &s.intr);
	if (ops->reload) {
		ev_signal_init(&s.hup, on_hup, SIGHUP);
		ev_signal_start(ctx->loop, &s.hup);
	}
	if (ops->started)
		ops->started(arg);
	ev_run(ctx->loop, 0);
	ev_signal_stop(ctx->loop, &s.term);
	ev_signal_stop(ctx->loop, &s.intr);
	if (ops->reload)
		ev_signal_stop(ctx->loop, &s.hup);
}

void mgrok_run_free(struct mgrok_ctx *ctx)
{
	mgrok_host_bind(NULL);
	mgrok_notify_free(ctx->notify);
	free(ctx->notify);
	ctx->notify = NULL;
	ev_loop_destroy(ctx->loop);
	mgrok_ctx_free(ctx);
}
