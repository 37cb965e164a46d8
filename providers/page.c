/*
 * Page and entry bookkeeping and response helpers shared by every provider.
 * See provider.h. Knows no provider, no transport and no FUSE.
 */
#include "buf.h"
#include "http.h"
#include "provider.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int page_add(struct page *pg, const char *id, const char *name0,
	     const char *name1, const struct timespec *mtime, cJSON *obj)
{
	struct entry *e;

	if (pg->n == pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 16;
		struct entry *v = realloc(pg->v, cap * sizeof(*v));

		if (!v) {
			cJSON_Delete(obj);
			return -ENOMEM;
		}
		pg->v = v;
		pg->cap = cap;
	}
	e = &pg->v[pg->n];
	memset(e, 0, sizeof(*e));
	e->id = strdup(id);
	e->name[0] = strdup(name0 ? name0 : "");
	e->name[1] = name1 ? strdup(name1) : NULL;
	if (mtime)
		e->mtime = *mtime;
	e->obj = obj;
	if (!e->id || !e->name[0] || (name1 && !e->name[1])) {
		free(e->id);
		free(e->name[0]);
		free(e->name[1]);
		cJSON_Delete(obj);
		return -ENOMEM;
	}
	pg->n++;
	return 0;
}

void page_release(struct page *pg)
{
	for (size_t i = 0; i < pg->n; i++) {
		free(pg->v[i].id);
		free(pg->v[i].name[0]);
		free(pg->v[i].name[1]);
		cJSON_Delete(pg->v[i].obj);
	}
	free(pg->v);
	free(pg->next);
	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
}

void api_text(char *dst, size_t len, const char *src, size_t srclen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t w = 0;

	if (!len)
		return;
	for (size_t i = 0; s && i < srclen && s[i] && w + 5 < len;) {
		size_t n = utf8_char(s + i, srclen - i);

		if (n == 1 && s[i] >= 0x20 && s[i] != 0x7f) {
			dst[w++] = (char)s[i++];
		} else if (n > 1) {
			memcpy(dst + w, s + i, n);
			w += n;
			i += n;
		} else {
			w += (size_t)snprintf(dst + w, len - w, "\\x%02x",
					      s[i++]);
		}
	}
	dst[w] = '\0';
}

long header_long(const struct http_resp *resp, const char *name)
{
	const char *v = http_resp_header(resp, name);
	char *end;
	long n;

	if (!v || !isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	return *end || errno ? -1 : n;
}
