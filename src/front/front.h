/*
 * front.h: the client-facing HTTP listener (libmicrohttpd).
 *
 * A thread pool of `workers` libmicrohttpd threads accepts connections and
 * parses requests.  Each request is matched against the route table.  On a
 * cached route the memory tier is asked first and a hit is answered from
 * the entry, with no lock and no copy; a miss joins the key's flight
 * (coalescing) and its leader fetches, from the upstream through an
 * exchange (exchange.h) or from a C handler on the handler pool, with the
 * connection suspended meanwhile; the result is stored if the policy
 * allows and answers the leader and every waiter.  Other requests are
 * forwarded and streamed.  The front end owns request-scoped memory and frees it in one
 * place, libmicrohttpd's request-completed callback, where the access-log
 * line is written too.
 *
 * Concurrency: requests run on libmicrohttpd's threads; each holds a
 * reference to the configuration generation current when it began
 * (core/live.h), immutable and shared without locks, so a live reload
 * swaps routes under no request; the in-flight counter is atomic.  A
 * request parked on a flight or a handler job is woken through its own
 * small lock (park/wake below in front.c), so a wake that comes before the
 * park is never lost and a connection is never resumed twice.
 * Start, quiesce and free are for the owning thread only.
 */
#ifndef STRATA_FRONT_FRONT_H
#define STRATA_FRONT_FRONT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strata_disk;
struct strata_fleet;
struct strata_flights;
struct strata_front;
struct strata_live_cell;
struct strata_mem;
struct strata_metrics;
struct strata_pool;
struct strata_redis_async;
struct strata_upstream;

struct strata_front_config {
	const char *listen;            /* host:port; port 0 picks one */
	unsigned workers;
	unsigned max_connections;
	uint64_t max_request_body;
	uint64_t max_header_size;
	uint64_t client_timeout_ms;
	size_t stream_buffer;          /* per-request body buffer, bytes */
	uint64_t max_object_size;      /* larger answers are streamed */
	const char *tags_header;       /* response header listing the
					  entry's tags; NULL or "": none */
};

/* What the front end works with; all borrowed, all outlive it. */
struct strata_front_deps {
	/* The configuration generations (routes, handlers, metrics series,
	 * Host policy); each request holds the one current at its start. */
	struct strata_live_cell *live;
	struct strata_upstream *up;
	struct strata_mem *mem;
	struct strata_disk *disk;           /* NULL when the tier is off */
	struct strata_redis_async *shared;  /* NULL when Redis is off */
	struct strata_fleet *fleet;         /* with `shared` */
	struct strata_flights *flights;
	struct strata_pool *handler_pool;
	struct strata_metrics *metrics;
	/* Set when a fetch fails to connect or times out, cleared by the
	 * next answer; owned by the caller, who reads it (relaxed) for
	 * /ready and may outlive the front end. */
	atomic_bool *upstream_down;
	/*
	 * RFC 9111 section 4.4: a successful unsafe request (POST, PUT,
	 * PATCH, DELETE answered 2xx or 3xx) invalidates what is cached for
	 * its target, its Location and its Content-Location.  Called on a
	 * worker with the path (borrowed for the call; no query); must not
	 * block (the server queues the purge).  NULL: none.
	 */
	void (*invalidate)(void *ctx, const char *path);
	void *invalidate_ctx;
};

/*
 * Open a listening TCP socket on "host:port" or "[v6]:port" (port 0
 * picks one): SO_REUSEADDR, close-on-exec.  Sets *fd (the caller owns it)
 * and *port (the bound one).  Returns 0 or a negative errno, logged with
 * the address.  Shared by the proxy and admin listeners.
 */
int strata_front_bind(const char *listen_addr, int backlog, int *fd,
		      unsigned *port);

/* Create a front end.  Returns 0 or a negative error. */
int strata_front_new(const struct strata_front_config *cfg,
		     const struct strata_front_deps *deps,
		     struct strata_front **out);

/* Bind and start the worker threads.  Returns 0 or a negative errno. */
int strata_front_start(struct strata_front *front);

/* The bound port (after start). */
unsigned strata_front_port(const struct strata_front *front);

/* Stop accepting new connections; existing ones carry on. */
void strata_front_quiesce(struct strata_front *front);

/* Requests received and not yet completed.  Thread-safe. */
unsigned strata_front_inflight(const struct strata_front *front);

/* Stop the daemon (closing every connection), free, set *front = NULL. */
void strata_front_free(struct strata_front **front);

#endif /* STRATA_FRONT_FRONT_H */
