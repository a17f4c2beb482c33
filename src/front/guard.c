/*
 * guard.c: per-connection receive deadlines (see guard.h).
 */
#include "config.h"

#include "front/guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "core/log.h"
#include "strata/strata.h"

/* How often the sweeper looks: a deadline is enforced within a tick. */
#define GUARD_TICK_MS 250u

struct strata_guard_slot {
	struct strata_guard_slot *prev, *next; /* under g->lock */
	int fd;
	bool fired;                    /* under g->lock */
	_Atomic uint64_t deadline_ms;  /* 0: disarmed */
};

struct strata_guard {
	uint64_t timeout_ms;
	pthread_mutex_t lock;          /* the list, stop */
	pthread_cond_t wake;
	struct strata_guard_slot *head;
	bool stop;
	pthread_t thread;
	_Atomic uint64_t fired;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Under g->lock: shut down every connection past its deadline. */
static void sweep_locked(struct strata_guard *g, uint64_t now)
{
	for (struct strata_guard_slot *s = g->head; s != NULL; s = s->next) {
		uint64_t d = atomic_load_explicit(&s->deadline_ms,
						  memory_order_relaxed);

		if (d == 0 || d > now || s->fired)
			continue;
		s->fired = true;
		shutdown(s->fd, SHUT_RDWR);
		atomic_fetch_add_explicit(&g->fired, 1, memory_order_relaxed);
	}
}

static void *sweeper(void *arg)
{
	struct strata_guard *g = arg;
	struct timespec until;

	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)GUARD_TICK_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&g->wake, &g->lock, &until);
		if (!g->stop)
			sweep_locked(g, now_ms());
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int strata_guard_start(uint64_t timeout_ms, struct strata_guard **out)
{
	struct strata_guard *g = calloc(1, sizeof(*g));
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (g == NULL)
		return -ENOMEM;
	g->timeout_ms = timeout_ms;
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&g->fired, 0);
	rc = pthread_create(&g->thread, NULL, sweeper, g);
	if (rc != 0) {
		pthread_cond_destroy(&g->wake);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return -rc;
	}
	*out = g;
	return 0;
}

void strata_guard_stop(struct strata_guard **gp)
{
	struct strata_guard *g = gp != NULL ? *gp : NULL;

	if (g == NULL)
		return;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	STRATA_ASSERT(g->head == NULL);
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
	*gp = NULL;
}

struct strata_guard_slot *strata_guard_add(struct strata_guard *g, int fd)
{
	struct strata_guard_slot *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->fd = fd;
	atomic_init(&s->deadline_ms, now_ms() + g->timeout_ms);
	pthread_mutex_lock(&g->lock);
	s->next = g->head;
	if (g->head != NULL)
		g->head->prev = s;
	g->head = s;
	pthread_mutex_unlock(&g->lock);
	return s;
}

void strata_guard_remove(struct strata_guard *g, struct strata_guard_slot *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&g->lock);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		g->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&g->lock);
	free(s);
}

void strata_guard_arm(struct strata_guard *g, struct strata_guard_slot *s,
		      uint64_t now)
{
	if (s != NULL)
		atomic_store_explicit(&s->deadline_ms, now + g->timeout_ms,
				      memory_order_relaxed);
}

void strata_guard_disarm(struct strata_guard_slot *s)
{
	if (s != NULL)
		atomic_store_explicit(&s->deadline_ms, 0,
				      memory_order_relaxed);
}

uint64_t strata_guard_fired(const struct strata_guard *g)
{
	return atomic_load_explicit(&g->fired, memory_order_relaxed);
}
