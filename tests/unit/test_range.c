/* Unit tests for src/cache/range.c: Range parsing, coalescing, the plan,
 * Content-Range values and the multipart/byteranges layout (RFC 9110
 * section 14). */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/range.h"

TestSuite(range, .timeout = 10);

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct want {
	const char *range;
	uint64_t length;
	enum strata_range_kind kind;
	enum strata_range_reason reason;
	size_t n;
	uint64_t parts[2 * STRATA_RANGE_MAX_PARTS];  /* first, last, ... */
};

static void check(const struct want *w)
{
	struct strata_range_plan plan;

	strata_range_parse(w->range, w->length, &plan);
	cr_assert_eq(plan.kind, w->kind, "[%s] kind %d", w->range,
		     (int)plan.kind);
	cr_assert_eq(plan.reason, w->reason, "[%s] reason %s", w->range,
		     strata_range_reason_name(plan.reason));
	cr_assert_eq(plan.length, w->length, "[%s]", w->range);
	cr_assert_eq(plan.n, w->n, "[%s] n %zu", w->range, plan.n);
	for (size_t i = 0; i < w->n; i++) {
		cr_assert_eq(plan.parts[i].first, w->parts[2 * i],
			     "[%s] part %zu first %llu", w->range, i,
			     (unsigned long long)plan.parts[i].first);
		cr_assert_eq(plan.parts[i].last, w->parts[2 * i + 1],
			     "[%s] part %zu last %llu", w->range, i,
			     (unsigned long long)plan.parts[i].last);
	}
}

#define ONE(r, len, a, b) \
	{ r, len, STRATA_RANGE_ONE, STRATA_RANGE_OK, 1, { a, b } }
#define WHOLE(r, len, why) \
	{ r, len, STRATA_RANGE_WHOLE, STRATA_RANGE_##why, 0, { 0 } }
#define UNSAT(r, len) \
	{ r, len, STRATA_RANGE_UNSATISFIABLE, STRATA_RANGE_OK, 0, { 0 } }

/* The examples of RFC 9110 section 14.1.2, for a length of 10000. */
Test(range, rfc_examples)
{
	static const struct want cases[] = {
		ONE("bytes=0-499", 10000, 0, 499),
		ONE("bytes=500-999", 10000, 500, 999),
		ONE("bytes=-500", 10000, 9500, 9999),
		ONE("bytes=9500-", 10000, 9500, 9999),
		{ "bytes=0-0,-1", 10000, STRATA_RANGE_MULTI, STRATA_RANGE_OK,
		  2, { 0, 0, 9999, 9999 } },
		{ "bytes= 0-999, 4500-5499, -1000", 10000, STRATA_RANGE_MULTI,
		  STRATA_RANGE_OK, 3, { 0, 999, 4500, 5499, 9000, 9999 } },
		/* "valid (but not canonical)": coalesced into one */
		ONE("bytes=500-600,601-999", 10000, 500, 999),
		ONE("bytes=500-700,601-999", 10000, 500, 999),
	};

	for (size_t i = 0; i < N_OF(cases); i++)
		check(&cases[i]);
}

Test(range, single_suffix_open_and_clipped)
{
	static const struct want cases[] = {
		ONE("bytes=0-0", 10, 0, 0),
		ONE("bytes=0-9", 10, 0, 9),          /* all of it: still 206 */
		ONE("bytes=3-", 10, 3, 9),
		ONE("bytes=9-", 10, 9, 9),
		ONE("bytes=-1", 10, 9, 9),
		ONE("bytes=-10", 10, 0, 9),
		ONE("bytes=-11", 10, 0, 9),          /* longer than it: all */
		ONE("bytes=5-100", 10, 5, 9),        /* last-pos clipped */
		ONE("bytes=5-10", 10, 5, 9),
		ONE("Bytes=1-2", 10, 1, 2),          /* unit ignores case */
		ONE("BYTES=1-2", 10, 1, 2),
		ONE("  bytes=1-2  ", 10, 1, 2),
		ONE("bytes=1-2,", 10, 1, 2),         /* empty list elements */
		ONE("bytes=,,1-2, ,", 10, 1, 2),
		ONE("bytes=\t1-2", 10, 1, 2),
		/* huge numerals saturate instead of overflowing */
		ONE("bytes=0-99999999999999999999999999", 10, 0, 9),
		ONE("bytes=-99999999999999999999999999", 10, 0, 9),
		ONE("bytes=18446744073709551615-18446744073709551615,2-3", 10,
		    2, 3),
		/* unsatisfiable specs are dropped if another one is not */
		ONE("bytes=20-30,2-3", 10, 2, 3),
		ONE("bytes=-0,2-3", 10, 2, 3),
	};

	for (size_t i = 0; i < N_OF(cases); i++)
		check(&cases[i]);
}

Test(range, multiple_and_coalesced)
{
	static const struct want cases[] = {
		{ "bytes=0-1,5-6", 10, STRATA_RANGE_MULTI, STRATA_RANGE_OK, 2,
		  { 0, 1, 5, 6 } },
		{ "bytes=0-1 , 5-6", 10, STRATA_RANGE_MULTI, STRATA_RANGE_OK, 2,
		  { 0, 1, 5, 6 } },
		/* adjacent: merged */
		ONE("bytes=0-1,2-3", 10, 0, 3),
		/* overlapping, contained, repeated: merged */
		ONE("bytes=0-5,3-8", 100, 0, 8),
		ONE("bytes=0-50,10-20", 100, 0, 50),
		ONE("bytes=0-0,0-0,0-0,0-0", 100, 0, 0),
		ONE("bytes=-5,90-", 100, 90, 99),
		/* one gap of one byte is not adjacent */
		{ "bytes=0-1,3-4", 10, STRATA_RANGE_MULTI, STRATA_RANGE_OK, 2,
		  { 0, 1, 3, 4 } },
		/* the order of the request is kept; a merged part sits where
		 * its earliest spec was */
		{ "bytes=30-39,0-9,15-19", 100, STRATA_RANGE_MULTI,
		  STRATA_RANGE_OK, 3, { 30, 39, 0, 9, 15, 19 } },
		{ "bytes=50-59,0-9,55-70", 100, STRATA_RANGE_MULTI,
		  STRATA_RANGE_OK, 2, { 50, 70, 0, 9 } },
		{ "bytes=60-69,0-9,55-60", 100, STRATA_RANGE_MULTI,
		  STRATA_RANGE_OK, 2, { 55, 69, 0, 9 } },
		{ "bytes=80-89,0-9,40-49,10-12", 100, STRATA_RANGE_MULTI,
		  STRATA_RANGE_OK, 3, { 80, 89, 0, 12, 40, 49 } },
		ONE("bytes=20-29,0-9,10-19", 100, 0, 29),
	};

	for (size_t i = 0; i < N_OF(cases); i++)
		check(&cases[i]);
}

Test(range, invalid_syntax_is_ignored)
{
	static const struct want cases[] = {
		WHOLE(NULL, 10, ABSENT),
		WHOLE("", 10, SYNTAX),
		WHOLE("bytes", 10, SYNTAX),
		WHOLE("bytes=", 10, SYNTAX),
		WHOLE("bytes=,", 10, SYNTAX),
		WHOLE("bytes 0-1", 10, SYNTAX),
		WHOLE("bytes =0-1", 10, SYNTAX),
		WHOLE("=0-1", 10, SYNTAX),
		WHOLE("bytes=5-1", 10, SYNTAX),         /* last < first */
		WHOLE("bytes=0-1,5-1", 10, SYNTAX),     /* one bad spec spoils all */
		WHOLE("bytes=abc", 10, SYNTAX),
		WHOLE("bytes=1", 10, SYNTAX),
		WHOLE("bytes=-", 10, SYNTAX),
		WHOLE("bytes=--1", 10, SYNTAX),
		WHOLE("bytes=1-2-3", 10, SYNTAX),
		WHOLE("bytes=0 -1", 10, SYNTAX),
		WHOLE("bytes=0- 1", 10, SYNTAX),
		WHOLE("bytes=+1-2", 10, SYNTAX),
		WHOLE("bytes=0-1;x", 10, SYNTAX),
		WHOLE("bytes=0x1-2", 10, SYNTAX),
		WHOLE("bytes=0-1 2-3", 10, SYNTAX),
		WHOLE("items=0-1", 10, UNIT),
		WHOLE("bytesx=0-1", 10, UNIT),
		WHOLE("none=0-1", 10, UNIT),
	};

	for (size_t i = 0; i < N_OF(cases); i++)
		check(&cases[i]);
}

Test(range, unsatisfiable)
{
	static const struct want cases[] = {
		UNSAT("bytes=10-", 10),
		UNSAT("bytes=10-20", 10),
		UNSAT("bytes=-0", 10),
		UNSAT("bytes=20-30,-0,10-", 10),
		UNSAT("bytes=99999999999999999999999-", 10),
	};
	char buf[STRATA_CONTENT_RANGE_SIZE];

	for (size_t i = 0; i < N_OF(cases); i++)
		check(&cases[i]);
	cr_assert_eq(strata_range_content_range_unsatisfied(buf, 10), 10);
	cr_assert_str_eq(buf, "bytes */10");
}

Test(range, zero_length_representation)
{
	static const struct want cases[] = {
		UNSAT("bytes=0-", 0),
		UNSAT("bytes=0-0", 0),
		UNSAT("bytes=-0", 0),
		/* a non-zero suffix is satisfiable, but there is no byte to
		 * put in a 206: the whole, empty representation */
		WHOLE("bytes=-5", 0, EMPTY),
		WHOLE("bytes=0-0,-1", 0, EMPTY),
		WHOLE("bytes=x", 0, SYNTAX),
		WHOLE(NULL, 0, ABSENT),
	};

	for (size_t i = 0; i < N_OF(cases); i++)
		check(&cases[i]);
}

/* "bytes=0-0,2-2,4-4,..." with n disjoint one-byte ranges. */
static char *disjoint(size_t n, size_t step)
{
	size_t cap = 16 + n * 24;
	char *s = malloc(cap);
	size_t len = (size_t)snprintf(s, cap, "bytes=");

	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%zu-%zu",
					i ? "," : "", i * step, i * step);
	return s;
}

Test(range, too_many_ranges)
{
	struct strata_range_plan plan;
	char *s;

	/* 16 parts: served */
	s = disjoint(STRATA_RANGE_MAX_PARTS, 2);
	strata_range_parse(s, 1000, &plan);
	cr_assert_eq(plan.kind, STRATA_RANGE_MULTI);
	cr_assert_eq(plan.n, STRATA_RANGE_MAX_PARTS);
	cr_assert_eq(plan.parts[15].first, 30);
	free(s);
	/* 17 parts after coalescing: 200 */
	s = disjoint(STRATA_RANGE_MAX_PARTS + 1, 2);
	strata_range_parse(s, 1000, &plan);
	cr_assert_eq(plan.kind, STRATA_RANGE_WHOLE);
	cr_assert_eq(plan.reason, STRATA_RANGE_TOO_MANY);
	cr_assert_eq(plan.n, 0);
	free(s);
	/* 64 specs that coalesce into one: served */
	s = disjoint(STRATA_RANGE_MAX_SPECS, 1);
	strata_range_parse(s, 1000, &plan);
	cr_assert_eq(plan.kind, STRATA_RANGE_ONE);
	cr_assert_eq(plan.parts[0].first, 0);
	cr_assert_eq(plan.parts[0].last, STRATA_RANGE_MAX_SPECS - 1);
	free(s);
	/* 65 specs: not even read */
	s = disjoint(STRATA_RANGE_MAX_SPECS + 1, 1);
	strata_range_parse(s, 1000, &plan);
	cr_assert_eq(plan.kind, STRATA_RANGE_WHOLE);
	cr_assert_eq(plan.reason, STRATA_RANGE_TOO_MANY);
	free(s);
	/* unsatisfiable specs count toward the limit too */
	s = disjoint(STRATA_RANGE_MAX_SPECS + 1, 1);
	strata_range_parse(s, 10, &plan);
	cr_assert_eq(plan.reason, STRATA_RANGE_TOO_MANY);
	free(s);
}

Test(range, reason_names)
{
	cr_assert_str_eq(strata_range_reason_name(STRATA_RANGE_OK), "ok");
	cr_assert_str_eq(strata_range_reason_name(STRATA_RANGE_ABSENT),
			 "absent");
	cr_assert_str_eq(strata_range_reason_name(STRATA_RANGE_UNIT), "unit");
	cr_assert_str_eq(strata_range_reason_name(STRATA_RANGE_SYNTAX),
			 "syntax");
	cr_assert_str_eq(strata_range_reason_name(STRATA_RANGE_TOO_MANY),
			 "too-many");
	cr_assert_str_eq(strata_range_reason_name(STRATA_RANGE_EMPTY),
			 "empty");
}

Test(range, content_range_values)
{
	char buf[STRATA_CONTENT_RANGE_SIZE];

	cr_assert_eq(strata_range_content_range(buf, 0, 499, 10000), 17);
	cr_assert_str_eq(buf, "bytes 0-499/10000");
	strata_range_content_range(buf, 0, 0, 1);
	cr_assert_str_eq(buf, "bytes 0-0/1");
	strata_range_content_range(buf, 0, UINT64_MAX - 1, UINT64_MAX);
	cr_assert_str_eq(buf, "bytes 0-18446744073709551614/"
			      "18446744073709551615");
	strata_range_content_range_unsatisfied(buf, 0);
	cr_assert_str_eq(buf, "bytes */0");
	strata_range_content_range_unsatisfied(buf, UINT64_MAX);
	cr_assert_str_eq(buf, "bytes */18446744073709551615");
}

Test(range, content_range_past_the_end_asserts, .signal = SIGABRT)
{
	char buf[STRATA_CONTENT_RANGE_SIZE];

	strata_range_content_range(buf, 0, 10, 10);
}

Test(range, boundary_from_seed)
{
	char b[STRATA_RANGE_BOUNDARY_SIZE];

	strata_range_boundary(b, 0x0123456789abcdefull);
	cr_assert_str_eq(b, "strata-0123456789abcdef");
	strata_range_boundary(b, 0);
	cr_assert_str_eq(b, "strata-0000000000000000");
}

static const char REP[] = "0123456789abcdefghij";   /* 20 bytes */

/* Concatenate the layout's segments as a zero-copy sender would. */
static char *assemble(const struct strata_multipart *mp, const char *body)
{
	char *out = malloc(mp->body_len + 1);
	size_t len = 0;

	for (size_t i = 0; i < mp->n; i++) {
		memcpy(out + len, mp->parts[i].head, mp->parts[i].head_len);
		len += mp->parts[i].head_len;
		memcpy(out + len, body + mp->parts[i].first, mp->parts[i].len);
		len += mp->parts[i].len;
	}
	memcpy(out + len, mp->tail, mp->tail_len);
	len += mp->tail_len;
	cr_assert_eq(len, mp->body_len);
	out[len] = '\0';
	return out;
}

Test(range, multipart_layout_byte_exact)
{
	static const char want[] =
		"--B\r\n"
		"Content-Type: text/plain\r\n"
		"Content-Range: bytes 0-2/20\r\n"
		"\r\n"
		"012"
		"\r\n--B\r\n"
		"Content-Type: text/plain\r\n"
		"Content-Range: bytes 10-12/20\r\n"
		"\r\n"
		"abc"
		"\r\n--B--\r\n";
	struct strata_range_plan plan;
	struct strata_multipart mp;
	char *seg, *out;

	strata_range_parse("bytes=0-2,10-12", 20, &plan);
	cr_assert_eq(plan.kind, STRATA_RANGE_MULTI);
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, "text/plain",
						 "B"), 0);
	cr_assert_str_eq(mp.content_type, "multipart/byteranges; boundary=B");
	cr_assert_eq(mp.n, 2);
	cr_assert_eq(mp.body_len, sizeof(want) - 1);
	cr_assert_eq(mp.parts[0].first, 0);
	cr_assert_eq(mp.parts[0].len, 3);
	cr_assert_eq(mp.parts[1].first, 10);
	cr_assert_eq(mp.parts[1].len, 3);
	cr_assert_eq(mp.tail_len, 9);
	cr_assert(memcmp(mp.tail, "\r\n--B--\r\n", 9) == 0);

	seg = assemble(&mp, REP);
	cr_assert_str_eq(seg, want);

	out = malloc(mp.body_len);
	cr_assert_eq(strata_range_multipart_write(&mp, REP, 20, out,
						  mp.body_len), 0);
	cr_assert(memcmp(out, want, mp.body_len) == 0);

	free(out);
	free(seg);
	strata_range_multipart_clear(&mp);
	cr_assert_null(mp.text);
	cr_assert_eq(mp.n, 0);
	strata_range_multipart_clear(&mp);   /* twice is harmless */
}

Test(range, multipart_without_content_type_and_in_request_order)
{
	static const char want[] =
		"--strata-00000000000000ff\r\n"
		"Content-Range: bytes 18-19/20\r\n"
		"\r\n"
		"ij"
		"\r\n--strata-00000000000000ff\r\n"
		"Content-Range: bytes 0-0/20\r\n"
		"\r\n"
		"0"
		"\r\n--strata-00000000000000ff--\r\n";
	char boundary[STRATA_RANGE_BOUNDARY_SIZE];
	struct strata_range_plan plan;
	struct strata_multipart mp;
	char *seg;

	strata_range_boundary(boundary, 0xff);
	strata_range_parse("bytes=-2,0-0", 20, &plan);
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, NULL, boundary),
		     0);
	cr_assert_str_eq(mp.content_type,
			 "multipart/byteranges; boundary=strata-00000000000000ff");
	seg = assemble(&mp, REP);
	cr_assert_str_eq(seg, want);
	free(seg);
	strata_range_multipart_clear(&mp);
}

Test(range, multipart_refusals)
{
	struct strata_range_plan plan, one;
	struct strata_multipart mp;
	char b71[72];
	char out[512];

	memset(b71, 'b', 71);
	b71[71] = '\0';
	strata_range_parse("bytes=0-2,10-12", 20, &plan);
	strata_range_parse("bytes=0-2", 20, &one);

	cr_assert_eq(strata_range_multipart_init(&mp, &one, NULL, "B"),
		     -EINVAL);
	cr_assert_null(mp.text);
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, NULL, NULL),
		     -EINVAL);
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, NULL, ""),
		     -EINVAL);
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, NULL, b71),
		     -EINVAL);
	b71[70] = '\0';   /* 70 characters is the most */
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, NULL, b71), 0);
	strata_range_multipart_clear(&mp);
	static const char *const bad[] = { "a b", "a\"b", "a;b", "a/b",
					   "a\r\nb", "a,b" };
	for (size_t i = 0; i < N_OF(bad); i++)
		cr_assert_eq(strata_range_multipart_init(&mp, &plan, NULL,
							 bad[i]),
			     -EINVAL, "%s", bad[i]);
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, "text/plain"
						 "\r\nX-Evil: 1", "B"),
		     -EINVAL);

	/* a hand-made plan with a part past the end */
	struct strata_range_plan bogus = plan;

	bogus.parts[1].last = 20;
	cr_assert_eq(strata_range_multipart_init(&mp, &bogus, NULL, "B"),
		     -EINVAL);
	cr_assert_null(mp.text);
	cr_assert_eq(mp.n, 0);

	/* write: a short buffer or a short body is refused */
	cr_assert_eq(strata_range_multipart_init(&mp, &plan, NULL, "B"), 0);
	cr_assert_eq(strata_range_multipart_write(&mp, REP, 20, out,
						  mp.body_len - 1), -EINVAL);
	cr_assert_eq(strata_range_multipart_write(&mp, REP, 12, out,
						  sizeof(out)), -EINVAL);
	cr_assert_eq(strata_range_multipart_write(&mp, REP, 13, out,
						  sizeof(out)), 0);
	strata_range_multipart_clear(&mp);
	cr_assert_eq(strata_range_multipart_write(&mp, REP, 20, out,
						  sizeof(out)), -EINVAL);
}

Test(range, multipart_sixteen_parts)
{
	struct strata_range_plan plan;
	struct strata_multipart mp;
	char *s = disjoint(STRATA_RANGE_MAX_PARTS, 1000);
	char *body = malloc(20000), *out;
	uint64_t sum = 0;

	for (size_t i = 0; i < 20000; i++)
		body[i] = (char)('a' + i % 26);
	strata_range_parse(s, 20000, &plan);
	cr_assert_eq(plan.kind, STRATA_RANGE_MULTI);
	cr_assert_eq(strata_range_multipart_init(&mp, &plan,
						 "application/octet-stream",
						 "sep"), 0);
	for (size_t i = 0; i < mp.n; i++)
		sum += mp.parts[i].head_len + mp.parts[i].len;
	cr_assert_eq(sum + mp.tail_len, mp.body_len);
	out = malloc(mp.body_len);
	cr_assert_eq(strata_range_multipart_write(&mp, body, 20000, out,
						  mp.body_len), 0);
	/* the last part: 15000-15000, one byte, then the closing line */
	cr_assert(memcmp(out + mp.body_len - mp.tail_len - 1 -
			 strlen("Content-Range: bytes 15000-15000/20000\r\n\r\n"),
			 "Content-Range: bytes 15000-15000/20000\r\n\r\n",
			 strlen("Content-Range: bytes 15000-15000/20000\r\n\r\n")) == 0);
	cr_assert_eq(out[mp.body_len - mp.tail_len - 1], body[15000]);
	free(out);
	strata_range_multipart_clear(&mp);
	free(body);
	free(s);
}
