/*
 * server.c: a Strata server, assembled from configuration: the route
 * table, the tiers (memory, disk), the coalescing table, the upstream
 * client, the handler pool and the front end.  Implements the lifecycle of
 * <strata/strata.h> and <strata/handler.h>.
 *
 * Shutdown order matters: the front end stops accepting first, in-flight
 * requests get their time, then the upstream cancels what is left and the
 * handler pool finishes its jobs, which resumes every parked connection so
 * that libmicrohttpd can be stopped (it must never be stopped with a
 * suspended connection).  The disk tier closes after the workers are gone
 * (their read transactions are its), applying every queued write first.
 *
 * Live reload (strata_server_reload()) builds a new configuration
 * generation (core/live.h) off to the side and publishes it in one
 * atomic step; requests under way finish with the generation they began
 * with.  Reloads are serialised by reload_lock.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/flight.h"
#include "cache/key.h"
#include "cache/purge.h"
#include "core/config_dump.h"
#include "core/live.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/route.h"
#include "front/admin.h"
#include "front/front.h"
#include "front/handler.h"
#include "strata/config.h"
#include "strata/handler.h"
#include "strata/strata.h"
#include "tier/disk.h"
#include "tier/fleet.h"
#include "tier/mem.h"
#include "tier/redis_async.h"
#include "obs/metrics.h"
#include "upstream/upstream.h"

#define SERVER_MAGIC 0x53525652u /* "SRVR" */

/* Per-request body buffer before the upstream is paused. */
#define STREAM_BUFFER (256u * 1024u)

/* After cancelling, how long parked connections get to be answered. */
#define CANCEL_GRACE_MS 2000u

/* Threads running memoized C handlers (only started when one is set). */
#define HANDLER_THREADS 8u

struct strata_server {
	uint32_t magic;
	struct strata_front_config fcfg;
	char *listen;
	char *tags_header;                 /* owned; NULL: no tags */
	/* What a reload can change; the cell holds the current generation
	 * (routes, handlers, metrics series, Host policy, /admin/config). */
	struct strata_live_cell live;
	/* strata_server_handle()'s bindings by route path (owned), carried
	 * into every generation whose table has that path. */
	struct handler_binding *bindings;
	size_t n_bindings;
	bool has_handlers;
	pthread_mutex_t reload_lock;       /* serialises reloads */
	char *boot_snapshot;               /* strata_config_snapshot() of
					      the configuration started
					      with, and of the last one */
	char *snapshot;                    /* applied (under reload_lock) */
	uint64_t generation;               /* under reload_lock */
	/* Rebuilds the configuration for POST /admin/reload (main's). */
	int (*reloader)(void *ctx, char **out);
	void *reloader_ctx;
	struct strata_upstream *up;
	struct strata_mem *mem;
	struct strata_disk *disk;          /* NULL when the tier is off */
	struct strata_redis_async *shared; /* NULL when Redis is off */
	struct strata_fleet *fleet;        /* with `shared` */
	/* STRATA_METHOD_* of every route that cached since start (prefix
	 * purges): it only grows, since entries outlive their route. */
	atomic_uint cached_methods;
	char instance[96];                 /* names this server in Redis */
	struct strata_flights *flights;
	struct strata_pool *handler_pool;
	struct strata_front *front;
	struct strata_metrics *metrics;
	struct strata_admin *admin;        /* NULL until started */
	char *admin_listen;
	char *admin_token;                 /* NULL: none */
	atomic_int state;                  /* enum strata_admin_state */
	atomic_bool upstream_down;         /* written by the front end */
	struct strata_pool *invalidator;   /* runs unsafe-method purges */
	atomic_uint invalidations_queued;  /* bounded: see invalidate_cb */
	bool started;
	bool drained;
};

struct handler_binding {
	char *path;
	struct strata_handler handler;
};

/* Pending disk writes before new ones are dropped (never waited for). */
#define DISK_QUEUE_LIMIT 65536u

/* Where the disk tier records the purge-stream position. */
#define PURGE_POSITION_META "redis.purge"

static int purge_local(struct strata_server *srv, const struct strata_purge *p,
		       struct strata_purge_result *out);
static int purge_by(struct strata_server *srv, enum strata_purge_source from,
		    const char *kind, const char *arg,
		    struct strata_purge_result *out);

static int open_disk(const struct strata_config *cfg, struct strata_disk **out)
{
	struct strata_disk_config dcfg = {
		.path = cfg->cache.disk.path,
		.size = cfg->cache.disk.size,
		.sync = (enum strata_disk_sync)cfg->cache.disk.sync,
		.on_corrupt =
			(enum strata_disk_on_corrupt)cfg->cache.disk.on_corrupt,
		.queue_limit = DISK_QUEUE_LIMIT,
	};

	return strata_disk_open(&dcfg, out);
}

/* The fleet follower applies another instance's purge here. */
static void fleet_apply_cb(void *arg, const struct strata_purge *p)
{
	static const struct strata_purge all = {.kind = STRATA_PURGE_ALL,
						.arg = ""};
	struct strata_server *srv = arg;
	const struct strata_purge *q = p != NULL ? p : &all;

	strata_metrics_purge(srv->metrics, STRATA_PURGE_FROM_FLEET, q->kind);
	if (purge_local(srv, q, NULL) != 0)
		strata_log_warn("fleet: a %s purge could not be applied to "
				"the disk tier (writer queue full)",
				strata_purge_kind_name(q->kind));
}

/* ...and records how far it got, after the removals (queue order). */
static void fleet_position_cb(void *arg, const char *position)
{
	struct strata_server *srv = arg;

	if (srv->disk != NULL &&
	    strata_disk_meta_put(srv->disk, PURGE_POSITION_META, position,
				 strlen(position)) != 0)
		strata_log_warn("fleet: cannot record the purge-stream "
				"position (disk writer queue full); it is "
				"recorded with the next purge");
}

/* This server's name in Redis (lock values, purge records): unique
 * across hosts, restarts and servers in one process. */
static void name_instance(struct strata_server *srv)
{
	char host[64] = "host";

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(srv->instance, sizeof(srv->instance), "%s/%ld/%llx/%p",
		 host, (long)getpid(), (unsigned long long)strata_now_us(),
		 (void *)srv);
}

/* Tier 3: the request-path workers, then the purge-stream follower
 * (which catches up before returning: see fleet.h). */
static int open_redis(struct strata_server *srv,
		      const struct strata_config *cfg)
{
	const struct strata_redis_config rcfg = {
		.url = cfg->cache.redis.url,
		.prefix = cfg->cache.redis.prefix,
		.timeout_ms = (unsigned)cfg->cache.redis.timeout_ms,
	};
	struct strata_redis_async_config acfg = {
		.redis = rcfg,
		.queue_limit = (size_t)cfg->cache.redis.queue,
		.pool = cfg->cache.redis.pool,
		.token = srv->instance,
		.lock_ttl_ms = cfg->cache.redis.lock_ttl_ms,
		.lock_wait_ms = cfg->cache.redis.lock_wait_ms != 0
					? cfg->cache.redis.lock_wait_ms
					: cfg->upstream.timeout_ms,
	};
	char position[STRATA_FLEET_POS_MAX + 1] = "";
	size_t len = 0;
	struct strata_fleet_config fcfg = {
		.redis = rcfg,
		.purge_log = cfg->cache.redis.purge_log,
		.origin = srv->instance,
		.position = position,
		.apply = fleet_apply_cb,
		.position_cb = fleet_position_cb,
		.arg = srv,
	};
	int rc;

	name_instance(srv);
	if (srv->disk != NULL &&
	    strata_disk_meta_get(srv->disk, PURGE_POSITION_META, position,
				 sizeof(position) - 1, &len) == 0)
		position[len] = '\0';
	rc = strata_redis_async_start(&acfg, &srv->shared);
	if (rc == 0)
		rc = strata_fleet_start(&fcfg, &srv->fleet);
	return rc;
}

/* The metrics, one series set per route of the first generation, in
 * table order (later generations map their routes by name). */
static int open_metrics(struct strata_server *srv,
			const struct strata_route_table *routes)
{
	size_t n = strata_route_table_size(routes);
	struct strata_metrics_route *r = calloc(n + 1, sizeof(*r));
	int rc;

	if (r == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct strata_route *route =
			strata_route_table_at(routes, i);

		r[i].name = route->name;
		r[i].methods = route->methods;
	}
	rc = strata_metrics_new(r, n, &srv->metrics);
	free(r);
	return rc;
}

/* The admin listener's copies of the settings it needs (not live). */
static int keep_admin_config(struct strata_server *srv,
			     const struct strata_config *cfg)
{
	srv->admin_listen = strdup(cfg->admin.listen);
	if (cfg->admin.token != NULL && cfg->admin.token[0] != '\0')
		srv->admin_token = strdup(cfg->admin.token);
	if (srv->admin_listen == NULL ||
	    (cfg->admin.token != NULL && cfg->admin.token[0] != '\0' &&
	     srv->admin_token == NULL))
		return -ENOMEM;
	return 0;
}

/* The methods whose answers some route caches (HEAD is keyed as GET). */
static unsigned cached_methods(const struct strata_config *cfg)
{
	unsigned m = 0;

	for (size_t i = 0; i < cfg->n_routes; i++)
		if (cfg->routes[i].ttl_ms != 0 || cfg->routes[i].ttl_origin)
			m |= cfg->routes[i].methods;
	if (m & STRATA_METHOD_HEAD)
		m = (m & ~(unsigned)STRATA_METHOD_HEAD) | STRATA_METHOD_GET;
	return m;
}

/* The binding for a route path, or NULL. */
static const struct strata_handler *
binding_for(const struct strata_server *srv, const char *path)
{
	for (size_t i = 0; i < srv->n_bindings; i++)
		if (strcmp(srv->bindings[i].path, path) == 0)
			return &srv->bindings[i].handler;
	return NULL;
}

/*
 * A generation from `cfg` over the compiled table *routes (its reference
 * moves into the generation).  The first generation's routes are the
 * metrics' own indexes; a reload's are mapped by name, claiming spare
 * series for new names.  Returns 0, STRATA_ECONFIG (message in err) or
 * -ENOMEM.
 */
static int build_live(struct strata_server *srv,
		      const struct strata_config *cfg,
		      struct strata_route_table **routes,
		      struct strata_live **out, char *err, size_t errlen)
{
	size_t n = strata_route_table_size(*routes);
	struct strata_live *live = strata_live_new();
	int rc = 0;

	*out = NULL;
	if (live == NULL)
		return -ENOMEM;
	live->routes = *routes;
	*routes = NULL;
	live->handlers = calloc(n + 1, sizeof(*live->handlers));
	live->metric_slot = calloc(n + 1, sizeof(*live->metric_slot));
	live->config_json = strata_config_dump_json(cfg);
	if (live->handlers == NULL || live->metric_slot == NULL ||
	    live->config_json == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct strata_route *route =
			strata_route_table_at(live->routes, i);
		const struct strata_handler *h = binding_for(srv, route->path);
		struct strata_metrics_route mr = {route->name, route->methods};

		if (h != NULL)
			live->handlers[i] = *h;
		if (srv->generation == 0)
			live->metric_slot[i] = i;
		else if ((rc = strata_metrics_route_index(
				  srv->metrics, &mr, &live->metric_slot[i])) ==
			 -ENOSPC)
			snprintf(err, errlen,
				 "route \"%s\": this process has seen too "
				 "many route names to count a new one "
				 "(restart to apply)",
				 route->name);
	}
	if (rc == -ENOSPC)
		rc = STRATA_ECONFIG;
	if (rc == 0)
		live->metric_slot[n] = strata_metrics_unmatched(srv->metrics);
	live->preserve_host = cfg->upstream.preserve_host;
	live->cached_methods = cached_methods(cfg);
	live->generation = ++srv->generation;
	if (rc != 0) {
		srv->generation--;
		strata_live_release(&live);
		return rc;
	}
	*out = live;
	return 0;
}

int strata_server_new(const struct strata_config *cfg,
		      struct strata_server **out)
{
	char err[STRATA_CONFIG_ERRLEN];
	struct strata_server *srv = calloc(1, sizeof(*srv));
	struct strata_upstream_config ucfg = {
		.url = cfg->upstream.url,
		.connect_timeout_ms = cfg->upstream.connect_timeout_ms,
		.timeout_ms = cfg->upstream.timeout_ms,
		.max_connections = cfg->upstream.max_connections,
	};
	struct strata_front_config fcfg = {
		.listen = cfg->listen,
		.workers = cfg->workers,
		.max_connections = cfg->max_connections,
		.max_request_body = cfg->max_request_body,
		.max_header_size = cfg->max_header_size,
		.client_timeout_ms = cfg->client_timeout_ms,
		.stream_buffer = STREAM_BUFFER,
		.max_object_size = cfg->cache.max_object_size,
		.tags_header = cfg->cache.tags_header,
	};
	struct strata_route_table *routes = NULL;
	struct strata_live *live = NULL;
	int rc;

	if (srv == NULL)
		return -ENOMEM;
	srv->magic = SERVER_MAGIC;
	pthread_mutex_init(&srv->reload_lock, NULL);
	atomic_init(&srv->cached_methods, cached_methods(cfg));
	rc = strata_route_table_new(cfg->routes, cfg->n_routes, &routes, err,
				    sizeof(err));
	if (rc != 0) {
		strata_log_error("%s", err);
		goto fail;
	}
	srv->listen = strdup(cfg->listen);
	srv->snapshot = strata_config_snapshot(cfg);
	srv->boot_snapshot = strata_config_snapshot(cfg);
	if (srv->listen == NULL || srv->snapshot == NULL ||
	    srv->boot_snapshot == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (cfg->cache.tags_header != NULL && cfg->cache.tags_header[0] != '\0' &&
	    (srv->tags_header = strdup(cfg->cache.tags_header)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	srv->fcfg = fcfg;
	srv->fcfg.listen = srv->listen;
	srv->fcfg.tags_header = srv->tags_header;
	atomic_init(&srv->state, STRATA_ADMIN_STARTING);
	atomic_init(&srv->upstream_down, false);
	rc = strata_upstream_new(&ucfg, &srv->up);
	if (rc == 0)
		rc = open_metrics(srv, routes);
	if (rc == 0)
		rc = build_live(srv, cfg, &routes, &live, err, sizeof(err));
	if (rc == 0)
		strata_live_publish(&srv->live, live);
	if (rc == 0)
		rc = keep_admin_config(srv, cfg);
	if (rc == 0)
		rc = strata_mem_new(cfg->cache.memory, &srv->mem);
	if (rc == 0)
		rc = strata_flights_new(&srv->flights);
	if (rc == 0 && cfg->cache.disk.enabled)
		rc = open_disk(cfg, &srv->disk);
	if (rc == 0 && cfg->cache.redis.url != NULL &&
	    cfg->cache.redis.url[0] != '\0')
		rc = open_redis(srv, cfg);
	if (rc != 0)
		goto fail;
	strata_log_set_access(cfg->access_log);
	strata_log_set_level((enum strata_log_level)cfg->log.level);
	strata_log_set_format((enum strata_log_format)cfg->log.format);
	*out = srv;
	return 0;
fail:
	strata_route_table_release(&routes);
	strata_server_free(&srv);
	return rc;
}

int strata_server_handle(struct strata_server *srv, const char *route_path,
			 strata_handler_fn fn, void *arg)
{
	/* Before start no request reads the generation, so its handler
	 * array may still be written here. */
	struct strata_live *live =
		atomic_load_explicit(&srv->live.cur, memory_order_relaxed);
	size_t n = strata_route_table_size(live->routes);
	struct handler_binding *b;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC);
	if (srv->started)
		return -EBUSY;
	for (size_t i = 0; i < n; i++) {
		const struct strata_route *route =
			strata_route_table_at(live->routes, i);

		if (strcmp(route->path, route_path) != 0)
			continue;
		b = realloc(srv->bindings,
			    (srv->n_bindings + 1) * sizeof(*b));
		if (b == NULL)
			return -ENOMEM;
		srv->bindings = b;
		b = &srv->bindings[srv->n_bindings];
		if ((b->path = strdup(route_path)) == NULL)
			return -ENOMEM;
		b->handler.fn = fn;
		b->handler.arg = arg;
		srv->n_bindings++;
		live->handlers[i] = b->handler;
		srv->has_handlers = true;
		return 0;
	}
	return -ENOENT;
}

/* ---- live reload ------------------------------------------------------------ */

/* Settings a reload applies; every other key needs a restart (the
 * listeners, the tiers and their sizes, the admin token, workers). */
static bool live_key(const char *key)
{
	static const char *const live[] = {
		"routes", "log.", "access_log", "upstream.", "shutdown_timeout",
	};

	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (strncmp(key, live[i], strlen(live[i])) == 0)
			return true;
	return false;
}

/* Keys of the JSON array `changes` for which live_key() is `want`, as a
 * new array.  NULL (out of memory) is taken as empty by json_pack's o?. */
static json_t *keys_where(const char *changes, bool want)
{
	json_t *all = json_loads(changes != NULL ? changes : "[]", 0, NULL),
	       *out = json_array(), *v;
	size_t i;

	json_array_foreach(all, i, v)
		if (live_key(json_string_value(v)) == want)
			json_array_append(out, v);
	json_decref(all);
	return out;
}

/* One log line: what a reload applied and what waits for a restart. */
static void log_reload(const json_t *report)
{
	char *applied = json_dumps(json_object_get(report, "applied"),
				   JSON_COMPACT);
	char *later = json_dumps(json_object_get(report, "restart_required"),
				 JSON_COMPACT);

	strata_log_info("reload: generation %lld in effect; applied %s; "
			"needing a restart %s",
			(long long)json_integer_value(
				json_object_get(report, "generation")),
			applied != NULL ? applied : "[]",
			later != NULL ? later : "[]");
	free(applied);
	free(later);
}

/* The report of a reload from snapshot `next` (keys only, no values). */
static char *reload_report(struct strata_server *srv, const char *next)
{
	char *since_last = strata_config_diff_json(srv->snapshot, next);
	char *since_boot = strata_config_diff_json(srv->boot_snapshot, next);
	json_t *o = json_pack("{s:I, s:o, s:o}", "generation",
			      (json_int_t)srv->generation, "applied",
			      keys_where(since_last, true),
			      "restart_required",
			      keys_where(since_boot, false));
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	if (o != NULL)
		log_reload(o);
	json_decref(o);
	free(since_last);
	free(since_boot);
	return text;
}

int strata_server_reload(struct strata_server *srv,
			 const struct strata_config *cfg, char **report,
			 char *err, size_t errlen)
{
	struct strata_upstream_config ucfg = {
		.url = cfg->upstream.url,
		.connect_timeout_ms = cfg->upstream.connect_timeout_ms,
		.timeout_ms = cfg->upstream.timeout_ms,
		.max_connections = cfg->upstream.max_connections,
	};
	struct strata_route_table *routes = NULL;
	struct strata_live *live = NULL;
	char *snap, *text = NULL;
	int rc;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC);
	if (report != NULL)
		*report = NULL;
	err[0] = '\0';
	snap = strata_config_snapshot(cfg);
	if (snap == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&srv->reload_lock);
	rc = strata_route_table_new(cfg->routes, cfg->n_routes, &routes, err,
				    errlen);
	if (rc == 0)
		rc = build_live(srv, cfg, &routes, &live, err, errlen);
	if (rc == 0)
		rc = strata_upstream_reconfigure(srv->up, &ucfg);
	if (rc == 0)
		text = reload_report(srv, snap);
	if (rc == 0 && text == NULL)
		rc = -ENOMEM;
	if (rc != 0) {
		strata_route_table_release(&routes);
		if (live != NULL) {
			srv->generation--;
			strata_live_release(&live);
		}
		pthread_mutex_unlock(&srv->reload_lock);
		free(snap);
		return rc;
	}
	/* Relaxed: see disk_purge_prefix(). */
	atomic_fetch_or_explicit(&srv->cached_methods, live->cached_methods,
				 memory_order_relaxed);
	strata_log_set_access(cfg->access_log);
	strata_log_set_level((enum strata_log_level)cfg->log.level);
	strata_log_set_format((enum strata_log_format)cfg->log.format);
	strata_live_publish(&srv->live, live);
	free(srv->snapshot);
	srv->snapshot = snap;
	pthread_mutex_unlock(&srv->reload_lock);
	if (report != NULL)
		*report = text;
	else
		free(text);
	return 0;
}

void strata_server_set_reloader(struct strata_server *srv,
				int (*fn)(void *ctx, char **out), void *ctx)
{
	STRATA_ASSERT(srv->magic == SERVER_MAGIC && !srv->started);
	srv->reloader = fn;
	srv->reloader_ctx = ctx;
}

static int admin_reload_cb(void *ctx, char **out)
{
	struct strata_server *srv = ctx;

	return srv->reloader(srv->reloader_ctx, out);
}

/* ---- invalidation by unsafe methods -------------------------------------- */

/* Purges queued and not yet run before new ones are dropped: a flood of
 * POSTs must not grow memory without bound (a dropped invalidation leaves
 * an entry to expire by its TTL, as without invalidation). */
#define INVALIDATIONS_MAX 10000u

struct invalidation {
	struct strata_pool_job job;
	struct strata_server *srv;
	char path[];
};

static void invalidation_run(struct strata_pool_job *job)
{
	struct invalidation *inv = (struct invalidation *)(void *)job;

	(void)purge_by(inv->srv, STRATA_PURGE_FROM_INVALIDATION, "path",
		       inv->path, NULL);
	/* Relaxed: a bound on a queue, not a synchronisation. */
	atomic_fetch_sub_explicit(&inv->srv->invalidations_queued, 1,
				  memory_order_relaxed);
	free(inv);
}

/* The front end's callback, on a worker: queue a "path" purge.  It runs
 * on the invalidator thread (Redis and the disk writer may block). */
static void invalidate_cb(void *ctx, const char *path)
{
	struct strata_server *srv = ctx;
	size_t len = strlen(path);
	struct invalidation *inv;

	if (atomic_fetch_add_explicit(&srv->invalidations_queued, 1,
				      memory_order_relaxed) >=
	    INVALIDATIONS_MAX) {
		atomic_fetch_sub_explicit(&srv->invalidations_queued, 1,
					  memory_order_relaxed);
		strata_metrics_invalidation_dropped(srv->metrics);
		return;
	}
	inv = malloc(sizeof(*inv) + len + 1);
	if (inv != NULL) {
		inv->job.run = invalidation_run;
		inv->srv = srv;
		memcpy(inv->path, path, len + 1);
		if (strata_pool_submit(srv->invalidator, &inv->job) == 0)
			return;
		free(inv);
	}
	atomic_fetch_sub_explicit(&srv->invalidations_queued, 1,
				  memory_order_relaxed);
	strata_metrics_invalidation_dropped(srv->metrics);
}

static int admin_purge_cb(void *ctx, const char *kind, const char *arg,
			  struct strata_purge_result *out)
{
	return strata_server_purge_by(ctx, kind, arg, out);
}

static enum strata_admin_state admin_state_cb(void *ctx)
{
	struct strata_server *srv = ctx;

	return (enum strata_admin_state)atomic_load_explicit(
		&srv->state, memory_order_relaxed);
}

static bool admin_upstream_cb(void *ctx)
{
	struct strata_server *srv = ctx;

	/* Relaxed: a health hint (front.h); not srv->front, which a drain
	 * frees while the admin listener still answers. */
	return !atomic_load_explicit(&srv->upstream_down,
				     memory_order_relaxed);
}

/* The admin listener starts first, so /ready answers 503 "starting"
 * until the proxy listens. */
static int start_admin(struct strata_server *srv)
{
	struct strata_admin_deps deps = {
		.listen = srv->admin_listen,
		.token = srv->admin_token,
		.live = &srv->live,
		.mem = srv->mem,
		.disk = srv->disk,
		.shared = srv->shared,
		.fleet = srv->fleet,
		.metrics = srv->metrics,
		.purge = admin_purge_cb,
		.state = admin_state_cb,
		.upstream_up = admin_upstream_cb,
		.reload = srv->reloader != NULL ? admin_reload_cb : NULL,
		.ctx = srv,
	};

	return strata_admin_start(&deps, &srv->admin);
}

int strata_server_start(struct strata_server *srv)
{
	struct strata_front_deps deps = {
		.live = &srv->live,
		.up = srv->up,
		.mem = srv->mem,
		.disk = srv->disk,
		.shared = srv->shared,
		.fleet = srv->fleet,
		.flights = srv->flights,
		.metrics = srv->metrics,
		.upstream_down = &srv->upstream_down,
		.invalidate = invalidate_cb,
		.invalidate_ctx = srv,
	};
	int rc;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC && !srv->started);
	if (srv->has_handlers) {
		rc = strata_pool_new(HANDLER_THREADS, &srv->handler_pool);
		if (rc != 0)
			return rc;
	}
	deps.handler_pool = srv->handler_pool;
	rc = strata_pool_new(1, &srv->invalidator);
	if (rc != 0)
		return rc;
	rc = strata_front_new(&srv->fcfg, &deps, &srv->front);
	if (rc != 0)
		return rc;
	rc = start_admin(srv);
	if (rc != 0)
		return rc;
	rc = strata_upstream_start(srv->up);
	if (rc != 0)
		return rc;
	srv->started = true;
	rc = strata_front_start(srv->front);
	if (rc == 0)
		/* Relaxed: /ready reads a state word; nothing depends on
		 * ordering with other memory. */
		atomic_store_explicit(&srv->state, STRATA_ADMIN_READY,
				      memory_order_relaxed);
	return rc;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait until no request is in flight or `deadline` passes. */
static bool wait_idle(struct strata_server *srv, uint64_t deadline)
{
	while (strata_front_inflight(srv->front) > 0) {
		if (strata_now_ms() >= deadline)
			return false;
		sleep_ms(10);
	}
	return true;
}

int strata_server_drain(struct strata_server *srv, uint64_t timeout_ms)
{
	unsigned left = 0;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC);
	if (srv->drained || !srv->started)
		return 0;
	srv->drained = true;
	atomic_store_explicit(&srv->state, STRATA_ADMIN_DRAINING,
			      memory_order_relaxed);
	strata_front_quiesce(srv->front);
	if (!wait_idle(srv, strata_now_ms() + timeout_ms)) {
		left = strata_front_inflight(srv->front);
		strata_log_warn("shutdown: %u request(s) still running after "
				"%llu ms: cancelling them",
				left, (unsigned long long)timeout_ms);
		strata_upstream_cancel_all(srv->up);
		/* Fills waiting on another instance's lock fetch now (and
		 * fail at once: the upstream is cancelled). */
		if (srv->shared != NULL)
			strata_redis_async_shutdown(srv->shared);
		/* Handlers cannot be interrupted: let the queued and running
		 * ones finish, which wakes their parked connections.  The
		 * pool stays allocated: the front end still refers to it
		 * (a late submit is refused, and answered 503). */
		strata_pool_stop(srv->handler_pool);
		wait_idle(srv, strata_now_ms() + CANCEL_GRACE_MS);
	}
	/* Closes keep-alive connections and any client still reading. */
	strata_front_free(&srv->front);
	return (int)left;
}

void strata_server_free(struct strata_server **srvp)
{
	struct strata_server *srv;

	if (srvp == NULL || *srvp == NULL)
		return;
	srv = *srvp;
	STRATA_ASSERT(srv->magic == SERVER_MAGIC);
	if (srv->started && !srv->drained)
		strata_server_drain(srv, 0);
	/* Handler jobs wake their connections, so the pool goes before the
	 * front end (a drain has usually emptied it already). */
	strata_pool_free(&srv->handler_pool);
	strata_front_free(&srv->front);
	/* Queued invalidations run before the tiers go (stop runs them). */
	strata_pool_free(&srv->invalidator);
	/* The admin listener reads the tiers: it goes before them. */
	strata_admin_stop(&srv->admin);
	strata_upstream_free(&srv->up);
	/* The follower applies purges to the tiers: stop it before them. */
	strata_fleet_stop(&srv->fleet);
	strata_redis_async_stop(&srv->shared);
	strata_flights_free(&srv->flights);
	/* After the workers are gone: the disk tier's per-thread read
	 * transactions belong to them.  Queued writes are applied first. */
	strata_disk_close(&srv->disk);
	strata_mem_free(&srv->mem);
	strata_live_cell_clear(&srv->live);
	for (size_t i = 0; i < srv->n_bindings; i++)
		free(srv->bindings[i].path);
	free(srv->bindings);
	free(srv->listen);
	free(srv->tags_header);
	free(srv->admin_listen);
	free(srv->admin_token);
	free(srv->snapshot);
	free(srv->boot_snapshot);
	pthread_mutex_destroy(&srv->reload_lock);
	strata_metrics_free(&srv->metrics);
	srv->magic = 0;
	free(srv);
	*srvp = NULL;
}

/* --- purges ---------------------------------------------------------------- */

struct disk_purge {
	struct strata_disk *disk;
	const struct strata_purge *p;
	uint64_t removed;
	int rc;
};

/* Queue one disk removal; a full queue is drained once and retried. */
static int disk_purge_cb(void *arg, const char *key_text, size_t key_len,
			 const struct strata_key *key)
{
	struct disk_purge *dp = arg;

	if ((dp->p->kind == STRATA_PURGE_PREFIX ||
	     dp->p->kind == STRATA_PURGE_PATH) &&
	    key_text != NULL &&
	    !strata_purge_matches(dp->p, key, key_text, key_len, NULL, 0))
		return 0;
	if (strata_disk_remove(dp->disk, key) != 0 &&
	    (strata_disk_flush(dp->disk) != 0 ||
	     strata_disk_remove(dp->disk, key) != 0)) {
		dp->rc = STRATA_EUNAVAIL;
		return 1;
	}
	dp->removed++;
	return 0;
}

/* A prefix purge on disk: one key-text range per cached method, or one
 * scan of every key text when a route caches methods with other names. */
static void disk_purge_prefix(struct strata_server *srv, struct disk_purge *dp)
{
	static const struct { unsigned bit; const char *name; } methods[] = {
		{STRATA_METHOD_GET, "GET"},     {STRATA_METHOD_POST, "POST"},
		{STRATA_METHOD_PUT, "PUT"},     {STRATA_METHOD_DELETE, "DELETE"},
		{STRATA_METHOD_PATCH, "PATCH"}, {STRATA_METHOD_OPTIONS,
						 "OPTIONS"},
	};
	char range[STRATA_PURGE_ARG_MAX + 16];

	/* Relaxed: a reload that widens it publishes its routes after; an
	 * entry stored under them is judged by a later purge. */
	unsigned cached = atomic_load_explicit(&srv->cached_methods,
					       memory_order_relaxed);

	if (cached & STRATA_METHOD_OTHER) {
		strata_disk_scan_prefix(srv->disk, "", 0, disk_purge_cb, dp);
		return;
	}
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (!(cached & methods[i].bit))
			continue;
		snprintf(range, sizeof(range), "%s %s", methods[i].name,
			 dp->p->arg);
		strata_disk_scan_prefix(srv->disk, range, 0, disk_purge_cb, dp);
	}
}

static int disk_purge(struct strata_server *srv, const struct strata_purge *p,
		      uint64_t *removed)
{
	struct disk_purge dp = {.disk = srv->disk, .p = p};
	int rc;

	/* A scan sees committed entries only: commit the stores queued so
	 * far (a promotion a moment ago, say) so that the scan finds them. */
	if (p->kind != STRATA_PURGE_KEY && p->kind != STRATA_PURGE_ALL)
		(void)strata_disk_flush(srv->disk);
	switch (p->kind) {
	case STRATA_PURGE_KEY:
		dp.rc = strata_disk_remove(srv->disk, &p->key);
		break;
	case STRATA_PURGE_PREFIX:
	case STRATA_PURGE_PATH:
		disk_purge_prefix(srv, &dp);
		break;
	case STRATA_PURGE_TAG:
		strata_disk_scan_tag(srv->disk, p->arg, 0, disk_purge_cb, &dp);
		break;
	case STRATA_PURGE_ALL:
		dp.rc = strata_disk_clear(srv->disk);
		break;
	}
	rc = strata_disk_flush(srv->disk);
	*removed = dp.removed;
	return dp.rc != 0 ? dp.rc : rc;
}

static bool mem_purge_cb(const struct strata_entry *e, void *arg)
{
	return strata_purge_matches_entry(arg, e);
}

/*
 * This server's own tiers: disk first, then memory, so that a lookup that
 * misses memory meanwhile does not find the entry on disk and promote it
 * back.  `out` may be NULL.
 */
static int purge_local(struct strata_server *srv, const struct strata_purge *p,
		       struct strata_purge_result *out)
{
	uint64_t disk = 0, mem;
	int rc = 0;

	if (srv->disk != NULL)
		rc = disk_purge(srv, p, &disk);
	switch (p->kind) {
	case STRATA_PURGE_KEY:
		mem = strata_mem_remove(srv->mem, &p->key) == 0;
		break;
	case STRATA_PURGE_ALL:
		mem = strata_mem_clear(srv->mem);
		break;
	default:
		mem = strata_mem_purge_if(srv->mem, mem_purge_cb, (void *)p);
		break;
	}
	if (out != NULL) {
		out->memory = mem;
		out->disk = disk;
	}
	return rc;
}

static int purge_by(struct strata_server *srv, enum strata_purge_source from,
		    const char *kind, const char *arg,
		    struct strata_purge_result *out)
{
	struct strata_purge_result res = {0};
	struct strata_purge p;
	int rc;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC);
	if (strata_purge_parse(kind, arg, &p) != 0)
		return -EINVAL;
	strata_metrics_purge(srv->metrics, from, p.kind);
	/* Redis before this server's tiers: a lookup that misses them
	 * meanwhile must not find the old entry in Redis and promote it. */
	if (srv->fleet != NULL &&
	    strata_fleet_purge(srv->fleet, &p, &res.redis) == 0)
		res.fleet = 1;
	rc = purge_local(srv, &p, &res);
	if (out != NULL)
		*out = res;
	return rc;
}

int strata_server_purge_by(struct strata_server *srv, const char *kind,
			   const char *arg, struct strata_purge_result *out)
{
	return purge_by(srv, STRATA_PURGE_FROM_ADMIN, kind, arg, out);
}

int strata_server_purge(struct strata_server *srv, const char *hash_hex)
{
	return strata_server_purge_by(srv, "key", hash_hex, NULL);
}

unsigned strata_server_inflight(const struct strata_server *srv)
{
	return srv->front != NULL ? strata_front_inflight(srv->front) : 0;
}

unsigned strata_server_port(const struct strata_server *srv)
{
	return srv->front != NULL ? strata_front_port(srv->front) : 0;
}

unsigned strata_server_admin_port(const struct strata_server *srv)
{
	return srv->admin != NULL ? strata_admin_port(srv->admin) : 0;
}
