/*
 * metrics.h: request and tier counters, rendered in the Prometheus text
 * format for GET /metrics and summed for GET /admin/stats.
 *
 * Hot-path recording (strata_metrics_request() and friends) takes no lock
 * and does no atomic read-modify-write: each thread counts into its own
 * block (found through a thread-specific key of this metrics object,
 * allocated on the thread's first event and registered once under a
 * mutex), with relaxed atomic stores of its own counters so a scrape on
 * another thread may read them without a data race.  A scrape sums every
 * block; blocks of threads that have exited are kept, so no count is
 * lost.  Several metrics objects may live in one process (several servers).
 *
 * Tier figures (entries, bytes, hits...) are not counted here: the caller
 * passes the tiers' own stats to the render functions at scrape time.
 *
 * Metric names are fixed by docs/admin-api.md (dashboards rely on them):
 *   strata_requests_total{route,method,cache}
 *   strata_request_duration_seconds (histogram) {route,cache}
 *   strata_upstream_requests_total{status_class}   1xx..5xx, error
 *   strata_upstream_duration_seconds (histogram)
 *   strata_tier_hits_total{tier} strata_tier_misses_total{tier}
 *   strata_tier_entries{tier} strata_tier_bytes{tier}
 *   strata_tier_limit_bytes{tier} strata_tier_evictions_total{tier}
 *   strata_tier_up{tier} strata_store_dropped_total{tier}
 *   strata_coalesced_requests_total
 *   strata_origin_seconds_saved_total{route}
 *   process_resident_memory_bytes process_open_fds
 *   process_start_time_seconds
 * Every family is written with # HELP and # TYPE, and every series that
 * can be known at start (each route × method in the route's methods ×
 * cache result; each tier) at zero before its first event.
 */
#ifndef STRATA_OBS_METRICS_H
#define STRATA_OBS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strata_metrics;

/* What the cache did for a request: the `cache` label. */
enum strata_cache_result {
	STRATA_CACHE_HIT,
	STRATA_CACHE_MISS,
	STRATA_CACHE_BYPASS,
	STRATA_CACHE_STALE,
	STRATA_CACHE_COLLAPSED,
	STRATA_CACHE_ERROR,
	STRATA_CACHE_N_RESULTS,
};

/* The label value: "hit", "miss", ... */
const char *strata_cache_result_name(enum strata_cache_result r);

/* A route as the metrics see it. */
struct strata_metrics_route {
	const char *name;     /* the `route` label (copied) */
	unsigned methods;     /* STRATA_METHOD_* bits listed at zero */
};

/*
 * Create.  Routes are indexed 0..n_routes-1 as given; index n_routes
 * stands for "no route matched" (label route="").  Returns 0 or -ENOMEM.
 */
int strata_metrics_new(const struct strata_metrics_route *routes,
		       size_t n_routes, struct strata_metrics **out);

/* Free; no thread may record any more.  *m = NULL; accepts NULL. */
void strata_metrics_free(struct strata_metrics **m);

/*
 * One finished client request.  `route` is a route index or n_routes;
 * `method_bit` a STRATA_METHOD_* bit (OTHER for the rest);
 * `duration_us` from the first byte received to the last sent.  Any
 * thread; no lock.
 */
void strata_metrics_request(struct strata_metrics *m, size_t route,
			    unsigned method_bit, enum strata_cache_result cache,
			    uint64_t duration_us);

/* One upstream (or handler) fetch: `status` 100-599, or 0 when it failed
 * (refused, timeout, invalid); `route` as above.  The route's mean fetch
 * time is what a hit is counted to save (strata_origin_seconds_saved). */
void strata_metrics_upstream(struct strata_metrics *m, size_t route,
			     unsigned status, uint64_t duration_us);

/* Upstream requests in flight: +1 when one starts, -1 when it ends. */
void strata_metrics_upstream_inflight(struct strata_metrics *m, int delta);

/* A tier refused or dropped a store (tier: "memory", "disk", "redis"). */
void strata_metrics_store_dropped(struct strata_metrics *m,
				  const char *tier);

/* The state of one tier at scrape time (from the tier's own stats). */
struct strata_metrics_tier {
	const char *name;     /* "memory", "disk", "redis" */
	bool on;              /* configured; off tiers are rendered with
				 strata_tier_up 0 and zero figures */
	bool up;
	uint64_t hits, misses, entries, bytes, limit, evictions, dropped;
};

/* Per-route sums for /admin/stats. */
struct strata_metrics_route_stats {
	uint64_t requests;
	uint64_t hits;               /* cache=hit or stale */
	uint64_t collapsed;
	double origin_seconds_saved;
};

void strata_metrics_route_stats(struct strata_metrics *m, size_t route,
				struct strata_metrics_route_stats *out);

struct strata_metrics_upstream_stats {
	uint64_t requests;
	uint64_t errors;             /* status 0 */
	int64_t in_flight;
};

void strata_metrics_upstream_stats(struct strata_metrics *m,
				   struct strata_metrics_upstream_stats *out);

/*
 * The whole exposition (Prometheus text format 0.0.4) into a new
 * malloc'd NUL-terminated buffer (*out, length *len; the caller frees).
 * Returns 0 or -ENOMEM.  Any thread, concurrently with recording.
 */
int strata_metrics_render(struct strata_metrics *m,
			  const struct strata_metrics_tier *tiers,
			  size_t n_tiers, char **out, size_t *len);

#endif /* STRATA_OBS_METRICS_H */
