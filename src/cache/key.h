/*
 * key.h: cache keys.
 *
 * A key has a text and a hash.  The text is canonical: two requests that
 * must share a cache entry produce byte-identical texts, and two that must
 * not, never do.  It is, line by line (LF-terminated):
 *
 *   <METHOD> <path>[?<query>]
 *   <vary-name-lowercase>: <value>     one line per route `vary` header,
 *   <vary-name-lowercase>!             in route order ("!" = absent)
 *
 * METHOD is the cache method: HEAD is keyed as GET, so a HEAD is answered
 * from the GET entry.  The query depends on the route's query mode: raw
 * (as received, byte for byte and in order, the default), ignored
 * (dropped with its "?"), or kept (only the listed parameters, sorted by
 * name then value, joined with "&", "?" dropped when none is left).  For
 * KEEP the query is split on "&"; a parameter's name is the bytes before
 * its first "=" (all of it when there is none), compared exactly: no
 * percent-decoding, no case folding, so "a%62" is not "ab".  Empty
 * parameters ("&&") carry nothing and are dropped.  Repeated vary headers
 * are joined with ", " in arrival order.
 *
 * The hash is XXH3-128 of the text (xxHash), written as 16 bytes in
 * canonical (big-endian) order; its 32-character lowercase hex form names
 * an entry in every tier and in the admin API.  The text is stored in the
 * entry and compared on every hit, so a hash collision costs a miss, never
 * a wrong answer.
 *
 * Pure functions: thread-safe, no locks.  Building writes into a caller's
 * buffer so a cache hit need not allocate.
 */
#ifndef STRATA_CACHE_KEY_H
#define STRATA_CACHE_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define STRATA_KEY_HASH_LEN 16
#define STRATA_KEY_HEX_LEN 32

struct strata_key {
	uint8_t hash[STRATA_KEY_HASH_LEN];
};

enum strata_query_mode {
	STRATA_QUERY_RAW = 0,   /* the query as received */
	STRATA_QUERY_IGNORE,    /* no query in the key */
	STRATA_QUERY_KEEP,      /* only the listed parameters, sorted */
};

/* How a route builds keys: borrowed from the route table. */
struct strata_key_rule {
	enum strata_query_mode query;
	const char *const *query_keep; /* parameter names, for KEEP */
	size_t n_query_keep;
	const char *const *vary;       /* header names, route order */
	size_t n_vary;
};

/* The most kept query parameters a KEEP rule sorts (see strata_key_text). */
#define STRATA_KEY_MAX_KEPT 64

/* Room a header function gets to join repeated values in (NUL included). */
#define STRATA_KEY_JOIN_MAX 8192

/*
 * Header lookup used for vary: all values of `name` (matched ignoring
 * case) joined with ", " in arrival order, NUL-terminated, or NULL when
 * the request has no such header.  A single value may be returned from the
 * function's own storage; values that must be joined are written into
 * `buf` (`cap` bytes, STRATA_KEY_JOIN_MAX) and `buf` is returned.  When
 * the joined text does not fit, the function returns
 * STRATA_KEY_HEADER_TOOBIG; it must never truncate, since a cut value
 * would let two different requests share a key.  The result is read
 * before the next call.
 */
typedef const char *(*strata_key_header_fn)(void *arg, const char *name,
					    char *buf, size_t cap);

/* The "joined value does not fit" answer of a strata_key_header_fn. */
extern const char strata_key_header_toobig[1];
#define STRATA_KEY_HEADER_TOOBIG (&strata_key_header_toobig[0])

/*
 * Build the key text for a request into `buf` (`cap` bytes), NUL-terminate
 * it and set *len to its length (NUL excluded).  `rule` may be NULL: raw
 * query, no vary.  `target` is the raw request target (path and query),
 * `method` the request method.  `header` may be NULL only when the rule
 * has no vary headers (a bug otherwise: STRATA_ASSERT).  Never allocates.
 *
 * Returns 0 or:
 *   -ENOSPC  `cap` is too small; *len is then the buffer size needed (text
 *            length + 1 for the NUL), so the caller can retry with that;
 *   -EINVAL  the target is not origin-form ("/" first; no space, control
 *            byte or "#"), the method is not an HTTP token, or a vary
 *            value holds CR or LF (any of which would make the text
 *            ambiguous);
 *   -E2BIG   the request cannot be keyed: more than STRATA_KEY_MAX_KEPT
 *            parameters survive a KEEP rule, or a header function answered
 *            STRATA_KEY_HEADER_TOOBIG.  The caller passes such a request
 *            through uncached; keying it by a prefix would be wrong, and
 *            sorting it would need memory a hit must not allocate.
 * On error the contents of `buf` are unspecified.  Thread-safe.
 */
int strata_key_text(const struct strata_key_rule *rule, const char *method,
		    const char *target, strata_key_header_fn header,
		    void *header_arg, char *buf, size_t cap, size_t *len);

/* Hash a key text. */
void strata_key_hash(const char *text, size_t len, struct strata_key *out);

/* Lowercase hex of the hash, NUL-terminated (33 bytes). */
void strata_key_hex(const struct strata_key *key,
		    char hex[STRATA_KEY_HEX_LEN + 1]);

/* The value of a hex digit (either case), or -1. */
int strata_hex_digit(char c);

/* Parse exactly 32 hex digits (either case) followed by the end of the
 * string.  Returns 0 or -EINVAL (*out is then untouched). */
int strata_key_from_hex(const char *hex, struct strata_key *out);

/*
 * memcmp, not two uint64_t loads: a struct strata_key is only byte-aligned
 * (it may sit anywhere in a tier's record), and compilers turn a 16-byte
 * memcmp into the same two loads where that is safe.
 */
static inline bool strata_key_equal(const struct strata_key *a,
				    const struct strata_key *b)
{
	return memcmp(a->hash, b->hash, STRATA_KEY_HASH_LEN) == 0;
}

#endif /* STRATA_CACHE_KEY_H */
