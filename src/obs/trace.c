/*
 * trace.c: W3C Trace Context, see trace.h.
 *
 * Parsing follows the spec's grammar for version 00 and its "Versioning of
 * traceparent" rules for higher versions; the checks are byte by byte on
 * fixed offsets, so a value costs one pass and no allocation.
 *
 * Concurrency: the only state is each thread's random generator
 * (_Thread_local, so no sharing and no atomics).  A forked child would
 * inherit its parent thread's generator and repeat its ids, so a
 * pthread_atfork() child handler marks the surviving thread's generator
 * unseeded.
 */
#include "config.h"

#include "obs/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char hex_digits[] = "0123456789abcdef";

/* --- identifiers ---------------------------------------------------------- */

/*
 * xoshiro256** (Blackman and Vigna): 256 bits of state, period 2^256 - 1,
 * passes BigCrush; four shifts, rotations and xors per 64 bits.  Seeded
 * from the kernel once per thread, so threads draw independent streams
 * without a lock.
 */
struct rng {
	uint64_t s[4];
	bool seeded;
};

static _Thread_local struct rng thread_rng;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Runs in the child, in the one thread that survives fork(). */
static void forked_child(void)
{
	thread_rng.seeded = false;
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, forked_child);
}

static void seed(struct rng *r)
{
	uint64_t state[4] = { 0 };
	size_t got = 0;

	pthread_once(&atfork_once, register_atfork);
	while (got < sizeof(state)) {
		ssize_t n = getrandom((char *)state + got, sizeof(state) - got,
				      GRND_NONBLOCK);

		if (n > 0)
			got += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	if (got < sizeof(state)) {
		/* No entropy pool yet (early boot): mix what differs between
		 * processes, threads and instants.  Unique, not secret. */
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		x ^= (uint64_t)getpid() << 32;
		x ^= (uint64_t)(uintptr_t)r;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x ^= (uint64_t)ts.tv_nsec << 17;
		for (size_t i = 0; i < 4; i++)
			state[i] ^= splitmix64(&x);
	}
	if ((state[0] | state[1] | state[2] | state[3]) == 0)
		state[0] = 1;  /* the one state xoshiro never leaves */
	memcpy(r->s, state, sizeof(r->s));
	r->seeded = true;
}

static uint64_t next64(void)
{
	struct rng *r = &thread_rng;
	uint64_t *s = r->s, result, t;

	if (!r->seeded)
		seed(r);
	result = rotl(s[1] * 5, 7) * 9;
	t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

static void hex64(uint64_t v, char out[16])
{
	for (int i = 0; i < 16; i++)
		out[i] = hex_digits[(v >> (60 - 4 * i)) & 15];
}

void strata_trace_new_trace_id(char out[STRATA_TRACE_ID_HEX + 1])
{
	uint64_t hi, lo;

	do {
		hi = next64();
		lo = next64();
	} while ((hi | lo) == 0);
	hex64(hi, out);
	hex64(lo, out + 16);
	out[STRATA_TRACE_ID_HEX] = '\0';
}

void strata_trace_new_span_id(char out[STRATA_TRACE_SPAN_HEX + 1])
{
	uint64_t v;

	do
		v = next64();
	while (v == 0);
	hex64(v, out);
	out[STRATA_TRACE_SPAN_HEX] = '\0';
}

/* --- traceparent ---------------------------------------------------------- */

static int lhex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;  /* upper case too: the spec's HEXDIGLC */
}

/* `n` lowercase hex digits, not all '0'. */
static bool lhex_nonzero(const char *p, size_t n)
{
	bool nonzero = false;

	for (size_t i = 0; i < n; i++) {
		if (lhex_value(p[i]) < 0)
			return false;
		nonzero |= p[i] != '0';
	}
	return nonzero;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int strata_trace_parse(const char *traceparent, struct strata_trace *out)
{
	const char *p = traceparent, *end;
	size_t len;
	int version, f_hi, f_lo;

	memset(out, 0, sizeof(*out));
	if (p == NULL)
		return -EINVAL;
	while (is_ows(*p))
		p++;
	end = p + strlen(p);
	while (end > p && is_ows(end[-1]))
		end--;
	len = (size_t)(end - p);
	/* "vv-": a version prefix that does not parse restarts the trace. */
	if (len < STRATA_TRACEPARENT_LEN || lhex_value(p[0]) < 0 ||
	    lhex_value(p[1]) < 0 || p[2] != '-')
		return -EINVAL;
	version = lhex_value(p[0]) * 16 + lhex_value(p[1]);
	if (version == 0xff)
		return -EINVAL;
	/* Version 00 is exactly 55 characters; a later version may append
	 * fields, after a '-', that we must neither parse nor forward. */
	if (len > STRATA_TRACEPARENT_LEN &&
	    (version == 0 || p[STRATA_TRACEPARENT_LEN] != '-'))
		return -EINVAL;
	if (!lhex_nonzero(p + 3, STRATA_TRACE_ID_HEX) || p[35] != '-' ||
	    !lhex_nonzero(p + 36, STRATA_TRACE_SPAN_HEX) || p[52] != '-')
		return -EINVAL;
	f_hi = lhex_value(p[53]);
	f_lo = lhex_value(p[54]);
	if (f_hi < 0 || f_lo < 0)
		return -EINVAL;
	memcpy(out->trace_id, p + 3, STRATA_TRACE_ID_HEX);
	memcpy(out->parent_id, p + 36, STRATA_TRACE_SPAN_HEX);
	out->flags = (uint8_t)((f_hi * 16 + f_lo) &
			       (STRATA_TRACE_FLAG_SAMPLED |
				STRATA_TRACE_FLAG_RANDOM));
	out->valid = true;
	return 0;
}

void strata_trace_child(const struct strata_trace *in,
			struct strata_trace *out)
{
	if (in != NULL && in->valid) {
		uint8_t flags = in->flags & (STRATA_TRACE_FLAG_SAMPLED |
					     STRATA_TRACE_FLAG_RANDOM);

		if (out != in)
			memcpy(out->trace_id, in->trace_id,
			       sizeof(out->trace_id));
		out->flags = flags;
	} else {
		strata_trace_new_trace_id(out->trace_id);
		out->flags = STRATA_TRACE_FLAG_SAMPLED;
	}
	strata_trace_new_span_id(out->parent_id);
	out->valid = true;
}

size_t strata_trace_format(const struct strata_trace *t,
			   char buf[STRATA_TRACEPARENT_LEN + 1])
{
	if (!t->valid) {
		buf[0] = '\0';
		return 0;
	}
	memcpy(buf, "00-", 3);
	memcpy(buf + 3, t->trace_id, STRATA_TRACE_ID_HEX);
	buf[35] = '-';
	memcpy(buf + 36, t->parent_id, STRATA_TRACE_SPAN_HEX);
	buf[52] = '-';
	buf[53] = hex_digits[t->flags >> 4];
	buf[54] = hex_digits[t->flags & 15];
	buf[STRATA_TRACEPARENT_LEN] = '\0';
	return STRATA_TRACEPARENT_LEN;
}

/* --- tracestate ----------------------------------------------------------- */

#define TRACESTATE_MAX_MEMBERS 32
#define TRACESTATE_MAX_KEY 256
#define TRACESTATE_MAX_VALUE 256

static bool is_key_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_key_char(char c)
{
	return is_key_start(c) || c == '_' || c == '-' || c == '*' ||
	       c == '/' || c == '@';
}

bool strata_trace_state_valid(const char *value, size_t len)
{
	struct {
		const char *text;
		size_t len;
	} keys[TRACESTATE_MAX_MEMBERS];
	size_t n_keys = 0, i = 0;

	for (;;) {
		size_t start = i, stop, k;

		while (i < len && value[i] != ',')
			i++;
		stop = i;
		while (start < stop && is_ows(value[start]))
			start++;
		while (stop > start && is_ows(value[stop - 1]))
			stop--;
		if (start < stop) {
			if (n_keys == TRACESTATE_MAX_MEMBERS ||
			    !is_key_start(value[start]))
				return false;
			for (k = start; k < stop && is_key_char(value[k]); k++)
				;
			if (k == stop || value[k] != '=' ||
			    k - start > TRACESTATE_MAX_KEY ||
			    stop - (k + 1) < 1 ||
			    stop - (k + 1) > TRACESTATE_MAX_VALUE)
				return false;
			for (size_t v = k + 1; v < stop; v++) {
				unsigned char c = (unsigned char)value[v];

				if (c < 0x20 || c > 0x7e || c == ',' ||
				    c == '=')
					return false;
			}
			for (size_t j = 0; j < n_keys; j++) {
				if (keys[j].len == k - start &&
				    memcmp(keys[j].text, value + start,
					   k - start) == 0)
					return false;
			}
			keys[n_keys].text = value + start;
			keys[n_keys].len = k - start;
			n_keys++;
		}
		if (i >= len)
			break;
		i++;  /* the comma */
	}
	return true;
}
