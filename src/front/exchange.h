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
	/*
	 * 0: stream the response as it arrives.  Otherwise collect it whole
	 * (the cache's miss path) as long as the body stays within this many
	 * bytes; a longer body (by Content-Length or as it grows) switches
	 * the exchange to streaming, bytes already collected first.
	 */
	size_t collect_limit;
};

/* What strata_exchange_poll() found. */
enum {
	STRATA_EXCHANGE_COMPLETE = 1, /* collected whole: strata_exchange_take */
	STRATA_EXCHANGE_STREAM = 2,   /* head here: strata_exchange_respond */
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
 * Returns STRATA_EXCHANGE_STREAM when the response head is here and the
 * body is to be streamed, STRATA_EXCHANGE_COMPLETE when a collecting
 * exchange has the whole response, -EAGAIN when there is nothing to do yet
 * (the connection was suspended again: return MHD_YES), or the transfer's
 * error (STRATA_ECONNECT, STRATA_ETIMEOUT, STRATA_EUPSTREAM,
 * STRATA_ECANCELED) when the caller must answer with an error itself.
 */
int strata_exchange_poll(struct strata_exchange *ex);

/*
 * After STRATA_EXCHANGE_STREAM: queue a streaming response of the
 * upstream's status and end-to-end headers plus Via and `cache_status`.
 * Returns 0 (*status set) or -ENOMEM / STRATA_EUPSTREAM (nothing queued).
 */
int strata_exchange_respond(struct strata_exchange *ex,
			    const char *cache_status, unsigned *status);

/*
 * After STRATA_EXCHANGE_COMPLETE: move the response out.  *headers gets
 * the upstream's headers as received (the caller clears them), *body a
 * malloc'd copy of the whole body (NULL when empty; the caller frees it).
 * Returns 0 or -ENOMEM.
 */
int strata_exchange_take(struct strata_exchange *ex, unsigned *status,
			 struct strata_headers *headers, char **body,
			 size_t *body_len);

/* Body bytes handed to libmicrohttpd so far.  Thread-safe. */
uint64_t strata_exchange_bytes(struct strata_exchange *ex);

/*
 * The upstream's response headers, once the head is in (after poll()
 * answered STREAM or COMPLETE and before take()): borrowed, unchanged
 * until the exchange is freed.  NULL before that.  The connection's
 * thread only.
 */
const struct strata_headers *
strata_exchange_headers(const struct strata_exchange *ex);

/*
 * The client side is finished (request completed or connection gone):
 * cancel the upstream transfer if it still runs, drop the front end's
 * reference and set *ex to NULL.  Call from the completion callback.
 */
void strata_exchange_abandon(struct strata_exchange **ex);

#endif /* STRATA_FRONT_EXCHANGE_H */
