/* Unit tests for src/cache/policy.c: which responses may be stored. */
#include <criterion/criterion.h>

#include "cache/policy.h"

static enum strata_store_verdict verdict(unsigned status, const char *name,
					 const char *value, bool auth,
					 bool force)
{
	struct strata_headers h = { 0 };
	enum strata_store_verdict v;

	strata_headers_add(&h, "Content-Type", "text/plain");
	if (name != NULL)
		strata_headers_add(&h, name, value);
	v = strata_policy_storable(status, &h, auth, force);
	strata_headers_clear(&h);
	return v;
}

Test(policy, default_cacheable_statuses)
{
	unsigned yes[] = { 200, 203, 204, 300, 301, 308, 404, 410 };
	unsigned no[] = { 201, 206, 302, 304, 307, 400, 403, 500, 502, 503 };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		cr_assert_eq(verdict(yes[i], NULL, NULL, false, false),
			     STRATA_STORE_OK, "%u", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		cr_assert_eq(verdict(no[i], NULL, NULL, false, false),
			     STRATA_STORE_STATUS, "%u", no[i]);
	/* force does not make an error storable */
	cr_assert_eq(verdict(500, NULL, NULL, false, true), STRATA_STORE_STATUS);
}

Test(policy, private_answers_are_not_stored)
{
	cr_assert_eq(verdict(200, "Set-Cookie", "s=1", false, false),
		     STRATA_STORE_SET_COOKIE);
	cr_assert_eq(verdict(200, "Cache-Control", "no-store", false, false),
		     STRATA_STORE_NO_STORE);
	cr_assert_eq(verdict(200, "cache-control", "max-age=5, private", false,
			     false),
		     STRATA_STORE_PRIVATE);
	cr_assert_eq(verdict(200, NULL, NULL, true, false),
		     STRATA_STORE_AUTHORIZATION);
	cr_assert_eq(verdict(200, "Cache-Control", "public, max-age=5", false,
			     false),
		     STRATA_STORE_OK);
}

Test(policy, a_malformed_prohibition_still_prohibits)
{
	/* As on ttl: origin routes (freshness.h): a malformed permission
	 * grants nothing, a malformed prohibition still prohibits. */
	cr_assert_eq(verdict(200, "Cache-Control", "private;x", false, false),
		     STRATA_STORE_PRIVATE);
	cr_assert_eq(verdict(200, "Cache-Control", "max-age=5, no-store=1",
			     false, false),
		     STRATA_STORE_NO_STORE);
	cr_assert_eq(verdict(200, "Cache-Control",
			     "private=\"Set-Cookie\", max-age=5", false, false),
		     STRATA_STORE_PRIVATE);
	cr_assert_eq(verdict(200, "Cache-Control", "max-age=60, Private", false,
			     false),
		     STRATA_STORE_PRIVATE);
	cr_assert_eq(verdict(200, "Cache-Control", "no-store-ish", false, false),
		     STRATA_STORE_OK);
	cr_assert_eq(verdict(200, "Cache-Control", "no-cache=\"a, b\", private",
			     false, false),
		     STRATA_STORE_PRIVATE);
	/* A directive's name inside another's quoted argument is not one. */
	cr_assert_eq(verdict(200, "Cache-Control", "no-cache=\"a, private\"",
			     false, false),
		     STRATA_STORE_OK);
	cr_assert_eq(verdict(200, "Cache-Control",
			     "ext=\"no-store, private\", max-age=5", false,
			     false),
		     STRATA_STORE_OK);
}

Test(policy, force_overrides_privacy)
{
	cr_assert_eq(verdict(200, "Set-Cookie", "s=1", false, true),
		     STRATA_STORE_OK);
	cr_assert_eq(verdict(200, "Cache-Control", "private", true, true),
		     STRATA_STORE_OK);
}

Test(policy, verdict_names)
{
	cr_assert_str_eq(strata_policy_verdict_name(STRATA_STORE_SET_COOKIE),
			 "set-cookie");
	cr_assert_str_eq(strata_policy_verdict_name(99), "unknown");
}
