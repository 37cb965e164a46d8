/*
 * The account identity of a remote: a SHA-256 over everything that
 * decides which connections a walk lists — the provider type, the
 * section's keys (filters, URL, profile; tuning keys like ttl or rate
 * aside), and either the provider's identity hook or, without one, the
 * first page's request (base URL, query, body, and the credential headers
 * of token providers). A saved listing is keyed by it, so a listing
 * can never be served for another account or filter. It is one-way: no
 * token can be recovered from it.
 *
 * The rate budget of a remote is a second such hash over what the API's
 * limit applies to: the account, not the filters: the provider type, the
 * API's origin (scheme, host, port) and the credentials (the token
 * headers, or what the provider says of its credentials). Sections that
 * differ only in what they list share one budget.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "remote.h"

/* Keys that change how a walk runs, not what it lists. */
static const char *const tuning[] = {
	"ttl", "timeout", "deadline", "walk_limit", "max_stale",
	"refresh_ahead", "rate", "concurrency", "page_size", "max_body_mb",
	"max_pages", "max_entries", "ca_file", "proxy", NULL,
};

static bool is_tuning(const char *key)
{
	for (size_t i = 0; tuning[i]; i++)
		if (!strcmp(key, tuning[i]))
			return true;
	return false;
}

/* Adds s and a separator that no key or value contains. */
static void add(EVP_MD_CTX *ctx, const char *s, size_t len)
{
	EVP_DigestUpdate(ctx, s, len);
	EVP_DigestUpdate(ctx, "\0", 1);
}

static void add_str(EVP_MD_CTX *ctx, const char *s)
{
	add(ctx, s ? s : "", s ? strlen(s) : 0);
}

static int add_request(EVP_MD_CTX *ctx, struct remote *r)
{
	struct page_req pr = { .size = r->page_size };
	struct http_req req = { 0 };
	int rc = r->prov->build_list(r->state, &pr, &req);

	if (!rc) {
		add_str(ctx, req.method);
		add_str(ctx, req.url);
		add(ctx, req.body ? req.body : "", req.body ? req.body_len : 0);
		add_str(ctx, req.aws_sigv4);
		for (size_t i = 0; i < req.nheaders; i++)
			add_str(ctx, req.headers[i]);
	}
	http_req_release(&req);
	return rc;
}

/* scheme://host[:port] of url: its length. */
static size_t origin_len(const char *url)
{
	const char *p = strstr(url, "://");

	return p ? strcspn(p + 3, "/?") + (size_t)(p + 3 - url) : strlen(url);
}

static void add_account(EVP_MD_CTX *ctx, struct remote *r)
{
	struct page_req pr = { .size = r->page_size };
	struct http_req req = { 0 };
	char desc[512] = "";

	if (r->prov->describe_auth)
		r->prov->describe_auth(r->state, desc, sizeof(desc));
	add_str(ctx, desc);
	if (r->prov->identity) {
		add_str(ctx, r->prov->source_url ?
			r->prov->source_url(r->state) : "");
		add_str(ctx, getenv("AWS_ACCESS_KEY_ID"));
		return;
	}
	if (!r->prov->build_list(r->state, &pr, &req)) {
		add(ctx, req.url, origin_len(req.url));
		for (size_t i = 0; i < req.nheaders; i++)
			add_str(ctx, req.headers[i]);
	}
	http_req_release(&req);
}

static int hex_digest(EVP_MD_CTX *ctx, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	if (!EVP_DigestFinal_ex(ctx, md, &len))
		return -EIO;
	for (unsigned i = 0; i < len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int remote_budget(struct remote *r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -ENOMEM;

	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		add_str(ctx, "connfs budget 1");
		add_str(ctx, r->prov->name);
		add_account(ctx, r);
		rc = hex_digest(ctx, r->budget);
	}
	EVP_MD_CTX_free(ctx);
	return rc;
}

int remote_identity(struct remote *r, const struct conf_section *sec)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char extra[512] = "";
	int rc;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	add_str(ctx, "connfs listing 1");
	add_str(ctx, r->prov->name);
	for (size_t i = 0; i < sec->nkv; i++)
		if (!is_tuning(sec->kv[i].key)) {
			add_str(ctx, sec->kv[i].key);
			add_str(ctx, sec->kv[i].value);
		}
	/* A provider with its own hook may need credentials to build a
	 * request, and those may not be at hand yet (an SSO login). */
	if (r->prov->identity)
		rc = r->prov->identity(r->state, extra, sizeof(extra));
	else
		rc = add_request(ctx, r);
	add_str(ctx, extra);
	if (!rc)
		rc = hex_digest(ctx, r->identity);
	EVP_MD_CTX_free(ctx);
	return rc ? rc : remote_budget(r);
}
