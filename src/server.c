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
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/flight.h"
#include "cache/key.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/route.h"
#include "front/front.h"
#include "front/handler.h"
#include "strata/config.h"
#include "strata/handler.h"
#include "strata/strata.h"
#include "tier/disk.h"
#include "tier/mem.h"
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
	struct strata_route_table *routes;
	struct strata_handler *handlers;   /* one per route */
	bool has_handlers;
	struct strata_upstream *up;
	struct strata_mem *mem;
	struct strata_disk *disk;          /* NULL when the tier is off */
	struct strata_flights *flights;
	struct strata_pool *handler_pool;
	struct strata_front *front;
	bool started;
	bool drained;
};

/* Pending disk writes before new ones are dropped (never waited for). */
#define DISK_QUEUE_LIMIT 65536u

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
		.preserve_host = cfg->upstream.preserve_host,
		.stream_buffer = STREAM_BUFFER,
		.max_object_size = cfg->cache.max_object_size,
	};
	int rc;

	if (srv == NULL)
		return -ENOMEM;
	srv->magic = SERVER_MAGIC;
	rc = strata_route_table_new(cfg->routes, cfg->n_routes, &srv->routes,
				    err, sizeof(err));
	if (rc != 0) {
		strata_log_error("%s", err);
		goto fail;
	}
	srv->handlers = calloc(strata_route_table_size(srv->routes) + 1,
			       sizeof(*srv->handlers));
	srv->listen = strdup(cfg->listen);
	if (srv->handlers == NULL || srv->listen == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	srv->fcfg = fcfg;
	srv->fcfg.listen = srv->listen;
	rc = strata_upstream_new(&ucfg, &srv->up);
	if (rc == 0)
		rc = strata_mem_new(cfg->cache.memory, &srv->mem);
	if (rc == 0)
		rc = strata_flights_new(&srv->flights);
	if (rc == 0 && cfg->cache.disk.enabled)
		rc = open_disk(cfg, &srv->disk);
	if (rc != 0)
		goto fail;
	strata_log_set_access(cfg->access_log);
	*out = srv;
	return 0;
fail:
	strata_server_free(&srv);
	return rc;
}

int strata_server_handle(struct strata_server *srv, const char *route_path,
			 strata_handler_fn fn, void *arg)
{
	size_t n = strata_route_table_size(srv->routes);

	STRATA_ASSERT(srv->magic == SERVER_MAGIC);
	if (srv->started)
		return -EBUSY;
	for (size_t i = 0; i < n; i++) {
		const struct strata_route *route =
			strata_route_table_at(srv->routes, i);

		if (strcmp(route->path, route_path) == 0) {
			srv->handlers[i].fn = fn;
			srv->handlers[i].arg = arg;
			srv->has_handlers = true;
			return 0;
		}
	}
	return -ENOENT;
}

int strata_server_start(struct strata_server *srv)
{
	struct strata_front_deps deps = {
		.routes = srv->routes,
		.up = srv->up,
		.mem = srv->mem,
		.disk = srv->disk,
		.flights = srv->flights,
		.handlers = srv->handlers,
	};
	int rc;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC && !srv->started);
	if (srv->has_handlers) {
		rc = strata_pool_new(HANDLER_THREADS, &srv->handler_pool);
		if (rc != 0)
			return rc;
	}
	deps.handler_pool = srv->handler_pool;
	rc = strata_front_new(&srv->fcfg, &deps, &srv->front);
	if (rc != 0)
		return rc;
	rc = strata_upstream_start(srv->up);
	if (rc != 0)
		return rc;
	srv->started = true;
	return strata_front_start(srv->front);
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
	strata_front_quiesce(srv->front);
	if (!wait_idle(srv, strata_now_ms() + timeout_ms)) {
		left = strata_front_inflight(srv->front);
		strata_log_warn("shutdown: %u request(s) still running after "
				"%llu ms: cancelling them",
				left, (unsigned long long)timeout_ms);
		strata_upstream_cancel_all(srv->up);
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
	strata_upstream_free(&srv->up);
	strata_flights_free(&srv->flights);
	/* After the workers are gone: the disk tier's per-thread read
	 * transactions belong to them.  Queued writes are applied first. */
	strata_disk_close(&srv->disk);
	strata_mem_free(&srv->mem);
	strata_route_table_release(&srv->routes);
	free(srv->handlers);
	free(srv->listen);
	srv->magic = 0;
	free(srv);
	*srvp = NULL;
}

int strata_server_purge(struct strata_server *srv, const char *hash_hex)
{
	struct strata_key key;
	int rc = 0;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC);
	if (strata_key_from_hex(hash_hex, &key) != 0)
		return -EINVAL;
	/* Disk first, then memory: a lookup that misses memory meanwhile
	 * must not find the entry on disk and promote it back. */
	if (srv->disk != NULL) {
		rc = strata_disk_remove(srv->disk, &key);
		if (rc == 0)
			rc = strata_disk_flush(srv->disk);
	}
	strata_mem_remove(srv->mem, &key);
	return rc;
}

unsigned strata_server_inflight(const struct strata_server *srv)
{
	return srv->front != NULL ? strata_front_inflight(srv->front) : 0;
}

unsigned strata_server_port(const struct strata_server *srv)
{
	return srv->front != NULL ? strata_front_port(srv->front) : 0;
}
