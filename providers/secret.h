/*
 * Where a provider's API token comes from: `token=` (literal, only in a
 * config file nobody else can read), `token_file=`, `token_command=` (first
 * line of output, re-run at every listing walk so rotated tokens work), or
 * an environment variable. Secrets never reach a log line or message.
 */
#ifndef CONNFS_SECRET_H
#define CONNFS_SECRET_H

#include "conf.h"

struct secret {
	char *file;		/* token_file= */
	char *command;		/* token_command= */
	char *value;		/* current token (token= or environment, else
				 * read from file/command); wiped on release */
};

/*
 * Reads token/token_file/token_command from s, else the environment
 * variable env (may be NULL). Resolves the value once, so a bad file or a
 * failing command is reported before mounting. -EINVAL/-ENOENT with err.
 */
int secret_configure(struct secret *sec, struct conf_section *s,
		     const char *env, char *err);
/* Re-reads token_file / re-runs token_command; keeps the old on failure. */
int secret_refresh(struct secret *sec, char *err, size_t errlen);
void secret_release(struct secret *sec);

/* Overwrites a string before freeing it. */
void secret_free(char *s);

#endif
