/*
 * flight.c: request coalescing; see flight.h.
 *
 * The table is a fixed array of buckets chained through the flights; one
 * mutex guards it all.  Only misses come here, and a flight lives for one
 * origin round trip, so the table stays small and the lock short.
 */
#include "config.h"

#include "cache/flight.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FLIGHTS_MAGIC 0x464c4954u /* "FLIT" */
#define FLIGHT_BUCKETS 1024u

struct strata_flight {
	struct strata_flight *next;      /* bucket chain */
	struct strata_key key;
	char *key_text;
	size_t key_len;
	struct strata_flight_waiter *waiters, **tail;
	size_t n_waiters;
};

struct strata_flights {
	uint32_t magic;
	pthread_mutex_t lock;
	size_t open;
	struct strata_flight *buckets[FLIGHT_BUCKETS];
};

int strata_flights_new(struct strata_flights **out)
{
	struct strata_flights *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->magic = FLIGHTS_MAGIC;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void strata_flights_free(struct strata_flights **tp)
{
	struct strata_flights *t;

	if (tp == NULL || *tp == NULL)
		return;
	t = *tp;
	STRATA_ASSERT(t->magic == FLIGHTS_MAGIC && t->open == 0);
	pthread_mutex_destroy(&t->lock);
	t->magic = 0;
	free(t);
	*tp = NULL;
}

static struct strata_flight **bucket(struct strata_flights *t,
				     const struct strata_key *key)
{
	uint32_t h;

	memcpy(&h, key->hash, sizeof(h));
	return &t->buckets[h % FLIGHT_BUCKETS];
}

static struct strata_flight *find_locked(struct strata_flights *t,
					 const struct strata_key *key,
					 const char *text, size_t len)
{
	struct strata_flight *f = *bucket(t, key);

	for (; f != NULL; f = f->next)
		if (strata_key_equal(&f->key, key) && f->key_len == len &&
		    memcmp(f->key_text, text, len) == 0)
			return f;
	return NULL;
}

int strata_flight_join(struct strata_flights *t, const struct strata_key *key,
		       const char *key_text, size_t key_len,
		       struct strata_flight_waiter *w,
		       void (*on_wait)(void *arg), void *arg,
		       struct strata_flight **out)
{
	struct strata_flight *f, **b;
	int rc = 1;

	STRATA_ASSERT(t->magic == FLIGHTS_MAGIC);
	pthread_mutex_lock(&t->lock);
	f = find_locked(t, key, key_text, key_len);
	if (f != NULL) {
		w->next = NULL;
		*f->tail = w;
		f->tail = &w->next;
		f->n_waiters++;
		on_wait(arg);
		rc = 0;
		goto out;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->key_text = malloc(key_len)) == NULL) {
		free(f);
		rc = -ENOMEM;
		goto out;
	}
	memcpy(f->key_text, key_text, key_len);
	f->key = *key;
	f->key_len = key_len;
	f->tail = &f->waiters;
	b = bucket(t, key);
	f->next = *b;
	*b = f;
	t->open++;
	*out = f;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

size_t strata_flight_end(struct strata_flights *t, struct strata_flight **fp,
			 enum strata_flight_outcome outcome,
			 struct strata_entry *entry, int error)
{
	struct strata_flight *f = *fp, **link;
	struct strata_flight_waiter *w, *next;
	size_t told = 0;

	pthread_mutex_lock(&t->lock);
	for (link = bucket(t, &f->key); *link != f; link = &(*link)->next)
		STRATA_ASSERT(*link != NULL);
	*link = f->next;
	t->open--;
	pthread_mutex_unlock(&t->lock);

	/* Unlinked: nobody else can reach the waiter list now. */
	for (w = f->waiters; w != NULL; w = next) {
		next = w->next; /* done_cb may free the waiter's request */
		w->done_cb(w, outcome, entry, error);
		told++;
	}
	free(f->key_text);
	free(f);
	*fp = NULL;
	return told;
}

size_t strata_flights_open(struct strata_flights *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->open;
	pthread_mutex_unlock(&t->lock);
	return n;
}
