/*
 * connfs: mount the connections of SaaS and cloud accounts as JSON files.
 * main() reads options and the configuration, builds every provider
 * account (all errors are reported here, before mounting), mounts, detaches
 * unless -f, and serves until unmounted or signalled.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "connfs.h"
#include "control.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "persist.h"
#include "share.h"
#include "status.h"

struct options {
	char *config;
	char *ttl;
	char *timeout;
	char *deadline;
	char *ca_file;
	char *proxy;
	char *cache_dir;
	char *journal_days;
	int nostore;
	char *redis;
	char *redis_password_file;
	char *redis_prefix;
	char *redis_lease;
	char *loglevel;
	char *logfile;
	int uid;
	int gid;
	int umask;
	int check;
	int noxattr;
	char *nonopt[2];	/* mount.fuse3 passes SOURCE MOUNTPOINT */
	int nnonopt;
};

enum { KEY_CHECK };

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("config=%s", config),
	OPT("ttl=%s", ttl),
	OPT("timeout=%s", timeout),
	OPT("deadline=%s", deadline),
	OPT("ca_file=%s", ca_file),
	OPT("proxy=%s", proxy),
	OPT("cache_dir=%s", cache_dir),
	OPT("nostore", nostore),
	OPT("journal_days=%s", journal_days),
	OPT("redis=%s", redis),
	OPT("redis_password_file=%s", redis_password_file),
	OPT("redis_prefix=%s", redis_prefix),
	OPT("redis_lease=%s", redis_lease),
	OPT("loglevel=%s", loglevel),
	OPT("logfile=%s", logfile),
	OPT("uid=%d", uid),
	OPT("gid=%d", gid),
	OPT("umask=%o", umask),
	OPT("noxattr", noxattr),
	FUSE_OPT_KEY("--check", KEY_CHECK),
	/* fstab options meant for mount(8), not for us. */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END
};

/* Keeps positional arguments aside: the last one is the mount point. */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *out)
{
	struct options *o = data;

	(void)out;
	if (key == KEY_CHECK) {
		o->check = 1;
		return 0;
	}
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (o->nnonopt == 2) {
		fprintf(stderr, "connfs: unexpected argument '%s'\n", arg);
		return -1;
	}
	o->nonopt[o->nnonopt++] = strdup(arg);
	return 0;
}

static void usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-s] [-o OPT[,OPT...]] MOUNTPOINT\n"
	       "       %s --check [-o config=PATH]\n"
	       "       %s status MOUNTPOINT\n"
	       "       %s refresh [--wait] MOUNTPOINT [DIRECTORY...]\n\n"
	       "Mounts the connections of cloud and SaaS accounts as JSON "
	       "files.\n\n"
	       "connfs options:\n"
	       "    -o config=PATH       configuration file (default "
	       "$XDG_CONFIG_HOME/connfs/config)\n"
	       "    -o ttl=SECONDS       listing cache lifetime (default 60)\n"
	       "    -o timeout=SECONDS   per HTTP request (default 10)\n"
	       "    -o deadline=SECONDS  longest an operation waits for a "
	       "walk (default 30)\n"
	       "    -o ca_file=PATH      trusted CA bundle (PEM) for every "
	       "directory\n"
	       "    -o proxy=URL|none    proxy for every directory (default "
	       "from https_proxy)\n"
	       "    -o cache_dir=PATH    listing store (default "
	       "$XDG_CACHE_HOME/connfs, as root /var/cache/connfs)\n"
	       "    -o nostore           no listing store, no change journal\n"
	       "    -o journal_days=N    keep change journal entries N days "
	       "(default 90)\n"
	       "    -o redis=URL         fleet mode: share listings, walks "
	       "and rate budgets through\n"
	       "                         Redis (redis://[USER@]HOST[:PORT]"
	       "[/DB], unix://[USER@]/PATH)\n"
	       "    -o redis_password_file=PATH  the Redis password (a file "
	       "only its owner reads)\n"
	       "    -o redis_prefix=NAME key prefix; fleets on one Redis "
	       "keep apart (default connfs)\n"
	       "    -o redis_lease=SECONDS  a walker's lease, renewed while "
	       "it walks (default 10)\n"
	       "    -o loglevel=LEVEL    error, warn, info or debug\n"
	       "    -o logfile=PATH      log to a file instead of "
	       "stderr/syslog\n"
	       "    -o uid=N,gid=N       owner of every file\n"
	       "    -o umask=NNN         mask for the 0444/0555 modes\n"
	       "    -o noxattr           no user.connfs.* attributes: ls -l "
	       "makes no xattr upcalls\n"
	       "    --check              check configuration, credentials and "
	       "one list request per directory\n"
	       "    -f                   stay in the foreground\n"
	       "    -d                   debug (implies -f)\n"
	       "    -s                   single-threaded\n"
	       "    -h, --help           this help\n"
	       "    -V, --version        version\n\n"
	       "See connfs(1).\n", prog, prog, prog, prog);
}

static int parse_seconds(const char *name, const char *v, double *out)
{
	char *end;
	double d;

	if (!v)
		return 0;
	d = strtod(v, &end);
	if (end == v || *end || d < 0 || d > 31536000) {
		fprintf(stderr, "connfs: -o %s=%s: not a number of seconds\n",
			name, v);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

static int load_config(const struct options *o, struct config *cfg)
{
	char err[CONF_ERRLEN];
	char *path = o->config ? strdup(o->config) : config_default_path();
	int rc;

	if (!path)
		return -ENOMEM;
	rc = config_load(path, cfg, err);
	if (rc == -ENOENT && !o->config) {
		rc = config_from_env(cfg);
		if (!rc && cfg->n == 0) {
			fprintf(stderr, "connfs: nothing to mount: no "
				"configuration file at %s and no provider "
				"credentials in the environment\n", path);
			rc = -ENOENT;
		}
	} else if (rc) {
		fprintf(stderr, "connfs: %s\n", err);
	}
	free(path);
	return rc;
}

/* Builds every account: all configuration errors surface here. */
static int build(const struct options *o, struct connfs *fs)
{
	struct remote_defaults d = {
		.ttl = 60, .timeout = 10, .deadline = 30,
		.ca_file = o->ca_file, .proxy = o->proxy,
	};
	struct remote **remotes = NULL;
	struct config cfg;
	char err[CONF_ERRLEN] = "";	/* out of memory leaves it empty */
	size_t n = 0;
	int rc;

	if (parse_seconds("ttl", o->ttl, &d.ttl) ||
	    parse_seconds("timeout", o->timeout, &d.timeout) ||
	    parse_seconds("deadline", o->deadline, &d.deadline))
		return -EINVAL;
	if ((rc = load_config(o, &cfg)))
		return rc;
	remotes = calloc(cfg.n, sizeof(*remotes));
	rc = remotes ? 0 : -ENOMEM;
	for (; !rc && n < cfg.n; n++)
		if ((rc = remote_new(&cfg.sec[n], &d, &remotes[n], err)))
			fprintf(stderr, "connfs: %s\n",
				err[0] ? err : strerror(-rc));
	if (rc) {
		for (size_t i = 0; i + 1 < n; i++)
			remote_free(remotes[i]);
	} else {
		rc = connfs_init(fs, remotes, n);
	}
	free(remotes);
	config_release(&cfg);
	return rc;
}

static FILE *logfile;

/* The listing store: where, and how long its journal lasts. */
static struct {
	char *dir;		/* NULL: -o nostore */
	double journal_days;
} store = { .journal_days = 90 };

/* -o cache_dir, else $XDG_CACHE_HOME, /var/cache as root, ~/.cache. */
static int store_setup(const struct options *o)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char err[512] = "";
	int rc;

	if (parse_seconds("journal_days", o->journal_days,
			  &store.journal_days))
		return -EINVAL;
	if (o->nostore)
		return 0;
	if (o->cache_dir)
		store.dir = strdup(o->cache_dir);
	else if (xdg && xdg[0] == '/') {
		if (asprintf(&store.dir, "%s/connfs", xdg) < 0)
			store.dir = NULL;
	} else if (geteuid() == 0) {
		store.dir = strdup("/var/cache/connfs");
	} else if (home && home[0] == '/' &&
		   asprintf(&store.dir, "%s/.cache/connfs", home) < 0) {
		store.dir = NULL;
	}
	if (!store.dir) {
		fprintf(stderr, "connfs: no cache directory (set HOME, "
			"XDG_CACHE_HOME or -o cache_dir, or use -o nostore)\n");
		return -EINVAL;
	}
	/* Opened here only to refuse an unsafe store before mounting: a
	 * connection must not cross the fork into the background. */
	rc = persist_open(store.dir, store.journal_days, err, sizeof(err));
	persist_close();
	if (rc)
		fprintf(stderr, "connfs: %s\n", err);
	return rc;
}

/*
 * -o redis=: fleet mode. A login Redis refuses is an error now, like a
 * bad config; a Redis that does not answer yet is waited out while the
 * host walks alone. --check reports either on a line of its own.
 */
static int fleet_setup(const struct options *o, bool check)
{
	struct share_options so = {
		.url = o->redis, .password_file = o->redis_password_file,
		.prefix = o->redis_prefix, .lease = o->redis_lease,
	};
	char err[512] = "";
	int rc = share_configure(&so, true, err, sizeof(err));

	if (check && o->redis)
		printf("fleet: %s%s\n", err[0] ? "FAILED: " : "ok",
		       err[0] ? err : "");
	else if (rc)
		fprintf(stderr, "connfs: %s\n", err);
	else if (err[0])
		fprintf(stderr, "connfs: %s (walking alone until Redis "
			"answers)\n", err);
	return rc ? rc : check && err[0] ? -EIO : 0;
}

static void log_to_file(int level, const char *msg)
{
	fprintf(logfile, "connfs[%d]: %s: %s\n", (int)getpid(),
		log_level_name(level), msg);
	fflush(logfile);
}

static void log_to_syslog(int level, const char *msg)
{
	syslog(level, "%s", msg);
}

static int setup_logging(const struct options *o, bool debug)
{
	int level = debug ? LOG_DEBUG : LOG_WARNING;

	if (o->loglevel && (level = log_parse_level(o->loglevel)) < 0) {
		fprintf(stderr, "connfs: -o loglevel=%s: use error, warn, info "
			"or debug\n", o->loglevel);
		return -EINVAL;
	}
	log_set_level(level);
	if (o->logfile) {
		logfile = fopen(o->logfile, "ae");
		if (!logfile) {
			fprintf(stderr, "connfs: -o logfile=%s: %s\n",
				o->logfile, strerror(errno));
			return -errno;
		}
		log_set_sink(log_to_file);
	}
	return 0;
}

/*
 * SIGHUP refreshes every directory, from a thread of its own. SIGINT and
 * SIGTERM first abort every walk in flight (http_abort_all()), then hand
 * over to libfuse's handler, which ends the session loop: the loop waits
 * for its workers, and a worker in a walk only returns once the walk ends.
 */
static sem_t hup;
/* Set by a handler or the main thread, read by the refresher: atomic
 * (lock-free, so safe in a handler), not merely volatile. */
static atomic_bool stopping;
static struct sigaction fuse_int, fuse_term, fuse_hup;

static void on_hup(int sig)
{
	(void)sig;
	sem_post(&hup);
}

static void on_stop(int sig)
{
	const struct sigaction *fuse = sig == SIGINT ? &fuse_int : &fuse_term;

	atomic_store(&stopping, true);
	http_abort_all();
	sem_post(&hup);
	if (fuse->sa_flags & SA_SIGINFO)
		return;
	if (fuse->sa_handler != SIG_IGN && fuse->sa_handler != SIG_DFL)
		fuse->sa_handler(sig);
}

/*
 * Installed after libfuse's handlers, which on_stop() then calls, and
 * before the mount appears: libfuse's own SIGHUP handler ends the session,
 * so a reload sent the moment the mount is there (systemctl reload right
 * after start) must already find on_hup(). A SIGHUP that comes before the
 * refresher runs waits in the semaphore.
 */
static int catch_signals(void)
{
	struct sigaction stop = { .sa_handler = on_stop };
	struct sigaction reload = { .sa_handler = on_hup,
				    .sa_flags = SA_RESTART };

	sem_init(&hup, 0, 0);
	sigemptyset(&stop.sa_mask);
	sigemptyset(&reload.sa_mask);
	if (sigaction(SIGINT, &stop, &fuse_int) ||
	    sigaction(SIGTERM, &stop, &fuse_term) ||
	    sigaction(SIGHUP, &reload, &fuse_hup))
		return -errno;
	return 0;
}

/* Before the semaphore goes: no handler may post to it afterwards. */
static void uncatch_signals(void)
{
	sigaction(SIGHUP, &fuse_hup, NULL);
	sigaction(SIGINT, &fuse_int, NULL);
	sigaction(SIGTERM, &fuse_term, NULL);
	sem_destroy(&hup);
}

/*
 * Blocks HUP, INT, TERM and QUIT in the calling thread, so that threads
 * started now have them blocked (as libfuse's own workers do) and the
 * signals reach the main thread, whose wait in the session loop they
 * interrupt. *old is the mask to restore.
 */
static void block_signals(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void *refresher(void *arg)
{
	struct connfs *fs = arg;

	for (;;) {
		while (sem_wait(&hup) && errno == EINTR)
			;
		if (atomic_load(&stopping))
			return NULL;
		log_msg(LOG_INFO, "SIGHUP: refreshing every directory");
		for (size_t i = 0; i < fs->ndirs; i++) {
			size_t len;
			char *line;

			if (atomic_load(&stopping))
				break;
			line = status_refresh(&fs->dirs[i], &len);
			if (line) {
				line[strcspn(line, "\n")] = '\0';
				log_msg(LOG_INFO, "%s", line);
			}
			free(line);
		}
	}
}

static int start_refresher(struct connfs *fs, pthread_t *tid)
{
	return pthread_create(tid, NULL, refresher, fs) ? -1 : 0;
}

/* The session is over: nothing needs the network any more. */
static void stop_refresher(pthread_t tid)
{
	atomic_store(&stopping, true);
	http_abort_all();
	sem_post(&hup);
	pthread_join(tid, NULL);
}

/* The 3.12 loop API: the older wrapper leaks its loop configuration. */
static int loop(struct fuse_session *se, const struct fuse_cmdline_opts *co)
{
	struct fuse_loop_config *cfg;
	int rc;

	if (co->singlethread)
		return fuse_session_loop(se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -1;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)co->clone_fd);
	/* UINT_MAX means "not given"; libfuse 3.14 logs it as invalid. */
	if (co->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, co->max_idle_threads);
	fuse_loop_cfg_set_max_threads(cfg, co->max_threads);
	rc = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc;
}

static int serve(struct fuse_args *args, struct fuse_cmdline_opts *co,
		 struct connfs *fs)
{
	struct fuse_session *se;
	sigset_t old;
	pthread_t tid;
	int rc = 1, started;

	se = fuse_session_new(args, &connfs_ops, sizeof(connfs_ops), fs);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se))
		goto out_destroy;
	if (catch_signals())
		goto out_signals;
	if (fuse_session_mount(se, co->mountpoint))
		goto out_signals;
	if (fuse_daemonize(co->foreground))
		goto out_unmount;
	if (!co->foreground && !logfile) {
		openlog("connfs", LOG_PID, LOG_DAEMON);
		log_set_sink(log_to_syslog);
	}
	log_msg(LOG_INFO, "mounted %zu provider director%s on %s", fs->ndirs,
		fs->ndirs == 1 ? "y" : "ies", co->mountpoint);
	persist_open(store.dir, store.journal_days, NULL, 0);
	block_signals(&old);
	notify_start(se);
	if (share_start(fs))
		log_msg(LOG_ERR, "fleet mode could not start; walking alone");
	/* Before the loop serves anything: a saved listing is there at once;
	 * the cache threads it starts keep the stop signals blocked. */
	connfs_seed(fs);
	started = start_refresher(fs, &tid);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (started) {
		notify_stop();
		goto out_unmount;
	}
	rc = loop(se, co);
	stop_refresher(tid);
	notify_stop();
	rc = rc < 0 ? 1 : 0;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	uncatch_signals();
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	return rc;
}

/* --check: one list request per directory, a line each. */
static int check(struct connfs *fs)
{
	int failures = 0;

	for (size_t i = 0; i < fs->ndirs; i++) {
		struct remote *r = fs->dirs[i].remote;
		struct walk_error werr;
		unsigned long n = 0;

		if (remote_probe(r, &n, &werr)) {
			size_t skip = strlen(r->name);
			char http[32] = "";

			/* Messages start with the directory name already. */
			skip = strncmp(werr.msg, r->name, skip) == 0 &&
			       werr.msg[skip] == ':' ? skip + 2 : 0;
			/* Name the HTTP status unless the message does. */
			if (werr.status > 0) {
				snprintf(http, sizeof(http), "HTTP %ld",
					 werr.status);
				if (strstr(werr.msg, http))
					http[0] = '\0';
			}
			printf("%s: FAILED: %s%s%s%s\n", r->name, werr.msg + skip,
			       http[0] ? " (" : "", http, http[0] ? ")" : "");
			failures++;
		} else {
			printf("%s: ok (%s, %lu connection%s on the first "
			       "page)\n", r->name, r->prov->name, n,
			       n == 1 ? "" : "s");
		}
		if (r->prov->describe_auth) {
			r->prov->describe_auth(r->state, werr.msg,
					       sizeof(werr.msg));
			printf("%s: credentials: %s\n", r->name, werr.msg);
		}
	}
	return failures ? 1 : 0;
}

/*
 * `connfs status MNT` and `connfs refresh MNT [DIR...]`: read the files.
 * 1 if the file cannot be read or a refresh it reports failed.
 */
static int cat_control(const char *mnt, const char *file)
{
	char path[4096], line[8192];
	bool failed = false;
	int err;
	FILE *f;

	snprintf(path, sizeof(path), "%s/.connfs/%s", mnt, file);
	f = fopen(path, "re");
	if (!f) {
		err = errno;
		snprintf(path, sizeof(path), "%s/.connfs/status", mnt);
		if (err == ENOENT && !strncmp(file, "refresh/", 8) &&
		    access(path, F_OK) == 0)
			fprintf(stderr, "connfs: %s: no directory '%s' in this "
				"mount\n", mnt, file + 8);
		else
			fprintf(stderr, "connfs: %s/.connfs/%s: %s (is %s a "
				"connfs mount?)\n", mnt, file, strerror(err),
				mnt);
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\n");

		/* Refresh results are padded records: trim them. */
		while (n > 0 && line[n - 1] == ' ')
			n--;
		line[n] = '\0';
		/* status_refresh(): "NAME: refresh failed..." */
		if (!strncmp(file, "refresh/", 8) &&
		    strstr(line, ": refresh failed"))
			failed = true;
		puts(line);
	}
	err = ferror(f) ? errno : 0;
	fclose(f);
	if (err) {
		fprintf(stderr, "connfs: %s: %s\n", path, strerror(err));
		return 1;
	}
	return failed ? 1 : 0;
}

static int dir_xattr(const char *dir, const char *name, char *buf,
		     size_t len)
{
	char key[64];
	ssize_t n;

	snprintf(key, sizeof(key), "user.connfs.%s", name);
	n = getxattr(dir, key, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/*
 * --wait: a refresh that outlived the deadline goes on in the background;
 * wait until no walk of dir runs, then say how the last one ended.
 */
static int wait_walked(const char *mnt, const char *name)
{
	char dir[4096], walking[8], err[512], state[32];
	struct timespec tick = { 0, 200 * 1000000L };

	snprintf(dir, sizeof(dir), "%s/%s", mnt, name);
	while (!dir_xattr(dir, "walking", walking, sizeof(walking)) &&
	       !strcmp(walking, "1"))
		nanosleep(&tick, NULL);
	if (dir_xattr(dir, "state", state, sizeof(state)) ||
	    dir_xattr(dir, "last_error", err, sizeof(err))) {
		fprintf(stderr, "connfs: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (!strcmp(state, "fresh")) {
		printf("%s: the new listing is served\n", name);
		return 0;
	}
	printf("%s: refresh failed: %s\n", name, err);
	return 1;
}

/* --wait after refresh/all: every directory of the mount root. */
static int wait_all(const char *mnt)
{
	DIR *d = opendir(mnt);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		fprintf(stderr, "connfs: %s: %s\n", mnt, strerror(errno));
		return 1;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			rc |= wait_walked(mnt, de->d_name);
	closedir(d);
	return rc;
}

/* `connfs refresh [--wait] MNT [DIR...]`; every directory without DIR. */
static int refresh_dirs(int argc, char *argv[], bool wait)
{
	char file[512];
	int rc = 0;

	if (argc == 1) {
		rc = cat_control(argv[0], "refresh/all");
		return wait ? rc | wait_all(argv[0]) : rc;
	}
	for (int i = 1; i < argc; i++) {
		snprintf(file, sizeof(file), "refresh/%s", argv[i]);
		rc |= cat_control(argv[0], file);
		if (wait)
			rc |= wait_walked(argv[0], argv[i]);
	}
	return rc;
}

static int subcommand(int argc, char *argv[])
{
	bool wait = argc > 2 && !strcmp(argv[2], "--wait") &&
		    !strcmp(argv[1], "refresh");

	if (argc < 3 + wait) {
		fprintf(stderr, "usage: connfs %s%s MOUNTPOINT%s\n", argv[1],
			strcmp(argv[1], "refresh") ? "" : " [--wait]",
			strcmp(argv[1], "refresh") ? "" : " [DIRECTORY...]");
		return 2;
	}
	if (!strcmp(argv[1], "status"))
		return cat_control(argv[2], "status");
	return refresh_dirs(argc - 2 - wait, argv + 2 + wait, wait);
}

static void free_options(struct options *o)
{
	free(o->config);
	free(o->ttl);
	free(o->timeout);
	free(o->deadline);
	free(o->ca_file);
	free(o->proxy);
	free(o->cache_dir);
	free(o->journal_days);
	free(o->redis);
	free(o->redis_password_file);
	free(o->redis_prefix);
	free(o->redis_lease);
	free(o->loglevel);
	free(o->logfile);
	free(o->nonopt[0]);
	free(o->nonopt[1]);
}

/* Everything main() sets up; rc passed through. */
static int cleanup(int rc, struct options *o, struct fuse_args *args,
		   char *mountpoint)
{
	free(mountpoint);
	free_options(o);
	fuse_opt_free_args(args);
	if (logfile) {
		fclose(logfile);
		logfile = NULL;
	}
	return rc;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = { .uid = -1, .gid = -1, .umask = 0 };
	struct fuse_cmdline_opts co = { 0 };
	struct connfs fs = { 0 };
	int rc;

	if (argc > 1 && (!strcmp(argv[1], "status") ||
			 !strcmp(argv[1], "refresh")))
		return subcommand(argc, argv);
	if (fuse_opt_parse(&args, &o, option_spec, opt_proc))
		return cleanup(2, &o, &args, NULL);
	if (o.nnonopt && fuse_opt_add_arg(&args, o.nonopt[o.nnonopt - 1]))
		return cleanup(2, &o, &args, NULL);
	if (fuse_parse_cmdline(&args, &co))
		return cleanup(2, &o, &args, NULL);
	if (co.show_help) {
		usage(argv[0]);
		fuse_lowlevel_help();
		return cleanup(0, &o, &args, co.mountpoint);
	}
	if (co.show_version) {
		printf("connfs %s\n", CONNFS_VERSION);
		fuse_lowlevel_version();
		return cleanup(0, &o, &args, co.mountpoint);
	}
	if (!co.mountpoint && !o.check) {
		fprintf(stderr, "connfs: no mount point given (see --help)\n");
		return cleanup(2, &o, &args, NULL);
	}
	if (setup_logging(&o, co.debug))
		return cleanup(2, &o, &args, co.mountpoint);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (build(&o, &fs)) {
		curl_global_cleanup();
		return cleanup(1, &o, &args, co.mountpoint);
	}
	if (o.check) {
		rc = check(&fs);
		rc |= fleet_setup(&o, true) ? 1 : 0;
		connfs_release(&fs);
		curl_global_cleanup();
		return cleanup(rc, &o, &args, co.mountpoint);
	}
	fs.uid = o.uid >= 0 ? (uid_t)o.uid : getuid();
	fs.gid = o.gid >= 0 ? (gid_t)o.gid : getgid();
	fs.umask = (mode_t)o.umask & 0777;
	fs.xattr = !o.noxattr;
	/* Read-only at the VFS: every write gets EROFS before reaching us. */
	fuse_opt_add_arg(&args, "-oro,default_permissions,auto_unmount,"
			 "fsname=connfs,subtype=connfs");
	if (store_setup(&o) || fleet_setup(&o, false)) {
		connfs_release(&fs);
		curl_global_cleanup();
		return cleanup(1, &o, &args, co.mountpoint);
	}
	rc = serve(&args, &co, &fs);
	share_quiesce();
	connfs_release(&fs);
	share_stop();
	persist_close();
	free(store.dir);
	/* Handles the kernel never released (SIGTERM mid-flight). */
	ops_release_handles();
	snapshot_free_all();
	control_release();
	curl_global_cleanup();
	return cleanup(rc, &o, &args, co.mountpoint);
}
