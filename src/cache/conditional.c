/*
 * conditional.c: conditional requests against a stored response; see
 * conditional.h.
 *
 * The evaluation order is RFC 9110 section 13.2.2's, written out step by
 * step in strata_conditional_evaluate().  Where the RFC leaves room:
 *
 * If-Match and If-Unmodified-Since.  The RFC scopes steps 1 and 2 to "the
 * recipient is the origin server", and RFC 9111 section 4.3.2 tells a
 * cache not to evaluate them.  Strata sits in front of its origins as a
 * gateway: for the client it is the origin server (RFC 9110 section 3.7),
 * and the stored response is the representation it would send.  So it
 * evaluates them against that response, as nginx's proxy cache does;
 * the alternative, forwarding every request that carries them, is the
 * caller's to choose.  For a GET these headers are rare (a client
 * completing a partial download without If-Range).
 *
 * Malformed values.  The RFC defines what a well-formed list means, not
 * what to do with a broken one, so each case fails safe: a broken
 * If-None-Match matches nothing (the full response is always a correct
 * answer, a 304 might not be); a broken If-Match matches nothing (its
 * condition cannot be confirmed, so 412, which is what the client asked
 * for when the condition does not hold); a broken stored ETag is treated
 * as absent (only "*" matches it).  Unquoted tags are not accepted even
 * though some origins send them: matching them would mean guessing which
 * byte strings a sloppy origin meant as equal.
 *
 * Dates.  HTTP dates have one-second resolution, so comparisons are on
 * whole seconds.  If-Modified-Since needs the stored response's
 * modification date; without Last-Modified (or with one that does not
 * parse) a cache uses its Date, and without that the time it stored the
 * response (RFC 9111 section 4.3.2, cases 2 and 3).
 */
#include "config.h"

#include "cache/conditional.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "core/log.h"

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_ows(const char *p)
{
	while (is_ows(*p))
		p++;
	return p;
}

/* ---- entity tags -------------------------------------------------------- */

/* etagc = %x21 / %x23-7E / obs-text: visible characters but the quote. */
static bool is_etagc(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

/* Parse one entity-tag at p; returns the position after its closing
 * quote, or NULL. */
static const char *parse_tag(const char *p, struct strata_etag *out)
{
	const char *open;

	out->weak = false;
	if (p[0] == 'W' && p[1] == '/') {   /* %s"W/": case-sensitive */
		out->weak = true;
		p += 2;
	}
	if (*p != '"')
		return NULL;
	open = ++p;
	while (is_etagc((unsigned char)*p))
		p++;
	if (*p != '"')
		return NULL;
	out->opaque = open;
	out->opaque_len = (size_t)(p - open);
	return p + 1;
}

int strata_etag_parse(const char *text, struct strata_etag *out)
{
	const char *p;

	if (text == NULL)
		return -EINVAL;
	p = parse_tag(skip_ows(text), out);
	if (p == NULL || *skip_ows(p) != '\0')
		return -EINVAL;
	return 0;
}

static bool opaque_eq(const struct strata_etag *a, const struct strata_etag *b)
{
	return a->opaque_len == b->opaque_len &&
	       memcmp(a->opaque, b->opaque, a->opaque_len) == 0;
}

bool strata_etag_strong_match(const struct strata_etag *a,
			      const struct strata_etag *b)
{
	return !a->weak && !b->weak && opaque_eq(a, b);
}

bool strata_etag_weak_match(const struct strata_etag *a,
			    const struct strata_etag *b)
{
	return opaque_eq(a, b);
}

/*
 * The list is read to its end even after a match, so that whether a value
 * is malformed does not depend on where the match happens to be.  Empty
 * elements (", ,") are skipped, as RFC 9110 section 5.6.1.2 asks of list
 * recipients.  An opaque tag may itself contain commas; the parser reads
 * a tag from quote to quote, so they do not split it.
 */
int strata_etag_list_match(const char *list, const struct strata_etag *current,
			   bool strong)
{
	const char *p;
	struct strata_etag tag;
	bool any = false, matched = false;

	if (list == NULL)
		return -EINVAL;
	p = skip_ows(list);
	if (*p == '*') {
		/* "*" alone: matches any current representation, and there
		 * is one (the stored response).  Mixed with tags it is
		 * invalid (RFC 9110 section 13.1.2). */
		return *skip_ows(p + 1) == '\0' ? 1 : -EINVAL;
	}
	for (;;) {
		p = skip_ows(p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\0')
			break;
		p = parse_tag(p, &tag);
		if (p == NULL)
			return -EINVAL;
		any = true;
		if (current != NULL &&
		    (strong ? strata_etag_strong_match(&tag, current)
			    : strata_etag_weak_match(&tag, current)))
			matched = true;
		p = skip_ows(p);
		if (*p == ',')
			p++;
		else if (*p != '\0')
			return -EINVAL;
	}
	if (!any)
		return -EINVAL;
	return matched ? 1 : 0;
}

size_t strata_etag_of_body(const void *body, size_t len,
			   char buf[STRATA_ETAG_GEN_SIZE])
{
	static const char empty[1];
	XXH64_hash_t h = XXH3_64bits(len > 0 ? body : empty, len);
	int n = snprintf(buf, STRATA_ETAG_GEN_SIZE, "\"x-%016" PRIx64 "\"",
			 (uint64_t)h);

	STRATA_ASSERT(n == STRATA_ETAG_GEN_SIZE - 1);
	return (size_t)n;
}

/* ---- dates -------------------------------------------------------------- */

static const char *const day_short[7] = {
	"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"
};
static const char *const day_long[7] = {
	"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
	"Sunday"
};
static const char *const month_name[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* Match `word` at *p ignoring case; advance past it on success. */
static bool take_word(const char **p, const char *word)
{
	size_t n = strlen(word);

	if (strncasecmp(*p, word, n) != 0)
		return false;
	*p += n;
	return true;
}

static bool take_char(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* Exactly n decimal digits. */
static bool take_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool take_month(const char **p, int *month)
{
	for (int i = 0; i < 12; i++) {
		if (take_word(p, month_name[i])) {
			*month = i + 1;
			return true;
		}
	}
	return false;
}

/* "HH:MM:SS"; 60 seconds allowed for a leap second. */
static bool take_time(const char **p, int *h, int *m, int *s)
{
	return take_digits(p, 2, h) && take_char(p, ':') &&
	       take_digits(p, 2, m) && take_char(p, ':') &&
	       take_digits(p, 2, s) && *h <= 23 && *m <= 59 && *s <= 60;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31 };

	return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil); timegm() would do, but is neither
 * standard C nor free of the TZ machinery. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int strata_cond_date_parse(const char *text, int64_t *out)
{
	const char *p;
	int day = 0, month = 0, year = 0, h = 0, m = 0, s = 0;
	int form = -1;   /* 0 IMF-fixdate, 1 RFC 850, 2 asctime */

	if (text == NULL)
		return -EINVAL;
	p = skip_ows(text);
	/* The weekday decides the form: "Sun," fixdate, "Sunday," RFC 850,
	 * "Sun " asctime.  Long names first: "Sun" is a prefix of
	 * "Sunday". */
	for (int i = 0; i < 7 && form < 0; i++) {
		if (take_word(&p, day_long[i]))
			form = 1;
		else if (take_word(&p, day_short[i]))
			form = *p == ',' ? 0 : 2;
	}
	switch (form) {
	case 0:     /* Sun, 06 Nov 1994 08:49:37 GMT */
		if (!(take_char(&p, ',') && take_char(&p, ' ') &&
		      take_digits(&p, 2, &day) && take_char(&p, ' ') &&
		      take_month(&p, &month) && take_char(&p, ' ') &&
		      take_digits(&p, 4, &year) && take_char(&p, ' ') &&
		      take_time(&p, &h, &m, &s) && take_char(&p, ' ') &&
		      take_word(&p, "GMT")))
			return -EINVAL;
		break;
	case 1:     /* Sunday, 06-Nov-94 08:49:37 GMT */
		if (!(take_char(&p, ',') && take_char(&p, ' ') &&
		      take_digits(&p, 2, &day) && take_char(&p, '-') &&
		      take_month(&p, &month) && take_char(&p, '-') &&
		      take_digits(&p, 2, &year) && take_char(&p, ' ') &&
		      take_time(&p, &h, &m, &s) && take_char(&p, ' ') &&
		      take_word(&p, "GMT")))
			return -EINVAL;
		year += year < 70 ? 2000 : 1900;
		break;
	case 2:     /* Sun Nov  6 08:49:37 1994 */
		if (!(take_char(&p, ' ') && take_month(&p, &month) &&
		      take_char(&p, ' ')))
			return -EINVAL;
		if (*p == ' ') {   /* ( SP DIGIT ) */
			p++;
			if (!take_digits(&p, 1, &day))
				return -EINVAL;
		} else if (!take_digits(&p, 2, &day)) {
			return -EINVAL;
		}
		if (!(take_char(&p, ' ') && take_time(&p, &h, &m, &s) &&
		      take_char(&p, ' ') && take_digits(&p, 4, &year)))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (*skip_ows(p) != '\0')
		return -EINVAL;
	if (day < 1 || day > days_in_month(year, month))
		return -EINVAL;
	*out = days_from_civil(year, month, day) * 86400 +
	       (int64_t)h * 3600 + m * 60 + s;
	return 0;
}

/* ---- evaluation ---------------------------------------------------------- */

static bool stored_etag(const struct strata_cond_stored *stored,
			struct strata_etag *tag)
{
	return stored->etag != NULL && strata_etag_parse(stored->etag, tag) == 0;
}

static bool date_of(const char *value, int64_t *out)
{
	return value != NULL && strata_cond_date_parse(value, out) == 0;
}

/* The modification date If-Modified-Since is compared with; false when
 * there is none (the header is then ignored). */
static bool modification_date(const struct strata_cond_stored *stored,
			      int64_t *out)
{
	if (date_of(stored->last_modified, out))
		return true;
	if (date_of(stored->date, out))
		return true;
	if (stored->received_ms > 0) {
		*out = stored->received_ms / 1000;
		return true;
	}
	return false;
}

enum strata_cond_result strata_conditional_evaluate(
	const struct strata_cond_request *req,
	const struct strata_cond_stored *stored)
{
	struct strata_etag cur;
	const struct strata_etag *current;
	bool get_or_head;
	int64_t when, modified;

	STRATA_ASSERT(req != NULL && stored != NULL && req->method != NULL);
	/* Section 13.2.1: methods that select no representation, and
	 * requests that would not succeed without their preconditions,
	 * ignore them. */
	if (strcmp(req->method, "CONNECT") == 0 ||
	    strcmp(req->method, "OPTIONS") == 0 ||
	    strcmp(req->method, "TRACE") == 0)
		return STRATA_COND_NONE;
	if (stored->status < 200 || stored->status > 299)
		return STRATA_COND_NONE;
	get_or_head = strcmp(req->method, "GET") == 0 ||
		      strcmp(req->method, "HEAD") == 0;
	current = stored_etag(stored, &cur) ? &cur : NULL;

	/* Step 1: If-Match, strong comparison. */
	if (req->if_match != NULL) {
		if (strata_etag_list_match(req->if_match, current, true) != 1)
			return STRATA_COND_PRECONDITION_FAILED;
	} else if (req->if_unmodified_since != NULL) {
		/* Step 2: ignored when the date is invalid or the stored
		 * response has no modification date (section 13.1.4). */
		if (date_of(req->if_unmodified_since, &when) &&
		    date_of(stored->last_modified, &modified) &&
		    modified > when)
			return STRATA_COND_PRECONDITION_FAILED;
	}

	/* Step 3: If-None-Match, weak comparison.  Present, it decides
	 * alone: If-Modified-Since is then ignored whatever the outcome
	 * (section 13.1.3). */
	if (req->if_none_match != NULL) {
		if (strata_etag_list_match(req->if_none_match, current,
					   false) == 1)
			return get_or_head ? STRATA_COND_NOT_MODIFIED
					   : STRATA_COND_PRECONDITION_FAILED;
		return STRATA_COND_NONE;
	}

	/* Step 4: If-Modified-Since, GET and HEAD only. */
	if (get_or_head && req->if_modified_since != NULL &&
	    date_of(req->if_modified_since, &when) &&
	    modification_date(stored, &modified) && modified <= when)
		return STRATA_COND_NOT_MODIFIED;
	return STRATA_COND_NONE;
}

bool strata_conditional_if_range(const char *if_range,
				 const struct strata_cond_stored *stored)
{
	struct strata_etag tag, cur;
	const char *p;
	int64_t when, modified, date;

	STRATA_ASSERT(stored != NULL);
	if (if_range == NULL)
		return true;
	p = skip_ows(if_range);
	/* "A valid entity-tag can be distinguished from a valid HTTP-date by
	 * examining the first three characters for a DQUOTE." */
	if (p[0] == '"' || (p[0] == 'W' && p[1] == '/')) {
		return strata_etag_parse(p, &tag) == 0 &&
		       stored_etag(stored, &cur) &&
		       strata_etag_strong_match(&tag, &cur);
	}
	/* The date must be the stored Last-Modified exactly, and that must
	 * be a strong validator: section 8.8.2.2 lets an intermediate cache
	 * deduce so when the stored Date is at least one second later.  We
	 * assume both came from the origin's clock (they arrived in one
	 * response), which is the approximation. */
	return date_of(p, &when) &&
	       date_of(stored->last_modified, &modified) &&
	       date_of(stored->date, &date) &&
	       date >= modified + 1 && when == modified;
}

bool strata_conditional_304_keeps(const char *header_name)
{
	static const char *const keep[] = {
		"Cache-Control", "Content-Location", "Date", "ETag",
		"Expires", "Vary", "Last-Modified",
	};

	if (header_name == NULL)
		return false;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (strcasecmp(header_name, keep[i]) == 0)
			return true;
	return false;
}
