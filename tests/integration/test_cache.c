/*
 * test_cache.c: memoization end to end, in the varnishtest manner.
 *
 * Each test starts its own origin (in this process, port 0) and its own
 * strata (free loopback ports, readiness wait), then asserts on what the
 * origin counted and on the headers the client got back (Cache-Status,
 * Age, X-Origin-Seq), never on log text.  The origin numbers every
 * response with X-Origin-Seq, so an answer that carries an earlier
 * number than the origin's last one came from the cache.
 *
 * The fixture stops strata with TERM then KILL and removes any
 * configuration file the test wrote, even when an assertion failed.
 * Waits scale with STRATA_TEST_TIMEOUT_MULT; Criterion's .timeout is a
 * fixed, generous backstop, the same for every test: when tests with
 * different timeouts run in parallel, Criterion 2.4.1's runner leaks 48
 * bytes, which LeakSanitizer turns into a failed ASan build.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"

#define MAX_ARGS 32

#define CS_STORED "strata; fwd=miss; stored"
#define CS_MISS "strata; fwd=miss"
#define CS_COLLAPSED "strata; fwd=miss; collapsed"
#define CS_METHOD "strata; fwd=method"
#define CS_AUTH "strata; fwd=request; detail=authorization"

static struct origin *origin;
static struct proc *strata;
static char config_path[64];

static void setup(void)
{
	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
}

static void teardown(void)
{
	proc_stop(&strata);
	origin_stop(&origin);
	if (config_path[0] != '\0')
		unlink(config_path);
	config_path[0] = '\0';
}

TestSuite(cache, .init = setup, .fini = teardown);

/* --- starting strata ----------------------------------------------------- */

/*
 * Start strata with `--upstream` set to `upstream` (the origin when NULL),
 * the given environment (NULL-terminated, may be NULL), then the given
 * arguments (NULL-terminated).
 */
static void start_strata_va(const char *upstream, const char *const *env,
			    va_list ap)
{
	const char *args[MAX_ARGS];
	char origin_base[64];
	struct proc_spec spec = { .args = args, .env = env };
	const char *arg;
	size_t n = 0;

	if (upstream == NULL)
		upstream = origin_url(origin, "", origin_base,
				      sizeof(origin_base));
	args[n++] = "--upstream";
	args[n++] = upstream;
	while ((arg = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1)
		args[n++] = arg;
	args[n] = NULL;
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
}

static void start_strata_to(const char *upstream, ...)
{
	va_list ap;

	va_start(ap, upstream);
	start_strata_va(upstream, NULL, ap);
	va_end(ap);
}

#define start_strata(...) start_strata_to(NULL, __VA_ARGS__)

/* Start strata (upstream: the origin) with extra environment. */
static void start_strata_env(const char *const *env, ...)
{
	va_list ap;

	va_start(ap, env);
	start_strata_va(NULL, env, ap);
	va_end(ap);
}

/* Write `yaml` to a fresh temporary file (removed by the fixture) and
 * start strata with `-c FILE` followed by the given arguments. */
static void start_strata_yaml(const char *yaml, ...)
{
	const char *args[MAX_ARGS];
	char origin_base[64];
	size_t len = strlen(yaml), n = 0;
	const char *arg;
	va_list ap;
	int fd;

	strcpy(config_path, "/tmp/strata-cache-XXXXXX.yaml");
	fd = mkstemps(config_path, 5);
	cr_assert_geq(fd, 0, "mkstemps failed");
	cr_assert_eq(write(fd, yaml, len), (ssize_t)len);
	close(fd);

	args[n++] = "--upstream";
	args[n++] = origin_url(origin, "", origin_base, sizeof(origin_base));
	args[n++] = "-c";
	args[n++] = config_path;
	va_start(ap, yaml);
	while ((arg = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1)
		args[n++] = arg;
	va_end(ap);
	args[n] = NULL;
	strata = proc_start_args(args);
	cr_assert_not_null(strata, "strata did not start with this "
				   "configuration (output above):\n%s", yaml);
}

static const char *url(const char *path)
{
	static char buf[512];

	return proc_url(strata, path, buf, sizeof(buf));
}

/* --- small helpers ------------------------------------------------------- */

static bool starts_with(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *cache_status(const struct client_response *r)
{
	const char *cs = client_header(r, "Cache-Status");

	return cs != NULL ? cs : "(absent)";
}

/*
 * Whether `cs` is a memory hit, "strata; hit; ttl=N; detail=memory";
 * stores N in *ttl when it is.
 */
static bool is_hit(const char *cs, long *ttl)
{
	const char *p = "strata; hit; ttl=";
	char *end;
	long n;

	if (!starts_with(cs, p) || !isdigit((unsigned char)cs[strlen(p)]))
		return false;
	n = strtol(cs + strlen(p), &end, 10);
	if (strcmp(end, "; detail=memory") != 0)
		return false;
	if (ttl != NULL)
		*ttl = n;
	return true;
}

/* Whether header `name` is present and all decimal digits. */
static bool numeric_header(const struct client_response *r, const char *name)
{
	const char *v = client_header(r, name);

	if (v == NULL || *v == '\0')
		return false;
	for (; *v != '\0'; v++)
		if (!isdigit((unsigned char)*v))
			return false;
	return true;
}

/* Requests the origin recorded with exactly this target. */
static size_t origin_count_target(const char *target)
{
	size_t n = 0, total = origin_count(origin);

	for (size_t i = 0; i < total; i++) {
		const struct origin_request *r = origin_request_at(origin, i);

		if (r != NULL && strcmp(r->target, target) == 0)
			n++;
	}
	return n;
}

/* One request with optional extra headers; the status must be `want`. */
static void request(const char *method, const char *path,
		    const char *const *headers, long want,
		    struct client_response *r)
{
	bool has_body = strcmp(method, "POST") == 0;
	long status = client_request(method, url(path), headers,
				     has_body ? "x" : NULL, has_body ? 1 : 0,
				     r);

	cr_assert_eq(status, want, "%s %s: status %ld (%s), expected %ld",
		     method, path, status, r->error, want);
}

/* GET `path` (with `headers`) and expect this exact Cache-Status. */
static void expect_cs(const char *method, const char *path,
		      const char *const *headers, long want_status,
		      const char *want_cs)
{
	struct client_response r;

	request(method, path, headers, want_status, &r);
	cr_expect_str_eq(cache_status(&r), want_cs,
			 "%s %s: Cache-Status \"%s\", expected \"%s\"", method,
			 path, cache_status(&r), want_cs);
	client_response_free(&r);
}

/* GET `path` (with `headers`) and expect a memory hit. */
static void expect_hit(const char *method, const char *path,
		       const char *const *headers, long want_status)
{
	struct client_response r;

	request(method, path, headers, want_status, &r);
	cr_expect(is_hit(cache_status(&r), NULL),
		  "%s %s: Cache-Status \"%s\", expected a memory hit", method,
		  path, cache_status(&r));
	client_response_free(&r);
}

/* --- 1. miss, then hit --------------------------------------------------- */

/* Headers that differ between a miss and its hit by design. */
static bool per_answer_header(const char *name)
{
	return strcasecmp(name, "Age") == 0 ||
	       strcasecmp(name, "Cache-Status") == 0 ||
	       strcasecmp(name, "Date") == 0;
}

/* Every header of `a` (but the per-answer ones) appears in `b` with the
 * same value, as often. */
static void expect_headers_kept(const struct client_response *a,
				const struct client_response *b,
				const char *what)
{
	for (size_t i = 0; i < a->n_headers; i++) {
		const char *name = a->headers[i].name;
		const char *va[16], *vb[16];
		size_t na, nb;

		if (per_answer_header(name))
			continue;
		na = client_header_all(a, name, va, 16);
		nb = client_header_all(b, name, vb, 16);
		cr_expect_eq(na, nb, "%s: %s appears %zu times on the miss, "
				     "%zu on the hit", what, name, na, nb);
		for (size_t j = 0; j < na && j < nb && j < 16; j++)
			cr_expect_str_eq(vb[j], va[j],
					 "%s: %s is \"%s\" on the hit, \"%s\" "
					 "on the miss", what, name, vb[j],
					 va[j]);
	}
}

Test(cache, miss_then_hit_returns_the_same_response, .timeout = 60)
{
	static const char *const kept[] = {
		"Content-Type", "Content-Length", "ETag", "X-Custom",
		"Last-Modified", "X-Origin-Seq",
	};
	const char *path = "/doc/item?id=7";
	struct client_response miss, hit;
	long ttl = -1;

	start_strata("--route", "/doc/*=60s", NULL);
	request("GET", path, NULL, 200, &miss);
	cr_expect_str_eq(cache_status(&miss), CS_STORED);
	cr_expect(numeric_header(&miss, "Age"), "miss: Age is \"%s\"",
		  client_header(&miss, "Age") ?: "(absent)");
	cr_assert_eq(origin_count(origin), 1);

	request("GET", path, NULL, 200, &hit);
	cr_expect_eq(origin_count(origin), 1,
		     "the hit reached the origin (%zu requests)",
		     origin_count(origin));
	cr_expect(is_hit(cache_status(&hit), &ttl),
		  "Cache-Status \"%s\", expected a memory hit",
		  cache_status(&hit));
	cr_expect(ttl >= 55 && ttl <= 60, "hit: ttl=%ld, expected 55..60",
		  ttl);
	cr_expect(numeric_header(&hit, "Age"), "hit: Age is \"%s\"",
		  client_header(&hit, "Age") ?: "(absent)");
	cr_expect(numeric_header(&hit, "Age") &&
			  atol(client_header(&hit, "Age")) <= 5,
		  "hit: Age %s, expected a few seconds at most",
		  client_header(&hit, "Age") ?: "(absent)");

	cr_expect_eq(hit.status, miss.status);
	cr_expect_eq(hit.body_len, miss.body_len);
	cr_expect_str_eq(hit.body, miss.body);
	cr_expect_str_eq(miss.body, "{\"target\":\"/doc/item?id=7\"}\n");
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		const char *a = client_header(&miss, kept[i]);
		const char *b = client_header(&hit, kept[i]);

		cr_expect_not_null(a, "miss: no %s", kept[i]);
		cr_expect_str_eq(b ?: "(absent)", a ?: "(absent)",
				 "%s: \"%s\" on the hit, \"%s\" on the miss",
				 kept[i], b ?: "(absent)", a ?: "(absent)");
	}
	expect_headers_kept(&miss, &hit, "miss vs hit");
	expect_headers_kept(&hit, &miss, "hit vs miss");
	client_response_free(&miss);
	client_response_free(&hit);
}

Test(cache, age_includes_the_origins_age_and_is_sent_once, .timeout = 60)
{
	const char *path = "/header?name=Age&value=100";
	struct client_response miss, hit;
	const char *ages[4];

	start_strata("--route", "/header=60s", NULL);
	request("GET", path, NULL, 200, &miss);
	cr_expect_str_eq(cache_status(&miss), CS_STORED);
	cr_expect_eq(client_header_all(&miss, "Age", ages, 4), 1,
		     "the miss carries one Age header");
	cr_expect_str_eq(client_header(&miss, "Age") ?: "(absent)", "100",
			 "the answer was 100 s old when it arrived");
	request("GET", path, NULL, 200, &hit);
	cr_expect_eq(origin_count(origin), 1);
	cr_expect_eq(client_header_all(&hit, "Age", ages, 4), 1,
		     "the hit carries one Age header");
	cr_expect(numeric_header(&hit, "Age") &&
			  atol(client_header(&hit, "Age")) >= 100 &&
			  atol(client_header(&hit, "Age")) <= 105,
		  "hit: Age %s, expected 100 plus the seconds it was held",
		  client_header(&hit, "Age") ?: "(absent)");
	client_response_free(&miss);
	client_response_free(&hit);
}

/* --- 2. per-route TTL ---------------------------------------------------- */

Test(cache, ttl_is_per_route_and_expired_entries_are_not_served,
     .timeout = 60)
{
	long ttl = -1;
	struct client_response r;

	start_strata("--route", "/echo/short/*=1s",
		     "--route", "/echo/long/*=60s", NULL);
	expect_cs("GET", "/echo/short/a", NULL, 200, CS_STORED);
	expect_cs("GET", "/echo/long/a", NULL, 200, CS_STORED);

	request("GET", "/echo/short/a", NULL, 200, &r);
	cr_expect(is_hit(cache_status(&r), &ttl) && ttl <= 1,
		  "short, at once: Cache-Status \"%s\", expected a hit with "
		  "ttl <= 1", cache_status(&r));
	client_response_free(&r);
	expect_hit("GET", "/echo/long/a", NULL, 200);
	cr_expect_eq(origin_count_target("/echo/short/a"), 1);
	cr_expect_eq(origin_count_target("/echo/long/a"), 1);

	/* Real time, not scaled: the TTL is a second of wall clock. */
	usleep(1500 * 1000);
	expect_cs("GET", "/echo/short/a", NULL, 200, CS_STORED);
	expect_hit("GET", "/echo/long/a", NULL, 200);
	cr_expect_eq(origin_count_target("/echo/short/a"), 2,
		     "the 1 s entry was served after 1.5 s (origin count %zu)",
		     origin_count_target("/echo/short/a"));
	cr_expect_eq(origin_count_target("/echo/long/a"), 1,
		     "the 60 s entry was fetched again (origin count %zu)",
		     origin_count_target("/echo/long/a"));
}

/* --- 3. what is not stored ----------------------------------------------- */

/* Origin paths whose 200 answer must not be stored without `force`. */
static const char *const private_paths[] = {
	"/headers",                      /* two Set-Cookie */
	"/cc?value=private",
	"/cc?value=no-store",
	"/cc?value=max-age=60,no-store",
	"/cc?value=public,private",
};
#define N_PRIVATE (sizeof(private_paths) / sizeof(private_paths[0]))

Test(cache, set_cookie_private_and_no_store_are_not_stored, .timeout = 60)
{
	struct client_response r;
	char direct[128];

	/* The origin really sends what this test relies on. */
	cr_assert_eq(client_request("GET",
				    origin_url(origin,
					       "/cc?value=no-store&direct=1",
					       direct, sizeof(direct)),
				    NULL, NULL, 0, &r),
		     200);
	cr_assert_str_eq(client_header(&r, "Cache-Control") ?: "(absent)",
			 "no-store");
	client_response_free(&r);

	start_strata("--route", "/headers=60s", "--route", "/cc=60s", NULL);
	for (size_t i = 0; i < N_PRIVATE; i++) {
		expect_cs("GET", private_paths[i], NULL, 200, CS_MISS);
		expect_cs("GET", private_paths[i], NULL, 200, CS_MISS);
		cr_expect_eq(origin_count_target(private_paths[i]), 2,
			     "%s: the origin saw %zu requests, expected 2 (not "
			     "stored)", private_paths[i],
			     origin_count_target(private_paths[i]));
	}
	/* The Set-Cookie answer still goes to the client whole. */
	request("GET", "/headers", NULL, 200, &r);
	cr_expect_eq(client_header_all(&r, "Set-Cookie", NULL, 0), 2);
	client_response_free(&r);
}

Test(cache, authorization_is_neither_looked_up_nor_stored, .timeout = 60)
{
	const char *const auth[] = {"Authorization: Bearer secret", NULL};
	struct client_response r;

	start_strata("--route", "/echo/auth/*=60s", NULL);
	/* An entry exists for the key... */
	expect_cs("GET", "/echo/auth/a", NULL, 200, CS_STORED);
	/* ...but a request with credentials must not be answered from it. */
	expect_cs("GET", "/echo/auth/a", auth, 200, CS_AUTH);
	expect_cs("GET", "/echo/auth/a", auth, 200, CS_AUTH);
	cr_expect_eq(origin_count_target("/echo/auth/a"), 3,
		     "origin count %zu, expected 3: the stored answer plus "
		     "one per authorized request",
		     origin_count_target("/echo/auth/a"));

	/* A cold key: the authorized answer is not stored for others. */
	expect_cs("GET", "/echo/auth/b", auth, 200, CS_AUTH);
	request("GET", "/echo/auth/b", NULL, 200, &r);
	cr_expect_str_eq(cache_status(&r), CS_STORED);
	cr_expect(r.body != NULL && strstr(r.body, "Bearer") == NULL,
		  "an anonymous request got the authorized answer:\n%s",
		  r.body ?: "");
	client_response_free(&r);
	cr_expect_eq(origin_count_target("/echo/auth/b"), 2);
}

Test(cache, force_route_stores_what_policy_would_refuse, .timeout = 60)
{
	const char *const auth[] = {"Authorization: Bearer secret", NULL};
	struct client_response r;
	const char *values[4];

	start_strata_yaml("routes:\n"
			  "  - path: /headers\n"
			  "    ttl: 60s\n"
			  "    force: true\n"
			  "  - path: /cc\n"
			  "    ttl: 60s\n"
			  "    force: true\n"
			  "  - path: /echo/auth/*\n"
			  "    ttl: 60s\n"
			  "    force: true\n",
			  NULL);
	for (size_t i = 0; i < N_PRIVATE; i++) {
		expect_cs("GET", private_paths[i], NULL, 200, CS_STORED);
		expect_hit("GET", private_paths[i], NULL, 200);
		cr_expect_eq(origin_count_target(private_paths[i]), 1,
			     "%s: the origin saw %zu requests on a force "
			     "route, expected 1", private_paths[i],
			     origin_count_target(private_paths[i]));
	}
	/* The stored answer keeps both cookies. */
	request("GET", "/headers", NULL, 200, &r);
	cr_expect(is_hit(cache_status(&r), NULL));
	cr_expect_eq(client_header_all(&r, "Set-Cookie", values, 4), 2);
	if (client_header_all(&r, "Set-Cookie", NULL, 0) == 2) {
		cr_expect_str_eq(values[0], "a=1; Path=/");
		cr_expect_str_eq(values[1], "b=2; Path=/");
	}
	client_response_free(&r);

	expect_cs("GET", "/echo/auth/a", auth, 200, CS_STORED);
	expect_hit("GET", "/echo/auth/a", auth, 200);
	cr_expect_eq(origin_count_target("/echo/auth/a"), 1);
}

Test(cache, storable_statuses_are_stored_others_are_not, .timeout = 60)
{
	static const long stored[] = {203, 204, 300, 301, 308, 404, 410};
	static const long not_stored[] = {201, 302, 307, 400, 403, 500, 503};
	struct client_response r;
	char path[32], body[32];

	start_strata("--route", "/status/*=60s", NULL);
	for (size_t i = 0; i < sizeof(stored) / sizeof(stored[0]); i++) {
		snprintf(path, sizeof(path), "/status/%ld", stored[i]);
		expect_cs("GET", path, NULL, stored[i], CS_STORED);
		request("GET", path, NULL, stored[i], &r);
		cr_expect(is_hit(cache_status(&r), NULL),
			  "%s: Cache-Status \"%s\" on the second request",
			  path, cache_status(&r));
		if (stored[i] != 204) {
			snprintf(body, sizeof(body), "status %ld\n",
				 stored[i]);
			cr_expect_str_eq(r.body ?: "", body, "%s: body", path);
		}
		client_response_free(&r);
		cr_expect_eq(origin_count_target(path), 1,
			     "%s: origin count %zu, expected 1", path,
			     origin_count_target(path));
	}
	for (size_t i = 0; i < sizeof(not_stored) / sizeof(not_stored[0]);
	     i++) {
		snprintf(path, sizeof(path), "/status/%ld", not_stored[i]);
		expect_cs("GET", path, NULL, not_stored[i], CS_MISS);
		expect_cs("GET", path, NULL, not_stored[i], CS_MISS);
		cr_expect_eq(origin_count_target(path), 2,
			     "%s: origin count %zu, expected 2", path,
			     origin_count_target(path));
	}
}

/* --- 4. coalescing ------------------------------------------------------- */

/* Run `n` concurrent GETs of `path`; the caller frees the responses. */
static struct client_response *stampede(const char *path, size_t n,
					double *wall)
{
	struct client_response *resps = calloc(n, sizeof(*resps));
	int answered;

	cr_assert_not_null(resps);
	answered = client_concurrent_responses(NULL, url(path), NULL, n,
					       proc_scaled_ms(20000), resps,
					       wall);
	cr_assert_geq(answered, 0, "curl multi setup failed");
	return resps;
}

static void free_responses(struct client_response *resps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		client_response_free(&resps[i]);
	free(resps);
}

Test(cache, concurrent_misses_make_one_upstream_request, .timeout = 60)
{
	enum { N = 500 };
	const char *body = "{\"slept_ms\":1000}\n";
	uint64_t want_hash = client_fnv1a64(CLIENT_FNV1A64_INIT, body,
					    strlen(body));
	struct client_response *resps;
	size_t ok = 0, same_body = 0, stored = 0, collapsed = 0, hits = 0;
	size_t other = 0;
	const char *first_other = NULL;
	double wall = 0;

	start_strata("--route", "/slow=60s", NULL);
	resps = stampede("/slow?ms=1000", N, &wall);
	for (size_t i = 0; i < N; i++) {
		const char *cs = cache_status(&resps[i]);

		ok += resps[i].status == 200 && resps[i].curl_code == 0;
		same_body += resps[i].body_hash == want_hash &&
			     resps[i].body_len == strlen(body);
		if (strcmp(cs, CS_STORED) == 0)
			stored++;
		else if (strcmp(cs, CS_COLLAPSED) == 0)
			collapsed++;
		else if (is_hit(cs, NULL))
			hits++;
		else if (other++ == 0)
			first_other = cs;
	}
	cr_expect_eq(origin_count_prefix(origin, "/slow"), 1,
		     "%d concurrent misses made %zu upstream requests", N,
		     origin_count_prefix(origin, "/slow"));
	cr_expect_eq(ok, N, "%zu of %d requests got 200", ok, N);
	cr_expect_eq(same_body, N, "%zu of %d got the origin's body",
		     same_body, N);
	cr_expect_lt(wall, 5.0 * proc_timeout_mult(),
		     "%d coalesced requests on a 1 s origin took %.2f s", N,
		     wall);
	cr_expect_eq(stored, 1, "%zu answers said \"%s\", expected 1",
		     stored, CS_STORED);
	cr_expect_eq(other, 0, "%zu answers had another Cache-Status, e.g. "
			       "\"%s\"", other, first_other ?: "");
	/* A request that arrives after the entry is stored is a plain hit,
	 * which is correct; nearly all 500 arrive within the origin's 1 s. */
	cr_expect_eq(collapsed + hits, N - 1,
		     "collapsed %zu + hits %zu, expected %d", collapsed, hits,
		     N - 1);
	cr_expect_geq(collapsed, N / 2,
		      "only %zu of %d waited on the leader (%zu hits)",
		      collapsed, N, hits);
	free_responses(resps, N);
}

/*
 * The leader's answer has Set-Cookie, so it is not stored: every waiter
 * then fetches once on its own, uncoalesced.  Whatever the timing, each
 * client request therefore reaches the origin exactly once (the leader's
 * fetch, one retry per waiter, and a request arriving after the flight
 * ended leads a flight of its own), so the origin must count exactly N,
 * and nobody may report "stored" or "collapsed".  That the waiters did
 * wait shows in the origin's arrival times: some requests reach it only
 * once the leader's 500 ms answer is in.
 */
Test(cache, unstorable_answer_sends_each_waiter_upstream_once,
     .timeout = 60)
{
	enum { N = 20 };
	const uint64_t delay_ms = 500;
	struct client_response *resps;
	const struct origin_request *first;
	size_t ok = 0, miss = 0, late = 0, total;
	double wall = 0;

	start_strata("--route", "/slow-cookie=60s", NULL);
	resps = stampede("/slow-cookie?ms=500", N, &wall);
	for (size_t i = 0; i < N; i++) {
		ok += resps[i].status == 200 && resps[i].curl_code == 0 &&
		      client_header_all(&resps[i], "Set-Cookie", NULL, 0) == 1;
		miss += strcmp(cache_status(&resps[i]), CS_MISS) == 0;
	}
	cr_expect_eq(ok, N, "%zu of %d got 200 with their Set-Cookie", ok, N);
	cr_expect_eq(miss, N, "%zu of %d said \"%s\"", miss, N, CS_MISS);
	total = origin_count_prefix(origin, "/slow-cookie");
	cr_expect_eq(total, N,
		     "the origin saw %zu requests, expected exactly %d (the "
		     "leader + one retry per waiter)", total, N);
	first = origin_request_at(origin, 0);
	cr_assert_not_null(first);
	for (size_t i = 1; i < origin_count(origin); i++)
		late += origin_request_at(origin, i)->arrived_ms >=
			first->arrived_ms + delay_ms - 50;
	cr_expect_geq(late, 1,
		      "every request reached the origin at once: nobody "
		      "waited for the leader's answer");
	cr_expect_lt(wall, 5.0 * proc_timeout_mult(),
		     "the stampede took %.2f s", wall);
	free_responses(resps, N);
}

Test(cache, upstream_timeout_is_shared_by_every_waiter, .timeout = 60)
{
	enum { N = 50 };
	struct client_response *resps;
	size_t got_504 = 0;
	double wall = 0;

	start_strata("--route", "/hang-headers=60s",
		     "--set", "upstream.timeout=1s", NULL);
	resps = stampede("/hang-headers", N, &wall);
	for (size_t i = 0; i < N; i++)
		got_504 += resps[i].status == 504;
	cr_expect_eq(got_504, N, "%zu of %d got 504 (first: %ld %s)", got_504,
		     N, resps[0].status, cache_status(&resps[0]));
	cr_expect_eq(origin_count_prefix(origin, "/hang-headers"), 1,
		     "the origin saw %zu requests: waiters went upstream "
		     "after a failed fetch",
		     origin_count_prefix(origin, "/hang-headers"));
	cr_expect(wall >= 0.9 && wall < 5.0 * proc_timeout_mult(),
		  "the stampede took %.2f s, expected about 1 s", wall);
	free_responses(resps, N);
	/* Errors are not stored: the next request goes upstream again. */
	expect_cs("GET", "/hang-headers", NULL, 504, CS_MISS);
	cr_expect_eq(origin_count_prefix(origin, "/hang-headers"), 2);
}

Test(cache, dead_upstream_gives_every_waiter_502, .timeout = 60)
{
	enum { N = 100 };
	struct client_response *resps;
	size_t got_502 = 0, miss = 0;
	char dead[64];
	double wall = 0;

	snprintf(dead, sizeof(dead), "http://127.0.0.1:%u", proc_free_port());
	start_strata_to(dead, "--route", "/x/*=60s", NULL);
	resps = stampede("/x/a", N, &wall);
	for (size_t i = 0; i < N; i++) {
		got_502 += resps[i].status == 502;
		miss += starts_with(cache_status(&resps[i]), CS_MISS);
	}
	cr_expect_eq(got_502, N, "%zu of %d got 502 (first: %ld %s)", got_502,
		     N, resps[0].status, resps[0].error);
	cr_expect_eq(miss, N, "%zu of %d had a \"%s...\" Cache-Status", miss,
		     N, CS_MISS);
	cr_expect_lt(wall, 5.0 * proc_timeout_mult(),
		     "the stampede took %.2f s", wall);
	free_responses(resps, N);
	expect_cs("GET", "/x/a", NULL, 502, CS_MISS);
	cr_expect_eq(proc_wait(strata, 0), -1, "strata exited");
}

/* --- 5. HEAD ------------------------------------------------------------- */

Test(cache, head_is_answered_from_the_get_entry, .timeout = 60)
{
	struct client_response get, head;
	const struct origin_request *seen;
	char len[32];

	start_strata("--route", "/echo/h/*=60s", NULL);

	/* GET stores; HEAD is then a hit with the GET's length, no body. */
	request("GET", "/echo/h/a", NULL, 200, &get);
	cr_expect_str_eq(cache_status(&get), CS_STORED);
	request("HEAD", "/echo/h/a", NULL, 200, &head);
	cr_expect(is_hit(cache_status(&head), NULL),
		  "HEAD after GET: Cache-Status \"%s\"", cache_status(&head));
	snprintf(len, sizeof(len), "%zu", get.body_len);
	cr_expect_str_eq(client_header(&head, "Content-Length") ?: "(absent)",
			 len, "HEAD: Content-Length");
	cr_expect_eq(head.body_len, 0, "HEAD got %zu body bytes",
		     head.body_len);
	cr_expect_str_eq(client_header(&head, "X-Origin-Seq") ?: "(absent)",
			 client_header(&get, "X-Origin-Seq") ?: "(absent)");
	cr_expect_eq(origin_count(origin), 1, "the HEAD reached the origin");
	client_response_free(&get);
	client_response_free(&head);

	/* A cold HEAD is fetched as GET and stored; the GET is a hit. */
	request("HEAD", "/echo/h/b", NULL, 200, &head);
	cr_expect_str_eq(cache_status(&head), CS_STORED);
	cr_expect_eq(head.body_len, 0, "HEAD got %zu body bytes",
		     head.body_len);
	cr_assert_eq(origin_count(origin), 2);
	seen = origin_last(origin);
	cr_expect_str_eq(seen->method, "GET",
			 "a cold HEAD reached the origin as %s", seen->method);
	cr_expect_str_eq(seen->target, "/echo/h/b");
	request("GET", "/echo/h/b", NULL, 200, &get);
	cr_expect(is_hit(cache_status(&get), NULL),
		  "GET after HEAD: Cache-Status \"%s\"", cache_status(&get));
	cr_expect(starts_with(get.body, "GET /echo/h/b\n"),
		  "GET after HEAD: body \"%s\"", get.body ?: "");
	snprintf(len, sizeof(len), "%zu", get.body_len);
	cr_expect_str_eq(client_header(&head, "Content-Length") ?: "(absent)",
			 len, "the cold HEAD's Content-Length");
	cr_expect_eq(origin_count(origin), 2, "the GET reached the origin");
	client_response_free(&get);
	client_response_free(&head);
}

/* --- 6. keys ------------------------------------------------------------- */

static void start_key_routes(void)
{
	start_strata_yaml("routes:\n"
			  "  - path: /echo/qi/*\n"
			  "    ttl: 60s\n"
			  "    query: ignore\n"
			  "  - path: /echo/qk/*\n"
			  "    ttl: 60s\n"
			  "    query: [a]\n"
			  "  - path: /echo/qs/*\n"
			  "    ttl: 60s\n"
			  "    query: [b, a]\n"
			  "  - path: /echo/qr/*\n"
			  "    ttl: 60s\n"
			  "  - path: /echo/v/*\n"
			  "    ttl: 60s\n"
			  "    vary: [Accept-Language]\n",
			  NULL);
}

/* GET `path`, expect a hit whose body the origin made for `origin_target`. */
static void expect_hit_of(const char *path, const char *const *headers,
			  const char *origin_target)
{
	struct client_response r;
	char line[256];

	request("GET", path, headers, 200, &r);
	cr_expect(is_hit(cache_status(&r), NULL),
		  "%s: Cache-Status \"%s\", expected a hit", path,
		  cache_status(&r));
	snprintf(line, sizeof(line), "GET %s\n", origin_target);
	cr_expect(starts_with(r.body, line),
		  "%s: expected the answer to %s, got:\n%s", path,
		  origin_target, r.body ?: "");
	client_response_free(&r);
}

Test(cache, query_ignore_drops_the_query_from_the_key, .timeout = 60)
{
	start_key_routes();
	expect_cs("GET", "/echo/qi/x?a=1", NULL, 200, CS_STORED);
	expect_hit_of("/echo/qi/x?a=2", NULL, "/echo/qi/x?a=1");
	expect_hit_of("/echo/qi/x", NULL, "/echo/qi/x?a=1");
	cr_expect_eq(origin_count_prefix(origin, "/echo/qi/"), 1);
	/* The origin still gets the query as sent. */
	cr_expect_str_eq(origin_last(origin)->target, "/echo/qi/x?a=1");
	/* The path still counts. */
	expect_cs("GET", "/echo/qi/y?a=1", NULL, 200, CS_STORED);
	cr_expect_eq(origin_count_prefix(origin, "/echo/qi/"), 2);
}

Test(cache, query_list_keeps_only_the_named_parameters, .timeout = 60)
{
	start_key_routes();
	/* query: [a] */
	expect_cs("GET", "/echo/qk/x?a=1&b=2", NULL, 200, CS_STORED);
	expect_hit_of("/echo/qk/x?b=3&a=1", NULL, "/echo/qk/x?a=1&b=2");
	expect_cs("GET", "/echo/qk/x?a=2", NULL, 200, CS_STORED);
	cr_expect_eq(origin_count_prefix(origin, "/echo/qk/"), 2);

	/* query: [b, a]: kept parameters are sorted, others dropped. */
	expect_cs("GET", "/echo/qs/x?a=1&b=2&c=9", NULL, 200, CS_STORED);
	expect_hit_of("/echo/qs/x?c=0&b=2&a=1", NULL,
		      "/echo/qs/x?a=1&b=2&c=9");
	expect_cs("GET", "/echo/qs/x?a=1", NULL, 200, CS_STORED);
	expect_cs("GET", "/echo/qs/x?a=1&b=3", NULL, 200, CS_STORED);
	cr_expect_eq(origin_count_prefix(origin, "/echo/qs/"), 3);
}

Test(cache, raw_query_is_the_default_key, .timeout = 60)
{
	start_key_routes();
	expect_cs("GET", "/echo/qr/x?a=1&b=2", NULL, 200, CS_STORED);
	expect_cs("GET", "/echo/qr/x?b=2&a=1", NULL, 200, CS_STORED);
	expect_cs("GET", "/echo/qr/x", NULL, 200, CS_STORED);
	cr_expect_eq(origin_count_prefix(origin, "/echo/qr/"), 3);
	expect_hit_of("/echo/qr/x?a=1&b=2", NULL, "/echo/qr/x?a=1&b=2");
	expect_hit_of("/echo/qr/x?b=2&a=1", NULL, "/echo/qr/x?b=2&a=1");
	cr_expect_eq(origin_count_prefix(origin, "/echo/qr/"), 3);
}

Test(cache, vary_headers_split_the_key, .timeout = 60)
{
	const char *const fr[] = {"Accept-Language: fr", NULL};
	const char *const en[] = {"Accept-Language: en", NULL};
	struct client_response r;

	start_key_routes();
	expect_cs("GET", "/echo/v/x", fr, 200, CS_STORED);
	expect_cs("GET", "/echo/v/x", en, 200, CS_STORED);
	cr_expect_eq(origin_count_prefix(origin, "/echo/v/"), 2);

	request("GET", "/echo/v/x", fr, 200, &r);
	cr_expect(is_hit(cache_status(&r), NULL),
		  "fr again: Cache-Status \"%s\"", cache_status(&r));
	cr_expect(r.body != NULL &&
			  strstr(r.body, "\nAccept-Language: fr\n") != NULL,
		  "fr again got another language's answer:\n%s",
		  r.body ?: "");
	client_response_free(&r);
	request("GET", "/echo/v/x", en, 200, &r);
	cr_expect(is_hit(cache_status(&r), NULL),
		  "en again: Cache-Status \"%s\"", cache_status(&r));
	cr_expect(r.body != NULL &&
			  strstr(r.body, "\nAccept-Language: en\n") != NULL,
		  "en again got another language's answer:\n%s",
		  r.body ?: "");
	client_response_free(&r);
	cr_expect_eq(origin_count_prefix(origin, "/echo/v/"), 2);

	/* No Accept-Language at all is a third variant. */
	expect_cs("GET", "/echo/v/x", NULL, 200, CS_STORED);
	cr_expect_eq(origin_count_prefix(origin, "/echo/v/"), 3);
}

/* --- 7. the memory budget ------------------------------------------------ */

Test(cache, memory_budget_evicts_the_oldest_entries, .timeout = 60)
{
	enum { KEYS = 160, BYTES = 256 * 1024, RECENT = 3, OLDEST = 10 };
	struct client_options opts = { .hash_only = true };
	struct client_response r;
	long rss_before, rss_after, status;
	char path[96];
	/*
	 * Under AddressSanitizer freed memory sits in a quarantine (256 MiB
	 * by default) instead of being reused, which would count every
	 * evicted entry as growth; a small quarantine keeps the RSS
	 * measurement meaningful (as in test_proxy.c).
	 */
	char asan[512];
	const char *env[] = { asan, NULL };
	const char *inherited = getenv("ASAN_OPTIONS");
	const char *sanitizer = getenv("STRATA_TEST_SANITIZER");

	snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%squarantine_size_mb=1",
		 inherited ? inherited : "", inherited ? ":" : "");
	/* The memory tier alone: with the disk tier on, evicted entries
	 * would (rightly) come back as disk hits. */
	start_strata_env(env, "--memory", "4MiB", "--route", "/big=60s",
			 "--set", "cache.disk.enabled=false", NULL);
	expect_cs("GET", "/echo/warm-up", NULL, 200, "strata; fwd=bypass");
	rss_before = proc_status_kib(strata, "VmRSS");
	cr_assert_gt(rss_before, 0, "cannot read strata's VmRSS");

	/* 40 MiB of distinct entries through a 4 MiB tier (room for about
	 * 15 of them). */
	for (unsigned i = 0; i < KEYS; i++) {
		snprintf(path, sizeof(path), "/big?bytes=%u&seed=%u", BYTES,
			 i);
		status = client_request_opts(url(path), &opts, &r);
		cr_assert_eq(status, 200, "%s: status %ld (%s)", path, status,
			     r.error);
		cr_assert_eq(r.body_hash, origin_big_hash(BYTES, i),
			     "%s: the body changed on the way", path);
		cr_expect_str_eq(cache_status(&r), CS_STORED, "%s", path);
		client_response_free(&r);
	}
	rss_after = proc_status_kib(strata, "VmRSS");
	cr_assert_eq(origin_count_prefix(origin, "/big"), KEYS);

	/* The newest entries are still there... */
	for (unsigned i = KEYS - RECENT; i < KEYS; i++) {
		snprintf(path, sizeof(path), "/big?bytes=%u&seed=%u", BYTES,
			 i);
		status = client_request_opts(url(path), &opts, &r);
		cr_expect_eq(status, 200);
		cr_expect_eq(r.body_hash, origin_big_hash(BYTES, i));
		cr_expect(is_hit(cache_status(&r), NULL),
			  "%s, one of the last stored: Cache-Status \"%s\"",
			  path, cache_status(&r));
		client_response_free(&r);
		cr_expect_eq(origin_count_target(path), 1);
	}
	/* ...and the oldest were evicted: they go upstream again. */
	for (unsigned i = 0; i < OLDEST; i++) {
		snprintf(path, sizeof(path), "/big?bytes=%u&seed=%u", BYTES,
			 i);
		status = client_request_opts(url(path), &opts, &r);
		cr_expect_eq(status, 200);
		cr_expect_eq(r.body_hash, origin_big_hash(BYTES, i));
		cr_expect_str_eq(cache_status(&r), CS_STORED,
				 "%s, one of the first stored: Cache-Status "
				 "\"%s\"", path, cache_status(&r));
		client_response_free(&r);
		cr_expect_eq(origin_count_target(path), 2,
			     "%s: origin count %zu, expected 2 (evicted)",
			     path, origin_count_target(path));
	}

	/* 40 MiB went through a 4 MiB tier: an unbounded tier would have
	 * grown by more than 40 MiB; the bound leaves room for allocator
	 * slack and sanitizers (about 8 MiB growth under ASan on the build
	 * host).  ThreadSanitizer's shadow memory grows with every byte
	 * touched, so not under it. */
	if (sanitizer != NULL && strcmp(sanitizer, "thread") == 0)
		return;
	cr_expect_lt(rss_after - rss_before, 24 * 1024,
		     "strata's VmRSS grew by %ld KiB (%ld -> %ld) with a "
		     "4 MiB memory tier", rss_after - rss_before, rss_before,
		     rss_after);
}

/* --- 8. too big to store ------------------------------------------------- */

Test(cache, objects_over_max_object_size_are_streamed_not_stored,
     .timeout = 60)
{
	enum { BYTES = 1024 * 1024 };
	struct client_options opts = {
		.hash_only = true,
		.timeout_ms = proc_scaled_ms(30000),
	};
	const char *path = "/big?bytes=1048576&seed=5";
	struct client_response r;
	long status;

	start_strata("--route", "/big=60s",
		     "--set", "cache.max_object_size=64KiB", NULL);
	for (int i = 1; i <= 2; i++) {
		status = client_request_opts(url(path), &opts, &r);
		cr_expect_eq(status, 200, "request %d: status %ld (%s)", i,
			     status, r.error);
		cr_expect_eq(r.body_len, BYTES, "request %d: %zu bytes", i,
			     r.body_len);
		cr_expect_eq(r.body_hash, origin_big_hash(BYTES, 5),
			     "request %d: the body changed on the way", i);
		cr_expect_str_eq(cache_status(&r), CS_MISS, "request %d", i);
		client_response_free(&r);
		cr_expect_eq(origin_count_target(path), (size_t)i,
			     "request %d: origin count %zu", i,
			     origin_count_target(path));
	}
	/* A small object on the same route is still stored. */
	expect_cs("GET", "/big?bytes=1024&seed=5", NULL, 200, CS_STORED);
	expect_hit("GET", "/big?bytes=1024&seed=5", NULL, 200);
}

/* --- 9. methods ---------------------------------------------------------- */

Test(cache, post_is_not_cached, .timeout = 60)
{
	start_strata("--route", "/echo/p/*=60s", NULL);
	expect_cs("POST", "/echo/p/a", NULL, 200, CS_METHOD);
	expect_cs("POST", "/echo/p/a", NULL, 200, CS_METHOD);
	cr_expect_eq(origin_count_target("/echo/p/a"), 2,
		     "origin count %zu, expected every POST upstream",
		     origin_count_target("/echo/p/a"));
	cr_expect_str_eq(origin_last(origin)->method, "POST");
	/* Nor did the POSTs leave an entry behind for GET. */
	expect_cs("GET", "/echo/p/a", NULL, 200, CS_STORED);
	expect_hit("GET", "/echo/p/a", NULL, 200);
	expect_cs("POST", "/echo/p/a", NULL, 200, CS_METHOD);
	cr_expect_eq(origin_count_target("/echo/p/a"), 4);
}

Test(cache, methods_option_limits_what_is_cached, .timeout = 60)
{
	start_strata_yaml("routes:\n"
			  "  - path: /echo/g/*\n"
			  "    ttl: 60s\n"
			  "    methods: [GET]\n",
			  NULL);
	expect_cs("GET", "/echo/g/a", NULL, 200, CS_STORED);
	expect_cs("HEAD", "/echo/g/a", NULL, 200, CS_METHOD);
	cr_expect_eq(origin_count_target("/echo/g/a"), 2);
	cr_expect_str_eq(origin_last(origin)->method, "HEAD");
}
