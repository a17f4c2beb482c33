/*
 * front.c: the libmicrohttpd listener and the life of a client request;
 * see front.h.
 *
 * A request goes through these phases, one access-handler call or more
 * each:
 *   NEW      headers parsed: route it, check the declared body size;
 *   BODY     collect upload data (bounded by max_request_body);
 *   WAIT     forwarded: the connection is suspended inside an exchange and
 *            the handler runs again when the upstream has answered;
 *   ANSWERED a response is queued; nothing more to do.
 * The per-request `struct request` is created in the URI-log callback (the
 * first thing libmicrohttpd tells us about a request) and freed in the
 * completion callback.
 */
#include "config.h"

#include "front/front.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/http.h"
#include "core/log.h"
#include "core/route.h"
#include "front/exchange.h"
#include "strata/strata.h"

#define FRONT_MAGIC 0x46524e54u   /* "FRNT" */
#define REQUEST_MAGIC 0x52455153u /* "REQS" */

/* Cache-Status values (RFC 9211) for the decisions this milestone makes. */
#define CACHE_STATUS_BYPASS "strata; fwd=bypass"
#define CACHE_STATUS_MISS "strata; fwd=uri-miss"

struct strata_front {
	uint32_t magic;
	struct strata_front_config cfg;
	char *listen;
	struct strata_route_table *routes;
	struct strata_upstream *up;
	struct MHD_Daemon *daemon;
	unsigned port;
	atomic_uint inflight;
};

enum phase { PHASE_NEW, PHASE_BODY, PHASE_WAIT, PHASE_ANSWERED };

struct request {
	uint32_t magic;
	struct strata_front *front;
	enum phase phase;
	char *target;              /* raw request target, as received */
	char method[16];           /* for the access log */
	char client[INET6_ADDRSTRLEN];
	uint64_t start_us;
	const char *cache_status;
	char *body;
	size_t body_len;
	size_t body_cap;
	unsigned status;           /* 0 until a response is queued */
	uint64_t bytes;            /* body bytes of error responses */
	struct strata_exchange *ex;
};

/* ---- responses made by Strata itself ------------------------------------ */

/* Queue a short text/plain answer.  `reason` must be a static string. */
static enum MHD_Result answer(struct MHD_Connection *conn, struct request *rq,
			      unsigned status, const char *reason)
{
	struct MHD_Response *resp;
	enum MHD_Result ok;

	resp = MHD_create_response_from_buffer(strlen(reason), (void *)reason,
					       MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type",
				"text/plain; charset=utf-8");
	MHD_add_response_header(resp, "Cache-Status", rq->cache_status);
	ok = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	rq->phase = PHASE_ANSWERED;
	rq->status = status;
	rq->bytes = strlen(reason);
	return ok;
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

/* ---- building the upstream request -------------------------------------- */

struct header_scan {
	struct strata_headers *out;
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
		"X-Forwarded-Host",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

static enum MHD_Result scan_header_cb(void *cls, enum MHD_ValueKind kind,
				      const char *name, const char *value)
{
	struct header_scan *scan = cls;

	(void)kind;
	if (value == NULL || scan->rc != 0)
		return MHD_YES;
	if (strcasecmp(name, "X-Forwarded-For") == 0)
		scan->rc = join(&scan->xff, value);
	else if (strcasecmp(name, "Via") == 0)
		scan->rc = join(&scan->via, value);
	else if (!strata_http_is_hop_by_hop(name, scan->connection) &&
		 !replaced_header(name))
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

static int forwarded_headers(struct strata_front *front, struct request *rq,
			     struct MHD_Connection *conn, const char *version,
			     struct strata_headers *out)
{
	struct header_scan scan = { .out = out };
	const char *host =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	char via[64];
	int rc;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_connection_cb,
				  &scan);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header_cb,
				  &scan);
	rc = scan.rc;
	if (rc == 0 && host != NULL && front->cfg.preserve_host)
		rc = strata_headers_add(out, "Host", host);
	if (rc == 0)
		rc = join(&scan.xff, rq->client);
	if (rc == 0)
		rc = strata_headers_add(out, "X-Forwarded-For", scan.xff);
	if (rc == 0)
		rc = strata_headers_add(out, "X-Forwarded-Proto", "http");
	if (rc == 0 && host != NULL)
		rc = strata_headers_add(out, "X-Forwarded-Host", host);
	snprintf(via, sizeof(via), "%s strata", via_version(version));
	if (rc == 0)
		rc = join(&scan.via, via);
	if (rc == 0)
		rc = strata_headers_add(out, "Via", scan.via);
	free(scan.connection);
	free(scan.xff);
	free(scan.via);
	return rc;
}

static enum MHD_Result forward(struct strata_front *front, struct request *rq,
			       struct MHD_Connection *conn, const char *method,
			       const char *version)
{
	struct strata_exchange_request req = { 0 };
	struct strata_exchange_params params = {
		.conn = conn,
		.buffer_limit = front->cfg.stream_buffer,
		.via = "1.1 strata",
	};
	int rc;

	req.method = strdup(method);
	req.target = strdup(rq->target);
	rc = (req.method == NULL || req.target == NULL) ? -ENOMEM : 0;
	if (rc == 0)
		rc = forwarded_headers(front, rq, conn, version, &req.headers);
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
		return answer_upstream_error(conn, rq, rc);
	}
	rq->phase = PHASE_WAIT;
	return MHD_YES;
}

/* ---- the phases ---------------------------------------------------------- */

/* Headers are in: pick the route and check the declared body size. */
static enum MHD_Result begin(struct strata_front *front, struct request *rq,
			     struct MHD_Connection *conn, const char *method)
{
	const struct strata_route *route;
	const char *length;
	size_t path_len = strcspn(rq->target, "?");

	snprintf(rq->method, sizeof(rq->method), "%s", method);
	route = strata_route_match(front->routes, rq->target, path_len);
	rq->cache_status = strata_route_caches(route, strata_method_bit(method))
				   ? CACHE_STATUS_MISS
				   : CACHE_STATUS_BYPASS;
	rq->phase = PHASE_BODY;
	if (rq->target[0] != '/')
		return answer(conn, rq, MHD_HTTP_BAD_REQUEST,
			      "request target must be a path\n");
	length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					     "Content-Length");
	if (length != NULL &&
	    strtoull(length, NULL, 10) > front->cfg.max_request_body)
		return answer(conn, rq, MHD_HTTP_CONTENT_TOO_LARGE,
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
		return answer(conn, rq, MHD_HTTP_CONTENT_TOO_LARGE,
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

static enum MHD_Result resumed(struct request *rq, struct MHD_Connection *conn)
{
	int rc = strata_exchange_respond(rq->ex, rq->cache_status, &rq->status);

	if (rc == -EAGAIN)
		return MHD_YES;
	if (rc != 0)
		return answer_upstream_error(conn, rq, rc);
	rq->phase = PHASE_ANSWERED;
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
		return begin(front, rq, conn, method);
	case PHASE_BODY:
		if (*upload_data_size > 0)
			return collect(front, rq, conn, upload_data,
				       upload_data_size);
		return forward(front, rq, conn, method, version);
	case PHASE_WAIT:
		return resumed(rq, conn);
	case PHASE_ANSWERED:
		*upload_data_size = 0; /* discard the rest of a refused body */
		return MHD_YES;
	}
	return MHD_NO;
}

/* ---- request lifecycle ---------------------------------------------------- */

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

/* The first callback of a request: allocate its state. */
static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct strata_front *front = cls;
	struct request *rq = calloc(1, sizeof(*rq));

	if (rq == NULL)
		return NULL;
	rq->target = strdup(uri);
	if (rq->target == NULL) {
		free(rq);
		return NULL;
	}
	rq->magic = REQUEST_MAGIC;
	rq->front = front;
	rq->start_us = strata_now_us();
	rq->cache_status = CACHE_STATUS_BYPASS;
	client_address(conn, rq->client, sizeof(rq->client));
	/* Relaxed: a counter; drain polls it and tolerates lag. */
	atomic_fetch_add_explicit(&front->inflight, 1, memory_order_relaxed);
	return rq;
}

/* The last callback of a request: log it and free everything it held. */
static void completed_cb(void *cls, struct MHD_Connection *conn,
			 void **req_cls, enum MHD_RequestTerminationCode toe)
{
	struct strata_front *front = cls;
	struct request *rq = *req_cls;
	struct strata_access line;

	(void)conn;
	(void)toe;
	if (rq == NULL || rq->magic != REQUEST_MAGIC)
		return;
	*req_cls = NULL;
	if (rq->ex != NULL) {
		rq->bytes = strata_exchange_bytes(rq->ex);
		strata_exchange_abandon(&rq->ex);
	}
	line = (struct strata_access){
		.client = rq->client,
		.method = rq->method[0] ? rq->method : NULL,
		.target = rq->target,
		.status = rq->status,
		.bytes = rq->bytes,
		.duration_us = strata_now_us() - rq->start_us,
		.cache_status = rq->cache_status,
	};
	strata_log_access(&line);
	rq->magic = 0;
	free(rq->body);
	free(rq->target);
	free(rq);
	atomic_fetch_sub_explicit(&front->inflight, 1, memory_order_relaxed);
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
		     struct strata_route_table *routes,
		     struct strata_upstream *up, struct strata_front **out)
{
	struct strata_front *front = calloc(1, sizeof(*front));

	if (front == NULL)
		return -ENOMEM;
	front->magic = FRONT_MAGIC;
	front->cfg = *cfg;
	front->listen = strdup(cfg->listen);
	if (front->listen == NULL) {
		free(front);
		return -ENOMEM;
	}
	front->cfg.listen = front->listen;
	front->routes = strata_route_table_ref(routes);
	front->up = up;
	*out = front;
	return 0;
}

int strata_front_start(struct strata_front *front)
{
	struct sockaddr_storage ss;
	socklen_t ss_len;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	int rc = resolve_listen(front->listen, &ss, &ss_len);

	if (rc != 0) {
		strata_log_error("listen %s: not a host:port address",
				 front->listen);
		return rc;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	front->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, access_cb, front,
		/* First, so that even option errors reach our log. */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, NULL,
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)front->cfg.workers,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)front->cfg.max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)((front->cfg.client_timeout_ms + 999) / 1000),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)front->cfg.max_header_size,
		MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, front,
		MHD_OPTION_NOTIFY_COMPLETED, completed_cb, front,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_END);
	if (front->daemon == NULL) {
		strata_log_error("listen %s: cannot start the listener "
				 "(address in use or not available?)",
				 front->listen);
		return -EADDRNOTAVAIL;
	}
	info = MHD_get_daemon_info(front->daemon, MHD_DAEMON_INFO_BIND_PORT);
	front->port = info != NULL ? info->port : 0;
	return 0;
}

unsigned strata_front_port(const struct strata_front *front)
{
	return front->port;
}

void strata_front_quiesce(struct strata_front *front)
{
	MHD_socket fd;

	if (front->daemon == NULL)
		return;
	fd = MHD_quiesce_daemon(front->daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
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
	if (front->daemon != NULL)
		MHD_stop_daemon(front->daemon);
	strata_route_table_release(&front->routes);
	free(front->listen);
	front->magic = 0;
	free(front);
	*frontp = NULL;
}
