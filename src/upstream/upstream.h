/*
 * upstream.h: the non-blocking upstream HTTP client.
 *
 * One thread runs one libcurl multi handle.  Other threads submit
 * transfers to it; it reports each transfer's response headers, body bytes
 * and completion through callbacks that run on that thread.  libcurl reuses
 * connections and caps them at `max_connections`; transfers beyond the cap
 * wait in libcurl's queue.  No caller ever blocks on the network.
 *
 * Timeouts: `connect_timeout_ms` bounds connection set-up; `timeout_ms`
 * bounds every wait for the upstream: the wait for the response headers
 * and each idle gap while the body streams, never the whole transfer.  A
 * transfer paused by its consumer (backpressure) does not time out: the
 * slow party is then the client, not the upstream.
 *
 * Concurrency: submit, resume, cancel and release may be called from any
 * thread.  They append a command to a mutex-protected queue and wake the
 * upstream thread (curl_multi_wakeup); the upstream thread alone touches
 * libcurl handles.  Callbacks never run with the queue lock held, so a
 * callback may itself call resume or cancel.  Lock order: a caller's own
 * lock, then the queue lock.
 *
 * This file pair is the only place that includes <curl/curl.h>.
 */
#ifndef STRATA_UPSTREAM_UPSTREAM_H
#define STRATA_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/http.h"

struct strata_upstream;
struct strata_upstream_xfer;

struct strata_upstream_config {
	const char *url;               /* base URL: scheme://host[:port][/base] */
	uint64_t connect_timeout_ms;
	uint64_t timeout_ms;
	unsigned max_connections;
};

/* What to send.  Borrowed: must stay valid until done_cb has run. */
struct strata_upstream_request {
	const char *method;
	const char *target;            /* origin-form: path and query, raw */
	const struct strata_headers *headers; /* sent as given */
	const char *body;              /* NULL with body_len 0: no body */
	size_t body_len;
};

/* Returned by body_cb to pause the transfer until xfer_resume(). */
#define STRATA_UPSTREAM_PAUSE 1

/*
 * Callbacks, all on the upstream thread, for one transfer:
 *  headers_cb once, when the final (non-1xx) response head has arrived;
 *    `headers` is handed over: the callee owns it and must clear it.
 *  body_cb for each piece of decoded body; returns 0 when it took all
 *    `len` bytes, or STRATA_UPSTREAM_PAUSE when it took none and wants the
 *    same bytes again after strata_upstream_xfer_resume().
 *  done_cb exactly once, last: 0 for a complete response, or
 *    STRATA_ECONNECT, STRATA_ETIMEOUT, STRATA_EUPSTREAM, STRATA_ECANCELED.
 *    headers_cb may not have run (failure before the head arrived).
 */
struct strata_upstream_handler {
	void (*headers_cb)(void *arg, unsigned status,
			   struct strata_headers *headers);
	int (*body_cb)(void *arg, const char *data, size_t len);
	void (*done_cb)(void *arg, int result);
};

/* Create a client (no thread yet).  Returns 0 or a negative error. */
int strata_upstream_new(const struct strata_upstream_config *cfg,
			struct strata_upstream **out);

/*
 * Replace the settings (live reload): transfers submitted from now on use
 * the new URL and timeouts; those running keep what they started with,
 * except that the idle timeout and connection limits change for all once
 * the client thread applies them (promptly: it is woken).  cfg->url is
 * copied.  Thread-safe.  Returns 0 or -ENOMEM (nothing changed).
 */
int strata_upstream_reconfigure(struct strata_upstream *up,
				const struct strata_upstream_config *cfg);

/* Start the client thread.  Returns 0 or a negative errno. */
int strata_upstream_start(struct strata_upstream *up);

/*
 * Cancel every queued and running transfer (each gets done_cb with
 * STRATA_ECANCELED).  Thread-safe, returns at once; the cancellations
 * happen on the upstream thread shortly after.
 */
void strata_upstream_cancel_all(struct strata_upstream *up);

/*
 * Stop the thread (cancelling what is left), join it, free the client and
 * set *up to NULL.  Call from the owner's thread, never from a callback.
 */
void strata_upstream_free(struct strata_upstream **up);

/*
 * Start a transfer.  On success *out holds a reference to the transfer for
 * the caller (release with strata_upstream_xfer_release()); the handler's
 * callbacks will run with `arg`.  Returns 0, or -ENOMEM / STRATA_EUNAVAIL
 * (the client is stopping), in which case no callback runs.
 */
int strata_upstream_submit(struct strata_upstream *up,
			   const struct strata_upstream_request *req,
			   const struct strata_upstream_handler *handler,
			   void *arg, struct strata_upstream_xfer **out);

/* Un-pause a transfer paused by body_cb.  Thread-safe; no-op when done. */
void strata_upstream_xfer_resume(struct strata_upstream_xfer *xfer);

/*
 * Abort a transfer: done_cb follows with STRATA_ECANCELED unless the
 * transfer already finished.  Thread-safe; idempotent.
 */
void strata_upstream_xfer_cancel(struct strata_upstream_xfer *xfer);

/* Drop the caller's reference and set *xfer to NULL.  Thread-safe. */
void strata_upstream_xfer_release(struct strata_upstream_xfer **xfer);

/* Transfers submitted and not yet done.  Thread-safe (relaxed). */
unsigned strata_upstream_inflight(const struct strata_upstream *up);

#endif /* STRATA_UPSTREAM_UPSTREAM_H */
