/* prom.c: stub, being written. */
#include "config.h"

#include "prom.h"
