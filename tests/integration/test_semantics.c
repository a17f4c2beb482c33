/*
 * test_semantics.c: HTTP caching semantics (RFC 9111, RFC 9110) through
 * the real `strata` program: one test per rule, each driven by the test
 * origin (tests/helpers/origin.h) setting the headers under test, and
 * asserting the status, the Cache-Status and how many requests reached
 * the origin.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"
#include "../helpers/raw_origin.h"

#define MAX_ARGS 32

static struct origin *origin;
static struct proc *strata;

static void setup(void)
{
	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
}

static void teardown(void)
{
	proc_stop(&strata);
	origin_stop(&origin);
}

TestSuite(semantics, .init = setup, .fini = teardown, .timeout = 60);

/* strata on the origin with `extra` arguments (routes...). */
static void start(const char *const *extra)
{
	char upstream[64];
	const char *args[MAX_ARGS] = {"--upstream", upstream};
	size_t n = 2;
	struct proc_spec spec = {.args = args};

	origin_url(origin, "", upstream, sizeof(upstream));
	for (; extra != NULL && *extra != NULL && n < MAX_ARGS - 1; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
}

struct answer {
	long status;
	char cache_status[160];
	char body[256];
};

static struct answer req(const char *method, const char *path,
			 const char *const *headers)
{
	struct answer a = {0};
	char url[1024];
	struct client_response r;

	proc_url(strata, path, url, sizeof(url));
	a.status = client_request(method, url, headers, NULL, 0, &r);
	snprintf(a.cache_status, sizeof(a.cache_status), "%s",
		 client_header(&r, "Cache-Status") ?: "");
	snprintf(a.body, sizeof(a.body), "%s", r.body ? r.body : "");
	client_response_free(&r);
	return a;
}

static bool has(const struct answer *a, const char *part)
{
	return strstr(a->cache_status, part) != NULL;
}

/* --- invalidation by unsafe methods (RFC 9111 section 4.4) ---------------- */

/* Wait (bounded) until `path` is a miss again; the purge runs behind
 * the POST's answer. */
static bool becomes_miss(const char *path)
{
	for (int i = 0; i < 100; i++) {
		struct answer a = req("GET", path, NULL);

		if (has(&a, "fwd=miss"))
			return true;
		usleep((useconds_t)proc_scaled_ms(10) * 1000);
	}
	return false;
}

Test(semantics, a_successful_post_invalidates_its_target)
{
	const char *const routes[] = {"--route", "/echo/*=60s", NULL};
	struct answer a;

	start(routes);
	req("GET", "/echo/item", NULL);
	req("GET", "/echo/item?v=2", NULL);
	a = req("GET", "/echo/item", NULL);
	cr_assert(has(&a, "hit"), "%s", a.cache_status);
	a = req("POST", "/echo/item", NULL);
	cr_assert_eq(a.status, 200);
	cr_expect(becomes_miss("/echo/item"), "POST did not invalidate");
	cr_expect(becomes_miss("/echo/item?v=2"),
		  "every variant of the target goes");
	/* Another path stays. */
	req("GET", "/echo/other", NULL);
	req("PUT", "/echo/item", NULL);
	a = req("GET", "/echo/other", NULL);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
}

Test(semantics, a_failed_post_invalidates_nothing)
{
	const char *const routes[] = {"--route", "/status/*=60s", NULL};
	struct answer a;

	start(routes);
	req("GET", "/status/200", NULL);
	a = req("POST", "/status/500", NULL);
	cr_assert_eq(a.status, 500);
	req("POST", "/status/404", NULL);
	usleep((useconds_t)proc_scaled_ms(200) * 1000);
	a = req("GET", "/status/200", NULL);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
}

Test(semantics, location_and_content_location_of_the_same_origin_go_too)
{
	const char *const routes[] = {"--route", "/doc/*=60s", "--route",
				      "/header=60s", NULL};
	struct answer a;

	start(routes);
	req("GET", "/doc/created", NULL);
	req("GET", "/doc/elsewhere", NULL);
	a = req("GET", "/doc/created", NULL);
	cr_assert(has(&a, "hit"));
	a = req("POST", "/header?name=Location&value=/doc/created", NULL);
	cr_assert_eq(a.status, 200);
	cr_expect(becomes_miss("/doc/created"));
	/* Another origin's URI is not ours to purge. */
	req("POST",
	    "/header?name=Content-Location&value=http://other.example/doc/"
	    "elsewhere",
	    NULL);
	usleep((useconds_t)proc_scaled_ms(200) * 1000);
	a = req("GET", "/doc/elsewhere", NULL);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
}

/* --- conditional requests answered from the cache (RFC 9110 s. 13) ---------- */

struct full {
	long status;
	struct client_response r;
};

static struct full fetch_full(const char *path, const char *const *headers)
{
	struct full f;
	char url[1024];

	proc_url(strata, path, url, sizeof(url));
	f.status = client_request("GET", url, headers, NULL, 0, &f.r);
	return f;
}

Test(semantics, if_none_match_gets_304_from_the_cache)
{
	const char *const routes[] = {"--route", "/doc/*=60s", NULL};
	struct full f;

	start(routes);
	req("GET", "/doc/v", NULL);
	f = fetch_full("/doc/v", (const char *[]){"If-None-Match: \"doc-v1\"",
						  NULL});
	cr_expect_eq(f.status, 304);
	cr_expect_eq(f.r.body_len, 0);
	cr_expect_str_eq(client_header(&f.r, "ETag"), "\"doc-v1\"");
	cr_expect_null(client_header(&f.r, "Content-Type"),
		       "a 304 carries only the headers RFC 9110 allows");
	cr_expect(strstr(client_header(&f.r, "Cache-Status"), "hit") != NULL);
	client_response_free(&f.r);
	/* Weak comparison, and a list. */
	f = fetch_full("/doc/v", (const char *[]){
		"If-None-Match: \"other\", W/\"doc-v1\"", NULL});
	cr_expect_eq(f.status, 304);
	client_response_free(&f.r);
	/* No match: the whole answer. */
	f = fetch_full("/doc/v", (const char *[]){"If-None-Match: \"nope\"",
						  NULL});
	cr_expect_eq(f.status, 200);
	cr_expect_gt(f.r.body_len, 0);
	client_response_free(&f.r);
	cr_expect_eq(origin_count_prefix(origin, "/doc/v"), 1);
}

Test(semantics, a_conditional_miss_is_filled_whole_then_answered_304)
{
	const char *const routes[] = {"--route", "/doc/*=60s", NULL};
	const struct origin_request *last;
	struct full f;

	start(routes);
	f = fetch_full("/doc/first", (const char *[]){
		"If-None-Match: \"doc-v1\"", "Range: bytes=0-1", NULL});
	cr_expect_eq(f.status, 304);
	client_response_free(&f.r);
	last = origin_last(origin);
	cr_assert_not_null(last);
	cr_expect_null(origin_header(last, "If-None-Match"),
		       "the fill must ask for the whole representation");
	cr_expect_null(origin_header(last, "Range"));
	/* Stored whole: a plain GET is a hit with the full body. */
	f = fetch_full("/doc/first", NULL);
	cr_expect_eq(f.status, 200);
	cr_expect(strstr(f.r.body, "/doc/first") != NULL);
	client_response_free(&f.r);
}

Test(semantics, if_modified_since_gets_304)
{
	const char *const routes[] = {"--route", "/doc/*=60s", NULL};
	struct full f;

	start(routes);
	req("GET", "/doc/ims", NULL);
	f = fetch_full("/doc/ims", (const char *[]){
		"If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT", NULL});
	cr_expect_eq(f.status, 304);
	client_response_free(&f.r);
	f = fetch_full("/doc/ims", (const char *[]){
		"If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT", NULL});
	cr_expect_eq(f.status, 200);
	client_response_free(&f.r);
}

/* --- ranges from a complete cached entry (RFC 9110 s. 14) ------------------- */

Test(semantics, range_requests_are_served_from_the_entry)
{
	const char *const routes[] = {"--route", "/doc/*=60s", NULL};
	struct full f;

	start(routes);
	req("GET", "/doc/range", NULL); /* {"target":"/doc/range"}\n */
	f = fetch_full("/doc/range", (const char *[]){"Range: bytes=0-9",
						      NULL});
	cr_expect_eq(f.status, 206);
	cr_expect_eq(f.r.body_len, 10);
	cr_expect_eq(strncmp(f.r.body, "{\"target\":", 10), 0, "%s", f.r.body);
	cr_expect_str_eq(client_header(&f.r, "Content-Range"), "bytes 0-9/24");
	client_response_free(&f.r);

	f = fetch_full("/doc/range", (const char *[]){"Range: bytes=-2", NULL});
	cr_expect_eq(f.status, 206);
	cr_expect_eq(f.r.body_len, 2);
	cr_expect_str_eq(client_header(&f.r, "Content-Range"),
			 "bytes 22-23/24");
	client_response_free(&f.r);

	f = fetch_full("/doc/range", (const char *[]){
		"Range: bytes=0-1,5-6", NULL});
	cr_expect_eq(f.status, 206);
	cr_expect(strncmp(client_header(&f.r, "Content-Type"),
			  "multipart/byteranges; boundary=", 31) == 0,
		  "%s", client_header(&f.r, "Content-Type"));
	cr_expect(strstr(f.r.body, "Content-Range: bytes 5-6/24") != NULL);
	client_response_free(&f.r);

	f = fetch_full("/doc/range", (const char *[]){"Range: bytes=100-",
						      NULL});
	cr_expect_eq(f.status, 416);
	cr_expect_str_eq(client_header(&f.r, "Content-Range"), "bytes */24");
	client_response_free(&f.r);

	/* If-Range with another validator: the whole answer. */
	f = fetch_full("/doc/range", (const char *[]){
		"Range: bytes=0-1", "If-Range: \"other\"", NULL});
	cr_expect_eq(f.status, 200);
	client_response_free(&f.r);
	cr_expect_eq(origin_count_prefix(origin, "/doc/range"), 1);
}

/* --- stale content ------------------------------------------------------------- */

/* Start strata with a YAML file holding `routes_yaml` (a routes: block). */
static void start_yaml(const char *routes_yaml, char *path, size_t cap)
{
	const char *args[] = {"-c", path, NULL};
	FILE *f;
	int fd;

	snprintf(path, cap, "/tmp/strata-semantics-XXXXXX.yaml");
	fd = mkstemps(path, 5);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fputs(routes_yaml, f);
	fclose(f);
	start(args);
}

Test(semantics, stale_if_error_serves_the_kept_entry_when_the_origin_is_gone)
{
	char path[64];
	struct answer a, b;

	start_yaml("routes:\n"
		   "  - path: /doc/*\n"
		   "    ttl: 1s\n"
		   "    stale_if_error: 1m\n"
		   "  - path: /echo/*\n"
		   "    ttl: 1s\n",
		   path, sizeof(path));
	a = req("GET", "/doc/sie", NULL);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	req("GET", "/echo/nosie", NULL);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000); /* both expire */
	origin_stop(&origin);                            /* refused now */
	b = req("GET", "/doc/sie", NULL);
	cr_expect_eq(b.status, 200);
	cr_expect_str_eq(b.body, a.body);
	cr_expect(has(&b, "fwd=stale") && has(&b, "stale-if-error"), "%s",
		  b.cache_status);
	/* Without the window: the error. */
	b = req("GET", "/echo/nosie", NULL);
	cr_expect_eq(b.status, 502);
	unlink(path);
}

/* --- revalidation (RFC 9111 section 4.3) ------------------------------------ */

Test(semantics, an_expired_entry_with_a_validator_is_revalidated_with_304)
{
	const char *const routes[] = {"--route", "/validated/*=1s", NULL};
	const struct origin_request *last;
	struct full f;
	struct answer a;

	start(routes);
	a = req("GET", "/validated/r", NULL);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000);
	f = fetch_full("/validated/r", NULL);
	cr_expect_eq(f.status, 200);
	cr_expect_str_eq(f.r.body, a.body, "the stored body, not re-sent");
	cr_expect_str_eq(client_header(&f.r, "Cache-Status"),
			 "strata; fwd=stale; fwd-status=304; stored");
	cr_expect_str_eq(client_header(&f.r, "X-Revalidated"), "yes",
			 "the 304's headers update the stored ones");
	client_response_free(&f.r);
	last = origin_last(origin);
	cr_expect_str_eq(origin_header(last, "If-None-Match"), "\"doc-v1\"");
	cr_expect_eq(origin_count_prefix(origin, "/validated/r"), 2);
	/* Refreshed in the tiers: a hit now. */
	a = req("GET", "/validated/r", NULL);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
	cr_expect_eq(origin_count_prefix(origin, "/validated/r"), 2);
}

/* --- ttl: origin (RFC 9111 freshness) ------------------------------------------ */

static void start_origin_route(const char *extra_yaml, char *path, size_t cap)
{
	char yaml[512];

	snprintf(yaml, sizeof(yaml),
		 "routes:\n"
		 "  - path: /cc\n"
		 "    ttl: origin\n"
		 "%s"
		 "  - path: /echo/*\n"
		 "    ttl: origin\n"
		 "%s",
		 extra_yaml, extra_yaml);
	start_yaml(yaml, path, cap);
}

/* Two GETs of `path`: whether the second was a hit. */
static bool stored_then_hit(const char *path)
{
	struct answer a;

	req("GET", path, NULL);
	a = req("GET", path, NULL);
	return has(&a, "hit");
}

Test(semantics, origin_freshness_decides_what_is_stored)
{
	char path[64];

	start_origin_route("", path, sizeof(path));
	cr_expect(stored_then_hit("/cc?value=max-age=60"));
	cr_expect(stored_then_hit("/cc?value=s-maxage=60,max-age=0"),
		  "s-maxage rules a shared cache");
	cr_expect(!stored_then_hit("/cc?value=no-store"));
	cr_expect(!stored_then_hit("/cc?value=private,max-age=60"));
	cr_expect(!stored_then_hit("/cc?value=max-age=0"));
	/* No freshness information and no default_ttl: not stored. */
	cr_expect(!stored_then_hit("/echo/silent"));
	unlink(path);
}

Test(semantics, default_ttl_applies_when_the_response_says_nothing)
{
	char path[64];

	start_origin_route("    default_ttl: 30s\n", path, sizeof(path));
	cr_expect(stored_then_hit("/echo/silent"));
	cr_expect(!stored_then_hit("/cc?value=no-store"));
	unlink(path);
}

Test(semantics, request_cache_control_on_an_origin_route)
{
	char path[64];
	struct answer a;
	size_t before;

	start_origin_route("", path, sizeof(path));
	req("GET", "/cc?value=max-age=60", NULL);
	before = origin_count_prefix(origin, "/cc");
	a = req("GET", "/cc?value=max-age=60",
		(const char *[]){"Cache-Control: no-cache", NULL});
	cr_expect(has(&a, "fwd=request"), "%s", a.cache_status);
	cr_expect_eq(origin_count_prefix(origin, "/cc"), before + 1);
	a = req("GET", "/cc?value=max-age=60",
		(const char *[]){"Cache-Control: max-age=0", NULL});
	cr_expect(has(&a, "fwd=request"), "%s", a.cache_status);
	a = req("GET", "/cc?value=max-age=60", NULL);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
	/* only-if-cached: a miss is a 504, the origin is not asked. */
	before = origin_count_prefix(origin, "/cc");
	a = req("GET", "/cc?value=max-age=61",
		(const char *[]){"Cache-Control: only-if-cached", NULL});
	cr_expect_eq(a.status, 504);
	cr_expect_eq(origin_count_prefix(origin, "/cc"), before);
	/* no-store: answered, not stored. */
	req("GET", "/cc?value=max-age=62",
	    (const char *[]){"Cache-Control: no-store", NULL});
	a = req("GET", "/cc?value=max-age=62", NULL);
	cr_expect(has(&a, "fwd=miss"), "%s", a.cache_status);
	unlink(path);
}

Test(semantics, upstream_age_counts_into_the_age_sent)
{
	const char *const routes[] = {"--route", "/header=60s", NULL};
	struct full f;

	start(routes);
	req("GET", "/header?name=Age&value=30", NULL);
	f = fetch_full("/header?name=Age&value=30", NULL);
	cr_expect_geq(atol(client_header(&f.r, "Age")), 30);
	cr_expect_not_null(client_header(&f.r, "Date"));
	client_response_free(&f.r);
}

Test(semantics, etag_generate_gives_a_validator_clients_can_use)
{
	char path[64];
	struct full f;
	char etag[64];

	start_yaml("routes:\n"
		   "  - path: /echo/*\n"
		   "    ttl: 60s\n"
		   "    etag: generate\n",
		   path, sizeof(path));
	req("GET", "/echo/tagged", NULL);
	f = fetch_full("/echo/tagged", NULL);
	cr_assert_not_null(client_header(&f.r, "ETag"));
	snprintf(etag, sizeof(etag), "If-None-Match: %s",
		 client_header(&f.r, "ETag"));
	client_response_free(&f.r);
	f = fetch_full("/echo/tagged", (const char *[]){etag, NULL});
	cr_expect_eq(f.status, 304);
	client_response_free(&f.r);
	unlink(path);
}

Test(semantics, the_responses_stale_if_error_is_honoured)
{
	char path[64];
	struct answer a, b;

	start_yaml("routes:\n"
		   "  - path: /cc\n"
		   "    ttl: origin\n",
		   path, sizeof(path));
	a = req("GET", "/cc?value=max-age=1,stale-if-error=60", NULL);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	req("GET", "/cc?value=max-age=1", NULL);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000);
	origin_stop(&origin);
	b = req("GET", "/cc?value=max-age=1,stale-if-error=60", NULL);
	cr_expect_eq(b.status, 200);
	cr_expect(has(&b, "stale-if-error"), "%s", b.cache_status);
	b = req("GET", "/cc?value=max-age=1", NULL);
	cr_expect_eq(b.status, 502, "no window: the error");
	unlink(path);
}

/* --- stale-while-revalidate ------------------------------------------------------ */

/* Until the origin has seen `n` requests under `prefix` (a background
 * refresh, bounded), and 100 ms more for anything beyond them. */
static void wait_origin_count(const char *prefix, size_t n)
{
	for (int i = 0; i < 100 && origin_count_prefix(origin, prefix) < n;
	     i++)
		usleep((useconds_t)proc_scaled_ms(10) * 1000);
	usleep((useconds_t)proc_scaled_ms(100) * 1000);
}

Test(semantics, stale_while_revalidate_answers_at_once_and_refreshes_once)
{
	char path[64];
	struct answer a, b;

	start_yaml("routes:\n"
		   "  - path: /validated/*\n"
		   "    ttl: 1s\n"
		   "    stale_while_revalidate: 30s\n",
		   path, sizeof(path));
	a = req("GET", "/validated/swr", NULL);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000);
	b = req("GET", "/validated/swr", NULL);
	cr_expect_eq(b.status, 200);
	cr_expect_str_eq(b.body, a.body);
	cr_expect(has(&b, "hit; fwd=stale"), "%s", b.cache_status);
	req("GET", "/validated/swr", NULL);
	/* One background refresh (a revalidation: 304), then fresh hits. */
	wait_origin_count("/validated/swr", 2);
	cr_expect_eq(origin_count_prefix(origin, "/validated/swr"), 2);
	cr_expect_str_eq(origin_header(origin_last(origin), "If-None-Match"),
			 "\"doc-v1\"");
	b = req("GET", "/validated/swr", NULL);
	cr_expect(has(&b, "strata; hit; ttl="), "after the refresh: %ld %s", b.status, b.cache_status);
	cr_expect_eq(origin_count_prefix(origin, "/validated/swr"), 2);
	unlink(path);
}

Test(semantics, a_background_refresh_keeps_the_clients_host)
{
	const char *const host[] = {"Host: a.example", NULL};
	char path[64];
	struct answer a, b;

	/* A route that varies on Host: the refresh must land on the entry
	 * the client asked for, not on one for Strata's own address. */
	start_yaml("routes:\n"
		   "  - path: /validated/*\n"
		   "    ttl: 1s\n"
		   "    stale_while_revalidate: 30s\n"
		   "    vary: [Host]\n",
		   path, sizeof(path));
	a = req("GET", "/validated/host", host);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000);
	b = req("GET", "/validated/host", host);
	cr_expect(has(&b, "hit; fwd=stale"), "%s", b.cache_status);
	wait_origin_count("/validated/host", 2);
	cr_expect_eq(origin_count_prefix(origin, "/validated/host"), 2);
	cr_expect_str_eq(origin_header(origin_last(origin), "Host") ?: "",
			 "a.example");
	b = req("GET", "/validated/host", host);
	cr_expect(has(&b, "strata; hit; ttl="), "after the refresh: %s",
		  b.cache_status);
	unlink(path);
}

/* --- Vary (RFC 9111 section 4.1) -------------------------------------------------- */

Test(semantics, the_responses_vary_keeps_one_variant_per_header_value)
{
	const char *const routes[] = {"--route", "/header=60s", NULL};
	const char *p = "/header?name=Vary&value=Accept-Language";
	const char *const de[] = {"Accept-Language: de", NULL};
	const char *const fr[] = {"Accept-Language: fr", NULL};
	struct answer a;

	start(routes);
	a = req("GET", p, de);
	cr_expect(has(&a, "stored"), "%s", a.cache_status);
	a = req("GET", p, de);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
	a = req("GET", p, fr);
	cr_expect(has(&a, "fwd=vary-miss"), "%s", a.cache_status);
	cr_expect_eq(origin_count_prefix(origin, "/header"), 2);
	a = req("GET", p, fr);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
	a = req("GET", p, de);
	cr_expect(has(&a, "hit"), "%s", a.cache_status);
	a = req("GET", p, NULL); /* no Accept-Language: a third variant */
	cr_expect(has(&a, "fwd=vary-miss"), "%s", a.cache_status);
	cr_expect_eq(origin_count_prefix(origin, "/header"), 3);
}

Test(semantics, vary_star_is_never_served_from_the_cache)
{
	const char *const routes[] = {"--route", "/header=60s", NULL};
	struct answer a;

	start(routes);
	req("GET", "/header?name=Vary&value=*", NULL);
	a = req("GET", "/header?name=Vary&value=*", NULL);
	cr_expect(has(&a, "fwd=miss"), "%s", a.cache_status);
	cr_expect_eq(origin_count_prefix(origin, "/header"), 2);
}

Test(semantics, must_revalidate_and_s_maxage_forbid_stale_if_error)
{
	char path[64];
	struct answer b;

	start_yaml("routes:\n"
		   "  - path: /cc\n"
		   "    ttl: origin\n"
		   "    stale_if_error: 1m\n",
		   path, sizeof(path));
	req("GET", "/cc?value=max-age=1,must-revalidate", NULL);
	req("GET", "/cc?value=s-maxage=1", NULL);
	req("GET", "/cc?value=max-age=1", NULL);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000);
	origin_stop(&origin);
	b = req("GET", "/cc?value=max-age=1,must-revalidate", NULL);
	cr_expect_eq(b.status, 502, "%s", b.cache_status);
	b = req("GET", "/cc?value=s-maxage=1", NULL);
	cr_expect_eq(b.status, 502, "%s", b.cache_status);
	b = req("GET", "/cc?value=max-age=1", NULL);
	cr_expect_eq(b.status, 200, "the route's window: %s", b.cache_status);
	unlink(path);
}

Test(semantics, the_clients_max_stale_accepts_a_stale_entry)
{
	char path[64];
	struct answer a;
	size_t before;

	/* The stale window keeps expired entries around for a minute. */
	start_yaml("routes:\n"
		   "  - path: /cc\n"
		   "    ttl: origin\n"
		   "    stale_if_error: 1m\n",
		   path, sizeof(path));
	req("GET", "/cc?value=max-age=1", NULL);
	req("GET", "/cc?value=max-age=1,must-revalidate", NULL);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000);
	before = origin_count_prefix(origin, "/cc");
	a = req("GET", "/cc?value=max-age=1",
		(const char *[]){"Cache-Control: max-stale=60", NULL});
	cr_expect(has(&a, "fwd=stale; detail=max-stale"), "%s", a.cache_status);
	cr_expect_eq(origin_count_prefix(origin, "/cc"), before);
	a = req("GET", "/cc?value=max-age=1",
		(const char *[]){"Cache-Control: max-stale=0", NULL});
	cr_expect(!has(&a, "max-stale"), "too stale for it: %s",
		  a.cache_status);
	a = req("GET", "/cc?value=max-age=1,must-revalidate",
		(const char *[]){"Cache-Control: max-stale", NULL});
	cr_expect(!has(&a, "max-stale"), "must-revalidate: %s",
		  a.cache_status);
	unlink(path);
}

/* --- field lines: a list header sent on several lines is one list -------- */

/* Routes /header and /cc with ttl: origin. */
static void start_header_route(char *path, size_t cap)
{
	start_yaml("routes:\n"
		   "  - path: /header\n"
		   "    ttl: origin\n"
		   "  - path: /cc\n"
		   "    ttl: origin\n",
		   path, cap);
}

Test(semantics, cache_control_on_two_response_lines_is_one_list)
{
	char path[64];

	start_header_route(path, sizeof(path));
	/* "max-age=60" then "no-store": the second line forbids storing. */
	cr_expect(!stored_then_hit("/header?name=Cache-Control&value=max-age=60"
				   "&value2=no-store"),
		  "the second line was ignored");
	/* "public" then "s-maxage=0": stale at once for a shared cache. */
	cr_expect(!stored_then_hit("/header?name=Cache-Control&value=max-age=60"
				   "&value2=s-maxage=0"));
	/* The control: two lines that both allow storing. */
	cr_expect(stored_then_hit("/header?name=Cache-Control&value=max-age=60"
				  "&value2=public"));
	unlink(path);
}

Test(semantics, vary_on_two_response_lines_is_one_list)
{
	char path[64];
	struct answer a;

	start_header_route(path, sizeof(path));
	/* An empty Vary line, then "*": never served from the cache. */
	req("GET", "/header?name=Vary&value=&value2=*&x=1", NULL);
	a = req("GET", "/header?name=Vary&value=&value2=*&x=1", NULL);
	cr_expect(!has(&a, "hit"), "Vary: * on the second line: %s",
		  a.cache_status);
	unlink(path);
}

Test(semantics, cache_control_on_two_request_lines_is_one_list)
{
	char path[64];
	struct answer a;

	start_header_route(path, sizeof(path));
	req("GET", "/cc?value=max-age=60", NULL);
	a = req("GET", "/cc?value=max-age=60",
		(const char *[]){"Cache-Control: nothing-to-see-here",
				 "Cache-Control: no-cache", NULL});
	cr_expect(has(&a, "fwd=request"), "the client's no-cache on the "
		  "second line was ignored: %s", a.cache_status);
	a = req("GET", "/cc?value=max-age=61",
		(const char *[]){"Cache-Control: nothing-to-see-here",
				 "Cache-Control: only-if-cached", NULL});
	cr_expect_eq(a.status, 504);
	unlink(path);
}

Test(semantics, an_unregistered_unsafe_method_invalidates_too)
{
	const char *const routes[] = {"--route", "/echo/*=60s", NULL};
	struct answer a;

	start(routes);
	req("GET", "/echo/item", NULL);
	a = req("GET", "/echo/item", NULL);
	cr_assert(has(&a, "hit"), "%s", a.cache_status);
	a = req("M-SEARCH", "/echo/item", NULL);
	cr_assert_eq(a.status, 200);
	cr_expect(becomes_miss("/echo/item"),
		  "an unknown method may change the resource (RFC 9110 "
		  "section 9.2.1): it invalidates");
	req("GET", "/echo/safe", NULL);
	req("OPTIONS", "/echo/safe", NULL);
	req("PROPFIND", "/echo/safe", NULL);
	usleep((useconds_t)proc_scaled_ms(200) * 1000);
	a = req("GET", "/echo/safe", NULL);
	cr_expect(has(&a, "hit"), "safe methods invalidate nothing: %s",
		  a.cache_status);
}

Test(semantics, stale_if_error_keeps_a_response_stale_at_once)
{
	char path[64];
	struct answer a;

	start_yaml("routes:\n"
		   "  - path: /cc\n"
		   "    ttl: origin\n",
		   path, sizeof(path));
	/* No validator and no freshness, but a stale-if-error window:
	 * kept for it (RFC 5861), never served while the origin answers. */
	a = req("GET", "/cc?value=max-age=0,stale-if-error=60", NULL);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	a = req("GET", "/cc?value=max-age=0,stale-if-error=60", NULL);
	cr_expect(!has(&a, "hit"), "stale, the origin up: %s",
		  a.cache_status);
	origin_stop(&origin);
	a = req("GET", "/cc?value=max-age=0,stale-if-error=60", NULL);
	cr_expect_eq(a.status, 200);
	cr_expect(has(&a, "stale-if-error"), "%s", a.cache_status);
	unlink(path);
}

Test(semantics, the_clients_stale_if_error_accepts_a_kept_entry)
{
	char path[64];
	struct answer a;

	start_yaml("routes:\n"
		   "  - path: /cc\n"
		   "    ttl: origin\n",
		   path, sizeof(path));
	/* Kept past expiry for revalidation (it has a validator). */
	a = req("GET", "/cc?value=max-age=1&etag=\"v\"", NULL);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	usleep((useconds_t)proc_scaled_ms(1300) * 1000);
	origin_stop(&origin);
	a = req("GET", "/cc?value=max-age=1&etag=\"v\"", NULL);
	cr_expect_eq(a.status, 502, "no window granted: the error");
	a = req("GET", "/cc?value=max-age=1&etag=\"v\"",
		(const char *[]){"Cache-Control: stale-if-error=60", NULL});
	cr_expect_eq(a.status, 200, "the client accepts stale on error");
	cr_expect(has(&a, "stale-if-error"), "%s", a.cache_status);
	unlink(path);
}

/* --- Date --------------------------------------------------------------- */

Test(semantics, a_response_without_date_is_stored_with_the_date_it_arrived)
{
	struct raw_origin *raw = raw_origin_start(
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		"Cache-Control: max-age=60\r\nConnection: close\r\n\r\nok\n");
	char upstream[64];
	const char *const args[] = {"--upstream", upstream, "--route",
				    "/nodate=origin", NULL};
	struct proc_spec spec = {.args = args};
	struct full first, later;

	cr_assert_not_null(raw);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%u",
		 raw_origin_port(raw));
	strata = proc_start(&spec);
	cr_assert_not_null(strata);
	first = fetch_full("/nodate", NULL);
	cr_assert_eq(first.status, 200);
	cr_assert_not_null(client_header(&first.r, "Date"),
			   "the origin sent none: Strata adds one");
	usleep((useconds_t)proc_scaled_ms(1200) * 1000);
	later = fetch_full("/nodate", NULL);
	cr_assert(strstr(client_header(&later.r, "Cache-Status") ?: "",
			 "hit") != NULL);
	cr_assert_eq(raw_origin_count(raw), 1);
	cr_assert_str_eq(client_header(&later.r, "Date"),
			 client_header(&first.r, "Date"),
			 "the hit carries the stored Date, not its own time");
	cr_expect_geq(atol(client_header(&later.r, "Age") ?: "0"), 1,
		      "its Age counts from that Date");
	client_response_free(&first.r);
	client_response_free(&later.r);
	proc_stop(&strata);
	raw_origin_stop(&raw);
}

/* --- Content-Encoding ------------------------------------------------------ */

Test(semantics, an_encoded_response_is_stored_as_sent_and_varies_by_encoding)
{
	struct raw_origin *raw = raw_origin_start(
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
		"Vary: Accept-Encoding\r\nCache-Control: max-age=60\r\n"
		"Content-Type: text/plain\r\nContent-Length: 9\r\n"
		"Connection: close\r\n\r\n\x1f\x8b" "gzdata\n");
	char upstream[64];
	const char *const args[] = {"--upstream", upstream, "--route",
				    "/enc=origin", NULL};
	const char *const gzip[] = {"Accept-Encoding: gzip", NULL};
	const char *const identity[] = {"Accept-Encoding: identity", NULL};
	struct proc_spec spec = {.args = args};
	struct full a, b, c;

	cr_assert_not_null(raw);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%u",
		 raw_origin_port(raw));
	strata = proc_start(&spec);
	cr_assert_not_null(strata);
	a = fetch_full("/enc", gzip);
	b = fetch_full("/enc", gzip);
	cr_assert_eq(b.status, 200);
	cr_expect(strstr(client_header(&b.r, "Cache-Status") ?: "", "hit"),
		  "%s", client_header(&b.r, "Cache-Status"));
	cr_expect_str_eq(client_header(&b.r, "Content-Encoding") ?: "",
			 "gzip");
	cr_assert_eq(b.r.body_len, 9, "the bytes as sent, not decoded");
	cr_expect_eq(memcmp(b.r.body, "\x1f\x8bgzdata\n", 9), 0);
	cr_expect_eq(raw_origin_count(raw), 1);
	/* Another Accept-Encoding is another variant: not served gzip. */
	c = fetch_full("/enc", identity);
	cr_expect(strstr(client_header(&c.r, "Cache-Status") ?: "", "hit") ==
			  NULL,
		  "%s", client_header(&c.r, "Cache-Status"));
	cr_expect_eq(raw_origin_count(raw), 2);
	client_response_free(&a.r);
	client_response_free(&b.r);
	client_response_free(&c.r);
	proc_stop(&strata);
	raw_origin_stop(&raw);
}
