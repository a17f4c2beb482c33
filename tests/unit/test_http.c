/* Unit tests for src/core/http.c: header lists and hop-by-hop rules. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"

Test(http, headers_keep_order_and_repeats)
{
	struct strata_headers h = { 0 };

	cr_assert_eq(strata_headers_add(&h, "Set-Cookie", "a=1"), 0);
	cr_assert_eq(strata_headers_add(&h, "X-Other", "x"), 0);
	cr_assert_eq(strata_headers_add(&h, "set-cookie", "b=2"), 0);
	cr_assert_eq(h.n, 3);
	cr_assert_str_eq(h.v[0].value, "a=1");
	cr_assert_str_eq(h.v[2].value, "b=2");
	cr_assert_str_eq(strata_headers_get(&h, "SET-COOKIE"), "a=1");
	cr_assert_null(strata_headers_get(&h, "Missing"));
	strata_headers_clear(&h);
	cr_assert_eq(h.n, 0);
	cr_assert_null(h.v);
}

Test(http, join_puts_one_comma_between_lines_even_empty_ones)
{
	struct strata_headers h = { 0 };
	char *j;

	cr_assert_null(strata_headers_join(&h, "Vary"));
	cr_assert_eq(strata_headers_add(&h, "Vary", ""), 0);
	cr_assert_eq(strata_headers_add(&h, "X-Other", "x"), 0);
	cr_assert_eq(strata_headers_add(&h, "vary", "a"), 0);
	cr_assert_eq(strata_headers_add(&h, "Vary", "b, c"), 0);
	j = strata_headers_join(&h, "VARY");
	cr_assert_str_eq(j, ",a,b, c");
	free(j);
	strata_headers_clear(&h);
}

Test(http, a_clean_target_has_no_space_or_control_character)
{
	cr_assert(strata_http_target_clean("/a/b?c=d&e=%20"));
	cr_assert(strata_http_target_clean("/caf\xc3\xa9"));
	cr_assert(strata_http_target_clean("http://h/a#f"), "only bytes");
	cr_assert_not(strata_http_target_clean("/a b"));
	cr_assert_not(strata_http_target_clean("/a\tb"));
	cr_assert_not(strata_http_target_clean("/a\x01"));
	cr_assert_not(strata_http_target_clean("/a\x7f"));
	cr_assert_not(strata_http_target_clean(NULL));
}

Test(http, addn_takes_lengths)
{
	struct strata_headers h = { 0 };

	cr_assert_eq(strata_headers_addn(&h, "X-Abc-trailing", 5, "valueXX", 5),
		     0);
	cr_assert_str_eq(h.v[0].name, "X-Abc");
	cr_assert_str_eq(h.v[0].value, "value");
	strata_headers_clear(&h);
}

Test(http, fixed_hop_by_hop_set)
{
	const char *hop[] = { "Connection", "keep-alive", "PROXY-CONNECTION",
			      "Proxy-Authenticate", "proxy-authorization",
			      "te", "Trailer", "transfer-encoding",
			      "Upgrade" };

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		cr_assert(strata_http_is_hop_by_hop(hop[i], NULL), "%s",
			  hop[i]);
	cr_assert_not(strata_http_is_hop_by_hop("Content-Type", NULL));
	cr_assert_not(strata_http_is_hop_by_hop("Set-Cookie", NULL));
	cr_assert_not(strata_http_is_hop_by_hop("Trailers", NULL));
}

Test(http, connection_named_headers_are_hop_by_hop)
{
	cr_assert(strata_http_is_hop_by_hop("X-Drop", "close, x-drop"));
	cr_assert(strata_http_is_hop_by_hop("X-Drop", " X-Drop ,keep-alive"));
	cr_assert_not(strata_http_is_hop_by_hop("X-Dro", "X-Drop"));
	cr_assert_not(strata_http_is_hop_by_hop("X-Drop2", "X-Drop"));
}

Test(http, list_has_handles_whitespace_and_empties)
{
	cr_assert(strata_http_list_has(",, a ,\tb", "b"));
	cr_assert(strata_http_list_has("a", "A"));
	cr_assert_not(strata_http_list_has("", "a"));
	cr_assert_not(strata_http_list_has(NULL, "a"));
	cr_assert_not(strata_http_list_has("ab", "a"));
}

Test(http, end_to_end_drops_hop_by_hop_and_length)
{
	struct strata_headers in = { 0 }, out = { 0 };

	strata_headers_add(&in, "Content-Type", "text/plain");
	strata_headers_add(&in, "Connection", "X-Hop");
	strata_headers_add(&in, "X-Hop", "secret");
	strata_headers_add(&in, "Content-Length", "5");
	strata_headers_add(&in, "Transfer-Encoding", "chunked");
	strata_headers_add(&in, "Set-Cookie", "a=1");
	strata_headers_add(&in, "Set-Cookie", "b=2");
	cr_assert_eq(strata_http_end_to_end(&in, &out), 0);
	cr_assert_eq(out.n, 3);
	cr_assert_str_eq(out.v[0].name, "Content-Type");
	cr_assert_str_eq(out.v[1].value, "a=1");
	cr_assert_str_eq(out.v[2].value, "b=2");
	strata_headers_clear(&in);
	strata_headers_clear(&out);
}

Test(http, remove_keeps_the_rest_in_order)
{
	struct strata_headers h = { 0 };

	strata_headers_add(&h, "A", "1");
	strata_headers_add(&h, "Age", "5");
	strata_headers_add(&h, "B", "2");
	strata_headers_add(&h, "age", "6");
	strata_headers_remove(&h, "AGE");
	cr_assert_eq(h.n, 2);
	cr_assert_str_eq(h.v[0].name, "A");
	cr_assert_str_eq(h.v[1].name, "B");
	strata_headers_clear(&h);
}

Test(http, fold_makes_one_line_of_a_list_header)
{
	struct strata_headers h = {0};

	cr_assert_eq(strata_headers_add(&h, "Cache-Control", "max-age=60"), 0);
	cr_assert_eq(strata_headers_add(&h, "ETag", "\"x\""), 0);
	cr_assert_eq(strata_headers_add(&h, "cache-control", ""), 0);
	cr_assert_eq(strata_headers_add(&h, "Vary", "A"), 0);
	cr_assert_eq(strata_headers_add(&h, "CACHE-CONTROL", "no-store"), 0);
	cr_assert_eq(strata_headers_fold(&h, "Cache-Control"), 0);
	cr_assert_eq(h.n, 3);
	cr_expect_str_eq(h.v[0].name, "Cache-Control");
	cr_expect_str_eq(h.v[0].value, "max-age=60, no-store",
			 "in order; the empty line adds nothing");
	cr_expect_str_eq(h.v[1].name, "ETag", "the others keep their order");
	cr_expect_str_eq(h.v[2].name, "Vary");
	/* One line, or none: unchanged. */
	cr_assert_eq(strata_headers_fold(&h, "Vary"), 0);
	cr_assert_eq(strata_headers_fold(&h, "Pragma"), 0);
	cr_assert_eq(h.n, 3);
	cr_expect_str_eq(h.v[2].value, "A");
	strata_headers_clear(&h);
}

Test(http, fold_cache_lists_folds_vary_after_an_empty_line)
{
	struct strata_headers h = {0};

	cr_assert_eq(strata_headers_add(&h, "Vary", ""), 0);
	cr_assert_eq(strata_headers_add(&h, "Vary", "*"), 0);
	cr_assert_eq(strata_headers_add(&h, "Cache-Control", "public"), 0);
	cr_assert_eq(strata_http_fold_cache_lists(&h), 0);
	cr_assert_eq(h.n, 2);
	cr_expect_str_eq(strata_headers_get(&h, "Vary"), "*");
	strata_headers_clear(&h);
}
