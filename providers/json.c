/* cJSON helpers for providers. See json.h. */
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex4(const char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/*
 * Offset of the first \u escape cJSON cannot take: \u0000 (cJSON cuts the
 * string there, so two ids differing after a NUL would merge) or a UTF-16
 * surrogate without its pair (cJSON rejects the whole document; JavaScript
 * APIs emit them). len if there is none.
 */
static size_t bad_escape(const char *text, size_t len, size_t from)
{
	for (size_t i = from; i + 1 < len; i++) {
		int cp, lo;

		if (text[i] != '\\')
			continue;
		if (text[i + 1] != 'u' || i + 6 > len ||
		    (cp = hex4(text + i + 2)) < 0) {
			i++;			/* \" \\ \n ...: skip the pair */
			continue;
		}
		if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
			return i;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (i + 12 > len || text[i + 6] != '\\' ||
			    text[i + 7] != 'u' || (lo = hex4(text + i + 8)) < 0xdc00 ||
			    lo > 0xdfff)
				return i;
			i += 6;			/* the pair is fine */
		}
		i += 5;
	}
	return len;
}

/*
 * Number literals as the API wrote them. cJSON keeps a number as a double
 * and prints it back with "%d", "%1.15g" or "%1.17g": 2^53 + 1 comes out
 * as 9007199254740992, -0 as 0, 1.10 as 1.1, 1e400 as null. So every
 * number whose digits could change becomes a cJSON_Raw node carrying the
 * literal (cJSON prints Raw verbatim), with valuedouble and valueint still
 * set; json_number() reads either kind. A parsed tree holds its numbers in
 * document order, so one cursor over the text (skipping strings, where
 * the text is known to be valid JSON) finds each node's literal.
 */
struct literals {
	const char *text;
	size_t len, at;
};

/* The next number literal after l->at; its length, or 0 if none. */
static size_t next_literal(struct literals *l, const char **lit)
{
	const char *t = l->text;

	while (l->at < l->len) {
		size_t i = l->at;

		if (t[i] == '"') {
			for (i++; i < l->len && t[i] != '"'; i++)
				if (t[i] == '\\')
					i++;
			l->at = i + 1;
		} else if (t[i] == '-' || isdigit((unsigned char)t[i])) {
			while (i < l->len && t[i] &&
			       strchr("0123456789+-.eE", t[i]))
				i++;
			*lit = t + l->at;
			l->at = i;
			return (size_t)(t + i - *lit);
		} else {
			l->at++;
		}
	}
	return 0;
}

/* An integer that fits an int, so that cJSON prints it with "%d" as is. */
static bool prints_as_is(const char *lit, size_t n)
{
	size_t i = lit[0] == '-';

	if (n == 1 && lit[0] == '0')
		return true;
	if (n <= i || n - i > 9 || lit[i] < '1' || lit[i] > '9')
		return false;
	for (; i < n; i++)
		if (!isdigit((unsigned char)lit[i]))
			return false;
	return true;
}

/* 0, or -ENOMEM (then the tree may hold some Raw numbers already). */
static int keep_literals(cJSON *node, struct literals *l)
{
	for (; node; node = node->next) {
		const char *lit = NULL;
		size_t n;

		if (node->child && keep_literals(node->child, l))
			return -ENOMEM;
		if (!cJSON_IsNumber(node))
			continue;
		n = next_literal(l, &lit);
		if (!n || prints_as_is(lit, n))
			continue;
		node->valuestring = strndup(lit, n);
		if (!node->valuestring)
			return -ENOMEM;
		node->type = (node->type & ~0xff) | cJSON_Raw;
	}
	return 0;
}

cJSON *json_parse(const char *text, size_t len)
{
	const char *end = NULL;
	char *copy = NULL;
	size_t bad;
	cJSON *v;

	if (!text || !len)
		return NULL;
	/* Such escapes become U+FFFD (same length), in a copy. */
	bad = bad_escape(text, len, 0);
	if (bad < len) {
		copy = malloc(len);
		if (!copy)
			return NULL;
		memcpy(copy, text, len);
		for (; bad < len; bad = bad_escape(copy, len, bad + 6))
			memcpy(copy + bad + 2, "fffd", 4);
		text = copy;
	}
	v = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (v) {
		while (end && end < text + len &&
		       isspace((unsigned char)*end))
			end++;
		if (end != text + len) {
			cJSON_Delete(v);
			v = NULL;
		}
	}
	if (v) {
		struct literals l = { .text = text, .len = len };

		/* Changed digits are no answer: out of memory is no JSON. */
		if (keep_literals(v, &l)) {
			cJSON_Delete(v);
			v = NULL;
		}
	}
	free(copy);
	return v;
}

const char *json_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool json_number(const cJSON *v, double *out)
{
	if (!cJSON_IsNumber(v) && !(cJSON_IsRaw(v) && v->valuestring &&
				    (v->valuestring[0] == '-' ||
				     isdigit((unsigned char)v->valuestring[0]))))
		return false;
	*out = v->valuedouble;
	return true;
}

/* A literal of digits, maybe with a '-': the id exactly, at any size. */
static bool integer_literal(const char *s)
{
	s += *s == '-';
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

const char *json_id(const cJSON *obj, const char *key, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	if (cJSON_IsString(v))
		return v->valuestring;
	if (!json_number(v, &d))
		return NULL;
	if (cJSON_IsRaw(v) && integer_literal(v->valuestring))
		return v->valuestring;
	if (d == floor(d) && fabs(d) < 9007199254740992.0) {
		snprintf(buf, len, "%.0f", d);
		return buf;
	}
	return NULL;
}

bool json_num(const cJSON *obj, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	char *end;

	if (json_number(v, out))
		return isfinite(*out);
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return false;
	*out = strtod(v->valuestring, &end);
	return *end == '\0' && isfinite(*out);
}

static int digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

bool json_time_rfc3339(const char *s, struct timespec *out)
{
	struct tm tm = { 0 };
	long nsec = 0, scale = 100000000;
	int y, mo, d, h, mi, sec, off = 0;

	if (!s)
		return false;
	if ((y = digits(&s, 4)) < 0 || *s++ != '-' ||
	    (mo = digits(&s, 2)) < 1 || mo > 12 || *s++ != '-' ||
	    (d = digits(&s, 2)) < 1 || d > 31 || (*s != 'T' && *s != 't' &&
						   *s != ' '))
		return false;
	s++;
	if ((h = digits(&s, 2)) < 0 || h > 23 || *s++ != ':' ||
	    (mi = digits(&s, 2)) < 0 || mi > 59 || *s++ != ':' ||
	    (sec = digits(&s, 2)) < 0 || sec > 60)
		return false;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return false;
		for (; isdigit((unsigned char)*s); s++, scale /= 10)
			nsec += (*s - '0') * scale;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s++ == '-' ? -1 : 1, oh, om;

		if ((oh = digits(&s, 2)) < 0 || oh > 23 || *s++ != ':' ||
		    (om = digits(&s, 2)) < 0 || om > 59)
			return false;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return false;
	}
	if (*s)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	out->tv_sec = timegm(&tm) - off;
	out->tv_nsec = nsec;
	return true;
}

bool json_time_first(const cJSON *obj, const char *const *keys,
		     struct timespec *out)
{
	for (; *keys; keys++)
		if (json_time_rfc3339(json_str(obj, *keys), out))
			return true;
	return false;
}

int json_check_ids(const cJSON *list, const char *key, const char *name,
		   unsigned long page, char *err, size_t errlen)
{
	const cJSON *conn;
	char idbuf[32];
	size_t i = 0;

	cJSON_ArrayForEach(conn, list) {
		const char *id = json_id(conn, key, idbuf, sizeof(idbuf));
		const char *what = !cJSON_IsObject(conn) ? "is not an object" :
				   !id || !*id ? "has no id" : NULL;

		i++;
		if (what) {
			snprintf(err, errlen, "%s: connection %zu of page %lu "
				 "%s", name, i, page + 1, what);
			return -EPROTO;
		}
	}
	return 0;
}

bool json_time_epoch(double secs, struct timespec *out)
{
	double whole;

	if (!isfinite(secs) || secs < 0 || secs > 253402300799.0)
		return false;
	whole = floor(secs);
	out->tv_sec = (time_t)whole;
	/* A double holds an epoch to about a microsecond: round there. */
	out->tv_nsec = (long)llround((secs - whole) * 1e6) * 1000;
	if (out->tv_nsec >= 1000000000L) {
		out->tv_sec++;
		out->tv_nsec -= 1000000000L;
	}
	return true;
}
