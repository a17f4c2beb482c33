/*
 * front.h: the client-facing HTTP listener (libmicrohttpd).
 *
 * A thread pool of `workers` libmicrohttpd threads accepts connections and
 * parses requests.  Each request is matched against the route table, its
 * body collected (up to max_request_body), and then handed to an exchange
 * (exchange.h) that forwards it upstream while the connection is
 * suspended.  The front end owns request-scoped memory and frees it in one
 * place, libmicrohttpd's request-completed callback, where the access-log
 * line is written too.
 *
 * Concurrency: requests run on libmicrohttpd's threads; the route table is
 * immutable and shared without locks; the in-flight counter is atomic.
 * Start, quiesce and free are for the owning thread only.
 */
#ifndef STRATA_FRONT_FRONT_H
#define STRATA_FRONT_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strata_front;
struct strata_route_table;
struct strata_upstream;

struct strata_front_config {
	const char *listen;            /* host:port; port 0 picks one */
	unsigned workers;
	unsigned max_connections;
	uint64_t max_request_body;
	uint64_t max_header_size;
	uint64_t client_timeout_ms;
	bool preserve_host;
	size_t stream_buffer;          /* per-request body buffer, bytes */
};

/*
 * Create a front end.  Takes a reference to `routes`; borrows `up`, which
 * must outlive the front end.  Returns 0 or a negative error.
 */
int strata_front_new(const struct strata_front_config *cfg,
		     struct strata_route_table *routes,
		     struct strata_upstream *up, struct strata_front **out);

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
