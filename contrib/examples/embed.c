/*
 * embed.c: libstrata as a memoizing C web framework.
 *
 * Two routes served by C functions instead of an upstream application:
 *   /hello    fast, cached for 10 s;
 *   /report   deliberately slow (1 s of "work"), cached for 60 s.
 * Strata memoizes both like any upstream response: same keys, same
 * coalescing (a stampede on a cold /report runs the function once), same
 * Cache-Status and Age headers.  The functions run on Strata's handler
 * threads, so a slow one never holds up the connection threads.
 *
 *   embed [--listen HOST:PORT] [--admin-listen HOST:PORT]
 *
 * Settings also come from STRATA_* environment variables, as for strata(8):
 * STRATA_CACHE_DISK_PATH=/tmp/embed-cache, for instance.
 *
 * Build: cc embed.c $(pkg-config --cflags --libs strata)
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <strata/config.h>
#include <strata/handler.h>
#include <strata/strata.h>

static atomic_uint report_runs;

static void hello(void *arg, const struct strata_request *req,
		  struct strata_response *resp)
{
	const char *name = strata_request_query(req);
	char body[256];
	int n;

	(void)arg;
	n = snprintf(body, sizeof(body), "hello, %s\n",
		     name != NULL ? name : "world");
	strata_response_set_status(resp, 200);
	strata_response_add_header(resp, "Content-Type",
				   "text/plain; charset=utf-8");
	strata_response_append(resp, body, (size_t)n);
}

/* A slow computation: the kind of handler worth memoizing. */
static void report(void *arg, const struct strata_request *req,
		   struct strata_response *resp)
{
	struct timespec work = { .tv_sec = 1 };
	unsigned run;
	char body[128];
	int n;

	(void)arg;
	(void)req;
	nanosleep(&work, NULL);
	run = atomic_fetch_add(&report_runs, 1) + 1;
	n = snprintf(body, sizeof(body), "{\"report\": \"done\", \"run\": %u}\n",
		     run);
	strata_response_set_status(resp, 200);
	strata_response_add_header(resp, "Content-Type", "application/json");
	strata_response_append(resp, body, (size_t)n);
}

/* Accept the two listener flags, so the example runs on any port. */
static int apply_args(struct strata_config *cfg, int argc, char **argv,
		      char *err, size_t errlen)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *key = strcmp(argv[i], "--listen") == 0 ? "listen"
				  : strcmp(argv[i], "--admin-listen") == 0
					  ? "admin.listen"
					  : NULL;

		if (key == NULL) {
			snprintf(err, errlen, "unknown argument %s", argv[i]);
			return -1;
		}
		if (strata_config_set(cfg, key, argv[i + 1], argv[i], err,
				      errlen) != 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char err[STRATA_CONFIG_ERRLEN];
	struct strata_config *cfg = strata_config_new();
	struct strata_server *srv = NULL;
	sigset_t set;
	int sig, rc = 1;

	if (cfg == NULL)
		return 1;
	/* STRATA_* variables first (STRATA_CACHE_DISK_PATH, ...), then the
	 * flags, as the strata program does. */
	if (strata_config_apply_env(cfg, NULL, err, sizeof(err)) != 0 ||
	    apply_args(cfg, argc, argv, err, sizeof(err)) != 0 ||
	    strata_config_add_route(cfg, "/hello=10s", "embed", err,
				    sizeof(err)) != 0 ||
	    strata_config_add_route(cfg, "/report=60s", "embed", err,
				    sizeof(err)) != 0 ||
	    strata_config_finish(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "embed: %s\n", err);
		goto out;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (strata_server_new(cfg, &srv) != 0 ||
	    strata_server_handle(srv, "/hello", hello, NULL) != 0 ||
	    strata_server_handle(srv, "/report", report, NULL) != 0 ||
	    strata_server_start(srv) != 0) {
		fprintf(stderr, "embed: cannot start the server\n");
		goto out;
	}
	sigwait(&set, &sig);
	strata_server_drain(srv, 5000);
	rc = 0;
out:
	strata_server_free(&srv);
	strata_config_free(&cfg);
	return rc;
}
