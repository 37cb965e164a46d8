/*
 * Unit tests for the network sources of the AWS chain on a fake transport:
 * the XML reader (entities, character references, CDATA, namespace
 * prefixes, comments; DOCTYPE, mismatched tags and unknown entities
 * refused), STS replies and ErrorResponse documents, and the exact
 * requests built for AssumeRole (SigV4 for sts, session token),
 * AssumeRoleWithWebIdentity (unsigned, token re-read), the SSO portal,
 * container credentials and IMDSv2. No network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/source.h"
#include "fixture.h"
#include "harness.h"

#define MAX_CALLS 8

/* What the fake transport saw and what it answers, in order. */
static struct {
	struct http_req req[MAX_CALLS];
	int n;
	long status[MAX_CALLS];
	const char *body[MAX_CALLS];
	int fail_with;		/* transport error for every call, or 0 */
} fake;

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int transport(const struct http_req *req, struct http_resp *resp,
		     void *arg)
{
	struct http_req *c;
	int i = fake.n;

	(void)arg;
	if (i >= MAX_CALLS)
		return -EIO;
	fake.n++;
	c = &fake.req[i];
	c->method = req->method;
	c->url = dup_or_null(req->url);
	c->body = dup_or_null(req->body);
	c->body_len = req->body_len;
	c->aws_sigv4 = dup_or_null(req->aws_sigv4);
	c->userpwd = dup_or_null(req->userpwd);
	for (size_t h = 0; h < req->nheaders; h++)
		c->headers[c->nheaders++] = strdup(req->headers[h]);
	if (fake.fail_with) {
		snprintf(resp->err, sizeof(resp->err), "Connection refused");
		return fake.fail_with;
	}
	resp_text(resp, fake.status[i], fake.body[i]);
	return 0;
}

static void fake_reset(void)
{
	for (int i = 0; i < fake.n; i++)
		http_req_release(&fake.req[i]);
	memset(&fake, 0, sizeof(fake));
	http_set_transport(transport, NULL);
}

static void answer(int i, long status, const char *body)
{
	fake.status[i] = status;
	fake.body[i] = body;
}

static const char *const CRED_PATHS[] = {
	"R/Result/Credentials/AccessKeyId", "R/Result/Credentials/Token",
};

static void test_xml(void)
{
	const char *paths[] = { "a/b", "a/c", "a/d/e", "a/missing" };
	char *v[4];

	{
		const char *doc = "<?xml version=\"1.0\"?>\n<!-- hi -->"
				  "<x:a xmlns:x=\"urn:x\" k='v'><x:b>1 &lt; 2 "
				  "&amp;&amp; &quot;q&quot; &apos;</x:b>"
				  "<c>&#65;&#x42;&#xe9;&#x1F600;</c><d><e>"
				  "<![CDATA[<raw> & stuff]]></e></d><c>second"
				  "</c><empty/></x:a>\n";

		/* Cut short: not a document. */
		CHECK_INT(aws_xml_get(doc, strlen(doc) - 8, paths, v, 4),
			  -EPROTO);
		CHECK_INT(aws_xml_get(doc, strlen(doc), paths, v, 4), 0);
		CHECK_STR(v[0], "1 < 2 && \"q\" '");
		/* The first c. */
		CHECK_STR(v[1], "AB\xc3\xa9\xf0\x9f\x98\x80");
		CHECK_STR(v[2], "<raw> & stuff");
		CHECK(v[3] == NULL);
		for (int i = 0; i < 4; i++)
			free(v[i]);
	}
	/* Not well-formed, or dangerous: refused as a whole. */
	static const char *const bad[] = {
		"<a><b>x</a></b>",
		"<a><b>x</b>",
		"<a>&unknown;</a>",
		"<a>&amp</a>",
		"<a>&#0;</a>",
		"<a>&#xD800;</a>",
		"<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
		"<a b=unquoted></a>",
		"<a></a><b></b>",
		"text<a></a>",
		"<a></a>trailing",
		"",
		"<a><!-- open",
		NULL,
	};
	for (size_t i = 0; bad[i]; i++) {
		char *w[2] = { (char *)1, (char *)1 };

		CHECK_INT(aws_xml_get(bad[i], strlen(bad[i]), CRED_PATHS, w, 2),
			  -EPROTO);
		CHECK(w[0] == NULL && w[1] == NULL);
	}
}

#define ASSUME_OK                                                          \
	"<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/"       \
	"2011-06-15/\">\n  <AssumeRoleResult>\n"                           \
	"    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>"  \
	"</AssumedRoleUser>\n    <Credentials>\n"                          \
	"      <AccessKeyId>ASIATEMP</AccessKeyId>\n"                      \
	"      <SecretAccessKey>se&amp;cret/+=</SecretAccessKey>\n"        \
	"      <SessionToken>FwoG&lt;tok&gt;</SessionToken>\n"             \
	"      <Expiration>2030-01-02T03:04:05.123Z</Expiration>\n"        \
	"    </Credentials>\n  </AssumeRoleResult>\n"                      \
	"  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>\n" \
	"</AssumeRoleResponse>\n"

#define STS_ERROR(code, msg)                                               \
	"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">" \
	"<Error><Type>Sender</Type><Code>" code "</Code><Message>" msg     \
	"</Message></Error><RequestId>x</RequestId></ErrorResponse>"

static void test_sts_parse(void)
{
	struct aws_creds c;
	char err[300];
	const char *doc = ASSUME_OK;

	CHECK_INT(aws_sts_parse("AssumeRole", 200, doc, strlen(doc), &c, err,
				sizeof(err)), 0);
	CHECK_STR(c.access_key, "ASIATEMP");
	CHECK_STR(c.secret_key, "se&cret/+=");
	CHECK_STR(c.session_token, "FwoG<tok>");
	CHECK_INT(c.expiration, 1893553445);
	aws_creds_release(&c);

	/* The answer to another action is not this one's. */
	CHECK_INT(aws_sts_parse("AssumeRoleWithWebIdentity", 200, doc,
				strlen(doc), &c, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, "AssumeRoleWithWebIdentityResponse") != NULL);
	CHECK(strstr(err, "cret") == NULL);

	doc = STS_ERROR("AccessDenied", "User: arn:aws:iam::1:user/u is not "
			"authorized &amp; that&apos;s it");
	CHECK_INT(aws_sts_parse("AssumeRole", 403, doc, strlen(doc), &c, err,
				sizeof(err)), -EACCES);
	CHECK_STR(err, "STS AssumeRole: AccessDenied: User: arn:aws:iam::1:"
		  "user/u is not authorized & that's it (HTTP 403)");
	doc = STS_ERROR("Throttling", "Rate exceeded");
	CHECK_INT(aws_sts_parse("AssumeRole", 400, doc, strlen(doc), &c, err,
				sizeof(err)), -EIO);
	doc = STS_ERROR("ExpiredToken", "The security token included in the "
			"request is expired");
	CHECK_INT(aws_sts_parse("AssumeRole", 403, doc, strlen(doc), &c, err,
				sizeof(err)), -EACCES);
	CHECK(strstr(err, "ExpiredToken") != NULL);
	/* Control characters from the wire are escaped. */
	doc = STS_ERROR("Bad", "line\nbreak&#27;[31m");
	CHECK_INT(aws_sts_parse("AssumeRole", 400, doc, strlen(doc), &c, err,
				sizeof(err)), -EACCES);
	CHECK(strchr(err, '\n') == NULL && strchr(err, 27) == NULL);
	doc = "<html>502 Bad Gateway</html>";
	CHECK_INT(aws_sts_parse("AssumeRole", 502, doc, strlen(doc), &c, err,
				sizeof(err)), -EIO);
	CHECK(strstr(err, "HTTP 502") != NULL);
	CHECK_INT(aws_sts_parse("AssumeRole", 200, "<a>", 3, &c, err,
				sizeof(err)), -EPROTO);
}

static struct aws_ctx ctx(void)
{
	return (struct aws_ctx){ .region = (char *)"eu-west-1",
				 .sts_url = (char *)"http://127.0.0.1:9/sts",
				 .sso_url = NULL };
}

static void test_assume_request(void)
{
	struct aws_node src = { .kind = AWS_SRC_STATIC };
	struct aws_node n = {
		.kind = AWS_SRC_ASSUME, .profile = (char *)"prod",
		.role_arn = (char *)"arn:aws:iam::1:role/a b",
		.session_name = (char *)"s1", .external_id = (char *)"e&x",
		.duration = 900, .via = (char *)"source_profile base",
		.source = &src,
	};
	struct aws_ctx c = ctx();
	struct aws_creds out;
	char err[300];

	src.keys.access_key = (char *)"AKIASRC";
	src.keys.secret_key = (char *)"srcsecret";
	src.keys.session_token = (char *)"srctoken";
	fake_reset();
	answer(0, 200, ASSUME_OK);
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), 0);
	CHECK_STR(out.access_key, "ASIATEMP");
	aws_creds_release(&out);
	CHECK_INT(fake.n, 1);
	CHECK_STR(fake.req[0].method, "POST");
	CHECK_STR(fake.req[0].url, "http://127.0.0.1:9/sts/");
	CHECK_STR(fake.req[0].body, "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam"
		  "%3A%3A1%3Arole%2Fa%20b&RoleSessionName=s1&ExternalId=e%26x"
		  "&DurationSeconds=900&Version=2011-06-15");
	CHECK_STR(fake.req[0].aws_sigv4, "aws:amz:eu-west-1:sts");
	CHECK_STR(fake.req[0].userpwd, "AKIASRC:srcsecret");
	CHECK_STR(http_req_get_header(&fake.req[0], "X-Amz-Security-Token"),
		  "srctoken");
	CHECK_STR(http_req_get_header(&fake.req[0], "Content-Type"),
		  "application/x-www-form-urlencoded; charset=utf-8");

	/* A refusal names the profile and the source, not the keys. */
	fake_reset();
	answer(0, 403, STS_ERROR("AccessDenied", "not allowed"));
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), -EACCES);
	CHECK_STR(err, "STS AssumeRole: AccessDenied: not allowed (HTTP 403)");
	fake_reset();
	fake.fail_with = -EIO;
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), -EIO);
	CHECK_STR(err, "STS AssumeRole at http://127.0.0.1:9/sts: Connection "
		  "refused");
	fake_reset();
}

#define WEBID_OK                                                           \
	"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>" \
	"<Credentials><AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>w"  \
	"</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"      \
	"2030-01-01T00:00:00Z</Expiration></Credentials>"                   \
	"</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_web_identity(void)
{
	char path[] = "/tmp/connfs-webid-XXXXXX";
	int fd = mkstemp(path);
	struct aws_node n = {
		.kind = AWS_SRC_WEBID,
		.role_arn = (char *)"arn:aws:iam::1:role/p",
		.session_name = (char *)"pod", .token_file = path,
	};
	struct aws_ctx c = ctx();
	struct aws_creds out;
	char err[300];

	if (fd >= 0)
		close(fd);
	write_text(path, "jwt.one\n");
	fake_reset();
	answer(0, 200, WEBID_OK);
	answer(1, 200, WEBID_OK);
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), 0);
	CHECK_STR(out.access_key, "ASIAWEB");
	aws_creds_release(&out);
	CHECK_STR(fake.req[0].body, "Action=AssumeRoleWithWebIdentity&RoleArn="
		  "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fp&RoleSessionName=pod&"
		  "WebIdentityToken=jwt.one&Version=2011-06-15");
	CHECK(fake.req[0].aws_sigv4 == NULL && fake.req[0].userpwd == NULL);
	/* Kubernetes rotated the token: the next fetch sends the new one. */
	write_text(path, "jwt.two");
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), 0);
	aws_creds_release(&out);
	CHECK(strstr(fake.req[1].body, "WebIdentityToken=jwt.two&") != NULL);
	write_text(path, "  \n");
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), -EACCES);
	CHECK(strstr(err, "is empty") != NULL);
	unlink(path);
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), -EACCES);
	CHECK(strstr(err, path) != NULL);
	CHECK_INT(fake.n, 2);
	fake_reset();
}

static void test_container(void)
{
	char path[] = "/tmp/connfs-ctok-XXXXXX";
	int fd = mkstemp(path);
	struct aws_node *n = NULL;
	struct aws_ctx c = ctx();
	struct aws_creds out;
	char err[300];

	if (fd >= 0)
		close(fd);
	write_text(path, "Bearer one\n");
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/id",
	       1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored", 1);
	CHECK_INT(aws_container_node(&n, err, sizeof(err)), 0);
	fake_reset();
	answer(0, 200, "{\"AccessKeyId\":\"ASIAC\",\"SecretAccessKey\":\"cs\","
	       "\"Token\":\"ct\",\"Expiration\":\"2030-01-01T00:00:00Z\"}");
	answer(1, 401, "{\"message\":\"bad token\"}");
	if (n) {
		CHECK_INT(aws_fetch(&c, n, &out, err, sizeof(err)), 0);
		CHECK_STR(out.session_token, "ct");
		CHECK_INT(out.expiration, 1893456000);
		aws_creds_release(&out);
		CHECK_STR(fake.req[0].method, "GET");
		CHECK_STR(fake.req[0].url,
			  "http://169.254.170.2/v2/credentials/id");
		CHECK_STR(http_req_get_header(&fake.req[0], "Authorization"),
			  "Bearer one");
		write_text(path, "Bearer two");
		CHECK_INT(aws_fetch(&c, n, &out, err, sizeof(err)), -EACCES);
		CHECK_STR(http_req_get_header(&fake.req[1], "Authorization"),
			  "Bearer two");
		CHECK(strstr(err, "HTTP 401") && !strstr(err, "Bearer"));
	}
	aws_node_free(n);
	unlink(path);
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	fake_reset();
}

static void test_imds(void)
{
	struct aws_node *n = NULL;
	struct aws_ctx c = ctx();
	struct aws_creds out;
	char err[300], region[64];

	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/", 1);
	CHECK_INT(aws_imds_node(&n), 0);
	fake_reset();
	answer(0, 200, "imds-session-token");
	answer(1, 200, "my-role\n");
	answer(2, 200, "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAI\","
	       "\"SecretAccessKey\":\"is\",\"Token\":\"it\","
	       "\"Expiration\":\"2030-01-01T00:00:00Z\"}");
	CHECK_INT(aws_fetch(&c, n, &out, err, sizeof(err)), 0);
	CHECK_STR(out.access_key, "ASIAI");
	aws_creds_release(&out);
	CHECK_INT(fake.n, 3);
	CHECK_STR(fake.req[0].method, "PUT");
	CHECK_STR(fake.req[0].url, "http://127.0.0.1:9/latest/api/token");
	CHECK_STR(http_req_get_header(&fake.req[0],
				      "X-aws-ec2-metadata-token-ttl-seconds"),
		  "21600");
	CHECK_STR(fake.req[1].url, "http://127.0.0.1:9/latest/meta-data/iam/"
		  "security-credentials/");
	CHECK_STR(fake.req[2].url, "http://127.0.0.1:9/latest/meta-data/iam/"
		  "security-credentials/my-role");
	for (int i = 1; i < 3; i++) {
		CHECK_STR(fake.req[i].method, "GET");
		CHECK_STR(http_req_get_header(&fake.req[i],
					      "X-aws-ec2-metadata-token"),
			  "imds-session-token");
	}
	CHECK_STR(n->role, "my-role");

	/* No role attached. */
	fake_reset();
	answer(0, 200, "tok");
	answer(1, 404, "");
	CHECK_INT(aws_fetch(&c, n, &out, err, sizeof(err)), -EACCES);
	/* No IMDS at all (a laptop). */
	fake_reset();
	fake.fail_with = -ETIMEDOUT;
	CHECK_INT(aws_fetch(&c, n, &out, err, sizeof(err)), -EIO);
	CHECK(strstr(err, "no answer within 1 s") != NULL);
	aws_node_free(n);

	fake_reset();
	answer(0, 200, "tok");
	answer(1, 200, "ap-southeast-2\n");
	unsetenv("AWS_EC2_METADATA_DISABLED");
	CHECK_INT(aws_imds_region(&c, region, sizeof(region)), 0);
	CHECK_STR(region, "ap-southeast-2");
	CHECK_STR(fake.req[1].url, "http://127.0.0.1:9/latest/meta-data/"
		  "placement/region");
	setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
	CHECK_INT(aws_imds_region(&c, region, sizeof(region)), -ENOENT);
	CHECK_INT(fake.n, 2);
	unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	fake_reset();
}

static char home[] = "/tmp/connfs-sso-XXXXXX";

static void sso_cache(const char *key, const char *token, const char *exp)
{
	char hex[41], path[300], doc[400];

	aws_sso_cache_name(key, hex);
	snprintf(path, sizeof(path), "%s/.aws", home);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/.aws/sso", home);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/.aws/sso/cache", home);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/.aws/sso/cache/%s.json", home, hex);
	snprintf(doc, sizeof(doc), "{\"startUrl\":\"https://corp/start\","
		 "\"accessToken\":\"%s\",\"expiresAt\":\"%s\"}", token, exp);
	write_text(path, doc);
}

static void test_sso(void)
{
	struct aws_node n = {
		.kind = AWS_SRC_SSO, .profile = (char *)"dev",
		.sso_session = (char *)"corp",
		.sso_start_url = (char *)"https://corp/start",
		.sso_region = (char *)"eu-west-1",
		.sso_account = (char *)"1111",
		.sso_role = (char *)"Read Only",
	};
	struct aws_ctx c = ctx();
	struct aws_creds out;
	char err[300];

	if (!mkdtemp(home))
		return;
	setenv("HOME", home, 1);
	fake_reset();
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), -EACCES);
	CHECK(strstr(err, "run `aws sso login --profile dev`") != NULL);
	sso_cache("corp", "old-token", "2001-01-01T00:00:00Z");
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), -EACCES);
	CHECK(strstr(err, "expired") && strstr(err, "aws sso login --profile "
						"dev"));
	CHECK(strstr(err, "old-token") == NULL);
	CHECK_INT(fake.n, 0);	/* an expired token is never sent */
	/* After `aws sso login`. */
	sso_cache("corp", "new-token", "2099-01-01T00:00:00Z");
	answer(0, 200, "{\"roleCredentials\":{\"accessKeyId\":\"ASIASSO\","
	       "\"secretAccessKey\":\"ss\",\"sessionToken\":\"st\","
	       "\"expiration\":1893456000000}}");
	answer(1, 401, "{\"message\":\"Session token not found or invalid\"}");
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), 0);
	CHECK_STR(out.access_key, "ASIASSO");
	CHECK_INT(out.expiration, 1893456000);
	aws_creds_release(&out);
	CHECK_STR(fake.req[0].method, "GET");
	CHECK_STR(fake.req[0].url, "https://portal.sso.eu-west-1.amazonaws.com"
		  "/federation/credentials?account_id=1111&role_name="
		  "Read%20Only");
	CHECK_STR(http_req_get_header(&fake.req[0], "x-amz-sso_bearer_token"),
		  "new-token");
	/* Revoked on the server side: the same hint. */
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), -EACCES);
	CHECK(strstr(err, "aws sso login --profile dev") != NULL);
	/* Legacy profiles: the cache is named after the start URL. */
	n.sso_session = NULL;
	sso_cache("https://corp/start", "legacy-token", "2099-01-01T00:00:00Z");
	c.sso_url = (char *)"http://127.0.0.1:9";
	answer(2, 200, "{\"roleCredentials\":{\"accessKeyId\":\"ASIAL\","
	       "\"secretAccessKey\":\"ls\",\"expiration\":1893456000000}}");
	CHECK_INT(aws_fetch(&c, &n, &out, err, sizeof(err)), 0);
	aws_creds_release(&out);
	CHECK_STR(http_req_get_header(&fake.req[2], "x-amz-sso_bearer_token"),
		  "legacy-token");
	CHECK(strncmp(fake.req[2].url, "http://127.0.0.1:9/federation/", 30)
	      == 0);
	fake_reset();
}

int main(void)
{
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	test_xml();
	test_sts_parse();
	test_assume_request();
	test_web_identity();
	test_container();
	test_imds();
	test_sso();
	fake_reset();
	http_set_transport(NULL, NULL);
	return harness_done("test_aws_sts");
}
