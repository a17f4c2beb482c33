/*
 * trace.h: W3C Trace Context (https://www.w3.org/TR/trace-context/) for
 * the requests Strata forwards: parse the client's `traceparent`, make the
 * one Strata sends upstream, and check `tracestate`.
 *
 * Strata takes part in the trace as one span per request: the traceparent
 * it forwards keeps the caller's trace-id and flags and carries a new
 * parent-id of Strata's own, so the application's span is a child of
 * Strata's, not of the client's.  What the front end does with a request:
 *
 *   - exactly one valid `traceparent` (strata_trace_parse() returns 0):
 *     forward strata_trace_child(&in) and the request's `tracestate`
 *     unchanged (all its field lines joined with ","), if it is
 *     well-formed (strata_trace_state_valid()); a malformed one is dropped;
 *   - none, several, or an invalid one: restart the trace (the spec's
 *     choice for invalid input, and its rule for duplicates): forward
 *     strata_trace_child(NULL), a new trace-id with the sampled flag set,
 *     and no `tracestate` (the spec: a vendor that cannot parse
 *     traceparent must not use tracestate).
 *
 * A new trace is marked sampled (flags 01): Strata records every request
 * in its access log with its trace-id, and the spec asks a component that
 * made a definitive recording decision to say so.  An application whose
 * tracer samples by its parent (OpenTelemetry's default,
 * parentbased_always_on) then records those requests, as it would have
 * with no Strata in front; one that samples a ratio of root spans now
 * records all the requests Strata forwards without a traceparent.
 *
 * Flags: the sampled bit (01) and Trace Context Level 2's random-trace-id
 * bit (02), which describes the trace-id and so travels with it, are kept;
 * other bits are cleared, as the spec requires of unknown flags.
 *
 * Identifiers come from a per-thread xoshiro256** generator seeded from
 * getrandom(2) (reseeded in a forked child): no lock, no system call after
 * the first id of a thread.  They are unpredictable enough to be unique,
 * not to be secrets.
 *
 * Every function is pure or touches only its thread's generator: all are
 * thread-safe.
 */
#ifndef STRATA_OBS_TRACE_H
#define STRATA_OBS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STRATA_TRACE_ID_HEX 32        /* trace-id: 16 bytes in hex */
#define STRATA_TRACE_SPAN_HEX 16      /* parent-id: 8 bytes in hex */
#define STRATA_TRACEPARENT_LEN 55     /* "00-" 32 "-" 16 "-" 2 */
#define STRATA_TRACE_FLAG_SAMPLED 0x01
#define STRATA_TRACE_FLAG_RANDOM 0x02 /* Level 2: trace-id is random */

/* One trace context, as received or as sent. */
struct strata_trace {
	char trace_id[STRATA_TRACE_ID_HEX + 1];     /* lowercase hex + NUL */
	char parent_id[STRATA_TRACE_SPAN_HEX + 1];  /* lowercase hex + NUL */
	uint8_t flags;          /* STRATA_TRACE_FLAG_* bits */
	bool valid;             /* the fields above hold a usable context */
};

/*
 * Parse a `traceparent` field value.  Leading and trailing spaces and tabs
 * are ignored.  Version 00 must be exactly "00-" 32 hex "-" 16 hex "-"
 * 2 hex; a higher version (01 to fe) may carry more after the flags, as
 * long as the flags are followed by the end or by "-"; version ff, upper
 * case hex, an all-zero trace-id or parent-id, and any other length are
 * invalid.  Flags are masked as described above.
 * Returns 0 with *out valid, or -EINVAL with *out zeroed (valid false).
 * `traceparent` may be NULL (-EINVAL).
 */
int strata_trace_parse(const char *traceparent, struct strata_trace *out);

/*
 * The context Strata sends upstream: when `in` is valid, its trace-id and
 * flags with a new parent-id (Strata's span); when `in` is NULL or not
 * valid, a new trace: new trace-id, new parent-id, flags 01 (sampled).
 * `out` may be the same object as `in`.
 */
void strata_trace_child(const struct strata_trace *in,
			struct strata_trace *out);

/*
 * Write the `traceparent` value of a valid context as version 00 (55
 * characters and a NUL) and return 55; for an invalid one write "" and
 * return 0.
 */
size_t strata_trace_format(const struct strata_trace *t,
			   char buf[STRATA_TRACEPARENT_LEN + 1]);

/* A new random trace-id (never all zeros) as 32 lowercase hex + NUL. */
void strata_trace_new_trace_id(char out[STRATA_TRACE_ID_HEX + 1]);

/* A new random span id (never all zeros) as 16 lowercase hex + NUL. */
void strata_trace_new_span_id(char out[STRATA_TRACE_SPAN_HEX + 1]);

/*
 * Whether a `tracestate` value (several field lines already joined with
 * ",") is well-formed: at most 32 list members separated by commas with
 * optional spaces and tabs around them, empty members allowed, each
 * key=value with no key twice.  A key is a lowercase letter or digit and
 * up to 255 more of a-z 0-9 _ - * / @ (Level 2's syntax, which accepts
 * every Level 1 key, tenant@system ones included); a value is 1 to 256
 * printable ASCII characters but "," and "=", not ending in a space.
 * `len` bytes at `value` (no NUL needed).
 */
bool strata_trace_state_valid(const char *value, size_t len);

#endif /* STRATA_OBS_TRACE_H */
