/*
 * fuzz_cache_control.c: Cache-Control and Age parsing and the freshness
 * rules built on them (cache/freshness.h), with the fixed-TTL routes'
 * storability check (strata_policy_storable(), cache/policy.h) alongside.
 *
 * Input, as lines: a flags byte, then a response Cache-Control, a request
 * Cache-Control, and the response's Date, Expires, Last-Modified and Age
 * values (a missing line is an absent field).
 *
 * Invariants:
 *  - the parsers never fail: a delta directive that is SET holds 0..2^31
 *    (max-stale may be unbounded), one that is not SET holds 0;
 *  - directive names ignore case: the value upper-cased (outside nothing:
 *    arguments are digits or ignored) parses the same;
 *  - empty list elements are skipped: the value followed by ", " parses
 *    the same;
 *  - the fixed-TTL storability check (strata_policy_storable) refuses
 *    exactly what the parser reads as no-store or private, malformed
 *    values included, so a route with a fixed TTL never stores what a
 *    route with `ttl: origin` would refuse for those;
 *  - Age: 0..2^31 when it parses;
 *  - lifetime and ages are never negative; the serve verdict is one of
 *    the five; FRESH means time to live is left; the verdict's
 *    usable_on_error is strata_freshness_usable_on_error() at that instant;
 *    storable() answers one of its verdicts, each with a name and reason.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/freshness.h"
#include "cache/policy.h"
#include "core/http.h"
#include "fuzz.h"

/* 2023-11-14T22:13:20Z, when the response arrived. */
#define NOW_MS INT64_C(1700000000000)

static const unsigned statuses[] = {
	200, 203, 204, 206, 300, 301, 302, 304, 307, 308, 404, 405, 410,
	414, 500, 501, 502, 503, 100, 999,
};

static void check_delta(const struct strata_cc_delta *d, bool unbounded_ok)
{
	switch (d->state) {
	case STRATA_CC_ABSENT:
	case STRATA_CC_INVALID:
		FUZZ_CHECK(d->seconds == 0);
		break;
	case STRATA_CC_SET:
		FUZZ_CHECK((d->seconds >= 0 &&
			    d->seconds <= STRATA_DELTA_SECONDS_MAX) ||
			   (unbounded_ok && d->seconds == STRATA_CC_UNBOUNDED));
		break;
	default:
		FUZZ_CHECK(!"a delta state is ABSENT, SET or INVALID");
	}
}

static bool delta_eq(const struct strata_cc_delta *a,
		     const struct strata_cc_delta *b)
{
	return a->state == b->state && a->seconds == b->seconds;
}

static bool response_eq(const struct strata_cc_response *a,
			const struct strata_cc_response *b)
{
	return delta_eq(&a->max_age, &b->max_age) &&
	       delta_eq(&a->s_maxage, &b->s_maxage) &&
	       delta_eq(&a->stale_while_revalidate,
			&b->stale_while_revalidate) &&
	       delta_eq(&a->stale_if_error, &b->stale_if_error) &&
	       a->no_cache == b->no_cache &&
	       a->no_cache_qualified == b->no_cache_qualified &&
	       a->no_store == b->no_store && a->private == b->private &&
	       a->private_qualified == b->private_qualified &&
	       a->public == b->public &&
	       a->must_revalidate == b->must_revalidate &&
	       a->proxy_revalidate == b->proxy_revalidate &&
	       a->must_understand == b->must_understand &&
	       a->no_transform == b->no_transform &&
	       a->immutable == b->immutable && a->malformed == b->malformed;
}

static bool request_eq(const struct strata_cc_request *a,
		       const struct strata_cc_request *b)
{
	return delta_eq(&a->max_age, &b->max_age) &&
	       delta_eq(&a->max_stale, &b->max_stale) &&
	       delta_eq(&a->min_fresh, &b->min_fresh) &&
	       delta_eq(&a->stale_if_error, &b->stale_if_error) &&
	       a->no_cache == b->no_cache && a->no_store == b->no_store &&
	       a->only_if_cached == b->only_if_cached &&
	       a->no_transform == b->no_transform &&
	       a->malformed == b->malformed;
}

static char *upper(const char *s)
{
	char *u = fuzz_strndup(s, strlen(s));

	for (char *p = u; *p; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	}
	return u;
}

static char *with_comma(const char *s)
{
	size_t n = strlen(s);
	char *c = malloc(n + 3);

	FUZZ_CHECK(c != NULL);
	memcpy(c, s, n);
	memcpy(c + n, ", ", 3);
	return c;
}

/* The fixed-TTL routes' verdict on a 200 with this Cache-Control. */
static void check_policy(const char *value,
			 const struct strata_cc_response *cc)
{
	struct strata_headers h = {0};
	enum strata_store_verdict v;

	if (value == NULL || strata_headers_add(&h, "Cache-Control", value) != 0)
		return;
	v = strata_policy_storable(200, &h, false, false);
	strata_headers_clear(&h);
	FUZZ_CHECK(v == (cc->no_store  ? STRATA_STORE_NO_STORE
			 : cc->private ? STRATA_STORE_PRIVATE
				       : STRATA_STORE_OK));
}

static void check_response_cc(const char *value, struct strata_cc_response *cc)
{
	struct strata_cc_response other;
	char *v;

	strata_cc_parse_response(value, cc);
	check_delta(&cc->max_age, false);
	check_delta(&cc->s_maxage, false);
	check_delta(&cc->stale_while_revalidate, false);
	check_delta(&cc->stale_if_error, false);
	FUZZ_CHECK(!cc->no_cache_qualified || cc->no_cache);
	FUZZ_CHECK(!cc->private_qualified || cc->private);

	v = upper(value);
	strata_cc_parse_response(v, &other);
	FUZZ_CHECK(response_eq(cc, &other));
	free(v);
	v = with_comma(value);
	strata_cc_parse_response(v, &other);
	FUZZ_CHECK(response_eq(cc, &other));
	free(v);

	check_policy(value, cc);
}

static void check_request_cc(const char *value, struct strata_cc_request *cc)
{
	struct strata_cc_request other;
	char *v;

	strata_cc_parse_request(value, cc);
	check_delta(&cc->max_age, false);
	check_delta(&cc->max_stale, true);
	check_delta(&cc->min_fresh, false);
	check_delta(&cc->stale_if_error, false);

	v = upper(value);
	strata_cc_parse_request(v, &other);
	FUZZ_CHECK(request_eq(cc, &other));
	free(v);
	v = with_comma(value);
	strata_cc_parse_request(v, &other);
	FUZZ_CHECK(request_eq(cc, &other));
	free(v);
}

/* The next line, or NULL (an absent field) when the input is spent. */
static char *field(struct fuzz_input *in)
{
	return in->left > 0 ? fuzz_take_until(in, '\n') : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t flags = fuzz_take_byte(&in);
	char *resp_value = fuzz_take_until(&in, '\n');
	char *req_value = fuzz_take_until(&in, '\n');
	char *date = field(&in), *expires = field(&in);
	char *last_modified = field(&in), *age = field(&in);
	struct strata_cc_response rcc;
	struct strata_cc_request qcc;
	struct strata_freshness_route route = STRATA_FRESHNESS_ROUTE_DEFAULTS;
	struct strata_freshness_response resp;
	struct strata_freshness f;
	struct strata_lifetime life;
	struct strata_freshness_store store;
	enum strata_storable storable;
	int64_t age_s, initial;

	check_response_cc(resp_value, &rcc);
	check_request_cc(req_value, &qcc);

	if (age != NULL && strata_http_age_parse(age, &age_s) == 0)
		FUZZ_CHECK(age_s >= 0 && age_s <= STRATA_DELTA_SECONDS_MAX);

	/* The route's part, from the flags. */
	if (flags & 0x01)
		route.default_ttl_ms = 30000;
	if (flags & 0x02)
		route.heuristic_cap_ms = 0;
	if (flags & 0x04)
		route.stale_while_revalidate_ms = 10000;
	if (flags & 0x08)
		route.stale_if_error_ms = 3600000;

	resp = (struct strata_freshness_response){
		.status = statuses[(flags >> 4) % (sizeof(statuses) /
						    sizeof(statuses[0]))],
		.cc = &rcc,
		.date = date,
		.expires = expires,
		.last_modified = last_modified,
		.age = age,
		.request_time_ms = NOW_MS - 150,
		.response_time_ms = NOW_MS,
	};
	strata_freshness_lifetime(&resp, &route, &life);
	FUZZ_CHECK(life.ms >= 0);
	FUZZ_CHECK(strata_lifetime_source_name(life.source) != NULL);
	initial = strata_freshness_initial_age(age, date, resp.request_time_ms,
					       resp.response_time_ms);
	FUZZ_CHECK(initial >= 0);
	strata_freshness_compute(&resp, &route, &f);
	FUZZ_CHECK(f.lifetime_ms == life.ms && f.source == life.source);
	FUZZ_CHECK(f.initial_age_ms == initial);
	FUZZ_CHECK(f.stale_while_revalidate_ms >= -1);
	FUZZ_CHECK(f.stale_if_error_ms >= -1);
	(void)strata_freshness_stale_at(&f);

	/* Judged at a few instants, with and without the request's say. */
	static const int64_t later[] = {
		0, 1, 999, 1000, 59000, 60000, 3600000, 86400000,
		INT64_C(31536000000), -1000,
	};
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		int64_t now = NOW_MS + later[i];

		for (int with_req = 0; with_req < 2; with_req++) {
			const struct strata_cc_request *req =
				with_req ? &qcc : NULL;
			struct strata_serve s;
			const char *reason = NULL;

			strata_freshness_serve(&f, req, now, &s);
			FUZZ_CHECK(s.verdict >= STRATA_SERVE_FRESH &&
				   s.verdict <= STRATA_SERVE_GATEWAY_TIMEOUT);
			FUZZ_CHECK(s.reason != NULL);
			FUZZ_CHECK(strata_serve_verdict_name(s.verdict) != NULL);
			FUZZ_CHECK(s.current_age_ms >= 0);
			if (s.verdict == STRATA_SERVE_FRESH)
				FUZZ_CHECK(s.ttl_ms > 0);
			FUZZ_CHECK(s.usable_on_error ==
				   strata_freshness_usable_on_error(&f, req, now,
								    &reason));
			FUZZ_CHECK(reason != NULL);
			/* A response no-cache is never served unvalidated. */
			if (f.no_cache)
				FUZZ_CHECK(s.verdict ==
						   STRATA_SERVE_REVALIDATE ||
					   s.verdict ==
						   STRATA_SERVE_GATEWAY_TIMEOUT);
		}
	}

	store = (struct strata_freshness_store){
		.method = (flags & 0x40) ? "POST" : "GET",
		.route_lists_method = (flags & 0x80) != 0,
		.status = resp.status,
		.cc = &rcc,
		.request_cc = (flags & 0x20) ? &qcc : NULL,
		.has_expires = expires != NULL,
		.request_has_authorization = (flags & 0x10) != 0,
		.has_set_cookie = (flags & 0x08) != 0,
		.force = (flags & 0x04) != 0,
	};
	storable = strata_freshness_storable(&store);
	FUZZ_CHECK(storable >= STRATA_STORABLE_OK &&
		   storable <= STRATA_UNSTORABLE_NOT_CACHEABLE);
	FUZZ_CHECK(strata_freshness_storable_name(storable) != NULL);
	FUZZ_CHECK(strata_freshness_storable_reason(storable) != NULL);
	/* force never overrides the client's no-store. */
	if (store.request_cc != NULL && qcc.no_store)
		FUZZ_CHECK(storable != STRATA_STORABLE_OK);

	free(resp_value);
	free(req_value);
	free(date);
	free(expires);
	free(last_modified);
	free(age);
	return 0;
}
