/*
 * live.c: reference-counted configuration generations published through
 * RCU (the ordering argument is in live.h).
 */
#include "config.h"

#include "core/live.h"

#include <stdlib.h>

#include "core/rcu.h"
#include "core/route.h"
#include "strata/strata.h"

struct strata_live *strata_live_new(void)
{
	struct strata_live *live = calloc(1, sizeof(*live));

	if (live != NULL)
		atomic_init(&live->refs, 1);
	return live;
}

struct strata_live *strata_live_acquire(struct strata_live_cell *cell)
{
	struct strata_live *live;

	strata_rcu_read_lock();
	live = atomic_load_explicit(&cell->cur, memory_order_acquire);
	if (live != NULL)
		atomic_fetch_add_explicit(&live->refs, 1,
					  memory_order_relaxed);
	strata_rcu_read_unlock();
	return live;
}

void strata_live_release(struct strata_live **livep)
{
	struct strata_live *live;

	if (livep == NULL || *livep == NULL)
		return;
	live = *livep;
	*livep = NULL;
	if (atomic_fetch_sub_explicit(&live->refs, 1,
				      memory_order_acq_rel) != 1)
		return;
	strata_route_table_release(&live->routes);
	free(live->handlers);
	free(live->metric_slot);
	free(live->config_json);
	free(live);
}

void strata_live_publish(struct strata_live_cell *cell,
			 struct strata_live *next)
{
	struct strata_live *prev =
		atomic_exchange_explicit(&cell->cur, next,
					 memory_order_acq_rel);

	if (prev == NULL)
		return;
	strata_rcu_synchronize();
	strata_live_release(&prev);
}

void strata_live_cell_clear(struct strata_live_cell *cell)
{
	struct strata_live *prev =
		atomic_exchange_explicit(&cell->cur, NULL,
					 memory_order_acq_rel);

	if (prev != NULL)
		strata_rcu_synchronize();
	strata_live_release(&prev);
}
