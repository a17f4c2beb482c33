/* admin.h: stub, being written. */
#ifndef STRATA_FRONT_ADMIN_H
#define STRATA_FRONT_ADMIN_H
#endif
