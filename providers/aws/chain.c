/*
 * The chain: which source supplies a profile's credentials, in the order
 * botocore's create_credential_resolver and the AWS CLI v2 use, stopping at
 * the first source that is configured: environment keys, assume role
 * (source_profile chains of any length, loops refused, or
 * credential_source), web identity, SSO, the shared credentials file,
 * credential_process, the config file, container credentials, EC2
 * instance metadata. mfa_serial is refused: a daemon cannot ask for a
 * code. Also the fetch dispatcher and the description for status. Knows
 * nothing of renewal or of the resolver's locking.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "source.h"

#define CHAIN_MAX_DEPTH 16

struct build {
	const struct aws_profiles *p;
	const char *path[CHAIN_MAX_DEPTH];	/* assume-role profiles */
	size_t depth;
	char *err;
	size_t errlen;
};

static const char *penv(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void aws_node_free(struct aws_node *n)
{
	if (!n)
		return;
	aws_node_free(n->source);
	aws_creds_release(&n->keys);
	aws_creds_release(&n->cur);
	free(n->profile);
	free(n->role_arn);
	free(n->external_id);
	free(n->session_name);
	free(n->token_file);
	free(n->via);
	free(n->command);
	free(n->sso_session);
	free(n->sso_start_url);
	free(n->sso_region);
	free(n->sso_account);
	free(n->sso_role);
	free(n->url);
	free(n->auth_file);
	secret_free(n->auth_token);
	free(n->role);
	free(n);
}

static struct aws_node *node_new(enum aws_kind kind, const char *profile)
{
	struct aws_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->kind = kind;
	if (profile && !(n->profile = strdup(profile))) {
		free(n);
		return NULL;
	}
	return n;
}

/* strdup that tolerates NULL; *ok cleared on allocation failure. */
static char *dup(const char *s, bool *ok)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*ok = false;
	return d;
}

static int fail(struct build *b, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct build *b, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->err, b->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int duration(struct build *b, const char *profile, long *out)
{
	const char *v = aws_profile_get(b->p, profile, "duration_seconds");
	char *end;

	*out = 0;
	if (!v)
		return 0;
	*out = strtol(v, &end, 10);
	if (*end || *out < 900 || *out > 43200)
		return fail(b, -EINVAL, "profile %s: duration_seconds '%s' is "
			    "not a number of seconds from 900 to 43200",
			    profile, v);
	return 0;
}

static int session_name(const char *given, char **out)
{
	char def[80];

	if (!given) {
		aws_session_name(def, sizeof(def));
		given = def;
	}
	*out = strdup(given);
	return *out ? 0 : -ENOMEM;
}

static int webid_node(struct build *b, const char *profile, bool use_env,
		      struct aws_node **out)
{
	const char *file = use_env ? penv("AWS_WEB_IDENTITY_TOKEN_FILE") : NULL;
	const char *arn = use_env ? penv("AWS_ROLE_ARN") : NULL;
	const char *name = use_env ? penv("AWS_ROLE_SESSION_NAME") : NULL;
	struct aws_node *n;
	bool ok = true;

	*out = NULL;
	if (!file)
		file = aws_profile_get(b->p, profile,
				       "web_identity_token_file");
	if (!file)
		return 0;
	if (!arn)
		arn = aws_profile_get(b->p, profile, "role_arn");
	if (!name)
		name = aws_profile_get(b->p, profile, "role_session_name");
	if (!arn)
		return fail(b, -EINVAL, "web identity token file %s is set but "
			    "no role: set AWS_ROLE_ARN or role_arn in profile "
			    "%s", file, profile);
	if (!(n = node_new(AWS_SRC_WEBID, profile)))
		return -ENOMEM;
	n->token_file = dup(file, &ok);
	n->role_arn = dup(arn, &ok);
	if (!ok || session_name(name, &n->session_name)) {
		aws_node_free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

static int sso_node(struct build *b, const char *profile,
		    struct aws_node **out)
{
	const char *sess = aws_profile_get(b->p, profile, "sso_session");
	const char *url = aws_profile_get(b->p, profile, "sso_start_url");
	const char *region = aws_profile_get(b->p, profile, "sso_region");
	const char *acct = aws_profile_get(b->p, profile, "sso_account_id");
	const char *role = aws_profile_get(b->p, profile, "sso_role_name");
	struct aws_node *n;
	bool ok = true;

	*out = NULL;
	if (!sess && !url && !acct && !role)
		return 0;
	if (sess) {
		char name[300];
		const struct aws_ini_sec *s;

		snprintf(name, sizeof(name), "sso-session %s", sess);
		s = aws_ini_find(&b->p->conf, name);
		if (!s)
			return fail(b, -EINVAL, "profile %s: sso_session %s "
				    "has no [sso-session %s] section in the "
				    "config file", profile, sess, sess);
		url = aws_ini_get(s, "sso_start_url");
		region = aws_ini_get(s, "sso_region");
	}
	if (!url || !*url || !region || !*region || !acct || !role)
		return fail(b, -EINVAL, "profile %s: SSO needs sso_start_url "
			    "and sso_region (or sso_session), sso_account_id "
			    "and sso_role_name", profile);
	if (!(n = node_new(AWS_SRC_SSO, profile)))
		return -ENOMEM;
	n->sso_session = dup(sess, &ok);
	n->sso_start_url = dup(url, &ok);
	n->sso_region = dup(region, &ok);
	n->sso_account = dup(acct, &ok);
	n->sso_role = dup(role, &ok);
	if (!ok) {
		aws_node_free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

static int process_node(const char *profile, const char *cmd,
			struct aws_node **out)
{
	struct aws_node *n = node_new(AWS_SRC_PROCESS, profile);

	if (!n || !(n->command = strdup(cmd))) {
		aws_node_free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

/*
 * A profile's own sources (botocore's ProfileProviderBuilder): web
 * identity, SSO, credentials file keys, credential_process, config file
 * keys. *out stays NULL when none is configured.
 */
static int profile_sources(struct build *b, const char *profile, bool use_env,
			   struct aws_node **out)
{
	const char *cmd;
	int rc;

	*out = NULL;
	if ((rc = webid_node(b, profile, use_env, out)) || *out)
		return rc;
	if ((rc = sso_node(b, profile, out)) || *out)
		return rc;
	if ((rc = aws_static_node(aws_profile_cred(b->p, profile), profile,
				  "credentials", out, b->err, b->errlen)) ||
	    *out)
		return rc;
	cmd = aws_profile_get(b->p, profile, "credential_process");
	if (cmd)
		return process_node(profile, cmd, out);
	return aws_static_node(aws_profile_conf(b->p, profile), profile,
			       "config", out, b->err, b->errlen);
}

static int credential_source(struct build *b, const char *profile,
			     const char *src, struct aws_node **out)
{
	int rc;

	*out = NULL;
	if (strcmp(src, "Environment") == 0) {
		rc = aws_env_node(out, b->err, b->errlen);
		if (!rc && !*out)
			rc = fail(b, -EINVAL, "profile %s: credential_source "
				  "Environment, but AWS_ACCESS_KEY_ID is not "
				  "set", profile);
		return rc;
	}
	if (strcmp(src, "EcsContainer") == 0) {
		rc = aws_container_node(out, b->err, b->errlen);
		if (!rc && !*out)
			rc = fail(b, -EINVAL, "profile %s: credential_source "
				  "EcsContainer, but neither AWS_CONTAINER_"
				  "CREDENTIALS_RELATIVE_URI nor _FULL_URI is "
				  "set", profile);
		return rc;
	}
	if (strcmp(src, "Ec2InstanceMetadata") == 0)
		return aws_imds_node(out);
	return fail(b, -EINVAL, "profile %s: credential_source '%s' is not "
		    "Environment, Ec2InstanceMetadata or EcsContainer",
		    profile, src);
}

static bool has_keys(struct build *b, const char *profile)
{
	return aws_profile_get(b->p, profile, "aws_access_key_id") != NULL;
}

static int assume_node(struct build *b, const char *profile,
		       struct aws_node **out);

/* Where the source credentials of an assumed role come from. */
static int source_of(struct build *b, const char *profile, const char *src,
		     struct aws_node **out)
{
	int rc;

	if (!aws_profile_exists(b->p, src))
		return fail(b, -EINVAL, "profile %s: source_profile %s does "
			    "not exist", profile, src);
	if (strcmp(src, profile) == 0 && has_keys(b, src))
		return aws_static_node(aws_profile_cred(b->p, src) ?
				       aws_profile_cred(b->p, src) :
				       aws_profile_conf(b->p, src), src,
				       aws_profile_cred(b->p, src) ?
				       "credentials" : "config", out, b->err,
				       b->errlen);
	if (has_keys(b, src) || !aws_profile_get(b->p, src, "role_arn")) {
		rc = profile_sources(b, src, false, out);
		if (!rc && !*out)
			rc = fail(b, -EINVAL, "profile %s: source_profile %s "
				  "has no credentials", profile, src);
		return rc;
	}
	return assume_node(b, src, out);
}

static int loop_error(struct build *b, const char *profile)
{
	char chain[400] = "";
	size_t used = 0;

	for (size_t i = 0; i < b->depth && used < sizeof(chain); i++)
		used += (size_t)snprintf(chain + used, sizeof(chain) - used,
					 "%s -> ", b->path[i]);
	return fail(b, -EINVAL, "source_profile loop: %s%s", chain, profile);
}

static int assume_node(struct build *b, const char *profile,
		       struct aws_node **out)
{
	const char *arn = aws_profile_get(b->p, profile, "role_arn");
	const char *src = aws_profile_get(b->p, profile, "source_profile");
	const char *cs = aws_profile_get(b->p, profile, "credential_source");
	struct aws_node *n;
	bool ok = true;
	int rc;

	*out = NULL;
	for (size_t i = 0; i < b->depth; i++)
		if (strcmp(b->path[i], profile) == 0)
			return loop_error(b, profile);
	if (b->depth == CHAIN_MAX_DEPTH)
		return fail(b, -EINVAL, "profile %s: source_profile chain "
			    "longer than %d", profile, CHAIN_MAX_DEPTH);
	if (src && cs)
		return fail(b, -EINVAL, "profile %s: role_arn needs exactly "
			    "one of source_profile and credential_source",
			    profile);
	if (aws_profile_get(b->p, profile, "mfa_serial"))
		return fail(b, -EINVAL, "profile %s: mfa_serial needs a "
			    "one-time code, which connfs cannot ask for as a "
			    "daemon; use credential_process with a tool that "
			    "caches MFA sessions (e.g. `aws-vault export "
			    "--format=json`), or SSO", profile);
	b->path[b->depth++] = profile;
	if (!(n = node_new(AWS_SRC_ASSUME, profile)))
		return -ENOMEM;
	n->role_arn = dup(arn, &ok);
	n->external_id = dup(aws_profile_get(b->p, profile, "external_id"),
			     &ok);
	if (!ok || session_name(aws_profile_get(b->p, profile,
						"role_session_name"),
				&n->session_name) ||
	    asprintf(&n->via, "%s %s", src ? "source_profile" :
		     "credential_source", src ? src : cs) < 0) {
		n->via = NULL;
		aws_node_free(n);
		return -ENOMEM;
	}
	rc = duration(b, profile, &n->duration);
	if (!rc)
		rc = src ? source_of(b, profile, src, &n->source) :
		     credential_source(b, profile, cs, &n->source);
	if (rc) {
		aws_node_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

int aws_chain_build(const struct aws_profiles *p, const char *profile,
		    bool explicit, struct aws_node **out, char *err,
		    size_t errlen)
{
	struct build b = { .p = p, .err = err, .errlen = errlen };
	int rc = 0;

	*out = NULL;
	if (!explicit && (rc = aws_env_node(out, err, errlen)))
		return rc;
	if (*out)
		return 0;
	if (aws_profile_get(p, profile, "role_arn") &&
	    (aws_profile_get(p, profile, "source_profile") ||
	     aws_profile_get(p, profile, "credential_source")))
		return assume_node(&b, profile, out);
	if ((rc = profile_sources(&b, profile, !explicit, out)) || *out)
		return rc;
	if ((rc = aws_container_node(out, err, errlen)) || *out)
		return rc;
	if (aws_imds_enabled())
		return aws_imds_node(out);
	return 0;
}

static int fetch_fixed(const struct aws_node *n, struct aws_creds *out,
		       char *err, size_t errlen)
{
	if (n->keys.expiration && (double)n->keys.expiration <= aws_now()) {
		snprintf(err, errlen, "the environment credentials expired "
			 "(AWS_CREDENTIAL_EXPIRATION)");
		return -EACCES;
	}
	return aws_creds_copy(out, &n->keys);
}

int aws_fetch(struct aws_ctx *ctx, struct aws_node *n, struct aws_creds *out,
	      char *err, size_t errlen)
{
	switch (n->kind) {
	case AWS_SRC_ENV:
	case AWS_SRC_STATIC:
		return fetch_fixed(n, out, err, errlen);
	case AWS_SRC_PROCESS:
		return aws_process_fetch(n, out, err, errlen);
	case AWS_SRC_ASSUME:
		return aws_assume_fetch(ctx, n, out, err, errlen);
	case AWS_SRC_WEBID:
		return aws_webid_fetch(ctx, n, out, err, errlen);
	case AWS_SRC_SSO:
		return aws_sso_fetch(ctx, n, out, err, errlen);
	case AWS_SRC_CONTAINER:
		return aws_container_fetch(ctx, n, out, err, errlen);
	case AWS_SRC_IMDS:
		return aws_imds_fetch(ctx, n, out, err, errlen);
	}
	return -EINVAL;
}

static void describe(const struct aws_node *n, bool top, char *buf,
		     size_t len)
{
	char inner[300];

	switch (n->kind) {
	case AWS_SRC_ENV:
		snprintf(buf, len, top ? "environment (AWS_ACCESS_KEY_ID)" :
			 "environment keys");
		break;
	case AWS_SRC_STATIC:
		if (top)
			snprintf(buf, len, "profile %s (static keys, %s file)",
				 n->profile, n->file);
		else
			snprintf(buf, len, "static keys");
		break;
	case AWS_SRC_PROCESS:
		snprintf(buf, len, "credential_process of profile %s",
			 n->profile);
		break;
	case AWS_SRC_ASSUME:
		describe(n->source, false, inner, sizeof(inner));
		snprintf(buf, len, "assume-role %s -> %s (%s)", n->profile,
			 n->via, inner);
		break;
	case AWS_SRC_WEBID:
		snprintf(buf, len, "web identity %s (token file %s)",
			 n->role_arn, n->token_file);
		break;
	case AWS_SRC_SSO:
		snprintf(buf, len, "SSO profile %s (account %s, role %s)",
			 n->profile, n->sso_account, n->sso_role);
		break;
	case AWS_SRC_CONTAINER:
		snprintf(buf, len, "container credentials (%s)", n->url);
		break;
	case AWS_SRC_IMDS:
		snprintf(buf, len, "EC2 instance metadata%s%s",
			 n->role ? ", role " : "", n->role ? n->role : "");
		break;
	}
}

void aws_chain_describe(const struct aws_node *n, char *buf, size_t len)
{
	describe(n, true, buf, len);
}
