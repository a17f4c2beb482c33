/*
 * test_units.c: sizes and durations as written in configuration.
 */
#include "config.h"

#include "core/units.h"

#include <errno.h>
#include <stdint.h>

#include <criterion/criterion.h>

static uint64_t size_ok(const char *text)
{
	uint64_t bytes = 12345;

	cr_assert_eq(strata_parse_size(text, &bytes), 0, "\"%s\"", text);
	return bytes;
}

static uint64_t duration_ok(const char *text)
{
	uint64_t ms = 12345;

	cr_assert_eq(strata_parse_duration(text, &ms), 0, "\"%s\"", text);
	return ms;
}

static int size_rc(const char *text)
{
	uint64_t bytes = 777;
	int rc = strata_parse_size(text, &bytes);

	cr_assert_eq(bytes, 777, "\"%s\": output written on failure", text);
	return rc;
}

static int duration_rc(const char *text)
{
	uint64_t ms = 777;
	int rc = strata_parse_duration(text, &ms);

	cr_assert_eq(ms, 777, "\"%s\": output written on failure", text);
	return rc;
}

Test(units, size_every_unit)
{
	cr_expect_eq(size_ok("7B"), 7);
	cr_expect_eq(size_ok("3KiB"), 3 * 1024);
	cr_expect_eq(size_ok("256MiB"), UINT64_C(256) << 20);
	cr_expect_eq(size_ok("2GiB"), UINT64_C(2) << 30);
	cr_expect_eq(size_ok("5TiB"), UINT64_C(5) << 40);
	cr_expect_eq(size_ok("3KB"), 3000);
	cr_expect_eq(size_ok("8MB"), 8000000);
	cr_expect_eq(size_ok("2GB"), UINT64_C(2000000000));
	cr_expect_eq(size_ok("5TB"), UINT64_C(5000000000000));
}

Test(units, size_bare_number_is_bytes)
{
	cr_expect_eq(size_ok("0"), 0);
	cr_expect_eq(size_ok("4096"), 4096);
	cr_expect_eq(size_ok("18446744073709551615"), UINT64_MAX);
}

Test(units, size_allows_whitespace)
{
	cr_expect_eq(size_ok("8 MiB"), UINT64_C(8) << 20);
	cr_expect_eq(size_ok("  8MiB  "), UINT64_C(8) << 20);
	cr_expect_eq(size_ok("\t1 KB\n"), 1000);
}

Test(units, size_rejects_bad_text)
{
	cr_expect_eq(size_rc(""), -EINVAL);
	cr_expect_eq(size_rc("   "), -EINVAL);
	cr_expect_eq(size_rc("-1"), -EINVAL);
	cr_expect_eq(size_rc("+1"), -EINVAL);
	cr_expect_eq(size_rc("1.5MiB"), -EINVAL);
	cr_expect_eq(size_rc("10 parsecs"), -EINVAL);
	cr_expect_eq(size_rc("MiB"), -EINVAL);
	cr_expect_eq(size_rc("8 MiB extra"), -EINVAL);
	cr_expect_eq(size_rc("8mib"), -EINVAL, "units are case-sensitive");
	cr_expect_eq(size_rc("1e3"), -EINVAL);
	cr_expect_eq(size_rc("0x10"), -EINVAL);
	cr_expect_eq(strata_parse_size(NULL, &(uint64_t){ 0 }), -EINVAL);
}

Test(units, size_overflow_is_erange)
{
	cr_expect_eq(size_rc("99999999999999999999GiB"), -ERANGE);
	cr_expect_eq(size_rc("18446744073709551616"), -ERANGE);
	cr_expect_eq(size_rc("16777216TiB"), -ERANGE, "2^64 bytes");
	cr_expect_eq(size_ok("16777215TiB"), UINT64_C(16777215) << 40);
}

Test(units, size_bad_unit_beats_overflow)
{
	/* The typo is the first thing to fix. */
	cr_expect_eq(size_rc("99999999999999999999 parsecs"), -EINVAL);
}

Test(units, duration_every_unit)
{
	cr_expect_eq(duration_ok("250ms"), 250);
	cr_expect_eq(duration_ok("30s"), 30000);
	cr_expect_eq(duration_ok("5m"), 300000);
	cr_expect_eq(duration_ok("2h"), 7200000);
}

Test(units, duration_bare_number_is_seconds)
{
	cr_expect_eq(duration_ok("0"), 0);
	cr_expect_eq(duration_ok("60"), 60000);
}

Test(units, duration_allows_whitespace)
{
	cr_expect_eq(duration_ok("10 s"), 10000);
	cr_expect_eq(duration_ok(" 1h "), 3600000);
}

Test(units, duration_rejects_bad_text)
{
	cr_expect_eq(duration_rc(""), -EINVAL);
	cr_expect_eq(duration_rc("-1"), -EINVAL);
	cr_expect_eq(duration_rc("-1s"), -EINVAL);
	cr_expect_eq(duration_rc("1.5s"), -EINVAL);
	cr_expect_eq(duration_rc("5 minutes"), -EINVAL);
	cr_expect_eq(duration_rc("10 parsecs"), -EINVAL);
	cr_expect_eq(duration_rc("1d"), -EINVAL);
	cr_expect_eq(duration_rc("s"), -EINVAL);
	cr_expect_eq(duration_rc("10S"), -EINVAL);
}

Test(units, duration_overflow_is_erange)
{
	cr_expect_eq(duration_rc("99999999999999999999h"), -ERANGE);
	cr_expect_eq(duration_rc("18446744073709551615"), -ERANGE,
		     "bare seconds times 1000");
	cr_expect_eq(duration_ok("18446744073709551615ms"), UINT64_MAX);
}

Test(units, format_size_uses_largest_exact_binary_unit)
{
	char buf[32];

	strata_format_size(UINT64_C(256) << 20, buf, sizeof(buf));
	cr_expect_str_eq(buf, "256MiB");
	strata_format_size(1000, buf, sizeof(buf));
	cr_expect_str_eq(buf, "1000B");
	strata_format_size(1536, buf, sizeof(buf));
	cr_expect_str_eq(buf, "1536B");
	strata_format_size(UINT64_C(3) << 40, buf, sizeof(buf));
	cr_expect_str_eq(buf, "3TiB");
	strata_format_size(0, buf, sizeof(buf));
	cr_expect_str_eq(buf, "0B");
}

Test(units, format_duration_uses_largest_exact_unit)
{
	char buf[32];

	strata_format_duration(90000, buf, sizeof(buf));
	cr_expect_str_eq(buf, "90s");
	strata_format_duration(1500, buf, sizeof(buf));
	cr_expect_str_eq(buf, "1500ms");
	strata_format_duration(300000, buf, sizeof(buf));
	cr_expect_str_eq(buf, "5m");
	strata_format_duration(7200000, buf, sizeof(buf));
	cr_expect_str_eq(buf, "2h");
	strata_format_duration(0, buf, sizeof(buf));
	cr_expect_str_eq(buf, "0s");
}

Test(units, format_truncates_safely)
{
	char buf[4] = "xxx";

	strata_format_size(UINT64_C(256) << 20, buf, sizeof(buf));
	cr_expect_str_eq(buf, "256");
	strata_format_duration(1500, buf, 0);  /* len 0: untouched */
	cr_expect_str_eq(buf, "256");
}

Test(units, format_round_trips)
{
	static const uint64_t values[] = {
		0, 1, 999, 1000, 1024, 1536, 4096, UINT64_C(8) << 20,
		(UINT64_C(8) << 20) + 1, UINT64_C(1) << 40, UINT64_C(7) << 41,
		UINT64_MAX,
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		uint64_t back = 0;

		strata_format_size(values[i], buf, sizeof(buf));
		cr_expect_eq(strata_parse_size(buf, &back), 0, "%s", buf);
		cr_expect_eq(back, values[i], "size %s", buf);
		strata_format_duration(values[i], buf, sizeof(buf));
		cr_expect_eq(strata_parse_duration(buf, &back), 0, "%s", buf);
		cr_expect_eq(back, values[i], "duration %s", buf);
	}
}
