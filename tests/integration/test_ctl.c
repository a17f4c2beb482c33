/*
 * test_ctl.c: strata-ctl, the admin API's command-line client, run as a
 * program ($STRATA_CTL_BIN) the way an operator runs it.
 *
 * Two suites:
 *
 *   ctl        no strata at all.  Usage errors are checked against a
 *              listening socket that must never see a connection; a free
 *              port with nothing behind it and a socket that accepts but
 *              never answers give "cannot connect" and "timeout"; a fake
 *              admin API in a thread (canned answers, every request head
 *              recorded) checks the exit status for each kind of answer,
 *              the percent-encoding of query values, the token header and
 *              that --json passes the server's document through unchanged.
 *
 *   ctl_admin  the real strata (tests/helpers/proc.h) in front of the test
 *              origin (tests/helpers/origin.h), driven through its admin
 *              listener; assertions are on what the origin counted and on
 *              Cache-Status, as in test_cache.c.
 *
 * strata-ctl runs with stdin from /dev/null and its stdout and stderr
 * captured, with the test's environment minus STRATA_ADMIN_* (so a
 * developer's own settings do not leak in) plus what the test passes.
 * Waits scale with STRATA_TEST_TIMEOUT_MULT; every test has the same
 * Criterion .timeout (see test_cache.c for why it must be the same).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "../helpers/client.h"
#include "../helpers/origin.h"
#include "../helpers/proc.h"

#define TIMEOUT_S 60
#define MAX_ARGS 32

extern char **environ;

/* --- running strata-ctl -------------------------------------------------- */

struct run {
	int status;     /* exit status; 128 + N when killed by signal N */
	char *out;      /* stdout, NUL-terminated */
	char *err;      /* stderr, NUL-terminated */
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	*r = (struct run){0};
}

static const char *ctl_bin(void)
{
	const char *b = getenv("STRATA_CTL_BIN");

	return b != NULL && *b != '\0' ? b : "./strata-ctl";
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Append what is readable on fd to *buf; false at end of file. */
static bool drain(int fd, char **buf, size_t *len)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	*buf = realloc(*buf, *len + (size_t)n + 1);
	cr_assert_not_null(*buf);
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return true;
}

/*
 * Run strata-ctl with `args` (NULL-terminated) and extra environment
 * `env` ("NAME=value", NULL-terminated, may be NULL) to completion; killed
 * after 20 s × multiplier.
 */
static void run_ctl(struct run *r, const char *const *env,
		    const char *const *args)
{
	const char *argv[MAX_ARGS + 2];
	const char **envp;
	size_t n = 0, ne = 0, nenv = 0, out_len = 0, err_len = 0;
	int out[2], err[2], st = 0;
	bool out_open = true, err_open = true;
	uint64_t deadline = now_ms() + (uint64_t)proc_scaled_ms(20000);
	pid_t pid;

	*r = (struct run){0};
	argv[n++] = ctl_bin();
	for (size_t i = 0; args[i] != NULL && n < MAX_ARGS + 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	while (environ[nenv] != NULL)
		nenv++;
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		nenv++;
	envp = calloc(nenv + 1, sizeof(*envp));
	cr_assert_not_null(envp);
	for (size_t i = 0; environ[i] != NULL; i++)
		if (strncmp(environ[i], "STRATA_ADMIN_", 13) != 0)
			envp[ne++] = environ[i];
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		envp[ne++] = env[i];
	envp[ne] = NULL;

	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		execve(argv[0], (char *const *)argv, (char *const *)envp);
		fprintf(stderr, "cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	free(envp);
	close(out[1]);
	close(err[1]);
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	while (out_open || err_open) {
		struct pollfd p[2] = {
			{out_open ? out[0] : -1, POLLIN, 0},
			{err_open ? err[0] : -1, POLLIN, 0},
		};
		long left = (long)(deadline - now_ms());

		if ((int64_t)(deadline - now_ms()) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(p, 2, (int)left) <= 0)
			continue;
		if (p[0].revents && !drain(out[0], &r->out, &out_len))
			out_open = false;
		if (p[1].revents && !drain(err[0], &r->err, &err_len))
			err_open = false;
	}
	close(out[0]);
	close(err[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run with the given arguments (a NULL is appended). */
#define CTL(r, ...) \
	run_ctl((r), NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CTL_ENV(r, env, ...) \
	run_ctl((r), (env), (const char *const[]){__VA_ARGS__, NULL})

/* Expect an exit status, showing what the program said otherwise. */
#define expect_status(r, want, what)                                        \
	cr_expect_eq((r)->status, (want),                                   \
		     "%s: exit %d, expected %d\nstdout: %s\nstderr: %s",    \
		     (what), (r)->status, (want), (r)->out, (r)->err)

static bool contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static json_t *parse_json(const char *text, const char *what)
{
	json_error_t e;
	json_t *doc = json_loads(text, 0, &e);

	cr_assert_not_null(doc, "%s: not JSON (%s): %s", what, e.text, text);
	return doc;
}

static bool is_hash(const char *s)
{
	if (s == NULL || strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

/* --- sockets for the offline tests ------------------------------------- */

/* A listening socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_any(unsigned *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Whether a connection is waiting to be accepted on `fd`. */
static bool pending_connection(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};

	return poll(&p, 1, 0) > 0;
}

/*
 * A fake admin API: a thread accepting connections on 127.0.0.1, reading
 * each request head and answering with the next canned answer (the last
 * one repeats), Connection: close.  The heads are recorded in order.
 */
struct canned {
	int status;
	const char *body;
};

#define FAKE_MAX 16

struct fake {
	int fd;
	unsigned port;
	pthread_t thread;
	const struct canned *answers;
	size_t n_answers;
	pthread_mutex_t lock;
	char *heads[FAKE_MAX];  /* request line and headers */
	size_t n_heads;
	char url[64];
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		char head[8192], resp[8192];
		size_t len = 0, i;
		const struct canned *a;
		int c = accept(f->fd, NULL, NULL);
		ssize_t n;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;    /* shut down */
		}
		while (len < sizeof(head) - 1) {
			n = read(c, head + len, sizeof(head) - 1 - len);
			if (n <= 0)
				break;
			len += (size_t)n;
			head[len] = '\0';
			if (strstr(head, "\r\n\r\n") != NULL)
				break;
		}
		head[len] = '\0';
		pthread_mutex_lock(&f->lock);
		i = f->n_heads;
		if (i < FAKE_MAX)
			f->heads[f->n_heads++] = strdup(head);
		pthread_mutex_unlock(&f->lock);
		a = &f->answers[i < f->n_answers ? i : f->n_answers - 1];
		n = snprintf(resp, sizeof(resp),
			     "HTTP/1.1 %d Canned\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n"
			     "Connection: close\r\n\r\n%s",
			     a->status, strlen(a->body), a->body);
		if (write(c, resp, (size_t)n) < 0)
			perror("fake admin: write");
		close(c);
	}
}

static void fake_start(struct fake *f, const struct canned *answers,
		       size_t n)
{
	*f = (struct fake){.answers = answers, .n_answers = n};
	pthread_mutex_init(&f->lock, NULL);
	f->fd = listen_any(&f->port);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Request head number i (NULL when fewer came). */
static const char *fake_head(struct fake *f, size_t i)
{
	const char *h;

	pthread_mutex_lock(&f->lock);
	h = i < f->n_heads ? f->heads[i] : NULL;
	pthread_mutex_unlock(&f->lock);
	return h;
}

static size_t fake_count(struct fake *f)
{
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->n_heads;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void fake_stop(struct fake *f)
{
	shutdown(f->fd, SHUT_RDWR);     /* makes accept() fail */
	pthread_join(f->thread, NULL);
	close(f->fd);
	for (size_t i = 0; i < f->n_heads; i++)
		free(f->heads[i]);
	pthread_mutex_destroy(&f->lock);
}

TestSuite(ctl, .timeout = TIMEOUT_S);

/* --- usage errors ------------------------------------------------------ */

Test(ctl, usage_errors_exit_2_without_contacting_anything)
{
	static const char *const cases[][8] = {
		{NULL},
		{"bogus"},
		{"keys", "--limit", "0"},
		{"keys", "--limit", "1001"},
		{"keys", "--limit", "ten"},
		{"keys", "--tier", "ssd"},
		{"keys", "--body"},
		{"keys", "--prefix", "api"},
		{"keys", "--all", "--cursor", "c"},
		{"keys", "extra"},
		{"show"},
		{"show", "abc"},
		{"show", "/a", "/b"},
		{"show", "0123456789abcdef0123456789abcdef", "-H", "A: b"},
		{"purge"},
		{"purge", "relative"},
		{"purge", "/a", "--tag", "t"},
		{"purge", "--prefix", "/a", "--hash",
		 "0123456789abcdef0123456789abcdef"},
		{"purge", "--tag", ""},
		{"purge", "--hash", "xyz"},
		{"purge", "/a", "--tier", "memory"},
		{"flush"},
		{"flush", "--tier", "memory"},
		{"flush", "--tier", "ssd", "--yes"},
		{"explain"},
		{"explain", "/a", "-H", "no colon"},
		{"explain", "/a", "--method", "G E T"},
		{"stats", "now"},
		{"health", "--bogus"},
		{"--timeout", "0", "health"},
		{"--timeout", "soon", "health"},
		{"--timeout"},
		{"--admin", "ftp://127.0.0.1:1", "health"},
		{"--admin", "http://user:pw@127.0.0.1:1", "health"},
	};
	unsigned port;
	int fd = listen_any(&port);
	char admin[64];

	snprintf(admin, sizeof(admin), "http://127.0.0.1:%u", port);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[12] = {"--admin", admin};
		struct run r;
		char what[256] = "strata-ctl";
		size_t n = 2;

		for (size_t k = 0; k < 8 && cases[i][k] != NULL; k++) {
			args[n++] = cases[i][k];
			strncat(what, " ", sizeof(what) - strlen(what) - 1);
			strncat(what, cases[i][k],
				sizeof(what) - strlen(what) - 1);
		}
		args[n] = NULL;
		run_ctl(&r, NULL, args);
		expect_status(&r, 2, what);
		cr_expect_str_eq(r.out, "", "%s: printed on stdout: %s", what,
				 r.out);
		cr_expect(contains(r.err, "--help"),
			  "%s: no pointer to --help in: %s", what, r.err);
		run_free(&r);
	}
	cr_expect(!pending_connection(fd),
		  "a usage error still connected to the admin API");
	close(fd);
}

Test(ctl, help_and_version_exit_0)
{
	struct run r;

	CTL(&r, "--help");
	expect_status(&r, 0, "--help");
	for (const char *const *w = (const char *const[]){
		     "keys", "show", "purge", "flush [--tier", "stats", "health",
		     "ready", "explain", "--admin", "--token", "--json",
		     "--timeout", "STRATA_ADMIN_URL", "STRATA_ADMIN_TOKEN",
		     "Exit status", "2  usage error", "3  cannot connect",
		     "4  authentication failed", "5  not ready", NULL};
	     *w != NULL; w++)
		cr_expect(contains(r.out, *w), "--help does not mention \"%s\"",
			  *w);
	run_free(&r);

	CTL(&r, "--version");
	expect_status(&r, 0, "--version");
	cr_expect(contains(r.out, "strata-ctl "), "--version: %s", r.out);
	run_free(&r);
}

/* --- no answer ---------------------------------------------------------- */

Test(ctl, unreachable_admin_api_exits_3)
{
	unsigned port = proc_free_port();
	char admin[64];
	struct run r;

	cr_assert_neq(port, 0);
	cr_assert(client_connect_refused(port), "port %u is not free", port);
	snprintf(admin, sizeof(admin), "http://127.0.0.1:%u", port);
	CTL(&r, "--admin", admin, "health");
	expect_status(&r, 3, "health, nothing listening");
	cr_expect(contains(r.err, "cannot reach"), "stderr: %s", r.err);
	cr_expect(contains(r.err, admin), "the message does not name %s: %s",
		  admin, r.err);
	run_free(&r);

	CTL(&r, "--admin", admin, "--json", "keys", "--all");
	expect_status(&r, 3, "keys --all, nothing listening");
	cr_expect_str_eq(r.out, "", "--json printed something: %s", r.out);
	run_free(&r);
}

Test(ctl, no_answer_in_time_exits_3)
{
	unsigned port;
	int fd = listen_any(&port);     /* connects, never answers */
	char admin[64];
	uint64_t t0 = now_ms();
	struct run r;

	snprintf(admin, sizeof(admin), "127.0.0.1:%u", port);
	CTL(&r, "--admin", admin, "--timeout", "0.5", "stats");
	expect_status(&r, 3, "stats against a silent server");
	cr_expect(now_ms() - t0 < (uint64_t)proc_scaled_ms(5000),
		  "--timeout 0.5 took %llu ms",
		  (unsigned long long)(now_ms() - t0));
	cr_expect(contains(r.err, "cannot reach"), "stderr: %s", r.err);
	run_free(&r);
	close(fd);
}

/* --- answers and exit statuses (fake admin API) ------------------------ */

Test(ctl, exit_status_follows_the_answer)
{
	static const struct {
		int status;
		const char *body;
		const char *cmd;
		int want;
		const char *says;       /* in stderr */
	} cases[] = {
		{200, "{\"status\":\"ok\"}", "health", 0, ""},
		{401, "{\"error\":\"unauthorized\",\"detail\":\"token needed\"}",
		 "stats", 4, "no token was sent"},
		{403, "{\"error\":\"forbidden\",\"detail\":\"wrong token\"}",
		 "stats", 4, "forbidden: wrong token"},
		{404, "{\"error\":\"not_found\",\"detail\":\"no such entry\"}",
		 "stats", 1, "404 not_found: no such entry"},
		{400, "{\"error\":\"bad_request\",\"detail\":\"bad limit\"}",
		 "keys", 1, "bad_request: bad limit"},
		{500, "{\"error\":\"internal\",\"detail\":\"oops\"}", "stats",
		 1, "internal: oops"},
		{502, "<html>bad gateway</html>", "stats", 1, "HTTP 502"},
		{200, "<html>not an API</html>", "stats", 1, "not a JSON"},
		{503, "{\"ready\":false,\"state\":\"starting\",\"tiers\":"
		      "{\"memory\":\"up\"},\"upstream\":\"down\"}",
		 "ready", 5, ""},
		{200, "{\"ready\":true,\"state\":\"ready\",\"tiers\":"
		      "{\"memory\":\"up\"},\"upstream\":\"up\"}",
		 "ready", 0, ""},
		{503, "{\"error\":\"unavailable\",\"detail\":\"draining\"}",
		 "stats", 1, "unavailable: draining"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct canned a = {cases[i].status, cases[i].body};
		struct fake f;
		struct run r;
		char what[128];

		snprintf(what, sizeof(what), "%s answered %d %s", cases[i].cmd,
			 cases[i].status, cases[i].body);
		fake_start(&f, &a, 1);
		CTL(&r, "--admin", f.url, cases[i].cmd);
		expect_status(&r, cases[i].want, what);
		cr_expect(contains(r.err, cases[i].says),
			  "%s: stderr lacks \"%s\": %s", what, cases[i].says,
			  r.err);
		run_free(&r);
		fake_stop(&f);
	}
}

Test(ctl, json_prints_the_servers_document_unchanged)
{
	static const struct canned ok = {200, "{\"status\" :  \"ok\", "
					      "\"extra\": [1, 2.50]}"};
	static const struct canned not_ready = {503, "{ \"ready\": false,"
						     "\"state\":\"draining\"}"};
	static const struct canned missing = {404, "{\"error\":\"not_found\","
						   "\"detail\":\"gone\"}"};
	struct fake f;
	struct run r;

	fake_start(&f, &ok, 1);
	CTL(&r, "--admin", f.url, "health", "--json");
	expect_status(&r, 0, "--json health");
	cr_expect_str_eq(r.out, "{\"status\" :  \"ok\", \"extra\": [1, 2.50]}"
				"\n");
	run_free(&r);
	fake_stop(&f);

	fake_start(&f, &not_ready, 1);
	CTL(&r, "--admin", f.url, "--json", "ready");
	expect_status(&r, 5, "--json ready, 503");
	cr_expect_str_eq(r.out, "{ \"ready\": false,\"state\":\"draining\"}\n");
	run_free(&r);
	fake_stop(&f);

	/* An error is one document too: the server's, with the status. */
	fake_start(&f, &missing, 1);
	CTL(&r, "--admin", f.url, "--json", "show",
	    "0123456789ABCDEF0123456789abcdef");
	expect_status(&r, 1, "--json show, 404");
	cr_expect_str_eq(r.out, "{\"error\":\"not_found\",\"detail\":\"gone\"}"
				"\n");
	cr_expect(contains(fake_head(&f, 0), "GET /admin/keys/"
			   "0123456789abcdef0123456789abcdef HTTP/1.1"),
		  "request: %s", fake_head(&f, 0));
	run_free(&r);
	fake_stop(&f);
}

Test(ctl, query_values_are_percent_encoded)
{
	static const struct canned a[] = {
		{200, "{\"keys\":[],\"next_cursor\":null}"},
		{200, "{\"route\":null,\"cacheable\":false,\"reason\":\"no "
		      "route\",\"key\":\"GET /x\",\"hash\":"
		      "\"0123456789abcdef0123456789abcdef\",\"ttl\":0,"
		      "\"entry\":null}"},
		{200, "{\"purged\":0,\"tiers\":{},\"fleet\":false}"},
		{200, "{\"flushed\":{\"disk\":0},\"fleet\":false}"},
	};
	struct fake f;
	struct run r;

	fake_start(&f, a, 4);
	CTL(&r, "--admin", f.url, "keys", "--prefix", "/a b&c=d#e%",
	    "--tag", "x+y/z", "--route", "r?s", "--tier", "disk", "--limit",
	    "7");
	expect_status(&r, 0, "keys with odd filters");
	run_free(&r);
	CTL(&r, "--admin", f.url, "explain", "http://example.com:80/x?a=1&b",
	    "--method", "POST", "-H", "Accept-Language:  de, en",
	    "--header", "X-Y:z");
	expect_status(&r, 0, "explain with headers");
	cr_expect(contains(r.out, "no route"), "explain: %s", r.out);
	run_free(&r);
	CTL(&r, "--admin", f.url, "purge", "/p q", "--dry-run");
	expect_status(&r, 0, "purge a path with a space");
	run_free(&r);
	CTL(&r, "--admin", f.url, "flush", "--tier", "disk", "--yes");
	expect_status(&r, 0, "flush --tier disk");
	run_free(&r);

	cr_assert_eq(fake_count(&f), 4);
	cr_expect(contains(fake_head(&f, 0),
			   "GET /admin/keys?prefix=%2Fa%20b%26c%3Dd%23e%25"
			   "&tag=x%2By%2Fz&tier=disk&route=r%3Fs&limit=7 "),
		  "keys request: %s", fake_head(&f, 0));
	cr_expect(contains(fake_head(&f, 1),
			   "GET /admin/explain?method=POST&url=%2Fx%3Fa%3D1"
			   "%26b&h=Accept-Language%3Ade%2C%20en&h=X-Y%3Az "),
		  "explain request: %s", fake_head(&f, 1));
	cr_expect(contains(fake_head(&f, 2),
			   "DELETE /admin/keys?path=%2Fp%20q&dry_run=1 "),
		  "purge request: %s", fake_head(&f, 2));
	cr_expect(contains(fake_head(&f, 3), "POST /admin/flush?tier=disk "),
		  "flush request: %s", fake_head(&f, 3));
	fake_stop(&f);
}

Test(ctl, token_is_sent_but_never_printed)
{
	static const struct canned refused = {403, "{\"error\":\"forbidden\","
						    "\"detail\":\"bad token\"}"};
	const char *const env[] = {"STRATA_ADMIN_TOKEN=env-t0ken", NULL};
	struct fake f;
	struct run r;

	fake_start(&f, &refused, 1);
	CTL(&r, "--admin", f.url, "--token", "s3cret-arg", "keys");
	expect_status(&r, 4, "keys with a refused --token");
	cr_expect(!contains(r.out, "s3cret") && !contains(r.err, "s3cret"),
		  "the token was printed:\n%s\n%s", r.out, r.err);
	cr_expect(contains(r.err, "refused"), "stderr: %s", r.err);
	run_free(&r);

	CTL_ENV(&r, env, "--admin", f.url, "--json", "stats");
	expect_status(&r, 4, "stats with a refused STRATA_ADMIN_TOKEN");
	cr_expect(!contains(r.out, "t0ken") && !contains(r.err, "t0ken"),
		  "the token was printed:\n%s\n%s", r.out, r.err);
	run_free(&r);

	CTL_ENV(&r, env, "--admin", f.url, "--token", "flag-wins", "stats");
	run_free(&r);
	CTL(&r, "--admin", f.url, "stats");
	run_free(&r);

	cr_assert_eq(fake_count(&f), 4);
	cr_expect(contains(fake_head(&f, 0),
			   "\r\nAuthorization: Bearer s3cret-arg\r\n"),
		  "--token: %s", fake_head(&f, 0));
	cr_expect(contains(fake_head(&f, 1),
			   "\r\nAuthorization: Bearer env-t0ken\r\n"),
		  "STRATA_ADMIN_TOKEN: %s", fake_head(&f, 1));
	cr_expect(contains(fake_head(&f, 2),
			   "\r\nAuthorization: Bearer flag-wins\r\n"),
		  "--token beats the variable: %s", fake_head(&f, 2));
	cr_expect(!contains(fake_head(&f, 3), "Authorization"),
		  "no token, yet: %s", fake_head(&f, 3));
	fake_stop(&f);
}

Test(ctl, admin_url_comes_from_the_environment)
{
	static const struct canned ok = {200, "{\"status\":\"ok\"}"};
	char env_url[96];
	const char *const env[] = {env_url, NULL};
	struct fake f;
	struct run r;

	fake_start(&f, &ok, 1);
	snprintf(env_url, sizeof(env_url), "STRATA_ADMIN_URL=%s/", f.url);
	CTL_ENV(&r, env, "health");
	expect_status(&r, 0, "health with STRATA_ADMIN_URL");
	cr_expect_str_eq(r.out, "ok\n");
	cr_expect(contains(fake_head(&f, 0), "GET /health HTTP/1.1"),
		  "request: %s", fake_head(&f, 0));
	run_free(&r);
	fake_stop(&f);
}

Test(ctl, keys_all_follows_cursors_into_one_document)
{
	static const struct canned pages[] = {
		{200, "{\"keys\":[{\"key\":\"GET /a\",\"hash\":"
		      "\"0123456789abcdef0123456789abcdef\"}],"
		      "\"next_cursor\":\"c 1\"}"},
		{200, "{\"keys\":[{\"key\":\"GET /b\",\"hash\":"
		      "\"fedcba9876543210fedcba9876543210\"}],"
		      "\"next_cursor\":null}"},
	};
	struct fake f;
	struct run r;
	json_t *doc;

	fake_start(&f, pages, 2);
	CTL(&r, "--admin", f.url, "--json", "keys", "--all", "--limit", "1");
	expect_status(&r, 0, "keys --all");
	doc = parse_json(r.out, "keys --all --json");
	cr_expect_eq(json_array_size(json_object_get(doc, "keys")), 2);
	cr_expect(json_is_null(json_object_get(doc, "next_cursor")));
	cr_expect_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(doc, "keys"),
						1), "key")), "GET /b");
	cr_expect(contains(fake_head(&f, 0), "GET /admin/keys?limit=1 "),
		  "page 1: %s", fake_head(&f, 0));
	cr_expect(contains(fake_head(&f, 1),
			   "GET /admin/keys?limit=1&cursor=c%201 "),
		  "page 2: %s", fake_head(&f, 1));
	json_decref(doc);
	run_free(&r);
	fake_stop(&f);

	/* Without --all, one page, and a word on stderr about the rest. */
	fake_start(&f, pages, 2);
	CTL(&r, "--admin", f.url, "keys");
	expect_status(&r, 0, "keys, first page");
	cr_expect(contains(r.out, "GET /a") && !contains(r.out, "GET /b"),
		  "stdout: %s", r.out);
	cr_expect(contains(r.err, "--cursor c 1"), "stderr: %s", r.err);
	cr_expect_eq(fake_count(&f), 1);
	run_free(&r);
	fake_stop(&f);
}

Test(ctl, server_text_cannot_reach_the_terminal_raw)
{
	static const struct canned evil = {200,
		"{\"keys\":[{\"key\":\"GET /a\\u001b[31mred\\nVary: x\","
		"\"hash\":\"0123456789abcdef0123456789abcdef\","
		"\"route\":\"r\\u0007\"}],\"next_cursor\":null}"};
	struct fake f;
	struct run r;

	fake_start(&f, &evil, 1);
	CTL(&r, "--admin", f.url, "keys");
	expect_status(&r, 0, "keys with control characters");
	cr_expect(!contains(r.out, "\x1b") && !contains(r.out, "\a"),
		  "a control character reached stdout: %s", r.out);
	cr_expect(contains(r.out, "GET /a\\x1b[31mred\\nVary: x"),
		  "stdout: %s", r.out);
	run_free(&r);
	fake_stop(&f);
}

/* --- against the real strata ---------------------------------------------- */

#define CS_STORED "strata; fwd=miss; stored"

static struct origin *origin;
static struct proc *strata;
static char admin_url[64];

static void admin_setup(void)
{
	origin = origin_start();
	cr_assert_not_null(origin, "the test origin did not start");
}

static void admin_teardown(void)
{
	proc_stop(&strata);
	origin_stop(&origin);
}

TestSuite(ctl_admin, .init = admin_setup, .fini = admin_teardown,
	  .timeout = TIMEOUT_S);

/*
 * Start strata in front of the origin with the routes every test uses and
 * the extra arguments given (NULL-terminated), and wait until its admin
 * listener accepts connections too.
 */
static void start_strata_args(const char *const *extra)
{
	const char *args[MAX_ARGS];
	char origin_base[64];
	size_t n = 0;
	uint64_t deadline;

	args[n++] = "--upstream";
	args[n++] = origin_url(origin, "", origin_base, sizeof(origin_base));
	args[n++] = "--route";
	args[n++] = "/doc/*=60s";
	args[n++] = "--route";
	args[n++] = "/echo/*=60s";
	args[n++] = "--route";
	args[n++] = "/header=60s";
	for (size_t i = 0; extra != NULL && extra[i] != NULL &&
			   n < MAX_ARGS - 1; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	strata = proc_start_args(args);
	cr_assert_not_null(strata, "strata did not start (output above)");
	proc_admin_url(strata, "", admin_url, sizeof(admin_url));
	deadline = now_ms() + (uint64_t)proc_scaled_ms(5000);
	while (client_connect_refused(proc_admin_port(strata))) {
		cr_assert((int64_t)(deadline - now_ms()) > 0,
			  "the admin listener on port %u never accepted",
			  proc_admin_port(strata));
		usleep(20 * 1000);
	}
}

#define start_strata(...) \
	start_strata_args((const char *const[]){__VA_ARGS__})

/* strata-ctl --admin <this strata's admin API> ARGS... */
#define ADMIN(r, ...) CTL((r), "--admin", admin_url, __VA_ARGS__)

/* GET `path` through the proxy; returns its Cache-Status (static). */
static const char *get(const char *path)
{
	static char cs[128];
	struct client_response resp;
	char url[512];
	long status;

	status = client_request("GET", proc_url(strata, path, url,
						sizeof(url)), NULL, NULL, 0,
				&resp);
	cr_assert_eq(status, 200, "GET %s: %ld %s", path, status,
		     resp.error);
	snprintf(cs, sizeof(cs), "%s",
		 client_header(&resp, "Cache-Status") ?: "(absent)");
	client_response_free(&resp);
	return cs;
}

static void expect_stored(const char *path)
{
	const char *cs = get(path);

	cr_expect_str_eq(cs, CS_STORED, "GET %s: Cache-Status \"%s\"", path,
			 cs);
}

static void expect_miss(const char *path)
{
	const char *cs = get(path);

	cr_expect(strncmp(cs, "strata; fwd=miss", 16) == 0,
		  "GET %s: Cache-Status \"%s\", expected a miss", path, cs);
}

static void expect_hit(const char *path)
{
	const char *cs = get(path);

	cr_expect(strncmp(cs, "strata; hit", 11) == 0,
		  "GET %s: Cache-Status \"%s\", expected a hit", path, cs);
}

/* The `keys` array of `strata-ctl --json keys ARGS`. */
static json_t *keys_json(const char *const *args)
{
	const char *argv[MAX_ARGS] = {"--admin", admin_url, "--json", "keys"};
	size_t n = 4;
	struct run r;
	json_t *doc, *keys;

	for (size_t i = 0; args != NULL && args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	run_ctl(&r, NULL, argv);
	expect_status(&r, 0, "--json keys");
	doc = parse_json(r.out, "--json keys");
	keys = json_incref(json_object_get(doc, "keys"));
	cr_assert(json_is_array(keys), "no keys array: %s", r.out);
	json_decref(doc);
	run_free(&r);
	return keys;
}

/* The hash of the entry with key text `key` in `keys`, or NULL. */
static const char *hash_of(const json_t *keys, const char *key)
{
	const json_t *e;
	size_t i;

	json_array_foreach(keys, i, e) {
		const char *k = json_string_value(json_object_get(e, "key"));

		if (k != NULL && strcmp(k, key) == 0)
			return json_string_value(json_object_get(e, "hash"));
	}
	return NULL;
}

Test(ctl_admin, health_and_ready)
{
	struct run r;
	json_t *doc;

	start_strata(NULL);
	ADMIN(&r, "health");
	expect_status(&r, 0, "health");
	cr_expect_str_eq(r.out, "ok\n");
	run_free(&r);

	ADMIN(&r, "ready");
	expect_status(&r, 0, "ready");
	cr_expect(contains(r.out, "ready") && contains(r.out, "memory up"),
		  "ready: %s", r.out);
	run_free(&r);

	ADMIN(&r, "--json", "ready");
	expect_status(&r, 0, "--json ready");
	doc = parse_json(r.out, "--json ready");
	cr_expect(json_is_true(json_object_get(doc, "ready")));
	cr_expect_str_eq(json_string_value(json_object_get(doc, "state")) ?:
			 "(none)", "ready");
	cr_expect_str_eq(json_string_value(json_object_get(
				 json_object_get(doc, "tiers"), "memory")) ?:
			 "(none)", "up");
	cr_expect_str_eq(json_string_value(json_object_get(
				 json_object_get(doc, "tiers"), "redis")) ?:
			 "(none)", "off");
	json_decref(doc);
	run_free(&r);
}

Test(ctl_admin, keys_lists_cached_entries)
{
	/* The canonical key text: every line ends with LF. */
	static const char *const want[] = {"GET /doc/a\n", "GET /doc/b\n",
					   "GET /doc/c\n"};
	struct run r;
	json_t *keys;
	const json_t *e;
	size_t i;

	start_strata(NULL);
	expect_stored("/doc/b");
	expect_stored("/doc/c");
	expect_stored("/doc/a");
	expect_stored("/echo/x");

	ADMIN(&r, "keys");
	expect_status(&r, 0, "keys");
	cr_expect(contains(r.out, "HASH") && contains(r.out, "KEY"),
		  "no table heading: %s", r.out);
	/* One row per entry, the key's final LF not shown. */
	for (const char *const *k = (const char *const[]){
		     "  GET /doc/a\n", "  GET /doc/b\n", "  GET /doc/c\n",
		     "  GET /echo/x\n", NULL};
	     *k != NULL; k++)
		cr_expect(contains(r.out, *k), "keys lacks \"%s\": %s", *k,
			  r.out);
	run_free(&r);

	keys = keys_json((const char *const[]){"--prefix", "/doc/", NULL});
	cr_assert_eq(json_array_size(keys), 3, "--prefix /doc/: %zu keys",
		     json_array_size(keys));
	json_array_foreach(keys, i, e) {
		const char *hash = json_string_value(json_object_get(e,
								     "hash"));
		char *tiers = json_dumps(json_object_get(e, "tiers"), 0);

		/* Key-text order. */
		cr_expect_str_eq(json_string_value(json_object_get(e, "key"))
				 ?: "(none)", want[i]);
		cr_expect(is_hash(hash), "hash \"%s\"", hash ?: "(none)");
		cr_expect_str_eq(json_string_value(json_object_get(e, "route"))
				 ?: "(none)", "/doc/*");
		cr_expect_eq(json_integer_value(json_object_get(e, "status")),
			     200);
		cr_expect(contains(tiers, "\"memory\""), "tiers %s", tiers);
		free(tiers);
	}
	json_decref(keys);

	keys = keys_json((const char *const[]){"--path", "/doc/b", NULL});
	cr_expect_eq(json_array_size(keys), 1);
	cr_expect_not_null(hash_of(keys, "GET /doc/b\n"));
	json_decref(keys);

	keys = keys_json((const char *const[]){"--limit", "2", "--all", NULL});
	cr_expect_eq(json_array_size(keys), 4, "--all --limit 2: %zu keys",
		     json_array_size(keys));
	json_decref(keys);

	ADMIN(&r, "keys", "--limit", "1");
	expect_status(&r, 0, "keys --limit 1");
	cr_expect(contains(r.out, "GET /doc/a") && !contains(r.out, "/doc/b"),
		  "keys --limit 1: %s", r.out);
	cr_expect(contains(r.err, "more entries follow"), "stderr: %s",
		  r.err);
	run_free(&r);
}

Test(ctl_admin, show_by_path_and_by_hash)
{
	struct run r;
	json_t *keys, *doc;
	const json_t *h;
	char hash[40];
	bool content_type = false;
	size_t i;

	start_strata(NULL);
	expect_stored("/doc/a");
	keys = keys_json(NULL);
	cr_assert(is_hash(hash_of(keys, "GET /doc/a\n")));
	snprintf(hash, sizeof(hash), "%s", hash_of(keys, "GET /doc/a\n"));
	json_decref(keys);

	ADMIN(&r, "show", "/doc/a");
	expect_status(&r, 0, "show /doc/a");
	cr_expect(contains(r.out, "key        GET /doc/a\nhash       ") &&
			  contains(r.out, hash),
		  "show /doc/a: %s", r.out);
	cr_expect(contains(r.out, "Content-Type: application/json"),
		  "show /doc/a: %s", r.out);
	run_free(&r);

	ADMIN(&r, "show", hash, "--body");
	expect_status(&r, 0, "show HASH --body");
	cr_expect(contains(r.out, "{\"target\":\"/doc/a\"}"), "show: %s",
		  r.out);
	run_free(&r);

	ADMIN(&r, "--json", "show", hash, "--body");
	expect_status(&r, 0, "--json show HASH --body");
	doc = parse_json(r.out, "--json show");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "key")) ?:
			 "(none)", "GET /doc/a\n");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "body")) ?:
			 "(none)", "{\"target\":\"/doc/a\"}\n");
	cr_expect_str_eq(json_string_value(json_object_get(
				 doc, "body_encoding")) ?: "(none)", "text");
	json_array_foreach(json_object_get(doc, "headers"), i, h) {
		const char *n = json_string_value(json_array_get(h, 0));
		const char *v = json_string_value(json_array_get(h, 1));

		if (n != NULL && v != NULL &&
		    strcasecmp(n, "Content-Type") == 0 &&
		    strcmp(v, "application/json") == 0)
			content_type = true;
	}
	cr_expect(content_type, "no Content-Type in: %s", r.out);
	json_decref(doc);
	run_free(&r);

	ADMIN(&r, "show", "/doc/never-fetched");
	expect_status(&r, 1, "show of a path not cached");
	run_free(&r);
	ADMIN(&r, "show", "00000000000000000000000000000000");
	expect_status(&r, 1, "show of an unknown hash");
	cr_expect(contains(r.err, "not_found"), "stderr: %s", r.err);
	run_free(&r);
}

Test(ctl_admin, purge_path_then_the_next_request_misses)
{
	struct run r;

	start_strata(NULL);
	expect_stored("/doc/a");
	expect_stored("/doc/b");
	expect_hit("/doc/a");

	ADMIN(&r, "purge", "/doc/a");
	expect_status(&r, 0, "purge /doc/a");
	cr_expect(contains(r.out, "purged 1 entry"), "purge: %s", r.out);
	run_free(&r);

	expect_miss("/doc/a");
	expect_hit("/doc/b");
	cr_expect_eq(origin_count_prefix(origin, "/doc/a"), 2,
		     "the origin saw /doc/a %zu times",
		     origin_count_prefix(origin, "/doc/a"));

	/* Purging what is not there is not an error. */
	ADMIN(&r, "purge", "/doc/never-fetched");
	expect_status(&r, 0, "purge of a path not cached");
	cr_expect(contains(r.out, "purged 0 entries"), "purge: %s", r.out);
	run_free(&r);
}

Test(ctl_admin, purge_by_prefix_hash_and_tag)
{
	struct run r;
	json_t *doc, *keys;
	const char *t1 = "/header?name=Surrogate-Key&value=t1";
	const char *t2 = "/header?name=Surrogate-Key&value=t2";
	char hash[40];

	start_strata(NULL);
	expect_stored("/doc/a");
	expect_stored("/doc/b");
	expect_stored("/echo/x");
	expect_stored("/echo/y");
	expect_stored(t1);
	expect_stored(t2);

	ADMIN(&r, "--json", "purge", "--prefix", "/doc/");
	expect_status(&r, 0, "purge --prefix /doc/");
	doc = parse_json(r.out, "--json purge --prefix");
	cr_expect_eq(json_integer_value(json_object_get(doc, "purged")), 2,
		     "purge --prefix: %s", r.out);
	cr_expect_eq(json_integer_value(json_object_get(
			     json_object_get(doc, "tiers"), "memory")), 2,
		     "purge --prefix: %s", r.out);
	json_decref(doc);
	run_free(&r);
	expect_miss("/doc/a");
	expect_miss("/doc/b");
	expect_hit("/echo/x");

	keys = keys_json((const char *const[]){"--path", "/echo/y", NULL});
	cr_assert(is_hash(hash_of(keys, "GET /echo/y\n")));
	snprintf(hash, sizeof(hash), "%s", hash_of(keys, "GET /echo/y\n"));
	json_decref(keys);
	ADMIN(&r, "purge", "--hash", hash);
	expect_status(&r, 0, "purge --hash");
	run_free(&r);
	expect_miss("/echo/y");
	ADMIN(&r, "purge", "--hash", "00000000000000000000000000000000");
	expect_status(&r, 0, "purge --hash of an unknown hash");
	cr_expect(contains(r.out, "purged 0 entries"), "purge: %s", r.out);
	run_free(&r);

	keys = keys_json((const char *const[]){"--tag", "t1", NULL});
	cr_expect_eq(json_array_size(keys), 1, "keys --tag t1: %zu",
		     json_array_size(keys));
	json_decref(keys);
	ADMIN(&r, "purge", "--tag", "t1");
	expect_status(&r, 0, "purge --tag t1");
	cr_expect(contains(r.out, "purged 1 entry"), "purge --tag: %s",
		  r.out);
	run_free(&r);
	expect_miss(t1);
	expect_hit(t2);
}

Test(ctl_admin, dry_run_leaves_the_entries)
{
	struct run r;
	json_t *doc;

	start_strata(NULL);
	expect_stored("/doc/a");
	expect_stored("/doc/b");

	ADMIN(&r, "--json", "purge", "--prefix", "/doc/", "--dry-run");
	expect_status(&r, 0, "purge --dry-run");
	doc = parse_json(r.out, "--json purge --dry-run");
	cr_expect(json_is_true(json_object_get(doc, "dry_run")), "%s", r.out);
	cr_expect_eq(json_integer_value(json_object_get(doc, "purged")), 2,
		     "%s", r.out);
	cr_expect_eq(json_array_size(json_object_get(doc, "entries")), 2,
		     "%s", r.out);
	json_decref(doc);
	run_free(&r);

	ADMIN(&r, "purge", "/doc/a", "--dry-run");
	expect_status(&r, 0, "purge PATH --dry-run");
	cr_expect(contains(r.out, "would purge 1 entry") &&
			  contains(r.out, "GET /doc/a"),
		  "dry run: %s", r.out);
	run_free(&r);

	expect_hit("/doc/a");
	expect_hit("/doc/b");
	cr_expect_eq(origin_count(origin), 2);
}

Test(ctl_admin, flush_needs_yes_and_empties_the_cache)
{
	struct run r;
	json_t *doc;

	start_strata(NULL);
	expect_stored("/doc/a");
	expect_stored("/echo/x");

	ADMIN(&r, "flush");
	expect_status(&r, 2, "flush without --yes");
	run_free(&r);
	expect_hit("/doc/a");

	ADMIN(&r, "--json", "flush", "--yes");
	expect_status(&r, 0, "flush --yes");
	doc = parse_json(r.out, "--json flush");
	cr_expect_eq(json_integer_value(json_object_get(
			     json_object_get(doc, "flushed"), "memory")), 2,
		     "flush: %s", r.out);
	json_decref(doc);
	run_free(&r);
	expect_miss("/doc/a");
	expect_miss("/echo/x");

	ADMIN(&r, "flush", "--tier", "memory", "--yes");
	expect_status(&r, 0, "flush --tier memory --yes");
	cr_expect(contains(r.out, "flushed"), "flush: %s", r.out);
	run_free(&r);
}

Test(ctl_admin, stats_show_the_tiers_and_routes)
{
	struct run r;
	json_t *doc;
	const json_t *mem;

	start_strata(NULL);
	expect_stored("/doc/a");
	expect_hit("/doc/a");

	ADMIN(&r, "stats");
	expect_status(&r, 0, "stats");
	cr_expect(contains(r.out, "TIER") && contains(r.out, "memory") &&
			  contains(r.out, "HIT RATIO") &&
			  contains(r.out, "/doc/*") &&
			  contains(r.out, "upstream:"),
		  "stats: %s", r.out);
	run_free(&r);

	ADMIN(&r, "--json", "stats");
	expect_status(&r, 0, "--json stats");
	doc = parse_json(r.out, "--json stats");
	mem = json_object_get(json_object_get(doc, "tiers"), "memory");
	cr_expect_geq(json_integer_value(json_object_get(mem, "hits")), 1,
		      "stats: %s", r.out);
	cr_expect_eq(json_integer_value(json_object_get(mem, "entries")), 1,
		     "stats: %s", r.out);
	cr_expect(json_is_true(json_object_get(mem, "up")), "%s", r.out);
	cr_expect_geq(json_integer_value(json_object_get(
			      json_object_get(doc, "upstream"), "requests")),
		      1, "stats: %s", r.out);
	json_decref(doc);
	run_free(&r);
}

Test(ctl_admin, explain_a_url)
{
	struct run r;
	json_t *doc;
	const char *key;

	start_strata(NULL);
	ADMIN(&r, "--json", "explain", "/doc/a?x=1");
	expect_status(&r, 0, "explain before caching");
	doc = parse_json(r.out, "--json explain");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "route")) ?:
			 "(none)", "/doc/*");
	cr_expect(json_is_true(json_object_get(doc, "cacheable")));
	key = json_string_value(json_object_get(doc, "key"));
	cr_expect(key != NULL && strncmp(key, "GET /doc/a?x=1", 14) == 0,
		  "key \"%s\"", key ?: "(none)");
	cr_expect(is_hash(json_string_value(json_object_get(doc, "hash"))));
	cr_expect(json_is_null(json_object_get(doc, "entry")), "%s", r.out);
	json_decref(doc);
	run_free(&r);

	expect_stored("/doc/a?x=1");
	ADMIN(&r, "explain", "/doc/a?x=1");
	expect_status(&r, 0, "explain after caching");
	cr_expect(contains(r.out, "cacheable  yes") &&
			  contains(r.out, "entry      memory"),
		  "explain: %s", r.out);
	run_free(&r);

	ADMIN(&r, "--json", "explain", "/nowhere", "-H", "Accept-Language: de");
	expect_status(&r, 0, "explain of an unrouted path");
	doc = parse_json(r.out, "--json explain /nowhere");
	cr_expect(json_is_null(json_object_get(doc, "route")), "%s", r.out);
	cr_expect(json_is_false(json_object_get(doc, "cacheable")), "%s",
		  r.out);
	cr_expect_not_null(json_string_value(json_object_get(doc, "reason")),
			   "%s", r.out);
	json_decref(doc);
	run_free(&r);
}

Test(ctl_admin, token_is_required_when_the_server_has_one)
{
	const char *const good_env[] = {"STRATA_ADMIN_TOKEN=secret", NULL};
	const char *const bad_env[] = {"STRATA_ADMIN_TOKEN=wrong", NULL};
	struct run r;

	start_strata("--set", "admin.token=secret", NULL);
	expect_stored("/doc/a");

	ADMIN(&r, "keys");
	expect_status(&r, 4, "keys without a token");
	cr_expect(contains(r.err, "401"), "stderr: %s", r.err);
	run_free(&r);

	ADMIN(&r, "--token", "wrong", "keys");
	expect_status(&r, 4, "keys with the wrong token");
	cr_expect(contains(r.err, "403"), "stderr: %s", r.err);
	cr_expect(!contains(r.err, "wrong") && !contains(r.out, "wrong"),
		  "the token was printed: %s%s", r.out, r.err);
	run_free(&r);

	CTL_ENV(&r, bad_env, "--admin", admin_url, "purge", "/doc/a");
	expect_status(&r, 4, "purge with the wrong STRATA_ADMIN_TOKEN");
	run_free(&r);
	expect_hit("/doc/a");

	ADMIN(&r, "--token", "secret", "keys");
	expect_status(&r, 0, "keys with the token");
	cr_expect(contains(r.out, "GET /doc/a"), "keys: %s", r.out);
	cr_expect(!contains(r.out, "secret") && !contains(r.err, "secret"),
		  "the token was printed: %s%s", r.out, r.err);
	run_free(&r);

	CTL_ENV(&r, good_env, "--admin", admin_url, "stats");
	expect_status(&r, 0, "stats with STRATA_ADMIN_TOKEN");
	run_free(&r);

	/* /health and /ready need no token. */
	ADMIN(&r, "health");
	expect_status(&r, 0, "health without a token");
	run_free(&r);
	ADMIN(&r, "ready");
	expect_status(&r, 0, "ready without a token");
	run_free(&r);
}

Test(ctl_admin, reload_reports_the_new_generation)
{
	struct run r;
	json_t *doc;

	start_strata(NULL);
	expect_stored("/doc/a");

	ADMIN(&r, "reload");
	expect_status(&r, 0, "reload");
	cr_expect(contains(r.out, "reloaded: generation 2") &&
			  contains(r.out, "applied: none") &&
			  contains(r.out, "needing a restart: none"),
		  "reload: %s", r.out);
	run_free(&r);

	ADMIN(&r, "--json", "reload");
	expect_status(&r, 0, "--json reload");
	doc = parse_json(r.out, "--json reload");
	cr_expect_eq(json_integer_value(json_object_get(doc, "generation")), 3,
		     "%s", r.out);
	json_decref(doc);
	run_free(&r);
	/* The flags were applied again: the route still caches. */
	expect_hit("/doc/a");
}
