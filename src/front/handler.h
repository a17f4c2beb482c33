/*
 * handler.h (internal): memoized C handlers behind <strata/handler.h>.
 *
 * A handler job carries one request to a pool thread and its response
 * back.  The front end builds the job from a client request, submits it
 * to the handler pool and suspends the connection; the job runs the
 * handler, then calls `done_cb` on the pool thread, which resumes the
 * connection.  The job is owned by the front end's request state; the
 * pool only borrows it while it runs.
 */
#ifndef STRATA_FRONT_HANDLER_H
#define STRATA_FRONT_HANDLER_H

#include <stddef.h>

#include "core/http.h"
#include "core/pool.h"
#include "strata/handler.h"

struct strata_handler {
	strata_handler_fn fn;
	void *arg;
};

struct strata_request {
	char *method;
	char *path;                    /* NUL-terminated, no query */
	char *query;                   /* NULL when none */
	struct strata_headers headers; /* all request headers */
	char *body;
	size_t body_len;
};

struct strata_response {
	unsigned status;
	struct strata_headers headers;
	char *body;
	size_t body_len;
	size_t body_cap;
};

struct strata_handler_job {
	struct strata_pool_job job;    /* first: the pool hands this back */
	const struct strata_handler *handler;
	struct strata_request req;
	struct strata_response resp;
	void (*done_cb)(struct strata_handler_job *job);
	void *owner;
};

/*
 * Build a job for `handler` from a request; `headers` and `body` are moved
 * in (the caller's copies are emptied).  Returns 0 or -ENOMEM.
 */
int strata_handler_job_init(struct strata_handler_job *job,
			    const struct strata_handler *handler,
			    const char *method, const char *target,
			    struct strata_headers *headers, char **body,
			    size_t body_len);

/* Free what the job holds (not the job itself). */
void strata_handler_job_clear(struct strata_handler_job *job);

#endif /* STRATA_FRONT_HANDLER_H */
