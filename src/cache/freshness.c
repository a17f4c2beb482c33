/*
 * freshness.c: HTTP caching rules for a shared cache (RFC 9111); see
 * freshness.h for the contract of each function.
 *
 * How it fits together.  When a response arrives the front end parses its
 * Cache-Control once (strata_cc_parse_response), asks whether it may be
 * stored (strata_freshness_storable), and boils it down to a struct
 * strata_freshness (strata_freshness_compute): lifetime, initial age,
 * arrival time, and the few flags that restrict later reuse.  On a hit,
 * strata_freshness_serve() needs only that struct, the request's parsed
 * Cache-Control and the time: integer comparisons, no parsing of stored
 * headers.
 *
 * Dates are converted with Howard Hinnant's days-from-civil algorithm
 * (public domain, https://howardhinnant.github.io/date_algorithms.html),
 * rewritten here: proleptic Gregorian, no time zones, no libc time
 * functions, so nothing depends on TZ, the locale or a lock inside libc.
 *
 * The parsers are written for hostile input: every read is bounded by the
 * NUL terminator, numbers saturate at 2^31 (RFC 9111 section 1.2.2), and
 * a malformed part of a header never widens what the cache may do.
 *
 * Pure functions: thread-safe, no globals, no allocation.
 */
#include "config.h"

#include "cache/freshness.h"

#include <errno.h>
#include <string.h>

#include "core/http.h"

#define MS_PER_S 1000LL
#define S_PER_DAY 86400LL
#define MS_PER_DAY (S_PER_DAY * MS_PER_S)

/* --- small character helpers (ASCII only, locale-free) -------------------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The first n bytes of a equal b (n bytes, no NUL inside), ignoring ASCII
 * case.  Stops at a NUL in a, so a short string never over-reads. */
static bool ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] == '\0' || lower(a[i]) != lower(b[i]))
			return false;
	}
	return true;
}

static const char *skip_ows(const char *p)
{
	while (is_ows(*p))
		p++;
	return p;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* --- calendar ------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12, d 1-31). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);                        /* 0-399 */
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  /* 0-365 */
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            /* 0-146096 */
	return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse: the date of a day count. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
	return (int)(((days % 7) + 11) % 7);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30,
					       31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* --- HTTP-date ------------------------------------------------------------ */

static const char *const month_names[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};
static const char *const day_names[7] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
};
static const char *const day_names_long[7] = {
	"Sunday", "Monday", "Tuesday", "Wednesday",
	"Thursday", "Friday", "Saturday",
};

/* The fields of a date as read, before they are checked. */
struct date_fields {
	int wday;         /* 0-6 */
	int64_t year;
	unsigned month;   /* 1-12 */
	unsigned day;
	unsigned hour, minute, second;
	bool two_digit_year;
};

/* Two ASCII digits, or -1. */
static int two_digits(const char *p)
{
	if (!is_digit(p[0]) || !is_digit(p[1]))
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

static int month_of(const char *p)
{
	for (int i = 0; i < 12; i++) {
		if (ieq(p, month_names[i], 3))
			return i + 1;
	}
	return -1;
}

static int day_of(const char *p)
{
	for (int i = 0; i < 7; i++) {
		if (ieq(p, day_names[i], 3))
			return i;
	}
	return -1;
}

/* "HH:MM:SS" at p (8 bytes known to exist). */
static bool read_time(const char *p, struct date_fields *f)
{
	int h = two_digits(p), m = two_digits(p + 3), s = two_digits(p + 6);

	if (h < 0 || m < 0 || s < 0 || p[2] != ':' || p[5] != ':')
		return false;
	f->hour = (unsigned)h;
	f->minute = (unsigned)m;
	f->second = (unsigned)s;
	return true;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT": exactly 29 bytes. */
static bool read_imf(const char *p, struct date_fields *f)
{
	int d = two_digits(p + 5), mon = month_of(p + 8),
	    y1 = two_digits(p + 12), y2 = two_digits(p + 14);

	f->wday = day_of(p);
	if (f->wday < 0 || p[3] != ',' || p[4] != ' ' || d < 0 ||
	    p[7] != ' ' || mon < 0 || p[11] != ' ' || y1 < 0 || y2 < 0 ||
	    p[16] != ' ' || !read_time(p + 17, f) || p[25] != ' ' ||
	    !ieq(p + 26, "GMT", 3))
		return false;
	f->day = (unsigned)d;
	f->month = (unsigned)mon;
	f->year = y1 * 100 + y2;
	return true;
}

/* "Sun Nov  6 08:49:37 1994": exactly 24 bytes; the day is "DD" or " D". */
static bool read_asctime(const char *p, struct date_fields *f)
{
	int d, mon = month_of(p + 4), y1 = two_digits(p + 20),
	       y2 = two_digits(p + 22);

	if (p[8] == ' ' && is_digit(p[9]))
		d = p[9] - '0';
	else
		d = two_digits(p + 8);
	f->wday = day_of(p);
	if (f->wday < 0 || p[3] != ' ' || mon < 0 || p[7] != ' ' || d < 0 ||
	    p[10] != ' ' || !read_time(p + 11, f) || p[19] != ' ' ||
	    y1 < 0 || y2 < 0)
		return false;
	f->day = (unsigned)d;
	f->month = (unsigned)mon;
	f->year = y1 * 100 + y2;
	return true;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT": a full day name, then 24 bytes. */
static bool read_rfc850(const char *p, size_t len, struct date_fields *f)
{
	const char *q = NULL;
	int d, mon, y;

	f->wday = -1;
	for (int i = 0; i < 7 && q == NULL; i++) {
		size_t n = strlen(day_names_long[i]);

		if (len == n + 24 && ieq(p, day_names_long[i], n)) {
			f->wday = i;
			q = p + n;   /* ", 06-Nov-94 08:49:37 GMT" */
		}
	}
	if (q == NULL)
		return false;
	d = two_digits(q + 2);
	mon = month_of(q + 5);
	y = two_digits(q + 9);
	if (q[0] != ',' || q[1] != ' ' || d < 0 || q[4] != '-' || mon < 0 ||
	    q[8] != '-' || y < 0 || q[11] != ' ' || !read_time(q + 12, f) ||
	    q[20] != ' ' || !ieq(q + 21, "GMT", 3))
		return false;
	f->day = (unsigned)d;
	f->month = (unsigned)mon;
	f->year = y;
	f->two_digit_year = true;
	return true;
}

static int64_t fields_ms(const struct date_fields *f, int64_t days)
{
	return ((days * 24 + f->hour) * 60 + f->minute) * 60 * MS_PER_S +
	       (int64_t)f->second * MS_PER_S;
}

/*
 * RFC 9110 section 5.6.7: a two-digit year "that appears to be more than
 * 50 years in the future" is "the most recent year in the past that had
 * the same last two digits".  The limit is now plus 50 calendar years;
 * a date exactly at the limit is not more than 50 years ahead.
 */
static int64_t century_for(const struct date_fields *f, int64_t now_ms)
{
	int64_t now_days = floor_div(now_ms, MS_PER_DAY), now_year, limit,
		year;
	unsigned now_m, now_d;

	civil_from_days(now_days, &now_year, &now_m, &now_d);
	limit = days_from_civil(now_year + 50, now_m, now_d) * MS_PER_DAY +
		(now_ms - now_days * MS_PER_DAY);
	/* Candidates, latest first: the next century's, this century's,
	 * the last century's; the last one is always in the past. */
	year = floor_div(now_year, 100) * 100 + 100 + f->year;
	for (int i = 0; i < 2; i++) {
		if (fields_ms(f, days_from_civil(year, f->month, f->day)) <=
		    limit)
			break;
		year -= 100;
	}
	return year;
}

static int date_parse(const char *s, bool have_now, int64_t now_ms,
		      int64_t *out_ms)
{
	struct date_fields f = { 0 };
	const char *end;
	size_t len;
	int64_t days;
	bool ok;

	if (s == NULL)
		return -EINVAL;
	s = skip_ows(s);
	end = s + strlen(s);
	while (end > s && is_ows(end[-1]))
		end--;
	len = (size_t)(end - s);

	if (len == 29 && s[3] == ',')
		ok = read_imf(s, &f);
	else if (len == 24 && s[3] == ' ')
		ok = read_asctime(s, &f);
	else
		ok = read_rfc850(s, len, &f);
	if (!ok)
		return -EINVAL;

	if (f.two_digit_year) {
		if (have_now)
			f.year = century_for(&f, now_ms);
		else
			f.year += f.year < 70 ? 2000 : 1900;
	}
	if (f.month < 1 || f.month > 12 || f.day < 1 ||
	    f.day > days_in_month(f.year, f.month) || f.hour > 23 ||
	    f.minute > 59 || f.second > 60)
		return -EINVAL;
	if (f.second == 60) {
		/* A leap second exists only as 23:59:60; read it as
		 * 23:59:59, the nearest earlier time (RFC 9111 4.2). */
		if (f.hour != 23 || f.minute != 59)
			return -EINVAL;
		f.second = 59;
	}
	days = days_from_civil(f.year, f.month, f.day);
	if (weekday(days) != f.wday)
		return -EINVAL;
	*out_ms = fields_ms(&f, days);
	return 0;
}

int strata_http_date_parse(const char *s, int64_t *out_ms)
{
	return date_parse(s, false, 0, out_ms);
}

int strata_http_date_parse_at(const char *s, int64_t now_ms, int64_t *out_ms)
{
	return date_parse(s, true, now_ms, out_ms);
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
}

int strata_http_date_format(int64_t ms, char buf[STRATA_HTTP_DATE_BUFSIZE])
{
	int64_t secs = floor_div(ms, MS_PER_S), days = floor_div(secs, S_PER_DAY),
		rem = secs - days * S_PER_DAY, year;
	unsigned month, day;

	civil_from_days(days, &year, &month, &day);
	if (year < 0 || year > 9999) {
		buf[0] = '\0';
		return -ERANGE;
	}
	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	memcpy(buf, day_names[weekday(days)], 3);
	memcpy(buf + 3, ", ", 2);
	put2(buf + 5, day);
	buf[7] = ' ';
	memcpy(buf + 8, month_names[month - 1], 3);
	buf[11] = ' ';
	put2(buf + 12, (unsigned)(year / 100));
	put2(buf + 14, (unsigned)(year % 100));
	buf[16] = ' ';
	put2(buf + 17, (unsigned)(rem / 3600));
	buf[19] = ':';
	put2(buf + 20, (unsigned)(rem / 60 % 60));
	buf[22] = ':';
	put2(buf + 23, (unsigned)(rem % 60));
	memcpy(buf + 25, " GMT", 5);   /* with the NUL */
	return 0;
}

/* --- delta-seconds and Age ------------------------------------------------ */

/* 1*DIGIT over exactly [p, p + len), saturating at 2^31 (section 1.2.2). */
static bool delta_read(const char *p, size_t len, int64_t *out_s)
{
	int64_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(p[i]))
			return false;
		if (v < STRATA_DELTA_SECONDS_MAX)
			v = v * 10 + (p[i] - '0');
	}
	*out_s = v < STRATA_DELTA_SECONDS_MAX ? v : STRATA_DELTA_SECONDS_MAX;
	return true;
}

int strata_http_age_parse(const char *value, int64_t *out_s)
{
	const char *p, *digits;

	if (value == NULL)
		return -EINVAL;
	p = skip_ows(value);
	digits = p;
	while (is_digit(*p))
		p++;
	if (p == digits)
		return -EINVAL;
	/* The first member of a list is used, the rest discarded. */
	if (*skip_ows(p) != '\0' && *skip_ows(p) != ',')
		return -EINVAL;
	return delta_read(digits, (size_t)(p - digits), out_s) ? 0 : -EINVAL;
}

/* --- Cache-Control -------------------------------------------------------- */

/* One list element: `name [ "=" arg ]` as found. */
struct cc_item {
	const char *name;
	size_t name_len;
	const char *arg;        /* inside the quotes when quoted */
	size_t arg_len;
	bool has_arg;
	bool quoted;
	bool bad;               /* the element broke the grammar */
};

/* Advance to the next top-level comma (or the end), stepping over quoted
 * strings so that a comma inside quotes does not split. */
static const char *skip_element(const char *p)
{
	while (*p != '\0' && *p != ',') {
		if (*p++ != '"')
			continue;
		while (*p != '\0' && *p != '"') {
			if (*p == '\\' && p[1] != '\0')
				p++;
			p++;
		}
		if (*p == '"')
			p++;
	}
	return p;
}

static bool item_is(const struct cc_item *it, const char *name)
{
	size_t n = strlen(name);

	return it->name_len == n && ieq(it->name, name, n);
}

/* A directive without argument, written correctly. */
static bool item_clean(const struct cc_item *it)
{
	return !it->has_arg && !it->bad;
}

/* The element's delta-seconds argument, token or quoted form. */
static bool item_delta(const struct cc_item *it, int64_t *out_s)
{
	if (!it->has_arg || it->bad)
		return false;
	return delta_read(it->arg, it->arg_len, out_s);
}

/*
 * Merge one occurrence into a directive's state.  Repeats with the same
 * value are harmless; a different value, or any unusable one, makes the
 * directive INVALID for good (section 4.2.1; freshness.h, "Decision").
 */
static void delta_merge(struct strata_cc_delta *d, bool ok, int64_t seconds)
{
	if (!ok) {
		d->state = STRATA_CC_INVALID;
		d->seconds = 0;
		return;
	}
	if (d->state == STRATA_CC_ABSENT) {
		d->state = STRATA_CC_SET;
		d->seconds = seconds;
	} else if (d->state == STRATA_CC_SET && d->seconds != seconds) {
		d->state = STRATA_CC_INVALID;
		d->seconds = 0;
	}
}

static void delta_item(struct strata_cc_delta *d, const struct cc_item *it)
{
	int64_t s = 0;
	bool ok = item_delta(it, &s);

	delta_merge(d, ok, s);
}

typedef void cc_apply_fn(void *out, const struct cc_item *it);

/*
 * Walk `#( token [ OWS "=" OWS ( token / quoted-string ) ] )`, calling
 * apply for each element that has a name.  Returns whether any element
 * broke the grammar.
 */
static bool cc_walk(const char *p, cc_apply_fn *apply, void *out)
{
	bool malformed = false;

	for (;;) {
		struct cc_item it = { 0 };
		const char *q;

		while (is_ows(*p) || *p == ',')
			p++;
		if (*p == '\0')
			break;
		it.name = p;
		while (strata_http_is_tchar((unsigned char)*p))
			p++;
		it.name_len = (size_t)(p - it.name);
		if (it.name_len == 0) {
			malformed = true;
			p = skip_element(p);
			continue;
		}
		q = skip_ows(p);
		if (*q == '=') {
			p = skip_ows(q + 1);
			it.has_arg = true;
			if (*p == '"') {
				it.quoted = true;
				it.arg = ++p;
				while (*p != '\0' && *p != '"') {
					if (*p == '\\' && p[1] != '\0')
						p++;
					p++;
				}
				it.arg_len = (size_t)(p - it.arg);
				if (*p == '\0') {
					/* Unterminated: the rest of the
					 * value is this argument. */
					it.bad = true;
				} else {
					p++;
				}
			} else {
				it.arg = p;
				while (strata_http_is_tchar((unsigned char)*p))
					p++;
				it.arg_len = (size_t)(p - it.arg);
				if (it.arg_len == 0)
					it.bad = true;
			}
		} else {
			p = q;
		}
		p = skip_ows(p);
		if (*p != '\0' && *p != ',') {
			it.bad = true;
			p = skip_element(p);
		}
		malformed |= it.bad;
		apply(out, &it);
	}
	return malformed;
}

static void response_item(void *out, const struct cc_item *it)
{
	struct strata_cc_response *cc = out;

	if (item_is(it, "max-age"))
		delta_item(&cc->max_age, it);
	else if (item_is(it, "s-maxage"))
		delta_item(&cc->s_maxage, it);
	else if (item_is(it, "stale-while-revalidate"))
		delta_item(&cc->stale_while_revalidate, it);
	else if (item_is(it, "stale-if-error"))
		delta_item(&cc->stale_if_error, it);
	else if (item_is(it, "no-cache")) {
		/* Qualified or not, and even malformed: a shared cache that
		 * does not strip the named fields treats it as plain. */
		cc->no_cache = true;
		cc->no_cache_qualified |= it->has_arg;
	} else if (item_is(it, "private")) {
		cc->private = true;
		cc->private_qualified |= it->has_arg;
	} else if (item_is(it, "no-store"))
		cc->no_store = true;
	else if (item_is(it, "must-revalidate"))
		cc->must_revalidate = true;
	else if (item_is(it, "proxy-revalidate"))
		cc->proxy_revalidate = true;
	else if (item_is(it, "no-transform"))
		cc->no_transform = true;
	/* Permissions count only when written correctly. */
	else if (item_is(it, "public"))
		cc->public |= item_clean(it);
	else if (item_is(it, "must-understand"))
		cc->must_understand |= item_clean(it);
	else if (item_is(it, "immutable"))
		cc->immutable |= item_clean(it);
	/* Anything else is an extension this cache ignores (5.2.3). */
}

static void request_item(void *out, const struct cc_item *it)
{
	struct strata_cc_request *cc = out;

	if (item_is(it, "max-age"))
		delta_item(&cc->max_age, it);
	else if (item_is(it, "max-stale")) {
		if (item_clean(it))
			delta_merge(&cc->max_stale, true, STRATA_CC_UNBOUNDED);
		else
			delta_item(&cc->max_stale, it);
	} else if (item_is(it, "min-fresh"))
		delta_item(&cc->min_fresh, it);
	else if (item_is(it, "stale-if-error"))
		delta_item(&cc->stale_if_error, it);
	else if (item_is(it, "no-cache"))
		cc->no_cache = true;
	else if (item_is(it, "no-store"))
		cc->no_store = true;
	else if (item_is(it, "only-if-cached"))
		cc->only_if_cached = true;
	else if (item_is(it, "no-transform"))
		cc->no_transform = true;
}

void strata_cc_parse_response(const char *value, struct strata_cc_response *out)
{
	memset(out, 0, sizeof(*out));
	if (value != NULL)
		out->malformed = cc_walk(value, response_item, out);
}

void strata_cc_parse_request(const char *value, struct strata_cc_request *out)
{
	memset(out, 0, sizeof(*out));
	if (value != NULL)
		out->malformed = cc_walk(value, request_item, out);
}

/* --- freshness lifetime and age ------------------------------------------- */

static const struct strata_freshness_route route_defaults =
	STRATA_FRESHNESS_ROUTE_DEFAULTS;

const char *strata_lifetime_source_name(enum strata_lifetime_source s)
{
	static const char *const names[] = {
		[STRATA_LIFETIME_NONE] = "none",
		[STRATA_LIFETIME_S_MAXAGE] = "s-maxage",
		[STRATA_LIFETIME_MAX_AGE] = "max-age",
		[STRATA_LIFETIME_EXPIRES] = "expires",
		[STRATA_LIFETIME_HEURISTIC] = "heuristic",
		[STRATA_LIFETIME_DEFAULT_TTL] = "default-ttl",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s]
							       : "unknown";
}

bool strata_freshness_status_heuristic(unsigned status)
{
	switch (status) {
	case 200: case 203: case 204: case 206: case 300: case 301:
	case 308: case 404: case 405: case 410: case 414: case 501:
		return true;
	default:
		return false;
	}
}

/* The Date of a response, or its arrival time when Date is absent or
 * does not parse (RFC 9110 section 6.6.1). */
static int64_t date_or_arrival(const struct strata_freshness_response *r)
{
	int64_t date_ms;

	if (r->date != NULL &&
	    strata_http_date_parse_at(r->date, r->response_time_ms,
				      &date_ms) == 0)
		return date_ms;
	return r->response_time_ms;
}

static void lifetime_from(const struct strata_cc_delta *d,
			  enum strata_lifetime_source source,
			  struct strata_lifetime *out)
{
	out->source = source;
	if (d->state == STRATA_CC_SET)
		out->ms = d->seconds * MS_PER_S;
	else
		out->invalid = true;    /* stale: lifetime 0 */
}

void strata_freshness_lifetime(const struct strata_freshness_response *r,
			       const struct strata_freshness_route *route,
			       struct strata_lifetime *out)
{
	const struct strata_cc_response *cc = r->cc;
	int64_t date_ms, t;

	if (route == NULL)
		route = &route_defaults;
	out->ms = 0;
	out->source = STRATA_LIFETIME_NONE;
	out->invalid = false;

	if (cc->s_maxage.state != STRATA_CC_ABSENT) {
		lifetime_from(&cc->s_maxage, STRATA_LIFETIME_S_MAXAGE, out);
		return;
	}
	if (cc->max_age.state != STRATA_CC_ABSENT) {
		lifetime_from(&cc->max_age, STRATA_LIFETIME_MAX_AGE, out);
		return;
	}
	if (r->expires != NULL) {
		out->source = STRATA_LIFETIME_EXPIRES;
		if (strata_http_date_parse_at(r->expires, r->response_time_ms,
					      &t) != 0) {
			/* "0" and every other invalid date: already
			 * expired (section 5.3). */
			out->invalid = true;
			return;
		}
		date_ms = date_or_arrival(r);
		out->ms = t > date_ms ? t - date_ms : 0;
		return;
	}
	/* No explicit expiration time.  Heuristics (and the route's
	 * default, the operator's own heuristic) only for heuristically
	 * cacheable statuses or responses marked public (section 4.2.2). */
	if (!strata_freshness_status_heuristic(r->status) && !cc->public)
		return;
	if (route->heuristic_cap_ms > 0 && r->last_modified != NULL &&
	    strata_http_date_parse_at(r->last_modified, r->response_time_ms,
				      &t) == 0) {
		date_ms = date_or_arrival(r);
		out->source = STRATA_LIFETIME_HEURISTIC;
		out->ms = t < date_ms ? (date_ms - t) / 10 : 0;
		if (out->ms > route->heuristic_cap_ms)
			out->ms = route->heuristic_cap_ms;
		return;
	}
	if (route->default_ttl_ms >= 0) {
		out->source = STRATA_LIFETIME_DEFAULT_TTL;
		out->ms = route->default_ttl_ms;
	}
}

int64_t strata_freshness_initial_age(const char *age, const char *date,
				     int64_t request_time_ms,
				     int64_t response_time_ms)
{
	int64_t age_s = 0, date_ms, apparent = 0, delay, corrected;

	if (age != NULL && strata_http_age_parse(age, &age_s) != 0)
		age_s = 0;
	/* A Date ahead of our clock (skew) gives 0, not a negative age. */
	if (date != NULL &&
	    strata_http_date_parse_at(date, response_time_ms, &date_ms) == 0 &&
	    response_time_ms > date_ms)
		apparent = response_time_ms - date_ms;
	delay = response_time_ms > request_time_ms
			? response_time_ms - request_time_ms
			: 0;
	corrected = age_s * MS_PER_S + delay;
	return apparent > corrected ? apparent : corrected;
}

int64_t strata_freshness_current_age(int64_t initial_age_ms,
				     int64_t response_time_ms, int64_t now_ms)
{
	int64_t resident = now_ms > response_time_ms
				   ? now_ms - response_time_ms
				   : 0;

	return initial_age_ms + resident;
}

/* A stale window: the response's directive when present, else the
 * route's; -1 for none. */
static int64_t window(const struct strata_cc_delta *d, int64_t route_ms)
{
	if (d->state == STRATA_CC_SET)
		return d->seconds * MS_PER_S;
	if (d->state == STRATA_CC_INVALID)
		return -1;
	return route_ms > 0 ? route_ms : -1;
}

void strata_freshness_compute(const struct strata_freshness_response *r,
			      const struct strata_freshness_route *route,
			      struct strata_freshness *out)
{
	const struct strata_cc_response *cc = r->cc;
	struct strata_lifetime lt;

	if (route == NULL)
		route = &route_defaults;
	strata_freshness_lifetime(r, route, &lt);
	out->response_time_ms = r->response_time_ms;
	out->initial_age_ms = strata_freshness_initial_age(
		r->age, r->date, r->request_time_ms, r->response_time_ms);
	out->lifetime_ms = lt.ms;
	out->source = lt.source;
	out->lifetime_invalid = lt.invalid;
	out->no_cache = cc->no_cache;
	/* s-maxage "incorporates the semantics of proxy-revalidate" for a
	 * shared cache (5.2.2.10), valid or not. */
	out->no_stale = cc->must_revalidate || cc->proxy_revalidate ||
			cc->s_maxage.state != STRATA_CC_ABSENT;
	out->stale_while_revalidate_ms =
		window(&cc->stale_while_revalidate,
		       route->stale_while_revalidate_ms);
	out->stale_if_error_ms =
		window(&cc->stale_if_error, route->stale_if_error_ms);
}

int64_t strata_freshness_stale_at(const struct strata_freshness *f)
{
	return f->response_time_ms + f->lifetime_ms - f->initial_age_ms;
}

/* --- may it be stored ----------------------------------------------------- */

/* Statuses whose caching requirements Strata implements, for
 * must-understand: the heuristically cacheable ones but 206. */
static bool status_understood(unsigned status)
{
	return status != 206 && strata_freshness_status_heuristic(status);
}

enum strata_storable strata_freshness_storable(
	const struct strata_freshness_store *in)
{
	const struct strata_cc_response *cc = in->cc;
	bool get = in->method != NULL && (strcmp(in->method, "GET") == 0 ||
					  strcmp(in->method, "HEAD") == 0);
	bool understood = status_understood(in->status);

	if (!get && !in->route_lists_method)
		return STRATA_UNSTORABLE_METHOD;
	if (in->status < 200 || in->status > 599)
		return STRATA_UNSTORABLE_STATUS;
	if (in->status == 206 || in->status == 304)
		return STRATA_UNSTORABLE_STATUS_UNKNOWN;
	if (cc->must_understand && !understood)
		return STRATA_UNSTORABLE_MUST_UNDERSTAND;
	if (in->request_cc != NULL && in->request_cc->no_store)
		return STRATA_UNSTORABLE_REQUEST_NO_STORE;
	if (!in->force) {
		if (cc->no_store && !(cc->must_understand && understood))
			return STRATA_UNSTORABLE_NO_STORE;
		if (cc->private)
			return STRATA_UNSTORABLE_PRIVATE;
		if (in->request_has_authorization && !cc->must_revalidate &&
		    !cc->public && cc->s_maxage.state != STRATA_CC_SET)
			return STRATA_UNSTORABLE_AUTHORIZATION;
		if (in->has_set_cookie)
			return STRATA_UNSTORABLE_SET_COOKIE;
	}
	if (cc->public || in->has_expires ||
	    cc->max_age.state != STRATA_CC_ABSENT ||
	    cc->s_maxage.state != STRATA_CC_ABSENT ||
	    strata_freshness_status_heuristic(in->status))
		return STRATA_STORABLE_OK;
	return STRATA_UNSTORABLE_NOT_CACHEABLE;
}

const char *strata_freshness_storable_name(enum strata_storable v)
{
	static const char *const names[] = {
		[STRATA_STORABLE_OK] = "stored",
		[STRATA_UNSTORABLE_METHOD] = "method",
		[STRATA_UNSTORABLE_STATUS] = "status",
		[STRATA_UNSTORABLE_STATUS_UNKNOWN] = "status-not-understood",
		[STRATA_UNSTORABLE_MUST_UNDERSTAND] = "must-understand",
		[STRATA_UNSTORABLE_REQUEST_NO_STORE] = "request-no-store",
		[STRATA_UNSTORABLE_NO_STORE] = "no-store",
		[STRATA_UNSTORABLE_PRIVATE] = "private",
		[STRATA_UNSTORABLE_AUTHORIZATION] = "authorization",
		[STRATA_UNSTORABLE_SET_COOKIE] = "set-cookie",
		[STRATA_UNSTORABLE_NOT_CACHEABLE] = "not-cacheable",
	};

	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v]
							       : "unknown";
}

const char *strata_freshness_storable_reason(enum strata_storable v)
{
	static const char *const reasons[] = {
		[STRATA_STORABLE_OK] = "storable in a shared cache "
			"(RFC 9111 section 3)",
		[STRATA_UNSTORABLE_METHOD] = "the request method is not GET or "
			"HEAD and the route does not list it (RFC 9111 "
			"section 3)",
		[STRATA_UNSTORABLE_STATUS] = "the status is not final "
			"(RFC 9111 section 3)",
		[STRATA_UNSTORABLE_STATUS_UNKNOWN] = "206 and 304 are stored "
			"only by a cache that understands them; Strata does "
			"not combine partial content (RFC 9111 sections 3, "
			"3.3, 4.3.4)",
		[STRATA_UNSTORABLE_MUST_UNDERSTAND] = "must-understand, and "
			"Strata does not implement this status's caching "
			"rules (RFC 9111 section 5.2.2.3)",
		[STRATA_UNSTORABLE_REQUEST_NO_STORE] = "the request has "
			"Cache-Control: no-store (RFC 9111 section 5.2.1.5)",
		[STRATA_UNSTORABLE_NO_STORE] = "the response has "
			"Cache-Control: no-store (RFC 9111 section 5.2.2.5)",
		[STRATA_UNSTORABLE_PRIVATE] = "the response has "
			"Cache-Control: private, for a single user (RFC 9111 "
			"section 5.2.2.7)",
		[STRATA_UNSTORABLE_AUTHORIZATION] = "the request has "
			"Authorization and the response has none of public, "
			"must-revalidate, s-maxage (RFC 9111 section 3.5)",
		[STRATA_UNSTORABLE_SET_COOKIE] = "the response sets a cookie "
			"(Strata's rule: a session must not reach another "
			"client; the route's force overrides it)",
		[STRATA_UNSTORABLE_NOT_CACHEABLE] = "no explicit freshness "
			"(max-age, s-maxage, Expires, public) and the status "
			"is not heuristically cacheable (RFC 9111 section 3, "
			"RFC 9110 section 15.1)",
	};

	return (unsigned)v < sizeof(reasons) / sizeof(reasons[0])
		       ? reasons[v]
		       : "unknown verdict";
}

/* --- may a stored entry answer this request ------------------------------- */

/* Whether a request delta-seconds bound (ms) admits `value_ms`. */
static bool within(const struct strata_cc_delta *d, int64_t value_ms)
{
	if (d->state != STRATA_CC_SET)
		return false;
	if (d->seconds == STRATA_CC_UNBOUNDED)
		return true;
	return value_ms <= d->seconds * MS_PER_S;
}

static enum strata_serve_verdict decide(const struct strata_freshness *f,
					const struct strata_cc_request *req,
					int64_t age, int64_t ttl,
					const char **reason)
{
	int64_t staleness = -ttl;

	if (f->no_cache) {
		*reason = "the response has no-cache: validate every reuse "
			  "(RFC 9111 section 5.2.2.4)";
		return STRATA_SERVE_REVALIDATE;
	}
	if (req != NULL && req->no_cache) {
		*reason = "the request has no-cache (RFC 9111 section "
			  "5.2.1.4)";
		return STRATA_SERVE_REVALIDATE;
	}
	if (req != NULL && req->max_age.state != STRATA_CC_ABSENT &&
	    (req->max_age.state == STRATA_CC_INVALID ||
	     req->max_age.seconds == 0 || age > req->max_age.seconds * MS_PER_S)) {
		*reason = "older than the request's max-age (RFC 9111 "
			  "section 5.2.1.1)";
		return STRATA_SERVE_REVALIDATE;
	}
	if (req != NULL && req->min_fresh.state != STRATA_CC_ABSENT &&
	    (req->min_fresh.state == STRATA_CC_INVALID ||
	     ttl < req->min_fresh.seconds * MS_PER_S)) {
		*reason = "fresh for less than the request's min-fresh "
			  "(RFC 9111 section 5.2.1.3)";
		return STRATA_SERVE_REVALIDATE;
	}
	if (ttl > 0) {
		*reason = "fresh (RFC 9111 section 4.2)";
		return STRATA_SERVE_FRESH;
	}
	if (f->no_stale) {
		*reason = "stale, and must-revalidate, proxy-revalidate or "
			  "s-maxage forbid serving it stale (RFC 9111 "
			  "sections 4.2.4, 5.2.2.2)";
		return STRATA_SERVE_REVALIDATE;
	}
	if (req != NULL && within(&req->max_stale, staleness)) {
		*reason = "stale, within the request's max-stale (RFC 9111 "
			  "section 5.2.1.2)";
		return STRATA_SERVE_STALE;
	}
	if (f->stale_while_revalidate_ms >= 0 &&
	    staleness <= f->stale_while_revalidate_ms &&
	    (req == NULL || (req->max_age.state == STRATA_CC_ABSENT &&
			     req->max_stale.state == STRATA_CC_ABSENT))) {
		*reason = "stale, within stale-while-revalidate: serve and "
			  "refresh (RFC 5861 section 3)";
		return STRATA_SERVE_STALE_REVALIDATE;
	}
	*reason = "stale (RFC 9111 section 4.2.4)";
	return STRATA_SERVE_REVALIDATE;
}

void strata_freshness_serve(const struct strata_freshness *f,
			    const struct strata_cc_request *req,
			    int64_t now_ms, struct strata_serve *out)
{
	out->current_age_ms = strata_freshness_current_age(
		f->initial_age_ms, f->response_time_ms, now_ms);
	out->ttl_ms = f->lifetime_ms - out->current_age_ms;
	out->verdict = decide(f, req, out->current_age_ms, out->ttl_ms,
			      &out->reason);
	if (out->verdict == STRATA_SERVE_REVALIDATE && req != NULL &&
	    req->only_if_cached) {
		out->verdict = STRATA_SERVE_GATEWAY_TIMEOUT;
		out->reason = "only-if-cached, and the stored response "
			      "cannot be used without the origin: 504 (RFC "
			      "9111 section 5.2.1.7)";
	}
	out->usable_on_error =
		strata_freshness_usable_on_error(f, req, now_ms, NULL);
}

bool strata_freshness_usable_on_error(const struct strata_freshness *f,
				      const struct strata_cc_request *req,
				      int64_t now_ms, const char **reason)
{
	int64_t ttl = f->lifetime_ms - strata_freshness_current_age(
					       f->initial_age_ms,
					       f->response_time_ms, now_ms),
		staleness = -ttl, sie = f->stale_if_error_ms;
	const char *why;
	bool ok = false;

	if (req != NULL && req->stale_if_error.state == STRATA_CC_SET &&
	    req->stale_if_error.seconds * MS_PER_S > sie)
		sie = req->stale_if_error.seconds * MS_PER_S;

	if (f->no_cache) {
		why = "the response has no-cache: never used unvalidated "
		      "(RFC 9111 section 5.2.2.4)";
	} else if (ttl > 0) {
		ok = true;
		why = "still fresh (RFC 9111 section 4.2)";
	} else if (f->no_stale) {
		why = "stale, and must-revalidate, proxy-revalidate or "
		      "s-maxage forbid serving it stale, even on error (RFC "
		      "9111 section 5.2.2.2)";
	} else if (req != NULL && within(&req->max_stale, staleness)) {
		ok = true;
		why = "stale, within the request's max-stale (RFC 9111 "
		      "section 5.2.1.2)";
	} else if (sie >= 0 && staleness <= sie) {
		ok = true;
		why = "stale, within stale-if-error (RFC 5861 section 4)";
	} else {
		why = "stale beyond every window that allows serving it "
		      "(RFC 9111 section 4.2.4)";
	}
	if (reason != NULL)
		*reason = why;
	return ok;
}

const char *strata_serve_verdict_name(enum strata_serve_verdict v)
{
	static const char *const names[] = {
		[STRATA_SERVE_FRESH] = "fresh",
		[STRATA_SERVE_STALE] = "stale",
		[STRATA_SERVE_STALE_REVALIDATE] = "stale-while-revalidate",
		[STRATA_SERVE_REVALIDATE] = "revalidate",
		[STRATA_SERVE_GATEWAY_TIMEOUT] = "only-if-cached",
	};

	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v]
							       : "unknown";
}
