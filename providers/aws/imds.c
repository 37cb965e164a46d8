/*
 * EC2 instance metadata, IMDSv2 only: PUT /latest/api/token for a session
 * token, then the role name under /latest/meta-data/iam/security-
 * credentials/ and that role's credentials, each request with the token
 * and a 1 s limit so that a machine without IMDS does not stall.
 * AWS_EC2_METADATA_DISABLED=true turns it off, and
 * AWS_EC2_METADATA_SERVICE_ENDPOINT points it elsewhere. Also the region
 * from placement/region. Knows nothing of profiles.
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "secret.h"
#include "source.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_TIMEOUT_MS 1000
#define IMDS_MAX_BODY (64 << 10)
#define IMDS_PATH "/latest/meta-data/iam/security-credentials/"

bool aws_imds_enabled(void)
{
	const char *v = getenv("AWS_EC2_METADATA_DISABLED");

	return !v || strcasecmp(v, "true") != 0;
}

static char *imds_base(void)
{
	const char *v = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	size_t n;

	if (!v || !*v)
		v = IMDS_DEFAULT;
	n = strlen(v);
	while (n && v[n - 1] == '/')
		n--;
	return strndup(v, n);
}

int aws_imds_node(struct aws_node **out)
{
	struct aws_node *n = calloc(1, sizeof(*n));

	*out = NULL;
	if (!n || !(n->url = imds_base())) {
		free(n);
		return -ENOMEM;
	}
	n->kind = AWS_SRC_IMDS;
	*out = n;
	return 0;
}

/* One request; the body (NUL-terminated) into *body on HTTP 200. */
static int imds_call(struct http_client *http, const char *base,
		     const char *method, const char *path, const char *token,
		     char **body, char *err, size_t errlen)
{
	struct http_req req = { .method = method };
	struct http_resp resp;
	char why[sizeof(resp.err) + 32];
	int rc;

	*body = NULL;
	memset(&resp, 0, sizeof(resp));
	if (asprintf(&req.url, "%s%s", base, path) < 0)
		return -ENOMEM;
	rc = token ? http_req_header(&req, "X-aws-ec2-metadata-token: %s",
				     token) :
		     http_req_header(&req, "X-aws-ec2-metadata-token-ttl-"
				     "seconds: 21600");
	if (!rc)
		rc = http_do(http, &req, IMDS_TIMEOUT_MS, IMDS_MAX_BODY, &resp);
	http_req_release(&req);
	if (rc == -EIO || rc == -ETIMEDOUT || rc == -EPROTO)
		snprintf(err, errlen, "EC2 instance metadata at %s: %s", base,
			 rc == -ETIMEDOUT ? "no answer within 1 s" :
			 http_failure(rc, &resp, why, sizeof(why)));
	else if (!rc && resp.status != 200) {
		snprintf(err, errlen, "EC2 instance metadata: HTTP %ld for "
			 "%s %s", resp.status, method, path);
		rc = resp.status == 404 ? -ENOENT : -EIO;
	} else if (!rc) {
		*body = resp.body ? resp.body : strdup("");
		resp.body = NULL;
		rc = *body ? 0 : -ENOMEM;
	}
	if (resp.body)
		explicit_bzero(resp.body, resp.len);
	http_resp_release(&resp);
	return rc;
}

static int imds_token(struct http_client *http, const char *base,
		      char **token, char *err, size_t errlen)
{
	int rc = imds_call(http, base, "PUT", "/latest/api/token", NULL,
			   token, err, errlen);

	if (!rc && !**token) {
		secret_free(*token);
		*token = NULL;
		snprintf(err, errlen, "EC2 instance metadata: empty token");
		rc = -EIO;
	}
	return rc;
}

int aws_imds_fetch(struct aws_ctx *ctx, struct aws_node *n,
		   struct aws_creds *out, char *err, size_t errlen)
{
	char *token = NULL, *roles = NULL, *doc = NULL, path[400];
	int rc = imds_token(ctx->http, n->url, &token, err, errlen);

	memset(out, 0, sizeof(*out));
	if (!rc)
		rc = imds_call(ctx->http, n->url, "GET", IMDS_PATH, token,
			       &roles, err, errlen);
	if (!rc) {
		roles[strcspn(roles, "\r\n")] = '\0';
		if (!*str_trim(roles) || strchr(roles, '/')) {
			snprintf(err, errlen, "EC2 instance metadata: the "
				 "instance has no IAM role");
			rc = -ENOENT;
		}
	}
	if (!rc) {
		free(n->role);
		n->role = strdup(str_trim(roles));
		snprintf(path, sizeof(path), IMDS_PATH "%s", str_trim(roles));
		rc = imds_call(ctx->http, n->url, "GET", path, token, &doc,
			       err, errlen);
	}
	if (!rc)
		rc = aws_creds_from_json(doc, strlen(doc), "AccessKeyId",
					 "SecretAccessKey", "Token",
					 "Expiration", out,
					 "EC2 instance metadata", err, errlen);
	secret_free(token);
	free(roles);
	secret_free(doc);
	return rc == -ENOMEM || rc == -EPROTO || !rc ? rc :
	       rc == -ENOENT ? -EACCES : -EIO;
}

int aws_imds_region(struct aws_ctx *ctx, char *buf, size_t len)
{
	char *base, *token = NULL, *region = NULL, err[256];
	int rc;

	if (!aws_imds_enabled())
		return -ENOENT;
	base = imds_base();
	rc = base ? imds_token(ctx->http, base, &token, err, sizeof(err)) :
	     -ENOMEM;
	if (!rc)
		rc = imds_call(ctx->http, base, "GET",
			       "/latest/meta-data/placement/region", token,
			       &region, err, sizeof(err));
	if (!rc && !*str_trim(region))
		rc = -ENOENT;
	if (!rc)
		snprintf(buf, len, "%s", str_trim(region));
	secret_free(token);
	free(region);
	free(base);
	return rc ? -ENOENT : 0;
}
