/*
 * test_admin_query.c: the admin API's query parameters (admin_query.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "front/admin_query.h"

Test(admin_query, filters_take_the_parameters_as_given)
{
	struct strata_admin_query q = {.prefix = "/api/", .tag = "t",
				       .tier = "disk", .limit = "25"};
	struct strata_admin_filter f;
	char *cursor = (char *)1;
	const char *why = NULL;

	cr_assert_eq(strata_admin_filter_parse(&q, &f, &cursor, &why), 0);
	cr_expect_str_eq(f.prefix, "/api/");
	cr_expect_str_eq(f.tag, "t");
	cr_expect_null(f.path);
	cr_expect_eq(f.tiers, STRATA_ADMIN_TIER_DISK);
	cr_expect_eq(f.limit, 25);
	cr_expect_null(cursor);
	cr_expect_null(f.after);
	q = (struct strata_admin_query){0};
	cr_assert_eq(strata_admin_filter_parse(&q, &f, &cursor, &why), 0);
	cr_expect_eq(f.limit, STRATA_ADMIN_LIMIT_DEFAULT);
	cr_expect_eq(f.tiers, 0);
}

Test(admin_query, bad_values_are_refused_with_a_reason)
{
	static const char *const limits[] = {"0", "1001", "-1", "+5", " 5",
					     "5x", "99999999999999999999",
					     "0x10", ""};
	struct strata_admin_filter f;
	char *cursor;
	const char *why;

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct strata_admin_query q = {.limit = limits[i]};

		why = NULL;
		cr_expect_eq(strata_admin_filter_parse(&q, &f, &cursor, &why),
			     -EINVAL, "limit \"%s\" accepted", limits[i]);
		cr_expect_not_null(why);
	}
	{
		struct strata_admin_query q = {.tier = "Memory"};

		cr_expect_eq(strata_admin_filter_parse(&q, &f, &cursor, &why),
			     -EINVAL);
		cr_expect_str_eq(why, "tier must be memory, disk or redis");
	}
	{
		struct strata_admin_query q = {.limit = "1000"};

		cr_expect_eq(strata_admin_filter_parse(&q, &f, &cursor, &why),
			     0);
		cr_expect_eq(f.limit, 1000);
	}
}

Test(admin_query, cursors_round_trip_and_reject_what_no_server_gave)
{
	static const char text[] = "GET /a?b=c\naccept: x\xff";
	static const char *const bad[] = {"", "a", "abc", "zz", "0g",
					  "00", "4100", "41 42"};
	char *c = strata_admin_cursor_encode(text, sizeof(text) - 1), *d;
	struct strata_admin_query q;
	struct strata_admin_filter f;
	const char *why;

	cr_assert_not_null(c);
	cr_expect_eq(strlen(c), 2 * (sizeof(text) - 1));
	d = strata_admin_cursor_decode(c);
	cr_assert_not_null(d);
	cr_expect_str_eq(d, text);
	free(d);
	q = (struct strata_admin_query){.cursor = c};
	cr_assert_eq(strata_admin_filter_parse(&q, &f, &d, &why), 0);
	cr_expect_str_eq(f.after, text);
	free(d);
	free(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_null(strata_admin_cursor_decode(bad[i]),
			       "cursor \"%s\" accepted", bad[i]);
	d = strata_admin_cursor_decode("4A6b");
	cr_expect_str_eq(d, "Jk", "either case of hex digits");
	free(d);
}

Test(admin_query, flags)
{
	cr_expect(!strata_admin_flag(NULL));
	cr_expect(!strata_admin_flag("0"));
	cr_expect(!strata_admin_flag("false"));
	cr_expect(strata_admin_flag("1"));
	cr_expect(strata_admin_flag("yes"));
}
