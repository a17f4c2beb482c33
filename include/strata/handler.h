/*
 * handler.h: memoized C handlers, the C counterpart of a framework's
 * `@cache(ttl=60)`.
 *
 * An embedding program registers a function for a configured route; Strata
 * then answers that route by calling the function instead of forwarding
 * upstream, and memoizes its responses exactly like upstream responses:
 * same key (method, path, query mode, vary headers), same tiers, same
 * coalescing (a stampede on a cold key calls the function once), same
 * Cache-Status and Age headers, same storability rules.
 *
 * Handlers may be slow: they run on a pool of handler threads, never on a
 * connection thread, so a slow handler holds up only its own requests.  A
 * handler must be thread-safe (several may run at once) and must not keep
 * the request or response pointers after it returns.
 *
 *   static void hello(void *arg, const struct strata_request *req,
 *                     struct strata_response *resp)
 *   {
 *           strata_response_set_status(resp, 200);
 *           strata_response_add_header(resp, "Content-Type", "text/plain");
 *           strata_response_append(resp, "hello\n", 6);
 *   }
 *   ...
 *   strata_config_add_route(cfg, "/hello=60s", "embed", err, sizeof(err));
 *   strata_server_new(cfg, &srv);
 *   strata_server_handle(srv, "/hello", hello, NULL);
 *   strata_server_start(srv);
 */
#ifndef STRATA_HANDLER_H
#define STRATA_HANDLER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct strata_server;
struct strata_request;
struct strata_response;

/*
 * A handler: read `req`, fill `resp`.  Runs on a handler thread.  A
 * response left without a status is answered 500.
 */
typedef void (*strata_handler_fn)(void *arg, const struct strata_request *req,
				  struct strata_response *resp);

/* The request method ("GET"), borrowed for the call. */
const char *strata_request_method(const struct strata_request *req);

/* The raw path, without the query. */
const char *strata_request_path(const struct strata_request *req);

/* The raw query without its "?", or NULL when there is none. */
const char *strata_request_query(const struct strata_request *req);

/* The first value of a request header (case-insensitive), or NULL. */
const char *strata_request_header(const struct strata_request *req,
				  const char *name);

/* The request body and its length (NULL and 0 when empty). */
const char *strata_request_body(const struct strata_request *req,
				size_t *len);

/* Set the status (100..999; default: none, answered 500). */
void strata_response_set_status(struct strata_response *resp,
				unsigned status);

/* Add a response header (copied).  Returns 0 or -ENOMEM / -EINVAL. */
int strata_response_add_header(struct strata_response *resp,
			       const char *name, const char *value);

/* Append to the body (copied).  Returns 0 or -ENOMEM. */
int strata_response_append(struct strata_response *resp, const void *data,
			   size_t len);

/*
 * Serve the configured route whose path is exactly `route_path` with `fn`
 * (called with `arg`).  Call after strata_server_new and before
 * strata_server_start.  Returns 0, -ENOENT (no such route), or -EBUSY (the
 * server already started).
 */
int strata_server_handle(struct strata_server *srv, const char *route_path,
			 strata_handler_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_HANDLER_H */
