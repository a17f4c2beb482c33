/*
 * test_trace.c: W3C Trace Context: parsing traceparent (the spec's
 * examples and the cases of its test suite, w3c/trace-context test.py),
 * the child context Strata forwards, formatting, tracestate checks, and
 * generated ids (format, uniqueness across threads, a fresh stream after
 * fork).
 */
#include "config.h"

#include "obs/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN "00f067aa0ba902b7"
#define TS_TRACE "12345678901234567890123456789012"
#define TS_SPAN "1234567890123456"

static bool is_lhex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	return strspn(s, "0123456789abcdef") == n;
}

static void expect_valid(const char *value, const char *trace_id,
			 const char *parent_id, uint8_t flags)
{
	struct strata_trace t;

	cr_expect_eq(strata_trace_parse(value, &t), 0, "rejected \"%s\"", value);
	cr_expect(t.valid, "\"%s\"", value);
	cr_expect_str_eq(t.trace_id, trace_id, "\"%s\"", value);
	cr_expect_str_eq(t.parent_id, parent_id, "\"%s\"", value);
	cr_expect_eq(t.flags, flags, "\"%s\": flags %02x", value, t.flags);
}

static void expect_invalid(const char *value)
{
	struct strata_trace t;

	memset(&t, 0xaa, sizeof(t));
	cr_expect_eq(strata_trace_parse(value, &t), -EINVAL, "accepted \"%s\"",
		     value ? value : "(null)");
	cr_expect_not(t.valid);
	cr_expect_str_eq(t.trace_id, "");
	cr_expect_str_eq(t.parent_id, "");
	cr_expect_eq(t.flags, 0);
}

/* --- parsing -------------------------------------------------------------- */

Test(trace, spec_examples_parse)
{
	expect_valid("00-" TRACE "-" SPAN "-01", TRACE, SPAN, 0x01);
	expect_valid("00-" TRACE "-" SPAN "-00", TRACE, SPAN, 0x00);
	expect_valid("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		     "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331",
		     0x01);
}

Test(trace, surrounding_spaces_and_tabs_are_ignored)
{
	const char *const values[] = {
		" 00-" TS_TRACE "-" TS_SPAN "-01",
		"\t00-" TS_TRACE "-" TS_SPAN "-01",
		"00-" TS_TRACE "-" TS_SPAN "-01 ",
		"00-" TS_TRACE "-" TS_SPAN "-01\t",
		"\t 00-" TS_TRACE "-" TS_SPAN "-01 \t",
	};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		expect_valid(values[i], TS_TRACE, TS_SPAN, 0x01);
}

Test(trace, flags_keep_sampled_and_random_only)
{
	expect_valid("00-" TRACE "-" SPAN "-02", TRACE, SPAN, 0x02);
	expect_valid("00-" TRACE "-" SPAN "-03", TRACE, SPAN, 0x03);
	/* "09" is sampled plus an unknown bit: the bit is cleared. */
	expect_valid("00-" TRACE "-" SPAN "-09", TRACE, SPAN, 0x01);
	expect_valid("00-" TRACE "-" SPAN "-ff", TRACE, SPAN, 0x03);
	expect_valid("00-" TRACE "-" SPAN "-fc", TRACE, SPAN, 0x00);
}

Test(trace, future_versions)
{
	/* A higher version is parsed by version 00's layout; more fields may
	 * follow a '-', and are neither parsed nor kept. */
	expect_valid("cc-" TS_TRACE "-" TS_SPAN "-01", TS_TRACE, TS_SPAN, 0x01);
	expect_valid("cc-" TS_TRACE "-" TS_SPAN "-01-what-the-future-will-be-"
		     "like", TS_TRACE, TS_SPAN, 0x01);
	expect_valid("01-" TS_TRACE "-" TS_SPAN "-00-x", TS_TRACE, TS_SPAN,
		     0x00);
	expect_valid("fe-" TS_TRACE "-" TS_SPAN "-01", TS_TRACE, TS_SPAN, 0x01);
	expect_invalid("cc-" TS_TRACE "-" TS_SPAN "-01.what-the-future-will-"
		       "be-like");
	expect_invalid("cc-" TS_TRACE "-" TS_SPAN "-012");
	expect_invalid("cc-" TS_TRACE "-" TS_SPAN);   /* shorter than 55 */
	expect_invalid("cc-" TS_TRACE "-" TS_SPAN "-0");
	expect_invalid("cc-" TS_TRACE "-0000000000000000-01");
	expect_invalid("cc-" TS_TRACE "-" TS_SPAN "-0G");
}

Test(trace, invalid_values)
{
	const char *const values[] = {
		/* version */
		"ff-" TS_TRACE "-" TS_SPAN "-01",
		".0-" TS_TRACE "-" TS_SPAN "-01",
		"0.-" TS_TRACE "-" TS_SPAN "-01",
		"000-" TS_TRACE "-" TS_SPAN "-01",
		"0000-" TS_TRACE "-" TS_SPAN "-01",
		"0-" TS_TRACE "-" TS_SPAN "-01",
		"0A-" TS_TRACE "-" TS_SPAN "-01",
		/* version 00 with anything after the flags */
		"00-" TS_TRACE "-" TS_SPAN "-01.",
		"00-" TS_TRACE "-" TS_SPAN "-01-what-the-future-will-be-like",
		/* trace-id */
		"00-00000000000000000000000000000000-" TS_SPAN "-01",
		"00-.2345678901234567890123456789012-" TS_SPAN "-01",
		"00-1234567890123456789012345678901.-" TS_SPAN "-01",
		"00-123456789012345678901234567890123-" TS_SPAN "-01",
		"00-1234567890123456789012345678901-" TS_SPAN "-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-" SPAN "-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473G-" SPAN "-01",
		/* parent-id */
		"00-" TS_TRACE "-0000000000000000-01",
		"00-" TS_TRACE "-.234567890123456-01",
		"00-" TS_TRACE "-123456789012345.-01",
		"00-" TS_TRACE "-12345678901234567-01",
		"00-" TS_TRACE "-123456789012345-01",
		"00-" TRACE "-00F067AA0BA902B7-01",
		/* flags */
		"00-" TS_TRACE "-" TS_SPAN "-.0",
		"00-" TS_TRACE "-" TS_SPAN "-0.",
		"00-" TS_TRACE "-" TS_SPAN "-001",
		"00-" TS_TRACE "-" TS_SPAN "-1",
		"00-" TS_TRACE "-" TS_SPAN "-0A",
		/* delimiters and shapes */
		"00_" TS_TRACE "-" TS_SPAN "-01",
		"00-" TS_TRACE "_" TS_SPAN "-01",
		"00-" TS_TRACE "-" TS_SPAN "_01",
		"00-" TS_TRACE "--" TS_SPAN "-1",
		"00 -" TS_TRACE "-" TS_SPAN "-01",
		"00-" TS_TRACE "-" TS_SPAN "-01\n",
		"",
		"   ",
		"00",
		"garbage",
	};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		expect_invalid(values[i]);
	expect_invalid(NULL);
}

Test(trace, embedded_nul_ends_the_value)
{
	char value[] = "00-" TS_TRACE "-" TS_SPAN "-01";

	value[20] = '\0';
	expect_invalid(value);
}

/* --- child and format ----------------------------------------------------- */

Test(trace, child_keeps_trace_and_flags_with_a_new_parent)
{
	struct strata_trace in, out;
	char buf[STRATA_TRACEPARENT_LEN + 1];

	cr_assert_eq(strata_trace_parse("00-" TRACE "-" SPAN "-01", &in), 0);
	strata_trace_child(&in, &out);
	cr_expect(out.valid);
	cr_expect_str_eq(out.trace_id, TRACE);
	cr_expect_str_neq(out.parent_id, SPAN);
	cr_expect(is_lhex(out.parent_id, 16), "%s", out.parent_id);
	cr_expect_neq(strcmp(out.parent_id, "0000000000000000"), 0);
	cr_expect_eq(out.flags, 0x01);
	cr_expect_eq(strata_trace_format(&out, buf), 55);
	cr_expect_eq(strncmp(buf, "00-" TRACE "-", 36), 0, "%s", buf);
	cr_expect_eq(strncmp(buf + 36, out.parent_id, 16), 0, "%s", buf);
	cr_expect_str_eq(buf + 52, "-01");

	/* Not sampled stays not sampled; in place works. */
	cr_assert_eq(strata_trace_parse("00-" TRACE "-" SPAN "-00", &in), 0);
	strata_trace_child(&in, &in);
	cr_expect_str_eq(in.trace_id, TRACE);
	cr_expect_str_neq(in.parent_id, SPAN);
	cr_expect_eq(in.flags, 0x00);
	strata_trace_format(&in, buf);
	cr_expect_str_eq(buf + 52, "-00");
}

Test(trace, child_downgrades_a_future_version_to_00)
{
	struct strata_trace in, out;
	char buf[STRATA_TRACEPARENT_LEN + 1];

	cr_assert_eq(strata_trace_parse("cc-" TS_TRACE "-" TS_SPAN "-03-extra",
					&in), 0);
	strata_trace_child(&in, &out);
	cr_expect_eq(strata_trace_format(&out, buf), 55);
	cr_expect_eq(strncmp(buf, "00-" TS_TRACE "-", 36), 0, "%s", buf);
	cr_expect_str_eq(buf + 52, "-03");
}

Test(trace, no_or_invalid_parent_starts_a_sampled_trace)
{
	struct strata_trace bad, out, again;
	char buf[STRATA_TRACEPARENT_LEN + 1];

	strata_trace_child(NULL, &out);
	cr_expect(out.valid);
	cr_expect(is_lhex(out.trace_id, 32), "%s", out.trace_id);
	cr_expect(is_lhex(out.parent_id, 16), "%s", out.parent_id);
	cr_expect_eq(out.flags, STRATA_TRACE_FLAG_SAMPLED);
	cr_expect_eq(strata_trace_format(&out, buf), 55);
	/* What we send parses back to itself. */
	cr_assert_eq(strata_trace_parse(buf, &again), 0, "%s", buf);
	cr_expect_str_eq(again.trace_id, out.trace_id);
	cr_expect_str_eq(again.parent_id, out.parent_id);
	cr_expect_eq(again.flags, out.flags);

	cr_expect_eq(strata_trace_parse("00-" TS_TRACE "-0000000000000000-01",
					&bad), -EINVAL);
	strata_trace_child(&bad, &out);
	cr_expect(out.valid);
	cr_expect_str_neq(out.trace_id, TS_TRACE);
	cr_expect_eq(out.flags, STRATA_TRACE_FLAG_SAMPLED);
}

Test(trace, format_of_an_invalid_context_is_empty)
{
	struct strata_trace t = { .valid = false };
	char buf[STRATA_TRACEPARENT_LEN + 1];

	memset(buf, 'x', sizeof(buf));
	cr_expect_eq(strata_trace_format(&t, buf), 0);
	cr_expect_str_eq(buf, "");
}

/* --- tracestate ----------------------------------------------------------- */

static bool state_ok(const char *value)
{
	return strata_trace_state_valid(value, strlen(value));
}

Test(trace, tracestate_valid)
{
	cr_expect(state_ok("congo=t61rcWkgMzE"));
	cr_expect(state_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
	cr_expect(state_ok(""), "empty headers must be accepted");
	cr_expect(state_ok(" , \t,"));
	cr_expect(state_ok("foo=1 \t , \t bar=2, \t baz=3"));
	cr_expect(state_ok("foo=1\t \t,\t \tbar=2,\t \tbaz=3"));
	cr_expect(state_ok(" foo=1"));
	cr_expect(state_ok("foo=1\t"));
	cr_expect(state_ok("foo= leading space kept"));
	cr_expect(state_ok("foo=1,,bar=2"));
	cr_expect(state_ok("tenant@system=1,0digit=2"));
	/* Every allowed character of keys and values. */
	cr_expect(state_ok("abcdefghijklmnopqrstuvwxyz0123456789_-*/"
			   "@a-z0-9_-*/= !\"#$%&'()*+-./0123456789:;<>?@"
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
			   "abcdefghijklmnopqrstuvwxyz{|}~"));
}

Test(trace, tracestate_invalid)
{
	const char *const values[] = {
		"foo=1,foo=1",
		"foo=1,foo=2",
		"foo =1",
		"FOO=1",
		"foo.bar=1",
		"@foo=1,bar=2",
		"_foo=1",
		"foo",
		"foo=",
		"=1",
		"foo=1=2",
		"foo=a,b",   /* "b" has no '=' */
		"foo=tab\tinside",
		"foo=\x01",
		"foo=\xc3\xa9",
	};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		cr_expect_not(state_ok(values[i]), "accepted \"%s\"", values[i]);
}

Test(trace, tracestate_limits)
{
	char list[33 * 8 + 1], key[258 + 3], value[3 + 258];
	size_t used = 0;

	for (int i = 0; i < 32; i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used,
					 "%sk%02d=1", i ? "," : "", i);
	cr_expect(state_ok(list), "32 members are allowed");
	snprintf(list + used, sizeof(list) - used, ",k32=1");
	cr_expect_not(state_ok(list), "33 members are not");

	memset(key, 'k', 256);
	strcpy(key + 256, "=1");
	cr_expect(state_ok(key), "a 256-character key");
	memset(key, 'k', 257);
	strcpy(key + 257, "=1");
	cr_expect_not(state_ok(key), "a 257-character key");

	strcpy(value, "k=");
	memset(value + 2, 'v', 256);
	value[258] = '\0';
	cr_expect(state_ok(value), "a 256-character value");
	strcpy(value, "k=");
	memset(value + 2, 'v', 257);
	value[259] = '\0';
	cr_expect_not(state_ok(value), "a 257-character value");

	/* The length bounds the scan: what follows is not read. */
	cr_expect(strata_trace_state_valid("foo=1,BAD", 5));
}

/* --- generated ids -------------------------------------------------------- */

#define IDS_PER_THREAD 50000

struct id_batch {
	char (*trace_ids)[STRATA_TRACE_ID_HEX + 1];
	char (*span_ids)[STRATA_TRACE_SPAN_HEX + 1];
};

static void *make_ids(void *arg)
{
	struct id_batch *b = arg;

	for (size_t i = 0; i < IDS_PER_THREAD; i++) {
		strata_trace_new_trace_id(b->trace_ids[i]);
		strata_trace_new_span_id(b->span_ids[i]);
	}
	return NULL;
}

static int cmp_trace(const void *a, const void *b)
{
	return memcmp(a, b, STRATA_TRACE_ID_HEX + 1);
}

static int cmp_span(const void *a, const void *b)
{
	return memcmp(a, b, STRATA_TRACE_SPAN_HEX + 1);
}

Test(trace, ids_are_unique_across_two_threads, .timeout = 60)
{
	size_t n = 2 * IDS_PER_THREAD;
	char (*trace_ids)[STRATA_TRACE_ID_HEX + 1] =
		calloc(n, sizeof(*trace_ids));
	char (*span_ids)[STRATA_TRACE_SPAN_HEX + 1] =
		calloc(n, sizeof(*span_ids));
	struct id_batch batches[2] = {
		{ trace_ids, span_ids },
		{ trace_ids + IDS_PER_THREAD, span_ids + IDS_PER_THREAD },
	};
	pthread_t threads[2];

	cr_assert(trace_ids && span_ids);
	for (int t = 0; t < 2; t++)
		cr_assert_eq(pthread_create(&threads[t], NULL, make_ids,
					    &batches[t]), 0);
	for (int t = 0; t < 2; t++)
		pthread_join(threads[t], NULL);
	for (size_t i = 0; i < n; i++) {
		cr_assert(is_lhex(trace_ids[i], 32), "%s", trace_ids[i]);
		cr_assert(is_lhex(span_ids[i], 16), "%s", span_ids[i]);
	}
	qsort(trace_ids, n, sizeof(*trace_ids), cmp_trace);
	qsort(span_ids, n, sizeof(*span_ids), cmp_span);
	for (size_t i = 1; i < n; i++) {
		cr_assert_neq(cmp_trace(trace_ids[i - 1], trace_ids[i]), 0,
			      "duplicate trace-id %s", trace_ids[i]);
		/* 64 bits over 10^5 ids: a collision has odds near 3e-10. */
		cr_assert_neq(cmp_span(span_ids[i - 1], span_ids[i]), 0,
			      "duplicate span id %s", span_ids[i]);
	}
	free(trace_ids);
	free(span_ids);
}

Test(trace, ids_use_every_hex_digit)
{
	bool seen[16] = { false };
	char id[STRATA_TRACE_ID_HEX + 1];

	for (int i = 0; i < 64; i++) {
		strata_trace_new_trace_id(id);
		for (int j = 0; j < 32; j++)
			seen[id[j] <= '9' ? id[j] - '0' : id[j] - 'a' + 10] =
				true;
	}
	for (int d = 0; d < 16; d++)
		cr_expect(seen[d], "hex digit %x never drawn", d);
}

Test(trace, a_forked_child_draws_other_ids)
{
	char parent[STRATA_TRACE_ID_HEX + 1], child[STRATA_TRACE_ID_HEX + 1];
	int fds[2], status;
	pid_t pid;

	strata_trace_new_trace_id(parent);  /* seeds this thread */
	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		strata_trace_new_trace_id(child);
		_exit(write(fds[1], child, sizeof(child)) == sizeof(child)
			      ? 0 : 1);
	}
	strata_trace_new_trace_id(parent);
	cr_assert_eq(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
	waitpid(pid, &status, 0);
	close(fds[0]);
	close(fds[1]);
	cr_expect_str_neq(parent, child,
			  "parent and child drew the same next id");
}
