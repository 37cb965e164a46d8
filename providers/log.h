/*
 * Logging for every layer. Levels are syslog's. The destination (stderr,
 * syslog or a file) is chosen by fs/ at start-up through log_set_sink();
 * providers and the cache just call log_msg(). Callers must never pass
 * secrets, and must escape API text with api_text() first.
 */
#ifndef CONNFS_LOG_H
#define CONNFS_LOG_H

#include <syslog.h>

typedef void (*log_sink_fn)(int level, const char *msg);

void log_set_level(int level);
int log_get_level(void);
void log_set_sink(log_sink_fn fn);
void log_msg(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "error", "warn", "info", "debug" → syslog level; -1 if unknown. */
int log_parse_level(const char *name);
const char *log_level_name(int level);

#endif
