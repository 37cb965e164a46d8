/*
 * Helper programs with a clean slate and a deadline. See subproc.h.
 *
 * posix_spawn(3) does the isolation in the child before exec: dup2 of the
 * pipe onto stdout, /dev/null onto stdin, closefrom(3) (so descriptors the
 * daemon opened without O_CLOEXEC, such as fusermount3's auto_unmount
 * socket, stay behind), an empty signal mask (libfuse's threads block HUP,
 * INT, QUIT and TERM) and default dispositions (SIGPIPE is ignored in the
 * daemon). The parent waits on the pipe and on a pidfd (pidfd_open(2)),
 * so it learns of the exit even when a background helper keeps the pipe.
 */
#include "subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The largest pipe buffer (/proc/sys/fs/pipe-max-size by default). */
#define PIPE_MAX ((size_t)1 << 20)
/* Without a pidfd (kernels before 5.3) the exit is checked this often. */
#define POLL_SLICE_MS 20

struct child {
	pid_t pid;
	int pidfd;		/* -1 if the kernel has none */
	int rfd;		/* read end of stdout; -1 after EOF */
	bool exited;
	int status;
	char *buf;		/* cap + 1 bytes */
	size_t got, cap;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at,
		       int wfd)
{
	sigset_t none, all;
	int rc;

	sigemptyset(&none);
	sigfillset(&all);
	rc = posix_spawn_file_actions_adddup2(fa, wfd, 1);
	if (!rc)
		rc = posix_spawn_file_actions_addopen(fa, 0, "/dev/null",
						      O_RDONLY, 0);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(fa, 3);
	if (!rc)
		rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	if (!rc)
		rc = posix_spawnattr_setsigmask(at, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(at, &all);
	if (!rc)
		rc = posix_spawnattr_setpgroup(at, 0);
	return -rc;
}

/* Starts argv with wfd as its stdout; 0 or a negative errno. */
static int start(char *const argv[], int wfd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int rc;

	rc = -posix_spawn_file_actions_init(&fa);
	if (rc)
		return rc;
	rc = -posix_spawnattr_init(&at);
	if (!rc) {
		rc = spawn_setup(&fa, &at, wfd);
		if (!rc)
			rc = -posix_spawnp(pid, argv[0], &fa, &at, argv,
					   environ);
		posix_spawnattr_destroy(&at);
	}
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/*
 * Reads what is in the pipe now, at most max bytes and not past the
 * deadline (a helper in the background may write without end); closes the
 * pipe at EOF or on an error.
 */
static void drain(struct child *c, double deadline, size_t max)
{
	char junk[4096];

	while (c->rfd >= 0 && max && now_s() < deadline) {
		bool keep = c->got < c->cap;
		size_t want = keep ? c->cap - c->got : sizeof(junk);
		ssize_t n;

		if (want > max)
			want = max;
		n = read(c->rfd, keep ? c->buf + c->got : junk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			close(c->rfd);
			c->rfd = -1;
			break;
		}
		max -= (size_t)n;
		if (keep)
			c->got += (size_t)n;
	}
	explicit_bzero(junk, sizeof(junk));
}

static void try_reap(struct child *c)
{
	pid_t r;

	if (c->exited)
		return;
	do
		r = waitpid(c->pid, &c->status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == c->pid)
		c->exited = true;
}

/* Until the child has exited and the pipe is drained, or the deadline. */
static int wait_child(struct child *c, double deadline)
{
	for (;;) {
		struct pollfd p[2];
		double left = deadline - now_s();
		int n = 0, ms;

		drain(c, deadline, PIPE_MAX);
		try_reap(c);
		if (c->exited) {
			/* What it wrote before exiting: at most a full pipe. */
			drain(c, deadline, PIPE_MAX);
			return 0;
		}
		if (left <= 0)
			return -ETIMEDOUT;
		ms = (int)(left * 1000) + 1;
		if (c->rfd >= 0)
			p[n++] = (struct pollfd){ .fd = c->rfd,
						  .events = POLLIN };
		if (c->pidfd >= 0)
			p[n++] = (struct pollfd){ .fd = c->pidfd,
						  .events = POLLIN };
		else if (ms > POLL_SLICE_MS)
			ms = POLL_SLICE_MS;
		if (n)
			poll(p, (nfds_t)n, ms);
		else
			poll(NULL, 0, ms);
	}
}

static void kill_and_reap(struct child *c)
{
	if (kill(-c->pid, SIGKILL) && !c->exited)
		kill(c->pid, SIGKILL);
	while (!c->exited && waitpid(c->pid, &c->status, 0) < 0 &&
	       errno == EINTR)
		;
	c->exited = true;
}

static int open_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK)) {
		int rc = -errno;

		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	return 0;
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

int spawn_capture(char *const argv[], double timeout_s, size_t cap,
		  char **out, size_t *len, int *status, char *err,
		  size_t errlen)
{
	struct child c = { .pidfd = -1, .rfd = -1, .cap = cap };
	double deadline = now_s() + timeout_s;
	int fds[2], rc;

	*out = NULL;
	*len = 0;
	c.buf = malloc(cap + 1);
	if (!c.buf) {
		snprintf(err, errlen, "could not be started: %s",
			 strerror(ENOMEM));
		return -ENOMEM;
	}
	rc = open_pipe(fds);
	if (!rc) {
		rc = start(argv, fds[1], &c.pid);
		close(fds[1]);
		c.rfd = fds[0];
	}
	if (rc) {
		if (c.rfd >= 0)
			close(c.rfd);
		free(c.buf);
		snprintf(err, errlen, "could not be started: %s",
			 strerror(-rc));
		return rc;
	}
	c.pidfd = pidfd_of(c.pid);
	rc = wait_child(&c, deadline);
	if (rc)
		kill_and_reap(&c);
	if (c.rfd >= 0)
		close(c.rfd);
	if (c.pidfd >= 0)
		close(c.pidfd);
	if (rc) {
		explicit_bzero(c.buf, cap + 1);
		free(c.buf);
		snprintf(err, errlen, "did not finish within %g s", timeout_s);
		return rc;
	}
	c.buf[c.got] = '\0';
	*out = c.buf;
	*len = c.got;
	*status = c.status;
	return 0;
}
