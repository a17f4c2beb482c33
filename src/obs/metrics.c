/* metrics.c: stub, being written (see metrics.h). */
#include "config.h"

#include "obs/metrics.h"
