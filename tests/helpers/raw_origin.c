/*
 * raw_origin.c: see raw_origin.h.
 */
#include "raw_origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct raw_origin {
	int fd;
	unsigned port;
	pthread_t thread;
	pthread_mutex_t lock;      /* guards the fields below */
	char *response;
	bool reset;
	unsigned hang_ms;
	bool stop;
	size_t count;
};

/* Read one request head (to the blank line), bounded in time and size. */
static void read_head(int c)
{
	char buf[8192];
	size_t len = 0;

	while (len < sizeof(buf) - 1) {
		struct pollfd p = {.fd = c, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 2000) <= 0)
			return;
		n = read(c, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			return;
	}
}

static bool stopping(struct raw_origin *o)
{
	bool stop;

	pthread_mutex_lock(&o->lock);
	stop = o->stop;
	pthread_mutex_unlock(&o->lock);
	return stop;
}

static unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000ull +
	       (unsigned long long)ts.tv_nsec / 1000000ull;
}

/* Keep connection c open up to hang_ms: until the peer closes it, the
 * time passes or the origin stops (checked every 50 ms). */
static void hang(struct raw_origin *o, int c, unsigned hang_ms)
{
	unsigned long long end = now_ms() + hang_ms;
	char sink[4096];

	while (now_ms() < end && !stopping(o)) {
		struct pollfd p = {.fd = c, .events = POLLIN};

		if (poll(&p, 1, 50) > 0 && read(c, sink, sizeof(sink)) <= 0)
			return; /* the peer closed (or reset) its end */
	}
}

static void *serve(void *arg)
{
	struct raw_origin *o = arg;

	for (;;) {
		struct pollfd p = {.fd = o->fd, .events = POLLIN};
		char *resp;
		bool reset;
		unsigned hang_ms;
		int c;

		if (stopping(o))
			return NULL;
		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept(o->fd, NULL, NULL);
		if (c < 0)
			continue;
		read_head(c);
		pthread_mutex_lock(&o->lock);
		resp = strdup(o->response);
		reset = o->reset;
		hang_ms = o->hang_ms;
		o->count++;
		pthread_mutex_unlock(&o->lock);
		if (resp != NULL && write(c, resp, strlen(resp)) < 0)
			fprintf(stderr, "raw_origin: write: %s\n",
				strerror(errno));
		free(resp);
		if (hang_ms > 0)
			hang(o, c, hang_ms);
		if (reset) {
			struct linger l = {.l_onoff = 1, .l_linger = 0};

			setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		}
		close(c);
	}
}

struct raw_origin *raw_origin_start(const char *response)
{
	struct raw_origin *o = calloc(1, sizeof(*o));
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	if (o == NULL)
		return NULL;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	o->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	o->response = strdup(response);
	if (o->fd < 0 || o->response == NULL ||
	    bind(o->fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(o->fd, 64) != 0 ||
	    getsockname(o->fd, (struct sockaddr *)&a, &alen) != 0) {
		fprintf(stderr, "raw_origin: cannot listen: %s\n",
			strerror(errno));
		if (o->fd >= 0)
			close(o->fd);
		free(o->response);
		free(o);
		return NULL;
	}
	o->port = ntohs(a.sin_port);
	pthread_mutex_init(&o->lock, NULL);
	if (pthread_create(&o->thread, NULL, serve, o) != 0) {
		close(o->fd);
		free(o->response);
		free(o);
		return NULL;
	}
	return o;
}

void raw_origin_set(struct raw_origin *o, const char *response, bool reset)
{
	char *copy = strdup(response);

	pthread_mutex_lock(&o->lock);
	if (copy != NULL) {
		free(o->response);
		o->response = copy;
	}
	o->reset = reset;
	pthread_mutex_unlock(&o->lock);
}

void raw_origin_set_hang(struct raw_origin *o, unsigned hang_ms)
{
	pthread_mutex_lock(&o->lock);
	o->hang_ms = hang_ms;
	pthread_mutex_unlock(&o->lock);
}

unsigned raw_origin_port(const struct raw_origin *o)
{
	return o->port;
}

size_t raw_origin_count(struct raw_origin *o)
{
	size_t n;

	pthread_mutex_lock(&o->lock);
	n = o->count;
	pthread_mutex_unlock(&o->lock);
	return n;
}

void raw_origin_stop(struct raw_origin **op)
{
	struct raw_origin *o = op != NULL ? *op : NULL;

	if (o == NULL)
		return;
	pthread_mutex_lock(&o->lock);
	o->stop = true;
	pthread_mutex_unlock(&o->lock);
	pthread_join(o->thread, NULL);
	close(o->fd);
	pthread_mutex_destroy(&o->lock);
	free(o->response);
	free(o);
	*op = NULL;
}
