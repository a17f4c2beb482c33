/*
 * prom.c: a strict Prometheus text-format parser for tests (see prom.h).
 *
 * One pass over the lines builds the families; a family is checked as a
 * whole (duplicate series, histogram and summary structure) when its
 * block ends, that is when another family is declared or at the end of
 * the text.  Those checks sort canonical series keys (sample name and
 * the label set sorted by name, values re-escaped so the key is
 * unambiguous) instead of comparing every pair, so an exposition with
 * thousands of series parses quickly.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "prom.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct prom_doc {
	struct prom_family *families;
	size_t n_families;
	size_t cap_families;
};

struct parser {
	const char *p;          /* the next byte to read */
	int line;               /* of p */
	struct prom_doc *doc;
	size_t cur;             /* index of the open family; SIZE_MAX: none */
	char *err;
	size_t errlen;
	bool oom;
};

/* --- small tools ---------------------------------------------------------- */

static int fail(struct parser *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parser *ps, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->errlen == 0)
		return -EINVAL;
	n = snprintf(ps->err, ps->errlen, "line %d: ", line);
	if (n >= 0 && (size_t)n < ps->errlen) {
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Make room for one more element in a growable array of n: returns the
 * (maybe moved) array, or NULL when out of memory (`items` unchanged). */
static void *grow(void *items, size_t *cap, size_t n, size_t size)
{
	size_t new_cap;
	void *p;

	if (n < *cap)
		return items;
	new_cap = *cap ? *cap * 2 : 8;
	p = realloc(items, new_cap * size);
	if (p == NULL)
		return NULL;
	*cap = new_cap;
	return p;
}

/* A growable string. */
struct buf {
	char *s;
	size_t len, cap;
};

static int buf_putc(struct buf *b, char c)
{
	if (b->len + 1 >= b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		char *s = realloc(b->s, cap);

		if (s == NULL)
			return -ENOMEM;
		b->s = s;
		b->cap = cap;
	}
	b->s[b->len++] = c;
	b->s[b->len] = '\0';
	return 0;
}

/* Append a string; also makes an empty buffer a valid "" string. */
static int buf_puts(struct buf *b, const char *s)
{
	if (b->s == NULL) {
		b->s = calloc(1, 32);
		if (b->s == NULL)
			return -ENOMEM;
		b->cap = 32;
	}
	for (; *s; s++)
		if (buf_putc(b, *s) != 0)
			return -ENOMEM;
	return 0;
}

/* Append a label value escaped as in the format (so keys are unambiguous). */
static int buf_put_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		int rc;

		if (*s == '\\')
			rc = buf_puts(b, "\\\\");
		else if (*s == '"')
			rc = buf_puts(b, "\\\"");
		else if (*s == '\n')
			rc = buf_puts(b, "\\n");
		else
			rc = buf_putc(b, *s);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void skip_blanks(struct parser *ps)
{
	while (is_blank(*ps->p))
		ps->p++;
}

static bool is_name_start(char c, bool metric)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (metric && c == ':');
}

static bool is_name_char(char c, bool metric)
{
	return is_name_start(c, metric) || (c >= '0' && c <= '9');
}

/* Length of the metric (or label) name at s; 0 when none. */
static size_t name_len(const char *s, bool metric)
{
	size_t n = 0;

	if (!is_name_start(s[0], metric))
		return 0;
	while (is_name_char(s[n], metric))
		n++;
	return n;
}

/* Whether s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static bool utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t extra;
		unsigned cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			extra = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			extra = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			extra = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (i + extra >= n)
			return false;
		for (size_t k = 1; k <= extra; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += extra + 1;
	}
	return true;
}

/*
 * Parse s[0..n) as Go's strconv.ParseFloat(s, 64) would, into *v.
 * False when Go would return an error (syntax, or overflow to ±Inf).
 */
static bool go_float(const char *s, size_t n, double *v)
{
	size_t i = 0, j;
	size_t digits = 0;
	bool ok = false;
	char *copy = NULL;

	if (n == 0)
		return false;
	j = (s[0] == '+' || s[0] == '-') ? 1 : 0;
	if ((n - j == 3 && strncasecmp(s + j, "inf", 3) == 0) ||
	    (n - j == 8 && strncasecmp(s + j, "infinity", 8) == 0)) {
		*v = s[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (n == 3 && strncasecmp(s, "nan", 3) == 0) {
		*v = NAN;
		return true;
	}
	i = j;
	if (n - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		/* Hexadecimal: mantissa, then a mandatory p exponent. */
		bool dot = false;

		for (i += 2; i < n; i++) {
			char c = s[i];

			if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			    (c >= 'A' && c <= 'F'))
				digits++;
			else if (c == '.' && !dot)
				dot = true;
			else
				break;
		}
		if (digits == 0 || i == n || (s[i] != 'p' && s[i] != 'P'))
			return false;
	} else {
		bool dot = false;

		for (; i < n; i++) {
			char c = s[i];

			if (c >= '0' && c <= '9')
				digits++;
			else if (c == '.' && !dot)
				dot = true;
			else
				break;
		}
		if (digits == 0)
			return false;
		if (i < n && s[i] != 'e' && s[i] != 'E')
			return false;
	}
	if (i < n) {
		/* The exponent: [eEpP][+-]?[0-9]+ to the end. */
		size_t exp_digits = 0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			exp_digits++;
		if (exp_digits == 0 || i != n)
			return false;
	}
	copy = strndup(s, n);
	if (copy == NULL)
		return false;
	errno = 0;
	*v = strtod(copy, NULL);
	/* Go reports overflow (ErrRange with ±Inf) but accepts underflow. */
	ok = !(errno == ERANGE && isinf(*v));
	free(copy);
	return ok;
}

/* A base-10 int64 with an optional sign, as Go's ParseInt(s, 10, 64). */
static bool go_int64(const char *s, size_t n, int64_t *v)
{
	char buf[32];
	char *end;
	size_t i = (n > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;

	if (n == i || n >= sizeof(buf))
		return false;
	for (size_t k = i; k < n; k++)
		if (s[k] < '0' || s[k] > '9')
			return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	*v = strtoll(buf, &end, 10);
	return errno == 0 && *end == '\0';
}

/* --- documents ------------------------------------------------------------ */

static void free_sample(struct prom_sample *s)
{
	for (size_t i = 0; i < s->n_labels; i++) {
		free(s->labels[i].name);
		free(s->labels[i].value);
	}
	free(s->labels);
	free(s->name);
}

static void free_family(struct prom_family *f)
{
	for (size_t i = 0; i < f->n_samples; i++)
		free_sample(&f->samples[i]);
	free(f->samples);
	free(f->help);
	free(f->name);
}

void prom_free(struct prom_doc **dp)
{
	struct prom_doc *d;

	if (dp == NULL || *dp == NULL)
		return;
	d = *dp;
	*dp = NULL;
	for (size_t i = 0; i < d->n_families; i++)
		free_family(&d->families[i]);
	free(d->families);
	free(d);
}

static struct prom_family *find_family(const struct prom_doc *d,
				       const char *name, size_t len)
{
	for (size_t i = 0; i < d->n_families; i++)
		if (strlen(d->families[i].name) == len &&
		    memcmp(d->families[i].name, name, len) == 0)
			return &d->families[i];
	return NULL;
}

/* The family whose sample `name` would belong to by suffix (histogram:
 * _bucket, _sum, _count; summary: _sum, _count), or NULL. */
static struct prom_family *family_by_suffix(const struct prom_doc *d,
					    const char *name, size_t len)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };

	for (size_t k = 0; k < 3; k++) {
		size_t sl = strlen(suffixes[k]);
		struct prom_family *f;

		if (len <= sl || memcmp(name + len - sl, suffixes[k], sl) != 0)
			continue;
		f = find_family(d, name, len - sl);
		if (f == NULL || !f->has_type)
			continue;
		if (f->type == PROM_HISTOGRAM ||
		    (f->type == PROM_SUMMARY && k > 0))
			return f;
	}
	return NULL;
}

const char *prom_type_name(enum prom_type type)
{
	switch (type) {
	case PROM_COUNTER: return "counter";
	case PROM_GAUGE: return "gauge";
	case PROM_HISTOGRAM: return "histogram";
	case PROM_SUMMARY: return "summary";
	case PROM_UNTYPED: break;
	}
	return "untyped";
}

const char *prom_label(const struct prom_sample *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

/* --- lexing ---------------------------------------------------------------- */

/*
 * A double-quoted label value at ps->p (on the opening quote) into *out,
 * unescaped.  Leaves ps->p after the closing quote.
 */
static int read_quoted(struct parser *ps, char **out)
{
	struct buf b = { 0 };
	const char *start;
	int rc = 0;

	ps->p++;
	start = ps->p;
	if (buf_puts(&b, "") != 0)
		goto oom;
	for (;;) {
		char c = *ps->p;

		if (c == '\0' || c == '\n') {
			rc = fail(ps, ps->line, "label value not closed before "
				  "the end of the line (a raw newline must be "
				  "written \\n)");
			goto out;
		}
		if (c == '"')
			break;
		if (c == '\\') {
			char e = ps->p[1];

			if (e == '\\' || e == '"')
				c = e;
			else if (e == 'n')
				c = '\n';
			else {
				rc = fail(ps, ps->line, "invalid escape "
					  "sequence \"\\%c\" in a label value "
					  "(only \\\\, \\\" and \\n)",
					  e == '\n' ? 'n' : e);
				goto out;
			}
			ps->p++;
		}
		if (buf_putc(&b, c) != 0)
			goto oom;
		ps->p++;
	}
	if (!utf8_valid(start, (size_t)(ps->p - start))) {
		rc = fail(ps, ps->line, "label value is not valid UTF-8");
		goto out;
	}
	ps->p++;
	*out = b.s;
	b.s = NULL;
	goto out;
oom:
	ps->oom = true;
	rc = -ENOMEM;
out:
	free(b.s);
	return rc;
}

/*
 * A label set at ps->p (on '{') through its '}' into *labels and *n.  The
 * caller frees the labels on error too.
 */
static int read_labels(struct parser *ps, struct prom_label **labels,
		       size_t *n)
{
	size_t cap = 0;
	int rc;

	ps->p++;
	skip_blanks(ps);
	while (*ps->p != '}') {
		struct prom_label *l;
		size_t len = name_len(ps->p, false);

		if (len == 0)
			return fail(ps, ps->line, "expected a label name or "
				    "'}' at \"%.*s\"",
				    (int)strcspn(ps->p, "\n"), ps->p);
		if (len >= 2 && ps->p[0] == '_' && ps->p[1] == '_')
			return fail(ps, ps->line, "label name \"%.*s\" is "
				    "reserved (starts with \"__\")", (int)len,
				    ps->p);
		for (size_t i = 0; i < *n; i++)
			if (strlen((*labels)[i].name) == len &&
			    memcmp((*labels)[i].name, ps->p, len) == 0)
				return fail(ps, ps->line, "duplicate label "
					    "name \"%.*s\"", (int)len, ps->p);
		l = grow(*labels, &cap, *n, sizeof(**labels));
		if (l == NULL)
			goto oom;
		*labels = l;
		l = &(*labels)[*n];
		l->value = NULL;
		l->name = strndup(ps->p, len);
		if (l->name == NULL)
			goto oom;
		(*n)++;
		ps->p += len;
		skip_blanks(ps);
		if (*ps->p != '=')
			return fail(ps, ps->line, "expected '=' after label "
				    "name \"%s\"", l->name);
		ps->p++;
		skip_blanks(ps);
		if (*ps->p != '"')
			return fail(ps, ps->line, "expected '\"' to open the "
				    "value of label \"%s\"", l->name);
		rc = read_quoted(ps, &l->value);
		if (rc != 0)
			return rc;
		skip_blanks(ps);
		if (*ps->p == ',') {
			ps->p++;
			skip_blanks(ps);
		} else if (*ps->p != '}') {
			return fail(ps, ps->line, "expected ',' or '}' after "
				    "the value of label \"%s\" (an unescaped "
				    "'\"' inside it?)", l->name);
		}
	}
	ps->p++;
	return 0;
oom:
	ps->oom = true;
	return -ENOMEM;
}

/* The token at ps->p up to a blank or the end of the line. */
static size_t token_len(const char *p)
{
	size_t n = 0;

	while (p[n] != '\0' && p[n] != '\n' && !is_blank(p[n]))
		n++;
	return n;
}

/* --- family checks -------------------------------------------------------- */

/* The canonical key of a sample: name{labels sorted by name, escaped},
 * leaving out label `skip` (NULL: none). */
static int series_key(const struct prom_sample *s, const char *name,
		      const char *skip, char **out)
{
	struct buf b = { 0 };
	const struct prom_label **sorted = NULL;
	size_t n = 0;
	int rc = -ENOMEM;

	sorted = calloc(s->n_labels + 1, sizeof(*sorted));
	if (sorted == NULL)
		goto out;
	for (size_t i = 0; i < s->n_labels; i++) {
		const struct prom_label *l = &s->labels[i];
		size_t k = n;

		if (skip != NULL && strcmp(l->name, skip) == 0)
			continue;
		while (k > 0 && strcmp(sorted[k - 1]->name, l->name) > 0) {
			sorted[k] = sorted[k - 1];
			k--;
		}
		sorted[k] = l;
		n++;
	}
	if (buf_puts(&b, name) != 0 || buf_putc(&b, '{') != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((i > 0 && buf_putc(&b, ',') != 0) ||
		    buf_puts(&b, sorted[i]->name) != 0 ||
		    buf_puts(&b, "=\"") != 0 ||
		    buf_put_escaped(&b, sorted[i]->value) != 0 ||
		    buf_putc(&b, '"') != 0)
			goto out;
	if (buf_putc(&b, '}') != 0)
		goto out;
	*out = b.s;
	b.s = NULL;
	rc = 0;
out:
	free(b.s);
	free(sorted);
	return rc;
}

/* One sample of a family under check. */
struct item {
	char *key;          /* series key (for groups: without le/quantile) */
	const struct prom_sample *s;
	int kind;           /* 0 bucket/quantile, 1 _sum, 2 _count */
	double bound;       /* le or quantile */
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	if (x->kind != y->kind)
		return x->kind - y->kind;
	if (x->bound != y->bound)
		return x->bound < y->bound ? -1 : 1;
	return x->s->line - y->s->line;
}

static void free_items(struct item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].key);
	free(items);
}

/* No series twice in the family. */
static int check_duplicates(struct parser *ps, const struct prom_family *f)
{
	struct item *items = calloc(f->n_samples + 1, sizeof(*items));
	int rc = 0;

	if (items == NULL)
		goto oom;
	for (size_t i = 0; i < f->n_samples; i++) {
		items[i].s = &f->samples[i];
		if (series_key(&f->samples[i], f->samples[i].name, NULL,
			       &items[i].key) != 0)
			goto oom;
	}
	qsort(items, f->n_samples, sizeof(*items), cmp_item);
	for (size_t i = 1; i < f->n_samples; i++)
		if (strcmp(items[i - 1].key, items[i].key) == 0) {
			rc = fail(ps, items[i].s->line, "duplicate series %s "
				  "(first at line %d)", items[i].key,
				  items[i - 1].s->line);
			goto out;
		}
	goto out;
oom:
	ps->oom = true;
	rc = -ENOMEM;
out:
	if (items != NULL)
		free_items(items, f->n_samples);
	return rc;
}

/*
 * A histogram's or summary's structure: per series (label set without
 * le/quantile), the buckets or quantiles, _sum and _count.
 */
static int check_groups(struct parser *ps, const struct prom_family *f)
{
	bool hist = f->type == PROM_HISTOGRAM;
	const char *bound_label = hist ? "le" : "quantile";
	size_t base = strlen(f->name);
	struct item *items = calloc(f->n_samples + 1, sizeof(*items));
	int rc = 0;

	if (items == NULL)
		goto oom;
	for (size_t i = 0; i < f->n_samples; i++) {
		const struct prom_sample *s = &f->samples[i];
		const char *suffix = s->name + base;

		items[i].s = s;
		items[i].kind = strcmp(suffix, "_sum") == 0     ? 1
				: strcmp(suffix, "_count") == 0 ? 2
								: 0;
		if (items[i].kind == 0) {
			const char *b = prom_label(s, bound_label);

			/* Presence and syntax were checked per sample. */
			go_float(b, strlen(b), &items[i].bound);
		}
		if (series_key(s, f->name, bound_label, &items[i].key) != 0)
			goto oom;
	}
	qsort(items, f->n_samples, sizeof(*items), cmp_item);
	for (size_t i = 0; i < f->n_samples;) {
		size_t end = i;
		const struct item *sum = NULL, *count = NULL, *last = NULL;

		while (end < f->n_samples &&
		       strcmp(items[end].key, items[i].key) == 0)
			end++;
		for (size_t k = i; k < end; k++) {
			const struct item *it = &items[k];

			if (it->kind == 1) {
				sum = it;
			} else if (it->kind == 2) {
				count = it;
			} else {
				if (last != NULL && it->bound == last->bound) {
					rc = fail(ps, it->s->line, "%s %s=\"%s\" "
						  "repeats the bound of line %d",
						  it->s->name, bound_label,
						  prom_label(it->s, bound_label),
						  last->s->line);
					goto out;
				}
				if (hist && last != NULL &&
				    it->s->value < last->s->value) {
					rc = fail(ps, it->s->line, "histogram "
						  "buckets are not cumulative: "
						  "le=\"%s\" has %g, less than "
						  "%g at le=\"%s\" (line %d)",
						  prom_label(it->s, "le"),
						  it->s->value, last->s->value,
						  prom_label(last->s, "le"),
						  last->s->line);
					goto out;
				}
				last = it;
			}
		}
		if (hist && (last == NULL || !isinf(last->bound))) {
			rc = fail(ps, items[i].s->line, "histogram series %s "
				  "has no le=\"+Inf\" bucket", items[i].key);
			goto out;
		}
		if (sum == NULL) {
			rc = fail(ps, items[i].s->line, "%s series %s has no "
				  "%s_sum", prom_type_name(f->type),
				  items[i].key, f->name);
			goto out;
		}
		if (count == NULL) {
			rc = fail(ps, items[i].s->line, "%s series %s has no "
				  "%s_count", prom_type_name(f->type),
				  items[i].key, f->name);
			goto out;
		}
		if (hist && count->s->value != last->s->value) {
			rc = fail(ps, count->s->line, "%s is %g but the "
				  "le=\"+Inf\" bucket (line %d) is %g",
				  count->s->name, count->s->value,
				  last->s->line, last->s->value);
			goto out;
		}
		i = end;
	}
	goto out;
oom:
	ps->oom = true;
	rc = -ENOMEM;
out:
	if (items != NULL)
		free_items(items, f->n_samples);
	return rc;
}

/* The open family's block ends: check it as a whole. */
static int close_family(struct parser *ps)
{
	struct prom_family *f;
	int rc;

	if (ps->cur == SIZE_MAX)
		return 0;
	f = &ps->doc->families[ps->cur];
	ps->cur = SIZE_MAX;
	rc = check_duplicates(ps, f);
	if (rc == 0 && f->n_samples > 0 &&
	    (f->type == PROM_HISTOGRAM || f->type == PROM_SUMMARY))
		rc = check_groups(ps, f);
	return rc;
}

/* --- lines ----------------------------------------------------------------- */

/* For a histogram or summary `f` just typed: an earlier family named
 * like one of its sample names, or NULL. */
static const struct prom_family *suffix_clash(const struct prom_doc *d,
					      const struct prom_family *f)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
	size_t len = strlen(f->name);

	for (size_t k = f->type == PROM_HISTOGRAM ? 0 : 1; k < 3; k++) {
		for (size_t i = 0; i < d->n_families; i++) {
			const struct prom_family *g = &d->families[i];

			if (g != f && strncmp(g->name, f->name, len) == 0 &&
			    strcmp(g->name + len, suffixes[k]) == 0)
				return g;
		}
	}
	return NULL;
}

/* "# HELP name text" or "# TYPE name type"; ps->p after the keyword. */
static int read_meta(struct parser *ps, bool help)
{
	const char *kw = help ? "HELP" : "TYPE";
	struct prom_family *f;
	size_t len;
	const char *name;
	int rc;

	skip_blanks(ps);
	len = name_len(ps->p, true);
	if (len == 0)
		return fail(ps, ps->line, "# %s without a valid metric name",
			    kw);
	name = ps->p;
	ps->p += len;
	if (*ps->p != '\n' && !is_blank(*ps->p))
		return fail(ps, ps->line, "invalid metric name \"%.*s\" in "
			    "# %s", (int)(len + token_len(ps->p)), name, kw);
	f = find_family(ps->doc, name, len);
	if (f != NULL && (size_t)(f - ps->doc->families) != ps->cur)
		return fail(ps, ps->line, "# %s for %.*s, whose block ended "
			    "(it began at line %d): a family's lines must be "
			    "contiguous", kw, (int)len, name, f->line);
	if (f != NULL && f->n_samples > 0)
		return fail(ps, ps->line, "# %s for %s after its samples (line "
			    "%d)", kw, f->name, f->samples[0].line);
	if (f != NULL && ((help && f->help != NULL) || (!help && f->has_type)))
		return fail(ps, ps->line, "second # %s for %s", kw, f->name);
	if (f == NULL) {
		const struct prom_family *clash;

		rc = close_family(ps);
		if (rc != 0)
			return rc;
		clash = family_by_suffix(ps->doc, name, len);
		if (clash != NULL)
			return fail(ps, ps->line, "family %.*s clashes with "
				    "the sample names of %s (line %d)",
				    (int)len, name, clash->name, clash->line);
		f = grow(ps->doc->families, &ps->doc->cap_families,
			 ps->doc->n_families, sizeof(*f));
		if (f == NULL)
			goto oom;
		ps->doc->families = f;
		f = &ps->doc->families[ps->doc->n_families];
		memset(f, 0, sizeof(*f));
		f->name = strndup(name, len);
		if (f->name == NULL)
			goto oom;
		f->line = ps->line;
		ps->cur = ps->doc->n_families++;
	}
	skip_blanks(ps);
	if (help) {
		struct buf b = { 0 };
		const char *start = ps->p;

		if (buf_puts(&b, "") != 0)
			goto oom;
		for (; *ps->p != '\n' && *ps->p != '\0'; ps->p++) {
			char c = *ps->p;

			if (c == '\\') {
				if (ps->p[1] == '\\') {
					c = '\\';
				} else if (ps->p[1] == 'n') {
					c = '\n';
				} else {
					free(b.s);
					return fail(ps, ps->line, "invalid "
						    "escape sequence in # HELP "
						    "(only \\\\ and \\n)");
				}
				ps->p++;
			}
			if (buf_putc(&b, c) != 0) {
				free(b.s);
				goto oom;
			}
		}
		if (!utf8_valid(start, (size_t)(ps->p - start))) {
			free(b.s);
			return fail(ps, ps->line, "# HELP text is not valid "
				    "UTF-8");
		}
		f->help = b.s;
	} else {
		static const enum prom_type types[] = {
			PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM, PROM_SUMMARY,
			PROM_UNTYPED,
		};
		size_t tl = strcspn(ps->p, "\n");
		bool known = false;

		for (size_t k = 0; k < 5; k++) {
			const char *tn = prom_type_name(types[k]);

			if (tl == strlen(tn) && memcmp(ps->p, tn, tl) == 0) {
				f->type = types[k];
				known = true;
			}
		}
		if (!known)
			return fail(ps, ps->line, "unknown type \"%.*s\" for %s "
				    "(counter, gauge, histogram, summary or "
				    "untyped, lowercase, nothing after it)",
				    (int)tl, ps->p, f->name);
		f->has_type = true;
		ps->p += tl;
		if (f->type == PROM_HISTOGRAM || f->type == PROM_SUMMARY) {
			const struct prom_family *clash =
				suffix_clash(ps->doc, f);

			if (clash != NULL)
				return fail(ps, ps->line, "%s %s clashes with "
					    "family %s (line %d), named like "
					    "one of its samples",
					    prom_type_name(f->type), f->name,
					    clash->name, clash->line);
		}
	}
	return 0;
oom:
	ps->oom = true;
	return -ENOMEM;
}

/* The family a sample named name[0..len) belongs to, or an error. */
static int sample_family(struct parser *ps, const char *name, size_t len,
			 struct prom_family **out)
{
	struct prom_family *f = find_family(ps->doc, name, len);

	if (f != NULL && f->has_type && f->type == PROM_HISTOGRAM)
		return fail(ps, ps->line, "sample %.*s of histogram %s: a "
			    "histogram has only %s_bucket, %s_sum and "
			    "%s_count samples", (int)len, name, f->name,
			    f->name, f->name, f->name);
	if (f == NULL || !f->has_type) {
		struct prom_family *g = family_by_suffix(ps->doc, name, len);

		if (g != NULL)
			f = g;
	}
	if (f == NULL)
		return fail(ps, ps->line, "sample %.*s has no # TYPE line "
			    "before it", (int)len, name);
	if (!f->has_type)
		return fail(ps, ps->line, "sample %.*s: family %s has no "
			    "# TYPE line before it", (int)len, name, f->name);
	if ((size_t)(f - ps->doc->families) != ps->cur)
		return fail(ps, ps->line, "sample %.*s: the samples of %s are "
			    "not contiguous (its block began at line %d and "
			    "ended before this line)", (int)len, name, f->name,
			    f->line);
	*out = f;
	return 0;
}

/* Type rules that one sample can be checked against on its own. */
static int check_sample(struct parser *ps, const struct prom_family *f,
			const struct prom_sample *s)
{
	const char *suffix = s->name + strlen(f->name);
	bool negative = s->value < 0 || isnan(s->value);
	double bound;

	switch (f->type) {
	case PROM_COUNTER:
		if (negative)
			return fail(ps, s->line, "counter %s has value %g "
				    "(counters are never negative or NaN)",
				    s->name, s->value);
		break;
	case PROM_HISTOGRAM:
	case PROM_SUMMARY: {
		bool hist = f->type == PROM_HISTOGRAM;
		const char *bl = hist ? "le" : "quantile";
		const char *b = prom_label(s, bl);
		bool bounded = hist ? strcmp(suffix, "_bucket") == 0
				    : *suffix == '\0';

		if (bounded && b == NULL)
			return fail(ps, s->line, "%s has no %s label", s->name,
				    bl);
		if (bounded && (!go_float(b, strlen(b), &bound) ||
				isnan(bound)))
			return fail(ps, s->line, "%s has %s=\"%s\", not a "
				    "float", s->name, bl, b);
		if (!bounded && b != NULL)
			return fail(ps, s->line, "%s must not have a %s label",
				    s->name, bl);
		if ((hist && bounded) || strcmp(suffix, "_count") == 0)
			if (negative)
				return fail(ps, s->line, "%s has value %g (a "
					    "count is never negative or NaN)",
					    s->name, s->value);
		break;
	}
	case PROM_GAUGE:
	case PROM_UNTYPED:
		break;
	}
	return 0;
}

/* A sample line; ps->p on the metric name. */
static int read_sample(struct parser *ps)
{
	struct prom_sample s = { 0 };
	struct prom_family *f = NULL;
	size_t len = name_len(ps->p, true);
	const char *name = ps->p;
	const char *token_end;
	int rc;

	s.line = ps->line;
	if (len == 0) {
		rc = fail(ps, ps->line, "expected a metric name, found \"%.*s\"",
			  (int)token_len(ps->p), ps->p);
		goto out;
	}
	ps->p += len;
	rc = sample_family(ps, name, len, &f);
	if (rc != 0)
		goto out;
	s.name = strndup(name, len);
	if (s.name == NULL)
		goto oom;
	/* The value must be separated by at least one blank from what is
	 * before it (the name or the closing brace). */
	token_end = ps->p;
	skip_blanks(ps);
	if (*ps->p == '{') {
		rc = read_labels(ps, &s.labels, &s.n_labels);
		if (rc != 0)
			goto out;
		token_end = ps->p;
		skip_blanks(ps);
	}
	if (ps->p == token_end) {
		rc = fail(ps, ps->line, "expected a blank and the value after "
			  "%s%s", s.name, s.n_labels ? "{...}" : "");
		goto out;
	}
	len = token_len(ps->p);
	if (len == 0) {
		rc = fail(ps, ps->line, "sample %s has no value", s.name);
		goto out;
	}
	if (!go_float(ps->p, len, &s.value)) {
		rc = fail(ps, ps->line, "value \"%.*s\" of %s is not a float "
			  "(Go's ParseFloat syntax; +Inf, -Inf, NaN)",
			  (int)len, ps->p, s.name);
		goto out;
	}
	ps->p += len;
	skip_blanks(ps);
	len = token_len(ps->p);
	if (len > 0) {
		if (!go_int64(ps->p, len, &s.timestamp)) {
			rc = fail(ps, ps->line, "trailing garbage \"%.*s\" "
				  "after the value of %s (only an integer "
				  "timestamp may follow)", (int)len, ps->p,
				  s.name);
			goto out;
		}
		s.has_timestamp = true;
		ps->p += len;
		skip_blanks(ps);
		if (*ps->p != '\n') {
			rc = fail(ps, ps->line, "trailing garbage \"%.*s\" "
				  "after the timestamp of %s",
				  (int)strcspn(ps->p, "\n"), ps->p, s.name);
			goto out;
		}
	}
	rc = check_sample(ps, f, &s);
	if (rc != 0)
		goto out;
	/* The capacity is implicit (struct prom_family is public and has no
	 * field for it): the array doubles whenever the count reaches a
	 * power of two. */
	if ((f->n_samples & (f->n_samples - 1)) == 0) {
		size_t cap = f->n_samples ? f->n_samples * 2 : 1;
		struct prom_sample *p = realloc(f->samples, cap * sizeof(*p));

		if (p == NULL)
			goto oom;
		f->samples = p;
	}
	f->samples[f->n_samples++] = s;
	memset(&s, 0, sizeof(s));
	goto out;
oom:
	ps->oom = true;
	rc = -ENOMEM;
out:
	free_sample(&s);
	return rc;
}

/* One line; ps->p at its start.  Leaves ps->p on its '\n'. */
static int read_line(struct parser *ps)
{
	skip_blanks(ps);
	if (*ps->p == '\n')
		return 0;
	if (*ps->p == '#') {
		size_t len;

		ps->p++;
		skip_blanks(ps);
		len = token_len(ps->p);
		if ((len == 4 && memcmp(ps->p, "HELP", 4) == 0) ||
		    (len == 4 && memcmp(ps->p, "TYPE", 4) == 0)) {
			bool help = ps->p[0] == 'H';

			ps->p += 4;
			if (!is_blank(*ps->p))
				return fail(ps, ps->line, "# %s without a "
					    "metric name", help ? "HELP"
								: "TYPE");
			return read_meta(ps, help);
		}
		ps->p += strcspn(ps->p, "\n");
		return 0;
	}
	return read_sample(ps);
}

int prom_parse(const char *text, struct prom_doc **out, char *err,
	       size_t errlen)
{
	struct parser ps = {
		.p = text,
		.line = 1,
		.cur = SIZE_MAX,
		.err = err,
		.errlen = errlen,
	};
	int rc = 0;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	ps.doc = calloc(1, sizeof(*ps.doc));
	if (ps.doc == NULL)
		return -ENOMEM;
	while (*ps.p != '\0') {
		const char *nl = strchr(ps.p, '\n');

		if (nl == NULL) {
			rc = fail(&ps, ps.line, "no newline at the end of the "
				  "last line");
			goto out;
		}
		rc = read_line(&ps);
		if (rc != 0)
			goto out;
		if (*ps.p != '\n') {
			rc = fail(&ps, ps.line, "trailing garbage \"%.*s\"",
				  (int)strcspn(ps.p, "\n"), ps.p);
			goto out;
		}
		ps.p++;
		ps.line++;
	}
	rc = close_family(&ps);
out:
	if (ps.oom)
		rc = -ENOMEM;
	if (rc == 0) {
		*out = ps.doc;
		ps.doc = NULL;
	}
	prom_free(&ps.doc);
	return rc;
}

/* --- queries ---------------------------------------------------------------- */

size_t prom_family_count(const struct prom_doc *d)
{
	return d->n_families;
}

const struct prom_family *prom_family_at(const struct prom_doc *d, size_t i)
{
	return i < d->n_families ? &d->families[i] : NULL;
}

const struct prom_family *prom_find_family(const struct prom_doc *d,
					   const char *name)
{
	return find_family(d, name, strlen(name));
}

bool prom_has_family(const struct prom_doc *d, const char *name,
		     enum prom_type type)
{
	const struct prom_family *f = prom_find_family(d, name);

	return f != NULL && f->has_type && f->type == type;
}

/* Parse a query's label set (`k="v",...`, no braces); aborts on error. */
static void query_labels(const char *labels, struct prom_label **out,
			 size_t *n)
{
	size_t len = strlen(labels);
	char *text = malloc(len + 3);
	char err[256];
	struct parser ps = { .line = 1, .err = err, .errlen = sizeof(err) };
	int rc;

	if (text == NULL)
		abort();
	text[0] = '{';
	memcpy(text + 1, labels, len);
	text[len + 1] = '}';
	text[len + 2] = '\0';
	ps.p = text;
	*out = NULL;
	*n = 0;
	rc = read_labels(&ps, out, n);
	if (rc == 0 && *ps.p != '\0')
		rc = fail(&ps, 1, "garbage after the labels");
	if (rc != 0) {
		fprintf(stderr, "prom: bad label set in a query: %s: %s\n",
			labels, rc == -ENOMEM ? "out of memory" : err);
		abort();
	}
	free(text);
}

static void free_labels(struct prom_label *labels, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(labels[i].name);
		free(labels[i].value);
	}
	free(labels);
}

/* Whether every label of `want` is on `s`. */
static bool has_labels(const struct prom_sample *s,
		       const struct prom_label *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = prom_label(s, want[i].name);

		if (v == NULL || strcmp(v, want[i].value) != 0)
			return false;
	}
	return true;
}

double prom_value(const struct prom_doc *d, const char *name,
		  const char *labels, bool *found)
{
	struct prom_label *want;
	size_t n;
	double v = NAN;
	bool hit = false;

	query_labels(labels, &want, &n);
	for (size_t i = 0; i < d->n_families && !hit; i++) {
		const struct prom_family *f = &d->families[i];

		for (size_t k = 0; k < f->n_samples; k++) {
			const struct prom_sample *s = &f->samples[k];

			if (strcmp(s->name, name) == 0 && s->n_labels == n &&
			    has_labels(s, want, n)) {
				v = s->value;
				hit = true;
				break;
			}
		}
	}
	free_labels(want, n);
	if (found != NULL)
		*found = hit;
	return v;
}

double prom_sum(const struct prom_doc *d, const char *name,
		const char *match, size_t *n_matched)
{
	struct prom_label *want;
	size_t n, matched = 0;
	double sum = 0;

	query_labels(match, &want, &n);
	for (size_t i = 0; i < d->n_families; i++) {
		const struct prom_family *f = &d->families[i];

		for (size_t k = 0; k < f->n_samples; k++) {
			const struct prom_sample *s = &f->samples[k];

			if (strcmp(s->name, name) == 0 &&
			    has_labels(s, want, n)) {
				sum += s->value;
				matched++;
			}
		}
	}
	free_labels(want, n);
	if (n_matched != NULL)
		*n_matched = matched;
	return sum;
}
