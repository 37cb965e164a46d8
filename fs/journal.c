/*
 * What a refresh changed, as journal lines: one line of JSON per
 * connection added, removed, renamed (same id, new name) or modified,
 * with the time, section, file name, id and kind, and for a modification
 * the top-level fields that changed: old and new value when both are short
 * scalars ("ConnectionState": {"old": "AUTHORIZED", "new":
 * "FAILED_CONNECTIVITY"}), the field's name only otherwise. Connections
 * are matched by id. It knows nothing of where the lines are kept.
 */
#include "journal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Scalars up to this many bytes are shown with their values. */
#define SHORT_SCALAR 80

/* A copy of s's entry pointers, sorted by id (NULL when out of memory). */
static struct snap_entry **sorted_by_id(const struct snapshot *s)
{
	struct snap_entry **v = malloc((s->n ? s->n : 1) * sizeof(*v));

	if (!v)
		return NULL;
	memcpy(v, s->v, s->n * sizeof(*v));
	if (s->n > 1)
		qsort(v, s->n, sizeof(*v), entry_cmp_id);
	return v;
}

static bool short_scalar(const cJSON *v)
{
	if (cJSON_IsString(v))
		return strlen(v->valuestring) <= SHORT_SCALAR;
	return cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v) ||
	       cJSON_IsRaw(v);
}

static cJSON *parse(const struct snap_entry *e)
{
	return cJSON_ParseWithLengthOpts(e->data, e->size, NULL, 0);
}

/* Adds "changes" and "fields" for one changed top-level key. */
static void add_field(cJSON *line, const char *key, const cJSON *a,
		      const cJSON *b)
{
	cJSON *changes = cJSON_GetObjectItemCaseSensitive(line, "changes");
	cJSON *fields = cJSON_GetObjectItemCaseSensitive(line, "fields");
	cJSON *pair;

	if (a && b && short_scalar(a) && short_scalar(b)) {
		if (!changes)
			changes = cJSON_AddObjectToObject(line, "changes");
		pair = cJSON_AddObjectToObject(changes, key);
		cJSON_AddItemToObject(pair, "old", cJSON_Duplicate(a, 1));
		cJSON_AddItemToObject(pair, "new", cJSON_Duplicate(b, 1));
		return;
	}
	if (!fields)
		fields = cJSON_AddArrayToObject(line, "fields");
	cJSON_AddItemToArray(fields, cJSON_CreateString(key));
}

/* The top-level fields that differ between two versions of one object. */
static void diff_fields(cJSON *line, const struct snap_entry *o,
			const struct snap_entry *e)
{
	cJSON *a = parse(o), *b = parse(e), *it;

	if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
		cJSON_ArrayForEach(it, a) {
			cJSON *other = cJSON_GetObjectItemCaseSensitive(
				b, it->string);

			if (!other || !cJSON_Compare(it, other, 1))
				add_field(line, it->string, it, other);
		}
		cJSON_ArrayForEach(it, b)
			if (!cJSON_GetObjectItemCaseSensitive(a, it->string))
				add_field(line, it->string, NULL, it);
	}
	cJSON_Delete(a);
	cJSON_Delete(b);
}

static void iso_time(double when, char *buf, size_t len)
{
	time_t t = (time_t)when;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One line; o is the old version, e the new (either may be NULL). */
static int add_line(struct journal *j, const char *kind,
		    const struct snap_entry *o, const struct snap_entry *e)
{
	const struct snap_entry *cur = e ? e : o;
	cJSON *line = cJSON_CreateObject();
	char **v, *text;

	if (!line)
		return -1;
	cJSON_AddStringToObject(line, "time", j->time);
	cJSON_AddStringToObject(line, "section", j->section);
	cJSON_AddStringToObject(line, "file", entry_name(cur));
	cJSON_AddStringToObject(line, "id", entry_id(cur));
	cJSON_AddStringToObject(line, "kind", kind);
	if (o && e && strcmp(entry_name(o), entry_name(e)))
		cJSON_AddStringToObject(line, "old_file", entry_name(o));
	if (o && e && (o->size != e->size || memcmp(o->data, e->data, o->size)))
		diff_fields(line, o, e);
	text = cJSON_PrintUnformatted(line);
	cJSON_Delete(line);
	if (!text || !(v = realloc(j->lines, (j->n + 1) * sizeof(*v)))) {
		free(text);
		return -1;
	}
	j->lines = v;
	j->lines[j->n++] = text;
	return 0;
}

/* Merges the two id-sorted versions of the listing. */
static int merge(struct journal *j, struct snap_entry **a, size_t na,
		 struct snap_entry **b, size_t nb)
{
	size_t i = 0, k = 0;
	int rc = 0;

	while (!rc && (i < na || k < nb)) {
		int c = i == na ? 1 : k == nb ? -1 :
			strcmp(entry_id(a[i]), entry_id(b[k]));

		if (c < 0) {
			rc = add_line(j, "removed", a[i++], NULL);
		} else if (c > 0) {
			rc = add_line(j, "added", NULL, b[k++]);
		} else {
			if (a[i] != b[k] &&
			    strcmp(entry_name(a[i]), entry_name(b[k])))
				rc = add_line(j, "renamed", a[i], b[k]);
			else if (a[i] != b[k] && (a[i]->size != b[k]->size ||
				 memcmp(a[i]->data, b[k]->data, a[i]->size)))
				rc = add_line(j, "modified", a[i], b[k]);
			i++;
			k++;
		}
	}
	return rc;
}

int journal_diff(struct journal *j, const char *section, double when,
		 const struct snapshot *old, const struct snapshot *new)
{
	struct snap_entry **a = sorted_by_id(old), **b = sorted_by_id(new);
	int rc = -1;

	memset(j, 0, sizeof(*j));
	j->section = section;
	iso_time(when, j->time, sizeof(j->time));
	if (a && b)
		rc = merge(j, a, old->n, b, new->n);
	free(a);
	free(b);
	if (rc)
		journal_release(j);
	return rc ? -1 : 0;
}

void journal_release(struct journal *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->lines[i]);
	free(j->lines);
	j->lines = NULL;
	j->n = 0;
}
