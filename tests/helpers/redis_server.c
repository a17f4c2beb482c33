/*
 * redis_server.c: a real redis-server for tests (see redis_server.h).
 */
#include "config.h"

#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

struct redis_server {
	pid_t pid;                 /* -1 while killed */
	unsigned port;
	char password[128];        /* "" : none */
};

static uint64_t mono_ms(void)
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

/* A connected socket to the server with 1 s × multiplier I/O timeouts,
 * or -1. */
static int dial(unsigned port)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	long ms = proc_scaled_ms(1000);
	struct timeval tv = {.tv_sec = ms / 1000,
			     .tv_usec = (ms % 1000) * 1000};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* --- a minimal RESP client -------------------------------------------------- */

struct reader {
	int fd;
	char buf[4096];
	size_t pos, len;
};

static int rd_byte(struct reader *rd)
{
	if (rd->pos == rd->len) {
		ssize_t n = recv(rd->fd, rd->buf, sizeof(rd->buf), 0);

		if (n <= 0)
			return -1;
		rd->pos = 0;
		rd->len = (size_t)n;
	}
	return (unsigned char)rd->buf[rd->pos++];
}

/* A line without its CRLF into line (truncated); returns 0 or -1. */
static int rd_line(struct reader *rd, char *line, size_t size)
{
	size_t n = 0;
	int c;

	while ((c = rd_byte(rd)) >= 0) {
		if (c == '\r') {
			if (rd_byte(rd) != '\n')
				return -1;
			line[n] = '\0';
			return 0;
		}
		if (n + 1 < size)
			line[n++] = (char)c;
	}
	return -1;
}

/* Append bytes to the caller's output, counting the full length. */
struct sink {
	char *out;
	size_t size, len;
};

static void sink_put(struct sink *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++, s->len++)
		if (s->len + 1 < s->size)
			s->out[s->len] = p[i];
}

/* Read one reply into the sink; returns its type or -1. */
static int read_reply(struct reader *rd, struct sink *sink, bool *nil)
{
	char line[512];
	long long n;
	int type;

	if (rd_line(rd, line, sizeof(line)) != 0 || line[0] == '\0')
		return -1;
	type = line[0];
	switch (type) {
	case '+':
	case '-':
	case ':':
		sink_put(sink, line + 1, strlen(line + 1));
		return type;
	case '$':
		n = atoll(line + 1);
		if (n < 0) {
			*nil = true;
			return type;
		}
		for (long long i = 0; i < n; i++) {
			int c = rd_byte(rd);
			char ch = (char)c;

			if (c < 0)
				return -1;
			sink_put(sink, &ch, 1);
		}
		if (rd_byte(rd) != '\r' || rd_byte(rd) != '\n')
			return -1;
		return type;
	case '*':
		n = atoll(line + 1);
		if (n < 0) {
			*nil = true;
			return type;
		}
		for (long long i = 0; i < n; i++) {
			bool inner_nil = false;

			if (i > 0)
				sink_put(sink, "\n", 1);
			if (read_reply(rd, sink, &inner_nil) < 0)
				return -1;
		}
		return type;
	default:
		return -1;
	}
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_cmd(int fd, int argc, const char *const *argv,
		    const size_t *lens)
{
	char head[64];

	snprintf(head, sizeof(head), "*%d\r\n", argc);
	if (send_all(fd, head, strlen(head)) != 0)
		return -1;
	for (int i = 0; i < argc; i++) {
		size_t len = lens != NULL ? lens[i] : strlen(argv[i]);

		snprintf(head, sizeof(head), "$%zu\r\n", len);
		if (send_all(fd, head, strlen(head)) != 0 ||
		    send_all(fd, argv[i], len) != 0 ||
		    send_all(fd, "\r\n", 2) != 0)
			return -1;
	}
	return 0;
}

static int cmd_port(unsigned port, const char *password, int argc,
		    const char *const *argv, const size_t *lens, char *out,
		    size_t out_size, size_t *out_len)
{
	struct reader rd = {.fd = dial(port)};
	struct sink sink = {.out = out, .size = out_size};
	char scratch[256];
	bool nil = false;
	int type = -1;

	if (out_size > 0)
		out[0] = '\0';
	if (rd.fd < 0)
		return -1;
	if (password != NULL && password[0] != '\0') {
		const char *auth[2] = {"AUTH", password};
		struct sink ignore = {.out = scratch, .size = sizeof(scratch)};
		bool ignored;

		if (send_cmd(rd.fd, 2, auth, NULL) != 0 ||
		    read_reply(&rd, &ignore, &ignored) < 0)
			goto out;
	}
	if (send_cmd(rd.fd, argc, argv, lens) != 0)
		goto out;
	type = read_reply(&rd, &sink, &nil);
	if (type >= 0 && out_size > 0)
		out[sink.len < out_size ? sink.len : out_size - 1] = '\0';
	if (out_len != NULL)
		*out_len = nil ? (size_t)-1 : sink.len;
out:
	close(rd.fd);
	return type;
}

int redis_server_cmd(const struct redis_server *s, int argc,
		     const char *const *argv, const size_t *lens, char *out,
		     size_t out_size, size_t *out_len)
{
	return cmd_port(s->port, s->password, argc, argv, lens, out, out_size,
			out_len);
}

/* --- process control -------------------------------------------------------- */

static pid_t spawn(const struct redis_server *s)
{
	const char *bin = getenv("STRATA_REDIS_SERVER");
	char port[16];
	pid_t parent = getpid(), pid;

	if (bin == NULL || *bin == '\0')
		bin = "redis-server";
	snprintf(port, sizeof(port), "%u", s->port);
	pid = fork();
	if (pid != 0)
		return pid;
	/* Child. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (s->password[0] != '\0')
		execlp(bin, bin, "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--requirepass",
		       s->password, (char *)NULL);
	else
		execlp(bin, bin, "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", (char *)NULL);
	_exit(127);
}

/* Wait until PING is answered (PONG, or NOAUTH from a password-protected
 * server): 1; the child exited: 0; timed out: -1. */
static int wait_ready(struct redis_server *s)
{
	uint64_t deadline = mono_ms() + (uint64_t)proc_scaled_ms(5000);
	const char *ping[1] = {"PING"};
	char reply[64];
	int status;

	while (mono_ms() < deadline) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = -1;
			return 0;
		}
		if (cmd_port(s->port, NULL, 1, ping, NULL, reply,
			     sizeof(reply), NULL) >= 0 &&
		    (strcmp(reply, "PONG") == 0 ||
		     strncmp(reply, "NOAUTH", 6) == 0))
			return 1;
		sleep_ms(10);
	}
	return -1;
}

static void reap(struct redis_server *s, int sig, long wait_ms)
{
	uint64_t deadline;
	int status;

	if (s->pid <= 0)
		return;
	kill(s->pid, SIGCONT); /* a paused server cannot act on TERM */
	kill(s->pid, sig);
	deadline = mono_ms() + (uint64_t)wait_ms;
	while (waitpid(s->pid, &status, WNOHANG) == 0) {
		if (mono_ms() >= deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			break;
		}
		sleep_ms(5);
	}
	s->pid = -1;
}

struct redis_server *redis_server_start(const char *password)
{
	struct redis_server *s = calloc(1, sizeof(*s));
	int attempt, ready = 0;

	if (s == NULL)
		return NULL;
	s->pid = -1;
	if (password != NULL)
		snprintf(s->password, sizeof(s->password), "%s", password);
	for (attempt = 0; attempt < 3 && ready != 1; attempt++) {
		s->port = proc_free_port();
		if (s->port == 0)
			continue;
		s->pid = spawn(s);
		if (s->pid < 0) {
			fprintf(stderr, "redis_server: fork: %s\n",
				strerror(errno));
			break;
		}
		ready = wait_ready(s);
		if (ready == -1)
			break;
	}
	if (ready != 1) {
		fprintf(stderr, "redis_server: redis-server did not answer "
				"PING (is it installed? set "
				"STRATA_REDIS_SERVER)\n");
		reap(s, SIGKILL, 1000);
		free(s);
		return NULL;
	}
	return s;
}

void redis_server_stop(struct redis_server **s)
{
	if (s == NULL || *s == NULL)
		return;
	reap(*s, SIGTERM, proc_scaled_ms(5000));
	free(*s);
	*s = NULL;
}

unsigned redis_server_port(const struct redis_server *s)
{
	return s->port;
}

pid_t redis_server_pid(const struct redis_server *s)
{
	return s->pid;
}

char *redis_server_url(const struct redis_server *s, bool with_password,
		       const char *suffix, char *buf, size_t len)
{
	if (with_password && s->password[0] != '\0')
		snprintf(buf, len, "redis://:%s@127.0.0.1:%u%s", s->password,
			 s->port, suffix != NULL ? suffix : "");
	else
		snprintf(buf, len, "redis://127.0.0.1:%u%s", s->port,
			 suffix != NULL ? suffix : "");
	return buf;
}

int redis_server_pause(struct redis_server *s)
{
	if (s->pid <= 0)
		return -ESRCH;
	return kill(s->pid, SIGSTOP) == 0 ? 0 : -errno;
}

int redis_server_resume(struct redis_server *s)
{
	if (s->pid <= 0)
		return -ESRCH;
	return kill(s->pid, SIGCONT) == 0 ? 0 : -errno;
}

int redis_server_kill(struct redis_server *s)
{
	if (s->pid <= 0)
		return -ESRCH;
	reap(s, SIGKILL, proc_scaled_ms(5000));
	return 0;
}

int redis_server_restart(struct redis_server *s)
{
	uint64_t deadline = mono_ms() + (uint64_t)proc_scaled_ms(5000);

	reap(s, SIGKILL, proc_scaled_ms(5000));
	/* The port may be briefly unavailable; retry until the deadline
	 * rather than moving (clients know this port). */
	while (mono_ms() < deadline) {
		s->pid = spawn(s);
		if (s->pid < 0)
			break;
		if (wait_ready(s) == 1)
			return 0;
		reap(s, SIGKILL, 1000);
		sleep_ms(50);
	}
	fprintf(stderr, "redis_server: restart on port %u failed\n", s->port);
	return -1;
}
