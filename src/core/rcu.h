/*
 * rcu.h: the process's one use of liburcu's urcu-memb flavour.
 *
 * Read-side sections are cheap (a thread-local counter, no fence) and a
 * thread that is not inside one never delays a grace period, so every
 * thread that reads is registered lazily on its first section and
 * unregistered by a pthread key destructor when it exits.  This module
 * owns that registration: no other module registers threads itself.
 *
 * ThreadSanitizer cannot see liburcu's grace periods (the library is not
 * instrumented and waits with membarrier and futexes).  Under TSan every
 * read-side section therefore ends with a release on one dummy object,
 * and strata_rcu_synchronize() and every RCU callback (which must start
 * with strata_rcu_grace_acquire()) acquire it: exactly the ordering RCU
 * guarantees, made visible.  Without TSan these are no-ops.
 */
#ifndef STRATA_CORE_RCU_H
#define STRATA_CORE_RCU_H

#include <stdbool.h>

#include <urcu/urcu-memb.h>

/* Register the calling thread if it is not yet (idempotent, cheap). */
void strata_rcu_register(void);

/* Enter a read-side section (registers the thread on first use).
 * Sections nest. */
void strata_rcu_read_lock(void);

/* Leave it. */
void strata_rcu_read_unlock(void);

/* Wait until every read-side section that began before the call has
 * ended.  Never from inside a section; may sleep for milliseconds. */
void strata_rcu_synchronize(void);

/* Wait until every callback queued with urcu_memb_call_rcu() has run. */
void strata_rcu_barrier(void);

/* The first statement of every call_rcu callback (TSan, see above). */
void strata_rcu_grace_acquire(void);

/* Whether the calling thread is inside a read-side section. */
bool strata_rcu_in_section(void);

#endif /* STRATA_CORE_RCU_H */
