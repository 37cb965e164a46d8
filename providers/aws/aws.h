/*
 * AWS credentials the way botocore and the AWS CLI v2 find them, renewed
 * before they expire. A resolver is built once per configured section (no
 * network, apart from asking EC2 instance metadata whether it is there when
 * nothing else is configured) and then hands out current credentials to
 * every request. Knows nothing of EventBridge, paging or FUSE.
 */
#ifndef CONNFS_AWS_H
#define CONNFS_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* A set of keys. All strings owned; wiped by aws_creds_release(). */
struct aws_creds {
	char *access_key;
	char *secret_key;
	char *session_token;	/* NULL for long-term keys */
	time_t expiration;	/* 0: does not expire */
};

void aws_creds_release(struct aws_creds *c);
int aws_creds_copy(struct aws_creds *dst, const struct aws_creds *src);

struct aws_resolver;

/*
 * Builds the chain for profile (the section's `profile =`, which wins over
 * environment keys; NULL: AWS_PROFILE, AWS_DEFAULT_PROFILE or "default")
 * and picks the first configured source. -ENOENT when no source is
 * configured, -EINVAL for a broken profile; err says which and what to do.
 */
int aws_resolver_new(const char *profile, struct aws_resolver **out,
		     char *err, size_t errlen);
void aws_resolver_free(struct aws_resolver *r);

/* The profile's `region`, or NULL. Valid until aws_resolver_free(). */
const char *aws_resolver_profile_region(const struct aws_resolver *r);

/*
 * The CA bundle the AWS CLI would trust: AWS_CA_BUNDLE, else the profile's
 * ca_bundle (config file), else NULL; *from names which, for messages.
 * Until the first call of aws_resolver_set_transport(), STS, SSO and the
 * metadata services trust it.
 */
const char *aws_resolver_ca_bundle(const struct aws_resolver *r,
				   const char **from);

/*
 * The CA bundle and proxy for STS, SSO and the metadata services (which
 * the HTTP client never sends through a proxy). Before the first get.
 * 0 or -ENOMEM.
 */
struct http_opts;
int aws_resolver_set_transport(struct aws_resolver *r,
			       const struct http_opts *o);

/*
 * Region (for STS) and endpoints: sts_url, sso_url and oidc_url are
 * validated base URLs or NULL for https://sts.REGION.amazonaws.com,
 * https://portal.sso.SSO_REGION.amazonaws.com and
 * https://oidc.SSO_REGION.amazonaws.com. Call before the first get.
 */
int aws_resolver_set_endpoints(struct aws_resolver *r, const char *region,
			       const char *sts_url, const char *sso_url,
			       const char *oidc_url);

/*
 * Current credentials into *out (a copy; release it). Renews them when
 * they are within the refresh window of their expiry or when the profile
 * files changed: one caller renews while the others keep using the old
 * keys until renewal becomes mandatory. Thread-safe. -EACCES, -EIO or
 * -ETIMEDOUT with a message without secrets.
 */
int aws_resolver_get(struct aws_resolver *r, struct aws_creds *out,
		     char *err, size_t errlen);

/*
 * The service said the credentials expired: the next get renews them.
 * Thread-safe, no I/O.
 */
void aws_resolver_expire(struct aws_resolver *r);

/*
 * Which source supplies the credentials and when they expire, e.g.
 * "assume-role prod -> source_profile base (static keys), expires in
 * 52 min". Never contains a secret. Thread-safe.
 */
void aws_resolver_describe(struct aws_resolver *r, char *buf, size_t len);

/* How many times credentials were fetched (the first time included). */
unsigned long aws_resolver_fetches(struct aws_resolver *r);

/*
 * The region from EC2 instance metadata (placement/region), for when
 * nothing else names one; 1 s timeout. -ENOENT when disabled or absent.
 */
int aws_resolver_imds_region(struct aws_resolver *r, char *buf, size_t len);

/* Seam for unit tests: replaces the wall clock (seconds since the epoch). */
void aws_set_clock(double (*now)(void));
double aws_now(void);

#endif
