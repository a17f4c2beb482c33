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

#include "cache/conditional.h"
#include "cache/range.h"
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



/* The entry's headers that pass `keep` (NULL: all), then Via, Cache-Status
 * and Age. */
static void entry_headers(struct MHD_Response *resp,
			  const struct strata_entry *e,
			  bool (*keep)(const char *name),
			  const char *cache_status, int64_t now)
{
	struct strata_header kept[STRATA_ENTRY_MAX_HEADERS];
	/* All of them (every hit): the entry's own array, no copy. */
	struct strata_headers h = {.v = (struct strata_header *)e->headers,
				   .n = e->n_headers};
	char age[24];

	if (keep != NULL) {
		h.v = kept;
		h.n = 0;
		for (size_t i = 0; i < e->n_headers; i++)
			if (keep(e->headers[i].name))
				kept[h.n++] = e->headers[i];
	}
	strata_reply_headers(resp, &h, cache_status);
	age[strata_fmt_u64(age, (uint64_t)strata_entry_age_s(e, now))] = '\0';
	add_one(resp, "Age", age);
}

static int queue(struct MHD_Connection *conn, struct MHD_Response *resp,
		 unsigned code, unsigned *status)
{
	int rc = 0;

	if (MHD_queue_response(conn, code, resp) == MHD_YES)
		*status = code;
	else
		rc = -EIO;
	MHD_destroy_response(resp);
	return rc;
}

int strata_reply_entry(struct MHD_Connection *conn, struct strata_entry *e,
		       const char *cache_status, int64_t now,
		       unsigned *status)
{
	struct MHD_Response *resp;

	/* Zero copy: libmicrohttpd sends straight from the entry, which the
	 * response keeps alive until its free callback. */
	resp = MHD_create_response_from_buffer_with_free_callback_cls(
		e->body_len, (void *)e->body, entry_free_cb,
		strata_entry_ref(e));
	if (resp == NULL) {
		strata_entry_release(&e);
		return -ENOMEM;
	}
	entry_headers(resp, e, NULL, cache_status, now);
	return queue(conn, resp, e->status, status);
}

int strata_reply_not_modified(struct MHD_Connection *conn,
			      struct strata_entry *e, const char *cache_status,
			      int64_t now, unsigned *status)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

	if (resp == NULL)
		return -ENOMEM;
	entry_headers(resp, e, strata_conditional_304_keeps, cache_status,
		      now);
	return queue(conn, resp, MHD_HTTP_NOT_MODIFIED, status);
}

/* Every header but the ones a part or a multipart body replaces. */
static bool not_content_type(const char *name)
{
	return strcasecmp(name, "Content-Type") != 0 &&
	       strcasecmp(name, "Content-Range") != 0;
}

static bool not_content_range(const char *name)
{
	return strcasecmp(name, "Content-Range") != 0;
}

int strata_reply_range(struct MHD_Connection *conn, struct strata_entry *e,
		       const struct strata_range_plan *plan,
		       const char *cache_status, int64_t now,
		       unsigned *status)
{
	char cr[STRATA_CONTENT_RANGE_SIZE], boundary[STRATA_RANGE_BOUNDARY_SIZE];
	struct strata_multipart mp;
	struct MHD_Response *resp;
	char *body;
	int rc;

	switch (plan->kind) {
	case STRATA_RANGE_ONE:
		/* Zero copy, as a whole answer: the slice of the entry. */
		resp = MHD_create_response_from_buffer_with_free_callback_cls(
			plan->parts[0].last - plan->parts[0].first + 1,
			(void *)(e->body + plan->parts[0].first), entry_free_cb,
			strata_entry_ref(e));
		if (resp == NULL) {
			strata_entry_release(&e);
			return -ENOMEM;
		}
		entry_headers(resp, e, not_content_range, cache_status, now);
		strata_range_content_range(cr, plan->parts[0].first,
					   plan->parts[0].last, e->body_len);
		add_one(resp, "Content-Range", cr);
		return queue(conn, resp, MHD_HTTP_PARTIAL_CONTENT, status);
	case STRATA_RANGE_MULTI:
		strata_range_boundary(boundary, (uint64_t)(uintptr_t)e ^
							 (uint64_t)now);
		rc = strata_range_multipart_init(
			&mp, plan, strata_entry_header(e, "Content-Type"),
			boundary);
		if (rc != 0)
			return rc;
		body = malloc(mp.body_len ? mp.body_len : 1);
		if (body == NULL ||
		    strata_range_multipart_write(&mp, e->body, e->body_len,
						 body, mp.body_len) != 0) {
			free(body);
			strata_range_multipart_clear(&mp);
			return -ENOMEM;
		}
		resp = MHD_create_response_from_buffer(mp.body_len, body,
						       MHD_RESPMEM_MUST_FREE);
		if (resp == NULL) {
			free(body);
			strata_range_multipart_clear(&mp);
			return -ENOMEM;
		}
		entry_headers(resp, e, not_content_type, cache_status, now);
		add_one(resp, "Content-Type", mp.content_type);
		strata_range_multipart_clear(&mp);
		return queue(conn, resp, MHD_HTTP_PARTIAL_CONTENT, status);
	case STRATA_RANGE_UNSATISFIABLE:
		resp = MHD_create_response_from_buffer(0, NULL,
						       MHD_RESPMEM_PERSISTENT);
		if (resp == NULL)
			return -ENOMEM;
		entry_headers(resp, e, not_content_range, cache_status, now);
		strata_range_content_range_unsatisfied(cr, e->body_len);
		add_one(resp, "Content-Range", cr);
		return queue(conn, resp, MHD_HTTP_RANGE_NOT_SATISFIABLE,
			     status);
	default:
		return strata_reply_entry(conn, e, cache_status, now, status);
	}
}
