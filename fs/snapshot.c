/* Immutable directory snapshots. See snapshot.h. */
#include "snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <malloc.h>
#include <pthread.h>
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
	free(e->data);
	e->data = e->name = e->id = NULL;
}

/* Packs JSON, name and id into one block owned by e->data. */
static int pack(struct snap_entry *e, const char *json, size_t size,
		const char *name, const char *id)
{
	size_t nlen = strlen(name) + 1, ilen = strlen(id) + 1;
	char *block = malloc(size + 1 + nlen + ilen);

	if (!block)
		return -ENOMEM;
	memcpy(block, json, size);
	block[size] = '\0';
	memcpy(block + size + 1, name, nlen);
	memcpy(block + size + 1 + nlen, id, ilen);
	free(e->data);
	e->data = block;
	e->size = size;
	e->name = block + size + 1;
	e->id = e->name + nlen;
	return 0;
}

/* Renders obj into the builder's scratch buffer, growing it as needed. */
static int render_scratch(struct snap_builder *b, const cJSON *obj,
			  size_t *len)
{
	for (;;) {
		char *p;

		/* cJSON asks for 5 bytes of slack; keep one for "\n". */
		if (b->scratch_len &&
		    cJSON_PrintPreallocated((cJSON *)obj, b->scratch,
					    (int)b->scratch_len - 6, 1)) {
			*len = strlen(b->scratch);
			b->scratch[(*len)++] = '\n';
			return 0;
		}
		if (b->scratch_len >= (size_t)1 << 30)
			return -EFBIG;
		p = realloc(b->scratch, b->scratch_len ? b->scratch_len * 2 :
					65536);
		if (!p)
			return -ENOMEM;
		b->scratch_len = b->scratch_len ? b->scratch_len * 2 : 65536;
		b->scratch = p;
	}
}

/* Renders and names one parsed entry; collisions are resolved later. */
static int take_entry(struct snap_builder *b, struct entry *in)
{
	struct snap_entry *e;
	char *name;
	size_t size;
	int rc;

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
	name = name_encode(in->name[0], in->name[1], in->id);
	rc = name ? render_scratch(b, in->obj, &size) : -ENOMEM;
	if (!rc)
		rc = pack(e, b->scratch, size, name, in->id);
	free(name);
	if (rc)
		return rc;
	e->mtime = in->mtime;
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
	free(b->scratch);
	b->v = NULL;
	b->scratch = NULL;
	b->n = b->cap = b->scratch_len = 0;
}

/* qsort has no context argument: sorts run under build_lock. */
static const struct snap_entry *sort_base;
static int (*sort_cmp)(const void *, const void *);
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

static int by_index(const void *a, const void *b)
{
	return sort_cmp(&sort_base[*(const uint32_t *)a],
			&sort_base[*(const uint32_t *)b]);
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

/*
 * Sorts the entries through an index: glibc's qsort would otherwise copy
 * the whole entry array into a temporary buffer of the same size.
 */
static int sort_entries(struct snap_builder *b,
			int (*cmp)(const void *, const void *))
{
	uint32_t *idx = malloc(b->n * sizeof(*idx));
	struct snap_entry tmp;

	if (!idx && b->n)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		idx[i] = (uint32_t)i;
	sort_base = b->v;
	sort_cmp = cmp;
	qsort(idx, b->n, sizeof(*idx), by_index);
	/* Apply the permutation in place, one cycle at a time. */
	for (size_t i = 0; i < b->n; i++) {
		size_t j = i, k;

		if (idx[i] == i)
			continue;
		tmp = b->v[i];
		while ((k = idx[j]) != i) {
			b->v[j] = b->v[k];
			idx[j] = (uint32_t)j;
			j = k;
		}
		b->v[j] = tmp;
		idx[j] = (uint32_t)j;
	}
	free(idx);
	return 0;
}

/* Offset paging can return a row twice: keep one per id. */
static int dedupe(struct snap_builder *b)
{
	size_t w = 0;

	if (sort_entries(b, by_id))
		return -ENOMEM;
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
	return 0;
}

/*
 * Entries sharing a name all get "~HASH(id)": the outcome depends on the
 * set of entries, never on the order the API listed them in.
 */
static int disambiguate_once(struct snap_builder *b, bool *changed)
{
	*changed = false;
	if (sort_entries(b, by_name))
		return -ENOMEM;
	for (size_t i = 0; i < b->n;) {
		size_t j = i + 1;

		while (j < b->n && strcmp(b->v[i].name, b->v[j].name) == 0)
			j++;
		for (size_t k = i; j - i > 1 && k < j; k++) {
			struct snap_entry *e = &b->v[k];
			char *n = name_disambiguate(e->name, e->id);
			int rc = n ? pack(e, e->data, e->size, n, e->id) :
				     -ENOMEM;

			free(n);
			if (rc)
				return rc;
			*changed = true;
		}
		i = j;
	}
	return 0;
}

/* A suffixed name can itself collide with a real name: repeat until not. */
static int disambiguate(struct snap_builder *b)
{
	bool changed = true;
	int rc = 0;

	for (int round = 0; changed && !rc && round < 4; round++)
		rc = disambiguate_once(b, &changed);
	return rc ? rc : sort_entries(b, by_name);
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

static struct snapshot *live;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static void live_add(struct snapshot *s)
{
	pthread_mutex_lock(&live_lock);
	s->next = live;
	if (live)
		live->prev = s;
	live = s;
	pthread_mutex_unlock(&live_lock);
}

static void live_remove(struct snapshot *s)
{
	pthread_mutex_lock(&live_lock);
	if (s->prev)
		s->prev->next = s->next;
	else if (live == s)
		live = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	pthread_mutex_unlock(&live_lock);
}

static void snapshot_free(struct snapshot *s)
{
	live_remove(s);
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
	int rc;

	if (!s)
		return NULL;
	pthread_mutex_lock(&build_lock);
	rc = dedupe(b);
	if (!rc)
		rc = disambiguate(b);
	pthread_mutex_unlock(&build_lock);
	if (rc) {
		free(s);
		return NULL;
	}
	/* Give back the growth slack of the builder's array. */
	if (b->n && b->n < b->cap) {
		struct snap_entry *v = realloc(b->v, b->n * sizeof(*v));

		if (v)
			b->v = v;
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
	/* Hand the walk's transient memory (pages, parse trees) back. */
	malloc_trim(0);
	live_add(s);
	return s;
}

void snapshot_free_all(void)
{
	while (live)
		snapshot_free(live);
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
