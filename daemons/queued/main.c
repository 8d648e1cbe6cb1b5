/*
 * queued - the queue manager
 *
 * Takes messages from smtpd and commits them durably to Redis
 * (enqueue.c), claims due messages under a lease and hands delivery
 * jobs to deliverd (scheduler.c), retries with backoff, expires and
 * bounces (bounce.c).  One Redis connection carries all commands; a
 * second one only listens for "flush" so that sluicectl's requests
 * are seen at once.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <sodium.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "log.h"
#include "qstore.h"
#include "queued.h"
#include "redis_ev.h"
#include "xmalloc.h"

struct queued		 q;
static char		*redis_password;

static void	queued_setup(struct child_env *);
static void	queued_configure(struct child_env *, struct conf *);
static void	queued_peer_msg(struct child_env *, struct child_peer *,
		    struct ipc_msg *);
static void	queued_shutdown(struct child_env *);
static void	queued_redis_state(struct redis_ev *, int, void *);
static void	queued_sub_state(struct redis_ev *, int, void *);
static void	queued_on_flush(redisAsyncContext *, void *, void *);
static void	queued_on_tick(evutil_socket_t, short, void *);
static void	queued_on_renew(evutil_socket_t, short, void *);
static void	queued_arm_renew(void);
static void	queued_check_key(void);
static void	queued_on_keyid(redisAsyncContext *, void *, void *);
static void	queued_on_keycheck(evutil_socket_t, short, void *);

/* a failed key check is tried again by this timer */
static struct event	*keycheck;

/*
 * keyid: KEYS P keyid; ARGV this node's key id.  The first node to
 * start records the id of its queue key; every other one must have
 * the same key, or it could not read their mail nor they its.
 */
static const char keyid_lua[] =
"local v = redis.call('GET', KEYS[1])\n"
"if not v then redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] end\n"
"return v\n";

static const struct child_ops queued_ops = {
	.kind = PROC_QUEUED,
	.sandbox = SANDBOX_QUEUED,
	.setup = queued_setup,
	.configure = queued_configure,
	.peer_msg = queued_peer_msg,
	.shutdown = queued_shutdown,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &queued_ops);
}

/*
 * queued_setup - files are still open to us here: the Redis password,
 * the queue key (made on the first start), the time zone for Date
 */
static void
queued_setup(struct child_env *env)
{
	char	 err[512], *path;

	q.env = env;
	if (env->conf->redis.password_file != NULL) {
		redis_password = redis_ev_read_password(
		    env->conf->redis.password_file, err, sizeof(err));
		if (redis_password == NULL)
			fatalx("%s: %s", env->name, err);
	}
	if ((path = qstore_key_path(env->conf)) == NULL)
		fatalx("%s: queue key path", env->name);
	if ((q.key = sodium_malloc(QSTORE_KEY_SIZE)) == NULL)
		fatalx("%s: sodium_malloc", env->name);
	if (qstore_key_load(path, 1, q.key, err, sizeof(err)) == -1)
		fatalx("%s: queue key: %s", env->name, err);
	free(path);
	sodium_mprotect_readonly(q.key);
	tzset();
	metrics_setup(env);
}

static void
queued_configure(struct child_env *env, struct conf *old)
{
	uint32_t	 rnd = randombytes_random();

	q.env = env;
	metrics_configure(env, old);
	if (old != NULL) {
		/* durations may change; the Redis address cannot */
		queued_arm_renew();
		/* the routes may have changed: jobs waiting are routed again */
		dest_reload();
		return;
	}
	snprintf(q.owner, sizeof(q.owner), "%s/%ld/%08x",
	    env->conf->hostname, (long)getpid(), rnd);
	q.redis = redis_ev_new(env->base, env->name, env->conf,
	    redis_password, queued_redis_state, env);
	q.sub = redis_ev_new(env->base, env->name, env->conf,
	    redis_password, queued_sub_state, env);
	redis_ev_quiet(q.sub);
	if (redis_password != NULL) {
		sodium_memzero(redis_password, strlen(redis_password));
		free(redis_password);
		redis_password = NULL;
	}
	q.tick = evtimer_new(env->base, queued_on_tick, NULL);
	q.renew = evtimer_new(env->base, queued_on_renew, NULL);
	if (q.tick == NULL || q.renew == NULL)
		fatalx("%s: evtimer_new", env->name);
	queued_kick();
	queued_arm_renew();
}

static void
queued_peer_msg(struct child_env *env, struct child_peer *p,
    struct ipc_msg *m)
{
	switch (p->kind) {
	case PROC_SMTPD:
		if (m == NULL) {
			metrics_smtpd_gone(p);
			enqueue_peer_gone(p);
		} else if (m->type == IPC_SMTPD_STATS)
			metrics_smtpd_msg(p, m);
		else
			enqueue_peer_msg(p, m);
		break;
	case PROC_DELIVERD:
		if (m == NULL)
			sched_peer_gone(p);
		else
			sched_peer_msg(p, m);
		break;
	default:
		if (m != NULL)
			log_warnx("%s: %s sent %s; nothing to do with it",
			    env->name, ipc_name(p->ipc), ipc_type_str(m->type));
	}
}

/* queued_shutdown - hand our claims back so that nobody waits a lease */
static void
queued_shutdown(struct child_env *env)
{
	sched_release_all();
}

static void
queued_redis_state(struct redis_ev *r, int up, void *arg)
{
	struct child_env	*env = arg;

	log_debug("%s: redis %s", env->name, up ? "up" : "down");
	q.key_ok = 0;
	if (up)
		queued_check_key();
}

static void
queued_on_keycheck(evutil_socket_t fd, short ev, void *arg)
{
	if (!q.key_ok)
		queued_check_key();
}

/* queued_check_key - does Redis hold mail sealed with our key? */
static void
queued_check_key(void)
{
	unsigned char		 id[16];
	char			 hex[sizeof(id) * 2 + 1], *k;
	redisAsyncContext	*ac = redis_ev_context(q.redis);
	static const char	 label[] = "sluice queue key id";

	if (ac == NULL)
		return;
	crypto_generichash(id, sizeof(id), (const unsigned char *)label,
	    sizeof(label) - 1, q.key, QSTORE_KEY_SIZE);
	sodium_bin2hex(hex, sizeof(hex), id, sizeof(id));
	strlcpy(q.keyid, hex, sizeof(q.keyid));
	k = store_name("keyid", NULL);
	redisAsyncCommand(ac, queued_on_keyid, NULL, "EVAL %s 1 %s %s",
	    keyid_lua, k, hex);
	free(k);
}

static void
queued_on_keyid(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	static int	 said;

	if (rep == NULL)
		return;
	if (rep->type != REDIS_REPLY_STRING) {
		struct timeval	 tv = { 1, 0 };

		log_warnx("%s: queue key check: redis: %.200s; again in 1 s",
		    q.env->name, rep->type == REDIS_REPLY_ERROR ? rep->str :
		    "bad reply");
		if (keycheck == NULL && (keycheck = evtimer_new(q.env->base,
		    queued_on_keycheck, NULL)) == NULL)
			fatalx("%s: evtimer_new", __func__);
		evtimer_add(keycheck, &tv);
		return;
	}
	if (strcmp(rep->str, q.keyid) != 0) {
		if (!said++)
			log_warnx("%s: the queue key (queue.key_file) is not "
			    "the one the mail in this Redis is sealed with "
			    "(key id %s, ours %s); every node sharing a Redis "
			    "needs the same key file; taking no mail",
			    q.env->name, rep->str, q.keyid);
		return;
	}
	said = 0;
	q.key_ok = 1;
	sched_renew();		/* before any claim: what we hold stays ours */
	enqueue_resume();
	queued_kick();
}

static void
queued_sub_state(struct redis_ev *r, int up, void *arg)
{
	redisAsyncContext	*ac;
	char			*chan;

	if (!up || (ac = redis_ev_context(r)) == NULL)
		return;
	chan = store_name("flush", NULL);
	if (redisAsyncCommand(ac, queued_on_flush, NULL, "SUBSCRIBE %s",
	    chan) != REDIS_OK)
		log_warnx("%s: cannot subscribe to %s", q.env->name, chan);
	free(chan);
}

/* queued_on_flush - sluicectl made messages due: look at once */
static void
queued_on_flush(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements < 3 || rep->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(rep->element[0]->str, "message") == 0)
		queued_kick();
}

/* queued_kick - run the scheduler soon (on the next loop turn) */
void
queued_kick(void)
{
	struct timeval	 tv = { 0, 0 };

	if (q.tick != NULL)
		evtimer_add(q.tick, &tv);
}

static void
queued_on_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { 1, 0 };

	/* polling once a second catches retries that come due */
	evtimer_add(q.tick, &tv);
	enqueue_expire();
	sched_tick();
}

static void
queued_arm_renew(void)
{
	struct timeval	 tv;
	uint32_t	 ms = q.env->conf->queue.lease * 1000 / 3;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (q.renew != NULL)
		evtimer_add(q.renew, &tv);
}

static void
queued_on_renew(evutil_socket_t fd, short ev, void *arg)
{
	queued_arm_renew();
	sched_renew();
}

/*
 * queued_event - an XADD to the event stream: id, event, then field,
 * value pairs up to a NULL field
 */
void
queued_event(struct rcmd *c, const char *id, const char *event, ...)
{
	va_list		 ap;
	const char	*f, *v;
	char		*k;

	rcmd_str(c, "XADD");
	k = store_name("events", NULL);
	rcmd_str(c, k);
	free(k);
	rcmd_str(c, "MAXLEN");
	rcmd_str(c, "~");
	rcmd_str(c, QUEUED_EVENTS_MAX);
	rcmd_str(c, "*");
	rcmd_str(c, "id");
	rcmd_str(c, id);
	rcmd_str(c, "node");
	rcmd_str(c, q.env->conf->hostname);
	rcmd_str(c, "event");
	rcmd_str(c, event);
	va_start(ap, event);
	while ((f = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		rcmd_str(c, f);
		rcmd_str(c, v != NULL ? v : "");
	}
	va_end(ap);
}
