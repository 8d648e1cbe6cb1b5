/*
 * metrics.c - the counters smtpd reports, and the Prometheus endpoint
 *
 * smtpd has no Redis connection, so every smtpd reports its counters
 * here once a second (stats_proto.h).  What grew goes into the P stats
 * hash with one script, where the message counters already are: every
 * counter is then cluster-wide, survives restarts and is what
 * sluicectl stats prints.  The sessions open now are a gauge of this
 * node and stay in memory, per smtpd instance.
 *
 * With a metrics group in the configuration queued also answers
 * GET /metrics in the Prometheus text format (version 0.0.4) through
 * libevent's evhttp, on a socket bound in metrics_setup() while files
 * and privileged ports are still ours.  Each scrape reads the counters
 * and the queue in one read-only script on the connection everything
 * else uses; when Redis is down or has not answered within
 * METRICS_REDIS_WAIT_MS, the reply still comes, with sluice_redis_up 0
 * and only what this process knows by itself.
 *
 * The endpoint is bounded: GET only, /metrics only, small headers and
 * no body, one request per connection, at most METRICS_MAX_CONN
 * connections at once (the listener pauses at the cap), and each of
 * them closed after METRICS_DEADLINE seconds whatever it does.  evhttp
 * of libevent 2.1 has no connection limit and only an idle timeout
 * (a client sending a byte every few seconds would keep its connection
 * for hours), so the bufferevent of every connection is made here,
 * with a reference of our own: evhttp's bufferevent_free() clears its
 * callbacks, which is how a finished connection is recognised before
 * the reference is dropped, and an error event on a live one makes
 * evhttp close it.  A scrape whose connection is gone meanwhile is
 * still answered: evhttp then just frees the request.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "netaddr.h"
#include "queued.h"
#include "redis_ev.h"
#include "stats_proto.h"
#include "xmalloc.h"

#define METRICS_MAX_CONN	16	/* connections at once */
#define METRICS_DEADLINE	10	/* s a connection may live */
#define METRICS_IDLE		5	/* s evhttp waits for a read or write */
#define METRICS_HEADERS_MAX	4096	/* bytes of request line and headers */
#define METRICS_BACKLOG		16
#define METRICS_REDIS_WAIT_MS	2000	/* then answer without Redis */
#define METRICS_MAX_WAITING	64	/* scrapes waiting for a Redis reply */
#define METRICS_MAX_FIELDS	8192	/* P stats fields looked at */
#define METRICS_MAX_SMTPD	CONF_MAX_PROCESSES
/* growth beyond this in one report is not a counter but a broken peer */
#define METRICS_DELTA_MAX	(1ULL << 32)

_Static_assert(STATS_FRAME_LEN == 64, "IPC_SMTPD_STATS is 64 bytes in ipc.c");

/* a connection evhttp runs on a bufferevent we hold a reference to */
struct metrics_conn {
	struct bufferevent	*bev;
	struct timespec		 since;
};

/* one GET /metrics; freed when answered and no Redis reply is due */
struct metrics_scrape {
	struct evhttp_request	*req;		/* NULL once answered */
	struct event		*timer;
	struct timespec		 sent;
	int			 waiting;	/* a Redis reply will come */
};

/* a P stats counter and the sample it becomes */
struct metrics_counter {
	const char	*field;
	const char	*name;
	const char	*label;		/* one label pair, or NULL */
	const char	*help;
};

/* the Redis read of one scrape, taken apart */
struct metrics_view {
	const redisReply	*stats;		/* HGETALL: field, value, ... */
	long long		 ids;
	long long		 scheduled;
	double			 oldest_ms;	/* creation, 0: none */
	double			 rtt;		/* seconds */
};

static struct {
	int			 fd;		/* bound in setup, or -1 */
	struct evhttp		*http;
	struct evconnlistener	*lev;
	int			 paused;	/* lev off: METRICS_MAX_CONN */
	struct metrics_conn	 conns[METRICS_MAX_CONN];
	int			 nconn;
	struct event		*sweep;
	int			 waiting;	/* scrapes waiting for Redis */
	uint64_t		 open[METRICS_MAX_SMTPD];
	int			 reporting[METRICS_MAX_SMTPD];
	uint64_t		 pending[STATS_NFIELDS];	/* not yet in Redis */
} mx = { .fd = -1 };

/* the P stats fields smtpd's counters go to, by stats_field */
static const char *const stats_fields[STATS_NFIELDS] = {
	[STATS_SESSIONS] = "smtp_sessions",
	[STATS_REFUSED] = "smtp_refused",
	[STATS_TLS] = "smtp_tls",
	[STATS_TLS_FAILED] = "smtp_tls_failed",
	[STATS_AUTH_OK] = "auth_ok",
	[STATS_AUTH_FAILED] = "auth_failed",
	[STATS_AUTH_BLOCKED] = "auth_blocked",
};

/* rows with the same name form one family and stay together */
static const struct metrics_counter counters[] = {
	{ "accepted", "sluice_messages_accepted_total", NULL,
	    "Messages accepted into the queue (DSNs sluice made included)." },
	{ "delivered", "sluice_recipients_total", "result=\"delivered\"",
	    "Delivery results per recipient: delivered, deferred (one per "
	    "failed attempt), bounced, expired." },
	{ "deferred", "sluice_recipients_total", "result=\"deferred\"", NULL },
	{ "bounced", "sluice_recipients_total", "result=\"bounced\"", NULL },
	{ "expired", "sluice_recipients_total", "result=\"expired\"", NULL },
	{ "dsn", "sluice_dsn_messages_total", NULL,
	    "Bounces and delay warnings sluice sent." },
	{ "held", "sluice_messages_held_total", NULL,
	    "Messages held, by sluicectl or because they were unreadable." },
	{ "released", "sluice_messages_released_total", NULL,
	    "Held messages released." },
	{ "deleted", "sluice_messages_deleted_total", NULL,
	    "Messages deleted from the queue by sluicectl." },
	{ "smtp_sessions", "sluice_smtp_sessions_total", NULL,
	    "SMTP connections taken." },
	{ "smtp_refused", "sluice_smtp_refused_total", NULL,
	    "SMTP connections turned away over limits.connections or "
	    "limits.connections_per_ip." },
	{ "smtp_tls", "sluice_smtp_tls_total", "result=\"ok\"",
	    "TLS handshakes of SMTP sessions (STARTTLS and implicit TLS)." },
	{ "smtp_tls_failed", "sluice_smtp_tls_total", "result=\"failed\"",
	    NULL },
	{ "auth_ok", "sluice_smtp_auth_total", "result=\"ok\"",
	    "SMTP AUTH attempts: ok, failed (wrong login or password), "
	    "blocked (by the failure throttle)." },
	{ "auth_failed", "sluice_smtp_auth_total", "result=\"failed\"", NULL },
	{ "auth_blocked", "sluice_smtp_auth_total", "result=\"blocked\"",
	    NULL },
};
#define METRICS_NCOUNTERS	(sizeof(counters) / sizeof(counters[0]))

/* the results route:LABEL:RESULT fields count */
static const char *const route_results[] = {
	"delivered", "deferred", "bounced"
};
#define METRICS_NRESULTS	(sizeof(route_results) / sizeof(route_results[0]))

/*
 * read: KEYS P stats, P ids, P schedule.  The counters, the number of
 * messages, the number on the schedule and the creation time (ms) of
 * the oldest, as one snapshot; it writes nothing, so a full Redis
 * still answers it.
 */
static const char read_lua[] =
"#!lua flags=no-writes\n"
"local o = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
"return { redis.call('HGETALL', KEYS[1]), redis.call('ZCARD', KEYS[2]),\n"
"    redis.call('ZCARD', KEYS[3]), o[2] or '' }\n";

/* incr: KEYS P stats; ARGV field, amount, ... */
static const char incr_lua[] =
"for i = 1, #ARGV, 2 do\n"
"  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])\n"
"end\n"
"return 1\n";

static void	metrics_flush(void);
static void	metrics_on_incr(redisAsyncContext *, void *, void *);
static struct bufferevent *metrics_new_conn(struct event_base *, void *);
static void	metrics_on_sweep(evutil_socket_t, short, void *);
static void	metrics_reap(void);
static void	metrics_request(struct evhttp_request *, void *);
static void	metrics_on_read(redisAsyncContext *, void *, void *);
static void	metrics_on_wait(evutil_socket_t, short, void *);
static void	metrics_answer(struct metrics_scrape *, const redisReply *);
static void	metrics_scrape_free(struct metrics_scrape *);
static int	metrics_view(const redisReply *, struct metrics_view *);
static void	metrics_render(struct evbuffer *, const struct metrics_view *);
static void	metrics_render_routes(struct evbuffer *, const redisReply *);
static const redisReply *metrics_hget(const redisReply *, const char *);
static int	metrics_field_cmp(const void *, const void *);
static double	metrics_elapsed(const struct timespec *);
static int	metrics_same_listen(const struct conf *, const struct conf *);

/*
 * metrics_setup - bind the endpoint's socket while we are still
 * privileged.  A failure costs the endpoint, not the mail: it is
 * logged and queued goes on without it.
 */
void
metrics_setup(struct child_env *env)
{
	const struct conf	*conf = env->conf;
	int			 fd, on = 1;

	if (!conf->metrics.enabled)
		return;
	fd = socket(conf->metrics.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("%s: metrics: socket", env->name);
		return;
	}
	/* a restarted queued must get its port back at once */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (conf->metrics.ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on));
	if (bind(fd, (const struct sockaddr *)&conf->metrics.ss,
	    conf->metrics.sslen) == -1 || listen(fd, METRICS_BACKLOG) == -1) {
		log_warn("%s: metrics: cannot listen on %s; no metrics "
		    "endpoint", env->name, conf->metrics.listen);
		close(fd);
		return;
	}
	mx.fd = fd;
}

/*
 * metrics_configure - start serving on the first configuration; the
 * socket stays what it was bound to, so a reload that moves it only
 * says so
 */
void
metrics_configure(struct child_env *env, struct conf *old)
{
	struct evhttp_bound_socket	*bound;
	struct timeval			 tv = { 1, 0 };

	if (old != NULL) {
		if (!metrics_same_listen(old, env->conf))
			log_warnx("%s: metrics.listen changed; the endpoint "
			    "stays %s until sluice is restarted", env->name,
			    old->metrics.enabled ? old->metrics.listen : "off");
		return;
	}
	if (mx.fd == -1)
		return;
	if ((mx.http = evhttp_new(env->base)) == NULL)
		fatalx("%s: evhttp_new", env->name);
	evhttp_set_allowed_methods(mx.http, EVHTTP_REQ_GET);
	evhttp_set_max_headers_size(mx.http, METRICS_HEADERS_MAX);
	evhttp_set_max_body_size(mx.http, 0);
	evhttp_set_timeout(mx.http, METRICS_IDLE);
	evhttp_set_bevcb(mx.http, metrics_new_conn, NULL);
	evhttp_set_gencb(mx.http, metrics_request, NULL);
	if ((bound = evhttp_accept_socket_with_handle(mx.http, mx.fd)) == NULL)
		fatalx("%s: metrics: evhttp_accept_socket", env->name);
	mx.lev = evhttp_bound_socket_get_listener(bound);
	mx.sweep = event_new(env->base, -1, EV_PERSIST, metrics_on_sweep,
	    NULL);
	if (mx.sweep == NULL || event_add(mx.sweep, &tv) == -1)
		fatalx("%s: metrics: event_new", env->name);
	log_info("%s: metrics on http://%s/metrics", env->name,
	    env->conf->metrics.listen);
}

static int
metrics_same_listen(const struct conf *a, const struct conf *b)
{
	if (a->metrics.enabled != b->metrics.enabled)
		return 0;
	return !a->metrics.enabled || (a->metrics.sslen == b->metrics.sslen &&
	    memcmp(&a->metrics.ss, &b->metrics.ss, a->metrics.sslen) == 0);
}

/*
 * metrics_smtpd_msg - one smtpd's report: its open sessions, and what
 * its counters grew by, which goes on to Redis
 */
void
metrics_smtpd_msg(struct child_peer *p, struct ipc_msg *m)
{
	uint64_t	 v[STATS_NFIELDS];
	int		 i;

	for (i = 0; i < STATS_NFIELDS; i++)
		if (ipc_get_u64(m, &v[i]) == -1)
			break;
	if (i < STATS_NFIELDS || ipc_end(m) == -1) {
		log_warnx("%s: %s: short %s frame", q.env->name,
		    ipc_name(p->ipc), ipc_type_str(m->type));
		return;
	}
	for (i = STATS_OPEN + 1; i < STATS_NFIELDS; i++)
		if (v[i] > METRICS_DELTA_MAX) {
			log_warnx("%s: %s: %s grew by %llu in one report; "
			    "ignored", q.env->name, ipc_name(p->ipc),
			    stats_fields[i], (unsigned long long)v[i]);
			return;
		}
	if (p->instance >= 0 && p->instance < METRICS_MAX_SMTPD) {
		mx.open[p->instance] = v[STATS_OPEN];
		mx.reporting[p->instance] = 1;
	}
	for (i = STATS_OPEN + 1; i < STATS_NFIELDS; i++)
		mx.pending[i] += v[i];
	metrics_flush();
}

/* metrics_smtpd_gone - its sessions went with it */
void
metrics_smtpd_gone(struct child_peer *p)
{
	if (p->instance >= 0 && p->instance < METRICS_MAX_SMTPD) {
		mx.open[p->instance] = 0;
		mx.reporting[p->instance] = 0;
	}
}

/*
 * metrics_flush - what smtpd's counters grew by, into P stats in one
 * script.  Kept for later while Redis is down or refuses (full); lost
 * only if the connection breaks with the script on its way.
 */
static void
metrics_flush(void)
{
	struct rcmd	 c;
	uint64_t	*sent;
	char		*k;
	int		 i, n = 0;

	for (i = STATS_OPEN + 1; i < STATS_NFIELDS; i++)
		if (mx.pending[i] != 0)
			n++;
	if (n == 0 || !redis_ev_up(q.redis))
		return;
	rcmd_init(&c);
	rcmd_str(&c, "EVAL");
	rcmd_str(&c, incr_lua);
	rcmd_str(&c, "1");
	k = store_name("stats", NULL);
	rcmd_str(&c, k);
	free(k);
	sent = xcalloc(STATS_NFIELDS, sizeof(*sent));
	for (i = STATS_OPEN + 1; i < STATS_NFIELDS; i++) {
		if (mx.pending[i] == 0)
			continue;
		rcmd_str(&c, stats_fields[i]);
		rcmd_addf(&c, "%llu", (unsigned long long)mx.pending[i]);
		sent[i] = mx.pending[i];
	}
	if (rcmd_send(&c, metrics_on_incr, sent) == -1) {
		free(sent);
		return;
	}
	memset(mx.pending, 0, sizeof(mx.pending));
}

static void
metrics_on_incr(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	uint64_t	*sent = arg;
	int		 i;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		log_debug("%s: smtpd counters: redis: %.200s", q.env->name,
		    rep->str);
		for (i = STATS_OPEN + 1; i < STATS_NFIELDS; i++)
			mx.pending[i] += sent[i];
	}
	free(sent);
}

/*
 * metrics_new_conn - the bufferevent evhttp runs a new connection on,
 * with our reference; at the cap the listener pauses until one closes
 */
static struct bufferevent *
metrics_new_conn(struct event_base *base, void *arg)
{
	struct bufferevent	*bev;
	struct metrics_conn	*c;

	metrics_reap();
	if ((bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		return NULL;	/* evhttp tries its own, and fails the same */
	/* the listener was paused at the cap, so there is always room */
	if (mx.nconn < METRICS_MAX_CONN) {
		c = &mx.conns[mx.nconn++];
		c->bev = bev;
		clock_gettime(CLOCK_MONOTONIC, &c->since);
		bufferevent_incref(bev);
	}
	if (mx.nconn >= METRICS_MAX_CONN && !mx.paused) {
		evconnlistener_disable(mx.lev);
		mx.paused = 1;
	}
	return bev;
}

static void
metrics_on_sweep(evutil_socket_t fd, short ev, void *arg)
{
	metrics_reap();
}

/*
 * metrics_reap - drop our reference to connections evhttp is done
 * with, close those past their deadline, and take new ones again
 * when there is room
 */
static void
metrics_reap(void)
{
	struct metrics_conn	*c;
	bufferevent_data_cb	 rcb, wcb;
	bufferevent_event_cb	 ecb;
	void			*cbarg;
	int			 i;

	for (i = 0; i < mx.nconn; ) {
		c = &mx.conns[i];
		bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &cbarg);
		if (ecb != NULL && metrics_elapsed(&c->since) >=
		    METRICS_DEADLINE) {
			/* evhttp closes the connection on an error */
			bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR, 0);
			bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &cbarg);
		}
		if (rcb != NULL || wcb != NULL || ecb != NULL) {
			i++;
			continue;
		}
		bufferevent_decref(c->bev);
		*c = mx.conns[--mx.nconn];
	}
	if (mx.paused && mx.nconn < METRICS_MAX_CONN) {
		evconnlistener_enable(mx.lev);
		mx.paused = 0;
	}
}

/* metrics_request - GET /metrics; anything else is not here */
static void
metrics_request(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct metrics_scrape	*sc;
	redisAsyncContext	*ac;
	struct timeval		 tv;
	const char		*path = uri != NULL ?
				    evhttp_uri_get_path(uri) : NULL;
	const char		*argv[6];
	char			*k[3];
	int			 rc, i;

	/* one request per connection bounds how long one can be held */
	evhttp_add_header(h, "Connection", "close");
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	sc = xcalloc(1, sizeof(*sc));
	sc->req = req;
	clock_gettime(CLOCK_MONOTONIC, &sc->sent);
	if (!redis_ev_up(q.redis) || (ac = redis_ev_context(q.redis)) ==
	    NULL || mx.waiting >= METRICS_MAX_WAITING) {
		metrics_answer(sc, NULL);
		metrics_scrape_free(sc);
		return;
	}
	/* counters smtpd reported meanwhile, so the read sees them */
	metrics_flush();
	k[0] = store_name("stats", NULL);
	k[1] = store_name("ids", NULL);
	k[2] = store_name("schedule", NULL);
	argv[0] = "EVAL";
	argv[1] = read_lua;
	argv[2] = "3";
	for (i = 0; i < 3; i++)
		argv[3 + i] = k[i];
	rc = redisAsyncCommandArgv(ac, metrics_on_read, sc, 6, argv, NULL);
	for (i = 0; i < 3; i++)
		free(k[i]);
	if (rc != REDIS_OK) {
		metrics_answer(sc, NULL);
		metrics_scrape_free(sc);
		return;
	}
	sc->waiting = 1;
	mx.waiting++;
	tv.tv_sec = METRICS_REDIS_WAIT_MS / 1000;
	tv.tv_usec = (METRICS_REDIS_WAIT_MS % 1000) * 1000;
	if ((sc->timer = evtimer_new(q.env->base, metrics_on_wait, sc)) !=
	    NULL)
		evtimer_add(sc->timer, &tv);
}

/* metrics_on_read - the snapshot; NULL when the connection broke */
static void
metrics_on_read(redisAsyncContext *ac, void *r, void *arg)
{
	struct metrics_scrape	*sc = arg;

	sc->waiting = 0;
	mx.waiting--;
	if (sc->req != NULL)
		metrics_answer(sc, r);
	metrics_scrape_free(sc);
}

/* metrics_on_wait - Redis is slow: answer without it */
static void
metrics_on_wait(evutil_socket_t fd, short ev, void *arg)
{
	struct metrics_scrape	*sc = arg;

	metrics_answer(sc, NULL);
}

static void
metrics_scrape_free(struct metrics_scrape *sc)
{
	if (sc->waiting)
		return;		/* the Redis callback frees it */
	if (sc->timer != NULL)
		event_free(sc->timer);
	free(sc);
}

/* metrics_answer - the page, with what Redis said if it said it */
static void
metrics_answer(struct metrics_scrape *sc, const redisReply *rep)
{
	struct metrics_view	 v, *vp = NULL;
	struct evbuffer		*buf;

	if (sc->req == NULL)
		return;
	if (rep != NULL && metrics_view(rep, &v) == 0) {
		v.rtt = metrics_elapsed(&sc->sent);
		vp = &v;
	} else if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_debug("%s: metrics: redis: %.200s", q.env->name,
		    rep->str);
	if ((buf = evbuffer_new()) == NULL) {
		evhttp_send_error(sc->req, HTTP_SERVUNAVAIL, NULL);
		sc->req = NULL;
		return;
	}
	metrics_render(buf, vp);
	evhttp_add_header(evhttp_request_get_output_headers(sc->req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(sc->req, HTTP_OK, "OK", buf);
	evbuffer_free(buf);
	sc->req = NULL;
}

/* metrics_view - check the shape of the read script's reply */
static int
metrics_view(const redisReply *rep, struct metrics_view *v)
{
	const redisReply	*e;
	char			*end;

	memset(v, 0, sizeof(*v));
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
		return -1;
	e = rep->element[0];
	if (e->type != REDIS_REPLY_ARRAY || e->elements % 2 != 0)
		return -1;
	v->stats = e;
	if (rep->element[1]->type != REDIS_REPLY_INTEGER ||
	    rep->element[2]->type != REDIS_REPLY_INTEGER ||
	    rep->element[3]->type != REDIS_REPLY_STRING)
		return -1;
	v->ids = rep->element[1]->integer;
	v->scheduled = rep->element[2]->integer;
	if (rep->element[3]->len > 0) {
		v->oldest_ms = strtod(rep->element[3]->str, &end);
		if (*end != '\0' || v->oldest_ms < 0)
			v->oldest_ms = 0;
	}
	return 0;
}

/*
 * metrics_render - the exposition: the cluster's counters and queue
 * (from Redis, left out when it did not answer: a missing series is
 * honest, a zero would look like a counter reset), then this node
 */
static void
metrics_render(struct evbuffer *b, const struct metrics_view *v)
{
	const struct metrics_counter	*c;
	const redisReply		*f;
	const char			*prev = NULL;
	struct timespec			 now;
	uint64_t			 open = 0;
	long long			 n;
	double				 age = 0;
	char				*end;
	size_t				 i;
	int				 nsmtpd = 0;

	if (v != NULL) {
		for (i = 0; i < METRICS_NCOUNTERS; i++) {
			c = &counters[i];
			if (prev == NULL || strcmp(prev, c->name) != 0)
				metrics_family(b, c->name, "counter", c->help);
			prev = c->name;
			n = 0;
			if ((f = metrics_hget(v->stats, c->field)) != NULL) {
				n = strtoll(f->str, &end, 10);
				if (*end != '\0' || n < 0)
					n = 0;
			}
			evbuffer_add_printf(b, "%s%s%s%s %lld\n", c->name,
			    c->label != NULL ? "{" : "", c->label != NULL ?
			    c->label : "", c->label != NULL ? "}" : "", n);
		}
		metrics_render_routes(b, v->stats);

		metrics_family(b, "sluice_queue_messages", "gauge",
		    "Messages in the queue, held ones included.");
		evbuffer_add_printf(b, "sluice_queue_messages %lld\n", v->ids);
		metrics_family(b, "sluice_queue_scheduled", "gauge",
		    "Messages on the schedule: due, being delivered or "
		    "waiting for their next attempt.");
		evbuffer_add_printf(b, "sluice_queue_scheduled %lld\n",
		    v->scheduled);
		metrics_family(b, "sluice_queue_held", "gauge",
		    "Messages held: in the queue but not on the schedule.");
		evbuffer_add_printf(b, "sluice_queue_held %lld\n",
		    v->ids > v->scheduled ? v->ids - v->scheduled : 0);
		if (v->oldest_ms > 0) {
			clock_gettime(CLOCK_REALTIME, &now);
			age = (double)now.tv_sec + now.tv_nsec / 1e9 -
			    v->oldest_ms / 1000;
			if (age < 0)
				age = 0;
		}
		metrics_family(b, "sluice_queue_oldest_age_seconds", "gauge",
		    "Age of the oldest message in the queue, held ones "
		    "included; 0 when the queue is empty.");
		evbuffer_add_printf(b, "sluice_queue_oldest_age_seconds %.3f\n",
		    age);
	}

	metrics_family(b, "sluice_redis_up", "gauge",
	    "1 when this node's queue manager read Redis for this scrape.");
	evbuffer_add_printf(b, "sluice_redis_up %d\n", v != NULL);
	if (v != NULL) {
		metrics_family(b, "sluice_redis_roundtrip_seconds", "gauge",
		    "How long the read for this scrape took.");
		evbuffer_add_printf(b, "sluice_redis_roundtrip_seconds %.6f\n",
		    v->rtt);
	}
	metrics_family(b, "sluice_queued_ready", "gauge",
	    "1 when this node's queue manager takes mail: Redis is up and "
	    "keeps mail sealed with this node's queue key.");
	evbuffer_add_printf(b, "sluice_queued_ready %d\n",
	    redis_ev_up(q.redis) && q.key_ok);
	metrics_family(b, "sluice_queued_inflight", "gauge",
	    "Messages this node's queue manager has claimed for delivery.");
	evbuffer_add_printf(b, "sluice_queued_inflight %d\n", q.inflight);
	for (i = 0; i < METRICS_MAX_SMTPD; i++)
		if (mx.reporting[i]) {
			nsmtpd++;
			open += mx.open[i];
		}
	metrics_family(b, "sluice_smtp_sessions", "gauge",
	    "SMTP sessions open on this node.");
	evbuffer_add_printf(b, "sluice_smtp_sessions %llu\n",
	    (unsigned long long)open);
	metrics_family(b, "sluice_smtpd_processes", "gauge",
	    "smtpd processes of this node reporting to its queue manager.");
	evbuffer_add_printf(b, "sluice_smtpd_processes %d\n", nsmtpd);
	dest_metrics(b);
}

/*
 * metrics_render_routes - route:LABEL:RESULT fields as one family
 * with route and result labels, sorted so that scrapes compare
 */
static void
metrics_render_routes(struct evbuffer *b, const redisReply *st)
{
	const redisReply	**f;
	const char		*label, *colon;
	long long		 n;
	char			*end;
	size_t			 i, k, nf = 0;

	/* field and value side by side, as HGETALL gave them */
	f = xcalloc(st->elements + 2, sizeof(*f));
	for (i = 0; i + 1 < st->elements && nf / 2 < METRICS_MAX_FIELDS;
	    i += 2)
		if (st->element[i]->type == REDIS_REPLY_STRING &&
		    st->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strncmp(st->element[i]->str, "route:", 6) == 0) {
			f[nf++] = st->element[i];
			f[nf++] = st->element[i + 1];
		}
	qsort(f, nf / 2, 2 * sizeof(*f), metrics_field_cmp);
	metrics_family(b, "sluice_route_recipients_total", "counter",
	    "Delivery results per recipient and route; the route is its "
	    "smarthost as written, or mx.");
	for (i = 0; i < nf; i += 2) {
		label = f[i]->str + 6;
		/* the label may hold colons (host:port); the result not */
		if ((colon = strrchr(label, ':')) == NULL || colon == label)
			continue;
		for (k = 0; k < METRICS_NRESULTS; k++)
			if (strcmp(colon + 1, route_results[k]) == 0)
				break;
		if (k == METRICS_NRESULTS)
			continue;
		n = strtoll(f[i + 1]->str, &end, 10);
		if (*end != '\0' || n < 0)
			n = 0;
		evbuffer_add_printf(b, "sluice_route_recipients_total"
		    "{route=\"");
		metrics_label_value(b, label, (size_t)(colon - label));
		evbuffer_add_printf(b, "\",result=\"%s\"} %lld\n",
		    route_results[k], n);
	}
	free(f);
}

/* metrics_family - the HELP and TYPE lines that open a family */
void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/*
 * metrics_label_value - the text format escapes backslash, quote and
 * line feed; anything else unprintable (labels come from Redis) is
 * shown as '?' so that no scraper chokes on it
 */
void
metrics_label_value(struct evbuffer *b, const char *s, size_t n)
{
	size_t		 i;
	unsigned char	 ch;

	for (i = 0; i < n; i++) {
		ch = (unsigned char)s[i];
		if (ch == '\\' || ch == '"')
			evbuffer_add_printf(b, "\\%c", ch);
		else if (ch == '\n')
			evbuffer_add(b, "\\n", 2);
		else if (ch < 0x20 || ch >= 0x7f)
			evbuffer_add(b, "?", 1);
		else
			evbuffer_add(b, &s[i], 1);
	}
}

/* metrics_hget - the value of field in an HGETALL reply, or NULL */
static const redisReply *
metrics_hget(const redisReply *st, const char *field)
{
	size_t	 i;

	for (i = 0; i + 1 < st->elements; i += 2)
		if (st->element[i]->type == REDIS_REPLY_STRING &&
		    st->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strcmp(st->element[i]->str, field) == 0)
			return st->element[i + 1];
	return NULL;
}

static int
metrics_field_cmp(const void *a, const void *b)
{
	const redisReply	*const *x = a, *const *y = b;

	return strcmp((*x)->str, (*y)->str);
}

/* metrics_elapsed - seconds since t, on the monotonic clock */
static double
metrics_elapsed(const struct timespec *t)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) +
	    (now.tv_nsec - t->tv_nsec) / 1e9;
}
