/*
 * test_route.c: route patterns, table building and matching.
 */
#include "config.h"

#include "core/route.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <criterion/criterion.h>

#include "strata/strata.h"

#define GET_HEAD (STRATA_METHOD_GET | STRATA_METHOD_HEAD)

static struct strata_route_config rc(const char *path, uint64_t ttl_ms)
{
	return (struct strata_route_config){
		.path = (char *)path, .name = NULL, .ttl_ms = ttl_ms,
		.methods = GET_HEAD, .source = (char *)"test",
	};
}

/* A table of the given patterns, ttl 1s each, in order. */
static struct strata_route_table *table_of(const char *const *paths, size_t n)
{
	struct strata_route_config routes[16];
	struct strata_route_table *table = NULL;
	char err[256] = "";

	cr_assert_leq(n, 16);
	for (size_t i = 0; i < n; i++)
		routes[i] = rc(paths[i], 1000);
	cr_assert_eq(strata_route_table_new(routes, n, &table, err,
					    sizeof(err)), 0, "%s", err);
	cr_assert_not_null(table);
	return table;
}

#define TABLE(...)                                                        \
	table_of((const char *const[]){ __VA_ARGS__ },                     \
		 sizeof((const char *const[]){ __VA_ARGS__ }) /             \
			 sizeof(const char *))

/* The path of the route matching `path`, or NULL. */
static const char *match(const struct strata_route_table *t, const char *path)
{
	const struct strata_route *r = strata_route_match(t, path, strlen(path));

	return r ? r->path : NULL;
}

static bool matches(const struct strata_route_table *t, const char *path)
{
	return match(t, path) != NULL;
}

Test(route, exact_matches_only_itself)
{
	struct strata_route_table *t = TABLE("/slow");

	cr_expect(matches(t, "/slow"));
	cr_expect_not(matches(t, "/slow/"));
	cr_expect_not(matches(t, "/slower"));
	cr_expect_not(matches(t, "/slo"));
	cr_expect_not(matches(t, "/"));
	cr_expect_not(matches(t, ""));
	cr_expect_eq(strata_route_table_at(t, 0)->kind, STRATA_ROUTE_EXACT);
	strata_route_table_release(&t);
}

Test(route, exact_with_trailing_slash)
{
	struct strata_route_table *t = TABLE("/docs/");

	cr_expect(matches(t, "/docs/"));
	cr_expect_not(matches(t, "/docs"));
	cr_expect_not(matches(t, "/docs/a"));
	strata_route_table_release(&t);
}

Test(route, prefix_matches_children)
{
	struct strata_route_table *t = TABLE("/api/*");

	cr_expect(matches(t, "/api/users"));
	cr_expect(matches(t, "/api/users/42/profile"));
	cr_expect(matches(t, "/api/"), "the directory itself, with its slash");
	cr_expect_not(matches(t, "/api"), "not the bare directory");
	cr_expect_not(matches(t, "/apix"));
	cr_expect_not(matches(t, "/apix/y"));
	cr_expect_not(matches(t, "/other/api/x"));
	cr_expect_eq(strata_route_table_at(t, 0)->kind, STRATA_ROUTE_PREFIX);
	cr_expect(strata_route_table_at(t, 0)->prefix_tail);
	strata_route_table_release(&t);
}

Test(route, root_prefix_matches_everything)
{
	struct strata_route_table *t = TABLE("/*");

	cr_expect(matches(t, "/"));
	cr_expect(matches(t, "/a/b"));
	cr_expect_not(matches(t, "a"));
	strata_route_table_release(&t);
}

Test(route, segment_wildcard_matches_one_segment)
{
	struct strata_route_table *t = TABLE("/users/*/profile");

	cr_expect(matches(t, "/users/42/profile"));
	cr_expect(matches(t, "/users/x-y.z/profile"));
	cr_expect_not(matches(t, "/users//profile"), "empty segment");
	cr_expect_not(matches(t, "/users/4/2/profile"), "two segments");
	cr_expect_not(matches(t, "/users/profile"), "no segment");
	cr_expect_not(matches(t, "/users/42/profile/"));
	cr_expect_not(matches(t, "/users/42/profiles"));
	cr_expect_not(matches(t, "/users/42"));
	cr_expect_eq(strata_route_table_at(t, 0)->kind, STRATA_ROUTE_SEGMENTS);
	cr_expect_not(strata_route_table_at(t, 0)->prefix_tail);
	strata_route_table_release(&t);
}

Test(route, wildcard_segment_then_prefix)
{
	struct strata_route_table *t = TABLE("/a/*/b/*");

	/* Ends in "/<star>": a prefix after one wildcard segment. */
	cr_expect(matches(t, "/a/x/b/"));
	cr_expect(matches(t, "/a/x/b/c/d"));
	cr_expect_not(matches(t, "/a/x/b"));
	cr_expect_not(matches(t, "/a//b/c"));
	cr_expect_not(matches(t, "/a/x/y/b/c"));
	cr_expect_eq(strata_route_table_at(t, 0)->kind, STRATA_ROUTE_SEGMENTS);
	cr_expect(strata_route_table_at(t, 0)->prefix_tail);
	strata_route_table_release(&t);
}

Test(route, consecutive_wildcards)
{
	struct strata_route_table *t = TABLE("/*/*");

	cr_expect(matches(t, "/a/"), "prefix tail after one segment");
	cr_expect(matches(t, "/a/b/c"));
	cr_expect_not(matches(t, "/a"));
	cr_expect_not(matches(t, "//b"));
	strata_route_table_release(&t);
}

Test(route, first_match_wins)
{
	struct strata_route_table *t =
		TABLE("/api/special", "/api/*", "/api/special/x", "/*");

	cr_expect_str_eq(match(t, "/api/special"), "/api/special");
	cr_expect_str_eq(match(t, "/api/other"), "/api/*");
	cr_expect_str_eq(match(t, "/api/special/x"), "/api/*",
			 "an earlier prefix shadows a later exact route");
	cr_expect_str_eq(match(t, "/elsewhere"), "/*");
	cr_expect_eq(strata_route_match(t, "/api/other", 10)->index, 1);
	strata_route_table_release(&t);
}

Test(route, path_len_is_respected)
{
	struct strata_route_table *t = TABLE("/slow", "/api/*");
	const char *target = "/slow?x=1";
	const char *api = "/api/?q";
	const struct strata_route *r;

	r = strata_route_match(t, target, 5);
	cr_assert_not_null(r);
	cr_expect_str_eq(r->path, "/slow");
	cr_expect_null(strata_route_match(t, target, strlen(target)));
	cr_expect_null(strata_route_match(t, target, 4));
	cr_expect_not_null(strata_route_match(t, api, 5));
	cr_expect_null(strata_route_match(t, api, 4));
	strata_route_table_release(&t);
}

Test(route, no_routes_matches_nothing)
{
	struct strata_route_table *t = NULL;
	char err[64];

	cr_assert_eq(strata_route_table_new(NULL, 0, &t, err, sizeof(err)), 0);
	cr_expect_eq(strata_route_table_size(t), 0);
	cr_expect_null(strata_route_match(t, "/", 1));
	strata_route_table_release(&t);
}

Test(route, table_copies_config)
{
	char path[] = "/copy/*";
	char name[] = "copy";
	char accept[] = "Accept";
	char *vary[] = { accept };
	struct strata_route_config cfg = {
		.path = path, .name = name, .ttl_ms = 5000,
		.methods = STRATA_METHOD_GET, .vary = vary, .n_vary = 1,
		.source = (char *)"test:1",
	};
	struct strata_route_table *t = NULL;
	const struct strata_route *r;
	char err[64];

	cr_assert_eq(strata_route_table_new(&cfg, 1, &t, err, sizeof(err)), 0);
	memset(path, 'x', sizeof(path) - 1);
	memset(name, 'x', sizeof(name) - 1);
	memset(accept, 'x', sizeof(accept) - 1);
	r = strata_route_table_at(t, 0);
	cr_expect_str_eq(r->path, "/copy/*");
	cr_expect_str_eq(r->name, "copy");
	cr_expect_eq(r->ttl_ms, 5000);
	cr_expect_eq(r->methods, STRATA_METHOD_GET);
	cr_assert_eq(r->n_vary, 1);
	cr_expect_str_eq(r->vary[0], "Accept");
	cr_expect_eq(r->index, 0);
	strata_route_table_release(&t);
}

Test(route, name_defaults_to_path)
{
	struct strata_route_table *t = TABLE("/slow");

	cr_expect_str_eq(strata_route_table_at(t, 0)->name, "/slow");
	strata_route_table_release(&t);
}

Test(route, methods_default_get_head)
{
	struct strata_route_table *t = TABLE("/slow");
	const struct strata_route *r = strata_route_table_at(t, 0);

	cr_expect(strata_route_caches(r, strata_method_bit("GET")));
	cr_expect(strata_route_caches(r, strata_method_bit("HEAD")));
	cr_expect_not(strata_route_caches(r, strata_method_bit("POST")));
	cr_expect_not(strata_route_caches(r, strata_method_bit("BREW")));
	strata_route_table_release(&t);
}

Test(route, ttl_zero_is_not_caching)
{
	struct strata_route_config routes[] = { rc("/private/*", 0) };
	struct strata_route_table *t = NULL;
	const struct strata_route *r;
	char err[64];

	cr_assert_eq(strata_route_table_new(routes, 1, &t, err, sizeof(err)), 0);
	r = strata_route_match(t, "/private/x", 10);
	cr_assert_not_null(r, "a pass-through route still matches");
	cr_expect_not(strata_route_caches(r, STRATA_METHOD_GET));
	cr_expect_not(strata_route_caches(NULL, STRATA_METHOD_GET));
	strata_route_table_release(&t);
}

Test(route, method_bits_are_case_sensitive)
{
	cr_expect_eq(strata_method_bit("GET"), STRATA_METHOD_GET);
	cr_expect_eq(strata_method_bit("HEAD"), STRATA_METHOD_HEAD);
	cr_expect_eq(strata_method_bit("POST"), STRATA_METHOD_POST);
	cr_expect_eq(strata_method_bit("PUT"), STRATA_METHOD_PUT);
	cr_expect_eq(strata_method_bit("DELETE"), STRATA_METHOD_DELETE);
	cr_expect_eq(strata_method_bit("PATCH"), STRATA_METHOD_PATCH);
	cr_expect_eq(strata_method_bit("OPTIONS"), STRATA_METHOD_OPTIONS);
	cr_expect_eq(strata_method_bit("get"), STRATA_METHOD_OTHER);
	cr_expect_eq(strata_method_bit("PROPFIND"), STRATA_METHOD_OTHER);
	cr_expect_eq(strata_method_bit(""), STRATA_METHOD_OTHER);
	cr_expect_eq(strata_method_bit(NULL), STRATA_METHOD_OTHER);
}

static void expect_bad_pattern(const char *pattern, const char *reason)
{
	char err[256] = "";

	cr_expect_eq(strata_route_pattern_check(pattern, err, sizeof(err)),
		     -EINVAL, "\"%s\" accepted", pattern ? pattern : "(null)");
	cr_expect(strstr(err, reason), "\"%s\": message \"%s\" lacks \"%s\"",
		  pattern ? pattern : "(null)", err, reason);
}

Test(route, pattern_check_rejects_each_bad_form)
{
	expect_bad_pattern(NULL, "empty");
	expect_bad_pattern("", "empty");
	expect_bad_pattern("api/*", "start with \"/\"");
	expect_bad_pattern("*", "start with \"/\"");
	expect_bad_pattern("/x?y=1", "\"?\"");
	expect_bad_pattern("/x#frag", "\"#\"");
	expect_bad_pattern("/api*", "inside a segment");
	expect_bad_pattern("/api/*x", "inside a segment");
	expect_bad_pattern("/api/**", "inside a segment");
	expect_bad_pattern("/a//b", "empty segment");
	expect_bad_pattern("//", "empty segment");
	expect_bad_pattern("/a/./b", "\".\"");
	expect_bad_pattern("/a/..", "\"..\"");
	expect_bad_pattern("/a b", "space");
}

Test(route, pattern_check_accepts_good_forms)
{
	static const char *const good[] = {
		"/", "/slow", "/api/*", "/*", "/users/*/profile", "/a/*/b/*",
		"/docs/", "/a.b/c..d/.e", "/%20x",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect_eq(strata_route_pattern_check(good[i], err,
							sizeof(err)), 0,
			     "\"%s\": %s", good[i], err);
}

Test(route, pattern_error_names_pattern_and_fix)
{
	char err[256];

	strata_route_pattern_check("/api*", err, sizeof(err));
	cr_expect(strstr(err, "\"/api*\""), "%s", err);
	cr_expect(strstr(err, "\"/api/*\""), "suggests the fix: %s", err);
}

Test(route, bad_pattern_fails_table_with_source)
{
	struct strata_route_config routes[] = { rc("/ok", 1), rc("/bad*", 1) };
	struct strata_route_table *t = NULL;
	char err[256] = "";

	routes[1].source = (char *)"strata.yaml:9";
	cr_expect_eq(strata_route_table_new(routes, 2, &t, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_null(t);
	cr_expect(strstr(err, "strata.yaml:9: "), "%s", err);
	cr_expect(strstr(err, "/bad*"), "%s", err);
}

Test(route, duplicates_rejected_naming_both)
{
	struct strata_route_config routes[] = {
		rc("/slow", 1000), rc("/api/*", 1000), rc("/slow", 5000),
	};
	struct strata_route_table *t = NULL;
	char err[256] = "";

	routes[0].source = (char *)"strata.yaml:14";
	routes[2].source = (char *)"--route \"/slow=5s\"";
	cr_expect_eq(strata_route_table_new(routes, 3, &t, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_null(t);
	cr_expect(strstr(err, "--route \"/slow=5s\": "), "%s", err);
	cr_expect(strstr(err, "strata.yaml:14"), "%s", err);
	cr_expect(strstr(err, "\"/slow\""), "%s", err);
}

Test(route, refcount_keeps_table_alive)
{
	struct strata_route_table *t = TABLE("/slow");
	struct strata_route_table *second = strata_route_table_ref(t);

	cr_expect_eq(second, t);
	strata_route_table_release(&t);
	cr_expect_null(t, "release nulls the caller's pointer");
	/* Still alive through the second reference (ASan would object). */
	cr_expect(matches(second, "/slow"));
	strata_route_table_release(&second);
	cr_expect_null(second);
	strata_route_table_release(&second);  /* pointer to NULL: no-op */
	strata_route_table_release(NULL);
}

Test(route, size_and_at)
{
	struct strata_route_table *t = TABLE("/a", "/b", "/c/*");

	cr_expect_eq(strata_route_table_size(t), 3);
	cr_expect_str_eq(strata_route_table_at(t, 2)->path, "/c/*");
	cr_expect_eq(strata_route_table_at(t, 2)->index, 2);
	strata_route_table_release(&t);
}

Test(route, at_out_of_range_asserts, .signal = SIGABRT)
{
	struct strata_route_table *t = TABLE("/a");

	strata_route_table_at(t, 1);
}

Test(route, bad_magic_asserts, .signal = SIGABRT)
{
	/* A table whose magic is wrong is not a table. */
	unsigned long junk[8] = { 0 };

	strata_route_table_size((const struct strata_route_table *)junk);
}

Test(route, key_rule_defaults_to_raw)
{
	struct strata_route_table *t = TABLE("/slow");
	const struct strata_route *r = strata_route_table_at(t, 0);

	cr_expect_eq(r->key_rule.query, STRATA_QUERY_RAW);
	cr_expect_eq(r->key_rule.n_query_keep, 0);
	cr_expect_null(r->key_rule.query_keep);
	cr_expect_eq(r->key_rule.n_vary, 0);
	cr_expect_not(r->force);
	strata_route_table_release(&t);
}

Test(route, table_copies_key_rule_and_force)
{
	char page[] = "page";
	char sort[] = "sort";
	char lang[] = "Accept-Language";
	char *keep[] = { page, sort };
	char *vary[] = { lang };
	struct strata_route_config cfg[2] = {
		rc("/keep", 1000), rc("/ignore", 1000),
	};
	struct strata_route_table *t = NULL;
	const struct strata_route *r;
	char err[128];

	cfg[0].query = STRATA_ROUTE_QUERY_KEEP;
	cfg[0].query_keep = keep;
	cfg[0].n_query_keep = 2;
	cfg[0].vary = vary;
	cfg[0].n_vary = 1;
	cfg[1].query = STRATA_ROUTE_QUERY_IGNORE;
	cfg[1].force = true;
	cr_assert_eq(strata_route_table_new(cfg, 2, &t, err, sizeof(err)), 0,
		     "%s", err);
	memset(page, 'x', sizeof(page) - 1);
	memset(lang, 'x', sizeof(lang) - 1);
	r = strata_route_table_at(t, 0);
	cr_expect_eq(r->key_rule.query, STRATA_QUERY_KEEP);
	cr_assert_eq(r->key_rule.n_query_keep, 2);
	cr_expect_str_eq(r->key_rule.query_keep[0], "page", "a copy");
	cr_expect_str_eq(r->key_rule.query_keep[1], "sort");
	cr_assert_eq(r->key_rule.n_vary, 1);
	cr_expect_str_eq(r->key_rule.vary[0], "Accept-Language", "a copy");
	cr_expect_eq(r->key_rule.vary, r->vary, "shares the route's vary");
	cr_expect_not(r->force);
	r = strata_route_table_at(t, 1);
	cr_expect_eq(r->key_rule.query, STRATA_QUERY_IGNORE);
	cr_expect(r->force);
	strata_route_table_release(&t);
}

Test(route, keep_list_ignored_outside_keep_mode)
{
	char *keep[] = { (char *)"page" };
	struct strata_route_config cfg = rc("/a", 1000);
	struct strata_route_table *t = NULL;
	char err[128];

	cfg.query = STRATA_ROUTE_QUERY_RAW;
	cfg.query_keep = keep;
	cfg.n_query_keep = 1;
	cr_assert_eq(strata_route_table_new(&cfg, 1, &t, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_eq(strata_route_table_at(t, 0)->key_rule.n_query_keep, 0);
	strata_route_table_release(&t);
}

Test(route, bad_query_config_rejected)
{
	char *empty[] = { (char *)"" };
	struct strata_route_config cfg = rc("/a", 1000);
	struct strata_route_table *t = NULL;
	char err[256];

	cfg.query = STRATA_ROUTE_QUERY_KEEP;
	cr_expect_eq(strata_route_table_new(&cfg, 1, &t, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect(strstr(err, "test: query keeps no parameter"), "%s", err);
	cfg.query_keep = empty;
	cfg.n_query_keep = 1;
	cr_expect_eq(strata_route_table_new(&cfg, 1, &t, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect(strstr(err, "query parameter name 0 is empty"), "%s", err);
	cfg.query = -1;
	cr_expect_eq(strata_route_table_new(&cfg, 1, &t, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect(strstr(err, "query mode -1 is unknown"), "%s", err);
	cr_expect_null(t);
}
