#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mgrok_log_level = MGROK_LOG_INFO;
int mgrok_log_format = MGROK_LOG_TEXT;

/* stderr is a journal stream: lines carry their priority, not a time. */
static bool journal;

const char *const mgrok_log_level_names[4] = {"error", "warn", "info", "debug"};

int mgrok_log_format_parse(const char *s)
{
	return strcmp(s, "text") == 0   ? MGROK_LOG_TEXT
	       : strcmp(s, "json") == 0 ? MGROK_LOG_JSON
	                                : -1;
}

/* systemd sets $JOURNAL_STREAM to "DEV:INO" of the stream it connects to
 * stderr; the variable is inherited, so only a match with stderr counts. */
void mgrok_log_detect_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;
	journal = env && sscanf(env, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
	          fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	          (unsigned long long)st.st_ino == ino;
}

/* Bytes of the UTF-8 sequence at p (at most n), or 0 if it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are not. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
	if (p[0] < 0xc2 || p[0] > 0xf4 || n < len)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return len;
}

/* s as a JSON string's contents into out (6 bytes per input byte at most,
 * plus the NUL): quotes, backslashes and control characters escaped, bytes
 * that are not UTF-8 replaced by U+FFFD. */
static void json_escape(const char *s, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	while (n) {
		size_t len = 1;
		if (*p == '"' || *p == '\\') {
			*out++ = '\\';
			*out++ = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f) {
			out += sprintf(out, "\\u%04x", *p);
		} else if (*p < 0x80) {
			*out++ = (char)*p;
		} else if ((len = utf8_len(p, n))) {
			memcpy(out, p, len);
			out += len;
		} else {
			len = 1;
			out += sprintf(out, "\\ufffd");
		}
		p += len;
		n -= len;
	}
	*out = '\0';
}

/* One line: one fwrite keeps it whole between processes. */
static void emit(int level, unsigned session, const char *prefix, const char *text)
{
	static const char syslog_priority[4] = {'3', '4', '6', '7'}; /* LOG_ERR ... LOG_DEBUG */
	int lv = level < 0 ? 0 : level > 3 ? 3 : level;
	char line[6 * 1024 + 256], when[40] = "";
	char msg[1024];
	int n;
	snprintf(msg, sizeof(msg), "%s%s%s", prefix ? prefix : "", prefix ? ": " : "", text);
	if (mgrok_log_format == MGROK_LOG_JSON || !journal) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		size_t k = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + k, sizeof(when) - k, ".%03ldZ", ts.tv_nsec / 1000000L);
	}
	char pri[4] = "";
	if (journal)
		snprintf(pri, sizeof(pri), "<%c>", syslog_priority[lv]);
	if (mgrok_log_format == MGROK_LOG_JSON) {
		char esc[6 * sizeof(msg) + 1], who[32] = "";
		json_escape(msg, esc);
		if (session)
			snprintf(who, sizeof(who), ",\"session\":%u", session);
		n = snprintf(line, sizeof(line),
		             "%s{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"%s}\n", pri, when,
		             mgrok_log_level_names[lv], esc, who);
	} else if (journal) {
		n = snprintf(line, sizeof(line), "%s%s\n", pri, msg);
	} else {
		n = snprintf(line, sizeof(line), "%s %-5s %s\n", when, mgrok_log_level_names[lv],
		             msg);
	}
	if (n > 0)
		fwrite(line, 1, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, stderr);
}

static void vlog(int level, unsigned session, const char *prefix, const char *fmt, va_list ap)
{
	if (level > mgrok_log_level)
		return;
	char text[1024];
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		return;
	emit(level, session, prefix, text);
}

void mgrok_vlog(int level, const char *prefix, const char *fmt, va_list ap)
{
	vlog(level, 0, prefix, fmt, ap);
}

void mgrok_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, 0, NULL, fmt, ap);
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
	vlog(level, session, prefix, fmt, ap);
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
