/* admin.c: stub, being written. */
#include "config.h"

#include "front/admin.h"
