/*
 * reply.h: libmicrohttpd responses built from Strata's objects.
 *
 * The one place that decides which headers a client sees on top of the
 * origin's end-to-end headers: Via (ours appended to the origin's),
 * Cache-Status, and Age for answers from the cache.  Answers from an
 * entry hand the entry's body to libmicrohttpd without a copy; the
 * response holds a reference to the entry, released by its free callback.
 */
#ifndef STRATA_FRONT_REPLY_H
#define STRATA_FRONT_REPLY_H

#include <stdint.h>

#include "cache/entry.h"
#include "core/http.h"

struct MHD_Connection;
struct MHD_Response;

/* Our Via token. */
#define STRATA_VIA "1.1 strata"

/*
 * Add end-to-end headers `h` (Via merged with ours) and Cache-Status to
 * `resp`.  Headers libmicrohttpd refuses are skipped (logged at debug).
 */
void strata_reply_headers(struct MHD_Response *resp,
			  const struct strata_headers *h,
			  const char *cache_status);

/*
 * Queue an answer from `e` with Age computed at `now` (wall ms) and
 * `cache_status`.  Takes its own reference to `e`.  Returns 0 (*status
 * set) or -ENOMEM / -EIO (nothing queued).
 */
int strata_reply_entry(struct MHD_Connection *conn, struct strata_entry *e,
		       const char *cache_status, int64_t now,
		       unsigned *status);

/*
 * 304 Not Modified for `e`: only the headers RFC 9110 section 15.4.5 lets
 * a 304 carry (strata_conditional_304_keeps()), plus Age, Via and
 * Cache-Status; no body.  Returns as strata_reply_entry().
 */
int strata_reply_not_modified(struct MHD_Connection *conn,
			      struct strata_entry *e, const char *cache_status,
			      int64_t now, unsigned *status);

struct strata_range_plan;

/*
 * A Range answer from `e` (a 200 with the whole body stored) for a plan
 * of kind ONE (206, the slice sent from the entry without a copy), MULTI
 * (206 multipart/byteranges; the parts are copied into one buffer) or
 * UNSATISFIABLE (416 with "Content-Range: bytes <star>/N").  Returns as
 * strata_reply_entry().
 */
int strata_reply_range(struct MHD_Connection *conn, struct strata_entry *e,
		       const struct strata_range_plan *plan,
		       const char *cache_status, int64_t now,
		       unsigned *status);

#endif /* STRATA_FRONT_REPLY_H */
