/*
 * purge.h: what a purge removes, as one value that every tier and every
 * replica understands.
 *
 * A purge names one entry (by key hash), every variant of one path (any
 * method, query or vary header), every entry whose request path starts
 * with a prefix, every entry carrying a tag, or everything.  The
 * same description drives the local tiers (memory, disk), the Redis tier
 * and the fleet's purge stream, where it travels as two short strings
 * (strata_purge_kind_name() and `arg`).
 *
 * Pure functions over borrowed values: thread-safe, no allocation.
 */
#ifndef STRATA_CACHE_PURGE_H
#define STRATA_CACHE_PURGE_H

#include <stdbool.h>
#include <stddef.h>

#include "cache/entry.h"
#include "cache/key.h"

enum strata_purge_kind {
	STRATA_PURGE_KEY,     /* arg: 32 hex digits of the key hash */
	STRATA_PURGE_PREFIX,  /* arg: path prefix, "/" first ("/api/") */
	STRATA_PURGE_TAG,     /* arg: a tag (no spaces) */
	STRATA_PURGE_ALL,     /* arg: "" */
	STRATA_PURGE_PATH,    /* arg: a path, "/" first: every variant of
				 it (any method, query or vary header) */
};
/* How many kinds there are (for tables indexed by kind). */
#define STRATA_PURGE_KINDS (STRATA_PURGE_PATH + 1)

/* Longest argument accepted (a path prefix or a tag). */
#define STRATA_PURGE_ARG_MAX 1024

struct strata_purge {
	enum strata_purge_kind kind;
	const char *arg;            /* borrowed, NUL-terminated */
	struct strata_key key;      /* KEY: parsed from arg */
};

/*
 * Fill `p` from a kind name ("key", "path", "prefix", "tag", "all") and its
 * argument (borrowed: it must outlive `p`).  Returns 0, or -EINVAL for an
 * unknown kind or a bad argument (a key that is not 32 hex digits, a
 * prefix that does not start with "/", an empty tag or one with
 * whitespace, an argument over STRATA_PURGE_ARG_MAX bytes, or an "all"
 * with an argument).
 */
int strata_purge_parse(const char *kind, const char *arg,
		       struct strata_purge *p);

/* "key", "path", "prefix", "tag" or "all". */
const char *strata_purge_kind_name(enum strata_purge_kind kind);

/*
 * The request path inside a key text ("GET /a/b?x=1\n..." gives "/a/b?x=1"
 * up to the end of the first line): *len bytes from the returned pointer.
 */
const char *strata_purge_key_path(const char *key_text, size_t key_len,
				  size_t *len);

/* Whether the purge removes an entry with this hash and key text (and,
 * for TAG, these tags). */
bool strata_purge_matches(const struct strata_purge *p,
			  const struct strata_key *key, const char *key_text,
			  size_t key_len, const char *const *tags,
			  size_t n_tags);

/* The same for an entry (borrowed). */
bool strata_purge_matches_entry(const struct strata_purge *p,
				const struct strata_entry *e);

#endif /* STRATA_CACHE_PURGE_H */
