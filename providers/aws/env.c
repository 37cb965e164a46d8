/*
 * Credentials from the environment: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (or the older
 * AWS_SECURITY_TOKEN) and AWS_CREDENTIAL_EXPIRATION, as botocore's
 * EnvProvider reads them. Knows nothing of files or the network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int aws_env_node(struct aws_node **out, char *err, size_t errlen)
{
	const char *key = env("AWS_ACCESS_KEY_ID");
	const char *secret = env("AWS_SECRET_ACCESS_KEY");
	const char *token = env("AWS_SESSION_TOKEN");
	const char *exp = env("AWS_CREDENTIAL_EXPIRATION");
	struct aws_creds in = { 0 };
	struct aws_node *n;

	*out = NULL;
	if (!key)
		return 0;
	if (!secret) {
		snprintf(err, errlen, "AWS_ACCESS_KEY_ID is set but "
			 "AWS_SECRET_ACCESS_KEY is not");
		return -EINVAL;
	}
	if (exp && aws_parse_time(exp, &in.expiration)) {
		snprintf(err, errlen, "AWS_CREDENTIAL_EXPIRATION is not an "
			 "RFC 3339 time");
		return -EINVAL;
	}
	in.access_key = (char *)key;
	in.secret_key = (char *)secret;
	in.session_token = (char *)(token ? token : env("AWS_SECURITY_TOKEN"));
	n = calloc(1, sizeof(*n));
	if (!n || aws_creds_copy(&n->keys, &in)) {
		free(n);
		return -ENOMEM;
	}
	n->kind = AWS_SRC_ENV;
	*out = n;
	return 0;
}
