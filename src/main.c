/*
 * main.c: the strata program: command line, configuration layers,
 * signals and the server's lifecycle.  Nothing else lives here.
 *
 * Configuration precedence, lowest first: built-in defaults, the YAML file
 * (-c or STRATA_CONFIG), the environment (STRATA_*), then flags.  Exit
 * codes: 0 normal, 1 runtime failure, 2 usage or configuration error.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "core/log.h"
#include "strata/config.h"
#include "strata/strata.h"

#define EXIT_USAGE 2

extern char **environ;

enum {
	OPT_UPSTREAM = 256,
	OPT_LISTEN,
	OPT_ADMIN_LISTEN,
	OPT_WORKERS,
	OPT_MEMORY,
	OPT_MAX_OBJECT_SIZE,
	OPT_ROUTE,
	OPT_SET,
	OPT_CHECK,
};

static const struct option long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "upstream", required_argument, NULL, OPT_UPSTREAM },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "max-object-size", required_argument, NULL, OPT_MAX_OBJECT_SIZE },
	{ "route", required_argument, NULL, OPT_ROUTE },
	{ "set", required_argument, NULL, OPT_SET },
	{ "check-config", no_argument, NULL, OPT_CHECK },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Flags that are shorthands for one configuration key. */
static const struct {
	int opt;
	const char *key;
	const char *flag;
} key_flags[] = {
	{ OPT_UPSTREAM, "upstream.url", "--upstream" },
	{ OPT_LISTEN, "listen", "--listen" },
	{ OPT_ADMIN_LISTEN, "admin.listen", "--admin-listen" },
	{ OPT_WORKERS, "workers", "--workers" },
	{ OPT_MEMORY, "cache.memory", "--memory" },
	{ OPT_MAX_OBJECT_SIZE, "cache.max_object_size", "--max-object-size" },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: strata [-c FILE] [OPTIONS]\n"
		"A memoizing HTTP cache in front of a slow web application.\n"
		"\n"
		"  -c, --config FILE        YAML configuration (env STRATA_CONFIG)\n"
		"      --upstream URL       the application, e.g. http://127.0.0.1:8000\n"
		"      --listen HOST:PORT   proxy listener (default 127.0.0.1:8080)\n"
		"      --admin-listen HOST:PORT\n"
		"                           admin listener (default 127.0.0.1:8081)\n"
		"      --workers N          listener threads (default: CPUs)\n"
		"      --memory SIZE        memory tier budget, e.g. 256MiB\n"
		"      --max-object-size SIZE\n"
		"                           largest answer stored (default 8MiB)\n"
		"      --route PATH=TTL     cache PATH for TTL, e.g. '/api/*=10s';\n"
		"                           repeatable; replaces the file's routes\n"
		"      --set KEY=VALUE      set any configuration key, e.g.\n"
		"                           --set upstream.timeout=5s; repeatable\n"
		"      --check-config       validate the configuration and exit\n"
		"  -V, --version            print the version and exit\n"
		"  -h, --help               print this help and exit\n"
		"\n"
		"Every option can also come from the environment: STRATA_UPSTREAM,\n"
		"STRATA_LISTEN, STRATA_WORKERS, STRATA_ROUTES (comma-separated), ...\n"
		"Precedence: flag > environment > file > default.  See strata(8).\n");
}

/* The command line, collected before any layer is applied. */
struct cmdline {
	const char *config_file;
	bool check_only;
	int *opts;          /* option ids, in order */
	char **args;        /* their arguments */
	size_t n;
};

static int parse_cmdline(int argc, char **argv, struct cmdline *cl)
{
	int c;

	cl->opts = calloc((size_t)argc, sizeof(*cl->opts));
	cl->args = calloc((size_t)argc, sizeof(*cl->args));
	if (cl->opts == NULL || cl->args == NULL)
		return EXIT_FAILURE;
	while ((c = getopt_long(argc, argv, "c:Vh", long_options, NULL)) !=
	       -1) {
		switch (c) {
		case 'c':
			cl->config_file = optarg;
			break;
		case 'V':
			printf("strata %s\n", strata_version());
			return EXIT_SUCCESS;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case OPT_CHECK:
			cl->check_only = true;
			break;
		case '?':
			usage(stderr);
			return EXIT_USAGE;
		default:
			cl->opts[cl->n] = c;
			cl->args[cl->n++] = optarg;
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "strata: unexpected argument \"%s\"\n",
			argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1; /* carry on */
}

/* Apply one flag over the configuration. */
static int apply_flag(struct strata_config *cfg, int opt, const char *arg,
		      bool *routes_cleared, char *err, size_t errlen)
{
	const char *eq;

	for (size_t i = 0; i < sizeof(key_flags) / sizeof(key_flags[0]); i++)
		if (key_flags[i].opt == opt)
			return strata_config_set(cfg, key_flags[i].key, arg,
						 key_flags[i].flag, err,
						 errlen);
	if (opt == OPT_ROUTE) {
		if (!*routes_cleared) {
			strata_config_clear_routes(cfg);
			*routes_cleared = true;
		}
		return strata_config_add_route(cfg, arg, "--route", err,
					       errlen);
	}
	/* OPT_SET: KEY=VALUE (split in a copy: a reload applies the flags
	 * again) */
	eq = strchr(arg, '=');
	if (eq == NULL) {
		snprintf(err, errlen,
			 "--set \"%s\": expected KEY=VALUE "
			 "(e.g. --set upstream.timeout=5s)",
			 arg);
		return STRATA_ECONFIG;
	}
	{
		/* Name the key in messages: `--set cache.disk.sync`. */
		char source[128], *key = strndup(arg, (size_t)(eq - arg));
		int rc;

		if (key == NULL)
			return -ENOMEM;
		snprintf(source, sizeof(source), "--set %s", key);
		rc = strata_config_set(cfg, key, eq + 1, source, err, errlen);
		free(key);
		return rc;
	}
}

/* Build the configuration: defaults, file, environment, flags.  On
 * failure err holds the reason, naming the source (file:line: key). */
static int build_config(const struct cmdline *cl, struct strata_config **out,
			char *err, size_t errlen)
{
	const char *file = cl->config_file;
	bool routes_cleared = false;
	struct strata_config *cfg = strata_config_new();
	int rc = 0;

	if (cfg == NULL)
		return -ENOMEM;
	if (file == NULL)
		file = getenv("STRATA_CONFIG");
	err[0] = '\0';
	if (file != NULL && file[0] != '\0') {
		rc = strata_config_load_file(cfg, file, err, errlen);
		if (rc < 0 && rc != STRATA_ECONFIG && err[0] == '\0')
			snprintf(err, errlen, "%s: %s", file,
				 strata_strerror(rc));
	}
	if (rc == 0)
		rc = strata_config_apply_env(cfg, environ, err, errlen);
	for (size_t i = 0; rc == 0 && i < cl->n; i++)
		rc = apply_flag(cfg, cl->opts[i], cl->args[i],
				&routes_cleared, err, errlen);
	if (rc == 0)
		rc = strata_config_finish(cfg, err, errlen);
	if (rc != 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s", strata_strerror(rc));
		strata_config_free(&cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

/* Block the signals we wait for, in every thread created after this. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * Every proxied request holds two descriptors (client and upstream), so the
 * usual soft limit of 1024 would cap Strata near 500 requests in flight.
 * Raise it to the hard limit, as nginx's worker_rlimit_nofile does.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			strata_log_warn("cannot raise the open-file limit to "
					"%llu", (unsigned long long)rl.rlim_max);
	}
}

/*
 * Tell systemd (Type=notify) what the service is doing: READY=1 once it
 * serves, RELOADING=1 (with the monotonic time systemd 253 asks for)
 * around a reload, STOPPING=1 when it drains.  A no-op outside systemd
 * (no $NOTIFY_SOCKET) and without libsystemd.
 */
static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	struct timespec ts;

	if (strncmp(state, "RELOADING=1", 11) == 0 &&
	    clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		sd_notifyf(0, "%s\nMONOTONIC_USEC=%llu", state,
			   (unsigned long long)ts.tv_sec * 1000000ull +
				   (unsigned long long)ts.tv_nsec / 1000ull);
	else
		sd_notify(0, state);
#else
	(void)state;
#endif
}

/* What a reload needs: the sources to read again, and the configuration
 * in effect (its shutdown_timeout is read at exit). */
struct reloader {
	pthread_mutex_t lock;          /* SIGHUP and POST /admin/reload */
	const struct cmdline *cl;
	struct strata_server *srv;
	struct strata_config *cfg;     /* owned */
};

/*
 * Read the configuration again and apply it.  0 with the server's JSON
 * report in *out; STRATA_ECONFIG with the reason in *out (the file, line
 * and key), the running configuration untouched; or a negative errno.
 */
static int reload(void *ctx, char **out)
{
	struct reloader *r = ctx;
	char err[STRATA_CONFIG_ERRLEN];
	struct strata_config *next = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&r->lock);
	notify("RELOADING=1");
	rc = build_config(r->cl, &next, err, sizeof(err));
	if (rc == 0)
		rc = strata_server_reload(r->srv, next, out, err,
					  sizeof(err));
	if (rc == 0) {
		strata_config_free(&r->cfg);
		r->cfg = next;
	} else {
		strata_config_free(&next);
		strata_log_error("reload refused, the running configuration "
				 "stays: %s",
				 err[0] ? err : strata_strerror(rc));
		if (rc == STRATA_ECONFIG || err[0] != '\0') {
			rc = STRATA_ECONFIG;
			*out = strdup(err[0] ? err : strata_strerror(rc));
		}
	}
	notify("READY=1");
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int run(const struct cmdline *cl, struct strata_config *cfg)
{
	struct reloader r = { .cl = cl, .cfg = cfg };
	char *report = NULL;
	uint64_t timeout_ms;
	sigset_t set;
	int sig = 0, rc;

	pthread_mutex_init(&r.lock, NULL);
	block_signals(&set);
	raise_fd_limit();
	rc = strata_server_new(cfg, &r.srv);
	if (rc == 0) {
		strata_server_set_reloader(r.srv, reload, &r);
		rc = strata_server_start(r.srv);
	}
	if (rc != 0) {
		strata_log_error("cannot start: %s", strata_strerror(rc));
		strata_server_free(&r.srv);
		strata_config_free(&r.cfg);
		return EXIT_FAILURE;
	}
	/* The admin listener is up: a reload may replace r.cfg by now. */
	pthread_mutex_lock(&r.lock);
	strata_log_info("strata %s listening on %s (port %u), upstream %s, "
			"%zu route(s), %u worker(s)",
			strata_version(), r.cfg->listen,
			strata_server_port(r.srv), r.cfg->upstream.url,
			r.cfg->n_routes, r.cfg->workers);
	pthread_mutex_unlock(&r.lock);
	notify("READY=1");
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		(void)reload(&r, &report);
		free(report);
		report = NULL;
	}
	notify("STOPPING=1");
	/* The admin listener may still reload until strata_server_free()
	 * stops it: read the timeout in effect under the reload lock. */
	pthread_mutex_lock(&r.lock);
	timeout_ms = r.cfg->shutdown_timeout_ms;
	pthread_mutex_unlock(&r.lock);
	strata_log_info("%s: draining (up to %llu ms)", strsignal(sig),
			(unsigned long long)timeout_ms);
	rc = strata_server_drain(r.srv, timeout_ms);
	strata_server_free(&r.srv);
	strata_config_free(&r.cfg);
	pthread_mutex_destroy(&r.lock);
	strata_log_info("stopped%s", rc > 0 ? " (some requests cancelled)"
					    : "");
	return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct cmdline cl = { 0 };
	struct strata_config *cfg = NULL;
	char err[STRATA_CONFIG_ERRLEN];
	int rc = parse_cmdline(argc, argv, &cl);

	if (rc >= 0)
		goto out;
	if (build_config(&cl, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "strata: %s\n", err);
		rc = EXIT_USAGE;
		goto out;
	}
	/* First thing once the configuration is known: every line from here
	 * on, the server's included, uses the configured format and level.
	 * (Configuration errors above are printed before there is one.) */
	strata_log_set_format((enum strata_log_format)cfg->log.format);
	strata_log_set_level((enum strata_log_level)cfg->log.level);
	if (cl.check_only) {
		printf("%s: configuration is valid\n",
		       cfg->file != NULL ? cfg->file : "(no file)");
		rc = EXIT_SUCCESS;
		goto out;
	}
	rc = run(&cl, cfg);
	cfg = NULL; /* run() owns it */
out:
	strata_config_free(&cfg);
	free(cl.opts);
	free(cl.args);
	return rc;
}
