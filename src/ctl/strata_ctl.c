/*
 * strata_ctl.c: strata-ctl, the command-line client of Strata's admin API.
 *
 * Each command is one request to the admin listener (two for `show PATH`,
 * one per page for `keys --all`), made with libcurl; docs/admin-api.md is
 * the contract.  Answers are JSON, parsed with jansson and printed as
 * aligned tables, or passed through unchanged with --json.  The program
 * does not link libstrata: it knows the server only through the API.
 *
 * The exit status says what happened, so that scripts need not parse the
 * output (the table below is repeated in --help and strata-ctl(1)):
 * 0 success, 1 the server answered an error (or "not found"), 2 usage
 * error (checked before anything is sent), 3 no answer (cannot connect,
 * timeout), 4 authentication refused (401, 403), 5 not ready (`ready`).
 *
 * The token never appears in any output: it goes only into the
 * Authorization header.  When it comes from --token, its argv copy is
 * overwritten once read so it does not stay in /proc/PID/cmdline (it is
 * visible there for a moment, which is why STRATA_ADMIN_TOKEN is the
 * recommended way).  Proxy variables (http_proxy, ...) are ignored so an
 * inherited proxy setting does not carry the token to a third party.
 *
 * Everything the server sends is printed through clean(), which escapes
 * control characters, so a key made of hostile request bytes cannot drive
 * the terminal.  The program is linked without libm (the Makefile gives it
 * libcurl and jansson only), hence the hand-rolled rounding.  Out of memory ends the program with status 1: a one-shot
 * command has nothing to unwind.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "strata-ctl"
#define DEFAULT_ADMIN "http://127.0.0.1:8081"
#define DEFAULT_TIMEOUT_S 10.0
#define HASH_LEN 32                     /* hex digits of an entry hash */
#define LIMIT_MAX 1000                  /* the server's largest page */
#define ALL_PAGE 1000                   /* page size of keys --all */
#define MAX_BODY (512u << 20)           /* larger answers are refused */

enum ctl_exit {
	CTL_OK = 0,
	CTL_SERVER = 1,         /* the server answered an error, not found */
	CTL_USAGE = 2,          /* bad command line; nothing was sent */
	CTL_CONNECT = 3,        /* no answer: connect failure, timeout */
	CTL_AUTH = 4,           /* 401 or 403 */
	CTL_NOT_READY = 5,      /* `ready` got 503 */
};

/* --- small utilities ---------------------------------------------------- */

static void die_oom(void)
{
	fputs(PROG ": out of memory\n", stderr);
	exit(CTL_SERVER);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n != 0 ? n : 1);
	if (p == NULL)
		die_oom();
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		die_oom();
	return d;
}

static void errmsg(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A growable NUL-terminated byte string. */
struct buf {
	char *s;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		buf_add(b, small, (size_t)n);
		return;
	}
	char *big = xrealloc(NULL, (size_t)n + 1);

	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, (size_t)n);
	free(big);
}

/* Take the string out of the buffer (never NULL). */
static char *buf_take(struct buf *b)
{
	char *s;

	buf_add(b, "", 0);
	s = b->s;
	*b = (struct buf){0};
	return s;
}

/*
 * A printable copy of text from the server: control characters (C0, DEL
 * and the UTF-8 encodings of C1) become \n, \t, \r or \xNN; other bytes,
 * UTF-8 included, are kept.  The caller frees the result.
 */
static char *clean(const char *s)
{
	struct buf b = {0};

	if (s == NULL)
		s = "";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n')
			buf_str(&b, "\\n");
		else if (*p == '\t')
			buf_str(&b, "\\t");
		else if (*p == '\r')
			buf_str(&b, "\\r");
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(&b, "\\x%02x", *p);
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			buf_printf(&b, "\\u%04x", p[1] + 0u), p++;
		else
			buf_add(&b, (const char *)p, 1);
	}
	return buf_take(&b);
}

/* Print server text, cleaned, to `f`. */
static void put_clean(FILE *f, const char *s)
{
	char *c = clean(s);

	fputs(c, f);
	free(c);
}

/*
 * A key text for display: the canonical text ends every line with LF
 * (src/cache/key.h), so the last LF is dropped; the ones between lines
 * (vary headers) stay, for clean() or print_key() to show.  Caller frees.
 */
static char *key_display(const char *key)
{
	char *k = xstrdup(key != NULL ? key : "-");
	size_t n = strlen(k);

	if (n > 0 && k[n - 1] == '\n')
		k[n - 1] = '\0';
	return k;
}

/* Display width of a cleaned string: code points, not bytes. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* "512 B", "1.2 KiB", "256 MiB" ... */
static void fmt_bytes(double n, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	while (n >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		n /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%.0f B", n);
	else if (n < 10 && n != (double)(long long)n)
		snprintf(out, len, "%.1f %s", n, units[u]);
	else
		snprintf(out, len, "%.0f %s", n, units[u]);
}

/* "45s", "2m03s", "1h02m", "3d04h"; negative values keep their sign. */
static void fmt_secs(double secs, char *out, size_t len)
{
	const char *sign = secs < 0 ? "-" : "";
	long long s = (long long)((secs < 0 ? -secs : secs) + 0.5);

	if (s < 60)
		snprintf(out, len, "%s%llds", sign, s);
	else if (s < 3600)
		snprintf(out, len, "%s%lldm%02llds", sign, s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, len, "%s%lldh%02lldm", sign, s / 3600,
			 s % 3600 / 60);
	else
		snprintf(out, len, "%s%lldd%02lldh", sign, s / 86400,
			 s % 86400 / 3600);
}

/* --- JSON accessors: missing or mistyped members read as absent -------- */

static const char *jstr(const json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

static bool jnum(const json_t *o, const char *name, double *v)
{
	const json_t *n = json_object_get(o, name);

	if (!json_is_number(n))
		return false;
	*v = json_number_value(n);
	return true;
}

/* A number member as text ("-" when absent). */
static void jnum_text(const json_t *o, const char *name, char *out,
		      size_t len)
{
	double v;

	if (jnum(o, name, &v))
		snprintf(out, len, "%.15g", v);
	else
		snprintf(out, len, "-");
}

static void jbytes_text(const json_t *o, const char *name, char *out,
			size_t len)
{
	double v;

	if (jnum(o, name, &v))
		fmt_bytes(v, out, len);
	else
		snprintf(out, len, "-");
}

static void jsecs_text(const json_t *o, const char *name, char *out,
		       size_t len)
{
	double v;

	if (jnum(o, name, &v))
		fmt_secs(v, out, len);
	else
		snprintf(out, len, "-");
}

/* The strings of array member `name` joined with `sep`; caller frees. */
static char *jjoin(const json_t *o, const char *name, const char *sep)
{
	struct buf b = {0};
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(o, name), i, v) {
		if (!json_is_string(v))
			continue;
		if (b.len)
			buf_str(&b, sep);
		buf_str(&b, json_string_value(v));
	}
	return buf_take(&b);
}

/* --- aligned tables ----------------------------------------------------- */

/*
 * A table is filled cell by cell, row after row, and printed with every
 * column as wide as its widest cell.  Columns marked 'r' in `align` are
 * right-aligned (numbers); the last column is never padded, so a long key
 * does not drag trailing spaces along.
 */
struct table {
	size_t ncols;
	const char *const *heads;
	const char *align;
	char **cells;           /* cleaned copies, row-major */
	size_t ncells, cap;
};

static void table_cell(struct table *t, const char *text)
{
	if (t->ncells == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->cells = xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	t->cells[t->ncells++] = clean(text);
}

static void table_print(const struct table *t, FILE *f)
{
	size_t *w = xrealloc(NULL, t->ncols * sizeof(*w));

	for (size_t c = 0; c < t->ncols; c++)
		w[c] = width(t->heads[c]);
	for (size_t i = 0; i < t->ncells; i++)
		if (width(t->cells[i]) > w[i % t->ncols])
			w[i % t->ncols] = width(t->cells[i]);
	for (size_t i = 0; i < t->ncells + t->ncols; i++) {
		size_t c = i % t->ncols;
		const char *s = i < t->ncols ? t->heads[c]
					     : t->cells[i - t->ncols];
		size_t pad = w[c] - width(s);
		bool last = c + 1 == t->ncols;

		if (t->align[c] == 'r')
			fprintf(f, "%*s%s", (int)pad, "", s);
		else
			fprintf(f, "%s%*s", s, last ? 0 : (int)pad, "");
		fputs(last ? "\n" : "  ", f);
	}
	free(w);
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->ncells = t->cap = 0;
}

/* --- the command line --------------------------------------------------- */

/* Command options; a command lists the ones it takes as a bit mask. */
enum copt {
	C_PREFIX, C_PATH, C_TAG, C_TIER, C_ROUTE, C_LIMIT, C_CURSOR, C_ALL,
	C_BODY, C_HASH, C_DRY_RUN, C_YES, C_METHOD, C_HEADER, C_COUNT
};
#define BIT(o) (1u << (o))

/* getopt_long values: global options, then 1000 + enum copt. */
enum {
	G_ADMIN = 500, G_TOKEN, G_JSON, G_TIMEOUT, C_BASE = 1000
};

static const struct option long_options[] = {
	{"admin", required_argument, NULL, G_ADMIN},
	{"token", required_argument, NULL, G_TOKEN},
	{"json", no_argument, NULL, G_JSON},
	{"timeout", required_argument, NULL, G_TIMEOUT},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"prefix", required_argument, NULL, C_BASE + C_PREFIX},
	{"path", required_argument, NULL, C_BASE + C_PATH},
	{"tag", required_argument, NULL, C_BASE + C_TAG},
	{"tier", required_argument, NULL, C_BASE + C_TIER},
	{"route", required_argument, NULL, C_BASE + C_ROUTE},
	{"limit", required_argument, NULL, C_BASE + C_LIMIT},
	{"cursor", required_argument, NULL, C_BASE + C_CURSOR},
	{"all", no_argument, NULL, C_BASE + C_ALL},
	{"body", no_argument, NULL, C_BASE + C_BODY},
	{"hash", required_argument, NULL, C_BASE + C_HASH},
	{"dry-run", no_argument, NULL, C_BASE + C_DRY_RUN},
	{"yes", no_argument, NULL, C_BASE + C_YES},
	{"method", required_argument, NULL, C_BASE + C_METHOD},
	{"header", required_argument, NULL, C_BASE + C_HEADER},
	{NULL, 0, NULL, 0},
};

/* What the command line asked for, validated. */
struct opts {
	const char *admin;      /* as given (or from the environment) */
	char *token;            /* owned copy; NULL: none */
	bool json;
	double timeout_s;

	unsigned seen;          /* BIT(C_...) of every command option given */
	const char *prefix, *path, *tag, *tier, *route, *cursor, *method;
	char hash[HASH_LEN + 1];
	long limit;             /* 0: the server's default */
	bool all, body, dry_run, yes;
	const char **headers;   /* -H values, "Name:value" (owned array) */
	size_t n_headers;

	const struct command *cmd;
	char **args;            /* positional arguments after the command */
	int n_args;
};

/* A connection to the admin API: one curl handle, reused by every request
 * of a command (keys --all keeps its connection). */
struct ctl {
	const struct opts *o;
	char *base;             /* "http://host:port[/prefix]", no slash at end */
	CURL *curl;
	struct curl_slist *headers;
};

struct command {
	const char *name;
	int (*run)(struct ctl *c);
	unsigned options;       /* BIT(C_...) the command accepts */
	int min_args, max_args;
	const char *synopsis;
};

static int cmd_keys(struct ctl *c);
static int cmd_show(struct ctl *c);
static int cmd_purge(struct ctl *c);
static int cmd_flush(struct ctl *c);
static int cmd_stats(struct ctl *c);
static int cmd_health(struct ctl *c);
static int cmd_ready(struct ctl *c);
static int cmd_explain(struct ctl *c);
static int cmd_reload(struct ctl *c);

static const struct command commands[] = {
	{"keys", cmd_keys,
	 BIT(C_PREFIX) | BIT(C_PATH) | BIT(C_TAG) | BIT(C_TIER) |
		 BIT(C_ROUTE) | BIT(C_LIMIT) | BIT(C_CURSOR) | BIT(C_ALL),
	 0, 0,
	 "keys [--prefix P] [--path P] [--tag T] [--tier T] [--route R]\n"
	 "       [--limit N] [--cursor C] [--all]"},
	{"show", cmd_show, BIT(C_BODY) | BIT(C_HEADER), 1, 1,
	 "show HASH|PATH [--body] [-H 'Name: value']..."},
	{"purge", cmd_purge,
	 BIT(C_PREFIX) | BIT(C_TAG) | BIT(C_HASH) | BIT(C_DRY_RUN), 0, 1,
	 "purge PATH | --prefix P | --tag T | --hash H  [--dry-run]"},
	{"flush", cmd_flush, BIT(C_TIER) | BIT(C_YES), 0, 0,
	 "flush [--tier memory|disk|redis] --yes"},
	{"stats", cmd_stats, 0, 0, 0, "stats"},
	{"health", cmd_health, 0, 0, 0, "health"},
	{"ready", cmd_ready, 0, 0, 0, "ready"},
	{"explain", cmd_explain, BIT(C_METHOD) | BIT(C_HEADER), 1, 1,
	 "explain URL [--method M] [-H 'Name: value']..."},
	{"reload", cmd_reload, 0, 0, 0, "reload"},
};

static void usage(FILE *f)
{
	fputs("Usage: " PROG " [OPTION]... COMMAND [ARG]...\n"
	      "Inspect and manage a running strata through its admin API.\n"
	      "\n"
	      "Options (anywhere on the line):\n"
	      "  --admin URL     admin API address (default: $STRATA_ADMIN_URL,"
	      "\n"
	      "                  else " DEFAULT_ADMIN ")\n"
	      "  --token TOKEN   bearer token (default: $STRATA_ADMIN_TOKEN; "
	      "prefer the\n"
	      "                  variable: arguments are visible to other "
	      "users)\n"
	      "  --json          print the server's JSON answer unchanged\n"
	      "  --timeout SECS  give up on a request after SECS seconds "
	      "(default 10)\n"
	      "  -h, --help      print this help and exit\n"
	      "  -V, --version   print the version and exit\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fputs("\n"
	      "A PATH starts with \"/\"; a HASH is 32 hex digits.  flush always"
	      "\n"
	      "needs --yes.  keys --all follows the cursors to the last page."
	      "\n"
	      "\n"
	      "Exit status:\n"
	      "  0  success\n"
	      "  1  the server answered with an error, or the entry was not "
	      "found\n"
	      "  2  usage error (nothing was sent)\n"
	      "  3  cannot connect to the admin API, or no answer in time\n"
	      "  4  authentication failed (401 or 403)\n"
	      "  5  not ready (ready only)\n", f);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help'.\n", stderr);
	return CTL_USAGE;
}

static const char *copt_name(enum copt o)
{
	for (const struct option *lo = long_options; lo->name; lo++)
		if (lo->val == C_BASE + (int)o)
			return lo->name;
	return "?";
}

static bool is_tier(const char *s)
{
	return strcmp(s, "memory") == 0 || strcmp(s, "disk") == 0 ||
	       strcmp(s, "redis") == 0;
}

/* Whether `s` is an entry hash; stores it in lower case in `out`. */
static bool parse_hash(const char *s, char out[HASH_LEN + 1])
{
	char h[HASH_LEN + 1];
	size_t i;

	for (i = 0; i < HASH_LEN; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return false;
		h[i] = (char)tolower((unsigned char)s[i]);
	}
	if (s[i] != '\0')
		return false;
	h[i] = '\0';
	memcpy(out, h, sizeof(h));
	return true;
}

/* An HTTP token (method, header name): RFC 9110 tchar. */
static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("!#$%&'*+-.^_`|~", s[i]) == NULL)
			return false;
	return true;
}

/* -H 'Name: value' → "Name:value" (the API's form), or NULL. */
static const char *parse_header(const char *arg)
{
	const char *colon = strchr(arg, ':');
	const char *v;
	struct buf b = {0};

	if (colon == NULL || !is_token(arg, (size_t)(colon - arg)))
		return NULL;
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return NULL;
	buf_add(&b, arg, (size_t)(colon - arg) + 1);
	buf_str(&b, v);
	return buf_take(&b);
}

static bool has_ctl_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A filter value: not empty, and a path one starts with "/". */
static int check_filter(enum copt o, const char *v)
{
	if (*v == '\0')
		return usage_error("--%s needs a value", copt_name(o));
	if ((o == C_PATH || o == C_PREFIX) && v[0] != '/')
		return usage_error("--%s %s: a path starts with \"/\"",
				   copt_name(o), v);
	return 0;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/*
 * One command option's value into `o`.  Returns 0 or CTL_USAGE (after the
 * message).
 */
static int take_copt(struct opts *o, enum copt id, const char *arg)
{
	char *end;
	int rc = 0;

	o->seen |= BIT(id);
	switch (id) {
	case C_PREFIX:
		o->prefix = arg;
		rc = check_filter(id, arg);
		break;
	case C_PATH:
		o->path = arg;
		rc = check_filter(id, arg);
		break;
	case C_TAG:
		o->tag = arg;
		rc = check_filter(id, arg);
		break;
	case C_ROUTE:
		o->route = arg;
		rc = check_filter(id, arg);
		break;
	case C_CURSOR:
		o->cursor = arg;
		rc = check_filter(id, arg);
		break;
	case C_TIER:
		o->tier = arg;
		if (!is_tier(arg))
			rc = usage_error("--tier %s: use memory, disk or redis",
					 arg);
		break;
	case C_LIMIT:
		o->limit = strtol(arg, &end, 10);
		if (end == arg || *end != '\0' || o->limit < 1 ||
		    o->limit > LIMIT_MAX)
			rc = usage_error("--limit %s: use a number from 1 to %d",
					 arg, LIMIT_MAX);
		break;
	case C_HASH:
		if (!parse_hash(arg, o->hash))
			rc = usage_error("--hash %s: a hash is %d hex digits "
					 "(see `" PROG " keys`)", arg,
					 HASH_LEN);
		break;
	case C_METHOD:
		o->method = arg;
		if (!is_token(arg, strlen(arg)))
			rc = usage_error("--method %s: not an HTTP method",
					 arg);
		break;
	case C_HEADER: {
		const char *h = parse_header(arg);

		if (h == NULL) {
			rc = usage_error("-H %s: write a header as "
					 "'Name: value'", arg);
			break;
		}
		o->headers = xrealloc(o->headers, (o->n_headers + 1) *
						   sizeof(*o->headers));
		o->headers[o->n_headers++] = h;
		break;
	}
	case C_ALL:
		o->all = true;
		break;
	case C_BODY:
		o->body = true;
		break;
	case C_DRY_RUN:
		o->dry_run = true;
		break;
	case C_YES:
		o->yes = true;
		break;
	case C_COUNT:
		break;
	}
	return rc;
}

/* Checks that need the whole command line. */
static int check_command(struct opts *o)
{
	const struct command *cmd = o->cmd;
	unsigned extra = o->seen & ~cmd->options;

	for (int i = 0; extra != 0 && i < C_COUNT; i++)
		if (extra & BIT(i))
			return usage_error("%s does not take --%s", cmd->name,
					   copt_name((enum copt)i));
	if (o->n_args < cmd->min_args)
		return usage_error("%s: missing argument (%s)", cmd->name,
				   cmd->synopsis);
	if (o->n_args > cmd->max_args)
		return usage_error("%s: unexpected argument \"%s\"",
				   cmd->name, o->args[cmd->max_args]);

	if (cmd->run == cmd_show && !parse_hash(o->args[0], o->hash) &&
	    o->args[0][0] != '/')
		return usage_error("show %s: give a hash (%d hex digits) or a "
				   "path starting with \"/\"", o->args[0],
				   HASH_LEN);
	if (cmd->run == cmd_show && o->hash[0] != '\0' && o->n_headers > 0)
		return usage_error("show: -H applies to a PATH, not a hash");
	if (cmd->run == cmd_purge) {
		int n = (o->n_args > 0) + (o->prefix != NULL) +
			(o->tag != NULL) + (o->hash[0] != '\0');

		if (n != 1)
			return usage_error("purge takes exactly one of PATH, "
					   "--prefix, --tag, --hash (use flush "
					   "to remove everything)");
		if (o->n_args > 0) {
			o->path = o->args[0];
			if (o->path[0] != '/')
				return usage_error("purge %s: a path starts "
						   "with \"/\"", o->path);
		}
	}
	if (cmd->run == cmd_flush && !o->yes && o->tier != NULL)
		return usage_error("flush --tier %s removes every entry of that "
				   "tier; add --yes to do it", o->tier);
	if (cmd->run == cmd_flush && !o->yes)
		return usage_error("flush removes every cached entry, on every "
				   "replica that shares this Redis; add --yes "
				   "to do it");
	if (cmd->run == cmd_keys && o->cursor && o->all)
		return usage_error("keys: --all starts at the first page; "
				   "drop --cursor");
	if (cmd->run == cmd_explain && has_ctl_chars(o->args[0]))
		return usage_error("explain: the URL holds control "
				   "characters");
	return 0;
}

/* Overwrite a secret in argv so it does not stay in /proc/PID/cmdline. */
static void scrub(char *arg)
{
	for (; *arg; arg++)
		*arg = 'x';
}

/*
 * Parse and validate the whole command line: every usage error is found
 * here, before anything is sent.  Returns 0, CTL_USAGE, or -1 when --help
 * or --version has been answered (exit 0).
 */
static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *env;
	char *end;
	int c, rc;

	o->timeout_s = DEFAULT_TIMEOUT_S;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hVH:", long_options,
				NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			puts(PROG " " PACKAGE_VERSION);
			return -1;
		case G_ADMIN:
			o->admin = optarg;
			break;
		case G_TOKEN:
			free(o->token);
			o->token = xstrdup(optarg);
			scrub(optarg);
			break;
		case G_JSON:
			o->json = true;
			break;
		case G_TIMEOUT:
			o->timeout_s = strtod(optarg, &end);
			if (end == optarg || *end != '\0' ||
			    !isfinite(o->timeout_s) || o->timeout_s <= 0 ||
			    o->timeout_s > 86400)
				return usage_error("--timeout %s: use seconds, "
						   "more than 0 (such as 5 or "
						   "0.5)", optarg);
			break;
		case 'H':
			if ((rc = take_copt(o, C_HEADER, optarg)) != 0)
				return rc;
			break;
		case ':':
			return usage_error("%s needs a value",
					   argv[optind - 1]);
		case '?':
			if (optopt != 0)
				return usage_error("unknown option -%c",
						   optopt);
			return usage_error("unknown option %s",
					   argv[optind - 1]);
		default:
			if (c >= C_BASE && c < C_BASE + C_COUNT) {
				rc = take_copt(o, (enum copt)(c - C_BASE),
					       optarg);
				if (rc != 0)
					return rc;
			}
			break;
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	o->cmd = find_command(argv[optind]);
	if (o->cmd == NULL)
		return usage_error("unknown command \"%s\"", argv[optind]);
	o->args = argv + optind + 1;
	o->n_args = argc - optind - 1;

	if (o->token == NULL && (env = getenv("STRATA_ADMIN_TOKEN")) != NULL &&
	    *env != '\0')
		o->token = xstrdup(env);
	if (o->token != NULL && (*o->token == '\0' ||
				 has_ctl_chars(o->token)))
		return usage_error("the token is empty or holds control "
				   "characters");
	if (o->admin == NULL && (env = getenv("STRATA_ADMIN_URL")) != NULL &&
	    *env != '\0')
		o->admin = env;
	if (o->admin == NULL)
		o->admin = DEFAULT_ADMIN;
	return check_command(o);
}

/*
 * The admin address as a base URL: "host:port" gets "http://"; only http
 * and https are accepted; trailing slashes go.  Credentials in the URL
 * are refused: they would show in messages, and the token is the API's
 * only authentication.
 */
static int base_url(const char *admin, char **out)
{
	struct buf b = {0};
	const char *rest, *auth_end;

	if (has_ctl_chars(admin) || strchr(admin, ' ') != NULL)
		return usage_error("--admin %s: not a URL", admin);
	if (strncasecmp(admin, "http://", 7) == 0)
		rest = admin + 7;
	else if (strncasecmp(admin, "https://", 8) == 0)
		rest = admin + 8;
	else if (strstr(admin, "://") != NULL)
		return usage_error("--admin %s: use an http:// or https:// URL",
				   admin);
	else {
		buf_str(&b, "http://");
		rest = admin;
	}
	auth_end = rest + strcspn(rest, "/?#");
	if (auth_end == rest) {
		free(b.s);
		return usage_error("--admin %s: no host", admin);
	}
	if (memchr(rest, '@', (size_t)(auth_end - rest)) != NULL) {
		free(b.s);
		return usage_error("--admin: credentials in the URL are not "
				   "supported; use --token or "
				   "STRATA_ADMIN_TOKEN");
	}
	if (strpbrk(auth_end, "?#") != NULL) {
		free(b.s);
		return usage_error("--admin %s: no query or fragment, please",
				   admin);
	}
	buf_str(&b, admin);
	while (b.len > 0 && b.s[b.len - 1] == '/')
		b.s[--b.len] = '\0';
	*out = buf_take(&b);
	return 0;
}

/* --- HTTP --------------------------------------------------------------- */

/* One answer of the admin API. */
struct reply {
	long status;
	char *body;             /* NUL-terminated, possibly empty */
	size_t len;
	size_t cap;             /* allocated size of body */
	json_t *doc;            /* the parsed body; NULL: not JSON */
	bool too_big;
};

static void reply_free(struct reply *r)
{
	free(r->body);
	json_decref(r->doc);
	*r = (struct reply){0};
}

static size_t write_cb(char *data, size_t size, size_t n, void *userdata)
{
	struct reply *r = userdata;
	struct buf b = {r->body, r->len, r->cap};

	if (r->len + size * n > MAX_BODY) {
		r->too_big = true;
		return 0;
	}
	buf_add(&b, data, size * n);
	r->body = b.s;
	r->len = b.len;
	r->cap = b.cap;
	return size * n;
}

/*
 * A request path with its query: url_param() appends name=value, the
 * value percent-encoded (curl_easy_escape encodes every byte but
 * unreserved ones, so '/', '&', '+', '#' and spaces are all safe).
 */
static void url_param(struct ctl *c, struct buf *u, const char *name,
		      const char *value)
{
	char *esc = curl_easy_escape(c->curl, value, 0);

	if (esc == NULL)
		die_oom();
	buf_printf(u, "%c%s=%s", strchr(u->s, '?') ? '&' : '?', name, esc);
	curl_free(esc);
}

static int ctl_open(struct ctl *c, const struct opts *o)
{
	struct buf auth = {0};
	struct curl_slist *h;
	int rc;

	c->o = o;
	if ((rc = base_url(o->admin, &c->base)) != 0)
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (c->curl = curl_easy_init()) == NULL) {
		errmsg("cannot initialize libcurl");
		return CTL_SERVER;
	}
	h = curl_slist_append(NULL, "Accept: application/json");
	if (h != NULL && o->token != NULL) {
		buf_printf(&auth, "Authorization: Bearer %s", o->token);
		h = curl_slist_append(h, auth.s);
		memset(auth.s, 0, auth.len);
		free(auth.s);
	}
	if (h == NULL)
		die_oom();
	c->headers = h;
	return 0;
}

static void ctl_close(struct ctl *c)
{
	struct curl_slist *h;

	/* The Authorization line holds the token: wipe it before freeing. */
	for (h = c->headers; h != NULL; h = h->next)
		memset(h->data, 0, strlen(h->data));
	curl_slist_free_all(c->headers);
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->base);
	curl_global_cleanup();
}

/*
 * Send `method` `target` (path and query) and read the whole answer into
 * *r.  Returns 0 when any HTTP answer came back, or CTL_CONNECT after
 * saying why not.
 */
static int http(struct ctl *c, const char *method, const char *target,
		struct reply *r)
{
	char err[CURL_ERROR_SIZE] = "";
	struct buf url = {0};
	long ms = (long)(c->o->timeout_s * 1000 + 0.999);
	CURLcode cc;

	*r = (struct reply){0};
	buf_printf(&url, "%s%s", c->base, target);
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url.s);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_PROXY, "");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, ms);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT,
			 PROG "/" PACKAGE_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	}
	cc = curl_easy_perform(c->curl);
	free(url.s);
	if (r->too_big) {
		errmsg("%s %s: the answer is larger than %u MiB", method,
		       target, MAX_BODY >> 20);
		reply_free(r);
		return CTL_SERVER;
	}
	if (cc != CURLE_OK) {
		errmsg("cannot reach the admin API at %s: %s", c->base,
		       err[0] ? err : curl_easy_strerror(cc));
		reply_free(r);
		return CTL_CONNECT;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL)
		r->body = xstrdup("");
	r->doc = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
	return 0;
}

/* Print the server's JSON document unchanged, as one line or more. */
static void emit(const struct reply *r)
{
	fwrite(r->body, 1, r->len, stdout);
	if (r->len == 0 || r->body[r->len - 1] != '\n')
		putchar('\n');
}

/*
 * Judge an answer: 2xx with a JSON object is success (0).  Anything else
 * is reported on stderr with the server's error code and detail, and with
 * --json its error document also goes to stdout.  Returns the exit status.
 */
static int check(struct ctl *c, const char *method, const char *target,
		 const struct reply *r)
{
	const char *code = json_is_object(r->doc) ? jstr(r->doc, "error")
						  : NULL;
	const char *detail = json_is_object(r->doc) ? jstr(r->doc, "detail")
						    : NULL;
	char *path = clean(target);
	int rc;

	if (r->status >= 200 && r->status < 300) {
		if (json_is_object(r->doc)) {
			free(path);
			return CTL_OK;
		}
		errmsg("%s %s: the answer (HTTP %ld) is not a JSON object: is "
		       "%s a strata admin API?", method, path, r->status,
		       c->base);
		free(path);
		return CTL_SERVER;
	}
	rc = r->status == 401 || r->status == 403 ? CTL_AUTH : CTL_SERVER;
	fprintf(stderr, PROG ": %s %s: HTTP %ld", method, path, r->status);
	if (code != NULL) {
		fputs(" ", stderr);
		put_clean(stderr, code);
	}
	if (detail != NULL && *detail != '\0') {
		fputs(": ", stderr);
		put_clean(stderr, detail);
	}
	if (r->status == 401 && c->o->token == NULL)
		fputs(" (no token was sent: set STRATA_ADMIN_TOKEN or use "
		      "--token)", stderr);
	else if (r->status == 401 || r->status == 403)
		fputs(" (the token was refused)", stderr);
	fputc('\n', stderr);
	if (c->o->json && r->doc != NULL)
		emit(r);
	free(path);
	return rc;
}

/* GET/DELETE/POST target, then check(); the reply is kept for the caller
 * on success and released otherwise. */
static int call(struct ctl *c, const char *method, const char *target,
		struct reply *r)
{
	int rc = http(c, method, target, r);

	if (rc != 0)
		return rc;
	rc = check(c, method, target, r);
	if (rc != 0)
		reply_free(r);
	return rc;
}

/* --- commands ----------------------------------------------------------- */

static int cmd_health(struct ctl *c)
{
	struct reply r;
	int rc = call(c, "GET", "/health", &r);

	if (rc != 0)
		return rc;
	if (c->o->json) {
		emit(&r);
	} else {
		put_clean(stdout, jstr(r.doc, "status") ?: "ok");
		putchar('\n');
	}
	reply_free(&r);
	return CTL_OK;
}

/* "memory up, disk up, redis off; upstream up" from a /ready answer. */
static void print_ready_detail(const json_t *doc)
{
	const json_t *tiers = json_object_get(doc, "tiers");
	const char *name, *sep = "";
	const json_t *v;

	json_object_foreach((json_t *)tiers, name, v) {
		printf("%s", sep);
		put_clean(stdout, name);
		putchar(' ');
		put_clean(stdout, json_string_value(v) ?: "?");
		sep = ", ";
	}
	if (jstr(doc, "upstream") != NULL) {
		printf("%supstream ", *sep ? "; " : "");
		put_clean(stdout, jstr(doc, "upstream"));
	}
	putchar('\n');
}

/* Ready is decided by the HTTP status: 200 ready, 503 not ready. */
static int cmd_ready(struct ctl *c)
{
	struct reply r;
	int rc = http(c, "GET", "/ready", &r);

	if (rc != 0)
		return rc;
	if (r.status == 503) {
		if (c->o->json && r.doc != NULL)
			emit(&r);
		if (!c->o->json) {
			printf("not ready");
			if (jstr(r.doc, "state") != NULL) {
				printf(" (");
				put_clean(stdout, jstr(r.doc, "state"));
				printf(")");
			}
			printf(": ");
			print_ready_detail(r.doc);
		}
		reply_free(&r);
		return CTL_NOT_READY;
	}
	rc = check(c, "GET", "/ready", &r);
	if (rc == 0 && c->o->json) {
		emit(&r);
	} else if (rc == 0) {
		printf("ready: ");
		print_ready_detail(r.doc);
	}
	reply_free(&r);
	return rc;
}

static const char *const key_heads[] = {
	"HASH", "STATUS", "SIZE", "AGE", "TTL", "HITS", "TIERS", "ROUTE", "KEY"
};

/* One row of the keys table from an entry object. */
static void key_row(struct table *t, const json_t *e)
{
	char num[64];
	char *s;

	table_cell(t, jstr(e, "hash") ?: "-");
	jnum_text(e, "status", num, sizeof(num));
	table_cell(t, num);
	jbytes_text(e, "size", num, sizeof(num));
	table_cell(t, num);
	jsecs_text(e, "age", num, sizeof(num));
	table_cell(t, num);
	jsecs_text(e, "ttl", num, sizeof(num));
	table_cell(t, num);
	jnum_text(e, "hits", num, sizeof(num));
	table_cell(t, num);
	s = jjoin(e, "tiers", ",");
	table_cell(t, *s ? s : "-");
	free(s);
	table_cell(t, jstr(e, "route") ?: "-");
	s = key_display(jstr(e, "key"));
	table_cell(t, s);
	free(s);
}

static int cmd_keys(struct ctl *c)
{
	const struct opts *o = c->o;
	struct table t = {9, key_heads, "lrrrrrlll", NULL, 0, 0};
	json_t *all = json_array();
	char *cursor = o->cursor ? xstrdup(o->cursor) : NULL;
	struct buf u = {0};
	struct reply r = {0};
	int rc = CTL_OK;
	size_t i;
	json_t *e;

	if (all == NULL)
		die_oom();
	for (;;) {
		const json_t *next;

		buf_str(&u, "/admin/keys");
		if (o->prefix)
			url_param(c, &u, "prefix", o->prefix);
		if (o->path)
			url_param(c, &u, "path", o->path);
		if (o->tag)
			url_param(c, &u, "tag", o->tag);
		if (o->tier)
			url_param(c, &u, "tier", o->tier);
		if (o->route)
			url_param(c, &u, "route", o->route);
		if (o->limit || o->all)
			buf_printf(&u, "%climit=%ld", strchr(u.s, '?') ? '&'
								      : '?',
				   o->limit ? o->limit : ALL_PAGE);
		if (cursor)
			url_param(c, &u, "cursor", cursor);
		if ((rc = call(c, "GET", u.s, &r)) != 0)
			goto out;
		if (!json_is_array(json_object_get(r.doc, "keys"))) {
			errmsg("GET %s: the answer has no \"keys\" array",
			       u.s);
			rc = CTL_SERVER;
			goto out;
		}
		if (o->json && !o->all) {
			emit(&r);
			goto out;
		}
		json_array_extend(all, json_object_get(r.doc, "keys"));
		next = json_object_get(r.doc, "next_cursor");
		if (!json_is_string(next) || *json_string_value(next) == '\0') {
			free(cursor);
			cursor = NULL;
			break;
		}
		if (cursor && strcmp(cursor, json_string_value(next)) == 0) {
			errmsg("GET %s: the server returned the same cursor "
			       "again; stopping", u.s);
			rc = CTL_SERVER;
			goto out;
		}
		free(cursor);
		cursor = xstrdup(json_string_value(next));
		if (!o->all)
			break;
		reply_free(&r);
		free(u.s);
		u = (struct buf){0};
	}

	if (o->json) {
		/* keys --all --json: the pages as one document of the same
		 * shape, as if the server had answered in one page. */
		json_t *doc = json_pack("{s:O,s:n}", "keys", all,
					"next_cursor");

		if (doc == NULL || json_dumpf(doc, stdout, JSON_COMPACT) != 0)
			die_oom();
		putchar('\n');
		json_decref(doc);
		goto out;
	}
	json_array_foreach(all, i, e)
		key_row(&t, e);
	if (json_array_size(all) == 0)
		puts("No entries.");
	else
		table_print(&t, stdout);
	if (cursor != NULL) {
		fputs(PROG ": more entries follow: use --all, or --cursor ",
		      stderr);
		put_clean(stderr, cursor);
		fputc('\n', stderr);
	}
out:
	table_free(&t);
	reply_free(&r);
	free(u.s);
	free(cursor);
	json_decref(all);
	return rc;
}

/* Print a key text, its lines after the first indented by `indent`. */
static void print_key(const char *key, int indent)
{
	char *text = key_display(key);
	const char *p = text;

	for (;;) {
		const char *nl = strchr(p, '\n');
		char *line = xstrdup(p);

		if (nl)
			line[nl - p] = '\0';
		put_clean(stdout, line);
		free(line);
		putchar('\n');
		if (nl == NULL)
			break;
		p = nl + 1;
		printf("%*s", indent, "");
	}
	free(text);
}

static void field(const char *name, const char *value)
{
	printf("%-10s ", name);
	put_clean(stdout, value);
	putchar('\n');
}

/* Turn a path into its hash with /admin/explain (GET, -H headers). */
static int resolve_path(struct ctl *c, const char *path, char *hash)
{
	struct buf u = {0};
	struct reply r;
	const char *h;
	int rc;

	buf_str(&u, "/admin/explain");
	url_param(c, &u, "method", "GET");
	url_param(c, &u, "url", path);
	for (size_t i = 0; i < c->o->n_headers; i++)
		url_param(c, &u, "h", c->o->headers[i]);
	if ((rc = call(c, "GET", u.s, &r)) != 0)
		goto out;
	h = jstr(r.doc, "hash");
	if (h == NULL || !parse_hash(h, hash)) {
		/* With --json, the explanation is the one document. */
		if (c->o->json)
			emit(&r);
		fprintf(stderr, PROG ": %s has no cache key", path);
		if (jstr(r.doc, "reason")) {
			fputs(": ", stderr);
			put_clean(stderr, jstr(r.doc, "reason"));
		}
		fputc('\n', stderr);
		rc = CTL_SERVER;
	}
	reply_free(&r);
out:
	free(u.s);
	return rc;
}

static void print_body(const json_t *doc)
{
	const char *body = jstr(doc, "body");
	const char *enc = jstr(doc, "body_encoding");
	double size;

	putchar('\n');
	if (body == NULL) {
		puts("(no body in the answer)");
	} else if (enc != NULL && strcmp(enc, "base64") == 0) {
		if (!jnum(doc, "size", &size))
			size = (double)strlen(body) * 3 / 4;
		printf("(binary body, %.0f bytes, not shown: use --json, "
		       "where \"body\" is base64)\n", size);
	} else {
		fputs(body, stdout);
		if (*body && body[strlen(body) - 1] != '\n')
			putchar('\n');
	}
}

static void print_entry(const json_t *e, bool body)
{
	char num[64], *s;
	const json_t *hdr;
	size_t i;

	printf("%-10s ", "key");
	print_key(jstr(e, "key"), 11);
	field("hash", jstr(e, "hash") ?: "-");
	field("route", jstr(e, "route") ?: "-");
	jnum_text(e, "status", num, sizeof(num));
	field("status", num);
	jbytes_text(e, "size", num, sizeof(num));
	field("size", num);
	jsecs_text(e, "age", num, sizeof(num));
	field("age", num);
	jsecs_text(e, "ttl", num, sizeof(num));
	field("ttl", num);
	jnum_text(e, "hits", num, sizeof(num));
	field("hits", num);
	s = jjoin(e, "tiers", ", ");
	field("tiers", *s ? s : "-");
	free(s);
	s = jjoin(e, "tags", ", ");
	field("tags", *s ? s : "-");
	free(s);
	if (json_array_size(json_object_get(e, "headers")) > 0)
		puts("headers");
	json_array_foreach(json_object_get(e, "headers"), i, hdr) {
		fputs("  ", stdout);
		put_clean(stdout, json_string_value(json_array_get(hdr, 0)));
		fputs(": ", stdout);
		put_clean(stdout, json_string_value(json_array_get(hdr, 1)));
		putchar('\n');
	}
	if (body)
		print_body(e);
}

static int cmd_show(struct ctl *c)
{
	char hash[HASH_LEN + 1];
	char target[64];
	struct reply r;
	int rc;

	memcpy(hash, c->o->hash, sizeof(hash));
	if (hash[0] == '\0' &&
	    (rc = resolve_path(c, c->o->args[0], hash)) != 0)
		return rc;
	snprintf(target, sizeof(target), "/admin/keys/%s%s", hash,
		 c->o->body ? "?body=1" : "");
	if ((rc = call(c, "GET", target, &r)) != 0)
		return rc;
	if (c->o->json)
		emit(&r);
	else
		print_entry(r.doc, c->o->body);
	reply_free(&r);
	return CTL_OK;
}

/* "memory 1, disk 1, redis 0" from a {"tier": N} object. */
static void print_tier_counts(const json_t *counts)
{
	const char *name, *sep = "";
	json_t *v;

	json_object_foreach((json_t *)counts, name, v) {
		fputs(sep, stdout);
		put_clean(stdout, name);
		printf(" %.15g", json_number_value(v));
		sep = ", ";
	}
}

static const char *const dry_heads[] = {"HASH", "TIERS", "KEY"};

static int cmd_purge(struct ctl *c)
{
	const struct opts *o = c->o;
	struct buf u = {0};
	struct reply r;
	double n = 0;
	int rc;

	if (o->hash[0] != '\0') {
		buf_printf(&u, "/admin/keys/%s", o->hash);
	} else {
		buf_str(&u, "/admin/keys");
		if (o->path)
			url_param(c, &u, "path", o->path);
		if (o->prefix)
			url_param(c, &u, "prefix", o->prefix);
		if (o->tag)
			url_param(c, &u, "tag", o->tag);
	}
	if (o->dry_run)
		url_param(c, &u, "dry_run", "1");
	rc = call(c, "DELETE", u.s, &r);
	free(u.s);
	if (rc != 0)
		return rc;
	jnum(r.doc, "purged", &n);
	if (o->json) {
		emit(&r);
	} else if (o->dry_run) {
		struct table t = {3, dry_heads, "lll", NULL, 0, 0};
		const json_t *e;
		size_t i;

		printf("dry run: would purge %.15g entr%s%s\n", n,
		       n == 1 ? "y" : "ies", n > 0 ? ":" : "");
		json_array_foreach(json_object_get(r.doc, "entries"), i, e) {
			char *tiers = jjoin(e, "tiers", ",");

			char *key = key_display(jstr(e, "key"));

			table_cell(&t, jstr(e, "hash") ?: "-");
			table_cell(&t, *tiers ? tiers : "-");
			table_cell(&t, key);
			free(tiers);
			free(key);
		}
		if (t.ncells > 0)
			table_print(&t, stdout);
		table_free(&t);
	} else {
		const json_t *fleet = json_object_get(r.doc, "fleet");

		printf("purged %.15g entr%s", n, n == 1 ? "y" : "ies");
		if (json_object_size(json_object_get(r.doc, "tiers")) > 0) {
			printf(" (");
			print_tier_counts(json_object_get(r.doc, "tiers"));
			printf(")");
		}
		if (json_is_boolean(fleet))
			printf("; fleet: %s", json_is_true(fleet) ? "yes"
								   : "no");
		putchar('\n');
	}
	reply_free(&r);
	return CTL_OK;
}

static int cmd_flush(struct ctl *c)
{
	struct buf u = {0};
	struct reply r;
	const json_t *fleet;
	int rc;

	buf_str(&u, "/admin/flush");
	if (c->o->tier)
		url_param(c, &u, "tier", c->o->tier);
	rc = call(c, "POST", u.s, &r);
	free(u.s);
	if (rc != 0)
		return rc;
	if (c->o->json) {
		emit(&r);
	} else {
		printf("flushed ");
		print_tier_counts(json_object_get(r.doc, "flushed"));
		fleet = json_object_get(r.doc, "fleet");
		if (json_is_boolean(fleet))
			printf("; fleet: %s", json_is_true(fleet) ? "yes"
								   : "no");
		putchar('\n');
	}
	reply_free(&r);
	return CTL_OK;
}

static const char *const tier_heads[] = {
	"TIER", "UP", "ENTRIES", "BYTES", "LIMIT", "HITS", "MISSES",
	"HIT RATIO", "EVICTIONS"
};
static const char *const route_heads[] = {
	"ROUTE", "REQUESTS", "HITS", "ORIGIN TIME SAVED"
};

static void print_stats(const json_t *doc)
{
	struct table tiers = {9, tier_heads, "llrrrrrrr", NULL, 0, 0};
	struct table routes = {4, route_heads, "lrrr", NULL, 0, 0};
	const json_t *up = json_object_get(doc, "upstream");
	const char *name;
	json_t *v;
	char num[64];
	double d;

	json_object_foreach(json_object_get(doc, "tiers"), name, v) {
		const json_t *isup = json_object_get(v, "up");

		table_cell(&tiers, name);
		/* "on" (not configured: "off") is optional; "up" is not. */
		table_cell(&tiers, json_is_false(json_object_get(v, "on"))
					   ? "off"
				   : !json_is_boolean(isup) ? "-"
				   : json_is_true(isup)     ? "yes"
							    : "no");
		jnum_text(v, "entries", num, sizeof(num));
		table_cell(&tiers, num);
		jbytes_text(v, "bytes", num, sizeof(num));
		table_cell(&tiers, num);
		if (jnum(v, "limit", &d) && d > 0)
			fmt_bytes(d, num, sizeof(num));
		else
			snprintf(num, sizeof(num), "-");
		table_cell(&tiers, num);
		jnum_text(v, "hits", num, sizeof(num));
		table_cell(&tiers, num);
		jnum_text(v, "misses", num, sizeof(num));
		table_cell(&tiers, num);
		if (jnum(v, "hit_ratio", &d))
			snprintf(num, sizeof(num), "%.1f%%", d * 100);
		else
			snprintf(num, sizeof(num), "-");
		table_cell(&tiers, num);
		jnum_text(v, "evictions", num, sizeof(num));
		table_cell(&tiers, num);
	}
	table_print(&tiers, stdout);

	if (json_is_object(up)) {
		char req[32], err[32], fl[32];

		jnum_text(up, "requests", req, sizeof(req));
		jnum_text(up, "errors", err, sizeof(err));
		jnum_text(up, "in_flight", fl, sizeof(fl));
		printf("\nupstream: %s requests, %s errors, %s in flight\n",
		       req, err, fl);
	}

	json_object_foreach(json_object_get(doc, "routes"), name, v) {
		table_cell(&routes, name);
		jnum_text(v, "requests", num, sizeof(num));
		table_cell(&routes, num);
		jnum_text(v, "hits", num, sizeof(num));
		table_cell(&routes, num);
		if (jnum(v, "origin_seconds_saved", &d))
			snprintf(num, sizeof(num), "%.1fs", d);
		else
			snprintf(num, sizeof(num), "-");
		table_cell(&routes, num);
	}
	if (routes.ncells > 0) {
		putchar('\n');
		table_print(&routes, stdout);
	}
	table_free(&tiers);
	table_free(&routes);
}

/* A JSON array of strings as "a, b" ("none" when empty). */
static void print_names(const json_t *a)
{
	size_t i;
	json_t *v;

	if (json_array_size(a) == 0)
		fputs("none", stdout);
	json_array_foreach(a, i, v) {
		if (i > 0)
			fputs(", ", stdout);
		put_clean(stdout, json_string_value(v) ?: "?");
	}
}

static int cmd_reload(struct ctl *c)
{
	struct reply r;
	int rc = call(c, "POST", "/admin/reload", &r);

	if (rc != 0)
		return rc;
	if (c->o->json) {
		emit(&r);
	} else {
		printf("reloaded: generation %lld\napplied: ",
		       (long long)json_integer_value(
			       json_object_get(r.doc, "generation")));
		print_names(json_object_get(r.doc, "applied"));
		fputs("\nneeding a restart: ", stdout);
		print_names(json_object_get(r.doc, "restart_required"));
		putchar('\n');
	}
	reply_free(&r);
	return CTL_OK;
}

static int cmd_stats(struct ctl *c)
{
	struct reply r;
	int rc = call(c, "GET", "/admin/stats", &r);

	if (rc != 0)
		return rc;
	if (c->o->json)
		emit(&r);
	else
		print_stats(r.doc);
	reply_free(&r);
	return CTL_OK;
}

/*
 * The request target of an explain URL: a full URL loses its scheme and
 * authority ("http://host:8080/a?b" → "/a?b"); a bare path is kept.
 */
static const char *url_target(const char *url)
{
	const char *p = strstr(url, "://");

	if (url[0] == '/' || p == NULL)
		return url;
	p += 3;
	p += strcspn(p, "/?");
	return *p == '\0' ? "/" : p;
}

static int cmd_explain(struct ctl *c)
{
	const struct opts *o = c->o;
	const char *target = url_target(o->args[0]);
	struct buf u = {0};
	struct reply r;
	const json_t *cacheable, *entry;
	char num[64];
	int rc;

	buf_str(&u, "/admin/explain");
	url_param(c, &u, "method", o->method ? o->method : "GET");
	url_param(c, &u, "url", target);
	for (size_t i = 0; i < o->n_headers; i++)
		url_param(c, &u, "h", o->headers[i]);
	rc = call(c, "GET", u.s, &r);
	free(u.s);
	if (rc != 0)
		return rc;
	if (o->json) {
		emit(&r);
		goto out;
	}
	field("route", jstr(r.doc, "route") ?: "(none)");
	cacheable = json_object_get(r.doc, "cacheable");
	printf("%-10s %s", "cacheable", json_is_true(cacheable) ? "yes"
								: "no");
	if (!json_is_true(cacheable) && jstr(r.doc, "reason")) {
		fputs(": ", stdout);
		put_clean(stdout, jstr(r.doc, "reason"));
	}
	putchar('\n');
	jsecs_text(r.doc, "ttl", num, sizeof(num));
	field("ttl", num);
	if (jstr(r.doc, "key")) {
		printf("%-10s ", "key");
		print_key(jstr(r.doc, "key"), 11);
	}
	field("hash", jstr(r.doc, "hash") ?: "-");
	entry = json_object_get(r.doc, "entry");
	if (json_is_object(entry)) {
		char *tiers = jjoin(entry, "tiers", ", ");
		char age[32], ttl[32];

		jsecs_text(entry, "age", age, sizeof(age));
		jsecs_text(entry, "ttl", ttl, sizeof(ttl));
		printf("%-10s ", "entry");
		put_clean(stdout, *tiers ? tiers : "-");
		printf("; age %s; ttl %s\n", age, ttl);
		free(tiers);
	} else {
		field("entry", "not cached");
	}
out:
	reply_free(&r);
	return CTL_OK;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct ctl c = {0};
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc != 0) {
		rc = rc < 0 ? CTL_OK : rc;
		goto out;
	}
	if ((rc = ctl_open(&c, &o)) == 0)
		rc = o.cmd->run(&c);
	if (c.curl != NULL)
		ctl_close(&c);
	else
		free(c.base);
	if (fflush(stdout) != 0 && rc == CTL_OK) {
		errmsg("cannot write the output");
		rc = CTL_SERVER;
	}
out:
	for (size_t i = 0; i < o.n_headers; i++)
		free((char *)o.headers[i]);
	free(o.headers);
	if (o.token != NULL)
		memset(o.token, 0, strlen(o.token));
	free(o.token);
	return rc;
}
