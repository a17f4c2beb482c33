/*
 * fuzz_key.c: cache key texts and hashes (cache/key.h).
 *
 * Input, as lines: a flags byte, then the method, the request target, the
 * route's kept query parameters (comma-separated), its vary header names
 * (comma-separated), and the request's header lines ("Name: value") to
 * the end.  The flags byte picks the query mode (raw, ignore, keep) and
 * the buffer size.
 *
 * Invariants, from key.h:
 *  - the text is NUL-terminated at *len, holds 1 + n_vary lines, each
 *    ending in LF, and its first line is "<METHOD> <path>[?<query>]" with
 *    HEAD written as GET: the target itself (raw), its path (ignore), or
 *    its path and the kept parameters (keep);
 *  - a KEEP text does not depend on the order the parameters came in;
 *  - a short buffer gives -ENOSPC and the size that then works, and that
 *    retry gives the same text;
 *  - the hash is a function of the text; its hex parses back to it; the
 *    purge module finds the text's path where the key put it.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/key.h"
#include "cache/purge.h"
#include "fuzz.h"

#define MAX_LIST 80
#define MAX_HEADERS 32

struct request_headers {
	char *name[MAX_HEADERS];
	char *value[MAX_HEADERS];
	size_t n;
};

/* strata_key_header_fn over the parsed header lines: key.h's contract
 * (one value from storage, several joined with ", " into buf, TOOBIG
 * rather than a cut). */
static const char *header_cb(void *arg, const char *name, char *buf,
			     size_t cap)
{
	const struct request_headers *h = arg;
	const char *first = NULL;
	size_t used = 0, found = 0;

	for (size_t i = 0; i < h->n; i++) {
		size_t len;

		if (strcasecmp(h->name[i], name) != 0)
			continue;
		if (found++ == 0) {
			first = h->value[i];
			continue;
		}
		if (found == 2) {
			len = strlen(first);
			if (len + 1 > cap)
				return STRATA_KEY_HEADER_TOOBIG;
			memcpy(buf, first, len + 1);
			used = len;
		}
		len = strlen(h->value[i]);
		if (used + 2 + len + 1 > cap)
			return STRATA_KEY_HEADER_TOOBIG;
		memcpy(buf + used, ", ", 2);
		memcpy(buf + used + 2, h->value[i], len + 1);
		used += 2 + len;
	}
	return found > 1 ? buf : first;
}

/* Split `s` on `sep` in place into at most `max` non-empty pieces. */
static size_t split(char *s, char sep, char **out, size_t max)
{
	size_t n = 0;

	for (char *p = s; n < max;) {
		char *end = strchr(p, sep);

		if (end != NULL)
			*end = '\0';
		if (*p != '\0')
			out[n++] = p;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return n;
}

/* The target with its query parameters ("&"-separated, empty ones
 * included) in reverse order. */
static char *reverse_query(const char *target)
{
	const char *q = strchr(target, '?');
	size_t len = strlen(target), n = 1, at, k;
	char *out = fuzz_strndup(target, len);
	const char **param;
	size_t *plen;

	if (q == NULL)
		return out;
	for (const char *p = q + 1; *p; p++)
		n += *p == '&';
	param = malloc(n * sizeof(*param));
	plen = malloc(n * sizeof(*plen));
	FUZZ_CHECK(param != NULL && plen != NULL);
	k = 0;
	for (const char *p = q + 1;; k++) {
		param[k] = p;
		plen[k] = strcspn(p, "&");
		if (p[plen[k]] == '\0')
			break;
		p += plen[k] + 1;
	}
	FUZZ_CHECK(k + 1 == n);
	at = (size_t)(q - target) + 1;
	for (size_t i = n; i-- > 0;) {
		memcpy(out + at, param[i], plen[i]);
		at += plen[i];
		if (i > 0)
			out[at++] = '&';
	}
	FUZZ_CHECK(at == len);
	free(param);
	free(plen);
	return out;
}

static void check_text(const struct strata_key_rule *rule,
		       const char *method, const char *target,
		       const char *text, size_t len)
{
	size_t lines = 0, path_len = strcspn(target, "?");
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	size_t mlen = strlen(m), first_len, key_path_len;
	const char *first_end, *key_path;
	struct strata_key k1, k2, k3;
	char hex[STRATA_KEY_HEX_LEN + 1];

	FUZZ_CHECK(strlen(text) == len);
	FUZZ_CHECK(len > 0 && text[len - 1] == '\n');
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	FUZZ_CHECK(lines == 1 + (rule != NULL ? rule->n_vary : 0));

	first_end = strchr(text, '\n');
	first_len = (size_t)(first_end - text);
	FUZZ_CHECK(first_len > mlen && memcmp(text, m, mlen) == 0 &&
		   text[mlen] == ' ');
	FUZZ_CHECK(first_len - mlen - 1 >= path_len &&
		   memcmp(text + mlen + 1, target, path_len) == 0);
	switch (rule != NULL ? rule->query : STRATA_QUERY_RAW) {
	case STRATA_QUERY_RAW:
		FUZZ_CHECK(first_len == mlen + 1 + strlen(target) &&
			   memcmp(text + mlen + 1, target,
				  strlen(target)) == 0);
		break;
	case STRATA_QUERY_IGNORE:
		FUZZ_CHECK(first_len == mlen + 1 + path_len);
		break;
	case STRATA_QUERY_KEEP:
		/* Either no query at all, or "?" and at least one. */
		FUZZ_CHECK(first_len == mlen + 1 + path_len ||
			   (text[mlen + 1 + path_len] == '?' &&
			    first_len > mlen + 2 + path_len));
		break;
	}

	/* The purge module reads the path back out of the text. */
	key_path = strata_purge_key_path(text, len, &key_path_len);
	FUZZ_CHECK(key_path == text + mlen + 1);
	FUZZ_CHECK(key_path_len == first_len - mlen - 1);

	strata_key_hash(text, len, &k1);
	strata_key_hash(text, len, &k2);
	FUZZ_CHECK(strata_key_equal(&k1, &k2));
	strata_key_hex(&k1, hex);
	FUZZ_CHECK(strlen(hex) == STRATA_KEY_HEX_LEN);
	FUZZ_CHECK(strata_key_from_hex(hex, &k3) == 0);
	FUZZ_CHECK(strata_key_equal(&k1, &k3));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t flags = fuzz_take_byte(&in);
	char *method = fuzz_take_until(&in, '\n');
	char *target = fuzz_take_until(&in, '\n');
	char *keep_line = fuzz_take_until(&in, '\n');
	char *vary_line = fuzz_take_until(&in, '\n');
	char *header_block = fuzz_take_rest(&in);
	char *keep[MAX_LIST], *vary[MAX_LIST], *lines[MAX_HEADERS];
	struct request_headers headers = { .n = 0 };
	struct strata_key_rule rule = { 0 };
	const struct strata_key_rule *rp = &rule;
	char *buf, *buf2, *reversed;
	size_t cap, len = 0, len2 = 0, n_lines;
	int rc, rc2;
	struct strata_key key;

	rule.query = (enum strata_query_mode)(flags % 3);
	rule.n_query_keep = split(keep_line, ',', keep, MAX_LIST);
	rule.query_keep = (const char *const *)keep;
	rule.n_vary = split(vary_line, ',', vary, MAX_LIST);
	rule.vary = (const char *const *)vary;
	if (rule.query == STRATA_QUERY_KEEP && rule.n_query_keep == 0)
		rule.query = STRATA_QUERY_RAW;   /* the route table refuses it */
	if ((flags & 0x80) != 0 && rule.n_vary == 0 &&
	    rule.query == STRATA_QUERY_RAW)
		rp = NULL;   /* "rule may be NULL: raw query, no vary" */
	n_lines = split(header_block, '\n', lines, MAX_HEADERS);
	for (size_t i = 0; i < n_lines; i++) {
		char *colon = strchr(lines[i], ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		headers.name[headers.n] = lines[i];
		headers.value[headers.n] = colon + 1 + (colon[1] == ' ');
		headers.n++;
	}

	/* A buffer of 0 to 127 bytes, or a big one. */
	cap = (flags & 0x40) != 0 ? (size_t)(flags & 0x3f) * 2 : 70000;
	buf = malloc(cap ? cap : 1);
	FUZZ_CHECK(buf != NULL);
	rc = strata_key_text(rp, method, target, header_cb, &headers,
			     cap ? buf : NULL, cap, &len);
	FUZZ_CHECK(rc == 0 || rc == -ENOSPC || rc == -EINVAL || rc == -E2BIG);
	if (rc == -ENOSPC) {
		FUZZ_CHECK(len > cap);
		free(buf);
		cap = len;
		buf = malloc(cap);
		FUZZ_CHECK(buf != NULL);
		rc2 = strata_key_text(rp, method, target, header_cb, &headers,
				      buf, cap, &len2);
		FUZZ_CHECK(rc2 == 0 && len2 + 1 == cap);
		len = len2;
		rc = 0;
	}
	if (rc == 0) {
		check_text(rp, method, target, buf, len);
		/* One byte short of the NUL: -ENOSPC and the same size. */
		buf2 = malloc(len);
		FUZZ_CHECK(buf2 != NULL || len == 0);
		FUZZ_CHECK(strata_key_text(rp, method, target, header_cb,
					   &headers, len ? buf2 : NULL, len,
					   &len2) == -ENOSPC);
		FUZZ_CHECK(len2 == len + 1);
		free(buf2);

		if (rule.query == STRATA_QUERY_KEEP) {
			reversed = reverse_query(target);
			buf2 = malloc(len + 1);
			FUZZ_CHECK(buf2 != NULL);
			FUZZ_CHECK(strata_key_text(rp, method, reversed,
						   header_cb, &headers, buf2,
						   len + 1, &len2) == 0);
			FUZZ_CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
			free(buf2);
			free(reversed);
		}
	}
	free(buf);

	/* Any text parses as hex only if it is the hex of a key. */
	if (strata_key_from_hex(target, &key) == 0) {
		char hex[STRATA_KEY_HEX_LEN + 1];

		strata_key_hex(&key, hex);
		FUZZ_CHECK(strcasecmp(hex, target) == 0);
	}

	free(method);
	free(target);
	free(keep_line);
	free(vary_line);
	free(header_block);
	return 0;
}
