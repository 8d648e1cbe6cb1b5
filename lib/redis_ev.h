/*
 * NAME
 *	redis_ev - one asynchronous Redis connection on a libevent loop
 * SYNOPSIS
 *	#include "redis_ev.h"
 *
 *	struct redis_ev *redis_ev_new(struct event_base *base,
 *	    const char *name, const struct conf *conf, const char *password,
 *	    redis_ev_state_fn fn, void *arg);
 *	void redis_ev_free(struct redis_ev *r);
 *	void redis_ev_quiet(struct redis_ev *r);
 *	int redis_ev_up(const struct redis_ev *r);
 *	struct redisAsyncContext *redis_ev_context(struct redis_ev *r);
 *	int redis_ev_check_settings(const char *policy, const char *aof,
 *	    const char *fsync, int relaxed, char *err, size_t errlen);
 *	char *redis_ev_read_password(const char *path, char *err,
 *	    size_t errlen);
 * DESCRIPTION
 *	redis_ev_new() connects to conf->redis (the embedded server's
 *	socket, a unix socket, or host:port) through hiredis's libevent
 *	adapter and keeps doing so: after a disconnect it reconnects with
 *	a delay that doubles from 100 ms to 5 s.  Each new connection
 *	first authenticates (when password is not NULL) and then reads the
 *	server's settings; only when they keep mail safe is the connection
 *	"up".  fn(r, up, arg) is called on every change.
 *
 *	redis_ev_quiet() keeps this connection's problems out of the log
 *	and its "connected" line at debug level: for a second connection
 *	to the same server (queued's pub/sub listener), whose problems the
 *	first one already reports.
 *
 *	redis_ev_check_settings() is that judgement: maxmemory-policy must
 *	be noeviction (an evicted key is a lost message), appendonly yes
 *	and appendfsync always (an acknowledged message must be on disk),
 *	the last two unless relaxed (redis.durability = "relaxed").
 *	A refused server is logged once per distinct reason and asked
 *	again every 10 seconds, so fixing it with CONFIG SET is noticed.
 *
 *	redis_ev_read_password() reads the first line of a password file,
 *	refusing one that group or others may read.  Call it before the
 *	sandbox; the caller wipes and frees the result.
 * DIAGNOSTICS
 *	redis_ev_check_settings() returns -1 and names the setting, its
 *	value and what it must be.  redis_ev_read_password() returns NULL
 *	with the reason in err.  redis_ev_new() never fails for network
 *	reasons: it logs and retries.
 */
#ifndef SLUICE_REDIS_EV_H
#define SLUICE_REDIS_EV_H

#include <stddef.h>

struct conf;
struct event_base;
struct redisAsyncContext;
struct redis_ev;

typedef void (*redis_ev_state_fn)(struct redis_ev *, int, void *);

struct redis_ev	*redis_ev_new(struct event_base *, const char *,
		    const struct conf *, const char *, redis_ev_state_fn,
		    void *);
void		 redis_ev_free(struct redis_ev *);
void		 redis_ev_quiet(struct redis_ev *);
int		 redis_ev_up(const struct redis_ev *);
struct redisAsyncContext *redis_ev_context(struct redis_ev *);
int		 redis_ev_check_settings(const char *, const char *,
		    const char *, int, char *, size_t);
char		*redis_ev_read_password(const char *, char *, size_t);

#endif
