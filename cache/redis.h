/*
 * One connection to a Redis server (hiredis, synchronous), with the URL
 * forms connfs accepts and the errors mapped to errno values.
 *
 * A connection is not thread-safe: one thread uses it at a time. Every
 * call is bounded by the connection's timeout, so a Redis that is slow or
 * gone costs a caller at most that long; after any I/O error or timeout
 * the connection is dead (redis_dead()) and must be closed.
 *
 * No password ever reaches a message: errors name the server by its
 * display form (the URL without secrets).
 */
#ifndef CONNFS_REDIS_H
#define CONNFS_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

/*
 * Where and as whom to connect: redis://[USER@]HOST[:PORT][/DB] or
 * unix://[USER@]/PATH[?db=DB]. A password is never taken from the URL
 * (command lines are visible in ps): it comes from a file.
 */
struct redis_target {
	char *host;		/* NULL for a unix socket */
	int port;
	char *path;		/* the socket, or NULL */
	int db;
	char *user;		/* ACL user, or NULL for "default" */
	char *password;		/* or NULL; wiped on release */
	char display[300];	/* the URL as shown: never a secret */
};

/* Parses url into t; -EINVAL with a message in err. */
int redis_parse_url(const char *url, struct redis_target *t, char *err,
		    size_t errlen);
/*
 * Reads the password (first line) from path, which must be a regular file
 * not readable by group or others. -errno with a message in err.
 */
int redis_read_password(struct redis_target *t, const char *path, char *err,
			size_t errlen);
void redis_target_release(struct redis_target *t);

struct redis_conn;

/*
 * Connects, authenticates and selects the database, each step bounded by
 * timeout seconds. 0, or -errno with the reason in err: -EACCES for a
 * refused login, -ECONNREFUSED/-ENOENT/-ETIMEDOUT when nothing answers.
 */
int redis_connect(const struct redis_target *t, double timeout,
		  struct redis_conn **c, char *err, size_t errlen);
void redis_close(struct redis_conn *c);
/* True once an I/O error or a timeout has made the connection unusable. */
bool redis_dead(const struct redis_conn *c);

/*
 * Sends n commands (argv/lens of each) in one round trip and collects the
 * n replies into r[] (free each with freeReplyObject). On failure every
 * r[i] is NULL and -errno comes back with err set; an error *reply* of any
 * command counts as a failure too (its text mapped by redis_reply_errno).
 */
struct redis_cmd {
	int argc;
	const char **argv;
	const size_t *lens;	/* NULL: every argument is a C string */
};
int redis_run(struct redis_conn *c, const struct redis_cmd *cmds, size_t n,
	      redisReply **r, char *err, size_t errlen);
/* One command given as C strings; the reply or NULL with -errno in *rc. */
redisReply *redis_call(struct redis_conn *c, int *rc, char *err,
		       size_t errlen, int argc, const char **argv);

/*
 * Subscriptions: the socket, to poll(2) for pushed messages, and the next
 * pushed message: one already buffered, else (wait) read from the socket
 * within the timeout; NULL with *rc = 0 when none is buffered.
 */
int redis_fd(const struct redis_conn *c);
redisReply *redis_pushed(struct redis_conn *c, bool wait, int *rc,
			 char *err, size_t errlen);

/*
 * The errno of an error reply: -EACCES (NOAUTH, WRONGPASS, NOPERM),
 * -ENOSPC (OOM), -EROFS (READONLY), -EAGAIN (LOADING, BUSY, MASTERDOWN,
 * TRYAGAIN), -ENOENT (NOSCRIPT), else -EIO.
 */
int redis_reply_errno(const char *msg);

#endif
