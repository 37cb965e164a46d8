/*
 * API tokens from config, files, commands or the environment. See secret.h.
 * A token_command runs through /bin/sh (subproc.c: nothing of the daemon
 * inherited, its process group killed after 10 s) so that a hanging
 * password manager cannot hang a mount or a listing.
 */
#include "secret.h"
#include "subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECRET_MAX 8192
#define COMMAND_TIMEOUT_S 10.0

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Wipes and frees a buffer of n bytes (which may hold NULs). */
static void secret_wipe(char *s, size_t n)
{
	explicit_bzero(s, n);
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

static int run_command(const char *cmd, char **out, char *err, size_t len)
{
	char *const argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd,
			       NULL };
	char *buf, why[96];
	size_t n;
	int status, rc;

	rc = spawn_capture(argv, COMMAND_TIMEOUT_S, SECRET_MAX - 1, &buf, &n,
			   &status, why, sizeof(why));
	if (rc) {
		snprintf(err, len, "token_command %s", why);
		return rc;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, len, "token_command failed (exit status %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		secret_wipe(buf, n);
		return -EINVAL;
	}
	first_line(buf);
	if (!buf[0]) {
		snprintf(err, len, "token_command printed no token");
		secret_wipe(buf, n);
		return -EINVAL;
	}
	*out = strdup(buf);
	secret_wipe(buf, n);
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
