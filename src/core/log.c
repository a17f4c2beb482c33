/*
 * log.c: see log.h.  Lines are built in a stack buffer and written with a
 * single write(2) so concurrent threads never interleave.
 *
 * A line is assembled by a small writer (struct out) that never runs past
 * its buffer.  Strings go through put_str(), which escapes them for the
 * line's format one character at a time and, when the field's budget runs
 * out, backs up to the last character after which "..." still fits: the
 * line is cut, never malformed.  Numbers are written by hand
 * (strata_fmt_u64, put_ms) rather than by printf: no format parsing on the
 * access path, and no locale can turn "0.412" into "0,412".
 */
#include "config.h"

#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Relaxed: a level, format or access change may reach other threads a
 * little late; a line written meanwhile under the old setting is harmless. */
static atomic_int log_level = STRATA_LOG_INFO;
static atomic_int log_format = STRATA_LOG_TEXT;
static atomic_bool log_access = true;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void strata_log_set_level(enum strata_log_level level)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

void strata_log_set_format(enum strata_log_format format)
{
	atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

enum strata_log_format strata_log_get_format(void)
{
	return (enum strata_log_format)atomic_load_explicit(
		&log_format, memory_order_relaxed);
}

void strata_log_set_access(bool on)
{
	atomic_store_explicit(&log_access, on, memory_order_relaxed);
}

bool strata_log_access_enabled(void)
{
	return atomic_load_explicit(&log_access, memory_order_relaxed);
}

size_t strata_fmt_u64(char *buf, uint64_t n)
{
	char tmp[20];
	size_t len = 0;

	do {
		tmp[len++] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	for (size_t i = 0; i < len; i++)
		buf[i] = tmp[len - 1 - i];
	return len;
}

uint64_t strata_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t strata_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t strata_now_ms(void)
{
	return strata_now_us() / 1000u;
}

/* --- the line writer ------------------------------------------------------ */

/* A line under construction; `cap` leaves room for the newline. */
struct out {
	char *buf;
	size_t len;
	size_t cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void put_s(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t n)
{
	char digits[20];

	put(o, digits, strata_fmt_u64(digits, n));
}

/* Microseconds as milliseconds with three decimals: 412 -> "0.412". */
static void put_ms(struct out *o, uint64_t us)
{
	char frac[3] = {
		(char)('0' + us / 100 % 10),
		(char)('0' + us / 10 % 10),
		(char)('0' + us % 10),
	};

	put_u64(o, us / 1000);
	put(o, ".", 1);
	put(o, frac, 3);
}

/* How put_str() escapes. */
enum escape {
	ESC_JSON,   /* RFC 8259, output always valid UTF-8 */
	ESC_CLF,    /* the access line's fields, as Apache does: \" \\ \n \r \t,
		       \xHH for other bytes outside 0x20-0x7e */
	ESC_MSG,    /* text diagnostics: \n \r, \xHH for other controls */
};

static const char hex_digits[] = "0123456789abcdef";

/*
 * The length of the valid UTF-8 sequence at `p` (RFC 3629, table in
 * section 4: no overlong forms, no surrogates, nothing above U+10FFFF),
 * or 0.  Reads no further than a NUL, which is never a continuation byte.
 */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	}
	return n;
}

/*
 * The output for the character at `p`: its bytes in unit[] (at most 6),
 * their count returned, and how many input bytes it consumed in *used.
 */
static size_t escape_one(const unsigned char *p, enum escape how,
			 char unit[8], size_t *used)
{
	unsigned char c = p[0];
	size_t n;

	*used = 1;
	if (how != ESC_MSG && (c == '"' || c == '\\')) {
		unit[0] = '\\';
		unit[1] = (char)c;
		return 2;
	}
	if (c == '\n' || c == '\r' || (how != ESC_MSG && c == '\t') ||
	    (how == ESC_JSON && (c == '\b' || c == '\f'))) {
		unit[0] = '\\';
		unit[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't'
			: c == '\b' ? 'b' : 'f';
		return 2;
	}
	if (c < 0x20 || c == 0x7f) {
		if (how == ESC_MSG && c == '\t')
			goto raw;
		if (how == ESC_JSON) {
			memcpy(unit, "\\u00", 4);
			unit[4] = hex_digits[c >> 4];
			unit[5] = hex_digits[c & 15];
			return 6;
		}
		goto hex;
	}
	if (c < 0x80)
		goto raw;
	switch (how) {
	case ESC_CLF:
		goto hex;
	case ESC_MSG:
		goto raw;
	case ESC_JSON:
	default:
		n = utf8_len(p);
		if (n == 0) {
			memcpy(unit, "\\ufffd", 6);
			return 6;
		}
		memcpy(unit, p, n);
		*used = n;
		return n;
	}
raw:
	unit[0] = (char)c;
	return 1;
hex:
	unit[0] = '\\';
	unit[1] = 'x';
	unit[2] = hex_digits[c >> 4];
	unit[3] = hex_digits[c & 15];
	return 4;
}

/*
 * Write `s` escaped, in double quotes when `quoted`, using at most `max`
 * bytes of the line (quotes included).  A string that does not fit ends
 * with "..." after its last whole character.  `max` must leave room for
 * the quotes and "...": at least 5.
 */
static void put_str(struct out *o, const char *s, size_t max, bool quoted,
		    enum escape how)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t limit = o->len + max, close = quoted ? 1 : 0, cut;

	if (limit > o->cap)
		limit = o->cap;
	if (o->len + close * 2 + 3 > limit)
		return;  /* no room at all: a caller bug, but never overflow */
	if (quoted)
		o->buf[o->len++] = '"';
	cut = o->len;
	while (*p) {
		char unit[8];
		size_t used, n = escape_one(p, how, unit, &used);

		if (o->len + n + close > limit) {
			o->len = cut;
			memcpy(o->buf + o->len, "...", 3);
			o->len += 3;
			break;
		}
		memcpy(o->buf + o->len, unit, n);
		o->len += n;
		p += used;
		/* A later cut can come back here and still fit "..." + quote. */
		if (o->len + 3 + close <= limit)
			cut = o->len;
	}
	if (quoted)
		o->buf[o->len++] = '"';
}

/* A JSON string value, or null. */
static void put_json(struct out *o, const char *s, size_t max)
{
	if (s == NULL)
		put_s(o, "null");
	else
		put_str(o, s, max, true, ESC_JSON);
}

/* A quoted field of the access line, "-" when absent. */
static void put_clf(struct out *o, const char *s, size_t max)
{
	put_str(o, s ? s : "-", max, true, ESC_CLF);
}

/* Terminate with a newline and write in one call. */
static void emit(struct out *o)
{
	ssize_t rc;

	o->buf[o->len++] = '\n';
	do {
		rc = write(STDERR_FILENO, o->buf, o->len);
	} while (rc < 0 && errno == EINTR);
}

/* --- time ----------------------------------------------------------------- */

/*
 * The calendar fields of the current second, per thread: gmtime_r() and
 * the formatting run once a second per thread rather than once a line.
 */
struct second {
	time_t sec;
	char iso[20];   /* "2026-11-29T12:00:00" */
	char clf[21];   /* "29/Nov/2026:12:00:00" */
};

static _Thread_local struct second this_second = { .sec = -1 };

static void two(char *p, int n)
{
	p[0] = (char)('0' + n / 10 % 10);
	p[1] = (char)('0' + n % 10);
}

/* Month names are fixed English, as the common log format wants: not
 * strftime's %b, which follows the locale. */
static const struct second *now_second(long *ms)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct second *s = &this_second;
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	*ms = ts.tv_nsec / 1000000L;
	if (ts.tv_sec == s->sec)
		return s;
	gmtime_r(&ts.tv_sec, &tm);
	tm.tm_year += 1900;
	/* Years 0-9999; beyond that the fields are wrong but the
	 * writes stay in bounds. */
	two(s->iso, tm.tm_year / 100);
	two(s->iso + 2, tm.tm_year);
	s->iso[4] = '-';
	two(s->iso + 5, tm.tm_mon + 1);
	s->iso[7] = '-';
	two(s->iso + 8, tm.tm_mday);
	s->iso[10] = 'T';
	two(s->iso + 11, tm.tm_hour);
	s->iso[13] = ':';
	two(s->iso + 14, tm.tm_min);
	s->iso[16] = ':';
	two(s->iso + 17, tm.tm_sec);
	s->iso[19] = '\0';
	two(s->clf, tm.tm_mday);
	s->clf[2] = '/';
	memcpy(s->clf + 3, months + 3 * tm.tm_mon, 3);
	s->clf[6] = '/';
	memcpy(s->clf + 7, s->iso, 4);
	s->clf[11] = ':';
	memcpy(s->clf + 12, s->iso + 11, 8);
	s->clf[20] = '\0';
	s->sec = ts.tv_sec;
	return s;
}

/* "2026-11-29T12:00:00.123Z" */
static void put_iso_time(struct out *o)
{
	long ms;
	const struct second *s = now_second(&ms);
	char frac[5] = {
		'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10),
		(char)('0' + ms % 10), 'Z',
	};

	put(o, s->iso, 19);
	put(o, frac, 5);
}

/* --- diagnostics ---------------------------------------------------------- */

void strata_log(enum strata_log_level level, const char *fmt, ...)
{
	char line[PIPE_BUF], msg[PIPE_BUF];
	struct out o = { line, 0, sizeof(line) - 1 };
	va_list ap;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	if ((unsigned)level > STRATA_LOG_DEBUG)
		level = STRATA_LOG_DEBUG;
	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	if (strata_log_get_format() == STRATA_LOG_JSON) {
		put_s(&o, "{\"time\":\"");
		put_iso_time(&o);
		put_s(&o, "\",\"level\":\"");
		put_s(&o, level_names[level]);
		put_s(&o, "\",\"msg\":");
		put_str(&o, msg, o.cap - o.len - 1, true, ESC_JSON);
		put_s(&o, "}");
	} else {
		char pid[24];

		put_iso_time(&o);
		put_s(&o, " strata[");
		put(&o, pid, strata_fmt_u64(pid, (uint64_t)getpid()));
		put_s(&o, "] ");
		put_s(&o, level_names[level]);
		put_s(&o, ": ");
		put_str(&o, msg, o.cap - o.len, false, ESC_MSG);
	}
	emit(&o);
}

/* --- access lines --------------------------------------------------------- */

/*
 * Budgets of the fields a client controls (escaped, quotes included), so
 * that one huge field cannot crowd out the others.  The user agent, last,
 * takes what is left.  The static assertion checks that the worst case
 * still leaves it ACCESS_UA_MIN bytes.
 */
#define ACCESS_CLIENT_MAX 96
#define ACCESS_METHOD_MAX 48
#define ACCESS_PATH_MAX 1600
#define ACCESS_PROTOCOL_MAX 24
#define ACCESS_CACHE_MAX 200
#define ACCESS_TIER_MAX 24
#define ACCESS_TRACE_MAX 40
#define ACCESS_REFERER_MAX 800
#define ACCESS_UA_MIN 800
/* Everything else in the JSON line, the longer format: keys, punctuation,
 * time, and numbers at their widest (20 digits, ms with 3 decimals). */
#define ACCESS_FIXED_MAX 300

_Static_assert(ACCESS_CLIENT_MAX + ACCESS_METHOD_MAX + ACCESS_PATH_MAX +
		       ACCESS_PROTOCOL_MAX + ACCESS_CACHE_MAX +
		       ACCESS_TIER_MAX + ACCESS_TRACE_MAX +
		       ACCESS_REFERER_MAX + ACCESS_UA_MIN + ACCESS_FIXED_MAX <
	       PIPE_BUF, "the access line's budgets exceed PIPE_BUF");

static void access_json(struct out *o, const struct strata_access *a)
{
	put_s(o, "{\"time\":\"");
	put_iso_time(o);
	put_s(o, "\",\"type\":\"access\",\"client\":");
	put_json(o, a->client, ACCESS_CLIENT_MAX);
	put_s(o, ",\"method\":");
	put_json(o, a->method, ACCESS_METHOD_MAX);
	put_s(o, ",\"path\":");
	put_json(o, a->target, ACCESS_PATH_MAX);
	put_s(o, ",\"protocol\":");
	put_json(o, a->protocol, ACCESS_PROTOCOL_MAX);
	put_s(o, ",\"status\":");
	if (a->status != 0)
		put_u64(o, a->status);
	else
		put_s(o, "null");
	put_s(o, ",\"bytes\":");
	put_u64(o, a->bytes);
	put_s(o, ",\"duration_ms\":");
	put_ms(o, a->duration_us);
	put_s(o, ",\"cache\":");
	put_json(o, a->cache_status, ACCESS_CACHE_MAX);
	put_s(o, ",\"tier\":");
	put_json(o, a->tier && a->tier[0] ? a->tier : NULL, ACCESS_TIER_MAX);
	put_s(o, ",\"upstream_ms\":");
	if (a->has_upstream)
		put_ms(o, a->upstream_us);
	else
		put_s(o, "null");
	put_s(o, ",\"trace_id\":");
	put_json(o, a->trace_id, ACCESS_TRACE_MAX);
	put_s(o, ",\"referer\":");
	put_json(o, a->referer, ACCESS_REFERER_MAX);
	put_s(o, ",\"user_agent\":");
	put_json(o, a->user_agent, o->cap - o->len - 1);
	put_s(o, "}");
}

/*
 * The combined log format (client, identity "-", user "-", [time],
 * "request line", status, bytes, "referer", "user agent"), then the
 * quoted Cache-Status and the duration.  The time is when the line is
 * written, in UTC.
 */
static void access_text(struct out *o, const struct strata_access *a)
{
	long ms;
	const struct second *s = now_second(&ms);

	put_str(o, a->client ? a->client : "-", ACCESS_CLIENT_MAX, false,
		ESC_CLF);
	put_s(o, " - - [");
	put(o, s->clf, 20);
	put_s(o, " +0000] ");
	if (a->method == NULL && a->target == NULL) {
		put_s(o, "\"-\"");
	} else {
		/* One quoted request line made of three escaped parts. */
		put_s(o, "\"");
		put_str(o, a->method ? a->method : "-", ACCESS_METHOD_MAX,
			false, ESC_CLF);
		put_s(o, " ");
		put_str(o, a->target ? a->target : "-", ACCESS_PATH_MAX,
			false, ESC_CLF);
		put_s(o, " ");
		put_str(o, a->protocol ? a->protocol : "HTTP/1.1",
			ACCESS_PROTOCOL_MAX, false, ESC_CLF);
		put_s(o, "\"");
	}
	put_s(o, " ");
	put_u64(o, a->status);
	put_s(o, " ");
	put_u64(o, a->bytes);
	put_s(o, " ");
	put_clf(o, a->referer, ACCESS_REFERER_MAX);
	put_s(o, " ");
	/* Leave room for the cache status and the duration. */
	put_clf(o, a->user_agent,
		o->cap - o->len - ACCESS_CACHE_MAX - 32);
	put_s(o, " ");
	put_clf(o, a->cache_status, ACCESS_CACHE_MAX);
	put_s(o, " ");
	put_ms(o, a->duration_us);
	put_s(o, "ms");
}

void strata_log_access(const struct strata_access *a)
{
	char line[PIPE_BUF];
	struct out o = { line, 0, sizeof(line) - 1 };

	if (!atomic_load_explicit(&log_access, memory_order_relaxed))
		return;
	if (strata_log_get_format() == STRATA_LOG_JSON)
		access_json(&o, a);
	else
		access_text(&o, a);
	emit(&o);
}

void strata_assert_fail(const char *cond, const char *file, int line)
{
	strata_log(STRATA_LOG_ERROR, "assertion failed: %s (%s:%d)", cond,
		   file, line);
	abort();
}
