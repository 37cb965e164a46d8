/* Immutable directory snapshots. See snapshot.h. */
#include "snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "naming.h"

char *render_json(const cJSON *obj, size_t *len)
{
	char *s = cJSON_Print(obj), *t;
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*len = n + 1;
	return t;
}

static void entry_free(struct snap_entry *e)
{
	free(e->name);
	free(e->id);
	free(e->data);
}

/* Renders and names one parsed entry; collisions are resolved later. */
static int take_entry(struct snap_builder *b, struct entry *in)
{
	struct snap_entry *e;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct snap_entry *v = realloc(b->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		b->v = v;
		b->cap = cap;
	}
	e = &b->v[b->n];
	memset(e, 0, sizeof(*e));
	e->data = render_json(in->obj, &e->size);
	e->name = name_encode(in->name[0], in->name[1], in->id);
	if (!e->data || !e->name) {
		entry_free(e);
		return -ENOMEM;
	}
	e->mtime = in->mtime;
	e->id = in->id;
	in->id = NULL;
	cJSON_Delete(in->obj);
	in->obj = NULL;
	b->n++;
	return 0;
}

int snap_builder_add(void *arg, struct page *pg)
{
	struct snap_builder *b = arg;
	int rc;

	if (!pg) {
		snap_builder_release(b);
		return 0;
	}
	for (size_t i = 0; i < pg->n; i++)
		if ((rc = take_entry(b, &pg->v[i])))
			return rc;
	return 0;
}

void snap_builder_release(struct snap_builder *b)
{
	for (size_t i = 0; i < b->n; i++)
		entry_free(&b->v[i]);
	free(b->v);
	b->v = NULL;
	b->n = b->cap = 0;
}

static int by_id(const void *a, const void *b)
{
	const struct snap_entry *x = a, *y = b;

	return strcmp(x->id, y->id);
}

static int by_name(const void *a, const void *b)
{
	const struct snap_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->id, y->id);
}

/* Offset paging can return a row twice: keep one per id. */
static void dedupe(struct snap_builder *b)
{
	size_t w = 0;

	qsort(b->v, b->n, sizeof(*b->v), by_id);
	for (size_t i = 0; i < b->n; i++) {
		if (w && strcmp(b->v[w - 1].id, b->v[i].id) == 0) {
			entry_free(&b->v[i]);
			continue;
		}
		b->v[w++] = b->v[i];
	}
	if (b->n != w)
		log_msg(LOG_DEBUG, "%s: dropped %zu duplicate rows",
			b->instance, b->n - w);
	b->n = w;
}

/*
 * Entries sharing a name all get "~HASH(id)": the outcome depends on the
 * set of entries, never on the order the API listed them in.
 */
static int disambiguate(struct snap_builder *b)
{
	qsort(b->v, b->n, sizeof(*b->v), by_name);
	for (size_t i = 0; i < b->n;) {
		size_t j = i + 1;

		while (j < b->n && strcmp(b->v[i].name, b->v[j].name) == 0)
			j++;
		for (size_t k = i; j - i > 1 && k < j; k++) {
			char *n = name_disambiguate(b->v[k].name, b->v[k].id);

			if (!n)
				return -ENOMEM;
			free(b->v[k].name);
			b->v[k].name = n;
		}
		i = j;
	}
	qsort(b->v, b->n, sizeof(*b->v), by_name);
	return 0;
}

static size_t slot_count(size_t n)
{
	size_t slots = 16;

	while (slots < n * 2)
		slots *= 2;
	return slots;
}

/* Builds both indexes; inode collisions move to the next free number. */
static int index_all(struct snapshot *s, const char *instance)
{
	size_t mask;

	s->slots = slot_count(s->n);
	mask = s->slots - 1;
	s->by_name = calloc(s->slots, sizeof(*s->by_name));
	s->by_ino = calloc(s->slots, sizeof(*s->by_ino));
	if (!s->by_name || !s->by_ino)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		struct snap_entry *e = &s->v[i];
		size_t h = name_hash(e->name, NULL) & mask;

		while (s->by_name[h])
			h = (h + 1) & mask;
		s->by_name[h] = (uint32_t)i + 1;
		e->ino = name_hash(instance, e->id) | (1ULL << 63);
		while (snapshot_find_ino(s, e->ino))
			e->ino++;
		for (h = e->ino & mask; s->by_ino[h]; h = (h + 1) & mask)
			;
		s->by_ino[h] = (uint32_t)i + 1;
		e->snap = s;
		s->bytes += e->size;
	}
	return 0;
}

static void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++)
		entry_free(&s->v[i]);
	free(s->v);
	free(s->by_name);
	free(s->by_ino);
	free(s);
}

struct snapshot *snap_builder_finish(struct snap_builder *b)
{
	struct snapshot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	dedupe(b);
	if (disambiguate(b)) {
		free(s);
		return NULL;
	}
	s->v = b->v;
	s->n = b->n;
	b->v = NULL;
	b->n = b->cap = 0;
	static atomic_uint_fast64_t generations;

	atomic_init(&s->refs, 1);
	s->gen = atomic_fetch_add(&generations, 1) + 1;
	if (index_all(s, b->instance)) {
		snapshot_free(s);
		return NULL;
	}
	return s;
}

void snapshot_get(struct snapshot *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void snapshot_put(struct snapshot *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		snapshot_free(s);
}

const struct snap_entry *snapshot_find(const struct snapshot *s,
				       const char *name)
{
	size_t mask = s->slots - 1;

	if (!s->slots)
		return NULL;
	for (size_t h = name_hash(name, NULL) & mask; s->by_name[h];
	     h = (h + 1) & mask)
		if (strcmp(s->v[s->by_name[h] - 1].name, name) == 0)
			return &s->v[s->by_name[h] - 1];
	return NULL;
}

const struct snap_entry *snapshot_find_ino(const struct snapshot *s,
					   uint64_t ino)
{
	size_t mask = s->slots - 1;

	if (!s->slots)
		return NULL;
	for (size_t h = ino & mask; s->by_ino[h]; h = (h + 1) & mask)
		if (s->v[s->by_ino[h] - 1].ino == ino)
			return &s->v[s->by_ino[h] - 1];
	return NULL;
}
