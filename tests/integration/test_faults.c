/*
 * test_faults.c: failing neighbours (issue 9).  Each test breaks one thing
 * Strata depends on while the real `strata` program serves, and asserts
 * what the client gets, what reaches the origin and what is (not) kept:
 *
 *   upstream  refuses, resets mid-body, truncates a body (Content-Length
 *             or chunked), sends an invalid status line or an invalid
 *             Content-Length, hangs after its headers or mid-body,
 *             answers 5xx: nothing broken is stored,
 *             the client gets 502/504 (the 5xx itself for a 5xx), the next
 *             request is a miss that reaches the origin again, and an
 *             entry inside its stale-if-error window answers instead;
 *   redis     killed, stopped (SIGSTOP), stalled by a long script (what
 *             DEBUG SLEEP does), CLIENT PAUSE, restarted empty, refusing
 *             writes with -OOM: no request fails, none waits more than a
 *             few cache.redis.timeout, and the tier is used again without
 *             restarting Strata;
 *   disk      the LMDB map full, the file system full (a 1 MiB tmpfs),
 *             writes refused while running (chattr +i), kill -9 during a
 *             write burst, bytes flipped inside data.mdb: requests are
 *             served from memory and the origin, and no entry that is not
 *             byte-exact is ever served, before or after a restart;
 *   memory    a 1 MiB cache.memory under 50 concurrent 200 KiB misses: the
 *             budget holds throughout, and strata exits 0 (so a build with
 *             LeakSanitizer proves nothing leaked).
 *
 * Upstream faults are scripted byte for byte by tests/helpers/raw_origin.h;
 * bodies that must be verified come from the test origin's /big stream,
 * whose hash the test knows (origin_big_hash()).  Waits are scaled by
 * $STRATA_TEST_TIMEOUT_MULT.  Tests that mount a tmpfs or set file
 * attributes need root (CI runs as root) and skip with the reason
 * otherwise.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"
#include "../helpers/prom.h"
#include "../helpers/raw_origin.h"
#include "../helpers/redis_server.h"

#define MAX_ARGS 40

static struct origin *origin;
static struct raw_origin *raw;
static struct redis_server *redis;
static struct proc *strata;
static char dir[64];          /* the test's scratch directory */
static char yaml[96];         /* a configuration file, when written */
static bool mounted;          /* a tmpfs is mounted on dir */
static char immutable[160];   /* a file made immutable, to undo */

static void setup(void)
{
	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
	strcpy(dir, "/tmp/strata-faults-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[512];

	proc_stop(&strata);
	raw_origin_stop(&raw);
	redis_server_stop(&redis);
	origin_stop(&origin);
	if (immutable[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "chattr -i '%s' 2>/dev/null",
			 immutable);
		if (system(cmd) != 0)
			fprintf(stderr, "could not chattr -i %s\n", immutable);
	}
	if (mounted && umount2(dir, 0) != 0 && umount2(dir, MNT_DETACH) != 0)
		fprintf(stderr, "could not unmount %s: %s\n", dir,
			strerror(errno));
	if (yaml[0] != '\0')
		unlink(yaml);
	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null; "
		 "rm -rf '%s'", dir, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers -------------------------------------------------------------- */

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

/*
 * Start strata on `upstream` with the disk tier in `disk_path` (NULL: a
 * fresh temporary one) and the extra arguments (NULL-terminated).
 */
static struct proc *start_on(const char *upstream, const char *disk_path,
			     const char *first, ...)
{
	const char *args[MAX_ARGS] = {"--upstream", upstream,
				      "--set", "log.level=error",
				      "--set", "access_log=false"};
	struct proc_spec spec = {.args = args, .disk_path = disk_path};
	struct proc *p;
	size_t n = 6;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a != NULL && n < MAX_ARGS - 1;
	     a = va_arg(ap, const char *))
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	p = proc_start(&spec);
	cr_assert_not_null(p, "strata did not start (output above)");
	return p;
}

static char *origin_base(void)
{
	static char buf[64];

	return origin_url(origin, "", buf, sizeof(buf));
}

static char *raw_base(void)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "http://127.0.0.1:%u",
		 raw_origin_port(raw));
	return buf;
}

/* Write `text` to a new configuration file; returns its path. */
static const char *write_yaml(const char *text)
{
	FILE *f;
	int fd;

	snprintf(yaml, sizeof(yaml), "/tmp/strata-faults-XXXXXX.yaml");
	fd = mkstemps(yaml, 5);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return yaml;
}

/* A "--set" value, in a buffer that lives for the test. */
static const char *setting(const char *fmt, ...)
{
	static char bufs[8][128];
	static int next;
	char *b = bufs[next++ % 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof(bufs[0]), fmt, ap);
	va_end(ap);
	return b;
}

struct answer {
	long status;            /* HTTP status; 0 when none arrived */
	int curl_code;
	char cache_status[160];
	char body[256];         /* the start of the body */
	size_t body_len;
	uint64_t hash;          /* FNV-1a 64 of the whole body */
	double seconds;
};

static struct answer get_from(struct proc *p, const char *path)
{
	struct answer a = {0};
	struct client_response r;
	char url[512];

	proc_url(p, path, url, sizeof(url));
	client_request("GET", url, NULL, NULL, 0, &r);
	a.status = r.status;
	a.curl_code = r.curl_code;
	snprintf(a.cache_status, sizeof(a.cache_status), "%s",
		 client_header(&r, "Cache-Status") ?: "");
	snprintf(a.body, sizeof(a.body), "%.*s", (int)r.body_len,
		 r.body ? r.body : "");
	a.body_len = r.body_len;
	a.hash = r.body_hash;
	a.seconds = r.seconds;
	client_response_free(&r);
	return a;
}

static struct answer get(const char *path)
{
	return get_from(strata, path);
}

static bool has(const struct answer *a, const char *part)
{
	return strstr(a->cache_status, part) != NULL;
}

static bool is_hit(const struct answer *a)
{
	return strncmp(a->cache_status, "strata; hit", 11) == 0;
}

/* The value of metric `name` with exactly `labels` on p's admin listener,
 * NAN when it cannot be read. */
static double metric(struct proc *p, const char *name, const char *labels)
{
	struct client_response r;
	struct prom_doc *d = NULL;
	char url[128], err[256];
	double v = NAN;
	bool found = false;

	proc_admin_url(p, "/metrics", url, sizeof(url));
	if (client_request("GET", url, NULL, NULL, 0, &r) == 200 &&
	    r.body != NULL && prom_parse(r.body, &d, err, sizeof(err)) == 0) {
		v = prom_value(d, name, labels, &found);
		if (!found)
			v = NAN;
	}
	prom_free(&d);
	client_response_free(&r);
	return v;
}

/* The /big path for `bytes` bytes of stream `seed`. */
static const char *big_path(char *buf, size_t len, unsigned bytes,
			    unsigned seed)
{
	snprintf(buf, len, "/big?bytes=%u&seed=%u", bytes, seed);
	return buf;
}

/* ---- upstream faults ------------------------------------------------------- */

/*
 * Routes for the upstream tests: /r/ keeps answers a minute; /s/ keeps
 * them a second, then a minute more for stale-if-error.
 */
static const char routes_yaml[] =
	"routes:\n"
	"  - path: /r/*\n"
	"    ttl: 60s\n"
	"  - path: /s/*\n"
	"    ttl: 1s\n"
	"    stale_if_error: 1m\n";

static const char good_a[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
			     "Connection: close\r\n\r\ngood\n";
static const char good_b[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
			     "Connection: close\r\n\r\nfresh\n";

/* strata in front of the raw origin (already started), with the routes
 * above and an upstream timeout of a second (scaled). */
static void start_raw_front(void)
{
	strata = start_on(raw_base(), NULL, "-c", write_yaml(routes_yaml),
			  "--set",
			  setting("upstream.timeout=%ldms",
				  proc_scaled_ms(1000)),
			  NULL);
}

struct fault {
	const char *script;     /* what the origin sends */
	bool reset;             /* then a TCP reset instead of a close */
	unsigned hang_ms;       /* hang after the script (0: close) */
	long status;            /* what the client must get */
	const char *stale_status; /* Cache-Status of the stale answer */
};

/*
 * The contract for one upstream fault, on a fresh strata:
 *  1. a miss that meets the fault gets f->status, marked fwd=miss and not
 *     stored, within the expected time;
 *  2. the next request for the key is a miss again that reaches the
 *     origin (nothing of the broken answer was kept);
 *  3. once the origin answers well, that answer is stored and hit;
 *  4. an entry expired but inside its stale-if-error window answers in
 *     place of the fault, and is replaced by the next good answer (the
 *     broken one was not stored over it).
 */
static void check_fault(const struct fault *f)
{
	/* A fault that hangs ends by the upstream timeout (1 s, scaled). */
	long min_ms = f->hang_ms ? proc_scaled_ms(1000) - 50 : 0;
	long max_ms = (f->hang_ms ? proc_scaled_ms(1000) : 0) +
		      proc_scaled_ms(2000);
	struct answer a;

	raw = raw_origin_start(good_a);
	cr_assert_not_null(raw);
	start_raw_front();

	/* Put a good entry under /s/stale first, and let it expire. */
	a = get("/s/stale");
	cr_assert_eq(a.status, 200);
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	cr_assert_eq(raw_origin_count(raw), 1);

	raw_origin_set(raw, f->script, f->reset);
	raw_origin_set_hang(raw, f->hang_ms ? (unsigned)proc_scaled_ms(30000)
					    : 0);

	/* 1. The fault on a key never stored. */
	a = get("/r/key");
	cr_expect_eq(a.status, f->status, "status %ld (curl %d), expected "
		     "%ld; body \"%s\"", a.status, a.curl_code, f->status,
		     a.body);
	cr_expect(has(&a, "fwd=miss") && !has(&a, "stored") && !is_hit(&a),
		  "Cache-Status \"%s\"", a.cache_status);
	cr_expect(a.seconds * 1000 >= min_ms && a.seconds * 1000 <= max_ms,
		  "answered in %.3f s, expected %ld..%ld ms", a.seconds,
		  min_ms, max_ms);
	cr_expect_eq(raw_origin_count(raw), 2);

	/* 2. Not kept: the next request asks the origin again. */
	a = get("/r/key");
	cr_expect_eq(a.status, f->status);
	cr_expect(!is_hit(&a) && !has(&a, "stored"), "second request: %s",
		  a.cache_status);
	cr_expect_eq(raw_origin_count(raw), 3, "the second request must "
		     "reach the origin (count %zu)", raw_origin_count(raw));

	/* 4. (before 3, while the fault lasts) Stale-if-error: the old
	 * entry answers in place of the broken one. */
	sleep_ms(1300); /* /s/stale expires (1 s ttl, wall clock) */
	a = get("/s/stale");
	cr_expect_eq(a.status, 200);
	cr_expect_str_eq(a.body, "good\n");
	cr_expect_str_eq(a.cache_status, f->stale_status);
	cr_expect_eq(raw_origin_count(raw), 4, "the stale answer comes "
		     "after the fetch failed");

	/* 3. The origin recovers: its answer is stored, then hit. */
	raw_origin_set_hang(raw, 0);
	raw_origin_set(raw, good_b, false);
	a = get("/r/key");
	cr_expect_eq(a.status, 200);
	cr_expect_str_eq(a.body, "fresh\n");
	cr_expect_str_eq(a.cache_status, "strata; fwd=miss; stored");
	a = get("/r/key");
	cr_expect(is_hit(&a), "%s", a.cache_status);
	cr_expect_str_eq(a.body, "fresh\n");
	a = get("/s/stale");
	cr_expect_str_eq(a.body, "fresh\n",
			 "the stale entry is replaced by the good answer");
	cr_expect(has(&a, "stored"), "%s", a.cache_status);
	cr_expect_eq(raw_origin_count(raw), 6);
}

static const char stale_no_answer[] =
	"strata; fwd=stale; detail=stale-if-error";

Test(faults, upstream_refusing_connections_gets_502_and_stale_if_error)
{
	unsigned port;
	struct answer a;

	raw = raw_origin_start(good_a);
	cr_assert_not_null(raw);
	start_raw_front();
	a = get("/s/stale");
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	sleep_ms(1300);
	port = raw_origin_port(raw);
	raw_origin_stop(&raw); /* nothing listens there now */
	cr_assert(client_connect_refused(port));

	for (int i = 0; i < 2; i++) {
		a = get("/r/key");
		cr_expect_eq(a.status, 502, "request %d: %ld", i, a.status);
		cr_expect_str_eq(a.cache_status, "strata; fwd=miss");
		cr_expect_leq(a.seconds, proc_scaled_ms(2000) / 1000.0,
			      "a refusal is answered at once (%.3f s)",
			      a.seconds);
	}
	a = get("/s/stale");
	cr_expect_eq(a.status, 200);
	cr_expect_str_eq(a.body, "good\n");
	cr_expect_str_eq(a.cache_status, stale_no_answer);
}

Test(faults, upstream_reset_mid_body_is_502_and_not_stored)
{
	static char script[4096];
	const struct fault f = {
		.script = script, .reset = true, .status = 502,
		.stale_status = stale_no_answer,
	};
	int n = snprintf(script, sizeof(script),
			 "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n"
			 "Connection: close\r\n\r\n");

	memset(script + n, 'x', 2000); /* 2000 of the 10000 bytes */
	script[n + 2000] = '\0';
	check_fault(&f);
}

Test(faults, upstream_reset_of_a_close_delimited_body_is_502)
{
	/* No length: the body ends at the close, so only the reset tells a
	 * whole answer from a cut one. */
	const struct fault f = {
		.script = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
			  "a body cut short by a reset",
		.reset = true, .status = 502, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

Test(faults, upstream_short_content_length_body_is_502_and_not_stored)
{
	const struct fault f = {
		.script = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
			  "Connection: close\r\n\r\nonly this",
		.status = 502, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

Test(faults, upstream_chunked_body_without_last_chunk_is_502)
{
	/* Every chunk is whole, but the terminating 0-chunk never comes. */
	const struct fault f = {
		.script = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			  "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n",
		.status = 502, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

Test(faults, upstream_chunked_body_cut_mid_chunk_is_502)
{
	const struct fault f = {
		.script = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			  "Connection: close\r\n\r\n5\r\nhello\r\n20\r\nnot 32 "
			  "bytes",
		.status = 502, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

Test(faults, upstream_invalid_status_line_is_502)
{
	const struct fault f = {
		.script = "HTTP/1.1 2OO OK\r\nContent-Length: 5\r\n"
			  "Connection: close\r\n\r\nbad!\n",
		.status = 502, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

/*
 * Each script in turn on its own key: 502, nothing stored, and the next
 * request for the key reaches the origin again.
 */
/* `text` on one line, CR and LF written \r and \n (for messages). */
static const char *one_line(const char *text, char *buf, size_t len)
{
	size_t n = 0;

	for (; *text != '\0' && n < len - 3; text++) {
		if (*text == '\r' || *text == '\n') {
			buf[n++] = '\\';
			buf[n++] = *text == '\r' ? 'r' : 'n';
		} else {
			buf[n++] = *text;
		}
	}
	buf[n] = '\0';
	return buf;
}

/*
 * Each script in turn on its own key: 502, nothing stored, and the next
 * request for the key reaches the origin again.
 */
static void check_each_is_502(const char *const *scripts, size_t n)
{
	raw = raw_origin_start(good_a);
	cr_assert_not_null(raw);
	start_raw_front();
	for (size_t i = 0; i < n; i++) {
		char path[32], script[512], body[512];
		size_t before = raw_origin_count(raw);
		struct answer a, b;

		snprintf(path, sizeof(path), "/r/case-%zu", i);
		raw_origin_set(raw, scripts[i], false);
		a = get(path);
		b = get(path);
		cr_expect(a.status == 502 && b.status == 502 &&
				  !has(&a, "stored") && !is_hit(&b) &&
				  raw_origin_count(raw) == before + 2,
			  "\"%s\": got %ld \"%s\" body \"%s\", then %ld "
			  "\"%s\"; expected 502 twice, nothing stored",
			  one_line(scripts[i], script, sizeof(script)),
			  a.status, a.cache_status,
			  one_line(a.body, body, sizeof(body)), b.status,
			  b.cache_status);
	}
}

Test(faults, upstream_invalid_content_length_is_502_and_not_stored)
{
	/*
	 * RFC 9112 section 6.3: a response whose Content-Length is invalid
	 * (not 1*DIGIT, or several different values) has invalid framing;
	 * a proxy must discard it and answer 502.  strata.yaml(5) and
	 * docs/conformance.md: a response whose framing cannot be trusted
	 * is never cached.
	 */
	static const char *const scripts[] = {
		/* Two values: the first says the body is cut short. */
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
		"Content-Length: 5\r\nConnection: close\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
		"Content-Length: 7\r\nConnection: close\r\n\r\nhello\n!",
		"HTTP/1.1 200 OK\r\nContent-Length: 5, 7\r\n"
		"Connection: close\r\n\r\nhello\n!",
		"HTTP/1.1 200 OK\r\nContent-Length: 5abc\r\n"
		"Connection: close\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n"
		"Connection: close\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n"
		"Connection: close\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n"
		"Connection: close\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n"
		"Content-Length: 99999999999999999999999\r\n"
		"Connection: close\r\n\r\nhello",
	};

	check_each_is_502(scripts, sizeof(scripts) / sizeof(scripts[0]));
}

Test(faults, upstream_status_code_outside_100_to_599_is_502)
{
	/* RFC 9110 section 15: values outside 100..599 are invalid. */
	static const char *const scripts[] = {
		"HTTP/1.1 600 Beyond\r\nContent-Length: 5\r\n"
		"Connection: close\r\n\r\nhello",
		"HTTP/1.1 099 Below\r\nContent-Length: 5\r\n"
		"Connection: close\r\n\r\nhello",
		"HTTP/1.1 1000 Four digits\r\nContent-Length: 5\r\n"
		"Connection: close\r\n\r\nhello",
	};

	check_each_is_502(scripts, sizeof(scripts) / sizeof(scripts[0]));
}

Test(faults, upstream_answer_that_is_not_http_is_502)
{
	/* No status line at all (what HTTP/0.9 would send). */
	const struct fault f = {
		.script = "<html>no status line, no headers</html>\n",
		.status = 502, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

Test(faults, upstream_hanging_after_headers_is_504_after_the_timeout)
{
	const struct fault f = {
		.script = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
			  "Connection: close\r\n\r\n",
		.hang_ms = 1, .status = 504, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

Test(faults, upstream_hanging_mid_body_is_504_after_the_timeout)
{
	const struct fault f = {
		.script = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
			  "Connection: close\r\n\r\nthe first part",
		.hang_ms = 1, .status = 504, .stale_status = stale_no_answer,
	};

	check_fault(&f);
}

Test(faults, upstream_5xx_is_passed_on_not_stored_and_stale_if_error)
{
	/* A 5xx is an answer: the client gets it as it is (not 502), and
	 * it is not stored; stale-if-error answers with its status named. */
	const struct fault f = {
		.script = "HTTP/1.1 503 Service Unavailable\r\n"
			  "Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n",
		.status = 503,
		.stale_status = "strata; fwd=stale; fwd-status=503; "
				"detail=stale-if-error",
	};

	check_fault(&f);
}

Test(faults, upstream_500_from_the_test_origin_is_a_miss_every_time)
{
	struct answer a;

	strata = start_on(origin_base(), NULL, "--route", "/status/*=60s",
			  NULL);
	for (int i = 0; i < 3; i++) {
		a = get("/status/500");
		cr_expect_eq(a.status, 500);
		cr_expect_str_eq(a.body, "status 500\n");
		cr_expect_str_eq(a.cache_status, "strata; fwd=miss");
	}
	cr_expect_eq(origin_count_prefix(origin, "/status/500"), 3);
}

Test(faults, a_streamed_answer_cut_short_is_not_stored)
{
	/* Larger than cache.max_object_size: streamed to the client as it
	 * arrives, so the client sees the cut; it must not be stored. */
	enum { DECLARED = 200000, SENT = 60000 };
	static char script[SENT + 256];
	int n = snprintf(script, 256, "HTTP/1.1 200 OK\r\nContent-Length: %d"
			 "\r\nConnection: close\r\n\r\n", DECLARED);
	struct answer a;

	memset(script + n, 'y', SENT);
	script[n + SENT] = '\0';
	raw = raw_origin_start(script);
	cr_assert_not_null(raw);
	raw_origin_set(raw, script, true);
	strata = start_on(raw_base(), NULL, "--route", "/r/*=60s",
			  "--max-object-size", "16KiB", NULL);
	for (int i = 0; i < 2; i++) {
		a = get("/r/streamed");
		cr_expect_neq(a.curl_code, 0, "request %d: the client must see "
			      "the answer cut short (got %zu bytes)", i,
			      a.body_len);
		cr_expect_lt(a.body_len, (size_t)DECLARED);
		cr_expect(!is_hit(&a), "request %d: %s", i, a.cache_status);
	}
	cr_expect_eq(raw_origin_count(raw), 2, "the second request reaches "
		     "the origin again");
}

/* ---- the Redis tier --------------------------------------------------------- */

#define REDIS_TIMEOUT_MS 200

/* strata on the test origin with the Redis tier on `redis`. */
static void start_redis_front(void)
{
	char url[128];

	redis_server_url(redis, false, NULL, url, sizeof(url));
	strata = start_on(origin_base(), NULL, "--route", "/doc/*=60s",
			  "--set", setting("cache.redis.url=%s", url),
			  "--set", "cache.redis.prefix=ft",
			  "--set", setting("cache.redis.timeout=%dms",
					   REDIS_TIMEOUT_MS),
			  "--set", "cache.redis.pool=2", NULL);
}

/* Entries under the test's prefix in Redis (-1 when Redis does not
 * answer). */
static long redis_entries(void)
{
	char out[64];

	if (redis_server_cmd(redis, 4,
			     (const char *[]){"EVAL",
					      "return #redis.call('KEYS', "
					      "'ft:e:*')",
					      "0", ""},
			     NULL, out, sizeof(out), NULL) != ':')
		return -1;
	return atol(out);
}

/*
 * Recovery without a restart: new misses reach Redis again.  Sends a new
 * miss every 100 ms until Redis holds more than `before` entries, for up
 * to 15 s (scaled; the breaker's back-off reaches 5 s).
 */
static bool redis_used_again(long before)
{
	long deadline = now_ms() + proc_scaled_ms(15000);
	char path[64];

	for (unsigned i = 0; now_ms() < deadline; i++) {
		snprintf(path, sizeof(path), "/doc/after/%u", i);
		if (get(path).status != 200)
			return false;
		sleep_ms(100);
		if (redis_entries() > before)
			return true;
	}
	return false;
}

struct load {
	struct proc *p;
	atomic_bool stop;
	unsigned ok, failed, n;
	long last_bad;
	double worst_s;
	char worst_status[256];
};

/* GETs in a loop until told to stop: every other one a new key (a miss
 * that asks Redis), the others 20 keys that repeat (memory hits). */
static void *load_thread(void *arg)
{
	struct load *l = arg;
	char path[64];

	while (!atomic_load(&l->stop)) {
		unsigned i = l->n++;
		struct answer a;

		if (i % 2)
			snprintf(path, sizeof(path), "/doc/new/%u", i);
		else
			snprintf(path, sizeof(path), "/doc/hot/%u", i / 2 % 20);
		a = get_from(l->p, path);
		if (a.status == 200) {
			l->ok++;
		} else {
			l->failed++;
			l->last_bad = a.status;
		}
		if (a.seconds > l->worst_s) {
			l->worst_s = a.seconds;
			snprintf(l->worst_status, sizeof(l->worst_status),
				 "%s %s", path, a.cache_status);
		}
	}
	return NULL;
}

/*
 * Run the load while `fault` breaks Redis for `fault_ms`, then `heal`
 * mends it; assert that no request failed and none took longer than a
 * few Redis timeouts, and that the tier is used again.
 */
static void redis_fault_under_load(void (*fault)(void), long fault_ms,
				   void (*heal)(void))
{
	struct load l = {0};
	pthread_t t;
	long before;
	/* A request meets at most a couple of timed-out round trips (its
	 * lookup, then the lock) before the breaker opens. */
	double bound_s = proc_scaled_ms(4 * REDIS_TIMEOUT_MS + 500) / 1000.0;

	redis = redis_server_start(NULL);
	cr_assert_not_null(redis, "cannot start redis-server");
	start_redis_front();
	l.p = strata;
	cr_assert_eq(pthread_create(&t, NULL, load_thread, &l), 0);
	sleep_ms(proc_scaled_ms(500));
	fault();
	sleep_ms(fault_ms);
	heal();
	sleep_ms(proc_scaled_ms(500));
	atomic_store(&l.stop, true);
	pthread_join(t, NULL);
	cr_expect_eq(l.failed, 0, "%u of %u requests failed (last status "
		     "%ld)", l.failed, l.ok + l.failed, l.last_bad);
	cr_expect_gt(l.ok, 50, "only %u requests in the run", l.ok);
	cr_expect_leq(l.worst_s, bound_s, "slowest request %.3f s (%s), "
		      "bound %.3f s", l.worst_s, l.worst_status, bound_s);
	before = redis_entries();
	cr_assert_geq(before, 0, "redis does not answer after the fault");
	cr_expect(redis_used_again(before),
		  "new entries never reached Redis after it came back");
	cr_expect_eq(metric(strata, "strata_tier_up", "tier=\"redis\""), 1.0);
}

static void kill_redis(void)
{
	cr_assert_eq(redis_server_kill(redis), 0);
}

static void restart_redis(void)
{
	cr_assert_eq(redis_server_restart(redis), 0);
}

static void stop_redis(void)
{
	cr_assert_eq(redis_server_pause(redis), 0);
}

static void resume_redis(void)
{
	cr_assert_eq(redis_server_resume(redis), 0);
}

static void nothing(void)
{
}

/*
 * Send one command to Redis without waiting for the answer; returns the
 * socket, whose reply the caller reads (or not) and closes.
 */
static int redis_send(int argc, const char *const *argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)
						  redis_server_port(redis))};
	char buf[1024];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int n = snprintf(buf, sizeof(buf), "*%d\r\n", argc);

	cr_assert_geq(fd, 0);
	for (int i = 0; i < argc; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "$%zu\r\n%s\r\n",
			      strlen(argv[i]), argv[i]);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(write(fd, buf, (size_t)n), n);
	return fd;
}

static int stall_fd = -1;

/*
 * What DEBUG SLEEP does (Redis 7 refuses DEBUG unless started with
 * enable-debug-command, which the helper does not set): a script that
 * spins for 1.5 s, during which Redis accepts connections but answers
 * nothing (below lua-time-limit, 5 s, after which it would answer BUSY).
 */
static void stall_redis(void)
{
	stall_fd = redis_send(4, (const char *[]){
		"EVAL",
		"local t = redis.call('TIME') "
		"local e = t[1] * 1000000 + t[2] + tonumber(ARGV[1]) * 1000 "
		"repeat t = redis.call('TIME') "
		"until t[1] * 1000000 + t[2] >= e return 1",
		"0", "1500"});
}

static void stall_over(void)
{
	char reply[64] = "";
	ssize_t n = read(stall_fd, reply, sizeof(reply) - 1); /* ":1" */

	close(stall_fd);
	stall_fd = -1;
	cr_assert_gt(n, 0);
	cr_assert(strncmp(reply, ":1", 2) == 0, "the stall script: %s",
		  reply);
}

static void client_pause_redis(void)
{
	char out[64];

	cr_assert_eq(redis_server_cmd(redis, 3,
				      (const char *[]){"CLIENT", "PAUSE",
						       "1500", "ALL"},
				      NULL, out, sizeof(out), NULL),
		     '+', "CLIENT PAUSE: %s", out);
}

Test(faults, redis_killed_fails_no_request_and_is_used_again)
{
	redis_fault_under_load(kill_redis, proc_scaled_ms(1500),
			       restart_redis);
}

Test(faults, redis_stopped_fails_no_request_and_is_used_again)
{
	/* SIGSTOP: the kernel accepts connections, nothing answers. */
	redis_fault_under_load(stop_redis, proc_scaled_ms(1500),
			       resume_redis);
}

Test(faults, redis_stalled_like_debug_sleep_fails_no_request)
{
	redis_fault_under_load(stall_redis, 1500, stall_over);
}

Test(faults, redis_client_pause_fails_no_request)
{
	redis_fault_under_load(client_pause_redis, 1500, nothing);
}

Test(faults, redis_restarted_empty_fails_no_request_and_is_refilled)
{
	struct answer a;
	long deadline;
	bool refetched = false;
	char out[64];

	redis = redis_server_start(NULL);
	cr_assert_not_null(redis, "cannot start redis-server");
	start_redis_front();
	a = get("/doc/old");
	cr_assert(has(&a, "stored"), "%s", a.cache_status);
	{
		struct load l = {.p = strata};
		pthread_t t;

		cr_assert_eq(pthread_create(&t, NULL, load_thread, &l), 0);
		sleep_ms(proc_scaled_ms(500));
		restart_redis(); /* kill, start again: an empty dataset */
		sleep_ms(proc_scaled_ms(1000));
		atomic_store(&l.stop, true);
		pthread_join(t, NULL);
		cr_expect_eq(l.failed, 0, "%u of %u requests failed (last "
			     "%ld)", l.failed, l.ok + l.failed, l.last_bad);
	}
	/* Redis holds another dataset: the purges made meanwhile cannot be
	 * known, so Strata drops its own copies (docs/redis-tier.md,
	 * "Replicas that were away") and fetches /doc/old again. */
	deadline = now_ms() + proc_scaled_ms(15000);
	while (!refetched && now_ms() < deadline) {
		a = get("/doc/old");
		cr_assert_eq(a.status, 200);
		refetched = origin_count_prefix(origin, "/doc/old") == 2;
		if (!refetched)
			sleep_ms(100);
	}
	cr_expect(refetched, "the copy kept from the old dataset is still "
		  "served (%s)", a.cache_status);
	cr_expect(redis_used_again(redis_entries()),
		  "new entries never reached the new Redis");
	cr_expect_eq(redis_server_cmd(redis, 2,
				      (const char *[]){"EXISTS", "ft:epoch"},
				      NULL, out, sizeof(out), NULL),
		     ':');
	cr_expect_str_eq(out, "1", "the new dataset gets an epoch");
}

Test(faults, redis_refusing_writes_with_oom_fails_no_request)
{
	struct load l = {0};
	pthread_t t;
	char out[256];
	long before;
	double bound_s = proc_scaled_ms(4 * REDIS_TIMEOUT_MS + 500) / 1000.0;

	redis = redis_server_start(NULL);
	cr_assert_not_null(redis, "cannot start redis-server");
	start_redis_front();
	cr_assert_eq(get("/doc/warm").status, 200);
	/* Written behind the answer: wait until it is there. */
	for (long end = now_ms() + proc_scaled_ms(2000);
	     redis_entries() < 1 && now_ms() < end;)
		sleep_ms(5);
	before = redis_entries();
	cr_assert_eq(before, 1, "/doc/warm never reached Redis");
	cr_assert_eq(redis_server_cmd(redis, 4,
				      (const char *[]){"CONFIG", "SET",
						       "maxmemory-policy",
						       "noeviction"},
				      NULL, out, sizeof(out), NULL),
		     '+', "%s", out);
	cr_assert_eq(redis_server_cmd(redis, 4,
				      (const char *[]){"CONFIG", "SET",
						       "maxmemory", "1"},
				      NULL, out, sizeof(out), NULL),
		     '+', "%s", out);
	/* The fault is real: a write is refused. */
	cr_assert_eq(redis_server_cmd(redis, 3,
				      (const char *[]){"SET", "probe", "x"},
				      NULL, out, sizeof(out), NULL),
		     '-');
	cr_assert(strncmp(out, "OOM", 3) == 0, "%s", out);

	l.p = strata;
	cr_assert_eq(pthread_create(&t, NULL, load_thread, &l), 0);
	sleep_ms(proc_scaled_ms(1500));
	atomic_store(&l.stop, true);
	pthread_join(t, NULL);
	cr_expect_eq(l.failed, 0, "%u of %u requests failed (last %ld)",
		     l.failed, l.ok + l.failed, l.last_bad);
	cr_expect_gt(l.ok, 50, "only %u requests in the run", l.ok);
	cr_expect_leq(l.worst_s, bound_s, "slowest request %.3f s (%s)",
		      l.worst_s, l.worst_status);
	cr_expect_eq(redis_entries(), before, "nothing could be written");
	/* Hits still come from memory meanwhile. */
	{
		struct answer a = get("/doc/hot/1");

		cr_expect(has(&a, "detail=memory"), "%s", a.cache_status);
	}

	cr_assert_eq(redis_server_cmd(redis, 4,
				      (const char *[]){"CONFIG", "SET",
						       "maxmemory", "0"},
				      NULL, out, sizeof(out), NULL),
		     '+', "%s", out);
	cr_expect(redis_used_again(before),
		  "new entries never reached Redis once it had room");
}

/* ---- the disk tier ---------------------------------------------------------- */

/* The disk directory inside the scratch directory. */
static const char *disk_dir(void)
{
	static char path[96];

	snprintf(path, sizeof(path), "%s/disk", dir);
	return path;
}

/* GET /big for `bytes` of `seed`; asserts a 200 with the exact body.
 * Returns the answer. */
static struct answer get_big(struct proc *p, unsigned bytes, unsigned seed)
{
	char path[96];
	struct answer a = get_from(p, big_path(path, sizeof(path), bytes,
					       seed));

	cr_expect_eq(a.status, 200, "%s: status %ld (curl %d)", path,
		     a.status, a.curl_code);
	cr_expect_eq(a.body_len, bytes, "%s: %zu bytes", path, a.body_len);
	cr_expect_eq(a.hash, origin_big_hash(bytes, seed),
		     "%s: the body is not the origin's (%s)", path,
		     a.cache_status);
	return a;
}

static bool corrupt_sibling_exists(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ls -d '%s'.corrupt-* >/dev/null 2>&1",
		 path);
	return system(cmd) == 0;
}

Test(faults, disk_map_full_evicts_and_serves_only_exact_bodies)
{
	enum { KEYS = 120, BYTES = 16 * 1024 }; /* ~2 MiB into a 1 MiB map */
	int disk_hits = 0;
	double bytes, limit;

	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  "--memory", "0", "--set", "cache.disk.size=1MiB",
			  NULL);
	for (unsigned i = 0; i < KEYS; i++)
		get_big(strata, BYTES, i);
	sleep_ms(proc_scaled_ms(1000)); /* the writer commits */
	/* Newest first: the map holds the last few dozen (eviction takes
	 * those nearest to expiry, the oldest here), and each miss stores
	 * and evicts again, so in the order written every one would miss. */
	for (unsigned i = KEYS; i-- > 0;) {
		struct answer a = get_big(strata, BYTES, i);

		disk_hits += has(&a, "detail=disk");
	}
	bytes = metric(strata, "strata_tier_bytes", "tier=\"disk\"");
	limit = metric(strata, "strata_tier_limit_bytes", "tier=\"disk\"");
	cr_expect_eq(limit, 1024.0 * 1024.0);
	cr_expect_leq(bytes, limit, "the disk tier holds %.0f bytes", bytes);
	cr_expect_gt(metric(strata, "strata_tier_evictions_total",
			    "tier=\"disk\""),
		     0.0, "a full map must have evicted");
	cr_expect_gt(disk_hits, 0, "the disk tier answered nothing");
	cr_expect_lt(disk_hits, KEYS, "everything fit: the map never filled");
	cr_assert_eq(proc_stop(&strata), 0);

	/* After a restart, too: whatever is served is exact. */
	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  "--memory", "0", "--set", "cache.disk.size=1MiB",
			  NULL);
	for (unsigned i = 0; i < KEYS; i++)
		get_big(strata, BYTES, i);
	cr_expect(!corrupt_sibling_exists(disk_dir()));
}

/* Mount a 1 MiB tmpfs on the scratch directory, or skip. */
static void mount_small_tmpfs(void)
{
	if (mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700") != 0)
		cr_skip_test("cannot mount a tmpfs on %s (%s): the file "
			     "system full case needs root", dir,
			     strerror(errno));
	mounted = true;
}

Test(faults, disk_file_system_full_serves_from_memory_and_origin)
{
	enum { KEYS = 100, BYTES = 16 * 1024 }; /* 1.6 MiB onto 1 MiB */
	size_t fetched;
	int status;

	mount_small_tmpfs();
	/* The map (64 MiB) is larger than the file system: writes meet
	 * ENOSPC, not MDB_MAP_FULL. */
	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  "--set", "cache.disk.size=64MiB", NULL);
	for (unsigned i = 0; i < KEYS; i++)
		get_big(strata, BYTES, i);
	sleep_ms(proc_scaled_ms(1000));
	cr_expect_gt(metric(strata, "strata_store_dropped_total",
			    "tier=\"disk\""),
		     0.0, "the file system never filled: no disk write failed");
	/* Served from memory, none fetched again. */
	fetched = origin_count(origin);
	for (unsigned i = 0; i < KEYS; i++) {
		struct answer a = get_big(strata, BYTES, i);

		cr_expect(has(&a, "detail=memory"), "seed %u: %s", i,
			  a.cache_status);
	}
	cr_expect_eq(origin_count(origin), fetched);
	/* New misses still work. */
	get_big(strata, BYTES, 1000);
	status = proc_stop(&strata);
	cr_expect_eq(status, 0, "strata exited %d after the disk filled",
		     status);

	/* Restarted on the still full file system: it serves, and only
	 * exact bodies. */
	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  "--set", "cache.disk.size=64MiB", NULL);
	for (unsigned i = 0; i < KEYS; i++)
		get_big(strata, BYTES, i);
	get_big(strata, BYTES, 1001);
	cr_expect(!corrupt_sibling_exists(disk_dir()));
}

Test(faults, disk_writes_refused_while_running_serve_from_memory)
{
	/*
	 * "Permissions removed while running".  strata runs as root here (as
	 * in CI), and root ignores modes: chmod 000 on the directory and its
	 * files changes nothing for a process that already holds them open
	 * (LMDB opens them once).  What does stop root is the immutable
	 * attribute: with chattr +i on data.mdb, every write to it fails
	 * with EPERM even through the open descriptor (Linux checks it on
	 * write).  So this test removes the modes and sets +i, and checks
	 * that the disk tier's failing writes cost the clients nothing;
	 * then that a restart while writes are still refused exits 1 naming
	 * the path (strata(8), EXIT STATUS), and one after the attribute is
	 * gone serves only exact bodies.
	 */
	enum { KEYS = 60, BYTES = 16 * 1024 };
	char data[160], cmd[512], path_arg[160];
	const char *args[] = {"--set", path_arg, "--listen", "127.0.0.1:0",
			      "--admin-listen", "127.0.0.1:0", NULL};
	struct proc_result res;
	size_t fetched;

	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  NULL);
	get_big(strata, BYTES, 0);
	sleep_ms(proc_scaled_ms(500));
	snprintf(data, sizeof(data), "%s/data.mdb", disk_dir());
	snprintf(cmd, sizeof(cmd), "chmod 000 '%s' '%s'/*", disk_dir(),
		 disk_dir());
	cr_assert_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "chattr +i '%s' 2>&1", data);
	if (system(cmd) != 0)
		cr_skip_test("chattr +i %s failed: this case needs root and "
			     "a file system with the immutable attribute",
			     data);
	snprintf(immutable, sizeof(immutable), "%s", data);

	for (unsigned i = 1; i <= KEYS; i++)
		get_big(strata, BYTES, i);
	sleep_ms(proc_scaled_ms(1000));
	cr_expect_gt(metric(strata, "strata_store_dropped_total",
			    "tier=\"disk\""),
		     0.0, "no disk write failed: the fault did not bite");
	fetched = origin_count(origin);
	for (unsigned i = 0; i <= KEYS; i++) {
		struct answer a = get_big(strata, BYTES, i);

		cr_expect(has(&a, "detail=memory"), "seed %u: %s", i,
			  a.cache_status);
	}
	cr_expect_eq(origin_count(origin), fetched);
	cr_expect_eq(proc_stop(&strata), 0);

	/* Still refused: the server says which path, and does not start. */
	snprintf(path_arg, sizeof(path_arg), "cache.disk.path=%s",
		 disk_dir());
	cr_assert_eq(proc_run(args, NULL, 10000, &res), 0);
	cr_expect_eq(res.status, 1, "exit status %d, expected 1:\n%s",
		     res.status, res.err);
	cr_expect(strstr(res.err, disk_dir()) != NULL,
		  "the message should name the directory:\n%s", res.err);
	proc_result_free(&res);

	/* Writable again: whatever the disk serves is exact. */
	snprintf(cmd, sizeof(cmd), "chattr -i '%s' && chmod -R u+rwX '%s'",
		 data, disk_dir());
	cr_assert_eq(system(cmd), 0);
	immutable[0] = '\0';
	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  NULL);
	for (unsigned i = 0; i <= KEYS; i++)
		get_big(strata, BYTES, i);
	cr_expect(!corrupt_sibling_exists(disk_dir()));
}

/* ---- kill -9 during a write burst -------------------------------------------- */

enum { BURST_THREADS = 4, BURST_MAX = 100000, BURST_KILL_AT = 400 };

struct burst {
	struct proc *p;
	unsigned id;
	atomic_uint sent;       /* requests made, seeds id*BURST_MAX + i */
};

static unsigned burst_bytes(unsigned seed)
{
	return 1024 + seed * 7919u % 97 * 1024; /* 1 KiB .. 97 KiB */
}

static void *burst_thread(void *arg)
{
	struct burst *b = arg;
	struct client_options opts = {.hash_only = true};
	char path[96], url[256];

	for (unsigned i = 0; i < BURST_MAX; i++) {
		unsigned seed = b->id * BURST_MAX + i;
		struct client_response r;
		long status;

		big_path(path, sizeof(path), burst_bytes(seed), seed);
		atomic_store(&b->sent, i + 1);
		status = client_request_opts(proc_url(b->p, path, url,
						      sizeof(url)),
					     &opts, &r);
		client_response_free(&r);
		if (status != 200)
			break; /* killed */
	}
	return NULL;
}

Test(faults, kill_9_during_a_write_burst_serves_only_exact_bodies)
{
	struct burst b[BURST_THREADS];
	pthread_t t[BURST_THREADS];
	unsigned total = 0;
	int disk_hits = 0;
	long deadline;
	int status;

	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  NULL);
	for (unsigned i = 0; i < BURST_THREADS; i++) {
		b[i].p = strata;
		b[i].id = i;
		atomic_init(&b[i].sent, 0);
		cr_assert_eq(pthread_create(&t[i], NULL, burst_thread, &b[i]),
			     0);
	}
	/* Kill in the thick of it: once the burst is well under way, with
	 * requests and disk writes in flight on every thread. */
	deadline = now_ms() + proc_scaled_ms(20000);
	do {
		total = 0;
		for (unsigned i = 0; i < BURST_THREADS; i++)
			total += atomic_load(&b[i].sent);
		sleep_ms(1);
	} while (total < BURST_KILL_AT && now_ms() < deadline);
	cr_assert_eq(proc_signal(strata, SIGKILL), 0);
	for (unsigned i = 0; i < BURST_THREADS; i++)
		pthread_join(t[i], NULL);
	status = proc_stop(&strata);
	cr_expect_eq(status, 128 + SIGKILL, "status %d", status);
	total = 0;
	for (unsigned i = 0; i < BURST_THREADS; i++) {
		total += atomic_load(&b[i].sent);
		cr_assert_lt(atomic_load(&b[i].sent), BURST_MAX, "thread %u "
			     "finished its burst before the kill", i);
	}

	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  NULL);
	cr_expect(!corrupt_sibling_exists(disk_dir()),
		  "kill -9 must not leave the database unusable");
	for (unsigned i = 0; i < BURST_THREADS; i++)
		for (unsigned j = 0; j < atomic_load(&b[i].sent); j++) {
			unsigned seed = i * BURST_MAX + j;
			struct answer a = get_big(strata, burst_bytes(seed),
						  seed);

			disk_hits += has(&a, "detail=disk");
		}
	cr_expect_gt(disk_hits, 0, "of %u entries written before the kill, "
		     "none was served from disk", total);
}

/* ---- bytes flipped in data.mdb ------------------------------------------------ */

/* Read a whole file; *len receives its size.  The caller frees. */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long size;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)size);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
	return buf;
}

/*
 * Flip one byte inside every copy of the /big stream `seed` found in the
 * file, at stream offset `at` (the 64 bytes there identify it).  Returns
 * how many copies were changed.
 */
static int flip_in_file(const char *path, unsigned seed, unsigned at)
{
	unsigned char pattern[64];
	unsigned char *buf;
	size_t len, done = 0;
	int flipped = 0;
	FILE *f;

	origin_big_fill(seed, at, pattern, sizeof(pattern));
	buf = slurp(path, &len);
	for (unsigned char *p = buf;
	     (p = memmem(p, len - (size_t)(p - buf), pattern,
			 sizeof(pattern))) != NULL;
	     p += sizeof(pattern)) {
		p[sizeof(pattern) / 2] ^= 0x5a;
		flipped++;
	}
	f = fopen(path, "r+b");
	cr_assert_not_null(f);
	while (done < len)
		done += fwrite(buf + done, 1, len - done, f);
	fclose(f);
	free(buf);
	return flipped;
}

Test(faults, an_entry_corrupted_on_disk_is_a_miss_never_served)
{
	enum { BYTES = 20000 };
	char data[160], path[96];
	size_t before;
	struct answer a;

	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  NULL);
	for (unsigned seed = 1; seed <= 3; seed++)
		get_big(strata, BYTES, seed);
	cr_assert_eq(proc_stop(&strata), 0); /* clean: everything committed */

	snprintf(data, sizeof(data), "%s/data.mdb", disk_dir());
	/* Seed 1: a byte in the middle of the body; seed 2: its first
	 * bytes.  Seed 3 stays intact. */
	cr_assert_gt(flip_in_file(data, 1, 10000), 0,
		     "seed 1's body is not in %s", data);
	cr_assert_gt(flip_in_file(data, 2, 0), 0,
		     "seed 2's body is not in %s", data);

	strata = start_on(origin_base(), disk_dir(), "--route", "/big=60s",
			  NULL);
	a = get_big(strata, BYTES, 3);
	cr_expect(has(&a, "detail=disk"), "the intact entry: %s",
		  a.cache_status);
	for (unsigned seed = 1; seed <= 2; seed++) {
		big_path(path, sizeof(path), BYTES, seed);
		before = origin_count_prefix(origin, path);
		a = get_big(strata, BYTES, seed);
		cr_expect_str_eq(a.cache_status, "strata; fwd=miss; stored",
				 "seed %u: the corrupted entry must be a miss",
				 seed);
		cr_expect_eq(origin_count_prefix(origin, path), before + 1);
		a = get_big(strata, BYTES, seed);
		cr_expect(is_hit(&a), "seed %u refetched: %s", seed,
			  a.cache_status);
	}
	cr_expect(!corrupt_sibling_exists(disk_dir()),
		  "one bad entry is not a corrupt database");
}

/* ---- the memory budget ------------------------------------------------------ */

enum { MEM_CLIENTS = 50, MEM_BYTES = 200 * 1024 };

struct mem_client {
	struct proc *p;
	unsigned seed;
	struct answer a;
};

static void *mem_client_thread(void *arg)
{
	struct mem_client *c = arg;
	struct client_options opts = {.hash_only = true,
				      .timeout_ms = proc_scaled_ms(30000)};
	struct client_response r;
	char path[96], url[256];

	big_path(path, sizeof(path), MEM_BYTES, c->seed);
	client_request_opts(proc_url(c->p, path, url, sizeof(url)), &opts,
			    &r);
	c->a.status = r.status;
	c->a.curl_code = r.curl_code;
	c->a.body_len = r.body_len;
	c->a.hash = r.body_hash;
	client_response_free(&r);
	return NULL;
}

struct mem_watch {
	struct proc *p;
	atomic_bool stop;
	double max_bytes;
	unsigned samples;
};

static void *mem_watch_thread(void *arg)
{
	struct mem_watch *w = arg;

	while (!atomic_load(&w->stop)) {
		double v = metric(w->p, "strata_tier_bytes",
				  "tier=\"memory\"");

		if (!isnan(v)) {
			w->samples++;
			if (v > w->max_bytes)
				w->max_bytes = v;
		}
		sleep_ms(5);
	}
	return NULL;
}

Test(faults, memory_budget_holds_under_concurrent_large_misses)
{
	const double budget = 1024.0 * 1024.0;
	struct mem_client c[MEM_CLIENTS];
	pthread_t t[MEM_CLIENTS], wt;
	struct mem_watch w = {0};
	double end_bytes;
	int status;

	strata = start_on(origin_base(), "", "--route", "/big=60s",
			  "--memory", "1MiB", "--set",
			  "cache.disk.enabled=false", NULL);
	w.p = strata;
	cr_assert_eq(pthread_create(&wt, NULL, mem_watch_thread, &w), 0);
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i < MEM_CLIENTS; i++) {
			c[i] = (struct mem_client){
				.p = strata, .seed = round * MEM_CLIENTS + i};
			cr_assert_eq(pthread_create(&t[i], NULL,
						    mem_client_thread, &c[i]),
				     0);
		}
		for (unsigned i = 0; i < MEM_CLIENTS; i++) {
			pthread_join(t[i], NULL);
			cr_expect_eq(c[i].a.status, 200, "seed %u: %ld (curl "
				     "%d)", c[i].seed, c[i].a.status,
				     c[i].a.curl_code);
			cr_expect_eq(c[i].a.hash,
				     origin_big_hash(MEM_BYTES, c[i].seed),
				     "seed %u: wrong body", c[i].seed);
		}
	}
	atomic_store(&w.stop, true);
	pthread_join(wt, NULL);
	end_bytes = metric(strata, "strata_tier_bytes", "tier=\"memory\"");
	cr_expect_eq(metric(strata, "strata_tier_limit_bytes",
			    "tier=\"memory\""),
		     budget);
	cr_expect_gt(w.samples, 0);
	cr_expect_leq(w.max_bytes, budget, "the memory tier held %.0f bytes "
		      "at one point", w.max_bytes);
	cr_expect_leq(end_bytes, budget, "%.0f bytes at the end", end_bytes);
	cr_expect_gt(end_bytes, 0, "nothing was kept in memory at all");
	cr_expect_gt(metric(strata, "strata_tier_evictions_total",
			    "tier=\"memory\""),
		     0.0);
	/* Under LeakSanitizer a leak makes the exit status non-zero. */
	status = proc_stop(&strata);
	cr_expect_eq(status, 0, "strata exited %d", status);
}
