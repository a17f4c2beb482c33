/*
 * redis.h: tier 3, a Redis cache shared by a fleet of Strata servers.
 *
 * Entries are stored in the entry encoding (docs/entry-format.md, which
 * carries its own version) under keys that carry a key-format version:
 *
 *   <prefix>:e:<hex>     the encoded entry, with a PX expiry at keep_until
 *   <prefix>:t:<tag>     a set of <hex> key hashes carrying that tag, with
 *                        an expiry no shorter than any member's
 *   <prefix>:l:<hex>     a fill lock: the id of the instance fetching the
 *                        entry from the origin for the whole fleet
 *   <prefix>:purges      the purge stream: one record per purge, fields
 *                        k (kind), a (argument), by (instance), capped
 *                        with XADD MAXLEN ~
 *   <prefix>:epoch       a random id naming this dataset (see
 *                        strata_redis_epoch())
 *
 * <hex> is the 32-digit lowercase key hash.  An incompatible change to
 * what is stored under a key (a new entry-format major version that old
 * servers cannot decode, a different tag scheme) uses a new letter or a
 * version segment ("<prefix>:e2:<hex>"), so old and new servers can share
 * one Redis during a rolling upgrade without reading each other's values.
 *
 * The connection is blocking, one per tier object, guarded by a circuit
 * breaker: a connection or I/O failure marks the tier `down`; while down,
 * every call fails at once with STRATA_EUNAVAIL until a backoff (100 ms,
 * doubling to 5 s) allows one reconnect attempt from the next call.  State
 * changes are logged once each (warn when going down, info when back),
 * never per request.  The password is never logged.
 *
 * Thread safety: every operation is synchronous and blocks for up to the
 * configured timeout, so the tier is meant to be driven by one dedicated
 * Redis worker thread.  Operations on one tier object must not run
 * concurrently (no lock is taken).  strata_redis_stats() alone may be
 * called from any thread at any time: the counters are atomics.
 *
 * This file pair is the only place that includes <hiredis/hiredis.h>.
 */
#ifndef STRATA_TIER_REDIS_H
#define STRATA_TIER_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "cache/purge.h"

struct strata_redis;

/* Longest host name and unix socket path accepted in a URL. */
#define STRATA_REDIS_HOST_MAX 255
#define STRATA_REDIS_PATH_MAX 107 /* sun_path minus the NUL */

/* Where a Redis is and how to log in: the parsed URL. */
struct strata_redis_url {
	bool is_unix;                          /* unix:// (path) or TCP */
	char host[STRATA_REDIS_HOST_MAX + 1];  /* TCP: name or address */
	unsigned port;                         /* TCP: default 6379 */
	char path[STRATA_REDIS_PATH_MAX + 1];  /* unix: socket path */
	char user[64];                         /* "" : AUTH password only */
	char password[256];                    /* "" : no AUTH */
	unsigned db;                           /* SELECT; default 0 */
};

/*
 * Parse "redis://[[user]:password@]host[:port][/db]" (host may be an IPv6
 * address in brackets) or "unix:///path/to.sock[?db=N]".  Returns 0, or
 * STRATA_ECONFIG with a message in `err` (may be NULL) that names the URL
 * (password masked) and says what to write instead.  No percent-decoding.
 */
int strata_redis_url_parse(const char *url, struct strata_redis_url *out,
			   char *err, size_t err_len);

/*
 * Copy `url` for a message or a report with its credentials masked:
 * whatever precedes the last '@' after the scheme is credentials,
 * whatever its shape, so a malformed URL leaks no password either; a user
 * name before the first ':' is kept ("redis://u:***@host").  unix://
 * URLs have no credentials and are copied as they are.
 */
void strata_redis_url_mask(const char *url, char *buf, size_t len);

struct strata_redis_config {
	const char *url;          /* as for strata_redis_url_parse() */
	const char *prefix;       /* key prefix; NULL or "": "strata" */
	unsigned timeout_ms;      /* connect and per-command; 0: 250 */
	unsigned block_ms;        /* longest XREAD BLOCK this connection
				     issues (added to its read timeout) */
	bool quiet;               /* do not log up/down transitions (one
				     connection of a pool speaks for all) */
	unsigned backoff_min_ms;  /* first reconnect delay; 0: 100 */
	unsigned backoff_max_ms;  /* reconnect delay cap; 0: 5000 */
};

enum strata_redis_state {
	STRATA_REDIS_UP = 0,      /* connected: commands are sent */
	STRATA_REDIS_DOWN = 1,    /* failing fast until the next attempt */
};

struct strata_redis_stats {
	uint64_t hits;
	uint64_t misses;          /* absent, expired, other key, corrupt */
	uint64_t corrupt;         /* values that failed decoding (also misses) */
	uint64_t stores;          /* SETs acknowledged */
	uint64_t errors;          /* failed commands, connects and error replies */
	uint64_t fast_fails;      /* calls refused while down */
	uint64_t reconnects;      /* successful connects after being down */
	enum strata_redis_state state;
};

/*
 * Create the tier and try to connect (AUTH, SELECT).  A Redis that cannot
 * be reached or refuses the login does not fail the open: the tier starts
 * down (logged) and retries as described above.  Returns 0; STRATA_ECONFIG
 * for a bad URL or prefix (logged with the fix); -ENOMEM.
 * Release with strata_redis_close().
 */
int strata_redis_open(const struct strata_redis_config *cfg,
		      struct strata_redis **out);

/* Disconnect and free; *r = NULL.  Accepts NULL and a pointer to NULL. */
void strata_redis_close(struct strata_redis **r);

/*
 * GET <prefix>:e:<hex of key>.  On a hit (a value that decodes, for the
 * same key text, fresh at `now` wall ms) stores a new entry (one
 * reference: the caller releases it with strata_entry_release()) in *out
 * and returns 0.  Returns STRATA_EMISS when absent, stale, for another key
 * text or undecodable (counted as corrupt; left in place, since a newer
 * server may have written it); STRATA_EUNAVAIL when Redis is down or the
 * command failed.  *out is NULL unless 0 is returned.
 */
int strata_redis_get(struct strata_redis *r, const struct strata_key *key,
		     const char *key_text, size_t key_len, int64_t now,
		     struct strata_entry **out);

/*
 * Store `e` (borrowed) with one round trip: SET <prefix>:e:<hex> <encoded>
 * PX <keep_until - now>, and for each tag SADD <prefix>:t:<tag> <hex>
 * raising (never lowering) that set's expiry to the entry's.  An entry
 * with nothing left to keep (keep_until <= now) is not sent: returns 0.
 * Returns 0, STRATA_EUNAVAIL (down, failed, or Redis refused the write,
 * e.g. out of memory) or -ENOMEM.
 */
int strata_redis_set(struct strata_redis *r, const struct strata_entry *e,
		     int64_t now);

/* DEL <prefix>:e:<hex>.  Returns 0 (whether or not it existed) or
 * STRATA_EUNAVAIL.  Tag sets are not touched: a member whose entry is
 * gone is harmless and expires with its set. */
int strata_redis_del(struct strata_redis *r, const struct strata_key *key);

/* PING.  Returns 0 or STRATA_EUNAVAIL.  Like every call, it may attempt a
 * reconnect when the backoff allows one. */
int strata_redis_ping(struct strata_redis *r);

/*
 * Batches: several operations sent in one round trip (pipelined), each
 * with its own result.  The kinds and their results (op->rc):
 *   GET     GET <prefix>:e:<hex>: 0 with op->found (a new reference the
 *           caller releases), or STRATA_EMISS as for strata_redis_get().
 *   POLL    GET the entry and EXISTS its lock: 0 with op->found; -EBUSY
 *           while the lock is held (another instance is filling);
 *           STRATA_EMISS when neither is there (the fill failed or was
 *           not storable).
 *   SET     as strata_redis_set(), keep time computed at the call.
 *   DEL     UNLINK the entry.
 *   LOCK    SET <prefix>:l:<hex> <token> NX PX <ttl_ms>: 0 when taken,
 *           -EBUSY when another holds it.
 *   UNLOCK  delete the lock if it still holds `token` (compare-and-delete
 *           in one script: an expired lock taken by another is left).
 *   EXTEND  PEXPIRE the lock to ttl_ms if it still holds `token`
 *           (compare-and-extend in one script, so another instance's lock
 *           is never touched): 0 when extended, -EBUSY when another
 *           instance holds it, STRATA_EMISS when it is gone.
 *   PING.
 * Any op may also end STRATA_EUNAVAIL (down, failed, Redis refused) or
 * -ENOMEM.
 */
enum strata_redis_op_kind {
	STRATA_REDIS_OP_GET,
	STRATA_REDIS_OP_POLL,
	STRATA_REDIS_OP_SET,
	STRATA_REDIS_OP_DEL,
	STRATA_REDIS_OP_LOCK,
	STRATA_REDIS_OP_UNLOCK,
	STRATA_REDIS_OP_PING,
	STRATA_REDIS_OP_EXISTS,   /* 0 when the entry key exists, else
				     STRATA_EMISS */
	STRATA_REDIS_OP_EXTEND,
};

struct strata_redis_op {
	enum strata_redis_op_kind kind;
	const struct strata_key *key;        /* all but SET, PING */
	const char *key_text;                /* GET, POLL */
	size_t key_len;
	int64_t now;                         /* GET, POLL: freshness */
	bool stale_ok;                       /* GET: also an expired entry
						still kept (now < keep_until):
						the caller checks freshness */
	const struct strata_entry *entry;    /* SET (borrowed) */
	const char *token;                   /* LOCK, UNLOCK, EXTEND */
	uint64_t ttl_ms;                     /* LOCK, EXTEND */
	int rc;                              /* out */
	struct strata_entry *found;          /* out: GET, POLL (owned) */
};

/*
 * Run `n` operations in one round trip, in order.  Sets every op's rc
 * (and `found`).  Returns 0 when the batch was exchanged (look at each
 * rc), or the error every op got (STRATA_EUNAVAIL when down or the
 * connection failed, -ENOMEM).
 */
int strata_redis_batch(struct strata_redis *r, struct strata_redis_op *ops,
		       size_t n);

/*
 * Purge `p` from Redis for the whole fleet: delete what it names (KEY:
 * the entry; TAG: the tag set's entries and the set; PREFIX: a SCAN of
 * the entries, matching key texts in place with a script, no value sent
 * back; ALL: every entry and tag set under the prefix), then append the
 * purge to the stream, which keeps about `max_len` records.  `origin`
 * names this instance in the record.  On success writes the record's id
 * to `id` and the entries deleted to *removed.  Returns 0,
 * STRATA_EUNAVAIL or -ENOMEM.  PREFIX and ALL take one round trip per
 * 1000 keys of the database scanned.  The scripts build key names from
 * their arguments, which Redis Cluster forbids: a cluster transport will
 * run them per node.
 */
int strata_redis_purge(struct strata_redis *r, const struct strata_purge *p,
		       uint64_t max_len, const char *origin, char *id,
		       size_t id_cap, uint64_t *removed);

/* Delete what `p` names from Redis only, announcing nothing (a flush of
 * the Redis tier alone).  Returns 0 or STRATA_EUNAVAIL. */
int strata_redis_delete(struct strata_redis *r, const struct strata_purge *p,
			uint64_t *removed);

/*
 * The dataset's epoch: <prefix>:epoch, set to `candidate` if it does not
 * exist yet (SET NX), then read back into `out`.  A Redis that lost its
 * data (restarted empty, flushed) has a new epoch, so a purge-stream
 * position recorded under the old one is known to be meaningless.
 * Returns 0 or STRATA_EUNAVAIL.
 */
int strata_redis_epoch(struct strata_redis *r, const char *candidate,
		       char *out, size_t cap);

/* A stream id, "<ms>-<seq>". */
struct strata_redis_stream_id {
	uint64_t ms;
	uint64_t seq;
};

/* Parse "<ms>-<seq>" or "<ms>".  Returns 0 or -EINVAL. */
int strata_redis_stream_id_parse(const char *s,
				 struct strata_redis_stream_id *out);

/* <0, 0, >0 as a is before, equal to, after b. */
int strata_redis_stream_id_cmp(const struct strata_redis_stream_id *a,
			       const struct strata_redis_stream_id *b);

struct strata_redis_stream_info {
	bool exists;
	bool has_first;                       /* the stream has records */
	struct strata_redis_stream_id first;  /* oldest record kept */
	struct strata_redis_stream_id last;   /* last id ever added */
	bool has_max_deleted;                 /* Redis 7: trimmed up to */
	struct strata_redis_stream_id max_deleted;
	uint64_t length;                      /* records kept */
	bool has_entries_added;               /* Redis 7 */
	uint64_t entries_added;               /* records ever added */
};

/* XINFO STREAM of the purge stream.  Returns 0 (exists false when there
 * is no stream yet) or STRATA_EUNAVAIL. */
int strata_redis_stream_info(struct strata_redis *r,
			     struct strata_redis_stream_info *out);

/* One purge record: its id, the purge (NULL when this version cannot
 * read the record: the caller should drop everything shared), and the
 * instance that made it (may be NULL).  All borrowed for the call. */
typedef void strata_redis_purge_fn(void *arg, const char *id,
				   const struct strata_purge *p,
				   const char *origin);

/*
 * XREAD up to `max` purge records after id `after` ("0" for all),
 * waiting up to block_ms (0: do not wait; block_ms must not exceed the
 * config's block_ms).  Calls fn for each, in order.  Returns how many, or
 * STRATA_EUNAVAIL.
 */
long strata_redis_stream_read(struct strata_redis *r, const char *after,
			      unsigned block_ms, unsigned max,
			      strata_redis_purge_fn *fn, void *arg);

/* A snapshot of the counters (relaxed loads: each is exact, the set is
 * not one instant).  Any thread. */
void strata_redis_stats(struct strata_redis *r,
			struct strata_redis_stats *out);

#endif /* STRATA_TIER_REDIS_H */
