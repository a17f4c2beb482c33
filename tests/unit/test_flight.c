/* Unit tests for src/cache/flight.c: request coalescing. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "cache/flight.h"

struct probe {
	struct strata_flight_waiter w;
	int calls;
	enum strata_flight_outcome outcome;
	struct strata_entry *entry;
	int error;
	int waited;
};

static void probe_done(struct strata_flight_waiter *w,
		       enum strata_flight_outcome outcome,
		       struct strata_entry *entry, int error)
{
	struct probe *p = (struct probe *)w;

	p->calls++;
	p->outcome = outcome;
	p->entry = entry;
	p->error = error;
}

static void probe_wait(void *arg)
{
	((struct probe *)arg)->waited++;
}

static struct strata_key key_of(uint8_t b)
{
	struct strata_key k;

	memset(k.hash, b, sizeof(k.hash));
	return k;
}

Test(flight, first_leads_others_wait_and_hear_the_outcome)
{
	struct strata_flights *t = NULL;
	struct strata_flight *f = NULL, *g = NULL;
	struct strata_key k = key_of(1);
	struct probe leader = { .w.done_cb = probe_done };
	struct probe a = { .w.done_cb = probe_done };
	struct probe b = { .w.done_cb = probe_done };
	struct strata_entry *fake = (struct strata_entry *)&k; /* opaque */

	cr_assert_eq(strata_flights_new(&t), 0);
	cr_assert_eq(strata_flight_join(t, &k, "GET /a\n", 7, &leader.w,
					probe_wait, &leader, &f),
		     1);
	cr_assert_not_null(f);
	cr_assert_eq(leader.waited, 0, "the leader does not wait");
	cr_assert_eq(strata_flight_join(t, &k, "GET /a\n", 7, &a.w, probe_wait,
					&a, &g),
		     0);
	cr_assert_eq(strata_flight_join(t, &k, "GET /a\n", 7, &b.w, probe_wait,
					&b, &g),
		     0);
	cr_assert_eq(a.waited, 1);
	cr_assert_eq(strata_flights_open(t), 1);
	cr_assert_eq(strata_flight_end(t, &f, STRATA_FLIGHT_ENTRY, fake, 0), 2);
	cr_assert_null(f);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.outcome, STRATA_FLIGHT_ENTRY);
	cr_assert_eq(b.entry, fake);
	cr_assert_eq(leader.calls, 0);
	cr_assert_eq(strata_flights_open(t), 0);
	/* After the end, the key starts a new flight. */
	cr_assert_eq(strata_flight_join(t, &k, "GET /a\n", 7, &a.w, probe_wait,
					&a, &f),
		     1);
	strata_flight_end(t, &f, STRATA_FLIGHT_ERROR, NULL, -5);
	strata_flights_free(&t);
}

Test(flight, same_hash_different_text_are_different_flights)
{
	struct strata_flights *t = NULL;
	struct strata_flight *f1 = NULL, *f2 = NULL;
	struct strata_key k = key_of(7);
	struct probe p = { .w.done_cb = probe_done };

	cr_assert_eq(strata_flights_new(&t), 0);
	cr_assert_eq(strata_flight_join(t, &k, "GET /a\n", 7, &p.w, probe_wait,
					&p, &f1),
		     1);
	cr_assert_eq(strata_flight_join(t, &k, "GET /b\n", 7, &p.w, probe_wait,
					&p, &f2),
		     1, "a collision must not join another key's flight");
	cr_assert_eq(strata_flights_open(t), 2);
	cr_assert_eq(strata_flight_end(t, &f2, STRATA_FLIGHT_RETRY, NULL, 0), 0);
	cr_assert_eq(strata_flight_end(t, &f1, STRATA_FLIGHT_RETRY, NULL, 0), 0);
	strata_flights_free(&t);
}

#define THREADS 8
#define ROUNDS 2000

static struct strata_flights *shared;
static atomic_int leaders, waiters_told;

static void count_done(struct strata_flight_waiter *w,
		       enum strata_flight_outcome outcome,
		       struct strata_entry *entry, int error)
{
	(void)w;
	(void)outcome;
	(void)entry;
	(void)error;
	atomic_fetch_add(&waiters_told, 1);
}

static void nothing(void *arg)
{
	(void)arg;
}

static void *stampede(void *arg)
{
	struct strata_key k = key_of(3);
	struct strata_flight_waiter *ws = calloc(ROUNDS, sizeof(*ws));

	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		struct strata_flight *f = NULL;

		ws[i].done_cb = count_done;
		if (strata_flight_join(shared, &k, "K", 1, &ws[i], nothing,
				       NULL, &f) == 1) {
			atomic_fetch_add(&leaders, 1);
			strata_flight_end(shared, &f, STRATA_FLIGHT_RETRY,
					  NULL, 0);
		}
	}
	/* Waiters may still sit in other threads' open flights: the array
	 * is freed only after every thread (every leader) has finished. */
	return ws;
}

Test(flight, every_join_is_a_leader_or_told_exactly_once)
{
	pthread_t th[THREADS];
	void *ws[THREADS];

	cr_assert_eq(strata_flights_new(&shared), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, stampede, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], &ws[i]);
	cr_assert_eq(atomic_load(&leaders) + atomic_load(&waiters_told),
		     THREADS * ROUNDS);
	cr_assert_eq(strata_flights_open(shared), 0);
	for (int i = 0; i < THREADS; i++)
		free(ws[i]);
	strata_flights_free(&shared);
}
