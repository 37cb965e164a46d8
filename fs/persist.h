/*
 * Listings and the change journal kept in the local store across
 * restarts (see persist.c). Thread-safe; a store that fails is reported
 * (log, persist_state) and connfs carries on in memory.
 */
#ifndef CONNFS_PERSIST_H
#define CONNFS_PERSIST_H

#include <stddef.h>

#include "snapshot.h"
#include "store.h"

/*
 * Opens the store in dir (NULL: no store). With err, unsafe permissions
 * are an error (-EPERM, message in err); any other failure is reported
 * and retried later.
 */
int persist_open(const char *dir, double journal_days, char *err,
		 size_t errlen);
void persist_close(void);

/*
 * The listing saved under key, as a snapshot (one reference) of entries
 * owned by owner, and how many seconds ago it was walked. -ENOENT when
 * none; any listing that fails validation is never returned.
 */
int persist_load(const char *key, const char *instance, void *owner,
		 struct snapshot **s, double *age);
/*
 * After a walk: journals old → s and saves s under key; when the walk
 * found old unchanged (s == old), only the walk's time is saved.
 */
void persist_walked(const char *key, const char *section,
		    const struct snapshot *old, const struct snapshot *s);

/* A saved item of e (pointing into e), and e rebuilt from one. */
void persist_item(const struct snap_entry *e, struct store_item *it);
/* A store_item_fn adding the item to the snap_builder arg. */
int persist_add_item(void *arg, const struct store_item *it);

/* The journal as NDJSON, oldest first; section NULL = every section. */
int persist_changes(const char *section, char **data, size_t *len);
/* Changes whenever the journal grows (or, bumped, another one did). */
unsigned persist_journal_gen(void);
void persist_journal_bump(void);
/* "off", "DIR", or "DIR: unavailable (reason)". */
void persist_state(char *buf, size_t len);

#endif
