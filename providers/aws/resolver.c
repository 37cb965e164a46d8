/*
 * The resolver: one chain per configured section, the credentials it last
 * fetched, and their renewal. Credentials that expire are renewed before
 * they do, as botocore does: from 15 minutes before expiry one caller
 * renews while the others go on with the current keys (advisory), and from
 * 10 minutes before, callers wait for the renewal (mandatory); both
 * windows shrink for short lifetimes (a third and a quarter of the
 * lifetime), so that credentials of 15 minutes or of 5 seconds renew
 * early as well. Renewal is single-flight and never runs under the lock:
 * the lock guards only copies. The profile files are checked (stat) at
 * every get and the chain is built again when they changed. Knows nothing
 * of EventBridge or FUSE.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "source.h"

#define ADVISORY_MAX 900.0
#define MANDATORY_MAX 600.0

enum due { DUE_NO, DUE_ADVISORY, DUE_MANDATORY };

struct aws_resolver {
	pthread_mutex_t lock;	/* guards everything below */
	pthread_cond_t renewed;
	char *profile;
	bool explicit;
	bool must_exist;
	char *cred_path, *conf_path;
	struct aws_filesig cred_sig, conf_sig;
	char *profile_region;
	char *ca_bundle;	/* the profile's, as first read */
	char *ca_from;		/* "ca_bundle of AWS profile NAME" */
	struct aws_ctx ctx;
	struct aws_node *root;	/* used only by the renewing thread */
	bool rebuild;		/* the files changed: build the chain */
	struct aws_creds cur;
	double obtained;	/* when cur was fetched (wall clock) */
	bool forced;		/* the service said cur expired */
	bool renewing;
	unsigned long gen;	/* renewals finished, failed ones included */
	unsigned long fetches;
	char desc[300];
	char last_err[300];
};

/* Both windows, in seconds before expiry, for a lifetime (pure). */
void aws_refresh_windows(double lifetime, double *advisory, double *mandatory)
{
	if (lifetime < 0)
		lifetime = 0;
	*advisory = lifetime / 3 < ADVISORY_MAX ? lifetime / 3 : ADVISORY_MAX;
	*mandatory = lifetime / 4 < MANDATORY_MAX ? lifetime / 4 :
		     MANDATORY_MAX;
}

static enum due due(const struct aws_resolver *r, double now)
{
	double adv, man, left;

	if (!r->cur.access_key || r->forced || r->rebuild)
		return DUE_MANDATORY;
	if (!r->cur.expiration)
		return DUE_NO;
	aws_refresh_windows((double)r->cur.expiration - r->obtained, &adv,
			    &man);
	left = (double)r->cur.expiration - now;
	if (left <= man)
		return DUE_MANDATORY;
	return left <= adv ? DUE_ADVISORY : DUE_NO;
}

static bool usable(const struct aws_resolver *r, double now)
{
	return r->cur.access_key && !r->forced &&
	       (!r->cur.expiration || (double)r->cur.expiration > now + 1);
}

/* Loads both files and builds the chain; records what was read. */
static int build(struct aws_resolver *r, struct aws_node **root,
		 char *desc, size_t desclen, char *err, size_t errlen)
{
	struct aws_profiles p;
	struct aws_filesig cs, fs;
	int rc;

	aws_filesig_of(r->cred_path, &cs);
	aws_filesig_of(r->conf_path, &fs);
	memset(&p, 0, sizeof(p));
	rc = aws_ini_load(&p.cred, r->cred_path);
	if (!rc)
		rc = aws_ini_load(&p.conf, r->conf_path);
	if (rc) {
		snprintf(err, errlen, "cannot read the AWS profile files: %s",
			 strerror(-rc));
		aws_profiles_release(&p);
		return rc;
	}
	*root = NULL;
	if (r->must_exist && !aws_profile_exists(&p, r->profile)) {
		snprintf(err, errlen, "AWS profile %s not found in %s or %s",
			 r->profile, r->cred_path, r->conf_path);
		rc = -EINVAL;
	} else {
		rc = aws_chain_build(&p, r->profile, r->explicit, root, err,
				     errlen);
	}
	if (!rc && !*root) {
		snprintf(err, errlen, "no AWS credentials: set "
			 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
			 "profile %s keys, role_arn, sso_session or "
			 "credential_process in %s or %s", r->profile,
			 r->cred_path, r->conf_path);
		rc = -ENOENT;
	}
	if (!rc) {
		const char *reg = aws_profile_get(&p, r->profile, "region");
		/* A setting of the config file only, as in botocore. */
		const char *ca = aws_ini_get(aws_profile_conf(&p, r->profile),
					     "ca_bundle");

		aws_chain_describe(*root, desc, desclen);
		pthread_mutex_lock(&r->lock);
		r->cred_sig = cs;
		r->conf_sig = fs;
		if (!r->profile_region && reg)
			r->profile_region = strdup(reg);
		if (!r->ca_bundle && ca && *ca)
			r->ca_bundle = strdup(ca);
		pthread_mutex_unlock(&r->lock);
	}
	aws_profiles_release(&p);
	return rc;
}

static void files_check(struct aws_resolver *r)
{
	struct aws_filesig cs, fs;

	aws_filesig_of(r->cred_path, &cs);
	aws_filesig_of(r->conf_path, &fs);
	if (!aws_filesig_equal(&cs, &r->cred_sig) ||
	    !aws_filesig_equal(&fs, &r->conf_sig))
		r->rebuild = true;
}

/* One renewal, outside the lock: the caller holds the renewing turn. */
static int renew(struct aws_resolver *r, bool rebuild, struct aws_creds *out,
		 char *desc, size_t desclen, char *err, size_t errlen)
{
	struct aws_node *root = NULL;
	int rc;

	desc[0] = '\0';
	if (rebuild) {
		rc = build(r, &root, desc, desclen, err, errlen);
		if (rc)
			return rc;
		aws_node_free(r->root);
		r->root = root;
	}
	rc = aws_fetch(&r->ctx, r->root, out, err, errlen);
	if (!rc)
		aws_chain_describe(r->root, desc, desclen);
	if (!rc && out->expiration && (double)out->expiration <= aws_now()) {
		snprintf(err, errlen, "the credentials from %s expired before "
			 "they could be used", desc[0] ? desc : "the source");
		aws_creds_release(out);
		rc = -EACCES;
	}
	return rc;
}

static int copy_out(struct aws_resolver *r, struct aws_creds *out)
{
	int rc = aws_creds_copy(out, &r->cur);

	pthread_mutex_unlock(&r->lock);
	return rc;
}

static void finish(struct aws_resolver *r, int rc, struct aws_creds *fresh,
		   const char *desc, const char *err)
{
	r->renewing = false;
	r->gen++;
	if (desc[0])
		snprintf(r->desc, sizeof(r->desc), "%s", desc);
	if (rc) {
		snprintf(r->last_err, sizeof(r->last_err), "%s", err);
	} else {
		aws_creds_release(&r->cur);
		r->cur = *fresh;
		r->obtained = aws_now();
		r->last_err[0] = '\0';
		r->fetches++;
	}
	pthread_cond_broadcast(&r->renewed);
}

int aws_resolver_get(struct aws_resolver *r, struct aws_creds *out,
		     char *err, size_t errlen)
{
	struct aws_creds fresh = { 0 };
	char desc[sizeof(r->desc)], msg[sizeof(r->last_err)] = "";
	bool rebuild, repeated, keep;
	unsigned long gen;
	enum due d;
	int rc, copied;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&r->lock);
	files_check(r);
	for (gen = r->gen;;) {
		d = due(r, aws_now());
		if (d == DUE_NO || (d == DUE_ADVISORY && r->renewing))
			return copy_out(r, out);
		if (!r->renewing && r->gen == gen)
			break;
		if (!r->renewing && usable(r, aws_now()))
			return copy_out(r, out);
		if (!r->renewing && r->last_err[0]) {
			/* The renewal we waited for failed. */
			snprintf(err, errlen, "%s", r->last_err);
			pthread_mutex_unlock(&r->lock);
			return -EACCES;
		}
		if (!r->renewing)
			break;
		pthread_cond_wait(&r->renewed, &r->lock);
	}
	r->renewing = true;
	rebuild = r->rebuild;
	r->rebuild = false;
	r->forced = false;
	pthread_mutex_unlock(&r->lock);

	rc = renew(r, rebuild, &fresh, desc, sizeof(desc), msg, sizeof(msg));

	pthread_mutex_lock(&r->lock);
	if (rc && rebuild)
		r->rebuild = true;	/* try the files again next time */
	repeated = rc && strcmp(r->last_err, msg) == 0;
	finish(r, rc, &fresh, desc, msg);
	keep = rc && usable(r, aws_now());
	copied = !rc || keep ? aws_creds_copy(out, &r->cur) : 0;
	snprintf(desc, sizeof(desc), "%s", r->desc);
	pthread_mutex_unlock(&r->lock);

	/* Logged outside the lock, and a failure only when it changes. */
	if (!rc)
		log_msg(LOG_DEBUG, "aws: credentials from %s%s", desc,
			out->expiration ? " (temporary)" : "");
	else if (!repeated)
		log_msg(LOG_WARNING, "aws: %s%s", keep ? "renewing credentials "
			"failed, the current ones are still valid: " : "", msg);
	if (!rc || keep)
		return copied;
	snprintf(err, errlen, "%s", msg);
	return rc == -ENOMEM || rc == -ETIMEDOUT ? rc :
	       rc == -EIO ? -EIO : -EACCES;
}

void aws_resolver_expire(struct aws_resolver *r)
{
	pthread_mutex_lock(&r->lock);
	r->forced = true;
	pthread_mutex_unlock(&r->lock);
}

static void left_text(double left, char *buf, size_t len)
{
	if (left <= 0)
		snprintf(buf, len, "expired");
	else if (left >= 120)
		snprintf(buf, len, "expires in %.0f min", left / 60);
	else
		snprintf(buf, len, "expires in %.0f s", left);
}

void aws_resolver_describe(struct aws_resolver *r, char *buf, size_t len)
{
	char when[64];

	pthread_mutex_lock(&r->lock);
	if (!r->cur.access_key)
		snprintf(when, sizeof(when), "not fetched yet");
	else if (!r->cur.expiration)
		snprintf(when, sizeof(when), "no expiry");
	else
		left_text((double)r->cur.expiration - aws_now(), when,
			  sizeof(when));
	snprintf(buf, len, "%s, %s%s%s", r->desc, when,
		 r->last_err[0] ? "; last renewal failed: " : "",
		 r->last_err);
	pthread_mutex_unlock(&r->lock);
}

unsigned long aws_resolver_fetches(struct aws_resolver *r)
{
	unsigned long n;

	pthread_mutex_lock(&r->lock);
	n = r->fetches;
	pthread_mutex_unlock(&r->lock);
	return n;
}

int aws_resolver_imds_region(struct aws_resolver *r, char *buf, size_t len)
{
	return aws_imds_region(&r->ctx, buf, len);
}

const char *aws_resolver_profile_region(const struct aws_resolver *r)
{
	return r->profile_region;
}

const char *aws_resolver_ca_bundle(const struct aws_resolver *r,
				   const char **from)
{
	const char *env = getenv("AWS_CA_BUNDLE");

	if (env && *env) {
		*from = "AWS_CA_BUNDLE";
		return env;
	}
	*from = r->ca_from;
	return r->ca_bundle;
}

int aws_resolver_set_transport(struct aws_resolver *r,
			       const struct http_opts *o)
{
	struct http_client *c = http_client_new(o);

	if (!c)
		return -ENOMEM;
	http_client_free(r->ctx.http);
	r->ctx.http = c;
	return 0;
}

int aws_resolver_set_endpoints(struct aws_resolver *r, const char *region,
			       const char *sts_url, const char *sso_url,
			       const char *oidc_url)
{
	free(r->ctx.region);
	free(r->ctx.sts_url);
	free(r->ctx.sso_url);
	free(r->ctx.oidc_url);
	r->ctx.region = strdup(region);
	if (sts_url)
		r->ctx.sts_url = strdup(sts_url);
	else if (asprintf(&r->ctx.sts_url, "https://sts.%s.amazonaws.com%s",
			  region, strncmp(region, "cn-", 3) ? "" : ".cn") < 0)
		r->ctx.sts_url = NULL;
	r->ctx.sso_url = sso_url ? strdup(sso_url) : NULL;
	r->ctx.oidc_url = oidc_url ? strdup(oidc_url) : NULL;
	if (!r->ctx.region || !r->ctx.sts_url || (sso_url && !r->ctx.sso_url) ||
	    (oidc_url && !r->ctx.oidc_url))
		return -ENOMEM;
	return 0;
}

static const char *name_of(const char *given, bool *named)
{
	const char *v = given;

	*named = true;
	if (!v || !*v)
		v = getenv("AWS_PROFILE");
	if (!v || !*v)
		v = getenv("AWS_DEFAULT_PROFILE");
	if (!v || !*v) {
		*named = false;
		v = "default";
	}
	return v;
}

void aws_resolver_free(struct aws_resolver *r)
{
	if (!r)
		return;
	aws_node_free(r->root);
	aws_creds_release(&r->cur);
	http_client_free(r->ctx.http);
	free(r->ctx.region);
	free(r->ctx.sts_url);
	free(r->ctx.sso_url);
	free(r->ctx.oidc_url);
	free(r->profile);
	free(r->cred_path);
	free(r->conf_path);
	free(r->profile_region);
	free(r->ca_bundle);
	free(r->ca_from);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->renewed);
	free(r);
}

/*
 * With nothing else configured, instance metadata is the source only if
 * it answers (botocore: "Unable to locate credentials" otherwise), so ask
 * now: a laptop gets its error before mounting, after at most a second.
 */
static int probe_imds(struct aws_resolver *r, char *err, size_t errlen)
{
	char why[160];
	int rc;

	if (r->root->kind != AWS_SRC_IMDS)
		return 0;
	rc = aws_fetch(&r->ctx, r->root, &r->cur, why, sizeof(why));
	if (!rc) {
		r->obtained = aws_now();
		r->fetches++;
		aws_chain_describe(r->root, r->desc, sizeof(r->desc));
		return 0;
	}
	snprintf(err, errlen, "no AWS credentials (%s): set "
		 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile "
		 "%s keys, role_arn, sso_session or credential_process",
		 why, r->profile);
	return -ENOENT;
}

int aws_resolver_new(const char *profile, struct aws_resolver **out,
		     char *err, size_t errlen)
{
	struct aws_resolver *r = calloc(1, sizeof(*r));
	const char *name, *ca, *from;
	int rc;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->renewed, NULL);
	name = name_of(profile, &r->must_exist);
	r->explicit = profile && *profile;
	r->profile = strdup(name);
	r->cred_path = aws_file_path("AWS_SHARED_CREDENTIALS_FILE",
				     "credentials");
	r->conf_path = aws_file_path("AWS_CONFIG_FILE", "config");
	if (asprintf(&r->ca_from, "ca_bundle of AWS profile %s", name) < 0)
		r->ca_from = NULL;
	if (!r->profile || !r->cred_path || !r->conf_path || !r->ca_from) {
		aws_resolver_free(r);
		return -ENOMEM;
	}
	rc = build(r, &r->root, r->desc, sizeof(r->desc), err, errlen);
	/* STS, SSO and the metadata services trust what the CLI trusts. */
	ca = aws_resolver_ca_bundle(r, &from);
	if (!rc && !(r->ctx.http = http_client_new(&(struct http_opts){
			     .ca_file = ca })))
		rc = -ENOMEM;
	if (!rc)
		rc = probe_imds(r, err, errlen);
	if (rc) {
		aws_resolver_free(r);
		return rc;
	}
	*out = r;
	return 0;
}
