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
 * A block is kept until strata_metrics_free(), so memory grows by one
 * block (about 1 KiB per route, see metrics.c) per thread that ever
 * recorded: Strata's own threads are fixed pools, an embedder that
 * records from short-lived threads pays one block per thread.
 *
 * Tier figures (entries, bytes, hits...) are not counted here: the caller
 * passes the tiers' own stats to the render functions at scrape time.
 *
 * Metric names are fixed by docs/admin-api.md (dashboards rely on them):
 *   strata_requests_total{route,method,cache}
 *   strata_request_duration_seconds (histogram) {route,cache}
 *   strata_upstream_requests_total{status_class}   1xx..5xx, error
 *   strata_upstream_duration_seconds (histogram)
 *   strata_upstream_in_flight (gauge)
 *   strata_tier_hits_total{tier} strata_tier_misses_total{tier}
 *   strata_tier_entries{tier} strata_tier_bytes{tier}
 *   strata_tier_limit_bytes{tier} strata_tier_evictions_total{tier}
 *   strata_tier_up{tier} strata_tier_enabled{tier}
 *   strata_store_dropped_total{tier}
 *   strata_purges_total{source,kind} strata_invalidations_dropped_total
 *   strata_coalesced_requests_total
 *   strata_origin_seconds_saved_total{route}
 *   process_resident_memory_bytes process_open_fds
 *   process_start_time_seconds
 * Every family is written with # HELP and # TYPE, and every series that
 * can be known at start at zero before its first event:
 *   - requests_total: each route × each method in the route's methods
 *     (HEAD too when GET is listed, as the route table serves HEAD from
 *     GET) × every cache result; for "no route" (route="") GET and HEAD
 *     × bypass only, since an unrouted request is passed through;
 *   - request_duration_seconds: each route × every cache result; for
 *     route="" bypass only;
 *   - upstream_requests_total: every status class;
 *   - origin_seconds_saved_total: each route, and route="";
 *   - tier families: each tier passed to the render call.
 * Any other series appears with its first event.  Routes that share a
 * name (route names need not be unique) share their series: the label is
 * the name, so their counts are summed; a route named "" likewise shares
 * the series of "no route".
 *
 * Durations are histograms with fixed buckets, in seconds: 0.0005, 0.001,
 * 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, +Inf.
 * A scrape concurrent with recording may see a histogram's _sum one
 * observation ahead of or behind its buckets, and two families one event
 * apart; each counter is monotonic and each histogram's buckets,
 * +Inf bucket and _count always agree with each other.
 */
#ifndef STRATA_OBS_METRICS_H
#define STRATA_OBS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/purge.h"

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

/* The label value: "hit", "miss", "bypass", "stale", "collapsed",
 * "error".  `r` must be below STRATA_CACHE_N_RESULTS (asserted). */
const char *strata_cache_result_name(enum strata_cache_result r);

/* A route as the metrics see it. */
struct strata_metrics_route {
	const char *name;     /* the `route` label (copied); not NULL */
	unsigned methods;     /* STRATA_METHOD_* bits listed at zero */
};

/*
 * Create.  Routes are indexed 0..n_routes-1 as given; index n_routes
 * stands for "no route matched" (label route="").  `routes` is only read
 * during the call.  Returns 0, -EINVAL (a route without a name), -ENOMEM,
 * or -EAGAIN when the process has no thread-specific key left
 * (PTHREAD_KEYS_MAX, one key per live metrics object).
 */
int strata_metrics_new(const struct strata_metrics_route *routes,
		       size_t n_routes, struct strata_metrics **out);

/* The index of the series of requests no route matched (n_routes). */
size_t strata_metrics_unmatched(const struct strata_metrics *m);

/*
 * The index of the series named route->name, for a route a live reload
 * brings: an index that already has that name (its listed methods grow
 * to include route->methods), else a spare index claimed for it now.  A
 * name once claimed keeps its index, and its counters, for the object's
 * life, so a reload never resets a series.  Returns 0, -EINVAL (no
 * name), -ENOSPC (every spare is taken: the process has seen too many
 * route names; restart) or -ENOMEM.  Any thread; takes the lock that
 * rendering takes, never one that recording takes.
 */
int strata_metrics_route_index(struct strata_metrics *m,
			       const struct strata_metrics_route *route,
			       size_t *index);

/*
 * Free, with every thread's block.  *m = NULL; accepts NULL.  No thread
 * may record into, render or read `*m` during or after this call (stop
 * the servers' threads first).  Threads that recorded may still be alive
 * or exit later: the thread-specific key is deleted, which leaves their
 * slot for it dangling but unreachable (a key created later starts NULL
 * in every thread, by POSIX), and the key has no destructor to run.
 */
void strata_metrics_free(struct strata_metrics **m);

/*
 * One finished client request.  `route` is a route index, n_routes (no
 * route matched) or an index from strata_metrics_route_index() (asserted); `method_bit` exactly one STRATA_METHOD_* bit, OTHER for the
 * rest (asserted); `duration_us` from the first byte received to the last
 * sent.  A hit, stale or collapsed request also adds the route's current
 * mean upstream fetch time to strata_origin_seconds_saved_total.  Any
 * thread; no lock, no atomic read-modify-write.  The first event of a
 * thread allocates its block: if that fails, the event is not counted.
 */
void strata_metrics_request(struct strata_metrics *m, size_t route,
			    unsigned method_bit, enum strata_cache_result cache,
			    uint64_t duration_us);

/*
 * One upstream (or handler) fetch: `status` 100-599, or 0 when it failed
 * (refused, timeout, invalid; any other value counts as failed too);
 * `route` as above.  Fetches that got a status also update the route's
 * mean fetch time, which is what a hit is counted to save (relaxed atomic
 * adds on per-route shared counters: upstream fetches are not the hit
 * path).  Any thread.
 */
void strata_metrics_upstream(struct strata_metrics *m, size_t route,
			     unsigned status, uint64_t duration_us);

/* Upstream requests in flight: +1 when one starts, -1 when it ends.  Any
 * thread (one relaxed atomic add on a shared counter). */
void strata_metrics_upstream_inflight(struct strata_metrics *m, int delta);

/*
 * A tier refused or dropped a store (tier: "memory", "disk" or "redis";
 * another name is a bug, asserted).  strata_store_dropped_total{tier} is
 * the sum of these and the `dropped` figure passed to render for that
 * tier, so each drop must be reported through exactly one of the two.
 * Any thread; no lock.
 */
void strata_metrics_store_dropped(struct strata_metrics *m,
				  const char *tier);

/* Where a purge came from: the `source` label. */
enum strata_purge_source {
	STRATA_PURGE_FROM_ADMIN,        /* the admin API, or the library's
					   strata_server_purge_by() */
	STRATA_PURGE_FROM_INVALIDATION, /* an unsafe method's answer */
	STRATA_PURGE_FROM_FLEET,        /* another instance, via Redis */
};

/*
 * A purge was applied here: strata_purges_total{source,kind}, the kind
 * labelled by strata_purge_kind_name().  Any thread; one relaxed atomic
 * add (purges are rare).
 */
void strata_metrics_purge(struct strata_metrics *m,
			  enum strata_purge_source from,
			  enum strata_purge_kind kind);

/* An invalidation was dropped, its queue full: the entry lives out its
 * TTL.  strata_invalidations_dropped_total.  Any thread. */
void strata_metrics_invalidation_dropped(struct strata_metrics *m);

/* The state of one tier at scrape time (from the tier's own stats). */
struct strata_metrics_tier {
	const char *name;     /* "memory", "disk", "redis"; distinct names
				 (a repeated name is rendered once) */
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
	double origin_seconds_saved; /* an estimate: see below */
};

/*
 * Sums for one route index (as for strata_metrics_request()), over every method and
 * thread.  origin_seconds_saved is an estimate, not a measurement: each
 * hit, stale or collapsed request is credited with the mean time of the
 * route's upstream fetches that got a status, as it was when the request
 * was recorded (0 before the route's first fetch).  Crediting at record
 * time keeps strata_origin_seconds_saved_total monotonic, as a counter
 * must be.  Any thread, concurrently with recording.
 */
void strata_metrics_route_stats(struct strata_metrics *m, size_t route,
				struct strata_metrics_route_stats *out);

struct strata_metrics_upstream_stats {
	uint64_t requests;           /* every fetch recorded */
	uint64_t errors;             /* status 0 (or out of range) */
	int64_t in_flight;
};

/* Upstream sums for /admin/stats.  Any thread, concurrently with
 * recording. */
void strata_metrics_upstream_stats(struct strata_metrics *m,
				   struct strata_metrics_upstream_stats *out);

/*
 * The whole exposition (Prometheus text format 0.0.4) into a new
 * malloc'd NUL-terminated buffer (*out, length *len; the caller frees).
 * `tiers` (n_tiers of them, may be NULL when 0) is only read during the
 * call.  Process figures come from /proc; a figure that cannot be read
 * leaves its family with HELP and TYPE but no sample.  Returns 0 or
 * -ENOMEM.  Any thread, concurrently with recording.
 */
int strata_metrics_render(struct strata_metrics *m,
			  const struct strata_metrics_tier *tiers,
			  size_t n_tiers, char **out, size_t *len);

#endif /* STRATA_OBS_METRICS_H */
