/*
 * http.h: HTTP header lists and the proxy's header rules.
 *
 * A header list keeps names and values in arrival order, repeated names
 * included (two Set-Cookie headers stay two headers).  Names compare
 * case-insensitively.  The rules here decide what a proxy must not forward:
 * hop-by-hop headers (RFC 9110 section 7.6.1), including every header the
 * Connection header names.  No I/O, no locks: a list belongs to one thread
 * at a time, and ownership moves with the pointer to the list.
 */
#ifndef STRATA_CORE_HTTP_H
#define STRATA_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct strata_header {
	char *name;    /* owned by the list */
	char *value;   /* owned by the list; never NULL */
};

struct strata_headers {
	struct strata_header *v;
	size_t n;
	size_t cap;
};

/* Append a copy of name/value (value may be given by length).
 * Returns 0 or -ENOMEM. */
int strata_headers_add(struct strata_headers *h, const char *name,
		       const char *value);
int strata_headers_addn(struct strata_headers *h, const char *name,
			size_t name_len, const char *value, size_t value_len);

/* The first value of `name`, borrowed from the list, or NULL. */
const char *strata_headers_get(const struct strata_headers *h,
			       const char *name);

/* All values of `name` joined with ",", in a new string the caller frees;
 * NULL when absent (or out of memory). */
char *strata_headers_join(const struct strata_headers *h, const char *name);

/*
 * Make the field lines of the list header `name` one line: the first
 * takes every value, in order, joined with ", " (RFC 9110 section 5.3),
 * and the later ones go.  A cache that reads the first line only, as
 * strata_headers_get() does, then sees the whole list.  Returns 0 or
 * -ENOMEM (the list is then unchanged).
 */
int strata_headers_fold(struct strata_headers *h, const char *name);

/*
 * strata_headers_fold() for the list headers a cache decides by:
 * Cache-Control, Vary and Pragma.  Applied to every response a cache may
 * store, as it arrives.  Returns 0, or -ENOMEM when one could not be
 * folded (it is then left as it was).
 */
int strata_http_fold_cache_lists(struct strata_headers *h);

/* Remove every header called `name`, keeping the others' order. */
void strata_headers_remove(struct strata_headers *h, const char *name);

/* Free every header; the list is empty and reusable afterwards. */
void strata_headers_clear(struct strata_headers *h);

/*
 * Whether `name` is hop-by-hop for this message: one of the fixed set
 * (Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
 * Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade) or a token
 * listed in `connection` (the message's Connection header values joined by
 * commas; NULL when absent).
 */
bool strata_http_is_hop_by_hop(const char *name, const char *connection);

/*
 * Whether c is a tchar, a character of a token (RFC 9110 section 5.6.2):
 * DIGIT, ALPHA or one of !#$%&'*+-.^_`|~.  Inline: header names are
 * checked with it on every request.
 */
static inline bool strata_http_is_tchar(unsigned char c)
{
	/* Bit c (c < 64) or c - 64 of the set. */
	static const unsigned long long low = 0x3ff6cfa00000000ULL;
	static const unsigned long long high = 0x57ffffffc7fffffeULL;

	return c < 64 ? (low >> c) & 1 : c < 128 && ((high >> (c - 64)) & 1);
}

/* Whether s (NUL-terminated) is a token: one or more tchars.  NULL: no. */
bool strata_http_is_token(const char *s);

/*
 * Whether a request target has no space and no control character (DEL
 * included), which would end or split the request line at the next hop
 * (RFC 9112 section 3.2).  Bytes over 0x7F pass, as nginx and Varnish
 * let them.  NULL: no.
 */
bool strata_http_target_clean(const char *target);

/*
 * Whether the comma-separated `list` contains `token`, ignoring case and
 * optional whitespace.  NULL list: false.
 */
bool strata_http_list_has(const char *list, const char *token);

/*
 * Copy into `out` the end-to-end headers of a response `in` that a proxy
 * or cache passes on: everything but hop-by-hop headers (including those
 * the response's Connection header names) and Content-Length (the sender
 * frames the body itself).  Returns 0 or -ENOMEM (out is then partial;
 * the caller clears it).
 */
int strata_http_end_to_end(const struct strata_headers *in,
			   struct strata_headers *out);

#endif /* STRATA_CORE_HTTP_H */
