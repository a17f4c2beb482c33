/*
 * entry.c: building, sharing and (de)serializing cached responses; see
 * entry.h, and docs/entry-format.md for the byte layout.
 *
 * Memory: an entry is one malloc'd block, laid out as
 *
 *   struct strata_entry | header array | tag pointer array |
 *   strings (key text, route, header names and values, tags; each
 *   NUL-terminated) | body
 *
 * Both ways in -- strata_entry_new() from a response and
 * strata_entry_decode() from a tier's bytes -- first measure (a `shape`:
 * counts and string bytes), then allocate once, then copy through a
 * `filler` that hands out the block's slots in order.  Decoding walks the
 * input twice with the same bounds-checked reader: the first walk measures
 * and validates without allocating, the second copies.
 *
 * Concurrency: an entry is immutable once published, so readers need no
 * lock.  The only shared mutable fields are `hits` (a relaxed statistic)
 * and `refcnt`: increments are relaxed
 * (the caller already holds a reference, so the entry cannot vanish and
 * nothing is published by the increment); decrements are acq_rel so every
 * holder's reads happen before the last holder's free().
 */
#include "config.h"

#include "cache/entry.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "core/log.h"
#include "strata/strata.h"

/* --- the block ------------------------------------------------------------ */

/* The arrays follow the struct and each other without padding. */
static_assert(sizeof(struct strata_entry) % _Alignof(struct strata_header) ==
		      0, "header array alignment");
static_assert(sizeof(struct strata_header) % _Alignof(const char *) == 0,
	      "tag array alignment");

/* What one entry's block must hold. */
struct shape {
	size_t n_headers;
	size_t n_tags;
	size_t strings;     /* string bytes, NULs included */
	size_t body_len;
};

/* Hands out the slots of a freshly allocated block, in layout order. */
struct filler {
	struct strata_entry *e;
	struct strata_header *headers;
	const char **tags;
	char *next;         /* next free string byte */
	char *body;
};

static bool add_size(size_t *total, size_t n)
{
	return !__builtin_add_overflow(*total, n, total);
}

/* Allocate a block for `sh`: magic set, one reference, slots assigned. */
static int entry_alloc(const struct shape *sh, struct filler *fill)
{
	struct strata_entry *e;
	size_t size = sizeof(*e);

	/* The counts are within the entry.h limits: no product overflows. */
	if (!add_size(&size, sh->n_headers * sizeof(struct strata_header)) ||
	    !add_size(&size, sh->n_tags * sizeof(const char *)) ||
	    !add_size(&size, sh->strings) || !add_size(&size, sh->body_len))
		return -ENOMEM;
	e = malloc(size);
	if (!e)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->magic = STRATA_ENTRY_MAGIC;
	atomic_init(&e->refcnt, 1);
	atomic_init(&e->hits, 0);
	e->charge = size + STRATA_ENTRY_INDEX_OVERHEAD;
	fill->e = e;
	fill->headers = (struct strata_header *)(void *)(e + 1);
	fill->tags = (const char **)(void *)(fill->headers + sh->n_headers);
	fill->next = (char *)(fill->tags + sh->n_tags);
	fill->body = fill->next + sh->strings;
	e->headers = sh->n_headers ? fill->headers : NULL;
	e->n_headers = sh->n_headers;
	e->tags = sh->n_tags ? fill->tags : NULL;
	e->n_tags = sh->n_tags;
	e->body = fill->body;
	e->body_len = sh->body_len;
	return 0;
}

/* Copy `len` bytes into the string area, NUL-terminated. */
static char *fill_string(struct filler *fill, const char *s, size_t len)
{
	char *copy = fill->next;

	memcpy(copy, s, len);
	copy[len] = '\0';
	fill->next += len + 1;
	return copy;
}

static void free_entry(struct strata_entry *e)
{
	e->magic = 0;  /* a stale pointer now fails every magic check */
	free(e);
}

/* --- references ----------------------------------------------------------- */

struct strata_entry *strata_entry_ref(struct strata_entry *e)
{
	STRATA_ASSERT(e && e->magic == STRATA_ENTRY_MAGIC);
	/* Relaxed: the caller's reference keeps e alive; nothing to publish. */
	atomic_fetch_add_explicit(&e->refcnt, 1, memory_order_relaxed);
	return e;
}

void strata_entry_release(struct strata_entry **e)
{
	struct strata_entry *entry;

	if (!e || !*e)
		return;
	entry = *e;
	*e = NULL;
	STRATA_ASSERT(entry->magic == STRATA_ENTRY_MAGIC);
	/*
	 * Acq_rel: the release half orders this holder's reads of the entry
	 * before the decrement; the acquire half, on the thread that drops
	 * the last reference, pairs with every other holder's release so
	 * their reads happen before the free.
	 */
	if (atomic_fetch_sub_explicit(&entry->refcnt, 1,
				      memory_order_acq_rel) == 1)
		free_entry(entry);
}

/* --- building from a response --------------------------------------------- */

/*
 * Three digits, as HTTP status codes are written.  600-999 are invalid
 * HTTP but some upstreams send them; a proxy passes them on, and the
 * storability policy, not this module, decides what is cached.
 */
static bool status_ok(uint64_t status)
{
	return status >= 100 && status <= 999;
}

static int params_check(const struct strata_entry_params *p)
{
	int64_t keep_until = p->keep_until ? p->keep_until : p->expires;

	if (!p->key_text || p->key_len > STRATA_ENTRY_MAX_KEY_TEXT ||
	    memchr(p->key_text, '\0', p->key_len))
		return -EINVAL;
	if (!status_ok(p->status) || keep_until < p->expires)
		return -EINVAL;
	if (p->headers && p->headers->n > STRATA_ENTRY_MAX_HEADERS)
		return -EINVAL;
	if (p->n_tags > STRATA_ENTRY_MAX_TAGS || (p->n_tags && !p->tags))
		return -EINVAL;
	if (p->body_len > STRATA_ENTRY_MAX_BODY || (p->body_len && !p->body))
		return -EINVAL;
	return 0;
}

/* Count one string of the params; the encoding stores 32-bit lengths. */
static int shape_string(struct shape *sh, const char *s)
{
	size_t len;

	if (!s)
		return -EINVAL;
	len = strlen(s);
	if (len > UINT32_MAX || !add_size(&sh->strings, len + 1))
		return -EINVAL;
	return 0;
}

static int params_shape(const struct strata_entry_params *p,
			struct shape *sh)
{
	size_t n_headers = p->headers ? p->headers->n : 0;
	int rc;

	*sh = (struct shape){
		.n_headers = n_headers, .n_tags = p->n_tags,
		.strings = p->key_len + 1, .body_len = p->body_len,
	};
	rc = shape_string(sh, p->route ? p->route : "");
	for (size_t i = 0; rc == 0 && i < n_headers; i++) {
		rc = shape_string(sh, p->headers->v[i].name);
		if (rc == 0)
			rc = shape_string(sh, p->headers->v[i].value);
	}
	for (size_t i = 0; rc == 0 && i < p->n_tags; i++)
		rc = shape_string(sh, p->tags[i]);
	return rc;
}

static void fill_from_params(struct filler *fill,
			     const struct strata_entry_params *p)
{
	struct strata_entry *e = fill->e;
	const char *route = p->route ? p->route : "";

	e->status = p->status;
	e->created = p->created;
	e->expires = p->expires;
	e->keep_until = p->keep_until ? p->keep_until : p->expires;
	e->key_text = fill_string(fill, p->key_text, p->key_len);
	e->key_len = p->key_len;
	e->route = fill_string(fill, route, strlen(route));
	for (size_t i = 0; i < e->n_headers; i++) {
		const struct strata_header *h = &p->headers->v[i];

		fill->headers[i].name = fill_string(fill, h->name,
						    strlen(h->name));
		fill->headers[i].value = fill_string(fill, h->value,
						     strlen(h->value));
	}
	for (size_t i = 0; i < e->n_tags; i++)
		fill->tags[i] = fill_string(fill, p->tags[i],
					    strlen(p->tags[i]));
	if (p->body_len)
		memcpy(fill->body, p->body, p->body_len);
}

int strata_entry_new(const struct strata_entry_params *p,
		     struct strata_entry **out)
{
	struct shape sh;
	struct filler fill;
	int rc;

	*out = NULL;
	if (!p)
		return -EINVAL;
	rc = params_check(p);
	if (rc == 0)
		rc = params_shape(p, &sh);
	if (rc == 0)
		rc = entry_alloc(&sh, &fill);
	if (rc < 0)
		return rc;
	if (p->key)
		fill.e->key = *p->key;
	else
		strata_key_hash(p->key_text, p->key_len, &fill.e->key);
	fill_from_params(&fill, p);
	*out = fill.e;
	return 0;
}

/* --- accessors ------------------------------------------------------------ */

/* Whole seconds from `from` to `to`, 0 if not after; saturates. */
static int64_t whole_seconds(int64_t from, int64_t to)
{
	int64_t ms;

	if (to <= from)
		return 0;
	/* Decoded times are untrusted: their difference may not fit. */
	if (__builtin_sub_overflow(to, from, &ms))
		return INT64_MAX / 1000;
	return ms / 1000;
}

int64_t strata_entry_ttl_s(const struct strata_entry *e, int64_t now)
{
	STRATA_ASSERT(e && e->magic == STRATA_ENTRY_MAGIC);
	return whole_seconds(now, e->expires);
}

int64_t strata_entry_age_s(const struct strata_entry *e, int64_t now)
{
	STRATA_ASSERT(e && e->magic == STRATA_ENTRY_MAGIC);
	return whole_seconds(e->created, now);
}

const char *strata_entry_header(const struct strata_entry *e,
				const char *name)
{
	STRATA_ASSERT(e && e->magic == STRATA_ENTRY_MAGIC);
	for (size_t i = 0; i < e->n_headers; i++) {
		if (strcasecmp(e->headers[i].name, name) == 0)
			return e->headers[i].value;
	}
	return NULL;
}

/* --- the encoding --------------------------------------------------------- */

/*
 * Version 1, all integers little-endian (docs/entry-format.md):
 *
 *   "STRE" u16 version u16 flags  key_hash[16]  u16 status
 *   i64 created  i64 expires  i64 keep_until
 *   u32 key_len  u32 route_len  u32 n_headers  u32 n_tags  u32 body_len
 *   key_text  route  { u32 name_len u32 value_len name value } * n_headers
 *   { u32 len tag } * n_tags  body  u64 XXH3_64bits(everything before)
 */
#define FORMAT_MAGIC "STRE"
#define FORMAT_VERSION 1
#define FIXED_LEN (4 + 2 + 2 + STRATA_KEY_HASH_LEN + 2 + 3 * 8 + 5 * 4)
#define CHECKSUM_LEN 8

struct writer {
	uint8_t *p;
};

static void put_bytes(struct writer *w, const void *s, size_t n)
{
	if (n)
		memcpy(w->p, s, n);
	w->p += n;
}

static void put_le(struct writer *w, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		*w->p++ = (uint8_t)(v >> (8 * i));
}

static size_t encoded_size(const struct strata_entry *e)
{
	size_t size = FIXED_LEN + e->key_len + strlen(e->route) +
		      e->body_len + CHECKSUM_LEN;

	/* new() and decode() bounded every length: no overflow here. */
	for (size_t i = 0; i < e->n_headers; i++)
		size += 8 + strlen(e->headers[i].name) +
			strlen(e->headers[i].value);
	for (size_t i = 0; i < e->n_tags; i++)
		size += 4 + strlen(e->tags[i]);
	return size;
}

static void put_fixed(struct writer *w, const struct strata_entry *e)
{
	put_bytes(w, FORMAT_MAGIC, 4);
	put_le(w, FORMAT_VERSION, 2);
	put_le(w, 0, 2);  /* flags: none defined in version 1 */
	put_bytes(w, e->key.hash, STRATA_KEY_HASH_LEN);
	put_le(w, e->status, 2);
	put_le(w, (uint64_t)e->created, 8);
	put_le(w, (uint64_t)e->expires, 8);
	put_le(w, (uint64_t)e->keep_until, 8);
	put_le(w, e->key_len, 4);
	put_le(w, strlen(e->route), 4);
	put_le(w, e->n_headers, 4);
	put_le(w, e->n_tags, 4);
	put_le(w, e->body_len, 4);
}

static void put_variable(struct writer *w, const struct strata_entry *e)
{
	put_bytes(w, e->key_text, e->key_len);
	put_bytes(w, e->route, strlen(e->route));
	for (size_t i = 0; i < e->n_headers; i++) {
		size_t name_len = strlen(e->headers[i].name);
		size_t value_len = strlen(e->headers[i].value);

		put_le(w, name_len, 4);
		put_le(w, value_len, 4);
		put_bytes(w, e->headers[i].name, name_len);
		put_bytes(w, e->headers[i].value, value_len);
	}
	for (size_t i = 0; i < e->n_tags; i++) {
		size_t len = strlen(e->tags[i]);

		put_le(w, len, 4);
		put_bytes(w, e->tags[i], len);
	}
	put_bytes(w, e->body, e->body_len);
}

int strata_entry_encode(const struct strata_entry *e, char **buf,
			size_t *len)
{
	size_t size;
	uint8_t *out;
	struct writer w;

	STRATA_ASSERT(e && e->magic == STRATA_ENTRY_MAGIC);
	size = encoded_size(e);
	out = malloc(size);
	if (!out)
		return -ENOMEM;
	w.p = out;
	put_fixed(&w, e);
	put_variable(&w, e);
	put_le(&w, XXH3_64bits(out, size - CHECKSUM_LEN), CHECKSUM_LEN);
	STRATA_ASSERT(w.p == out + size);
	*buf = (char *)out;
	*len = size;
	return 0;
}

/* --- decoding ------------------------------------------------------------- */

/* A cursor over untrusted bytes: every take checks what is left. */
struct reader {
	const uint8_t *p;
	size_t left;
};

static bool take(struct reader *r, size_t n, const uint8_t **out)
{
	if (n > r->left)
		return false;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

static bool take_le(struct reader *r, size_t n, uint64_t *v)
{
	const uint8_t *b;

	if (!take(r, n, &b))
		return false;
	*v = 0;
	for (size_t i = 0; i < n; i++)
		*v |= (uint64_t)b[i] << (8 * i);
	return true;
}

/* A string field: in bounds and free of NULs (it becomes a C string). */
static bool take_string(struct reader *r, size_t len, const char **out)
{
	const uint8_t *b;

	if (!take(r, len, &b) || memchr(b, '\0', len))
		return false;
	*out = (const char *)b;
	return true;
}

static bool take_string32(struct reader *r, const char **out, size_t *len)
{
	uint64_t n;

	if (!take_le(r, 4, &n))
		return false;
	*len = (size_t)n;
	return take_string(r, *len, out);
}

/* The fixed part, decoded. */
struct fixed {
	struct strata_key key;
	unsigned status;
	int64_t created;
	int64_t expires;
	int64_t keep_until;
	size_t key_len;
	size_t route_len;
	size_t n_headers;
	size_t n_tags;
	size_t body_len;
};

/* Read the fixed part into *f and check everything it alone decides. */
static bool read_fixed(struct reader *r, struct fixed *f)
{
	const uint8_t *magic, *hash;
	uint64_t version, flags, status, t[3], n[5];

	if (!take(r, 4, &magic) || memcmp(magic, FORMAT_MAGIC, 4) != 0 ||
	    !take_le(r, 2, &version) || !take_le(r, 2, &flags) ||
	    !take(r, STRATA_KEY_HASH_LEN, &hash) || !take_le(r, 2, &status))
		return false;
	/* Unknown flags may change the meaning of what follows: refuse. */
	if (version != FORMAT_VERSION || flags != 0 || !status_ok(status))
		return false;
	for (size_t i = 0; i < 3; i++) {
		if (!take_le(r, 8, &t[i]))
			return false;
	}
	for (size_t i = 0; i < 5; i++) {
		if (!take_le(r, 4, &n[i]))
			return false;
	}
	memcpy(f->key.hash, hash, STRATA_KEY_HASH_LEN);
	f->status = (unsigned)status;
	f->created = (int64_t)t[0];
	f->expires = (int64_t)t[1];
	f->keep_until = (int64_t)t[2];
	f->key_len = n[0];
	f->route_len = n[1];
	f->n_headers = n[2];
	f->n_tags = n[3];
	f->body_len = n[4];
	return f->keep_until >= f->expires &&
	       f->key_len <= STRATA_ENTRY_MAX_KEY_TEXT &&
	       f->n_headers <= STRATA_ENTRY_MAX_HEADERS &&
	       f->n_tags <= STRATA_ENTRY_MAX_TAGS &&
	       f->body_len <= STRATA_ENTRY_MAX_BODY;
}

/*
 * Walk the variable part.  Without `fill`, only measure and validate
 * (strings in bounds, no NULs inside) and add the string bytes to
 * sh->strings; with `fill`, copy into the entry -- on bytes the measuring
 * walk already accepted, so that walk cannot fail.
 */
static bool walk(struct reader *r, const struct fixed *f, struct shape *sh,
		 struct filler *fill)
{
	const char *s, *v;
	const uint8_t *body;
	size_t len, value_len;

	if (!take_string(r, f->key_len, &s))
		return false;
	sh->strings += f->key_len + 1;
	if (fill) {
		fill->e->key_text = fill_string(fill, s, f->key_len);
		fill->e->key_len = f->key_len;
	}
	if (!take_string(r, f->route_len, &s))
		return false;
	sh->strings += f->route_len + 1;
	if (fill)
		fill->e->route = fill_string(fill, s, f->route_len);
	for (size_t i = 0; i < f->n_headers; i++) {
		uint64_t nl, vl;

		if (!take_le(r, 4, &nl) || !take_le(r, 4, &vl) ||
		    !take_string(r, (size_t)nl, &s) ||
		    !take_string(r, (size_t)vl, &v))
			return false;
		len = (size_t)nl;
		value_len = (size_t)vl;
		/* Each string is in the input: the sum cannot overflow. */
		sh->strings += len + 1 + value_len + 1;
		if (fill) {
			fill->headers[i].name = fill_string(fill, s, len);
			fill->headers[i].value = fill_string(fill, v,
							     value_len);
		}
	}
	for (size_t i = 0; i < f->n_tags; i++) {
		if (!take_string32(r, &s, &len))
			return false;
		sh->strings += len + 1;
		if (fill)
			fill->tags[i] = fill_string(fill, s, len);
	}
	if (!take(r, f->body_len, &body))
		return false;
	if (fill && f->body_len)
		memcpy(fill->body, body, f->body_len);
	return true;
}

static bool checksum_ok(const uint8_t *buf, size_t len)
{
	struct reader r = { buf + len - CHECKSUM_LEN, CHECKSUM_LEN };
	uint64_t stored;

	if (!take_le(&r, CHECKSUM_LEN, &stored))
		return false;
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	/* Let a fuzzer past the checksum to the checks behind it. */
	(void)stored;
	return true;
#else
	return stored == XXH3_64bits(buf, len - CHECKSUM_LEN);
#endif
}

int strata_entry_decode(const void *buf, size_t len,
			struct strata_entry **out)
{
	const uint8_t *bytes = buf;
	struct reader r, variable;
	struct fixed f;
	struct shape sh = { 0 };
	struct filler fill;
	struct strata_key text_key;
	int rc;

	*out = NULL;
	if (!bytes || len < FIXED_LEN + CHECKSUM_LEN)
		return STRATA_ECORRUPT;
	/* The fields end where the checksum starts: no trailing bytes. */
	r = (struct reader){ bytes, len - CHECKSUM_LEN };
	if (!read_fixed(&r, &f))
		return STRATA_ECORRUPT;
	variable = r;
	if (!walk(&r, &f, &sh, NULL) || r.left != 0)
		return STRATA_ECORRUPT;
	if (!checksum_ok(bytes, len))
		return STRATA_ECORRUPT;
	/* The key text opens the variable part, already bounds-checked. */
	strata_key_hash((const char *)variable.p, f.key_len, &text_key);
	if (!strata_key_equal(&text_key, &f.key))
		return STRATA_ECORRUPT;
	sh.n_headers = f.n_headers;
	sh.n_tags = f.n_tags;
	sh.body_len = f.body_len;
	rc = entry_alloc(&sh, &fill);
	if (rc < 0)
		return rc;
	fill.e->key = f.key;
	fill.e->status = f.status;
	fill.e->created = f.created;
	fill.e->expires = f.expires;
	fill.e->keep_until = f.keep_until;
	/* Cannot fail: the measuring walk accepted these very bytes. */
	STRATA_ASSERT(walk(&variable, &f, &sh, &fill));
	*out = fill.e;
	return 0;
}
