/*
 * policy.c: which responses a route may store; see policy.h.
 */
#include "config.h"

#include "cache/policy.h"

#include <stdlib.h>

#include "cache/freshness.h"

static bool status_cacheable(unsigned status)
{
	switch (status) {
	case 200: case 203: case 204: case 300: case 301: case 308:
	case 404: case 410:
		return true;
	default:
		return false;
	}
}

enum strata_store_verdict strata_policy_storable(
	unsigned status, const struct strata_headers *headers,
	bool request_has_authorization, bool force)
{
	struct strata_cc_response cc;
	char *value;

	if (!status_cacheable(status))
		return STRATA_STORE_STATUS;
	if (force)
		return STRATA_STORE_OK;
	if (request_has_authorization)
		return STRATA_STORE_AUTHORIZATION;
	if (strata_headers_get(headers, "Set-Cookie") != NULL)
		return STRATA_STORE_SET_COOKIE;
	/* The freshness parser's reading, so that both modes agree: a
	 * malformed prohibition ("private;x", "no-store=1") still
	 * prohibits, and a directive inside a quoted argument is not one. */
	value = strata_headers_join(headers, "Cache-Control");
	strata_cc_parse_response(value, &cc);
	free(value);
	if (cc.no_store)
		return STRATA_STORE_NO_STORE;
	if (cc.private)
		return STRATA_STORE_PRIVATE;
	return STRATA_STORE_OK;
}

const char *strata_policy_verdict_name(enum strata_store_verdict v)
{
	static const char *const names[] = {
		[STRATA_STORE_OK] = "stored",
		[STRATA_STORE_STATUS] = "status",
		[STRATA_STORE_AUTHORIZATION] = "authorization",
		[STRATA_STORE_SET_COOKIE] = "set-cookie",
		[STRATA_STORE_NO_STORE] = "no-store",
		[STRATA_STORE_PRIVATE] = "private",
	};

	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v]
							       : "unknown";
}
