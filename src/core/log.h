/*
 * log.h: Strata's diagnostic and access log, written to stderr.
 *
 * Every line is formatted in a stack buffer and handed to the kernel with
 * one write(2), so lines from different threads never interleave (writes
 * to a pipe up to PIPE_BUF bytes are atomic; longer content is cut to fit,
 * see below).  No lock, no allocation: safe on any thread, including
 * libmicrohttpd's and the upstream thread.
 *
 * Two formats (strata_log_set_format):
 *
 *   text  diagnostics: "2026-11-29T09:30:31.123Z strata[4242] warn: msg"
 *         access: the combined log format, then the Cache-Status and the
 *         duration:
 *         127.0.0.1 - - [29/Nov/2026:12:00:00 +0000] "GET /p HTTP/1.1" 200
 *         123 "-" "curl/8.5.0" "strata; hit; ttl=5; detail=memory" 0.412ms
 *   json  one JSON object per line (RFC 8259):
 *         {"time":"2026-11-29T12:00:00.123Z","level":"warn","msg":"..."}
 *         {"time":...,"type":"access","client":...,"method":...,"path":...,
 *          "protocol":...,"status":200,"bytes":123,"duration_ms":0.412,
 *          "cache":...,"tier":"memory","upstream_ms":12.300,
 *          "trace_id":...,"referer":...,"user_agent":...}
 *         an absent field is null.
 *
 * Escaping.  Lines must stay one line and parseable whatever a client
 * sends.  JSON strings escape '"', '\\' and every control character (\n,
 * \r, \t, \b, \f, else \u00XX; DEL too); valid UTF-8 passes through, and
 * each byte that is not part of a valid UTF-8 sequence (overlong forms and
 * surrogates included) becomes U+FFFD, written \ufffd: the line is always
 * valid UTF-8 and valid JSON, at the price of the original byte.  In the
 * text access line the fields escape '"' and '\\' with a backslash, \n, \r
 * and \t as such, and every other byte below 0x20 or above 0x7e as \xHH
 * (as Apache does), so no byte is lost.  Text diagnostics write \n and \r
 * as such and other control bytes but tab as \xHH, and leave the rest as
 * it is.
 *
 * Length.  A line is at most PIPE_BUF (4096) bytes with its newline.  A
 * field that would not fit is cut at a character boundary and ends with
 * "..." (inside the quotes), so a cut JSON line is still valid JSON.  In the
 * access line the client-supplied fields have fixed budgets (after
 * escaping: method 48 bytes, path 1600, protocol 24, referer 800; the user
 * agent gets what is left, at least 800).
 */
#ifndef STRATA_CORE_LOG_H
#define STRATA_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum strata_log_level {
	STRATA_LOG_ERROR = 0,
	STRATA_LOG_WARN = 1,
	STRATA_LOG_INFO = 2,
	STRATA_LOG_DEBUG = 3,
};

/* The values equal include/strata/config.h's enum strata_config_log_format. */
enum strata_log_format {
	STRATA_LOG_TEXT = 0,
	STRATA_LOG_JSON = 1,
};

/* Lines above this level are dropped.  Default: STRATA_LOG_INFO.  Access
 * lines have no level: strata_log_set_access() alone switches them. */
void strata_log_set_level(enum strata_log_level level);

/*
 * The format of every later line, diagnostics and access lines alike.
 * Default: STRATA_LOG_TEXT.  Call it once at start-up, before the threads
 * that log: a change is seen by other threads eventually, not at once, and
 * a line being formatted during the change may use either format.
 */
void strata_log_set_format(enum strata_log_format format);
enum strata_log_format strata_log_get_format(void);

/* Whether access lines are written (default: yes). */
void strata_log_set_access(bool on);
bool strata_log_access_enabled(void);

/*
 * Write `n` in decimal at `buf` (at least 20 bytes), without a NUL;
 * returns the number of digits.  For hot paths, where snprintf's format
 * parsing costs more than the number.
 */
size_t strata_fmt_u64(char *buf, uint64_t n);

/*
 * One diagnostic line at `level`, unless the level is filtered out:
 * "2026-11-29T09:30:31.123Z strata[PID] LEVEL: message" in text,
 * {"time":"...","level":"LEVEL","msg":"message"} in JSON.  Thread-safe.
 */
void strata_log(enum strata_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * One access-log line.  Every field's zero value (NULL, 0, false) means
 * "absent", so a designated initializer that leaves a field out is right:
 * absent strings are "-" in the text line (protocol: "HTTP/1.1") and null
 * in JSON.  The strings are borrowed for the call only, need not be valid
 * UTF-8 or free of control bytes (they are escaped), and may be NULL.
 */
struct strata_access {
	const char *client;     /* peer address, e.g. "127.0.0.1" */
	const char *method;
	const char *target;     /* request target as received: path?query
				   (JSON "path") */
	unsigned status;        /* 0: no response was sent (JSON null) */
	uint64_t bytes;         /* body bytes handed to the client */
	uint64_t duration_us;
	const char *cache_status;   /* the Cache-Status value sent */
	const char *protocol;   /* "HTTP/1.1", "HTTP/1.0" */
	const char *referer;    /* Referer request header */
	const char *user_agent; /* User-Agent request header */
	const char *tier;       /* "memory", "disk", "redis" when a tier
				   answered; NULL or "" otherwise (JSON only) */
	bool has_upstream;      /* an upstream (or handler) call was made */
	uint64_t upstream_us;   /* its duration, when has_upstream */
	const char *trace_id;   /* 32 lowercase hex (the trace this request
				   belongs to), or NULL (JSON only) */
};

/* Write one access line, unless access lines are off.  Thread-safe. */
void strata_log_access(const struct strata_access *a);

/* Monotonic milliseconds (CLOCK_MONOTONIC), for deadlines and durations. */
uint64_t strata_now_ms(void);

/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME): for times
 * stored in entries, which other hosts and later runs must agree on. */
int64_t strata_wall_ms(void);

/* Monotonic microseconds. */
uint64_t strata_now_us(void);

#define strata_log_error(...) strata_log(STRATA_LOG_ERROR, __VA_ARGS__)
#define strata_log_warn(...) strata_log(STRATA_LOG_WARN, __VA_ARGS__)
#define strata_log_info(...) strata_log(STRATA_LOG_INFO, __VA_ARGS__)
#define strata_log_debug(...) strata_log(STRATA_LOG_DEBUG, __VA_ARGS__)

/*
 * Assertions stay on in release builds, as in Varnish: a broken invariant
 * is a bug that must stop the process before it serves a wrong answer.
 */
#define STRATA_ASSERT(cond)                                                   \
	do {                                                                  \
		if (__builtin_expect(!(cond), 0))                             \
			strata_assert_fail(#cond, __FILE__, __LINE__);        \
	} while (0)

__attribute__((noreturn)) void strata_assert_fail(const char *cond,
						  const char *file, int line);

#endif /* STRATA_CORE_LOG_H */
