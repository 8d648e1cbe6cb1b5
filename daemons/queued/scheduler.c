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

static TAILQ_HEAD(, qmsg)	msgs = TAILQ_HEAD_INITIALIZER(msgs);
static TAILQ_HEAD(, job)	jobs = TAILQ_HEAD_INITIALIZER(jobs);
static uint64_t			job_next_id = 1;

/*
 * claim: KEYS schedule; ARGV lease_ms, limit, owner, prefix.  Times
 * come from the Redis server's clock, so nodes whose clocks differ
 * still agree on when a lease ends.  A due id whose message is gone or
 * held leaves the schedule; one whose lease is still ours is being
 * worked on here already; the others are ours until the lease ends.
 */
static const char claim_lua[] =
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0,"
" tonumber(ARGV[2]))\n"
"local out = {}\n"
"for _, id in ipairs(ids) do\n"
"  local mk = ARGV[4] .. 'msg:{' .. id .. '}'\n"
"  local h = redis.call('HMGET', mk, 'state', 'lease', 'lease_until')\n"
"  if redis.call('EXISTS', mk) == 0 or h[1] == 'held' then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"  elseif h[2] == ARGV[3] and tonumber(h[3] or 0) * 1000 > now then\n"
"    redis.call('ZADD', KEYS[1], tonumber(h[3]) * 1000, id)\n"
"  else\n"
"    local until_ms = now + tonumber(ARGV[1])\n"
"    redis.call('ZADD', KEYS[1], until_ms, id)\n"
"    redis.call('HSET', mk, 'lease', ARGV[3], 'lease_until',"
" math.floor(until_ms / 1000), 'state', 'active')\n"
"    out[#out + 1] = id\n"
"  end\n"
"end\n"
"return out\n";

/* load: KEYS msg, rcpt, body */
static const char load_lua[] =
"return { redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),"
" redis.call('GET', KEYS[3]) }\n";

/*
 * renew: KEYS schedule; ARGV owner, lease_ms, prefix, id...; a
 * lease_ms of 0 hands the claims back (shutdown).  Redis's clock.
 */
static const char renew_lua[] =
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local until_ms = now + tonumber(ARGV[2])\n"
"local n = 0\n"
"for i = 4, #ARGV do\n"
"  local mk = ARGV[3] .. 'msg:{' .. ARGV[i] .. '}'\n"
"  if redis.call('HGET', mk, 'lease') == ARGV[1] then\n"
"    redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i])\n"
"    redis.call('HSET', mk, 'lease_until', math.floor(until_ms / 1000))\n"
"    n = n + 1\n"
"  end\n"
"end\n"
"return n\n";

/* ids claimed and still loading, so that a claim never takes them twice */
struct loading {
	TAILQ_ENTRY(loading)	 entry;
	char			 id[MSGID_SIZE];
};
static TAILQ_HEAD(, loading)	loads = TAILQ_HEAD_INITIALIZER(loads);

static int		 sched_claimed(const char *);
static void		 sched_on_claim(redisAsyncContext *, void *, void *);
static void		 sched_load(const char *);
static void		 sched_on_load(redisAsyncContext *, void *, void *);
static int		 sched_parse(struct qmsg *, redisReply *, char *,
			    size_t);
static int		 sched_body(struct qmsg *, redisReply *, char *,
			    size_t);
static void		 sched_hold_corrupt(const char *, const char *);
static void		 sched_drop_bad_id(const char *);
static void		 sched_dispatch(struct qmsg *);
static int		 sched_send_job(struct job *);
static void		 job_apply(struct job *, uint32_t, const char *);
static void		 job_done(struct job *, uint32_t, const char *);
static void		 job_free(struct job *);
static void		 job_forget(struct job *);
static void		 sched_result(struct qmsg *, struct qrcpt *,
			    const struct job *, int,
			    const char *, const char *, const char *);
static void		 sched_finish(struct qmsg *);
static void		 sched_add_report(struct rbatch *, struct qmsg *,
			    enum bounce_kind);
static void		 sched_count(struct rbatch *, const char *,
			    const char *);
static void		 sched_on_finish(redisAsyncContext *, void *, void *);
static void		 sched_on_any(redisAsyncContext *, void *, void *);
static void		 qmsg_free(struct qmsg *);
static uint32_t		 sched_backoff(int);
static double		 sched_secs(uint64_t, uint64_t);
static uint64_t		 sched_job_deadline(void);

/* sched_pick_worker - the greeted deliverd with the fewest jobs */
struct child_peer *
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
	char			 lease_ms[32], limit[32];
	char			*sk;
	int			 room;

	if (q.claiming || !redis_ev_up(q.redis) || !q.key_ok ||
	    sched_pick_worker() == NULL)
		return;
	room = QUEUED_MAX_INFLIGHT - q.inflight - q.loading;
	if (room <= 0 || (ac = redis_ev_context(q.redis)) == NULL)
		return;
	snprintf(lease_ms, sizeof(lease_ms), "%llu",
	    (unsigned long long)conf->queue.lease * 1000);
	snprintf(limit, sizeof(limit), "%d", room);
	sk = store_name("schedule", NULL);
	if (redisAsyncCommand(ac, sched_on_claim, NULL,
	    "EVAL %s 1 %s %s %s %s %s", claim_lua, sk, lease_ms, limit,
	    q.owner, conf->redis.prefix) == REDIS_OK)
		q.claiming = 1;
	free(sk);
}

/* sched_claimed - already in memory (loading or loaded)? */
static int
sched_claimed(const char *id)
{
	struct loading	*l;
	struct qmsg	*m;

	TAILQ_FOREACH(l, &loads, entry)
		if (strcmp(l->id, id) == 0)
			return 1;
	TAILQ_FOREACH(m, &msgs, entry)
		if (strcmp(m->id, id) == 0)
			return 1;
	return 0;
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
	for (i = 0; i < rep->elements; i++) {
		if (rep->element[i]->type != REDIS_REPLY_STRING)
			continue;
		if (!msgid_valid(rep->element[i]->str))
			sched_drop_bad_id(rep->element[i]->str);
		else if (!sched_claimed(rep->element[i]->str))
			sched_load(rep->element[i]->str);
	}
	/* a full batch: there may be more waiting */
	if (rep->elements > 0)
		queued_kick();
}

/* sched_drop_bad_id - a schedule entry that is no queue id at all */
static void
sched_drop_bad_id(const char *id)
{
	struct rcmd	 c;
	char		 shown[128];

	log_printable(shown, sizeof(shown), id, strlen(id));
	log_warnx("%s: schedule holds \"%s\", which is no queue id; removed",
	    q.env->name, shown);
	rcmd_init(&c);
	rcmd_str(&c, "ZREM");
	rcmd_addf(&c, "%sschedule", q.env->conf->redis.prefix);
	rcmd_str(&c, id);
	rcmd_send(&c, sched_on_any, NULL);
}

static void
sched_load(const char *id)
{
	redisAsyncContext	*ac = redis_ev_context(q.redis);
	struct loading		*l;
	char			*mk, *rk, *bk;

	if (ac == NULL)
		return;
	mk = store_name("msg", id);
	rk = store_name("rcpt", id);
	bk = store_name("body", id);
	l = xcalloc(1, sizeof(*l));
	strlcpy(l->id, id, sizeof(l->id));
	if (redisAsyncCommand(ac, sched_on_load, l, "EVAL %s 3 %s %s %s",
	    load_lua, mk, rk, bk) == REDIS_OK) {
		TAILQ_INSERT_TAIL(&loads, l, entry);
		q.loading++;
	} else
		free(l);
	free(mk);
	free(rk);
	free(bk);
}

static void
sched_on_load(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	struct loading	*l = arg;
	struct qmsg	*m;
	char		 why[256];

	TAILQ_REMOVE(&loads, l, entry);
	q.loading--;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 3) {
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
			log_warnx("%s: load %s: redis: %.200s", q.env->name,
			    l->id, rep->str);
		free(l);
		return;		/* the lease runs out and it comes back */
	}
	if (rep->element[0]->type != REDIS_REPLY_ARRAY ||
	    rep->element[0]->elements == 0) {
		free(l);	/* deleted between claim and load */
		return;
	}
	m = xcalloc(1, sizeof(*m));
	m->fd = -1;
	strlcpy(m->id, l->id, sizeof(m->id));
	free(l);
	if (sched_parse(m, rep, why, sizeof(why)) == -1 ||
	    sched_body(m, rep->element[2], why, sizeof(why)) == -1) {
		log_warnx("%s: corrupt queue record: %s; held", m->id, why);
		sched_hold_corrupt(m->id, why);
		qmsg_free(m);
		return;
	}
	TAILQ_INSERT_TAIL(&msgs, m, entry);
	q.inflight++;
	m->loaded_ms = store_now_ms();
	sched_dispatch(m);
}

/*
 * sched_parse - envelope and recipients from the two hashes, checked;
 * one pass over each (a message may have many recipients)
 */
static int
sched_parse(struct qmsg *m, redisReply *rep, char *why, size_t len)
{
	redisReply	*h = rep->element[0], *rh = rep->element[1];
	const char	*f, *v, *errstr, *colon;
	char		 num[16];
	size_t		 i, idx;
	int		 have_from = 0, have_created = 0, have_nrcpt = 0;

	for (i = 0; i + 1 < h->elements; i += 2) {
		if (h->element[i]->type != REDIS_REPLY_STRING ||
		    h->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		f = h->element[i]->str;
		v = h->element[i + 1]->str;
		if (strcmp(f, "from") == 0) {
			free(m->from);
			m->from = xstrdup(v);
			have_from = 1;
		} else if (strcmp(f, "envid") == 0) {
			free(m->envid);
			m->envid = xstrdup(v);
		} else if (strcmp(f, "flags") == 0)
			m->flags = (uint32_t)strtonum(v, 0, UINT32_MAX, &errstr);
		else if (strcmp(f, "created") == 0) {
			m->created = (uint64_t)strtonum(v, 1, INT64_MAX,
			    &errstr);
			have_created = errstr == NULL;
		} else if (strcmp(f, "attempts") == 0)
			m->attempts = (int)strtonum(v, 0, 1000000, &errstr);
		else if (strcmp(f, "warned") == 0)
			m->warned = strcmp(v, "1") == 0;
		else if (strcmp(f, "bounce") == 0)
			m->bounce = strcmp(v, "1") == 0;
		else if (strcmp(f, "last_error") == 0)
			strlcpy(m->last_error, v, sizeof(m->last_error));
		else if (strcmp(f, "nrcpt") == 0) {
			m->nrcpt = (size_t)strtonum(v, 1, QP_MAX_RCPT, &errstr);
			have_nrcpt = errstr == NULL;
		}
	}
	if (!have_from || !have_created || !have_nrcpt) {
		snprintf(why, len, "envelope lacks %s", !have_from ? "the "
		    "sender" : !have_created ? "its creation time" :
		    "a valid recipient count");
		return -1;
	}
	if (m->envid == NULL)
		m->envid = xstrdup("");
	if (msgid_time(m->id, &m->created_ms) == -1)
		m->created_ms = m->created * 1000;
	if (rh->type != REDIS_REPLY_ARRAY) {
		snprintf(why, len, "no recipients");
		return -1;
	}
	m->rcpts = xcalloc(m->nrcpt, sizeof(*m->rcpts));
	for (i = 0; i < m->nrcpt; i++)
		m->rcpts[i].route = -1;
	for (i = 0; i + 1 < rh->elements; i += 2) {
		struct qrcpt	*r;

		if (rh->element[i]->type != REDIS_REPLY_STRING ||
		    rh->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		f = rh->element[i]->str;
		v = rh->element[i + 1]->str;
		/* "N:field" */
		if ((colon = strchr(f, ':')) == NULL ||
		    (size_t)(colon - f) >= sizeof(num))
			continue;
		memcpy(num, f, (size_t)(colon - f));
		num[colon - f] = '\0';
		idx = (size_t)strtonum(num, 0, QP_MAX_RCPT - 1, &errstr);
		if (errstr != NULL || idx >= m->nrcpt)
			continue;
		r = &m->rcpts[idx];
		f = colon + 1;
		if (strcmp(f, "to") == 0) {
			free(r->to);
			r->to = xstrdup(v);
		} else if (strcmp(f, "orcpt") == 0) {
			free(r->orcpt);
			r->orcpt = xstrdup(v);
		} else if (strcmp(f, "notify") == 0)
			r->notify = (uint32_t)strtonum(v, 0, 15, &errstr);
		else if (strcmp(f, "state") == 0)
			r->state = strcmp(v, "pending") == 0 ? QR_PENDING :
			    strcmp(v, "sent") == 0 ? QR_SENT : QR_FAILED;
		else if (strcmp(f, "dsn") == 0)
			strlcpy(r->dsn, v, sizeof(r->dsn));
		else if (strcmp(f, "reply") == 0) {
			free(r->reply);
			r->reply = xstrdup(v);
		}
	}
	for (i = 0; i < m->nrcpt; i++) {
		if (m->rcpts[i].to == NULL || m->rcpts[i].to[0] == '\0') {
			snprintf(why, len, "recipient %zu missing", i);
			return -1;
		}
		if (m->rcpts[i].orcpt == NULL)
			m->rcpts[i].orcpt = xstrdup("");
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
	if (plen == 0) {
		snprintf(why, len, "empty message body");
		return -1;
	}
	m->fd = memfd_create(m->id, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m->fd == -1 || ftruncate(m->fd, (off_t)plen) == -1) {
		snprintf(why, len, "memfd: %s", strerror(errno));
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
	queued_event(&c, id, "corrupt", "text", why, NULL);
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
	struct job		*j, *jl, **list;
	struct qrcpt		*r;
	char			 dest[300], label[300];
	size_t			 i, n = 0;
	int			 route;

	m->dispatching = 1;
	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpts[i];
		if (r->state != QR_PENDING)
			continue;
		route = route_match(conf, route_domain(r->to));
		if (route == -1 || route_destination(conf, route,
		    route_domain(r->to), dest, sizeof(dest)) == -1) {
			sched_result(m, r, NULL, 550, "5.4.4", "no route to "
			    "the recipient's domain in delivery.routes", "none");
			continue;
		}
		r->route = route;
		/* the name counters use; the route table may change on reload */
		route_label(conf, route, label, sizeof(label));
		free(r->label);
		r->label = xstrdup(label);
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
			TAILQ_INSERT_TAIL(&jobs, j, entry);
			m->jobs++;
		}
		if (j->n == j->cap) {
			j->cap = j->cap ? j->cap * 2 : 4;
			j->idx = xreallocarray(j->idx, j->cap, sizeof(*j->idx));
			j->res = xreallocarray(j->res, j->cap, sizeof(*j->res));
		}
		memset(&j->res[j->n], 0, sizeof(j->res[j->n]));
		j->idx[j->n++] = i;
	}
	/*
	 * Each job built above goes to its destination, which sends it
	 * when its limits allow.  That may end other jobs, so the new
	 * ones are listed first.
	 */
	if (m->jobs > 0) {
		list = xreallocarray(NULL, (size_t)m->jobs, sizeof(*list));
		TAILQ_FOREACH(j, &jobs, entry)
			if (j->m == m && j->d == NULL && n < (size_t)m->jobs)
				list[n++] = j;
		for (i = 0; i < n; i++)
			dest_submit(list[i]);
		free(list);
	}
	m->dispatching = 0;
	if (m->jobs == 0)
		sched_finish(m);
}

/*
 * sched_send_job - the recipients, then the job with the body; a
 * worker whose channel is backed up gets nothing more for now, since
 * a full queue would kill the channel and every job on it
 */
static int
sched_send_job(struct job *j)
{
	struct ipc_frame	 f;
	struct qmsg		*m = j->m;
	struct qrcpt		*r;
	size_t			 i, need = 0;

	if (j->worker == NULL)
		return -1;
	for (i = 0; i < j->n; i++)
		need += IPC_HDR_SIZE + 16 + strlen(m->rcpts[j->idx[i]].to) +
		    strlen(m->rcpts[j->idx[i]].orcpt);
	if (ipc_queued(j->worker->ipc) + need + IPC_MAX_FRAME >
	    IPC_MAX_QUEUED / 2)
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

/* sched_start_job - send a job to worker w; -1 when it cannot go */
int
sched_start_job(struct job *j, struct child_peer *w)
{
	j->worker = w;
	j->started = store_now_ms();
	if (sched_send_job(j) == 0)
		return 0;
	j->worker = NULL;
	return -1;
}

/* sched_job_failed - a job that could not be sent fails for now */
void
sched_job_failed(struct job *j)
{
	job_done(j, 0, "none");
}

/*
 * sched_postpone - a limit holds the job back: its recipients go back
 * to the schedule untouched, to be tried at until (ms) without
 * counting an attempt
 */
void
sched_postpone(struct job *j, uint64_t until, const char *why)
{
	struct qmsg	*m = j->m;

	log_info("%s: waiting for %s (%s); back in %.1f s", m->id, j->dest,
	    why, until > store_now_ms() ? (double)(until - store_now_ms()) /
	    1000 : 0.0);
	if (m->postpone_ms == 0 || until < m->postpone_ms)
		m->postpone_ms = until;
	dest_job_done(j, 0);
	job_forget(j);
}

/* sched_peer_msg - DLV_RESULT, DLV_DONE and DLV_CLOSED from a worker */
void
sched_peer_msg(struct child_peer *p, struct ipc_msg *msg)
{
	struct job	*j;
	uint32_t	 idx, code, flags;
	char		 status[16], text[QP_MAX_TEXT + 1], relay[300];
	size_t		 i;

	if (msg->type == IPC_DLV_CLOSED) {
		if (ipc_get_u32(msg, &idx) == -1 ||
		    ipc_get_str(msg, relay, sizeof(relay)) == -1 ||
		    ipc_end(msg) == -1) {
			log_warnx("%s: malformed DLV_CLOSED", ipc_name(p->ipc));
			return;
		}
		dest_closed(p, (int)idx, relay);
		return;
	}
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
		    ipc_get_u32(msg, &j->setup_ms) == -1 ||
		    ipc_get_u32(msg, &j->xfer_ms) == -1 ||
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
	dest_worker_gone(p);
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

/* job_apply - every recipient's outcome; a missing one is temporary */
static void
job_apply(struct job *j, uint32_t flags, const char *relay)
{
	struct qmsg		*m = j->m;
	struct job_result	*res;
	size_t			 i;

	for (i = 0; i < j->n; i++) {
		res = &j->res[i];
		m->rcpts[j->idx[i]].dsn_passed = (flags & QP_DONE_DSN) != 0;
		if (res->have)
			sched_result(m, &m->rcpts[j->idx[i]], j, res->code,
			    res->status, res->text, relay);
		else
			sched_result(m, &m->rcpts[j->idx[i]], j, 451, "4.4.0",
			    j->worker == NULL ? "no delivery worker available" :
			    "the delivery attempt did not finish", relay);
	}
}

/* job_done - the job is back (or given up): apply it, maybe finish */
static void
job_done(struct job *j, uint32_t flags, const char *relay)
{
	dest_job_done(j, flags);
	job_apply(j, flags, relay);
	job_forget(j);
}

/* job_forget - the job is over; its message may be finished */
static void
job_forget(struct job *j)
{
	struct qmsg	*m = j->m;

	job_free(j);
	if (--m->jobs == 0 && !m->dispatching)
		sched_finish(m);
}

/*
 * sched_result - one recipient's outcome: the log line now; its fields,
 * counters and event go to Redis with the rest of the message's
 * changes in sched_finish(), under the lease
 */
static void
sched_result(struct qmsg *m, struct qrcpt *r, const struct job *j, int code,
    const char *status, const char *text, const char *relay)
{
	char		 to[QP_MAX_ADDR * 4 + 1], ptext[QP_MAX_TEXT * 4 + 1];
	char		 prelay[300 * 4 + 1], delays[80];
	const char	*what;
	uint64_t	 now = store_now_ms();

	r->code = code;
	strlcpy(r->dsn, status[0] != '\0' ? status : code < 300 ? "2.0.0" :
	    code < 500 ? "4.0.0" : "5.0.0", sizeof(r->dsn));
	free(r->reply);
	r->reply = xstrdup(text);
	free(r->relay);
	r->relay = xstrdup(relay);
	r->touched = 1;
	if (code >= 200 && code < 300) {
		r->state = QR_SENT;
		r->newly = 1;
		what = "sent";
	} else if (code >= 500) {
		r->state = QR_FAILED;
		r->newly = 1;
		what = "bounced";
	} else {
		what = "deferred";
		snprintf(m->last_error, sizeof(m->last_error), "%s %s",
		    r->dsn, text);
	}
	r->outcome = what;
	log_printable(to, sizeof(to), r->to, strlen(r->to));
	log_printable(ptext, sizeof(ptext), text, strlen(text));
	log_printable(prelay, sizeof(prelay), relay, strlen(relay));
	/*
	 * Postfix's delays=a/b/c/d: before this attempt, waiting here for
	 * the destination's limits, connection set-up (DNS, greeting,
	 * TLS, AUTH; none on a kept connection), and the transaction
	 */
	if (j != NULL && j->worker != NULL)
		snprintf(delays, sizeof(delays), "%.2f/%.2f/%.2f/%.2f",
		    sched_secs(m->created_ms, m->loaded_ms),
		    sched_secs(m->loaded_ms, j->started),
		    (double)j->setup_ms / 1000, (double)j->xfer_ms / 1000);
	else
		snprintf(delays, sizeof(delays), "%.2f/%.2f/0/0",
		    sched_secs(m->created_ms, m->loaded_ms),
		    sched_secs(m->loaded_ms, now));
	log_info("%s: to=<%s>, relay=%s, delay=%.2f, delays=%s, dsn=%s, "
	    "status=%s (%s)", m->id, to, prelay, sched_secs(m->created_ms,
	    now), delays, r->dsn, what, ptext);
}

/* sched_secs - seconds from a to b (ms), never negative */
static double
sched_secs(uint64_t a, uint64_t b)
{
	return b > a ? (double)(b - a) / 1000 : 0.0;
}

/* sched_backoff - ms before attempt n+1: doubling, capped, jittered */
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
	/* up to a tenth earlier, so that retries spread out */
	d *= 1000;
	d -= randombytes_uniform((uint32_t)(d / 10 + 1));
	return (uint32_t)d;
}

/* sched_count - HINCRBY P stats field 1, in the batch */
static void
sched_count(struct rbatch *b, const char *field, const char *label)
{
	struct rcmd	 c;

	rcmd_init(&c);
	rcmd_str(&c, "HINCRBY");
	rcmd_addf(&c, "%sstats", q.env->conf->redis.prefix);
	if (label != NULL)
		rcmd_addf(&c, "route:%s:%s", label, field);
	else
		rcmd_str(&c, field);
	rcmd_str(&c, "1");
	rbatch_add(&c, b);
}

/* sched_add_report - a DSN of this kind, as a new message in the batch */
static void
sched_add_report(struct rbatch *b, struct qmsg *m, enum bounce_kind kind)
{
	struct store_new	 sn;
	struct rcmd		 c;
	char			 id[MSGID_SIZE];
	const char		*to[1], *orcpt[1] = { "" };
	uint32_t		 notify[1] = { QP_NOTIFY_NEVER };
	char			*text;
	size_t			 len, i;
	int			 n = 0;

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
	store_add_message(&sn, text, len, id, rbatch_add, b);
	free(text);
	log_info("%s: sender %s notification: %s", m->id,
	    kind == BOUNCE_FAILED ? "non-delivery" : kind == BOUNCE_DELAYED ?
	    "delay" : "delivery status", id);
	log_info("%s: from=<>, size=%zu, nrcpt=1 (queue active)", id, len);
	sched_count(b, "dsn", NULL);
	rcmd_init(&c);
	queued_event(&c, m->id, kind == BOUNCE_DELAYED ? "delayed" : "dsn",
	    "text", id, NULL);
	rbatch_add(&c, b);
}

/*
 * sched_finish - every job of the claim is back.  One owner-checked
 * script writes it all: the recipients' states, the counters and
 * events, any report, and the removal or the next attempt.  A crash
 * before it repeats the attempt; a report is never lost nor doubled.
 */
static void
sched_finish(struct qmsg *m)
{
	const struct conf	*conf = q.env->conf;
	struct rbatch		 b;
	struct rcmd		 c;
	struct qrcpt		*r;
	uint64_t		 now = store_now_ms(), next = 0;
	const char		*pfx = conf->redis.prefix;
	char			 reply[QP_MAX_TEXT + 64];
	size_t			 i, pending = 0, n = 0;
	int			 warn = 0, deferred = 0;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == QR_PENDING) {
			pending++;
			if (m->rcpts[i].touched)
				deferred = 1;
		}
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
			r->touched = 1;
			r->outcome = "expired";
			if (r->dsn[0] != '4')
				strlcpy(r->dsn, "4.4.7", sizeof(r->dsn));
			free(r->reply);
			r->reply = xstrdup(reply);
			log_info("%s: to=<%s>, dsn=%s, status=expired, "
			    "returned to sender (%s)", m->id, r->to, r->dsn,
			    reply);
		}
		pending = 0;
	}
	if (pending > 0 && conf->queue.delay_warning > 0 && !m->warned &&
	    now / 1000 >= m->created + conf->queue.delay_warning)
		warn = 1;
	/*
	 * An attempt counts when a recipient was tried, and the message
	 * waits its backoff; when every pending recipient was only held
	 * back by its destination's limits (postponed) it comes back when
	 * they allow, without counting one
	 */
	if (pending > 0 && (deferred || m->postpone_ms == 0)) {
		m->attempts++;
		next = now + sched_backoff(m->attempts);
	}
	if (pending > 0 && !deferred && m->postpone_ms != 0)
		next = m->postpone_ms > now ? m->postpone_ms : now;
	rbatch_init(&b, m->id, q.owner, pending > 0 ? "resched" : "remove",
	    next);

	/* recipients: states in slices, a counter and an event each */
	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpts[i];
		if (!r->touched)
			continue;
		if (n % 100 == 0) {
			rcmd_init(&c);
			rcmd_str(&c, "HSET");
			rcmd_addf(&c, "%srcpt:{%s}", pfx, m->id);
		}
		rcmd_addf(&c, "%zu:state", i);
		rcmd_str(&c, r->state == QR_SENT ? "sent" : r->state ==
		    QR_FAILED ? "failed" : "pending");
		rcmd_addf(&c, "%zu:dsn", i);	rcmd_str(&c, r->dsn);
		rcmd_addf(&c, "%zu:reply", i);	rcmd_str(&c, r->reply != NULL ?
		    r->reply : "");
		rcmd_addf(&c, "%zu:relay", i);	rcmd_str(&c, r->relay != NULL ?
		    r->relay : "");
		rcmd_addf(&c, "%zu:at", i);	rcmd_addf(&c, "%llu",
		    (unsigned long long)(now / 1000));
		if (++n % 100 == 0)
			rbatch_add(&c, &b);
	}
	if (n % 100 != 0)
		rbatch_add(&c, &b);
	for (i = 0; i < m->nrcpt; i++) {
		const char	*counter;

		r = &m->rcpts[i];
		if (!r->touched || r->outcome == NULL)
			continue;
		counter = strcmp(r->outcome, "sent") == 0 ? "delivered" :
		    r->outcome;
		sched_count(&b, counter, NULL);
		if (r->label != NULL && strcmp(counter, "expired") != 0)
			sched_count(&b, counter, r->label);
		rcmd_init(&c);
		queued_event(&c, m->id, r->outcome, "rcpt", r->to, "dsn",
		    r->dsn, "relay", r->relay != NULL ? r->relay : "",
		    "text", r->reply != NULL ? r->reply : "", NULL);
		rbatch_add(&c, &b);
	}

	sched_add_report(&b, m, BOUNCE_FAILED);
	sched_add_report(&b, m, BOUNCE_SUCCESS);
	if (warn) {
		sched_add_report(&b, m, BOUNCE_DELAYED);
		m->warned = 1;
	}
	if (pending == 0) {
		rcmd_init(&c);
		rcmd_str(&c, "DEL");
		rcmd_addf(&c, "%smsg:{%s}", pfx, m->id);
		rcmd_addf(&c, "%srcpt:{%s}", pfx, m->id);
		rcmd_addf(&c, "%sbody:{%s}", pfx, m->id);
		rbatch_add(&c, &b);
		rcmd_init(&c);
		rcmd_str(&c, "ZREM");
		rcmd_addf(&c, "%sschedule", pfx);
		rcmd_str(&c, m->id);
		rbatch_add(&c, &b);
		rcmd_init(&c);
		rcmd_str(&c, "ZREM");
		rcmd_addf(&c, "%sids", pfx);
		rcmd_str(&c, m->id);
		rbatch_add(&c, &b);
		rcmd_init(&c);
		queued_event(&c, m->id, "removed", NULL);
		rbatch_add(&c, &b);
	} else {
		rcmd_init(&c);
		rcmd_str(&c, "HSET");
		rcmd_addf(&c, "%smsg:{%s}", pfx, m->id);
		rcmd_str(&c, "state");		rcmd_str(&c, "deferred");
		rcmd_str(&c, "attempts");	rcmd_addf(&c, "%d", m->attempts);
		rcmd_str(&c, "next");		rcmd_addf(&c, "%llu",
		    (unsigned long long)(next / 1000));
		rcmd_str(&c, "last_error");	rcmd_str(&c, m->last_error);
		rcmd_str(&c, "lease");		rcmd_str(&c, "");
		rcmd_str(&c, "lease_until");	rcmd_str(&c, "0");
		rcmd_str(&c, "warned");		rcmd_str(&c, m->warned ? "1" :
		    "0");
		rbatch_add(&c, &b);
	}
	TAILQ_REMOVE(&msgs, m, entry);
	/* without Redis the lease runs out and the attempt is repeated */
	if (rbatch_send(&b, sched_on_finish, m) == -1) {
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
	else if (rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
	    rep->integer == 0)
		log_warnx("%s: the lease passed to another queue manager "
		    "before this attempt finished; its results are dropped",
		    m->id);
	else if (rep != NULL) {
		size_t	 i, pending = 0;

		for (i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].state == QR_PENDING)
				pending++;
		if (pending == 0)
			log_info("%s: removed", m->id);
	}
	q.inflight--;
	qmsg_free(m);
	queued_kick();
}

/* sched_job_deadline - ms after which a job counts as lost */
static uint64_t
sched_job_deadline(void)
{
	const struct conf	*conf = q.env->conf;

	/* a connect, a few commands and the end of data, generously */
	return ((uint64_t)conf->timeouts.connect +
	    4 * (uint64_t)conf->timeouts.upstream_command +
	    2 * (uint64_t)conf->timeouts.data_end) * 1000;
}

/*
 * sched_renew - keep the leases of what we still work on, and give up
 * on jobs a worker has held past any timeout it could have
 */
void
sched_renew(void)
{
	const struct conf	*conf = q.env->conf;
	struct rcmd		 c;
	struct qmsg		*m;
	struct job		*j, *next;
	uint64_t		 now = store_now_ms(), limit;

	dest_sweep();
	limit = sched_job_deadline();
	for (j = TAILQ_FIRST(&jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->worker != NULL && now - j->started > limit) {
			log_warnx("%s: %s held a job for %llu s; given up",
			    j->m->id, ipc_name(j->worker->ipc),
			    (unsigned long long)(now - j->started) / 1000);
			job_done(j, 0, "none");
		}
	}
	if (TAILQ_EMPTY(&msgs) || !redis_ev_up(q.redis))
		return;
	rcmd_init(&c);
	rcmd_str(&c, "EVAL");
	rcmd_str(&c, renew_lua);
	rcmd_str(&c, "1");
	rcmd_addf(&c, "%sschedule", conf->redis.prefix);
	rcmd_str(&c, q.owner);
	rcmd_addf(&c, "%llu", (unsigned long long)conf->queue.lease * 1000);
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

	if (TAILQ_EMPTY(&msgs) || !redis_ev_up(q.redis))
		return;
	rcmd_init(&c);
	rcmd_str(&c, "EVAL");
	rcmd_str(&c, renew_lua);
	rcmd_str(&c, "1");
	rcmd_addf(&c, "%sschedule", conf->redis.prefix);
	rcmd_str(&c, q.owner);
	rcmd_str(&c, "0");
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
		free(m->rcpts[i].label);
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
