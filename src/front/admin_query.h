/*
 * admin_query.h: the admin API's query parameters, parsed without
 * libmicrohttpd: key-listing filters, tiers, page sizes, boolean flags
 * and cursors.  Pure functions over strings, so that what a client can
 * send the admin listener is testable and fuzzable on its own.
 */
#ifndef STRATA_FRONT_ADMIN_QUERY_H
#define STRATA_FRONT_ADMIN_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/* Tiers as a filter's bits. */
enum {
	STRATA_ADMIN_TIER_MEMORY = 1,
	STRATA_ADMIN_TIER_DISK = 2,
	STRATA_ADMIN_TIER_REDIS = 4,
};

/* Page sizes of GET /admin/keys. */
#define STRATA_ADMIN_LIMIT_DEFAULT 100
#define STRATA_ADMIN_LIMIT_MAX 1000

/* The raw parameters, as received; NULL when absent or empty.  Borrowed
 * by the filter parsed from them. */
struct strata_admin_query {
	const char *prefix, *path, *tag, *route, *tier, *limit, *cursor;
};

/* What GET /admin/keys (and the purges that list first) select. */
struct strata_admin_filter {
	const char *prefix;   /* path prefix */
	const char *path;     /* exact path, any query or variant */
	const char *tag;
	const char *route;
	unsigned tiers;       /* STRATA_ADMIN_TIER_* wanted; 0: any */
	const char *after;    /* key text the page starts after; NULL */
	size_t limit;         /* 0: no limit */
};

/*
 * Fill `f` from `q`.  *cursor_text receives the decoded cursor (malloc'd,
 * the caller frees it; f->after points into it) or NULL.  Returns 0, or
 * -EINVAL with a message for the client in *why (static), or -ENOMEM.
 */
int strata_admin_filter_parse(const struct strata_admin_query *q,
			      struct strata_admin_filter *f,
			      char **cursor_text, const char **why);

/* "memory", "disk" or "redis" to its bit, NULL to 0.  0 or -EINVAL. */
int strata_admin_tier_parse(const char *s, unsigned *out);

/* A boolean parameter: present and neither "0" nor "false". */
bool strata_admin_flag(const char *v);

/*
 * Cursors: the hex of the key text a page ended on.  encode: a new
 * string (NULL when out of memory).  decode: the key text, a new
 * NUL-terminated string, or NULL when `cursor` is not a cursor (odd
 * length, empty, a non-hex digit, or a NUL byte inside).
 */
char *strata_admin_cursor_encode(const char *key_text, size_t len);
char *strata_admin_cursor_decode(const char *cursor);

#endif /* STRATA_FRONT_ADMIN_QUERY_H */
