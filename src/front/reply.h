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

#endif /* STRATA_FRONT_REPLY_H */
