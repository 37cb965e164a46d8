/*
 * credential_process: a command that prints credentials as JSON
 * (Version 1: AccessKeyId, SecretAccessKey, SessionToken, Expiration), run
 * as botocore runs it: the command line split into words as a POSIX shell
 * quotes them but with no shell, a 10 s limit, stdin from /dev/null. The
 * child gets a clean signal mask and default dispositions, only
 * descriptors 0-2 and its own process group (killed as a whole on
 * timeout), and is always reaped. Knows nothing of profiles.
 * Format: https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "secret.h"
#include "source.h"

#define PROCESS_MAX_OUTPUT (64 << 10)
#define PROCESS_MAX_ARGS 128

extern char **environ;

long aws_process_timeout_ms = 10000;

void aws_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* One word starting at *s; advances *s. 1 if a word was read, 0 at end. */
static int next_word(const char **s, struct buf *w)
{
	const char *p = *s;
	char q = 0;
	bool any = false;

	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	for (; *p && (q || !strchr(" \t\n", *p)); p++) {
		any = true;
		if (q == '\'' && *p == '\'') {
			q = 0;
		} else if (q == '\'') {
			if (buf_add(w, p, 1))
				return -ENOMEM;
		} else if (*p == '\\' && p[1] &&
			   (!q || strchr("\"\\$`\n", p[1]))) {
			p++;
			if (*p != '\n' && buf_add(w, p, 1))
				return -ENOMEM;
		} else if (*p == q) {
			q = 0;
		} else if (!q && (*p == '"' || *p == '\'')) {
			q = *p;
		} else if (buf_add(w, p, 1)) {
			return -ENOMEM;
		}
	}
	*s = p;
	if (q)
		return -EINVAL;
	return any ? 1 : 0;
}

int aws_split_command(const char *cmd, char ***argv_out)
{
	char **argv = calloc(PROCESS_MAX_ARGS + 1, sizeof(*argv));
	size_t n = 0;
	int rc = 0;

	*argv_out = NULL;
	if (!argv)
		return -ENOMEM;
	for (;;) {
		struct buf w = { 0 };

		rc = next_word(&cmd, &w);
		if (rc <= 0) {
			buf_release(&w);
			break;
		}
		if (n == PROCESS_MAX_ARGS) {
			buf_release(&w);
			rc = -E2BIG;
			break;
		}
		argv[n++] = buf_steal(&w);
	}
	if (!rc && n == 0)
		rc = -EINVAL;
	if (rc) {
		aws_argv_free(argv);
		return rc;
	}
	*argv_out = argv;
	return 0;
}

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int spawn(char **argv, int out_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int rc;

	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	rc = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return -rc;
}

/* Reads the child's stdout until EOF, the cap or the deadline. */
static int collect(int fd, struct buf *out, double deadline)
{
	char chunk[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		double left = deadline - mono_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)left + 1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!pfd.revents)
			continue;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		if (out->len + (size_t)n > PROCESS_MAX_OUTPUT)
			return -EFBIG;
		if (buf_add(out, chunk, (size_t)n))
			return -ENOMEM;
		explicit_bzero(chunk, sizeof(chunk));
	}
}

/* Waits for the child until the deadline, then kills its group. */
static int reap(pid_t pid, double deadline, bool kill_now)
{
	int status = 0;

	if (kill_now)
		kill(-pid, SIGKILL);
	while (!kill_now && mono_ms() < deadline) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			return status;
		if (w < 0 && errno != EINTR)
			return -1;
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

static int run(char **argv, struct buf *out, int *status)
{
	double deadline = mono_ms() + (double)aws_process_timeout_ms;
	int fds[2], rc;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	rc = spawn(argv, fds[1], &pid);
	close(fds[1]);
	if (rc) {
		close(fds[0]);
		return rc;
	}
	rc = collect(fds[0], out, deadline);
	close(fds[0]);
	*status = reap(pid, deadline, rc != 0);
	return rc;
}

int aws_process_parse(const char *text, struct aws_creds *out, char *err,
		      size_t errlen)
{
	cJSON *root = json_parse(text, strlen(text));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "Version");
	bool one = cJSON_IsNumber(v) && v->valuedouble == 1;

	aws_json_free(root);
	memset(out, 0, sizeof(*out));
	if (!one) {
		snprintf(err, errlen, "credential_process: the output is not "
			 "JSON with \"Version\": 1");
		return -EPROTO;
	}
	return aws_creds_from_json(text, strlen(text), "AccessKeyId",
				   "SecretAccessKey", "SessionToken",
				   "Expiration", out, "credential_process",
				   err, errlen);
}

int aws_process_fetch(struct aws_node *n, struct aws_creds *out, char *err,
		      size_t errlen)
{
	struct buf o = { 0 };
	char **argv = NULL;
	int status = 0, rc = aws_split_command(n->command, &argv);

	if (rc) {
		snprintf(err, errlen, "credential_process of profile %s: "
			 "cannot split the command line", n->profile);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	rc = run(argv, &o, &status);
	if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "credential_process of profile %s (%s): "
			 "no answer within %.3g s; stopped", n->profile,
			 argv[0], (double)aws_process_timeout_ms / 1000);
	else if (rc)
		snprintf(err, errlen, "credential_process of profile %s (%s): "
			 "%s", n->profile, argv[0], rc == -EFBIG ?
			 "output larger than 64 KiB" : strerror(-rc));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "credential_process of profile %s (%s) "
			 "failed (%s %d)", n->profile, argv[0],
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) :
			 WTERMSIG(status));
		rc = -EACCES;
	} else {
		rc = aws_process_parse(o.p ? o.p : "", out, err, errlen);
	}
	if (o.p)
		explicit_bzero(o.p, o.len);
	buf_release(&o);
	aws_argv_free(argv);
	return rc == -ENOMEM || rc == -EACCES ? rc : rc ? -EIO : 0;
}
