/*
 * The listing blob (see blob.h). Before compression it is
 *
 *   "connfs-listing 1\n"  u32 key length, key,  u64 count,
 *   count × { u32 name length, name, u32 id length, id,
 *             u64 size, bytes, i64 mtime sec, u32 mtime nsec, u64 ino },
 *   "end\n"
 *
 * integers little-endian. Lengths are checked against hard limits before
 * anything is allocated, so a hostile blob cannot make the reader ask for
 * more memory than one real item needs.
 */
#include "blob.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAGIC "connfs-listing 1\n"
#define TRAILER "end\n"
#define MAX_NAME 4096		/* longer than any file name connfs makes */
#define MAX_DATA (256u << 20)	/* one rendered connection, at most */

struct blob_writer {
	z_stream z;
	unsigned char *out;
	size_t chunk;
	size_t left;		/* items still to come */
	blob_out_fn fn;
	void *arg;
};

static int flush_out(struct blob_writer *w, bool all)
{
	size_t have = w->chunk - w->z.avail_out;
	int rc;

	if (!have || (!all && w->z.avail_out))
		return 0;
	rc = w->fn(w->arg, w->out, have);
	w->z.next_out = w->out;
	w->z.avail_out = (uInt)w->chunk;
	return rc;
}

static int put(struct blob_writer *w, const void *p, size_t len, int flush)
{
	w->z.next_in = (Bytef *)(uintptr_t)p;
	w->z.avail_in = (uInt)len;
	for (;;) {
		int zr = deflate(&w->z, flush);
		int rc;

		if (zr == Z_STREAM_ERROR)
			return -EIO;
		if ((rc = flush_out(w, zr == Z_STREAM_END)))
			return rc;
		if (zr == Z_STREAM_END)
			return 0;
		if (!w->z.avail_in && w->z.avail_out && flush == Z_NO_FLUSH)
			return 0;
	}
}

static int put_u32(struct blob_writer *w, uint32_t v)
{
	unsigned char b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return put(w, b, 4, Z_NO_FLUSH);
}

static int put_u64(struct blob_writer *w, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return put(w, b, 8, Z_NO_FLUSH);
}

static int put_str(struct blob_writer *w, const char *s)
{
	size_t n = strlen(s);
	int rc = put_u32(w, (uint32_t)n);

	return rc ? rc : put(w, s, n, Z_NO_FLUSH);
}

void blob_abort(struct blob_writer *w)
{
	if (!w)
		return;
	deflateEnd(&w->z);
	free(w->out);
	free(w);
}

int blob_begin(const char *key, size_t count, size_t chunk, blob_out_fn out,
	       void *arg, struct blob_writer **wp)
{
	struct blob_writer *w = calloc(1, sizeof(*w));
	int rc;

	*wp = NULL;
	if (!w || !(w->out = malloc(chunk))) {
		free(w);
		return -ENOMEM;
	}
	if (deflateInit(&w->z, 6) != Z_OK) {
		free(w->out);
		free(w);
		return -ENOMEM;
	}
	w->chunk = chunk;
	w->left = count;
	w->fn = out;
	w->arg = arg;
	w->z.next_out = w->out;
	w->z.avail_out = (uInt)chunk;
	rc = put(w, MAGIC, strlen(MAGIC), Z_NO_FLUSH);
	if (!rc)
		rc = put_str(w, key);
	if (!rc)
		rc = put_u64(w, count);
	if (rc) {
		blob_abort(w);
		return rc;
	}
	*wp = w;
	return 0;
}

int blob_add(struct blob_writer *w, const struct store_item *it)
{
	int rc;

	if (!w->left || strlen(it->name) > MAX_NAME ||
	    strlen(it->id) > MAX_NAME || it->size > MAX_DATA)
		return -EINVAL;
	w->left--;
	rc = put_str(w, it->name);
	if (!rc)
		rc = put_str(w, it->id);
	if (!rc)
		rc = put_u64(w, it->size);
	if (!rc && it->size)
		rc = put(w, it->data, it->size, Z_NO_FLUSH);
	if (!rc)
		rc = put_u64(w, (uint64_t)it->mtime_sec);
	if (!rc)
		rc = put_u32(w, (uint32_t)it->mtime_nsec);
	if (!rc)
		rc = put_u64(w, it->ino);
	return rc;
}

int blob_finish(struct blob_writer *w)
{
	int rc = w->left ? -EINVAL : put(w, TRAILER, strlen(TRAILER),
					 Z_FINISH);

	blob_abort(w);
	return rc;
}

/* Reading: inflates into a window that holds at least what is parsed. */
struct reader {
	z_stream z;
	unsigned char *buf;
	size_t cap, start, end;
	bool eof;
	const char *why;	/* set on failure */
};

static int need(struct reader *r, size_t n)
{
	while (r->end - r->start < n) {
		size_t before;
		int zr;

		if (r->eof)
			return r->why = "cut short", -EBADMSG;
		if (r->start) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->cap - r->end < (n > 65536 ? n : 65536)) {
			size_t cap = r->cap * 2 > n + 65536 ? r->cap * 2 :
							      n + 65536;
			unsigned char *b = realloc(r->buf, cap);

			if (!b)
				return r->why = "out of memory", -ENOMEM;
			r->buf = b;
			r->cap = cap;
		}
		r->z.next_out = r->buf + r->end;
		r->z.avail_out = (uInt)(r->cap - r->end);
		before = r->end;
		zr = inflate(&r->z, Z_NO_FLUSH);
		r->end = r->cap - r->z.avail_out;
		if (zr == Z_STREAM_END)
			r->eof = true;
		else if (zr != Z_OK && !(zr == Z_BUF_ERROR &&
					  r->end > before))
			return r->why = zr == Z_BUF_ERROR ? "cut short" :
					"not zlib data", -EBADMSG;
	}
	return 0;
}

static const unsigned char *take(struct reader *r, size_t n)
{
	const unsigned char *p = r->buf + r->start;

	r->start += n;
	return p;
}

/* An n-byte little-endian integer. */
static int get_le(struct reader *r, size_t n, uint64_t *v)
{
	const unsigned char *p;
	int rc = need(r, n);

	if (rc)
		return rc;
	p = take(r, n);
	*v = 0;
	while (n--)
		*v = *v << 8 | p[n];
	return 0;
}

static int get_u64(struct reader *r, uint64_t *v)
{
	return get_le(r, 8, v);
}

static int get_u32(struct reader *r, uint32_t *v)
{
	uint64_t x;
	int rc = get_le(r, 4, &x);

	*v = (uint32_t)x;
	return rc;
}

/* A length-prefixed string, copied NUL-terminated into out[MAX_NAME+1]. */
static int get_str(struct reader *r, char *out)
{
	uint32_t n;
	int rc = get_u32(r, &n);

	if (!rc && n > MAX_NAME)
		return r->why = "a name is too long", -EBADMSG;
	if (!rc)
		rc = need(r, n);
	if (rc)
		return rc;
	memcpy(out, take(r, n), n);
	out[n] = 0;
	if (strlen(out) != n)
		return r->why = "a name holds a NUL byte", -EBADMSG;
	return 0;
}

static int valid_name(const char *s)
{
	return s[0] && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

static int read_item(struct reader *r, char *name, char *id,
		     struct store_item *it)
{
	uint64_t size, sec, ino;
	uint32_t nsec;
	size_t at;
	int rc;

	if ((rc = get_str(r, name)) || (rc = get_str(r, id)) ||
	    (rc = get_u64(r, &size)))
		return rc;
	if (!valid_name(name))
		return r->why = "a file name is invalid", -EBADMSG;
	if (size > MAX_DATA)
		return r->why = "an item is too large", -EBADMSG;
	if ((rc = need(r, (size_t)size + 20)))
		return rc;
	at = r->start;
	take(r, (size_t)size);
	if ((rc = get_u64(r, &sec)) || (rc = get_u32(r, &nsec)) ||
	    (rc = get_u64(r, &ino)))
		return rc;
	if (nsec > 999999999)
		return r->why = "an mtime is invalid", -EBADMSG;
	*it = (struct store_item){
		.name = name, .id = id, .size = (size_t)size,
		.data = size ? r->buf + at : NULL,
		.mtime_sec = (int64_t)sec, .mtime_nsec = (long)nsec,
		.ino = ino,
	};
	return 0;
}

static int read_all(struct reader *r, const char *key, size_t *count,
		    store_item_fn fn, void *arg)
{
	char name[MAX_NAME + 1], id[MAX_NAME + 1];
	uint64_t n;
	int rc;

	if ((rc = need(r, strlen(MAGIC))))
		return rc;
	if (memcmp(take(r, strlen(MAGIC)), MAGIC, strlen(MAGIC)))
		return r->why = "not a connfs listing", -EBADMSG;
	if ((rc = get_str(r, name)) || (rc = get_u64(r, &n)))
		return rc;
	if (strcmp(name, key))
		return r->why = "the listing of another key", -EBADMSG;
	if (count)
		*count = (size_t)n;
	for (uint64_t i = 0; i < n; i++) {
		struct store_item it;

		if ((rc = read_item(r, name, id, &it)) ||
		    (rc = fn(arg, &it)))
			return rc;
	}
	if ((rc = need(r, strlen(TRAILER))))
		return rc;
	if (memcmp(take(r, strlen(TRAILER)), TRAILER, strlen(TRAILER)))
		return r->why = "no end marker", -EBADMSG;
	if (r->end != r->start)
		return r->why = "bytes after the end", -EBADMSG;
	/* The trailer may come out before zlib has seen its stream end. */
	if (!r->eof && !need(r, 1))
		return r->why = "bytes after the end", -EBADMSG;
	if (!r->eof)
		return -EBADMSG;
	r->why = NULL;
	return 0;
}

int blob_read(const void *blob, size_t len, const char *key, size_t *count,
	      store_item_fn fn, void *arg, char *err, size_t errlen)
{
	struct reader r = { .why = NULL };
	int rc;

	if (inflateInit(&r.z) != Z_OK)
		return -ENOMEM;
	r.z.next_in = (Bytef *)(uintptr_t)blob;
	r.z.avail_in = (uInt)len;
	rc = read_all(&r, key, count, fn, arg);
	/* Inflate may have stopped at the trailer with input left over. */
	if (!rc && r.z.avail_in)
		rc = (r.why = "bytes after the end", -EBADMSG);
	inflateEnd(&r.z);
	free(r.buf);
	if (rc && r.why)
		snprintf(err, errlen, "%s", r.why);
	return rc;
}
