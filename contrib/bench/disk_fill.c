/*
 * disk_fill: fill a Strata disk tier with N entries, exactly as Strata
 * stores the answers to GET /k/1 .. /k/N on a route "/k/<star>" (<star>
 * being "*", which cannot follow a "/" in a C comment) with default
 * options, and report how fast the tier's writer thread takes them in.
 *
 *   disk_fill DIR N [SIZE]     SIZE: the map size, as cache.disk.size
 *                              (default 4GiB)
 *
 * Build it from the top of a built tree (disk.sh does this):
 *
 *   cc -O2 -std=gnu11 -D_GNU_SOURCE -I. -Iinclude -Isrc \
 *       contrib/bench/disk_fill.c .libs/libstrata.so \
 *       -Wl,-rpath,$PWD/.libs $(pkg-config --cflags --libs libxxhash lmdb)
 *
 * It links libstrata's internal API, so the keys and the stored bytes are
 * Strata's own: key texts come from strata_key_text() with no rule (raw
 * query, no vary: a route's defaults), hashes and encoding from
 * strata_entry_new() and the tier.  A strata started afterwards with
 * that route, cache.disk.path=DIR and cache.disk.size=SIZE answers
 * /k/<n> from this directory as a disk hit.  Each entry is what
 * bare_mhd's answer would have become: status 200, Content-Type and
 * Cache-Control headers, a 1 KiB body, route "/k/<star>", created now and
 * fresh for a day.  The tier syncs nothing (STRATA_DISK_SYNC_NONE): the
 * point is the writer's own cost, not the disk's.
 *
 * The figure: entries per second from the first strata_disk_store() to
 * the return of strata_disk_flush().  This thread builds entries and
 * queues them while the writer thread commits them in batches.  The queue
 * is bounded (65536 operations, as in src/server.c); when it is full the
 * store is refused with STRATA_EUNAVAIL and this program sleeps 100 µs
 * and tries again.  When it waited many times the writer set the pace, and
 * the figure is the writer's throughput; the CPU times printed say the
 * same from the other side.
 *
 * Output on stdout, one "name value" pair a line, for scripts; errors on
 * stderr and exit status 1.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "core/http.h"
#include "core/log.h"
#include "core/units.h"
#include "strata/strata.h"
#include "tier/disk.h"

#define ROUTE_NAME "/k/*"
#define BODY_BYTES 1024
#define FRESH_MS (24 * 3600 * 1000LL)
/* As DISK_QUEUE_LIMIT in src/server.c: the server's queue bound. */
#define QUEUE_LIMIT 65536u
#define FULL_QUEUE_SLEEP_NS 100000L

static double cpu_seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Build the entry for /k/<n> into *out (one reference). */
static int build_entry(unsigned long n, const struct strata_headers *headers,
		       const char *body, int64_t now,
		       struct strata_entry **out)
{
	char target[32], key_text[64];
	size_t key_len;
	struct strata_entry_params p = {
		.key = NULL, /* hashed from the text, as the tiers require */
		.route = ROUTE_NAME,
		.status = 200,
		.created = now,
		.expires = now + FRESH_MS,
		.headers = headers,
		.body = body,
		.body_len = BODY_BYTES,
	};
	int rc;

	snprintf(target, sizeof(target), "/k/%lu", n);
	rc = strata_key_text(NULL, "GET", target, NULL, NULL, key_text,
			     sizeof(key_text), &key_len);
	if (rc != 0)
		return rc;
	p.key_text = key_text;
	p.key_len = key_len;
	return strata_entry_new(&p, out);
}

/* Queue one entry, waiting while the writer's queue is full. */
static int store_waiting(struct strata_disk *disk, struct strata_entry *e,
			 unsigned long *full_waits)
{
	const struct timespec pause = { 0, FULL_QUEUE_SLEEP_NS };
	int rc;

	while ((rc = strata_disk_store(disk, e)) == STRATA_EUNAVAIL) {
		(*full_waits)++;
		nanosleep(&pause, NULL);
	}
	return rc;
}

/* Look the last key up again: proves the stored bytes decode as Strata's. */
static int check_lookup(struct strata_disk *disk, unsigned long n)
{
	char target[32], key_text[64];
	size_t key_len;
	struct strata_key key;
	struct strata_entry *e = NULL;
	int rc;

	snprintf(target, sizeof(target), "/k/%lu", n);
	rc = strata_key_text(NULL, "GET", target, NULL, NULL, key_text,
			     sizeof(key_text), &key_len);
	if (rc != 0)
		goto out;
	strata_key_hash(key_text, key_len, &key);
	rc = strata_disk_lookup(disk, &key, key_text, key_len,
				strata_wall_ms(), &e);
	if (rc == 0 && (e->body_len != BODY_BYTES || e->status != 200))
		rc = -EPROTO;
out:
	strata_entry_release(&e);
	return rc;
}

int main(int argc, char **argv)
{
	struct strata_headers headers = { 0 };
	struct strata_disk_config cfg = {
		.sync = STRATA_DISK_SYNC_NONE,
		.on_corrupt = STRATA_DISK_CORRUPT_FAIL,
		.queue_limit = QUEUE_LIMIT,
	};
	struct strata_disk *disk = NULL;
	struct strata_disk_stats stats;
	struct strata_entry *e = NULL;
	char body[BODY_BYTES];
	unsigned long n, i, full_waits = 0;
	uint64_t t0, t1;
	double cpu0, cpu1, main_cpu0, main_cpu1, seconds;
	char *end;
	int64_t now;
	int rc, status = 1;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: disk_fill DIR N [SIZE]\n");
		return 2;
	}
	cfg.path = argv[1];
	errno = 0;
	n = strtoul(argv[2], &end, 10);
	if (errno != 0 || *end != '\0' || argv[2][0] < '1' ||
	    argv[2][0] > '9') {
		fprintf(stderr, "disk_fill: N: \"%s\" is not a positive "
			"whole number\n", argv[2]);
		return 2;
	}
	if (strata_parse_size(argc == 4 ? argv[3] : "4GiB", &cfg.size) != 0) {
		fprintf(stderr, "disk_fill: SIZE: \"%s\" is not a size "
			"(use e.g. 4GiB)\n", argv[3]);
		return 2;
	}

	for (i = 0; i < BODY_BYTES; i++)
		body[i] = (char)('a' + i % 26); /* bare_mhd's body */
	if (strata_headers_add(&headers, "Content-Type",
			       "application/octet-stream") != 0 ||
	    strata_headers_add(&headers, "Cache-Control",
			       "max-age=3600") != 0) {
		fprintf(stderr, "disk_fill: out of memory\n");
		goto out;
	}

	rc = strata_disk_open(&cfg, &disk);
	if (rc != 0) {
		fprintf(stderr, "disk_fill: %s: cannot open the disk tier: "
			"%s\n", cfg.path, strata_strerror(rc));
		goto out;
	}

	/* One `now` for all: every entry gets the same day of freshness. */
	now = strata_wall_ms();
	cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
	main_cpu0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
	t0 = strata_now_us();
	for (i = 1; i <= n; i++) {
		rc = build_entry(i, &headers, body, now, &e);
		if (rc == 0)
			rc = store_waiting(disk, e, &full_waits);
		strata_entry_release(&e);
		if (rc != 0) {
			fprintf(stderr, "disk_fill: /k/%lu: %s\n", i,
				strata_strerror(rc));
			goto out;
		}
	}
	rc = strata_disk_flush(disk);
	t1 = strata_now_us();
	main_cpu1 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
	cpu1 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
	if (rc != 0) {
		fprintf(stderr, "disk_fill: flush: %s\n", strata_strerror(rc));
		goto out;
	}

	strata_disk_stats(disk, &stats);
	/* Every refused store was retried, so all N must have been written;
	 * `dropped` counts the refusals too and says nothing here. */
	if (stats.stores != n) {
		fprintf(stderr, "disk_fill: %" PRIu64 " of %lu entries "
			"written (evicted %" PRIu64 "): is SIZE too small?\n",
			stats.stores, n, stats.evictions);
		goto out;
	}
	rc = check_lookup(disk, n);
	if (rc != 0) {
		fprintf(stderr, "disk_fill: /k/%lu is not served back: %s\n",
			n, strata_strerror(rc));
		goto out;
	}

	seconds = (double)(t1 - t0) / 1e6;
	printf("entries %lu\n", n);
	printf("seconds %.3f\n", seconds);
	printf("entries_per_s %.0f\n", (double)n / seconds);
	printf("queue_full_waits %lu\n", full_waits);
	printf("producer_cpu_s %.3f\n", main_cpu1 - main_cpu0);
	printf("writer_cpu_s %.3f\n",
	       (cpu1 - cpu0) - (main_cpu1 - main_cpu0));
	printf("tier_entries %" PRIu64 "\n", stats.entries);
	printf("tier_bytes_used %" PRIu64 "\n", stats.bytes_used);
	printf("tier_evictions %" PRIu64 "\n", stats.evictions);
	status = 0;
out:
	strata_entry_release(&e);
	strata_disk_close(&disk);
	strata_headers_clear(&headers);
	return status;
}
