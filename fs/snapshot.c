/* Immutable directory snapshots and shared entry versions. See snapshot.h. */
#include "snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <malloc.h>
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

/*
 * Every entry alive, so that snapshot_free_all() can free the versions
 * the kernel never forgot (it sends no FORGET for them at unmount).
 */
static struct live_list live_entries = LIVE_LIST_INIT;

static void entry_free(struct snap_entry *e)
{
	live_remove(&live_entries, &e->live);
	free(e);
}

void entry_get(struct snap_entry *e)
{
	atomic_fetch_add(&e->refs, 1);
}

void entry_put_n(struct snap_entry *e, uint64_t n)
{
	if (e && atomic_fetch_sub(&e->refs, n) == n)
		entry_free(e);
}

/* A new version holding one reference: JSON, name and id in one block. */
static struct snap_entry *entry_new(const char *json, size_t size,
				    const char *name, const char *id)
{
	size_t nlen = strlen(name) + 1, ilen = strlen(id) + 1;
	struct snap_entry *e;
	char *p;

	/* Names are checked (NAME_MAX_BYTES) and bodies capped far lower:
	 * out of range here is a bug, refused rather than truncated. */
	if (size >= UINT32_MAX || nlen > UINT16_MAX)
		return NULL;
	e = malloc(sizeof(*e) + size + 1 + nlen + ilen);
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	atomic_init(&e->refs, 1);
	memcpy(e->data, json, size);
	e->data[size] = '\0';
	e->size = (uint32_t)size;
	e->name_len = (uint16_t)(nlen - 1);
	p = e->data + size + 1;
	memcpy(p, name, nlen);
	memcpy(p + nlen, id, ilen);
	live_add(&live_entries, &e->live);
	return e;
}

/* Replaces *ep by a copy under another name (collisions are rare). */
static int entry_rename(struct snap_entry **ep, const char *name)
{
	struct snap_entry *o = *ep;
	struct snap_entry *e = entry_new(o->data, o->size, name,
					  entry_id(o));

	if (!e)
		return -ENOMEM;
	e->owner = o->owner;
	e->mtime = o->mtime;
	entry_put_n(o, 1);
	*ep = e;
	return 0;
}

static bool entry_same(const struct snap_entry *a, const struct snap_entry *b)
{
	return a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       strcmp(entry_id(a), entry_id(b)) == 0 &&
	       strcmp(entry_name(a), entry_name(b)) == 0 &&
	       memcmp(a->data, b->data, a->size) == 0;
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

static int builder_grow(struct snap_builder *b)
{
	size_t cap = b->cap ? b->cap * 2 : 256;
	struct snap_entry **v;

	if (b->n < b->cap)
		return 0;
	if (!(v = realloc(b->v, cap * sizeof(*v))))
		return -ENOMEM;
	b->v = v;
	b->cap = cap;
	return 0;
}

/* Renders and names one parsed entry; collisions are resolved later. */
static int take_entry(struct snap_builder *b, struct entry *in)
{
	struct snap_entry *e = NULL;
	char *name;
	size_t size;
	int rc;

	if (builder_grow(b))
		return -ENOMEM;
	name = name_encode(in->name[0], in->name[1], in->id);
	rc = name ? render_scratch(b, in->obj, &size) : -ENOMEM;
	if (!rc && !(e = entry_new(b->scratch, size, name, in->id)))
		rc = -ENOMEM;
	free(name);
	if (rc)
		return rc;
	e->owner = b->owner;
	e->mtime = in->mtime;
	cJSON_Delete(in->obj);
	in->obj = NULL;
	b->v[b->n++] = e;
	return 0;
}

int snap_builder_add_saved(struct snap_builder *b, const char *name,
			   const char *id, const void *data, size_t size,
			   const struct timespec *mtime, uint64_t ino)
{
	struct snap_entry *e;

	if (!name_is_safe(name) || !(ino & SNAP_INO_BIT))
		return -EINVAL;
	if (builder_grow(b) || !(e = entry_new(data, size, name, id)))
		return -ENOMEM;
	e->owner = b->owner;
	e->mtime = *mtime;
	e->ino = ino;
	b->v[b->n++] = e;
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
		entry_put_n(b->v[i], 1);
	free(b->v);
	free(b->scratch);
	b->v = NULL;
	b->scratch = NULL;
	b->n = b->cap = b->scratch_len = 0;
}

int entry_cmp_id(const void *a, const void *b)
{
	const struct snap_entry *x = *(struct snap_entry *const *)a;
	const struct snap_entry *y = *(struct snap_entry *const *)b;

	return strcmp(entry_id(x), entry_id(y));
}

static int by_name(const void *a, const void *b)
{
	const struct snap_entry *x = *(struct snap_entry *const *)a;
	const struct snap_entry *y = *(struct snap_entry *const *)b;
	int c = strcmp(entry_name(x), entry_name(y));

	return c ? c : strcmp(entry_id(x), entry_id(y));
}

/* qsort's array may not be NULL, even when empty. */
static void sort_entries(struct snap_builder *b,
			 int (*cmp)(const void *, const void *))
{
	if (b->n > 1)
		qsort(b->v, b->n, sizeof(*b->v), cmp);
}

/* Offset paging can return a row twice: keep one per id. */
static void dedupe(struct snap_builder *b)
{
	size_t w = 0;

	sort_entries(b, entry_cmp_id);
	for (size_t i = 0; i < b->n; i++) {
		if (w && entry_cmp_id(&b->v[w - 1], &b->v[i]) == 0) {
			entry_put_n(b->v[i], 1);
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
static int disambiguate_once(struct snap_builder *b, bool *changed)
{
	*changed = false;
	sort_entries(b, by_name);
	for (size_t i = 0; i < b->n;) {
		size_t j = i + 1;

		while (j < b->n && strcmp(entry_name(b->v[i]),
					  entry_name(b->v[j])) == 0)
			j++;
		for (size_t k = i; j - i > 1 && k < j; k++) {
			char *n = name_disambiguate(entry_name(b->v[k]),
						    entry_id(b->v[k]));
			int rc = n ? entry_rename(&b->v[k], n) : -ENOMEM;

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
	if (!rc)
		sort_entries(b, by_name);
	return rc;
}

static size_t slot_count(size_t n)
{
	size_t slots = 16;

	while (slots < n * 2)
		slots *= 2;
	return slots;
}

/*
 * Builds the inode index; inode collisions move to the next free number.
 * Names need none: the entries are sorted by name.
 */
static int index_all(struct snapshot *s, const char *instance)
{
	size_t mask, h;

	s->slots = slot_count(s->n);
	mask = s->slots - 1;
	s->by_ino = calloc(s->slots, sizeof(*s->by_ino));
	if (!s->by_ino)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		struct snap_entry *e = s->v[i];

		/* A saved entry keeps the inode it was served with. */
		if (!e->ino)
			e->ino = name_hash(instance, entry_id(e)) |
				 SNAP_INO_BIT;
		while (snapshot_find_ino(s, e->ino))
			e->ino++;
		for (h = e->ino & mask; s->by_ino[h]; h = (h + 1) & mask)
			;
		s->by_ino[h] = (uint32_t)i + 1;
		s->bytes += e->size;
	}
	return 0;
}

/*
 * Swaps in old's version of every entry that did not change, so that
 * unchanged files keep their kernel nodes and cached pages. Both are
 * sorted by name: one merge pass pairs them. Returns the number shared.
 */
static size_t share_unchanged(struct snapshot *s, const struct snapshot *old)
{
	size_t shared = 0, k = 0;

	for (size_t i = 0; old && i < s->n; i++) {
		const char *name = entry_name(s->v[i]);
		struct snap_entry *o;
		int c = 1;

		while (k < old->n &&
		       (c = strcmp(entry_name(old->v[k]), name)) < 0)
			k++;
		if (k == old->n)
			break;
		o = old->v[k];
		if (c || !entry_same(o, s->v[i]))
			continue;
		entry_get(o);
		entry_put_n(s->v[i], 1);
		s->v[i] = o;
		shared++;
	}
	return shared;
}

/* Every snapshot published, for snapshot_free_all(). */
static struct live_list live_snapshots = LIVE_LIST_INIT;

static void snapshot_free(struct snapshot *s)
{
	live_remove(&live_snapshots, &s->live);
	for (size_t i = 0; i < s->n; i++)
		entry_put_n(s->v[i], 1);
	free(s->v);
	free(s->by_ino);
	free(s);
}

struct snapshot *snap_builder_finish(struct snap_builder *b,
				     struct snapshot *old)
{
	static atomic_uint_fast64_t generations;
	struct snapshot *s = calloc(1, sizeof(*s));

	dedupe(b);
	if (!s || disambiguate(b)) {
		free(s);
		return NULL;
	}
	/* Give back the growth slack of the builder's array. */
	if (b->n && b->n < b->cap) {
		struct snap_entry **v = realloc(b->v, b->n * sizeof(*v));

		if (v)
			b->v = v;
	}
	s->v = b->v;
	s->n = b->n;
	b->v = NULL;
	b->n = b->cap = 0;
	atomic_init(&s->refs, 1);
	s->gen = atomic_fetch_add(&generations, 1) + 1;
	if (index_all(s, b->instance)) {
		snapshot_free(s);
		return NULL;
	}
	if (share_unchanged(s, old) == s->n && old && old->n == s->n) {
		/* Nothing changed: keep serving (and caching) old. */
		snapshot_free(s);
		snapshot_get(old);
		return old;
	}
	/* Hand the walk's transient memory (pages, parse trees) back. Under
	 * a sanitizer malloc is not glibc's: glibc's heap is then never set
	 * up, and malloc_trim's lazy set-up of it is not thread-safe (two
	 * walks finishing together read an uninitialised arena). */
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
	malloc_trim(0);
#endif
	live_add(&live_snapshots, &s->live);
	return s;
}

void snapshot_free_all(void)
{
	while (live_snapshots.head)
		snapshot_free(live_of(live_snapshots.head, struct snapshot,
				      live));
	while (live_entries.head)
		entry_free(live_of(live_entries.head, struct snap_entry,
				   live));
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

struct snap_entry *snapshot_find(const struct snapshot *s, const char *name)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(entry_name(s->v[mid]), name);

		if (c == 0)
			return s->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct snap_entry *snapshot_find_ino(const struct snapshot *s, uint64_t ino)
{
	size_t mask = s->slots - 1;

	if (!s->slots)
		return NULL;
	for (size_t h = ino & mask; s->by_ino[h]; h = (h + 1) & mask)
		if (s->v[s->by_ino[h] - 1]->ino == ino)
			return s->v[s->by_ino[h] - 1];
	return NULL;
}
