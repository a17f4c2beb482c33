/*
 * test_log.c: the diagnostic and access lines in both formats, their
 * escaping and cutting, level filtering, and one write(2) per line.
 *
 * stderr is captured through an AF_UNIX SOCK_SEQPACKET socket pair: the
 * socket keeps the boundaries of every write(2), so each record the reader
 * thread receives is exactly one call's output, and "one line per call"
 * is checked rather than assumed.
 */
#include "config.h"

#include "core/log.h"

#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

/* --- capturing stderr ----------------------------------------------------- */

#define MAX_RECORDS 4096

static struct {
	int saved_fd;
	int reader_fd;
	pthread_t reader;
	char *records[MAX_RECORDS];
	size_t n;
} cap;

static void *reader_main(void *arg)
{
	char buf[2 * PIPE_BUF];

	(void)arg;
	for (;;) {
		ssize_t n = recv(cap.reader_fd, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
		if (cap.n < MAX_RECORDS) {
			char *r = malloc((size_t)n + 1);

			memcpy(r, buf, (size_t)n);
			r[n] = '\0';
			cap.records[cap.n++] = r;
		}
	}
	return NULL;
}

static void capture_start(void)
{
	int sv[2];

	for (size_t i = 0; i < cap.n; i++)
		free(cap.records[i]);
	cap.n = 0;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cap.saved_fd = dup(STDERR_FILENO);
	cr_assert_geq(cap.saved_fd, 0);
	cr_assert_eq(dup2(sv[0], STDERR_FILENO), STDERR_FILENO);
	close(sv[0]);
	cap.reader_fd = sv[1];
	cr_assert_eq(pthread_create(&cap.reader, NULL, reader_main, NULL), 0);
}

/* Restore stderr; the reader sees the end once the last writer is gone. */
static void capture_stop(void)
{
	dup2(cap.saved_fd, STDERR_FILENO);
	close(cap.saved_fd);
	pthread_join(cap.reader, NULL);
	close(cap.reader_fd);
}

/* The only record, which must be one line ending in '\n' (dropped here). */
static char *only_line(void)
{
	char *r;
	size_t len;

	cr_assert_eq(cap.n, 1, "expected one write, got %zu", cap.n);
	r = cap.records[0];
	len = strlen(r);
	cr_assert(len > 0 && r[len - 1] == '\n', "no newline: %s", r);
	r[len - 1] = '\0';
	cr_assert_null(strchr(r, '\n'), "more than one line: %s", r);
	cr_assert_leq(len, PIPE_BUF);
	return r;
}

static void set_defaults(enum strata_log_format format)
{
	strata_log_set_format(format);
	strata_log_set_level(STRATA_LOG_INFO);
	strata_log_set_access(true);
}

static bool matches(const char *text, const char *pattern)
{
	regex_t re;
	bool ok;

	cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	ok = regexec(&re, text, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

#define ISO_TIME "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"
#define CLF_TIME "[0-9]{2}/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} \\+0000"

/* {"time":"<iso>", then the rest, which is returned. */
static const char *after_json_time(const char *line)
{
	char time[32];

	cr_assert(strncmp(line, "{\"time\":\"", 9) == 0, "%s", line);
	memcpy(time, line + 9, 24);
	time[24] = '\0';
	cr_assert(matches(time, "^" ISO_TIME "$"), "bad time in %s", line);
	cr_assert_eq(line[33], '"', "%s", line);
	return line + 34;
}

/* "client - - [<clf time>]", then the rest, which is returned. */
static const char *after_clf_time(const char *line, const char *client)
{
	const char *open = strchr(line, '[');
	char time[32];

	cr_assert_not_null(open, "%s", line);
	cr_assert_eq((size_t)(open - line), strlen(client) + 5, "%s", line);
	cr_assert(strncmp(line, client, strlen(client)) == 0, "%s", line);
	cr_assert(strncmp(open - 5, " - - ", 5) == 0, "%s", line);
	memcpy(time, open + 1, 26);
	time[26] = '\0';
	cr_assert(matches(time, "^" CLF_TIME "$"), "bad time in %s", line);
	cr_assert_eq(open[27], ']', "%s", line);
	return open + 28;
}

/* --- a small strict JSON checker (RFC 8259, UTF-8) ------------------------ */

struct json {
	const unsigned char *p;
};

static bool json_value(struct json *j, int depth);

static void json_ws(struct json *j)
{
	while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
		j->p++;
}

static bool json_string(struct json *j)
{
	if (*j->p++ != '"')
		return false;
	for (;;) {
		unsigned char c = *j->p;

		if (c == '"') {
			j->p++;
			return true;
		}
		if (c < 0x20)
			return false;  /* controls, and the end of the text */
		if (c == '\\') {
			j->p++;
			if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
				j->p++;
			} else if (*j->p == 'u') {
				for (int i = 1; i <= 4; i++) {
					if (!strchr("0123456789abcdefABCDEF",
						    j->p[i]) || !j->p[i])
						return false;
				}
				j->p += 5;
			} else {
				return false;
			}
			continue;
		}
		if (c < 0x80) {
			j->p++;
			continue;
		}
		/* UTF-8: lead byte and continuation bytes (no overlongs). */
		{
			size_t n = c >= 0xf0 && c <= 0xf4 ? 4
				 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;

			if (n == 0 || c > 0xf4)
				return false;
			for (size_t i = 1; i < n; i++) {
				if ((j->p[i] & 0xc0) != 0x80)
					return false;
			}
			if ((c == 0xe0 && j->p[1] < 0xa0) ||
			    (c == 0xed && j->p[1] > 0x9f) ||
			    (c == 0xf0 && j->p[1] < 0x90) ||
			    (c == 0xf4 && j->p[1] > 0x8f))
				return false;
			j->p += n;
		}
	}
}

static bool json_number(struct json *j)
{
	const unsigned char *start = j->p;

	if (*j->p == '-')
		j->p++;
	if (*j->p == '0')
		j->p++;
	else if (*j->p >= '1' && *j->p <= '9')
		while (*j->p >= '0' && *j->p <= '9')
			j->p++;
	else
		return false;
	if (*j->p == '.') {
		j->p++;
		if (!(*j->p >= '0' && *j->p <= '9'))
			return false;
		while (*j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > start;
}

static bool json_value(struct json *j, int depth)
{
	if (depth > 8)
		return false;
	json_ws(j);
	switch (*j->p) {
	case '{':
		j->p++;
		json_ws(j);
		if (*j->p == '}') {
			j->p++;
			return true;
		}
		for (;;) {
			json_ws(j);
			if (!json_string(j))
				return false;
			json_ws(j);
			if (*j->p++ != ':' || !json_value(j, depth + 1))
				return false;
			json_ws(j);
			if (*j->p == '}') {
				j->p++;
				return true;
			}
			if (*j->p++ != ',')
				return false;
		}
	case '"':
		return json_string(j);
	case 'n':
		return strncmp((const char *)j->p, "null", 4) == 0 &&
		       (j->p += 4);
	case 't':
		return strncmp((const char *)j->p, "true", 4) == 0 &&
		       (j->p += 4);
	case 'f':
		return strncmp((const char *)j->p, "false", 5) == 0 &&
		       (j->p += 5);
	default:
		return json_number(j);
	}
}

/* One JSON object and nothing else. */
static bool is_json_object(const char *text)
{
	struct json j = { (const unsigned char *)text };

	json_ws(&j);
	if (*j.p != '{' || !json_value(&j, 0))
		return false;
	json_ws(&j);
	return *j.p == '\0';
}

Test(log, json_checker_self_test)
{
	cr_expect(is_json_object("{\"a\":\"b\",\"n\":1.5,\"x\":null}"));
	cr_expect(is_json_object("{\"a\":\"\\u00e9\xc3\xa9\"}"));
	cr_expect_not(is_json_object("{\"a\":\"\n\"}"));
	cr_expect_not(is_json_object("{\"a\":\"\xff\"}"));
	cr_expect_not(is_json_object("{\"a\":\"\\x41\"}"));
	cr_expect_not(is_json_object("{\"a\":1,}"));
	cr_expect_not(is_json_object("{\"a\":\"b\"} x"));
	cr_expect_not(is_json_object("{\"a\":\"b"));
}

/* --- diagnostics ---------------------------------------------------------- */

Test(log, text_diagnostic_line)
{
	char *line;

	set_defaults(STRATA_LOG_TEXT);
	capture_start();
	strata_log_warn("upstream %s refused (%d)", "http://x", 111);
	capture_stop();
	line = only_line();
	cr_expect(matches(line, "^" ISO_TIME " strata\\[[0-9]+\\] warn: "
			  "upstream http://x refused \\(111\\)$"), "%s", line);
}

Test(log, json_diagnostic_line)
{
	char *line;

	set_defaults(STRATA_LOG_JSON);
	cr_expect_eq(strata_log_get_format(), STRATA_LOG_JSON);
	capture_start();
	strata_log_error("disk %s: %s", "/var/lib/strata", "full");
	capture_stop();
	line = only_line();
	cr_expect(is_json_object(line), "%s", line);
	cr_expect_str_eq(after_json_time(line),
			 ",\"level\":\"error\",\"msg\":\"disk /var/lib/strata: "
			 "full\"}");
}

Test(log, level_filtering_in_both_formats)
{
	static const enum strata_log_format formats[] = {
		STRATA_LOG_TEXT, STRATA_LOG_JSON,
	};

	for (size_t f = 0; f < 2; f++) {
		set_defaults(formats[f]);
		strata_log_set_level(STRATA_LOG_WARN);
		capture_start();
		strata_log_debug("d");
		strata_log_info("i");
		strata_log_warn("w");
		strata_log_error("e");
		capture_stop();
		cr_expect_eq(cap.n, 2, "warn keeps warn and error, got %zu",
			     cap.n);
		cr_expect(strstr(cap.records[0], "warn") != NULL);
		cr_expect(strstr(cap.records[1], "error") != NULL);

		strata_log_set_level(STRATA_LOG_DEBUG);
		capture_start();
		strata_log_debug("d");
		strata_log_info("i");
		capture_stop();
		cr_expect_eq(cap.n, 2);
		cr_expect(strstr(cap.records[0], "debug") != NULL);

		strata_log_set_level(STRATA_LOG_ERROR);
		capture_start();
		strata_log_warn("w");
		strata_log_error("e");
		capture_stop();
		cr_expect_eq(cap.n, 1);
	}
}

Test(log, json_escaping)
{
	char *line;

	set_defaults(STRATA_LOG_JSON);
	capture_start();
	/* quote, backslash, newline, CR, tab, BS, FF, 0x01, 0x1f, DEL */
	strata_log_info("%s", "q\" b\\ n\n r\r t\t bs\b ff\f c\x01 u\x1f d\x7f");
	capture_stop();
	line = only_line();
	cr_expect(is_json_object(line), "%s", line);
	cr_expect_str_eq(after_json_time(line),
			 ",\"level\":\"info\",\"msg\":\"q\\\" b\\\\ n\\n r\\r "
			 "t\\t bs\\b ff\\f c\\u0001 u\\u001f d\\u007f\"}");
}

Test(log, json_keeps_utf8_and_replaces_invalid_bytes)
{
	char *line;

	set_defaults(STRATA_LOG_JSON);
	capture_start();
	/* é, €, U+1F600, U+10FFFF kept; a lone continuation byte, 0xff, an
	 * overlong '/', a surrogate, a sequence cut short, above U+10FFFF. */
	strata_log_info("%s", "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
			"\xf4\x8f\xbf\xbf | \x80 \xff \xc0\xaf \xed\xa0\x80 "
			"\xe2\x82 \xf4\x90\x80\x80");
	capture_stop();
	line = only_line();
	cr_expect(is_json_object(line), "%s", line);
	cr_expect_str_eq(after_json_time(line),
			 ",\"level\":\"info\",\"msg\":\"\xc3\xa9 \xe2\x82\xac "
			 "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf | \\ufffd \\ufffd "
			 "\\ufffd\\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd "
			 "\\ufffd\\ufffd\\ufffd\\ufffd\"}");
}

Test(log, text_diagnostic_stays_one_line)
{
	char *line;

	set_defaults(STRATA_LOG_TEXT);
	capture_start();
	strata_log_info("%s", "a\nb\rc\x01" "d\te \xc3\xa9");
	capture_stop();
	line = only_line();
	cr_expect(matches(line, "^" ISO_TIME " strata\\[[0-9]+\\] info: "), "%s",
		  line);
	cr_expect_str_eq(strstr(line, "info: ") + 6,
			 "a\\nb\\rc\\x01d\te \xc3\xa9");
}

Test(log, long_messages_are_cut_and_stay_valid)
{
	static char big[3 * PIPE_BUF];
	static const enum strata_log_format formats[] = {
		STRATA_LOG_TEXT, STRATA_LOG_JSON,
	};

	/* Two-byte characters and escapes, so a cut can fall mid-character. */
	for (size_t i = 0; i + 2 < sizeof(big); i += 3)
		memcpy(big + i, i % 2 ? "\xc3\xa9\"" : "\xc3\xa9\n", 3);
	big[sizeof(big) - 1] = '\0';
	for (size_t f = 0; f < 2; f++) {
		char *line;
		size_t len;

		set_defaults(formats[f]);
		capture_start();
		strata_log_info("%s", big);
		capture_stop();
		line = only_line();
		len = strlen(line);
		cr_expect_geq(len, PIPE_BUF - 16, "cut too short: %zu", len);
		if (formats[f] == STRATA_LOG_JSON) {
			cr_expect(is_json_object(line), "invalid: ...%s",
				  line + len - 40);
			cr_expect_str_eq(line + len - 5, "...\"}");
		} else {
			cr_expect_str_eq(line + len - 3, "...");
		}
	}
}

/* --- access lines --------------------------------------------------------- */

static const struct strata_access full = {
	.client = "127.0.0.1",
	.method = "GET",
	.target = "/path?q=1",
	.status = 200,
	.bytes = 123,
	.duration_us = 412,
	.cache_status = "strata; hit; ttl=5; detail=memory",
	.protocol = "HTTP/1.0",
	.referer = "https://example.com/",
	.user_agent = "curl/8.5.0",
	.tier = "memory",
	.has_upstream = true,
	.upstream_us = 12300,
	.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
};

Test(log, text_access_line_is_combined_format)
{
	char *line;

	set_defaults(STRATA_LOG_TEXT);
	capture_start();
	strata_log_access(&full);
	capture_stop();
	line = only_line();
	cr_expect_str_eq(after_clf_time(line, "127.0.0.1"),
			 " \"GET /path?q=1 HTTP/1.0\" 200 123 "
			 "\"https://example.com/\" \"curl/8.5.0\" "
			 "\"strata; hit; ttl=5; detail=memory\" 0.412ms");
}

Test(log, text_access_line_defaults)
{
	/* What front.c's designated initializer gives when it names only
	 * the original fields: the new ones are absent. */
	struct strata_access old = {
		.client = "::1",
		.method = "HEAD",
		.target = "/x",
		.status = 304,
		.duration_us = 1234567,
		.cache_status = "strata; fwd=miss",
	};
	struct strata_access nothing = { 0 };
	char *line;

	set_defaults(STRATA_LOG_TEXT);
	capture_start();
	strata_log_access(&old);
	capture_stop();
	line = only_line();
	cr_expect_str_eq(after_clf_time(line, "::1"),
			 " \"HEAD /x HTTP/1.1\" 304 0 \"-\" \"-\" "
			 "\"strata; fwd=miss\" 1234.567ms");

	capture_start();
	strata_log_access(&nothing);
	capture_stop();
	line = only_line();
	cr_expect_str_eq(after_clf_time(line, "-"),
			 " \"-\" 0 0 \"-\" \"-\" \"-\" 0.000ms");
}

Test(log, text_access_line_escapes_client_data)
{
	struct strata_access a = {
		.client = "10.0.0.1",
		.method = "GET",
		.target = "/a\"b\\c\nd\x7f\xc3\xa9",
		.status = 200,
		.duration_us = 5,
		.referer = "x\" \"y",
		.user_agent = "evil\r\n127.0.0.1 - - [forged]",
	};
	char *line;

	set_defaults(STRATA_LOG_TEXT);
	capture_start();
	strata_log_access(&a);
	capture_stop();
	line = only_line();
	cr_expect_str_eq(after_clf_time(line, "10.0.0.1"),
			 " \"GET /a\\\"b\\\\c\\nd\\x7f\\xc3\\xa9 HTTP/1.1\" "
			 "200 0 \"x\\\" \\\"y\" "
			 "\"evil\\r\\n127.0.0.1 - - [forged]\" \"-\" "
			 "0.005ms");
}

Test(log, json_access_line)
{
	char *line;

	set_defaults(STRATA_LOG_JSON);
	capture_start();
	strata_log_access(&full);
	capture_stop();
	line = only_line();
	cr_expect(is_json_object(line), "%s", line);
	cr_expect_str_eq(after_json_time(line),
			 ",\"type\":\"access\",\"client\":\"127.0.0.1\","
			 "\"method\":\"GET\",\"path\":\"/path?q=1\","
			 "\"protocol\":\"HTTP/1.0\",\"status\":200,"
			 "\"bytes\":123,\"duration_ms\":0.412,"
			 "\"cache\":\"strata; hit; ttl=5; detail=memory\","
			 "\"tier\":\"memory\",\"upstream_ms\":12.300,"
			 "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
			 "\"referer\":\"https://example.com/\","
			 "\"user_agent\":\"curl/8.5.0\"}");
}

Test(log, json_access_line_absent_fields_are_null)
{
	struct strata_access a = {
		.method = "POST",
		.target = "/p",
		.bytes = 0,
		.duration_us = 1000,
		.tier = "",
	};
	char *line;

	set_defaults(STRATA_LOG_JSON);
	capture_start();
	strata_log_access(&a);
	capture_stop();
	line = only_line();
	cr_expect(is_json_object(line), "%s", line);
	cr_expect_str_eq(after_json_time(line),
			 ",\"type\":\"access\",\"client\":null,"
			 "\"method\":\"POST\",\"path\":\"/p\","
			 "\"protocol\":null,\"status\":null,"
			 "\"bytes\":0,\"duration_ms\":1.000,"
			 "\"cache\":null,\"tier\":null,\"upstream_ms\":null,"
			 "\"trace_id\":null,\"referer\":null,"
			 "\"user_agent\":null}");
}

Test(log, json_access_line_escapes_client_data)
{
	struct strata_access a = {
		.method = "G\"T",
		.target = "/\xff\x01\\",
		.status = 400,
		.user_agent = "ua\n",
	};
	char *line;

	set_defaults(STRATA_LOG_JSON);
	capture_start();
	strata_log_access(&a);
	capture_stop();
	line = only_line();
	cr_expect(is_json_object(line), "%s", line);
	cr_expect(strstr(line, "\"method\":\"G\\\"T\",\"path\":"
			 "\"/\\ufffd\\u0001\\\\\"") != NULL, "%s", line);
	cr_expect(strstr(line, "\"user_agent\":\"ua\\n\"}") != NULL, "%s",
		  line);
}

Test(log, huge_access_fields_are_cut_within_one_write)
{
	static char path[8192], referer[8192], agent[8192];
	static const enum strata_log_format formats[] = {
		STRATA_LOG_TEXT, STRATA_LOG_JSON,
	};
	struct strata_access a = {
		.client = "127.0.0.1",
		.method = "GET",
		.target = path,
		.status = 200,
		.bytes = UINT64_MAX,
		.duration_us = UINT64_MAX,
		.cache_status = "strata; fwd=miss; stored",
		.protocol = "HTTP/1.1",
		.referer = referer,
		.user_agent = agent,
		.has_upstream = true,
		.upstream_us = UINT64_MAX,
		.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
	};

	/* Characters that expand: two bytes in JSON, four in text. */
	memset(path, '"', sizeof(path) - 1);
	for (size_t i = 0; i + 1 < sizeof(referer); i += 2)
		memcpy(referer + i, "\xc3\xa9", 2);
	memset(agent, '\x01', sizeof(agent) - 1);
	for (size_t f = 0; f < 2; f++) {
		char *line;

		set_defaults(formats[f]);
		capture_start();
		strata_log_access(&a);
		capture_stop();
		line = only_line();
		if (formats[f] == STRATA_LOG_JSON) {
			cr_expect(is_json_object(line), "invalid JSON");
			cr_expect(strstr(line, "\"cache\":\"strata; fwd=miss; "
					 "stored\"") != NULL);
			cr_expect(strstr(line, ",\"duration_ms\":"
					 "18446744073709551.615,") != NULL);
			cr_expect(strstr(line, ",\"bytes\":"
					 "18446744073709551615,") != NULL);
			cr_expect(strstr(line, "...\",\"protocol\":") != NULL);
			cr_expect(strstr(line, "...\",\"user_agent\":") != NULL);
			cr_expect_str_eq(line + strlen(line) - 5, "...\"}");
		} else {
			/* The fields after the long ones survive. */
			cr_expect(strstr(line, "... HTTP/1.1\" 200 "
					 "18446744073709551615 ") != NULL);
			cr_expect(strstr(line, "...\" \"strata; fwd=miss; "
					 "stored\" 18446744073709551.615ms") !=
				  NULL, "%s", line + strlen(line) - 80);
		}
	}
}

Test(log, access_lines_can_be_turned_off)
{
	set_defaults(STRATA_LOG_TEXT);
	strata_log_set_access(false);
	cr_expect_not(strata_log_access_enabled());
	capture_start();
	strata_log_access(&full);
	strata_log_set_format(STRATA_LOG_JSON);
	strata_log_access(&full);
	strata_log_set_level(STRATA_LOG_ERROR);
	strata_log_set_access(true);
	strata_log_access(&full);  /* access lines have no level */
	capture_stop();
	cr_expect_eq(cap.n, 1);
}

/* --- one write per line, from many threads -------------------------------- */

#define THREADS 4
#define LINES 300

static void *writer_main(void *arg)
{
	uintptr_t id = (uintptr_t)arg;

	for (int i = 0; i < LINES; i++) {
		struct strata_access a = full;
		char target[64];

		snprintf(target, sizeof(target), "/t%u/%d", (unsigned)id, i);
		a.target = target;
		if (i % 2)
			strata_log_access(&a);
		else
			strata_log_warn("thread %u line %d", (unsigned)id, i);
	}
	return NULL;
}

Test(log, one_write_per_line_across_threads)
{
	pthread_t threads[THREADS];
	static const enum strata_log_format formats[] = {
		STRATA_LOG_TEXT, STRATA_LOG_JSON,
	};

	for (size_t f = 0; f < 2; f++) {
		set_defaults(formats[f]);
		capture_start();
		for (uintptr_t t = 0; t < THREADS; t++)
			cr_assert_eq(pthread_create(&threads[t], NULL,
						    writer_main, (void *)t), 0);
		for (size_t t = 0; t < THREADS; t++)
			pthread_join(threads[t], NULL);
		capture_stop();
		cr_assert_eq(cap.n, THREADS * LINES);
		for (size_t i = 0; i < cap.n; i++) {
			char *r = cap.records[i];
			char *nl = strchr(r, '\n');

			cr_assert(nl != NULL && nl[1] == '\0',
				  "record %zu is not one line: %s", i, r);
			if (formats[f] == STRATA_LOG_JSON) {
				*nl = '\0';
				cr_assert(is_json_object(r), "%s", r);
			}
		}
	}
}
