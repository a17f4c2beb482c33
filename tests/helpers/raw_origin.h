/*
 * raw_origin.h: a test origin that answers every request with bytes the
 * test scripts, byte for byte: responses no HTTP library would send (no
 * Date, a broken status line, a truncated body, a reset).
 *
 * One thread on 127.0.0.1 (a kernel-chosen port) accepts connections one
 * at a time, reads one request head (up to the blank line), writes the
 * script, optionally hangs (see raw_origin_set_hang), then closes the
 * connection (or resets it: see raw_origin_set).
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

/*
 * After writing the script to later connections, keep each one open for
 * up to `hang_ms` (reading and discarding what the peer sends), ending
 * early when the peer closes it or the origin stops; then close or reset
 * it as raw_origin_set said.  0 (the default): close at once.  A script
 * of headers alone, or of a partial body, then stands for an origin that
 * hangs mid-response.  Connections are answered one at a time, so the
 * next one waits meanwhile.
 */
void raw_origin_set_hang(struct raw_origin *o, unsigned hang_ms);

unsigned raw_origin_port(const struct raw_origin *o);

/* Requests answered so far. */
size_t raw_origin_count(struct raw_origin *o);

void raw_origin_stop(struct raw_origin **o);

#endif /* STRATA_TESTS_RAW_ORIGIN_H */
