/*
 * config_dump.h: the effective configuration as JSON, for GET
 * /admin/config.
 *
 * The same structure as the YAML file (strata.yaml(5)), with sizes and
 * durations written as the file would ("256MiB", "30s") and secrets
 * replaced by "***": admin.token, and the password of cache.redis.url.
 */
#ifndef STRATA_CORE_CONFIG_DUMP_H
#define STRATA_CORE_CONFIG_DUMP_H

#include "strata/config.h"

/* A new malloc'd NUL-terminated JSON document (the caller frees), or NULL
 * when out of memory. */
char *strata_config_dump_json(const struct strata_config *cfg);

/*
 * Every setting of `cfg`, secrets in clear, as a malloc'd JSON string to
 * keep and compare later with strata_config_diff_json(); never shown to
 * anyone.  NULL when out of memory.
 */
char *strata_config_snapshot(const struct strata_config *cfg);

/*
 * What differs between two snapshots: a JSON array of dotted key names
 * ("upstream.timeout", "cache.redis.url", "admin.token"; "routes" for
 * any change to the route list), naming keys only, never values.  A new
 * malloc'd string (the caller frees), or NULL when out of memory.
 */
char *strata_config_diff_json(const char *a, const char *b);

#endif /* STRATA_CORE_CONFIG_DUMP_H */
