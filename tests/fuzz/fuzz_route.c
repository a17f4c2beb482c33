/*
 * fuzz_route.c: route patterns and matching (core/route.h).
 *
 * Input: route patterns, one per line, up to an empty line; the rest of
 * the input is a request path (any bytes, NULs included, passed by length
 * as the front end does with the offset of "?").  Every pattern goes
 * through strata_route_pattern_check(); the valid, distinct ones (up to
 * MAX_ROUTES) build a table, and the path is matched against it.
 *
 * Invariants, each against a plain reference written from route.h's own
 * description rather than from route.c:
 *  - pattern_check accepts exactly the patterns the reference accepts,
 *    and explains every refusal;
 *  - strata_route_match() returns the first route, in configuration order,
 *    whose pattern the reference says matches, or NULL when none does;
 *  - every pattern matches the path made from it by writing a "1" for
 *    each "*", so each route is reachable through some path.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/route.h"
#include "strata/config.h"
#include "fuzz.h"

#define MAX_ROUTES 16

/* --- the reference ------------------------------------------------------- */

/* The segments of `s` (after its leading "/"), split on "/". */
struct segs {
	const char **start;
	size_t *len;
	size_t n;
};

static void split(const char *s, size_t len, struct segs *out)
{
	size_t slashes = 0, begin = 1;

	for (size_t i = 0; i < len; i++)
		slashes += s[i] == '/';
	out->start = malloc((slashes + 1) * sizeof(*out->start));
	out->len = malloc((slashes + 1) * sizeof(*out->len));
	FUZZ_CHECK(out->start != NULL && out->len != NULL);
	out->n = 0;
	for (size_t i = 1; i <= len; i++) {
		if (i == len || s[i] == '/') {
			out->start[out->n] = s + begin;
			out->len[out->n] = i - begin;
			out->n++;
			begin = i + 1;
		}
	}
}

static void segs_free(struct segs *sg)
{
	free(sg->start);
	free(sg->len);
}

/* route.h: "/" first; no "?", "#", space or control byte; "*" only as a
 * whole segment; no empty segment but a final one (a trailing "/"); no
 * "." or ".." segment. */
static bool ref_valid(const char *p)
{
	size_t len = strlen(p);
	struct segs sg;
	bool ok = true;

	if (len == 0 || p[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '?' || c == '#' || c <= ' ' || c == 0x7f)
			return false;
	}
	split(p, len, &sg);
	for (size_t i = 0; i < sg.n && ok; i++) {
		const char *s = sg.start[i];
		size_t n = sg.len[i];

		if (n == 0 && i + 1 < sg.n)
			ok = false;
		else if ((n == 1 && s[0] == '.') ||
			 (n == 2 && s[0] == '.' && s[1] == '.'))
			ok = false;
		else if (memchr(s, '*', n) != NULL && n != 1)
			ok = false;
	}
	segs_free(&sg);
	return ok;
}

/* route.h: a "*" segment takes exactly one non-empty segment; a pattern
 * ending in "/<star>" also takes everything below that directory. */
static bool ref_matches(const char *pat, const char *path, size_t path_len)
{
	struct segs ps, ss;
	size_t pat_len = strlen(pat);
	bool prefix, ok = true;

	if (path_len == 0 || path[0] != '/')
		return false;
	prefix = pat_len >= 2 && pat[pat_len - 1] == '*' &&
		 pat[pat_len - 2] == '/';
	split(pat, pat_len, &ps);
	split(path, path_len, &ss);
	if (prefix ? ss.n < ps.n : ss.n != ps.n)
		ok = false;
	for (size_t i = 0; ok && i < ps.n; i++) {
		bool star = ps.len[i] == 1 && ps.start[i][0] == '*';

		if (prefix && i + 1 == ps.n)
			break;   /* the rest, empty or not */
		if (star)
			ok = ss.len[i] > 0;
		else
			ok = ss.len[i] == ps.len[i] &&
			     memcmp(ss.start[i], ps.start[i], ps.len[i]) == 0;
	}
	segs_free(&ps);
	segs_free(&ss);
	return ok;
}

/* --- the target ---------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct strata_route_config routes[MAX_ROUTES];
	char *patterns[MAX_ROUTES];
	size_t n = 0;
	struct strata_route_table *table = NULL;
	char err[256];
	char *path;
	size_t path_len;
	const struct strata_route *got;
	size_t want;

	memset(routes, 0, sizeof(routes));
	while (in.left > 0) {
		char *line;
		bool dup = false, valid;

		if (in.p[0] == '\n') {   /* the empty line: the path follows */
			fuzz_take_byte(&in);
			break;
		}
		line = fuzz_take_until(&in, '\n');
		err[0] = '\0';
		valid = ref_valid(line);
		if (strata_route_pattern_check(line, err, sizeof(err)) == 0) {
			FUZZ_CHECK(valid);
		} else {
			FUZZ_CHECK(!valid);
			FUZZ_CHECK(err[0] != '\0');
			free(line);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			dup |= strcmp(patterns[i], line) == 0;
		if (dup || n == MAX_ROUTES) {
			free(line);
			continue;
		}
		patterns[n] = line;
		routes[n].path = line;
		routes[n].name = NULL;
		routes[n].ttl_ms = 1000;
		routes[n].methods = STRATA_METHOD_GET | STRATA_METHOD_HEAD;
		routes[n].query = STRATA_ROUTE_QUERY_RAW;
		n++;
	}
	FUZZ_CHECK(strata_route_table_new(routes, n, &table, err,
					  sizeof(err)) == 0);
	FUZZ_CHECK(strata_route_table_size(table) == n);

	/* The path: exactly its bytes, so an over-read is ASan's. */
	path_len = in.left;
	path = malloc(path_len ? path_len : 1);
	FUZZ_CHECK(path != NULL);
	if (path_len)
		memcpy(path, in.p, path_len);
	got = strata_route_match(table, path, path_len);
	for (want = 0; want < n; want++) {
		if (ref_matches(patterns[want], path, path_len))
			break;
	}
	if (want == n) {
		FUZZ_CHECK(got == NULL);
	} else {
		FUZZ_CHECK(got != NULL);
		FUZZ_CHECK(got->index == want);
		FUZZ_CHECK(got == strata_route_table_at(table, want));
		FUZZ_CHECK(strcmp(got->path, patterns[want]) == 0);
	}
	free(path);

	/* Each route is reached by its pattern with "1" for every "*". */
	for (size_t i = 0; i < n; i++) {
		char *p = fuzz_strndup(patterns[i], strlen(patterns[i]));
		const struct strata_route *r;

		for (char *c = p; *c; c++) {
			if (*c == '*')
				*c = '1';
		}
		r = strata_route_match(table, p, strlen(p));
		FUZZ_CHECK(r != NULL && r->index <= i);
		FUZZ_CHECK(ref_matches(patterns[r->index], p, strlen(p)));
		free(p);
	}

	strata_route_table_release(&table);
	FUZZ_CHECK(table == NULL);
	for (size_t i = 0; i < n; i++)
		free(patterns[i]);
	return 0;
}
