/*
 * test_purge.c: purging one key removes it from memory and disk.
 *
 * The server runs in this process through libstrata's embedding API (a C
 * handler that counts its calls stands in for the origin), on a free port
 * and its own disk directory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "cache/key.h"
#include "strata/config.h"
#include "strata/handler.h"
#include "strata/strata.h"

static atomic_uint calls;
static struct strata_server *srv;
static struct strata_config *cfg;
static char dir[64];

static void counted(void *arg, const struct strata_request *req,
		    struct strata_response *resp)
{
	char body[32];
	int n = snprintf(body, sizeof(body), "call %u\n",
			 atomic_fetch_add(&calls, 1) + 1);

	(void)arg;
	(void)req;
	strata_response_set_status(resp, 200);
	strata_response_append(resp, body, (size_t)n);
}

static void setup(void)
{
	char err[STRATA_CONFIG_ERRLEN], set[128];

	strcpy(dir, "/tmp/strata-purge-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cfg = strata_config_new();
	cr_assert_not_null(cfg);
	snprintf(set, sizeof(set), "%s", dir);
	cr_assert_eq(strata_config_set(cfg, "listen", "127.0.0.1:0", "test",
				       err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "admin.listen", "127.0.0.1:0",
				       "test", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "cache.disk.path", set, "test",
				       err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_set(cfg, "access_log", "false", "test",
				       err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_add_route(cfg, "/hello=60s", "test", err,
					     sizeof(err)), 0, "%s", err);
	cr_assert_eq(strata_config_finish(cfg, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(strata_server_new(cfg, &srv), 0);
	cr_assert_eq(strata_server_handle(srv, "/hello", counted, NULL), 0);
	cr_assert_eq(strata_server_start(srv), 0);
}

static void teardown(void)
{
	char cmd[128];

	strata_server_drain(srv, 1000);
	strata_server_free(&srv);
	strata_config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(purge, .init = setup, .fini = teardown, .timeout = 60);

static const char *get(char *cache_status, size_t len)
{
	static char body[64];
	char url[64];
	struct client_response r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello",
		 strata_server_port(srv));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	snprintf(cache_status, len, "%s",
		 client_header(&r, "Cache-Status") ?: "");
	snprintf(body, sizeof(body), "%s", r.body ?: "");
	client_response_free(&r);
	return body;
}

static void hello_hex(char hex[STRATA_KEY_HEX_LEN + 1])
{
	struct strata_key_rule rule = { 0 };
	struct strata_key key;
	char text[64];
	size_t len;

	cr_assert_eq(strata_key_text(&rule, "GET", "/hello", NULL, NULL, text,
				     sizeof(text), &len),
		     0);
	strata_key_hash(text, len, &key);
	strata_key_hex(&key, hex);
}

Test(purge, one_key_leaves_memory_and_disk)
{
	char cs[128], hex[STRATA_KEY_HEX_LEN + 1];

	cr_expect_str_eq(get(cs, sizeof(cs)), "call 1\n");
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	/* Let the disk writer commit it, so the purge has work on disk. */
	usleep(300 * 1000);
	cr_expect_str_eq(get(cs, sizeof(cs)), "call 1\n");
	cr_expect(strstr(cs, "detail=memory") != NULL, "%s", cs);

	hello_hex(hex);
	cr_assert_eq(strata_server_purge(srv, hex), 0);
	/* Gone from memory and from disk: a disk copy would answer here. */
	cr_expect_str_eq(get(cs, sizeof(cs)), "call 2\n");
	cr_expect_str_eq(cs, "strata; fwd=miss; stored");
	cr_expect_eq(atomic_load(&calls), 2);
}

Test(purge, malformed_hash_is_refused)
{
	cr_expect_eq(strata_server_purge(srv, "not-a-hash"), -EINVAL);
	cr_expect_eq(strata_server_purge(srv, "00000000000000000000000000000000"),
		     0, "purging an absent key succeeds");
}
