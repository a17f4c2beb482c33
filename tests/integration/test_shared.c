/*
 * test_shared.c: the Redis tier through the real `strata` program.
 *
 * Two strata processes (each with its own disk directory) share one real
 * redis-server and the in-process test origin (tests/helpers/origin.h),
 * which counts what reaches it.  test_fleet.c covers purges and failures
 * through the embedding API; this file checks the same wiring from the
 * command line (configuration keys, start-up, logs) and is also run
 * against a ThreadSanitizer build of strata by .ci/run.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"
#include "../helpers/redis_server.h"

static struct origin *origin;
static struct redis_server *redis;
static struct proc *strata[2];
static char redis_url[128];

static void setup(void)
{
	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
	redis = redis_server_start(NULL);
	cr_assert_not_null(redis, "cannot start redis-server");
	redis_server_url(redis, false, NULL, redis_url, sizeof(redis_url));
}

static void teardown(void)
{
	proc_stop(&strata[0]);
	proc_stop(&strata[1]);
	redis_server_stop(&redis);
	origin_stop(&origin);
}

TestSuite(shared, .init = setup, .fini = teardown, .timeout = 60);

static void start(int i, const char *url)
{
	char upstream[64], set_url[192];
	const char *args[] = {
		"--upstream", upstream, "--route", "/doc/*=60s",
		"--route", "/slow=60s", "--route", "/validated/*=1s",
		"--set", set_url,
		"--set", "cache.redis.timeout=500ms", "--set",
		"cache.redis.prefix=sh", NULL,
	};
	struct proc_spec spec = {.args = args};

	origin_url(origin, "", upstream, sizeof(upstream));
	snprintf(set_url, sizeof(set_url), "cache.redis.url=%s", url);
	strata[i] = proc_start(&spec);
	cr_assert_not_null(strata[i], "strata did not start (output above)");
}

static long get(int i, const char *path, char *cs, size_t cs_len)
{
	char url[256];
	struct client_response r;
	long status;

	proc_url(strata[i], path, url, sizeof(url));
	status = client_request("GET", url, NULL, NULL, 0, &r);
	snprintf(cs, cs_len, "%s", client_header(&r, "Cache-Status") ?: "");
	client_response_free(&r);
	return status;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Wait until Redis holds `n` entries under the test's prefix. */
static bool wait_entries(const char *n, long ms)
{
	char out[64];
	long deadline = now_ms() + proc_scaled_ms(ms);

	do {
		if (redis_server_cmd(redis, 4,
				     (const char *[]){"EVAL",
						      "return #redis.call('KEYS', 'sh:e:*')",
						      "0", ""},
				     NULL, out, sizeof(out), NULL) == ':' &&
		    strcmp(out, n) == 0)
			return true;
		usleep(5000);
	} while (now_ms() < deadline);
	return false;
}

Test(shared, one_process_fills_and_the_other_hits_redis)
{
	char cs[128];

	start(0, redis_url);
	start(1, redis_url);
	cr_assert_eq(get(0, "/doc/a", cs, sizeof(cs)), 200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	cr_assert(wait_entries("1", 2000), "the entry never reached Redis");
	cr_assert_eq(get(1, "/doc/a", cs, sizeof(cs)), 200);
	cr_expect(strstr(cs, "detail=redis") != NULL, "%s", cs);
	cr_assert_eq(get(1, "/doc/a", cs, sizeof(cs)), 200);
	cr_expect(strstr(cs, "detail=memory") != NULL, "%s", cs);
	cr_expect_eq(origin_count_prefix(origin, "/doc/a"), 1);
}

struct burst {
	int i;
	long statuses[50];
	int answered;
};

static void *burst_thread(void *p)
{
	struct burst *b = p;
	char url[128];
	double wall;

	proc_url(strata[b->i], "/slow", url, sizeof(url));
	b->answered = client_concurrent(url, 50, proc_scaled_ms(20000),
					b->statuses, &wall);
	return NULL;
}

Test(shared, a_stampede_on_two_processes_reaches_the_origin_once)
{
	struct burst b[2] = {{.i = 0}, {.i = 1}};
	pthread_t t[2];

	start(0, redis_url);
	start(1, redis_url);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, burst_thread, &b[i]),
			     0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(b[i].answered, 50);
		for (int j = 0; j < 50; j++)
			cr_expect_eq(b[i].statuses[j], 200);
	}
	cr_expect_eq(origin_count_prefix(origin, "/slow"), 1,
		     "the origin saw %zu requests",
		     origin_count_prefix(origin, "/slow"));
}

Test(shared, redis_down_at_start_serves_and_logs_once)
{
	char url[64], cs[128], *out, *p;
	int lines = 0;

	/* Nothing listens there (the port was free a moment ago). */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", proc_free_port());
	start(0, url);
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(get(0, "/doc/down", cs, sizeof(cs)), 200);
		usleep(20 * 1000);
	}
	cr_expect(strstr(cs, "detail=memory") != NULL, "%s", cs);
	cr_expect_eq(origin_count_prefix(origin, "/doc/down"), 1);
	out = proc_output(strata[0]);
	cr_assert_not_null(out);
	for (p = out; (p = strstr(p, "redis ")) != NULL; p++)
		if (strstr(p, ": down") != NULL &&
		    strstr(p, ": down") < strchr(p, '\n'))
			lines++;
	cr_expect_eq(lines, 1, "down logged %d times:\n%s", lines, out);
	free(out);
}

Test(shared, an_expired_copy_in_redis_is_revalidated_by_another_process)
{
	char cs[128];
	const struct origin_request *last;

	start(0, redis_url);
	start(1, redis_url);
	cr_assert_eq(get(0, "/validated/x", cs, sizeof(cs)), 200);
	cr_assert(wait_entries("1", 2000));
	usleep((useconds_t)proc_scaled_ms(1300) * 1000); /* expired */
	/* B has nothing of its own: Redis's kept copy is revalidated. */
	cr_assert_eq(get(1, "/validated/x", cs, sizeof(cs)), 200);
	cr_expect_str_eq(cs, "strata; fwd=stale; fwd-status=304; stored");
	last = origin_last(origin);
	cr_expect_str_eq(origin_header(last, "If-None-Match"), "\"doc-v1\"");
	cr_expect_eq(origin_count_prefix(origin, "/validated/x"), 2);
}
