/*
 * key.c: canonical key texts and their XXH3-128 hashes; see key.h.
 *
 * The text is written through a `sink` that copies only what fits in the
 * caller's buffer but counts every byte, so one pass both builds the text
 * and, when the buffer is short, learns the size to retry with.  Nothing
 * here allocates: the KEEP mode sorts an array of (offset, length) views
 * of the target on the stack, bounded by STRATA_KEY_MAX_KEPT, and joined
 * vary values land in a bounded stack buffer.  A request that exceeds
 * either bound is refused (-E2BIG) rather than keyed approximately: a
 * cache may decline to store, never answer with another request's entry.
 *
 * Every input that could make two different requests produce the same
 * text is refused (-EINVAL): line breaks in the target, method or a vary
 * value would let one request forge another's vary lines.
 */
#include "config.h"

#include "cache/key.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include <xxhash.h>

#include "core/http.h"
#include "core/log.h"
#include "strata/config.h"

/* The configuration names the same modes without including src/ headers. */
static_assert(STRATA_ROUTE_QUERY_RAW == (int)STRATA_QUERY_RAW,
	      "config.h and key.h disagree on RAW");
static_assert(STRATA_ROUTE_QUERY_IGNORE == (int)STRATA_QUERY_IGNORE,
	      "config.h and key.h disagree on IGNORE");
static_assert(STRATA_ROUTE_QUERY_KEEP == (int)STRATA_QUERY_KEEP,
	      "config.h and key.h disagree on KEEP");

const char strata_key_header_toobig[1] = "";

/* --- the sink ------------------------------------------------------------- */

/* Writes what fits and counts everything; `len` may exceed `cap`. */
struct sink {
	char *buf;
	size_t cap;
	size_t len;
};

static bool sink_fits(const struct sink *s, size_t n)
{
	return s->len <= s->cap && n <= s->cap - s->len;
}

static void put(struct sink *s, const char *p, size_t n)
{
	/* Once a piece is skipped len > cap, so nothing later is written. */
	if (sink_fits(s, n))
		memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void put_str(struct sink *s, const char *p)
{
	put(s, p, strlen(p));
}

/* ASCII lowercase: header names are tokens, so no locale is wanted. */
static void put_lower(struct sink *s, const char *p)
{
	for (; *p; p++) {
		char c = *p;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		put(s, &c, 1);
	}
}

/* --- validation ----------------------------------------------------------- */

/*
 * Origin-form, loosely: "/" first, then no space, control byte or "#".
 * Bytes above 0x7f pass: they cannot break a line, and refusing them would
 * only turn sloppy clients' requests into misses.
 */
static bool is_origin_form(const char *target)
{
	return target != NULL && target[0] == '/' &&
	       strchr(target, '#') == NULL && strata_http_target_clean(target);
}

/* --- the query ------------------------------------------------------------ */

/* One query parameter, as a view into the target. */
struct param {
	const char *text;     /* "name=value", "name" or "name=" */
	size_t name_len;      /* bytes before the first "=" */
	size_t len;
};

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/*
 * By name, then by the rest ("", "=", "=v"): a total order on distinct
 * parameter texts, so equal-comparing parameters are byte-identical and
 * the output does not depend on the order they arrived in.
 */
static int param_cmp(const struct param *a, const struct param *b)
{
	int c = bytes_cmp(a->text, a->name_len, b->text, b->name_len);

	if (c)
		return c;
	return bytes_cmp(a->text + a->name_len, a->len - a->name_len,
			 b->text + b->name_len, b->len - b->name_len);
}

static bool rule_keeps(const struct strata_key_rule *rule,
		       const struct param *p)
{
	for (size_t i = 0; i < rule->n_query_keep; i++) {
		const char *name = rule->query_keep[i];

		if (strlen(name) == p->name_len &&
		    memcmp(name, p->text, p->name_len) == 0)
			return true;
	}
	return false;
}

/* Insertion into the sorted array: n is at most STRATA_KEY_MAX_KEPT. */
static void insert_sorted(struct param *kept, size_t n, const struct param *p)
{
	size_t i = n;

	while (i > 0 && param_cmp(&kept[i - 1], p) > 0) {
		kept[i] = kept[i - 1];
		i--;
	}
	kept[i] = *p;
}

/* The KEEP query: listed parameters, sorted, "?" only if any is left. */
static int put_kept_query(struct sink *s, const struct strata_key_rule *rule,
			  const char *query)
{
	struct param kept[STRATA_KEY_MAX_KEPT];
	size_t n = 0;
	const char *p = query;

	for (;;) {
		size_t len = strcspn(p, "&");
		struct param param = {
			.text = p, .len = len,
			.name_len = strcspn(p, "=&"),
		};

		if (len > 0 && rule_keeps(rule, &param)) {
			if (n == STRATA_KEY_MAX_KEPT)
				return -E2BIG;
			insert_sorted(kept, n++, &param);
		}
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	for (size_t i = 0; i < n; i++) {
		put(s, i ? "&" : "?", 1);
		put(s, kept[i].text, kept[i].len);
	}
	return 0;
}

/* "<METHOD> <path>[?<query>]\n" */
static int put_request_line(struct sink *s, const struct strata_key_rule *rule,
			    const char *method, const char *target)
{
	size_t path_len = strcspn(target, "?");
	enum strata_query_mode mode = rule ? rule->query : STRATA_QUERY_RAW;
	int rc = 0;

	/* HEAD is answered from the GET entry, so it shares GET's key. */
	put_str(s, strcmp(method, "HEAD") == 0 ? "GET" : method);
	put(s, " ", 1);
	put(s, target, path_len);
	switch (mode) {
	case STRATA_QUERY_IGNORE:
		break;
	case STRATA_QUERY_KEEP:
		if (target[path_len] == '?')
			rc = put_kept_query(s, rule, target + path_len + 1);
		break;
	case STRATA_QUERY_RAW:
	default:
		put_str(s, target + path_len);
		break;
	}
	put(s, "\n", 1);
	return rc;
}

/* --- vary ----------------------------------------------------------------- */

/* "<name>: <value>\n" or "<name>!\n" for each vary header, in rule order. */
static int put_vary_lines(struct sink *s, const struct strata_key_rule *rule,
			  strata_key_header_fn header, void *header_arg)
{
	char joined[STRATA_KEY_JOIN_MAX];

	for (size_t i = 0; i < rule->n_vary; i++) {
		const char *value = header(header_arg, rule->vary[i], joined,
					   sizeof(joined));

		if (value == STRATA_KEY_HEADER_TOOBIG)
			return -E2BIG;
		if (value && strpbrk(value, "\r\n"))
			return -EINVAL;
		put_lower(s, rule->vary[i]);
		if (value) {
			put(s, ": ", 2);
			put_str(s, value);
		} else {
			put(s, "!", 1);
		}
		put(s, "\n", 1);
	}
	return 0;
}

int strata_key_text(const struct strata_key_rule *rule, const char *method,
		    const char *target, strata_key_header_fn header,
		    void *header_arg, char *buf, size_t cap, size_t *len)
{
	struct sink s = { .buf = buf, .cap = cap, .len = 0 };
	int rc;

	STRATA_ASSERT(!rule || rule->n_vary == 0 || header);
	STRATA_ASSERT(buf || cap == 0);
	if (!strata_http_is_token(method) || !is_origin_form(target))
		return -EINVAL;
	rc = put_request_line(&s, rule, method, target);
	if (rc == 0 && rule)
		rc = put_vary_lines(&s, rule, header, header_arg);
	if (rc < 0)
		return rc;
	if (!sink_fits(&s, 1)) {
		*len = s.len + 1;
		return -ENOSPC;
	}
	buf[s.len] = '\0';
	*len = s.len;
	return 0;
}

/* --- hashes --------------------------------------------------------------- */

void strata_key_hash(const char *text, size_t len, struct strata_key *out)
{
	XXH128_hash_t h = XXH3_128bits(text, len);
	XXH128_canonical_t canon;

	/* Canonical (big-endian) bytes: the same hex on every host. */
	XXH128_canonicalFromHash(&canon, h);
	static_assert(sizeof(canon.digest) == STRATA_KEY_HASH_LEN,
		      "XXH3-128 is 16 bytes");
	memcpy(out->hash, canon.digest, STRATA_KEY_HASH_LEN);
}

void strata_key_hex(const struct strata_key *key,
		    char hex[STRATA_KEY_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < STRATA_KEY_HASH_LEN; i++) {
		hex[2 * i] = digits[key->hash[i] >> 4];
		hex[2 * i + 1] = digits[key->hash[i] & 0xf];
	}
	hex[STRATA_KEY_HEX_LEN] = '\0';
}

int strata_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int strata_key_from_hex(const char *hex, struct strata_key *out)
{
	struct strata_key key;

	if (!hex)
		return -EINVAL;
	for (size_t i = 0; i < STRATA_KEY_HASH_LEN; i++) {
		/* hi fails on the NUL of a short string, so lo is in bounds. */
		int hi = strata_hex_digit(hex[2 * i]);
		int lo = hi < 0 ? -1 : strata_hex_digit(hex[2 * i + 1]);

		if (lo < 0)
			return -EINVAL;
		key.hash[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[STRATA_KEY_HEX_LEN] != '\0')
		return -EINVAL;
	*out = key;
	return 0;
}
