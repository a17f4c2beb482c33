/*
 * live.h: what a live reload can change, as one immutable snapshot.
 *
 * A generation bundles the settings that SIGHUP or POST /admin/reload
 * swap without a restart: the route table (patterns, TTLs, every route
 * option), the C handlers bound to its routes, each route's metrics
 * series, the upstream's Host policy and the configuration shown by
 * /admin/config.  A request takes a reference to the current generation
 * when it starts and keeps using that one until it completes, so a
 * request never sees half of one configuration and half of another, and
 * a reload never waits for requests.
 *
 * Concurrency and memory ordering:
 *   - A cell holds one reference to its current generation.
 *   - strata_live_acquire() loads the cell's pointer (acquire: pairs with
 *     the release exchange in strata_live_publish(), so every field of
 *     the generation written before publication is visible) and takes a
 *     reference, both inside an RCU read-side section.  The increment
 *     cannot meet a freed generation: publish drops the cell's reference
 *     only after a grace period, that is after every section that could
 *     have loaded the old pointer has ended, so the count is at least 1
 *     while any reader increments it.  Relaxed increment: the section,
 *     not the counter, orders it.
 *   - strata_live_release() decrements with acq_rel: the last holder
 *     frees, after every other holder's reads (release) and before its
 *     own teardown (acquire).
 * A generation's fields are never written after publication.
 */
#ifndef STRATA_CORE_LIVE_H
#define STRATA_CORE_LIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strata_handler;
struct strata_route_table;

struct strata_live {
	atomic_uint refs;
	uint64_t generation;                 /* 1 at start, +1 a reload */
	struct strata_route_table *routes;   /* owned reference */
	/* One per route, in table order (owned); fn NULL: the upstream. */
	struct strata_handler *handlers;
	/* The metrics series of each route index (owned); the entry at
	 * index n_routes is the series of requests no route matched. */
	size_t *metric_slot;
	bool preserve_host;                  /* upstream.preserve_host */
	unsigned cached_methods;             /* STRATA_METHOD_* of caching
						routes (prefix purges) */
	char *config_json;                   /* /admin/config (owned) */
};

/* Where the current generation is published.  Zero-initialised: empty. */
struct strata_live_cell {
	_Atomic(struct strata_live *) cur;
};

/* An empty generation with one reference (the caller's), or NULL. */
struct strata_live *strata_live_new(void);

/* A reference to the cell's current generation (never NULL once one is
 * published).  Any thread; no lock; one relaxed atomic increment. */
struct strata_live *strata_live_acquire(struct strata_live_cell *cell);

/* Drop a reference and set *live to NULL; the last one frees the
 * generation and what it owns.  Any thread.  Accepts NULL. */
void strata_live_release(struct strata_live **live);

/*
 * Make `next` current; the caller's reference to it becomes the cell's.
 * Waits for a grace period (milliseconds at most), then drops the cell's
 * reference to the previous generation, which is freed once the last
 * request using it completes.  Publishers must be serialised by the
 * caller.  Never call from inside an RCU read-side section.
 */
void strata_live_publish(struct strata_live_cell *cell,
			 struct strata_live *next);

/* Drop the cell's reference (at shutdown, when no reader is left). */
void strata_live_cell_clear(struct strata_live_cell *cell);

#endif /* STRATA_CORE_LIVE_H */
