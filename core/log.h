/* One line per event on stderr: time, level, and what it is about. */
#ifndef MGROK_LOG_H
#define MGROK_LOG_H

#include <stdarg.h>

#include "mgrok/plugin.h" /* enum mgrok_log_level */

extern int mgrok_log_level;

void mgrok_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mgrok_vlog(int level, const char *prefix, const char *fmt, va_list ap);

#define MGROK_ERROR(...) mgrok_log(MGROK_LOG_ERROR, __VA_ARGS__)
#define MGROK_WARN(...) mgrok_log(MGROK_LOG_WARN, __VA_ARGS__)
#define MGROK_INFO(...) mgrok_log(MGROK_LOG_INFO, __VA_ARGS__)
#define MGROK_DEBUG(...)                                                                          \
	do {                                                                                       \
		if (mgrok_log_level >= MGROK_LOG_DEBUG)                                            \
			mgrok_log(MGROK_LOG_DEBUG, __VA_ARGS__);                                   \
	} while (0)

#endif
