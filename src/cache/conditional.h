/*
 * conditional.h: conditional requests answered from a stored response
 * (RFC 9110 section 13; RFC 9111 section 4.3.2).
 *
 * When the front end has a stored response it may use for a request, it
 * asks strata_conditional_evaluate() whether to send that response (200),
 * a 304 (Not Modified) or a 412 (Precondition Failed), and, for a Range
 * request carrying If-Range, strata_conditional_if_range() whether the
 * Range may be honoured.  Alongside: entity-tag parsing and the two
 * comparison functions (RFC 9110 section 8.8.3.2), an HTTP-date parser
 * (section 5.6.7), the header filter for a 304 (section 15.4.5) and the
 * ETag that the route option `etag: generate` sends.
 *
 * Decisions where the RFCs leave room (each explained in conditional.c):
 *  - Strata is a gateway, the origin server as far as its clients can
 *    tell (RFC 9110 section 3.7), so steps 1 and 2 of the precedence
 *    (If-Match, If-Unmodified-Since) are evaluated against the stored
 *    response, as nginx does.  A strict cache would not evaluate them
 *    (RFC 9111 section 4.3.2) but forward the request; a caller that
 *    wants that forwards requests carrying either header instead of
 *    calling strata_conditional_evaluate().
 *  - A malformed If-None-Match never matches (a 200 is always safe); a
 *    malformed If-Match never matches either (so 412: the client's
 *    condition cannot be confirmed).  A malformed stored ETag counts as
 *    no ETag.  Invalid dates make If-Modified-Since, If-Unmodified-Since
 *    and If-Range's date form inapplicable, as the RFC says.
 *  - If-Modified-Since against a response without Last-Modified uses its
 *    Date, else the time it was stored (RFC 9111 section 4.3.2).
 *
 * Everything here is pure: no I/O, no allocation, no global state, so
 * every function is thread-safe.  Header values are the request's or the
 * stored response's field values (repeated fields joined with ","), NULL
 * when the field is absent; they are borrowed for the call only.
 */
#ifndef STRATA_CACHE_CONDITIONAL_H
#define STRATA_CACHE_CONDITIONAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- entity tags (RFC 9110 section 8.8.3) ------------------------------ */

/* A parsed entity-tag; `opaque` points into the parsed text (borrowed). */
struct strata_etag {
	bool weak;            /* had the case-sensitive W/ prefix */
	const char *opaque;   /* the characters between the quotes */
	size_t opaque_len;
};

/*
 * Parse `text` as exactly one entity-tag (`W/"x"` or `"x"`), optional
 * whitespace around it allowed.  Characters between the quotes must be
 * etagc (0x21, 0x23-0x7E, 0x80-0xFF): no space, no control, no second
 * quote.  Returns 0, or -EINVAL (NULL, unquoted, lowercase w/, ...).
 */
int strata_etag_parse(const char *text, struct strata_etag *out);

/* Strong comparison: neither is weak and the opaque tags are equal. */
bool strata_etag_strong_match(const struct strata_etag *a,
			      const struct strata_etag *b);

/* Weak comparison: the opaque tags are equal, weakness ignored. */
bool strata_etag_weak_match(const struct strata_etag *a,
			    const struct strata_etag *b);

/*
 * Whether the If-Match / If-None-Match value `list` ("*" or a
 * comma-separated list of entity-tags; empty elements and whitespace
 * allowed) matches `current` (NULL: the stored response has no usable
 * ETag, which only "*" matches).  `strong` chooses the comparison.
 * Returns 1 (match), 0 (no match) or -EINVAL (malformed: empty, an
 * element that is not an entity-tag, "*" together with anything else).
 */
int strata_etag_list_match(const char *list, const struct strata_etag *current,
			   bool strong);

/*
 * The ETag Strata generates for a body (route option `etag: generate`):
 * a strong tag `"x-<16 lowercase hex digits of XXH3-64(body)>"`, the
 * same for equal bodies on every host and version.  Writes the field
 * value with its quotes and a NUL into `buf`; returns its length (20).
 * `body` may be NULL when `len` is 0.
 */
#define STRATA_ETAG_GEN_SIZE 21
size_t strata_etag_of_body(const void *body, size_t len,
			   char buf[STRATA_ETAG_GEN_SIZE]);

/* ---- dates (RFC 9110 section 5.6.7) ------------------------------------ */

/*
 * Parse an HTTP-date in any of the three forms a recipient must accept:
 * IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete RFC 850
 * form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 * ("Sun Nov  6 08:49:37 1994"); optional whitespace around it.  Names
 * are matched ignoring case; the weekday is not checked against the
 * date.  Two-digit years are 1970-2069 (the RFC's "50 years in the
 * future" rule needs a clock and agrees with this until 2070).  Sets
 * *out to seconds since the epoch; returns 0 or -EINVAL (anything else,
 * including trailing text and a list of dates).
 */
int strata_cond_date_parse(const char *text, int64_t *out);

/* ---- evaluation (RFC 9110 section 13.2.2) ------------------------------ */

enum strata_cond_result {
	STRATA_COND_NONE = 0,             /* serve the stored response */
	STRATA_COND_NOT_MODIFIED,         /* send 304 (GET and HEAD only) */
	STRATA_COND_PRECONDITION_FAILED,  /* send 412 */
};

/* The request's preconditions (field values; NULL when absent). */
struct strata_cond_request {
	const char *method;               /* "GET", "HEAD", ...; required */
	const char *if_match;
	const char *if_none_match;
	const char *if_modified_since;
	const char *if_unmodified_since;
};

/* What is known of the stored response the cache would answer with. */
struct strata_cond_stored {
	unsigned status;                  /* its status code; required */
	const char *etag;                 /* its ETag value, or NULL */
	const char *last_modified;        /* its Last-Modified value, or NULL */
	const char *date;                 /* its Date value, or NULL */
	int64_t received_ms;              /* when it was stored (wall ms, like
					     strata_entry.created); 0: unknown */
};

/*
 * Evaluate the preconditions of `req` against `stored`, in the order of
 * RFC 9110 section 13.2.2 (steps 1-4; step 5 is
 * strata_conditional_if_range()):
 *  1. If-Match (strong comparison; "*" matches): false -> 412;
 *  2. else If-Unmodified-Since (valid date, stored Last-Modified known):
 *     modified after it -> 412;
 *  3. If-None-Match (weak comparison; "*" matches): a match -> 304 for
 *     GET and HEAD, 412 for other methods; no match -> serve (and
 *     If-Modified-Since is not looked at);
 *  4. else, GET or HEAD only, If-Modified-Since (valid date): the
 *     stored Last-Modified (else Date, else received_ms) is at or before
 *     it -> 304.
 * Preconditions are ignored altogether (NONE) for CONNECT, OPTIONS and
 * TRACE, and when the stored status is not 2xx: a request without them
 * would not have succeeded either (section 13.2.1).  Method names are
 * case-sensitive, as in HTTP.  Never fails.
 */
enum strata_cond_result strata_conditional_evaluate(
	const struct strata_cond_request *req,
	const struct strata_cond_stored *stored);

/*
 * Step 5: whether a GET's Range may be honoured given its If-Range value
 * (RFC 9110 section 13.1.5).  NULL if_range: true (no condition).  An
 * entity-tag must match the stored ETag by strong comparison (a weak
 * one never does).  A date must equal the stored Last-Modified (as
 * instants, so any of the three date forms works) and that Last-Modified
 * must be strong; Strata approximates section 8.8.2.2's test for an
 * intermediate cache by requiring the stored Date to be at least one
 * second after it, trusting that both came from the origin's clock.
 * Anything else, malformed values included: false, and the caller then
 * ignores Range and serves the whole representation (200).  The caller
 * evaluates this only for GET with a Range header, after
 * strata_conditional_evaluate() returned NONE.
 */
bool strata_conditional_if_range(const char *if_range,
				 const struct strata_cond_stored *stored);

/*
 * Whether a stored response header goes into a 304 made from it (RFC
 * 9110 section 15.4.5): Cache-Control, Content-Location, Date, ETag,
 * Expires and Vary, which a 304 must carry when the 200 would have, and
 * Last-Modified, the metadata the section names as still useful for
 * updating caches.  Everything else (Content-Type, Content-Length,
 * Content-Encoding, Set-Cookie, ...) is left out.  Names compare
 * ignoring case.  Headers the front end adds to every answer itself (Age,
 * Cache-Status) are not its business.
 */
bool strata_conditional_304_keeps(const char *header_name);

#endif /* STRATA_CACHE_CONDITIONAL_H */
