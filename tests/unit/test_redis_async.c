/*
 * Unit tests for src/tier/redis_async.c: the Redis tier's worker thread.
 *
 * Each test starts its own real redis-server on a free loopback port
 * (tests/helpers/redis_server.h).  A paused server (SIGSTOP) keeps the
 * worker stuck in a command so that the queue fills; a killed one trips
 * the circuit breaker.  Callbacks record into `struct done` slots; waits
 * are bounded and scaled by $STRATA_TEST_TIMEOUT_MULT.
 */
#include "config.h"

#include "tier/redis_async.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "core/log.h"
#include "../helpers/proc.h"
#include "../helpers/redis_server.h"
#include "strata/strata.h"

#define HOUR_MS 3600000
#define MAX_SLOTS 64

static struct redis_server *server;
static struct strata_redis_async *ra;

/* One lookup's outcome, written by the worker under `done_lock`. */
struct done {
	int calls;
	int rc;
	struct strata_entry *entry;
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static struct done slots[MAX_SLOTS];

static void setup(void)
{
	strata_log_set_level(STRATA_LOG_ERROR);
	memset(slots, 0, sizeof(slots));
}

static void teardown(void)
{
	size_t i;

	strata_redis_async_stop(&ra);
	for (i = 0; i < MAX_SLOTS; i++)
		strata_entry_release(&slots[i].entry);
	if (server != NULL && redis_server_pid(server) > 0)
		(void)redis_server_resume(server);
	redis_server_stop(&server);
}

TestSuite(redis_async, .init = setup, .fini = teardown, .timeout = 60);

static void lookup_cb(void *arg, int rc, struct strata_entry *entry)
{
	struct done *d = arg;

	pthread_mutex_lock(&done_lock);
	d->calls++;
	d->rc = rc;
	if (entry != NULL) {
		/* A second call would leak the first entry: calls catches it. */
		strata_entry_release(&d->entry);
		d->entry = entry;
	}
	pthread_cond_broadcast(&done_cond);
	pthread_mutex_unlock(&done_lock);
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000L +
	       (now.tv_nsec - since->tv_nsec) / 1000000L;
}

/* Wait until slots[0..n) with want[i] set have been called; false on
 * timeout (ms, scaled). */
static bool wait_done(size_t n, const bool *want, long ms)
{
	struct timespec start, ts;
	bool all = false;
	size_t i;

	ms = proc_scaled_ms(ms);
	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_mutex_lock(&done_lock);
	for (;;) {
		all = true;
		for (i = 0; i < n; i++)
			if ((want == NULL || want[i]) && slots[i].calls == 0)
				all = false;
		if (all || elapsed_ms(&start) >= ms)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&done_cond, &done_lock, &ts);
	}
	pthread_mutex_unlock(&done_lock);
	return all;
}

static void start(size_t queue_limit)
{
	char url[256];
	struct strata_redis_async_config cfg = {
		.redis = {.url = url, .prefix = "t", .timeout_ms = 1000,
			  .backoff_min_ms = 50, .backoff_max_ms = 200},
		.queue_limit = queue_limit,
		.pool = 1,
	};

	server = redis_server_start(NULL);
	cr_assert_not_null(server, "cannot start redis-server");
	redis_server_url(server, false, NULL, url, sizeof(url));
	cr_assert_eq(strata_redis_async_start(&cfg, &ra), 0);
}

static struct strata_entry *make_entry(const char *text, int64_t now)
{
	struct strata_entry_params p = {
		.key_text = text,
		.key_len = strlen(text),
		.route = "r",
		.status = 200,
		.created = now,
		.expires = now + HOUR_MS,
		.body = "hello async",
		.body_len = 11,
	};
	struct strata_entry *e = NULL;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	return e;
}

static int lookup(const char *text, int64_t now, struct done *d)
{
	struct strata_key key;

	strata_key_hash(text, strlen(text), &key);
	return strata_redis_async_lookup(ra, &key, text, strlen(text), now,
					 lookup_cb, d);
}

static enum strata_redis_state state(void)
{
	struct strata_redis_async_stats st;

	strata_redis_async_stats(ra, &st);
	return st.redis.state;
}

/* Poll until the tier reports `want`, up to `ms` (scaled). */
static bool wait_state(enum strata_redis_state want, long ms)
{
	struct timespec start;
	struct timespec nap = {.tv_nsec = 10 * 1000000L};

	ms = proc_scaled_ms(ms);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (state() != want) {
		if (elapsed_ms(&start) >= ms)
			return false;
		nanosleep(&nap, NULL);
	}
	return true;
}

Test(redis_async, store_then_lookup_hits_via_callback)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e;
	struct strata_redis_async_stats st;

	start(16);
	e = make_entry("GET /a", now);
	cr_assert_eq(strata_redis_async_store(ra, e, false), 0);
	/* The module holds its own reference: ours may go now. */
	strata_entry_release(&e);
	/* One FIFO, one worker: the GET runs after the SET. */
	cr_assert_eq(lookup("GET /a", now, &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 5000), "lookup callback never ran");
	cr_assert_eq(slots[0].calls, 1);
	cr_assert_eq(slots[0].rc, 0);
	cr_assert_not_null(slots[0].entry);
	cr_assert_eq(slots[0].entry->key_len, 6);
	cr_assert_eq(memcmp(slots[0].entry->key_text, "GET /a", 6), 0);
	cr_assert_eq(slots[0].entry->body_len, 11);
	cr_assert_eq(memcmp(slots[0].entry->body, "hello async", 11), 0);

	/* `queued` counts an operation until the worker has finished it,
	 * which is just after its callback returns: wait for that. */
	for (long waited = 0;; waited += 5) {
		strata_redis_async_stats(ra, &st);
		if (st.queued == 0 || waited >= proc_scaled_ms(5000))
			break;
		usleep(5 * 1000);
	}
	cr_assert_eq(st.lookups, 1);
	cr_assert_eq(st.redis.hits, 1);
	cr_assert_eq(st.redis.stores, 1);
	cr_assert_eq(st.dropped, 0);
	cr_assert_eq(st.queued, 0);
}

Test(redis_async, del_then_lookup_misses)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e = make_entry("GET /d", now);
	struct strata_key key = e->key;

	start(16);
	cr_assert_eq(strata_redis_async_store(ra, e, false), 0);
	strata_entry_release(&e);
	cr_assert_eq(strata_redis_async_del(ra, &key), 0);
	cr_assert_eq(lookup("GET /d", now, &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 5000));
	cr_assert_eq(slots[0].rc, STRATA_EMISS);
	cr_assert_null(slots[0].entry);
}

Test(redis_async, absent_key_misses)
{
	struct strata_redis_async_stats st;

	start(16);
	cr_assert_eq(lookup("GET /nothing", strata_wall_ms(), &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 5000));
	cr_assert_eq(slots[0].calls, 1);
	cr_assert_eq(slots[0].rc, STRATA_EMISS);
	cr_assert_null(slots[0].entry);
	strata_redis_async_stats(ra, &st);
	cr_assert_eq(st.redis.misses, 1);
}

Test(redis_async, full_queue_refuses_at_once_and_counts)
{
	int64_t now = strata_wall_ms();
	bool accepted[10] = {false};
	size_t i, n_refused = 0, n_dropped = 0;
	struct strata_redis_async_stats st;
	struct strata_entry *e = make_entry("GET /full", now);
	struct timespec t0;

	start(2);
	/* The worker is connected; paused, its first GET blocks. */
	cr_assert_eq(redis_server_pause(server), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 10; i++) {
		int rc = lookup("GET /full", now, &slots[i]);

		cr_assert(rc == 0 || rc == STRATA_EUNAVAIL, "rc %d", rc);
		accepted[i] = rc == 0;
		n_refused += rc != 0;
	}
	for (i = 0; i < 5; i++) {
		int rc = strata_redis_async_store(ra, e, false);

		cr_assert(rc == 0 || rc == STRATA_EUNAVAIL, "rc %d", rc);
		n_dropped += rc != 0;
	}
	/* Refusals are immediate, not a wait on Redis (timeout 1 s). */
	cr_assert_lt(elapsed_ms(&t0), proc_scaled_ms(500));
	/* queue_limit counts the stuck GET too: two in, the rest out. */
	cr_assert_eq(n_refused, 8);
	cr_assert_eq(n_dropped, 5);
	strata_redis_async_stats(ra, &st);
	cr_assert_eq(st.refused, n_refused);
	cr_assert_eq(st.lookups, 10 - n_refused);
	cr_assert_eq(st.dropped, n_dropped);
	cr_assert_eq(st.queued, 2);
	strata_entry_release(&e);

	/* Every accepted lookup completes: the stuck one times out, the
	 * rest fail fast on the broken tier. */
	cr_assert(wait_done(10, accepted, 5000));
	for (i = 0; i < 10; i++) {
		cr_assert_eq(slots[i].calls, accepted[i] ? 1 : 0);
		if (accepted[i])
			cr_assert_eq(slots[i].rc, STRATA_EUNAVAIL);
	}
}

Test(redis_async, killed_redis_fails_fast_then_recovers)
{
	int64_t now = strata_wall_ms();
	bool accepted[8] = {false};
	struct timespec t0;
	size_t i;

	start(16);
	cr_assert_eq(redis_server_kill(server), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 8; i++) {
		int rc = lookup("GET /k", now, &slots[i]);

		cr_assert(rc == 0 || rc == STRATA_EUNAVAIL, "rc %d", rc);
		accepted[i] = rc == 0;
		if (rc == 0)
			cr_assert(wait_done(i + 1, accepted, 2000));
	}
	for (i = 0; i < 8; i++)
		if (accepted[i])
			cr_assert_eq(slots[i].rc, STRATA_EUNAVAIL);
	/* Connection refused trips the breaker well within the timeout. */
	cr_assert_lt(elapsed_ms(&t0), proc_scaled_ms(1000));
	cr_assert_eq(state(), STRATA_REDIS_DOWN);
	/* Down: refused at once, the callback never runs. */
	memset(&slots[9], 0, sizeof(slots[9]));
	cr_assert_eq(lookup("GET /k", now, &slots[9]), STRATA_EUNAVAIL);

	/* Back: the idle worker's PING reconnects without any traffic. */
	cr_assert_eq(redis_server_restart(server), 0);
	cr_assert(wait_state(STRATA_REDIS_UP, 3000), "never reconnected");
	cr_assert_eq(lookup("GET /k", now, &slots[10]), 0);
	cr_assert(wait_done(11, (bool[11]){[10] = true}, 5000));
	cr_assert_eq(slots[10].rc, STRATA_EMISS);
	cr_assert_eq(slots[9].calls, 0);
}

Test(redis_async, stop_calls_every_queued_lookup_back_once)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e = make_entry("GET /s", now);
	size_t i, n_canceled = 0;

	start(100);
	cr_assert_eq(redis_server_pause(server), 0);
	/* The worker takes every operation queued by the time it wakes as
	 * one batch (pipelined); let it take the first alone and get stuck
	 * on the paused server, so that the rest are still queued at stop. */
	cr_assert_eq(lookup("GET /s", now, &slots[0]), 0);
	usleep((useconds_t)proc_scaled_ms(200) * 1000);
	for (i = 1; i < 20; i++)
		cr_assert_eq(lookup("GET /s", now, &slots[i]), 0);
	for (i = 0; i < 5; i++)
		cr_assert_eq(strata_redis_async_store(ra, e, false), 0);
	cr_assert_eq(strata_redis_async_del(ra, &e->key), 0);
	strata_entry_release(&e);

	/* Waits for the GET in progress (up to the 1 s timeout), cancels
	 * the rest and releases the queued entry references. */
	strata_redis_async_stop(&ra);
	cr_assert_null(ra);
	for (i = 0; i < 20; i++) {
		cr_assert_eq(slots[i].calls, 1, "slot %zu called %d times", i,
			     slots[i].calls);
		cr_assert(slots[i].rc == STRATA_ECANCELED ||
				  slots[i].rc == STRATA_EUNAVAIL,
			  "slot %zu rc %d", i, slots[i].rc);
		cr_assert_null(slots[i].entry);
		n_canceled += slots[i].rc == STRATA_ECANCELED;
	}
	/* Only the one taken before stop may have been sent. */
	cr_assert_geq(n_canceled, 19);
}

Test(redis_async, stop_of_null_is_harmless)
{
	struct strata_redis_async *none = NULL;

	strata_redis_async_stop(&none);
	strata_redis_async_stop(NULL);
}

/* --- fills: fleet-wide coalescing between two "instances" ---------------- */

static struct strata_redis_async *ra_b;

static void fill_cb(void *arg, enum strata_redis_fill outcome,
		    struct strata_entry *entry)
{
	lookup_cb(arg, (int)outcome, entry);
}

/* Two modules on the same Redis, as two instances would run them, with
 * the given lock settings (0: the module's defaults). */
static void start_pair_locks(uint64_t lock_ttl_ms, uint64_t lock_wait_ms,
			     uint64_t lock_hold_max_ms)
{
	char url[256];
	struct strata_redis_async_config cfg = {
		.redis = {.url = url, .prefix = "t", .timeout_ms = 1000,
			  .backoff_min_ms = 50, .backoff_max_ms = 200},
		.queue_limit = 64,
		.pool = 2,
		.token = "instance-a",
		.lock_ttl_ms = lock_ttl_ms,
		.lock_wait_ms = lock_wait_ms,
		.lock_hold_max_ms = lock_hold_max_ms,
	};

	server = redis_server_start(NULL);
	cr_assert_not_null(server, "cannot start redis-server");
	redis_server_url(server, false, NULL, url, sizeof(url));
	cr_assert_eq(strata_redis_async_start(&cfg, &ra), 0);
	cfg.token = "instance-b";
	cr_assert_eq(strata_redis_async_start(&cfg, &ra_b), 0);
}

static void start_pair(uint64_t lock_wait_ms)
{
	start_pair_locks(10000, lock_wait_ms, 0);
}

static void stop_b(void)
{
	strata_redis_async_stop(&ra_b);
}

static int fill(struct strata_redis_async *m, const char *text,
		struct done *d)
{
	struct strata_key key;

	strata_key_hash(text, strlen(text), &key);
	return strata_redis_async_fill(m, &key, text, strlen(text),
				       strata_wall_ms(), fill_cb, d);
}

/* The lock's value in Redis for `text` ("" when there is none). */
static void lock_value(const char *text, char *out, size_t cap)
{
	struct strata_key key;
	char hex[STRATA_KEY_HEX_LEN + 1], name[64];
	size_t len = 0;

	strata_key_hash(text, strlen(text), &key);
	strata_key_hex(&key, hex);
	snprintf(name, sizeof(name), "t:l:%s", hex);
	if (redis_server_cmd(server, 2, (const char *[]){"GET", name}, NULL,
			     out, cap, &len) != '$' ||
	    len == (size_t)-1)
		out[0] = '\0';
}

Test(redis_async, a_fill_that_misses_leads_and_a_second_waits_for_it,
     .fini = stop_b)
{
	struct strata_entry *e = make_entry("GET /fill", strata_wall_ms());
	char lock[64];
	struct strata_redis_async_stats st;

	start_pair(5000);
	cr_assert_eq(fill(ra, "GET /fill", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_expect_eq(slots[0].rc, STRATA_REDIS_FILL_LEAD);
	lock_value("GET /fill", lock, sizeof(lock));
	cr_expect_str_eq(lock, "instance-a");

	cr_assert_eq(fill(ra_b, "GET /fill", &slots[1]), 0);
	/* Still waiting: the leader has not stored yet. */
	usleep(100 * 1000);
	pthread_mutex_lock(&done_lock);
	cr_expect_eq(slots[1].calls, 0);
	pthread_mutex_unlock(&done_lock);

	cr_assert_eq(strata_redis_async_store(ra, e, true), 0);
	cr_assert(wait_done(2, NULL, 2000));
	cr_expect_eq(slots[1].rc, STRATA_REDIS_FILL_FILLED);
	cr_assert_not_null(slots[1].entry);
	cr_expect_str_eq(slots[1].entry->key_text, "GET /fill");
	lock_value("GET /fill", lock, sizeof(lock));
	cr_expect_str_eq(lock, "", "the store released the lock");
	strata_redis_async_stats(ra_b, &st);
	cr_expect_eq(st.filled, 1);
	strata_entry_release(&e);

	/* Now it is in Redis: a third fill hits at once. */
	cr_assert_eq(fill(ra_b, "GET /fill", &slots[2]), 0);
	cr_assert(wait_done(3, NULL, 2000));
	cr_expect_eq(slots[2].rc, STRATA_REDIS_FILL_HIT);
}

Test(redis_async, a_waiter_fetches_when_the_lock_goes_without_an_entry,
     .fini = stop_b)
{
	struct strata_key key;
	struct timespec t0;

	start_pair(5000);
	strata_key_hash("GET /nostore", 12, &key);
	cr_assert_eq(fill(ra, "GET /nostore", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_assert_eq(slots[0].rc, STRATA_REDIS_FILL_LEAD);
	cr_assert_eq(fill(ra_b, "GET /nostore", &slots[1]), 0);
	usleep(50 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* The leader's answer was not storable: it only unlocks. */
	cr_assert_eq(strata_redis_async_unlock(ra, &key), 0);
	cr_assert(wait_done(2, NULL, 2000));
	cr_expect_eq(slots[1].rc, STRATA_REDIS_FILL_FETCH);
	/* Polls are at most 50 ms apart: no wait for lock_wait (5 s). */
	cr_expect_lt(elapsed_ms(&t0), proc_scaled_ms(1000));
}

Test(redis_async, a_waiter_gives_up_after_lock_wait, .fini = stop_b)
{
	struct timespec t0;
	struct strata_redis_async_stats st;

	start_pair(300);
	cr_assert_eq(fill(ra, "GET /stuck", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_assert_eq(slots[0].rc, STRATA_REDIS_FILL_LEAD);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fill(ra_b, "GET /stuck", &slots[1]), 0);
	cr_assert(wait_done(2, NULL, 3000));
	cr_expect_eq(slots[1].rc, STRATA_REDIS_FILL_FETCH);
	cr_expect_geq(elapsed_ms(&t0), 280);
	strata_redis_async_stats(ra_b, &st);
	cr_expect_eq(st.lock_timeouts, 1);
}

Test(redis_async, stop_sends_a_waiting_fill_to_fetch, .fini = stop_b)
{
	start_pair(10000);
	cr_assert_eq(fill(ra, "GET /bye", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_assert_eq(fill(ra_b, "GET /bye", &slots[1]), 0);
	usleep(50 * 1000);
	stop_b();
	pthread_mutex_lock(&done_lock);
	cr_expect_eq(slots[1].calls, 1);
	cr_expect_eq(slots[1].rc, STRATA_REDIS_FILL_FETCH);
	pthread_mutex_unlock(&done_lock);
}

/* --- held locks: extended while held, short-lived when the holder dies --- */

/* The lock's PTTL in Redis for `text` (-2: no lock). */
static long long lock_pttl(const char *text)
{
	struct strata_key key;
	char hex[STRATA_KEY_HEX_LEN + 1], name[64], reply[64];

	strata_key_hash(text, strlen(text), &key);
	strata_key_hex(&key, hex);
	snprintf(name, sizeof(name), "t:l:%s", hex);
	cr_assert_eq(redis_server_cmd(server, 2,
				      (const char *[]){"PTTL", name}, NULL,
				      reply, sizeof(reply), NULL),
		     ':');
	return atoll(reply);
}

static struct strata_redis_async_stats stats_of(struct strata_redis_async *m)
{
	struct strata_redis_async_stats st;

	strata_redis_async_stats(m, &st);
	return st;
}

/* The lock_ttl of the tests below: extended every third of it, so a live
 * lock survives a stall of the worker or of redis-server of up to about
 * two thirds of it (a busy `make -j check`); scaled for slow builds. */
static long test_ttl(void)
{
	return proc_scaled_ms(900);
}

Test(redis_async, a_held_lock_outlives_its_ttl_until_the_store_releases_it,
     .fini = stop_b)
{
	struct strata_entry *e = make_entry("GET /slow", strata_wall_ms());
	const long ttl = test_ttl();
	struct timespec t0;
	char lock[64];
	long long pttl;

	start_pair_locks((uint64_t)ttl, 20 * (uint64_t)ttl, 0);
	cr_assert_eq(fill(ra, "GET /slow", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_assert_eq(slots[0].rc, STRATA_REDIS_FILL_LEAD);
	cr_assert_eq(fill(ra_b, "GET /slow", &slots[1]), 0);

	/* A slow fetch: four lock_ttl periods, the lock is ours all along
	 * and the other instance keeps waiting for our entry. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (elapsed_ms(&t0) < 4 * ttl) {
		lock_value("GET /slow", lock, sizeof(lock));
		cr_assert_str_eq(lock, "instance-a", "lost after %ld ms",
				 elapsed_ms(&t0));
		pttl = lock_pttl("GET /slow");
		cr_assert(pttl > 0 && pttl <= ttl, "PTTL %lld", pttl);
		usleep(50 * 1000);
	}
	pthread_mutex_lock(&done_lock);
	cr_expect_eq(slots[1].calls, 0, "the waiter gave up on a live lock");
	pthread_mutex_unlock(&done_lock);
	cr_expect_geq(stats_of(ra).extends, 6); /* 12 on time */
	cr_expect_eq(stats_of(ra).held, 1);

	/* The store releases it: the waiter gets the entry, and nothing
	 * extends (or re-creates) the lock any more. */
	cr_assert_eq(strata_redis_async_store(ra, e, true), 0);
	strata_entry_release(&e);
	cr_expect_eq(stats_of(ra).held, 0);
	cr_assert(wait_done(2, NULL, 2000));
	cr_expect_eq(slots[1].rc, STRATA_REDIS_FILL_FILLED);
	usleep(400 * 1000);
	cr_expect_eq(lock_pttl("GET /slow"), -2);
	cr_expect_eq(stats_of(ra).locks_lost, 0);
}

Test(redis_async, an_unlock_stops_the_extension_at_once, .fini = stop_b)
{
	const long ttl = test_ttl();
	struct strata_key key;
	uint64_t extends;

	start_pair_locks((uint64_t)ttl, 20 * (uint64_t)ttl, 0);
	strata_key_hash("GET /unstored", 13, &key);
	cr_assert_eq(fill(ra, "GET /unstored", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_assert_eq(slots[0].rc, STRATA_REDIS_FILL_LEAD);
	usleep((useconds_t)(2 * ttl) * 1000);
	cr_assert_gt(lock_pttl("GET /unstored"), 0, "not extended");

	cr_assert_eq(strata_redis_async_unlock(ra, &key), 0);
	cr_expect_eq(stats_of(ra).held, 0);
	/* At most one extension was already in its round trip. */
	extends = stats_of(ra).extends;
	usleep(400 * 1000);
	cr_expect_eq(lock_pttl("GET /unstored"), -2);
	cr_expect_leq(stats_of(ra).extends, extends + 1);
}

Test(redis_async, a_lock_is_not_extended_past_lock_hold_max, .fini = stop_b)
{
	const long ttl = test_ttl();
	struct timespec t0;
	long gone_ms;

	start_pair_locks((uint64_t)ttl, 20 * (uint64_t)ttl, 2 * (uint64_t)ttl);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fill(ra, "GET /stuck", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_assert_eq(slots[0].rc, STRATA_REDIS_FILL_LEAD);
	while (lock_pttl("GET /stuck") > 0 &&
	       elapsed_ms(&t0) < 3 * ttl + proc_scaled_ms(5000))
		usleep(20 * 1000);
	gone_ms = elapsed_ms(&t0);
	/* Extended (past 1.5 lock_ttl: twice at least) until hold_max, two
	 * lock_ttl, then left to its last lock_ttl. */
	cr_expect_gt(gone_ms, 3 * ttl / 2, "gone after %ld ms", gone_ms);
	cr_expect_lt(gone_ms, 3 * ttl + proc_scaled_ms(500),
		     "gone after %ld ms", gone_ms);
	cr_expect_eq(stats_of(ra).held, 0);
	cr_expect_eq(stats_of(ra).locks_lost, 1);
}

Test(redis_async, an_extension_never_touches_another_instances_lock,
     .fini = stop_b)
{
	const long ttl = test_ttl();
	struct strata_key key;
	char hex[STRATA_KEY_HEX_LEN + 1], name[64], reply[64], px[32];
	char lock[64];
	long long pttl;

	start_pair_locks((uint64_t)ttl, 20 * (uint64_t)ttl, 0);
	cr_assert_eq(fill(ra, "GET /taken", &slots[0]), 0);
	cr_assert(wait_done(1, NULL, 2000));
	cr_assert_eq(slots[0].rc, STRATA_REDIS_FILL_LEAD);
	usleep((useconds_t)(2 * ttl) * 1000);
	lock_value("GET /taken", lock, sizeof(lock));
	cr_assert_str_eq(lock, "instance-a", "not extended");

	/* Our lock lapsed (say Redis stalled past lock_ttl) and another
	 * instance took it, for ten lock_ttl. */
	strata_key_hash("GET /taken", 10, &key);
	strata_key_hex(&key, hex);
	snprintf(name, sizeof(name), "t:l:%s", hex);
	snprintf(px, sizeof(px), "%ld", 10 * ttl);
	cr_assert_eq(redis_server_cmd(server, 5,
				      (const char *[]){"SET", name,
						       "instance-b", "PX", px},
				      NULL, reply, sizeof(reply), NULL),
		     '+');
	/* Six extension periods: ours must leave it as it is (a plain
	 * PEXPIRE would have cut it to lock_ttl, and it would be gone). */
	usleep((useconds_t)(2 * ttl) * 1000);
	lock_value("GET /taken", lock, sizeof(lock));
	cr_expect_str_eq(lock, "instance-b");
	pttl = lock_pttl("GET /taken");
	cr_expect(pttl > 6 * ttl && pttl <= 8 * ttl, "PTTL %lld", pttl);
	/* Found another's: no longer ours to extend. */
	cr_expect_eq(stats_of(ra).held, 0);
	cr_expect_eq(stats_of(ra).locks_lost, 1);
	/* Our late unlock leaves it too. */
	cr_assert_eq(strata_redis_async_unlock(ra, &key), 0);
	usleep(100 * 1000);
	lock_value("GET /taken", lock, sizeof(lock));
	cr_expect_str_eq(lock, "instance-b");
}

/*
 * A replica crashing mid-fill, for real: a child process takes the lock
 * with the default lock settings, holds it (extended) while it lives, and
 * is killed with SIGKILL.  Never returns in the child.
 */
static void hold_in_child(const char *url, int fd)
{
	struct strata_redis_async_config cfg = {
		.redis = {.url = url, .prefix = "t", .timeout_ms = 1000,
			  .backoff_min_ms = 50, .backoff_max_ms = 200},
		.pool = 2,
		.token = "crashed",
		.lock_wait_ms = 60000,
	};
	struct strata_redis_async *m = NULL;
	char c = 'x';

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (strata_redis_async_start(&cfg, &m) == 0 &&
	    fill(m, "GET /crash", &slots[0]) == 0 &&
	    wait_done(1, NULL, 2000) &&
	    slots[0].rc == STRATA_REDIS_FILL_LEAD)
		c = 'L';
	if (write(fd, &c, 1) != 1 || c != 'L')
		_exit(1);
	for (;;)
		pause(); /* fetching, slowly, until killed */
}

Test(redis_async, a_crashed_holders_lock_is_gone_within_the_default_ttl,
     .fini = stop_b)
{
	char url[256], lock[64], c = 0;
	struct strata_redis_async_config cfg = {
		.redis = {.url = url, .prefix = "t", .timeout_ms = 1000,
			  .backoff_min_ms = 50, .backoff_max_ms = 200},
		.pool = 2,
		.token = "instance-b",
		.lock_wait_ms = 60000,
	};
	struct timespec t0;
	struct pollfd pfd;
	int fds[2], status;
	long waited;
	pid_t child;

	server = redis_server_start(NULL);
	cr_assert_not_null(server, "cannot start redis-server");
	redis_server_url(server, false, NULL, url, sizeof(url));
	/* Fork before this process starts any thread of its own. */
	cr_assert_eq(pipe(fds), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		close(fds[0]);
		hold_in_child(url, fds[1]);
	}
	close(fds[1]);
	pfd = (struct pollfd){.fd = fds[0], .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, (int)proc_scaled_ms(5000)), 1);
	cr_assert_eq(read(fds[0], &c, 1), 1);
	close(fds[0]);
	cr_assert_eq(c, 'L', "the child did not take the lock");

	/* Alive, the holder keeps its lock past the default lock_ttl... */
	cr_assert_eq(strata_redis_async_start(&cfg, &ra_b), 0);
	cr_assert_eq(fill(ra_b, "GET /crash", &slots[1]), 0);
	usleep(3500 * 1000);
	lock_value("GET /crash", lock, sizeof(lock));
	cr_assert_str_eq(lock, "crashed", "a live holder lost its lock");
	pthread_mutex_lock(&done_lock);
	cr_assert_eq(slots[1].calls, 0, "the waiter gave up on a live lock");
	pthread_mutex_unlock(&done_lock);

	/* ...and dead, it costs the waiter at most that lock_ttl (3 s),
	 * not the 30 s the lock used to live. */
	cr_assert_eq(kill(child, SIGKILL), 0);
	cr_assert_eq(waitpid(child, &status, 0), child);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* (slots[0] is the child's.) */
	cr_assert(wait_done(2, (bool[2]){[1] = true}, 3000 + 1000),
		  "still waiting after %ld ms", elapsed_ms(&t0));
	waited = elapsed_ms(&t0);
	cr_expect_eq(slots[1].rc, STRATA_REDIS_FILL_FETCH);
	cr_expect_lt(waited, 3000 + proc_scaled_ms(1000), "waited %ld ms",
		     waited);
	/* The next fill leads at once. */
	cr_assert_eq(fill(ra_b, "GET /crash", &slots[2]), 0);
	cr_assert(wait_done(3, (bool[3]){[2] = true}, 2000));
	cr_expect_eq(slots[2].rc, STRATA_REDIS_FILL_LEAD);
}
