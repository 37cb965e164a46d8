/* Accessors for parsed configuration sections. See conf.h. */
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct conf_kv *find(const struct conf_section *s, const char *key)
{
	for (size_t i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	return NULL;
}

const char *conf_get(struct conf_section *s, const char *key)
{
	struct conf_kv *kv = find(s, key);

	if (!kv)
		return NULL;
	kv->used = true;
	return kv->value;
}

int conf_line(const struct conf_section *s, const char *key)
{
	struct conf_kv *kv = key ? find(s, key) : NULL;

	return kv ? kv->line : s->line;
}

int conf_error(const struct conf_section *s, const char *key, char *err,
	       const char *fmt, ...)
{
	char msg[CONF_ERRLEN / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->file)
		snprintf(err, CONF_ERRLEN, "%s:%d: [%s]%s%s: %s", s->file,
			 conf_line(s, key), s->name, key ? " " : "",
			 key ? key : "", msg);
	else
		snprintf(err, CONF_ERRLEN, "[%s]%s%s: %s", s->name,
			 key ? " " : "", key ? key : "", msg);
	return -EINVAL;
}

int conf_uint(struct conf_section *s, const char *key, unsigned long min,
	      unsigned long max, unsigned long *out, char *err)
{
	const char *v = conf_get(s, key);
	unsigned long n;
	char *end;

	if (!v)
		return 0;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (!isdigit((unsigned char)*v) || *end || errno)
		return conf_error(s, key, err, "'%s' is not a whole number", v);
	if (n < min || n > max)
		return conf_error(s, key, err, "%lu is out of range %lu-%lu", n,
				  min, max);
	*out = n;
	return 0;
}

int conf_double(struct conf_section *s, const char *key, double min,
		double max, double *out, char *err)
{
	const char *v = conf_get(s, key);
	char *end;
	double d;

	if (!v)
		return 0;
	errno = 0;
	d = strtod(v, &end);
	if (!*v || *end || errno || !isfinite(d))
		return conf_error(s, key, err, "'%s' is not a number", v);
	if (d < min || d > max)
		return conf_error(s, key, err, "%g is out of range %g-%g", d,
				  min, max);
	*out = d;
	return 0;
}

int conf_bool(struct conf_section *s, const char *key, bool *out, char *err)
{
	static const char *yes[] = { "true", "yes", "1", "on" };
	static const char *no[] = { "false", "no", "0", "off" };
	const char *v = conf_get(s, key);

	if (!v)
		return 0;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	}
	return conf_error(s, key, err, "'%s' is not true or false", v);
}

static bool loopback(const char *host, size_t len)
{
	char h[64];
	struct in_addr a4;

	if (len == 0 || len >= sizeof(h))
		return false;
	memcpy(h, host, len);
	h[len] = '\0';
	if (strcasecmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, h, &a4) == 1 &&
	       (ntohl(a4.s_addr) >> 24) == 127;
}

int conf_url(const struct conf_section *s, const char *key, const char *url,
	     char **out, char *err)
{
	const char *host, *end;
	size_t n;

	if (strncmp(url, "https://", 8) == 0) {
		host = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		host = url + 7;
		end = host + strcspn(host, "/?#");
		if (memchr(host, '@', (size_t)(end - host)))
			return conf_error(s, key, err,
					  "credentials in URLs are not allowed");
		if (host[0] == '[')
			end = strchr(host, ']') ? strchr(host, ']') + 1 : end;
		else
			end = host + strcspn(host, ":/?#");
		if (!loopback(host, (size_t)(end - host)))
			return conf_error(s, key, err,
					  "plain http:// is only allowed for "
					  "loopback addresses; use https://");
	} else {
		return conf_error(s, key, err, "'%s' is not an http(s) URL",
				  url);
	}
	end = host + strcspn(host, "/?#");
	if (end == host)
		return conf_error(s, key, err, "'%s' has no host", url);
	if (memchr(host, '@', (size_t)(end - host)))
		return conf_error(s, key, err,
				  "credentials in URLs are not allowed");
	if (strpbrk(url, "?# \t"))
		return conf_error(s, key, err,
				  "'%s' must not contain a query, fragment "
				  "or spaces", url);
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	*out = strndup(url, n);
	return *out ? 0 : -ENOMEM;
}
