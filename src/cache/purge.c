/*
 * purge.c: purge descriptions (see purge.h).
 */
#include "config.h"

#include "cache/purge.h"

#include <errno.h>
#include <string.h>

static const char *const kind_names[] = {
	[STRATA_PURGE_KEY] = "key",
	[STRATA_PURGE_PREFIX] = "prefix",
	[STRATA_PURGE_TAG] = "tag",
	[STRATA_PURGE_ALL] = "all",
	[STRATA_PURGE_PATH] = "path",
};

const char *strata_purge_kind_name(enum strata_purge_kind kind)
{
	if ((size_t)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
		return "?";
	return kind_names[kind];
}

int strata_purge_parse(const char *kind, const char *arg,
		       struct strata_purge *p)
{
	size_t i, len;

	if (kind == NULL || arg == NULL)
		return -EINVAL;
	len = strlen(arg);
	if (len > STRATA_PURGE_ARG_MAX)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->arg = arg;
	for (i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (strcmp(kind, kind_names[i]) == 0)
			break;
	switch (i) {
	case STRATA_PURGE_KEY:
		p->kind = STRATA_PURGE_KEY;
		return strata_key_from_hex(arg, &p->key);
	case STRATA_PURGE_PREFIX:
		p->kind = STRATA_PURGE_PREFIX;
		return arg[0] == '/' && strpbrk(arg, " \r\n") == NULL
			       ? 0 : -EINVAL;
	case STRATA_PURGE_TAG:
		p->kind = STRATA_PURGE_TAG;
		return len > 0 && strpbrk(arg, " \t\r\n") == NULL ? 0
								 : -EINVAL;
	case STRATA_PURGE_ALL:
		p->kind = STRATA_PURGE_ALL;
		return len == 0 ? 0 : -EINVAL;
	case STRATA_PURGE_PATH:
		p->kind = STRATA_PURGE_PATH;
		return arg[0] == '/' && strpbrk(arg, " ?\r\n") == NULL
			       ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

const char *strata_purge_key_path(const char *key_text, size_t key_len,
				  size_t *len)
{
	const char *sp = memchr(key_text, ' ', key_len);
	const char *end, *path;

	if (sp == NULL) {
		*len = 0;
		return key_text + key_len;
	}
	path = sp + 1;
	end = memchr(path, '\n', key_len - (size_t)(path - key_text));
	*len = end != NULL ? (size_t)(end - path)
			   : key_len - (size_t)(path - key_text);
	return path;
}

bool strata_purge_matches(const struct strata_purge *p,
			  const struct strata_key *key, const char *key_text,
			  size_t key_len, const char *const *tags,
			  size_t n_tags)
{
	const char *path;
	size_t path_len, arg_len;

	switch (p->kind) {
	case STRATA_PURGE_KEY:
		return strata_key_equal(&p->key, key);
	case STRATA_PURGE_PREFIX:
		path = strata_purge_key_path(key_text, key_len, &path_len);
		arg_len = strlen(p->arg);
		return path_len >= arg_len &&
		       memcmp(path, p->arg, arg_len) == 0;
	case STRATA_PURGE_TAG:
		for (size_t i = 0; i < n_tags; i++)
			if (strcmp(tags[i], p->arg) == 0)
				return true;
		return false;
	case STRATA_PURGE_ALL:
		return true;
	case STRATA_PURGE_PATH:
		path = strata_purge_key_path(key_text, key_len, &path_len);
		arg_len = strlen(p->arg);
		return path_len >= arg_len &&
		       memcmp(path, p->arg, arg_len) == 0 &&
		       (path_len == arg_len || path[arg_len] == '?');
	}
	return false;
}

bool strata_purge_matches_entry(const struct strata_purge *p,
				const struct strata_entry *e)
{
	return strata_purge_matches(p, &e->key, e->key_text, e->key_len,
				    e->tags, e->n_tags);
}
