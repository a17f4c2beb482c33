/*
 * test_admin.c: the admin listener of the real `strata` program.
 *
 * strata runs between libcurl and the in-process test origin
 * (tests/helpers/origin.h); the tests drive its admin port
 * (tests/helpers/proc.h picks one) and parse every answer: JSON with
 * jansson, /metrics with the strict Prometheus parser of
 * tests/helpers/prom.h.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"
#include "../helpers/prom.h"

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

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 60);

/* Start strata on the origin with routes "/doc/<star>", /header (tags)
 * and /slow, plus `extra` arguments (NULL-terminated, may be NULL). */
static void start(const char *const *extra)
{
	char upstream[64];
	const char *args[MAX_ARGS] = {
		"--upstream", upstream, "--route", "/doc/*=60s", "--route",
		"/header=60s", "--route", "/slow=60s",
	};
	size_t n = 8;
	struct proc_spec spec = {.args = args};

	origin_url(origin, "", upstream, sizeof(upstream));
	for (; extra != NULL && *extra != NULL && n < MAX_ARGS - 1; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
}

/* GET through the proxy; returns the Cache-Status (static buffer). */
static const char *get(const char *path)
{
	static char cs[160];
	char url[512];
	struct client_response r;

	proc_url(strata, path, url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200,
		     "GET %s", path);
	snprintf(cs, sizeof(cs), "%s", client_header(&r, "Cache-Status") ?: "");
	client_response_free(&r);
	return cs;
}

/* An admin request; returns the status, the body parsed into *doc (may
 * be NULL: body ignored) and checks JSON error shape for 4xx/5xx. */
static long admin(const char *method, const char *path, const char *token,
		  json_t **doc)
{
	char url[1024], auth[128];
	const char *headers[2] = {NULL, NULL};
	struct client_response r;
	json_error_t jerr;
	json_t *j;
	long status;

	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		headers[0] = auth;
	}
	proc_admin_url(strata, path, url, sizeof(url));
	status = client_request(method, url, headers, NULL, 0, &r);
	cr_assert_gt(status, 0, "%s %s: no answer", method, path);
	j = json_loads(r.body ? r.body : "", 0, &jerr);
	cr_assert_not_null(j, "%s %s: not JSON (%s): %s", method, path,
			   jerr.text, r.body ? r.body : "");
	cr_assert_str_eq(client_header(&r, "Content-Type"), "application/json");
	if (status >= 400 && strncmp(path, "/admin", 6) == 0) {
		cr_assert(json_is_string(json_object_get(j, "error")), "%s",
			  r.body);
		cr_assert(json_is_string(json_object_get(j, "detail")), "%s",
			  r.body);
	}
	client_response_free(&r);
	if (doc != NULL)
		*doc = j;
	else
		json_decref(j);
	return status;
}

/* doc[a][b] (borrowed), or NULL. */
static json_t *jpath(json_t *doc, const char *a, const char *b)
{
	return json_object_get(json_object_get(doc, a), b);
}

static json_int_t int_at(json_t *doc, const char *path)
{
	json_t *j = json_object_get(doc, path);

	cr_assert(json_is_integer(j), "%s is not an integer", path);
	return json_integer_value(j);
}

/* --- health, readiness --------------------------------------------------- */

Test(admin, health_and_ready)
{
	json_t *doc;

	start(NULL);
	cr_assert_eq(admin("GET", "/health", NULL, &doc), 200);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "status")),
			 "ok");
	json_decref(doc);
	cr_assert_eq(admin("GET", "/ready", NULL, &doc), 200);
	cr_expect(json_is_true(json_object_get(doc, "ready")));
	cr_expect_str_eq(json_string_value(json_object_get(doc, "state")),
			 "ready");
	cr_expect_str_eq(json_string_value(jpath(doc, "tiers",
							    "memory")),
			 "up");
	cr_expect_str_eq(json_string_value(jpath(doc, "tiers",
							    "redis")),
			 "off");
	json_decref(doc);
}

Test(admin, ready_turns_503_while_draining)
{
	const char *const extra[] = {"--set", "shutdown_timeout=10s", NULL};
	struct client_response r;
	json_t *doc;
	pid_t child;

	start(extra);
	/* A request that keeps the drain going for 1.5 s. */
	child = fork();
	if (child == 0) {
		char slow[256];

		proc_url(strata, "/slow?ms=1500", slow, sizeof(slow));
		_exit(client_request("GET", slow, NULL, NULL, 0, &r) == 200 ? 0
									     : 1);
	}
	usleep(300 * 1000);
	cr_assert_eq(proc_signal(strata, SIGTERM), 0);
	usleep(200 * 1000);
	cr_assert_eq(admin("GET", "/ready", NULL, &doc), 503);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "state")),
			 "draining");
	cr_expect(json_is_false(json_object_get(doc, "ready")));
	json_decref(doc);
	/* Liveness holds while draining. */
	cr_expect_eq(admin("GET", "/health", NULL, NULL), 200);
	{
		int st = 0;

		waitpid(child, &st, 0);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "the in-flight request failed during the drain");
	}
}

/* --- metrics ---------------------------------------------------------------- */

static double metric(const struct prom_doc *d, const char *name,
		     const char *labels)
{
	bool found = false;
	double v = prom_value(d, name, labels, &found);

	cr_assert(found, "%s{%s} missing", name, labels);
	return v;
}

Test(admin, metrics_parse_strictly_and_count_requests)
{
	struct client_response r;
	struct prom_doc *d = NULL;
	char url[256], err[256];

	start(NULL);
	/* At zero before any request. */
	proc_admin_url(strata, "/metrics", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	cr_assert_eq(prom_parse(r.body, &d, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(metric(d, "strata_requests_total",
			    "route=\"/doc/*\",method=\"GET\",cache=\"hit\""),
		     0);
	cr_expect(prom_has_family(d, "strata_request_duration_seconds",
				  PROM_HISTOGRAM));
	cr_expect(prom_has_family(d, "process_resident_memory_bytes",
				  PROM_GAUGE));
	prom_free(&d);
	client_response_free(&r);

	get("/doc/m");
	get("/doc/m");
	get("/doc/m");
	get("/echo/x"); /* no route: bypass */
	/* A request is counted when libmicrohttpd reports it complete, which
	 * may be just after the client has read the answer: scrape until the
	 * four are in (bounded), then check every figure exactly. */
	for (int i = 0;; i++) {
		cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
		cr_assert_eq(prom_parse(r.body, &d, err, sizeof(err)), 0, "%s",
			     err);
		if (i >= 100 * proc_timeout_mult() ||
		    (metric(d, "strata_requests_total",
			    "route=\"/doc/*\",method=\"GET\",cache=\"miss\"") +
			     metric(d, "strata_requests_total",
				    "route=\"/doc/*\",method=\"GET\",cache=\"hit\"") +
			     metric(d, "strata_requests_total",
				    "route=\"\",method=\"GET\",cache=\"bypass\"") >=
		     4))
			break;
		prom_free(&d);
		client_response_free(&r);
		usleep(20 * 1000);
	}
	cr_expect_eq(metric(d, "strata_requests_total",
			    "route=\"/doc/*\",method=\"GET\",cache=\"miss\""),
		     1);
	cr_expect_eq(metric(d, "strata_requests_total",
			    "route=\"/doc/*\",method=\"GET\",cache=\"hit\""),
		     2);
	cr_expect_eq(metric(d, "strata_requests_total",
			    "route=\"\",method=\"GET\",cache=\"bypass\""),
		     1);
	cr_expect_eq(metric(d, "strata_upstream_requests_total",
			    "status_class=\"2xx\""),
		     2);
	cr_expect_eq(metric(d, "strata_tier_entries", "tier=\"memory\""), 1);
	/* One lookup per request: the flight leader's second look is not
	 * counted again. */
	cr_expect_eq(metric(d, "strata_tier_misses_total",
			    "tier=\"memory\""),
		     1);
	cr_expect_eq(metric(d, "strata_tier_hits_total", "tier=\"memory\""),
		     2);
	cr_expect_eq(metric(d, "strata_tier_up", "tier=\"redis\""), 0);
	cr_expect_eq(metric(d, "strata_request_duration_seconds_count",
			    "route=\"/doc/*\",cache=\"hit\""),
		     2);
	prom_free(&d);
	client_response_free(&r);
}

/* strata_purges_total{source,kind} from one scrape. */
static double purges(const char *source, const char *kind)
{
	struct client_response r;
	struct prom_doc *d = NULL;
	char url[256], err[256], labels[96];
	double v;

	proc_admin_url(strata, "/metrics", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	cr_assert_eq(prom_parse(r.body, &d, err, sizeof(err)), 0, "%s", err);
	snprintf(labels, sizeof(labels), "source=\"%s\",kind=\"%s\"", source,
		 kind);
	v = metric(d, "strata_purges_total", labels);
	prom_free(&d);
	client_response_free(&r);
	return v;
}

Test(admin, purges_are_counted_by_source_and_kind)
{
	char url[512];
	struct client_response r;
	json_t *doc;

	start(NULL);
	get("/doc/c");
	cr_assert_eq(admin("DELETE", "/admin/keys?path=/doc/c&dry_run=1", NULL,
			   NULL),
		     200);
	cr_expect_eq(purges("admin", "path"), 0, "a dry run purges nothing");
	cr_assert_eq(admin("DELETE", "/admin/keys?path=/doc/c", NULL, NULL),
		     200);
	cr_expect_eq(purges("admin", "path"), 1);
	cr_assert_eq(admin("POST", "/admin/flush", NULL, &doc), 200);
	json_decref(doc);
	cr_expect_eq(purges("admin", "all"), 1);

	/* A successful POST invalidates its target, on a background
	 * thread: counted once that has run. */
	get("/doc/c");
	proc_url(strata, "/doc/c", url, sizeof(url));
	cr_assert_eq(client_request("POST", url, NULL, "x", 1, &r), 200);
	client_response_free(&r);
	for (int i = 0; i < 100 * proc_timeout_mult() &&
			purges("invalidation", "path") < 1;
	     i++)
		usleep(20 * 1000);
	cr_expect_eq(purges("invalidation", "path"), 1);
	cr_expect(strstr(get("/doc/c"), "fwd=miss") != NULL);
	cr_expect_eq(purges("fleet", "path"), 0, "no Redis, no fleet");
}

/* --- keys ------------------------------------------------------------------- */

/* Every key text of a full listing walked page by page with `limit`. */
static size_t walk_pages(const char *query, size_t limit, char **seen,
			 size_t cap, void (*between)(void))
{
	char path[2048], *cursor = NULL;
	size_t n = 0;

	for (int page = 0; page < 100; page++) {
		json_t *doc, *keys, *next;

		snprintf(path, sizeof(path), "/admin/keys?limit=%zu%s%s%s",
			 limit, query, cursor ? "&cursor=" : "",
			 cursor ? cursor : "");
		cr_assert_eq(admin("GET", path, NULL, &doc), 200);
		keys = json_object_get(doc, "keys");
		cr_assert(json_is_array(keys));
		cr_assert_leq(json_array_size(keys), limit);
		for (size_t i = 0; i < json_array_size(keys) && n < cap; i++)
			seen[n++] = strdup(json_string_value(json_object_get(
				json_array_get(keys, i), "key")));
		next = json_object_get(doc, "next_cursor");
		free(cursor);
		cursor = json_is_string(next) ? strdup(json_string_value(next))
					      : NULL;
		json_decref(doc);
		if (cursor == NULL)
			break;
		if (between != NULL)
			between();
	}
	free(cursor);
	return n;
}

static int added;

static void add_one(void)
{
	char path[64];

	/* Sorts after everything listed so far ("GET /doc/z..."). */
	snprintf(path, sizeof(path), "/doc/z%d", added++);
	get(path);
}

Test(admin, pagination_visits_every_key_once_while_keys_are_added)
{
	char path[64], *seen[64];
	size_t n;

	start(NULL);
	for (int i = 0; i < 7; i++) {
		snprintf(path, sizeof(path), "/doc/k%d", i);
		get(path);
	}
	added = 0;
	n = walk_pages("&prefix=/doc/", 2, seen, 64, add_one);
	/* The 7, plus every key added after the cursor (each is followed by
	 * another page), each once. */
	cr_expect_geq(n, 7);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++)
			cr_expect_str_neq(seen[i], seen[j], "listed twice");
		if (i > 0)
			cr_expect_lt(strcmp(seen[i - 1], seen[i]), 0,
				     "not in key order");
	}
	cr_expect_gt(added, 0);
	cr_expect_eq(n, 7 + (size_t)added, "%zu listed, %d added", n, added);
	for (size_t i = 0; i < n; i++)
		free(seen[i]);
}

Test(admin, keys_filters_and_one_entry)
{
	json_t *doc, *keys, *e;
	char path[512];
	const char *hash;

	start(NULL);
	get("/doc/a");
	get("/doc/b?x=1");
	get("/header?name=Surrogate-Key&value=blue");
	cr_assert_eq(admin("GET", "/admin/keys?prefix=/doc/", NULL, &doc), 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "keys")), 2);
	json_decref(doc);
	cr_assert_eq(admin("GET", "/admin/keys?path=/doc/b", NULL, &doc), 200);
	keys = json_object_get(doc, "keys");
	cr_assert_eq(json_array_size(keys), 1);
	cr_expect_str_eq(json_string_value(json_object_get(
				 json_array_get(keys, 0), "key")),
			 "GET /doc/b?x=1\n");
	json_decref(doc);
	cr_assert_eq(admin("GET", "/admin/keys?tag=blue", NULL, &doc), 200);
	keys = json_object_get(doc, "keys");
	cr_assert_eq(json_array_size(keys), 1);
	e = json_array_get(keys, 0);
	cr_expect_str_eq(json_string_value(json_object_get(e, "route")),
			 "/header");
	cr_expect_str_eq(json_string_value(json_array_get(
				 json_object_get(e, "tags"), 0)),
			 "blue");
	json_decref(doc);
	cr_assert_eq(admin("GET", "/admin/keys?route=/doc/*&tier=memory", NULL,
			   &doc),
		     200);
	keys = json_object_get(doc, "keys");
	cr_assert_eq(json_array_size(keys), 2);
	e = json_array_get(keys, 0);
	cr_expect_str_eq(json_string_value(json_object_get(e, "key")),
			 "GET /doc/a\n");
	cr_expect_eq(int_at(e, "status"), 200);
	cr_expect_gt(int_at(e, "size"), 0);
	cr_expect_leq(int_at(e, "ttl"), 60);
	hash = json_string_value(json_object_get(e, "hash"));
	cr_assert_eq(strlen(hash), 32);
	snprintf(path, sizeof(path), "/admin/keys/%s?body=1", hash);
	{
		json_t *one;

		get("/doc/a"); /* one hit */
		cr_assert_eq(admin("GET", path, NULL, &one), 200);
		cr_expect_str_eq(json_string_value(json_object_get(one,
								   "key")),
				 "GET /doc/a\n");
		cr_expect_eq(int_at(one, "hits"), 1);
		cr_expect(json_is_array(json_object_get(one, "headers")));
		cr_expect_str_eq(json_string_value(json_object_get(
					 one, "body_encoding")),
				 "text");
		cr_expect(strstr(json_string_value(json_object_get(one,
								   "body")),
				 "/doc/a") != NULL);
		json_decref(one);
	}
	json_decref(doc);
	cr_expect_eq(admin("GET", "/admin/keys/0123456789abcdef0123456789abcdef",
			   NULL, NULL),
		     404);
	cr_expect_eq(admin("GET", "/admin/keys/nothex", NULL, NULL), 400);
	cr_expect_eq(admin("GET", "/admin/keys?tier=cloud", NULL, NULL), 400);
	cr_expect_eq(admin("GET", "/admin/keys?limit=0", NULL, NULL), 400);
	cr_expect_eq(admin("GET", "/admin/keys?cursor=zz", NULL, NULL), 400);
}

/* --- purges and flushes ---------------------------------------------------------- */

Test(admin, purges_are_observed_as_misses)
{
	json_t *doc;

	start(NULL);
	get("/doc/p1");
	get("/doc/p2?v=1");
	get("/doc/p2?v=2");
	get("/doc/q");
	get("/header?name=Surrogate-Key&value=t1");

	cr_expect_eq(admin("DELETE", "/admin/keys", NULL, NULL), 400,
		     "a purge without a filter is refused");
	/* A dry run lists and keeps. */
	cr_assert_eq(admin("DELETE", "/admin/keys?path=/doc/p2&dry_run=1",
			   NULL, &doc),
		     200);
	cr_expect_eq(int_at(doc, "purged"), 2);
	cr_expect(json_is_true(json_object_get(doc, "dry_run")));
	json_decref(doc);
	cr_expect(strstr(get("/doc/p2?v=1"), "hit") != NULL);

	cr_assert_eq(admin("DELETE", "/admin/keys?path=/doc/p2", NULL, &doc),
		     200);
	cr_expect_eq(int_at(doc, "purged"), 2, "both variants, counted once");
	json_decref(doc);
	cr_expect(strstr(get("/doc/p2?v=1"), "fwd=miss") != NULL);
	cr_expect(strstr(get("/doc/p1"), "hit") != NULL, "other paths stay");

	cr_assert_eq(admin("DELETE", "/admin/keys?tag=t1", NULL, &doc), 200);
	cr_expect_eq(int_at(doc, "purged"), 1);
	json_decref(doc);
	cr_expect(strstr(get("/header?name=Surrogate-Key&value=t1"),
			 "fwd=miss") != NULL);

	cr_assert_eq(admin("DELETE", "/admin/keys?prefix=/doc/p", NULL, &doc),
		     200);
	json_decref(doc);
	cr_expect(strstr(get("/doc/p1"), "fwd=miss") != NULL);
	cr_expect(strstr(get("/doc/q"), "hit") != NULL);

	/* One key by hash. */
	{
		json_t *list;
		char path[128];

		cr_assert_eq(admin("GET", "/admin/keys?path=/doc/q", NULL,
				   &list),
			     200);
		snprintf(path, sizeof(path), "/admin/keys/%s",
			 json_string_value(json_object_get(
				 json_array_get(json_object_get(list, "keys"),
						0),
				 "hash")));
		json_decref(list);
		cr_assert_eq(admin("DELETE", path, NULL, &doc), 200);
		cr_expect_eq(int_at(doc, "purged"), 1);
		json_decref(doc);
		cr_expect(strstr(get("/doc/q"), "fwd=miss") != NULL);
	}
}

Test(admin, flush_one_tier_or_all)
{
	json_t *doc;

	start(NULL);
	get("/doc/f");
	usleep(300 * 1000); /* the disk writer commits */
	cr_assert_eq(admin("POST", "/admin/flush?tier=memory", NULL, &doc),
		     200);
	cr_expect_eq(int_at(json_object_get(doc, "flushed"), "memory"), 1);
	json_decref(doc);
	cr_expect(strstr(get("/doc/f"), "detail=disk") != NULL,
		  "the disk copy answers after a memory flush");
	cr_assert_eq(admin("POST", "/admin/flush", NULL, &doc), 200);
	json_decref(doc);
	cr_expect(strstr(get("/doc/f"), "fwd=miss") != NULL);
	cr_expect_eq(admin("GET", "/admin/flush", NULL, NULL), 405);
}

/* --- stats, config, explain ------------------------------------------------------- */

Test(admin, stats_config_and_explain)
{
	const char *const extra[] = {"--set", "admin.token=s3cret", NULL};
	json_t *doc, *entry;

	start(extra);
	get("/doc/s");
	get("/doc/s");
	/* A request is counted when libmicrohttpd reports it complete,
	 * which may be a moment after its client has the answer: wait
	 * (bounded) for the hit to be counted. */
	for (int i = 0;; i++) {
		cr_assert_eq(admin("GET", "/admin/stats", "s3cret", &doc),
			     200);
		if (int_at(jpath(doc, "routes", "/doc/*"), "hits") >= 1 ||
		    i == 50)
			break;
		json_decref(doc);
		usleep((useconds_t)proc_scaled_ms(20) * 1000);
	}
	cr_expect_eq(int_at(jpath(doc, "tiers", "memory"),
			    "entries"),
		     1);
	cr_expect_eq(int_at(jpath(doc, "routes", "/doc/*"), "hits"),
		     1);
	cr_expect_eq(int_at(json_object_get(doc, "upstream"), "requests"), 1);
	json_decref(doc);

	cr_assert_eq(admin("GET", "/admin/config", "s3cret", &doc), 200);
	cr_expect_str_eq(json_string_value(jpath(doc, "admin",
							    "token")),
			 "***");
	cr_expect(json_is_array(json_object_get(doc, "routes")));
	json_decref(doc);

	cr_assert_eq(admin("GET",
			   "/admin/explain?method=GET&url=/doc/s",
			   "s3cret", &doc),
		     200);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "route")),
			 "/doc/*");
	cr_expect(json_is_true(json_object_get(doc, "cacheable")));
	cr_expect_str_eq(json_string_value(json_object_get(doc, "key")),
			 "GET /doc/s\n");
	entry = json_object_get(doc, "entry");
	cr_assert(json_is_object(entry));
	cr_expect_str_eq(json_string_value(json_array_get(
				 json_object_get(entry, "tiers"), 0)),
			 "memory");
	json_decref(doc);

	cr_assert_eq(admin("GET",
			   "/admin/explain?url=/doc/s&h=Authorization:x",
			   "s3cret", &doc),
		     200);
	cr_expect(json_is_false(json_object_get(doc, "cacheable")));
	cr_expect(json_is_string(json_object_get(doc, "reason")));
	json_decref(doc);
	cr_assert_eq(admin("GET", "/admin/explain?url=/elsewhere", "s3cret",
			   &doc),
		     200);
	cr_expect(json_is_null(json_object_get(doc, "route")));
	cr_expect(json_is_false(json_object_get(doc, "cacheable")));
	json_decref(doc);
}

/* --- auth ---------------------------------------------------------------------------- */

Test(admin, token_is_required_when_set)
{
	const char *const extra[] = {"--set", "admin.token=s3cret", NULL};

	start(extra);
	cr_expect_eq(admin("GET", "/admin/stats", NULL, NULL), 401);
	cr_expect_eq(admin("GET", "/admin/stats", "wrong", NULL), 403);
	cr_expect_eq(admin("GET", "/admin/stats", "s3cret", NULL), 200);
	cr_expect_eq(admin("DELETE", "/admin/keys?prefix=/", "wrong", NULL),
		     403);
	/* Probes never need it. */
	cr_expect_eq(admin("GET", "/health", NULL, NULL), 200);
	cr_expect_eq(admin("GET", "/ready", NULL, NULL), 200);
	cr_expect_eq(admin("GET", "/admin/nothing", "s3cret", NULL), 404);
}

Test(admin, public_admin_address_without_token_is_refused)
{
	const char *const args[] = {"--upstream", "http://127.0.0.1:9",
				    "--admin-listen", "0.0.0.0:0", NULL};
	struct proc_result res;

	cr_assert_eq(proc_run(args, NULL, 10000, &res), 0);
	cr_expect_eq(res.status, 2, "exit %d: %s", res.status, res.err);
	cr_expect(strstr(res.err, "admin") != NULL, "%s", res.err);
	proc_result_free(&res);
}

/* --- tracing and the JSON access log --------------------------------------------- */

/* The traceparent the origin last received. */
static const char *upstream_traceparent(void)
{
	const struct origin_request *last = origin_last(origin);

	cr_assert_not_null(last);
	return origin_header(last, "traceparent");
}

Test(admin, trace_context_is_continued_or_started_and_logged)
{
	const char *const extra[] = {"--set", "log.format=json", NULL};
	const char *in = "00-4bf92f3577b34da6a3ce929d0e0e4736-"
			 "00f067aa0ba902b7-01";
	char url[256], header[128], *out, *line, *last_line = NULL;
	const char *tp;
	struct client_response r;
	json_t *doc;

	start(extra);
	/* Continued: same trace id, Strata's own span id. */
	snprintf(header, sizeof(header), "traceparent: %s", in);
	proc_url(strata, "/echo/t1", url, sizeof(url));
	cr_assert_eq(client_request("GET", url,
				    (const char *[]){header,
						     "tracestate: k=v", NULL},
				    NULL, 0, &r),
		     200);
	client_response_free(&r);
	tp = upstream_traceparent();
	cr_assert_not_null(tp, "no traceparent upstream");
	cr_expect_eq(strlen(tp), 55, "%s", tp);
	cr_expect_eq(strncmp(tp, in, 36), 0, "trace id changed: %s", tp);
	cr_expect_neq(strncmp(tp + 36, in + 36, 16), 0,
		      "Strata must send its own span id: %s", tp);
	cr_expect_str_eq(origin_header(origin_last(origin), "tracestate"),
			 "k=v");

	/* Started: none given, a new valid one upstream. */
	proc_url(strata, "/echo/t2", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	client_response_free(&r);
	tp = upstream_traceparent();
	cr_assert_not_null(tp);
	cr_expect_eq(strncmp(tp, "00-", 3), 0, "%s", tp);
	cr_expect_null(origin_header(origin_last(origin), "tracestate"));

	/* Logged: the JSON access line of the first request carries its
	 * trace id. */
	usleep(100 * 1000);
	out = proc_output(strata);
	for (line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
		if (strstr(line, "\"/echo/t1\"") != NULL)
			last_line = line;
	cr_assert_not_null(last_line, "no access line for /echo/t1");
	doc = json_loads(last_line, 0, NULL);
	cr_assert_not_null(doc, "not JSON: %s", last_line);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "trace_id")),
			 "4bf92f3577b34da6a3ce929d0e0e4736");
	cr_expect_eq(json_integer_value(json_object_get(doc, "status")), 200);
	cr_expect(json_is_number(json_object_get(doc, "upstream_ms")));
	cr_expect(json_is_string(json_object_get(doc, "cache")));
	json_decref(doc);
	free(out);
}
