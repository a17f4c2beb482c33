/*
 * test_disk.c: the LMDB disk tier end to end: warm restarts (after
 * SIGTERM and after kill -9 during writes), promotion to memory, two
 * processes sharing one directory, a working set larger than memory, and
 * expiry across a restart.
 *
 * Disk writes are asynchronous (a writer thread commits in batches), so a
 * test that needs an entry on disk polls for it with a bounded loop rather
 * than sleeping a fixed time.  Every test owns its directory (mkdtemp) and
 * removes it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"

#define MAX_ARGS 32

static struct origin *origin;
static struct proc *strata, *second;
static char dir[64];

static void setup(void)
{
	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
	strcpy(dir, "/tmp/strata-disk-it-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[256];

	proc_stop(&strata);
	proc_stop(&second);
	origin_stop(&origin);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'.corrupt-*", dir, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(disk, .init = setup, .fini = teardown, .timeout = 90);

/* Start strata on the test's directory with extra args (NULL-ended). */
static struct proc *start(const char *first, ...)
{
	const char *args[MAX_ARGS];
	char origin_base[64], path_arg[128];
	struct proc_spec spec = { .args = args, .disk_path = "" };
	struct proc *p;
	const char *arg;
	size_t n = 0;
	va_list ap;

	snprintf(path_arg, sizeof(path_arg), "cache.disk.path=%s", dir);
	args[n++] = "--upstream";
	args[n++] = origin_url(origin, "", origin_base, sizeof(origin_base));
	args[n++] = "--set";
	args[n++] = path_arg;
	va_start(ap, first);
	for (arg = first; arg != NULL && n < MAX_ARGS - 1;
	     arg = va_arg(ap, const char *))
		args[n++] = arg;
	va_end(ap);
	args[n] = NULL;
	p = proc_start(&spec);
	cr_assert_not_null(p, "strata did not start (output above)");
	return p;
}

static long get(struct proc *p, const char *path, char *cache_status,
		size_t len, uint64_t *hash)
{
	char buf[512];
	struct client_response r;
	const char *cs;
	long status;

	status = client_request("GET", proc_url(p, path, buf, sizeof(buf)),
				NULL, NULL, 0, &r);
	cs = client_header(&r, "Cache-Status");
	if (cache_status != NULL)
		snprintf(cache_status, len, "%s", cs != NULL ? cs : "");
	if (hash != NULL)
		*hash = r.body_hash;
	client_response_free(&r);
	return status;
}

static bool has(const char *s, const char *part)
{
	return s != NULL && strstr(s, part) != NULL;
}

/*
 * Give the writer thread time to commit what was queued.  It commits as
 * soon as it has work (group commit, no delay), so a second is ample; a
 * probe through another process cannot be used instead, because that
 * process would fetch and store the entry itself on a miss.
 */
static void settle(void)
{
	usleep((useconds_t)proc_scaled_ms(1000) * 1000);
}

Test(disk, warm_restart_after_sigterm_serves_disk_hits)
{
	char cs[128];

	strata = start("--route", "/doc/*=60s", NULL);
	cr_assert_eq(get(strata, "/doc/a", cs, sizeof(cs), NULL), 200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	/* SIGTERM drains and lets the writer commit what is queued. */
	cr_assert_eq(proc_stop(&strata), 0, "strata did not exit cleanly");

	strata = start("--route", "/doc/*=60s", NULL);
	cr_assert_eq(get(strata, "/doc/a", cs, sizeof(cs), NULL), 200);
	cr_expect(has(cs, "strata; hit;") && has(cs, "detail=disk"),
		  "after a restart: Cache-Status \"%s\", expected a disk hit",
		  cs);
	cr_assert_eq(get(strata, "/doc/a", cs, sizeof(cs), NULL), 200);
	cr_expect(has(cs, "detail=memory"),
		  "a disk hit is promoted: the next one is a memory hit (%s)",
		  cs);
	cr_expect_eq(origin_count(origin), 1, "the origin saw %zu requests",
		     origin_count(origin));
}

Test(disk, expired_entries_are_not_served_after_a_restart)
{
	char cs[128];

	strata = start("--route", "/doc/*=1s", NULL);
	cr_assert_eq(get(strata, "/doc/short", cs, sizeof(cs), NULL), 200);
	cr_assert_eq(proc_stop(&strata), 0);
	usleep((useconds_t)1500 * 1000);
	strata = start("--route", "/doc/*=1s", NULL);
	cr_assert_eq(get(strata, "/doc/short", cs, sizeof(cs), NULL), 200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored",
			 "an expired entry must not be served");
	cr_expect_eq(origin_count(origin), 2);
}

Test(disk, two_processes_share_one_directory)
{
	char cs[128];
	uint64_t a = 0, b = 0;

	strata = start("--route", "/doc/*=60s", NULL);
	second = start("--route", "/doc/*=60s", NULL);
	cr_assert_eq(get(strata, "/doc/shared", cs, sizeof(cs), &a), 200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	settle();
	cr_assert_eq(get(second, "/doc/shared", cs, sizeof(cs), &b), 200);
	cr_expect(has(cs, "detail=disk"),
		  "the second process: Cache-Status \"%s\", expected a disk hit",
		  cs);
	cr_expect_eq(a, b, "both processes serve the same body");
	cr_expect_eq(origin_count(origin), 1, "the origin saw %zu requests",
		     origin_count(origin));
}

static struct proc *burst_target;

/* Distinct keys as fast as one client can, until strata dies. */
static void *burst_cb(void *arg)
{
	char path[64];

	(void)arg;
	for (int i = 0; i < 5000; i++) {
		snprintf(path, sizeof(path), "/doc/b%d", i);
		if (get(burst_target, path, NULL, 0, NULL) != 200)
			break;
	}
	return NULL;
}

Test(disk, kill_9_during_writes_loses_nothing_committed)
{
	enum { COMMITTED = 100 };
	char path[64], cs[128];
	int served = 0;

	strata = start("--route", "/doc/*=60s", NULL);
	for (int i = 0; i < COMMITTED; i++) {
		snprintf(path, sizeof(path), "/doc/c%d", i);
		cr_assert_eq(get(strata, path, NULL, 0, NULL), 200);
	}
	settle(); /* these are committed: kill -9 must not lose them */

	/* A burst of new writes from another thread, and kill -9 in the
	 * middle of it: the writer thread is mid-transaction or close. */
	{
		pthread_t writer;

		burst_target = strata;
		pthread_create(&writer, NULL, burst_cb, NULL);
		usleep((useconds_t)proc_scaled_ms(300) * 1000);
		cr_assert_eq(proc_signal(strata, SIGKILL), 0);
		pthread_join(writer, NULL);
	}
	proc_stop(&strata);

	strata = start("--route", "/doc/*=60s", NULL);
	for (int i = 0; i < COMMITTED; i++) {
		snprintf(path, sizeof(path), "/doc/c%d", i);
		cr_assert_eq(get(strata, path, cs, sizeof(cs), NULL), 200);
		served += has(cs, "detail=disk");
	}
	cr_expect_eq(served, COMMITTED,
		     "%d of %d committed entries survived kill -9", served,
		     COMMITTED);
}

Test(disk, working_set_larger_than_memory_is_served_from_disk)
{
	enum { KEYS = 200, BYTES = 256 * 1024 }; /* 50 MiB */
	char path[96], cs[128];
	size_t before;
	int disk_hits = 0;

	strata = start("--route", "/big=60s", "--memory", "1MiB", "--set",
		       "cache.disk.size=100MiB", NULL);
	for (int i = 0; i < KEYS; i++) {
		snprintf(path, sizeof(path), "/big?bytes=%d&seed=%d", BYTES, i);
		cr_assert_eq(get(strata, path, NULL, 0, NULL), 200);
	}
	settle();

	before = origin_count(origin);
	for (int i = 0; i < KEYS; i++) {
		uint64_t hash = 0;

		snprintf(path, sizeof(path), "/big?bytes=%d&seed=%d", BYTES, i);
		cr_assert_eq(get(strata, path, cs, sizeof(cs), &hash), 200);
		cr_expect_eq(hash, origin_big_hash(BYTES, (unsigned)i),
			     "key %d: wrong body", i);
		disk_hits += has(cs, "detail=disk");
	}
	cr_expect_eq(origin_count(origin), before,
		     "the origin was asked %zu times after warm-up",
		     origin_count(origin) - before);
	cr_expect_gt(disk_hits, KEYS / 2, "only %d disk hits", disk_hits);
}

Test(disk, disk_off_keeps_nothing_across_restarts)
{
	char cs[128];

	strata = start("--route", "/doc/*=60s", "--set",
		       "cache.disk.enabled=false", NULL);
	cr_assert_eq(get(strata, "/doc/a", cs, sizeof(cs), NULL), 200);
	cr_assert_eq(proc_stop(&strata), 0);
	strata = start("--route", "/doc/*=60s", "--set",
		       "cache.disk.enabled=false", NULL);
	cr_assert_eq(get(strata, "/doc/a", cs, sizeof(cs), NULL), 200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	cr_expect_eq(origin_count(origin), 2);
}

/* Put a DIR/data.mdb that is not an LMDB environment. */
static void plant_garbage(void)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("this is not an LMDB environment, just some text\n", f);
	fclose(f);
}

Test(disk, unusable_directory_is_moved_aside_by_default)
{
	char cs[128], cmd[256];

	plant_garbage();
	strata = start("--route", "/doc/*=60s", NULL);
	cr_assert_eq(get(strata, "/doc/a", cs, sizeof(cs), NULL), 200);
	cr_expect_str_eq(cs, "strata; fwd=miss; stored",
			 "a fresh disk tier stores again");
	snprintf(cmd, sizeof(cmd), "ls -d %s.corrupt-* >/dev/null 2>&1", dir);
	cr_expect_eq(system(cmd), 0, "the old directory was not kept aside");
}

Test(disk, unusable_directory_with_on_corrupt_fail_refuses_to_start)
{
	char path_arg[128];
	const char *args[] = { "--set", path_arg, "--set",
			       "cache.disk.on_corrupt=fail", "--listen",
			       "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			       NULL };
	struct proc_result res;

	plant_garbage();
	snprintf(path_arg, sizeof(path_arg), "cache.disk.path=%s", dir);
	cr_assert_eq(proc_run(args, NULL, 10000, &res), 0);
	cr_expect_eq(res.status, 1, "exit status %d, expected 1", res.status);
	cr_expect(strstr(res.err, dir) != NULL,
		  "the message should name the directory:\n%s", res.err);
	proc_result_free(&res);
}

Test(disk, unwritable_path_exits_naming_it)
{
	const char *args[] = { "--set", "cache.disk.path=/proc/strata-cannot",
			       "--listen", "127.0.0.1:0", "--admin-listen",
			       "127.0.0.1:0", NULL };
	struct proc_result res;

	cr_assert_eq(proc_run(args, NULL, 10000, &res), 0);
	cr_expect_eq(res.status, 1, "exit status %d, expected 1", res.status);
	cr_expect(strstr(res.err, "/proc/strata-cannot") != NULL,
		  "the message should name the path:\n%s", res.err);
	proc_result_free(&res);
}
