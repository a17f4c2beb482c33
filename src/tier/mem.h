/*
 * mem.h: tier 1, the in-memory cache.
 *
 * A byte-bounded map from key hash to entry, shared by every thread.
 * Lookups are lock-free and copy nothing: they find the entry in a
 * liburcu lock-free hash table (cds_lfht) under an RCU read-side critical
 * section, take a reference (atomic increment) and set a recency mark
 * (atomic store), and return the entry itself.  Stores and evictions
 * serialise on a lock; removed entries are released after an RCU grace
 * period (call_rcu), so a concurrent reader never sees freed memory.
 * See mem.c's Concurrency comment for the full argument.
 *
 * Budget: the sum of the entries' `charge` stays within `budget` bytes;
 * when a store would exceed it, the approximate-LRU policy evicts first.
 * An entry whose charge alone exceeds the budget is not stored.
 *
 * Threads: any thread may call any function; callers need no RCU
 * registration (core/rcu.h registers each thread on its first call).
 */
#ifndef STRATA_TIER_MEM_H
#define STRATA_TIER_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/entry.h"
#include "cache/key.h"

struct strata_mem;

struct strata_mem_stats {
	uint64_t entries;
	uint64_t bytes;            /* sum of charges */
	uint64_t budget;
	uint64_t hits;
	uint64_t misses;
	uint64_t stores;
	uint64_t evictions;        /* removed to make room */
	uint64_t expired;          /* removed because keep_until passed */
};

/* Create a tier with a byte budget.  Returns 0 or -ENOMEM. */
int strata_mem_new(uint64_t budget, struct strata_mem **out);

/* Free the tier and every entry reference it holds; *mem = NULL.  No
 * other thread may use the tier any more. */
void strata_mem_free(struct strata_mem **mem);

/*
 * Look up `key`.  On a hit (same hash, same key text, fresh at `now`)
 * stores a new reference in *out (release with strata_entry_release) and
 * returns 0; otherwise sets *out to NULL and returns STRATA_EMISS.
 * Lock-free and never waits; an entry found past its keep_until is
 * removed when the writer lock happens to be free (trylock).
 */
int strata_mem_lookup(struct strata_mem *mem, const struct strata_key *key,
		      const char *key_text, size_t key_len, int64_t now,
		      struct strata_entry **out);

/*
 * As strata_mem_lookup(), but a stale entry still kept (now < keep_until)
 * is returned too: the caller decides whether it may serve it (stale
 * windows) or revalidate it.  Counted like a lookup.
 */
int strata_mem_lookup_kept(struct strata_mem *mem,
			   const struct strata_key *key, const char *key_text,
			   size_t key_len, int64_t now,
			   struct strata_entry **out);

/*
 * The entry under `key` (by hash alone), fresh or not, without counting a
 * hit or a miss or marking it recently used: for inspection (the admin
 * API).  Returns 0 with a new reference in *out, or STRATA_EMISS.
 * Lock-free, like lookup.
 */
int strata_mem_peek(struct strata_mem *mem, const struct strata_key *key,
		    struct strata_entry **out);

/*
 * Store `e` (the tier takes its own reference; the caller keeps theirs),
 * replacing any entry under the same hash.  Evicts to stay within budget
 * (before inserting, so the budget holds at every instant).  Returns 0,
 * STRATA_ETOOBIG when the entry alone exceeds the budget (nothing is
 * stored or removed), or -ENOMEM.  Takes the tier's writer lock.
 */
int strata_mem_store(struct strata_mem *mem, struct strata_entry *e);

/* Remove the entry under `key` (by hash alone, whatever its key text), if
 * any.  Returns 0 or STRATA_EMISS.  Takes the tier's writer lock. */
int strata_mem_remove(struct strata_mem *mem, const struct strata_key *key);

/* Remove everything.  Returns the number of entries removed.  Readers
 * holding references keep their entries. */
uint64_t strata_mem_clear(struct strata_mem *mem);

/*
 * Remove every entry for which `match_fn(e, arg)` returns true; returns
 * how many were removed.  Purging by tag or by key-text prefix is built on
 * this.
 *
 * Runs under the tier's writer lock for the whole walk (one call of
 * `match_fn` per entry, in no particular order), so stores, removals and
 * other purges wait for it; lookups do not: they stay lock-free
 * throughout, and a reader that already holds a reference to a purged
 * entry keeps it (entries are released after an RCU grace period, as for
 * strata_mem_remove()).  Each removal takes effect at once: a lookup that
 * starts after `match_fn` matched an entry misses it.  The budget, `bytes`
 * and `entries` are adjusted per removal; `evictions` and `expired` are
 * not (a purge is neither).
 *
 * `match_fn` gets a borrowed entry, valid only during the call; it must
 * not keep the pointer (it may strata_entry_ref() it), must not call into
 * this tier (the writer lock is held: a store or removal would deadlock)
 * and should be quick (a few string comparisons: writers wait).
 */
uint64_t strata_mem_purge_if(struct strata_mem *mem,
			     bool (*match_fn)(const struct strata_entry *e,
					      void *arg),
			     void *arg);

/*
 * Call `fn(e, arg)` for the entries in the tier, in no particular order,
 * until it returns false; returns the number of calls made (including the
 * one that returned false).  For listing, counting, or collecting
 * references to act on afterwards.
 *
 * Takes no lock: it walks the lock-free table inside one RCU read-side
 * section, so it runs alongside lookups, stores and removals.  An entry
 * present for the whole walk is visited exactly once; one stored, replaced
 * or removed during the walk may or may not be visited (a replaced entry
 * in its old or its new version, never both).  Entries are visited
 * whether fresh or not: `fn` sees expires and keep_until and may judge.
 *
 * Rules for `fn`:
 * - `e` is borrowed and stays valid during the call even if a writer
 *   removes it meanwhile (the tier's reference is released only after the
 *   read-side section ends).  To use it after the call, take a reference
 *   with strata_entry_ref() (safe here because the tier's reference is
 *   still held) and release it later with strata_entry_release().
 * - It may call strata_mem_lookup() and strata_mem_stats() on this tier.
 *   It must not call strata_mem_store(), _remove(), _clear(), _purge_if()
 *   or _free(): they take the writer lock, whose order is "writer lock,
 *   then read-side section" (docs/concurrency.md); collect references and
 *   act on them after foreach returns.
 * - It should be quick and must not block: while the walk lasts no grace
 *   period can end, so memory of entries removed meanwhile is not
 *   reclaimed until it returns.
 */
size_t strata_mem_foreach(struct strata_mem *mem,
			  bool (*fn)(struct strata_entry *e, void *arg),
			  void *arg);

/* A consistent-enough snapshot of the counters (relaxed reads). */
void strata_mem_stats(struct strata_mem *mem, struct strata_mem_stats *out);

#endif /* STRATA_TIER_MEM_H */
