/*
 * test_hostile.c: hostile requests against the real `strata` program:
 * request smuggling (ambiguous framing), absolute-form targets that
 * disagree with Host, and unkeyed headers that could poison the cache.
 *
 * Requests are written byte for byte on a raw socket (libcurl would
 * refuse to send most of them); the test origin counts what reached it.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"

static struct origin *origin;
static struct proc *strata;

static void setup(void)
{
	char upstream[64];
	const char *const args[] = {
		"--upstream", upstream, "--route", "/doc/*=60s", "--route",
		"/echo/*=60s", NULL};
	struct proc_spec spec = {.args = args};

	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
	origin_url(origin, "", upstream, sizeof(upstream));
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
}

static void teardown(void)
{
	proc_stop(&strata);
	origin_stop(&origin);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 60);

struct raw_answer {
	int status;           /* 0: no status line */
	bool closed;          /* the server closed the connection after */
	char text[4096];
};

/* Write `req` on a new connection; read until the server closes or 2 s
 * (× multiplier) pass. */
static void raw(const char *req, size_t len, struct raw_answer *a)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t got = 0;
	long deadline = proc_scaled_ms(2000);

	*a = (struct raw_answer){0};
	cr_assert_geq(fd, 0);
	sa.sin_port = htons((uint16_t)proc_port(strata));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(write(fd, req, len), (ssize_t)len);
	while (got < sizeof(a->text) - 1 && deadline > 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) == 0) {
			deadline -= 100;
			continue;
		}
		n = read(fd, a->text + got, sizeof(a->text) - 1 - got);
		if (n <= 0) {
			a->closed = true;
			break;
		}
		got += (size_t)n;
	}
	a->text[got] = '\0';
	close(fd);
	if (strncmp(a->text, "HTTP/1.1 ", 9) == 0)
		a->status = atoi(a->text + 9);
}

#define RAW(req, a) raw(req, sizeof(req) - 1, a)

/* The request is refused with `status`, the connection closed, and
 * nothing reached the origin. */
static void expect_refused(const char *name, const char *req, size_t len,
			   int status)
{
	struct raw_answer a;
	size_t before = origin_count(origin);

	raw(req, len, &a);
	cr_expect_eq(a.status, status, "%s: %s", name, a.text);
	cr_expect(a.closed, "%s: the connection stays open", name);
	usleep((useconds_t)proc_scaled_ms(100) * 1000);
	cr_expect_eq(origin_count(origin), before, "%s: forwarded", name);
}

#define REFUSED(name, req, status) \
	expect_refused(name, req, sizeof(req) - 1, status)

Test(hostile, ambiguous_framing_is_refused_and_never_forwarded)
{
	REFUSED("CL and TE",
		"POST /echo/a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
		"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		400);
	REFUSED("TE and CL",
		"POST /echo/a HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
		"0\r\n\r\n",
		400);
	REFUSED("two Content-Length",
		"POST /echo/a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
		"Content-Length: 5\r\n\r\nabcde",
		400);
	REFUSED("two equal Content-Length",
		"POST /echo/a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
		"Content-Length: 4\r\n\r\nabcd",
		400);
	REFUSED("TE not ending in chunked",
		"POST /echo/a HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		400);
	REFUSED("TE on two lines, chunked first",
		"POST /echo/a HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
		400);
	REFUSED("an unknown coding",
		"POST /echo/a HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		501);
	REFUSED("two Host", "GET /doc/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		400);
	REFUSED("no Host in HTTP/1.1", "GET /doc/a HTTP/1.1\r\n\r\n", 400);
}

Test(hostile, malformed_header_lines_are_refused_and_never_forwarded)
{
	REFUSED("obs-fold",
		"GET /doc/f HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
		400);
	REFUSED("obs-fold with a tab, of Transfer-Encoding",
		"POST /echo/f HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: identity\r\n\tchunked\r\n\r\n"
		"0\r\n\r\n",
		400);
	REFUSED("obs-fold of a Host line",
		"GET /doc/f HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400);
	REFUSED("whitespace before the colon",
		"POST /echo/f HTTP/1.1\r\nHost: a\r\n"
		"Content-Length : 4\r\n\r\nabcd",
		400);
	REFUSED("a tab before the colon",
		"GET /doc/f HTTP/1.1\r\nHost: a\r\nX-A\t: 1\r\n\r\n", 400);
	REFUSED("a name that is not a token",
		"GET /doc/f HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n", 400);
	REFUSED("a line without a colon",
		"GET /doc/f HTTP/1.1\r\nHost: a\r\nX-A 1\r\n\r\n", 400);
}

Test(hostile, the_refusal_of_a_malformed_line_names_it)
{
	struct raw_answer a;

	RAW("GET /doc/f HTTP/1.1\r\nHost: a\r\nX-Fold: one\r\n two\r\n\r\n",
	    &a);
	cr_expect_eq(a.status, 400, "%s", a.text);
	cr_expect_not_null(strstr(a.text, "\"X-Foldtwo\""),
			   "libmicrohttpd's reading of a folded line: %s",
			   a.text);
	RAW("GET /doc/f HTTP/1.1\r\nHost: a\r\nX-Space : 1\r\n\r\n", &a);
	cr_expect_eq(a.status, 400, "%s", a.text);
	cr_expect_not_null(strstr(a.text, "\"X-Space?\""), "%s", a.text);
	cr_expect_not_null(strstr(a.text, "no whitespace before the colon"),
			   "%s", a.text);
}

Test(hostile, a_target_with_a_space_or_a_control_character_is_refused)
{
	REFUSED("a space in a cached route's target",
		"GET /doc/f g HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	REFUSED("a space in a passed-through target",
		"GET /status/200 HTTP/1.1 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	REFUSED("a tab in the target",
		"GET /doc/f\tg HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	REFUSED("a control character in the target",
		"GET /doc/f\x01g HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	REFUSED("DEL in the target",
		"GET /doc/f\x7fg HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

Test(hostile, http_1_0_needs_no_host)
{
	struct raw_answer a;

	RAW("GET /echo/old HTTP/1.0\r\n\r\n", &a);
	cr_expect(strncmp(a.text, "HTTP/1.1 200", 12) == 0 ||
			  strncmp(a.text, "HTTP/1.0 200", 12) == 0,
		  "%s", a.text);
	cr_expect_eq(origin_count(origin), 1);
}

Test(hostile, a_field_line_with_an_empty_name_is_not_forwarded)
{
	struct raw_answer a;

	/* libmicrohttpd drops it before Strata sees it. */
	RAW("GET /echo/e HTTP/1.1\r\nHost: a\r\n: x-empty\r\n"
	    "Connection: close\r\n\r\n",
	    &a);
	cr_expect_eq(a.status, 200, "%s", a.text);
	cr_assert_eq(origin_count(origin), 1);
	for (size_t i = 0; i < origin_last(origin)->n_headers; i++)
		cr_expect_null(strstr(origin_last(origin)->headers[i].value,
				      "x-empty"),
			       "forwarded as %s",
			       origin_last(origin)->headers[i].name);
}

Test(hostile, well_formed_lines_with_odd_values_go_through)
{
	struct raw_answer a;

	RAW("GET /echo/v HTTP/1.1\r\nHost: a\r\nX-A:no-space\r\n"
	    "X-B: \t padded \t\r\nX-C:\r\nX-!#$%&'*+.^_`|~: ok\r\n"
	    "Connection: close\r\n\r\n",
	    &a);
	cr_expect_eq(a.status, 200, "%s", a.text);
	cr_expect_eq(origin_count(origin), 1);
}

Test(hostile, chunked_alone_is_fine)
{
	struct raw_answer a;

	RAW("POST /echo/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
	    &a);
	cr_expect_eq(a.status, 200, "%s", a.text);
	cr_expect_eq(origin_count(origin), 1);
	cr_expect_str_eq(origin_last(origin)->body, "abcd");
}

Test(hostile, an_absolute_target_must_name_the_host_it_is_sent_to)
{
	struct raw_answer a;
	size_t before;

	REFUSED("absolute-form, other host",
		"GET http://evil.example/doc/x HTTP/1.1\r\nHost: a\r\n\r\n",
		400);
	REFUSED("absolute-form with userinfo",
		"GET http://a@a/doc/x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	/* The same host: served as the origin-form request, one entry. */
	RAW("GET http://A/doc/x?q=1 HTTP/1.1\r\nHost: a\r\n"
	    "Connection: close\r\n\r\n",
	    &a);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_expect_str_eq(origin_last(origin)->target, "/doc/x?q=1");
	before = origin_count(origin);
	RAW("GET /doc/x?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	    &a);
	cr_expect_eq(a.status, 200);
	cr_expect(strstr(a.text, "Cache-Status: strata; hit") != NULL,
		  "%s", a.text);
	cr_expect_eq(origin_count(origin), before);
}

/* The header `name` as the origin received it on its last request. */
static const char *origin_saw(const char *name)
{
	return origin_header(origin_last(origin), name);
}

Test(hostile, unkeyed_headers_do_not_reach_the_application_of_a_cached_route)
{
	char url[256];
	struct client_response r;
	const char *const poison[] = {
		"X-Original-URL: /admin", "X-Rewrite-URL: /admin",
		"X-HTTP-Method-Override: DELETE", "X-Forwarded-Host: evil",
		NULL};

	proc_url(strata, "/echo/p", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, poison, NULL, 0, &r), 200);
	client_response_free(&r);
	cr_expect_null(origin_saw("X-Original-URL"));
	cr_expect_null(origin_saw("X-Rewrite-URL"));
	cr_expect_null(origin_saw("X-HTTP-Method-Override"));
	cr_expect_null(origin_saw("X-Forwarded-Host"),
		       "neither the client's nor its Host: not in the key");
	/* Passed through uncached, they go on (nothing is stored). */
	proc_url(strata, "/status/200", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, poison, NULL, 0, &r), 200);
	client_response_free(&r);
	cr_expect_str_eq(origin_saw("X-Original-URL") ?: "", "/admin");
}

/* Restart strata with `yaml` as its configuration file (and the origin
 * as its upstream). */
static void restart_with(const char *yaml)
{
	char upstream[64], conf[64] = "/tmp/strata-hostile-XXXXXX";
	const char *args[] = {"--upstream", upstream, "-c", conf, NULL};
	struct proc_spec spec = {.args = args};
	int fd = mkstemp(conf);
	FILE *f;

	proc_stop(&strata);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fputs(yaml, f);
	fclose(f);
	origin_url(origin, "", upstream, sizeof(upstream));
	strata = proc_start(&spec);
	unlink(conf);
	cr_assert_not_null(strata);
}

/* GET path with a Host header (and one more header, or NULL). */
static void get_with_host(const char *path, const char *host,
			  const char *extra)
{
	char url[256], h[128];
	const char *headers[3] = {h, extra, NULL};
	struct client_response r;

	snprintf(h, sizeof(h), "Host: %s", host);
	proc_url(strata, path, url, sizeof(url));
	cr_assert_eq(client_request("GET", url, headers, NULL, 0, &r), 200);
	client_response_free(&r);
}

Test(hostile, the_clients_host_reaches_a_caching_route_only_when_keyed)
{
	char upstream_host[64];
	size_t before;

	snprintf(upstream_host, sizeof(upstream_host), "127.0.0.1:%u",
		 origin_port(origin));
	/* Cached, not varying on Host: the application sees its own. */
	get_with_host("/echo/h", "evil.example", NULL);
	cr_expect_str_eq(origin_saw("Host") ?: "", upstream_host);
	cr_expect_null(origin_saw("X-Forwarded-Host"));
	/* Passed through: the client's, as preserve_host says. */
	get_with_host("/status/200", "evil.example", NULL);
	cr_expect_str_eq(origin_saw("Host") ?: "", "evil.example");
	cr_expect_str_eq(origin_saw("X-Forwarded-Host") ?: "", "evil.example");

	/* Varying on Host: keyed, so forwarded, one entry per host. */
	restart_with("routes:\n  - path: /echo/*\n    ttl: 60s\n"
		     "    vary: [Host]\n");
	before = origin_count(origin);
	get_with_host("/echo/h", "a.example", NULL);
	cr_expect_str_eq(origin_saw("Host") ?: "", "a.example");
	cr_expect_str_eq(origin_saw("X-Forwarded-Host") ?: "", "a.example");
	get_with_host("/echo/h", "a.example", NULL);
	cr_expect_eq(origin_count(origin), before + 1, "a hit");
	get_with_host("/echo/h", "b.example", NULL);
	cr_expect_eq(origin_count(origin), before + 2, "another host's own");
	cr_expect_str_eq(origin_saw("Host") ?: "", "b.example");

	/* Varying on X-Forwarded-Host: the client's goes as sent, and
	 * Host does not. */
	restart_with("routes:\n  - path: /echo/*\n    ttl: 60s\n"
		     "    vary: [X-Forwarded-Host]\n");
	get_with_host("/echo/x", "evil.example",
		      "X-Forwarded-Host: c.example");
	cr_expect_str_eq(origin_saw("X-Forwarded-Host") ?: "", "c.example");
	cr_expect_str_eq(origin_saw("Host") ?: "", upstream_host);
}

Test(hostile, a_route_that_varies_on_an_unkeyed_header_forwards_it)
{
	char url[256];
	struct client_response r;

	restart_with("routes:\n  - path: /echo/*\n    ttl: 60s\n"
		     "    vary: [X-Original-URL]\n");
	proc_url(strata, "/echo/v", url, sizeof(url));
	cr_assert_eq(client_request("GET", url,
				    (const char *[]){"X-Original-URL: /a",
						     NULL},
				    NULL, 0, &r),
		     200);
	client_response_free(&r);
	cr_expect_str_eq(origin_saw("X-Original-URL") ?: "", "/a",
			 "keyed, so forwarded");
}

/* --- slow and greedy clients -------------------------------------------- */

#include <sys/resource.h>
#include <dirent.h>
#include <time.h>

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Restart strata with a short client_timeout (and `extra` flags). */
static void restart_greedy(const char *timeout, const char *extra_key,
			   const char *extra_value)
{
	char upstream[64], t[64], x[96];
	const char *args[12] = {"--upstream", upstream, "--route",
				"/echo/*=60s", "--set", t};
	size_t n = 6;
	struct proc_spec spec = {.args = args};

	proc_stop(&strata);
	origin_url(origin, "", upstream, sizeof(upstream));
	snprintf(t, sizeof(t), "client_timeout=%s", timeout);
	if (extra_key != NULL) {
		snprintf(x, sizeof(x), "%s=%s", extra_key, extra_value);
		args[n++] = "--set";
		args[n++] = x;
	}
	args[n] = NULL;
	strata = proc_start(&spec);
	cr_assert_not_null(strata);
}

static int connect_strata(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	sa.sin_port = htons((uint16_t)proc_port(strata));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect: %s", strerror(errno));
	return fd;
}

/* Send `piece` every `every_ms` until the server closes the connection
 * or `limit_ms` passes; the milliseconds it stayed open, or -1. */
static long trickle(int fd, const char *piece, long every_ms, long limit_ms)
{
	uint64_t t0 = mono_ms();
	char buf[512];

	while ((long)(mono_ms() - t0) < limit_ms) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (send(fd, piece, strlen(piece), MSG_NOSIGNAL) < 0)
			return (long)(mono_ms() - t0);
		if (poll(&p, 1, (int)every_ms) > 0 &&
		    read(fd, buf, sizeof(buf)) <= 0)
			return (long)(mono_ms() - t0);
	}
	return -1;
}

/* A plain GET's wall time, in ms; asserts 200. */
static long timed_get(void)
{
	char url[256];
	struct client_response r;
	uint64_t t0 = mono_ms();

	proc_url(strata, "/echo/ok", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	client_response_free(&r);
	return (long)(mono_ms() - t0);
}

Test(hostile, a_trickled_head_is_cut_at_client_timeout)
{
	int fd;
	long open_ms;

	restart_greedy("2s", NULL, NULL);
	fd = connect_strata();
	cr_assert_eq(write(fd, "GET /echo/s HTTP/1.1\r\nHost: a\r\n", 31), 31);
	/* One header line every 300 ms: never idle, never done. */
	open_ms = trickle(fd, "X-Slow: 1\r\n", 300, proc_scaled_ms(10000));
	close(fd);
	cr_assert_neq(open_ms, -1, "still open after 10 s");
	cr_expect_geq(open_ms, 1500, "closed before its deadline");
	cr_expect_leq(open_ms, proc_scaled_ms(4000), "closed late");
	cr_expect_eq(origin_count(origin), 0, "nothing was forwarded");
}

Test(hostile, a_trickled_body_is_cut_at_client_timeout)
{
	int fd;
	long open_ms;
	static const char head[] = "POST /echo/b HTTP/1.1\r\nHost: a\r\n"
				   "Content-Length: 100000\r\n\r\n";

	restart_greedy("2s", NULL, NULL);
	fd = connect_strata();
	cr_assert_eq(write(fd, head, sizeof(head) - 1),
		     (ssize_t)sizeof(head) - 1);
	open_ms = trickle(fd, "0123456789", 300, proc_scaled_ms(10000));
	close(fd);
	cr_assert_neq(open_ms, -1, "still open after 10 s");
	cr_expect_leq(open_ms, proc_scaled_ms(4000), "closed late");
	cr_expect_eq(origin_count(origin), 0, "nothing was forwarded");
}

Test(hostile, a_slow_upstream_is_not_a_slow_client)
{
	char url[256];
	struct client_response r;

	restart_greedy("1s", NULL, NULL);
	proc_url(strata, "/slow?ms=2500", url, sizeof(url));
	cr_expect_eq(client_request("GET", url, NULL, NULL, 0, &r), 200,
		     "a 2.5 s fetch outlives a 1 s client_timeout: %s",
		     r.error);
	client_response_free(&r);
}

Test(hostile, a_huge_body_is_refused_at_once_and_the_connection_closed)
{
	static const char req[] = "POST /echo/big HTTP/1.1\r\nHost: a\r\n"
				  "Content-Length: 1073741824\r\n\r\n";
	struct raw_answer a;
	uint64_t t0 = mono_ms();

	raw(req, sizeof(req) - 1, &a);
	cr_expect_eq(a.status, 413, "%s", a.text);
	cr_expect(a.closed, "the connection stays open for 1 GiB");
	cr_expect_lt(mono_ms() - t0, (uint64_t)proc_scaled_ms(1000));
	cr_expect_eq(origin_count(origin), 0);
}

Test(hostile, a_chunked_body_past_the_limit_is_refused)
{
	int fd = connect_strata();
	char chunk[70000], buf[256];
	ssize_t n = 0;
	size_t sent = 0;
	static const char head[] = "POST /echo/c HTTP/1.1\r\nHost: a\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n";

	/* 64 KiB chunks, until the server answers (at 10 MiB) or 20 MiB. */
	snprintf(chunk, sizeof(chunk), "10000\r\n");
	memset(chunk + 7, 'x', 65536);
	memcpy(chunk + 7 + 65536, "\r\n", 2);
	cr_assert_eq(write(fd, head, sizeof(head) - 1),
		     (ssize_t)sizeof(head) - 1);
	while (sent < 20u << 20) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 0) > 0)
			break;
		if (send(fd, chunk, 7 + 65536 + 2, MSG_NOSIGNAL) <= 0)
			break;
		sent += 65536;
	}
	{
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, (int)proc_scaled_ms(3000)) > 0)
			n = read(fd, buf, sizeof(buf) - 1);
	}
	close(fd);
	/* A 413, or the connection reset: the server closed it with bytes
	 * still unread, and TCP may drop the answer for that (RFC 9112
	 * section 9.6).  Either way it stopped reading long before 20 MiB. */
	if (n > 12) {
		buf[n] = '\0';
		cr_expect(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%s", buf);
	}
	cr_expect_lt(sent, 20u << 20, "the server read all of it");
	cr_expect_eq(origin_count(origin), 0);
}

Test(hostile, a_one_mebibyte_header_gets_431)
{
	size_t len = (1u << 20) + 64;
	char *req = malloc(len);
	struct raw_answer a;
	int n;

	cr_assert_not_null(req);
	n = snprintf(req, len, "GET /echo/h HTTP/1.1\r\nHost: a\r\nX-Big: ");
	memset(req + n, 'a', (1u << 20));
	memcpy(req + n + (1u << 20), "\r\n\r\n", 4);
	raw(req, (size_t)n + (1u << 20) + 4, &a);
	free(req);
	cr_expect(a.status == 431 || (a.status == 0 && a.closed),
		  "answered %d: %.80s", a.status, a.text);
	cr_expect_eq(origin_count(origin), 0);
	cr_expect_lt(timed_get(), proc_scaled_ms(1000),
		     "others are served");
}

/* Descriptors open in the strata process. */
static size_t strata_fds(void)
{
	char path[64];
	DIR *d;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)proc_pid(strata));
	d = opendir(path);
	cr_assert_not_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

Test(hostile, ten_thousand_idle_connections_cost_little_and_go_away)
{
	enum { IDLE = 10000 };
	struct rlimit rl;
	int *fds = malloc(IDLE * sizeof(*fds));
	long rss_before, rss_after, worst = 0;
	size_t fds_before;

	cr_assert_not_null(fds);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < IDLE + 256)
		cr_skip_test("RLIMIT_NOFILE hard limit %lu is below %d",
			     (unsigned long)rl.rlim_max, IDLE + 256);
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	restart_greedy("3s", "max_connections", "11000");
	timed_get();
	fds_before = strata_fds();
	rss_before = proc_status_kib(strata, "VmRSS");
	for (int i = 0; i < IDLE; i++)
		fds[i] = connect_strata();
	for (int i = 0; i < 20; i++) {
		long ms = timed_get();

		if (ms > worst)
			worst = ms;
	}
	rss_after = proc_status_kib(strata, "VmRSS");
	cr_expect_lt(worst, proc_scaled_ms(500),
		     "a request among 10000 idle connections took %ld ms",
		     worst);
	/* Under ThreadSanitizer (STRATA_TEST_SANITIZER=thread) the growth
	 * measures its shadow memory, not Strata's. */
	if (getenv("STRATA_TEST_SANITIZER") == NULL ||
	    strcmp(getenv("STRATA_TEST_SANITIZER"), "thread") != 0)
		cr_expect_lt(rss_after - rss_before, 200 * 1024,
			     "10000 idle connections cost %ld KiB",
			     rss_after - rss_before);
	/* Idle past client_timeout: all closed by the server. */
	for (int t = 0; t < 100 && strata_fds() > fds_before + 16; t++)
		usleep((useconds_t)proc_scaled_ms(100) * 1000);
	cr_expect_leq(strata_fds(), fds_before + 16,
		      "idle connections were kept past client_timeout");
	for (int i = 0; i < IDLE; i++)
		close(fds[i]);
	free(fds);
}
