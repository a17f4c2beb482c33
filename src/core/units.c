/*
 * units.c: sizes and durations as people write them in configuration.
 *
 * Both parsers read the same shape: optional whitespace, a whole decimal
 * number, optional whitespace, an optional unit, optional whitespace.  The
 * number is read first and the unit looked up in a small table, so an
 * unknown unit is -EINVAL even when the number alone would overflow: the
 * user should hear about the typo before the magnitude.  Signs, fractions
 * and exponents are refused rather than rounded, because a config value
 * that silently means something else is worse than an error.
 */
#include "config.h"

#include "core/units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct unit {
	const char *name;
	uint64_t factor;
};

/* Case-sensitive on purpose: "mb" could be megabits, "Mb" certainly is. */
static const struct unit size_units[] = {
	{ "", 1 },
	{ "B", 1 },
	{ "KiB", UINT64_C(1) << 10 },
	{ "MiB", UINT64_C(1) << 20 },
	{ "GiB", UINT64_C(1) << 30 },
	{ "TiB", UINT64_C(1) << 40 },
	{ "KB", UINT64_C(1000) },
	{ "MB", UINT64_C(1000000) },
	{ "GB", UINT64_C(1000000000) },
	{ "TB", UINT64_C(1000000000000) },
};

static const struct unit duration_units[] = {
	{ "", 1000 },   /* a bare number is seconds */
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60 * 1000 },
	{ "h", 60 * 60 * 1000 },
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * The shared reader: number times the factor of a unit from `units`.
 * Returns 0, -EINVAL (shape or unit) or -ERANGE (does not fit 64 bits).
 */
static int parse_scaled(const char *text, const struct unit *units,
			size_t n_units, uint64_t *out)
{
	const char *p = text;
	uint64_t number = 0;
	bool overflow = false;
	const char *unit_start;
	size_t unit_len;

	if (!text)
		return -EINVAL;
	while (is_space(*p))
		p++;
	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (number > (UINT64_MAX - digit) / 10)
			overflow = true;
		else
			number = number * 10 + digit;
	}
	while (is_space(*p))
		p++;
	unit_start = p;
	while (*p && !is_space(*p))
		p++;
	unit_len = (size_t)(p - unit_start);
	while (is_space(*p))
		p++;
	if (*p)
		return -EINVAL;  /* a second word: "10 parsecs away" */

	for (size_t i = 0; i < n_units; i++) {
		if (strlen(units[i].name) != unit_len ||
		    memcmp(units[i].name, unit_start, unit_len) != 0)
			continue;
		if (overflow || (number && units[i].factor > UINT64_MAX / number))
			return -ERANGE;
		*out = number * units[i].factor;
		return 0;
	}
	return -EINVAL;
}

int strata_parse_size(const char *text, uint64_t *bytes)
{
	return parse_scaled(text, size_units,
			    sizeof(size_units) / sizeof(size_units[0]), bytes);
}

int strata_parse_duration(const char *text, uint64_t *ms)
{
	return parse_scaled(text, duration_units,
			    sizeof(duration_units) / sizeof(duration_units[0]),
			    ms);
}

/*
 * Write `value` in the largest unit of `units` (from the end of the table,
 * largest first) that divides it exactly, so the text parses back to the
 * same number.
 */
static void format_scaled(uint64_t value, const struct unit *units,
			  size_t n_units, const char *zero, char *buf,
			  size_t len)
{
	if (!buf || len == 0)
		return;
	if (value == 0) {
		snprintf(buf, len, "%s", zero);
		return;
	}
	for (size_t i = n_units; i-- > 0;) {
		if (units[i].name[0] && value % units[i].factor == 0) {
			snprintf(buf, len, "%" PRIu64 "%s",
				 value / units[i].factor, units[i].name);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, value);
}

void strata_format_size(uint64_t bytes, char *buf, size_t len)
{
	/* Binary units only: B through TiB, the first six table entries. */
	format_scaled(bytes, size_units, 6, "0B", buf, len);
}

void strata_format_duration(uint64_t ms, char *buf, size_t len)
{
	/* Skip the bare entry: "90s" reads better than "90". */
	format_scaled(ms, duration_units + 1,
		      sizeof(duration_units) / sizeof(duration_units[0]) - 1,
		      "0s", buf, len);
}
