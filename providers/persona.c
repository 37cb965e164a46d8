/*
 * Persona Connect "List all Connections" (persona-id/persona-openapi,
 * https://docs.withpersona.com/pagination): Bearer API key,
 * `GET /api/v1/connect/connections`, cursor paging by object id through
 * `page[after]` taken from the root-relative `links.next`, the
 * `{"errors":[{"title","details"}]}` envelope and `RateLimit-*` headers
 * whose reset is in seconds. This file builds requests and parses responses
 * only; it knows nothing of FUSE, paging loops, retries or sleeping.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "provider.h"
#include "secret.h"

#define PERSONA_URL "https://api.withpersona.com"
#define PERSONA_LIST "/api/v1/connect/connections"
#define PERSONA_ENV "PERSONA_API_KEY"
#define PERSONA_MAX_PAGE 100

struct persona {
	struct secret secret;
	char *base;		/* scheme://host[:port], no /api/v1 */
	char *list_url;		/* base + PERSONA_LIST */
	char *version;		/* Persona-Version, or NULL */
	const char *status;	/* filter[status], or NULL (static string) */
};

static const char *const statuses[] = { "pending", "active", "inactive",
					NULL };

/* Spellings of one attribute under the three Key-Inflection settings. */
static const char *const updated_keys[] = { "updated-at", "updated_at",
					    "updatedAt", NULL };
static const char *const created_keys[] = { "created-at", "created_at",
					    "createdAt", NULL };

static void ps_release(void *state)
{
	struct persona *ps = state;

	if (!ps)
		return;
	secret_release(&ps->secret);
	free(ps->base);
	free(ps->list_url);
	free(ps->version);
	free(ps);
}

static int ps_base(struct persona *ps, struct conf_section *sec,
		   const char *base_url, char *err)
{
	size_t n;
	int rc = conf_url(sec, "url", base_url ? base_url : PERSONA_URL,
			  &ps->base, err);

	if (rc)
		return rc;
	/* links.next is root-relative with /api/v1, so the base must not. */
	n = strlen(ps->base);
	if (n > 7 && strcmp(ps->base + n - 7, "/api/v1") == 0)
		ps->base[n - 7] = '\0';
	if (asprintf(&ps->list_url, "%s" PERSONA_LIST, ps->base) < 0)
		return ps->list_url = NULL, -ENOMEM;
	return 0;
}

/* A date such as 2025-12-08; the enum grows, so check the form only. */
static bool ps_date(const char *s)
{
	for (size_t i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? s[i] != '-' :
		    !isdigit((unsigned char)s[i]))
			return false;
	return s[10] == '\0';
}

static int ps_options(struct persona *ps, struct conf_section *sec, char *err)
{
	const char *version = conf_get(sec, "version");
	const char *status = conf_get(sec, "status");

	if (version && !ps_date(version))
		return conf_error(sec, "version", err, "'%s' is not a "
				  "Persona-Version date such as 2025-12-08",
				  version);
	if (status) {
		for (size_t i = 0; statuses[i]; i++)
			if (strcmp(status, statuses[i]) == 0)
				ps->status = statuses[i];
		if (!ps->status)
			return conf_error(sec, "status", err, "'%s' is not "
					  "pending, active or inactive",
					  status);
	}
	ps->version = version ? strdup(version) : NULL;
	return version && !ps->version ? -ENOMEM : 0;
}

static int ps_configure(struct conf_section *sec, const char *base_url,
			void **state, char *err)
{
	struct persona *ps = calloc(1, sizeof(*ps));
	int rc;

	if (!ps)
		return -ENOMEM;
	rc = ps_base(ps, sec, base_url, err);
	if (!rc)
		rc = ps_options(ps, sec, err);
	if (!rc)
		rc = secret_configure(&ps->secret, sec, PERSONA_ENV, err);
	if (rc) {
		ps_release(ps);
		return rc;
	}
	*state = ps;
	return 0;
}

static int ps_begin_walk(void *state, char *err, size_t errlen)
{
	return secret_refresh(&((struct persona *)state)->secret, err, errlen);
}

static int ps_build_list(void *state, const struct page_req *pr,
			 struct http_req *req)
{
	struct persona *ps = state;
	struct buf url = { 0 };
	unsigned size = pr->size;
	char num[16];

	if (size == 0 || size > PERSONA_MAX_PAGE)
		size = PERSONA_MAX_PAGE;
	snprintf(num, sizeof(num), "%u", size);
	if (buf_puts(&url, ps->list_url) ||
	    buf_query(&url, "page[size]", num) ||
	    (pr->cursor && buf_query(&url, "page[after]", pr->cursor)) ||
	    (ps->status && buf_query(&url, "filter[status]", ps->status))) {
		buf_release(&url);
		return -ENOMEM;
	}
	req->method = "GET";
	req->url = buf_steal(&url);
	if (http_req_header(req, "Authorization: Bearer %s",
			    ps->secret.value) ||
	    http_req_header(req, "Accept: application/json") ||
	    http_req_header(req, "Key-Inflection: kebab") ||
	    (ps->version &&
	     http_req_header(req, "Persona-Version: %s", ps->version)))
		return -ENOMEM;
	return 0;
}

static int ps_entry(struct page *pg, cJSON *conn, size_t i, char *err,
		    size_t errlen)
{
	const char *id = json_str(conn, "id");
	const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(conn,
							      "attributes");
	struct timespec mtime = { 0 };

	if (!cJSON_IsObject(conn) || !id) {
		snprintf(err, errlen, "persona: data[%zu] is not a connection "
			 "object with a string id", i);
		cJSON_Delete(conn);
		return -EPROTO;
	}
	if (!json_time_first(attrs, updated_keys, &mtime))
		json_time_first(attrs, created_keys, &mtime);
	return page_add(pg, id, id, NULL, &mtime, conn);
}

/*
 * The value of page[after] in a link such as
 * /api/v1/connect/connections?page%5Bafter%5D=cxn_X&page%5Bsize%5D=2, the
 * key raw or encoded. Returns 0 with *out NULL when the link has none.
 */
static int ps_link_cursor(const char *link, char **out)
{
	const char *q = strchr(link, '?');
	char *query, *save = NULL;
	int rc = 0;

	*out = NULL;
	if (!q)
		return 0;
	query = strndup(q + 1, strcspn(q + 1, "#"));
	if (!query)
		return -ENOMEM;
	for (char *p = strtok_r(query, "&", &save); p && !*out && !rc;
	     p = strtok_r(NULL, "&", &save)) {
		char *val = strchr(p, '=');

		if (!val)
			continue;
		*val++ = '\0';
		if (url_decode(p) || strcmp(p, "page[after]") != 0)
			continue;
		if (url_decode(val))
			rc = -EINVAL;
		else if (*val && !(*out = strdup(val)))
			rc = -ENOMEM;
	}
	free(query);
	return rc;
}

static int ps_next(const cJSON *next, const cJSON *data, struct page *pg,
		   char *err, size_t errlen)
{
	const cJSON *last = cJSON_GetArrayItem(data,
					       cJSON_GetArraySize(data) - 1);
	char *cur = NULL;
	int rc;

	free(pg->next);
	pg->next = NULL;
	/* links.next == null is the end; so is an empty page. */
	if (cJSON_IsNull(next) || !last)
		return 0;
	rc = ps_link_cursor(next->valuestring, &cur);
	if (rc == -EINVAL) {
		snprintf(err, errlen, "persona: links.next has a malformed "
			 "page[after] value");
		return -EPROTO;
	}
	if (rc)
		return rc;
	if (!cur && json_str(last, "id") && *json_str(last, "id"))
		cur = strdup(json_str(last, "id"));
	if (!cur) {
		snprintf(err, errlen, "persona: links.next has no page[after] "
			 "and the last connection has no id to continue from");
		return -EPROTO;
	}
	pg->next = cur;
	return 0;
}

static int ps_parse_list(void *state, const struct page_req *pr,
			 const struct http_resp *resp, struct page *pg,
			 char *err, size_t errlen)
{
	cJSON *root = json_parse(resp->body, resp->len);
	cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
	cJSON *links = cJSON_GetObjectItemCaseSensitive(root, "links");
	cJSON *next = cJSON_GetObjectItemCaseSensitive(links, "next");
	int rc = 0;

	(void)state;
	(void)pr;
	if (!root || !cJSON_IsArray(data) || !cJSON_IsObject(links) ||
	    (!cJSON_IsString(next) && !cJSON_IsNull(next))) {
		snprintf(err, errlen, "persona: response is not the documented "
			 "shape: %s", !root ? "not JSON" :
			 !cJSON_IsArray(data) ? "'data' is not an array" :
			 "'links.next' is not a string or null");
		cJSON_Delete(root);
		return -EPROTO;
	}
	/* Before detaching: the fallback cursor is the last element's id. */
	rc = ps_next(next, data, pg, err, errlen);
	for (size_t i = 0; !rc && data->child; i++)
		rc = ps_entry(pg, cJSON_DetachItemViaPointer(data, data->child),
			      i, err, errlen);
	cJSON_Delete(root);
	return rc;
}

/* A header holding non-negative (delta) seconds; -1 if absent or bad. */
static double ps_seconds(const struct http_resp *resp, const char *name)
{
	const char *v = http_resp_header(resp, name);
	char *end;
	double d;

	if (!v)
		return -1;
	d = strtod(v, &end);
	return end != v && *end == '\0' && isfinite(d) && d >= 0 ? d : -1;
}

/* "title: details" for each error; `detail` accepted as well. */
static void ps_message(const cJSON *root, struct buf *b)
{
	const cJSON *errs = cJSON_GetObjectItemCaseSensitive(root, "errors");
	const cJSON *one;

	cJSON_ArrayForEach(one, errs) {
		const char *title = json_str(one, "title");
		const char *details = json_str(one, "details");

		if (!details)
			details = json_str(one, "detail");
		if (!title && !details)
			continue;
		buf_printf(b, "%s%s%s%s", b->len ? "; " : "",
			   title ? title : "", title && details ? ": " : "",
			   details ? details : "");
	}
}

static void ps_classify_error(void *state, const struct page_req *pr,
			      const struct http_resp *resp,
			      struct api_error *e)
{
	cJSON *root = json_parse(resp->body, resp->len);
	const char *ra = http_resp_header(resp, "Retry-After");
	struct buf msg = { 0 };

	(void)state;
	ps_message(root, &msg);
	if (msg.len)
		api_text(e->msg, sizeof(e->msg), msg.p, msg.len);
	else if (resp->body)
		api_text(e->msg, sizeof(e->msg), resp->body, resp->len);
	buf_release(&msg);
	cJSON_Delete(root);
	e->retry_after = http_parse_retry_after(ra, (double)time(NULL));
	if (resp->status == 429) {
		e->cls = API_THROTTLE;
		/* No Retry-After documented: seconds until the reset. */
		if (e->retry_after < 0)
			e->retry_after = ps_seconds(resp, "RateLimit-Reset");
	} else if (resp->status == 404 && pr && pr->cursor) {
		e->cls = API_RESTART;
	}
}

static void ps_rate_info(const struct http_resp *resp, struct rate_info *ri)
{
	ri->limit = header_long(resp, "RateLimit-Limit");
	ri->remaining = header_long(resp, "RateLimit-Remaining");
	ri->reset_in = ps_seconds(resp, "RateLimit-Reset");
}

static const char *ps_source_url(void *state)
{
	return ((struct persona *)state)->list_url;
}

const struct provider provider_persona = {
	.name = "persona",
	.paging = PAGING_CURSOR,
	.max_page = PERSONA_MAX_PAGE,
	.rate = 4.5,
	.burst = 30,
	.env_secret = PERSONA_ENV,
	.configure = ps_configure,
	.release = ps_release,
	.begin_walk = ps_begin_walk,
	.build_list = ps_build_list,
	.parse_list = ps_parse_list,
	.classify_error = ps_classify_error,
	.rate_info = ps_rate_info,
	.source_url = ps_source_url,
};
