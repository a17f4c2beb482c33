/*
 * admin_query.c: the admin API's query parameters (see admin_query.h).
 */
#include "config.h"

#include "front/admin_query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache/key.h"

int strata_admin_tier_parse(const char *s, unsigned *out)
{
	if (s == NULL)
		*out = 0;
	else if (strcmp(s, "memory") == 0)
		*out = STRATA_ADMIN_TIER_MEMORY;
	else if (strcmp(s, "disk") == 0)
		*out = STRATA_ADMIN_TIER_DISK;
	else if (strcmp(s, "redis") == 0)
		*out = STRATA_ADMIN_TIER_REDIS;
	else
		return -EINVAL;
	return 0;
}

bool strata_admin_flag(const char *v)
{
	return v != NULL && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
}

char *strata_admin_cursor_encode(const char *s, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *out = malloc(len * 2 + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[(unsigned char)s[i] >> 4];
		out[2 * i + 1] = digits[(unsigned char)s[i] & 15];
	}
	out[len * 2] = '\0';
	return out;
}

char *strata_admin_cursor_decode(const char *s)
{
	size_t len = strlen(s);
	char *out;

	if (len % 2 != 0 || len == 0)
		return NULL;
	out = malloc(len / 2 + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = strata_hex_digit(s[2 * i]),
		    lo = strata_hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[i] = (char)(hi << 4 | lo);
	}
	out[len / 2] = '\0';
	return out;
}

/* A page size: 1..STRATA_ADMIN_LIMIT_MAX in decimal digits only. */
static int parse_limit(const char *s, size_t *out)
{
	size_t n = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		n = n * 10 + (size_t)(*s - '0');
		if (n > STRATA_ADMIN_LIMIT_MAX)
			return -EINVAL;
	}
	if (n == 0)
		return -EINVAL;
	*out = n;
	return 0;
}

int strata_admin_filter_parse(const struct strata_admin_query *q,
			      struct strata_admin_filter *f,
			      char **cursor_text, const char **why)
{
	memset(f, 0, sizeof(*f));
	*cursor_text = NULL;
	f->prefix = q->prefix;
	f->path = q->path;
	f->tag = q->tag;
	f->route = q->route;
	f->limit = STRATA_ADMIN_LIMIT_DEFAULT;
	if (strata_admin_tier_parse(q->tier, &f->tiers) != 0) {
		*why = "tier must be memory, disk or redis";
		return -EINVAL;
	}
	if (q->limit != NULL && parse_limit(q->limit, &f->limit) != 0) {
		*why = "limit must be 1 to 1000";
		return -EINVAL;
	}
	if (q->cursor != NULL) {
		*cursor_text = strata_admin_cursor_decode(q->cursor);
		if (*cursor_text == NULL) {
			*why = "cursor is not one this server gave";
			return -EINVAL;
		}
		f->after = *cursor_text;
	}
	return 0;
}
