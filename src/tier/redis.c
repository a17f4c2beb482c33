/*
 * redis.c: tier 3, a Redis cache shared by a fleet (see redis.h).
 *
 * Three layers, bottom up:
 *
 *   1. The command layer (struct redis_transport): sends a batch of
 *      commands in one round trip and returns one owned reply per command.
 *      Today there is one transport, a single hiredis connection.  It is
 *      the seam for Redis Cluster: a cluster transport would group the
 *      batch by hash slot, send each group to its node, follow MOVED/ASK
 *      and reassemble the replies in order, and nothing above it would
 *      change.  (Tag sets live in other slots than their entries, which is
 *      why a batch is not assumed to hit one node.)
 *   2. The connection and circuit breaker (ensure_up, mark_down): connect
 *      with AUTH and SELECT; on a failure, drop the connection and fail
 *      fast until a doubling backoff allows one reconnect attempt.
 *   3. The tier operations (get, set, del, ping), which build key names,
 *      encode and decode entries and count.
 *
 * Only the owning worker thread touches the connection and breaker
 * fields; the counters are atomics so that stats may be read anywhere.
 */
#include "config.h"

#include "tier/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cache/purge.h"
#include "core/log.h"
#include "strata/strata.h"

#define REDIS_MAGIC 0x52454449u /* "REDI" */
#define DEFAULT_PREFIX "strata"
#define DEFAULT_TIMEOUT_MS 250u
#define DEFAULT_BACKOFF_MIN_MS 100u
#define DEFAULT_BACKOFF_MAX_MS 5000u
#define PREFIX_MAX 128
#define URL_FORMS                                                              \
	"use redis://[:password@]host[:port][/db] or "                         \
	"unix:///path/to.sock[?db=N]"

/* Raise a tag set's expiry to ARGV[2] ms, never lower it (PTTL is -1 for a
 * set SADD has just created).  One script so the read and the write are
 * atomic; works on every Redis version (PEXPIRE GT needs 7.0). */
static const char TAG_SCRIPT[] =
	"redis.call('SADD', KEYS[1], ARGV[1]) "
	"local t = redis.call('PTTL', KEYS[1]) "
	"if t < tonumber(ARGV[2]) then "
	"redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
	"return 1";

/* One command of a batch: binary-safe arguments. */
struct redis_cmd {
	int argc;
	const char **argv;
	const size_t *lens;
};

/*
 * The command layer.  run() sends `n` commands and fills replies[0..n)
 * with owned replies (free with freeReplyObject; an error reply is a
 * reply, not a failure).  Returns 0, or -EIO when the connection failed
 * (the replies are then all NULL and the caller marks the tier down).
 */
struct redis_transport {
	int (*run)(struct strata_redis *r, size_t n,
		   const struct redis_cmd *cmds, redisReply **replies);
};

struct strata_redis {
	uint32_t magic;
	struct strata_redis_url url;
	char url_text[512];         /* for logs, password masked */
	char prefix[PREFIX_MAX + 1];
	unsigned timeout_ms;
	unsigned read_timeout_ms;   /* timeout_ms + the longest BLOCK */
	unsigned backoff_min_ms;
	unsigned backoff_max_ms;
	bool quiet;
	const struct redis_transport *transport;

	/* Worker thread only. */
	redisContext *ctx;          /* NULL while down */
	uint64_t retry_at;          /* monotonic ms of the next attempt */
	unsigned backoff_ms;        /* delay after the next failed attempt */

	/* Any thread reads (relaxed: independent counters, no ordering). */
	atomic_uint state;
	atomic_uint_fast64_t hits, misses, corrupt, stores, errors, fast_fails,
		reconnects;
};

static void count(atomic_uint_fast64_t *c)
{
	/* Relaxed: a statistic, orders nothing. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* --- URLs ----------------------------------------------------------------- */

void strata_redis_url_mask(const char *url, char *buf, size_t len)
{
	const char *scheme = strstr(url, "://");
	const char *auth = scheme != NULL ? scheme + 3 : url;
	const char *at = strrchr(auth, '@');
	const char *colon;

	if (at == NULL || strncmp(url, "unix://", 7) == 0) {
		snprintf(buf, len, "%s", url);
		return;
	}
	/* Keep a user name before the first ':', mask the rest; without a
	 * ':' the whole user part may be the secret. */
	colon = memchr(auth, ':', (size_t)(at - auth));
	snprintf(buf, len, "%.*s%.*s:***%s", (int)(auth - url), url,
		 colon != NULL ? (int)(colon - auth) : 0, auth, at);
}

static int url_error(const char *url, char *err, size_t err_len,
		     const char *problem)
{
	char masked[512];

	if (err != NULL && err_len > 0) {
		strata_redis_url_mask(url, masked, sizeof(masked));
		snprintf(err, err_len, "redis URL \"%s\": %s (%s)", masked,
			 problem, URL_FORMS);
	}
	return STRATA_ECONFIG;
}

/* Parse a decimal in [0, max] filling the whole of [s, end). */
static bool parse_uint(const char *s, const char *end, unsigned long max,
		       unsigned *out)
{
	unsigned long v = 0;

	if (s == end)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*out = (unsigned)v;
	return true;
}

static int parse_unix(const char *url, const char *rest,
		      struct strata_redis_url *u, char *err, size_t err_len)
{
	const char *q = strchr(rest, '?');
	size_t path_len = q != NULL ? (size_t)(q - rest) : strlen(rest);

	if (path_len == 0 || rest[0] != '/')
		return url_error(url, err, err_len,
				 "the socket path must be absolute");
	if (path_len > STRATA_REDIS_PATH_MAX)
		return url_error(url, err, err_len,
				 "the socket path is longer than 107 bytes");
	memcpy(u->path, rest, path_len);
	u->path[path_len] = '\0';
	if (q != NULL) {
		if (strncmp(q, "?db=", 4) != 0 ||
		    !parse_uint(q + 4, q + strlen(q), 1000000, &u->db))
			return url_error(url, err, err_len,
					 "the only query accepted is ?db=N "
					 "with N a database number");
	}
	u->is_unix = true;
	return 0;
}

static int parse_tcp(const char *url, const char *rest,
		     struct strata_redis_url *u, char *err, size_t err_len)
{
	const char *slash = strchr(rest, '/');
	const char *end = slash != NULL ? slash : rest + strlen(rest);
	const char *at = memchr(rest, '@', (size_t)(end - rest));
	const char *host = rest, *host_end, *port = NULL;

	if (at != NULL) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		size_t ulen, plen;

		if (colon == NULL)
			return url_error(url, err, err_len,
					 "credentials need a colon before "
					 "the password, as in :password@");
		ulen = (size_t)(colon - rest);
		plen = (size_t)(at - colon - 1);
		if (ulen >= sizeof(u->user) || plen >= sizeof(u->password))
			return url_error(url, err, err_len,
					 "user or password too long");
		if (plen == 0)
			return url_error(url, err, err_len,
					 "the password is empty (drop the "
					 "'@' part for no password)");
		memcpy(u->user, rest, ulen);
		u->user[ulen] = '\0';
		memcpy(u->password, colon + 1, plen);
		u->password[plen] = '\0';
		host = at + 1;
	}
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		if (close == NULL)
			return url_error(url, err, err_len,
					 "an IPv6 address needs its ']'");
		host_end = close;
		host++;
		if (close + 1 < end) {
			if (close[1] != ':')
				return url_error(url, err, err_len,
						 "expected ':port' after ']'");
			port = close + 2;
		}
	} else {
		host_end = memchr(host, ':', (size_t)(end - host));
		if (host_end != NULL)
			port = host_end + 1;
		else
			host_end = end;
	}
	if (host_end == host)
		return url_error(url, err, err_len, "the host is missing");
	if ((size_t)(host_end - host) > STRATA_REDIS_HOST_MAX)
		return url_error(url, err, err_len, "the host is too long");
	memcpy(u->host, host, (size_t)(host_end - host));
	u->host[host_end - host] = '\0';
	if (port != NULL &&
	    (!parse_uint(port, end, 65535, &u->port) || u->port == 0))
		return url_error(url, err, err_len,
				 "the port must be a number from 1 to 65535");
	if (slash != NULL && slash[1] != '\0' &&
	    !parse_uint(slash + 1, slash + strlen(slash), 1000000, &u->db))
		return url_error(url, err, err_len,
				 "the path must be a database number, as "
				 "in /0");
	return 0;
}

int strata_redis_url_parse(const char *url, struct strata_redis_url *out,
			   char *err, size_t err_len)
{
	struct strata_redis_url u;
	int rc;

	memset(&u, 0, sizeof(u));
	u.port = 6379;
	if (err != NULL && err_len > 0)
		err[0] = '\0';
	if (url == NULL || *url == '\0')
		return url_error("", err, err_len, "the URL is empty");
	if (strncmp(url, "redis://", 8) == 0)
		rc = parse_tcp(url, url + 8, &u, err, err_len);
	else if (strncmp(url, "unix://", 7) == 0)
		rc = parse_unix(url, url + 7, &u, err, err_len);
	else if (strncmp(url, "rediss://", 9) == 0)
		rc = url_error(url, err, err_len, "TLS is not supported");
	else
		rc = url_error(url, err, err_len, "unknown scheme");
	if (rc == 0)
		*out = u;
	return rc;
}

/* --- the command layer: one hiredis connection ------------------------------ */

static int single_run(struct strata_redis *r, size_t n,
		      const struct redis_cmd *cmds, redisReply **replies)
{
	size_t i;

	for (i = 0; i < n; i++)
		replies[i] = NULL;
	for (i = 0; i < n; i++)
		if (redisAppendCommandArgv(r->ctx, cmds[i].argc, cmds[i].argv,
					   cmds[i].lens) != REDIS_OK)
			goto fail;
	for (i = 0; i < n; i++) {
		void *reply = NULL;

		if (redisGetReply(r->ctx, &reply) != REDIS_OK ||
		    reply == NULL)
			goto fail;
		replies[i] = reply;
	}
	return 0;
fail:
	for (i = 0; i < n; i++)
		if (replies[i] != NULL) {
			freeReplyObject(replies[i]);
			replies[i] = NULL;
		}
	return -EIO;
}

static const struct redis_transport single_transport = {.run = single_run};

/* --- connection and circuit breaker ---------------------------------------- */

static struct timeval ms_tv(unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000,
			     .tv_usec = (long)(ms % 1000) * 1000};
	return tv;
}

/* One command on the fresh connection during login; writes why it failed
 * to `why`.  Returns 0 or -1. */
static int login_cmd(struct strata_redis *r, int argc, const char **argv,
		     char *why, size_t why_len)
{
	size_t lens[3];
	struct redis_cmd cmd = {.argc = argc, .argv = argv, .lens = lens};
	redisReply *reply;
	int i, rc = -1;

	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if (r->transport->run(r, 1, &cmd, &reply) != 0) {
		snprintf(why, why_len, "%s failed: %s", argv[0],
			 r->ctx->errstr);
		return -1;
	}
	if (reply->type == REDIS_REPLY_ERROR)
		snprintf(why, why_len, "%s refused: %s%s", argv[0],
			 reply->str,
			 argv[0][0] == 'A' ? " (check the password in the URL)"
					   : " (check the database number)");
	else
		rc = 0;
	freeReplyObject(reply);
	return rc;
}

/* Connect, AUTH, SELECT.  Returns 0 (r->ctx set) or -1 with `why`. */
static int connect_once(struct strata_redis *r, char *why, size_t why_len)
{
	struct timeval tv = ms_tv(r->timeout_ms);
	struct timeval rtv = ms_tv(r->read_timeout_ms);
	char db[16];

	if (r->url.is_unix)
		r->ctx = redisConnectUnixWithTimeout(r->url.path, tv);
	else
		r->ctx = redisConnectWithTimeout(r->url.host, (int)r->url.port,
						 tv);
	if (r->ctx == NULL) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	if (r->ctx->err) {
		snprintf(why, why_len, "cannot connect: %s", r->ctx->errstr);
		goto fail;
	}
	if (redisSetTimeout(r->ctx, rtv) != REDIS_OK) {
		snprintf(why, why_len, "cannot set the timeout");
		goto fail;
	}
	if (r->url.password[0] != '\0') {
		/* AUTH [user] password: the user form needs Redis 6. */
		const char *argv[3] = {"AUTH", r->url.user, r->url.password};
		bool user = r->url.user[0] != '\0';

		if (!user)
			argv[1] = r->url.password;
		if (login_cmd(r, user ? 3 : 2, argv, why, why_len) != 0)
			goto fail;
	}
	if (r->url.db != 0) {
		snprintf(db, sizeof(db), "%u", r->url.db);
		if (login_cmd(r, 2, (const char *[]){"SELECT", db}, why,
			      why_len) != 0)
			goto fail;
	}
	return 0;
fail:
	redisFree(r->ctx);
	r->ctx = NULL;
	return -1;
}

/* Drop the connection and start failing fast.  Logs only the transition
 * from up to down. */
static void mark_down(struct strata_redis *r, const char *why)
{
	if (r->ctx != NULL) {
		redisFree(r->ctx);
		r->ctx = NULL;
	}
	count(&r->errors);
	r->backoff_ms = r->backoff_min_ms;
	r->retry_at = strata_now_ms() + r->backoff_ms;
	/* Relaxed: state is a statistic for other threads; only this
	 * thread acts on it. */
	if (atomic_exchange_explicit(&r->state, STRATA_REDIS_DOWN,
				     memory_order_relaxed) != STRATA_REDIS_DOWN &&
	    !r->quiet)
		strata_log_warn("redis %s: down, failing fast and retrying "
				"with backoff: %s",
				r->url_text, why);
}

/* Whether a command may be sent now: connected, or the backoff allowed a
 * reconnect that worked.  Returns 0 or STRATA_EUNAVAIL. */
static int ensure_up(struct strata_redis *r)
{
	char why[256];
	uint64_t now;

	if (r->ctx != NULL)
		return 0;
	now = strata_now_ms();
	if (now < r->retry_at) {
		count(&r->fast_fails);
		return STRATA_EUNAVAIL;
	}
	if (connect_once(r, why, sizeof(why)) != 0) {
		count(&r->errors);
		r->retry_at = now + r->backoff_ms;
		r->backoff_ms = r->backoff_ms * 2 > r->backoff_max_ms
					? r->backoff_max_ms
					: r->backoff_ms * 2;
		return STRATA_EUNAVAIL;
	}
	atomic_store_explicit(&r->state, STRATA_REDIS_UP,
			      memory_order_relaxed);
	count(&r->reconnects);
	if (!r->quiet)
		strata_log_info("redis %s: connected", r->url_text);
	return 0;
}

/* Run a batch through the breaker.  Returns 0 (replies owned by the
 * caller) or STRATA_EUNAVAIL. */
static int run(struct strata_redis *r, size_t n, const struct redis_cmd *cmds,
	       redisReply **replies)
{
	int rc = ensure_up(r);

	if (rc != 0)
		return rc;
	if (r->transport->run(r, n, cmds, replies) != 0) {
		char why[160];

		snprintf(why, sizeof(why), "%s",
			 r->ctx->errstr[0] ? r->ctx->errstr : "I/O error");
		mark_down(r, why);
		return STRATA_EUNAVAIL;
	}
	return 0;
}

/* --- lifecycle ---------------------------------------------------------------- */

int strata_redis_open(const struct strata_redis_config *cfg,
		      struct strata_redis **out)
{
	struct strata_redis *r = NULL;
	const char *prefix;
	char err[768], why[256];
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->magic = REDIS_MAGIC;
	rc = strata_redis_url_parse(cfg->url, &r->url, err, sizeof(err));
	if (rc != 0) {
		strata_log_error("%s", err);
		goto fail;
	}
	prefix = cfg->prefix != NULL && *cfg->prefix ? cfg->prefix
						     : DEFAULT_PREFIX;
	if (strlen(prefix) > PREFIX_MAX || strpbrk(prefix, " \r\n") != NULL) {
		strata_log_error("redis prefix \"%.40s...\": too long or has "
				 "spaces (use at most %d bytes, no spaces)",
				 prefix, PREFIX_MAX);
		rc = STRATA_ECONFIG;
		goto fail;
	}
	strcpy(r->prefix, prefix);
	strata_redis_url_mask(cfg->url, r->url_text, sizeof(r->url_text));
	r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	r->read_timeout_ms = r->timeout_ms + cfg->block_ms;
	r->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms
						: DEFAULT_BACKOFF_MIN_MS;
	r->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms
						: DEFAULT_BACKOFF_MAX_MS;
	if (r->backoff_max_ms < r->backoff_min_ms)
		r->backoff_max_ms = r->backoff_min_ms;
	r->transport = &single_transport;

	r->quiet = cfg->quiet;
	if (connect_once(r, why, sizeof(why)) == 0) {
		atomic_init(&r->state, STRATA_REDIS_UP);
		if (!r->quiet)
			strata_log_info("redis %s: connected", r->url_text);
	} else {
		/* Not up yet: start down; mark_down logs the transition. */
		atomic_init(&r->state, STRATA_REDIS_UP);
		mark_down(r, why);
	}
	*out = r;
	return 0;
fail:
	free(r);
	return rc;
}

void strata_redis_close(struct strata_redis **r)
{
	if (r == NULL || *r == NULL)
		return;
	STRATA_ASSERT((*r)->magic == REDIS_MAGIC);
	if ((*r)->ctx != NULL)
		redisFree((*r)->ctx);
	(*r)->magic = 0;
	free(*r);
	*r = NULL;
}

/* --- building a batch ------------------------------------------------------------ */

/*
 * A batch of commands under construction.  Argument strings either point
 * at memory that outlives the batch (static strings, the caller's) or are
 * "owned": allocated here and freed by cmdbuf_free().  Any allocation
 * failure sets `err` and later additions do nothing, so builders need not
 * check every step; strata_redis_batch() checks once.
 */
struct cmdbuf {
	struct redis_cmd *cmds;
	size_t n, cap;
	void **owned;
	size_t n_owned, cap_owned;
	int err;
};

static void *own(struct cmdbuf *b, void *p)
{
	if (p == NULL) {
		b->err = -ENOMEM;
		return NULL;
	}
	if (b->n_owned == b->cap_owned) {
		size_t cap = b->cap_owned ? b->cap_owned * 2 : 32;
		void **owned = realloc(b->owned, cap * sizeof(*owned));

		if (owned == NULL) {
			free(p);
			b->err = -ENOMEM;
			return NULL;
		}
		b->owned = owned;
		b->cap_owned = cap;
	}
	b->owned[b->n_owned++] = p;
	return p;
}

/* An owned copy of a formatted string. */
static const char *own_fmt(struct cmdbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const char *own_fmt(struct cmdbuf *b, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (b->err != 0)
		return "";
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	s = own(b, s);
	return s != NULL ? s : "";
}

/*
 * Append one command.  argv[i] with lens == NULL (or lens[i] == SIZE_MAX)
 * is a C string; the argv and lens arrays are copied, the strings not.
 */
static void add_cmd(struct cmdbuf *b, int argc, const char *const *argv,
		    const size_t *lens)
{
	const char **av;
	size_t *lv;

	if (b->err != 0)
		return;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct redis_cmd *cmds = realloc(b->cmds, cap * sizeof(*cmds));

		if (cmds == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->cmds = cmds;
		b->cap = cap;
	}
	av = own(b, malloc((size_t)argc * sizeof(*av)));
	lv = own(b, malloc((size_t)argc * sizeof(*lv)));
	if (av == NULL || lv == NULL)
		return;
	for (int i = 0; i < argc; i++) {
		av[i] = argv[i];
		lv[i] = lens != NULL && lens[i] != SIZE_MAX ? lens[i]
							    : strlen(argv[i]);
	}
	b->cmds[b->n++] = (struct redis_cmd){argc, av, lv};
}

static void cmdbuf_free(struct cmdbuf *b)
{
	for (size_t i = 0; i < b->n_owned; i++)
		free(b->owned[i]);
	free(b->owned);
	free(b->cmds);
	memset(b, 0, sizeof(*b));
}

/* --- tier operations -------------------------------------------------------------- */

/* Compare-and-delete: release a lock only while it is still ours (it may
 * have expired and been taken by another instance meanwhile). */
static const char UNLOCK_SCRIPT[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then "
	"return redis.call('DEL', KEYS[1]) end return 0";

/* Compare-and-extend: push a held lock's expiry to ARGV[2] ms only while
 * it is still ours.  A lock that expired and was taken by another
 * instance is left alone (a plain PEXPIRE would lengthen or, worse,
 * shorten someone else's lock).  1: extended; -1: another's; 0: gone. */
static const char EXTEND_SCRIPT[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v == ARGV[1] then "
	"return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
	"if v then return -1 end return 0";

static const char *entry_name(struct cmdbuf *b, const struct strata_redis *r,
			      const struct strata_key *key)
{
	char hex[STRATA_KEY_HEX_LEN + 1];

	strata_key_hex(key, hex);
	return own_fmt(b, "%s:e:%s", r->prefix, hex);
}

static const char *lock_name(struct cmdbuf *b, const struct strata_redis *r,
			     const struct strata_key *key)
{
	char hex[STRATA_KEY_HEX_LEN + 1];

	strata_key_hex(key, hex);
	return own_fmt(b, "%s:l:%s", r->prefix, hex);
}

static void build_set(struct cmdbuf *b, const struct strata_redis *r,
		      const struct strata_redis_op *op, int64_t keep_ms)
{
	char hex[STRATA_KEY_HEX_LEN + 1];
	const struct strata_entry *e = op->entry;
	const char *px = own_fmt(b, "%lld", (long long)keep_ms);
	char *buf = NULL;
	size_t len = 0;

	if (b->err == 0 && strata_entry_encode(e, &buf, &len) != 0)
		b->err = -ENOMEM;
	if (own(b, buf) == NULL)
		return;
	add_cmd(b, 5,
		(const char *[]){"SET", entry_name(b, r, &e->key), buf, "PX",
				 px},
		(const size_t[]){SIZE_MAX, SIZE_MAX, len, SIZE_MAX, SIZE_MAX});
	strata_key_hex(&e->key, hex);
	for (size_t i = 0; i < e->n_tags; i++)
		/* EVAL script 1 <tag set> <hex> <ms> */
		add_cmd(b, 6,
			(const char *[]){"EVAL", TAG_SCRIPT, "1",
					 own_fmt(b, "%s:t:%s", r->prefix,
						 e->tags[i]),
					 own_fmt(b, "%s", hex), px},
			NULL);
}

/* Append op's commands; returns how many (0: nothing to send). */
static size_t build_op(struct cmdbuf *b, const struct strata_redis *r,
		       struct strata_redis_op *op, int64_t now)
{
	size_t before = b->n;
	int64_t keep_ms;

	switch (op->kind) {
	case STRATA_REDIS_OP_GET:
		add_cmd(b, 2, (const char *[]){"GET", entry_name(b, r, op->key)},
			NULL);
		break;
	case STRATA_REDIS_OP_POLL:
		add_cmd(b, 2, (const char *[]){"GET", entry_name(b, r, op->key)},
			NULL);
		add_cmd(b, 2,
			(const char *[]){"EXISTS", lock_name(b, r, op->key)},
			NULL);
		break;
	case STRATA_REDIS_OP_SET:
		keep_ms = op->entry->keep_until - now;
		if (keep_ms > 0)
			build_set(b, r, op, keep_ms);
		break;
	case STRATA_REDIS_OP_DEL:
		add_cmd(b, 2,
			(const char *[]){"UNLINK", entry_name(b, r, op->key)},
			NULL);
		break;
	case STRATA_REDIS_OP_LOCK:
		add_cmd(b, 6,
			(const char *[]){"SET", lock_name(b, r, op->key),
					 op->token, "NX", "PX",
					 own_fmt(b, "%llu",
						 (unsigned long long)
							 op->ttl_ms)},
			NULL);
		break;
	case STRATA_REDIS_OP_UNLOCK:
		add_cmd(b, 5,
			(const char *[]){"EVAL", UNLOCK_SCRIPT, "1",
					 lock_name(b, r, op->key), op->token},
			NULL);
		break;
	case STRATA_REDIS_OP_EXTEND:
		add_cmd(b, 6,
			(const char *[]){"EVAL", EXTEND_SCRIPT, "1",
					 lock_name(b, r, op->key), op->token,
					 own_fmt(b, "%llu",
						 (unsigned long long)
							 op->ttl_ms)},
			NULL);
		break;
	case STRATA_REDIS_OP_PING:
		add_cmd(b, 1, (const char *[]){"PING"}, NULL);
		break;
	case STRATA_REDIS_OP_EXISTS:
		add_cmd(b, 2,
			(const char *[]){"EXISTS", entry_name(b, r, op->key)},
			NULL);
		break;
	}
	return b->n - before;
}

/* A GET reply: 0 with *out set, or STRATA_EMISS. */
static int parse_entry(struct strata_redis *r, const redisReply *reply,
		       const struct strata_redis_op *op,
		       struct strata_entry **out)
{
	struct strata_entry *e = NULL;

	if (reply->type == REDIS_REPLY_NIL)
		return STRATA_EMISS;
	if (reply->type != REDIS_REPLY_STRING) {
		/* WRONGTYPE, OOM...: Redis answered, the value is unusable. */
		count(&r->errors);
		return STRATA_EMISS;
	}
	if (strata_entry_decode(reply->str, reply->len, &e) != 0) {
		/* Left in place: a newer server may have written it. */
		count(&r->corrupt);
		return STRATA_EMISS;
	}
	if (!strata_key_equal(&e->key, op->key) || e->key_len != op->key_len ||
	    memcmp(e->key_text, op->key_text, op->key_len) != 0 ||
	    !(strata_entry_fresh(e, op->now) ||
	      (op->stale_ok && op->now < e->keep_until))) {
		strata_entry_release(&e);
		return STRATA_EMISS;
	}
	*out = e;
	return 0;
}

/* Whether any of n replies is an error reply (each counted). */
static bool any_error(struct strata_redis *r, redisReply **replies, size_t n)
{
	bool err = false;

	for (size_t i = 0; i < n; i++)
		if (replies[i]->type == REDIS_REPLY_ERROR) {
			count(&r->errors);
			err = true;
		}
	return err;
}

static int parse_op(struct strata_redis *r, struct strata_redis_op *op,
		    redisReply **replies, size_t n)
{
	int rc;

	if (n == 0)
		return 0; /* a SET with nothing left to keep */
	switch (op->kind) {
	case STRATA_REDIS_OP_GET:
		rc = parse_entry(r, replies[0], op, &op->found);
		count(rc == 0 ? &r->hits : &r->misses);
		return rc;
	case STRATA_REDIS_OP_POLL:
		rc = parse_entry(r, replies[0], op, &op->found);
		if (rc == 0)
			return 0;
		if (replies[1]->type == REDIS_REPLY_INTEGER &&
		    replies[1]->integer > 0)
			return -EBUSY;
		return STRATA_EMISS;
	case STRATA_REDIS_OP_SET:
		/* Redis refused (OOM, a script error): the connection is
		 * fine, this write is not. */
		if (any_error(r, replies, n))
			return STRATA_EUNAVAIL;
		count(&r->stores);
		return 0;
	case STRATA_REDIS_OP_LOCK:
		if (replies[0]->type == REDIS_REPLY_STATUS)
			return 0;
		if (replies[0]->type == REDIS_REPLY_NIL)
			return -EBUSY;
		count(&r->errors);
		return STRATA_EUNAVAIL;
	case STRATA_REDIS_OP_DEL:
	case STRATA_REDIS_OP_UNLOCK:
	case STRATA_REDIS_OP_PING:
		return any_error(r, replies, n) ? STRATA_EUNAVAIL : 0;
	case STRATA_REDIS_OP_EXISTS:
		if (replies[0]->type != REDIS_REPLY_INTEGER)
			return STRATA_EUNAVAIL;
		return replies[0]->integer > 0 ? 0 : STRATA_EMISS;
	case STRATA_REDIS_OP_EXTEND:
		if (replies[0]->type != REDIS_REPLY_INTEGER) {
			count(&r->errors);
			return STRATA_EUNAVAIL;
		}
		return replies[0]->integer > 0   ? 0
		       : replies[0]->integer < 0 ? -EBUSY
						 : STRATA_EMISS;
	}
	return STRATA_EUNAVAIL;
}

int strata_redis_batch(struct strata_redis *r, struct strata_redis_op *ops,
		       size_t n_ops)
{
	struct cmdbuf b = {0};
	size_t *first = NULL, *n_cmds = NULL, i;
	redisReply **replies = NULL;
	int64_t now = strata_wall_ms();
	int rc;

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	for (i = 0; i < n_ops; i++) {
		ops[i].rc = STRATA_EUNAVAIL;
		ops[i].found = NULL;
	}
	first = calloc(n_ops + 1, sizeof(*first));
	n_cmds = calloc(n_ops + 1, sizeof(*n_cmds));
	rc = first == NULL || n_cmds == NULL ? -ENOMEM : 0;
	for (i = 0; rc == 0 && i < n_ops; i++) {
		first[i] = b.n;
		n_cmds[i] = build_op(&b, r, &ops[i], now);
	}
	if (rc == 0)
		rc = b.err;
	if (rc == 0 && b.n > 0) {
		replies = calloc(b.n, sizeof(*replies));
		rc = replies == NULL ? -ENOMEM : run(r, b.n, b.cmds, replies);
	}
	if (rc != 0) {
		for (i = 0; i < n_ops; i++)
			ops[i].rc = rc;
		goto out;
	}
	for (i = 0; i < n_ops; i++)
		ops[i].rc = parse_op(r, &ops[i], replies + first[i],
				     n_cmds[i]);
out:
	if (replies != NULL)
		for (i = 0; i < b.n; i++)
			if (replies[i] != NULL)
				freeReplyObject(replies[i]);
	free(replies);
	free(first);
	free(n_cmds);
	cmdbuf_free(&b);
	return rc;
}

/* One operation as a batch of one. */
static int one(struct strata_redis *r, struct strata_redis_op *op)
{
	int rc = strata_redis_batch(r, op, 1);

	return rc != 0 ? rc : op->rc;
}

int strata_redis_get(struct strata_redis *r, const struct strata_key *key,
		     const char *key_text, size_t key_len, int64_t now,
		     struct strata_entry **out)
{
	struct strata_redis_op op = {.kind = STRATA_REDIS_OP_GET, .key = key,
				     .key_text = key_text, .key_len = key_len,
				     .now = now};
	int rc = one(r, &op);

	*out = op.found;
	if (rc != 0 && rc != STRATA_EMISS)
		rc = STRATA_EUNAVAIL;
	return rc;
}

int strata_redis_set(struct strata_redis *r, const struct strata_entry *e,
		     int64_t now)
{
	struct strata_redis_op op = {.kind = STRATA_REDIS_OP_SET, .entry = e};

	STRATA_ASSERT(e->magic == STRATA_ENTRY_MAGIC);
	if (e->keep_until - now <= 0)
		return 0;
	return one(r, &op);
}

int strata_redis_del(struct strata_redis *r, const struct strata_key *key)
{
	struct strata_redis_op op = {.kind = STRATA_REDIS_OP_DEL, .key = key};

	return one(r, &op);
}

int strata_redis_ping(struct strata_redis *r)
{
	struct strata_redis_op op = {.kind = STRATA_REDIS_OP_PING};

	return one(r, &op);
}

/* --- purges and the purge stream ------------------------------------------------ */

/*
 * Delete, one SCAN step at a time, the entries under ARGV[2] (a MATCH
 * pattern) whose request path starts with ARGV[3] ("" matches all); with
 * ARGV[4] "path", only those whose path is ARGV[3] itself (followed by
 * the query, the end of the line or nothing).  The
 * key text is read in place with GETRANGE (its length at offset 50, the
 * text at offset 70: docs/entry-format.md), so no value crosses the
 * network.  Returns {next cursor, deleted}.  redis.pcall: a foreign value
 * under our prefix must not abort the step.
 */
static const char SCAN_PURGE_SCRIPT[] =
	"local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], "
	"'COUNT', 1000) "
	"local want, n = ARGV[3], 0 "
	"for _, k in ipairs(r[2]) do "
	"  local del = want == '' "
	"  if not del then "
	"    local h = redis.pcall('GETRANGE', k, 50, 53) "
	"    if type(h) == 'string' and #h == 4 then "
	"      local len = struct.unpack('<I4', h) "
	"      local text = redis.pcall('GETRANGE', k, 70, 69 + len) "
	"      if type(text) == 'string' then "
	"        local sp = string.find(text, ' ', 1, true) "
	"        if sp and string.sub(text, sp + 1, sp + #want) == want "
	"        then "
	"          local nx = string.sub(text, sp + 1 + #want, sp + 1 + #want) "
	"          del = ARGV[4] ~= 'path' or nx == '' or nx == '?' "
	"            or nx == '\\n' "
	"        end "
	"      end "
	"    end "
	"  end "
	"  if del then redis.call('UNLINK', k) n = n + 1 end "
	"end "
	"return {r[1], n}";

/* Delete a tag set's members' entries, then the set; returns how many
 * entries existed.  ARGV[1] is the entry-key prefix "<prefix>:e:". */
static const char TAG_PURGE_SCRIPT[] =
	"local n = 0 "
	"for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
	"  n = n + redis.call('UNLINK', ARGV[1] .. h) "
	"end "
	"redis.call('DEL', KEYS[1]) "
	"return n";

/* One command whose reply the caller inspects.  Returns 0 (*reply owned
 * by the caller) or STRATA_EUNAVAIL. */
static int command(struct strata_redis *r, int argc, const char *const *argv,
		   const size_t *lens, redisReply **reply)
{
	struct cmdbuf b = {0};
	int rc;

	add_cmd(&b, argc, argv, lens);
	rc = b.err != 0 ? b.err : run(r, 1, b.cmds, reply);
	cmdbuf_free(&b);
	if (rc == 0 && (*reply)->type == REDIS_REPLY_ERROR) {
		count(&r->errors);
		strata_log_debug("redis %s: %s refused: %s", r->url_text,
				 argv[0], (*reply)->str);
		freeReplyObject(*reply);
		*reply = NULL;
		rc = STRATA_EUNAVAIL;
	}
	return rc;
}

/* Copy `s` escaping the glob characters of a MATCH pattern. */
static void glob_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s != '\0' && n + 3 < cap; s++) {
		if (strchr("*?[]\\", *s) != NULL)
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n] = '\0';
}

/* SCAN-delete the keys "<prefix>:<kind>:*" whose key text's path starts
 * with `path` ("" for all of them); adds how many to *removed. */
static int scan_delete(struct strata_redis *r, const char *kind,
		       const char *path, const char *mode, uint64_t *removed)
{
	char pattern[2 * PREFIX_MAX + 16], escaped[2 * PREFIX_MAX + 2];
	char cursor[32] = "0";
	redisReply *reply = NULL;
	int rc;

	glob_escape(r->prefix, escaped, sizeof(escaped));
	snprintf(pattern, sizeof(pattern), "%s:%s:*", escaped, kind);
	do {
		const char *argv[] = {"EVAL", SCAN_PURGE_SCRIPT, "0", cursor,
				      pattern, path, mode};

		rc = command(r, 7, argv, NULL, &reply);
		if (rc != 0)
			return rc;
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    reply->element[1]->type != REDIS_REPLY_INTEGER) {
			freeReplyObject(reply);
			count(&r->errors);
			return STRATA_EUNAVAIL;
		}
		snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
		*removed += (uint64_t)reply->element[1]->integer;
		freeReplyObject(reply);
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

/* A prefix or path purge, or everything (entries counted, then the tag
 * sets). */
static int scan_purge(struct strata_redis *r, const struct strata_purge *p,
		      uint64_t *removed)
{
	uint64_t tag_sets = 0;
	int rc;

	if (p->kind == STRATA_PURGE_PREFIX || p->kind == STRATA_PURGE_PATH)
		return scan_delete(r, "e", p->arg,
				   p->kind == STRATA_PURGE_PATH ? "path"
								: "prefix",
				   removed);
	rc = scan_delete(r, "e", "", "prefix", removed);
	return rc != 0 ? rc
		       : scan_delete(r, "t", "", "prefix", &tag_sets);
}

static int delete_purged(struct strata_redis *r, const struct strata_purge *p,
			 uint64_t *removed)
{
	char name[PREFIX_MAX + STRATA_PURGE_ARG_MAX + 8];
	char hex[STRATA_KEY_HEX_LEN + 1], entries[PREFIX_MAX + 4];
	redisReply *reply = NULL;
	int rc;

	switch (p->kind) {
	case STRATA_PURGE_KEY:
		strata_key_hex(&p->key, hex);
		snprintf(name, sizeof(name), "%s:e:%s", r->prefix, hex);
		rc = command(r, 2, (const char *[]){"UNLINK", name}, NULL,
			     &reply);
		break;
	case STRATA_PURGE_TAG:
		snprintf(name, sizeof(name), "%s:t:%s", r->prefix, p->arg);
		snprintf(entries, sizeof(entries), "%s:e:", r->prefix);
		rc = command(r, 5,
			     (const char *[]){"EVAL", TAG_PURGE_SCRIPT, "1",
					      name, entries},
			     NULL, &reply);
		break;
	default:
		return scan_purge(r, p, removed);
	}
	if (rc == 0 && reply->type == REDIS_REPLY_INTEGER)
		*removed += (uint64_t)reply->integer;
	if (reply != NULL)
		freeReplyObject(reply);
	return rc;
}

int strata_redis_purge(struct strata_redis *r, const struct strata_purge *p,
		       uint64_t max_len, const char *origin, char *id,
		       size_t id_cap, uint64_t *removed)
{
	char stream[PREFIX_MAX + 16], maxlen[24];
	redisReply *reply = NULL;
	int rc;

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	*removed = 0;
	if (id_cap > 0)
		id[0] = '\0';
	/* Delete first, then announce: a replica that drops its copy on
	 * the announcement must not find the old entry in Redis and
	 * promote it back. */
	rc = delete_purged(r, p, removed);
	if (rc != 0)
		return rc;
	snprintf(stream, sizeof(stream), "%s:purges", r->prefix);
	snprintf(maxlen, sizeof(maxlen), "%llu", (unsigned long long)max_len);
	rc = command(r, 12,
		     (const char *[]){"XADD", stream, "MAXLEN", "~", maxlen,
				      "*", "k", strata_purge_kind_name(p->kind),
				      "a", p->arg, "by", origin},
		     NULL, &reply);
	if (rc != 0)
		return rc;
	if (reply->type == REDIS_REPLY_STRING && id_cap > 0)
		snprintf(id, id_cap, "%s", reply->str);
	freeReplyObject(reply);
	return 0;
}

int strata_redis_epoch(struct strata_redis *r, const char *candidate,
		      char *out, size_t cap)
{
	char name[PREFIX_MAX + 16];
	redisReply *reply = NULL;
	int rc;

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	snprintf(name, sizeof(name), "%s:epoch", r->prefix);
	rc = command(r, 4, (const char *[]){"SET", name, candidate, "NX"},
		     NULL, &reply);
	if (rc != 0)
		return rc;
	freeReplyObject(reply);
	rc = command(r, 2, (const char *[]){"GET", name}, NULL, &reply);
	if (rc != 0)
		return rc;
	if (reply->type != REDIS_REPLY_STRING || reply->len == 0 ||
	    reply->len >= cap) {
		freeReplyObject(reply);
		return STRATA_EUNAVAIL;
	}
	memcpy(out, reply->str, reply->len + 1);
	freeReplyObject(reply);
	return 0;
}

int strata_redis_delete(struct strata_redis *r, const struct strata_purge *p,
			uint64_t *removed)
{
	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	*removed = 0;
	return delete_purged(r, p, removed);
}

int strata_redis_stream_id_parse(const char *s, struct strata_redis_stream_id *out)
{
	char *end;
	unsigned long long ms, seq = 0;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	ms = strtoull(s, &end, 10);
	if (*end == '-') {
		if (end[1] < '0' || end[1] > '9')
			return -EINVAL;
		seq = strtoull(end + 1, &end, 10);
	}
	if (*end != '\0' || errno != 0)
		return -EINVAL;
	out->ms = ms;
	out->seq = seq;
	return 0;
}

int strata_redis_stream_id_cmp(const struct strata_redis_stream_id *a,
			       const struct strata_redis_stream_id *b)
{
	if (a->ms != b->ms)
		return a->ms < b->ms ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

/* The id of an XINFO "first-entry" value ([id, fields] or nil). */
static bool entry_id(const redisReply *v, struct strata_redis_stream_id *out)
{
	return v->type == REDIS_REPLY_ARRAY && v->elements >= 1 &&
	       v->element[0]->type == REDIS_REPLY_STRING &&
	       strata_redis_stream_id_parse(v->element[0]->str, out) == 0;
}

int strata_redis_stream_info(struct strata_redis *r,
			     struct strata_redis_stream_info *out)
{
	char stream[PREFIX_MAX + 16];
	redisReply *reply = NULL;
	int rc;

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	memset(out, 0, sizeof(*out));
	snprintf(stream, sizeof(stream), "%s:purges", r->prefix);
	rc = command(r, 2, (const char *[]){"EXISTS", stream}, NULL, &reply);
	if (rc != 0)
		return rc;
	out->exists = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
	freeReplyObject(reply);
	if (!out->exists)
		return 0;
	rc = command(r, 3, (const char *[]){"XINFO", "STREAM", stream}, NULL,
		     &reply);
	if (rc != 0)
		return rc;
	for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY &&
			   i + 1 < reply->elements; i += 2) {
		const redisReply *name = reply->element[i];
		const redisReply *v = reply->element[i + 1];

		if (name->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(name->str, "first-entry") == 0)
			out->has_first = entry_id(v, &out->first);
		else if (strcmp(name->str, "last-generated-id") == 0 &&
			 v->type == REDIS_REPLY_STRING)
			strata_redis_stream_id_parse(v->str, &out->last);
		else if (strcmp(name->str, "length") == 0 &&
			 v->type == REDIS_REPLY_INTEGER)
			out->length = (uint64_t)v->integer;
		else if (strcmp(name->str, "entries-added") == 0 &&
			 v->type == REDIS_REPLY_INTEGER) {
			out->entries_added = (uint64_t)v->integer;
			out->has_entries_added = true;
		} else if (strcmp(name->str, "max-deleted-entry-id") == 0 &&
			 v->type == REDIS_REPLY_STRING)
			out->has_max_deleted =
				strata_redis_stream_id_parse(
					v->str, &out->max_deleted) == 0;
	}
	freeReplyObject(reply);
	return 0;
}

/* The value of field `name` in an XREAD entry's field list, or NULL. */
static const char *field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, name) == 0)
			return fields->element[i + 1]->str;
	return NULL;
}

long strata_redis_stream_read(struct strata_redis *r, const char *after,
			      unsigned block_ms, unsigned max,
			      strata_redis_purge_fn *fn, void *arg)
{
	char stream[PREFIX_MAX + 16], block[16], count_s[16];
	const redisReply *records;
	redisReply *reply = NULL;
	long n = 0;
	int rc;

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	snprintf(stream, sizeof(stream), "%s:purges", r->prefix);
	snprintf(block, sizeof(block), "%u", block_ms);
	snprintf(count_s, sizeof(count_s), "%u", max);
	rc = block_ms > 0
		? command(r, 8,
			  (const char *[]){"XREAD", "COUNT", count_s, "BLOCK",
					   block, "STREAMS", stream, after},
			  NULL, &reply)
		: command(r, 6,
			  (const char *[]){"XREAD", "COUNT", count_s,
					   "STREAMS", stream, after},
			  NULL, &reply);
	if (rc != 0)
		return rc;
	/* nil (nothing new) or [[stream, [[id, [k, v, ...]], ...]]] */
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_ARRAY ||
	    reply->element[0]->elements < 2)
		goto out;
	records = reply->element[0]->element[1];
	for (size_t i = 0; records->type == REDIS_REPLY_ARRAY &&
			   i < records->elements; i++) {
		const redisReply *rec = records->element[i];
		struct strata_purge p;
		const char *kind, *parg;

		if (rec->type != REDIS_REPLY_ARRAY || rec->elements < 2 ||
		    rec->element[0]->type != REDIS_REPLY_STRING ||
		    rec->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		kind = field(rec->element[1], "k");
		parg = field(rec->element[1], "a");
		n++;
		/* A record this version cannot read still advances the
		 * position: fn gets NULL and decides (drop everything). */
		if (kind == NULL || parg == NULL ||
		    strata_purge_parse(kind, parg, &p) != 0)
			fn(arg, rec->element[0]->str, NULL,
			   field(rec->element[1], "by"));
		else
			fn(arg, rec->element[0]->str, &p,
			   field(rec->element[1], "by"));
	}
out:
	freeReplyObject(reply);
	return n;
}

void strata_redis_stats(struct strata_redis *r,
			struct strata_redis_stats *out)
{
	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	/* Relaxed loads: independent statistics. */
	out->hits = atomic_load_explicit(&r->hits, memory_order_relaxed);
	out->misses = atomic_load_explicit(&r->misses, memory_order_relaxed);
	out->corrupt = atomic_load_explicit(&r->corrupt, memory_order_relaxed);
	out->stores = atomic_load_explicit(&r->stores, memory_order_relaxed);
	out->errors = atomic_load_explicit(&r->errors, memory_order_relaxed);
	out->fast_fails =
		atomic_load_explicit(&r->fast_fails, memory_order_relaxed);
	out->reconnects =
		atomic_load_explicit(&r->reconnects, memory_order_relaxed);
	out->state = (enum strata_redis_state)atomic_load_explicit(
		&r->state, memory_order_relaxed);
}
