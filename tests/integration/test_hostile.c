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
	cr_expect_str_neq(origin_saw("X-Forwarded-Host") ?: "", "evil",
			  "replaced by the Host Strata received");
	/* Passed through uncached, they go on (nothing is stored). */
	proc_url(strata, "/status/200", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, poison, NULL, 0, &r), 200);
	client_response_free(&r);
	cr_expect_str_eq(origin_saw("X-Original-URL") ?: "", "/admin");
}

Test(hostile, a_route_that_varies_on_an_unkeyed_header_forwards_it)
{
	char upstream[64], url[256];
	const char *const args[] = {"--upstream", upstream, "-c", "@CONF@",
				    NULL};
	struct client_response r;
	FILE *f;
	char conf[64] = "/tmp/strata-hostile-XXXXXX";
	int fd = mkstemp(conf);
	const char *argv2[5];
	struct proc_spec spec;

	proc_stop(&strata);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	fputs("routes:\n  - path: /echo/*\n    ttl: 60s\n"
	      "    vary: [X-Original-URL]\n",
	      f);
	fclose(f);
	origin_url(origin, "", upstream, sizeof(upstream));
	memcpy(argv2, args, sizeof(argv2));
	argv2[3] = conf;
	spec = (struct proc_spec){.args = argv2};
	strata = proc_start(&spec);
	cr_assert_not_null(strata);
	proc_url(strata, "/echo/v", url, sizeof(url));
	cr_assert_eq(client_request("GET", url,
				    (const char *[]){"X-Original-URL: /a",
						     NULL},
				    NULL, 0, &r),
		     200);
	client_response_free(&r);
	cr_expect_str_eq(origin_saw("X-Original-URL") ?: "", "/a",
			 "keyed, so forwarded");
	unlink(conf);
}
