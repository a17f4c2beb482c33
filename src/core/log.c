/*
 * log.c: see log.h.  Lines are built in a stack buffer and written with a
 * single write(2) so concurrent threads never interleave.
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

/* Relaxed: a level change may reach other threads a little late; harmless. */
static atomic_int log_level = STRATA_LOG_INFO;
static atomic_bool log_access = true;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void strata_log_set_level(enum strata_log_level level)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
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

/* ISO 8601 UTC with milliseconds; returns the length written. */
static size_t format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03ldZ",
			      ts.tv_nsec / 1000000L);
	return n;
}

/* Terminate with a newline (truncating if needed) and write in one call. */
static void emit(char *line, size_t used, size_t cap)
{
	ssize_t rc;

	if (used >= cap - 1)
		used = cap - 2;
	line[used++] = '\n';
	do {
		rc = write(STDERR_FILENO, line, used);
	} while (rc < 0 && errno == EINTR);
}

void strata_log(enum strata_log_level level, const char *fmt, ...)
{
	char line[PIPE_BUF];
	size_t n;
	int rc;
	va_list ap;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	n = format_time(line, sizeof(line));
	n += (size_t)snprintf(line + n, sizeof(line) - n, " strata[%ld] %s: ",
			      (long)getpid(), level_names[level]);
	va_start(ap, fmt);
	rc = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (rc > 0)
		n += (size_t)rc;
	emit(line, n < sizeof(line) ? n : sizeof(line) - 1, sizeof(line));
}

void strata_log_access(const struct strata_access *a)
{
	char line[PIPE_BUF];
	size_t n;
	int rc;

	if (!atomic_load_explicit(&log_access, memory_order_relaxed))
		return;
	n = format_time(line, sizeof(line));
	rc = snprintf(line + n, sizeof(line) - n,
		      " %s \"%s %s\" %u %llu %.3fms \"%s\"",
		      a->client ? a->client : "-",
		      a->method ? a->method : "-",
		      a->target ? a->target : "-", a->status,
		      (unsigned long long)a->bytes,
		      (double)a->duration_us / 1000.0,
		      a->cache_status ? a->cache_status : "-");
	if (rc > 0)
		n += (size_t)rc;
	emit(line, n < sizeof(line) ? n : sizeof(line) - 1, sizeof(line));
}

void strata_assert_fail(const char *cond, const char *file, int line)
{
	strata_log(STRATA_LOG_ERROR, "assertion failed: %s (%s:%d)", cond,
		   file, line);
	abort();
}
