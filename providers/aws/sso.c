/*
 * IAM Identity Center (SSO): the access token that `aws sso login` cached
 * in ~/.aws/sso/cache/SHA1.json (SHA-1 of the sso-session name, or of the
 * start URL for legacy profiles), exchanged for role credentials with the
 * portal's GET /federation/credentials. connfs never logs in itself: a
 * missing or expired token is an error that names the command to run, and
 * the next fetch after a login succeeds. Knows nothing of profile files.
 * API: https://docs.aws.amazon.com/singlesignon/latest/PortalAPIReference/API_GetRoleCredentials.html
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "provider.h"
#include "secret.h"
#include "source.h"

#define SSO_TIMEOUT_MS 10000
#define SSO_MAX_BODY (64 << 10)

static uint32_t rol(uint32_t x, int n)
{
	return x << n | x >> (32 - n);
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20)
			f = (b & c) | (~b & d), k = 0x5A827999;
		else if (i < 40)
			f = b ^ c ^ d, k = 0x6ED9EBA1;
		else if (i < 60)
			f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
		else
			f = b ^ c ^ d, k = 0xCA62C1D6;
		t = rol(a, 5) + f + e + k + w[i];
		e = d, d = c, c = rol(b, 30), b = a, a = t;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

/* FIPS 180-4 SHA-1 of s as 40 lower-case hex digits (names, not secrets). */
void aws_sso_cache_name(const char *s, char out[41])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
			  0xC3D2E1F0 };
	size_t n = strlen(s), i;
	unsigned char blk[64];
	uint64_t bits = (uint64_t)n * 8;

	for (i = 0; i + 64 <= n; i += 64)
		sha1_block(h, (const unsigned char *)s + i);
	memset(blk, 0, sizeof(blk));
	memcpy(blk, s + i, n - i);
	blk[n - i] = 0x80;
	if (n - i >= 56) {
		sha1_block(h, blk);
		memset(blk, 0, sizeof(blk));
	}
	for (int j = 0; j < 8; j++)
		blk[63 - j] = (unsigned char)(bits >> (8 * j));
	sha1_block(h, blk);
	for (int j = 0; j < 5; j++)
		snprintf(out + 8 * j, 9, "%08x", h[j]);
}

static int login_hint(const struct aws_node *n, const char *why, char *err,
		      size_t errlen)
{
	snprintf(err, errlen, "SSO: %s; run `aws sso login --profile %s`",
		 why, n->profile);
	return -EACCES;
}

/* The cached access token, if present and not expired. */
static int cached_token(const struct aws_node *n, char **token, char *err,
			size_t errlen)
{
	const char *home = getenv("HOME");
	char hex[41], *path, *text = NULL, why[200];
	cJSON *root;
	const char *tok, *exp;
	time_t expires;
	int rc;

	*token = NULL;
	aws_sso_cache_name(n->sso_session ? n->sso_session :
			   n->sso_start_url, hex);
	if (asprintf(&path, "%s/.aws/sso/cache/%s.json", home ? home : "",
		     hex) < 0)
		return -ENOMEM;
	rc = aws_read_token(path, &text);
	free(path);
	if (rc == -ENOMEM)
		return rc;
	if (rc)
		return login_hint(n, "no cached login (token) for this "
				  "profile", err, errlen);
	root = json_parse(text, strlen(text));
	secret_free(text);
	tok = json_str(root, "accessToken");
	exp = json_str(root, "expiresAt");
	if (!tok || !*tok || aws_parse_time(exp, &expires))
		rc = login_hint(n, "the cached login is not valid", err,
				errlen);
	else if ((double)expires <= aws_now()) {
		snprintf(why, sizeof(why), "the cached login expired at %s",
			 exp);
		rc = login_hint(n, why, err, errlen);
	} else if (!(*token = strdup(tok))) {
		rc = -ENOMEM;
	}
	aws_json_free(root);
	return rc;
}

static int role_creds(const char *body, size_t len, struct aws_creds *out)
{
	cJSON *root = json_parse(body, len);
	cJSON *rc_obj = cJSON_GetObjectItemCaseSensitive(root,
							 "roleCredentials");
	const char *k = json_str(rc_obj, "accessKeyId");
	const char *s = json_str(rc_obj, "secretAccessKey");
	const char *t = json_str(rc_obj, "sessionToken");
	double exp = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!k || !*k || !s || !*s || !json_num(rc_obj, "expiration", &exp))
		rc = -EPROTO;
	else if (!(out->access_key = strdup(k)) ||
		 !(out->secret_key = strdup(s)) ||
		 (t && *t && !(out->session_token = strdup(t))))
		rc = -ENOMEM;
	out->expiration = (time_t)(exp / 1000);
	if (rc)
		aws_creds_release(out);
	aws_json_free(root);
	return rc;
}

static int sso_request(struct aws_ctx *ctx, const struct aws_node *n,
		       const char *token, struct http_req *req)
{
	struct buf url = { 0 };

	req->method = "GET";
	if (ctx->sso_url)
		buf_puts(&url, ctx->sso_url);
	else
		buf_printf(&url, "https://portal.sso.%s.amazonaws.com",
			   n->sso_region);
	if (buf_puts(&url, "/federation/credentials") ||
	    buf_query(&url, "account_id", n->sso_account) ||
	    buf_query(&url, "role_name", n->sso_role)) {
		buf_release(&url);
		return -ENOMEM;
	}
	req->url = buf_steal(&url);
	if (http_req_header(req, "x-amz-sso_bearer_token: %s", token))
		return -ENOMEM;
	return 0;
}

int aws_sso_fetch(struct aws_ctx *ctx, struct aws_node *n,
		  struct aws_creds *out, char *err, size_t errlen)
{
	struct http_req req = { 0 };
	struct http_resp resp;
	char *token = NULL, msg[200], why[sizeof(resp.err) + 32];
	int rc = cached_token(n, &token, err, errlen);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	rc = sso_request(ctx, n, token, &req);
	secret_free(token);
	if (!rc)
		rc = http_do(ctx->http, &req, SSO_TIMEOUT_MS, SSO_MAX_BODY,
			     &resp);
	else
		memset(&resp, 0, sizeof(resp));
	http_req_release(&req);
	if (rc)
		snprintf(err, errlen, "SSO portal: %s",
			 http_failure(rc, &resp, why, sizeof(why)));
	else if (resp.status == 401 || resp.status == 403)
		rc = login_hint(n, "the portal refused the cached login "
				"(expired or revoked)", err, errlen);
	else if (resp.status < 200 || resp.status >= 300) {
		api_text(msg, sizeof(msg), resp.body ? resp.body : "",
			 resp.body ? resp.len : 0);
		snprintf(err, errlen, "SSO portal: HTTP %ld: %s", resp.status,
			 msg);
		rc = resp.status >= 500 || resp.status == 429 ? -EIO : -EACCES;
	} else if ((rc = role_creds(resp.body, resp.len, out)) == -EPROTO) {
		snprintf(err, errlen, "SSO portal: the answer has no "
			 "roleCredentials");
	}
	if (resp.body)
		explicit_bzero(resp.body, resp.len);
	http_resp_release(&resp);
	return rc;
}
