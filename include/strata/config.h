/*
 * config.h: Strata's configuration, as a validated plain struct.
 *
 * A configuration is assembled in layers, lowest precedence first:
 * built-in defaults (strata_config_new), a YAML file
 * (strata_config_load_file), the environment (strata_config_apply_env) and
 * command-line settings (strata_config_set / strata_config_add_route).
 * Every layer goes through the same key table and the same value parsers,
 * so a key means the same thing wherever it comes from.  strata_config_finish()
 * validates the result; only a finished configuration may build a server.
 *
 * Errors are reported as one line each, naming the source (file:line or
 * "environment STRATA_X" or "--flag"), the key and the fix, written to the
 * caller's error buffer.  Not thread-safe: a configuration is built by one
 * thread, then read-only.
 */
#ifndef STRATA_CONFIG_H
#define STRATA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* HTTP methods a route may list, as bits. */
enum strata_method {
	STRATA_METHOD_GET = 1u << 0,
	STRATA_METHOD_HEAD = 1u << 1,
	STRATA_METHOD_POST = 1u << 2,
	STRATA_METHOD_PUT = 1u << 3,
	STRATA_METHOD_DELETE = 1u << 4,
	STRATA_METHOD_PATCH = 1u << 5,
	STRATA_METHOD_OPTIONS = 1u << 6,
	STRATA_METHOD_OTHER = 1u << 7,   /* any method not listed above */
};

/* What a route's cache key takes from the query string (`query:`). */
enum strata_route_query {
	STRATA_ROUTE_QUERY_RAW = 0,    /* the query as received (default) */
	STRATA_ROUTE_QUERY_IGNORE = 1, /* no query in the key */
	STRATA_ROUTE_QUERY_KEEP = 2,   /* only query_keep's parameters,
					  sorted */
};

/*
 * How the disk tier commits (`cache.disk.sync`).  The values equal
 * src/tier/disk.h's enum strata_disk_sync, in order.
 */
enum strata_config_disk_sync {
	STRATA_CONFIG_DISK_SYNC_NONE,  /* "none": no fsync; an OS crash may
					  lose recent writes or corrupt */
	STRATA_CONFIG_DISK_SYNC_META,  /* "meta": data synced, meta page not;
					  an OS crash may undo the last
					  commit, never corrupt (default) */
	STRATA_CONFIG_DISK_SYNC_FULL,  /* "full": every commit durable */
};

/*
 * What the disk tier does with an unusable database at start-up
 * (`cache.disk.on_corrupt`).  The values equal src/tier/disk.h's enum
 * strata_disk_on_corrupt, in order.
 */
enum strata_config_disk_corrupt {
	STRATA_CONFIG_DISK_CORRUPT_MOVE, /* "move": set it aside, start empty
					    (default) */
	STRATA_CONFIG_DISK_CORRUPT_FAIL, /* "fail": refuse to start */
};

/*
 * The format of stderr's lines (`log.format`).  The values equal
 * src/core/log.h's enum strata_log_format.
 */
enum strata_config_log_format {
	STRATA_CONFIG_LOG_TEXT,    /* "text": plain lines, the access line in
				      the combined log format (default) */
	STRATA_CONFIG_LOG_JSON,    /* "json": one JSON object per line */
};

/*
 * The most detailed diagnostics written (`log.level`).  The values equal
 * src/core/log.h's enum strata_log_level.
 */
enum strata_config_log_level {
	STRATA_CONFIG_LOG_ERROR = 0,   /* "error" */
	STRATA_CONFIG_LOG_WARN = 1,    /* "warn" */
	STRATA_CONFIG_LOG_INFO = 2,    /* "info" (default) */
	STRATA_CONFIG_LOG_DEBUG = 3,   /* "debug" */
};

/* One `routes:` entry as configured (before compilation into a table). */
struct strata_route_config {
	char *path;            /* pattern, see strata.yaml(5) */
	char *name;            /* defaults to path */
	uint64_t ttl_ms;       /* 0: never cached, pass through */
	unsigned methods;      /* STRATA_METHOD_* bits; default GET|HEAD */
	char **vary;           /* header names whose values join the key */
	size_t n_vary;
	int query;             /* STRATA_ROUTE_QUERY_*; default RAW */
	char **query_keep;     /* parameter names (raw bytes), for KEEP */
	size_t n_query_keep;   /* at least one when query is KEEP */
	bool force;            /* store even responses marked private or
				  no-store, with Set-Cookie, or to requests
				  with Authorization; default false */
	bool ttl_origin;       /* `ttl: origin`: freshness from the
				  response (RFC 9111); ttl_ms is then 0 */
	uint64_t default_ttl_ms; /* ttl: origin and the response says
				    nothing: this freshness; 0 (default):
				    not stored */
	uint64_t stale_while_revalidate_ms; /* serve stale this long while
					       refreshing; default 0 */
	uint64_t stale_if_error_ms; /* serve stale this long when the
				       upstream fails; default 0 */
	uint64_t keep_ms;      /* keep entries with a validator this long
				  past expiry, for revalidation; default
				  1h */
	bool etag_generate;    /* `etag: generate`: an ETag from the body
				  when the origin gave none */
	char *source;          /* for messages: "strata.yaml:14", or the
				  caller's source and the spec:
				  "--route \"/slow=60s\"" */
};

struct strata_config {
	char *listen;                  /* host:port of the proxy listener */
	unsigned workers;              /* libmicrohttpd thread-pool size */
	unsigned max_connections;      /* client connections, whole server */
	uint64_t max_request_body;     /* bytes; larger requests get 413 */
	uint64_t max_header_size;      /* bytes of request line + headers */
	uint64_t client_timeout_ms;    /* idle client connection timeout */
	uint64_t shutdown_timeout_ms;  /* drain bound on SIGTERM/SIGINT */
	bool access_log;               /* one line per request on stderr;
					  also spelled log.access */

	struct {
		int format;                /* STRATA_CONFIG_LOG_TEXT or _JSON;
					      default TEXT */
		int level;                 /* STRATA_CONFIG_LOG_*, default
					      INFO */
	} log;

	struct {
		char *url;                 /* http://host:port[/base] */
		uint64_t connect_timeout_ms;
		uint64_t timeout_ms;       /* headers wait and every idle gap */
		unsigned max_connections;
		bool preserve_host;        /* forward the client's Host */
	} upstream;

	struct {
		char *listen;              /* host:port, loopback by default */
		char *token;               /* bearer token, NULL when unset */
	} admin;

	struct {
		uint64_t memory;           /* tier 1 budget, bytes */
		uint64_t max_object_size;  /* larger responses are streamed */
		struct {
			bool enabled;      /* default true; `disk: off` */
			char *path;        /* directory, never NULL or "";
					      default $STATE_DIRECTORY (its
					      first entry), else
					      ./strata-data */
			uint64_t size;     /* LMDB map size, bytes; 1MiB to
					      1TiB, default 4GiB */
			int sync;          /* STRATA_CONFIG_DISK_SYNC_*,
					      default META */
			int on_corrupt;    /* STRATA_CONFIG_DISK_CORRUPT_*,
					      default MOVE */
		} disk;                    /* tier 2 (LMDB) */
		struct {
			char *url;         /* NULL (default): tier off;
					      redis://[[user]:pass@]host[:port][/db]
					      or unix:///path[?db=N] */
			char *prefix;      /* key namespace; default "strata" */
			uint64_t timeout_ms;   /* connect and per command;
						  default 50ms */
			unsigned pool;     /* connections (worker threads);
					      default 8 */
			uint64_t lock_ttl_ms;  /* fleet fill lock's life
						  unless its holder extends
						  it; default 3s */
			uint64_t lock_wait_ms; /* wait for another instance's
						  fill; 0 (default): the
						  upstream timeout */
			uint64_t purge_log;    /* purge stream length kept
						  (XADD MAXLEN ~); default
						  100000 */
			uint64_t queue;        /* operations queued before
						  writes are dropped and
						  lookups refused; default
						  8192 */
		} redis;                   /* tier 3 (shared) */
		char *tags_header;         /* response header whose space-
					      separated values tag the entry;
					      default "Surrogate-Key"; "" off */
	} cache;

	struct strata_route_config *routes;
	size_t n_routes;

	char *file;                    /* the file loaded, if any */
};

/* Largest error message the config functions write. */
#define STRATA_CONFIG_ERRLEN 512

/*
 * A configuration holding every default.  The disk tier's default path
 * comes from the environment at this call: the first ':'-separated entry
 * of $STATE_DIRECTORY (set by systemd's StateDirectory=), else
 * "./strata-data".  Nothing is created on disk, here or by any other
 * config function.  Returns NULL only when out of memory.  Release with
 * strata_config_free().
 */
struct strata_config *strata_config_new(void);

/* Release a configuration and set *cfg to NULL.  Accepts NULL. */
void strata_config_free(struct strata_config **cfg);

/*
 * Read a YAML file over `cfg`.  `${VAR}` and `${VAR:-default}` in scalar
 * values expand from the process environment (`$${` is a literal `${`).
 * A `routes:` key in the file replaces any routes in `cfg`; a file without
 * one keeps them.  On success cfg->file is set to `path`.
 * Returns 0, or STRATA_ECONFIG with a "file:line: key: problem (fix)"
 * message in err, or a negative errno (-ENOENT, ...) when the file cannot
 * be read.  After an error `cfg` may hold some of the file's settings
 * (never some of its routes): discard it.
 */
int strata_config_load_file(struct strata_config *cfg, const char *path,
			    char *err, size_t errlen);

/* The same, from a YAML document in memory; `name` stands for the file. */
int strata_config_load_string(struct strata_config *cfg, const char *yaml,
			      const char *name, char *err, size_t errlen);

/*
 * Set one key by its dotted name ("upstream.timeout", "cache.memory"),
 * parsing `value` as the file would.  "cache.disk" takes a boolean, like
 * `disk: off` in the file: it sets cache.disk.enabled.  "cache.redis"
 * takes only `off` (or another false value: false, no, 0), like
 * `redis: off`: it sets cache.redis.url to NULL, turning the Redis tier
 * off and leaving the other cache.redis keys as they are; any other
 * value, `on` included, is an error (the URL turns the tier on).
 * `source` names where the value came from for error messages
 * ("--workers", "environment STRATA_WORKERS").
 * Returns 0 or STRATA_ECONFIG (unknown key or bad value).
 */
int strata_config_set(struct strata_config *cfg, const char *key,
		      const char *value, const char *source,
		      char *err, size_t errlen);

/*
 * Append a route given as "PATH=TTL" (such as "/slow=60s") with default
 * methods and no vary headers.  The split is at the last "=".  The pattern
 * and TTL are checked here; duplicates are found by strata_config_finish().
 * `source` (e.g. "--route") starts any error message.
 * Returns 0 or STRATA_ECONFIG.
 */
int strata_config_add_route(struct strata_config *cfg, const char *spec,
			    const char *source, char *err, size_t errlen);

/* Drop every route (a layer that sets routes replaces lower layers'). */
void strata_config_clear_routes(struct strata_config *cfg);

/*
 * Apply STRATA_* variables from `envp` (NULL-terminated, like environ;
 * NULL means environ).  Every key is read from STRATA_<KEY> (dots to
 * underscores, upper case: STRATA_UPSTREAM_TIMEOUT), and a few have short
 * names (STRATA_UPSTREAM, STRATA_MEMORY, STRATA_MAX_OBJECT_SIZE,
 * STRATA_REDIS_URL for cache.redis.url); the table is in config.c and
 * strata(8).  STRATA_ROUTES holds PATH=TTL routes separated by commas and
 * replaces the file's routes.  Other STRATA_* names are ignored.  Returns
 * 0 or STRATA_ECONFIG.
 */
int strata_config_apply_env(struct strata_config *cfg, char *const *envp,
			    char *err, size_t errlen);

/*
 * Validate the assembled configuration: every value is in range, listen
 * addresses parse (IPv4, localhost or [IPv6], port 0-65535), the upstream
 * URL is http(s) with a host, the admin listener is loopback or has a
 * token (an empty token becomes NULL), listen and admin.listen differ,
 * routes compile without duplicates.  Returns 0 or STRATA_ECONFIG.
 */
int strata_config_finish(struct strata_config *cfg, char *err,
			 size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_CONFIG_H */
