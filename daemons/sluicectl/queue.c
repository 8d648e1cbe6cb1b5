/*
 * queue.c - sluicectl queue list|show|flush|delete|hold|release, stats
 *
 * Keys and fields are those of doc/redis-schema.md.  A change to a
 * message runs as WATCH msg:{ID}, read, MULTI ... EXEC: queued's claim
 * and result scripts write that hash (state, lease, next), so when a
 * queued process takes the message between our read and our write,
 * EXEC fails and we look again instead of writing over its claim.
 *
 * A message whose lease is live (state active, lease set, lease_until
 * not past) is being delivered right now.  flush skips it (it is as
 * due as it can be).  hold takes it: queued's end-of-attempt script
 * keeps a message held that was held during the attempt, so the
 * attempt in progress finishes (its results count) and no other
 * begins.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <sodium.h>

#include "compat/compat.h"
#include "conf.h"
#include "json.h"
#include "log.h"
#include "msghdr.h"
#include "msgid.h"
#include "qstore.h"
#include "queue_proto.h"
#include "sluicectl.h"
#include "xmalloc.h"

#define QUEUE_BATCH	256	/* commands in flight while walking ids */
#define QUEUE_TRIES	10	/* EXEC refused because queued moved first */
#define QUEUE_EVENTS_MAX "100000"	/* MAXLEN ~ of the events stream */
#define QUEUE_SENDER_W	40	/* widest sender column of list */

enum {
	RC_TO,
	RC_NOTIFY,
	RC_ORCPT,
	RC_STATE,
	RC_DSN,
	RC_REPLY,
	RC_RELAY,
	RC_AT,
	RC_NFIELDS
};
static const char *const rc_names[RC_NFIELDS] = {
	"to", "notify", "orcpt", "state", "dsn", "reply", "relay", "at"
};

/* the fields of msg:{ID} in the order of the schema, for show */
static const char *const msg_fields[] = {
	"id", "from", "size", "nrcpt", "created", "user", "client", "helo",
	"proto", "tls", "flags", "envid", "state", "attempts", "next",
	"last_error", "lease", "lease_until", "warned", "bounce", "corrupt"
};
#define MSG_NFIELDS	(sizeof(msg_fields) / sizeof(msg_fields[0]))

/* the envelope fields show --json writes as numbers */
static const char *const msg_numeric[] = {
	"size", "nrcpt", "created", "attempts", "next", "flags"
};
#define MSG_NNUMERIC	(sizeof(msg_numeric) / sizeof(msg_numeric[0]))

/* the counters stats always writes, 0 when the hash lacks them */
static const char *const stat_fields[] = {
	"accepted", "delivered", "deferred", "bounced", "expired", "dsn",
	"held", "released", "deleted",
	/* smtpd's, through queued (lib/stats_proto.h) */
	"smtp_sessions", "smtp_refused", "smtp_tls", "smtp_tls_failed",
	"auth_ok", "auth_failed", "auth_blocked"
};
#define STAT_NFIELDS	(sizeof(stat_fields) / sizeof(stat_fields[0]))

struct bitname {
	long long		 bit;
	const char		*name;
};

/* QP_* flags of the envelope and of NOTIFY, for show */
static const struct bitname flag_names[] = {
	{ QP_BODY_8BITMIME, "8BITMIME" }, { QP_BODY_BINARYMIME, "BINARYMIME" },
	{ QP_SMTPUTF8, "SMTPUTF8" }, { QP_RET_FULL, "RET=FULL" },
	{ QP_RET_HDRS, "RET=HDRS" }
};
static const struct bitname notify_names[] = {
	{ QP_NOTIFY_NEVER, "NEVER" }, { QP_NOTIFY_SUCCESS, "SUCCESS" },
	{ QP_NOTIFY_FAILURE, "FAILURE" }, { QP_NOTIFY_DELAY, "DELAY" }
};
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* one recipient: values of the rcpt hash reply, NULL when absent */
struct rcpt {
	const redisReply	*f[RC_NFIELDS];
};

/* one message as HGETALL gave it */
struct qmsg {
	char			 id[MSGID_SIZE];
	redisReply		*msg;
	redisReply		*rcpt;
	struct rcpt		*rcpts;
	size_t			 nrcpt;
};

/* what a change to a message depends on, read under WATCH */
struct qlook {
	char			 state[16];
	int			 live_lease;
	long long		 lease_until;
};

/* how one change to one message went */
enum queue_op {
	OP_DONE,
	OP_SKIPPED,		/* said why on stdout; not an error */
	OP_UNKNOWN,		/* no such message */
	OP_FAILED		/* said why on stderr */
};

typedef enum queue_op	queue_op_fn(struct ctl *, const char *);

static const redisReply *hfield(const redisReply *, const char *);
static const char *hstr(const redisReply *, const char *);
static long long hnum(const redisReply *, const char *);
static const char *rstr(const redisReply *);
static size_t	rlen(const redisReply *);
static void	put_r(const redisReply *);
static void	json_kr(struct json *, const char *, const redisReply *);
static long long rnum(const redisReply *);
static void	qmsg_rcpts(struct qmsg *);
static void	qmsg_free(struct qmsg *);
static long long qmsg_created(const struct qmsg *);
static void	bits_str(char *, size_t, long long, const struct bitname *,
		    size_t);
static void	when_str(char *, size_t, struct ctl *, long long);
static void	put_padded(const char *, int);
static void	put_field(const char *, int, const char *, const char *,
		    size_t);
static void	list_text(struct ctl *, struct qmsg *, size_t);
static void	list_json(struct ctl *, struct qmsg *, size_t);
static unsigned char *queue_body(struct ctl *, const char *, size_t *,
		    char *, size_t);
static void	 queue_body_free(unsigned char *, size_t);
static char	*queue_headers(struct ctl *, const char *, size_t *, char *,
		    size_t);
static void	show_text(struct ctl *, struct qmsg *, const char *, size_t,
		    const char *);
static void	show_json(struct ctl *, struct qmsg *, const char *, size_t,
		    const char *);
static int	queue_watch(struct ctl *, const char *, struct qlook *);
static int	queue_exec(struct ctl *, int);
static void	queue_event(struct ctl *, const char *, const char *);
static int	queue_each(struct ctl *, int, char **, queue_op_fn *);
static enum queue_op flush_one(struct ctl *, const char *, int);
static queue_op_fn flush_id;
static queue_op_fn delete_one;
static queue_op_fn hold_one;
static queue_op_fn release_one;
static int	stat_cmp(const void *, const void *);

/* hfield - the value of one field in an HGETALL reply, or NULL */
static const redisReply *
hfield(const redisReply *h, const char *name)
{
	size_t	 i;

	if (h == NULL || h->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < h->elements; i += 2)
		if (h->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(h->element[i]->str, name) == 0)
			return h->element[i + 1];
	return NULL;
}

static const char *
rstr(const redisReply *r)
{
	if (r == NULL || r->type != REDIS_REPLY_STRING)
		return "";
	return r->str;
}

static size_t
rlen(const redisReply *r)
{
	if (r == NULL || r->type != REDIS_REPLY_STRING)
		return 0;
	return r->len;
}

/* put_r - a field's value (NULs and all), safe for a terminal */
static void
put_r(const redisReply *r)
{
	ctl_print(stdout, rstr(r), rlen(r), CTL_PRINT_LINE);
}

/* json_kr - a field's value as a JSON string, NULs and all */
static void
json_kr(struct json *j, const char *key, const redisReply *r)
{
	json_key(j, key);
	json_strn(j, rstr(r), rlen(r));
}

/* rnum - a numeric field; 0 when it is absent, empty or not a number */
static long long
rnum(const redisReply *r)
{
	long long	 v;

	if (r == NULL || r->type == REDIS_REPLY_NIL)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	return ctl_num(rstr(r), &v) == 0 ? v : 0;
}

static const char *
hstr(const redisReply *h, const char *name)
{
	return rstr(hfield(h, name));
}

static long long
hnum(const redisReply *h, const char *name)
{
	return rnum(hfield(h, name));
}

/*
 * qmsg_rcpts - index the "N:field" pairs of the rcpt hash
 *
 * nrcpt says how many there are; a record that has more (or says
 * nothing) is shown as it is, up to the protocol's own bound.
 */
static void
qmsg_rcpts(struct qmsg *m)
{
	const redisReply	*h = m->rcpt;
	const char		*name, *colon, *errstr;
	char			 num[16];
	long long		 idx, n;
	size_t			 i, k;

	n = hnum(m->msg, "nrcpt");
	if (n < 0 || n > QP_MAX_RCPT)
		n = 0;
	for (i = 0; h != NULL && i + 1 < h->elements; i += 2) {
		name = rstr(h->element[i]);
		if ((colon = strchr(name, ':')) == NULL ||
		    (size_t)(colon - name) >= sizeof(num))
			continue;
		memcpy(num, name, (size_t)(colon - name));
		num[colon - name] = '\0';
		idx = strtonum(num, 0, QP_MAX_RCPT - 1, &errstr);
		if (errstr == NULL && idx >= n)
			n = idx + 1;
	}
	m->nrcpt = (size_t)n;
	m->rcpts = xcalloc(m->nrcpt == 0 ? 1 : m->nrcpt, sizeof(*m->rcpts));
	for (i = 0; h != NULL && i + 1 < h->elements; i += 2) {
		name = rstr(h->element[i]);
		if ((colon = strchr(name, ':')) == NULL ||
		    (size_t)(colon - name) >= sizeof(num))
			continue;
		memcpy(num, name, (size_t)(colon - name));
		num[colon - name] = '\0';
		idx = strtonum(num, 0, QP_MAX_RCPT - 1, &errstr);
		if (errstr != NULL || idx >= n)
			continue;
		for (k = 0; k < RC_NFIELDS; k++)
			if (strcmp(colon + 1, rc_names[k]) == 0)
				m->rcpts[idx].f[k] = h->element[i + 1];
	}
}

static void
qmsg_free(struct qmsg *m)
{
	if (m->msg != NULL)
		freeReplyObject(m->msg);
	if (m->rcpt != NULL)
		freeReplyObject(m->rcpt);
	free(m->rcpts);
	memset(m, 0, sizeof(*m));
}

/* qmsg_created - the created field, or the time the id itself carries */
static long long
qmsg_created(const struct qmsg *m)
{
	long long	 t;
	uint64_t	 ms;

	if ((t = hnum(m->msg, "created")) > 0)
		return t;
	if (msgid_time(m->id, &ms) == 0)
		return (long long)(ms / 1000);
	return 0;
}

/* bits_str - "9 (8BITMIME,RET=FULL)"; the number alone when no bit is set */
static void
bits_str(char *dst, size_t dstlen, long long v, const struct bitname *names,
    size_t n)
{
	size_t	 i;
	int	 any = 0;

	snprintf(dst, dstlen, "%lld", v);
	for (i = 0; i < n; i++) {
		if (!(v & names[i].bit))
			continue;
		strlcat(dst, any ? "," : " (", dstlen);
		strlcat(dst, names[i].name, dstlen);
		any = 1;
	}
	if (any)
		strlcat(dst, ")", dstlen);
}

/* when_str - "2026-11-22 10:00:00 +0100 (3m12s ago)" */
static void
when_str(char *dst, size_t dstlen, struct ctl *ctl, long long t)
{
	char	 at[64], d[32];

	ctl_time(at, sizeof(at), t);
	ctl_duration(d, sizeof(d), t > ctl->now ? t - ctl->now : ctl->now - t);
	if (t > ctl->now)
		snprintf(dst, dstlen, "%s (in %s)", at, d);
	else
		snprintf(dst, dstlen, "%s (%s ago)", at, d);
}

/* put_padded - a peer's text, then spaces up to width */
static void
put_padded(const char *s, int width)
{
	int	 n = (int)strlen(s);

	ctl_print(stdout, s, strlen(s), CTL_PRINT_LINE);
	for (; n < width; n++)
		putchar(' ');
}

/* put_field - one "name value" line of show, nothing when empty */
static void
put_field(const char *indent, int width, const char *name, const char *v,
    size_t len)
{
	if (len == 0)
		return;
	printf("%s%-*s", indent, width, name);
	ctl_print(stdout, v, len, CTL_PRINT_LINE);
	putchar('\n');
}

/* queue_list - every message of the queue, with its recipients */
int
queue_list(struct ctl *ctl, int argc, char **argv)
{
	redisReply	*ids;
	struct qmsg	*msgs;
	char		 key[QSTORE_NAME_MAX];
	size_t		 i, j, end, n = 0;

	(void)argc;
	(void)argv;
	ids = ctl_redis(ctl, "ZRANGE", ctl->k_ids, "0", "-1", (char *)NULL);
	if (ids->type != REDIS_REPLY_ARRAY)
		ctl_die("redis: ZRANGE %s: not an array", ctl->k_ids);
	msgs = xcalloc(ids->elements == 0 ? 1 : ids->elements, sizeof(*msgs));

	/* pipelined, so a big queue costs round trips per batch, not per id */
	for (i = 0; i < ids->elements; i = end) {
		end = i + QUEUE_BATCH < ids->elements ? i + QUEUE_BATCH :
		    ids->elements;
		for (j = i; j < end; j++) {
			if (ids->element[j]->type != REDIS_REPLY_STRING ||
			    !msgid_valid(ids->element[j]->str))
				continue;
			ctl_key(ctl, key, "msg", ids->element[j]->str);
			ctl_redis_append(ctl, "HGETALL", key, (char *)NULL);
			ctl_key(ctl, key, "rcpt", ids->element[j]->str);
			ctl_redis_append(ctl, "HGETALL", key, (char *)NULL);
		}
		for (j = i; j < end; j++) {
			struct qmsg	*m = &msgs[n];

			if (ids->element[j]->type != REDIS_REPLY_STRING ||
			    !msgid_valid(ids->element[j]->str))
				continue;
			strlcpy(m->id, ids->element[j]->str, sizeof(m->id));
			m->msg = ctl_redis_get(ctl);
			m->rcpt = ctl_redis_get(ctl);
			/* delivered or deleted since ZRANGE: not queued now */
			if (m->msg->type != REDIS_REPLY_ARRAY ||
			    m->msg->elements == 0) {
				qmsg_free(m);
				continue;
			}
			qmsg_rcpts(m);
			n++;
		}
	}
	freeReplyObject(ids);

	if (ctl->json)
		list_json(ctl, msgs, n);
	else
		list_text(ctl, msgs, n);
	for (i = 0; i < n; i++)
		qmsg_free(&msgs[i]);
	free(msgs);
	return 0;
}

/* list_text - mailq-like: a line per message, one per recipient under it */
static void
list_text(struct ctl *ctl, struct qmsg *msgs, size_t n)
{
	const struct rcpt	*rc;
	const char		*from, *state;
	char			 age[32], next[40], d[32];
	long long		 total = 0, t;
	size_t			 i, k, nr = 0;
	int			 w = 6, len;

	if (n == 0) {
		printf("queue is empty\n");
		return;
	}
	for (i = 0; i < n; i++) {
		len = (int)strlen(hstr(msgs[i].msg, "from"));
		if (len > w)
			w = len > QUEUE_SENDER_W ? QUEUE_SENDER_W : len;
	}
	printf("%-26s  %7s  %9s  %-*s  %-8s  %s\n", "ID", "AGE", "SIZE", w,
	    "SENDER", "STATE", "NEXT");
	for (i = 0; i < n; i++) {
		struct qmsg	*m = &msgs[i];

		from = hstr(m->msg, "from");
		state = hstr(m->msg, "state");
		ctl_duration(age, sizeof(age), ctl->now - qmsg_created(m));
		t = hnum(m->msg, "next");
		if (strcmp(state, "held") == 0 || t == 0)
			snprintf(next, sizeof(next), "-");
		else if (t <= ctl->now)
			snprintf(next, sizeof(next), "now");
		else {
			ctl_duration(d, sizeof(d), t - ctl->now);
			snprintf(next, sizeof(next), "in %s", d);
		}
		total += hnum(m->msg, "size");
		printf("%-26s  %7s  %9lld  ", m->id, age,
		    hnum(m->msg, "size"));
		put_padded(*from == '\0' ? "<>" : from, w);
		printf("  ");
		put_padded(*state == '\0' ? "?" : state, 8);
		printf("  %s\n", next);

		for (k = 0; k < m->nrcpt; k++) {
			rc = &m->rcpts[k];
			printf("    <");
			put_r(rc->f[RC_TO]);
			printf(">  ");
			put_padded(*rstr(rc->f[RC_STATE]) == '\0' ? "?" :
			    rstr(rc->f[RC_STATE]), 7);
			if (*rstr(rc->f[RC_DSN]) != '\0' ||
			    *rstr(rc->f[RC_REPLY]) != '\0') {
				printf("  ");
				put_r(rc->f[RC_DSN]);
				printf(" ");
				put_r(rc->f[RC_REPLY]);
			}
			putchar('\n');
		}
		nr += m->nrcpt;
		if (*hstr(m->msg, "last_error") != '\0') {
			printf("    last error: ");
			put_r(hfield(m->msg, "last_error"));
			putchar('\n');
		}
	}
	printf("-- %zu message%s, %zu recipient%s, %lld bytes\n", n,
	    n == 1 ? "" : "s", nr, nr == 1 ? "" : "s", total);
}

/* list_json - an array of message objects, the fields of sluicectl(8) */
static void
list_json(struct ctl *ctl, struct qmsg *msgs, size_t n)
{
	struct json	 j;
	const char	*state;
	long long	 created;
	size_t		 i, k;

	json_init(&j, stdout);
	json_array_begin(&j);
	for (i = 0; i < n; i++) {
		struct qmsg	*m = &msgs[i];

		created = qmsg_created(m);
		state = hstr(m->msg, "state");
		json_object_begin(&j);
		json_kstr(&j, "id", m->id);
		json_kint(&j, "created", created);
		json_kint(&j, "age", ctl->now > created ? ctl->now - created :
		    0);
		json_kint(&j, "size", hnum(m->msg, "size"));
		json_kr(&j, "sender", hfield(m->msg, "from"));
		json_key(&j, "recipients");
		json_array_begin(&j);
		for (k = 0; k < m->nrcpt; k++) {
			const struct rcpt	*rc = &m->rcpts[k];

			json_object_begin(&j);
			json_kr(&j, "address", rc->f[RC_TO]);
			json_kr(&j, "state", rc->f[RC_STATE]);
			json_kr(&j, "dsn", rc->f[RC_DSN]);
			json_kr(&j, "reply", rc->f[RC_REPLY]);
			json_object_end(&j);
		}
		json_array_end(&j);
		json_kstr(&j, "state", state);
		json_kint(&j, "attempts", hnum(m->msg, "attempts"));
		json_kint(&j, "next_attempt", strcmp(state, "held") == 0 ? 0 :
		    hnum(m->msg, "next"));
		json_kr(&j, "last_error", hfield(m->msg, "last_error"));
		json_object_end(&j);
	}
	json_array_end(&j);
	if (json_finish(&j) == -1)
		ctl_die("standard output: write error");
}

/*
 * queue_body - the stored message opened with the queue key, or NULL
 * and why not; the caller wipes and frees it (queue_body_free)
 */
static unsigned char *
queue_body(struct ctl *ctl, const char *id, size_t *plenp, char *why,
    size_t whylen)
{
	redisReply	*r;
	unsigned char	*key = NULL, *plain = NULL;
	char		 bkey[QSTORE_NAME_MAX], err[1024];
	char		*path = NULL;
	size_t		 plen;
	int		 ok = 0;

	ctl_key(ctl, bkey, "body", id);
	r = ctl_redis(ctl, "GET", bkey, (char *)NULL);
	if (r->type != REDIS_REPLY_STRING) {
		snprintf(why, whylen, "no body in Redis");
		goto out;
	}
	if ((path = qstore_key_path(ctl->conf)) == NULL ||
	    (key = sodium_malloc(QSTORE_KEY_SIZE)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if (qstore_key_load(path, 0, key, err, sizeof(err)) == -1) {
		snprintf(why, whylen, "queue key: %s", err);
		goto out;
	}
	if ((plain = malloc(r->len == 0 ? 1 : r->len)) == NULL) {
		snprintf(why, whylen, "out of memory for %zu bytes", r->len);
		goto out;
	}
	if (qstore_open(key, id, r->str, r->len, plain, &plen) == -1) {
		snprintf(why, whylen, "the body does not open with the queue "
		    "key (damaged, or sealed with another key)");
		goto out;
	}
	*plenp = plen;
	ok = 1;
 out:
	if (!ok && plain != NULL) {
		sodium_memzero(plain, r->len);
		free(plain);
		plain = NULL;
	}
	if (key != NULL)
		sodium_free(key);
	free(path);
	freeReplyObject(r);
	return plain;
}

static void
queue_body_free(unsigned char *plain, size_t len)
{
	if (plain == NULL)
		return;
	sodium_memzero(plain, len);
	free(plain);
}

/* queue_headers - the header section of a stored message, or NULL */
static char *
queue_headers(struct ctl *ctl, const char *id, size_t *hlen, char *why,
    size_t whylen)
{
	unsigned char	*plain;
	char		*hdr;
	size_t		 plen, n;

	if ((plain = queue_body(ctl, id, &plen, why, whylen)) == NULL)
		return NULL;
	n = msghdr_end((const char *)plain, plen);
	hdr = xmalloc(n + 1);
	memcpy(hdr, plain, n);
	hdr[n] = '\0';
	*hlen = n;
	queue_body_free(plain, plen);
	return hdr;
}

/* queue_cat - the whole stored message on stdout, as postcat does */
int
queue_cat(struct ctl *ctl, int argc, char **argv)
{
	unsigned char	*plain;
	char		 key[QSTORE_NAME_MAX], shown[300], why[1200];
	size_t		 plen;
	redisReply	*r;
	int		 rc = 0;

	(void)argc;
	if (!msgid_valid(argv[0])) {
		ctl_warn("no such message: %s", ctl_shown(argv[0], shown,
		    sizeof(shown)));
		return 1;
	}
	ctl_key(ctl, key, "msg", argv[0]);
	r = ctl_redis(ctl, "EXISTS", key, (char *)NULL);
	if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
		freeReplyObject(r);
		ctl_warn("no such message: %s", argv[0]);
		return 1;
	}
	freeReplyObject(r);
	if ((plain = queue_body(ctl, argv[0], &plen, why,
	    sizeof(why))) == NULL) {
		ctl_warn("%s: %s", argv[0], why);
		return 1;
	}
	if (fwrite(plain, 1, plen, stdout) != plen || fflush(stdout) != 0)
		rc = 1;
	queue_body_free(plain, plen);
	return rc;
}

/* queue_show - one message: envelope, recipients, headers */
int
queue_show(struct ctl *ctl, int argc, char **argv)
{
	struct qmsg	 m;
	char		 key[QSTORE_NAME_MAX], shown[300], why[1200];
	char		*hdr;
	size_t		 hlen = 0;

	(void)argc;
	memset(&m, 0, sizeof(m));
	if (!msgid_valid(argv[0])) {
		ctl_warn("no such message: %s", ctl_shown(argv[0], shown,
		    sizeof(shown)));
		return 1;
	}
	strlcpy(m.id, argv[0], sizeof(m.id));
	ctl_key(ctl, key, "msg", m.id);
	m.msg = ctl_redis(ctl, "HGETALL", key, (char *)NULL);
	if (m.msg->type != REDIS_REPLY_ARRAY || m.msg->elements == 0) {
		qmsg_free(&m);
		ctl_warn("no such message: %s", argv[0]);
		return 1;
	}
	ctl_key(ctl, key, "rcpt", m.id);
	m.rcpt = ctl_redis(ctl, "HGETALL", key, (char *)NULL);
	qmsg_rcpts(&m);
	hdr = queue_headers(ctl, m.id, &hlen, why, sizeof(why));

	if (ctl->json)
		show_json(ctl, &m, hdr, hlen, why);
	else
		show_text(ctl, &m, hdr, hlen, why);
	free(hdr);
	qmsg_free(&m);
	return 0;
}

/* show_text - "name value" lines; empty fields left out */
static void
show_text(struct ctl *ctl, struct qmsg *m, const char *hdr, size_t hlen,
    const char *why)
{
	const redisReply	*h = m->msg, *e;
	const char		*name, *v;
	char			 buf[256];
	size_t			 i, k, len;

	for (i = 0; i < MSG_NFIELDS; i++) {
		name = msg_fields[i];
		if ((e = hfield(h, name)) == NULL)
			continue;
		v = rstr(e);
		len = rlen(e);
		if (strcmp(name, "from") == 0) {
			/* the one field shown even when empty: <> */
			printf("%-12s<", name);
			put_r(e);
			printf(">\n");
			continue;
		} else if (strcmp(name, "flags") == 0) {
			bits_str(buf, sizeof(buf), rnum(e), flag_names,
			    NELEM(flag_names));
			v = buf;
			len = strlen(buf);
		} else if ((strcmp(name, "created") == 0 ||
		    strcmp(name, "next") == 0 ||
		    strcmp(name, "lease_until") == 0) && rnum(e) > 0) {
			when_str(buf, sizeof(buf), ctl, rnum(e));
			v = buf;
			len = strlen(buf);
		}
		put_field("", 12, name, v, len);
	}
	/* fields a later version added: shown as they are */
	for (i = 0; i + 1 < h->elements; i += 2) {
		name = rstr(h->element[i]);
		for (k = 0; k < MSG_NFIELDS; k++)
			if (strcmp(name, msg_fields[k]) == 0)
				break;
		if (k == MSG_NFIELDS) {
			put_padded(name, 11);
			putchar(' ');
			put_r(h->element[i + 1]);
			putchar('\n');
		}
	}

	for (k = 0; k < m->nrcpt; k++) {
		const struct rcpt	*rc = &m->rcpts[k];

		printf("\nrecipient %zu <", k);
		put_r(rc->f[RC_TO]);
		printf(">\n");
		for (i = RC_NOTIFY; i < RC_NFIELDS; i++) {
			if (rc->f[i] == NULL)
				continue;
			v = rstr(rc->f[i]);
			len = rlen(rc->f[i]);
			if (i == RC_NOTIFY) {
				if (rnum(rc->f[i]) == 0)
					snprintf(buf, sizeof(buf),
					    "0 (not given)");
				else
					bits_str(buf, sizeof(buf),
					    rnum(rc->f[i]), notify_names,
					    NELEM(notify_names));
				v = buf;
				len = strlen(buf);
			} else if (i == RC_AT && rnum(rc->f[i]) > 0) {
				when_str(buf, sizeof(buf), ctl,
				    rnum(rc->f[i]));
				v = buf;
				len = strlen(buf);
			}
			put_field("  ", 10, rc_names[i], v, len);
		}
	}

	printf("\nheaders:\n");
	if (hdr == NULL)
		printf("(unreadable: %s)\n", why);
	else {
		ctl_print(stdout, hdr, hlen, CTL_PRINT_TEXT);
		if (hlen > 0 && hdr[hlen - 1] != '\n')
			putchar('\n');
	}
}

/* show_json - {id, envelope, recipients, headers} */
static void
show_json(struct ctl *ctl, struct qmsg *m, const char *hdr, size_t hlen,
    const char *why)
{
	const redisReply	*h = m->msg, *v;
	struct json		 j;
	const char		*name;
	char			*s;
	size_t			 i, k;

	(void)ctl;
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kstr(&j, "id", m->id);

	/* the schema's order first, then what a later version added */
	json_key(&j, "envelope");
	json_object_begin(&j);
	for (i = 0; i < MSG_NFIELDS + h->elements / 2; i++) {
		if (i < MSG_NFIELDS) {
			name = msg_fields[i];
			if ((v = hfield(h, name)) == NULL)
				continue;
		} else {
			name = rstr(h->element[2 * (i - MSG_NFIELDS)]);
			v = h->element[2 * (i - MSG_NFIELDS) + 1];
			for (k = 0; k < MSG_NFIELDS; k++)
				if (strcmp(name, msg_fields[k]) == 0)
					break;
			if (k < MSG_NFIELDS)
				continue;
		}
		for (k = 0; k < MSG_NNUMERIC; k++)
			if (strcmp(name, msg_numeric[k]) == 0)
				break;
		json_key(&j, name);
		if (k < MSG_NNUMERIC)
			json_int(&j, rnum(v));
		else if (v->type == REDIS_REPLY_STRING)
			json_strn(&j, v->str, v->len);
		else
			json_str(&j, "");
	}
	json_object_end(&j);

	json_key(&j, "recipients");
	json_array_begin(&j);
	for (k = 0; k < m->nrcpt; k++) {
		const struct rcpt	*rc = &m->rcpts[k];

		json_object_begin(&j);
		json_kint(&j, "index", (long long)k);
		json_kr(&j, "address", rc->f[RC_TO]);
		json_kint(&j, "notify", rnum(rc->f[RC_NOTIFY]));
		json_kr(&j, "orcpt", rc->f[RC_ORCPT]);
		json_kr(&j, "state", rc->f[RC_STATE]);
		json_kr(&j, "dsn", rc->f[RC_DSN]);
		json_kr(&j, "reply", rc->f[RC_REPLY]);
		json_kr(&j, "relay", rc->f[RC_RELAY]);
		json_kint(&j, "at", rnum(rc->f[RC_AT]));
		json_object_end(&j);
	}
	json_array_end(&j);

	json_key(&j, "headers");
	if (hdr != NULL)
		json_strn(&j, hdr, hlen);
	else {
		xasprintf(&s, "(unreadable: %s)", why);
		json_str(&j, s);
		free(s);
	}
	json_object_end(&j);
	if (json_finish(&j) == -1)
		ctl_die("standard output: write error");
}

/*
 * queue_watch - WATCH a message's hash and read what a change depends
 * on; 0 when the message is not there (and nothing is watched)
 */
static int
queue_watch(struct ctl *ctl, const char *key, struct qlook *q)
{
	redisReply	*w, *e, *r;
	long long	 until;
	int		 exists;

	memset(q, 0, sizeof(*q));
	ctl_redis_append(ctl, "WATCH", key, (char *)NULL);
	ctl_redis_append(ctl, "EXISTS", key, (char *)NULL);
	ctl_redis_append(ctl, "HMGET", key, "state", "lease", "lease_until",
	    (char *)NULL);
	w = ctl_redis_get(ctl);
	e = ctl_redis_get(ctl);
	r = ctl_redis_get(ctl);
	exists = e->type == REDIS_REPLY_INTEGER && e->integer == 1;
	if (exists && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
		strlcpy(q->state, rstr(r->element[0]), sizeof(q->state));
		until = rnum(r->element[2]);
		q->lease_until = until;
		q->live_lease = strcmp(q->state, "active") == 0 &&
		    *rstr(r->element[1]) != '\0' && until >= ctl->now;
	}
	freeReplyObject(w);
	freeReplyObject(e);
	freeReplyObject(r);
	if (!exists)
		freeReplyObject(ctl_redis(ctl, "UNWATCH", (char *)NULL));
	return exists;
}

/*
 * queue_exec - read the replies of MULTI, n queued commands and EXEC
 * that the caller appended; -1 when the watched message changed
 */
static int
queue_exec(struct ctl *ctl, int n)
{
	redisReply	*r;
	size_t		 i;
	int		 k, rc = 0;

	for (k = 0; k < n + 1; k++)
		freeReplyObject(ctl_redis_get(ctl));
	r = ctl_redis_get(ctl);
	if (r->type == REDIS_REPLY_NIL)
		rc = -1;
	else if (r->type != REDIS_REPLY_ARRAY)
		ctl_die("redis: EXEC: unexpected reply");
	else
		for (i = 0; i < r->elements; i++)
			if (r->element[i]->type == REDIS_REPLY_ERROR)
				ctl_die("redis: EXEC: %s", r->element[i]->str);
	freeReplyObject(r);
	return rc;
}

/* queue_event - append the XADD of one event to a transaction */
static void
queue_event(struct ctl *ctl, const char *id, const char *event)
{
	ctl_redis_append(ctl, "XADD", ctl->k_events, "MAXLEN", "~",
	    QUEUE_EVENTS_MAX, "*", "id", id, "event", event, (char *)NULL);
}

/* queue_each - one change for each id; exit status 1 if any failed */
static int
queue_each(struct ctl *ctl, int argc, char **argv, queue_op_fn *fn)
{
	char	 shown[300];
	int	 i, rc = 0;

	for (i = 0; i < argc; i++) {
		/* a malformed id is not in Redis: don't build a key of it */
		if (!msgid_valid(argv[i])) {
			ctl_warn("no such message: %s", ctl_shown(argv[i],
			    shown, sizeof(shown)));
			rc = 1;
			continue;
		}
		switch (fn(ctl, argv[i])) {
		case OP_DONE:
		case OP_SKIPPED:
			break;
		case OP_UNKNOWN:
			ctl_warn("no such message: %s", argv[i]);
			rc = 1;
			break;
		case OP_FAILED:
			rc = 1;
			break;
		}
	}
	return rc;
}

/*
 * flush_one - make one message due now; with all set, touch only
 * deferred ones and active ones nobody is delivering, silently
 */
static enum queue_op
flush_one(struct ctl *ctl, const char *id, int all)
{
	struct qlook	 q;
	char		 key[QSTORE_NAME_MAX], now[32], now_ms[32];
	int		 try;

	ctl_key(ctl, key, "msg", id);
	snprintf(now, sizeof(now), "%lld", ctl->now);
	snprintf(now_ms, sizeof(now_ms), "%lld", ctl->now_ms);
	for (try = 0; try < QUEUE_TRIES; try++) {
		if (!queue_watch(ctl, key, &q))
			return OP_UNKNOWN;
		if (q.live_lease || strcmp(q.state, "held") == 0 ||
		    (all && strcmp(q.state, "deferred") != 0 &&
		    strcmp(q.state, "active") != 0)) {
			freeReplyObject(ctl_redis(ctl, "UNWATCH",
			    (char *)NULL));
			if (all)
				return OP_SKIPPED;
			if (q.live_lease)
				printf("%s: being delivered now\n", id);
			else if (strcmp(q.state, "held") == 0)
				printf("%s: held; release it first\n", id);
			return OP_SKIPPED;
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "HSET", key, "next", now, (char *)NULL);
		ctl_redis_append(ctl, "ZADD", ctl->k_schedule, now_ms, id,
		    (char *)NULL);
		queue_event(ctl, id, "flushed");
		if (!all)
			ctl_redis_append(ctl, "PUBLISH", ctl->k_flush, id,
			    (char *)NULL);
		ctl_redis_append(ctl, "EXEC", (char *)NULL);
		if (queue_exec(ctl, all ? 3 : 4) == 0) {
			if (!all)
				printf("%s: flushed\n", id);
			return OP_DONE;
		}
	}
	ctl_warn("%s: changed %d times while we tried; try again", id,
	    QUEUE_TRIES);
	return OP_FAILED;
}

static enum queue_op
flush_id(struct ctl *ctl, const char *id)
{
	return flush_one(ctl, id, 0);
}

/* queue_flush - retry now: the messages named, or every deferred one */
int
queue_flush(struct ctl *ctl, int argc, char **argv)
{
	redisReply	*ids;
	size_t		 i, n = 0;
	int		 rc = 0;

	if (argc > 0)
		return queue_each(ctl, argc, argv, flush_id);

	ids = ctl_redis(ctl, "ZRANGE", ctl->k_ids, "0", "-1", (char *)NULL);
	for (i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
		if (ids->element[i]->type != REDIS_REPLY_STRING ||
		    !msgid_valid(ids->element[i]->str))
			continue;
		switch (flush_one(ctl, ids->element[i]->str, 1)) {
		case OP_DONE:
			n++;
			break;
		case OP_FAILED:
			rc = 1;
			break;
		default:
			break;
		}
	}
	freeReplyObject(ids);
	if (n > 0)
		freeReplyObject(ctl_redis(ctl, "PUBLISH", ctl->k_flush, "*",
		    (char *)NULL));
	printf("%zu message%s flushed\n", n, n == 1 ? "" : "s");
	return rc;
}

/* delete_one - remove a message and everything that points at it */
static enum queue_op
delete_one(struct ctl *ctl, const char *id)
{
	struct qlook	 q;
	char		 km[QSTORE_NAME_MAX], kr[QSTORE_NAME_MAX];
	char		 kb[QSTORE_NAME_MAX];
	int		 try;

	ctl_key(ctl, km, "msg", id);
	ctl_key(ctl, kr, "rcpt", id);
	ctl_key(ctl, kb, "body", id);
	for (try = 0; try < QUEUE_TRIES; try++) {
		if (!queue_watch(ctl, km, &q))
			return OP_UNKNOWN;
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "DEL", km, kr, kb, (char *)NULL);
		ctl_redis_append(ctl, "ZREM", ctl->k_schedule, id,
		    (char *)NULL);
		ctl_redis_append(ctl, "ZREM", ctl->k_ids, id, (char *)NULL);
		ctl_redis_append(ctl, "HINCRBY", ctl->k_stats, "deleted", "1",
		    (char *)NULL);
		queue_event(ctl, id, "deleted");
		ctl_redis_append(ctl, "EXEC", (char *)NULL);
		if (queue_exec(ctl, 5) == 0) {
			/*
			 * queued's scripts find no lease of theirs and write
			 * nothing; a transfer already under way may still
			 * complete.
			 */
			printf("%s: deleted%s\n", id, q.live_lease ?
			    " (it was being delivered)" : "");
			return OP_DONE;
		}
	}
	ctl_warn("%s: changed %d times while we tried; try again", id,
	    QUEUE_TRIES);
	return OP_FAILED;
}

int
queue_delete(struct ctl *ctl, int argc, char **argv)
{
	return queue_each(ctl, argc, argv, delete_one);
}

/* hold_one - take a message off the schedule until it is released */
static enum queue_op
hold_one(struct ctl *ctl, const char *id)
{
	struct qlook	 q;
	char		 key[QSTORE_NAME_MAX], until[64];
	int		 try;

	ctl_key(ctl, key, "msg", id);
	for (try = 0; try < QUEUE_TRIES; try++) {
		if (!queue_watch(ctl, key, &q))
			return OP_UNKNOWN;
		if (strcmp(q.state, "held") == 0) {
			freeReplyObject(ctl_redis(ctl, "UNWATCH",
			    (char *)NULL));
			printf("%s: already held\n", id);
			return OP_SKIPPED;
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "HSET", key, "state", "held", "next",
		    "0", (char *)NULL);
		ctl_redis_append(ctl, "ZREM", ctl->k_schedule, id,
		    (char *)NULL);
		ctl_redis_append(ctl, "HINCRBY", ctl->k_stats, "held", "1",
		    (char *)NULL);
		queue_event(ctl, id, "held");
		ctl_redis_append(ctl, "EXEC", (char *)NULL);
		if (queue_exec(ctl, 4) == 0) {
			if (q.live_lease) {
				ctl_time(until, sizeof(until), q.lease_until);
				printf("%s: held (the attempt in progress, "
				    "lease until %s, finishes first)\n", id,
				    until);
			} else
				printf("%s: held\n", id);
			return OP_DONE;
		}
	}
	ctl_warn("%s: changed %d times while we tried; try again", id,
	    QUEUE_TRIES);
	return OP_FAILED;
}

int
queue_hold(struct ctl *ctl, int argc, char **argv)
{
	return queue_each(ctl, argc, argv, hold_one);
}

/* release_one - put a held message back on the schedule, due now */
static enum queue_op
release_one(struct ctl *ctl, const char *id)
{
	struct qlook	 q;
	char		 key[QSTORE_NAME_MAX], now[32], now_ms[32];
	int		 try;

	ctl_key(ctl, key, "msg", id);
	snprintf(now, sizeof(now), "%lld", ctl->now);
	snprintf(now_ms, sizeof(now_ms), "%lld", ctl->now_ms);
	for (try = 0; try < QUEUE_TRIES; try++) {
		if (!queue_watch(ctl, key, &q))
			return OP_UNKNOWN;
		if (strcmp(q.state, "held") != 0) {
			freeReplyObject(ctl_redis(ctl, "UNWATCH",
			    (char *)NULL));
			printf("%s: not held\n", id);
			return OP_SKIPPED;
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "HSET", key, "state", "deferred", "next",
		    now, (char *)NULL);
		ctl_redis_append(ctl, "ZADD", ctl->k_schedule, now_ms, id,
		    (char *)NULL);
		ctl_redis_append(ctl, "HINCRBY", ctl->k_stats, "released", "1",
		    (char *)NULL);
		queue_event(ctl, id, "released");
		ctl_redis_append(ctl, "PUBLISH", ctl->k_flush, id,
		    (char *)NULL);
		ctl_redis_append(ctl, "EXEC", (char *)NULL);
		if (queue_exec(ctl, 5) == 0) {
			printf("%s: released\n", id);
			return OP_DONE;
		}
	}
	ctl_warn("%s: changed %d times while we tried; try again", id,
	    QUEUE_TRIES);
	return OP_FAILED;
}

int
queue_release(struct ctl *ctl, int argc, char **argv)
{
	return queue_each(ctl, argc, argv, release_one);
}

static int
stat_cmp(const void *a, const void *b)
{
	const redisReply	*const *x = a, *const *y = b;

	return strcmp(rstr(*x), rstr(*y));
}

/*
 * stats_show - the counters, the queue by state, and how much memory
 * Redis uses
 */
int
stats_show(struct ctl *ctl, int argc, char **argv)
{
	redisReply		*st, *card, *old, *ids, *info, *r;
	const redisReply	**extra;
	struct json		 j;
	char			 key[QSTORE_NAME_MAX];
	const char		*p, *state;
	long long		 size, active = 0, deferred = 0, held = 0;
	long long		 oldest = 0, used = 0;
	size_t			 i, k, end, nextra = 0;

	(void)argc;
	(void)argv;
	st = ctl_redis(ctl, "HGETALL", ctl->k_stats, (char *)NULL);
	card = ctl_redis(ctl, "ZCARD", ctl->k_ids, (char *)NULL);
	size = card->type == REDIS_REPLY_INTEGER ? card->integer : 0;
	old = ctl_redis(ctl, "ZRANGE", ctl->k_ids, "0", "0", "WITHSCORES",
	    (char *)NULL);
	if (old->type == REDIS_REPLY_ARRAY && old->elements == 2) {
		/* the score is the creation time in ms */
		double	 ms = strtod(rstr(old->element[1]), NULL);

		if (ms > 0 && ms / 1000 < (double)ctl->now)
			oldest = ctl->now - (long long)(ms / 1000);
	}

	ids = ctl_redis(ctl, "ZRANGE", ctl->k_ids, "0", "-1", (char *)NULL);
	for (i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements;
	    i = end) {
		end = i + QUEUE_BATCH < ids->elements ? i + QUEUE_BATCH :
		    ids->elements;
		for (k = i; k < end; k++) {
			ctl_key(ctl, key, "msg", rstr(ids->element[k]));
			ctl_redis_append(ctl, "HGET", key, "state",
			    (char *)NULL);
		}
		for (k = i; k < end; k++) {
			r = ctl_redis_get(ctl);
			state = rstr(r);
			if (strcmp(state, "active") == 0)
				active++;
			else if (strcmp(state, "deferred") == 0)
				deferred++;
			else if (strcmp(state, "held") == 0)
				held++;
			freeReplyObject(r);
		}
	}

	info = ctl_redis(ctl, "INFO", "memory", (char *)NULL);
	if ((p = strstr(rstr(info), "used_memory:")) != NULL)
		used = strtoll(p + strlen("used_memory:"), NULL, 10);

	/* counters of the schema first, then the rest (routes) by name */
	extra = xcalloc(st->elements / 2 + 1, sizeof(*extra));
	for (i = 0; st->type == REDIS_REPLY_ARRAY && i + 1 < st->elements;
	    i += 2) {
		for (k = 0; k < STAT_NFIELDS; k++)
			if (strcmp(rstr(st->element[i]), stat_fields[k]) == 0)
				break;
		if (k == STAT_NFIELDS)
			extra[nextra++] = st->element[i];
	}
	qsort(extra, nextra, sizeof(*extra), stat_cmp);

	if (ctl->json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_key(&j, "queue");
		json_object_begin(&j);
		json_kint(&j, "size", size);
		json_kint(&j, "active", active);
		json_kint(&j, "deferred", deferred);
		json_kint(&j, "held", held);
		json_kint(&j, "oldest_age", oldest);
		json_object_end(&j);
		json_key(&j, "counters");
		json_object_begin(&j);
		for (k = 0; k < STAT_NFIELDS; k++)
			json_kint(&j, stat_fields[k], hnum(st, stat_fields[k]));
		for (k = 0; k < nextra; k++)
			json_kint(&j, rstr(extra[k]), hnum(st,
			    rstr(extra[k])));
		json_object_end(&j);
		json_key(&j, "redis");
		json_object_begin(&j);
		json_kint(&j, "used_memory", used);
		json_object_end(&j);
		json_object_end(&j);
		if (json_finish(&j) == -1)
			ctl_die("standard output: write error");
	} else {
		printf("queue.size %lld\n", size);
		printf("queue.active %lld\n", active);
		printf("queue.deferred %lld\n", deferred);
		printf("queue.held %lld\n", held);
		printf("queue.oldest_age %lld\n", oldest);
		for (k = 0; k < STAT_NFIELDS; k++)
			printf("counters.%s %lld\n", stat_fields[k],
			    hnum(st, stat_fields[k]));
		for (k = 0; k < nextra; k++) {
			printf("counters.");
			put_r(extra[k]);
			printf(" %lld\n", hnum(st, rstr(extra[k])));
		}
		printf("redis.used_memory %lld\n", used);
	}
	free(extra);
	freeReplyObject(st);
	freeReplyObject(card);
	freeReplyObject(old);
	freeReplyObject(ids);
	freeReplyObject(info);
	return 0;
}
