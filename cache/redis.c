/*
 * Redis connections for the fleet tier (see redis.h).
 */
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

struct redis_conn {
	redisContext *ctx;
	char display[300];
};

static void wipe(char *s)
{
	if (s) {
		/* volatile: the stores must not be optimised away. */
		for (volatile char *p = s; *p; p++)
			*p = 0;
		free(s);
	}
}

void redis_target_release(struct redis_target *t)
{
	free(t->host);
	free(t->path);
	free(t->user);
	wipe(t->password);
	memset(t, 0, sizeof(*t));
}

static int bad_url(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "redis: %s (expected redis://[USER@]HOST[:PORT]"
		 "[/DB] or unix://[USER@]/PATH[?db=DB])", why);
	return -EINVAL;
}

static int parse_int(const char *s, size_t len, long max, int *out)
{
	long v = 0;

	if (!len || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* "USER@" before rest, if any; a ':' in it would be a password. */
static int parse_user(const char **rest, struct redis_target *t, char *err,
		      size_t errlen)
{
	const char *at = strchr(*rest, '@');
	const char *end = strpbrk(*rest, "/?");

	if (!at || (end && end < at))
		return 0;
	if (memchr(*rest, ':', (size_t)(at - *rest)))
		return bad_url(err, errlen, "a password does not belong in "
			       "the URL, where ps shows it; put it in a file "
			       "named by redis_password_file");
	if (at == *rest)
		return bad_url(err, errlen, "empty user name before '@'");
	if (!(t->user = strndup(*rest, (size_t)(at - *rest))))
		return -ENOMEM;
	*rest = at + 1;
	return 0;
}

static int parse_tcp(const char *p, struct redis_target *t, char *err,
		     size_t errlen)
{
	const char *slash = strchr(p, '/');
	size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
	const char *colon = memchr(p, ':', hlen);

	t->port = 6379;
	if (colon) {
		if (parse_int(colon + 1, hlen - (size_t)(colon + 1 - p), 65535,
			      &t->port) || !t->port)
			return bad_url(err, errlen, "bad port");
		hlen = (size_t)(colon - p);
	}
	if (!hlen)
		return bad_url(err, errlen, "no host");
	if (!(t->host = strndup(p, hlen)))
		return -ENOMEM;
	if (slash && slash[1] && parse_int(slash + 1, strlen(slash + 1),
					   INT_MAX, &t->db))
		return bad_url(err, errlen, "bad database number");
	return 0;
}

static int parse_unix(const char *p, struct redis_target *t, char *err,
		      size_t errlen)
{
	const char *q = strchr(p, '?');
	size_t plen = q ? (size_t)(q - p) : strlen(p);

	if (plen < 2 || p[0] != '/')
		return bad_url(err, errlen, "a unix socket needs an absolute "
			       "path");
	if (!(t->path = strndup(p, plen)))
		return -ENOMEM;
	if (q && (strncmp(q, "?db=", 4) ||
		  parse_int(q + 4, strlen(q + 4), INT_MAX, &t->db)))
		return bad_url(err, errlen, "the only query is ?db=NUMBER");
	return 0;
}

int redis_parse_url(const char *url, struct redis_target *t, char *err,
		    size_t errlen)
{
	const char *rest;
	bool unix_sock;
	int rc;

	memset(t, 0, sizeof(*t));
	if (!strncmp(url, "redis://", 8))
		unix_sock = false;
	else if (!strncmp(url, "unix://", 7))
		unix_sock = true;
	else
		return bad_url(err, errlen, "unknown scheme");
	rest = url + (unix_sock ? 7 : 8);
	rc = parse_user(&rest, t, err, errlen);
	if (!rc)
		rc = unix_sock ? parse_unix(rest, t, err, errlen) :
				 parse_tcp(rest, t, err, errlen);
	if (rc) {
		redis_target_release(t);
		return rc;
	}
	/* The URL holds no secret (refused above), so it is shown as is. */
	snprintf(t->display, sizeof(t->display), "%s", url);
	return 0;
}

int redis_read_password(struct redis_target *t, const char *path, char *err,
			size_t errlen)
{
	char buf[1024];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		snprintf(err, errlen, "redis_password_file %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		close(fd);
		snprintf(err, errlen, "redis_password_file %s: must be a "
			 "regular file readable only by its owner (chmod 600)",
			 path);
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "redis_password_file %s: %s", path,
			 strerror(errno));
		return -EIO;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (!buf[0]) {
		snprintf(err, errlen, "redis_password_file %s: empty", path);
		return -EINVAL;
	}
	wipe(t->password);
	t->password = strdup(buf);
	memset(buf, 0, sizeof(buf));
	return t->password ? 0 : -ENOMEM;
}

int redis_reply_errno(const char *msg)
{
	static const struct {
		const char *prefix;
		int err;
	} map[] = {
		{ "NOAUTH", -EACCES },	  { "WRONGPASS", -EACCES },
		{ "NOPERM", -EACCES },	  { "OOM", -ENOSPC },
		{ "READONLY", -EROFS },	  { "LOADING", -EAGAIN },
		{ "BUSY", -EAGAIN },	  { "MASTERDOWN", -EAGAIN },
		{ "TRYAGAIN", -EAGAIN },  { "NOSCRIPT", -ENOENT },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strncmp(msg, map[i].prefix, strlen(map[i].prefix)))
			return map[i].err;
	return -EIO;
}

static struct timeval tv_of(double secs)
{
	struct timeval tv = { .tv_sec = (time_t)secs };

	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	return tv;
}

/* The errno of a failed context, and its message. */
static int ctx_errno(const redisContext *ctx, const char *display, char *err,
		     size_t errlen)
{
	int e = ctx->err == REDIS_ERR_IO ? errno : 0;

	if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS ||
	    strstr(ctx->errstr, "timed out"))
		e = ETIMEDOUT;
	else if (ctx->err == REDIS_ERR_EOF)
		e = ECONNRESET;
	else if (!e)
		e = strstr(ctx->errstr, "refused") ? ECONNREFUSED : EIO;
	snprintf(err, errlen, "redis %s: %s", display,
		 e == ETIMEDOUT ? "timed out" : ctx->errstr[0] ?
		 ctx->errstr : strerror(e));
	return -e;
}

int redis_run(struct redis_conn *c, const struct redis_cmd *cmds, size_t n,
	      redisReply **r, char *err, size_t errlen)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		r[i] = NULL;
	if (c->ctx->err)
		return ctx_errno(c->ctx, c->display, err, errlen);
	for (size_t i = 0; i < n; i++)
		if (redisAppendCommandArgv(c->ctx, cmds[i].argc, cmds[i].argv,
					   cmds[i].lens) != REDIS_OK)
			return ctx_errno(c->ctx, c->display, err, errlen);
	for (size_t i = 0; i < n; i++) {
		void *reply = NULL;

		if (redisGetReply(c->ctx, &reply) != REDIS_OK) {
			rc = ctx_errno(c->ctx, c->display, err, errlen);
			break;
		}
		r[i] = reply;
	}
	for (size_t i = 0; !rc && i < n; i++)
		if (r[i]->type == REDIS_REPLY_ERROR) {
			rc = redis_reply_errno(r[i]->str);
			snprintf(err, errlen, "redis %s: %s", c->display,
				 r[i]->str);
		}
	if (rc)
		for (size_t i = 0; i < n; i++) {
			if (r[i])
				freeReplyObject(r[i]);
			r[i] = NULL;
		}
	return rc;
}

redisReply *redis_call(struct redis_conn *c, int *rc, char *err,
		       size_t errlen, int argc, const char **argv)
{
	struct redis_cmd cmd = { .argc = argc, .argv = argv };
	redisReply *r;

	*rc = redis_run(c, &cmd, 1, &r, err, errlen);
	return r;
}

static int login(struct redis_conn *c, const struct redis_target *t,
		 char *err, size_t errlen)
{
	char db[16];
	redisReply *r;
	int rc = 0;

	if (t->password) {
		const char *argv[] = { "AUTH", t->user ? t->user : "default",
				       t->password };

		r = redis_call(c, &rc, err, errlen, 3, argv);
		if (r)
			freeReplyObject(r);
		/* The reply names no secret; the message says what to fix. */
		if (rc == -EACCES)
			snprintf(err, errlen, "redis %s: authentication "
				 "failed (check redis_password_file and the "
				 "user in the URL)", t->display);
		if (rc)
			return rc;
	}
	if (t->db) {
		snprintf(db, sizeof(db), "%d", t->db);
		r = redis_call(c, &rc, err, errlen, 2,
			       (const char *[]){ "SELECT", db });
		if (r)
			freeReplyObject(r);
		return rc;
	}
	/* Without a password, a server that wants one says so at once. */
	r = redis_call(c, &rc, err, errlen, 1, (const char *[]){ "PING" });
	if (r)
		freeReplyObject(r);
	if (rc == -EACCES)
		snprintf(err, errlen, "redis %s: the server wants a password "
			 "(redis_password_file)", t->display);
	return rc;
}

int redis_connect(const struct redis_target *t, double timeout,
		  struct redis_conn **out, char *err, size_t errlen)
{
	struct timeval tv = tv_of(timeout);
	struct redis_conn *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	snprintf(c->display, sizeof(c->display), "%s", t->display);
	c->ctx = t->path ? redisConnectUnixWithTimeout(t->path, tv) :
			   redisConnectWithTimeout(t->host, t->port, tv);
	if (!c->ctx) {
		free(c);
		return -ENOMEM;
	}
	if (c->ctx->err) {
		rc = ctx_errno(c->ctx, c->display, err, errlen);
		if (t->path && rc == -EIO && access(t->path, F_OK))
			rc = -ENOENT;
		redis_close(c);
		return rc;
	}
	/* hiredis does not set FD_CLOEXEC; a spawned helper must not hold
	 * the socket. */
	fcntl(c->ctx->fd, F_SETFD, FD_CLOEXEC);
	if (redisSetTimeout(c->ctx, tv) != REDIS_OK ||
	    (!t->path && redisEnableKeepAlive(c->ctx) != REDIS_OK)) {
		rc = ctx_errno(c->ctx, c->display, err, errlen);
		redis_close(c);
		return rc;
	}
	if ((rc = login(c, t, err, errlen))) {
		redis_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void redis_close(struct redis_conn *c)
{
	if (!c)
		return;
	redisFree(c->ctx);
	free(c);
}

bool redis_dead(const struct redis_conn *c)
{
	return c->ctx->err != 0;
}

int redis_fd(const struct redis_conn *c)
{
	return c->ctx->fd;
}

redisReply *redis_pushed(struct redis_conn *c, bool wait, int *rc,
			 char *err, size_t errlen)
{
	void *reply = NULL;

	*rc = 0;
	if (redisReaderGetReply(c->ctx->reader, &reply) != REDIS_OK) {
		c->ctx->err = REDIS_ERR_PROTOCOL;
		*rc = -EPROTO;
		snprintf(err, errlen, "redis %s: protocol error", c->display);
		return NULL;
	}
	if (reply || !wait)
		return reply;
	if (redisGetReply(c->ctx, &reply) != REDIS_OK) {
		*rc = ctx_errno(c->ctx, c->display, err, errlen);
		return NULL;
	}
	return reply;
}
