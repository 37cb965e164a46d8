/*
 * ActiveCampaign v3 `GET /api/3/connections` (Deep Data integrations,
 * https://developers.activecampaign.com/reference/url): per-account
 * API URL, `Api-Token` header, limit/offset paging with `meta.total` sent as
 * a string, numbers-as-strings everywhere, ISO-8601 times with the account's
 * local offset. This file builds requests and parses responses only; it
 * knows nothing of paging loops, retries, sleeping or FUSE.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "provider.h"
#include "secret.h"

#define AC_MAX_PAGE 100
#define AC_API_PATH "/api/3"

struct activecampaign {
	struct secret secret;
	char *list_url;		/* {base}/api/3/connections, no query */
	char *service;		/* filters[service], or NULL */
	char *externalid;	/* filters[externalid], or NULL */
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * `url=`, else ACTIVECAMPAIGN_API_URL, /api/3 added. No default: the URL is
 * per account (Settings -> Developer) and not derivable from its name.
 */
static int ac_url(struct activecampaign *ac, struct conf_section *sec,
		  const char *base_url, char *err)
{
	const char *env = getenv("ACTIVECAMPAIGN_API_URL");
	char *url = NULL;
	int rc;

	if (!base_url && (!env || !*env))
		return conf_error(sec, "url", err, "no API URL: set url or "
				  "ACTIVECAMPAIGN_API_URL");
	if (!base_url) {
		rc = conf_url(sec, "url", env, &url, err);
		if (rc)
			return rc;
		base_url = url;
	}
	rc = asprintf(&ac->list_url, "%s%s/connections", base_url,
		      ends_with(base_url, AC_API_PATH) ? "" : AC_API_PATH);
	free(url);
	if (rc < 0)
		return ac->list_url = NULL, -ENOMEM;
	return 0;
}

/* An optional non-empty filter key, copied into *out. */
static int ac_filter(struct conf_section *sec, const char *key, char **out,
		     char *err)
{
	const char *v = conf_get(sec, key);

	if (!v)
		return 0;
	if (!*v)
		return conf_error(sec, key, err, "must not be empty");
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

static void ac_release(void *state)
{
	struct activecampaign *ac = state;

	if (!ac)
		return;
	secret_release(&ac->secret);
	free(ac->list_url);
	free(ac->service);
	free(ac->externalid);
	free(ac);
}

static int ac_configure(struct conf_section *sec, const char *base_url,
			void **state, char *err)
{
	struct activecampaign *ac = calloc(1, sizeof(*ac));
	int rc;

	if (!ac)
		return -ENOMEM;
	rc = ac_url(ac, sec, base_url, err);
	if (!rc)
		rc = ac_filter(sec, "service", &ac->service, err);
	if (!rc)
		rc = ac_filter(sec, "externalid", &ac->externalid, err);
	if (!rc)
		rc = secret_configure(&ac->secret, sec,
				      "ACTIVECAMPAIGN_API_TOKEN", err);
	if (rc) {
		ac_release(ac);
		return rc;
	}
	*state = ac;
	return 0;
}

static int ac_begin_walk(void *state, char *err, size_t errlen)
{
	struct activecampaign *ac = state;

	return secret_refresh(&ac->secret, err, errlen);
}

/* limit is at most 100 (developers.activecampaign.com/reference/pagination). */
static unsigned ac_page_size(const struct page_req *pr)
{
	return pr->size && pr->size < AC_MAX_PAGE ? pr->size : AC_MAX_PAGE;
}

static int ac_build_list(void *state, const struct page_req *pr,
			 struct http_req *req)
{
	struct activecampaign *ac = state;
	unsigned size = ac_page_size(pr);
	struct buf b = { 0 };
	char num[24];

	req->method = "GET";
	if (buf_puts(&b, ac->list_url))
		goto nomem;
	snprintf(num, sizeof(num), "%u", size);
	if (buf_query(&b, "limit", num))
		goto nomem;
	snprintf(num, sizeof(num), "%llu",
		 (unsigned long long)pr->index * size);
	if (buf_query(&b, "offset", num))
		goto nomem;
	if (ac->service && buf_query(&b, "filters[service]", ac->service))
		goto nomem;
	if (ac->externalid &&
	    buf_query(&b, "filters[externalid]", ac->externalid))
		goto nomem;
	req->url = buf_steal(&b);
	if (http_req_header(req, "Api-Token: %s", ac->secret.value) ||
	    http_req_header(req, "Accept: application/json"))
		return -ENOMEM;
	return 0;
nomem:
	buf_release(&b);
	return -ENOMEM;
}

/* meta.total: a decimal string (as sent) or a number; -1 when absent. */
static int ac_total(const cJSON *root, long long *total)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "meta");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(meta, "total");
	long long v;
	double d;
	char *end;

	*total = -1;
	if (meta && !cJSON_IsNull(meta) && !cJSON_IsObject(meta))
		return -EPROTO;
	if (!t || cJSON_IsNull(t))
		return 0;
	if (json_number(t, &d)) {
		if (!(d >= 0 && d <= 9e15) || d != (double)(long long)d)
			return -EPROTO;
		*total = (long long)d;
		return 0;
	}
	if (!cJSON_IsString(t) || !isdigit((unsigned char)t->valuestring[0]))
		return -EPROTO;
	errno = 0;
	v = strtoll(t->valuestring, &end, 10);
	if (*end || errno)
		return -EPROTO;
	*total = v;
	return 0;
}

/* Update time, else creation time, else 0 (never "now"). */
static struct timespec ac_mtime(const cJSON *conn)
{
	static const char *const keys[] = { "udate", "cdate", NULL };
	struct timespec ts = { 0 };

	json_time_first(conn, keys, &ts);
	return ts;
}

/* Hands conn over; page_add() copies the strings it points into. */
static int ac_entry(struct page *pg, cJSON *conn)
{
	const char *name = json_str(conn, "name");
	struct timespec mtime = ac_mtime(conn);
	char idbuf[32];
	const char *id = json_id(conn, "id", idbuf, sizeof(idbuf));

	return page_add(pg, id, name ? name : "", id, &mtime, conn);
}

static int ac_parse_list(void *state, const struct page_req *pr,
			 const struct http_resp *resp, struct page *pg,
			 char *err, size_t errlen)
{
	cJSON *root = json_parse(resp->body, resp->len);
	cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "connections");
	unsigned size = ac_page_size(pr);
	unsigned long long offset = (unsigned long long)pr->index * size;
	long long total;
	size_t n = 0;
	int rc;

	(void)state;
	if (!root) {
		snprintf(err, errlen, "activecampaign: response is not JSON");
		rc = -EPROTO;
	} else if (!cJSON_IsObject(root) || !cJSON_IsArray(list)) {
		snprintf(err, errlen, "activecampaign: response is not an "
			 "object with a connections array");
		rc = -EPROTO;
	} else if (ac_total(root, &total)) {
		snprintf(err, errlen, "activecampaign: meta.total is not a "
			 "number");
		rc = -EPROTO;
	} else {
		rc = json_check_ids(list, "id", "activecampaign", pr->index, err,
				    errlen);
	}
	for (; !rc && list->child; n++)
		rc = ac_entry(pg, cJSON_DetachItemFromArray(list, 0));
	if (!rc) {
		pg->total = total;
		pg->more = n == size;
		if (total >= 0 && offset + n >= (unsigned long long)total)
			pg->more = false;
	}
	cJSON_Delete(root);
	return rc;
}

/* `{"message"}` (404 not found) or `{"errors":[{title,detail,code}]}` (422). */
static void ac_classify_error(void *state, const struct page_req *pr,
			      const struct http_resp *resp,
			      struct api_error *e)
{
	cJSON *root = json_parse(resp->body, resp->len);
	const cJSON *first = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(root, "errors"), 0);
	const char *msg = json_str(root, "message");
	const char *title = json_str(first, "title");
	const char *detail = json_str(first, "detail");
	const char *code = json_str(first, "code");
	char text[sizeof(e->msg)];

	(void)state;
	(void)pr;
	if (detail && !*detail)
		detail = NULL;
	if (code)
		api_text(e->code, sizeof(e->code), code, strlen(code));
	if (!msg && title && detail) {
		snprintf(text, sizeof(text), "%s: %s", title, detail);
		msg = text;
	} else if (!msg) {
		msg = title ? title : detail;
	}
	if (msg)
		api_text(e->msg, sizeof(e->msg), msg, strlen(msg));
	else if (resp->body)
		api_text(e->msg, sizeof(e->msg), resp->body, resp->len);
	if (resp->retry_after >= 0)
		e->retry_after = resp->retry_after;
	cJSON_Delete(root);
}

static void ac_rate_info(const struct http_resp *resp, struct rate_info *ri)
{
	ri->limit = header_long(resp, "RateLimit-Limit");
	ri->remaining = header_long(resp, "RateLimit-Remaining");
	ri->reset_in = -1;
}

static const char *ac_source_url(void *state)
{
	return ((struct activecampaign *)state)->list_url;
}

const struct provider provider_activecampaign = {
	.name = "activecampaign",
	.paging = PAGING_INDEX,
	.max_page = AC_MAX_PAGE,
	.rate = 5,
	.burst = 1,
	.env_secret = "ACTIVECAMPAIGN_API_TOKEN+ACTIVECAMPAIGN_API_URL",
	.configure = ac_configure,
	.release = ac_release,
	.begin_walk = ac_begin_walk,
	.build_list = ac_build_list,
	.parse_list = ac_parse_list,
	.classify_error = ac_classify_error,
	.rate_info = ac_rate_info,
	.source_url = ac_source_url,
};
