/*
 * API tokens from config, files, commands or the environment. See secret.h.
 * A token_command runs through /bin/sh with a hard time limit so that a
 * hanging password manager cannot hang a mount or a listing.
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECRET_MAX 8192
#define COMMAND_TIMEOUT_MS 10000

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Keeps only the first line, without trailing whitespace. */
static void first_line(char *s)
{
	size_t n = strcspn(s, "\r\n");

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	s[n] = '\0';
}

static int read_file(const char *path, char **out, char *err, size_t len)
{
	char buf[SECRET_MAX];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, len, "cannot read token_file %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, len, "cannot read token_file %s: %s", path,
			 strerror(errno));
		return -EIO;
	}
	buf[n] = '\0';
	first_line(buf);
	if (!buf[0]) {
		snprintf(err, len, "token_file %s is empty", path);
		explicit_bzero(buf, sizeof(buf));
		return -EINVAL;
	}
	*out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *out ? 0 : -ENOMEM;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* Reads the child's stdout until EOF, the cap, or the time limit. */
static int collect(int fd, char *buf, size_t cap, long deadline)
{
	size_t got = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == cap - 1)
			break;
	}
	buf[got] = '\0';
	return 0;
}

static int run_command(const char *cmd, char **out, char *err, size_t len)
{
	char buf[SECRET_MAX];
	int fds[2], status, rc;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC)) {
		rc = -errno;
		snprintf(err, len, "cannot run token_command: %s",
			 strerror(-rc));
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(fds[0]);
		close(fds[1]);
		snprintf(err, len, "cannot run token_command: %s",
			 strerror(-rc));
		return rc;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(devnull, 0);
		dup2(fds[1], 1);
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	rc = collect(fds[0], buf, sizeof(buf), now_ms() + COMMAND_TIMEOUT_MS);
	close(fds[0]);
	if (rc == -ETIMEDOUT)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == -ETIMEDOUT) {
		snprintf(err, len, "token_command did not finish within %d s",
			 COMMAND_TIMEOUT_MS / 1000);
		explicit_bzero(buf, sizeof(buf));
		return rc;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, len, "token_command failed (exit status %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		explicit_bzero(buf, sizeof(buf));
		return -EINVAL;
	}
	first_line(buf);
	if (!buf[0]) {
		snprintf(err, len, "token_command printed no token");
		return -EINVAL;
	}
	*out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *out ? 0 : -ENOMEM;
}

/* A token becomes an HTTP header value: no line breaks or controls. */
static bool header_safe(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

int secret_refresh(struct secret *sec, char *err, size_t errlen)
{
	char *v = NULL;
	int rc;

	if (sec->file)
		rc = read_file(sec->file, &v, err, errlen);
	else if (sec->command)
		rc = run_command(sec->command, &v, err, errlen);
	else
		return 0;
	if (rc)
		return rc;
	if (!header_safe(v)) {
		secret_free(v);
		snprintf(err, errlen, "the token contains control characters");
		return -EINVAL;
	}
	secret_free(sec->value);
	sec->value = v;
	return 0;
}

int secret_configure(struct secret *sec, struct conf_section *s,
		     const char *env, char *err)
{
	const char *tok = conf_get(s, "token");
	const char *file = conf_get(s, "token_file");
	const char *cmd = conf_get(s, "token_command");
	const char *key = tok ? "token" : file ? "token_file" : "token_command";
	char msg[CONF_ERRLEN / 2] = "";
	int rc;

	memset(sec, 0, sizeof(*sec));
	if (!!tok + !!file + !!cmd > 1)
		return conf_error(s, key, err, "give only one of token, "
				  "token_file and token_command");
	if (tok && s->file && (s->file_mode & 077))
		return conf_error(s, "token", err,
				  "the file holds a literal token but is "
				  "readable by group or others; chmod 600 %s "
				  "or use token_file/token_command", s->file);
	if (file)
		sec->file = strdup(file);
	else if (cmd)
		sec->command = strdup(cmd);
	if (tok || (!file && !cmd)) {
		const char *v = tok ? tok : env ? getenv(env) : NULL;

		if (v && !header_safe(v))
			return conf_error(s, tok ? "token" : NULL, err,
					  "the token contains control characters");
		if (!v || !*v)
			return conf_error(s, NULL, err, "no API token: set "
					  "token, token_file or token_command%s%s",
					  env ? ", or the environment variable " : "",
					  env ? env : "");
		sec->value = strdup(v);
		return sec->value ? 0 : -ENOMEM;
	}
	rc = secret_refresh(sec, msg, sizeof(msg));
	if (rc)
		return conf_error(s, key, err, "%s", msg);
	return 0;
}

void secret_release(struct secret *sec)
{
	free(sec->file);
	free(sec->command);
	secret_free(sec->value);
	memset(sec, 0, sizeof(*sec));
}
