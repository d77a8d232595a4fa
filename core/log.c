#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

int mgrok_log_level = MGROK_LOG_INFO;

const char *const mgrok_log_level_names[4] = {"error", "warn", "info", "debug"};

void mgrok_vlog(int level, const char *prefix, const char *fmt, va_list ap)
{
	if (level > mgrok_log_level)
		return;
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One buffered fprintf per line keeps lines whole between processes. */
	char line[1024];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	fprintf(stderr, "%s.%03ldZ %-5s %s%s%s\n", when, ts.tv_nsec / 1000000L,
	        mgrok_log_level_names[level < 0   ? 0
	                              : level > 3 ? 3
	                                          : level],
	        prefix ? prefix : "", prefix ? ": " : "", line);
}

void mgrok_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mgrok_vlog(level, NULL, fmt, ap);
	va_end(ap);
}

static void summary(struct mgrok_log_limit *l, unsigned session, double now)
{
	if (!l->suppressed)
		return;
	char who[32] = "";
	if (session)
		snprintf(who, sizeof(who), "session %u: ", session);
	mgrok_log(l->level, "%ssuppressed %lu similar lines (%s) in %.0f s", who, l->suppressed,
	          l->kind, now - l->window_start);
	l->suppressed = 0;
}

void mgrok_vlog_limited(struct mgrok_log_limit *l, unsigned session, const char *prefix, double now,
                        int level, const char *fmt, va_list ap)
{
	if (level > mgrok_log_level)
		return;
	if (!l->lines || now - l->window_start >= MGROK_LOG_WINDOW) {
		summary(l, session, now);
		l->window_start = now;
		l->lines = 0;
	}
	if (l->lines >= l->burst) {
		l->suppressed++;
		l->level = level;
		return;
	}
	l->lines++;
	mgrok_vlog(level, prefix, fmt, ap);
}

void mgrok_log_limited(struct mgrok_log_limit *l, unsigned session, double now, int level,
                       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mgrok_vlog_limited(l, session, NULL, now, level, fmt, ap);
	va_end(ap);
}

void mgrok_log_limit_flush(struct mgrok_log_limit *l, unsigned session, double now)
{
	summary(l, session, now);
	l->lines = 0;
}

void mgrok_log_limit_tick(struct mgrok_log_limit *l, unsigned session, double now)
{
	if (l->suppressed && now - l->window_start >= MGROK_LOG_WINDOW)
		mgrok_log_limit_flush(l, session, now);
}
