/*
 * disk.c: tier 2, the LMDB disk cache (see disk.h and docs/disk-tier.md).
 *
 * One LMDB environment per tier, five named databases:
 *
 *   entries  16-byte key hash -> strata_entry_encode() bytes
 *   keys     key text -> hash (+ the full text when it is too long to be
 *            an LMDB key, see keys_key()); for prefix range scans
 *   expiry   big-endian u64 keep_until (wall ms) ++ hash -> empty; its first
 *            records are the entries to sweep, then to evict
 *   tags     tag ++ 0x00 ++ hash -> empty (see tag_key() for long tags);
 *            a range scan from "tag\0" lists the entries carrying a tag
 *   meta     "strata-disk" -> u32 LE format version, housekeeping, and
 *            other modules' records (strata_disk_meta_put())
 *
 * Every index record of an entry is written and deleted in the same write
 * transaction as the entry itself, so after a crash the indexes agree
 * with `entries` (except around values that fail decoding: drop_entry()).
 *
 * Lookups read `entries` in a per-thread read transaction on the caller's
 * thread.  Every write (store, remove, clear, meta puts, the sweeper,
 * eviction) runs on one writer thread that drains a bounded queue, in
 * queue order, and applies what it took in as few write transactions as
 * the map's room allows.
 *
 * Concurrency:
 *
 *   Threads: callers (libmicrohttpd workers, the flight leader, admin
 *   handlers, the Redis purge follower, tests) run lookup, scan_prefix,
 *   scan_tag, meta_get, stats and the enqueueing calls; the writer thread
 *   runs every write transaction; any thread that has done a lookup runs
 *   the reader destructor when it exits; close() runs on one thread once
 *   nothing else uses the tier.
 *
 *   The queue (disk->lock, a leaf: nothing else is taken under it):
 *   ring, ring_head, ring_len, enqueued, taken, committed, failed_seq,
 *   failed_err and stopping.  Enqueuers append and signal work_cv; the
 *   writer copies up to DISK_BATCH_MAX operations out under the lock,
 *   applies them without it, then publishes `committed` and broadcasts
 *   done_cv.  A flush waits on done_cv until `committed` reaches the
 *   `enqueued` it saw, so "committed past my marker" needs no marker
 *   operation in the ring (and cannot be dropped by a full queue).
 *   Operations are numbered by `enqueued` (1, 2, ...); a failed batch
 *   records its last number in failed_seq.  Each thread remembers (a
 *   thread-local, flush_mark) the number of the first operation it queued
 *   on a tier since its last flush of that tier, so a flush reports a
 *   failure of its own thread's operations even when the batch failed
 *   before the flush began.
 *   Enqueuing never waits: a full ring drops the operation (counted).
 *
 *   Writer-only state (no lock): disk->batch, disk->removals_lost,
 *   disk->meta_refused, disk->last_error_log and the LMDB write
 *   transactions.  LMDB serialises write transactions across processes
 *   with its own writer mutex, so two processes' writers just take turns.
 *
 *   Reads need no Strata lock: LMDB readers see the snapshot of the last
 *   commit when their transaction is renewed and never block or are
 *   blocked by the writer.  Each thread owns one read transaction per
 *   open tier (struct disk_reader), created on its first lookup, renewed
 *   for each lookup and reset right after it (a reset transaction pins no
 *   old pages, so readers do not make the map grow).  MDB_NOTLS ties the
 *   LMDB reader slot to that MDB_txn rather than to the thread, which is
 *   what lets close() abort a transaction some other thread created.
 *
 *   Reader lifetime (registry_lock, a process-wide leaf): a reader is on
 *   two lists, its thread's (reached through a pthread key, walked only
 *   by that thread) and its tier's (disk->readers).  The tier list and
 *   reader->txn/reader->disk are changed only under registry_lock, by
 *   three parties: a thread's first lookup (links a new reader), a
 *   thread's exit (the key's destructor aborts and unlinks its readers of
 *   open tiers and frees all of them), and close() (aborts every reader
 *   of the tier, marks it dead by clearing reader->disk, unlinks it; the
 *   memory stays with its thread, which frees it at exit or prunes it on
 *   its next first lookup of any tier).  Because close() takes the lock
 *   before mdb_env_close(), a thread exiting during or after close never
 *   touches a closed environment.  A thread finds its reader by
 *   reader->disk_id, which never changes and is never reused (a global
 *   counter), so it never mistakes a dead reader of a closed tier for
 *   one of a new tier allocated at the same address.
 *
 *   Counters are relaxed atomics: statistics that order nothing.  hits
 *   and misses are one shared line each; a disk lookup (a B-tree walk, a
 *   decode and a malloc) costs far more than the line bouncing.  Entry
 *   and byte counts come from mdb_stat on demand.
 *
 *   Lock order: disk->lock and registry_lock are leaves, never held
 *   together.  Under registry_lock only list updates and aborts of read
 *   transactions run (no waiting in LMDB: an abort just clears the
 *   slot); a reader's mdb_txn_begin, which takes LMDB's reader-table
 *   mutex, runs before the lock is taken.  LMDB's writer mutex is taken
 *   only by the writer thread, holding neither.
 *   A lookup that finds a corrupt entry enqueues its removal (disk->lock)
 *   after its read transaction is reset.
 *
 *   Ownership: a queued PUT holds one reference to its entry, and a queued
 *   META_PUT owns a malloc'd copy of its name and value; the writer
 *   releases both once its batch is applied; close() drains the queue
 *   first, so nothing outlives the tier.  A lookup hands its caller the
 *   decoded copy, one reference; nothing points into the map once a
 *   lookup's transaction is reset.
 */
#include "config.h"

#include "tier/disk.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "strata/strata.h"

#define DISK_MAGIC 0x4449534bu /* "DISK" */

#define DISK_DIR_MODE 0700
#define DISK_FILE_MODE 0600
#define DISK_MAX_DBS 5
/*
 * Reader slots, shared by every process on the directory: each thread
 * that has looked something up holds one while it lives.  Enough for
 * several processes at the maximum of 1024 workers each; a slot costs 64
 * bytes of the lock file.
 */
#define DISK_MAX_READERS 8192

/* The on-disk format of this file (the databases and their keys), kept in
 * the meta database.  Bump it when keys or values change meaning.
 *   1: entries, keys, expiry, meta.
 *   2: adds the tags database (a version 1 directory has entries whose
 *      tags are not indexed, so it is refused, not silently half-used). */
#define DISK_FORMAT_KEY "strata-disk"
#define DISK_FORMAT_VERSION 2u
/* Meta record rewritten after a transaction that freed many pages; see
 * reclaim(). */
#define DISK_RECLAIM_KEY "reclaimed-at"
/* Internal meta keys never contain a '.', so "<module>.<name>" names given
 * to strata_disk_meta_put() can never collide with a future one. */

/* Writer: operations applied per wake-up at most (group commit). */
#define DISK_BATCH_MAX 1024
/* Sweeper: how often when idle, and records looked at per transaction. */
#define DISK_SWEEP_INTERVAL_MS 1000
#define DISK_SWEEP_BATCH 256
/* Stale reader slots of crashed processes pin pages: look for them. */
#define DISK_READER_CHECK_MS 60000
/* Rate limit for writer error lines. */
#define DISK_ERROR_LOG_MS 10000

/*
 * Room management, in pages of the map (see evict(), reclaim(),
 * evict_run() and run_ops()).  Percentages of the map: start evicting
 * above HIGH, evict down to LOW; after a put met MDB_MAP_FULL with more
 * than LOW in use, evict FULL_EXTRA more (evict_more()).  One write
 * transaction allocates at most RUN_PERCENT (capped at RUN_MAX_PAGES so
 * that a huge map does not make LMDB spill dirty pages): the pages the
 * previous transaction freed are not reusable yet, so the room above HIGH
 * must hold two transactions' worth.  An entry whose encoding is over
 * 1/MAX_ENTRY_DIVISOR of the map is not stored.
 */
#define DISK_HIGH_PERCENT 90
#define DISK_LOW_PERCENT 75
#define DISK_FULL_EXTRA_PERCENT 10
#define DISK_RUN_PERCENT 4
#define DISK_RUN_MAX_PAGES 16384
#define DISK_MAX_ENTRY_DIVISOR 4
/* Pages one operation may dirty in each of the four trees it touches
 * (copy of a leaf, and a split), and pages a transaction may dirty on top
 * of its operations (branch pages, the main and free databases).  An
 * entry's tag records are spread over the tags tree, a leaf each at worst;
 * the estimate counts at most DISK_TAG_PAGES_MAX of them, so that an
 * entry with hundreds of tags does not empty a small map to make room
 * (the MDB_MAP_FULL path covers an underestimate). */
#define DISK_TREES_PER_OP 4
#define DISK_PAGES_PER_TREE 2
#define DISK_TXN_RESERVE_PAGES 16
#define DISK_TAG_PAGES_MAX 32
/* Entries evicted per write transaction at most; naps (1, 2, 4... ms)
 * an eviction takes for pinned pages before it gives up (see evict()). */
#define DISK_EVICT_CHUNK 256
#define DISK_EVICT_NAPS 7
/* After MDB_MAP_FULL (see apply_alone()): expiry records searched for an
 * entry big enough to free a run of overflow pages; attempts at a put;
 * how long a removal, clear or meta put waits for pinned pages to become
 * reusable, and the longest sleep between its attempts. */
#define DISK_RUN_SCAN 1024
#define DISK_PUT_TRIES 3
#define DISK_FULL_WAIT_MS 5000
#define DISK_FULL_SLEEP_MAX_MS 50
/* LMDB's page header, which starts a run of overflow pages. */
#define DISK_PAGE_HEADER 16

/* LMDB internals the page count relies on: the free-page database is
 * dbi 0 (as in LMDB's own mdb_stat tool) and two meta pages precede the
 * trees. */
#define DISK_FREE_DBI 0
#define DISK_META_PAGES 2

/* LMDB's default maximum key size (MDB_MAXKEYSIZE); checked at open.  A
 * key text longer than DISK_KEY_INLINE_MAX is indexed by its first
 * DISK_KEY_INLINE_MAX bytes followed by its hash. */
#define DISK_KEY_MAX 511
#define DISK_KEY_INLINE_MAX (DISK_KEY_MAX - STRATA_KEY_HASH_LEN)
#define DISK_EXPIRY_KEY_LEN (8 + STRATA_KEY_HASH_LEN)
/* Tags database keys (see tag_key()): a tag up to DISK_TAG_INLINE_MAX
 * bytes is stored whole; a longer one by its first DISK_TAG_LONG_PART
 * bytes and its XXH3-128, so both kinds fill at most DISK_KEY_MAX. */
#define DISK_TAG_INLINE_MAX (DISK_KEY_MAX - 1 - STRATA_KEY_HASH_LEN)
#define DISK_TAG_LONG_PART (DISK_KEY_MAX - 1 - 2 * STRATA_KEY_HASH_LEN)

enum disk_op_type {
	DISK_OP_PUT,
	DISK_OP_DEL,
	DISK_OP_DROP_CORRUPT, /* delete only if it still fails decoding */
	DISK_OP_CLEAR,
	DISK_OP_META_PUT,
};

struct disk_op {
	enum disk_op_type type;
	struct strata_entry *entry;  /* PUT: the queue's reference */
	struct strata_key key;       /* DEL, DROP_CORRUPT */
	/* META_PUT: owned; name_len bytes of name then value_len of value. */
	char *meta;
	size_t meta_name_len, meta_value_len;
};

struct disk_reader {
	uint64_t disk_id;            /* immutable */
	MDB_txn *txn;                /* reset between lookups; registry */
	struct strata_disk *disk;    /* NULL once the tier closed; registry */
	struct disk_reader *thread_next;            /* owning thread only */
	struct disk_reader *disk_prev, *disk_next;  /* registry */
};

struct strata_disk {
	uint32_t magic;
	uint64_t id;                 /* never reused; see disk_reader */
	char *path;
	MDB_env *env;
	MDB_dbi dbi_main, dbi_entries, dbi_keys, dbi_expiry, dbi_tags,
		dbi_meta;
	/* Open only: why the environment is not usable (see check_version). */
	char why[160];

	/* Fixed at open. */
	size_t page_size;
	size_t high_pages, low_pages, full_extra_pages, run_pages;
	size_t max_value;            /* bytes */

	/* The queue: disk->lock. */
	pthread_mutex_t lock;
	pthread_cond_t work_cv;      /* writer waits for work */
	pthread_cond_t done_cv;      /* flushers wait for commits */
	struct disk_op *ring;
	size_t ring_cap, ring_head, ring_len;
	uint64_t enqueued, taken, committed, failed_seq;
	int failed_err;
	bool stopping;

	/* Writer thread only. */
	pthread_t writer;
	struct disk_op *batch;
	uint64_t last_error_log;
	/* A queued removal or clear was lost to a write error: meta puts are
	 * refused from then on (see strata_disk_meta_put()).  Never reset
	 * while the tier is open. */
	bool removals_lost;
	uint64_t meta_refused;       /* meta puts refused so far */

	/* Readers of this tier: registry_lock. */
	struct disk_reader *readers;

	/* Relaxed statistics. */
	_Atomic uint64_t hits, misses, stores, dropped, evictions, expired,
		corrupt;
	atomic_bool readers_full_logged;
};

/* Counts gathered in one write transaction, added once it commits. */
struct disk_tally {
	uint64_t stores, dropped, removed, corrupt, meta_refused;
};

/* --- small helpers -------------------------------------------------------- */

static void count(_Atomic uint64_t *c, uint64_t n)
{
	/* Relaxed: a statistic; orders nothing. */
	if (n)
		atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t counted(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * The expiry database's ordering time: the end of storage, keep_until
 * (>= expires), so that an expired entry kept for revalidation or a stale
 * window stays until then; negative times sort first.
 */
static uint64_t expiry_time(const struct strata_entry *e)
{
	return e->keep_until < 0 ? 0 : (uint64_t)e->keep_until;
}

static void expiry_key(uint64_t expires, const uint8_t *hash,
		       uint8_t buf[DISK_EXPIRY_KEY_LEN], MDB_val *out)
{
	put_be64(buf, expires);
	memcpy(buf + 8, hash, STRATA_KEY_HASH_LEN);
	out->mv_size = DISK_EXPIRY_KEY_LEN;
	out->mv_data = buf;
}

/*
 * The keys database's key for a text.  LMDB keys are at most DISK_KEY_MAX
 * bytes and key texts up to 64 KiB, so a long text is keyed by its first
 * DISK_KEY_INLINE_MAX bytes followed by its hash (its value then carries
 * the whole text).  Byte order of such keys is text order except among
 * long texts sharing those first bytes, which sort by hash.
 */
static void keys_key(const char *text, size_t len, const uint8_t *hash,
		     uint8_t buf[DISK_KEY_MAX], MDB_val *out)
{
	if (len <= DISK_KEY_INLINE_MAX) {
		out->mv_size = len;
		out->mv_data = (void *)text;
		return;
	}
	memcpy(buf, text, DISK_KEY_INLINE_MAX);
	memcpy(buf + DISK_KEY_INLINE_MAX, hash, STRATA_KEY_HASH_LEN);
	out->mv_size = DISK_KEY_MAX;
	out->mv_data = buf;
}

/*
 * The tags database's key for `tag` on the entry `hash`.  Tags hold no NUL
 * (entry.h), so 0x00 ends the tag part and a range scan from the prefix
 * tag_prefix() writes ("tag\0") finds exactly that tag's records:
 *
 *   tag of at most DISK_TAG_INLINE_MAX bytes: tag ++ 0x00 ++ hash
 *   longer tag:  first DISK_TAG_LONG_PART bytes ++ 0x00 ++ XXH3-128(tag)
 *                ++ hash
 *
 * The two kinds cannot be confused: the first NUL fixes the tag part, and
 * for the same tag part a long key is 16 bytes longer than a short one;
 * scans check the length.  Records of two long tags sharing their first
 * bytes differ in the tag hash.  Returns the prefix length.
 */
static size_t tag_prefix(const char *tag, size_t len,
			 uint8_t buf[DISK_KEY_MAX])
{
	struct strata_key tag_hash;

	if (len <= DISK_TAG_INLINE_MAX) {
		memcpy(buf, tag, len);
		buf[len] = 0;
		return len + 1;
	}
	memcpy(buf, tag, DISK_TAG_LONG_PART);
	buf[DISK_TAG_LONG_PART] = 0;
	strata_key_hash(tag, len, &tag_hash);
	memcpy(buf + DISK_TAG_LONG_PART + 1, tag_hash.hash,
	       STRATA_KEY_HASH_LEN);
	return DISK_TAG_LONG_PART + 1 + STRATA_KEY_HASH_LEN;
}

static void tag_key(const char *tag, const uint8_t *hash,
		    uint8_t buf[DISK_KEY_MAX], MDB_val *out)
{
	size_t n = tag_prefix(tag, strlen(tag), buf);

	memcpy(buf + n, hash, STRATA_KEY_HASH_LEN);
	out->mv_size = n + STRATA_KEY_HASH_LEN;
	out->mv_data = buf;
}

/* An LMDB error as a Strata return value. */
static int disk_err(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
		return STRATA_ECORRUPT;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/* LMDB errors that mean "these files are not a usable environment". */
static bool unusable(int rc)
{
	return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
	       rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	       rc == MDB_INCOMPATIBLE;
}

/* Whether the writer may log an error line now: at most one per
 * DISK_ERROR_LOG_MS. */
static bool error_log_due(struct strata_disk *disk)
{
	uint64_t now = strata_now_ms();

	if (disk->last_error_log && now - disk->last_error_log <
					    DISK_ERROR_LOG_MS)
		return false;
	disk->last_error_log = now;
	return true;
}

/* Writer-thread error line, rate-limited. */
static void writer_error(struct strata_disk *disk, const char *what, int rc)
{
	if (!error_log_due(disk))
		return;
	strata_log_error("disk tier %s: %s: %s%s", disk->path, what,
			 mdb_strerror(rc),
			 rc == MDB_MAP_FULL
				 ? " (no room can be freed: raise the size, or "
				   "look for another process holding a long "
				   "read transaction)"
				 : "");
}

/* --- per-thread read transactions ----------------------------------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static pthread_key_t registry_key;  /* value: the thread's reader list */
static int registry_err;
static _Atomic uint64_t next_disk_id = 1;

static void unlink_reader_locked(struct disk_reader *r)
{
	if (r->disk_prev)
		r->disk_prev->disk_next = r->disk_next;
	else
		r->disk->readers = r->disk_next;
	if (r->disk_next)
		r->disk_next->disk_prev = r->disk_prev;
	r->disk_prev = r->disk_next = NULL;
}

/* pthread key destructor: the thread is exiting. */
static void thread_exit_cb(void *head)
{
	struct disk_reader *r = head, *next;

	pthread_mutex_lock(&registry_lock);
	for (; r; r = next) {
		next = r->thread_next;
		if (r->disk) {
			mdb_txn_abort(r->txn);
			unlink_reader_locked(r);
		}
		free(r);
	}
	pthread_mutex_unlock(&registry_lock);
}

static void registry_init(void)
{
	registry_err = pthread_key_create(&registry_key, thread_exit_cb);
}

/* Free the calling thread's readers of closed tiers. */
static struct disk_reader *prune_locked(struct disk_reader *head)
{
	struct disk_reader **link = &head, *r;

	while ((r = *link) != NULL) {
		if (r->disk) {
			link = &r->thread_next;
			continue;
		}
		*link = r->thread_next;
		free(r);
	}
	return head;
}

/*
 * The calling thread's (reset) read transaction for `disk`, created on
 * first use; NULL when none can be had (out of memory or reader slots),
 * which the caller treats as a miss.
 */
static struct disk_reader *reader_for(struct strata_disk *disk)
{
	struct disk_reader *head, *r;
	MDB_txn *txn = NULL;
	int rc;

	if (pthread_once(&registry_once, registry_init) != 0 || registry_err)
		return NULL;
	head = pthread_getspecific(registry_key);
	for (r = head; r; r = r->thread_next)
		if (r->disk_id == disk->id)
			return r;

	rc = mdb_txn_begin(disk->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		if (!atomic_exchange_explicit(&disk->readers_full_logged, true,
					      memory_order_relaxed))
			strata_log_warn("disk tier %s: no read transaction for "
					"this thread (%s): lookups miss",
					disk->path, mdb_strerror(rc));
		return NULL;
	}
	mdb_txn_reset(txn);
	r = calloc(1, sizeof(*r));
	if (!r) {
		mdb_txn_abort(txn);
		return NULL;
	}
	r->disk_id = disk->id;
	r->txn = txn;

	r->thread_next = head;
	if (pthread_setspecific(registry_key, r) != 0) {
		/* The exit destructor would not see it: do not keep it (the
		 * key still holds the old head). */
		mdb_txn_abort(txn);
		free(r);
		return NULL;
	}
	pthread_mutex_lock(&registry_lock);
	r->disk = disk;
	r->disk_next = disk->readers;
	if (disk->readers)
		disk->readers->disk_prev = r;
	disk->readers = r;
	/* Behind the new head, so the key's value stays valid. */
	r->thread_next = prune_locked(head);
	pthread_mutex_unlock(&registry_lock);
	return r;
}

/* close(): abort every thread's read transaction of `disk`. */
static void readers_close(struct strata_disk *disk)
{
	struct disk_reader *r, *next;

	pthread_mutex_lock(&registry_lock);
	for (r = disk->readers; r; r = next) {
		next = r->disk_next;
		mdb_txn_abort(r->txn);
		r->txn = NULL;
		r->disk = NULL;
		r->disk_prev = r->disk_next = NULL;
	}
	disk->readers = NULL;
	pthread_mutex_unlock(&registry_lock);
}

/* --- the queue ------------------------------------------------------------ */

/*
 * The calling thread's first operation queued on tier `disk_id` since it
 * last flushed that tier (0: none), for strata_disk_flush().  One tier per
 * thread is remembered: a thread that queues on a second tier forgets the
 * first (its flush then reports only failures while it waits, as before).
 */
struct flush_mark {
	uint64_t disk_id;
	uint64_t first;
};
static _Thread_local struct flush_mark flush_mark;

static int enqueue(struct strata_disk *disk, const struct disk_op *op)
{
	int rc = 0;

	pthread_mutex_lock(&disk->lock);
	if (disk->ring_len == disk->ring_cap) {
		rc = STRATA_EUNAVAIL;
		goto out;
	}
	disk->ring[(disk->ring_head + disk->ring_len) % disk->ring_cap] = *op;
	disk->ring_len++;
	disk->enqueued++;
	if (flush_mark.disk_id != disk->id || flush_mark.first == 0)
		flush_mark = (struct flush_mark){ disk->id, disk->enqueued };
	pthread_cond_signal(&disk->work_cv);
out:
	pthread_mutex_unlock(&disk->lock);
	if (rc)
		count(&disk->dropped, 1);
	return rc;
}

/* Move up to DISK_BATCH_MAX operations into disk->batch. */
static size_t take_locked(struct strata_disk *disk)
{
	size_t n = disk->ring_len < DISK_BATCH_MAX ? disk->ring_len
						   : DISK_BATCH_MAX;

	for (size_t i = 0; i < n; i++)
		disk->batch[i] =
			disk->ring[(disk->ring_head + i) % disk->ring_cap];
	disk->ring_head = (disk->ring_head + n) % disk->ring_cap;
	disk->ring_len -= n;
	disk->taken += n;
	return n;
}

/* --- pages ---------------------------------------------------------------- */

/* Pages in use (reachable from the last commit or from `txn`'s changes):
 * every tree's pages, the free-page tree's own, the meta pages.  Pages on
 * the free list are not counted: LMDB reuses them. */
static int used_pages(struct strata_disk *disk, MDB_txn *txn, size_t *out)
{
	const MDB_dbi dbis[] = { DISK_FREE_DBI, disk->dbi_main,
				 disk->dbi_entries, disk->dbi_keys,
				 disk->dbi_expiry, disk->dbi_tags,
				 disk->dbi_meta };
	size_t pages = DISK_META_PAGES;
	MDB_stat st;
	int rc;

	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		rc = mdb_stat(txn, dbis[i], &st);
		if (rc != 0)
			return rc;
		pages += st.ms_branch_pages + st.ms_leaf_pages +
			 st.ms_overflow_pages;
	}
	*out = pages;
	return 0;
}

/* The contiguous overflow pages LMDB stores a value of `bytes` in: none
 * up to about half a page (it stays in its leaf), else a run that starts
 * with a page header. */
static size_t value_run(const struct strata_disk *disk, size_t bytes)
{
	if (bytes <= disk->page_size / 2)
		return 0;
	return (bytes + DISK_PAGE_HEADER + disk->page_size - 1) /
	       disk->page_size;
}

/* Pages an operation may allocate: its value's overflow pages (estimated
 * from the entry's charge, which exceeds its encoding) and a copy and a
 * split in each tree, plus a leaf per tag record (see DISK_TAG_PAGES_MAX).
 * A removal's tag records are not known before decoding: it is counted
 * like an untagged entry. */
static size_t op_pages(const struct strata_disk *disk,
		       const struct disk_op *op)
{
	size_t pages = DISK_TREES_PER_OP * DISK_PAGES_PER_TREE, tags;

	if (op->type == DISK_OP_CLEAR)
		return 0;
	if (op->type == DISK_OP_META_PUT)
		return DISK_PAGES_PER_TREE;
	if (op->type != DISK_OP_PUT)
		return pages;
	tags = op->entry->n_tags < DISK_TAG_PAGES_MAX ? op->entry->n_tags
						      : DISK_TAG_PAGES_MAX;
	/* A replaced entry's trees are touched too. */
	return 2 * (pages + tags) + value_run(disk, op->entry->charge);
}

/* --- removing entries ----------------------------------------------------- */

enum drop_when {
	DROP_ALWAYS,
	DROP_IF_EXPIRES,   /* the entry's expiry record is the one given */
	DROP_IF_CORRUPT,   /* it fails decoding (or names another hash) */
};

/* Delete the keys, expiry and tags records of a decoded stored entry. */
static int del_indexes(struct strata_disk *disk, MDB_txn *txn,
		       const struct strata_entry *e)
{
	uint8_t kbuf[DISK_KEY_MAX], ebuf[DISK_EXPIRY_KEY_LEN];
	MDB_val k, v;
	int rc;

	/* A tag record names its entry's hash: it is always this entry's.
	 * NOTFOUND: a tag listed twice, or a record already gone. */
	for (size_t i = 0; i < e->n_tags; i++) {
		tag_key(e->tags[i], e->key.hash, kbuf, &k);
		rc = mdb_del(txn, disk->dbi_tags, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}

	keys_key(e->key_text, e->key_len, e->key.hash, kbuf, &k);
	rc = mdb_get(txn, disk->dbi_keys, &k, &v);
	/* Only if it names this entry: after a hash collision the text is
	 * another entry's. */
	if (rc == 0 && v.mv_size >= STRATA_KEY_HASH_LEN &&
	    memcmp(v.mv_data, e->key.hash, STRATA_KEY_HASH_LEN) == 0)
		rc = mdb_del(txn, disk->dbi_keys, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	expiry_key(expiry_time(e), e->key.hash, ebuf, &k);
	rc = mdb_del(txn, disk->dbi_expiry, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Remove the entry stored under `hash` with its index records, if `when`
 * allows.  An entry that fails decoding is removed alone: its index
 * records cannot be found without its text and tags, and are dropped when
 * reached (expiry) or skipped (scans skip records whose entry is gone).
 * Its tag records stay until the same tag is stored again for the same
 * hash (which overwrites them) or a clear; were the hash stored again
 * with other tags, a tag scan would still list it under the old ones: a
 * purge by such a tag then removes one entry too many, never too few.
 * Decoding copies the entry, so removing costs about what storing did; it
 * also checks the bytes, so a corrupt entry found here is counted.  Returns 0 (removed), MDB_NOTFOUND (kept
 * or absent) or an LMDB error.
 */
static int drop_entry(struct strata_disk *disk, MDB_txn *txn,
		      const uint8_t *hash, enum drop_when when,
		      uint64_t expires, struct disk_tally *tally)
{
	MDB_val k = { STRATA_KEY_HASH_LEN, (void *)hash }, v;
	struct strata_entry *e = NULL;
	bool readable;
	int rc;

	rc = mdb_get(txn, disk->dbi_entries, &k, &v);
	if (rc != 0)
		goto out;
	rc = strata_entry_decode(v.mv_data, v.mv_size, &e);
	if (rc == -ENOMEM) {
		rc = ENOMEM;
		goto out;
	}
	readable = rc == 0 &&
		   memcmp(e->key.hash, hash, STRATA_KEY_HASH_LEN) == 0;
	rc = MDB_NOTFOUND;
	if (readable && when == DROP_IF_CORRUPT)
		goto out;
	if (readable && when == DROP_IF_EXPIRES && expiry_time(e) != expires)
		goto out;
	if (readable) {
		rc = del_indexes(disk, txn, e);
		if (rc != 0)
			goto out;
	} else if (when != DROP_IF_CORRUPT) {
		/* DROP_IF_CORRUPT comes from a lookup that counted it. */
		tally->corrupt++;
	}
	rc = mdb_del(txn, disk->dbi_entries, &k, NULL);
	if (rc == 0)
		tally->removed++;
out:
	strata_entry_release(&e);
	return rc;
}

/*
 * Remove the entry named by the first expiry record if it expires at or
 * before `through`, and that record.  A record whose entry is gone or was
 * since replaced is deleted alone.  Returns 0 (a record went),
 * MDB_NOTFOUND (none left through `through`) or an LMDB error.
 */
static int drop_first(struct strata_disk *disk, MDB_txn *txn,
		      uint64_t through, struct disk_tally *tally)
{
	MDB_cursor *cur = NULL;
	uint8_t kbuf[DISK_EXPIRY_KEY_LEN];
	MDB_val k, v;
	uint64_t expires;
	int rc;

	rc = mdb_cursor_open(txn, disk->dbi_expiry, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc != 0)
		goto out;
	if (k.mv_size != DISK_EXPIRY_KEY_LEN) {
		/* Not one of ours: drop it so the sweep moves on. */
		rc = mdb_cursor_del(cur, 0);
		goto out;
	}
	/* Copy: the key points into a page the deletes below may change. */
	memcpy(kbuf, k.mv_data, DISK_EXPIRY_KEY_LEN);
	k.mv_data = kbuf;
	expires = get_be64(kbuf);
	if (expires > through) {
		rc = MDB_NOTFOUND;
		goto out;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	rc = drop_entry(disk, txn, kbuf + 8, DROP_IF_EXPIRES, expires, tally);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	rc = mdb_del(txn, disk->dbi_expiry, &k, NULL);
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur)
		mdb_cursor_close(cur);
	return rc;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * LMDB hands the pages freed by transaction N to transactions from N+2 on
 * (the meta page of N-1 may still be read until N+1 commits).  After a
 * transaction that freed much (eviction, sweeping, clear), one tiny commit
 * makes that room usable by the very next transaction; without it the
 * next batch could hit MDB_MAP_FULL with a quarter of the map free.
 */
static int reclaim_commit(struct strata_disk *disk)
{
	MDB_txn *txn = NULL;
	uint8_t when[8];
	MDB_val k = { sizeof(DISK_RECLAIM_KEY) - 1, DISK_RECLAIM_KEY };
	MDB_val v = { sizeof(when), when };
	uint64_t now = (uint64_t)strata_wall_ms();
	int rc;

	for (int i = 0; i < 8; i++, now >>= 8)
		when[i] = (uint8_t)now;
	rc = mdb_txn_begin(disk->env, NULL, 0, &txn);
	if (rc != 0)
		goto out;
	rc = mdb_put(txn, disk->dbi_meta, &k, &v, 0);
	if (rc != 0) {
		mdb_txn_abort(txn);
		goto out;
	}
	rc = mdb_txn_commit(txn);
out:
	return rc;
}

static void reclaim(struct strata_disk *disk)
{
	int rc = reclaim_commit(disk);

	if (rc != 0)
		writer_error(disk, "reclaiming freed pages", rc);
}

/*
 * Eviction.  The policy is nearest-to-expiry first: the expiry database
 * is ordered by expiry time, so its first records are entries already
 * expired (the sweeper has not reached them yet), then those that would
 * expire soonest.  An entry about to expire is worth least: it will stop
 * being served soon anyway, while one with a long life ahead keeps saving
 * upstream fetches.  This ignores popularity (LMDB has no cheap place for
 * a recency bit: every hit would be a write); tier 1 keeps the hot set.
 *
 * Room is measured in pages in use (used_pages()), not by the file size,
 * which never shrinks.  If more than `trigger` pages are in use, entries
 * are removed in transactions of at most DISK_EVICT_CHUNK until no more
 * than `target` are.  A removal itself needs a few new pages (copies of
 * the leaves it changes).  When they cannot be had (MDB_MAP_FULL), the
 * free pages are usually there but not reusable yet: freed by the last
 * commit (a tiny commit cures that, see reclaim()), or pinned by a
 * reader that was preempted mid-lookup (it moves on within milliseconds
 * on a loaded host, see apply_alone()).  So each failure makes a tiny
 * commit and tries a chunk half the size, and once at one entry sleeps
 * 1, 2, 4 ... 64 ms between tries.  Past that the map is really full
 * or another process holds a long read transaction: the error is logged,
 * and puts that do not fit are dropped (and counted) until room returns.
 */
static int evict(struct strata_disk *disk, size_t trigger, size_t target)
{
	size_t chunk = DISK_EVICT_CHUNK, used, n;
	uint64_t total = 0;
	struct disk_tally t;
	MDB_txn *txn;
	bool first = true, empty = false;
	unsigned naps = 0;
	int rc = 0;

	while (!empty) {
		t = (struct disk_tally){ 0 };
		txn = NULL;
		rc = mdb_txn_begin(disk->env, NULL, 0, &txn);
		if (rc != 0)
			break;
		rc = used_pages(disk, txn, &used);
		if (rc != 0 || used <= (first ? trigger : target)) {
			mdb_txn_abort(txn);
			break;
		}
		first = false;
		for (n = 0; n < chunk && used > target; n++) {
			rc = drop_first(disk, txn, UINT64_MAX, &t);
			if (rc == MDB_NOTFOUND) {
				empty = true;
				rc = 0;
				break;
			}
			if (rc == 0)
				rc = used_pages(disk, txn, &used);
			if (rc != 0)
				break;
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == MDB_MAP_FULL && naps < DISK_EVICT_NAPS) {
			if (chunk > 1)
				chunk /= 2;
			else
				sleep_ms(1u << naps++);
			(void)reclaim_commit(disk); /* may fail alike */
			empty = false;
			continue;
		}
		if (rc != 0)
			break;
		count(&disk->evictions, t.removed);
		count(&disk->corrupt, t.corrupt);
		total += t.removed;
	}
	if (rc != 0)
		writer_error(disk, "evicting", rc);
	if (total)
		reclaim(disk);
	return rc;
}

/*
 * Make room before a run of writes whose first operation may allocate
 * `need` pages: evict if that could cross the high-water mark.  Evicting
 * down to the low-water mark, not just below the high one, gives
 * hysteresis: one eviction pass serves many batches.
 */
static void make_room(struct strata_disk *disk, size_t need)
{
	size_t trigger = 0, target;

	if (disk->high_pages > need + DISK_TXN_RESERVE_PAGES)
		trigger = disk->high_pages - need - DISK_TXN_RESERVE_PAGES;
	target = trigger < disk->low_pages ? trigger : disk->low_pages;
	evict(disk, trigger, target);
}

/*
 * After a put met MDB_MAP_FULL: if the map is really full (more than the
 * low-water mark in use), the estimates were short: evict a good deal
 * more.  Below the low-water mark a quarter of the map is not in use, so
 * the free pages exist but cannot be had: a reader still sees them (see
 * apply_alone()) or they are too scattered for a run (evict_run()).
 * Evicting in expiry order cures neither; it would discard entries for
 * nothing and spend fresh pages on its own commits, pages that a queued
 * removal then lacks.
 */
static void evict_more(struct strata_disk *disk)
{
	MDB_txn *txn = NULL;
	size_t used = 0, target = 0;

	if (mdb_txn_begin(disk->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	if (used_pages(disk, txn, &used) != 0)
		used = 0;
	mdb_txn_abort(txn);
	if (used > disk->low_pages) {
		if (used > disk->full_extra_pages)
			target = used - disk->full_extra_pages;
		if (target > disk->low_pages)
			target = disk->low_pages;
		evict(disk, target, target);
	}
	/* Even with nothing to evict, one commit frees what the failed
	 * transaction's predecessor released (see reclaim()). */
	reclaim(disk);
}

/*
 * Fragmentation.  LMDB stores a value over half a page in a run of
 * contiguous overflow pages, and a cache keeps its map 75-90% full, so
 * free pages can be plentiful yet scattered: a put then fails with
 * MDB_MAP_FULL although used_pages() says it fits.  Evicting in expiry
 * order frees pages anywhere; evicting one entry whose own run is at
 * least `pages` long frees a run that fits.  So the nearest-to-expiry
 * entry that is big enough, among the first DISK_RUN_SCAN in expiry
 * order, goes (one bounded walk and a size read per record, no decoding).
 */
static void evict_run(struct strata_disk *disk, size_t pages)
{
	uint8_t kbuf[DISK_EXPIRY_KEY_LEN];
	struct disk_tally t = { 0 };
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val k, v, hk;
	bool found = false;
	int rc;

	rc = mdb_txn_begin(disk->env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_cursor_open(txn, disk->dbi_expiry, &cur);
	if (rc != 0)
		goto out;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (size_t i = 0; rc == 0 && i < DISK_RUN_SCAN; i++) {
		if (k.mv_size == DISK_EXPIRY_KEY_LEN) {
			hk = (MDB_val){ STRATA_KEY_HASH_LEN,
					(uint8_t *)k.mv_data + 8 };
			if (mdb_get(txn, disk->dbi_entries, &hk, &v) == 0 &&
			    value_run(disk, v.mv_size) >= pages) {
				memcpy(kbuf, k.mv_data, sizeof(kbuf));
				found = true;
				break;
			}
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (!found) {
		rc = 0;
		goto out;
	}
	rc = drop_entry(disk, txn, kbuf + 8, DROP_IF_EXPIRES,
			get_be64(kbuf), &t);
	if (rc == 0 || rc == MDB_NOTFOUND) {
		k = (MDB_val){ sizeof(kbuf), kbuf };
		rc = mdb_del(txn, disk->dbi_expiry, &k, NULL);
	}
	if (rc == 0 || rc == MDB_NOTFOUND)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	txn = NULL;
	if (rc == 0) {
		count(&disk->evictions, t.removed);
		count(&disk->corrupt, t.corrupt);
		reclaim(disk);
	}
out:
	if (txn)
		mdb_txn_abort(txn);
	if (rc != 0)
		writer_error(disk, "evicting for a large entry", rc);
}

/* --- the sweeper ---------------------------------------------------------- */

/* Remove up to DISK_SWEEP_BATCH expired entries.  Returns true when more
 * may be waiting. */
static bool sweep(struct strata_disk *disk)
{
	uint64_t now = (uint64_t)strata_wall_ms();
	struct disk_tally t = { 0 };
	MDB_txn *txn = NULL;
	bool more = true;
	size_t n;
	int rc;

	rc = mdb_txn_begin(disk->env, NULL, 0, &txn);
	if (rc != 0)
		goto out;
	for (n = 0; n < DISK_SWEEP_BATCH; n++) {
		rc = drop_first(disk, txn, now, &t);
		if (rc != 0)
			break;
	}
	if (rc == MDB_NOTFOUND) {
		more = false;
		rc = 0;
	}
	if (rc != 0 || n == 0) {
		mdb_txn_abort(txn);
		goto out;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		goto out;
	count(&disk->expired, t.removed);
	count(&disk->corrupt, t.corrupt);
	if (t.removed)
		reclaim(disk);
out:
	if (rc != 0) {
		writer_error(disk, "sweeping expired entries", rc);
		more = false;
	}
	return more;
}

/* --- applying operations -------------------------------------------------- */

static int put_entry(struct strata_disk *disk, MDB_txn *txn,
		     struct strata_entry *e, struct disk_tally *tally)
{
	uint8_t kbuf[DISK_KEY_MAX], ebuf[DISK_EXPIRY_KEY_LEN];
	MDB_val hk = { STRATA_KEY_HASH_LEN, e->key.hash }, k, v;
	struct strata_key text_key;
	char *enc = NULL;
	size_t len;
	int rc;

	/* LMDB has no empty keys: an empty key text cannot be indexed (and
	 * no request produces one).  An entry whose key is not its text's
	 * hash (a pass-through answer) would only decode as corrupt. */
	strata_key_hash(e->key_text, e->key_len, &text_key);
	if (e->key_len == 0 || !strata_key_equal(&text_key, &e->key) ||
	    strata_entry_encode(e, &enc, &len) != 0 ||
	    len > disk->max_value) {
		tally->dropped++;
		rc = 0;
		goto out;
	}
	/* Replace: the old entry's index records go first. */
	rc = drop_entry(disk, txn, e->key.hash, DROP_ALWAYS, 0, tally);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;

	v = (MDB_val){ len, enc };
	rc = mdb_put(txn, disk->dbi_entries, &hk, &v, 0);
	if (rc != 0)
		goto out;

	keys_key(e->key_text, e->key_len, e->key.hash, kbuf, &k);
	v.mv_size = STRATA_KEY_HASH_LEN +
		    (e->key_len > DISK_KEY_INLINE_MAX ? e->key_len : 0);
	rc = mdb_put(txn, disk->dbi_keys, &k, &v, MDB_RESERVE);
	if (rc != 0)
		goto out;
	memcpy(v.mv_data, e->key.hash, STRATA_KEY_HASH_LEN);
	if (e->key_len > DISK_KEY_INLINE_MAX)
		memcpy((char *)v.mv_data + STRATA_KEY_HASH_LEN, e->key_text,
		       e->key_len);

	expiry_key(expiry_time(e), e->key.hash, ebuf, &k);
	v = (MDB_val){ 0, ebuf }; /* empty; never NULL for memcpy's sake */
	rc = mdb_put(txn, disk->dbi_expiry, &k, &v, 0);
	if (rc != 0)
		goto out;

	for (size_t i = 0; i < e->n_tags; i++) {
		tag_key(e->tags[i], e->key.hash, kbuf, &k);
		v = (MDB_val){ 0, kbuf };
		rc = mdb_put(txn, disk->dbi_tags, &k, &v, 0);
		if (rc != 0)
			goto out;
	}
	tally->stores++;
out:
	free(enc);
	return rc;
}

static int clear_all(struct strata_disk *disk, MDB_txn *txn)
{
	int rc;

	/* Entries and their indexes; meta records stay. */
	rc = mdb_drop(txn, disk->dbi_entries, 0);
	if (rc == 0)
		rc = mdb_drop(txn, disk->dbi_keys, 0);
	if (rc == 0)
		rc = mdb_drop(txn, disk->dbi_expiry, 0);
	if (rc == 0)
		rc = mdb_drop(txn, disk->dbi_tags, 0);
	return rc;
}

/* Write a meta record, unless a removal was lost before it (see
 * strata_disk_meta_put()): then count it refused and write nothing. */
static int put_meta(struct strata_disk *disk, MDB_txn *txn,
		    const struct disk_op *op, struct disk_tally *tally)
{
	MDB_val k = { op->meta_name_len, op->meta };
	MDB_val v = { op->meta_value_len, op->meta + op->meta_name_len };

	if (disk->removals_lost) {
		tally->meta_refused++;
		return 0;
	}
	return mdb_put(txn, disk->dbi_meta, &k, &v, 0);
}

static int apply_op(struct strata_disk *disk, MDB_txn *txn,
		    const struct disk_op *op, struct disk_tally *tally)
{
	int rc;

	switch (op->type) {
	case DISK_OP_PUT:
		return put_entry(disk, txn, op->entry, tally);
	case DISK_OP_DEL:
		rc = drop_entry(disk, txn, op->key.hash, DROP_ALWAYS, 0,
				tally);
		break;
	case DISK_OP_DROP_CORRUPT:
		rc = drop_entry(disk, txn, op->key.hash, DROP_IF_CORRUPT, 0,
				tally);
		break;
	case DISK_OP_CLEAR:
		rc = clear_all(disk, txn);
		break;
	case DISK_OP_META_PUT:
		return put_meta(disk, txn, op, tally);
	default:
		STRATA_ASSERT(!"unknown disk operation");
		return EINVAL;
	}
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Apply ops[start..n) in one write transaction, as many as fit (see
 * make_room()), commit, and set *end past the last one applied.  Returns
 * 0 or an LMDB error (nothing applied).
 */
static int run_ops(struct strata_disk *disk, const struct disk_op *ops,
		   size_t start, size_t n, size_t *end)
{
	struct disk_tally t = { 0 };
	MDB_txn *txn = NULL;
	size_t i, used, charge = 0, cost;
	bool cleared = false;
	int rc;

	if (ops[start].type == DISK_OP_PUT)
		make_room(disk, op_pages(disk, &ops[start]));
	rc = mdb_txn_begin(disk->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	rc = used_pages(disk, txn, &used);
	if (rc != 0)
		goto abort;
	for (i = start; i < n; i++) {
		cost = op_pages(disk, &ops[i]);
		/* The first operation always goes: room was made for it. */
		if (i > start &&
		    (charge + cost > disk->run_pages ||
		     used + charge + cost + DISK_TXN_RESERVE_PAGES >
			     disk->high_pages))
			break;
		rc = apply_op(disk, txn, &ops[i], &t);
		if (rc != 0)
			goto abort;
		charge += cost;
		if (ops[i].type == DISK_OP_CLEAR) {
			/* Commit now so that reclaim() frees the room. */
			cleared = true;
			i++;
			break;
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		return rc;
	*end = i;
	count(&disk->stores, t.stores);
	count(&disk->dropped, t.dropped);
	count(&disk->corrupt, t.corrupt);
	disk->meta_refused += t.meta_refused;
	if (cleared)
		reclaim(disk);
	return 0;
abort:
	mdb_txn_abort(txn);
	return rc;
}

static uint64_t count_puts(const struct disk_op *ops, size_t from, size_t to)
{
	uint64_t n = 0;

	for (size_t i = from; i < to; i++)
		n += ops[i].type == DISK_OP_PUT;
	return n;
}

/* Whether ops[from..to) hold a removal or a clear (a purge's work). */
static bool has_removal(const struct disk_op *ops, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (ops[i].type == DISK_OP_DEL || ops[i].type == DISK_OP_CLEAR)
			return true;
	return false;
}

/*
 * After MDB_MAP_FULL: apply `op` alone.
 *
 * Why a transaction meets MDB_MAP_FULL below the high-water mark: a put
 * needs a run of contiguous pages (see evict_run()), or the free pages
 * are pinned.  LMDB reuses a freed page only once every reader that
 * started before the commit that freed it has finished (and never in the
 * very next commit, see reclaim()).  A lookup holds its read transaction for microseconds,
 * but a thread preempted in the middle of one (a loaded host, sanitizers)
 * holds it for tens of milliseconds, and a scan for as long as it runs.
 * Meanwhile every page the writer frees stays unusable, so its commits
 * (stores, and eviction, which needs fresh pages too) consume what is
 * left, until none is.
 *
 * A put: first the cheapest cure: for a large put a run of pages
 * (evict_run()), else more eviction if the map is really full
 * (evict_more()).  The next try only waits for the readers, and the one
 * after waits and tries those cures again.  A put that still does not fit
 * is dropped and counted, as a cache may.
 *
 * A removal, clear, corrupt drop or meta put must not be lost (a purge
 * would keep serving what was purged; a meta put is never dropped).
 * Eviction cannot help it: evicting needs the same fresh pages a removal
 * does, and the pages it frees are pinned too.  Time does: once the
 * readers move on, the pages freed meanwhile are reusable.  So it is
 * retried with back-off (1 ms doubling to DISK_FULL_SLEEP_MAX_MS), with a
 * tiny commit until one succeeds so that the pages freed by the last
 * commit become reusable too, for up to DISK_FULL_WAIT_MS.  A read
 * transaction that pins pages that long belongs to another process (a
 * backup, a stuck process): the operation then fails, for flush() to
 * report.
 */
static int apply_alone(struct strata_disk *disk, const struct disk_op *op)
{
	size_t end, run;
	uint64_t start;
	unsigned nap = 1;
	bool reclaimed = false;
	int rc = MDB_MAP_FULL;

	if (op->type == DISK_OP_PUT) {
		run = value_run(disk, op->entry->charge);
		for (unsigned i = 0; i < DISK_PUT_TRIES; i++) {
			if (i > 0)
				sleep_ms(1u << i);
			if (i % 2 == 0) {
				if (i > 0 || !run)
					evict_more(disk);
				if (run)
					evict_run(disk, run);
			}
			rc = run_ops(disk, op, 0, 1, &end);
			if (rc != MDB_MAP_FULL)
				return rc;
		}
		count(&disk->dropped, 1);
		return 0;
	}
	start = strata_now_ms();
	for (;;) {
		if (!reclaimed)
			reclaimed = reclaim_commit(disk) == 0;
		rc = run_ops(disk, op, 0, 1, &end);
		if (rc != MDB_MAP_FULL ||
		    strata_now_ms() - start >= DISK_FULL_WAIT_MS)
			return rc;
		sleep_ms(nap);
		nap = nap * 2 < DISK_FULL_SLEEP_MAX_MS ? nap * 2
						       : DISK_FULL_SLEEP_MAX_MS;
	}
}

/*
 * Apply a batch taken from the queue.  The operation that met
 * MDB_MAP_FULL is applied alone (apply_alone()): a put that still does
 * not fit is dropped and counted, so MDB_MAP_FULL leaves here only for a
 * removal, clear or meta put that waited DISK_FULL_WAIT_MS in vain.  An
 * error drops the rest of the batch (puts counted) and is returned for
 * flush(); if that lost a removal or a clear, every later meta put is
 * refused (see strata_disk_meta_put()).  A batch in which a meta put was
 * refused returns STRATA_EUNAVAIL for flush() once the rest is applied.
 */
static int apply_batch(struct strata_disk *disk, const struct disk_op *ops,
		       size_t n)
{
	uint64_t refused = disk->meta_refused;
	size_t start = 0, end = 0;
	int rc = 0;

	while (start < n) {
		rc = run_ops(disk, ops, start, n, &end);
		if (rc == MDB_MAP_FULL) {
			rc = apply_alone(disk, &ops[start]);
			end = start + 1;
		}
		if (rc != 0) {
			writer_error(disk, "writing a batch", rc);
			count(&disk->dropped, count_puts(ops, start, n));
			if (has_removal(ops, start, n))
				disk->removals_lost = true;
			return disk_err(rc);
		}
		start = end;
	}
	if (disk->meta_refused != refused) {
		if (error_log_due(disk))
			strata_log_error(
				"disk tier %s: refused %" PRIu64 " meta "
				"record update(s): a queued removal or clear "
				"was lost to a write error earlier, so the "
				"record could claim work that never happened; "
				"restart to resume from the last record",
				disk->path, disk->meta_refused - refused);
		return STRATA_EUNAVAIL;
	}
	return 0;
}

static void release_ops(struct disk_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ops[i].type == DISK_OP_PUT)
			strata_entry_release(&ops[i].entry);
		if (ops[i].type == DISK_OP_META_PUT) {
			free(ops[i].meta);
			ops[i].meta = NULL;
		}
	}
}

static void deadline_after(uint64_t ms, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void check_readers(struct strata_disk *disk)
{
	int dead = 0;

	if (mdb_reader_check(disk->env, &dead) == 0 && dead > 0)
		strata_log_warn("disk tier %s: cleared %d stale reader "
				"slot(s) of exited processes",
				disk->path, dead);
}

static void *writer_main(void *arg)
{
	struct strata_disk *disk = arg;
	uint64_t next_sweep = strata_now_ms() + DISK_SWEEP_INTERVAL_MS;
	uint64_t next_check = strata_now_ms() + DISK_READER_CHECK_MS;
	struct timespec deadline;
	size_t n;
	uint64_t seq, now;
	int rc;

	for (;;) {
		pthread_mutex_lock(&disk->lock);
		while (disk->ring_len == 0 && !disk->stopping) {
			now = strata_now_ms();
			if (now >= next_sweep)
				break;
			deadline_after(next_sweep - now, &deadline);
			pthread_cond_timedwait(&disk->work_cv, &disk->lock,
					       &deadline);
		}
		if (disk->ring_len == 0 && disk->stopping) {
			pthread_mutex_unlock(&disk->lock);
			break;
		}
		n = take_locked(disk);
		seq = disk->taken;
		pthread_mutex_unlock(&disk->lock);

		if (n) {
			rc = apply_batch(disk, disk->batch, n);
			release_ops(disk->batch, n);
			pthread_mutex_lock(&disk->lock);
			disk->committed = seq;
			if (rc) {
				disk->failed_seq = seq;
				disk->failed_err = rc;
			}
			pthread_cond_broadcast(&disk->done_cv);
			pthread_mutex_unlock(&disk->lock);
		}
		now = strata_now_ms();
		if (now >= next_sweep)
			next_sweep = sweep(disk)
					     ? now
					     : now + DISK_SWEEP_INTERVAL_MS;
		if (now >= next_check) {
			check_readers(disk);
			next_check = now + DISK_READER_CHECK_MS;
		}
	}
	return NULL;
}

/* --- opening -------------------------------------------------------------- */

/* mkdir -p with DISK_DIR_MODE; then it must be a writable directory. */
static int prepare_dir(const char *path)
{
	char *copy = strdup(path);
	struct stat st;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, DISK_DIR_MODE) != 0 && errno != EEXIST) {
			rc = -errno;
			goto out;
		}
		*p = '/';
	}
	if (mkdir(copy, DISK_DIR_MODE) != 0 && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	if (stat(path, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	if (access(path, W_OK | X_OK) != 0)
		rc = -errno;
out:
	if (rc)
		strata_log_error("disk tier: cannot use directory %s: %s "
				 "(create it, or give Strata write access, "
				 "or set another path)",
				 copy, strerror(-rc));
	free(copy);
	return rc;
}

/* A data file shorter than the pages its meta page claims would SIGBUS
 * the first read past its end: check before any read. */
static int check_file_length(struct strata_disk *disk, const char **why)
{
	MDB_envinfo info;
	struct stat st;
	char *file;
	int rc;

	if (asprintf(&file, "%s/data.mdb", disk->path) < 0)
		return -ENOMEM;
	rc = stat(file, &st);
	free(file);
	if (rc != 0)
		return -errno;
	mdb_env_info(disk->env, &info);
	if ((uint64_t)st.st_size <
	    ((uint64_t)info.me_last_pgno + 1) * disk->page_size) {
		*why = "data.mdb is shorter than its pages (truncated)";
		return STRATA_ECORRUPT;
	}
	return 0;
}

static int open_db(MDB_txn *txn, const char *name, unsigned flags,
		   MDB_dbi *dbi, const char **why)
{
	int rc = mdb_dbi_open(txn, name, flags, dbi);

	if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
		*why = "a database is missing or is not a database";
		return STRATA_ECORRUPT;
	}
	return rc;
}

/*
 * An existing environment's format version record must be ours.  Checked
 * before the other databases are opened, so that a directory of another
 * version is reported as such rather than as a missing database.
 */
static int check_version(struct strata_disk *disk, MDB_txn *txn,
			 const char **why)
{
	MDB_val k = { sizeof(DISK_FORMAT_KEY) - 1, DISK_FORMAT_KEY }, v;
	const uint8_t *p;
	uint32_t found;
	int rc;

	rc = mdb_get(txn, disk->dbi_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*why = "no format version record (not a Strata disk tier, or "
		       "a damaged one)";
		return STRATA_ECORRUPT;
	}
	if (rc != 0)
		return rc;
	if (v.mv_size != 4) {
		*why = "its format version record is malformed";
		return STRATA_ECORRUPT;
	}
	p = v.mv_data;
	found = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		(uint32_t)p[3] << 24;
	if (found == DISK_FORMAT_VERSION)
		return 0;
	snprintf(disk->why, sizeof(disk->why),
		 "it is in disk format version %" PRIu32 ", this Strata uses "
		 "version %u: written by %s Strata, not converted",
		 found, DISK_FORMAT_VERSION,
		 found < DISK_FORMAT_VERSION ? "an older" : "a newer");
	*why = disk->why;
	return STRATA_ECORRUPT;
}

/*
 * Open (or create, when the environment is empty) the five databases and
 * check the format version.  An environment with data but without our
 * version record is someone else's or a broken one.
 */
static int open_dbs(struct strata_disk *disk, const char **why)
{
	MDB_val k = { sizeof(DISK_FORMAT_KEY) - 1, DISK_FORMAT_KEY }, v;
	uint8_t version[4] = { DISK_FORMAT_VERSION & 0xff,
			       DISK_FORMAT_VERSION >> 8 & 0xff,
			       DISK_FORMAT_VERSION >> 16 & 0xff,
			       DISK_FORMAT_VERSION >> 24 & 0xff };
	MDB_txn *txn = NULL;
	MDB_stat st;
	unsigned flags;
	bool fresh;
	int rc;

	rc = mdb_txn_begin(disk->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_dbi_open(txn, NULL, 0, &disk->dbi_main);
	if (rc == 0)
		rc = mdb_stat(txn, disk->dbi_main, &st);
	if (rc != 0)
		goto abort;
	fresh = st.ms_entries == 0;
	flags = fresh ? MDB_CREATE : 0;
	rc = open_db(txn, "meta", flags, &disk->dbi_meta, why);
	if (rc == 0 && !fresh)
		rc = check_version(disk, txn, why);
	if (rc == 0)
		rc = open_db(txn, "entries", flags, &disk->dbi_entries, why);
	if (rc == 0)
		rc = open_db(txn, "keys", flags, &disk->dbi_keys, why);
	if (rc == 0)
		rc = open_db(txn, "expiry", flags, &disk->dbi_expiry, why);
	if (rc == 0)
		rc = open_db(txn, "tags", flags, &disk->dbi_tags, why);
	if (rc != 0)
		goto abort;
	if (fresh) {
		v = (MDB_val){ sizeof(version), version };
		rc = mdb_put(txn, disk->dbi_meta, &k, &v, 0);
		if (rc != 0)
			goto abort;
	}
	/* Commit even when nothing changed: the handles persist only then. */
	return mdb_txn_commit(txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}

static unsigned sync_flags(enum strata_disk_sync sync)
{
	switch (sync) {
	case STRATA_DISK_SYNC_NONE:
		return MDB_NOSYNC;
	case STRATA_DISK_SYNC_META:
		return MDB_NOMETASYNC;
	case STRATA_DISK_SYNC_FULL:
	default:
		return 0;
	}
}

/*
 * Open disk->env.  Returns 0; STRATA_ECORRUPT with *why when the files
 * are not a usable strata-disk environment; a negative errno (logged)
 * otherwise.  disk->env is NULL on error.
 */
static int open_env(struct strata_disk *disk,
		    const struct strata_disk_config *cfg, const char **why)
{
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | sync_flags(cfg->sync);
	long os_page = sysconf(_SC_PAGESIZE);
	size_t map = cfg->size;
	MDB_envinfo info;
	MDB_stat st;
	int rc, dead = 0;

	if (os_page > 0 && map % (size_t)os_page)
		map += (size_t)os_page - map % (size_t)os_page;
	rc = mdb_env_create(&disk->env);
	if (rc != 0) {
		disk->env = NULL;
		goto fail;
	}
	rc = mdb_env_set_mapsize(disk->env, map);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(disk->env, DISK_MAX_DBS);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(disk->env, DISK_MAX_READERS);
	if (rc == 0)
		rc = mdb_env_open(disk->env, disk->path, flags,
				  DISK_FILE_MODE);
	if (rc != 0)
		goto fail;
	if (mdb_env_get_maxkeysize(disk->env) < DISK_KEY_MAX) {
		strata_log_error("disk tier %s: liblmdb was built with keys "
				 "under %d bytes; Strata needs its default",
				 disk->path, DISK_KEY_MAX);
		rc = ENOTSUP;
		goto fail;
	}
	/* Slots left by crashed processes would pin old pages forever. */
	rc = mdb_reader_check(disk->env, &dead);
	if (rc != 0)
		goto fail;
	if (dead > 0)
		strata_log_warn("disk tier %s: cleared %d stale reader "
				"slot(s) of exited processes",
				disk->path, dead);
	rc = mdb_env_stat(disk->env, &st);
	if (rc != 0)
		goto fail;
	disk->page_size = st.ms_psize;
	rc = check_file_length(disk, why);
	if (rc == STRATA_ECORRUPT)
		goto close;
	if (rc != 0) {
		rc = -rc;
		goto fail;
	}
	rc = open_dbs(disk, why);
	if (rc == STRATA_ECORRUPT)
		goto close;
	if (rc != 0)
		goto fail;
	mdb_env_info(disk->env, &info);
	map = info.me_mapsize;
	disk->max_value = map / DISK_MAX_ENTRY_DIVISOR;
	map /= disk->page_size;
	disk->high_pages = map * DISK_HIGH_PERCENT / 100;
	disk->low_pages = map * DISK_LOW_PERCENT / 100;
	disk->full_extra_pages = map * DISK_FULL_EXTRA_PERCENT / 100;
	disk->run_pages = map * DISK_RUN_PERCENT / 100;
	if (disk->run_pages > DISK_RUN_MAX_PAGES)
		disk->run_pages = DISK_RUN_MAX_PAGES;
	return 0;
fail:
	if (unusable(rc)) {
		*why = mdb_strerror(rc);
		rc = STRATA_ECORRUPT;
		goto close;
	}
	strata_log_error("disk tier %s: cannot open the LMDB environment: "
			 "%s", disk->path, mdb_strerror(rc));
	rc = rc > 0 ? -rc : -EIO;
close:
	if (disk->env)
		mdb_env_close(disk->env);
	disk->env = NULL;
	return rc;
}

/* Rename `path` to "<path>.corrupt-<unix time>" (a "-N" suffix when that
 * exists already). */
static int move_aside(const char *path, const char *why)
{
	char *dst = NULL;
	long long now = (long long)time(NULL);
	int rc = 0;

	for (unsigned n = 0; n < 100; n++) {
		free(dst);
		if ((n ? asprintf(&dst, "%s.corrupt-%lld-%u", path, now, n)
		       : asprintf(&dst, "%s.corrupt-%lld", path, now)) < 0) {
			dst = NULL;
			rc = -ENOMEM;
			break;
		}
		if (rename(path, dst) == 0) {
			rc = 0;
			break;
		}
		rc = -errno;
		if (rc != -EEXIST && rc != -ENOTEMPTY)
			break;
	}
	if (rc == 0)
		strata_log_warn("disk tier %s: not usable (%s); moved it to %s "
				"and starting empty",
				path, why, dst);
	else
		strata_log_error("disk tier %s: not usable (%s) and cannot be "
				 "moved aside: %s",
				 path, why, strerror(-rc));
	free(dst);
	return rc;
}

static int check_config(const struct strata_disk_config *cfg)
{
	if (!cfg->path || !cfg->path[0]) {
		strata_log_error("disk tier: no path (set a directory)");
		return -EINVAL;
	}
	if (cfg->size < STRATA_DISK_MIN_SIZE) {
		strata_log_error("disk tier %s: size %" PRIu64 " is below the "
				 "minimum of %u bytes",
				 cfg->path, cfg->size, STRATA_DISK_MIN_SIZE);
		return -EINVAL;
	}
	if (cfg->size > SIZE_MAX / 2 || cfg->queue_limit == 0 ||
	    cfg->queue_limit > SIZE_MAX / sizeof(struct disk_op)) {
		strata_log_error("disk tier %s: size or queue limit out of "
				 "range", cfg->path);
		return -EINVAL;
	}
	return 0;
}

/* A copy of the path without trailing slashes (so that "<path>.corrupt-"
 * names a sibling). */
static char *normalize_path(const char *path)
{
	char *copy = strdup(path);
	size_t len;

	if (!copy)
		return NULL;
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	return copy;
}

static int start_writer(struct strata_disk *disk)
{
	pthread_condattr_t attr;
	int rc;

	rc = pthread_condattr_init(&attr);
	if (rc != 0)
		return -rc;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_mutex_init(&disk->lock, NULL);
	pthread_cond_init(&disk->work_cv, &attr);
	pthread_cond_init(&disk->done_cv, NULL);
	pthread_condattr_destroy(&attr);
	rc = pthread_create(&disk->writer, NULL, writer_main, disk);
	if (rc != 0) {
		pthread_cond_destroy(&disk->done_cv);
		pthread_cond_destroy(&disk->work_cv);
		pthread_mutex_destroy(&disk->lock);
		return -rc;
	}
	return 0;
}

static void free_disk(struct strata_disk *disk)
{
	if (disk->env)
		mdb_env_close(disk->env);
	free(disk->batch);
	free(disk->ring);
	free(disk->path);
	free(disk);
}

int strata_disk_open(const struct strata_disk_config *cfg,
		     struct strata_disk **out)
{
	struct strata_disk *disk;
	const char *why = "unknown";
	int rc;

	*out = NULL;
	rc = check_config(cfg);
	if (rc != 0)
		return rc;
	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return -ENOMEM;
	disk->magic = DISK_MAGIC;
	disk->path = normalize_path(cfg->path);
	disk->ring_cap = cfg->queue_limit;
	disk->ring = calloc(disk->ring_cap, sizeof(*disk->ring));
	disk->batch = calloc(DISK_BATCH_MAX, sizeof(*disk->batch));
	if (!disk->path || !disk->ring || !disk->batch) {
		rc = -ENOMEM;
		goto fail;
	}

	rc = prepare_dir(disk->path);
	if (rc != 0)
		goto fail;
	rc = open_env(disk, cfg, &why);
	if (rc == STRATA_ECORRUPT) {
		if (cfg->on_corrupt == STRATA_DISK_CORRUPT_FAIL) {
			strata_log_error("disk tier %s: not usable (%s); "
					 "refusing to start (move it away, or "
					 "set on_corrupt to move)",
					 disk->path, why);
			goto fail;
		}
		rc = move_aside(disk->path, why);
		if (rc == 0)
			rc = prepare_dir(disk->path);
		if (rc == 0)
			rc = open_env(disk, cfg, &why);
		if (rc == STRATA_ECORRUPT)
			strata_log_error("disk tier %s: a fresh environment "
					 "is not usable either (%s)",
					 disk->path, why);
	}
	if (rc != 0)
		goto fail;

	/* Relaxed: only uniqueness matters. */
	disk->id = atomic_fetch_add_explicit(&next_disk_id, 1,
					     memory_order_relaxed);
	rc = start_writer(disk);
	if (rc != 0)
		goto fail;
	*out = disk;
	return 0;
fail:
	free_disk(disk);
	return rc;
}

void strata_disk_close(struct strata_disk **diskp)
{
	struct strata_disk *disk;

	if (!diskp || !*diskp)
		return;
	disk = *diskp;
	*diskp = NULL;
	STRATA_ASSERT(disk->magic == DISK_MAGIC);

	pthread_mutex_lock(&disk->lock);
	disk->stopping = true;
	pthread_cond_signal(&disk->work_cv);
	pthread_mutex_unlock(&disk->lock);
	pthread_join(disk->writer, NULL);

	readers_close(disk);
	/* A clean stop is durable whatever the sync mode. */
	mdb_env_sync(disk->env, 1);
	pthread_cond_destroy(&disk->done_cv);
	pthread_cond_destroy(&disk->work_cv);
	pthread_mutex_destroy(&disk->lock);
	disk->magic = 0;
	free_disk(disk);
}

/* --- reading -------------------------------------------------------------- */

static int lookup(struct strata_disk *disk, const struct strata_key *key,
		  const char *key_text, size_t key_len, int64_t now,
		  bool stale_ok, struct strata_entry **out);

int strata_disk_lookup(struct strata_disk *disk, const struct strata_key *key,
		       const char *key_text, size_t key_len, int64_t now,
		       struct strata_entry **out)
{
	return lookup(disk, key, key_text, key_len, now, false, out);
}

int strata_disk_lookup_kept(struct strata_disk *disk,
			    const struct strata_key *key,
			    const char *key_text, size_t key_len, int64_t now,
			    struct strata_entry **out)
{
	return lookup(disk, key, key_text, key_len, now, true, out);
}

static int lookup(struct strata_disk *disk, const struct strata_key *key,
		  const char *key_text, size_t key_len, int64_t now,
		  bool stale_ok, struct strata_entry **out)
{
	MDB_val k = { STRATA_KEY_HASH_LEN, (void *)key->hash }, v;
	struct disk_reader *reader;
	struct strata_entry *e = NULL;
	struct disk_op drop;
	int rc = STRATA_EMISS, mrc, drc = 0;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	*out = NULL;
	reader = reader_for(disk);
	if (!reader || mdb_txn_renew(reader->txn) != 0)
		goto out;
	mrc = mdb_get(reader->txn, disk->dbi_entries, &k, &v);
	if (mrc == 0)
		drc = strata_entry_decode(v.mv_data, v.mv_size, &e);
	/* Decoding copied everything: nothing points into the map now. */
	mdb_txn_reset(reader->txn);
	if (mrc != 0 || drc == -ENOMEM)
		goto out;
	if (drc != 0 || !strata_key_equal(&e->key, key)) {
		count(&disk->corrupt, 1);
		drop = (struct disk_op){ .type = DISK_OP_DROP_CORRUPT,
					 .key = *key };
		enqueue(disk, &drop);
		goto out;
	}
	/* Same hash, other text: a collision costs a miss. */
	if (e->key_len != key_len || memcmp(e->key_text, key_text, key_len))
		goto out;
	if (stale_ok ? now >= e->keep_until : !strata_entry_fresh(e, now))
		goto out;
	*out = e;
	e = NULL;
	rc = 0;
out:
	strata_entry_release(&e);
	count(rc == 0 ? &disk->hits : &disk->misses, 1);
	return rc;
}

int strata_disk_peek(struct strata_disk *disk, const struct strata_key *key,
		     struct strata_entry **out)
{
	MDB_val k = { STRATA_KEY_HASH_LEN, (void *)key->hash }, v;
	MDB_txn *txn = NULL;
	int rc;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	*out = NULL;
	/* Its own short transaction: inspection is rare, and the caller's
	 * thread need not be one that serves lookups. */
	if (mdb_txn_begin(disk->env, NULL, MDB_RDONLY, &txn) != 0)
		return STRATA_EMISS;
	rc = mdb_get(txn, disk->dbi_entries, &k, &v);
	if (rc == 0 && (strata_entry_decode(v.mv_data, v.mv_size, out) != 0 ||
			!strata_key_equal(&(*out)->key, key)))
		strata_entry_release(out);
	mdb_txn_abort(txn);
	return *out != NULL ? 0 : STRATA_EMISS;
}

long strata_disk_scan_prefix(struct strata_disk *disk, const char *prefix,
			     size_t limit, strata_disk_key_fn fn, void *arg)
{
	return strata_disk_scan_after(disk, prefix, NULL, limit, fn, arg);
}

/* Whether text (len bytes) sorts after `after` (NUL-terminated). */
static bool sorts_after(const char *text, size_t len, const char *after)
{
	size_t alen = strlen(after);
	int c = memcmp(text, after, len < alen ? len : alen);

	return c > 0 || (c == 0 && len > alen);
}

long strata_disk_scan_after(struct strata_disk *disk, const char *prefix,
			    const char *after, size_t limit,
			    strata_disk_key_fn fn, void *arg)
{
	size_t plen = strlen(prefix), seek, len, cap = 0;
	const char *from = prefix;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v, ek, ev;
	MDB_cursor_op op = MDB_SET_RANGE;
	struct strata_key key;
	const char *text;
	char *buf = NULL, *grown;
	long visited = 0;
	int rc;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	/* Its own transaction, not the thread's lookup one: `fn` may look
	 * entries up. */
	rc = mdb_txn_begin(disk->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0)
		rc = mdb_cursor_open(txn, disk->dbi_keys, &cur);
	if (rc != 0)
		goto out;
	/* Start at the later of the prefix and `after`: the index is in
	 * key-text order (see the header for texts past the inline bytes). */
	if (after != NULL && strcmp(after, prefix) > 0)
		from = after;
	seek = strlen(from) < DISK_KEY_INLINE_MAX ? strlen(from)
						  : DISK_KEY_INLINE_MAX;
	k = (MDB_val){ seek, (void *)from };
	if (seek == 0)
		op = MDB_FIRST; /* LMDB refuses an empty key */
	seek = plen < DISK_KEY_INLINE_MAX ? plen : DISK_KEY_INLINE_MAX;
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < seek || memcmp(k.mv_data, prefix, seek))
			break; /* past the range */
		if (v.mv_size < STRATA_KEY_HASH_LEN)
			continue;
		if (v.mv_size > STRATA_KEY_HASH_LEN) {
			text = (const char *)v.mv_data + STRATA_KEY_HASH_LEN;
			len = v.mv_size - STRATA_KEY_HASH_LEN;
		} else {
			text = k.mv_data;
			len = k.mv_size;
		}
		/* Long texts share the seek bytes but may differ after. */
		if (len < plen || memcmp(text, prefix, plen))
			continue;
		if (after != NULL && !sorts_after(text, len, after))
			continue;
		memcpy(key.hash, v.mv_data, STRATA_KEY_HASH_LEN);
		/* Skip a record left by an entry removed as corrupt. */
		ek = (MDB_val){ STRATA_KEY_HASH_LEN, key.hash };
		if (mdb_get(txn, disk->dbi_entries, &ek, &ev) != 0)
			continue;
		if (len + 1 > cap) {
			grown = realloc(buf, len + 1);
			if (!grown) {
				rc = ENOMEM;
				goto out;
			}
			buf = grown;
			cap = len + 1;
		}
		memcpy(buf, text, len);
		buf[len] = '\0';
		visited++;
		if (fn(arg, buf, len, &key) != 0 ||
		    (limit && (size_t)visited >= limit)) {
			rc = MDB_NOTFOUND;
			break;
		}
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	free(buf);
	return rc == 0 ? visited : disk_err(rc);
}

long strata_disk_scan_tag(struct strata_disk *disk, const char *tag,
			  size_t limit, strata_disk_key_fn fn, void *arg)
{
	uint8_t seek[DISK_KEY_MAX];
	size_t seek_len;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v, ek, ev;
	struct strata_key key;
	long visited = 0;
	int rc;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	STRATA_ASSERT(tag != NULL && fn != NULL);
	seek_len = tag_prefix(tag, strlen(tag), seek);
	/* Its own transaction, as for scan_prefix: `fn` may look up. */
	rc = mdb_txn_begin(disk->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0)
		rc = mdb_cursor_open(txn, disk->dbi_tags, &cur);
	if (rc != 0)
		goto out;
	k = (MDB_val){ seek_len, seek };
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < seek_len || memcmp(k.mv_data, seek, seek_len))
			break; /* past the tag */
		/* Same tag part, other kind of key (see tag_key()). */
		if (k.mv_size != seek_len + STRATA_KEY_HASH_LEN)
			continue;
		memcpy(key.hash, (const uint8_t *)k.mv_data + seek_len,
		       STRATA_KEY_HASH_LEN);
		/* Skip a record left by an entry removed as corrupt. */
		ek = (MDB_val){ STRATA_KEY_HASH_LEN, key.hash };
		if (mdb_get(txn, disk->dbi_entries, &ek, &ev) != 0)
			continue;
		visited++;
		if (fn(arg, NULL, 0, &key) != 0 ||
		    (limit && (size_t)visited >= limit)) {
			rc = MDB_NOTFOUND;
			break;
		}
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	return rc == 0 ? visited : disk_err(rc);
}

/* A meta record name other modules may use: see disk.h. */
static bool meta_name_ok(const char *name, size_t *len)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strnlen(name, STRATA_DISK_META_NAME_MAX + 1);
	if (n == 0 || n > STRATA_DISK_META_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] > '~')
			return false;
	if (strcmp(name, DISK_FORMAT_KEY) == 0 ||
	    strcmp(name, DISK_RECLAIM_KEY) == 0)
		return false;
	*len = n;
	return true;
}

int strata_disk_meta_get(struct strata_disk *disk, const char *name,
			 void *buf, size_t cap, size_t *len)
{
	MDB_txn *txn = NULL;
	MDB_val k, v;
	size_t name_len;
	int rc;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	if (len)
		*len = 0;
	if (!meta_name_ok(name, &name_len) || (cap && !buf)) {
		rc = -EINVAL;
		goto out;
	}
	rc = mdb_txn_begin(disk->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		txn = NULL;
		rc = disk_err(rc);
		goto out;
	}
	k = (MDB_val){ name_len, (void *)name };
	rc = mdb_get(txn, disk->dbi_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = STRATA_EMISS;
		goto out;
	}
	if (rc != 0) {
		rc = disk_err(rc);
		goto out;
	}
	if (len)
		*len = v.mv_size;
	if (v.mv_size > cap) {
		rc = -ENOSPC;
		goto out;
	}
	if (v.mv_size)
		memcpy(buf, v.mv_data, v.mv_size);
	rc = 0;
out:
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

void strata_disk_stats(struct strata_disk *disk,
		       struct strata_disk_stats *out)
{
	MDB_envinfo info;
	MDB_txn *txn = NULL;
	MDB_stat st;
	size_t used;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	memset(out, 0, sizeof(*out));
	out->hits = counted(&disk->hits);
	out->misses = counted(&disk->misses);
	out->stores = counted(&disk->stores);
	out->dropped = counted(&disk->dropped);
	out->evictions = counted(&disk->evictions);
	out->expired = counted(&disk->expired);
	out->corrupt = counted(&disk->corrupt);
	if (mdb_env_info(disk->env, &info) == 0)
		out->size = info.me_mapsize;
	/* From the B-tree headers: no scan, whatever the entry count. */
	if (mdb_txn_begin(disk->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	if (mdb_stat(txn, disk->dbi_entries, &st) == 0)
		out->entries = st.ms_entries;
	if (used_pages(disk, txn, &used) == 0)
		out->bytes_used = (uint64_t)used * disk->page_size;
	mdb_txn_abort(txn);
}

/* --- writing (enqueue only) ----------------------------------------------- */

int strata_disk_store(struct strata_disk *disk, struct strata_entry *e)
{
	struct disk_op op = { .type = DISK_OP_PUT };
	int rc;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	STRATA_ASSERT(e && e->magic == STRATA_ENTRY_MAGIC);
	op.entry = strata_entry_ref(e);
	rc = enqueue(disk, &op);
	if (rc != 0)
		strata_entry_release(&op.entry);
	return rc;
}

int strata_disk_remove(struct strata_disk *disk, const struct strata_key *key)
{
	struct disk_op op = { .type = DISK_OP_DEL, .key = *key };

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	return enqueue(disk, &op);
}

int strata_disk_clear(struct strata_disk *disk)
{
	struct disk_op op = { .type = DISK_OP_CLEAR };

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	return enqueue(disk, &op);
}

int strata_disk_meta_put(struct strata_disk *disk, const char *name,
			 const void *value, size_t len)
{
	struct disk_op op = { .type = DISK_OP_META_PUT };
	size_t name_len;
	int rc;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	if (!meta_name_ok(name, &name_len) ||
	    len > STRATA_DISK_META_VALUE_MAX || (len && !value))
		return -EINVAL;
	op.meta = malloc(name_len + len);
	if (!op.meta)
		return -ENOMEM;
	memcpy(op.meta, name, name_len);
	if (len)
		memcpy(op.meta + name_len, value, len);
	op.meta_name_len = name_len;
	op.meta_value_len = len;
	rc = enqueue(disk, &op);
	if (rc != 0)
		free(op.meta);
	return rc;
}

int strata_disk_flush(struct strata_disk *disk)
{
	uint64_t target, first;
	int rc = 0;

	STRATA_ASSERT(disk && disk->magic == DISK_MAGIC);
	pthread_mutex_lock(&disk->lock);
	target = disk->enqueued;
	/* Report a batch that failed from the first operation this thread
	 * queued since its last flush, or else from the first one not
	 * committed yet.  failed_seq is the last failure's last operation;
	 * batches complete in order, so it is the greatest. */
	first = disk->committed + 1;
	if (flush_mark.disk_id == disk->id && flush_mark.first != 0 &&
	    flush_mark.first < first)
		first = flush_mark.first;
	while (disk->committed < target)
		pthread_cond_wait(&disk->done_cv, &disk->lock);
	if (disk->failed_seq >= first)
		rc = disk->failed_err;
	pthread_mutex_unlock(&disk->lock);
	if (flush_mark.disk_id == disk->id)
		flush_mark.first = 0;
	return rc;
}
