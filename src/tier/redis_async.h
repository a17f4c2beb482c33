/*
 * redis_async.h: the Redis tier driven by its own worker thread.
 *
 * strata_redis (redis.h) is synchronous: every call blocks for up to the
 * command timeout and one tier object must not be used by two threads at
 * once.  This module gives the rest of the server a non-blocking face:
 * one worker thread owns one struct strata_redis and serves a bounded
 * queue of operations (GET, SET, DEL).  Submitting never blocks on Redis:
 * when the queue is full, the tier is down or the module is stopping, a
 * lookup is refused at once with STRATA_EUNAVAIL (the caller treats it as
 * a miss) and a write is dropped and counted.
 *
 * Thread safety: every function may be called from any thread, including
 * libmicrohttpd's, except strata_redis_async_stop(), which must be called
 * once, after every submitter has finished, and never from a callback.
 * Callbacks run on the worker thread with no lock held; they must not
 * block for long (the worker serves every request) and must not call
 * strata_redis_async_stop().  They may submit new operations.
 */
#ifndef STRATA_TIER_REDIS_ASYNC_H
#define STRATA_TIER_REDIS_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "tier/redis.h"

struct strata_redis_async;

/*
 * A lookup's completion, on the worker thread.  rc is 0 with `entry` a new
 * reference that the callee owns (release it with strata_entry_release()),
 * or STRATA_EMISS, STRATA_EUNAVAIL (Redis down or the command failed) or
 * STRATA_ECANCELED (the module stopped first) with `entry` NULL.  Called
 * exactly once for every lookup that strata_redis_async_lookup() accepted.
 */
typedef void strata_redis_lookup_fn(void *arg, int rc,
				    struct strata_entry *entry);

struct strata_redis_async_stats {
	uint64_t queued;    /* accepted, not yet finished (running included) */
	uint64_t dropped;   /* writes refused (full, stopping) or cancelled */
	uint64_t refused;   /* lookups refused at once (full, down, stopping) */
	uint64_t lookups;   /* lookups accepted */
	uint64_t canceled;  /* accepted lookups completed STRATA_ECANCELED */
	struct strata_redis_stats redis; /* the underlying tier */
};

/*
 * Open the tier (strata_redis_open(): an unreachable Redis starts it down,
 * not a failure) and start the worker.  queue_limit bounds the operations
 * accepted and not yet finished, the one running included (0: 1024).  Returns 0, STRATA_ECONFIG (bad URL or prefix),
 * -ENOMEM, or a negative errno from pthread_create.  Stop with
 * strata_redis_async_stop().
 */
int strata_redis_async_start(const struct strata_redis_config *cfg,
			     size_t queue_limit,
			     struct strata_redis_async **out);

/*
 * Stop: the operation in progress finishes; what is still queued is not
 * sent (each lookup's callback runs with STRATA_ECANCELED, each write is
 * dropped and counted); then the worker is joined, the tier closed and
 * everything freed; *ra = NULL.  Accepts NULL and a pointer to NULL.
 * Not from a callback (it would join its own thread).
 */
void strata_redis_async_stop(struct strata_redis_async **ra);

/*
 * Queue a GET of `key` (copied) whose entry must carry `key_text` (key_len
 * bytes, copied) and be fresh at `now` (wall ms); see strata_redis_get().
 * Returns 0: `cb(arg, ...)` will run exactly once on the worker thread.
 * Returns STRATA_EUNAVAIL at once, and cb is not called, when the queue is
 * full, the tier is down or the module is stopping; or -ENOMEM.
 */
int strata_redis_async_lookup(struct strata_redis_async *ra,
			      const struct strata_key *key,
			      const char *key_text, size_t key_len,
			      int64_t now, strata_redis_lookup_fn *cb,
			      void *arg);

/*
 * Queue a SET of `entry`: borrowed, the module takes its own reference
 * (strata_entry_ref) and releases it once sent or dropped.  The expiry is
 * computed against the wall clock when the worker sends it.  Returns 0,
 * or STRATA_EUNAVAIL when dropped (queue full, stopping; counted) or
 * -ENOMEM.  Success means queued, not stored.
 */
int strata_redis_async_store(struct strata_redis_async *ra,
			     struct strata_entry *entry);

/* Queue a DEL of `key` (copied).  Returns 0, or STRATA_EUNAVAIL when
 * dropped (counted) or -ENOMEM.  Success means queued, not deleted. */
int strata_redis_async_del(struct strata_redis_async *ra,
			   const struct strata_key *key);

/* A snapshot of the counters (not one instant).  Any thread. */
void strata_redis_async_stats(struct strata_redis_async *ra,
			      struct strata_redis_async_stats *out);

#endif /* STRATA_TIER_REDIS_ASYNC_H */
