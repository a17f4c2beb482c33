/*
 * client.c: libcurl helpers for integration tests (see client.h).
 *
 * Each request uses a fresh connection (FORBID_REUSE), HTTP/1.1 and
 * PATH_AS_IS, so what the test writes is what goes on the wire.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "proc.h"

#define DEFAULT_TIMEOUT_MS 10000L
#define CONNECT_TIMEOUT_MS 5000L

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

uint64_t client_fnv1a64(uint64_t hash, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the curl callbacks fill. */
struct sink {
	struct client_response *resp;
	bool hash_only;
	size_t body_cap;
	bool failed;
};

static void free_headers(struct client_response *resp)
{
	for (size_t i = 0; i < resp->n_headers; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	free(resp->headers);
	resp->headers = NULL;
	resp->n_headers = 0;
}

static size_t header_cb(char *data, size_t size, size_t nitems, void *userdata)
{
	struct sink *sink = userdata;
	struct client_response *resp = sink->resp;
	size_t len = size * nitems;
	const char *colon, *v, *end = data + len;
	struct client_header *grown;

	/* A status line starts a new response (100 Continue, redirects):
	 * only the final response's headers are kept. */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		free_headers(resp);
		return len;
	}
	while (end > data && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	colon = memchr(data, ':', (size_t)(end - data));
	if (colon == NULL || colon == data)
		return len;  /* the blank line, or an obsolete fold */
	v = colon + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	grown = realloc(resp->headers, (resp->n_headers + 1) * sizeof(*grown));
	if (grown == NULL) {
		sink->failed = true;
		return 0;
	}
	resp->headers = grown;
	grown[resp->n_headers].name = strndup(data, (size_t)(colon - data));
	grown[resp->n_headers].value = strndup(v, (size_t)(end - v));
	resp->n_headers++;
	if (grown[resp->n_headers - 1].name == NULL ||
	    grown[resp->n_headers - 1].value == NULL) {
		sink->failed = true;
		return 0;
	}
	return len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct sink *sink = userdata;
	struct client_response *resp = sink->resp;
	size_t len = size * nmemb;

	resp->body_hash = client_fnv1a64(resp->body_hash, data, len);
	if (!sink->hash_only) {
		if (resp->body_len + len + 1 > sink->body_cap) {
			size_t cap = sink->body_cap ? sink->body_cap : 4096;
			char *grown;

			while (cap < resp->body_len + len + 1)
				cap *= 2;
			grown = realloc(resp->body, cap);
			if (grown == NULL) {
				sink->failed = true;
				return 0;
			}
			resp->body = grown;
			sink->body_cap = cap;
		}
		memcpy(resp->body + resp->body_len, data, len);
		resp->body[resp->body_len + len] = '\0';
	}
	resp->body_len += len;
	return len;
}

static long timeout_or_default(long timeout_ms)
{
	return timeout_ms > 0 ? timeout_ms : proc_scaled_ms(DEFAULT_TIMEOUT_MS);
}

/* Options every handle gets: bounded, fresh connection, bytes as written. */
static void common_options(CURL *h, const char *url, long timeout_ms)
{
	long connect_ms = proc_scaled_ms(CONNECT_TIMEOUT_MS);

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 connect_ms < timeout_ms ? connect_ms : timeout_ms);
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
}

long client_request_opts(const char *url, const struct client_options *opts,
			 struct client_response *resp)
{
	const char *method = opts->method != NULL ? opts->method : "GET";
	struct sink sink = {.resp = resp, .hash_only = opts->hash_only};
	struct curl_slist *list = NULL, *grown;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h;
	CURLcode rc;
	double start;

	memset(resp, 0, sizeof(*resp));
	resp->body_hash = CLIENT_FNV1A64_INIT;
	pthread_once(&global_once, global_init);
	h = curl_easy_init();
	if (h == NULL) {
		resp->curl_code = CURLE_FAILED_INIT;
		snprintf(resp->error, sizeof(resp->error), "curl_easy_init");
		return -1;
	}
	common_options(h, url, timeout_or_default(opts->timeout_ms));
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	if (opts->max_recv_bytes_per_s > 0)
		curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE,
				 (curl_off_t)opts->max_recv_bytes_per_s);

	list = curl_slist_append(NULL, "Expect:");
	for (size_t i = 0; list != NULL && opts->headers != NULL &&
			   opts->headers[i] != NULL;
	     i++) {
		grown = curl_slist_append(list, opts->headers[i]);
		if (grown == NULL) {
			curl_slist_free_all(list);
			list = NULL;
		}
		list = grown;
	}
	if (list == NULL) {
		curl_easy_cleanup(h);
		resp->curl_code = CURLE_OUT_OF_MEMORY;
		snprintf(resp->error, sizeof(resp->error), "out of memory");
		return -1;
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);

	if (opts->body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)opts->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, opts->body);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}

	start = now_s();
	rc = curl_easy_perform(h);
	resp->seconds = now_s() - start;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->curl_code = (int)rc;
	if (rc != CURLE_OK)
		snprintf(resp->error, sizeof(resp->error), "%s",
			 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
	else if (sink.failed) {
		resp->curl_code = CURLE_OUT_OF_MEMORY;
		snprintf(resp->error, sizeof(resp->error), "out of memory");
	}
	curl_slist_free_all(list);
	curl_easy_cleanup(h);
	if (resp->body == NULL && !opts->hash_only) {
		resp->body = calloc(1, 1);
		if (resp->body == NULL && resp->curl_code == 0)
			resp->curl_code = CURLE_OUT_OF_MEMORY;
	}
	return resp->curl_code == 0 ? resp->status : -1;
}

long client_request(const char *method, const char *url,
		    const char *const *headers, const void *body, size_t len,
		    struct client_response *resp)
{
	struct client_options opts = {
		.method = method,
		.headers = headers,
		.body = body,
		.body_len = len,
	};

	return client_request_opts(url, &opts, resp);
}

void client_response_free(struct client_response *resp)
{
	if (resp == NULL)
		return;
	free_headers(resp);
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

size_t client_header_all(const struct client_response *resp,
			 const char *name, const char **values, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < resp->n_headers; i++) {
		if (strcasecmp(resp->headers[i].name, name) != 0)
			continue;
		if (n < max)
			values[n] = resp->headers[i].value;
		n++;
	}
	return n;
}

const char *client_header(const struct client_response *resp,
			  const char *name)
{
	const char *value = NULL;

	client_header_all(resp, name, &value, 1);
	return value;
}

static size_t discard_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	(void)data;
	(void)userdata;
	return size * nmemb;
}

int client_concurrent(const char *url, size_t n, long timeout_ms,
		      long *statuses, double *wall_s)
{
	CURLM *multi;
	CURL **handles;
	int running = 0, answered = 0, ret = -1;
	double start;

	pthread_once(&global_once, global_init);
	multi = curl_multi_init();
	handles = calloc(n, sizeof(*handles));
	if (multi == NULL || handles == NULL)
		goto out;
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)n);
	for (size_t i = 0; i < n; i++) {
		statuses[i] = 0;
		handles[i] = curl_easy_init();
		if (handles[i] == NULL)
			goto out;
		common_options(handles[i], url, timeout_or_default(timeout_ms));
		curl_easy_setopt(handles[i], CURLOPT_WRITEFUNCTION, discard_cb);
		curl_easy_setopt(handles[i], CURLOPT_PRIVATE, (void *)i);
	}
	start = now_s();
	for (size_t i = 0; i < n; i++)
		if (curl_multi_add_handle(multi, handles[i]) != CURLM_OK)
			goto out;
	do {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			goto out;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			void *priv = NULL;
			size_t i;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  &priv);
			i = (size_t)priv;
			if (msg->data.result == CURLE_OK) {
				curl_easy_getinfo(msg->easy_handle,
						  CURLINFO_RESPONSE_CODE,
						  &statuses[i]);
				answered++;
			}
		}
		if (running > 0 &&
		    curl_multi_poll(multi, NULL, 0, 200, NULL) != CURLM_OK)
			goto out;
	} while (running > 0);
	*wall_s = now_s() - start;
	ret = answered;
out:
	for (size_t i = 0; handles != NULL && i < n; i++) {
		if (handles[i] == NULL)
			continue;
		curl_multi_remove_handle(multi, handles[i]);
		curl_easy_cleanup(handles[i]);
	}
	free(handles);
	if (multi != NULL)
		curl_multi_cleanup(multi);
	return ret;
}

int client_concurrent_responses(const char *method, const char *url,
				const char *const *headers, size_t n,
				long timeout_ms,
				struct client_response *resps,
				double *wall_s)
{
	CURLM *multi;
	CURL **handles;
	struct sink *sinks;
	struct curl_slist *list = NULL, *grown;
	int running = 0, answered = 0, ret = -1;
	double start;

	if (method == NULL)
		method = "GET";
	for (size_t i = 0; i < n; i++) {
		memset(&resps[i], 0, sizeof(resps[i]));
		resps[i].body_hash = CLIENT_FNV1A64_INIT;
	}
	*wall_s = 0;
	pthread_once(&global_once, global_init);
	multi = curl_multi_init();
	handles = calloc(n, sizeof(*handles));
	sinks = calloc(n, sizeof(*sinks));
	list = curl_slist_append(NULL, "Expect:");
	for (size_t i = 0; list != NULL && headers != NULL &&
			   headers[i] != NULL;
	     i++) {
		grown = curl_slist_append(list, headers[i]);
		if (grown == NULL)
			curl_slist_free_all(list);
		list = grown;
	}
	if (multi == NULL || handles == NULL || sinks == NULL || list == NULL)
		goto out;
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)n);
	for (size_t i = 0; i < n; i++) {
		sinks[i].resp = &resps[i];
		sinks[i].hash_only = true;
		handles[i] = curl_easy_init();
		if (handles[i] == NULL)
			goto out;
		common_options(handles[i], url, timeout_or_default(timeout_ms));
		curl_easy_setopt(handles[i], CURLOPT_HTTPHEADER, list);
		curl_easy_setopt(handles[i], CURLOPT_HEADERFUNCTION, header_cb);
		curl_easy_setopt(handles[i], CURLOPT_HEADERDATA, &sinks[i]);
		curl_easy_setopt(handles[i], CURLOPT_WRITEFUNCTION, write_cb);
		curl_easy_setopt(handles[i], CURLOPT_WRITEDATA, &sinks[i]);
		curl_easy_setopt(handles[i], CURLOPT_PRIVATE, (void *)i);
		if (strcmp(method, "HEAD") == 0)
			curl_easy_setopt(handles[i], CURLOPT_NOBODY, 1L);
		else if (strcmp(method, "GET") != 0)
			curl_easy_setopt(handles[i], CURLOPT_CUSTOMREQUEST,
					 method);
	}
	start = now_s();
	for (size_t i = 0; i < n; i++)
		if (curl_multi_add_handle(multi, handles[i]) != CURLM_OK)
			goto out;
	do {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			goto out;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			struct client_response *resp;
			void *priv = NULL;
			size_t i;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  &priv);
			i = (size_t)priv;
			resp = &resps[i];
			resp->seconds = now_s() - start;
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE,
					  &resp->status);
			resp->curl_code = (int)msg->data.result;
			if (msg->data.result != CURLE_OK)
				snprintf(resp->error, sizeof(resp->error),
					 "%s",
					 curl_easy_strerror(msg->data.result));
			else if (sinks[i].failed) {
				resp->curl_code = CURLE_OUT_OF_MEMORY;
				snprintf(resp->error, sizeof(resp->error),
					 "out of memory");
			} else {
				answered++;
			}
		}
		if (running > 0 &&
		    curl_multi_poll(multi, NULL, 0, 200, NULL) != CURLM_OK)
			goto out;
	} while (running > 0);
	*wall_s = now_s() - start;
	ret = answered;
out:
	for (size_t i = 0; handles != NULL && i < n; i++) {
		if (handles[i] == NULL)
			continue;
		curl_multi_remove_handle(multi, handles[i]);
		curl_easy_cleanup(handles[i]);
	}
	free(handles);
	free(sinks);
	curl_slist_free_all(list);
	if (multi != NULL)
		curl_multi_cleanup(multi);
	return ret;
}

bool client_connect_refused(unsigned port)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = {.tv_sec = 1};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool refused;

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	refused = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 &&
		  errno == ECONNREFUSED;
	close(fd);
	return refused;
}
