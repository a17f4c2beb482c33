/*
 * fuzz_entry.c: strata_entry_decode() on any bytes (the disk and Redis
 * tiers feed it whatever they read back), and the invariants of the
 * stored form (docs/entry-format.md):
 *
 *  - decode never reads outside its input and fails with *out NULL;
 *  - an entry that decodes re-encodes to the very bytes it came from
 *    (there is one encoding of an entry), and that encoding decodes to
 *    an equal entry;
 *  - strata_entry_new() from a decoded entry's fields builds the same
 *    entry: same encoding, same charge;
 *  - the accessors agree with the fields.
 *
 * A fuzzer cannot forge an XXH3-128 key hash, so each input is decoded
 * twice: as given, then with its key hash and checksum made right, which
 * takes it past checks 8 and 9 to the copy.  (The library itself skips
 * the checksum check when built with --enable-fuzzing; the harness fixes
 * the checksum too, so it also works against a normal build.)
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "core/http.h"
#include "strata/strata.h"
#include "fuzz.h"

#define FIXED_LEN 70
#define CHECKSUM_LEN 8
#define KEY_HASH_AT 8
#define KEY_LEN_AT 50

/* A wall clock in the range the server passes (2023-11-14). */
#define NOW_MS INT64_C(1700000000000)

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void check_same(const struct strata_entry *a,
		       const struct strata_entry *b)
{
	FUZZ_CHECK(strata_key_equal(&a->key, &b->key));
	FUZZ_CHECK(a->status == b->status);
	FUZZ_CHECK(a->created == b->created);
	FUZZ_CHECK(a->expires == b->expires);
	FUZZ_CHECK(a->keep_until == b->keep_until);
	FUZZ_CHECK(a->key_len == b->key_len);
	FUZZ_CHECK(memcmp(a->key_text, b->key_text, a->key_len) == 0);
	FUZZ_CHECK(strcmp(a->route, b->route) == 0);
	FUZZ_CHECK(a->n_headers == b->n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		FUZZ_CHECK(strcmp(a->headers[i].name, b->headers[i].name) == 0);
		FUZZ_CHECK(strcmp(a->headers[i].value,
				  b->headers[i].value) == 0);
	}
	FUZZ_CHECK(a->n_tags == b->n_tags);
	for (size_t i = 0; i < a->n_tags; i++)
		FUZZ_CHECK(strcmp(a->tags[i], b->tags[i]) == 0);
	FUZZ_CHECK(a->body_len == b->body_len);
	FUZZ_CHECK(a->body_len == 0 ||
		   memcmp(a->body, b->body, a->body_len) == 0);
}

/* What the decoder promises about any entry it returns. */
static void check_fields(const struct strata_entry *e)
{
	struct strata_key text_key;

	FUZZ_CHECK(e->magic == STRATA_ENTRY_MAGIC);
	FUZZ_CHECK(e->status >= 100 && e->status <= 999);
	FUZZ_CHECK(e->keep_until >= e->expires);
	FUZZ_CHECK(e->key_len <= STRATA_ENTRY_MAX_KEY_TEXT);
	FUZZ_CHECK(strlen(e->key_text) == e->key_len);
	FUZZ_CHECK(e->n_headers <= STRATA_ENTRY_MAX_HEADERS);
	FUZZ_CHECK(e->n_tags <= STRATA_ENTRY_MAX_TAGS);
	FUZZ_CHECK(e->body_len <= STRATA_ENTRY_MAX_BODY);
	FUZZ_CHECK(e->charge > e->body_len);
	strata_key_hash(e->key_text, e->key_len, &text_key);
	FUZZ_CHECK(strata_key_equal(&text_key, &e->key));

	/* The first header of each name, ignoring case. */
	for (size_t i = 0; i < e->n_headers; i++) {
		const char *v = strata_entry_header(e, e->headers[i].name);
		size_t first = i;

		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(e->headers[j].name,
				       e->headers[i].name) == 0) {
				first = j;
				break;
			}
		}
		FUZZ_CHECK(v == e->headers[first].value);
	}
	FUZZ_CHECK(strata_entry_ttl_s(e, NOW_MS) >= 0);
	FUZZ_CHECK(strata_entry_age_s(e, NOW_MS) >= 0);
	FUZZ_CHECK(strata_entry_ttl_s(e, e->expires) == 0);
	FUZZ_CHECK(strata_entry_age_s(e, e->created) == 0);
	FUZZ_CHECK(strata_entry_fresh(e, NOW_MS) == (NOW_MS < e->expires));
}

/* strata_entry_new() from the fields of `e` must give `e` again. */
static void check_rebuild(const struct strata_entry *e, const char *enc,
			  size_t enc_len)
{
	struct strata_headers headers = { 0 };
	struct strata_entry *copy = NULL;
	struct strata_entry_params params = {
		.key = NULL,  /* hashed from the text: decode checked it is */
		.key_text = e->key_text,
		.key_len = e->key_len,
		.route = e->route,
		.status = e->status,
		.created = e->created,
		.expires = e->expires,
		.keep_until = e->keep_until,
		.headers = &headers,
		.tags = e->tags,
		.n_tags = e->n_tags,
		.body = e->body,
		.body_len = e->body_len,
	};
	char *buf = NULL;
	size_t len = 0;

	/* keep_until 0 means "same as expires" to strata_entry_new(). */
	if (e->keep_until == 0 && e->expires != 0)
		return;
	for (size_t i = 0; i < e->n_headers; i++)
		FUZZ_CHECK(strata_headers_add(&headers, e->headers[i].name,
					      e->headers[i].value) == 0);
	FUZZ_CHECK(strata_entry_new(&params, &copy) == 0);
	check_same(e, copy);
	FUZZ_CHECK(copy->charge == e->charge);
	FUZZ_CHECK(strata_entry_encode(copy, &buf, &len) == 0);
	FUZZ_CHECK(len == enc_len && memcmp(buf, enc, len) == 0);
	free(buf);
	strata_entry_release(&copy);
	FUZZ_CHECK(copy == NULL);
	strata_headers_clear(&headers);
}

/*
 * `e` was decoded from `in`.  Its encoding is `in` again: byte for byte
 * when `in` carried a right checksum (`exact`), else all but the checksum
 * (a fuzzing build of the library does not check it).
 */
static void check_decoded(struct strata_entry *e, const uint8_t *in,
			  size_t in_len, bool exact)
{
	struct strata_entry *again = NULL;
	char *buf = NULL;
	size_t len = 0;

	check_fields(e);
	FUZZ_CHECK(strata_entry_encode(e, &buf, &len) == 0);
	FUZZ_CHECK(len == in_len);
	FUZZ_CHECK(memcmp(buf, in, len - CHECKSUM_LEN) == 0);
	if (exact)
		FUZZ_CHECK(memcmp(buf, in, len) == 0);
	FUZZ_CHECK(strata_entry_decode(buf, len, &again) == 0);
	check_same(e, again);
	FUZZ_CHECK(again->charge == e->charge);
	strata_entry_release(&again);
	check_rebuild(e, buf, len);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strata_entry *e = NULL;
	uint8_t *fixed;
	uint32_t key_len;
	int rc;

	/* As read from a tier.  The copy has exactly `size` bytes, so a
	 * read past the end is AddressSanitizer's to see. */
	fixed = malloc(size ? size : 1);
	FUZZ_CHECK(fixed != NULL);
	if (size)
		memcpy(fixed, data, size);
	rc = strata_entry_decode(fixed, size, &e);
	FUZZ_CHECK(rc == 0 || rc == STRATA_ECORRUPT || rc == -ENOMEM);
	FUZZ_CHECK((rc == 0) == (e != NULL));
	if (e != NULL) {
		check_decoded(e, fixed, size, false);
		strata_entry_release(&e);
		FUZZ_CHECK(e == NULL);
	}

	/* With the key hash and checksum a writer would have put there. */
	if (size >= FIXED_LEN + CHECKSUM_LEN) {
		key_len = le32(fixed + KEY_LEN_AT);
		if (key_len <= size - FIXED_LEN - CHECKSUM_LEN) {
			struct strata_key key;

			strata_key_hash((const char *)fixed + FIXED_LEN,
					key_len, &key);
			memcpy(fixed + KEY_HASH_AT, key.hash,
			       STRATA_KEY_HASH_LEN);
		}
		put_le64(fixed + size - CHECKSUM_LEN,
			 XXH3_64bits(fixed, size - CHECKSUM_LEN));
		rc = strata_entry_decode(fixed, size, &e);
		FUZZ_CHECK(rc == 0 || rc == STRATA_ECORRUPT || rc == -ENOMEM);
		FUZZ_CHECK((rc == 0) == (e != NULL));
		if (e != NULL) {
			check_decoded(e, fixed, size, true);
			strata_entry_release(&e);
		}
	}
	free(fixed);
	return 0;
}
