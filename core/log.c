#include "log.h"

#include <stdio.h>
#include <time.h>

int mgrok_log_level = MGROK_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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
	        level_names[level < 0 ? 0 : level > 3 ? 3 : level], prefix ? prefix : "",
	        prefix ? ": " : "", line);
}

void mgrok_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mgrok_vlog(level, NULL, fmt, ap);
	va_end(ap);
}
