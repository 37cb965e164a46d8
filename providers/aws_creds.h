/*
 * AWS credentials and region the way the SDKs find them: environment
 * variables, then the shared credentials and config files for the chosen
 * profile. SSO, assume-role and instance metadata are not supported.
 */
#ifndef CONNFS_AWS_CREDS_H
#define CONNFS_AWS_CREDS_H

#include <stddef.h>

struct aws_creds {
	char *access_key;
	char *secret_key;
	char *session_token;	/* NULL without temporary credentials */
	char *region;		/* from the profile, if any */
	char *source;		/* where the keys came from, for messages */
};

/*
 * Resolves credentials for profile (NULL: AWS_PROFILE, AWS_DEFAULT_PROFILE
 * or "default"). Environment keys win unless a profile was named
 * explicitly. Returns 0, or -ENOENT with a message naming what is missing.
 */
int aws_creds_load(struct aws_creds *c, const char *profile, char *err,
		   size_t errlen);
void aws_creds_release(struct aws_creds *c);

#endif
