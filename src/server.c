/*
 * server.c: a Strata server, assembled from configuration: the route
 * table, the upstream client and the front end.  Implements the lifecycle
 * of <strata/strata.h>.
 *
 * Shutdown order matters: the front end stops accepting first, in-flight
 * requests get their time, then the upstream cancels what is left, which
 * resumes every parked connection with an error so that libmicrohttpd can
 * be stopped (it must never be stopped with a suspended connection).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core/log.h"
#include "core/route.h"
#include "front/front.h"
#include "strata/config.h"
#include "strata/strata.h"
#include "upstream/upstream.h"

#define SERVER_MAGIC 0x53525652u /* "SRVR" */

/* Per-request body buffer before the upstream is paused. */
#define STREAM_BUFFER (256u * 1024u)

/* After cancelling, how long parked connections get to be answered. */
#define CANCEL_GRACE_MS 2000u

struct strata_server {
	uint32_t magic;
	struct strata_route_table *routes;
	struct strata_upstream *up;
	struct strata_front *front;
	bool started;
	bool drained;
};

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
	rc = strata_upstream_new(&ucfg, &srv->up);
	if (rc != 0)
		goto fail;
	rc = strata_front_new(&fcfg, srv->routes, srv->up, &srv->front);
	if (rc != 0)
		goto fail;
	strata_log_set_access(cfg->access_log);
	*out = srv;
	return 0;
fail:
	strata_server_free(&srv);
	return rc;
}

int strata_server_start(struct strata_server *srv)
{
	int rc;

	STRATA_ASSERT(srv->magic == SERVER_MAGIC && !srv->started);
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
	strata_front_free(&srv->front);
	strata_upstream_free(&srv->up);
	strata_route_table_release(&srv->routes);
	srv->magic = 0;
	free(srv);
	*srvp = NULL;
}

unsigned strata_server_inflight(const struct strata_server *srv)
{
	return srv->front != NULL ? strata_front_inflight(srv->front) : 0;
}

unsigned strata_server_port(const struct strata_server *srv)
{
	return srv->front != NULL ? strata_front_port(srv->front) : 0;
}
