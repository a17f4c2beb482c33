/*
 * prom.h: a strict parser of the Prometheus text exposition format
 * (version 0.0.4), for tests.
 *
 * prom_parse() reads a whole exposition (what GET /metrics returns) into
 * families of samples, and rejects anything a scraper could choke on or
 * that hides a renderer bug, with the line number and the reason.  It
 * follows the Prometheus reference parser (expfmt's TextParser) where the
 * format leaves room, and is stricter where a renderer has no excuse:
 *
 *   Syntax (as expfmt): lines end with "\n", the last one too; empty
 *   lines and "# other" comments are ignored; blanks (spaces, tabs) may
 *   separate tokens; metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label
 *   names [a-zA-Z_][a-zA-Z0-9_]*; label values are double-quoted with
 *   only \\, \" and \n escapes and no raw newline; a trailing comma in
 *   the braces and empty braces are accepted; HELP text allows only \\
 *   and \n escapes; a value is a float as Go's strconv.ParseFloat reads
 *   it (decimal or hexadecimal, Inf/+Inf/-Inf/Infinity/NaN in any case;
 *   an overflowing literal such as 1e400 is rejected, as Go reports it;
 *   underscores, which Go allows only after a 0x prefix, are rejected);
 *   an optional timestamp is a base-10 int64; nothing may follow.
 *
 *   Stricter than expfmt:
 *   - every sample needs a "# TYPE" line for its family before it (no
 *     untyped samples); TYPE values are lowercase, one of counter, gauge,
 *     histogram, summary, untyped; HELP and TYPE come at most once per
 *     family and before its first sample;
 *   - a family's HELP, TYPE and samples are one contiguous block;
 *   - label names starting with "__" are rejected (reserved), as are a
 *     label name repeated within a sample, label values and HELP text
 *     that are not valid UTF-8, and a series (name and label set, in any
 *     order) that appears twice;
 *   - counter values, histogram buckets and _count values, and summary
 *     _count values may not be negative (nor NaN);
 *   - histogram samples are only name_bucket (with an `le` that is a
 *     float), name_sum and name_count (without `le`); each
 *     histogram series (label set without `le`) has a +Inf bucket, no two
 *     buckets with the same bound, cumulative (non-decreasing) buckets,
 *     a _sum and a _count equal to its +Inf bucket; summary samples are
 *     name (with a float `quantile`), name_sum and name_count, and each
 *     summary series has a _sum and a _count;
 *   - a family whose name is another histogram's or summary's sample name
 *     (foo_bucket, foo_sum, foo_count next to histogram foo) is rejected.
 *
 * A family declared by HELP or TYPE may have no samples (valid; e.g. a
 * process figure that could not be read).  Error messages read
 * "line N: reason"; errors found when a family's block ends (histogram
 * checks, duplicates) name the line of the offending sample.
 *
 * Not thread-safe for writing; a parsed document is immutable, so several
 * threads may read it.
 */
#ifndef STRATA_TESTS_PROM_H
#define STRATA_TESTS_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum prom_type {
	PROM_UNTYPED,     /* also: a family with HELP only, no TYPE */
	PROM_COUNTER,
	PROM_GAUGE,
	PROM_HISTOGRAM,
	PROM_SUMMARY,
};

struct prom_label {
	char *name;
	char *value;      /* unescaped */
};

struct prom_sample {
	char *name;                 /* as written: "foo", "foo_bucket"... */
	struct prom_label *labels;  /* in the order written */
	size_t n_labels;
	double value;
	bool has_timestamp;
	int64_t timestamp;          /* milliseconds, when has_timestamp */
	int line;                   /* 1-based */
};

struct prom_family {
	char *name;
	char *help;                 /* unescaped; NULL without # HELP */
	enum prom_type type;
	bool has_type;              /* a # TYPE line was seen */
	struct prom_sample *samples;
	size_t n_samples;
	int line;                   /* line of its first HELP or TYPE */
};

/* A parsed exposition (opaque; read it through the functions below). */
struct prom_doc;

/*
 * Parse the NUL-terminated exposition `text`.  On success returns 0 and
 * a new document in *out (release with prom_free()).  On a malformed
 * exposition returns -EINVAL, *out = NULL, and "line N: reason" in `err`
 * (truncated to errlen; err may be NULL when errlen is 0).  -ENOMEM when
 * out of memory.  The empty string is a valid exposition with no family.
 */
int prom_parse(const char *text, struct prom_doc **out, char *err,
	       size_t errlen);

/* Release a document; *d = NULL.  Accepts NULL and *d == NULL. */
void prom_free(struct prom_doc **d);

/* Families in the order of the document. */
size_t prom_family_count(const struct prom_doc *d);
const struct prom_family *prom_family_at(const struct prom_doc *d, size_t i);

/* The family named `name` (the family name: "foo", not "foo_bucket"),
 * or NULL.  The pointer lives as long as the document. */
const struct prom_family *prom_find_family(const struct prom_doc *d,
					   const char *name);

/* Whether family `name` exists with a TYPE line of type `type`. */
bool prom_has_family(const struct prom_doc *d, const char *name,
		     enum prom_type type);

/* "counter", "gauge", "histogram", "summary", "untyped". */
const char *prom_type_name(enum prom_type type);

/*
 * The value of the series with sample name `name` ("foo_total",
 * "foo_bucket"...) and exactly the label set `labels`, written as in an
 * exposition without the braces: `k="v",k2="v2"` in any order (escapes
 * as in the format), or "" for no labels.  *found (may be NULL) tells
 * whether it exists; NaN when it does not.  A malformed `labels` is a
 * bug in the test: the function prints it and aborts.
 */
double prom_value(const struct prom_doc *d, const char *name,
		  const char *labels, bool *found);

/*
 * The sum of the values of every series with sample name `name` whose
 * labels include all of `match` (same syntax as prom_value's `labels`;
 * "" matches every series of that name).  *n_matched (may be NULL)
 * receives how many series were summed.  Aborts on a malformed `match`.
 */
double prom_sum(const struct prom_doc *d, const char *name,
		const char *match, size_t *n_matched);

/* The value of label `name` of sample `s`, or NULL. */
const char *prom_label(const struct prom_sample *s, const char *name);

#endif /* STRATA_TESTS_PROM_H */
