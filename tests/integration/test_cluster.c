/*
 * test_cluster.c: the deployment topology of docs/operations.md (and of
 * contrib/compose/docker-compose.yml) on one machine, without Docker.
 *
 *   client ─> nginx (contrib/nginx/strata-upstream.conf)
 *               ├─> strata #0 ─┐
 *               ├─> strata #1 ─┼─> the demo app (contrib/demo/slow_app.py)
 *               └─> strata #2 ─┘
 *                    └── one redis-server shared by the three
 *
 * Every process is a real one on loopback ports picked at start: nginx
 * from Debian's package, three `strata` processes with their own disk
 * directories and configuration files, a redis-server, the demo app under
 * python3.  nginx's configuration is contrib/nginx/strata-upstream.conf
 * itself, with only its addresses replaced by the ports picked here.
 *
 * Checked: a response fetched through nginx is a hit on every replica
 * afterwards and the application computed it once; a purge through one
 * replica's admin API reaches all three; killing a replica loses no
 * request sent through nginx; a reload changes a TTL on a live replica.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../helpers/client.h"
#include "../helpers/proc.h"
#include "../helpers/redis_server.h"

#define REPLICAS 3
#define NGINX_BIN "/usr/sbin/nginx"

static struct redis_server *redis;
static struct proc *app;
static struct proc *replica[REPLICAS];
static struct proc *nginx;
static char tmpdir[64];
static char conf[REPLICAS][96];

/* The source tree (contrib/ lives there; tests may run out of tree). */
static const char *srcdir(void)
{
	const char *d = getenv("STRATA_SRCDIR");

	return d != NULL && d[0] != '\0' ? d : ".";
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(getdelim(&text, &len, '\0', f) > 0, true, "%s", path);
	fclose(f);
	return text;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fputs(text, f) >= 0, true);
	cr_assert_eq(fclose(f), 0);
}

/* Replace every `from` in *text by `to` (a new string replaces *text). */
static void replace_all(char **text, const char *from, const char *to)
{
	size_t n = 0, fl = strlen(from), tl = strlen(to);
	char *out, *o;
	const char *p;

	for (p = *text; (p = strstr(p, from)) != NULL; p += fl)
		n++;
	cr_assert_gt(n, 0, "\"%s\" is not in the file", from);
	out = malloc(strlen(*text) + n * tl + 1);
	cr_assert_not_null(out);
	o = out;
	for (p = *text;;) {
		const char *q = strstr(p, from);

		if (q == NULL) {
			strcpy(o, p);
			break;
		}
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		memcpy(o, to, tl);
		o += tl;
		p = q + fl;
	}
	free(*text);
	*text = out;
}

/* A replica's configuration file: the routes, with /slow's `ttl`. */
static void write_replica_conf(unsigned i, const char *slow_ttl)
{
	char text[1024], redis_url[128];

	redis_server_url(redis, false, NULL, redis_url, sizeof(redis_url));
	snprintf(text, sizeof(text),
		 "log:\n  level: warn\n"
		 "upstream:\n  url: http://127.0.0.1:%u\n"
		 "cache:\n  redis:\n    url: %s\n"
		 "routes:\n"
		 "  - path: /slow\n    ttl: %s\n"
		 "  - path: /api/users/*\n    ttl: 60s\n"
		 "    vary: [Accept-Language]\n",
		 proc_port(app), redis_url, slow_ttl);
	write_file(conf[i], text);
}

static void start_app(void)
{
	char script[512];
	const char *args[] = {script, "--port", "@PORT@", NULL};
	const char *env[] = {"DEMO_DELAY=0.4", NULL};
	struct proc_spec spec = {.bin = "/usr/bin/python3", .args = args,
				 .env = env, .no_listen_flags = true,
				 .disk_path = ""};

	snprintf(script, sizeof(script), "%s/contrib/demo/slow_app.py",
		 srcdir());
	app = proc_start(&spec);
	cr_assert_not_null(app, "the demo app did not start (output above)");
}

static void start_replica(unsigned i)
{
	const char *args[] = {"-c", conf[i], NULL};
	struct proc_spec spec = {.args = args};

	replica[i] = proc_start(&spec);
	cr_assert_not_null(replica[i], "strata #%u did not start", i);
}

/* nginx with contrib/nginx/strata-upstream.conf, its three addresses and
 * its listen port replaced by ours, in a minimal nginx.conf. */
static void start_nginx(void)
{
	char path[512], main_conf[2048], from[32], to[32];
	char *text;
	unsigned port = proc_free_port();
	const char *args[] = {"-p", tmpdir, "-c", main_conf + 1024, "-e",
			      "stderr", NULL};
	struct proc_spec spec = {.bin = NGINX_BIN, .args = args,
				 .no_listen_flags = true, .disk_path = "",
				 .port = port};

	cr_assert_eq(access(NGINX_BIN, X_OK), 0,
		     NGINX_BIN " is missing: apt-get install nginx "
		     "(contrib/bootstrap.sh installs it)");
	snprintf(path, sizeof(path), "%s/contrib/nginx/strata-upstream.conf",
		 srcdir());
	text = read_file(path);
	for (unsigned i = 0; i < REPLICAS; i++) {
		snprintf(from, sizeof(from), "127.0.0.1:%u", 8000 + i);
		snprintf(to, sizeof(to), "127.0.0.1:%u", proc_port(replica[i]));
		replace_all(&text, from, to);
	}
	snprintf(to, sizeof(to), "listen 127.0.0.1:%u;", port);
	replace_all(&text, "listen 80;", to);
	replace_all(&text, "listen [::]:80;", "");
	snprintf(path, sizeof(path), "%s/strata-upstream.conf", tmpdir);
	write_file(path, text);
	free(text);
	/* The paths nginx writes to, all under tmpdir; one worker keeps
	 * the test light. */
	snprintf(main_conf, 1024,
		 "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n"
		 "events { worker_connections 512; }\n"
		 "http {\n  access_log off;\n"
		 "  client_body_temp_path %s/body;\n"
		 "  proxy_temp_path %s/proxy;\n"
		 "  fastcgi_temp_path %s/fastcgi;\n"
		 "  uwsgi_temp_path %s/uwsgi;\n"
		 "  scgi_temp_path %s/scgi;\n"
		 "  include %s/strata-upstream.conf;\n}\n",
		 tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
	snprintf(main_conf + 1024, 1024, "%s/nginx.conf", tmpdir);
	write_file(main_conf + 1024, main_conf);
	nginx = proc_start(&spec);
	cr_assert_not_null(nginx, "nginx did not start (output above)");
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/strata-cluster-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	redis = redis_server_start(NULL);
	cr_assert_not_null(redis, "redis-server did not start");
	start_app();
	for (unsigned i = 0; i < REPLICAS; i++) {
		snprintf(conf[i], sizeof(conf[i]), "%s/strata-%u.yaml", tmpdir,
			 i);
		write_replica_conf(i, "60s");
		start_replica(i);
	}
	start_nginx();
}

static void teardown(void)
{
	char cmd[128];

	proc_stop(&nginx);
	for (unsigned i = 0; i < REPLICAS; i++)
		proc_stop(&replica[i]);
	proc_stop(&app);
	redis_server_stop(&redis);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

struct answer {
	long status;
	char error[256];         /* curl's, when status is -1 */
	char cache_status[160];
	char computed_at[64];    /* the demo app's stamp, "" when absent */
};

/* GET `path` from `base` (a proc: nginx or a replica). */
static void get(struct proc *base, const char *path, struct answer *a)
{
	char url[512];
	struct client_response r;
	json_t *doc;

	proc_url(base, path, url, sizeof(url));
	*a = (struct answer){0};
	a->status = client_request("GET", url, NULL, NULL, 0, &r);
	snprintf(a->error, sizeof(a->error), "%s", r.error);
	snprintf(a->cache_status, sizeof(a->cache_status), "%s",
		 client_header(&r, "Cache-Status") ?: "");
	doc = r.body != NULL ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
	if (doc != NULL && json_is_number(json_object_get(doc, "computed_at")))
		snprintf(a->computed_at, sizeof(a->computed_at), "%.6f",
			 json_number_value(json_object_get(doc,
							   "computed_at")));
	json_decref(doc);
	client_response_free(&r);
}

static bool is_hit(const struct answer *a)
{
	return strncmp(a->cache_status, "strata; hit", 11) == 0;
}

/* Whether some replica reports the entry for `path` in Redis (the
 * admin's explain), that is, whether the fleet can see it. */
static bool in_redis(const char *path)
{
	for (unsigned i = 0; i < REPLICAS; i++) {
		char target[256], url[512];
		struct client_response r;
		json_t *doc, *tiers, *t;
		size_t k;
		bool found = false;

		snprintf(target, sizeof(target), "/admin/explain?url=%s", path);
		proc_admin_url(replica[i], target, url, sizeof(url));
		if (client_request("GET", url, NULL, NULL, 0, &r) != 200) {
			client_response_free(&r);
			continue;
		}
		doc = json_loadb(r.body, r.body_len, 0, NULL);
		client_response_free(&r);
		tiers = json_object_get(json_object_get(doc, "entry"), "tiers");
		json_array_foreach(tiers, k, t)
			found = found || strcmp(json_string_value(t),
						"redis") == 0;
		json_decref(doc);
		if (found)
			return true;
	}
	return false;
}

Test(cluster, a_response_fetched_through_nginx_is_a_hit_on_every_replica)
{
	struct answer first, a;
	bool shared = false;

	get(nginx, "/slow", &first);
	cr_assert_eq(first.status, 200);
	cr_assert_str_eq(first.cache_status, "strata; fwd=miss; stored");
	cr_assert_neq(first.computed_at[0], '\0');
	/* Redis is written behind the answer: "afterwards" is once the
	 * entry is there (a request before that waits on the fill's lock
	 * and is answered "collapsed" from Redis, also without the app). */
	for (int t = 0; t < 100 && !shared; t++) {
		shared = in_redis("/slow");
		if (!shared)
			usleep((useconds_t)proc_scaled_ms(20) * 1000);
	}
	cr_assert(shared, "the entry never reached Redis");
	for (unsigned i = 0; i < REPLICAS; i++) {
		get(replica[i], "/slow", &a);
		cr_assert_eq(a.status, 200);
		cr_expect(is_hit(&a), "replica %u: %s", i, a.cache_status);
		cr_expect_str_eq(a.computed_at, first.computed_at,
				 "replica %u served another computation: the "
				 "application was called twice",
				 i);
	}
}

/* Entries under `path` in a replica's local tiers (admin listing). */
static size_t local_entries(unsigned i, const char *path)
{
	char url[512], target[256];
	struct client_response r;
	json_t *doc;
	size_t n;

	snprintf(target, sizeof(target), "/admin/keys?path=%s", path);
	proc_admin_url(replica[i], target, url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	doc = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert_not_null(doc, "%s", r.body);
	n = json_array_size(json_object_get(doc, "keys"));
	json_decref(doc);
	client_response_free(&r);
	return n;
}

Test(cluster, a_purge_through_one_replica_reaches_all_three)
{
	struct answer a, before;
	char url[512];
	struct client_response r;
	bool gone = false;

	get(nginx, "/slow", &before);
	cr_assert_eq(before.status, 200);
	for (unsigned i = 0; i < REPLICAS; i++) {
		get(replica[i], "/slow", &a);
		cr_assert(is_hit(&a), "replica %u: %s", i, a.cache_status);
		cr_assert_eq(local_entries(i, "/slow"), 1, "replica %u", i);
	}
	proc_admin_url(replica[0], "/admin/keys?path=/slow", url, sizeof(url));
	cr_assert_eq(client_request("DELETE", url, NULL, NULL, 0, &r), 200);
	client_response_free(&r);
	/* Replicas 1 and 2 follow the purge stream (100 ms or so). */
	for (int t = 0; t < 100 && !gone; t++) {
		gone = true;
		for (unsigned i = 0; i < REPLICAS; i++)
			gone = gone && local_entries(i, "/slow") == 0;
		if (!gone)
			usleep(20 * 1000);
	}
	cr_assert(gone, "a replica kept its copy after the purge");
	get(replica[2], "/slow", &a);
	cr_assert_eq(a.status, 200);
	cr_expect_str_eq(a.cache_status, "strata; fwd=miss; stored",
			 "not served from any tier");
	cr_expect_str_neq(a.computed_at, before.computed_at);
}

struct load {
	atomic_bool *stop;
	unsigned id, requests, failures;
	long last_status;
	char last_error[320];
};

static void *load_thread(void *arg)
{
	struct load *l = arg;
	char path[64];
	struct answer a;

	while (!atomic_load(l->stop)) {
		if (l->requests % 3 == 0)
			snprintf(path, sizeof(path), "/slow");
		else
			snprintf(path, sizeof(path), "/api/users/%u",
				 l->id * 10 + l->requests % 10);
		get(nginx, path, &a);
		l->requests++;
		if (a.status != 200) {
			l->failures++;
			l->last_status = a.status;
			snprintf(l->last_error, sizeof(l->last_error),
				 "%s %s", path, a.error);
		}
	}
	return NULL;
}

Test(cluster, killing_a_replica_loses_no_request_through_nginx)
{
	enum { THREADS = 8 };
	struct load l[THREADS];
	pthread_t t[THREADS];
	atomic_bool stop = false;
	unsigned total = 0, before;
	struct answer a;

	get(nginx, "/slow", &a); /* warm: the rest are mostly hits */
	cr_assert_eq(a.status, 200);
	for (unsigned i = 0; i < THREADS; i++) {
		l[i] = (struct load){.stop = &stop, .id = i};
		cr_assert_eq(pthread_create(&t[i], NULL, load_thread, &l[i]),
			     0);
	}
	usleep(1000 * 1000);
	before = 0;
	for (unsigned i = 0; i < THREADS; i++)
		before += l[i].requests;
	cr_assert_eq(proc_signal(replica[1], SIGKILL), 0);
	proc_wait(replica[1], 5000);
	usleep(2000 * 1000);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(l[i].failures, 0,
			     "thread %u: %u of %u requests failed (last %ld: "
			     "%s)",
			     i, l[i].failures, l[i].requests,
			     l[i].last_status, l[i].last_error);
		total += l[i].requests;
	}
	cr_assert_gt(before, 0, "load ran before the kill");
	cr_assert_gt(total, before + THREADS, "load ran after the kill");
}

Test(cluster, a_reload_changes_a_ttl_on_a_live_replica)
{
	struct answer a;
	char url[512];
	struct client_response r;
	json_t *doc;
	const char *ttl;

	write_replica_conf(1, "2s");
	proc_admin_url(replica[1], "/admin/reload", url, sizeof(url));
	cr_assert_eq(client_request("POST", url, NULL, NULL, 0, &r), 200,
		     "%s", r.body ?: "");
	doc = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert_not_null(doc);
	cr_assert_eq(json_integer_value(json_object_get(doc, "generation")),
		     2);
	json_decref(doc);
	client_response_free(&r);

	proc_admin_url(replica[1], "/admin/config", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	doc = json_loadb(r.body, r.body_len, 0, NULL);
	ttl = json_string_value(json_object_get(
		json_array_get(json_object_get(doc, "routes"), 0), "ttl"));
	cr_assert_str_eq(ttl, "2s");
	json_decref(doc);
	client_response_free(&r);

	/* A new entry on replica 1 is stored for 2 s, and expires. */
	get(replica[1], "/slow", &a);
	cr_assert_str_eq(a.cache_status, "strata; fwd=miss; stored");
	get(replica[1], "/slow", &a);
	cr_assert(strncmp(a.cache_status, "strata; hit; ttl=", 17) == 0 &&
			  atoi(a.cache_status + 17) <= 2,
		  "%s", a.cache_status);
	/* Its siblings keep their 60 s route. */
	get(replica[0], "/api/users/1", &a);
	cr_assert_eq(a.status, 200);
	proc_admin_url(replica[0], "/admin/config", url, sizeof(url));
	cr_assert_eq(client_request("GET", url, NULL, NULL, 0, &r), 200);
	doc = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(doc, "routes"),
						0),
				 "ttl")),
			 "1m");
	json_decref(doc);
	client_response_free(&r);
}
