/*
 * AWS shared credentials/config file reader. See aws_creds.h. The files are
 * INI: [name] in credentials, [profile name] (or [default]) in config.
 */
#include "aws_creds.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && strchr(" \t\r\n", e[-1]))
		*--e = '\0';
	return s;
}

static void take(char **dst, const char *v)
{
	if (!*dst && v && *v)
		*dst = strdup(v);
}

/*
 * Reads keys of one section of an AWS INI file into c (first value wins).
 * With keys_set, only the region is taken: keys from the environment are
 * never mixed with a session token from a file.
 */
static void read_profile(const char *path, const char *section,
			 struct aws_creds *c, int *found, bool keys_set)
{
	char line[4096], cur[256] = "";
	FILE *f = fopen(path, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *l = trim(line), *eq;

		if (*l == '#' || *l == ';' || !*l)
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');

			if (end) {
				*end = '\0';
				snprintf(cur, sizeof(cur), "%s", trim(l + 1));
			}
			continue;
		}
		if (strcmp(cur, section) != 0 || !(eq = strchr(l, '=')))
			continue;
		*eq = '\0';
		*found = 1;
		if (strcmp(trim(l), "region") == 0)
			take(&c->region, trim(eq + 1));
		else if (keys_set)
			continue;
		else if (strcmp(trim(l), "aws_access_key_id") == 0)
			take(&c->access_key, trim(eq + 1));
		else if (strcmp(trim(l), "aws_secret_access_key") == 0)
			take(&c->secret_key, trim(eq + 1));
		else if (strcmp(trim(l), "aws_session_token") == 0)
			take(&c->session_token, trim(eq + 1));
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
}

static char *aws_path(const char *env, const char *name)
{
	const char *v = getenv(env), *home = getenv("HOME");
	char *p;

	if (v && *v)
		return strdup(v);
	if (asprintf(&p, "%s/.aws/%s", home ? home : "", name) < 0)
		return NULL;
	return p;
}

static void from_files(struct aws_creds *c, const char *profile, int *found)
{
	char *cred = aws_path("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	char *conf = aws_path("AWS_CONFIG_FILE", "config");
	bool keys_set = c->access_key != NULL;
	char section[300];

	if (cred)
		read_profile(cred, profile, c, found, keys_set);
	if (strcmp(profile, "default") == 0)
		snprintf(section, sizeof(section), "default");
	else
		snprintf(section, sizeof(section), "profile %s", profile);
	if (conf)
		read_profile(conf, section, c, found, keys_set);
	free(cred);
	free(conf);
}

int aws_creds_load(struct aws_creds *c, const char *profile, char *err,
		   size_t errlen)
{
	const char *env_key = getenv("AWS_ACCESS_KEY_ID");
	int found = 0;

	memset(c, 0, sizeof(*c));
	if (!profile && env_key && *env_key) {
		const char *tok = getenv("AWS_SESSION_TOKEN");

		take(&c->access_key, env_key);
		take(&c->secret_key, getenv("AWS_SECRET_ACCESS_KEY"));
		take(&c->session_token, tok ? tok : getenv("AWS_SECURITY_TOKEN"));
		c->source = strdup("environment");
		if (!c->secret_key) {
			snprintf(err, errlen, "AWS_ACCESS_KEY_ID is set but "
				 "AWS_SECRET_ACCESS_KEY is not");
			return -ENOENT;
		}
	}
	if (!profile)
		profile = getenv("AWS_PROFILE");
	if (!profile || !*profile)
		profile = getenv("AWS_DEFAULT_PROFILE");
	if (!profile || !*profile)
		profile = "default";
	/* Still read the profile: it may carry the region. */
	from_files(c, profile, &found);
	if (!c->source && asprintf(&c->source, "profile %s", profile) < 0)
		c->source = NULL;
	if (!c->access_key || !c->secret_key) {
		snprintf(err, errlen, "no AWS credentials: set "
			 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
			 "profile %s aws_access_key_id and "
			 "aws_secret_access_key in ~/.aws/credentials%s",
			 profile, found ? "" : " (profile not found)");
		return -ENOENT;
	}
	return 0;
}

void aws_creds_release(struct aws_creds *c)
{
	secret_free(c->access_key);
	secret_free(c->secret_key);
	secret_free(c->session_token);
	free(c->region);
	free(c->source);
	memset(c, 0, sizeof(*c));
}
