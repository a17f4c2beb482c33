/*
 * raw_origin.h: a test origin that answers every request with bytes the
 * test scripts, byte for byte: responses no HTTP library would send (no
 * Date, a broken status line, a truncated body, a reset).
 *
 * One thread on 127.0.0.1 (a kernel-chosen port) accepts connections one
 * at a time, reads one request head (up to the blank line), writes the
 * script, then closes the connection (or resets it: see raw_origin_set).
 * Any thread may call any function while it runs, except raw_origin_stop.
 */
#ifndef STRATA_TESTS_RAW_ORIGIN_H
#define STRATA_TESTS_RAW_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

struct raw_origin;

/* Start answering with `response` (copied; NUL-terminated text).
 * NULL after printing why. */
struct raw_origin *raw_origin_start(const char *response);

/* Answer later requests with `response` instead; `reset`: then close
 * with a TCP reset (SO_LINGER 0) instead of a normal close. */
void raw_origin_set(struct raw_origin *o, const char *response, bool reset);

unsigned raw_origin_port(const struct raw_origin *o);

/* Requests answered so far. */
size_t raw_origin_count(struct raw_origin *o);

void raw_origin_stop(struct raw_origin **o);

#endif /* STRATA_TESTS_RAW_ORIGIN_H */
