/*
 * fuzz_vary.c: the header-list rules a cache decides by (core/http.h):
 * folding Vary, Cache-Control and Pragma into one line, list membership,
 * joining, and which headers a proxy passes on.
 *
 * Strata's own reading of a response's Vary names (extra_vary(), which
 * picks the names beyond a route's `vary`) is static in src/front/front.c,
 * so it is reached only through a running server; this target fuzzes the
 * public pieces it stands on.
 *
 * Input: header lines "Name: value" (a line without ":" is a name with an
 * empty value).  Invariants:
 *  - strata_headers_fold() leaves one line of the name, where the first
 *    was, every other header in its order, and a value whose list members
 *    (as strata_http_list_has() delimits them) are those of the original
 *    lines, in order;
 *  - strata_headers_join() is every value in order, joined by ",";
 *  - strata_http_fold_cache_lists() folds the three names;
 *  - strata_http_end_to_end() drops exactly the hop-by-hop headers (the
 *    fixed set and those Connection names) and Content-Length.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/http.h"
#include "fuzz.h"

#define MAX_LINES 64

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Each list member of `value`, as strata_http_list_has() delimits them:
 * split on ",", OWS trimmed, empty members skipped.  Calls fn for each. */
static void members(const char *value, void (*fn)(const char *, size_t,
						  void *),
		    void *arg)
{
	const char *p = value;

	while (*p != '\0') {
		const char *start, *end;

		while (is_ows(*p) || *p == ',')
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && is_ows(end[-1]))
			end--;
		if (end > start)
			fn(start, (size_t)(end - start), arg);
	}
}

/* The list members of a value, each followed by "\n" (members hold
 * no LF here: the input was split into lines). */
static void member_append_cb(const char *m, size_t len, void *arg)
{
	char **acc = arg;
	size_t have = strlen(*acc);

	*acc = realloc(*acc, have + len + 2);
	FUZZ_CHECK(*acc != NULL);
	memcpy(*acc + have, m, len);
	(*acc)[have + len] = '\n';
	(*acc)[have + len + 1] = '\0';
}

static void copy_headers(const struct strata_headers *from,
			 struct strata_headers *to)
{
	for (size_t i = 0; i < from->n; i++)
		FUZZ_CHECK(strata_headers_add(to, from->v[i].name,
					      from->v[i].value) == 0);
}

static void check_fold(const struct strata_headers *orig, const char *name)
{
	struct strata_headers h = { 0 };
	size_t count = 0, first = orig->n, j = 0;
	char *joined;

	copy_headers(orig, &h);
	FUZZ_CHECK(strata_headers_fold(&h, name) == 0);
	for (size_t i = 0; i < orig->n; i++) {
		if (strcasecmp(orig->v[i].name, name) == 0) {
			if (count++ == 0)
				first = i;
		}
	}
	FUZZ_CHECK(h.n == orig->n - (count > 1 ? count - 1 : 0));
	/* The others in order; the folded line where the first was. */
	for (size_t i = 0; i < orig->n; i++) {
		bool named = strcasecmp(orig->v[i].name, name) == 0;

		if (named && i != first)
			continue;
		FUZZ_CHECK(strcmp(h.v[j].name, orig->v[i].name) == 0);
		if (!named)
			FUZZ_CHECK(strcmp(h.v[j].value, orig->v[i].value) == 0);
		j++;
	}
	FUZZ_CHECK(j == h.n);
	if (count == 1)
		FUZZ_CHECK(strcmp(h.v[first].value, orig->v[first].value) == 0);
	if (count > 0) {
		const char *folded = h.v[first].value;
		char *want = fuzz_strndup("", 0), *got = fuzz_strndup("", 0);
		char *last = NULL;

		FUZZ_CHECK(strata_headers_get(&h, name) == folded);
		/* The members of the lines, in order, are the folded
		 * list's members. */
		for (size_t i = 0; i < orig->n; i++) {
			if (strcasecmp(orig->v[i].name, name) == 0)
				members(orig->v[i].value, member_append_cb,
					&want);
		}
		members(folded, member_append_cb, &got);
		FUZZ_CHECK(strcmp(want, got) == 0);
		/* And list_has finds the last of them in the folded line. */
		if (want[0] != '\0') {
			want[strlen(want) - 1] = '\0';
			last = strrchr(want, '\n');
			last = last != NULL ? last + 1 : want;
			FUZZ_CHECK(strata_http_list_has(folded, last));
		}
		free(want);
		free(got);
	} else {
		FUZZ_CHECK(strata_headers_get(&h, name) == NULL);
	}

	/* Folding again changes nothing. */
	joined = count > 0 ? strdup(h.v[first].value) : NULL;
	FUZZ_CHECK(strata_headers_fold(&h, name) == 0);
	if (joined != NULL)
		FUZZ_CHECK(strcmp(h.v[first].value, joined) == 0);
	free(joined);
	strata_headers_clear(&h);
	FUZZ_CHECK(h.n == 0 && h.v == NULL);
}

/*
 * strata_headers_join(): every value in order, joined by ",".  Exactly so
 * when no value is empty; an empty value may or may not leave its comma
 * (an empty list member is no member), so then only the members, in
 * order, are compared.
 */
static void check_join(const struct strata_headers *h, const char *name)
{
	char *joined = strata_headers_join(h, name);
	char *want = fuzz_strndup("", 0), *got = fuzz_strndup("", 0);
	size_t at = 0, count = 0;
	bool exact = true;

	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) != 0)
			continue;
		count++;
		exact &= h->v[i].value[0] != '\0';
		members(h->v[i].value, member_append_cb, &want);
	}
	if (count == 0) {
		FUZZ_CHECK(joined == NULL);
		goto out;
	}
	FUZZ_CHECK(joined != NULL);
	members(joined, member_append_cb, &got);
	FUZZ_CHECK(strcmp(want, got) == 0);
	if (exact) {
		count = 0;
		for (size_t i = 0; i < h->n; i++) {
			size_t len;

			if (strcasecmp(h->v[i].name, name) != 0)
				continue;
			if (count++ > 0)
				FUZZ_CHECK(joined[at++] == ',');
			len = strlen(h->v[i].value);
			FUZZ_CHECK(memcmp(joined + at, h->v[i].value, len) == 0);
			at += len;
		}
		FUZZ_CHECK(joined[at] == '\0');
	}
out:
	free(joined);
	free(want);
	free(got);
}

static void check_end_to_end(const struct strata_headers *in)
{
	static const char *const fixed[] = {
		"Connection",         "Keep-Alive",          "Proxy-Connection",
		"Proxy-Authenticate", "Proxy-Authorization", "TE",
		"Trailer",            "Transfer-Encoding",   "Upgrade",
		"Content-Length",
	};
	struct strata_headers out = { 0 };
	char *connection = strata_headers_join(in, "Connection");
	size_t j = 0;

	FUZZ_CHECK(strata_http_end_to_end(in, &out) == 0);
	for (size_t i = 0; i < in->n; i++) {
		const char *name = in->v[i].name;
		bool drop = strata_http_list_has(connection, name);

		for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
			drop |= strcasecmp(name, fixed[k]) == 0;
		if (drop)
			continue;
		FUZZ_CHECK(j < out.n);
		FUZZ_CHECK(strcmp(out.v[j].name, name) == 0);
		FUZZ_CHECK(strcmp(out.v[j].value, in->v[i].value) == 0);
		j++;
	}
	FUZZ_CHECK(j == out.n);
	free(connection);
	strata_headers_clear(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct strata_headers h = { 0 }, folded = { 0 };
	static const char *const names[] = { "Vary", "Cache-Control",
					     "Pragma", "Connection" };

	for (size_t n = 0; in.left > 0 && n < MAX_LINES; n++) {
		char *line = fuzz_take_until(&in, '\n');
		char *colon = strchr(line, ':');
		const char *value = "";

		if (colon != NULL) {
			*colon = '\0';
			value = colon + 1;
			while (is_ows(*value))
				value++;
		}
		FUZZ_CHECK(strata_headers_add(&h, line, value) == 0);
		free(line);
	}

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		check_fold(&h, names[i]);
		check_join(&h, names[i]);
	}
	/* The first header's own name too, whatever it is. */
	if (h.n > 0) {
		check_fold(&h, h.v[0].name);
		check_join(&h, h.v[0].name);
	}
	check_end_to_end(&h);

	copy_headers(&h, &folded);
	FUZZ_CHECK(strata_http_fold_cache_lists(&folded) == 0);
	for (size_t i = 0; i < 3; i++) {
		size_t count = 0;

		for (size_t k = 0; k < folded.n; k++)
			count += strcasecmp(folded.v[k].name, names[i]) == 0;
		FUZZ_CHECK(count <= 1);
	}
	strata_headers_clear(&folded);
	strata_headers_clear(&h);
	return 0;
}
