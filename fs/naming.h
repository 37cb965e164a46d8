/*
 * File names for connections: stable, unique, readable and
 * safe. Unsafe bytes are percent-encoded, which is reversible: '%', '/',
 * '~' (the part separator), control characters, invalid UTF-8, and a
 * leading '.' or '-'. An empty part is "%00".
 */
#ifndef CONNFS_NAMING_H
#define CONNFS_NAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAME_MAX_BYTES 255
#define NAME_SUFFIX ".json"

/*
 * "ENC(part0)~ENC(part1).json" (or "ENC(part0).json" when part1 is NULL).
 * Too long names are cut at a character boundary and get "~HASH" of id.
 * Returns a new string or NULL.
 */
char *name_encode(const char *part0, const char *part1, const char *id);
/* Inserts "~HASH" of id before the suffix: resolves a collision. */
char *name_disambiguate(const char *name, const char *id);

/*
 * Whether name could be one made by name_encode(): non-empty, at most
 * NAME_MAX_BYTES, ends in NAME_SUFFIX, no '/' or control byte, valid
 * UTF-8, no leading '.' or '-'. For names that come from elsewhere.
 */
bool name_is_safe(const char *name);

/* 64-bit FNV-1a over a and, after a 0 byte, b. */
uint64_t name_hash(const char *a, const char *b);

#endif
