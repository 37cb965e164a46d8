/* Log dispatch. See log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int level = LOG_WARNING;
static log_sink_fn sink;

void log_set_level(int l)
{
	level = l;
}

int log_get_level(void)
{
	return level;
}

void log_set_sink(log_sink_fn fn)
{
	sink = fn;
}

static const char *const names[] = {
	[LOG_ERR] = "error", [LOG_WARNING] = "warn",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

const char *log_level_name(int l)
{
	if (l < LOG_ERR)
		return "error";
	if (l > LOG_DEBUG || !names[l])
		return l > LOG_DEBUG ? "debug" : "notice";
	return names[l];
}

int log_parse_level(const char *name)
{
	for (int l = LOG_ERR; l <= LOG_DEBUG; l++)
		if (names[l] && strcmp(names[l], name) == 0)
			return l;
	if (strcmp(name, "warning") == 0)
		return LOG_WARNING;
	return -1;
}

void log_msg(int l, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (l > level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sink)
		sink(l, msg);
	else
		fprintf(stderr, "connfs: %s: %s\n", log_level_name(l), msg);
}
