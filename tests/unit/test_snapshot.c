/*
 * Unit tests for directory snapshots (fs/snapshot.c): pages built by hand
 * with page_add() go through the walk sink snap_builder_add(); checked are
 * the rendered bytes and exact sizes, dedupe by id, sorting, collision
 * names that do not depend on listing order, lookups by name and inode,
 * stable distinct inodes, refcounting, restarts, many equal names, and
 * hostile JSON. Run it under SAN=1 to catch leaks. No network, no FUSE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "naming.h"
#include "snapshot.h"

#define INSTANCE "eb"

/* One entry as a test describes it. */
struct row {
	const char *id;
	const char *name0;
	const char *name1;
	long mtime;
};

/* --- helpers ------------------------------------------------------------ */

static cJSON *row_obj(const struct row *r)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", r->id);
	cJSON_AddStringToObject(o, "name", r->name0 ? r->name0 : "");
	if (r->name1)
		cJSON_AddStringToObject(o, "sub", r->name1);
	cJSON_AddNumberToObject(o, "mtime", (double)r->mtime);
	return o;
}

/* Adds rows[from, to) in order as one page to the builder. */
static int add_page(struct snap_builder *b, const struct row *rows,
		    const size_t *order, size_t from, size_t to)
{
	struct page pg = { .total = -1 };
	int rc = 0;

	for (size_t i = from; i < to && !rc; i++) {
		const struct row *r = &rows[order ? order[i] : i];
		struct timespec ts = { .tv_sec = r->mtime };

		rc = page_add(&pg, r->id, r->name0, r->name1, &ts, row_obj(r));
	}
	if (!rc)
		rc = snap_builder_add(b, &pg);
	page_release(&pg);
	return rc;
}

/* Builds a snapshot from rows in `order`, `per_page` rows a page. */
static struct snapshot *build(const struct row *rows, const size_t *order,
			      size_t n, size_t per_page)
{
	struct snap_builder b = { .instance = INSTANCE };
	struct snapshot *s;

	for (size_t i = 0; i < n; i += per_page) {
		size_t end = i + per_page < n ? i + per_page : n;

		if (add_page(&b, rows, order, i, end)) {
			snap_builder_release(&b);
			return NULL;
		}
	}
	s = snap_builder_finish(&b, NULL);
	snap_builder_release(&b);
	return s;
}

static bool sorted_unique(const struct snapshot *s)
{
	for (size_t i = 1; i < s->n; i++)
		if (strcmp(entry_name(s->v[i - 1]), entry_name(s->v[i])) >= 0)
			return false;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool inodes_distinct(const struct snapshot *s)
{
	uint64_t *v = malloc((s->n + 1) * sizeof(*v));
	bool ok = v != NULL;

	for (size_t i = 0; ok && i < s->n; i++)
		v[i] = s->v[i]->ino;
	if (ok)
		qsort(v, s->n, sizeof(*v), cmp_u64);
	for (size_t i = 1; ok && i < s->n; i++)
		if (v[i - 1] == v[i] || v[i] == 0)
			ok = false;
	free(v);
	return ok && (s->n == 0 || s->v[0]->ino != 0);
}

/* Every entry is found by name and by inode, and is its own result. */
static bool all_found(const struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (snapshot_find(s, entry_name(s->v[i])) != s->v[i] ||
		    snapshot_find_ino(s, s->v[i]->ino) != s->v[i])
			return false;
	return true;
}

/* Same names, ids and inodes in the same order. */
static bool same_listing(const struct snapshot *a, const struct snapshot *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(entry_name(a->v[i]), entry_name(b->v[i])) != 0 ||
		    strcmp(entry_id(a->v[i]), entry_id(b->v[i])) != 0 ||
		    a->v[i]->ino != b->v[i]->ino ||
		    a->v[i]->size != b->v[i]->size ||
		    memcmp(a->v[i]->data, b->v[i]->data, a->v[i]->size) != 0)
			return false;
	return true;
}

static const struct snap_entry *by_id(const struct snapshot *s,
				      const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(entry_id(s->v[i]), id) == 0)
			return s->v[i];
	return NULL;
}

static const char *name_of(const struct snapshot *s, const char *id)
{
	const struct snap_entry *e = by_id(s, id);

	return e ? entry_name(e) : NULL;
}

/* A Fisher-Yates shuffle with a fixed LCG: reproducible. */
static void shuffle(size_t *order, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j, t;

		seed = seed * 1103515245u + 12345u;
		j = (seed >> 8) % i;
		t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

/* --- tests -------------------------------------------------------------- */

static const struct row basic[] = {
	{ "arn:1", "billing-stripe", NULL, 1709215200 },
	{ "arn:2", "billing.zuora_v2", NULL, 1712003600 },
	{ "arn:3", "ops", "42", 1690118400 },
	{ "arn:4", ".env", NULL, 0 },
	{ "arn:5", "a/b", NULL, 1700000000 },
};
#define NBASIC (sizeof(basic) / sizeof(basic[0]))

static void test_render(void)
{
	struct snapshot *s = build(basic, NULL, NBASIC, 2);
	size_t total = 0;

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(s->n, NBASIC);
	CHECK(sorted_unique(s));
	for (size_t i = 0; i < NBASIC; i++) {
		const struct snap_entry *e = by_id(s, basic[i].id);
		cJSON *o = row_obj(&basic[i]);
		char *want = cJSON_Print(o);
		size_t wl = strlen(want);

		CHECK(e != NULL);
		if (e) {
			CHECK_INT(e->size, wl + 1);
			CHECK(e->size == wl + 1 &&
			      memcmp(e->data, want, wl) == 0 &&
			      e->data[wl] == '\n');
			CHECK_INT(e->mtime.tv_sec, basic[i].mtime);
			total += e->size;
		}
		free(want);
		cJSON_Delete(o);
	}
	CHECK_INT(s->bytes, total);
	CHECK_STR(name_of(s, "arn:1"), "billing-stripe.json");
	CHECK_STR(name_of(s, "arn:3"), "ops~42.json");
	CHECK_STR(name_of(s, "arn:4"), "%2Eenv.json");
	CHECK_STR(name_of(s, "arn:5"), "a%2Fb.json");
	snapshot_put(s);
}

static void test_render_json(void)
{
	cJSON *o = cJSON_Parse("{\"b\":[1,2.5,\"x\"],\"a\":{\"n\":null}}");
	char *want = cJSON_Print(o);
	size_t len = 0;
	char *got = render_json(o, &len);

	CHECK(got != NULL);
	if (got && want) {
		CHECK_INT(len, strlen(want) + 1);
		CHECK_INT(strlen(got), len);
		CHECK(strncmp(got, want, strlen(want)) == 0);
		CHECK(got[len - 1] == '\n');
	}
	free(got);
	free(want);
	cJSON_Delete(o);
}

static void test_lookup(void)
{
	struct snapshot *s = build(basic, NULL, NBASIC, 10);

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(all_found(s));
	CHECK(inodes_distinct(s));
	CHECK(snapshot_find(s, "nope.json") == NULL);
	CHECK(snapshot_find(s, "") == NULL);
	CHECK(snapshot_find(s, "billing-stripe") == NULL);
	CHECK(snapshot_find(s, "billing-stripe.jso") == NULL);
	CHECK(snapshot_find(s, ".env.json") == NULL);
	CHECK(snapshot_find_ino(s, 1) == NULL);
	CHECK(snapshot_find_ino(s, 0) == NULL);
	CHECK(snapshot_find_ino(s, s->v[0]->ino + 1) == NULL ||
	      snapshot_find_ino(s, s->v[0]->ino + 1) != s->v[0]);
	snapshot_put(s);
}

/*
 * An empty listing (an account with no connections). Regression: HEAD's
 * dedupe()/disambiguate() called qsort(NULL, 0, ...), which UBSan aborts
 * on under SAN=1 ("null pointer passed as argument 1"); run last so such
 * an abort cannot hide the other results.
 */
static void test_empty(void)
{
	struct snap_builder b = { .instance = INSTANCE };
	struct snapshot *s;

	s = snap_builder_finish(&b, NULL);
	snap_builder_release(&b);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(s->n, 0);
	CHECK_INT(s->bytes, 0);
	CHECK(snapshot_find(s, "x.json") == NULL);
	CHECK(snapshot_find_ino(s, 12345) == NULL);
	snapshot_put(s);
	snapshot_put(NULL);
}

static void test_dedupe(void)
{
	static const struct row rows[] = {
		{ "1", "one", NULL, 10 }, { "2", "two", NULL, 20 },
		/* offset paging shifted: "2" shows up again on page 2 */
		{ "2", "two", NULL, 20 }, { "3", "three", NULL, 30 },
		{ "1", "one", NULL, 10 }, { "4", "four", NULL, 40 },
	};
	struct snapshot *s = build(rows, NULL, 6, 2);

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(s->n, 4);
	CHECK(sorted_unique(s));
	CHECK(by_id(s, "1") && by_id(s, "2") && by_id(s, "3") &&
	      by_id(s, "4"));
	/* A deduplicated row is not disambiguated against itself. */
	CHECK_STR(name_of(s, "2"), "two.json");
	CHECK(all_found(s));
	snapshot_put(s);
}

static const struct row dups[] = {
	{ "id-c", "Acme", NULL, 3 }, { "id-a", "Acme", NULL, 1 },
	{ "id-b", "Acme", NULL, 2 }, { "id-x", "Zeta", NULL, 9 },
	{ "id-d", "Acme", "x", 4 },  { "id-e", "acme", NULL, 5 },
	{ "id-f", "Acme", NULL, 6 }, { "id-g", "Beta", NULL, 7 },
	{ "id-h", "Beta", NULL, 8 },
};
#define NDUPS (sizeof(dups) / sizeof(dups[0]))

static void test_collisions(void)
{
	size_t order[NDUPS];
	struct snapshot *ref = build(dups, NULL, NDUPS, 3), *s;
	char want[64];

	CHECK(ref != NULL);
	if (!ref)
		return;
	CHECK_INT(ref->n, NDUPS);
	CHECK(sorted_unique(ref));
	CHECK(all_found(ref));
	/* Every member of a colliding group gets the tag of its own id. */
	for (size_t i = 0; i < NDUPS; i++) {
		const struct snap_entry *e = by_id(ref, dups[i].id);
		bool group = strcmp(dups[i].name0, "Acme") == 0 && !dups[i].name1;

		if (!e)
			continue;
		if (group || strcmp(dups[i].name0, "Beta") == 0) {
			snprintf(want, sizeof(want), "%s~%016llx.json",
				 dups[i].name0, (unsigned long long)
				 name_hash("id", dups[i].id));
			CHECK_STR(entry_name(e), want);
		}
	}
	CHECK_STR(name_of(ref, "id-x"), "Zeta.json");
	CHECK_STR(name_of(ref, "id-d"), "Acme~x.json");
	CHECK_STR(name_of(ref, "id-e"), "acme.json");

	/* Whatever the order and page split: the same listing. */
	for (unsigned seed = 1; seed <= 20; seed++) {
		shuffle(order, NDUPS, seed);
		s = build(dups, order, NDUPS, 1 + seed % 4);
		CHECK(s && same_listing(ref, s));
		snapshot_put(s);
	}
	snapshot_put(ref);
}

/*
 * Regression (fixed): fs/snapshot.c disambiguate() appends "~HASH(id)" but does not check
 * the new names against the rest of the listing. A connection whose own
 * name parts are "dup" and the 16 hex digits of HASH("1") is named
 * "dup~<hex>.json" by name_encode(), exactly the name entry "1" gets when
 * it collides with entry "2": two entries share one name and one of them
 * cannot be looked up. Want unique names; got a duplicate.
 */
static void test_collision_with_tag(void)
{
	char hex[17];
	struct row rows[3] = {
		{ "1", "dup", NULL, 1 },
		{ "2", "dup", NULL, 2 },
		{ "3", "dup", hex, 3 },
	};
	struct snapshot *s;

	snprintf(hex, sizeof(hex), "%016llx",
		 (unsigned long long)name_hash("id", "1"));
	s = build(rows, NULL, 3, 3);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(s->n, 3);
	/* Regression (fixed): two entries named dup~<hash of "1">.json */
	CHECK(sorted_unique(s));
	/* Regression (fixed): one of the two is unreachable by name */
	CHECK(all_found(s));
	snapshot_put(s);
}

static void test_inodes_stable(void)
{
	static const struct row more[] = {
		{ "arn:0", "aaa", NULL, 1 }, { "arn:9", "zzz", NULL, 1 },
		{ "arn:6", "billing-stripe", NULL, 1 },
	};
	struct row all[NBASIC + 3];
	struct snapshot *a = build(basic, NULL, NBASIC, 2);
	struct snapshot *b = build(basic, NULL, NBASIC, 5);
	struct snapshot *c;

	memcpy(all, basic, sizeof(basic));
	memcpy(all + NBASIC, more, sizeof(more));
	c = build(all, NULL, NBASIC + 3, 3);
	CHECK(a && b && c);
	if (a && b && c) {
		CHECK(same_listing(a, b));
		CHECK(inodes_distinct(c));
		/* An id keeps its inode when others come and go. */
		for (size_t i = 0; i < NBASIC; i++)
			CHECK(by_id(a, basic[i].id)->ino ==
			      by_id(c, basic[i].id)->ino);
		/* Inode numbers depend on the instance too. */
		{
			struct snap_builder o = { .instance = "other" };
			struct snapshot *d;

			add_page(&o, basic, NULL, 0, NBASIC);
			d = snap_builder_finish(&o, NULL);
			snap_builder_release(&o);
			CHECK(d && by_id(d, "arn:1")->ino !=
				       by_id(a, "arn:1")->ino);
			snapshot_put(d);
		}
	}
	snapshot_put(a);
	snapshot_put(b);
	snapshot_put(c);
}

static void test_refcount(void)
{
	struct snapshot *s = build(basic, NULL, NBASIC, 2);
	struct snap_entry *e;

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(atomic_load(&s->refs), 1);
	snapshot_get(s);
	snapshot_get(s);
	CHECK_INT(atomic_load(&s->refs), 3);
	snapshot_put(s);
	snapshot_put(s);
	CHECK_INT(atomic_load(&s->refs), 1);
	/* A kernel node holds its entry version: it outlives the snapshot. */
	e = snapshot_find(s, "ops~42.json");
	CHECK(e != NULL);
	if (e) {
		entry_get(e);
		snapshot_put(s);
		CHECK_INT(atomic_load(&e->refs), 1);
		CHECK(e->size > 0 && e->data[e->size - 1] == '\n');
		entry_put_n(e, 1);
	} else {
		snapshot_put(s);
	}
}

/* Builds rows on top of old, as a refresh does. */
static struct snapshot *rebuild(const struct row *rows, size_t n,
				struct snapshot *old)
{
	struct snap_builder b = { .instance = INSTANCE };
	struct snapshot *s = NULL;

	if (!add_page(&b, rows, NULL, 0, n))
		s = snap_builder_finish(&b, old);
	snap_builder_release(&b);
	return s;
}

/*
 * A refresh shares the versions of unchanged connections with the old
 * snapshot (their kernel nodes stay valid), gives changed, renamed and
 * new ones versions of their own, and when nothing changed at all keeps
 * the old snapshot itself.
 */
static void test_versions_shared(void)
{
	static const struct row v1[] = {
		{ "1", "alpha", NULL, 100 },
		{ "2", "beta", NULL, 200 },
		{ "3", "gamma", NULL, 300 },
		{ "4", "delta", NULL, 400 },
		{ "6", "zeta", NULL, 600 },
	};
	static const struct row v2[] = {
		{ "1", "alpha", NULL, 100 },	/* same */
		{ "2", "beta", NULL, 201 },	/* modified */
		{ "3", "gamma2", NULL, 300 },	/* renamed */
		{ "5", "eps", NULL, 500 },	/* new; 4 removed */
		{ "7", "aaa", NULL, 700 },	/* new, before every old name */
		{ "6", "zeta", NULL, 600 },	/* same, after the gaps */
	};
	struct snapshot *a = rebuild(v1, 5, NULL), *b, *c;
	struct snap_entry *old_beta;

	CHECK(a != NULL);
	if (!a)
		return;
	old_beta = snapshot_find(a, "beta.json");
	b = rebuild(v2, 6, a);
	CHECK(b != NULL && b != a);
	if (!b || !old_beta) {
		snapshot_put(a);
		snapshot_put(b);
		return;
	}
	CHECK(b->gen > a->gen);
	CHECK(snapshot_find(b, "alpha.json") == snapshot_find(a, "alpha.json"));
	CHECK_INT(atomic_load(&snapshot_find(b, "alpha.json")->refs), 2);
	CHECK(snapshot_find(b, "zeta.json") == snapshot_find(a, "zeta.json"));
	CHECK(snapshot_find(b, "aaa.json") != NULL);
	CHECK(snapshot_find(b, "beta.json") != old_beta);
	CHECK(snapshot_find(b, "beta.json")->ino == old_beta->ino);
	CHECK(snapshot_find(b, "gamma2.json") != NULL);
	CHECK(snapshot_find(b, "gamma.json") == NULL);
	CHECK(snapshot_find(b, "delta.json") == NULL);
	/* The old version of beta outlives its snapshot while held. */
	entry_get(old_beta);
	snapshot_put(a);
	CHECK_INT(atomic_load(&old_beta->refs), 1);
	CHECK(old_beta->mtime.tv_sec == 200);
	entry_put_n(old_beta, 1);
	CHECK_INT(atomic_load(&snapshot_find(b, "alpha.json")->refs), 1);
	/* Nothing changed: the same snapshot, one more reference. */
	c = rebuild(v2, 6, b);
	CHECK(c == b);
	CHECK_INT(atomic_load(&b->refs), 2);
	snapshot_put(c);
	/* One fewer connection is a change even if the rest are equal. */
	c = rebuild(v2, 5, b);
	CHECK(c != NULL && c != b && c->n == 5);
	if (c)
		CHECK(snapshot_find(c, "alpha.json") ==
		      snapshot_find(b, "alpha.json"));
	snapshot_put(c);
	snapshot_put(b);
}

static void test_restart(void)
{
	static const struct row first[] = {
		{ "old-1", "old", NULL, 1 }, { "keep", "keep", NULL, 2 },
	};
	static const struct row second[] = {
		{ "keep", "keep", NULL, 2 }, { "new-1", "new", NULL, 3 },
	};
	struct snap_builder b = { .instance = INSTANCE };
	struct snapshot *s;

	CHECK_INT(add_page(&b, first, NULL, 0, 2), 0);
	CHECK_INT(snap_builder_add(&b, NULL), 0);	/* the walk restarted */
	CHECK_INT(b.n, 0);
	CHECK_INT(add_page(&b, second, NULL, 0, 2), 0);
	s = snap_builder_finish(&b, NULL);
	snap_builder_release(&b);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(s->n, 2);
	CHECK(by_id(s, "old-1") == NULL);
	CHECK(by_id(s, "keep") && by_id(s, "new-1"));
	CHECK(snapshot_find(s, "old.json") == NULL);
	CHECK_STR(name_of(s, "keep"), "keep.json");
	snapshot_put(s);

	/* A restart as the very first call, and a builder dropped midway. */
	CHECK_INT(snap_builder_add(&b, NULL), 0);
	CHECK_INT(add_page(&b, first, NULL, 0, 2), 0);
	snap_builder_release(&b);
	CHECK_INT(b.n, 0);
}

#define NSAME 10000

static void test_many_same_name(void)
{
	struct row *rows = calloc(NSAME, sizeof(*rows));
	char (*ids)[16] = calloc(NSAME, sizeof(*ids));
	struct snapshot *s = NULL;
	bool short_names = true;

	CHECK(rows && ids);
	if (rows && ids) {
		for (size_t i = 0; i < NSAME; i++) {
			snprintf(ids[i], sizeof(ids[i]), "c%zu", i);
			rows[i] = (struct row){ ids[i], "Same Name", NULL,
						(long)i };
		}
		s = build(rows, NULL, NSAME, 100);
	}
	CHECK(s != NULL);
	if (s) {
		CHECK_INT(s->n, NSAME);
		CHECK(sorted_unique(s));
		CHECK(inodes_distinct(s));
		CHECK(all_found(s));
		CHECK(snapshot_find(s, "Same Name.json") == NULL);
		for (size_t i = 0; i < s->n; i++)
			if (strlen(entry_name(s->v[i])) > NAME_MAX_BYTES)
				short_names = false;
		CHECK(short_names);
	}
	snapshot_put(s);
	free(rows);
	free(ids);
}

/* Long names that collide after truncation stay unique and short. */
static void test_long_same_name(void)
{
	static char longname[1001];
	struct row rows[4] = {
		{ "L1", longname, NULL, 1 }, { "L2", longname, NULL, 1 },
		{ "L3", longname, "x", 1 }, { "L4", longname, NULL, 1 },
	};
	struct snapshot *s;

	memset(longname, 'L', 1000);
	s = build(rows, NULL, 4, 4);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(s->n, 4);
	CHECK(sorted_unique(s));
	CHECK(all_found(s));
	for (size_t i = 0; i < s->n; i++)
		CHECK(strlen(entry_name(s->v[i])) <= NAME_MAX_BYTES);
	snapshot_put(s);
}

static cJSON *deep(int levels)
{
	cJSON *o = cJSON_CreateString("bottom");

	for (int i = 0; i < levels && o; i++) {
		cJSON *outer = i % 2 ? cJSON_CreateArray() : cJSON_CreateObject();

		if (!outer) {
			cJSON_Delete(o);
			return NULL;
		}
		if (i % 2)
			cJSON_AddItemToArray(outer, o);
		else
			cJSON_AddItemToObject(outer, "k", o);
		o = outer;
	}
	return o;
}

static void test_hostile_json(void)
{
	struct snap_builder b = { .instance = INSTANCE };
	struct page pg = { .total = -1 };
	struct timespec ts = { 0 };
	char *big = malloc(1 << 20);
	cJSON *o;
	struct snapshot *s;

	CHECK(big != NULL);
	if (!big)
		return;
	memset(big, 'x', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	big[100] = '"';
	big[200] = '\\';
	big[300] = '\n';
	CHECK_INT(page_add(&pg, "deep", "deep", NULL, &ts, deep(500)), 0);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "blob", big);
	CHECK_INT(page_add(&pg, "big", "big", NULL, &ts, o), 0);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "ctl", "\x01\x1f\x7f\xff\xc0\xaf");
	CHECK_INT(page_add(&pg, "ctl", "ctl", NULL, &ts, o), 0);
	CHECK_INT(snap_builder_add(&b, &pg), 0);
	page_release(&pg);
	s = snap_builder_finish(&b, NULL);
	snap_builder_release(&b);
	CHECK(s != NULL);
	if (s) {
		const struct snap_entry *e = by_id(s, "big");
		const struct snap_entry *d = by_id(s, "deep");

		CHECK_INT(s->n, 3);
		CHECK(e && e->size > (1 << 20));
		CHECK(e && strlen(e->data) == e->size);
		CHECK(d && d->size > 500 && d->data[d->size - 1] == '\n');
		/* The rendered deep file parses back (it is JSON). */
		if (d) {
			cJSON *back = cJSON_ParseWithLength(d->data, d->size);

			CHECK(back != NULL);
			cJSON_Delete(back);
		}
	}
	snapshot_put(s);
	free(big);
}

int main(void)
{
	test_render();
	test_render_json();
	test_lookup();
	test_dedupe();
	test_collisions();
	test_collision_with_tag();
	test_inodes_stable();
	test_refcount();
	test_versions_shared();
	test_restart();
	test_many_same_name();
	test_long_same_name();
	test_hostile_json();
	/* Last: see the comment above test_empty(). */
	test_empty();
	return harness_done("test_snapshot");
}
