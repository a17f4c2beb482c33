/*
 * config_dump.c: the effective configuration as JSON (see config_dump.h).
 */
#include "config.h"

#include "core/config_dump.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/units.h"
#include "tier/redis.h"

static json_t *size_json(uint64_t bytes)
{
	char buf[32];

	strata_format_size(bytes, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *duration_json(uint64_t ms)
{
	char buf[32];

	strata_format_duration(ms, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* The URL, with any password replaced by "***" when `redact`. */
static json_t *url_json(const char *url, bool redact)
{
	char buf[1024];

	if (url == NULL)
		return json_null();
	if (!redact)
		return json_string(url);
	strata_redis_url_mask(url, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *methods_json(unsigned m)
{
	static const char *const names[] = {"GET",   "HEAD",  "POST",
					    "PUT",   "DELETE", "PATCH",
					    "OPTIONS", "OTHER"};
	json_t *a = json_array();

	for (unsigned i = 0; i < 8; i++)
		if (m & (1u << i))
			json_array_append_new(a, json_string(names[i]));
	return a;
}

static json_t *strings_json(char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *route_json(const struct strata_route_config *r)
{
	static const char *const query[] = {"raw", "ignore", "keep"};
	json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:b}", "path",
			      r->path, "name", r->name ? r->name : r->path,
			      "ttl",
			      r->ttl_origin ? json_string("origin")
					    : duration_json(r->ttl_ms),
			      "methods",
			      methods_json(r->methods), "vary",
			      strings_json(r->vary, r->n_vary), "query",
			      query[r->query >= 0 && r->query <= 2 ? r->query
								    : 0],
			      "force", r->force);

	json_object_set_new(o, "default_ttl", duration_json(r->default_ttl_ms));
	json_object_set_new(o, "stale_while_revalidate",
			    duration_json(r->stale_while_revalidate_ms));
	json_object_set_new(o, "stale_if_error",
			    duration_json(r->stale_if_error_ms));
	json_object_set_new(o, "keep", duration_json(r->keep_ms));
	json_object_set_new(o, "etag", json_string(r->etag_generate
							   ? "generate"
							   : "off"));
	if (r->query == STRATA_ROUTE_QUERY_KEEP)
		json_object_set_new(o, "query_keep",
				    strings_json(r->query_keep,
						 r->n_query_keep));
	return o;
}

/* The document; secrets as "***" when `redact`.  NULL: out of memory. */
static json_t *dump(const struct strata_config *cfg, bool redact)
{
	static const char *const sync[] = {"none", "meta", "full"};
	static const char *const corrupt[] = {"move", "fail"};
	static const char *const levels[] = {"error", "warn", "info",
					     "debug"};
	json_t *routes = json_array();

	for (size_t i = 0; i < cfg->n_routes; i++)
		json_array_append_new(routes, route_json(&cfg->routes[i]));
	return json_pack(
		"{s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:b,"
		" s:{s:s, s:s},"
		" s:{s:s, s:o, s:o, s:i, s:b},"
		" s:{s:s, s:s},"
		" s:{s:o, s:o, s:o,"
		"    s:{s:b, s:s, s:o, s:s, s:s},"
		"    s:{s:o, s:s, s:o, s:i, s:o, s:o, s:I, s:I}},"
		" s:o, s:o}",
		"listen", cfg->listen, "workers", (int)cfg->workers,
		"max_connections", (int)cfg->max_connections,
		"max_request_body", size_json(cfg->max_request_body),
		"max_header_size", size_json(cfg->max_header_size),
		"client_timeout", duration_json(cfg->client_timeout_ms),
		"shutdown_timeout", duration_json(cfg->shutdown_timeout_ms),
		"access_log", cfg->access_log,
		"log", "format", cfg->log.format == STRATA_CONFIG_LOG_JSON
					 ? "json" : "text",
		"level", levels[cfg->log.level >= 0 && cfg->log.level <= 3
					? cfg->log.level : 2],
		"upstream", "url", cfg->upstream.url ? cfg->upstream.url : "",
		"connect_timeout",
		duration_json(cfg->upstream.connect_timeout_ms), "timeout",
		duration_json(cfg->upstream.timeout_ms), "max_connections",
		(int)cfg->upstream.max_connections, "preserve_host",
		cfg->upstream.preserve_host,
		"admin", "listen", cfg->admin.listen ? cfg->admin.listen : "",
		"token", cfg->admin.token == NULL ? ""
			 : redact ? "***" : cfg->admin.token,
		"cache", "memory", size_json(cfg->cache.memory),
		"max_object_size", size_json(cfg->cache.max_object_size),
		"tags_header", str_or_null(cfg->cache.tags_header),
		"disk", "enabled", cfg->cache.disk.enabled, "path",
		cfg->cache.disk.path ? cfg->cache.disk.path : "", "size",
		size_json(cfg->cache.disk.size), "sync",
		sync[cfg->cache.disk.sync >= 0 && cfg->cache.disk.sync <= 2
			     ? cfg->cache.disk.sync
			     : 1],
		"on_corrupt",
		corrupt[cfg->cache.disk.on_corrupt == 1 ? 1 : 0],
		"redis", "url", url_json(cfg->cache.redis.url, redact),
		"prefix",
		cfg->cache.redis.prefix ? cfg->cache.redis.prefix : "strata",
		"timeout", duration_json(cfg->cache.redis.timeout_ms), "pool",
		(int)cfg->cache.redis.pool, "lock_ttl",
		duration_json(cfg->cache.redis.lock_ttl_ms), "lock_wait",
		duration_json(cfg->cache.redis.lock_wait_ms), "purge_log",
		(json_int_t)cfg->cache.redis.purge_log, "queue",
		(json_int_t)cfg->cache.redis.queue,
		"routes", routes, "file", str_or_null(cfg->file));
}

char *strata_config_dump_json(const struct strata_config *cfg)
{
	json_t *doc = dump(cfg, true);
	char *text;

	if (doc == NULL)
		return NULL;
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

/* Append "prefix.key" for every leaf that differs between a and b (either
 * may be NULL: a key only one side has).  Routes compare as one value. */
static int diff_into(json_t *a, json_t *b, const char *prefix, json_t *out)
{
	const char *key;
	json_t *v;
	char path[128];

	if (json_is_object(a) && json_is_object(b)) {
		json_object_foreach(a, key, v) {
			snprintf(path, sizeof(path), "%s%s%s", prefix,
				 prefix[0] ? "." : "", key);
			if (diff_into(v, json_object_get(b, key), path, out))
				return -ENOMEM;
		}
		json_object_foreach(b, key, v) {
			if (json_object_get(a, key) != NULL)
				continue;
			snprintf(path, sizeof(path), "%s%s%s", prefix,
				 prefix[0] ? "." : "", key);
			if (json_array_append_new(out, json_string(path)))
				return -ENOMEM;
		}
		return 0;
	}
	if (json_equal(a, b))
		return 0;
	return json_array_append_new(out, json_string(prefix)) ? -ENOMEM : 0;
}

char *strata_config_snapshot(const struct strata_config *cfg)
{
	json_t *doc = dump(cfg, false);
	char *text;

	if (doc == NULL)
		return NULL;
	/* Which file was read is not a setting. */
	json_object_del(doc, "file");
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	return text;
}

char *strata_config_diff_json(const char *a, const char *b)
{
	json_t *da = json_loads(a, 0, NULL), *db = json_loads(b, 0, NULL),
	       *out = json_array();
	char *text = NULL;

	if (da != NULL && db != NULL && out != NULL &&
	    diff_into(da, db, "", out) == 0)
		text = json_dumps(out, JSON_COMPACT);
	json_decref(da);
	json_decref(db);
	json_decref(out);
	return text;
}
