/*
 * disk.h: tier 2, the LMDB disk cache.
 *
 * Keeps what memory cannot and survives restarts and crashes.  Entries are
 * stored in the entry encoding (docs/entry-format.md) under their 16-byte
 * key hash.  Three more LMDB databases index them: by key text (prefix
 * range scans for listing and purging), by expiry (sweeping, and eviction
 * nearest-to-expiry first), and a small meta database (format version, and
 * later the Redis purge-stream position).
 *
 * Reads run on the caller's thread (libmicrohttpd workers) inside a
 * per-thread read transaction that is reset after each lookup and renewed
 * for the next (MDB_NOTLS), so a lookup allocates nothing but the decoded
 * entry.  Writes never run on the caller's thread: store, remove and clear
 * enqueue an operation for the single writer thread, which applies queued
 * operations in batches, one write transaction per batch (group commit).
 * The queue is bounded; when it is full an operation is dropped and
 * counted, never waited for.  The writer also sweeps expired entries and
 * evicts when the map nears `size`, so MDB_MAP_FULL never reaches a caller.
 *
 * Start-up does not scan entries: opening an existing environment serves
 * what is stored at once, however many entries there are.  Entries past
 * `expires` are never served (a lookup checks freshness), whatever the
 * sweeper has reached.
 *
 * Several processes may open the same path (LMDB is multi-process): their
 * writer threads serialise on LMDB's writer lock.
 *
 * This file pair is the only place that includes <lmdb.h>.
 */
#ifndef STRATA_TIER_DISK_H
#define STRATA_TIER_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/entry.h"
#include "cache/key.h"

struct strata_disk;

enum strata_disk_sync {
	STRATA_DISK_SYNC_NONE,   /* MDB_NOSYNC: fastest; a crash of the OS
				    (not of Strata) may lose recent writes
				    or, rarely, corrupt the file */
	STRATA_DISK_SYNC_META,   /* MDB_NOMETASYNC: data synced, meta page
				    not: an OS crash may undo the last
				    transaction, never corrupt */
	STRATA_DISK_SYNC_FULL,   /* fully durable commits: slowest */
};

enum strata_disk_on_corrupt {
	STRATA_DISK_CORRUPT_MOVE, /* move the directory aside, start fresh */
	STRATA_DISK_CORRUPT_FAIL, /* refuse to start */
};

/* The smallest map size accepted: below it the eviction margins (a few
 * percent of the map) are smaller than one write transaction needs. */
#define STRATA_DISK_MIN_SIZE (1024u * 1024u)

struct strata_disk_config {
	const char *path;            /* directory; created if missing (0700) */
	uint64_t size;               /* bytes: the LMDB map size, rounded up
					to the page size; at least
					STRATA_DISK_MIN_SIZE.  Every process
					sharing `path` must use the same. */
	enum strata_disk_sync sync;
	enum strata_disk_on_corrupt on_corrupt;
	size_t queue_limit;          /* pending writes before dropping; >= 1 */
};

struct strata_disk_stats {
	uint64_t entries;
	uint64_t bytes_used;         /* pages in use × page size */
	uint64_t size;
	uint64_t hits;
	uint64_t misses;
	uint64_t stores;             /* entries written */
	uint64_t dropped;            /* writes dropped: queue full, entry
					over 1/4 of the map, or no room even
					after evicting */
	uint64_t evictions;          /* removed to make room */
	uint64_t expired;            /* removed by the sweeper */
	uint64_t corrupt;            /* stored entries that failed decoding */
};

/*
 * Open (creating if needed) the tier and start its writer thread.
 * Returns 0; -EINVAL for a bad configuration; -errno when the directory
 * cannot be created or written (the log line names the path and the
 * reason); STRATA_ECORRUPT when the environment is not usable (LMDB
 * rejects the files, they are truncated, or the format version is not
 * ours) and on_corrupt is FAIL (with MOVE it is moved to
 * "<path>.corrupt-<unix time>" and a fresh one is created, logged).
 * Costs the same however many entries are stored: nothing is scanned.
 */
int strata_disk_open(const struct strata_disk_config *cfg,
		     struct strata_disk **out);

/*
 * Stop the writer after it has applied every queued operation, close the
 * environment, free; *disk = NULL.  No other thread may use the tier any
 * more.
 */
void strata_disk_close(struct strata_disk **disk);

/*
 * Look up `key` on the calling thread.  On a hit (stored, same key text,
 * fresh at `now`) stores a new entry (one reference, decoded: the caller
 * owns it) in *out and returns 0; otherwise STRATA_EMISS.  A stored value
 * that fails decoding is a miss, counted, and queued for removal.
 */
int strata_disk_lookup(struct strata_disk *disk, const struct strata_key *key,
		       const char *key_text, size_t key_len, int64_t now,
		       struct strata_entry **out);

/*
 * Queue `e` for storing (a reference is taken until written).  Returns 0,
 * or STRATA_EUNAVAIL when the queue is full (dropped, counted).
 */
int strata_disk_store(struct strata_disk *disk, struct strata_entry *e);

/* Queue removal of `key`.  Returns 0 or STRATA_EUNAVAIL (queue full). */
int strata_disk_remove(struct strata_disk *disk, const struct strata_key *key);

/* Queue removal of everything.  Returns 0 or STRATA_EUNAVAIL. */
int strata_disk_clear(struct strata_disk *disk);

/* Block until every operation queued so far is committed (tests, admin
 * purge answers, shutdown).  Returns 0 or a negative error. */
int strata_disk_flush(struct strata_disk *disk);

/*
 * Call `fn` for each stored key text starting with `prefix` (may be "")
 * in key-text order, with its hash, until it returns non-zero or `limit`
 * keys were visited (0: no limit).  The text passed is NUL-terminated and
 * valid only during the call.  Order is exact for texts that differ in
 * their first 495 bytes; longer texts sharing those come in hash order.
 * Runs in its own read transaction on the calling thread (`fn` may call
 * lookup, store or remove; not close).  Returns the number visited
 * (including the one that stopped the scan) or a negative error.
 */
typedef int (*strata_disk_key_fn)(void *arg, const char *key_text,
				  size_t key_len,
				  const struct strata_key *key);
long strata_disk_scan_prefix(struct strata_disk *disk, const char *prefix,
			     size_t limit, strata_disk_key_fn fn, void *arg);

void strata_disk_stats(struct strata_disk *disk,
		       struct strata_disk_stats *out);

#endif /* STRATA_TIER_DISK_H */
