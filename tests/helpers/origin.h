/*
 * origin.h: an in-process test origin that records what it receives.
 *
 * Integration tests put the real `strata` binary between a libcurl client
 * and this origin, then assert on what the origin counted: the varnishtest
 * manner.  The origin is a libmicrohttpd daemon on 127.0.0.1 with a port
 * chosen by the kernel, one thread per connection, so a handler may sleep
 * without holding up other requests.
 *
 * Every request is recorded once its body has been read in full, before the
 * response is produced (so a request to /hang-headers is already counted
 * while it hangs).  The log only grows; recorded requests are immutable.
 *
 * Behaviour by path (the raw request target, compared before any
 * percent-decoding):
 *
 *   /echo...            any method, any subpath or query: 200, text/plain,
 *                       body "METHOD TARGET\n", one "Name: value\n" per
 *                       request header, an empty line, then the request body.
 *   /slow?ms=N          sleep N ms (default 1000), then 200 with a small
 *                       JSON body {"slept_ms":N}.
 *   /header?name=N&value=V  200 with the response header "N: V" (raw
 *                       query values, no decoding); with &value2=W a
 *                       second field line "N: W".
 *   /big?bytes=N&seed=S N bytes (default 1 MiB, seed 0) of the
 *                       deterministic stream origin_big_fill() describes,
 *                       generated while sending, with Content-Length.
 *   /big-chunked?...    the same stream with no declared length (chunked).
 *   /status/NNN         status NNN (100..599) with body "status NNN\n"
 *                       (empty for 1xx, 204 and 304).
 *   /headers            200 with response headers for pass-back tests:
 *                       two Set-Cookie ("a=1; Path=/", "b=2; Path=/"),
 *                       X-Custom: 1, ETag: "v1", and the hop-by-hop
 *                       headers Connection: X-Hop, X-Hop: secret,
 *                       Keep-Alive: timeout=5, Proxy-Connection: keep-alive
 *                       (libmicrohttpd may refuse some; a test should check
 *                       what the origin really sends before asserting that
 *                       a proxy strips it).
 *   /doc...             any subpath or query: a storable 200 with the
 *                       headers a cache must hand back unchanged:
 *                       Content-Type: application/json, ETag: "doc-v1",
 *                       X-Custom: doc, Last-Modified (a fixed date), and
 *                       body {"target":"TARGET"} plus a newline.
 *   /validated...       as /doc, but a request whose If-None-Match names
 *                       "doc-v1" gets 304 with that ETag and
 *                       X-Revalidated: yes, and no body.
 *   /cc?value=V         200, text/plain, "Cache-Control: V" with V taken
 *                       raw from the query (no percent-decoding), body
 *                       "cache-control V\n"; with &etag=E also "ETag: E".
 *   /slow-cookie?ms=N   sleep N ms (default 500), then 200 with
 *                       Set-Cookie: s=1; Path=/ and body {"slept_ms":N}.
 *   /hang-headers       sends nothing for 30 s (or until origin_stop), then
 *                       200 "late\n".
 *   /hang-body          200 with Content-Length 1 MiB, sends the first
 *                       1 KiB, then stalls for 30 s (or until origin_stop)
 *                       and aborts the connection.
 *   anything else       404 "no such origin path\n".
 *
 * Every response carries X-Origin-Seq: the index of its request in the log.
 *
 * Thread safety: every function may be called from any thread while the
 * origin runs, except origin_stop().
 */
#ifndef STRATA_TESTS_ORIGIN_H
#define STRATA_TESTS_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct origin;

/* One request header as received (name in the client's spelling). */
struct origin_header {
	char *name;
	char *value;
};

/* One recorded request.  Owned by the origin; immutable once recorded. */
struct origin_request {
	size_t seq;                    /* index in the log */
	char *method;
	char *target;                  /* raw path + query, byte for byte */
	struct origin_header *headers; /* in arrival order, repeats kept */
	size_t n_headers;
	char *body;                    /* NUL-terminated for convenience */
	size_t body_len;
	uint64_t arrived_ms;           /* CLOCK_MONOTONIC, request line read */
};

/*
 * Start an origin on 127.0.0.1 with a kernel-chosen port.  Returns NULL
 * (after printing why on stderr) when the daemon cannot start.  Stop and
 * release it with origin_stop().
 */
struct origin *origin_start(void);

/*
 * Stop the origin: wakes every sleeping handler (slow, hang-*), closes all
 * connections, joins the threads and frees the log, then sets *o to NULL.
 * Every pointer obtained from the origin becomes invalid.  Accepts NULL.
 */
void origin_stop(struct origin **o);

/* The port the origin listens on. */
unsigned origin_port(const struct origin *o);

/* "http://127.0.0.1:PORT" followed by `path` (may be ""), in a static-free
 * caller buffer; returns buf. */
char *origin_url(const struct origin *o, const char *path, char *buf,
		 size_t len);

/* Number of requests recorded so far. */
size_t origin_count(struct origin *o);

/* Number of recorded requests whose target starts with `prefix`. */
size_t origin_count_prefix(struct origin *o, const char *prefix);

/*
 * Wait until at least `n` requests are recorded or `timeout_ms` passes.
 * Returns whether the count was reached.
 */
bool origin_wait_count(struct origin *o, size_t n, unsigned timeout_ms);

/*
 * Request number i (0-based), or NULL.  Borrowed: valid until
 * origin_stop().
 */
const struct origin_request *origin_request_at(struct origin *o, size_t i);

/* The most recently recorded request, or NULL.  Borrowed, as above. */
const struct origin_request *origin_last(struct origin *o);

/*
 * The first value of header `name` (compared case-insensitively), or NULL
 * when the request has none.  Borrowed from the request.
 */
const char *origin_header(const struct origin_request *r, const char *name);

/*
 * Every value of header `name`, in arrival order: stores up to `max`
 * borrowed pointers in `values` (may be NULL when max is 0) and returns the
 * total number of occurrences.
 */
size_t origin_header_all(const struct origin_request *r, const char *name,
			 const char **values, size_t max);

/*
 * The /big stream: byte p of the stream for seed S is byte (p % 8), least
 * significant first, of splitmix64(floor(p / 8) ^ (S * 0xD6E8FEB86659FD93)).
 * Fills buf with `len` bytes starting at stream offset `pos`.
 */
void origin_big_fill(uint64_t seed, uint64_t pos, void *buf, size_t len);

/*
 * FNV-1a 64 of the first `bytes` bytes of the /big stream for `seed`: what
 * client_request() reports as body_hash for an intact /big response.
 */
uint64_t origin_big_hash(uint64_t bytes, uint64_t seed);

#endif /* STRATA_TESTS_ORIGIN_H */
