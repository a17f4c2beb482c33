/*
 * Unit tests for src/cache/freshness.c: HTTP-date, Age and Cache-Control
 * parsing, freshness lifetime, age, storability and the serve decision
 * (RFC 9111 for a shared cache).
 *
 * Table-driven: each test walks a table of cases and names the failing
 * row.  Time is injected: every instant is an offset from T0, the RFC's
 * own example date, so nothing depends on the clock.  Every test has the
 * suite's one .timeout (Criterion 2.4.1 leaks when timeouts differ; see
 * tests/integration/test_cache.c).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cache/freshness.h"

TestSuite(freshness, .timeout = 10);

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define T0 784111777000LL
#define S 1000LL
#define MIN (60 * S)
#define HOUR (3600 * S)
#define DAY (24 * HOUR)

#define D_T0 "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_T0_PLUS_60S "Sun, 06 Nov 1994 08:50:37 GMT"
#define D_T0_PLUS_1H "Sun, 06 Nov 1994 09:49:37 GMT"
#define D_T0_PLUS_2H "Sun, 06 Nov 1994 10:49:37 GMT"
#define D_T0_MINUS_5S "Sun, 06 Nov 1994 08:49:32 GMT"
#define D_T0_MINUS_60S "Sun, 06 Nov 1994 08:48:37 GMT"
#define D_T0_MINUS_10M "Sun, 06 Nov 1994 08:39:37 GMT"
#define D_T0_MINUS_1H "Sun, 06 Nov 1994 07:49:37 GMT"
#define D_T0_MINUS_5D "Tue, 01 Nov 1994 08:49:37 GMT"
#define D_T0_MINUS_100D "Fri, 29 Jul 1994 08:49:37 GMT"
#define D_T0_PLUS_1D "Mon, 07 Nov 1994 08:49:37 GMT"

/* --- HTTP-date ------------------------------------------------------------ */

struct date_case {
	const char *in;
	bool ok;
	int64_t ms;
};

Test(freshness, http_date_formats_and_rejects)
{
	static const struct date_case cases[] = {
		/* the three formats of RFC 9110 section 5.6.7 */
		{ D_T0, true, T0 },
		{ "Sunday, 06-Nov-94 08:49:37 GMT", true, T0 },
		{ "Sun Nov  6 08:49:37 1994", true, T0 },
		{ "Sun Nov 06 08:49:37 1994", true, T0 },
		/* tolerated: case (RFC 9111 4.2), surrounding whitespace */
		{ "sun, 06 NOV 1994 08:49:37 gmt", true, T0 },
		{ "SUNDAY, 06-nov-94 08:49:37 Gmt", true, T0 },
		{ " \t" D_T0 "  ", true, T0 },
		/* calendar edges */
		{ "Thu, 01 Jan 1970 00:00:00 GMT", true, 0 },
		{ "Wed, 31 Dec 1969 23:59:59 GMT", true, -1000 },
		{ "Thu, 29 Feb 2024 12:00:00 GMT", true, 1709208000000LL },
		{ "Fri, 31 Dec 9999 23:59:59 GMT", true, 253402300799000LL },
		{ "Mon, 01 Jan 0001 00:00:00 GMT", true, -62135596800000LL },
		/* a leap second reads as the second before it */
		{ "Wed, 31 Dec 2008 23:59:60 GMT", true, 1230767999000LL },
		{ "Fri, 31 Dec 1999 23:59:59 GMT", true, 946684799000LL },
		/* rejects */
		{ NULL, false, 0 },
		{ "", false, 0 },
		{ "0", false, 0 },
		{ "-1", false, 0 },
		{ "Sun, 06 Nov 1994 08:49:37 UTC", false, 0 },
		{ "Sun, 06 Nov 1994 08:49:37 +0000", false, 0 },
		{ "Sun, 6 Nov 1994 08:49:37 GMT", false, 0 },
		{ "Sun,  6 Nov 1994 08:49:37 GMT", false, 0 },
		{ "Sun, 06 Nov 94 08:49:37 GMT", false, 0 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT junk", false, 0 },
		{ "Sun, 06 Nov 1994 08:49:37", false, 0 },
		{ "Sun 06 Nov 1994 08:49:37 GMT", false, 0 },
		{ "Sunday, 06-Nov-1994 08:49:37 GMT", false, 0 },
		{ "Sun, 06-Nov-94 08:49:37 GMT", false, 0 },
		{ "Sun Nov 6 08:49:37 1994", false, 0 },
		{ "Sun Nov  6 08:49:37 94", false, 0 },
		{ "Mon, 06 Nov 1994 08:49:37 GMT", false, 0 },   /* weekday */
		{ "Monday, 06-Nov-94 08:49:37 GMT", false, 0 },
		{ "Sun, 31 Nov 1994 08:49:37 GMT", false, 0 },   /* no 31 Nov */
		{ "Wed, 29 Feb 2023 00:00:00 GMT", false, 0 },   /* not leap */
		{ "Sun, 00 Nov 1994 08:49:37 GMT", false, 0 },
		{ "Sun, 06 Xyz 1994 08:49:37 GMT", false, 0 },
		{ "Sun, 06 Nov 1994 24:00:00 GMT", false, 0 },
		{ "Sun, 06 Nov 1994 08:60:00 GMT", false, 0 },
		{ "Sun, 06 Nov 1994 08:49:60 GMT", false, 0 },   /* not 23:59 */
		{ "Sun, 06 Nov 1994 8:49:37 GMT", false, 0 },
		{ "Sun, 06 Nov 1994 08-49-37 GMT", false, 0 },
		{ "Sun, 06 Nov 19x4 08:49:37 GMT", false, 0 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT, " D_T0, false, 0 },
	};

	for (size_t i = 0; i < N(cases); i++) {
		int64_t ms = 42;
		int rc = strata_http_date_parse(cases[i].in, &ms);

		if (cases[i].ok) {
			cr_expect_eq(rc, 0, "[%zu] %s: rc %d", i, cases[i].in,
				     rc);
			cr_expect_eq(ms, cases[i].ms, "[%zu] %s: %lld", i,
				     cases[i].in, (long long)ms);
		} else {
			cr_expect_eq(rc, -EINVAL, "[%zu] %s accepted", i,
				     cases[i].in ? cases[i].in : "(null)");
			cr_expect_eq(ms, 42, "[%zu] output touched", i);
		}
	}
}

/* RFC 9110 5.6.7: a two-digit year more than 50 years ahead is the most
 * recent such year in the past.  Clock: 2026-09-16T12:00:00Z. */
Test(freshness, http_date_rfc850_two_digit_years)
{
	static const struct date_case cases[] = {
		{ "Sunday, 06-Nov-94 08:49:37 GMT", true, T0 },
		{ "Tuesday, 01-Jan-75 00:00:00 GMT", true, 3313526400000LL },
		{ "Saturday, 01-Jan-77 00:00:00 GMT", true, 220924800000LL },
		/* exactly 50 years ahead is not more than 50 */
		{ "Wednesday, 16-Sep-76 12:00:00 GMT", true, 3367483200000LL },
		/* one second further is, so 1976 (a Thursday) */
		{ "Thursday, 16-Sep-76 12:00:01 GMT", true, 211723201000LL },
		/* 2077 would be a Friday: the weekday must fit the year */
		{ "Friday, 01-Jan-77 00:00:00 GMT", false, 0 },
	};
	const int64_t now = 1789560000000LL;

	for (size_t i = 0; i < N(cases); i++) {
		int64_t ms = 0;
		int rc = strata_http_date_parse_at(cases[i].in, now, &ms);

		cr_expect_eq(rc == 0, cases[i].ok, "[%zu] %s: rc %d", i,
			     cases[i].in, rc);
		if (cases[i].ok)
			cr_expect_eq(ms, cases[i].ms, "[%zu] %s: %lld", i,
				     cases[i].in, (long long)ms);
	}
	/* Without a clock: 00-69 are 20xx, 70-99 are 19xx. */
	int64_t ms = 0;

	cr_expect_eq(strata_http_date_parse("Tuesday, 01-Jan-69 00:00:00 GMT",
					    &ms), 0);
	cr_expect_eq(ms, 3124224000000LL);
	cr_expect_eq(strata_http_date_parse("Thursday, 01-Jan-70 00:00:00 GMT",
					    &ms), 0);
	cr_expect_eq(ms, 0);
}

Test(freshness, http_date_format)
{
	static const struct {
		int64_t ms;
		const char *out;
	} cases[] = {
		{ T0, D_T0 },
		{ 0, "Thu, 01 Jan 1970 00:00:00 GMT" },
		{ 1500, "Thu, 01 Jan 1970 00:00:01 GMT" },
		{ -1, "Wed, 31 Dec 1969 23:59:59 GMT" },
		{ 1709208000000LL, "Thu, 29 Feb 2024 12:00:00 GMT" },
		{ 253402300799999LL, "Fri, 31 Dec 9999 23:59:59 GMT" },
	};
	char buf[STRATA_HTTP_DATE_BUFSIZE];

	for (size_t i = 0; i < N(cases); i++) {
		int64_t back = 0;

		cr_expect_eq(strata_http_date_format(cases[i].ms, buf), 0);
		cr_expect_str_eq(buf, cases[i].out, "[%zu]", i);
		cr_expect_eq(strlen(buf), STRATA_HTTP_DATE_LEN);
		cr_expect_eq(strata_http_date_parse(buf, &back), 0);
	}
	cr_expect_eq(strata_http_date_format(253402300800000LL, buf), -ERANGE);
	cr_expect_str_eq(buf, "");
	cr_expect_eq(strata_http_date_format(-62167219200001LL, buf), -ERANGE);
}

/* --- Age ------------------------------------------------------------------ */

Test(freshness, age_field_values)
{
	static const struct {
		const char *in;
		int rc;
		int64_t s;
	} cases[] = {
		{ "60", 0, 60 },
		{ " 60 ", 0, 60 },
		{ "0", 0, 0 },
		{ "5, 7", 0, 5 },      /* a list: the first member (5.1) */
		{ "5,7", 0, 5 },
		{ "99999999999", 0, STRATA_DELTA_SECONDS_MAX },
		{ "2147483647", 0, 2147483647 },
		{ NULL, -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "-5", -EINVAL, 0 },
		{ "+5", -EINVAL, 0 },
		{ "1.5", -EINVAL, 0 },
		{ "60 s", -EINVAL, 0 },
		{ "abc", -EINVAL, 0 },
		{ ", 5", -EINVAL, 0 },
	};

	for (size_t i = 0; i < N(cases); i++) {
		int64_t s = -1;

		cr_expect_eq(strata_http_age_parse(cases[i].in, &s),
			     cases[i].rc, "[%zu] %s", i,
			     cases[i].in ? cases[i].in : "(null)");
		if (cases[i].rc == 0)
			cr_expect_eq(s, cases[i].s, "[%zu] %s: %lld", i,
				     cases[i].in, (long long)s);
	}
}

/* --- Cache-Control -------------------------------------------------------- */

static void put_delta(char *buf, size_t len, const char *name,
		      const struct strata_cc_delta *d)
{
	size_t n = strlen(buf);

	if (d->state == STRATA_CC_ABSENT)
		return;
	if (d->state == STRATA_CC_INVALID)
		snprintf(buf + n, len - n, " %s=invalid", name);
	else if (d->seconds == STRATA_CC_UNBOUNDED)
		snprintf(buf + n, len - n, " %s=any", name);
	else
		snprintf(buf + n, len - n, " %s=%lld", name,
			 (long long)d->seconds);
}

static void put_flag(char *buf, size_t len, const char *name, bool set)
{
	size_t n = strlen(buf);

	if (set)
		snprintf(buf + n, len - n, " %s", name);
}

/* The parsed directives as one canonical line, for table comparison. */
static const char *describe_response(const char *value)
{
	static char buf[512];
	struct strata_cc_response cc;

	strata_cc_parse_response(value, &cc);
	buf[0] = '\0';
	put_delta(buf, sizeof(buf), "max-age", &cc.max_age);
	put_delta(buf, sizeof(buf), "s-maxage", &cc.s_maxage);
	put_delta(buf, sizeof(buf), "swr", &cc.stale_while_revalidate);
	put_delta(buf, sizeof(buf), "sie", &cc.stale_if_error);
	put_flag(buf, sizeof(buf), "no-cache", cc.no_cache);
	put_flag(buf, sizeof(buf), "(q)", cc.no_cache_qualified);
	put_flag(buf, sizeof(buf), "no-store", cc.no_store);
	put_flag(buf, sizeof(buf), "private", cc.private);
	put_flag(buf, sizeof(buf), "(q)", cc.private_qualified);
	put_flag(buf, sizeof(buf), "public", cc.public);
	put_flag(buf, sizeof(buf), "must-revalidate", cc.must_revalidate);
	put_flag(buf, sizeof(buf), "proxy-revalidate", cc.proxy_revalidate);
	put_flag(buf, sizeof(buf), "must-understand", cc.must_understand);
	put_flag(buf, sizeof(buf), "no-transform", cc.no_transform);
	put_flag(buf, sizeof(buf), "immutable", cc.immutable);
	put_flag(buf, sizeof(buf), "MALFORMED", cc.malformed);
	return buf[0] == ' ' ? buf + 1 : buf;
}

static const char *describe_request(const char *value)
{
	static char buf[512];
	struct strata_cc_request cc;

	strata_cc_parse_request(value, &cc);
	buf[0] = '\0';
	put_delta(buf, sizeof(buf), "max-age", &cc.max_age);
	put_delta(buf, sizeof(buf), "max-stale", &cc.max_stale);
	put_delta(buf, sizeof(buf), "min-fresh", &cc.min_fresh);
	put_delta(buf, sizeof(buf), "sie", &cc.stale_if_error);
	put_flag(buf, sizeof(buf), "no-cache", cc.no_cache);
	put_flag(buf, sizeof(buf), "no-store", cc.no_store);
	put_flag(buf, sizeof(buf), "only-if-cached", cc.only_if_cached);
	put_flag(buf, sizeof(buf), "no-transform", cc.no_transform);
	put_flag(buf, sizeof(buf), "MALFORMED", cc.malformed);
	return buf[0] == ' ' ? buf + 1 : buf;
}

struct cc_case {
	const char *in;
	const char *out;
};

Test(freshness, cache_control_response_directives)
{
	static const struct cc_case cases[] = {
		{ NULL, "" },
		{ "", "" },
		{ "max-age=60", "max-age=60" },
		{ "MAX-AGE=60", "max-age=60" },
		/* quoted form accepted by recipients (5.2) */
		{ "max-age=\"60\"", "max-age=60" },
		{ "max-age = 60", "max-age=60" },
		{ " , ,max-age=60,, ", "max-age=60" },
		{ "max-age=0060", "max-age=60" },
		/* duplicates: same value fine, conflicting invalid (4.2.1) */
		{ "max-age=60, max-age=60", "max-age=60" },
		{ "max-age=60, max-age=30", "max-age=invalid" },
		{ "max-age=60, max-age=30, max-age=60", "max-age=invalid" },
		{ "max-age", "max-age=invalid" },
		{ "max-age=", "max-age=invalid MALFORMED" },
		{ "max-age=-1", "max-age=invalid" },
		{ "max-age=1.5", "max-age=invalid" },
		{ "max-age=60s", "max-age=invalid" },
		{ "max-age=\"6\\0\"", "max-age=invalid" },
		{ "max-age=60 junk", "max-age=invalid MALFORMED" },
		{ "max-age=\"60", "max-age=invalid MALFORMED" },
		/* delta-seconds saturate at 2^31 (1.2.2) */
		{ "max-age=99999999999", "max-age=2147483648" },
		{ "s-maxage=10, stale-while-revalidate=30, stale-if-error=60",
		  "s-maxage=10 swr=30 sie=60" },
		{ "no-cache", "no-cache" },
		{ "no-cache=\"Set-Cookie, X-Foo\", max-age=5",
		  "max-age=5 no-cache (q)" },
		{ "private=\"X-User\"", "private (q)" },
		{ "Private, max-age=5", "max-age=5 private" },
		{ "no-store, must-revalidate, proxy-revalidate, public, "
		  "must-understand, no-transform, immutable",
		  "no-store public must-revalidate proxy-revalidate "
		  "must-understand no-transform immutable" },
		/* malformed permission grants nothing, prohibition holds */
		{ "public=yes, immutable=1", "" },
		{ "no-store=1, must-revalidate=\"x\"",
		  "no-store must-revalidate" },
		/* commas inside quotes do not split; unknowns ignored */
		{ "foo=\"a, max-age=5\", bar", "" },
		{ "foo=\"a\\\", max-age=5\", no-store", "no-store" },
		{ "foo=bar \"x\\\", max-age=5\", no-store",
		  "no-store MALFORMED" },
		{ "community=\"UCI\", private", "private" },
		{ "\"junk\", no-store", "no-store MALFORMED" },
		{ "=5, no-store", "no-store MALFORMED" },
		/* two field lines joined by strata_headers_join() */
		{ "max-age=60,no-store", "max-age=60 no-store" },
		{ "max-age=60, s-maxage=\"120\"", "max-age=60 s-maxage=120" },
	};

	for (size_t i = 0; i < N(cases); i++)
		cr_expect_str_eq(describe_response(cases[i].in), cases[i].out,
				 "[%zu] %s", i,
				 cases[i].in ? cases[i].in : "(null)");
}

Test(freshness, cache_control_request_directives)
{
	static const struct cc_case cases[] = {
		{ NULL, "" },
		{ "max-age=0", "max-age=0" },
		{ "max-stale", "max-stale=any" },
		{ "max-stale=30", "max-stale=30" },
		{ "max-stale=\"5\"", "max-stale=5" },
		{ "max-stale, max-stale=30", "max-stale=invalid" },
		{ "max-stale, MAX-STALE", "max-stale=any" },
		{ "min-fresh=10, no-cache, no-store, only-if-cached",
		  "min-fresh=10 no-cache no-store only-if-cached" },
		{ "stale-if-error=60", "sie=60" },
		{ "no-transform, only-if-cached=1",
		  "only-if-cached no-transform" },
		{ "max-age=abc", "max-age=invalid" },
		{ "max-age=5, max-age=7", "max-age=invalid" },
	};

	for (size_t i = 0; i < N(cases); i++)
		cr_expect_str_eq(describe_request(cases[i].in), cases[i].out,
				 "[%zu] %s", i,
				 cases[i].in ? cases[i].in : "(null)");
}

/* --- freshness lifetime --------------------------------------------------- */

struct lifetime_case {
	unsigned status;
	const char *cc;
	const char *date;
	const char *expires;
	const char *last_modified;
	int64_t default_ttl_ms;
	int64_t cap_ms;
	int64_t ms;
	enum strata_lifetime_source source;
	bool invalid;
};

#define CAP STRATA_FRESHNESS_HEURISTIC_CAP_MS

Test(freshness, lifetime_precedence_and_heuristics)
{
	static const struct lifetime_case cases[] = {
		/* 4.2.1: s-maxage, then max-age, then Expires - Date */
		{ 200, "max-age=60", D_T0, NULL, NULL, -1, CAP,
		  60 * S, STRATA_LIFETIME_MAX_AGE, false },
		{ 200, "s-maxage=30, max-age=60", D_T0, NULL, NULL, -1, CAP,
		  30 * S, STRATA_LIFETIME_S_MAXAGE, false },
		{ 200, "max-age=60", D_T0, D_T0_PLUS_1H, NULL, -1, CAP,
		  60 * S, STRATA_LIFETIME_MAX_AGE, false },
		{ 200, "s-maxage=30", D_T0, D_T0_PLUS_1H, NULL, -1, CAP,
		  30 * S, STRATA_LIFETIME_S_MAXAGE, false },
		{ 200, "s-maxage=0, max-age=60", D_T0, NULL, NULL, -1, CAP,
		  0, STRATA_LIFETIME_S_MAXAGE, false },
		{ 200, "max-age=99999999999", D_T0, NULL, NULL, -1, CAP,
		  STRATA_DELTA_SECONDS_MAX * S, STRATA_LIFETIME_MAX_AGE,
		  false },
		{ 200, NULL, D_T0, D_T0_PLUS_1H, NULL, -1, CAP,
		  HOUR, STRATA_LIFETIME_EXPIRES, false },
		/* Expires - Date on the origin's clock, not ours */
		{ 200, NULL, D_T0_MINUS_10M, D_T0_PLUS_1H, NULL, -1, CAP,
		  70 * MIN, STRATA_LIFETIME_EXPIRES, false },
		/* no Date, or a bad one: the arrival time stands in */
		{ 200, NULL, NULL, D_T0_PLUS_1H, NULL, -1, CAP,
		  HOUR, STRATA_LIFETIME_EXPIRES, false },
		{ 200, NULL, "yesterday", D_T0_PLUS_1H, NULL, -1, CAP,
		  HOUR, STRATA_LIFETIME_EXPIRES, false },
		/* invalid Expires, "0" above all, is already expired (5.3) */
		{ 200, NULL, D_T0, "0", NULL, 300 * S, CAP,
		  0, STRATA_LIFETIME_EXPIRES, true },
		{ 200, NULL, D_T0, "Sun, 06 Nov 1994 09:49:37 GMT, "
				   "Sun, 06 Nov 1994 10:49:37 GMT", NULL, -1,
		  CAP, 0, STRATA_LIFETIME_EXPIRES, true },
		{ 200, NULL, D_T0, D_T0_MINUS_1H, NULL, -1, CAP,
		  0, STRATA_LIFETIME_EXPIRES, false },
		{ 200, NULL, D_T0, D_T0, NULL, -1, CAP,
		  0, STRATA_LIFETIME_EXPIRES, false },
		/* invalid explicit freshness is stale, Expires not consulted */
		{ 200, "max-age=abc", D_T0, D_T0_PLUS_1H, NULL, -1, CAP,
		  0, STRATA_LIFETIME_MAX_AGE, true },
		{ 200, "max-age=60, max-age=120", D_T0, NULL, NULL, -1, CAP,
		  0, STRATA_LIFETIME_MAX_AGE, true },
		{ 200, "max-age=60, max-age=60", D_T0, NULL, NULL, -1, CAP,
		  60 * S, STRATA_LIFETIME_MAX_AGE, false },
		{ 200, "max-age=\"60\"", D_T0, NULL, NULL, -1, CAP,
		  60 * S, STRATA_LIFETIME_MAX_AGE, false },
		{ 200, "s-maxage=abc, max-age=60", D_T0, NULL, NULL, -1, CAP,
		  0, STRATA_LIFETIME_S_MAXAGE, true },
		/* 4.2.2 heuristic: 10% of Date - Last-Modified, capped */
		{ 200, NULL, D_T0, NULL, D_T0_MINUS_5D, -1, CAP,
		  12 * HOUR, STRATA_LIFETIME_HEURISTIC, false },
		{ 200, NULL, NULL, NULL, D_T0_MINUS_5D, -1, CAP,
		  12 * HOUR, STRATA_LIFETIME_HEURISTIC, false },
		{ 200, NULL, D_T0, NULL, D_T0_MINUS_100D, -1, CAP,
		  DAY, STRATA_LIFETIME_HEURISTIC, false },
		{ 200, NULL, D_T0, NULL, D_T0_MINUS_5D, -1, HOUR,
		  HOUR, STRATA_LIFETIME_HEURISTIC, false },
		{ 200, NULL, D_T0, NULL, D_T0_PLUS_1D, -1, CAP,
		  0, STRATA_LIFETIME_HEURISTIC, false },
		{ 404, NULL, D_T0, NULL, D_T0_MINUS_5D, -1, CAP,
		  12 * HOUR, STRATA_LIFETIME_HEURISTIC, false },
		{ 501, NULL, D_T0, NULL, D_T0_MINUS_5D, -1, CAP,
		  12 * HOUR, STRATA_LIFETIME_HEURISTIC, false },
		{ 302, NULL, D_T0, NULL, D_T0_MINUS_5D, 300 * S, CAP,
		  0, STRATA_LIFETIME_NONE, false },
		{ 302, "public", D_T0, NULL, D_T0_MINUS_5D, -1, CAP,
		  12 * HOUR, STRATA_LIFETIME_HEURISTIC, false },
		{ 500, NULL, D_T0, NULL, D_T0_MINUS_5D, 300 * S, CAP,
		  0, STRATA_LIFETIME_NONE, false },
		/* the route's default_ttl: only when nothing else applies */
		{ 200, NULL, D_T0, NULL, NULL, 300 * S, CAP,
		  300 * S, STRATA_LIFETIME_DEFAULT_TTL, false },
		{ 200, NULL, D_T0, NULL, NULL, -1, CAP,
		  0, STRATA_LIFETIME_NONE, false },
		{ 200, NULL, D_T0, NULL, D_T0_MINUS_5D, 300 * S, CAP,
		  12 * HOUR, STRATA_LIFETIME_HEURISTIC, false },
		{ 200, NULL, D_T0, NULL, D_T0_MINUS_5D, 300 * S, 0,
		  300 * S, STRATA_LIFETIME_DEFAULT_TTL, false },
		{ 200, NULL, D_T0, NULL, "last week", 300 * S, CAP,
		  300 * S, STRATA_LIFETIME_DEFAULT_TTL, false },
		{ 200, "max-age=60", D_T0, NULL, D_T0_MINUS_5D, 300 * S, CAP,
		  60 * S, STRATA_LIFETIME_MAX_AGE, false },
		{ 200, "no-cache", D_T0, NULL, NULL, 0, CAP,
		  0, STRATA_LIFETIME_DEFAULT_TTL, false },
	};

	for (size_t i = 0; i < N(cases); i++) {
		const struct lifetime_case *c = &cases[i];
		struct strata_cc_response cc;
		struct strata_freshness_route route = {
			.default_ttl_ms = c->default_ttl_ms,
			.heuristic_cap_ms = c->cap_ms,
		};
		struct strata_freshness_response r = {
			.status = c->status, .cc = &cc, .date = c->date,
			.expires = c->expires,
			.last_modified = c->last_modified,
			.request_time_ms = T0, .response_time_ms = T0,
		};
		struct strata_lifetime lt;

		strata_cc_parse_response(c->cc, &cc);
		strata_freshness_lifetime(&r, &route, &lt);
		cr_expect_eq(lt.ms, c->ms, "[%zu] %s: %lld ms", i,
			     c->cc ? c->cc : "-", (long long)lt.ms);
		cr_expect_eq(lt.source, c->source, "[%zu] source %s", i,
			     strata_lifetime_source_name(lt.source));
		cr_expect_eq(lt.invalid, c->invalid, "[%zu] invalid", i);
	}
}

/* --- age ------------------------------------------------------------------ */

Test(freshness, initial_age_with_skew_and_upstream_age)
{
	static const struct {
		const char *age;
		const char *date;
		int64_t request_time, response_time;
		int64_t out;
	} cases[] = {
		/* response_delay alone */
		{ NULL, D_T0, T0 - 500, T0, 500 },
		/* upstream Age */
		{ "100", D_T0, T0, T0, 100 * S },
		/* apparent age from an older Date */
		{ NULL, D_T0_MINUS_60S, T0, T0, 60 * S },
		{ "100", D_T0_MINUS_60S, T0, T0, 100 * S },
		{ "10", D_T0_MINUS_60S, T0 - 2 * S, T0, 60 * S },
		/* Date in the future (skew): apparent age 0 */
		{ NULL, D_T0_PLUS_60S, T0, T0, 0 },
		{ "30", D_T0_PLUS_60S, T0, T0, 30 * S },
		/* no Date, or an invalid one: apparent age 0 */
		{ "30", NULL, T0 - S, T0, 31 * S },
		{ NULL, "yesterday", T0, T0, 0 },
		/* invalid Age ignored; a list uses its first member */
		{ "abc", D_T0_MINUS_5S, T0, T0, 5 * S },
		{ "-5", D_T0, T0, T0, 0 },
		{ "5, 7", D_T0, T0, T0, 5 * S },
		{ "99999999999", D_T0, T0, T0, STRATA_DELTA_SECONDS_MAX * S },
		/* a clock step backwards: no negative delay */
		{ "10", D_T0, T0 + 5 * S, T0, 10 * S },
	};

	for (size_t i = 0; i < N(cases); i++) {
		int64_t a = strata_freshness_initial_age(
			cases[i].age, cases[i].date, cases[i].request_time,
			cases[i].response_time);

		cr_expect_eq(a, cases[i].out, "[%zu] %lld", i, (long long)a);
	}
	cr_expect_eq(strata_freshness_current_age(5 * S, T0, T0 + 10 * S),
		     15 * S);
	cr_expect_eq(strata_freshness_current_age(5 * S, T0, T0 - 10 * S),
		     5 * S);
}

/* --- storability ---------------------------------------------------------- */

struct store_case {
	const char *method;
	bool listed;
	unsigned status;
	const char *cc;
	const char *request_cc;
	bool expires, auth, cookie, force;
	enum strata_storable out;
};

Test(freshness, storable_refusals_and_authorization)
{
	static const struct store_case cases[] = {
		{ "GET", false, 200, NULL, NULL, false, false, false, false,
		  STRATA_STORABLE_OK },
		{ "HEAD", false, 200, NULL, NULL, false, false, false, false,
		  STRATA_STORABLE_OK },
		{ "POST", false, 200, "max-age=60", NULL, false, false, false,
		  false, STRATA_UNSTORABLE_METHOD },
		{ "POST", true, 200, NULL, NULL, false, false, false, false,
		  STRATA_STORABLE_OK },
		{ "get", false, 200, NULL, NULL, false, false, false, false,
		  STRATA_UNSTORABLE_METHOD },
		{ NULL, false, 200, NULL, NULL, false, false, false, false,
		  STRATA_UNSTORABLE_METHOD },
		{ "GET", false, 103, NULL, NULL, false, false, false, false,
		  STRATA_UNSTORABLE_STATUS },
		{ "GET", false, 600, "max-age=60", NULL, false, false, false,
		  true, STRATA_UNSTORABLE_STATUS },
		{ "GET", false, 206, "max-age=60", NULL, false, false, false,
		  false, STRATA_UNSTORABLE_STATUS_UNKNOWN },
		{ "GET", false, 304, NULL, NULL, false, false, false, false,
		  STRATA_UNSTORABLE_STATUS_UNKNOWN },
		/* must-understand overrides no-store for an understood
		 * status (5.2.2.3), refuses the rest */
		{ "GET", false, 200, "must-understand, no-store", NULL, false,
		  false, false, false, STRATA_STORABLE_OK },
		{ "GET", false, 302, "must-understand, no-store, max-age=60",
		  NULL, false, false, false, false,
		  STRATA_UNSTORABLE_MUST_UNDERSTAND },
		{ "GET", false, 200, "must-understand=1, no-store", NULL,
		  false, false, false, false, STRATA_UNSTORABLE_NO_STORE },
		{ "GET", false, 200, NULL, "no-store", false, false, false,
		  false, STRATA_UNSTORABLE_REQUEST_NO_STORE },
		{ "GET", false, 200, NULL, "no-store", false, false, false,
		  true, STRATA_UNSTORABLE_REQUEST_NO_STORE },
		{ "GET", false, 200, "no-store", NULL, false, false, false,
		  false, STRATA_UNSTORABLE_NO_STORE },
		{ "GET", false, 200, "no-store", NULL, false, false, false,
		  true, STRATA_STORABLE_OK },
		{ "GET", false, 200, "private", NULL, false, false, false,
		  false, STRATA_UNSTORABLE_PRIVATE },
		{ "GET", false, 200, "private=\"X-User\", max-age=60", NULL,
		  false, false, false, false, STRATA_UNSTORABLE_PRIVATE },
		{ "GET", false, 200, "private", NULL, false, false, false,
		  true, STRATA_STORABLE_OK },
		/* 3.5: Authorization needs public, must-revalidate or
		 * s-maxage */
		{ "GET", false, 200, NULL, NULL, false, true, false, false,
		  STRATA_UNSTORABLE_AUTHORIZATION },
		{ "GET", false, 200, "max-age=60", NULL, false, true, false,
		  false, STRATA_UNSTORABLE_AUTHORIZATION },
		{ "GET", false, 200, "public", NULL, false, true, false,
		  false, STRATA_STORABLE_OK },
		{ "GET", false, 200, "must-revalidate", NULL, false, true,
		  false, false, STRATA_STORABLE_OK },
		{ "GET", false, 200, "s-maxage=60", NULL, false, true, false,
		  false, STRATA_STORABLE_OK },
		{ "GET", false, 200, "s-maxage=abc", NULL, false, true, false,
		  false, STRATA_UNSTORABLE_AUTHORIZATION },
		{ "GET", false, 200, NULL, NULL, false, true, false, true,
		  STRATA_STORABLE_OK },
		{ "GET", false, 200, "max-age=60", NULL, false, false, true,
		  false, STRATA_UNSTORABLE_SET_COOKIE },
		{ "GET", false, 200, NULL, NULL, false, false, true, true,
		  STRATA_STORABLE_OK },
		/* section 3's last condition */
		{ "GET", false, 302, NULL, NULL, false, false, false, false,
		  STRATA_UNSTORABLE_NOT_CACHEABLE },
		{ "GET", false, 307, NULL, NULL, false, false, false, true,
		  STRATA_UNSTORABLE_NOT_CACHEABLE },
		{ "GET", false, 500, NULL, NULL, false, false, false, true,
		  STRATA_UNSTORABLE_NOT_CACHEABLE },
		{ "GET", false, 302, "max-age=60", NULL, false, false, false,
		  false, STRATA_STORABLE_OK },
		{ "GET", false, 302, "max-age=abc", NULL, false, false, false,
		  false, STRATA_STORABLE_OK },
		{ "GET", false, 302, NULL, NULL, true, false, false, false,
		  STRATA_STORABLE_OK },
		{ "GET", false, 302, "public", NULL, false, false, false,
		  false, STRATA_STORABLE_OK },
		{ "GET", false, 503, "s-maxage=5", NULL, false, false, false,
		  false, STRATA_STORABLE_OK },
		{ "GET", false, 404, NULL, NULL, false, false, false, false,
		  STRATA_STORABLE_OK },
		{ "GET", false, 405, NULL, NULL, false, false, false, false,
		  STRATA_STORABLE_OK },
		{ "GET", false, 414, NULL, NULL, false, false, false, false,
		  STRATA_STORABLE_OK },
		{ "GET", false, 501, NULL, NULL, false, false, false, false,
		  STRATA_STORABLE_OK },
		/* no-cache is storable: it restricts reuse, not storage */
		{ "GET", false, 200, "no-cache", NULL, false, false, false,
		  false, STRATA_STORABLE_OK },
	};

	for (size_t i = 0; i < N(cases); i++) {
		const struct store_case *c = &cases[i];
		struct strata_cc_response cc;
		struct strata_cc_request req;
		struct strata_freshness_store in = {
			.method = c->method, .route_lists_method = c->listed,
			.status = c->status, .cc = &cc,
			.request_cc = c->request_cc ? &req : NULL,
			.has_expires = c->expires,
			.request_has_authorization = c->auth,
			.has_set_cookie = c->cookie, .force = c->force,
		};
		enum strata_storable v;

		strata_cc_parse_response(c->cc, &cc);
		strata_cc_parse_request(c->request_cc, &req);
		v = strata_freshness_storable(&in);
		cr_expect_eq(v, c->out, "[%zu] %s %u %s: %s, expected %s", i,
			     c->method ? c->method : "-", c->status,
			     c->cc ? c->cc : "-",
			     strata_freshness_storable_name(v),
			     strata_freshness_storable_name(c->out));
	}
}

Test(freshness, storable_names_and_reasons)
{
	for (int v = STRATA_STORABLE_OK; v <= STRATA_UNSTORABLE_NOT_CACHEABLE;
	     v++) {
		const char *reason = strata_freshness_storable_reason(v);

		cr_expect_str_neq(strata_freshness_storable_name(v), "unknown");
		cr_expect(strstr(reason, "RFC") || strstr(reason, "Strata"),
			  "%d: %s", v, reason);
	}
	cr_expect_str_eq(strata_freshness_storable_name(
				 STRATA_UNSTORABLE_NO_STORE), "no-store");
	cr_expect_str_eq(strata_freshness_storable_name(99), "unknown");
	cr_expect_str_eq(strata_serve_verdict_name(STRATA_SERVE_STALE_REVALIDATE),
			 "stale-while-revalidate");
	cr_expect_str_eq(strata_lifetime_source_name(STRATA_LIFETIME_EXPIRES),
			 "expires");
	cr_expect(strata_freshness_status_heuristic(206));
	cr_expect(!strata_freshness_status_heuristic(302));
}

/* --- serving a stored entry ----------------------------------------------- */

struct serve_case {
	const char *cc;           /* the stored response's Cache-Control */
	const char *age;          /* its Age, or NULL */
	int64_t route_swr_ms, route_sie_ms;
	const char *request_cc;   /* NULL: the request's directives ignored */
	int64_t at_s;             /* now = T0 + at_s */
	enum strata_serve_verdict verdict;
	bool on_error;
};

#define FRESH STRATA_SERVE_FRESH
#define STALE STRATA_SERVE_STALE
#define SWR STRATA_SERVE_STALE_REVALIDATE
#define REVAL STRATA_SERVE_REVALIDATE
#define GW504 STRATA_SERVE_GATEWAY_TIMEOUT

Test(freshness, serve_decisions_and_stale_windows)
{
	static const struct serve_case cases[] = {
		{ "max-age=60", NULL, 0, 0, "", 30, FRESH, true },
		{ "max-age=60", NULL, 0, 0, NULL, 30, FRESH, true },
		/* fresh while lifetime > age: at 60s it is stale */
		{ "max-age=60", NULL, 0, 0, "", 60, REVAL, false },
		{ "max-age=60", NULL, 0, 0, "", 90, REVAL, false },
		/* the upstream Age counts */
		{ "max-age=60", "50", 0, 0, "", 5, FRESH, true },
		{ "max-age=60", "50", 0, 0, "", 10, REVAL, false },
		/* request max-age (5.2.1.1) */
		{ "max-age=60", NULL, 0, 0, "max-age=0", 1, REVAL, true },
		{ "max-age=60", NULL, 0, 0, "max-age=0", 0, REVAL, true },
		{ "max-age=60", NULL, 0, 0, "max-age=10", 5, FRESH, true },
		{ "max-age=60", NULL, 0, 0, "max-age=10", 20, REVAL, true },
		{ "max-age=60", NULL, 0, 0, "max-age=abc", 1, REVAL, true },
		/* request min-fresh (5.2.1.3) */
		{ "max-age=60", NULL, 0, 0, "min-fresh=20", 30, FRESH, true },
		{ "max-age=60", NULL, 0, 0, "min-fresh=20", 50, REVAL, true },
		/* no-cache, request (5.2.1.4) and response (5.2.2.4) */
		{ "max-age=60", NULL, 0, 0, "no-cache", 1, REVAL, true },
		{ "max-age=60, no-cache", NULL, 0, 0, "", 1, REVAL, false },
		{ "no-cache=\"Set-Cookie\", max-age=60", NULL, 0, 0, "", 1,
		  REVAL, false },
		/* request max-stale (5.2.1.2) */
		{ "max-age=60", NULL, 0, 0, "max-stale", 1000, STALE, true },
		{ "max-age=60", NULL, 0, 0, "max-stale=30", 80, STALE, true },
		{ "max-age=60", NULL, 0, 0, "max-stale=30", 100, REVAL, false },
		{ "max-age=60", NULL, 0, 0, "max-stale=abc", 80, REVAL, false },
		{ "max-age=60", NULL, 0, 0, "max-age=100, max-stale=30", 80,
		  STALE, true },
		/* must-revalidate, proxy-revalidate, s-maxage forbid stale */
		{ "max-age=60, must-revalidate", NULL, 0, 0, "max-stale", 100,
		  REVAL, false },
		{ "max-age=60, proxy-revalidate", NULL, 0, 0, "max-stale", 100,
		  REVAL, false },
		{ "s-maxage=60", NULL, 0, 0, "max-stale", 100, REVAL, false },
		{ "s-maxage=60, stale-while-revalidate=60", NULL, 0, 0, "", 80,
		  REVAL, false },
		/* stale-while-revalidate (RFC 5861 section 3) */
		{ "max-age=60, stale-while-revalidate=30", NULL, 0, 0, "", 80,
		  SWR, false },
		{ "max-age=60, stale-while-revalidate=30", NULL, 0, 0, NULL,
		  90, SWR, false },
		{ "max-age=60, stale-while-revalidate=30", NULL, 0, 0, "", 100,
		  REVAL, false },
		{ "max-age=60, stale-while-revalidate=30", NULL, 0, 0,
		  "max-age=100", 80, REVAL, false },
		{ "max-age=60, stale-while-revalidate=30", NULL, 0, 0,
		  "max-stale=5", 80, REVAL, false },
		{ "max-age=60, stale-while-revalidate=30", NULL, 0, 0,
		  "min-fresh=1", 80, REVAL, false },
		{ "max-age=60, stale-while-revalidate=30, must-revalidate",
		  NULL, 0, 0, "", 80, REVAL, false },
		{ "max-age=60", NULL, 30 * S, 0, "", 80, SWR, false },
		{ "max-age=60, stale-while-revalidate=0", NULL, 30 * S, 0, "",
		  80, REVAL, false },
		{ "max-age=60, stale-while-revalidate=abc", NULL, 30 * S, 0,
		  "", 80, REVAL, false },
		/* stale-if-error (RFC 5861 section 4) */
		{ "max-age=60, stale-if-error=30", NULL, 0, 0, "", 80, REVAL,
		  true },
		{ "max-age=60, stale-if-error=30", NULL, 0, 0, "", 100, REVAL,
		  false },
		{ "max-age=60", NULL, 0, 30 * S, "", 80, REVAL, true },
		{ "max-age=60, stale-if-error=10", NULL, 0, 60 * S, "", 80,
		  REVAL, false },
		{ "max-age=60", NULL, 0, 0, "stale-if-error=100", 150, REVAL,
		  true },
		{ "max-age=60, must-revalidate, stale-if-error=30", NULL, 0, 0,
		  "stale-if-error=100", 80, REVAL, false },
		{ "max-age=60, stale-if-error=30", NULL, 0, 0, "no-cache", 80,
		  REVAL, true },
		/* only-if-cached (5.2.1.7) */
		{ "max-age=60", NULL, 0, 0, "only-if-cached", 30, FRESH, true },
		{ "max-age=60", NULL, 0, 0, "only-if-cached", 90, GW504,
		  false },
		{ "max-age=60, stale-while-revalidate=60", NULL, 0, 0,
		  "only-if-cached", 90, SWR, false },
		{ "max-age=60, must-revalidate", NULL, 0, 0,
		  "only-if-cached, max-stale", 90, GW504, false },
		{ "max-age=60", NULL, 0, 0, "only-if-cached, no-cache", 1,
		  GW504, true },
		/* nothing explicit, or invalid: stale from the start */
		{ "max-age=abc", NULL, 0, 0, "", 0, REVAL, false },
		{ NULL, NULL, 0, 0, "", 0, REVAL, false },
	};

	for (size_t i = 0; i < N(cases); i++) {
		const struct serve_case *c = &cases[i];
		struct strata_cc_response cc;
		struct strata_cc_request req;
		struct strata_freshness_route route =
			STRATA_FRESHNESS_ROUTE_DEFAULTS;
		struct strata_freshness_response r = {
			.status = 200, .cc = &cc, .date = D_T0, .age = c->age,
			.request_time_ms = T0, .response_time_ms = T0,
		};
		struct strata_freshness f;
		struct strata_serve out;
		const char *why = NULL;

		route.stale_while_revalidate_ms = c->route_swr_ms;
		route.stale_if_error_ms = c->route_sie_ms;
		strata_cc_parse_response(c->cc, &cc);
		strata_cc_parse_request(c->request_cc, &req);
		strata_freshness_compute(&r, &route, &f);
		strata_freshness_serve(&f, c->request_cc ? &req : NULL,
				       T0 + c->at_s * S, &out);
		cr_expect_eq(out.verdict, c->verdict,
			     "[%zu] %s / %s at %llds: %s (%s)", i,
			     c->cc ? c->cc : "-",
			     c->request_cc ? c->request_cc : "(ignored)",
			     (long long)c->at_s,
			     strata_serve_verdict_name(out.verdict),
			     out.reason);
		cr_expect_eq(out.usable_on_error, c->on_error,
			     "[%zu] %s / %s at %llds: on error %d", i,
			     c->cc ? c->cc : "-",
			     c->request_cc ? c->request_cc : "(ignored)",
			     (long long)c->at_s, out.usable_on_error);
		cr_expect_eq(strata_freshness_usable_on_error(
				     &f, c->request_cc ? &req : NULL,
				     T0 + c->at_s * S, &why),
			     c->on_error, "[%zu]", i);
		cr_expect_not_null(why);
		cr_expect_not_null(out.reason);
	}
}

Test(freshness, compute_keeps_what_serving_needs)
{
	struct strata_cc_response cc;
	struct strata_freshness_response r = {
		.status = 200, .cc = &cc, .date = D_T0_MINUS_60S, .age = "10",
		.request_time_ms = T0 - 2 * S, .response_time_ms = T0,
	};
	struct strata_freshness f;
	struct strata_serve out;

	strata_cc_parse_response("s-maxage=300, stale-if-error=30", &cc);
	strata_freshness_compute(&r, NULL, &f);
	cr_expect_eq(f.lifetime_ms, 300 * S);
	cr_expect_eq(f.source, STRATA_LIFETIME_S_MAXAGE);
	cr_expect_eq(f.initial_age_ms, 60 * S);
	cr_expect(f.no_stale);
	cr_expect(!f.no_cache);
	cr_expect_eq(f.stale_while_revalidate_ms, -1);
	cr_expect_eq(f.stale_if_error_ms, 30 * S);
	/* fresh until response_time + lifetime - initial age */
	cr_expect_eq(strata_freshness_stale_at(&f), T0 + 240 * S);
	strata_freshness_serve(&f, NULL, T0 + 239 * S, &out);
	cr_expect_eq(out.verdict, STRATA_SERVE_FRESH);
	cr_expect_eq(out.current_age_ms, 299 * S);
	cr_expect_eq(out.ttl_ms, 1 * S);
	strata_freshness_serve(&f, NULL, T0 + 240 * S, &out);
	cr_expect_eq(out.verdict, STRATA_SERVE_REVALIDATE);
	cr_expect_eq(out.ttl_ms, 0);
}
