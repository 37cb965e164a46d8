/*
 * Configuration sections: what the INI parser in fs/ produces and what
 * providers read. One section = one mounted provider account. Providers read
 * keys through these accessors, which mark keys as used so that leftover
 * (unknown) keys can be reported with file and line. No FUSE, no network.
 */
#ifndef CONNFS_CONF_H
#define CONNFS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CONF_ERRLEN 512

struct conf_kv {
	char *key;
	char *value;
	int line;
	bool used;
};

struct conf_section {
	char *name;		/* directory name under the mount point */
	const char *file;	/* config file path, or NULL (environment) */
	int line;		/* line of the [section] header */
	mode_t file_mode;	/* permission bits of the config file */
	struct conf_kv *kv;
	size_t nkv;
};

/* Value of key or NULL; marks the key used. */
const char *conf_get(struct conf_section *s, const char *key);
/* Line of key (or of the section header when absent), for messages. */
int conf_line(const struct conf_section *s, const char *key);

/*
 * Formats "FILE:LINE: [section] key: message" into err. Always returns
 * -EINVAL so callers can write `return conf_error(...)`.
 */
int conf_error(const struct conf_section *s, const char *key, char *err,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Unsigned integer key in [min, max]; *out untouched when absent. */
int conf_uint(struct conf_section *s, const char *key, unsigned long min,
	      unsigned long max, unsigned long *out, char *err);
/* Non-negative number (seconds, rates); *out untouched when absent. */
int conf_double(struct conf_section *s, const char *key, double min,
		double max, double *out, char *err);
/* Boolean key: true/false/yes/no/1/0/on/off. */
int conf_bool(struct conf_section *s, const char *key, bool *out, char *err);

/*
 * Validates a base URL: https anywhere, plain http only for loopback hosts
 * (127.0.0.0/8, localhost, [::1]). Returns a new string without trailing
 * slashes in *out.
 */
int conf_url(const struct conf_section *s, const char *key, const char *url,
	     char **out, char *err);

#endif
