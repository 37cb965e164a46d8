/*
 * Unit tests for providers/subproc.c: output, exit status, the cap, what
 * the child inherits (descriptors, signal mask, dispositions), a helper
 * left running in the background, and the deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "subproc.h"

/* Runs sh -c script; returns spawn_capture's result. */
static int sh(const char *script, double timeout, size_t cap, char **out,
	      size_t *len, int *status, char *err)
{
	char *const argv[] = { (char *)"/bin/sh", (char *)"-c",
			       (char *)script, NULL };

	return spawn_capture(argv, timeout, cap, out, len, status, err, 128);
}

static void test_output_and_status(void)
{
	char *out, err[128] = "";
	size_t len;
	int st = -1;

	CHECK_INT(sh("printf 'tok\\0en\\n'; exit 3", 5, 64, &out, &len, &st,
		     err), 0);
	CHECK_INT(len, 7);
	CHECK(out && memcmp(out, "tok\0en\n", 8) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	free(out);

	/* Beyond the cap is dropped, and the child still finishes. */
	CHECK_INT(sh("head -c 100000 /dev/zero | tr '\\0' x", 5, 10, &out,
		     &len, &st, err), 0);
	CHECK_INT(len, 10);
	CHECK_STR(out, "xxxxxxxxxx");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(out);

	/* A program that does not exist (no shell in between). */
	{
		char *const argv[] = { (char *)"/nonexistent/helper", NULL };

		out = (char *)"untouched";
		CHECK_INT(spawn_capture(argv, 5, 64, &out, &len, &st, err,
					sizeof(err)), -ENOENT);
		CHECK(out == NULL);
		CHECK_STR(err, "could not be started: No such file or "
			  "directory");
	}
}

/*
 * The child sees descriptors 0-2 only, even ones the parent opened without
 * O_CLOEXEC, an empty signal mask and SIGPIPE at its default.
 */
static void test_inherits_nothing(void)
{
	char *out, err[128] = "";
	size_t len;
	int st, leak = open("/dev/null", O_RDONLY);	/* no O_CLOEXEC */
	unsigned long long ign;
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	signal(SIGPIPE, SIG_IGN);
	CHECK(leak > 2);
	CHECK_INT(sh("ls /proc/self/fd | sort -n | tr '\\n' ' '; "
		     "grep -E '^Sig(Blk|Ign)' /proc/self/status", 5, 4096,
		     &out, &len, &st, err), 0);
	/* ls itself opens one more: the directory it lists. */
	CHECK(out && strncmp(out, "0 1 2 3 Sig", 11) == 0);
	CHECK(out && strstr(out, "SigBlk:\t0000000000000000\n"));
	/* glibc keeps its own two (32 and 33) ignored in the child. */
	ign = out && strstr(out, "SigIgn:\t") ?
	      strtoull(strstr(out, "SigIgn:\t") + 8, NULL, 16) : ~0ULL;
	CHECK_INT(ign & 0x7fffffffULL, 0);
	free(out);
	signal(SIGPIPE, SIG_DFL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(leak);
}

/* A helper left running with the pipe open does not delay the result. */
static void test_background_helper(void)
{
	char *out, err[128] = "";
	size_t len;
	int st;

	CHECK_INT(sh("sleep 30 & echo $! && echo token", 5, 64, &out, &len,
		     &st, err), 0);
	CHECK(out && strstr(out, "\ntoken\n"));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (out) {
		pid_t helper = (pid_t)atol(out);

		CHECK(helper > 0 && kill(helper, 0) == 0);	/* still runs */
		if (helper > 0)
			kill(helper, SIGKILL);
	}
	free(out);
}

/*
 * Nor does one that writes to the pipe without end: the result comes when
 * the shell exits (with what the pipe held then), not at the deadline
 * with an error, and reading never loops without end.
 */
static void test_flooding_helper(void)
{
	char *out, err[128] = "", script[160], pid[32] = "";
	size_t len;
	int st = -1, fds[2];
	ssize_t n;

	CHECK_INT(pipe(fds), 0);
	snprintf(script, sizeof(script), "yes & echo $! > /proc/%d/fd/%d",
		 (int)getpid(), fds[1]);
	CHECK_INT(sh(script, 30, 64, &out, &len, &st, err), 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(len <= 64);
	free(out);
	close(fds[1]);
	n = read(fds[0], pid, sizeof(pid) - 1);
	close(fds[0]);
	CHECK(n > 0 && atol(pid) > 0);
	if (n > 0 && atol(pid) > 0)
		kill((pid_t)atol(pid), SIGKILL);
}

/* At the deadline the whole process group is killed and reaped. */
static void test_deadline(void)
{
	char *out = (char *)"untouched", err[128] = "";
	size_t len;
	int st, fds[2];
	char pid[32] = "";
	ssize_t n;

	/* The helper reports its pid on a descriptor passed by path. */
	CHECK_INT(pipe(fds), 0);
	{
		char script[160];

		snprintf(script, sizeof(script),
			 "sleep 30 & echo $! > /proc/%d/fd/%d; wait",
			 (int)getpid(), fds[1]);
		CHECK_INT(sh(script, 0.3, 64, &out, &len, &st, err),
			  -ETIMEDOUT);
	}
	CHECK(out == NULL);
	CHECK_STR(err, "did not finish within 0.3 s");
	close(fds[1]);
	n = read(fds[0], pid, sizeof(pid) - 1);
	close(fds[0]);
	CHECK(n > 0);
	if (n > 0) {
		pid_t helper = (pid_t)atol(pid);

		/* Killed with its group (it may linger briefly as a zombie
		 * of init, so ask for the state, not the existence). */
		CHECK(helper > 0);
		if (helper > 0) {
			char path[64], buf[512] = "";
			int fd;

			snprintf(path, sizeof(path), "/proc/%d/stat",
				 (int)helper);
			for (int i = 0; i < 200; i++) {
				fd = open(path, O_RDONLY);
				if (fd < 0)
					break;
				n = read(fd, buf, sizeof(buf) - 1);
				close(fd);
				buf[n > 0 ? n : 0] = '\0';
				if (strstr(buf, ") Z "))
					break;
				usleep(10000);
			}
			CHECK(fd < 0 || strstr(buf, ") Z "));
		}
	}
}

int main(void)
{
	test_output_and_status();
	test_inherits_nothing();
	test_background_helper();
	test_flooding_helper();
	test_deadline();
	return harness_done("test_subproc");
}
