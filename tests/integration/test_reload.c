/*
 * test_reload.c: live reload of the real `strata` program, by SIGHUP and
 * by POST /admin/reload.
 *
 * strata reads a configuration file the test rewrites; the tests check
 * that routes, TTLs, the upstream and the log level change while the
 * process, its connections and its cached entries stay, that a broken
 * file is refused with the old configuration kept, and that settings
 * that cannot change live are reported as needing a restart.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"
#include "../helpers/prom.h"

static struct origin *origin;
static struct origin *origin2;
static struct proc *strata;
static char conf_path[64];

static void setup(void)
{
	int fd;

	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
	snprintf(conf_path, sizeof(conf_path), "/tmp/strata-reload-XXXXXX");
	fd = mkstemp(conf_path);
	cr_assert_geq(fd, 0);
	close(fd);
}

static void teardown(void)
{
	proc_stop(&strata);
	origin_stop(&origin);
	origin_stop(&origin2);
	unlink(conf_path);
}

TestSuite(reload, .init = setup, .fini = teardown, .timeout = 60);

/* Write the configuration file: the upstream `up`, then `body` (routes
 * and other keys, YAML). */
static void write_conf(const struct origin *up, const char *body)
{
	char url[64];
	FILE *f = fopen(conf_path, "w");

	cr_assert_not_null(f);
	origin_url(up, "", url, sizeof(url));
	fprintf(f, "log:\n  level: warn\nupstream:\n  url: %s\n%s", url,
		body);
	cr_assert_eq(fclose(f), 0);
}

static void start(const char *body)
{
	const char *args[] = {"-c", conf_path, NULL};
	struct proc_spec spec = {.args = args};

	write_conf(origin, body);
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
}

/* GET through the proxy: the status, and the Cache-Status into cs. */
static long get(const char *path, char *cs, size_t cs_len)
{
	char url[512];
	struct client_response r;
	long status;

	proc_url(strata, path, url, sizeof(url));
	status = client_request("GET", url, NULL, NULL, 0, &r);
	snprintf(cs, cs_len, "%s", client_header(&r, "Cache-Status") ?: "");
	client_response_free(&r);
	return status;
}

/* An admin request: the status, and the body as JSON in *doc (may be
 * NULL: not parsed). */
static long admin(const char *method, const char *path, json_t **doc)
{
	char url[512];
	struct client_response r;
	long status;

	proc_admin_url(strata, path, url, sizeof(url));
	status = client_request(method, url, NULL, NULL, 0, &r);
	if (doc != NULL) {
		*doc = json_loadb(r.body != NULL ? r.body : "", r.body_len, 0,
				  NULL);
		cr_assert_not_null(*doc, "%s %s: not JSON: %s", method, path,
				   r.body != NULL ? r.body : "");
	}
	client_response_free(&r);
	return status;
}

/* A field of the first route of /admin/config, as the file would say. */
static char *first_route(const char *field)
{
	json_t *doc;
	char *v;

	cr_assert_eq(admin("GET", "/admin/config", &doc), 200);
	v = strdup(json_string_value(json_object_get(
		json_array_get(json_object_get(doc, "routes"), 0), field)));
	json_decref(doc);
	return v;
}

/* Wait (bounded) until the first route's `field` reads `want`. */
static bool wait_first_route(const char *field, const char *want)
{
	for (int i = 0; i < 100; i++) {
		char *v = first_route(field);
		bool ok = strcmp(v, want) == 0;

		free(v);
		if (ok)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

static bool wait_ttl(const char *want)
{
	return wait_first_route("ttl", want);
}

static bool has_string(const json_t *array, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(array, i, v)
		if (strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

Test(reload, sighup_changes_ttls_and_routes_and_keeps_entries)
{
	char cs[160];

	start("routes:\n  - path: /doc/*\n    name: doc\n    ttl: 60s\n");
	cr_assert_eq(get("/doc/kept", cs, sizeof(cs)), 200);
	cr_assert_str_eq(cs, "strata; fwd=miss; stored");
	cr_assert_eq(get("/status/200", cs, sizeof(cs)), 200);
	cr_assert_str_eq(cs, "strata; fwd=bypass", "no route yet");

	write_conf(origin, "routes:\n"
			   "  - path: /doc/*\n    name: doc\n    ttl: 1s\n"
			   "  - path: /status/*\n    name: status\n"
			   "    ttl: 60s\n");
	cr_assert_eq(proc_signal(strata, SIGHUP), 0);
	cr_assert(wait_ttl("1s"), "the reload never took effect");

	/* The entry stored before keeps its own expiry (60 s). */
	cr_assert_eq(get("/doc/kept", cs, sizeof(cs)), 200);
	cr_assert(strncmp(cs, "strata; hit", 11) == 0, "%s", cs);
	/* A new route caches at once. */
	cr_assert_eq(get("/status/200", cs, sizeof(cs)), 200);
	cr_assert_str_eq(cs, "strata; fwd=miss; stored");
	cr_assert_eq(get("/status/200", cs, sizeof(cs)), 200);
	cr_assert(strncmp(cs, "strata; hit", 11) == 0, "%s", cs);
	/* New entries of /doc live 1 s now. */
	cr_assert_eq(get("/doc/new", cs, sizeof(cs)), 200);
	cr_assert_str_eq(cs, "strata; fwd=miss; stored");
	usleep(1300 * 1000);
	cr_assert_eq(get("/doc/new", cs, sizeof(cs)), 200);
	cr_assert(strncmp(cs, "strata; fwd=", 12) == 0,
		  "expired after the new 1 s TTL: %s", cs);
	cr_assert_eq(get("/doc/kept", cs, sizeof(cs)), 200);
	cr_assert(strncmp(cs, "strata; hit", 11) == 0, "%s", cs);
}

Test(reload, admin_reload_reports_what_applied_and_what_needs_a_restart)
{
	json_t *doc;

	start("routes:\n  - path: /doc/*\n    ttl: 60s\n");
	/* "  timeout" continues write_conf's upstream mapping. */
	write_conf(origin, "  timeout: 7s\n"
			   "cache:\n  memory: 32MiB\n"
			   "routes:\n  - path: /doc/*\n    ttl: 60s\n");
	cr_assert_eq(admin("POST", "/admin/reload", &doc), 200);
	cr_assert_eq(json_integer_value(json_object_get(doc, "generation")), 2);
	cr_assert(has_string(json_object_get(doc, "applied"),
			     "upstream.timeout"));
	cr_assert(!has_string(json_object_get(doc, "applied"),
			      "cache.memory"));
	cr_assert(has_string(json_object_get(doc, "restart_required"),
			     "cache.memory"));
	cr_assert(!has_string(json_object_get(doc, "restart_required"),
			      "upstream.timeout"));
	json_decref(doc);

	/* Nothing changed since: nothing applied, the restart still due. */
	cr_assert_eq(admin("POST", "/admin/reload", &doc), 200);
	cr_assert_eq(json_integer_value(json_object_get(doc, "generation")), 3);
	cr_assert_eq(json_array_size(json_object_get(doc, "applied")), 0);
	cr_assert(has_string(json_object_get(doc, "restart_required"),
			     "cache.memory"));
	json_decref(doc);

	cr_assert_eq(admin("GET", "/admin/config", &doc), 200);
	cr_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(doc, "upstream"), "timeout")),
			 "7s");
	json_decref(doc);
}

Test(reload, a_broken_file_is_refused_and_the_old_configuration_stays)
{
	char cs[160], *ttl;
	json_t *doc;
	const char *msg;

	start("routes:\n  - path: /doc/*\n    ttl: 60s\n");
	cr_assert_eq(get("/doc/a", cs, sizeof(cs)), 200);
	write_conf(origin, "routes:\n  - path: /doc/*\n    ttl: sometimes\n");

	cr_assert_eq(admin("POST", "/admin/reload", &doc), 422);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "error")),
			 "invalid_config");
	msg = json_string_value(json_object_get(doc, "detail"));
	cr_assert_not_null(msg);
	cr_assert_not_null(strstr(msg, conf_path), "names the file: %s", msg);
	cr_assert_not_null(strstr(msg, ":7:"), "names the line: %s", msg);
	cr_assert_not_null(strstr(msg, "ttl"), "names the key: %s", msg);
	json_decref(doc);

	/* SIGHUP with the same file: logged, refused, still serving. */
	cr_assert_eq(proc_signal(strata, SIGHUP), 0);
	usleep(200 * 1000);
	cr_assert_eq(get("/doc/a", cs, sizeof(cs)), 200);
	cr_assert(strncmp(cs, "strata; hit", 11) == 0, "%s", cs);
	ttl = first_route("ttl");
	cr_assert_str_eq(ttl, "1m");
	free(ttl);
	{
		char *out = proc_output(strata);

		cr_assert_not_null(strstr(out, "reload refused"), "%s", out);
		free(out);
	}
}

struct slow_get {
	long status;
	char cs[160];
};

static void *slow_get_thread(void *arg)
{
	struct slow_get *g = arg;

	g->status = get("/slow?ms=1500", g->cs, sizeof(g->cs));
	return NULL;
}

Test(reload, a_request_under_way_finishes_with_the_configuration_it_began_with)
{
	struct slow_get g = {0};
	pthread_t t;
	char cs[160];

	start("routes:\n  - path: /slow\n    ttl: 60s\n");
	cr_assert_eq(pthread_create(&t, NULL, slow_get_thread, &g), 0);
	cr_assert(origin_wait_count(origin, 1, 5000));
	/* /slow is no longer cached, from now on. */
	write_conf(origin, "routes:\n  - path: /slow\n    ttl: 0\n");
	cr_assert_eq(proc_signal(strata, SIGHUP), 0);
	cr_assert(wait_ttl("0s"), "the reload never took effect");
	pthread_join(t, NULL);
	cr_assert_eq(g.status, 200, "the request under way was answered");
	cr_assert_str_eq(g.cs, "strata; fwd=miss; stored",
			 "it ran under the old route to the end");
	cr_assert_eq(get("/slow?ms=10", cs, sizeof(cs)), 200);
	cr_assert_str_eq(cs, "strata; fwd=bypass");
}

Test(reload, the_upstream_changes_live)
{
	char cs[160];

	start("routes:\n  - path: /doc/*\n    ttl: 60s\n");
	cr_assert_eq(get("/status/201", cs, sizeof(cs)), 201);
	cr_assert_eq(origin_count(origin), 1);
	origin2 = origin_start();
	cr_assert_not_null(origin2);
	write_conf(origin2, "routes:\n  - path: /doc/*\n    ttl: 30s\n");
	cr_assert_eq(proc_signal(strata, SIGHUP), 0);
	cr_assert(wait_ttl("30s"), "the reload never took effect");
	cr_assert_eq(get("/status/202", cs, sizeof(cs)), 202);
	cr_assert_eq(origin_count(origin2), 1, "the new upstream answered");
	cr_assert_eq(origin_count(origin), 1, "the old one saw nothing more");
}

/* The value of strata_requests_total for route, method, cache. */
static double requests_total(const char *route, const char *cache)
{
	char url[512], err[256], labels[256];
	struct client_response r;
	struct prom_doc *d = NULL;
	bool found = false;
	double v;

	proc_admin_url(strata, "/metrics", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	cr_assert_eq(prom_parse(r.body, &d, err, sizeof(err)), 0, "%s", err);
	client_response_free(&r);
	snprintf(labels, sizeof(labels),
		 "route=\"%s\",method=\"GET\",cache=\"%s\"", route, cache);
	v = prom_value(d, "strata_requests_total", labels, &found);
	cr_assert(found, "no series %s", labels);
	prom_free(&d);
	return v;
}

/* requests_total once it has reached want, or its value after 2 s (scaled).
 * A request is counted when libmicrohttpd reports it complete, which may be
 * just after the client has read the whole answer. */
static double settled_requests_total(const char *route, const char *cache,
				     double want)
{
	double v = requests_total(route, cache);

	for (int i = 0; i < 100 * proc_timeout_mult() && v < want; i++) {
		usleep(20 * 1000);
		v = requests_total(route, cache);
	}
	return v;
}

Test(reload, metrics_series_survive_a_reload_and_new_routes_get_theirs)
{
	char cs[160];

	start("routes:\n  - path: /doc/*\n    name: doc\n    ttl: 60s\n");
	cr_assert_eq(get("/doc/a", cs, sizeof(cs)), 200);
	cr_assert_eq(get("/doc/a", cs, sizeof(cs)), 200);
	cr_assert_eq(settled_requests_total("doc", "hit", 1.0), 1.0);
	write_conf(origin, "routes:\n"
			   "  - path: /other/*\n    name: other\n"
			   "    ttl: 60s\n"
			   "  - path: /doc/*\n    name: doc\n    ttl: 10s\n");
	cr_assert_eq(proc_signal(strata, SIGHUP), 0);
	cr_assert(wait_first_route("name", "other"),
		  "the reload never took effect");
	cr_assert_eq(get("/doc/a", cs, sizeof(cs)), 200);
	cr_assert_eq(settled_requests_total("doc", "hit", 2.0), 2.0,
		     "the counter went on, not reset");
	cr_assert_eq(requests_total("other", "hit"), 0.0,
		     "the new route's series is listed at zero");
}

struct hammer {
	atomic_bool *stop;
	unsigned id;
	unsigned requests;
	unsigned failures;
	long last_bad;
};

/* GETs on a cached route (hits and a few misses) and on an uncached one
 * until told to stop; counts anything but 200. */
static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	char path[64], cs[160];

	while (!atomic_load(h->stop)) {
		long st;

		if (h->requests % 4 == 3)
			snprintf(path, sizeof(path), "/status/200");
		else
			snprintf(path, sizeof(path), "/doc/%u-%u", h->id,
				 h->requests % 16);
		st = get(path, cs, sizeof(cs));
		h->requests++;
		if (st != 200) {
			h->failures++;
			h->last_bad = st;
		}
	}
	return NULL;
}

Test(reload, reloads_under_load_lose_no_request)
{
	enum { THREADS = 4, RELOADS = 40 };
	static const char *const confs[2] = {
		"routes:\n  - path: /doc/*\n    name: doc\n    ttl: 60s\n",
		"routes:\n  - path: /doc/*\n    name: doc\n    ttl: 1s\n"
		"  - path: /status/*\n    ttl: 60s\n",
	};
	struct hammer h[THREADS];
	pthread_t t[THREADS];
	atomic_bool stop = false;
	unsigned total = 0;
	json_t *doc;

	start(confs[0]);
	for (unsigned i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){.stop = &stop, .id = i};
		cr_assert_eq(pthread_create(&t[i], NULL, hammer_thread, &h[i]),
			     0);
	}
	for (unsigned i = 0; i < RELOADS; i++) {
		write_conf(origin, confs[(i + 1) % 2]);
		cr_assert_eq(admin("POST", "/admin/reload", &doc), 200);
		json_decref(doc);
		usleep(20 * 1000);
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(h[i].failures, 0, "thread %u: %u of %u failed "
			     "(last status %ld)", i, h[i].failures,
			     h[i].requests, h[i].last_bad);
		total += h[i].requests;
	}
	cr_assert_gt(total, RELOADS, "requests ran during the reloads");
	cr_assert_eq(admin("GET", "/admin/config", &doc), 200);
	json_decref(doc);
}
