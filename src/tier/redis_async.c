/*
 * redis_async.c: worker threads serving the Redis tier (see
 * redis_async.h).
 *
 * Submitters allocate an operation (key and key text copied into it, an
 * entry reference for a SET) and append it to a FIFO.  A worker is
 * signalled only when work appears in an empty FIFO or a whole batch is
 * waiting (and a worker that leaves work behind signals the next), so
 * operations arriving during a round trip share the next one rather than
 * each waking a worker (measured in docs/performance.md: waking one per
 * operation cost pool 8 a third of its throughput on 2 cores).
 * A worker detaches up to BATCH_MAX ready operations (due pollers first,
 * then the FIFO) and runs them as one strata_redis_batch(): one round
 * trip.  A fill is a small state machine advanced by each round trip:
 *
 *   GET --hit--> HIT              LOCK --taken--> LEAD
 *       --miss--> LOCK (same            --held---> POLL (timed list)
 *                 worker, next          --error--> FETCH
 *                 round trip)
 *       --error--> FETCH          POLL --entry--> FILLED
 *                                      --locked--> POLL again, or FETCH
 *                                                  after lock_wait
 *                                      --neither/error--> FETCH
 *
 * Operations that moved to another immediate state stay with the worker
 * for its next round trip; pollers go to the timed list `polls`, sorted by
 * due time, which any worker serves.
 *
 * Held locks.  The fleet lock of a fill that came back LEAD is kept alive
 * for as long as its holder fetches, so that its lifetime in Redis
 * (lock_ttl) can be short: that lifetime only matters when the holder is
 * dead, and then it is exactly what the other instances waste waiting on
 * it.  advance_fill() registers the lock in `held` before the LEAD
 * callback runs (so the holder's release always finds it); a registered
 * lock is an OP_EXTEND operation that the workers send, along with their
 * other work in the same round trip, every extend_ms (lock_ttl / 3):
 *
 *   EVAL <compare-and-PEXPIRE> 1 <prefix>:l:<hex> <token> <lock_ttl>
 *
 * The script extends only while the lock holds this instance's token; a
 * lock found gone or another's is dropped from `held` (locks_lost), never
 * touched.  Why a third: the lock then survives one extension lost
 * entirely (Redis failed it, or was stalled) and most of a second one
 * being late.  The holder lets go by storing with `unlock` or unlocking:
 * the hold is removed at that call, before the command is even queued,
 * so a dropped store or unlock (full queue, stopping) never leaves a lock
 * extended for ever, and a queued one is at most not extended while it
 * waits (it then goes within lock_ttl).  A lock is not extended past
 * hold_max_ms after it was taken: by then every instance that was waiting
 * on it has given up (lock_wait), and a request that somehow never lets
 * go cannot keep the fleet waiting on its key.  While Redis is down or
 * broken the extensions fail like everything else and the lock expires on
 * its own, which is what a degraded tier should do.  At most queue_limit
 * locks are held in `held`; a lock taken beyond that (or when the hold
 * cannot be allocated) is simply not extended: it lives lock_ttl.
 *
 * While every connection is down, lookups and fills are refused at
 * submission, so no caller waits on a dead Redis.  Nothing would then call
 * into the tier to give the breakers a reconnect attempt, so an idle
 * worker whose connection is down PINGs every ping_ms (those calls count
 * as fast_fails while the backoff has not expired).
 *
 * Concurrency:
 *  - Each worker alone touches its own `struct strata_redis` through the
 *    tier calls; strata_redis_stats() (atomics) is read from any thread.
 *  - `ra->lock` guards the FIFO (head, tail), `polls`, `held` (with each
 *    hold's links, due_ms, `sending` and `released`), `n_held`, `depth`
 *    and `stopping`.  Submitters take it to append and, when releasing a
 *    lock, to remove its hold; workers to detach a batch, to register and
 *    update holds, to park pollers and to wait on `ra->wake`.  No tier
 *    call and no callback runs with the lock held, so a callback may
 *    submit again.  The hit path of the server never comes here (memory
 *    and disk answer hits); fills, stores and unlocks are misses.
 *  - An operation belongs to the submitter until appended, to the FIFO or
 *    `polls` while linked there, and to one worker once detached; that
 *    worker frees it or links it back.
 *  - A hold (OP_EXTEND) belongs to `held` while linked there.  A worker
 *    that detaches it for an extension leaves it linked (rescheduled) and
 *    sets `sending`; a release that finds it `sending` unlinks it and sets
 *    `released` instead of freeing it, and the worker frees it after its
 *    round trip.  So exactly one of them frees each hold, and an
 *    extension is never in two batches at once.  `held` is sorted by
 *    due_ms because every due time is computed under the lock from the
 *    monotonic clock and appended at the tail.  Holds are not counted in
 *    `depth`: nobody is owed a callback for them.
 *  - The "all down" check at submission reads relaxed atomics that may be
 *    stale: a lookup may be queued just as the tier goes down (it then
 *    fails fast through its callback) or refused just as it comes back (a
 *    miss).  Both are harmless.
 *  - Stop: sets `stopping` under the lock (later submissions are
 *    refused), wakes every worker; each finishes its current round trip,
 *    cancels what it holds, and the last cancels what is left in the FIFO
 *    and `polls` (lookups get STRATA_ECANCELED, fills FETCH, writes are
 *    dropped), so every accepted callback runs exactly once before the
 *    joins return.
 *  - `depth` counts operations accepted and not yet finished, pollers and
 *    running ones included, so queue_limit bounds the memory held and the
 *    callbacks owed.
 *  - Counters are atomics with relaxed order: statistics, they order
 *    nothing.
 */
#include "config.h"

#include "tier/redis_async.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "strata/strata.h"

#define REDIS_ASYNC_MAGIC 0x52415359u /* "RASY" */
#define DEFAULT_QUEUE_LIMIT 1024u
#define DEFAULT_PING_MS 100u
/* A fill lock's life without an extension: what a holder that died costs
 * the instances waiting on it (2 to 3 s: it was extended at most a third
 * ago).  Extended every third of it, so it must outlast one lost
 * extension plus a late one: they are 1 s apart, each waiting at most
 * cache.redis.timeout (50 ms by default) for Redis, so a live holder
 * keeps its lock through at least 2 s of Redis stalling.  Losing it
 * costs little: the instances waiting on it fetch for themselves. */
#define DEFAULT_LOCK_TTL_MS 3000u
#define DEFAULT_LOCK_WAIT_MS 30000u
/* A held lock is extended for lock_wait, and never less than this: the
 * lock's old fixed life, so no slow fill lost its lock sooner than it did
 * before locks were extended. */
#define HOLD_MIN_MS 30000u
/* Operations per round trip: bounds a batch's memory and how long a stop
 * waits behind work. */
#define BATCH_MAX 64u
#define POLL_FIRST_MS 5u
#define POLL_MAX_MS 50u
#define TOKEN_MAX 128u

enum op_kind { OP_LOOKUP, OP_FILL, OP_SET, OP_DEL, OP_UNLOCK, OP_EXTEND };

/* Where a fill is: the command its next round trip sends. */
enum fill_state { FILL_GET, FILL_LOCK, FILL_POLL };

struct op {
	enum op_kind kind;
	enum fill_state state;          /* OP_FILL */
	bool unlock;                    /* OP_SET: release the lock after */
	bool sending;                   /* OP_EXTEND: in a worker's batch */
	bool released;                  /* OP_EXTEND: let go while sending:
					   the worker frees it */
	struct op *next;                /* FIFO, polls or a batch */
	struct op *held_prev, *held_next; /* OP_EXTEND: in ra->held */
	struct strata_key key;          /* all but OP_SET */
	struct strata_entry *entry;     /* OP_SET: our reference */
	struct strata_entry *stale;     /* OP_FILL: a kept, expired copy
					   found by GET, handed to the
					   callback with LEAD or FETCH */
	int64_t now;                    /* lookups: freshness */
	uint64_t due_ms;                /* FILL_POLL, OP_EXTEND: monotonic */
	uint64_t deadline_ms;           /* FILL_POLL: give up then;
					   OP_EXTEND: last extension */
	unsigned poll_ms;               /* FILL_POLL: next interval */
	strata_redis_lookup_fn *lookup_cb;
	strata_redis_fill_fn *fill_cb;
	void *arg;
	size_t key_len;
	char key_text[];                /* lookups: key_len bytes + NUL */
};

struct strata_redis_async {
	uint32_t magic;
	unsigned pool;
	struct strata_redis **conns;    /* one per worker (see above) */
	pthread_t *threads;
	size_t queue_limit;
	unsigned ping_ms;
	char token[TOKEN_MAX + 1];      /* "" : fills never lock */
	uint64_t lock_ttl_ms;
	uint64_t lock_wait_ms;
	uint64_t extend_ms;             /* lock_ttl / 3 */
	uint64_t hold_max_ms;           /* longest a lock is extended */
	size_t held_max;                /* most holds at once */

	/* Guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct op *head, *tail;         /* FIFO of new operations */
	size_t fifo_len;                /* operations in the FIFO */
	struct op *polls;               /* pollers, by due_ms */
	struct op *held, *held_tail;    /* locks held, by due_ms */
	size_t n_held;
	size_t depth;
	bool stopping;
	bool joined;                    /* shutdown has joined (or is
					   joining) the workers */
	unsigned running;               /* workers not yet exited */

	/* Any thread (relaxed). */
	atomic_uint_fast64_t dropped, refused, lookups, canceled, locks,
		filled, lock_timeouts, batches, extends, locks_lost;
};

/* A worker's identity: the module and its own connection. */
struct worker {
	struct strata_redis_async *ra;
	struct strata_redis *redis;
};

static void count(atomic_uint_fast64_t *c)
{
	/* Relaxed: a statistic, orders nothing. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static bool conn_up(struct strata_redis *r)
{
	struct strata_redis_stats st;

	strata_redis_stats(r, &st);
	return st.state == STRATA_REDIS_UP;
}

bool strata_redis_async_up(struct strata_redis_async *ra)
{
	for (unsigned i = 0; i < ra->pool; i++)
		if (conn_up(ra->conns[i]))
			return true;
	return false;
}

static void free_op(struct op **op)
{
	if (*op == NULL)
		return;
	strata_entry_release(&(*op)->entry);
	strata_entry_release(&(*op)->stale);
	free(*op);
	*op = NULL;
}

/* Append unless full or stopping.  Consumes `op` either way; returns 0 or
 * STRATA_EUNAVAIL (the op is then freed; the caller counts). */
static int enqueue(struct strata_redis_async *ra, struct op *op)
{
	bool accepted = false;

	pthread_mutex_lock(&ra->lock);
	if (!ra->stopping && ra->depth < ra->queue_limit) {
		bool was_empty = ra->head == NULL;

		op->next = NULL;
		if (ra->tail != NULL)
			ra->tail->next = op;
		else
			ra->head = op;
		ra->tail = op;
		ra->depth++;
		ra->fifo_len++;
		accepted = true;
		/* Wake one worker when work appears, and another only when a
		 * whole batch is waiting: operations that arrive while a
		 * worker is in its round trip wait for its next one and share
		 * it (pipelining), instead of each waking a worker of its own
		 * (a context switch each, and one command per round trip). */
		if (was_empty || ra->fifo_len % BATCH_MAX == 0)
			pthread_cond_signal(&ra->wake);
	}
	pthread_mutex_unlock(&ra->lock);
	if (!accepted) {
		free_op(&op);
		return STRATA_EUNAVAIL;
	}
	return 0;
}

/* --- completing operations ------------------------------------------------- */

static void finish_fill(struct strata_redis_async *ra, struct op *op,
			enum strata_redis_fill outcome,
			struct strata_entry *entry)
{
	if (outcome == STRATA_REDIS_FILL_FILLED)
		count(&ra->filled);
	else if (outcome == STRATA_REDIS_FILL_LEAD)
		count(&ra->locks);
	op->fill_cb(op->arg, outcome, entry);
}

static void cancel_op(struct strata_redis_async *ra, struct op *op)
{
	if (op->kind == OP_LOOKUP) {
		count(&ra->canceled);
		op->lookup_cb(op->arg, STRATA_ECANCELED, NULL);
	} else if (op->kind == OP_FILL) {
		count(&ra->canceled);
		op->fill_cb(op->arg, STRATA_REDIS_FILL_FETCH, NULL);
	} else {
		count(&ra->dropped);
	}
}

/* An operation is done: free it; it stops counting against queue_limit. */
static void finished(struct strata_redis_async *ra, struct op **op)
{
	free_op(op);
	pthread_mutex_lock(&ra->lock);
	ra->depth--;
	pthread_mutex_unlock(&ra->lock);
}

/* Link a poller into `polls` by due time.  Caller holds the lock. */
static void add_poll_locked(struct strata_redis_async *ra, struct op *op)
{
	struct op **p = &ra->polls;

	while (*p != NULL && (*p)->due_ms <= op->due_ms)
		p = &(*p)->next;
	op->next = *p;
	*p = op;
}

/* --- held locks ------------------------------------------------------------- */

/* Append a hold, its due_ms just computed under the lock (so `held` stays
 * sorted).  Caller holds the lock. */
static void held_append_locked(struct strata_redis_async *ra, struct op *h)
{
	h->held_next = NULL;
	h->held_prev = ra->held_tail;
	if (ra->held_tail != NULL)
		ra->held_tail->held_next = h;
	else
		ra->held = h;
	ra->held_tail = h;
}

/* Caller holds the lock. */
static void held_unlink_locked(struct strata_redis_async *ra, struct op *h)
{
	if (h->held_prev != NULL)
		h->held_prev->held_next = h->held_next;
	else
		ra->held = h->held_next;
	if (h->held_next != NULL)
		h->held_next->held_prev = h->held_prev;
	else
		ra->held_tail = h->held_prev;
	h->held_prev = h->held_next = NULL;
}

/*
 * Register the lock on `key` that this instance has just taken, so that
 * the workers extend it until its holder lets go.  Called before the LEAD
 * callback, so the release that the callback leads to always finds it.
 * Without memory or room (held_max) the lock is not registered: it then
 * lives lock_ttl, which only costs a fill slower than that its coalescing.
 */
static void hold(struct strata_redis_async *ra, const struct strata_key *key)
{
	struct op *h = calloc(1, sizeof(*h) + 1); /* key_text: "" */
	uint64_t now;

	if (h == NULL)
		return;
	h->kind = OP_EXTEND;
	h->key = *key;
	pthread_mutex_lock(&ra->lock);
	if (ra->n_held >= ra->held_max) {
		pthread_mutex_unlock(&ra->lock);
		free_op(&h);
		return;
	}
	now = strata_now_ms(); /* under the lock: keeps `held` sorted */
	h->due_ms = now + ra->extend_ms;
	h->deadline_ms = now + ra->hold_max_ms;
	held_append_locked(ra, h);
	ra->n_held++;
	/* The earliest due time changed: a waiting worker recomputes its
	 * timeout (it may be waiting with none). */
	if (ra->held == h)
		pthread_cond_signal(&ra->wake);
	pthread_mutex_unlock(&ra->lock);
}

/*
 * The holder of `key`'s lock let go (it stores with unlock, unlocks, or
 * gave up): stop extending it.  The lock's last extension, if one is in a
 * round trip right now, may still land; that is harmless, since the
 * release queued after it deletes the lock, or it expires within
 * lock_ttl.  If this instance holds the key twice (a lock that expired
 * and was taken again), the oldest hold goes.
 */
static void let_go(struct strata_redis_async *ra, const struct strata_key *key)
{
	struct op *h, *gone = NULL;

	pthread_mutex_lock(&ra->lock);
	for (h = ra->held; h != NULL; h = h->held_next)
		if (strata_key_equal(&h->key, key))
			break;
	if (h != NULL) {
		held_unlink_locked(ra, h);
		ra->n_held--;
		if (h->sending)
			h->released = true; /* its worker frees it */
		else
			gone = h;
	}
	pthread_mutex_unlock(&ra->lock);
	free_op(&gone);
}

/*
 * Detach the extensions that are due into a batch (*tail, *n up to
 * BATCH_MAX).  Each one sent is rescheduled at once, staying in `held`; a
 * hold whose previous extension is still in a round trip (Redis slow) is
 * rescheduled without sending a second one; a hold past its deadline is
 * dropped (the lock then expires within lock_ttl).  Caller holds the lock.
 */
static void detach_extensions_locked(struct strata_redis_async *ra,
				     uint64_t now, struct op ***tail,
				     size_t *n)
{
	struct op *h;

	while (*n < BATCH_MAX && (h = ra->held) != NULL && h->due_ms <= now) {
		held_unlink_locked(ra, h);
		if (now >= h->deadline_ms && !h->sending) {
			ra->n_held--;
			count(&ra->locks_lost);
			free_op(&h);
			continue;
		}
		h->due_ms = now + ra->extend_ms;
		held_append_locked(ra, h);
		if (h->sending)
			continue;
		h->sending = true;
		h->next = NULL;
		**tail = h;
		*tail = &h->next;
		(*n)++;
	}
}

/* An extension's round trip is over: keep the hold, or free it if its
 * holder let go meanwhile or the lock is no longer ours. */
static void extended(struct strata_redis_async *ra, struct op *h, int rc)
{
	bool lost = rc == -EBUSY || rc == STRATA_EMISS;

	if (rc == 0)
		count(&ra->extends);
	pthread_mutex_lock(&ra->lock);
	h->sending = false;
	if (lost && !h->released) {
		/* Expired (Redis stalled, or restarted empty) and perhaps
		 * taken by another instance: nothing of ours to extend. */
		held_unlink_locked(ra, h);
		ra->n_held--;
		count(&ra->locks_lost);
		h->released = true;
	}
	if (!h->released)
		h = NULL;
	pthread_mutex_unlock(&ra->lock);
	free_op(&h);
}

/* --- one round trip --------------------------------------------------------- */

/* The redis.h operation for op's next command. */
static void to_redis_op(const struct strata_redis_async *ra,
			const struct op *op, struct strata_redis_op *rop)
{
	*rop = (struct strata_redis_op){.key = &op->key,
					.key_text = op->key_text,
					.key_len = op->key_len,
					.now = op->now};
	switch (op->kind) {
	case OP_LOOKUP:
		rop->kind = STRATA_REDIS_OP_GET;
		break;
	case OP_FILL:
		rop->kind = op->state == FILL_GET    ? STRATA_REDIS_OP_GET
			    : op->state == FILL_LOCK ? STRATA_REDIS_OP_LOCK
						     : STRATA_REDIS_OP_POLL;
		rop->stale_ok = op->state == FILL_GET;
		rop->token = ra->token;
		rop->ttl_ms = ra->lock_ttl_ms;
		break;
	case OP_SET:
		rop->kind = STRATA_REDIS_OP_SET;
		rop->entry = op->entry;
		break;
	case OP_DEL:
		rop->kind = STRATA_REDIS_OP_DEL;
		break;
	case OP_UNLOCK:
		rop->kind = STRATA_REDIS_OP_UNLOCK;
		rop->token = ra->token;
		break;
	case OP_EXTEND:
		rop->kind = STRATA_REDIS_OP_EXTEND;
		rop->token = ra->token;
		rop->ttl_ms = ra->lock_ttl_ms;
		break;
	}
}

/* Where an operation goes after a round trip: freed, sent again by this
 * worker, parked in `polls`, or back to the holds (which own it). */
enum next { NEXT_DONE, NEXT_AGAIN, NEXT_POLL, NEXT_HELD };

static enum next advance_fill(struct strata_redis_async *ra, struct op *op,
			      struct strata_redis_op *rop)
{
	uint64_t now;

	switch (op->state) {
	case FILL_GET:
		if (rop->rc == 0 && strata_entry_fresh(rop->found, op->now)) {
			finish_fill(ra, op, STRATA_REDIS_FILL_HIT, rop->found);
			return NEXT_DONE;
		}
		if (rop->rc == 0) {
			/* Expired but kept: a copy to revalidate; the fill
			 * goes on as a miss. */
			op->stale = rop->found;
			rop->found = NULL;
			rop->rc = STRATA_EMISS;
		}
		if (rop->rc == STRATA_EMISS && ra->token[0] != '\0') {
			op->state = FILL_LOCK;
			return NEXT_AGAIN;
		}
		break;
	case FILL_LOCK:
		if (rop->rc == 0) {
			hold(ra, &op->key);
			finish_fill(ra, op, STRATA_REDIS_FILL_LEAD, op->stale);
			op->stale = NULL;
			return NEXT_DONE;
		}
		if (rop->rc == -EBUSY) {
			now = strata_now_ms();
			op->state = FILL_POLL;
			op->poll_ms = POLL_FIRST_MS;
			op->due_ms = now + op->poll_ms;
			op->deadline_ms = now + ra->lock_wait_ms;
			return NEXT_POLL;
		}
		break;
	case FILL_POLL:
		if (rop->rc == 0) {
			finish_fill(ra, op, STRATA_REDIS_FILL_FILLED,
				    rop->found);
			return NEXT_DONE;
		}
		if (rop->rc == -EBUSY) {
			now = strata_now_ms();
			if (now >= op->deadline_ms) {
				count(&ra->lock_timeouts);
				break;
			}
			op->poll_ms = op->poll_ms * 2 > POLL_MAX_MS
					      ? POLL_MAX_MS
					      : op->poll_ms * 2;
			op->due_ms = now + op->poll_ms;
			if (op->due_ms > op->deadline_ms)
				op->due_ms = op->deadline_ms;
			return NEXT_POLL;
		}
		break;
	}
	strata_entry_release(&rop->found);
	finish_fill(ra, op, STRATA_REDIS_FILL_FETCH, op->stale);
	op->stale = NULL;
	return NEXT_DONE;
}

static enum next advance(struct strata_redis_async *ra, struct op *op,
			 struct strata_redis_op *rop)
{
	switch (op->kind) {
	case OP_LOOKUP:
		op->lookup_cb(op->arg,
			      rop->rc == 0 || rop->rc == STRATA_EMISS
				      ? rop->rc
				      : STRATA_EUNAVAIL,
			      rop->found);
		return NEXT_DONE;
	case OP_FILL:
		return advance_fill(ra, op, rop);
	case OP_EXTEND:
		extended(ra, op, rop->rc);
		return NEXT_HELD;
	default:
		return NEXT_DONE;
	}
}

/*
 * Run `batch` (a list of `n` operations) to completion or parking: one
 * round trip per step, fills that move on staying for the next step.
 * A SET with `unlock` contributes two commands (SET, then UNLOCK) so the
 * lock is never released before the entry is visible.
 */
static void run_batch(struct worker *w, struct op *batch)
{
	struct strata_redis_async *ra = w->ra;
	struct strata_redis_op rops[2 * BATCH_MAX];
	struct op *ops[BATCH_MAX];

	while (batch != NULL) {
		struct op *again = NULL, **again_tail = &again, *op;
		size_t n = 0, r = 0;

		while ((op = batch) != NULL && n < BATCH_MAX) {
			batch = op->next;
			op->next = NULL;
			ops[n++] = op;
		}
		for (size_t i = 0; i < n; i++) {
			to_redis_op(ra, ops[i], &rops[r++]);
			if (ops[i]->kind == OP_SET && ops[i]->unlock) {
				rops[r] = (struct strata_redis_op){
					.kind = STRATA_REDIS_OP_UNLOCK,
					.key = &ops[i]->entry->key,
					.token = ra->token};
				r++;
			}
		}
		(void)strata_redis_batch(w->redis, rops, r);
		count(&ra->batches);
		r = 0;
		for (size_t i = 0; i < n; i++) {
			struct strata_redis_op *rop = &rops[r++];
			enum next next;

			if (ops[i]->kind == OP_SET && ops[i]->unlock)
				r++;
			next = advance(ra, ops[i], rop);
			if (next == NEXT_AGAIN) {
				*again_tail = ops[i];
				again_tail = &ops[i]->next;
			} else if (next == NEXT_POLL) {
				pthread_mutex_lock(&ra->lock);
				add_poll_locked(ra, ops[i]);
				/* A waiting worker's timeout is the earliest
				 * poll's: recompute it if that changed. */
				if (ra->polls == ops[i])
					pthread_cond_signal(&ra->wake);
				pthread_mutex_unlock(&ra->lock);
			} else if (next == NEXT_DONE) {
				finished(ra, &ops[i]);
			} /* NEXT_HELD: the holds own it (it may be freed) */
		}
		/* What moved on goes first, then the rest of the batch. */
		*again_tail = batch;
		batch = again;
	}
}

/* --- the workers ------------------------------------------------------------- */

static void deadline_at(struct timespec *ts, uint64_t due_ms)
{
	ts->tv_sec = (time_t)(due_ms / 1000);
	ts->tv_nsec = (long)(due_ms % 1000) * 1000000L;
}

/* Detach up to BATCH_MAX ready operations: due extensions (when
 * `extend`: not when cancelling at stop), due pollers, then the FIFO.
 * Caller holds the lock. */
static struct op *detach_locked(struct strata_redis_async *ra, uint64_t now,
				bool extend)
{
	struct op *first = NULL, **tail = &first, *op;
	size_t n = 0;

	/* First: a late extension can cost a live holder its lock. */
	if (extend)
		detach_extensions_locked(ra, now, &tail, &n);
	while (n < BATCH_MAX && (op = ra->polls) != NULL &&
	       op->due_ms <= now) {
		ra->polls = op->next;
		*tail = op;
		tail = &op->next;
		n++;
	}
	while (n < BATCH_MAX && (op = ra->head) != NULL) {
		ra->head = op->next;
		if (ra->head == NULL)
			ra->tail = NULL;
		ra->fifo_len--;
		*tail = op;
		tail = &op->next;
		n++;
	}
	*tail = NULL;
	/* More than a batch was waiting: another worker takes the rest. */
	if (ra->head != NULL && !ra->stopping)
		pthread_cond_signal(&ra->wake);
	return first;
}

/* Wait for work.  Returns a batch, or NULL when idle-timed-out while
 * down (ping) or stopping (*stopping set).  Caller holds the lock. */
static struct op *wait_locked(struct worker *w, bool *stopping)
{
	struct strata_redis_async *ra = w->ra;
	struct timespec ts;
	struct op *batch;

	for (;;) {
		uint64_t now = strata_now_ms(), due = UINT64_MAX;
		bool down;

		if (ra->stopping) {
			*stopping = true;
			return NULL;
		}
		batch = detach_locked(ra, now, true);
		if (batch != NULL)
			return batch;
		if (ra->polls != NULL)
			due = ra->polls->due_ms;
		if (ra->held != NULL && ra->held->due_ms < due)
			due = ra->held->due_ms;
		down = !conn_up(w->redis);
		if (down && now + ra->ping_ms < due)
			due = now + ra->ping_ms;
		if (due == UINT64_MAX) {
			pthread_cond_wait(&ra->wake, &ra->lock);
			continue;
		}
		deadline_at(&ts, due);
		if (pthread_cond_timedwait(&ra->wake, &ra->lock, &ts) ==
			    ETIMEDOUT &&
		    down && ra->head == NULL &&
		    (ra->polls == NULL || ra->polls->due_ms > strata_now_ms()) &&
		    (ra->held == NULL || ra->held->due_ms > strata_now_ms()))
			return NULL;
	}
}

/* Cancel a list of operations. */
static void cancel_list(struct strata_redis_async *ra, struct op *list)
{
	struct op *op;

	while ((op = list) != NULL) {
		list = op->next;
		cancel_op(ra, op);
		finished(ra, &op);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct strata_redis_async *ra = w->ra;
	struct op *batch;
	bool stopping = false, last;

	for (;;) {
		pthread_mutex_lock(&ra->lock);
		batch = wait_locked(w, &stopping);
		pthread_mutex_unlock(&ra->lock);
		if (stopping)
			break;
		if (batch == NULL) {
			/* Idle while down: let the breaker try a reconnect. */
			(void)strata_redis_ping(w->redis);
			continue;
		}
		run_batch(w, batch);
	}

	/* Stopping: nothing more is accepted.  The last worker out cancels
	 * what is left (pollers parked by others included). */
	pthread_mutex_lock(&ra->lock);
	last = --ra->running == 0;
	batch = NULL;
	if (last) {
		batch = detach_locked(ra, UINT64_MAX, false);
		while (batch != NULL) {
			struct op *more;

			pthread_mutex_unlock(&ra->lock);
			cancel_list(ra, batch);
			pthread_mutex_lock(&ra->lock);
			more = detach_locked(ra, UINT64_MAX, false);
			batch = more;
		}
	}
	pthread_mutex_unlock(&ra->lock);
	free(w);
	return NULL;
}

/* --- the API ------------------------------------------------------------------ */

static void destroy(struct strata_redis_async *ra)
{
	struct op *h;

	/* The workers are gone: the locks still held expire within
	 * lock_ttl (no extension sends any more, none is `sending`). */
	while ((h = ra->held) != NULL) {
		held_unlink_locked(ra, h);
		free_op(&h);
	}
	for (unsigned i = 0; ra->conns != NULL && i < ra->pool; i++)
		strata_redis_close(&ra->conns[i]);
	free(ra->conns);
	free(ra->threads);
	pthread_cond_destroy(&ra->wake);
	pthread_mutex_destroy(&ra->lock);
	ra->magic = 0;
	free(ra);
}

/* Start the workers; on failure the ones started are stopped. */
static int start_workers(struct strata_redis_async *ra)
{
	unsigned i;
	int rc = 0;

	for (i = 0; i < ra->pool; i++) {
		struct worker *w = malloc(sizeof(*w));

		if (w == NULL) {
			rc = -ENOMEM;
			break;
		}
		*w = (struct worker){.ra = ra, .redis = ra->conns[i]};
		pthread_mutex_lock(&ra->lock);
		ra->running++;
		pthread_mutex_unlock(&ra->lock);
		rc = pthread_create(&ra->threads[i], NULL, worker_main, w);
		if (rc != 0) {
			pthread_mutex_lock(&ra->lock);
			ra->running--;
			pthread_mutex_unlock(&ra->lock);
			free(w);
			rc = -rc;
			break;
		}
	}
	if (rc != 0) {
		pthread_mutex_lock(&ra->lock);
		ra->stopping = true;
		pthread_cond_broadcast(&ra->wake);
		pthread_mutex_unlock(&ra->lock);
		while (i-- > 0)
			pthread_join(ra->threads[i], NULL);
	}
	return rc;
}

int strata_redis_async_start(const struct strata_redis_async_config *cfg,
			     struct strata_redis_async **out)
{
	struct strata_redis_async *ra;
	pthread_condattr_t ca;
	int rc = 0;

	*out = NULL;
	ra = calloc(1, sizeof(*ra));
	if (ra == NULL)
		return -ENOMEM;
	ra->magic = REDIS_ASYNC_MAGIC;
	ra->pool = cfg->pool != 0 ? cfg->pool : 1;
	ra->queue_limit = cfg->queue_limit != 0 ? cfg->queue_limit
						: DEFAULT_QUEUE_LIMIT;
	ra->ping_ms = cfg->redis.backoff_min_ms != 0 ? cfg->redis.backoff_min_ms
						     : DEFAULT_PING_MS;
	if (cfg->token != NULL)
		snprintf(ra->token, sizeof(ra->token), "%s", cfg->token);
	ra->lock_ttl_ms = cfg->lock_ttl_ms ? cfg->lock_ttl_ms
					   : DEFAULT_LOCK_TTL_MS;
	ra->lock_wait_ms = cfg->lock_wait_ms ? cfg->lock_wait_ms
					     : DEFAULT_LOCK_WAIT_MS;
	/* At least 1 ms: an extension rescheduled at `now` would be due
	 * again at once. */
	ra->extend_ms = ra->lock_ttl_ms / 3 != 0 ? ra->lock_ttl_ms / 3 : 1;
	ra->hold_max_ms = cfg->lock_hold_max_ms != 0 ? cfg->lock_hold_max_ms
			  : ra->lock_wait_ms > HOLD_MIN_MS ? ra->lock_wait_ms
							   : HOLD_MIN_MS;
	/* Each hold is a fill in progress; the queue bounds those too. */
	ra->held_max = ra->queue_limit;
	pthread_mutex_init(&ra->lock, NULL);
	/* Monotonic: poll and ping times must not jump with the clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ra->wake, &ca);
	pthread_condattr_destroy(&ca);
	ra->conns = calloc(ra->pool, sizeof(*ra->conns));
	ra->threads = calloc(ra->pool, sizeof(*ra->threads));
	if (ra->conns == NULL || ra->threads == NULL)
		rc = -ENOMEM;
	for (unsigned i = 0; rc == 0 && i < ra->pool; i++) {
		/* One connection speaks for the tier's state in the log:
		 * a Redis going down is one line, not one per connection. */
		struct strata_redis_config rcfg = cfg->redis;

		rcfg.quiet = i != 0;
		rc = strata_redis_open(&rcfg, &ra->conns[i]);
	}
	if (rc == 0)
		rc = start_workers(ra);
	if (rc != 0) {
		destroy(ra);
		return rc;
	}
	*out = ra;
	return 0;
}

void strata_redis_async_shutdown(struct strata_redis_async *ra)
{
	bool joined;

	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	for (unsigned i = 0; i < ra->pool; i++)
		STRATA_ASSERT(!pthread_equal(pthread_self(), ra->threads[i]));
	pthread_mutex_lock(&ra->lock);
	ra->stopping = true;
	joined = ra->joined;
	ra->joined = true;
	pthread_cond_broadcast(&ra->wake);
	pthread_mutex_unlock(&ra->lock);
	if (joined)
		return;
	for (unsigned i = 0; i < ra->pool; i++)
		pthread_join(ra->threads[i], NULL);
}

void strata_redis_async_stop(struct strata_redis_async **rap)
{
	struct strata_redis_async *ra = rap != NULL ? *rap : NULL;

	if (ra == NULL)
		return;
	strata_redis_async_shutdown(ra);
	STRATA_ASSERT(ra->head == NULL && ra->polls == NULL &&
		      ra->depth == 0);
	destroy(ra);
	*rap = NULL;
}

/* Allocate and queue a lookup or fill. */
static int submit_read(struct strata_redis_async *ra, const struct op *proto,
		       const char *key_text, size_t key_len)
{
	struct op *op;
	int rc;

	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	if (!strata_redis_async_up(ra)) {
		count(&ra->refused);
		return STRATA_EUNAVAIL;
	}
	op = malloc(sizeof(*op) + key_len + 1);
	if (op == NULL)
		return -ENOMEM;
	*op = *proto;
	op->key_len = key_len;
	if (key_len != 0)
		memcpy(op->key_text, key_text, key_len);
	op->key_text[key_len] = '\0';
	rc = enqueue(ra, op);
	count(rc == 0 ? &ra->lookups : &ra->refused);
	return rc;
}

int strata_redis_async_lookup(struct strata_redis_async *ra,
			      const struct strata_key *key,
			      const char *key_text, size_t key_len,
			      int64_t now, strata_redis_lookup_fn *cb,
			      void *arg)
{
	STRATA_ASSERT(cb != NULL && key != NULL);
	return submit_read(ra,
			   &(struct op){.kind = OP_LOOKUP, .key = *key,
					.now = now, .lookup_cb = cb,
					.arg = arg},
			   key_text, key_len);
}

int strata_redis_async_fill(struct strata_redis_async *ra,
			    const struct strata_key *key,
			    const char *key_text, size_t key_len,
			    int64_t now, strata_redis_fill_fn *cb, void *arg)
{
	STRATA_ASSERT(cb != NULL && key != NULL);
	return submit_read(ra,
			   &(struct op){.kind = OP_FILL, .state = FILL_GET,
					.key = *key, .now = now,
					.fill_cb = cb, .arg = arg},
			   key_text, key_len);
}

/* Queue a write built from `proto`; a refused write is dropped, counted. */
static int enqueue_write(struct strata_redis_async *ra, const struct op *proto)
{
	struct op *op;
	int rc;

	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	op = malloc(sizeof(*op));
	if (op == NULL)
		return -ENOMEM;
	*op = *proto;
	rc = enqueue(ra, op); /* frees the op (and its entry) when refused */
	if (rc != 0)
		count(&ra->dropped);
	return rc;
}

int strata_redis_async_store(struct strata_redis_async *ra,
			     struct strata_entry *entry, bool unlock)
{
	struct op proto = {.kind = OP_SET, .unlock = unlock};
	int rc;

	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	STRATA_ASSERT(entry != NULL);
	if (unlock)
		let_go(ra, &entry->key);
	proto.entry = strata_entry_ref(entry);
	rc = enqueue_write(ra, &proto);
	if (rc == -ENOMEM)
		strata_entry_release(&proto.entry);
	return rc;
}

int strata_redis_async_unlock(struct strata_redis_async *ra,
			      const struct strata_key *key)
{
	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	STRATA_ASSERT(key != NULL);
	let_go(ra, key);
	return enqueue_write(ra, &(struct op){.kind = OP_UNLOCK, .key = *key});
}

int strata_redis_async_del(struct strata_redis_async *ra,
			   const struct strata_key *key)
{
	STRATA_ASSERT(key != NULL);
	return enqueue_write(ra, &(struct op){.kind = OP_DEL, .key = *key});
}

static uint64_t load(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void strata_redis_async_stats(struct strata_redis_async *ra,
			      struct strata_redis_async_stats *out)
{
	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ra->lock);
	out->queued = ra->depth;
	out->held = ra->n_held;
	pthread_mutex_unlock(&ra->lock);
	/* Relaxed: independent statistics. */
	out->dropped = load(&ra->dropped);
	out->refused = load(&ra->refused);
	out->lookups = load(&ra->lookups);
	out->canceled = load(&ra->canceled);
	out->locks = load(&ra->locks);
	out->filled = load(&ra->filled);
	out->lock_timeouts = load(&ra->lock_timeouts);
	out->batches = load(&ra->batches);
	out->extends = load(&ra->extends);
	out->locks_lost = load(&ra->locks_lost);
	out->redis.state = STRATA_REDIS_DOWN;
	for (unsigned i = 0; i < ra->pool; i++) {
		struct strata_redis_stats st;

		strata_redis_stats(ra->conns[i], &st);
		out->redis.hits += st.hits;
		out->redis.misses += st.misses;
		out->redis.corrupt += st.corrupt;
		out->redis.stores += st.stores;
		out->redis.errors += st.errors;
		out->redis.fast_fails += st.fast_fails;
		out->redis.reconnects += st.reconnects;
		if (st.state == STRATA_REDIS_UP) {
			out->up++;
			out->redis.state = STRATA_REDIS_UP;
		}
	}
}
