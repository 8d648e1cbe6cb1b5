/*
 * scheduler.c - claim due messages, hand jobs to deliverd, apply results
 *
 * The schedule is a sorted set of ids scored by when each is due.  A
 * claim moves the score to the end of a lease, so that a message whose
 * queued process dies becomes due again by itself (at-least-once: a
 * message is never lost, and only what was in flight can go twice).
 * Everything that changes a claimed message checks first, inside
 * Redis, that the lease is still ours.
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <sodium.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "queue_proto.h"
#include "queued.h"
#include "redis_ev.h"
#include "route.h"
#include "xmalloc.h"

struct job_result {
	int		 have;
	int		 code;
	char		 status[16];
	char		*text;
};

struct job {
	TAILQ_ENTRY(job)	 entry;
	uint64_t		 id;
	struct child_peer	*worker;
	struct qmsg		*m;
	int			 route;
	char			 dest[300];
	size_t			*idx;		/* recipient indexes in m */
	struct job_result	*res;
	size_t			 n;
};

static TAILQ_HEAD(, qmsg)	msgs = TAILQ_HEAD_INITIALIZER(msgs);
static TAILQ_HEAD(, job)	jobs = TAILQ_HEAD_INITIALIZER(jobs);
static uint64_t			job_next_id = 1;

/*
 * claim: KEYS schedule; ARGV now_ms, lease_ms, limit, owner, prefix,
 * lease_until.  A due id whose message is gone or held leaves the
 * schedule; the others are ours until the lease ends.
 */
static const char claim_lua[] =
"local now = tonumber(ARGV[1])\n"
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0,"
" tonumber(ARGV[3]))\n"
"local out = {}\n"
"for _, id in ipairs(ids) do\n"
"  local mk = ARGV[5] .. 'msg:{' .. id .. '}'\n"
"  if redis.call('EXISTS', mk) == 0 or"
" redis.call('HGET', mk, 'state') == 'held' then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"  else\n"
"    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)\n"
"    redis.call('HSET', mk, 'lease', ARGV[4], 'lease_until', ARGV[6],"
" 'state', 'active')\n"
"    out[#out + 1] = id\n"
"  end\n"
"end\n"
"return out\n";

/* load: KEYS msg, rcpt, body */
static const char load_lua[] =
"return { redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),"
" redis.call('GET', KEYS[3]) }\n";

/* hset_if_owner: KEYS msg, target; ARGV owner, field, value, ... */
static const char hset_lua[] =
"if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end\n"
"redis.call('HSET', KEYS[2], unpack(ARGV, 2))\n"
"return 1\n";

/*
 * reschedule: KEYS msg, schedule; ARGV owner, id, next_ms, field,
 * value, ...  A message sluicectl held meanwhile stays held.
 */
static const char resched_lua[] =
"if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end\n"
"local held = redis.call('HGET', KEYS[1], 'state') == 'held'\n"
"redis.call('HSET', KEYS[1], unpack(ARGV, 4))\n"
"if held then\n"
"  redis.call('HSET', KEYS[1], 'state', 'held', 'next', 0)\n"
"  redis.call('ZREM', KEYS[2], ARGV[2])\n"
"else\n"
"  redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[2])\n"
"end\n"
"return 1\n";

/* remove: KEYS msg, rcpt, body, schedule, ids; ARGV owner, id */
static const char remove_lua[] =
"if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end\n"
"redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])\n"
"redis.call('ZREM', KEYS[4], ARGV[2])\n"
"redis.call('ZREM', KEYS[5], ARGV[2])\n"
"return 1\n";

/*
 * renew: KEYS schedule; ARGV owner, until_ms, until_s, prefix, id...
 * or, with until_ms "now", hand the claims back (shutdown).
 */
static const char renew_lua[] =
"local n = 0\n"
"for i = 5, #ARGV do\n"
"  local mk = ARGV[4] .. 'msg:{' .. ARGV[i] .. '}'\n"
"  if redis.call('HGET', mk, 'lease') == ARGV[1] then\n"
"    redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[2]), ARGV[i])\n"
"    redis.call('HSET', mk, 'lease_until', ARGV[3])\n"
"    n = n + 1\n"
"  end\n"
"end\n"
"return n\n";

static int		 sched_have_worker(void);
static struct child_peer *sched_pick_worker(void);
static void		 sched_on_claim(redisAsyncContext *, void *, void *);
static void		 sched_load(const char *);
static void		 sched_on_load(redisAsyncContext *, void *, void *);
static int		 sched_parse(struct qmsg *, redisReply *, char *,
			    size_t);
static int		 sched_body(struct qmsg *, redisReply *, char *,
			    size_t);
static void		 sched_hold_corrupt(const char *, const char *);
static void		 sched_dispatch(struct qmsg *);
static int		 sched_send_job(struct job *);
static void		 job_done(struct job *, uint32_t, const char *);
static void		 job_free(struct job *);
static void		 sched_result(struct qmsg *, struct qrcpt *, int,
			    const char *, const char *, const char *, size_t);
static void		 sched_finish(struct qmsg *);
static void		 sched_add_report(struct qmsg *, enum bounce_kind);
static void		 sched_on_finish(redisAsyncContext *, void *, void *);
static void		 sched_on_any(redisAsyncContext *, void *, void *);
static void		 qmsg_free(struct qmsg *);
static const char	*hget(redisReply *, const char *);
static uint32_t		 sched_backoff(int);

void
sched_init(void)
{
}

static int
sched_have_worker(void)
{
	return sched_pick_worker() != NULL;
}

/* sched_pick_worker - the greeted deliverd with the fewest jobs */
static struct child_peer *
sched_pick_worker(void)
{
	struct child_peer	*p, *best = NULL;
	struct job		*j;
	int			 i, n, bestn = 0;

	for (i = 0; i < CHILD_MAX_PEERS; i++) {
		p = &q.env->peers[i];
		if (p->ipc == NULL || !p->greeted || p->kind != PROC_DELIVERD)
			continue;
		n = 0;
		TAILQ_FOREACH(j, &jobs, entry)
			if (j->worker == p)
				n++;
		if (best == NULL || n < bestn) {
			best = p;
			bestn = n;
		}
	}
	return best;
}

/* sched_tick - claim what is due, as far as there is room */
void
sched_tick(void)
{
	const struct conf	*conf = q.env->conf;
	redisAsyncContext	*ac;
	uint64_t		 now = store_now_ms();
	char			 now_s[32], lease_ms[32], limit[32], until[32];
	char			*sk;
	int			 room;

	if (q.claiming || !redis_ev_up(q.redis) || !q.key_ok ||
	    !sched_have_worker())
		return;
	room = QUEUED_MAX_INFLIGHT - q.inflight - q.loading;
	if (room <= 0 || (ac = redis_ev_context(q.redis)) == NULL)
		return;
	snprintf(now_s, sizeof(now_s), "%llu", (unsigned long long)now);
	snprintf(lease_ms, sizeof(lease_ms), "%llu",
	    (unsigned long long)conf->queue.lease * 1000);
	snprintf(limit, sizeof(limit), "%d", room);
	snprintf(until, sizeof(until), "%llu",
	    (unsigned long long)(now / 1000 + conf->queue.lease));
	sk = store_name("schedule", NULL);
	if (redisAsyncCommand(ac, sched_on_claim, NULL,
	    "EVAL %s 1 %s %s %s %s %s %s %s", claim_lua, sk, now_s, lease_ms,
	    limit, q.owner, conf->redis.prefix, until) == REDIS_OK)
		q.claiming = 1;
	free(sk);
}

static void
sched_on_claim(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	size_t		 i;

	q.claiming = 0;
	if (rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		log_warnx("%s: claim: redis: %.200s", q.env->name, rep->str);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY)
		return;
	for (i = 0; i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING &&
		    msgid_valid(rep->element[i]->str))
			sched_load(rep->element[i]->str);
	/* a full batch: there may be more waiting */
	if (rep->elements > 0)
		queued_kick();
}

static void
sched_load(const char *id)
{
	redisAsyncContext	*ac = redis_ev_context(q.redis);
	char			*mk, *rk, *bk, *arg;

	if (ac == NULL)
		return;
	mk = store_name("msg", id);
	rk = store_name("rcpt", id);
	bk = store_name("body", id);
	arg = xstrdup(id);
	if (redisAsyncCommand(ac, sched_on_load, arg, "EVAL %s 3 %s %s %s",
	    load_lua, mk, rk, bk) == REDIS_OK)
		q.loading++;
	else
		free(arg);
	free(mk);
	free(rk);
	free(bk);
}

static const char *
hget(redisReply *h, const char *field)
{
	size_t	 i;

	if (h == NULL || h->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < h->elements; i += 2)
		if (h->element[i]->type == REDIS_REPLY_STRING &&
		    h->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strcmp(h->element[i]->str, field) == 0)
			return h->element[i + 1]->str;
	return NULL;
}

static void
sched_on_load(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	char		*id = arg;
	struct qmsg	*m;
	char		 why[256];

	q.loading--;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 3) {
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
			log_warnx("%s: load %s: redis: %.200s", q.env->name,
			    id, rep->str);
		free(id);
		return;		/* the lease runs out and it comes back */
	}
	if (rep->element[0]->type != REDIS_REPLY_ARRAY ||
	    rep->element[0]->elements == 0) {
		free(id);	/* deleted between claim and load */
		return;
	}
	m = xcalloc(1, sizeof(*m));
	m->fd = -1;
	strlcpy(m->id, id, sizeof(m->id));
	free(id);
	if (sched_parse(m, rep, why, sizeof(why)) == -1 ||
	    sched_body(m, rep->element[2], why, sizeof(why)) == -1) {
		log_warnx("%s: corrupt queue record: %s; held", m->id, why);
		sched_hold_corrupt(m->id, why);
		qmsg_free(m);
		return;
	}
	TAILQ_INSERT_TAIL(&msgs, m, entry);
	q.inflight++;
	sched_dispatch(m);
}

/* sched_parse - envelope and recipients from the two hashes, checked */
static int
sched_parse(struct qmsg *m, redisReply *rep, char *why, size_t len)
{
	redisReply	*h = rep->element[0], *rh = rep->element[1];
	const char	*s, *errstr;
	char		 f[32];
	size_t		 i;

	if ((s = hget(h, "from")) == NULL) {
		snprintf(why, len, "no sender");
		return -1;
	}
	m->from = xstrdup(s);
	m->envid = xstrdup((s = hget(h, "envid")) != NULL ? s : "");
	m->flags = (s = hget(h, "flags")) != NULL ?
	    (uint32_t)strtonum(s, 0, UINT32_MAX, &errstr) : 0;
	if ((s = hget(h, "created")) == NULL ||
	    (m->created = (uint64_t)strtonum(s, 1, INT64_MAX, &errstr),
	    errstr != NULL)) {
		snprintf(why, len, "no creation time");
		return -1;
	}
	if (msgid_time(m->id, &m->created_ms) == -1)
		m->created_ms = m->created * 1000;
	m->attempts = (s = hget(h, "attempts")) != NULL ?
	    (int)strtonum(s, 0, 1000000, &errstr) : 0;
	m->warned = (s = hget(h, "warned")) != NULL && strcmp(s, "1") == 0;
	m->bounce = (s = hget(h, "bounce")) != NULL && strcmp(s, "1") == 0;
	if ((s = hget(h, "last_error")) != NULL)
		strlcpy(m->last_error, s, sizeof(m->last_error));
	if ((s = hget(h, "nrcpt")) == NULL ||
	    (m->nrcpt = (size_t)strtonum(s, 1, QP_MAX_RCPT, &errstr),
	    errstr != NULL)) {
		snprintf(why, len, "bad recipient count");
		return -1;
	}
	if (rh->type != REDIS_REPLY_ARRAY) {
		snprintf(why, len, "no recipients");
		return -1;
	}
	m->rcpts = xcalloc(m->nrcpt, sizeof(*m->rcpts));
	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt	*r = &m->rcpts[i];

		snprintf(f, sizeof(f), "%zu:to", i);
		if ((s = hget(rh, f)) == NULL || s[0] == '\0') {
			snprintf(why, len, "recipient %zu missing", i);
			return -1;
		}
		r->to = xstrdup(s);
		snprintf(f, sizeof(f), "%zu:orcpt", i);
		r->orcpt = xstrdup((s = hget(rh, f)) != NULL ? s : "");
		snprintf(f, sizeof(f), "%zu:notify", i);
		r->notify = (s = hget(rh, f)) != NULL ?
		    (uint32_t)strtonum(s, 0, 15, &errstr) : 0;
		snprintf(f, sizeof(f), "%zu:state", i);
		s = hget(rh, f);
		r->state = s == NULL || strcmp(s, "pending") == 0 ? QR_PENDING :
		    strcmp(s, "sent") == 0 ? QR_SENT : QR_FAILED;
		snprintf(f, sizeof(f), "%zu:dsn", i);
		if ((s = hget(rh, f)) != NULL)
			strlcpy(r->dsn, s, sizeof(r->dsn));
		snprintf(f, sizeof(f), "%zu:reply", i);
		if ((s = hget(rh, f)) != NULL)
			r->reply = xstrdup(s);
		r->route = -1;
	}
	return 0;
}

/*
 * sched_body - open the sealed body into a new memfd, sealed in turn:
 * deliverd gets a copy it can read and nobody can change
 */
static int
sched_body(struct qmsg *m, redisReply *b, char *why, size_t len)
{
	size_t		 plen, outlen;
	void		*map;

	if (b->type != REDIS_REPLY_STRING ||
	    b->len < QSTORE_NONCE_SIZE + QSTORE_TAG_SIZE) {
		snprintf(why, len, "no message body");
		return -1;
	}
	plen = b->len - QSTORE_NONCE_SIZE - QSTORE_TAG_SIZE;
	m->fd = memfd_create(m->id, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m->fd == -1 || ftruncate(m->fd, (off_t)plen) == -1) {
		snprintf(why, len, "memfd: %s", strerror(errno));
		return -1;
	}
	if (plen == 0) {
		snprintf(why, len, "empty message body");
		return -1;
	}
	map = mmap(NULL, plen, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		return -1;
	}
	if (qstore_open(q.key, m->id, b->str, b->len, map, &outlen) == -1 ||
	    outlen != plen) {
		munmap(map, plen);
		snprintf(why, len, "message body does not decrypt with the "
		    "queue key");
		return -1;
	}
	munmap(map, plen);
	if (fcntl(m->fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW |
	    F_SEAL_SHRINK | F_SEAL_SEAL) == -1) {
		snprintf(why, len, "seal: %s", strerror(errno));
		return -1;
	}
	m->body = mmap(NULL, plen, PROT_READ, MAP_SHARED, m->fd, 0);
	if (m->body == MAP_FAILED) {
		m->body = NULL;
		snprintf(why, len, "mmap: %s", strerror(errno));
		return -1;
	}
	m->size = plen;
	return 0;
}

/* sched_hold_corrupt - set an unreadable message aside for an operator */
static void
sched_hold_corrupt(const char *id, const char *why)
{
	struct rcmd	 c;

	rcmd_init(&c);
	rcmd_str(&c, "MULTI");
	rcmd_send(&c, sched_on_any, NULL);
	rcmd_init(&c);
	rcmd_str(&c, "HSET");
	rcmd_addf(&c, "%smsg:{%s}", q.env->conf->redis.prefix, id);
	rcmd_str(&c, "state");		rcmd_str(&c, "held");
	rcmd_str(&c, "next");		rcmd_str(&c, "0");
	rcmd_str(&c, "lease");		rcmd_str(&c, "");
	rcmd_str(&c, "corrupt");	rcmd_str(&c, why);
	rcmd_send(&c, sched_on_any, NULL);
	rcmd_init(&c);
	rcmd_str(&c, "ZREM");
	rcmd_addf(&c, "%sschedule", q.env->conf->redis.prefix);
	rcmd_str(&c, id);
	rcmd_send(&c, sched_on_any, NULL);
	rcmd_init(&c);
	rcmd_str(&c, "HINCRBY");
	rcmd_addf(&c, "%sstats", q.env->conf->redis.prefix);
	rcmd_str(&c, "held");
	rcmd_str(&c, "1");
	rcmd_send(&c, sched_on_any, NULL);
	rcmd_init(&c);
	queued_event(&c, id, "corrupt" EVF "text" EVV "%s", why);
	rcmd_send(&c, sched_on_any, NULL);
	rcmd_init(&c);
	rcmd_str(&c, "EXEC");
	rcmd_send(&c, sched_on_any, NULL);
}

/* sched_on_any - replies nobody waits for; errors are worth a line */
static void
sched_on_any(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_warnx("%s: redis: %.200s", q.env->name, rep->str);
}

/*
 * sched_dispatch - one job per route and destination, carrying every
 * pending recipient for it
 */
static void
sched_dispatch(struct qmsg *m)
{
	const struct conf	*conf = q.env->conf;
	struct job		*j, *jl;
	struct qrcpt		*r;
	char			 dest[300];
	size_t			 i;
	int			 route;

	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpts[i];
		if (r->state != QR_PENDING)
			continue;
		route = route_match(conf, route_domain(r->to));
		if (route == -1 || route_destination(conf, route,
		    route_domain(r->to), dest, sizeof(dest)) == -1) {
			sched_result(m, r, 550, "5.4.4", "no route to the "
			    "recipient's domain in delivery.routes", "none",
			    i);
			continue;
		}
		r->route = route;
		j = NULL;
		TAILQ_FOREACH(jl, &jobs, entry)
			if (jl->m == m && jl->worker == NULL &&
			    jl->route == route && strcmp(jl->dest, dest) == 0 &&
			    jl->n < QUEUED_JOB_RCPTS) {
				j = jl;
				break;
			}
		if (j == NULL) {
			j = xcalloc(1, sizeof(*j));
			j->id = job_next_id++;
			j->m = m;
			j->route = route;
			strlcpy(j->dest, dest, sizeof(j->dest));
			j->idx = xcalloc(QUEUED_JOB_RCPTS, sizeof(*j->idx));
			j->res = xcalloc(QUEUED_JOB_RCPTS, sizeof(*j->res));
			TAILQ_INSERT_TAIL(&jobs, j, entry);
			m->jobs++;
		}
		j->idx[j->n++] = i;
	}
	/* hand out every job built above (they have no worker yet) */
	TAILQ_FOREACH(j, &jobs, entry)
		if (j->m == m && j->worker == NULL)
			j->worker = sched_pick_worker();
	for (j = TAILQ_FIRST(&jobs); j != NULL; j = jl) {
		jl = TAILQ_NEXT(j, entry);
		if (j->m == m && sched_send_job(j) == -1)
			job_done(j, 0, "none");
	}
	if (m->jobs == 0)
		sched_finish(m);
}

static int
sched_send_job(struct job *j)
{
	struct ipc_frame	 f;
	struct qmsg		*m = j->m;
	struct qrcpt		*r;
	size_t			 i;

	if (j->worker == NULL)
		return -1;
	for (i = 0; i < j->n; i++) {
		r = &m->rcpts[j->idx[i]];
		ipc_frame_init(&f, IPC_DLV_RCPT, j->id);
		ipc_put_u32(&f, (uint32_t)j->idx[i]);
		ipc_put_u32(&f, r->notify);
		ipc_put_str(&f, r->to);
		ipc_put_str(&f, r->orcpt);
		if (ipc_send(j->worker->ipc, &f, -1) == -1)
			return -1;
	}
	ipc_frame_init(&f, IPC_DLV_JOB, j->id);
	ipc_put_u32(&f, (uint32_t)j->route);
	ipc_put_u32(&f, m->flags);
	ipc_put_u32(&f, (uint32_t)j->n);
	ipc_put_str(&f, m->id);
	ipc_put_str(&f, m->from);
	ipc_put_str(&f, m->envid);
	ipc_put_str(&f, j->dest);
	return ipc_send(j->worker->ipc, &f, m->fd);
}

/* sched_peer_msg - DLV_RESULT and DLV_DONE from a worker */
void
sched_peer_msg(struct child_peer *p, struct ipc_msg *msg)
{
	struct job	*j;
	uint32_t	 idx, code, flags;
	char		 status[16], text[QP_MAX_TEXT + 1], relay[300];
	size_t		 i;

	TAILQ_FOREACH(j, &jobs, entry)
		if (j->id == msg->reqid && j->worker == p)
			break;
	if (j == NULL) {
		log_debug("%s: %s for unknown job %llu", ipc_name(p->ipc),
		    ipc_type_str(msg->type), (unsigned long long)msg->reqid);
		return;
	}
	switch (msg->type) {
	case IPC_DLV_RESULT:
		if (ipc_get_u32(msg, &idx) == -1 ||
		    ipc_get_u32(msg, &code) == -1 ||
		    ipc_get_str(msg, status, sizeof(status)) == -1 ||
		    ipc_get_str(msg, text, sizeof(text)) == -1 ||
		    ipc_end(msg) == -1 || code < 200 || code > 599) {
			log_warnx("%s: malformed DLV_RESULT", ipc_name(p->ipc));
			return;
		}
		for (i = 0; i < j->n; i++)
			if (j->idx[i] == idx)
				break;
		if (i == j->n)
			return;
		j->res[i].have = 1;
		j->res[i].code = (int)code;
		strlcpy(j->res[i].status, status, sizeof(j->res[i].status));
		free(j->res[i].text);
		j->res[i].text = xstrdup(text);
		break;
	case IPC_DLV_DONE:
		if (ipc_get_u32(msg, &flags) == -1 ||
		    ipc_get_str(msg, relay, sizeof(relay)) == -1 ||
		    ipc_end(msg) == -1) {
			log_warnx("%s: malformed DLV_DONE", ipc_name(p->ipc));
			flags = 0;
			strlcpy(relay, "none", sizeof(relay));
		}
		job_done(j, flags, relay);
		break;
	default:
		log_warnx("%s: unexpected %s", ipc_name(p->ipc),
		    ipc_type_str(msg->type));
	}
}

/* sched_peer_gone - a worker died: its jobs' recipients are retried */
void
sched_peer_gone(struct child_peer *p)
{
	struct job	*j, *next;

	for (j = TAILQ_FIRST(&jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->worker == p)
			job_done(j, 0, "none");
	}
}

static void
job_free(struct job *j)
{
	size_t	 i;

	TAILQ_REMOVE(&jobs, j, entry);
	for (i = 0; i < j->n; i++)
		free(j->res[i].text);
	free(j->res);
	free(j->idx);
	free(j);
}

/* job_done - apply every recipient's outcome; a missing one is temporary */
static void
job_done(struct job *j, uint32_t flags, const char *relay)
{
	struct qmsg		*m = j->m;
	struct job_result	*res;
	size_t			 i;

	for (i = 0; i < j->n; i++) {
		res = &j->res[i];
		m->rcpts[j->idx[i]].dsn_passed = (flags & QP_DONE_DSN) != 0;
		if (res->have)
			sched_result(m, &m->rcpts[j->idx[i]], res->code,
			    res->status, res->text, relay, j->idx[i]);
		else
			sched_result(m, &m->rcpts[j->idx[i]], 451, "4.4.0",
			    j->worker == NULL ? "no delivery worker available" :
			    "the delivery attempt did not finish", relay,
			    j->idx[i]);
	}
	job_free(j);
	if (--m->jobs == 0)
		sched_finish(m);
}

/*
 * sched_result - one recipient's outcome: the log line, the counters,
 * the event, and its fields in Redis (while the lease is ours)
 */
static void
sched_result(struct qmsg *m, struct qrcpt *r, int code, const char *status,
    const char *text, const char *relay, size_t idx)
{
	struct rcmd	 c;
	char		 to[QP_MAX_ADDR * 4 + 1], ptext[QP_MAX_TEXT * 4 + 1];
	char		 label[300], prelay[300 * 4 + 1];
	const char	*what, *counter;
	uint64_t	 now = store_now_ms();

	r->code = code;
	strlcpy(r->dsn, status[0] != '\0' ? status : code < 300 ? "2.0.0" :
	    code < 500 ? "4.0.0" : "5.0.0", sizeof(r->dsn));
	free(r->reply);
	r->reply = xstrdup(text);
	free(r->relay);
	r->relay = xstrdup(relay);
	if (code >= 200 && code < 300) {
		r->state = QR_SENT;
		r->newly = 1;
		what = "sent";
		counter = "delivered";
	} else if (code >= 500) {
		r->state = QR_FAILED;
		r->newly = 1;
		what = "bounced";
		counter = "bounced";
	} else {
		what = "deferred";
		counter = "deferred";
		snprintf(m->last_error, sizeof(m->last_error), "%s %s",
		    r->dsn, text);
	}
	log_printable(to, sizeof(to), r->to, strlen(r->to));
	log_printable(ptext, sizeof(ptext), text, strlen(text));
	log_printable(prelay, sizeof(prelay), relay, strlen(relay));
	log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)",
	    m->id, to, prelay, now > m->created_ms ?
	    (double)(now - m->created_ms) / 1000 : 0.0, r->dsn, what, ptext);

	rcmd_init(&c);
	rcmd_str(&c, "EVAL");
	rcmd_str(&c, hset_lua);
	rcmd_str(&c, "2");
	rcmd_addf(&c, "%smsg:{%s}", q.env->conf->redis.prefix, m->id);
	rcmd_addf(&c, "%srcpt:{%s}", q.env->conf->redis.prefix, m->id);
	rcmd_str(&c, q.owner);
	rcmd_addf(&c, "%zu:state", idx);
	rcmd_str(&c, r->state == QR_SENT ? "sent" : r->state == QR_FAILED ?
	    "failed" : "pending");
	rcmd_addf(&c, "%zu:dsn", idx);		rcmd_str(&c, r->dsn);
	rcmd_addf(&c, "%zu:reply", idx);	rcmd_str(&c, text);
	rcmd_addf(&c, "%zu:relay", idx);	rcmd_str(&c, relay);
	rcmd_addf(&c, "%zu:at", idx);		rcmd_addf(&c, "%llu",
	    (unsigned long long)(now / 1000));
	rcmd_send(&c, sched_on_any, NULL);

	rcmd_init(&c);
	rcmd_str(&c, "HINCRBY");
	rcmd_addf(&c, "%sstats", q.env->conf->redis.prefix);
	rcmd_str(&c, counter);
	rcmd_str(&c, "1");
	rcmd_send(&c, sched_on_any, NULL);
	if (r->route >= 0) {
		route_label(q.env->conf, r->route, label, sizeof(label));
		rcmd_init(&c);
		rcmd_str(&c, "HINCRBY");
		rcmd_addf(&c, "%sstats", q.env->conf->redis.prefix);
		rcmd_addf(&c, "route:%s:%s", label, counter);
		rcmd_str(&c, "1");
		rcmd_send(&c, sched_on_any, NULL);
	}
	rcmd_init(&c);
	queued_event(&c, m->id, "%s" EVF "rcpt" EVV "%s" EVF "dsn" EVV "%s"
	    EVF "relay" EVV "%s" EVF "text" EVV "%s", what, r->to, r->dsn,
	    relay, text);
	rcmd_send(&c, sched_on_any, NULL);
}

/* sched_backoff - seconds before attempt n+1: doubling, capped, jittered */
static uint32_t
sched_backoff(int attempts)
{
	const struct conf	*conf = q.env->conf;
	uint64_t		 d = conf->queue.retry_min;
	int			 i;

	for (i = 1; i < attempts && d < conf->queue.retry_max; i++)
		d *= 2;
	if (d > conf->queue.retry_max)
		d = conf->queue.retry_max;
	/* in milliseconds: up to a tenth earlier, so retries spread out */
	d *= 1000;
	d -= randombytes_uniform((uint32_t)(d / 10 + 1));
	return (uint32_t)d;
}

/* sched_add_report - a DSN of this kind, queued in the open MULTI */
static void
sched_add_report(struct qmsg *m, enum bounce_kind kind)
{
	struct store_new	 sn;
	struct rcmd		 c;
	char			 id[MSGID_SIZE];
	const char		*to[1], *orcpt[1] = { "" };
	uint32_t		 notify[1] = { QP_NOTIFY_NEVER };
	char			*text;
	size_t			 len, i;
	int			 n = 0, sent = 0;

	for (i = 0; i < m->nrcpt; i++)
		if (bounce_wants(m, &m->rcpts[i], kind))
			n++;
	if (n == 0)
		return;
	msgid_new(id);
	if ((text = bounce_build(m, kind, id, &len)) == NULL) {
		log_warnx("%s: cannot build a delivery report", m->id);
		return;
	}
	to[0] = m->from;
	memset(&sn, 0, sizeof(sn));
	sn.from = "";
	sn.envid = "";
	sn.user = "";
	sn.client = "";
	sn.helo = "";
	sn.proto = "local";
	sn.tls = "";
	sn.flags = m->flags & (QP_BODY_8BITMIME | QP_SMTPUTF8);
	sn.bounce = 1;
	sn.nrcpt = 1;
	sn.to = to;
	sn.orcpt = orcpt;
	sn.notify = notify;
	store_add_message(&sn, text, len, id, sched_on_any, NULL, &sent);
	free(text);
	log_info("%s: sender %s notification: %s", m->id,
	    kind == BOUNCE_FAILED ? "non-delivery" : kind == BOUNCE_DELAYED ?
	    "delay" : "delivery status", id);
	log_info("%s: from=<>, size=%zu, nrcpt=1 (queue active)", id, len);
	rcmd_init(&c);
	rcmd_str(&c, "HINCRBY");
	rcmd_addf(&c, "%sstats", q.env->conf->redis.prefix);
	rcmd_str(&c, "dsn");
	rcmd_str(&c, "1");
	rcmd_send(&c, sched_on_any, NULL);
	rcmd_init(&c);
	queued_event(&c, m->id, "%s" EVF "text" EVV "%s",
	    kind == BOUNCE_DELAYED ? "delayed" : "dsn", id);
	rcmd_send(&c, sched_on_any, NULL);
}

/*
 * sched_finish - every job of the claim is back: remove the message
 * when nothing is pending, else reschedule it; reports go in the same
 * MULTI, so a crash cannot send one twice or lose one
 */
static void
sched_finish(struct qmsg *m)
{
	const struct conf	*conf = q.env->conf;
	struct rcmd		 c;
	struct qrcpt		*r;
	uint64_t		 now = store_now_ms(), next;
	const char		*pfx = conf->redis.prefix;
	char			 reply[QP_MAX_TEXT + 64];
	size_t			 i, pending = 0;
	int			 warn = 0;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == QR_PENDING)
			pending++;
	/* queue.lifetime is over: what is still pending fails now */
	if (pending > 0 && now / 1000 >= m->created + conf->queue.lifetime) {
		for (i = 0; i < m->nrcpt; i++) {
			r = &m->rcpts[i];
			if (r->state != QR_PENDING)
				continue;
			snprintf(reply, sizeof(reply), "delivery time expired%s%s",
			    r->reply != NULL && r->reply[0] != '\0' ?
			    "; last error: " : "", r->reply != NULL ?
			    r->reply : "");
			r->state = QR_FAILED;
			r->newly = 1;
			if (r->dsn[0] != '4')
				strlcpy(r->dsn, "4.4.7", sizeof(r->dsn));
			free(r->reply);
			r->reply = xstrdup(reply);
			log_info("%s: to=<%s>, dsn=%s, status=expired, "
			    "returned to sender (%s)", m->id, r->to, r->dsn,
			    reply);
			rcmd_init(&c);
			rcmd_str(&c, "HINCRBY");
			rcmd_addf(&c, "%sstats", pfx);
			rcmd_str(&c, "expired");
			rcmd_str(&c, "1");
			rcmd_send(&c, sched_on_any, NULL);
			rcmd_init(&c);
			queued_event(&c, m->id, "expired" EVF "rcpt" EVV "%s"
			    EVF "dsn" EVV "%s", r->to, r->dsn);
			rcmd_send(&c, sched_on_any, NULL);
		}
		pending = 0;
	}
	if (pending > 0 && conf->queue.delay_warning > 0 && !m->warned &&
	    now / 1000 >= m->created + conf->queue.delay_warning)
		warn = 1;

	rcmd_init(&c);
	rcmd_str(&c, "MULTI");
	rcmd_send(&c, sched_on_any, NULL);
	sched_add_report(m, BOUNCE_FAILED);
	sched_add_report(m, BOUNCE_SUCCESS);
	if (warn) {
		sched_add_report(m, BOUNCE_DELAYED);
		m->warned = 1;
	}
	if (pending == 0) {
		rcmd_init(&c);
		rcmd_str(&c, "EVAL");
		rcmd_str(&c, remove_lua);
		rcmd_str(&c, "5");
		rcmd_addf(&c, "%smsg:{%s}", pfx, m->id);
		rcmd_addf(&c, "%srcpt:{%s}", pfx, m->id);
		rcmd_addf(&c, "%sbody:{%s}", pfx, m->id);
		rcmd_addf(&c, "%sschedule", pfx);
		rcmd_addf(&c, "%sids", pfx);
		rcmd_str(&c, q.owner);
		rcmd_str(&c, m->id);
		rcmd_send(&c, sched_on_any, NULL);
		rcmd_init(&c);
		queued_event(&c, m->id, "removed");
		rcmd_send(&c, sched_on_any, NULL);
		log_info("%s: removed", m->id);
	} else {
		m->attempts++;
		next = now + sched_backoff(m->attempts);
		rcmd_init(&c);
		rcmd_str(&c, "EVAL");
		rcmd_str(&c, resched_lua);
		rcmd_str(&c, "2");
		rcmd_addf(&c, "%smsg:{%s}", pfx, m->id);
		rcmd_addf(&c, "%sschedule", pfx);
		rcmd_str(&c, q.owner);
		rcmd_str(&c, m->id);
		rcmd_addf(&c, "%llu", (unsigned long long)next);
		rcmd_str(&c, "state");		rcmd_str(&c, "deferred");
		rcmd_str(&c, "attempts");	rcmd_addf(&c, "%d", m->attempts);
		rcmd_str(&c, "next");		rcmd_addf(&c, "%llu",
		    (unsigned long long)(next / 1000));
		rcmd_str(&c, "last_error");	rcmd_str(&c, m->last_error);
		rcmd_str(&c, "lease");		rcmd_str(&c, "");
		rcmd_str(&c, "lease_until");	rcmd_str(&c, "0");
		rcmd_str(&c, "warned");		rcmd_str(&c, m->warned ? "1" :
		    "0");
		rcmd_send(&c, sched_on_any, NULL);
	}
	rcmd_init(&c);
	rcmd_str(&c, "EXEC");
	/* without Redis the lease runs out and the attempt is repeated */
	TAILQ_REMOVE(&msgs, m, entry);
	if (rcmd_send(&c, sched_on_finish, m) == -1) {
		q.inflight--;
		qmsg_free(m);
	}
}

static void
sched_on_finish(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	struct qmsg	*m = arg;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_warnx("%s: finish: redis: %.200s", m->id, rep->str);
	q.inflight--;
	qmsg_free(m);
	queued_kick();
}

/* sched_renew - keep the leases of what we still work on */
void
sched_renew(void)
{
	const struct conf	*conf = q.env->conf;
	struct rcmd		 c;
	struct qmsg		*m;
	uint64_t		 now = store_now_ms();

	if (TAILQ_EMPTY(&msgs) || !redis_ev_up(q.redis))
		return;
	rcmd_init(&c);
	rcmd_str(&c, "EVAL");
	rcmd_str(&c, renew_lua);
	rcmd_str(&c, "1");
	rcmd_addf(&c, "%sschedule", conf->redis.prefix);
	rcmd_str(&c, q.owner);
	rcmd_addf(&c, "%llu", (unsigned long long)(now +
	    (uint64_t)conf->queue.lease * 1000));
	rcmd_addf(&c, "%llu", (unsigned long long)(now / 1000 +
	    conf->queue.lease));
	rcmd_str(&c, conf->redis.prefix);
	TAILQ_FOREACH(m, &msgs, entry)
		rcmd_str(&c, m->id);
	rcmd_send(&c, sched_on_any, NULL);
}

/*
 * sched_release_all - on shutdown, make our claims due now so that the
 * next queued to look takes them without waiting for the lease
 */
void
sched_release_all(void)
{
	const struct conf	*conf = q.env->conf;
	redisAsyncContext	*ac;
	struct rcmd		 c;
	struct qmsg		*m;
	uint64_t		 now = store_now_ms();

	if (TAILQ_EMPTY(&msgs) || !redis_ev_up(q.redis))
		return;
	rcmd_init(&c);
	rcmd_str(&c, "EVAL");
	rcmd_str(&c, renew_lua);
	rcmd_str(&c, "1");
	rcmd_addf(&c, "%sschedule", conf->redis.prefix);
	rcmd_str(&c, q.owner);
	rcmd_addf(&c, "%llu", (unsigned long long)now);
	rcmd_addf(&c, "%llu", (unsigned long long)(now / 1000));
	rcmd_str(&c, conf->redis.prefix);
	TAILQ_FOREACH(m, &msgs, entry)
		rcmd_str(&c, m->id);
	rcmd_send(&c, NULL, NULL);
	/* the process exits next: push the command out now */
	if ((ac = redis_ev_context(q.redis)) != NULL)
		redisAsyncHandleWrite(ac);
}

static void
qmsg_free(struct qmsg *m)
{
	size_t	 i;

	if (m == NULL)
		return;
	for (i = 0; m->rcpts != NULL && i < m->nrcpt; i++) {
		free(m->rcpts[i].to);
		free(m->rcpts[i].orcpt);
		free(m->rcpts[i].reply);
		free(m->rcpts[i].relay);
	}
	free(m->rcpts);
	if (m->body != NULL)
		munmap((void *)m->body, m->size);
	if (m->fd != -1)
		close(m->fd);
	free(m->from);
	free(m->envid);
	free(m);
}
