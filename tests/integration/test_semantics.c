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
