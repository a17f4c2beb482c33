/*
 * fuzz_admin_query.c: the admin API's query parameters
 * (src/front/admin_query.h): the filters, tier, page size and cursor of
 * GET /admin/keys and the purges that list first, and the boolean flags.
 *
 * Input, as lines: prefix, path, tag, route, tier, limit, cursor (an
 * empty or missing line is an absent parameter, as the listener passes
 * it), then a flag value.  Invariants, against references written from
 * admin_query.h:
 *  - parse succeeds exactly when the tier is absent or one of the three
 *    names, the limit absent or 1..1000 in decimal digits, and the cursor
 *    absent or a cursor; on success the filter carries the parameters,
 *    the tier's bit, the limit (100 when absent) and the decoded cursor;
 *    on failure it gives a reason and no cursor text to free;
 *  - a cursor decodes to the text it encodes, and encoding a decoded
 *    cursor gives it back, in lowercase;
 *  - a flag is true when present and neither "0" nor "false".
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "front/admin_query.h"
#include "fuzz.h"

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* admin_query.h: even, non-empty, hex digits, no NUL byte inside. */
static bool ref_cursor_ok(const char *c)
{
	size_t len = strlen(c);

	if (len == 0 || len % 2 != 0)
		return false;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hex_digit(c[i]), lo = hex_digit(c[i + 1]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return false;
	}
	return true;
}

static bool ref_limit(const char *s, size_t *out)
{
	size_t n = 0, len = strlen(s);

	if (len == 0 || strspn(s, "0123456789") != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		n = n * 10 + (size_t)(s[i] - '0');
		if (n > STRATA_ADMIN_LIMIT_MAX)
			return false;
	}
	*out = n;
	return n > 0;
}

static bool ref_tier(const char *s, unsigned *out)
{
	if (s == NULL)
		*out = 0;
	else if (strcmp(s, "memory") == 0)
		*out = STRATA_ADMIN_TIER_MEMORY;
	else if (strcmp(s, "disk") == 0)
		*out = STRATA_ADMIN_TIER_DISK;
	else if (strcmp(s, "redis") == 0)
		*out = STRATA_ADMIN_TIER_REDIS;
	else
		return false;
	return true;
}

/* The next line as a parameter: NULL when absent or empty. */
static char *param(struct fuzz_input *in)
{
	char *s;

	if (in->left == 0)
		return NULL;
	s = fuzz_take_until(in, '\n');
	if (s[0] == '\0') {
		free(s);
		return NULL;
	}
	return s;
}

static void check_cursor_round_trip(const char *text, size_t len)
{
	char *enc = strata_admin_cursor_encode(text, len);
	char *dec;

	FUZZ_CHECK(enc != NULL && strlen(enc) == 2 * len);
	dec = strata_admin_cursor_decode(enc);
	/* A text with a NUL byte, or an empty one, is no cursor. */
	if (len == 0 || memchr(text, '\0', len) != NULL) {
		FUZZ_CHECK(dec == NULL);
	} else {
		FUZZ_CHECK(dec != NULL && strlen(dec) == len &&
			   memcmp(dec, text, len) == 0);
	}
	free(dec);
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct strata_admin_query q;
	struct strata_admin_filter f;
	char *prefix = param(&in), *path = param(&in), *tag = param(&in);
	char *route = param(&in), *tier = param(&in), *limit = param(&in);
	char *cursor = param(&in), *flag = param(&in);
	char *cursor_text = (char *)"unset";
	const char *why = NULL;
	unsigned want_tiers = 0;
	size_t want_limit = STRATA_ADMIN_LIMIT_DEFAULT;
	bool ok;
	int rc;

	q = (struct strata_admin_query){
		.prefix = prefix, .path = path, .tag = tag, .route = route,
		.tier = tier, .limit = limit, .cursor = cursor,
	};
	ok = ref_tier(tier, &want_tiers) &&
	     (limit == NULL || ref_limit(limit, &want_limit)) &&
	     (cursor == NULL || ref_cursor_ok(cursor));
	rc = strata_admin_filter_parse(&q, &f, &cursor_text, &why);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc == -ENOMEM) {
		FUZZ_CHECK(cursor_text == NULL);
		goto out;
	}
	FUZZ_CHECK((rc == 0) == ok);
	if (rc != 0) {
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		FUZZ_CHECK(cursor_text == NULL);
		goto out;
	}
	FUZZ_CHECK(f.prefix == prefix && f.path == path && f.tag == tag &&
		   f.route == route);
	FUZZ_CHECK(f.tiers == want_tiers);
	FUZZ_CHECK(f.limit == want_limit);
	if (cursor == NULL) {
		FUZZ_CHECK(cursor_text == NULL && f.after == NULL);
	} else {
		char *again;

		FUZZ_CHECK(cursor_text != NULL && f.after == cursor_text);
		FUZZ_CHECK(strlen(cursor_text) * 2 == strlen(cursor));
		again = strata_admin_cursor_encode(cursor_text,
						   strlen(cursor_text));
		FUZZ_CHECK(again != NULL && strcasecmp(again, cursor) == 0);
		for (const char *c = again; *c; c++)
			FUZZ_CHECK(hex_digit(*c) >= 0 &&
				   !(*c >= 'A' && *c <= 'F'));
		free(again);
	}
	free(cursor_text);

out:
	{
		unsigned bits = 99;

		rc = strata_admin_tier_parse(tier, &bits);
		FUZZ_CHECK((rc == 0) == ref_tier(tier, &want_tiers));
		if (rc == 0)
			FUZZ_CHECK(bits == want_tiers);
	}
	FUZZ_CHECK(strata_admin_flag(flag) ==
		   (flag != NULL && strcmp(flag, "0") != 0 &&
		    strcmp(flag, "false") != 0));
	FUZZ_CHECK(!strata_admin_flag(NULL));
	/* Any bytes as a key text: the whole input. */
	check_cursor_round_trip((const char *)data, size);

	free(prefix);
	free(path);
	free(tag);
	free(route);
	free(tier);
	free(limit);
	free(cursor);
	free(flag);
	return 0;
}
