/*
 * fleet.c: fleet-wide purges and the purge-stream follower (see fleet.h).
 *
 * The follower thread's loop:
 *
 *   connect (the breaker in redis.c paces attempts) ----fails----> DOWN
 *   read the epoch; compare with the recorded position:
 *     other epoch, or stream trimmed past our id ---> apply(NULL), jump
 *                                                      to the stream's end
 *     no position (first start) ----------------------> start at the end
 *   XREAD (no wait) in chunks until nothing is left --> SYNCED
 *   XREAD BLOCK 1000 ms forever; a failure ---------> DOWN, start over
 *
 * Concurrency: `state` and `applied` are atomics read by request threads
 * (relaxed: a request that reads a stale state serves from, or skips, its
 * local tiers one request too early or late; the start-up wait is what
 * orders the first sync, through `lock`/`cond`).  `lock` guards
 * `started` and `stopping` for start and stop; the follower's connection
 * and position are its own.  Purges from other threads use `purge_conn`
 * under `purge_lock`.
 */
#include "config.h"

#include "tier/fleet.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "strata/strata.h"

#define FLEET_MAGIC 0x464c4554u /* "FLET" */
#define BLOCK_MS 1000u
#define CHUNK 1000u
#define ORIGIN_MAX 96
#define EPOCH_MAX 48

struct strata_fleet {
	uint32_t magic;
	uint64_t purge_log;
	char origin[ORIGIN_MAX + 1];
	strata_fleet_apply_fn *apply;
	strata_fleet_position_fn *position_cb;
	void *arg;
	pthread_t thread;

	/* The follower thread's own. */
	struct strata_redis *follow_conn;
	char epoch[EPOCH_MAX + 1];             /* "" until read */
	char last_id[48];                      /* "" : none recorded */

	pthread_mutex_t purge_lock;            /* guards purge_conn */
	struct strata_redis *purge_conn;

	pthread_mutex_t lock;                  /* guards started, stopping */
	pthread_cond_t cond;
	bool started;                          /* first sync attempt done */
	bool stopping;

	atomic_uint state;                     /* enum strata_fleet_state */
	atomic_uint_fast64_t applied;
};

static void set_state(struct strata_fleet *f, enum strata_fleet_state s)
{
	enum strata_fleet_state old = (enum strata_fleet_state)
		atomic_exchange_explicit(&f->state, s, memory_order_relaxed);

	if (old == s)
		return;
	if (s == STRATA_FLEET_SYNCED)
		strata_log_info("fleet: following the purge stream");
	else if (s == STRATA_FLEET_DOWN && old == STRATA_FLEET_SYNCED)
		strata_log_warn("fleet: purge stream lost; serving local tiers "
				"until Redis is back, then catching up");
}

/* The first sync attempt is over (either way): let start() return. */
static void mark_started(struct strata_fleet *f)
{
	pthread_mutex_lock(&f->lock);
	f->started = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static bool stopping(struct strata_fleet *f)
{
	bool s;

	pthread_mutex_lock(&f->lock);
	s = f->stopping;
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* Sleep up to `ms`, waking early on stop. */
static void nap(struct strata_fleet *f, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	if (!f->stopping)
		pthread_cond_timedwait(&f->cond, &f->lock, &ts);
	pthread_mutex_unlock(&f->lock);
}

static void record_position(struct strata_fleet *f)
{
	char pos[STRATA_FLEET_POS_MAX + 1];

	if (f->position_cb == NULL || f->epoch[0] == '\0' ||
	    f->last_id[0] == '\0')
		return;
	snprintf(pos, sizeof(pos), "%s %s", f->epoch, f->last_id);
	f->position_cb(f->arg, pos);
}

static void on_record(void *arg, const char *id, const struct strata_purge *p,
		      const char *origin)
{
	struct strata_fleet *f = arg;

	snprintf(f->last_id, sizeof(f->last_id), "%s", id);
	if (origin != NULL && strcmp(origin, f->origin) == 0)
		return; /* ours: applied when it was made */
	if (p == NULL)
		strata_log_warn("fleet: purge record %s is of a newer format; "
				"dropping every local copy to be safe", id);
	f->apply(f->arg, p);
	/* Relaxed: a statistic. */
	atomic_fetch_add_explicit(&f->applied, 1, memory_order_relaxed);
}

/*
 * Whether purges after `last` may have been trimmed away.  Redis 7.0
 * leaves max-deleted-entry-id at 0-0 when XADD MAXLEN trims, so:
 *  - nothing was ever trimmed when every record added is still there
 *    (entries-added == length, Redis 7);
 *  - otherwise, if the oldest record kept is after ours, records in
 *    between may be gone.  Conservative: when the oldest kept record is
 *    the very next one nothing was missed, but that cannot be told apart.
 */
static bool trimmed_past(const struct strata_redis_stream_info *info,
			 const struct strata_redis_stream_id *last)
{
	if (!info->exists)
		return last->ms != 0 || last->seq != 0;
	if (info->has_entries_added && info->entries_added == info->length)
		return false;
	if (info->has_max_deleted &&
	    strata_redis_stream_id_cmp(&info->max_deleted, last) > 0)
		return true;
	return info->has_first &&
	       strata_redis_stream_id_cmp(&info->first, last) > 0;
}

/*
 * Establish the epoch and a position to read from.  Returns 0 or
 * STRATA_EUNAVAIL.
 */
static int establish(struct strata_fleet *f)
{
	struct strata_redis_stream_info info;
	struct strata_redis_stream_id last = {0, 0};
	char candidate[EPOCH_MAX + 1], epoch[EPOCH_MAX + 1];
	bool known;
	int rc;

	snprintf(candidate, sizeof(candidate), "%llx-%llx",
		 (unsigned long long)strata_wall_ms(),
		 (unsigned long long)strata_now_us());
	rc = strata_redis_epoch(f->follow_conn, candidate, epoch,
				sizeof(epoch));
	if (rc == 0)
		rc = strata_redis_stream_info(f->follow_conn, &info);
	if (rc != 0)
		return rc;
	known = f->last_id[0] != '\0' &&
		strata_redis_stream_id_parse(f->last_id, &last) == 0;
	if (known && strcmp(epoch, f->epoch) != 0) {
		strata_log_warn("fleet: Redis holds another dataset than the "
				"one this cache followed (restarted empty or "
				"flushed); purges may have been missed: "
				"dropping every local copy");
		f->apply(f->arg, NULL);
		known = false;
	} else if (known && trimmed_past(&info, &last)) {
		strata_log_warn("fleet: the purge stream was trimmed past %s "
				"(raise cache.redis.purge_log to keep more); "
				"dropping every local copy", f->last_id);
		f->apply(f->arg, NULL);
		known = false;
	}
	snprintf(f->epoch, sizeof(f->epoch), "%s", epoch);
	if (!known)
		snprintf(f->last_id, sizeof(f->last_id), "%llu-%llu",
			 (unsigned long long)info.last.ms,
			 (unsigned long long)info.last.seq);
	record_position(f);
	return 0;
}

/* Read without waiting until nothing is left.  Returns 0 or an error. */
static int catch_up(struct strata_fleet *f)
{
	long n;

	do {
		n = strata_redis_stream_read(f->follow_conn, f->last_id, 0,
					     CHUNK, on_record, f);
		if (n > 0)
			record_position(f);
	} while (n == (long)CHUNK && !stopping(f));
	return n < 0 ? (int)n : 0;
}

static void *follower(void *arg)
{
	struct strata_fleet *f = arg;
	long n;

	while (!stopping(f)) {
		if (strata_redis_ping(f->follow_conn) != 0) {
			set_state(f, STRATA_FLEET_DOWN);
			mark_started(f);
			nap(f, 100);
			continue;
		}
		set_state(f, STRATA_FLEET_CATCHING_UP);
		if (establish(f) != 0 || catch_up(f) != 0) {
			set_state(f, STRATA_FLEET_DOWN);
			mark_started(f);
			continue;
		}
		set_state(f, STRATA_FLEET_SYNCED);
		mark_started(f);
		while (!stopping(f)) {
			n = strata_redis_stream_read(f->follow_conn, f->last_id,
						     BLOCK_MS, CHUNK,
						     on_record, f);
			if (n < 0)
				break;
			if (n > 0)
				record_position(f);
		}
	}
	return NULL;
}

int strata_fleet_start(const struct strata_fleet_config *cfg,
		       struct strata_fleet **out)
{
	struct strata_redis_config rcfg = cfg->redis;
	struct strata_fleet *f;
	pthread_condattr_t ca;
	const char *pos = cfg->position;
	int rc;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->magic = FLEET_MAGIC;
	f->purge_log = cfg->purge_log;
	snprintf(f->origin, sizeof(f->origin), "%s", cfg->origin);
	f->apply = cfg->apply;
	f->position_cb = cfg->position_cb;
	f->arg = cfg->arg;
	if (pos != NULL && *pos != '\0') {
		const char *sp = strchr(pos, ' ');

		if (sp != NULL && (size_t)(sp - pos) <= EPOCH_MAX) {
			memcpy(f->epoch, pos, (size_t)(sp - pos));
			f->epoch[sp - pos] = '\0';
			snprintf(f->last_id, sizeof(f->last_id), "%s", sp + 1);
		}
	}
	atomic_init(&f->state, STRATA_FLEET_CATCHING_UP);
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->purge_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* The purge connection may wait on a long SCAN step; the follower's
	 * on XREAD BLOCK.  Neither speaks for the tier in the log. */
	rcfg.quiet = true;
	rc = strata_redis_open(&rcfg, &f->purge_conn);
	rcfg.block_ms = BLOCK_MS;
	if (rc == 0)
		rc = strata_redis_open(&rcfg, &f->follow_conn);
	if (rc == 0)
		rc = -pthread_create(&f->thread, NULL, follower, f);
	if (rc != 0) {
		strata_redis_close(&f->follow_conn);
		strata_redis_close(&f->purge_conn);
		pthread_cond_destroy(&f->cond);
		pthread_mutex_destroy(&f->purge_lock);
		pthread_mutex_destroy(&f->lock);
		free(f);
		return rc;
	}
	pthread_mutex_lock(&f->lock);
	while (!f->started)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	*out = f;
	return 0;
}

void strata_fleet_stop(struct strata_fleet **fp)
{
	struct strata_fleet *f = fp != NULL ? *fp : NULL;

	if (f == NULL)
		return;
	STRATA_ASSERT(f->magic == FLEET_MAGIC);
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	/* An XREAD BLOCK in progress ends within BLOCK_MS. */
	pthread_join(f->thread, NULL);
	strata_redis_close(&f->follow_conn);
	strata_redis_close(&f->purge_conn);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->purge_lock);
	pthread_mutex_destroy(&f->lock);
	f->magic = 0;
	free(f);
	*fp = NULL;
}

int strata_fleet_purge(struct strata_fleet *f, const struct strata_purge *p,
		       uint64_t *removed)
{
	char id[48];
	int rc;

	STRATA_ASSERT(f->magic == FLEET_MAGIC);
	pthread_mutex_lock(&f->purge_lock);
	rc = strata_redis_purge(f->purge_conn, p, f->purge_log, f->origin, id,
				sizeof(id), removed);
	pthread_mutex_unlock(&f->purge_lock);
	return rc;
}

int strata_fleet_delete(struct strata_fleet *f, const struct strata_purge *p,
			uint64_t *removed)
{
	int rc;

	STRATA_ASSERT(f->magic == FLEET_MAGIC);
	pthread_mutex_lock(&f->purge_lock);
	rc = strata_redis_delete(f->purge_conn, p, removed);
	pthread_mutex_unlock(&f->purge_lock);
	return rc;
}

int strata_fleet_exists(struct strata_fleet *f, const struct strata_key *keys,
			size_t n, bool *out)
{
	struct strata_redis_op *ops;
	int rc;

	STRATA_ASSERT(f->magic == FLEET_MAGIC);
	if (n == 0)
		return 0;
	ops = calloc(n, sizeof(*ops));
	if (ops == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ops[i] = (struct strata_redis_op){
			.kind = STRATA_REDIS_OP_EXISTS, .key = &keys[i]};
	pthread_mutex_lock(&f->purge_lock);
	rc = strata_redis_batch(f->purge_conn, ops, n);
	pthread_mutex_unlock(&f->purge_lock);
	for (size_t i = 0; rc == 0 && i < n; i++)
		out[i] = ops[i].rc == 0;
	free(ops);
	return rc;
}

enum strata_fleet_state strata_fleet_state(const struct strata_fleet *f)
{
	/* Relaxed: see the concurrency note above. */
	return (enum strata_fleet_state)atomic_load_explicit(
		&f->state, memory_order_relaxed);
}

bool strata_fleet_local_ok(const struct strata_fleet *f)
{
	return strata_fleet_state(f) != STRATA_FLEET_CATCHING_UP;
}

uint64_t strata_fleet_applied(const struct strata_fleet *f)
{
	return atomic_load_explicit(&f->applied, memory_order_relaxed);
}
