/* trace.h: stub, being written. */
#ifndef STRATA_OBS_TRACE_H
#define STRATA_OBS_TRACE_H
#endif
