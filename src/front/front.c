/*
 * front.c: the libmicrohttpd listener and the life of a client request;
 * see front.h.
 *
 * A request goes through these phases, one access-handler call or more
 * each:
 *   NEW      headers parsed: route it, build its key and look it up in the
 *            memory tier, check the declared body size;
 *   BODY     collect upload data (bounded by max_request_body); on the
 *            last call answer a hit, or join the key's flight, or fetch;
 *   SHARED   the flight's leader is suspended while the Redis tier's
 *            workers run its fill (redis_async.h): a hit, the fleet lock
 *            (fetch), or a wait for another instance's fill;
 *   FETCH    the connection is suspended while an exchange (upstream) or a
 *            handler job runs; the handler runs again when it has news;
 *   JOINED   suspended as a waiter of another request's flight;
 *   ANSWERED a response is queued; nothing more to do.
 * A hit is answered on the second call, never the first: libmicrohttpd
 * 0.9.75 closes the connection after a response queued on the first call
 * of the access handler, which would cost a reconnect per hit.
 * The per-request `struct request` is created in the URI-log callback (the
 * first thing libmicrohttpd tells us about a request) and freed in the
 * completion callback.
 */
#include "config.h"

#include "front/front.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/conditional.h"
#include "cache/entry.h"
#include "cache/flight.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/policy.h"
#include "cache/range.h"
#include "core/http.h"
#include "core/live.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/route.h"
#include "front/exchange.h"
#include "front/guard.h"
#include "front/handler.h"
#include "front/reply.h"
#include "obs/metrics.h"
#include "obs/trace.h"
#include "strata/strata.h"
#include "tier/disk.h"
#include "tier/fleet.h"
#include "tier/mem.h"
#include "tier/redis_async.h"
#include "upstream/upstream.h"

#define FRONT_MAGIC 0x46524e54u   /* "FRNT" */
#define REQUEST_MAGIC 0x52455153u /* "REQS" */

/* Marks a background refresh; never forwarded upstream. */
#define REFRESH_HEADER "X-Strata-Refresh"
/* Background refreshes in flight before more are skipped. */
#define REFRESHES_MAX 256u

/* Cache-Status values (RFC 9211). */
#define CACHE_STATUS_BYPASS "strata; fwd=bypass"
#define CACHE_STATUS_METHOD "strata; fwd=method"
#define CACHE_STATUS_AUTH "strata; fwd=request; detail=authorization"
#define CACHE_STATUS_MISS "strata; fwd=miss"
#define CACHE_STATUS_STORED "strata; fwd=miss; stored"
#define CACHE_STATUS_COLLAPSED "strata; fwd=miss; collapsed"
/* The client's no-cache or max-age=0: forwarded, and the answer stored. */
#define CACHE_STATUS_REQUEST "strata; fwd=request"
/* The key's variants marker was found, this request's variant was not. */
#define CACHE_STATUS_VARY_MISS "strata; fwd=vary-miss"
#define CACHE_STATUS_VARY_STORED "strata; fwd=vary-miss; stored"
#define CACHE_STATUS_REQUEST_STORED "strata; fwd=request; stored"
/* A stale entry revalidated upstream: 304, refreshed and stored. */
#define CACHE_STATUS_REVALIDATED "strata; fwd=stale; fwd-status=304; stored"
/* Waited for another instance's fill of the same key (fleet coalescing). */
#define CACHE_STATUS_FLEET "strata; fwd=miss; collapsed; detail=redis"

struct strata_front {
	uint32_t magic;
	int listen_fd;                 /* see strata_front_quiesce() */
	bool accepting;
	struct strata_front_config cfg;
	char *listen;
	char *tags_header;             /* owned copy; NULL: no tags */
	struct strata_live_cell *live;     /* the server's; see core/live.h */
	struct strata_upstream *up;
	struct strata_mem *mem;
	struct strata_disk *disk;          /* NULL: tier off */
	struct strata_redis_async *shared; /* NULL: tier off */
	struct strata_fleet *fleet;        /* with `shared` */
	struct strata_flights *flights;
	struct strata_pool *handler_pool;
	struct strata_metrics *metrics;
	struct strata_guard *guard;    /* receive deadlines (guard.h) */
	struct MHD_Daemon *daemon;
	unsigned port;
	atomic_uint inflight;
	atomic_bool *upstream_down;    /* the caller's; see front.h */
	void (*invalidate)(void *ctx, const char *path);
	void *invalidate_ctx;
	/* Background refreshes (stale-while-revalidate) are requests to
	 * this very listener, marked with a per-process secret so that they
	 * skip the tiers and go through the normal miss path: coalescing,
	 * revalidation, every tier, the fleet.  NULL until started. */
	struct strata_upstream *self;
	char refresh_token[33];
	atomic_uint refreshes;         /* in flight, bounded */
};

/* The request headers that make an answer from an entry conditional or
 * partial, found in the one pass begin() makes over
 * the request's headers (values owned by libmicrohttpd, valid for the
 * request). */
struct cond_scan {
	struct strata_cond_request cond;
	const char *range;
	const char *if_range;
	bool any;
};

enum phase { PHASE_NEW, PHASE_BODY, PHASE_SHARED, PHASE_FETCH,
	     PHASE_JOINED, PHASE_ANSWERED };

struct request {
	uint32_t magic;
	struct strata_front *front;
	struct MHD_Connection *conn;
	enum phase phase;
	char *target;              /* raw request target, as received */
	char method[16];           /* for the access log */
	uint64_t start_us;
	/* The configuration generation this request runs under, from its
	 * first callback to its last: a reload never changes the route,
	 * handler or settings under a request.  Owned reference. */
	struct strata_live *live;
	const struct strata_route *route; /* borrowed from live->routes */
	struct strata_guard_slot *slot; /* its connection's deadline, owned
					   by the connection (guard.h) */
	const char *cache_status;  /* static, or status_buf */
	bool cacheable;            /* keyed, looked up, misses coalesce */
	bool has_authorization;
	struct strata_key key;
	char *key_text;            /* key_inline, or malloc'd when longer */
	size_t key_len;
	struct strata_entry *entry;      /* the answer, once known */
	struct strata_entry *stale;      /* a kept, stale entry for this key
					    (stale-if-error, revalidation) */
	struct strata_flight *flight;    /* while leading one */
	struct strata_flight_waiter waiter;
	enum strata_flight_outcome outcome;
	int flight_error;
	enum strata_redis_fill fill;   /* set by fill_done_cb */
	uint64_t fetch_start_us;   /* 0: no fetch under way */
	int64_t fetch_start_wall;  /* the same, wall ms (RFC 9111 ages) */
	struct strata_cc_request req_cc; /* ttl: origin routes only */
	bool no_store;             /* the request said no-store */
	bool client_refresh;       /* the request said no-cache */
	bool background;           /* our own stale-while-revalidate
				      refresh: never answered from tiers */
	/* Response Vary: when the key names a variant, the primary key's
	 * text (owned) and hash, where the variants marker lives. */
	char *primary_text;
	size_t primary_len;
	struct strata_key primary_key;
	char *variant_names;       /* owned: the marker's list, or NULL */
	bool has_upstream;         /* a fetch happened: upstream_us */
	uint64_t upstream_us;
	const char *tier;          /* static: the tier a hit came from */
	char *tracestate;          /* forwarded with traceparent; NULL */
	struct strata_trace trace; /* what this request forwards */
	struct cond_scan cond;     /* conditional and Range headers */
	bool fleet_lock;           /* holds the key's fleet lock in Redis */
	struct strata_key lock_key; /* ... on this key */
	bool revalidating;         /* the fill sent the stale entry's
				      validators upstream */
	bool revalidated;          /* ... and the upstream said 304 */
	pthread_mutex_t park_lock; /* guards parked and woken */
	bool parked;
	bool woken;
	struct strata_handler_job *job;
	char *body;
	size_t body_len;
	size_t body_cap;
	unsigned status;           /* 0 until a response is queued */
	uint64_t bytes;            /* body bytes of non-streamed answers */
	struct strata_exchange *ex;
	bool streaming;            /* bytes come from the exchange */

	/* Buffers last: a new request zeroes only what comes before them
	 * (REQUEST_ZEROED), not half a kilobyte per hit. */
	char client[INET6_ADDRSTRLEN]; /* formatted on first use */
	char protocol[16];         /* "HTTP/1.1", for the access log */
	char status_buf[96];
	char key_inline[384];
};

#define REQUEST_ZEROED offsetof(struct request, client)

/* ---- parking: suspend until another thread has news -------------------- */

/*
 * Suspend the connection unless the news already came.  Called on the
 * connection's thread from the access handler.  Returns true when parked.
 */
static bool park(struct request *rq)
{
	bool parked = false;

	pthread_mutex_lock(&rq->park_lock);
	if (!rq->woken) {
		rq->parked = parked = true;
		MHD_suspend_connection(rq->conn);
	}
	pthread_mutex_unlock(&rq->park_lock);
	return parked;
}

/* Deliver news: resume the connection if it is parked.  Any thread. */
static void wake(struct request *rq)
{
	pthread_mutex_lock(&rq->park_lock);
	rq->woken = true;
	if (rq->parked) {
		rq->parked = false;
		MHD_resume_connection(rq->conn);
	}
	pthread_mutex_unlock(&rq->park_lock);
}

/* Forget earlier news, before starting a new wait. */
static void unwake(struct request *rq)
{
	pthread_mutex_lock(&rq->park_lock);
	rq->woken = false;
	pthread_mutex_unlock(&rq->park_lock);
}

/* ---- responses made by Strata itself ------------------------------------ */

/* Queue a short text/plain answer.  `reason` must be a static string. */
/* A short text answer of Strata's own; `close`: the connection closes
 * after it (its request's framing cannot be trusted, or its body is not
 * worth reading). */
static enum MHD_Result answer_text(struct MHD_Connection *conn,
				   struct request *rq, unsigned status,
				   const char *reason, bool close)
{
	struct MHD_Response *resp;
	enum MHD_Result ok;

	/* Copied: a reason may be built on the caller's stack (errors
	 * only, never a hit). */
	resp = MHD_create_response_from_buffer(strlen(reason), (void *)reason,
					       MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type",
				"text/plain; charset=utf-8");
	if (close)
		MHD_add_response_header(resp, "Connection", "close");
	MHD_add_response_header(resp, "Cache-Status", rq->cache_status);
	ok = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	rq->phase = PHASE_ANSWERED;
	rq->status = status;
	rq->bytes = strlen(reason);
	return ok;
}

static enum MHD_Result answer(struct MHD_Connection *conn, struct request *rq,
			      unsigned status, const char *reason)
{
	return answer_text(conn, rq, status, reason, false);
}

/* A 400, 413 or 501 for a request whose framing cannot be trusted: the
 * connection closes after it, so no byte of its body is read as the
 * next request. */
static enum MHD_Result refuse_framing(struct MHD_Connection *conn,
				      struct request *rq, unsigned status,
				      const char *reason)
{
	return answer_text(conn, rq, status, reason, true);
}

static enum MHD_Result answer_upstream_error(struct MHD_Connection *conn,
					     struct request *rq, int err)
{
	switch (err) {
	case STRATA_ETIMEOUT:
		return answer(conn, rq, MHD_HTTP_GATEWAY_TIMEOUT,
			      "upstream timed out\n");
	case STRATA_ECONNECT:
		return answer(conn, rq, MHD_HTTP_BAD_GATEWAY,
			      "upstream refused the connection\n");
	case STRATA_ECANCELED:
	case STRATA_EUNAVAIL:
		return answer(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "server is shutting down\n");
	case -ENOMEM:
		return answer(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "out of memory\n");
	default:
		return answer(conn, rq, MHD_HTTP_BAD_GATEWAY,
			      "upstream sent an invalid response\n");
	}
}

static enum MHD_Result cond_cb(void *cls, enum MHD_ValueKind kind,
			       const char *name, const char *value)
{
	struct cond_scan *c = cls;
	const char **slot = NULL;

	(void)kind;
	if ((name[0] | 0x20) == 'i' && (name[1] | 0x20) == 'f' &&
	    name[2] == '-') {
		if (strcasecmp(name, "If-None-Match") == 0)
			slot = &c->cond.if_none_match;
		else if (strcasecmp(name, "If-Modified-Since") == 0)
			slot = &c->cond.if_modified_since;
		else if (strcasecmp(name, "If-Match") == 0)
			slot = &c->cond.if_match;
		else if (strcasecmp(name, "If-Unmodified-Since") == 0)
			slot = &c->cond.if_unmodified_since;
		else if (strcasecmp(name, "If-Range") == 0)
			slot = &c->if_range;
	} else if (strcasecmp(name, "Range") == 0) {
		slot = &c->range;
	}
	if (slot != NULL && *slot == NULL) {
		*slot = value;
		c->any = true;
	}
	return MHD_YES;
}

/*
 * Answer from an entry: a hit, a fresh miss, or a waiter's share.  A
 * conditional request is answered 304 (or 412) from the entry's
 * validators (RFC 9110 section 13.2.2, conditional.h); a Range request
 * on a whole 200 gets 206 or 416 (RFC 9110 section 14, range.h).
 */
static enum MHD_Result answer_entry(struct request *rq,
				    const char *cache_status)
{
	struct strata_entry *e = rq->entry;
	const struct cond_scan *c = &rq->cond;
	struct strata_range_plan plan = {.kind = STRATA_RANGE_WHOLE};
	int64_t now = strata_wall_ms();
	bool head = strcmp(rq->method, "HEAD") == 0;
	int rc;

	rq->cache_status = cache_status;
	rq->phase = PHASE_ANSWERED;
	if (c->any) {
		struct strata_cond_stored stored = {
			.status = e->status,
			.etag = strata_entry_header(e, "ETag"),
			.last_modified = strata_entry_header(e,
							     "Last-Modified"),
			.date = strata_entry_header(e, "Date"),
			.received_ms = e->created,
		};

		switch (strata_conditional_evaluate(&c->cond, &stored)) {
		case STRATA_COND_NOT_MODIFIED:
			rq->bytes = 0;
			rc = strata_reply_not_modified(rq->conn, e,
						       cache_status, now,
						       &rq->status);
			return rc == 0 ? MHD_YES : MHD_NO;
		case STRATA_COND_PRECONDITION_FAILED:
			return answer(rq->conn, rq,
				      MHD_HTTP_PRECONDITION_FAILED,
				      "precondition failed\n");
		case STRATA_COND_NONE:
			break;
		}
		if (c->range != NULL && e->status == 200 &&
		    strcmp(rq->method, "GET") == 0 &&
		    (c->if_range == NULL ||
		     strata_conditional_if_range(c->if_range, &stored)))
			strata_range_parse(c->range, e->body_len, &plan);
	}
	if (plan.kind != STRATA_RANGE_WHOLE) {
		rq->bytes = 0;
		for (size_t i = 0; plan.kind != STRATA_RANGE_UNSATISFIABLE &&
				   i < plan.n;
		     i++)
			rq->bytes += plan.parts[i].last - plan.parts[i].first +
				     1;
		rc = strata_reply_range(rq->conn, e, &plan, cache_status, now,
					&rq->status);
		return rc == 0 ? MHD_YES : MHD_NO;
	}
	rc = strata_reply_entry(rq->conn, e, cache_status, now, &rq->status);
	rq->bytes = head ? 0 : e->body_len;
	return rc == 0 ? MHD_YES : MHD_NO;
}

static void client_address(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info != NULL ? info->client_addr : NULL;

	snprintf(buf, len, "-");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
			  (socklen_t)len);
}

/* The client's address as text, formatted on first use: a cache hit
 * with the access log off never needs it. */
static const char *client_of(struct request *rq)
{
	if (rq->client[0] == '\0')
		client_address(rq->conn, rq->client, sizeof(rq->client));
	return rq->client;
}

/* ---- building the upstream request -------------------------------------- */

struct header_scan {
	struct strata_headers *out;
	bool for_cache;     /* a fill: ask for the whole representation */
	const struct strata_route *keyed; /* a caching route: unkeyed
					     inputs are not forwarded */
	bool xfh_keyed;     /* ...that varies on X-Forwarded-Host: the
			       client's goes on as sent */
	char *connection;   /* the client's Connection tokens, joined */
	char *xff;          /* the client's X-Forwarded-For values, joined */
	char *via;          /* the client's Via values, joined */
	int rc;
};

/* Append `value` to a comma-joined list. */
static int join(char **list, const char *value)
{
	char *joined;

	if (*list == NULL)
		joined = strdup(value);
	else if (asprintf(&joined, "%s, %s", *list, value) < 0)
		joined = NULL;
	if (joined == NULL)
		return -ENOMEM;
	free(*list);
	*list = joined;
	return 0;
}

static enum MHD_Result scan_connection_cb(void *cls, enum MHD_ValueKind kind,
					  const char *name, const char *value)
{
	struct header_scan *scan = cls;

	(void)kind;
	if (strcasecmp(name, "Connection") == 0 && value != NULL &&
	    join(&scan->connection, value) != 0)
		scan->rc = -ENOMEM;
	return MHD_YES;
}

/*
 * Headers Strata sets itself (Host, the X-Forwarded family, Via) or that
 * libcurl derives from the body it sends (Content-Length, Expect).
 */
static bool replaced_header(const char *name)
{
	static const char *const names[] = {
		"Host", "Content-Length", "Expect", "X-Forwarded-Proto",
		"X-Forwarded-Host", "traceparent", "tracestate",
		REFRESH_HEADER,
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/*
 * Headers that would make the origin answer this client rather than the
 * cache: validators and ranges.  A fill asks without them, so the entry
 * is the whole representation, and the cache answers the client's
 * conditions itself (answer_entry()).
 */
static bool conditional_header(const char *name)
{
	static const char *const names[] = {
		"If-None-Match", "If-Modified-Since", "If-Match",
		"If-Unmodified-Since", "If-Range", "Range",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/*
 * Request headers an application may act on or reflect in its answer
 * (frameworks read them to rewrite the URL, the method or the host)
 * while they are not in the cache key: forwarded, one client could
 * store an answer made for its header and have it served to everyone
 * (cache poisoning).  On a caching route they are dropped unless the
 * route's `vary` lists them (then they are part of the key).
 */
static bool route_varies(const struct strata_route *route, const char *name)
{
	for (size_t v = 0; route != NULL && v < route->n_vary; v++)
		if (strcasecmp(route->vary[v], name) == 0)
			return true;
	return false;
}

static bool unkeyed_input(const char *name, const struct strata_route *route)
{
	static const char *const names[] = {
		"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
		"X-HTTP-Method", "X-Method-Override", "X-Forwarded-Server",
		"X-Host",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return !route_varies(route, name);
	return false;
}

static enum MHD_Result scan_header_cb(void *cls, enum MHD_ValueKind kind,
				      const char *name, const char *value)
{
	struct header_scan *scan = cls;

	(void)kind;
	if (value == NULL || scan->rc != 0)
		return MHD_YES;
	if (scan->keyed != NULL && unkeyed_input(name, scan->keyed))
		return MHD_YES;
	if (scan->xfh_keyed && strcasecmp(name, "X-Forwarded-Host") == 0) {
		scan->rc = strata_headers_add(scan->out, name, value);
		return MHD_YES;
	}
	if (strcasecmp(name, "X-Forwarded-For") == 0)
		scan->rc = join(&scan->xff, value);
	else if (strcasecmp(name, "Via") == 0)
		scan->rc = join(&scan->via, value);
	else if (!strata_http_is_hop_by_hop(name, scan->connection) &&
		 !replaced_header(name) &&
		 !(scan->for_cache && conditional_header(name)))
		scan->rc = strata_headers_add(scan->out, name, value);
	return MHD_YES;
}

/* The protocol part of Via ("1.1") from "HTTP/1.1". */
static const char *via_version(const char *version)
{
	if (version != NULL && strncmp(version, "HTTP/", 5) == 0)
		return version + 5;
	return "1.1";
}

/*
 * Revalidation (RFC 9111 section 4.3.1): a fill for a key whose kept,
 * stale entry has a validator asks the upstream conditionally, so that
 * an unchanged representation comes back as a 304 without its body.
 */
static int add_validators(struct request *rq, struct strata_headers *out)
{
	const char *etag, *lm;
	int rc = 0;

	if (rq->stale == NULL || strcmp(rq->method, "POST") == 0)
		return 0;
	etag = strata_entry_header(rq->stale, "ETag");
	lm = strata_entry_header(rq->stale, "Last-Modified");
	if (etag != NULL)
		rc = strata_headers_add(out, "If-None-Match", etag);
	if (rc == 0 && lm != NULL)
		rc = strata_headers_add(out, "If-Modified-Since", lm);
	rq->revalidating = rc == 0 && (etag != NULL || lm != NULL);
	return rc;
}

static int forwarded_headers(struct request *rq,
			     struct MHD_Connection *conn, const char *version,
			     bool for_cache, struct strata_headers *out)
{
	struct header_scan scan = {
		.out = out,
		.for_cache = for_cache,
		.keyed = rq->cacheable ? rq->route : NULL,
	};
	const char *host =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	char via[64], traceparent[STRATA_TRACEPARENT_LEN + 1];
	/* The client's host is not in the key unless the route varies on
	 * it: an application that reflected it (absolute links, redirects)
	 * would have one client's Host stored and served to everyone
	 * (cache poisoning).  So on a caching route that does not vary on
	 * Host, the application sees upstream.url's host, and no
	 * X-Forwarded-Host but the client's own when that is keyed. */
	bool host_keyed = !rq->cacheable || route_varies(rq->route, "Host");
	int rc;

	scan.xfh_keyed = rq->cacheable &&
			 route_varies(rq->route, "X-Forwarded-Host");

	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_connection_cb,
				  &scan);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header_cb,
				  &scan);
	rc = scan.rc;
	if (rc == 0 && host != NULL && rq->live->preserve_host && host_keyed)
		rc = strata_headers_add(out, "Host", host);
	if (rc == 0)
		rc = join(&scan.xff, client_of(rq));
	if (rc == 0)
		rc = strata_headers_add(out, "X-Forwarded-For", scan.xff);
	if (rc == 0)
		rc = strata_headers_add(out, "X-Forwarded-Proto", "http");
	if (rc == 0 && host != NULL && host_keyed && !scan.xfh_keyed)
		rc = strata_headers_add(out, "X-Forwarded-Host", host);
	snprintf(via, sizeof(via), "%s strata", via_version(version));
	if (rc == 0)
		rc = join(&scan.via, via);
	if (rc == 0)
		rc = strata_headers_add(out, "Via", scan.via);
	if (rc == 0 && for_cache)
		rc = add_validators(rq, out);
	if (rc == 0 && strata_trace_format(&rq->trace, traceparent) > 0)
		rc = strata_headers_add(out, "traceparent", traceparent);
	if (rc == 0 && rq->tracestate != NULL)
		rc = strata_headers_add(out, "tracestate", rq->tracestate);
	free(scan.connection);
	free(scan.xff);
	free(scan.via);
	return rc;
}

/* Copy every request header, unfiltered, for a C handler. */
static enum MHD_Result copy_header_cb(void *cls, enum MHD_ValueKind kind,
				      const char *name, const char *value)
{
	struct strata_headers *h = cls;

	(void)kind;
	if (value != NULL && strata_headers_add(h, name, value) != 0)
		return MHD_NO;
	return MHD_YES;
}

static void job_done_cb(struct strata_handler_job *job)
{
	wake(job->owner);
}

/* Run the route's C handler on the handler pool (fetched() parks). */
static int start_handler(struct strata_front *front, struct request *rq,
			 const struct strata_handler *handler,
			 const char *method)
{
	struct strata_headers headers = { 0 };
	int rc;

	rq->job = calloc(1, sizeof(*rq->job));
	if (rq->job == NULL)
		return -ENOMEM;
	MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, copy_header_cb,
				  &headers);
	rc = strata_handler_job_init(rq->job, handler, method, rq->target,
				     &headers, &rq->body, rq->body_len);
	strata_headers_clear(&headers);
	if (rc != 0)
		return rc;
	rq->job->done_cb = job_done_cb;
	rq->job->owner = rq;
	unwake(rq);
	return strata_pool_submit(front->handler_pool, &rq->job->job);
}

/* Forward upstream through an exchange, which parks the connection. */
static int start_exchange(struct strata_front *front, struct request *rq,
			  const char *method, const char *version,
			  bool collect)
{
	struct strata_exchange_request req = { 0 };
	struct strata_exchange_params params = {
		.conn = rq->conn,
		.buffer_limit = front->cfg.stream_buffer,
		.collect_limit = collect ? front->cfg.max_object_size : 0,
	};
	int rc;

	req.method = strdup(method);
	req.target = strdup(rq->target);
	rc = (req.method == NULL || req.target == NULL) ? -ENOMEM : 0;
	if (rc == 0)
		rc = forwarded_headers(rq, rq->conn, version, collect,
				       &req.headers);
	if (rc == 0) {
		req.body = rq->body;
		req.body_len = rq->body_len;
		rq->body = NULL;
		rq->body_len = rq->body_cap = 0;
		rc = strata_exchange_start(front->up, &params, &req, &rq->ex);
	}
	if (rc != 0) {
		free(req.method);
		free(req.target);
		free(req.body);
		strata_headers_clear(&req.headers);
	}
	return rc;
}

/* ---- invalidation by unsafe methods (RFC 9111 section 4.4) ------------------ */

/* Every method but the safe ones of the IANA method registry (RFC 9110
 * section 9.2.1): an unknown method (M-SEARCH, say) may change state. */
static bool unsafe_method(const char *m)
{
	static const char *const safe[] = {
		"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "SEARCH",
		"REPORT",
	};

	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		if (strcmp(m, safe[i]) == 0)
			return false;
	return true;
}

/*
 * The path a Location or Content-Location names on this origin, into
 * buf: a path ("/a/b?x", query dropped), or an absolute http(s) URI whose
 * authority is the request's Host.  Another origin's URI: false.
 */
static bool same_origin_path(const char *uri, const char *host, char *buf,
			     size_t cap)
{
	const char *p = uri, *auth, *slash;
	size_t len;

	if (uri == NULL || uri[0] == '\0')
		return false;
	if (uri[0] != '/' || uri[1] == '/') {
		if (strncasecmp(uri, "http://", 7) == 0)
			auth = uri + 7;
		else if (strncasecmp(uri, "https://", 8) == 0)
			auth = uri + 8;
		else
			return false;
		slash = strchr(auth, '/');
		len = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
		if (host == NULL || strlen(host) != len ||
		    strncasecmp(auth, host, len) != 0)
			return false;
		p = slash != NULL ? slash : "/";
	}
	len = strcspn(p, "?#");
	if (len == 0 || len >= cap)
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return true;
}

/* After an unsafe request's answer: invalidate what it changed. */
static void invalidate_after(struct strata_front *front, struct request *rq,
			     unsigned status,
			     const struct strata_headers *headers)
{
	static const char *const locations[] = {"Location",
						"Content-Location"};
	const char *host;
	char path[2048];
	size_t len;

	if (front->invalidate == NULL || !unsafe_method(rq->method) ||
	    status < 200 || status >= 400)
		return;
	len = strcspn(rq->target, "?");
	if (len > 0 && len < sizeof(path) && rq->target[0] == '/') {
		memcpy(path, rq->target, len);
		path[len] = '\0';
		front->invalidate(front->invalidate_ctx, path);
	}
	if (headers == NULL)
		return;
	host = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Host");
	for (size_t i = 0; i < 2; i++)
		if (same_origin_path(strata_headers_get(headers, locations[i]),
				     host, path, sizeof(path)))
			front->invalidate(front->invalidate_ctx, path);
}

/* ---- fetch accounting (metrics, upstream state) ---------------------------- */

/* The request's metrics series (core/live.h: metric_slot). */
static size_t route_index(const struct request *rq)
{
	return rq->live->metric_slot[rq->route != NULL
					     ? rq->route->index
					     : strata_route_table_size(
						       rq->live->routes)];
}

static void fetch_began(struct strata_front *front, struct request *rq)
{
	rq->fetch_start_us = strata_now_us();
	rq->fetch_start_wall = strata_wall_ms();
	if (front->metrics != NULL)
		strata_metrics_upstream_inflight(front->metrics, 1);
}

/* A fetch is over: `status` when answered, else 0 with the error. */
static void fetch_ended(struct strata_front *front, struct request *rq,
			unsigned status, int err)
{
	if (rq->fetch_start_us == 0)
		return;
	if (err == STRATA_ECANCELED && status == 0) {
		/* The client left: not an answer of the upstream's, good or
		 * bad.  Only the in-flight gauge moves. */
		if (front->metrics != NULL)
			strata_metrics_upstream_inflight(front->metrics, -1);
		rq->fetch_start_us = 0;
		return;
	}
	rq->has_upstream = true;
	rq->upstream_us = strata_now_us() - rq->fetch_start_us;
	/* Relaxed: a health hint for /ready; orders nothing. */
	if (front->upstream_down != NULL && status != 0)
		atomic_store_explicit(front->upstream_down, false,
				      memory_order_relaxed);
	else if (front->upstream_down != NULL &&
		 (err == STRATA_ECONNECT || err == STRATA_ETIMEOUT))
		atomic_store_explicit(front->upstream_down, true,
				      memory_order_relaxed);
	if (front->metrics != NULL) {
		strata_metrics_upstream(front->metrics, route_index(rq),
					status, rq->upstream_us);
		strata_metrics_upstream_inflight(front->metrics, -1);
	}
	rq->fetch_start_us = 0;
}

/*
 * Fetch the answer: from the route's handler or upstream.  `collect` (the
 * cache's miss path) asks for the whole response rather than a stream.
 * A cached HEAD is fetched as GET, so the entry it stores answers GETs.
 */
static enum MHD_Result fetched(struct strata_front *front,
			       struct request *rq);
static enum MHD_Result upstream_failed(struct strata_front *front,
				       struct request *rq, int err);

static enum MHD_Result fetch(struct strata_front *front, struct request *rq,
			     const char *method, const char *version,
			     bool collect)
{
	const struct strata_handler *handler = NULL;
	int rc;

	if (collect && strcmp(method, "HEAD") == 0)
		method = "GET";
	if (rq->route != NULL && rq->live->handlers != NULL &&
	    rq->live->handlers[rq->route->index].fn != NULL)
		handler = &rq->live->handlers[rq->route->index];
	fetch_began(front, rq);
	if (handler != NULL)
		rc = start_handler(front, rq, handler, method);
	else
		rc = start_exchange(front, rq, method, version, collect);
	if (rc != 0) {
		fetch_ended(front, rq, 0, rc);
		return upstream_failed(front, rq, rc);
	}
	rq->phase = PHASE_FETCH;
	/* A handler may already be done: fetched() parks only if not. */
	return handler != NULL ? fetched(front, rq) : MHD_YES;
}

/* ---- the cache ------------------------------------------------------------ */

struct vary_scan {
	const char *name;
	char *buf;
	size_t cap;
	size_t len;
	bool found;
	bool overflow;
};

static enum MHD_Result vary_cb(void *cls, enum MHD_ValueKind kind,
			       const char *name, const char *value)
{
	struct vary_scan *scan = cls;
	size_t n;

	(void)kind;
	if (value == NULL || strcasecmp(name, scan->name) != 0)
		return MHD_YES;
	n = strlen(value);
	if (scan->len + (scan->found ? 2 : 0) + n + 1 > scan->cap) {
		scan->overflow = true;
		return MHD_NO;
	}
	if (scan->found) {
		memcpy(scan->buf + scan->len, ", ", 2);
		scan->len += 2;
	}
	memcpy(scan->buf + scan->len, value, n + 1);
	scan->len += n;
	scan->found = true;
	return MHD_YES;
}

/* strata_key_header_fn: all values of a request header, joined. */
static const char *key_header(void *arg, const char *name, char *buf,
			      size_t cap)
{
	struct request *rq = arg;
	struct vary_scan scan = { .name = name, .buf = buf, .cap = cap };

	MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, vary_cb, &scan);
	if (scan.overflow) {
		/* Never key on a truncated value: two different long values
		 * would share an entry.  Such a request is not cached. */
		rq->cacheable = false;
		return NULL;
	}
	return scan.found ? buf : NULL;
}

/* Build the request's key.  Returns false when it cannot be cached. */
static bool build_key(struct request *rq, const char *method)
{
	const struct strata_key_rule *rule = &rq->route->key_rule;
	size_t len = 0;
	int rc;

	rq->key_text = rq->key_inline;
	rc = strata_key_text(rule, method, rq->target, key_header, rq,
			     rq->key_inline, sizeof(rq->key_inline), &len);
	if (rc == -ENOSPC && len <= STRATA_ENTRY_MAX_KEY_TEXT) {
		rq->key_text = malloc(len);
		if (rq->key_text == NULL)
			return false;
		rc = strata_key_text(rule, method, rq->target, key_header, rq,
				     rq->key_text, len, &len);
	}
	if (rc != 0 || !rq->cacheable)
		return false;
	rq->key_len = len;
	strata_key_hash(rq->key_text, len, &rq->key);
	return true;
}

/* "strata; hit; ttl=N; detail=TIER", hand-formatted: it runs per hit. */
static void hit_status(struct request *rq, int64_t now, const char *tier)
{
	static const char head[] = "strata; hit; ttl=";
	static const char detail[] = "; detail=";
	size_t tier_len = strlen(tier);
	char *p = rq->status_buf;

	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	p += strata_fmt_u64(p, (uint64_t)strata_entry_ttl_s(rq->entry, now));
	memcpy(p, detail, sizeof(detail) - 1);
	p += sizeof(detail) - 1;
	memcpy(p, tier, tier_len + 1);
	rq->cache_status = rq->status_buf;
	rq->tier = tier;
}

/* ---- Vary: variants of one primary key (RFC 9111 section 4.1) --------------- */

/*
 * A response whose Vary names request headers beyond the route's `vary`
 * is stored under a secondary key: the primary key text followed by one
 * line per named header ("~name: value" or "~name!"), and a small marker
 * entry under the primary key lists the names (VARIANTS_HEADER), so the
 * next request knows which of its headers to add before it looks up.
 * Markers are entries like any other: every tier keeps and purges them;
 * they are never served.
 */
#define VARIANTS_HEADER "X-Strata-Variants"

static bool is_marker(const struct strata_entry *e)
{
	return strata_entry_header(e, VARIANTS_HEADER) != NULL;
}

/* The Vary names not already in the route's key, lowercased, joined by
 * ",", into `out` (cap bytes).  Returns 1 when there are some, 0 when
 * none, -1 for "Vary: *" or names that do not fit. */
static int extra_vary(const struct strata_route *route, const char *vary,
		      char *out, size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (const char *p = vary; p != NULL && *p != '\0';) {
		size_t len;
		bool in_route = false;

		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (len == 0)
			break;
		if (len == 1 && *p == '*')
			return -1;
		for (size_t i = 0; i < route->n_vary; i++)
			if (strlen(route->vary[i]) == len &&
			    strncasecmp(route->vary[i], p, len) == 0)
				in_route = true;
		if (!in_route) {
			if (n + len + 2 > cap)
				return -1;
			if (n > 0)
				out[n++] = ',';
			for (size_t i = 0; i < len; i++)
				out[n++] = (char)tolower((unsigned char)p[i]);
			out[n] = '\0';
		}
		p += len;
	}
	return n > 0 ? 1 : 0;
}

/*
 * Switch the request's key to the variant for `names` (a marker's list):
 * the primary text is kept for the marker, the key becomes the secondary.
 * Returns false when the request cannot be keyed so (a header value with
 * CR or LF, or too long): then it is not cached.
 */
static bool use_variant_key(struct request *rq, const char *names)
{
	char value[4096], *text, *name_copy;
	size_t cap = rq->key_len + 1, len;
	const char *p;

	for (p = names; *p != '\0'; p++)
		cap += 1;
	name_copy = strdup(names);
	if (name_copy == NULL)
		return false;
	/* First pass: the size. */
	for (char *save = NULL, *n = strtok_r(name_copy, ",", &save);
	     n != NULL; n = strtok_r(NULL, ",", &save)) {
		const char *v = key_header(rq, n, value, sizeof(value));

		if (v == STRATA_KEY_HEADER_TOOBIG || !rq->cacheable ||
		    (v != NULL && strpbrk(v, "\r\n") != NULL)) {
			free(name_copy);
			return false;
		}
		cap += strlen(n) + 4 + (v != NULL ? strlen(v) : 0);
	}
	free(name_copy);
	if (cap > STRATA_ENTRY_MAX_KEY_TEXT || (text = malloc(cap)) == NULL)
		return false;
	memcpy(text, rq->key_text, rq->key_len);
	len = rq->key_len;
	name_copy = strdup(names);
	for (char *save = NULL,
		  *n = name_copy ? strtok_r(name_copy, ",", &save) : NULL;
	     n != NULL; n = strtok_r(NULL, ",", &save)) {
		const char *v = key_header(rq, n, value, sizeof(value));

		len += (size_t)snprintf(text + len, cap - len, "~%s%s%s\n", n,
					v != NULL ? ": " : "!",
					v != NULL ? v : "");
	}
	free(name_copy);
	/* The primary text moves to primary_text; the key is the variant. */
	rq->primary_text = malloc(rq->key_len + 1);
	rq->variant_names = strdup(names);
	if (rq->primary_text == NULL || rq->variant_names == NULL) {
		free(text);
		return false;
	}
	memcpy(rq->primary_text, rq->key_text, rq->key_len);
	rq->primary_text[rq->key_len] = '\0';
	rq->primary_len = rq->key_len;
	rq->primary_key = rq->key;
	if (rq->key_text != rq->key_inline)
		free(rq->key_text);
	rq->key_text = text;
	rq->key_len = len;
	strata_key_hash(text, len, &rq->key);
	return true;
}

/* ---- stale-while-revalidate: background refreshes ---------------------------- */

static bool is_background_refresh(const struct strata_front *front,
				  struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    REFRESH_HEADER);

	return v != NULL && front->self != NULL &&
	       strcmp(v, front->refresh_token) == 0;
}

/* The stale-while-revalidate window of a stale entry: the response's
 * own directive (RFC 5861), else the route's; none when the response
 * forbids stale use (no-cache, must-revalidate, proxy-revalidate). */
static int64_t swr_window_ms(const struct request *rq,
			     const struct strata_entry *e)
{
	struct strata_cc_response cc;

	strata_cc_parse_response(strata_entry_header(e, "Cache-Control"), &cc);
	if (cc.no_cache || cc.must_revalidate || cc.proxy_revalidate ||
	    cc.s_maxage.state != STRATA_CC_ABSENT)
		return 0;
	if (cc.stale_while_revalidate.state == STRATA_CC_SET)
		return (int64_t)cc.stale_while_revalidate.seconds * 1000;
	if (cc.stale_while_revalidate.state == STRATA_CC_INVALID)
		return 0;
	return (int64_t)rq->route->stale_while_revalidate_ms;
}

struct refresh {
	struct strata_front *front;
	struct strata_headers headers;
	char *target;
};

static void refresh_headers_cb(void *arg, unsigned status,
			       struct strata_headers *headers)
{
	(void)arg;
	(void)status;
	strata_headers_clear(headers);
}

static int refresh_body_cb(void *arg, const char *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0; /* the answer was stored by the request itself */
}

static void refresh_done_cb(void *arg, int result)
{
	struct refresh *r = arg;

	(void)result;
	/* Relaxed: a bound on concurrent refreshes, nothing more. */
	atomic_fetch_sub_explicit(&r->front->refreshes, 1,
				  memory_order_relaxed);
	strata_headers_clear(&r->headers);
	free(r->target);
	free(r);
}

/* Request headers a refresh repeats: those that may be in the key or
 * matter to the origin (Host included: a route may vary on it, and the
 * loopback client sends a Host it is given); not the ones the loopback
 * client sets, nor the client's own cache directives. */
static enum MHD_Result refresh_header_cb(void *cls, enum MHD_ValueKind kind,
					 const char *name, const char *value)
{
	static const char *const skip[] = {
		"Connection", "Content-Length", "Transfer-Encoding",
		"Expect", "Cache-Control", "Pragma", "Keep-Alive", "TE",
		"Upgrade", REFRESH_HEADER, "If-None-Match",
		"If-Modified-Since", "If-Match", "If-Unmodified-Since",
		"If-Range", "Range",
	};
	struct refresh *r = cls;

	(void)kind;
	if (value == NULL)
		return MHD_YES;
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (strcasecmp(name, skip[i]) == 0)
			return MHD_YES;
	return strata_headers_add(&r->headers, name, value) == 0 ? MHD_YES
								: MHD_NO;
}

/* Start one background refresh of this request's key: a GET to our own
 * listener that goes through the miss path (and its flight: concurrent
 * refreshes of one key coalesce).  Best effort: when it cannot start, the
 * entry expires past its window and the next request fetches. */
static void start_refresh(struct strata_front *front, struct request *rq)
{
	static const struct strata_upstream_handler handler = {
		.headers_cb = refresh_headers_cb,
		.body_cb = refresh_body_cb,
		.done_cb = refresh_done_cb,
	};
	struct strata_upstream_request req = {.method = "GET"};
	struct strata_upstream_xfer *xfer = NULL;
	struct refresh *r;

	if (atomic_fetch_add_explicit(&front->refreshes, 1,
				      memory_order_relaxed) >= REFRESHES_MAX)
		goto refused;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		goto refused;
	r->front = front;
	r->target = strdup(rq->target);
	MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, refresh_header_cb,
				  r);
	if (r->target == NULL ||
	    strata_headers_add(&r->headers, REFRESH_HEADER,
			       front->refresh_token) != 0) {
		strata_headers_clear(&r->headers);
		free(r->target);
		free(r);
		goto refused;
	}
	req.target = r->target;
	req.headers = &r->headers;
	if (strata_upstream_submit(front->self, &req, &handler, r, &xfer) !=
	    0) {
		strata_headers_clear(&r->headers);
		free(r->target);
		free(r);
		goto refused;
	}
	strata_upstream_xfer_release(&xfer); /* never cancelled by us */
	return;
refused:
	atomic_fetch_sub_explicit(&front->refreshes, 1, memory_order_relaxed);
}

/*
 * A stale entry inside its stale-while-revalidate window answers at once
 * (Cache-Status: strata; hit; fwd=stale) while one background refresh
 * fetches or revalidates it for the requests that follow.
 */
static void serve_stale_while_revalidating(struct strata_front *front,
					   struct request *rq, int64_t now,
					   const char *tier)
{
	int64_t window;

	if (rq->background || rq->client_refresh || front->self == NULL ||
	    rq->route == NULL)
		return;
	if (is_marker(rq->stale))
		return;
	window = swr_window_ms(rq, rq->stale);
	if (window <= 0 || now >= rq->stale->expires + window)
		return;
	rq->entry = rq->stale;
	rq->stale = NULL;
	strata_entry_hit(rq->entry);
	snprintf(rq->status_buf, sizeof(rq->status_buf),
		 "strata; hit; fwd=stale; detail=%s", tier);
	rq->cache_status = rq->status_buf;
	rq->tier = tier;
	start_refresh(front, rq);
}

/*
 * Look the key up in this server's tiers: memory, then disk.  A hit
 * becomes rq->entry; a disk hit is promoted to memory with its original
 * expiry, so the next request finds it there.  Redis is asked later, by
 * the flight's leader, off this thread (start_fill()).
 */
static void tier_lookup(struct strata_front *front, struct request *rq);

/*
 * Look the key up (tier_lookup()); when what is found is a variants
 * marker, switch to this request's variant key and look again.
 */
static void lookup(struct strata_front *front, struct request *rq)
{
	struct strata_entry *found;
	char *names;

	tier_lookup(front, rq);
	found = rq->entry != NULL ? rq->entry : rq->stale;
	if (found == NULL || !is_marker(found) || rq->primary_text != NULL)
		return;
	names = strdup(strata_entry_header(found, VARIANTS_HEADER));
	strata_entry_release(&rq->entry);
	strata_entry_release(&rq->stale);
	rq->cache_status = CACHE_STATUS_VARY_MISS;
	if (names == NULL || !use_variant_key(rq, names)) {
		rq->cacheable = false;
		rq->cache_status = CACHE_STATUS_BYPASS;
		free(names);
		return;
	}
	free(names);
	tier_lookup(front, rq);
	if (rq->stale != NULL && is_marker(rq->stale))
		strata_entry_release(&rq->stale);
}

static void tier_lookup(struct strata_front *front, struct request *rq)
{
	int64_t now = strata_wall_ms();

	/* Catching up on purges missed while away: this server's own copies
	 * may be purged ones, so only Redis and the origin answer. */
	if (front->fleet != NULL && !strata_fleet_local_ok(front->fleet))
		return;
	if (strata_mem_lookup_kept(front->mem, &rq->key, rq->key_text,
				   rq->key_len, now, &rq->entry) == 0) {
		if (strata_entry_fresh(rq->entry, now)) {
			strata_entry_hit(rq->entry);
			hit_status(rq, now, "memory");
			return;
		}
		/* Stale but kept: a miss that may fall back on it. */
		rq->stale = rq->entry;
		rq->entry = NULL;
		serve_stale_while_revalidating(front, rq, now, "memory");
		return;
	}
	if (front->disk == NULL ||
	    strata_disk_lookup_kept(front->disk, &rq->key, rq->key_text,
				    rq->key_len, now, &rq->entry) != 0)
		return;
	strata_mem_store(front->mem, rq->entry); /* too big for memory: fine */
	if (!strata_entry_fresh(rq->entry, now)) {
		rq->stale = rq->entry;
		rq->entry = NULL;
		serve_stale_while_revalidating(front, rq, now, "disk");
		return;
	}
	strata_entry_hit(rq->entry);
	hit_status(rq, now, "disk");
}

/*
 * stale-if-error (RFC 5861, the route's stale_if_error): whether the
 * kept stale entry may answer now that the upstream failed.
 */
static bool stale_if_error_ok(const struct request *rq, int64_t now)
{
	uint64_t window;

	if (rq->stale == NULL || rq->route == NULL)
		return false;
	window = rq->route->stale_if_error_ms;
	{
		/* The response's own stale-if-error (RFC 5861) rules over
		 * the route's; must-revalidate forbids any stale use. */
		struct strata_cc_response cc;

		strata_cc_parse_response(
			strata_entry_header(rq->stale, "Cache-Control"), &cc);
		/* RFC 9111 section 4.2.4: no stale use against an explicit
		 * directive (s-maxage implies proxy-revalidate). */
		if (cc.must_revalidate || cc.proxy_revalidate ||
		    cc.no_cache || cc.s_maxage.state != STRATA_CC_ABSENT)
			return false;
		if (cc.stale_if_error.state == STRATA_CC_SET)
			window = (uint64_t)cc.stale_if_error.seconds * 1000;
	}
	/* The client's own stale-if-error (RFC 5861 section 4; parsed on
	 * ttl: origin routes only) widens what it accepts. */
	if (rq->req_cc.stale_if_error.state == STRATA_CC_SET &&
	    (uint64_t)rq->req_cc.stale_if_error.seconds * 1000 > window)
		window = (uint64_t)rq->req_cc.stale_if_error.seconds * 1000;
	return window > 0 && now < rq->stale->expires + (int64_t)window &&
	       now < rq->stale->keep_until;
}

/*
 * Answer the kept stale entry (stale_if_error_ok() said so) after the
 * upstream failed: `status` is its 5xx, or 0 when it gave no answer.  The
 * entry is shared with the flight's waiters.
 */
static enum MHD_Result answer_stale_if_error(struct strata_front *front,
					     struct request *rq,
					     unsigned status)
{
	if (status != 0)
		snprintf(rq->status_buf, sizeof(rq->status_buf),
			 "strata; fwd=stale; fwd-status=%u; "
			 "detail=stale-if-error",
			 status);
	else
		snprintf(rq->status_buf, sizeof(rq->status_buf),
			 "strata; fwd=stale; detail=stale-if-error");
	strata_entry_release(&rq->entry);
	rq->entry = rq->stale;
	rq->stale = NULL;
	if (rq->flight != NULL)
		strata_flight_end(front->flights, &rq->flight,
				  STRATA_FLIGHT_ENTRY, rq->entry, 0);
	return answer_entry(rq, rq->status_buf);
}

/*
 * The upstream gave no answer (`err`): the kept stale entry when
 * stale-if-error allows, otherwise the error, shared with the waiters.
 */
static enum MHD_Result upstream_failed(struct strata_front *front,
				       struct request *rq, int err)
{
	if (stale_if_error_ok(rq, strata_wall_ms()))
		return answer_stale_if_error(front, rq, 0);
	if (rq->flight != NULL)
		strata_flight_end(front->flights, &rq->flight,
				  STRATA_FLIGHT_ERROR, NULL, err);
	return answer_upstream_error(rq->conn, rq, err);
}

/* Whether a peeked entry answers this request now. */
static bool usable(const struct request *rq, const struct strata_entry *e,
		   int64_t now)
{
	return e->key_len == rq->key_len &&
	       memcmp(e->key_text, rq->key_text, rq->key_len) == 0 &&
	       strata_entry_fresh(e, now) && !is_marker(e);
}

/*
 * The leader's second look (see miss()): like lookup(), but the tiers'
 * hit and miss counters are left alone, since this request's first
 * lookup already counted its miss; counting again would halve every
 * tier's hit ratio.  Rare to find anything: only when a flight ended
 * between the first lookup and the join.
 */
static void relookup(struct strata_front *front, struct request *rq)
{
	int64_t now = strata_wall_ms();
	const char *tier = "memory";

	if (front->fleet != NULL && !strata_fleet_local_ok(front->fleet))
		return;
	if (strata_mem_peek(front->mem, &rq->key, &rq->entry) == 0 &&
	    !usable(rq, rq->entry, now))
		strata_entry_release(&rq->entry);
	if (rq->entry == NULL && front->disk != NULL &&
	    strata_disk_peek(front->disk, &rq->key, &rq->entry) == 0) {
		tier = "disk";
		if (usable(rq, rq->entry, now))
			strata_mem_store(front->mem, rq->entry);
		else
			strata_entry_release(&rq->entry);
	}
	if (rq->entry == NULL)
		return;
	strata_entry_hit(rq->entry);
	hit_status(rq, now, tier);
}

/*
 * The client's Cache-Control on a `ttl: origin` route (RFC 9111 section
 * 5.2.1).  Returns false when the cache must not answer from its tiers
 * (no-cache, max-age=0): the request is forwarded (fwd=request) and its
 * answer stored.  no-store: the answer is not stored.
 */
struct joined {
	const char *name;
	char *value;               /* malloc'd; NULL: none yet */
	bool failed;
};

static enum MHD_Result join_cb(void *cls, enum MHD_ValueKind kind,
			       const char *name, const char *value)
{
	struct joined *j = cls;
	char *more;

	(void)kind;
	if (name == NULL || value == NULL || strcasecmp(name, j->name) != 0)
		return MHD_YES;
	if (j->value == NULL)
		more = strdup(value);
	else if (asprintf(&more, "%s, %s", j->value, value) < 0)
		more = NULL;
	free(j->value);
	j->value = more;
	j->failed = j->failed || more == NULL;
	return MHD_YES;
}

/* Every field line of the request header `name`, joined with ", " as
 * RFC 9110 section 5.3 allows for a list: a new string, or NULL when
 * absent (or out of memory). */
static char *request_header_join(struct MHD_Connection *conn, const char *name)
{
	struct joined j = {.name = name};

	MHD_get_connection_values(conn, MHD_HEADER_KIND, join_cb, &j);
	if (j.failed) {
		free(j.value);
		return NULL;
	}
	return j.value;
}

static bool request_directives(struct request *rq, struct MHD_Connection *conn)
{
	char *cc = request_header_join(conn, "Cache-Control");

	if (cc == NULL)
		return true;
	strata_cc_parse_request(cc, &rq->req_cc);
	free(cc);
	rq->no_store = rq->req_cc.no_store;
	if (rq->req_cc.no_cache ||
	    (rq->req_cc.max_age.state == STRATA_CC_SET &&
	     rq->req_cc.max_age.seconds == 0) ||
	    rq->req_cc.max_age.state == STRATA_CC_INVALID) {
		rq->cache_status = CACHE_STATUS_REQUEST;
		rq->client_refresh = true;
		return false;
	}
	return true;
}

/*
 * A hit the client's max-age or min-fresh refuses becomes a miss that
 * keeps the entry for revalidation (RFC 9111 sections 5.2.1.1, 5.2.1.3).
 */
static void request_limits(struct request *rq)
{
	int64_t now = strata_wall_ms();
	int64_t age = strata_entry_age_s(rq->entry, now);
	int64_t left = strata_entry_ttl_s(rq->entry, now);

	if ((rq->req_cc.max_age.state == STRATA_CC_SET &&
	     age > (int64_t)rq->req_cc.max_age.seconds) ||
	    (rq->req_cc.min_fresh.state == STRATA_CC_SET &&
	     left < (int64_t)rq->req_cc.min_fresh.seconds)) {
		strata_entry_release(&rq->stale);
		rq->stale = rq->entry;
		rq->entry = NULL;
		rq->cache_status = CACHE_STATUS_MISS;
	}
}

/*
 * The client's max-stale (RFC 9111 section 5.2.1.2): a stale entry it
 * accepts answers without going forward, unless the stored response
 * forbids stale use (section 4.2.4).
 */
static void serve_max_stale(struct request *rq)
{
	const struct strata_cc_delta *ms = &rq->req_cc.max_stale;
	struct strata_cc_response cc;
	int64_t now = strata_wall_ms(), stale_ms;

	if (ms->state != STRATA_CC_SET || is_marker(rq->stale))
		return;
	strata_cc_parse_response(strata_entry_header(rq->stale,
						     "Cache-Control"),
				 &cc);
	if (cc.no_cache || cc.must_revalidate || cc.proxy_revalidate ||
	    cc.s_maxage.state != STRATA_CC_ABSENT)
		return;
	stale_ms = now - rq->stale->expires;
	if (ms->seconds != STRATA_CC_UNBOUNDED &&
	    stale_ms > ms->seconds * 1000)
		return;
	rq->entry = rq->stale;
	rq->stale = NULL;
	strata_entry_hit(rq->entry);
	rq->cache_status = "strata; hit; fwd=stale; detail=max-stale";
}

/* Decide what kind of request this is for the cache. */
static void classify(struct strata_front *front, struct request *rq,
		     struct MHD_Connection *conn, const char *method)
{
	const struct strata_route *route = rq->route;

	rq->cache_status = CACHE_STATUS_BYPASS;
	if (route == NULL || (route->ttl_ms == 0 && !route->ttl_origin))
		return;
	if (!strata_route_caches(route, strata_method_bit(method))) {
		rq->cache_status = CACHE_STATUS_METHOD;
		return;
	}
	rq->has_authorization = MHD_lookup_connection_value(
					conn, MHD_HEADER_KIND,
					"Authorization") != NULL;
	if (rq->has_authorization && !route->force) {
		/* The answer may be this user's: neither served from nor
		 * stored in the shared cache. */
		rq->cache_status = CACHE_STATUS_AUTH;
		return;
	}
	rq->cacheable = true;
	if (!build_key(rq, method)) {
		rq->cacheable = false;
		return;
	}
	rq->cache_status = CACHE_STATUS_MISS;
	if (is_background_refresh(front, conn)) {
		/* Our own refresh: find the kept entry for its validators,
		 * never answer from it. */
		rq->background = true;
		lookup(front, rq);
		/* Another refresh got there first: the entry is fresh again,
		 * nothing to fetch (answered from it, to ourselves). */
		if (rq->entry != NULL &&
		    strata_entry_fresh(rq->entry, strata_wall_ms()))
			return;
		strata_entry_release(&rq->entry);
		rq->client_refresh = true;
		rq->cache_status = CACHE_STATUS_REQUEST;
		return;
	}
	if (route->ttl_origin && !request_directives(rq, conn))
		return; /* the client asked to revalidate: no lookup */
	lookup(front, rq);
	if (route->ttl_origin && rq->entry != NULL)
		request_limits(rq);
	if (route->ttl_origin && rq->entry == NULL && rq->stale != NULL)
		serve_max_stale(rq);
}

static void waiter_done_cb(struct strata_flight_waiter *w,
			   enum strata_flight_outcome outcome,
			   struct strata_entry *entry, int error)
{
	struct request *rq = (struct request *)(void *)((char *)w -
					offsetof(struct request, waiter));

	rq->outcome = outcome;
	rq->flight_error = error;
	if (entry != NULL)
		rq->entry = strata_entry_ref(entry);
	wake(rq);
}

static void park_cb(void *arg)
{
	park(arg);
}

/* A fill's outcome, on a Redis worker thread: note it and wake. */
static void fill_done_cb(void *arg, enum strata_redis_fill outcome,
			 struct strata_entry *entry)
{
	struct request *rq = arg;

	rq->fill = outcome;
	if (outcome == STRATA_REDIS_FILL_HIT ||
	    outcome == STRATA_REDIS_FILL_FILLED) {
		rq->entry = entry; /* ours now */
	} else if (entry != NULL) {
		/* Redis's expired copy: for revalidation and stale-if-error,
		 * unless this server had one already. */
		if (rq->stale == NULL)
			rq->stale = entry;
		else
			strata_entry_release(&entry);
	}
	wake(rq);
}

static enum MHD_Result miss(struct strata_front *front, struct request *rq,
			    const char *method, const char *version);

/*
 * Redis held the key's variants marker: keep it here too, let the
 * flight's waiters look again for their own variants, and start over on
 * this request's variant key (its own flight, lookup and fill).
 */
static enum MHD_Result follow_marker(struct strata_front *front,
				     struct request *rq, const char *method,
				     const char *version)
{
	char *names = strdup(strata_entry_header(rq->entry, VARIANTS_HEADER));

	strata_mem_store(front->mem, rq->entry);
	if (front->disk != NULL)
		strata_disk_store(front->disk, rq->entry);
	strata_entry_release(&rq->entry);
	strata_flight_end(front->flights, &rq->flight, STRATA_FLIGHT_RETRY,
			  NULL, 0);
	rq->cache_status = CACHE_STATUS_VARY_MISS;
	if (names == NULL || !use_variant_key(rq, names)) {
		free(names);
		rq->cacheable = false;
		return fetch(front, rq, method, version, false);
	}
	free(names);
	tier_lookup(front, rq);
	if (rq->entry != NULL && !is_marker(rq->entry))
		return answer_entry(rq, rq->cache_status);
	strata_entry_release(&rq->entry);
	return miss(front, rq, method, version);
}

/*
 * The fill is over (the connection was resumed, or it ended before we
 * parked): answer from Redis, or fetch, holding the fleet lock or not.
 */
static enum MHD_Result filled(struct strata_front *front, struct request *rq,
			      const char *method, const char *version)
{
	if (park(rq))
		return MHD_YES; /* resumed without news: wait on */
	if ((rq->fill == STRATA_REDIS_FILL_HIT ||
	     rq->fill == STRATA_REDIS_FILL_FILLED) &&
	    is_marker(rq->entry) && rq->primary_text == NULL)
		return follow_marker(front, rq, method, version);
	switch (rq->fill) {
	case STRATA_REDIS_FILL_HIT:
	case STRATA_REDIS_FILL_FILLED:
		/* Promote with the original expiry; too big for memory or a
		 * full disk queue only costs the next request a Redis trip. */
		strata_mem_store(front->mem, rq->entry);
		if (front->disk != NULL)
			strata_disk_store(front->disk, rq->entry);
		if (rq->fill == STRATA_REDIS_FILL_HIT) {
			strata_entry_hit(rq->entry);
			hit_status(rq, strata_wall_ms(), "redis");
		}
		else
			rq->cache_status = CACHE_STATUS_FLEET;
		strata_flight_end(front->flights, &rq->flight,
				  STRATA_FLIGHT_ENTRY, rq->entry, 0);
		return answer_entry(rq, rq->cache_status);
	case STRATA_REDIS_FILL_LEAD:
		rq->fleet_lock = true;
		rq->lock_key = rq->key;
		break;
	case STRATA_REDIS_FILL_FETCH:
		break;
	}
	return fetch(front, rq, method, version, true);
}

/* Leading a flight that missed this server's tiers: ask Redis, off the
 * libmicrohttpd thread; a Redis that is down or saturated is skipped. */
static enum MHD_Result start_fill(struct strata_front *front,
				  struct request *rq, const char *method,
				  const char *version)
{
	unwake(rq);
	rq->phase = PHASE_SHARED;
	if (strata_redis_async_fill(front->shared, &rq->key, rq->key_text,
				    rq->key_len, strata_wall_ms(),
				    fill_done_cb, rq) != 0)
		return fetch(front, rq, method, version, true);
	return filled(front, rq, method, version);
}

/* A cacheable miss: lead the key's flight, or wait on it. */
static enum MHD_Result miss(struct strata_front *front, struct request *rq,
			    const char *method, const char *version)
{
	int rc;

	rq->waiter.done_cb = waiter_done_cb;
	unwake(rq);
	rc = strata_flight_join(front->flights, &rq->key, rq->key_text,
				rq->key_len, &rq->waiter, park_cb, rq,
				&rq->flight);
	if (rc == 0) {
		rq->phase = PHASE_JOINED;
		return MHD_YES;
	}
	if (rc < 0) /* no memory for a flight: fetch alone */
		return fetch(front, rq, method, version, false);
	/* The client asked the origin itself (no-cache): no tier answers. */
	if (rq->client_refresh)
		return fetch(front, rq, method, version, true);
	/* Leading.  The previous flight may have ended between our lookup
	 * and our join: look again rather than fetch twice. */
	relookup(front, rq);
	if (rq->entry != NULL) {
		strata_flight_end(front->flights, &rq->flight,
				  STRATA_FLIGHT_ENTRY, rq->entry, 0);
		return answer_entry(rq, rq->cache_status);
	}
	if (front->shared != NULL)
		return start_fill(front, rq, method, version);
	return fetch(front, rq, method, version, true);
}

/* The last call with the request complete: answer or fetch. */
static enum MHD_Result dispatch(struct strata_front *front,
				struct request *rq, const char *method,
				const char *version)
{
	if (rq->entry != NULL)
		return answer_entry(rq, rq->cache_status);
	if (rq->cacheable && rq->req_cc.only_if_cached)
		/* RFC 9111 section 5.2.1.7: not stored, not fetched. */
		return answer(rq->conn, rq, MHD_HTTP_GATEWAY_TIMEOUT,
			      "not in the cache (only-if-cached)\n");
	if (rq->cacheable)
		return miss(front, rq, method, version);
	return fetch(front, rq, method, version, false);
}

/*
 * Store a new entry in every tier that takes it: memory (it may be too big
 * for the budget), disk (queued for the writer thread; a full queue drops
 * it) and Redis (queued for its workers, releasing the fleet lock after
 * the write when this request holds it).  Stored means some tier kept it
 * or was given it.
 */
static bool store(struct strata_front *front, struct request *rq,
		  struct strata_entry *e)
{
	bool kept = strata_mem_store(front->mem, e) == 0;

	if (front->disk != NULL && strata_disk_store(front->disk, e) == 0)
		kept = true;
	if (front->shared != NULL &&
	    strata_redis_async_store(front->shared, e, rq->fleet_lock) == 0) {
		kept = true;
		rq->fleet_lock = false; /* released by the store */
	}
	return kept;
}

/*
 * Split the tags header ("a b c", every value of it) into `tags`, pointing
 * into `buf` (a copy).  Returns how many (at most `max`); more are
 * ignored.
 */
static size_t parse_tags(const char *value, char *buf, size_t cap,
			 const char **tags, size_t max)
{
	size_t n = 0;
	char *save = NULL, *tok;

	if (value == NULL || cap == 0)
		return 0;
	snprintf(buf, cap, "%s", value);
	for (tok = strtok_r(buf, " \t,", &save); tok != NULL && n < max;
	     tok = strtok_r(NULL, " \t,", &save))
		tags[n++] = tok;
	return n;
}

/*
 * `ttl: origin` (RFC 9111): whether a shared cache may store the answer,
 * and its times: `created` back-dated by the corrected initial age
 * (section 4.2.3), `expires` at the end of the freshness lifetime
 * (section 4.2.1: s-maxage, max-age, Expires - Date, heuristic, then
 * the route's default_ttl), `keep_until` past it for the stale windows
 * and revalidation.  A lifetime of 0 with a validator (no-cache, say) is
 * stored already stale, so every use revalidates it.
 */
static enum strata_store_verdict origin_freshness(
	const struct request *rq, unsigned status,
	const struct strata_headers *headers, int64_t now,
	struct strata_entry_params *p)
{
	const struct strata_route *route = rq->route;
	struct strata_cc_response cc;
	struct strata_freshness f;
	struct strata_freshness_route fr = {
		.default_ttl_ms = route->default_ttl_ms > 0
					  ? (int64_t)route->default_ttl_ms
					  : -1,
		.heuristic_cap_ms = 24 * 3600 * 1000LL,
		.stale_while_revalidate_ms =
			(int64_t)route->stale_while_revalidate_ms,
		.stale_if_error_ms = (int64_t)route->stale_if_error_ms,
	};
	struct strata_freshness_response r = {
		.status = status,
		.cc = &cc,
		.date = strata_headers_get(headers, "Date"),
		.expires = strata_headers_get(headers, "Expires"),
		.last_modified = strata_headers_get(headers, "Last-Modified"),
		.age = strata_headers_get(headers, "Age"),
		.request_time_ms = rq->fetch_start_wall ? rq->fetch_start_wall
							: now,
		.response_time_ms = now,
	};
	struct strata_freshness_store st = {
		.method = rq->method,
		.route_lists_method = true,
		.status = status,
		.cc = &cc,
		.request_cc = &rq->req_cc,
		.has_expires = r.expires != NULL,
		.request_has_authorization = rq->has_authorization,
		.has_set_cookie = strata_headers_get(headers, "Set-Cookie") !=
				  NULL,
		.force = route->force,
	};
	bool validator = strata_headers_get(headers, "ETag") != NULL ||
			 r.last_modified != NULL;
	int64_t keep = 0;

	strata_cc_parse_response(strata_headers_get(headers, "Cache-Control"),
				 &cc);
	if (strcmp(rq->method, "HEAD") == 0)
		st.method = "GET"; /* fetched as GET for the cache */
	if (strata_freshness_storable(&st) != STRATA_STORABLE_OK)
		return STRATA_STORE_STATUS;
	strata_freshness_compute(&r, &fr, &f);
	/* Stale at once, with no validator to revalidate it by: worth
	 * keeping only for a stale window the response or route grants
	 * (max-age=0, stale-if-error=60, say). */
	if (f.lifetime_ms <= 0 && !validator &&
	    (f.no_stale || f.no_cache ||
	     (f.stale_while_revalidate_ms <= 0 && f.stale_if_error_ms <= 0)))
		return STRATA_STORE_STATUS; /* nothing to reuse it for */
	p->created = now - f.initial_age_ms;
	p->expires = strata_freshness_stale_at(&f);
	if (f.no_cache)
		p->expires = p->created; /* stored, revalidated every time */
	if (p->expires < p->created)
		p->expires = p->created;
	if (f.stale_while_revalidate_ms > keep)
		keep = f.stale_while_revalidate_ms;
	if (f.stale_if_error_ms > keep)
		keep = f.stale_if_error_ms;
	if (validator && (int64_t)route->keep_ms > keep)
		keep = (int64_t)route->keep_ms;
	p->keep_until = p->expires + keep;
	if (p->keep_until <= now)
		return STRATA_STORE_STATUS; /* already past keeping */
	return STRATA_STORE_OK;
}

/*
 * How long past expiry an entry is kept, in every tier: the route's stale
 * windows, and for an entry with a validator (ETag, Last-Modified) the
 * route's `keep`, so that it can be revalidated rather than fetched
 * whole (never served stale without revalidation on that account).
 */
static int64_t keep_ms(const struct strata_route *route,
		       const struct strata_headers *headers)
{
	uint64_t keep = route->stale_while_revalidate_ms;

	if (route->stale_if_error_ms > keep)
		keep = route->stale_if_error_ms;
	if ((strata_headers_get(headers, "ETag") != NULL ||
	     strata_headers_get(headers, "Last-Modified") != NULL) &&
	    route->keep_ms > keep)
		keep = route->keep_ms;
	return (int64_t)keep;
}

/*
 * Store an entry; for a variant, also (re)store the marker under the
 * primary key, with the variant's times, so the next request finds the
 * names to key on.  The fleet lock, taken on the key the fill started
 * with (the primary, when the variation was not known yet), is released
 * with whichever entry is stored under that key.
 */
static bool store_variant_aware(struct strata_front *front,
				struct request *rq, struct strata_entry *e)
{
	struct strata_header h = {.name = VARIANTS_HEADER,
				  .value = rq->variant_names};
	struct strata_headers mh = {.v = &h, .n = 1};
	struct strata_entry_params mp = {
		.key = &rq->primary_key,
		.key_text = rq->primary_text,
		.key_len = rq->primary_len,
		.route = e->route,
		.status = 200,
		.created = e->created,
		.expires = e->expires,
		.keep_until = e->keep_until,
		.headers = &mh,
	};
	struct strata_entry *marker = NULL;
	bool lock_on_primary = rq->fleet_lock && rq->variant_names != NULL &&
			       strata_key_equal(&rq->lock_key, &rq->primary_key);
	bool kept;

	if (rq->variant_names == NULL)
		return store(front, rq, e);
	if (lock_on_primary)
		rq->fleet_lock = false; /* released with the marker below */
	kept = store(front, rq, e);
	if (strata_entry_new(&mp, &marker) == 0) {
		rq->fleet_lock = lock_on_primary;
		store(front, rq, marker);
		strata_entry_release(&marker);
	}
	return kept;
}

/* The origin's Age header in milliseconds (0 when absent or invalid). */
static int64_t age_on_arrival_ms(const struct strata_headers *headers)
{
	const char *age = strata_headers_get(headers, "Age");
	char *end;
	unsigned long long s;

	if (age == NULL || *age < '0' || *age > '9')
		return 0;
	s = strtoull(age, &end, 10);
	if (*end != '\0' || s > 10ull * 365 * 24 * 3600)
		return 0;
	return (int64_t)s * 1000;
}

/*
 * A whole response is here (collected from upstream or made by a
 * handler): make it an entry, store it when the route and policy allow,
 * end the flight, and answer.  `headers` are as the origin sent them.
 */
static enum MHD_Result complete(struct strata_front *front,
				struct request *rq, unsigned status,
				const struct strata_headers *headers,
				const char *body, size_t body_len);

/*
 * The upstream answered our revalidation with 304: the stale entry is
 * still good.  Its stored headers are updated with the 304's (RFC 9111
 * section 3.2: all but Content-Length), and the result, with the stored
 * body and status, goes through the normal path: a new entry with a new
 * expiry, stored in every tier, answering this request and the waiters.
 * The body is not transferred again.
 */
static enum MHD_Result complete_revalidated(struct strata_front *front,
					    struct request *rq,
					    const struct strata_headers *h304)
{
	struct strata_headers merged = {0};
	struct strata_headers e2e = {0};
	struct strata_entry *old = rq->stale;
	enum MHD_Result ok;
	int rc = strata_http_end_to_end(h304, &e2e);

	for (size_t i = 0; rc == 0 && i < old->n_headers; i++)
		if (strata_headers_get(&e2e, old->headers[i].name) == NULL)
			rc = strata_headers_add(&merged, old->headers[i].name,
						old->headers[i].value);
	for (size_t i = 0; rc == 0 && i < e2e.n; i++)
		if (strcasecmp(e2e.v[i].name, "Content-Length") != 0)
			rc = strata_headers_add(&merged, e2e.v[i].name,
						e2e.v[i].value);
	strata_headers_clear(&e2e);
	if (rc != 0) {
		strata_headers_clear(&merged);
		return upstream_failed(front, rq, rc);
	}
	rq->revalidating = false;
	rq->revalidated = true;
	/* Keep the old entry alive: its body is the new entry's source. */
	rq->stale = NULL;
	ok = complete(front, rq, old->status, &merged, old->body,
		      old->body_len);
	strata_headers_clear(&merged);
	strata_entry_release(&old);
	return ok;
}

static enum MHD_Result complete(struct strata_front *front,
				struct request *rq, unsigned status,
				const struct strata_headers *headers,
				const char *body, size_t body_len)
{
	struct strata_headers e2e = { 0 };
	int64_t now = strata_wall_ms();
	enum strata_store_verdict verdict = STRATA_STORE_STATUS;
	struct strata_key none = { { 0 } };
	struct strata_entry_params p = {
		.key = rq->cacheable ? &rq->key : &none,
		.key_text = rq->cacheable ? rq->key_text : rq->target,
		.key_len = rq->cacheable ? rq->key_len : strlen(rq->target),
		.route = rq->route != NULL ? rq->route->name : "",
		.status = status,
		.created = now,
		.expires = now,
		.headers = &e2e,
		.body = body,
		.body_len = body_len,
	};
	const char *tags[STRATA_ENTRY_MAX_TAGS];
	char tag_buf[4096];
	bool rekeyed = false;
	int rc = strata_http_end_to_end(headers, &e2e);

	if (status == 304 && rq->revalidating && rq->stale != NULL) {
		fetch_ended(front, rq, status, 0);
		return complete_revalidated(front, rq, headers);
	}
	fetch_ended(front, rq, status, 0);
	invalidate_after(front, rq, status, headers);
	if (status >= 500 && stale_if_error_ok(rq, now))
		return answer_stale_if_error(front, rq, status);
	if (rq->cacheable && front->tags_header != NULL) {
		p.n_tags = parse_tags(strata_headers_get(headers,
							 front->tags_header),
				      tag_buf, sizeof(tag_buf), tags,
				      STRATA_ENTRY_MAX_TAGS);
		p.tags = tags;
	}
	/* The answer was already this old when it arrived: count that into
	 * the Age we send (RFC 9111 section 4.2.3, without the clock
	 * corrections the HTTP-semantics milestone adds); the stored headers
	 * carry no Age of their own. */
	p.created = now - age_on_arrival_ms(headers);
	strata_headers_remove(&e2e, "Age");
	strata_headers_remove(&e2e, VARIANTS_HEADER); /* ours alone */
	if (rq->cacheable && rq->route->ttl_origin) {
		verdict = origin_freshness(rq, status, headers, now, &p);
		if (verdict == STRATA_STORE_OK &&
		    body_len > front->cfg.max_object_size)
			verdict = STRATA_STORE_STATUS;
	} else if (rq->cacheable) {
		verdict = strata_policy_storable(status, headers,
						 rq->has_authorization,
						 rq->route->force);
		if (verdict == STRATA_STORE_OK &&
		    body_len > front->cfg.max_object_size)
			verdict = STRATA_STORE_STATUS; /* a handler's big body */
		p.expires = now + (int64_t)rq->route->ttl_ms;
		p.keep_until = p.expires + keep_ms(rq->route, headers);
	}
	if (rq->cacheable && rq->no_store)
		verdict = STRATA_STORE_STATUS; /* the request said no-store */
	if (rq->cacheable && verdict == STRATA_STORE_OK) {
		/* The response's own Vary (RFC 9111 section 4.1). */
		char names[512];
		int v = extra_vary(rq->route, strata_headers_get(headers, "Vary"),
				   names, sizeof(names));

		if (v < 0)
			verdict = STRATA_STORE_STATUS; /* Vary: *, or too long */
		else if (v > 0 && rq->primary_text == NULL) {
			if (use_variant_key(rq, names)) {
				rekeyed = true;
				p.key = &rq->key;
				p.key_text = rq->key_text;
				p.key_len = rq->key_len;
			} else {
				verdict = STRATA_STORE_STATUS;
			}
		} else if (v > 0 && strcmp(rq->variant_names, names) != 0) {
			/* The origin changed what it varies on: not this
			 * time; the marker is refreshed by a later fill. */
			verdict = STRATA_STORE_STATUS;
		}
	}
	if (rc == 0 && rq->cacheable && rq->route->etag_generate &&
	    status == 200 && strata_headers_get(&e2e, "ETag") == NULL) {
		/* `etag: generate`: a strong validator from the body, so
		 * clients can revalidate answers from an origin that gives
		 * none. */
		char etag[STRATA_ETAG_GEN_SIZE];

		strata_etag_of_body(body, body_len, etag);
		rc = strata_headers_add(&e2e, "ETag", etag);
	}
	if (rc == 0 && strata_headers_get(&e2e, "Date") == NULL) {
		/* RFC 9110 section 6.6.1: a response without Date gets one
		 * from the first recipient with a clock. */
		char date[STRATA_HTTP_DATE_BUFSIZE];

		if (strata_http_date_format(now, date) == 0)
			rc = strata_headers_add(&e2e, "Date", date);
	}
	if (rc == 0)
		rc = strata_entry_new(&p, &rq->entry);
	strata_headers_clear(&e2e);
	if (rc != 0) {
		if (rq->flight != NULL)
			strata_flight_end(front->flights, &rq->flight,
					  STRATA_FLIGHT_ERROR, NULL,
					  STRATA_EUPSTREAM);
		return answer_upstream_error(rq->conn, rq, STRATA_EUPSTREAM);
	}
	if (rq->cacheable && verdict == STRATA_STORE_OK &&
	    store_variant_aware(front, rq, rq->entry))
		rq->cache_status =
			rq->revalidated ? CACHE_STATUS_REVALIDATED
			: rq->client_refresh ? CACHE_STATUS_REQUEST_STORED
			: rq->variant_names != NULL ? CACHE_STATUS_VARY_STORED
				: CACHE_STATUS_STORED;
	else
		verdict = verdict == STRATA_STORE_OK ? STRATA_STORE_STATUS
						     : verdict;
	/* Waiters joined on the primary key may want other variants: when
	 * this answer turned out to vary, they look again on their own. */
	if (rq->flight != NULL)
		strata_flight_end(front->flights, &rq->flight,
				  verdict == STRATA_STORE_OK && !rekeyed
					  ? STRATA_FLIGHT_ENTRY
					  : STRATA_FLIGHT_RETRY,
				  rq->entry, 0);
	return answer_entry(rq, rq->cache_status);
}

/* The connection was resumed while fetching. */
static enum MHD_Result fetched(struct strata_front *front, struct request *rq)
{
	struct strata_headers headers = { 0 };
	enum MHD_Result ok;
	unsigned status;
	char *body = NULL;
	size_t len = 0;
	int rc;

	if (rq->job != NULL) {
		if (park(rq))
			return MHD_YES; /* not done yet */
		return complete(front, rq, rq->job->resp.status,
				&rq->job->resp.headers, rq->job->resp.body,
				rq->job->resp.body_len);
	}
	rc = strata_exchange_poll(rq->ex);
	if (rc == -EAGAIN)
		return MHD_YES;
	if (rc == STRATA_EXCHANGE_STREAM) {
		/* Too big to hold: stream it; waiters fetch on their own. */
		if (rq->flight != NULL)
			strata_flight_end(front->flights, &rq->flight,
					  STRATA_FLIGHT_RETRY, NULL, 0);
		rc = strata_exchange_respond(rq->ex, rq->cache_status,
					     &rq->status);
		rq->streaming = rc == 0;
		/* The head is in: the fetch counts from here (the body may
		 * stream for long). */
		fetch_ended(front, rq, rc == 0 ? rq->status : 0, rc);
		if (rc == 0)
			invalidate_after(front, rq, rq->status,
					 strata_exchange_headers(rq->ex));
	} else if (rc == STRATA_EXCHANGE_COMPLETE) {
		rc = strata_exchange_take(rq->ex, &status, &headers, &body,
					  &len);
		if (rc == 0) {
			ok = complete(front, rq, status, &headers, body, len);
			strata_headers_clear(&headers);
			free(body);
			return ok;
		}
	}
	if (rc != 0) {
		fetch_ended(front, rq, 0, rc);
		return upstream_failed(front, rq, rc);
	}
	rq->phase = PHASE_ANSWERED;
	return MHD_YES;
}

/* The connection was resumed while waiting on another request's flight. */
static enum MHD_Result joined(struct strata_front *front, struct request *rq,
			      const char *method, const char *version)
{
	if (park(rq))
		return MHD_YES; /* resumed without news: wait on */
	switch (rq->outcome) {
	case STRATA_FLIGHT_ENTRY:
		return answer_entry(rq, CACHE_STATUS_COLLAPSED);
	case STRATA_FLIGHT_RETRY:
		rq->cache_status = CACHE_STATUS_MISS;
		return fetch(front, rq, method, version, false);
	case STRATA_FLIGHT_ERROR:
	default:
		return upstream_failed(front, rq, rq->flight_error);
	}
}

/* ---- the phases ---------------------------------------------------------- */

/* ---- request framing (RFC 9112 sections 3.2, 6) -------------------------- */

struct framing {
	unsigned content_length;   /* field lines */
	unsigned transfer_encoding;
	unsigned host;
	const char *host_value;
	bool te_other;             /* a coding other than chunked */
	bool te_chunked_last;      /* the last coding is chunked */
	const char *bad_name;      /* the first field line that is not
				      "name: value", by its name (as
				      libmicrohttpd read it), or NULL */
};

/*
 * Whether a field line as libmicrohttpd gave it was "token: value".  It
 * does not check names, and 0.9.75 appends an obs-fold continuation line
 * (RFC 9112 section 5.2) to the *name*, copied into a block allocated
 * after the read buffer that holds every value: a folded name is then
 * either not a token or stored after its value, which a line never is.
 * Whitespace before the colon leaves it in the name.
 */
static bool field_line_valid(const char *name, const char *value)
{
	return strata_http_is_token(name) &&
	       (value == NULL || (uintptr_t)name < (uintptr_t)value);
}

static enum MHD_Result framing_cb(void *cls, enum MHD_ValueKind kind,
				  const char *name, const char *value)
{
	struct framing *f = cls;
	const char *p;

	(void)kind;
	if (name == NULL)
		return MHD_YES;
	if (strcasecmp(name, "Content-Length") == 0) {
		f->content_length++;
	} else if (strcasecmp(name, "Host") == 0) {
		f->host++;
		f->host_value = value;
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		f->transfer_encoding++;
		/* Each coding of this line, in order: the last one seen
		 * over every line must be chunked, and no other may be. */
		for (p = value != NULL ? value : ""; *p != '\0';) {
			size_t n;

			p += strspn(p, " \t,");
			n = strcspn(p, " \t,;");
			if (n == 0)
				break;
			f->te_chunked_last = n == 7 &&
					     strncasecmp(p, "chunked", 7) == 0;
			f->te_other = f->te_other || !f->te_chunked_last;
			p += n;
			p += strcspn(p, ",");
		}
	}
	return MHD_YES;
}

struct trace_scan {
	struct cond_scan *cond;   /* filled in the same pass */
	struct framing *framing;  /* and this */
	const char *traceparent;
	unsigned n_traceparent;
	char *tracestate;     /* joined with "," */
	bool failed;
};

static enum MHD_Result trace_cb(void *cls, enum MHD_ValueKind kind,
				const char *name, const char *value)
{
	struct trace_scan *t = cls;

	(void)kind;
	if (t->framing->bad_name == NULL && !field_line_valid(name, value))
		t->framing->bad_name = name;
	if (value == NULL)
		return MHD_YES;
	if (strcasecmp(name, "traceparent") == 0) {
		t->traceparent = value;
		t->n_traceparent++;
	} else if (strcasecmp(name, "tracestate") == 0) {
		if (join(&t->tracestate, value) != 0)
			t->failed = true;
	} else {
		framing_cb(t->framing, kind, name, value);
		cond_cb(t->cond, kind, name, value);
	}
	return MHD_YES;
}

/*
 * One pass over the request's headers, for every request: what its
 * framing says (framing_refused()), the
 * conditional and Range headers answer_entry() needs (rq->cond), and W3C
 * Trace Context: continue the caller's trace with Strata as a new
 * span, or start one (no traceparent, an invalid one, or two of them:
 * the spec's rule).  tracestate goes on only with a valid traceparent.
 * Every request gets a trace id, hits included, for the access log.
 */
static void read_trace(struct request *rq, struct MHD_Connection *conn,
		       struct framing *framing)
{
	struct trace_scan t = {.cond = &rq->cond, .framing = framing};
	struct strata_trace in;
	bool valid;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, trace_cb, &t);
	valid = t.n_traceparent == 1 &&
		strata_trace_parse(t.traceparent, &in) == 0;
	strata_trace_child(valid ? &in : NULL, &rq->trace);
	if (valid && !t.failed && t.tracestate != NULL &&
	    strata_trace_state_valid(t.tracestate, strlen(t.tracestate)))
		rq->tracestate = t.tracestate;
	else
		free(t.tracestate);
}

/*
 * Refuse a malformed field line, naming it: its name as read (up to 64
 * bytes, anything but printable ASCII shown as "?"), which for a folded
 * line ends with the continuation.
 */
static enum MHD_Result refuse_bad_line(struct MHD_Connection *conn,
				       struct request *rq, const char *name)
{
	char shown[65], msg[256];
	size_t n;

	for (n = 0; n < sizeof(shown) - 1 && name[n] != '\0'; n++)
		shown[n] = name[n] > ' ' && name[n] < 0x7f ? name[n] : '?';
	shown[n] = '\0';
	snprintf(msg, sizeof(msg),
		 "malformed header line \"%s\": a field name must be a "
		 "token, followed at once by \":\", on one line (no "
		 "whitespace before the colon, no obsolete line folding)\n",
		 shown);
	return refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST, msg);
}

/*
 * Refuse what a server in front of other servers must not guess at
 * (request smuggling): Content-Length with Transfer-Encoding, repeated
 * Content-Length, a Transfer-Encoding that does not end in chunked (400,
 * RFC 9112 section 6.3) or uses another coding (501), more than one Host
 * (400, section 3.2), from what read_trace()'s pass found in `f`.
 * False when the request may go on; else the answer is queued (*ok) and
 * the connection closes after it.
 */
static bool framing_refused(struct MHD_Connection *conn, struct request *rq,
			    const struct framing *f, enum MHD_Result *ok)
{
	if (f->bad_name != NULL)
		*ok = refuse_bad_line(conn, rq, f->bad_name);
	else if (f->transfer_encoding > 0 && f->content_length > 0)
		*ok = refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST,
				     "both Content-Length and "
				     "Transfer-Encoding\n");
	else if (f->content_length > 1)
		*ok = refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST,
				     "more than one Content-Length\n");
	else if (f->transfer_encoding > 0 && !f->te_chunked_last)
		*ok = refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST,
				     "Transfer-Encoding does not end in "
				     "chunked\n");
	else if (f->te_other)
		*ok = refuse_framing(conn, rq, MHD_HTTP_NOT_IMPLEMENTED,
				     "unsupported transfer coding\n");
	else if (f->host > 1)
		*ok = refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST,
				     "more than one Host\n");
	else if (f->host == 0 && strcmp(rq->protocol, "HTTP/1.0") != 0)
		*ok = refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST,
				     "an HTTP/1.1 request needs a Host\n");
	else
		return false;
	return true;
}

/*
 * An absolute-form target ("http://host/path", RFC 9112 section 3.2.2)
 * becomes origin-form when its authority is the Host header's (which a
 * server must then ignore, so a disagreement is refused: a cache keyed
 * on one and an application reading the other would disagree on what
 * was asked).  Returns 0 (rq->target is origin-form), or -EINVAL.
 */
static int origin_form(struct request *rq, const char *host)
{
	const char *t = rq->target, *auth, *end;
	char *path;

	if (t[0] == '/')
		return 0;
	if (strncasecmp(t, "http://", 7) == 0)
		auth = t + 7;
	else if (strncasecmp(t, "https://", 8) == 0)
		auth = t + 8;
	else
		return -EINVAL;
	end = auth + strcspn(auth, "/?#");
	if (end == auth || *end == '#' || host == NULL ||
	    strlen(host) != (size_t)(end - auth) ||
	    strncasecmp(host, auth, (size_t)(end - auth)) != 0 ||
	    memchr(auth, '@', (size_t)(end - auth)) != NULL)
		return -EINVAL;
	if (asprintf(&path, "%s%s", *end == '/' ? "" : "/", end) < 0)
		return -ENOMEM;
	free(rq->target);
	rq->target = path;
	return 0;
}

/* Headers are in: route, key and look up, check the declared body size. */
static enum MHD_Result begin(struct strata_front *front, struct request *rq,
			     struct MHD_Connection *conn, const char *method,
			     const char *version)
{
	const char *length;
	struct framing f = {0};
	enum MHD_Result ok;
	size_t path_len;

	strncpy(rq->method, method, sizeof(rq->method) - 1);
	snprintf(rq->protocol, sizeof(rq->protocol), "%s",
		 version != NULL ? version : "HTTP/1.1");
	rq->cond.cond.method = rq->method;
	read_trace(rq, conn, &f);
	rq->phase = PHASE_BODY;
	if (framing_refused(conn, rq, &f, &ok))
		return ok;
	/* libmicrohttpd takes everything between the method and the last
	 * space of the request line as the target. */
	if (!strata_http_target_clean(rq->target))
		return refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST,
				      "space or control character in the "
				      "request target\n");
	if (origin_form(rq, f.host_value) != 0)
		return refuse_framing(conn, rq, MHD_HTTP_BAD_REQUEST,
				      "request target must be a path, or a "
				      "URL of the Host it is sent to\n");
	/* The head is in; the body (if any) has client_timeout from about
	 * now (the request line's arrival: no clock read on the hit path). */
	strata_guard_arm(front->guard, rq->slot, rq->start_us / 1000);
	path_len = strcspn(rq->target, "?");
	rq->route = strata_route_match(rq->live->routes, rq->target, path_len);
	classify(front, rq, conn, method);
	length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					     "Content-Length");
	if (length != NULL &&
	    strtoull(length, NULL, 10) > front->cfg.max_request_body)
		return refuse_framing(conn, rq, MHD_HTTP_CONTENT_TOO_LARGE,
				      "request body too large\n");
	return MHD_YES;
}

static enum MHD_Result collect(struct strata_front *front, struct request *rq,
			       struct MHD_Connection *conn, const char *data,
			       size_t *len)
{
	size_t n = *len;

	*len = 0;
	if (rq->body_len + n > front->cfg.max_request_body)
		return refuse_framing(conn, rq, MHD_HTTP_CONTENT_TOO_LARGE,
				      "request body too large\n");
	if (rq->body_len + n > rq->body_cap) {
		size_t cap = rq->body_cap ? rq->body_cap : 16384;
		char *body;

		while (cap < rq->body_len + n)
			cap *= 2;
		body = realloc(rq->body, cap);
		if (body == NULL)
			return answer(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE,
				      "out of memory\n");
		rq->body = body;
		rq->body_cap = cap;
	}
	memcpy(rq->body + rq->body_len, data, n);
	rq->body_len += n;
	return MHD_YES;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **req_cls)
{
	struct strata_front *front = cls;
	struct request *rq = *req_cls;

	(void)url;
	if (rq == NULL || rq->magic != REQUEST_MAGIC)
		return MHD_NO;
	switch (rq->phase) {
	case PHASE_NEW:
		return begin(front, rq, conn, method, version);
	case PHASE_BODY:
		if (*upload_data_size > 0)
			return collect(front, rq, conn, upload_data,
				       upload_data_size);
		/* The whole request is in: Strata's turn, no deadline. */
		strata_guard_disarm(rq->slot);
		return dispatch(front, rq, method, version);
	case PHASE_SHARED:
		return filled(front, rq, method, version);
	case PHASE_FETCH:
		return fetched(front, rq);
	case PHASE_JOINED:
		return joined(front, rq, method, version);
	case PHASE_ANSWERED:
		*upload_data_size = 0; /* discard the rest of a refused body */
		return MHD_YES;
	}
	return MHD_NO;
}

/* ---- request lifecycle ---------------------------------------------------- */

/* The first callback of a request: allocate its state. */
static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct strata_front *front = cls;
	struct request *rq = malloc(sizeof(*rq));

	if (rq == NULL)
		return NULL;
	memset(rq, 0, REQUEST_ZEROED);
	rq->client[0] = '\0';
	rq->protocol[0] = '\0';
	rq->target = strdup(uri);
	if (rq->target == NULL) {
		free(rq);
		return NULL;
	}
	rq->magic = REQUEST_MAGIC;
	rq->front = front;
	rq->conn = conn;
	{
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

		rq->slot = ci != NULL ? ci->socket_context : NULL;
	}
	rq->live = strata_live_acquire(front->live);
	pthread_mutex_init(&rq->park_lock, NULL);
	rq->start_us = strata_now_us();
	rq->cache_status = CACHE_STATUS_BYPASS;
	/* Relaxed: a counter; drain polls it and tolerates lag. */
	atomic_fetch_add_explicit(&front->inflight, 1, memory_order_relaxed);
	return rq;
}

/* What the cache did, for the metrics' `cache` label. */
static enum strata_cache_result cache_result(const struct request *rq)
{
	const char *cs = rq->cache_status;

	if (strncmp(cs, "strata; hit", 11) == 0)
		return strstr(cs, "fwd=stale") != NULL ? STRATA_CACHE_STALE
						       : STRATA_CACHE_HIT;
	if (rq->status >= 500 && rq->entry == NULL)
		return STRATA_CACHE_ERROR;
	if (strstr(cs, "collapsed") != NULL)
		return STRATA_CACHE_COLLAPSED;
	if (strstr(cs, "stale-if-error") != NULL)
		return STRATA_CACHE_STALE;
	/* Forwarded to the origin for this request: a miss, a revalidation
	 * (fwd=stale; fwd-status=304), a client's no-cache (fwd=request), a
	 * variant not yet stored (fwd=vary-miss). */
	if (strncmp(cs, "strata; fwd=miss", 16) == 0 ||
	    strncmp(cs, "strata; fwd=stale", 17) == 0 ||
	    strncmp(cs, "strata; fwd=request", 19) == 0 ||
	    strncmp(cs, "strata; fwd=vary-miss", 21) == 0)
		return STRATA_CACHE_MISS;
	return STRATA_CACHE_BYPASS;
}

/* The last callback of a request: log it and free everything it held. */
static void completed_cb(void *cls, struct MHD_Connection *conn,
			 void **req_cls, enum MHD_RequestTerminationCode toe)
{
	struct strata_front *front = cls;
	struct request *rq = *req_cls;
	struct strata_access line;
	uint64_t now_us;

	(void)conn;
	(void)toe;
	if (rq == NULL || rq->magic != REQUEST_MAGIC)
		return;
	*req_cls = NULL;
	if (rq->flight != NULL) /* never left leading; defensive */
		strata_flight_end(front->flights, &rq->flight,
				  STRATA_FLIGHT_ERROR, NULL, STRATA_ECANCELED);
	/* Led a fleet fill that stored nothing (not storable, an error, a
	 * client gone): let the other instances fetch now rather than after
	 * lock_ttl.  A dropped unlock only means they wait that long. */
	if (rq->fleet_lock)
		strata_redis_async_unlock(front->shared, &rq->lock_key);
	if (rq->ex != NULL) {
		if (rq->streaming)
			rq->bytes = strata_exchange_bytes(rq->ex);
		strata_exchange_abandon(&rq->ex);
	}
	fetch_ended(front, rq, 0, STRATA_ECANCELED); /* a client gone */
	/* One clock read for the metrics, the access line and the next
	 * request's deadline. */
	now_us = strata_now_us();
	if (front->metrics != NULL && rq->method[0] != '\0')
		strata_metrics_request(front->metrics, route_index(rq),
				       strata_method_bit(rq->method),
				       cache_result(rq), now_us - rq->start_us);
	line = (struct strata_access){
		.client = strata_log_access_enabled() ? client_of(rq) : NULL,
		.method = rq->method[0] ? rq->method : NULL,
		.target = rq->target,
		.status = rq->status,
		.bytes = rq->bytes,
		.duration_us = now_us - rq->start_us,
		.cache_status = rq->cache_status,
		.protocol = rq->protocol[0] ? rq->protocol : NULL,
		.tier = rq->tier,
		.has_upstream = rq->has_upstream,
		.upstream_us = rq->upstream_us,
		.trace_id = rq->trace.valid ? rq->trace.trace_id : NULL,
	};
	if (strata_log_access_enabled()) {
		line.referer = MHD_lookup_connection_value(
			rq->conn, MHD_HEADER_KIND, "Referer");
		line.user_agent = MHD_lookup_connection_value(
			rq->conn, MHD_HEADER_KIND, "User-Agent");
	}
	strata_log_access(&line);
	/* The next request's head has client_timeout from now. */
	strata_guard_arm(front->guard, rq->slot, now_us / 1000);
	strata_live_release(&rq->live);
	rq->magic = 0;
	strata_entry_release(&rq->entry);
	strata_entry_release(&rq->stale);
	if (rq->job != NULL) {
		strata_handler_job_clear(rq->job);
		free(rq->job);
	}
	if (rq->key_text != rq->key_inline)
		free(rq->key_text);
	free(rq->tracestate);
	free(rq->primary_text);
	free(rq->variant_names);
	pthread_mutex_destroy(&rq->park_lock);
	free(rq->body);
	free(rq->target);
	free(rq);
	atomic_fetch_sub_explicit(&front->inflight, 1, memory_order_relaxed);
}

/* A connection's start and end: its receive deadline (guard.h). */
static void connection_cb(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct strata_front *front = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		*socket_context = ci != NULL ? strata_guard_add(front->guard,
							       ci->connect_fd)
					     : NULL;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		strata_guard_remove(front->guard, *socket_context);
		*socket_context = NULL;
	}
}

static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	strata_log(STRATA_LOG_WARN, "http: %s", msg);
}

/* ---- lifecycle ------------------------------------------------------------ */

/* Resolve "host:port" or "[v6]:port" into a socket address. */
static int resolve_listen(const char *listen, struct sockaddr_storage *ss,
			  socklen_t *ss_len)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hlen;
	struct addrinfo hints = { 0 }, *res = NULL;
	int rc;

	if (colon == NULL)
		return -EINVAL;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']') {
		h = listen + 1;
		hlen -= 2;
	}
	if (hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res);
	if (rc != 0)
		return -EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*ss_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int strata_front_new(const struct strata_front_config *cfg,
		     const struct strata_front_deps *deps,
		     struct strata_front **out)
{
	struct strata_front *front = calloc(1, sizeof(*front));

	if (front == NULL)
		return -ENOMEM;
	front->magic = FRONT_MAGIC;
	front->listen_fd = -1;
	{
		/* A secret per process: only this server's own refreshes
		 * may skip the tiers this way. */
		char id[17];

		strata_trace_new_span_id(id);
		snprintf(front->refresh_token, sizeof(front->refresh_token),
			 "%s", id);
		strata_trace_new_span_id(id);
		strncat(front->refresh_token, id,
			sizeof(front->refresh_token) -
				strlen(front->refresh_token) - 1);
	}
	front->cfg = *cfg;
	front->listen = strdup(cfg->listen);
	if (front->listen == NULL) {
		free(front);
		return -ENOMEM;
	}
	front->cfg.listen = front->listen;
	if (cfg->tags_header != NULL && cfg->tags_header[0] != '\0') {
		front->tags_header = strdup(cfg->tags_header);
		if (front->tags_header == NULL) {
			free(front->listen);
			free(front);
			return -ENOMEM;
		}
	}
	front->cfg.tags_header = front->tags_header;
	front->live = deps->live;
	front->up = deps->up;
	front->mem = deps->mem;
	front->disk = deps->disk;
	front->shared = deps->shared;
	front->fleet = deps->fleet;
	front->flights = deps->flights;
	front->handler_pool = deps->handler_pool;
	front->metrics = deps->metrics;
	front->upstream_down = deps->upstream_down;
	front->invalidate = deps->invalidate;
	front->invalidate_ctx = deps->invalidate_ctx;
	*out = front;
	return 0;
}

/*
 * Stopping to accept.  Strata opens the listening socket itself and hands
 * it to libmicrohttpd (MHD_OPTION_LISTEN_SOCKET), whose workers accept on
 * it.  libmicrohttpd 0.9.75's own way to stop accepting,
 * MHD_quiesce_daemon(), races its epoll workers and can abort the process
 * ("Failed to remove listen FD from epoll set"), and handing connections
 * over with MHD_add_connection() from a thread of ours instead cost about
 * 1 us per request on keep-alive connections.  So quiescing swaps the
 * descriptor: dup2() puts an eventfd (never readable) in place of the
 * socket.  Closing the socket's last descriptor closes it, which refuses
 * new connections at once and removes it from every worker's epoll set;
 * the workers keep the descriptor number, which now reads as an idle
 * eventfd, and libmicrohttpd closes it at MHD_stop_daemon().
 */
int strata_front_bind(const char *listen_addr, int backlog, int *fd_out,
		      unsigned *port)
{
	struct sockaddr_storage ss;
	socklen_t ss_len;
	int one = 1, fd, rc = resolve_listen(listen_addr, &ss, &ss_len);

	if (rc != 0) {
		strata_log_error("listen %s: not a host:port address",
				 listen_addr);
		return rc;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, ss_len) != 0 ||
	    listen(fd, backlog) != 0) {
		rc = -errno;
		strata_log_error("listen %s: %s", listen_addr, strerror(-rc));
		close(fd);
		return rc;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) == 0)
		*port = ntohs(ss.ss_family == AF_INET6
				      ? ((struct sockaddr_in6 *)&ss)->sin6_port
				      : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
}

static int open_listener(struct strata_front *front)
{
	return strata_front_bind(front->listen, 1024, &front->listen_fd,
				 &front->port);
}

/* The loopback client for background refreshes (see struct
 * strata_front).  Without it, stale-while-revalidate falls back to a
 * plain miss. */
static void start_self_client(struct strata_front *front)
{
	struct strata_upstream_config cfg = {
		.connect_timeout_ms = 2000,
		.timeout_ms = 600000,
		.max_connections = 16,
	};
	char url[96];
	const char *colon = strrchr(front->listen, ':');
	bool v6 = front->listen[0] == '[';
	bool any = colon == front->listen ||
		   strncmp(front->listen, "0.0.0.0:", 8) == 0 ||
		   strncmp(front->listen, "[::]:", 5) == 0;

	if (any || colon == NULL)
		snprintf(url, sizeof(url), "http://127.0.0.1:%u", front->port);
	else if (v6)
		snprintf(url, sizeof(url), "http://%.*s:%u",
			 (int)(colon - front->listen), front->listen,
			 front->port);
	else
		snprintf(url, sizeof(url), "http://%.*s:%u",
			 (int)(colon - front->listen), front->listen,
			 front->port);
	cfg.url = url;
	if (strata_upstream_new(&cfg, &front->self) != 0 ||
	    strata_upstream_start(front->self) != 0) {
		strata_log_warn("listen %s: no background refresh client: "
				"stale-while-revalidate serves misses",
				front->listen);
		strata_upstream_free(&front->self);
	}
}

int strata_front_start(struct strata_front *front)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 MHD_USE_ITC;
	int rc = open_listener(front);

	if (rc != 0)
		return rc;
	/* Before the workers start: they read front->self unlocked. */
	start_self_client(front);
	if (strata_guard_start(front->cfg.client_timeout_ms, &front->guard) !=
	    0) {
		strata_log_error("listen %s: cannot start the client deadline "
				 "thread",
				 front->listen);
		return -EIO;
	}
	front->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, access_cb, front,
		/* First, so that even option errors reach our log. */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, NULL,
		MHD_OPTION_LISTEN_SOCKET, front->listen_fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)front->cfg.workers,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)front->cfg.max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)((front->cfg.client_timeout_ms + 999) / 1000),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)front->cfg.max_header_size,
		MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, front,
		MHD_OPTION_NOTIFY_COMPLETED, completed_cb, front,
		MHD_OPTION_NOTIFY_CONNECTION, connection_cb, front,
		/* A cache in front of other servers is where request
		 * smuggling starts, and Strata refuses what is ambiguous
		 * itself, with a 400 (begin()).  In libmicrohttpd 0.9.75
		 * level 1 only adds two checks, both answered by closing
		 * the connection without a word: a space in the target
		 * and a missing Host, which begin() refuses instead. */
		MHD_OPTION_STRICT_FOR_CLIENT, 0,
		MHD_OPTION_END);
	if (front->daemon == NULL) {
		strata_log_error("listen %s: cannot start the HTTP workers",
				 front->listen);
		return -EIO;
	}
	front->accepting = true; /* the socket is libmicrohttpd's now */
	return 0;
}

unsigned strata_front_port(const struct strata_front *front)
{
	return front->port;
}

void strata_front_quiesce(struct strata_front *front)
{
	int idle;

	if (!front->accepting)
		return;
	idle = eventfd(0, EFD_CLOEXEC);
	if (idle < 0 || dup2(idle, front->listen_fd) < 0) {
		/* No way to swap: leave the socket open; the daemon's stop
		 * will close it with everything else. */
		strata_log_warn("listen %s: cannot stop accepting early: %s",
				front->listen, strerror(errno));
	}
	if (idle >= 0)
		close(idle);
	front->accepting = false;
}

unsigned strata_front_inflight(const struct strata_front *front)
{
	return atomic_load_explicit(&front->inflight, memory_order_relaxed);
}

void strata_front_free(struct strata_front **frontp)
{
	struct strata_front *front;

	if (frontp == NULL || *frontp == NULL)
		return;
	front = *frontp;
	STRATA_ASSERT(front->magic == FRONT_MAGIC);
	/* Refreshes in flight are requests to our own daemon: cancel them
	 * first (their connections then close); the client itself goes
	 * after the workers, which read front->self without a lock. */
	if (front->self != NULL)
		strata_upstream_cancel_all(front->self);
	if (front->daemon != NULL)
		MHD_stop_daemon(front->daemon); /* closes listen_fd */
	else if (front->listen_fd >= 0)
		close(front->listen_fd);
	strata_upstream_free(&front->self);
	/* After the daemon: every connection has been reported closed. */
	strata_guard_stop(&front->guard);
	free(front->listen);
	free(front->tags_header);
	front->magic = 0;
	free(front);
	*frontp = NULL;
}
