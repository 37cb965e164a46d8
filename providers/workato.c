/*
 * Workato Developer API `GET /api/connections`
 * (https://docs.workato.com/en/workato-api/connections.html): Bearer
 * API-client token, a data-center host (url=, else WORKATO_HOST as the
 * Workato CLI reads it), no paging at all (one bare JSON array holds every
 * connection) and the `{"message", "errors": {field: [...]}}` envelope.
 * This file builds the request and parses the response only; it knows
 * nothing of FUSE, paging loops, retries or sleeping.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "provider.h"
#include "secret.h"

#define WORKATO_URL "https://www.workato.com"
#define WORKATO_LIST "/api/connections"
#define WORKATO_ENV "WORKATO_API_TOKEN"
#define WORKATO_HOST_ENV "WORKATO_HOST"

struct workato {
	struct secret secret;
	char *base;		/* scheme://host[:port], no /api */
	char *list_url;		/* base + WORKATO_LIST */
	char folder_id[24];	/* empty: no filter */
	char *project_id;
	bool runtime;		/* include_runtime_connections */
	bool tags;		/* includes[]=tags */
};

static void wk_release(void *state)
{
	struct workato *wk = state;

	if (!wk)
		return;
	secret_release(&wk->secret);
	free(wk->base);
	free(wk->list_url);
	free(wk->project_id);
	free(wk);
}

/* url=, else WORKATO_HOST (a URL or a bare host), else the US host. */
static int wk_base(struct workato *wk, struct conf_section *sec,
		   const char *base_url, char *err)
{
	const char *host = getenv(WORKATO_HOST_ENV);
	char *url = NULL;
	size_t n;
	int rc;

	if (base_url)
		rc = conf_url(sec, "url", base_url, &wk->base, err);
	else if (!host || !*host)
		rc = conf_url(sec, "url", WORKATO_URL, &wk->base, err);
	else if (strstr(host, "://"))
		rc = conf_url(sec, WORKATO_HOST_ENV, host, &wk->base, err);
	else if (asprintf(&url, "https://%s", host) < 0)
		rc = -ENOMEM;
	else
		rc = conf_url(sec, WORKATO_HOST_ENV, url, &wk->base, err);
	free(url);
	if (rc)
		return rc;
	n = strlen(wk->base);
	if (n > 4 && strcmp(wk->base + n - 4, "/api") == 0)
		wk->base[n - 4] = '\0';
	if (asprintf(&wk->list_url, "%s" WORKATO_LIST, wk->base) < 0)
		return wk->list_url = NULL, -ENOMEM;
	return 0;
}

static int wk_options(struct workato *wk, struct conf_section *sec, char *err)
{
	unsigned long folder = 0;
	const char *project;
	int rc;

	wk->tags = true;
	rc = conf_uint(sec, "folder_id", 1, ULONG_MAX, &folder, err);
	if (!rc)
		rc = conf_bool(sec, "include_runtime_connections",
			       &wk->runtime, err);
	if (!rc)
		rc = conf_bool(sec, "include_tags", &wk->tags, err);
	if (rc)
		return rc;
	if (folder)
		snprintf(wk->folder_id, sizeof(wk->folder_id), "%lu", folder);
	project = conf_get(sec, "project_id");
	if (project && !*project)
		return conf_error(sec, "project_id", err, "must not be empty");
	wk->project_id = project ? strdup(project) : NULL;
	return project && !wk->project_id ? -ENOMEM : 0;
}

static int wk_configure(struct conf_section *sec, const char *base_url,
			void **state, char *err)
{
	struct workato *wk = calloc(1, sizeof(*wk));
	int rc;

	if (!wk)
		return -ENOMEM;
	rc = wk_base(wk, sec, base_url, err);
	if (!rc)
		rc = wk_options(wk, sec, err);
	if (!rc)
		rc = secret_configure(&wk->secret, sec, WORKATO_ENV, err);
	if (rc) {
		wk_release(wk);
		return rc;
	}
	*state = wk;
	return 0;
}

static int wk_begin_walk(void *state, char *err, size_t errlen)
{
	return secret_refresh(&((struct workato *)state)->secret, err, errlen);
}

static int wk_build_list(void *state, const struct page_req *pr,
			 struct http_req *req)
{
	struct workato *wk = state;
	struct buf url = { 0 };

	(void)pr;
	if (buf_puts(&url, wk->list_url) ||
	    (wk->tags && buf_query(&url, "includes[]", "tags")) ||
	    (wk->folder_id[0] && buf_query(&url, "folder_id", wk->folder_id)) ||
	    (wk->project_id && buf_query(&url, "project_id", wk->project_id)) ||
	    (wk->runtime &&
	     buf_query(&url, "include_runtime_connections", "true"))) {
		buf_release(&url);
		return -ENOMEM;
	}
	req->method = "GET";
	req->url = buf_steal(&url);
	if (http_req_header(req, "Authorization: Bearer %s",
			    wk->secret.value) ||
	    http_req_header(req, "Accept: application/json"))
		return -ENOMEM;
	return 0;
}

static int wk_entry(struct page *pg, cJSON *conn, size_t i, char *err,
		    size_t errlen)
{
	static const char *const times[] = { "updated_at", "created_at", NULL };
	const char *name = json_str(conn, "name");
	struct timespec mtime = { 0 };
	const char *id;
	char num[32];

	id = cJSON_IsObject(conn) ? json_id(conn, "id", num, sizeof(num))
				  : NULL;
	if (!id || !*id) {
		snprintf(err, errlen, "workato: connection %zu is not an "
			 "object with an integer id", i);
		cJSON_Delete(conn);
		return -EPROTO;
	}
	json_time_first(conn, times, &mtime);
	return page_add(pg, id, name ? name : "", id, &mtime, conn);
}

static int wk_parse_list(void *state, const struct page_req *pr,
			 const struct http_resp *resp, struct page *pg,
			 char *err, size_t errlen)
{
	cJSON *root = json_parse(resp->body, resp->len);
	int rc = 0;

	(void)state;
	(void)pr;
	if (!cJSON_IsArray(root)) {
		snprintf(err, errlen, "workato: response is not the documented "
			 "shape: %s", !root ? "not JSON" :
			 cJSON_IsObject(root) ? "an object, not an array of "
			 "connections" : "not an array of connections");
		cJSON_Delete(root);
		return -EPROTO;
	}
	for (size_t i = 0; !rc && root->child; i++)
		rc = wk_entry(pg, cJSON_DetachItemViaPointer(root, root->child),
			      i, err, errlen);
	free(pg->next);
	pg->next = NULL;
	cJSON_Delete(root);
	return rc;
}

/* One member of `errors`: "field msg, msg" (a string or an array). */
static void wk_field(struct buf *b, const cJSON *field)
{
	const char *sep = " ";
	const cJSON *one;

	buf_puts(b, field->string);
	if (cJSON_IsString(field))
		buf_printf(b, " %s", field->valuestring);
	cJSON_ArrayForEach(one, field) {
		if (cJSON_IsString(one)) {
			buf_printf(b, "%s%s", sep, one->valuestring);
			sep = ", ";
		}
	}
}

/* "Validation failed: name can't be blank; folder_id is invalid". */
static void wk_message(const cJSON *root, struct buf *b)
{
	const char *message = json_str(root, "message");
	const cJSON *errs = cJSON_GetObjectItemCaseSensitive(root, "errors");
	const cJSON *field;

	if (message)
		buf_puts(b, message);
	if (!cJSON_IsObject(errs))
		return;
	cJSON_ArrayForEach(field, errs) {
		if (b->len)
			buf_puts(b, field == errs->child ? ": " : "; ");
		wk_field(b, field);
	}
}

static void wk_classify_error(void *state, const struct page_req *pr,
			      const struct http_resp *resp,
			      struct api_error *e)
{
	cJSON *root = json_parse(resp->body, resp->len);
	struct buf msg = { 0 };

	(void)state;
	(void)pr;
	wk_message(root, &msg);
	if (msg.len)
		api_text(e->msg, sizeof(e->msg), msg.p, msg.len);
	else if (resp->body)
		api_text(e->msg, sizeof(e->msg), resp->body, resp->len);
	buf_release(&msg);
	cJSON_Delete(root);
	/* No rate-limit headers are documented; honour Retry-After only. */
	e->retry_after = http_parse_retry_after(
		http_resp_header(resp, "Retry-After"), (double)time(NULL));
	if (resp->status == 429)
		e->cls = API_THROTTLE;
}

static const char *wk_source_url(void *state)
{
	return ((struct workato *)state)->list_url;
}

const struct provider provider_workato = {
	.name = "workato",
	.paging = PAGING_NONE,
	.max_page = 0,
	.rate = 0.9,
	.burst = 6,
	.env_secret = WORKATO_ENV,
	.configure = wk_configure,
	.release = wk_release,
	.begin_walk = wk_begin_walk,
	.build_list = wk_build_list,
	.parse_list = wk_parse_list,
	.classify_error = wk_classify_error,
	.source_url = wk_source_url,
};
