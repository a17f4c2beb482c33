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

static struct strata_entry *entry_tagged(const char *text, const char *body,
					 size_t body_len, int64_t expires,
					 const char *const *tags,
					 size_t n_tags)
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
		.tags = tags,
		.n_tags = n_tags,
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

static struct strata_entry *entry_of(const char *text, const char *body,
				     size_t body_len, int64_t expires)
{
	return entry_tagged(text, body, body_len, expires, NULL, 0);
}

static void store_tagged(struct strata_disk *disk, const char *text,
			 const char *body, int64_t expires,
			 const char *const *tags, size_t n_tags)
{
	struct strata_entry *e = entry_tagged(text, body, strlen(body),
					      expires, tags, n_tags);

	cr_assert_eq(strata_disk_store(disk, e), 0);
	strata_entry_release(&e);
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

/* A tag scan's visits: hashes only. */
struct tag_visits {
	struct strata_key keys[64];
	size_t n;
	size_t stop_after; /* 0: never */
};

static int tag_collect_cb(void *arg, const char *text, size_t len,
			  const struct strata_key *key)
{
	struct tag_visits *v = arg;

	cr_assert_null(text, "a tag scan passes no key text");
	cr_assert_eq(len, 0);
	cr_assert_lt(v->n, 64);
	v->keys[v->n++] = *key;
	return v->stop_after && v->n >= v->stop_after;
}

static int count_cb(void *arg, const char *text, size_t len,
		    const struct strata_key *key)
{
	(void)arg;
	(void)text;
	(void)len;
	(void)key;
	return 0;
}

/* Whether a tag scan visited the entry of `text`. */
static bool tag_visited(const struct tag_visits *v, const char *text)
{
	struct strata_key key;

	strata_key_hash(text, strlen(text), &key);
	for (size_t i = 0; i < v->n; i++)
		if (strata_key_equal(&v->keys[i], &key))
			return true;
	return false;
}

/* The entries a scan of `tag` visits: exactly `texts` (n of them). */
static void expect_tag(struct strata_disk *disk, const char *tag,
		       const char *const *texts, size_t n)
{
	struct tag_visits v = { 0 };

	cr_assert_eq(strata_disk_scan_tag(disk, tag, 0, tag_collect_cb, &v),
		     (long)n, "tag \"%.40s\": %zu visited, %zu expected", tag,
		     v.n, n);
	for (size_t i = 0; i < n; i++)
		cr_assert(tag_visited(&v, texts[i]), "tag \"%.40s\" lists %s",
			  tag, texts[i]);
	for (size_t i = 1; i < v.n; i++)
		cr_assert_lt(memcmp(v.keys[i - 1].hash, v.keys[i].hash,
				    STRATA_KEY_HASH_LEN),
			     0, "in hash order, each once");
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
	cr_assert_eq(mdb_env_set_maxdbs(env, 5), 0);
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
	size_t entries, keys, expiry, tags;
};

static struct raw_counts raw_counts(void)
{
	const char *const names[] = { "entries", "keys", "expiry", "tags" };
	size_t n[4];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;

	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 5), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 4 * MIB), 0);
	cr_assert_eq(mdb_env_open(env, tier_path, MDB_RDONLY, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(mdb_dbi_open(txn, names[i], 0, &dbi), 0);
		cr_assert_eq(mdb_stat(txn, dbi, &st), 0);
		n[i] = st.ms_entries;
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return (struct raw_counts){ n[0], n[1], n[2], n[3] };
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
	char text[32], tag[16];
	const char *tags[2] = { "flood", tag };
	unsigned n = (unsigned)(total / sizeof(body)), i;

	memset(body, 'b', sizeof(body) - 1);
	for (i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "GET /flood/%06u\n", i);
		snprintf(tag, sizeof(tag), "group-%u", i % 8);
		/* Later entries expire later, so eviction takes the oldest. */
		store_tagged(disk, text, body, now + HOUR_MS + i, tags, 2);
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
	cr_assert_eq(strata_disk_scan_tag(disk, "flood", 0, count_cb, NULL),
		     (long)st.entries, "the evicted are not listed");
	strata_disk_close(&disk);
	/* Evictions took every index record with the entry. */
	cr_assert_eq(raw_counts().keys, st.entries);
	cr_assert_eq(raw_counts().expiry, st.entries);
	cr_assert_eq(raw_counts().tags, 2 * st.entries);
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
	set_format_version(3); /* a newer Strata's */

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
	set_format_version(2);
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
	cr_assert_eq(mdb_env_set_maxdbs(env, 5), 0);
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

/* --- the tag index ------------------------------------------------------------ */

/* A scan callback that removes what it is shown: a purge by tag. */
static int remove_visited_cb(void *arg, const char *text, size_t len,
			     const struct strata_key *key)
{
	(void)text;
	(void)len;
	cr_assert_eq(strata_disk_remove(arg, key), 0);
	return 0;
}

Test(disk, scan_tag_lists_the_entries_carrying_it)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t expires = strata_wall_ms() + HOUR_MS;
	static const char *const red[] = { "red" };
	static const char *const red_blue_red[] = { "red", "blue", "red" };
	static const char *const blue[] = { "blue" };
	static const char *const near_red[] = { "redd", "re", "" };
	const char *const a_b[] = { "GET /a\n", "GET /b\n" };
	const char *const b_c[] = { "GET /b\n", "GET /c\n" };
	const char *const d[] = { "GET /d\n" };
	struct tag_visits v = { 0 };

	store_tagged(disk, "GET /a\n", "a", expires, red, 1);
	store_tagged(disk, "GET /b\n", "b", expires, red_blue_red, 3);
	store_tagged(disk, "GET /c\n", "c", expires, blue, 1);
	store_tagged(disk, "GET /d\n", "d", expires, near_red, 3);
	store_text(disk, "GET /e\n", "untagged", expires);
	cr_assert_eq(strata_disk_flush(disk), 0);

	expect_tag(disk, "red", a_b, 2);
	expect_tag(disk, "blue", b_c, 2);
	expect_tag(disk, "redd", d, 1);
	expect_tag(disk, "re", d, 1);
	expect_tag(disk, "", d, 1);
	expect_tag(disk, "r", NULL, 0);
	expect_tag(disk, "red ", NULL, 0);
	expect_tag(disk, "green", NULL, 0);

	cr_assert_eq(strata_disk_scan_tag(disk, "red", 1, tag_collect_cb, &v),
		     1, "limit");
	v = (struct tag_visits){ .stop_after = 1 };
	cr_assert_eq(strata_disk_scan_tag(disk, "blue", 0, tag_collect_cb, &v),
		     1, "the callback stops it");

	/* A purge by tag: the callback may queue removals. */
	cr_assert_eq(strata_disk_scan_tag(disk, "red", 0, remove_visited_cb,
					  disk), 2);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_miss(disk, "GET /a\n");
	expect_miss(disk, "GET /b\n");
	expect_body(disk, "GET /c\n", "c");
	expect_tag(disk, "red", NULL, 0);
	expect_tag(disk, "blue", b_c + 1, 1);
	strata_disk_close(&disk);
	/* c: blue; d: redd, re, "". */
	cr_assert_eq(raw_counts().tags, 4);
}

Test(disk, tag_records_go_with_remove_and_clear)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t expires = strata_wall_ms() + HOUR_MS;
	static const char *const tags[] = { "t1", "t2" };
	const char *const b[] = { "GET /b\n" };
	struct strata_key key;
	char text[32];

	store_tagged(disk, "GET /a\n", "a", expires, tags, 2);
	store_tagged(disk, "GET /b\n", "b", expires, tags, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_key_hash("GET /a\n", 7, &key);
	cr_assert_eq(strata_disk_remove(disk, &key), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_tag(disk, "t1", b, 1);
	expect_tag(disk, "t2", NULL, 0);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().tags, 1, "a's records went with it");

	disk = open_tier(4 * MIB);
	for (unsigned i = 0; i < 50; i++) {
		snprintf(text, sizeof(text), "GET /k%u\n", i);
		store_tagged(disk, text, "body", expires, tags, 2);
	}
	cr_assert_eq(strata_disk_clear(disk), 0);
	/* Queued after the clear: survives it, with its records. */
	store_tagged(disk, "GET /after\n", "late", expires, tags + 1, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_tag(disk, "t1", NULL, 0);
	expect_tag(disk, "t2", (const char *const[]){ "GET /after\n" }, 1);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().tags, 1);
}

Test(disk, replacement_with_other_tags_moves_its_tag_records)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t expires = strata_wall_ms() + HOUR_MS;
	static const char *const x_y[] = { "x", "y" };
	static const char *const y_z[] = { "y", "z" };
	static const char *const w[] = { "w" };
	const char *const a[] = { "GET /a\n" };

	store_tagged(disk, "GET /a\n", "old", expires, x_y, 2);
	cr_assert_eq(strata_disk_flush(disk), 0);
	store_tagged(disk, "GET /a\n", "new", expires, y_z, 2);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_body(disk, "GET /a\n", "new");
	expect_tag(disk, "x", NULL, 0);
	expect_tag(disk, "y", a, 1);
	expect_tag(disk, "z", a, 1);

	/* Replaced within one batch: the second put finds the first one
	 * uncommitted in the same transaction. */
	store_tagged(disk, "GET /a\n", "one", expires, x_y, 2);
	store_tagged(disk, "GET /a\n", "two", expires, w, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_body(disk, "GET /a\n", "two");
	expect_tag(disk, "x", NULL, 0);
	expect_tag(disk, "y", NULL, 0);
	expect_tag(disk, "z", NULL, 0);
	expect_tag(disk, "w", a, 1);

	/* And untagged at last. */
	store_text(disk, "GET /a\n", "bare", expires);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_tag(disk, "w", NULL, 0);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().tags, 0);
	cr_assert_eq(raw_counts().entries, 1);
}

Test(disk, sweeper_removes_tag_records)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t now = strata_wall_ms();
	static const char *const short_all[] = { "short", "all" };
	static const char *const all[] = { "all" };
	const char *const stays[] = { "GET /long\n" };
	char text[32];

	for (unsigned i = 0; i < 10; i++) {
		snprintf(text, sizeof(text), "GET /short/%u\n", i);
		store_tagged(disk, text, "soon gone", now + 200, short_all, 2);
	}
	store_tagged(disk, "GET /long\n", "stays", now + HOUR_MS, all, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(strata_disk_scan_tag(disk, "all", 0, count_cb, NULL), 11);

	cr_assert(wait_for_entries(disk, 1), "entries: %" PRIu64,
		  stats_of(disk).entries);
	cr_assert_eq(stats_of(disk).expired, 10);
	expect_tag(disk, "short", NULL, 0);
	expect_tag(disk, "all", stays, 1);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().tags, 1);
}

Test(disk, tag_index_survives_reopen)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	static const char *const even[] = { "even" };
	static const char *const odd[] = { "odd" };
	char odd_text[10][32], text[32];
	const char *odd_texts[10];
	struct strata_key key;

	for (unsigned i = 0; i < 20; i++) {
		snprintf(text, sizeof(text), "GET /n/%u\n", i);
		store_tagged(disk, text, "n", strata_wall_ms() + HOUR_MS,
			     i % 2 ? odd : even, 1);
		if (i % 2) {
			memcpy(odd_text[i / 2], text, sizeof(text));
			odd_texts[i / 2] = odd_text[i / 2];
		}
	}
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);

	disk = open_tier(4 * MIB);
	expect_tag(disk, "odd", odd_texts, 10);
	cr_assert_eq(strata_disk_scan_tag(disk, "even", 0, count_cb, NULL), 10);
	strata_key_hash(odd_texts[0], strlen(odd_texts[0]), &key);
	cr_assert_eq(strata_disk_remove(disk, &key), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_tag(disk, "odd", odd_texts + 1, 9);
	cr_assert_eq(count_corrupt_dirs(), 0);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().tags, 19);
}

/* Tags longer than an LMDB key allows: indexed by a prefix and their
 * hash, and never confused with each other or with a short tag equal to
 * their prefix. */
Test(disk, long_tags)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	int64_t expires = strata_wall_ms() + HOUR_MS;
	static char a[601], b[601], c[479], d[495], e[496];
	const char *x_tags[] = { a, c }, *y_tags[] = { b, d },
		   *z_tags[] = { a, b };
	const char *const x_z[] = { "GET /x\n", "GET /z\n" };
	const char *const y_z[] = { "GET /y\n", "GET /z\n" };

	memset(a, 'q', 600);
	memcpy(b, a, sizeof(b));
	a[599] = '1';
	b[599] = '2';
	memcpy(c, a, 478);          /* a's first 478 bytes: the long part */
	memcpy(d, a, 494);          /* the longest tag stored whole */
	memcpy(e, a, 495);          /* the shortest stored by prefix */
	store_tagged(disk, "GET /x\n", "x", expires, x_tags, 2);
	store_tagged(disk, "GET /y\n", "y", expires, y_tags, 2);
	store_tagged(disk, "GET /z\n", "z", expires, z_tags, 2);
	cr_assert_eq(strata_disk_flush(disk), 0);

	expect_tag(disk, a, x_z, 2);
	expect_tag(disk, b, y_z, 2);
	expect_tag(disk, c, x_z, 1);
	expect_tag(disk, d, y_z, 1);
	expect_tag(disk, e, NULL, 0);

	store_tagged(disk, "GET /w\n", "w", expires,
		     (const char *const[]){ e }, 1);
	cr_assert_eq(strata_disk_scan_tag(disk, a, 0, remove_visited_cb, disk),
		     2);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_tag(disk, a, NULL, 0);
	expect_tag(disk, b, (const char *const[]){ "GET /y\n" }, 1);
	expect_tag(disk, e, (const char *const[]){ "GET /w\n" }, 1);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().tags, 3, "y: b, d; w: e");
}

/* Overwrite the stored value of `text` with bytes that fail decoding. */
static void corrupt_stored_value(const char *text)
{
	struct strata_key key;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, d;

	strata_key_hash(text, strlen(text), &key);
	k = (MDB_val){ sizeof(key.hash), key.hash };
	d = (MDB_val){ 14, "not an entry.." };
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 5), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 4 * MIB), 0);
	cr_assert_eq(mdb_env_open(env, tier_path, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
	cr_assert_eq(mdb_put(txn, dbi, &k, &d, 0), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* disk.h: a value that fails decoding cannot name its tags; its records
 * stay but are not listed while its hash is absent. */
Test(disk, tag_records_of_a_corrupt_entry_are_skipped)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	static const char *const t[] = { "t" };
	const char *const good[] = { "GET /good\n" };

	store_tagged(disk, "GET /bad\n", "soon garbage",
		     strata_wall_ms() + HOUR_MS, t, 1);
	store_tagged(disk, "GET /good\n", "fine", strata_wall_ms() + HOUR_MS,
		     t, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);
	corrupt_stored_value("GET /bad\n");

	disk = open_tier(4 * MIB);
	expect_miss(disk, "GET /bad\n");
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).entries, 1, "removed as corrupt");
	expect_tag(disk, "t", good, 1);
	/* Stored again with the same tag: its record is simply rewritten. */
	store_tagged(disk, "GET /bad\n", "good again",
		     strata_wall_ms() + HOUR_MS, t, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_tag(disk, "t",
		   (const char *const[]){ "GET /bad\n", "GET /good\n" }, 2);
	strata_disk_close(&disk);
	cr_assert_eq(raw_counts().tags, 2);
}

/* --- meta records ----------------------------------------------------------- */

static void expect_meta(struct strata_disk *disk, const char *name,
			const char *value)
{
	char buf[STRATA_DISK_META_VALUE_MAX];
	size_t len = 12345;

	cr_assert_eq(strata_disk_meta_get(disk, name, buf, sizeof(buf), &len),
		     0, "%s", name);
	cr_assert_eq(len, strlen(value), "%s", name);
	cr_assert(memcmp(buf, value, len) == 0, "%s", name);
}

Test(disk, meta_put_get_round_trip_and_reopen)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	char buf[64];
	size_t len = 99;

	cr_assert_eq(strata_disk_meta_get(disk, "redis.purge_id", buf,
					  sizeof(buf), &len),
		     STRATA_EMISS, "absent");
	cr_assert_eq(len, 0);

	cr_assert_eq(strata_disk_meta_put(disk, "redis.purge_id",
					  "1700000000000-0", 15), 0);
	cr_assert_eq(strata_disk_meta_put(disk, "test.empty", NULL, 0), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_meta(disk, "redis.purge_id", "1700000000000-0");
	expect_meta(disk, "test.empty", "");
	cr_assert_eq(strata_disk_meta_put(disk, "redis.purge_id",
					  "1700000000001-7", 15), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_meta(disk, "redis.purge_id", "1700000000001-7");

	/* A clear removes entries, not meta records. */
	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_clear(disk), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	cr_assert_eq(stats_of(disk).entries, 0);
	expect_meta(disk, "redis.purge_id", "1700000000001-7");
	strata_disk_close(&disk);

	disk = open_tier(4 * MIB);
	expect_meta(disk, "redis.purge_id", "1700000000001-7");
	expect_meta(disk, "test.empty", "");
	cr_assert_eq(count_corrupt_dirs(), 0);
	strata_disk_close(&disk);
}

Test(disk, meta_get_reports_the_size_needed)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	char buf[16];
	size_t len = 0;

	cr_assert_eq(strata_disk_meta_put(disk, "test.ten", "0123456789", 10),
		     0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	memset(buf, '#', sizeof(buf));
	cr_assert_eq(strata_disk_meta_get(disk, "test.ten", buf, 4, &len),
		     -ENOSPC);
	cr_assert_eq(len, 10, "the size needed");
	cr_assert_eq(buf[0], '#', "nothing copied");
	cr_assert_eq(strata_disk_meta_get(disk, "test.ten", NULL, 0, &len),
		     -ENOSPC, "a size query");
	cr_assert_eq(len, 10);
	cr_assert_eq(strata_disk_meta_get(disk, "test.ten", buf, 10, &len), 0,
		     "exactly enough");
	cr_assert_eq(len, 10);
	cr_assert(memcmp(buf, "0123456789", 10) == 0);
	cr_assert_eq(strata_disk_meta_get(disk, "test.ten", buf, 10, NULL), 0,
		     "len is optional");
	strata_disk_close(&disk);
}

Test(disk, meta_names_and_values_are_checked)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	static char big[STRATA_DISK_META_VALUE_MAX + 1];
	char name[STRATA_DISK_META_NAME_MAX + 2], buf[8];
	const char *const bad[] = { "strata-disk", "reclaimed-at", "",
				    "has space", "tab\there", "caf\xc3\xa9",
				    "new\nline" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(strata_disk_meta_put(disk, bad[i], "v", 1),
			     -EINVAL, "put %zu", i);
		cr_assert_eq(strata_disk_meta_get(disk, bad[i], buf,
						  sizeof(buf), NULL),
			     -EINVAL, "get %zu", i);
	}
	cr_assert_eq(strata_disk_meta_put(disk, NULL, "v", 1), -EINVAL);
	cr_assert_eq(strata_disk_meta_put(disk, "test.v", NULL, 1), -EINVAL);
	cr_assert_eq(strata_disk_meta_put(disk, "test.v", big, sizeof(big)),
		     -EINVAL, "value too long");
	cr_assert_eq(strata_disk_meta_put(disk, "test.v", big, sizeof(big) - 1),
		     0, "the longest value");

	memset(name, 'n', sizeof(name));
	name[STRATA_DISK_META_NAME_MAX + 1] = '\0';
	cr_assert_eq(strata_disk_meta_put(disk, name, "v", 1), -EINVAL,
		     "name too long");
	name[STRATA_DISK_META_NAME_MAX] = '\0';
	cr_assert_eq(strata_disk_meta_put(disk, name, "v", 1), 0,
		     "the longest name");
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_meta(disk, name, "v");
	strata_disk_close(&disk);
	/* The tier's own records were not touched. */
	disk = open_tier(4 * MIB);
	cr_assert_eq(count_corrupt_dirs(), 0);
	strata_disk_close(&disk);
}

/* The guarantee in disk.h: a put commits with or after the removals
 * queued before it.  Without a flush, as soon as the record is visible
 * the removals must be too (a lookup after the meta read starts from a
 * snapshot at least as new). */
Test(disk, meta_put_commits_with_or_after_removals_queued_before_it)
{
	struct strata_disk *disk = open_tier(4 * MIB);
	unsigned limit = (unsigned)(5000 * timeout_mult());
	char text[32], value[16], buf[16];
	struct strata_key key;
	size_t len;

	/* The simple form: remove, put, flush: both visible. */
	store_text(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_key_hash("GET /a\n", 7, &key);
	cr_assert_eq(strata_disk_remove(disk, &key), 0);
	cr_assert_eq(strata_disk_meta_put(disk, "test.purged", "a", 1), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_miss(disk, "GET /a\n");
	expect_meta(disk, "test.purged", "a");

	for (unsigned round = 0; round < 50; round++) {
		for (unsigned i = 0; i < 20; i++) {
			snprintf(text, sizeof(text), "GET /r%u/%u\n", round, i);
			store_text(disk, text, "x", strata_wall_ms() + HOUR_MS);
		}
		cr_assert_eq(strata_disk_flush(disk), 0);
		for (unsigned i = 0; i < 20; i++) {
			snprintf(text, sizeof(text), "GET /r%u/%u\n", round, i);
			strata_key_hash(text, strlen(text), &key);
			cr_assert_eq(strata_disk_remove(disk, &key), 0);
		}
		snprintf(value, sizeof(value), "%u", round);
		cr_assert_eq(strata_disk_meta_put(disk, "test.round", value,
						  strlen(value)), 0);
		for (unsigned waited = 0;; waited++) {
			len = 0;
			if (strata_disk_meta_get(disk, "test.round", buf,
						 sizeof(buf), &len) == 0 &&
			    len == strlen(value) && !memcmp(buf, value, len))
				break;
			cr_assert_lt(waited, limit, "round %u never committed",
				     round);
			sleep_ms(1);
		}
		for (unsigned i = 0; i < 20; i++) {
			snprintf(text, sizeof(text), "GET /r%u/%u\n", round, i);
			expect_miss(disk, text);
		}
	}
	cr_assert_eq(stats_of(disk).entries, 0);
	strata_disk_close(&disk);
}

Test(disk, meta_put_refused_when_the_queue_is_full_never_dropped)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;
	uint64_t refused = 0, dropped;
	unsigned i, last_ok = 0;
	char value[16];
	int rc;

	cfg.queue_limit = 4;
	cfg.sync = STRATA_DISK_SYNC_FULL; /* a slow writer */
	cr_assert_eq(strata_disk_open(&cfg, &disk), 0);
	for (i = 1; i <= 200000 && refused < 10; i++) {
		snprintf(value, sizeof(value), "%u", i);
		rc = strata_disk_meta_put(disk, "test.seq", value,
					  strlen(value));
		cr_assert(rc == 0 || rc == STRATA_EUNAVAIL, "rc %d", rc);
		if (rc == 0)
			last_ok = i;
		refused += rc == STRATA_EUNAVAIL;
	}
	cr_assert_gt(refused, 0, "a queue of 4 must overflow");
	dropped = stats_of(disk).dropped;
	cr_assert_eq(dropped, refused, "each refusal is counted");
	cr_assert_eq(strata_disk_flush(disk), 0);
	/* Applied in queue order: the last accepted value wins. */
	snprintf(value, sizeof(value), "%u", last_ok);
	expect_meta(disk, "test.seq", value);
	strata_disk_close(&disk);
}

/* In a child: hold a read transaction on the tier's files (pinning that
 * snapshot: LMDB cannot reuse pages freed after it) until told to stop,
 * or until the parent is gone (`in` reads end of file), or a minute. */
static int child_pins_a_snapshot(int in, int out)
{
	MDB_env *env;
	MDB_txn *txn;
	char c;

	alarm(60);
	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 5) != 0 ||
	    mdb_env_open(env, tier_path, 0, 0600) != 0)
		return 10;
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return 11;
	if (write(out, "p", 1) != 1)
		return 12;
	if (read(in, &c, 1) < 0) /* 0: end of file, the parent is gone */
		return 13;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return 0;
}

/*
 * disk.h: once a queued removal is lost to a write error, meta puts are
 * refused until the tier is reopened, so a recorded position never claims
 * a lost removal.  The loss is real: another process pins an old
 * snapshot, so the small map fills for good and even a removal meets
 * MDB_MAP_FULL after every retry.
 */
Test(disk, meta_put_refused_after_a_lost_removal)
{
	struct strata_disk *disk = open_tier(STRATA_DISK_MIN_SIZE);
	int to_child[2], from_child[2], status = -1, rc = 0;
	static char body[1500];
	char text[32], c;
	struct strata_key key;
	unsigned i, filled;
	pid_t pid;

	store_text(disk, "GET /first\n", "x", strata_wall_ms() + HOUR_MS);
	cr_assert_eq(strata_disk_flush(disk), 0);
	strata_disk_close(&disk);
	cr_assert_eq(pipe(to_child), 0);
	cr_assert_eq(pipe(from_child), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(to_child[1]);
		close(from_child[0]);
		_exit(child_pins_a_snapshot(to_child[0], from_child[1]));
	}
	close(to_child[0]);
	close(from_child[1]);
	cr_assert_eq(read(from_child[0], &c, 1), 1, "the child pinned");

	disk = open_tier(STRATA_DISK_MIN_SIZE);
	memset(body, 'f', sizeof(body) - 1);
	for (i = 0; i < 2000 && stats_of(disk).dropped == 0; i++) {
		snprintf(text, sizeof(text), "GET /fill/%u\n", i);
		store_text(disk, text, body, strata_wall_ms() + HOUR_MS);
		cr_assert_eq(strata_disk_flush(disk), 0);
	}
	cr_assert_gt(stats_of(disk).dropped, 0, "the map filled up");
	filled = i;
	for (i = 0; i < filled && rc == 0; i++) {
		snprintf(text, sizeof(text), "GET /fill/%u\n", i);
		strata_key_hash(text, strlen(text), &key);
		cr_assert_eq(strata_disk_remove(disk, &key), 0);
		rc = strata_disk_flush(disk);
	}
	cr_assert_neq(rc, 0, "a removal was lost, and flush said so");

	cr_assert_eq(strata_disk_meta_put(disk, "test.pos", "1", 1), 0);
	/* Refused, and said so although the refusal took no time. */
	cr_assert_eq(strata_disk_flush(disk), STRATA_EUNAVAIL);
	cr_assert_eq(strata_disk_meta_get(disk, "test.pos", NULL, 0, NULL),
		     STRATA_EMISS, "not written");

	/* Room again, but the loss is remembered until reopened. */
	cr_assert_eq(write(to_child[1], "x", 1), 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	cr_assert_eq(status, 0, "child status %d", status);
	cr_assert_eq(strata_disk_meta_put(disk, "test.pos", "2", 1), 0);
	cr_assert_eq(strata_disk_flush(disk), STRATA_EUNAVAIL);
	cr_assert_eq(strata_disk_meta_get(disk, "test.pos", NULL, 0, NULL),
		     STRATA_EMISS);
	strata_disk_close(&disk);

	disk = open_tier(STRATA_DISK_MIN_SIZE);
	cr_assert_eq(strata_disk_meta_put(disk, "test.pos", "3", 1), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_meta(disk, "test.pos", "3");
	strata_disk_close(&disk);
	close(to_child[1]);
	close(from_child[0]);
}

/* A scan whose callback holds the scan's read transaction open: it waits
 * until told, then for hold_ms more. */
struct pinning_scan {
	struct strata_disk *disk;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool pinned, release;
	unsigned hold_ms;
	long rc;
};

static int pinning_cb(void *arg, const char *text, size_t len,
		      const struct strata_key *key)
{
	struct pinning_scan *p = arg;

	(void)text;
	(void)len;
	(void)key;
	pthread_mutex_lock(&p->lock);
	p->pinned = true;
	pthread_cond_broadcast(&p->cv);
	while (!p->release)
		pthread_cond_wait(&p->cv, &p->lock);
	pthread_mutex_unlock(&p->lock);
	sleep_ms(p->hold_ms);
	return 1;
}

static void *pinning_scan_main(void *arg)
{
	struct pinning_scan *p = arg;

	p->rc = strata_disk_scan_tag(p->disk, "pin", 0, pinning_cb, p);
	return NULL;
}

/*
 * A reader of this process pins the pages freed after it began (here a
 * scan; in production as well a lookup whose thread is preempted), so
 * with the map's other pages used up even a removal meets MDB_MAP_FULL.
 * Such a reader ends soon: the removals wait for it instead of being
 * lost, flush() says 0, and the meta put queued after them commits.
 */
Test(disk, removal_waits_for_a_reader_pinning_pages)
{
	struct strata_disk *disk = open_tier(STRATA_DISK_MIN_SIZE);
	struct pinning_scan p = { .hold_ms = 300 };
	const char *const tags[] = { "pin" };
	static char body[1500];
	char text[32];
	struct strata_key key;
	uint64_t t0, waited;
	unsigned i, filled;
	pthread_t tid;

	store_tagged(disk, "GET /pin\n", "x", strata_wall_ms() + HOUR_MS,
		     tags, 1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	p.disk = disk;
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cv, NULL);
	cr_assert_eq(pthread_create(&tid, NULL, pinning_scan_main, &p), 0);
	pthread_mutex_lock(&p.lock);
	while (!p.pinned)
		pthread_cond_wait(&p.cv, &p.lock);
	pthread_mutex_unlock(&p.lock);

	/* Fill the map while the scan pins what is freed meanwhile. */
	memset(body, 'f', sizeof(body) - 1);
	for (i = 0; i < 2000 && stats_of(disk).dropped == 0; i++) {
		snprintf(text, sizeof(text), "GET /fill/%u\n", i);
		store_text(disk, text, body, strata_wall_ms() + HOUR_MS);
		cr_assert_eq(strata_disk_flush(disk), 0);
	}
	cr_assert_gt(stats_of(disk).dropped, 0, "the map filled up");
	filled = i;

	/* Purge them all and record it; the reader lets go 300 ms later
	 * (the removals used to give up after some 60 ms). */
	for (i = 0; i < filled; i++) {
		snprintf(text, sizeof(text), "GET /fill/%u\n", i);
		strata_key_hash(text, strlen(text), &key);
		cr_assert_eq(strata_disk_remove(disk, &key), 0);
	}
	cr_assert_eq(strata_disk_meta_put(disk, "test.pos", "1", 1), 0);
	t0 = strata_now_ms();
	pthread_mutex_lock(&p.lock);
	p.release = true;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.lock);
	cr_assert_eq(strata_disk_flush(disk), 0, "no removal was lost");
	waited = strata_now_ms() - t0;
	cr_assert_eq(pthread_join(tid, NULL), 0);
	cr_assert_eq(p.rc, 1);
	cr_assert_geq(waited, p.hold_ms / 2, "waited %" PRIu64 " ms: the "
		      "removals met a full map and waited for the reader",
		      waited);
	expect_meta(disk, "test.pos", "1");
	for (i = 0; i < filled; i++) {
		snprintf(text, sizeof(text), "GET /fill/%u\n", i);
		expect_miss(disk, text);
	}
	cr_assert_leq(stats_of(disk).entries, 1);
	/* Nothing was lost, so meta puts are not refused either. */
	cr_assert_eq(strata_disk_meta_put(disk, "test.pos", "2", 1), 0);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_meta(disk, "test.pos", "2");
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.lock);
	strata_disk_close(&disk);
}

/* --- older disk formats -------------------------------------------------- */

/* A directory as Strata's disk format version 1 wrote it: no tags
 * database, version 1 in meta, one entry. */
static void make_version_1_directory(void)
{
	const char *const names[] = { "entries", "keys", "expiry" };
	uint8_t version[4] = { 1, 0, 0, 0 }, hash[16] = { 0 };
	MDB_val k = { strlen("strata-disk"), "strata-disk" };
	MDB_val d = { sizeof(version), version };
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	cr_assert_eq(mkdir(tier_path, 0700), 0);
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 2 * MIB), 0);
	cr_assert_eq(mdb_env_open(env, tier_path, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
	cr_assert_eq(mdb_put(txn, dbi, &k, &d, 0), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(mdb_dbi_open(txn, names[i], MDB_CREATE, &dbi), 0);
	k = (MDB_val){ sizeof(hash), hash };
	d = (MDB_val){ 5, "value" };
	cr_assert_eq(mdb_put(txn, dbi, &k, &d, 0), 0); /* into expiry */
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Send stderr (the log) to a file until capture_end(). */
static int capture_begin(void)
{
	char file[160];
	int saved, fd;

	snprintf(file, sizeof(file), "%s/stderr.log", tmpdir);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	cr_assert_geq(saved, 0);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	return saved;
}

static void capture_end(int saved, char *out, size_t cap)
{
	char file[160];
	ssize_t n;
	int fd;

	fflush(stderr);
	cr_assert_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	snprintf(file, sizeof(file), "%s/stderr.log", tmpdir);
	fd = open(file, O_RDONLY);
	cr_assert_geq(fd, 0);
	n = read(fd, out, cap - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
}

Test(disk, version_1_directory_is_moved_aside_saying_why)
{
	static const char *const t[] = { "t" };
	struct strata_disk *disk;
	char log[4096];
	int saved;

	make_version_1_directory();
	strata_log_set_level(STRATA_LOG_WARN);
	saved = capture_begin();
	disk = open_tier(4 * MIB);
	capture_end(saved, log, sizeof(log));
	cr_assert_eq(count_corrupt_dirs(), 1);
	cr_assert(strstr(log, "disk format version 1, this Strata uses "
			      "version 2") != NULL,
		  "log: %s", log);
	cr_assert(strstr(log, "moved it to") != NULL, "log: %s", log);

	cr_assert_eq(stats_of(disk).entries, 0, "a fresh tier");
	store_tagged(disk, "GET /a\n", "alpha", strata_wall_ms() + HOUR_MS, t,
		     1);
	cr_assert_eq(strata_disk_flush(disk), 0);
	expect_tag(disk, "t", (const char *const[]){ "GET /a\n" }, 1);
	strata_disk_close(&disk);
}

Test(disk, version_1_directory_is_refused_when_told_to)
{
	struct strata_disk_config cfg = config_for(4 * MIB);
	struct strata_disk *disk = NULL;
	char log[4096];
	int saved;

	make_version_1_directory();
	cfg.on_corrupt = STRATA_DISK_CORRUPT_FAIL;
	saved = capture_begin();
	cr_assert_eq(strata_disk_open(&cfg, &disk), STRATA_ECORRUPT);
	capture_end(saved, log, sizeof(log));
	cr_assert_null(disk);
	cr_assert_eq(count_corrupt_dirs(), 0, "left where it was");
	cr_assert(strstr(log, "disk format version 1, this Strata uses "
			      "version 2") != NULL,
		  "log: %s", log);
	cr_assert(strstr(log, "refusing to start") != NULL, "log: %s", log);
	/* Untouched: still version 1, still without a tags database. */
	cr_assert_eq(strata_disk_open(&cfg, &disk), STRATA_ECORRUPT);
	cr_assert_null(disk);
}
