/*
 * entry.h: a cached response.
 *
 * An entry is immutable once built and reference-counted: whoever holds a
 * pointer holds a reference.  strata_entry_new() and strata_entry_decode()
 * return the first reference; strata_entry_ref() takes another;
 * strata_entry_release() drops one and NULLs the caller's pointer; the
 * last release frees the entry.  Since nothing changes after publication,
 * any number of threads may read an entry they hold a reference to without
 * locks; the response body can be handed to libmicrohttpd as it is, with a
 * reference released by the response's free callback.
 *
 * An entry is one allocation: the struct, then its header array, strings,
 * tags and body, so building copies each input once and freeing is one
 * free().
 *
 * Times are absolute wall-clock milliseconds since the epoch (tiers on
 * other hosts and after restarts must agree on them): `created`, `expires`
 * (end of freshness: only a fresh entry is served as a hit) and
 * `keep_until` (end of storage, >= expires; tiers may drop the entry then).
 *
 * Encoding: strata_entry_encode()/strata_entry_decode() write and read the
 * one versioned binary form (docs/entry-format.md) that the disk and Redis
 * tiers store.  Decoding is bounds-checked and rejects truncated,
 * oversized, or corrupt input with STRATA_ECORRUPT.
 */
#ifndef STRATA_CACHE_ENTRY_H
#define STRATA_CACHE_ENTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/key.h"
#include "core/http.h"

#define STRATA_ENTRY_MAGIC 0x454e5452u /* "ENTR" */

/* Limits enforced by new and decode (a decoder must not trust lengths). */
#define STRATA_ENTRY_MAX_HEADERS 1024
#define STRATA_ENTRY_MAX_TAGS 256
#define STRATA_ENTRY_MAX_KEY_TEXT (64u * 1024u)
#define STRATA_ENTRY_MAX_BODY (1024u * 1024u * 1024u)

/*
 * Bytes charged per entry on top of its allocation: a tier's index node
 * (hash-table slot, LRU links) and malloc's own header, which are not part
 * of the entry's allocation but do grow with the number of entries.  An
 * estimate, the same for every tier, so that a budget of many tiny entries
 * is not wildly exceeded.
 */
#define STRATA_ENTRY_INDEX_OVERHEAD 64u

struct strata_entry {
	uint32_t magic;
	atomic_uint refcnt;          /* owned by entry.c: use ref/release */
	atomic_uint_fast64_t hits;   /* answers served from this copy (a
					statistic for the admin API; not
					stored, not shared between tiers) */
	struct strata_key key;
	unsigned status;
	int64_t created;             /* wall-clock ms */
	int64_t expires;
	int64_t keep_until;
	const char *key_text;        /* NUL-terminated, key_len bytes */
	size_t key_len;
	const char *route;           /* route name, NUL-terminated */
	const struct strata_header *headers; /* hop-by-hop already removed */
	size_t n_headers;
	const char *const *tags;
	size_t n_tags;
	const char *body;            /* body_len bytes (not NUL-terminated) */
	size_t body_len;
	size_t charge;               /* bytes counted against tier budgets:
					the allocation size plus
					STRATA_ENTRY_INDEX_OVERHEAD */
};

/* What an entry is built from; everything is copied. */
struct strata_entry_params {
	/* NULL: hashed from key_text.  Not checked against the text, so an
	 * answer that is never stored may carry any key; but the encoding of
	 * an entry whose key is not its text's hash is refused by decode, so
	 * such an entry must not reach the disk or Redis tier. */
	const struct strata_key *key;
	const char *key_text;        /* key_len bytes, no NUL among them */
	size_t key_len;
	const char *route;           /* NULL: "" */
	unsigned status;             /* three digits: 100-999 */
	int64_t created;
	int64_t expires;
	int64_t keep_until;          /* 0: same as expires */
	const struct strata_headers *headers; /* NULL: none */
	const char *const *tags;
	size_t n_tags;
	const char *body;            /* may be NULL when body_len is 0 */
	size_t body_len;
};

/*
 * Build an entry (one reference).  Returns 0, -ENOMEM or -EINVAL: limits
 * above, keep_until < expires, status not three digits, a NUL in the key
 * text, a NULL string, or a string longer than 4 GiB (the encoding's
 * lengths are 32-bit).
 */
int strata_entry_new(const struct strata_entry_params *p,
		     struct strata_entry **out);

/* Take another reference (relaxed increment); returns `e`.  The caller
 * must already hold one. */
struct strata_entry *strata_entry_ref(struct strata_entry *e);

/* Drop a reference, free on the last, set *e to NULL.  Accepts NULL and a
 * pointer to NULL.  An entry with a bad magic is a bug: STRATA_ASSERT. */
void strata_entry_release(struct strata_entry **e);

/* Count an answer served from `e`.  Relaxed: a statistic that orders
 * nothing; it shares the cache line that strata_entry_ref() already
 * writes on every hit, so it adds no new sharing. */
static inline void strata_entry_hit(struct strata_entry *e)
{
	atomic_fetch_add_explicit(&e->hits, 1, memory_order_relaxed);
}

/* Fresh at `now` (wall ms): now < expires. */
static inline bool strata_entry_fresh(const struct strata_entry *e,
				      int64_t now)
{
	return now < e->expires;
}

/* Whole seconds of freshness left, rounded down (0 when stale). */
int64_t strata_entry_ttl_s(const struct strata_entry *e, int64_t now);

/* Age in whole seconds since `created`, rounded down (RFC 9111 section
 * 5.1), never negative: a clock that stepped back gives 0. */
int64_t strata_entry_age_s(const struct strata_entry *e, int64_t now);

/* First value of a stored header (name matched ignoring case), borrowed
 * from the entry, or NULL. */
const char *strata_entry_header(const struct strata_entry *e,
				const char *name);

/*
 * Encode into a new malloc'd buffer (*buf, *len; the caller frees it).
 * Returns 0 or -ENOMEM.
 */
int strata_entry_encode(const struct strata_entry *e, char **buf,
			size_t *len);

/*
 * Decode bytes produced by strata_entry_encode (of any supported version)
 * into a new entry (one reference).  Never reads outside [buf, buf+len),
 * never trusts a length before checking it, keeps no state and asserts
 * nothing about the input, so a fuzzer may call it directly.  Returns 0,
 * STRATA_ECORRUPT (too short, bad magic, unknown version or flags,
 * lengths past the end or over the limits, trailing bytes, checksum
 * mismatch, keep_until < expires, status out of range, a NUL inside a
 * string, or a key hash that is not the hash of the key text) or -ENOMEM.
 * *out is NULL on error.
 */
int strata_entry_decode(const void *buf, size_t len,
			struct strata_entry **out);

#endif /* STRATA_CACHE_ENTRY_H */
