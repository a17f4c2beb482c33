/*
 * disk.h: tier 2, the LMDB disk cache.
 *
 * Keeps what memory cannot and survives restarts and crashes.  Entries are
 * stored in the entry encoding (docs/entry-format.md) under their 16-byte
 * key hash.  More LMDB databases index them: by key text (prefix range
 * scans for listing and purging), by expiry (sweeping, and eviction
 * nearest-to-expiry first), by tag (purging by tag); and a small meta
 * database holds the format version and other modules' records (the Redis
 * purge-stream position).  An entry and its index records are always
 * written and removed in one transaction, so a crash never leaves them
 * disagreeing.
 *
 * Reads run on the caller's thread (libmicrohttpd workers) inside a
 * per-thread read transaction that is reset after each lookup and renewed
 * for the next (MDB_NOTLS), so a lookup allocates nothing but the decoded
 * entry.  Writes never run on the caller's thread: store, remove, clear
 * and meta_put enqueue an operation for the single writer thread, which
 * applies queued operations in queue order, in batches, one write
 * transaction per batch (group commit).
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
 * ours: a directory written by a Strata of another disk format version,
 * such as version 1 before the tag index, is not converted, and the log
 * line names both versions) and on_corrupt is FAIL (with MOVE it is moved
 * to "<path>.corrupt-<unix time>" and a fresh one is created, logged).
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

/* As strata_disk_lookup(), but a stale entry still kept (now <
 * keep_until) is returned too (see strata_mem_lookup_kept()). */
int strata_disk_lookup_kept(struct strata_disk *disk,
			    const struct strata_key *key,
			    const char *key_text, size_t key_len, int64_t now,
			    struct strata_entry **out);

/*
 * Queue `e` for storing (a reference is taken until written).  Returns 0,
 * or STRATA_EUNAVAIL when the queue is full (dropped, counted).
 */
int strata_disk_store(struct strata_disk *disk, struct strata_entry *e);

/* Queue removal of `key`.  Returns 0 or STRATA_EUNAVAIL (queue full). */
int strata_disk_remove(struct strata_disk *disk, const struct strata_key *key);

/* Queue removal of every entry (and its index records; meta records
 * stay).  Returns 0 or STRATA_EUNAVAIL. */
int strata_disk_clear(struct strata_disk *disk);

/*
 * Block until every operation queued so far is committed (tests, admin
 * purge answers, shutdown).  Usually a batch's time; but a removal, clear
 * or meta put that finds the map's free pages pinned by readers waits for
 * them (up to 5 seconds, see docs/disk-tier.md), and so does the flush.
 * Returns 0, or a negative error when an operation failed in the writer
 * (a write error, or a meta put refused: STRATA_EUNAVAIL, see
 * strata_disk_meta_put()) that either this thread queued since its last
 * flush of this tier, or that was not yet committed when the call began.
 * (A thread that queues on two tiers alternately is told only of the
 * latter kind for the one it queued on first.)
 */
int strata_disk_flush(struct strata_disk *disk);

/*
 * Call `fn` for each stored key text starting with `prefix` (may be "")
 * in key-text order, with its hash, until it returns non-zero or `limit`
 * keys were visited (0: no limit).  The text passed is NUL-terminated and
 * valid only during the call (strata_disk_scan_tag() passes NULL, 0).  Order is exact for texts that differ in
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

/*
 * Like strata_disk_scan_prefix(), but visits the entries carrying `tag`
 * (exactly; any length, may be ""), in hash order, until `fn` returns
 * non-zero or `limit` were visited (0: no limit).  `fn` gets key_text NULL
 * and key_len 0: the tag index holds only hashes, and the text sits in
 * the encoded entry, which would have to be decoded (strata_disk_lookup()
 * it, or strata_disk_remove() the hash, which needs no text).  Runs in its
 * own read transaction on the calling thread (`fn` may call lookup, store
 * or remove; not close).  Returns the number visited (including the one
 * that stopped the scan) or a negative error.
 *
 * Exact for entries written by this tier: store, remove, clear, the
 * sweeper and eviction keep the index in the entry's own transaction.
 * One approximation: an entry removed because its stored bytes failed
 * decoding leaves its tag records behind (its tags cannot be read); they
 * are skipped while its hash is absent, but if the same key is stored
 * again with other tags, a scan of an old tag lists it too.  A purge by
 * tag then removes one entry too many, never too few.
 */
long strata_disk_scan_tag(struct strata_disk *disk, const char *tag,
			  size_t limit, strata_disk_key_fn fn, void *arg);

/*
 * Meta records for other modules: small named values kept in the tier's
 * meta database, persistent across restarts, not touched by clear,
 * eviction or the sweeper.  Names are 1 to STRATA_DISK_META_NAME_MAX
 * bytes of printable ASCII without spaces; the tier's own records
 * ("strata-disk", "reclaimed-at") are refused with -EINVAL.  The tier's
 * own names never contain a '.', so use "<module>.<name>"
 * ("redis.purge_id").  Values are at most STRATA_DISK_META_VALUE_MAX
 * bytes (may be empty).
 */
#define STRATA_DISK_META_NAME_MAX 64
#define STRATA_DISK_META_VALUE_MAX 4096

/*
 * Read the meta record `name` on the calling thread, from the last
 * committed state (a put still queued is not seen; strata_disk_flush()
 * first to read your own writes).  On success copies the value into
 * `buf` (`cap` bytes; may be NULL when `cap` is 0), stores its length in
 * *len (when `len` is not NULL) and returns 0.  Returns STRATA_EMISS when
 * there is no such record (*len = 0), -ENOSPC when the value is longer
 * than `cap` (nothing copied; *len is the length needed), -EINVAL for a
 * bad or reserved name, or another negative error.
 */
int strata_disk_meta_get(struct strata_disk *disk, const char *name,
			 void *buf, size_t cap, size_t *len);

/*
 * Queue writing the meta record `name` = `value` (`len` bytes; copied, so
 * the caller's buffer may go at once), replacing any earlier value.
 * Returns 0 when queued; STRATA_EUNAVAIL when the queue is full (nothing
 * queued, counted in `dropped`: retry, the put is never dropped
 * silently); -EINVAL for a bad or reserved name, a value over
 * STRATA_DISK_META_VALUE_MAX, or a NULL value with `len` > 0; -ENOMEM.
 * Any thread.
 *
 * Ordering guarantee: the writer applies the queue in order, so a put
 * commits in the same write transaction as the operations queued before
 * it (by any thread, as ordered by their enqueue calls) or in a later one,
 * never in an earlier one.  Once the put's record is committed, so are
 * the removals and clears queued before it.  The Redis purge-stream
 * follower relies on this: it queues a purge's removals, then a put of
 * "last purge applied", and that record can only become durable after
 * the removals have.
 *
 * Failure: a removal or clear that was refused when queued
 * (STRATA_EUNAVAIL) was never queued: a caller recording progress must
 * not queue the put after such a refusal.  If a queued removal or clear
 * is lost to a write error in the writer (an I/O error, or a map kept
 * full for seconds by another process's read transaction;
 * strata_disk_flush() reports the error), every meta put applied after
 * that is refused until the tier is reopened: nothing is written, the
 * writer logs it, and strata_disk_flush() returns STRATA_EUNAVAIL.  So a
 * committed record never claims a removal that was lost; after a restart
 * the follower resumes from its last committed record and replays what
 * followed.  (With sync "none" or "meta", an OS crash may undo the last
 * commits together: the order still holds.)
 */
int strata_disk_meta_put(struct strata_disk *disk, const char *name,
			 const void *value, size_t len);

/*
 * As strata_disk_scan_prefix(), visiting only key texts that sort after
 * `after` (byte order; NULL: from the start of the range): the next page
 * of a listing whose previous page ended at `after`.  Seeks there, so a
 * page costs the same wherever it starts.
 */
long strata_disk_scan_after(struct strata_disk *disk, const char *prefix,
			    const char *after, size_t limit,
			    strata_disk_key_fn fn, void *arg);

/*
 * The stored entry under `key` (by hash alone), fresh or not, without
 * counting a hit or a miss: for inspection (the admin API).  Returns 0
 * with a new reference in *out, or STRATA_EMISS.
 */
int strata_disk_peek(struct strata_disk *disk, const struct strata_key *key,
		     struct strata_entry **out);

void strata_disk_stats(struct strata_disk *disk,
		       struct strata_disk_stats *out);

#endif /* STRATA_TIER_DISK_H */
