/*
 * redis_async.h: the Redis tier driven by its own worker threads.
 *
 * strata_redis (redis.h) is synchronous: every call blocks for up to the
 * command timeout and one tier object must not be used by two threads at
 * once.  This module gives the rest of the server a non-blocking face:
 * `pool` worker threads, each owning one struct strata_redis (one
 * connection and its circuit breaker), serve one bounded queue.  A worker
 * takes every ready operation (up to a batch) and sends them in one round
 * trip (pipelined), so under load one connection carries many requests
 * per round trip.  Submitting never blocks on Redis: when the queue is
 * full, every connection is down or the module is stopping, a lookup is
 * refused at once with STRATA_EUNAVAIL (the caller treats it as a miss)
 * and a write is dropped and counted.
 *
 * Fills (fleet-wide coalescing): strata_redis_async_fill() looks a key up
 * and, on a miss, tries to take the key's fleet lock.  Whoever takes it
 * fetches from the origin and stores with `unlock`; the others poll (5 ms,
 * doubling to 50 ms) until the entry appears, the lock disappears without
 * an entry (the fill failed or was not storable) or lock_wait passes, and
 * then fetch on their own.  Polling waiters hold no thread: they wait in a
 * timed list that the workers serve between batches.
 *
 * Held locks are kept alive: a fill that returns LEAD registers its lock,
 * and the workers extend every registered lock to lock_ttl again each
 * lock_ttl/3 (compare-and-PEXPIRE: only while the lock still holds this
 * instance's token), until the holder lets go with
 * strata_redis_async_store(..., true) or strata_redis_async_unlock() (at
 * the call, queued or not), the module stops, or the lock has been held
 * for lock_hold_max.  So lock_ttl can be short: it is what a holder that
 * died (kill -9, a lost host) costs the instances waiting on it, while a
 * slow fetch keeps its lock for as long as it runs.
 *
 * Thread safety: every function may be called from any thread, including
 * libmicrohttpd's, except strata_redis_async_stop(), which must be called
 * once, after every submitter has finished, and never from a callback.
 * Callbacks run on a worker thread with no lock held; they must not block
 * for long (the worker serves other requests) and must not call
 * strata_redis_async_stop().  They may submit new operations.
 */
#ifndef STRATA_TIER_REDIS_ASYNC_H
#define STRATA_TIER_REDIS_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "tier/redis.h"

struct strata_redis_async;

struct strata_redis_async_config {
	struct strata_redis_config redis;
	size_t queue_limit;     /* operations accepted and not finished,
				   running and polling ones included;
				   0: 1024 */
	unsigned pool;          /* worker threads (connections); 0: 1 */
	const char *token;      /* this instance's lock value (copied);
				   NULL: fills never lock */
	uint64_t lock_ttl_ms;   /* a fill lock's life without an extension
				   (its holder died); extended every
				   lock_ttl/3 while held; 0: 3 s */
	uint64_t lock_wait_ms;  /* 0: 30 s */
	uint64_t lock_hold_max_ms; /* longest a held lock is extended;
				      0: lock_wait, at least 30 s */
};

/*
 * A lookup's completion, on a worker thread.  rc is 0 with `entry` a new
 * reference that the callee owns (release it with strata_entry_release()),
 * or STRATA_EMISS, STRATA_EUNAVAIL (Redis down or the command failed) or
 * STRATA_ECANCELED (the module stopped first) with `entry` NULL.  Called
 * exactly once for every lookup that strata_redis_async_lookup() accepted.
 */
typedef void strata_redis_lookup_fn(void *arg, int rc,
				    struct strata_entry *entry);

enum strata_redis_fill {
	STRATA_REDIS_FILL_HIT,     /* entry found at once */
	STRATA_REDIS_FILL_FILLED,  /* found after waiting on another
				      instance's fill (fleet coalescing) */
	STRATA_REDIS_FILL_LEAD,    /* the lock is ours: fetch, then store
				      with unlock, or unlock */
	STRATA_REDIS_FILL_FETCH,   /* fetch without the lock: Redis down or
				      slow, the other fill failed, waited
				      lock_wait, or stopping */
};

/* A fill's completion, on a worker thread, exactly once per accepted
 * fill.  `entry` is a new reference the callee owns: the answer for HIT
 * and FILLED; for LEAD and FETCH, NULL or an expired copy Redis still
 * kept (keep_until), for the fetch to revalidate and to fall back on. */
typedef void strata_redis_fill_fn(void *arg, enum strata_redis_fill outcome,
				  struct strata_entry *entry);

struct strata_redis_async_stats {
	uint64_t queued;    /* accepted, not yet finished (running included) */
	uint64_t dropped;   /* writes refused (full, stopping) or cancelled */
	uint64_t refused;   /* lookups refused at once (full, down, stopping) */
	uint64_t lookups;   /* lookups and fills accepted */
	uint64_t canceled;  /* accepted lookups completed STRATA_ECANCELED */
	uint64_t locks;     /* fills that took the fleet lock */
	uint64_t filled;    /* fills answered by another instance's fill */
	uint64_t lock_timeouts; /* fills that gave up waiting (lock_wait) */
	uint64_t held;      /* locks held now and being extended */
	uint64_t extends;   /* lock extensions that Redis applied */
	uint64_t locks_lost; /* held locks no longer extended before their
				holder let go: found gone or another's at an
				extension, or held past lock_hold_max */
	uint64_t batches;   /* round trips */
	unsigned up;        /* connections up */
	struct strata_redis_stats redis; /* summed over the connections;
					    state: UP when any is up */
};

/*
 * Open `pool` connections (an unreachable Redis starts them down, not a
 * failure) and start the workers.  Returns 0, STRATA_ECONFIG (bad URL or
 * prefix), -ENOMEM, or a negative errno from pthread_create.  Stop with
 * strata_redis_async_stop().
 */
int strata_redis_async_start(const struct strata_redis_async_config *cfg,
			     struct strata_redis_async **out);

/*
 * Stop: operations in progress finish; what is still queued or polling is
 * not sent (each lookup's callback runs with STRATA_ECANCELED, each fill's
 * with FETCH, each write is dropped and counted); then the workers are
 * joined, the connections closed and everything freed; *ra = NULL.
 * Accepts NULL and a pointer to NULL.  Not from a callback.
 */
void strata_redis_async_stop(struct strata_redis_async **ra);

/*
 * Stop serving without freeing: what is queued or polling is cancelled as
 * for stop, later submissions are refused, the workers are joined.  For a
 * shutdown that must wake every waiter while submitters may still call
 * in.  Idempotent; not from a callback.
 */
void strata_redis_async_shutdown(struct strata_redis_async *ra);

/*
 * Queue a GET of `key` (copied) whose entry must carry `key_text` (key_len
 * bytes, copied) and be fresh at `now` (wall ms); see strata_redis_get().
 * Returns 0: `cb(arg, ...)` will run exactly once on a worker thread.
 * Returns STRATA_EUNAVAIL at once, and cb is not called, when the queue is
 * full, the tier is down or the module is stopping; or -ENOMEM.
 */
int strata_redis_async_lookup(struct strata_redis_async *ra,
			      const struct strata_key *key,
			      const char *key_text, size_t key_len,
			      int64_t now, strata_redis_lookup_fn *cb,
			      void *arg);

/*
 * Queue a fill of `key` (see above; arguments as for lookup).  Returns 0:
 * cb runs exactly once; or STRATA_EUNAVAIL / -ENOMEM at once without cb
 * (fetch without Redis).
 */
int strata_redis_async_fill(struct strata_redis_async *ra,
			    const struct strata_key *key,
			    const char *key_text, size_t key_len,
			    int64_t now, strata_redis_fill_fn *cb, void *arg);

/*
 * Queue a SET of `entry`: borrowed, the module takes its own reference
 * (strata_entry_ref) and releases it once sent or dropped.  The expiry is
 * computed against the wall clock when sent.  With `unlock`, the fleet
 * lock of the entry's key is released after the SET, in the same round
 * trip (so a poller never sees the lock gone before the entry), and the
 * lock is no longer extended from this call on, whatever it returns.
 * Returns 0, or STRATA_EUNAVAIL when dropped (queue full, stopping;
 * counted) or -ENOMEM.  Success means queued, not stored.
 */
int strata_redis_async_store(struct strata_redis_async *ra,
			     struct strata_entry *entry, bool unlock);

/* Queue the release of `key`'s fleet lock (a LEAD fill that stored
 * nothing).  The lock is no longer extended from this call on, whatever
 * it returns.  Returns 0, STRATA_EUNAVAIL (dropped: the lock then expires
 * within lock_ttl) or -ENOMEM. */
int strata_redis_async_unlock(struct strata_redis_async *ra,
			      const struct strata_key *key);

/* Queue a DEL of `key` (copied).  Returns 0, or STRATA_EUNAVAIL when
 * dropped (counted) or -ENOMEM.  Success means queued, not deleted. */
int strata_redis_async_del(struct strata_redis_async *ra,
			   const struct strata_key *key);

/* Whether any connection is up (a relaxed read: may lag). */
bool strata_redis_async_up(struct strata_redis_async *ra);

/* A snapshot of the counters (not one instant).  Any thread. */
void strata_redis_async_stats(struct strata_redis_async *ra,
			      struct strata_redis_async_stats *out);

#endif /* STRATA_TIER_REDIS_ASYNC_H */
