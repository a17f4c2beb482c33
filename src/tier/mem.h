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
 * registration (the module registers threads itself).
 */
#ifndef STRATA_TIER_MEM_H
#define STRATA_TIER_MEM_H

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

/* A consistent-enough snapshot of the counters (relaxed reads). */
void strata_mem_stats(struct strata_mem *mem, struct strata_mem_stats *out);

#endif /* STRATA_TIER_MEM_H */
