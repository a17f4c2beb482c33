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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

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
	unsigned backoff_min_ms;
	unsigned backoff_max_ms;
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

/* Copy `url` with any password replaced by "***". */
static void mask_url(const char *url, char *buf, size_t len)
{
	const char *scheme = strstr(url, "://");
	const char *auth = scheme != NULL ? scheme + 3 : NULL;
	const char *at = auth != NULL ? strchr(auth, '@') : NULL;
	const char *slash = auth != NULL ? strchr(auth, '/') : NULL;
	const char *colon;

	if (at == NULL || (slash != NULL && slash < at)) {
		snprintf(buf, len, "%s", url);
		return;
	}
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL) {
		snprintf(buf, len, "%s", url);
		return;
	}
	snprintf(buf, len, "%.*s:***%s", (int)(colon - url), url, at);
}

static int url_error(const char *url, char *err, size_t err_len,
		     const char *problem)
{
	char masked[512];

	if (err != NULL && err_len > 0) {
		mask_url(url, masked, sizeof(masked));
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
	if (redisSetTimeout(r->ctx, tv) != REDIS_OK) {
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
				     memory_order_relaxed) != STRATA_REDIS_DOWN)
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
	mask_url(cfg->url, r->url_text, sizeof(r->url_text));
	r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	r->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms
						: DEFAULT_BACKOFF_MIN_MS;
	r->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms
						: DEFAULT_BACKOFF_MAX_MS;
	if (r->backoff_max_ms < r->backoff_min_ms)
		r->backoff_max_ms = r->backoff_min_ms;
	r->transport = &single_transport;

	if (connect_once(r, why, sizeof(why)) == 0) {
		atomic_init(&r->state, STRATA_REDIS_UP);
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

/* --- tier operations ----------------------------------------------------------- */

/* "<prefix>:e:<hex>" into buf (at least PREFIX_MAX + 40 bytes). */
static size_t entry_key(const struct strata_redis *r,
			const struct strata_key *key, char *buf, size_t len)
{
	char hex[STRATA_KEY_HEX_LEN + 1];

	strata_key_hex(key, hex);
	return (size_t)snprintf(buf, len, "%s:e:%s", r->prefix, hex);
}

int strata_redis_get(struct strata_redis *r, const struct strata_key *key,
		     const char *key_text, size_t key_len, int64_t now,
		     struct strata_entry **out)
{
	char name[PREFIX_MAX + 48];
	const char *argv[2] = {"GET", name};
	size_t lens[2] = {3, 0};
	struct redis_cmd cmd = {.argc = 2, .argv = argv, .lens = lens};
	struct strata_entry *e = NULL;
	redisReply *reply = NULL;
	int rc;

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	*out = NULL;
	lens[1] = entry_key(r, key, name, sizeof(name));
	rc = run(r, 1, &cmd, &reply);
	if (rc != 0)
		return rc;
	rc = STRATA_EMISS;
	if (reply->type == REDIS_REPLY_NIL)
		goto out;
	if (reply->type != REDIS_REPLY_STRING) {
		/* WRONGTYPE, OOM...: Redis answered, the value is unusable. */
		count(&r->errors);
		goto out;
	}
	if (strata_entry_decode(reply->str, reply->len, &e) != 0) {
		count(&r->corrupt);
		goto out;
	}
	if (!strata_key_equal(&e->key, key) || e->key_len != key_len ||
	    memcmp(e->key_text, key_text, key_len) != 0 ||
	    !strata_entry_fresh(e, now)) {
		strata_entry_release(&e);
		goto out;
	}
	*out = e;
	rc = 0;
out:
	freeReplyObject(reply);
	count(rc == 0 ? &r->hits : &r->misses);
	return rc;
}

int strata_redis_set(struct strata_redis *r, const struct strata_entry *e,
		     int64_t now)
{
	char name[PREFIX_MAX + 48], hex[STRATA_KEY_HEX_LEN + 1], px[24];
	const char *set_argv[5] = {"SET", name, NULL, "PX", px};
	size_t set_lens[5] = {3, 0, 0, 2, 0};
	struct redis_cmd *cmds = NULL;
	const char **tag_argv = NULL;
	size_t *tag_lens = NULL;
	char **tag_names = NULL;
	redisReply **replies = NULL;
	char *buf = NULL;
	size_t len, i, n;
	int64_t keep_ms = e->keep_until - now;
	int rc;

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	STRATA_ASSERT(e->magic == STRATA_ENTRY_MAGIC);
	if (keep_ms <= 0)
		return 0;
	rc = strata_entry_encode(e, &buf, &len);
	if (rc != 0)
		return rc;
	n = 1 + e->n_tags;
	rc = -ENOMEM;
	cmds = calloc(n, sizeof(*cmds));
	replies = calloc(n, sizeof(*replies));
	tag_argv = calloc(e->n_tags * 6 + 1, sizeof(*tag_argv));
	tag_lens = calloc(e->n_tags * 6 + 1, sizeof(*tag_lens));
	tag_names = calloc(e->n_tags + 1, sizeof(*tag_names));
	if (cmds == NULL || replies == NULL || tag_argv == NULL ||
	    tag_lens == NULL || tag_names == NULL)
		goto out;

	strata_key_hex(&e->key, hex);
	set_lens[1] = entry_key(r, &e->key, name, sizeof(name));
	set_argv[2] = buf;
	set_lens[2] = len;
	set_lens[4] = (size_t)snprintf(px, sizeof(px), "%lld",
				       (long long)keep_ms);
	cmds[0] = (struct redis_cmd){5, set_argv, set_lens};
	for (i = 0; i < e->n_tags; i++) {
		const char **argv = tag_argv + i * 6;
		size_t *lens = tag_lens + i * 6;

		if (asprintf(&tag_names[i], "%s:t:%s", r->prefix,
			     e->tags[i]) < 0) {
			tag_names[i] = NULL;
			goto out;
		}
		/* EVAL script 1 <tag set> <hex> <ms> */
		argv[0] = "EVAL";
		argv[1] = TAG_SCRIPT;
		argv[2] = "1";
		argv[3] = tag_names[i];
		argv[4] = hex;
		argv[5] = px;
		for (int j = 0; j < 6; j++)
			lens[j] = strlen(argv[j]);
		cmds[1 + i] = (struct redis_cmd){6, argv, lens};
	}
	rc = run(r, n, cmds, replies);
	if (rc != 0)
		goto out;
	for (i = 0; i < n; i++)
		if (replies[i]->type == REDIS_REPLY_ERROR) {
			/* Redis refused (OOM, a script error): the
			 * connection is fine, this write is not. */
			count(&r->errors);
			rc = STRATA_EUNAVAIL;
		}
	if (replies[0]->type != REDIS_REPLY_ERROR)
		count(&r->stores);
out:
	if (replies != NULL)
		for (i = 0; i < n; i++)
			if (replies[i] != NULL)
				freeReplyObject(replies[i]);
	if (tag_names != NULL)
		for (i = 0; i < e->n_tags; i++)
			free(tag_names[i]);
	free(tag_names);
	free(tag_lens);
	free(tag_argv);
	free(replies);
	free(cmds);
	free(buf);
	return rc;
}

/* One command whose reply only needs to be "not an error". */
static int simple(struct strata_redis *r, int argc, const char **argv,
		  const size_t *lens)
{
	struct redis_cmd cmd = {.argc = argc, .argv = argv, .lens = lens};
	redisReply *reply = NULL;
	int rc = run(r, 1, &cmd, &reply);

	if (rc != 0)
		return rc;
	if (reply->type == REDIS_REPLY_ERROR) {
		count(&r->errors);
		rc = STRATA_EUNAVAIL;
	}
	freeReplyObject(reply);
	return rc;
}

int strata_redis_del(struct strata_redis *r, const struct strata_key *key)
{
	char name[PREFIX_MAX + 48];
	const char *argv[2] = {"DEL", name};
	size_t lens[2] = {3, 0};

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	lens[1] = entry_key(r, key, name, sizeof(name));
	return simple(r, 2, argv, lens);
}

int strata_redis_ping(struct strata_redis *r)
{
	const char *argv[1] = {"PING"};
	size_t lens[1] = {4};

	STRATA_ASSERT(r->magic == REDIS_MAGIC);
	return simple(r, 1, argv, lens);
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
