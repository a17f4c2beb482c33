/*
 * Integration tests for memoized C handlers: the contrib/examples/embed
 * program (libstrata with two C-handler routes) on a free loopback port.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../helpers/client.h"
#include "../helpers/proc.h"

static struct proc *embed;

static const char *embed_bin(void)
{
	const char *bin = getenv("STRATA_EMBED_BIN");

	return bin != NULL ? bin : "contrib/examples/embed";
}

static void start_embed(void)
{
	struct proc_spec spec = { .bin = embed_bin() };

	embed = proc_start(&spec);
	cr_assert_not_null(embed, "the embed example did not start");
}

static void stop_embed(void)
{
	if (embed != NULL)
		proc_stop(&embed);
}

static const char *url(const char *path)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "http://127.0.0.1:%u%s", proc_port(embed),
		 path);
	return buf;
}

TestSuite(embed, .init = start_embed, .fini = stop_embed, .timeout = 60);

Test(embed, slow_handler_is_memoized)
{
	struct client_response a, b;

	cr_assert_eq(client_request("GET", url("/report"), NULL, NULL, 0, &a),
		     200);
	cr_assert_eq(client_request("GET", url("/report"), NULL, NULL, 0, &b),
		     200);
	cr_expect_geq(a.seconds, 0.9, "the first call runs the handler (%.2f s)",
		      a.seconds);
	cr_expect_lt(b.seconds, 0.5, "the second is a hit (%.2f s)",
		     b.seconds);
	cr_expect_str_eq(client_header(&a, "Cache-Status"),
			 "strata; fwd=miss; stored");
	cr_expect(strncmp(client_header(&b, "Cache-Status") ?: "",
			  "strata; hit; ttl=", 17) == 0,
		  "Cache-Status: %s", client_header(&b, "Cache-Status"));
	cr_expect_not_null(client_header(&b, "Age"));
	cr_expect_str_eq(a.body, b.body, "the hit is the stored answer");
	cr_expect_str_eq(a.body, "{\"report\": \"done\", \"run\": 1}\n");
	cr_expect_str_eq(client_header(&b, "Content-Type"), "application/json");
	client_response_free(&a);
	client_response_free(&b);
}

Test(embed, stampede_runs_the_handler_once)
{
	enum { N = 50 };
	long statuses[N];
	double wall = 0;
	struct client_response r;

	cr_assert_eq(client_concurrent(url("/report"), N,
				       proc_scaled_ms(20000), statuses, &wall),
		     N);
	for (int i = 0; i < N; i++)
		cr_expect_eq(statuses[i], 200, "request %d: %ld", i,
			     statuses[i]);
	cr_expect_lt(wall, 5.0 * proc_timeout_mult(),
		     "%d concurrent misses took %.2f s", N, wall);
	/* Had any request run the handler again, the stored run number
	 * would be above 1. */
	cr_assert_eq(client_request("GET", url("/report"), NULL, NULL, 0, &r),
		     200);
	cr_expect_str_eq(r.body, "{\"report\": \"done\", \"run\": 1}\n");
	client_response_free(&r);
}

Test(embed, keys_include_the_query)
{
	struct client_response a, b;

	cr_assert_eq(client_request("GET", url("/hello?ada"), NULL, NULL, 0,
				    &a),
		     200);
	cr_assert_eq(client_request("GET", url("/hello?bob"), NULL, NULL, 0,
				    &b),
		     200);
	cr_expect_str_eq(a.body, "hello, ada\n");
	cr_expect_str_eq(b.body, "hello, bob\n");
	client_response_free(&a);
	client_response_free(&b);
}

Test(embed, unrouted_path_goes_upstream_and_fails_cleanly)
{
	struct client_response r;
	long status;

	/* No upstream is running behind the example: 502, not a crash. */
	status = client_request("GET", url("/nowhere"), NULL, NULL, 0, &r);
	cr_expect_eq(status, 502, "status %ld", status);
	client_response_free(&r);
	cr_expect_eq(client_request("GET", url("/hello"), NULL, NULL, 0, &r),
		     200, "still serving");
	client_response_free(&r);
}
