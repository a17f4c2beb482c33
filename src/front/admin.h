/*
 * admin.h: the admin listener (admin.listen): health, readiness,
 * Prometheus metrics, and the JSON API that lists, inspects, explains,
 * purges and flushes cache entries (docs/admin-api.md).
 *
 * Its own libmicrohttpd daemon, one thread per connection: admin requests
 * are few and some block (a prefix purge scans Redis; a flush waits for
 * the disk writer), and none of that may hold up /health or the proxy's
 * workers.  Every /admin answer is JSON, errors too.  When a token is
 * configured, every /admin path needs "Authorization: Bearer <token>", compared in
 * constant time; /health, /ready and /metrics never do.
 *
 * The listener reads the tiers directly (peek, scan, foreach: no hit or
 * miss counted) and purges through the server's callback, so that every
 * purge follows the one order (Redis, then disk, then memory).
 */
#ifndef STRATA_FRONT_ADMIN_H
#define STRATA_FRONT_ADMIN_H

#include <stdbool.h>

#include "strata/strata.h"

struct strata_admin;
struct strata_disk;
struct strata_fleet;
struct strata_mem;
struct strata_metrics;
struct strata_redis_async;
struct strata_live_cell;

/* The server's state as /ready reports it. */
enum strata_admin_state {
	STRATA_ADMIN_STARTING,
	STRATA_ADMIN_READY,
	STRATA_ADMIN_DRAINING,
};

/* What the listener works with: all borrowed, all outlive it. */
struct strata_admin_deps {
	const char *listen;                 /* host:port */
	const char *token;                  /* NULL: no token */
	/* The configuration generations: routes, metrics series and the
	 * effective configuration (secrets redacted) for /admin/config. */
	struct strata_live_cell *live;
	struct strata_mem *mem;
	struct strata_disk *disk;           /* NULL: off */
	struct strata_redis_async *shared;  /* NULL: off */
	struct strata_fleet *fleet;         /* with shared */
	struct strata_metrics *metrics;
	/* The server's purge (strata_server_purge_by()). */
	int (*purge)(void *ctx, const char *kind, const char *arg,
		     struct strata_purge_result *out);
	enum strata_admin_state (*state)(void *ctx);
	bool (*upstream_up)(void *ctx);
	/*
	 * POST /admin/reload (NULL: answered 501).  Returns 0 with a JSON
	 * report in *out, STRATA_ECONFIG with the configuration error as
	 * text in *out (the old configuration stays), or a negative errno
	 * with *out NULL.  *out is malloc'd; the caller frees it.
	 */
	int (*reload)(void *ctx, char **out);
	void *ctx;
};

/* Bind and start.  Returns 0 or a negative errno (logged, naming the
 * address). */
int strata_admin_start(const struct strata_admin_deps *deps,
		       struct strata_admin **out);

/* The bound port. */
unsigned strata_admin_port(const struct strata_admin *admin);

/* Stop (closing its connections) and free; *admin = NULL.  Accepts
 * NULL. */
void strata_admin_stop(struct strata_admin **admin);

#endif /* STRATA_FRONT_ADMIN_H */
