/*
 * redis_ev.c - a Redis connection that checks the server keeps mail safe
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <sodium.h>

#include "compat/compat.h"
#include "conf.h"
#include "log.h"
#include "redis_ev.h"
#include "xmalloc.h"

#define REDIS_DELAY_MIN_MS	100
#define REDIS_DELAY_MAX_MS	5000
#define REDIS_REFUSED_MS	10000	/* ask a refused server again */
#define REDIS_PASSWORD_MAX	512

/* the settings read after every connect, in this order */
enum {
	SET_POLICY,
	SET_AOF,
	SET_FSYNC,
	SET_COUNT
};
static const char *const set_names[SET_COUNT] = {
	"maxmemory-policy", "appendonly", "appendfsync"
};

struct redis_ev {
	struct event_base	*base;
	char			 name[32];
	char			 where[300];	/* for messages */
	char			*unix_path;
	char			 host[256];
	int			 port;
	char			*password;
	redisAsyncContext	*ac;
	struct event		*timer;
	int			 delay_ms;
	int			 up;
	int			 refused;	/* settings failed the check */
	int			 relaxed;	/* redis.durability = relaxed */
	int			 quiet;		/* problems at debug level only */
	int			 freeing;
	char			*settings[SET_COUNT];
	char			 last_problem[512];
	redis_ev_state_fn	 fn;
	void			*arg;
};

static void	redis_ev_connect(struct redis_ev *);
static void	redis_ev_retry(struct redis_ev *, int);
static void	redis_ev_on_timer(evutil_socket_t, short, void *);
static void	redis_ev_on_connect(const redisAsyncContext *, int);
static void	redis_ev_on_disconnect(const redisAsyncContext *, int);
static void	redis_ev_on_auth(redisAsyncContext *, void *, void *);
static void	redis_ev_on_setting(redisAsyncContext *, void *, void *);
static void	redis_ev_on_ping(redisAsyncContext *, void *, void *);
static void	redis_ev_problem(struct redis_ev *, const char *);
static void	redis_ev_clear_settings(struct redis_ev *);

/* redis_ev_check_settings - does this server keep acknowledged mail? */
int
redis_ev_check_settings(const char *policy, const char *aof,
    const char *fsync, int relaxed, char *err, size_t errlen)
{
	if (policy == NULL || strcmp(policy, "noeviction") != 0) {
		snprintf(err, errlen, "maxmemory-policy is %s; sluice needs "
		    "noeviction, or Redis may evict queued mail when full",
		    policy ? policy : "unknown");
		return -1;
	}
	/* redis.durability = "relaxed": the administrator chose to */
	if (relaxed)
		return 0;
	if (aof == NULL || strcmp(aof, "yes") != 0) {
		snprintf(err, errlen, "appendonly is %s; sluice needs yes, or "
		    "a restart of Redis loses acknowledged mail",
		    aof ? aof : "unknown");
		return -1;
	}
	if (fsync == NULL || strcmp(fsync, "always") != 0) {
		snprintf(err, errlen, "appendfsync is %s; sluice needs always, "
		    "or a crash of the machine loses acknowledged mail",
		    fsync ? fsync : "unknown");
		return -1;
	}
	return 0;
}

/* redis_ev_read_password - first line of a file only its owner may read */
char *
redis_ev_read_password(const char *path, char *err, size_t errlen)
{
	struct stat	 st;
	char		 buf[REDIS_PASSWORD_MAX + 2];
	ssize_t		 n;
	char		*pw;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "redis.password_file: %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "redis.password_file: %s: readable by "
		    "group or others (mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		close(fd);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "redis.password_file: %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0' || strlen(buf) > REDIS_PASSWORD_MAX) {
		snprintf(err, errlen, "redis.password_file: %s: %s", path,
		    buf[0] == '\0' ? "empty" : "password too long");
		sodium_memzero(buf, sizeof(buf));
		return NULL;
	}
	pw = xstrdup(buf);
	sodium_memzero(buf, sizeof(buf));
	return pw;
}

struct redis_ev *
redis_ev_new(struct event_base *base, const char *name,
    const struct conf *conf, const char *password, redis_ev_state_fn fn,
    void *arg)
{
	struct redis_ev	*r;

	r = xcalloc(1, sizeof(*r));
	r->base = base;
	strlcpy(r->name, name, sizeof(r->name));
	r->relaxed = conf->redis.durability == CONF_DURABILITY_RELAXED;
	if (conf->redis.unix_path != NULL) {
		r->unix_path = xstrdup(conf->redis.unix_path);
		snprintf(r->where, sizeof(r->where), "%s", r->unix_path);
	} else {
		strlcpy(r->host, conf->redis.tcp.host, sizeof(r->host));
		r->port = conf->redis.tcp.port;
		snprintf(r->where, sizeof(r->where), "%s:%d", r->host, r->port);
	}
	if (password != NULL)
		r->password = xstrdup(password);
	r->fn = fn;
	r->arg = arg;
	r->delay_ms = REDIS_DELAY_MIN_MS;
	if ((r->timer = evtimer_new(base, redis_ev_on_timer, r)) == NULL)
		fatalx("redis_ev_new: evtimer_new");
	redis_ev_connect(r);
	return r;
}

void
redis_ev_free(struct redis_ev *r)
{
	if (r == NULL)
		return;
	r->freeing = 1;
	if (r->ac != NULL)
		redisAsyncFree(r->ac);	/* calls on_disconnect: it sees freeing */
	event_free(r->timer);
	redis_ev_clear_settings(r);
	if (r->password != NULL) {
		sodium_memzero(r->password, strlen(r->password));
		free(r->password);
	}
	free(r->unix_path);
	free(r);
}

int
redis_ev_up(const struct redis_ev *r)
{
	return r->up;
}

struct redisAsyncContext *
redis_ev_context(struct redis_ev *r)
{
	return r->up ? r->ac : NULL;
}

/* redis_ev_problem - log a connection problem once, not every retry */
static void
redis_ev_problem(struct redis_ev *r, const char *what)
{
	if (strcmp(r->last_problem, what) == 0)
		return;
	strlcpy(r->last_problem, what, sizeof(r->last_problem));
	if (!r->quiet)
		log_warnx("%s: redis %s: %s", r->name, r->where, what);
}

static void
redis_ev_clear_settings(struct redis_ev *r)
{
	int	 i;

	for (i = 0; i < SET_COUNT; i++) {
		free(r->settings[i]);
		r->settings[i] = NULL;
	}
}

static void
redis_ev_connect(struct redis_ev *r)
{
	redisAsyncContext	*ac;
	char			 why[300];
	int			 i;

	if (r->unix_path != NULL)
		ac = redisAsyncConnectUnix(r->unix_path);
	else
		ac = redisAsyncConnect(r->host, r->port);
	if (ac == NULL || ac->err) {
		snprintf(why, sizeof(why), "cannot connect: %s",
		    ac ? ac->errstr : "out of memory");
		redis_ev_problem(r, why);
		if (ac != NULL)
			redisAsyncFree(ac);
		redis_ev_retry(r, 0);
		return;
	}
	ac->data = r;
	r->ac = ac;
	r->refused = 0;
	redis_ev_clear_settings(r);
	if (redisLibeventAttach(ac, r->base) != REDIS_OK ||
	    redisAsyncSetConnectCallback(ac, redis_ev_on_connect) != REDIS_OK ||
	    redisAsyncSetDisconnectCallback(ac, redis_ev_on_disconnect) !=
	    REDIS_OK)
		fatalx("%s: cannot attach redis to the event loop", r->name);

	/*
	 * Queued now, sent once connected, answered in order: AUTH first,
	 * so the settings are read as the account sluice will use.
	 */
	if (r->password != NULL) {
		const char	*argv[2] = { "AUTH", r->password };

		redisAsyncCommandArgv(ac, redis_ev_on_auth, NULL, 2, argv, NULL);
	}
	for (i = 0; i < SET_COUNT; i++) {
		const char	*argv[3] = { "CONFIG", "GET", set_names[i] };

		redisAsyncCommandArgv(ac, redis_ev_on_setting,
		    (void *)(intptr_t)i, 3, argv, NULL);
	}
}

/* redis_ev_retry - try again later: refused servers less eagerly */
static void
redis_ev_retry(struct redis_ev *r, int refused)
{
	struct timeval	 tv;
	int		 ms;

	if (refused)
		ms = REDIS_REFUSED_MS;
	else {
		ms = r->delay_ms;
		r->delay_ms = r->delay_ms * 2 > REDIS_DELAY_MAX_MS ?
		    REDIS_DELAY_MAX_MS : r->delay_ms * 2;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

static void
redis_ev_on_timer(evutil_socket_t fd, short ev, void *arg)
{
	redis_ev_connect(arg);
}

static void
redis_ev_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_ev	*r = ac->data;
	char		 why[300];

	if (status == REDIS_OK)
		return;		/* the queued commands decide what comes next */
	/* hiredis frees a context whose connect failed */
	snprintf(why, sizeof(why), "cannot connect: %s", ac->errstr);
	r->ac = NULL;
	redis_ev_problem(r, why);
	redis_ev_retry(r, 0);
}

static void
redis_ev_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_ev	*r = ac->data;
	char		 why[300];
	int		 was_up = r->up;

	r->ac = NULL;
	r->up = 0;
	if (r->freeing)
		return;
	if (was_up) {
		snprintf(why, sizeof(why), "connection lost%s%s",
		    status != REDIS_OK ? ": " : "",
		    status != REDIS_OK ? ac->errstr : "");
		redis_ev_problem(r, why);
		r->fn(r, 0, r->arg);
	}
	redis_ev_retry(r, r->refused);
}

static void
redis_ev_on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_ev	*r = ac->data;
	redisReply	*rep = reply;
	char		 why[300];

	if (rep == NULL)
		return;		/* disconnected; on_disconnect handles it */
	if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "AUTH refused: %.200s", rep->str);
		redis_ev_problem(r, why);
		r->refused = 1;
		redisAsyncDisconnect(ac);
	}
}

/*
 * redis_ev_on_setting - one CONFIG GET answer; the last one decides
 * whether this connection may carry mail.
 */
static void
redis_ev_on_setting(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_ev	*r = ac->data;
	redisReply	*rep = reply;
	int		 i = (int)(intptr_t)priv;
	char		 why[512];

	if (rep == NULL || r->refused)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "CONFIG GET %s refused (%.200s); "
		    "sluice must be able to check the server's durability",
		    set_names[i], rep->str);
		goto refuse;
	}
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[1]->type == REDIS_REPLY_STRING)
		r->settings[i] = xstrdup(rep->element[1]->str);
	if (i != SET_COUNT - 1)
		return;
	if (redis_ev_check_settings(r->settings[SET_POLICY],
	    r->settings[SET_AOF], r->settings[SET_FSYNC], r->relaxed, why,
	    sizeof(why)) == -1)
		goto refuse;
	/*
	 * CONFIG GET is answered while a restarted server still loads
	 * its data; PING is not: up only when PING is
	 */
	redisAsyncCommand(ac, redis_ev_on_ping, NULL, "PING");
	return;
 refuse:
	redis_ev_problem(r, why);
	r->refused = 1;
	redisAsyncDisconnect(ac);
}

/* redis_ev_on_ping - the server serves: the connection is up */
static void
redis_ev_on_ping(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_ev	*r = ac->data;
	redisReply	*rep = reply;
	char		 why[300];

	if (rep == NULL || r->refused)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		/* LOADING: try again soon, as after a lost connection */
		snprintf(why, sizeof(why), "not serving yet: %.200s",
		    rep->str);
		redis_ev_problem(r, why);
		redisAsyncDisconnect(ac);
		return;
	}
	r->up = 1;
	r->delay_ms = REDIS_DELAY_MIN_MS;
	r->last_problem[0] = '\0';
	(r->quiet ? log_debug : log_info)("%s: redis %s: connected; "
	    "noeviction%s", r->name, r->where,
	    r->relaxed ? " (durability relaxed)" :
	    ", appendonly, appendfsync always");
	r->fn(r, 1, r->arg);
}

/* redis_ev_quiet - a second connection: the first one reports problems */
void
redis_ev_quiet(struct redis_ev *r)
{
	r->quiet = 1;
}
