/*
 * policy.h: which responses a route may store.
 *
 * The decorator model: a route's TTL decides freshness, but some answers
 * must never be shared between clients whatever the route says, unless the
 * route says `force: true`:
 *  - a request carrying Authorization (the answer may be that user's);
 *  - a response with Set-Cookie (a session handed to one client);
 *  - a response with Cache-Control: no-store or private.
 * And only statuses that are cacheable by default (RFC 9110 section
 * 15.1) are stored: 200, 203, 204, 300, 301, 308, 404, 410.
 * The HTTP-semantics milestone extends this with the origin's own
 * freshness rules.  Pure functions: thread-safe.
 */
#ifndef STRATA_CACHE_POLICY_H
#define STRATA_CACHE_POLICY_H

#include <stdbool.h>

#include "core/http.h"

enum strata_store_verdict {
	STRATA_STORE_OK = 0,
	STRATA_STORE_STATUS,       /* status not cacheable by default */
	STRATA_STORE_AUTHORIZATION,
	STRATA_STORE_SET_COOKIE,
	STRATA_STORE_NO_STORE,
	STRATA_STORE_PRIVATE,
};

/* Decide for a response (`headers` as received from the origin). */
enum strata_store_verdict strata_policy_storable(
	unsigned status, const struct strata_headers *headers,
	bool request_has_authorization, bool force);

/* A short lowercase name for a verdict ("set-cookie"), for logs and the
 * Cache-Status detail parameter. */
const char *strata_policy_verdict_name(enum strata_store_verdict v);

#endif /* STRATA_CACHE_POLICY_H */
