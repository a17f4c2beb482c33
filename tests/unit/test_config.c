/*
 * test_config.c: the configuration layers (defaults, YAML, environment,
 * settings), their error messages and the final validation.
 */
#include "config.h"

#include "strata/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "strata/strata.h"

#define GET_HEAD (STRATA_METHOD_GET | STRATA_METHOD_HEAD)

/* The example from the issue; line numbers below refer to it. */
static const char example[] =
	"listen: 0.0.0.0:8080\n"                       /* 1 */
	"workers: 4\n"                                 /* 2 */
	"upstream:\n"                                  /* 3 */
	"  url: http://127.0.0.1:8000\n"               /* 4 */
	"  connect_timeout: 2s\n"                      /* 5 */
	"  timeout: 30s\n"                             /* 6 */
	"  max_connections: 256\n"                     /* 7 */
	"  preserve_host: true\n"                      /* 8 */
	"admin:\n"                                     /* 9 */
	"  listen: 127.0.0.1:8081\n"                   /* 10 */
	"  token: ${STRATA_TEST_TOKEN}\n"              /* 11 */
	"cache:\n"                                     /* 12 */
	"  memory: 256MiB\n"                           /* 13 */
	"  max_object_size: 8MiB\n"                    /* 14 */
	"routes:\n"                                    /* 15 */
	"  - path: /slow\n"                            /* 16 */
	"    ttl: 60s\n"                               /* 17 */
	"  - path: /api/users/*\n"                     /* 18 */
	"    methods: [GET, HEAD]\n"                   /* 19 */
	"    ttl: 10s\n"                               /* 20 */
	"    vary: [Accept-Language]\n"                /* 21 */
	"  - path: /private/*\n"                       /* 22 */
	"    ttl: 0          # never cached: pass through\n"; /* 23 */

static char err[STRATA_CONFIG_ERRLEN];

static struct strata_config *fresh(void)
{
	struct strata_config *cfg = strata_config_new();

	cr_assert_not_null(cfg);
	err[0] = '\0';
	return cfg;
}

static struct strata_config *load_ok(const char *yaml)
{
	struct strata_config *cfg = fresh();

	cr_assert_eq(strata_config_load_string(cfg, yaml, "strata.yaml", err,
					       sizeof(err)), 0, "%s", err);
	return cfg;
}

/* Load `yaml`, expect STRATA_ECONFIG, return the message. */
static const char *load_err(const char *yaml)
{
	struct strata_config *cfg = fresh();
	int rc = strata_config_load_string(cfg, yaml, "strata.yaml", err,
					   sizeof(err));

	strata_config_free(&cfg);
	cr_assert_eq(rc, STRATA_ECONFIG, "accepted:\n%s", yaml);
	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
	return err;
}

#define expect_has(msg, part)                                             \
	cr_expect(strstr((msg), (part)) != NULL, "\"%s\" lacks \"%s\"",   \
		  (msg), (part))

/* --- defaults and the full example ---------------------------------------- */

Test(config, defaults)
{
	struct strata_config *cfg;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	unsetenv("STATE_DIRECTORY");
	cfg = fresh();

	cr_expect_str_eq(cfg->listen, "127.0.0.1:8080");
	cr_expect_eq(cfg->workers, (unsigned)(cpus < 1 ? 1 : cpus));
	cr_expect_eq(cfg->max_connections, 10000);
	cr_expect_eq(cfg->max_request_body, 10 << 20);
	cr_expect_eq(cfg->max_header_size, 16 << 10);
	cr_expect_eq(cfg->client_timeout_ms, 60000);
	cr_expect_eq(cfg->shutdown_timeout_ms, 10000);
	cr_expect(cfg->access_log);
	cr_expect_eq(cfg->log.format, STRATA_CONFIG_LOG_TEXT);
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_INFO);
	cr_expect_str_eq(cfg->upstream.url, "http://127.0.0.1:8000");
	cr_expect_eq(cfg->upstream.connect_timeout_ms, 2000);
	cr_expect_eq(cfg->upstream.timeout_ms, 30000);
	cr_expect_eq(cfg->upstream.max_connections, 256);
	cr_expect(cfg->upstream.preserve_host);
	cr_expect_str_eq(cfg->admin.listen, "127.0.0.1:8081");
	cr_expect_null(cfg->admin.token);
	cr_expect_eq(cfg->cache.memory, 256 << 20);
	cr_expect_eq(cfg->cache.max_object_size, 8 << 20);
	cr_expect(cfg->cache.disk.enabled);
	cr_expect_str_eq(cfg->cache.disk.path, "./strata-data");
	cr_expect_eq(cfg->cache.disk.size, UINT64_C(4) << 30);
	cr_expect_eq(cfg->cache.disk.sync, STRATA_CONFIG_DISK_SYNC_META);
	cr_expect_eq(cfg->cache.disk.on_corrupt,
		     STRATA_CONFIG_DISK_CORRUPT_MOVE);
	cr_expect_null(cfg->cache.redis.url, "the shared tier is opt-in");
	cr_expect_str_eq(cfg->cache.redis.prefix, "strata");
	cr_expect_eq(cfg->cache.redis.timeout_ms, 50);
	cr_expect_eq(cfg->cache.redis.pool, 8);
	cr_expect_eq(cfg->cache.redis.lock_ttl_ms, 3000);
	cr_expect_eq(cfg->cache.redis.lock_wait_ms, 0);
	cr_expect_eq(cfg->cache.redis.purge_log, 100000);
	cr_expect_eq(cfg->cache.redis.queue, 8192);
	cr_expect_str_eq(cfg->cache.tags_header, "Surrogate-Key");
	cr_expect_null(cfg->routes);
	cr_expect_eq(cfg->n_routes, 0);
	cr_expect_null(cfg->file);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
	cr_expect_null(cfg);
	strata_config_free(&cfg);
	strata_config_free(NULL);
}

Test(config, full_example_sets_every_field)
{
	struct strata_config *cfg;
	const struct strata_route_config *r;

	setenv("STRATA_TEST_TOKEN", "s3cret", 1);
	cfg = load_ok(example);
	cr_expect_str_eq(cfg->listen, "0.0.0.0:8080");
	cr_expect_eq(cfg->workers, 4);
	cr_expect_str_eq(cfg->upstream.url, "http://127.0.0.1:8000");
	cr_expect_eq(cfg->upstream.connect_timeout_ms, 2000);
	cr_expect_eq(cfg->upstream.timeout_ms, 30000);
	cr_expect_eq(cfg->upstream.max_connections, 256);
	cr_expect(cfg->upstream.preserve_host);
	cr_expect_str_eq(cfg->admin.listen, "127.0.0.1:8081");
	cr_expect_str_eq(cfg->admin.token, "s3cret");
	cr_expect_eq(cfg->cache.memory, 256 << 20);
	cr_expect_eq(cfg->cache.max_object_size, 8 << 20);
	cr_assert_eq(cfg->n_routes, 3);

	r = &cfg->routes[0];
	cr_expect_str_eq(r->path, "/slow");
	cr_expect_str_eq(r->name, "/slow");
	cr_expect_eq(r->ttl_ms, 60000);
	cr_expect_eq(r->methods, GET_HEAD);
	cr_expect_eq(r->n_vary, 0);
	cr_expect_str_eq(r->source, "strata.yaml:16");

	r = &cfg->routes[1];
	cr_expect_str_eq(r->path, "/api/users/*");
	cr_expect_eq(r->ttl_ms, 10000);
	cr_expect_eq(r->methods, GET_HEAD);
	cr_assert_eq(r->n_vary, 1);
	cr_expect_str_eq(r->vary[0], "Accept-Language");
	cr_expect_str_eq(r->source, "strata.yaml:18");

	r = &cfg->routes[2];
	cr_expect_str_eq(r->path, "/private/*");
	cr_expect_eq(r->ttl_ms, 0);

	cr_expect_null(cfg->file, "load_string names no file");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
	unsetenv("STRATA_TEST_TOKEN");
}

Test(config, other_top_level_keys)
{
	struct strata_config *cfg = load_ok("max_connections: 500\n"
					    "max_request_body: 1MiB\n"
					    "max_header_size: 32KiB\n"
					    "client_timeout: 2m\n"
					    "shutdown_timeout: 1500ms\n"
					    "access_log: false\n"
					    "upstream:\n"
					    "  preserve_host: no\n");

	cr_expect_eq(cfg->max_connections, 500);
	cr_expect_eq(cfg->max_request_body, 1 << 20);
	cr_expect_eq(cfg->max_header_size, 32 << 10);
	cr_expect_eq(cfg->client_timeout_ms, 120000);
	cr_expect_eq(cfg->shutdown_timeout_ms, 1500);
	cr_expect_not(cfg->access_log);
	cr_expect_not(cfg->upstream.preserve_host);
	strata_config_free(&cfg);
}

Test(config, empty_document_keeps_defaults)
{
	static const char *const empty[] = { "", "# nothing here\n", "---\n" };

	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		struct strata_config *cfg = load_ok(empty[i]);

		cr_expect_str_eq(cfg->listen, "127.0.0.1:8080");
		cr_expect_eq(cfg->upstream.timeout_ms, 30000);
		strata_config_free(&cfg);
	}
}

Test(config, route_details)
{
	struct strata_config *cfg = load_ok(
		"routes:\n"
		"  - path: /a\n"
		"    name: users\n"
		"    ttl: 5\n"
		"    methods: [get, Post, OPTIONS]\n"
		"    vary: [Accept, X-Tenant]\n");

	cr_assert_eq(cfg->n_routes, 1);
	cr_expect_str_eq(cfg->routes[0].name, "users");
	cr_expect_eq(cfg->routes[0].ttl_ms, 5000, "a bare ttl is seconds");
	cr_expect_eq(cfg->routes[0].methods, STRATA_METHOD_GET |
		     STRATA_METHOD_POST | STRATA_METHOD_OPTIONS);
	cr_assert_eq(cfg->routes[0].n_vary, 2);
	cr_expect_str_eq(cfg->routes[0].vary[1], "X-Tenant");
	strata_config_free(&cfg);
}

Test(config, anchors_and_aliases_resolve)
{
	struct strata_config *cfg = load_ok(
		"routes:\n"
		"  - path: /a\n"
		"    ttl: &short 10s\n"
		"    vary: &langs [Accept-Language]\n"
		"  - path: /b\n"
		"    ttl: *short\n"
		"    vary: *langs\n");

	cr_assert_eq(cfg->n_routes, 2);
	cr_expect_eq(cfg->routes[1].ttl_ms, 10000);
	cr_assert_eq(cfg->routes[1].n_vary, 1);
	cr_expect_str_eq(cfg->routes[1].vary[0], "Accept-Language");
	strata_config_free(&cfg);
}

Test(config, route_query_and_force)
{
	struct strata_config *cfg = load_ok(
		"routes:\n"
		"  - path: /a\n"
		"    ttl: 1s\n"
		"  - path: /b\n"
		"    ttl: 1s\n"
		"    query: ignore\n"
		"    force: true\n"
		"  - path: /c\n"
		"    ttl: 1s\n"
		"    query: [page, sort, \"%61\"]\n"
		"    force: false\n"
		"  - path: /d\n"
		"    ttl: 1s\n"
		"    query: RAW\n"
		"  - path: /e\n"
		"    ttl: 1s\n"
		"    query:\n"
		"      - page\n");

	cr_assert_eq(cfg->n_routes, 5);
	cr_expect_eq(cfg->routes[0].query, STRATA_ROUTE_QUERY_RAW, "default");
	cr_expect_not(cfg->routes[0].force, "default");
	cr_expect_eq(cfg->routes[0].n_query_keep, 0);
	cr_expect_eq(cfg->routes[1].query, STRATA_ROUTE_QUERY_IGNORE);
	cr_expect(cfg->routes[1].force);
	cr_expect_eq(cfg->routes[2].query, STRATA_ROUTE_QUERY_KEEP);
	cr_expect_not(cfg->routes[2].force);
	cr_assert_eq(cfg->routes[2].n_query_keep, 3);
	cr_expect_str_eq(cfg->routes[2].query_keep[0], "page");
	cr_expect_str_eq(cfg->routes[2].query_keep[1], "sort");
	cr_expect_str_eq(cfg->routes[2].query_keep[2], "%61", "raw bytes");
	cr_expect_eq(cfg->routes[3].query, STRATA_ROUTE_QUERY_RAW);
	cr_expect_eq(cfg->routes[4].query, STRATA_ROUTE_QUERY_KEEP);
	cr_assert_eq(cfg->routes[4].n_query_keep, 1);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
}

Test(config, route_query_and_force_errors)
{
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /a\n"
				  "    ttl: 1s\n"
				  "    query: []\n"),
			 "strata.yaml:4: routes[0].query: is empty (to keep no "
			 "parameter, use query: ignore)");
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /a\n"
				  "    ttl: 1s\n"
				  "    query: sorted\n"),
			 "strata.yaml:4: routes[0].query: \"sorted\" is not a "
			 "query mode (use raw, ignore or a list of parameter "
			 "names, e.g. [page, sort])");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    query:\n"),
		   "strata.yaml:4: routes[0].query: \"\" is not a query mode");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    query: {keep: [a]}\n"),
		   "strata.yaml:4: routes[0].query: expected raw, ignore or a "
		   "list of parameter names, not a mapping");
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /a\n"
				  "    ttl: 1s\n"
				  "    query:\n"
				  "      - page\n"
				  "      - \"a=b\"\n"),
			 "strata.yaml:6: routes[0].query[1]: \"a=b\" is not a "
			 "query parameter name (write the name as sent, "
			 "without \"=\", \"&\" or spaces, e.g. page)");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    query: [\"\"]\n"),
		   "routes[0].query[0]: \"\" is not a query parameter name");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    query: [[a]]\n"),
		   "routes[0].query[0]: expected a query parameter name, not "
		   "a sequence");
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /a\n"
				  "    ttl: 1s\n"
				  "    force: maybe\n"),
			 "strata.yaml:4: routes[0].force: \"maybe\" is not a "
			 "boolean (use true or false)");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    force: [true]\n"),
		   "routes[0].force: expected true or false, not a sequence");
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /a\n"
				  "    ttl: 1s\n"
				  "    qeury: ignore\n"),
			 "strata.yaml:4: routes[0].qeury: unknown key (did you "
			 "mean \"query\"?)");
}

Test(config, finish_rechecks_route_query)
{
	struct strata_config *cfg = load_ok("routes:\n"
					    "  - path: /a\n"
					    "    ttl: 1s\n");

	cfg->routes[0].query = STRATA_ROUTE_QUERY_KEEP;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "strata.yaml:2: query keeps no parameter");
	cfg->routes[0].query = 7;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "query mode 7 is unknown");
	cfg->routes[0].query = STRATA_ROUTE_QUERY_RAW;
	strata_config_free(&cfg);
}

/* --- error messages from the file ----------------------------------------- */

Test(config, unknown_key_did_you_mean)
{
	cr_expect_str_eq(load_err("listen: 0.0.0.0:8080\n"
				  "workers: 4\n"
				  "upstrem:\n"
				  "  url: http://x\n"),
			 "strata.yaml:3: upstrem: unknown key (did you mean "
			 "\"upstream\"?)");
}

Test(config, unknown_nested_key_did_you_mean)
{
	const char *msg = load_err("upstream:\n"
				   "  url: http://x\n"
				   "  timout: 5s\n");

	cr_expect_str_eq(msg, "strata.yaml:3: upstream.timout: unknown key "
			 "(did you mean \"timeout\"?)");
}

Test(config, unknown_key_lists_known_keys)
{
	const char *msg = load_err("cache:\n  flavour: vanilla\n");

	expect_has(msg, "strata.yaml:2: cache.flavour: unknown key");
	expect_has(msg, "memory, max_object_size");
}

Test(config, unknown_route_key)
{
	const char *msg = load_err("routes:\n"
				   "  - path: /a\n"
				   "    tll: 5s\n");

	cr_expect_str_eq(msg, "strata.yaml:3: routes[0].tll: unknown key "
			 "(did you mean \"ttl\"?)");
}

Test(config, bad_route_ttl_names_line_and_index)
{
	const char *msg = load_err("routes:\n"
				   "  - path: /a\n"
				   "    ttl: 1s\n"
				   "  - path: /b\n"
				   "    ttl: 5 minutes\n");

	cr_expect_str_eq(msg, "strata.yaml:5: routes[1].ttl: \"5 minutes\" is "
			 "not a duration (use 300s or 5m)");
}

Test(config, bad_duration_suggestions)
{
	expect_has(load_err("upstream:\n  timeout: 1.5s\n"),
		   "strata.yaml:2: upstream.timeout: \"1.5s\" is not a "
		   "duration (use 1500ms)");
	expect_has(load_err("upstream:\n  timeout: abc\n"),
		   "\"abc\" is not a duration (use a whole number with ms, s, "
		   "m or h");
	expect_has(load_err("client_timeout: -1\n"), "\"-1\" is not a duration");
	expect_has(load_err("client_timeout: 90 seconds\n"), "(use 90s)");
	expect_has(load_err("client_timeout: 2 hours\n"), "(use 7200s or 2h)");
}

Test(config, bad_size)
{
	cr_expect_str_eq(load_err("cache:\n  memory: 10 parsecs\n"),
			 "strata.yaml:2: cache.memory: \"10 parsecs\" is not a "
			 "size (use a whole number with B, KiB, MiB, GiB or TiB, "
			 "e.g. 256MiB)");
	expect_has(load_err("cache:\n  memory: 1.5G\n"), "(use 1536MiB)");
	expect_has(load_err("cache:\n  memory: 512mb\n"), "(use 512MB)");
	expect_has(load_err("max_request_body: 99999999999999999999GiB\n"),
		   "strata.yaml:1: max_request_body: 99999999999999999999GiB "
		   "is too large");
}

Test(config, out_of_range_numbers)
{
	cr_expect_str_eq(load_err("workers: 0\n"),
			 "strata.yaml:1: workers: 0 is out of range (use 1 to "
			 "1024)");
	expect_has(load_err("\nworkers: 1025\n"),
		   "strata.yaml:2: workers: 1025 is out of range");
	expect_has(load_err("max_header_size: 100B\n"),
		   "max_header_size: 100B is out of range (use 1KiB to 16MiB)");
	expect_has(load_err("upstream:\n  max_connections: 0\n"),
		   "strata.yaml:2: upstream.max_connections: 0 is out of range");
	expect_has(load_err("workers: 99999999999999999999\n"),
		   "is out of range");
}

Test(config, wrong_types)
{
	cr_expect_str_eq(load_err("routes: 5\n"),
			 "strata.yaml:1: routes: expected a list of routes, not "
			 "a scalar (e.g. - {path: /api/*, ttl: 10s})");
	cr_expect_str_eq(load_err("listen: 1.2.3.4:80\nworkers: [1]\n"),
			 "strata.yaml:2: workers: expected a whole number, not a "
			 "sequence");
	cr_expect_str_eq(load_err("workers: abc\n"),
			 "strata.yaml:1: workers: \"abc\" is not a whole number "
			 "(use e.g. 4)");
	expect_has(load_err("upstream: 5\n"),
		   "strata.yaml:1: upstream: expected a mapping of keys, not a "
		   "scalar");
	expect_has(load_err("listen:\n  host: x\n"),
		   "strata.yaml:2: listen: expected host:port");
	expect_has(load_err("access_log: maybe\n"),
		   "access_log: \"maybe\" is not a boolean (use true or false)");
	expect_has(load_err("- a\n- b\n"),
		   "strata.yaml:1: expected a mapping of keys at the top level");
	expect_has(load_err("routes:\n  - /slow\n"),
		   "strata.yaml:2: routes[0]: expected a mapping with path and "
		   "ttl, not a scalar");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    methods: GET\n"),
		   "strata.yaml:4: routes[0].methods: expected a list of "
		   "methods");
	expect_has(load_err("routes:\n  - path: [/a]\n    ttl: 1s\n"),
		   "strata.yaml:2: routes[0].path: expected a scalar, not a "
		   "sequence");
	expect_has(load_err("[a]: b\n"), "keys must be plain names");
	/* An explicit key is refused before parsing (libfyaml 0.7.12
	 * crashes on some): see explicit_keys_are_refused_with_their_line. */
	expect_has(load_err("? [a]\n: b\n"),
		   "strata.yaml:1: an explicit key");
}

Test(config, bad_addresses_at_load)
{
	expect_has(load_err("listen: 8080\n"),
		   "strata.yaml:1: listen: \"8080\" is not host:port");
	expect_has(load_err("admin:\n  listen: example.com:80\n"),
		   "strata.yaml:2: admin.listen: \"example.com:80\": host "
		   "\"example.com\" is not an IP address");
	expect_has(load_err("listen: 0.0.0.0:70000\n"), "has a bad port");
	expect_has(load_err("listen: ::1:8080\n"), "is not an IP address");
	expect_has(load_err("upstream:\n  url: ftp://x\n"),
		   "strata.yaml:2: upstream.url: \"ftp://x\" is not an http:// "
		   "or https:// URL");
	expect_has(load_err("upstream:\n  url: http://\n"), "has no valid host");
	expect_has(load_err("upstream:\n  url: http://h:0/\n"), "has a bad port");
}

Test(config, good_addresses)
{
	struct strata_config *cfg = load_ok(
		"listen: '[::]:0'\n"
		"admin:\n"
		"  listen: localhost:9000\n"
		"upstream:\n"
		"  url: HTTPS://[::1]:8443/base/\n");

	cr_expect_str_eq(cfg->listen, "[::]:0");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
}

Test(config, duplicate_key)
{
	cr_expect_str_eq(load_err("workers: 2\n"
				  "listen: 0.0.0.0:1\n"
				  "workers: 3\n"),
			 "strata.yaml:3: workers: duplicate key (first set at "
			 "line 1; keep one)");
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /a\n"
				  "    ttl: 1s\n"
				  "  - path: /b\n"
				  "    ttl: 1s\n"
				  "    ttl: 2s\n"),
			 "strata.yaml:6: routes[1].ttl: duplicate key (first set "
			 "at line 5; keep one)");
}

Test(config, duplicate_routes_name_both_lines)
{
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /slow\n"
				  "    ttl: 1s\n"
				  "  - path: /fast\n"
				  "    ttl: 1s\n"
				  "  - ttl: 2s\n"
				  "    path: /slow\n"),
			 "strata.yaml:7: routes[2].path: \"/slow\" is already "
			 "routed by routes[0] at strata.yaml:2 (remove one of "
			 "them)");
}

Test(config, bad_patterns)
{
	expect_has(load_err("routes:\n  - path: /api*\n    ttl: 1s\n"),
		   "strata.yaml:2: routes[0].path: route path \"/api*\" has "
		   "\"*\" inside a segment");
	expect_has(load_err("routes:\n  - path: api\n    ttl: 1s\n"),
		   "routes[0].path: route path \"api\" does not start with");
}

Test(config, route_field_errors)
{
	cr_expect_str_eq(load_err("routes:\n"
				  "  - path: /a\n"
				  "    ttl: 1s\n"
				  "    methods: [GET, FETCH]\n"),
			 "strata.yaml:4: routes[0].methods[1]: \"FETCH\" is not "
			 "a method (use GET, HEAD, POST, PUT, DELETE, PATCH or "
			 "OPTIONS)");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    methods: []\n"),
		   "routes[0].methods: is empty");
	expect_has(load_err("routes:\n  - path: /a\n    ttl: 1s\n"
			    "    vary: [Accept Language]\n"),
		   "strata.yaml:4: routes[0].vary[0]: \"Accept Language\" is "
		   "not a header name");
	expect_has(load_err("routes:\n  - path: /a\n"),
		   "strata.yaml:2: routes[0]: missing ttl");
	expect_has(load_err("routes:\n  - ttl: 1s\n"),
		   "strata.yaml:2: routes[0]: missing path");
}

Test(config, yaml_syntax_error_names_line)
{
	const char *msg = load_err("listen: 0.0.0.0:8080\n"
				   "workers: [1\n"
				   "upstream:\n");

	cr_expect(strncmp(msg, "strata.yaml:", 12) == 0, "%s", msg);
	expect_has(msg, "invalid YAML");
	cr_expect_str_eq(load_err("listen: 1.2.3.4:1\nworkers: }\n"),
			 "strata.yaml:2: invalid YAML: flow mapping with invalid "
			 "extra closing brace (fix the syntax at column 10)");
}

Test(config, failed_load_keeps_routes)
{
	struct strata_config *cfg = fresh();

	cr_assert_eq(strata_config_add_route(cfg, "/keep=1s", "--route", err,
					     sizeof(err)), 0, "%s", err);
	cr_expect_eq(strata_config_load_string(cfg, "routes:\n"
					       "  - path: /new\n"
					       "    ttl: 1s\n"
					       "workers: 0\n",
					       "strata.yaml", err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_assert_eq(cfg->n_routes, 1);
	cr_expect_str_eq(cfg->routes[0].path, "/keep");
	strata_config_free(&cfg);
}

Test(config, file_routes_replace_earlier_routes)
{
	struct strata_config *cfg = fresh();

	cr_assert_eq(strata_config_add_route(cfg, "/old=1s", NULL, err,
					     sizeof(err)), 0);
	cr_assert_eq(strata_config_load_string(cfg, "workers: 2\n", "a.yaml",
					       err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg->n_routes, 1, "a file without routes keeps them");
	cr_assert_eq(strata_config_load_string(cfg, "routes:\n"
					       "  - {path: /new, ttl: 2s}\n",
					       "b.yaml", err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(cfg->n_routes, 1);
	cr_expect_str_eq(cfg->routes[0].path, "/new");
	cr_expect_str_eq(cfg->routes[0].source, "b.yaml:2");
	cr_assert_eq(strata_config_load_string(cfg, "routes: []\n", "c.yaml",
					       err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg->n_routes, 0);
	strata_config_free(&cfg);
}

/* --- ${VAR} expansion ----------------------------------------------------- */

Test(config, env_expansion)
{
	struct strata_config *cfg;

	setenv("STRATA_TEST_HOST", "10.1.2.3", 1);
	setenv("STRATA_TEST_EMPTY", "", 1);
	unsetenv("STRATA_TEST_UNSET");
	cfg = load_ok("listen: ${STRATA_TEST_HOST}:9000\n"
		      "upstream:\n"
		      "  url: http://${STRATA_TEST_UNSET:-localhost}:81\n"
		      "  timeout: ${STRATA_TEST_EMPTY:-7s}\n"
		      "admin:\n"
		      "  token: \"pa$$w$${NOT}\"\n");
	cr_expect_str_eq(cfg->listen, "10.1.2.3:9000");
	cr_expect_str_eq(cfg->upstream.url, "http://localhost:81");
	cr_expect_eq(cfg->upstream.timeout_ms, 7000,
		     "the default applies to an empty variable too");
	cr_expect_str_eq(cfg->admin.token, "pa$$w${NOT}");
	strata_config_free(&cfg);
	unsetenv("STRATA_TEST_HOST");
	unsetenv("STRATA_TEST_EMPTY");
}

Test(config, env_expansion_in_sequences)
{
	struct strata_config *cfg;

	setenv("STRATA_TEST_HDR", "X-Tenant", 1);
	cfg = load_ok("routes:\n"
		      "  - path: /a\n"
		      "    ttl: 1s\n"
		      "    vary: [\"${STRATA_TEST_HDR}\"]\n");
	cr_assert_eq(cfg->routes[0].n_vary, 1);
	cr_expect_str_eq(cfg->routes[0].vary[0], "X-Tenant");
	strata_config_free(&cfg);
	unsetenv("STRATA_TEST_HDR");
}

Test(config, unset_variable_is_an_error)
{
	unsetenv("STRATA_TEST_UNSET");
	cr_expect_str_eq(load_err("admin:\n"
				  "  listen: 127.0.0.1:1\n"
				  "  token: ${STRATA_TEST_UNSET}\n"),
			 "strata.yaml:3: admin.token: environment variable "
			 "STRATA_TEST_UNSET is not set (set it, or write "
			 "${STRATA_TEST_UNSET:-default})");
}

Test(config, bad_variable_reference)
{
	cr_expect_str_eq(load_err("admin:\n  token: s3cret${OOPS\n"),
			 "strata.yaml:2: admin.token: bad variable reference "
			 "\"${OOPS\" (write ${NAME} or ${NAME:-default}, or $${ "
			 "for a literal ${)");
	expect_has(load_err("admin:\n  token: ${A-B}\n"),
		   "bad variable reference");
	expect_has(load_err("admin:\n  token: ${}\n"), "bad variable reference");
}

/* --- files ---------------------------------------------------------------- */

Test(config, load_file_missing_is_enoent)
{
	struct strata_config *cfg = fresh();

	cr_expect_eq(strata_config_load_file(cfg, "/nonexistent/strata.yaml",
					     err, sizeof(err)), -ENOENT);
	expect_has(err, "/nonexistent/strata.yaml: cannot read");
	cr_expect_null(cfg->file);
	strata_config_free(&cfg);
}

static char *temp_file(const char *text)
{
	char *path = strdup("/tmp/strata-test-XXXXXX");
	int fd;

	cr_assert_not_null(path);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(config, load_file_message_names_path)
{
	char *path = temp_file("listen: 0.0.0.0:8080\n\nworkres: 2\n");
	struct strata_config *cfg = fresh();
	char expected[256];

	cr_expect_eq(strata_config_load_file(cfg, path, err, sizeof(err)),
		     STRATA_ECONFIG);
	snprintf(expected, sizeof(expected), "%s:3: workres: unknown key "
		 "(did you mean \"workers\"?)", path);
	cr_expect_str_eq(err, expected);
	strata_config_free(&cfg);
	unlink(path);
	free(path);
}

Test(config, load_file_sets_file)
{
	char *path = temp_file("workers: 3\n");
	struct strata_config *cfg = fresh();

	cr_assert_eq(strata_config_load_file(cfg, path, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_eq(cfg->workers, 3);
	cr_expect_str_eq(cfg->file, path);
	strata_config_free(&cfg);
	unlink(path);
	free(path);
}

/* --- layers: settings and environment ------------------------------------- */

Test(config, set_overrides_file)
{
	struct strata_config *cfg = load_ok("workers: 4\n"
					    "upstream:\n  timeout: 30s\n");

	cr_assert_eq(strata_config_set(cfg, "workers", "8", "--workers", err,
				       sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "upstream.timeout", "5s",
				       "--set upstream.timeout", err,
				       sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "admin.token", "t", "--set", err,
				       sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg->workers, 8);
	cr_expect_eq(cfg->upstream.timeout_ms, 5000);
	cr_expect_str_eq(cfg->admin.token, "t");
	cr_assert_eq(strata_config_set(cfg, "admin.token", "", "--set", err,
				       sizeof(err)), 0, "%s", err);
	cr_expect_null(cfg->admin.token, "an empty string unsets");
	strata_config_free(&cfg);
}

Test(config, set_errors_name_source)
{
	struct strata_config *cfg = fresh();

	cr_expect_eq(strata_config_set(cfg, "workers", "lots", "--workers", err,
				       sizeof(err)), STRATA_ECONFIG);
	cr_expect_str_eq(err, "--workers: \"lots\" is not a whole number (use "
			 "e.g. 4)");
	cr_expect_eq(strata_config_set(cfg, "upstream.timout", "1s", "--set",
				       err, sizeof(err)), STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set: unknown key \"upstream.timout\" (did you "
			 "mean \"upstream.timeout\"?)");
	cr_expect_eq(strata_config_set(cfg, "routes", "x", "--set", err,
				       sizeof(err)), STRATA_ECONFIG);
	expect_has(err, "--route");
	strata_config_free(&cfg);
}

Test(config, apply_env_overrides_file)
{
	char *envp[] = {
		"PATH=/bin",
		"STRATA_WORKERS=6",
		"STRATA_UPSTREAM=http://10.0.0.1:9000",
		"STRATA_UPSTREAM_TIMEOUT=45s",
		"STRATA_SHUTDOWN_TIMEOUT=3s",
		"STRATA_CACHE_MEMORY=1GiB",
		"STRATA_MAX_OBJECT_SIZE=2MiB",
		"STRATA_ADMIN_LISTEN=127.0.0.1:9999",
		"STRATA_ADMIN_TOKEN=tok",
		"STRATA_ACCESS_LOG=off",
		"STRATA_CONFIG=/etc/strata.yaml",
		"STRATA_SOMETHING_NEW=1",
		NULL,
	};
	struct strata_config *cfg = load_ok("workers: 4\n"
					    "upstream:\n  timeout: 30s\n");

	cr_assert_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_eq(cfg->workers, 6);
	cr_expect_str_eq(cfg->upstream.url, "http://10.0.0.1:9000");
	cr_expect_eq(cfg->upstream.timeout_ms, 45000);
	cr_expect_eq(cfg->shutdown_timeout_ms, 3000);
	cr_expect_eq(cfg->cache.memory, 1 << 30);
	cr_expect_eq(cfg->cache.max_object_size, 2 << 20);
	cr_expect_str_eq(cfg->admin.listen, "127.0.0.1:9999");
	cr_expect_str_eq(cfg->admin.token, "tok");
	cr_expect_not(cfg->access_log);
	strata_config_free(&cfg);
}

Test(config, short_env_name_beats_generic)
{
	char *envp[] = {
		"STRATA_MEMORY=64MiB",
		"STRATA_CACHE_MEMORY=32MiB",
		NULL,
	};
	struct strata_config *cfg = fresh();

	cr_assert_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)), 0);
	cr_expect_eq(cfg->cache.memory, 64 << 20);
	strata_config_free(&cfg);
}

Test(config, apply_env_error_names_variable)
{
	char *envp[] = { "STRATA_WORKERS=0", NULL };
	struct strata_config *cfg = fresh();

	cr_expect_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "environment STRATA_WORKERS: 0 is out of range "
			 "(use 1 to 1024)");
	strata_config_free(&cfg);
}

Test(config, strata_routes_replaces_routes)
{
	char *envp[] = { "STRATA_ROUTES= /a=10s, /b/*=1m ,", NULL };
	struct strata_config *cfg = load_ok("routes:\n"
					    "  - {path: /file, ttl: 1s}\n");

	cr_assert_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(cfg->n_routes, 2);
	cr_expect_str_eq(cfg->routes[0].path, "/a");
	cr_expect_eq(cfg->routes[0].ttl_ms, 10000);
	cr_expect_str_eq(cfg->routes[1].path, "/b/*");
	cr_expect_eq(cfg->routes[1].ttl_ms, 60000);
	cr_expect_eq(cfg->routes[1].methods, GET_HEAD);
	cr_expect_str_eq(cfg->routes[1].source,
			 "environment STRATA_ROUTES \"/b/*=1m\"");
	strata_config_free(&cfg);
}

Test(config, bad_strata_routes_keeps_routes)
{
	char *envp[] = { "STRATA_ROUTES=/a=10s,/b=soon", NULL };
	struct strata_config *cfg = load_ok("routes:\n"
					    "  - {path: /file, ttl: 1s}\n");

	cr_expect_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "environment STRATA_ROUTES \"/b=soon\": \"soon\" is not "
		   "a duration");
	cr_assert_eq(cfg->n_routes, 1);
	cr_expect_str_eq(cfg->routes[0].path, "/file");
	strata_config_free(&cfg);
}

Test(config, empty_strata_routes_is_an_error)
{
	char *envp[] = { "STRATA_ROUTES= , ", NULL };
	struct strata_config *cfg = load_ok("routes:\n"
					    "  - {path: /file, ttl: 1s}\n");

	cr_expect_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "environment STRATA_ROUTES: is empty");
	cr_expect_eq(cfg->n_routes, 1);
	strata_config_free(&cfg);
}

Test(config, add_route)
{
	struct strata_config *cfg = fresh();

	cr_assert_eq(strata_config_add_route(cfg, "/api/*=10s", "--route", err,
					     sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_add_route(cfg, "/q=x=0", "--route", err,
					     sizeof(err)), 0, "%s", err);
	cr_assert_eq(cfg->n_routes, 2);
	cr_expect_str_eq(cfg->routes[0].path, "/api/*");
	cr_expect_str_eq(cfg->routes[0].name, "/api/*");
	cr_expect_eq(cfg->routes[0].ttl_ms, 10000);
	cr_expect_eq(cfg->routes[0].methods, GET_HEAD);
	cr_expect_str_eq(cfg->routes[1].path, "/q=x", "split at the last =");
	cr_expect_eq(cfg->routes[1].ttl_ms, 0);
	strata_config_free(&cfg);
}

Test(config, add_route_errors)
{
	struct strata_config *cfg = fresh();

	cr_expect_eq(strata_config_add_route(cfg, "/x=abc", "--route", err,
					     sizeof(err)), STRATA_ECONFIG);
	expect_has(err, "--route \"/x=abc\": \"abc\" is not a duration (use ");
	cr_expect_eq(strata_config_add_route(cfg, "x=1s", "--route", err,
					     sizeof(err)), STRATA_ECONFIG);
	expect_has(err, "--route \"x=1s\": route path \"x\" does not start");
	cr_expect_eq(strata_config_add_route(cfg, "/x", "--route", err,
					     sizeof(err)), STRATA_ECONFIG);
	expect_has(err, "--route \"/x\": expected PATH=TTL");
	cr_expect_eq(strata_config_add_route(cfg, "=1s", "--route", err,
					     sizeof(err)), STRATA_ECONFIG);
	cr_expect_eq(cfg->n_routes, 0);
	strata_config_free(&cfg);
}

/* --- the disk tier (cache.disk) ------------------------------------------- */

/* The default path as strata_config_new() picks it under `state`. */
static void expect_default_path(const char *state, const char *path)
{
	struct strata_config *cfg;

	if (state)
		setenv("STATE_DIRECTORY", state, 1);
	else
		unsetenv("STATE_DIRECTORY");
	cfg = fresh();
	cr_expect_str_eq(cfg->cache.disk.path, path, "STATE_DIRECTORY=%s",
			 state ? state : "(unset)");
	strata_config_free(&cfg);
}

Test(config, disk_path_defaults_to_state_directory)
{
	expect_default_path(NULL, "./strata-data");
	expect_default_path("/var/lib/strata", "/var/lib/strata");
	expect_default_path("/var/lib/strata:/var/lib/other", "/var/lib/strata");
	expect_default_path("", "./strata-data");
	expect_default_path(":/var/lib/other", "./strata-data");
	unsetenv("STATE_DIRECTORY");
}

Test(config, disk_keys)
{
	struct strata_config *cfg = load_ok("cache:\n"
					    "  memory: 64MiB\n"
					    "  disk:\n"
					    "    path: /srv/strata\n"
					    "    size: 16GiB\n"
					    "    sync: full\n"
					    "    on_corrupt: fail\n"
					    "    enabled: true\n");

	cr_expect_eq(cfg->cache.memory, 64 << 20);
	cr_expect(cfg->cache.disk.enabled);
	cr_expect_str_eq(cfg->cache.disk.path, "/srv/strata");
	cr_expect_eq(cfg->cache.disk.size, UINT64_C(16) << 30);
	cr_expect_eq(cfg->cache.disk.sync, STRATA_CONFIG_DISK_SYNC_FULL);
	cr_expect_eq(cfg->cache.disk.on_corrupt,
		     STRATA_CONFIG_DISK_CORRUPT_FAIL);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_load_string(cfg, "cache:\n"
					       "  disk:\n"
					       "    sync: None\n"
					       "    on_corrupt: MOVE\n"
					       "    size: 1MiB\n"
					       "    enabled: no\n",
					       "strata.yaml", err, sizeof(err)),
		     0, "%s", err);
	cr_expect_eq(cfg->cache.disk.sync, STRATA_CONFIG_DISK_SYNC_NONE,
		     "names are case-insensitive");
	cr_expect_eq(cfg->cache.disk.on_corrupt,
		     STRATA_CONFIG_DISK_CORRUPT_MOVE);
	cr_expect_eq(cfg->cache.disk.size, 1 << 20);
	cr_expect_not(cfg->cache.disk.enabled);
	cr_expect_str_eq(cfg->cache.disk.path, "/srv/strata");
	strata_config_free(&cfg);
}

Test(config, disk_path_expands_variables)
{
	struct strata_config *cfg;

	setenv("STRATA_TEST_STATE", "/run/state", 1);
	cfg = load_ok("cache:\n  disk:\n    path: ${STRATA_TEST_STATE}/db\n");
	cr_expect_str_eq(cfg->cache.disk.path, "/run/state/db");
	strata_config_free(&cfg);
	unsetenv("STRATA_TEST_STATE");
}

Test(config, disk_off_shorthand)
{
	static const char *const off[] = {
		"cache:\n  disk: off\n", "cache:\n  disk: false\n",
		"cache:\n  disk: no\n", "cache: {disk: OFF}\n",
	};
	struct strata_config *cfg;

	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		cfg = load_ok(off[i]);
		cr_expect_not(cfg->cache.disk.enabled, "%s", off[i]);
		cr_expect_str_eq(cfg->cache.disk.path, "./strata-data",
				 "other keys keep their defaults");
		cr_expect_eq(cfg->cache.disk.size, UINT64_C(4) << 30);
		cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0,
			     "%s", err);
		strata_config_free(&cfg);
	}
	cfg = load_ok("cache:\n  disk: off\n");
	cr_assert_eq(strata_config_load_string(cfg, "cache:\n  disk: on\n",
					       "other.yaml", err, sizeof(err)),
		     0, "%s", err);
	cr_expect(cfg->cache.disk.enabled, "disk: on turns it back on");
	cr_assert_eq(strata_config_load_string(cfg, "cache:\n  disk:\n",
					       "other.yaml", err, sizeof(err)),
		     0, "%s", err);
	cr_expect(cfg->cache.disk.enabled, "an empty disk: changes nothing");
	strata_config_free(&cfg);
}

Test(config, disk_errors_name_line_key_and_fix)
{
	cr_expect_str_eq(load_err("cache:\n"
				  "  disk:\n"
				  "    sync: fast\n"),
			 "strata.yaml:3: cache.disk.sync: \"fast\" is not a sync "
			 "mode (use none, meta or full)");
	cr_expect_str_eq(load_err("cache:\n"
				  "  disk:\n"
				  "    path: /x\n"
				  "    on_corrupt: ignore\n"),
			 "strata.yaml:4: cache.disk.on_corrupt: \"ignore\" is "
			 "not an on_corrupt action (use move or fail)");
	cr_expect_str_eq(load_err("cache:\n  disk:\n    size: 512KiB\n"),
			 "strata.yaml:3: cache.disk.size: 512KiB is out of range "
			 "(use 1MiB to 1TiB)");
	expect_has(load_err("cache:\n  disk:\n    size: 2TiB\n"),
		   "cache.disk.size: 2TiB is out of range (use 1MiB to 1TiB)");
	expect_has(load_err("cache:\n  disk:\n    size: lots\n"),
		   "strata.yaml:3: cache.disk.size: \"lots\" is not a size");
	expect_has(load_err("cache:\n  disk:\n    path: \"\"\n"),
		   "strata.yaml:3: cache.disk.path: is empty (give a directory");
	expect_has(load_err("cache:\n  disk:\n    path: ~\n"),
		   "cache.disk.path: is empty");
	cr_expect_str_eq(load_err("cache:\n  disk:\n    sync: [full]\n"),
			 "strata.yaml:3: cache.disk.sync: expected a sync mode "
			 "(none, meta or full), not a sequence");
	cr_expect_str_eq(load_err("cache:\n  disk:\n    sycn: full\n"),
			 "strata.yaml:3: cache.disk.sycn: unknown key (did you "
			 "mean \"sync\"?)");
	cr_expect_str_eq(load_err("cache:\n  disk: maybe\n"),
			 "strata.yaml:2: cache.disk: \"maybe\" is neither on nor "
			 "off (write off, on, or a mapping of keys: path, size, "
			 "sync, on_corrupt, enabled)");
	expect_has(load_err("cache:\n  disk: [a]\n"),
		   "strata.yaml:2: cache.disk: expected a mapping of keys, not "
		   "a sequence");
	expect_has(load_err("cache:\n  disk:\n    enabled: maybe\n"),
		   "cache.disk.enabled: \"maybe\" is not a boolean");
	expect_has(load_err("cache:\n  flavour: vanilla\n"), "disk");
}

Test(config, disk_set_overrides_file)
{
	struct strata_config *cfg = load_ok("cache:\n"
					    "  disk:\n"
					    "    path: /from/file\n"
					    "    sync: none\n");

	cr_assert_eq(strata_config_set(cfg, "cache.disk.path", "/from/flag",
				       "--set", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "cache.disk.sync", "FULL", "--set",
				       err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "cache.disk.size", "100MiB",
				       "--set", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "cache.disk.on_corrupt", "fail",
				       "--set", err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(cfg->cache.disk.path, "/from/flag");
	cr_expect_eq(cfg->cache.disk.sync, STRATA_CONFIG_DISK_SYNC_FULL);
	cr_expect_eq(cfg->cache.disk.size, 100 << 20);
	cr_expect_eq(cfg->cache.disk.on_corrupt,
		     STRATA_CONFIG_DISK_CORRUPT_FAIL);
	cr_assert_eq(strata_config_set(cfg, "cache.disk", "off", "--set", err,
				       sizeof(err)), 0, "%s", err);
	cr_expect_not(cfg->cache.disk.enabled);
	cr_assert_eq(strata_config_set(cfg, "cache.disk.enabled", "true",
				       "--set", err, sizeof(err)), 0, "%s", err);
	cr_expect(cfg->cache.disk.enabled);

	cr_expect_eq(strata_config_set(cfg, "cache.disk.sync", "always",
				       "--set", err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set: \"always\" is not a sync mode (use none, "
			 "meta or full)");
	cr_expect_eq(strata_config_set(cfg, "cache.disk.path", "", "--set",
				       err, sizeof(err)), STRATA_ECONFIG);
	expect_has(err, "--set: is empty (give a directory");
	cr_expect_str_eq(cfg->cache.disk.path, "/from/flag",
			 "a rejected value changes nothing");
	cr_expect_eq(strata_config_set(cfg, "cache.disk", "maybe", "--set",
				       err, sizeof(err)), STRATA_ECONFIG);
	expect_has(err, "\"maybe\" is not a boolean");
	cr_expect_eq(strata_config_set(cfg, "cache", "off", "--set", err,
				       sizeof(err)), STRATA_ECONFIG,
		     "only sections with an enabled key are switches");
	cr_expect_eq(strata_config_set(cfg, "cache.disk.synk", "full", "--set",
				       err, sizeof(err)), STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set: unknown key \"cache.disk.synk\" (did you "
			 "mean \"cache.disk.sync\"?)");
	strata_config_free(&cfg);
}

Test(config, disk_env_overrides_file)
{
	char *envp[] = {
		"STRATA_CACHE_DISK_PATH=/from/env",
		"STRATA_CACHE_DISK_SIZE=8GiB",
		"STRATA_CACHE_DISK_SYNC=full",
		"STRATA_CACHE_DISK_ON_CORRUPT=fail",
		"STRATA_CACHE_DISK_ENABLED=false",
		NULL,
	};
	char *bad[] = { "STRATA_CACHE_DISK_SYNC=sometimes", NULL };
	struct strata_config *cfg = load_ok("cache:\n"
					    "  disk:\n"
					    "    path: /from/file\n"
					    "    size: 1GiB\n");

	cr_assert_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_str_eq(cfg->cache.disk.path, "/from/env");
	cr_expect_eq(cfg->cache.disk.size, UINT64_C(8) << 30);
	cr_expect_eq(cfg->cache.disk.sync, STRATA_CONFIG_DISK_SYNC_FULL);
	cr_expect_eq(cfg->cache.disk.on_corrupt,
		     STRATA_CONFIG_DISK_CORRUPT_FAIL);
	cr_expect_not(cfg->cache.disk.enabled);
	cr_expect_eq(strata_config_apply_env(cfg, bad, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "environment STRATA_CACHE_DISK_SYNC: \"sometimes\" "
			 "is not a sync mode (use none, meta or full)");
	strata_config_free(&cfg);
}

Test(config, finish_rechecks_disk_fields)
{
	struct strata_config *cfg = fresh();

	cfg->cache.disk.sync = 7;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "cache.disk.sync: 7 is not a sync mode (use none, "
			 "meta or full)");
	cfg->cache.disk.sync = STRATA_CONFIG_DISK_SYNC_FULL;
	cfg->cache.disk.on_corrupt = -1;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "cache.disk.on_corrupt: -1 is not an on_corrupt action");
	cfg->cache.disk.on_corrupt = STRATA_CONFIG_DISK_CORRUPT_FAIL;
	cfg->cache.disk.size = 1000;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "cache.disk.size: 1000B is out of range");
	cfg->cache.disk.size = 1 << 20;
	free(cfg->cache.disk.path);
	cfg->cache.disk.path = NULL;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "cache.disk.path: is not set");
	cfg->cache.disk.path = strdup("/tmp/x");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
}

/* --- the shared tier (cache.redis) and tags ------------------------------- */

/* Every key of the section; line numbers below refer to it. */
static const char redis_example[] =
	"cache:\n"                                              /* 1 */
	"  tags_header: X-Cache-Tags\n"                         /* 2 */
	"  redis:\n"                                            /* 3 */
	"    url: redis://app:s3cret@10.0.0.5:6380/2\n"         /* 4 */
	"    prefix: strata-eu\n"                               /* 5 */
	"    timeout: 200ms\n"                                  /* 6 */
	"    pool: 16\n"                                        /* 7 */
	"    lock_ttl: 10s\n"                                   /* 8 */
	"    lock_wait: 2s\n"                                   /* 9 */
	"    purge_log: 5000\n"                                 /* 10 */
	"    queue: 1024\n";                                    /* 11 */

Test(config, redis_keys)
{
	struct strata_config *cfg = load_ok(redis_example);

	cr_expect_str_eq(cfg->cache.redis.url,
			 "redis://app:s3cret@10.0.0.5:6380/2");
	cr_expect_str_eq(cfg->cache.redis.prefix, "strata-eu");
	cr_expect_eq(cfg->cache.redis.timeout_ms, 200);
	cr_expect_eq(cfg->cache.redis.pool, 16);
	cr_expect_eq(cfg->cache.redis.lock_ttl_ms, 10000);
	cr_expect_eq(cfg->cache.redis.lock_wait_ms, 2000);
	cr_expect_eq(cfg->cache.redis.purge_log, 5000);
	cr_expect_eq(cfg->cache.redis.queue, 1024);
	cr_expect_str_eq(cfg->cache.tags_header, "X-Cache-Tags");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);

	cfg = load_ok("cache:\n  redis:\n    url: unix:///run/redis.sock?db=3\n");
	cr_expect_str_eq(cfg->cache.redis.url, "unix:///run/redis.sock?db=3");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);

	cfg = load_ok("cache:\n  redis:\n    url: \"\"\n");
	cr_expect_null(cfg->cache.redis.url, "an empty URL is off");
	strata_config_free(&cfg);
}

Test(config, redis_bounds_are_accepted)
{
	struct strata_config *cfg = load_ok("cache:\n"
					    "  redis:\n"
					    "    timeout: 1ms\n"
					    "    pool: 1\n"
					    "    lock_ttl: 100ms\n"
					    "    lock_wait: 0\n"
					    "    purge_log: 100\n"
					    "    queue: 16\n");

	cr_expect_eq(cfg->cache.redis.timeout_ms, 1);
	cr_expect_eq(cfg->cache.redis.pool, 1);
	cr_expect_eq(cfg->cache.redis.lock_ttl_ms, 100);
	cr_expect_eq(cfg->cache.redis.lock_wait_ms, 0);
	cr_expect_eq(cfg->cache.redis.purge_log, 100);
	cr_expect_eq(cfg->cache.redis.queue, 16);
	strata_config_free(&cfg);
	cfg = load_ok("cache:\n"
		      "  redis:\n"
		      "    timeout: 60s\n"
		      "    pool: 64\n"
		      "    lock_ttl: 1h\n"
		      "    lock_wait: 1h\n"
		      "    purge_log: 100000000\n"
		      "    queue: 1048576\n");
	cr_expect_eq(cfg->cache.redis.timeout_ms, 60000);
	cr_expect_eq(cfg->cache.redis.pool, 64);
	cr_expect_eq(cfg->cache.redis.lock_ttl_ms, 3600000);
	cr_expect_eq(cfg->cache.redis.lock_wait_ms, 3600000);
	cr_expect_eq(cfg->cache.redis.purge_log, 100000000);
	cr_expect_eq(cfg->cache.redis.queue, 1048576);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
}

Test(config, redis_set_overrides_file)
{
	struct strata_config *cfg = load_ok(redis_example);
	static const char *const keys[][2] = {
		{ "cache.redis.url", "redis://127.0.0.1:7000" },
		{ "cache.redis.prefix", "staging" },
		{ "cache.redis.timeout", "1s" },
		{ "cache.redis.pool", "4" },
		{ "cache.redis.lock_ttl", "5m" },
		{ "cache.redis.lock_wait", "0" },
		{ "cache.redis.purge_log", "250000" },
		{ "cache.redis.queue", "65536" },
		{ "cache.tags_header", "xkey" },
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert_eq(strata_config_set(cfg, keys[i][0], keys[i][1],
					       "--set", err, sizeof(err)), 0,
			     "%s: %s", keys[i][0], err);
	cr_expect_str_eq(cfg->cache.redis.url, "redis://127.0.0.1:7000");
	cr_expect_str_eq(cfg->cache.redis.prefix, "staging");
	cr_expect_eq(cfg->cache.redis.timeout_ms, 1000);
	cr_expect_eq(cfg->cache.redis.pool, 4);
	cr_expect_eq(cfg->cache.redis.lock_ttl_ms, 300000);
	cr_expect_eq(cfg->cache.redis.lock_wait_ms, 0);
	cr_expect_eq(cfg->cache.redis.purge_log, 250000);
	cr_expect_eq(cfg->cache.redis.queue, 65536);
	cr_expect_str_eq(cfg->cache.tags_header, "xkey");

	cr_expect_eq(strata_config_set(cfg, "cache.redis.pool", "65", "--set",
				       err, sizeof(err)), STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set: 65 is out of range (use 1 to 64)");
	cr_expect_eq(cfg->cache.redis.pool, 4, "a rejected value changes "
		     "nothing");
	cr_expect_eq(strata_config_set(cfg, "cache.redis.timeout", "2m",
				       "--set", err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "--set: 2m is out of range (use 1ms to ");
	cr_expect_eq(strata_config_set(cfg, "cache.redis.pol", "4", "--set",
				       err, sizeof(err)), STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set: unknown key \"cache.redis.pol\" (did you "
			 "mean \"cache.redis.pool\"?)");
	strata_config_free(&cfg);
}

Test(config, redis_env_overrides_file)
{
	char *envp[] = {
		"STRATA_REDIS_URL=redis://:pw@10.1.1.1:6379",
		"STRATA_CACHE_REDIS_TIMEOUT=75ms",
		"STRATA_CACHE_REDIS_PREFIX=from-env",
		"STRATA_CACHE_REDIS_QUEUE=4096",
		"STRATA_CACHE_TAGS_HEADER=Cache-Tag",
		NULL,
	};
	char *both[] = {
		"STRATA_CACHE_REDIS_URL=redis://generic:6379",
		"STRATA_REDIS_URL=redis://short:6379",
		NULL,
	};
	char *generic[] = { "STRATA_CACHE_REDIS_URL=redis://generic:6379",
			    NULL };
	char *off[] = { "STRATA_REDIS_URL=", NULL };
	struct strata_config *cfg = load_ok(redis_example);

	cr_assert_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_str_eq(cfg->cache.redis.url, "redis://:pw@10.1.1.1:6379");
	cr_expect_eq(cfg->cache.redis.timeout_ms, 75);
	cr_expect_str_eq(cfg->cache.redis.prefix, "from-env");
	cr_expect_eq(cfg->cache.redis.queue, 4096);
	cr_expect_str_eq(cfg->cache.tags_header, "Cache-Tag");
	cr_expect_eq(cfg->cache.redis.pool, 16, "the file's, untouched");
	cr_assert_eq(strata_config_apply_env(cfg, both, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_str_eq(cfg->cache.redis.url, "redis://short:6379",
			 "the short name wins");
	cr_assert_eq(strata_config_apply_env(cfg, generic, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_str_eq(cfg->cache.redis.url, "redis://generic:6379");
	cr_assert_eq(strata_config_apply_env(cfg, off, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_null(cfg->cache.redis.url, "an empty URL turns the tier off");
	strata_config_free(&cfg);
}

Test(config, redis_env_errors_name_variable)
{
	char *timeout[] = { "STRATA_CACHE_REDIS_TIMEOUT=0", NULL };
	char *url[] = { "STRATA_REDIS_URL=redis://:hunter2@cache:0", NULL };
	struct strata_config *cfg = fresh();

	cr_expect_eq(strata_config_apply_env(cfg, timeout, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "environment STRATA_CACHE_REDIS_TIMEOUT: 0 is out of "
		   "range (use 1ms to ");
	cr_expect_eq(strata_config_apply_env(cfg, url, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "environment STRATA_REDIS_URL: ");
	expect_has(err, "redis://:***@cache:0");
	cr_expect_null(strstr(err, "hunter2"), "password shown: %s", err);
	strata_config_free(&cfg);
}

Test(config, redis_bad_url_names_line_key_and_hides_password)
{
	static const char *const bad[] = {
		"redis://:hunter2@cache:99999",       /* bad port */
		"redis://app:hunter2@cache/db0",      /* bad database */
		"redis://:hunter2@",                  /* no host */
		"http://:hunter2@cache:6379",         /* wrong scheme */
		"rediss://:hunter2@cache:6379",       /* TLS */
		"hunter2@cache:6379",                 /* no scheme */
		":hunter2@cache:6379",                /* no scheme */
		"redis://hunter2@cache:6379",         /* no ':' */
		"redis://:hun/ter2@cache:6379",       /* '/' in the password */
		"redis://:hun@ter2@cache:6379",       /* '@' in the password */
		"redis://:hunter2@cache:6379/0 x",    /* a space */
	};
	char yaml[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *msg;

		snprintf(yaml, sizeof(yaml), "cache:\n  redis:\n    url: "
			 "\"%s\"\n", bad[i]);
		msg = load_err(yaml);
		cr_expect(strncmp(msg, "strata.yaml:3: cache.redis.url: ",
				  32) == 0, "%s: %s", bad[i], msg);
		cr_expect_null(strstr(msg, "hunter2"), "password shown: %s",
			       msg);
		cr_expect_null(strstr(msg, "hun"), "part of the password "
			       "shown: %s", msg);
		cr_expect(strstr(msg, "(") != NULL, "no fix: %s", msg);
	}
	expect_has(load_err("cache:\n  redis:\n    url: redis://:pw@cache:0\n"),
		   "redis URL \"redis://:***@cache:0\"");
	expect_has(load_err("cache:\n  redis:\n    url: redis://cache:6379/x\n"),
		   "redis URL \"redis://cache:6379/x\"");
	expect_has(load_err("cache:\n  redis:\n    url: [redis]\n"),
		   "strata.yaml:3: cache.redis.url: expected a Redis URL");
}

Test(config, redis_bad_url_from_set_hides_password)
{
	struct strata_config *cfg = fresh();

	cr_expect_eq(strata_config_set(cfg, "cache.redis.url",
				       "redis://u:hunter2@cache:x", "--set",
				       err, sizeof(err)), STRATA_ECONFIG);
	expect_has(err, "--set: redis URL \"redis://u:***@cache:x\"");
	cr_expect_null(strstr(err, "hunter2"), "%s", err);
	cr_expect_null(cfg->cache.redis.url, "a rejected value changes nothing");
	strata_config_free(&cfg);
}

Test(config, redis_out_of_range)
{
	cr_expect_str_eq(load_err("cache:\n  redis:\n    pool: 0\n"),
			 "strata.yaml:3: cache.redis.pool: 0 is out of range "
			 "(use 1 to 64)");
	expect_has(load_err("cache:\n  redis:\n    pool: 65\n"),
		   "strata.yaml:3: cache.redis.pool: 65 is out of range");
	expect_has(load_err("cache:\n  redis:\n    pool: many\n"),
		   "cache.redis.pool: \"many\" is not a whole number");
	expect_has(load_err("cache:\n  redis:\n    timeout: 0ms\n"),
		   "strata.yaml:3: cache.redis.timeout: 0ms is out of range "
		   "(use 1ms to ");
	expect_has(load_err("cache:\n  redis:\n    timeout: 61s\n"),
		   "cache.redis.timeout: 61s is out of range");
	expect_has(load_err("cache:\n  redis:\n    timeout: 1.5s\n"),
		   "cache.redis.timeout: \"1.5s\" is not a duration (use "
		   "1500ms)");
	expect_has(load_err("cache:\n  redis:\n    lock_ttl: 99ms\n"),
		   "cache.redis.lock_ttl: 99ms is out of range (use 100ms to "
		   "1h)");
	expect_has(load_err("cache:\n  redis:\n    lock_wait: 61m\n"),
		   "cache.redis.lock_wait: 61m is out of range (use 0s to 1h)");
	cr_expect_str_eq(load_err("cache:\n  redis:\n    purge_log: 99\n"),
			 "strata.yaml:3: cache.redis.purge_log: 99 is out of "
			 "range (use 100 to 100000000)");
	expect_has(load_err("cache:\n  redis:\n    queue: 1048577\n"),
		   "cache.redis.queue: 1048577 is out of range (use 16 to "
		   "1048576)");
	expect_has(load_err("cache:\n  redis:\n    queue: 8KiB\n"),
		   "cache.redis.queue: \"8KiB\" is not a whole number");
}

Test(config, redis_prefix_errors)
{
	struct strata_config *cfg;
	char yaml[256];

	expect_has(load_err("cache:\n  redis:\n    prefix: \"\"\n"),
		   "strata.yaml:3: cache.redis.prefix: is empty (use e.g. "
		   "strata");
	expect_has(load_err("cache:\n  redis:\n    prefix: ~\n"),
		   "cache.redis.prefix: is empty");
	expect_has(load_err("cache:\n  redis:\n    prefix: my cache\n"),
		   "strata.yaml:3: cache.redis.prefix: \"my cache\" contains a "
		   "space (use one word");
	expect_has(load_err("cache:\n  redis:\n    prefix: \"a\\tb\"\n"),
		   "cache.redis.prefix: contains a control character");
	snprintf(yaml, sizeof(yaml), "cache:\n  redis:\n    prefix: %0129d\n",
		 0);
	expect_has(load_err(yaml), "cache.redis.prefix: is 129 bytes long (use "
		   "at most 128");
	snprintf(yaml, sizeof(yaml), "cache:\n  redis:\n    prefix: %0128d\n",
		 0);
	cfg = load_ok(yaml);
	cr_expect_eq(strlen(cfg->cache.redis.prefix), 128);
	strata_config_free(&cfg);
}

Test(config, redis_off_shorthand)
{
	static const char *const off[] = {
		"cache:\n  redis: off\n", "cache:\n  redis: false\n",
		"cache: {redis: OFF}\n",
	};
	struct strata_config *cfg;

	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		cfg = load_ok(redis_example);
		cr_assert_eq(strata_config_load_string(cfg, off[i],
						       "override.yaml", err,
						       sizeof(err)), 0,
			     "%s: %s", off[i], err);
		cr_expect_null(cfg->cache.redis.url, "%s", off[i]);
		cr_expect_str_eq(cfg->cache.redis.prefix, "strata-eu",
				 "other keys are kept");
		cr_expect_eq(cfg->cache.redis.pool, 16);
		strata_config_free(&cfg);
	}
	cfg = load_ok(redis_example);
	cr_assert_eq(strata_config_load_string(cfg, "cache:\n  redis:\n",
					       "override.yaml", err,
					       sizeof(err)), 0, "%s", err);
	cr_expect_not_null(cfg->cache.redis.url, "an empty redis: changes "
			   "nothing");
	cr_assert_eq(strata_config_set(cfg, "cache.redis", "off", "--set", err,
				       sizeof(err)), 0, "%s", err);
	cr_expect_null(cfg->cache.redis.url);
	cr_expect_eq(strata_config_set(cfg, "cache.redis", "on", "--set", err,
				       sizeof(err)), STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set: takes only off here (to turn the tier on, "
			 "set cache.redis.url, e.g. redis://127.0.0.1:6379)");
	cr_expect_eq(strata_config_set(cfg, "cache.redis",
				       "redis://:hunter2@cache", "--set", err,
				       sizeof(err)), STRATA_ECONFIG);
	cr_expect_null(strstr(err, "hunter2"), "%s", err);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);

	cr_expect_str_eq(load_err("cache:\n  redis: on\n"),
			 "strata.yaml:2: cache.redis: takes only off here (to "
			 "turn the tier on, set cache.redis.url, e.g. "
			 "redis://127.0.0.1:6379)");
	expect_has(load_err("cache:\n  redis: redis://:hunter2@cache\n"),
		   "strata.yaml:2: cache.redis: takes only off");
	cr_expect_null(strstr(err, "hunter2"), "%s", err);
	expect_has(load_err("cache:\n  redis: [a]\n"),
		   "strata.yaml:2: cache.redis: expected a mapping of keys");
	expect_has(load_err("cache:\n  redis:\n    urll: redis://cache\n"),
		   "strata.yaml:3: cache.redis.urll: unknown key (did you mean "
		   "\"url\"?)");
}

Test(config, tags_header)
{
	struct strata_config *cfg = load_ok("cache:\n  tags_header: \"\"\n");

	cr_expect_str_eq(cfg->cache.tags_header, "", "\"\": no tags");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(cfg->cache.tags_header, "");
	strata_config_free(&cfg);
	cfg = load_ok("cache:\n  tags_header: ~\n");
	cr_expect_str_eq(cfg->cache.tags_header, "");
	cr_assert_eq(strata_config_set(cfg, "cache.tags_header", "Cache-Tag",
				       "--set", err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(cfg->cache.tags_header, "Cache-Tag");
	cr_assert_eq(strata_config_set(cfg, "cache.tags_header", "", "--set",
				       err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(cfg->cache.tags_header, "");
	strata_config_free(&cfg);

	cr_expect_str_eq(load_err("cache:\n  tags_header: Surrogate Key\n"),
			 "strata.yaml:2: cache.tags_header: \"Surrogate Key\" is "
			 "not a header name (use e.g. Surrogate-Key, or \"\" for "
			 "no tags)");
	expect_has(load_err("cache:\n  tags_header: \"X-Tags:\"\n"),
		   "cache.tags_header: \"X-Tags:\" is not a header name");
	expect_has(load_err("cache:\n  tags_header: \"X-\\nTags\"\n"),
		   "cache.tags_header: contains a control character");
	expect_has(load_err("cache:\n  tags_header: [a, b]\n"),
		   "cache.tags_header: expected a header name");
}

Test(config, memory_zero_is_accepted)
{
	struct strata_config *cfg = load_ok("cache:\n  memory: 0\n");

	cr_expect_eq(cfg->cache.memory, 0);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "cache.memory", "0", "--memory",
				       err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg->cache.memory, 0);
	strata_config_free(&cfg);
}

Test(config, finish_rechecks_redis_fields)
{
	struct strata_config *cfg = fresh();

	cfg->cache.redis.pool = 0;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "cache.redis.pool: 0 is out of range (use 1 to "
			 "64)");
	cfg->cache.redis.pool = 8;
	cfg->cache.redis.queue = 0;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "cache.redis.queue: 0 is out of range");
	cfg->cache.redis.queue = 8192;
	cfg->cache.redis.url = strdup("redis://:hunter2@cache:0");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "cache.redis.url: redis URL \"redis://:***@cache:0\"");
	cr_expect_null(strstr(err, "hunter2"), "%s", err);
	cfg->cache.redis.url[0] = '\0';
	free(cfg->cache.redis.prefix);
	cfg->cache.redis.prefix = NULL;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "cache.redis.prefix: is not set (set it, e.g. strata)");
	cfg->cache.redis.prefix = strdup("strata");
	free(cfg->cache.tags_header);
	cfg->cache.tags_header = NULL;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	cr_expect_null(cfg->cache.redis.url, "\"\" becomes NULL: off");
	cr_expect_str_eq(cfg->cache.tags_header, "", "NULL becomes \"\": none");
	free(cfg->cache.tags_header);
	cfg->cache.tags_header = strdup("a b");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "cache.tags_header: \"a b\" is not a header name");
	strata_config_free(&cfg);
}

/* --- finish --------------------------------------------------------------- */

Test(config, admin_not_loopback_needs_token)
{
	struct strata_config *cfg = load_ok("admin:\n  listen: 0.0.0.0:8081\n");

	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "admin.listen 0.0.0.0:8081 is not loopback: set "
			 "admin.token (or STRATA_ADMIN_TOKEN)");
	cr_assert_eq(strata_config_set(cfg, "admin.token", "", "--set", err,
				       sizeof(err)), 0);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG, "an empty token is no token");
	cr_assert_eq(strata_config_set(cfg, "admin.token", "secret", "--set",
				       err, sizeof(err)), 0);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
}

Test(config, loopback_admin_forms)
{
	static const char *const loopback[] = {
		"127.0.0.1:1", "127.9.9.9:1", "localhost:1", "[::1]:1",
		"[::ffff:127.0.0.1]:1",
	};
	static const char *const exposed[] = {
		"0.0.0.0:1", "10.0.0.1:1", "[::]:1", "[::ffff:10.0.0.1]:1",
	};
	struct strata_config *cfg = fresh();

	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		cr_assert_eq(strata_config_set(cfg, "admin.listen", loopback[i],
					       "--admin-listen", err,
					       sizeof(err)), 0, "%s", err);
		cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0,
			     "%s: %s", loopback[i], err);
	}
	for (size_t i = 0; i < sizeof(exposed) / sizeof(exposed[0]); i++) {
		cr_assert_eq(strata_config_set(cfg, "admin.listen", exposed[i],
					       "--admin-listen", err,
					       sizeof(err)), 0, "%s", err);
		cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
			     STRATA_ECONFIG, "%s accepted", exposed[i]);
	}
	strata_config_free(&cfg);
}

Test(config, finish_rechecks_struct_fields)
{
	struct strata_config *cfg = fresh();

	cfg->workers = 0;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "workers: 0 is out of range (use 1 to 1024)");
	cfg->workers = 2;
	free(cfg->upstream.url);
	cfg->upstream.url = strdup("localhost:8000");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "upstream.url: \"localhost:8000\" is not an http://");
	strata_config_free(&cfg);
}

Test(config, finish_rejects_same_listen_and_admin)
{
	struct strata_config *cfg = load_ok("listen: 127.0.0.1:9000\n"
					    "admin:\n  listen: 127.0.0.1:9000\n");

	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	expect_has(err, "admin.listen 127.0.0.1:9000 is the same as listen");
	cr_assert_eq(strata_config_set(cfg, "listen", "127.0.0.1:0", "--listen",
				       err, sizeof(err)), 0);
	cr_assert_eq(strata_config_set(cfg, "admin.listen", "127.0.0.1:0",
				       "--admin-listen", err, sizeof(err)), 0);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0,
		     "port 0 twice is two free ports: %s", err);
	strata_config_free(&cfg);
}

Test(config, finish_finds_duplicates_across_layers)
{
	struct strata_config *cfg = load_ok("routes:\n"
					    "  - path: /slow\n"
					    "    ttl: 60s\n");

	cr_assert_eq(strata_config_add_route(cfg, "/slow=5s", "--route", err,
					     sizeof(err)), 0, "%s", err);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "--route \"/slow=5s\": route path \"/slow\" is "
			 "already routed at strata.yaml:2 (remove one of them)");
	strata_config_free(&cfg);
}

/* --- log ------------------------------------------------------------------ */

Test(config, log_keys_from_file)
{
	struct strata_config *cfg = load_ok("log:\n"
					    "  format: json\n"
					    "  level: debug\n"
					    "  access: false\n");

	cr_expect_eq(cfg->log.format, STRATA_CONFIG_LOG_JSON);
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_DEBUG);
	cr_expect_not(cfg->access_log, "log.access is access_log");
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);

	cfg = load_ok("log:\n  level: ERROR\n  format: Text\n");
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_ERROR);
	cr_expect_eq(cfg->log.format, STRATA_CONFIG_LOG_TEXT);
	strata_config_free(&cfg);

	cfg = load_ok("log:\n  level: warn\n");
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_WARN);
	cr_expect_eq(cfg->log.format, STRATA_CONFIG_LOG_TEXT, "default kept");
	strata_config_free(&cfg);

	cfg = load_ok("log:\n");
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_INFO, "empty section");
	strata_config_free(&cfg);
}

Test(config, access_log_and_log_access_are_one_setting)
{
	struct strata_config *cfg = load_ok("access_log: false\n"
					    "log:\n"
					    "  access: true\n");

	cr_expect(cfg->access_log, "the later line wins");
	strata_config_free(&cfg);
	cfg = load_ok("log:\n"
		      "  access: true\n"
		      "access_log: off\n");
	cr_expect_not(cfg->access_log, "the later line wins");
	cr_assert_eq(strata_config_set(cfg, "log.access", "yes", "--set", err,
				       sizeof(err)), 0, "%s", err);
	cr_expect(cfg->access_log);
	cr_assert_eq(strata_config_set(cfg, "access_log", "no", "--set", err,
				       sizeof(err)), 0, "%s", err);
	cr_expect_not(cfg->access_log);
	strata_config_free(&cfg);
}

Test(config, log_set_overrides_file)
{
	struct strata_config *cfg = load_ok("log:\n"
					    "  format: json\n"
					    "  level: error\n");

	cr_assert_eq(strata_config_set(cfg, "log.format", "text",
				       "--set log.format", err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(strata_config_set(cfg, "log.level", "debug",
				       "--set log.level", err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_eq(cfg->log.format, STRATA_CONFIG_LOG_TEXT);
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_DEBUG);

	cr_expect_eq(strata_config_set(cfg, "log.format", "xml",
				       "--set log.format", err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set log.format: \"xml\" is not a log format "
			 "(use text or json)");
	cr_expect_eq(strata_config_set(cfg, "log.level", "verbose",
				       "--set log.level", err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set log.level: \"verbose\" is not a log "
			 "level (use error, warn, info or debug)");
	cr_expect_eq(cfg->log.format, STRATA_CONFIG_LOG_TEXT,
		     "a rejected value changes nothing");
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_DEBUG);
	cr_expect_eq(strata_config_set(cfg, "log.levle", "info", "--set", err,
				       sizeof(err)), STRATA_ECONFIG);
	cr_expect_str_eq(err, "--set: unknown key \"log.levle\" (did you "
			 "mean \"log.level\"?)");
	cr_expect_eq(strata_config_set(cfg, "log", "off", "--set", err,
				       sizeof(err)), STRATA_ECONFIG,
		     "log is not a switch");
	strata_config_free(&cfg);
}

Test(config, log_env_overrides_file)
{
	char *envp[] = {
		"STRATA_LOG_FORMAT=json",
		"STRATA_LOG_LEVEL=warn",
		NULL,
	};
	char *both[] = {
		"STRATA_LOG_ACCESS=true",
		"STRATA_ACCESS_LOG=false",
		NULL,
	};
	char *old_only[] = { "STRATA_ACCESS_LOG=false", NULL };
	char *bad[] = { "STRATA_LOG_LEVEL=loud", NULL };
	struct strata_config *cfg = load_ok("log:\n"
					    "  format: text\n"
					    "  level: debug\n");

	cr_assert_eq(strata_config_apply_env(cfg, envp, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_eq(cfg->log.format, STRATA_CONFIG_LOG_JSON);
	cr_expect_eq(cfg->log.level, STRATA_CONFIG_LOG_WARN);

	cr_assert_eq(strata_config_apply_env(cfg, old_only, err, sizeof(err)),
		     0, "%s", err);
	cr_expect_not(cfg->access_log);
	cr_assert_eq(strata_config_apply_env(cfg, both, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect(cfg->access_log, "STRATA_LOG_ACCESS beats STRATA_ACCESS_LOG");

	cr_expect_eq(strata_config_apply_env(cfg, bad, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "environment STRATA_LOG_LEVEL: \"loud\" is not "
			 "a log level (use error, warn, info or debug)");
	strata_config_free(&cfg);
}

Test(config, log_errors_name_line_key_and_fix)
{
	cr_expect_str_eq(load_err("listen: 127.0.0.1:8080\n"
				  "log:\n"
				  "  format: xml\n"),
			 "strata.yaml:3: log.format: \"xml\" is not a log "
			 "format (use text or json)");
	cr_expect_str_eq(load_err("log:\n"
				  "  format: json\n"
				  "  level: trace\n"),
			 "strata.yaml:3: log.level: \"trace\" is not a log "
			 "level (use error, warn, info or debug)");
	cr_expect_str_eq(load_err("log:\n  access: maybe\n"),
			 "strata.yaml:2: log.access: \"maybe\" is not a "
			 "boolean (use true or false)");
	cr_expect_str_eq(load_err("log:\n  formt: json\n"),
			 "strata.yaml:2: log.formt: unknown key (did you mean "
			 "\"format\"?)");
	cr_expect_str_eq(load_err("log:\n  level: [info]\n"),
			 "strata.yaml:2: log.level: expected a log level "
			 "(error, warn, info or debug), not a sequence");
	expect_has(load_err("log: json\n"),
		   "strata.yaml:1: log: expected a mapping of keys, not a "
		   "scalar");
	cr_expect_str_eq(load_err("lgo:\n  level: info\n"),
			 "strata.yaml:1: lgo: unknown key (did you mean "
			 "\"log\"?)");
}

Test(config, finish_rechecks_log_fields)
{
	struct strata_config *cfg = fresh();

	cfg->log.format = 2;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "log.format: 2 is not a log format (use text or "
			 "json)");
	cfg->log.format = STRATA_CONFIG_LOG_JSON;
	cfg->log.level = -1;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)),
		     STRATA_ECONFIG);
	cr_expect_str_eq(err, "log.level: -1 is not a log level (use error, "
			 "warn, info or debug)");
	cfg->log.level = STRATA_CONFIG_LOG_DEBUG;
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);
}

/* --- HTTP caching route options (ttl: origin and friends) ------------------- */

Test(config, route_http_caching_options)
{
	struct strata_config *cfg = load_ok(
		"routes:\n"
		"  - path: /a\n"
		"    ttl: origin\n"
		"    default_ttl: 30s\n"
		"    stale_while_revalidate: 10s\n"
		"    stale_if_error: 1m\n"
		"    keep: 2h\n"
		"    etag: generate\n"
		"  - path: /b\n"
		"    ttl: 5s\n");

	cr_assert_eq(cfg->n_routes, 2);
	cr_expect(cfg->routes[0].ttl_origin);
	cr_expect_eq(cfg->routes[0].ttl_ms, 0);
	cr_expect_eq(cfg->routes[0].default_ttl_ms, 30000);
	cr_expect_eq(cfg->routes[0].stale_while_revalidate_ms, 10000);
	cr_expect_eq(cfg->routes[0].stale_if_error_ms, 60000);
	cr_expect_eq(cfg->routes[0].keep_ms, 7200000);
	cr_expect(cfg->routes[0].etag_generate);
	cr_expect_not(cfg->routes[1].ttl_origin);
	cr_expect_eq(cfg->routes[1].ttl_ms, 5000);
	cr_expect_eq(cfg->routes[1].keep_ms, 3600000, "keep defaults to 1h");
	cr_expect_eq(cfg->routes[1].default_ttl_ms, 0);
	cr_expect_not(cfg->routes[1].etag_generate);
	cr_expect_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s", err);
	strata_config_free(&cfg);

	cfg = fresh();
	cr_assert_eq(strata_config_add_route(cfg, "/o/*=origin", "--route", err,
					     sizeof(err)),
		     0, "%s", err);
	cr_expect(cfg->routes[0].ttl_origin);
	strata_config_free(&cfg);
}

Test(config, route_http_caching_option_errors)
{
	expect_has(load_err("routes:\n"
			    "  - path: /a\n"
			    "    ttl: origin\n"
			    "    etag: strong\n"),
		   "strata.yaml:4: routes[0].etag: \"strong\" is not an etag "
		   "mode");
	expect_has(load_err("routes:\n"
			    "  - path: /a\n"
			    "    ttl: 1s\n"
			    "    stale_if_error: forever\n"),
		   "strata.yaml:4: routes[0].stale_if_error:");
	expect_has(load_err("routes:\n"
			    "  - path: /a\n"
			    "    ttl: 1s\n"
			    "    keeps: 1h\n"),
		   "keep");
}

Test(config, text_that_is_not_utf8_is_refused_with_its_line)
{
	/* "%" and 0xff made libfyaml 0.8 loop forever (tests/fuzz). */
	static const char *const bad[] = {
		"%\xff\n", "listen: 127.0.0.1:80\n# caf\xe9\n",
		"a: \xed\xa0\x80\n", "a: \xc0\xaf\n", "a: \xf4\x90\x80\x80\n",
	};
	static const unsigned lines[] = {1, 2, 1, 1, 1};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct strata_config *cfg = strata_config_new();
		char err[STRATA_CONFIG_ERRLEN], where[32];

		cr_assert_not_null(cfg);
		cr_expect_eq(strata_config_load_string(cfg, bad[i], "t.yaml",
						       err, sizeof(err)),
			     STRATA_ECONFIG, "[%zu] accepted", i);
		snprintf(where, sizeof(where), "t.yaml:%u: not valid UTF-8",
			 lines[i]);
		cr_expect(strncmp(err, where, strlen(where)) == 0, "[%zu] %s",
			  i, err);
		strata_config_free(&cfg);
	}
}

Test(config, explicit_keys_are_refused_with_their_line)
{
	/* "? d:<tab>-" crashed libfyaml 0.7.12 (tests/fuzz). */
	static const char *const bad[] = {
		"? d:\t-", "listen: 127.0.0.1:80\n? x\n: y\n",
		"routes:\n  - ? a\n", "a: {? b: c}\n",
	};
	static const unsigned lines[] = {1, 2, 2, 1};
	static const char *const fine[] = {
		"routes:\n  - path: /a\n    name: 'what? this'\n    ttl: 1s\n",
		"routes: [{path: /q, ttl: 1s}]\n", "# what? nothing\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct strata_config *cfg = strata_config_new();
		char err[STRATA_CONFIG_ERRLEN], where[48];

		cr_assert_not_null(cfg);
		cr_expect_eq(strata_config_load_string(cfg, bad[i], "t.yaml",
						       err, sizeof(err)),
			     STRATA_ECONFIG, "[%zu] accepted", i);
		snprintf(where, sizeof(where), "t.yaml:%u: an explicit key",
			 lines[i]);
		cr_expect(strncmp(err, where, strlen(where)) == 0, "[%zu] %s",
			  i, err);
		strata_config_free(&cfg);
	}
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
		struct strata_config *cfg = strata_config_new();
		char err[STRATA_CONFIG_ERRLEN];

		cr_assert_not_null(cfg);
		cr_expect_eq(strata_config_load_string(cfg, fine[i], "t.yaml",
						       err, sizeof(err)),
			     0, "[%zu] %s", i, err);
		strata_config_free(&cfg);
	}
}
