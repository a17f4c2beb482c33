/*
 * Unit tests for src/obs/metrics.c (suite `metrics`) and for the strict
 * Prometheus text parser the tests use, tests/helpers/prom.c (suite
 * `prom`).
 *
 * Every exposition rendered here goes through prom_parse(), so the
 * format is checked by the strict parser rather than by matching text;
 * the parser itself is checked first against valid documents and a table
 * of malformed ones.  Concurrency is exercised with real threads here
 * (exact sums after joins, scrapes during recording) and by
 * tests/stress/stress_metrics.c under ThreadSanitizer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/metrics.h"
#include "../helpers/prom.h"
#include "strata/config.h"

/* Every test has the same hard timeout (seconds). */
#define TIMEOUT .timeout = 60

#define GET STRATA_METHOD_GET
#define HEAD STRATA_METHOD_HEAD
#define POST STRATA_METHOD_POST
#define OTHER STRATA_METHOD_OTHER

static const char *const all_results[] = {
	"hit", "miss", "bypass", "stale", "collapsed", "error",
};

/* The families every exposition has, with their types. */
static const struct {
	const char *name;
	enum prom_type type;
} families[] = {
	{ "strata_requests_total", PROM_COUNTER },
	{ "strata_request_duration_seconds", PROM_HISTOGRAM },
	{ "strata_upstream_requests_total", PROM_COUNTER },
	{ "strata_upstream_duration_seconds", PROM_HISTOGRAM },
	{ "strata_upstream_in_flight", PROM_GAUGE },
	{ "strata_tier_hits_total", PROM_COUNTER },
	{ "strata_tier_misses_total", PROM_COUNTER },
	{ "strata_tier_entries", PROM_GAUGE },
	{ "strata_tier_bytes", PROM_GAUGE },
	{ "strata_tier_limit_bytes", PROM_GAUGE },
	{ "strata_tier_evictions_total", PROM_COUNTER },
	{ "strata_tier_up", PROM_GAUGE },
	{ "strata_tier_enabled", PROM_GAUGE },
	{ "strata_store_dropped_total", PROM_COUNTER },
	{ "strata_purges_total", PROM_COUNTER },
	{ "strata_invalidations_dropped_total", PROM_COUNTER },
	{ "strata_coalesced_requests_total", PROM_COUNTER },
	{ "strata_origin_seconds_saved_total", PROM_COUNTER },
	{ "process_resident_memory_bytes", PROM_GAUGE },
	{ "process_open_fds", PROM_GAUGE },
	{ "process_start_time_seconds", PROM_GAUGE },
};
#define N_FAMILIES (sizeof(families) / sizeof(families[0]))

static struct strata_metrics *new_metrics(const struct strata_metrics_route *r,
					  size_t n)
{
	struct strata_metrics *m = NULL;

	cr_assert_eq(strata_metrics_new(r, n, &m), 0);
	cr_assert_not_null(m);
	return m;
}

/* Render and parse strictly; the text goes to *text_out when asked. */
static struct prom_doc *scrape_tiers(struct strata_metrics *m,
				     const struct strata_metrics_tier *tiers,
				     size_t n_tiers, char **text_out)
{
	char *text = NULL;
	size_t len = 0;
	struct prom_doc *doc = NULL;
	char err[512];
	int rc;

	cr_assert_eq(strata_metrics_render(m, tiers, n_tiers, &text, &len), 0);
	cr_assert_not_null(text);
	cr_assert_eq(strlen(text), len);
	rc = prom_parse(text, &doc, err, sizeof(err));
	cr_assert_eq(rc, 0, "strict parse failed: %s\n--- exposition ---\n%s",
		     err, text);
	if (text_out != NULL)
		*text_out = text;
	else
		free(text);
	return doc;
}

static struct prom_doc *scrape(struct strata_metrics *m)
{
	return scrape_tiers(m, NULL, 0, NULL);
}

/* Every family present, typed, with HELP text. */
static void expect_all_families(const struct prom_doc *doc)
{
	for (size_t i = 0; i < N_FAMILIES; i++) {
		const struct prom_family *f =
			prom_find_family(doc, families[i].name);

		cr_assert_not_null(f, "family %s missing", families[i].name);
		cr_expect(prom_has_family(doc, families[i].name,
					  families[i].type),
			  "family %s has type %s", families[i].name,
			  prom_type_name(f->type));
		cr_expect(f->help != NULL && f->help[0] != '\0',
			  "family %s has no HELP", families[i].name);
	}
	cr_expect_eq(prom_family_count(doc), N_FAMILIES);
}

static double value_of(const struct prom_doc *doc, const char *name,
		       const char *labels)
{
	bool found = false;
	double v = prom_value(doc, name, labels, &found);

	cr_assert(found, "series %s{%s} missing", name, labels);
	return v;
}

static bool has_series(const struct prom_doc *doc, const char *name,
		       const char *labels)
{
	bool found = false;

	prom_value(doc, name, labels, &found);
	return found;
}

static double requests(const struct prom_doc *doc, const char *route,
		       const char *method, const char *cache)
{
	char labels[256];

	snprintf(labels, sizeof(labels),
		 "route=\"%s\",method=\"%s\",cache=\"%s\"", route, method,
		 cache);
	return value_of(doc, "strata_requests_total", labels);
}

/* ---------------------------------------------------------------- metrics */

Test(metrics, cache_result_names, TIMEOUT)
{
	for (int r = 0; r < STRATA_CACHE_N_RESULTS; r++)
		cr_expect_str_eq(strata_cache_result_name(r), all_results[r]);
}

Test(metrics, free_accepts_null, TIMEOUT)
{
	struct strata_metrics *m = NULL;

	strata_metrics_free(&m);
	strata_metrics_free(NULL);
	m = new_metrics(NULL, 0);
	strata_metrics_free(&m);
	cr_expect_null(m);
}

Test(metrics, route_without_name_is_einval, TIMEOUT)
{
	struct strata_metrics_route r = { .name = NULL, .methods = GET };
	struct strata_metrics *m = (void *)1;

	cr_expect_eq(strata_metrics_new(&r, 1, &m), -EINVAL);
	cr_expect_null(m);
}

Test(metrics, zero_series_present_at_start, TIMEOUT)
{
	struct strata_metrics_route routes[] = {
		{ "api", GET },
		{ "upload", POST | STRATA_METHOD_PUT },
		{ "all", GET | POST | STRATA_METHOD_DELETE | OTHER },
	};
	struct strata_metrics_tier tiers[] = {
		{ .name = "memory", .on = true, .up = true, .hits = 5,
		  .misses = 6, .entries = 7, .bytes = 8, .limit = 9,
		  .evictions = 10, .dropped = 11 },
		{ .name = "disk", .on = true, .up = false },
		/* Off: zero figures whatever is passed. */
		{ .name = "redis", .on = false, .up = true, .hits = 99,
		  .misses = 99, .entries = 99, .bytes = 99, .limit = 99,
		  .evictions = 99, .dropped = 99 },
	};
	struct strata_metrics *m = new_metrics(routes, 3);
	struct prom_doc *doc = scrape_tiers(m, tiers, 3, NULL);
	time_t now = time(NULL);
	double start;

	expect_all_families(doc);
	for (size_t c = 0; c < 6; c++) {
		const char *r = all_results[c];
		char l[128];

		/* GET implies HEAD. */
		cr_expect_eq(requests(doc, "api", "GET", r), 0);
		cr_expect_eq(requests(doc, "api", "HEAD", r), 0);
		cr_expect_eq(requests(doc, "upload", "POST", r), 0);
		cr_expect_eq(requests(doc, "upload", "PUT", r), 0);
		cr_expect_eq(requests(doc, "all", "DELETE", r), 0);
		cr_expect_eq(requests(doc, "all", "OTHER", r), 0);
		cr_expect_eq(requests(doc, "all", "HEAD", r), 0);
		snprintf(l, sizeof(l), "route=\"api\",method=\"POST\","
			 "cache=\"%s\"", r);
		cr_expect(!has_series(doc, "strata_requests_total", l));
		snprintf(l, sizeof(l), "route=\"upload\",method=\"HEAD\","
			 "cache=\"%s\"", r);
		cr_expect(!has_series(doc, "strata_requests_total", l));
		for (size_t i = 0; i < 3; i++) {
			snprintf(l, sizeof(l), "route=\"%s\",cache=\"%s\"",
				 routes[i].name, r);
			cr_expect_eq(value_of(doc,
				"strata_request_duration_seconds_count", l), 0);
			snprintf(l, sizeof(l), "route=\"%s\",cache=\"%s\","
				 "le=\"+Inf\"", routes[i].name, r);
			cr_expect_eq(value_of(doc,
				"strata_request_duration_seconds_bucket", l),
				0);
		}
	}
	/* No route: GET and HEAD, bypass only. */
	cr_expect_eq(requests(doc, "", "GET", "bypass"), 0);
	cr_expect_eq(requests(doc, "", "HEAD", "bypass"), 0);
	cr_expect(!has_series(doc, "strata_requests_total",
			      "route=\"\",method=\"GET\",cache=\"hit\""));
	cr_expect(has_series(doc, "strata_request_duration_seconds_count",
			     "route=\"\",cache=\"bypass\""));
	cr_expect(!has_series(doc, "strata_request_duration_seconds_count",
			      "route=\"\",cache=\"miss\""));
	/* 3 routes with 2, 2 and 5 methods × 6 results, and 2 unrouted. */
	cr_expect_eq(prom_find_family(doc, "strata_requests_total")->n_samples,
		     (2 + 2 + 5) * 6 + 2);

	{
		static const char *const classes[] = { "1xx", "2xx", "3xx",
						       "4xx", "5xx", "error" };

		for (size_t i = 0; i < 6; i++) {
			char l[64];

			snprintf(l, sizeof(l), "status_class=\"%s\"",
				 classes[i]);
			cr_expect_eq(value_of(doc,
				"strata_upstream_requests_total", l), 0);
		}
	}
	cr_expect_eq(value_of(doc, "strata_upstream_duration_seconds_count",
			      ""), 0);
	cr_expect_eq(value_of(doc, "strata_upstream_in_flight", ""), 0);
	cr_expect_eq(value_of(doc, "strata_coalesced_requests_total", ""), 0);
	cr_expect_eq(value_of(doc, "strata_origin_seconds_saved_total",
			      "route=\"api\""), 0);
	cr_expect_eq(value_of(doc, "strata_origin_seconds_saved_total",
			      "route=\"\""), 0);

	cr_expect_eq(value_of(doc, "strata_tier_hits_total",
			      "tier=\"memory\""), 5);
	cr_expect_eq(value_of(doc, "strata_tier_misses_total",
			      "tier=\"memory\""), 6);
	cr_expect_eq(value_of(doc, "strata_tier_entries", "tier=\"memory\""),
		     7);
	cr_expect_eq(value_of(doc, "strata_tier_bytes", "tier=\"memory\""), 8);
	cr_expect_eq(value_of(doc, "strata_tier_limit_bytes",
			      "tier=\"memory\""), 9);
	cr_expect_eq(value_of(doc, "strata_tier_evictions_total",
			      "tier=\"memory\""), 10);
	cr_expect_eq(value_of(doc, "strata_store_dropped_total",
			      "tier=\"memory\""), 11);
	cr_expect_eq(value_of(doc, "strata_tier_up", "tier=\"memory\""), 1);
	cr_expect_eq(value_of(doc, "strata_tier_up", "tier=\"disk\""), 0);
	cr_expect_eq(value_of(doc, "strata_tier_up", "tier=\"redis\""), 0);
	/* Down and off differ only here. */
	cr_expect_eq(value_of(doc, "strata_tier_enabled", "tier=\"memory\""),
		     1);
	cr_expect_eq(value_of(doc, "strata_tier_enabled", "tier=\"disk\""), 1);
	cr_expect_eq(value_of(doc, "strata_tier_enabled", "tier=\"redis\""),
		     0);
	cr_expect_eq(prom_sum(doc, "strata_tier_hits_total",
			      "tier=\"redis\"", NULL), 0);
	cr_expect_eq(value_of(doc, "strata_store_dropped_total",
			      "tier=\"redis\""), 0);
	cr_expect_eq(value_of(doc, "strata_tier_bytes", "tier=\"redis\""), 0);

	cr_expect_gt(value_of(doc, "process_resident_memory_bytes", ""), 0);
	cr_expect_gt(value_of(doc, "process_open_fds", ""), 2);
	start = value_of(doc, "process_start_time_seconds", "");
	cr_expect(start <= (double)now + 1 && start > (double)now - 86400,
		  "start time %f, now %ld", start, (long)now);
	prom_free(&doc);
	strata_metrics_free(&m);
}

/* Records every kind of event, with extreme values. */
static void record_everything(struct strata_metrics *m, size_t n_routes)
{
	static const uint64_t durations[] = { 0, 1, 500, 501, 999999,
					      10000000, 10000001, UINT32_MAX };
	static const unsigned statuses[] = { 0, 99, 100, 204, 304, 404, 503,
					     599, 600, 1000 };

	for (size_t r = 0; r <= n_routes; r++)
		for (unsigned bit = 1; bit <= OTHER; bit <<= 1)
			for (int c = 0; c < STRATA_CACHE_N_RESULTS; c++)
				for (size_t d = 0; d < 8; d++)
					strata_metrics_request(m, r, bit, c,
							       durations[d]);
	for (size_t r = 0; r <= n_routes; r++)
		for (size_t i = 0; i < 10; i++)
			strata_metrics_upstream(m, r, statuses[i], i * 777);
	strata_metrics_upstream_inflight(m, 3);
	strata_metrics_upstream_inflight(m, -1);
	strata_metrics_store_dropped(m, "memory");
	strata_metrics_store_dropped(m, "disk");
	strata_metrics_store_dropped(m, "redis");
}

Test(metrics, render_parses_strictly_in_every_situation, TIMEOUT)
{
	static const struct strata_metrics_route plain[] = {
		{ "api", GET }, { "static", GET | HEAD }, { "write", POST },
	};
	static const struct strata_metrics_route shared_names[] = {
		{ "api", GET }, { "api", POST }, { "other", GET },
		{ "api", GET }, { "", GET },
	};
	static const struct strata_metrics_route odd_names[] = {
		{ "q\"uote", GET }, { "back\\slash", GET },
		{ "new\nline", GET }, { "ünïcødé ✓", GET },
		{ "{braces}=,", GET }, { "no methods", 0 },
	};
	static struct strata_metrics_route many[300];
	static char many_names[300][16];
	static const struct strata_metrics_tier three[] = {
		{ .name = "memory", .on = true, .up = true },
		{ .name = "disk", .on = false },
		{ .name = "redis", .on = true, .up = false },
	};
	static const struct strata_metrics_tier repeated[] = {
		{ .name = "memory", .on = true, .up = true, .hits = 1 },
		{ .name = "memory", .on = true, .up = true, .hits = 2 },
		{ .name = "other\"tier", .on = true, .up = true },
	};
	struct {
		const char *what;
		const struct strata_metrics_route *routes;
		size_t n_routes;
		const struct strata_metrics_tier *tiers;
		size_t n_tiers;
		bool record;
	} cases[] = {
		{ "no routes, no tiers", NULL, 0, NULL, 0, false },
		{ "no routes, events", NULL, 0, three, 3, true },
		{ "fresh", plain, 3, three, 3, false },
		{ "events", plain, 3, three, 3, true },
		{ "shared names, fresh", shared_names, 5, three, 3, false },
		{ "shared names, events", shared_names, 5, three, 3, true },
		{ "odd names", odd_names, 6, three, 3, true },
		{ "repeated tiers", plain, 3, repeated, 3, true },
		{ "drops without tiers", plain, 3, NULL, 0, true },
		{ "many routes", many, 300, three, 3, true },
	};

	for (size_t i = 0; i < 300; i++) {
		snprintf(many_names[i], sizeof(many_names[i]), "r%zu", i);
		many[i].name = many_names[i];
		many[i].methods = (unsigned)i & 0xff;
	}
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct strata_metrics *m =
			new_metrics(cases[k].routes, cases[k].n_routes);
		struct prom_doc *doc;

		if (cases[k].record)
			record_everything(m, cases[k].n_routes);
		doc = scrape_tiers(m, cases[k].tiers, cases[k].n_tiers, NULL);
		expect_all_families(doc);
		if (cases[k].record)
			cr_expect_eq(prom_sum(doc, "strata_store_dropped_total",
					      "", NULL), 3, "%s",
				     cases[k].what);
		prom_free(&doc);
		strata_metrics_free(&m);
	}
}

Test(metrics, shared_route_names_share_series, TIMEOUT)
{
	struct strata_metrics_route routes[] = {
		{ "api", GET }, { "api", POST }, { "solo", GET }, { "", GET },
	};
	struct strata_metrics *m = new_metrics(routes, 4);
	struct strata_metrics_route_stats st;
	struct prom_doc *doc;

	strata_metrics_request(m, 0, GET, STRATA_CACHE_HIT, 10);
	strata_metrics_request(m, 1, GET, STRATA_CACHE_HIT, 10);
	strata_metrics_request(m, 1, POST, STRATA_CACHE_BYPASS, 10);
	strata_metrics_request(m, 3, GET, STRATA_CACHE_MISS, 10);
	strata_metrics_request(m, 4, GET, STRATA_CACHE_MISS, 10);
	doc = scrape(m);
	cr_expect_eq(requests(doc, "api", "GET", "hit"), 2);
	cr_expect_eq(requests(doc, "api", "POST", "bypass"), 1);
	/* The union of the two routes' methods is listed. */
	cr_expect_eq(requests(doc, "api", "POST", "miss"), 0);
	cr_expect_eq(requests(doc, "", "GET", "miss"), 2);
	cr_expect_eq(requests(doc, "", "GET", "hit"), 0);
	cr_expect_eq(value_of(doc, "strata_request_duration_seconds_count",
			      "route=\"api\",cache=\"hit\""), 2);
	prom_free(&doc);
	/* route_stats stays per index. */
	strata_metrics_route_stats(m, 1, &st);
	cr_expect_eq(st.requests, 2);
	cr_expect_eq(st.hits, 1);
	strata_metrics_free(&m);
}

Test(metrics, histogram_buckets_are_cumulative_and_consistent, TIMEOUT)
{
	static const char *const le[] = {
		"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
		"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
	};
	/* Durations and the bucket index each falls in (le is inclusive). */
	static const struct {
		uint64_t us;
		int bucket;
	} obs[] = {
		{ 0, 0 }, { 500, 0 }, { 501, 1 }, { 1000, 1 }, { 1001, 2 },
		{ 7000, 4 }, { 250000, 8 }, { 999999, 10 }, { 1000000, 10 },
		{ 10000000, 13 }, { 10000001, 14 }, { 3600000000ull, 14 },
	};
	struct strata_metrics_route routes[] = { { "api", GET } };
	struct strata_metrics *m = new_metrics(routes, 1);
	uint64_t per_bucket[15] = { 0 }, cumulative = 0, sum_us = 0;
	struct prom_doc *doc;
	char *text;

	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
		strata_metrics_request(m, 0, GET, STRATA_CACHE_MISS, obs[i].us);
		strata_metrics_upstream(m, 0, 200, obs[i].us);
		per_bucket[obs[i].bucket]++;
		sum_us += obs[i].us;
	}
	doc = scrape_tiers(m, NULL, 0, &text);
	for (int b = 0; b < 15; b++) {
		char l[128];

		cumulative += per_bucket[b];
		snprintf(l, sizeof(l), "route=\"api\",cache=\"miss\",le=\"%s\"",
			 le[b]);
		cr_expect_eq(value_of(doc,
				      "strata_request_duration_seconds_bucket",
				      l), (double)cumulative, "le=%s", le[b]);
		snprintf(l, sizeof(l), "le=\"%s\"", le[b]);
		cr_expect_eq(value_of(doc,
				      "strata_upstream_duration_seconds_bucket",
				      l), (double)cumulative, "le=%s", le[b]);
	}
	cr_expect_eq(value_of(doc, "strata_request_duration_seconds_count",
			      "route=\"api\",cache=\"miss\""),
		     (double)cumulative);
	cr_expect_eq(value_of(doc, "strata_upstream_duration_seconds_count",
			      ""), (double)cumulative);
	cr_expect_eq(value_of(doc, "strata_request_duration_seconds_sum",
			      "route=\"api\",cache=\"miss\""),
		     (double)sum_us / 1e6);
	cr_expect_eq(value_of(doc, "strata_upstream_duration_seconds_sum", ""),
		     (double)sum_us / 1e6);
	/* The sum is written as exact decimal seconds. */
	cr_expect_not_null(strstr(text, "strata_upstream_duration_seconds_sum "
				  "3622.260002\n"), "%s", text);
	/* Other cache results of the route stay at zero. */
	cr_expect_eq(value_of(doc, "strata_request_duration_seconds_count",
			      "route=\"api\",cache=\"hit\""), 0);
	free(text);
	prom_free(&doc);
	strata_metrics_free(&m);
}

Test(metrics, label_values_are_escaped, TIMEOUT)
{
	const char *name = "a\"b\\c\nd";
	struct strata_metrics_route routes[] = { { name, GET } };
	struct strata_metrics_tier tier = { .name = "t\"\\\n", .on = true,
					    .up = true, .hits = 4 };
	struct strata_metrics *m = new_metrics(routes, 1);
	struct prom_doc *doc;
	char *text;
	bool found = false;

	strata_metrics_request(m, 0, GET, STRATA_CACHE_HIT, 1);
	doc = scrape_tiers(m, &tier, 1, &text);
	cr_expect_not_null(strstr(text, "strata_requests_total{route=\"a\\\"b"
				  "\\\\c\\nd\",method=\"GET\",cache=\"hit\"} "
				  "1\n"), "%s", text);
	cr_expect_not_null(strstr(text, "strata_tier_hits_total{tier=\"t\\\""
				  "\\\\\\n\"} 4\n"), "%s", text);
	/* And the parser gives the original bytes back. */
	for (size_t i = 0; i < prom_find_family(doc, "strata_requests_total")
				       ->n_samples; i++) {
		const struct prom_sample *s =
			&prom_find_family(doc, "strata_requests_total")
				 ->samples[i];

		if (strcmp(prom_label(s, "route"), name) == 0 &&
		    strcmp(prom_label(s, "cache"), "hit") == 0 &&
		    strcmp(prom_label(s, "method"), "GET") == 0) {
			cr_expect_eq(s->value, 1);
			found = true;
		}
	}
	cr_expect(found);
	cr_expect_eq(value_of(doc, "strata_requests_total",
			      "cache=\"hit\",route=\"a\\\"b\\\\c\\nd\","
			      "method=\"GET\""), 1);
	free(text);
	prom_free(&doc);
	strata_metrics_free(&m);
}

Test(metrics, origin_seconds_saved_is_hits_times_mean_fetch, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "slow", GET },
						  { "other", GET } };
	struct strata_metrics *m = new_metrics(routes, 2);
	struct strata_metrics_route_stats st;
	struct prom_doc *doc;

	/* Before any fetch a hit saves nothing known. */
	strata_metrics_request(m, 0, GET, STRATA_CACHE_HIT, 5);
	strata_metrics_route_stats(m, 0, &st);
	cr_expect_eq(st.origin_seconds_saved, 0);

	/* Mean of the fetches that got a status: (100 + 300) / 2 ms; the
	 * failed fetch does not count. */
	strata_metrics_upstream(m, 0, 200, 100000);
	strata_metrics_upstream(m, 0, 503, 300000);
	strata_metrics_upstream(m, 0, 0, 30000000);
	/* Saving: hit, stale, collapsed; not miss, bypass, error. */
	strata_metrics_request(m, 0, GET, STRATA_CACHE_HIT, 5);
	strata_metrics_request(m, 0, HEAD, STRATA_CACHE_HIT, 5);
	strata_metrics_request(m, 0, GET, STRATA_CACHE_STALE, 5);
	strata_metrics_request(m, 0, GET, STRATA_CACHE_COLLAPSED, 5);
	strata_metrics_request(m, 0, GET, STRATA_CACHE_MISS, 5);
	strata_metrics_request(m, 0, GET, STRATA_CACHE_BYPASS, 5);
	strata_metrics_request(m, 0, GET, STRATA_CACHE_ERROR, 5);
	/* Another route's hits use that route's mean (none yet). */
	strata_metrics_request(m, 1, GET, STRATA_CACHE_HIT, 5);

	strata_metrics_route_stats(m, 0, &st);
	cr_expect_float_eq(st.origin_seconds_saved, 0.8, 1e-9);
	cr_expect_eq(st.requests, 8);
	cr_expect_eq(st.hits, 4);   /* hit ×3 and stale */
	cr_expect_eq(st.collapsed, 1);
	doc = scrape(m);
	cr_expect_float_eq(value_of(doc, "strata_origin_seconds_saved_total",
				    "route=\"slow\""), 0.8, 1e-9);
	cr_expect_eq(value_of(doc, "strata_origin_seconds_saved_total",
			      "route=\"other\""), 0);
	prom_free(&doc);

	/* A later, slower fetch raises the credit of later hits only: the
	 * counter never goes down. */
	strata_metrics_upstream(m, 0, 200, 1100000);   /* mean now 500 ms */
	strata_metrics_request(m, 0, GET, STRATA_CACHE_HIT, 5);
	strata_metrics_route_stats(m, 0, &st);
	cr_expect_float_eq(st.origin_seconds_saved, 1.3, 1e-9);
	strata_metrics_upstream(m, 1, 200, 2000);
	strata_metrics_request(m, 1, GET, STRATA_CACHE_HIT, 5);
	strata_metrics_route_stats(m, 1, &st);
	cr_expect_float_eq(st.origin_seconds_saved, 0.002, 1e-12);
	strata_metrics_free(&m);
}

Test(metrics, route_and_upstream_stats, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", GET }, { "b", GET } };
	struct strata_metrics *m = new_metrics(routes, 2);
	struct strata_metrics_route_stats st;
	struct strata_metrics_upstream_stats up;
	struct prom_doc *doc;

	for (int i = 0; i < 7; i++)
		strata_metrics_request(m, 1, i % 2 ? GET : OTHER,
				       i % 3 == 0 ? STRATA_CACHE_HIT
						  : STRATA_CACHE_MISS, 1);
	strata_metrics_request(m, 2, GET, STRATA_CACHE_BYPASS, 1);
	strata_metrics_route_stats(m, 1, &st);
	cr_expect_eq(st.requests, 7);
	cr_expect_eq(st.hits, 3);
	cr_expect_eq(st.collapsed, 0);
	strata_metrics_route_stats(m, 0, &st);
	cr_expect_eq(st.requests, 0);
	strata_metrics_route_stats(m, 2, &st);
	cr_expect_eq(st.requests, 1);

	strata_metrics_upstream(m, 0, 200, 1);
	strata_metrics_upstream(m, 1, 302, 1);
	strata_metrics_upstream(m, 1, 0, 1);
	strata_metrics_upstream(m, 2, 700, 1);   /* out of range: error */
	strata_metrics_upstream(m, 2, 101, 1);
	strata_metrics_upstream_inflight(m, 1);
	strata_metrics_upstream_inflight(m, 1);
	strata_metrics_upstream_inflight(m, 1);
	strata_metrics_upstream_inflight(m, -1);
	strata_metrics_upstream_stats(m, &up);
	cr_expect_eq(up.requests, 5);
	cr_expect_eq(up.errors, 2);
	cr_expect_eq(up.in_flight, 2);
	doc = scrape(m);
	cr_expect_eq(value_of(doc, "strata_upstream_requests_total",
			      "status_class=\"error\""), 2);
	cr_expect_eq(value_of(doc, "strata_upstream_requests_total",
			      "status_class=\"1xx\""), 1);
	cr_expect_eq(value_of(doc, "strata_upstream_requests_total",
			      "status_class=\"2xx\""), 1);
	cr_expect_eq(value_of(doc, "strata_upstream_requests_total",
			      "status_class=\"3xx\""), 1);
	cr_expect_eq(value_of(doc, "strata_upstream_in_flight", ""), 2);
	cr_expect_eq(requests(doc, "b", "OTHER", "hit"), 2);
	cr_expect_eq(requests(doc, "b", "GET", "hit"), 1);
	prom_free(&doc);
	strata_metrics_free(&m);
}

Test(metrics, coalesced_and_dropped_totals, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", GET }, { "b", POST } };
	struct strata_metrics_tier tiers[] = {
		{ .name = "memory", .on = true, .up = true, .dropped = 10 },
		{ .name = "disk", .on = true, .up = true },
	};
	struct strata_metrics *m = new_metrics(routes, 2);
	struct prom_doc *doc;

	strata_metrics_request(m, 0, GET, STRATA_CACHE_COLLAPSED, 1);
	strata_metrics_request(m, 0, HEAD, STRATA_CACHE_COLLAPSED, 1);
	strata_metrics_request(m, 1, POST, STRATA_CACHE_COLLAPSED, 1);
	strata_metrics_request(m, 1, POST, STRATA_CACHE_HIT, 1);
	strata_metrics_store_dropped(m, "memory");
	strata_metrics_store_dropped(m, "disk");
	strata_metrics_store_dropped(m, "disk");
	strata_metrics_store_dropped(m, "redis");
	doc = scrape_tiers(m, tiers, 2, NULL);
	cr_expect_eq(value_of(doc, "strata_coalesced_requests_total", ""), 3);
	cr_expect_eq(value_of(doc, "strata_store_dropped_total",
			      "tier=\"memory\""), 11);
	cr_expect_eq(value_of(doc, "strata_store_dropped_total",
			      "tier=\"disk\""), 2);
	/* Not passed, but recorded: still rendered. */
	cr_expect_eq(value_of(doc, "strata_store_dropped_total",
			      "tier=\"redis\""), 1);
	cr_expect(!has_series(doc, "strata_tier_up", "tier=\"redis\""));
	prom_free(&doc);
	strata_metrics_free(&m);
}

Test(metrics, purges_by_source_and_kind, TIMEOUT)
{
	static const char *const sources[] = { "admin", "invalidation",
					       "fleet" };
	static const char *const kinds[] = { "key", "path", "prefix", "tag",
					     "all" };
	struct strata_metrics_route routes[] = { { "a", GET } };
	struct strata_metrics *m = new_metrics(routes, 1);
	struct prom_doc *doc;
	char l[64];

	/* Every series at zero from the start. */
	doc = scrape_tiers(m, NULL, 0, NULL);
	for (size_t i = 0; i < 3; i++)
		for (size_t k = 0; k < 5; k++) {
			snprintf(l, sizeof(l), "source=\"%s\",kind=\"%s\"",
				 sources[i], kinds[k]);
			cr_expect_eq(value_of(doc, "strata_purges_total", l), 0,
				     "%s", l);
		}
	cr_expect_eq(prom_find_family(doc, "strata_purges_total")->n_samples,
		     15);
	cr_expect_eq(value_of(doc, "strata_invalidations_dropped_total", ""),
		     0);
	prom_free(&doc);

	strata_metrics_purge(m, STRATA_PURGE_FROM_ADMIN, STRATA_PURGE_TAG);
	strata_metrics_purge(m, STRATA_PURGE_FROM_ADMIN, STRATA_PURGE_TAG);
	strata_metrics_purge(m, STRATA_PURGE_FROM_INVALIDATION,
			     STRATA_PURGE_PATH);
	strata_metrics_purge(m, STRATA_PURGE_FROM_FLEET, STRATA_PURGE_ALL);
	strata_metrics_invalidation_dropped(m);
	doc = scrape_tiers(m, NULL, 0, NULL);
	cr_expect_eq(value_of(doc, "strata_purges_total",
			      "source=\"admin\",kind=\"tag\""), 2);
	cr_expect_eq(value_of(doc, "strata_purges_total",
			      "source=\"invalidation\",kind=\"path\""), 1);
	cr_expect_eq(value_of(doc, "strata_purges_total",
			      "source=\"fleet\",kind=\"all\""), 1);
	cr_expect_eq(prom_sum(doc, "strata_purges_total", "", NULL), 4);
	cr_expect_eq(value_of(doc, "strata_invalidations_dropped_total", ""),
		     1);
	prom_free(&doc);
	strata_metrics_free(&m);
}

/* --- threads --- */

#define THREADS 8
#define EVENTS 200000

struct recorder {
	struct strata_metrics *m;
	size_t n_routes;
	int id;
};

/* Thread t records EVENTS requests: route (i + t) % (n_routes + 1),
 * method bit i % 8, result i % 6, and one upstream fetch per 100. */
static void *record_main(void *arg)
{
	const struct recorder *rec = arg;

	for (int i = 0; i < EVENTS; i++) {
		size_t route = (size_t)(i + rec->id) % (rec->n_routes + 1);

		strata_metrics_request(rec->m, route, 1u << (i % 8), i % 6,
				       (uint64_t)i % 2000);
		if (i % 100 == 0)
			strata_metrics_upstream(rec->m, route, 200, 10);
	}
	return NULL;
}

static void run_recorders(struct strata_metrics *m, size_t n_routes, int n)
{
	pthread_t threads[THREADS];
	struct recorder recs[THREADS];

	for (int t = 0; t < n; t++) {
		recs[t] = (struct recorder){ m, n_routes, t };
		cr_assert_eq(pthread_create(&threads[t], NULL, record_main,
					    &recs[t]), 0);
	}
	for (int t = 0; t < n; t++)
		pthread_join(threads[t], NULL);
}

Test(metrics, concurrent_recording_sums_exactly, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", 0xff }, { "b", GET },
						  { "c", POST } };
	struct strata_metrics *m = new_metrics(routes, 3);
	uint64_t expect[4][8][6] = { { { 0 } } };
	uint64_t total = 0;
	struct strata_metrics_upstream_stats up;
	struct prom_doc *doc;

	run_recorders(m, 3, THREADS);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < EVENTS; i++)
			expect[(i + t) % 4][i % 8][i % 6]++;
	doc = scrape(m);
	for (size_t r = 0; r < 4; r++) {
		struct strata_metrics_route_stats st;
		uint64_t route_total = 0;

		for (int meth = 0; meth < 8; meth++)
			for (int c = 0; c < 6; c++) {
				static const char *const methods[] = {
					"GET", "HEAD", "POST", "PUT", "DELETE",
					"PATCH", "OPTIONS", "OTHER",
				};
				char l[128];
				bool found;
				double v;

				snprintf(l, sizeof(l), "route=\"%s\",method=\""
					 "%s\",cache=\"%s\"",
					 r < 3 ? routes[r].name : "",
					 methods[meth], all_results[c]);
				v = prom_value(doc, "strata_requests_total", l,
					       &found);
				cr_expect(found || expect[r][meth][c] == 0);
				if (found)
					cr_expect_eq(v,
						(double)expect[r][meth][c],
						"%s", l);
				route_total += expect[r][meth][c];
			}
		strata_metrics_route_stats(m, r, &st);
		cr_expect_eq(st.requests, route_total);
		total += route_total;
	}
	cr_expect_eq(total, (uint64_t)THREADS * EVENTS);
	cr_expect_eq(prom_sum(doc, "strata_requests_total", "", NULL),
		     (double)total);
	cr_expect_eq(prom_sum(doc, "strata_request_duration_seconds_count", "",
			      NULL), (double)total);
	strata_metrics_upstream_stats(m, &up);
	cr_expect_eq(up.requests, (uint64_t)THREADS * (EVENTS / 100));
	prom_free(&doc);
	strata_metrics_free(&m);
}

struct one_shot {
	struct strata_metrics *m;
	int n;
};

static void *one_shot_main(void *arg)
{
	const struct one_shot *o = arg;

	for (int i = 0; i < o->n; i++)
		strata_metrics_request(o->m, 0, GET, STRATA_CACHE_HIT, 1);
	return NULL;
}

Test(metrics, blocks_of_exited_threads_still_count, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", GET } };
	struct strata_metrics *m = new_metrics(routes, 1);
	struct strata_metrics_route_stats st;
	uint64_t expect = 0;

	/* Threads come and go, one after another, some at the same time. */
	for (int round = 0; round < 20; round++) {
		pthread_t t[3];
		struct one_shot o = { m, round + 1 };

		for (int k = 0; k < 3; k++)
			cr_assert_eq(pthread_create(&t[k], NULL, one_shot_main,
						    &o), 0);
		for (int k = 0; k < 3; k++)
			pthread_join(t[k], NULL);
		expect += 3 * (uint64_t)(round + 1);
		strata_metrics_route_stats(m, 0, &st);
		cr_expect_eq(st.hits, expect);
	}
	strata_metrics_request(m, 0, GET, STRATA_CACHE_HIT, 1);
	strata_metrics_route_stats(m, 0, &st);
	cr_expect_eq(st.hits, expect + 1);
	strata_metrics_free(&m);
}

struct scraper {
	struct strata_metrics *m;
	atomic_bool stop;
	int scrapes;
	bool ok;
	char err[512];
};

static void *scrape_main(void *arg)
{
	struct scraper *s = arg;
	double last = 0;

	s->ok = true;
	while (!atomic_load(&s->stop) || s->scrapes == 0) {
		char *text = NULL;
		size_t len;
		struct prom_doc *doc = NULL;
		double now;

		if (strata_metrics_render(s->m, NULL, 0, &text, &len) != 0 ||
		    prom_parse(text, &doc, s->err, sizeof(s->err)) != 0) {
			s->ok = false;
			free(text);
			return NULL;
		}
		now = prom_sum(doc, "strata_requests_total", "", NULL);
		if (now < last) {
			snprintf(s->err, sizeof(s->err), "requests went from "
				 "%f down to %f", last, now);
			s->ok = false;
		}
		last = now;
		s->scrapes++;
		prom_free(&doc);
		free(text);
	}
	return NULL;
}

Test(metrics, scrapes_during_recording_parse_and_never_go_down, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", 0xff }, { "b", GET },
						  { "c", POST } };
	struct strata_metrics *m = new_metrics(routes, 3);
	struct scraper s = { .m = m };
	struct strata_metrics_route_stats st;
	uint64_t total = 0;
	pthread_t t;

	atomic_init(&s.stop, false);
	cr_assert_eq(pthread_create(&t, NULL, scrape_main, &s), 0);
	run_recorders(m, 3, 4);
	atomic_store(&s.stop, true);
	pthread_join(t, NULL);
	cr_expect(s.ok, "%s", s.err);
	cr_expect_gt(s.scrapes, 0);
	for (size_t r = 0; r < 4; r++) {
		strata_metrics_route_stats(m, r, &st);
		total += st.requests;
	}
	cr_expect_eq(total, 4 * (uint64_t)EVENTS);
	strata_metrics_free(&m);
}

Test(metrics, two_objects_do_not_mix, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", GET } };
	struct strata_metrics *m1 = new_metrics(routes, 1);
	struct strata_metrics *m2 = new_metrics(routes, 1);
	struct strata_metrics *m3;
	struct strata_metrics_route_stats st;
	struct one_shot o1 = { m1, 1000 }, o2 = { m2, 10 };
	pthread_t t1, t2;
	struct prom_doc *d1, *d2;

	cr_assert_eq(pthread_create(&t1, NULL, one_shot_main, &o1), 0);
	cr_assert_eq(pthread_create(&t2, NULL, one_shot_main, &o2), 0);
	strata_metrics_request(m1, 0, GET, STRATA_CACHE_MISS, 1);
	strata_metrics_request(m2, 0, GET, STRATA_CACHE_MISS, 1);
	strata_metrics_request(m2, 0, GET, STRATA_CACHE_MISS, 1);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	d1 = scrape(m1);
	d2 = scrape(m2);
	cr_expect_eq(requests(d1, "a", "GET", "hit"), 1000);
	cr_expect_eq(requests(d1, "a", "GET", "miss"), 1);
	cr_expect_eq(requests(d2, "a", "GET", "hit"), 10);
	cr_expect_eq(requests(d2, "a", "GET", "miss"), 2);
	prom_free(&d1);
	prom_free(&d2);

	/* This thread recorded into m1; after m1 is freed, a new object
	 * (which may reuse m1's key) starts from zero for it. */
	strata_metrics_free(&m1);
	m3 = new_metrics(routes, 1);
	strata_metrics_request(m3, 0, GET, STRATA_CACHE_HIT, 1);
	strata_metrics_route_stats(m3, 0, &st);
	cr_expect_eq(st.requests, 1);
	strata_metrics_route_stats(m2, 0, &st);
	cr_expect_eq(st.requests, 12);
	strata_metrics_free(&m3);
	strata_metrics_free(&m2);
}

/* --- assertions --- */

Test(metrics, route_out_of_range_asserts, .signal = SIGABRT, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", GET } };
	struct strata_metrics *m = new_metrics(routes, 1);

	strata_metrics_request(m, 2, GET, STRATA_CACHE_HIT, 1);
}

Test(metrics, two_method_bits_assert, .signal = SIGABRT, TIMEOUT)
{
	struct strata_metrics *m = new_metrics(NULL, 0);

	strata_metrics_request(m, 0, GET | HEAD, STRATA_CACHE_HIT, 1);
}

Test(metrics, unknown_drop_tier_asserts, .signal = SIGABRT, TIMEOUT)
{
	struct strata_metrics *m = new_metrics(NULL, 0);

	strata_metrics_store_dropped(m, "floppy");
}

/* ------------------------------------------------------------------- prom */

static struct prom_doc *parse_ok(const char *text)
{
	struct prom_doc *doc = NULL;
	char err[512];
	int rc = prom_parse(text, &doc, err, sizeof(err));

	cr_assert_eq(rc, 0, "rejected: %s\n---\n%s", err, text);
	return doc;
}

Test(prom, accepts_valid_expositions, TIMEOUT)
{
	struct prom_doc *doc;

	doc = parse_ok("");
	cr_expect_eq(prom_family_count(doc), 0);
	prom_free(&doc);

	doc = parse_ok(
		"# a comment\n"
		"\n"
		"# HELP a_total Help with \\\\ and \\n escapes.\n"
		"# TYPE a_total counter\n"
		"a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 1.5e3 1700000000000\n"
		"a_total{ x = \"2\" , } 0\n"
		"  a_total {x=\"3\"}\t7\n"
		"a_total{} 8\n"
		"# TYPE g gauge\n"
		"g{v=\"a\"} -Inf\n"
		"g{v=\"b\"} +Inf\n"
		"g{v=\"c\"} NaN\n"
		"g{v=\"d\"} .5\n"
		"g{v=\"e\"} 5.\n"
		"g{v=\"f\"} 0x1p-2\n"
		"g{v=\"g\"} -1e-400\n"
		"g{v=\"h\"} Infinity\n"
		"g{v=\"i\"} -12 -5\n"
		"g{v=\"ünï\"} 1\n"
		"# TYPE h histogram\n"
		"# HELP h after TYPE is fine\n"
		"h_bucket{le=\"1\"} 1\n"
		"h_bucket{le=\"+Inf\"} 2\n"
		"h_bucket{le=\"0.5\"} 0\n"
		"h_sum 3\n"
		"h_count 2\n"
		"h_bucket{a=\"x\",le=\"+Inf\"} 0\n"
		"h_sum{a=\"x\"} 0\n"
		"h_count{a=\"x\"} 0\n"
		"# TYPE s summary\n"
		"s{quantile=\"0.5\"} 4\n"
		"s_sum 8\n"
		"s_count 2\n"
		"# TYPE empty gauge\n"
		"# HELP only_help declared, never typed nor sampled\n"
		"# TYPE u untyped\n"
		"u 3\n");
	cr_expect_eq(prom_family_count(doc), 7);
	cr_expect(prom_has_family(doc, "a_total", PROM_COUNTER));
	cr_expect(prom_has_family(doc, "h", PROM_HISTOGRAM));
	cr_expect(prom_has_family(doc, "s", PROM_SUMMARY));
	cr_expect(prom_has_family(doc, "u", PROM_UNTYPED));
	cr_expect(!prom_has_family(doc, "only_help", PROM_UNTYPED));
	cr_expect_str_eq(prom_find_family(doc, "a_total")->help,
			 "Help with \\ and \n escapes.");
	cr_expect_eq(prom_value(doc, "a_total", "y=\"q\\\"\\\\\\n\",x=\"1\"",
				NULL), 1500);
	cr_expect(prom_find_family(doc, "a_total")->samples[0].has_timestamp);
	cr_expect_eq(prom_find_family(doc, "a_total")->samples[0].timestamp,
		     1700000000000);
	cr_expect_eq(prom_value(doc, "a_total", "x=\"3\"", NULL), 7);
	cr_expect_eq(prom_value(doc, "a_total", "", NULL), 8);
	cr_expect(isinf(prom_value(doc, "g", "v=\"a\"", NULL)));
	cr_expect(isnan(prom_value(doc, "g", "v=\"c\"", NULL)));
	cr_expect_eq(prom_value(doc, "g", "v=\"f\"", NULL), 0.25);
	cr_expect_eq(prom_value(doc, "g", "v=\"ünï\"", NULL), 1);
	cr_expect_eq(prom_value(doc, "h_bucket", "le=\"1\"", NULL), 1);
	cr_expect_eq(prom_sum(doc, "a_total", "", NULL), 1515);
	{
		size_t n;
		bool found = true;

		cr_expect_eq(prom_sum(doc, "h_count", "a=\"x\"", &n), 0);
		cr_expect_eq(n, 1);
		cr_expect(isnan(prom_value(doc, "a_total", "x=\"9\"", &found)));
		cr_expect(!found);
		/* Exact label set: a subset does not match. */
		prom_value(doc, "a_total", "x=\"1\"", &found);
		cr_expect(!found);
	}
	prom_free(&doc);
	cr_expect_null(doc);
}

/* One malformed exposition: the line and a word of the reason. */
struct bad {
	const char *text;
	int line;
	const char *reason;
};

#define T_C "# TYPE a counter\n"
#define T_H "# TYPE h histogram\n"

static const struct bad bad_cases[] = {
	/* names */
	{ T_C "1a 1\n", 2, "metric name" },
	{ "# TYPE 1a counter\n", 1, "metric name" },
	{ "# TYPE a-b counter\n", 1, "invalid metric name" },
	{ T_C "a{1x=\"v\"} 1\n", 2, "label name" },
	{ T_C "a{x-y=\"v\"} 1\n", 2, "'='" },
	{ T_C "a{__name__=\"v\"} 1\n", 2, "reserved" },
	/* label values */
	{ T_C "a{x=\"v\"w\"} 1\n", 2, "unescaped" },
	{ T_C "a{x=\"\\t\"} 1\n", 2, "escape" },
	{ T_C "a{x=\"v\n\"} 1\n", 2, "not closed" },
	{ T_C "a{x=v} 1\n", 2, "'\"'" },
	{ T_C "a{x=\"\xff\"} 1\n", 2, "UTF-8" },
	{ T_C "a{x=\"1\",x=\"2\"} 1\n", 2, "duplicate label" },
	{ T_C "a{x=\"1\" 1\n", 2, "',' or '}'" },
	/* TYPE and HELP */
	{ "a 1\n", 1, "TYPE" },
	{ "# HELP a text\na 1\n", 2, "TYPE" },
	{ T_C "a 1\n# TYPE a counter\n", 3, "after its samples" },
	{ T_C "a 1\n# HELP a late\n", 3, "after its samples" },
	{ T_C "# TYPE a gauge\n", 2, "second" },
	{ "# HELP a x\n# HELP a y\n", 2, "second" },
	{ "# TYPE a Counter\n", 1, "unknown type" },
	{ "# TYPE a counter \n", 1, "unknown type" },
	{ "# TYPE a\n", 1, "unknown type" },
	{ "# TYPE\n", 1, "metric name" },
	{ "# HELP a bad \\t escape\n", 1, "escape" },
	{ "# HELP a \xc3\x28\n", 1, "UTF-8" },
	/* contiguity and duplicates */
	{ T_C "a 1\n# TYPE b gauge\nb 1\na 2\n", 5, "contiguous" },
	{ T_C "a 1\n# TYPE b gauge\n# TYPE a counter\n", 4, "contiguous" },
	{ T_C "a{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\n", 3,
	  "duplicate series" },
	{ T_C "a 1\na 2\n", 3, "duplicate series" },
	/* values */
	{ T_C "a 1,5\n", 2, "not a float" },
	{ T_C "a 0x10\n", 2, "not a float" },
	{ T_C "a 1e400\n", 2, "not a float" },
	{ T_C "a Infinite\n", 2, "not a float" },
	{ "# TYPE g gauge\ng +NaN\n", 2, "not a float" },
	{ T_C "a 1_000\n", 2, "not a float" },
	{ T_C "a --1\n", 2, "not a float" },
	{ T_C "a .\n", 2, "not a float" },
	{ T_C "a 1e\n", 2, "not a float" },
	{ T_C "a one\n", 2, "not a float" },
	{ T_C "a\n", 2, "value" },
	{ T_C "a{} \n", 2, "no value" },
	{ T_C "a{x=\"1\"}1\n", 2, "blank" },
	/* trailing garbage and line ends */
	{ T_C "a 1 2 3\n", 2, "trailing garbage" },
	{ T_C "a 1 x\n", 2, "trailing garbage" },
	{ T_C "a 1 1.5\n", 2, "trailing garbage" },
	{ T_C "a 1\r\n", 2, "not a float" },
	{ T_C "a 1", 2, "newline" },
	{ "# TYPE a counter", 1, "newline" },
	/* counters */
	{ T_C "a -1\n", 2, "never negative" },
	{ T_C "a -Inf\n", 2, "never negative" },
	{ T_C "a NaN\n", 2, "never negative" },
	/* histograms */
	{ T_H "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n# TYPE z gauge\n",
	  2, "+Inf" },
	{ T_H "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
	      "h_count 1\n", 3, "cumulative" },
	{ T_H "h_bucket{le=\"+Inf\"} 1\nh_count 1\n", 2, "_sum" },
	{ T_H "h_bucket{le=\"+Inf\"} 1\nh_sum 1\n", 2, "_count" },
	{ T_H "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n", 4,
	  "le=\"+Inf\" bucket" },
	{ T_H "h_bucket 1\n", 2, "no le" },
	{ T_H "h_bucket{le=\"x\"} 1\n", 2, "not a float" },
	{ T_H "h_bucket{le=\"1\"} 0\nh_bucket{le=\"1.0\"} 0\n"
	      "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n", 3,
	  "repeats" },
	{ T_H "h_sum{le=\"1\"} 1\n", 2, "must not have" },
	{ T_H "h 1\n", 2, "histogram" },
	{ T_H "h_bucket{le=\"+Inf\"} -1\n", 2, "never negative" },
	{ T_H "h_bucket{a=\"1\",le=\"+Inf\"} 1\nh_sum{a=\"1\"} 1\n"
	      "h_count{a=\"1\"} 1\nh_bucket{a=\"2\",le=\"1\"} 1\n"
	      "h_sum{a=\"2\"} 1\nh_count{a=\"2\"} 1\n", 5, "+Inf" },
	{ T_H "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n"
	      "# TYPE h_count gauge\n", 5, "clashes" },
	{ "# TYPE h_sum gauge\nh_sum 1\n" T_H, 3, "clashes" },
	/* summaries */
	{ "# TYPE s summary\ns 1\n", 2, "quantile" },
	{ "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 1\n", 2, "_sum" },
};

Test(prom, rejects_each_malformation_with_its_line, TIMEOUT)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad *b = &bad_cases[i];
		struct prom_doc *doc = (void *)1;
		char err[512];
		char want[32];
		int rc = prom_parse(b->text, &doc, err, sizeof(err));

		cr_expect_eq(rc, -EINVAL, "case %zu accepted:\n%s", i, b->text);
		if (rc != -EINVAL) {
			prom_free(&doc);
			continue;
		}
		cr_expect_null(doc);
		snprintf(want, sizeof(want), "line %d: ", b->line);
		cr_expect(strncmp(err, want, strlen(want)) == 0,
			  "case %zu: wanted \"%s...\", got \"%s\"\n%s", i, want,
			  err, b->text);
		cr_expect_not_null(strstr(err, b->reason),
				   "case %zu: wanted \"%s\" in \"%s\"\n%s", i,
				   b->reason, err, b->text);
	}
}

Test(prom, error_buffer_is_optional_and_truncated, TIMEOUT)
{
	struct prom_doc *doc;
	char err[12];

	cr_expect_eq(prom_parse("a 1\n", &doc, NULL, 0), -EINVAL);
	cr_expect_eq(prom_parse("a 1\n", &doc, err, sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "line 1: sam");
}

Test(prom, bad_query_labels_abort, .signal = SIGABRT, TIMEOUT)
{
	struct prom_doc *doc = parse_ok(T_C "a 1\n");

	prom_value(doc, "a", "x=1", NULL);
}

/* ------------------------------------------------- routes added by reload */

Test(metrics, a_reload_maps_known_names_and_claims_new_ones, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", GET }, { "b", GET } };
	struct strata_metrics *m = new_metrics(routes, 2);
	struct strata_metrics_route b = { "b", GET | POST }, c = { "c", GET };
	struct prom_doc *doc;
	size_t i = 99;

	cr_assert_eq(strata_metrics_unmatched(m), 2);
	strata_metrics_request(m, 1, GET, STRATA_CACHE_HIT, 5);
	cr_assert_eq(strata_metrics_route_index(m, &b, &i), 0);
	cr_assert_eq(i, 1, "a known name keeps its index and counters");
	cr_assert_eq(strata_metrics_route_index(m, &c, &i), 0);
	cr_assert_eq(i, 3, "a new name takes the first spare");
	strata_metrics_request(m, 3, GET, STRATA_CACHE_MISS, 5);
	cr_assert_eq(strata_metrics_route_index(m, &c, &i), 0);
	cr_assert_eq(i, 3, "claimed once, found after");

	doc = scrape(m);
	cr_expect_eq(requests(doc, "b", "GET", "hit"), 1.0);
	cr_expect_eq(requests(doc, "b", "POST", "miss"), 0.0,
		     "a method the new route lists is listed at zero");
	cr_expect_eq(requests(doc, "c", "GET", "miss"), 1.0);
	cr_expect(!has_series(doc, "strata_requests_total",
			      "route=\"\",method=\"GET\",cache=\"miss\"") ||
			  requests(doc, "", "GET", "miss") == 0.0,
		  "the new route's requests are not counted as unmatched");
	prom_free(&doc);
	strata_metrics_free(&m);
}

Test(metrics, spare_series_run_out_with_enospc, TIMEOUT)
{
	struct strata_metrics *m = new_metrics(NULL, 0);
	char name[32];
	size_t i, claimed = 0;
	int rc = 0;

	for (unsigned k = 0; k < 1000 && rc == 0; k++) {
		struct strata_metrics_route r = { name, GET };

		snprintf(name, sizeof(name), "r%u", k);
		rc = strata_metrics_route_index(m, &r, &i);
		if (rc == 0)
			claimed++;
	}
	cr_expect_eq(rc, -ENOSPC);
	cr_expect_geq(claimed, 16, "room for routes added by reloads");
	cr_expect_lt(claimed, 1000, "bounded");
	strata_metrics_free(&m);
}

Test(metrics, an_unclaimed_spare_index_asserts, .signal = SIGABRT, TIMEOUT)
{
	struct strata_metrics_route routes[] = { { "a", GET } };
	struct strata_metrics *m = new_metrics(routes, 1);

	strata_metrics_request(m, 2, GET, STRATA_CACHE_HIT, 1);
}
