/*
 * Long-term (or externally refreshed) keys written into a profile:
 * aws_access_key_id, aws_secret_access_key and aws_session_token in the
 * shared credentials file or the config file. aws-vault and saml2aws
 * rewrite these files; the resolver re-reads them when they change.
 * Knows nothing of the network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

int aws_static_node(const struct aws_ini_sec *s, const char *profile,
		    const char *file, struct aws_node **out, char *err,
		    size_t errlen)
{
	const char *key = aws_ini_get(s, "aws_access_key_id");
	const char *secret = aws_ini_get(s, "aws_secret_access_key");
	const char *token = aws_ini_get(s, "aws_session_token");
	struct aws_creds in = { 0 };
	struct aws_node *n;

	*out = NULL;
	if (!key || !*key)
		return 0;
	if (!secret || !*secret) {
		snprintf(err, errlen, "profile %s has aws_access_key_id but no "
			 "aws_secret_access_key in the %s file", profile, file);
		return -EINVAL;
	}
	in.access_key = (char *)key;
	in.secret_key = (char *)secret;
	in.session_token = (char *)(token && *token ? token : NULL);
	n = calloc(1, sizeof(*n));
	if (!n || aws_creds_copy(&n->keys, &in) ||
	    !(n->profile = strdup(profile))) {
		if (n)
			aws_creds_release(&n->keys);
		free(n);
		return -ENOMEM;
	}
	n->kind = AWS_SRC_STATIC;
	n->file = file;
	*out = n;
	return 0;
}
