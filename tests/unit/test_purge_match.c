/*
 * Unit tests for src/cache/purge.c: purge descriptions and what they
 * match.
 */
#include "config.h"

#include "cache/purge.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "cache/key.h"

TestSuite(purge_match, .timeout = 60);

static bool matches(const char *kind, const char *arg, const char *text,
		    const char *const *tags, size_t n_tags)
{
	struct strata_purge p;
	struct strata_key key;

	cr_assert_eq(strata_purge_parse(kind, arg, &p), 0, "%s %s", kind, arg);
	strata_key_hash(text, strlen(text), &key);
	return strata_purge_matches(&p, &key, text, strlen(text), tags,
				    n_tags);
}

Test(purge_match, parse_checks_kind_and_argument)
{
	struct strata_purge p;
	char big[STRATA_PURGE_ARG_MAX + 2];

	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	cr_expect_eq(strata_purge_parse("all", "", &p), 0);
	cr_expect_eq(p.kind, STRATA_PURGE_ALL);
	cr_expect_eq(strata_purge_parse("all", "x", &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("prefix", "api/", &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("prefix", big, &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("tag", "", &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("tag", "a b", &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("key", "abc", &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("ban", "/", &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("key",
					"0123456789abcdef0123456789ABCDEF", &p),
		     0);
	cr_expect_str_eq(strata_purge_kind_name(STRATA_PURGE_TAG), "tag");
}

Test(purge_match, prefix_matches_the_path_whatever_the_method_and_variant)
{
	cr_expect(matches("prefix", "/api/", "GET /api/x", NULL, 0));
	cr_expect(matches("prefix", "/api/", "POST /api/x?y=1\nhost: a\n",
			  NULL, 0));
	cr_expect(matches("prefix", "/api", "GET /api2", NULL, 0));
	cr_expect(!matches("prefix", "/api/", "GET /api", NULL, 0));
	cr_expect(!matches("prefix", "/api/", "GET /other/api/", NULL, 0));
	/* The vary lines are not the path. */
	cr_expect(!matches("prefix", "/a/", "GET /b\nx: /a/\n", NULL, 0));
}

Test(purge_match, key_tag_and_all)
{
	static const char *const tags[] = {"red", "blue"};
	struct strata_key key;
	char hex[STRATA_KEY_HEX_LEN + 1];

	strata_key_hash("GET /k", 6, &key);
	strata_key_hex(&key, hex);
	cr_expect(matches("key", hex, "GET /k", NULL, 0));
	cr_expect(!matches("key", hex, "GET /j", NULL, 0));
	cr_expect(matches("tag", "blue", "GET /t", tags, 2));
	cr_expect(!matches("tag", "green", "GET /t", tags, 2));
	cr_expect(!matches("tag", "blu", "GET /t", tags, 2));
	cr_expect(matches("all", "", "GET /anything", NULL, 0));
}

Test(purge_match, key_path_is_the_first_line_after_the_method)
{
	size_t len;
	const char *p = strata_purge_key_path("GET /a?b\nx: y\n", 14, &len);

	cr_expect_eq(len, 4);
	cr_expect_eq(strncmp(p, "/a?b", 4), 0);
	p = strata_purge_key_path("nospace", 7, &len);
	cr_expect_eq(len, 0);
}

Test(purge_match, path_matches_every_variant_of_one_path)
{
	struct strata_purge p;

	cr_expect(matches("path", "/a", "GET /a", NULL, 0));
	cr_expect(matches("path", "/a", "GET /a?x=1", NULL, 0));
	cr_expect(matches("path", "/a", "HEAD /a\naccept: x\n", NULL, 0));
	cr_expect(!matches("path", "/a", "GET /ab", NULL, 0));
	cr_expect(!matches("path", "/a", "GET /a/b", NULL, 0));
	cr_expect_eq(strata_purge_parse("path", "/a?x", &p), -EINVAL);
	cr_expect_eq(strata_purge_parse("path", "a", &p), -EINVAL);
}
