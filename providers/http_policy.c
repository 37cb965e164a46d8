/*
 * Where a request may go and how: which proxy (if any) a URL uses, which
 * hosts never go through one, no_proxy matching, masking of credentials in
 * URLs, and the check of a CA bundle path. Pure functions of their
 * arguments (http_ca_check reads the file); nothing here knows libcurl or
 * any provider.
 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int http_url_host(const char *url, char *host, size_t hostlen, int *port,
		  bool *https)
{
	const char *h, *end, *at, *colon;
	size_t n;

	if (strncasecmp(url, "https://", 8) == 0)
		*https = true, h = url + 8, *port = 443;
	else if (strncasecmp(url, "http://", 7) == 0)
		*https = false, h = url + 7, *port = 80;
	else
		return -EINVAL;
	end = h + strcspn(h, "/?#");
	at = memrchr(h, '@', (size_t)(end - h));
	if (at)
		h = at + 1;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (!rb)
			return -EINVAL;
		colon = rb[1] == ':' ? rb + 1 : NULL;
		h++;
		n = (size_t)(rb - h);
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		n = (size_t)((colon ? colon : end) - h);
	}
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)h[i]);
	host[n] = '\0';
	if (n > 1 && host[n - 1] == '.')
		host[n - 1] = '\0';
	if (colon && colon + 1 < end) {
		char *e;
		long p = strtol(colon + 1, &e, 10);

		if (e != end || p < 1 || p > 65535)
			return -EINVAL;
		*port = (int)p;
	}
	return 0;
}

bool http_host_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 &&
	       IN6_IS_ADDR_LOOPBACK(&a6);
}

bool http_host_never_proxied(const char *host)
{
	static const char *const metadata[] = {
		"169.254.169.254", "169.254.170.2", "169.254.170.23",
		"fd00:ec2::254", "fd00:ec2::23",
	};
	unsigned char a[16], b[16];
	int af = strchr(host, ':') ? AF_INET6 : AF_INET;

	if (http_host_loopback(host))
		return true;
	if (inet_pton(af, host, a) != 1)
		return false;
	for (size_t i = 0; i < sizeof(metadata) / sizeof(*metadata); i++)
		if (inet_pton(af, metadata[i], b) == 1 &&
		    memcmp(a, b, af == AF_INET ? 4 : 16) == 0)
			return true;
	return false;
}

/* host inside the CIDR range (or equal to the address) net/bits. */
static bool addr_match(const char *net, int bits, const char *host)
{
	unsigned char a[16], b[16];
	int af = strchr(net, ':') ? AF_INET6 : AF_INET;
	int max = af == AF_INET ? 32 : 128;

	if (inet_pton(af, net, a) != 1 || inet_pton(af, host, b) != 1)
		return false;
	if (bits < 0 || bits > max)
		bits = max;
	for (int i = 0; i < bits / 8; i++)
		if (a[i] != b[i])
			return false;
	if (bits % 8) {
		unsigned char m = (unsigned char)(0xff << (8 - bits % 8));

		return (a[bits / 8] & m) == (b[bits / 8] & m);
	}
	return true;
}

/* One no_proxy entry (lower case, NUL-terminated, no spaces). */
static bool entry_match(char *e, const char *host, int port)
{
	char *slash, *p = NULL;
	size_t el, hl = strlen(host);
	int bits = -1;

	if (strcmp(e, "*") == 0)
		return true;
	if (*e == '[') {
		char *rb = strchr(e, ']');

		if (!rb)
			return false;
		*rb = '\0';
		if (rb[1] == ':')
			p = rb + 2;
		e++;
	} else if (strchr(e, ':') == strrchr(e, ':') && strchr(e, ':')) {
		p = strchr(e, ':');	/* one colon: name:port or v4:port */
		*p++ = '\0';
	}
	if (p && atoi(p) != port)
		return false;
	slash = strchr(e, '/');
	if (slash) {
		*slash = '\0';
		bits = atoi(slash + 1);
	}
	if (strchr(e, ':') || (*e && isdigit((unsigned char)e[strlen(e) - 1])
			       && strspn(e, "0123456789.") == strlen(e)))
		return addr_match(e, bits, host);
	while (*e == '.')
		e++;
	el = strlen(e);
	if (el && e[el - 1] == '.')
		e[--el] = '\0';
	if (el == 0 || el > hl)
		return false;
	if (strcmp(host + hl - el, e) != 0)
		return false;
	return hl == el || host[hl - el - 1] == '.';
}

bool http_no_proxy_match(const char *no_proxy, const char *host, int port)
{
	const char *s = no_proxy;

	if (!s)
		return false;
	while (*s) {
		char e[300];
		size_t n;

		s += strspn(s, ", \t");
		n = strcspn(s, ", \t");
		if (n == 0)
			break;
		if (n < sizeof(e)) {
			for (size_t i = 0; i < n; i++)
				e[i] = (char)tolower((unsigned char)s[i]);
			e[n] = '\0';
			if (entry_match(e, host, port))
				return true;
		}
		s += n;
	}
	return false;
}

int http_proxy_pick(const struct http_proxy_env *pe, const char *url,
		    char *out, size_t outlen)
{
	char host[256];
	const char *p;
	bool https;
	int port, rc;

	out[0] = '\0';
	if ((rc = http_url_host(url, host, sizeof(host), &port, &https)))
		return rc;
	if (http_host_never_proxied(host))
		return 0;
	if (pe->proxy && *pe->proxy)
		p = strcasecmp(pe->proxy, "none") == 0 ? NULL : pe->proxy;
	else
		p = https ? pe->https_proxy : pe->http_proxy;
	if (!p || !*p || http_no_proxy_match(pe->no_proxy, host, port))
		return 0;
	if (strlen(p) >= outlen)
		return -ENAMETOOLONG;
	strcpy(out, p);
	return 0;
}

int http_proxy_check(const char *proxy)
{
	char host[256];
	bool https;
	int port;

	if (strcasecmp(proxy, "none") == 0)
		return 0;
	if (strpbrk(proxy, " \t\r\n"))
		return -EINVAL;
	return http_url_host(proxy, host, sizeof(host), &port, &https);
}

void http_redact(char *s)
{
	char *p = s;

	while ((p = strstr(p, "://"))) {
		char *u = p + 3;
		size_t n = strcspn(u, "/?# \t'\"<>");
		char *at = memrchr(u, '@', n);

		p = u;
		if (!at)
			continue;
		memmove(u + 3, at, strlen(at) + 1);
		memcpy(u, "***", 3);
	}
}

const char *http_failure(int rc, const struct http_resp *resp, char *buf,
			 size_t len)
{
	if (rc == -ETIMEDOUT)
		snprintf(buf, len, "timed out");
	else if (rc == -EPROTO)
		snprintf(buf, len, "TLS certificate refused: %s", resp->err);
	else
		snprintf(buf, len, "%s", resp->err[0] ? resp->err :
			 strerror(-rc));
	return buf;
}

int http_ca_check(const char *path, char *why, size_t whylen)
{
	static const char pem[] = "-----BEGIN CERTIFICATE-----";
	char buf[8192];
	struct stat st;
	size_t keep = 0, n;
	bool found = false;
	FILE *f = fopen(path, "re");

	if (!f) {
		int err = errno;

		snprintf(why, whylen, "%s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		fclose(f);
		snprintf(why, whylen, "%s: not a regular file", path);
		return -EINVAL;
	}
	/* Keeps the tail of each chunk so a marker across chunks is found. */
	while (!found && (n = fread(buf + keep, 1, sizeof(buf) - 1 - keep,
				    f)) > 0) {
		n += keep;
		buf[n] = '\0';
		found = memmem(buf, n, pem, sizeof(pem) - 1) != NULL;
		keep = n < sizeof(pem) ? n : sizeof(pem) - 1;
		memmove(buf, buf + n - keep, keep);
	}
	fclose(f);
	if (!found) {
		snprintf(why, whylen, "%s: no PEM certificate (-----BEGIN "
			 "CERTIFICATE-----) in the file", path);
		return -EINVAL;
	}
	return 0;
}
