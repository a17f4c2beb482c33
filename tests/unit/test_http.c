/* Unit tests for src/core/http.c: header lists and hop-by-hop rules. */
#include <criterion/criterion.h>
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
