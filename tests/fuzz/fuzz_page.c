/*
 * libFuzzer target for one provider's response parsers. Built once per
 * provider with -DFUZZ_PROVIDER=provider_<name> (see Makefile). Each input
 * is a response body, fed unchanged (as a NUL-terminated copy) to:
 *
 *   - parse_list, status 200, for the first page (no cursor, index 0) and a
 *     later one (a cursor, index 3, a small page size); a parsed page must
 *     hold well-formed entries, a non-empty next cursor if any, and its
 *     cursor must build a request whose URL and headers carry no raw
 *     control bytes (no header or query smuggling);
 *   - the snapshot builder (fs/snapshot.c) over both parsed pages: render,
 *     name, dedupe by id, disambiguate, index; the names must be safe and
 *     unique and both indexes must find every entry;
 *   - classify_error with 400, 401, 403, 404, 429 and 500, with and without
 *     a cursor, once with rate-limit/Retry-After headers whose value is the
 *     input's first line; the message must be NUL-terminated and printable.
 *
 * The provider is configured once in LLVMFuzzerInitialize from a
 * hand-built section and credentials in the environment, as the unit tests
 * do. No network, no files, no FUSE. Everything is released per input so
 * that the leak checker stays quiet.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "naming.h"
#include "provider.h"
#include "snapshot.h"

#ifndef FUZZ_PROVIDER
#error "build with -DFUZZ_PROVIDER=provider_<name>"
#endif

extern const struct provider FUZZ_PROVIDER;
static const struct provider *const P = &FUZZ_PROVIDER;
static void *state;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Credentials and hosts for every provider: only P's are read. */
static void fuzz_env(void)
{
	static const char *const unset[] = {
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
		"AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
		"AWS_ENDPOINT_URL_EVENTBRIDGE", "NANGO_HOSTPORT", "WORKATO_HOST",
		NULL,
	};

	for (size_t i = 0; unset[i]; i++)
		unsetenv(unset[i]);
	setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY",
	       "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 1);
	setenv("AWS_REGION", "us-east-1", 1);
	/* No profile files are read: point them at nothing. */
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/connfs-fuzz", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/connfs-fuzz", 1);
	setenv("ACTIVECAMPAIGN_API_URL", "https://fuzz.api-us1.com", 1);
	setenv("ACTIVECAMPAIGN_API_TOKEN", "fuzz-ac-token", 1);
	setenv("NANGO_SECRET_KEY", "fuzz-nango-key", 1);
	setenv("PERSONA_API_KEY", "persona_sandbox_fuzz", 1);
	setenv("WORKATO_API_TOKEN", "fuzz-workato-token", 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct conf_section sec = {
		.name = (char *)"fuzz",
		.file = NULL,
		.line = 1,
		.file_mode = 0600,
		.kv = NULL,
		.nkv = 0,
	};
	char err[CONF_ERRLEN] = "";
	int rc;

	(void)argc;
	(void)argv;
	fuzz_env();
	rc = P->configure(&sec, NULL, &state, err);
	if (rc) {
		fprintf(stderr, "fuzz_page: %s: configure failed (%d): %s\n",
			P->name, rc, err);
		exit(2);
	}
	return 0;
}

/* --- invariants ---------------------------------------------------------- */

/* A string that must be fully inside a fixed buffer and printable. */
static void check_text(const char *s, size_t cap, bool printable)
{
	size_t n = strnlen(s, cap);

	FUZZ_ASSERT(n < cap);
	if (!printable)
		return;
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

/* The file-name rules of naming.h, for any name the snapshot hands out. */
static void check_name(const char *name)
{
	size_t n = strlen(name);

	FUZZ_ASSERT(n >= 1 && n <= NAME_MAX_BYTES);
	FUZZ_ASSERT(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	FUZZ_ASSERT(name[0] != '.' && name[0] != '-');
	FUZZ_ASSERT(!strchr(name, '/'));
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT((unsigned char)name[i] >= 0x20 && name[i] != 0x7f);
}

static void check_page(const struct page *pg)
{
	FUZZ_ASSERT(pg->n <= pg->cap);
	for (size_t i = 0; i < pg->n; i++) {
		const struct entry *e = &pg->v[i];

		FUZZ_ASSERT(e->id && e->name[0] && e->obj);
	}
	/* An empty cursor would be sent as "page[after]=" or "": no end. */
	FUZZ_ASSERT(!pg->next || pg->next[0]);
	if (P->paging != PAGING_CURSOR)
		FUZZ_ASSERT(!pg->next);
}

/* A URL goes to libcurl as is: nothing raw below 0x21 or above 0x7e. */
static void check_request(const struct http_req *req)
{
	FUZZ_ASSERT(req->url);
	for (const char *p = req->url; *p; p++)
		FUZZ_ASSERT((unsigned char)*p > 0x20 &&
			    (unsigned char)*p < 0x7f);
	for (size_t i = 0; i < req->nheaders; i++)
		FUZZ_ASSERT(!strpbrk(req->headers[i], "\r\n"));
	if (req->body)
		FUZZ_ASSERT(strlen(req->body) == req->body_len);
}

/* Requests for the page after pg: the cursor came from the input. */
static void build_next(const struct page *pg)
{
	struct page_req pr = { .cursor = pg->next, .index = 1, .size = 2 };
	struct http_req req = { 0 };
	int rc;

	if (P->paging != PAGING_CURSOR || !pg->next)
		return;
	rc = P->build_list(state, &pr, &req);
	if (rc == 0)
		check_request(&req);
	else
		/* Only a header with a line break is refused. */
		FUZZ_ASSERT(rc == -EINVAL || rc == -ENOMEM);
	http_req_release(&req);
}

/* --- parse_list + snapshot ----------------------------------------------- */

static int parse(const struct http_resp *resp, const struct page_req *pr,
		 struct page *pg)
{
	char err[256];
	int rc;

	memset(err, 0, sizeof(err));
	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
	rc = P->parse_list(state, pr, resp, pg, err, sizeof(err));
	if (rc) {
		FUZZ_ASSERT(rc == -EPROTO);
		FUZZ_ASSERT(err[0]);
		check_text(err, sizeof(err), false);
		/* The pager releases a failed page: it must be releasable. */
		page_release(pg);
		return rc;
	}
	check_page(pg);
	build_next(pg);
	return 0;
}

static void check_snapshot(const struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct snap_entry *e = s->v[i];

		check_name(entry_name(e));
		FUZZ_ASSERT(strlen(entry_name(e)) == e->name_len);
		FUZZ_ASSERT(e->size == strlen(e->data));
		FUZZ_ASSERT(e->size && e->data[e->size - 1] == '\n');
		/* Sorted by name, names unique, ids unique. */
		if (i)
			FUZZ_ASSERT(strcmp(entry_name(s->v[i - 1]),
					   entry_name(e)) < 0);
		for (size_t j = 0; j < i; j++)
			FUZZ_ASSERT(entry_cmp_id(&s->v[j], &e) != 0 &&
				    s->v[j]->ino != e->ino);
		FUZZ_ASSERT(snapshot_find(s, entry_name(e)) == e);
		FUZZ_ASSERT(snapshot_find_ino(s, e->ino) == e);
	}
}

static void build_snapshot(struct page *a, struct page *b)
{
	struct snap_builder bld = { .instance = "fuzz" };
	struct snapshot *s;

	/* A restart (NULL page) first, as the pager may send one. */
	FUZZ_ASSERT(snap_builder_add(&bld, NULL) == 0);
	if ((a && snap_builder_add(&bld, a)) ||
	    (b && snap_builder_add(&bld, b))) {
		snap_builder_release(&bld);
		return;
	}
	s = snap_builder_finish(&bld, NULL);
	snap_builder_release(&bld);
	FUZZ_ASSERT(s);
	check_snapshot(s);
	snapshot_get(s);
	snapshot_put(s);
	snapshot_put(s);
}

/* --- classify_error ------------------------------------------------------ */

static void classify(const struct http_resp *resp, const struct page_req *pr)
{
	struct api_error e;

	/* What pager.c's generic_class() fills in first. */
	memset(&e, 0, sizeof(e));
	e.status = resp->status;
	e.retry_after = resp->retry_after;
	e.cls = resp->status == 429 ? API_THROTTLE :
		resp->status >= 500 ? API_RETRY :
		resp->status == 401 || resp->status == 403 ? API_AUTH :
		API_FATAL;
	P->classify_error(state, pr, resp, &e);
	FUZZ_ASSERT(e.cls >= API_RETRY && e.cls <= API_FATAL);
	/* A restart without a cursor would start the same walk again. */
	FUZZ_ASSERT(e.cls != API_RESTART || pr->cursor);
	check_text(e.code, sizeof(e.code), true);
	check_text(e.msg, sizeof(e.msg), true);
	if (P->rate_info) {
		struct rate_info ri = { 0 };

		P->rate_info(resp, &ri);
	}
}

static const char *const header_names[] = {
	"Retry-After", "x-amz-retry-after", "RateLimit-Limit",
	"RateLimit-Remaining", "RateLimit-Reset", "X-RateLimit-Limit",
	"X-RateLimit-Remaining", "X-RateLimit-Reset", NULL,
};

/* The input's first line (at most 64 bytes) as every rate header. */
static void set_headers(struct http_resp *resp, const char *body, size_t len)
{
	size_t n = 0;

	while (n < len && n < 64 && body[n] != '\n')
		n++;
	for (size_t i = 0; header_names[i]; i++) {
		resp->headers[i].name = strdup(header_names[i]);
		resp->headers[i].value = strndup(body, n);
		if (!resp->headers[i].name || !resp->headers[i].value)
			abort();
		resp->nheaders = i + 1;
	}
	resp->retry_after = -1;
}

static void clear_headers(struct http_resp *resp)
{
	for (size_t i = 0; i < resp->nheaders; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	resp->nheaders = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 400, 401, 403, 404, 429, 500 };
	struct page_req first = { .cursor = NULL, .index = 0,
				  .size = P->max_page ? P->max_page : 100 };
	struct page_req later = { .cursor = "fuzz-cursor-0001", .index = 3,
				  .size = 2 };
	struct http_resp resp;
	struct page pa, pb;
	bool oka, okb;
	char *body = malloc(size + 1);

	if (!body)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	/* http.c hands over NULL for an empty body. */
	resp.body = size ? body : NULL;
	resp.len = size;
	resp.retry_after = -1;

	oka = parse(&resp, &first, &pa) == 0;
	okb = parse(&resp, &later, &pb) == 0;
	if (oka || okb)
		build_snapshot(oka ? &pa : NULL, okb ? &pb : NULL);
	if (oka)
		page_release(&pa);
	if (okb)
		page_release(&pb);

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		resp.status = statuses[i];
		resp.retry_after = i == 4 ? 7.5 : -1;
		classify(&resp, &first);
		classify(&resp, &later);
	}
	resp.status = 429;
	set_headers(&resp, body, size);
	classify(&resp, &first);
	classify(&resp, &later);
	clear_headers(&resp);

	free(body);
	return 0;
}
