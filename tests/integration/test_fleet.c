/*
 * test_fleet.c: the Redis tier shared by several Strata servers.
 *
 * Every test runs one real redis-server on a free loopback port
 * (tests/helpers/redis_server.h) and two or three Strata servers in this
 * process through libstrata's embedding API, each with its own disk
 * directory, all sharing that Redis.  A C handler that counts its calls
 * across all servers stands in for the origin, so "one upstream request"
 * is counted at the origin.  Waits are bounded and scaled by
 * $STRATA_TEST_TIMEOUT_MULT.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "../helpers/proc.h"
#include "../helpers/redis_server.h"
#include "cache/key.h"
#include "core/log.h"
#include "strata/config.h"
#include "strata/handler.h"
#include "strata/strata.h"

#define MAX_SERVERS 3

static atomic_uint calls;
static atomic_uint handler_delay_ms;
static struct redis_server *redis;
static struct strata_server *srv[MAX_SERVERS];
static char dirs[MAX_SERVERS][64];
static char redis_url[256];
static const char *purge_log = "100000";

/* The origin: "<path> call N", tagged with the path's first segment and
 * "all-pages", after handler_delay_ms. */
static void origin(void *arg, const struct strata_request *req,
		   struct strata_response *resp)
{
	char body[128], tags[128];
	const char *path = strata_request_path(req);
	unsigned delay = atomic_load(&handler_delay_ms);
	int n;

	(void)arg;
	if (delay > 0)
		usleep(delay * 1000u);
	n = snprintf(body, sizeof(body), "%s call %u\n", path,
		     atomic_fetch_add(&calls, 1) + 1);
	snprintf(tags, sizeof(tags), "seg-%.*s all-pages",
		 (int)strcspn(path + 1, "/"), path + 1);
	strata_response_set_status(resp, 200);
	strata_response_add_header(resp, "Surrogate-Key", tags);
	if (strncmp(path, "/p/vary", 7) == 0)
		strata_response_add_header(resp, "Vary", "Accept-Language");
	strata_response_append(resp, body, (size_t)n);
}

static void set(struct strata_config *cfg, const char *key, const char *value)
{
	char err[STRATA_CONFIG_ERRLEN];

	cr_assert_eq(strata_config_set(cfg, key, value, "test", err,
				       sizeof(err)),
		     0, "%s=%s: %s", key, value, err);
}

/* Start server i on its own disk directory (kept across restarts). */
static void start_server(int i, const char *url)
{
	char err[STRATA_CONFIG_ERRLEN];
	struct strata_config *cfg = strata_config_new();

	cr_assert_not_null(cfg);
	if (dirs[i][0] == '\0') {
		strcpy(dirs[i], "/tmp/strata-fleet-XXXXXX");
		cr_assert_not_null(mkdtemp(dirs[i]));
	}
	set(cfg, "listen", "127.0.0.1:0");
	set(cfg, "admin.listen", "127.0.0.1:0");
	set(cfg, "cache.disk.path", dirs[i]);
	set(cfg, "access_log", "false");
	set(cfg, "cache.redis.url", url);
	set(cfg, "cache.redis.prefix", "fleet");
	/* Generous: sanitizer builds on a busy machine are slow. */
	set(cfg, "cache.redis.timeout", "500ms");
	set(cfg, "cache.redis.pool", "2");
	set(cfg, "log.level", "error");
	set(cfg, "cache.redis.purge_log", purge_log);
	cr_assert_eq(strata_config_add_route(cfg, "/p/*=60s", "test", err,
					     sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(strata_config_add_route(cfg, "/q/*=60s", "test", err,
					     sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(strata_server_new(cfg, &srv[i]), 0);
	strata_config_free(&cfg);
	cr_assert_eq(strata_server_handle(srv[i], "/p/*", origin, NULL), 0);
	cr_assert_eq(strata_server_handle(srv[i], "/q/*", origin, NULL), 0);
	cr_assert_eq(strata_server_start(srv[i]), 0);
}

static void stop_server(int i)
{
	if (srv[i] == NULL)
		return;
	strata_server_drain(srv[i], 1000);
	strata_server_free(&srv[i]);
}

static void setup(void)
{
	strata_log_set_level(STRATA_LOG_ERROR);
	atomic_store(&calls, 0);
	atomic_store(&handler_delay_ms, 0);
	purge_log = "100000";
	memset(dirs, 0, sizeof(dirs));
	redis = redis_server_start(NULL);
	cr_assert_not_null(redis, "cannot start redis-server");
	redis_server_url(redis, false, NULL, redis_url, sizeof(redis_url));
}

static void teardown(void)
{
	char cmd[256];

	for (int i = 0; i < MAX_SERVERS; i++) {
		stop_server(i);
		if (dirs[i][0] != '\0') {
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dirs[i]);
			if (system(cmd) != 0)
				fprintf(stderr, "could not remove %s\n",
					dirs[i]);
		}
	}
	redis_server_stop(&redis);
}

TestSuite(fleet, .init = setup, .fini = teardown, .timeout = 90);

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* GET path on server i: the status, with body and Cache-Status copied. */
static long get(int i, const char *path, char *body, size_t body_len,
		char *cs, size_t cs_len)
{
	char url[256];
	struct client_response r;
	long status;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s",
		 strata_server_port(srv[i]), path);
	status = client_request("GET", url, NULL, NULL, 0, &r);
	if (body != NULL)
		snprintf(body, body_len, "%s", r.body ? r.body : "");
	if (cs != NULL)
		snprintf(cs, cs_len, "%s",
			 client_header(&r, "Cache-Status") ?: "");
	client_response_free(&r);
	return status;
}

static void hex_of(const char *path, char hex[STRATA_KEY_HEX_LEN + 1])
{
	struct strata_key_rule rule = {0};
	struct strata_key key;
	char text[256];
	size_t len;

	cr_assert_eq(strata_key_text(&rule, "GET", path, NULL, NULL, text,
				     sizeof(text), &len),
		     0);
	strata_key_hash(text, len, &key);
	strata_key_hex(&key, hex);
}

/* A command to the test's Redis; returns the reply type, text in out. */
static int rcmd(char *out, size_t cap, int argc, const char *const *argv)
{
	return redis_server_cmd(redis, argc, argv, NULL, out, cap, NULL);
}

/* Wait until Redis holds the entry for `path` (written behind). */
static bool wait_in_redis(const char *path, long timeout_ms)
{
	char hex[STRATA_KEY_HEX_LEN + 1], name[96], out[64];
	long deadline = now_ms() + proc_scaled_ms(timeout_ms);

	hex_of(path, hex);
	snprintf(name, sizeof(name), "fleet:e:%s", hex);
	do {
		if (rcmd(out, sizeof(out), 2,
			 (const char *[]){"EXISTS", name}) == ':' &&
		    strcmp(out, "1") == 0)
			return true;
		sleep_ms(5);
	} while (now_ms() < deadline);
	return false;
}

/* Fetch `path` through server `via` so that it is stored everywhere. */
static void warm(int via, const char *path)
{
	char cs[128];

	cr_assert_eq(get(via, path, NULL, 0, cs, sizeof(cs)), 200);
	cr_assert(wait_in_redis(path, 2000), "%s never reached Redis", path);
}

Test(fleet, a_fill_on_one_server_is_a_redis_hit_on_another)
{
	char body_a[128], body_b[128], cs[128], hex[STRATA_KEY_HEX_LEN + 1];
	char name[96], pttl[32];
	long ms;

	start_server(0, redis_url);
	start_server(1, redis_url);
	cr_assert_eq(get(0, "/p/one", body_a, sizeof(body_a), cs, sizeof(cs)),
		     200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	cr_assert(wait_in_redis("/p/one", 2000));

	cr_assert_eq(get(1, "/p/one", body_b, sizeof(body_b), cs, sizeof(cs)),
		     200);
	cr_expect_str_eq(body_b, body_a);
	cr_expect(strstr(cs, "strata; hit;") == cs && strstr(cs,
							     "detail=redis"),
		  "%s", cs);
	cr_expect_eq(atomic_load(&calls), 1, "one upstream call in all");
	/* Promoted: the next answer on B is its own. */
	cr_assert_eq(get(1, "/p/one", body_b, sizeof(body_b), cs, sizeof(cs)),
		     200);
	cr_expect(strstr(cs, "detail=memory") != NULL, "%s", cs);
	cr_expect_eq(atomic_load(&calls), 1);

	/* Redis keeps it as long as the entry is fresh (60 s route). */
	hex_of("/p/one", hex);
	snprintf(name, sizeof(name), "fleet:e:%s", hex);
	cr_assert_eq(rcmd(pttl, sizeof(pttl), 2,
			  (const char *[]){"PTTL", name}),
		     ':');
	ms = atol(pttl);
	cr_expect(ms > 55000 && ms <= 60000, "PTTL %ld", ms);
}

/* Populate both servers' tiers with `path`: stored through A, promoted
 * into B's memory and disk by a Redis hit. */
static void populate(const char *path)
{
	char cs[128];

	warm(0, path);
	cr_assert_eq(get(1, path, NULL, 0, cs, sizeof(cs)), 200);
	cr_assert_eq(get(1, path, NULL, 0, cs, sizeof(cs)), 200);
	cr_assert(strstr(cs, "detail=memory") != NULL, "%s", cs);
}

/* Whether B answers `path` from a fresh upstream call. */
static bool fetched_again_on_b(const char *path)
{
	char cs[128];
	unsigned before = atomic_load(&calls);

	cr_assert_eq(get(1, path, NULL, 0, cs, sizeof(cs)), 200);
	return atomic_load(&calls) == before + 1 &&
	       strstr(cs, "fwd=miss") != NULL;
}

/* strata_purges_total{source,kind} on server i's admin listener, as
 * text: the sample line's value, or -1 when there is none. */
static long purges_on(int i, const char *source, const char *kind)
{
	char url[128], line[128];
	struct client_response r;
	const char *p;
	long v = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics",
		 strata_server_admin_port(srv[i]));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	snprintf(line, sizeof(line),
		 "\nstrata_purges_total{source=\"%s\",kind=\"%s\"} ", source,
		 kind);
	p = r.body != NULL ? strstr(r.body, line) : NULL;
	if (p != NULL)
		v = atol(p + strlen(line));
	client_response_free(&r);
	return v;
}

static void purge_and_check(const char *kind, const char *arg,
			    const char *const *gone, size_t n_gone,
			    const char *const *kept, size_t n_kept)
{
	struct strata_purge_result res;

	start_server(0, redis_url);
	start_server(1, redis_url);
	for (size_t i = 0; i < n_gone; i++)
		populate(gone[i]);
	for (size_t i = 0; i < n_kept; i++)
		populate(kept[i]);
	cr_assert_eq(strata_server_purge_by(srv[0], kind, arg, &res), 0);
	cr_expect_eq(res.fleet, 1);
	cr_expect_geq(res.redis, n_gone);
	/* The promise: gone from every connected replica within 100 ms. */
	sleep_ms(proc_scaled_ms(100));
	for (size_t i = 0; i < n_gone; i++)
		cr_expect(fetched_again_on_b(gone[i]), "%s %s: %s still "
			  "served by B", kind, arg, gone[i]);
	for (size_t i = 0; i < n_kept; i++)
		cr_expect(!fetched_again_on_b(kept[i]), "%s %s: %s purged "
			  "from B too", kind, arg, kept[i]);
	/* Counted where it was made, and where it arrived. */
	cr_expect_eq(purges_on(0, "admin", kind), 1);
	cr_expect_eq(purges_on(1, "fleet", kind), 1);
	cr_expect_eq(purges_on(1, "admin", kind), 0);
}

Test(fleet, purge_of_a_key_reaches_the_other_server)
{
	char hex[STRATA_KEY_HEX_LEN + 1];

	hex_of("/p/k1", hex);
	purge_and_check("key", hex, (const char *[]){"/p/k1"}, 1,
			(const char *[]){"/p/k2"}, 1);
}

Test(fleet, purge_of_a_prefix_reaches_the_other_server)
{
	purge_and_check("prefix", "/p/a/",
			(const char *[]){"/p/a/1", "/p/a/2?x=1"}, 2,
			(const char *[]){"/p/b/1", "/p/ab"}, 2);
}

Test(fleet, purge_of_a_tag_reaches_the_other_server)
{
	/* Tags are "seg-<first segment>": /p/... has seg-p, /q/... seg-q. */
	purge_and_check("tag", "seg-q",
			(const char *[]){"/q/1", "/q/2"}, 2,
			(const char *[]){"/p/1"}, 1);
}

Test(fleet, purge_of_everything_reaches_the_other_server)
{
	purge_and_check("all", "", (const char *[]){"/p/1", "/q/1"}, 2,
			NULL, 0);
}

/* Delete `path`'s entry from Redis only (as an eviction would), so that
 * only a server's own tiers can still answer it. */
static void forget_in_redis(const char *path)
{
	char hex[STRATA_KEY_HEX_LEN + 1], name[96], out[16];

	hex_of(path, hex);
	snprintf(name, sizeof(name), "fleet:e:%s", hex);
	rcmd(out, sizeof(out), 2, (const char *[]){"DEL", name});
}

/* `n` prefix purges on server 0 of paths nothing is cached under. */
static void purge_others(int n)
{
	for (int i = 0; i < n; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/other/%d/", i);
		cr_assert_eq(strata_server_purge_by(srv[0], "prefix", path,
						    NULL),
			     0);
	}
}

Test(fleet, a_server_that_was_away_replays_missed_purges)
{
	char cs[128], hex[STRATA_KEY_HEX_LEN + 1];
	unsigned before;

	start_server(0, redis_url);
	start_server(1, redis_url);
	populate("/p/gone");
	populate("/p/kept");
	stop_server(1); /* B's disk keeps both */

	hex_of("/p/gone", hex);
	cr_assert_eq(strata_server_purge(srv[0], hex), 0);
	/* Redis also loses /p/kept (evicted, say): B must still serve it
	 * from its own disk, so a miss below is the purge's doing. */
	forget_in_redis("/p/kept");

	start_server(1, redis_url);
	before = atomic_load(&calls);
	cr_assert_eq(get(1, "/p/kept", NULL, 0, cs, sizeof(cs)), 200);
	cr_expect(strstr(cs, "detail=disk") != NULL, "%s", cs);
	cr_expect_eq(atomic_load(&calls), before);
	cr_expect(fetched_again_on_b("/p/gone"),
		  "B served an entry purged while it was stopped");
}

Test(fleet, a_trimmed_or_lost_stream_drops_local_copies)
{
	char cs[128], out[16];
	unsigned before;

	start_server(0, redis_url);
	start_server(1, redis_url);
	populate("/p/x");
	cr_assert_eq(strata_server_purge_by(srv[0], "prefix", "/nothing/",
					    NULL),
		     0);
	sleep_ms(proc_scaled_ms(100));
	stop_server(1);
	/* Redis loses everything while B is away: B cannot know what was
	 * purged meanwhile, so it must not trust its own copies. */
	cr_assert_eq(rcmd(out, sizeof(out), 1, (const char *[]){"FLUSHALL"}),
		     '+');
	start_server(1, redis_url);
	before = atomic_load(&calls);
	cr_assert_eq(get(1, "/p/x", NULL, 0, cs, sizeof(cs)), 200);
	cr_expect_eq(atomic_load(&calls), before + 1, "%s", cs);
}

Test(fleet, a_stream_trimmed_past_a_server_drops_its_local_copies)
{
	char cs[128];
	unsigned before;

	purge_log = "100"; /* the least: kept about 100 records */
	start_server(0, redis_url);
	start_server(1, redis_url);
	populate("/p/y");
	stop_server(1);
	/* 400 purges of other things while B is away: more than the stream
	 * keeps, so B cannot know whether /p/y was among them. */
	purge_others(400);
	forget_in_redis("/p/y"); /* only B's own copy could answer now */
	start_server(1, redis_url);
	before = atomic_load(&calls);
	cr_assert_eq(get(1, "/p/y", NULL, 0, cs, sizeof(cs)), 200);
	cr_expect_eq(atomic_load(&calls), before + 1,
		     "B trusted its copy after a trimmed stream: %s", cs);
}

Test(fleet, a_server_back_within_the_stream_keeps_its_copies)
{
	char cs[128];
	unsigned before;

	start_server(0, redis_url);
	start_server(1, redis_url);
	populate("/p/z");
	stop_server(1);
	purge_others(5);
	/* Redis no longer has it, B's disk does: replaying five unrelated
	 * purges must not cost B its copy. */
	forget_in_redis("/p/z");
	start_server(1, redis_url);
	before = atomic_load(&calls);
	cr_assert_eq(get(1, "/p/z", NULL, 0, cs, sizeof(cs)), 200);
	cr_expect(strstr(cs, "detail=disk") != NULL, "%s", cs);
	cr_expect_eq(atomic_load(&calls), before);
}

struct load_arg {
	int server;
	size_t n;
	long statuses[100];
	int answered;
};

static void *load_thread(void *p)
{
	struct load_arg *a = p;
	char url[128];
	double wall_s;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/p/cold",
		 strata_server_port(srv[a->server]));
	a->answered = client_concurrent(url, a->n, proc_scaled_ms(20000),
					a->statuses, &wall_s);
	return NULL;
}

Test(fleet, a_stampede_across_three_servers_reaches_the_origin_once)
{
	struct load_arg args[3];
	pthread_t threads[3];

	for (int i = 0; i < 3; i++)
		start_server(i, redis_url);
	atomic_store(&handler_delay_ms, 1000);
	for (int i = 0; i < 3; i++) {
		args[i] = (struct load_arg){.server = i, .n = 100};
		cr_assert_eq(pthread_create(&threads[i], NULL, load_thread,
					    &args[i]),
			     0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(args[i].answered, 100);
		for (size_t j = 0; j < 100; j++)
			cr_expect_eq(args[i].statuses[j], 200,
				     "server %d request %zu", i, j);
	}
	cr_expect_eq(atomic_load(&calls), 1, "origin called %u times",
		     atomic_load(&calls));
}

struct slow_get {
	int server;
	long status;
};

static void *slow_get_thread(void *p)
{
	struct slow_get *g = p;

	g->status = get(g->server, "/p/slow", NULL, 0, NULL, 0);
	return NULL;
}

/* The fleet lock lives only cache.redis.lock_ttl (3 s by default) unless
 * its holder extends it: a fill slower than that must keep its lock, or
 * the other server would stop waiting and fetch too. */
Test(fleet, a_fill_slower_than_lock_ttl_keeps_its_lock_and_the_origin_once)
{
	struct slow_get g[2] = {{.server = 0}, {.server = 1}};
	pthread_t threads[2];

	for (int i = 0; i < 2; i++)
		start_server(i, redis_url);
	atomic_store(&handler_delay_ms, 4500);
	cr_assert_eq(pthread_create(&threads[0], NULL, slow_get_thread, &g[0]),
		     0);
	sleep_ms(300); /* server 0 leads and holds the lock */
	cr_assert_eq(pthread_create(&threads[1], NULL, slow_get_thread, &g[1]),
		     0);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	cr_expect_eq(g[0].status, 200);
	cr_expect_eq(g[1].status, 200);
	cr_expect_eq(atomic_load(&calls), 1, "origin called %u times",
		     atomic_load(&calls));
}

struct steady {
	int server;
	atomic_bool stop;
	unsigned ok, failed, n;
	long last_bad;
};

/* GETs in a loop over 50 paths (hits and misses) until told to stop. */
static void *steady_thread(void *p)
{
	struct steady *s = p;
	char path[32];

	while (!atomic_load(&s->stop)) {
		long status;

		snprintf(path, sizeof(path), "/p/load/%u", s->n++ % 50);
		status = get(s->server, path, NULL, 0, NULL, 0);
		if (status == 200) {
			s->ok++;
		} else {
			s->failed++;
			s->last_bad = status;
		}
	}
	return NULL;
}

Test(fleet, redis_killed_under_load_fails_no_request_and_comes_back)
{
	struct steady s = {.server = 0};
	pthread_t t;

	start_server(0, redis_url);
	cr_assert_eq(pthread_create(&t, NULL, steady_thread, &s), 0);
	sleep_ms(2000);
	cr_assert_eq(redis_server_kill(redis), 0);
	sleep_ms(3000);
	cr_assert_eq(redis_server_restart(redis), 0);
	sleep_ms(5000);
	atomic_store(&s.stop, true);
	pthread_join(t, NULL);
	cr_expect_eq(s.failed, 0, "%u of %u failed (last %ld)", s.failed,
		     s.ok + s.failed, s.last_bad);
	cr_expect_gt(s.ok, 100);
	/* The tier is used again: a new entry reaches the new Redis. */
	warm(0, "/p/after");
}

Test(fleet, a_wrong_password_leaves_the_tier_off_and_the_server_up)
{
	char url[256], cs[128], out[64];

	redis_server_stop(&redis);
	redis = redis_server_start("secret");
	cr_assert_not_null(redis);
	snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%u",
		 redis_server_port(redis));
	start_server(0, url);
	cr_assert_eq(get(0, "/p/pw", NULL, 0, cs, sizeof(cs)), 200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	cr_assert_eq(get(0, "/p/pw", NULL, 0, cs, sizeof(cs)), 200);
	cr_expect(strstr(cs, "detail=memory") != NULL, "%s", cs);
	sleep_ms(200);
	cr_assert_eq(rcmd(out, sizeof(out), 1, (const char *[]){"DBSIZE"}),
		     ':');
	cr_expect_str_eq(out, "0", "nothing written with a wrong password");
}

/* GET with one request header on server i; the Cache-Status. */
static void get_with(int i, const char *path, const char *header, char *cs,
		     size_t cs_len)
{
	char url[256];
	struct client_response r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s",
		 strata_server_port(srv[i]), path);
	cr_assert_eq(client_request("GET", url,
				    (const char *[]){header, NULL}, NULL, 0,
				    &r),
		     200);
	snprintf(cs, cs_len, "%s", client_header(&r, "Cache-Status") ?: "");
	client_response_free(&r);
}

Test(fleet, variants_are_shared_through_redis_too)
{
	char cs[160];

	start_server(0, redis_url);
	start_server(1, redis_url);
	get_with(0, "/p/vary", "Accept-Language: de", cs, sizeof(cs));
	cr_expect(strstr(cs, "stored") != NULL, "%s", cs);
	usleep((useconds_t)proc_scaled_ms(300) * 1000); /* written behind */
	get_with(1, "/p/vary", "Accept-Language: de", cs, sizeof(cs));
	cr_expect(strstr(cs, "detail=redis") != NULL, "B: %s", cs);
	get_with(1, "/p/vary", "Accept-Language: fr", cs, sizeof(cs));
	cr_expect(strstr(cs, "fwd=vary-miss") != NULL, "B fr: %s", cs);
	cr_expect_eq(atomic_load(&calls), 2, "one fetch per variant");
}
