/*
 * AWS EventBridge ListConnections: AWS JSON 1.1 RPC on
 * `POST /`, SigV4-signed by libcurl, opaque NextToken paging, epoch-second
 * timestamps and the `__type` error envelope. This file builds requests and
 * parses responses only; it knows nothing of paging loops, retries or FUSE.
 */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws.h"
#include "buf.h"
#include "json.h"
#include "provider.h"

struct eventbridge {
	struct aws_resolver *aws;
	atomic_int renewed;	/* forced renewals in this walk */
	char *region;
	char *endpoint;
	char *name_prefix;
	char *state;
};

/* Error codes the AWS SDKs retry as throttling (botocore's retry rules). */
static const char *const throttle_codes[] = {
	"Throttling", "ThrottlingException", "ThrottledException",
	"RequestThrottledException", "TooManyRequestsException",
	"RequestLimitExceeded", "RequestThrottled", "SlowDown", NULL,
};

static const char *const auth_codes[] = {
	"AccessDeniedException", "UnrecognizedClientException",
	"InvalidSignatureException", "InvalidClientTokenId",
	"MissingAuthenticationTokenException", "ExpiredTokenException",
	"IncompleteSignature", "NotAuthorized", "SignatureDoesNotMatch",
	"RequestExpired", "OptInRequired", NULL,
};

/* The credentials expired (or the clock is off): renew once, retry. */
static const char *const expired_codes[] = {
	"ExpiredToken", "ExpiredTokenException", "RequestExpired", NULL,
};

static const char *const restart_codes[] = {
	"InvalidToken", "InvalidNextToken", "ValidationException", NULL,
};

static bool in_list(const char *const *list, const char *code)
{
	for (; *list; list++)
		if (strcmp(*list, code) == 0)
			return true;
	return false;
}

static bool matches(const char *s, const char *charset, size_t max)
{
	size_t n = strlen(s);

	return n >= 1 && n <= max && strspn(s, charset) == n;
}

static const char *first_env(const char *a, const char *b)
{
	const char *v = getenv(a);

	return v && *v ? v : b ? getenv(b) : NULL;
}

static int eb_region(struct eventbridge *eb, struct conf_section *sec,
		     char *err)
{
	const char *r = conf_get(sec, "region");
	char imds[64];

	if (!r || !*r)
		r = first_env("AWS_REGION", "AWS_DEFAULT_REGION");
	if (!r || !*r)
		r = aws_resolver_profile_region(eb->aws);
	if ((!r || !*r) &&
	    aws_resolver_imds_region(eb->aws, imds, sizeof(imds)) == 0)
		r = imds;
	if (!r || !*r)
		return conf_error(sec, "region", err, "no AWS region: set "
				  "region, AWS_REGION or AWS_DEFAULT_REGION, "
				  "or region in the AWS profile");
	if (!matches(r, "abcdefghijklmnopqrstuvwxyz0123456789-", 32))
		return conf_error(sec, "region", err,
				  "'%s' is not an AWS region name", r);
	eb->region = strdup(r);
	return eb->region ? 0 : -ENOMEM;
}

static int eb_endpoint(struct eventbridge *eb, struct conf_section *sec,
		       const char *base_url, char *err)
{
	const char *env = first_env("AWS_ENDPOINT_URL_EVENTBRIDGE",
				    "AWS_ENDPOINT_URL");

	if (base_url)
		eb->endpoint = strdup(base_url);
	else if (env && *env)
		return conf_url(sec, "url", env, &eb->endpoint, err);
	else if (asprintf(&eb->endpoint, "https://events.%s.amazonaws.com%s",
			  eb->region, strncmp(eb->region, "cn-", 3) ? "" :
			  ".cn") < 0)
		eb->endpoint = NULL;
	return eb->endpoint ? 0 : -ENOMEM;
}

/* STS and SSO portal endpoints: AWS_ENDPOINT_URL_STS / _SSO, then
 * AWS_ENDPOINT_URL, else the regional AWS endpoints. */
static int eb_auth_endpoints(struct eventbridge *eb, struct conf_section *sec,
			     char *err)
{
	const char *sts = first_env("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL");
	const char *sso = first_env("AWS_ENDPOINT_URL_SSO", "AWS_ENDPOINT_URL");
	const char *oidc = first_env("AWS_ENDPOINT_URL_SSO_OIDC",
				     "AWS_ENDPOINT_URL");
	char *sts_url = NULL, *sso_url = NULL, *oidc_url = NULL;
	int rc = 0;

	if (sts && *sts)
		rc = conf_url(sec, NULL, sts, &sts_url, err);
	if (!rc && sso && *sso)
		rc = conf_url(sec, NULL, sso, &sso_url, err);
	if (!rc && oidc && *oidc)
		rc = conf_url(sec, NULL, oidc, &oidc_url, err);
	if (!rc)
		rc = aws_resolver_set_endpoints(eb->aws, eb->region, sts_url,
						sso_url, oidc_url);
	free(sts_url);
	free(sso_url);
	free(oidc_url);
	return rc;
}

static int eb_filters(struct eventbridge *eb, struct conf_section *sec,
		      char *err)
{
	const char *prefix = conf_get(sec, "name_prefix");
	const char *state = conf_get(sec, "state");

	if (prefix && !matches(prefix, "._-abcdefghijklmnopqrstuvwxyz"
			       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 64))
		return conf_error(sec, "name_prefix", err, "'%s' is not a valid "
				  "connection name prefix ([.-_A-Za-z0-9], "
				  "1-64)", prefix);
	/* The state enum is open (AWS may add states): check the form only. */
	if (state && !matches(state, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_", 64))
		return conf_error(sec, "state", err, "'%s' is not a connection "
				  "state such as AUTHORIZED or "
				  "FAILED_CONNECTIVITY", state);
	eb->name_prefix = prefix ? strdup(prefix) : NULL;
	eb->state = state ? strdup(state) : NULL;
	return 0;
}

static void eb_release(void *state)
{
	struct eventbridge *eb = state;

	if (!eb)
		return;
	aws_resolver_free(eb->aws);
	free(eb->region);
	free(eb->endpoint);
	free(eb->name_prefix);
	free(eb->state);
	free(eb);
}

static int eb_configure(struct conf_section *sec, const char *base_url,
			void **state, char *err)
{
	struct eventbridge *eb = calloc(1, sizeof(*eb));
	const char *profile = conf_get(sec, "profile");
	char msg[CONF_ERRLEN - 112];
	int rc;

	if (!eb)
		return -ENOMEM;
	rc = aws_resolver_new(profile, &eb->aws, msg, sizeof(msg));
	if (rc)
		rc = conf_error(sec, profile ? "profile" : NULL, err, "%s", msg);
	if (!rc)
		rc = eb_region(eb, sec, err);
	if (!rc)
		rc = eb_endpoint(eb, sec, base_url, err);
	if (!rc)
		rc = eb_auth_endpoints(eb, sec, err);
	if (!rc)
		rc = eb_filters(eb, sec, err);
	if (rc) {
		eb_release(eb);
		return rc;
	}
	*state = eb;
	return 0;
}

static char *eb_body(const struct eventbridge *eb, const struct page_req *pr)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "Limit", pr->size);
	if (eb->name_prefix)
		cJSON_AddStringToObject(o, "NamePrefix", eb->name_prefix);
	if (eb->state)
		cJSON_AddStringToObject(o, "ConnectionState", eb->state);
	if (pr->cursor)
		cJSON_AddStringToObject(o, "NextToken", pr->cursor);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int eb_sign(struct eventbridge *eb, struct http_req *req,
		   const struct aws_creds *c)
{
	if (asprintf(&req->aws_sigv4, "aws:amz:%s:events", eb->region) < 0)
		return req->aws_sigv4 = NULL, -ENOMEM;
	if (asprintf(&req->userpwd, "%s:%s", c->access_key, c->secret_key) < 0)
		return req->userpwd = NULL, -ENOMEM;
	/* Set before signing so libcurl includes it in SignedHeaders. */
	if (c->session_token &&
	    http_req_header(req, "X-Amz-Security-Token: %s", c->session_token))
		return -ENOMEM;
	return 0;
}

static int eb_build_list(void *state, const struct page_req *pr,
			 struct http_req *req)
{
	struct eventbridge *eb = state;
	struct aws_creds cr;
	const struct aws_creds *c = &cr;
	char err[300];
	int rc;

	/* Current keys for every page: they may have been renewed. */
	rc = aws_resolver_get(eb->aws, &cr, err, sizeof(err));
	if (rc)
		return rc;
	rc = eb_sign(eb, req, c);
	aws_creds_release(&cr);
	if (rc)
		return rc;
	req->method = "POST";
	if (asprintf(&req->url, "%s/", eb->endpoint) < 0)
		return req->url = NULL, -ENOMEM;
	req->body = eb_body(eb, pr);
	if (!req->body)
		return -ENOMEM;
	req->body_len = strlen(req->body);
	if (http_req_header(req, "Content-Type: application/x-amz-json-1.1") ||
	    http_req_header(req, "X-Amz-Target: AWSEvents.ListConnections"))
		return -ENOMEM;
	return 0;
}

static int eb_entry(struct page *pg, cJSON *conn, size_t i, char *err,
		    size_t errlen)
{
	const char *name = json_str(conn, "Name");
	const char *arn = json_str(conn, "ConnectionArn");
	struct timespec mtime = { 0 };
	double t;

	if (!cJSON_IsObject(conn) || (!name && !arn)) {
		snprintf(err, errlen, "eventbridge: connection %zu has neither "
			 "Name nor ConnectionArn", i);
		cJSON_Delete(conn);
		return -EPROTO;
	}
	if (!json_num(conn, "LastModifiedTime", &t) || !json_time_epoch(t, &mtime))
		if (json_num(conn, "CreationTime", &t))
			json_time_epoch(t, &mtime);
	return page_add(pg, arn ? arn : name, name ? name : arn, NULL, &mtime,
			conn);
}

static int eb_parse_list(void *state, const struct page_req *pr,
			 const struct http_resp *resp, struct page *pg,
			 char *err, size_t errlen)
{
	cJSON *root = json_parse(resp->body, resp->len);
	cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "Connections");
	cJSON *next = cJSON_GetObjectItemCaseSensitive(root, "NextToken");
	int rc = 0;

	(void)state;
	(void)pr;
	/*
	 * The model makes Connections optional, but AWS always sends it; a
	 * page without it is not a listing (an empty one would silently
	 * replace the last good listing, or end a walk part way).
	 */
	if (!cJSON_IsObject(root) || !cJSON_IsArray(list) ||
	    (next && !cJSON_IsString(next) && !cJSON_IsNull(next))) {
		snprintf(err, errlen, "eventbridge: ListConnections response "
			 "is not the documented shape");
		cJSON_Delete(root);
		return -EPROTO;
	}
	for (size_t i = 0; cJSON_GetArraySize(list) > 0 && !rc; i++)
		rc = eb_entry(pg, cJSON_DetachItemFromArray(list, 0), i, err,
			      errlen);
	/* NextToken is 1..2048 characters (ListConnections API reference):
	 * "" can only be the end. */
	if (!rc && cJSON_IsString(next) && next->valuestring[0]) {
		pg->next = strdup(next->valuestring);
		rc = pg->next ? 0 : -ENOMEM;
	}
	cJSON_Delete(root);
	return rc;
}

/* `__type` may carry a `:…` suffix and be namespaced (`…#Code`). */
static void eb_code(const char *type, char *code, size_t len)
{
	char buf[256];
	const char *hash;

	snprintf(buf, sizeof(buf), "%s", type);
	buf[strcspn(buf, ":")] = '\0';
	hash = strrchr(buf, '#');
	hash = hash ? hash + 1 : buf;
	api_text(code, len, hash, strlen(hash));
}

static void eb_classify_error(void *state, const struct page_req *pr,
			      const struct http_resp *resp,
			      struct api_error *e)
{
	cJSON *root = json_parse(resp->body, resp->len);
	const char *type = json_str(root, "__type");
	const char *msg = json_str(root, "message");
	const char *ms = http_resp_header(resp, "x-amz-retry-after");

	if (!msg)
		msg = json_str(root, "Message");
	if (type)
		eb_code(type, e->code, sizeof(e->code));
	if (msg)
		api_text(e->msg, sizeof(e->msg), msg, strlen(msg));
	else if (resp->body)
		api_text(e->msg, sizeof(e->msg), resp->body, resp->len);
	if (in_list(expired_codes, e->code) &&
	    atomic_exchange(&((struct eventbridge *)state)->renewed, 1) == 0) {
		/* One renewal and one retry of this page per walk. */
		aws_resolver_expire(((struct eventbridge *)state)->aws);
		e->cls = API_RETRY;
	} else if (in_list(throttle_codes, e->code))
		e->cls = API_THROTTLE;
	else if (in_list(auth_codes, e->code))
		e->cls = API_AUTH;
	else if (pr->cursor && in_list(restart_codes, e->code))
		e->cls = API_RESTART;
	else if (strncmp(e->code, "Internal", 8) == 0 ||
		 strcmp(e->code, "ServiceUnavailable") == 0)
		e->cls = API_RETRY;
	e->retry_after = resp->retry_after;
	if (ms && isdigit((unsigned char)*ms))
		e->retry_after = atof(ms) / 1000.0;
	cJSON_Delete(root);
}

/* Before each walk: fresh credentials, or the reason there are none. */
static int eb_begin_walk(void *state, char *err, size_t errlen)
{
	struct eventbridge *eb = state;
	struct aws_creds c;
	int rc;

	atomic_store(&eb->renewed, 0);
	rc = aws_resolver_get(eb->aws, &c, err, errlen);
	aws_creds_release(&c);
	return rc;
}

static void eb_describe_auth(void *state, char *buf, size_t len)
{
	aws_resolver_describe(((struct eventbridge *)state)->aws, buf, len);
}

/* EventBridge, STS and SSO trust what the AWS CLI would. */
static const char *eb_default_ca(void *state, const char **from)
{
	return aws_resolver_ca_bundle(((struct eventbridge *)state)->aws,
				      from);
}

/* STS and SSO go where EventBridge goes: same bundle, same proxy. */
static int eb_use_transport(void *state, const struct http_opts *o)
{
	return aws_resolver_set_transport(((struct eventbridge *)state)->aws,
					  o);
}

/*
 * The account behind the listing: endpoint, region and filters, which
 * credential source (the chain's description without its expiry, which
 * moves) and, for keys from the environment, the access key id (not a
 * secret; it names the key's account). Signing keys and session tokens
 * rotate, and fetching them may need a login first: no request here.
 */
static int eb_identity(void *state, char *buf, size_t len)
{
	const struct eventbridge *eb = state;
	const char *akid = getenv("AWS_ACCESS_KEY_ID");
	char desc[256];

	aws_resolver_describe(eb->aws, desc, sizeof(desc));
	desc[strcspn(desc, ",")] = '\0';
	snprintf(buf, len, "%s\n%s\n%s\n%s\n%s\n%s", eb->endpoint, eb->region,
		 eb->name_prefix ? eb->name_prefix : "",
		 eb->state ? eb->state : "", desc, akid ? akid : "");
	return 0;
}

static const char *eb_source_url(void *state)
{
	return ((struct eventbridge *)state)->endpoint;
}

const struct provider provider_eventbridge = {
	.name = "eventbridge",
	.paging = PAGING_CURSOR,
	.max_page = 100,
	.rate = 50,
	.burst = 50,
	.env_secret = "AWS_ACCESS_KEY_ID AWS_PROFILE "
		      "AWS_WEB_IDENTITY_TOKEN_FILE "
		      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
		      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	.configure = eb_configure,
	.release = eb_release,
	.begin_walk = eb_begin_walk,
	.build_list = eb_build_list,
	.parse_list = eb_parse_list,
	.classify_error = eb_classify_error,
	.source_url = eb_source_url,
	.describe_auth = eb_describe_auth,
	.identity = eb_identity,
	.default_ca = eb_default_ca,
	.use_transport = eb_use_transport,
};
