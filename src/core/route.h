/*
 * route.h: the route table, compiled once from configuration.
 *
 * A route pattern is a path made of segments.  A segment "*" in the middle
 * matches exactly one non-empty segment: "/users/<star>/profile" matches
 * "/users/42/profile" but not "/users//profile" or "/users/4/2/profile".
 * A pattern that ends in "/<star>" is a prefix and matches that directory
 * and everything below it: "/api/<star>" matches "/api/" and "/api/a/b",
 * not "/api".  Both may combine ("/u/<star>/files/<star>").  Any other
 * pattern is exact.  The first matching route in configuration order wins.
 * Paths are compared byte for byte, as sent (no percent-decoding).
 * ("<star>" stands for "*": a star followed by a slash would end this
 * comment.)
 *
 * A table is immutable once built and reference-counted, so a reload can
 * publish a new table while requests still hold the old one: readers take
 * no lock.  Matching allocates nothing.
 */
#ifndef STRATA_CORE_ROUTE_H
#define STRATA_CORE_ROUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/key.h"
#include "strata/config.h"

#define STRATA_ROUTE_MAGIC 0x52545442u /* "RTTB" */

enum strata_route_kind {
	STRATA_ROUTE_EXACT,
	STRATA_ROUTE_PREFIX,
	STRATA_ROUTE_SEGMENTS,  /* has "*" segments; may also end as a prefix */
};

/* One compiled route.  Owned by its table; read-only. */
struct strata_route {
	const char *name;
	const char *path;          /* the pattern as configured */
	enum strata_route_kind kind;
	bool prefix_tail;          /* pattern ends in "/<star>" */
	uint64_t ttl_ms;
	unsigned methods;          /* STRATA_METHOD_* bits */
	const char *const *vary;
	size_t n_vary;
	/* How requests on this route are keyed: its query mode and keep list
	 * (copies owned by the table) and its vary list (the same array as
	 * `vary` above).  Pass &route->key_rule to strata_key_text(). */
	struct strata_key_rule key_rule;
	bool force;                /* store despite private/no-store,
				      Set-Cookie or Authorization */
	bool ttl_origin;           /* freshness from the response */
	uint64_t default_ttl_ms;   /* ttl_origin: when the response is
				      silent; 0: not stored */
	uint64_t stale_while_revalidate_ms;
	uint64_t stale_if_error_ms;
	uint64_t keep_ms;          /* validator entries kept past expiry */
	bool etag_generate;
	size_t index;              /* position in the table (metrics, admin) */
};

struct strata_route_table;

/*
 * Check one pattern.  Returns 0, or -EINVAL with the reason (and the fix)
 * in err: must start with "/", no "?" or "#", "*" only as a whole segment,
 * no empty segments ("//"), no "." or ".." segments.
 */
int strata_route_pattern_check(const char *pattern, char *err, size_t errlen);

/*
 * Build a table from configured routes.  Fails with STRATA_ECONFIG (reason
 * in err, naming the route's source) on a bad pattern, a duplicate path,
 * a query mode that is not a STRATA_ROUTE_QUERY_* value, or a KEEP mode
 * with no parameter names.
 * On success *out holds a table with one reference; release it with
 * strata_route_table_release().  The table copies what it needs.
 */
int strata_route_table_new(const struct strata_route_config *routes,
			   size_t n_routes, struct strata_route_table **out,
			   char *err, size_t errlen);

/* Take another reference (relaxed increment).  Thread-safe. */
struct strata_route_table *
strata_route_table_ref(struct strata_route_table *table);

/*
 * Drop a reference and set *table to NULL; the last one frees the table.
 * Thread-safe.  Accepts NULL and a pointer to NULL.
 */
void strata_route_table_release(struct strata_route_table **table);

/* Number of routes in the table. */
size_t strata_route_table_size(const struct strata_route_table *table);

/* Route number i (0 <= i < size), borrowed from the table. */
const struct strata_route *
strata_route_table_at(const struct strata_route_table *table, size_t i);

/*
 * The first route whose pattern matches `path` (the path only: no query),
 * or NULL.  `path_len` bytes of `path` are examined, so a caller can pass
 * a request target and the offset of its "?".  The result is borrowed from
 * the table.  Lock-free, allocation-free, thread-safe.
 */
const struct strata_route *
strata_route_match(const struct strata_route_table *table, const char *path,
		   size_t path_len);

/* The STRATA_METHOD_* bit for a method name (STRATA_METHOD_OTHER if none). */
unsigned strata_method_bit(const char *method);

/*
 * Whether a request with this method on this route is a cache decision:
 * the route has a TTL and lists the method.  NULL route: false.
 */
bool strata_route_caches(const struct strata_route *route, unsigned method);

#endif /* STRATA_CORE_ROUTE_H */
