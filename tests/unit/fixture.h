/*
 * Fixtures shared by the provider unit tests: fixture files, fake HTTP
 * responses, and configuration sections built by hand. Everything is
 * static inline so a test that uses only part of it compiles without
 * unused-function warnings.
 */
#ifndef CONNFS_FIXTURE_H
#define CONNFS_FIXTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "http.h"

/* The whole file, NUL-terminated; NULL if it cannot be read. */
static inline char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1))) {
		*len = fread(p, 1, (size_t)n, f);
		p[*len] = '\0';
	}
	fclose(f);
	return p;
}

/* A response whose body is fixtures/NAME (or none when NULL). */
static inline void resp_init(struct http_resp *r, long status,
			     const char *fixture)
{
	char path[256];

	memset(r, 0, sizeof(*r));
	r->status = status;
	r->retry_after = -1;
	if (fixture) {
		snprintf(path, sizeof(path), "fixtures/%s", fixture);
		r->body = slurp(path, &r->len);
		if (!r->body)
			fprintf(stderr, "cannot read %s\n", path);
	}
}

/* A response whose body is the given text (or none when NULL). */
static inline void resp_text(struct http_resp *r, long status,
			     const char *body)
{
	memset(r, 0, sizeof(*r));
	r->status = status;
	r->retry_after = -1;
	if (body) {
		r->body = strdup(body);
		r->len = strlen(body);
	}
}

static inline void resp_body(struct http_resp *r, const char *text)
{
	free(r->body);
	r->body = strdup(text);
	r->len = strlen(text);
}

static inline void resp_header(struct http_resp *r, const char *name,
			       const char *value)
{
	r->headers[r->nheaders].name = strdup(name);
	r->headers[r->nheaders].value = strdup(value);
	r->nheaders++;
}

/* A section on the stack: the header on `line`, key n on line + n. */
#define SECT_MAX_KV 16

struct sect {
	struct conf_section s;
	struct conf_kv kv[SECT_MAX_KV];
};

static inline void sect_init(struct sect *t, const char *name,
			     const char *file, int line)
{
	memset(t, 0, sizeof(*t));
	t->s.name = (char *)name;
	t->s.file = file;
	t->s.line = line;
	t->s.file_mode = 0600;
	t->s.kv = t->kv;
}

static inline void sect_set(struct sect *t, const char *key,
			    const char *value)
{
	struct conf_kv *kv = &t->kv[t->s.nkv++];

	kv->key = (char *)key;
	kv->value = (char *)value;
	kv->line = t->s.line + (int)t->s.nkv;
}

static inline struct conf_kv *sect_kv(struct sect *t, const char *key)
{
	for (size_t i = 0; i < t->s.nkv; i++)
		if (strcmp(t->kv[i].key, key) == 0)
			return &t->kv[i];
	return NULL;
}

/*
 * A section on the heap named `name`, from NULL-terminated key, value
 * pairs; the header on line 1, key n on line n + 2. Free: section_free().
 */
static inline struct conf_section *section_new(const char *name,
					       const char *key, ...)
{
	struct conf_section *s = calloc(1, sizeof(*s));
	va_list ap;

	s->name = strdup(name);
	s->line = 1;
	s->kv = calloc(16, sizeof(*s->kv));
	va_start(ap, key);
	for (const char *k = key; k && s->nkv < 16;
	     k = va_arg(ap, const char *)) {
		s->kv[s->nkv].key = strdup(k);
		s->kv[s->nkv].value = strdup(va_arg(ap, const char *));
		s->kv[s->nkv].line = (int)s->nkv + 2;
		s->nkv++;
	}
	va_end(ap);
	return s;
}

static inline void section_free(struct conf_section *s)
{
	for (size_t i = 0; i < s->nkv; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
	}
	free(s->kv);
	free(s->name);
	free(s);
}

/* Whether the provider read (marked used) every key of s. */
static inline bool all_used(const struct conf_section *s)
{
	for (size_t i = 0; i < s->nkv; i++)
		if (!s->kv[i].used)
			return false;
	return true;
}

#endif
