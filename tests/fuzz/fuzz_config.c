/*
 * libFuzzer target for the configuration file: the input is the text of a
 * config file, parsed by config_parse() (fs/config.c) as "fuzz.conf", and
 * every section of a parsed file goes through remote_new()
 * (providers/remote.c): the generic keys, the URL check and the provider's
 * configure, with credentials for every provider in the environment.
 *
 * Checked: a failed parse is -EINVAL with "fuzz.conf:LINE: " in err and an
 * empty config; a parsed one has usable, unique section names and valid,
 * unique keys without line breaks; remote_new() either succeeds or returns
 * -EINVAL with a message, and no message ever contains a secret from the
 * environment or a token file. A failing section is configured a second
 * time right after another remote_new() has left a long error message on
 * the stack: both messages must be the same, so a message buffer that is
 * printed without ever being written (stale stack bytes) is caught.
 *
 * Nothing outside the process is touched: token_file values are mapped to
 * files this target writes into a private temporary directory (a fuzzed
 * path could name a FIFO or a terminal), and fork() and spawn_capture()
 * (providers/subproc.c, which runs token_command with posix_spawn) are
 * linked to stubs that fail with EAGAIN (-Wl,--wrap=...), so a
 * token_command is never run. AWS profiles come from files in the same directory.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "remote.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
pid_t __wrap_fork(void);
int __wrap_spawn_capture(char *const argv[], double timeout_s, size_t cap,
			 char **out, size_t *len, int *status, char *err,
			 size_t errlen);

#define CONF_PATH "fuzz.conf"

/* Secrets that must never show up in a message. */
static const char *const secrets[] = {
	"AKIAFUZZACCESSKEY0001", "FuzzSecretAccessKey/EnvOnly0001",
	"AKIAFUZZPROFILEKEY002", "FuzzSecretAccessKey/Profile0002",
	"fuzz-ac-token-0001", "fuzz-nango-key-0001", "persona_fuzz_key_0001",
	"fuzz-workato-token-0001", "fuzz-file-token-0001", NULL,
};

/* token_file targets, in the private directory. */
enum { TF_GOOD, TF_EMPTY, TF_CTRL, TF_CRLF, TF_MISSING, TF_COUNT };
static char dir[] = "/tmp/connfs-fuzz-config-XXXXXX";
static char token_files[TF_COUNT][64];
static char creds_path[64], aws_conf_path[64];

/* A section whose remote_new() fails with a long message: "unknown
 * provider type 'ZZZ...'". Used to leave known bytes on the stack. */
static char dirty_type[200];
static struct conf_kv dirty_kv = { .key = (char *)"type", .value = dirty_type,
				   .line = 2 };
static struct conf_section dirty = { .name = (char *)"dirty",
				     .file = CONF_PATH, .line = 1,
				     .file_mode = 0600, .kv = &dirty_kv,
				     .nkv = 1 };

pid_t __wrap_fork(void)
{
	errno = EAGAIN;
	return -1;
}

int __wrap_spawn_capture(char *const argv[], double timeout_s, size_t cap,
			 char **out, size_t *len, int *status, char *err,
			 size_t errlen)
{
	(void)argv;
	(void)timeout_s;
	(void)cap;
	(void)status;
	*out = NULL;
	*len = 0;
	snprintf(err, errlen, "could not be started: %s", strerror(EAGAIN));
	return -EAGAIN;
}

static void quiet_log(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f)) {
		perror(path);
		exit(2);
	}
	chmod(path, 0600);
}

static void cleanup(void)
{
	for (size_t i = 0; i < TF_COUNT; i++)
		unlink(token_files[i]);
	unlink(creds_path);
	unlink(aws_conf_path);
	rmdir(dir);
}

static void fuzz_env(void)
{
	static const char *const unset[] = {
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
		"AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
		"AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_DEFAULT_REGION",
		"NANGO_HOSTPORT", "WORKATO_HOST", NULL,
	};

	for (size_t i = 0; unset[i]; i++)
		unsetenv(unset[i]);
	setenv("AWS_ACCESS_KEY_ID", secrets[0], 1);
	setenv("AWS_SECRET_ACCESS_KEY", secrets[1], 1);
	setenv("AWS_REGION", "eu-west-1", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", creds_path, 1);
	setenv("AWS_CONFIG_FILE", aws_conf_path, 1);
	setenv("ACTIVECAMPAIGN_API_URL", "https://fuzz.api-us1.com", 1);
	setenv("ACTIVECAMPAIGN_API_TOKEN", secrets[4], 1);
	setenv("NANGO_SECRET_KEY", secrets[5], 1);
	setenv("PERSONA_API_KEY", secrets[6], 1);
	setenv("WORKATO_API_TOKEN", secrets[7], 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const names[TF_COUNT] = {
		"good", "empty", "ctrl", "crlf", "missing",
	};
	char text[256];

	(void)argc;
	(void)argv;
	if (!mkdtemp(dir)) {
		perror(dir);
		exit(2);
	}
	for (size_t i = 0; i < TF_COUNT; i++)
		snprintf(token_files[i], sizeof(token_files[i]), "%s/%s", dir,
			 names[i]);
	snprintf(creds_path, sizeof(creds_path), "%s/credentials", dir);
	snprintf(aws_conf_path, sizeof(aws_conf_path), "%s/config", dir);
	snprintf(text, sizeof(text), "%s\nsecond line\n", secrets[8]);
	write_file(token_files[TF_GOOD], text);
	write_file(token_files[TF_EMPTY], "\n");
	write_file(token_files[TF_CTRL], "fuzz-\033[31m-token\n");
	snprintf(text, sizeof(text), "%s \t\r\n", secrets[8]);
	write_file(token_files[TF_CRLF], text);
	snprintf(text, sizeof(text),
		 "[default]\naws_access_key_id = %s\n"
		 "aws_secret_access_key = %s\n"
		 "[dev]\naws_access_key_id = %s\n"
		 "aws_secret_access_key = %s\naws_session_token = tok\n"
		 "[nokey]\naws_access_key_id = %s\n",
		 secrets[2], secrets[3], secrets[2], secrets[3], secrets[2]);
	write_file(creds_path, text);
	write_file(aws_conf_path, "[profile dev]\nregion = ap-south-1\n"
		   "[profile bad]\nregion = Not A Region\n");
	atexit(cleanup);
	memset(dirty_type, 'Z', sizeof(dirty_type) - 1);
	fuzz_env();
	log_set_sink(quiet_log);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return 0;
}

/* --- invariants ---------------------------------------------------------- */

/* The input being run: a secret the input itself spells out may echo. */
static const char *input;

static void no_secret(const char *msg)
{
	for (size_t i = 0; secrets[i]; i++)
		if (strstr(msg, secrets[i]) && !strstr(input, secrets[i])) {
			fprintf(stderr, "secret %s in message: %s\n",
				secrets[i], msg);
			abort();
		}
}

static void check_line_free(const char *s)
{
	FUZZ_ASSERT(s && !strpbrk(s, "\r\n"));
}

static void check_config(const struct config *cfg)
{
	FUZZ_ASSERT(cfg->n >= 1 && cfg->sec);
	FUZZ_ASSERT(cfg->path && strcmp(cfg->path, CONF_PATH) == 0);
	for (size_t i = 0; i < cfg->n; i++) {
		const struct conf_section *s = &cfg->sec[i];

		check_line_free(s->name);
		FUZZ_ASSERT(s->name[0] && s->name[0] != '.');
		FUZZ_ASSERT(strlen(s->name) <= 255 && !strchr(s->name, '/'));
		FUZZ_ASSERT(s->file == cfg->path && s->line >= 1);
		for (size_t j = 0; j < i; j++)
			FUZZ_ASSERT(strcmp(cfg->sec[j].name, s->name) != 0);
		for (size_t k = 0; k < s->nkv; k++) {
			const struct conf_kv *kv = &s->kv[k];

			check_line_free(kv->key);
			check_line_free(kv->value);
			FUZZ_ASSERT(kv->key[0] && !kv->used);
			FUZZ_ASSERT(kv->line > s->line);
			for (size_t j = 0; j < k; j++)
				FUZZ_ASSERT(strcmp(s->kv[j].key, kv->key) != 0);
		}
	}
}

/* Points token_file at one of ours, chosen by the fuzzed value. */
static void map_token_file(struct conf_section *s)
{
	for (size_t k = 0; k < s->nkv; k++) {
		struct conf_kv *kv = &s->kv[k];
		unsigned h = 0;
		char *v;

		if (strcmp(kv->key, "token_file") != 0)
			continue;
		for (const char *p = kv->value; *p; p++)
			h = h * 31 + (unsigned char)*p;
		v = strdup(token_files[h % TF_COUNT]);
		if (!v)
			abort();
		free(kv->value);
		kv->value = v;
	}
}

static void check_remote(struct conf_section *s, size_t i)
{
	static const struct remote_defaults d = {
		.ttl = 60, .timeout = 30, .deadline = 120,
	};
	struct remote *r = NULL;
	char err[CONF_ERRLEN] = "";
	int rc;

	/* A literal token needs a private file: try both. */
	s->file_mode = i % 2 ? 0644 : 0600;
	map_token_file(s);
	rc = remote_new(s, &d, &r, err);
	FUZZ_ASSERT(strnlen(err, sizeof(err)) < sizeof(err));
	no_secret(err);
	if (rc) {
		char again[CONF_ERRLEN] = "";
		int rc2;

		FUZZ_ASSERT(rc == -EINVAL);
		FUZZ_ASSERT(err[0] && !r);
		/* Same depth as the call above: its frames overlap. */
		dirty_kv.used = false;
		FUZZ_ASSERT(remote_new(&dirty, &d, &r, again) == -EINVAL);
		for (size_t k = 0; k < s->nkv; k++)
			s->kv[k].used = false;
		rc2 = remote_new(s, &d, &r, again);
		if (rc2 != rc || strcmp(err, again) != 0) {
			fprintf(stderr, "remote_new() is not deterministic:\n"
				"  first:  %d %s\n  second: %d %s\n", rc, err,
				rc2, again);
			abort();
		}
		return;
	}
	FUZZ_ASSERT(r && r->prov && r->state && r->http);
	FUZZ_ASSERT(strcmp(r->name, s->name) == 0);
	FUZZ_ASSERT(r->concurrency >= 1 && r->timeout_ms > 0 &&
		    r->deadline_ms > 0 && r->rl.burst >= 1);
	FUZZ_ASSERT(!r->prov->max_page ||
		    (r->page_size >= 1 && r->page_size <= r->prov->max_page));
	for (size_t k = 0; k < s->nkv; k++)
		FUZZ_ASSERT(s->kv[k].used);
	if (r->prov->source_url) {
		const char *u = r->prov->source_url(r->state);

		FUZZ_ASSERT(u && (strncmp(u, "https://", 8) == 0 ||
				  strncmp(u, "http://", 7) == 0));
		no_secret(u);
	}
	remote_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[CONF_ERRLEN] = "";
	char *text = malloc(size + 1);
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	input = text;
	rc = config_parse(text, CONF_PATH, &cfg, err);
	FUZZ_ASSERT(strnlen(err, sizeof(err)) < sizeof(err));
	if (rc) {
		FUZZ_ASSERT(rc == -EINVAL);
		FUZZ_ASSERT(strncmp(err, CONF_PATH ":", strlen(CONF_PATH) + 1)
			    == 0);
		FUZZ_ASSERT(cfg.n == 0 && !cfg.sec && !cfg.path);
		free(text);
		return 0;
	}
	check_config(&cfg);
	for (size_t i = 0; i < cfg.n; i++)
		check_remote(&cfg.sec[i], i);
	config_release(&cfg);
	free(text);
	return 0;
}
