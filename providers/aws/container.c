/*
 * Container credentials (ECS task roles, EKS Pod Identity):
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI under http://169.254.170.2, or
 * AWS_CONTAINER_CREDENTIALS_FULL_URI (https anywhere; plain http only to
 * loopback and the ECS and EKS agent addresses 169.254.170.2,
 * 169.254.170.23 and fd00:ec2::23), with the Authorization header from
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read again at every fetch: EKS
 * rotates it) or AWS_CONTAINER_AUTHORIZATION_TOKEN. Knows nothing of
 * profiles. https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider.h"
#include "secret.h"
#include "source.h"

#define ECS_HOST "http://169.254.170.2"
#define CONTAINER_TIMEOUT_MS 2000
#define CONTAINER_MAX_BODY (64 << 10)

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* The host of an http:// URL may be reached without TLS. */
static bool plain_ok(const char *url)
{
	static const char *const hosts[] = {
		"localhost", "169.254.170.2", "169.254.170.23",
		"[fd00:ec2::23]", "[::1]", NULL,
	};
	const char *h = url + 7;
	size_t n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/?#");

	if (strchr(h, '@') && strchr(h, '@') < h + strcspn(h, "/?#"))
		return false;
	if (n > 4 && strncmp(h, "127.", 4) == 0 &&
	    strspn(h, "0123456789.") >= n)
		return true;
	for (size_t i = 0; hosts[i]; i++)
		if (strlen(hosts[i]) == n && strncasecmp(h, hosts[i], n) == 0)
			return true;
	return false;
}

int aws_container_node(struct aws_node **out, char *err, size_t errlen)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct aws_node *n;

	*out = NULL;
	if (!rel && !full)
		return 0;
	if (!rel && strncmp(full, "https://", 8) != 0 &&
	    (strncmp(full, "http://", 7) != 0 || !plain_ok(full))) {
		snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI must "
			 "be https://, or http:// to a loopback address, "
			 "169.254.170.2, 169.254.170.23 or [fd00:ec2::23]");
		return -EINVAL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->kind = AWS_SRC_CONTAINER;
	if (rel ? asprintf(&n->url, ECS_HOST "%s%s", rel[0] == '/' ? "" : "/",
			   rel) < 0 : !(n->url = strdup(full)))
		n->url = NULL;
	n->auth_file = file ? strdup(file) : NULL;
	n->auth_token = !file && tok ? strdup(tok) : NULL;
	if (!n->url || (file && !n->auth_file) ||
	    (!file && tok && !n->auth_token)) {
		aws_node_free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

static int auth_header(const struct aws_node *n, struct http_req *req,
		       char *err, size_t errlen)
{
	char *tok = NULL;
	int rc = 0;

	if (n->auth_file) {
		rc = aws_read_token(n->auth_file, &tok);
		if (rc) {
			snprintf(err, errlen, "container credentials: cannot "
				 "read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
				 "%s: %s", n->auth_file, strerror(-rc));
			return rc == -ENOMEM ? rc : -EACCES;
		}
	}
	if (tok || n->auth_token)
		rc = http_req_header(req, "Authorization: %s",
				     tok ? tok : n->auth_token);
	secret_free(tok);
	if (rc == -EINVAL)
		snprintf(err, errlen, "container credentials: the "
			 "authorization token contains a line break");
	return rc;
}

int aws_container_fetch(struct aws_ctx *ctx, struct aws_node *n,
			struct aws_creds *out, char *err, size_t errlen)
{
	struct http_req req = { .method = "GET" };
	struct http_resp resp;
	char msg[160], why[sizeof(resp.err) + 32];
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&resp, 0, sizeof(resp));
	req.url = strdup(n->url);
	if (!req.url)
		return -ENOMEM;
	rc = auth_header(n, &req, err, errlen);
	if (!rc)
		rc = http_do(ctx->http, &req, CONTAINER_TIMEOUT_MS,
			     CONTAINER_MAX_BODY, &resp);
	else if (rc == -ENOMEM)
		snprintf(err, errlen, "container credentials: out of memory");
	http_req_release(&req);
	if (rc == -EIO || rc == -ETIMEDOUT || rc == -EPROTO) {
		snprintf(err, errlen, "container credentials at %s: %s",
			 n->url, http_failure(rc, &resp, why, sizeof(why)));
	} else if (!rc && (resp.status < 200 || resp.status >= 300)) {
		api_text(msg, sizeof(msg), resp.body ? resp.body : "",
			 resp.body ? resp.len : 0);
		snprintf(err, errlen, "container credentials at %s: HTTP %ld: "
			 "%s", n->url, resp.status, msg);
		rc = resp.status >= 500 ? -EIO : -EACCES;
	} else if (!rc) {
		rc = aws_creds_from_json(resp.body, resp.len, "AccessKeyId",
					 "SecretAccessKey", "Token",
					 "Expiration", out,
					 "container credentials", err, errlen);
	}
	if (resp.body)
		explicit_bzero(resp.body, resp.len);
	http_resp_release(&resp);
	return rc;
}
