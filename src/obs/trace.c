/* trace.c: stub, being written. */
#include "config.h"

#include "obs/trace.h"
