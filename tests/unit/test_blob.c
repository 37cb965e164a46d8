/*
 * Unit tests for the listing blob (cache/blob.c) and the Redis URL and
 * password-file parsing (cache/redis.c): byte-identical round trips
 * (NUL bytes, empty data, 64-bit inodes, nanoseconds, a large listing in
 * many pieces), and refusal of every kind of bad blob: another key's,
 * cut at every length, garbled, trailing bytes, wrong counts, bad names.
 * No network.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "harness.h"
#include "redis.h"

struct out {
	unsigned char *data;
	size_t len;
	unsigned pieces;
};

static int collect(void *arg, const void *data, size_t len)
{
	struct out *o = arg;
	unsigned char *p = realloc(o->data, o->len + len);

	if (!p)
		return -ENOMEM;
	memcpy(p + o->len, data, len);
	o->data = p;
	o->len += len;
	o->pieces++;
	return 0;
}

static const char KEY[] = "0123456789abcdef";

/* Item i of a test listing; data of i bytes with NULs in it. */
static void item(size_t i, char *name, char *id, unsigned char *data,
		 struct store_item *it)
{
	sprintf(name, "conn-%zu.json", i);
	sprintf(id, "id-%zu", i);
	for (size_t k = 0; k < i % 300; k++)
		data[k] = (unsigned char)(k * 7 + i);
	*it = (struct store_item){
		.name = name, .id = id, .data = i % 300 ? data : NULL,
		.size = i % 300, .mtime_sec = 1700000000 + (int64_t)i,
		.mtime_nsec = (long)(i * 1000003 % 1000000000),
		.ino = UINT64_MAX - i,
	};
}

static int make(size_t n, size_t chunk, struct out *o)
{
	struct blob_writer *w;
	unsigned char data[300];
	char name[64], id[64];
	int rc = blob_begin(KEY, n, chunk, collect, o, &w);

	for (size_t i = 0; !rc && i < n; i++) {
		struct store_item it;

		item(i, name, id, data, &it);
		if ((rc = blob_add(w, &it)))
			blob_abort(w);
	}
	return rc ? rc : blob_finish(w);
}

struct check {
	size_t seen;
	int bad;
};

static int verify(void *arg, const struct store_item *got)
{
	struct check *c = arg;
	unsigned char data[300];
	char name[64], id[64];
	struct store_item want;

	item(c->seen++, name, id, data, &want);
	if (strcmp(got->name, want.name) || strcmp(got->id, want.id) ||
	    got->size != want.size || got->mtime_sec != want.mtime_sec ||
	    got->mtime_nsec != want.mtime_nsec || got->ino != want.ino ||
	    (want.size && memcmp(got->data, want.data, want.size)))
		c->bad++;
	return 0;
}

static int ignore(void *arg, const struct store_item *it)
{
	(void)arg;
	(void)it;
	return 0;
}

static void test_round_trip(void)
{
	struct out o = { 0 };
	struct check c = { 0 };
	char err[200] = "";
	size_t count = 0;

	CHECK_INT(make(5000, 4096, &o), 0);
	CHECK(o.pieces > 1);
	CHECK_INT(blob_read(o.data, o.len, KEY, &count, verify, &c, err,
			    sizeof(err)), 0);
	CHECK_INT(count, 5000);
	CHECK_INT(c.seen, 5000);
	CHECK_INT(c.bad, 0);
	free(o.data);

	/* An empty listing is a listing. */
	o = (struct out){ 0 };
	CHECK_INT(make(0, 1 << 20, &o), 0);
	CHECK_INT(blob_read(o.data, o.len, KEY, &count, ignore, NULL, err,
			    sizeof(err)), 0);
	CHECK_INT(count, 0);
	free(o.data);
}

static void test_writer_refuses(void)
{
	struct blob_writer *w;
	struct out o = { 0 };
	struct store_item it = { .name = "a", .id = "b" };

	/* More items than announced, and fewer. */
	CHECK_INT(blob_begin(KEY, 1, 4096, collect, &o, &w), 0);
	CHECK_INT(blob_add(w, &it), 0);
	CHECK_INT(blob_add(w, &it), -EINVAL);
	blob_abort(w);
	CHECK_INT(blob_begin(KEY, 2, 4096, collect, &o, &w), 0);
	CHECK_INT(blob_add(w, &it), 0);
	CHECK_INT(blob_finish(w), -EINVAL);
	free(o.data);
}

static void test_bad_blobs(void)
{
	struct out o = { 0 };
	char err[200];
	unsigned cut_ok = 0, flip_ok = 0;
	unsigned char *copy;

	CHECK_INT(make(40, 4096, &o), 0);
	err[0] = 0;
	CHECK_INT(blob_read(o.data, o.len, "another-key", NULL, ignore, NULL,
			    err, sizeof(err)), -EBADMSG);
	CHECK_STR(err, "the listing of another key");
	/* Every cut is refused. */
	for (size_t n = 0; n < o.len; n++)
		if (blob_read(o.data, n, KEY, NULL, ignore, NULL, err,
			      sizeof(err)) == -EBADMSG)
			cut_ok++;
	CHECK_INT(cut_ok, o.len);
	/* Every flipped byte is refused (zlib's checksum, then ours). */
	copy = malloc(o.len + 1);
	for (size_t n = 0; n < o.len; n++) {
		memcpy(copy, o.data, o.len);
		copy[n] ^= 0x5a;
		if (blob_read(copy, o.len, KEY, NULL, ignore, NULL, err,
			      sizeof(err)) == -EBADMSG)
			flip_ok++;
	}
	CHECK_INT(flip_ok, o.len);
	/* Bytes after the end. */
	memcpy(copy, o.data, o.len);
	copy[o.len] = 0;
	CHECK_INT(blob_read(copy, o.len + 1, KEY, NULL, ignore, NULL, err,
			    sizeof(err)), -EBADMSG);
	CHECK_INT(blob_read("garbage", 7, KEY, NULL, ignore, NULL, err,
			    sizeof(err)), -EBADMSG);
	CHECK_STR(err, "not zlib data");
	free(copy);
	free(o.data);
}

static void test_bad_names(void)
{
	static const char *const names[] = { "", ".", "..", "a/b" };

	for (size_t i = 0; i < 4; i++) {
		struct store_item it = { .name = names[i], .id = "x" };
		struct blob_writer *w;
		struct out o = { 0 };
		char err[200] = "";

		CHECK_INT(blob_begin(KEY, 1, 4096, collect, &o, &w), 0);
		CHECK_INT(blob_add(w, &it), 0);
		CHECK_INT(blob_finish(w), 0);
		CHECK_INT(blob_read(o.data, o.len, KEY, NULL, ignore, NULL, err,
				    sizeof(err)), -EBADMSG);
		CHECK_STR(err, "a file name is invalid");
		free(o.data);
	}
}

static int stop_at_3(void *arg, const struct store_item *it)
{
	(void)it;
	return ++*(int *)arg == 3 ? -ECANCELED : 0;
}

static void test_callback_stops(void)
{
	struct out o = { 0 };
	char err[200];
	int n = 0;

	CHECK_INT(make(10, 4096, &o), 0);
	CHECK_INT(blob_read(o.data, o.len, KEY, NULL, stop_at_3, &n, err,
			    sizeof(err)), -ECANCELED);
	CHECK_INT(n, 3);
	free(o.data);
}

static void test_urls(void)
{
	struct redis_target t;
	char err[300];

	CHECK_INT(redis_parse_url("redis://cache.internal:6380/2", &t, err,
				  sizeof(err)), 0);
	CHECK_STR(t.host, "cache.internal");
	CHECK_INT(t.port, 6380);
	CHECK_INT(t.db, 2);
	CHECK(!t.user && !t.path && !t.password);
	CHECK_STR(t.display, "redis://cache.internal:6380/2");
	redis_target_release(&t);

	CHECK_INT(redis_parse_url("redis://connfs@10.0.0.5", &t, err,
				  sizeof(err)), 0);
	CHECK_STR(t.user, "connfs");
	CHECK_STR(t.host, "10.0.0.5");
	CHECK_INT(t.port, 6379);
	CHECK_INT(t.db, 0);
	redis_target_release(&t);

	CHECK_INT(redis_parse_url("unix://fleet@/run/redis/redis.sock?db=3",
				  &t, err, sizeof(err)), 0);
	CHECK_STR(t.path, "/run/redis/redis.sock");
	CHECK_STR(t.user, "fleet");
	CHECK_INT(t.db, 3);
	CHECK(!t.host);
	redis_target_release(&t);

	/* A password in the URL is refused, and not repeated. */
	CHECK_INT(redis_parse_url("redis://u:hunter2@h:1/0", &t, err,
				  sizeof(err)), -EINVAL);
	CHECK(strstr(err, "redis_password_file") != NULL);
	CHECK(strstr(err, "hunter2") == NULL);
	CHECK_INT(redis_parse_url("redis://:hunter2@h", &t, err, sizeof(err)),
		  -EINVAL);
	CHECK(strstr(err, "hunter2") == NULL);

	static const char *const bad[] = {
		"http://h", "redis://", "redis://h:0", "redis://h:99999",
		"redis://h:12x", "redis://h/x", "unix://relative/path",
		"unix:///s?db=x", "unix:///s?other=1", "redis://@h",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(redis_parse_url(bad[i], &t, err, sizeof(err)),
			  -EINVAL);
}

static void test_password_file(void)
{
	char path[] = "/tmp/connfs-redis-pw-XXXXXX";
	struct redis_target t;
	char err[300];
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	CHECK_INT(write(fd, "s3cret\nignored\n", 15), 15);
	close(fd);
	CHECK_INT(redis_parse_url("redis://h", &t, err, sizeof(err)), 0);
	CHECK_INT(redis_read_password(&t, path, err, sizeof(err)), 0);
	CHECK_STR(t.password, "s3cret");
	CHECK(strstr(t.display, "s3cret") == NULL);
	/* Group or world readable: refused, the fix named. */
	chmod(path, 0640);
	CHECK_INT(redis_read_password(&t, path, err, sizeof(err)), -EPERM);
	CHECK(strstr(err, "chmod 600") != NULL);
	CHECK(strstr(err, "s3cret") == NULL);
	unlink(path);
	CHECK_INT(redis_read_password(&t, path, err, sizeof(err)), -ENOENT);
	redis_target_release(&t);
}

static void test_reply_errors(void)
{
	CHECK_INT(redis_reply_errno("WRONGPASS invalid username-password"),
		  -EACCES);
	CHECK_INT(redis_reply_errno("NOAUTH Authentication required."),
		  -EACCES);
	CHECK_INT(redis_reply_errno("OOM command not allowed"), -ENOSPC);
	CHECK_INT(redis_reply_errno("READONLY You can't write"), -EROFS);
	CHECK_INT(redis_reply_errno("LOADING Redis is loading"), -EAGAIN);
	CHECK_INT(redis_reply_errno("ERR unknown command"), -EIO);
}

int main(void)
{
	test_round_trip();
	test_writer_refuses();
	test_bad_blobs();
	test_bad_names();
	test_callback_stops();
	test_urls();
	test_password_file();
	test_reply_errors();
	return harness_done("test_blob");
}
