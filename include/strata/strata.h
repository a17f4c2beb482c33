/*
 * strata.h: the embedding API of libstrata.
 *
 * A Strata server is built from a validated configuration (see
 * <strata/config.h>), started, drained and freed.  The `strata` program is
 * a thin main() over exactly these calls; an embedder uses them the same
 * way.
 *
 * Errors: functions return 0 on success, a negative errno value, or one of
 * the negative STRATA_E* codes below; strata_strerror() names either kind.
 */
#ifndef STRATA_STRATA_H
#define STRATA_STRATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct strata_config;
struct strata_server;

/*
 * Strata's own error codes live below -1000 so they never collide with a
 * negated errno value.
 */
enum strata_error {
	STRATA_EMISS = -1001,        /* not in the cache (an expected outcome) */
	STRATA_EUNAVAIL = -1002,     /* a tier or service is unavailable */
	STRATA_ECONFIG = -1003,      /* configuration is invalid */
	STRATA_ECONNECT = -1004,     /* upstream refused or could not be reached */
	STRATA_ETIMEOUT = -1005,     /* upstream exceeded its timeout */
	STRATA_EUPSTREAM = -1006,    /* upstream sent an invalid response */
	STRATA_ECANCELED = -1007,    /* the operation was cancelled */
	STRATA_ETOOBIG = -1008,      /* a size limit was exceeded */
	STRATA_ECORRUPT = -1009,     /* stored bytes failed validation */
};

/* The library version, "MAJOR.MINOR.PATCH".  Thread-safe. */
const char *strata_version(void);

/*
 * A short, static, human-readable description of an error code returned by
 * any libstrata function (negative errno values included).  Thread-safe.
 */
const char *strata_strerror(int err);

/*
 * Create a server from a validated configuration.  The server keeps its own
 * copy of everything it needs from `cfg`; the caller may free `cfg` after
 * this returns.  Nothing listens until strata_server_start().
 *
 * On success stores a new server in *out (release with
 * strata_server_free()) and returns 0; otherwise returns a negative error
 * and logs why.
 */
int strata_server_new(const struct strata_config *cfg,
		      struct strata_server **out);

/*
 * Start the upstream client thread and the listeners.  Returns 0 once every
 * listener is bound, or a negative error (-EADDRINUSE, ...) after logging
 * what failed.  Call once, from the thread that owns the server.
 */
int strata_server_start(struct strata_server *srv);

/*
 * Graceful stop: stop accepting connections, let in-flight requests finish
 * for up to `timeout_ms`, then cancel what is left and close every
 * connection.  Returns the number of requests that had to be cancelled
 * (0 for a clean drain).  Call from the thread that started the server,
 * never from a libstrata callback.
 */
int strata_server_drain(struct strata_server *srv, uint64_t timeout_ms);

/*
 * Release a server (draining it with timeout 0 if still running) and set
 * *srv to NULL.  Accepts NULL and a pointer to NULL.
 */
void strata_server_free(struct strata_server **srv);

/*
 * Live reload: apply `cfg` (validated) to a running server without
 * dropping a connection or a cached entry.  The route table (patterns,
 * TTLs and every route option), the upstream's URL, timeouts, connection
 * limit and Host policy, the log level, format and access log switch
 * change at once for every request that starts from now on; requests
 * under way finish with the settings they began with.  Settings that
 * cannot change while running (listen addresses, workers, connection and
 * size limits, the tiers, the admin token) are left as they are and
 * reported.
 *
 * On success returns 0 and, when `report` is not NULL, stores a malloc'd
 * JSON object (the caller frees it):
 *   {"generation": N, "applied": [keys changed since the last reload],
 *    "restart_required": [keys that differ from the running ones]}
 * naming keys only ("upstream.timeout", "routes"), never values.
 * Returns STRATA_ECONFIG with the reason in `err` (a route table that
 * does not compile; more route names than the metrics can add) or
 * -ENOMEM; the running configuration is then untouched.  Thread-safe
 * (reloads are serialised); never from a libstrata callback.
 */
int strata_server_reload(struct strata_server *srv,
			 const struct strata_config *cfg, char **report,
			 char *err, size_t errlen);

/*
 * Where POST /admin/reload gets its configuration: `fn` rebuilds it (from
 * the file, the environment and the flags, say), calls
 * strata_server_reload() and returns its result, with the report, or the
 * configuration error as text, in *out (malloc'd).  Without one the
 * endpoint answers 501.  Call before strata_server_start().
 */
void strata_server_set_reloader(struct strata_server *srv,
				int (*fn)(void *ctx, char **out), void *ctx);

/* What a purge removed (counts of entries). */
struct strata_purge_result {
	uint64_t memory;      /* removed from this server's memory tier */
	uint64_t disk;        /* removed from its disk tier (a KEY purge
				 counts the removal queued, 0 or 1, only
				 when the key was found there) */
	uint64_t redis;       /* deleted from the shared Redis tier */
	int fleet;            /* 1: announced on the purge stream, so every
				 replica drops its copies (within 100 ms of
				 its being connected, or on reconnecting);
				 0: Redis is off or down, so only this server
				 was purged */
};

/*
 * Purge from every tier of this server and, with the Redis tier, from
 * Redis and every replica sharing it.  `kind` is "key" (arg: the key
 * hash, 32 hex digits), "path" (arg: a path starting with "/", without a
 * query: every variant of it, whatever the method, query or vary
 * headers), "prefix" (arg: a path prefix starting with "/":
 * every entry whose request path starts with it, whatever the method,
 * query or variant), "tag" (arg: a tag from the tags header) or "all"
 * (arg: "").  Redis is purged first, then disk, then memory, so no
 * concurrent lookup brings a purged entry back from a lower tier; the
 * disk tier's removals are committed before this returns.  `out` may be
 * NULL.  Returns 0 (a Redis that is down is not an error: out->fleet
 * says so), -EINVAL for an unknown kind or a bad argument, or
 * STRATA_EUNAVAIL when the disk writer's queue is full (retry).
 * Thread-safe; blocks on Redis (a prefix purge scans its keys) and the
 * disk writer, so never call it from a libstrata callback.
 */
int strata_server_purge_by(struct strata_server *srv, const char *kind,
			   const char *arg, struct strata_purge_result *out);

/* strata_server_purge_by(srv, "key", hash_hex, NULL). */
int strata_server_purge(struct strata_server *srv, const char *hash_hex);

/* Number of requests currently being handled.  Thread-safe. */
unsigned strata_server_inflight(const struct strata_server *srv);

/* The port the main listener is bound to (useful with port 0). */
unsigned strata_server_port(const struct strata_server *srv);

/* The port the admin listener is bound to (after start), or 0. */
unsigned strata_server_admin_port(const struct strata_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_STRATA_H */
