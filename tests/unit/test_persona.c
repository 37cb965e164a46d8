/*
 * Unit tests for providers/persona.c: configuration, the request it builds
 * (URL with encoded brackets, headers), parsing of real-shape pages
 * (the documented example, Key-Inflection variants, the pre-2026 schema),
 * cursor extraction from root-relative links, envelope failures and error
 * classification. No network: responses are fixtures or literals.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"

/* Sections of these tests are all named "persona-test". */
#define section(...) section_new("persona-test", __VA_ARGS__)
#include "http.h"
#include "provider.h"

extern const struct provider provider_persona;

static const struct provider *P = &provider_persona;

#define LIST "https://api.withpersona.com/api/v1/connect/connections"

/* Configures with token=sk_test plus the given pairs; NULL on failure. */
static void *configure(const char *url, const char *k, const char *v)
{
	struct conf_section *s = section("token", "sk_test", k, v, NULL);
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

/* Expects configure to fail with -EINVAL and err containing want. */
static void configure_fails(const char *url, struct conf_section *s,
			    const char *want)
{
	char err[CONF_ERRLEN] = "";
	void *st = NULL;

	CHECK_INT(P->configure(s, url, &st, err), -EINVAL);
	CHECK(st == NULL);
	CHECK(strstr(err, want) != NULL);
	CHECK(strstr(err, "sk_test") == NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  err was: %s\n", err);
	section_free(s);
}

/* Parses a fixture (or literal body when path is NULL) into pg. */
static int parse(void *st, const char *cursor, const char *path,
		 const char *body, struct page *pg, char *err, size_t errlen)
{
	struct page_req pr = { .cursor = cursor, .size = 2 };
	struct http_resp r;
	size_t len = 0;
	char *text = path ? slurp(path, &len) : NULL;
	int rc;

	if (path && !text) {
		fprintf(stderr, "cannot read %s\n", path);
		CHECK(text != NULL);
		return -ENOENT;
	}
	resp_text(&r, 200, path ? NULL : body);
	if (path) {
		r.body = text;
		r.len = len;
	}
	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
	err[0] = '\0';
	rc = P->parse_list(st, &pr, &r, pg, err, errlen);
	http_resp_release(&r);
	return rc;
}

/* The i-th element of data[] in the fixture, printed compactly. */
static char *fixture_item(const char *path, int i)
{
	size_t len;
	char *text = slurp(path, &len);
	cJSON *root = cJSON_Parse(text);
	char *out = cJSON_PrintUnformatted(
		cJSON_GetArrayItem(cJSON_GetObjectItem(root, "data"), i));

	cJSON_Delete(root);
	free(text);
	return out;
}

static void check_untouched(const struct page *pg, const char *path)
{
	for (size_t i = 0; i < pg->n; i++) {
		char *want = fixture_item(path, (int)i);
		char *got = cJSON_PrintUnformatted(pg->v[i].obj);

		CHECK_STR(got, want);
		free(want);
		free(got);
	}
}

static void check_mtime(const struct entry *e, long sec, long nsec)
{
	CHECK_INT(e->mtime.tv_sec, sec);
	CHECK_INT(e->mtime.tv_nsec, nsec);
}

static void test_interface(void)
{
	CHECK_STR(P->name, "persona");
	CHECK(P->paging == PAGING_CURSOR);
	CHECK_INT(P->max_page, 100);
	CHECK(P->rate == 4.5);
	CHECK_INT(P->burst, 30);
	CHECK_STR(P->env_secret, "PERSONA_API_KEY");
	CHECK(provider_find("persona") == P);
	CHECK(P->begin_walk && P->rate_info && P->source_url &&
	      P->classify_error && P->release);
}

static void test_configure(void)
{
	void *st;

	st = configure(NULL, "status", "active");
	CHECK(st != NULL);
	if (st) {
		CHECK_STR(P->source_url(st), LIST);
		P->release(st);
	}
	/* A configured /api/v1 is stripped: links already carry it. */
	st = configure("https://persona.example.test/api/v1", "version",
		       "2025-12-08");
	if (st) {
		CHECK_STR(P->source_url(st), "https://persona.example.test"
			  "/api/v1/connect/connections");
		P->release(st);
	}
	st = configure("http://127.0.0.1:8080", NULL, NULL);
	if (st) {
		CHECK_STR(P->source_url(st),
			  "http://127.0.0.1:8080/api/v1/connect/connections");
		P->release(st);
	}
}

static void test_configure_errors(void)
{
	unsetenv("PERSONA_API_KEY");
	configure_fails(NULL, section("status", "active", NULL),
			"PERSONA_API_KEY");
	configure_fails(NULL, section("token", "sk_test", "status", "open",
				      NULL), "status");
	configure_fails(NULL, section("token", "sk_test", "status", "Active",
				      NULL), "'Active'");
	configure_fails(NULL, section("token", "sk_test", "version",
				      "yesterday", NULL), "version");
	configure_fails(NULL, section("token", "sk_test", "version",
				      "2025-12-08\r\nX-Evil: 1", NULL),
			"version");
	configure_fails("http://persona.example.test",
			section("token", "sk_test", NULL), "url");
	configure_fails("http://persona.example.test",
			section("token", "sk_test", NULL), "loopback");
	configure_fails(NULL, section("token", "sk_test\r\nX-Evil: 1", NULL),
			"control characters");
}

/* Unknown keys are left unused so the caller can report them. */
static void test_unknown_key(void)
{
	struct conf_section *s = section("token", "sk_test", "colour", "blue",
					 NULL);
	char err[CONF_ERRLEN];
	void *st = NULL;

	CHECK_INT(P->configure(s, NULL, &st, err), 0);
	CHECK(s->kv[0].used);
	CHECK(!s->kv[1].used);
	if (st)
		P->release(st);
	section_free(s);
}

static void test_env_token(void)
{
	struct conf_section *s = section(NULL);
	struct page_req pr = { .size = 10 };
	struct http_req req = { 0 };
	char err[CONF_ERRLEN];
	void *st = NULL;

	setenv("PERSONA_API_KEY", "persona_sandbox_env", 1);
	CHECK_INT(P->configure(s, NULL, &st, err), 0);
	if (st) {
		CHECK_INT(P->build_list(st, &pr, &req), 0);
		CHECK_STR(http_req_get_header(&req, "Authorization"),
			  "Bearer persona_sandbox_env");
		http_req_release(&req);
		P->release(st);
	}
	unsetenv("PERSONA_API_KEY");
	section_free(s);
}

/* token_file is re-read at every walk (rotated keys). */
static void test_begin_walk(void)
{
	char path[] = "/tmp/connfs-persona-XXXXXX";
	int fd = mkstemp(path);
	struct page_req pr = { .size = 10 };
	struct http_req req = { 0 };
	struct conf_section *s;
	char err[CONF_ERRLEN];
	void *st = NULL;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, "key_one\n", 8) == 8);
	s = section("token_file", path, NULL);
	CHECK_INT(P->configure(s, NULL, &st, err), 0);
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, "key_two\n", 8, 0) == 8);
	close(fd);
	if (st) {
		CHECK_INT(P->begin_walk(st, err, sizeof(err)), 0);
		CHECK_INT(P->build_list(st, &pr, &req), 0);
		CHECK_STR(http_req_get_header(&req, "Authorization"),
			  "Bearer key_two");
		http_req_release(&req);
		P->release(st);
	}
	unlink(path);
	section_free(s);
}

static void test_build_first(void)
{
	void *st = configure(NULL, NULL, NULL);
	struct page_req pr = { .cursor = NULL, .size = 100 };
	struct http_req req = { 0 };

	if (!st)
		return;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url, LIST "?page%5Bsize%5D=100");
	CHECK_STR(http_req_get_header(&req, "Authorization"), "Bearer sk_test");
	CHECK_STR(http_req_get_header(&req, "Accept"), "application/json");
	CHECK_STR(http_req_get_header(&req, "Key-Inflection"), "kebab");
	CHECK(http_req_get_header(&req, "Content-Type") == NULL);
	CHECK(http_req_get_header(&req, "Persona-Version") == NULL);
	CHECK(req.body == NULL);
	CHECK(req.aws_sigv4 == NULL && req.userpwd == NULL);
	CHECK(strstr(req.url, "sk_test") == NULL);
	http_req_release(&req);
	/* Out-of-range sizes are clamped to the documented 1-100. */
	pr.size = 0;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.url, LIST "?page%5Bsize%5D=100");
	http_req_release(&req);
	pr.size = 500;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.url, LIST "?page%5Bsize%5D=100");
	http_req_release(&req);
	P->release(st);
}

static void test_build_later(void)
{
	void *st = configure(NULL, "status", "inactive");
	struct page_req pr = { .cursor = "cxn_2mKs8QwE5rYt1ZxB", .size = 2 };
	struct http_req req = { 0 };

	if (!st)
		return;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.url, LIST "?page%5Bsize%5D=2"
		  "&page%5Bafter%5D=cxn_2mKs8QwE5rYt1ZxB"
		  "&filter%5Bstatus%5D=inactive");
	CHECK_STR(http_req_get_header(&req, "Key-Inflection"), "kebab");
	http_req_release(&req);
	/* An opaque cursor is encoded, never spliced in raw. */
	pr.cursor = "cxn a+b/c&d=e";
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.url, LIST "?page%5Bsize%5D=2"
		  "&page%5Bafter%5D=cxn%20a%2Bb%2Fc%26d%3De"
		  "&filter%5Bstatus%5D=inactive");
	http_req_release(&req);
	P->release(st);

	st = configure(NULL, "version", "2025-10-27");
	if (!st)
		return;
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(http_req_get_header(&req, "Persona-Version"), "2025-10-27");
	CHECK_STR(http_req_get_header(&req, "Key-Inflection"), "kebab");
	http_req_release(&req);
	P->release(st);
}

static void test_parse_page1(void *st)
{
	const char *path = "fixtures/persona_page1.json";
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, NULL, path, NULL, &pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 2);
	if (pg.n == 2) {
		CHECK_STR(pg.v[0].id, "cxn_7bWq1NzR4kTs9PdE");
		CHECK_STR(pg.v[0].name[0], "cxn_7bWq1NzR4kTs9PdE");
		CHECK(pg.v[0].name[1] == NULL);
		check_mtime(&pg.v[0], 1756909327, 0);
		CHECK_STR(pg.v[1].id, "cxn_2mKs8QwE5rYt1ZxB");
		CHECK_STR(pg.v[1].name[0], "cxn_2mKs8QwE5rYt1ZxB");
		/* updated-at, not created-at. */
		check_mtime(&pg.v[1], 1750243459, 0);
	}
	/* The cursor from the encoded link, not the link itself. */
	CHECK_STR(pg.next, "cxn_2mKs8QwE5rYt1ZxB");
	CHECK_INT(pg.total, -1);
	check_untouched(&pg, path);
	page_release(&pg);
}

static void test_parse_raw_link(void *st)
{
	const char *path = "fixtures/persona_page_raw_link.json";
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, "cxn_prev", path, NULL, &pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 1);
	if (pg.n == 1)
		check_mtime(&pg.v[0], 1744389602, 250000000);
	/* Raw brackets, other keys first, value percent-decoded. */
	CHECK_STR(pg.next, "cxn_Fq2Lw8Zr1Kd5Tn3V+x y");
	page_release(&pg);
}

static void test_parse_ends(void *st)
{
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, "cxn_x", "fixtures/persona_last_page.json", NULL,
			&pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 1);
	CHECK(pg.next == NULL);
	if (pg.n == 1)
		check_mtime(&pg.v[0], 1735689600, 0);
	page_release(&pg);

	CHECK_INT(parse(st, NULL, "fixtures/persona_empty.json", NULL, &pg,
			err, sizeof(err)), 0);
	CHECK_INT(pg.n, 0);
	CHECK(pg.next == NULL);
	page_release(&pg);

	/* An empty page ends the walk even if links.next says otherwise. */
	CHECK_INT(parse(st, "cxn_x", "fixtures/persona_empty_next.json", NULL,
			&pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 0);
	CHECK(pg.next == NULL);
	page_release(&pg);
}

static void test_parse_inflections(void *st)
{
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, NULL, "fixtures/persona_camel.json", NULL, &pg,
			err, sizeof(err)), 0);
	CHECK_INT(pg.n, 1);
	if (pg.n == 1) {
		CHECK_STR(pg.v[0].id, "cxn_Camel1Ab2Cd3Ef4G");
		check_mtime(&pg.v[0], 1750243459, 500000000);
	}
	check_untouched(&pg, "fixtures/persona_camel.json");
	page_release(&pg);

	CHECK_INT(parse(st, NULL, "fixtures/persona_snake.json", NULL, &pg,
			err, sizeof(err)), 0);
	CHECK_INT(pg.n, 2);
	if (pg.n == 2) {
		check_mtime(&pg.v[0], 1756909327, 125000000);
		/* No updated_at: created_at. */
		check_mtime(&pg.v[1], 1750147551, 0);
	}
	page_release(&pg);
}

static void test_parse_old_schema(void *st)
{
	const char *path = "fixtures/persona_old_schema.json";
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, NULL, path, NULL, &pg, err, sizeof(err)), 0);
	CHECK_INT(pg.n, 3);
	if (pg.n == 3) {
		CHECK_STR(pg.v[0].id, "cxn_Old1Xy7Zq2Wv5Rt8");
		check_mtime(&pg.v[0], 1739367045, 0);
		/* The guide's `name` attribute does not rename the file. */
		CHECK_STR(pg.v[1].name[0], "cxn_Old2Kd4Jf6Hg8Sa0");
		check_mtime(&pg.v[1], 1737360000, 0);
		/* updated-at null and no created-at: mtime 0. */
		check_mtime(&pg.v[2], 0, 0);
	}
	/* links.next without page[after]: continue after the last id. */
	CHECK_STR(pg.next, "cxn_Old3Mn5Bv7Cx9Za1");
	/* token and scopes are kept: the file is what the API sent. */
	check_untouched(&pg, path);
	page_release(&pg);
}

static void parse_fails(void *st, const char *path, const char *body,
			const char *want)
{
	struct page pg;
	char err[256];

	CHECK_INT(parse(st, NULL, path, body, &pg, err, sizeof(err)),
		  -EPROTO);
	CHECK(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  %s: err was: %s\n", path ? path : body, err);
	page_release(&pg);
}

static void test_parse_failures(void *st)
{
	parse_fails(st, NULL, "<html>Bad Gateway</html>", "not JSON");
	parse_fails(st, NULL, "", "not JSON");
	parse_fails(st, NULL, "{\"data\": [], \"links\": {\"next\": null}} x",
		    "not JSON");
	parse_fails(st, NULL, "[]", "data");
	parse_fails(st, "fixtures/persona_bad_data.json", NULL,
		    "'data' is not an array");
	parse_fails(st, "fixtures/persona_bad_next.json", NULL, "links.next");
	parse_fails(st, "fixtures/persona_no_links.json", NULL, "links.next");
	parse_fails(st, "fixtures/persona_no_id.json", NULL, "data[1]");
	parse_fails(st, "fixtures/persona_null_item.json", NULL, "data[1]");
	parse_fails(st, NULL, "{\"data\": [{\"id\": \"cxn_1\"}], \"links\": "
		    "{\"next\": \"/api/v1/connect/connections?page%5Bafter%5D"
		    "=cxn_%ZZ\"}}", "page[after]");
	parse_fails(st, NULL, "{\"data\": [{\"id\": 17}], \"links\": "
		    "{\"next\": null}}", "data[0]");
}

static void classify(void *st, const char *cursor, struct http_resp *r,
		     struct api_error *e)
{
	struct page_req pr = { .cursor = cursor, .size = 2 };

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

	resp_text(&r, 401, "{\"errors\":[{\"title\":\"Must be "
		  "authenticated to access this endpoint\","
		  "\"details\":\"Token is invalid\"}]}");
	classify(st, NULL, &r, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.msg, "Must be authenticated to access this endpoint: "
		  "Token is invalid");
	CHECK(e.retry_after == -1);

	resp_text(&r, 403, "{\"errors\":[{\"title\":\"Forbidden\","
		  "\"detail\":\"IP not permitted\"}]}");
	classify(st, "cxn_a", &r, &e);
	CHECK(e.cls == API_AUTH);
	CHECK_STR(e.msg, "Forbidden: IP not permitted");

	/* Unknown cursor: restart the walk rather than fail. */
	resp_text(&r, 404, "{\"errors\":[{\"title\":\"Record not found\"}]}");
	classify(st, "cxn_2mKs8QwE5rYt1ZxB", &r, &e);
	CHECK(e.cls == API_RESTART);
	CHECK_STR(e.msg, "Record not found");
	resp_text(&r, 404, "{\"errors\":[{\"title\":\"Record not found\"}]}");
	classify(st, NULL, &r, &e);
	CHECK(e.cls == API_FATAL);

	/* No Retry-After: RateLimit-Reset is seconds until the reset. */
	resp_text(&r, 429, "{\"errors\":[{\"title\":\"Rate limit exceeded\","
		  "\"details\":\"You have hit your rate limit of 300 requests "
		  "/ min.\"}]}");
	resp_header(&r, "RateLimit-Limit", "300");
	resp_header(&r, "RateLimit-Remaining", "0");
	resp_header(&r, "RateLimit-Reset", "41");
	classify(st, "cxn_a", &r, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == 41);
	CHECK_STR(e.msg, "Rate limit exceeded: You have hit your rate limit "
		  "of 300 requests / min.");

	resp_text(&r, 429, "{}");
	resp_header(&r, "retry-after", "7");
	resp_header(&r, "RateLimit-Reset", "41");
	classify(st, NULL, &r, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == 7);

	resp_text(&r, 429, NULL);
	classify(st, NULL, &r, &e);
	CHECK(e.cls == API_THROTTLE);
	CHECK(e.retry_after == -1);

	/* Not the envelope: the raw body, control characters escaped. */
	resp_text(&r, 500, "<html>\n oops</html>");
	classify(st, NULL, &r, &e);
	CHECK(e.cls == API_RETRY);
	CHECK_STR(e.msg, "<html>\\x0a oops</html>");
	CHECK(e.retry_after == -1);

	resp_text(&r, 422, "{\"errors\":[{\"title\":\"Unprocessable entity\","
		  "\"details\":\"a\\u0007b\"},{\"title\":\"Conflict\"}]}");
	classify(st, NULL, &r, &e);
	CHECK(e.cls == API_FATAL);
	CHECK_STR(e.msg, "Unprocessable entity: a\\x07b; Conflict");
}

static void test_rate_info(void)
{
	struct rate_info ri = { 0, 0, 0 };
	struct http_resp r;

	resp_text(&r, 200, NULL);
	resp_header(&r, "RateLimit-Limit", "300");
	resp_header(&r, "ratelimit-remaining", "297");
	resp_header(&r, "RateLimit-Reset", "41");
	P->rate_info(&r, &ri);
	CHECK_INT(ri.limit, 300);
	CHECK_INT(ri.remaining, 297);
	CHECK(ri.reset_in == 41);
	http_resp_release(&r);

	resp_text(&r, 200, NULL);
	resp_header(&r, "RateLimit-Limit", "lots");
	P->rate_info(&r, &ri);
	CHECK_INT(ri.limit, -1);
	CHECK_INT(ri.remaining, -1);
	CHECK(ri.reset_in == -1);
	http_resp_release(&r);
}

int main(void)
{
	void *st;

	unsetenv("PERSONA_API_KEY");
	test_interface();
	test_configure();
	test_configure_errors();
	test_unknown_key();
	test_env_token();
	test_begin_walk();
	test_build_first();
	test_build_later();
	st = configure(NULL, NULL, NULL);
	if (st) {
		test_parse_page1(st);
		test_parse_raw_link(st);
		test_parse_ends(st);
		test_parse_inflections(st);
		test_parse_old_schema(st);
		test_parse_failures(st);
		test_classify(st);
		P->release(st);
	}
	test_rate_info();
	return harness_done("test_persona");
}
