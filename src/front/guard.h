/*
 * guard.h: deadlines for what a client must send, whatever its pace.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that
 * sends one byte now and then (slowloris: a request head trickled over
 * minutes; or a body trickled the same way) is never idle, so it would
 * hold a connection, and its buffers, for as long as it likes.  A guard
 * gives each connection a deadline instead: the request head must be
 * complete within `timeout` of the connection's start or of the end of
 * the previous request, and the body within `timeout` of the head.  A
 * connection past its deadline is shut down (shutdown(2), both ways),
 * which libmicrohttpd sees as a closed connection and cleans up on its
 * own thread.  While Strata itself works on a request (an upstream
 * fetch, an answer being sent) no deadline runs.
 *
 * Concurrency: the registry (a list of slots) is guarded by a mutex,
 * taken once per connection at its start and its end, and by the sweeper
 * thread every GUARD_TICK_MS.  A slot's deadline is one atomic word that
 * the connection's worker arms and disarms with relaxed stores, never
 * taking the mutex, and the sweeper reads relaxed: a deadline moved a
 * moment before the sweeper looks is seen at its next tick at the
 * latest, which only shifts a close by one tick.  The sweeper shuts a
 * socket down under the mutex; libmicrohttpd reports a connection closed
 * (strata_guard_remove(), under the same mutex) before it closes the
 * descriptor, so the sweeper never touches a descriptor that was closed
 * and reused.
 */
#ifndef STRATA_FRONT_GUARD_H
#define STRATA_FRONT_GUARD_H

#include <stdint.h>

struct strata_guard;
struct strata_guard_slot;

/* Start the sweeper.  Returns 0 or a negative errno. */
int strata_guard_start(uint64_t timeout_ms, struct strata_guard **out);

/* Stop the sweeper and free the guard; every slot must have been
 * removed.  *g = NULL; accepts NULL. */
void strata_guard_stop(struct strata_guard **g);

/* A new connection on `fd`, armed for its first request head.  NULL when
 * out of memory (the connection then runs without a deadline). */
struct strata_guard_slot *strata_guard_add(struct strata_guard *g, int fd);

/* The connection closed (before its descriptor is).  Accepts NULL. */
void strata_guard_remove(struct strata_guard *g, struct strata_guard_slot *s);

/* Start the clock for what the client sends next (a head, a body), at
 * `now_ms` (CLOCK_MONOTONIC, as strata_now_us() / 1000: the caller has
 * usually read it already).  Accepts NULL.  No lock. */
void strata_guard_arm(struct strata_guard *g, struct strata_guard_slot *s,
		      uint64_t now_ms);

/* Stop it: the request is Strata's now.  Accepts NULL.  No lock. */
void strata_guard_disarm(struct strata_guard_slot *s);

/* Connections shut down so far (relaxed). */
uint64_t strata_guard_fired(const struct strata_guard *g);

#endif /* STRATA_FRONT_GUARD_H */
