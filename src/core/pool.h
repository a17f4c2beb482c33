/*
 * pool.h: a fixed pool of threads running jobs, for work that may block
 * (memoized C handlers).  Jobs run in submission order, each to
 * completion, on one of `threads` threads.
 *
 * Concurrency: one mutex and condition variable guard the queue; jobs run
 * without it.  A job is owned by its submitter; the pool only links it.
 */
#ifndef STRATA_CORE_POOL_H
#define STRATA_CORE_POOL_H

struct strata_pool;

struct strata_pool_job {
	void (*run)(struct strata_pool_job *job); /* on a pool thread */
	struct strata_pool_job *next;             /* owned by the pool */
};

/* Start `threads` threads.  Returns 0 or a negative errno. */
int strata_pool_new(unsigned threads, struct strata_pool **out);

/* Queue a job.  Returns 0, or STRATA_EUNAVAIL once stopping. */
int strata_pool_submit(struct strata_pool *pool, struct strata_pool_job *job);

/*
 * Refuse new jobs, run the queued ones and join the threads.  The pool
 * stays valid (submit answers STRATA_EUNAVAIL) until strata_pool_free.
 * Idempotent; for the owner's thread only.
 */
void strata_pool_stop(struct strata_pool *pool);

/* Stop if still running, then free; *pool = NULL.  Accepts NULL. */
void strata_pool_free(struct strata_pool **pool);

#endif /* STRATA_CORE_POOL_H */
