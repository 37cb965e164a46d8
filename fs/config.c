/* INI configuration parser. See config.h. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "provider.h"

#define CONFIG_MAX_BYTES (1 << 20)

/* Drops a comment that starts after whitespace; quotes protect values. */
static void strip_comment(char *s)
{
	bool quoted = false;

	for (char *p = s; *p; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (!quoted && (*p == '#' || *p == ';') &&
			 (p == s || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			return;
		}
	}
}

static int perr(char *err, const char *path, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int perr(char *err, const char *path, int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, CONF_ERRLEN, "%s:%d: ", path, line);

	if (n < 0 || n >= CONF_ERRLEN)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err + n, CONF_ERRLEN - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool valid_dir_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || s[0] == '.' || strchr(s, '/'))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool valid_key(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
			    "TUVWXYZ0123456789_.-/[]") == strlen(s);
}

static int add_section(struct config *cfg, const char *name, int line,
		       const char *path, char *err)
{
	struct conf_section *v, *s;

	if (!valid_dir_name(name))
		return perr(err, path, line, "[%s] is not a usable directory "
			    "name (empty, starts with '.', or contains '/' "
			    "or control characters)", name);
	/* .connfs/refresh/all refreshes every directory: it has no twin. */
	if (strcmp(name, "all") == 0)
		return perr(err, path, line, "[all] is a reserved section "
			    "name (.connfs/refresh/all refreshes every "
			    "directory): choose another name");
	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->sec[i].name, name) == 0)
			return perr(err, path, line, "duplicate section [%s]",
				    name);
	v = realloc(cfg->sec, (cfg->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	cfg->sec = v;
	s = &v[cfg->n];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	s->file = cfg->path;
	s->line = line;
	if (!s->name)
		return -ENOMEM;
	cfg->n++;
	return 0;
}

static int add_kv(struct conf_section *s, const char *key, const char *value,
		  int line, const char *path, char *err)
{
	struct conf_kv *v;

	if (!valid_key(key))
		return perr(err, path, line, "'%s' is not a valid key", key);
	for (size_t i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return perr(err, path, line, "duplicate key '%s'", key);
	v = realloc(s->kv, (s->nkv + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->kv = v;
	v[s->nkv] = (struct conf_kv){ .key = strdup(key),
				      .value = strdup(value), .line = line };
	if (!v[s->nkv].key || !v[s->nkv].value) {
		free(v[s->nkv].key);
		free(v[s->nkv].value);
		return -ENOMEM;
	}
	s->nkv++;
	return 0;
}

static int parse_line(struct config *cfg, char *l, int line, char *err)
{
	const char *path = cfg->path;
	char *eq, *key, *val;
	size_t n;

	strip_comment(l);
	l = str_trim(l);
	if (!*l)
		return 0;
	if (*l == '[') {
		n = strlen(l);
		if (l[n - 1] != ']')
			return perr(err, path, line, "%s", "missing ']' in "
				    "section header");
		l[n - 1] = '\0';
		return add_section(cfg, str_trim(l + 1), line, path, err);
	}
	eq = strchr(l, '=');
	if (!eq)
		return perr(err, path, line, "expected 'key = value' or "
			    "'[section]', got '%s'", l);
	if (!cfg->n)
		return perr(err, path, line, "%s", "key outside any [section]");
	*eq = '\0';
	key = str_trim(l);
	val = str_trim(eq + 1);
	n = strlen(val);
	if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
		val[n - 1] = '\0';
		val++;
	}
	return add_kv(&cfg->sec[cfg->n - 1], key, val, line, path, err);
}

int config_parse(const char *text, const char *path, struct config *cfg,
		 char *err)
{
	char *copy = strdup(text), *p, *nl;
	int line = 0, rc = 0;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = strdup(path);
	if (!copy || !cfg->path) {
		free(copy);
		return -ENOMEM;
	}
	for (p = copy; p && !rc; p = nl) {
		nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		line++;
		p[strcspn(p, "\r")] = '\0';	/* CRLF files */
		rc = parse_line(cfg, p, line, err);
	}
	free(copy);
	if (!rc && cfg->n == 0)
		rc = perr(err, path, line, "%s", "no [section]: nothing to "
			  "mount");
	if (rc)
		config_release(cfg);
	return rc;
}

int config_load(const char *path, struct config *cfg, char *err)
{
	char *text = NULL;
	struct stat st;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, CONF_ERRLEN, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_size > CONFIG_MAX_BYTES ||
	    !(text = calloc(1, (size_t)st.st_size + 1))) {
		close(fd);
		snprintf(err, CONF_ERRLEN, "%s: not a readable regular file "
			 "under 1 MiB", path);
		return -EINVAL;
	}
	n = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (n < 0 || memchr(text, '\0', (size_t)n)) {
		free(text);
		snprintf(err, CONF_ERRLEN, "%s: cannot read, or not text",
			 path);
		return -EINVAL;
	}
	rc = config_parse(text, path, cfg, err);
	free(text);
	for (size_t i = 0; !rc && i < cfg->n; i++)
		cfg->sec[i].file_mode = st.st_mode & 07777;
	return rc;
}

static bool all_set(char *group)
{
	char *save = NULL;

	for (char *t = strtok_r(group, "+", &save); t;
	     t = strtok_r(NULL, "+", &save)) {
		const char *v = getenv(t);

		if (!v || !*v)
			return false;
	}
	return true;
}

/* "A B+C": A is set, or both B and C are. */
static bool env_present(const char *names)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", names);
	for (char *t = strtok_r(buf, " ", &save); t;
	     t = strtok_r(NULL, " ", &save))
		if (all_set(t))
			return true;
	return false;
}

int config_from_env(struct config *cfg)
{
	char err[CONF_ERRLEN];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; providers[i]; i++) {
		if (!providers[i]->env_secret ||
		    !env_present(providers[i]->env_secret))
			continue;
		if ((rc = add_section(cfg, providers[i]->name, 0, "", err))) {
			config_release(cfg);
			return rc;
		}
	}
	return 0;
}

char *config_default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *p;

	if (xdg && *xdg) {
		if (asprintf(&p, "%s/connfs/config", xdg) < 0)
			return NULL;
	} else if (asprintf(&p, "%s/.config/connfs/config",
			    home ? home : "") < 0) {
		return NULL;
	}
	return p;
}

void config_release(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n; i++) {
		struct conf_section *s = &cfg->sec[i];

		for (size_t j = 0; j < s->nkv; j++) {
			free(s->kv[j].key);
			if (s->kv[j].value)
				explicit_bzero(s->kv[j].value,
					       strlen(s->kv[j].value));
			free(s->kv[j].value);
		}
		free(s->kv);
		free(s->name);
	}
	free(cfg->sec);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}
