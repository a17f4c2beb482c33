/*
 * Unit tests for src/tier/redis.c: tier 3, the Redis cache.
 *
 * URL parsing needs nothing; every other test starts its own real
 * redis-server on a free loopback port (tests/helpers/redis_server.h) and
 * inspects or tampers with what is stored through the helper's plain RESP
 * client.  Waits are bounded and scaled by $STRATA_TEST_TIMEOUT_MULT.
 */
#include "config.h"

#include "tier/redis.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "core/log.h"
#include "../helpers/proc.h"
#include "../helpers/redis_server.h"
#include "strata/strata.h"

#define HOUR_MS 3600000

static struct redis_server *server;
static struct strata_redis *tier;

static void setup(void)
{
	/* Quiet: the tier's down/up lines are expected here. */
	strata_log_set_level(STRATA_LOG_ERROR);
}

static void teardown(void)
{
	strata_redis_close(&tier);
	redis_server_stop(&server);
}

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Start a server (password may be NULL) and open the tier on it. */
static void start(const char *password, const char *url_password)
{
	char url[256];
	struct strata_redis_config cfg = {.url = url, .prefix = "t",
					  .timeout_ms = 1000};

	server = redis_server_start(password);
	cr_assert_not_null(server, "cannot start redis-server");
	if (url_password != NULL)
		snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%u",
			 url_password, redis_server_port(server));
	else
		redis_server_url(server, true, NULL, url, sizeof(url));
	cr_assert_eq(strata_redis_open(&cfg, &tier), 0);
}

static struct strata_entry *make_entry(const char *text, int64_t now,
				       int64_t fresh_ms, int64_t keep_ms,
				       const char *const *tags, size_t n_tags)
{
	struct strata_entry_params p = {
		.key_text = text,
		.key_len = strlen(text),
		.route = "r",
		.status = 200,
		.created = now,
		.expires = now + fresh_ms,
		.keep_until = keep_ms != 0 ? now + keep_ms : 0,
		.tags = tags,
		.n_tags = n_tags,
		.body = "hello redis",
		.body_len = 11,
	};
	struct strata_entry *e = NULL;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	return e;
}

static void entry_name(const struct strata_key *key, char *buf, size_t len)
{
	char hex[STRATA_KEY_HEX_LEN + 1];

	strata_key_hex(key, hex);
	snprintf(buf, len, "t:e:%s", hex);
}

/* --- URLs ------------------------------------------------------------------- */

Test(redis, url_tcp_forms)
{
	struct strata_redis_url u;

	cr_assert_eq(strata_redis_url_parse("redis://cache.local", &u, NULL,
					    0), 0);
	cr_assert_str_eq(u.host, "cache.local");
	cr_assert_eq(u.port, 6379);
	cr_assert_eq(u.db, 0);
	cr_assert_str_eq(u.password, "");
	cr_assert(!u.is_unix);

	cr_assert_eq(strata_redis_url_parse("redis://:s3cret@10.0.0.2:6380/3",
					    &u, NULL, 0), 0);
	cr_assert_str_eq(u.host, "10.0.0.2");
	cr_assert_eq(u.port, 6380);
	cr_assert_eq(u.db, 3);
	cr_assert_str_eq(u.password, "s3cret");
	cr_assert_str_eq(u.user, "");

	cr_assert_eq(strata_redis_url_parse("redis://app:pw@[::1]:7000/", &u,
					    NULL, 0), 0);
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(u.port, 7000);
	cr_assert_str_eq(u.user, "app");
	cr_assert_str_eq(u.password, "pw");
}

Test(redis, url_unix_forms)
{
	struct strata_redis_url u;

	cr_assert_eq(strata_redis_url_parse("unix:///run/redis.sock", &u,
					    NULL, 0), 0);
	cr_assert(u.is_unix);
	cr_assert_str_eq(u.path, "/run/redis.sock");
	cr_assert_eq(u.db, 0);
	cr_assert_eq(strata_redis_url_parse("unix:///run/r.sock?db=5", &u,
					    NULL, 0), 0);
	cr_assert_str_eq(u.path, "/run/r.sock");
	cr_assert_eq(u.db, 5);
}

Test(redis, url_errors_name_url_and_fix)
{
	static const char *const bad[] = {
		"", "http://x", "redis://", "redis://h:0", "redis://h:99999",
		"redis://h:6379/x", "redis://h:port", "unix://rel.sock",
		"unix:///s.sock?database=1", "redis://[::1", "rediss://h",
		"redis://secret@h",
	};
	struct strata_redis_url u;
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(strata_redis_url_parse(bad[i], &u, err,
						    sizeof(err)),
			     STRATA_ECONFIG, "accepted \"%s\"", bad[i]);
		cr_assert(strstr(err, "redis URL \"") != NULL, "%s", err);
		cr_assert(strstr(err, "use redis://") != NULL, "%s", err);
	}
	/* The password never appears in a message. */
	cr_assert_eq(strata_redis_url_parse("redis://:hunter2@h:x", &u, err,
					    sizeof(err)), STRATA_ECONFIG);
	cr_assert(strstr(err, "hunter2") == NULL, "%s", err);
	cr_assert(strstr(err, "redis://:***@h:x") != NULL, "%s", err);
	/* Nor in malformed shapes: no colon, '@' or '/' in the password,
	 * no scheme at all. */
	{
		static const char *const leaky[] = {
			"redis://hunter2@h:x", "redis://:hun@ter2@h:x",
			"redis://:hun/ter2@h:0", "u:hunter2@h",
		};

		for (size_t i = 0; i < 4; i++) {
			cr_assert_eq(strata_redis_url_parse(leaky[i], &u, err,
							    sizeof(err)),
				     STRATA_ECONFIG, "accepted %s", leaky[i]);
			cr_assert(strstr(err, "hunter2") == NULL &&
					  strstr(err, "ter2") == NULL,
				  "%s", err);
		}
	}
}

/* --- against a real redis-server ------------------------------------------------ */

Test(redis, set_then_get_hits_with_same_bytes_and_ttl)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e = make_entry("GET /a", now, HOUR_MS,
					    2 * HOUR_MS, NULL, 0);
	struct strata_entry *got = NULL;
	struct strata_redis_stats st;
	char name[96], reply[64];
	char *enc, *enc2;
	size_t len, len2;

	start(NULL, NULL);
	cr_assert_eq(strata_redis_set(tier, e, now), 0);
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /a", 6, now, &got),
		     0);
	cr_assert_not_null(got);
	cr_assert_eq(strata_entry_encode(e, &enc, &len), 0);
	cr_assert_eq(strata_entry_encode(got, &enc2, &len2), 0);
	cr_assert_eq(len, len2);
	cr_assert_eq(memcmp(enc, enc2, len), 0);
	free(enc);
	free(enc2);

	/* The key's PTTL is the entry's remaining storage time (keep_until). */
	entry_name(&e->key, name, sizeof(name));
	cr_assert_eq(redis_server_cmd(server, 2,
				      (const char *[]){"PTTL", name}, NULL,
				      reply, sizeof(reply), NULL), ':');
	long long pttl = atoll(reply);
	long long want = e->keep_until - strata_wall_ms();
	cr_assert(pttl <= want + 1000 && pttl >= want - 1000,
		  "PTTL %lld, want about %lld", pttl, want);

	strata_redis_stats(tier, &st);
	cr_assert_eq(st.hits, 1);
	cr_assert_eq(st.stores, 1);
	cr_assert_eq(st.state, STRATA_REDIS_UP);
	strata_entry_release(&got);
	strata_entry_release(&e);
}

Test(redis, miss_and_other_key_text)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e = make_entry("GET /a", now, HOUR_MS, 0, NULL,
					    0);
	struct strata_entry *got = NULL;
	struct strata_key other;
	struct strata_redis_stats st;

	start(NULL, NULL);
	strata_key_hash("GET /b", 6, &other);
	cr_assert_eq(strata_redis_get(tier, &other, "GET /b", 6, now, &got),
		     STRATA_EMISS);
	cr_assert_null(got);
	cr_assert_eq(strata_redis_set(tier, e, now), 0);
	/* Same hash asked with another text (a collision): not served. */
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /c", 6, now, &got),
		     STRATA_EMISS);
	cr_assert_null(got);
	strata_redis_stats(tier, &st);
	cr_assert_eq(st.misses, 2);
	cr_assert_eq(st.hits, 0);
	strata_entry_release(&e);
}

Test(redis, expired_entry_never_returned)
{
	int64_t now = strata_wall_ms();
	/* Fresh for 1 s, kept for an hour: stays in Redis, must not hit. */
	struct strata_entry *e = make_entry("GET /old", now, 1000, HOUR_MS,
					    NULL, 0);
	struct strata_entry *gone = make_entry("GET /gone", now - 10000,
					       1000, 2000, NULL, 0);
	struct strata_entry *got = NULL;
	char name[96], reply[64];
	size_t len;

	start(NULL, NULL);
	cr_assert_eq(strata_redis_set(tier, e, now), 0);
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /old", 8,
				      now + 1000, &got), STRATA_EMISS);
	cr_assert_null(got);
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /old", 8,
				      now + 999, &got), 0);
	strata_entry_release(&got);

	/* Nothing left to keep: not written at all. */
	cr_assert_eq(strata_redis_set(tier, gone, now), 0);
	entry_name(&gone->key, name, sizeof(name));
	cr_assert_eq(redis_server_cmd(server, 2,
				      (const char *[]){"EXISTS", name}, NULL,
				      reply, sizeof(reply), &len), ':');
	cr_assert_str_eq(reply, "0");
	strata_entry_release(&gone);
	strata_entry_release(&e);
}

Test(redis, del_removes)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e = make_entry("GET /d", now, HOUR_MS, 0, NULL,
					    0);
	struct strata_entry *got = NULL;

	start(NULL, NULL);
	cr_assert_eq(strata_redis_set(tier, e, now), 0);
	cr_assert_eq(strata_redis_del(tier, &e->key), 0);
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /d", 6, now, &got),
		     STRATA_EMISS);
	/* Deleting what is not there is fine. */
	cr_assert_eq(strata_redis_del(tier, &e->key), 0);
	cr_assert_eq(strata_redis_ping(tier), 0);
	strata_entry_release(&e);
}

Test(redis, corrupt_value_is_a_counted_miss)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e = make_entry("GET /x", now, HOUR_MS, 0, NULL,
					    0);
	struct strata_entry *got = NULL;
	struct strata_redis_stats st;
	char name[96], reply[64];
	char *enc;
	size_t len;

	start(NULL, NULL);
	entry_name(&e->key, name, sizeof(name));
	cr_assert_eq(redis_server_cmd(server, 3,
				      (const char *[]){"SET", name,
						       "not an entry"},
				      NULL, reply, sizeof(reply), NULL), '+');
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /x", 6, now, &got),
		     STRATA_EMISS);
	cr_assert_null(got);

	/* A real encoding with one flipped byte fails its checksum. */
	cr_assert_eq(strata_entry_encode(e, &enc, &len), 0);
	enc[len - 1] ^= 0x55;
	cr_assert_eq(redis_server_cmd(server, 3,
				      (const char *[]){"SET", name, enc},
				      (const size_t[]){3, strlen(name), len},
				      reply, sizeof(reply), NULL), '+');
	free(enc);
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /x", 6, now, &got),
		     STRATA_EMISS);
	cr_assert_null(got);

	/* A value of the wrong type is an error, still a miss. */
	cr_assert_eq(redis_server_cmd(server, 2, (const char *[]){"DEL", name},
				      NULL, reply, sizeof(reply), NULL), ':');
	cr_assert_eq(redis_server_cmd(server, 3,
				      (const char *[]){"SADD", name, "m"},
				      NULL, reply, sizeof(reply), NULL), ':');
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /x", 6, now, &got),
		     STRATA_EMISS);

	strata_redis_stats(tier, &st);
	cr_assert_eq(st.corrupt, 2);
	cr_assert_eq(st.misses, 3);
	cr_assert_eq(st.errors, 1);
	cr_assert_eq(st.state, STRATA_REDIS_UP);
	strata_entry_release(&e);
}

Test(redis, tags_are_sadded_with_expiry_no_shorter)
{
	static const char *const tags[] = {"user:1", "list"};
	int64_t now = strata_wall_ms();
	struct strata_entry *a = make_entry("GET /a", now, HOUR_MS,
					    2 * HOUR_MS, tags, 2);
	struct strata_entry *b = make_entry("GET /b", now, 60000, 0, tags + 1,
					    1);
	char hex_a[STRATA_KEY_HEX_LEN + 1], hex_b[STRATA_KEY_HEX_LEN + 1];
	char reply[256];

	start(NULL, NULL);
	strata_key_hex(&a->key, hex_a);
	strata_key_hex(&b->key, hex_b);
	cr_assert_eq(strata_redis_set(tier, a, now), 0);
	/* b lives shorter: it must not shorten the shared set's expiry. */
	cr_assert_eq(strata_redis_set(tier, b, now), 0);

	cr_assert_eq(redis_server_cmd(server, 2,
				      (const char *[]){"SMEMBERS", "t:t:user:1"},
				      NULL, reply, sizeof(reply), NULL), '*');
	cr_assert_str_eq(reply, hex_a);
	cr_assert_eq(redis_server_cmd(server, 3,
				      (const char *[]){"SISMEMBER", "t:t:list",
						       hex_a},
				      NULL, reply, sizeof(reply), NULL), ':');
	cr_assert_str_eq(reply, "1");
	cr_assert_eq(redis_server_cmd(server, 3,
				      (const char *[]){"SISMEMBER", "t:t:list",
						       hex_b},
				      NULL, reply, sizeof(reply), NULL), ':');
	cr_assert_str_eq(reply, "1");
	cr_assert_eq(redis_server_cmd(server, 2,
				      (const char *[]){"PTTL", "t:t:list"},
				      NULL, reply, sizeof(reply), NULL), ':');
	cr_assert(atoll(reply) > 2 * HOUR_MS - 5000, "PTTL %s", reply);
	strata_entry_release(&b);
	strata_entry_release(&a);
}

Test(redis, wrong_password_is_down_not_a_crash)
{
	struct strata_redis_stats st;
	struct strata_key key;
	struct strata_entry *got = NULL;

	start("right", "wrong");
	strata_redis_stats(tier, &st);
	cr_assert_eq(st.state, STRATA_REDIS_DOWN);
	cr_assert_geq(st.errors, 1);
	strata_key_hash("GET /a", 6, &key);
	cr_assert_eq(strata_redis_get(tier, &key, "GET /a", 6,
				      strata_wall_ms(), &got),
		     STRATA_EUNAVAIL);
	cr_assert_eq(strata_redis_ping(tier), STRATA_EUNAVAIL);
	cr_assert_null(got);
}

Test(redis, wrong_password_message_names_fix)
{
	/* Same as above but with the log captured: one clear line. */
	char url[256];
	struct strata_redis_config cfg = {.url = url, .timeout_ms = 1000};
	char path[] = "/tmp/strata-redis-log-XXXXXX";
	char text[4096] = "";
	int fd, saved;
	ssize_t n;

	server = redis_server_start("right");
	cr_assert_not_null(server);
	snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%u",
		 redis_server_port(server));
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	saved = dup(2);
	dup2(fd, 2);
	strata_log_set_level(STRATA_LOG_INFO);
	cr_assert_eq(strata_redis_open(&cfg, &tier), 0);
	for (int i = 0; i < 20; i++)
		(void)strata_redis_ping(tier);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	unlink(path);
	cr_assert_gt(n, 0);
	text[n] = '\0';
	cr_assert(strstr(text, "AUTH refused") != NULL, "%s", text);
	cr_assert(strstr(text, "check the password") != NULL, "%s", text);
	cr_assert(strstr(text, "wrong") == NULL || strstr(text, ":***@"),
		  "%s", text);
	cr_assert(strstr(text, ":wrong@") == NULL, "password logged: %s",
		  text);
	/* Logged once, not per call. */
	const char *down = strstr(text, ": down,");
	cr_assert_not_null(down, "%s", text);
	cr_assert_null(strstr(down + 1, ": down,"), "%s", text);
}

Test(redis, killed_fails_fast_then_reconnects_after_restart)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *e = make_entry("GET /k", now, HOUR_MS, 0, NULL,
					    0);
	struct strata_entry *got = NULL;
	struct strata_redis_stats st;
	uint64_t t0, deadline;
	int rc;

	start(NULL, NULL);
	cr_assert_eq(strata_redis_ping(tier), 0);
	cr_assert_eq(redis_server_kill(server), 0);

	/* The first call finds the connection dead and marks the tier down;
	 * the ones after fail at once. */
	cr_assert_eq(strata_redis_set(tier, e, now), STRATA_EUNAVAIL);
	strata_redis_stats(tier, &st);
	cr_assert_eq(st.state, STRATA_REDIS_DOWN);
	t0 = strata_now_ms();
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(strata_redis_get(tier, &e->key, "GET /k", 6, now,
					      &got), STRATA_EUNAVAIL);
	cr_assert_lt(strata_now_ms() - t0, 100, "not failing fast");
	strata_redis_stats(tier, &st);
	cr_assert_geq(st.fast_fails, 900);

	cr_assert_eq(redis_server_restart(server), 0);
	deadline = strata_now_ms() + (uint64_t)proc_scaled_ms(10000);
	while ((rc = strata_redis_ping(tier)) != 0 &&
	       strata_now_ms() < deadline)
		sleep_ms(20);
	cr_assert_eq(rc, 0, "no reconnect after restart");
	strata_redis_stats(tier, &st);
	cr_assert_eq(st.state, STRATA_REDIS_UP);
	cr_assert_geq(st.reconnects, 1);

	/* Redis restarted empty: a miss, then a working store and hit. */
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /k", 6, now, &got),
		     STRATA_EMISS);
	cr_assert_eq(strata_redis_set(tier, e, now), 0);
	cr_assert_eq(strata_redis_get(tier, &e->key, "GET /k", 6, now, &got),
		     0);
	strata_entry_release(&got);
	strata_entry_release(&e);
}

Test(redis, unreachable_at_open_starts_down)
{
	char url[64];
	struct strata_redis_config cfg = {.url = url, .timeout_ms = 200};
	struct strata_redis_stats st;

	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", proc_free_port());
	cr_assert_eq(strata_redis_open(&cfg, &tier), 0);
	strata_redis_stats(tier, &st);
	cr_assert_eq(st.state, STRATA_REDIS_DOWN);
	cr_assert_eq(strata_redis_ping(tier), STRATA_EUNAVAIL);
}

Test(redis, bad_url_fails_open)
{
	struct strata_redis_config cfg = {.url = "redis://h:x"};

	cr_assert_eq(strata_redis_open(&cfg, &tier), STRATA_ECONFIG);
	cr_assert_null(tier);
}

Test(redis, paused_server_times_out_and_goes_down)
{
	struct strata_redis_stats st;
	uint64_t t0, took;

	start(NULL, NULL); /* timeout 1000 ms */
	cr_assert_eq(strata_redis_ping(tier), 0);
	cr_assert_eq(redis_server_pause(server), 0);
	t0 = strata_now_ms();
	cr_assert_eq(strata_redis_ping(tier), STRATA_EUNAVAIL);
	took = strata_now_ms() - t0;
	cr_assert(took >= 900 && took < 3000, "took %llu ms",
		  (unsigned long long)took);
	strata_redis_stats(tier, &st);
	cr_assert_eq(st.state, STRATA_REDIS_DOWN);
	cr_assert_eq(redis_server_resume(server), 0);
}

/* --- batches, purges and the purge stream ---------------------------------- */

Test(redis, a_batch_runs_many_operations_in_one_round_trip)
{
	int64_t now = strata_wall_ms();
	struct strata_entry *a = make_entry("GET /b1", now, HOUR_MS, 0, NULL,
					    0);
	struct strata_key miss;
	struct strata_redis_op ops[5];

	start(NULL, NULL);
	strata_key_hash("GET /none", 9, &miss);
	ops[0] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_SET,
					  .entry = a};
	ops[1] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_GET,
					  .key = &a->key, .key_text = "GET /b1",
					  .key_len = 7, .now = now};
	ops[2] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_LOCK,
					  .key = &miss, .token = "me",
					  .ttl_ms = 10000};
	ops[3] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_LOCK,
					  .key = &miss, .token = "you",
					  .ttl_ms = 10000};
	ops[4] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_POLL,
					  .key = &miss, .key_text = "GET /none",
					  .key_len = 9, .now = now};
	cr_assert_eq(strata_redis_batch(tier, ops, 5), 0);
	cr_expect_eq(ops[0].rc, 0);
	cr_expect_eq(ops[1].rc, 0, "the GET sees the SET before it");
	cr_assert_not_null(ops[1].found);
	cr_expect_eq(ops[1].found->body_len, 11);
	cr_expect_eq(ops[2].rc, 0, "first lock taken");
	cr_expect_eq(ops[3].rc, -EBUSY, "second refused");
	cr_expect_eq(ops[4].rc, -EBUSY, "no entry, lock held");
	strata_entry_release(&ops[1].found);

	/* Only the holder's token unlocks. */
	ops[0] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_UNLOCK,
					  .key = &miss, .token = "you"};
	ops[1] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_POLL,
					  .key = &miss, .key_text = "GET /none",
					  .key_len = 9, .now = now};
	ops[2] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_UNLOCK,
					  .key = &miss, .token = "me"};
	ops[3] = ops[1];
	cr_assert_eq(strata_redis_batch(tier, ops, 4), 0);
	cr_expect_eq(ops[1].rc, -EBUSY, "a stranger's unlock is ignored");
	cr_expect_eq(ops[3].rc, STRATA_EMISS, "lock gone, no entry");
	strata_entry_release(&a);
}

/* The PTTL of the lock on `key` (-2: no such key). */
static long long lock_pttl(const struct strata_key *key)
{
	char hex[STRATA_KEY_HEX_LEN + 1], name[64], reply[64];

	strata_key_hex(key, hex);
	snprintf(name, sizeof(name), "t:l:%s", hex);
	cr_assert_eq(redis_server_cmd(server, 2,
				      (const char *[]){"PTTL", name}, NULL,
				      reply, sizeof(reply), NULL),
		     ':');
	return atoll(reply);
}

Test(redis, extend_pushes_back_only_a_lock_that_is_still_ours)
{
	struct strata_key key;
	struct strata_redis_op ops[3];

	start(NULL, NULL);
	strata_key_hash("GET /held", 9, &key);
	ops[0] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_LOCK,
					  .key = &key, .token = "me",
					  .ttl_ms = 1000};
	/* Ours: extended, in the same round trip as the LOCK. */
	ops[1] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_EXTEND,
					  .key = &key, .token = "me",
					  .ttl_ms = 60000};
	/* Another instance's extension leaves it alone: a plain PEXPIRE
	 * would cut it to 5 ms. */
	ops[2] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_EXTEND,
					  .key = &key, .token = "you",
					  .ttl_ms = 5};
	cr_assert_eq(strata_redis_batch(tier, ops, 3), 0);
	cr_expect_eq(ops[0].rc, 0);
	cr_expect_eq(ops[1].rc, 0, "our lock is extended");
	cr_expect_eq(ops[2].rc, -EBUSY, "another's extension is refused");
	cr_expect_gt(lock_pttl(&key), 50000, "the 60 s extension stands");

	/* Gone: nothing to extend, and nothing is created. */
	ops[0] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_UNLOCK,
					  .key = &key, .token = "me"};
	ops[1] = (struct strata_redis_op){.kind = STRATA_REDIS_OP_EXTEND,
					  .key = &key, .token = "me",
					  .ttl_ms = 60000};
	cr_assert_eq(strata_redis_batch(tier, ops, 2), 0);
	cr_expect_eq(ops[1].rc, STRATA_EMISS);
	cr_expect_eq(lock_pttl(&key), -2);
}

/* Store the entries for `paths` with tags "t-<i % 2>". */
static void store_paths(const char *const *paths, size_t n)
{
	int64_t now = strata_wall_ms();
	char text[64];

	for (size_t i = 0; i < n; i++) {
		const char *tag = i % 2 ? "odd" : "even";
		struct strata_entry *e;

		snprintf(text, sizeof(text), "GET %s", paths[i]);
		e = make_entry(text, now, HOUR_MS, 0, &tag, 1);
		cr_assert_eq(strata_redis_set(tier, e, now), 0);
		strata_entry_release(&e);
	}
}

/* Whether GET <path> is still in Redis. */
static bool present(const char *path)
{
	struct strata_entry *e = NULL;
	struct strata_key key;
	char text[64];
	int rc;

	snprintf(text, sizeof(text), "GET %s", path);
	strata_key_hash(text, strlen(text), &key);
	rc = strata_redis_get(tier, &key, text, strlen(text),
			      strata_wall_ms(), &e);
	strata_entry_release(&e);
	return rc == 0;
}

static const char *const purge_paths[] = {"/a/1", "/a/2?x", "/ab", "/b/1"};

static uint64_t purge(const char *kind, const char *arg, char *id)
{
	struct strata_purge p;
	uint64_t removed = 0;

	cr_assert_eq(strata_purge_parse(kind, arg, &p), 0);
	cr_assert_eq(strata_redis_purge(tier, &p, 1000, "test", id, 48,
					&removed),
		     0);
	return removed;
}

Test(redis, purges_by_key_prefix_tag_and_all)
{
	struct strata_key key;
	char hex[STRATA_KEY_HEX_LEN + 1], id[48];

	start(NULL, NULL);
	store_paths(purge_paths, 4);
	cr_expect_eq(purge("prefix", "/a/", id), 2);
	cr_expect(!present("/a/1") && !present("/a/2?x"));
	cr_expect(present("/ab") && present("/b/1"), "only under /a/");
	cr_expect_neq(id[0], '\0', "the stream record's id");

	/* /ab is even-indexed ("even"), /b/1 odd. */
	cr_expect_eq(purge("tag", "odd", id), 1);
	cr_expect(present("/ab") && !present("/b/1"));

	strata_key_hash("GET /ab", 7, &key);
	strata_key_hex(&key, hex);
	cr_expect_eq(purge("key", hex, id), 1);
	cr_expect(!present("/ab"));

	/* A path takes its query variants, not longer paths. */
	store_paths(purge_paths, 4);
	cr_expect_eq(purge("path", "/a/2", id), 1);
	cr_expect(!present("/a/2?x") && present("/a/1"));
	store_paths((const char *[]){"/a", "/a?q", "/ab"}, 3);
	cr_expect_eq(purge("path", "/a", id), 2);
	cr_expect(present("/ab"));

	store_paths(purge_paths, 4);
	cr_expect_eq(purge("all", "", id), 4);
	for (size_t i = 0; i < 4; i++)
		cr_expect(!present(purge_paths[i]));
}

struct seen {
	int n;
	char kinds[8][16];
	char args[8][64];
	char last_id[48];
};

static void seen_cb(void *arg, const char *id, const struct strata_purge *p,
		    const char *origin)
{
	struct seen *s = arg;

	cr_expect_str_eq(origin, "test");
	if (s->n < 8 && p != NULL) {
		snprintf(s->kinds[s->n], 16, "%s",
			 strata_purge_kind_name(p->kind));
		snprintf(s->args[s->n], 64, "%s", p->arg);
	}
	s->n++;
	snprintf(s->last_id, sizeof(s->last_id), "%s", id);
}

Test(redis, the_stream_replays_purges_in_order_after_an_id)
{
	struct strata_redis_stream_info info;
	struct seen s = {0};
	char id1[48], id2[48], epoch[48], again[48];

	start(NULL, NULL);
	cr_assert_eq(strata_redis_stream_info(tier, &info), 0);
	cr_expect(!info.exists);
	purge("prefix", "/x/", id1);
	purge("tag", "t1", id2);
	cr_assert_eq(strata_redis_stream_read(tier, "0", 0, 100, seen_cb, &s),
		     2);
	cr_expect_str_eq(s.kinds[0], "prefix");
	cr_expect_str_eq(s.args[0], "/x/");
	cr_expect_str_eq(s.kinds[1], "tag");
	cr_expect_str_eq(s.last_id, id2);
	/* After id1 only the second. */
	memset(&s, 0, sizeof(s));
	cr_assert_eq(strata_redis_stream_read(tier, id1, 0, 100, seen_cb, &s),
		     1);
	cr_expect_str_eq(s.args[0], "t1");
	/* Nothing after the last: a blocking read times out empty. */
	cr_expect_eq(strata_redis_stream_read(tier, id2, 0, 100, seen_cb, &s),
		     0);
	cr_assert_eq(strata_redis_stream_info(tier, &info), 0);
	cr_expect(info.exists && info.has_first);

	/* The epoch is set once and then read back, whatever is offered. */
	cr_assert_eq(strata_redis_epoch(tier, "first", epoch, sizeof(epoch)),
		     0);
	cr_expect_str_eq(epoch, "first");
	cr_assert_eq(strata_redis_epoch(tier, "second", again, sizeof(again)),
		     0);
	cr_expect_str_eq(again, "first");
}

Test(redis, stream_ids_compare_numerically)
{
	struct strata_redis_stream_id a, b;

	cr_assert_eq(strata_redis_stream_id_parse("9-5", &a), 0);
	cr_assert_eq(strata_redis_stream_id_parse("10-0", &b), 0);
	cr_expect_lt(strata_redis_stream_id_cmp(&a, &b), 0);
	cr_assert_eq(strata_redis_stream_id_parse("10", &a), 0);
	cr_expect_eq(strata_redis_stream_id_cmp(&a, &b), 0);
	cr_expect_eq(strata_redis_stream_id_parse("x-1", &a), -EINVAL);
	cr_expect_eq(strata_redis_stream_id_parse("1-", &a), -EINVAL);
}
