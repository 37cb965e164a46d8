/*
 * STS answers in XML (the AWS Query protocol): a small strict reader of the
 * few fields connfs needs, and the AssumeRole* reply and ErrorResponse
 * documents built on it. Well-formedness is checked (matching tags, quoted
 * attributes, the five predefined entities and character references);
 * DOCTYPE declarations are refused, so no entity can be defined. Knows
 * nothing of HTTP; never puts a value of a secret field into a message.
 * Wire format: https://docs.aws.amazon.com/STS/latest/APIReference/
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "provider.h"
#include "secret.h"
#include "source.h"

#define XML_MAX_DEPTH 32
#define XML_MAX_PATH 512
#define XML_MAX_FIELDS 8

struct xml {
	const char *p, *end;
	char path[XML_MAX_PATH];
	size_t depth;
	size_t mark[XML_MAX_DEPTH];	/* path length before each element */
	const char *const *want;
	struct buf val[XML_MAX_FIELDS];
	bool in[XML_MAX_FIELDS];	/* text being collected */
	bool done[XML_MAX_FIELDS];
	size_t n;
	bool root_seen;
};

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' ||
	       c == '.' || c == ':';
}

static bool starts(const struct xml *x, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

/* Moves past the next occurrence of s; -EPROTO if there is none. */
static int skip_past(struct xml *x, const char *s)
{
	size_t n = strlen(s);

	for (; x->p + n <= x->end; x->p++)
		if (memcmp(x->p, s, n) == 0) {
			x->p += n;
			return 0;
		}
	return -EPROTO;
}

static int put_utf8(struct buf *b, unsigned long c)
{
	char u[4];
	size_t n;

	if (c == 0 || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
		return -EPROTO;
	if (c < 0x80) {
		u[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (char)(0xC0 | c >> 6);
		u[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (char)(0xE0 | c >> 12);
		u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		u[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | c >> 18);
		u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		u[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	return buf_add(b, u, n);
}

/* Decodes one entity at s (just after '&') into b; *len gets its length. */
static int entity(const char *s, const char *end, struct buf *b, size_t *len)
{
	static const char *const names[] = { "lt", "gt", "amp", "quot",
					     "apos" };
	static const char chars[] = "<>&\"'";
	const char *semi = memchr(s, ';', (size_t)(end - s));
	size_t n;

	if (!semi || semi - s > 12)
		return -EPROTO;
	n = (size_t)(semi - s);
	*len = n + 1;
	if (n > 1 && s[0] == '#') {
		bool hex = s[1] == 'x';
		const char *d = s + 1 + hex;
		unsigned long c = 0;

		if (d == semi)
			return -EPROTO;
		for (; d < semi; d++) {
			if (hex ? !isxdigit((unsigned char)*d) :
				  !isdigit((unsigned char)*d))
				return -EPROTO;
			c = c * (hex ? 16 : 10) +
			    (unsigned long)(isdigit((unsigned char)*d) ?
			    *d - '0' : (tolower((unsigned char)*d) - 'a' + 10));
		}
		return put_utf8(b, c);
	}
	for (size_t i = 0; i < 5; i++)
		if (strlen(names[i]) == n && memcmp(s, names[i], n) == 0)
			return buf_add(b, &chars[i], 1);
	return -EPROTO;
}

/* Text up to the next '<': kept for the fields being collected. */
static int text(struct xml *x)
{
	struct buf t = { 0 };
	int rc = 0;

	while (x->p < x->end && *x->p != '<' && !rc) {
		size_t elen = 1;

		if (*x->p == '&')
			rc = entity(x->p + 1, x->end, &t, &elen), elen++;
		else
			rc = buf_add(&t, x->p, 1);
		x->p += elen;
	}
	if (!rc && !x->depth && t.p && *str_trim(t.p))
		rc = -EPROTO;		/* text outside the root element */
	for (size_t i = 0; !rc && i < x->n; i++)
		if (x->in[i] && t.len)
			rc = buf_add(&x->val[i], t.p, t.len);
	if (t.p)
		explicit_bzero(t.p, t.len);
	buf_release(&t);
	return rc;
}

static void enter_fields(struct xml *x, bool entering)
{
	for (size_t i = 0; i < x->n; i++) {
		if (x->done[i])
			continue;
		if (entering && strcmp(x->path, x->want[i]) == 0)
			x->in[i] = true;
		else if (!entering && x->in[i] &&
			 strcmp(x->path, x->want[i]) == 0) {
			x->in[i] = false;
			x->done[i] = true;
		}
	}
}

/* Skips attributes up to '>' or '/>'; *empty for a self-closing tag. */
static int attributes(struct xml *x, bool *empty)
{
	while (x->p < x->end) {
		char q;

		if (*x->p == '>') {
			x->p++;
			return 0;
		}
		if (*x->p == '/' && x->p + 1 < x->end && x->p[1] == '>') {
			*empty = true;
			x->p += 2;
			return 0;
		}
		if (isspace((unsigned char)*x->p)) {
			x->p++;
			continue;
		}
		while (x->p < x->end && name_char(*x->p))
			x->p++;
		while (x->p < x->end && isspace((unsigned char)*x->p))
			x->p++;
		if (x->p + 1 >= x->end || *x->p != '=')
			return -EPROTO;
		x->p++;
		while (x->p < x->end && isspace((unsigned char)*x->p))
			x->p++;
		if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
			return -EPROTO;
		q = *x->p++;
		while (x->p < x->end && *x->p != q && *x->p != '<')
			x->p++;
		if (x->p >= x->end || *x->p != q)
			return -EPROTO;
		x->p++;
	}
	return -EPROTO;
}

static int open_tag(struct xml *x)
{
	const char *name = ++x->p, *local;
	bool empty = false;
	size_t len, plen = strlen(x->path);
	int rc;

	while (x->p < x->end && name_char(*x->p))
		x->p++;
	len = (size_t)(x->p - name);
	if (!len || (x->depth == 0 && x->root_seen) ||
	    x->depth == XML_MAX_DEPTH)
		return -EPROTO;
	local = memrchr(name, ':', len);
	local = local ? local + 1 : name;
	len -= (size_t)(local - name);
	if (plen + len + 2 > sizeof(x->path))
		return -EPROTO;
	if ((rc = attributes(x, &empty)))
		return rc;
	x->root_seen = true;
	x->mark[x->depth++] = plen;
	snprintf(x->path + plen, sizeof(x->path) - plen, "%s%.*s",
		 plen ? "/" : "", (int)len, local);
	enter_fields(x, true);
	if (empty) {
		enter_fields(x, false);
		x->path[x->mark[--x->depth]] = '\0';
	}
	return 0;
}

static int close_tag(struct xml *x)
{
	const char *name = x->p += 2, *local, *cur;
	size_t len;

	while (x->p < x->end && name_char(*x->p))
		x->p++;
	len = (size_t)(x->p - name);
	while (x->p < x->end && isspace((unsigned char)*x->p))
		x->p++;
	if (!x->depth || x->p >= x->end || *x->p != '>')
		return -EPROTO;
	x->p++;
	local = len ? memrchr(name, ':', len) : NULL;
	local = local ? local + 1 : name;
	len -= (size_t)(local - name);
	cur = x->path + x->mark[x->depth - 1] + (x->depth > 1);
	if (strlen(cur) != len || memcmp(cur, local, len) != 0)
		return -EPROTO;
	enter_fields(x, false);
	x->path[x->mark[--x->depth]] = '\0';
	return 0;
}

static int markup(struct xml *x)
{
	if (starts(x, "<?"))
		return skip_past(x, "?>");
	if (starts(x, "<!--"))
		return skip_past(x, "-->");
	if (starts(x, "<![CDATA[")) {
		const char *s = x->p += 9;
		int rc = skip_past(x, "]]>");

		for (size_t i = 0; !rc && i < x->n; i++)
			if (x->in[i])
				rc = buf_add(&x->val[i], s,
					     (size_t)(x->p - 3 - s));
		return rc ? rc : x->depth ? 0 : -EPROTO;
	}
	if (starts(x, "<!"))
		return -EPROTO;		/* DOCTYPE, other declarations */
	if (starts(x, "</"))
		return close_tag(x);
	return open_tag(x);
}

int aws_xml_get(const char *doc, size_t len, const char *const *paths,
		char **values, size_t n)
{
	struct xml x = { .p = doc, .end = doc + len, .want = paths, .n = n };
	int rc = 0;

	if (n > XML_MAX_FIELDS)
		return -EINVAL;
	if (len >= 3 && memcmp(doc, "\xEF\xBB\xBF", 3) == 0)
		x.p += 3;
	while (x.p < x.end && !rc)
		rc = *x.p == '<' ? markup(&x) : text(&x);
	if (!rc && (x.depth || !x.root_seen))
		rc = -EPROTO;
	for (size_t i = 0; i < n; i++) {
		values[i] = NULL;
		if (!rc && x.done[i])
			values[i] = x.val[i].p ? buf_steal(&x.val[i]) :
				    strdup("");
		if (!rc && x.done[i] && !values[i])
			rc = -ENOMEM;
		if (x.val[i].p)
			explicit_bzero(x.val[i].p, x.val[i].len);
		buf_release(&x.val[i]);
	}
	if (rc)
		for (size_t i = 0; i < n; i++) {
			secret_free(values[i]);
			values[i] = NULL;
		}
	return rc;
}

static int sts_error(const char *action, long status, const char *body,
		     size_t len, char *err, size_t errlen)
{
	static const char *const paths[] = {
		"ErrorResponse/Error/Code", "ErrorResponse/Error/Message",
	};
	char *v[2], code[64] = "", msg[256] = "";
	int rc = body ? aws_xml_get(body, len, paths, v, 2) : -EPROTO;

	if (rc) {
		snprintf(err, errlen, "STS %s: HTTP %ld with a body that is "
			 "not an STS error document", action, status);
		return -EIO;
	}
	if (v[0])
		api_text(code, sizeof(code), v[0], strlen(v[0]));
	if (v[1])
		api_text(msg, sizeof(msg), v[1], strlen(v[1]));
	snprintf(err, errlen, "STS %s: %s%s%s (HTTP %ld)", action,
		 code[0] ? code : "error", msg[0] ? ": " : "", msg, status);
	free(v[0]);
	free(v[1]);
	/* Throttling and server faults may pass; refusals will not. */
	if (status >= 500 || strstr(code, "Throttl") ||
	    strcmp(code, "IDPCommunicationError") == 0)
		return -EIO;
	return -EACCES;
}

int aws_sts_parse(const char *action, long status, const char *body,
		  size_t len, struct aws_creds *out, char *err, size_t errlen)
{
	static const char *const fields[] = {
		"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration",
	};
	char paths[4][160];
	const char *pp[4];
	char *v[4];
	int rc;

	memset(out, 0, sizeof(*out));
	if (status < 200 || status >= 300)
		return sts_error(action, status, body, len, err, errlen);
	for (size_t i = 0; i < 4; i++) {
		snprintf(paths[i], sizeof(paths[i]),
			 "%sResponse/%sResult/Credentials/%s", action, action,
			 fields[i]);
		pp[i] = paths[i];
	}
	rc = body ? aws_xml_get(body, len, pp, v, 4) : -EPROTO;
	if (rc == -ENOMEM)
		return rc;
	if (rc || !v[0] || !*v[0] || !v[1] || !*v[1] || !v[2] || !v[3] ||
	    aws_parse_time(v[3], &out->expiration)) {
		snprintf(err, errlen, "STS %s: the answer is not %sResponse "
			 "XML with Credentials", action, action);
		for (size_t i = 0; !rc && i < 4; i++)
			secret_free(v[i]);
		memset(out, 0, sizeof(*out));
		return -EPROTO;
	}
	out->access_key = v[0];
	out->secret_key = v[1];
	out->session_token = v[2];
	free(v[3]);
	return 0;
}
