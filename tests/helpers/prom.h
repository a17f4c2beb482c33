/* prom.h: stub, being written. */
#ifndef STRATA_TESTS_PROM_H
#define STRATA_TESTS_PROM_H
#endif
