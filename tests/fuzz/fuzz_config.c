/*
 * fuzz_config.c: the configuration loader on any text, as strata.yaml,
 * then strata_config_finish(); and the same text as a size, a duration
 * and a --route spec.  Invariants:
 *
 *  - load and finish return 0 or STRATA_ECONFIG (-ENOMEM aside), and an
 *    error always comes with a message;
 *  - a finished configuration's routes compile into a route table (finish
 *    promises so), and it can be shown: dump and snapshot are not NULL;
 *  - a snapshot is a function of the configuration: taken twice it is the
 *    same, and it differs from itself in nothing;
 *  - the snapshot is JSON, and JSON is YAML: loading it back and finishing
 *    gives a configuration with the same snapshot.  Two things are undone
 *    first: a KEEP route's "query":"keep" plus "query_keep":[...] becomes
 *    the file's "query":[...] (docs/admin-api.md, GET /admin/config), and
 *    inputs whose values hold "${" are skipped (the loader would expand it
 *    the second time);
 *  - sizes and durations: what parses formats to text that parses to the
 *    same number.
 *
 * libfyaml 0.7.12 (Debian 12) has bugs that a fuzzer meets within
 * minutes and that would hide everything else:
 *  - a "%" directive followed by bytes that are not UTF-8 ("%\xff") makes
 *    it loop forever (tests/fuzz/crashes/config-libfyaml-directive-hang.bin).
 *    The loader now refuses text that is not UTF-8 before libfyaml sees
 *    it, so such input is given to it and must be refused;
 *  - a single-quoted scalar with many escaped quotes ('x''''''''y'):
 *    fy_node_get_scalar() leaks the iterator's chunk array, 512 bytes and
 *    up per load (tests/fuzz/crashes/config-libfyaml-quote-leak.bin;
 *    libfyaml's issue 233, fixed upstream after 0.7.12);
 *  - an explicit key ("?") whose ":" is followed by a tab and a block
 *    indicator ("? d:\t-"): a NULL write in fy_indent_vacuum_internal()
 *    while the parser cleans up, so strata --check-config, start-up and a
 *    reload crash (tests/fuzz/crashes/config-libfyaml-complex-key-segv.bin).
 * The last two are skipped, by filters a little wider than the bugs, until
 * the loader guards against them or Debian's libfyaml is fixed.
 *
 * ${VAR} expands from the environment: a target run sees its own, which
 * only changes which values an input reaches, never an invariant.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/config_dump.h"
#include "core/route.h"
#include "core/units.h"
#include "strata/config.h"
#include "strata/strata.h"
#include "fuzz.h"

/* Length of the UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const uint8_t *p, size_t left)
{
	size_t n;
	uint32_t c;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, c = p[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/* Whether the text has three or more '' pairs in runs of three or more
 * single quotes (see the top of this file). */
static bool leaks_libfyaml(const uint8_t *p, size_t size)
{
	size_t pairs = 0;

	for (size_t i = 0; i < size;) {
		size_t run = 0;

		while (i + run < size && p[i + run] == '\'')
			run++;
		if (run >= 3)
			pairs += run / 2;
		i += run > 0 ? run : 1;
	}
	return pairs >= 3;
}

/* Whether the text has an explicit key ("?") and a ":" followed by
 * blanks holding a tab, then "-", "?" or ":" (see the top of this file). */
static bool crashes_libfyaml(const uint8_t *p, size_t size)
{
	if (memchr(p, '?', size) == NULL)
		return false;
	for (size_t i = 0; i < size; i++) {
		size_t j = i + 1;
		bool tab = false;

		if (p[i] != ':')
			continue;
		for (; j < size && (p[j] == ' ' || p[j] == '\t'); j++)
			tab |= p[j] == '\t';
		if (tab && j < size && (p[j] == '-' || p[j] == '?' ||
					p[j] == ':'))
			return true;
	}
	return false;
}

/* Whether some line starts with "%" and holds bytes that are not UTF-8
 * (see the top of this file). */
static bool hangs_libfyaml(const uint8_t *p, size_t size)
{
	bool directive = false, line_start = true;

	for (size_t i = 0; i < size;) {
		size_t n;

		if (line_start)
			directive = p[i] == '%';
		line_start = p[i] == '\n' || p[i] == '\r';
		n = utf8_len(p + i, size - i);
		if (n == 0) {
			if (directive)
				return true;
			n = 1;
		}
		i += n;
	}
	return false;
}

static void check_error(int rc, const char *err)
{
	FUZZ_CHECK(rc == STRATA_ECONFIG || rc == -ENOMEM);
	FUZZ_CHECK(memchr(err, '\0', STRATA_CONFIG_ERRLEN) != NULL);
	FUZZ_CHECK(err[0] != '\0');
}

/* Load `yaml` over the defaults and finish; NULL when either fails, with
 * the reason in err. */
static struct strata_config *load(const char *yaml,
				  char err[STRATA_CONFIG_ERRLEN])
{
	struct strata_config *cfg = strata_config_new();
	int rc;

	FUZZ_CHECK(cfg != NULL);
	err[0] = '\0';
	rc = strata_config_load_string(cfg, yaml, "fuzz.yaml", err,
				       STRATA_CONFIG_ERRLEN);
	if (rc == 0) {
		err[0] = '\0';
		rc = strata_config_finish(cfg, err, STRATA_CONFIG_ERRLEN);
	}
	if (rc != 0) {
		check_error(rc, err);
		strata_config_free(&cfg);
		FUZZ_CHECK(cfg == NULL);
	}
	return cfg;
}

/* The snapshot as the file would write it (see the top of this file);
 * NULL when it holds "${". */
static char *snapshot_as_yaml(const char *snap)
{
	json_error_t error;
	json_t *doc = json_loads(snap, 0, &error), *routes, *route;
	size_t i;
	char *text;

	FUZZ_CHECK(doc != NULL);
	routes = json_object_get(doc, "routes");
	FUZZ_CHECK(json_is_array(routes));
	json_array_foreach(routes, i, route) {
		json_t *keep = json_object_get(route, "query_keep");
		const char *query =
			json_string_value(json_object_get(route, "query"));

		FUZZ_CHECK(query != NULL);
		FUZZ_CHECK((keep != NULL) == (strcmp(query, "keep") == 0));
		if (keep != NULL) {
			json_object_set(route, "query", keep);
			json_object_del(route, "query_keep");
		}
	}
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	FUZZ_CHECK(text != NULL);
	json_decref(doc);
	if (strstr(text, "${") != NULL) {
		free(text);
		return NULL;
	}
	return text;
}

static void check_finished(const struct strata_config *cfg)
{
	char err[STRATA_CONFIG_ERRLEN];
	struct strata_route_table *table = NULL;
	struct strata_config *again;
	char *dump, *snap, *snap2, *diff, *yaml;

	FUZZ_CHECK(strata_route_table_new(cfg->routes, cfg->n_routes, &table,
					  err, sizeof(err)) == 0);
	FUZZ_CHECK(strata_route_table_size(table) == cfg->n_routes);
	strata_route_table_release(&table);

	dump = strata_config_dump_json(cfg);
	FUZZ_CHECK(dump != NULL);
	snap = strata_config_snapshot(cfg);
	FUZZ_CHECK(snap != NULL);
	snap2 = strata_config_snapshot(cfg);
	FUZZ_CHECK(snap2 != NULL && strcmp(snap, snap2) == 0);
	diff = strata_config_diff_json(snap, snap2);
	FUZZ_CHECK(diff != NULL && strcmp(diff, "[]") == 0);
	free(diff);
	free(snap2);

	yaml = snapshot_as_yaml(snap);
	if (yaml != NULL) {
		again = load(yaml, err);
		if (again == NULL) {
			fprintf(stderr, "snapshot: %s\nreloaded: %s\n", yaml,
				err);
			FUZZ_CHECK(!"the snapshot loads back");
		}
		snap2 = strata_config_snapshot(again);
		FUZZ_CHECK(snap2 != NULL);
		if (strcmp(snap, snap2) != 0) {
			fprintf(stderr, "snapshot: %s\nreloaded: %s\n", snap,
				snap2);
			FUZZ_CHECK(!"the snapshot loads back the same");
		}
		free(snap2);
		strata_config_free(&again);
		free(yaml);
	}
	free(snap);
	free(dump);
}

static void check_units(const char *text)
{
	char buf[64];
	uint64_t n, m;

	if (strata_parse_size(text, &n) == 0) {
		strata_format_size(n, buf, sizeof(buf));
		FUZZ_CHECK(strata_parse_size(buf, &m) == 0 && m == n);
	}
	if (strata_parse_duration(text, &n) == 0) {
		strata_format_duration(n, buf, sizeof(buf));
		FUZZ_CHECK(strata_parse_duration(buf, &m) == 0 && m == n);
	}
}

/* The text as `--route PATH=TTL`. */
static void check_route_spec(const char *text)
{
	char err[STRATA_CONFIG_ERRLEN];
	struct strata_config *cfg = strata_config_new();
	int rc;

	FUZZ_CHECK(cfg != NULL);
	err[0] = '\0';
	rc = strata_config_add_route(cfg, text, "--route", err, sizeof(err));
	if (rc == 0) {
		FUZZ_CHECK(cfg->n_routes == 1);
		FUZZ_CHECK(strata_route_pattern_check(cfg->routes[0].path, err,
						      sizeof(err)) == 0);
	} else {
		check_error(rc, err);
		FUZZ_CHECK(cfg->n_routes == 0);
	}
	strata_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[STRATA_CONFIG_ERRLEN];
	char *text = fuzz_strndup(data, size);
	size_t len = strlen(text);   /* the loader reads up to a NUL */
	struct strata_config *cfg = NULL;

	if (hangs_libfyaml(data, len)) {
		/* Refused before libfyaml sees it, with the line named. */
		struct strata_config *c = strata_config_new();

		FUZZ_CHECK(c != NULL);
		FUZZ_CHECK(strata_config_load_string(c, text, "fuzz.yaml", err,
						     sizeof(err)) ==
			   STRATA_ECONFIG);
		FUZZ_CHECK(strstr(err, "not valid UTF-8") != NULL);
		strata_config_free(&c);
	} else if (!leaks_libfyaml(data, len) &&
		   !crashes_libfyaml(data, len)) {
		cfg = load(text, err);
	}
	if (cfg != NULL) {
		check_finished(cfg);
		strata_config_free(&cfg);
		FUZZ_CHECK(cfg == NULL);
	}
	/* A spec or a unit is one line: skip the cost on whole files. */
	if (size <= 256) {
		check_units(text);
		check_route_spec(text);
	}
	free(text);
	return 0;
}
