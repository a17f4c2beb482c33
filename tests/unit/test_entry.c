/*
 * test_entry.c: building, sharing, accessing, encoding and decoding
 * entries, and every way a stored entry can be corrupt.
 */
#include "config.h"

#include "cache/entry.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
/* Header-only: the test re-checksums on its own, without linking xxHash
 * (the test links libstrata, which keeps xxHash private). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "strata/strata.h"

/* Offsets into an encoded entry (docs/entry-format.md). */
#define OFF_VERSION 4
#define OFF_FLAGS 6
#define OFF_HASH 8
#define OFF_STATUS 24
#define OFF_CREATED 26
#define OFF_EXPIRES 34
#define OFF_KEEP_UNTIL 42
#define OFF_KEY_LEN 50
#define OFF_ROUTE_LEN 54
#define OFF_N_HEADERS 58
#define OFF_N_TAGS 62
#define OFF_BODY_LEN 66
#define FIXED_LEN 70

static const char key_text[] = "GET /api/users/42\naccept-language: en\n";
static const char body[] = "{\"id\":42,\"name\":\"Ada\"}\0binary\xff";
static const char *const tags[] = { "user:42", "users" };

/* A typical entry: two headers (one repeated name), two tags, a body. */
static struct strata_entry *sample(void)
{
	struct strata_headers h = { 0 };
	struct strata_entry *e = NULL;
	struct strata_entry_params p = {
		.key_text = key_text, .key_len = strlen(key_text),
		.route = "users", .status = 200,
		.created = 1700000000000, .expires = 1700000060000,
		.keep_until = 1700000120000, .headers = &h,
		.tags = tags, .n_tags = 2,
		.body = body, .body_len = sizeof(body) - 1,
	};

	cr_assert_eq(strata_headers_add(&h, "Content-Type",
					"application/json"), 0);
	cr_assert_eq(strata_headers_add(&h, "Set-Cookie", "a=1"), 0);
	cr_assert_eq(strata_headers_add(&h, "set-cookie", "b=2"), 0);
	cr_assert_eq(strata_entry_new(&p, &e), 0);
	strata_headers_clear(&h);
	return e;
}

static void encode(const struct strata_entry *e, char **buf, size_t *len)
{
	cr_assert_eq(strata_entry_encode(e, buf, len), 0);
}

/* Encoded bytes of the sample; the caller frees them. */
static char *sample_bytes(size_t *len)
{
	struct strata_entry *e = sample();
	char *buf;

	encode(e, &buf, len);
	strata_entry_release(&e);
	return buf;
}

static void put_le(char *buf, size_t off, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[off + i] = (char)(uint8_t)(v >> (8 * i));
}

/* Recompute the checksum, so only the check under test can object. */
static void rechecksum(char *buf, size_t len)
{
	put_le(buf, len - 8, XXH3_64bits(buf, len - 8), 8);
}

static void expect_corrupt(const char *buf, size_t len, const char *why)
{
	struct strata_entry *e = (struct strata_entry *)1;

	cr_expect_eq(strata_entry_decode(buf, len, &e), STRATA_ECORRUPT, "%s",
		     why);
	cr_expect_null(e, "%s: *out is NULL", why);
	strata_entry_release(&e);
}

/* --- building and references ---------------------------------------------- */

Test(entry, new_fills_every_field)
{
	struct strata_entry *e = sample();
	struct strata_key k;

	strata_key_hash(key_text, strlen(key_text), &k);
	cr_expect(strata_key_equal(&e->key, &k), "key hashed from the text");
	cr_expect_eq(e->status, 200);
	cr_expect_eq(e->created, 1700000000000);
	cr_expect_eq(e->expires, 1700000060000);
	cr_expect_eq(e->keep_until, 1700000120000);
	cr_expect_str_eq(e->key_text, key_text);
	cr_expect_eq(e->key_len, strlen(key_text));
	cr_expect_str_eq(e->route, "users");
	cr_assert_eq(e->n_headers, 3);
	cr_expect_str_eq(e->headers[2].name, "set-cookie");
	cr_expect_str_eq(e->headers[2].value, "b=2");
	cr_assert_eq(e->n_tags, 2);
	cr_expect_str_eq(e->tags[1], "users");
	cr_assert_eq(e->body_len, sizeof(body) - 1);
	cr_expect_eq(memcmp(e->body, body, e->body_len), 0);
	strata_entry_release(&e);
	cr_expect_null(e);
}

Test(entry, one_allocation_and_charge)
{
	struct strata_entry *e = sample();
	const char *lo = (const char *)e;
	const char *hi = lo + e->charge - STRATA_ENTRY_INDEX_OVERHEAD;
	size_t header_bytes = 0;

	/* Every part lies inside the one block [e, e + allocation). */
	cr_expect(e->key_text > lo && e->key_text + e->key_len < hi);
	cr_expect(e->route > lo && e->route < hi);
	cr_expect((const char *)e->headers > lo &&
		  (const char *)(e->headers + e->n_headers) <= hi);
	for (size_t i = 0; i < e->n_headers; i++) {
		cr_expect(e->headers[i].name > lo && e->headers[i].name < hi);
		cr_expect(e->headers[i].value > lo && e->headers[i].value < hi);
		header_bytes += strlen(e->headers[i].name) +
				strlen(e->headers[i].value);
	}
	for (size_t i = 0; i < e->n_tags; i++)
		cr_expect(e->tags[i] > lo && e->tags[i] < hi);
	cr_expect(e->body > lo && e->body + e->body_len == hi,
		  "the body ends the block");
	cr_expect_geq(e->charge, sizeof(*e) + e->body_len + header_bytes +
				 e->key_len + STRATA_ENTRY_INDEX_OVERHEAD);
	strata_entry_release(&e);
}

Test(entry, refcount)
{
	struct strata_entry *e = sample();
	struct strata_entry *second = strata_entry_ref(e);
	struct strata_entry *none = NULL;

	cr_expect_eq(second, e);
	strata_entry_release(&e);
	cr_expect_null(e);
	/* Still alive through the second reference (ASan would object). */
	cr_expect_str_eq(second->route, "users");
	strata_entry_release(&second);
	cr_expect_null(second);
	strata_entry_release(&none);
	strata_entry_release(NULL);
}

Test(entry, release_bad_magic_asserts, .signal = SIGABRT)
{
	struct strata_entry *e = sample();
	struct strata_entry *alias = e;

	e->magic = 0xdeadbeef;
	strata_entry_release(&alias);
}

Test(entry, ref_bad_magic_asserts, .signal = SIGABRT)
{
	struct strata_entry *e = sample();

	e->magic = 0;
	strata_entry_ref(e);
}

Test(entry, minimal_entry)
{
	struct strata_entry_params p = {
		.key_text = "GET /\n", .key_len = 6, .status = 204,
		.expires = 10,
	};
	struct strata_entry *e = NULL;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	cr_expect_str_eq(e->route, "", "NULL route is empty");
	cr_expect_eq(e->n_headers, 0);
	cr_expect_eq(e->n_tags, 0);
	cr_expect_eq(e->body_len, 0);
	cr_expect_eq(e->keep_until, 10, "keep_until 0 means expires");
	strata_entry_release(&e);
}

Test(entry, new_rejects_bad_params)
{
	struct strata_entry_params good = {
		.key_text = "GET /\n", .key_len = 6, .status = 200,
		.expires = 100,
	};
	struct strata_entry_params p;
	struct strata_entry *e = (struct strata_entry *)1;
	struct strata_headers many = { 0 };
	const char *null_tag[] = { NULL };

	cr_expect_eq(strata_entry_new(NULL, &e), -EINVAL);
	cr_expect_null(e);
	p = good;
	p.keep_until = 99;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "keep_until<expires");
	p = good;
	p.key_text = "GET\0/\n";
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "NUL in key text");
	p = good;
	p.key_text = NULL;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL);
	p = good;
	p.key_len = STRATA_ENTRY_MAX_KEY_TEXT + 1;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "key too long");
	p = good;
	p.status = 99;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL);
	p.status = 1000;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL);
	p = good;
	p.n_tags = STRATA_ENTRY_MAX_TAGS + 1;
	p.tags = tags;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "too many tags");
	p.n_tags = 1;
	p.tags = null_tag;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "NULL tag");
	p = good;
	p.body_len = STRATA_ENTRY_MAX_BODY + 1u;
	p.body = body;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "body too big");
	p.body_len = 1;
	p.body = NULL;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "NULL body");
	for (int i = 0; i <= STRATA_ENTRY_MAX_HEADERS; i++)
		cr_assert_eq(strata_headers_add(&many, "X", "y"), 0);
	p = good;
	p.headers = &many;
	cr_expect_eq(strata_entry_new(&p, &e), -EINVAL, "too many headers");
	strata_headers_clear(&many);
	cr_expect_null(e);
}

/* A pass-through answer carries a placeholder key: built and served, but
 * its bytes never decode, so no tier could bring it back. */
Test(entry, placeholder_key_is_kept_but_not_decodable)
{
	struct strata_key none = { { 0 } };
	struct strata_entry_params p = {
		.key = &none, .key_text = "/a?b", .key_len = 4, .status = 777,
		.expires = 100,
	};
	struct strata_entry *e = NULL;
	char *buf;
	size_t len;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	cr_expect(strata_key_equal(&e->key, &none));
	cr_expect_eq(e->status, 777, "three digits pass through");
	encode(e, &buf, &len);
	expect_corrupt(buf, len, "placeholder key");
	free(buf);
	strata_entry_release(&e);
}

/* --- accessors ------------------------------------------------------------ */

Test(entry, ttl_and_age)
{
	struct strata_entry *e = sample();   /* created T, expires T+60s */
	int64_t t = 1700000000000;

	cr_expect_eq(strata_entry_ttl_s(e, t), 60);
	cr_expect_eq(strata_entry_ttl_s(e, t + 500), 59, "rounded down");
	cr_expect_eq(strata_entry_ttl_s(e, t + 59999), 0);
	cr_expect(strata_entry_fresh(e, t + 59999));
	cr_expect_not(strata_entry_fresh(e, t + 60000));
	cr_expect_eq(strata_entry_ttl_s(e, t + 60000), 0);
	cr_expect_eq(strata_entry_ttl_s(e, t + 999999), 0, "stale: 0");
	cr_expect_eq(strata_entry_age_s(e, t), 0);
	cr_expect_eq(strata_entry_age_s(e, t + 1999), 1);
	cr_expect_eq(strata_entry_age_s(e, t + 60000), 60);
	cr_expect_eq(strata_entry_age_s(e, t - 5000), 0, "never negative");
	cr_expect_eq(strata_entry_age_s(e, INT64_MIN), 0);
	strata_entry_release(&e);
}

Test(entry, header_lookup_ignores_case)
{
	struct strata_entry *e = sample();

	cr_expect_str_eq(strata_entry_header(e, "content-type"),
			 "application/json");
	cr_expect_str_eq(strata_entry_header(e, "CONTENT-TYPE"),
			 "application/json");
	cr_expect_str_eq(strata_entry_header(e, "Set-Cookie"), "a=1",
			 "the first of repeated headers");
	cr_expect_null(strata_entry_header(e, "Content-Length"));
	cr_expect_null(strata_entry_header(e, "Content-Typ"));
	strata_entry_release(&e);
}

/* --- encoding round trip -------------------------------------------------- */

static void expect_same(const struct strata_entry *a,
			const struct strata_entry *b)
{
	cr_expect(strata_key_equal(&a->key, &b->key));
	cr_expect_eq(a->status, b->status);
	cr_expect_eq(a->created, b->created);
	cr_expect_eq(a->expires, b->expires);
	cr_expect_eq(a->keep_until, b->keep_until);
	cr_expect_eq(a->key_len, b->key_len);
	cr_expect_eq(memcmp(a->key_text, b->key_text, a->key_len + 1), 0);
	cr_expect_str_eq(a->route, b->route);
	cr_assert_eq(a->n_headers, b->n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		cr_expect_str_eq(a->headers[i].name, b->headers[i].name);
		cr_expect_str_eq(a->headers[i].value, b->headers[i].value);
	}
	cr_assert_eq(a->n_tags, b->n_tags);
	for (size_t i = 0; i < a->n_tags; i++)
		cr_expect_str_eq(a->tags[i], b->tags[i]);
	cr_assert_eq(a->body_len, b->body_len);
	cr_expect_eq(memcmp(a->body, b->body, a->body_len), 0);
	cr_expect_eq(a->charge, b->charge);
}

Test(entry, round_trip_field_by_field)
{
	struct strata_entry *e = sample(), *d = NULL;
	char *buf, *again;
	size_t len, again_len;

	encode(e, &buf, &len);
	cr_expect_eq(memcmp(buf, "STRE", 4), 0);
	cr_assert_eq(strata_entry_decode(buf, len, &d), 0);
	expect_same(e, d);
	/* Decoded entries are independent of the input buffer. */
	memset(buf, 0, len);
	cr_expect_str_eq(d->route, "users");
	encode(d, &again, &again_len);
	cr_expect_eq(again_len, len);
	free(buf);
	encode(e, &buf, &len);
	cr_expect_eq(memcmp(buf, again, len), 0, "encoding is deterministic");
	free(again);
	free(buf);
	strata_entry_release(&d);
	strata_entry_release(&e);
}

Test(entry, round_trip_minimal_and_extremes)
{
	struct strata_entry_params p = {
		.key_text = "GET /\n", .key_len = 6, .status = 999,
		.created = INT64_MIN, .expires = -1, .keep_until = INT64_MAX,
	};
	struct strata_entry *e = NULL, *d = NULL;
	char *buf;
	size_t len;

	cr_assert_eq(strata_entry_new(&p, &e), 0);
	encode(e, &buf, &len);
	cr_expect_eq(len, FIXED_LEN + 6 + 8);
	cr_assert_eq(strata_entry_decode(buf, len, &d), 0);
	expect_same(e, d);
	cr_expect_eq(strata_entry_age_s(d, 0), INT64_MAX / 1000,
		     "saturates instead of overflowing");
	free(buf);
	strata_entry_release(&d);
	strata_entry_release(&e);
}

Test(entry, layout_matches_the_document)
{
	size_t len;
	char *buf = sample_bytes(&len);
	struct strata_entry *e = sample();

	cr_expect_eq(buf[OFF_VERSION], 1);
	cr_expect_eq(buf[OFF_VERSION + 1], 0);
	cr_expect_eq(buf[OFF_FLAGS], 0);
	cr_expect_eq(memcmp(buf + OFF_HASH, e->key.hash, 16), 0);
	cr_expect_eq((uint8_t)buf[OFF_STATUS], 200);
	cr_expect_eq((uint8_t)buf[OFF_KEY_LEN], strlen(key_text));
	cr_expect_eq((uint8_t)buf[OFF_ROUTE_LEN], 5);
	cr_expect_eq((uint8_t)buf[OFF_N_HEADERS], 3);
	cr_expect_eq((uint8_t)buf[OFF_N_TAGS], 2);
	cr_expect_eq((uint8_t)buf[OFF_BODY_LEN], sizeof(body) - 1);
	cr_expect_eq(memcmp(buf + FIXED_LEN, key_text, strlen(key_text)), 0);
	cr_expect_eq(memcmp(buf + len - 8 - (sizeof(body) - 1), body,
			    sizeof(body) - 1), 0, "body just before checksum");
	free(buf);
	strata_entry_release(&e);
}

/* --- corrupt input -------------------------------------------------------- */

Test(entry, every_truncation_rejected)
{
	size_t len;
	char *buf = sample_bytes(&len);

	for (size_t cut = 0; cut < len; cut++) {
		/* A copy of exactly `cut` bytes, so ASan sees any overread. */
		char *part = malloc(cut ? cut : 1);

		memcpy(part, buf, cut);
		expect_corrupt(part, cut, "truncated");
		free(part);
	}
	expect_corrupt(NULL, 0, "NULL");
	free(buf);
}

Test(entry, every_byte_flip_rejected)
{
	size_t len;
	char *buf = sample_bytes(&len);

	static const uint8_t masks[] = { 0x01, 0x80, 0xff };

	for (size_t i = 0; i < len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			buf[i] ^= (char)masks[m];
			expect_corrupt(buf, len, "flipped");
			buf[i] ^= (char)masks[m];
		}
	}
	free(buf);
}

Test(entry, bad_magic)
{
	size_t len;
	char *buf = sample_bytes(&len);

	buf[0] = 'X';
	rechecksum(buf, len);
	expect_corrupt(buf, len, "magic");
	free(buf);
}

Test(entry, bad_version_and_flags)
{
	size_t len;
	char *buf = sample_bytes(&len);
	uint16_t versions[] = { 0, 2, 0x100, 0xffff };

	for (size_t i = 0; i < 4; i++) {
		put_le(buf, OFF_VERSION, versions[i], 2);
		rechecksum(buf, len);
		expect_corrupt(buf, len, "version");
	}
	put_le(buf, OFF_VERSION, 1, 2);
	put_le(buf, OFF_FLAGS, 1, 2);
	rechecksum(buf, len);
	expect_corrupt(buf, len, "unknown flag");
	put_le(buf, OFF_FLAGS, 0, 2);
	rechecksum(buf, len);
	{
		struct strata_entry *e = NULL;

		cr_expect_eq(strata_entry_decode(buf, len, &e), 0,
			     "restored: valid again");
		strata_entry_release(&e);
	}
	free(buf);
}

Test(entry, huge_lengths)
{
	static const size_t offs[] = {
		OFF_KEY_LEN, OFF_ROUTE_LEN, OFF_N_HEADERS, OFF_N_TAGS,
		OFF_BODY_LEN,
	};
	static const uint32_t values[] = {
		0xffffffffu, 0x80000000u, STRATA_ENTRY_MAX_KEY_TEXT + 1,
		STRATA_ENTRY_MAX_HEADERS + 1, 1000,
	};
	size_t len;
	char *buf = sample_bytes(&len);

	for (size_t i = 0; i < sizeof(offs) / sizeof(*offs); i++) {
		char *copy = malloc(len);

		for (size_t j = 0; j < sizeof(values) / sizeof(*values); j++) {
			memcpy(copy, buf, len);
			put_le(copy, offs[i], values[j], 4);
			rechecksum(copy, len);
			expect_corrupt(copy, len, "huge length");
		}
		free(copy);
	}
	free(buf);
}

Test(entry, header_length_past_end)
{
	size_t len;
	char *buf = sample_bytes(&len);
	size_t first_header = FIXED_LEN + strlen(key_text) + strlen("users");

	put_le(buf, first_header, 0xfffffff0u, 4);
	rechecksum(buf, len);
	expect_corrupt(buf, len, "header name length");
	free(buf);
}

Test(entry, trailing_garbage)
{
	size_t len;
	char *buf = sample_bytes(&len);
	char *longer = malloc(len + 3);

	memcpy(longer, buf, len);
	memcpy(longer + len, "xyz", 3);
	expect_corrupt(longer, len + 3, "trailing bytes");
	rechecksum(longer, len + 3);
	expect_corrupt(longer, len + 3, "trailing bytes, rechecksummed");
	free(longer);
	free(buf);
}

Test(entry, keep_until_before_expires)
{
	size_t len;
	char *buf = sample_bytes(&len);

	put_le(buf, OFF_KEEP_UNTIL, 1700000059999, 8);
	rechecksum(buf, len);
	expect_corrupt(buf, len, "keep_until < expires");
	free(buf);
}

Test(entry, status_out_of_range)
{
	size_t len;
	char *buf = sample_bytes(&len);

	put_le(buf, OFF_STATUS, 1000, 2);
	rechecksum(buf, len);
	expect_corrupt(buf, len, "status 1000");
	put_le(buf, OFF_STATUS, 99, 2);
	rechecksum(buf, len);
	expect_corrupt(buf, len, "status 99");
	free(buf);
}

Test(entry, hash_text_mismatch)
{
	size_t len;
	char *buf = sample_bytes(&len);

	/* Same length, valid bytes, checksum right: only the hash differs. */
	buf[FIXED_LEN + 4] = 'X';   /* "GET /api" -> "GET Xapi" */
	rechecksum(buf, len);
	expect_corrupt(buf, len, "key text changed");
	buf[FIXED_LEN + 4] = '/';
	buf[OFF_HASH] ^= 1;
	rechecksum(buf, len);
	expect_corrupt(buf, len, "hash changed");
	free(buf);
}

Test(entry, nul_inside_string)
{
	size_t len;
	char *buf = sample_bytes(&len);
	size_t route = FIXED_LEN + strlen(key_text);

	buf[route + 2] = '\0';   /* "users" -> "us\0rs" */
	rechecksum(buf, len);
	expect_corrupt(buf, len, "NUL in route");
	free(buf);
}
