/*
 * units.h: parsing of the sizes and durations used in configuration.
 *
 * Sizes: a whole number with an optional unit B, KiB, MiB, GiB, TiB (powers
 * of 1024) or KB, MB, GB, TB (powers of 1000); a bare number is bytes.
 * Durations: a whole number with ms, s, m or h; a bare number is seconds.
 * Whitespace between the number and the unit is allowed.  Both reject
 * signs, fractions, empty input, unknown units and overflow.
 * Pure functions: thread-safe, no allocation.
 */
#ifndef STRATA_CORE_UNITS_H
#define STRATA_CORE_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parse a size into bytes.  Returns 0, or -EINVAL / -ERANGE. */
int strata_parse_size(const char *text, uint64_t *bytes);

/* Parse a duration into milliseconds.  Returns 0, or -EINVAL / -ERANGE. */
int strata_parse_duration(const char *text, uint64_t *ms);

/* Format bytes as the largest exact binary unit ("256MiB", "1000B"). */
void strata_format_size(uint64_t bytes, char *buf, size_t len);

/* Format milliseconds as the largest exact unit ("90s", "1500ms"). */
void strata_format_duration(uint64_t ms, char *buf, size_t len);

#endif /* STRATA_CORE_UNITS_H */
