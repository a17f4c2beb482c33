/*
 * origin.c: the test origin (see origin.h for the paths it serves).
 *
 * libmicrohttpd runs one thread per connection, so handlers simply sleep.
 * The raw request target comes from the URI log callback, which sees the
 * request line before libmicrohttpd splits off the query and decodes
 * percent escapes; the same callback allocates the per-request `exchange`
 * that the completion callback frees.
 *
 * Concurrency: one mutex guards the log (the `requests` array and its
 * count) and the `stopping` flag; `wake` is signalled when a request is
 * recorded (origin_wait_count) and broadcast when the origin stops (every
 * sleeping handler returns early).  A recorded request is never modified,
 * so borrowed pointers are read without the lock; the array of pointers
 * may move on growth, the requests themselves do not.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "origin.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "client.h"

#define HANG_MS 30000u
#define HANG_BODY_LEN (1024u * 1024u)
#define HANG_BODY_SENT 1024u
#define MAX_BODY (256u * 1024u * 1024u)

struct origin {
	struct MHD_Daemon *daemon;
	unsigned port;

	pthread_mutex_t lock;
	pthread_cond_t wake;          /* CLOCK_MONOTONIC */
	bool stopping;
	struct origin_request **requests;
	size_t n_requests;
	size_t cap_requests;
};

/* Per-request state, from the URI log callback to request completion. */
struct exchange {
	struct origin *origin;
	char *target;
	uint64_t arrived_ms;
	bool started;
	char *body;
	size_t body_len;
	size_t body_cap;
	bool too_big;
};

/* State of one /big or /big-chunked response. */
struct big_stream {
	uint64_t seed;
	uint64_t bytes;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Sleep up to `ms`, returning early when the origin stops.  Returns true
 * when the full time passed, false when the origin is stopping.
 */
static bool nap(struct origin *o, uint64_t ms)
{
	struct timespec deadline;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)(ms / 1000u);
	deadline.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&o->lock);
	while (!o->stopping &&
	       pthread_cond_timedwait(&o->wake, &o->lock, &deadline) !=
		       ETIMEDOUT)
		;
	stopping = o->stopping;
	pthread_mutex_unlock(&o->lock);
	return !stopping;
}

static uint64_t splitmix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void origin_big_fill(uint64_t seed, uint64_t pos, void *buf, size_t len)
{
	unsigned char *out = buf;
	uint64_t key = seed * 0xD6E8FEB86659FD93ULL;
	uint64_t word = splitmix64((pos / 8u) ^ key);

	for (size_t i = 0; i < len; i++, pos++) {
		if (pos % 8u == 0)
			word = splitmix64((pos / 8u) ^ key);
		out[i] = (unsigned char)(word >> (8u * (pos % 8u)));
	}
}

uint64_t origin_big_hash(uint64_t bytes, uint64_t seed)
{
	unsigned char buf[64 * 1024];
	uint64_t h = CLIENT_FNV1A64_INIT;

	for (uint64_t pos = 0; pos < bytes;) {
		size_t n = bytes - pos < sizeof(buf) ? (size_t)(bytes - pos)
						     : sizeof(buf);
		origin_big_fill(seed, pos, buf, n);
		h = client_fnv1a64(h, buf, n);
		pos += n;
	}
	return h;
}

/* --- the log ------------------------------------------------------------ */

struct header_copy {
	struct origin_request *r;
	bool failed;
};

static enum MHD_Result copy_header_cb(void *cls, enum MHD_ValueKind kind,
				      const char *key, const char *value)
{
	struct header_copy *hc = cls;
	struct origin_request *r = hc->r;
	struct origin_header *grown;

	(void)kind;
	grown = realloc(r->headers, (r->n_headers + 1) * sizeof(*grown));
	if (grown == NULL) {
		hc->failed = true;
		return MHD_NO;
	}
	r->headers = grown;
	grown[r->n_headers].name = strdup(key);
	grown[r->n_headers].value = strdup(value != NULL ? value : "");
	r->n_headers++;
	if (grown[r->n_headers - 1].name == NULL ||
	    grown[r->n_headers - 1].value == NULL) {
		hc->failed = true;
		return MHD_NO;
	}
	return MHD_YES;
}

static void request_free(struct origin_request *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->method);
	free(r->target);
	free(r->body);
	free(r);
}

/*
 * Record a fully received request.  Takes the exchange's body.  Returns
 * the request's sequence number, or SIZE_MAX when out of memory.
 */
static size_t record(struct exchange *ex, struct MHD_Connection *conn,
		     const char *method)
{
	struct origin *o = ex->origin;
	struct origin_request *r = calloc(1, sizeof(*r));
	struct header_copy hc = {.r = r};
	size_t seq = SIZE_MAX;

	if (r == NULL)
		return SIZE_MAX;
	r->method = strdup(method);
	r->target = strdup(ex->target != NULL ? ex->target : "");
	r->arrived_ms = ex->arrived_ms;
	r->body = ex->body != NULL ? ex->body : calloc(1, 1);
	r->body_len = ex->body_len;
	ex->body = NULL;
	ex->body_len = ex->body_cap = 0;
	MHD_get_connection_values(conn, MHD_HEADER_KIND, copy_header_cb, &hc);
	if (r->method == NULL || r->target == NULL || r->body == NULL ||
	    hc.failed)
		goto out;

	pthread_mutex_lock(&o->lock);
	if (o->n_requests == o->cap_requests) {
		size_t cap = o->cap_requests ? o->cap_requests * 2 : 64;
		struct origin_request **grown =
			realloc(o->requests, cap * sizeof(*grown));
		if (grown == NULL) {
			pthread_mutex_unlock(&o->lock);
			goto out;
		}
		o->requests = grown;
		o->cap_requests = cap;
	}
	r->seq = seq = o->n_requests;
	o->requests[o->n_requests++] = r;
	r = NULL;
	pthread_cond_broadcast(&o->wake);
	pthread_mutex_unlock(&o->lock);
out:
	request_free(r);
	return seq;
}

size_t origin_count(struct origin *o)
{
	size_t n;

	pthread_mutex_lock(&o->lock);
	n = o->n_requests;
	pthread_mutex_unlock(&o->lock);
	return n;
}

size_t origin_count_prefix(struct origin *o, const char *prefix)
{
	size_t n = 0, len = strlen(prefix);

	pthread_mutex_lock(&o->lock);
	for (size_t i = 0; i < o->n_requests; i++)
		if (strncmp(o->requests[i]->target, prefix, len) == 0)
			n++;
	pthread_mutex_unlock(&o->lock);
	return n;
}

bool origin_wait_count(struct origin *o, size_t n, unsigned timeout_ms)
{
	struct timespec deadline;
	bool reached;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000u;
	deadline.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&o->lock);
	while (o->n_requests < n && !o->stopping &&
	       pthread_cond_timedwait(&o->wake, &o->lock, &deadline) !=
		       ETIMEDOUT)
		;
	reached = o->n_requests >= n;
	pthread_mutex_unlock(&o->lock);
	return reached;
}

const struct origin_request *origin_request_at(struct origin *o, size_t i)
{
	const struct origin_request *r = NULL;

	pthread_mutex_lock(&o->lock);
	if (i < o->n_requests)
		r = o->requests[i];
	pthread_mutex_unlock(&o->lock);
	return r;
}

const struct origin_request *origin_last(struct origin *o)
{
	const struct origin_request *r = NULL;

	pthread_mutex_lock(&o->lock);
	if (o->n_requests > 0)
		r = o->requests[o->n_requests - 1];
	pthread_mutex_unlock(&o->lock);
	return r;
}

const char *origin_header(const struct origin_request *r, const char *name)
{
	const char *value = NULL;

	origin_header_all(r, name, &value, 1);
	return value;
}

size_t origin_header_all(const struct origin_request *r, const char *name,
			 const char **values, size_t max)
{
	size_t n = 0;

	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->n_headers; i++) {
		if (strcasecmp(r->headers[i].name, name) != 0)
			continue;
		if (n < max)
			values[n] = r->headers[i].value;
		n++;
	}
	return n;
}

/* --- responses ---------------------------------------------------------- */

/* Value of query parameter `name` in the raw target, as an unsigned number. */
static uint64_t query_u64(const char *target, const char *name,
			  uint64_t fallback)
{
	const char *q = strchr(target, '?');
	size_t len = strlen(name);

	while (q != NULL) {
		q++;
		if (strncmp(q, name, len) == 0 && q[len] == '=') {
			char *end;
			unsigned long long v;

			errno = 0;
			v = strtoull(q + len + 1, &end, 10);
			if (errno == 0 && end != q + len + 1)
				return v;
			return fallback;
		}
		q = strchr(q, '&');
	}
	return fallback;
}

/* Whether the path part of `target` equals `path`. */
static bool path_is(const char *target, const char *path)
{
	size_t len = strlen(path);

	return strncmp(target, path, len) == 0 &&
	       (target[len] == '\0' || target[len] == '?');
}

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status,
			     struct MHD_Response *resp, size_t seq)
{
	enum MHD_Result ret;
	char seq_text[32];

	if (resp == NULL)
		return MHD_NO;
	snprintf(seq_text, sizeof(seq_text), "%zu", seq);
	MHD_add_response_header(resp, "X-Origin-Seq", seq_text);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static struct MHD_Response *text(const char *body, const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);

	if (resp != NULL && type != NULL)
		MHD_add_response_header(resp, "Content-Type", type);
	return resp;
}

static struct MHD_Response *echo(const struct origin_request *r)
{
	struct MHD_Response *resp;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	fprintf(f, "%s %s\n", r->method, r->target);
	for (size_t i = 0; i < r->n_headers; i++)
		fprintf(f, "%s: %s\n", r->headers[i].name, r->headers[i].value);
	fputc('\n', f);
	fwrite(r->body, 1, r->body_len, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(buf);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", "text/plain");
	return resp;
}

static ssize_t big_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	const struct big_stream *big = cls;
	size_t n;

	if (pos >= big->bytes)
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = big->bytes - pos < max ? (size_t)(big->bytes - pos) : max;
	origin_big_fill(big->seed, pos, buf, n);
	return (ssize_t)n;
}

static struct MHD_Response *big(const char *target, bool chunked)
{
	struct big_stream *b = malloc(sizeof(*b));
	struct MHD_Response *resp;

	if (b == NULL)
		return NULL;
	b->bytes = query_u64(target, "bytes", 1024u * 1024u);
	b->seed = query_u64(target, "seed", 0);
	resp = MHD_create_response_from_callback(
		chunked ? MHD_SIZE_UNKNOWN : b->bytes, 32 * 1024, big_cb, b,
		free);
	if (resp == NULL) {
		free(b);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type",
				"application/octet-stream");
	return resp;
}

static ssize_t hang_body_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct origin *o = cls;
	size_t n;

	if (pos < HANG_BODY_SENT) {
		n = HANG_BODY_SENT - (size_t)pos < max
			    ? HANG_BODY_SENT - (size_t)pos
			    : max;
		memset(buf, 'h', n);
		return (ssize_t)n;
	}
	nap(o, HANG_MS);
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static struct MHD_Response *headers_response(void)
{
	/* Each call is checked: libmicrohttpd refuses some hop-by-hop
	 * headers, and a refused one must not silently weaken a test, so
	 * the origin reports it; tests check what actually went out. */
	static const char *const fields[][2] = {
		{"Set-Cookie", "a=1; Path=/"},
		{"Set-Cookie", "b=2; Path=/"},
		{"X-Custom", "1"},
		{"ETag", "\"v1\""},
		{"Connection", "X-Hop"},
		{"X-Hop", "secret"},
		{"Keep-Alive", "timeout=5"},
		{"Proxy-Connection", "keep-alive"},
	};
	struct MHD_Response *resp = text("headers\n", "text/plain");

	if (resp == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (MHD_add_response_header(resp, fields[i][0],
					    fields[i][1]) != MHD_YES)
			fprintf(stderr, "origin: /headers: libmicrohttpd "
					"refused %s: %s\n",
				fields[i][0], fields[i][1]);
	return resp;
}

static struct MHD_Response *doc(const char *target)
{
	char *body = NULL;
	struct MHD_Response *resp;

	if (asprintf(&body, "{\"target\":\"%s\"}\n", target) < 0)
		return NULL;
	resp = text(body, "application/json");
	free(body);
	if (resp == NULL)
		return NULL;
	MHD_add_response_header(resp, "ETag", "\"doc-v1\"");
	MHD_add_response_header(resp, "X-Custom", "doc");
	MHD_add_response_header(resp, "Last-Modified",
				"Tue, 15 Nov 1994 08:12:31 GMT");
	return resp;
}

/* The raw value of query parameter `name` (up to the next '&'), copied
 * into buf; "" when absent. */
static const char *query_raw(const char *target, const char *name, char *buf,
			     size_t len)
{
	const char *q = strchr(target, '?');
	size_t name_len = strlen(name);

	buf[0] = '\0';
	while (q != NULL) {
		q++;
		if (strncmp(q, name, name_len) == 0 && q[name_len] == '=') {
			const char *v = q + name_len + 1;

			snprintf(buf, len, "%.*s", (int)strcspn(v, "&"), v);
			break;
		}
		q = strchr(q, '&');
	}
	return buf;
}

static struct MHD_Response *cache_control(const char *target)
{
	char value[128], etag[64], body[160];
	struct MHD_Response *resp;

	query_raw(target, "value", value, sizeof(value));
	query_raw(target, "etag", etag, sizeof(etag));
	snprintf(body, sizeof(body), "cache-control %s\n", value);
	resp = text(body, "text/plain");
	if (resp != NULL && MHD_add_response_header(resp, "Cache-Control",
						    value) != MHD_YES)
		fprintf(stderr, "origin: /cc: libmicrohttpd refused "
				"Cache-Control: %s\n", value);
	if (resp != NULL && etag[0] != '\0')
		MHD_add_response_header(resp, "ETag", etag);
	return resp;
}

/* /header?name=N&value=V[&value2=W]: a 200 carrying one chosen header,
 * on a second field line too when value2 is given. */
static struct MHD_Response *one_header(const char *target)
{
	char name[64], value[128], value2[128], body[224];
	struct MHD_Response *resp;

	query_raw(target, "name", name, sizeof(name));
	query_raw(target, "value", value, sizeof(value));
	query_raw(target, "value2", value2, sizeof(value2));
	snprintf(body, sizeof(body), "%s: %s\n", name, value);
	resp = text(body, "text/plain");
	if (resp != NULL && MHD_add_response_header(resp, name, value) != MHD_YES)
		fprintf(stderr, "origin: /header: libmicrohttpd refused %s: %s\n",
			name, value);
	if (resp != NULL && value2[0] != '\0' &&
	    MHD_add_response_header(resp, name, value2) != MHD_YES)
		fprintf(stderr, "origin: /header: libmicrohttpd refused %s: %s\n",
			name, value2);
	return resp;
}

static enum MHD_Result respond(struct origin *o, struct MHD_Connection *conn,
			       const struct origin_request *r)
{
	const char *t = r->target;
	char body[64];

	if (strncmp(t, "/echo", 5) == 0)
		return queue(conn, MHD_HTTP_OK, echo(r), r->seq);
	if (path_is(t, "/slow")) {
		uint64_t ms = query_u64(t, "ms", 1000);

		if (!nap(o, ms))
			return MHD_NO;
		snprintf(body, sizeof(body), "{\"slept_ms\":%" PRIu64 "}\n", ms);
		return queue(conn, MHD_HTTP_OK, text(body, "application/json"),
			     r->seq);
	}
	if (path_is(t, "/slow-cookie")) {
		uint64_t ms = query_u64(t, "ms", 500);
		struct MHD_Response *resp;

		if (!nap(o, ms))
			return MHD_NO;
		snprintf(body, sizeof(body), "{\"slept_ms\":%" PRIu64 "}\n", ms);
		resp = text(body, "application/json");
		if (resp != NULL)
			MHD_add_response_header(resp, "Set-Cookie",
						"s=1; Path=/");
		return queue(conn, MHD_HTTP_OK, resp, r->seq);
	}
	if (strncmp(t, "/doc", 4) == 0)
		return queue(conn, MHD_HTTP_OK, doc(t), r->seq);
	if (strncmp(t, "/validated", 10) == 0) {
		const char *inm = origin_header(r, "If-None-Match");
		struct MHD_Response *resp;

		if (inm == NULL || strstr(inm, "\"doc-v1\"") == NULL)
			return queue(conn, MHD_HTTP_OK, doc(t), r->seq);
		/* Unchanged: a 304 with the validator and a fresh header. */
		resp = text("", "application/json");
		if (resp != NULL) {
			MHD_add_response_header(resp, "ETag", "\"doc-v1\"");
			MHD_add_response_header(resp, "X-Revalidated", "yes");
		}
		return queue(conn, MHD_HTTP_NOT_MODIFIED, resp, r->seq);
	}
	if (path_is(t, "/cc"))
		return queue(conn, MHD_HTTP_OK, cache_control(t), r->seq);
	if (path_is(t, "/header"))
		return queue(conn, MHD_HTTP_OK, one_header(t), r->seq);
	if (path_is(t, "/big"))
		return queue(conn, MHD_HTTP_OK, big(t, false), r->seq);
	if (path_is(t, "/big-chunked"))
		return queue(conn, MHD_HTTP_OK, big(t, true), r->seq);
	if (strncmp(t, "/status/", 8) == 0) {
		unsigned long status = strtoul(t + 8, NULL, 10);

		if (status < 100 || status > 599)
			return queue(conn, MHD_HTTP_BAD_REQUEST,
				     text("bad status\n", "text/plain"), r->seq);
		if (status < 200 || status == 204 || status == 304)
			body[0] = '\0';
		else
			snprintf(body, sizeof(body), "status %lu\n", status);
		return queue(conn, (unsigned)status, text(body, "text/plain"),
			     r->seq);
	}
	if (path_is(t, "/headers"))
		return queue(conn, MHD_HTTP_OK, headers_response(), r->seq);
	if (path_is(t, "/hang-headers")) {
		if (!nap(o, HANG_MS))
			return MHD_NO;
		return queue(conn, MHD_HTTP_OK, text("late\n", "text/plain"),
			     r->seq);
	}
	if (path_is(t, "/hang-body"))
		return queue(conn, MHD_HTTP_OK,
			     MHD_create_response_from_callback(
				     HANG_BODY_LEN, 4096, hang_body_cb, o, NULL),
			     r->seq);
	return queue(conn, MHD_HTTP_NOT_FOUND,
		     text("no such origin path\n", "text/plain"), r->seq);
}

/* --- libmicrohttpd callbacks -------------------------------------------- */

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct exchange *ex = calloc(1, sizeof(*ex));

	(void)conn;
	if (ex == NULL)
		return NULL;
	ex->origin = cls;
	ex->target = strdup(uri);
	ex->arrived_ms = now_ms();
	return ex;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **req_cls)
{
	struct exchange *ex = *req_cls;
	const struct origin_request *r;
	size_t seq;

	(void)cls;
	(void)url;
	(void)version;
	if (ex == NULL || ex->target == NULL)
		return MHD_NO;
	if (!ex->started) {
		ex->started = true;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (ex->body_len + n > MAX_BODY) {
			ex->too_big = true;
			return MHD_YES;
		}
		if (ex->body_len + n + 1 > ex->body_cap) {
			size_t cap = ex->body_cap ? ex->body_cap : 4096;
			char *grown;

			while (cap < ex->body_len + n + 1)
				cap *= 2;
			grown = realloc(ex->body, cap);
			if (grown == NULL)
				return MHD_NO;
			ex->body = grown;
			ex->body_cap = cap;
		}
		memcpy(ex->body + ex->body_len, upload_data, n);
		ex->body_len += n;
		ex->body[ex->body_len] = '\0';
		return MHD_YES;
	}
	if (ex->too_big)
		return queue(conn, 413,
			     text("too big\n", "text/plain"), 0);
	seq = record(ex, conn, method);
	r = seq == SIZE_MAX ? NULL : origin_request_at(ex->origin, seq);
	if (r == NULL)
		return MHD_NO;
	return respond(ex->origin, conn, r);
}

static void completed_cb(void *cls, struct MHD_Connection *conn,
			 void **req_cls, enum MHD_RequestTerminationCode toe)
{
	struct exchange *ex = *req_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (ex == NULL)
		return;
	free(ex->target);
	free(ex->body);
	free(ex);
	*req_cls = NULL;
}

/* Keep the path as sent: tests compare the raw target, and the origin
 * should not hide a proxy that decodes or re-encodes it. */
static size_t unescape_cb(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls;
	(void)conn;
	return strlen(s);
}

struct origin *origin_start(void)
{
	struct origin *o = calloc(1, sizeof(*o));
	pthread_condattr_t attr;
	const union MHD_DaemonInfo *info;
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = 0,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	if (o == NULL)
		return NULL;
	pthread_mutex_init(&o->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&o->wake, &attr);
	pthread_condattr_destroy(&attr);

	o->daemon = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD,
		0, NULL, NULL, access_cb, o,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_URI_LOG_CALLBACK, uri_cb, o,
		MHD_OPTION_NOTIFY_COMPLETED, completed_cb, o,
		MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, o,
		MHD_OPTION_CONNECTION_LIMIT, 2000u,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
		MHD_OPTION_END);
	if (o->daemon == NULL) {
		fprintf(stderr, "origin: MHD_start_daemon failed: %s\n",
			strerror(errno));
		goto fail;
	}
	info = MHD_get_daemon_info(o->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0) {
		fprintf(stderr, "origin: cannot read the bound port\n");
		goto fail;
	}
	o->port = info->port;
	return o;
fail:
	origin_stop(&o);
	return NULL;
}

void origin_stop(struct origin **op)
{
	struct origin *o = op != NULL ? *op : NULL;

	if (o == NULL)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_broadcast(&o->wake);
	pthread_mutex_unlock(&o->lock);
	if (o->daemon != NULL)
		MHD_stop_daemon(o->daemon);
	for (size_t i = 0; i < o->n_requests; i++)
		request_free(o->requests[i]);
	free(o->requests);
	pthread_cond_destroy(&o->wake);
	pthread_mutex_destroy(&o->lock);
	free(o);
	*op = NULL;
}

unsigned origin_port(const struct origin *o)
{
	return o->port;
}

char *origin_url(const struct origin *o, const char *path, char *buf,
		 size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%u%s", o->port, path);
	return buf;
}
