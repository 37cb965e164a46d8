/*
 * Runs a helper program (a token_command, an AWS credential_process) and
 * captures what it prints, without letting it inherit anything of the
 * daemon: no descriptor but stdin (/dev/null), stdout (a pipe) and stderr,
 * an empty signal mask, default signal dispositions and a process group of
 * its own. Knows nothing about what the output means.
 */
#ifndef CONNFS_SUBPROC_H
#define CONNFS_SUBPROC_H

#include <stddef.h>

/*
 * Runs argv (argv[0] looked up in PATH, the daemon's environment) and
 * collects its standard output until the process exits and the output is
 * drained. A helper the program leaves running in the background may keep
 * running and may keep the pipe open; it does not delay the result.
 *
 * At most cap bytes are kept; more is read and dropped so that the program
 * can finish. When timeout_s seconds pass first, the program's whole
 * process group gets SIGKILL and is reaped, and -ETIMEDOUT is returned.
 *
 * Returns 0 once the program has been reaped (whatever its exit status):
 * *out is a malloc'd, NUL-terminated copy of the output (*len bytes, which
 * may contain NULs) that the caller owns and frees (wiping it first if the
 * output is secret; spawn_capture wipes every copy it makes), *status the
 * waitpid() status. On failure *out is NULL and err holds a phrase to
 * follow the program's role ("did not finish within 10 s", "could not be
 * started: No such file or directory"): -ETIMEDOUT, -ENOMEM, or the
 * negative errno of the failed pipe or spawn.
 *
 * Thread-safe: it touches no global state besides reaping its own child by
 * pid (so nothing else in the process may reap with waitpid(-1)), and
 * SIGCHLD must not be ignored.
 */
int spawn_capture(char *const argv[], double timeout_s, size_t cap,
		  char **out, size_t *len, int *status, char *err,
		  size_t errlen);

#endif
