/*
 * test_cli.c: the strata command line, run as a real process.
 *
 * Exit codes are the contract: 0 normal (also --help, --version and
 * --check-config on a valid file), 2 usage or configuration error, 1
 * runtime failure.  Precedence of settings: flag > environment > file >
 * default, proven by pointing the losing layer at a dead port and the
 * winning one at the test origin, then counting what the origin received.
 * stderr is checked only where the message is the interface: a config
 * error must name file:line.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"

#define RUN_TIMEOUT_MS 10000

static struct origin *origin;
static struct proc *strata;
static char config_path[64];
static struct proc_result res;

static void setup(void)
{
	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
}

static void teardown(void)
{
	proc_stop(&strata);
	origin_stop(&origin);
	proc_result_free(&res);
	if (config_path[0] != '\0')
		unlink(config_path);
}

TestSuite(cli, .init = setup, .fini = teardown);

/* Write `text` to a fresh temporary .yaml file; its path is config_path. */
static const char *write_config(const char *text)
{
	size_t len = strlen(text);
	int fd;

	strcpy(config_path, "/tmp/strata-cfg-XXXXXX.yaml");
	fd = mkstemps(config_path, 5);
	cr_assert_geq(fd, 0, "mkstemps failed");
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return config_path;
}

/* Run strata to completion; print what it said when the test will fail. */
static void run(const char *const *args, const char *const *env)
{
	proc_result_free(&res);
	cr_assert_eq(proc_run(args, env, RUN_TIMEOUT_MS, &res), 0,
		     "cannot run %s", proc_strata_bin());
	cr_assert(!res.timed_out, "strata did not exit within %d ms",
		  RUN_TIMEOUT_MS);
}

static void dump(void)
{
	fprintf(stderr, "---- strata stdout ----\n%s---- strata stderr ----\n"
			"%s---- end ----\n",
		res.out ? res.out : "", res.err ? res.err : "");
}

/* A URL nothing listens on. */
static const char *dead_url(void)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "http://127.0.0.1:%u", proc_free_port());
	return buf;
}

static const char *origin_base(void)
{
	static char buf[64];

	return origin_url(origin, "", buf, sizeof(buf));
}

/* One request through strata reaches the origin and comes back 200. */
static void expect_proxied(void)
{
	struct client_response r;
	char url[128];
	long status;

	status = client_request("GET",
				proc_url(strata, "/echo/cli", url, sizeof(url)),
				NULL, NULL, 0, &r);
	cr_expect_eq(status, 200, "status %ld (%s)", status, r.error);
	client_response_free(&r);
	cr_expect_eq(origin_count_prefix(origin, "/echo/cli"), 1,
		     "the origin saw %zu requests",
		     origin_count_prefix(origin, "/echo/cli"));
}

/* --- informational flags ------------------------------------------------ */

Test(cli, help_prints_usage_on_stdout, .timeout = 60)
{
	const char *const args[] = {"--help", NULL};

	run(args, NULL);
	if (res.status != 0)
		dump();
	cr_expect_eq(res.status, 0);
	cr_expect(strcasestr(res.out, "usage") != NULL,
		  "stdout has no usage text");
	cr_expect(strstr(res.out, "--upstream") != NULL,
		  "usage does not mention --upstream");
}

Test(cli, version_prints_the_version, .timeout = 60)
{
	const char *const args[] = {"--version", NULL};

	run(args, NULL);
	cr_expect_eq(res.status, 0);
#ifdef PACKAGE_VERSION
	cr_expect(strstr(res.out, PACKAGE_VERSION) != NULL,
		  "stdout \"%s\" does not contain %s", res.out,
		  PACKAGE_VERSION);
#else
	cr_expect(strpbrk(res.out, "0123456789") != NULL,
		  "stdout \"%s\" has no version", res.out);
#endif
}

Test(cli, unknown_flag_is_a_usage_error, .timeout = 60)
{
	const char *const args[] = {"--no-such-flag", NULL};

	run(args, NULL);
	cr_expect_eq(res.status, 2, "exit status %d", res.status);
	cr_expect(strstr(res.err, "no-such-flag") != NULL,
		  "stderr does not name the flag: %s", res.err);
}

/* --- configuration checks ----------------------------------------------- */

Test(cli, check_config_accepts_a_valid_file, .timeout = 60)
{
	const char *path = write_config(
		"listen: 127.0.0.1:18080\n"
		"workers: 2\n"
		"shutdown_timeout: 5s\n"
		"upstream:\n"
		"  url: http://127.0.0.1:18081\n"
		"  timeout: 10s\n"
		"  connect_timeout: 2s\n"
		"  max_connections: 100\n"
		"  preserve_host: true\n"
		"routes:\n"
		"  - path: /api/*\n"
		"    ttl: 10s\n");
	const char *const args[] = {"-c", path, "--check-config", NULL};

	run(args, NULL);
	if (res.status != 0)
		dump();
	cr_expect_eq(res.status, 0, "exit status %d", res.status);
}

Test(cli, check_config_names_file_and_line_of_unknown_key, .timeout = 60)
{
	const char *path = write_config("upstream:\n"
					"  url: http://127.0.0.1:18081\n"
					"no_such_key: 1\n");
	const char *const args[] = {"-c", path, "--check-config", NULL};
	char where[96];

	run(args, NULL);
	cr_expect_eq(res.status, 2, "exit status %d", res.status);
	snprintf(where, sizeof(where), "%s:3", path);
	cr_expect(strstr(res.err, where) != NULL,
		  "stderr does not name %s: %s", where, res.err);
	cr_expect(strstr(res.err, "no_such_key") != NULL,
		  "stderr does not name the key: %s", res.err);
}

Test(cli, bad_route_ttl_is_a_usage_error, .timeout = 60)
{
	char listen[64];
	const char *const args[] = {
		"--upstream", dead_url(),
		"--listen", listen,
		"--route", "/x=forever",
		NULL,
	};

	snprintf(listen, sizeof(listen), "127.0.0.1:%u", proc_free_port());
	run(args, NULL);
	cr_expect_eq(res.status, 2, "exit status %d", res.status);
	cr_expect(strstr(res.err, "forever") != NULL ||
			  strcasestr(res.err, "route") != NULL,
		  "stderr does not name the bad route: %s", res.err);
}

Test(cli, bad_environment_value_is_a_usage_error, .timeout = 60)
{
	const char *const args[] = {"--upstream", "http://127.0.0.1:18081",
				    "--check-config", NULL};
	const char *const env[] = {"STRATA_WORKERS=many", NULL};

	run(args, env);
	cr_expect_eq(res.status, 2, "exit status %d", res.status);
	cr_expect(strstr(res.err, "STRATA_WORKERS") != NULL,
		  "stderr does not name STRATA_WORKERS: %s", res.err);
}

Test(cli, cannot_bind_is_a_runtime_failure, .timeout = 60)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(addr);
	char listen_arg[64], admin_arg[64];
	const char *const args[] = {
		"--upstream", origin_base(),
		"--listen", listen_arg,
		"--admin-listen", admin_arg,
		NULL,
	};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u",
		 ntohs(addr.sin_port));
	snprintf(admin_arg, sizeof(admin_arg), "127.0.0.1:%u",
		 proc_free_port());
	run(args, NULL);
	close(fd);
	cr_expect_eq(res.status, 1, "exit status %d with the port taken",
		     res.status);
}

/* --- precedence: flag > environment > file > default --------------------- */

Test(cli, environment_upstream_is_used_without_flag, .timeout = 60)
{
	char env_upstream[96];
	const char *const env[] = {env_upstream, NULL};
	struct proc_spec spec = {.env = env};

	snprintf(env_upstream, sizeof(env_upstream), "STRATA_UPSTREAM=%s",
		 origin_base());
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
	expect_proxied();
}

Test(cli, environment_listen_is_used_without_flag, .timeout = 60)
{
	const char *const args[] = {"--upstream", origin_base(),
				    "--admin-listen",
				    "127.0.0.1:@ADMIN_PORT@", NULL};
	const char *const env[] = {"STRATA_LISTEN=127.0.0.1:@PORT@", NULL};
	struct proc_spec spec = {.args = args, .env = env,
				 .no_listen_flags = true};

	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
	expect_proxied();
}

Test(cli, flag_beats_environment, .timeout = 60)
{
	char env_upstream[96];
	const char *const args[] = {"--upstream", origin_base(), NULL};
	const char *const env[] = {env_upstream, NULL};
	struct proc_spec spec = {.args = args, .env = env};

	snprintf(env_upstream, sizeof(env_upstream), "STRATA_UPSTREAM=%s",
		 dead_url());
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
	expect_proxied();
}

Test(cli, file_upstream_is_used, .timeout = 60)
{
	char text[128];
	const char *path;
	const char *const args[] = {"-c", config_path, NULL};

	snprintf(text, sizeof(text), "upstream:\n  url: %s\n", origin_base());
	path = write_config(text);
	(void)path;
	strata = proc_start_args(args);
	cr_assert_not_null(strata, "strata did not start (output above)");
	expect_proxied();
}

Test(cli, strata_config_names_the_file, .timeout = 60)
{
	char text[128], env_config[96];
	const char *const env[] = {env_config, NULL};
	struct proc_spec spec = {.env = env};

	snprintf(text, sizeof(text), "upstream:\n  url: %s\n", origin_base());
	snprintf(env_config, sizeof(env_config), "STRATA_CONFIG=%s",
		 write_config(text));
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
	expect_proxied();
}

Test(cli, environment_beats_file, .timeout = 60)
{
	char text[128], env_upstream[96];
	const char *const args[] = {"-c", config_path, NULL};
	const char *const env[] = {env_upstream, NULL};
	struct proc_spec spec = {.args = args, .env = env};

	snprintf(text, sizeof(text), "upstream:\n  url: %s\n", dead_url());
	write_config(text);
	snprintf(env_upstream, sizeof(env_upstream), "STRATA_UPSTREAM=%s",
		 origin_base());
	strata = proc_start(&spec);
	cr_assert_not_null(strata, "strata did not start (output above)");
	expect_proxied();
}
