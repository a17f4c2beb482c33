/*
 * redis_async.c: one worker thread serving the Redis tier (see
 * redis_async.h).
 *
 * Submitters allocate an operation (key and key text copied into it, an
 * entry reference for a SET), append it to a FIFO and signal the worker.
 * The worker takes up to BATCH_MAX operations per wake and runs them in
 * order against its struct strata_redis.  Consecutive SETs are "batched"
 * only in that they are taken together: each is still one
 * strata_redis_set() round trip.  Pipelining them through redis.c's
 * command layer (which already sends a batch in one round trip) is the
 * next step and needs a multi-entry set in redis.h.
 *
 * While the tier is down, lookups are refused at submission, so no
 * caller waits on a dead Redis.  Nothing would then call into the tier to
 * give its breaker a reconnect attempt, so the idle worker PINGs every
 * backoff_min_ms while down; those calls count as fast_fails in the tier's
 * stats when the backoff has not yet expired.
 *
 * Concurrency:
 *  - The worker thread alone touches `ra->redis` through the tier calls,
 *    except strata_redis_stats(), which is atomic and called from any
 *    thread (stats and the "down" check at submission).
 *  - `ra->lock` guards the queue (head, tail, depth) and `stopping`.
 *    Submitters take it to append; the worker takes it to detach a batch
 *    and to wait on `ra->wake`.  No tier call and no callback runs with
 *    the lock held, so a callback may submit again.
 *  - An operation belongs to the submitter until appended, to the queue
 *    while linked, and to the worker once detached; the worker frees it.
 *  - The "down" check at submission reads a relaxed atomic that may be
 *    stale: a lookup may be queued just as the tier goes down (it then
 *    fails fast with STRATA_EUNAVAIL through its callback) or refused just
 *    as it comes back (a miss).  Both are harmless.
 *  - Stop: sets `stopping` under the lock (later submissions are refused),
 *    wakes the worker, which finishes its current batch item, then
 *    detaches whatever is queued and cancels it: lookups are called back
 *    with STRATA_ECANCELED, writes dropped.  Every accepted lookup's
 *    callback thus runs exactly once, before pthread_join returns.
 *  - `depth` counts operations accepted and not yet finished, the
 *    running batch included, so queue_limit bounds the memory held and
 *    the callbacks owed.  It is read under the lock for stats.
 *  - Counters are atomics with relaxed order: statistics, they order
 *    nothing.
 */
#include "config.h"

#include "tier/redis_async.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "strata/strata.h"

#define REDIS_ASYNC_MAGIC 0x52415359u /* "RASY" */
#define DEFAULT_QUEUE_LIMIT 1024u
#define DEFAULT_PING_MS 100u
/* Operations taken per wake: bounds how long a stop waits behind work. */
#define BATCH_MAX 64u

enum op_kind { OP_GET, OP_SET, OP_DEL };

struct op {
	enum op_kind kind;
	struct op *next;
	struct strata_key key;             /* GET, DEL */
	struct strata_entry *entry;        /* SET: our reference */
	int64_t now;                       /* GET */
	strata_redis_lookup_fn *cb;        /* GET */
	void *arg;
	size_t key_len;                    /* GET */
	char key_text[];                   /* GET: key_len bytes + NUL */
};

struct strata_redis_async {
	uint32_t magic;
	struct strata_redis *redis;        /* worker thread (see above) */
	size_t queue_limit;
	unsigned ping_ms;
	pthread_t thread;

	/* Guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct op *head, *tail;
	size_t depth;
	bool stopping;

	/* Any thread (relaxed). */
	atomic_uint_fast64_t dropped, refused, lookups, canceled;
};

static void count(atomic_uint_fast64_t *c)
{
	/* Relaxed: a statistic, orders nothing. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static bool tier_down(struct strata_redis_async *ra)
{
	struct strata_redis_stats st;

	strata_redis_stats(ra->redis, &st);
	return st.state == STRATA_REDIS_DOWN;
}

static void free_op(struct op **op)
{
	if (*op == NULL)
		return;
	strata_entry_release(&(*op)->entry);
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
		op->next = NULL;
		if (ra->tail != NULL)
			ra->tail->next = op;
		else
			ra->head = op;
		ra->tail = op;
		ra->depth++;
		accepted = true;
		pthread_cond_signal(&ra->wake);
	}
	pthread_mutex_unlock(&ra->lock);
	if (!accepted) {
		free_op(&op);
		return STRATA_EUNAVAIL;
	}
	return 0;
}

/* --- the worker ----------------------------------------------------------- */

static void run_op(struct strata_redis_async *ra, struct op *op)
{
	struct strata_entry *e = NULL;
	int rc;

	switch (op->kind) {
	case OP_GET:
		rc = strata_redis_get(ra->redis, &op->key, op->key_text,
				      op->key_len, op->now, &e);
		op->cb(op->arg, rc, e);
		break;
	case OP_SET:
		(void)strata_redis_set(ra->redis, op->entry, strata_wall_ms());
		break;
	case OP_DEL:
		(void)strata_redis_del(ra->redis, &op->key);
		break;
	}
}

static void cancel_op(struct strata_redis_async *ra, struct op *op)
{
	if (op->kind == OP_GET) {
		count(&ra->canceled);
		op->cb(op->arg, STRATA_ECANCELED, NULL);
	} else {
		count(&ra->dropped);
	}
}

/* Detach up to `max` operations from the head.  Caller holds the lock.
 * They still count in `depth` until finished(), so that queue_limit
 * bounds everything accepted and not yet done, the batch included. */
static struct op *detach_locked(struct strata_redis_async *ra, size_t max)
{
	struct op *first = ra->head, *last = NULL, *op = ra->head;
	size_t n = 0;

	while (op != NULL && n < max) {
		last = op;
		op = op->next;
		n++;
	}
	if (last == NULL)
		return NULL;
	last->next = NULL;
	ra->head = op;
	if (op == NULL)
		ra->tail = NULL;
	return first;
}

/* An operation is done: it stops counting against queue_limit. */
static void finished(struct strata_redis_async *ra)
{
	pthread_mutex_lock(&ra->lock);
	ra->depth--;
	pthread_mutex_unlock(&ra->lock);
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *worker(void *arg)
{
	struct strata_redis_async *ra = arg;
	struct op *batch, *op;
	bool stopping, idle_timeout;

	for (;;) {
		pthread_mutex_lock(&ra->lock);
		idle_timeout = false;
		while (ra->head == NULL && !ra->stopping && !idle_timeout) {
			if (tier_down(ra)) {
				struct timespec ts;

				deadline_in(&ts, ra->ping_ms);
				idle_timeout = pthread_cond_timedwait(
						       &ra->wake, &ra->lock,
						       &ts) == ETIMEDOUT;
			} else {
				pthread_cond_wait(&ra->wake, &ra->lock);
			}
		}
		stopping = ra->stopping;
		batch = stopping ? NULL : detach_locked(ra, BATCH_MAX);
		pthread_mutex_unlock(&ra->lock);

		if (stopping)
			break;
		if (batch == NULL) {
			/* Idle while down: let the breaker try a reconnect. */
			(void)strata_redis_ping(ra->redis);
			continue;
		}
		while ((op = batch) != NULL) {
			batch = op->next;
			/* Stop cancels what is not yet sent, even in a batch
			 * already taken: a relaxed peek would be enough, but
			 * the lock keeps `stopping` simply guarded. */
			pthread_mutex_lock(&ra->lock);
			stopping = ra->stopping;
			pthread_mutex_unlock(&ra->lock);
			if (stopping)
				cancel_op(ra, op);
			else
				run_op(ra, op);
			free_op(&op);
			finished(ra);
		}
	}

	/* Stopping: nothing more is accepted; cancel what is left. */
	pthread_mutex_lock(&ra->lock);
	batch = detach_locked(ra, SIZE_MAX);
	pthread_mutex_unlock(&ra->lock);
	while ((op = batch) != NULL) {
		batch = op->next;
		cancel_op(ra, op);
		free_op(&op);
		finished(ra);
	}
	return NULL;
}

/* --- the API -------------------------------------------------------------- */

int strata_redis_async_start(const struct strata_redis_config *cfg,
			     size_t queue_limit,
			     struct strata_redis_async **out)
{
	struct strata_redis_async *ra;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	ra = calloc(1, sizeof(*ra));
	if (ra == NULL)
		return -ENOMEM;
	ra->magic = REDIS_ASYNC_MAGIC;
	ra->queue_limit = queue_limit != 0 ? queue_limit : DEFAULT_QUEUE_LIMIT;
	ra->ping_ms = cfg->backoff_min_ms != 0 ? cfg->backoff_min_ms
					       : DEFAULT_PING_MS;
	rc = strata_redis_open(cfg, &ra->redis);
	if (rc != 0)
		goto out_free;
	pthread_mutex_init(&ra->lock, NULL);
	/* Monotonic: the idle PING interval must not jump with the clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ra->wake, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&ra->thread, NULL, worker, ra);
	if (rc != 0) {
		rc = -rc;
		goto out_sync;
	}
	*out = ra;
	return 0;

out_sync:
	pthread_cond_destroy(&ra->wake);
	pthread_mutex_destroy(&ra->lock);
	strata_redis_close(&ra->redis);
out_free:
	free(ra);
	return rc;
}

void strata_redis_async_stop(struct strata_redis_async **rap)
{
	struct strata_redis_async *ra = rap != NULL ? *rap : NULL;

	if (ra == NULL)
		return;
	STRATA_ASSERT(ra->magic == REDIS_ASYNC_MAGIC);
	STRATA_ASSERT(!pthread_equal(pthread_self(), ra->thread));
	pthread_mutex_lock(&ra->lock);
	ra->stopping = true;
	pthread_cond_signal(&ra->wake);
	pthread_mutex_unlock(&ra->lock);
	pthread_join(ra->thread, NULL);
	STRATA_ASSERT(ra->head == NULL && ra->depth == 0);
	pthread_cond_destroy(&ra->wake);
	pthread_mutex_destroy(&ra->lock);
	strata_redis_close(&ra->redis);
	ra->magic = 0;
	free(ra);
	*rap = NULL;
}

int strata_redis_async_lookup(struct strata_redis_async *ra,
			      const struct strata_key *key,
			      const char *key_text, size_t key_len,
			      int64_t now, strata_redis_lookup_fn *cb,
			      void *arg)
{
	struct op *op;
	int rc;

	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	STRATA_ASSERT(cb != NULL && key != NULL);
	if (tier_down(ra)) {
		count(&ra->refused);
		return STRATA_EUNAVAIL;
	}
	op = malloc(sizeof(*op) + key_len + 1);
	if (op == NULL)
		return -ENOMEM;
	*op = (struct op){.kind = OP_GET, .key = *key, .now = now, .cb = cb,
			  .arg = arg, .key_len = key_len};
	if (key_len != 0)
		memcpy(op->key_text, key_text, key_len);
	op->key_text[key_len] = '\0';
	rc = enqueue(ra, op);
	count(rc == 0 ? &ra->lookups : &ra->refused);
	return rc;
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
			     struct strata_entry *entry)
{
	struct op proto = { .kind = OP_SET };
	int rc;

	STRATA_ASSERT(entry != NULL);
	proto.entry = strata_entry_ref(entry);
	rc = enqueue_write(ra, &proto);
	if (rc == -ENOMEM)
		strata_entry_release(&proto.entry);
	return rc;
}

int strata_redis_async_del(struct strata_redis_async *ra,
			   const struct strata_key *key)
{
	STRATA_ASSERT(key != NULL);
	return enqueue_write(ra, &(struct op){ .kind = OP_DEL, .key = *key });
}

void strata_redis_async_stats(struct strata_redis_async *ra,
			      struct strata_redis_async_stats *out)
{
	STRATA_ASSERT(ra != NULL && ra->magic == REDIS_ASYNC_MAGIC);
	pthread_mutex_lock(&ra->lock);
	out->queued = ra->depth;
	pthread_mutex_unlock(&ra->lock);
	/* Relaxed: independent statistics. */
	out->dropped = atomic_load_explicit(&ra->dropped, memory_order_relaxed);
	out->refused = atomic_load_explicit(&ra->refused, memory_order_relaxed);
	out->lookups = atomic_load_explicit(&ra->lookups, memory_order_relaxed);
	out->canceled =
		atomic_load_explicit(&ra->canceled, memory_order_relaxed);
	strata_redis_stats(ra->redis, &out->redis);
}
