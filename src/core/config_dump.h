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

#endif /* STRATA_CORE_CONFIG_DUMP_H */
