/*
 * log.h: Strata's diagnostic and access log, written to stderr.
 *
 * Every line is formatted in a stack buffer and handed to the kernel with
 * one write(2), so lines from different threads never interleave (writes
 * to a pipe up to PIPE_BUF bytes are atomic; longer lines are truncated to
 * that).  No lock, no allocation: safe on any thread, including
 * libmicrohttpd's and the upstream thread.
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

/* Lines above this level are dropped.  Default: STRATA_LOG_INFO. */
void strata_log_set_level(enum strata_log_level level);

/* Whether access lines are written (default: yes). */
void strata_log_set_access(bool on);
bool strata_log_access_enabled(void);

/*
 * Write `n` in decimal at `buf` (at least 20 bytes), without a NUL;
 * returns the number of digits.  For hot paths, where snprintf's format
 * parsing costs more than the number.
 */
size_t strata_fmt_u64(char *buf, uint64_t n);

/* "2026-11-29T09:30:31.123Z strata[PID] LEVEL: message" */
void strata_log(enum strata_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One access-log line; fields are printed as given, "-" for NULL. */
struct strata_access {
	const char *client;
	const char *method;
	const char *target;
	unsigned status;        /* 0: no response was sent */
	uint64_t bytes;         /* body bytes handed to the client */
	uint64_t duration_us;
	const char *cache_status;
};
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
