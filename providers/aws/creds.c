/*
 * Credentials as values: copying and wiping them, reading them from the
 * JSON documents that several sources answer with, time stamps, token
 * files, the default session name and the clock. Knows nothing of where
 * credentials come from.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "secret.h"
#include "source.h"

#define TOKEN_MAX_BYTES (64 << 10)

static double real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double (*clock_fn)(void) = real_now;

void aws_set_clock(double (*now)(void))
{
	clock_fn = now ? now : real_now;
}

double aws_now(void)
{
	return clock_fn();
}

void aws_creds_release(struct aws_creds *c)
{
	secret_free(c->access_key);
	secret_free(c->secret_key);
	secret_free(c->session_token);
	memset(c, 0, sizeof(*c));
}

static int dup_secret(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int aws_creds_copy(struct aws_creds *dst, const struct aws_creds *src)
{
	memset(dst, 0, sizeof(*dst));
	if (dup_secret(&dst->access_key, src->access_key) ||
	    dup_secret(&dst->secret_key, src->secret_key) ||
	    dup_secret(&dst->session_token, src->session_token)) {
		aws_creds_release(dst);
		return -ENOMEM;
	}
	dst->expiration = src->expiration;
	return 0;
}

int aws_parse_time(const char *s, time_t *out)
{
	struct timespec ts;

	if (!s || !json_time_rfc3339(s, &ts))
		return -EINVAL;
	*out = ts.tv_sec;
	return 0;
}

void aws_json_free(cJSON *root)
{
	for (cJSON *it = root ? root->child : NULL; it; it = it->next) {
		if (cJSON_IsString(it) && it->valuestring)
			explicit_bzero(it->valuestring,
				       strlen(it->valuestring));
		if (cJSON_IsObject(it))
			for (cJSON *c = it->child; c; c = c->next)
				if (cJSON_IsString(c) && c->valuestring)
					explicit_bzero(c->valuestring,
						       strlen(c->valuestring));
	}
	cJSON_Delete(root);
}

int aws_creds_from_json(const char *body, size_t len, const char *key_name,
			const char *secret_name, const char *token_name,
			const char *expiry_name, struct aws_creds *out,
			const char *what, char *err, size_t errlen)
{
	cJSON *root = json_parse(body, len);
	const char *key = json_str(root, key_name);
	const char *secret = json_str(root, secret_name);
	const char *token = token_name ? json_str(root, token_name) : NULL;
	const char *exp = expiry_name ? json_str(root, expiry_name) : NULL;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "%s: the answer is not a JSON object",
			 what);
		rc = -EPROTO;
	} else if (!key || !*key || !secret || !*secret) {
		snprintf(err, errlen, "%s: the answer has no %s and %s", what,
			 key_name, secret_name);
		rc = -EPROTO;
	} else if (exp && aws_parse_time(exp, &out->expiration)) {
		snprintf(err, errlen, "%s: %s is not an RFC 3339 time", what,
			 expiry_name);
		rc = -EPROTO;
	} else if (dup_secret(&out->access_key, key) ||
		   dup_secret(&out->secret_key, secret) ||
		   dup_secret(&out->session_token, token && *token ? token :
			      NULL)) {
		rc = -ENOMEM;
	}
	if (rc)
		aws_creds_release(out);
	aws_json_free(root);
	return rc;
}

int aws_read_token(const char *path, char **out)
{
	struct buf b = { 0 };
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	*out = NULL;
	if (fd < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (b.len + (size_t)n > TOKEN_MAX_BYTES ||
		    buf_add(&b, chunk, (size_t)n)) {
			rc = -EFBIG;
			break;
		}
	if (n < 0)
		rc = -errno;
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	if (!rc && (!b.p || !*str_trim(b.p)))
		rc = -ENODATA;
	if (!rc) {
		*out = strdup(str_trim(b.p));
		rc = *out ? 0 : -ENOMEM;
	}
	if (b.p)
		explicit_bzero(b.p, b.len);
	buf_release(&b);
	return rc;
}

void aws_session_name(char *buf, size_t len)
{
	char host[256] = "host";

	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "host");
	host[strcspn(host, ".")] = '\0';
	/* RoleSessionName is [\w+=,.@-]{2,64}. */
	for (char *p = host; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-", *p))
			*p = '-';
	snprintf(buf, len < 65 ? len : 65, "connfs-%s-%ld", host,
		 (long)getpid());
}
