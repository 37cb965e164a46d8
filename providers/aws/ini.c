/*
 * The AWS shared credentials file (~/.aws/credentials, sections [NAME]) and
 * config file (~/.aws/config, sections [profile NAME], [default] and
 * [sso-session NAME]), read as botocore reads them: '#' and ';' start
 * comment lines, keys are case-insensitive, indented lines belong to a
 * nested block (s3 = ...) and are skipped. Values may be secrets and are
 * wiped on release. Knows nothing of credential sources.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "secret.h"
#include "source.h"

#define INI_MAX_BYTES (1 << 20)

static struct aws_ini_sec *add_sec(struct aws_ini *ini, const char *name)
{
	struct aws_ini_sec *s;

	if (ini->n == ini->cap) {
		size_t cap = ini->cap ? ini->cap * 2 : 8;
		void *p = realloc(ini->sec, cap * sizeof(*ini->sec));

		if (!p)
			return NULL;
		ini->sec = p;
		ini->cap = cap;
	}
	s = &ini->sec[ini->n];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	if (!s->name)
		return NULL;
	ini->n++;
	return s;
}

static int add_kv(struct aws_ini_sec *s, const char *key, const char *value)
{
	struct aws_ini_kv *kv;

	if (aws_ini_get(s, key))	/* the first value wins */
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		void *p = realloc(s->kv, cap * sizeof(*s->kv));

		if (!p)
			return -ENOMEM;
		s->kv = p;
		s->cap = cap;
	}
	kv = &s->kv[s->n];
	kv->key = strdup(key);
	kv->value = strdup(value);
	if (!kv->key || !kv->value) {
		free(kv->key);
		secret_free(kv->value);
		return -ENOMEM;
	}
	for (char *p = kv->key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	s->n++;
	return 0;
}

/* "[ profile   x ]" -> "profile x". */
static void section_name(char *l, char *out, size_t len)
{
	char *word2;

	l = str_trim(l);
	word2 = l + strcspn(l, " \t");
	if (*word2) {
		*word2++ = '\0';
		snprintf(out, len, "%s %s", l, str_trim(word2));
	} else {
		snprintf(out, len, "%s", l);
	}
}

static int parse_line(struct aws_ini *ini, struct aws_ini_sec **cur, char *l)
{
	char name[512], *eq, *end;

	if (*l == ' ' || *l == '\t') /* nested block or continuation */
		return 0;
	l = str_trim(l);
	if (!*l || *l == '#' || *l == ';')
		return 0;
	if (*l == '[') {
		end = strrchr(l, ']');
		*cur = NULL;
		if (!end)
			return 0;
		*end = '\0';
		section_name(l + 1, name, sizeof(name));
		*cur = (struct aws_ini_sec *)aws_ini_find(ini, name);
		if (!*cur && !(*cur = add_sec(ini, name)))
			return -ENOMEM;
		return 0;
	}
	eq = strchr(l, '=');
	if (!*cur || !eq)
		return 0;
	*eq = '\0';
	return add_kv(*cur, str_trim(l), str_trim(eq + 1));
}

int aws_ini_parse(struct aws_ini *ini, const char *text)
{
	struct aws_ini_sec *cur = NULL;
	char *copy = strdup(text), *line, *save = NULL;
	int rc = 0;

	memset(ini, 0, sizeof(*ini));
	if (!copy)
		return -ENOMEM;
	for (line = strtok_r(copy, "\n", &save); line && !rc;
	     line = strtok_r(NULL, "\n", &save))
		rc = parse_line(ini, &cur, line);
	secret_free(copy);
	if (rc)
		aws_ini_release(ini);
	return rc;
}

int aws_ini_load(struct aws_ini *ini, const char *path)
{
	struct buf b = { 0 };
	char chunk[4096];
	ssize_t n;
	int fd, rc;

	memset(ini, 0, sizeof(*ini));
	fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return errno == ENOENT || !path ? 0 : -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (b.len + (size_t)n > INI_MAX_BYTES ||
		    buf_add(&b, chunk, (size_t)n)) {
			n = -1;
			errno = EFBIG;
			break;
		}
	rc = n < 0 ? -errno : 0;
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	if (!rc)
		rc = aws_ini_parse(ini, b.p ? b.p : "");
	if (b.p)
		explicit_bzero(b.p, b.len);
	buf_release(&b);
	return rc;
}

const struct aws_ini_sec *aws_ini_find(const struct aws_ini *ini,
				       const char *name)
{
	for (size_t i = 0; i < ini->n; i++)
		if (strcmp(ini->sec[i].name, name) == 0)
			return &ini->sec[i];
	return NULL;
}

const char *aws_ini_get(const struct aws_ini_sec *s, const char *key)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->kv[i].key, key) == 0)
			return s->kv[i].value;
	return NULL;
}

void aws_ini_release(struct aws_ini *ini)
{
	for (size_t i = 0; i < ini->n; i++) {
		struct aws_ini_sec *s = &ini->sec[i];

		for (size_t j = 0; j < s->n; j++) {
			free(s->kv[j].key);
			secret_free(s->kv[j].value);
		}
		free(s->kv);
		free(s->name);
	}
	free(ini->sec);
	memset(ini, 0, sizeof(*ini));
}

const struct aws_ini_sec *aws_profile_cred(const struct aws_profiles *p,
					   const char *profile)
{
	return aws_ini_find(&p->cred, profile);
}

const struct aws_ini_sec *aws_profile_conf(const struct aws_profiles *p,
					   const char *profile)
{
	char name[512];
	const struct aws_ini_sec *s;

	snprintf(name, sizeof(name), "profile %s", profile);
	s = aws_ini_find(&p->conf, name);
	if (!s && strcmp(profile, "default") == 0)
		s = aws_ini_find(&p->conf, "default");
	return s;
}

const char *aws_profile_get(const struct aws_profiles *p, const char *profile,
			    const char *key)
{
	const char *v = aws_ini_get(aws_profile_cred(p, profile), key);

	if (!v || !*v)
		v = aws_ini_get(aws_profile_conf(p, profile), key);
	return v && *v ? v : NULL;
}

bool aws_profile_exists(const struct aws_profiles *p, const char *profile)
{
	return aws_profile_cred(p, profile) || aws_profile_conf(p, profile);
}

void aws_profiles_release(struct aws_profiles *p)
{
	aws_ini_release(&p->cred);
	aws_ini_release(&p->conf);
}

char *aws_file_path(const char *env, const char *name)
{
	const char *v = env ? getenv(env) : NULL, *home = getenv("HOME");
	char *p;

	if (v && *v)
		return strdup(v);
	if (asprintf(&p, "%s/.aws/%s", home ? home : "", name) < 0)
		return NULL;
	return p;
}

void aws_filesig_of(const char *path, struct aws_filesig *sig)
{
	struct stat st;

	memset(sig, 0, sizeof(*sig));
	if (!path || stat(path, &st) != 0)
		return;
	sig->present = true;
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->size = st.st_size;
	sig->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL +
			st.st_mtim.tv_nsec;
}

bool aws_filesig_equal(const struct aws_filesig *a,
		       const struct aws_filesig *b)
{
	return a->present == b->present && a->dev == b->dev &&
	       a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}
