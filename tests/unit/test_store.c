/*
 * Unit tests for the persistent listing store (cache/store.c) on a real
 * SQLite file in a temporary directory: byte-identical round trips (NUL
 * bytes, empty data, 64-bit inodes, nanoseconds), replace/abort/forget,
 * survival across reopening, validation of tampered rows, two handles and
 * several threads saving at once, a corrupt file moved aside, refused
 * permissions and unwritable files, a full database, a 100,000-item listing
 * within a memory bound, and the journal. No FUSE, no network.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "store.h"

static char tmp[64];
static char err[512];

/* A fresh directory under the test's temporary directory. */
static const char *sub(const char *name)
{
	static char path[16][256];
	static int n;
	char *p = path[n++ % 16];

	snprintf(p, sizeof(path[0]), "%s/%s", tmp, name);
	return p;
}

static const char *db_path(const char *dir)
{
	static char p[300];

	snprintf(p, sizeof(p), "%s/connfs.db", dir);
	return p;
}

static int rm_one(const char *p, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Deterministic item i of generation gen, data into buf. */
static void make_item(struct store_item *it, char *buf, size_t len,
		      char *name, int gen, int i)
{
	int n = snprintf(buf, len, "gen %d item %d ", gen, i);

	for (size_t k = (size_t)n; k < len; k++)
		buf[k] = (char)('a' + (k + (size_t)i) % 26);
	sprintf(name, "conn-%d.json", i);
	it->name = name;
	it->id = name + 5;
	it->data = buf;
	it->size = len;
	it->mtime_sec = 1700000000 + i;
	it->mtime_nsec = i % 1000000000;
	it->ino = 0x8000000000000000ULL | (uint64_t)i;
}

static int save_gen(struct store *st, const char *key, int gen, int n,
		    size_t len)
{
	struct store_txn *t;
	struct store_item it;
	char name[64], *buf = malloc(len);
	int rc = store_save_begin(st, key, 1000.5 + gen, &t);

	for (int i = 0; !rc && i < n; i++) {
		make_item(&it, buf, len, name, gen, i);
		rc = store_save_item(t, &it);
	}
	if (rc && t)
		store_save_abort(t);
	else if (!rc)
		rc = store_save_commit(t);
	free(buf);
	return rc;
}

/* Checks a loaded listing item by item against make_item(gen). */
struct verify {
	int gen;		/* -1: take it from the first item */
	size_t len;
	int next;
	int bad;
};

static int verify_item(void *arg, const struct store_item *got)
{
	struct verify *v = arg;
	struct store_item want;
	char name[64], buf[512];

	if (v->gen < 0) {
		snprintf(buf, sizeof(buf), "%.*s", (int)got->size,
			 (const char *)got->data);
		if (sscanf(buf, "gen %d", &v->gen) != 1)
			v->gen = 0;
	}
	make_item(&want, buf, v->len, name, v->gen, v->next++);
	if (got->size != want.size || memcmp(got->data, want.data, want.size)
	    || strcmp(got->name, want.name) || strcmp(got->id, want.id) ||
	    got->mtime_sec != want.mtime_sec ||
	    got->mtime_nsec != want.mtime_nsec || got->ino != want.ino)
		v->bad++;
	return 0;
}

#if defined(__SANITIZE_ADDRESS__)
/*
 * ASan keeps freed memory in a quarantine (256 MiB by default), which would
 * count as growth of the peak RSS; keep it small so the bound holds there.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=4";
}
#endif

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Runs first, so that the peak RSS before it is the process's baseline. */
static void test_big_listing(void)
{
	struct store *st;
	struct verify v = { .gen = 7, .len = 300 };
	size_t count = 0;
	long before;

	CHECK_INT(store_open(sub("big"), &st, err, sizeof(err)), 0);
	before = maxrss_kb();
	CHECK_INT(save_gen(st, "big", 7, 100000, 300), 0);
	CHECK(maxrss_kb() - before < 20 * 1024);	/* data alone: 30 MB */
	CHECK_INT(store_load(st, "big", NULL, &count, verify_item, &v, err,
			     sizeof(err)), 0);
	CHECK_INT(count, 100000);
	CHECK_INT(v.next, 100000);
	CHECK_INT(v.bad, 0);
	store_close(st);
}

/* Collects a loaded listing for exact comparisons. */
struct got {
	int n;
	char name[8][32];
	unsigned char data[8][16];
	size_t size[8];
	int64_t sec[8];
	long nsec[8];
	uint64_t ino[8];
	int stop_at;		/* return -EINTR at this item, or -1 */
};

static int collect(void *arg, const struct store_item *it)
{
	struct got *g = arg;

	if (g->n == g->stop_at || g->n >= 8 || it->size > 16)
		return -EINTR;
	snprintf(g->name[g->n], sizeof(g->name[0]), "%s", it->name);
	memcpy(g->data[g->n], it->data, it->size);
	g->size[g->n] = it->size;
	g->sec[g->n] = it->mtime_sec;
	g->nsec[g->n] = it->mtime_nsec;
	g->ino[g->n] = it->ino;
	g->n++;
	return 0;
}

static const struct store_item odd_items[] = {
	{ "b.json", "2", "a\0b\0", 4, -5, 999999999, UINT64_MAX },
	{ "a.json", "1", NULL, 0, 0, 0, 0x8000000000000001ULL },
	{ "c.json", "3", "\0", 1, INT64_MAX, 1, 1 },
};

static int save_items(struct store *st, const char *key, double at,
		      const struct store_item *items, int n)
{
	struct store_txn *t;
	int rc = store_save_begin(st, key, at, &t);

	for (int i = 0; !rc && i < n; i++)
		rc = store_save_item(t, &items[i]);
	if (rc && t)
		store_save_abort(t);
	return rc ? rc : store_save_commit(t);
}

static void check_odd(struct store *st, const char *key)
{
	struct got g = { .stop_at = -1 };
	double at = 0;
	size_t count = 0;

	CHECK_INT(store_load(st, key, &at, &count, collect, &g, err,
			     sizeof(err)), 0);
	CHECK(at == 1764583576.123456);
	CHECK_INT(count, 3);
	CHECK_INT(g.n, 3);
	for (int i = 0; i < 3 && i < g.n; i++) {
		CHECK_STR(g.name[i], odd_items[i].name);
		CHECK_INT(g.size[i], odd_items[i].size);
		CHECK(!memcmp(g.data[i], odd_items[i].data ? odd_items[i].data
			      : "", odd_items[i].size));
		CHECK_INT(g.sec[i], odd_items[i].mtime_sec);
		CHECK_INT(g.nsec[i], odd_items[i].mtime_nsec);
		CHECK(g.ino[i] == odd_items[i].ino);
	}
}

static void test_round_trip(void)
{
	struct got g = { .stop_at = 1 };
	struct store *st;
	struct stat sb;
	const char *dir = sub("rt/a/b");

	CHECK_INT(store_open(dir, &st, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	CHECK(stat(sub("rt/a"), &sb) == 0 && (sb.st_mode & 0777) == 0700);
	CHECK(stat(db_path(dir), &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK_INT(save_items(st, "k", 1764583576.123456, odd_items, 3), 0);
	check_odd(st, "k");
	/* fn's error stops the load and is returned. */
	CHECK_INT(store_load(st, "k", NULL, NULL, collect, &g, err,
			     sizeof(err)), -EINTR);
	CHECK_INT(g.n, 1);
	CHECK_INT(store_load(st, "nope", NULL, NULL, collect, &g, err,
			     sizeof(err)), -ENOENT);
	store_close(st);
	/* A remount sees the same listing. */
	CHECK_INT(store_open(dir, &st, err, sizeof(err)), 0);
	check_odd(st, "k");
	store_close(st);
}

static int count_of(struct store *st, const char *key)
{
	size_t n = 0;
	int rc = store_load(st, key, NULL, &n, NULL, NULL, err, sizeof(err));

	return rc ? rc : (int)n;
}

static void test_replace_abort_forget(void)
{
	struct store_item bad = { "x", NULL, NULL, 0, 0, 0, 0 };
	struct store_txn *t;
	struct verify v = { .gen = -1, .len = 40 };
	struct store *st;
	double when = 0;
	size_t n = 1;

	CHECK_INT(store_open(sub("raf"), &st, err, sizeof(err)), 0);
	CHECK_INT(save_gen(st, "a", 1, 5, 40), 0);
	CHECK_INT(save_gen(st, "a", 2, 3, 40), 0);
	CHECK_INT(save_gen(st, "b", 3, 4, 40), 0);
	CHECK_INT(store_load(st, "a", NULL, NULL, verify_item, &v, err,
			     sizeof(err)), 0);
	CHECK_INT(v.gen, 2);
	CHECK_INT(v.next, 3);
	CHECK_INT(v.bad, 0);
	/* Abort, and a failed item then commit, keep the old listing. */
	CHECK_INT(store_save_begin(st, "a", 9, &t), 0);
	CHECK_INT(store_save_item(t, &odd_items[0]), 0);
	store_save_abort(t);
	CHECK_INT(count_of(st, "a"), 3);
	CHECK_INT(store_save_begin(st, "a", 9, &t), 0);
	CHECK_INT(store_save_item(t, &odd_items[0]), 0);
	CHECK_INT(store_save_item(t, &bad), -EINVAL);
	CHECK_INT(store_save_commit(t), -EINVAL);
	CHECK_INT(count_of(st, "a"), 3);
	/* An empty listing is a listing. */
	CHECK_INT(save_gen(st, "c", 4, 0, 40), 0);
	CHECK_INT(count_of(st, "c"), 0);
	/* An unchanged walk writes its time only. */
	CHECK_INT(store_touch(st, "c", 77.5), 0);
	CHECK_INT(store_load(st, "c", &when, &n, NULL, NULL, err, sizeof(err)),
		  0);
	CHECK(when == 77.5);
	CHECK_INT(n, 0);
	CHECK_INT(store_touch(st, "nothing", 1), -ENOENT);
	CHECK_INT(store_forget(st, "a"), 0);
	CHECK_INT(store_forget(st, "a"), 0);
	CHECK_INT(count_of(st, "a"), -ENOENT);
	CHECK_INT(store_touch(st, "a", 1), -ENOENT);
	CHECK_INT(count_of(st, "b"), 4);
	store_close(st);
}

static int open_fails(const char *dir, int want, const char *in_msg)
{
	struct store *st = NULL;
	int rc = store_open(dir, &st, err, sizeof(err));

	if (rc != want || st || !strstr(err, in_msg)) {
		fprintf(stderr, "store_open(%s) = %d, err \"%s\"\n", dir, rc,
			err);
		store_close(st);
		return 0;
	}
	return 1;
}

/* Tampers with the database behind the store's back. */
static void tamper(const char *dir, const char *sql)
{
	sqlite3 *db;

	CHECK_INT(sqlite3_open(db_path(dir), &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_validation(void)
{
	static const char *const sql[] = {
		"UPDATE listings SET count = count + 1",
		"UPDATE items SET data = 'text' WHERE pos = 2",
		"UPDATE items SET ino = 'x' WHERE pos = 0",
		"UPDATE items SET mtime_nsec = 1000000000 WHERE pos = 1",
		"UPDATE listings SET walked_at = 'soon'",
		"DELETE FROM items WHERE pos = 1; UPDATE listings SET count = 2",
	};
	const char *dir = sub("valid");
	struct store *st;
	struct got g;

	CHECK_INT(store_open(dir, &st, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		CHECK_INT(save_items(st, "k", 1764583576.123456, odd_items, 3),
			  0);
		tamper(dir, sql[i]);
		memset(&g, 0, sizeof(g));
		g.stop_at = -1;
		CHECK_INT(store_load(st, "k", NULL, NULL, collect, &g, err,
				     sizeof(err)), -EBADMSG);
		CHECK_INT(g.n, 0);	/* never partly served */
		CHECK(strstr(err, "invalid") != NULL);
	}
	store_close(st);
	/* A database of a newer schema is left alone. */
	tamper(dir, "PRAGMA user_version = 2");
	CHECK(open_fails(dir, -EPROTO, "newer than this connfs"));
}

/* Threads saving through two handles on one directory. */
struct saver {
	struct store *st;
	const char *key;
	int gen0;
	int failures;
};

#define ROUNDS 15

static void *saver_run(void *arg)
{
	struct saver *s = arg;

	for (int r = 0; r < ROUNDS; r++)
		if (save_gen(s->st, s->key, s->gen0 + r, 30 + r, 60))
			s->failures++;
	return NULL;
}

static int journal_count(void *arg, int64_t seq, const char *line)
{
	(void)seq;
	(void)line;
	++*(int *)arg;
	return 0;
}

/* The listing is exactly one generation's, whole. */
static void check_whole(struct store *st, const char *key)
{
	struct verify v = { .gen = -1, .len = 60 };
	size_t n = 0;

	CHECK_INT(store_load(st, key, NULL, &n, verify_item, &v, err,
			     sizeof(err)), 0);
	CHECK_INT(v.bad, 0);
	CHECK_INT(n, 30 + v.gen % 100);
	CHECK_INT(v.next, (int)n);
}

static void test_two_handles(void)
{
	const char *dir = sub("two");
	const char *line = "{\"kind\":\"added\"}";
	struct store *a, *b;
	struct saver s[4];
	pthread_t th[4];
	int lines = 0;

	CHECK_INT(store_open(dir, &a, err, sizeof(err)), 0);
	CHECK_INT(store_open(dir, &b, err, sizeof(err)), 0);
	s[0] = (struct saver){ a, "own-a", 0, 0 };
	s[1] = (struct saver){ b, "own-b", 100, 0 };
	s[2] = (struct saver){ a, "shared", 200, 0 };
	s[3] = (struct saver){ b, "shared", 300, 0 };
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, saver_run, &s[i]);
	for (int i = 0; i < 20; i++) {
		CHECK_INT(store_journal_add(i % 2 ? a : b, i, "s", &line, 1),
			  0);
		int c = count_of(a, "shared");

		CHECK(c >= 30 || c == -ENOENT);	/* whole, or none yet */
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(s[i].failures, 0);
	}
	check_whole(a, "own-a");
	check_whole(b, "own-b");
	check_whole(a, "shared");
	check_whole(b, "shared");
	CHECK_INT(store_journal_read(b, NULL, 0, journal_count, &lines), 0);
	CHECK_INT(lines, 20);
	store_close(a);
	store_close(b);
}

static char *slurp(const char *path, size_t *len)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));

	if (fd >= 0)
		close(fd);
	*len = n < 0 ? 0 : (size_t)n;
	return buf;
}

static void test_corrupt(void)
{
	const char *dir = sub("corrupt");
	char garbage[4096], aside[400] = "";
	struct store *st;
	struct dirent *de;
	size_t len;
	DIR *d;
	int fd;

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)("not a database "[i % 15]);
	CHECK_INT(store_open(dir, &st, err, sizeof(err)), 0);
	CHECK_INT(save_gen(st, "k", 1, 3, 40), 0);
	store_close(st);
	fd = open(db_path(dir), O_WRONLY | O_TRUNC);
	CHECK(write(fd, garbage, sizeof(garbage)) == sizeof(garbage));
	close(fd);
	CHECK_INT(store_open(dir, &st, err, sizeof(err)), 0);
	CHECK(strstr(err, "corrupt") && strstr(err, "moved aside"));
	d = opendir(dir);
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "connfs.db.corrupt-", 18))
			snprintf(aside, sizeof(aside), "%s/%s", dir,
				 de->d_name);
	if (d)
		closedir(d);
	CHECK(aside[0] != '\0');
	CHECK(!memcmp(slurp(aside, &len), garbage, sizeof(garbage)));
	CHECK_INT(len, sizeof(garbage));
	/* The fresh store is empty and works. */
	CHECK_INT(count_of(st, "k"), -ENOENT);
	CHECK_INT(save_gen(st, "k", 2, 4, 40), 0);
	CHECK_INT(count_of(st, "k"), 4);
	store_close(st);
}

static int set_immutable(const char *path, int on)
{
	int fd = open(path, O_RDONLY), flags = 0, rc = -1;

	if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static void test_permissions(void)
{
	char dir[256], file[300], msg[400];
	struct store *st;
	int fd;

	snprintf(dir, sizeof(dir), "%s", sub("perm"));
	snprintf(file, sizeof(file), "%s", db_path(dir));
	CHECK_INT(store_open(dir, &st, err, sizeof(err)), 0);
	store_close(st);
	chmod(dir, 0755);
	snprintf(msg, sizeof(msg), "chmod 700 %s", dir);
	CHECK(open_fails(dir, -EPERM, msg));
	chmod(dir, 0700);
	chmod(file, 0640);
	snprintf(msg, sizeof(msg), "chmod 600 %s", file);
	CHECK(open_fails(dir, -EPERM, msg));
	chmod(file, 0600);
	if (geteuid() == 0) {
		CHECK_INT(chown(file, 65534, 65534), 0);
		CHECK(open_fails(dir, -EPERM, "owned by uid 65534"));
		CHECK_INT(chown(file, 0, 0), 0);
	}
	/* A path whose parent is a regular file cannot be created. */
	fd = open(sub("plain"), O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK(open_fails(sub("plain/store"), -ENOTDIR, sub("plain/store")));
	/* An immutable database file cannot be opened for writing. */
	if (set_immutable(file, 1) == 0) {
		CHECK(open_fails(dir, -EROFS, "cannot be opened for writing"));
		CHECK_INT(set_immutable(file, 0), 0);
	} else {
		fprintf(stderr, "test_store: no immutable files here\n");
	}
	CHECK_INT(store_open(dir, &st, err, sizeof(err)), 0);
	store_close(st);
}

/*
 * Permission bits as an unprivileged owner sees them: a 0400 file and a
 * 0500 directory. Root drops to uid 65534 in a child for this.
 */
static void test_read_only(void)
{
	const char *ro_file = sub("rofile"), *ro_dir = sub("rodir");
	struct store *st;
	pid_t pid;
	int status = -1, r = 0;

	CHECK_INT(store_open(ro_file, &st, err, sizeof(err)), 0);
	store_close(st);
	CHECK_INT(store_open(ro_dir, &st, err, sizeof(err)), 0);
	store_close(st);
	pid = fork();
	if (pid == 0) {
		if (geteuid() == 0) {
			chown(ro_file, 65534, 65534);
			chown(db_path(ro_file), 65534, 65534);
			chown(ro_dir, 65534, 65534);
			chown(db_path(ro_dir), 65534, 65534);
			if (setgid(65534) || setuid(65534))
				_exit(99);
		}
		chmod(db_path(ro_file), 0400);
		chmod(ro_dir, 0500);
		r |= !open_fails(ro_file, -EROFS, db_path(ro_file));
		r |= !open_fails(ro_dir, -EROFS, db_path(ro_dir)) << 1;
		chmod(ro_dir, 0700);
		chmod(db_path(ro_file), 0600);
		_exit(r);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
}

static void test_full(void)
{
	struct store *st;
	char msg[600];

	CHECK_INT(store_open(sub("full"), &st, err, sizeof(err)), 0);
	CHECK_INT(save_gen(st, "k", 1, 10, 100), 0);
	store_limit_pages(st, 40);	/* 160 KiB */
	CHECK_INT(save_gen(st, "k", 2, 2000, 300), -ENOSPC);
	store_last_error(st, msg, sizeof(msg));
	CHECK(strstr(msg, "full") != NULL);
	CHECK_INT(count_of(st, "k"), 10);
	store_limit_pages(st, 0);
	CHECK_INT(save_gen(st, "k", 2, 2000, 300), 0);
	CHECK_INT(count_of(st, "k"), 2000);
	store_close(st);
}

/* Collects journal rows as "seq:line" joined by spaces. */
struct lines {
	char text[512];
	int64_t last;
	int stop_after;
	int n;
};

static int add_line(void *arg, int64_t seq, const char *line)
{
	struct lines *l = arg;
	size_t len = strlen(l->text);

	snprintf(l->text + len, sizeof(l->text) - len, "%s%s",
		 len ? " " : "", line);
	l->last = seq;
	if (++l->n == l->stop_after)
		return -ECANCELED;
	return 0;
}

static const char *jread(struct store *st, const char *sec, int64_t after,
			 int stop_after, int want_rc)
{
	static struct lines l;

	memset(&l, 0, sizeof(l));
	l.stop_after = stop_after;
	CHECK_INT(store_journal_read(st, sec, after, add_line, &l), want_rc);
	return l.text;
}

static void test_journal(void)
{
	const char *a1[] = { "a1", "a2", "a3" }, *b1[] = { "b1", "b2" };
	const char *a2[] = { "a4" }, *a3[] = { "a5" };
	struct store *st, *other;
	struct lines l = { .stop_after = 3 };

	CHECK_INT(store_open(sub("journal"), &st, err, sizeof(err)), 0);
	CHECK_STR(jread(st, NULL, 0, 0, 0), "");
	CHECK_INT(store_journal_add(st, 100, "a", a1, 3), 0);
	CHECK_INT(store_journal_add(st, 200, "b", b1, 2), 0);
	CHECK_INT(store_journal_add(st, 300, "a", a2, 1), 0);
	CHECK_STR(jread(st, NULL, 0, 0, 0), "a1 a2 a3 b1 b2 a4");
	CHECK_STR(jread(st, "a", 0, 0, 0), "a1 a2 a3 a4");
	CHECK_STR(jread(st, "b", 0, 0, 0), "b1 b2");
	CHECK_STR(jread(st, "c", 0, 0, 0), "");
	CHECK_STR(jread(st, NULL, 0, 2, -ECANCELED), "a1 a2");
	CHECK_INT(store_journal_read(st, NULL, 0, add_line, &l), -ECANCELED);
	CHECK_STR(jread(st, NULL, l.last, 0, 0), "b1 b2 a4");
	CHECK_STR(jread(st, "a", l.last, 0, 0), "a4");
	/* Pruning by age, then by row cap; seq never goes back. */
	CHECK_INT(store_journal_prune(st, 150, 0), 0);
	CHECK_STR(jread(st, NULL, 0, 0, 0), "b1 b2 a4");
	CHECK_INT(store_journal_prune(st, 0, 2), 0);
	CHECK_STR(jread(st, NULL, 0, 0, 0), "b2 a4");
	CHECK_INT(store_journal_prune(st, 0, 5), 0);
	CHECK_STR(jread(st, NULL, 0, 0, 0), "b2 a4");
	CHECK_INT(store_journal_prune(st, 1000, 0), 0);
	CHECK_STR(jread(st, NULL, 0, 0, 0), "");
	CHECK_INT(store_journal_add(st, 400, "a", a3, 1), 0);
	CHECK_STR(jread(st, NULL, l.last + 3, 0, 0), "a5");
	CHECK_STR(jread(st, NULL, l.last + 4, 0, 0), "");
	CHECK_INT(store_journal_add(st, 500, "a", a3, 0), 0);
	/* Another handle (another mount) sees the same journal. */
	CHECK_INT(store_open(sub("journal"), &other, err, sizeof(err)), 0);
	CHECK_STR(jread(other, "a", 0, 0, 0), "a5");
	store_close(other);
	store_close(st);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/connfs-store-XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	chmod(tmp, 0755);	/* the unprivileged child must get in */
	test_big_listing();
	test_round_trip();
	test_replace_abort_forget();
	test_validation();
	test_two_handles();
	test_corrupt();
	test_permissions();
	test_read_only();
	test_full();
	test_journal();
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return harness_done("test_store");
}
