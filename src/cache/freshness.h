/*
 * freshness.h: HTTP caching rules for a shared cache (RFC 9111), as pure
 * functions.
 *
 * What this module answers, in the order a request meets the questions:
 *
 *   1. May this response be stored at all?
 *      strata_freshness_storable()
 *   2. For how long is it fresh, and how old is it already when it
 *      arrives?  strata_freshness_compute()
 *   3. A later request finds it: serve it, serve it stale, validate it
 *      first, or answer 504?  strata_freshness_serve()
 *   4. The origin failed: may the stored entry stand in for it?
 *      strata_freshness_usable_on_error()
 *
 * Underneath are the parsers these need: HTTP-date (RFC 9110 section
 * 5.6.7), Age (RFC 9111 section 5.1) and Cache-Control (RFC 9111 section
 * 5.2) for responses and for requests.
 *
 * Step 2 boils a response down to a small plain struct, struct
 * strata_freshness, meant to be kept with the entry: step 3 then needs no
 * header parsing, no allocation and no clock of its own on a hit.
 *
 * Time: every instant is wall-clock milliseconds since the Unix epoch
 * (what strata_wall_ms() returns), passed in by the caller; every duration
 * is milliseconds.  Directive values are kept in seconds as received.
 * Nothing here reads a clock, so every rule can be tested at any instant.
 *
 * Where RFC 9111 leaves a choice, this module takes the one that never
 * serves something the origin or the client did not allow; each such
 * choice is named "Decision:" below and in freshness.c.
 *
 * Thread safety: no globals, no locks, no I/O, no allocation.  Every
 * function may be called from any thread; the structs are plain data that
 * belong to the caller.  Strings passed in are borrowed for the call only.
 */
#ifndef STRATA_CACHE_FRESHNESS_H
#define STRATA_CACHE_FRESHNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- HTTP-date (RFC 9110 section 5.6.7) ----------------------------------- */

/* IMF-fixdate is 29 characters; a buffer needs one more for the NUL. */
#define STRATA_HTTP_DATE_LEN 29
#define STRATA_HTTP_DATE_BUFSIZE 30

/*
 * Parse an HTTP-date into milliseconds since the epoch (always a whole
 * second).  Accepted, each exactly as the grammar writes it:
 *
 *   IMF-fixdate   Sun, 06 Nov 1994 08:49:37 GMT
 *   rfc850-date   Sunday, 06-Nov-94 08:49:37 GMT     (obsolete)
 *   asctime-date  Sun Nov  6 08:49:37 1994           (obsolete)
 *
 * Strict: single spaces where the grammar has SP, two-digit fields, a real
 * calendar day (no 31 Apr, 29 Feb only in leap years), hour 00-23, minute
 * 00-59, second 00-59 (23:59:60, a leap second, reads as 23:59:59: RFC
 * 9111 section 4.2 asks for the nearest time not later than the value),
 * the zone "GMT" and nothing else, and a weekday that is the date's
 * weekday.  Two tolerances: day names, month names and "GMT" match in any
 * case (RFC 9111 section 4.2: "a cache recipient SHOULD match the field
 * value case-insensitively"), and whitespace around the whole value is
 * ignored (it is not part of a field value).
 *
 * The rfc850 two-digit year: strata_http_date_parse_at() applies RFC 9110's
 * rule against `now_ms` (a date that would be more than 50 years in the
 * future is the most recent such year in the past); strata_http_date_parse()
 * has no clock and reads 70-99 as 1970-1999, 00-69 as 2000-2069 (POSIX
 * strptime's %y window).  A weekday that does not match the year chosen
 * makes the date invalid either way.
 *
 * Returns 0 and sets *out_ms, or -EINVAL (NULL string included); *out_ms
 * is left alone on error.
 */
int strata_http_date_parse(const char *s, int64_t *out_ms);
int strata_http_date_parse_at(const char *s, int64_t now_ms, int64_t *out_ms);

/*
 * Write `ms` (floored to the second) as an IMF-fixdate into buf and
 * NUL-terminate it.  Returns 0, or -ERANGE for an instant outside years
 * 0000-9999 (buf is then the empty string).
 */
int strata_http_date_format(int64_t ms, char buf[STRATA_HTTP_DATE_BUFSIZE]);

/* --- delta-seconds and Age (RFC 9111 sections 1.2.2 and 5.1) -------------- */

/* RFC 9111 section 1.2.2: a delta-seconds too large to represent, or a
 * calculation that overflows, counts as 2^31 seconds. */
#define STRATA_DELTA_SECONDS_MAX 2147483648LL

/*
 * Parse an Age field value into seconds.  A list ("5, 7", from several
 * Age lines joined) uses its first member, as section 5.1 asks.  The
 * member must be 1*DIGIT; larger than 2^31 reads as 2^31.
 * Returns 0, or -EINVAL (NULL, empty, signed, fractional, trailing text):
 * the caller then ignores the field (section 5.1: "a cache SHOULD ignore
 * the field").
 */
int strata_http_age_parse(const char *value, int64_t *out_s);

/* --- Cache-Control (RFC 9111 section 5.2) --------------------------------- */

enum strata_cc_state {
	STRATA_CC_ABSENT = 0,
	STRATA_CC_SET,
	/* Present but unusable: no argument where one is needed, not
	 * 1*DIGIT, or given again with a different value (section 4.2.1:
	 * "either the first occurrence should be used or the response should
	 * be considered stale": Decision: stale, the safer of the two). */
	STRATA_CC_INVALID,
};

/* max-stale without an argument: "a stale response of any age". */
#define STRATA_CC_UNBOUNDED INT64_MAX

/* A directive with a delta-seconds argument. */
struct strata_cc_delta {
	enum strata_cc_state state;
	int64_t seconds;     /* when SET: 0 .. 2^31, or STRATA_CC_UNBOUNDED */
};

/*
 * Response directives (RFC 9111 section 5.2.2; RFC 5861 for the stale-*
 * windows; RFC 8246 for immutable).
 *
 * Qualified no-cache and private (no-cache="Set-Cookie") set the plain
 * flag too: a shared cache that does not strip the named fields must treat
 * them as unqualified, and sections 5.2.2.4 and 5.2.2.7 note that most
 * caches do.  The _qualified flags only say that a list was given, for
 * logs and explain.
 *
 * Directives that restrict (no-store, no-cache, private, must-revalidate,
 * proxy-revalidate, no-transform) count even when they carry an argument
 * they should not have; directives that widen what a cache may do
 * (public, immutable, must-understand) count only in their correct,
 * argument-free form.  Decision: a malformed permission grants nothing, a
 * malformed prohibition still prohibits.
 */
struct strata_cc_response {
	struct strata_cc_delta max_age;
	struct strata_cc_delta s_maxage;
	struct strata_cc_delta stale_while_revalidate;
	struct strata_cc_delta stale_if_error;
	bool no_cache;
	bool no_cache_qualified;
	bool no_store;
	bool private;
	bool private_qualified;
	bool public;
	bool must_revalidate;
	bool proxy_revalidate;
	bool must_understand;
	bool no_transform;
	bool immutable;      /* parsed only: no rule here depends on it */
	bool malformed;      /* some element did not follow the grammar */
};

/*
 * Request directives (RFC 9111 section 5.2.1; stale-if-error from RFC 5861
 * section 4).  max_stale.seconds is STRATA_CC_UNBOUNDED for a bare
 * "max-stale".
 */
struct strata_cc_request {
	struct strata_cc_delta max_age;
	struct strata_cc_delta max_stale;
	struct strata_cc_delta min_fresh;
	struct strata_cc_delta stale_if_error;
	bool no_cache;
	bool no_store;
	bool only_if_cached;
	bool no_transform;
	bool malformed;
};

/*
 * Parse a Cache-Control value: every field line of the message joined
 * with "," or ", " (as strata_headers_join() does), or NULL when the
 * message has none (*out is then all absent).  Never fails.
 *
 * The grammar is `#( token [ "=" ( token / quoted-string ) ] )`, names
 * compared case-insensitively.  Both argument forms are accepted for
 * every directive, so max-age="60" is 60 (section 5.2: "recipients ought
 * to accept both forms"); optional whitespace around "=" is tolerated;
 * empty list elements are skipped; commas inside a quoted string do not
 * split; unknown directives are ignored (section 5.2.3).  An element that
 * does not parse sets `malformed` and is skipped up to the next comma
 * outside quotes (an unterminated quoted string ends the value); a
 * delta-seconds directive it belonged to becomes INVALID.
 */
void strata_cc_parse_response(const char *value,
			      struct strata_cc_response *out);
void strata_cc_parse_request(const char *value, struct strata_cc_request *out);

/* --- freshness lifetime and age (RFC 9111 sections 4.2.1 to 4.2.3) -------- */

/* A suggested bound on heuristic freshness: 24 hours. */
#define STRATA_FRESHNESS_HEURISTIC_CAP_MS (24LL * 3600 * 1000)

/* Where a freshness lifetime came from, first match wins, in this order. */
enum strata_lifetime_source {
	STRATA_LIFETIME_NONE = 0,     /* nothing applies: lifetime 0 */
	STRATA_LIFETIME_S_MAXAGE,     /* s-maxage (a shared cache) */
	STRATA_LIFETIME_MAX_AGE,      /* max-age */
	STRATA_LIFETIME_EXPIRES,      /* Expires minus Date */
	STRATA_LIFETIME_HEURISTIC,    /* 10% of Date minus Last-Modified */
	STRATA_LIFETIME_DEFAULT_TTL,  /* the route's default_ttl */
};

/* "s-maxage", "max-age", "expires", "heuristic", "default-ttl", "none". */
const char *strata_lifetime_source_name(enum strata_lifetime_source s);

/*
 * The route's part in freshness.  STRATA_FRESHNESS_ROUTE_DEFAULTS fills
 * it with: no default_ttl, heuristics capped at 24h, no stale windows.
 */
struct strata_freshness_route {
	/* Freshness for a response that gives none and has no heuristic
	 * basis; -1: none (lifetime 0, source NONE). */
	int64_t default_ttl_ms;
	/* Upper bound on heuristic freshness; 0 or less: no heuristic. */
	int64_t heuristic_cap_ms;
	/* Stale windows the route allows when the response names none (an
	 * out-of-band contract, RFC 9111 section 4.2.4); 0: none. */
	int64_t stale_while_revalidate_ms;
	int64_t stale_if_error_ms;
};

#define STRATA_FRESHNESS_ROUTE_DEFAULTS                                      \
	{ .default_ttl_ms = -1,                                               \
	  .heuristic_cap_ms = STRATA_FRESHNESS_HEURISTIC_CAP_MS,              \
	  .stale_while_revalidate_ms = 0,                                     \
	  .stale_if_error_ms = 0 }

/* A response as received from the origin.  Strings are field values
 * (NULL when the field is absent), borrowed for the call. */
struct strata_freshness_response {
	unsigned status;
	const struct strata_cc_response *cc;   /* required; parse it first */
	const char *date;
	const char *expires;        /* several lines joined: invalid, stale */
	const char *last_modified;
	const char *age;
	int64_t request_time_ms;    /* when the request went upstream */
	int64_t response_time_ms;   /* when the response arrived */
};

struct strata_lifetime {
	int64_t ms;                 /* >= 0 */
	enum strata_lifetime_source source;
	bool invalid;               /* the deciding directive or field was
				       unusable, so the response is stale */
};

/*
 * The freshness lifetime for a shared cache, RFC 9111 section 4.2.1, first
 * rule that applies:
 *
 *  1. s-maxage, if present (section 5.2.2.10).  A shared cache ignores
 *     max-age and Expires then.
 *  2. max-age, if present (section 5.2.2.1); Expires is then ignored
 *     (section 5.3).
 *  3. Expires minus Date, if Expires is present.  Without a usable Date,
 *     the time the response arrived stands in for it (section 4.2.1 and
 *     RFC 9110 section 6.6.1).  An Expires that does not parse, "0"
 *     included, is already expired (section 5.3): lifetime 0, invalid;
 *     one at or before Date gives 0.
 *  4. Heuristic (section 4.2.2), only for a status that is heuristically
 *     cacheable (RFC 9110 section 15.1) or a response marked public, with
 *     a Last-Modified that parses: (Date - Last-Modified) / 10, at most
 *     route->heuristic_cap_ms.  A Last-Modified later than Date counts
 *     as Date (RFC 9110 section 8.8.2: an origin must not send one), so
 *     the heuristic gives 0.
 *  5. route->default_ttl_ms (when >= 0), under the same status condition
 *     as the heuristic: the response said nothing at all.
 *  6. Otherwise 0, source NONE.
 *
 * Rules 1 and 2 with an INVALID value (non-numeric, conflicting
 * duplicates) give lifetime 0 and `invalid`: section 4.2.1 encourages
 * treating invalid freshness information as stale.  `route` may be NULL
 * for STRATA_FRESHNESS_ROUTE_DEFAULTS.
 */
void strata_freshness_lifetime(const struct strata_freshness_response *r,
			       const struct strata_freshness_route *route,
			       struct strata_lifetime *out);

/*
 * corrected_initial_age in milliseconds (RFC 9111 section 4.2.3):
 *
 *   apparent_age          = max(0, response_time - date_value)
 *   response_delay        = response_time - request_time
 *   corrected_age_value   = age_value + response_delay
 *   corrected_initial_age = max(apparent_age, corrected_age_value)
 *
 * `age` and `date` are the field values or NULL.  A missing or unparsable
 * Date gives apparent_age 0 (the arrival time is the Date, RFC 9110
 * section 6.6.1); a Date in the future (clock skew) also gives 0.  An
 * unparsable Age is ignored (age_value 0).  A response_time before
 * request_time (a clock step) gives response_delay 0.
 */
int64_t strata_freshness_initial_age(const char *age, const char *date,
				     int64_t request_time_ms,
				     int64_t response_time_ms);

/* current_age = corrected_initial_age + (now - response_time); time spent
 * before response_time (a clock that went back) counts as 0. */
int64_t strata_freshness_current_age(int64_t initial_age_ms,
				     int64_t response_time_ms, int64_t now_ms);

/*
 * What a stored entry needs to be judged later: computed once when the
 * response arrives, kept with the entry.  Plain data, fixed size.
 */
struct strata_freshness {
	int64_t response_time_ms;
	int64_t initial_age_ms;      /* corrected_initial_age */
	int64_t lifetime_ms;
	enum strata_lifetime_source source;
	bool lifetime_invalid;
	/* Response no-cache (qualified or not): every reuse needs a
	 * successful validation first (section 5.2.2.4). */
	bool no_cache;
	/* must-revalidate, proxy-revalidate or s-maxage: once stale, never
	 * served without validation, whatever the client or the route
	 * allow (sections 4.2.4, 5.2.2.2, 5.2.2.8, 5.2.2.10). */
	bool no_stale;
	/* How long past its lifetime the entry may be served while it is
	 * refreshed, or when the origin fails; -1: not at all.  The
	 * response's stale-while-revalidate / stale-if-error, else the
	 * route's window; an INVALID directive gives -1 (a window we cannot
	 * read grants nothing, and the route does not stand in for it). */
	int64_t stale_while_revalidate_ms;
	int64_t stale_if_error_ms;
};

/* Fill *out from a response: the lifetime (strata_freshness_lifetime()),
 * the initial age (strata_freshness_initial_age()) and the flags above.
 * `route` may be NULL for STRATA_FRESHNESS_ROUTE_DEFAULTS. */
void strata_freshness_compute(const struct strata_freshness_response *r,
			      const struct strata_freshness_route *route,
			      struct strata_freshness *out);

/* The instant the entry stops being fresh:
 * response_time + lifetime - initial_age (may be in the past). */
int64_t strata_freshness_stale_at(const struct strata_freshness *f);

/* --- may it be stored (RFC 9111 sections 3 and 3.5) ----------------------- */

enum strata_storable {
	STRATA_STORABLE_OK = 0,
	STRATA_UNSTORABLE_METHOD,          /* not GET/HEAD, not listed */
	STRATA_UNSTORABLE_STATUS,          /* not a final status (1xx, bogus) */
	STRATA_UNSTORABLE_STATUS_UNKNOWN,  /* 206 or 304: not understood */
	STRATA_UNSTORABLE_MUST_UNDERSTAND, /* must-understand, status not
					      implemented */
	STRATA_UNSTORABLE_REQUEST_NO_STORE,
	STRATA_UNSTORABLE_NO_STORE,
	STRATA_UNSTORABLE_PRIVATE,
	STRATA_UNSTORABLE_AUTHORIZATION,
	STRATA_UNSTORABLE_SET_COOKIE,
	STRATA_UNSTORABLE_NOT_CACHEABLE,   /* no explicit freshness, no
					      public, status not
					      heuristically cacheable */
};

struct strata_freshness_store {
	const char *method;          /* as received, case-sensitive */
	/* The route lists this method for caching (`methods:`): an
	 * out-of-band contract that makes e.g. POST understood. */
	bool route_lists_method;
	unsigned status;
	const struct strata_cc_response *cc;          /* required */
	const struct strata_cc_request *request_cc;   /* NULL: none */
	bool has_expires;            /* an Expires field, valid or not */
	bool request_has_authorization;
	bool has_set_cookie;
	bool force;                  /* the route's force: true */
};

/*
 * Whether a shared cache may store this response, RFC 9111 section 3.
 * The first refusal found is returned, checked in this order:
 *
 *  - METHOD: the method is GET or HEAD, or the route lists it.
 *    Decision: POST is stored only when the route lists it (section 3
 *    wants a method "understood by the cache"; RFC 9110 section 9.3.3
 *    makes a POST response reusable only for a later GET, which Strata
 *    does not do, so the route's listing is the only contract).
 *  - STATUS: the status is final (200-599).
 *  - STATUS_UNKNOWN: 206 and 304 need a cache that understands them
 *    (section 3); Strata does not combine partial content (3.3, 3.4),
 *    and a 304 only freshens a stored response (4.3.4), it is not one.
 *  - MUST_UNDERSTAND: with must-understand, the status must be one whose
 *    caching rules Strata implements: the heuristically cacheable ones
 *    but 206 (section 5.2.2.3).
 *  - REQUEST_NO_STORE: the request's no-store (section 5.2.1.5).  force
 *    does not override it: it protects the client that sent it.
 *  - NO_STORE: the response's no-store (section 5.2.2.5), ignored when
 *    must-understand is present and the status is understood (5.2.2.3).
 *  - PRIVATE: private, qualified or not (section 5.2.2.7).
 *  - AUTHORIZATION: the request had Authorization and the response has
 *    none of must-revalidate, public, or a valid s-maxage (section 3.5).
 *  - SET_COOKIE: the response sets a cookie.  Strata's rule, not RFC
 *    9111's: a session handed to one client must not reach another.
 *  - NOT_CACHEABLE: none of public, Expires, max-age, s-maxage (present,
 *    even if invalid: the response is then stored stale) and the status
 *    is not heuristically cacheable.  A validator alone (ETag,
 *    Last-Modified) does not make a response storable: section 3 does
 *    not list it.
 *
 * force: true overrides NO_STORE, PRIVATE, AUTHORIZATION and SET_COOKIE
 * only; the method, status and freshness rules always apply.
 */
enum strata_storable strata_freshness_storable(
	const struct strata_freshness_store *in);

/* A short lowercase token for logs and Cache-Status ("no-store"). */
const char *strata_freshness_storable_name(enum strata_storable v);
/* A sentence with its RFC section, for the admin explain endpoint. */
const char *strata_freshness_storable_reason(enum strata_storable v);

/* Heuristically cacheable statuses (RFC 9110 section 15.1): 200, 203, 204,
 * 206, 300, 301, 308, 404, 405, 410, 414, 501. */
bool strata_freshness_status_heuristic(unsigned status);

/* --- may a stored entry answer this request (RFC 9111 section 4) ---------- */

enum strata_serve_verdict {
	STRATA_SERVE_FRESH = 0,        /* serve it */
	STRATA_SERVE_STALE,            /* stale, but the client's max-stale
					  accepts it: serve it */
	STRATA_SERVE_STALE_REVALIDATE, /* stale within stale-while-revalidate:
					  serve it and refresh it in the
					  background */
	STRATA_SERVE_REVALIDATE,       /* validate (or refetch) upstream
					  before answering */
	STRATA_SERVE_GATEWAY_TIMEOUT,  /* only-if-cached and nothing servable
					  without the origin: answer 504 */
};

struct strata_serve {
	enum strata_serve_verdict verdict;
	const char *reason;        /* static text with its RFC section */
	int64_t current_age_ms;
	int64_t ttl_ms;            /* lifetime - current age; <= 0: stale by
				      that much */
	/* If the origin fails now, whether this entry may be served instead
	 * (strata_freshness_usable_on_error() at the same instant). */
	bool usable_on_error;
};

/*
 * Decide how a stored entry may answer a request at `now_ms`.  `req` is
 * the request's parsed Cache-Control, or NULL to disregard the client's
 * directives (a route may choose to, as request directives are advisory,
 * section 5.2.1).  Rules, first match:
 *
 *  1. Response no-cache: REVALIDATE (5.2.2.4).
 *  2. Request no-cache: REVALIDATE (5.2.1.4).
 *  3. Request max-age: 0, invalid, or less than the current age:
 *     REVALIDATE (5.2.1.1).  Decision: max-age=0 always revalidates, even
 *     for an entry less than a second old.
 *  4. Request min-fresh: invalid, or the entry is fresh for less than
 *     that much longer: REVALIDATE (5.2.1.3).
 *  5. Fresh (lifetime > current age): FRESH (4.2).
 *  6. Stale and no_stale (must-revalidate, proxy-revalidate, s-maxage):
 *     REVALIDATE (4.2.4, 5.2.2.2, 5.2.2.8, 5.2.2.10).
 *  7. Request max-stale, bare or not exceeded: STALE (5.2.1.2).
 *  8. Within stale-while-revalidate, and the client sent neither max-age
 *     nor max-stale (either says it wants no staleness beyond what it
 *     states, 5.2.1.1; a min-fresh already refused every stale entry in
 *     rule 4): STALE_REVALIDATE (RFC 5861 section 3).
 *  9. Otherwise REVALIDATE.
 *
 * Then, when the verdict is REVALIDATE and the request has
 * only-if-cached: GATEWAY_TIMEOUT (5.2.1.7).  A miss with only-if-cached
 * is the caller's 504 to give.
 */
void strata_freshness_serve(const struct strata_freshness *f,
			    const struct strata_cc_request *req,
			    int64_t now_ms, struct strata_serve *out);

/*
 * The origin failed (connection error, timeout, 5xx): may the stored
 * entry answer instead?  True when:
 *  - it has no response no-cache, and
 *  - it is still fresh (the client's own limits could not be met, but
 *    nothing stale is served), or, stale and without no_stale:
 *  - the client's max-stale accepts its staleness (5.2.1.2), or
 *  - its staleness is within the larger of the entry's stale-if-error
 *    window and the request's stale-if-error (RFC 5861 section 4).
 * Decision: the client's max-age, min-fresh and no-cache do not block
 * this: its alternative is an error, and the origin allowed the use.
 * `reason` (may be NULL) receives a static explanation.
 */
bool strata_freshness_usable_on_error(const struct strata_freshness *f,
				      const struct strata_cc_request *req,
				      int64_t now_ms, const char **reason);

/* "fresh", "stale", "stale-while-revalidate", "revalidate",
 * "only-if-cached". */
const char *strata_serve_verdict_name(enum strata_serve_verdict v);

#endif /* STRATA_CACHE_FRESHNESS_H */
