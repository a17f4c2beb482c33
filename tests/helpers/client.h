/*
 * client.h: small libcurl helpers for integration tests.
 *
 * client_request() makes one HTTP/1.1 request on a fresh connection and
 * returns everything a test asserts on: the status, every response header
 * (repeats kept, in order), the body (or its FNV-1a 64 hash, for bodies
 * too large to keep) and the time taken.  client_concurrent() runs many
 * requests at once on one thread with the curl multi interface.
 *
 * Every transfer has a timeout (default 10 s × STRATA_TEST_TIMEOUT_MULT),
 * so a hung proxy fails a test instead of stalling it.
 *
 * Thread safety: the functions may be called from several threads at once
 * (each call uses its own handles); curl_global_init() runs once, on first
 * use, under pthread_once.
 */
#ifndef STRATA_TESTS_CLIENT_H
#define STRATA_TESTS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_FNV1A64_INIT 0xcbf29ce484222325ULL

/* Continue an FNV-1a 64 hash over `len` bytes (start from the INIT value). */
uint64_t client_fnv1a64(uint64_t hash, const void *data, size_t len);

/* One response header as received. */
struct client_header {
	char *name;
	char *value;             /* surrounding whitespace removed */
};

struct client_response {
	long status;             /* 0 when no response arrived */
	int curl_code;           /* CURLcode: 0 on success */
	char error[256];         /* curl's message when curl_code != 0 */
	struct client_header *headers; /* of the final response, in order */
	size_t n_headers;
	char *body;              /* NUL-terminated; NULL when hashed */
	size_t body_len;         /* bytes received, stored or hashed */
	uint64_t body_hash;      /* FNV-1a 64 of the body, always computed */
	double seconds;          /* wall time of the whole transfer */
};

struct client_options {
	const char *method;      /* NULL: GET */
	const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
	const void *body;        /* request body; NULL: none */
	size_t body_len;
	bool hash_only;          /* do not keep the body, only hash it */
	long timeout_ms;         /* 0: 10 s × multiplier */
	long max_recv_bytes_per_s; /* 0: unlimited (slow reader when set) */
};

/*
 * Make one request.  `headers` lists extra request headers as
 * "Name: value" (NULL-terminated, may be NULL); "Name:" removes a header
 * curl would add.  An "Expect:" header is always sent empty so a body goes
 * out without 100-continue.  Fills *resp (release it with
 * client_response_free) and returns the HTTP status, or -1 when the
 * transfer failed (resp->curl_code and resp->error say why; any partial
 * response is kept).
 */
long client_request(const char *method, const char *url,
		    const char *const *headers, const void *body, size_t len,
		    struct client_response *resp);

/* The same with every option. */
long client_request_opts(const char *url, const struct client_options *opts,
			 struct client_response *resp);

/* Release what a response holds and zero it.  Accepts a zeroed response. */
void client_response_free(struct client_response *resp);

/* First value of response header `name` (case-insensitive), or NULL. */
const char *client_header(const struct client_response *resp,
			  const char *name);

/*
 * Every value of response header `name`: stores up to `max` borrowed
 * pointers and returns the total number of occurrences.
 */
size_t client_header_all(const struct client_response *resp,
			 const char *name, const char **values, size_t max);

/*
 * Run `n` GET requests to `url` at once (one connection each) and wait for
 * all of them.  statuses[i] receives request i's status (0 when it failed);
 * *wall_s the time from the first start to the last finish.  timeout_ms
 * bounds each transfer (0: 10 s × multiplier).  Returns the number of
 * requests that got any HTTP response, or -1 on a setup error.
 */
int client_concurrent(const char *url, size_t n, long timeout_ms,
		      long *statuses, double *wall_s);

/*
 * Like client_concurrent(), but keeps every response: resps[i] receives
 * request i's status, headers, body length and body hash (the body itself
 * is not kept: resps[i].body is NULL), curl code and error.  Release each
 * with client_response_free(); resps[i].seconds counts from the start of
 * the batch to that request's end.  `headers` lists extra request headers as
 * for client_request() (may be NULL); `method` NULL means GET.  Returns
 * the number of requests that got a complete HTTP response, or -1 on a
 * setup error (the responses are then zeroed or partial; free them
 * anyway).
 */
int client_concurrent_responses(const char *method, const char *url,
				const char *const *headers, size_t n,
				long timeout_ms,
				struct client_response *resps,
				double *wall_s);

/*
 * Whether a TCP connection to 127.0.0.1:port is refused right now (nothing
 * listening).  Returns false when the connection is accepted or the
 * attempt fails in any other way (after 1 s).
 */
bool client_connect_refused(unsigned port);

#endif /* STRATA_TESTS_CLIENT_H */
