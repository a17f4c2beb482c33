/*
 * stress_metrics.c: metrics recording, scraping and thread churn at once.
 *
 * A plain C program (no Criterion) so that it also runs under
 * ThreadSanitizer.  Each round creates a metrics object, then runs at the
 * same time:
 *  - churning recorder threads: each records a few thousand requests of
 *    mixed routes, methods and results, adds what it recorded to a shared
 *    tally and exits, and a new one takes its place (so blocks of exited
 *    threads accumulate);
 *  - upstream threads: in-flight +1, a fetch, in-flight -1;
 *  - scraper threads: render, route stats and upstream stats in a loop;
 *  - a lingering thread that records into every round's object and stays
 *    alive across strata_metrics_free() and the next strata_metrics_new()
 *    (which may reuse the freed object's thread-specific key).
 * At the end of a round every thread is joined and the sums are compared
 * with the tallies, then the object is freed.
 *
 * Checked:
 *  - after the joins the sums equal what was recorded, exactly, per route
 *    and for the upstream (no event lost, none counted twice, none counted
 *    into the wrong object), and in-flight is back to 0;
 *  - while recording, each scrape's request total and origin time saved
 *    never go down, and the in-flight gauge stays within its bounds;
 *  - every render succeeds and is one NUL-terminated text ending in '\n'.
 *
 * Environment: STRESS_SECONDS (default 2, fractions allowed),
 * STRESS_RECORDERS (default 4).  A watchdog alarm kills a run that hangs.
 * Prints "stress_metrics: N passed, 0 failed"; exits non-zero with a
 * message on the first failure of each check.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obs/metrics.h"
#include "strata/config.h"

#define N_ROUTES 5
#define EVENTS_PER_RECORDER 5000
#define UPSTREAMS 2
#define SCRAPERS 2
#define MAX_RECORDERS 32

enum check {
	CHECK_SUMS,
	CHECK_MONOTONIC,
	CHECK_IN_FLIGHT,
	CHECK_RENDER,
	N_CHECKS,
};

static const char *const check_name[N_CHECKS] = {
	[CHECK_SUMS] = "sums equal what was recorded after the joins",
	[CHECK_MONOTONIC] = "scraped totals never go down",
	[CHECK_IN_FLIGHT] = "in-flight stays within its bounds",
	[CHECK_RENDER] = "every render succeeds and is well-formed",
};

/* Relaxed: failure counts are read after every thread is joined. */
static atomic_uint failures[N_CHECKS];

static void fail(enum check c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(enum check c, const char *fmt, ...)
{
	va_list ap;

	/* Print the first failure of each check only. */
	if (atomic_fetch_add_explicit(&failures[c], 1, memory_order_relaxed) !=
	    0)
		return;
	fprintf(stderr, "stress_metrics: FAILED: %s: ", check_name[c]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* One round's shared state. */
struct round {
	struct strata_metrics *m;
	/* Relaxed everywhere: the workers add, main reads after joining
	 * them (the join orders the adds before the read). */
	atomic_uint_fast64_t recorded[N_ROUTES + 1];
	atomic_uint_fast64_t fetched;
	/* Release store by main, acquire loads by workers: nothing else is
	 * published through it, acquire just keeps the intent obvious. */
	atomic_bool stop;
	int recorders;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *recorder_main(void *arg)
{
	struct round *rd = arg;
	uint64_t tally[N_ROUTES + 1] = { 0 };
	uint64_t seed = (uint64_t)(uintptr_t)&tally | 1;

	for (int i = 0; i < EVENTS_PER_RECORDER; i++) {
		uint64_t x = xorshift(&seed);
		size_t route = x % (N_ROUTES + 1);

		strata_metrics_request(rd->m, route, 1u << (x >> 8 & 7),
				       (x >> 16) % STRATA_CACHE_N_RESULTS,
				       x >> 32 & 0xfffff);
		tally[route]++;
	}
	for (size_t r = 0; r <= N_ROUTES; r++)
		atomic_fetch_add_explicit(&rd->recorded[r], tally[r],
					  memory_order_relaxed);
	return NULL;
}

/* Keeps `recorders` short-lived recorder threads going until stop. */
static void *churn_main(void *arg)
{
	struct round *rd = arg;
	pthread_t threads[MAX_RECORDERS];

	while (!atomic_load_explicit(&rd->stop, memory_order_acquire)) {
		int n = 0;

		for (; n < rd->recorders; n++)
			if (pthread_create(&threads[n], NULL, recorder_main,
					   rd) != 0)
				break;
		for (int k = 0; k < n; k++)
			pthread_join(threads[k], NULL);
	}
	return NULL;
}

static void *upstream_main(void *arg)
{
	struct round *rd = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed | 1;
	uint64_t n = 0;

	while (!atomic_load_explicit(&rd->stop, memory_order_acquire)) {
		uint64_t x = xorshift(&seed);
		static const unsigned statuses[] = { 0, 200, 304, 404, 503 };

		strata_metrics_upstream_inflight(rd->m, 1);
		strata_metrics_upstream(rd->m, x % (N_ROUTES + 1),
					statuses[(x >> 8) % 5], x >> 40);
		strata_metrics_upstream_inflight(rd->m, -1);
		if ((x & 0xff) == 0)
			strata_metrics_store_dropped(rd->m, "memory");
		n++;
	}
	atomic_fetch_add_explicit(&rd->fetched, n, memory_order_relaxed);
	return NULL;
}

static void *scraper_main(void *arg)
{
	struct round *rd = arg;
	uint64_t last_total = 0;
	double last_saved[N_ROUTES + 1] = { 0 };
	const struct strata_metrics_tier tiers[] = {
		{ .name = "memory", .on = true, .up = true },
		{ .name = "disk", .on = false },
	};

	while (!atomic_load_explicit(&rd->stop, memory_order_acquire)) {
		struct strata_metrics_upstream_stats up;
		uint64_t total = 0;
		char *text = NULL;
		size_t len = 0;

		for (size_t r = 0; r <= N_ROUTES; r++) {
			struct strata_metrics_route_stats st;

			strata_metrics_route_stats(rd->m, r, &st);
			total += st.requests;
			if (st.origin_seconds_saved < last_saved[r])
				fail(CHECK_MONOTONIC, "route %zu saved %f, "
				     "then %f", r, last_saved[r],
				     st.origin_seconds_saved);
			last_saved[r] = st.origin_seconds_saved;
		}
		/* Each route's count is monotonic, so their sum is too. */
		if (total < last_total)
			fail(CHECK_MONOTONIC, "requests %" PRIu64 ", then %"
			     PRIu64, last_total, total);
		last_total = total;
		strata_metrics_upstream_stats(rd->m, &up);
		if (up.in_flight < 0 || up.in_flight > UPSTREAMS)
			fail(CHECK_IN_FLIGHT, "in flight %" PRId64,
			     up.in_flight);
		if (strata_metrics_render(rd->m, tiers, 2, &text, &len) != 0 ||
		    text == NULL || strlen(text) != len || len == 0 ||
		    text[len - 1] != '\n')
			fail(CHECK_RENDER, "render returned %zu bytes", len);
		free(text);
	}
	return NULL;
}

/* The lingering thread: records once into each round's object, then
 * waits for the next round; it outlives every object but the last. */
struct lingerer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct strata_metrics *m;   /* the round to record into, or NULL */
	bool done;                  /* it recorded into m */
	bool quit;
};

static void *linger_main(void *arg)
{
	struct lingerer *l = arg;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->quit && (l->m == NULL || l->done))
			pthread_cond_wait(&l->cond, &l->lock);
		if (l->quit)
			break;
		strata_metrics_request(l->m, N_ROUTES, STRATA_METHOD_GET,
				       STRATA_CACHE_BYPASS, 1);
		l->done = true;
		pthread_cond_broadcast(&l->cond);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static double seconds_env(const char *name, double dflt)
{
	const char *s = getenv(name);

	return s != NULL && *s ? strtod(s, NULL) : dflt;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run_round(struct lingerer *l, int recorders)
{
	static const struct strata_metrics_route routes[N_ROUTES] = {
		{ "a", STRATA_METHOD_GET }, { "b", STRATA_METHOD_POST },
		{ "a", STRATA_METHOD_PUT }, { "q\"\\\n", 0xff },
		{ "e", STRATA_METHOD_GET },
	};
	struct round rd = { .recorders = recorders };
	pthread_t churn, ups[UPSTREAMS], scrapers[SCRAPERS];
	struct strata_metrics_upstream_stats up;

	if (strata_metrics_new(routes, N_ROUTES, &rd.m) != 0) {
		fail(CHECK_SUMS, "strata_metrics_new failed");
		return;
	}
	for (size_t r = 0; r <= N_ROUTES; r++)
		atomic_init(&rd.recorded[r], 0);
	atomic_init(&rd.fetched, 0);
	atomic_init(&rd.stop, false);

	pthread_mutex_lock(&l->lock);
	l->m = rd.m;
	l->done = false;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);

	pthread_create(&churn, NULL, churn_main, &rd);
	for (int i = 0; i < UPSTREAMS; i++)
		pthread_create(&ups[i], NULL, upstream_main, &rd);
	for (int i = 0; i < SCRAPERS; i++)
		pthread_create(&scrapers[i], NULL, scraper_main, &rd);
	usleep(100000);
	atomic_store_explicit(&rd.stop, true, memory_order_release);
	pthread_join(churn, NULL);
	for (int i = 0; i < UPSTREAMS; i++)
		pthread_join(ups[i], NULL);
	for (int i = 0; i < SCRAPERS; i++)
		pthread_join(scrapers[i], NULL);

	pthread_mutex_lock(&l->lock);
	while (!l->done)
		pthread_cond_wait(&l->cond, &l->lock);
	l->m = NULL;
	pthread_mutex_unlock(&l->lock);

	for (size_t r = 0; r <= N_ROUTES; r++) {
		struct strata_metrics_route_stats st;
		uint64_t want = atomic_load_explicit(&rd.recorded[r],
						     memory_order_relaxed);

		if (r == N_ROUTES)
			want++;   /* the lingerer's request */
		strata_metrics_route_stats(rd.m, r, &st);
		if (st.requests != want)
			fail(CHECK_SUMS, "route %zu: %" PRIu64 " counted, %"
			     PRIu64 " recorded", r, st.requests, want);
	}
	strata_metrics_upstream_stats(rd.m, &up);
	if (up.requests != atomic_load_explicit(&rd.fetched,
						memory_order_relaxed))
		fail(CHECK_SUMS, "upstream: %" PRIu64 " counted, %" PRIu64
		     " recorded", up.requests,
		     (uint64_t)atomic_load_explicit(&rd.fetched,
						    memory_order_relaxed));
	if (up.in_flight != 0)
		fail(CHECK_IN_FLIGHT, "in flight %" PRId64 " at rest",
		     up.in_flight);
	strata_metrics_free(&rd.m);
}

int main(void)
{
	double seconds = seconds_env("STRESS_SECONDS", 2);
	int recorders = (int)seconds_env("STRESS_RECORDERS", 4);
	struct lingerer l = { .lock = PTHREAD_MUTEX_INITIALIZER,
			      .cond = PTHREAD_COND_INITIALIZER };
	pthread_t linger;
	double end;
	unsigned rounds = 0, failed = 0;

	if (recorders < 1)
		recorders = 1;
	if (recorders > MAX_RECORDERS)
		recorders = MAX_RECORDERS;
	alarm((unsigned)(seconds * 10) + 60);
	pthread_create(&linger, NULL, linger_main, &l);
	end = now_s() + seconds;
	do {
		run_round(&l, recorders);
		rounds++;
	} while (now_s() < end);
	pthread_mutex_lock(&l.lock);
	l.quit = true;
	pthread_cond_broadcast(&l.cond);
	pthread_mutex_unlock(&l.lock);
	pthread_join(linger, NULL);

	for (int c = 0; c < N_CHECKS; c++)
		if (atomic_load_explicit(&failures[c], memory_order_relaxed))
			failed++;
	printf("stress_metrics: %u rounds, %u passed, %u failed\n", rounds,
	       N_CHECKS - failed, failed);
	return failed ? 1 : 0;
}
