/*
 * reply.c: libmicrohttpd responses from Strata's objects; see reply.h.
 */
#include "config.h"

#include "front/reply.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

static void add_one(struct MHD_Response *resp, const char *name,
		    const char *value)
{
	if (MHD_add_response_header(resp, name, value) != MHD_YES)
		strata_log(STRATA_LOG_DEBUG, "dropped response header %s",
			   name);
}

void strata_reply_headers(struct MHD_Response *resp,
			  const struct strata_headers *h,
			  const char *cache_status)
{
	const char *upstream_via = NULL;

	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, "Via") == 0) {
			upstream_via = h->v[i].value;
			continue;
		}
		add_one(resp, h->v[i].name, h->v[i].value);
	}
	if (upstream_via != NULL) {
		char via[512];

		snprintf(via, sizeof(via), "%s, %s", upstream_via, STRATA_VIA);
		add_one(resp, "Via", via);
	} else {
		add_one(resp, "Via", STRATA_VIA);
	}
	add_one(resp, "Cache-Status", cache_status);
}

static void entry_free_cb(void *cls)
{
	struct strata_entry *e = cls;

	strata_entry_release(&e);
}

int strata_reply_entry(struct MHD_Connection *conn, struct strata_entry *e,
		       const char *cache_status, int64_t now,
		       unsigned *status)
{
	struct strata_headers headers = {
		.v = (struct strata_header *)e->headers,
		.n = e->n_headers,
	};
	struct MHD_Response *resp;
	char age[24];
	int rc = 0;

	/* Zero copy: libmicrohttpd sends straight from the entry, which the
	 * response keeps alive until its free callback. */
	resp = MHD_create_response_from_buffer_with_free_callback_cls(
		e->body_len, (void *)e->body, entry_free_cb,
		strata_entry_ref(e));
	if (resp == NULL) {
		strata_entry_release(&e);
		return -ENOMEM;
	}
	strata_reply_headers(resp, &headers, cache_status);
	age[strata_fmt_u64(age, (uint64_t)strata_entry_age_s(e, now))] = '\0';
	add_one(resp, "Age", age);
	if (MHD_queue_response(conn, e->status, resp) == MHD_YES)
		*status = e->status;
	else
		rc = -EIO;
	MHD_destroy_response(resp);
	return rc;
}
