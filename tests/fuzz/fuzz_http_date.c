/*
 * fuzz_http_date.c: Strata's two HTTP-date parsers on any text: the
 * strict one the freshness rules use (strata_http_date_parse, _parse_at)
 * and the lenient one for conditional requests (strata_cond_date_parse).
 *
 * Invariants:
 *  - a parsed date is a whole second, and formats (as an IMF-fixdate)
 *    to a date that both parsers read back as the same instant;
 *  - what the strict parser accepts, the lenient one accepts too, as the
 *    same second; a leap second (:60) aside, which the strict parser reads
 *    as :59 (RFC 9111 section 4.2) and the lenient one as the next second;
 *  - with a clock (parse_at), only the century of a two-digit year can
 *    differ from the clock-free reading;
 *  - formatting any instant either fails with -ERANGE and "" (outside
 *    years 0000-9999) or writes 29 characters that parse back to the
 *    instant, floored to the second.
 * The input's first 8 bytes are also read as an instant to format.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/conditional.h"
#include "cache/freshness.h"
#include "fuzz.h"

#define MS_PER_S INT64_C(1000)
#define NOW_MS INT64_C(1700000000000)
/* 100 years of 365.2425 days, in ms: the most a century choice moves. */
#define CENTURY_MS (INT64_C(3155695200) * MS_PER_S)

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static void check_format(int64_t ms)
{
	char buf[STRATA_HTTP_DATE_BUFSIZE];
	int64_t back, cond_s;

	memset(buf, 'x', sizeof(buf));
	if (strata_http_date_format(ms, buf) != 0) {
		FUZZ_CHECK(buf[0] == '\0');
		return;
	}
	FUZZ_CHECK(strlen(buf) == STRATA_HTTP_DATE_LEN);
	FUZZ_CHECK(strata_http_date_parse(buf, &back) == 0);
	FUZZ_CHECK(back == floor_div(ms, MS_PER_S) * MS_PER_S);
	FUZZ_CHECK(strata_cond_date_parse(buf, &cond_s) == 0);
	FUZZ_CHECK(cond_s * MS_PER_S == back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	int64_t ms = INT64_MIN, at_ms = INT64_MIN, cond_s = INT64_MIN;
	int rc, rc_at, rc_cond;
	uint64_t raw = 0;

	rc = strata_http_date_parse(text, &ms);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	FUZZ_CHECK(rc == 0 || ms == INT64_MIN);   /* untouched on error */
	rc_at = strata_http_date_parse_at(text, NOW_MS, &at_ms);
	FUZZ_CHECK(rc_at == 0 || rc_at == -EINVAL);
	rc_cond = strata_cond_date_parse(text, &cond_s);
	FUZZ_CHECK(rc_cond == 0 || rc_cond == -EINVAL);

	if (rc == 0) {
		FUZZ_CHECK(ms % MS_PER_S == 0);
		check_format(ms);
		FUZZ_CHECK(rc_cond == 0);
		if (cond_s * MS_PER_S != ms) {
			/* Only a leap second reads differently. */
			FUZZ_CHECK(cond_s * MS_PER_S == ms + MS_PER_S);
			FUZZ_CHECK(strstr(text, ":60") != NULL);
		}
	}
	if (rc_at == 0) {
		FUZZ_CHECK(at_ms % MS_PER_S == 0);
		check_format(at_ms);
	}
	if (rc_at == 0 && rc == 0 && at_ms != ms) {
		/* The clock can only change a two-digit year's century (and
		 * the weekday must still match, so the clock-free reading
		 * may fail instead). */
		int64_t d = at_ms - ms;

		FUZZ_CHECK(d % (INT64_C(86400) * MS_PER_S) == 0 &&
			   (d > 0 ? d : -d) <= 2 * CENTURY_MS);
	}
	if (rc_cond == 0)
		check_format(cond_s * MS_PER_S);

	/* The first bytes as an instant. */
	for (size_t i = 0; i < 8 && i < size; i++)
		raw |= (uint64_t)data[i] << (8 * i);
	check_format((int64_t)raw);
	check_format((int64_t)(raw % (INT64_C(253402300800) * MS_PER_S)));

	free(text);
	return 0;
}
