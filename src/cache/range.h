/*
 * range.h: byte Range requests answered from a stored representation
 * (RFC 9110 section 14; 206 in section 15.3.7, 416 in section 15.5.17).
 *
 * strata_range_parse() turns a Range header value and the length of the
 * representation into a plan: serve it whole (200), one part (206 with
 * Content-Range), several parts (206 multipart/byteranges) or nothing
 * (416 with "Content-Range: bytes * /N", without the space).  For several
 * parts, strata_range_multipart_init() lays out the body as segments of
 * text and slices of the representation, so the caller can send the
 * stored body without copying it, or have it all copied into one buffer
 * by strata_range_multipart_write().
 *
 * The caller applies a Range only to a GET whose answer would otherwise
 * be the stored 200, after strata_conditional_evaluate() said NONE and
 * strata_conditional_if_range() said true.
 *
 * Decisions where the RFC leaves room (details in range.c):
 *  - invalid syntax, an unknown unit or more than STRATA_RANGE_MAX_SPECS
 *    range-specs: the header is ignored (200), never a 400 or 416;
 *  - overlapping and adjacent ranges are coalesced; parts keep the order
 *    in which the client first asked for them (section 15.3.7.2);
 *  - more than STRATA_RANGE_MAX_PARTS parts after coalescing: 200 (a
 *    defence against many tiny ranges, section 14.2 and 17.15);
 *  - a zero-length representation: 200 if a suffix range made the set
 *    satisfiable (there is no byte to send in a 206), else 416;
 *  - numbers too large for 64 bits saturate, which gives them their
 *    meaning anyway (a first-pos past the end, a last-pos clipped).
 *
 * Pure: no I/O, no global state; everything is thread-safe.  Only
 * strata_range_multipart_init() allocates, and its result is freed by
 * strata_range_multipart_clear().
 */
#ifndef STRATA_CACHE_RANGE_H
#define STRATA_CACHE_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* At most this many range-specs are read from one header. */
#define STRATA_RANGE_MAX_SPECS 64
/* At most this many parts in a 206, after coalescing. */
#define STRATA_RANGE_MAX_PARTS 16

/* Bytes first..last of the representation, both inclusive. */
struct strata_byte_range {
	uint64_t first;
	uint64_t last;
};

enum strata_range_kind {
	STRATA_RANGE_WHOLE = 0,        /* ignore Range: 200 with everything */
	STRATA_RANGE_ONE,              /* 206 with parts[0] */
	STRATA_RANGE_MULTI,            /* 206 multipart/byteranges, n >= 2 */
	STRATA_RANGE_UNSATISFIABLE,    /* 416, "Content-Range: bytes * /N" */
};

/* Why a plan is what it is, for logs. */
enum strata_range_reason {
	STRATA_RANGE_OK = 0,           /* ONE, MULTI, UNSATISFIABLE */
	STRATA_RANGE_ABSENT,           /* no Range header */
	STRATA_RANGE_UNIT,             /* a unit other than bytes */
	STRATA_RANGE_SYNTAX,           /* an invalid ranges-specifier */
	STRATA_RANGE_TOO_MANY,         /* over MAX_SPECS specs or MAX_PARTS parts */
	STRATA_RANGE_EMPTY,            /* satisfiable, but the representation
					  is empty */
};

struct strata_range_plan {
	enum strata_range_kind kind;
	enum strata_range_reason reason;
	uint64_t length;               /* representation length planned for */
	size_t n;                      /* parts used: 1 for ONE, 2.. for MULTI */
	struct strata_byte_range parts[STRATA_RANGE_MAX_PARTS];
};

/*
 * Plan the answer to Range value `range` (NULL: absent) for a
 * representation of `length` bytes (RFC 9110 section 14.1.2): bytes=a-b,
 * a- (to the end) and -n (the last n bytes), comma-separated with
 * optional whitespace and empty elements; the unit ignoring case; a
 * last-pos at or past the end clipped; a suffix longer than the
 * representation meaning all of it.  A range starting at or after
 * `length`, or a suffix of 0, is unsatisfiable and dropped; if nothing
 * is left the plan is UNSATISFIABLE.  The rest are coalesced (see
 * above); one part gives ONE, more give MULTI.  Never fails: every
 * outcome is a plan.
 */
void strata_range_parse(const char *range, uint64_t length,
			struct strata_range_plan *plan);

/* A short lowercase name for a reason ("syntax"), for logs. */
const char *strata_range_reason_name(enum strata_range_reason reason);

/*
 * Content-Range field values: "bytes <first>-<last>/<total>" for a part
 * (first <= last < total, else STRATA_ASSERT) and "bytes * /<total>"
 * (without the space) for a 416.  Write into `buf` with a NUL and return
 * the length.
 */
#define STRATA_CONTENT_RANGE_SIZE 72
size_t strata_range_content_range(char buf[STRATA_CONTENT_RANGE_SIZE],
				  uint64_t first, uint64_t last,
				  uint64_t total);
size_t strata_range_content_range_unsatisfied(
	char buf[STRATA_CONTENT_RANGE_SIZE], uint64_t total);

/*
 * A multipart boundary derived from `seed`: "strata-" and 16 lowercase
 * hex digits, 23 characters and a NUL.  The boundary must not occur in
 * the parts; a good seed is XXH3_64bits() of the stored body, which a
 * body can hardly contain the hex form of by accident, so equal bodies
 * get equal boundaries and answers stay reproducible.
 */
#define STRATA_RANGE_BOUNDARY_SIZE 24
void strata_range_boundary(char buf[STRATA_RANGE_BOUNDARY_SIZE],
			   uint64_t seed);

/* One part of a multipart/byteranges body: `head`, then `len` bytes of
 * the representation from offset `first`. */
struct strata_multipart_part {
	const char *head;              /* in the layout's text; not NUL-terminated */
	size_t head_len;
	uint64_t first;
	uint64_t len;
};

/*
 * The layout of a multipart/byteranges body (RFC 9110 section 14.6 and
 * RFC 2046 section 5.1.1), exactly:
 *
 *   "--" B CRLF
 *   "Content-Type: " T CRLF            (only when a content type is given)
 *   "Content-Range: bytes a-b/N" CRLF
 *   CRLF
 *   <bytes a..b>
 *   CRLF "--" B CRLF                   (each further part, same headers)
 *   ...
 *   CRLF "--" B "--" CRLF
 *
 * The first delimiter starts the body (no preamble); the CRLF before each
 * later delimiter belongs to the delimiter, not to the part's bytes.  So
 * parts[0].head is "--B\r\n...\r\n\r\n", parts[i > 0].head starts with
 * "\r\n--B", and tail is "\r\n--B--\r\n".  The body is head, slice, head,
 * slice, ..., tail, `body_len` bytes in all; `content_type` is the value
 * of the response's Content-Type ("multipart/byteranges; boundary=B"),
 * and no Content-Range goes in the response's own header section.
 */
struct strata_multipart {
	const char *content_type;      /* NUL-terminated, in `text` */
	size_t n;
	struct strata_multipart_part parts[STRATA_RANGE_MAX_PARTS];
	const char *tail;              /* in `text`; not NUL-terminated */
	size_t tail_len;
	uint64_t body_len;             /* the response's Content-Length */
	char *text;                    /* owned: every head, tail and
					  content_type */
};

/*
 * Lay out the body for a MULTI `plan` (else -EINVAL).  `content_type`:
 * the representation's Content-Type, repeated in each part (NULL: no
 * Content-Type lines; a CR or LF in it: -EINVAL).  `boundary`: 1 to 70
 * characters from [A-Za-z0-9'+_.-] (so it needs no quoting; else
 * -EINVAL), e.g. from strata_range_boundary().  Returns 0, -EINVAL or
 * -ENOMEM; on error *mp is left empty (clearing it is harmless).  The
 * caller owns *mp and frees it with strata_range_multipart_clear(); the
 * plan and the strings are not referenced afterwards.
 */
int strata_range_multipart_init(struct strata_multipart *mp,
				const struct strata_range_plan *plan,
				const char *content_type, const char *boundary);

/*
 * Copy the whole multipart body into `out` (`out_len` >= mp->body_len)
 * from the representation `body` of `body_len` bytes (the plan's length).
 * Returns 0, or -EINVAL (a short `out`, or a body too short for the
 * parts), writing nothing then.
 */
int strata_range_multipart_write(const struct strata_multipart *mp,
				 const void *body, size_t body_len,
				 void *out, size_t out_len);

/* Free a layout's text and empty it; accepts an empty or cleared one. */
void strata_range_multipart_clear(struct strata_multipart *mp);

#endif /* STRATA_CACHE_RANGE_H */
