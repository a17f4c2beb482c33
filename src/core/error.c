/*
 * error.c: the library version and the one table of Strata's error codes.
 */
#include "config.h"

#include <string.h>

#include "strata/strata.h"

const char *strata_version(void)
{
	return PACKAGE_VERSION;
}

const char *strata_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case STRATA_EMISS:
		return "not in the cache";
	case STRATA_EUNAVAIL:
		return "unavailable";
	case STRATA_ECONFIG:
		return "invalid configuration";
	case STRATA_ECONNECT:
		return "upstream refused the connection";
	case STRATA_ETIMEOUT:
		return "upstream timed out";
	case STRATA_EUPSTREAM:
		return "upstream sent an invalid response";
	case STRATA_ECANCELED:
		return "cancelled";
	case STRATA_ETOOBIG:
		return "size limit exceeded";
	case STRATA_ECORRUPT:
		return "corrupt stored entry";
	default:
		break;
	}
	if (err < 0 && err > -4096)
		return strerror(-err); /* glibc: thread-safe for known codes */
	return "unknown error";
}
