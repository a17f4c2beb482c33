/*
 * http.c: header lists and hop-by-hop rules; see http.h.
 */
#include "config.h"

#include "core/http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *dup_len(const char *s, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

int strata_headers_addn(struct strata_headers *h, const char *name,
			size_t name_len, const char *value, size_t value_len)
{
	struct strata_header *slot;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct strata_header *v = realloc(h->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	slot = &h->v[h->n];
	slot->name = dup_len(name, name_len);
	slot->value = dup_len(value, value_len);
	if (slot->name == NULL || slot->value == NULL) {
		free(slot->name);
		free(slot->value);
		return -ENOMEM;
	}
	h->n++;
	return 0;
}

int strata_headers_add(struct strata_headers *h, const char *name,
		       const char *value)
{
	return strata_headers_addn(h, name, strlen(name), value,
				   strlen(value));
}

const char *strata_headers_get(const struct strata_headers *h,
			       const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0)
			return h->v[i].value;
	return NULL;
}

void strata_headers_remove(struct strata_headers *h, const char *name)
{
	size_t kept = 0;

	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) == 0) {
			free(h->v[i].name);
			free(h->v[i].value);
			continue;
		}
		h->v[kept++] = h->v[i];
	}
	h->n = kept;
}

void strata_headers_clear(struct strata_headers *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
	h->cap = 0;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool strata_http_list_has(const char *list, const char *token)
{
	size_t token_len = strlen(token);
	const char *p = list;

	if (list == NULL)
		return false;
	while (*p != '\0') {
		const char *start, *end;

		while (is_ows(*p) || *p == ',')
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && is_ows(end[-1]))
			end--;
		if ((size_t)(end - start) == token_len &&
		    strncasecmp(start, token, token_len) == 0)
			return true;
	}
	return false;
}

bool strata_http_is_hop_by_hop(const char *name, const char *connection)
{
	static const char *const fixed[] = {
		"Connection",        "Keep-Alive", "Proxy-Connection",
		"Proxy-Authenticate", "Proxy-Authorization", "TE",
		"Trailer",           "Transfer-Encoding", "Upgrade",
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcasecmp(name, fixed[i]) == 0)
			return true;
	return strata_http_list_has(connection, name);
}

char *strata_headers_join(const struct strata_headers *h, const char *name)
{
	size_t len = 0;
	char *joined, *p;

	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0)
			len += strlen(h->v[i].value) + 1;
	if (len == 0)
		return NULL;
	joined = malloc(len);
	if (joined == NULL)
		return NULL;
	p = joined;
	for (size_t i = 0, seen = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0) {
			size_t n = strlen(h->v[i].value);

			/* One comma per line after the first, even after
			 * an empty one: the values keep their places. */
			if (seen++ > 0)
				*p++ = ',';
			memcpy(p, h->v[i].value, n);
			p += n;
		}
	*p = '\0';
	return joined;
}

int strata_headers_fold(struct strata_headers *h, const char *name)
{
	size_t first = h->n, count = 0;
	char *joined, *p;
	size_t len = 0;

	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0) {
			if (first == h->n)
				first = i;
			count++;
			len += strlen(h->v[i].value) + 2;
		}
	if (count < 2)
		return 0;
	joined = malloc(len);
	if (joined == NULL)
		return -ENOMEM;
	p = joined;
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0) {
			size_t n = strlen(h->v[i].value);

			/* An empty line adds no member to the list. */
			if (n == 0)
				continue;
			if (p != joined) {
				*p++ = ',';
				*p++ = ' ';
			}
			memcpy(p, h->v[i].value, n);
			p += n;
		}
	*p = '\0';
	free(h->v[first].value);
	h->v[first].value = joined;
	/* Drop the later lines, keeping the others' order. */
	for (size_t i = first + 1, o = first + 1; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) == 0) {
			free(h->v[i].name);
			free(h->v[i].value);
			continue;
		}
		h->v[o++] = h->v[i];
	}
	h->n -= count - 1;
	return 0;
}

int strata_http_fold_cache_lists(struct strata_headers *h)
{
	static const char *const lists[] = {"Cache-Control", "Vary",
					    "Pragma"};
	int rc = 0;

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (strata_headers_fold(h, lists[i]) != 0)
			rc = -ENOMEM;
	return rc;
}

int strata_http_end_to_end(const struct strata_headers *in,
			   struct strata_headers *out)
{
	char *connection = strata_headers_join(in, "Connection");
	int rc = 0;

	for (size_t i = 0; i < in->n && rc == 0; i++) {
		const char *name = in->v[i].name;

		if (strata_http_is_hop_by_hop(name, connection) ||
		    strcasecmp(name, "Content-Length") == 0)
			continue;
		rc = strata_headers_add(out, name, in->v[i].value);
	}
	free(connection);
	return rc;
}

bool strata_http_is_token(const char *s)
{
	const char *p = s;

	if (s == NULL)
		return false;
	while (strata_http_is_tchar((unsigned char)*p))
		p++;
	return p != s && *p == '\0';
}

bool strata_http_target_clean(const char *target)
{
	const unsigned char *p = (const unsigned char *)target;

	if (p == NULL)
		return false;
	for (; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}
