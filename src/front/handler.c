/*
 * handler.c: memoized C handlers: the request and response objects of
 * <strata/handler.h> and the job that runs a handler on a pool thread.
 */
#include "config.h"

#include "front/handler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

const char *strata_request_method(const struct strata_request *req)
{
	return req->method;
}

const char *strata_request_path(const struct strata_request *req)
{
	return req->path;
}

const char *strata_request_query(const struct strata_request *req)
{
	return req->query;
}

const char *strata_request_header(const struct strata_request *req,
				  const char *name)
{
	return strata_headers_get(&req->headers, name);
}

const char *strata_request_body(const struct strata_request *req,
				size_t *len)
{
	*len = req->body_len;
	return req->body;
}

void strata_response_set_status(struct strata_response *resp,
				unsigned status)
{
	if (status >= 100 && status <= 999)
		resp->status = status;
}

int strata_response_add_header(struct strata_response *resp,
			       const char *name, const char *value)
{
	/* A handler cannot inject a second header through a value. */
	if (name[0] == '\0' || strpbrk(name, ":\r\n \t") != NULL ||
	    strpbrk(value, "\r\n") != NULL)
		return -EINVAL;
	return strata_headers_add(&resp->headers, name, value);
}

int strata_response_append(struct strata_response *resp, const void *data,
			   size_t len)
{
	if (resp->body_len + len > resp->body_cap) {
		size_t cap = resp->body_cap ? resp->body_cap : 1024;
		char *body;

		while (cap < resp->body_len + len)
			cap *= 2;
		body = realloc(resp->body, cap);
		if (body == NULL)
			return -ENOMEM;
		resp->body = body;
		resp->body_cap = cap;
	}
	memcpy(resp->body + resp->body_len, data, len);
	resp->body_len += len;
	return 0;
}

static void run_cb(struct strata_pool_job *pool_job)
{
	struct strata_handler_job *job = (struct strata_handler_job *)pool_job;

	job->handler->fn(job->handler->arg, &job->req, &job->resp);
	(void)strata_http_fold_cache_lists(&job->resp.headers);
	if (job->resp.status == 0) {
		strata_log_error("handler for %s returned no status: 500",
				 job->req.path);
		strata_headers_clear(&job->resp.headers);
		job->resp.body_len = 0;
		job->resp.status = 500;
	}
	job->done_cb(job);
}

int strata_handler_job_init(struct strata_handler_job *job,
			    const struct strata_handler *handler,
			    const char *method, const char *target,
			    struct strata_headers *headers, char **body,
			    size_t body_len)
{
	const char *q = strchr(target, '?');
	size_t path_len = q != NULL ? (size_t)(q - target) : strlen(target);

	memset(job, 0, sizeof(*job));
	job->job.run = run_cb;
	job->handler = handler;
	job->req.method = strdup(method);
	job->req.path = strndup(target, path_len);
	job->req.query = q != NULL ? strdup(q + 1) : NULL;
	if (job->req.method == NULL || job->req.path == NULL ||
	    (q != NULL && job->req.query == NULL)) {
		strata_handler_job_clear(job);
		return -ENOMEM;
	}
	job->req.headers = *headers;
	memset(headers, 0, sizeof(*headers));
	job->req.body = *body;
	job->req.body_len = body_len;
	*body = NULL;
	return 0;
}

void strata_handler_job_clear(struct strata_handler_job *job)
{
	free(job->req.method);
	free(job->req.path);
	free(job->req.query);
	strata_headers_clear(&job->req.headers);
	free(job->req.body);
	strata_headers_clear(&job->resp.headers);
	free(job->resp.body);
	memset(job, 0, sizeof(*job));
}
