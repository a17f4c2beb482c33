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
 * Purge one entry, named by its key hash in hex (32 digits), from every
 * tier of this server: removed from memory at once, and from disk by the
 * disk tier's writer before this returns.  Idempotent: purging an absent
 * key succeeds.  Returns 0, -EINVAL for a malformed hash, or
 * STRATA_EUNAVAIL when the disk writer's queue is full (retry).
 * Thread-safe; may block briefly on the disk writer.
 */
int strata_server_purge(struct strata_server *srv, const char *hash_hex);

/* Number of requests currently being handled.  Thread-safe. */
unsigned strata_server_inflight(const struct strata_server *srv);

/* The port the main listener is bound to (useful with port 0). */
unsigned strata_server_port(const struct strata_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_STRATA_H */
