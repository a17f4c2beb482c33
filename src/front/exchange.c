/*
 * exchange.c: one proxied request; see exchange.h for the design and the
 * concurrency rules.  Every field below `lock` is guarded by it.
 */
#include "config.h"

#include "front/exchange.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "front/reply.h"
#include "strata/strata.h"
#include "upstream/upstream.h"

#define EXCHANGE_MAGIC 0x45584348u /* "EXCH" */

/* libmicrohttpd asks the content reader for at most this much at once. */
#define READER_BLOCK (64u * 1024u)

/* One piece of body, as the upstream delivered it. */
struct chunk {
	struct chunk *next;
	size_t len;
	size_t off;          /* bytes already handed to the client */
	char data[];
};

struct strata_exchange {
	uint32_t magic;
	atomic_uint refcnt;
	struct strata_exchange_request req; /* must outlive the transfer */
	size_t buffer_limit;
	size_t collect_limit;

	pthread_mutex_t lock;
	struct MHD_Connection *conn;   /* NULL once abandoned */
	struct strata_upstream_xfer *xfer; /* NULL once done */
	bool suspended;                /* conn is suspended by us */
	bool head_ready;
	bool collecting;               /* holding the body back, see params */
	bool done;
	bool upstream_paused;
	int result;                    /* transfer result once done */
	unsigned status;
	struct strata_headers resp_headers;
	struct chunk *head, *tail;
	size_t buffered;
	uint64_t bytes_out;
};

static void exchange_free(struct strata_exchange *ex)
{
	struct chunk *c = ex->head, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	strata_headers_clear(&ex->resp_headers);
	strata_headers_clear(&ex->req.headers);
	free(ex->req.method);
	free(ex->req.target);
	free(ex->req.body);
	pthread_mutex_destroy(&ex->lock);
	ex->magic = 0;
	free(ex);
}

static void exchange_ref(struct strata_exchange *ex)
{
	/* Relaxed: the caller holds a reference already. */
	atomic_fetch_add_explicit(&ex->refcnt, 1, memory_order_relaxed);
}

static void exchange_unref(struct strata_exchange *ex)
{
	/* Acq_rel: every holder's writes happen-before the free. */
	if (atomic_fetch_sub_explicit(&ex->refcnt, 1, memory_order_acq_rel) ==
	    1)
		exchange_free(ex);
}

/* Wake the client connection if we parked it.  Caller holds ex->lock. */
static void wake_locked(struct strata_exchange *ex)
{
	if (ex->suspended && ex->conn != NULL) {
		ex->suspended = false;
		MHD_resume_connection(ex->conn);
	}
}

/* Park the client connection until wake_locked().  Caller holds lock and
 * runs inside an access handler or content reader of that connection. */
static void park_locked(struct strata_exchange *ex)
{
	STRATA_ASSERT(!ex->suspended);
	ex->suspended = true;
	MHD_suspend_connection(ex->conn);
}

static uint64_t response_size(const struct strata_headers *h);

/* ---- upstream callbacks (upstream thread) ------------------------------- */

static void on_headers(void *arg, unsigned status,
		       struct strata_headers *headers)
{
	struct strata_exchange *ex = arg;

	pthread_mutex_lock(&ex->lock);
	ex->status = status;
	ex->resp_headers = *headers;
	memset(headers, 0, sizeof(*headers));
	ex->head_ready = true;
	if (ex->collecting &&
	    response_size(&ex->resp_headers) != MHD_SIZE_UNKNOWN &&
	    response_size(&ex->resp_headers) > ex->collect_limit)
		ex->collecting = false; /* announced too big: stream it */
	if (!ex->collecting)
		wake_locked(ex);
	pthread_mutex_unlock(&ex->lock);
}

static int on_body(void *arg, const char *data, size_t len)
{
	struct strata_exchange *ex = arg;
	struct chunk *c;
	int rc = 0;

	pthread_mutex_lock(&ex->lock);
	if (ex->conn == NULL)
		goto out; /* client gone: drop bytes, cancel is on its way */
	if (!ex->collecting && ex->buffered >= ex->buffer_limit) {
		ex->upstream_paused = true;
		rc = STRATA_UPSTREAM_PAUSE;
		goto out;
	}
	c = malloc(sizeof(*c) + len);
	if (c == NULL) {
		/* Treat like a full buffer: retry once the reader drains, or
		 * fail by timeout if memory never comes back. */
		ex->upstream_paused = true;
		rc = STRATA_UPSTREAM_PAUSE;
		goto out;
	}
	c->next = NULL;
	c->len = len;
	c->off = 0;
	memcpy(c->data, data, len);
	if (ex->tail != NULL)
		ex->tail->next = c;
	else
		ex->head = c;
	ex->tail = c;
	ex->buffered += len;
	if (ex->collecting && ex->buffered > ex->collect_limit)
		ex->collecting = false; /* grew too big: stream from here */
	/* Parked now: a reader waiting for bytes, or a poll that must learn
	 * that collecting stopped; a collecting exchange waits for done. */
	if (!ex->collecting)
		wake_locked(ex);
out:
	pthread_mutex_unlock(&ex->lock);
	return rc;
}

static void on_done(void *arg, int result)
{
	struct strata_exchange *ex = arg;

	pthread_mutex_lock(&ex->lock);
	ex->done = true;
	ex->result = result;
	/* The upstream thread still holds its own reference during this
	 * callback, so dropping ours cannot free the transfer here. */
	strata_upstream_xfer_release(&ex->xfer);
	wake_locked(ex);
	pthread_mutex_unlock(&ex->lock);
	exchange_unref(ex); /* the transfer's reference */
}

static const struct strata_upstream_handler exchange_handler = {
	.headers_cb = on_headers,
	.body_cb = on_body,
	.done_cb = on_done,
};

/* ---- client side (libmicrohttpd worker) --------------------------------- */

int strata_exchange_start(struct strata_upstream *up,
			  const struct strata_exchange_params *params,
			  struct strata_exchange_request *req,
			  struct strata_exchange **out)
{
	struct strata_exchange *ex;
	struct strata_upstream_request ureq;
	int rc;

	ex = calloc(1, sizeof(*ex));
	if (ex == NULL)
		return -ENOMEM;
	ex->magic = EXCHANGE_MAGIC;
	/* The front end's reference and the transfer's. */
	atomic_init(&ex->refcnt, 2);
	ex->conn = params->conn;
	ex->buffer_limit = params->buffer_limit;
	ex->collect_limit = params->collect_limit;
	ex->collecting = params->collect_limit > 0;
	pthread_mutex_init(&ex->lock, NULL);
	ureq = (struct strata_upstream_request){
		.method = req->method,
		.target = req->target,
		.headers = &req->headers,
		.body = req->body,
		.body_len = req->body_len,
	};
	/* Submit and park under the lock: the head cannot be delivered (and
	 * the connection resumed) before the connection is suspended. */
	pthread_mutex_lock(&ex->lock);
	rc = strata_upstream_submit(up, &ureq, &exchange_handler, ex,
				    &ex->xfer);
	if (rc == 0) {
		ex->req = *req;
		memset(req, 0, sizeof(*req));
		park_locked(ex);
	}
	pthread_mutex_unlock(&ex->lock);
	if (rc != 0) {
		pthread_mutex_destroy(&ex->lock);
		free(ex);
		return rc;
	}
	*out = ex;
	return 0;
}

/* Copy buffered body bytes into libmicrohttpd's buffer. */
static size_t drain_locked(struct strata_exchange *ex, char *buf, size_t max)
{
	size_t n = 0;

	while (n < max && ex->head != NULL) {
		struct chunk *c = ex->head;
		size_t take = c->len - c->off;

		if (take > max - n)
			take = max - n;
		memcpy(buf + n, c->data + c->off, take);
		c->off += take;
		n += take;
		if (c->off == c->len) {
			ex->head = c->next;
			if (ex->head == NULL)
				ex->tail = NULL;
			free(c);
		}
	}
	ex->buffered -= n;
	ex->bytes_out += n;
	return n;
}

static ssize_t reader_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct strata_exchange *ex = cls;
	ssize_t rc;
	size_t n;

	(void)pos;
	pthread_mutex_lock(&ex->lock);
	n = drain_locked(ex, buf, max);
	if (n > 0) {
		/* Resume the upstream at half the limit, not at the first
		 * free byte, so pause/resume does not ping-pong per read. */
		if (ex->upstream_paused && ex->xfer != NULL &&
		    ex->buffered <= ex->buffer_limit / 2) {
			ex->upstream_paused = false;
			strata_upstream_xfer_resume(ex->xfer);
		}
		rc = (ssize_t)n;
	} else if (ex->done) {
		rc = ex->result == 0 ? MHD_CONTENT_READER_END_OF_STREAM
				     : MHD_CONTENT_READER_END_WITH_ERROR;
	} else {
		park_locked(ex);
		rc = 0;
	}
	pthread_mutex_unlock(&ex->lock);
	return rc;
}

static void reader_free_cb(void *cls)
{
	exchange_unref(cls); /* the response's reference */
}

/* Response size: Content-Length when the upstream gave a valid one. */
static uint64_t response_size(const struct strata_headers *h)
{
	const char *cl = strata_headers_get(h, "Content-Length");
	char *end;
	unsigned long long n;

	if (cl == NULL || *cl < '0' || *cl > '9')
		return MHD_SIZE_UNKNOWN;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (errno != 0 || *end != '\0')
		return MHD_SIZE_UNKNOWN;
	return n;
}

int strata_exchange_poll(struct strata_exchange *ex)
{
	int rc;

	STRATA_ASSERT(ex->magic == EXCHANGE_MAGIC);
	pthread_mutex_lock(&ex->lock);
	if (ex->done && (!ex->head_ready || (ex->collecting && ex->result)))
		rc = ex->result != 0 ? ex->result : STRATA_EUPSTREAM;
	else if (ex->head_ready && !ex->collecting)
		rc = STRATA_EXCHANGE_STREAM;
	else if (ex->head_ready && ex->done)
		rc = STRATA_EXCHANGE_COMPLETE;
	else {
		park_locked(ex); /* woken without news: wait again */
		rc = -EAGAIN;
	}
	pthread_mutex_unlock(&ex->lock);
	return rc;
}

int strata_exchange_take(struct strata_exchange *ex, unsigned *status,
			 struct strata_headers *headers, char **body,
			 size_t *body_len)
{
	char *buf = NULL;
	size_t n;

	pthread_mutex_lock(&ex->lock);
	STRATA_ASSERT(ex->done && ex->head_ready && ex->collecting);
	if (ex->buffered > 0) {
		buf = malloc(ex->buffered);
		if (buf == NULL) {
			pthread_mutex_unlock(&ex->lock);
			return -ENOMEM;
		}
	}
	n = drain_locked(ex, buf, ex->buffered);
	*status = ex->status;
	*headers = ex->resp_headers;
	memset(&ex->resp_headers, 0, sizeof(ex->resp_headers));
	pthread_mutex_unlock(&ex->lock);
	*body = buf;
	*body_len = n;
	return 0;
}

int strata_exchange_respond(struct strata_exchange *ex,
			    const char *cache_status, unsigned *status)
{
	struct MHD_Response *resp;
	uint64_t size;
	int rc = 0;

	STRATA_ASSERT(ex->magic == EXCHANGE_MAGIC);
	pthread_mutex_lock(&ex->lock);
	STRATA_ASSERT(ex->head_ready && !ex->collecting);
	size = response_size(&ex->resp_headers);
	if (ex->done && ex->result == 0 && size == MHD_SIZE_UNKNOWN)
		size = ex->buffered; /* whole body here: send a length */
	pthread_mutex_unlock(&ex->lock);

	/*
	 * Built and queued without ex->lock: libmicrohttpd calls reader_cb
	 * with the response's own mutex held, and reader_cb takes ex->lock,
	 * so holding ex->lock here while queueing would invert that order.
	 * The head (status, resp_headers) is written once by the upstream
	 * thread before head_ready is set under the lock and never again, so
	 * reading it unlocked after seeing head_ready is safe.
	 */
	resp = MHD_create_response_from_callback(size, READER_BLOCK, reader_cb,
						 ex, reader_free_cb);
	if (resp == NULL)
		return -ENOMEM;
	exchange_ref(ex); /* the response's reference */
	{
		struct strata_headers h = { 0 };

		if (strata_http_end_to_end(&ex->resp_headers, &h) != 0)
			rc = -ENOMEM;
		strata_reply_headers(resp, &h, cache_status);
		strata_headers_clear(&h);
	}
	if (rc == 0 && MHD_queue_response(ex->conn, ex->status, resp) != MHD_YES)
		rc = STRATA_EUPSTREAM; /* e.g. a status MHD cannot send */
	else if (rc == 0)
		*status = ex->status;
	MHD_destroy_response(resp);
	return rc;
}

uint64_t strata_exchange_bytes(struct strata_exchange *ex)
{
	uint64_t n;

	pthread_mutex_lock(&ex->lock);
	n = ex->bytes_out;
	pthread_mutex_unlock(&ex->lock);
	return n;
}

void strata_exchange_abandon(struct strata_exchange **exp)
{
	struct strata_exchange *ex;

	if (exp == NULL || *exp == NULL)
		return;
	ex = *exp;
	STRATA_ASSERT(ex->magic == EXCHANGE_MAGIC);
	pthread_mutex_lock(&ex->lock);
	/* A suspended connection is never completed, so this cannot race a
	 * resume: once conn is NULL nobody touches the connection again. */
	STRATA_ASSERT(!ex->suspended);
	ex->conn = NULL;
	if (ex->xfer != NULL)
		strata_upstream_xfer_cancel(ex->xfer);
	pthread_mutex_unlock(&ex->lock);
	exchange_unref(ex);
	*exp = NULL;
}

const struct strata_headers *
strata_exchange_headers(const struct strata_exchange *ex)
{
	/* Written once by the upstream thread before head_ready is set under
	 * the lock, which the poll that reported the head took: see
	 * strata_exchange_respond(). */
	return ex != NULL && ex->head_ready ? &ex->resp_headers : NULL;
}
