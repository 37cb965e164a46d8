/*
 * Unit tests for the Nango provider: configuration (URL sources, secret key,
 * integration/search/tags.* filters and their validation), the request it
 * builds (exact URL and query order, Authorization present, Content-Type
 * absent), parsing of the fixture pages under fixtures/ (ids, name parts,
 * mtimes, more, the untouched object), error classification and rate-limit
 * headers. No network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "harness.h"
#include "json.h"
#include "provider.h"

extern const struct provider provider_nango;
static const struct provider *const P = &provider_nango;

#define DEFAULT_LIST "https://api.nango.dev/connections"
#define KEY "5f0c7a52-8f8e-4d2a-9d51-3a1f6c0e2b7d"

/* --- helpers ------------------------------------------------------------ */


static void clear_env(void)
{
	unsetenv("NANGO_HOSTPORT");
	unsetenv("NANGO_SECRET_KEY");
}

static void *configure(struct sect *t, const char *url, char *err, int want)
{
	void *st = NULL;
	int rc;

	err[0] = '\0';
	rc = P->configure(&t->s, url, &st, err);
	CHECK_INT(rc, want);
	if (rc && !want)
		fprintf(stderr, "configure: %s\n", err);
	if (rc)
		CHECK(st == NULL);
	return st;
}

static void *configure_plain(void)
{
	struct sect t;
	char err[CONF_ERRLEN];

	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	return configure(&t, NULL, err, 0);
}

/* Builds page `index` of `size` and returns the URL (caller frees). */
static char *url_of(void *st, unsigned long index, unsigned size)
{
	struct page_req pr = { .index = index, .size = size };
	struct http_req req = { 0 };
	char *url = NULL;

	if (st && P->build_list(st, &pr, &req) == 0)
		url = strdup(req.url);
	http_req_release(&req);
	return url;
}

static char *fixture_obj(const char *fixture, int i)
{
	struct http_resp r;
	cJSON *root;
	char *s;

	resp_init(&r, 200, fixture);
	root = json_parse(r.body, r.len);
	s = cJSON_PrintUnformatted(cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(root, "connections"), i));
	cJSON_Delete(root);
	http_resp_release(&r);
	return s;
}

static void check_untouched(const struct page *pg, const char *fixture)
{
	for (size_t i = 0; i < pg->n; i++) {
		char *want = fixture_obj(fixture, (int)i);
		char *got = cJSON_PrintUnformatted(pg->v[i].obj);

		CHECK_STR(got, want);
		free(want);
		free(got);
	}
}

static int parse(void *st, const char *fixture, unsigned long index,
		 unsigned size, struct page *pg, char *err)
{
	struct page_req pr = { .index = index, .size = size };
	struct http_resp r;
	int rc;

	memset(pg, 0, sizeof(*pg));
	pg->total = 42;
	err[0] = '\0';
	resp_init(&r, 200, fixture);
	rc = P->parse_list(st, &pr, &r, pg, err, 256);
	http_resp_release(&r);
	return rc;
}

/* --- configure ---------------------------------------------------------- */

static void test_interface(void)
{
	CHECK_STR(P->name, "nango");
	CHECK(P->paging == PAGING_INDEX);
	CHECK_INT(P->max_page, 2000);
	CHECK(P->rate == 3);
	CHECK_INT(P->burst, 20);
	CHECK_STR(P->env_secret, "NANGO_SECRET_KEY");
	CHECK(P->begin_walk && P->rate_info && P->source_url);
	CHECK(provider_find("nango") == P);
}

static void test_configure_url(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	void *st;

	clear_env();
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	st = configure(&t, NULL, err, 0);
	if (st)
		CHECK_STR(P->source_url(st), DEFAULT_LIST);
	P->release(st);

	setenv("NANGO_HOSTPORT", "http://localhost:3003/", 1);
	st = configure(&t, NULL, err, 0);
	if (st)
		CHECK_STR(P->source_url(st),
			  "http://localhost:3003/connections");
	P->release(st);

	/* url= wins over NANGO_HOSTPORT. */
	st = configure(&t, "https://nango.internal.example", err, 0);
	if (st)
		CHECK_STR(P->source_url(st),
			  "https://nango.internal.example/connections");
	P->release(st);

	setenv("NANGO_HOSTPORT", "http://nango.example.com:3003", 1);
	configure(&t, NULL, err, -EINVAL);
	CHECK(strstr(err, "plain http://") != NULL);
	clear_env();
}

static void test_configure_token(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	struct http_req req = { 0 };
	struct page_req pr = { .index = 0, .size = 1 };
	void *st;

	clear_env();
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	configure(&t, NULL, err, -EINVAL);
	CHECK(strstr(err, "NANGO_SECRET_KEY") != NULL);

	setenv("NANGO_SECRET_KEY", "env-secret", 1);
	st = configure(&t, NULL, err, 0);
	if (st && P->build_list(st, &pr, &req) == 0)
		CHECK_STR(http_req_get_header(&req, "Authorization"),
			  "Bearer env-secret");
	http_req_release(&req);
	P->release(st);

	/* token_command output, re-run by begin_walk. */
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token_command", "printf 'cmd-secret\\n'");
	st = configure(&t, NULL, err, 0);
	if (st) {
		CHECK_INT(P->begin_walk(st, err, 256), 0);
		if (P->build_list(st, &pr, &req) == 0)
			CHECK_STR(http_req_get_header(&req, "Authorization"),
				  "Bearer cmd-secret");
	}
	http_req_release(&req);
	P->release(st);

	/* Two sources at once is an error from secret_configure. */
	sect_set(&t, "token", KEY);
	configure(&t, NULL, err, -EINVAL);
	CHECK(strstr(err, "only one of") != NULL);
	CHECK(strstr(err, KEY) == NULL);
	clear_env();
}

static void test_configure_filters(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	void *st;

	clear_env();
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	sect_set(&t, "integration", "hubspot-prod,hubspot-sandbox");
	sect_set(&t, "tags.Organization_ID", "org-77");
	sect_set(&t, "tags.end_user.email", "ops@acme.example");
	sect_set(&t, "search", "acme/eu");
	sect_set(&t, "colour", "blue");
	st = configure(&t, NULL, err, 0);
	CHECK(sect_kv(&t, "integration")->used);
	CHECK(sect_kv(&t, "tags.Organization_ID")->used);
	CHECK(sect_kv(&t, "tags.end_user.email")->used);
	CHECK(sect_kv(&t, "search")->used);
	CHECK(!sect_kv(&t, "colour")->used);
	P->release(st);
}

static void expect_bad(const char *key, const char *value, const char *msg)
{
	struct sect t;
	char err[CONF_ERRLEN];

	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	sect_set(&t, key, value);
	configure(&t, NULL, err, -EINVAL);
	if (!strstr(err, msg))
		fprintf(stderr, "%s=%s: err \"%s\", want \"%s\"\n", key,
			value, err, msg);
	CHECK(strstr(err, msg) != NULL);
}

static void test_configure_invalid(void)
{
	struct sect t;
	char err[CONF_ERRLEN], keys[11][16];

	clear_env();
	expect_bad("tags.123invalid", "x",
		   "/etc/connfs.conf:12: [nango] tags.123invalid: '123invalid'"
		   " is not a valid tag key");
	expect_bad("tags.", "x", "is not a valid tag key");
	expect_bad("tags.a b", "x", "is not a valid tag key");
	expect_bad("tags.a[b]", "x", "is not a valid tag key");
	/* 65 characters: one too many. */
	expect_bad("tags.a2345678901234567890123456789012345678901234567890"
		   "123456789012345", "x", "is not a valid tag key");
	expect_bad("tags.org", "", "must be 1-255 characters");
	expect_bad("search", "", "[nango] search: must be 1-255");
	expect_bad("integration", "", "[nango] integration: must be 1-255");

	/* 64 characters is the longest key allowed. */
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	sect_set(&t, "tags.a234567890123456789012345678901234567890123456789"
		 "012345678901234", "x");
	P->release(configure(&t, NULL, err, 0));

	/* Keys are lower-cased, so these two are the same tag. */
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	sect_set(&t, "tags.Org", "a");
	sect_set(&t, "tags.org", "b");
	configure(&t, NULL, err, -EINVAL);
	CHECK(strstr(err, "given twice") != NULL);

	/* At most 10 tags. */
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	for (int i = 0; i < 11; i++) {
		snprintf(keys[i], sizeof(keys[i]), "tags.k%d", i);
		sect_set(&t, keys[i], "v");
	}
	configure(&t, NULL, err, -EINVAL);
	CHECK(strstr(err, "tags.k10: at most 10 tags") != NULL);
	t.s.nkv = 11;	/* token + 10 tags */
	P->release(configure(&t, NULL, err, 0));
}

/* --- build_list --------------------------------------------------------- */

static void test_build_plain(void)
{
	void *st = configure_plain();
	struct page_req pr = { .index = 0, .size = 2 };
	struct http_req req = { 0 };
	char *url;

	if (!st)
		return;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.method, "GET");
	/* limit always sent, nothing else unless configured. */
	CHECK_STR(req.url, DEFAULT_LIST "?limit=2&page=0");
	CHECK_STR(http_req_get_header(&req, "Authorization"), "Bearer " KEY);
	CHECK_STR(http_req_get_header(&req, "Accept"), "application/json");
	CHECK(http_req_get_header(&req, "Content-Type") == NULL);
	CHECK(http_req_get_header(&req, "Api-Token") == NULL);
	CHECK_INT(req.nheaders, 2);
	CHECK(req.body == NULL);
	CHECK(!strstr(req.url, KEY));
	http_req_release(&req);

	url = url_of(st, 7, 2000);
	CHECK_STR(url, DEFAULT_LIST "?limit=2000&page=7");
	free(url);
	/* Never above 2000; never omit limit (default would be 10 000). */
	url = url_of(st, 1, 5000);
	CHECK_STR(url, DEFAULT_LIST "?limit=2000&page=1");
	free(url);
	url = url_of(st, 0, 0);
	CHECK_STR(url, DEFAULT_LIST "?limit=2000&page=0");
	free(url);
	P->release(st);
}

static void test_build_filters(void)
{
	struct sect t;
	char err[CONF_ERRLEN], *url;
	void *st;

	clear_env();
	sect_init(&t, "nango", "/etc/connfs.conf", 10);
	sect_set(&t, "token", KEY);
	sect_set(&t, "search", "acme/eu 100%");
	sect_set(&t, "tags.Organization_ID", "org-77");
	sect_set(&t, "integration", "hubspot-prod,hubspot-sandbox");
	sect_set(&t, "tags.team/sub.unit", "a&b=c");
	st = configure(&t, NULL, err, 0);
	url = url_of(st, 3, 500);
	CHECK_STR(url, DEFAULT_LIST "?limit=500&page=3"
		  "&integrationId=hubspot-prod%2Chubspot-sandbox"
		  "&tags%5Borganization_id%5D=org-77"
		  "&tags%5Bteam%2Fsub.unit%5D=a%26b%3Dc"
		  "&search=acme%2Feu%20100%25");
	free(url);
	P->release(st);
}

/* --- parse_list --------------------------------------------------------- */

static void test_parse_example_page(void)
{
	void *st = configure_plain();
	char err[256];
	struct page pg;

	/* The fixture page: a full page of 2. */
	CHECK_INT(parse(st, "nango_page.json", 0, 2, &pg, err), 0);
	CHECK_INT(pg.n, 2);
	CHECK_INT(pg.total, -1);
	CHECK(pg.more);
	if (pg.n == 2) {
		/* Same connection_id in two integrations: distinct ids. */
		CHECK_STR(pg.v[0].id, "90412");
		CHECK_STR(pg.v[0].name[0], "hubspot-prod");
		CHECK_STR(pg.v[0].name[1], "acme/eu-west hubspot");
		CHECK_INT(pg.v[0].mtime.tv_sec, 1739523791);
		CHECK_INT(pg.v[0].mtime.tv_nsec, 284913000);
		CHECK_STR(pg.v[1].id, "90377");
		CHECK_STR(pg.v[1].name[0], "hubspot-sandbox");
		CHECK_STR(pg.v[1].name[1], "acme/eu-west hubspot");
		/* 2025-02-13T17:40:02.5+00:00 */
		CHECK_INT(pg.v[1].mtime.tv_sec, 1739468402);
		CHECK_INT(pg.v[1].mtime.tv_nsec, 500000000);
		check_untouched(&pg, "nango_page.json");
		/* null members stay null, ids stay integers */
		CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
			pg.v[1].obj, "metadata")));
		CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(
			pg.v[0].obj, "id")));
	}
	page_release(&pg);

	/* Short page: last. */
	CHECK_INT(parse(st, "nango_page.json", 4, 3, &pg, err), 0);
	CHECK(!pg.more);
	page_release(&pg);
	P->release(st);
}

static void test_parse_seed_and_odd(void)
{
	void *st = configure_plain();
	char err[256];
	struct page pg;

	CHECK_INT(parse(st, "nango_seed.json", 0, 100, &pg, err), 0);
	CHECK_INT(pg.n, 2);
	CHECK(!pg.more);
	if (pg.n == 2) {
		CHECK_STR(pg.v[0].id, "1");
		CHECK_STR(pg.v[0].name[0], "slack-nango-community");
		CHECK_STR(pg.v[0].name[1], "test-1");
		CHECK_INT(pg.v[0].mtime.tv_sec, 1685804002);
		CHECK_INT(pg.v[0].mtime.tv_nsec, 51000000);
		CHECK_STR(pg.v[1].name[1], "test-2");
		CHECK_INT(pg.v[1].mtime.tv_sec, 1685804414);
		check_untouched(&pg, "nango_seed.json");
	}
	page_release(&pg);

	CHECK_INT(parse(st, "nango_odd.json", 0, 3, &pg, err), 0);
	CHECK_INT(pg.n, 3);
	CHECK(pg.more);
	if (pg.n == 3) {
		/* Raw parts: the file namer, not the provider, encodes. */
		CHECK_STR(pg.v[0].id, "7");
		CHECK_STR(pg.v[0].name[0], "my integration:prod@eu~1");
		CHECK_STR(pg.v[0].name[1],
			  "a/b c\"d'{e}[f]\\g|h@i$j:k;l=m+n,o");
		CHECK_INT(pg.v[0].mtime.tv_sec, 1714566896);
		CHECK_INT(pg.v[0].mtime.tv_nsec, 123456000);
		/* created_at (single-GET shape) is the fallback. */
		CHECK_INT(pg.v[1].mtime.tv_sec, 1685804414);
		/* 2^53 - 1 as an id; no time at all gives 0. */
		CHECK_STR(pg.v[2].id, "9007199254740991");
		CHECK_STR(pg.v[2].name[0], "no-connection-id");
		CHECK_STR(pg.v[2].name[1], "9007199254740991");
		CHECK_INT(pg.v[2].mtime.tv_sec, 0);
		check_untouched(&pg, "nango_odd.json");
	}
	page_release(&pg);

	CHECK_INT(parse(st, "nango_empty.json", 5, 100, &pg, err), 0);
	CHECK_INT(pg.n, 0);
	CHECK(!pg.more);
	CHECK_INT(pg.total, -1);
	page_release(&pg);
	P->release(st);
}

static void expect_eproto(void *st, const char *fixture, const char *msg)
{
	char err[256];
	struct page pg;

	CHECK_INT(parse(st, fixture, 0, 20, &pg, err), -EPROTO);
	CHECK_INT(pg.n, 0);
	if (!strstr(err, msg))
		fprintf(stderr, "%s: err \"%s\", want \"%s\"\n", fixture, err,
			msg);
	CHECK(strstr(err, msg) != NULL);
	page_release(&pg);
}

static void test_parse_failures(void)
{
	void *st = configure_plain();
	struct page_req pr = { .index = 0, .size = 20 };
	struct http_resp r;
	char err[256];
	struct page pg = { 0 };

	expect_eproto(st, "nango_bad_noid.json",
		      "nango: connection 2 of page 1 has no id");
	expect_eproto(st, "nango_bad_id.json",
		      "connection 1 of page 1 has no id");
	expect_eproto(st, "nango_bad_list.json", "connections array");
	expect_eproto(st, "nango_bad_notobj.json", "connections array");
	expect_eproto(st, "nango_bad_json.json", "nango: response is not JSON");

	resp_init(&r, 200, NULL);
	resp_body(&r, "{\"connections\":[1]}");
	CHECK_INT(P->parse_list(st, &pr, &r, &pg, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, "is not an object") != NULL);
	http_resp_release(&r);
	resp_init(&r, 200, NULL);
	resp_body(&r, "{}");
	CHECK_INT(P->parse_list(st, &pr, &r, &pg, err, sizeof(err)), -EPROTO);
	CHECK_INT(pg.n, 0);
	http_resp_release(&r);
	P->release(st);
}

/* --- errors and rate limits --------------------------------------------- */

static void classify(struct http_resp *r, enum api_class cls,
		     struct api_error *e)
{
	struct page_req pr = { .index = 0, .size = 20 };

	memset(e, 0, sizeof(*e));
	e->cls = cls;
	e->status = r->status;
	e->retry_after = -1;
	P->classify_error(NULL, &pr, r, e);
}

static void test_classify_error(void)
{
	struct http_resp r;
	struct api_error e;
	char reset[32];

	resp_init(&r, 401, "nango_err_401.json");
	classify(&r, API_AUTH, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.code, "unknown_account");
	CHECK_STR(e.msg,
		  "The secret key you provided does not match any account.");
	CHECK(e.retry_after < 0);
	http_resp_release(&r);

	resp_init(&r, 403, "nango_err_403.json");
	classify(&r, API_AUTH, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.code, "forbidden");
	CHECK(strstr(e.msg, "Insufficient scope") == e.msg);
	http_resp_release(&r);

	resp_init(&r, 415, "nango_err_415.json");
	classify(&r, API_FATAL, &e);
	CHECK(e.cls == API_FATAL);
	CHECK_STR(e.code, "invalid_content_type");
	http_resp_release(&r);

	/* Validation errors: message from errors[0] and its path. */
	resp_init(&r, 400, "nango_err_400.json");
	classify(&r, API_FATAL, &e);
	CHECK(e.cls == API_FATAL);
	CHECK_STR(e.code, "invalid_query_params");
	CHECK_STR(e.msg, "Invalid key in record (tags.123invalid)");
	http_resp_release(&r);

	/* 429 with Retry-After: that wins over X-RateLimit-Reset. */
	snprintf(reset, sizeof(reset), "%lld", (long long)time(NULL) + 30);
	resp_init(&r, 429, "nango_err_429.json");
	resp_header(&r, "Retry-After", "12");
	resp_header(&r, "X-RateLimit-Reset", reset);
	r.retry_after = 12;
	classify(&r, API_THROTTLE, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK_STR(e.code, "too_many_request");
	CHECK_STR(e.msg, "too_many_request");
	CHECK(e.retry_after == 12);
	http_resp_release(&r);

	/* No Retry-After: seconds until the epoch in X-RateLimit-Reset. */
	resp_init(&r, 429, "nango_err_429.json");
	resp_header(&r, "x-ratelimit-reset", reset);
	classify(&r, API_THROTTLE, &e);
	CHECK(e.retry_after >= 28 && e.retry_after <= 30);
	http_resp_release(&r);

	/* A reset already in the past means "now", not a negative wait. */
	resp_init(&r, 429, "nango_err_429.json");
	resp_header(&r, "X-RateLimit-Reset", "1700000000");
	classify(&r, API_THROTTLE, &e);
	CHECK(e.retry_after == 0);
	http_resp_release(&r);

	/* The throttle code is honoured whatever the status. */
	resp_init(&r, 400, "nango_err_429.json");
	classify(&r, API_FATAL, &e);
	CHECK(e.cls == API_THROTTLE);
	http_resp_release(&r);

	resp_init(&r, 500, "nango_err_500.json");
	classify(&r, API_RETRY, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.code, "server_error");
	CHECK_STR(e.msg, "An unexpected error occurred\\x0aplease retry");
	http_resp_release(&r);

	resp_init(&r, 502, NULL);
	resp_body(&r, "Bad Gateway\r\n");
	classify(&r, API_RETRY, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.code, "");
	CHECK_STR(e.msg, "Bad Gateway\\x0d\\x0a");
	http_resp_release(&r);
}

static void test_rate_info(void)
{
	struct http_resp r;
	struct rate_info ri;
	char reset[32];

	snprintf(reset, sizeof(reset), "%lld", (long long)time(NULL) + 45);
	resp_init(&r, 200, NULL);
	resp_header(&r, "X-RateLimit-Limit", "200");
	resp_header(&r, "X-RateLimit-Remaining", "199");
	resp_header(&r, "X-RateLimit-Reset", reset);
	P->rate_info(&r, &ri);
	CHECK_INT(ri.limit, 200);
	CHECK_INT(ri.remaining, 199);
	CHECK(ri.reset_in >= 43 && ri.reset_in <= 45);
	http_resp_release(&r);

	resp_init(&r, 200, NULL);
	P->rate_info(&r, &ri);
	CHECK_INT(ri.limit, -1);
	CHECK_INT(ri.remaining, -1);
	CHECK(ri.reset_in < 0);
	http_resp_release(&r);
}

int main(void)
{
	test_interface();
	test_configure_url();
	test_configure_token();
	test_configure_filters();
	test_configure_invalid();
	test_build_plain();
	test_build_filters();
	test_parse_example_page();
	test_parse_seed_and_odd();
	test_parse_failures();
	test_classify_error();
	test_rate_info();
	return harness_done("test_nango");
}
