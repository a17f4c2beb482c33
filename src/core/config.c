/*
 * config.c: Strata's configuration, from defaults, a YAML file, the
 * environment and the command line, through one key table.
 *
 * Every scalar setting is a row of `options` below (Redis's config.c
 * does the same): its dotted name, its type, where it lives in struct
 * strata_config, its bounds and its default.  The YAML walker, the
 * environment and strata_config_set() all find a key in that table and
 * hand its text to set_option(), so "30s" or "256MiB" parse the same way
 * and fail with the same message wherever they come from.  Only routes,
 * which are a list of records rather than a scalar, have their own code.
 *
 * A section with an `enabled` key may also be written as a boolean scalar:
 * `disk: off` means cache.disk.enabled: false, in the file and in
 * `--set cache.disk=off`.  A section whose tier is on when its `url` is
 * set (cache.redis) takes only `off`, which unsets the URL: there is no
 * `on` without a URL to turn on.
 *
 * Errors are one line: "<source>: <key>: <problem> (<fix>)", where the
 * source is "file:line", "environment STRATA_X" or a command-line flag.
 * Line numbers come from libfyaml's tokens; libfyaml's own diagnostics are
 * collected instead of printed, so a YAML syntax error is reported in the
 * same shape.
 *
 * A layer that fails may leave the settings it had already applied, but
 * routes are swapped in only when a whole layer succeeded.  Callers treat
 * any error as fatal to the configuration being built.
 */
#include "config.h"

#include "strata/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libfyaml.h>

#include "core/log.h"
#include "core/route.h"
#include "core/units.h"
#include "strata/strata.h"
#include "tier/disk.h"
#include "tier/redis.h"

extern char **environ;

/* --- the key table -------------------------------------------------------- */

enum opt_type {
	OPT_STRING,    /* char *; an empty value unsets it (NULL) */
	OPT_UINT,      /* unsigned */
	OPT_SIZE,      /* uint64_t bytes */
	OPT_DURATION,  /* uint64_t milliseconds */
	OPT_BOOL,      /* bool */
	OPT_URL,       /* char *, http:// or https:// */
	OPT_HOSTPORT,  /* char *, host:port */
	OPT_PATH,      /* char *, a file system path; never empty */
	OPT_ENUM,      /* int, the index of a name in opt->choices */
	OPT_COUNT,     /* uint64_t, a plain number of things */
	OPT_REDIS_URL, /* char *, redis:// or unix://; empty unsets it (NULL:
			  the tier is off) */
	OPT_PREFIX,    /* char *, a Redis key prefix; never empty */
	OPT_HEADER,    /* char *, an HTTP field name, or "" for none (kept as
			  "", not NULL) */
};

/* The names an OPT_ENUM accepts; a name's index is the value stored. */
struct choices {
	const char *what;            /* for messages: "a sync mode" */
	const char *names[6];        /* NULL-terminated */
};

/* The public enums and the disk tier's must agree: the server casts. */
_Static_assert(STRATA_CONFIG_DISK_SYNC_NONE == (int)STRATA_DISK_SYNC_NONE &&
	       STRATA_CONFIG_DISK_SYNC_META == (int)STRATA_DISK_SYNC_META &&
	       STRATA_CONFIG_DISK_SYNC_FULL == (int)STRATA_DISK_SYNC_FULL,
	       "enum strata_config_disk_sync != enum strata_disk_sync");
_Static_assert(STRATA_CONFIG_DISK_CORRUPT_MOVE ==
		       (int)STRATA_DISK_CORRUPT_MOVE &&
	       STRATA_CONFIG_DISK_CORRUPT_FAIL ==
		       (int)STRATA_DISK_CORRUPT_FAIL,
	       "enum strata_config_disk_corrupt != enum strata_disk_on_corrupt");

_Static_assert(STRATA_CONFIG_LOG_TEXT == (int)STRATA_LOG_TEXT &&
	       STRATA_CONFIG_LOG_JSON == (int)STRATA_LOG_JSON,
	       "enum strata_config_log_format != enum strata_log_format");
_Static_assert(STRATA_CONFIG_LOG_ERROR == (int)STRATA_LOG_ERROR &&
	       STRATA_CONFIG_LOG_WARN == (int)STRATA_LOG_WARN &&
	       STRATA_CONFIG_LOG_INFO == (int)STRATA_LOG_INFO &&
	       STRATA_CONFIG_LOG_DEBUG == (int)STRATA_LOG_DEBUG,
	       "enum strata_config_log_level != enum strata_log_level");

/* In enum strata_config_log_format order. */
static const struct choices log_format = {
	"a log format", { "text", "json", NULL },
};

/* In enum strata_config_log_level order. */
static const struct choices log_level = {
	"a log level", { "error", "warn", "info", "debug", NULL },
};

/* In enum strata_config_disk_sync order. */
static const struct choices disk_sync = {
	"a sync mode", { "none", "meta", "full", NULL },
};

/* In enum strata_config_disk_corrupt order. */
static const struct choices disk_on_corrupt = {
	"an on_corrupt action", { "move", "fail", NULL },
};

struct option {
	const char *key;         /* dotted name, as in YAML */
	enum opt_type type;
	size_t offset;           /* into struct strata_config */
	uint64_t min, max;       /* numeric types: inclusive bounds */
	const char *def;         /* default, parsed like any other value */
	const char *env_alias;   /* short environment name, or NULL */
	const struct choices *choices;   /* OPT_ENUM only */
};

#define OFF(field) offsetof(struct strata_config, field)
#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define TIB (UINT64_C(1) << 40)
#define SEC UINT64_C(1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)

/*
 * Environment names.  Every key below is also read from STRATA_<KEY>: the
 * dotted name upper-cased, "." turned into "_" (STRATA_UPSTREAM_TIMEOUT,
 * STRATA_SHUTDOWN_TIMEOUT, STRATA_CACHE_MEMORY, STRATA_CACHE_DISK_PATH,
 * ...).  A few keys also have a short name matching the command-line
 * option of the same name; when both are set the short name wins:
 *
 *   STRATA_LISTEN            listen                  --listen
 *   STRATA_WORKERS           workers                 --workers
 *   STRATA_UPSTREAM          upstream.url            --upstream
 *   STRATA_ADMIN_LISTEN      admin.listen            --admin-listen
 *   STRATA_ADMIN_TOKEN       admin.token             (no flag: keep it
 *                                                     out of `ps`)
 *   STRATA_MEMORY            cache.memory            --memory
 *   STRATA_MAX_OBJECT_SIZE   cache.max_object_size   --max-object-size
 *   STRATA_REDIS_URL         cache.redis.url         (no flag: the URL
 *                                                     may hold a password)
 *   STRATA_ROUTES            routes, "PATH=TTL,..."  --route PATH=TTL
 *
 * STRATA_ROUTES replaces every route from lower layers.  Any other
 * STRATA_* name is ignored (STRATA_CONFIG belongs to main).
 */
static const struct option options[] = {
	{ "listen", OPT_HOSTPORT, OFF(listen), 0, 0,
	  "127.0.0.1:8080", "STRATA_LISTEN", NULL },
	{ "workers", OPT_UINT, OFF(workers), 1, 1024,
	  NULL /* online CPUs */, "STRATA_WORKERS", NULL },
	{ "max_connections", OPT_UINT, OFF(max_connections), 1, 1000000,
	  "10000", NULL, NULL },
	{ "max_request_body", OPT_SIZE, OFF(max_request_body), 0, UINT64_MAX,
	  "10MiB", NULL, NULL },
	{ "max_header_size", OPT_SIZE, OFF(max_header_size), 1 * KIB, 16 * MIB,
	  "16KiB", NULL, NULL },
	{ "client_timeout", OPT_DURATION, OFF(client_timeout_ms), 1 * SEC,
	  24 * HOUR, "60s", NULL, NULL },
	{ "shutdown_timeout", OPT_DURATION, OFF(shutdown_timeout_ms), 0,
	  1 * HOUR, "10s", NULL, NULL },
	{ "access_log", OPT_BOOL, OFF(access_log), 0, 0, "true", NULL, NULL },
	/*
	 * The log section.  log.access is a second name for access_log: two
	 * rows, one field.  Whichever a layer sets last wins; in the
	 * environment STRATA_LOG_ACCESS is read after STRATA_ACCESS_LOG, so
	 * the new name wins when both are set.
	 */
	{ "log.format", OPT_ENUM, OFF(log.format), 0, 0, "text", NULL,
	  &log_format },
	{ "log.level", OPT_ENUM, OFF(log.level), 0, 0, "info", NULL,
	  &log_level },
	{ "log.access", OPT_BOOL, OFF(access_log), 0, 0, "true", NULL, NULL },
	{ "upstream.url", OPT_URL, OFF(upstream.url), 0, 0,
	  "http://127.0.0.1:8000", "STRATA_UPSTREAM", NULL },
	{ "upstream.connect_timeout", OPT_DURATION,
	  OFF(upstream.connect_timeout_ms), 1, 10 * MINUTE, "2s", NULL, NULL },
	{ "upstream.timeout", OPT_DURATION, OFF(upstream.timeout_ms), 1,
	  24 * HOUR, "30s", NULL, NULL },
	{ "upstream.max_connections", OPT_UINT, OFF(upstream.max_connections),
	  1, 65536, "256", NULL, NULL },
	{ "upstream.preserve_host", OPT_BOOL, OFF(upstream.preserve_host), 0, 0,
	  "true", NULL, NULL },
	{ "admin.listen", OPT_HOSTPORT, OFF(admin.listen), 0, 0,
	  "127.0.0.1:8081", "STRATA_ADMIN_LISTEN", NULL },
	{ "admin.token", OPT_STRING, OFF(admin.token), 0, 0, "",
	  "STRATA_ADMIN_TOKEN", NULL },
	{ "cache.memory", OPT_SIZE, OFF(cache.memory), 0, UINT64_MAX,
	  "256MiB", "STRATA_MEMORY", NULL },
	{ "cache.max_object_size", OPT_SIZE, OFF(cache.max_object_size), 0,
	  UINT64_MAX, "8MiB", "STRATA_MAX_OBJECT_SIZE", NULL },
	{ "cache.disk.path", OPT_PATH, OFF(cache.disk.path), 0, 0,
	  NULL /* default_disk_path() */, NULL, NULL },
	/* The map is address space, not memory: the file grows as it fills. */
	{ "cache.disk.size", OPT_SIZE, OFF(cache.disk.size), 1 * MIB, 1 * TIB,
	  "4GiB", NULL, NULL },
	{ "cache.disk.sync", OPT_ENUM, OFF(cache.disk.sync), 0, 0, "meta",
	  NULL, &disk_sync },
	{ "cache.disk.on_corrupt", OPT_ENUM, OFF(cache.disk.on_corrupt), 0, 0,
	  "move", NULL, &disk_on_corrupt },
	{ "cache.disk.enabled", OPT_BOOL, OFF(cache.disk.enabled), 0, 0,
	  "true", NULL, NULL },
	/* Unset by default: the shared tier is opt-in. */
	{ "cache.redis.url", OPT_REDIS_URL, OFF(cache.redis.url), 0, 0, NULL,
	  "STRATA_REDIS_URL", NULL },
	{ "cache.redis.prefix", OPT_PREFIX, OFF(cache.redis.prefix), 0, 0,
	  "strata", NULL, NULL },
	{ "cache.redis.timeout", OPT_DURATION, OFF(cache.redis.timeout_ms), 1,
	  1 * MINUTE, "50ms", NULL, NULL },
	{ "cache.redis.pool", OPT_UINT, OFF(cache.redis.pool), 1, 64, "8",
	  NULL, NULL },
	/* Extended while held (tier/redis_async.c): only a dead holder's
	 * lock lives this long, so short. */
	{ "cache.redis.lock_ttl", OPT_DURATION, OFF(cache.redis.lock_ttl_ms),
	  100, 1 * HOUR, "3s", NULL, NULL },
	/* 0: wait as long as upstream.timeout (the server resolves it). */
	{ "cache.redis.lock_wait", OPT_DURATION, OFF(cache.redis.lock_wait_ms),
	  0, 1 * HOUR, "0", NULL, NULL },
	{ "cache.redis.purge_log", OPT_COUNT, OFF(cache.redis.purge_log), 100,
	  100000000, "100000", NULL, NULL },
	{ "cache.redis.queue", OPT_COUNT, OFF(cache.redis.queue), 16, 1048576,
	  "8192", NULL, NULL },
	{ "cache.tags_header", OPT_HEADER, OFF(cache.tags_header), 0, 0,
	  "Surrogate-Key", NULL, NULL },
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* A route's ttl goes through the same parser as the table's durations. */
static const struct option route_ttl = {
	"ttl", OPT_DURATION, 0, 0, UINT64_MAX, NULL, NULL, NULL,
};

static const char *const route_keys[] = {
	"path", "name", "ttl", "methods", "vary", "query", "force",
	"default_ttl", "stale_while_revalidate", "stale_if_error", "keep",
	"etag",
};

#define DEFAULT_METHODS (STRATA_METHOD_GET | STRATA_METHOD_HEAD)

/* How long an entry with a validator is kept past expiry (route `keep`),
 * as Varnish's default keep. */
#define DEFAULT_KEEP_MS (3600u * 1000u)

static const struct option *find_option(const char *key)
{
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (strcmp(options[i].key, key) == 0)
			return &options[i];
	}
	return NULL;
}

static void *option_ptr(struct strata_config *cfg, const struct option *opt)
{
	return (char *)cfg + opt->offset;
}

static bool option_is_text(const struct option *opt)
{
	return opt->type == OPT_STRING || opt->type == OPT_URL ||
	       opt->type == OPT_HOSTPORT || opt->type == OPT_PATH ||
	       opt->type == OPT_REDIS_URL || opt->type == OPT_PREFIX ||
	       opt->type == OPT_HEADER;
}

/* "none, meta or full" */
static void choices_text(const struct choices *c, char *buf, size_t len)
{
	size_t n = 0, used = 0;

	while (c->names[n])
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
					 i == 0 ? "" : i + 1 == n ? " or " : ", ",
					 c->names[i]);
}

/* The index of `text` among the choices (any case), or -1. */
static int choice_index(const struct choices *c, const char *text)
{
	for (int i = 0; c->names[i]; i++) {
		if (strcasecmp(c->names[i], text) == 0)
			return i;
	}
	return -1;
}

/* --- small text helpers --------------------------------------------------- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* An HTTP field name is a non-empty RFC 9110 token. */
static bool is_header_name(const char *text)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	return text[0] && strspn(text, tchar) == strlen(text);
}

/* Whether a one-line message may quote `text`: no control bytes. */
static bool is_printable(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p < ' ' || *p == 0x7f)
			return false;
	}
	return true;
}

static char *strdup_printf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static char *strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

/*
 * Optimal string alignment distance (Levenshtein plus transpositions),
 * ignoring ASCII case: "upstrem", "Workers" and "tll" are all one edit
 * from what was meant.  Names longer than 63 bytes are never close.
 */
static unsigned edit_distance(const char *a, const char *b)
{
	unsigned char d[64][64];
	size_t la = strlen(a), lb = strlen(b);

	if (la > 63 || lb > 63)
		return UINT_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned char)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned char)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned cost = tolower((unsigned char)a[i - 1]) !=
					tolower((unsigned char)b[j - 1]);
			unsigned best = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1u < best)
				best = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < best)
				best = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1u < best)
				best = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)best;
		}
	}
	return d[la][lb];
}

/* The candidate closest to `name`, if it is close enough to be a typo. */
static const char *closest(const char *name, const char *const *candidates,
			   size_t n)
{
	unsigned limit = strlen(name) <= 3 ? 1 : 2;
	unsigned best = UINT_MAX;
	const char *found = NULL;

	for (size_t i = 0; i < n; i++) {
		unsigned d = edit_distance(name, candidates[i]);

		if (d <= limit && d < best) {
			best = d;
			found = candidates[i];
		}
	}
	return found;
}

/*
 * "(did you mean "x"?)" or "(known keys: a, b, c)": the fix for an unknown
 * key.
 */
static void unknown_key_fix(const char *name, const char *const *candidates,
			    size_t n, char *buf, size_t len)
{
	const char *near = closest(name, candidates, n);
	size_t used;

	if (near) {
		snprintf(buf, len, "(did you mean \"%s\"?)", near);
		return;
	}
	used = (size_t)snprintf(buf, len, "(known keys:");
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s %s",
					 i ? "," : "", candidates[i]);
	if (used < len)
		snprintf(buf + used, len - used, ")");
}

/*
 * The distinct names one level below `prefix` ("" for the top level,
 * "upstream." for its section), in table order.
 */
static size_t level_names(const char *prefix, char names[][32], size_t max)
{
	size_t plen = strlen(prefix), n = 0;

	for (size_t i = 0; i < N_OPTIONS && n < max; i++) {
		const char *rest;
		size_t len;
		bool seen = false;

		if (strncmp(options[i].key, prefix, plen) != 0)
			continue;
		rest = options[i].key + plen;
		len = strcspn(rest, ".");
		if (len >= 32)
			continue;
		for (size_t j = 0; j < n && !seen; j++)
			seen = strlen(names[j]) == len &&
			       memcmp(names[j], rest, len) == 0;
		if (seen)
			continue;
		memcpy(names[n], rest, len);
		names[n][len] = '\0';
		n++;
	}
	if (plen == 0 && n < max)
		strcpy(names[n++], "routes");
	return n;
}

/* --- value parsers -------------------------------------------------------- */

/*
 * A parsed value, before it is stored: `text` is owned until stored.
 */
struct value {
	uint64_t number;
	bool flag;
	char *text;
};

static int parse_whole(const char *text, uint64_t *out)
{
	const char *p = text;
	uint64_t n = 0;

	while (is_blank(*p))
		p++;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (n > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		n = n * 10 + digit;
	}
	while (is_blank(*p))
		p++;
	if (*p)
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

struct unit_word {
	const char *word;
	double factor;
	bool decimal;   /* sizes: a power of 1000 */
};

/*
 * Read "<number> <word>" loosely (fractions, long or lower-case unit
 * names) so a rejected value can be answered with its exact spelling.
 * Returns false when the text is not even loosely a quantity, or does not
 * come to a whole number of base units.
 */
static bool loose_quantity(const char *text, const struct unit_word *words,
			   size_t n_words, double bare, uint64_t *out,
			   bool *decimal)
{
	const char *p = text;
	char *end;
	double number, factor = bare;
	size_t len;

	while (is_blank(*p))
		p++;
	if (!((*p >= '0' && *p <= '9') || *p == '.'))
		return false;
	number = strtod(p, &end);
	if (end == p || !(number >= 0) || number > 1e15)
		return false;
	while (is_blank(*end))
		end++;
	len = strlen(end);
	while (len && is_blank(end[len - 1]))
		len--;
	*decimal = false;
	if (len) {
		size_t i;

		for (i = 0; i < n_words; i++) {
			if (strlen(words[i].word) == len &&
			    strncasecmp(words[i].word, end, len) == 0)
				break;
		}
		if (i == n_words)
			return false;
		factor = words[i].factor;
		*decimal = words[i].decimal;
	}
	number *= factor;
	if (number > 9e15 || (double)(uint64_t)number != number)
		return false;
	*out = (uint64_t)number;
	return true;
}

static void duration_fix(const char *text, char *buf, size_t len)
{
	static const struct unit_word words[] = {
		{ "ms", 1, false }, { "msec", 1, false },
		{ "msecs", 1, false }, { "millisecond", 1, false },
		{ "milliseconds", 1, false },
		{ "s", 1e3, false }, { "sec", 1e3, false },
		{ "secs", 1e3, false }, { "second", 1e3, false },
		{ "seconds", 1e3, false },
		{ "m", 6e4, false }, { "min", 6e4, false },
		{ "mins", 6e4, false }, { "minute", 6e4, false },
		{ "minutes", 6e4, false },
		{ "h", 3.6e6, false }, { "hr", 3.6e6, false },
		{ "hrs", 3.6e6, false }, { "hour", 3.6e6, false },
		{ "hours", 3.6e6, false },
		{ "d", 8.64e7, false }, { "day", 8.64e7, false },
		{ "days", 8.64e7, false },
	};
	uint64_t ms;
	bool decimal;
	char best[32];

	if (!loose_quantity(text, words, sizeof(words) / sizeof(words[0]),
			    1e3, &ms, &decimal) || ms == 0) {
		snprintf(buf, len, "use a whole number with ms, s, m or h, "
			 "e.g. 60s or 5m");
		return;
	}
	/* Seconds are what people count in; add the shorter form if any. */
	strata_format_duration(ms, best, sizeof(best));
	if (ms % SEC != 0 || best[strlen(best) - 1] == 's')
		snprintf(buf, len, "use %s", best);
	else
		snprintf(buf, len, "use %" PRIu64 "s or %s", ms / SEC, best);
}

/* The largest exact decimal unit: 8000000 -> "8MB". */
static void format_decimal_size(uint64_t bytes, char *buf, size_t len)
{
	static const struct { const char *name; uint64_t factor; } units[] = {
		{ "TB", UINT64_C(1000000000000) }, { "GB", UINT64_C(1000000000) },
		{ "MB", UINT64_C(1000000) }, { "KB", UINT64_C(1000) },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (bytes && bytes % units[i].factor == 0) {
			snprintf(buf, len, "%" PRIu64 "%s",
				 bytes / units[i].factor, units[i].name);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64 "B", bytes);
}

static void size_fix(const char *text, char *buf, size_t len)
{
	static const struct unit_word words[] = {
		{ "b", 1, false }, { "byte", 1, false }, { "bytes", 1, false },
		{ "k", 1024.0, false }, { "kib", 1024.0, false },
		{ "m", 1048576.0, false }, { "mib", 1048576.0, false },
		{ "g", 1073741824.0, false }, { "gib", 1073741824.0, false },
		{ "t", 1099511627776.0, false },
		{ "tib", 1099511627776.0, false },
		{ "kb", 1e3, true }, { "kilobytes", 1e3, true },
		{ "mb", 1e6, true }, { "megabytes", 1e6, true },
		{ "gb", 1e9, true }, { "gigabytes", 1e9, true },
		{ "tb", 1e12, true }, { "terabytes", 1e12, true },
	};
	uint64_t bytes;
	bool decimal;
	char best[32];

	if (!loose_quantity(text, words, sizeof(words) / sizeof(words[0]), 1,
			    &bytes, &decimal) || bytes == 0) {
		snprintf(buf, len, "use a whole number with B, KiB, MiB, GiB "
			 "or TiB, e.g. 256MiB");
		return;
	}
	if (decimal)
		format_decimal_size(bytes, best, sizeof(best));
	else
		strata_format_size(bytes, best, sizeof(best));
	snprintf(buf, len, "use %s", best);
}

/* Bounds in the option's own unit, for "(use 1 to 1024)". */
static void format_number(const struct option *opt, uint64_t n, char *buf,
			  size_t len)
{
	if (opt->type == OPT_SIZE)
		strata_format_size(n, buf, len);
	else if (opt->type == OPT_DURATION)
		strata_format_duration(n, buf, len);
	else
		snprintf(buf, len, "%" PRIu64, n);
}

/* `overflow`: the value did not even fit 64 bits. */
static void range_problem(const struct option *opt, const char *shown,
			  bool overflow, char *why, size_t whylen)
{
	char lo[32], hi[32];

	format_number(opt, opt->min, lo, sizeof(lo));
	format_number(opt, opt->max, hi, sizeof(hi));
	if (opt->max != UINT64_MAX)
		snprintf(why, whylen, "%s is out of range (use %s to %s)",
			 shown, lo, hi);
	else if (overflow)
		snprintf(why, whylen, "%s is too large (use a smaller value)",
			 shown);
	else
		snprintf(why, whylen, "%s is out of range (use at least %s)",
			 shown, lo);
}

static int number_value(const struct option *opt, const char *text,
			uint64_t *out, char *why, size_t whylen)
{
	char fix[96];
	int rc;

	switch (opt->type) {
	case OPT_SIZE:
		rc = strata_parse_size(text, out);
		if (rc == -EINVAL) {
			size_fix(text, fix, sizeof(fix));
			snprintf(why, whylen, "\"%s\" is not a size (%s)", text,
				 fix);
			return rc;
		}
		break;
	case OPT_DURATION:
		rc = strata_parse_duration(text, out);
		if (rc == -EINVAL) {
			duration_fix(text, fix, sizeof(fix));
			snprintf(why, whylen, "\"%s\" is not a duration (%s)",
				 text, fix);
			return rc;
		}
		break;
	default:
		rc = parse_whole(text, out);
		if (rc == -EINVAL) {
			snprintf(why, whylen, "\"%s\" is not a whole number "
				 "(use e.g. %s)", text, opt->def ? opt->def : "4");
			return rc;
		}
		break;
	}
	if (rc == -ERANGE || *out < opt->min || *out > opt->max) {
		range_problem(opt, text, rc == -ERANGE, why, whylen);
		return -ERANGE;
	}
	return 0;
}

static int parse_port(const char *text, unsigned *port)
{
	uint64_t n;
	size_t len = strlen(text);

	if (len == 0 || len > 5 || strspn(text, "0123456789") != len ||
	    parse_whole(text, &n) < 0 || n > 65535)
		return -EINVAL;
	*port = (unsigned)n;
	return 0;
}

/*
 * Split "host:port" into its host (brackets removed) and port.  The host
 * must be an IPv4 literal, "localhost" or a bracketed IPv6 literal: the
 * listeners bind addresses, and resolving names at startup would make a
 * config depend on DNS.
 */
static int split_hostport(const char *text, char *host, size_t hostlen,
			  unsigned *port, char *why, size_t whylen)
{
	const char *host_start = text, *host_end, *port_text;
	unsigned char addr[16];
	size_t len;

	if (text[0] == '[') {
		host_start = text + 1;
		host_end = strchr(host_start, ']');
		if (!host_end || host_end[1] != ':')
			goto bad;
		port_text = host_end + 2;
	} else {
		host_end = strrchr(text, ':');
		if (!host_end)
			goto bad;
		port_text = host_end + 1;
	}
	len = (size_t)(host_end - host_start);
	if (len == 0 || len >= hostlen)
		goto bad;
	memcpy(host, host_start, len);
	host[len] = '\0';
	if (parse_port(port_text, port) < 0) {
		snprintf(why, whylen, "\"%s\" has a bad port (use 0 to 65535, "
			 "e.g. 127.0.0.1:8080)", text);
		return -EINVAL;
	}
	if (text[0] == '[' ? inet_pton(AF_INET6, host, addr) == 1
			   : (strcasecmp(host, "localhost") == 0 ||
			      inet_pton(AF_INET, host, addr) == 1))
		return 0;
	snprintf(why, whylen, "\"%s\": host \"%s\" is not an IP address "
		 "(use an IPv4 address, localhost or [IPv6], e.g. "
		 "0.0.0.0:8080 or [::1]:8080)", text, host);
	return -EINVAL;
bad:
	snprintf(why, whylen, "\"%s\" is not host:port (use e.g. "
		 "127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080)", text);
	return -EINVAL;
}

static int check_hostport(const char *text, char *why, size_t whylen)
{
	char host[64];
	unsigned port;

	return split_hostport(text, host, sizeof(host), &port, why, whylen);
}

/* Whether a valid host:port binds only to the loopback interface. */
static bool is_loopback(const char *hostport)
{
	char host[64], why[8];
	unsigned char addr[16];
	unsigned port;

	if (split_hostport(hostport, host, sizeof(host), &port, why,
			   sizeof(why)) < 0)
		return false;
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, addr) == 1)
		return addr[0] == 127;
	if (inet_pton(AF_INET6, host, addr) != 1)
		return false;
	/* ::1, or 127.x.x.x mapped into IPv6 (::ffff:127.0.0.1). */
	for (size_t i = 0; i < 10; i++) {
		if (addr[i])
			return false;
	}
	if (addr[10] == 0xff && addr[11] == 0xff)
		return addr[12] == 127;
	return addr[10] == 0 && addr[11] == 0 && addr[12] == 0 &&
	       addr[13] == 0 && addr[14] == 0 && addr[15] == 1;
}

/*
 * A deliberately small URL check: scheme, host, optional port and path.
 * libcurl does the real parsing later; this only catches what a person is
 * likely to get wrong, early and with a line number.
 */
static int check_url(const char *text, char *why, size_t whylen)
{
	const char *fix = "use e.g. http://127.0.0.1:8000";
	const char *auth, *auth_end, *host_end;
	char host[256];
	unsigned char addr[16];
	unsigned port;

	if (strncasecmp(text, "http://", 7) == 0)
		auth = text + 7;
	else if (strncasecmp(text, "https://", 8) == 0)
		auth = text + 8;
	else {
		snprintf(why, whylen, "\"%s\" is not an http:// or https:// "
			 "URL (%s)", text, fix);
		return -EINVAL;
	}
	for (const char *p = text; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' ||
		    *p == '#' || *p == '@') {
			snprintf(why, whylen, "\"%s\" may not contain spaces, "
				 "a query, a fragment or credentials (%s)",
				 text, fix);
			return -EINVAL;
		}
	}
	auth_end = auth + strcspn(auth, "/");
	if (auth[0] == '[') {
		host_end = memchr(auth, ']', (size_t)(auth_end - auth));
		if (!host_end || (size_t)(host_end - auth - 1) >= sizeof(host))
			goto bad_host;
		memcpy(host, auth + 1, (size_t)(host_end - auth - 1));
		host[host_end - auth - 1] = '\0';
		if (inet_pton(AF_INET6, host, addr) != 1)
			goto bad_host;
		host_end++;
	} else {
		host_end = memchr(auth, ':', (size_t)(auth_end - auth));
		if (!host_end)
			host_end = auth_end;
		if (host_end == auth ||
		    strspn(auth, "abcdefghijklmnopqrstuvwxyz"
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") <
			    (size_t)(host_end - auth))
			goto bad_host;
	}
	if (host_end < auth_end) {
		char port_text[8] = "";
		size_t len = (size_t)(auth_end - host_end - 1);

		if (*host_end != ':' || len >= sizeof(port_text))
			goto bad_host;
		memcpy(port_text, host_end + 1, len);
		port_text[len] = '\0';
		if (parse_port(port_text, &port) < 0 || port == 0) {
			snprintf(why, whylen, "\"%s\" has a bad port (use 1 to "
				 "65535; %s)", text, fix);
			return -EINVAL;
		}
	}
	return 0;
bad_host:
	snprintf(why, whylen, "\"%s\" has no valid host (%s)", text, fix);
	return -EINVAL;
}

/*
 * cache.redis.url, checked by the Redis tier's own parser so that the
 * server can never refuse at start-up a URL the configuration accepted.
 * That parser masks the password in its messages, but only where its
 * grammar finds one: a URL without a scheme, credentials without a ':',
 * or a password holding '/' or '@' would be quoted as written.  Those are
 * refused here first, quoting the URL through strata_redis_url_mask(), so no
 * message ever shows a password.
 */
static int check_redis_url(const char *text, char *why, size_t whylen)
{
	const char *forms = "use redis://[[user]:password@]host[:port][/db] "
			    "or unix:///path/to.sock[?db=N]";
	const char *scheme = strstr(text, "://");
	const char *auth = scheme ? scheme + 3 : text;
	const char *at = strrchr(auth, '@');
	bool is_unix = strncmp(text, "unix://", 7) == 0;
	struct strata_redis_url url;
	char masked[320];

	strata_redis_url_mask(text, masked, sizeof(masked));
	for (const char *p = text; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			snprintf(why, whylen, "redis URL \"%s\" contains "
				 "spaces or control characters (remove them; "
				 "%s)", is_printable(masked) ? masked : "...",
				 forms);
			return -EINVAL;
		}
	}
	if (!is_unix && at && !scheme) {
		snprintf(why, whylen, "redis URL \"%s\" has no scheme (%s)",
			 masked, forms);
		return -EINVAL;
	}
	if (!is_unix && at &&
	    (memchr(auth, '/', (size_t)(at - auth)) ||
	     memchr(auth, '@', (size_t)(at - auth)))) {
		snprintf(why, whylen, "redis URL \"%s\": the user name or "
			 "password contains '/' or '@', which a URL cannot "
			 "carry here (there is no percent-decoding: choose a "
			 "password without them)", masked);
		return -EINVAL;
	}
	if (!is_unix && at && !memchr(auth, ':', (size_t)(at - auth))) {
		snprintf(why, whylen, "redis URL \"%s\": credentials need a "
			 "':' before the password, as in redis://:password@host "
			 "(%s)", masked, forms);
		return -EINVAL;
	}
	if (strata_redis_url_parse(text, &url, why, whylen) < 0)
		return -EINVAL;
	return 0;
}

/* Longest prefix the Redis tier takes (redis.c's PREFIX_MAX). */
#define REDIS_PREFIX_MAX 128

/*
 * cache.redis.prefix: one word that starts every key, so that several
 * fleets (or a staging and a production) can share one Redis.
 */
static int check_prefix(const char *text, char *why, size_t whylen)
{
	size_t len = strlen(text);

	if (len == 0) {
		snprintf(why, whylen, "is empty (use e.g. strata, or one name "
			 "per fleet sharing the Redis, e.g. strata-eu)");
		return -EINVAL;
	}
	if (len > REDIS_PREFIX_MAX) {
		snprintf(why, whylen, "is %zu bytes long (use at most %d, "
			 "e.g. strata-eu)", len, REDIS_PREFIX_MAX);
		return -EINVAL;
	}
	for (const char *p = text; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			if (is_printable(text))
				snprintf(why, whylen, "\"%s\" contains a space "
					 "(use one word, e.g. strata-eu)", text);
			else
				snprintf(why, whylen, "contains a control "
					 "character (use one word, e.g. "
					 "strata-eu)");
			return -EINVAL;
		}
	}
	return 0;
}

/* cache.tags_header: a header name, or "" for no tags. */
static int check_header(const char *text, char *why, size_t whylen)
{
	if (!text[0] || is_header_name(text))
		return 0;
	if (is_printable(text))
		snprintf(why, whylen, "\"%s\" is not a header name (use e.g. "
			 "Surrogate-Key, or \"\" for no tags)", text);
	else
		snprintf(why, whylen, "contains a control character, so it is "
			 "not a header name (use e.g. Surrogate-Key, or \"\" "
			 "for no tags)");
	return -EINVAL;
}

/*
 * Parse `text` as `opt` says.  On success fills *val (val->text is a new
 * string for the text types); on failure writes "problem (fix)" to why.
 */
static int parse_value(const struct option *opt, const char *text,
		       struct value *val, char *why, size_t whylen)
{
	int rc = 0;

	memset(val, 0, sizeof(*val));
	switch (opt->type) {
	case OPT_UINT:
	case OPT_SIZE:
	case OPT_DURATION:
	case OPT_COUNT:
		return number_value(opt, text, &val->number, why, whylen);
	case OPT_BOOL:
		if (parse_bool(text, &val->flag) < 0) {
			snprintf(why, whylen, "\"%s\" is not a boolean (use "
				 "true or false)", text);
			return -EINVAL;
		}
		return 0;
	case OPT_URL:
		rc = check_url(text, why, whylen);
		break;
	case OPT_HOSTPORT:
		rc = check_hostport(text, why, whylen);
		break;
	case OPT_STRING:
		if (!text[0])
			return 0;  /* empty: unset */
		break;
	case OPT_REDIS_URL:
		if (!text[0])
			return 0;  /* empty: unset, the tier is off */
		rc = check_redis_url(text, why, whylen);
		break;
	case OPT_PREFIX:
		rc = check_prefix(text, why, whylen);
		break;
	case OPT_HEADER:
		rc = check_header(text, why, whylen);  /* "" is kept */
		break;
	case OPT_PATH:
		/* The only path is the disk tier's: say how to turn it off. */
		if (!text[0]) {
			snprintf(why, whylen, "is empty (give a directory, e.g. "
				 "/var/lib/strata, or set cache.disk.enabled: "
				 "false to turn the disk tier off)");
			return -EINVAL;
		}
		break;
	case OPT_ENUM: {
		int index = choice_index(opt->choices, text);
		char names[96];

		if (index < 0) {
			choices_text(opt->choices, names, sizeof(names));
			snprintf(why, whylen, "\"%s\" is not %s (use %s)", text,
				 opt->choices->what, names);
			return -EINVAL;
		}
		val->number = (uint64_t)index;
		return 0;
	}
	}
	if (rc < 0)
		return rc;
	val->text = strdup(text);
	if (!val->text) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Store a parsed value, taking ownership of val->text. */
static void store_value(struct strata_config *cfg, const struct option *opt,
			struct value *val)
{
	void *ptr = option_ptr(cfg, opt);

	switch (opt->type) {
	case OPT_UINT:
		*(unsigned *)ptr = (unsigned)val->number;
		break;
	case OPT_SIZE:
	case OPT_DURATION:
	case OPT_COUNT:
		*(uint64_t *)ptr = val->number;
		break;
	case OPT_BOOL:
		*(bool *)ptr = val->flag;
		break;
	case OPT_ENUM:
		*(int *)ptr = (int)val->number;
		break;
	case OPT_STRING:
	case OPT_URL:
	case OPT_HOSTPORT:
	case OPT_PATH:
	case OPT_REDIS_URL:
	case OPT_PREFIX:
	case OPT_HEADER:
		free(*(char **)ptr);
		*(char **)ptr = val->text;
		val->text = NULL;
		break;
	}
}

/*
 * The one way a value enters a configuration.  `source` starts the error
 * message: "strata.yaml:3: workers", "environment STRATA_WORKERS".
 */
static int set_option(struct strata_config *cfg, const struct option *opt,
		      const char *text, const char *source, char *err,
		      size_t errlen)
{
	struct value val;
	char why[STRATA_CONFIG_ERRLEN];

	if (parse_value(opt, text, &val, why, sizeof(why)) < 0) {
		/* Truncation is fine: the start names the key and problem. */
		if (snprintf(err, errlen, "%s: %s", source, why) < 0 && errlen)
			err[0] = '\0';
		return STRATA_ECONFIG;
	}
	store_value(cfg, opt, &val);
	return 0;
}

/* --- routes --------------------------------------------------------------- */

static void query_keep_clear(struct strata_route_config *r)
{
	for (size_t i = 0; i < r->n_query_keep; i++)
		free(r->query_keep[i]);
	free(r->query_keep);
	r->query_keep = NULL;
	r->n_query_keep = 0;
}

static void route_config_clear(struct strata_route_config *r)
{
	for (size_t i = 0; i < r->n_vary; i++)
		free(r->vary[i]);
	free(r->vary);
	query_keep_clear(r);
	free(r->path);
	free(r->name);
	free(r->source);
	memset(r, 0, sizeof(*r));
}

static void routes_free(struct strata_route_config *routes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		route_config_clear(&routes[i]);
	free(routes);
}

/* Move *r to the end of the list (r is left empty). */
static int routes_append(struct strata_route_config **routes, size_t *n,
			 struct strata_route_config *r)
{
	struct strata_route_config *grown;

	grown = realloc(*routes, (*n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	grown[*n] = *r;
	memset(r, 0, sizeof(*r));
	*routes = grown;
	(*n)++;
	return 0;
}

void strata_config_clear_routes(struct strata_config *cfg)
{
	routes_free(cfg->routes, cfg->n_routes);
	cfg->routes = NULL;
	cfg->n_routes = 0;
}

/* Method names from configuration are case-insensitive; requests' aren't. */
static unsigned config_method_bit(const char *text)
{
	char upper[16];
	size_t len = strlen(text);

	if (len == 0 || len >= sizeof(upper))
		return 0;
	for (size_t i = 0; i <= len; i++)
		upper[i] = (char)toupper((unsigned char)text[i]);
	if (strata_method_bit(upper) == STRATA_METHOD_OTHER)
		return 0;
	return strata_method_bit(upper);
}

int strata_config_add_route(struct strata_config *cfg, const char *spec,
			    const char *source, char *err, size_t errlen)
{
	struct strata_route_config r = { .methods = DEFAULT_METHODS,
					 .keep_ms = DEFAULT_KEEP_MS };
	const char *eq = strrchr(spec, '=');
	char why[STRATA_CONFIG_ERRLEN];
	struct value ttl;
	int rc = STRATA_ECONFIG;

	if (!source)
		source = "--route";
	if (!eq || eq == spec) {
		snprintf(err, errlen, "%s \"%s\": expected PATH=TTL (e.g. "
			 "\"/api/*=10s\", or \"/private/*=0\" to pass through)",
			 source, spec);
		goto out;
	}
	/* The last "=": a TTL never contains one, a path might. */
	r.path = strndup(spec, (size_t)(eq - spec));
	if (!r.path)
		goto nomem;
	if (strata_route_pattern_check(r.path, why, sizeof(why)) < 0 ||
	    (strcasecmp(eq + 1, "origin") != 0 &&
	     parse_value(&route_ttl, eq + 1, &ttl, why, sizeof(why)) < 0)) {
		snprintf(err, errlen, "%s \"%s\": %s", source, spec, why);
		goto out;
	}
	/* "PATH=origin": freshness from the response (RFC 9111). */
	r.ttl_origin = strcasecmp(eq + 1, "origin") == 0;
	r.ttl_ms = r.ttl_origin ? 0 : ttl.number;
	r.name = strdup(r.path);
	r.source = strdup_printf("%s \"%s\"", source, spec);
	if (!r.name || !r.source ||
	    routes_append(&cfg->routes, &cfg->n_routes, &r) < 0)
		goto nomem;
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "%s \"%s\": out of memory", source, spec);
	rc = -ENOMEM;
out:
	route_config_clear(&r);
	return rc;
}

/* --- YAML ----------------------------------------------------------------- */

/* The dotted path of the key being read: "routes[2].ttl". */
struct keypath {
	char text[256];
	size_t len;
};

static size_t path_append(struct keypath *kp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append to the path and return its old length, for path_pop(). */
static size_t path_append(struct keypath *kp, const char *fmt, ...)
{
	size_t old = kp->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(kp->text + old, sizeof(kp->text) - old, fmt, ap);
	va_end(ap);
	kp->len = n < 0 ? old : old + (size_t)n;
	if (kp->len >= sizeof(kp->text))
		kp->len = sizeof(kp->text) - 1;  /* truncated, still a string */
	return old;
}

static size_t path_push_key(struct keypath *kp, const char *key)
{
	return path_append(kp, "%s%s", kp->len ? "." : "", key);
}

static size_t path_push_index(struct keypath *kp, size_t index)
{
	return path_append(kp, "[%zu]", index);
}

static void path_pop(struct keypath *kp, size_t old)
{
	kp->len = old;
	kp->text[old] = '\0';
}

struct loader {
	struct strata_config *cfg;
	const char *name;          /* file name for messages */
	char *err;
	size_t errlen;
	struct keypath path;
	struct strata_route_config *routes;   /* built here, swapped in last */
	size_t n_routes;
	bool have_routes;
};

static int fail(struct loader *ld, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "file:line: key.path: " + the message; always STRATA_ECONFIG. */
static int fail(struct loader *ld, int line, const char *fmt, ...)
{
	char why[STRATA_CONFIG_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (ld->path.len)
		snprintf(ld->err, ld->errlen, "%s:%d: %s: %s", ld->name, line,
			 ld->path.text, why);
	else
		snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->name, line, why);
	return STRATA_ECONFIG;
}

/* 1-based line where a node starts, or 0 when libfyaml has no token. */
static int node_line(struct fy_node *node)
{
	void *iter = NULL;
	struct fy_node_pair *pair;
	struct fy_token *token;
	const struct fy_mark *mark;

	if (!node)
		return 0;
	switch (fy_node_get_type(node)) {
	case FYNT_SEQUENCE:
		return node_line(fy_node_sequence_iterate(node, &iter));
	case FYNT_MAPPING:
		pair = fy_node_mapping_iterate(node, &iter);
		return pair ? node_line(fy_node_pair_key(pair)) : 0;
	case FYNT_SCALAR:
	default:
		token = fy_node_get_scalar_token(node);
		mark = token ? fy_token_start_mark(token) : NULL;
		return mark ? mark->line + 1 : 0;
	}
}

static int line_or(struct fy_node *node, int fallback)
{
	int line = node_line(node);

	return line ? line : fallback;
}

static const char *node_kind(struct fy_node *node)
{
	switch (fy_node_get_type(node)) {
	case FYNT_SEQUENCE:
		return "a sequence";
	case FYNT_MAPPING:
		return "a mapping";
	case FYNT_SCALAR:
	default:
		return "a scalar";
	}
}

/* A plain ~, null or nothing at all: YAML's null. */
static bool is_null(struct fy_node *node)
{
	size_t len;
	const char *text;

	if (!node)
		return true;
	if (!fy_node_is_scalar(node) || fy_node_get_style(node) != FYNS_PLAIN)
		return false;
	text = fy_node_get_scalar(node, &len);
	return !text || len == 0 || (len == 1 && text[0] == '~') ||
	       (len == 4 && (memcmp(text, "null", 4) == 0 ||
			     memcmp(text, "Null", 4) == 0 ||
			     memcmp(text, "NULL", 4) == 0));
}

/* A key's text, cut to fit: no real key is that long. */
static void key_text(struct fy_node *key, char *buf, size_t len)
{
	size_t n = 0;
	const char *text = fy_node_get_scalar(key, &n);

	if (!text)
		n = 0;
	if (n >= len)
		n = len - 1;
	memcpy(buf, text ? text : "", n);
	buf[n] = '\0';
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/*
 * Expand ${VAR} and ${VAR:-default} (default when unset or empty, as in
 * the shell) from the process environment; "$${" is a literal "${".  Any
 * other "$" is literal, so a token like "pa$$word" needs no escaping.
 */
static int expand(struct loader *ld, int line, const char *raw, size_t len,
		  char **out)
{
	char *result = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&result, &size);
	int rc = 0;

	if (!f)
		return fail(ld, line, "out of memory");
	for (size_t i = 0; i < len && rc == 0; i++) {
		const char *close, *value;
		char name[128];
		size_t inner, name_len;
		bool has_default;

		if (raw[i] == '$' && i + 2 < len && raw[i + 1] == '$' &&
		    raw[i + 2] == '{') {
			fputs("${", f);
			i += 2;
			continue;
		}
		if (raw[i] != '$' || i + 1 >= len || raw[i + 1] != '{') {
			fputc(raw[i], f);
			continue;
		}
		/* Scalar text is not NUL-terminated: stay inside `len`. */
		close = memchr(raw + i + 2, '}', len - i - 2);
		inner = close ? (size_t)(close - raw) - i - 2 : 0;
		name_len = 0;
		while (name_len < inner && is_name_char(raw[i + 2 + name_len]))
			name_len++;
		has_default = inner >= name_len + 2 &&
			      raw[i + 2 + name_len] == ':' &&
			      raw[i + 3 + name_len] == '-';
		if (!close || name_len == 0 || name_len >= sizeof(name) ||
		    (raw[i + 2] >= '0' && raw[i + 2] <= '9') ||
		    (name_len != inner && !has_default)) {
			/* Quote the reference only: the value may be secret. */
			size_t shown = close ? inner + 3 : len - i;

			rc = fail(ld, line, "bad variable reference \"%.*s\" "
				  "(write ${NAME} or ${NAME:-default}, or $${ "
				  "for a literal ${)",
				  (int)(shown > 40 ? 40 : shown), raw + i);
			break;
		}
		memcpy(name, raw + i + 2, name_len);
		name[name_len] = '\0';
		value = getenv(name);
		if (has_default && (!value || !value[0]))
			fwrite(raw + i + 4 + name_len, 1,
			       inner - name_len - 2, f);
		else if (value)
			fputs(value, f);
		else
			rc = fail(ld, line, "environment variable %s is not set "
				  "(set it, or write ${%s:-default})", name,
				  name);
		i = (size_t)(close - raw);
	}
	if (fclose(f) != 0 && rc == 0)
		rc = fail(ld, line, "out of memory");
	if (rc < 0) {
		free(result);
		return rc;
	}
	*out = result;
	return 0;
}

/*
 * The text of a scalar value, expanded, as a new string ("" for null).
 * Refuses non-scalars with the expected shape in the message.
 */
static int scalar_value(struct loader *ld, struct fy_node *node,
			int key_line, const char *expected, char **out)
{
	int line = line_or(node, key_line);
	const char *text;
	size_t len;

	*out = NULL;
	if (node && !fy_node_is_scalar(node))
		return fail(ld, line, "expected %s, not %s", expected,
			    node_kind(node));
	if (is_null(node)) {
		*out = strdup("");
		return *out ? 0 : fail(ld, line, "out of memory");
	}
	text = fy_node_get_scalar(node, &len);
	if (!text) {
		text = "";
		len = 0;
	}
	if (memchr(text, '\0', len))
		return fail(ld, line, "contains a NUL character (remove it)");
	return expand(ld, line, text, len, out);
}

/*
 * Duplicate keys are found before anything else, on the document as
 * parsed: libfyaml is told to allow them so that this pass can name the
 * key path and both lines, which its own message does not.
 */
static int check_duplicates(struct loader *ld, struct fy_node *node)
{
	void *iter = NULL;
	int rc = 0;

	if (!node || fy_node_is_scalar(node))
		return 0;
	if (fy_node_is_sequence(node)) {
		struct fy_node *item;

		for (size_t i = 0; rc == 0 &&
		     (item = fy_node_sequence_iterate(node, &iter)); i++) {
			size_t old = path_push_index(&ld->path, i);

			rc = check_duplicates(ld, item);
			path_pop(&ld->path, old);
		}
		return rc;
	}
	for (struct fy_node_pair *pair;
	     rc == 0 && (pair = fy_node_mapping_iterate(node, &iter));) {
		struct fy_node *key = fy_node_pair_key(pair);
		void *prev_iter = NULL;
		char name[64];
		size_t old, len = 0;
		const char *text = fy_node_get_scalar(key, &len);

		key_text(key, name, sizeof(name));
		old = path_push_key(&ld->path, name);
		for (struct fy_node_pair *prev;
		     text && (prev = fy_node_mapping_iterate(node, &prev_iter)) !=
			     pair;) {
			size_t prev_len = 0;
			const char *prev_text = fy_node_get_scalar(
				fy_node_pair_key(prev), &prev_len);

			if (prev_text && prev_len == len &&
			    memcmp(prev_text, text, len) == 0) {
				rc = fail(ld, node_line(key), "duplicate key "
					  "(first set at line %d; keep one)",
					  node_line(fy_node_pair_key(prev)));
				break;
			}
		}
		if (rc == 0)
			rc = check_duplicates(ld, fy_node_pair_value(pair));
		path_pop(&ld->path, old);
	}
	return rc;
}

static int unknown_key(struct loader *ld, int line, const char *name,
		       const char *const *candidates, size_t n)
{
	char fix[STRATA_CONFIG_ERRLEN / 2];

	unknown_key_fix(name, candidates, n, fix, sizeof(fix));
	return fail(ld, line, "unknown key %s", fix);
}

static int load_methods(struct loader *ld, struct fy_node *node, int line,
			unsigned *methods)
{
	const char *expected = "a list of methods (e.g. [GET, HEAD])";
	void *iter = NULL;
	struct fy_node *item;
	int rc = 0;

	if (!fy_node_is_sequence(node))
		return fail(ld, line_or(node, line), "expected %s, not %s",
			    expected, node_kind(node));
	*methods = 0;
	for (size_t i = 0; rc == 0 &&
	     (item = fy_node_sequence_iterate(node, &iter)); i++) {
		size_t old = path_push_index(&ld->path, i);
		char *text;

		rc = scalar_value(ld, item, line, "a method name", &text);
		if (rc == 0 && !config_method_bit(text))
			rc = fail(ld, line_or(item, line), "\"%s\" is not a "
				  "method (use GET, HEAD, POST, PUT, DELETE, "
				  "PATCH or OPTIONS)", text);
		if (rc == 0)
			*methods |= config_method_bit(text);
		free(text);
		path_pop(&ld->path, old);
	}
	if (rc == 0 && *methods == 0)
		rc = fail(ld, line_or(node, line), "is empty (list at least one "
			  "method, or set ttl: 0 to pass the route through)");
	return rc;
}

static int load_vary(struct loader *ld, struct fy_node *node, int line,
		     struct strata_route_config *r)
{
	void *iter = NULL;
	struct fy_node *item;
	int rc = 0;

	if (!fy_node_is_sequence(node))
		return fail(ld, line_or(node, line), "expected a list of header "
			    "names (e.g. [Accept-Language]), not %s",
			    node_kind(node));
	for (size_t i = 0; rc == 0 &&
	     (item = fy_node_sequence_iterate(node, &iter)); i++) {
		size_t old = path_push_index(&ld->path, i);
		char *text = NULL;
		char **grown;

		rc = scalar_value(ld, item, line, "a header name", &text);
		if (rc == 0 && !is_header_name(text))
			rc = fail(ld, line_or(item, line), "\"%s\" is not a "
				  "header name (use e.g. Accept-Language)",
				  text);
		if (rc == 0) {
			grown = realloc(r->vary, (r->n_vary + 1) *
						 sizeof(*grown));
			if (!grown) {
				rc = fail(ld, line, "out of memory");
			} else {
				r->vary = grown;
				r->vary[r->n_vary++] = text;
				text = NULL;
			}
		}
		free(text);
		path_pop(&ld->path, old);
	}
	return rc;
}

/*
 * A query parameter name as it appears in requests: raw bytes, compared
 * exactly.  "&" and "=" end a name and "#", spaces and control bytes never
 * reach the key, so a name holding one would silently never match.
 */
static bool is_query_name(const char *text)
{
	if (!text[0])
		return false;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '&' || *p == '=' ||
		    *p == '#')
			return false;
	}
	return true;
}

/* query: [page, sort] -- the parameters kept in the key. */
static int load_query_keep(struct loader *ld, struct fy_node *node, int line,
			   struct strata_route_config *r)
{
	void *iter = NULL;
	struct fy_node *item;
	int rc = 0;

	query_keep_clear(r);
	for (size_t i = 0; rc == 0 &&
	     (item = fy_node_sequence_iterate(node, &iter)); i++) {
		size_t old = path_push_index(&ld->path, i);
		char *text = NULL;
		char **grown;

		rc = scalar_value(ld, item, line, "a query parameter name",
				  &text);
		if (rc == 0 && !is_query_name(text))
			rc = fail(ld, line_or(item, line), "\"%s\" is not a "
				  "query parameter name (write the name as "
				  "sent, without \"=\", \"&\" or spaces, e.g. "
				  "page)", text);
		if (rc == 0) {
			grown = realloc(r->query_keep, (r->n_query_keep + 1) *
						       sizeof(*grown));
			if (!grown) {
				rc = fail(ld, line, "out of memory");
			} else {
				r->query_keep = grown;
				r->query_keep[r->n_query_keep++] = text;
				text = NULL;
			}
		}
		free(text);
		path_pop(&ld->path, old);
	}
	if (rc == 0 && r->n_query_keep == 0)
		rc = fail(ld, line_or(node, line), "is empty (to keep no "
			  "parameter, use query: ignore)");
	if (rc == 0)
		r->query = STRATA_ROUTE_QUERY_KEEP;
	return rc;
}

/* query: raw | ignore | [names...] */
static int load_query(struct loader *ld, struct fy_node *node, int line,
		      struct strata_route_config *r)
{
	const char *fix = "use raw, ignore or a list of parameter names, "
			  "e.g. [page, sort]";
	char *text = NULL;
	int rc;

	if (node && fy_node_is_sequence(node))
		return load_query_keep(ld, node, line, r);
	if (node && !fy_node_is_scalar(node))
		return fail(ld, line_or(node, line), "expected raw, ignore or "
			    "a list of parameter names, not %s (%s)",
			    node_kind(node), fix);
	line = line_or(node, line);
	rc = scalar_value(ld, node, line, "a query mode", &text);
	if (rc < 0)
		return rc;
	if (strcasecmp(text, "raw") == 0)
		r->query = STRATA_ROUTE_QUERY_RAW;
	else if (strcasecmp(text, "ignore") == 0)
		r->query = STRATA_ROUTE_QUERY_IGNORE;
	else
		rc = fail(ld, line, "\"%s\" is not a query mode (%s)", text,
			  fix);
	if (rc == 0)
		query_keep_clear(r);
	free(text);
	return rc;
}

/* force: true | false */
static int load_force(struct loader *ld, struct fy_node *node, int line,
		      struct strata_route_config *r)
{
	char *text = NULL;
	int rc;

	line = line_or(node, line);
	rc = scalar_value(ld, node, line, "true or false", &text);
	if (rc == 0 && parse_bool(text, &r->force) < 0)
		rc = fail(ld, line, "\"%s\" is not a boolean (use true or "
			  "false)", text);
	free(text);
	return rc;
}

/* A route duration (default_ttl, stale windows, keep): "30s", or 0. */
static int load_route_duration(struct loader *ld, struct fy_node *node,
			       int line, uint64_t *out)
{
	char why[STRATA_CONFIG_ERRLEN];
	struct value v;
	char *text = NULL;
	int rc;

	line = line_or(node, line);
	rc = scalar_value(ld, node, line, "a duration", &text);
	if (rc == 0 && parse_value(&route_ttl, text, &v, why, sizeof(why)) < 0)
		rc = fail(ld, line, "%s", why);
	else if (rc == 0)
		*out = v.number;
	free(text);
	return rc;
}

/* etag: generate | off */
static int load_etag(struct loader *ld, struct fy_node *node, int line,
		     struct strata_route_config *r)
{
	char *text = NULL;
	int rc;

	line = line_or(node, line);
	rc = scalar_value(ld, node, line, "generate or off", &text);
	if (rc == 0 && strcasecmp(text, "generate") == 0)
		r->etag_generate = true;
	else if (rc == 0 && strcasecmp(text, "off") == 0)
		r->etag_generate = false;
	else if (rc == 0)
		rc = fail(ld, line, "\"%s\" is not an etag mode (use generate "
			  "to make one from the body when the origin sends "
			  "none, or off)", text);
	free(text);
	return rc;
}

/* One key of a route mapping. */
static int load_route_key(struct loader *ld, const char *key,
			  struct fy_node *value, int line,
			  struct strata_route_config *r, bool *have_ttl)
{
	char why[STRATA_CONFIG_ERRLEN];
	struct value ttl;
	char *text = NULL;
	int rc;

	if (strcmp(key, "methods") == 0)
		return load_methods(ld, value, line, &r->methods);
	if (strcmp(key, "vary") == 0)
		return load_vary(ld, value, line, r);
	if (strcmp(key, "query") == 0)
		return load_query(ld, value, line, r);
	if (strcmp(key, "force") == 0)
		return load_force(ld, value, line, r);
	if (strcmp(key, "default_ttl") == 0)
		return load_route_duration(ld, value, line, &r->default_ttl_ms);
	if (strcmp(key, "stale_while_revalidate") == 0)
		return load_route_duration(ld, value, line,
					   &r->stale_while_revalidate_ms);
	if (strcmp(key, "stale_if_error") == 0)
		return load_route_duration(ld, value, line,
					   &r->stale_if_error_ms);
	if (strcmp(key, "keep") == 0)
		return load_route_duration(ld, value, line, &r->keep_ms);
	if (strcmp(key, "etag") == 0)
		return load_etag(ld, value, line, r);
	if (strcmp(key, "path") != 0 && strcmp(key, "name") != 0 &&
	    strcmp(key, "ttl") != 0)
		return unknown_key(ld, line, key, route_keys,
				   sizeof(route_keys) / sizeof(route_keys[0]));

	line = line_or(value, line);
	rc = scalar_value(ld, value, line, "a scalar", &text);
	if (rc < 0)
		goto out;
	if (strcmp(key, "ttl") == 0 && strcasecmp(text, "origin") == 0) {
		r->ttl_origin = true;
		r->ttl_ms = 0;
		*have_ttl = true;
	} else if (strcmp(key, "ttl") == 0) {
		r->ttl_origin = false;
		if (parse_value(&route_ttl, text, &ttl, why, sizeof(why)) < 0) {
			rc = fail(ld, line, "%s", why);
			goto out;
		}
		r->ttl_ms = ttl.number;
		*have_ttl = true;
	} else if (strcmp(key, "path") == 0) {
		if (strata_route_pattern_check(text, why, sizeof(why)) < 0) {
			rc = fail(ld, line, "%s", why);
			goto out;
		}
		free(r->path);
		r->path = text;
		text = NULL;
	} else {
		if (!text[0]) {
			rc = fail(ld, line, "is empty (remove it to use the "
				  "path as the name)");
			goto out;
		}
		free(r->name);
		r->name = text;
		text = NULL;
	}
out:
	free(text);
	return rc;
}

/* A route's path must not repeat an earlier route's. */
static int check_route_unique(struct loader *ld,
			      const struct strata_route_config *r, int line)
{
	for (size_t j = 0; j < ld->n_routes; j++) {
		size_t old;
		int rc;

		if (strcmp(ld->routes[j].path, r->path) != 0)
			continue;
		old = path_push_key(&ld->path, "path");
		rc = fail(ld, line, "\"%s\" is already routed by routes[%zu] "
			  "at %s (remove one of them)", r->path, j,
			  ld->routes[j].source);
		path_pop(&ld->path, old);
		return rc;
	}
	return 0;
}

static int load_route(struct loader *ld, struct fy_node *node, int line)
{
	struct strata_route_config r = { .methods = DEFAULT_METHODS,
					 .keep_ms = DEFAULT_KEEP_MS };
	bool have_ttl = false;
	int path_line = 0;
	void *iter = NULL;
	struct fy_node_pair *pair;
	int rc = 0;

	line = line_or(node, line);
	if (!fy_node_is_mapping(node)) {
		rc = fail(ld, line, "expected a mapping with path and ttl, not "
			  "%s (e.g. - {path: /api/*, ttl: 10s})",
			  node_kind(node));
		goto out;
	}
	while (rc == 0 && (pair = fy_node_mapping_iterate(node, &iter))) {
		struct fy_node *key = fy_node_pair_key(pair);
		int key_line = line_or(key, line);
		char name[64];
		size_t old;

		if (!fy_node_is_scalar(key)) {
			rc = fail(ld, key_line, "keys must be plain names");
			break;
		}
		key_text(key, name, sizeof(name));
		if (strcmp(name, "path") == 0)
			path_line = key_line;
		old = path_push_key(&ld->path, name);
		rc = load_route_key(ld, name, fy_node_pair_value(pair), key_line,
				    &r, &have_ttl);
		path_pop(&ld->path, old);
	}
	if (rc < 0)
		goto out;
	if (!r.path) {
		rc = fail(ld, line, "missing path (add e.g. path: /api/*)");
		goto out;
	}
	if (!have_ttl) {
		rc = fail(ld, line, "missing ttl (add e.g. ttl: 60s, or ttl: 0 "
			  "to pass the route through)");
		goto out;
	}
	rc = check_route_unique(ld, &r, path_line ? path_line : line);
	if (rc < 0)
		goto out;
	if (!r.name)
		r.name = strdup(r.path);
	r.source = strdup_printf("%s:%d", ld->name, line);
	if (!r.name || !r.source ||
	    routes_append(&ld->routes, &ld->n_routes, &r) < 0)
		rc = fail(ld, line, "out of memory");
out:
	route_config_clear(&r);
	return rc;
}

static int load_routes(struct loader *ld, struct fy_node *node, int line)
{
	void *iter = NULL;
	struct fy_node *item;
	int rc = 0;

	ld->have_routes = true;
	if (is_null(node))
		return 0;  /* "routes:" with nothing under it: no routes */
	if (!fy_node_is_sequence(node))
		return fail(ld, line_or(node, line), "expected a list of routes, "
			    "not %s (e.g. - {path: /api/*, ttl: 10s})",
			    node_kind(node));
	for (size_t i = 0; rc == 0 &&
	     (item = fy_node_sequence_iterate(node, &iter)); i++) {
		size_t old = path_push_index(&ld->path, i);

		rc = load_route(ld, item, line);
		path_pop(&ld->path, old);
	}
	return rc;
}

static bool is_section(const char *dotted)
{
	size_t len = strlen(dotted);

	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (strncmp(options[i].key, dotted, len) == 0 &&
		    options[i].key[len] == '.')
			return true;
	}
	return false;
}

/* What a value of `opt` looks like, for "expected X, not a mapping". */
static const char *type_name(const struct option *opt, char *buf, size_t len)
{
	char names[96];

	switch (opt->type) {
	case OPT_ENUM:
		choices_text(opt->choices, names, sizeof(names));
		snprintf(buf, len, "%s (%s)", opt->choices->what, names);
		return buf;
	case OPT_PATH:
		return "a directory (e.g. /var/lib/strata)";
	case OPT_UINT:
	case OPT_COUNT:
		return "a whole number";
	case OPT_REDIS_URL:
		return "a Redis URL (e.g. redis://127.0.0.1:6379)";
	case OPT_PREFIX:
		return "a key prefix (e.g. strata)";
	case OPT_HEADER:
		return "a header name (e.g. Surrogate-Key)";
	case OPT_SIZE:
		return "a size (e.g. 256MiB)";
	case OPT_DURATION:
		return "a duration (e.g. 30s)";
	case OPT_BOOL:
		return "true or false";
	case OPT_URL:
		return "a URL (e.g. http://127.0.0.1:8000)";
	case OPT_HOSTPORT:
		return "host:port (e.g. 127.0.0.1:8080)";
	case OPT_STRING:
	default:
		return "a string";
	}
}

static int load_leaf(struct loader *ld, const struct option *opt,
		     struct fy_node *value, int line)
{
	char source[STRATA_CONFIG_ERRLEN], expected[128];
	char *text = NULL;
	int rc;

	line = line_or(value, line);
	rc = scalar_value(ld, value, line,
			  type_name(opt, expected, sizeof(expected)), &text);
	if (rc < 0)
		return rc;
	snprintf(source, sizeof(source), "%s:%d: %s", ld->name, line,
		 ld->path.text);
	rc = set_option(ld->cfg, opt, text, source, ld->err, ld->errlen);
	free(text);
	return rc;
}

static int load_mapping(struct loader *ld, struct fy_node *node,
			const char *prefix);

/*
 * The switch of the section `prefix` ("cache.disk."), which lets the
 * section be written as a scalar: its boolean `enabled` key, or else its
 * Redis `url`, which `off` unsets (see url_switch()).  NULL when it has
 * neither.
 */
static const struct option *section_switch(const char *prefix)
{
	char key[128];
	const struct option *opt;

	snprintf(key, sizeof(key), "%senabled", prefix);
	opt = find_option(key);
	if (opt && opt->type == OPT_BOOL)
		return opt;
	snprintf(key, sizeof(key), "%surl", prefix);
	opt = find_option(key);
	return opt && opt->type == OPT_REDIS_URL ? opt : NULL;
}

/*
 * `redis: off`, `--set cache.redis=off`: unset the section's URL, which
 * turns the tier off.  There is no `on`: the URL is what turns it on.
 * The value is not quoted back, since it may be a URL with a password.
 */
static int url_switch(struct strata_config *cfg, const struct option *opt,
		      const char *text, char *why, size_t whylen)
{
	char **url = option_ptr(cfg, opt);
	bool on;

	if (parse_bool(text, &on) < 0 || on) {
		snprintf(why, whylen, "takes only off here (to turn the tier "
			 "on, set %s, e.g. redis://127.0.0.1:6379)", opt->key);
		return -EINVAL;
	}
	free(*url);
	*url = NULL;
	return 0;
}

/*
 * `disk: off`, `disk: on`, `redis: off`: the section's switch, other keys
 * untouched.
 */
static int load_switch(struct loader *ld, const struct option *opt,
		       const char *prefix, struct fy_node *value, int line)
{
	char names[32][32], keys[STRATA_CONFIG_ERRLEN / 2];
	size_t n = level_names(prefix, names, 32), used = 0;
	char *text = NULL;
	bool on;
	int rc;

	keys[0] = '\0';
	for (size_t i = 0; i < n && used < sizeof(keys); i++)
		used += (size_t)snprintf(keys + used, sizeof(keys) - used,
					 "%s%s", i ? ", " : "", names[i]);
	line = line_or(value, line);
	rc = scalar_value(ld, value, line, "on, off or a mapping", &text);
	if (rc < 0)
		return rc;
	if (opt->type == OPT_REDIS_URL) {
		char why[STRATA_CONFIG_ERRLEN / 2];

		if (url_switch(ld->cfg, opt, text, why, sizeof(why)) < 0)
			rc = fail(ld, line, "%s", why);
	} else if (parse_bool(text, &on) < 0)
		rc = fail(ld, line, "\"%s\" is neither on nor off (write off, "
			  "on, or a mapping of keys: %s)", text, keys);
	else
		*(bool *)option_ptr(ld->cfg, opt) = on;
	free(text);
	return rc;
}

/* One "key: value" of the top level or of a section. */
static int load_pair(struct loader *ld, const char *prefix, const char *name,
		     struct fy_node *value, int line)
{
	char dotted[128];
	const struct option *opt;
	char names[32][32];
	const char *candidates[32];
	size_t n;

	snprintf(dotted, sizeof(dotted), "%s%s", prefix, name);
	if (!prefix[0] && strcmp(name, "routes") == 0)
		return load_routes(ld, value, line);
	opt = find_option(dotted);
	if (opt)
		return load_leaf(ld, opt, value, line);
	if (is_section(dotted)) {
		if (is_null(value))
			return 0;
		strncat(dotted, ".", sizeof(dotted) - strlen(dotted) - 1);
		opt = section_switch(dotted);
		if (opt && fy_node_is_scalar(value))
			return load_switch(ld, opt, dotted, value, line);
		if (!fy_node_is_mapping(value)) {
			char fix[STRATA_CONFIG_ERRLEN / 2];

			n = level_names(dotted, names, 32);
			for (size_t i = 0; i < n; i++)
				candidates[i] = names[i];
			unknown_key_fix("", candidates, n, fix, sizeof(fix));
			return fail(ld, line_or(value, line), "expected a "
				    "mapping of keys, not %s %s",
				    node_kind(value), fix);
		}
		return load_mapping(ld, value, dotted);
	}
	n = level_names(prefix, names, 32);
	for (size_t i = 0; i < n; i++)
		candidates[i] = names[i];
	return unknown_key(ld, line, name, candidates, n);
}

static int load_mapping(struct loader *ld, struct fy_node *node,
			const char *prefix)
{
	void *iter = NULL;
	struct fy_node_pair *pair;
	int rc = 0;

	while (rc == 0 && (pair = fy_node_mapping_iterate(node, &iter))) {
		struct fy_node *key = fy_node_pair_key(pair);
		int line = line_or(key, line_or(node, 1));
		char name[64];
		size_t old;

		if (!fy_node_is_scalar(key))
			return fail(ld, line, "keys must be plain names, not %s",
				    node_kind(key));
		key_text(key, name, sizeof(name));
		old = path_push_key(&ld->path, name);
		rc = load_pair(ld, prefix, name, fy_node_pair_value(pair), line);
		path_pop(&ld->path, old);
	}
	return rc;
}

static int load_root(struct loader *ld, struct fy_node *root)
{
	if (is_null(root))
		return 0;  /* an empty file: every default stands */
	if (!fy_node_is_mapping(root))
		return fail(ld, line_or(root, 1), "expected a mapping of keys "
			    "at the top level, not %s (e.g. listen: "
			    "0.0.0.0:8080)", node_kind(root));
	return load_mapping(ld, root, "");
}

/* Turn libfyaml's first collected error into our one-line message. */
static int yaml_error(struct loader *ld, struct fy_diag *diag)
{
	void *iter = NULL;
	struct fy_diag_error *e = fy_diag_errors_iterate(diag, &iter);

	if (!e)
		snprintf(ld->err, ld->errlen, "%s: invalid YAML (fix the "
			 "syntax)", ld->name);
	else
		snprintf(ld->err, ld->errlen, "%s:%d: invalid YAML: %s (fix "
			 "the syntax at column %d)", ld->name, e->line,
			 e->msg ? e->msg : "syntax error", e->column);
	return STRATA_ECONFIG;
}

/* libfyaml's diagnostics are collected, never printed. */
static void diag_discard_cb(struct fy_diag *diag, void *user, const char *buf,
			    size_t len)
{
	(void)diag;
	(void)user;
	(void)buf;
	(void)len;
}

/*
 * The line of the first byte that is not well-formed UTF-8 (RFC 3629:
 * no overlong forms, no surrogates, nothing past U+10FFFF), or 0 when
 * the text is valid.  A YAML stream is Unicode, and libfyaml 0.8 can
 * loop forever on some invalid bytes (a "%" directive followed by 0xff,
 * found by tests/fuzz), so the text is checked before it sees it.
 */
static unsigned invalid_utf8_line(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	unsigned line = 1;

	while (*p != '\0') {
		unsigned need, cp, min;

		if (*p < 0x80) {
			line += *p++ == '\n';
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf) {
			need = 1, cp = *p & 0x1f, min = 0x80;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			need = 2, cp = *p & 0x0f, min = 0x800;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			need = 3, cp = *p & 0x07, min = 0x10000;
		} else {
			return line;
		}
		for (p++; need > 0; need--, p++) {
			if ((*p & 0xc0) != 0x80)
				return line;
			cp = cp << 6 | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return line;
	}
	return 0;
}

/*
 * The line of the first explicit key indicator ("? " at the start of a
 * block node, or after "{", "[" or "," in flow style), or 0.  No Strata
 * setting needs one, and libfyaml 0.7.12 crashes on some of them
 * ("? d:<tab>-", found by tests/fuzz), so they are refused before it
 * sees the text.
 */
static unsigned explicit_key_line(const char *text)
{
	unsigned line = 1;
	char prev = '\n';  /* the last character that is not a blank */

	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\n') {
			line++;
			prev = '\n';
			continue;
		}
		if (*p == ' ' || *p == '\t')
			continue;
		if (*p == '?' && (p[1] == ' ' || p[1] == '\t' ||
				  p[1] == '\n' || p[1] == '\r' ||
				  p[1] == '\0') &&
		    (prev == '\n' || prev == '-' || prev == '{' ||
		     prev == '[' || prev == ','))
			return line;
		prev = *p;
	}
	return 0;
}

int strata_config_load_string(struct strata_config *cfg, const char *yaml,
			      const char *name, char *err, size_t errlen)
{
	struct loader ld = {
		.cfg = cfg, .name = name ? name : "<config>",
		.err = err, .errlen = errlen,
	};
	struct fy_diag_cfg diag_cfg;
	struct fy_diag *diag = NULL;
	struct fy_document *doc = NULL;
	struct fy_parse_cfg parse_cfg = {
		.flags = FYPCF_QUIET | FYPCF_ALLOW_DUPLICATE_KEYS,
	};
	int rc = -ENOMEM;
	unsigned bad_line = invalid_utf8_line(yaml);

	if (bad_line != 0) {
		snprintf(err, errlen,
			 "%s:%u: not valid UTF-8 (a YAML file is text in "
			 "UTF-8; check the file's encoding)",
			 ld.name, bad_line);
		return STRATA_ECONFIG;
	}
	bad_line = explicit_key_line(yaml);
	if (bad_line != 0) {
		snprintf(err, errlen,
			 "%s:%u: an explicit key (\"? \") is not supported "
			 "(write the key on its line as `key: value`)",
			 ld.name, bad_line);
		return STRATA_ECONFIG;
	}
	fy_diag_cfg_default(&diag_cfg);
	diag_cfg.fp = NULL;
	diag_cfg.output_fn = diag_discard_cb;
	diag_cfg.colorize = false;
	diag = fy_diag_create(&diag_cfg);
	if (!diag) {
		snprintf(err, errlen, "%s: out of memory", ld.name);
		goto out;
	}
	fy_diag_set_collect_errors(diag, true);
	parse_cfg.diag = diag;
	doc = fy_document_build_from_string(&parse_cfg, yaml, strlen(yaml));
	if (!doc) {
		void *iter = NULL;

		/*
		 * A stream with no document at all (empty, or only
		 * comments) also yields NULL, but collects no error: that
		 * is an empty configuration, not a broken one.
		 */
		rc = fy_diag_errors_iterate(diag, &iter) ? yaml_error(&ld, diag)
							 : 0;
		goto out;
	}
	rc = check_duplicates(&ld, fy_document_root(doc));
	if (rc < 0)
		goto out;
	/* Anchors and aliases (and << merges) become plain nodes. */
	if (fy_document_resolve(doc) != 0) {
		rc = yaml_error(&ld, diag);
		goto out;
	}
	rc = load_root(&ld, fy_document_root(doc));
	if (rc < 0)
		goto out;
	if (ld.have_routes) {
		strata_config_clear_routes(cfg);
		cfg->routes = ld.routes;
		cfg->n_routes = ld.n_routes;
		ld.routes = NULL;
		ld.n_routes = 0;
	}
out:
	routes_free(ld.routes, ld.n_routes);
	fy_document_destroy(doc);
	if (diag)
		fy_diag_destroy(diag);
	return rc;
}

/* The whole file as a string and its length; the caller frees it. */
static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t size = 0, used = 0;
	int rc = 0;

	if (!f)
		return -errno;
	for (;;) {
		char *grown;
		size_t n;

		if (size - used < 4096) {
			size = size ? size * 2 : 8192;
			grown = realloc(text, size);
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			text = grown;
		}
		n = fread(text + used, 1, size - used - 1, f);
		used += n;
		if (n == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
	fclose(f);
	if (rc < 0) {
		free(text);
		return rc;
	}
	text[used] = '\0';
	*out = text;
	*len = used;
	return 0;
}

int strata_config_load_file(struct strata_config *cfg, const char *path,
			    char *err, size_t errlen)
{
	char *text = NULL;
	char *file = NULL;
	size_t len = 0;
	int rc;

	rc = read_file(path, &text, &len);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot read the config file: %s "
			 "(check the path, or pass another with --config)",
			 path, strerror(-rc));
		goto out;
	}
	if (strlen(text) != len) {
		snprintf(err, errlen, "%s: contains a NUL byte (is it really "
			 "the YAML config file?)", path);
		rc = STRATA_ECONFIG;
		goto out;
	}
	rc = strata_config_load_string(cfg, text, path, err, errlen);
	if (rc < 0)
		goto out;
	file = strdup(path);
	if (!file) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = -ENOMEM;
		goto out;
	}
	free(cfg->file);
	cfg->file = file;
out:
	free(text);
	return rc;
}

/* --- settings, environment ------------------------------------------------ */

int strata_config_set(struct strata_config *cfg, const char *key,
		      const char *value, const char *source, char *err,
		      size_t errlen)
{
	const struct option *opt = find_option(key);
	const char *candidates[N_OPTIONS];
	char fix[STRATA_CONFIG_ERRLEN / 2];

	if (!source)
		source = key;
	if (!opt && is_section(key)) {
		char prefix[128];

		snprintf(prefix, sizeof(prefix), "%s.", key);
		opt = section_switch(prefix);   /* --set cache.disk=off */
		if (opt && opt->type == OPT_REDIS_URL) {
			char why[STRATA_CONFIG_ERRLEN / 2];

			if (url_switch(cfg, opt, value ? value : "", why,
				       sizeof(why)) == 0)
				return 0;
			snprintf(err, errlen, "%s: %s", source, why);
			return STRATA_ECONFIG;
		}
	}
	if (opt)
		return set_option(cfg, opt, value ? value : "", source, err,
				  errlen);
	if (strcmp(key, "routes") == 0) {
		snprintf(err, errlen, "%s: routes cannot be set as one value "
			 "(use --route PATH=TTL once per route)", source);
		return STRATA_ECONFIG;
	}
	for (size_t i = 0; i < N_OPTIONS; i++)
		candidates[i] = options[i].key;
	unknown_key_fix(key, candidates, N_OPTIONS, fix, sizeof(fix));
	snprintf(err, errlen, "%s: unknown key \"%s\" %s", source, key, fix);
	return STRATA_ECONFIG;
}

static const char *env_lookup(char *const *envp, const char *name)
{
	size_t len = strlen(name);

	for (; *envp; envp++) {
		if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
			return *envp + len + 1;
	}
	return NULL;
}

/* "upstream.max_connections" -> "STRATA_UPSTREAM_MAX_CONNECTIONS" */
static void env_name(const char *key, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "STRATA_%s", key);

	for (size_t i = 7; i < n && i < len; i++)
		buf[i] = buf[i] == '.' ? '_'
				       : (char)toupper((unsigned char)buf[i]);
}

static int env_set(struct strata_config *cfg, const struct option *opt,
		   char *const *envp, const char *name, char *err,
		   size_t errlen)
{
	const char *value = env_lookup(envp, name);
	char source[96];

	if (!value)
		return 0;
	snprintf(source, sizeof(source), "environment %s", name);
	return set_option(cfg, opt, value, source, err, errlen);
}

/*
 * STRATA_ROUTES="/a=10s, /b/<star>=1m": all or nothing.  An empty list is
 * an error rather than "no routes": an unset variable interpolated by a
 * compose file must not silently turn caching off.
 */
static int env_routes(struct strata_config *cfg, const char *list, char *err,
		      size_t errlen)
{
	struct strata_route_config *old = cfg->routes;
	size_t n_old = cfg->n_routes;
	char *copy = strdup(list), *save = NULL;
	int rc = 0;

	if (copy && strspn(copy, " \t\r\n,") == strlen(copy)) {
		snprintf(err, errlen, "environment STRATA_ROUTES: is empty "
			 "(unset it, or list PATH=TTL routes separated by "
			 "commas)");
		free(copy);
		return STRATA_ECONFIG;
	}
	if (!copy) {
		snprintf(err, errlen, "environment STRATA_ROUTES: out of memory");
		return -ENOMEM;
	}
	cfg->routes = NULL;
	cfg->n_routes = 0;
	for (char *item = strtok_r(copy, ",", &save); item && rc == 0;
	     item = strtok_r(NULL, ",", &save)) {
		size_t len;

		while (is_blank(*item))
			item++;
		len = strlen(item);
		while (len && is_blank(item[len - 1]))
			item[--len] = '\0';
		if (len)
			rc = strata_config_add_route(cfg, item,
						     "environment STRATA_ROUTES",
						     err, errlen);
	}
	if (rc < 0) {
		strata_config_clear_routes(cfg);
		cfg->routes = old;
		cfg->n_routes = n_old;
	} else {
		routes_free(old, n_old);
	}
	free(copy);
	return rc;
}

int strata_config_apply_env(struct strata_config *cfg, char *const *envp,
			    char *err, size_t errlen)
{
	const char *routes;
	int rc;

	if (!envp)
		envp = environ;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *opt = &options[i];
		char name[64];

		env_name(opt->key, name, sizeof(name));
		rc = env_set(cfg, opt, envp, name, err, errlen);
		if (rc == 0 && opt->env_alias && strcmp(opt->env_alias, name))
			rc = env_set(cfg, opt, envp, opt->env_alias, err,
				     errlen);
		if (rc < 0)
			return rc;
	}
	routes = env_lookup(envp, "STRATA_ROUTES");
	return routes ? env_routes(cfg, routes, err, errlen) : 0;
}

/* --- lifecycle and validation --------------------------------------------- */

static unsigned default_workers(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 1)
		return 1;
	return cpus > 1024 ? 1024 : (unsigned)cpus;
}

/*
 * systemd's StateDirectory= gives a service its directories in
 * $STATE_DIRECTORY: absolute paths, separated by ':' when there are
 * several.  The disk tier takes the first.  Without systemd the tier
 * lives next to where strata was started, which is easy to find and to
 * delete.  Returns a new string, NULL when out of memory.
 */
static char *default_disk_path(void)
{
	const char *dirs = getenv("STATE_DIRECTORY");
	size_t len = dirs ? strcspn(dirs, ":") : 0;

	return len ? strndup(dirs, len) : strdup("./strata-data");
}

struct strata_config *strata_config_new(void)
{
	struct strata_config *cfg = calloc(1, sizeof(*cfg));
	char err[STRATA_CONFIG_ERRLEN];

	if (!cfg)
		return NULL;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		/* Defaults are text parsed like input, so they obey bounds. */
		if (options[i].def &&
		    set_option(cfg, &options[i], options[i].def, "default",
			       err, sizeof(err)) < 0) {
			strata_config_free(&cfg);
			return NULL;
		}
	}
	cfg->workers = default_workers();
	cfg->cache.disk.path = default_disk_path();
	if (!cfg->cache.disk.path)
		strata_config_free(&cfg);
	return cfg;
}

void strata_config_free(struct strata_config **cfg)
{
	struct strata_config *c;

	if (!cfg || !*cfg)
		return;
	c = *cfg;
	*cfg = NULL;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (option_is_text(&options[i]))
			free(*(char **)option_ptr(c, &options[i]));
	}
	strata_config_clear_routes(c);
	free(c->file);
	free(c);
}

/*
 * Re-check a stored value: the struct is public, so a caller may have
 * written it directly since it was parsed.
 */
static int check_stored(struct strata_config *cfg, const struct option *opt,
			char *why, size_t whylen)
{
	void *ptr = option_ptr(cfg, opt);
	const char *text;
	uint64_t n;
	char shown[32], names[96];
	int index;

	switch (opt->type) {
	case OPT_ENUM:
		index = *(int *)ptr;
		for (int i = 0; opt->choices->names[i]; i++) {
			if (i == index)
				return 0;
		}
		choices_text(opt->choices, names, sizeof(names));
		snprintf(why, whylen, "%d is not %s (use %s)", index,
			 opt->choices->what, names);
		return STRATA_ECONFIG;
	case OPT_PATH:
		text = *(char **)ptr;
		if (text && text[0])
			return 0;
		snprintf(why, whylen, "is not set (give a directory, e.g. "
			 "./strata-data)");
		return STRATA_ECONFIG;
	case OPT_UINT:
	case OPT_SIZE:
	case OPT_DURATION:
	case OPT_COUNT:
		n = opt->type == OPT_UINT ? *(unsigned *)ptr
					  : *(uint64_t *)ptr;
		if (n >= opt->min && n <= opt->max)
			return 0;
		format_number(opt, n, shown, sizeof(shown));
		range_problem(opt, shown, false, why, whylen);
		return STRATA_ECONFIG;
	case OPT_URL:
	case OPT_HOSTPORT:
		text = *(char **)ptr;
		if (!text) {
			snprintf(why, whylen, "is not set (set it, e.g. %s)",
				 opt->def);
			return STRATA_ECONFIG;
		}
		if ((opt->type == OPT_URL ? check_url(text, why, whylen)
					  : check_hostport(text, why, whylen)) < 0)
			return STRATA_ECONFIG;
		return 0;
	case OPT_REDIS_URL:
		/* NULL or "": the tier is off (finish makes "" NULL). */
		text = *(char **)ptr;
		if (text && text[0] && check_redis_url(text, why, whylen) < 0)
			return STRATA_ECONFIG;
		return 0;
	case OPT_PREFIX:
		text = *(char **)ptr;
		if (!text) {
			snprintf(why, whylen, "is not set (set it, e.g. %s)",
				 opt->def);
			return STRATA_ECONFIG;
		}
		return check_prefix(text, why, whylen) < 0 ? STRATA_ECONFIG : 0;
	case OPT_HEADER:
		/* NULL: no tags, like "" (finish makes it ""). */
		text = *(char **)ptr;
		if (text && check_header(text, why, whylen) < 0)
			return STRATA_ECONFIG;
		return 0;
	case OPT_BOOL:
	case OPT_STRING:
	default:
		return 0;
	}
}

/* Two valid host:port texts naming the same fixed address. */
static bool same_address(const char *a, const char *b)
{
	char host_a[64], host_b[64], why[8];
	unsigned port_a, port_b;

	if (split_hostport(a, host_a, sizeof(host_a), &port_a, why,
			   sizeof(why)) < 0 ||
	    split_hostport(b, host_b, sizeof(host_b), &port_b, why,
			   sizeof(why)) < 0)
		return false;
	/* Port 0 asks the kernel for a free port: never a clash. */
	return port_a && port_a == port_b && strcasecmp(host_a, host_b) == 0;
}

int strata_config_finish(struct strata_config *cfg, char *err, size_t errlen)
{
	struct strata_route_table *table = NULL;
	char why[STRATA_CONFIG_ERRLEN];
	int rc;

	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (check_stored(cfg, &options[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: %s", options[i].key, why);
			return STRATA_ECONFIG;
		}
	}
	if (cfg->admin.token && !cfg->admin.token[0]) {
		free(cfg->admin.token);
		cfg->admin.token = NULL;
	}
	/* One spelling each for "off": a NULL URL, an empty tags header. */
	if (cfg->cache.redis.url && !cfg->cache.redis.url[0]) {
		free(cfg->cache.redis.url);
		cfg->cache.redis.url = NULL;
	}
	if (!cfg->cache.tags_header) {
		cfg->cache.tags_header = strdup("");
		if (!cfg->cache.tags_header) {
			snprintf(err, errlen, "cache.tags_header: out of memory");
			return -ENOMEM;
		}
	}
	if (!cfg->admin.token && !is_loopback(cfg->admin.listen)) {
		snprintf(err, errlen, "admin.listen %s is not loopback: set "
			 "admin.token (or STRATA_ADMIN_TOKEN)",
			 cfg->admin.listen);
		return STRATA_ECONFIG;
	}
	if (same_address(cfg->listen, cfg->admin.listen)) {
		snprintf(err, errlen, "admin.listen %s is the same as listen "
			 "(give the admin listener another port)",
			 cfg->admin.listen);
		return STRATA_ECONFIG;
	}
	rc = strata_route_table_new(cfg->routes, cfg->n_routes, &table, err,
				    errlen);
	strata_route_table_release(&table);
	return rc;
}
