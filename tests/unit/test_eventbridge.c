/*
 * Unit tests for the EventBridge provider: configuration (credentials from
 * the environment and from AWS profile files, region and endpoint
 * precedence, filters), the request it builds (method, URL, exact JSON
 * body, headers, SigV4 settings, no secret outside userpwd), parsing of the
 * fixture pages under fixtures/ (the example page of the ListConnections
 * API reference, last and empty pages, malformed bodies) and error
 * classification. No network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"
#include "json.h"
#include "provider.h"

extern const struct provider provider_eventbridge;
static const struct provider *const P = &provider_eventbridge;

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define TOK "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
#define EP "http://127.0.0.1:4566"

static char tmpdir[] = "/tmp/connfs-eb-XXXXXX";
static char cred_path[256], conf_path[256];

/* --- helpers ------------------------------------------------------------ */

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	return fclose(f) || rc ? -1 : 0;
}

/* Points the AWS file variables at files that do not exist. */
static void clear_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGE", NULL,
	};
	char path[300];

	for (size_t i = 0; vars[i]; i++)
		unsetenv(vars[i]);
	/* Never ask a real 169.254.169.254. */
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	snprintf(path, sizeof(path), "%s/missing-credentials", tmpdir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	snprintf(path, sizeof(path), "%s/missing-config", tmpdir);
	setenv("AWS_CONFIG_FILE", path, 1);
}

static void env_creds(const char *token)
{
	clear_env();
	setenv("AWS_ACCESS_KEY_ID", AK, 1);
	setenv("AWS_SECRET_ACCESS_KEY", SK, 1);
	if (token)
		setenv("AWS_SESSION_TOKEN", token, 1);
}

static void use_profile_files(void)
{
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
	setenv("AWS_CONFIG_FILE", conf_path, 1);
}

static void *configure(struct sect *t, const char *base_url, char *err)
{
	void *st = NULL;
	int rc;

	err[0] = '\0';
	rc = P->configure(&t->s, base_url, &st, err);
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "configure: %s\n", err);
	return rc ? NULL : st;
}

/* Builds the first page (or the one after cursor) for a state. */
static int build(void *st, const char *cursor, struct http_req *req)
{
	struct page_req pr = { .cursor = cursor, .size = 100 };

	memset(req, 0, sizeof(*req));
	return P->build_list(st, &pr, req);
}

static bool leaks(const struct http_req *req, const char *secret)
{
	if (req->url && strstr(req->url, secret))
		return true;
	if (req->body && strstr(req->body, secret))
		return true;
	for (size_t i = 0; i < req->nheaders; i++)
		if (strstr(req->headers[i], secret))
			return true;
	return false;
}

static int parse(void *st, const char *fixture, const char *cursor,
		 struct page *pg, char *err)
{
	struct page_req pr = { .cursor = cursor, .size = 100 };
	struct http_resp r;
	int rc;

	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
	err[0] = '\0';
	resp_init(&r, 200, fixture);
	rc = P->parse_list(st, &pr, &r, pg, err, 256);
	http_resp_release(&r);
	return rc;
}

/* The fixture's Connections[i], printed, for "untouched object" checks. */
static char *fixture_obj(const char *fixture, int i, bool pretty)
{
	struct http_resp r;
	cJSON *root, *o;
	char *s;

	resp_init(&r, 200, fixture);
	root = json_parse(r.body, r.len);
	o = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(root, "Connections"), i);
	s = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
	cJSON_Delete(root);
	http_resp_release(&r);
	return s;
}

static void check_obj(const struct page *pg, const char *fixture, int i)
{
	for (int pretty = 0; pretty < 2; pretty++) {
		char *want = fixture_obj(fixture, i, pretty);
		char *got = pretty ? cJSON_Print(pg->v[i].obj) :
				     cJSON_PrintUnformatted(pg->v[i].obj);

		CHECK(want != NULL);
		CHECK_STR(got, want);
		free(want);
		free(got);
	}
}

/* --- configure ---------------------------------------------------------- */

static void test_interface(void)
{
	CHECK_STR(P->name, "eventbridge");
	CHECK(P->paging == PAGING_CURSOR);
	CHECK_INT(P->max_page, 100);
	CHECK(P->configure && P->release && P->build_list && P->parse_list &&
	      P->classify_error && P->source_url);
	CHECK(provider_find("eventbridge") == P);
	CHECK(strstr(P->env_secret, "AWS_ACCESS_KEY_ID") != NULL);
}

static void test_env_creds(void)
{
	struct sect t;
	struct http_req req;
	char err[CONF_ERRLEN];
	void *st;

	/* Static keys from the environment, region from AWS_REGION. */
	env_creds(NULL);
	setenv("AWS_REGION", "eu-west-1", 1);
	sect_init(&t, "eb", NULL, 7);
	st = configure(&t, NULL, err);
	if (!st)
		return;
	CHECK_STR(P->source_url(st), "https://events.eu-west-1.amazonaws.com");
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(req.userpwd, AK ":" SK);
	CHECK_STR(req.aws_sigv4, "aws:amz:eu-west-1:events");
	CHECK(http_req_get_header(&req, "X-Amz-Security-Token") == NULL);
	CHECK_INT(req.nheaders, 2);
	CHECK(!leaks(&req, SK));
	http_req_release(&req);
	P->release(st);

	/* With a session token: the header is set (before signing). */
	env_creds(TOK);
	setenv("AWS_REGION", "us-east-1", 1);
	st = configure(&t, NULL, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(http_req_get_header(&req, "X-Amz-Security-Token"), TOK);
	CHECK_INT(req.nheaders, 3);
	CHECK_STR(req.userpwd, AK ":" SK);
	CHECK(!leaks(&req, SK));
	http_req_release(&req);
	P->release(st);

	/* The legacy alias AWS_SECURITY_TOKEN works too. */
	env_creds(NULL);
	setenv("AWS_SECURITY_TOKEN", "legacy-token", 1);
	setenv("AWS_REGION", "us-east-1", 1);
	st = configure(&t, NULL, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(http_req_get_header(&req, "X-Amz-Security-Token"),
		  "legacy-token");
	http_req_release(&req);
	P->release(st);
}

static void test_profile_creds(void)
{
	struct sect t;
	struct http_req req;
	char err[CONF_ERRLEN];
	void *st;

	/* profile= names the profile: its keys win over the environment. */
	env_creds(TOK);
	use_profile_files();
	sect_init(&t, "eb", "/etc/connfs.conf", 7);
	sect_set(&t, "profile", "prod");
	st = configure(&t, NULL, err);
	CHECK(sect_kv(&t, "profile")->used);
	if (!st)
		return;
	CHECK_STR(P->source_url(st),
		  "https://events.eu-central-1.amazonaws.com");
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(req.userpwd, "AKIAPROD:prodsecret");
	CHECK_STR(req.aws_sigv4, "aws:amz:eu-central-1:events");
	CHECK_STR(http_req_get_header(&req, "X-Amz-Security-Token"),
		  "prodtoken");
	CHECK(!leaks(&req, "prodsecret"));
	http_req_release(&req);
	P->release(st);

	/* AWS_PROFILE selects it when the environment has no keys. */
	clear_env();
	use_profile_files();
	setenv("AWS_PROFILE", "prod", 1);
	sect_init(&t, "eb", NULL, 7);
	st = configure(&t, NULL, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(req.userpwd, "AKIAPROD:prodsecret");
	CHECK_STR(req.aws_sigv4, "aws:amz:eu-central-1:events");
	http_req_release(&req);
	P->release(st);

	/* The default profile: region from [default] of the config file. */
	clear_env();
	use_profile_files();
	st = configure(&t, NULL, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(req.userpwd, "AKIADEFAULT:defaultsecret");
	CHECK_STR(req.aws_sigv4, "aws:amz:us-west-2:events");
	http_req_release(&req);
	P->release(st);

	/*
	 * Regression (fixed): environment keys without a session token pick up the
	 * aws_session_token of the default profile (the profile files were
	 * merged into the environment credentials). The request
	 * then carries a token that belongs to other keys and AWS refuses it.
	 */
	env_creds(NULL);
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
	st = configure(&t, NULL, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(req.userpwd, AK ":" SK);
	/* Regression (fixed): want no X-Amz-Security-Token, got "defaulttoken" */
	CHECK(http_req_get_header(&req, "X-Amz-Security-Token") == NULL);
	http_req_release(&req);
	P->release(st);
}

static void test_region_precedence(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	void *st;

	/* profile prod says eu-central-1; each step up overrides it. */
	clear_env();
	use_profile_files();
	setenv("AWS_PROFILE", "prod", 1);
	setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
	sect_init(&t, "eb", NULL, 7);
	st = configure(&t, NULL, err);
	if (st)
		CHECK_STR(P->source_url(st),
			  "https://events.ap-south-1.amazonaws.com");
	P->release(st);

	setenv("AWS_REGION", "us-east-2", 1);
	st = configure(&t, NULL, err);
	if (st)
		CHECK_STR(P->source_url(st),
			  "https://events.us-east-2.amazonaws.com");
	P->release(st);

	/* An empty AWS_REGION falls through to AWS_DEFAULT_REGION. */
	setenv("AWS_REGION", "", 1);
	st = configure(&t, NULL, err);
	if (st)
		CHECK_STR(P->source_url(st),
			  "https://events.ap-south-1.amazonaws.com");
	P->release(st);

	setenv("AWS_REGION", "us-east-2", 1);
	sect_set(&t, "region", "sa-east-1");
	st = configure(&t, NULL, err);
	CHECK(sect_kv(&t, "region")->used);
	if (st) {
		struct http_req req;

		CHECK_STR(P->source_url(st),
			  "https://events.sa-east-1.amazonaws.com");
		CHECK_INT(build(st, NULL, &req), 0);
		CHECK_STR(req.aws_sigv4, "aws:amz:sa-east-1:events");
		http_req_release(&req);
	}
	P->release(st);

	/* A region that is not a region name is refused, naming the key. */
	sect_init(&t, "eb", "/etc/connfs.conf", 7);
	sect_set(&t, "region", "EU West/1");
	st = NULL;
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "/etc/connfs.conf:8: [eb] region:") == err);
}

static void test_endpoint_precedence(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	void *st;

	env_creds(NULL);
	setenv("AWS_REGION", "eu-west-1", 1);
	sect_init(&t, "eb", NULL, 7);

	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/", 1);
	st = configure(&t, NULL, err);
	if (st)
		CHECK_STR(P->source_url(st), "http://127.0.0.1:9000");
	P->release(st);

	setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://localhost:4566", 1);
	st = configure(&t, NULL, err);
	if (st)
		CHECK_STR(P->source_url(st), "http://localhost:4566");
	P->release(st);

	/* url= (validated by remote_new, handed in as base_url) wins. */
	st = configure(&t, EP, err);
	if (st) {
		struct http_req req;

		CHECK_STR(P->source_url(st), EP);
		CHECK_INT(build(st, NULL, &req), 0);
		CHECK_STR(req.url, EP "/");
		/* The signing region stays the configured one. */
		CHECK_STR(req.aws_sigv4, "aws:amz:eu-west-1:events");
		http_req_release(&req);
	}
	P->release(st);

	/*
	 * Regression (fixed): eb_endpoint() always uses the "aws" partition's DNS suffix;
	 * aws-cn regions are under amazonaws.com.cn (AWS service endpoints).
	 * Want https://events.cn-north-1.amazonaws.com.cn, got ….com.
	 */
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_EVENTBRIDGE");
	setenv("AWS_REGION", "cn-north-1", 1);
	st = configure(&t, NULL, err);
	if (st)
		CHECK_STR(P->source_url(st),
			  "https://events.cn-north-1.amazonaws.com.cn");
	P->release(st);
	setenv("AWS_REGION", "eu-west-1", 1);

	/* Plain http:// to another host from the environment: refused. */
	setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://events.example.com", 1);
	st = NULL;
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "plain http://") != NULL);
	clear_env();
}

static void test_missing(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	void *st = NULL;

	/* No credentials anywhere: the message names what to set. */
	clear_env();
	setenv("AWS_REGION", "us-east-1", 1);
	sect_init(&t, "eb", NULL, 7);
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "no AWS credentials") != NULL);
	CHECK(strstr(err, "AWS_ACCESS_KEY_ID") != NULL);
	CHECK(strstr(err, "AWS_SECRET_ACCESS_KEY") != NULL);
	CHECK(strstr(err, "[eb]") == err);

	/* A key without its secret. */
	setenv("AWS_ACCESS_KEY_ID", AK, 1);
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "AWS_SECRET_ACCESS_KEY") != NULL);
	CHECK(strstr(err, AK) == NULL);

	/* A named profile that does not exist. */
	clear_env();
	use_profile_files();
	sect_init(&t, "eb", "/etc/connfs.conf", 7);
	sect_set(&t, "profile", "nosuch");
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "/etc/connfs.conf:8: [eb] profile:") == err);
	CHECK(strstr(err, "nosuch") != NULL);

	/* Keys but no region anywhere. */
	env_creds(NULL);
	sect_init(&t, "eb", NULL, 7);
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "[eb] region:") == err);
	CHECK(strstr(err, "no AWS region") != NULL);
	CHECK(strstr(err, "AWS_REGION") != NULL);
	CHECK(strstr(err, "AWS_DEFAULT_REGION") != NULL);
	CHECK(strstr(err, SK) == NULL);
}

static void expect_bad_filter(const char *key, const char *value)
{
	struct sect t;
	char err[CONF_ERRLEN] = "";
	char want[64];
	void *st = NULL;

	env_creds(NULL);
	setenv("AWS_REGION", "us-east-1", 1);
	sect_init(&t, "eb", "/etc/connfs.conf", 7);
	sect_set(&t, key, value);
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	snprintf(want, sizeof(want), "/etc/connfs.conf:8: [eb] %s:", key);
	if (strstr(err, want) != err)
		fprintf(stderr, "%s=%s: err \"%s\"\n", key, value, err);
	CHECK(strstr(err, want) == err);
}

static void test_filters(void)
{
	char long_prefix[66];
	struct sect t;
	char err[CONF_ERRLEN];
	void *st;

	memset(long_prefix, 'a', 65);
	long_prefix[65] = '\0';
	expect_bad_filter("name_prefix", "bad/prefix");
	expect_bad_filter("name_prefix", "has space");
	expect_bad_filter("name_prefix", "");
	expect_bad_filter("name_prefix", long_prefix);
	expect_bad_filter("state", "authorized");
	expect_bad_filter("state", "");
	expect_bad_filter("state", "AUTHORIZED;DROP");

	/* 64 characters of the allowed set are fine. */
	long_prefix[64] = '\0';
	long_prefix[0] = '.';
	long_prefix[1] = '-';
	long_prefix[2] = '_';
	long_prefix[3] = 'Z';
	long_prefix[4] = '9';
	sect_init(&t, "eb", NULL, 7);
	sect_set(&t, "name_prefix", long_prefix);
	sect_set(&t, "state", "FAILED_CONNECTIVITY");
	st = configure(&t, NULL, err);
	CHECK(sect_kv(&t, "name_prefix")->used);
	CHECK(sect_kv(&t, "state")->used);
	P->release(st);
	clear_env();
}

/* --- build_list --------------------------------------------------------- */

static void test_build(void)
{
	struct sect t;
	struct http_req req;
	char err[CONF_ERRLEN];
	void *st;

	env_creds(NULL);
	setenv("AWS_REGION", "us-east-1", 1);
	sect_init(&t, "eb", NULL, 7);
	st = configure(&t, EP, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(req.method, "POST");
	CHECK_STR(req.url, EP "/");
	CHECK_STR(req.body, "{\"Limit\":100}");
	CHECK_INT(req.body_len, strlen("{\"Limit\":100}"));
	CHECK_STR(http_req_get_header(&req, "Content-Type"),
		  "application/x-amz-json-1.1");
	CHECK_STR(http_req_get_header(&req, "X-Amz-Target"),
		  "AWSEvents.ListConnections");
	CHECK(http_req_get_header(&req, "Authorization") == NULL);
	CHECK(http_req_get_header(&req, "X-Amz-Security-Token") == NULL);
	CHECK_INT(req.nheaders, 2);
	CHECK_STR(req.aws_sigv4, "aws:amz:us-east-1:events");
	CHECK_STR(req.userpwd, AK ":" SK);
	CHECK(!leaks(&req, SK));
	http_req_release(&req);

	/* The page size follows the pager's request. */
	{
		struct page_req pr = { .size = 7 };

		memset(&req, 0, sizeof(req));
		CHECK_INT(P->build_list(st, &pr, &req), 0);
		CHECK_STR(req.body, "{\"Limit\":7}");
		http_req_release(&req);
	}

	/* The cursor goes into the body verbatim (opaque base64). */
	CHECK_INT(build(st, "AAEAAb1v+/Zm==", &req), 0);
	CHECK_STR(req.body, "{\"Limit\":100,\"NextToken\":\"AAEAAb1v+/Zm==\"}");
	CHECK_STR(req.url, EP "/");
	http_req_release(&req);
	P->release(st);

	/* Filters, kept unchanged on every page (ListConnections wants the
	 * same parameters with each NextToken). */
	sect_set(&t, "name_prefix", "billing");
	sect_set(&t, "state", "AUTHORIZED");
	st = configure(&t, EP, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(req.body, "{\"Limit\":100,\"NamePrefix\":\"billing\","
		  "\"ConnectionState\":\"AUTHORIZED\"}");
	http_req_release(&req);
	CHECK_INT(build(st, "tok-2", &req), 0);
	CHECK_STR(req.body, "{\"Limit\":100,\"NamePrefix\":\"billing\","
		  "\"ConnectionState\":\"AUTHORIZED\",\"NextToken\":"
		  "\"tok-2\"}");
	http_req_release(&req);
	P->release(st);

	/* A cursor with quotes cannot break out of the JSON string. */
	sect_init(&t, "eb", NULL, 7);
	st = configure(&t, EP, err);
	if (!st)
		return;
	CHECK_INT(build(st, "a\"b\\c", &req), 0);
	CHECK_STR(req.body, "{\"Limit\":100,\"NextToken\":\"a\\\"b\\\\c\"}");
	http_req_release(&req);
	P->release(st);

	/* Session token: header present, secret still only in userpwd. */
	env_creds(TOK);
	setenv("AWS_REGION", "us-east-1", 1);
	st = configure(&t, EP, err);
	if (!st)
		return;
	CHECK_INT(build(st, NULL, &req), 0);
	CHECK_STR(http_req_get_header(&req, "X-Amz-Security-Token"), TOK);
	CHECK_INT(req.nheaders, 3);
	CHECK(!leaks(&req, SK));
	http_req_release(&req);
	P->release(st);
	clear_env();
}

/* --- parse_list --------------------------------------------------------- */

static void *parse_state(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	void *st;

	env_creds(NULL);
	setenv("AWS_REGION", "us-east-1", 1);
	sect_init(&t, "eb", NULL, 7);
	st = configure(&t, EP, err);
	clear_env();
	return st;
}

static void test_parse_example(void *st)
{
	char err[256];
	struct page pg;

	CHECK_INT(parse(st, "eventbridge_page.json", NULL, &pg, err), 0);
	CHECK_INT(pg.n, 2);
	CHECK_STR(pg.next, "AAEAAb1vZXhhbXBsZS1vcGFxdWUtdG9rZW4tMg==");
	if (pg.n == 2) {
		CHECK_STR(pg.v[0].id, "arn:aws:events:us-east-1:210987654321:"
			  "connection/billing-stripe/"
			  "3f0c2a51-7d4e-4b8e-9c61-0f2b8e7d5a10");
		CHECK_STR(pg.v[0].name[0], "billing-stripe");
		CHECK(pg.v[0].name[1] == NULL);
		CHECK_INT(pg.v[0].mtime.tv_sec, 1709215200);
		/*
		 * Regression (fixed): json_time_epoch() (providers/json.c) keeps the binary
		 * error of the double: 1709215200.512 gives 512000084 ns,
		 * want 512000000 (round to what a double can carry, e.g. µs).
		 */
		CHECK_INT(pg.v[0].mtime.tv_nsec, 512000000);
		CHECK_STR(pg.v[1].name[0], "billing.zuora_v2");
		CHECK_STR(pg.v[1].id, "arn:aws:events:us-east-1:210987654321:"
			  "connection/billing.zuora_v2/"
			  "a9d4e1b0-2c77-4f1f-8e53-6b1f0c9d2e77");
		/* LastModifiedTime wins over CreationTime 1.6901184E9. */
		CHECK_INT(pg.v[1].mtime.tv_sec, 1712003600);
		CHECK_INT(pg.v[1].mtime.tv_nsec, 0);
		check_obj(&pg, "eventbridge_page.json", 0);
		check_obj(&pg, "eventbridge_page.json", 1);
		/* Exponent-form numbers survive as numbers, digits kept. */
		{
			const cJSON *ct = cJSON_GetObjectItemCaseSensitive(
				pg.v[1].obj, "CreationTime");
			double d = 0;

			CHECK(json_number(ct, &d));
			CHECK(d == 1.6901184E9);
			CHECK(cJSON_IsRaw(ct) &&
			      strcmp(ct->valuestring, "1.6901184E9") == 0);
		}
	}
	page_release(&pg);
}

static void test_parse_last(void *st)
{
	char err[256];
	struct page pg;

	CHECK_INT(parse(st, "eventbridge_last.json", "tok", &pg, err), 0);
	CHECK_INT(pg.n, 3);
	CHECK(pg.next == NULL);
	if (pg.n == 3) {
		/* Only CreationTime, in exponent form. */
		CHECK_STR(pg.v[0].name[0], "ops-pagerduty");
		CHECK_INT(pg.v[0].mtime.tv_sec, 1690118400);
		CHECK_INT(pg.v[0].mtime.tv_nsec, 0);
		/* Name but no ARN: the name is the id; no time at all: 0. */
		CHECK_STR(pg.v[1].id, "name-only");
		CHECK_STR(pg.v[1].name[0], "name-only");
		CHECK_INT(pg.v[1].mtime.tv_sec, 0);
		/* ARN but no Name: the ARN is both. */
		CHECK_STR(pg.v[2].id, "arn:aws:events:us-east-1:210987654321:"
			  "connection/arn-only/"
			  "11111111-2222-3333-4444-555555555555");
		CHECK_STR(pg.v[2].name[0], pg.v[2].id);
		CHECK_INT(pg.v[2].mtime.tv_sec, 1712003600);
		CHECK_INT(pg.v[2].mtime.tv_nsec, 250000000);
		for (int i = 0; i < 3; i++)
			check_obj(&pg, "eventbridge_last.json", i);
	}
	page_release(&pg);
}

static void test_parse_empty(void *st)
{
	char err[256];
	struct page pg;

	/* No Connections at all is not a listing: never an empty one. */
	CHECK_INT(parse(st, "eventbridge_empty.json", NULL, &pg, err),
		  -EPROTO);
	CHECK(strstr(err, "not the documented shape") != NULL);
	page_release(&pg);

	CHECK_INT(parse(st, "eventbridge_empty_list.json", NULL, &pg, err), 0);
	CHECK_INT(pg.n, 0);
	CHECK(pg.next == NULL);
	page_release(&pg);

	/* NextToken "" is the end, as is null. */
	CHECK_INT(parse(st, "eventbridge_empty_token.json", "x", &pg, err), 0);
	CHECK_INT(pg.n, 1);
	CHECK(pg.next == NULL);
	page_release(&pg);

	CHECK_INT(parse(st, "eventbridge_null_token.json", "x", &pg, err), 0);
	CHECK_INT(pg.n, 0);
	CHECK(pg.next == NULL);
	page_release(&pg);
}

static void expect_eproto(void *st, const char *fixture, const char *msg)
{
	char err[256];
	struct page pg;

	CHECK_INT(parse(st, fixture, NULL, &pg, err), -EPROTO);
	CHECK(pg.next == NULL);
	if (!strstr(err, msg))
		fprintf(stderr, "%s: err \"%s\", want \"%s\"\n", fixture, err,
			msg);
	CHECK(strstr(err, msg) != NULL);
	page_release(&pg);
}

static void test_parse_failures(void *st)
{
	struct page_req pr = { .size = 100 };
	struct http_resp r;
	char err[256];
	struct page pg = { .total = -1 };

	expect_eproto(st, "eventbridge_bad_array.json", "eventbridge:");
	expect_eproto(st, "eventbridge_bad_list.json", "eventbridge:");
	expect_eproto(st, "eventbridge_bad_token.json", "eventbridge:");
	expect_eproto(st, "eventbridge_bad_json.json", "eventbridge:");
	/*
	 * Regression: eb_entry() used to return -EPROTO for an entry without
	 * Name and ConnectionArn (or not an object) without freeing the
	 * entry already detached from the array; SAN=1 reports any leak.
	 */
	expect_eproto(st, "eventbridge_bad_noname.json",
		      "eventbridge: connection 1 has neither Name nor "
		      "ConnectionArn");
	expect_eproto(st, "eventbridge_bad_notobj.json",
		      "eventbridge: connection 0 has neither");

	/* An empty body and a bare string are not objects either. */
	resp_init(&r, 200, NULL);
	CHECK_INT(P->parse_list(st, &pr, &r, &pg, err, sizeof(err)), -EPROTO);
	CHECK_INT(pg.n, 0);
	resp_body(&r, "\"Connections\"");
	CHECK_INT(P->parse_list(st, &pr, &r, &pg, err, sizeof(err)), -EPROTO);
	CHECK_INT(pg.n, 0);
	/* Trailing garbage after the object. */
	resp_body(&r, "{\"Connections\":[]} x");
	CHECK_INT(P->parse_list(st, &pr, &r, &pg, err, sizeof(err)), -EPROTO);
	http_resp_release(&r);
	page_release(&pg);
}

/* --- errors ------------------------------------------------------------- */

/* Fills e as the pager's generic classifier would, then refines it. */
static void classify(struct http_resp *r, const char *cursor,
		     struct api_error *e)
{
	struct page_req pr = { .cursor = cursor, .size = 100 };

	memset(e, 0, sizeof(*e));
	e->status = r->status;
	e->retry_after = r->retry_after;
	if (r->status == 429)
		e->cls = API_THROTTLE;
	else if (r->status >= 500)
		e->cls = API_RETRY;
	else if (r->status == 401 || r->status == 403)
		e->cls = API_AUTH;
	else
		e->cls = API_FATAL;
	P->classify_error(NULL, &pr, r, e);
}

static void test_classify_throttle(void)
{
	struct http_resp r;
	struct api_error e;

	/* EventBridge throttles with HTTP 400. */
	resp_init(&r, 400, "eventbridge_err_throttle.json");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK_STR(e.code, "ThrottlingException");
	CHECK_STR(e.msg, "Rate exceeded");
	CHECK(e.retry_after < 0);
	http_resp_release(&r);

	resp_init(&r, 400, "eventbridge_err_throttle_ns.json");
	classify(&r, "tok", &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK_STR(e.code, "ThrottlingException");
	http_resp_release(&r);

	/* Other SDK throttling codes. */
	resp_init(&r, 400, NULL);
	resp_body(&r, "{\"__type\":\"TooManyRequestsException\"}");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_THROTTLE);
	http_resp_release(&r);

	/* x-amz-retry-after is in milliseconds. */
	resp_init(&r, 400, "eventbridge_err_throttle.json");
	resp_header(&r, "x-amz-retry-after", "1500");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == 1.5);
	http_resp_release(&r);

	/* Retry-After (parsed by http_do) is kept without the AWS header. */
	resp_init(&r, 429, NULL);
	r.retry_after = 3;
	classify(&r, NULL, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == 3);
	CHECK_STR(e.code, "");
	http_resp_release(&r);

	/*
	 * Regression: botocore strips ":…" before "…#" (parsers.py); with a
	 * '#' inside the ":" suffix eb_code() keeps the wrong part.
	 */
	resp_init(&r, 400, NULL);
	resp_body(&r, "{\"__type\":\"aws#ThrottlingException:http://x/#y\"}");
	classify(&r, NULL, &e);
	CHECK_STR(e.code, "ThrottlingException");
	http_resp_release(&r);
}

static void test_classify_other(void)
{
	struct http_resp r;
	struct api_error e;

	/* InvalidToken restarts only a walk that sent a cursor. */
	resp_init(&r, 400, "eventbridge_err_token.json");
	classify(&r, "AAEAAb1v", &e);
	CHECK(e.cls == API_RESTART);
	CHECK_STR(e.code, "InvalidToken");
	CHECK_STR(e.msg, "The NextToken has expired");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_FATAL);
	http_resp_release(&r);

	resp_init(&r, 400, NULL);
	resp_body(&r, "{\"__type\":\"ValidationException\",\"message\":"
		  "\"Invalid NextToken\"}");
	classify(&r, "AAEAAb1v", &e);
	CHECK(e.cls == API_RESTART);
	classify(&r, NULL, &e);
	CHECK(e.cls == API_FATAL);
	http_resp_release(&r);

	resp_init(&r, 403, "eventbridge_err_403.json");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.code, "UnrecognizedClientException");
	CHECK_STR(e.msg, "The security token included in the request is "
		  "invalid.");
	http_resp_release(&r);

	/* AccessDeniedException comes as 400: still an auth failure. */
	resp_init(&r, 400, NULL);
	resp_body(&r, "{\"__type\":\"AccessDeniedException\"}");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_AUTH);
	http_resp_release(&r);

	/* `Message` (capital M) is accepted and escaped. */
	resp_init(&r, 500, "eventbridge_err_500.json");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.code, "InternalException");
	CHECK_STR(e.msg, "Internal error\\x0aretry later");
	http_resp_release(&r);

	/* Not JSON: the raw text, control characters escaped. */
	resp_init(&r, 502, NULL);
	resp_body(&r, "<html>Bad\tGateway\x1b[0m</html>");
	classify(&r, NULL, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.code, "");
	CHECK_STR(e.msg, "<html>Bad\\x09Gateway\\x1b[0m</html>");
	http_resp_release(&r);

	/* An unknown 400 stays fatal. */
	resp_init(&r, 400, NULL);
	resp_body(&r, "{\"__type\":\"UnknownOperationException\"}");
	classify(&r, "tok", &e);
	CHECK(e.cls == API_FATAL);
	CHECK_STR(e.code, "UnknownOperationException");
	http_resp_release(&r);

	/* No body at all: nothing to add, nothing to crash on. */
	resp_init(&r, 503, NULL);
	classify(&r, NULL, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.msg, "");
	http_resp_release(&r);
}

/* --- fixture files for profiles ----------------------------------------- */

static int setup_files(void)
{
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(cred_path, sizeof(cred_path), "%s/credentials", tmpdir);
	snprintf(conf_path, sizeof(conf_path), "%s/config", tmpdir);
	if (write_file(cred_path,
		       "# shared credentials\n"
		       "[default]\n"
		       "aws_access_key_id = AKIADEFAULT\n"
		       "aws_secret_access_key = defaultsecret\n"
		       "aws_session_token = defaulttoken\n"
		       "\n"
		       "[prod]\n"
		       "aws_access_key_id=AKIAPROD\n"
		       "aws_secret_access_key = prodsecret  \n"
		       "aws_session_token = prodtoken\n"))
		return -1;
	return write_file(conf_path,
			  "[default]\n"
			  "region = us-west-2\n"
			  "[profile prod]\n"
			  "region = eu-central-1\n"
			  "output = json\n");
}

static void cleanup_files(void)
{
	unlink(cred_path);
	unlink(conf_path);
	rmdir(tmpdir);
}

int main(void)
{
	void *st;

	if (setup_files()) {
		perror("cannot create the AWS profile files");
		return 1;
	}
	test_interface();
	test_env_creds();
	test_profile_creds();
	test_region_precedence();
	test_endpoint_precedence();
	test_missing();
	test_filters();
	test_build();
	st = parse_state();
	test_parse_example(st);
	test_parse_last(st);
	test_parse_empty(st);
	test_parse_failures(st);
	P->release(st);
	test_classify_throttle();
	test_classify_other();
	cleanup_files();
	return harness_done("test_eventbridge");
}
