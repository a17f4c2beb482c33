/*
 * stress_mem.c: tier 1 under concurrent readers and writers.
 *
 * A plain C program (no Criterion) so that it also runs under
 * ThreadSanitizer.  Reader threads look keys up, verify every hit and
 * hold a few references across later lookups; writer threads store,
 * replace, remove and now and then clear, on a budget of a few dozen
 * entries for a key space ten times that, so nearly every store evicts.
 * A churn thread keeps starting short-lived threads that look up a few
 * keys and exit, which exercises the module's lazy RCU registration and
 * unregistration.
 *
 * Checked:
 *  - a hit has the key text that was asked for, and a body whose length
 *    and every byte derive from that key and the version in its first
 *    bytes (a wrong or freed entry shows as a bad byte, or under ASan and
 *    TSan as a report);
 *  - an entry a reader holds stays readable and unchanged until released,
 *    whatever the writers evicted in between;
 *  - a key stored already stale is never a hit;
 *  - the byte budget is never exceeded, not even mid-store (the tier
 *    evicts before it inserts), and at quiescence the counters add up;
 *  - after strata_mem_free nothing leaks (under ASan).
 *
 * Environment: STRESS_SECONDS (default 2, fractions allowed),
 * STRESS_READERS (default 4), STRESS_WRITERS (default 2).  A watchdog
 * alarm kills a run that hangs.  Prints "stress_mem: N passed, 0 failed";
 * exits non-zero with a message on the first failure of each check.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "strata/strata.h"
#include "tier/mem.h"

#define NOW 1700000000000LL /* injected wall-clock ms */
#define KEYS 640u
#define BUDGET_ENTRIES 48u /* of the average charge */
#define HOLD 4             /* references a reader keeps across lookups */
#define BODY_MIN 16u
#define BODY_SPREAD 240u
#define MAX_THREADS 64

enum check {
	CHECK_HIT_KEY,
	CHECK_HIT_BODY,
	CHECK_HELD_BODY,
	CHECK_STALE,
	CHECK_BUDGET,
	CHECK_COUNTERS,
	CHECK_API,
	N_CHECKS,
};

#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif

#ifdef STRESS_TSAN
/*
 * liburcu is not instrumented, so ThreadSanitizer cannot see the
 * orderings it makes between its own threads: rcu_barrier() callocs a
 * completion that the call_rcu thread frees, and TSan reports that pair
 * of interceptor calls as a race.  Ignore interceptors called from inside
 * liburcu only; every access made by Strata's code, including the RCU
 * callbacks liburcu runs, is still checked (mem.c annotates the grace
 * periods themselves).  TSan reads this hook at startup; TSAN_OPTIONS
 * still applies on top.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-memb.so\n"
	       "called_from_lib:liburcu-cds.so\n"
	       "called_from_lib:liburcu-common.so\n";
}
#endif

static const char *const check_name[N_CHECKS] = {
	[CHECK_HIT_KEY] = "a hit has the key text asked for",
	[CHECK_HIT_BODY] = "a hit's body derives from its key",
	[CHECK_HELD_BODY] = "a held entry stays readable until released",
	[CHECK_STALE] = "a stale key is never a hit",
	[CHECK_BUDGET] = "the budget is never exceeded",
	[CHECK_COUNTERS] = "counters add up at quiescence",
	[CHECK_API] = "calls return what the contract says",
};

/* Relaxed: failure counts are read after every thread is joined. */
static atomic_uint failures[N_CHECKS];
/* Relaxed load, release store by main; acquire load by workers so the
 * stop is seen promptly and orders nothing else. */
static atomic_bool stop;
static struct strata_mem *mem;
static uint64_t budget;

static void fail(enum check c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(enum check c, const char *fmt, ...)
{
	va_list ap;

	/* Print the first failure of each check only. */
	if (atomic_fetch_add_explicit(&failures[c], 1,
				      memory_order_relaxed) != 0)
		return;
	flockfile(stderr);
	fprintf(stderr, "stress_mem: FAIL %s: ", check_name[c]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void key_text_of(unsigned id, char text[32], size_t *len)
{
	*len = (size_t)snprintf(text, 32, "GET /stress/%06u\n", id);
}

/* Keys that are stored already stale (and past keep_until). */
static bool stale_id(unsigned id)
{
	return id % 7 == 3;
}

static size_t body_len_of(unsigned id, uint32_t version)
{
	return BODY_MIN + (id * 17u + version * 13u) % BODY_SPREAD;
}

static uint8_t body_byte(unsigned id, uint32_t version, size_t i)
{
	return (uint8_t)(id * 131u + version * 7u + i * 31u);
}

/* Body: the version (4 bytes, native order), then a pattern. */
static void body_fill(char *body, unsigned id, uint32_t version,
		      size_t len)
{
	memcpy(body, &version, sizeof(version));
	for (size_t i = sizeof(version); i < len; i++)
		body[i] = (char)body_byte(id, version, i);
}

/* 0 when `e` is exactly what key `id` should hold, else the first bad
 * byte offset + 1 (or a huge value for a bad length). */
static size_t body_check(const struct strata_entry *e, unsigned id)
{
	uint32_t version;

	if (e->body_len < sizeof(version))
		return SIZE_MAX;
	memcpy(&version, e->body, sizeof(version));
	if (e->body_len != body_len_of(id, version))
		return SIZE_MAX;
	for (size_t i = sizeof(version); i < e->body_len; i++)
		if ((uint8_t)e->body[i] != body_byte(id, version, i))
			return i + 1;
	return 0;
}

static struct strata_entry *make_entry(unsigned id, uint32_t version)
{
	char text[32], body[BODY_MIN + BODY_SPREAD];
	struct strata_headers headers = { 0 };
	struct strata_key key;
	struct strata_entry *e = NULL;
	size_t text_len, body_len = body_len_of(id, version);
	struct strata_entry_params p = { 0 };

	key_text_of(id, text, &text_len);
	strata_key_hash(text, text_len, &key);
	body_fill(body, id, version, body_len);
	p.key = &key;
	p.key_text = text;
	p.key_len = text_len;
	p.route = "stress";
	p.status = 200;
	p.created = NOW - 1000;
	p.expires = stale_id(id) ? NOW - 1 : NOW + 60000;
	p.keep_until = p.expires;
	p.headers = &headers;
	p.body = body;
	p.body_len = body_len;
	if (strata_entry_new(&p, &e) != 0) {
		fprintf(stderr, "stress_mem: strata_entry_new failed\n");
		exit(2);
	}
	return e;
}

static int lookup_id(unsigned id, struct strata_entry **out)
{
	char text[32];
	size_t len;
	struct strata_key key;

	key_text_of(id, text, &len);
	strata_key_hash(text, len, &key);
	return strata_mem_lookup(mem, &key, text, len, NOW, out);
}

/* Verify a hit for `id`; returns whether it looked right. */
static bool verify_hit(const struct strata_entry *e, unsigned id,
		       enum check body_check_kind)
{
	char text[32];
	size_t len, bad;

	key_text_of(id, text, &len);
	if (e->key_len != len || memcmp(e->key_text, text, len) != 0) {
		fail(CHECK_HIT_KEY, "asked for %.*s, got %.*s", (int)len - 1,
		     text, (int)e->key_len, e->key_text);
		return false;
	}
	if (stale_id(id))
		fail(CHECK_STALE, "key %u stored stale was a hit", id);
	bad = body_check(e, id);
	if (bad != 0) {
		fail(body_check_kind, "key %u: body wrong at %zu (len %zu)",
		     id, bad == SIZE_MAX ? (size_t)0 : bad - 1, e->body_len);
		return false;
	}
	return true;
}

struct worker {
	pthread_t thread;
	unsigned index;
	uint64_t seed;
	uint64_t lookups; /* own counts, read by main after join */
	uint64_t hits;
	uint64_t stores;
	uint64_t too_big;
};

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct strata_entry *held[HOLD] = { 0 };
	unsigned held_id[HOLD] = { 0 };
	uint64_t seed = 0x9e3779b97f4a7c15ull * (w->index + 1);
	unsigned slot = 0;

	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		/* Skew towards low ids so some keys are hot. */
		uint64_t r = rnd(&seed);
		unsigned id = (r & 1) ? (unsigned)(r >> 8) % (KEYS / 8)
				      : (unsigned)(r >> 8) % KEYS;
		struct strata_entry *e = NULL;
		int rc = lookup_id(id, &e);

		w->lookups++;
		if (rc == STRATA_EMISS) {
			if (e != NULL)
				fail(CHECK_API, "a miss left *out set");
			continue;
		}
		if (rc != 0 || e == NULL) {
			fail(CHECK_API, "lookup returned %d", rc);
			continue;
		}
		w->hits++;
		verify_hit(e, id, CHECK_HIT_BODY);
		/* Keep it for a while; check the oldest held one again
		 * before letting it go: it must not have changed. */
		if (held[slot] != NULL) {
			verify_hit(held[slot], held_id[slot], CHECK_HELD_BODY);
			strata_entry_release(&held[slot]);
		}
		held[slot] = e;
		held_id[slot] = id;
		slot = (slot + 1) % HOLD;
	}
	for (unsigned i = 0; i < HOLD; i++) {
		if (held[i] != NULL) {
			verify_hit(held[i], held_id[i], CHECK_HELD_BODY);
			strata_entry_release(&held[i]);
		}
	}
	return NULL;
}

static void check_budget(void)
{
	struct strata_mem_stats st;

	strata_mem_stats(mem, &st);
	if (st.bytes > budget)
		fail(CHECK_BUDGET, "bytes %" PRIu64 " > budget %" PRIu64,
		     st.bytes, budget);
}

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	uint64_t seed = 0xd1b54a32d192ed03ull * (w->index + 1);
	uint32_t version = w->index << 24;
	struct strata_entry *e;
	struct strata_key key;
	char text[32];
	size_t len;
	unsigned id;
	uint64_t r;
	int rc;

	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		r = rnd(&seed);
		id = (unsigned)(r >> 16) % KEYS;
		switch (r % 1000) {
		case 0: /* rarely: drop everything */
			strata_mem_clear(mem);
			break;
		default:
			if (r % 1000 < 150) {
				key_text_of(id, text, &len);
				strata_key_hash(text, len, &key);
				rc = strata_mem_remove(mem, &key);
				if (rc != 0 && rc != STRATA_EMISS)
					fail(CHECK_API, "remove: %d", rc);
				break;
			}
			e = make_entry(id, ++version);
			rc = strata_mem_store(mem, e);
			if (rc == 0)
				w->stores++;
			else if (rc == STRATA_ETOOBIG && e->charge > budget)
				w->too_big++;
			else
				fail(CHECK_API, "store: %d", rc);
			strata_entry_release(&e);
			break;
		}
		check_budget();
	}
	return NULL;
}

/* A thread the module did not create: a few lookups, then exit. */
static void *ephemeral_main(void *arg)
{
	struct worker *w = arg;
	struct strata_entry *e;

	for (int i = 0; i < 50; i++) {
		unsigned id = (unsigned)rnd(&w->seed) % KEYS;

		e = NULL;
		if (lookup_id(id, &e) == 0) {
			verify_hit(e, id, CHECK_HIT_BODY);
			strata_entry_release(&e);
			w->hits++;
		}
		w->lookups++;
	}
	return NULL;
}

static void *churn_main(void *arg)
{
	struct worker *w = arg;
	struct worker eph;
	uint64_t generation = 0;

	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		memset(&eph, 0, sizeof(eph));
		eph.seed = 0x94d049bb133111ebull ^ ++generation;
		if (pthread_create(&eph.thread, NULL, ephemeral_main, &eph)) {
			fprintf(stderr, "stress_mem: pthread_create failed\n");
			exit(2);
		}
		pthread_join(eph.thread, NULL); /* orders eph's counts */
		w->lookups += eph.lookups;
		w->hits += eph.hits;
	}
	return NULL;
}

static unsigned env_unsigned(const char *name, unsigned dflt, unsigned max)
{
	const char *v = getenv(name);
	unsigned long n;

	if (v == NULL || *v == '\0')
		return dflt;
	n = strtoul(v, NULL, 10);
	return n == 0 ? dflt : (n > max ? max : (unsigned)n);
}

int main(void)
{
	const char *secs_env = getenv("STRESS_SECONDS");
	double seconds = secs_env != NULL ? strtod(secs_env, NULL) : 2.0;
	unsigned readers = env_unsigned("STRESS_READERS", 4, MAX_THREADS);
	unsigned writers = env_unsigned("STRESS_WRITERS", 2, MAX_THREADS);
	struct worker *w;
	struct strata_mem_stats st;
	struct strata_entry *probe;
	uint64_t lookups = 0, hits = 0, stores = 0, too_big = 0;
	unsigned n = readers + writers + 1, passed = 0, failed = 0;
	struct timespec nap;
	size_t avg_charge;

	if (!(seconds > 0))
		seconds = 2.0;
	alarm((unsigned)(seconds * 20) + 60); /* watchdog: a hang fails */

	probe = make_entry(0, 0);
	avg_charge = probe->charge - probe->body_len +
		     BODY_MIN + BODY_SPREAD / 2;
	strata_entry_release(&probe);
	budget = (uint64_t)BUDGET_ENTRIES * avg_charge;
	if (strata_mem_new(budget, &mem) != 0) {
		fprintf(stderr, "stress_mem: strata_mem_new failed\n");
		return 2;
	}

	w = calloc(n, sizeof(*w));
	if (w == NULL)
		return 2;
	for (unsigned i = 0; i < n; i++) {
		void *(*fn)(void *) = i < readers ? reader_main
				      : i < readers + writers ? writer_main
							       : churn_main;

		w[i].index = i;
		if (pthread_create(&w[i].thread, NULL, fn, &w[i]) != 0) {
			fprintf(stderr, "stress_mem: pthread_create failed\n");
			return 2;
		}
	}
	nap.tv_sec = (time_t)seconds;
	nap.tv_nsec = (long)((seconds - (double)nap.tv_sec) * 1e9);
	while (nanosleep(&nap, &nap) != 0)
		;
	/* Release: pairs with the workers' acquire loads. */
	atomic_store_explicit(&stop, true, memory_order_release);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		lookups += w[i].lookups;
		hits += w[i].hits;
		stores += w[i].stores;
		too_big += w[i].too_big;
	}

	/* Quiescent: no thread uses the tier any more. */
	strata_mem_stats(mem, &st);
	if (st.bytes > budget)
		fail(CHECK_BUDGET, "at rest: bytes %" PRIu64 " > %" PRIu64,
		     st.bytes, budget);
	if (st.hits != hits || st.hits + st.misses != lookups)
		fail(CHECK_COUNTERS,
		     "hits %" PRIu64 " misses %" PRIu64 ", threads counted "
		     "%" PRIu64 " hits of %" PRIu64 " lookups",
		     st.hits, st.misses, hits, lookups);
	if (st.stores != stores)
		fail(CHECK_COUNTERS, "stores %" PRIu64 ", threads counted %"
		     PRIu64, st.stores, stores);
	if (st.entries == 0 ? st.bytes != 0 : st.bytes == 0)
		fail(CHECK_COUNTERS, "entries %" PRIu64 " but bytes %" PRIu64,
		     st.entries, st.bytes);
	if (st.evictions == 0 || hits == 0)
		fail(CHECK_COUNTERS, "the run proved nothing: %" PRIu64
		     " evictions, %" PRIu64 " hits", st.evictions, hits);
	if (strata_mem_clear(mem) != st.entries)
		fail(CHECK_COUNTERS, "clear removed other than %" PRIu64,
		     st.entries);
	strata_mem_stats(mem, &st);
	if (st.entries != 0 || st.bytes != 0)
		fail(CHECK_COUNTERS, "after clear: %" PRIu64 " entries, %"
		     PRIu64 " bytes", st.entries, st.bytes);
	printf("stress_mem: %.1fs, %u readers, %u writers: %" PRIu64
	       " lookups, %" PRIu64 " hits, %" PRIu64 " stores (%" PRIu64
	       " too big), %" PRIu64 " evictions, %" PRIu64 " expired\n",
	       seconds, readers, writers, lookups, hits, stores, too_big,
	       st.evictions, st.expired);
	strata_mem_free(&mem);
	free(w);

	for (int c = 0; c < N_CHECKS; c++) {
		if (atomic_load_explicit(&failures[c], memory_order_relaxed))
			failed++;
		else
			passed++;
	}
	printf("stress_mem: %u passed, %u failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
