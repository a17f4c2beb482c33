/*
 * stress_disk.c: tier 2 (LMDB) under concurrent readers and writers.
 *
 * A plain C program (no Criterion) so that it also runs under
 * ThreadSanitizer.  In a mkdtemp directory it opens a tier on a small map
 * (MAP_SIZE), smaller than what the key set stores, so the writer thread
 * keeps evicting; some entries are stored already expired and some
 * expire within a fraction of a second, so the sweeper has work too.
 * Then, for STRESS_SECONDS:
 *
 *  - reader threads look up random keys (skewed so some are hot) and
 *    verify every hit; now and then they scan a tag and read the writers'
 *    meta records;
 *  - writer threads store (most operations; every entry carries its
 *    group's tag and "stress"), remove, put a meta record (a counter),
 *    and now and then flush or clear; a full queue is an expected answer;
 *  - a churn thread keeps starting short-lived threads that do a few
 *    lookups and exit, so the per-thread read transaction is created and
 *    then cleaned up by the thread-exit destructor again and again;
 *  - the main thread reads the statistics every few milliseconds.
 *
 * Then, quiescent: counters add up; a clear, stores and a removal followed
 * by a flush are visible at once; entries stored expired are removed by
 * the sweeper (waited for, bounded).  Two "lingering" threads do lookups
 * and stay alive across close(), whose other readers (the reader and
 * ephemeral threads) have exited; the tier is reopened on the same path,
 * the flushed entry must still be there, and the lingering threads look it
 * up in the new tier (pruning their dead readers of the old one) and stay
 * alive across its close too, then exit.
 *
 * Checked:
 *  - a hit has the key text asked for; its body's length and every byte
 *    derive from the key and the version in its first bytes, and its
 *    expiry, status, route and header match what was stored (a wrong,
 *    torn or freed entry shows as a bad byte, or under ASan/TSan as a
 *    report);
 *  - a hit is fresh at its lookup time; a key stored already expired is
 *    never a hit;
 *  - stats.bytes_used never exceeds stats.size (sampled during the run,
 *    and at rest);
 *  - after a flush, stored entries are found and removed ones are not,
 *    and after a clean close and reopen the flushed entry is still found;
 *  - the sweeper removes expired entries;
 *  - a tag scan lists only entries of that tag's group, during the run
 *    (while stores, removals, eviction, clears and the sweeper change the
 *    index) and at rest, where it lists exactly the long-lived entries a
 *    lookup finds; after a clear it lists nothing;
 *  - each writer's meta record never goes backwards for a reader, equals
 *    the last value the writer queued once flushed, and survives
 *    reopening;
 *  - at quiescence hits + misses equal the lookups the threads made, and
 *    the run evicted, stored and hit something (else it proved nothing);
 *  - close() with readers of exited and of still-running threads, then
 *    those threads' exits, and lookups in a new tier by threads holding
 *    dead readers of the old one (no crash, no report, no leak);
 *  - every call returns what its contract says.
 *
 * Environment: STRESS_SECONDS (default 2, fractions allowed),
 * STRESS_READERS (default 4), STRESS_WRITERS (default 2),
 * STRATA_TEST_TIMEOUT_MULT (scales the wait for the sweeper).  A watchdog
 * alarm kills a run that hangs (leaving its directory behind).  Prints
 * "stress_disk: N passed, M failed" last; exits 0 only when all passed.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "core/log.h"
#include "strata/strata.h"
#include "tier/disk.h"

#define MIB (1024u * 1024u)
#define MAP_SIZE (4u * MIB)
#define QUEUE_LIMIT 256
#define KEYS 1536u
/* Ids past the random key set, used only by the quiescent checks. */
#define ID_KEPT (KEYS + 1)
#define ID_REMOVED (KEYS + 2)
#define ID_SWEPT (KEYS + 16) /* SWEPT_COUNT ids from here */
#define SWEPT_COUNT 16u
/* Body: version (4 bytes) and expires (8 bytes), then the pattern. */
#define BODY_PREFIX 12u
#define BODY_MIN 16u
#define BODY_SPREAD 6000u
#define BODY_BIG_MIN (32u * 1024u)
#define BODY_BIG_SPREAD (32u * 1024u)
#define BODY_MAX (BODY_BIG_MIN + BODY_BIG_SPREAD)
#define EPHEMERAL_LOOKUPS 20
#define LINGERING 2
#define MAX_THREADS 64
#define MONITOR_MS 20
#define SWEEP_WAIT_MS 5000 /* the sweeper runs every second when idle */
/* Tags: id % GROUPS names an entry's group tag; every entry also carries
 * ALL_TAG.  Ids known to key_table (every id the program stores). */
#define GROUPS 16u
#define ALL_TAG "stress"
#define ID_LIMIT (ID_SWEPT + SWEPT_COUNT)
/* A reader scans a tag and reads meta records once per this many probes. */
#define INDEX_EVERY 256u

enum check {
	CHECK_HIT_KEY,
	CHECK_HIT_BODY,
	CHECK_FRESH,
	CHECK_SIZE,
	CHECK_FLUSHED,
	CHECK_SWEEP,
	CHECK_COUNTERS,
	CHECK_CLOSE,
	CHECK_API,
	CHECK_TAGS,
	CHECK_META,
	N_CHECKS,
};

static const char *const check_name[N_CHECKS] = {
	[CHECK_HIT_KEY] = "a hit has the key text asked for",
	[CHECK_HIT_BODY] = "a hit's body and fields derive from its key",
	[CHECK_FRESH] = "a hit is fresh; a key stored expired never hits",
	[CHECK_SIZE] = "bytes_used never exceeds the map size",
	[CHECK_FLUSHED] = "flushed writes are visible and survive reopening",
	[CHECK_SWEEP] = "the sweeper removes expired entries",
	[CHECK_COUNTERS] = "counters add up and the run proved something",
	[CHECK_CLOSE] = "close with readers of exited and live threads",
	[CHECK_API] = "calls return what the contract says",
	[CHECK_TAGS] = "a tag scan lists exactly the entries with that tag",
	[CHECK_META] = "meta records commit in queue order and persist",
};

/* Relaxed: failure counts are read after every thread is joined. */
static atomic_uint failures[N_CHECKS];
/* Release store by main, acquire loads by workers: the stop is seen
 * promptly; it orders nothing else. */
static atomic_bool stop;
/* Written by main only while no other thread uses it: before the workers
 * start, and under `phase_lock` for the lingering threads. */
static struct strata_disk *disk;
static char tmpdir[64];
static char tier_path[96];
/* Every id's key, and the ids sorted by key (for id_of()); filled by
 * main before any other thread starts, read-only afterwards. */
static struct strata_key key_table[ID_LIMIT];
static unsigned id_by_key[ID_LIMIT];
/* Set by main before the workers start. */
static unsigned n_readers, n_writers;

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
	fprintf(stderr, "stress_disk: FAIL %s: ", check_name[c]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

/* Setup failed (not a finding about the tier): say so and stop. */
static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
	fprintf(stderr, "stress_disk: %s\n", what);
	printf("stress_disk: 0 passed, 1 failed\n");
	exit(2);
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
	*len = (size_t)snprintf(text, 32, "GET /stress-disk/%06u", id);
}

/* Keys that are always stored already expired. */
static bool expired_id(unsigned id)
{
	return id % 8 == 3;
}

/* Keys that are stored to expire within half a second. */
static bool short_id(unsigned id)
{
	return id % 8 == 5;
}

/* A few big bodies, stored in long runs of overflow pages (evict_run()). */
static size_t body_len_of(unsigned id, uint32_t version)
{
	uint32_t mix = id * 17u + version * 13u;

	if (id % 32 == 7)
		return BODY_BIG_MIN + mix % BODY_BIG_SPREAD;
	return BODY_MIN + mix % BODY_SPREAD;
}

static uint8_t body_byte(unsigned id, uint32_t version, size_t i)
{
	return (uint8_t)(id * 131u + version * 7u + i * 31u + (i >> 8));
}

static struct strata_entry *make_entry(unsigned id, uint32_t version,
				       int64_t expires)
{
	char text[32], id_text[16], group[16];
	const char *const tags[] = { group, ALL_TAG };
	struct strata_headers headers = { 0 };
	struct strata_entry_params p = { 0 };
	struct strata_entry *e = NULL;
	struct strata_key key;
	size_t text_len, body_len = body_len_of(id, version);
	char *body = malloc(body_len);

	if (body == NULL)
		die("out of memory");
	memcpy(body, &version, sizeof(version));
	memcpy(body + sizeof(version), &expires, sizeof(expires));
	for (size_t i = BODY_PREFIX; i < body_len; i++)
		body[i] = (char)body_byte(id, version, i);
	key_text_of(id, text, &text_len);
	strata_key_hash(text, text_len, &key);
	snprintf(id_text, sizeof(id_text), "%u", id);
	if (strata_headers_add(&headers, "X-Stress-Id", id_text) != 0)
		die("out of memory");
	snprintf(group, sizeof(group), "group-%u", id % GROUPS);
	p.tags = tags;
	p.n_tags = 2;
	p.key = &key;
	p.key_text = text;
	p.key_len = text_len;
	p.route = "stress";
	p.status = 200;
	p.created = expires - 60000;
	p.expires = expires;
	p.headers = &headers;
	p.body = body;
	p.body_len = body_len;
	if (strata_entry_new(&p, &e) != 0)
		die("strata_entry_new failed");
	strata_headers_clear(&headers);
	free(body);
	return e;
}

/* An expiry for a store of `id` at wall time `now`. */
static int64_t expires_for(unsigned id, int64_t now, uint64_t r)
{
	if (expired_id(id))
		return now - 1 - (int64_t)(r % 1000);
	if (short_id(id))
		return now + 20 + (int64_t)(r % 480);
	return now + 3600000;
}

static void key_of(unsigned id, struct strata_key *key)
{
	char text[32];
	size_t len;

	key_text_of(id, text, &len);
	strata_key_hash(text, len, key);
}

/*
 * Verify a hit for `id` looked up at `now`; returns whether it was right.
 * Checks every byte: a torn or foreign value shows wherever it differs.
 */
static bool verify_hit(const struct strata_entry *e, unsigned id,
		       int64_t now)
{
	char text[32], id_text[16], group[16];
	const char *hdr;
	uint32_t version;
	int64_t expires;
	size_t len;

	key_text_of(id, text, &len);
	if (e->key_len != len || memcmp(e->key_text, text, len) != 0) {
		fail(CHECK_HIT_KEY, "asked for %s, got %.*s", text,
		     (int)e->key_len, e->key_text);
		return false;
	}
	if (expired_id(id))
		fail(CHECK_FRESH, "key %u, stored expired, was a hit", id);
	if (!(now < e->expires))
		fail(CHECK_FRESH, "key %u: a hit at %" PRId64 " expiring at %"
		     PRId64, id, now, e->expires);
	if (e->body_len < BODY_PREFIX) {
		fail(CHECK_HIT_BODY, "key %u: body of %zu bytes", id,
		     e->body_len);
		return false;
	}
	memcpy(&version, e->body, sizeof(version));
	memcpy(&expires, e->body + sizeof(version), sizeof(expires));
	if (e->body_len != body_len_of(id, version)) {
		fail(CHECK_HIT_BODY, "key %u version %" PRIu32 ": body of %zu "
		     "bytes, expected %zu", id, version, e->body_len,
		     body_len_of(id, version));
		return false;
	}
	for (size_t i = BODY_PREFIX; i < e->body_len; i++) {
		if ((uint8_t)e->body[i] != body_byte(id, version, i)) {
			fail(CHECK_HIT_BODY, "key %u version %" PRIu32
			     ": body wrong at byte %zu of %zu", id, version,
			     i, e->body_len);
			return false;
		}
	}
	snprintf(id_text, sizeof(id_text), "%u", id);
	hdr = strata_entry_header(e, "X-Stress-Id");
	snprintf(group, sizeof(group), "group-%u", id % GROUPS);
	if (expires != e->expires || e->keep_until != e->expires ||
	    e->created != expires - 60000 || e->status != 200 ||
	    strcmp(e->route, "stress") != 0 || hdr == NULL ||
	    strcmp(hdr, id_text) != 0 || e->n_headers != 1 ||
	    e->n_tags != 2 || strcmp(e->tags[0], group) != 0 ||
	    strcmp(e->tags[1], ALL_TAG) != 0) {
		fail(CHECK_HIT_BODY, "key %u: fields differ from the stored "
		     "ones (expires %" PRId64 " vs %" PRId64 ")", id,
		     e->expires, expires);
		return false;
	}
	return true;
}

/* Never a real entry: what *out holds before a lookup. */
static struct strata_entry sentinel;

/* Look `id` up now in `d`; on a hit verify it, release it and return 1;
 * on a miss 0; on a contract breach -1. */
static int probe(struct strata_disk *d, unsigned id)
{
	char text[32];
	size_t len;
	struct strata_key key;
	/* Not NULL, so that a miss must clear it. */
	struct strata_entry *e = &sentinel;
	int64_t now = strata_wall_ms();
	int rc;

	key_text_of(id, text, &len);
	strata_key_hash(text, len, &key);
	rc = strata_disk_lookup(d, &key, text, len, now, &e);
	if (rc == STRATA_EMISS) {
		if (e != NULL) {
			fail(CHECK_API, "a miss left *out set");
			return -1;
		}
		return 0;
	}
	if (rc != 0 || e == NULL || e == &sentinel) {
		fail(CHECK_API, "lookup returned %d", rc);
		return -1;
	}
	verify_hit(e, id, now);
	strata_entry_release(&e);
	return 1;
}

struct worker {
	pthread_t thread;
	unsigned index;
	uint64_t seed;
	/* Own counts, read by main after join. */
	uint64_t lookups, hits, stores, removes, flushes, clears, full;
	uint64_t scans, metas;
	/* Writers: the last meta value queued (0: none). */
	uint64_t meta_queued;
	/* Readers: the last meta value seen of each writer. */
	uint64_t meta_seen[MAX_THREADS];
};

static int id_by_key_cmp(const void *a, const void *b)
{
	return memcmp(key_table[*(const unsigned *)a].hash,
		      key_table[*(const unsigned *)b].hash,
		      STRATA_KEY_HASH_LEN);
}

/* The id whose key is `key`, or ID_LIMIT. */
static unsigned id_of(const struct strata_key *key)
{
	size_t lo = 0, hi = ID_LIMIT, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = memcmp(key_table[id_by_key[mid]].hash, key->hash,
			   STRATA_KEY_HASH_LEN);
		if (c == 0)
			return id_by_key[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return ID_LIMIT;
}

struct tag_scan {
	unsigned group;              /* GROUPS: ALL_TAG */
	bool *listed;                /* NULL, or ID_LIMIT flags to set */
	unsigned n;
};

static int tag_scan_cb(void *arg, const char *text, size_t len,
		       const struct strata_key *key)
{
	struct tag_scan *scan = arg;
	unsigned id = id_of(key);

	if (text != NULL || len != 0)
		fail(CHECK_API, "a tag scan passed a key text");
	if (id == ID_LIMIT || (scan->group < GROUPS &&
			       id % GROUPS != scan->group)) {
		fail(CHECK_TAGS, "group-%u listed key %u, of another group",
		     scan->group, id);
		return 0;
	}
	if (scan->listed != NULL) {
		if (scan->listed[id])
			fail(CHECK_TAGS, "key %u listed twice", id);
		scan->listed[id] = true;
	}
	scan->n++;
	return 0;
}

/* Scan `group`'s tag (GROUPS: ALL_TAG) in `d`; returns the count. */
static long scan_group(struct strata_disk *d, unsigned group, bool *listed)
{
	struct tag_scan scan = { .group = group, .listed = listed };
	char tag[16];
	long rc;

	if (group < GROUPS)
		snprintf(tag, sizeof(tag), "group-%u", group);
	else
		snprintf(tag, sizeof(tag), "%s", ALL_TAG);
	rc = strata_disk_scan_tag(d, tag, 0, tag_scan_cb, &scan);
	if (rc < 0 || (unsigned long)rc != scan.n)
		fail(CHECK_API, "scan_tag returned %ld, visited %u", rc,
		     scan.n);
	return rc;
}

static void meta_name_of(unsigned writer, char name[32])
{
	snprintf(name, 32, "stress.writer-%u", writer);
}

/* Read `writer`'s meta record from `d`: 0 when absent, else its value
 * (a positive counter). */
static uint64_t meta_value(struct strata_disk *d, unsigned writer)
{
	char name[32], buf[32];
	size_t len = 0;
	int rc;

	meta_name_of(writer, name);
	rc = strata_disk_meta_get(d, name, buf, sizeof(buf) - 1, &len);
	if (rc == STRATA_EMISS)
		return 0;
	if (rc != 0 || len == 0) {
		fail(CHECK_API, "meta_get %s: %d (length %zu)", name, rc, len);
		return 0;
	}
	buf[len] = '\0';
	return strtoull(buf, NULL, 10);
}

/* Count one probe into `w`. */
static void count_probe(struct worker *w, int rc)
{
	w->lookups++;
	if (rc == 1)
		w->hits++;
}

static unsigned pick_id(uint64_t *seed)
{
	/* Skewed: half the lookups go to an eighth of the keys. */
	uint64_t r = rnd(seed);

	return (r & 1) ? (unsigned)(r >> 8) % (KEYS / 8)
		       : (unsigned)(r >> 8) % KEYS;
}

/* A reader's occasional index work: one tag scan, and every writer's
 * meta record, which must never go backwards (each writer queues rising
 * values, and the writer thread commits them in queue order). */
static void index_probe(struct worker *w)
{
	uint64_t v;

	scan_group(disk, (unsigned)(rnd(&w->seed) % (GROUPS + 1)), NULL);
	w->scans++;
	for (unsigned i = 0; i < n_writers; i++) {
		v = meta_value(disk, n_readers + i);
		if (v < w->meta_seen[i])
			fail(CHECK_META, "writer %u's record went from %" PRIu64
			     " back to %" PRIu64, n_readers + i,
			     w->meta_seen[i], v);
		else
			w->meta_seen[i] = v;
	}
	w->metas++;
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		count_probe(w, probe(disk, pick_id(&w->seed)));
		if (w->lookups % INDEX_EVERY == 0)
			index_probe(w);
	}
	return NULL;
}

static void nap_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	uint32_t version = w->index << 24;
	struct strata_entry *e;
	struct strata_key key;
	char name[32], value[24];
	unsigned id, op;
	uint64_t r, next_meta = 0;
	int rc;

	meta_name_of(w->index, name);
	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		r = rnd(&w->seed);
		id = (unsigned)(r >> 16) % KEYS;
		op = (unsigned)(r % 4000);
		if (op == 0) {
			/* Rarely: drop everything. */
			rc = strata_disk_clear(disk);
			w->clears += rc == 0;
		} else if (op <= 20) {
			/* Wait for what is queued (by both writers). */
			rc = strata_disk_flush(disk);
			if (rc != 0)
				fail(CHECK_API, "flush: %d", rc);
			w->flushes++;
			continue;
		} else if (op <= 420) {
			key_of(id, &key);
			rc = strata_disk_remove(disk, &key);
			w->removes += rc == 0;
		} else if (op <= 440) {
			/* Values rise; a refused one is simply skipped. */
			snprintf(value, sizeof(value), "%" PRIu64, ++next_meta);
			rc = strata_disk_meta_put(disk, name, value,
						  strlen(value));
			if (rc == 0)
				w->meta_queued = next_meta;
		} else {
			e = make_entry(id, ++version,
				       expires_for(id, strata_wall_ms(),
						   r >> 32));
			rc = strata_disk_store(disk, e);
			w->stores += rc == 0;
			strata_entry_release(&e);
		}
		if (rc == STRATA_EUNAVAIL) {
			/* The queue is full: let the writer thread drain. */
			w->full++;
			nap_us(200);
		} else if (rc != 0) {
			fail(CHECK_API, "an enqueueing call returned %d", rc);
		}
	}
	return NULL;
}

/* A thread the tier did not create: a few lookups, then exit (its read
 * transaction is aborted by the tier's thread-exit destructor). */
static void *ephemeral_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < EPHEMERAL_LOOKUPS; i++)
		count_probe(w, probe(disk, pick_id(&w->seed)));
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
		if (pthread_create(&eph.thread, NULL, ephemeral_main, &eph))
			die("pthread_create failed");
		pthread_join(eph.thread, NULL); /* orders eph's counts */
		w->lookups += eph.lookups;
		w->hits += eph.hits;
	}
	return NULL;
}

/*
 * Lingering threads: alive across close().  Each looks ID_KEPT up in the
 * tier of phase 0 (and a few random keys), reports, and waits; main
 * closes that tier and publishes a reopened one (phase 1), in which each
 * looks ID_KEPT up again (pruning its dead reader), reports, and waits
 * while main closes that tier too (phase 2); then it exits, and the
 * destructor frees a reader whose tier is gone.
 */
static pthread_mutex_t phase_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t phase_cv = PTHREAD_COND_INITIALIZER;
static unsigned phase, reported; /* phase_lock */

struct lingering {
	pthread_t thread;
	struct worker w;
	int found[2]; /* probe() of ID_KEPT in each tier */
};

static void report_and_wait(unsigned next)
{
	pthread_mutex_lock(&phase_lock);
	reported++;
	pthread_cond_broadcast(&phase_cv);
	while (phase < next)
		pthread_cond_wait(&phase_cv, &phase_lock);
	pthread_mutex_unlock(&phase_lock);
}

static void *lingering_main(void *arg)
{
	struct lingering *l = arg;
	struct strata_disk *d;

	for (unsigned p = 0; p < 2; p++) {
		pthread_mutex_lock(&phase_lock);
		d = disk; /* the tier of this phase */
		pthread_mutex_unlock(&phase_lock);
		l->found[p] = probe(d, ID_KEPT);
		count_probe(&l->w, l->found[p]);
		for (int i = 0; p == 0 && i < EPHEMERAL_LOOKUPS; i++)
			count_probe(&l->w, probe(d, pick_id(&l->w.seed)));
		report_and_wait(p + 1);
	}
	return NULL;
}

/* Main: wait until every lingering thread reported `n` times in all. */
static void wait_reported(unsigned n)
{
	pthread_mutex_lock(&phase_lock);
	while (reported < n)
		pthread_cond_wait(&phase_cv, &phase_lock);
	pthread_mutex_unlock(&phase_lock);
}

static void set_phase(unsigned p, struct strata_disk *d)
{
	pthread_mutex_lock(&phase_lock);
	phase = p;
	disk = d;
	pthread_cond_broadcast(&phase_cv);
	pthread_mutex_unlock(&phase_lock);
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

static double timeout_mult(void)
{
	const char *s = getenv("STRATA_TEST_TIMEOUT_MULT");
	double m = s != NULL ? atof(s) : 1.0;

	return m > 0 ? m : 1.0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void check_size(const char *when)
{
	struct strata_disk_stats st;

	strata_disk_stats(disk, &st);
	if (st.size < MAP_SIZE || st.bytes_used > st.size)
		fail(CHECK_SIZE, "%s: bytes_used %" PRIu64 ", size %" PRIu64,
		     when, st.bytes_used, st.size);
}

static struct strata_disk *open_tier(void)
{
	struct strata_disk_config cfg = {
		.path = tier_path,
		.size = MAP_SIZE,
		.sync = STRATA_DISK_SYNC_NONE,
		.on_corrupt = STRATA_DISK_CORRUPT_FAIL,
		.queue_limit = QUEUE_LIMIT,
	};
	struct strata_disk *d = NULL;
	int rc = strata_disk_open(&cfg, &d);

	if (rc != 0 || d == NULL) {
		fprintf(stderr, "stress_disk: strata_disk_open(%s): %d\n",
			tier_path, rc);
		die("cannot open the tier");
	}
	return d;
}

static int remove_cb(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Store `e` (released) and insist that it is queued. */
static void store_quiet(struct strata_entry *e)
{
	int rc = strata_disk_store(disk, e);

	if (rc != 0)
		fail(CHECK_API, "store into an idle queue: %d", rc);
	strata_entry_release(&e);
}

static void flush_quiet(const char *when)
{
	int rc = strata_disk_flush(disk);

	if (rc != 0)
		fail(CHECK_API, "%s: flush: %d", when, rc);
}

/*
 * Store every key once, so that the run starts with the map near its
 * high-water mark and evicts from its first stores, however short it is
 * (and readers hit from the start).  Returns the evictions so far.
 */
static uint64_t prefill(void)
{
	struct strata_disk_stats st;
	struct strata_entry *e;
	int64_t now = strata_wall_ms();
	int rc;

	for (unsigned id = 0; id < KEYS; id++) {
		e = make_entry(id, 0, expires_for(id, now, id));
		while ((rc = strata_disk_store(disk, e)) == STRATA_EUNAVAIL)
			flush_quiet("prefill");
		if (rc != 0)
			fail(CHECK_API, "prefill: store: %d", rc);
		strata_entry_release(&e);
	}
	flush_quiet("prefill");
	strata_disk_stats(disk, &st);
	return st.evictions;
}

/*
 * Quiescent checks of the indexes, before quiescent_checks() clears: each
 * writer's meta record holds the last value it queued, and each group's
 * tag lists exactly the long-lived entries a lookup finds (expired and
 * short-lived ones may be listed until the sweeper, which still runs,
 * reaches them; eviction needs a store, and none runs now).  Adds the
 * main thread's lookups to *lookups and *hits.
 */
static void quiescent_index_checks(const struct worker *w, uint64_t *lookups,
				   uint64_t *hits)
{
	static bool listed[ID_LIMIT];
	uint64_t v;
	int rc;

	flush_quiet("before the index checks");
	for (unsigned i = n_readers; i < n_readers + n_writers; i++) {
		v = meta_value(disk, i);
		if (v != w[i].meta_queued)
			fail(CHECK_META, "writer %u's record is %" PRIu64
			     " after a flush, it queued %" PRIu64 " last", i,
			     v, w[i].meta_queued);
	}
	memset(listed, 0, sizeof(listed));
	for (unsigned g = 0; g < GROUPS; g++)
		scan_group(disk, g, listed);
	for (unsigned id = 0; id < KEYS; id++) {
		if (expired_id(id) || short_id(id))
			continue;
		rc = probe(disk, id);
		*lookups += 1;
		*hits += rc == 1;
		if ((rc == 1) != listed[id])
			fail(CHECK_TAGS, "key %u is %sstored but %slisted", id,
			     rc == 1 ? "" : "not ", listed[id] ? "" : "not ");
	}
}

/*
 * Quiescent checks on the first tier: a clear, stores and a removal are
 * visible after a flush; entries stored expired are swept.  Adds the
 * main thread's lookups to *lookups and *hits.
 */
static void quiescent_checks(uint64_t *lookups, uint64_t *hits)
{
	struct strata_disk_stats st, before;
	struct strata_key key;
	int64_t now = strata_wall_ms();
	uint64_t deadline, wait_ms;
	int rc;

	flush_quiet("after the run");
	check_size("at rest");

	if (strata_disk_clear(disk) != 0)
		fail(CHECK_API, "clear into an idle queue failed");
	flush_quiet("after clear");
	strata_disk_stats(disk, &st);
	if (st.entries != 0)
		fail(CHECK_FLUSHED, "%" PRIu64 " entries after a flushed "
		     "clear", st.entries);
	if (scan_group(disk, GROUPS, NULL) != 0)
		fail(CHECK_TAGS, "a tag lists entries after a flushed clear");

	store_quiet(make_entry(ID_KEPT, 1, now + 3600000));
	store_quiet(make_entry(ID_REMOVED, 1, now + 3600000));
	flush_quiet("after stores");
	key_of(ID_REMOVED, &key);
	if (strata_disk_remove(disk, &key) != 0)
		fail(CHECK_API, "remove into an idle queue failed");
	flush_quiet("after a removal");
	rc = probe(disk, ID_KEPT);
	if (rc != 1)
		fail(CHECK_FLUSHED, "a stored, flushed entry was not found");
	*lookups += 1;
	*hits += rc == 1;
	rc = probe(disk, ID_REMOVED);
	if (rc != 0)
		fail(CHECK_FLUSHED, "a removed, flushed entry was found");
	*lookups += 1;
	*hits += rc == 1;
	if (scan_group(disk, GROUPS, NULL) != 1 ||
	    scan_group(disk, ID_KEPT % GROUPS, NULL) != 1 ||
	    scan_group(disk, ID_REMOVED % GROUPS, NULL) != 0)
		fail(CHECK_TAGS, "after a store and a removal, the tags list "
		     "other than the one stored entry");

	/* Stored expired: never a hit, and gone once the sweeper ran. */
	strata_disk_stats(disk, &before);
	for (unsigned i = 0; i < SWEPT_COUNT; i++)
		store_quiet(make_entry(ID_SWEPT + i, 1, now - 1 - i));
	flush_quiet("after expired stores");
	strata_disk_stats(disk, &st);
	/* The sweeper may have taken some already. */
	if (st.entries + (st.expired - before.expired) != 1 + SWEPT_COUNT)
		fail(CHECK_FLUSHED, "%" PRIu64 " entries and %" PRIu64
		     " swept, expected %u in all", st.entries,
		     st.expired - before.expired, 1 + SWEPT_COUNT);
	for (unsigned i = 0; i < SWEPT_COUNT; i++) {
		rc = probe(disk, ID_SWEPT + i);
		if (rc != 0)
			fail(CHECK_FRESH, "an entry stored expired was a hit");
		*lookups += 1;
		*hits += rc == 1;
	}
	wait_ms = (uint64_t)(SWEEP_WAIT_MS * timeout_mult());
	deadline = mono_ms() + wait_ms;
	for (;;) {
		strata_disk_stats(disk, &st);
		if (st.expired >= before.expired + SWEPT_COUNT &&
		    st.entries == 1)
			break;
		if (mono_ms() > deadline) {
			fail(CHECK_SWEEP, "after %" PRIu64 " ms: %" PRIu64
			     " swept of %u, %" PRIu64 " entries left "
			     "(expected 1)", wait_ms, st.expired - before.expired,
			     SWEPT_COUNT, st.entries);
			break;
		}
		nap_us(MONITOR_MS * 1000);
	}
}

int main(void)
{
	const char *secs_env = getenv("STRESS_SECONDS");
	const char *tmp = getenv("TMPDIR");
	double seconds = secs_env != NULL ? strtod(secs_env, NULL) : 2.0;
	unsigned readers = env_unsigned("STRESS_READERS", 4, MAX_THREADS);
	unsigned writers = env_unsigned("STRESS_WRITERS", 2, MAX_THREADS);
	unsigned n = readers + writers + 1, passed = 0, failed = 0;
	uint64_t lookups = 0, hits = 0, stores = 0, removes = 0, flushes = 0;
	uint64_t clears = 0, full = 0, end_ms, samples = 0, evictions_before;
	uint64_t scans = 0, metas = 0;
	struct lingering ling[LINGERING];
	struct strata_disk_stats st;
	struct strata_disk *d;
	struct worker *w;
	int rc;

	if (!(seconds > 0))
		seconds = 2.0;
	/* Watchdog: a hang fails (the sweep wait is scaled, so is this). */
	alarm((unsigned)(seconds * 20 + 60 * timeout_mult()));
	/* Quiet: the writer's rate-limited notes about a full map are
	 * expected on a map this small. */
	strata_log_set_level(STRATA_LOG_ERROR);

	if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 32)
		tmp = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/strata-stress-disk-XXXXXX", tmp);
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp failed");
	snprintf(tier_path, sizeof(tier_path), "%s/tier", tmpdir);
	for (unsigned id = 0; id < ID_LIMIT; id++) {
		key_of(id, &key_table[id]);
		id_by_key[id] = id;
	}
	qsort(id_by_key, ID_LIMIT, sizeof(id_by_key[0]), id_by_key_cmp);
	n_readers = readers;
	n_writers = writers;
	disk = open_tier();
	evictions_before = prefill();

	w = calloc(n, sizeof(*w));
	if (w == NULL)
		die("out of memory");
	for (unsigned i = 0; i < n; i++) {
		void *(*fn)(void *) = i < readers ? reader_main
				      : i < readers + writers ? writer_main
							       : churn_main;

		w[i].index = i;
		w[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
		if (pthread_create(&w[i].thread, NULL, fn, &w[i]) != 0)
			die("pthread_create failed");
	}
	/* The main thread watches the size while the others work. */
	end_ms = mono_ms() + (uint64_t)(seconds * 1000);
	while (mono_ms() < end_ms) {
		nap_us(MONITOR_MS * 1000);
		check_size("during the run");
		samples++;
	}
	/* Release: pairs with the workers' acquire loads. */
	atomic_store_explicit(&stop, true, memory_order_release);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		lookups += w[i].lookups;
		hits += w[i].hits;
		stores += w[i].stores;
		removes += w[i].removes;
		flushes += w[i].flushes;
		clears += w[i].clears;
		full += w[i].full;
		scans += w[i].scans;
		metas += w[i].metas;
	}

	/* Quiescent: only the main thread uses the tier now. */
	strata_disk_stats(disk, &st);
	printf("stress_disk: %.1fs, %u readers, %u writers: %" PRIu64
	       " lookups, %" PRIu64 " hits; queued %" PRIu64 " stores, %"
	       PRIu64 " removes, %" PRIu64 " clears, %" PRIu64 " flushes (%"
	       PRIu64 " refused: queue full)\n",
	       seconds, readers, writers, lookups, hits, stores, removes,
	       clears, flushes, full);
	printf("stress_disk: readers scanned %" PRIu64 " tags and read the "
	       "meta records %" PRIu64 " times\n", scans, metas);
	printf("stress_disk: tier: %" PRIu64 " stored, %" PRIu64
	       " dropped, %" PRIu64 " evicted (%" PRIu64 " in the run), %"
	       PRIu64 " expired, %" PRIu64 " entries in %" PRIu64 " of %"
	       PRIu64 " bytes; %" PRIu64 " size samples\n",
	       st.stores, st.dropped, st.evictions,
	       st.evictions - evictions_before, st.expired, st.entries,
	       st.bytes_used, st.size, samples);
	if (st.evictions == evictions_before || hits == 0 || stores == 0 ||
	    scans == 0)
		fail(CHECK_COUNTERS, "the run proved nothing: %" PRIu64
		     " evictions during it, %" PRIu64 " hits, %" PRIu64
		     " stores, %" PRIu64 " tag scans",
		     st.evictions - evictions_before, hits, stores, scans);
	if (st.corrupt != 0)
		fail(CHECK_HIT_BODY, "%" PRIu64 " stored entries failed "
		     "decoding", st.corrupt);

	quiescent_index_checks(w, &lookups, &hits);
	quiescent_checks(&lookups, &hits);

	/* Lingering threads: lookups done, still alive at close. */
	memset(ling, 0, sizeof(ling));
	for (unsigned i = 0; i < LINGERING; i++) {
		ling[i].w.seed = 0xbf58476d1ce4e5b9ull * (i + 1);
		if (pthread_create(&ling[i].thread, NULL, lingering_main,
				   &ling[i]) != 0)
			die("pthread_create failed");
	}
	wait_reported(LINGERING);
	for (unsigned i = 0; i < LINGERING; i++) {
		lookups += ling[i].w.lookups; /* ordered by phase_lock */
		hits += ling[i].w.hits;
		if (ling[i].found[0] != 1)
			fail(CHECK_FLUSHED, "a live thread did not find the "
			     "flushed entry");
	}
	strata_disk_stats(disk, &st);
	if (st.hits != hits || st.hits + st.misses != lookups)
		fail(CHECK_COUNTERS, "hits %" PRIu64 " misses %" PRIu64
		     ", threads counted %" PRIu64 " hits of %" PRIu64
		     " lookups", st.hits, st.misses, hits, lookups);
	if (st.corrupt != 0)
		fail(CHECK_HIT_BODY, "%" PRIu64 " stored entries failed "
		     "decoding", st.corrupt);

	/* Close with readers of exited threads (joined above, their
	 * destructors ran) and of live ones (the lingering threads and
	 * main), then reopen the same path. */
	d = disk;
	strata_disk_close(&d);
	if (d != NULL)
		fail(CHECK_API, "close left the pointer set");
	d = open_tier();
	rc = probe(d, ID_KEPT); /* main's dead reader is pruned here */
	if (rc != 1)
		fail(CHECK_FLUSHED, "the flushed entry was gone after "
		     "close and reopen (%d)", rc);
	if (scan_group(d, ID_KEPT % GROUPS, NULL) != 1)
		fail(CHECK_TAGS, "the tag index did not survive reopening");
	for (unsigned i = readers; i < readers + writers; i++)
		if (meta_value(d, i) != w[i].meta_queued)
			fail(CHECK_META, "writer %u's record did not survive "
			     "reopening", i);
	set_phase(1, d);
	wait_reported(2 * LINGERING);
	for (unsigned i = 0; i < LINGERING; i++)
		if (ling[i].found[1] != 1)
			fail(CHECK_CLOSE, "a thread alive across close did "
			     "not find the entry in the reopened tier (%d)",
			     ling[i].found[1]);
	strata_disk_stats(d, &st);
	if (st.hits != 1 + LINGERING || st.misses != 0)
		fail(CHECK_COUNTERS, "reopened tier: %" PRIu64 " hits, %"
		     PRIu64 " misses, expected %u and 0", st.hits, st.misses,
		     1 + LINGERING);

	/* Close again under the lingering threads' feet, then let them
	 * exit: their destructors find only dead readers. */
	strata_disk_close(&d);
	set_phase(2, NULL);
	for (unsigned i = 0; i < LINGERING; i++)
		pthread_join(ling[i].thread, NULL);
	free(w);

	if (nftw(tmpdir, remove_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "stress_disk: could not remove %s: %s\n",
			tmpdir, strerror(errno));

	for (int c = 0; c < N_CHECKS; c++) {
		if (atomic_load_explicit(&failures[c], memory_order_relaxed))
			failed++;
		else
			passed++;
	}
	printf("stress_disk: %u passed, %u failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
