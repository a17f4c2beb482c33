/*
 * pool.c: a fixed thread pool; see pool.h.
 */
#include "config.h"

#include "core/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "strata/strata.h"

struct strata_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct strata_pool_job *head, *tail;  /* guarded by lock */
	bool stopping;                        /* guarded by lock */
	bool joined;                          /* owner's thread only */
	unsigned n_threads;
	pthread_t threads[];
};

static void *worker(void *arg)
{
	struct strata_pool *pool = arg;

	for (;;) {
		struct strata_pool_job *job;

		pthread_mutex_lock(&pool->lock);
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
		job = pool->head;
		if (job != NULL) {
			pool->head = job->next;
			if (pool->head == NULL)
				pool->tail = NULL;
		}
		pthread_mutex_unlock(&pool->lock);
		if (job == NULL)
			return NULL; /* stopping, queue drained */
		job->run(job);
	}
}

int strata_pool_new(unsigned threads, struct strata_pool **out)
{
	struct strata_pool *pool;
	int rc = 0;

	pool = calloc(1, sizeof(*pool) + threads * sizeof(pthread_t));
	if (pool == NULL)
		return -ENOMEM;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
	for (; pool->n_threads < threads; pool->n_threads++) {
		rc = pthread_create(&pool->threads[pool->n_threads], NULL,
				    worker, pool);
		if (rc != 0)
			break;
	}
	if (rc != 0) {
		strata_pool_free(&pool);
		return -rc;
	}
	*out = pool;
	return 0;
}

int strata_pool_submit(struct strata_pool *pool, struct strata_pool_job *job)
{
	int rc = 0;

	job->next = NULL;
	pthread_mutex_lock(&pool->lock);
	if (pool->stopping) {
		rc = STRATA_EUNAVAIL;
	} else {
		if (pool->tail != NULL)
			pool->tail->next = job;
		else
			pool->head = job;
		pool->tail = job;
		pthread_cond_signal(&pool->wake);
	}
	pthread_mutex_unlock(&pool->lock);
	return rc;
}

void strata_pool_stop(struct strata_pool *pool)
{
	if (pool == NULL || pool->joined)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	pool->joined = true;
}

void strata_pool_free(struct strata_pool **poolp)
{
	struct strata_pool *pool;

	if (poolp == NULL || *poolp == NULL)
		return;
	pool = *poolp;
	strata_pool_stop(pool);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
	*poolp = NULL;
}
