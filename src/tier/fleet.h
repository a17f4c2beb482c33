/*
 * fleet.h: what makes the Redis tier a fleet: purges that reach every
 * replica, and a replica that missed some catching up before it serves
 * from its own tiers.
 *
 * Every purge is made here: deleted from Redis, then appended to the
 * capped purge stream (redis.h).  A follower thread with its own
 * connection reads the stream (XREAD BLOCK) and hands each record made by
 * another instance to `apply`, which drops the matching entries from this
 * instance's memory and disk tiers; after each batch it hands the stream
 * position to `position`, which records it in the disk tier, ordered
 * after the removals (strata_disk_meta_put()).
 *
 * The position is "<epoch> <stream id>".  When the follower (re)connects
 * it catches up from the recorded position before it reports itself
 * synced.  If that position is of another dataset (Redis lost its data)
 * or the stream was trimmed past it, purges were missed that can no
 * longer be known, so `apply` gets NULL: drop every local copy.
 *
 * States (strata_fleet_state()):
 *   CATCHING_UP  connected (or starting) and not yet caught up: local
 *                tiers must not serve, only Redis and the origin;
 *   SYNCED       following: local tiers serve;
 *   DOWN         Redis unreachable: purges cannot reach this instance
 *                anyway, so local tiers serve (degraded, not failed).
 *
 * Threads: strata_fleet_purge() and the getters may be called from any
 * thread (purges serialise on a mutex around their own connection);
 * start and stop from the owning thread.  `apply` and `position` run on
 * the follower thread.
 */
#ifndef STRATA_TIER_FLEET_H
#define STRATA_TIER_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/purge.h"
#include "tier/redis.h"

struct strata_fleet;

enum strata_fleet_state {
	STRATA_FLEET_CATCHING_UP,
	STRATA_FLEET_SYNCED,
	STRATA_FLEET_DOWN,
};

/* Apply a purge from another instance (NULL: drop every local copy). */
typedef void strata_fleet_apply_fn(void *arg, const struct strata_purge *p);

/* Record the position (NUL-terminated, at most STRATA_FLEET_POS_MAX). */
typedef void strata_fleet_position_fn(void *arg, const char *position);

#define STRATA_FLEET_POS_MAX 128

struct strata_fleet_config {
	struct strata_redis_config redis;  /* block_ms is set here */
	uint64_t purge_log;                /* stream length kept */
	const char *origin;                /* this instance's id (copied) */
	const char *position;              /* recorded one, or NULL/"" */
	strata_fleet_apply_fn *apply;
	strata_fleet_position_fn *position_cb;
	void *arg;
};

/*
 * Connect and start the follower; return once it has caught up or found
 * Redis down (at most a few command timeouts), so a restarted replica
 * never serves an entry purged while it was away.  Returns 0, -ENOMEM,
 * STRATA_ECONFIG or a negative errno from pthread_create.
 */
int strata_fleet_start(const struct strata_fleet_config *cfg,
		       struct strata_fleet **out);

/* Stop the follower and free; *f = NULL.  Accepts NULL. */
void strata_fleet_stop(struct strata_fleet **f);

/*
 * Purge from Redis and announce it to the fleet (strata_redis_purge()).
 * The caller purges its own tiers itself (its own records are not applied
 * back to it).  Returns 0 with *removed the Redis entries deleted, or
 * STRATA_EUNAVAIL when Redis is down (the purge then reached this
 * instance only).
 */
int strata_fleet_purge(struct strata_fleet *f, const struct strata_purge *p,
		       uint64_t *removed);

/* Delete from Redis only, announcing nothing (strata_redis_delete()). */
int strata_fleet_delete(struct strata_fleet *f, const struct strata_purge *p,
			uint64_t *removed);

/* Whether each of `n` keys has an entry in Redis (out[i]), in one round
 * trip.  Returns 0 or STRATA_EUNAVAIL (out untouched). */
int strata_fleet_exists(struct strata_fleet *f, const struct strata_key *keys,
			size_t n, bool *out);

enum strata_fleet_state strata_fleet_state(const struct strata_fleet *f);

/* Whether this instance's own tiers may answer (not CATCHING_UP). */
bool strata_fleet_local_ok(const struct strata_fleet *f);

/* Records applied from other instances (relaxed). */
uint64_t strata_fleet_applied(const struct strata_fleet *f);

#endif /* STRATA_TIER_FLEET_H */
