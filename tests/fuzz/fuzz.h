/*
 * fuzz.h: what the libFuzzer targets in tests/fuzz/ share.
 *
 * FUZZ_CHECK states an invariant of the module under test; a broken one
 * aborts with the condition's text, which libFuzzer reports as a crash and
 * saves the input for (docs/testing.md, "Fuzzing").  A fuzz_input hands
 * out the input's bytes as NUL-terminated strings: the functions under
 * test take C strings, and a copy of exactly the bytes used (plus the NUL)
 * lets AddressSanitizer catch a read one past the end.
 *
 * Everything here is static inline: each target is one .c file plus this
 * header, built with -fsanitize=fuzzer,address,undefined.
 */
#ifndef STRATA_TESTS_FUZZ_H
#define STRATA_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: invariant broken: %s\n",      \
				__FILE__, __LINE__, #cond);                   \
			abort();                                              \
		}                                                             \
	} while (0)

/* The fuzzer's input, consumed from the front. */
struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

/* A malloc'd NUL-terminated copy of n bytes; never NULL (abort on OOM:
 * libFuzzer's -rss_limit_mb reports a real leak long before that). */
static inline char *fuzz_strndup(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	if (n > 0)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/*
 * The bytes up to the next `sep` (not included; it is consumed), or the
 * rest of the input, as a new string the caller frees.  NUL bytes inside
 * are kept, so the string may read shorter than the bytes it came from:
 * that too is an input a caller could pass.
 */
static inline char *fuzz_take_until(struct fuzz_input *in, uint8_t sep)
{
	const uint8_t *end = memchr(in->p, sep, in->left);
	size_t n = end != NULL ? (size_t)(end - in->p) : in->left;
	char *s = fuzz_strndup(in->p, n);

	in->p += n;
	in->left -= n;
	if (in->left > 0) {   /* the separator */
		in->p++;
		in->left--;
	}
	return s;
}

/* The rest of the input as a string (see fuzz_take_until). */
static inline char *fuzz_take_rest(struct fuzz_input *in)
{
	char *s = fuzz_strndup(in->p, in->left);

	in->p += in->left;
	in->left = 0;
	return s;
}

/* One byte, or 0 when the input is spent. */
static inline uint8_t fuzz_take_byte(struct fuzz_input *in)
{
	uint8_t b = 0;

	if (in->left > 0) {
		b = in->p[0];
		in->p++;
		in->left--;
	}
	return b;
}

/* A little-endian integer of n bytes (fewer if the input runs out). */
static inline uint64_t fuzz_take_u64(struct fuzz_input *in, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && in->left > 0; i++)
		v |= (uint64_t)fuzz_take_byte(in) << (8 * i);
	return v;
}

#endif /* STRATA_TESTS_FUZZ_H */
