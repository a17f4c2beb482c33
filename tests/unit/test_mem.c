/*
 * Unit tests for src/tier/mem.c: tier 1, the in-memory cache.
 *
 * Time is injected (`now` in wall ms); budgets are expressed in entry
 * charges measured from a probe entry, so the tests do not depend on how
 * entry.c computes a charge.  Concurrency is exercised by
 * tests/stress/stress_mem.c, which also runs under ThreadSanitizer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "strata/strata.h"
#include "tier/mem.h"

#define NOW 1000000
#define TTL 60000

/* Every key text has the same length and every body the same size, so
 * every test entry has the same charge. */
static void key_text_of(unsigned id, char text[32])
{
	snprintf(text, 32, "GET /k%08u\n", id);
}

static struct strata_entry *entry_with_key(const struct strata_key *key,
					   const char *text, const char *body,
					   int64_t expires, int64_t keep_until)
{
	struct strata_headers headers = { 0 };
	struct strata_entry_params p = {
		.key = key,
		.key_text = text,
		.key_len = strlen(text),
		.route = "test",
		.status = 200,
		.created = NOW,
		.expires = expires,
		.keep_until = keep_until,
		.headers = &headers,
		.body = body,
		.body_len = strlen(body),
	};
	struct strata_entry *e = NULL;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	return e;
}

static struct strata_entry *entry_for(unsigned id)
{
	struct strata_key key;
	char text[32];
	char body[32];

	key_text_of(id, text);
	snprintf(body, sizeof(body), "body-%08u", id);
	strata_key_hash(text, strlen(text), &key);
	return entry_with_key(&key, text, body, NOW + TTL, 0);
}

static int lookup_id(struct strata_mem *mem, unsigned id, int64_t now,
		     struct strata_entry **out)
{
	struct strata_key key;
	char text[32];

	key_text_of(id, text);
	strata_key_hash(text, strlen(text), &key);
	return strata_mem_lookup(mem, &key, text, strlen(text), now, out);
}

static size_t one_charge(void)
{
	struct strata_entry *e = entry_for(0);
	size_t charge = e->charge;

	strata_entry_release(&e);
	cr_assert_gt(charge, 0);
	return charge;
}

static unsigned refs(struct strata_entry *e)
{
	return atomic_load_explicit(&e->refcnt, memory_order_relaxed);
}

static struct strata_mem_stats stats_of(struct strata_mem *mem)
{
	struct strata_mem_stats st;

	strata_mem_stats(mem, &st);
	return st;
}

Test(mem, store_then_lookup_returns_same_entry_with_a_new_reference)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e = entry_for(1), *got = NULL;

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	cr_assert_eq(strata_mem_store(mem, e), 0);
	cr_assert_eq(refs(e), 2, "the tier holds its own reference");
	cr_assert_eq(lookup_id(mem, 1, NOW, &got), 0);
	cr_assert_eq(got, e, "a hit copies nothing");
	cr_assert_eq(refs(e), 3);
	cr_assert_str_eq(got->key_text, "GET /k00000001\n");
	strata_entry_release(&got);
	cr_assert_null(got);
	cr_assert_eq(refs(e), 2);
	strata_mem_free(&mem);
	cr_assert_null(mem);
	cr_assert_eq(refs(e), 1, "free released the tier's reference");
	strata_entry_release(&e);
}

Test(mem, unknown_key_misses)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e = entry_for(1), *got = e;

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	cr_assert_eq(lookup_id(mem, 1, NOW, &got), STRATA_EMISS);
	cr_assert_null(got);
	cr_assert_eq(strata_mem_store(mem, e), 0);
	cr_assert_eq(lookup_id(mem, 2, NOW, &got), STRATA_EMISS);
	cr_assert_null(got);
	strata_mem_free(&mem);
	strata_entry_release(&e);
}

/*
 * A collision: a lookup whose hash equals a stored entry's but whose key
 * text differs.  entry.c refuses to build an entry whose key is not the
 * hash of its text, so the collision is made on the lookup side: the
 * stored entry's hash, other texts.
 */
Test(mem, same_hash_other_key_text_misses)
{
	struct strata_mem *mem = NULL;
	struct strata_key key;
	struct strata_entry *a, *got = NULL;
	const char *const others[] = {
		"GET /b\n",       /* same length, one byte off */
		"GET /a",          /* a prefix */
		"GET /a\nx",      /* an extension */
		"",
	};

	strata_key_hash("GET /a\n", 7, &key);
	a = entry_with_key(&key, "GET /a\n", "alpha", NOW + TTL, 0);
	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	cr_assert_eq(strata_mem_store(mem, a), 0);

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		got = a;
		cr_assert_eq(strata_mem_lookup(mem, &key, others[i],
					       strlen(others[i]), NOW, &got),
			     STRATA_EMISS, "%zu: a collision must cost a miss",
			     i);
		cr_assert_null(got);
	}
	cr_assert_eq(refs(a), 2, "a miss takes no reference");
	cr_assert_eq(strata_mem_lookup(mem, &key, "GET /a\n", 7, NOW, &got),
		     0);
	cr_assert_eq(got, a);
	strata_entry_release(&got);
	cr_assert_eq(stats_of(mem).misses, 4);
	cr_assert_eq(stats_of(mem).hits, 1);

	strata_mem_free(&mem);
	strata_entry_release(&a);
}

Test(mem, stale_entry_misses_and_is_dropped_after_keep_until)
{
	struct strata_mem *mem = NULL;
	struct strata_key key;
	struct strata_entry *e, *got = NULL;

	strata_key_hash("GET /s\n", 7, &key);
	e = entry_with_key(&key, "GET /s\n", "stale", NOW + 10, NOW + 100);
	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	cr_assert_eq(strata_mem_store(mem, e), 0);

	cr_assert_eq(strata_mem_lookup(mem, &key, "GET /s\n", 7, NOW + 9,
				       &got), 0);
	strata_entry_release(&got);
	cr_assert_eq(strata_mem_lookup(mem, &key, "GET /s\n", 7, NOW + 10,
				       &got), STRATA_EMISS,
		     "now == expires is stale");
	cr_assert_null(got);
	cr_assert_eq(stats_of(mem).entries, 1, "kept until keep_until");
	cr_assert_eq(stats_of(mem).expired, 0);

	cr_assert_eq(strata_mem_lookup(mem, &key, "GET /s\n", 7, NOW + 100,
				       &got), STRATA_EMISS);
	cr_assert_eq(stats_of(mem).entries, 0, "dropped past keep_until");
	cr_assert_eq(stats_of(mem).bytes, 0);
	cr_assert_eq(stats_of(mem).expired, 1);

	strata_mem_free(&mem);
	cr_assert_eq(refs(e), 1);
	strata_entry_release(&e);
}

Test(mem, store_replaces_same_hash_and_adjusts_bytes)
{
	struct strata_mem *mem = NULL;
	struct strata_key key;
	struct strata_entry *v1, *v2, *got = NULL;

	strata_key_hash("GET /r\n", 7, &key);
	v1 = entry_with_key(&key, "GET /r\n", "v1", NOW + TTL, 0);
	v2 = entry_with_key(&key, "GET /r\n", "version two, longer",
			    NOW + TTL, 0);
	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);

	cr_assert_eq(strata_mem_store(mem, v1), 0);
	cr_assert_eq(stats_of(mem).bytes, v1->charge);
	cr_assert_eq(strata_mem_store(mem, v2), 0);
	cr_assert_eq(stats_of(mem).entries, 1);
	cr_assert_eq(stats_of(mem).bytes, v2->charge);
	cr_assert_eq(stats_of(mem).stores, 2);
	cr_assert_eq(stats_of(mem).evictions, 0, "a replacement is no eviction");

	cr_assert_eq(strata_mem_lookup(mem, &key, "GET /r\n", 7, NOW, &got),
		     0);
	cr_assert_eq(got, v2);
	cr_assert_eq(got->body_len, strlen("version two, longer"));
	strata_entry_release(&got);

	/* Storing the same entry again replaces it with itself. */
	cr_assert_eq(strata_mem_store(mem, v2), 0);
	cr_assert_eq(stats_of(mem).entries, 1);
	cr_assert_eq(stats_of(mem).bytes, v2->charge);

	strata_mem_free(&mem);
	cr_assert_eq(refs(v1), 1, "the replaced entry was released");
	cr_assert_eq(refs(v2), 1);
	strata_entry_release(&v1);
	strata_entry_release(&v2);
}

Test(mem, remove_drops_the_entry)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e = entry_for(7), *got = NULL;

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	cr_assert_eq(strata_mem_store(mem, e), 0);
	cr_assert_eq(strata_mem_remove(mem, &e->key), 0);
	cr_assert_eq(lookup_id(mem, 7, NOW, &got), STRATA_EMISS);
	cr_assert_eq(strata_mem_remove(mem, &e->key), STRATA_EMISS);
	cr_assert_eq(stats_of(mem).entries, 0);
	cr_assert_eq(stats_of(mem).bytes, 0);
	strata_mem_free(&mem);
	cr_assert_eq(refs(e), 1);
	strata_entry_release(&e);
}

Test(mem, clear_removes_everything)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e, *got = NULL;

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	for (unsigned i = 0; i < 50; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
	}
	cr_assert_eq(stats_of(mem).entries, 50);
	cr_assert_eq(strata_mem_clear(mem), 50);
	cr_assert_eq(stats_of(mem).entries, 0);
	cr_assert_eq(stats_of(mem).bytes, 0);
	for (unsigned i = 0; i < 50; i++)
		cr_assert_eq(lookup_id(mem, i, NOW, &got), STRATA_EMISS);
	cr_assert_eq(strata_mem_clear(mem), 0);

	/* Usable after a clear. */
	e = entry_for(3);
	cr_assert_eq(strata_mem_store(mem, e), 0);
	cr_assert_eq(lookup_id(mem, 3, NOW, &got), 0);
	strata_entry_release(&got);
	strata_entry_release(&e);
	strata_mem_free(&mem);
}

Test(mem, budget_holds_while_filling_ten_times_over)
{
	size_t charge = one_charge();
	uint64_t budget = 100 * charge;
	struct strata_mem *mem = NULL;
	struct strata_mem_stats st;
	struct strata_entry *e;

	cr_assert_eq(strata_mem_new(budget, &mem), 0);
	for (unsigned i = 0; i < 1000; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
		st = stats_of(mem);
		cr_assert_leq(st.bytes, budget, "store %u: %llu > %llu", i,
			      (unsigned long long)st.bytes,
			      (unsigned long long)budget);
		cr_assert_eq(st.bytes, st.entries * charge);
	}
	st = stats_of(mem);
	cr_assert_eq(st.entries, 100, "the budget is used, not wasted");
	cr_assert_eq(st.stores, 1000);
	cr_assert_eq(st.evictions, 900);
	strata_mem_free(&mem);
}

Test(mem, hot_entries_survive_eviction_better_than_cold)
{
	size_t charge = one_charge();
	struct strata_mem *mem = NULL;
	struct strata_entry *e, *got = NULL;
	unsigned survivors = 0;

	cr_assert_eq(strata_mem_new(100 * charge, &mem), 0);
	for (unsigned h = 0; h < 10; h++) {
		e = entry_for(h);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
	}
	/* 1000 cold entries through a 100-entry tier, while one hot key in
	 * turn is hit after each store: each hot key is hit every 10 stores,
	 * ten times per revolution of the clock.  Under FIFO all ten would
	 * be gone after the first 100 stores. */
	for (unsigned i = 0; i < 1000; i++) {
		e = entry_for(1000 + i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
		if (lookup_id(mem, i % 10, NOW, &got) == 0)
			strata_entry_release(&got);
	}
	for (unsigned h = 0; h < 10; h++) {
		if (lookup_id(mem, h, NOW, &got) == 0) {
			survivors++;
			strata_entry_release(&got);
		}
	}
	cr_assert_geq(survivors, 8, "only %u of 10 hot keys survived",
		      survivors);
	/* And most cold entries are gone, as they should be. */
	cr_assert_leq(stats_of(mem).entries, 100);
	strata_mem_free(&mem);
}

Test(mem, entry_larger_than_budget_is_refused)
{
	size_t charge = one_charge();
	struct strata_mem *mem = NULL;
	struct strata_entry *e = entry_for(1), *got = NULL;

	cr_assert_eq(strata_mem_new(charge - 1, &mem), 0);
	cr_assert_eq(strata_mem_store(mem, e), STRATA_ETOOBIG);
	cr_assert_eq(refs(e), 1, "not stored: no reference taken");
	cr_assert_eq(lookup_id(mem, 1, NOW, &got), STRATA_EMISS);
	cr_assert_eq(stats_of(mem).entries, 0);
	cr_assert_eq(stats_of(mem).stores, 0);
	strata_mem_free(&mem);

	/* Exactly the budget fits. */
	cr_assert_eq(strata_mem_new(charge, &mem), 0);
	cr_assert_eq(strata_mem_store(mem, e), 0);
	cr_assert_eq(stats_of(mem).bytes, charge);
	strata_mem_free(&mem);
	strata_entry_release(&e);
}

Test(mem, entry_held_by_a_reader_stays_valid_after_eviction)
{
	size_t charge = one_charge();
	struct strata_mem *mem = NULL;
	struct strata_entry *e, *held = NULL, *got = NULL;

	cr_assert_eq(strata_mem_new(2 * charge, &mem), 0);
	e = entry_for(1);
	cr_assert_eq(strata_mem_store(mem, e), 0);
	strata_entry_release(&e); /* only the tier holds it now */
	cr_assert_eq(lookup_id(mem, 1, NOW, &held), 0);

	for (unsigned i = 2; i < 10; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
	}
	cr_assert_eq(lookup_id(mem, 1, NOW, &got), STRATA_EMISS,
		     "evicted from the tier");
	strata_mem_free(&mem); /* every grace period is over now */

	/* Under ASan a premature free would be a use-after-free here. */
	cr_assert_eq(held->magic, STRATA_ENTRY_MAGIC);
	cr_assert_eq(refs(held), 1, "only the reader's reference is left");
	cr_assert_eq(held->body_len, strlen("body-00000001"));
	cr_assert_eq(memcmp(held->body, "body-00000001", held->body_len), 0);
	cr_assert_str_eq(held->key_text, "GET /k00000001\n");
	strata_entry_release(&held);
}

Test(mem, stats_count_what_happened)
{
	size_t charge = one_charge();
	struct strata_mem *mem = NULL;
	struct strata_key key;
	struct strata_entry *e, *got = NULL;
	struct strata_mem_stats st;

	cr_assert_eq(strata_mem_new(3 * charge, &mem), 0);
	st = stats_of(mem);
	cr_assert_eq(st.budget, 3 * charge);
	cr_assert_eq(st.entries + st.bytes + st.hits + st.misses + st.stores +
			     st.evictions + st.expired,
		     0);

	for (unsigned i = 0; i < 5; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
	}
	for (unsigned i = 0; i < 5; i++) /* 0 and 1 were evicted */
		if (lookup_id(mem, i, NOW, &got) == 0)
			strata_entry_release(&got);
	cr_assert_eq(lookup_id(mem, 4, NOW, &got), 0);
	strata_entry_release(&got);

	strata_key_hash("GET /x\n", 7, &key);
	e = entry_with_key(&key, "GET /x\n", "x", NOW + 1, NOW + 2);
	cr_assert_eq(strata_mem_store(mem, e), 0); /* evicts one more */
	strata_entry_release(&e);
	cr_assert_eq(strata_mem_lookup(mem, &key, "GET /x\n", 7, NOW + 5,
				       &got), STRATA_EMISS);

	st = stats_of(mem);
	cr_assert_eq(st.stores, 6);
	cr_assert_eq(st.evictions, 3);
	cr_assert_eq(st.expired, 1);
	cr_assert_eq(st.hits, 4);
	cr_assert_eq(st.misses, 3);
	cr_assert_eq(st.entries, 2);
	cr_assert_eq(st.bytes, 2 * charge);
	strata_mem_free(&mem);
}

/* Threads the module did not create register themselves on first use and
 * unregister at exit; a tier outlives them. */
static void *lookup_thread(void *arg)
{
	struct strata_mem *mem = arg;
	struct strata_entry *got = NULL;
	uintptr_t hits = 0;

	for (unsigned i = 0; i < 2000; i++) {
		if (lookup_id(mem, i % 20, NOW, &got) == 0) {
			hits += got->key_len == 15;
			strata_entry_release(&got);
		}
	}
	return (void *)hits;
}

Test(mem, foreign_threads_can_look_up)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e;
	pthread_t t[4];
	void *hits;

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	for (unsigned i = 0; i < 10; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 4; i++)
			cr_assert_eq(pthread_create(&t[i], NULL, lookup_thread,
						    mem), 0);
		for (int i = 0; i < 4; i++) {
			cr_assert_eq(pthread_join(t[i], &hits), 0);
			cr_assert_eq((uintptr_t)hits, 1000);
		}
	}
	cr_assert_eq(stats_of(mem).hits, 8000);
	cr_assert_eq(stats_of(mem).misses, 8000);
	strata_mem_free(&mem);
}

Test(mem, store_rejects_a_non_entry, .signal = SIGABRT)
{
	struct strata_mem *mem = NULL;
	struct strata_entry fake;

	memset(&fake, 0, sizeof(fake));
	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	strata_mem_store(mem, &fake);
}

/* --- purge_if and foreach ------------------------------------------------- */

/* An entry for `text` carrying `n_tags` tags; same body for every one. */
static struct strata_entry *tagged_entry(const char *text,
					 const char *const *tags,
					 size_t n_tags)
{
	struct strata_headers headers = { 0 };
	struct strata_entry_params p = {
		.key_text = text,
		.key_len = strlen(text),
		.route = "test",
		.status = 200,
		.created = NOW,
		.expires = NOW + TTL,
		.headers = &headers,
		.tags = tags,
		.n_tags = n_tags,
		.body = "body",
		.body_len = 4,
	};
	struct strata_entry *e = NULL;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	return e;
}

static bool has_tag_cb(const struct strata_entry *e, void *arg)
{
	for (size_t i = 0; i < e->n_tags; i++)
		if (strcmp(e->tags[i], arg) == 0)
			return true;
	return false;
}

static bool has_prefix_cb(const struct strata_entry *e, void *arg)
{
	size_t len = strlen(arg);

	return e->key_len >= len && memcmp(e->key_text, arg, len) == 0;
}

static bool never_cb(const struct strata_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return false;
}

static bool always_cb(const struct strata_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return true;
}

static bool present(struct strata_mem *mem, const char *text)
{
	struct strata_entry *got = NULL;
	struct strata_key key;
	int rc;

	strata_key_hash(text, strlen(text), &key);
	rc = strata_mem_lookup(mem, &key, text, strlen(text), NOW, &got);
	strata_entry_release(&got);
	return rc == 0;
}

/* Six entries: /a/0-2 tagged "red" (and /a/1 also "blue"), /b/0-2 tagged
 * "blue".  Returns the sum of their charges. */
static const char *const six_texts[] = {
	"GET /a/0\n", "GET /a/1\n", "GET /a/2\n",
	"GET /b/0\n", "GET /b/1\n", "GET /b/2\n",
};

static uint64_t store_six(struct strata_mem *mem, struct strata_entry *out[6])
{
	static const char *const red[] = { "red" };
	static const char *const red_blue[] = { "red", "blue" };
	static const char *const blue[] = { "blue" };
	uint64_t bytes = 0;

	for (unsigned i = 0; i < 6; i++) {
		if (i == 1)
			out[i] = tagged_entry(six_texts[i], red_blue, 2);
		else
			out[i] = tagged_entry(six_texts[i], i < 3 ? red : blue,
					      1);
		cr_assert_eq(strata_mem_store(mem, out[i]), 0);
		bytes += out[i]->charge;
	}
	return bytes;
}

static void release_six(struct strata_entry *e[6])
{
	for (unsigned i = 0; i < 6; i++)
		strata_entry_release(&e[i]);
}

Test(mem, purge_if_by_tag_removes_only_the_tagged)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e[6];
	struct strata_mem_stats st;
	uint64_t bytes;

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	bytes = store_six(mem, e);
	cr_assert_eq(stats_of(mem).bytes, bytes);

	cr_assert_eq(strata_mem_purge_if(mem, has_tag_cb, "blue"), 4);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(present(mem, six_texts[i]), i == 0 || i == 2,
			     "%s", six_texts[i]);
	st = stats_of(mem);
	cr_assert_eq(st.entries, 2);
	cr_assert_eq(st.bytes, e[0]->charge + e[2]->charge);
	cr_assert_eq(st.evictions, 0, "a purge is no eviction");
	cr_assert_eq(st.expired, 0, "nor an expiry");
	cr_assert_eq(st.stores, 6);
	cr_assert_eq(strata_mem_purge_if(mem, has_tag_cb, "blue"), 0,
		     "nothing left to purge");
	cr_assert_eq(strata_mem_purge_if(mem, has_tag_cb, "red"), 2);
	cr_assert_eq(stats_of(mem).entries, 0);
	cr_assert_eq(stats_of(mem).bytes, 0);

	strata_mem_free(&mem);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(refs(e[i]), 1, "the tier released %u", i);
	release_six(e);
}

Test(mem, purge_if_by_key_text_prefix)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e[6];

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	store_six(mem, e);
	cr_assert_eq(strata_mem_purge_if(mem, has_prefix_cb, "GET /a/"), 3);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(present(mem, six_texts[i]), i >= 3, "%s",
			     six_texts[i]);
	cr_assert_eq(strata_mem_purge_if(mem, has_prefix_cb, "GET /b/1\n"), 1,
		     "a whole text");
	cr_assert_eq(strata_mem_purge_if(mem, has_prefix_cb, "GET /c"), 0);
	cr_assert_eq(stats_of(mem).entries, 2);
	cr_assert_eq(stats_of(mem).bytes, e[3]->charge + e[5]->charge);
	strata_mem_free(&mem);
	release_six(e);
}

Test(mem, purge_if_none_and_all)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e[6];
	uint64_t bytes;

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	cr_assert_eq(strata_mem_purge_if(mem, always_cb, NULL), 0,
		     "an empty tier");
	bytes = store_six(mem, e);
	cr_assert_eq(strata_mem_purge_if(mem, never_cb, NULL), 0);
	cr_assert_eq(stats_of(mem).entries, 6);
	cr_assert_eq(stats_of(mem).bytes, bytes);
	cr_assert_eq(strata_mem_purge_if(mem, always_cb, NULL), 6);
	cr_assert_eq(stats_of(mem).entries, 0);
	cr_assert_eq(stats_of(mem).bytes, 0);
	for (unsigned i = 0; i < 6; i++)
		cr_assert(!present(mem, six_texts[i]));

	/* Usable afterwards, and the clock ring was left whole. */
	cr_assert_eq(strata_mem_store(mem, e[4]), 0);
	cr_assert(present(mem, six_texts[4]));
	cr_assert_eq(strata_mem_clear(mem), 1);
	strata_mem_free(&mem);
	release_six(e);
}

/* The budget a purge frees is usable at once: filling it again evicts
 * nothing, and the budget holds while the tier runs full afterwards. */
Test(mem, purge_if_keeps_budget_and_bytes_consistent)
{
	size_t charge = one_charge();
	uint64_t budget = 20 * charge;
	struct strata_mem *mem = NULL;
	struct strata_mem_stats st;
	struct strata_entry *e, *held = NULL;

	cr_assert_eq(strata_mem_new(budget, &mem), 0);
	for (unsigned i = 0; i < 20; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
	}
	cr_assert_eq(lookup_id(mem, 1, NOW, &held), 0);
	/* Purge ids 0-9 ("GET /k0000000N"), the held one among them. */
	cr_assert_eq(strata_mem_purge_if(mem, has_prefix_cb, "GET /k0000000"),
		     10);
	st = stats_of(mem);
	cr_assert_eq(st.entries, 10);
	cr_assert_eq(st.bytes, 10 * charge);
	cr_assert_eq(st.budget, budget);

	/* The reader that held one keeps it. */
	cr_assert_eq(held->magic, STRATA_ENTRY_MAGIC);
	cr_assert_str_eq(held->key_text, "GET /k00000001\n");

	for (unsigned i = 100; i < 110; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
	}
	st = stats_of(mem);
	cr_assert_eq(st.entries, 20);
	cr_assert_eq(st.bytes, budget);
	cr_assert_eq(st.evictions, 0, "the purged room was reused");
	for (unsigned i = 200; i < 230; i++) {
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(mem, e), 0);
		strata_entry_release(&e);
		st = stats_of(mem);
		cr_assert_leq(st.bytes, budget);
		cr_assert_eq(st.bytes, st.entries * charge);
	}
	cr_assert_eq(st.evictions, 30);
	strata_mem_free(&mem);
	cr_assert_eq(refs(held), 1);
	strata_entry_release(&held);
}

struct walk {
	size_t seen, stop_after;
	struct strata_entry *kept[8];
	size_t n_kept;
	struct strata_mem *mem;
	size_t hits;
};

static bool walk_cb(struct strata_entry *e, void *arg)
{
	struct walk *w = arg;
	struct strata_entry *again = NULL;

	w->seen++;
	cr_assert_eq(e->magic, STRATA_ENTRY_MAGIC);
	if (w->n_kept < 8)
		w->kept[w->n_kept++] = strata_entry_ref(e);
	/* Lookups are allowed inside the walk. */
	if (w->mem != NULL &&
	    strata_mem_lookup(w->mem, &e->key, e->key_text, e->key_len, NOW,
			      &again) == 0) {
		cr_assert_eq(again, e);
		w->hits++;
		strata_entry_release(&again);
	}
	return w->stop_after == 0 || w->seen < w->stop_after;
}

Test(mem, foreach_visits_each_entry_and_may_keep_references)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e[6];
	struct walk w = { 0 };
	bool found[6] = { false };

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	cr_assert_eq(strata_mem_foreach(mem, walk_cb, &w), 0, "empty tier");
	store_six(mem, e);

	w = (struct walk){ .mem = mem };
	cr_assert_eq(strata_mem_foreach(mem, walk_cb, &w), 6);
	cr_assert_eq(w.seen, 6);
	cr_assert_eq(w.hits, 6);
	for (size_t i = 0; i < w.n_kept; i++)
		for (unsigned j = 0; j < 6; j++)
			if (w.kept[i] == e[j]) {
				cr_assert(!found[j], "visited twice: %u", j);
				found[j] = true;
			}
	for (unsigned j = 0; j < 6; j++) {
		cr_assert(found[j], "not visited: %u", j);
		cr_assert_eq(refs(e[j]), 3, "ours, the tier's, the walk's");
	}

	/* References taken in the walk outlive the tier's. */
	strata_mem_clear(mem);
	strata_mem_free(&mem);
	for (size_t i = 0; i < w.n_kept; i++) {
		cr_assert_eq(w.kept[i]->magic, STRATA_ENTRY_MAGIC);
		cr_assert_eq(refs(w.kept[i]), 2);
		strata_entry_release(&w.kept[i]);
	}
	release_six(e);
}

Test(mem, foreach_stops_when_told)
{
	struct strata_mem *mem = NULL;
	struct strata_entry *e[6];
	struct walk w = { .stop_after = 2 };

	cr_assert_eq(strata_mem_new(1u << 20, &mem), 0);
	store_six(mem, e);
	cr_assert_eq(strata_mem_foreach(mem, walk_cb, &w), 2,
		     "counts the call that stopped it");
	cr_assert_eq(w.seen, 2);
	for (size_t i = 0; i < w.n_kept; i++)
		strata_entry_release(&w.kept[i]);
	cr_assert_eq(stats_of(mem).entries, 6, "a walk changes nothing");
	strata_mem_free(&mem);
	release_six(e);
}

/* A walk running while another thread stores, purges and removes: every
 * entry it is handed is a live one (ASan would flag a freed one), and
 * entries present throughout are always visited. */
struct churn {
	struct strata_mem *mem;
	atomic_bool stop;
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct strata_entry *e;
	unsigned round = 0;

	while (!atomic_load(&c->stop)) {
		for (unsigned i = 100; i < 140; i++) {
			e = entry_for(i);
			cr_assert_eq(strata_mem_store(c->mem, e), 0);
			strata_entry_release(&e);
		}
		if (round++ % 2)
			strata_mem_purge_if(c->mem, has_prefix_cb,
					    "GET /k000001");
		else
			for (unsigned i = 100; i < 140; i++) {
				e = entry_for(i);
				strata_mem_remove(c->mem, &e->key);
				strata_entry_release(&e);
			}
	}
	return NULL;
}

struct stable_walk {
	unsigned stable_seen;
};

static bool stable_cb(struct strata_entry *e, void *arg)
{
	struct stable_walk *w = arg;
	struct strata_entry *kept = strata_entry_ref(e);

	cr_assert_eq(kept->magic, STRATA_ENTRY_MAGIC);
	cr_assert_eq(kept->key_len, 15);
	if (memcmp(kept->key_text, "GET /k0000000", 13) == 0)
		w->stable_seen++;
	strata_entry_release(&kept);
	return true;
}

Test(mem, foreach_runs_alongside_writers)
{
	struct churn c = { 0 };
	struct strata_entry *e;
	struct stable_walk w;
	pthread_t t;

	cr_assert_eq(strata_mem_new(1u << 20, &c.mem), 0);
	for (unsigned i = 0; i < 10; i++) { /* "GET /k0000000N": stable */
		e = entry_for(i);
		cr_assert_eq(strata_mem_store(c.mem, e), 0);
		strata_entry_release(&e);
	}
	cr_assert_eq(pthread_create(&t, NULL, churn_main, &c), 0);
	for (unsigned i = 0; i < 2000; i++) {
		w = (struct stable_walk){ 0 };
		strata_mem_foreach(c.mem, stable_cb, &w);
		cr_assert_eq(w.stable_seen, 10, "walk %u", i);
	}
	atomic_store(&c.stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(strata_mem_purge_if(c.mem, has_prefix_cb,
					 "GET /k0000000"), 10);
	strata_mem_free(&c.mem);
}
