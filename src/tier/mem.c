/*
 * mem.c: tier 1, the in-memory cache.
 *
 * A liburcu lock-free hash table (cds_lfht) maps the key hash to a node
 * that holds one reference to an entry.  Hits are served straight from
 * the table: no lock, no copy, one atomic increment (the caller's
 * reference).  Writers (store, remove, clear, eviction) take one mutex,
 * update the table with liburcu's lock-free primitives so that readers
 * never wait, and hand removed nodes to call_rcu, which frees them and
 * drops their entry reference after a grace period.  The byte budget is
 * kept by CLOCK, an approximation of LRU described below.
 *
 * Concurrency:
 *
 *   Invariants (at every point where mem->lock is free):
 *   - every node in the table is on the clock ring and vice versa;
 *   - mem->bytes is the sum of the charges of those nodes, <= budget;
 *   - each such node holds exactly one reference to its entry;
 *   - the table holds at most one node per 16-byte key hash (every
 *     insertion is an add_replace under the lock).
 *
 *   Who writes what:
 *   - node->entry: the storing writer, once, before the node is
 *     published; immutable afterwards until the node is freed.
 *   - node->referenced (the CLOCK bit): readers set it on a hit (relaxed),
 *     the clock hand clears it (relaxed, under mem->lock).  A lost update
 *     either way only misjudges recency once; see the essay.
 *   - node->prev/next/charge, mem->hand: writers only, under mem->lock.
 *   - mem->bytes, mem->entries, stores, evictions, expired: writers only,
 *     under mem->lock; atomics only so that strata_mem_stats() can read
 *     them without the lock (relaxed: a snapshot may be a little stale
 *     and the fields may disagree with each other by one store).
 *   - hit and miss counters: every reader, relaxed fetch_add into one of
 *     MEM_STRIPES cache-line-sized stripes chosen per thread, so hits on
 *     different cores do not bounce one shared line; they order nothing.
 *
 *   Lock-free: strata_mem_lookup() (rcu_read_lock, cds_lfht_lookup, a
 *   relaxed load and maybe a relaxed store of the CLOCK bit, an atomic
 *   increment of the entry's refcount).  The one exception is the lazy
 *   removal of an entry past keep_until, which only pthread_mutex_trylock()s
 *   and gives up when a writer holds the lock: a lookup never waits.
 *   strata_mem_foreach() is lock-free too: one read-side section around
 *   a cds_lfht_first/next walk, the same acquire loads of node->entry as a
 *   lookup, and whatever references its callback takes (safe for the same
 *   reason as a lookup's: see Reclamation).
 *   Everything else takes mem->lock (one lock for the whole tier: stores
 *   follow an upstream fetch, so they are rare next to hits and far
 *   slower than the critical section; sharding would split the budget and
 *   the clock for no measurable gain).  Lock order: mem->lock, then an
 *   RCU read-side section; mem->lock is a leaf (docs/concurrency.md).
 *   Nothing waits for a grace period (rcu_barrier) while holding
 *   mem->lock or inside a read-side section, so a reader's trylock
 *   inside its section cannot deadlock with a writer.
 *
 *   Linearization points: a store at its cds_lfht_add_replace (the old
 *   and the new node are never both invisible: liburcu guarantees a
 *   concurrent lookup finds exactly one of them); a removal or eviction
 *   at its cds_lfht_del; a lookup when cds_lfht_lookup reads the node.  A
 *   lookup may therefore return an entry that a writer removes a moment
 *   later; that is a hit that linearizes before the removal.  A purge is
 *   not one atomic step: each entry it removes linearizes at its own
 *   cds_lfht_del, so a concurrent lookup may miss one purged entry and
 *   hit another not yet reached.  Stores wait for the whole purge (it
 *   holds mem->lock), so no entry stored after strata_mem_purge_if()
 *   returns is judged by it, and none stored before it began escapes it.
 *
 *   Reclamation: a writer that unlinks a node calls call_rcu; the
 *   callback runs after every read-side section that might have seen the
 *   node has ended, and only then frees it and releases its entry
 *   reference.  That is what makes the reader's unlocked
 *   strata_entry_ref() safe: inside rcu_read_lock the tier's own
 *   reference is still held, so the count is >= 1 and can never be
 *   revived from zero.  A reader that needs the entry past its read-side
 *   section holds its own reference.  strata_mem_free() waits for every
 *   pending callback (rcu_barrier) before it returns.
 *
 *   RCU flavour: urcu-memb, through core/rcu.h, which registers threads
 *   lazily and makes grace periods visible to ThreadSanitizer; a whole
 *   hit (lookup and release, one thread) is about 25 ns, of which the
 *   read lock and unlock are 8 ns.
 */
#include "config.h"

#include "tier/mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "core/log.h"
#include "core/rcu.h"
#include "strata/strata.h"

#define MEM_MAGIC 0x4d454d31u  /* "MEM1" */
#define NODE_MAGIC 0x4d4e4f44u /* "MNOD" */

/* Hit and miss counter stripes; a power of two, a few per core. */
#define MEM_STRIPES 16
#define CACHE_LINE 64

/* Initial (and minimum) hash buckets; the table grows on its own. */
#define MEM_BUCKETS 1024

struct mem_node {
	struct cds_lfht_node lfht;     /* linked and read by liburcu */
	uint32_t magic;
	atomic_bool referenced;        /* CLOCK bit: see Concurrency */
	/* Set once before publication; the release store pairs with the
	 * acquire loads in match_key() and strata_mem_lookup(). */
	_Atomic(struct strata_entry *) entry;
	/* Writers only, under mem->lock. */
	struct mem_node *prev, *next;  /* the clock ring */
	size_t charge;
	struct rcu_head rcu;           /* for call_rcu */
};

struct mem_stripe {
	_Alignas(CACHE_LINE) _Atomic uint64_t hits;
	_Atomic uint64_t misses;
};

struct strata_mem {
	/* Read by every lookup, never written after strata_mem_new(). */
	uint32_t magic;
	uint64_t budget;
	struct cds_lfht *ht;
	/* Writers' state, on its own cache line so that stores do not
	 * evict the read-mostly fields above from the readers' caches. */
	_Alignas(CACHE_LINE) pthread_mutex_t lock; /* serialises writers */
	struct mem_node *hand;         /* under lock: next node the clock visits */
	_Atomic uint64_t bytes;        /* written under lock */
	_Atomic uint64_t entries;      /* written under lock */
	_Atomic uint64_t stores;       /* written under lock */
	_Atomic uint64_t evictions;    /* written under lock */
	_Atomic uint64_t expired;      /* written under lock */
	struct mem_stripe stripe[MEM_STRIPES];
};

/* --- RCU and stripes --------------------------------------------------- */

static _Thread_local bool stripe_done;
static _Thread_local unsigned reg_stripe;
/* Relaxed: only spreads threads over stripes; orders nothing. */
static atomic_uint reg_next_stripe;

/* Register the calling thread with RCU and give it a counter stripe on
 * its first call into the module. */
static inline void ensure_registered(void)
{
	if (__builtin_expect(stripe_done, 1))
		return;
	strata_rcu_register();
	reg_stripe = atomic_fetch_add_explicit(&reg_next_stripe, 1,
					       memory_order_relaxed) %
		     MEM_STRIPES;
	stripe_done = true;
}

static inline void read_lock(void)
{
	strata_rcu_read_lock();
}

static inline void read_unlock(void)
{
	strata_rcu_read_unlock();
}

/* --- the table ------------------------------------------------------------ */

/* cds_lfht takes an unsigned long; the key hash is already uniform. */
static inline unsigned long table_hash(const struct strata_key *key)
{
	uint64_t h;

	memcpy(&h, key->hash, sizeof(h));
	return (unsigned long)h;
}

/* Called by liburcu inside a read-side section, on published nodes. */
static int match_key(struct cds_lfht_node *lfht, const void *arg)
{
	const struct mem_node *node =
		caa_container_of(lfht, struct mem_node, lfht);
	/* Acquire: pairs with the release store in strata_mem_store(). */
	const struct strata_entry *e =
		atomic_load_explicit(&node->entry, memory_order_acquire);

	return strata_key_equal(&e->key, arg);
}

static void free_node_cb(struct rcu_head *head)
{
	struct mem_node *node = caa_container_of(head, struct mem_node, rcu);
	struct strata_entry *e;

	strata_rcu_grace_acquire(); /* pairs with every read_unlock() */
	STRATA_ASSERT(node->magic == NODE_MAGIC);
	/* Relaxed: the grace period ordered the store before us. */
	e = atomic_load_explicit(&node->entry, memory_order_relaxed);
	strata_entry_release(&e);
	node->magic = 0;
	free(node);
}

/* --- the clock ring (writers, under mem->lock) ------------------------- */

/* Insert just behind the hand: a new node is the last one the hand will
 * visit, so it gets a whole revolution to be hit before it is judged. */
static void ring_insert_locked(struct strata_mem *mem, struct mem_node *node)
{
	struct mem_node *hand = mem->hand;

	if (hand == NULL) {
		node->prev = node->next = node;
		mem->hand = node;
		return;
	}
	node->next = hand;
	node->prev = hand->prev;
	hand->prev->next = node;
	hand->prev = node;
}

static void ring_unlink_locked(struct strata_mem *mem, struct mem_node *node)
{
	if (node->next == node) {
		mem->hand = NULL;
	} else {
		node->prev->next = node->next;
		node->next->prev = node->prev;
		if (mem->hand == node)
			mem->hand = node->next;
	}
	node->prev = node->next = NULL;
}

/* Add to a counter that only writers change: a relaxed load and store
 * suffice because mem->lock orders the writers, and strata_mem_stats()
 * tolerates a stale value. */
static inline void add_locked(_Atomic uint64_t *counter, int64_t delta)
{
	atomic_store_explicit(counter,
			      atomic_load_explicit(counter,
						   memory_order_relaxed) +
				      (uint64_t)delta,
			      memory_order_relaxed);
}

/* Take an unpublished node off the ring and the books, and free it after
 * a grace period.  Caller holds mem->lock, inside a read-side section. */
static void retire_locked(struct strata_mem *mem, struct mem_node *node)
{
	ring_unlink_locked(mem, node);
	add_locked(&mem->bytes, -(int64_t)node->charge);
	add_locked(&mem->entries, -1);
	urcu_memb_call_rcu(&node->rcu, free_node_cb);
}

/* Unpublish a node and retire it.  Caller holds mem->lock and is inside
 * a read-side section (cds_lfht_del requires it). */
static void remove_locked(struct strata_mem *mem, struct mem_node *node)
{
	int rc = cds_lfht_del(mem->ht, &node->lfht);

	STRATA_ASSERT(rc == 0); /* only lock holders delete */
	retire_locked(mem, node);
}

/*
 * Eviction: CLOCK, an approximation of LRU.
 *
 * True LRU keeps every entry on a list in order of last use and evicts
 * the tail; every hit must move its entry to the head, which is a write
 * to shared list pointers under a lock: exactly what a lock-free hit
 * cannot afford.  CLOCK replaces the list order with one bit per entry.
 * A hit sets the entry's bit (a relaxed store, and only when the bit is
 * clear, so a hot entry's cache line is not dirtied on every hit).  The
 * entries sit on a ring in insertion order with a hand; to make room the
 * hand moves forward: an entry whose bit is set loses the bit and is
 * passed over (a "second chance"), the first entry whose bit is clear is
 * evicted.  An entry survives a revolution of the hand iff it was hit
 * since the hand last passed it, so the victim is always an entry not
 * used for at least one revolution: the least recently used entries are
 * evicted first at the granularity of one revolution.
 *
 * What it gets wrong, knowingly:
 * - Recency is one bit: among the entries not hit during the last
 *   revolution, the victim is whichever the hand reaches first (insertion
 *   order), not the one idle longest; an entry hit a thousand times and
 *   one hit once are equal.  Frequency is not considered at all (no LFU).
 * - A burst of stores can make the hand sweep faster than hot entries are
 *   hit, and then a hot entry is evicted; under light write load
 *   revolutions are slow and even lukewarm entries survive.
 * - Bits are set and cleared with relaxed atomics and no RMW: a hit that
 *   races with the hand clearing the same bit may be forgotten (one lost
 *   second chance).  Tolerated: it misjudges recency once, never
 *   correctness.
 * - Sizes are ignored: one large cold entry and one small one are equal
 *   candidates, so several small entries may go to make room for a large
 *   one when a single larger victim would have sufficed.
 * - When every entry is hit continuously the hand could circle forever;
 *   after two full revolutions without a victim it evicts the entry under
 *   it regardless.
 * - Entries past keep_until are not swept by the hand (a store has no
 *   `now`); they are removed when a lookup finds them or when the hand
 *   reaches them with their bit clear, which, never being hit, they have.
 */
static struct mem_node *clock_victim_locked(struct strata_mem *mem,
					    const struct mem_node *protect)
{
	uint64_t n = atomic_load_explicit(&mem->entries, memory_order_relaxed);
	uint64_t limit = 2 * n + 1;
	uint64_t steps = 0;
	struct mem_node *node;

	STRATA_ASSERT(n > (protect != NULL ? 1u : 0u));
	for (;;) {
		node = mem->hand;
		mem->hand = node->next;
		if (node == protect)
			continue;
		/* Relaxed: the bit orders nothing; pairs with no one.  Racing
		 * with a hit may lose that hit's mark (see above). */
		if (steps++ < limit &&
		    atomic_load_explicit(&node->referenced,
					 memory_order_relaxed)) {
			atomic_store_explicit(&node->referenced, false,
					      memory_order_relaxed);
			continue;
		}
		return node;
	}
}

/* --- the API ------------------------------------------------------------- */

int strata_mem_new(uint64_t budget, struct strata_mem **out)
{
	struct strata_mem *mem;
	int rc = -ENOMEM;

	*out = NULL;
	/* sizeof is a multiple of the struct's 64-byte alignment. */
	mem = aligned_alloc(_Alignof(struct strata_mem), sizeof(*mem));
	if (mem == NULL)
		goto out;
	memset(mem, 0, sizeof(*mem));
	mem->magic = MEM_MAGIC;
	mem->budget = budget;
	mem->ht = cds_lfht_new_flavor(MEM_BUCKETS, MEM_BUCKETS, 0,
				      CDS_LFHT_AUTO_RESIZE |
					      CDS_LFHT_ACCOUNTING,
				      &urcu_memb_flavor, NULL);
	if (mem->ht == NULL)
		goto out;
	rc = pthread_mutex_init(&mem->lock, NULL);
	if (rc != 0) {
		rc = -rc;
		goto out;
	}
	*out = mem;
	mem = NULL;
	rc = 0;
out:
	if (mem != NULL) {
		if (mem->ht != NULL)
			cds_lfht_destroy(mem->ht, NULL);
		free(mem);
	}
	return rc;
}

void strata_mem_free(struct strata_mem **memp)
{
	struct strata_mem *mem;
	int rc;

	if (memp == NULL || *memp == NULL)
		return;
	mem = *memp;
	*memp = NULL;
	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	ensure_registered();
	strata_mem_clear(mem);
	/* Every free_node_cb queued so far has run: each node is freed and
	 * each entry reference the tier held is released. */
	strata_rcu_barrier();
	rc = cds_lfht_destroy(mem->ht, NULL);
	STRATA_ASSERT(rc == 0);
	pthread_mutex_destroy(&mem->lock);
	mem->magic = 0;
	free(mem);
}

/* A lookup found `node` past keep_until.  Remove it if no writer is busy;
 * otherwise leave it to a later lookup or the clock.  Never waits. */
static void expire_lazily(struct strata_mem *mem, struct mem_node *node)
{
	if (pthread_mutex_trylock(&mem->lock) != 0)
		return;
	/* Under the lock nothing else deletes, so "not deleted" means still
	 * in the table and on the ring. */
	if (!cds_lfht_is_node_deleted(&node->lfht)) {
		remove_locked(mem, node);
		add_locked(&mem->expired, 1);
	}
	pthread_mutex_unlock(&mem->lock);
}

static int lookup(struct strata_mem *mem, const struct strata_key *key,
		  const char *key_text, size_t key_len, int64_t now,
		  bool stale_ok, struct strata_entry **out);

int strata_mem_lookup(struct strata_mem *mem, const struct strata_key *key,
		      const char *key_text, size_t key_len, int64_t now,
		      struct strata_entry **out)
{
	return lookup(mem, key, key_text, key_len, now, false, out);
}

int strata_mem_lookup_kept(struct strata_mem *mem,
			   const struct strata_key *key, const char *key_text,
			   size_t key_len, int64_t now,
			   struct strata_entry **out)
{
	return lookup(mem, key, key_text, key_len, now, true, out);
}

static int lookup(struct strata_mem *mem, const struct strata_key *key,
		  const char *key_text, size_t key_len, int64_t now,
		  bool stale_ok, struct strata_entry **out)
{
	struct mem_stripe *stripe;
	struct cds_lfht_iter iter;
	struct cds_lfht_node *lfht;
	struct mem_node *node;
	struct strata_entry *e;
	int rc = STRATA_EMISS;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	ensure_registered();
	*out = NULL;

	read_lock();
	cds_lfht_lookup(mem->ht, table_hash(key), match_key, key, &iter);
	lfht = cds_lfht_iter_get_node(&iter);
	if (lfht == NULL)
		goto out;
	node = caa_container_of(lfht, struct mem_node, lfht);
	/* Acquire: pairs with the release store in strata_mem_store(), so
	 * the entry's immutable fields are visible. */
	e = atomic_load_explicit(&node->entry, memory_order_acquire);

	/* Same hash, other text: a collision costs a miss. */
	if (e->key_len != key_len || memcmp(e->key_text, key_text, key_len))
		goto out;
	if (now >= e->keep_until) {
		expire_lazily(mem, node);
		goto out;
	}
	if (!stale_ok && !strata_entry_fresh(e, now))
		goto out;
	/* Relaxed: the CLOCK bit is a hint read by the hand under the lock;
	 * pairs with nothing.  Test first so hot entries stay clean. */
	if (!atomic_load_explicit(&node->referenced, memory_order_relaxed))
		atomic_store_explicit(&node->referenced, true,
				      memory_order_relaxed);
	/* Safe without a lock: the tier's reference is held until a grace
	 * period after removal, and we are inside a read-side section. */
	*out = strata_entry_ref(e);
	rc = 0;
out:
	read_unlock();
	stripe = &mem->stripe[reg_stripe];
	/* Relaxed: statistics; order nothing. */
	atomic_fetch_add_explicit(rc == 0 ? &stripe->hits : &stripe->misses,
				  1, memory_order_relaxed);
	return rc;
}

int strata_mem_peek(struct strata_mem *mem, const struct strata_key *key,
		    struct strata_entry **out)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *lfht;
	struct mem_node *node;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	ensure_registered();
	*out = NULL;
	read_lock();
	cds_lfht_lookup(mem->ht, table_hash(key), match_key, key, &iter);
	lfht = cds_lfht_iter_get_node(&iter);
	if (lfht != NULL) {
		node = caa_container_of(lfht, struct mem_node, lfht);
		/* Acquire and the unlocked reference: as in lookup. */
		*out = strata_entry_ref(atomic_load_explicit(
			&node->entry, memory_order_acquire));
	}
	read_unlock();
	return *out != NULL ? 0 : STRATA_EMISS;
}

int strata_mem_store(struct strata_mem *mem, struct strata_entry *e)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *lfht, *replaced;
	struct mem_node *node, *old = NULL, *victim;
	uint64_t old_charge = 0;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	STRATA_ASSERT(e != NULL && e->magic == STRATA_ENTRY_MAGIC);
	if (e->charge > mem->budget)
		return STRATA_ETOOBIG;
	ensure_registered();

	node = calloc(1, sizeof(*node));
	if (node == NULL)
		return -ENOMEM;
	node->magic = NODE_MAGIC;
	node->charge = e->charge;
	/* Release: publishes the entry to readers that acquire-load
	 * node->entry (liburcu's publication barrier also orders it; this
	 * says so to the compiler and to TSan). */
	atomic_store_explicit(&node->entry, strata_entry_ref(e),
			      memory_order_release);

	pthread_mutex_lock(&mem->lock);
	read_lock();
	cds_lfht_lookup(mem->ht, table_hash(&e->key), match_key, &e->key,
			&iter);
	lfht = cds_lfht_iter_get_node(&iter);
	if (lfht != NULL) {
		old = caa_container_of(lfht, struct mem_node, lfht);
		old_charge = old->charge;
	}
	/* Make room first, so the budget holds even inside the lock.  The
	 * node being replaced is not a victim: its bytes go anyway. */
	while (atomic_load_explicit(&mem->bytes, memory_order_relaxed) -
		       old_charge + node->charge >
	       mem->budget) {
		victim = clock_victim_locked(mem, old);
		remove_locked(mem, victim);
		add_locked(&mem->evictions, 1);
	}
	replaced = cds_lfht_add_replace(mem->ht, table_hash(&e->key),
					match_key, &e->key, &node->lfht);
	STRATA_ASSERT(replaced == lfht);
	if (old != NULL)
		retire_locked(mem, old); /* add_replace unpublished it */
	ring_insert_locked(mem, node);
	add_locked(&mem->bytes, (int64_t)node->charge);
	add_locked(&mem->entries, 1);
	add_locked(&mem->stores, 1);
	read_unlock();
	pthread_mutex_unlock(&mem->lock);
	return 0;
}

int strata_mem_remove(struct strata_mem *mem, const struct strata_key *key)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *lfht;
	int rc = STRATA_EMISS;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	ensure_registered();

	pthread_mutex_lock(&mem->lock);
	read_lock();
	cds_lfht_lookup(mem->ht, table_hash(key), match_key, key, &iter);
	lfht = cds_lfht_iter_get_node(&iter);
	if (lfht != NULL) {
		remove_locked(mem, caa_container_of(lfht, struct mem_node,
						    lfht));
		rc = 0;
	}
	read_unlock();
	pthread_mutex_unlock(&mem->lock);
	return rc;
}

uint64_t strata_mem_clear(struct strata_mem *mem)
{
	uint64_t n = 0;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	ensure_registered();

	pthread_mutex_lock(&mem->lock);
	read_lock();
	while (mem->hand != NULL) {
		remove_locked(mem, mem->hand);
		n++;
	}
	read_unlock();
	pthread_mutex_unlock(&mem->lock);
	return n;
}

uint64_t strata_mem_purge_if(struct strata_mem *mem,
			     bool (*match_fn)(const struct strata_entry *e,
					      void *arg),
			     void *arg)
{
	struct mem_node *node, *next;
	const struct strata_entry *e;
	uint64_t n, removed = 0;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	STRATA_ASSERT(match_fn != NULL);
	ensure_registered();

	pthread_mutex_lock(&mem->lock);
	read_lock();
	/*
	 * Walk the clock ring rather than the table: under the lock it holds
	 * exactly the published nodes, and unlinking the current node leaves
	 * its successor's links intact.  `n` bounds the walk to one
	 * revolution (the ring shrinks as we go; nothing joins it, since
	 * stores wait for the lock).  Starting at the hand and removing
	 * nodes does not disturb CLOCK: ring_unlink_locked() moves the hand
	 * past a removed node, exactly as for an eviction.
	 */
	n = atomic_load_explicit(&mem->entries, memory_order_relaxed);
	node = mem->hand;
	for (uint64_t i = 0; i < n; i++) {
		STRATA_ASSERT(node != NULL && node->magic == NODE_MAGIC);
		next = node->next;
		/* Relaxed: under mem->lock, which the storing writer released
		 * after publishing the node, so the entry is visible. */
		e = atomic_load_explicit(&node->entry, memory_order_relaxed);
		if (match_fn(e, arg)) {
			remove_locked(mem, node);
			removed++;
		}
		node = next;
	}
	read_unlock();
	pthread_mutex_unlock(&mem->lock);
	return removed;
}

size_t strata_mem_foreach(struct strata_mem *mem,
			  bool (*fn)(struct strata_entry *e, void *arg),
			  void *arg)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *lfht;
	struct mem_node *node;
	struct strata_entry *e;
	size_t visited = 0;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	STRATA_ASSERT(fn != NULL);
	ensure_registered();

	read_lock();
	for (cds_lfht_first(mem->ht, &iter);
	     (lfht = cds_lfht_iter_get_node(&iter)) != NULL;
	     cds_lfht_next(mem->ht, &iter)) {
		node = caa_container_of(lfht, struct mem_node, lfht);
		/* Acquire: pairs with the release store in strata_mem_store(),
		 * as in a lookup, so the entry's fields are visible. */
		e = atomic_load_explicit(&node->entry, memory_order_acquire);
		visited++;
		/* A node deleted while we look still holds its reference
		 * until our read-side section ends, so `e` is valid and fn
		 * may take a reference to it. */
		if (!fn(e, arg))
			break;
	}
	read_unlock();
	return visited;
}

void strata_mem_stats(struct strata_mem *mem, struct strata_mem_stats *out)
{
	size_t i;

	STRATA_ASSERT(mem->magic == MEM_MAGIC);
	memset(out, 0, sizeof(*out));
	/* Relaxed throughout: a snapshot for humans and metrics; the fields
	 * may disagree by an operation in flight. */
	out->entries = atomic_load_explicit(&mem->entries, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&mem->bytes, memory_order_relaxed);
	out->budget = mem->budget;
	out->stores = atomic_load_explicit(&mem->stores, memory_order_relaxed);
	out->evictions =
		atomic_load_explicit(&mem->evictions, memory_order_relaxed);
	out->expired = atomic_load_explicit(&mem->expired, memory_order_relaxed);
	for (i = 0; i < MEM_STRIPES; i++) {
		out->hits += atomic_load_explicit(&mem->stripe[i].hits,
						  memory_order_relaxed);
		out->misses += atomic_load_explicit(&mem->stripe[i].misses,
						    memory_order_relaxed);
	}
}
