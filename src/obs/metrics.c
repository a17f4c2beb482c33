/*
 * metrics.c: per-thread counter blocks summed at scrape time, and the
 * Prometheus text exposition (see metrics.h for what is counted).
 *
 * A request is counted by the thread that served it, into that thread's
 * own block of counters: pthread_getspecific() finds the block, and each
 * counter it touches is bumped with a relaxed atomic load and a relaxed
 * atomic store.  No lock, no read-modify-write instruction, no cache line
 * shared with another recording thread: a hit costs a few nanoseconds
 * whatever the number of cores.  A scrape walks the list of blocks and
 * adds them up.
 *
 * Concurrency:
 *
 *   Invariants: every block ever allocated for this object is on
 *   m->blocks until strata_metrics_free(); a block has exactly one owner
 *   thread (the one whose thread-specific value for m->key points to it),
 *   and only its owner ever writes its counters.
 *
 *   Who writes what:
 *   - block->c[]: the owner only, relaxed load + relaxed store.  With a
 *     single writer no increment can be lost between the load and the
 *     store, so no RMW is needed; the accesses are atomic anyway so that
 *     a scrape's concurrent relaxed loads are not data races (and
 *     ThreadSanitizer agrees).  Relaxed because a counter publishes
 *     nothing: a scrape only needs some value the counter held recently,
 *     and per-object coherence makes each counter read monotonic.  A
 *     scrape reads different counters at slightly different moments, so
 *     figures may disagree by an event or two (see metrics.h).
 *   - block->next: its allocating thread, under m->lock, before the block
 *     is published; immutable afterwards.
 *   - m->blocks (list head): registering threads, under m->lock, with a
 *     release store that publishes the block (its zeroed counters and its
 *     next pointer); scrapes acquire-load it without the lock and walk
 *     the immutable next pointers.  The lock only serializes registrations
 *     (once per thread per metrics object).
 *   - m->fetch_n/fetch_us (per route): every upstream-recording thread,
 *     relaxed fetch_add; m->mean_ns (per route): the same threads,
 *     relaxed store of a mean computed from their own add results; read
 *     (relaxed) by the hit path.  Two fetches finishing together may
 *     store their means in either order, so mean_ns may lag by one fetch:
 *     it is an estimate, and it orders nothing.
 *   - m->in_flight: relaxed fetch_add from any thread; a gauge.
 *   - m->purges, m->invalidations_dropped: relaxed fetch_add from any
 *     thread (rare events); each a counter on its own.
 *   - Everything else in m: written by strata_metrics_new() before the
 *     object is shared, read-only afterwards.
 *
 *   Reclamation: blocks outlive their threads (the key has no destructor:
 *   a thread's exit just forgets its pointer), and are freed by
 *   strata_metrics_free(), which the caller may only run once no thread
 *   records, scrapes or reads any more; it deletes the key, so a stale
 *   thread-specific value is never seen again (POSIX: a new key starts
 *   NULL in every thread).
 *
 * Layout of a block: one flat array of uint64 counters, indexed through
 * offsets computed at creation (R = n_routes + 1 + METRICS_SPARE,
 * C = cache results,
 * B = 15 buckets):
 *   requests   R × 8 methods × C
 *   rdur       R × C × B      per-bucket (not cumulative) counts
 *   rsum       R × C          duration sums, microseconds
 *   saved      R              origin time saved, nanoseconds
 *   uclass     6              upstream fetches per status class
 *   udur       B              upstream duration per-bucket counts
 *   usum       1              upstream duration sum, microseconds
 *   drop       3              store drops: memory, disk, redis
 * A histogram's _count is the sum of its buckets, never a separate
 * counter, so its buckets, +Inf bucket and _count always agree.
 */
#include "config.h"

#include "obs/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "strata/config.h"

#define METRICS_MAGIC 0x4d455452u   /* "METR" */

/* Route names a process can add by live reloads beyond those it started
 * with.  Each spare costs every recording thread about 1.2 KiB of
 * counters; a reload that needs more is refused (restart instead). */
#define METRICS_SPARE 64

#define N_METHODS 8
#define N_RESULTS STRATA_CACHE_N_RESULTS
#define N_BUCKETS 15                /* 14 finite bounds, then +Inf */
#define N_CLASSES 6                 /* 1xx..5xx, error */
#define CLASS_ERROR 5
#define N_DROP_TIERS 3
#define CACHE_LINE 64

/* Bucket upper bounds (inclusive, as Prometheus's `le`), microseconds. */
static const uint64_t bound_us[N_BUCKETS - 1] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000, 2500000, 5000000, 10000000,
};

static const char *const bound_le[N_BUCKETS] = {
	"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
	"0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
};

/* Indexed by the bit number of STRATA_METHOD_*. */
static const char *const method_name[N_METHODS] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
};

static const char *const result_name[N_RESULTS] = {
	[STRATA_CACHE_HIT] = "hit",
	[STRATA_CACHE_MISS] = "miss",
	[STRATA_CACHE_BYPASS] = "bypass",
	[STRATA_CACHE_STALE] = "stale",
	[STRATA_CACHE_COLLAPSED] = "collapsed",
	[STRATA_CACHE_ERROR] = "error",
};

static const char *const class_name[N_CLASSES] = {
	"1xx", "2xx", "3xx", "4xx", "5xx", "error",
};

static const char *const drop_tier_name[N_DROP_TIERS] = {
	"memory", "disk", "redis",
};

struct block {
	struct block *next;     /* set before publication, then immutable */
	_Atomic uint64_t c[];   /* m->n_counters, layout above */
};

/* Per-route figures shared by every thread (upstream path only writes). */
struct route_fetch {
	_Atomic uint64_t fetch_n;   /* fetches that got a status */
	_Atomic uint64_t fetch_us;  /* their total duration */
	_Atomic uint64_t mean_ns;   /* fetch_us / fetch_n, in ns */
};

static const char *const purge_source_name[] = {
	[STRATA_PURGE_FROM_ADMIN] = "admin",
	[STRATA_PURGE_FROM_INVALIDATION] = "invalidation",
	[STRATA_PURGE_FROM_FLEET] = "fleet",
};
#define N_PURGE_SOURCES \
	(sizeof(purge_source_name) / sizeof(purge_source_name[0]))

struct strata_metrics {
	unsigned magic;                 /* METRICS_MAGIC */
	size_t n_routes;                /* at creation; index n_routes =
					   no route matched */
	size_t n_slots;                 /* n_routes + 1 + METRICS_SPARE */
	/* Spares claimed so far; they are claimed in index order and never
	 * given back, so the valid indexes are 0..n_routes + n_claimed.
	 * Written under `lock`; read (relaxed, for assertions) by
	 * recording threads, whose index came from a claim that happened
	 * before they were given it. */
	_Atomic size_t n_claimed;
	/* Per index, n_slots each.  Indexes past n_routes are spares that
	 * strata_metrics_route_index() claims for routes a reload adds;
	 * an unclaimed one has no name and group SIZE_MAX.  Written under
	 * `lock` after creation, and read under it by rendering. */
	char **names;                   /* index n_routes: "" */
	unsigned *methods;              /* listed method bits */
	size_t *group;                  /* first index with the same name */
	size_t *next_member;            /* next index with the same name, or
					   SIZE_MAX */

	size_t n_counters;              /* per block */
	size_t block_bytes;             /* allocation size, cache-line
					   multiple */
	size_t off_req, off_rdur, off_rsum, off_saved;
	size_t off_uclass, off_udur, off_usum, off_drop;

	pthread_key_t key;              /* this thread's struct block */
	pthread_mutex_t lock;           /* serializes registrations, spare
					   claims and rendering */
	_Atomic(struct block *) blocks; /* list head, see Concurrency */

	struct route_fetch *fetch;      /* n_slots */
	_Atomic int64_t in_flight;
	/* Rare events: shared counters, relaxed adds, relaxed loads when
	 * rendering (a scrape may miss one that is under way). */
	_Atomic uint64_t purges[N_PURGE_SOURCES][STRATA_PURGE_KINDS];
	_Atomic uint64_t invalidations_dropped;

	double start_time;              /* process start, epoch seconds */
};

const char *strata_cache_result_name(enum strata_cache_result r)
{
	STRATA_ASSERT((unsigned)r < N_RESULTS);
	return result_name[r];
}

/* --- indexing ------------------------------------------------------------ */

static inline size_t claimed(const struct strata_metrics *m)
{
	return atomic_load_explicit(&m->n_claimed, memory_order_relaxed);
}


static inline size_t req_at(const struct strata_metrics *m, size_t route,
			    unsigned method, unsigned cache)
{
	return m->off_req + (route * N_METHODS + method) * N_RESULTS + cache;
}

static inline size_t rdur_at(const struct strata_metrics *m, size_t route,
			     unsigned cache, unsigned bucket)
{
	return m->off_rdur + (route * N_RESULTS + cache) * N_BUCKETS + bucket;
}

static inline size_t rsum_at(const struct strata_metrics *m, size_t route,
			     unsigned cache)
{
	return m->off_rsum + route * N_RESULTS + cache;
}

/* The histogram bucket of a duration: the first bound >= it.  Linear,
 * because most requests (hits) land in the first bucket or two. */
static inline unsigned bucket_of(uint64_t us)
{
	unsigned b = 0;

	while (b < N_BUCKETS - 1 && us > bound_us[b])
		b++;
	return b;
}

static bool is_saving(unsigned cache)
{
	return cache == STRATA_CACHE_HIT || cache == STRATA_CACHE_STALE ||
	       cache == STRATA_CACHE_COLLAPSED;
}

/* --- recording ------------------------------------------------------------ */

/*
 * Add to a counter of the calling thread's own block.  Relaxed load and
 * relaxed store, not a fetch_add: the owner is the only writer, so no
 * update can come between them; atomic only so that a concurrent scrape's
 * relaxed load is not a data race.  Nothing is published (see
 * Concurrency).
 */
static inline void bump(_Atomic uint64_t *counter, uint64_t delta)
{
	uint64_t v = atomic_load_explicit(counter, memory_order_relaxed);

	atomic_store_explicit(counter, v + delta, memory_order_relaxed);
}

/* The calling thread's first event: allocate, key and publish its block.
 * NULL when out of memory (the event is then not counted). */
static struct block *register_block(struct strata_metrics *m)
{
	struct block *b = aligned_alloc(CACHE_LINE, m->block_bytes);

	if (b == NULL)
		return NULL;
	for (size_t i = 0; i < m->n_counters; i++)
		atomic_init(&b->c[i], 0);
	/* Key the block before publishing it: a block on the list that no
	 * thread owns would be harmless, but a failed setspecific would make
	 * every later event allocate again. */
	if (pthread_setspecific(m->key, b) != 0) {
		free(b);
		return NULL;
	}
	pthread_mutex_lock(&m->lock);
	/* Relaxed: m->lock orders this against the previous registration,
	 * the only other writer of the head. */
	b->next = atomic_load_explicit(&m->blocks, memory_order_relaxed);
	/* Release: publishes the zeroed counters and b->next to scrapes,
	 * which acquire-load the head without the lock. */
	atomic_store_explicit(&m->blocks, b, memory_order_release);
	pthread_mutex_unlock(&m->lock);
	return b;
}

static inline struct block *my_block(struct strata_metrics *m)
{
	struct block *b = pthread_getspecific(m->key);

	if (__builtin_expect(b != NULL, 1))
		return b;
	return register_block(m);
}

void strata_metrics_request(struct strata_metrics *m, size_t route,
			    unsigned method_bit, enum strata_cache_result cache,
			    uint64_t duration_us)
{
	struct block *b;
	unsigned method, bucket;

	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	STRATA_ASSERT(route <= m->n_routes + claimed(m));
	STRATA_ASSERT((unsigned)cache < N_RESULTS);
	STRATA_ASSERT(method_bit != 0 && (method_bit & (method_bit - 1)) == 0 &&
		      method_bit <= STRATA_METHOD_OTHER);
	b = my_block(m);
	if (b == NULL)
		return;
	method = (unsigned)__builtin_ctz(method_bit);
	bucket = bucket_of(duration_us);
	bump(&b->c[req_at(m, route, method, cache)], 1);
	bump(&b->c[rdur_at(m, route, cache, bucket)], 1);
	bump(&b->c[rsum_at(m, route, cache)], duration_us);
	if (is_saving(cache)) {
		/* Relaxed: an estimate read from the upstream path's last
		 * store; it orders nothing. */
		uint64_t mean = atomic_load_explicit(&m->fetch[route].mean_ns,
						     memory_order_relaxed);

		if (mean != 0)
			bump(&b->c[m->off_saved + route], mean);
	}
}

void strata_metrics_upstream(struct strata_metrics *m, size_t route,
			     unsigned status, uint64_t duration_us)
{
	struct block *b;
	unsigned cls;

	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	STRATA_ASSERT(route <= m->n_routes + claimed(m));
	cls = status >= 100 && status <= 599 ? status / 100 - 1 : CLASS_ERROR;
	b = my_block(m);
	if (b != NULL) {
		bump(&b->c[m->off_uclass + cls], 1);
		bump(&b->c[m->off_udur + bucket_of(duration_us)], 1);
		bump(&b->c[m->off_usum], duration_us);
	}
	if (cls != CLASS_ERROR) {
		struct route_fetch *f = &m->fetch[route];
		/* Relaxed RMWs: several upstream threads add here; the sums
		 * publish nothing.  The mean comes from this thread's own
		 * add results, so it is a mean of a real prefix of the
		 * fetches (n and us may be off by a concurrent fetch). */
		uint64_t n = atomic_fetch_add_explicit(&f->fetch_n, 1,
						       memory_order_relaxed) + 1;
		uint64_t us = atomic_fetch_add_explicit(&f->fetch_us,
							duration_us,
							memory_order_relaxed) +
			      duration_us;

		/* Relaxed: read by the hit path as an estimate only. */
		atomic_store_explicit(&f->mean_ns, us * 1000 / n,
				      memory_order_relaxed);
	}
}

void strata_metrics_upstream_inflight(struct strata_metrics *m, int delta)
{
	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	/* Relaxed: a gauge shared by every upstream thread; it orders
	 * nothing, and the upstream path is not the hit path. */
	atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

static int drop_tier_index(const char *tier)
{
	for (int i = 0; i < N_DROP_TIERS; i++)
		if (strcmp(tier, drop_tier_name[i]) == 0)
			return i;
	return -1;
}

void strata_metrics_store_dropped(struct strata_metrics *m, const char *tier)
{
	struct block *b;
	int t;

	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	STRATA_ASSERT(tier != NULL);
	t = drop_tier_index(tier);
	STRATA_ASSERT(t >= 0);
	b = my_block(m);
	if (b != NULL)
		bump(&b->c[m->off_drop + (size_t)t], 1);
}

void strata_metrics_purge(struct strata_metrics *m,
			  enum strata_purge_source from,
			  enum strata_purge_kind kind)
{
	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	STRATA_ASSERT((size_t)from < N_PURGE_SOURCES &&
		      (size_t)kind < STRATA_PURGE_KINDS);
	atomic_fetch_add_explicit(&m->purges[from][kind], 1,
				  memory_order_relaxed);
}

void strata_metrics_invalidation_dropped(struct strata_metrics *m)
{
	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	atomic_fetch_add_explicit(&m->invalidations_dropped, 1,
				  memory_order_relaxed);
}

/* --- creation ------------------------------------------------------------- */

/* The process start time from /proc: btime (boot, epoch seconds) from
 * /proc/stat plus starttime (clock ticks after boot, field 22) from
 * /proc/self/stat.  -1 when either cannot be read. */
static double proc_start_time(void)
{
	char buf[4096];
	unsigned long long btime = 0, start_ticks = 0;
	bool have_btime = false;
	long ticks = sysconf(_SC_CLK_TCK);
	double result = -1;
	FILE *f = NULL;
	char *p;
	size_t n;

	f = fopen("/proc/stat", "re");
	if (f == NULL)
		goto out;
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (sscanf(buf, "btime %llu", &btime) == 1) {
			have_btime = true;
			break;
		}
	fclose(f);
	f = NULL;
	if (!have_btime || ticks <= 0)
		goto out;

	f = fopen("/proc/self/stat", "re");
	if (f == NULL)
		goto out;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: the
	 * fields after it start after its last ')'.  starttime is field 22,
	 * the 20th after the name. */
	p = strrchr(buf, ')');
	if (p == NULL)
		goto out;
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (p == NULL)
			goto out;
	}
	if (sscanf(p, " %llu", &start_ticks) != 1)
		goto out;
	result = (double)btime + (double)start_ticks / (double)ticks;
out:
	if (f != NULL)
		fclose(f);
	return result;
}

/* The method bits listed at zero for a route (HEAD with GET). */
static unsigned route_methods(const struct strata_metrics_route *r)
{
	unsigned bits = r->methods & 0xffu;

	return (bits & STRATA_METHOD_GET) ? bits | STRATA_METHOD_HEAD : bits;
}

/* Routes with equal names share their series (see metrics.h): put index
 * r, whose name is set, in the group of the first index with its name,
 * chained in index order, or start its own. */
static void join_group(struct strata_metrics *m, size_t r)
{
	m->group[r] = r;
	m->next_member[r] = SIZE_MAX;
	for (size_t q = 0; q < r; q++)
		if (m->names[q] != NULL && strcmp(m->names[q], m->names[r]) == 0) {
			size_t last = q;

			m->group[r] = m->group[q];
			while (m->next_member[last] != SIZE_MAX)
				last = m->next_member[last];
			m->next_member[last] = r;
			return;
		}
}

int strata_metrics_new(const struct strata_metrics_route *routes,
		       size_t n_routes, struct strata_metrics **out)
{
	struct strata_metrics *m = NULL;
	size_t R = n_routes + 1 + METRICS_SPARE;
	bool have_key = false, have_lock = false;
	int rc = -ENOMEM;

	*out = NULL;
	for (size_t i = 0; i < n_routes; i++)
		if (routes[i].name == NULL)
			return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		goto out;
	m->n_routes = n_routes;
	m->n_slots = R;
	atomic_init(&m->n_claimed, 0);
	m->names = calloc(R, sizeof(*m->names));
	m->methods = calloc(R, sizeof(*m->methods));
	m->group = calloc(R, sizeof(*m->group));
	m->next_member = calloc(R, sizeof(*m->next_member));
	m->fetch = calloc(R, sizeof(*m->fetch));
	if (m->names == NULL || m->methods == NULL || m->group == NULL ||
	    m->next_member == NULL || m->fetch == NULL)
		goto out;
	for (size_t r = 0; r < R; r++) {
		atomic_init(&m->fetch[r].fetch_n, 0);
		atomic_init(&m->fetch[r].fetch_us, 0);
		atomic_init(&m->fetch[r].mean_ns, 0);
		m->group[r] = SIZE_MAX;        /* unclaimed spare */
		m->next_member[r] = SIZE_MAX;
		if (r > n_routes)
			continue;
		m->names[r] = strdup(r < n_routes ? routes[r].name : "");
		if (m->names[r] == NULL)
			goto out;
		if (r < n_routes)
			m->methods[r] = route_methods(&routes[r]);
		else
			m->methods[r] = STRATA_METHOD_GET | STRATA_METHOD_HEAD;
		join_group(m, r);
	}

	m->off_req = 0;
	m->off_rdur = m->off_req + R * N_METHODS * N_RESULTS;
	m->off_rsum = m->off_rdur + R * N_RESULTS * N_BUCKETS;
	m->off_saved = m->off_rsum + R * N_RESULTS;
	m->off_uclass = m->off_saved + R;
	m->off_udur = m->off_uclass + N_CLASSES;
	m->off_usum = m->off_udur + N_BUCKETS;
	m->off_drop = m->off_usum + 1;
	m->n_counters = m->off_drop + N_DROP_TIERS;
	m->block_bytes = sizeof(struct block) +
			 m->n_counters * sizeof(_Atomic uint64_t);
	m->block_bytes = (m->block_bytes + CACHE_LINE - 1) / CACHE_LINE *
			 CACHE_LINE;

	/* No destructor: a thread's exit only forgets its pointer; the block
	 * stays on the list with its counts until strata_metrics_free(). */
	rc = -pthread_key_create(&m->key, NULL);
	if (rc != 0)
		goto out;
	have_key = true;
	rc = -pthread_mutex_init(&m->lock, NULL);
	if (rc != 0)
		goto out;
	have_lock = true;
	atomic_init(&m->blocks, NULL);
	atomic_init(&m->in_flight, 0);
	for (size_t i = 0; i < N_PURGE_SOURCES; i++)
		for (size_t k = 0; k < STRATA_PURGE_KINDS; k++)
			atomic_init(&m->purges[i][k], 0);
	atomic_init(&m->invalidations_dropped, 0);

	m->start_time = proc_start_time();
	if (m->start_time < 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		m->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	}
	m->magic = METRICS_MAGIC;
	*out = m;
	m = NULL;
	rc = 0;
out:
	if (m != NULL) {
		if (have_lock)
			pthread_mutex_destroy(&m->lock);
		if (have_key)
			pthread_key_delete(m->key);
		for (size_t r = 0; m->names != NULL && r < R; r++)
			free(m->names[r]);
		free(m->fetch);
		free(m->next_member);
		free(m->group);
		free(m->methods);
		free(m->names);
		free(m);
	}
	return rc;
}

size_t strata_metrics_unmatched(const struct strata_metrics *m)
{
	return m->n_routes;
}

int strata_metrics_route_index(struct strata_metrics *m,
			       const struct strata_metrics_route *route,
			       size_t *index)
{
	size_t r;
	int rc = 0;

	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	if (route->name == NULL)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	for (r = 0; r <= m->n_routes + claimed(m); r++)
		if (r != m->n_routes && strcmp(m->names[r], route->name) == 0)
			break;
	if (r > m->n_routes + claimed(m)) {
		if (r == m->n_slots) {
			rc = -ENOSPC;
		} else if ((m->names[r] = strdup(route->name)) == NULL) {
			rc = -ENOMEM;
		} else {
			m->methods[r] = route_methods(route);
			join_group(m, r);
			atomic_store_explicit(&m->n_claimed, claimed(m) + 1,
					      memory_order_relaxed);
		}
	} else {
		/* Series of newly listed methods appear at zero. */
		m->methods[m->group[r]] |= route_methods(route);
	}
	pthread_mutex_unlock(&m->lock);
	if (rc == 0)
		*index = r;
	return rc;
}

void strata_metrics_free(struct strata_metrics **mp)
{
	struct strata_metrics *m;
	struct block *b;

	if (mp == NULL || *mp == NULL)
		return;
	m = *mp;
	*mp = NULL;
	STRATA_ASSERT(m->magic == METRICS_MAGIC);
	m->magic = 0;
	pthread_key_delete(m->key);
	/* Relaxed: no thread records any more (the caller's contract), and
	 * the caller's own synchronization with them (a join) orders their
	 * registrations before this load. */
	b = atomic_load_explicit(&m->blocks, memory_order_relaxed);
	while (b != NULL) {
		struct block *next = b->next;

		free(b);
		b = next;
	}
	pthread_mutex_destroy(&m->lock);
	for (size_t r = 0; r < m->n_slots; r++)
		free(m->names[r]);
	free(m->fetch);
	free(m->next_member);
	free(m->group);
	free(m->methods);
	free(m->names);
	free(m);
}

/* --- reading -------------------------------------------------------------- */

/* Sum every block into a new array of n_counters (NULL: out of memory). */
static uint64_t *snapshot(struct strata_metrics *m)
{
	uint64_t *sum = calloc(m->n_counters, sizeof(*sum));

	if (sum == NULL)
		return NULL;
	/* Acquire: pairs with the release store in register_block(), so
	 * each block reached is fully initialized and its next pointer
	 * visible. */
	for (struct block *b = atomic_load_explicit(&m->blocks,
						    memory_order_acquire);
	     b != NULL; b = b->next)
		for (size_t i = 0; i < m->n_counters; i++)
			/* Relaxed: see bump(); a recent value is enough. */
			sum[i] += atomic_load_explicit(&b->c[i],
						       memory_order_relaxed);
	return sum;
}

/* The same for one counter only (route and upstream stats). */
static uint64_t sum_one(struct strata_metrics *m, size_t i)
{
	uint64_t sum = 0;

	/* Acquire, relaxed: as in snapshot(). */
	for (struct block *b = atomic_load_explicit(&m->blocks,
						    memory_order_acquire);
	     b != NULL; b = b->next)
		sum += atomic_load_explicit(&b->c[i], memory_order_relaxed);
	return sum;
}

void strata_metrics_route_stats(struct strata_metrics *m, size_t route,
				struct strata_metrics_route_stats *out)
{
	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	STRATA_ASSERT(route <= m->n_routes + claimed(m));
	memset(out, 0, sizeof(*out));
	for (unsigned meth = 0; meth < N_METHODS; meth++)
		for (unsigned c = 0; c < N_RESULTS; c++) {
			uint64_t n = sum_one(m, req_at(m, route, meth, c));

			out->requests += n;
			if (c == STRATA_CACHE_HIT || c == STRATA_CACHE_STALE)
				out->hits += n;
			else if (c == STRATA_CACHE_COLLAPSED)
				out->collapsed += n;
		}
	out->origin_seconds_saved =
		(double)sum_one(m, m->off_saved + route) / 1e9;
}

void strata_metrics_upstream_stats(struct strata_metrics *m,
				   struct strata_metrics_upstream_stats *out)
{
	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	memset(out, 0, sizeof(*out));
	for (unsigned cls = 0; cls < N_CLASSES; cls++) {
		uint64_t n = sum_one(m, m->off_uclass + cls);

		out->requests += n;
		if (cls == CLASS_ERROR)
			out->errors += n;
	}
	/* Relaxed: a gauge, see strata_metrics_upstream_inflight(). */
	out->in_flight = atomic_load_explicit(&m->in_flight,
					      memory_order_relaxed);
}

/* --- rendering ------------------------------------------------------------ */

static void family(FILE *f, const char *name, const char *help,
		   const char *type)
{
	/* The help texts are constants without backslashes or newlines, so
	 * they need no escaping. */
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format requires: \\, \" and \n. */
static void label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		switch (*v) {
		case '\\':
			fputs("\\\\", f);
			break;
		case '"':
			fputs("\\\"", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		default:
			fputc(*v, f);
		}
	}
}

/* A duration sum in exact decimal seconds. */
static void seconds_us(FILE *f, uint64_t us)
{
	fprintf(f, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

/* A float the way Go parses it: the shortest of %.15g and %.17g that
 * reads back exactly, with Prometheus's spellings of the special values. */
static void float_value(FILE *f, double v)
{
	char buf[40];

	if (isnan(v)) {
		fputs("NaN", f);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "+Inf" : "-Inf", f);
		return;
	}
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	fputs(buf, f);
}

/*
 * Sum one counter over the routes of the name group led by `g`: the
 * counter's index for route r is first + r * stride (every per-route
 * array in a block is route-major).
 */
static uint64_t group_sum(const struct strata_metrics *m, const uint64_t *s,
			  size_t g, size_t first, size_t stride)
{
	uint64_t sum = 0;

	for (size_t r = g; r != SIZE_MAX; r = m->next_member[r])
		sum += s[first + r * stride];
	return sum;
}

#define REQ_STRIDE (N_METHODS * N_RESULTS)
#define RDUR_STRIDE (N_RESULTS * N_BUCKETS)
#define RSUM_STRIDE N_RESULTS

/* Whether a series of a route is listed at zero (see metrics.h). */
static bool listed(const struct strata_metrics *m, size_t route,
		   unsigned method, unsigned cache)
{
	if (!(m->methods[route] & (1u << method)))
		return false;
	return route != m->n_routes || cache == STRATA_CACHE_BYPASS;
}

static bool group_listed(const struct strata_metrics *m, size_t g,
			 unsigned method, unsigned cache)
{
	for (size_t r = g; r != SIZE_MAX; r = m->next_member[r])
		if (listed(m, r, method, cache))
			return true;
	return false;
}

static bool group_histogram_listed(const struct strata_metrics *m, size_t g,
				   unsigned cache)
{
	for (unsigned meth = 0; meth < N_METHODS; meth++)
		if (group_listed(m, g, meth, cache))
			return true;
	return false;
}

/* One histogram series from per-bucket counts; `labels` is the text
 * before `le` ("" or `route="x",cache="hit",`). */
static void histogram(FILE *f, const char *name, const char *labels,
		      const uint64_t *per_bucket, uint64_t sum_us)
{
	uint64_t cumulative = 0;

	for (unsigned b = 0; b < N_BUCKETS; b++) {
		cumulative += per_bucket[b];
		fprintf(f, "%s_bucket{%sle=\"%s\"} %" PRIu64 "\n", name, labels,
			bound_le[b], cumulative);
	}
	if (labels[0] != '\0') {
		/* Drop the trailing comma of the label text. */
		int n = (int)strlen(labels) - 1;

		fprintf(f, "%s_sum{%.*s} ", name, n, labels);
		seconds_us(f, sum_us);
		fprintf(f, "\n%s_count{%.*s} %" PRIu64 "\n", name, n, labels,
			cumulative);
	} else {
		fprintf(f, "%s_sum ", name);
		seconds_us(f, sum_us);
		fprintf(f, "\n%s_count %" PRIu64 "\n", name, cumulative);
	}
}

static void render_requests(FILE *f, struct strata_metrics *m,
			    const uint64_t *s)
{
	family(f, "strata_requests_total",
	       "Client requests by route, method and cache result.",
	       "counter");
	for (size_t g = 0; g < m->n_slots; g++) {
		if (m->group[g] != g)
			continue;
		for (unsigned meth = 0; meth < N_METHODS; meth++)
			for (unsigned c = 0; c < N_RESULTS; c++) {
				uint64_t n = group_sum(m, s, g,
						       req_at(m, 0, meth, c),
						       REQ_STRIDE);

				if (n == 0 && !group_listed(m, g, meth, c))
					continue;
				fputs("strata_requests_total{route=\"", f);
				label_value(f, m->names[g]);
				fprintf(f, "\",method=\"%s\",cache=\"%s\"} %"
					PRIu64 "\n", method_name[meth],
					result_name[c], n);
			}
	}
}

static int render_request_durations(FILE *f, struct strata_metrics *m,
				    const uint64_t *s)
{
	const char *name = "strata_request_duration_seconds";
	char *labels = NULL;
	size_t labels_len = 0;
	FILE *lf = NULL;
	int rc = 0;

	family(f, name,
	       "Client request duration, first byte received to last byte "
	       "sent, by route and cache result.",
	       "histogram");
	for (size_t g = 0; g < m->n_slots; g++) {
		if (m->group[g] != g)
			continue;
		for (unsigned c = 0; c < N_RESULTS; c++) {
			uint64_t per_bucket[N_BUCKETS];
			uint64_t total = 0;

			for (unsigned b = 0; b < N_BUCKETS; b++) {
				per_bucket[b] = group_sum(m, s, g,
							  rdur_at(m, 0, c, b),
							  RDUR_STRIDE);
				total += per_bucket[b];
			}
			if (total == 0 && !group_histogram_listed(m, g, c))
				continue;
			lf = open_memstream(&labels, &labels_len);
			if (lf == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			fputs("route=\"", lf);
			label_value(lf, m->names[g]);
			fprintf(lf, "\",cache=\"%s\",", result_name[c]);
			if (fclose(lf) != 0) {
				lf = NULL;
				rc = -ENOMEM;
				goto out;
			}
			lf = NULL;
			histogram(f, name, labels, per_bucket,
				  group_sum(m, s, g, rsum_at(m, 0, c),
					    RSUM_STRIDE));
			free(labels);
			labels = NULL;
		}
	}
out:
	free(labels);
	return rc;
}

static void render_upstream(FILE *f, struct strata_metrics *m,
			    const uint64_t *s)
{
	family(f, "strata_upstream_requests_total",
	       "Upstream fetches by status class (error: no response).",
	       "counter");
	for (unsigned cls = 0; cls < N_CLASSES; cls++)
		fprintf(f,
			"strata_upstream_requests_total{status_class=\"%s\"} %"
			PRIu64 "\n", class_name[cls], s[m->off_uclass + cls]);

	family(f, "strata_upstream_duration_seconds",
	       "Upstream fetch duration.", "histogram");
	histogram(f, "strata_upstream_duration_seconds", "", &s[m->off_udur],
		  s[m->off_usum]);

	family(f, "strata_upstream_in_flight",
	       "Upstream fetches in progress.", "gauge");
	/* Relaxed: a gauge, see strata_metrics_upstream_inflight(). */
	fprintf(f, "strata_upstream_in_flight %" PRId64 "\n",
		atomic_load_explicit(&m->in_flight, memory_order_relaxed));
}

/* Whether tiers[i] repeats the name of an earlier one. */
static bool repeated_tier(const struct strata_metrics_tier *tiers, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(tiers[j].name, tiers[i].name) == 0)
			return true;
	return false;
}

enum tier_figure {
	FIG_HITS, FIG_MISSES, FIG_ENTRIES, FIG_BYTES, FIG_LIMIT,
	FIG_EVICTIONS, FIG_UP, FIG_ENABLED,
};

static void render_tiers(FILE *f, struct strata_metrics *m, const uint64_t *s,
			 const struct strata_metrics_tier *tiers,
			 size_t n_tiers)
{
	static const struct {
		const char *name, *help, *type;
	} figs[] = {
		[FIG_HITS] = { "strata_tier_hits_total",
			       "Lookups the tier answered.", "counter" },
		[FIG_MISSES] = { "strata_tier_misses_total",
				 "Lookups the tier could not answer.",
				 "counter" },
		[FIG_ENTRIES] = { "strata_tier_entries",
				  "Entries the tier holds.", "gauge" },
		[FIG_BYTES] = { "strata_tier_bytes",
				"Bytes the tier holds.", "gauge" },
		[FIG_LIMIT] = { "strata_tier_limit_bytes",
				"The tier's configured size limit in bytes.",
				"gauge" },
		[FIG_EVICTIONS] = { "strata_tier_evictions_total",
				    "Entries the tier evicted to make room.",
				    "counter" },
		[FIG_UP] = { "strata_tier_up",
			     "1 when the tier is configured and reachable.",
			     "gauge" },
		/* Without it, up 0 reads the same for a tier that is off
		 * and one that is down: an alert needs both. */
		[FIG_ENABLED] = { "strata_tier_enabled",
				  "1 when the tier is configured, reachable "
				  "or not.",
				  "gauge" },
	};
	bool rendered[N_DROP_TIERS] = { false };

	for (unsigned fig = 0; fig < sizeof(figs) / sizeof(figs[0]); fig++) {
		family(f, figs[fig].name, figs[fig].help, figs[fig].type);
		for (size_t i = 0; i < n_tiers; i++) {
			const struct strata_metrics_tier *t = &tiers[i];
			uint64_t v = 0;

			if (repeated_tier(tiers, i))
				continue;
			switch ((enum tier_figure)fig) {
			case FIG_HITS: v = t->hits; break;
			case FIG_MISSES: v = t->misses; break;
			case FIG_ENTRIES: v = t->entries; break;
			case FIG_BYTES: v = t->bytes; break;
			case FIG_LIMIT: v = t->limit; break;
			case FIG_EVICTIONS: v = t->evictions; break;
			case FIG_UP: v = t->up ? 1 : 0; break;
			case FIG_ENABLED: v = 1; break;
			}
			if (!t->on)
				v = 0;
			fprintf(f, "%s{tier=\"", figs[fig].name);
			label_value(f, t->name);
			fprintf(f, "\"} %" PRIu64 "\n", v);
		}
	}

	family(f, "strata_store_dropped_total",
	       "Stores a tier refused or dropped.", "counter");
	for (size_t i = 0; i < n_tiers; i++) {
		const struct strata_metrics_tier *t = &tiers[i];
		int k = drop_tier_index(t->name);
		uint64_t v = t->on ? t->dropped : 0;

		if (repeated_tier(tiers, i))
			continue;
		if (k >= 0) {
			v += s[m->off_drop + (size_t)k];
			rendered[k] = true;
		}
		fputs("strata_store_dropped_total{tier=\"", f);
		label_value(f, t->name);
		fprintf(f, "\"} %" PRIu64 "\n", v);
	}
	/* Drops recorded for a tier the caller did not pass are not lost. */
	for (int k = 0; k < N_DROP_TIERS; k++)
		if (!rendered[k] && s[m->off_drop + (size_t)k] != 0)
			fprintf(f, "strata_store_dropped_total{tier=\"%s\"} %"
				PRIu64 "\n", drop_tier_name[k],
				s[m->off_drop + (size_t)k]);
}

static void render_purges(FILE *f, struct strata_metrics *m)
{
	family(f, "strata_purges_total",
	       "Purges applied here, by where they came from and what they "
	       "matched.",
	       "counter");
	for (size_t i = 0; i < N_PURGE_SOURCES; i++)
		for (size_t k = 0; k < STRATA_PURGE_KINDS; k++)
			fprintf(f,
				"strata_purges_total{source=\"%s\","
				"kind=\"%s\"} %" PRIu64 "\n",
				purge_source_name[i],
				strata_purge_kind_name(k),
				atomic_load_explicit(&m->purges[i][k],
						     memory_order_relaxed));
	family(f, "strata_invalidations_dropped_total",
	       "Invalidations by unsafe methods dropped, their queue full.",
	       "counter");
	fprintf(f, "strata_invalidations_dropped_total %" PRIu64 "\n",
		atomic_load_explicit(&m->invalidations_dropped,
				     memory_order_relaxed));
}

static void render_savings(FILE *f, struct strata_metrics *m,
			   const uint64_t *s)
{
	uint64_t collapsed = 0;

	family(f, "strata_coalesced_requests_total",
	       "Requests served by joining another request's upstream fetch.",
	       "counter");
	for (size_t r = 0; r < m->n_slots; r++)
		for (unsigned meth = 0; meth < N_METHODS; meth++)
			collapsed += s[req_at(m, r, meth,
					      STRATA_CACHE_COLLAPSED)];
	fprintf(f, "strata_coalesced_requests_total %" PRIu64 "\n", collapsed);

	family(f, "strata_origin_seconds_saved_total",
	       "Estimated upstream time saved: each hit, stale or collapsed "
	       "request credited with the route's mean fetch time.",
	       "counter");
	for (size_t g = 0; g < m->n_slots; g++) {
		uint64_t ns;

		if (m->group[g] != g)
			continue;
		ns = group_sum(m, s, g, m->off_saved, 1);
		fputs("strata_origin_seconds_saved_total{route=\"", f);
		label_value(f, m->names[g]);
		fprintf(f, "\"} %" PRIu64 ".%09" PRIu64 "\n", ns / 1000000000,
			ns % 1000000000);
	}
}

/* Open descriptors, not counting the one that reads /proc/self/fd.
 * -1 when it cannot be read. */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long n = 0;
	char self[24];

	if (d == NULL)
		return -1;
	snprintf(self, sizeof(self), "%d", dirfd(d));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && strcmp(de->d_name, self) != 0)
			n++;
	closedir(d);
	return n;
}

/* Resident set size in bytes (/proc/self/statm × page size), or -1. */
static long long resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	int n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	if (n != 2 || page <= 0)
		return -1;
	return (long long)(resident * (unsigned long long)page);
}

static void render_process(FILE *f, struct strata_metrics *m)
{
	long long rss = resident_bytes();
	long fds = open_fds();

	family(f, "process_resident_memory_bytes", "Resident memory size in bytes.",
	       "gauge");
	if (rss >= 0)
		fprintf(f, "process_resident_memory_bytes %lld\n", rss);
	family(f, "process_open_fds", "Number of open file descriptors.",
	       "gauge");
	if (fds >= 0)
		fprintf(f, "process_open_fds %ld\n", fds);
	family(f, "process_start_time_seconds",
	       "Start time of the process since unix epoch in seconds.",
	       "gauge");
	fputs("process_start_time_seconds ", f);
	float_value(f, m->start_time);
	fputc('\n', f);
}

int strata_metrics_render(struct strata_metrics *m,
			  const struct strata_metrics_tier *tiers,
			  size_t n_tiers, char **out, size_t *len)
{
	uint64_t *s = NULL;
	char *buf = NULL;
	size_t buf_len = 0;
	FILE *f = NULL;
	int rc = -ENOMEM;

	STRATA_ASSERT(m != NULL && m->magic == METRICS_MAGIC);
	STRATA_ASSERT(n_tiers == 0 || tiers != NULL);
	*out = NULL;
	*len = 0;
	s = snapshot(m);
	if (s == NULL)
		goto out;
	f = open_memstream(&buf, &buf_len);
	if (f == NULL)
		goto out;
	/* The lock keeps a reload's spare claims out of the names and
	 * groups while they are walked. */
	pthread_mutex_lock(&m->lock);
	render_requests(f, m, s);
	rc = render_request_durations(f, m, s);
	if (rc == 0) {
		render_upstream(f, m, s);
		render_tiers(f, m, s, tiers, n_tiers);
		render_purges(f, m);
		render_savings(f, m, s);
		render_process(f, m);
	}
	pthread_mutex_unlock(&m->lock);
	if (rc != 0)
		goto out;
	rc = ferror(f) ? -ENOMEM : 0;
out:
	if (f != NULL && fclose(f) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc == 0) {
		*out = buf;
		*len = buf_len;
	} else {
		free(buf);
	}
	free(s);
	return rc;
}
