/*
 * bare_mhd: the "ceiling" for Strata's cache-hit benchmark.
 *
 * A libmicrohttpd server that answers every GET or HEAD with one fixed body
 * of N bytes and `Cache-Control: max-age=3600`.  It runs libmicrohttpd in
 * the same threading mode as Strata's front end (internal polling thread,
 * epoll, suspend/resume allowed, a pool of THREADS threads), so the
 * difference between it and a Strata memory hit is what Strata itself
 * costs: routing, the key, the lookup and the response headers.  hits.sh
 * also uses it as the origin that the caches fill from.
 *
 *   cc -O2 -o bare_mhd bare_mhd.c $(pkg-config --cflags --libs libmicrohttpd)
 *   ./bare_mhd PORT BODY_BYTES THREADS
 *
 * It listens on 127.0.0.1:PORT and runs until SIGINT or SIGTERM.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

/* enum MHD_Result arrived in 0.9.71; older releases return int. */
#if MHD_VERSION < 0x00097100
#define MHD_RESULT int
#else
#define MHD_RESULT enum MHD_Result
#endif

/*
 * The address of this byte marks "the headers have been seen" in *req_cls.
 * It is never written; only its address matters.
 */
static char headers_seen;

/*
 * Queue the shared response on the SECOND call for a request, not the
 * first.  libmicrohttpd 0.9.75 treats a response queued on the first call
 * (before it has decided whether a request body may follow) as a reason to
 * answer `Connection: close`, and closing every connection cuts keep-alive
 * throughput to about an eighth.  Strata's front end also answers on a
 * later call (its first call only starts the request), so this keeps the
 * comparison fair.
 */
static MHD_RESULT access_cb(void *cls, struct MHD_Connection *conn,
			    const char *url, const char *method,
			    const char *version, const char *upload_data,
			    size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *response = cls;

	(void)url;
	(void)version;
	(void)upload_data;
	if (*req_cls == NULL) {
		*req_cls = &headers_seen;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		/* Discard any request body; it has nothing to say here. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return MHD_NO;
	return MHD_queue_response(conn, MHD_HTTP_OK, response);
}

static int parse_uint(const char *text, const char *what, unsigned long max,
		      unsigned long *out)
{
	char *end;
	unsigned long value;

	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value > max) {
		fprintf(stderr, "bare_mhd: %s: \"%s\" is not a number "
			"from 0 to %lu\n", what, text, max);
		return -EINVAL;
	}
	*out = value;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long port, body_size, threads;
	struct sockaddr_in addr;
	struct MHD_Response *response = NULL;
	struct MHD_Daemon *daemon = NULL;
	char *body = NULL;
	sigset_t stop_signals;
	int sig, status = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: bare_mhd PORT BODY_BYTES THREADS\n");
		return 2;
	}
	if (parse_uint(argv[1], "PORT", 65535, &port) != 0 ||
	    parse_uint(argv[2], "BODY_BYTES", 1UL << 30, &body_size) != 0 ||
	    parse_uint(argv[3], "THREADS", 1024, &threads) != 0)
		return 2;
	if (threads == 0)
		threads = 1;

	/*
	 * Block the stop signals before any thread starts, so every
	 * libmicrohttpd thread inherits the mask and sigwait() below is the
	 * only place they are taken.
	 */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	body = malloc(body_size != 0 ? body_size : 1);
	if (body == NULL) {
		fprintf(stderr, "bare_mhd: cannot allocate %lu bytes\n",
			body_size);
		goto out;
	}
	/* Printable and not all one byte, so a broken copy would show. */
	for (unsigned long i = 0; i < body_size; i++)
		body[i] = (char)('a' + i % 26);

	/* One response shared by every request: libmicrohttpd refcounts it. */
	response = MHD_create_response_from_buffer(body_size, body,
						   MHD_RESPMEM_PERSISTENT);
	if (response == NULL ||
	    MHD_add_response_header(response, "Content-Type",
				    "application/octet-stream") != MHD_YES ||
	    MHD_add_response_header(response, "Cache-Control",
				    "max-age=3600") != MHD_YES) {
		fprintf(stderr, "bare_mhd: cannot build the response\n");
		goto out;
	}

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
		0, NULL, NULL, access_cb, response,
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&addr,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_END);
	if (daemon == NULL) {
		fprintf(stderr, "bare_mhd: cannot listen on 127.0.0.1:%lu "
			"(address in use?)\n", port);
		goto out;
	}

	sigwait(&stop_signals, &sig);
	status = 0;
out:
	if (daemon != NULL)
		MHD_stop_daemon(daemon);
	if (response != NULL)
		MHD_destroy_response(response);
	free(body);
	return status;
}
