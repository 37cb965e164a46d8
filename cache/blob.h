/*
 * A listing as one opaque, versioned blob: how the fleet tier keeps a
 * listing in a single Redis value. The items are those of the local store
 * (store.h), so both tiers hold exactly the same thing: names, ids, the
 * rendered bytes, mtimes and inodes. The blob is zlib-compressed and
 * written and read as a stream, so a listing of any size never has to be
 * held uncompressed in one piece; it names the key it belongs to, and
 * reading checks every field, the count and the end, so a blob that is
 * cut, garbled or another key's is refused (-EBADMSG) and never served.
 */
#ifndef CONNFS_BLOB_H
#define CONNFS_BLOB_H

#include <stddef.h>

#include "store.h"

/* Receives the compressed blob in pieces, in order; 0 or -errno. */
typedef int (*blob_out_fn)(void *arg, const void *data, size_t len);

struct blob_writer;

/*
 * Starts the blob of key's listing of count items; out gets pieces of
 * about chunk bytes. Then blob_add() each item and blob_finish() (which
 * checks the count and flushes) or blob_abort(); both free *w.
 */
int blob_begin(const char *key, size_t count, size_t chunk, blob_out_fn out,
	       void *arg, struct blob_writer **w);
int blob_add(struct blob_writer *w, const struct store_item *it);
int blob_finish(struct blob_writer *w);
void blob_abort(struct blob_writer *w);

/*
 * Reads a blob of key: *count (may be NULL) is set from its header, fn is
 * called for each item in order (pointers valid during the call only). A
 * non-zero return of fn stops it and is returned. -EBADMSG with the reason
 * in err when the blob is not a listing of key; items handed to fn before
 * that must then be discarded by the caller.
 */
int blob_read(const void *blob, size_t len, const char *key, size_t *count,
	      store_item_fn fn, void *arg, char *err, size_t errlen);

#endif
