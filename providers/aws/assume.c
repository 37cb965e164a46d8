/*
 * Assume role: a profile's role_arn assumed with sts:AssumeRole using the
 * credentials of its source_profile or credential_source, signed with SigV4
 * for service "sts". external_id, role_session_name and duration_seconds
 * are passed through. Also the one STS request runner that web identity
 * shares. Knows nothing of profile files (chain.c built the node).
 * API: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "secret.h"
#include "source.h"

#define STS_TIMEOUT_MS 10000
#define STS_MAX_BODY (256 << 10)

static int sts_request(struct aws_ctx *ctx, const char *form,
		       const struct aws_creds *signer, struct http_req *req)
{
	req->method = "POST";
	if (asprintf(&req->url, "%s/", ctx->sts_url) < 0)
		return req->url = NULL, -ENOMEM;
	if (asprintf(&req->body, "%s&Version=2011-06-15", form) < 0)
		return req->body = NULL, -ENOMEM;
	req->body_len = strlen(req->body);
	if (http_req_header(req, "Content-Type: application/"
			    "x-www-form-urlencoded; charset=utf-8") ||
	    http_req_header(req, "Accept: text/xml"))
		return -ENOMEM;
	if (!signer)
		return 0;
	if (asprintf(&req->aws_sigv4, "aws:amz:%s:sts", ctx->region) < 0)
		return req->aws_sigv4 = NULL, -ENOMEM;
	if (asprintf(&req->userpwd, "%s:%s", signer->access_key,
		     signer->secret_key) < 0)
		return req->userpwd = NULL, -ENOMEM;
	/* Set before signing so that libcurl signs it. */
	if (signer->session_token &&
	    http_req_header(req, "X-Amz-Security-Token: %s",
			    signer->session_token))
		return -ENOMEM;
	return 0;
}

int aws_form_add(struct buf *form, const char *key, const char *value)
{
	if (buf_puts(form, "&") || buf_urlencode(form, key) ||
	    buf_puts(form, "=") || buf_urlencode(form, value))
		return -ENOMEM;
	return 0;
}

int aws_sts_call(struct aws_ctx *ctx, const char *action, const char *form,
		 const struct aws_creds *signer, struct aws_creds *out,
		 char *err, size_t errlen)
{
	struct http_req req = { 0 };
	struct http_resp resp;
	char why[sizeof(resp.err) + 32];
	int rc = sts_request(ctx, form, signer, &req);

	memset(out, 0, sizeof(*out));
	if (rc) {
		snprintf(err, errlen, "STS %s: cannot build the request: %s",
			 action, strerror(-rc));
		if (req.body)
			explicit_bzero(req.body, req.body_len);
		http_req_release(&req);
		return rc;
	}
	rc = http_do(ctx->http, &req, STS_TIMEOUT_MS, STS_MAX_BODY, &resp);
	/* A web identity token travels in the body: wipe it. */
	explicit_bzero(req.body, req.body_len);
	http_req_release(&req);
	if (rc)
		snprintf(err, errlen, "STS %s at %s: %s", action, ctx->sts_url,
			 http_failure(rc, &resp, why, sizeof(why)));
	else
		rc = aws_sts_parse(action, resp.status, resp.body, resp.len,
				   out, err, errlen);
	if (resp.body)
		explicit_bzero(resp.body, resp.len);
	http_resp_release(&resp);
	return rc;
}

int aws_assume_fetch(struct aws_ctx *ctx, struct aws_node *n,
		     struct aws_creds *out, char *err, size_t errlen)
{
	struct aws_creds src = { 0 };
	struct buf form = { 0 };
	char sub[300];
	int rc;

	rc = aws_fetch(ctx, n->source, &src, sub, sizeof(sub));
	if (rc) {
		snprintf(err, errlen, "assume-role %s: %s: %s", n->profile,
			 n->via, sub);
		return rc;
	}
	rc = buf_puts(&form, "Action=AssumeRole");
	if (!rc)
		rc = aws_form_add(&form, "RoleArn", n->role_arn);
	if (!rc)
		rc = aws_form_add(&form, "RoleSessionName", n->session_name);
	if (!rc && n->external_id)
		rc = aws_form_add(&form, "ExternalId", n->external_id);
	if (!rc && n->duration)
		rc = buf_printf(&form, "&DurationSeconds=%ld", n->duration);
	if (!rc)
		rc = aws_sts_call(ctx, "AssumeRole", form.p, &src, out, err,
				  errlen);
	aws_creds_release(&src);
	if (form.p)
		explicit_bzero(form.p, form.len);
	buf_release(&form);
	return rc;
}
