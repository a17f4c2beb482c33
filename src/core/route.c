/*
 * route.c: compiling route patterns into an immutable table, and matching
 * request paths against it.
 *
 * Patterns are kept as text and matched in place: an exact pattern is one
 * memcmp, a plain prefix ("/api/<star>") is one memcmp of everything before
 * the star, and a pattern with "*" segments is walked segment by segment
 * against the path.  Route tables hold a handful to a few hundred routes,
 * so a linear scan in configuration order is both the simplest way to make
 * "first match wins" true and fast enough; nothing here allocates after the
 * table is built.  ("<star>" stands for "*" in comments, where a star
 * followed by a slash would end the comment.)
 *
 * Concurrency: a table is immutable once strata_route_table_new() returns.
 * The only shared mutable field is `refcnt`.  Readers may match, size and
 * index a table from any thread without a lock as long as they hold a
 * reference; the last strata_route_table_release() frees it, and its
 * acq_rel decrement orders every earlier reader's use before the free.
 */
#include "config.h"

#include "core/route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "strata/strata.h"

/* A compiled route: the public part plus what matching needs. */
struct route_entry {
	struct strata_route pub;
	size_t path_len;
	size_t prefix_len;   /* PREFIX: bytes before the final "*" */
	char *source;        /* for duplicate messages */
};

struct strata_route_table {
	unsigned magic;          /* STRATA_ROUTE_MAGIC */
	atomic_uint refcnt;
	size_t n_routes;
	struct route_entry *entries;
};

/* --- pattern checking ----------------------------------------------------- */

/* Why a pattern is bad and how to fix it, or NULL when it is good. */
static const char *pattern_problem(const char *pattern)
{
	const char *seg;

	if (pattern[0] != '/')
		return "does not start with \"/\" (write an absolute path, "
		       "e.g. \"/api/*\")";
	for (const char *p = pattern; *p; p++) {
		if (*p == '?' || *p == '#')
			return "contains \"?\" or \"#\" (a route matches the "
			       "path only: drop the query or fragment)";
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "contains a space or control character "
			       "(percent-encode it, e.g. %20)";
	}
	seg = pattern + 1;
	for (;;) {
		const char *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);

		/* A trailing "/" is an ordinary exact path; "//" is not. */
		if (len == 0 && end)
			return "has an empty segment (remove the doubled "
			       "\"/\")";
		if ((len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return "has a \".\" or \"..\" segment (write the "
			       "normalized path)";
		if (memchr(seg, '*', len) && len != 1)
			return "has \"*\" inside a segment (\"*\" must be a "
			       "whole segment, e.g. \"/api/*\" or "
			       "\"/users/*/profile\")";
		if (!end)
			return NULL;
		seg = end + 1;
	}
}

int strata_route_pattern_check(const char *pattern, char *err, size_t errlen)
{
	const char *problem;

	if (!pattern || !pattern[0]) {
		snprintf(err, errlen, "route path is empty (write an absolute "
			 "path, e.g. \"/api/*\")");
		return -EINVAL;
	}
	problem = pattern_problem(pattern);
	if (problem) {
		snprintf(err, errlen, "route path \"%s\" %s", pattern, problem);
		return -EINVAL;
	}
	return 0;
}

/* --- building ------------------------------------------------------------- */

/* Fill the matching fields of `e` from its (already checked) pattern. */
static void classify(struct route_entry *e)
{
	const char *path = e->pub.path;
	size_t len = strlen(path);
	size_t stars = 0;

	for (size_t i = 0; i < len; i++)
		stars += path[i] == '*';
	e->path_len = len;
	e->pub.prefix_tail = len >= 2 && path[len - 1] == '*';
	if (stars == 0)
		e->pub.kind = STRATA_ROUTE_EXACT;
	else if (stars == 1 && e->pub.prefix_tail)
		e->pub.kind = STRATA_ROUTE_PREFIX;
	else
		e->pub.kind = STRATA_ROUTE_SEGMENTS;
	e->prefix_len = e->pub.prefix_tail ? len - 1 : len;
}

static void entry_clear(struct route_entry *e)
{
	for (size_t i = 0; i < e->pub.n_vary; i++)
		free((char *)e->pub.vary[i]);
	free((void *)e->pub.vary);
	/* key_rule.vary is pub.vary: freed just above. */
	for (size_t i = 0; i < e->pub.key_rule.n_query_keep; i++)
		free((char *)e->pub.key_rule.query_keep[i]);
	free((void *)e->pub.key_rule.query_keep);
	free((char *)e->pub.name);
	free((char *)e->pub.path);
	free(e->source);
}

/*
 * Copy n strings into a new array, counting copies in *copied as they are
 * made so that a failure leaves a state entry_clear() can free.
 */
static int copy_strings(char *const *from, size_t n, const char *const **to,
			size_t *copied)
{
	char **v;

	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	*to = (const char *const *)v;
	for (size_t i = 0; i < n; i++) {
		v[i] = strdup(from[i]);
		if (!v[i])
			return -ENOMEM;
		*copied = i + 1;
	}
	return 0;
}

static int entry_init(struct route_entry *e,
		      const struct strata_route_config *rc, size_t index)
{
	struct strata_key_rule *rule = &e->pub.key_rule;

	e->pub.index = index;
	e->pub.ttl_ms = rc->ttl_ms;
	e->pub.methods = rc->methods;
	e->pub.force = rc->force;
	e->pub.ttl_origin = rc->ttl_origin;
	e->pub.default_ttl_ms = rc->default_ttl_ms;
	e->pub.stale_while_revalidate_ms = rc->stale_while_revalidate_ms;
	e->pub.stale_if_error_ms = rc->stale_if_error_ms;
	e->pub.keep_ms = rc->keep_ms;
	e->pub.etag_generate = rc->etag_generate;
	e->pub.path = strdup(rc->path);
	e->pub.name = strdup(rc->name ? rc->name : rc->path);
	e->source = strdup(rc->source ? rc->source : "route");
	if (!e->pub.path || !e->pub.name || !e->source)
		return -ENOMEM;
	if (copy_strings(rc->vary, rc->n_vary, &e->pub.vary,
			 &e->pub.n_vary) < 0)
		return -ENOMEM;
	/* check_routes() vouched for the mode; key.c static_asserts that
	 * STRATA_ROUTE_QUERY_* equal enum strata_query_mode. */
	rule->query = (enum strata_query_mode)rc->query;
	rule->vary = e->pub.vary;
	rule->n_vary = e->pub.n_vary;
	/* The keep list means something only in KEEP mode. */
	if (rc->query == STRATA_ROUTE_QUERY_KEEP &&
	    copy_strings(rc->query_keep, rc->n_query_keep, &rule->query_keep,
			 &rule->n_query_keep) < 0)
		return -ENOMEM;
	classify(e);
	return 0;
}

/*
 * The configuration struct is public, so its query fields are checked
 * again here rather than trusted from the YAML loader.
 */
static int check_query(const struct strata_route_config *rc, char *why,
		       size_t whylen)
{
	switch (rc->query) {
	case STRATA_ROUTE_QUERY_RAW:
	case STRATA_ROUTE_QUERY_IGNORE:
		return 0;
	case STRATA_ROUTE_QUERY_KEEP:
		if (rc->n_query_keep == 0 || !rc->query_keep) {
			snprintf(why, whylen, "query keeps no parameter (list "
				 "at least one name, or use query: ignore)");
			return -EINVAL;
		}
		for (size_t i = 0; i < rc->n_query_keep; i++) {
			if (!rc->query_keep[i] || !rc->query_keep[i][0]) {
				snprintf(why, whylen, "query parameter name "
					 "%zu is empty (remove it)", i);
				return -EINVAL;
			}
		}
		return 0;
	default:
		snprintf(why, whylen, "query mode %d is unknown (use raw, "
			 "ignore or a list of parameter names)", rc->query);
		return -EINVAL;
	}
}

/*
 * Every route pattern must be valid and routed once.  Quadratic, but it
 * runs once per configuration over a short list.
 */
static int check_routes(const struct strata_route_config *routes,
			size_t n_routes, char *err, size_t errlen)
{
	char why[256];

	for (size_t i = 0; i < n_routes; i++) {
		const char *source = routes[i].source ? routes[i].source
						      : "route";

		if (strata_route_pattern_check(routes[i].path, why,
					       sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: %s", source, why);
			return STRATA_ECONFIG;
		}
		if (check_query(&routes[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: %s", source, why);
			return STRATA_ECONFIG;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(routes[i].path, routes[j].path) != 0)
				continue;
			snprintf(err, errlen,
				 "%s: route path \"%s\" is already routed at %s "
				 "(remove one of them)",
				 source, routes[i].path,
				 routes[j].source ? routes[j].source
						  : "an earlier route");
			return STRATA_ECONFIG;
		}
	}
	return 0;
}

static void table_free(struct strata_route_table *table)
{
	for (size_t i = 0; i < table->n_routes; i++)
		entry_clear(&table->entries[i]);
	free(table->entries);
	table->magic = 0;
	free(table);
}

int strata_route_table_new(const struct strata_route_config *routes,
			   size_t n_routes, struct strata_route_table **out,
			   char *err, size_t errlen)
{
	struct strata_route_table *table = NULL;
	int rc;

	*out = NULL;
	rc = check_routes(routes, n_routes, err, errlen);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	table = calloc(1, sizeof(*table));
	if (!table)
		goto out;
	table->magic = STRATA_ROUTE_MAGIC;
	atomic_init(&table->refcnt, 1);
	if (n_routes) {
		table->entries = calloc(n_routes, sizeof(*table->entries));
		if (!table->entries)
			goto out;
	}
	for (size_t i = 0; i < n_routes; i++) {
		/* Count first so table_free clears a half-built entry too. */
		table->n_routes = i + 1;
		if (entry_init(&table->entries[i], &routes[i], i) < 0)
			goto out;
	}
	*out = table;
	table = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory building the route table");
	if (table)
		table_free(table);
	return rc;
}

struct strata_route_table *
strata_route_table_ref(struct strata_route_table *table)
{
	STRATA_ASSERT(table && table->magic == STRATA_ROUTE_MAGIC);
	/*
	 * Relaxed: the caller already holds a reference, so the table cannot
	 * be freed concurrently and no data is published by the increment.
	 */
	atomic_fetch_add_explicit(&table->refcnt, 1, memory_order_relaxed);
	return table;
}

void strata_route_table_release(struct strata_route_table **table)
{
	struct strata_route_table *t;

	if (!table || !*table)
		return;
	t = *table;
	*table = NULL;
	STRATA_ASSERT(t->magic == STRATA_ROUTE_MAGIC);
	/*
	 * Acq_rel: the release half orders this holder's reads of the table
	 * before the decrement; the acquire half, on the thread that drops
	 * the last reference, orders every other holder's reads (released
	 * by their decrements) before the free below.
	 */
	if (atomic_fetch_sub_explicit(&t->refcnt, 1,
				      memory_order_acq_rel) == 1)
		table_free(t);
}

size_t strata_route_table_size(const struct strata_route_table *table)
{
	STRATA_ASSERT(table && table->magic == STRATA_ROUTE_MAGIC);
	return table->n_routes;
}

const struct strata_route *
strata_route_table_at(const struct strata_route_table *table, size_t i)
{
	STRATA_ASSERT(table && table->magic == STRATA_ROUTE_MAGIC);
	STRATA_ASSERT(i < table->n_routes);
	return &table->entries[i].pub;
}

/* --- matching ------------------------------------------------------------- */

/*
 * Walk pattern and path one segment at a time.  Both start with "/"; a
 * pattern segment "*" takes one non-empty path segment, any other must be
 * equal.  A final "*" in a prefix_tail pattern is reached only once the
 * path has matched everything up to and including the "/" before it, so it
 * accepts the rest of the path, empty or not.
 */
static bool match_segments(const struct route_entry *e, const char *path,
			   size_t path_len)
{
	const char *pat = e->pub.path;
	size_t pat_len = e->path_len;
	size_t pi = 1, si = 1;

	if (path_len == 0 || path[0] != '/')
		return false;
	for (;;) {
		const char *pslash = memchr(pat + pi, '/', pat_len - pi);
		size_t pe = pslash ? (size_t)(pslash - pat) : pat_len;
		bool last = pe == pat_len;
		bool star = pe - pi == 1 && pat[pi] == '*';
		const char *sslash;
		size_t se;

		if (last && star && e->pub.prefix_tail)
			return true;
		sslash = si < path_len ? memchr(path + si, '/', path_len - si)
				       : NULL;
		se = sslash ? (size_t)(sslash - path) : path_len;
		if (star) {
			if (se == si)
				return false;
		} else if (se - si != pe - pi ||
			   memcmp(path + si, pat + pi, pe - pi) != 0) {
			return false;
		}
		if (last)
			return se == path_len;
		if (se == path_len)
			return false;  /* the path ran out of segments */
		pi = pe + 1;
		si = se + 1;
	}
}

static bool entry_matches(const struct route_entry *e, const char *path,
			  size_t path_len)
{
	switch (e->pub.kind) {
	case STRATA_ROUTE_EXACT:
		return path_len == e->path_len &&
		       memcmp(path, e->pub.path, path_len) == 0;
	case STRATA_ROUTE_PREFIX:
		return path_len >= e->prefix_len &&
		       memcmp(path, e->pub.path, e->prefix_len) == 0;
	case STRATA_ROUTE_SEGMENTS:
		return match_segments(e, path, path_len);
	}
	return false;
}

const struct strata_route *
strata_route_match(const struct strata_route_table *table, const char *path,
		   size_t path_len)
{
	STRATA_ASSERT(table && table->magic == STRATA_ROUTE_MAGIC);
	if (!path)
		return NULL;
	for (size_t i = 0; i < table->n_routes; i++) {
		if (entry_matches(&table->entries[i], path, path_len))
			return &table->entries[i].pub;
	}
	return NULL;
}

/* --- methods -------------------------------------------------------------- */

static const struct {
	const char *name;
	unsigned bit;
} methods[] = {
	{ "GET", STRATA_METHOD_GET },
	{ "HEAD", STRATA_METHOD_HEAD },
	{ "POST", STRATA_METHOD_POST },
	{ "PUT", STRATA_METHOD_PUT },
	{ "DELETE", STRATA_METHOD_DELETE },
	{ "PATCH", STRATA_METHOD_PATCH },
	{ "OPTIONS", STRATA_METHOD_OPTIONS },
};

unsigned strata_method_bit(const char *method)
{
	if (!method)
		return STRATA_METHOD_OTHER;
	/* Case-sensitive: RFC 9110 method names are; "get" is another one. */
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(method, methods[i].name) == 0)
			return methods[i].bit;
	}
	return STRATA_METHOD_OTHER;
}

bool strata_route_caches(const struct strata_route *route, unsigned method)
{
	return route && (route->ttl_ms > 0 || route->ttl_origin) &&
	       (route->methods & method) != 0;
}
