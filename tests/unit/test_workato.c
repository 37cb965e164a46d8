/*
 * Unit tests for providers/workato.c: data-center host selection (url=,
 * WORKATO_HOST), options, the request it builds, parsing the bare array
 * (the documented example, the older documented shape, 5,000 connections),
 * envelope failures and error classification. No network.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fixture.h"
#include "harness.h"

/* Sections of these tests are all named "workato-test". */
#define section(...) section_new("workato-test", __VA_ARGS__)
#include "http.h"
#include "provider.h"

extern const struct provider provider_workato;

static const struct provider *P = &provider_workato;

#define LIST "https://www.workato.com/api/connections"
#define SF "Salesforce \xe2\x80\x93 Production" /* en dash, UTF-8 */

/* Configures s (freed here) with url; NULL on failure. */
static void *configure_sec(struct conf_section *s, const char *url)
{
	char err[CONF_ERRLEN] = "";
	void *st = NULL;
	int rc = P->configure(s, url, &st, err);

	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "configure: %s\n", err);
	CHECK(all_used(s));
	section_free(s);
	return st;
}

static void *configure(const char *url)
{
	return configure_sec(section("token", "wk_test", NULL), url);
}

static void configure_fails(const char *url, struct conf_section *s,
			    const char *want)
{
	char err[CONF_ERRLEN] = "";
	void *st = NULL;

	CHECK_INT(P->configure(s, url, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, want) != NULL);
	CHECK(strstr(err, "wk_test") == NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  err was: %s\n", err);
	section_free(s);
}

static void check_source(void *st, const char *want)
{
	if (!st)
		return;
	CHECK_STR(P->source_url(st), want);
	P->release(st);
}

static int parse_body(void *st, char *body, size_t len, struct page *pg,
		      char *err, size_t errlen)
{
	struct page_req pr = { .size = 0 };
	struct http_resp r;
	int rc;

	resp_text(&r, 200, NULL);
	r.body = body;
	r.len = len;
	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
	err[0] = '\0';
	rc = P->parse_list(st, &pr, &r, pg, err, errlen);
	http_resp_release(&r);
	return rc;
}

static int parse(void *st, const char *path, const char *body,
		 struct page *pg, char *err, size_t errlen)
{
	size_t len = 0;
	char *text = path ? slurp(path, &len) : strdup(body);

	if (!text) {
		fprintf(stderr, "cannot read %s\n", path);
		CHECK(text != NULL);
		return -ENOENT;
	}
	if (!path)
		len = strlen(text);
	return parse_body(st, text, len, pg, err, errlen);
}

static void check_untouched(const struct page *pg, const char *path)
{
	size_t len;
	char *text = slurp(path, &len);
	cJSON *root = cJSON_Parse(text);

	for (size_t i = 0; i < pg->n; i++) {
		char *want = cJSON_PrintUnformatted(
			cJSON_GetArrayItem(root, (int)i));
		char *got = cJSON_PrintUnformatted(pg->v[i].obj);

		CHECK_STR(got, want);
		free(want);
		free(got);
	}
	cJSON_Delete(root);
	free(text);
}

static void check_mtime(const struct entry *e, long sec, long nsec)
{
	CHECK_INT(e->mtime.tv_sec, sec);
	CHECK_INT(e->mtime.tv_nsec, nsec);
}

static void test_interface(void)
{
	CHECK_STR(P->name, "workato");
	CHECK(P->paging == PAGING_NONE);
	CHECK_INT(P->max_page, 0);
	CHECK(P->rate == 0.9);
	CHECK_INT(P->burst, 6);
	CHECK_STR(P->env_secret, "WORKATO_API_TOKEN");
	CHECK(provider_find("workato") == P);
	CHECK(P->begin_walk && P->source_url && P->classify_error);
}

static void test_hosts(void)
{
	unsetenv("WORKATO_HOST");
	check_source(configure(NULL), LIST);
	setenv("WORKATO_HOST", "app.eu.workato.com", 1);
	check_source(configure(NULL),
		     "https://app.eu.workato.com/api/connections");
	setenv("WORKATO_HOST", "https://app.jp.workato.com/api/", 1);
	check_source(configure(NULL),
		     "https://app.jp.workato.com/api/connections");
	setenv("WORKATO_HOST", "http://localhost:9000", 1);
	check_source(configure(NULL), "http://localhost:9000/api/connections");
	/* url= wins over the environment; a trailing /api is dropped. */
	check_source(configure("https://app.au.workato.com/api"),
		     "https://app.au.workato.com/api/connections");
	setenv("WORKATO_HOST", "", 1);
	check_source(configure(NULL), LIST);

	setenv("WORKATO_HOST", "http://app.eu.workato.com", 1);
	configure_fails(NULL, section("token", "wk_test", NULL),
			"WORKATO_HOST");
	configure_fails(NULL, section("token", "wk_test", NULL), "loopback");
	setenv("WORKATO_HOST", "app.eu.workato.com/?x=1", 1);
	configure_fails(NULL, section("token", "wk_test", NULL),
			"WORKATO_HOST");
	unsetenv("WORKATO_HOST");
	configure_fails("http://www.workato.com",
			section("token", "wk_test", NULL), "url");
}

static void test_configure_errors(void)
{
	unsetenv("WORKATO_API_TOKEN");
	configure_fails(NULL, section(NULL), "WORKATO_API_TOKEN");
	configure_fails(NULL, section("token", "wk_test", "folder_id", "abc",
				      NULL), "folder_id");
	configure_fails(NULL, section("token", "wk_test", "folder_id", "-3",
				      NULL), "folder_id");
	configure_fails(NULL, section("token", "wk_test", "folder_id", "0",
				      NULL), "folder_id");
	configure_fails(NULL, section("token", "wk_test", "include_tags",
				      "maybe", NULL), "include_tags");
	configure_fails(NULL, section("token", "wk_test",
				      "include_runtime_connections", "2",
				      NULL), "include_runtime_connections");
	configure_fails(NULL, section("token", "wk_test", "project_id", "",
				      NULL), "project_id");
	configure_fails(NULL, section("token", "wk_test\nx", NULL),
			"control characters");

	setenv("WORKATO_API_TOKEN", "wk_env", 1);
	check_source(configure_sec(section(NULL), NULL), LIST);
	unsetenv("WORKATO_API_TOKEN");
}

static void test_build_default(void)
{
	void *st = configure(NULL);
	struct page_req pr = { 0 };
	struct http_req req = { 0 };

	if (!st)
		return;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url, LIST "?includes%5B%5D=tags");
	CHECK_STR(http_req_get_header(&req, "Authorization"), "Bearer wk_test");
	CHECK_STR(http_req_get_header(&req, "Accept"), "application/json");
	CHECK(http_req_get_header(&req, "Content-Type") == NULL);
	CHECK(http_req_get_header(&req, "Key-Inflection") == NULL);
	CHECK(req.body == NULL && req.userpwd == NULL);
	CHECK(strstr(req.url, "wk_test") == NULL);
	http_req_release(&req);
	P->release(st);
}

static void test_build_options(void)
{
	struct page_req pr = { 0 };
	struct http_req req = { 0 };
	void *st;

	st = configure_sec(section("token", "wk_test", "folder_id", "90211",
				   "project_id", "proj 1/a&b",
				   "include_runtime_connections", "yes", NULL),
			   NULL);
	if (st) {
		CHECK_INT(P->build_list(st, &pr, &req), 0);
		CHECK_STR(req.url, LIST "?includes%5B%5D=tags&folder_id=90211"
			  "&project_id=proj%201%2Fa%26b"
			  "&include_runtime_connections=true");
		http_req_release(&req);
		P->release(st);
	}
	st = configure_sec(section("token", "wk_test", "include_tags", "false",
				   "folder_id", "7", NULL), NULL);
	if (st) {
		CHECK_INT(P->build_list(st, &pr, &req), 0);
		CHECK_STR(req.url, LIST "?folder_id=7");
		http_req_release(&req);
		P->release(st);
	}
	st = configure_sec(section("token", "wk_test", "include_tags", "off",
				   "include_runtime_connections", "false",
				   NULL), NULL);
	if (st) {
		CHECK_INT(P->build_list(st, &pr, &req), 0);
		CHECK_STR(req.url, LIST);
		http_req_release(&req);
		P->release(st);
	}
}

static void test_parse_page(void *st)
{
	const char *path = "fixtures/workato_page.json";
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, path, NULL, &pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 2);
	if (pg.n == 2) {
		CHECK_STR(pg.v[0].id, "418207");
		/* Same display name twice: the id keeps the names apart. */
		CHECK_STR(pg.v[0].name[0], SF);
		CHECK_STR(pg.v[0].name[1], "418207");
		check_mtime(&pg.v[0], 1727854278, 409000000);
		CHECK_STR(pg.v[1].id, "418233");
		CHECK_STR(pg.v[1].name[0], SF);
		CHECK_STR(pg.v[1].name[1], "418233");
		check_mtime(&pg.v[1], 1736133044, 20000000);
	}
	CHECK(pg.next == NULL);
	check_untouched(&pg, path);
	page_release(&pg);
}

/* Ids past 2^53 that a double cannot tell apart stay exact and apart. */
static void test_parse_big_ids(void *st)
{
	struct page pg;
	char err[256], *text;

	CHECK_INT(parse(st, NULL, "[{\"id\":9007199254740993,\"name\":\"a\"},"
			"{\"id\":9007199254740992,\"name\":\"a\"}]", &pg, err,
			sizeof(err)), 0);
	CHECK_INT(pg.n, 2);
	if (pg.n == 2) {
		CHECK_STR(pg.v[0].id, "9007199254740993");
		CHECK_STR(pg.v[0].name[1], "9007199254740993");
		CHECK_STR(pg.v[1].id, "9007199254740992");
		text = cJSON_PrintUnformatted(pg.v[0].obj);
		CHECK_STR(text, "{\"id\":9007199254740993,\"name\":\"a\"}");
		free(text);
	}
	page_release(&pg);
}

static void test_parse_old_shape(void *st)
{
	const char *path = "fixtures/workato_old_shape.json";
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, path, NULL, &pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 3);
	if (pg.n == 3) {
		CHECK_STR(pg.v[0].name[0],
			  "ACME Production Salesforce connection");
		/* updated_at null: created_at. */
		check_mtime(&pg.v[0], 1432680832, 532000000);
		/* name null or absent: "" (the id still names the file). */
		CHECK_STR(pg.v[1].name[0], "");
		CHECK_STR(pg.v[1].name[1], "37");
		check_mtime(&pg.v[1], 1432798200, 500000000);
		CHECK_STR(pg.v[2].name[0], "");
		CHECK_STR(pg.v[2].id, "38");
		check_mtime(&pg.v[2], 0, 0);
	}
	check_untouched(&pg, path);
	page_release(&pg);

	CHECK_INT(parse(st, "fixtures/workato_empty.json", NULL, &pg, err,
			sizeof(err)), 0);
	CHECK_INT(pg.n, 0);
	CHECK(pg.next == NULL);
	page_release(&pg);
}

/* No paging: one response can be large, and all of it must come through. */
static void test_parse_large(void *st)
{
	struct buf b = { 0 };
	struct page pg;
	char err[256];
	size_t len;

	buf_puts(&b, "[");
	for (int i = 0; i < 5000; i++)
		buf_printf(&b, "%s{\"id\":%d,\"application\":\"jira\","
			   "\"name\":\"Jira \\u2013 %s\",\"description\":null,"
			   "\"created_at\":\"2024-01-01T00:00:00.000Z\","
			   "\"updated_at\":\"2024-01-01T00:%02d:%02d.%03dZ\","
			   "\"folder_id\":90211,\"parent_id\":null,"
			   "\"tags\":[]}", i ? "," : "", 400000 + i,
			   i % 2 ? "Prod" : "Sandbox", i / 60 % 60, i % 60,
			   i % 1000);
	buf_puts(&b, "]");
	len = b.len;
	CHECK_INT(parse_body(st, buf_steal(&b), len, &pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 5000);
	if (pg.n == 5000) {
		CHECK_STR(pg.v[0].id, "400000");
		CHECK_STR(pg.v[4999].id, "404999");
		CHECK_STR(pg.v[4999].name[1], "404999");
		CHECK_STR(pg.v[4999].name[0], "Jira \xe2\x80\x93 Prod");
		CHECK_STR(pg.v[4998].name[0], "Jira \xe2\x80\x93 Sandbox");
		/* 4999: minute 23, second 19, 999 ms. */
		check_mtime(&pg.v[4999], 1704067200 + 23 * 60 + 19, 999000000);
	}
	CHECK(pg.next == NULL);
	page_release(&pg);
}

static void parse_fails(void *st, const char *path, const char *body,
			const char *want)
{
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, path, body, &pg, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  %s: err was: %s\n", path ? path : body, err);
	page_release(&pg);
}

static void test_parse_failures(void *st)
{
	parse_fails(st, NULL, "<html>Service Unavailable</html>", "not JSON");
	parse_fails(st, NULL, "", "not JSON");
	parse_fails(st, NULL, "[{\"id\": 1}] [", "not JSON");
	/* The Embedded API's {"result": [...]} is not this endpoint. */
	parse_fails(st, "fixtures/workato_result_object.json", NULL,
		    "an object");
	parse_fails(st, NULL, "null", "array");
	parse_fails(st, "fixtures/workato_no_id.json", NULL, "connection 1");
	parse_fails(st, NULL, "[{\"id\": 1}, null]", "connection 1");
	parse_fails(st, NULL, "[{\"id\": 1.5, \"name\": \"x\"}]",
		    "connection 0");
	parse_fails(st, NULL, "[{\"id\": null, \"name\": \"x\"}]",
		    "connection 0");
	parse_fails(st, NULL, "[[1, 2]]", "connection 0");
}

static void classify(void *st, struct http_resp *r, struct api_error *e)
{
	struct page_req pr = { 0 };

	/* What the pager fills in before asking the provider. */
	memset(e, 0, sizeof(*e));
	e->status = r->status;
	e->retry_after = r->retry_after;
	e->cls = r->status == 429 ? API_THROTTLE : r->status >= 500 ? API_RETRY
		 : r->status == 401 || r->status == 403 ? API_AUTH : API_FATAL;
	P->classify_error(st, &pr, r, e);
	http_resp_release(r);
}

static void test_classify(void *st)
{
	struct http_resp r;
	struct api_error e;

	resp_text(&r, 401, "{\"message\":\"Unauthorized\"}");
	classify(st, &r, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.msg, "Unauthorized");
	CHECK(e.retry_after == -1);

	resp_text(&r, 403, "{\"message\":\"Forbidden: API client role has no "
		  "access to connections\"}");
	classify(st, &r, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.msg, "Forbidden: API client role has no access to "
		  "connections");

	resp_text(&r, 400, "{\"message\":\"Validation failed\",\"errors\":"
		  "{\"folder_id\":[\"is invalid\",\"must be a number\"],"
		  "\"name\":\"can't be blank\"}}");
	classify(st, &r, &e);
	CHECK(e.cls == API_FATAL);
	CHECK_STR(e.msg, "Validation failed: folder_id is invalid, must be a "
		  "number; name can't be blank");

	/* No cursor to expire: a 404 is fatal. */
	resp_text(&r, 404, "{\"message\":\"Not found\"}");
	classify(st, &r, &e);
	CHECK(e.cls == API_FATAL);
	CHECK_STR(e.msg, "Not found");

	resp_text(&r, 429, "{\"message\":\"Too many requests\"}");
	resp_header(&r, "RateLimit-Reset", "41");
	classify(st, &r, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == -1);
	CHECK_STR(e.msg, "Too many requests");

	resp_text(&r, 429, NULL);
	resp_header(&r, "Retry-After", "12");
	classify(st, &r, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == 12);

	resp_text(&r, 500, "Internal Server Error\r\n");
	classify(st, &r, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.msg, "Internal Server Error\\x0d\\x0a");
	CHECK(e.retry_after == -1);
}

int main(void)
{
	void *st;

	unsetenv("WORKATO_API_TOKEN");
	unsetenv("WORKATO_HOST");
	test_interface();
	test_hosts();
	test_configure_errors();
	test_build_default();
	test_build_options();
	st = configure(NULL);
	if (st) {
		test_parse_page(st);
		test_parse_big_ids(st);
		test_parse_old_shape(st);
		test_parse_large(st);
		test_parse_failures(st);
		test_classify(st);
		P->release(st);
	}
	return harness_done("test_workato");
}
