/*
 * range.c: byte Range requests; see range.h.
 *
 * Parsing reads the whole ranges-specifier before deciding anything,
 * since one invalid range-spec makes the whole header invalid (RFC 9110
 * section 14.1.1), and an invalid header is ignored: the full 200 is a
 * correct answer to any GET, so neither a 400 nor a 416 is ever sent for
 * bad syntax.  Each valid spec is then resolved against the length
 * (section 14.1.2): unsatisfiable ones are dropped, last-pos is clipped,
 * suffixes are turned into offsets.
 *
 * Coalescing.  Section 14.2 lets a server ignore "more than two
 * overlapping ranges, or a set of many small ranges that are not listed
 * in ascending order", the signs of a broken client or of an attack that
 * asks for the same bytes many times over (section 17.15).  Rather than
 * refuse such sets, we merge every group of overlapping or adjacent
 * ranges into one (section 15.3.7.2 allows coalescing), so no byte is
 * sent twice, and then refuse (serve 200) only if more than
 * STRATA_RANGE_MAX_PARTS parts remain.  Sending the parts "in the same
 * order that the corresponding range-spec appeared" (the same section's
 * SHOULD) is kept: a merged part takes the place of the earliest spec
 * it absorbed.  The algorithm sorts the resolved ranges by offset, merges
 * runs in one pass, then sorts the merged parts by that earliest
 * position; with at most STRATA_RANGE_MAX_SPECS specs, insertion sorts on
 * the stack are plenty.
 */
#include "config.h"

#include "cache/range.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/http.h"
#include "core/log.h"

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* 1*DIGIT, saturating at UINT64_MAX rather than overflowing (section
 * 14.1.2 asks recipients to expect huge numerals). */
static bool take_number(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*p = s;
	*out = v;
	return true;
}

/* A resolved range and the position of the spec it came from. */
struct spec {
	uint64_t first;
	uint64_t last;
	size_t pos;
};

static void sort_by_first(struct spec *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct spec x = v[i];
		size_t j = i;

		for (; j > 0 && v[j - 1].first > x.first; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

static void sort_by_pos(struct spec *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct spec x = v[i];
		size_t j = i;

		for (; j > 0 && v[j - 1].pos > x.pos; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

/* Merge overlapping or adjacent ranges in place; returns the count. */
static size_t coalesce(struct spec *v, size_t n)
{
	size_t out = 0;

	if (n == 0)
		return 0;
	sort_by_first(v, n);
	for (size_t i = 1; i < n; i++) {
		struct spec *cur = &v[out];

		/* last < length <= UINT64_MAX, so last + 1 cannot wrap. */
		if (v[i].first <= cur->last + 1) {
			if (v[i].last > cur->last)
				cur->last = v[i].last;
			if (v[i].pos < cur->pos)
				cur->pos = v[i].pos;
		} else {
			v[++out] = v[i];
		}
	}
	out++;
	sort_by_pos(v, out);
	return out;
}

/*
 * Read the range-set after "bytes=" and resolve each spec against
 * `length` into specs[] (in request order); a suffix that is satisfiable
 * only in name (the representation is empty) sets *empty_satisfiable.
 * Returns STRATA_RANGE_OK or why the header is to be ignored.
 */
static enum strata_range_reason read_specs(const char *p, uint64_t length,
					   struct spec *specs, size_t *n_out,
					   bool *empty_satisfiable)
{
	size_t n_specs = 0, n = 0;

	/* range-set = 1#range-spec, with the list rule's optional
	 * whitespace and empty elements. */
	for (;;) {
		uint64_t first, last, suffix;
		bool has_last;

		p = skip_ows(p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\0')
			break;
		if (n_specs == STRATA_RANGE_MAX_SPECS)
			return STRATA_RANGE_TOO_MANY;
		n_specs++;
		if (*p == '-') {                /* suffix-range: -n */
			p++;
			if (!take_number(&p, &suffix))
				return STRATA_RANGE_SYNTAX;
			if (suffix == 0) {
				;               /* unsatisfiable */
			} else if (length == 0) {
				*empty_satisfiable = true;
			} else {
				specs[n].first =
					suffix >= length ? 0 : length - suffix;
				specs[n].last = length - 1;
				specs[n].pos = n_specs;
				n++;
			}
		} else {                        /* int-range: a-b or a- */
			if (!take_number(&p, &first) || *p++ != '-')
				return STRATA_RANGE_SYNTAX;
			has_last = take_number(&p, &last);
			if (has_last && last < first)
				return STRATA_RANGE_SYNTAX;
			if (first < length) {   /* else unsatisfiable */
				specs[n].first = first;
				specs[n].last = !has_last || last >= length
							? length - 1 : last;
				specs[n].pos = n_specs;
				n++;
			}
		}
		p = skip_ows(p);
		if (*p == ',')
			p++;
		else if (*p != '\0')
			return STRATA_RANGE_SYNTAX;
	}
	if (n_specs == 0)
		return STRATA_RANGE_SYNTAX;
	*n_out = n;
	return STRATA_RANGE_OK;
}

void strata_range_parse(const char *range, uint64_t length,
			struct strata_range_plan *plan)
{
	struct spec specs[STRATA_RANGE_MAX_SPECS];
	size_t n = 0;
	bool empty_satisfiable = false;
	enum strata_range_reason reason;
	const char *p, *unit;

	STRATA_ASSERT(plan != NULL);
	memset(plan, 0, sizeof(*plan));
	plan->kind = STRATA_RANGE_WHOLE;
	plan->length = length;
	if (range == NULL) {
		plan->reason = STRATA_RANGE_ABSENT;
		return;
	}

	/* ranges-specifier = range-unit "=" range-set */
	p = unit = skip_ows(range);
	while (strata_http_is_tchar((unsigned char)*p))
		p++;
	if (p == unit || *p != '=')
		reason = STRATA_RANGE_SYNTAX;
	else if (p - unit != 5 || strncasecmp(unit, "bytes", 5) != 0)
		reason = STRATA_RANGE_UNIT;
	else
		reason = read_specs(p + 1, length, specs, &n,
				    &empty_satisfiable);
	if (reason != STRATA_RANGE_OK) {
		plan->reason = reason;
		return;
	}

	if (n == 0) {
		if (empty_satisfiable)
			plan->reason = STRATA_RANGE_EMPTY;
		else
			plan->kind = STRATA_RANGE_UNSATISFIABLE;
		return;
	}
	n = coalesce(specs, n);
	if (n > STRATA_RANGE_MAX_PARTS) {
		plan->reason = STRATA_RANGE_TOO_MANY;
		return;
	}
	plan->kind = n == 1 ? STRATA_RANGE_ONE : STRATA_RANGE_MULTI;
	plan->n = n;
	for (size_t i = 0; i < n; i++) {
		plan->parts[i].first = specs[i].first;
		plan->parts[i].last = specs[i].last;
	}
}

const char *strata_range_reason_name(enum strata_range_reason reason)
{
	switch (reason) {
	case STRATA_RANGE_OK:       return "ok";
	case STRATA_RANGE_ABSENT:   return "absent";
	case STRATA_RANGE_UNIT:     return "unit";
	case STRATA_RANGE_SYNTAX:   return "syntax";
	case STRATA_RANGE_TOO_MANY: return "too-many";
	case STRATA_RANGE_EMPTY:    return "empty";
	}
	return "unknown";
}

size_t strata_range_content_range(char buf[STRATA_CONTENT_RANGE_SIZE],
				  uint64_t first, uint64_t last,
				  uint64_t total)
{
	int n;

	STRATA_ASSERT(first <= last && last < total);
	n = snprintf(buf, STRATA_CONTENT_RANGE_SIZE,
		     "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
		     first, last, total);
	STRATA_ASSERT(n > 0 && n < STRATA_CONTENT_RANGE_SIZE);
	return (size_t)n;
}

size_t strata_range_content_range_unsatisfied(
	char buf[STRATA_CONTENT_RANGE_SIZE], uint64_t total)
{
	int n = snprintf(buf, STRATA_CONTENT_RANGE_SIZE, "bytes */%" PRIu64,
			 total);

	STRATA_ASSERT(n > 0 && n < STRATA_CONTENT_RANGE_SIZE);
	return (size_t)n;
}

void strata_range_boundary(char buf[STRATA_RANGE_BOUNDARY_SIZE],
			   uint64_t seed)
{
	int n = snprintf(buf, STRATA_RANGE_BOUNDARY_SIZE, "strata-%016" PRIx64,
			 seed);

	STRATA_ASSERT(n == STRATA_RANGE_BOUNDARY_SIZE - 1);
}

/* ---- multipart/byteranges ------------------------------------------------ */

#define CRLF "\r\n"
#define CT_PREFIX "Content-Type: "
#define CR_PREFIX "Content-Range: "
#define MP_PREFIX "multipart/byteranges; boundary="
#define LIT_LEN(s) (sizeof(s) - 1)

/* Boundary characters that are both RFC 2046 bchars and tchars, so the
 * boundary parameter needs no quoting. */
static bool boundary_ok(const char *b)
{
	size_t n = 0;

	for (; b[n] != '\0'; n++) {
		unsigned char c = (unsigned char)b[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '\'' || c == '+' ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return n >= 1 && n <= 70;
}

/* Appends to a buffer sized beforehand; running past it is a bug. */
struct text_out {
	char *p;
	char *end;
};

static void put(struct text_out *w, const char *s, size_t n)
{
	STRATA_ASSERT((size_t)(w->end - w->p) >= n);
	memcpy(w->p, s, n);
	w->p += n;
}

static void put_str(struct text_out *w, const char *s)
{
	put(w, s, strlen(s));
}

int strata_range_multipart_init(struct strata_multipart *mp,
				const struct strata_range_plan *plan,
				const char *content_type, const char *boundary)
{
	char cr[STRATA_RANGE_MAX_PARTS][STRATA_CONTENT_RANGE_SIZE];
	size_t cr_len[STRATA_RANGE_MAX_PARTS];
	size_t blen, ctlen, size, tail_len;
	uint64_t total = 0;
	struct text_out w;

	STRATA_ASSERT(mp != NULL && plan != NULL);
	memset(mp, 0, sizeof(*mp));
	if (plan->kind != STRATA_RANGE_MULTI || plan->n < 2 ||
	    plan->n > STRATA_RANGE_MAX_PARTS)
		return -EINVAL;
	if (boundary == NULL || !boundary_ok(boundary))
		return -EINVAL;
	if (content_type != NULL && strpbrk(content_type, "\r\n") != NULL)
		return -EINVAL;
	blen = strlen(boundary);
	ctlen = content_type != NULL ? strlen(content_type) : 0;

	/* Size everything first, so one allocation holds all the text. */
	tail_len = LIT_LEN(CRLF) + 2 + blen + 2 + LIT_LEN(CRLF);
	size = LIT_LEN(MP_PREFIX) + blen + 1 + tail_len;
	for (size_t i = 0; i < plan->n; i++) {
		const struct strata_byte_range *r = &plan->parts[i];
		size_t head;

		if (r->first > r->last || r->last >= plan->length)
			goto einval;
		cr_len[i] = strata_range_content_range(cr[i], r->first,
						       r->last, plan->length);
		head = (i > 0 ? LIT_LEN(CRLF) : 0) + 2 + blen + LIT_LEN(CRLF) +
		       (content_type != NULL
				? LIT_LEN(CT_PREFIX) + ctlen + LIT_LEN(CRLF)
				: 0) +
		       LIT_LEN(CR_PREFIX) + cr_len[i] + LIT_LEN(CRLF) +
		       LIT_LEN(CRLF);
		mp->parts[i].head_len = head;
		mp->parts[i].first = r->first;
		mp->parts[i].len = r->last - r->first + 1;
		size += head;
		/* Parts from a parsed plan are disjoint, so their sum is
		 * at most the length; a hand-made plan might not be. */
		if (head > UINT64_MAX - total)
			goto einval;
		total += head;
		if (mp->parts[i].len > UINT64_MAX - total)
			goto einval;
		total += mp->parts[i].len;
	}
	if (tail_len > UINT64_MAX - total)
		goto einval;
	total += tail_len;

	mp->text = malloc(size);
	if (mp->text == NULL) {
		memset(mp, 0, sizeof(*mp));
		return -ENOMEM;
	}
	w.p = mp->text;
	w.end = mp->text + size;

	mp->content_type = w.p;
	put_str(&w, MP_PREFIX);
	put(&w, boundary, blen);
	put(&w, "", 1);                       /* the NUL */

	for (size_t i = 0; i < plan->n; i++) {
		mp->parts[i].head = w.p;
		if (i > 0)
			put_str(&w, CRLF);
		put_str(&w, "--");
		put(&w, boundary, blen);
		put_str(&w, CRLF);
		if (content_type != NULL) {
			put_str(&w, CT_PREFIX);
			put(&w, content_type, ctlen);
			put_str(&w, CRLF);
		}
		put_str(&w, CR_PREFIX);
		put(&w, cr[i], cr_len[i]);
		put_str(&w, CRLF CRLF);
		STRATA_ASSERT((size_t)(w.p - mp->parts[i].head) ==
			      mp->parts[i].head_len);
	}
	mp->tail = w.p;
	mp->tail_len = tail_len;
	put_str(&w, CRLF "--");
	put(&w, boundary, blen);
	put_str(&w, "--" CRLF);
	STRATA_ASSERT(w.p == w.end);

	mp->n = plan->n;
	mp->body_len = total;
	return 0;

einval:
	memset(mp, 0, sizeof(*mp));
	return -EINVAL;
}

int strata_range_multipart_write(const struct strata_multipart *mp,
				 const void *body, size_t body_len,
				 void *out, size_t out_len)
{
	const char *src = body;
	char *dst = out;

	STRATA_ASSERT(mp != NULL);
	if (mp->text == NULL || out_len < mp->body_len)
		return -EINVAL;
	for (size_t i = 0; i < mp->n; i++) {
		const struct strata_multipart_part *part = &mp->parts[i];

		if (part->first > body_len || part->len > body_len - part->first)
			return -EINVAL;
	}
	for (size_t i = 0; i < mp->n; i++) {
		const struct strata_multipart_part *part = &mp->parts[i];

		memcpy(dst, part->head, part->head_len);
		dst += part->head_len;
		memcpy(dst, src + part->first, (size_t)part->len);
		dst += part->len;
	}
	memcpy(dst, mp->tail, mp->tail_len);
	return 0;
}

void strata_range_multipart_clear(struct strata_multipart *mp)
{
	if (mp == NULL)
		return;
	free(mp->text);
	memset(mp, 0, sizeof(*mp));
}
