/*
 * proc.h: run the real `strata` binary from integration tests.
 *
 * The binary is $STRATA_BIN (set by `make check`), else ./strata.  Every
 * wait is scaled by $STRATA_TEST_TIMEOUT_MULT (a positive number, default
 * 1) so slow machines and sanitizer builds do not fail on timing alone.
 *
 * proc_start() runs strata as a server on free loopback ports: it picks a
 * port (bind 127.0.0.1:0, read it, close), starts strata, and waits until
 * the port accepts TCP connections.  The port can be taken by someone else
 * between the pick and strata's bind, so when strata exits with status 1
 * (a runtime failure such as "cannot bind") before it is ready, it is
 * started again on other ports, up to three times.  Its stdout and stderr
 * go to a temporary file that is printed only when something goes wrong.
 *
 * The disk tier is on by default and would otherwise share ./strata-data
 * among tests running in parallel, so every strata gets its own fresh disk
 * directory unless the test says otherwise (proc_spec.disk_path): a
 * "disk" directory inside a new mkdtemp directory under $TMPDIR (or /tmp),
 * removed with everything in it (LMDB files, "disk.corrupt-*" siblings)
 * when the process is stopped.  strata gets it as the first arguments,
 * "--set cache.disk.path=DIR", so any later flag of the test wins; another
 * program (spec.bin) gets it as STRATA_CACHE_DISK_PATH in its environment.
 * A cache.disk.path in a test's YAML file loses to the flag: such a test
 * sets disk_path to "".
 *
 * The child dies with the test (PR_SET_PDEATHSIG), so a test killed by its
 * timeout does not leave a strata behind.  The child's environment is the
 * test's minus every STRATA_* variable (so a developer's own settings do
 * not leak in), plus the variables the caller passes.
 *
 * Not thread-safe per process handle: start, signal, wait and stop one
 * handle from one thread (the test's main thread, which must outlive the
 * child because of PR_SET_PDEATHSIG).
 */
#ifndef STRATA_TESTS_PROC_H
#define STRATA_TESTS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct proc;

/* $STRATA_TEST_TIMEOUT_MULT, or 1. */
double proc_timeout_mult(void);

/* `ms` scaled by the multiplier. */
long proc_scaled_ms(long ms);

/* Path of the strata binary to run. */
const char *proc_strata_bin(void);

/* A currently free TCP port on 127.0.0.1 (0 on failure). */
unsigned proc_free_port(void);

struct proc_spec {
	/*
	 * Arguments after argv[0], NULL-terminated (may be NULL).  In
	 * arguments and environment values "@PORT@" becomes the chosen
	 * listen port and "@ADMIN_PORT@" the chosen admin port.
	 */
	const char *const *args;
	/* The program to run; NULL: strata (proc_strata_bin()). */
	const char *bin;
	/* Extra environment, "NAME=value", NULL-terminated (may be NULL). */
	const char *const *env;
	/*
	 * Unless set, "--listen 127.0.0.1:@PORT@ --admin-listen
	 * 127.0.0.1:@ADMIN_PORT@" go before `args`.  Set it when the test
	 * provides the listen address another way (env, file); then the
	 * port waited on is still @PORT@.
	 */
	bool no_listen_flags;
	/*
	 * The disk tier's directory.  NULL: a fresh temporary one, removed
	 * by proc_stop().  "": none is passed (the test sets
	 * cache.disk.path itself, or turns the tier off); the same when
	 * `env` sets STRATA_CACHE_DISK_PATH.  Any other path: passed as
	 * given and never removed, for tests that start strata twice on one
	 * directory (the test creates and removes it).
	 */
	const char *disk_path;
	/*
	 * The port waited on (and @PORT@); 0: a free one is picked.  For a
	 * program whose port is in a file the test writes first (nginx).
	 */
	unsigned port;
};

/*
 * Start strata and wait (5 s × multiplier) until it accepts connections.
 * Returns NULL, after printing the reason and strata's output on stderr,
 * when it exits early or never becomes ready.  Stop it with proc_stop().
 */
struct proc *proc_start(const struct proc_spec *spec);

/* Convenience: proc_start with just these arguments (NULL-terminated). */
struct proc *proc_start_args(const char *const *args);

/* strata's process id. */
pid_t proc_pid(const struct proc *p);

/* The port strata listens on. */
unsigned proc_port(const struct proc *p);

/* The admin port chosen for "@ADMIN_PORT@" (passed as --admin-listen
 * unless spec.no_listen_flags). */
unsigned proc_admin_port(const struct proc *p);

/* "http://127.0.0.1:ADMIN_PORT" followed by `path`, into buf; returns buf. */
char *proc_admin_url(const struct proc *p, const char *path, char *buf,
		     size_t len);

/*
 * The disk directory passed to strata (it may not exist until strata
 * creates it), or NULL when none was passed (disk_path "").  Borrowed:
 * valid until proc_stop().
 */
const char *proc_disk_path(const struct proc *p);

/* "http://127.0.0.1:PORT" followed by `path`, written to buf; returns buf. */
char *proc_url(const struct proc *p, const char *path, char *buf, size_t len);

/* Send a signal to strata.  Returns 0 or -errno. */
int proc_signal(struct proc *p, int sig);

/*
 * Wait up to timeout_ms (not scaled) for strata to exit.  Returns its exit
 * status (0..255 for a normal exit, 128 + N when killed by signal N), or
 * -1 when it is still running.  Once it has exited, further calls return
 * the same status.
 */
int proc_wait(struct proc *p, long timeout_ms);

/*
 * Read a field of /proc/PID/status in KiB ("VmRSS", "VmHWM").  Returns -1
 * when it cannot be read.
 */
long proc_status_kib(const struct proc *p, const char *field);

/* strata's captured stdout+stderr so far, NUL-terminated; the caller
 * frees it.  Never NULL unless out of memory. */
char *proc_output(const struct proc *p);

/* Print strata's captured stdout+stderr to the test's stderr. */
void proc_dump_output(const struct proc *p);

/*
 * Stop strata: SIGTERM, wait up to 10 s × multiplier, then SIGKILL.
 * Prints strata's output when the status is not 0.  Releases the handle,
 * removes the output file and the temporary disk directory (if proc_start
 * made one) and sets *p to NULL.  Returns the exit status as
 * proc_wait() does (137 when it had to be killed).  Accepts NULL: -1.
 */
int proc_stop(struct proc **p);

/* Result of proc_run(). */
struct proc_result {
	int status;          /* as proc_wait(); 137 after a timeout kill */
	bool timed_out;
	char *out;           /* stdout, NUL-terminated */
	char *err;           /* stderr, NUL-terminated */
};

/*
 * Run strata with `args` (NULL-terminated, after argv[0]) and extra `env`
 * to completion, with stdin from /dev/null, capturing stdout and stderr.
 * Its disk tier, should it start a server, uses a fresh temporary
 * directory, passed as STRATA_CACHE_DISK_PATH (so `args` stay exactly the
 * test's and its flags win) unless `env` sets that variable itself; the
 * directory is removed when strata has exited.
 * Killed after timeout_ms × multiplier.  Returns 0 and fills *res (release
 * with proc_result_free), or -errno when it could not be started.
 */
int proc_run(const char *const *args, const char *const *env,
	     long timeout_ms, struct proc_result *res);

/* Release a proc_result and zero it. */
void proc_result_free(struct proc_result *res);

#endif /* STRATA_TESTS_PROC_H */
