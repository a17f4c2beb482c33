/*
 * redis_server.h: run a real `redis-server` for tests.
 *
 * Each server listens on 127.0.0.1 on a free port (picked as proc.h does:
 * bind port 0, read it, close; retried on other ports up to three times
 * when redis-server exits before it is ready, since someone may take the
 * port in between), with no persistence (--save '' --appendonly no) and
 * optionally a password.  Start waits until it answers PING (5 s ×
 * $STRATA_TEST_TIMEOUT_MULT).  The binary is $STRATA_REDIS_SERVER, else
 * `redis-server` from PATH.  Its output goes to /dev/null.  The child dies
 * with the test (PR_SET_PDEATHSIG).
 *
 * Fault helpers for tests of the Redis tier: pause (SIGSTOP: connections
 * are accepted by the kernel but never answered), resume, kill (SIGKILL,
 * reaped) and restart on the same port (empty again: nothing persists).
 *
 * redis_server_cmd() talks RESP over a plain socket so that tests can
 * plant and inspect values without hiredis (src/tier/redis.c stays the
 * only user of <hiredis/hiredis.h>).
 *
 * Not thread-safe: use one handle from one thread.
 */
#ifndef STRATA_TESTS_REDIS_SERVER_H
#define STRATA_TESTS_REDIS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct redis_server;

/* Start a server; password NULL for none.  Returns NULL (after printing
 * why on stderr) when it cannot be started.  Stop with redis_server_stop. */
struct redis_server *redis_server_start(const char *password);

/* SIGTERM, wait up to 5 s × multiplier, then SIGKILL; free; *s = NULL.
 * Accepts NULL and a pointer to NULL. */
void redis_server_stop(struct redis_server **s);

unsigned redis_server_port(const struct redis_server *s);

/* The server's pid, or -1 while it is killed. */
pid_t redis_server_pid(const struct redis_server *s);

/* "redis://[:password@]127.0.0.1:PORT" + `suffix` (may be NULL) into buf;
 * with_password false leaves the password out.  Returns buf. */
char *redis_server_url(const struct redis_server *s, bool with_password,
		       const char *suffix, char *buf, size_t len);

/* SIGSTOP / SIGCONT.  Return 0 or -errno. */
int redis_server_pause(struct redis_server *s);
int redis_server_resume(struct redis_server *s);

/* SIGKILL and reap.  Returns 0 or -errno. */
int redis_server_kill(struct redis_server *s);

/* Kill if running, then start again on the same port and wait for PING.
 * Returns 0, or -1 (printed) when it does not come up. */
int redis_server_restart(struct redis_server *s);

/*
 * Send one command (binary-safe arguments; lens NULL: strlen) over a new
 * connection, authenticating first when the server has a password, and
 * read one reply.  The reply's type character ('+', '-', ':', '$', '*')
 * is returned, or -1 on an I/O or protocol failure; a nil bulk or array
 * returns '$' or '*' with *out_len = (size_t)-1.  The reply's text (line,
 * bulk bytes, or for an array the elements' texts joined by '\n') is
 * copied NUL-terminated to out (truncated to out_size - 1), its full
 * length to *out_len (may be NULL).
 */
int redis_server_cmd(const struct redis_server *s, int argc,
		     const char *const *argv, const size_t *lens, char *out,
		     size_t out_size, size_t *out_len);

#endif /* STRATA_TESTS_REDIS_SERVER_H */
