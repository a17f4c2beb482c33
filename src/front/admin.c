/*
 * admin.c: the admin listener; see admin.h and docs/admin-api.md.
 *
 * Listing (GET /admin/keys): entries are returned in key-text order, a
 * page at a time; the cursor is the hex of the last key text returned, so
 * the next page starts strictly after it and a key added meanwhile is
 * visited once if it sorts after the cursor, never twice.  Candidates come
 * from the memory tier (a walk of every entry: the tier has no ordered
 * index) and from the disk tier's key-text index (a seek to the cursor);
 * both lists are merged by text, copies of one key joined (their tiers
 * listed), and cut at the limit.  Whether an entry is also in Redis is
 * asked for the page's entries only, in one round trip.  Entries only in
 * Redis are not listed: Redis has no key-text index.
 *
 * Concurrency: libmicrohttpd runs each connection on its own thread; the
 * handlers share nothing but the deps (thread-safe modules) and the
 * immutable token and config JSON.
 */
#include "config.h"

#include "front/admin.h"
#include "front/admin_query.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cache/entry.h"
#include "cache/key.h"
#include "cache/policy.h"
#include "cache/purge.h"
#include "core/live.h"
#include "core/log.h"
#include "core/route.h"
#include "front/front.h"
#include "obs/metrics.h"
#include "tier/disk.h"
#include "tier/fleet.h"
#include "tier/mem.h"
#include "tier/redis_async.h"

#define ADMIN_MAGIC 0x41444d4eu /* "ADMN" */
#define ADMIN_CONNECTIONS 64


struct strata_admin {
	uint32_t magic;
	struct strata_admin_deps deps;
	char *listen;
	char *token;
	struct MHD_Daemon *daemon;
	unsigned port;
};

/* ---- answers --------------------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status,
				 const char *type, char *body, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ok;

	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, "WWW-Authenticate",
					"Bearer realm=\"strata-admin\"");
	ok = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ok;
}

/* Send `doc` (consumed) as JSON. */
static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status,
				 json_t *doc)
{
	char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	size_t len;

	json_decref(doc);
	if (text == NULL)
		return MHD_NO;
	len = strlen(text);
	/* A trailing newline: friendlier for curl in a terminal. */
	{
		char *nl = realloc(text, len + 2);

		if (nl == NULL) {
			free(text);
			return MHD_NO;
		}
		text = nl;
		text[len++] = '\n';
		text[len] = '\0';
	}
	return send_text(conn, status, "application/json", text, len);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
				  const char *code, const char *detail)
{
	return send_json(conn, status,
			 json_pack("{s:s, s:s}", "error", code, "detail",
				   detail));
}

/* ---- auth ------------------------------------------------------------------- */

/* Compare without an early exit: the time does not depend on where the
 * strings differ (their lengths may leak; the token's is not secret). */
static bool equal_const_time(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;
	unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)((i < la ? a[i] : 0) ^
					(i < lb ? b[i] : 0));
	return diff == 0;
}

/* 0 when allowed; else the error already queued (its MHD result in *ok). */
static int check_token(struct strata_admin *admin,
		       struct MHD_Connection *conn, enum MHD_Result *ok)
{
	const char *auth;

	if (admin->token == NULL)
		return 0;
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   "Authorization");
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
		*ok = send_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
				 "this endpoint needs Authorization: Bearer "
				 "<admin.token>");
		return -1;
	}
	if (!equal_const_time(auth + 7, admin->token)) {
		*ok = send_error(conn, MHD_HTTP_FORBIDDEN, "forbidden",
				 "the bearer token is not admin.token");
		return -1;
	}
	return 0;
}

/* ---- entries as JSON -------------------------------------------------------------- */

static json_t *tiers_json(unsigned tiers)
{
	json_t *a = json_array();

	if (tiers & STRATA_ADMIN_TIER_MEMORY)
		json_array_append_new(a, json_string("memory"));
	if (tiers & STRATA_ADMIN_TIER_DISK)
		json_array_append_new(a, json_string("disk"));
	if (tiers & STRATA_ADMIN_TIER_REDIS)
		json_array_append_new(a, json_string("redis"));
	return a;
}

/* A string that may hold any bytes: JSON strings must be UTF-8. */
static json_t *bytes_string(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);

	return j != NULL ? j : json_string("(not UTF-8)");
}

static json_t *entry_json(const struct strata_entry *e, unsigned tiers,
			  int64_t now)
{
	char hex[STRATA_KEY_HEX_LEN + 1];
	json_t *tags = json_array();

	strata_key_hex(&e->key, hex);
	for (size_t i = 0; i < e->n_tags; i++)
		json_array_append_new(tags, json_string(e->tags[i]));
	return json_pack(
		"{s:o, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:o, s:o}", "key",
		bytes_string(e->key_text, e->key_len), "hash", hex, "route",
		e->route, "status", (int)e->status, "size",
		(json_int_t)e->body_len, "age",
		(json_int_t)strata_entry_age_s(e, now), "ttl",
		(json_int_t)strata_entry_ttl_s(e, now), "hits",
		(json_int_t)atomic_load_explicit(&e->hits,
						 memory_order_relaxed),
		"tiers", tiers_json(tiers), "tags", tags);
}

/* Whether a body is printable text (UTF-8 without control bytes other
 * than whitespace); jansson validates the UTF-8 itself. */
static bool is_text(const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)b[i];

		if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
			return false;
	}
	return true;
}

static char *base64(const char *in, size_t len)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
				  "opqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned char)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned char)in[i + 1] << 8;
		if (i + 2 < len)
			v |= (unsigned char)in[i + 2];
		*p++ = tbl[(v >> 18) & 63];
		*p++ = tbl[(v >> 12) & 63];
		*p++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		*p++ = i + 2 < len ? tbl[v & 63] : '=';
	}
	*p = '\0';
	return out;
}

static void add_details(json_t *o, const struct strata_entry *e, bool body)
{
	json_t *headers = json_array();
	json_t *text;

	for (size_t i = 0; i < e->n_headers; i++)
		json_array_append_new(
			headers, json_pack("[s,o]", e->headers[i].name,
					   bytes_string(e->headers[i].value,
							strlen(e->headers[i]
								       .value))));
	json_object_set_new(o, "headers", headers);
	if (!body)
		return;
	text = is_text(e->body, e->body_len)
		       ? json_stringn(e->body, e->body_len)
		       : NULL;
	if (text != NULL) {
		json_object_set_new(o, "body", text);
		json_object_set_new(o, "body_encoding", json_string("text"));
	} else {
		char *b64 = base64(e->body, e->body_len);

		json_object_set_new(o, "body", json_string(b64 ? b64 : ""));
		json_object_set_new(o, "body_encoding", json_string("base64"));
		free(b64);
	}
}

/* ---- finding entries -------------------------------------------------------------- */


struct cand {
	struct strata_entry *e;   /* a reference */
	unsigned tiers;
};

struct cands {
	struct cand *v;
	size_t n, cap;
	int rc;
};

static bool path_is(const struct strata_entry *e, const char *path)
{
	size_t len, plen = strlen(path);
	const char *p = strata_purge_key_path(e->key_text, e->key_len, &len);
	const char *q = memchr(p, '?', len);

	if (q != NULL)
		len = (size_t)(q - p);
	return len == plen && memcmp(p, path, len) == 0;
}

static bool text_after(const struct strata_entry *e, const char *after)
{
	size_t alen = strlen(after);
	int c = memcmp(e->key_text, after,
		       e->key_len < alen ? e->key_len : alen);

	return c > 0 || (c == 0 && e->key_len > alen);
}

static bool matches(const struct strata_admin_filter *f, const struct strata_entry *e)
{
	size_t len;
	const char *p;

	if (strata_entry_header(e, "X-Strata-Variants") != NULL)
		return false; /* a variants marker, not an answer */
	if (f->after != NULL && !text_after(e, f->after))
		return false;
	if (f->prefix != NULL) {
		p = strata_purge_key_path(e->key_text, e->key_len, &len);
		if (len < strlen(f->prefix) ||
		    memcmp(p, f->prefix, strlen(f->prefix)) != 0)
			return false;
	}
	if (f->path != NULL && !path_is(e, f->path))
		return false;
	if (f->route != NULL && strcmp(e->route, f->route) != 0)
		return false;
	if (f->tag != NULL) {
		size_t i;

		for (i = 0; i < e->n_tags; i++)
			if (strcmp(e->tags[i], f->tag) == 0)
				break;
		if (i == e->n_tags)
			return false;
	}
	return true;
}

static void push(struct cands *c, struct strata_entry *e, unsigned tiers)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct cand *v = realloc(c->v, cap * sizeof(*v));

		if (v == NULL) {
			c->rc = -ENOMEM;
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct cand){strata_entry_ref(e), tiers};
}

static void cands_free(struct cands *c)
{
	for (size_t i = 0; i < c->n; i++)
		strata_entry_release(&c->v[i].e);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

struct walk {
	const struct strata_admin_filter *f;
	struct cands *out;
	struct strata_disk *disk;
	size_t wanted;        /* stop the disk scan after this many */
	size_t found;
};

static bool mem_walk_cb(struct strata_entry *e, void *arg)
{
	struct walk *w = arg;

	if (matches(w->f, e))
		push(w->out, e, STRATA_ADMIN_TIER_MEMORY);
	return w->out->rc == 0;
}

static int disk_walk_cb(void *arg, const char *key_text, size_t key_len,
			const struct strata_key *key)
{
	struct walk *w = arg;
	struct strata_entry *e = NULL;

	(void)key_text;
	(void)key_len;
	if (strata_disk_peek(w->disk, key, &e) != 0)
		return 0;
	if (matches(w->f, e)) {
		push(w->out, e, STRATA_ADMIN_TIER_DISK);
		w->found++;
	}
	strata_entry_release(&e);
	return w->out->rc != 0 || (w->wanted && w->found >= w->wanted);
}

static int by_text(const void *a, const void *b)
{
	const struct strata_entry *x = ((const struct cand *)a)->e;
	const struct strata_entry *y = ((const struct cand *)b)->e;
	int c = memcmp(x->key_text, y->key_text,
		       x->key_len < y->key_len ? x->key_len : y->key_len);

	if (c != 0)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return memcmp(x->key.hash, y->key.hash, STRATA_KEY_HASH_LEN);
}

/* Sort by text and join copies of one key (the memory one is kept). */
static void merge(struct cands *c)
{
	size_t w = 0;

	if (c->n < 2)
		return; /* nothing to sort or join (and v may be NULL) */
	qsort(c->v, c->n, sizeof(*c->v), by_text);
	for (size_t r = 0; r < c->n; r++) {
		if (w > 0 && strata_key_equal(&c->v[w - 1].e->key,
					      &c->v[r].e->key)) {
			c->v[w - 1].tiers |= c->v[r].tiers;
			if (c->v[r].tiers & STRATA_ADMIN_TIER_MEMORY) {
				struct strata_entry *t = c->v[w - 1].e;

				c->v[w - 1].e = c->v[r].e;
				c->v[r].e = t;
			}
			strata_entry_release(&c->v[r].e);
			continue;
		}
		c->v[w++] = c->v[r];
	}
	c->n = w;
}

/* Mark which candidates Redis holds too. */
static void mark_redis(struct strata_admin *admin, struct cands *c, size_t n)
{
	struct strata_key *keys;
	bool *in;

	if (admin->deps.fleet == NULL || n == 0)
		return;
	keys = calloc(n, sizeof(*keys));
	in = calloc(n, sizeof(*in));
	if (keys != NULL && in != NULL) {
		for (size_t i = 0; i < n; i++)
			keys[i] = c->v[i].e->key;
		if (strata_fleet_exists(admin->deps.fleet, keys, n, in) == 0)
			for (size_t i = 0; i < n; i++)
				if (in[i])
					c->v[i].tiers |= STRATA_ADMIN_TIER_REDIS;
	}
	free(keys);
	free(in);
}

/*
 * The entries matching `f`, in key-text order, at most f->limit (0: all)
 * plus one more when there is a next page (*more).
 */
static int find(struct strata_admin *admin, const struct strata_admin_filter *f,
		struct cands *out, bool *more)
{
	struct walk w = {.f = f, .out = out, .disk = admin->deps.disk,
			 .wanted = f->limit ? f->limit + 1 : 0};
	size_t keep;

	*more = false;
	if (f->tiers == 0 || (f->tiers & (STRATA_ADMIN_TIER_MEMORY | STRATA_ADMIN_TIER_REDIS)))
		strata_mem_foreach(admin->deps.mem, mem_walk_cb, &w);
	if (out->rc == 0 && admin->deps.disk != NULL &&
	    (f->tiers == 0 || (f->tiers & (STRATA_ADMIN_TIER_DISK | STRATA_ADMIN_TIER_REDIS))))
		strata_disk_scan_after(admin->deps.disk, "", f->after, 0,
				       disk_walk_cb, &w);
	if (out->rc != 0)
		return out->rc;
	merge(out);
	keep = out->n;
	if (f->limit && keep > f->limit) {
		*more = true;
		keep = f->limit;
	}
	mark_redis(admin, out, keep);
	/* Drop what the page does not show, and what lacks a wanted tier. */
	{
		size_t w2 = 0;

		for (size_t i = 0; i < out->n; i++) {
			if (i >= keep ||
			    (f->tiers != 0 && !(out->v[i].tiers & f->tiers))) {
				strata_entry_release(&out->v[i].e);
				continue;
			}
			out->v[w2++] = out->v[i];
		}
		out->n = w2;
	}
	return 0;
}

/* ---- query parameters ------------------------------------------------------------ */

static const char *arg(struct MHD_Connection *conn, const char *name)
{
	const char *v = MHD_lookup_connection_value(
		conn, MHD_GET_ARGUMENT_KIND, name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static bool flag(struct MHD_Connection *conn, const char *name)
{
	return strata_admin_flag(arg(conn, name));
}

/* Fill a filter from the query.  Returns 0 or queues a 400 (*ok). */
static int read_filter(struct MHD_Connection *conn,
		       struct strata_admin_filter *f, char **cursor_text,
		       enum MHD_Result *ok)
{
	const struct strata_admin_query q = {
		.prefix = arg(conn, "prefix"), .path = arg(conn, "path"),
		.tag = arg(conn, "tag"), .route = arg(conn, "route"),
		.tier = arg(conn, "tier"), .limit = arg(conn, "limit"),
		.cursor = arg(conn, "cursor"),
	};
	const char *why = "out of memory";
	int rc = strata_admin_filter_parse(&q, f, cursor_text, &why);

	if (rc == 0)
		return 0;
	*ok = send_error(conn, rc == -EINVAL ? MHD_HTTP_BAD_REQUEST
					     : MHD_HTTP_INTERNAL_SERVER_ERROR,
			 rc == -EINVAL ? "bad_request" : "internal", why);
	return -1;
}

/* ---- endpoints ----------------------------------------------------------------------- */

static enum MHD_Result list_keys(struct strata_admin *admin,
				 struct MHD_Connection *conn)
{
	struct strata_admin_filter f;
	struct cands c = {0};
	char *cursor_text = NULL, *next = NULL;
	enum MHD_Result ok = MHD_NO;
	int64_t now = strata_wall_ms();
	json_t *keys;
	bool more;

	if (read_filter(conn, &f, &cursor_text, &ok) != 0)
		return ok;
	if (find(admin, &f, &c, &more) != 0) {
		ok = send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
				"out of memory");
		goto out;
	}
	keys = json_array();
	for (size_t i = 0; i < c.n; i++)
		json_array_append_new(keys, entry_json(c.v[i].e, c.v[i].tiers,
						       now));
	if (more && c.n > 0)
		next = strata_admin_cursor_encode(c.v[c.n - 1].e->key_text,
				  c.v[c.n - 1].e->key_len);
	ok = send_json(conn, MHD_HTTP_OK,
		       json_pack("{s:o, s:o}", "keys", keys, "next_cursor",
				 next != NULL ? json_string(next)
					      : json_null()));
out:
	free(next);
	free(cursor_text);
	cands_free(&c);
	return ok;
}

/* The entry under a hash in this server's tiers (memory preferred). */
static int find_hash(struct strata_admin *admin, const struct strata_key *key,
		     struct strata_entry **out, unsigned *tiers)
{
	struct strata_entry *d = NULL;

	*tiers = 0;
	if (strata_mem_peek(admin->deps.mem, key, out) == 0)
		*tiers |= STRATA_ADMIN_TIER_MEMORY;
	if (admin->deps.disk != NULL &&
	    strata_disk_peek(admin->deps.disk, key, &d) == 0) {
		*tiers |= STRATA_ADMIN_TIER_DISK;
		if (*out == NULL)
			*out = d;
		else
			strata_entry_release(&d);
	}
	if (*out != NULL && admin->deps.fleet != NULL) {
		bool in = false;

		if (strata_fleet_exists(admin->deps.fleet, key, 1, &in) == 0 &&
		    in)
			*tiers |= STRATA_ADMIN_TIER_REDIS;
	}
	return *out != NULL ? 0 : STRATA_EMISS;
}

static enum MHD_Result show_key(struct strata_admin *admin,
				struct MHD_Connection *conn, const char *hex)
{
	struct strata_key key;
	struct strata_entry *e = NULL;
	unsigned tiers;
	json_t *o;

	if (strata_key_from_hex(hex, &key) != 0)
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "a key hash is 32 hex digits");
	if (find_hash(admin, &key, &e, &tiers) != 0)
		return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
				  "no entry with this hash on this server");
	o = entry_json(e, tiers, strata_wall_ms());
	add_details(o, e, flag(conn, "body"));
	strata_entry_release(&e);
	return send_json(conn, MHD_HTTP_OK, o);
}

static json_t *result_json(const struct strata_purge_result *r,
			   uint64_t purged)
{
	return json_pack("{s:I, s:{s:I, s:I, s:I}, s:b}", "purged",
			 (json_int_t)purged, "tiers", "memory",
			 (json_int_t)r->memory, "disk", (json_int_t)r->disk,
			 "redis", (json_int_t)r->redis, "fleet", r->fleet);
}

/* A dry run: what a purge matching `f` would remove here. */
static enum MHD_Result dry_run(struct strata_admin *admin,
			       struct MHD_Connection *conn, struct strata_admin_filter *f)
{
	struct cands c = {0};
	json_t *entries = json_array();
	bool more;

	f->limit = 0;
	if (find(admin, f, &c, &more) != 0) {
		json_decref(entries);
		cands_free(&c);
		return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "internal", "out of memory");
	}
	for (size_t i = 0; i < c.n; i++) {
		char hex[STRATA_KEY_HEX_LEN + 1];

		strata_key_hex(&c.v[i].e->key, hex);
		json_array_append_new(
			entries,
			json_pack("{s:s, s:o, s:o}", "hash", hex, "key",
				  bytes_string(c.v[i].e->key_text,
					       c.v[i].e->key_len),
				  "tiers", tiers_json(c.v[i].tiers)));
	}
	cands_free(&c);
	return send_json(conn, MHD_HTTP_OK,
			 json_pack("{s:b, s:I, s:o}", "dry_run", 1, "purged",
				   (json_int_t)json_array_size(entries),
				   "entries", entries));
}

/* Distinct local entries a purge is about to remove (for "purged"). */
static size_t count_local(struct strata_admin *admin, struct strata_admin_filter *f)
{
	struct cands c = {0};
	bool more;
	size_t n;

	f->limit = 0;
	if (find(admin, f, &c, &more) != 0)
		n = 0;
	else
		n = c.n;
	cands_free(&c);
	return n;
}

static enum MHD_Result purge_one(struct strata_admin *admin,
				 struct MHD_Connection *conn, const char *hex)
{
	struct strata_purge_result r = {0};
	struct strata_key key;
	struct strata_entry *e = NULL;
	unsigned tiers = 0;
	int rc;

	if (strata_key_from_hex(hex, &key) != 0)
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "a key hash is 32 hex digits");
	(void)find_hash(admin, &key, &e, &tiers);
	if (flag(conn, "dry_run")) {
		json_t *entries = json_array();

		if (e != NULL)
			json_array_append_new(
				entries,
				json_pack("{s:s, s:o, s:o}", "hash", hex,
					  "key",
					  bytes_string(e->key_text,
						       e->key_len),
					  "tiers", tiers_json(tiers)));
		strata_entry_release(&e);
		return send_json(conn, MHD_HTTP_OK,
				 json_pack("{s:b, s:I, s:o}", "dry_run", 1,
					   "purged",
					   (json_int_t)json_array_size(
						   entries),
					   "entries", entries));
	}
	strata_entry_release(&e);
	rc = admin->deps.purge(admin->deps.ctx, "key", hex, &r);
	if (rc != 0)
		return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "unavailable", strata_strerror(rc));
	/* Local tiers found by peeking (a disk removal is not counted by
	 * the purge); Redis by its own count. */
	if (tiers & STRATA_ADMIN_TIER_DISK)
		r.disk = 1;
	return send_json(conn, MHD_HTTP_OK,
			 result_json(&r, tiers != 0 || r.redis > 0 ? 1 : 0));
}

static enum MHD_Result purge_many(struct strata_admin *admin,
				  struct MHD_Connection *conn)
{
	struct strata_purge_result r = {0};
	struct strata_admin_filter f = {0};
	const char *kind, *value;
	uint64_t local, purged;
	int rc, given = 0;

	f.path = arg(conn, "path");
	f.prefix = arg(conn, "prefix");
	f.tag = arg(conn, "tag");
	given = (f.path != NULL) + (f.prefix != NULL) + (f.tag != NULL);
	if (given != 1)
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "give exactly one of path, prefix or tag "
				  "(a flush is POST /admin/flush)");
	if (flag(conn, "dry_run"))
		return dry_run(admin, conn, &f);
	local = count_local(admin, &f);
	if (f.tag != NULL) {
		kind = "tag";
		value = f.tag;
	} else if (f.path != NULL) {
		kind = "path";
		value = f.path;
	} else {
		kind = "prefix";
		value = f.prefix;
	}
	rc = admin->deps.purge(admin->deps.ctx, kind, value, &r);
	if (rc == -EINVAL)
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "a path or prefix starts with \"/\" (a path "
				  "has no query); a tag has no spaces");
	if (rc != 0)
		return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "unavailable", strata_strerror(rc));
	purged = local > r.redis ? local : r.redis;
	return send_json(conn, MHD_HTTP_OK, result_json(&r, purged));
}

static enum MHD_Result flush(struct strata_admin *admin,
			     struct MHD_Connection *conn)
{
	static const struct strata_purge all = {.kind = STRATA_PURGE_ALL,
						.arg = ""};
	struct strata_purge_result r = {0};
	unsigned tier;
	int rc = 0;

	if (strata_admin_tier_parse(arg(conn, "tier"), &tier) != 0)
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "tier must be memory, disk or redis");
	switch (tier) {
	case 0: /* everything, on every replica */
		rc = admin->deps.purge(admin->deps.ctx, "all", "", &r);
		break;
	case STRATA_ADMIN_TIER_MEMORY:
		r.memory = strata_mem_clear(admin->deps.mem);
		break;
	case STRATA_ADMIN_TIER_DISK:
		if (admin->deps.disk != NULL) {
			struct strata_disk_stats st;

			strata_disk_stats(admin->deps.disk, &st);
			rc = strata_disk_clear(admin->deps.disk);
			if (rc == 0)
				rc = strata_disk_flush(admin->deps.disk);
			r.disk = st.entries;
		}
		break;
	case STRATA_ADMIN_TIER_REDIS:
		if (admin->deps.fleet != NULL)
			rc = strata_fleet_delete(admin->deps.fleet, &all,
						 &r.redis);
		break;
	}
	if (rc != 0)
		return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "unavailable", strata_strerror(rc));
	return send_json(conn, MHD_HTTP_OK,
			 json_pack("{s:{s:I, s:I, s:I}, s:b}", "flushed",
				   "memory", (json_int_t)r.memory, "disk",
				   (json_int_t)r.disk, "redis",
				   (json_int_t)r.redis, "fleet", r.fleet));
}

/* ---- tiers' state, stats, metrics -------------------------------------------------- */

static size_t tier_states(struct strata_admin *admin,
			  struct strata_metrics_tier *t)
{
	struct strata_mem_stats ms;

	strata_mem_stats(admin->deps.mem, &ms);
	t[0] = (struct strata_metrics_tier){
		.name = "memory", .on = ms.budget > 0, .up = ms.budget > 0,
		.hits = ms.hits, .misses = ms.misses, .entries = ms.entries,
		.bytes = ms.bytes, .limit = ms.budget,
		.evictions = ms.evictions};
	t[1] = (struct strata_metrics_tier){.name = "disk"};
	if (admin->deps.disk != NULL) {
		struct strata_disk_stats ds;

		strata_disk_stats(admin->deps.disk, &ds);
		t[1] = (struct strata_metrics_tier){
			.name = "disk", .on = true, .up = true,
			.hits = ds.hits, .misses = ds.misses,
			.entries = ds.entries, .bytes = ds.bytes_used,
			.limit = ds.size, .evictions = ds.evictions,
			.dropped = ds.dropped};
	}
	t[2] = (struct strata_metrics_tier){.name = "redis"};
	if (admin->deps.shared != NULL) {
		struct strata_redis_async_stats rs;

		strata_redis_async_stats(admin->deps.shared, &rs);
		t[2] = (struct strata_metrics_tier){
			.name = "redis", .on = true,
			.up = rs.redis.state == STRATA_REDIS_UP,
			.hits = rs.redis.hits, .misses = rs.redis.misses,
			.dropped = rs.dropped};
	}
	return 3;
}

static const char *tier_word(const struct strata_metrics_tier *t)
{
	return !t->on ? "off" : t->up ? "up" : "down";
}

static enum MHD_Result ready(struct strata_admin *admin,
			     struct MHD_Connection *conn)
{
	static const char *const states[] = {"starting", "ready", "draining"};
	struct strata_metrics_tier t[3];
	enum strata_admin_state st = admin->deps.state(admin->deps.ctx);
	bool up = admin->deps.upstream_up(admin->deps.ctx);

	tier_states(admin, t);
	return send_json(
		conn,
		st == STRATA_ADMIN_READY ? MHD_HTTP_OK
					 : MHD_HTTP_SERVICE_UNAVAILABLE,
		json_pack("{s:b, s:s, s:{s:s, s:s, s:s}, s:s}", "ready",
			  st == STRATA_ADMIN_READY, "state", states[st],
			  "tiers", "memory", tier_word(&t[0]), "disk",
			  tier_word(&t[1]), "redis", tier_word(&t[2]),
			  "upstream", up ? "up" : "down"));
}

static enum MHD_Result metrics(struct strata_admin *admin,
			       struct MHD_Connection *conn)
{
	struct strata_metrics_tier t[3];
	char *text = NULL;
	size_t len = 0;

	tier_states(admin, t);
	if (strata_metrics_render(admin->deps.metrics, t, 3, &text, &len) !=
	    0)
		return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "internal", "out of memory");
	return send_text(conn, MHD_HTTP_OK,
			 "text/plain; version=0.0.4; charset=utf-8", text,
			 len);
}

static enum MHD_Result stats(struct strata_admin *admin,
			     struct MHD_Connection *conn)
{
	struct strata_metrics_tier t[3];
	struct strata_metrics_upstream_stats us;
	json_t *tiers = json_object(), *routes = json_object();
	struct strata_live *live = strata_live_acquire(admin->deps.live);
	size_t n = strata_route_table_size(live->routes);

	tier_states(admin, t);
	for (size_t i = 0; i < 3; i++) {
		uint64_t looked = t[i].hits + t[i].misses;

		json_object_set_new(
			tiers, t[i].name,
			json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, "
				  "s:I, s:f}",
				  "on", t[i].on, "up", t[i].up, "entries",
				  (json_int_t)t[i].entries, "bytes",
				  (json_int_t)t[i].bytes, "limit",
				  (json_int_t)t[i].limit, "hits",
				  (json_int_t)t[i].hits, "misses",
				  (json_int_t)t[i].misses, "evictions",
				  (json_int_t)t[i].evictions, "dropped",
				  (json_int_t)t[i].dropped, "hit_ratio",
				  looked ? (double)t[i].hits / (double)looked
					 : 0.0));
	}
	for (size_t i = 0; i < n; i++) {
		struct strata_metrics_route_stats rs;

		strata_metrics_route_stats(admin->deps.metrics,
					   live->metric_slot[i], &rs);
		json_object_set_new(
			routes, strata_route_table_at(live->routes, i)->name,
			json_pack("{s:I, s:I, s:I, s:f}", "requests",
				  (json_int_t)rs.requests, "hits",
				  (json_int_t)rs.hits, "collapsed",
				  (json_int_t)rs.collapsed,
				  "origin_seconds_saved",
				  rs.origin_seconds_saved));
	}
	strata_live_release(&live);
	strata_metrics_upstream_stats(admin->deps.metrics, &us);
	return send_json(conn, MHD_HTTP_OK,
			 json_pack("{s:o, s:{s:I, s:I, s:I}, s:o}", "tiers",
				   tiers, "upstream", "requests",
				   (json_int_t)us.requests, "errors",
				   (json_int_t)us.errors, "in_flight",
				   (json_int_t)us.in_flight, "routes",
				   routes));
}

/* ---- explain ---------------------------------------------------------------------------- */

struct explain_headers {
	const char *names[32];
	const char *values[32];
	char storage[32][256];
	size_t n;
};

static enum MHD_Result collect_h_cb(void *cls, enum MHD_ValueKind kind,
				    const char *key, const char *value)
{
	struct explain_headers *h = cls;
	char *colon;

	(void)kind;
	if (strcmp(key, "h") != 0 || value == NULL || h->n >= 32)
		return MHD_YES;
	snprintf(h->storage[h->n], sizeof(h->storage[h->n]), "%s", value);
	colon = strchr(h->storage[h->n], ':');
	if (colon == NULL)
		return MHD_YES;
	*colon++ = '\0';
	while (*colon == ' ')
		colon++;
	h->names[h->n] = h->storage[h->n];
	h->values[h->n] = colon;
	h->n++;
	return MHD_YES;
}

/* strata_key_header_fn over the explain request's h= headers. */
static const char *explain_header(void *arg, const char *name, char *buf,
				  size_t cap)
{
	struct explain_headers *h = arg;
	size_t len = 0;
	bool found = false;

	for (size_t i = 0; i < h->n; i++) {
		size_t n = strlen(h->values[i]);

		if (strcasecmp(h->names[i], name) != 0)
			continue;
		if (len + (found ? 2 : 0) + n + 1 > cap)
			return STRATA_KEY_HEADER_TOOBIG;
		if (found) {
			memcpy(buf + len, ", ", 2);
			len += 2;
		}
		memcpy(buf + len, h->values[i], n + 1);
		len += n;
		found = true;
	}
	return found ? buf : NULL;
}

static bool has_header(const struct explain_headers *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->names[i], name) == 0)
			return true;
	return false;
}

static enum MHD_Result explain(struct strata_admin *admin,
			       struct MHD_Connection *conn)
{
	const char *method = arg(conn, "method"), *url = arg(conn, "url");
	struct explain_headers h = {0};
	const struct strata_route *route;
	char text[4096], hex[STRATA_KEY_HEX_LEN + 1];
	struct strata_key key;
	struct strata_entry *e = NULL;
	const char *reason = NULL;
	unsigned tiers = 0;
	size_t len = 0;
	json_t *o, *entry = json_null();
	struct strata_live *live;
	int rc;

	if (method == NULL)
		method = "GET";
	if (url == NULL || url[0] != '/')
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "url must be a path, as in url=/api/x?y=1");
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_h_cb,
				  &h);
	live = strata_live_acquire(admin->deps.live);
	route = strata_route_match(live->routes, url, strcspn(url, "?"));
	o = json_pack("{s:o, s:s, s:s}", "route",
		      route != NULL ? json_string(route->name) : json_null(),
		      "method", method, "url", url);
	if (route == NULL)
		reason = "no route matches: passed through, never cached";
	else if (route->ttl_ms == 0 && !route->ttl_origin)
		reason = "the route's ttl is 0: passed through";
	else if (!strata_route_caches(route, strata_method_bit(method)))
		reason = "the route does not cache this method";
	else if (has_header(&h, "Authorization") && !route->force)
		reason = "the request has Authorization and the route has no "
			 "force: neither served from nor stored in the cache";
	if (route != NULL) {
		rc = strata_key_text(&route->key_rule, method, url,
				     explain_header, &h, text, sizeof(text),
				     &len);
		if (rc == 0) {
			strata_key_hash(text, len, &key);
			strata_key_hex(&key, hex);
			json_object_set_new(o, "key",
					    bytes_string(text, len));
			json_object_set_new(o, "hash", json_string(hex));
			json_object_set_new(
				o, "ttl",
				route->ttl_origin
					? json_string("origin")
					: json_integer((json_int_t)(
						  route->ttl_ms / 1000)));
			if (find_hash(admin, &key, &e, &tiers) == 0) {
				int64_t now = strata_wall_ms();

				entry = json_pack(
					"{s:o, s:I, s:I, s:b}", "tiers",
					tiers_json(tiers), "age",
					(json_int_t)strata_entry_age_s(e, now),
					"ttl",
					(json_int_t)strata_entry_ttl_s(e, now),
					"fresh", strata_entry_fresh(e, now));
				strata_entry_release(&e);
			}
		} else if (reason == NULL) {
			reason = rc == -E2BIG ? "the request cannot be keyed "
						"(too many kept parameters or "
						"a header value too long)"
					      : "the request cannot be keyed "
						"(not an origin-form target)";
		}
	}
	json_object_set_new(o, "cacheable", json_boolean(reason == NULL));
	if (reason != NULL)
		json_object_set_new(o, "reason", json_string(reason));
	json_object_set_new(o, "entry", entry);
	strata_live_release(&live);
	return send_json(conn, MHD_HTTP_OK, o);
}

/* ---- configuration ---------------------------------------------------------------------- */

static enum MHD_Result config(struct strata_admin *admin,
			      struct MHD_Connection *conn)
{
	struct strata_live *live = strata_live_acquire(admin->deps.live);
	json_t *o = json_loads(live->config_json, 0, NULL);

	strata_live_release(&live);
	return send_json(conn, MHD_HTTP_OK, o);
}

/* POST /admin/reload: the server re-reads its configuration; its report
 * (or its error) is the answer. */
static enum MHD_Result reload(struct strata_admin *admin,
			      struct MHD_Connection *conn)
{
	char *out = NULL;
	enum MHD_Result ok;
	json_t *o;
	int rc;

	if (admin->deps.reload == NULL)
		return send_error(conn, MHD_HTTP_NOT_IMPLEMENTED,
				  "not_implemented",
				  "this server has no configuration source "
				  "to reload from");
	rc = admin->deps.reload(admin->deps.ctx, &out);
	if (rc == 0 && (o = json_loads(out != NULL ? out : "", 0, NULL)) != NULL)
		ok = send_json(conn, MHD_HTTP_OK, o);
	else if (rc == STRATA_ECONFIG && out != NULL)
		ok = send_error(conn, MHD_HTTP_UNPROCESSABLE_CONTENT,
				"invalid_config", out);
	else
		ok = send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				"internal", strata_strerror(rc != 0 ? rc
								    : -ENOMEM));
	free(out);
	return ok;
}

/* ---- dispatch --------------------------------------------------------------------------- */

static enum MHD_Result admin_api(struct strata_admin *admin,
				 struct MHD_Connection *conn, const char *url,
				 const char *method)
{
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool del = strcmp(method, "DELETE") == 0;
	enum MHD_Result ok;

	if (check_token(admin, conn, &ok) != 0)
		return ok;
	if (strcmp(url, "/admin/keys") == 0) {
		if (get)
			return list_keys(admin, conn);
		if (del)
			return purge_many(admin, conn);
	} else if (strncmp(url, "/admin/keys/", 12) == 0) {
		if (get)
			return show_key(admin, conn, url + 12);
		if (del)
			return purge_one(admin, conn, url + 12);
	} else if (strcmp(url, "/admin/flush") == 0) {
		if (strcmp(method, "POST") == 0)
			return flush(admin, conn);
	} else if (strcmp(url, "/admin/stats") == 0) {
		if (get)
			return stats(admin, conn);
	} else if (strcmp(url, "/admin/config") == 0) {
		if (get)
			return config(admin, conn);
	} else if (strcmp(url, "/admin/reload") == 0) {
		if (strcmp(method, "POST") == 0)
			return reload(admin, conn);
	} else if (strcmp(url, "/admin/explain") == 0) {
		if (get)
			return explain(admin, conn);
	} else {
		return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
				  "no such admin endpoint (see "
				  "docs/admin-api.md)");
	}
	return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			  "method_not_allowed",
			  "this endpoint does not take that method");
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload,
				 size_t *upload_size, void **req_cls)
{
	static int started;
	struct strata_admin *admin = cls;

	(void)version;
	(void)upload;
	if (*req_cls == NULL) { /* headers only: wait for the body's end */
		*req_cls = &started;
		return MHD_YES;
	}
	if (*upload_size > 0) { /* no endpoint takes a body: discard it */
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/health") == 0)
		return send_json(conn, MHD_HTTP_OK,
				 json_pack("{s:s}", "status", "ok"));
	if (strcmp(url, "/ready") == 0)
		return ready(admin, conn);
	if (strcmp(url, "/metrics") == 0)
		return metrics(admin, conn);
	if (strncmp(url, "/admin/", 7) == 0 || strcmp(url, "/admin") == 0)
		return admin_api(admin, conn, url, method);
	return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
			  "try /health, /ready, /metrics or /admin/...");
}

static void admin_log_cb(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	strata_log(STRATA_LOG_WARN, "admin: %s", msg);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int strata_admin_start(const struct strata_admin_deps *deps,
		       struct strata_admin **out)
{
	struct strata_admin *admin = calloc(1, sizeof(*admin));
	int fd = -1, rc;

	*out = NULL;
	if (admin == NULL)
		return -ENOMEM;
	admin->magic = ADMIN_MAGIC;
	admin->deps = *deps;
	admin->listen = strdup(deps->listen);
	admin->token = deps->token != NULL && deps->token[0] != '\0'
			       ? strdup(deps->token)
			       : NULL;
	if (admin->listen == NULL ||
	    (deps->token != NULL && deps->token[0] != '\0' &&
	     admin->token == NULL)) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = strata_front_bind(admin->listen, 64, &fd, &admin->port);
	if (rc != 0)
		goto fail; /* logged, with the address */
	admin->daemon = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, access_cb, admin, MHD_OPTION_EXTERNAL_LOGGER,
		admin_log_cb, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (admin->daemon == NULL) {
		strata_log_error("admin.listen %s: cannot start the admin "
				 "listener",
				 admin->listen);
		close(fd);
		rc = -EIO;
		goto fail;
	}
	*out = admin;
	return 0;
fail:
	strata_admin_stop(&admin);
	return rc;
}

unsigned strata_admin_port(const struct strata_admin *admin)
{
	return admin->port;
}

void strata_admin_stop(struct strata_admin **ap)
{
	struct strata_admin *admin = ap != NULL ? *ap : NULL;

	if (admin == NULL)
		return;
	STRATA_ASSERT(admin->magic == ADMIN_MAGIC);
	if (admin->daemon != NULL)
		MHD_stop_daemon(admin->daemon);
	free(admin->listen);
	free(admin->token);
	admin->magic = 0;
	free(admin);
	*ap = NULL;
}
