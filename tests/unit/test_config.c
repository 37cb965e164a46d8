/*
 * Unit tests for the configuration file (fs/config.c) and the generic
 * section checks of remote_new() (providers/remote.c): comments, quoting,
 * CRLF, exact "FILE:LINE:" error prefixes, unknown keys and types, bad
 * generic values, the type defaulting to the section name, literal tokens
 * in group/world-readable files, token_command failures and time limit,
 * plain http:// URLs, and sections made from the environment. The one
 * slow case is the hanging token_command (about 10 s). No network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "remote.h"

#define PATH "/etc/connfs/test.conf"

static const struct remote_defaults defaults = {
	.ttl = 60, .timeout = 30, .deadline = 60,
};

static char tmpdir[] = "/tmp/connfs-config-XXXXXX";

/* --- helpers ------------------------------------------------------------ */

static const char *get(const struct conf_section *s, const char *key)
{
	for (size_t i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return s->kv[i].value;
	return NULL;
}

static int line_of(const struct conf_section *s, const char *key)
{
	for (size_t i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return s->kv[i].line;
	return -1;
}

/* Parses text that must fail; err must start with want. */
static void expect_parse_error(const char *text, const char *want)
{
	struct config cfg;
	char err[CONF_ERRLEN] = "";

	CHECK_INT(config_parse(text, PATH, &cfg, err), -EINVAL);
	if (strncmp(err, want, strlen(want)) != 0)
		fprintf(stderr, "parse error \"%s\", want prefix \"%s\"\n", err,
			want);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK_INT(cfg.n, 0);
	CHECK(cfg.sec == NULL);
}

static void clear_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGE",
		"ACTIVECAMPAIGN_API_TOKEN", "ACTIVECAMPAIGN_API_URL",
		"NANGO_SECRET_KEY", "NANGO_HOSTPORT", "PERSONA_API_KEY",
		"WORKATO_API_TOKEN", "WORKATO_HOST", NULL,
	};

	for (size_t i = 0; vars[i]; i++)
		unsetenv(vars[i]);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
}

static void aws_env(void)
{
	setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret/EXAMPLE", 1);
	setenv("AWS_REGION", "us-east-1", 1);
}

/*
 * Parses text, runs remote_new on section `which` and returns its result;
 * err gets the message. The remote (if any) is freed.
 */
static int remote_from(const char *text, size_t which, char *err,
		       const struct provider **prov, char *name, size_t len)
{
	struct config cfg;
	struct remote *r = NULL;
	int rc;

	err[0] = '\0';
	rc = config_parse(text, PATH, &cfg, err);
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "config: %s\n", err);
		return rc;
	}
	CHECK(which < cfg.n);
	rc = remote_new(&cfg.sec[which], &defaults, &r, err);
	if (!rc) {
		if (prov)
			*prov = r->prov;
		if (name)
			snprintf(name, len, "%s", r->name);
		remote_free(r);
	}
	config_release(&cfg);
	return rc;
}

static void expect_remote_error(const char *text, const char *want)
{
	char err[CONF_ERRLEN];

	CHECK_INT(remote_from(text, 0, err, NULL, NULL, 0), -EINVAL);
	if (!strstr(err, want))
		fprintf(stderr, "remote_new error \"%s\", want \"%s\"\n", err,
			want);
	CHECK(strstr(err, want) != NULL);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) || rc)
		return -1;
	return chmod(path, mode);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- config_parse ------------------------------------------------------- */

static void test_parse_valid(void)
{
	static const char text[] =
		"# connfs configuration\n"		/* 1 */
		"; also a comment\n"			/* 2 */
		"   # indented comment\n"		/* 3 */
		"\n"					/* 4 */
		"[eb]   # the AWS account\n"		/* 5 */
		"type = eventbridge   # inline\n"	/* 6 */
		"region=eu-west-1\n"			/* 7 */
		"name_prefix = \"billing#1\" ; quoted\n"	/* 8 */
		"  url   =   http://127.0.0.1:4566  \n"	/* 9 */
		"state = AUTHORIZED;not-a-comment\n"	/* 10 */
		"\r\n"					/* 11 */
		"[ ac ]\r\n"				/* 12 */
		"token = \"a;b # c\"\r\n"		/* 13 */
		"service=shopify#x\r\n"			/* 14 */
		"empty =\r\n"				/* 15 */
		"url = https://x.api-us1.com\t;tab comment\r\n";	/* 16 */
	struct config cfg;
	char err[CONF_ERRLEN] = "";
	int rc = config_parse(text, PATH, &cfg, err);

	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "config_parse: %s\n", err);
		return;
	}
	CHECK_STR(cfg.path, PATH);
	CHECK_INT(cfg.n, 2);
	if (cfg.n == 2) {
		const struct conf_section *eb = &cfg.sec[0], *ac = &cfg.sec[1];

		CHECK_STR(eb->name, "eb");
		CHECK_INT(eb->line, 5);
		CHECK_STR(eb->file, PATH);
		CHECK_INT(eb->nkv, 5);
		CHECK_STR(get(eb, "type"), "eventbridge");
		CHECK_INT(line_of(eb, "type"), 6);
		CHECK_STR(get(eb, "region"), "eu-west-1");
		CHECK_STR(get(eb, "name_prefix"), "billing#1");
		CHECK_INT(line_of(eb, "name_prefix"), 8);
		CHECK_STR(get(eb, "url"), "http://127.0.0.1:4566");
		CHECK_STR(get(eb, "state"), "AUTHORIZED;not-a-comment");
		CHECK_STR(ac->name, "ac");
		CHECK_INT(ac->line, 12);
		CHECK_INT(ac->nkv, 4);
		CHECK_STR(get(ac, "token"), "a;b # c");
		CHECK_INT(line_of(ac, "token"), 13);
		CHECK_STR(get(ac, "service"), "shopify#x");
		CHECK_STR(get(ac, "empty"), "");
		CHECK_STR(get(ac, "url"), "https://x.api-us1.com");
		CHECK_INT(line_of(ac, "url"), 16);
		for (size_t i = 0; i < ac->nkv; i++)
			CHECK(!strchr(ac->kv[i].value, '\r'));
		CHECK(!eb->kv[0].used);
	}
	config_release(&cfg);
	CHECK_INT(cfg.n, 0);
}

static void test_parse_errors(void)
{
	expect_parse_error("[a]\nk = v\n\n[a]\n", PATH ":4: duplicate section");
	expect_parse_error("[a]\nk = v\nk = w\n", PATH ":3: duplicate key 'k'");
	/* Keys are per section: the same key in two sections is fine. */
	expect_parse_error("k = v\n[a]\n", PATH ":1: key outside any [section]");
	expect_parse_error("# c\n\nk=v\n", PATH ":3: key outside any");
	expect_parse_error("[a]\nk = v\njunk\n", PATH ":3: expected 'key = "
			   "value'");
	expect_parse_error("[a]\r\njunk\r\n", PATH ":2: expected");
	expect_parse_error("[a\n", PATH ":1: missing ']'");
	expect_parse_error("[a]\n[b\nk=v\n", PATH ":2: missing ']'");
	expect_parse_error("[.hidden]\n", PATH ":1: [.hidden] is not a usable "
			   "directory name");
	expect_parse_error("[a]\n[a/b]\n", PATH ":2: [a/b] is not a usable");
	expect_parse_error("[]\n", PATH ":1: [] is not a usable");
	expect_parse_error("[  ]\n", PATH ":1: [] is not a usable");
	expect_parse_error("[a\tb]\n", PATH ":1: [a\tb] is not a usable");
	expect_parse_error("[a]\n = v\n", PATH ":2: '' is not a valid key");
	expect_parse_error("[a]\nmy key = v\n", PATH ":2: 'my key' is not");
	expect_parse_error("", PATH ":1: no [section]");
	expect_parse_error("# only comments", PATH ":1: no [section]");
}

static void test_parse_keys_per_section(void)
{
	struct config cfg;
	char err[CONF_ERRLEN];

	CHECK_INT(config_parse("[a]\nk=1\n[b]\nk=2\n", PATH, &cfg, err), 0);
	CHECK_INT(cfg.n, 2);
	if (cfg.n == 2) {
		CHECK_STR(get(&cfg.sec[0], "k"), "1");
		CHECK_STR(get(&cfg.sec[1], "k"), "2");
	}
	config_release(&cfg);
}

/* --- remote_new on parsed sections -------------------------------------- */

static void test_remote_errors(void)
{
	clear_env();
	aws_env();
	expect_remote_error("[eb]\ntype = eventbridge\ncolour = blue\n",
			    PATH ":3: [eb] colour: unknown key");
	expect_remote_error("[eb]\ntype = eventbridge\ntoken = x\n",
			    PATH ":3: [eb] token: unknown key");
	expect_remote_error("[x]\nregion = us-east-1\ntype = s3\n",
			    PATH ":3: [x] type: unknown provider type 's3'");
	expect_remote_error("[x]\ntype = s3\n", "(known: eventbridge, "
			    "activecampaign, nango, persona, workato)");
	/* No type: the section name is the type; the header line is cited. */
	expect_remote_error("# c\n[foo]\nregion = us-east-1\n",
			    PATH ":2: [foo]: unknown provider type 'foo'");
	expect_remote_error("[eventbridge]\nttl = abc\n",
			    PATH ":2: [eventbridge] ttl: 'abc' is not a number");
	expect_remote_error("[eventbridge]\nttl = -5\n",
			    PATH ":2: [eventbridge] ttl:");
	expect_remote_error("[eventbridge]\nttl = 1e400\n", "[eventbridge] ttl:");
	expect_remote_error("[eventbridge]\nttl = nan\n", "[eventbridge] ttl:");
	expect_remote_error("[eventbridge]\npage_size = 0\n",
			    PATH ":2: [eventbridge] page_size: 0 is out of "
			    "range 1-100");
	expect_remote_error("[eventbridge]\npage_size = 101\n",
			    "[eventbridge] page_size: 101 is out of range");
	expect_remote_error("[eventbridge]\npage_size = 10x\n",
			    "[eventbridge] page_size: '10x' is not a whole");
	expect_remote_error("[eventbridge]\npage_size = -1\n",
			    "[eventbridge] page_size:");
	expect_remote_error("[eventbridge]\nrate = abc\n",
			    PATH ":2: [eventbridge] rate:");
	expect_remote_error("[eventbridge]\nrate = 5/hour\n",
			    "[eventbridge] rate:");
	expect_remote_error("[eventbridge]\nconcurrency = 0\n",
			    "[eventbridge] concurrency:");
	expect_remote_error("[eventbridge]\ntimeout = 0\n",
			    "[eventbridge] timeout:");
	expect_remote_error("[eventbridge]\nmax_pages = 0\n",
			    "[eventbridge] max_pages:");
	/* Provider keys are checked too, with file and line. */
	expect_remote_error("[eventbridge]\n\nstate = authorized\n",
			    PATH ":3: [eventbridge] state:");
	clear_env();
}

static void test_remote_ok(void)
{
	const struct provider *prov = NULL;
	char err[CONF_ERRLEN], name[64] = "";
	int rc;

	clear_env();
	aws_env();
	rc = remote_from("[eventbridge]\n", 0, err, &prov, name, sizeof(name));
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "remote_new: %s\n", err);
	CHECK(prov == provider_find("eventbridge"));
	CHECK_STR(name, "eventbridge");

	rc = remote_from("[eventbridge]\nregion = eu-west-1\n\n"
			 "[eventbridge-eu]\ntype = eventbridge\n"
			 "region = eu-central-1\nttl = 30\npage_size = 100\n"
			 "rate = 200/min\nconcurrency = 2\ndeadline = 5\n"
			 "timeout = 2.5\nmax_pages = 10\nmax_entries = 100\n"
			 "max_body_mb = 1\nurl = http://localhost:4566/\n",
			 1, err, &prov, name, sizeof(name));
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "remote_new: %s\n", err);
	CHECK(prov == provider_find("eventbridge"));
	CHECK_STR(name, "eventbridge-eu");

	/* Generic values land in the remote. */
	{
		struct config cfg;
		struct remote *r = NULL;

		CHECK_INT(config_parse("[e]\ntype=eventbridge\nttl = 30\n"
				       "page_size=7\ndeadline=0.5\n"
				       "walk_limit = 90\nmax_stale = 600\n"
				       "refresh_ahead = 0.5\n"
				       "rate = 0\n", PATH, &cfg, err), 0);
		CHECK_INT(remote_new(&cfg.sec[0], &defaults, &r, err), 0);
		if (r) {
			CHECK(r->ttl == 30);
			CHECK_INT(r->page_size, 7);
			CHECK(r->deadline == 0.5);
			CHECK_INT(r->deadline_ms, 90000);	/* walk_limit */
			CHECK(r->max_stale == 600 && r->refresh_ahead == 0.5);
			CHECK_INT(r->timeout_ms, 30000);
			CHECK(r->rl.rate == 0);
		}
		remote_free(r);
		config_release(&cfg);
	}
	clear_env();
}

static void test_literal_token_mode(void)
{
	static const char text[] = "[w]\ntype = workato\ntoken = x\n"
				   "url = http://127.0.0.1:1\n";
	char path[300], err[CONF_ERRLEN] = "";
	struct config cfg;
	struct remote *r = NULL;

	clear_env();
	snprintf(path, sizeof(path), "%s/config", tmpdir);
	CHECK_INT(write_file(path, text, 0644), 0);
	CHECK_INT(config_load(path, &cfg, err), 0);
	if (cfg.n == 1) {
		CHECK_INT(cfg.sec[0].file_mode & 0777, 0644);
		CHECK_INT(remote_new(&cfg.sec[0], &defaults, &r, err), -EINVAL);
		CHECK(r == NULL);
		CHECK(strstr(err, ":3: [w] token:") != NULL);
		CHECK(strstr(err, "chmod 600") != NULL);
		CHECK(strstr(err, "readable by group or others") != NULL);
	}
	config_release(&cfg);

	/* Group-readable only is refused too. */
	CHECK_INT(chmod(path, 0640), 0);
	CHECK_INT(config_load(path, &cfg, err), 0);
	if (cfg.n == 1)
		CHECK_INT(remote_new(&cfg.sec[0], &defaults, &r, err), -EINVAL);
	config_release(&cfg);

	CHECK_INT(chmod(path, 0600), 0);
	CHECK_INT(config_load(path, &cfg, err), 0);
	if (cfg.n == 1) {
		CHECK_INT(remote_new(&cfg.sec[0], &defaults, &r, err), 0);
		if (!r)
			fprintf(stderr, "remote_new: %s\n", err);
		CHECK(r && r->prov == provider_find("workato"));
		remote_free(r);
		r = NULL;
	}
	config_release(&cfg);

	/* token_file in a 0644 file is fine: the file holds no secret. */
	CHECK_INT(write_file(path, "[w]\ntype = workato\ntoken_command = echo "
			     "tok\nurl = http://127.0.0.1:1\n", 0644), 0);
	CHECK_INT(config_load(path, &cfg, err), 0);
	if (cfg.n == 1) {
		CHECK_INT(remote_new(&cfg.sec[0], &defaults, &r, err), 0);
		remote_free(r);
	}
	config_release(&cfg);
	unlink(path);

	/* Missing file: -ENOENT with the path. */
	CHECK_INT(config_load(path, &cfg, err), -ENOENT);
	CHECK(strstr(err, path) != NULL);
}

static void expect_token_command_error(const char *cmd, const char *want)
{
	char text[512], err[CONF_ERRLEN];

	snprintf(text, sizeof(text), "[w]\ntype = workato\n"
		 "token_command = %s\nurl = http://127.0.0.1:1\n", cmd);
	CHECK_INT(remote_from(text, 0, err, NULL, NULL, 0) < 0, 1);
	if (!strstr(err, want) || !strstr(err, "token_command"))
		fprintf(stderr, "token_command '%s': \"%s\", want \"%s\"\n",
			cmd, err, want);
	CHECK(strstr(err, PATH ":3: [w] token_command:") == err);
	CHECK(strstr(err, want) != NULL);
}

static void test_token_command(void)
{
	char err[CONF_ERRLEN];
	double t0;

	clear_env();
	expect_token_command_error("false", "token_command");
	expect_token_command_error("true", "printed no token");
	expect_token_command_error("printf ''", "printed no token");
	expect_token_command_error("echo", "printed no token");
	expect_token_command_error("exit 127", "token_command");
	/*
	 * Regression (fixed): secret.c run_command() ignores the exit status: a command
	 * that prints something and fails (a password manager printing
	 * "vault locked" on stdout, exit 1) is taken as the token. Want an
	 * error naming token_command; got success with the text as token.
	 */
	expect_token_command_error("echo 'vault is locked'; exit 1",
				   "token_command");

	/* Works: first line, trailing blanks dropped. */
	CHECK_INT(remote_from("[w]\ntype = workato\ntoken_command = printf "
			      "'tok  \\nsecond'\nurl = http://127.0.0.1:1\n",
			      0, err, NULL, NULL, 0), 0);

	/* A hanging command is killed after the time limit (≈ 10 s). */
	t0 = now();
	expect_token_command_error("sleep 30", "did not finish within");
	CHECK(now() - t0 >= 9.0);
	CHECK(now() - t0 < 15.0);
}

static void test_plain_http(void)
{
	clear_env();
	setenv("WORKATO_API_TOKEN", "tok", 1);
	expect_remote_error("[w]\ntype = workato\nurl = http://example.com\n",
			    PATH ":3: [w] url: plain http:// is only allowed");
	expect_remote_error("[w]\ntype = workato\nurl = http://10.0.0.1:80\n",
			    "plain http://");
	expect_remote_error("[w]\ntype = workato\n"
			    "url = http://127.0.0.1.evil.com/\n",
			    "plain http://");
	expect_remote_error("[w]\ntype = workato\nurl = ftp://127.0.0.1\n",
			    "[w] url:");
	expect_remote_error("[w]\ntype = workato\n"
			    "url = https://user:pw@www.workato.com\n",
			    "credentials in URLs");
	clear_env();
}

static void test_from_env(void)
{
	struct config cfg;
	struct remote *r = NULL;
	char err[CONF_ERRLEN];

	clear_env();
	CHECK_INT(config_from_env(&cfg), 0);
	CHECK_INT(cfg.n, 0);
	config_release(&cfg);

	setenv("WORKATO_API_TOKEN", "wrk-token", 1);
	CHECK_INT(config_from_env(&cfg), 0);
	CHECK_INT(cfg.n, 1);
	if (cfg.n == 1) {
		CHECK_STR(cfg.sec[0].name, "workato");
		CHECK(cfg.sec[0].file == NULL);
		CHECK_INT(cfg.sec[0].nkv, 0);
		CHECK_INT(remote_new(&cfg.sec[0], &defaults, &r, err), 0);
		CHECK(r && r->prov == provider_find("workato"));
		remote_free(r);
	}
	config_release(&cfg);

	/* ActiveCampaign needs both its token and its URL. */
	setenv("ACTIVECAMPAIGN_API_TOKEN", "ac-token", 1);
	CHECK_INT(config_from_env(&cfg), 0);
	CHECK_INT(cfg.n, 1);
	config_release(&cfg);
	setenv("ACTIVECAMPAIGN_API_URL", "https://x.api-us1.com", 1);
	aws_env();
	CHECK_INT(config_from_env(&cfg), 0);
	CHECK_INT(cfg.n, 3);
	for (size_t i = 0; i < cfg.n; i++) {
		r = NULL;
		CHECK_INT(remote_new(&cfg.sec[i], &defaults, &r, err), 0);
		remote_free(r);
	}
	config_release(&cfg);
	clear_env();
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_parse_valid();
	test_parse_errors();
	test_parse_keys_per_section();
	test_remote_errors();
	test_remote_ok();
	test_literal_token_mode();
	test_plain_http();
	test_from_env();
	test_token_command();
	rmdir(tmpdir);
	return harness_done("test_config");
}
