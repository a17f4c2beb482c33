/*
 * fuzz_purge.c: what the admin API makes of its purge arguments, and the
 * key hex it takes in paths (cache/purge.h, cache/key.h).
 *
 * strata_purge_parse() on the kind and argument of
 * DELETE /admin/keys?path=|prefix=|tag= and of the fleet's purge stream,
 * strata_purge_matches() against entries' key texts and tags, and
 * strata_key_from_hex() on /admin/keys/<hex>.  The listing's own query
 * parameters (filters, tier, limit, cursor, flags) are fuzz_admin_query's.
 *
 * Input, as lines: the purge kind, its argument, an entry's key text
 * (with "\\n" written as "|", so a text can have several lines), and its
 * tags, space-separated.  Invariants:
 *  - parse accepts exactly what purge.h describes, and the kind's name
 *    parses back to the same purge;
 *  - matching follows a reference written from purge.h: KEY compares
 *    hashes, PATH takes the path with any query, PREFIX any path starting
 *    so, TAG a tag equal to the argument, ALL everything;
 *  - a PATH purge that matches implies the PREFIX purge of the same
 *    argument matches;
 *  - strata_purge_key_path() returns a view inside the text;
 *  - hex: 32 hex digits parse, and print back (lowercase) the same.
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

#define MAX_TAGS 16

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* purge.h's rules for an argument, by kind name. */
static bool ref_valid(const char *kind, const char *arg)
{
	size_t len = strlen(arg);

	if (len > STRATA_PURGE_ARG_MAX)
		return false;
	if (strcmp(kind, "key") == 0) {
		if (len != STRATA_KEY_HEX_LEN)
			return false;
		for (size_t i = 0; i < len; i++) {
			if (!is_hex(arg[i]))
				return false;
		}
		return true;
	}
	if (strcmp(kind, "prefix") == 0)
		return arg[0] == '/' && strpbrk(arg, " \r\n") == NULL;
	if (strcmp(kind, "path") == 0)
		return arg[0] == '/' && strpbrk(arg, " ?\r\n") == NULL;
	if (strcmp(kind, "tag") == 0)
		return len > 0 && strpbrk(arg, " \t\r\n") == NULL;
	if (strcmp(kind, "all") == 0)
		return len == 0;
	return false;
}

/* The request path in a key text: after the first space, to the end of
 * the first line (purge.h). */
static void ref_path(const char *text, size_t len, const char **path,
		     size_t *path_len)
{
	const char *sp = memchr(text, ' ', len), *nl;

	if (sp == NULL) {
		*path = text + len;
		*path_len = 0;
		return;
	}
	*path = sp + 1;
	nl = memchr(*path, '\n', len - (size_t)(*path - text));
	*path_len = nl != NULL ? (size_t)(nl - *path)
			       : len - (size_t)(*path - text);
}

static bool ref_matches(const struct strata_purge *p,
			const struct strata_key *key, const char *text,
			size_t len, char **tags, size_t n_tags)
{
	const char *path;
	size_t path_len, arg_len = strlen(p->arg);

	ref_path(text, len, &path, &path_len);
	switch (p->kind) {
	case STRATA_PURGE_KEY:
		return memcmp(p->key.hash, key->hash, STRATA_KEY_HASH_LEN) == 0;
	case STRATA_PURGE_PREFIX:
		return path_len >= arg_len && memcmp(path, p->arg, arg_len) == 0;
	case STRATA_PURGE_PATH:
		return path_len >= arg_len &&
		       memcmp(path, p->arg, arg_len) == 0 &&
		       (path_len == arg_len || path[arg_len] == '?');
	case STRATA_PURGE_TAG:
		for (size_t i = 0; i < n_tags; i++) {
			if (strcmp(tags[i], p->arg) == 0)
				return true;
		}
		return false;
	case STRATA_PURGE_ALL:
		return true;
	}
	FUZZ_CHECK(!"a purge kind is one of five");
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	char *kind = fuzz_take_until(&in, '\n');
	char *arg = fuzz_take_until(&in, '\n');
	char *text = fuzz_take_until(&in, '\n');
	char *tag_line = fuzz_take_rest(&in);
	char *tags[MAX_TAGS];
	size_t n_tags = 0, text_len, path_len;
	struct strata_purge p, again;
	struct strata_key key, parsed;
	const char *path;
	int rc;

	for (char *c = text; *c; c++) {
		if (*c == '|')
			*c = '\n';
	}
	text_len = strlen(text);
	for (char *save = NULL, *t = strtok_r(tag_line, " ", &save);
	     t != NULL && n_tags < MAX_TAGS; t = strtok_r(NULL, " ", &save))
		tags[n_tags++] = t;
	strata_key_hash(text, text_len, &key);

	path = strata_purge_key_path(text, text_len, &path_len);
	FUZZ_CHECK(path >= text && path + path_len <= text + text_len);
	FUZZ_CHECK(memchr(path, '\n', path_len) == NULL);

	rc = strata_purge_parse(kind, arg, &p);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	FUZZ_CHECK((rc == 0) == ref_valid(kind, arg));
	if (rc == 0) {
		bool m = strata_purge_matches(&p, &key, text, text_len,
					      (const char *const *)tags,
					      n_tags);

		FUZZ_CHECK(p.arg == arg);
		FUZZ_CHECK(strcmp(strata_purge_kind_name(p.kind), kind) == 0);
		FUZZ_CHECK(strata_purge_parse(strata_purge_kind_name(p.kind),
					      arg, &again) == 0);
		FUZZ_CHECK(again.kind == p.kind &&
			   strata_key_equal(&again.key, &p.key));
		FUZZ_CHECK(m == ref_matches(&p, &key, text, text_len, tags,
					    n_tags));
		if (p.kind == STRATA_PURGE_PATH && m) {
			struct strata_purge prefix;

			FUZZ_CHECK(strata_purge_parse("prefix", arg,
						      &prefix) == 0);
			FUZZ_CHECK(strata_purge_matches(
				&prefix, &key, text, text_len,
				(const char *const *)tags, n_tags));
		}
		/* A key purge made from this entry's own hash removes it. */
		if (p.kind == STRATA_PURGE_KEY) {
			char hex[STRATA_KEY_HEX_LEN + 1];
			struct strata_purge own;

			strata_key_hex(&key, hex);
			FUZZ_CHECK(strata_purge_parse("key", hex, &own) == 0);
			FUZZ_CHECK(strata_purge_matches(
				&own, &key, text, text_len, NULL, 0));
		}
	}

	/* /admin/keys/<hex> */
	memset(&parsed, 0xa5, sizeof(parsed));
	rc = strata_key_from_hex(arg, &parsed);
	FUZZ_CHECK((rc == 0) == ref_valid("key", arg));
	if (rc == 0) {
		char hex[STRATA_KEY_HEX_LEN + 1];

		strata_key_hex(&parsed, hex);
		FUZZ_CHECK(strcasecmp(hex, arg) == 0);
	} else {
		for (size_t i = 0; i < STRATA_KEY_HASH_LEN; i++)
			FUZZ_CHECK(parsed.hash[i] == 0xa5);   /* untouched */
	}

	free(kind);
	free(arg);
	free(text);
	free(tag_line);
	return 0;
}
