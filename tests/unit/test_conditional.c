/* Unit tests for src/cache/conditional.c: entity tags, HTTP dates and the
 * precedence of preconditions (RFC 9110 sections 8.8.3, 5.6.7, 13). */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "cache/conditional.h"

TestSuite(conditional, .timeout = 10);

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- entity tags ---------------------------------------------------- */

Test(conditional, etag_parse_table)
{
	static const struct {
		const char *text;
		int rc;
		bool weak;
		const char *opaque;
	} cases[] = {
		{ "\"xyzzy\"", 0, false, "xyzzy" },
		{ "W/\"xyzzy\"", 0, true, "xyzzy" },
		{ "\"\"", 0, false, "" },
		{ "  \"a,b\"\t", 0, false, "a,b" },      /* comma is etagc */
		{ "\"\xc3\xa9\"", 0, false, "\xc3\xa9" }, /* obs-text */
		{ "xyzzy", -EINVAL, false, NULL },        /* unquoted */
		{ "w/\"x\"", -EINVAL, false, NULL },      /* W/ is case-sensitive */
		{ "W/ \"x\"", -EINVAL, false, NULL },
		{ "\"a b\"", -EINVAL, false, NULL },      /* space is not etagc */
		{ "\"abc", -EINVAL, false, NULL },        /* unterminated */
		{ "\"a\"b", -EINVAL, false, NULL },       /* trailing text */
		{ "\"a\", \"b\"", -EINVAL, false, NULL }, /* a list, not a tag */
		{ "", -EINVAL, false, NULL },
		{ "*", -EINVAL, false, NULL },
	};

	for (size_t i = 0; i < N_OF(cases); i++) {
		struct strata_etag t;
		int rc = strata_etag_parse(cases[i].text, &t);

		cr_assert_eq(rc, cases[i].rc, "%s", cases[i].text);
		if (rc != 0)
			continue;
		cr_assert_eq(t.weak, cases[i].weak, "%s", cases[i].text);
		cr_assert_eq(t.opaque_len, strlen(cases[i].opaque), "%s",
			     cases[i].text);
		cr_assert(memcmp(t.opaque, cases[i].opaque, t.opaque_len) == 0,
			  "%s", cases[i].text);
	}
	cr_assert_eq(strata_etag_parse(NULL, &(struct strata_etag){ 0 }),
		     -EINVAL);
}

/* RFC 9110 section 8.8.3.2, Table 3, plus the symmetric and empty cases. */
Test(conditional, etag_comparison_rfc_table)
{
	static const struct {
		const char *a, *b;
		bool strong, weak;
	} cases[] = {
		{ "W/\"1\"", "W/\"1\"", false, true },
		{ "W/\"1\"", "W/\"2\"", false, false },
		{ "W/\"1\"", "\"1\"", false, true },
		{ "\"1\"", "\"1\"", true, true },
		{ "\"1\"", "W/\"1\"", false, true },
		{ "\"1\"", "\"2\"", false, false },
		{ "\"1\"", "\"11\"", false, false },
		{ "\"\"", "\"\"", true, true },
	};

	for (size_t i = 0; i < N_OF(cases); i++) {
		struct strata_etag a, b;

		cr_assert_eq(strata_etag_parse(cases[i].a, &a), 0);
		cr_assert_eq(strata_etag_parse(cases[i].b, &b), 0);
		cr_assert_eq(strata_etag_strong_match(&a, &b), cases[i].strong,
			     "strong %s %s", cases[i].a, cases[i].b);
		cr_assert_eq(strata_etag_weak_match(&a, &b), cases[i].weak,
			     "weak %s %s", cases[i].a, cases[i].b);
	}
}

Test(conditional, etag_lists_and_star)
{
	struct strata_etag strong, weak;
	static const struct {
		const char *list;
		int weak_vs_strong;   /* result against "xyzzy", weak cmp */
		int strong_vs_strong; /* against "xyzzy", strong cmp */
		int strong_vs_weak;   /* against W/"xyzzy", strong cmp */
	} cases[] = {
		{ "\"xyzzy\"", 1, 1, 0 },
		{ "W/\"xyzzy\"", 1, 0, 0 },
		{ "\"a\", \"xyzzy\", \"b\"", 1, 1, 0 },
		{ "\"a\",\"b\"", 0, 0, 0 },
		{ " \"a\" ,\t\"xyzzy\" ", 1, 1, 0 },
		{ "\"a\",, ,\"xyzzy\",", 1, 1, 0 },     /* empty elements */
		{ "\"xyzzy,b\"", 0, 0, 0 },             /* one tag with a comma */
		{ "*", 1, 1, 1 },
		{ "  *  ", 1, 1, 1 },
		{ "*, \"xyzzy\"", -EINVAL, -EINVAL, -EINVAL },
		{ "\"xyzzy\", *", -EINVAL, -EINVAL, -EINVAL },
		{ "xyzzy", -EINVAL, -EINVAL, -EINVAL },
		{ "\"xyzzy\" \"a\"", -EINVAL, -EINVAL, -EINVAL },
		{ "\"xyzzy\", bad", -EINVAL, -EINVAL, -EINVAL },  /* read to the end */
		{ "", -EINVAL, -EINVAL, -EINVAL },
		{ " , ", -EINVAL, -EINVAL, -EINVAL },
	};

	cr_assert_eq(strata_etag_parse("\"xyzzy\"", &strong), 0);
	cr_assert_eq(strata_etag_parse("W/\"xyzzy\"", &weak), 0);
	for (size_t i = 0; i < N_OF(cases); i++) {
		cr_assert_eq(strata_etag_list_match(cases[i].list, &strong,
						    false),
			     cases[i].weak_vs_strong, "[%s] weak", cases[i].list);
		cr_assert_eq(strata_etag_list_match(cases[i].list, &strong,
						    true),
			     cases[i].strong_vs_strong, "[%s] strong",
			     cases[i].list);
		cr_assert_eq(strata_etag_list_match(cases[i].list, &weak, true),
			     cases[i].strong_vs_weak, "[%s] strong vs W/",
			     cases[i].list);
	}
	/* No stored ETag: only "*" matches. */
	cr_assert_eq(strata_etag_list_match("*", NULL, false), 1);
	cr_assert_eq(strata_etag_list_match("\"xyzzy\"", NULL, false), 0);
	cr_assert_eq(strata_etag_list_match(NULL, &strong, false), -EINVAL);
}

Test(conditional, etag_generation_stable_and_distinct)
{
	char a[STRATA_ETAG_GEN_SIZE], b[STRATA_ETAG_GEN_SIZE];
	char c[STRATA_ETAG_GEN_SIZE], e[STRATA_ETAG_GEN_SIZE];
	struct strata_etag t;

	cr_assert_eq(strata_etag_of_body("hello", 5, a), 20);
	cr_assert_eq(strata_etag_of_body("hello", 5, b), 20);
	cr_assert_str_eq(a, b);
	strata_etag_of_body("hellp", 5, c);
	cr_assert_str_neq(a, c);
	strata_etag_of_body(NULL, 0, e);
	cr_assert_str_neq(a, e);
	/* the form: "x-" and 16 lowercase hex digits, a strong tag */
	cr_assert_eq(strncmp(a, "\"x-", 3), 0);
	cr_assert_eq(a[19], '"');
	cr_assert_eq(strspn(a + 3, "0123456789abcdef"), 16);
	cr_assert_eq(strata_etag_parse(a, &t), 0);
	cr_assert_not(t.weak);
	/* it is the XXH3-64 of the body: the empty input's is well known */
	cr_assert_str_eq(e, "\"x-2d06800538d394c2\"");
}

/* ---- dates --------------------------------------------------------------- */

Test(conditional, http_date_three_forms)
{
	static const char *const forms[] = {
		"Sun, 06 Nov 1994 08:49:37 GMT",     /* IMF-fixdate */
		"Sunday, 06-Nov-94 08:49:37 GMT",    /* RFC 850 */
		"Sun Nov  6 08:49:37 1994",          /* asctime */
		"  Sun, 06 Nov 1994 08:49:37 GMT ",  /* OWS around */
		"sun, 06 nov 1994 08:49:37 gmt",     /* names, any case */
	};

	for (size_t i = 0; i < N_OF(forms); i++) {
		int64_t t = 0;

		cr_assert_eq(strata_cond_date_parse(forms[i], &t), 0, "%s",
			     forms[i]);
		cr_assert_eq(t, 784111777, "%s", forms[i]);
	}
}

Test(conditional, http_date_edges)
{
	int64_t t;

	cr_assert_eq(strata_cond_date_parse("Thu, 01 Jan 1970 00:00:00 GMT",
					    &t), 0);
	cr_assert_eq(t, 0);
	cr_assert_eq(strata_cond_date_parse("Tue, 29 Feb 2000 23:59:59 GMT",
					    &t), 0);
	cr_assert_eq(t, 951868799);
	cr_assert_eq(strata_cond_date_parse("Sat, 31 Dec 2016 23:59:60 GMT",
					    &t), 0);        /* leap second */
	cr_assert_eq(t, 1483228800);
	cr_assert_eq(strata_cond_date_parse("Thu, 01-Jan-70 00:00:00 GMT",
					    &t), -EINVAL);  /* short name */
	cr_assert_eq(strata_cond_date_parse("Wednesday, 09-Jun-21 10:18:14 GMT",
					    &t), 0);        /* 2-digit: 2021 */
	cr_assert_eq(t, 1623233894);
	cr_assert_eq(strata_cond_date_parse("Thu Jan 15 00:00:00 2015", &t), 0);
	cr_assert_eq(t, 1421280000);

	static const char *const bad[] = {
		"", "yesterday", "1994-11-06T08:49:37Z",
		"Sun, 06 Nov 1994 08:49:37",          /* no GMT */
		"Sun, 06 Nov 1994 08:49:37 UTC",
		"Sun, 6 Nov 1994 08:49:37 GMT",       /* day needs 2 digits */
		"Sun, 06 Nov 94 08:49:37 GMT",
		"Sun, 31 Nov 1994 08:49:37 GMT",      /* no 31 November */
		"Mon, 29 Feb 1900 00:00:00 GMT",      /* not a leap year */
		"Sun, 06 Nov 1994 24:00:00 GMT",
		"Sun, 06 Nov 1994 08:60:00 GMT",
		"Sun, 06 Foo 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMTx",
		"Sun Nov 6 08:49:37 1994",            /* asctime pads with SP */
		"Funday, 06-Nov-94 08:49:37 GMT",
	};
	for (size_t i = 0; i < N_OF(bad); i++)
		cr_assert_eq(strata_cond_date_parse(bad[i], &t), -EINVAL, "%s",
			     bad[i]);
	cr_assert_eq(strata_cond_date_parse(NULL, &t), -EINVAL);
}

/* ---- evaluation ---------------------------------------------------------- */

#define LM "Sun, 06 Nov 1994 08:49:37 GMT"          /* stored Last-Modified */
#define BEFORE "Sun, 06 Nov 1994 08:49:36 GMT"
#define AFTER "Sun, 06 Nov 1994 08:49:38 GMT"
#define DATE "Mon, 07 Nov 1994 08:00:00 GMT"         /* stored Date */

static struct strata_cond_stored stored(void)
{
	return (struct strata_cond_stored){
		.status = 200,
		.etag = "\"v1\"",
		.last_modified = LM,
		.date = DATE,
		.received_ms = 784195200000,   /* = DATE */
	};
}

static enum strata_cond_result eval(const char *method, const char *im,
				    const char *inm, const char *ims,
				    const char *ius)
{
	struct strata_cond_request r = {
		.method = method,
		.if_match = im,
		.if_none_match = inm,
		.if_modified_since = ims,
		.if_unmodified_since = ius,
	};
	struct strata_cond_stored s = stored();

	return strata_conditional_evaluate(&r, &s);
}

#define NONE STRATA_COND_NONE
#define N304 STRATA_COND_NOT_MODIFIED
#define F412 STRATA_COND_PRECONDITION_FAILED

Test(conditional, no_preconditions)
{
	cr_assert_eq(eval("GET", NULL, NULL, NULL, NULL), NONE);
	cr_assert_eq(eval("POST", NULL, NULL, NULL, NULL), NONE);
}

Test(conditional, if_none_match)
{
	cr_assert_eq(eval("GET", NULL, "\"v1\"", NULL, NULL), N304);
	cr_assert_eq(eval("HEAD", NULL, "\"v1\"", NULL, NULL), N304);
	cr_assert_eq(eval("GET", NULL, "W/\"v1\"", NULL, NULL), N304); /* weak */
	cr_assert_eq(eval("GET", NULL, "\"v0\", \"v1\"", NULL, NULL), N304);
	cr_assert_eq(eval("GET", NULL, "*", NULL, NULL), N304);
	cr_assert_eq(eval("GET", NULL, "\"v2\"", NULL, NULL), NONE);
	/* other methods: 412 instead of 304 */
	cr_assert_eq(eval("PUT", NULL, "*", NULL, NULL), F412);
	cr_assert_eq(eval("POST", NULL, "\"v1\"", NULL, NULL), F412);
	cr_assert_eq(eval("POST", NULL, "\"v2\"", NULL, NULL), NONE);
	/* malformed: never a 304 */
	cr_assert_eq(eval("GET", NULL, "v1", NULL, NULL), NONE);
	cr_assert_eq(eval("GET", NULL, "*, \"v1\"", NULL, NULL), NONE);
	cr_assert_eq(eval("GET", NULL, "", NULL, NULL), NONE);

	/* a weak stored ETag still matches by weak comparison */
	struct strata_cond_stored s = stored();
	struct strata_cond_request r = { .method = "GET",
					 .if_none_match = "\"v1\"" };

	s.etag = "W/\"v1\"";
	cr_assert_eq(strata_conditional_evaluate(&r, &s), N304);
	/* no stored ETag (or a malformed one): only "*" */
	s.etag = NULL;
	cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE);
	s.etag = "v1";
	cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE);
	r.if_none_match = "*";
	cr_assert_eq(strata_conditional_evaluate(&r, &s), N304);
}

Test(conditional, if_modified_since)
{
	cr_assert_eq(eval("GET", NULL, NULL, LM, NULL), N304);      /* equal */
	cr_assert_eq(eval("GET", NULL, NULL, AFTER, NULL), N304);
	cr_assert_eq(eval("GET", NULL, NULL, BEFORE, NULL), NONE);
	cr_assert_eq(eval("HEAD", NULL, NULL, LM, NULL), N304);
	/* other forms of the same instant */
	cr_assert_eq(eval("GET", NULL, NULL, "Sun Nov  6 08:49:37 1994",
			  NULL), N304);
	/* invalid dates and lists are ignored */
	cr_assert_eq(eval("GET", NULL, NULL, "yesterday", NULL), NONE);
	cr_assert_eq(eval("GET", NULL, NULL, LM ", " LM, NULL), NONE);
	/* only GET and HEAD */
	cr_assert_eq(eval("POST", NULL, NULL, AFTER, NULL), NONE);
	cr_assert_eq(eval("DELETE", NULL, NULL, AFTER, NULL), NONE);
}

Test(conditional, if_modified_since_without_last_modified)
{
	struct strata_cond_stored s = stored();
	struct strata_cond_request r = { .method = "GET",
					 .if_modified_since = LM };

	/* falls back to Date (a day after LM) */
	s.last_modified = NULL;
	cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE);
	r.if_modified_since = DATE;
	cr_assert_eq(strata_conditional_evaluate(&r, &s), N304);
	/* an unparsable Last-Modified counts as none */
	s.last_modified = "garbage";
	cr_assert_eq(strata_conditional_evaluate(&r, &s), N304);
	/* then to the time it was stored */
	s.last_modified = NULL;
	s.date = NULL;
	s.received_ms = 784195200999;   /* DATE + 0.999 s: same second */
	cr_assert_eq(strata_conditional_evaluate(&r, &s), N304);
	s.received_ms = 784195201000;
	cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE);
	/* and with nothing at all, the header is ignored */
	s.received_ms = 0;
	r.if_modified_since = "Fri, 31 Dec 9999 23:59:59 GMT";
	cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE);
}

Test(conditional, if_none_match_beats_if_modified_since)
{
	/* a tag that does not match: IMS must not turn it into a 304 */
	cr_assert_eq(eval("GET", NULL, "\"v2\"", AFTER, NULL), NONE);
	/* a tag that matches: 304 even though IMS says modified */
	cr_assert_eq(eval("GET", NULL, "\"v1\"", BEFORE, NULL), N304);
	/* a malformed If-None-Match still shadows IMS */
	cr_assert_eq(eval("GET", NULL, "v1", AFTER, NULL), NONE);
}

Test(conditional, if_match)
{
	cr_assert_eq(eval("GET", "\"v1\"", NULL, NULL, NULL), NONE);
	cr_assert_eq(eval("GET", "\"v0\", \"v1\"", NULL, NULL, NULL), NONE);
	cr_assert_eq(eval("GET", "*", NULL, NULL, NULL), NONE);
	cr_assert_eq(eval("GET", "\"v2\"", NULL, NULL, NULL), F412);
	cr_assert_eq(eval("GET", "W/\"v1\"", NULL, NULL, NULL), F412); /* strong */
	cr_assert_eq(eval("GET", "v1", NULL, NULL, NULL), F412);     /* malformed */
	cr_assert_eq(eval("PUT", "\"v2\"", NULL, NULL, NULL), F412);

	/* a weak stored ETag never matches If-Match */
	struct strata_cond_stored s = stored();
	struct strata_cond_request r = { .method = "GET",
					 .if_match = "\"v1\"" };

	s.etag = "W/\"v1\"";
	cr_assert_eq(strata_conditional_evaluate(&r, &s), F412);
	s.etag = NULL;
	cr_assert_eq(strata_conditional_evaluate(&r, &s), F412);
	r.if_match = "*";
	cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE);
}

Test(conditional, if_unmodified_since)
{
	cr_assert_eq(eval("GET", NULL, NULL, NULL, LM), NONE);
	cr_assert_eq(eval("GET", NULL, NULL, NULL, AFTER), NONE);
	cr_assert_eq(eval("GET", NULL, NULL, NULL, BEFORE), F412);
	cr_assert_eq(eval("PUT", NULL, NULL, NULL, BEFORE), F412);
	cr_assert_eq(eval("GET", NULL, NULL, NULL, "garbage"), NONE);

	/* no modification date: ignored (Date is not used for it) */
	struct strata_cond_stored s = stored();
	struct strata_cond_request r = { .method = "GET",
					 .if_unmodified_since = BEFORE };

	s.last_modified = NULL;
	cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE);
}

Test(conditional, precedence)
{
	/* If-Match decides; If-Unmodified-Since is then ignored */
	cr_assert_eq(eval("GET", "\"v1\"", NULL, NULL, BEFORE), NONE);
	cr_assert_eq(eval("GET", "\"v2\"", NULL, NULL, AFTER), F412);
	/* a failed If-Match wins over a matching If-None-Match */
	cr_assert_eq(eval("GET", "\"v2\"", "\"v1\"", NULL, NULL), F412);
	/* a passed If-Match goes on to If-None-Match */
	cr_assert_eq(eval("GET", "\"v1\"", "\"v1\"", NULL, NULL), N304);
	/* a failed If-Unmodified-Since wins over If-Modified-Since */
	cr_assert_eq(eval("GET", NULL, NULL, AFTER, BEFORE), F412);
	/* passed, it goes on to If-Modified-Since */
	cr_assert_eq(eval("GET", NULL, NULL, AFTER, AFTER), N304);
	cr_assert_eq(eval("GET", NULL, "\"v1\"", NULL, AFTER), N304);
}

Test(conditional, ignored_for_some_methods_and_statuses)
{
	cr_assert_eq(eval("OPTIONS", "\"v2\"", NULL, NULL, NULL), NONE);
	cr_assert_eq(eval("TRACE", NULL, "*", NULL, NULL), NONE);
	cr_assert_eq(eval("CONNECT", NULL, NULL, NULL, BEFORE), NONE);
	/* method names are case-sensitive: "get" is not GET */
	cr_assert_eq(eval("get", NULL, "\"v1\"", NULL, NULL), F412);

	struct strata_cond_stored s = stored();
	struct strata_cond_request r = { .method = "GET",
					 .if_none_match = "\"v1\"" };

	for (unsigned st = 200; st <= 299; st += 3) {
		s.status = st;
		cr_assert_eq(strata_conditional_evaluate(&r, &s), N304, "%u",
			     st);
	}
	static const unsigned other[] = { 0, 199, 300, 301, 404, 410, 500 };
	r.if_match = "\"nope\"";
	for (size_t i = 0; i < N_OF(other); i++) {
		s.status = other[i];
		cr_assert_eq(strata_conditional_evaluate(&r, &s), NONE, "%u",
			     other[i]);
	}
}

Test(conditional, evaluate_without_method_asserts, .signal = SIGABRT)
{
	struct strata_cond_request r = { 0 };
	struct strata_cond_stored s = stored();

	strata_conditional_evaluate(&r, &s);
}

/* ---- If-Range -------------------------------------------------------------- */

Test(conditional, if_range_entity_tag)
{
	struct strata_cond_stored s = stored();

	cr_assert(strata_conditional_if_range(NULL, &s));
	cr_assert(strata_conditional_if_range("\"v1\"", &s));
	cr_assert(strata_conditional_if_range(" \"v1\" ", &s));
	cr_assert_not(strata_conditional_if_range("\"v2\"", &s));
	cr_assert_not(strata_conditional_if_range("W/\"v1\"", &s)); /* weak */
	cr_assert_not(strata_conditional_if_range("\"v1\", \"v2\"", &s));
	cr_assert_not(strata_conditional_if_range("*", &s));
	cr_assert_not(strata_conditional_if_range("", &s));
	s.etag = "W/\"v1\"";
	cr_assert_not(strata_conditional_if_range("\"v1\"", &s));
	s.etag = NULL;
	cr_assert_not(strata_conditional_if_range("\"v1\"", &s));
}

Test(conditional, if_range_date)
{
	struct strata_cond_stored s = stored();

	/* Date is a day after Last-Modified: strong, exact match only */
	cr_assert(strata_conditional_if_range(LM, &s));
	cr_assert(strata_conditional_if_range("Sunday, 06-Nov-94 08:49:37 GMT",
					      &s));
	cr_assert_not(strata_conditional_if_range(AFTER, &s));
	cr_assert_not(strata_conditional_if_range(BEFORE, &s));
	cr_assert_not(strata_conditional_if_range("garbage", &s));
	/* Date one second after: still strong */
	s.date = AFTER;
	cr_assert(strata_conditional_if_range(LM, &s));
	/* Date equal to Last-Modified, or missing: weak, so false */
	s.date = LM;
	cr_assert_not(strata_conditional_if_range(LM, &s));
	s.date = NULL;
	cr_assert_not(strata_conditional_if_range(LM, &s));
	/* no Last-Modified */
	s.date = DATE;
	s.last_modified = NULL;
	cr_assert_not(strata_conditional_if_range(LM, &s));
}

/* ---- 304 headers ------------------------------------------------------------ */

Test(conditional, headers_kept_in_304)
{
	static const char *const keep[] = {
		"Cache-Control", "Content-Location", "Date", "ETag", "Expires",
		"Vary", "Last-Modified", "etag", "CACHE-CONTROL", "vary",
	};
	static const char *const drop[] = {
		"Content-Type", "Content-Length", "Content-Encoding",
		"Content-Range", "Content-Language", "Set-Cookie",
		"Transfer-Encoding", "X-Custom", "ETag2", "Dat", "",
	};

	for (size_t i = 0; i < N_OF(keep); i++)
		cr_assert(strata_conditional_304_keeps(keep[i]), "%s", keep[i]);
	for (size_t i = 0; i < N_OF(drop); i++)
		cr_assert_not(strata_conditional_304_keeps(drop[i]), "%s",
			      drop[i]);
	cr_assert_not(strata_conditional_304_keeps(NULL));
}
