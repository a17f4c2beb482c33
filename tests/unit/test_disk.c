/*
 * Unit tests for src/tier/disk.c: tier 2, the LMDB disk cache.
 *
 * Every test works on real LMDB files in its own mkdtemp directory (the
 * tier is its "tier" subdirectory, so that "tier.corrupt-*" siblings land
 * inside it too), removed by the suite's fini.  Entries expire an hour
 * from the wall clock, because the tier's sweeper reads the wall clock;
 * tests that need expiry use short real lifetimes and bounded waits
 * scaled by $STRATA_TEST_TIMEOUT_MULT.  The files are tampered with
 * through liblmdb directly, only while no tier is open in the process
 * (LMDB forbids one process opening an environment twice).
 */
#include "config.h"

#include "tier/disk.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "core/log.h"
#include "strata/strata.h"

#define HOUR_MS 3600000
#define MIB (1024u * 1024u)

static char tmpdir[64];
static char tier_path[128];

static int remove_cb(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/strata-disk-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(tier_path, sizeof(tier_path), "%s/tier", tmpdir);
	/* Quiet: the tier's warnings about moved directories are expected. */
	strata_log_set_level(STRATA_LOG_ERROR);
}

static void teardown(void)
{
	nftw(tmpdir, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(disk, .init = setup, .fini = teardown, .timeout = 120);

static double timeout_mult(void)
{
	const char *s = getenv("STRATA_TEST_TIMEOUT_MULT");
	double m = s ? atof(s) : 1.0;

	return m > 0 ? m : 1.0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct strata_disk_config config_for(uint64_t size)
{
	return (struct strata_disk_config){
		.path = tier_path,
		.size = size,
		.sync = STRATA_DISK_SYNC_NONE,
		.on_corrupt = STRATA_DISK_CORRUPT_MOVE,
		.queue_limit = 4096,
	};
}

static struct strata_disk *open_tier(uint64_t size)
{
	struct strata_disk_config cfg = config_for(size);
	struct strata_disk *disk = NULL;

	cr_assert_eq(strata_disk_open(&cfg, &disk), 0);
	cr_assert_not_null(disk);
	return disk;
}

static struct strata_entry *entry_of(const char *text, const char *body,
				     size_t body_len, int64_t expires)
{
	struct strata_headers headers = { 0 };
	struct strata_key key;
	struct strata_entry_params p = {
		.key = &key,
		.key_text = text,
		.key_len = strlen(text),
		.route = "test",
		.status = 200,
		.created = strata_wall_ms(),
		.expires = expires,
		.headers = &headers,
		.body = body,
		.body_len = body_len,
	};
	struct strata_entry *e = NULL;

	strata_key_hash(text, strlen(text), &key);
	cr_assert_eq(strata_headers_add(&headers, "Content-Type",
					"text/plain"), 0);
	cr_assert_eq(strata_entry_new(&p, &e), 0);
	strata_headers_clear(&headers);
	return e;
}

static void store_text(struct strata_disk *disk, const char *text,
		       const char *body, int64_t expires)
{
	struct strata_entry *e = entry_of(text, body, strlen(body), expires);

	cr_assert_eq(strata_disk_store(disk, e), 0);
	strata_entry_release(&e);
}

static int lookup_text(struct strata_disk *disk, const char *text,
		       int64_t now, struct strata_entry **out)
{
	struct strata_key key;

	strata_key_hash(text, strlen(text), &key);
	return strata_disk_lookup(disk, &key, text, strlen(text), now, out);
}

/* Hit with exactly `body`, or fail. */
static void expect_body(struct strata_disk *disk, const char *text,
			const char *body)
{
	struct strata_entry *got = NULL;

	cr_assert_eq(lookup_text(disk, text, strata_wall_ms(), &got), 0,
		     "%s should hit", text);
	cr_assert_eq(got->body_len, strlen(body));
	cr_assert(memcmp(got->body, body, got->body_len) == 0);
	cr_assert_eq(got->key_len, strlen(text));
	cr_assert_str_eq(got->key_text, text);
	cr_assert_eq(got->status, 200);
	cr_assert_str_eq(strata_entry_header(got, "content-type"),
			 "text/plain");
	strata_entry_release(&got);
}

static void expect_miss(struct strata_disk *disk, const char *text)
{
	struct strata_entry *got = (struct strata_entry *)1;

	cr_assert_eq(lookup_text(disk, text, strata_wall_ms(), &got),
		     STRATA_EMISS, "%s should miss", text);
	cr_assert_null(got);
}

static struct strata_disk_stats stats_of(struct strata_disk *disk)
{
	struct strata_disk_stats st;

	strata_disk_stats(disk, &st);
	return st;
}

/* A scan's visits, collected. */
struct visits {
	char texts[16][700];
	struct strata_key keys[16];
	size_t n;
	size_t stop_after; /* 0: never */
};

static int collect_cb(void *arg, const char *text, size_t len,
		      const struct strata_key *key)
{
	struct visits *v = arg;

	cr_assert_lt(v->n, 16);
	cr_assert_eq(strlen(text), len, "NUL-terminated at len");
	cr_assert_lt(len, sizeof(v->texts[0]));
	memcpy(v->texts[v->n], text, len + 1);
	v->keys[v->n] = *key;
	v->n++;
	return v->stop_after && v->n >= v->stop_after;
}

static size_t count_corrupt_dirs(void)
{
	char pattern[160];
	glob_t g;
	size_t n = 0;

	snprintf(pattern, sizeof(pattern), "%s.corrupt-*", tier_path);
	if (glob(pattern, 0, NULL, &g) == 0)
		n = g.gl_pathc;
	globfree(&g);
	return n;
}

/* Write the meta version record directly (no tier open in-process). */
static void set_format_version(uint32_t version)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t v[4] = { (uint8_t)version, (uint8_t)(version >> 8),
			 (uint8_t)(version >> 16), (uint8_t)(version >> 24) };
	MDB_val k = { strlen("strata-disk"), "strata-disk" };
	MDB_val d = { sizeof(v), v };

	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 2 * MIB), 0);
	cr_assert_eq(mdb_env_open(env, tier_path, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	cr_assert_eq(mdb_put(txn, dbi, &k, &d, 0), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Records in each index, read directly (no tier open in-process). */
struct raw_counts {
	size_t entries, keys, expiry;
};

static struct raw_counts raw_counts(void)
{
	const char *const names[] = { "entries", "keys", "expiry" };
	size_t n[3];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;

	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 4 * MIB), 0);
	cr_assert_eq(mdb_env_open(env, tier_path, MDB_RDONLY, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(mdb_dbi_open(txn, names[i], 0, &dbi), 0);
		cr_assert_eq(mdb_stat(txn, dbi, &st), 0);
		n[i] = st.ms_entries;
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return (struct raw_counts){ n[0], n[1], n[2] };
}

static void write_file(const char *name, const void *bytes, size_t len)
{
	char file[200];
	int fd;

	snprintf(file, sizeof(file), "%s/%s", tier_path, name);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

/* --- storing and looking up ------------------------------------------------ */

Test(disk, store_flush_then_lookup_hits)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t now = strata_wall_ms();
	struct strata_entry *e = entry_of("GET /a\n", "alpha", 5,
					  now + HOUR_MS);
	struct strata_entry *got = NULL;

	cr_assert_eq(strata_disk_store(disk, e), 0);
	cr_assert_eq(atomic_load(&e->refcnt), 2, "the queue holds a ref");
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(atomic_load(&e->refcnt), 1, "released once written");

	cr_assert_eq(lookup_text(disk, "GET /a\n", now, &got), 0);
	cr_assert_neq(got, e, "a hit is a decoded copy");
	cr_assert_eq(atomic_load(&got->refcnt), 1, "the caller's reference");
	cr_assert(strata_key_equal(&got->key, &e->key));
	cr_assert_eq(got->expires, e->expires);
	strata_entry_release(&got);
	expect_body(disk, "GET /a\n", "alpha");

	cr_assert_eq(stats_of(disk).entries, 1);
	cr_assert_eq(stats_of(disk).stores, 1);
	cr_assert_eq(stats_of(disk).hits, 2);
	cr_assert_gt(stats_of(disk).bytes_used, 0);
	cr_assert_geq(stats_of(disk).size, 4 * MIB);
	strata_entry_release(&e);
	strata_disk_close(&disk);
	cr_assert_null(disk);
}

Test(disk, unknown_key_misses)
{
	struct strata_disk *disk = open_tier(4 * MIB);

	expect_miss(disk, "GET /nothing\n");
	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_miss(disk, "GET /b\n");
	cr_assert_eq(stats_of(disk).misses, 2);
	cr_assert_eq(stats_of(disk).hits, 0);
	strata_disk_close(&disk);
}

/* A collision, made on the lookup side: the stored hash, other texts. */
Test(disk, same_hash_other_key_text_misses)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	const char *const others[] = { "GET /b\n", "GET /a", "GET /a\nx", "" };
	struct strata_entry *got = NULL;
	struct strata_key key;

	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_key_hash("GET /a\n", 7, &key);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		cr_assert_eq(strata_disk_lookup(disk, &key, others[i],
						strlen(others[i]),
						strata_wall_ms(), &got),
			     STRATA_EMISS, "%zu", i);
		cr_assert_null(got);
	}
	cr_assert_eq(stats_of(disk).corrupt, 0, "a collision is no corruption");
	expect_body(disk, "GET /a\n", "alpha");
	strata_disk_close(&disk);
}

Test(disk, expired_entry_misses)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t now = strata_wall_ms();
	struct strata_entry *got = NULL;

	store_text(disk, "GET /a\n", "alpha", now + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(lookup_text(disk, "GET /a\n", now + HOUR_MS - 1, &got),
		     0);
	strata_entry_release(&got);
	cr_assert_eq(lookup_text(disk, "GET /a\n", now + HOUR_MS, &got),
		     STRATA_EMISS, "now == expires is stale");
	cr_assert_null(got);
	cr_assert_eq(lookup_text(disk, "GET /a\n", now + 2 * HOUR_MS, &got),
		     STRATA_EMISS);
	strata_disk_close(&disk);
}

Test(disk, remove_drops_the_entry_and_its_key)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	struct visits v = { 0 };
	struct strata_key key;

	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	store_text(disk, "GET /b\n", "beta", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_key_hash("GET /a\n", 7, &key);
	cr_assert_eq(strata_disk_remove(disk, &key), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_miss(disk, "GET /a\n");
	expect_body(disk, "GET /b\n", "beta");
	cr_assert_eq(strata_disk_scan_prefix(disk, "", 0, collect_cb, &v), 1);
	cr_assert_str_eq(v.texts[0], "GET /b\n");
	cr_assert_eq(stats_of(disk).entries, 1);
	/* Removing what is not there is fine. */
	cr_assert_eq(strata_disk_remove(disk, &key), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().keys, 1, "its key record went too");
	cr_assert_eq(raw_counts().expiry, 1, "its expiry record went too");
}

Test(disk, clear_removes_everything)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	struct visits v = { 0 };
	char text[32];

	for (unsigned i = 0; i < 50; i++) {
		snprintf(text, sizeof(text), "GET /k%u\n", i);
		store_text(disk, text, "body", strata_wall_ms() + HOUR_MS);
	}
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).entries, 50);
	cr_assert_eq(strata_disk_clear(disk), 0);
	/* Queued after the clear: survives it. */
	store_text(disk, "GET /after\n", "late", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).entries, 1);
	expect_miss(disk, "GET /k7\n");
	expect_body(disk, "GET /after\n", "late");
	cr_assert_eq(strata_disk_scan_prefix(disk, "", 0, collect_cb, &v), 1);
	strata_disk_close(&disk);
}

Test(disk, replace_updates_value_and_indexes)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t now = strata_wall_ms();
	struct strata_entry *got = NULL;
	struct visits v = { 0 };

	store_text(disk, "GET /a\n", "old", now + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	store_text(disk, "GET /a\n", "new value", now + 2 * HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);

	expect_body(disk, "GET /a\n", "new value");
	cr_assert_eq(lookup_text(disk, "GET /a\n", now + HOUR_MS + 1, &got),
		     0, "the new expiry applies");
	strata_entry_release(&got);
	cr_assert_eq(stats_of(disk).entries, 1);
	cr_assert_eq(strata_disk_scan_prefix(disk, "GET /", 0, collect_cb, &v),
		     1, "listed once");
	cr_assert_str_eq(v.texts[0], "GET /a\n");
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().entries, 1);
	cr_assert_eq(raw_counts().keys, 1);
	cr_assert_eq(raw_counts().expiry, 1, "the old expiry record went");
}

/* --- prefix scans -------------------------------------------------------- */

Test(disk, scan_prefix_in_text_order_with_limit_and_stop)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	const char *const texts[] = { "GET /b/1\n", "GET /a/2\n", "GET /a\n",
				      "GET /a/10\n", "GET /a/1\n" };
	struct visits v = { 0 };
	struct strata_key key;

	for (size_t i = 0; i < 5; i++)
		store_text(disk, texts[i], "x", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);

	cr_assert_eq(strata_disk_scan_prefix(disk, "GET /a/", 0, collect_cb,
					     &v), 3);
	cr_assert_str_eq(v.texts[0], "GET /a/1\n");
	cr_assert_str_eq(v.texts[1], "GET /a/10\n");
	cr_assert_str_eq(v.texts[2], "GET /a/2\n");
	strata_key_hash("GET /a/10\n", 10, &key);
	cr_assert(strata_key_equal(&v.keys[1], &key), "with its hash");

	v = (struct visits){ 0 };
	cr_assert_eq(strata_disk_scan_prefix(disk, "GET /a/", 2, collect_cb,
					     &v), 2, "limit");
	cr_assert_str_eq(v.texts[1], "GET /a/10\n");

	v = (struct visits){ .stop_after = 1 };
	cr_assert_eq(strata_disk_scan_prefix(disk, "", 0, collect_cb, &v), 1,
		     "the callback stops it");
	cr_assert_str_eq(v.texts[0], "GET /a\n");

	v = (struct visits){ 0 };
	cr_assert_eq(strata_disk_scan_prefix(disk, "", 0, collect_cb, &v), 5);
	cr_assert_str_eq(v.texts[0], "GET /a\n");
	cr_assert_str_eq(v.texts[4], "GET /b/1\n");

	v = (struct visits){ 0 };
	cr_assert_eq(strata_disk_scan_prefix(disk, "GET /c", 0, collect_cb,
					     &v), 0);
	cr_assert_eq(strata_disk_scan_prefix(disk, "GET /b/1\n", 0, collect_cb,
					     &v), 1, "a whole text");
	strata_disk_close(&disk);
}

/* Texts longer than an LMDB key are stored, found, scanned and removed. */
Test(disk, long_key_texts)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	char a[640], b[640], prefix[640];
	struct visits v = { 0 };
	struct strata_key key;

	memset(a, 'x', sizeof(a));
	memcpy(a, "GET /", 5);
	a[600] = '\0';
	memcpy(b, a, sizeof(b));
	a[598] = '1';
	a[599] = '\n';
	b[598] = '2';
	b[599] = '\n';
	store_text(disk, a, "first", strata_wall_ms() + HOUR_MS);
	store_text(disk, b, "second", strata_wall_ms() + HOUR_MS);
	store_text(disk, "GET /short\n", "s", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_body(disk, a, "first");
	expect_body(disk, b, "second");

	memcpy(prefix, a, 599);
	prefix[599] = '\0';
	cr_assert_eq(strata_disk_scan_prefix(disk, prefix, 0, collect_cb, &v),
		     1, "a prefix past the indexed bytes");
	cr_assert_str_eq(v.texts[0], a, "the whole text");

	v = (struct visits){ 0 };
	cr_assert_eq(strata_disk_scan_prefix(disk, "GET /", 0, collect_cb, &v),
		     3);
	cr_assert_str_eq(v.texts[0], "GET /short\n");

	strata_key_hash(a, strlen(a), &key);
	cr_assert_eq(strata_disk_remove(disk, &key), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	v = (struct visits){ 0 };
	cr_assert_eq(strata_disk_scan_prefix(disk, "GET /x", 0, collect_cb, &v),
		     1);
	cr_assert_str_eq(v.texts[0], b);
	strata_disk_close(&disk);
}

/* --- expiry and size --------------------------------------------------------- */

static bool wait_for_entries(struct strata_disk *disk, uint64_t n)
{
	unsigned waited = 0, limit = (unsigned)(8000 * timeout_mult());

	while (stats_of(disk).entries != n && waited < limit) {
		sleep_ms(50);
		waited += 50;
	}
	return stats_of(disk).entries == n;
}

Test(disk, sweeper_removes_expired_entries)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t now = strata_wall_ms();
	char text[32];

	for (unsigned i = 0; i < 10; i++) {
		snprintf(text, sizeof(text), "GET /short/%u\n", i);
		store_text(disk, text, "soon gone", now + 200);
	}
	store_text(disk, "GET /long\n", "stays", now + HOUR_MS);
	/* Stored short-lived, then replaced: its old expiry record must not
	 * sweep the new entry away. */
	store_text(disk, "GET /replaced\n", "old", now + 100);
	cr_assert_eq(strata_disk_flush(disk), 0);
	store_text(disk, "GET /replaced\n", "new", now + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).entries, 12);

	cr_assert(wait_for_entries(disk, 2), "entries: %" PRIu64,
		  stats_of(disk).entries);
	cr_assert_eq(stats_of(disk).expired, 10);
	cr_assert_eq(stats_of(disk).evictions, 0);
	expect_body(disk, "GET /long\n", "stays");
	expect_body(disk, "GET /replaced\n", "new");
	strata_disk_close(&disk);
}

Test(disk, size_stays_bounded_under_a_flood)
{
	const uint64_t size = 2 * MIB, total = 20 * MIB;
	struct strata_disk *disk = open_tier(size);
	int64_t now = strata_wall_ms();
	static char body[4000];
	struct strata_disk_stats st;
	char text[32];
	unsigned n = (unsigned)(total / sizeof(body)), i;

	memset(body, 'b', sizeof(body) - 1);
	for (i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "GET /flood/%06u\n", i);
		/* Later entries expire later, so eviction takes the oldest. */
		store_text(disk, text, body, now + HOUR_MS + i);
		if (i % 256 == 255)
			cr_assert_eq(strata_disk_flush(disk), 0);
		st = stats_of(disk);
		cr_assert_leq(st.bytes_used, size, "at %u", i);
	}
	cr_assert_eq(strata_disk_flush(disk), 0);
	st = stats_of(disk);
	cr_log_info("flood: %u stores, %" PRIu64 " kept, %" PRIu64
		    " evicted, %" PRIu64 " dropped, %" PRIu64 " bytes used",
		    n, st.entries, st.evictions, st.dropped, st.bytes_used);
	cr_assert_gt(st.evictions, 0);
	cr_assert_leq(st.bytes_used, size);
	cr_assert_lt(st.entries, n);
	cr_assert_eq(st.stores, n - st.dropped);
	cr_assert_lt(st.dropped, n / 100, "dropped %" PRIu64, st.dropped);
	cr_assert_eq(st.entries + st.evictions, st.stores);
	for (i = n - 20; i < n; i++) {
		snprintf(text, sizeof(text), "GET /flood/%06u\n", i);
		expect_body(disk, text, body);
	}
	expect_miss(disk, "GET /flood/000000\n");
	strata_disk_close(&disk);
	/* Evictions took every index record with the entry. */
	cr_assert_eq(raw_counts().keys, st.entries);
	cr_assert_eq(raw_counts().expiry, st.entries);
}

Test(disk, entry_over_a_quarter_of_the_map_is_not_stored)
{
	const uint64_t size = 2 * MIB;
	struct strata_disk *disk = open_tier(size);
	size_t big = size / 4 + 1;
	char *body = malloc(big);
	struct strata_entry *e;

	memset(body, 'z', big);
	e = entry_of("GET /big\n", body, big, strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_store(disk, e), 0);
	strata_entry_release(&e);
	e = entry_of("GET /fits\n", body, size / 8, strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_store(disk, e), 0);
	strata_entry_release(&e);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_miss(disk, "GET /big\n");
	cr_assert_eq(lookup_text(disk, "GET /fits\n", strata_wall_ms(), &e), 0);
	cr_assert_eq(e->body_len, size / 8);
	strata_entry_release(&e);
	cr_assert_eq(stats_of(disk).dropped, 1);
	cr_assert_eq(stats_of(disk).stores, 1);
	free(body);
	strata_disk_close(&disk);
}

/* entry.h: an entry whose key is not its text's hash (a pass-through
 * answer) must not reach the disk; if it does, it is not stored. */
Test(disk, entry_not_keyed_by_its_text_is_not_stored)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	struct strata_headers headers = { 0 };
	struct strata_key placeholder = { { 0 } };
	struct strata_entry_params p = {
		.key = &placeholder, .key_text = "GET /p\n", .key_len = 7,
		.status = 200, .created = strata_wall_ms(),
		.expires = strata_wall_ms() + HOUR_MS, .headers = &headers,
	};
	struct strata_entry *e = NULL, *got = NULL;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	cr_assert_eq(strata_disk_store(disk, e), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).dropped, 1);
	cr_assert_eq(stats_of(disk).entries, 0);
	cr_assert_eq(strata_disk_lookup(disk, &placeholder, "GET /p\n", 7,
					strata_wall_ms(), &got),
		     STRATA_EMISS);
	cr_assert_eq(stats_of(disk).corrupt, 0);
	strata_entry_release(&e);
	strata_disk_close(&disk);
}

Test(disk, full_queue_drops_and_counts)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;
	struct strata_key key;
	uint64_t refused = 0;
	unsigned i;
	char text[32];
	int rc;

	cfg.queue_limit = 4;
	cfg.sync = STRATA_DISK_SYNC_FULL; /* a slow writer */
	cr_assert_eq(strata_disk_open(&cfg, &disk), 0);
	for (i = 0; i < 20000 && refused < 10; i++) {
		snprintf(text, sizeof(text), "GET /q/%u\n", i);
		struct strata_entry *e = entry_of(text, "x", 1,
						  strata_wall_ms() + HOUR_MS);
		rc = strata_disk_store(disk, e);
		cr_assert(rc == 0 || rc == STRATA_EUNAVAIL, "rc %d", rc);
		refused += rc == STRATA_EUNAVAIL;
		cr_assert_eq(atomic_load(&e->refcnt), rc == 0 ? 2u : 1u,
			     "a dropped store keeps no reference");
		strata_entry_release(&e);
	}
	cr_assert_gt(refused, 0, "a queue of 4 must overflow");
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).dropped, refused);
	cr_assert_eq(stats_of(disk).stores, i - refused);
	cr_assert_eq(stats_of(disk).entries, i - refused);
	/* Removals and clears are refused the same way, never waited for. */
	strata_key_hash("GET /q/0\n", 9, &key);
	for (i = 0; i < 100000; i++) {
		rc = strata_disk_remove(disk, &key);
		if (rc == STRATA_EUNAVAIL)
			break;
	}
	cr_assert_eq(rc, STRATA_EUNAVAIL);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);
}

/* --- persistence, corruption, paths ---------------------------------------- */

Test(disk, reopen_keeps_entries)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	char text[32];
	uint64_t t0;

	for (unsigned i = 0; i < 200; i++) {
		snprintf(text, sizeof(text), "GET /keep/%u\n", i);
		store_text(disk, text, text, strata_wall_ms() + HOUR_MS);
	}
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);

	t0 = strata_now_ms();
	disk = open_tier(4 * MIB);
	/* Counted from LMDB's tree headers, not by a scan at open. */
	cr_assert_eq(stats_of(disk).entries, 200);
	cr_assert_lt(strata_now_ms() - t0, 2000 * timeout_mult());
	for (unsigned i = 0; i < 200; i++) {
		snprintf(text, sizeof(text), "GET /keep/%u\n", i);
		expect_body(disk, text, text);
	}
	cr_assert_eq(count_corrupt_dirs(), 0);
	strata_disk_close(&disk);
}

Test(disk, format_version_mismatch_moves_aside)
{
	struct strata_disk *disk = open_tier(4 * MIB);

	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);
	set_format_version(2);

	disk = open_tier(4 * MIB);
	cr_assert_eq(count_corrupt_dirs(), 1);
	cr_assert_eq(stats_of(disk).entries, 0, "a fresh tier");
	expect_miss(disk, "GET /a\n");
	store_text(disk, "GET /b\n", "beta", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_body(disk, "GET /b\n", "beta");
	strata_disk_close(&disk);
}

Test(disk, format_version_mismatch_fails_when_told_to)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = open_tier(4 * MIB);

	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);
	set_format_version(7);

	cfg.on_corrupt = STRATA_DISK_CORRUPT_FAIL;
	cr_assert_eq(strata_disk_open(&cfg, &disk), STRATA_ECORRUPT);
	cr_assert_null(disk);
	cr_assert_eq(count_corrupt_dirs(), 0, "left where it was");
	/* Put right, it opens with its entries. */
	set_format_version(1);
	cr_assert_eq(strata_disk_open(&cfg, &disk), 0);
	expect_body(disk, "GET /a\n", "alpha");
	strata_disk_close(&disk);
}

static void garbage_data_file(size_t len)
{
	uint8_t *junk = malloc(len);
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		junk[i] = (uint8_t)x;
	}
	cr_assert_eq(mkdir(tier_path, 0700), 0);
	write_file("data.mdb", junk, len);
	free(junk);
}

Test(disk, garbage_data_file_is_moved_aside)
{
	struct strata_disk *disk;

	garbage_data_file(64 * 1024);
	disk = open_tier(4 * MIB);
	cr_assert_eq(count_corrupt_dirs(), 1);
	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_body(disk, "GET /a\n", "alpha");
	strata_disk_close(&disk);
}

Test(disk, garbage_data_file_fails_when_told_to)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;

	garbage_data_file(100); /* shorter than a page, too */
	cfg.on_corrupt = STRATA_DISK_CORRUPT_FAIL;
	cr_assert_eq(strata_disk_open(&cfg, &disk), STRATA_ECORRUPT);
	cr_assert_null(disk);
	cr_assert_eq(count_corrupt_dirs(), 0);
}

/* A data file cut short would SIGBUS the first read past its end. */
Test(disk, truncated_data_file_is_corrupt_not_a_crash)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = open_tier(4 * MIB);
	static char body[3000];
	char text[32], file[200];

	memset(body, 'q', sizeof(body) - 1);
	for (unsigned i = 0; i < 200; i++) {
		snprintf(text, sizeof(text), "GET /t/%u\n", i);
		store_text(disk, text, body, strata_wall_ms() + HOUR_MS);
	}
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);
	snprintf(file, sizeof(file), "%s/data.mdb", tier_path);
	cr_assert_eq(truncate(file, 64 * 1024), 0);

	cfg.on_corrupt = STRATA_DISK_CORRUPT_FAIL;
	cr_assert_eq(strata_disk_open(&cfg, &disk), STRATA_ECORRUPT);
	cfg.on_corrupt = STRATA_DISK_CORRUPT_MOVE;
	cr_assert_eq(strata_disk_open(&cfg, &disk), 0);
	cr_assert_eq(count_corrupt_dirs(), 1);
	expect_miss(disk, "GET /t/1\n");
	strata_disk_close(&disk);
}

/* A stored value that fails decoding: a miss, counted, then removed. */
Test(disk, corrupt_stored_entry_is_a_counted_miss_and_removed)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	struct strata_key key;
	struct visits v = { 0 };
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, d;

	store_text(disk, "GET /bad\n", "soon garbage",
		   strata_wall_ms() + HOUR_MS);
	store_text(disk, "GET /good\n", "fine", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);

	strata_key_hash("GET /bad\n", 9, &key);
	k = (MDB_val){ sizeof(key.hash), key.hash };
	d = (MDB_val){ 14, "not an entry.." };
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 4 * MIB), 0);
	cr_assert_eq(mdb_env_open(env, tier_path, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
	cr_assert_eq(mdb_put(txn, dbi, &k, &d, 0), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	disk = open_tier(4 * MIB);
	expect_miss(disk, "GET /bad\n");
	cr_assert_eq(stats_of(disk).corrupt, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).entries, 1, "queued for removal");
	cr_assert_eq(stats_of(disk).corrupt, 1, "counted once");
	expect_body(disk, "GET /good\n", "fine");
	cr_assert_eq(strata_disk_scan_prefix(disk, "", 0, collect_cb, &v), 1,
		     "its leftover key record is not listed");
	cr_assert_str_eq(v.texts[0], "GET /good\n");
	strata_disk_close(&disk);
}

Test(disk, unusable_paths_are_negative_errno)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;
	char file[160];
	int fd, rc;

	cfg.path = "/proc/strata-test/tier";
	rc = strata_disk_open(&cfg, &disk);
	cr_assert(rc < 0 && rc > -4096, "rc %d", rc);
	cr_assert_null(disk);

	snprintf(file, sizeof(file), "%s/a-file", tmpdir);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cfg.path = file;
	cr_assert_eq(strata_disk_open(&cfg, &disk), -ENOTDIR);
	snprintf(file, sizeof(file), "%s/a-file/below", tmpdir);
	cr_assert_eq(strata_disk_open(&cfg, &disk), -ENOTDIR);
	cr_assert_null(disk);
}

Test(disk, bad_config_is_einval)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;

	cfg.size = STRATA_DISK_MIN_SIZE - 1;
	cr_assert_eq(strata_disk_open(&cfg, &disk), -EINVAL);
	cfg = config_for(4 * MIB);
	cfg.queue_limit = 0;
	cr_assert_eq(strata_disk_open(&cfg, &disk), -EINVAL);
	cfg = config_for(4 * MIB);
	cfg.path = "";
	cr_assert_eq(strata_disk_open(&cfg, &disk), -EINVAL);
	cr_assert_null(disk);
}

Test(disk, creates_missing_parents)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;
	char deep[200];
	struct stat st;

	snprintf(deep, sizeof(deep), "%s/tier/a/b/c/", tier_path);
	cfg.path = deep;
	cr_assert_eq(strata_disk_open(&cfg, &disk), 0);
	cr_assert_eq(stat(deep, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	strata_disk_close(&disk);
}

/* --- sharing ------------------------------------------------------------------ */

/* In the child: no Criterion asserts, an exit code per failure. */
static int child_uses_the_same_path(void)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;
	struct strata_entry *e = NULL;
	int rc = 0;

	if (strata_disk_open(&cfg, &disk) != 0)
		return 10;
	if (lookup_text(disk, "GET /parent\n", strata_wall_ms(), &e) != 0)
		rc = 11;
	else if (e->body_len != 6 || memcmp(e->body, "parent", 6))
		rc = 12;
	strata_entry_release(&e);
	if (rc == 0) {
		struct strata_headers h = { 0 };
		struct strata_entry_params p = {
			.key_text = "GET /child\n", .key_len = 11,
			.status = 200, .created = strata_wall_ms(),
			.expires = strata_wall_ms() + HOUR_MS, .headers = &h,
			.body = "child", .body_len = 5,
		};
		if (strata_headers_add(&h, "Content-Type", "text/plain") ||
		    strata_entry_new(&p, &e) != 0 ||
		    strata_disk_store(disk, e) != 0 ||
		    strata_disk_flush(disk) != 0)
			rc = 13;
		strata_entry_release(&e);
		strata_headers_clear(&h);
	}
	strata_disk_close(&disk);
	return rc;
}

Test(disk, two_processes_share_one_path)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int status = -1;
	pid_t pid;

	store_text(disk, "GET /parent\n", "parent", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	/* The child opens its own environment on the same files, as a second
	 * strata process would (it must not use the parent's). */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(child_uses_the_same_path());
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child status %d", status);

	expect_body(disk, "GET /child\n", "child");
	cr_assert_eq(stats_of(disk).entries, 2);
	/* The parent still writes after the child's commits. */
	store_text(disk, "GET /parent2\n", "again", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_body(disk, "GET /parent2\n", "again");
	strata_disk_close(&disk);
}

/* --- reader threads and close ------------------------------------------------ */

struct reader_thread {
	struct strata_disk *disk;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool looked_up, may_exit;
};

static void *reader_main(void *arg)
{
	struct reader_thread *t = arg;

	expect_body(t->disk, "GET /a\n", "alpha");
	pthread_mutex_lock(&t->lock);
	t->looked_up = true;
	pthread_cond_broadcast(&t->cv);
	while (!t->may_exit)
		pthread_cond_wait(&t->cv, &t->lock);
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/*
 * One thread exits while the tier is open (its exit aborts its read
 * transaction), one only after close() (close aborted it; its exit must
 * not touch the closed environment).  Then a new tier, possibly at the
 * same address, must not be confused with the closed one.
 */
Test(disk, reader_threads_exit_before_and_after_close)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	struct reader_thread t[2];
	pthread_t tid[2];

	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	for (int i = 0; i < 2; i++) {
		t[i] = (struct reader_thread){ .disk = disk };
		pthread_mutex_init(&t[i].lock, NULL);
		pthread_cond_init(&t[i].cv, NULL);
		cr_assert_eq(pthread_create(&tid[i], NULL, reader_main, &t[i]),
			     0);
		pthread_mutex_lock(&t[i].lock);
		while (!t[i].looked_up)
			pthread_cond_wait(&t[i].cv, &t[i].lock);
		pthread_mutex_unlock(&t[i].lock);
	}
	expect_body(disk, "GET /a\n", "alpha"); /* this thread's reader too */

	pthread_mutex_lock(&t[0].lock);
	t[0].may_exit = true;
	pthread_cond_broadcast(&t[0].cv);
	pthread_mutex_unlock(&t[0].lock);
	pthread_join(tid[0], NULL);

	strata_disk_close(&disk);
	pthread_mutex_lock(&t[1].lock);
	t[1].may_exit = true;
	pthread_cond_broadcast(&t[1].cv);
	pthread_mutex_unlock(&t[1].lock);
	pthread_join(tid[1], NULL);

	for (int round = 0; round < 3; round++) {
		disk = open_tier(4 * MIB);
		expect_body(disk, "GET /a\n", "alpha");
		strata_disk_close(&disk);
	}
	for (int i = 0; i < 2; i++) {
		pthread_cond_destroy(&t[i].cv);
		pthread_mutex_destroy(&t[i].lock);
	}
}
