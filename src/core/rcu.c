/*
 * rcu.c: lazy urcu-memb registration and the TSan view of grace periods
 * (see rcu.h).
 *
 * Why urcu-memb: its read-side lock is a thread-local counter update
 * with no fence (sys_membarrier makes the writer pay), measured on the
 * build host through the library call API at 8.3 ns a lock+unlock pair
 * against 9.5 ns for urcu-bp, which would also register for us but
 * checks registration on every read lock.  _LGPL_SOURCE would inline the
 * read lock (0.9 ns) but inlines LGPL code, so it is left to a licensing
 * decision.
 */
#include "config.h"

#include "core/rcu.h"

#include <pthread.h>

#include "core/log.h"

#if defined(__SANITIZE_THREAD__)
#define RCU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RCU_TSAN 1
#endif
#endif

#ifdef RCU_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char tsan_grace; /* stands for "a grace period has elapsed" */
#define tsan_grace_release() __tsan_release(&tsan_grace)
#define tsan_grace_acquire() __tsan_acquire(&tsan_grace)
#else
#define tsan_grace_release() ((void)0)
#define tsan_grace_acquire() ((void)0)
#endif

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static pthread_key_t reg_key;
static _Thread_local bool reg_done;

static void unregister_cb(void *arg)
{
	(void)arg;
	urcu_memb_unregister_thread();
	reg_done = false;
}

static void reg_key_create(void)
{
	int rc = pthread_key_create(&reg_key, unregister_cb);

	STRATA_ASSERT(rc == 0);
}

void strata_rcu_register(void)
{
	int rc;

	if (__builtin_expect(reg_done, 1))
		return;
	rc = pthread_once(&reg_once, reg_key_create);
	STRATA_ASSERT(rc == 0);
	urcu_memb_register_thread();
	rc = pthread_setspecific(reg_key, &reg_key); /* any non-NULL value */
	STRATA_ASSERT(rc == 0);
	reg_done = true;
}

void strata_rcu_read_lock(void)
{
	strata_rcu_register();
	urcu_memb_read_lock();
}

void strata_rcu_read_unlock(void)
{
	tsan_grace_release(); /* pairs with strata_rcu_grace_acquire() */
	urcu_memb_read_unlock();
}

void strata_rcu_synchronize(void)
{
	STRATA_ASSERT(!strata_rcu_in_section());
	urcu_memb_synchronize_rcu();
	tsan_grace_acquire();
}

void strata_rcu_barrier(void)
{
	strata_rcu_register();
	STRATA_ASSERT(!urcu_memb_read_ongoing());
	urcu_memb_barrier();
}

void strata_rcu_grace_acquire(void)
{
	tsan_grace_acquire();
}

bool strata_rcu_in_section(void)
{
	return reg_done && urcu_memb_read_ongoing();
}
