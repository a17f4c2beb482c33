/*
 * upstream.c: the libcurl multi client thread; see upstream.h.
 *
 * Concurrency:
 *  - The upstream thread owns the CURLM handle, every CURL easy handle and
 *    every xfer field marked "thread" below; nothing else touches them.
 *  - Other threads talk to it through the command queue: an intrusive list
 *    of transfers, each present at most once, with a bit set of pending
 *    commands (SUBMIT, RESUME, CANCEL).  Queue, bits and `stopping` are
 *    guarded by `up->lock`; an enqueue is followed by curl_multi_wakeup(),
 *    which is thread-safe.  No allocation per command: the steady state of
 *    a streaming transfer is pause/resume, which must stay cheap.
 *  - A transfer is reference-counted: one reference for the submitter,
 *    one for the upstream thread while the transfer is active, and one
 *    while it sits in the queue.  So a transfer in the queue can always be
 *    dereferenced by the thread, whatever the submitter did meanwhile.
 *  - Callbacks run on the upstream thread without `up->lock` held.
 */
#include "config.h"

#include "upstream/upstream.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "strata/strata.h"

#define UPSTREAM_MAGIC 0x55505354u /* "UPST" */
#define XFER_MAGIC 0x58464552u     /* "XFER" */

/* How often idle transfers are checked against the timeout. */
#define TIMEOUT_SCAN_MS 50

enum {
	CMD_SUBMIT = 1u << 0,
	CMD_RESUME = 1u << 1,
	CMD_CANCEL = 1u << 2,
};

struct strata_upstream_xfer {
	uint32_t magic;
	atomic_uint refcnt;
	struct strata_upstream *up;
	const struct strata_upstream_handler *handler;
	void *arg;

	/* Guarded by up->lock. */
	unsigned pending;
	bool queued;
	struct strata_upstream_xfer *qnext;

	/* Thread: owned by the upstream thread once submitted. */
	CURL *easy;
	struct curl_slist *req_headers;
	char *url;
	struct strata_headers resp_headers;
	unsigned status;
	bool head_done;
	const char *invalid;           /* static: why the head was refused */
	bool has_length;               /* a Content-Length was read */
	bool chunked;                  /* Transfer-Encoding was sent */
	uint64_t length;               /* ... its value */
	bool started;
	bool paused;
	bool done;
	uint64_t last_activity_ms;
	curl_off_t last_ul;
	struct strata_upstream_xfer *prev, *next; /* active list */
	char errbuf[CURL_ERROR_SIZE];
};

struct strata_upstream {
	uint32_t magic;
	CURLM *multi;
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;          /* guards the fields below */
	/* The settings new transfers get; strata_upstream_reconfigure()
	 * replaces them, and `reconf` tells the thread to apply its part
	 * (the idle timeout and the connection limits). */
	char *base_url;                /* without a trailing '/' */
	struct strata_upstream_config cfg; /* cfg.url: not used */
	bool reconf;
	struct strata_upstream_xfer *qhead, *qtail;
	bool stopping;
	bool cancel_all;

	atomic_uint inflight;          /* submitted, not yet done */

	/* Thread: active transfers, and the settings it applies. */
	struct strata_upstream_xfer *active;
	uint64_t next_scan_ms;
	uint64_t timeout_ms;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void xfer_ref(struct strata_upstream_xfer *xfer)
{
	/* Relaxed: the caller already holds a reference, so the object is
	 * alive; ordering is provided by whatever handed it the pointer. */
	atomic_fetch_add_explicit(&xfer->refcnt, 1, memory_order_relaxed);
}

static void xfer_free(struct strata_upstream_xfer *xfer)
{
	xfer->magic = 0;
	strata_headers_clear(&xfer->resp_headers);
	curl_slist_free_all(xfer->req_headers);
	free(xfer->url);
	free(xfer);
}

static void xfer_unref(struct strata_upstream_xfer *xfer)
{
	/* Acq_rel: the release half publishes this thread's writes to the
	 * thread that frees; the acquire half lets the freeing thread see
	 * every other holder's writes before it frees. */
	if (atomic_fetch_sub_explicit(&xfer->refcnt, 1,
				      memory_order_acq_rel) == 1)
		xfer_free(xfer);
}

void strata_upstream_xfer_release(struct strata_upstream_xfer **xfer)
{
	if (xfer == NULL || *xfer == NULL)
		return;
	STRATA_ASSERT((*xfer)->magic == XFER_MAGIC);
	xfer_unref(*xfer);
	*xfer = NULL;
}

/* Queue a command for the upstream thread; caller holds up->lock. */
static void enqueue_locked(struct strata_upstream *up,
			   struct strata_upstream_xfer *xfer, unsigned cmd)
{
	xfer->pending |= cmd;
	if (!xfer->queued) {
		xfer->queued = true;
		xfer_ref(xfer); /* the queue's reference */
		xfer->qnext = NULL;
		if (up->qtail != NULL)
			up->qtail->qnext = xfer;
		else
			up->qhead = xfer;
		up->qtail = xfer;
	}
}

/* Queue a command for the upstream thread and wake it. */
static void enqueue(struct strata_upstream_xfer *xfer, unsigned cmd)
{
	struct strata_upstream *up = xfer->up;

	pthread_mutex_lock(&up->lock);
	enqueue_locked(up, xfer, cmd);
	pthread_mutex_unlock(&up->lock);
	curl_multi_wakeup(up->multi);
}

void strata_upstream_xfer_resume(struct strata_upstream_xfer *xfer)
{
	STRATA_ASSERT(xfer->magic == XFER_MAGIC);
	enqueue(xfer, CMD_RESUME);
}

void strata_upstream_xfer_cancel(struct strata_upstream_xfer *xfer)
{
	STRATA_ASSERT(xfer->magic == XFER_MAGIC);
	enqueue(xfer, CMD_CANCEL);
}

void strata_upstream_cancel_all(struct strata_upstream *up)
{
	pthread_mutex_lock(&up->lock);
	up->cancel_all = true;
	pthread_mutex_unlock(&up->lock);
	curl_multi_wakeup(up->multi);
}

unsigned strata_upstream_inflight(const struct strata_upstream *up)
{
	return atomic_load_explicit(&up->inflight, memory_order_relaxed);
}

/* ---- the upstream thread ------------------------------------------------ */

static int map_curl_result(CURLcode rc, bool head_done)
{
	switch (rc) {
	case CURLE_OK:
		return head_done ? 0 : STRATA_EUPSTREAM;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return STRATA_ECONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return STRATA_ETIMEOUT;
	default:
		return STRATA_EUPSTREAM;
	}
}

static void active_unlink(struct strata_upstream *up,
			  struct strata_upstream_xfer *xfer)
{
	if (xfer->prev != NULL)
		xfer->prev->next = xfer->next;
	else if (up->active == xfer)
		up->active = xfer->next;
	if (xfer->next != NULL)
		xfer->next->prev = xfer->prev;
	xfer->prev = xfer->next = NULL;
}

/* End a transfer: detach it from libcurl, report, drop the thread's ref. */
static void finish(struct strata_upstream *up,
		   struct strata_upstream_xfer *xfer, int result)
{
	if (xfer->done)
		return;
	xfer->done = true;
	if (xfer->easy != NULL) {
		if (xfer->started)
			curl_multi_remove_handle(up->multi, xfer->easy);
		curl_easy_cleanup(xfer->easy);
		xfer->easy = NULL;
	}
	if (xfer->started)
		active_unlink(up, xfer);
	xfer->started = false;
	if (result != 0 && result != STRATA_ECANCELED)
		strata_log_error("upstream %s: %s%s%s", xfer->url,
				 strata_strerror(result),
				 xfer->invalid != NULL || xfer->errbuf[0] ? ": "
									  : "",
				 xfer->invalid != NULL ? xfer->invalid
						       : xfer->errbuf);
	atomic_fetch_sub_explicit(&up->inflight, 1, memory_order_relaxed);
	xfer->handler->done_cb(xfer->arg, result);
	xfer_unref(xfer); /* the thread's reference */
}

/*
 * The status code of a status line: three digits, 100 to 599 (RFC 9110
 * section 15), else 0.
 */
static unsigned status_code(const char *line, size_t n)
{
	const char *sp = memchr(line, ' ', n);
	size_t left;

	if (sp == NULL)
		return 0;
	sp++;
	left = n - (size_t)(sp - line);
	if (left < 3 || !isdigit((unsigned char)sp[0]) ||
	    !isdigit((unsigned char)sp[1]) || !isdigit((unsigned char)sp[2]) ||
	    (left > 3 && sp[3] != ' '))
		return 0;
	if (sp[0] < '1' || sp[0] > '5')
		return 0;
	return (unsigned)((sp[0] - '0') * 100 + (sp[1] - '0') * 10 +
			  (sp[2] - '0'));
}

/*
 * A Content-Length field value (RFC 9112 section 6.3): 1*DIGIT, or a list
 * of one repeated value ("5, 5"), that fits in 63 bits and agrees with
 * any earlier Content-Length line.  Anything else makes the body's length
 * unknowable: the response is invalid, never framed by a guess.
 */
static bool content_length_ok(struct strata_upstream_xfer *xfer,
			      const char *v, size_t len)
{
	const char *end = v + len;

	while (v < end) {
		uint64_t n = 0;
		const char *start = v;

		while (v < end && isdigit((unsigned char)*v)) {
			if (n > (UINT64_MAX >> 1) / 10)
				return false;
			n = n * 10 + (uint64_t)(*v++ - '0');
		}
		if (v == start || (xfer->has_length && n != xfer->length))
			return false;
		xfer->has_length = true;
		xfer->length = n;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		if (v < end && *v++ != ',')
			return false;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
	}
	return xfer->has_length;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct strata_upstream_xfer *xfer = userdata;
	size_t len = size * nitems, n = len;
	const char *colon, *value, *end;

	xfer->last_activity_ms = strata_now_ms();
	if (xfer->head_done)
		return len; /* trailers: not forwarded */
	while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n'))
		n--;
	if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new head (after a 1xx, or the first): start over. */
		strata_headers_clear(&xfer->resp_headers);
		xfer->has_length = false;
		xfer->chunked = false;
		xfer->status = status_code(buf, n);
		if (xfer->status == 0) {
			xfer->invalid = "invalid status line";
			return 0; /* abort: answered 502 */
		}
		return len;
	}
	if (n == 0) {
		struct strata_headers moved;

		if (xfer->status < 200)
			return len; /* end of an interim 1xx head */
		xfer->head_done = true;
		/* Repeated Cache-Control or Vary lines read as one list
		 * by every consumer (a failure leaves them as they are). */
		(void)strata_http_fold_cache_lists(&xfer->resp_headers);
		moved = xfer->resp_headers;
		memset(&xfer->resp_headers, 0, sizeof(xfer->resp_headers));
		xfer->handler->headers_cb(xfer->arg, xfer->status, &moved);
		return len;
	}
	if (buf[0] == ' ' || buf[0] == '\t')
		return len; /* obs-fold continuation: dropped (RFC 9112 5.2) */
	colon = memchr(buf, ':', n);
	if (colon == NULL || colon == buf)
		return len; /* not a header line: ignore it */
	value = colon + 1;
	end = buf + n;
	while (value < end && (*value == ' ' || *value == '\t'))
		value++;
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if ((size_t)(colon - buf) == 14 &&
	    strncasecmp(buf, "Content-Length", 14) == 0 &&
	    !content_length_ok(xfer, value, (size_t)(end - value))) {
		xfer->invalid = "invalid Content-Length";
		return 0;
	}
	if ((size_t)(colon - buf) == 17 &&
	    strncasecmp(buf, "Transfer-Encoding", 17) == 0)
		xfer->chunked = true;
	if (xfer->has_length && xfer->chunked) {
		/* RFC 9112 section 6.3: a sign of response splitting. */
		xfer->invalid = "both Content-Length and Transfer-Encoding";
		return 0;
	}
	if (strata_headers_addn(&xfer->resp_headers, buf,
				(size_t)(colon - buf), value,
				(size_t)(end - value)) != 0)
		return 0; /* out of memory: abort the transfer */
	return len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct strata_upstream_xfer *xfer = userdata;
	size_t len = size * nmemb;

	xfer->last_activity_ms = strata_now_ms();
	if (xfer->handler->body_cb(xfer->arg, data, len) ==
	    STRATA_UPSTREAM_PAUSE) {
		xfer->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	return len;
}

/* Upload progress counts as activity for the idle timeout. */
static int xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct strata_upstream_xfer *xfer = userdata;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	if (ulnow != xfer->last_ul) {
		xfer->last_ul = ulnow;
		xfer->last_activity_ms = strata_now_ms();
	}
	return 0;
}

/* Add a submitted transfer to the multi handle. */
static void start(struct strata_upstream *up,
		  struct strata_upstream_xfer *xfer)
{
	if (curl_multi_add_handle(up->multi, xfer->easy) != CURLM_OK) {
		finish(up, xfer, STRATA_EUNAVAIL);
		return;
	}
	xfer->started = true;
	xfer->last_activity_ms = strata_now_ms();
	xfer->next = up->active;
	if (up->active != NULL)
		up->active->prev = xfer;
	up->active = xfer;
}

static void run_commands(struct strata_upstream *up,
			 struct strata_upstream_xfer *list)
{
	while (list != NULL) {
		struct strata_upstream_xfer *xfer = list;
		unsigned cmd;

		pthread_mutex_lock(&up->lock);
		list = xfer->qnext;
		cmd = xfer->pending;
		xfer->pending = 0;
		xfer->queued = false;
		xfer->qnext = NULL;
		pthread_mutex_unlock(&up->lock);

		if ((cmd & CMD_SUBMIT) && !xfer->done)
			start(up, xfer);
		if ((cmd & CMD_CANCEL) && !xfer->done)
			finish(up, xfer, STRATA_ECANCELED);
		if ((cmd & CMD_RESUME) && !xfer->done && xfer->paused) {
			xfer->paused = false;
			xfer->last_activity_ms = strata_now_ms();
			/* May call write_cb at once with the held-back data. */
			curl_easy_pause(xfer->easy, CURLPAUSE_CONT);
		}
		xfer_unref(xfer); /* the queue's reference */
	}
}

static void cancel_active(struct strata_upstream *up)
{
	while (up->active != NULL)
		finish(up, up->active, STRATA_ECANCELED);
}

static void collect_done(struct strata_upstream *up)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
		struct strata_upstream_xfer *xfer = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&xfer);
		STRATA_ASSERT(xfer != NULL && xfer->magic == XFER_MAGIC);
		finish(up, xfer,
		       map_curl_result(msg->data.result, xfer->head_done));
	}
}

static void check_timeouts(struct strata_upstream *up, uint64_t now)
{
	struct strata_upstream_xfer *xfer = up->active, *next;

	if (now < up->next_scan_ms)
		return;
	up->next_scan_ms = now + TIMEOUT_SCAN_MS;
	for (; xfer != NULL; xfer = next) {
		next = xfer->next;
		if (!xfer->paused &&
		    now - xfer->last_activity_ms >= up->timeout_ms) {
			snprintf(xfer->errbuf, sizeof(xfer->errbuf),
				 "no data for %llu ms",
				 (unsigned long long)up->timeout_ms);
			finish(up, xfer, STRATA_ETIMEOUT);
		}
	}
}

/* The settings the thread owns: the idle timeout it checks and the
 * connection limits of its multi handle (on the thread only, as libcurl
 * requires: a multi handle is used by one thread at a time). */
static void apply_settings(struct strata_upstream *up,
			   const struct strata_upstream_config *cfg)
{
	up->timeout_ms = cfg->timeout_ms;
	curl_multi_setopt(up->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)cfg->max_connections);
	curl_multi_setopt(up->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)cfg->max_connections);
	curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS,
			  (long)cfg->max_connections);
}

/* A copy of `url` without trailing slashes, or NULL. */
static char *base_url_of(const char *url)
{
	char *base = strdup(url);
	size_t len;

	if (base == NULL)
		return NULL;
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		base[--len] = '\0';
	return base;
}

static void *thread_main(void *arg)
{
	struct strata_upstream *up = arg;

	for (;;) {
		struct strata_upstream_xfer *list;
		struct strata_upstream_config cfg;
		bool stopping, cancel_all, reconf;
		int running;

		pthread_mutex_lock(&up->lock);
		list = up->qhead;
		up->qhead = up->qtail = NULL;
		stopping = up->stopping;
		cancel_all = up->cancel_all;
		up->cancel_all = false;
		reconf = up->reconf;
		up->reconf = false;
		cfg = up->cfg;
		pthread_mutex_unlock(&up->lock);

		if (reconf)
			apply_settings(up, &cfg);
		run_commands(up, list);
		if (stopping || cancel_all)
			cancel_active(up);
		if (stopping)
			break;
		curl_multi_perform(up->multi, &running);
		collect_done(up);
		check_timeouts(up, strata_now_ms());
		curl_multi_poll(up->multi, NULL, 0, TIMEOUT_SCAN_MS, NULL);
	}
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

int strata_upstream_new(const struct strata_upstream_config *cfg,
			struct strata_upstream **out)
{
	struct strata_upstream *up;

	pthread_once(&curl_once, curl_init_once);
	up = calloc(1, sizeof(*up));
	if (up == NULL)
		return -ENOMEM;
	up->magic = UPSTREAM_MAGIC;
	up->cfg = *cfg;
	up->cfg.url = NULL;
	up->base_url = base_url_of(cfg->url);
	up->multi = curl_multi_init();
	if (up->base_url == NULL || up->multi == NULL) {
		free(up->base_url);
		if (up->multi != NULL)
			curl_multi_cleanup(up->multi);
		free(up);
		return -ENOMEM;
	}
	pthread_mutex_init(&up->lock, NULL);
	apply_settings(up, cfg);
	*out = up;
	return 0;
}

int strata_upstream_reconfigure(struct strata_upstream *up,
				const struct strata_upstream_config *cfg)
{
	char *base = base_url_of(cfg->url), *old;

	STRATA_ASSERT(up->magic == UPSTREAM_MAGIC);
	if (base == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&up->lock);
	old = up->base_url;
	up->base_url = base;
	up->cfg = *cfg;
	up->cfg.url = NULL;
	up->reconf = true;
	pthread_mutex_unlock(&up->lock);
	free(old);
	curl_multi_wakeup(up->multi);
	return 0;
}

int strata_upstream_start(struct strata_upstream *up)
{
	int rc = pthread_create(&up->thread, NULL, thread_main, up);

	if (rc != 0)
		return -rc;
	up->started = true;
	return 0;
}

void strata_upstream_free(struct strata_upstream **upp)
{
	struct strata_upstream *up;

	if (upp == NULL || *upp == NULL)
		return;
	up = *upp;
	STRATA_ASSERT(up->magic == UPSTREAM_MAGIC);
	pthread_mutex_lock(&up->lock);
	up->stopping = true;
	pthread_mutex_unlock(&up->lock);
	if (up->started) {
		curl_multi_wakeup(up->multi);
		pthread_join(up->thread, NULL);
	}
	/* Commands queued after the thread's last look (or with no thread):
	 * run them here, then end whatever they started. */
	run_commands(up, up->qhead);
	up->qhead = up->qtail = NULL;
	cancel_active(up);
	curl_multi_cleanup(up->multi);
	pthread_mutex_destroy(&up->lock);
	free(up->base_url);
	up->magic = 0;
	free(up);
	*upp = NULL;
}

/* ---- submission --------------------------------------------------------- */

static bool has_header(const struct strata_headers *h, const char *name)
{
	return h != NULL && strata_headers_get(h, name) != NULL;
}

/* "Name: value", or "Name;" for an empty value (curl's syntax for it). */
static int append_header(struct curl_slist **list, const char *name,
			 const char *value)
{
	struct curl_slist *next;
	char *line;
	int n;

	if (value[0] == '\0')
		n = asprintf(&line, "%s;", name);
	else
		n = asprintf(&line, "%s: %s", name, value);
	if (n < 0)
		return -ENOMEM;
	next = curl_slist_append(*list, line);
	free(line);
	if (next == NULL)
		return -ENOMEM;
	*list = next;
	return 0;
}

static int build_headers(struct strata_upstream_xfer *xfer,
			 const struct strata_upstream_request *req)
{
	const struct strata_headers *h = req->headers;
	int rc = 0;

	for (size_t i = 0; h != NULL && i < h->n && rc == 0; i++)
		rc = append_header(&xfer->req_headers, h->v[i].name,
				   h->v[i].value);
	return rc;
}

/*
 * Suppress headers libcurl adds by default and the client did not send
 * ("Name:" removes a header): the upstream must see the client's request,
 * not curl's.  Expect is always suppressed: the body is already here, so a
 * 100-continue round trip would only add latency.
 */
static int suppress_defaults(struct strata_upstream_xfer *xfer,
			     const struct strata_upstream_request *req,
			     bool sends_body)
{
	static const char *const names[] = { "Accept", "Content-Type" };
	struct curl_slist *next;

	for (size_t i = 0; i < 2; i++) {
		char line[32];

		if (i == 1 && !sends_body)
			break;
		if (has_header(req->headers, names[i]))
			continue;
		snprintf(line, sizeof(line), "%s:", names[i]);
		next = curl_slist_append(xfer->req_headers, line);
		if (next == NULL)
			return -ENOMEM;
		xfer->req_headers = next;
	}
	next = curl_slist_append(xfer->req_headers, "Expect:");
	if (next == NULL)
		return -ENOMEM;
	xfer->req_headers = next;
	return 0;
}

static bool method_sends_body(const struct strata_upstream_request *req)
{
	return req->body_len > 0 || strcmp(req->method, "POST") == 0 ||
	       strcmp(req->method, "PUT") == 0 ||
	       strcmp(req->method, "PATCH") == 0;
}

static void set_method(CURL *easy, const struct strata_upstream_request *req,
		       bool sends_body)
{
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
		return;
	}
	if (strcmp(req->method, "GET") != 0 || sends_body)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	if (sends_body) {
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
				 req->body != NULL ? req->body : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
	}
}

static int setup_easy(struct strata_upstream_xfer *xfer,
		      const struct strata_upstream_request *req)
{
	bool sends_body = method_sends_body(req);
	CURL *easy = curl_easy_init();
	int rc;

	if (easy == NULL)
		return -ENOMEM;
	xfer->easy = easy;
	rc = build_headers(xfer, req);
	if (rc == 0)
		rc = suppress_defaults(xfer, req, sends_body);
	if (rc != 0)
		return rc;
	curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, xfer->req_headers);
	curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 64L * 1024L);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, xfer);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, xfer);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(easy, CURLOPT_XFERINFODATA, xfer);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, xfer);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, xfer->errbuf);
	set_method(easy, req, sends_body);
	return 0;
}

/* Under up->lock: the transfer's URL and connect timeout. */
static int target_locked(struct strata_upstream *up,
			 struct strata_upstream_xfer *xfer,
			 const struct strata_upstream_request *req)
{
	if (asprintf(&xfer->url, "%s%s", up->base_url, req->target) < 0) {
		xfer->url = NULL;
		return -ENOMEM;
	}
	curl_easy_setopt(xfer->easy, CURLOPT_URL, xfer->url);
	curl_easy_setopt(xfer->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)up->cfg.connect_timeout_ms);
	return 0;
}

int strata_upstream_submit(struct strata_upstream *up,
			   const struct strata_upstream_request *req,
			   const struct strata_upstream_handler *handler,
			   void *arg, struct strata_upstream_xfer **out)
{
	struct strata_upstream_xfer *xfer;
	bool stopping;
	int rc;

	STRATA_ASSERT(up->magic == UPSTREAM_MAGIC);
	xfer = calloc(1, sizeof(*xfer));
	if (xfer == NULL)
		return -ENOMEM;
	xfer->magic = XFER_MAGIC;
	xfer->up = up;
	xfer->handler = handler;
	xfer->arg = arg;
	/* One reference for the caller, one for the upstream thread. */
	atomic_init(&xfer->refcnt, 2);
	rc = setup_easy(xfer, req);
	if (rc != 0)
		goto fail;
	/* Checked under the lock that the thread reads `stopping` and the
	 * queue with, so an accepted submission is always seen by it; the
	 * address and connect timeout are the settings current now. */
	pthread_mutex_lock(&up->lock);
	stopping = up->stopping;
	if (!stopping && (rc = target_locked(up, xfer, req)) != 0)
		stopping = true;
	if (!stopping) {
		atomic_fetch_add_explicit(&up->inflight, 1,
					  memory_order_relaxed);
		enqueue_locked(up, xfer, CMD_SUBMIT);
	}
	pthread_mutex_unlock(&up->lock);
	if (stopping) {
		if (rc == 0)
			rc = STRATA_EUNAVAIL;
		goto fail;
	}
	curl_multi_wakeup(up->multi);
	*out = xfer;
	return 0;
fail:
	if (xfer->easy != NULL)
		curl_easy_cleanup(xfer->easy);
	xfer_free(xfer);
	return rc;
}
