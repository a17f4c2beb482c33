/*
 * flight.h: request coalescing (single-flight).
 *
 * While one fetch for a key is in flight, later requests for the same key
 * join it instead of fetching again, and all are answered from its one
 * result: a stampede on a cold key reaches the origin once.
 *
 * The first request for a key becomes the flight's leader and fetches; the
 * others are waiters.  The leader ends the flight with strata_flight_end(),
 * which calls every waiter's done_cb once, on the leader's thread, with
 * one of three outcomes:
 *  - STRATA_FLIGHT_ENTRY: a stored entry; every waiter answers from it.
 *  - STRATA_FLIGHT_RETRY: the answer was not shareable (not storable, so
 *    possibly private, or too big to hold): each waiter fetches once on its
 *    own, uncoalesced.  Sharing a response the cache would not store could
 *    hand one client's Set-Cookie to another.
 *  - STRATA_FLIGHT_ERROR: the fetch failed (refused, timeout, invalid);
 *    every waiter answers with the same error rather than hitting a failing
 *    origin again.
 *
 * Concurrency: the table is a hash of in-flight keys under one mutex; only
 * misses touch it, never hits.  join() runs `on_wait` under that mutex
 * when the caller becomes a waiter, so the caller can suspend its client
 * connection before any end() can call done_cb (a resume never precedes
 * its suspend).  end() unlinks the flight under the mutex and calls the
 * waiters after releasing it.
 */
#ifndef STRATA_CACHE_FLIGHT_H
#define STRATA_CACHE_FLIGHT_H

#include <stddef.h>

#include "cache/entry.h"
#include "cache/key.h"

struct strata_flights;
struct strata_flight;

enum strata_flight_outcome {
	STRATA_FLIGHT_ENTRY,
	STRATA_FLIGHT_RETRY,
	STRATA_FLIGHT_ERROR,
};

/* A waiter, embedded in the caller's request state. */
struct strata_flight_waiter {
	/*
	 * Called once by end(), on the leader's thread.  `entry` is borrowed
	 * (take a reference to keep it) and set only for ENTRY; `error` is
	 * the fetch's error for ERROR.
	 */
	void (*done_cb)(struct strata_flight_waiter *w,
			enum strata_flight_outcome outcome,
			struct strata_entry *entry, int error);
	struct strata_flight_waiter *next; /* owned by the flight */
};

int strata_flights_new(struct strata_flights **out);

/* Free the table; no flight may be open.  Sets *t to NULL. */
void strata_flights_free(struct strata_flights **t);

/*
 * Join the flight for (key, key_text) or open it.  Returns 1 when the
 * caller leads a new flight (*out set: end it with strata_flight_end),
 * 0 when it joined as waiter `w` (after `on_wait(arg)` ran under the
 * table's mutex), or -ENOMEM.
 */
int strata_flight_join(struct strata_flights *t, const struct strata_key *key,
		       const char *key_text, size_t key_len,
		       struct strata_flight_waiter *w,
		       void (*on_wait)(void *arg), void *arg,
		       struct strata_flight **out);

/*
 * End a flight: unlink it and call every waiter's done_cb.  `entry` is
 * borrowed (ENTRY only).  Frees the flight and sets *f to NULL.  Returns
 * the number of waiters told.
 */
size_t strata_flight_end(struct strata_flights *t, struct strata_flight **f,
			 enum strata_flight_outcome outcome,
			 struct strata_entry *entry, int error);

/* Flights open right now (for tests and metrics). */
size_t strata_flights_open(struct strata_flights *t);

#endif /* STRATA_CACHE_FLIGHT_H */
