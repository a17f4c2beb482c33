/*
 * proc.c: spawning, probing and stopping the strata binary (see proc.h).
 *
 * The child is created with fork() + execve().  Tests run with threads
 * (the origin, curl), so between fork and exec the child does only
 * async-signal-safe things: it resets signal dispositions and the mask
 * (ignored signals and a blocked mask would survive exec and could hide
 * SIGTERM from strata), asks to die with its parent, redirects its output
 * and executes.  Everything it needs is built before fork.
 *
 * Each strata's disk tier lives in "<tmp>/strata-test-XXXXXX/disk": the
 * mkdtemp directory is the one removed afterwards, so whatever strata puts
 * next to its disk directory (an on_corrupt "disk.corrupt-*") goes too,
 * and strata creates "disk" itself as it would in production.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define START_ATTEMPTS 3
#define READY_WAIT_MS 5000
#define STOP_WAIT_MS 10000
#define DISK_PATH_VAR "STRATA_CACHE_DISK_PATH"

struct proc {
	pid_t pid;
	unsigned port;
	unsigned admin_port;
	bool exited;
	int status;             /* proc_wait() convention, once exited */
	char output_path[64];
	int output_fd;
	char *disk_path;        /* passed to the child, or NULL */
	char *disk_root;        /* temporary directory to remove, or NULL */
};

double proc_timeout_mult(void)
{
	const char *text = getenv("STRATA_TEST_TIMEOUT_MULT");
	char *end;
	double mult;

	if (text == NULL || *text == '\0')
		return 1.0;
	mult = strtod(text, &end);
	if (end == text || !(mult > 0.0))
		return 1.0;
	return mult;
}

long proc_scaled_ms(long ms)
{
	return (long)((double)ms * proc_timeout_mult());
}

const char *proc_strata_bin(void)
{
	const char *bin = getenv("STRATA_BIN");

	return bin != NULL && *bin != '\0' ? bin : "./strata";
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static struct sockaddr_in loopback(unsigned port)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	return addr;
}

unsigned proc_free_port(void)
{
	struct sockaddr_in addr = loopback(0);
	socklen_t len = sizeof(addr);
	unsigned port = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
		port = ntohs(addr.sin_port);
	close(fd);
	return port;
}

/* Whether something accepts TCP connections on 127.0.0.1:port. */
static bool port_accepts(unsigned port)
{
	struct sockaddr_in addr = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
	close(fd);
	return ok;
}

/* `s` with @PORT@ and @ADMIN_PORT@ replaced; malloc'd, NULL when OOM. */
static char *subst(const char *s, unsigned port, unsigned admin_port)
{
	static const char port_mark[] = "@PORT@";
	static const char admin_mark[] = "@ADMIN_PORT@";
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (f == NULL)
		return NULL;
	while (*s != '\0') {
		if (strncmp(s, port_mark, sizeof(port_mark) - 1) == 0) {
			fprintf(f, "%u", port);
			s += sizeof(port_mark) - 1;
		} else if (strncmp(s, admin_mark, sizeof(admin_mark) - 1) ==
			   0) {
			fprintf(f, "%u", admin_port);
			s += sizeof(admin_mark) - 1;
		} else {
			fputc(*s++, f);
		}
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static void free_vector(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static size_t count(const char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/*
 * argv: the binary, "--set `setting`" when setting is not NULL, the
 * optional listen flags, then `args`, substituted.  The test's own flags
 * come last so that they win.
 */
static char **build_argv(const char *bin, const char *setting,
			 const char *const *args, bool listen_flags,
			 unsigned port, unsigned admin_port)
{
	static const char *const flags[] = {
		"--listen", "127.0.0.1:@PORT@",
		"--admin-listen", "127.0.0.1:@ADMIN_PORT@",
	};
	size_t n_flags = listen_flags ? 4 : 0;
	size_t n_set = setting != NULL ? 2 : 0;
	size_t n = 1 + n_set + n_flags + count(args);
	char **argv = calloc(n + 1, sizeof(*argv));
	size_t i = 0;

	if (argv == NULL)
		return NULL;
	argv[i++] = strdup(bin != NULL ? bin : proc_strata_bin());
	if (setting != NULL) {
		argv[i++] = strdup("--set");
		argv[i++] = strdup(setting);
	}
	for (size_t k = 0; k < n_flags; k++)
		argv[i++] = subst(flags[k], port, admin_port);
	for (size_t k = 0; args != NULL && args[k] != NULL; k++)
		argv[i++] = subst(args[k], port, admin_port);
	for (size_t k = 0; k < n; k++)
		if (argv[k] == NULL) {
			argv[n] = NULL;
			for (size_t j = 0; j < n; j++)
				free(argv[j]);
			free(argv);
			return NULL;
		}
	return argv;
}

/* Whether `extra` sets the variable that "NAME=value" `var` sets. */
static bool overridden(const char *var, const char *const *extra)
{
	size_t len = strcspn(var, "=");

	for (size_t k = 0; extra != NULL && extra[k] != NULL; k++)
		if (strncmp(extra[k], var, len) == 0 && extra[k][len] == '=')
			return true;
	return false;
}

/*
 * The test's environment without STRATA_* and without what `extra`
 * replaces (getenv finds the first of two), plus `extra`, substituted,
 * plus `more` ("NAME=value", NULL for none; never one `extra` sets).
 */
static char **build_env(const char *const *extra, const char *more,
			unsigned port, unsigned admin_port)
{
	size_t n = count((const char *const *)environ) + count(extra) + 1;
	char **envp = calloc(n + 1, sizeof(*envp));
	size_t i = 0;

	if (envp == NULL)
		return NULL;
	for (size_t k = 0; environ[k] != NULL; k++) {
		if (strncmp(environ[k], "STRATA_", 7) == 0 ||
		    overridden(environ[k], extra))
			continue;
		if ((envp[i++] = strdup(environ[k])) == NULL)
			goto fail;
	}
	for (size_t k = 0; extra != NULL && extra[k] != NULL; k++)
		if ((envp[i++] = subst(extra[k], port, admin_port)) == NULL)
			goto fail;
	if (more != NULL && (envp[i++] = strdup(more)) == NULL)
		goto fail;
	return envp;
fail:
	free_vector(envp);
	return NULL;
}

/*
 * fork + execve with stdin from /dev/null and the given output fds.
 * Returns the pid or -errno.
 */
static pid_t spawn(char **argv, char **envp, int out_fd, int err_fd)
{
	pid_t parent = getpid();
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid;

	if (null_fd < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(null_fd);
		return -err;
	}
	if (pid == 0) {
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		sigset_t none;

		for (int sig = 1; sig < NSIG; sig++)
			sigaction(sig, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
		    dup2(err_fd, 2) < 0)
			_exit(127);
		execve(argv[0], argv, envp);
		{
			static const char msg[] = "proc: cannot execute strata "
						  "(set STRATA_BIN)\n";
			ssize_t ignored = write(2, msg, sizeof(msg) - 1);

			(void)ignored;
		}
		_exit(127);
	}
	close(null_fd);
	return pid;
}

static int decode_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

/* Non-blocking reap; returns true when the child has exited. */
static bool reap(struct proc *p)
{
	int wstatus;
	pid_t r;

	if (p->exited)
		return true;
	do
		r = waitpid(p->pid, &wstatus, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == p->pid) {
		p->exited = true;
		p->status = decode_status(wstatus);
	} else if (r < 0) {
		/* Not our child any more (should not happen): treat as gone. */
		p->exited = true;
		p->status = 255;
	}
	return p->exited;
}

int proc_wait(struct proc *p, long timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		if (reap(p))
			return p->status;
		if (now_ms() >= deadline)
			return -1;
		sleep_ms(5);
	}
}

/* Read a whole file into a NUL-terminated string (empty on error). */
static char *slurp(int fd)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	char chunk[4096];
	ssize_t n;
	off_t off = 0;

	if (f == NULL)
		return strdup("");
	while ((n = pread(fd, chunk, sizeof(chunk), off)) > 0) {
		fwrite(chunk, 1, (size_t)n, f);
		off += n;
	}
	if (fclose(f) != 0) {
		free(buf);
		return strdup("");
	}
	return buf;
}

char *proc_output(const struct proc *p)
{
	if (p == NULL || p->output_fd < 0)
		return strdup("");
	return slurp(p->output_fd);
}

void proc_dump_output(const struct proc *p)
{
	char *text;

	if (p == NULL || p->output_fd < 0)
		return;
	text = slurp(p->output_fd);
	fprintf(stderr, "---- strata (pid %d, port %u) output ----\n%s"
			"---- end of strata output ----\n",
		(int)p->pid, p->port, text != NULL ? text : "");
	free(text);
}

/* nftw callback: children come first (FTW_DEPTH), so remove() works. */
static int remove_cb(const char *path, const struct stat *st, int type,
		     struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		fprintf(stderr, "proc: cannot remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

/* rm -rf `root`, staying on its file system and not following links. */
static void remove_tree(const char *root)
{
	if (root != NULL &&
	    nftw(root, remove_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0 &&
	    errno != ENOENT)
		fprintf(stderr, "proc: cannot remove %s: %s\n", root,
			strerror(errno));
}

/*
 * A new directory under $TMPDIR (or /tmp) for one strata's disk tier:
 * *root is the directory made (to remove later), *path is "disk" inside
 * it, not created.  Returns 0 or -errno (both left NULL).
 */
static int make_disk_dir(char **root, char **path)
{
	const char *tmp = getenv("TMPDIR");
	int err;

	*root = NULL;
	*path = NULL;
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if (asprintf(root, "%s/strata-test-XXXXXX", tmp) < 0) {
		*root = NULL;
		return -ENOMEM;
	}
	if (mkdtemp(*root) == NULL) {
		err = -errno;
		fprintf(stderr, "proc: mkdtemp %s: %s\n", *root,
			strerror(errno));
		goto fail;
	}
	if (asprintf(path, "%s/disk", *root) < 0) {
		*path = NULL;
		err = -ENOMEM;
		rmdir(*root);
		goto fail;
	}
	return 0;
fail:
	free(*root);
	*root = NULL;
	return err;
}

/* Pick the disk directory proc_spec.disk_path asks for (see proc.h). */
static int choose_disk(struct proc *p, const struct proc_spec *spec)
{
	if ((spec->disk_path != NULL && spec->disk_path[0] == '\0') ||
	    overridden(DISK_PATH_VAR, spec->env))
		return 0;
	if (spec->disk_path != NULL) {
		p->disk_path = strdup(spec->disk_path);
		return p->disk_path != NULL ? 0 : -ENOMEM;
	}
	return make_disk_dir(&p->disk_root, &p->disk_path);
}

static void release(struct proc *p)
{
	if (p->output_fd >= 0) {
		close(p->output_fd);
		unlink(p->output_path);
	}
	remove_tree(p->disk_root);
	free(p->disk_root);
	free(p->disk_path);
	free(p);
}

/*
 * One attempt: spawn on fresh ports and wait for readiness.  Returns 1 when
 * ready, 0 when strata exited with status 1 before it was ready (worth
 * another port), -1 on any other failure.
 */
static int attempt(struct proc *p, const struct proc_spec *spec)
{
	char **argv = NULL, **envp = NULL;
	char *setting = NULL, *env_var = NULL;
	uint64_t deadline;
	pid_t pid;
	int ret = -1;

	p->port = spec->port != 0 ? spec->port : proc_free_port();
	p->admin_port = proc_free_port();
	p->exited = false;
	if (p->port == 0 || p->admin_port == 0 || p->port == p->admin_port) {
		fprintf(stderr, "proc: no free loopback port\n");
		return 0;
	}
	/*
	 * strata takes the disk directory as its first flag, below the
	 * test's; another program (the embed example) knows no --set, and
	 * reads the environment if it reads anything.
	 */
	if (p->disk_path != NULL) {
		char **text = spec->bin == NULL ? &setting : &env_var;
		const char *name = spec->bin == NULL ? "cache.disk.path"
						     : DISK_PATH_VAR;

		if (asprintf(text, "%s=%s", name, p->disk_path) < 0) {
			*text = NULL;
			goto out;
		}
	}
	argv = build_argv(spec->bin, setting, spec->args,
			  !spec->no_listen_flags, p->port, p->admin_port);
	envp = build_env(spec->env, env_var, p->port, p->admin_port);
	if (argv == NULL || envp == NULL)
		goto out;
	pid = spawn(argv, envp, p->output_fd, p->output_fd);
	if (pid < 0) {
		fprintf(stderr, "proc: cannot start %s: %s\n", argv[0],
			strerror((int)-pid));
		goto out;
	}
	p->pid = pid;

	deadline = now_ms() + (uint64_t)proc_scaled_ms(READY_WAIT_MS);
	for (;;) {
		if (reap(p)) {
			fprintf(stderr, "proc: strata exited with status %d "
					"before accepting connections on "
					"port %u\n",
				p->status, p->port);
			ret = p->status == 1 ? 0 : -1;
			goto out;
		}
		if (port_accepts(p->port)) {
			/* The probe could have reached someone else holding
			 * the port while strata failed to bind: look again. */
			sleep_ms(20);
			if (reap(p))
				continue;
			ret = 1;
			goto out;
		}
		if (now_ms() >= deadline) {
			fprintf(stderr, "proc: strata did not accept "
					"connections on port %u within %ld ms\n",
				p->port, proc_scaled_ms(READY_WAIT_MS));
			kill(p->pid, SIGKILL);
			proc_wait(p, 5000);
			goto out;
		}
		sleep_ms(10);
	}
out:
	free(setting);
	free(env_var);
	free_vector(argv);
	free_vector(envp);
	return ret;
}

struct proc *proc_start(const struct proc_spec *spec)
{
	struct proc *p = calloc(1, sizeof(*p));
	int r = 0;

	if (p == NULL)
		return NULL;
	strcpy(p->output_path, "/tmp/strata-test-XXXXXX");
	p->output_fd = mkostemp(p->output_path, O_CLOEXEC | O_APPEND);
	if (p->output_fd < 0) {
		fprintf(stderr, "proc: mkstemp: %s\n", strerror(errno));
		free(p);
		return NULL;
	}
	if (choose_disk(p, spec) < 0) {
		fprintf(stderr, "proc: no disk directory for strata\n");
		release(p);
		return NULL;
	}
	for (int i = 0; i < START_ATTEMPTS; i++) {
		r = attempt(p, spec);
		if (r != 0)
			break;
	}
	if (r != 1) {
		proc_dump_output(p);
		release(p);
		return NULL;
	}
	return p;
}

struct proc *proc_start_args(const char *const *args)
{
	struct proc_spec spec = {.args = args};

	return proc_start(&spec);
}

pid_t proc_pid(const struct proc *p)
{
	return p->pid;
}

unsigned proc_port(const struct proc *p)
{
	return p->port;
}

unsigned proc_admin_port(const struct proc *p)
{
	return p->admin_port;
}

char *proc_admin_url(const struct proc *p, const char *path, char *buf,
		     size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%u%s", p->admin_port, path);
	return buf;
}

const char *proc_disk_path(const struct proc *p)
{
	return p->disk_path;
}

char *proc_url(const struct proc *p, const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%u%s", p->port, path);
	return buf;
}

int proc_signal(struct proc *p, int sig)
{
	if (p->exited)
		return -ESRCH;
	return kill(p->pid, sig) == 0 ? 0 : -errno;
}

long proc_status_kib(const struct proc *p, const char *field)
{
	char path[64], line[256];
	size_t len = strlen(field);
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, len) == 0 && line[len] == ':') {
			kib = strtol(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

int proc_stop(struct proc **pp)
{
	struct proc *p = pp != NULL ? *pp : NULL;
	int status;

	if (p == NULL)
		return -1;
	if (!reap(p)) {
		kill(p->pid, SIGTERM);
		if (proc_wait(p, proc_scaled_ms(STOP_WAIT_MS)) < 0) {
			fprintf(stderr, "proc: strata (pid %d) ignored SIGTERM "
					"for %ld ms: killing it\n",
				(int)p->pid, proc_scaled_ms(STOP_WAIT_MS));
			kill(p->pid, SIGKILL);
			proc_wait(p, 60000);
		}
	}
	status = p->exited ? p->status : 137;
	if (status != 0)
		proc_dump_output(p);
	release(p);
	*pp = NULL;
	return status;
}

static int temp_file(char *path)
{
	strcpy(path, "/tmp/strata-test-XXXXXX");
	return mkostemp(path, O_CLOEXEC);
}

int proc_run(const char *const *args, const char *const *env,
	     long timeout_ms, struct proc_result *res)
{
	struct proc p = {.output_fd = -1};
	char out_path[64], err_path[64];
	int out_fd = -1, err_fd = -1, ret = 0;
	char **argv = NULL, **envp = NULL;
	char *disk_root = NULL, *disk_path = NULL, *env_var = NULL;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (!overridden(DISK_PATH_VAR, env)) {
		ret = make_disk_dir(&disk_root, &disk_path);
		if (ret < 0)
			goto out;
		if (asprintf(&env_var, DISK_PATH_VAR "=%s", disk_path) < 0) {
			env_var = NULL;
			ret = -ENOMEM;
			goto out;
		}
	}
	out_fd = temp_file(out_path);
	err_fd = temp_file(err_path);
	argv = build_argv(NULL, NULL, args, false, 0, 0);
	envp = build_env(env, env_var, 0, 0);
	if (out_fd < 0 || err_fd < 0 || argv == NULL || envp == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	pid = spawn(argv, envp, out_fd, err_fd);
	if (pid < 0) {
		ret = (int)pid;
		goto out;
	}
	p.pid = pid;
	if (proc_wait(&p, proc_scaled_ms(timeout_ms)) < 0) {
		res->timed_out = true;
		kill(pid, SIGKILL);
		proc_wait(&p, 60000);
	}
	res->status = p.exited ? p.status : 137;
	res->out = slurp(out_fd);
	res->err = slurp(err_fd);
out:
	free_vector(argv);
	free_vector(envp);
	if (out_fd >= 0) {
		close(out_fd);
		unlink(out_path);
	}
	if (err_fd >= 0) {
		close(err_fd);
		unlink(err_path);
	}
	remove_tree(disk_root);
	free(disk_root);
	free(disk_path);
	free(env_var);
	return ret;
}

void proc_result_free(struct proc_result *res)
{
	free(res->out);
	free(res->err);
	memset(res, 0, sizeof(*res));
}
