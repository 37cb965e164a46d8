/*
 * IAM Identity Center (SSO): the access token that `aws sso login` cached
 * in ~/.aws/sso/cache/SHA1.json (SHA-1 of the sso-session name, or of the
 * start URL for legacy profiles), exchanged for role credentials with the
 * portal's GET /federation/credentials. connfs never logs in itself: a
 * missing or expired token is an error that names the command to run, and
 * the next fetch after a login succeeds.
 *
 * The login of an sso-session also holds a refresh token and the OIDC
 * client `aws sso login` registered. As botocore does, an access token
 * within 15 minutes of its expiry is renewed with SSO OIDC CreateToken
 * (grant refresh_token) and the cache file rewritten, so a mount lasts as
 * long as the SSO session (hours to days), not the access token (about an
 * hour). A renewal that fails is logged; the current token is used while
 * it lasts. Knows nothing of profile files.
 * APIs: https://docs.aws.amazon.com/singlesignon/latest/PortalAPIReference/API_GetRoleCredentials.html
 * https://docs.aws.amazon.com/singlesignon/latest/OIDCAPIReference/API_CreateToken.html
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "provider.h"
#include "secret.h"
#include "source.h"

#define SSO_TIMEOUT_MS 10000
#define SSO_MAX_BODY (64 << 10)
#define SSO_REFRESH_WINDOW 900.0	/* botocore's: renew 15 min early */

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

static void iso_time(double t, char out[32])
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Sets a string member of a cache document, replacing any old value. */
static int set_str(cJSON *doc, const char *name, const char *value)
{
	cJSON *v = cJSON_CreateString(value);

	if (!v)
		return -ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(doc, name))
		cJSON_ReplaceItemInObjectCaseSensitive(doc, name, v);
	else
		cJSON_AddItemToObject(doc, name, v);
	return 0;
}

/*
 * Writes the cache document as the AWS CLI does (0600), through a new
 * file (unique: two sections may renew one login at once) renamed over
 * the old, so the CLI never reads half of it.
 */
static int write_cache(const char *path, const cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc), *tmp = NULL;
	size_t len = text ? strlen(text) : 0;
	int fd = -1, rc = 0;

	if (!text || asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL;
		rc = -ENOMEM;
	}
	if (!rc && (fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		rc = -errno;
		free(tmp);
		tmp = NULL;
	}
	if (!rc && (write(fd, text, len) != (ssize_t)len || fsync(fd)))
		rc = -EIO;
	if (fd >= 0 && close(fd) && !rc)
		rc = -EIO;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc && tmp)
		unlink(tmp);
	if (text)
		secret_free(text);
	free(tmp);
	return rc;
}

static int oidc_request(const struct aws_ctx *ctx, const struct aws_node *n,
			const cJSON *doc, struct http_req *req)
{
	cJSON *body = cJSON_CreateObject();
	static const char *const keep[] = { "clientId", "clientSecret",
					    "refreshToken" };
	int rc = body && cJSON_AddStringToObject(body, "grantType",
						 "refresh_token") ? 0 : -ENOMEM;

	for (size_t i = 0; !rc && i < sizeof(keep) / sizeof(*keep); i++)
		if (!cJSON_AddStringToObject(body, keep[i],
					     json_str(doc, keep[i])))
			rc = -ENOMEM;
	req->method = "POST";
	if (!rc && (ctx->oidc_url ?
		    asprintf(&req->url, "%s/token", ctx->oidc_url) :
		    asprintf(&req->url, "https://oidc.%s.amazonaws.com/token",
			     n->sso_region)) < 0) {
		req->url = NULL;
		rc = -ENOMEM;
	}
	if (!rc && (!(req->body = cJSON_PrintUnformatted(body)) ||
		    http_req_header(req, "Content-Type: application/json")))
		rc = -ENOMEM;
	req->body_len = req->body ? strlen(req->body) : 0;
	aws_json_free(body);
	return rc;
}

/* The new token of a CreateToken answer into doc; -EPROTO if none. */
static int take_token(cJSON *doc, const char *body, size_t len)
{
	cJSON *r = json_parse(body, len);
	const char *tok = json_str(r, "accessToken");
	const char *next = json_str(r, "refreshToken");
	double in = 0;
	char at[32];
	int rc = 0;

	/* A lifetime beyond a year is not one AWS gives: refused. */
	if (!tok || !*tok || !json_num(r, "expiresIn", &in) || in <= 0 ||
	    in > 366 * 86400.0)
		rc = -EPROTO;
	if (!rc) {
		iso_time(aws_now() + in, at);
		rc = set_str(doc, "accessToken", tok) ||
		     set_str(doc, "expiresAt", at) ||
		     (next && *next && set_str(doc, "refreshToken", next)) ?
		     -ENOMEM : 0;
	}
	aws_json_free(r);
	return rc;
}

/*
 * Renews the login in doc with its refresh token and saves it to path.
 * -ENOENT when the login cannot be renewed (legacy profile, no refresh
 * token, client registration expired); else why says what failed.
 */
static int renew_login(struct aws_ctx *ctx, const struct aws_node *n,
		       const char *path, cJSON *doc, char *why, size_t len)
{
	struct http_req req = { 0 };
	struct http_resp resp;
	char msg[200], fail[sizeof(resp.err) + 32];
	time_t reg;
	int rc;

	if (!n->sso_session || !json_str(doc, "refreshToken") ||
	    !json_str(doc, "clientId") || !json_str(doc, "clientSecret") ||
	    aws_parse_time(json_str(doc, "registrationExpiresAt"), &reg) ||
	    (double)reg <= aws_now())
		return -ENOENT;
	memset(&resp, 0, sizeof(resp));
	rc = oidc_request(ctx, n, doc, &req);
	if (!rc)
		rc = http_do(ctx->http, &req, SSO_TIMEOUT_MS, SSO_MAX_BODY,
			     &resp);
	if (req.body)
		explicit_bzero(req.body, req.body_len);
	http_req_release(&req);
	if (rc) {
		snprintf(why, len, "SSO OIDC: %s",
			 http_failure(rc, &resp, fail, sizeof(fail)));
	} else if (resp.status != 200) {
		api_text(msg, sizeof(msg), resp.body ? resp.body : "",
			 resp.body ? resp.len : 0);
		snprintf(why, len, "SSO OIDC: HTTP %ld: %s", resp.status, msg);
		rc = -EACCES;
	} else if ((rc = take_token(doc, resp.body, resp.len)) == -EPROTO) {
		snprintf(why, len, "SSO OIDC: the answer has no accessToken");
	} else if (!rc && (rc = write_cache(path, doc))) {
		snprintf(why, len, "cannot save the renewed login to %s: %s",
			 path, strerror(-rc));
	}
	if (resp.body)
		explicit_bzero(resp.body, resp.len);
	http_resp_release(&resp);
	return rc;
}

/*
 * The access token of doc, renewed first when it is near its expiry and
 * can be; an expired one that could not be renewed names the login.
 */
static int usable_token(struct aws_ctx *ctx, const struct aws_node *n,
			const char *path, cJSON *doc, char **token, char *err,
			size_t errlen)
{
	const char *exp = json_str(doc, "expiresAt");
	char was[64], why[300] = "", hint[400];
	time_t expires;
	int rc;

	if (!json_str(doc, "accessToken") || aws_parse_time(exp, &expires))
		return login_hint(n, "the cached login is not valid", err,
				  errlen);
	snprintf(was, sizeof(was), "%s", exp);
	if ((double)expires - aws_now() < SSO_REFRESH_WINDOW) {
		rc = renew_login(ctx, n, path, doc, why, sizeof(why));
		if (!rc) {
			log_msg(LOG_INFO, "aws: renewed the SSO login of "
				"profile %s", n->profile);
			aws_parse_time(json_str(doc, "expiresAt"), &expires);
		} else if (rc != -ENOENT && (double)expires > aws_now()) {
			log_msg(LOG_WARNING, "aws: renewing the SSO login "
				"failed, the current one is still valid: %s",
				why);
		}
	}
	if ((double)expires <= aws_now()) {
		snprintf(hint, sizeof(hint), "the cached login expired at "
			 "%s%s%s", was, why[0] ? " and could not be renewed: " :
			 "", why);
		return login_hint(n, hint, err, errlen);
	}
	*token = strdup(json_str(doc, "accessToken"));
	return *token ? 0 : -ENOMEM;
}

/* cached_token's work, under its lock. */
static int read_login(struct aws_ctx *ctx, const struct aws_node *n,
		      char **token, char *err, size_t errlen)
{
	const char *home = getenv("HOME");
	char hex[41], *path, *text = NULL;
	cJSON *root;
	int rc;

	*token = NULL;
	aws_sso_cache_name(n->sso_session ? n->sso_session :
			   n->sso_start_url, hex);
	if (asprintf(&path, "%s/.aws/sso/cache/%s.json", home ? home : "",
		     hex) < 0)
		return -ENOMEM;
	rc = aws_read_token(path, &text);
	if (rc) {
		free(path);
		return rc == -ENOMEM ? rc :
		       login_hint(n, "no cached login (token) for this "
				  "profile", err, errlen);
	}
	root = json_parse(text, strlen(text));
	secret_free(text);
	if (!cJSON_IsObject(root))
		rc = login_hint(n, "the cached login is not valid", err,
				errlen);
	else
		rc = usable_token(ctx, n, path, root, token, err, errlen);
	aws_json_free(root);
	free(path);
	return rc;
}

/*
 * The cached access token, if present and not expired (or renewed).
 * One caller at a time reads and renews: sections sharing a login would
 * otherwise spend one refresh token twice, and the second renewal fail.
 */
static int cached_token(struct aws_ctx *ctx, const struct aws_node *n,
			char **token, char *err, size_t errlen)
{
	static pthread_mutex_t login_lock = PTHREAD_MUTEX_INITIALIZER;
	int rc;

	pthread_mutex_lock(&login_lock);
	rc = read_login(ctx, n, token, err, errlen);
	pthread_mutex_unlock(&login_lock);
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
	int rc = cached_token(ctx, n, &token, err, errlen);

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
