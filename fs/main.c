/*
 * connfs: mount the connections of SaaS and cloud accounts as JSON files.
 * main() reads options and the configuration, builds every provider
 * account (all errors are reported here, before mounting), mounts, detaches
 * unless -f, and serves until unmounted or signalled.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "connfs.h"
#include "log.h"
#include "notify.h"

struct options {
	char *config;
	char *ttl;
	char *timeout;
	char *deadline;
	char *loglevel;
	char *logfile;
	int uid;
	int gid;
	int umask;
};

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("config=%s", config),
	OPT("ttl=%s", ttl),
	OPT("timeout=%s", timeout),
	OPT("deadline=%s", deadline),
	OPT("loglevel=%s", loglevel),
	OPT("logfile=%s", logfile),
	OPT("uid=%d", uid),
	OPT("gid=%d", gid),
	OPT("umask=%o", umask),
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-s] [-o OPT[,OPT...]] MOUNTPOINT\n\n"
	       "Mounts the connections of cloud and SaaS accounts as JSON "
	       "files.\n\n"
	       "connfs options:\n"
	       "    -o config=PATH       configuration file (default "
	       "$XDG_CONFIG_HOME/connfs/config)\n"
	       "    -o ttl=SECONDS       listing cache lifetime (default 60)\n"
	       "    -o timeout=SECONDS   per HTTP request (default 10)\n"
	       "    -o deadline=SECONDS  per listing walk (default 30)\n"
	       "    -o loglevel=LEVEL    error, warn, info or debug\n"
	       "    -o logfile=PATH      log to a file instead of "
	       "stderr/syslog\n"
	       "    -o uid=N,gid=N       owner of every file\n"
	       "    -o umask=NNN         mask for the 0444/0555 modes\n"
	       "    -f                   stay in the foreground\n"
	       "    -d                   debug (implies -f)\n"
	       "    -s                   single-threaded\n"
	       "    -h, --help           this help\n"
	       "    -V, --version        version\n\n"
	       "See connfs(1).\n", prog);
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
	struct remote_defaults d = { .ttl = 60, .timeout = 10, .deadline = 30 };
	struct remote **remotes = NULL;
	struct config cfg;
	char err[CONF_ERRLEN];
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
			fprintf(stderr, "connfs: %s\n", err);
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

static int serve(struct fuse_args *args, struct fuse_cmdline_opts *co,
		 struct connfs *fs)
{
	struct fuse_session *se;
	int rc = 1;

	se = fuse_session_new(args, &connfs_ops, sizeof(connfs_ops), fs);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se))
		goto out_destroy;
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
	notify_start(se);
	if (co->singlethread)
		rc = fuse_session_loop(se);
	else
		rc = fuse_session_loop_mt(se, co->clone_fd);
	notify_stop();
	rc = rc < 0 ? 1 : 0;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	return rc;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = { .uid = -1, .gid = -1, .umask = 0 };
	struct fuse_cmdline_opts co;
	struct connfs fs = { 0 };
	int rc;

	if (fuse_opt_parse(&args, &o, option_spec, NULL) ||
	    fuse_parse_cmdline(&args, &co))
		return 2;
	if (co.show_help) {
		usage(argv[0]);
		fuse_lowlevel_help();
		return 0;
	}
	if (co.show_version) {
		printf("connfs %s\n", CONNFS_VERSION);
		fuse_lowlevel_version();
		return 0;
	}
	if (!co.mountpoint) {
		fprintf(stderr, "connfs: no mount point given (see --help)\n");
		return 2;
	}
	if (setup_logging(&o, co.debug))
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (build(&o, &fs)) {
		curl_global_cleanup();
		return 1;
	}
	fs.uid = o.uid >= 0 ? (uid_t)o.uid : getuid();
	fs.gid = o.gid >= 0 ? (gid_t)o.gid : getgid();
	fs.umask = (mode_t)o.umask & 0777;
	/* Read-only at the VFS: every write gets EROFS before reaching us. */
	fuse_opt_add_arg(&args, "-oro,default_permissions,auto_unmount,"
			 "fsname=connfs,subtype=connfs");
	rc = serve(&args, &co, &fs);
	connfs_release(&fs);
	curl_global_cleanup();
	free(co.mountpoint);
	fuse_opt_free_args(&args);
	return rc;
}
