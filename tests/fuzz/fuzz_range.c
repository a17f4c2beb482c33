/*
 * fuzz_range.c: Range header plans and multipart/byteranges layouts
 * (cache/range.h).
 *
 * Input: 8 bytes of flags and representation length, then lines: the
 * Range value, a Content-Type, a boundary.  Invariants:
 *  - the plan is for the length asked; ABSENT only for no header; ONE
 *    has one part, MULTI 2..16, the others none;
 *  - every part lies inside the representation; parts of one plan are
 *    disjoint and not adjacent (they were coalesced);
 *  - the order of the range-specs changes only the order of the parts:
 *    the specs reversed give the same kind, reason and set of parts (or,
 *    for a header with a fault, a fault too);
 *  - Content-Range values read back as what they were made from;
 *  - a MULTI plan lays out (with a good boundary and a content type
 *    without CR or LF) to exactly body_len bytes: each part's head names
 *    its range, the bytes are the representation's, the tail closes the
 *    boundary.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/range.h"
#include "fuzz.h"

/* Representations up to this size get a real body to lay out. */
#define BODY_MAX 4096

static void check_plan(const struct strata_range_plan *plan, uint64_t length,
		       const char *range)
{
	FUZZ_CHECK(plan->length == length);
	FUZZ_CHECK((plan->reason == STRATA_RANGE_ABSENT) == (range == NULL));
	FUZZ_CHECK(strata_range_reason_name(plan->reason) != NULL);
	switch (plan->kind) {
	case STRATA_RANGE_WHOLE:
		FUZZ_CHECK(plan->n == 0 && plan->reason != STRATA_RANGE_OK);
		if (plan->reason == STRATA_RANGE_EMPTY)
			FUZZ_CHECK(length == 0);
		break;
	case STRATA_RANGE_ONE:
		FUZZ_CHECK(plan->n == 1 && plan->reason == STRATA_RANGE_OK);
		break;
	case STRATA_RANGE_MULTI:
		FUZZ_CHECK(plan->n >= 2 && plan->n <= STRATA_RANGE_MAX_PARTS);
		FUZZ_CHECK(plan->reason == STRATA_RANGE_OK);
		break;
	case STRATA_RANGE_UNSATISFIABLE:
		FUZZ_CHECK(plan->n == 0 && plan->reason == STRATA_RANGE_OK);
		break;
	default:
		FUZZ_CHECK(!"a plan is WHOLE, ONE, MULTI or UNSATISFIABLE");
	}
	for (size_t i = 0; i < plan->n; i++) {
		const struct strata_byte_range *a = &plan->parts[i];

		FUZZ_CHECK(a->first <= a->last && a->last < length);
		for (size_t j = 0; j < i; j++) {
			const struct strata_byte_range *b = &plan->parts[j];

			/* Neither overlapping nor touching. */
			FUZZ_CHECK(a->last + 1 < b->first ||
				   b->last + 1 < a->first);
		}
	}
}

static int by_first(const void *a, const void *b)
{
	const struct strata_byte_range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* "unit=" and its range-specs in reverse order; NULL without "=". */
static char *reverse_specs(const char *range)
{
	const char *eq = strchr(range, '=');
	size_t len = strlen(range), at, n = 1, k = 0;
	const char **spec;
	size_t *slen;
	char *out;

	if (eq == NULL)
		return NULL;
	for (const char *p = eq + 1; *p; p++)
		n += *p == ',';
	spec = malloc(n * sizeof(*spec));
	slen = malloc(n * sizeof(*slen));
	FUZZ_CHECK(spec != NULL && slen != NULL);
	for (const char *p = eq + 1;; k++) {
		spec[k] = p;
		slen[k] = strcspn(p, ",");
		if (p[slen[k]] == '\0')
			break;
		p += slen[k] + 1;
	}
	out = fuzz_strndup(range, len);
	at = (size_t)(eq - range) + 1;
	for (size_t i = k + 1; i-- > 0;) {
		memcpy(out + at, spec[i], slen[i]);
		at += slen[i];
		if (i > 0)
			out[at++] = ',';
	}
	FUZZ_CHECK(at == len);
	free(spec);
	free(slen);
	return out;
}

static void check_reversed(const struct strata_range_plan *plan,
			   const char *range, uint64_t length)
{
	struct strata_range_plan other;
	struct strata_byte_range a[STRATA_RANGE_MAX_PARTS],
		b[STRATA_RANGE_MAX_PARTS];
	char *rev = reverse_specs(range);

	if (rev == NULL)
		return;
	strata_range_parse(rev, length, &other);
	/* Of two faults (a bad spec, too many specs), the first one met
	 * is named, so only a valid set must read the same. */
	if (plan->reason == STRATA_RANGE_SYNTAX ||
	    plan->reason == STRATA_RANGE_TOO_MANY) {
		FUZZ_CHECK(other.reason == STRATA_RANGE_SYNTAX ||
			   other.reason == STRATA_RANGE_TOO_MANY);
		FUZZ_CHECK(other.kind == STRATA_RANGE_WHOLE);
		free(rev);
		return;
	}
	FUZZ_CHECK(other.kind == plan->kind && other.reason == plan->reason);
	FUZZ_CHECK(other.n == plan->n);
	memcpy(a, plan->parts, plan->n * sizeof(a[0]));
	memcpy(b, other.parts, other.n * sizeof(b[0]));
	qsort(a, plan->n, sizeof(a[0]), by_first);
	qsort(b, other.n, sizeof(b[0]), by_first);
	for (size_t i = 0; i < plan->n; i++)
		FUZZ_CHECK(a[i].first == b[i].first && a[i].last == b[i].last);
	free(rev);
}

static void check_content_range(const struct strata_range_plan *plan)
{
	char buf[STRATA_CONTENT_RANGE_SIZE];
	uint64_t first, last, total;
	size_t len;
	int consumed = 0;

	for (size_t i = 0; i < plan->n; i++) {
		len = strata_range_content_range(buf, plan->parts[i].first,
						 plan->parts[i].last,
						 plan->length);
		FUZZ_CHECK(len == strlen(buf));
		FUZZ_CHECK(sscanf(buf, "bytes %" SCNu64 "-%" SCNu64 "/%" SCNu64
				  "%n", &first, &last, &total,
				  &consumed) == 3);
		FUZZ_CHECK((size_t)consumed == len);
		FUZZ_CHECK(first == plan->parts[i].first &&
			   last == plan->parts[i].last &&
			   total == plan->length);
	}
	len = strata_range_content_range_unsatisfied(buf, plan->length);
	FUZZ_CHECK(len == strlen(buf));
	FUZZ_CHECK(sscanf(buf, "bytes */%" SCNu64 "%n", &total,
			  &consumed) == 1);
	FUZZ_CHECK((size_t)consumed == len && total == plan->length);
}

static bool boundary_ok(const char *b)
{
	size_t n = strlen(b);

	return n >= 1 && n <= 70 &&
	       strspn(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789'+_.-") == n;
}

static void check_multipart(const struct strata_range_plan *plan,
			    const char *content_type, const char *boundary)
{
	struct strata_multipart mp;
	const char *ct = content_type[0] != '\0' ? content_type : NULL;
	char prefix[200], *body, *out;
	size_t blen = strlen(boundary), at = 0;
	int rc = strata_range_multipart_init(&mp, plan, ct, boundary);

	if (plan->kind != STRATA_RANGE_MULTI || !boundary_ok(boundary) ||
	    (ct != NULL && strpbrk(ct, "\r\n") != NULL)) {
		FUZZ_CHECK(rc == -EINVAL);
		FUZZ_CHECK(mp.text == NULL && mp.n == 0);
		strata_range_multipart_clear(&mp);
		return;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(mp.n == plan->n);
	FUZZ_CHECK(strncmp(mp.content_type, "multipart/byteranges; boundary=",
			   31) == 0 &&
		   strcmp(mp.content_type + 31, boundary) == 0);
	for (size_t i = 0; i < mp.n; i++) {
		const struct strata_multipart_part *p = &mp.parts[i];
		char cr[STRATA_CONTENT_RANGE_SIZE];
		size_t skip = i > 0 ? 2 : 0;

		FUZZ_CHECK(p->first == plan->parts[i].first);
		FUZZ_CHECK(p->len ==
			   plan->parts[i].last - plan->parts[i].first + 1);
		FUZZ_CHECK(i == 0 || memcmp(p->head, "\r\n", 2) == 0);
		FUZZ_CHECK(memcmp(p->head + skip, "--", 2) == 0 &&
			   memcmp(p->head + skip + 2, boundary, blen) == 0);
		FUZZ_CHECK(p->head_len >= 4 &&
			   memcmp(p->head + p->head_len - 4, "\r\n\r\n", 4) == 0);
		strata_range_content_range(cr, plan->parts[i].first,
					   plan->parts[i].last, plan->length);
		snprintf(prefix, sizeof(prefix), "Content-Range: %s\r\n\r\n",
			 cr);
		FUZZ_CHECK(p->head_len >= strlen(prefix) &&
			   memcmp(p->head + p->head_len - strlen(prefix),
				  prefix, strlen(prefix)) == 0);
	}
	FUZZ_CHECK(mp.tail_len == blen + 8 && memcmp(mp.tail, "\r\n--", 4) == 0 &&
		   memcmp(mp.tail + 4, boundary, blen) == 0 &&
		   memcmp(mp.tail + 4 + blen, "--\r\n", 4) == 0);

	if (plan->length <= BODY_MAX) {
		size_t len = (size_t)plan->length;

		body = malloc(len ? len : 1);
		out = malloc((size_t)mp.body_len);
		FUZZ_CHECK(body != NULL && out != NULL);
		for (size_t i = 0; i < len; i++)
			body[i] = (char)(i * 131 + 7);
		/* Too short a buffer, or a body without the last byte a
		 * part needs: refused. */
		if (len > 0) {
			uint64_t max_last = 0;

			for (size_t i = 0; i < mp.n; i++) {
				if (plan->parts[i].last > max_last)
					max_last = plan->parts[i].last;
			}
			rc = strata_range_multipart_write(&mp, body, len - 1,
							  out,
							  (size_t)mp.body_len);
			FUZZ_CHECK((rc == -EINVAL) == (max_last == len - 1));
			FUZZ_CHECK(rc == 0 || rc == -EINVAL);
		}
		FUZZ_CHECK(strata_range_multipart_write(
				   &mp, body, len, out,
				   (size_t)mp.body_len - 1) == -EINVAL);
		FUZZ_CHECK(strata_range_multipart_write(
				   &mp, body, len, out, (size_t)mp.body_len) == 0);
		for (size_t i = 0; i < mp.n; i++) {
			const struct strata_multipart_part *p = &mp.parts[i];

			FUZZ_CHECK(memcmp(out + at, p->head, p->head_len) == 0);
			at += p->head_len;
			FUZZ_CHECK(memcmp(out + at, body + p->first,
					  (size_t)p->len) == 0);
			at += (size_t)p->len;
		}
		FUZZ_CHECK(memcmp(out + at, mp.tail, mp.tail_len) == 0);
		FUZZ_CHECK(at + mp.tail_len == mp.body_len);
		free(body);
		free(out);
	}
	strata_range_multipart_clear(&mp);
	FUZZ_CHECK(mp.text == NULL);
	strata_range_multipart_clear(&mp);   /* harmless twice */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t flags = fuzz_take_byte(&in);
	uint64_t length = fuzz_take_u64(&in, 7);
	char *range, *content_type, *boundary;
	char seeded[STRATA_RANGE_BOUNDARY_SIZE];
	struct strata_range_plan plan;

	/* Mostly small representations, whose parts can be laid out. */
	if ((flags & 0x03) != 0)
		length %= (flags & 0x02) ? BODY_MAX + 1 : 64;
	range = fuzz_take_until(&in, '\n');
	content_type = fuzz_take_until(&in, '\n');
	boundary = fuzz_take_rest(&in);

	strata_range_parse((flags & 0x04) ? NULL : range, length, &plan);
	check_plan(&plan, length, (flags & 0x04) ? NULL : range);
	if ((flags & 0x04) == 0)
		check_reversed(&plan, range, length);
	check_content_range(&plan);

	strata_range_boundary(seeded, length);
	FUZZ_CHECK(strlen(seeded) == STRATA_RANGE_BOUNDARY_SIZE - 1 &&
		   boundary_ok(seeded));
	check_multipart(&plan, content_type,
			(flags & 0x08) ? seeded : boundary);

	free(range);
	free(content_type);
	free(boundary);
	return 0;
}
