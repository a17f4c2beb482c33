/*
 * test_key.c: canonical key texts, their hashes and hex forms.
 */
#include "config.h"

#include "cache/key.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <criterion/criterion.h>

#include "strata/config.h"

/* Request headers for the vary tests: name/value pairs, repeats allowed. */
struct fake_headers {
	const char *const *pairs;   /* name, value, name, value, ... */
	size_t n;                   /* pairs */
	unsigned calls;
};

/* Joins repeated values like the front end must: ", " in arrival order. */
static const char *fake_header_cb(void *arg, const char *name, char *buf,
				  size_t cap)
{
	struct fake_headers *h = arg;
	const char *first = NULL;
	size_t used = 0, found = 0;

	h->calls++;
	for (size_t i = 0; i < h->n; i++) {
		const char *value = h->pairs[2 * i + 1];
		size_t len = strlen(value);

		if (strcasecmp(h->pairs[2 * i], name) != 0)
			continue;
		if (found++ == 0) {
			first = value;
			continue;
		}
		if (found == 2) {
			if (strlen(first) + 1 > cap)
				return STRATA_KEY_HEADER_TOOBIG;
			used = (size_t)snprintf(buf, cap, "%s", first);
		}
		if (used + 2 + len + 1 > cap)
			return STRATA_KEY_HEADER_TOOBIG;
		used += (size_t)snprintf(buf + used, cap - used, ", %s", value);
	}
	return found > 1 ? buf : first;
}

#define HEADERS(...)                                                      \
	(&(struct fake_headers){                                          \
		.pairs = (const char *const[]){ __VA_ARGS__ },            \
		.n = sizeof((const char *const[]){ __VA_ARGS__ }) /       \
		     sizeof(const char *) / 2 })

static char text[4096];

/* The key text, asserting success. */
static const char *key_text(const struct strata_key_rule *rule,
			    const char *method, const char *target,
			    struct fake_headers *h)
{
	size_t len = 0;
	int rc = strata_key_text(rule, method, target,
				 h ? fake_header_cb : NULL, h, text,
				 sizeof(text), &len);

	cr_assert_eq(rc, 0, "%s %s: rc %d", method, target, rc);
	cr_assert_eq(len, strlen(text));
	return text;
}

static int key_rc(const struct strata_key_rule *rule, const char *method,
		  const char *target, struct fake_headers *h)
{
	size_t len = 0;

	return strata_key_text(rule, method, target, h ? fake_header_cb : NULL,
			       h, text, sizeof(text), &len);
}

static const char *const keep_ab[] = { "a", "b" };

static const struct strata_key_rule raw = { .query = STRATA_QUERY_RAW };
static const struct strata_key_rule ignore = { .query = STRATA_QUERY_IGNORE };
static const struct strata_key_rule keep = {
	.query = STRATA_QUERY_KEEP, .query_keep = keep_ab, .n_query_keep = 2,
};

/* --- the request line and query modes ------------------------------------- */

Test(key, raw_keeps_bytes_and_order)
{
	cr_expect_str_eq(key_text(&raw, "GET", "/slow", NULL), "GET /slow\n");
	cr_expect_str_eq(key_text(&raw, "GET", "/s?b=2&a=1&b=%41", NULL),
			 "GET /s?b=2&a=1&b=%41\n");
	cr_expect_str_eq(key_text(&raw, "GET", "/s?", NULL), "GET /s?\n",
			 "an empty query is still what was received");
	cr_expect_str_eq(key_text(NULL, "GET", "/s?x&&y", NULL),
			 "GET /s?x&&y\n", "a NULL rule is raw");
}

Test(key, ignore_drops_query)
{
	cr_expect_str_eq(key_text(&ignore, "GET", "/s?b=2&a=1", NULL),
			 "GET /s\n");
	cr_expect_str_eq(key_text(&ignore, "GET", "/s?", NULL), "GET /s\n");
	cr_expect_str_eq(key_text(&ignore, "GET", "/s", NULL), "GET /s\n");
}

Test(key, keep_filters_and_sorts)
{
	cr_expect_str_eq(key_text(&keep, "GET", "/s?b=2&a=1&c=3", NULL),
			 "GET /s?a=1&b=2\n");
	cr_expect_str_eq(key_text(&keep, "GET", "/s?c=3&utm=x", NULL),
			 "GET /s\n", "\"?\" goes when nothing is kept");
	cr_expect_str_eq(key_text(&keep, "GET", "/s", NULL), "GET /s\n");
	cr_expect_str_eq(key_text(&keep, "GET", "/s?", NULL), "GET /s\n");
}

Test(key, keep_sorts_repeated_params_by_value)
{
	cr_expect_str_eq(key_text(&keep, "GET", "/s?a=3&b=1&a=1&a=2", NULL),
			 "GET /s?a=1&a=2&a=3&b=1\n");
	cr_expect_str_eq(key_text(&keep, "GET", "/s?a=1&a&a=", NULL),
			 "GET /s?a&a=&a=1\n", "no \"=\" < empty value < value");
}

Test(key, keep_order_does_not_matter)
{
	char first[256];

	strcpy(first, key_text(&keep, "GET", "/s?a=2&b=x&a=1", NULL));
	cr_expect_str_eq(key_text(&keep, "GET", "/s?b=x&a=1&a=2", NULL),
			 first);
	cr_expect_str_eq(key_text(&keep, "GET", "/s?a=1&&a=2&b=x&", NULL),
			 first, "empty parameters are dropped");
}

Test(key, keep_names_are_raw_bytes)
{
	static const char *const names[] = { "a", "a-" };
	struct strata_key_rule r = {
		.query = STRATA_QUERY_KEEP, .query_keep = names,
		.n_query_keep = 2,
	};

	/* No percent-decoding, no case folding; the name ends at "=". */
	cr_expect_str_eq(key_text(&keep, "GET", "/s?%61=1&A=2&ab=3&a==4",
				  NULL), "GET /s?a==4\n");
	/* Sorted by name first: "a-" sorts after "a" though '-' < '='. */
	cr_expect_str_eq(key_text(&r, "GET", "/s?a-=1&a=2", NULL),
			 "GET /s?a=2&a-=1\n");
}

Test(key, keep_limit_is_e2big)
{
	char target[1024] = "/s?";
	size_t len = strlen(target);

	for (int i = 0; i < STRATA_KEY_MAX_KEPT; i++)
		len += (size_t)snprintf(target + len, sizeof(target) - len,
					"%sa=%d", i ? "&" : "", i);
	cr_expect_eq(key_rc(&keep, "GET", target, NULL), 0);
	/* Unlisted parameters do not count against the limit. */
	strcat(target, "&z=1");
	cr_expect_eq(key_rc(&keep, "GET", target, NULL), 0);
	strcat(target, "&b=1");
	cr_expect_eq(key_rc(&keep, "GET", target, NULL), -E2BIG);
	cr_expect_eq(key_rc(&raw, "GET", target, NULL), 0);
}

Test(key, head_is_keyed_as_get)
{
	cr_expect_str_eq(key_text(&raw, "HEAD", "/a", NULL), "GET /a\n");
	cr_expect_str_eq(key_text(&raw, "POST", "/a", NULL), "POST /a\n");
	cr_expect_str_eq(key_text(&raw, "head", "/a", NULL), "head /a\n",
			 "methods are case-sensitive");
}

Test(key, bad_targets_and_methods)
{
	const char *bad_targets[] = {
		"", "a", "*", "http://x/a", "/a b", "/a\n", "/a\r", "/a\t",
		"/a#f", "/a?x#f", "/a\x7f",
	};

	for (size_t i = 0; i < sizeof(bad_targets) / sizeof(*bad_targets); i++)
		cr_expect_eq(key_rc(&raw, "GET", bad_targets[i], NULL), -EINVAL,
			     "\"%s\"", bad_targets[i]);
	cr_expect_eq(key_rc(&raw, "GET", NULL, NULL), -EINVAL);
	cr_expect_eq(key_rc(&raw, "", "/a", NULL), -EINVAL);
	cr_expect_eq(key_rc(&raw, "G ET", "/a", NULL), -EINVAL);
	cr_expect_eq(key_rc(&raw, "GET\n", "/a", NULL), -EINVAL);
	cr_expect_eq(key_rc(&raw, NULL, "/a", NULL), -EINVAL);
	cr_expect_str_eq(key_text(&raw, "GET", "/caf\xc3\xa9", NULL),
			 "GET /caf\xc3\xa9\n", "high bytes pass");
}

/* --- vary ----------------------------------------------------------------- */

static const char *const vary_two[] = { "Accept-Language", "X-Tenant" };
static const struct strata_key_rule vary = {
	.query = STRATA_QUERY_RAW, .vary = vary_two, .n_vary = 2,
};

Test(key, vary_present_and_absent)
{
	struct fake_headers *h = HEADERS("accept-language", "en",
					 "Host", "x");

	cr_expect_str_eq(key_text(&vary, "GET", "/a", h),
			 "GET /a\naccept-language: en\nx-tenant!\n");
	cr_expect_eq(h->calls, 2);
	cr_expect_str_eq(key_text(&vary, "GET", "/a", HEADERS("X-TENANT", "")),
			 "GET /a\naccept-language!\nx-tenant: \n",
			 "empty is not absent");
}

Test(key, vary_repeated_values_joined)
{
	cr_expect_str_eq(key_text(&vary, "GET", "/a",
				  HEADERS("X-Tenant", "b", "Accept-Language",
					  "en", "x-tenant", "a")),
			 "GET /a\naccept-language: en\nx-tenant: b, a\n");
}

Test(key, vary_value_with_line_break_is_einval)
{
	cr_expect_eq(key_rc(&vary, "GET", "/a",
			    HEADERS("X-Tenant", "a\nx-tenant: b")), -EINVAL);
	cr_expect_eq(key_rc(&vary, "GET", "/a", HEADERS("X-Tenant", "a\r")),
		     -EINVAL);
}

static const char *toobig_cb(void *arg, const char *name, char *buf,
			     size_t cap)
{
	(void)arg;
	(void)name;
	(void)buf;
	cr_expect_eq(cap, STRATA_KEY_JOIN_MAX);
	return STRATA_KEY_HEADER_TOOBIG;
}

Test(key, vary_too_big_is_e2big)
{
	size_t len;

	cr_expect_eq(strata_key_text(&vary, "GET", "/a", toobig_cb, NULL, text,
				     sizeof(text), &len), -E2BIG);
}

Test(key, vary_without_header_fn_asserts, .signal = SIGABRT)
{
	size_t len;

	strata_key_text(&vary, "GET", "/a", NULL, NULL, text, sizeof(text),
			&len);
}

/* --- buffer sizes --------------------------------------------------------- */

Test(key, enospc_returns_needed_size)
{
	const char *expect = "GET /a?q\naccept-language: en\nx-tenant!\n";
	size_t need = strlen(expect) + 1;
	char small[64];

	for (size_t cap = 0; cap < need; cap++) {
		size_t len = 0;

		cr_assert_eq(strata_key_text(&vary, "GET", "/a?q",
					     fake_header_cb,
					     HEADERS("Accept-Language", "en"),
					     cap ? small : NULL, cap, &len),
			     -ENOSPC, "cap %zu", cap);
		cr_assert_eq(len, need, "cap %zu", cap);
	}
	{
		size_t len = 0;

		cr_assert_eq(strata_key_text(&vary, "GET", "/a?q",
					     fake_header_cb,
					     HEADERS("Accept-Language", "en"),
					     small, need, &len), 0);
		cr_expect_eq(len, need - 1);
		cr_expect_str_eq(small, expect);
	}
}

/* --- hashes --------------------------------------------------------------- */

Test(key, known_xxh3_128)
{
	/* Fixed here so that a change of hash function is caught: every
	 * stored entry's name would change with it. */
	const char *t = "GET /slow?a=1\naccept-language: en\n";
	struct strata_key k;
	char hex[STRATA_KEY_HEX_LEN + 1];

	strata_key_hash(t, strlen(t), &k);
	strata_key_hex(&k, hex);
	cr_expect_str_eq(hex, "40b795177e6ef008a70326de649bd7eb");
	strata_key_hash("", 0, &k);
	strata_key_hex(&k, hex);
	cr_expect_str_eq(hex, "99aa06d3014798d86001c324468d497f");
}

Test(key, different_texts_different_hashes)
{
	const char *texts[] = {
		"GET /a\n", "GET /a?\n", "GET /b\n", "HEAD /a\n",
		"GET /a\nx!\n", "GET /a\nx: \n", "GET /a\nx: y\n",
	};
	size_t n = sizeof(texts) / sizeof(*texts);
	struct strata_key k[sizeof(texts) / sizeof(*texts)];
	struct strata_key again;

	for (size_t i = 0; i < n; i++)
		strata_key_hash(texts[i], strlen(texts[i]), &k[i]);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++)
			cr_expect_not(strata_key_equal(&k[i], &k[j]),
				      "%zu vs %zu", i, j);
	}
	strata_key_hash(texts[0], strlen(texts[0]), &again);
	cr_expect(strata_key_equal(&k[0], &again));
}

Test(key, hex_round_trip)
{
	struct strata_key k, back;
	char hex[STRATA_KEY_HEX_LEN + 1];
	char upper[STRATA_KEY_HEX_LEN + 1];

	strata_key_hash("GET /a\n", 7, &k);
	strata_key_hex(&k, hex);
	cr_expect_eq(strlen(hex), STRATA_KEY_HEX_LEN);
	cr_expect_eq(strspn(hex, "0123456789abcdef"), STRATA_KEY_HEX_LEN);
	cr_assert_eq(strata_key_from_hex(hex, &back), 0);
	cr_expect(strata_key_equal(&k, &back));
	for (size_t i = 0; i <= STRATA_KEY_HEX_LEN; i++)
		upper[i] = (char)toupper((unsigned char)hex[i]);
	memset(&back, 0, sizeof(back));
	cr_assert_eq(strata_key_from_hex(upper, &back), 0);
	cr_expect(strata_key_equal(&k, &back));
}

Test(key, invalid_hex)
{
	struct strata_key k = { { 0 } }, before;
	const char *bad[] = {
		"",
		"0123456789abcdef0123456789abcde",     /* 31 */
		"0123456789abcdef0123456789abcdef0",   /* 33 */
		"0123456789abcdef0123456789abcdeg",
		"0123456789abcdef 123456789abcdef",
		"0x23456789abcdef0123456789abcdef",
		"0123456789abcdef0123456789abcdef\n",
	};

	memset(&k, 0x5a, sizeof(k));
	before = k;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		cr_expect_eq(strata_key_from_hex(bad[i], &k), -EINVAL, "\"%s\"",
			     bad[i]);
		cr_expect(strata_key_equal(&k, &before), "untouched on error");
	}
	cr_expect_eq(strata_key_from_hex(NULL, &k), -EINVAL);
}

Test(key, config_constants_match)
{
	cr_expect_eq(STRATA_ROUTE_QUERY_RAW, (int)STRATA_QUERY_RAW);
	cr_expect_eq(STRATA_ROUTE_QUERY_IGNORE, (int)STRATA_QUERY_IGNORE);
	cr_expect_eq(STRATA_ROUTE_QUERY_KEEP, (int)STRATA_QUERY_KEEP);
}
