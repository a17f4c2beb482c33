/*
 * fuzz_conditional.c: conditional requests answered from a stored
 * response (cache/conditional.h): entity-tags, If-Match / If-None-Match
 * lists, the precedence of RFC 9110 section 13.2.2, If-Range.
 *
 * Input, as lines: a flags byte, then the method, If-Match,
 * If-None-Match, If-Modified-Since, If-Unmodified-Since, If-Range, and
 * the stored ETag, Last-Modified and Date (a missing line, or a flag bit
 * clear, is an absent field).  Invariants:
 *  - a parsed entity-tag written back as W/"x" or "x" parses the same;
 *    strong comparison is weak comparison without weak tags; both are
 *    symmetric;
 *  - a list matches the current tag when it names it (weakly always,
 *    strongly when neither is weak), "*" matches anything, a malformed
 *    list says -EINVAL;
 *  - no preconditions, a method that ignores them, or a stored status
 *    that is not 2xx: NONE; 304 only for GET and HEAD;
 *  - If-Range: absent is true; the stored strong ETag itself is true;
 *  - the generated ETag is a strong tag of 20 characters, a function of
 *    the body;
 *  - which headers a 304 keeps does not depend on the name's case.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/conditional.h"
#include "fuzz.h"

static char *tag_text(const struct strata_etag *t)
{
	char *s = malloc(t->opaque_len + 5);

	FUZZ_CHECK(s != NULL);
	snprintf(s, t->opaque_len + 5, "%s\"%.*s\"", t->weak ? "W/" : "",
		 (int)t->opaque_len, t->opaque);
	return s;
}

static void check_etag(const char *text)
{
	struct strata_etag t, again;
	char *written, *list;
	size_t n;

	if (text == NULL || strata_etag_parse(text, &t) != 0)
		return;
	FUZZ_CHECK(t.opaque >= text && t.opaque + t.opaque_len <= text +
							      strlen(text));
	for (size_t i = 0; i < t.opaque_len; i++) {
		unsigned char c = (unsigned char)t.opaque[i];

		FUZZ_CHECK(c == 0x21 || (c >= 0x23 && c != 0x7f));
	}
	written = tag_text(&t);
	FUZZ_CHECK(strata_etag_parse(written, &again) == 0);
	FUZZ_CHECK(again.weak == t.weak && again.opaque_len == t.opaque_len &&
		   memcmp(again.opaque, t.opaque, t.opaque_len) == 0);
	FUZZ_CHECK(strata_etag_weak_match(&t, &again));
	FUZZ_CHECK(strata_etag_strong_match(&t, &again) == !t.weak);

	FUZZ_CHECK(strata_etag_list_match(written, &t, false) == 1);
	FUZZ_CHECK(strata_etag_list_match(written, &t, true) == (t.weak ? 0 : 1));
	FUZZ_CHECK(strata_etag_list_match("*", &t, true) == 1);
	n = strlen(written);
	list = malloc(n + 16);
	FUZZ_CHECK(list != NULL);
	snprintf(list, n + 16, " \"other\" ,, %s ,", written);
	FUZZ_CHECK(strata_etag_list_match(list, &t, false) == 1);
	free(list);
	free(written);
}

static void check_list(const char *list, const char *stored_etag)
{
	struct strata_etag cur;
	const struct strata_etag *current = NULL;
	int weak, strong;

	if (list == NULL)
		return;
	if (stored_etag != NULL && strata_etag_parse(stored_etag, &cur) == 0)
		current = &cur;
	weak = strata_etag_list_match(list, current, false);
	strong = strata_etag_list_match(list, current, true);
	FUZZ_CHECK(weak == 1 || weak == 0 || weak == -EINVAL);
	FUZZ_CHECK(strong == 1 || strong == 0 || strong == -EINVAL);
	/* Malformed either way, and a strong match is a weak one. */
	FUZZ_CHECK((weak == -EINVAL) == (strong == -EINVAL));
	if (strong == 1)
		FUZZ_CHECK(weak == 1);
	/* The same list with no current tag: only "*" matches. */
	if (weak == 1 && current != NULL &&
	    strata_etag_list_match(list, NULL, false) == 1)
		FUZZ_CHECK(strata_etag_list_match(list, NULL, true) == 1);
}

static char *field(struct fuzz_input *in, bool present)
{
	char *s = in->left > 0 ? fuzz_take_until(in, '\n') : NULL;

	if (!present) {
		free(s);
		return NULL;
	}
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ignoring[] = { "CONNECT", "OPTIONS", "TRACE" };
	static const unsigned statuses[] = { 200, 203, 204, 206, 299,
					     301, 404, 500 };
	struct fuzz_input in = { data, size };
	uint8_t flags = fuzz_take_byte(&in);
	uint8_t more = fuzz_take_byte(&in);
	char *method = fuzz_take_until(&in, '\n');
	char *if_match = field(&in, flags & 0x01);
	char *if_none_match = field(&in, flags & 0x02);
	char *if_modified_since = field(&in, flags & 0x04);
	char *if_unmodified_since = field(&in, flags & 0x08);
	char *if_range = field(&in, flags & 0x10);
	char *etag = field(&in, flags & 0x20);
	char *last_modified = field(&in, flags & 0x40);
	char *date = field(&in, flags & 0x80);
	struct strata_cond_request req = {
		.method = method,
		.if_match = if_match,
		.if_none_match = if_none_match,
		.if_modified_since = if_modified_since,
		.if_unmodified_since = if_unmodified_since,
	};
	struct strata_cond_stored stored = {
		.status = statuses[more % 8],
		.etag = etag,
		.last_modified = last_modified,
		.date = date,
		.received_ms = (more & 0x08) ? INT64_C(1700000000000) : 0,
	};
	struct strata_cond_request bare = { .method = method };
	enum strata_cond_result r;
	char gen[STRATA_ETAG_GEN_SIZE], gen2[STRATA_ETAG_GEN_SIZE];
	struct strata_etag gt;
	bool ignored;

	check_etag(if_range);
	check_etag(etag);
	check_etag(if_match);
	check_list(if_match, etag);
	check_list(if_none_match, etag);

	r = strata_conditional_evaluate(&req, &stored);
	FUZZ_CHECK(r == STRATA_COND_NONE || r == STRATA_COND_NOT_MODIFIED ||
		   r == STRATA_COND_PRECONDITION_FAILED);
	if (r == STRATA_COND_NOT_MODIFIED)
		FUZZ_CHECK(strcmp(method, "GET") == 0 ||
			   strcmp(method, "HEAD") == 0);
	ignored = stored.status < 200 || stored.status > 299;
	for (size_t i = 0; i < 3; i++)
		ignored |= strcmp(method, ignoring[i]) == 0;
	if (ignored)
		FUZZ_CHECK(r == STRATA_COND_NONE);
	FUZZ_CHECK(strata_conditional_evaluate(&bare, &stored) ==
		   STRATA_COND_NONE);
	/* If-None-Match: * always matches a stored response. */
	if (!ignored) {
		struct strata_cond_request star = { .method = method,
						    .if_none_match = "*" };

		FUZZ_CHECK(strata_conditional_evaluate(&star, &stored) ==
			   ((strcmp(method, "GET") == 0 ||
			     strcmp(method, "HEAD") == 0)
				    ? STRATA_COND_NOT_MODIFIED
				    : STRATA_COND_PRECONDITION_FAILED));
	}

	FUZZ_CHECK(strata_conditional_if_range(NULL, &stored));
	(void)strata_conditional_if_range(if_range, &stored);
	if (etag != NULL && strata_etag_parse(etag, &gt) == 0 && !gt.weak)
		FUZZ_CHECK(strata_conditional_if_range(etag, &stored));

	FUZZ_CHECK(strata_etag_of_body(data, size, gen) == 20);
	FUZZ_CHECK(strlen(gen) == 20);
	FUZZ_CHECK(strata_etag_parse(gen, &gt) == 0 && !gt.weak);
	FUZZ_CHECK(strata_etag_of_body(data, size, gen2) == 20 &&
		   strcmp(gen, gen2) == 0);

	{
		char *up = fuzz_strndup(method, strlen(method));

		for (char *p = up; *p; p++) {
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
			else if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		}
		FUZZ_CHECK(strata_conditional_304_keeps(up) ==
			   strata_conditional_304_keeps(method));
		free(up);
	}

	free(method);
	free(if_match);
	free(if_none_match);
	free(if_modified_since);
	free(if_unmodified_since);
	free(if_range);
	free(etag);
	free(last_modified);
	free(date);
	return 0;
}
