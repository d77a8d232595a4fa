/*
 * One line per event on stderr: time, level, and what it is about. When
 * stderr is the journal ($JOURNAL_STREAM names it), a line starts with its
 * syslog priority ("<4>") instead of a time and level; the journal keeps
 * both. The json format writes one object per line:
 * {"time":"...Z","level":"info","msg":"...","session":N}, session only when
 * the line is about one (the limited lines below).
 */
#ifndef MGROK_LOG_H
#define MGROK_LOG_H

#include <stdarg.h>

#include "mgrok/plugin.h" /* enum mgrok_log_level */

extern int mgrok_log_level;

enum mgrok_log_format { MGROK_LOG_TEXT = 0, MGROK_LOG_JSON = 1 };
extern int mgrok_log_format;
/* Whether lines go to the journal: run once stderr is final (mgrok_log_setup). */
void mgrok_log_detect_journal(void);
/* "text" or "json": the enum value, or -1. */
int mgrok_log_format_parse(const char *s);
/* By enum mgrok_log_level: "error", "warn", "info", "debug". */
extern const char *const mgrok_log_level_names[4];

void mgrok_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mgrok_vlog(int level, const char *prefix, const char *fmt, va_list ap);

/*
 * Lines a remote peer can make us write at will are limited, per kind and
 * per session (or server-wide for lines about new connections): at most
 * `burst` lines in each window of MGROK_LOG_WINDOW seconds. The lines past
 * that are counted, and one line reports them: when the next line of the
 * kind comes after the window, or at mgrok_log_limit_flush (session end).
 * A line the log level hides costs nothing and is not counted.
 */
#define MGROK_LOG_WINDOW 10.0

struct mgrok_log_limit {
	const char *kind; /* for the summary: "REGISTER refused" */
	unsigned burst;   /* lines per window */
	unsigned lines;   /* written in this window */
	unsigned long suppressed;
	int level; /* of the lines suppressed, for their summary */
	double window_start;
};

/* session names the session in the summary; 0 for server-wide kinds. */
void mgrok_log_limited(struct mgrok_log_limit *l, unsigned session, double now, int level,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same with a prefix for every line (a plugin's name), as mgrok_vlog. */
void mgrok_vlog_limited(struct mgrok_log_limit *l, unsigned session, const char *prefix, double now,
                        int level, const char *fmt, va_list ap);
/* The summary once the window of the suppressed lines is over (timers call it). */
void mgrok_log_limit_tick(struct mgrok_log_limit *l, unsigned session, double now);
/* The summary of what is still suppressed, at the end of a session or server. */
void mgrok_log_limit_flush(struct mgrok_log_limit *l, unsigned session, double now);

#define MGROK_ERROR(...) mgrok_log(MGROK_LOG_ERROR, __VA_ARGS__)
#define MGROK_WARN(...) mgrok_log(MGROK_LOG_WARN, __VA_ARGS__)
#define MGROK_INFO(...) mgrok_log(MGROK_LOG_INFO, __VA_ARGS__)
#define MGROK_DEBUG(...)                                                                           \
	do {                                                                                       \
		if (mgrok_log_level >= MGROK_LOG_DEBUG)                                            \
			mgrok_log(MGROK_LOG_DEBUG, __VA_ARGS__);                                   \
	} while (0)

#endif
