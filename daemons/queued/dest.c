/*
 * dest.c - per-destination limits: connections, rate and back-off
 *
 * A destination is a route and where it sends: the smarthost, or the
 * recipient domain of an MX route.  Jobs for it wait here, in order,
 * until it may take one more: not paused after a 421, a connection
 * for it (one a worker kept open, or a new one under the route's
 * concurrency), and, when the route has a rate, a token from Redis,
 * where one GCRA script serves every queue manager of the cluster.
 *
 * Connections are counted here, not in deliverd: a job holds one from
 * the moment it is sent until DLV_DONE, and a kept connection
 * (QP_DONE_KEPT) is counted, against its worker, until DLV_CLOSED.
 * The next job for the destination goes to the worker that has one.
 *
 * A job that would wait long goes back to the schedule (postponed:
 * its message keeps its attempt count), so that one slow destination
 * cannot hold every claimed message in memory.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "queue_proto.h"
#include "queued.h"
#include "redis_ev.h"
#include "xmalloc.h"

/* jobs waiting in memory per destination; more are postponed */
#define DEST_WAIT_MAX		32
/* a token further away than this postpones the jobs instead */
#define DEST_HOLD_MS		5000
/* how far a job waiting for a connection is postponed */
#define DEST_CONN_WAIT_MS	2000
/* without Redis, ask for a token again after this long */
#define DEST_REDIS_WAIT_MS	1000

struct dest_idle {
	struct child_peer	*worker;
	int			 n;
};

struct dest {
	TAILQ_ENTRY(dest)	 entry;
	int			 route;
	char			 name[300];
	int			 busy;		/* jobs at workers */
	struct dest_idle	*idle;		/* kept connections, per worker */
	size_t			 nidlew;
	int			 nidle;
	TAILQ_HEAD(, job)	 wait;
	int			 nwait;
	int			 token;		/* granted, not yet used */
	int			 asking;	/* a token request is out */
	uint64_t		 pause_until;	/* ms */
	struct event		*timer;
	uint64_t		 sent;		/* jobs handed out, for metrics */
	uint64_t		 postponed;
	int			 stale;		/* from before a reload */
};

static TAILQ_HEAD(, dest)	dests = TAILQ_HEAD_INITIALIZER(dests);

/*
 * GCRA: KEYS rate key; ARGV emission interval and tolerance, in
 * microseconds.  0 when a message may go now (and the theoretical
 * arrival time moves on by one interval); else how many microseconds
 * until one may.  Redis's clock, so every node agrees.
 */
static const char gcra_lua[] =
"#!lua flags=allow-oom\n"
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
"local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
"if tat < now then tat = now end\n"
"local allow = tat - tonumber(ARGV[2])\n"
"if now < allow then return allow - now end\n"
"tat = tat + tonumber(ARGV[1])\n"
"redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',\n"
"    math.ceil((tat - now) / 1000) + 1000)\n"
"return 0\n";

static struct dest	*dest_get(int, const char *);
static const struct conf_route *dest_route(const struct dest *);
static void		 dest_pump(struct dest *);
static struct child_peer *dest_take_idle(struct dest *);
static void		 dest_give_idle(struct dest *, struct child_peer *);
static void		 dest_ask(struct dest *);
static void		 dest_on_token(redisAsyncContext *, void *, void *);
static void		 dest_on_timer(evutil_socket_t, short, void *);
static void		 dest_arm(struct dest *, uint64_t);
static void		 dest_postpone_all(struct dest *, uint64_t,
			    uint64_t, const char *);
static uint64_t		 dest_interval_us(const struct conf_route *);

/* dest_get - the destination, made on first use */
static struct dest *
dest_get(int route, const char *name)
{
	struct dest	*d;

	TAILQ_FOREACH(d, &dests, entry)
		if (!d->stale && d->route == route &&
		    strcmp(d->name, name) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->route = route;
	strlcpy(d->name, name, sizeof(d->name));
	TAILQ_INIT(&d->wait);
	if ((d->timer = evtimer_new(q.env->base, dest_on_timer, d)) == NULL)
		fatalx("%s: evtimer_new", __func__);
	TAILQ_INSERT_TAIL(&dests, d, entry);
	return d;
}

/* dest_route - its route now; NULL when a reload took it away */
static const struct conf_route *
dest_route(const struct dest *d)
{
	const struct conf	*conf = q.env->conf;

	if (d->route < 0 || (size_t)d->route >= conf->delivery.nroutes)
		return NULL;
	return &conf->delivery.routes[d->route];
}

static uint64_t
dest_interval_us(const struct conf_route *r)
{
	if (r == NULL || r->rate_count == 0)
		return 0;
	return (uint64_t)r->rate_period * 1000000 / r->rate_count;
}

/*
 * dest_submit - a job for its destination: in line behind the others,
 * or back to the schedule when the line is long or the destination is
 * paused
 */
void
dest_submit(struct job *j)
{
	const struct conf_route	*r;
	struct dest		*d;
	uint64_t		 now = store_now_ms(), iv;

	d = dest_get(j->route, j->dest);
	j->d = d;
	if (now < d->pause_until) {
		d->postponed++;
		sched_postpone(j, d->pause_until, "the destination is paused "
		    "after the server asked for fewer connections");
		return;
	}
	if (d->nwait >= DEST_WAIT_MAX) {
		r = dest_route(d);
		iv = dest_interval_us(r);
		d->postponed++;
		sched_postpone(j, now + (iv > 0 ? (uint64_t)(d->nwait + 1) *
		    iv / 1000 : DEST_CONN_WAIT_MS), iv > 0 ?
		    "the destination's rate limit" :
		    "the destination's connection limit");
		return;
	}
	TAILQ_INSERT_TAIL(&d->wait, j, wentry);
	j->waiting = 1;
	d->nwait++;
	dest_pump(d);
}

/*
 * dest_pump - hand out what the limits allow now; the rest waits for
 * a job to end, a connection to close, a token or the timer
 */
static void
dest_pump(struct dest *d)
{
	const struct conf_route	*r;
	struct child_peer	*w;
	struct job		*j;
	uint64_t		 now;
	int			 kept;

	while ((j = TAILQ_FIRST(&d->wait)) != NULL && !d->asking) {
		r = dest_route(d);
		now = store_now_ms();
		if (now < d->pause_until) {
			dest_postpone_all(d, d->pause_until, 0, "the "
			    "destination is paused after the server asked "
			    "for fewer connections");
			return;
		}
		if (d->nidle == 0 && r != NULL && r->concurrency > 0 &&
		    d->busy >= r->concurrency)
			return;		/* dest_job_done() pumps again */
		if (dest_interval_us(r) > 0 && !d->token) {
			dest_ask(d);
			return;
		}
		d->token = 0;
		TAILQ_REMOVE(&d->wait, j, wentry);
		j->waiting = 0;
		d->nwait--;
		if ((w = dest_take_idle(d)) != NULL)
			kept = 1;
		else {
			kept = 0;
			w = sched_pick_worker();
		}
		d->busy++;
		j->counted = 1;
		d->sent++;
		if (sched_start_job(j, w) == -1) {
			/* the kept connection is still there, idle */
			if (kept)
				dest_give_idle(d, w);
			d->busy--;
			j->counted = 0;
			sched_job_failed(j);
		}
	}
}

/* dest_give_idle - worker w holds one more kept connection here */
static void
dest_give_idle(struct dest *d, struct child_peer *w)
{
	size_t	 i;

	for (i = 0; i < d->nidlew; i++)
		if (d->idle[i].worker == w)
			break;
	/* a slot a dead worker left is taken again */
	if (i == d->nidlew)
		for (i = 0; i < d->nidlew; i++)
			if (d->idle[i].worker == NULL)
				break;
	if (i == d->nidlew) {
		d->idle = xreallocarray(d->idle, d->nidlew + 1,
		    sizeof(*d->idle));
		d->idle[d->nidlew++].n = 0;
	}
	d->idle[i].worker = w;
	d->idle[i].n++;
	d->nidle++;
}

/* dest_take_idle - a worker with a kept connection here, if any */
static struct child_peer *
dest_take_idle(struct dest *d)
{
	size_t	 i;

	for (i = 0; i < d->nidlew; i++)
		if (d->idle[i].n > 0) {
			d->idle[i].n--;
			d->nidle--;
			return d->idle[i].worker;
		}
	return NULL;
}

/* dest_ask - a token from the cluster-wide rate limit */
static void
dest_ask(struct dest *d)
{
	const struct conf	*conf = q.env->conf;
	const struct conf_route	*r = dest_route(d);
	struct rcmd		 c;

	if (!redis_ev_up(q.redis)) {
		dest_arm(d, DEST_REDIS_WAIT_MS);
		return;
	}
	rcmd_init(&c);
	rcmd_str(&c, "EVAL");
	rcmd_str(&c, gcra_lua);
	rcmd_str(&c, "1");
	rcmd_addf(&c, "%srate:%s", conf->redis.prefix, d->name);
	rcmd_addf(&c, "%llu", (unsigned long long)dest_interval_us(r));
	rcmd_str(&c, "0");
	if (rcmd_send(&c, dest_on_token, d) == 0)
		d->asking = 1;
	else
		dest_arm(d, DEST_REDIS_WAIT_MS);
}

static void
dest_on_token(redisAsyncContext *ac, void *rv, void *arg)
{
	redisReply		*rep = rv;
	struct dest		*d = arg;
	const struct conf_route	*r;
	uint64_t		 wait_ms;

	d->asking = 0;
	if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
			log_warnx("%s: rate limit of %s: redis: %.200s",
			    q.env->name, d->name, rep->str);
		dest_arm(d, DEST_REDIS_WAIT_MS);
		return;
	}
	if (rep->integer <= 0) {
		d->token = 1;
		dest_pump(d);
		return;
	}
	wait_ms = ((uint64_t)rep->integer + 999) / 1000;
	if (wait_ms > DEST_HOLD_MS) {
		r = dest_route(d);
		dest_postpone_all(d, store_now_ms() + wait_ms,
		    dest_interval_us(r) / 1000, "the destination's rate limit");
		return;
	}
	dest_arm(d, wait_ms);
}

static void
dest_on_timer(evutil_socket_t fd, short ev, void *arg)
{
	dest_pump(arg);
}

static void
dest_arm(struct dest *d, uint64_t ms)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(d->timer, &tv);
}

/* dest_postpone_all - every waiting job back to the schedule, spaced */
static void
dest_postpone_all(struct dest *d, uint64_t until, uint64_t step,
    const char *why)
{
	struct job	*j;
	uint64_t	 k = 0;

	while ((j = TAILQ_FIRST(&d->wait)) != NULL) {
		TAILQ_REMOVE(&d->wait, j, wentry);
		j->waiting = 0;
		d->nwait--;
		d->postponed++;
		sched_postpone(j, until + k++ * step, why);
	}
}

/*
 * dest_job_done - a job is back (or given up before it went): its
 * connection is free, kept by its worker, or the destination pauses
 */
void
dest_job_done(struct job *j, uint32_t flags)
{
	const struct conf_route	*r;
	struct dest		*d = j->d;

	if (d == NULL)
		return;
	j->d = NULL;
	if (j->waiting) {
		TAILQ_REMOVE(&d->wait, j, wentry);
		j->waiting = 0;
		d->nwait--;
	}
	if (!j->counted)
		return;
	j->counted = 0;
	d->busy--;
	if ((flags & QP_DONE_KEPT) && j->worker != NULL)
		dest_give_idle(d, j->worker);
	if (flags & QP_DONE_BACKOFF) {
		r = dest_route(d);
		d->pause_until = store_now_ms() + (r != NULL ? r->backoff :
		    60) * 1000ULL;
		log_info("%s: %s asked for fewer connections; pausing it for "
		    "%u s", q.env->name, d->name, r != NULL ? r->backoff : 60);
	}
	/* the pump must not run inside the caller's loop over jobs */
	if (!TAILQ_EMPTY(&d->wait))
		dest_arm(d, 0);
}

/* dest_closed - DLV_CLOSED: a kept connection of worker w ended */
void
dest_closed(struct child_peer *w, int route, const char *name)
{
	struct dest	*d;
	size_t		 i;

	/* a connection kept before a reload is counted where it was */
	TAILQ_FOREACH(d, &dests, entry) {
		if (d->route != route || strcmp(d->name, name) != 0)
			continue;
		for (i = 0; i < d->nidlew; i++)
			if (d->idle[i].worker == w && d->idle[i].n > 0)
				break;
		if (i < d->nidlew)
			break;
	}
	if (d == NULL)
		return;
	d->idle[i].n--;
	d->nidle--;
	/* a race with a job that took it is fine: that job has one */
	if (!TAILQ_EMPTY(&d->wait))
		dest_arm(d, 0);
}

/*
 * dest_reload - route numbers may mean other routes now: what waits
 * goes back to the schedule, due at once, to be routed again; what is
 * in flight is counted where it was until it ends, and new jobs start
 * new destinations.  deliverd closes every kept connection.
 */
void
dest_reload(void)
{
	struct dest	*d;

	TAILQ_FOREACH(d, &dests, entry) {
		d->stale = 1;
		dest_postpone_all(d, store_now_ms(), 0, "the configuration "
		    "was reloaded");
	}
}

/* dest_worker_gone - a dead worker's kept connections died with it */
void
dest_worker_gone(struct child_peer *w)
{
	struct dest	*d;
	size_t		 i;

	TAILQ_FOREACH(d, &dests, entry)
		for (i = 0; i < d->nidlew; i++)
			if (d->idle[i].worker == w) {
				d->nidle -= d->idle[i].n;
				d->idle[i].n = 0;
				d->idle[i].worker = NULL;
			}
}

/* dest_sweep - forget destinations with nothing left to remember */
void
dest_sweep(void)
{
	struct dest	*d, *next;
	uint64_t	 now = store_now_ms();

	for (d = TAILQ_FIRST(&dests); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (d->busy > 0 || d->nidle > 0 || d->nwait > 0 ||
		    d->asking || now < d->pause_until)
			continue;
		TAILQ_REMOVE(&dests, d, entry);
		event_free(d->timer);
		free(d->idle);
		free(d);
	}
}

/* dest_metrics - the destinations this node works for, as gauges */
void
dest_metrics(struct evbuffer *b)
{
	static const struct {
		const char	*name, *help;
	} fam[] = {
		{ "sluice_destination_connections", "Connections to a "
		    "destination counted against its concurrency: in use by a "
		    "job (busy) or kept open between messages (idle)." },
		{ "sluice_destination_waiting", "Jobs waiting in memory for a "
		    "destination's limits." },
		{ "sluice_destination_paused", "1 while a destination pauses "
		    "after its server asked for fewer connections." },
	};
	struct dest	*d;
	uint64_t	 now = store_now_ms();
	size_t		 k;

	for (k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		metrics_family(b, fam[k].name, "gauge", fam[k].help);
		TAILQ_FOREACH(d, &dests, entry) {
			if (k == 0) {
				evbuffer_add_printf(b, "%s{destination=\"",
				    fam[k].name);
				metrics_label_value(b, d->name, strlen(d->name));
				evbuffer_add_printf(b, "\",state=\"busy\"} "
				    "%d\n", d->busy);
			}
			evbuffer_add_printf(b, "%s{destination=\"",
			    fam[k].name);
			metrics_label_value(b, d->name, strlen(d->name));
			if (k == 0)
				evbuffer_add_printf(b, "\",state=\"idle\"} "
				    "%d\n", d->nidle);
			else
				evbuffer_add_printf(b, "\"} %d\n", k == 1 ?
				    d->nwait : now < d->pause_until);
		}
	}
}
