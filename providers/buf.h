/*
 * Growable byte buffers, the URL-encoding helpers every request builder
 * needs, and UTF-8 validation. Knows nothing about HTTP transport, JSON or
 * FUSE.
 */
#ifndef CONNFS_BUF_H
#define CONNFS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A NUL-terminated growable string. Zero-initialise, then append. */
struct buf {
	char *p;
	size_t len;
	size_t cap;
};

int buf_grow(struct buf *b, size_t extra);
int buf_add(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends s percent-encoded (RFC 3986 unreserved characters kept). */
int buf_urlencode(struct buf *b, const char *s);
/* Appends "key=value" (both encoded), preceded by '?' or '&'. */
int buf_query(struct buf *b, const char *key, const char *value);
/* Hands the string to the caller (never NULL on success); resets b. */
char *buf_steal(struct buf *b);
void buf_release(struct buf *b);

/*
 * Length of the valid UTF-8 character at s (at most n bytes), or 0 for an
 * invalid, overlong, surrogate or truncated sequence.
 */
size_t utf8_char(const unsigned char *s, size_t n);

#define FNV1A_INIT 1469598103934665603ULL
/*
 * 64-bit FNV-1a of the NUL-terminated s (NULL: none) and, with sep, of a
 * 0 byte after it, continuing from h (FNV1A_INIT to start).
 */
uint64_t fnv1a(uint64_t h, const char *s, bool sep);

/* Decodes %XX sequences in place; returns -EINVAL on a malformed one. */
int url_decode(char *s);

/*
 * Strips leading and trailing white space in place (isspace() in the C
 * locale); returns the first non-blank character of s.
 */
char *str_trim(char *s);

#endif
