/*
 * Nango `GET /connections` (NangoHQ/nango docs/spec.yaml): Bearer secret
 * key, zero-based page numbers with an explicit limit (the default is
 * 10 000), a strict server that answers 400 to any unknown query parameter
 * and 415 to any non-JSON Content-Type, and the
 * `{"error":{"code","message"}}` envelope. This file builds requests and
 * parses responses only; it knows nothing of paging loops, retries,
 * sleeping or FUSE.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "provider.h"
#include "secret.h"

#define NANGO_MAX_PAGE 2000
#define NANGO_DEFAULT_URL "https://api.nango.dev"
#define NANGO_MAX_TAGS 10
#define NANGO_TAG_KEY_MAX 64
#define NANGO_VALUE_MAX 255
#define NANGO_TAG_PREFIX "tags."

struct nango_tag {
	char *key;		/* lower-cased */
	char *value;
};

struct nango {
	struct secret secret;
	char *list_url;		/* {base}/connections, no query */
	char *integration;	/* integrationId=, or NULL */
	char *search;		/* search=, or NULL */
	struct nango_tag tags[NANGO_MAX_TAGS];
	size_t ntags;
};

/* `url=`, else NANGO_HOSTPORT (the CLI's variable), else the cloud. */
static int ng_url(struct nango *ng, struct conf_section *sec,
		  const char *base_url, char *err)
{
	const char *env = getenv("NANGO_HOSTPORT");
	char *url = NULL;
	int rc;

	if (!base_url && env && *env) {
		rc = conf_url(sec, "url", env, &url, err);
		if (rc)
			return rc;
		base_url = url;
	}
	rc = asprintf(&ng->list_url, "%s/connections",
		      base_url ? base_url : NANGO_DEFAULT_URL);
	free(url);
	if (rc < 0)
		return ng->list_url = NULL, -ENOMEM;
	return 0;
}

/* An optional string key of 1-255 bytes, copied into *out. */
static int ng_string(struct conf_section *sec, const char *key, char **out,
		     char *err)
{
	const char *v = conf_get(sec, key);

	if (!v)
		return 0;
	if (!*v || strlen(v) > NANGO_VALUE_MAX)
		return conf_error(sec, key, err, "must be 1-%d characters",
				  NANGO_VALUE_MAX);
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

/* The server's rule for tag keys: ^[a-zA-Z][a-zA-Z0-9_\-./]*$, <= 64. */
static bool ng_tag_key_ok(const char *k)
{
	size_t n = strlen(k);

	return n >= 1 && n <= NANGO_TAG_KEY_MAX && isalpha((unsigned char)*k) &&
	       strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789_-./") == n;
}

static int ng_tag(struct nango *ng, struct conf_section *sec,
		  struct conf_kv *kv, char *err)
{
	const char *k = kv->key + strlen(NANGO_TAG_PREFIX);
	struct nango_tag *t;

	kv->used = true;
	if (!ng_tag_key_ok(k))
		return conf_error(sec, kv->key, err, "'%s' is not a valid tag "
				  "key (a letter, then letters, digits, "
				  "_-./; at most %d)", k, NANGO_TAG_KEY_MAX);
	if (!*kv->value || strlen(kv->value) > NANGO_VALUE_MAX)
		return conf_error(sec, kv->key, err, "must be 1-%d characters",
				  NANGO_VALUE_MAX);
	if (ng->ntags == NANGO_MAX_TAGS)
		return conf_error(sec, kv->key, err, "at most %d tags can be "
				  "given", NANGO_MAX_TAGS);
	t = &ng->tags[ng->ntags];
	t->key = strdup(k);
	t->value = strdup(kv->value);
	if (!t->key || !t->value) {
		free(t->key);
		free(t->value);
		return -ENOMEM;
	}
	ng->ntags++;
	for (char *p = t->key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (size_t i = 0; i + 1 < ng->ntags; i++)
		if (strcmp(ng->tags[i].key, t->key) == 0)
			return conf_error(sec, kv->key, err, "tag '%s' is "
					  "given twice", t->key);
	return 0;
}

/* Every `tags.<key> = value` of the section, in file order. */
static int ng_tags(struct nango *ng, struct conf_section *sec, char *err)
{
	size_t plen = strlen(NANGO_TAG_PREFIX);

	for (size_t i = 0; i < sec->nkv; i++) {
		int rc;

		if (strncmp(sec->kv[i].key, NANGO_TAG_PREFIX, plen) != 0)
			continue;
		rc = ng_tag(ng, sec, &sec->kv[i], err);
		if (rc)
			return rc;
	}
	return 0;
}

static void ng_release(void *state)
{
	struct nango *ng = state;

	if (!ng)
		return;
	secret_release(&ng->secret);
	free(ng->list_url);
	free(ng->integration);
	free(ng->search);
	for (size_t i = 0; i < ng->ntags; i++) {
		free(ng->tags[i].key);
		free(ng->tags[i].value);
	}
	free(ng);
}

static int ng_configure(struct conf_section *sec, const char *base_url,
			void **state, char *err)
{
	struct nango *ng = calloc(1, sizeof(*ng));
	int rc;

	if (!ng)
		return -ENOMEM;
	rc = ng_url(ng, sec, base_url, err);
	if (!rc)
		rc = ng_string(sec, "integration", &ng->integration, err);
	if (!rc)
		rc = ng_string(sec, "search", &ng->search, err);
	if (!rc)
		rc = ng_tags(ng, sec, err);
	if (!rc)
		rc = secret_configure(&ng->secret, sec, "NANGO_SECRET_KEY",
				      err);
	if (rc) {
		ng_release(ng);
		return rc;
	}
	*state = ng;
	return 0;
}

static int ng_begin_walk(void *state, char *err, size_t errlen)
{
	struct nango *ng = state;

	return secret_refresh(&ng->secret, err, errlen);
}

static unsigned ng_page_size(const struct page_req *pr)
{
	return pr->size && pr->size < NANGO_MAX_PAGE ? pr->size :
						       NANGO_MAX_PAGE;
}

/* limit, page, then only the configured filters: the server is strict. */
static int ng_query(const struct nango *ng, const struct page_req *pr,
		    struct buf *b)
{
	char num[24], key[NANGO_TAG_KEY_MAX + 8];

	snprintf(num, sizeof(num), "%u", ng_page_size(pr));
	if (buf_query(b, "limit", num))
		return -ENOMEM;
	snprintf(num, sizeof(num), "%lu", pr->index);
	if (buf_query(b, "page", num))
		return -ENOMEM;
	if (ng->integration &&
	    buf_query(b, "integrationId", ng->integration))
		return -ENOMEM;
	for (size_t i = 0; i < ng->ntags; i++) {
		snprintf(key, sizeof(key), "tags[%s]", ng->tags[i].key);
		if (buf_query(b, key, ng->tags[i].value))
			return -ENOMEM;
	}
	if (ng->search && buf_query(b, "search", ng->search))
		return -ENOMEM;
	return 0;
}

static int ng_build_list(void *state, const struct page_req *pr,
			 struct http_req *req)
{
	struct nango *ng = state;
	struct buf b = { 0 };

	req->method = "GET";
	if (buf_puts(&b, ng->list_url) || ng_query(ng, pr, &b)) {
		buf_release(&b);
		return -ENOMEM;
	}
	req->url = buf_steal(&b);
	/* No Content-Type, ever: the server answers 415 even on GET. */
	if (http_req_header(req, "Authorization: Bearer %s",
			    ng->secret.value) ||
	    http_req_header(req, "Accept: application/json"))
		return -ENOMEM;
	return 0;
}

/* The list says `created`, a single GET `created_at`; else 0. */
static struct timespec ng_mtime(const cJSON *conn)
{
	static const char *const keys[] = { "created", "created_at", NULL };
	struct timespec ts = { 0 };

	json_time_first(conn, keys, &ts);
	return ts;
}

/* Hands conn over; page_add() copies the strings it points into. */
static int ng_entry(struct page *pg, cJSON *conn)
{
	const char *key = json_str(conn, "provider_config_key");
	const char *cid = json_str(conn, "connection_id");
	struct timespec mtime = ng_mtime(conn);
	char idbuf[32];
	const char *id = json_id(conn, "id", idbuf, sizeof(idbuf));

	return page_add(pg, id, key ? key : "", cid ? cid : id, &mtime, conn);
}

static int ng_parse_list(void *state, const struct page_req *pr,
			 const struct http_resp *resp, struct page *pg,
			 char *err, size_t errlen)
{
	cJSON *root = json_parse(resp->body, resp->len);
	cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "connections");
	size_t n = 0;
	int rc;

	(void)state;
	if (!root) {
		snprintf(err, errlen, "nango: response is not JSON");
		rc = -EPROTO;
	} else if (!cJSON_IsObject(root) || !cJSON_IsArray(list)) {
		snprintf(err, errlen, "nango: response is not an object with "
			 "a connections array");
		rc = -EPROTO;
	} else {
		rc = json_check_ids(list, "id", "nango", pr->index, err,
				    errlen);
	}
	for (; !rc && list->child; n++)
		rc = ng_entry(pg, cJSON_DetachItemFromArray(list, 0));
	if (!rc) {
		pg->total = -1;
		pg->more = n == ng_page_size(pr);
	}
	cJSON_Delete(root);
	return rc;
}

/*
 * X-RateLimit-Reset is the Unix epoch second the 60 s window ends
 * (https://nango.dev/docs/reference/backend/http-api/rate-limits).
 */
static double ng_reset_in(const struct http_resp *resp)
{
	const char *v = http_resp_header(resp, "X-RateLimit-Reset");
	double d;
	char *end;

	if (!v || !isdigit((unsigned char)*v))
		return -1;
	d = strtod(v, &end) - (double)time(NULL);
	if (*end)
		return -1;
	return d < 0 ? 0 : d;
}

/* Validation errors carry no message, only `errors: [{message, path}]`. */
static void ng_detail(const cJSON *error, char *out, size_t len)
{
	const cJSON *first = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(error, "errors"), 0);
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(first, "path");
	const char *msg = json_str(first, "message");
	const cJSON *p;
	struct buf b = { 0 };
	double d;

	if (!msg)
		return;
	buf_puts(&b, msg);
	cJSON_ArrayForEach(p, path) {
		buf_puts(&b, p == path->child ? " (" : ".");
		if (cJSON_IsString(p))
			buf_puts(&b, p->valuestring);
		else if (json_number(p, &d))
			buf_printf(&b, "%.0f", d);
		if (!p->next)
			buf_puts(&b, ")");
	}
	if (b.p)
		api_text(out, len, b.p, b.len);
	buf_release(&b);
}

static void ng_classify_error(void *state, const struct page_req *pr,
			      const struct http_resp *resp,
			      struct api_error *e)
{
	cJSON *root = json_parse(resp->body, resp->len);
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
	const char *code = json_str(error, "code");
	const char *msg = json_str(error, "message");
	char text[sizeof(e->msg)] = "";

	(void)state;
	(void)pr;
	if (code)
		api_text(e->code, sizeof(e->code), code, strlen(code));
	if (msg)
		api_text(text, sizeof(text), msg, strlen(msg));
	else
		ng_detail(error, text, sizeof(text));
	if (!text[0] && code)
		api_text(text, sizeof(text), code, strlen(code));
	if (!text[0] && resp->body)
		api_text(text, sizeof(text), resp->body, resp->len);
	if (text[0])
		memcpy(e->msg, text, sizeof(e->msg));
	if (code && strcmp(code, "too_many_request") == 0)
		e->cls = API_THROTTLE;
	/*
	 * Nango sends X-RateLimit-Reset on every response: it is a wait only
	 * when throttled. Waiting for it after a 5xx would sleep until the
	 * rate window ends (up to a minute) and blow the walk's deadline.
	 */
	e->retry_after = resp->retry_after;
	if (e->retry_after < 0 && e->cls == API_THROTTLE)
		e->retry_after = ng_reset_in(resp);
	cJSON_Delete(root);
}

static void ng_rate_info(const struct http_resp *resp, struct rate_info *ri)
{
	ri->limit = header_long(resp, "X-RateLimit-Limit");
	ri->remaining = header_long(resp, "X-RateLimit-Remaining");
	ri->reset_in = ng_reset_in(resp);
}

static const char *ng_source_url(void *state)
{
	return ((struct nango *)state)->list_url;
}

const struct provider provider_nango = {
	.name = "nango",
	.paging = PAGING_INDEX,
	.max_page = NANGO_MAX_PAGE,
	.rate = 3,
	.burst = 20,
	.env_secret = "NANGO_SECRET_KEY",
	.configure = ng_configure,
	.release = ng_release,
	.begin_walk = ng_begin_walk,
	.build_list = ng_build_list,
	.parse_list = ng_parse_list,
	.classify_error = ng_classify_error,
	.rate_info = ng_rate_info,
	.source_url = ng_source_url,
};
