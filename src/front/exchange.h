/*
 * exchange.h: one proxied request, between a suspended client connection
 * and an upstream transfer.
 *
 * The front end hands a request to an exchange, which submits it upstream
 * and suspends the client connection.  When the response head arrives the
 * connection is resumed and the front end calls strata_exchange_respond(),
 * which queues a streaming libmicrohttpd response.  Body bytes flow through
 * a bounded buffer: when it holds `buffer_limit` bytes the upstream
 * transfer is paused until the client has drained half of it; when it is
 * empty the client connection is suspended until bytes arrive.  So memory
 * per request stays near `buffer_limit` whatever the body size, and no
 * libmicrohttpd thread ever waits on the upstream.
 *
 * Concurrency: an exchange is touched by a libmicrohttpd worker (handler,
 * content reader, completion) and by the upstream thread (callbacks).  All
 * shared state is guarded by the exchange's mutex.  The connection is
 * suspended and resumed only with that mutex held and the `suspended` flag
 * tracks it, so a resume can never precede its suspend.  Lock order:
 * exchange mutex, then the upstream queue lock or libmicrohttpd's internal
 * locks; neither calls back into an exchange while holding its own.
 *
 * Lifetime: reference-counted.  References: the front end's request (until
 * strata_exchange_abandon), the upstream transfer (until its done_cb), and
 * the libmicrohttpd response (until its free callback).
 */
#ifndef STRATA_FRONT_EXCHANGE_H
#define STRATA_FRONT_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/http.h"

struct MHD_Connection;
struct strata_upstream;
struct strata_exchange;

/* The request to forward; its buffers are moved into the exchange. */
struct strata_exchange_request {
	char *method;                  /* moved */
	char *target;                  /* moved: raw path and query */
	struct strata_headers headers; /* moved: already filtered */
	char *body;                    /* moved; may be NULL */
	size_t body_len;
};

struct strata_exchange_params {
	struct MHD_Connection *conn;   /* borrowed for the exchange's life */
	size_t buffer_limit;           /* bytes held before pausing upstream */
	const char *via;               /* Via value appended to the response */
};

/*
 * Submit `req` upstream and suspend `params->conn`.  Must be called from
 * the connection's access handler.  On success *out is the front end's
 * reference, `req` has been emptied, and the handler must return MHD_YES;
 * it is called again once the response head (or an error) is there.
 * On failure (-ENOMEM, STRATA_EUNAVAIL) nothing is suspended and `req` is
 * left to the caller to free.
 */
int strata_exchange_start(struct strata_upstream *up,
			  const struct strata_exchange_params *params,
			  struct strata_exchange_request *req,
			  struct strata_exchange **out);

/*
 * Called from the access handler after the connection was resumed.
 * Returns 0 after queueing the upstream's response with `cache_status`
 * added (*status is set), -EAGAIN when nothing arrived yet (the connection
 * was suspended again: return MHD_YES), or the transfer's error
 * (STRATA_ECONNECT, STRATA_ETIMEOUT, STRATA_EUPSTREAM, STRATA_ECANCELED,
 * -ENOMEM) when the caller must answer with an error itself.
 */
int strata_exchange_respond(struct strata_exchange *ex,
			    const char *cache_status, unsigned *status);

/* Body bytes handed to libmicrohttpd so far.  Thread-safe. */
uint64_t strata_exchange_bytes(struct strata_exchange *ex);

/*
 * The client side is finished (request completed or connection gone):
 * cancel the upstream transfer if it still runs, drop the front end's
 * reference and set *ex to NULL.  Call from the completion callback.
 */
void strata_exchange_abandon(struct strata_exchange **ex);

#endif /* STRATA_FRONT_EXCHANGE_H */
