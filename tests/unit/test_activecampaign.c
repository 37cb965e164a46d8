/*
 * Unit tests for the ActiveCampaign provider: configuration (URL sources and
 * normalisation, token sources, filters), the request it builds (method,
 * exact URL and query order, headers present and absent), parsing of the
 * fixture pages under fixtures/ (ids, name parts, mtimes, total/more, the
 * untouched object) and error classification. No network.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"
#include "json.h"
#include "provider.h"

extern const struct provider provider_activecampaign;
static const struct provider *const P = &provider_activecampaign;

#define HOST "https://northwind.api-us1.com"
#define LIST HOST "/api/3/connections"
#define TOKEN "0123456789abcdef0123456789abcdef"

/* --- helpers ------------------------------------------------------------ */

static void clear_env(void)
{
	unsetenv("ACTIVECAMPAIGN_API_URL");
	unsetenv("ACTIVECAMPAIGN_API_TOKEN");
}

/* Configures with url= HOST and token= TOKEN plus the given filters. */
static void *configure_ok(const char *service, const char *externalid)
{
	struct sect t;
	char err[CONF_ERRLEN] = "";
	void *st = NULL;
	int rc;

	sect_init(&t, "ac", NULL, 3);
	sect_set(&t, "token", TOKEN);
	if (service)
		sect_set(&t, "service", service);
	if (externalid)
		sect_set(&t, "externalid", externalid);
	rc = P->configure(&t.s, HOST, &st, err);
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "configure: %s\n", err);
	return st;
}

static char *obj_text(const cJSON *o)
{
	return cJSON_PrintUnformatted(o);
}

/* The fixture's connections[i], printed, for "untouched object" checks. */
static char *fixture_obj(const char *fixture, int i)
{
	struct http_resp r;
	cJSON *root;
	char *s;

	resp_init(&r, 200, fixture);
	root = json_parse(r.body, r.len);
	s = obj_text(cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(root, "connections"), i));
	cJSON_Delete(root);
	http_resp_release(&r);
	return s;
}

static int parse(void *st, const char *fixture, unsigned long index,
		 unsigned size, struct page *pg, char *err)
{
	struct page_req pr = { .index = index, .size = size };
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

/* --- configure ---------------------------------------------------------- */

static void test_interface(void)
{
	CHECK_STR(P->name, "activecampaign");
	CHECK(P->paging == PAGING_INDEX);
	CHECK_INT(P->max_page, 100);
	CHECK(P->rate == 5);
	CHECK_INT(P->burst, 1);
	CHECK_STR(P->env_secret, "ACTIVECAMPAIGN_API_TOKEN+ACTIVECAMPAIGN_API_URL");
	CHECK(P->begin_walk && P->rate_info && P->source_url);
	CHECK(provider_find("activecampaign") == P);
}

static void test_configure_url(void)
{
	struct sect t;
	char err[CONF_ERRLEN];
	void *st = NULL;

	clear_env();
	/* url= without /api/3 gets it appended. */
	st = configure_ok(NULL, NULL);
	if (st)
		CHECK_STR(P->source_url(st), LIST);
	P->release(st);

	/* url= that already ends in /api/3 is not doubled. */
	sect_init(&t, "ac", NULL, 3);
	sect_set(&t, "token", TOKEN);
	st = NULL;
	CHECK_INT(P->configure(&t.s, HOST "/api/3", &st, err), 0);
	if (st)
		CHECK_STR(P->source_url(st), LIST);
	P->release(st);

	/* No url= and no environment: an error naming both. */
	sect_init(&t, "ac", NULL, 3);
	sect_set(&t, "token", TOKEN);
	st = NULL;
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "no API URL") != NULL);
	CHECK(strstr(err, "ACTIVECAMPAIGN_API_URL") != NULL);
	CHECK(strstr(err, "[ac]") != NULL);

	/* ACTIVECAMPAIGN_API_URL: validated, trailing slash dropped. */
	setenv("ACTIVECAMPAIGN_API_URL", "http://127.0.0.1:8080/", 1);
	st = NULL;
	CHECK_INT(P->configure(&t.s, NULL, &st, err), 0);
	if (st)
		CHECK_STR(P->source_url(st),
			  "http://127.0.0.1:8080/api/3/connections");
	P->release(st);

	/* Plain http:// to a non-loopback host is refused. */
	setenv("ACTIVECAMPAIGN_API_URL", "http://northwind.api-us1.com", 1);
	st = NULL;
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, NULL, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "plain http://") != NULL);

	/* url= wins over the environment. */
	st = NULL;
	CHECK_INT(P->configure(&t.s, "https://acme.activehosted.com", &st,
			       err), 0);
	if (st)
		CHECK_STR(P->source_url(st),
			  "https://acme.activehosted.com/api/3/connections");
	P->release(st);
	clear_env();
}

static void test_configure_token(void)
{
	struct sect t;
	char err[CONF_ERRLEN] = "";
	struct http_req req = { 0 };
	struct page_req pr = { .index = 0, .size = 10 };
	char path[] = "/tmp/connfs-ac-tokenXXXXXX";
	void *st = NULL;
	int fd;

	clear_env();
	/* No token anywhere: the message names the environment variable. */
	sect_init(&t, "ac", NULL, 3);
	CHECK_INT(P->configure(&t.s, HOST, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "ACTIVECAMPAIGN_API_TOKEN") != NULL);

	/* The environment variable works and is never echoed. */
	setenv("ACTIVECAMPAIGN_API_TOKEN", "env-token-value", 1);
	st = NULL;
	CHECK_INT(P->configure(&t.s, HOST, &st, err), 0);
	if (st && P->build_list(st, &pr, &req) == 0)
		CHECK_STR(http_req_get_header(&req, "Api-Token"),
			  "env-token-value");
	CHECK(req.url && !strstr(req.url, "env-token-value"));
	http_req_release(&req);
	P->release(st);

	/* A token with a line break would inject a header: refused. */
	setenv("ACTIVECAMPAIGN_API_TOKEN", "abc\r\nX-Evil: 1", 1);
	st = NULL;
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, HOST, &st, err), -EINVAL);
	CHECK(strstr(err, "control characters") != NULL);
	CHECK(strstr(err, "Evil") == NULL);
	clear_env();

	/* token_file is re-read by begin_walk (rotation). */
	fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, "first-token\n", 12) == 12);
	close(fd);
	sect_init(&t, "ac", NULL, 3);
	sect_set(&t, "token_file", path);
	st = NULL;
	CHECK_INT(P->configure(&t.s, HOST, &st, err), 0);
	CHECK(sect_kv(&t, "token_file")->used);
	if (st && P->build_list(st, &pr, &req) == 0)
		CHECK_STR(http_req_get_header(&req, "Api-Token"),
			  "first-token");
	http_req_release(&req);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, "second-token\n", 13) == 13);
	close(fd);
	if (st) {
		CHECK_INT(P->begin_walk(st, err, 256), 0);
		if (P->build_list(st, &pr, &req) == 0)
			CHECK_STR(http_req_get_header(&req, "Api-Token"),
				  "second-token");
	}
	http_req_release(&req);
	P->release(st);
	unlink(path);
}

static void test_configure_keys(void)
{
	struct sect t;
	char err[CONF_ERRLEN] = "";
	void *st = NULL;

	clear_env();
	/* Own keys are marked used; foreign keys are left for the caller. */
	sect_init(&t, "ac", "/etc/connfs.conf", 3);
	sect_set(&t, "token_command", "echo cmd-token");
	sect_set(&t, "service", "shopify");
	sect_set(&t, "externalid", "foo.myshopify.com");
	sect_set(&t, "colour", "blue");
	CHECK_INT(P->configure(&t.s, HOST, &st, err), 0);
	CHECK(sect_kv(&t, "service")->used);
	CHECK(sect_kv(&t, "externalid")->used);
	CHECK(sect_kv(&t, "token_command")->used);
	CHECK(!sect_kv(&t, "colour")->used);
	P->release(st);

	/* An empty filter is an error with file, line and key. */
	sect_init(&t, "ac", "/etc/connfs.conf", 3);
	sect_set(&t, "token", TOKEN);
	sect_set(&t, "service", "");
	st = NULL;
	err[0] = '\0';
	CHECK_INT(P->configure(&t.s, HOST, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, "/etc/connfs.conf:5: [ac] service:") == err);
}

/* --- build_list --------------------------------------------------------- */

static void test_build_first_page(void)
{
	void *st = configure_ok(NULL, NULL);
	struct page_req pr = { .index = 0, .size = 2 };
	struct http_req req = { 0 };

	if (!st)
		return;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url, LIST "?limit=2&offset=0");
	CHECK_STR(http_req_get_header(&req, "Api-Token"), TOKEN);
	CHECK_STR(http_req_get_header(&req, "Accept"), "application/json");
	CHECK(http_req_get_header(&req, "Content-Type") == NULL);
	CHECK(http_req_get_header(&req, "Authorization") == NULL);
	CHECK_INT(req.nheaders, 2);
	CHECK(req.body == NULL);
	CHECK(req.aws_sigv4 == NULL && req.userpwd == NULL);
	CHECK(!strstr(req.url, TOKEN));
	http_req_release(&req);
	P->release(st);
}

static void test_build_later_page(void)
{
	void *st = configure_ok("shopify", "a b&c[d]=e/f");
	struct page_req pr = { .index = 3, .size = 100 };
	struct http_req req = { 0 };

	if (!st)
		return;
	/* offset = index * size; filters after paging, brackets encoded. */
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.url, LIST "?limit=100&offset=300"
		  "&filters%5Bservice%5D=shopify"
		  "&filters%5Bexternalid%5D=a%20b%26c%5Bd%5D%3De%2Ff");
	http_req_release(&req);

	/* Never more than 100 per page, whatever the pager asks. */
	pr = (struct page_req){ .index = 2, .size = 500 };
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK(req.url && strstr(req.url, LIST "?limit=100&offset=200&") ==
			       req.url);
	http_req_release(&req);
	P->release(st);
}

/* --- parse_list --------------------------------------------------------- */

static void test_parse_example_page(void)
{
	void *st = configure_ok(NULL, NULL);
	char err[256], *want, *got;
	struct page pg;

	/* The fixture page: limit=2&offset=2 of 5. */
	CHECK_INT(parse(st, "activecampaign_page.json", 1, 2, &pg, err), 0);
	CHECK_INT(pg.n, 2);
	CHECK_INT(pg.total, 5);
	CHECK(pg.more);
	if (pg.n == 2) {
		CHECK_STR(pg.v[0].id, "7");
		CHECK_STR(pg.v[0].name[0], "Northwind Outlet");
		CHECK_STR(pg.v[0].name[1], "7");
		/* udate 2024-11-18T08:41:15-05:00 */
		CHECK_INT(pg.v[0].mtime.tv_sec, 1731937275);
		CHECK_INT(pg.v[0].mtime.tv_nsec, 0);
		CHECK_STR(pg.v[1].id, "12");
		CHECK_STR(pg.v[1].name[0], "Northwind, Inc. / EU");
		CHECK_STR(pg.v[1].name[1], "12");
		/* udate 2024-06-30T11:20:03-04:00 (DST offset) */
		CHECK_INT(pg.v[1].mtime.tv_sec, 1719760803);
		for (int i = 0; i < 2; i++) {
			want = fixture_obj("activecampaign_page.json", i);
			got = obj_text(pg.v[i].obj);
			CHECK_STR(got, want);
			free(want);
			free(got);
		}
	}
	page_release(&pg);

	/* The same page as the last one: offset 4 + 2 >= 5 ends the walk. */
	CHECK_INT(parse(st, "activecampaign_page.json", 2, 2, &pg, err), 0);
	CHECK(!pg.more);
	page_release(&pg);
	P->release(st);
}

static void test_parse_seed(void)
{
	void *st = configure_ok(NULL, NULL);
	char err[256], *want, *got;
	struct page pg;

	/* seed 001, full page of 2 but meta.total "2": no more pages. */
	CHECK_INT(parse(st, "activecampaign_seed.json", 0, 2, &pg, err), 0);
	CHECK_INT(pg.n, 2);
	CHECK_INT(pg.total, 2);
	CHECK(!pg.more);
	if (pg.n == 2) {
		CHECK_STR(pg.v[0].id, "1");
		CHECK_STR(pg.v[0].name[0], "Foo, Inc.");
		CHECK_INT(pg.v[0].mtime.tv_sec, 1486062552);
		CHECK_STR(pg.v[1].id, "2");
		CHECK_STR(pg.v[1].name[0], "Acme, Inc.");
		CHECK_INT(pg.v[1].mtime.tv_sec, 1486158891);
		want = fixture_obj("activecampaign_seed.json", 1);
		got = obj_text(pg.v[1].obj);
		CHECK_STR(got, want);
		free(want);
		free(got);
	}
	page_release(&pg);

	/* Short page at the default size: last page. */
	CHECK_INT(parse(st, "activecampaign_seed.json", 0, 20, &pg, err), 0);
	CHECK(!pg.more);
	page_release(&pg);
	P->release(st);
}

static void test_parse_odd_values(void)
{
	void *st = configure_ok(NULL, NULL);
	char err[256], *want, *got;
	struct page pg;

	/* meta.total as a number, ids as number, isInternal as integer. */
	CHECK_INT(parse(st, "activecampaign_odd.json", 0, 3, &pg, err), 0);
	CHECK_INT(pg.n, 3);
	CHECK_INT(pg.total, 3);
	CHECK(!pg.more);
	if (pg.n == 3) {
		CHECK_STR(pg.v[0].id, "101");
		CHECK_STR(pg.v[0].name[0], "");	/* name absent */
		CHECK_STR(pg.v[0].name[1], "101");
		/* no udate: cdate 2024-03-01T00:00:00+01:00 */
		CHECK_INT(pg.v[0].mtime.tv_sec, 1709247600);
		CHECK_STR(pg.v[1].id, "102");
		CHECK_STR(pg.v[1].name[0],
			  "Caf\xc3\xa9 \"Quoted\" / Slashed");
		/* unparsable udate and no cdate: 0, never "now" */
		CHECK_INT(pg.v[1].mtime.tv_sec, 0);
		CHECK_STR(pg.v[2].name[0], "");
		CHECK_INT(pg.v[2].mtime.tv_sec, 1672552799);
		for (int i = 0; i < 3; i++) {
			want = fixture_obj("activecampaign_odd.json", i);
			got = obj_text(pg.v[i].obj);
			CHECK_STR(got, want);
			free(want);
			free(got);
		}
		/* isInternal stays an integer; id stays a number. */
		CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(
			pg.v[1].obj, "isInternal")));
		CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(
			pg.v[0].obj, "id")));
	}
	page_release(&pg);
	P->release(st);
}

static void test_parse_empty_and_no_meta(void)
{
	void *st = configure_ok(NULL, NULL);
	struct page_req pr = { .index = 0, .size = 2 };
	struct http_resp r;
	char err[256];
	struct page pg;

	/* Offset past the end: an empty array is a valid last page. */
	CHECK_INT(parse(st, "activecampaign_empty.json", 3, 2, &pg, err), 0);
	CHECK_INT(pg.n, 0);
	CHECK_INT(pg.total, 5);
	CHECK(!pg.more);
	page_release(&pg);

	/* No meta at all: total unknown, a full page means more. */
	memset(&pg, 0, sizeof(pg));
	resp_init(&r, 200, NULL);
	resp_body(&r, "{\"connections\":[{\"id\":\"1\"},{\"id\":\"2\"}]}");
	CHECK_INT(P->parse_list(st, &pr, &r, &pg, err, sizeof(err)), 0);
	CHECK_INT(pg.total, -1);
	CHECK(pg.more);
	CHECK_INT(pg.n, 2);
	page_release(&pg);
	http_resp_release(&r);
	P->release(st);
}

static void expect_eproto(void *st, const char *fixture, const char *msg)
{
	char err[256];
	struct page pg;

	CHECK_INT(parse(st, fixture, 0, 20, &pg, err), -EPROTO);
	CHECK_INT(pg.n, 0);	/* nothing handed over on failure */
	if (!strstr(err, msg))
		fprintf(stderr, "%s: err \"%s\", want \"%s\"\n", fixture, err,
			msg);
	CHECK(strstr(err, msg) != NULL);
	page_release(&pg);
}

static void test_parse_failures(void)
{
	void *st = configure_ok(NULL, NULL);
	struct page_req pr = { .index = 0, .size = 20 };
	struct http_resp r;
	char err[256];
	struct page pg = { 0 };

	expect_eproto(st, "activecampaign_bad_json.json",
		      "activecampaign: response is not JSON");
	expect_eproto(st, "activecampaign_bad_list.json", "connections array");
	expect_eproto(st, "activecampaign_bad_noid.json",
		      "activecampaign: connection 3 of page 1 has no id");
	expect_eproto(st, "activecampaign_bad_notobj.json",
		      "connection 2 of page 1 is not an object");
	expect_eproto(st, "activecampaign_bad_total.json", "meta.total");
	expect_eproto(st, "activecampaign_bad_total_text.json", "meta.total");

	/* Body that is JSON but not an object, and an empty body. */
	resp_init(&r, 200, NULL);
	resp_body(&r, "[]");
	CHECK_INT(P->parse_list(st, &pr, &r, &pg, err, sizeof(err)), -EPROTO);
	http_resp_release(&r);
	resp_init(&r, 200, NULL);
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

	resp_init(&r, 403, "activecampaign_err_403.json");
	classify(&r, API_AUTH, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.msg, "You are not authorized to access this resource");
	CHECK_STR(e.code, "");
	CHECK(e.retry_after < 0);
	http_resp_release(&r);

	resp_init(&r, 401, NULL);
	resp_body(&r, "{\"message\":\"bad\\u0007token\\nline\"}");
	classify(&r, API_AUTH, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.msg, "bad\\x07token\\x0aline");
	http_resp_release(&r);

	resp_init(&r, 404, "activecampaign_err_404.json");
	classify(&r, API_FATAL, &e);
	CHECK(e.cls == API_FATAL);
	CHECK_STR(e.msg, "No Result found for Connection with id 99");
	http_resp_release(&r);

	resp_init(&r, 422, "activecampaign_err_422.json");
	classify(&r, API_FATAL, &e);
	CHECK_STR(e.code, "field_missing");
	CHECK_STR(e.msg, "The connection service was not provided.");
	http_resp_release(&r);

	resp_init(&r, 422, NULL);
	resp_body(&r, "{\"errors\":[{\"title\":\"Invalid\",\"detail\":"
		  "\"limit must be at most 100\"}]}");
	classify(&r, API_FATAL, &e);
	CHECK_STR(e.msg, "Invalid: limit must be at most 100");
	http_resp_release(&r);

	/* 429 with Retry-After (http_do has parsed it into retry_after). */
	resp_init(&r, 429, NULL);
	resp_header(&r, "Retry-After", "1");
	resp_header(&r, "RateLimit-Limit", "5");
	resp_header(&r, "RateLimit-Remaining", "0");
	r.retry_after = 1;
	classify(&r, API_THROTTLE, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == 1);
	http_resp_release(&r);

	/* 500 with an HTML body: class kept, raw text escaped as message. */
	resp_init(&r, 500, NULL);
	resp_body(&r, "<html>Internal\tError</html>");
	classify(&r, API_RETRY, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.msg, "<html>Internal\\x09Error</html>");
	http_resp_release(&r);

	/* 503 (reported at the limit) stays retryable, honours Retry-After. */
	resp_init(&r, 503, NULL);
	r.retry_after = 2.5;
	classify(&r, API_RETRY, &e);
	CHECK(e.cls == API_RETRY);
	CHECK(e.retry_after == 2.5);
	http_resp_release(&r);
}

static void test_rate_info(void)
{
	struct http_resp r;
	struct rate_info ri;

	resp_init(&r, 200, NULL);
	resp_header(&r, "ratelimit-limit", "5");
	resp_header(&r, "RateLimit-Remaining", "3");
	P->rate_info(&r, &ri);
	CHECK_INT(ri.limit, 5);
	CHECK_INT(ri.remaining, 3);
	CHECK(ri.reset_in < 0);
	http_resp_release(&r);

	resp_init(&r, 200, NULL);
	resp_header(&r, "RateLimit-Limit", "five");
	P->rate_info(&r, &ri);
	CHECK_INT(ri.limit, -1);
	CHECK_INT(ri.remaining, -1);
	http_resp_release(&r);
}

int main(void)
{
	test_interface();
	test_configure_url();
	test_configure_token();
	test_configure_keys();
	test_build_first_page();
	test_build_later_page();
	test_parse_example_page();
	test_parse_seed();
	test_parse_odd_values();
	test_parse_empty_and_no_meta();
	test_parse_failures();
	test_classify_error();
	test_rate_info();
	return harness_done("test_activecampaign");
}
