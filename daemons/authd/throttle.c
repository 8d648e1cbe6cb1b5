/*
 * throttle.c - failure counters (P authfail:ip:ADDR, P authfail:login:
 * LOGIN) and hourly allowances (P rate:LOGIN:msgs:HOUR, rcpts:HOUR)
 *
 * All of it lives in Redis so that every node sharing the store sees
 * the same counts; each step is one script, so that reading and
 * changing a counter cannot interleave with another node's.
 */
#include "config.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "authd.h"
#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "log.h"
#include "netaddr.h"
#include "xmalloc.h"

#define RATE_WINDOW	3600	/* seconds: the hour of the schema */
#define RATE_EXPIRE	"7200"	/* a counter outlives its hour by one */

/*
 * block: KEYS the address and login counters.  Each one's count and
 * TTL: how many failures, and for how long they still count.
 */
static const char block_lua[] =
"local r = {}\n"
"for i, k in ipairs(KEYS) do\n"
"  r[#r + 1] = tonumber(redis.call('GET', k) or '0') or 0\n"
"  r[#r + 1] = redis.call('TTL', k)\n"
"end\n"
"return r\n";

/*
 * fail: KEYS the two counters; ARGV[1] limits.auth_block.  The block
 * runs from the first failure: a counter gets its expiry only when it
 * is new (or somehow has none, which would block for ever).
 */
static const char fail_lua[] =
"for i, k in ipairs(KEYS) do\n"
"  if redis.call('INCR', k) == 1 or redis.call('TTL', k) < 0 then\n"
"    redis.call('EXPIRE', k, ARGV[1])\n"
"  end\n"
"end\n"
"return 1\n";

/*
 * rate: KEYS user hash, msgs this hour, msgs last hour, rcpts this
 * hour, rcpts last hour; ARGV now (seconds), messages, recipients,
 * default messages per hour, default recipients per hour.  A stored
 * limit that is no whole number from 1 to 2^32-1 counts as absent,
 * as authd's own reading of the user has it.
 *
 * The count of the last sixty minutes is estimated as this hour's
 * count plus the previous hour's weighted by the part of it still
 * inside the window.  Both allowances must have room, or nothing is
 * taken; then the answer is {1, seconds until there would be room}.
 * With the counts frozen that is exact for this hour (the previous
 * hour's share shrinks linearly), and for a request that needs this
 * hour's count to slide out it is the point in the next hour where it
 * has.  A request larger than the limit never fits: an hour.
 */
static const char rate_lua[] =
"local now = tonumber(ARGV[1])\n"
"local into = now % 3600\n"
"local w = (3600 - into) / 3600\n"
"local own = redis.call('HMGET', KEYS[1], 'messages_per_hour',\n"
"    'recipients_per_hour')\n"
"local want = { tonumber(ARGV[2]), tonumber(ARGV[3]) }\n"
"local function lim(v, d)\n"
"  v = tonumber(v)\n"
"  if not v or v ~= v or v < 1 or v > 4294967295 or v ~= math.floor(v)\n"
"  then return tonumber(d) end\n"
"  return v\n"
"end\n"
"local limit = { lim(own[1], ARGV[4]), lim(own[2], ARGV[5]) }\n"
"local retry = 0\n"
"for i = 1, 2 do\n"
"  local cur = tonumber(redis.call('GET', KEYS[2 * i]) or '0') or 0\n"
"  local prev = tonumber(redis.call('GET', KEYS[2 * i + 1]) or '0') or 0\n"
"  local n, l = want[i], limit[i]\n"
"  if cur + prev * w + n > l then\n"
"    local t\n"
"    if n > l then\n"
"      t = 3600\n"
"    elseif cur + n <= l then\n"
"      t = 3600 * (1 - (l - cur - n) / prev) - into\n"
"    else\n"
"      t = (3600 - into) + 3600 * (1 - (l - n) / cur)\n"
"    end\n"
"    t = math.ceil(t)\n"
"    if t < 1 then t = 1 end\n"
"    if t > retry then retry = t end\n"
"  end\n"
"end\n"
"if retry > 0 then return { 1, retry } end\n"
"for i = 1, 2 do\n"
"  if want[i] > 0 then\n"
"    redis.call('INCRBY', KEYS[2 * i], want[i])\n"
"    redis.call('EXPIRE', KEYS[2 * i], ARGV[6])\n"
"  end\n"
"end\n"
"return { 0, 0 }\n";

struct throttle_call {
	struct throttle_block	*b;
	authd_done_fn		*fn;
	throttle_rate_fn	*rfn;
	void			*arg;
};

static void	throttle_on_check(redisAsyncContext *, void *, void *);
static void	throttle_on_fail(redisAsyncContext *, void *, void *);
static void	throttle_on_rate(redisAsyncContext *, void *, void *);
static int	throttle_keys(const char *, const char *, char *, char *);

/* throttle_keys - the two failure counters of an address and a login */
static int
throttle_keys(const char *client, const char *login, char *kip,
    char *klogin)
{
	char	 who[INET6_ADDRSTRLEN + 8];

	/* an IPv6 host has a /64 to pick addresses from: count that */
	if (netaddr_client_key(client, who, sizeof(who)) == NULL)
		strlcpy(who, client, sizeof(who));
	if (authd_key(kip, "authfail:ip", who) == -1 ||
	    authd_key(klogin, "authfail:login", login) == -1)
		return -1;
	return 0;
}

/*
 * throttle_check - read both failure counters into b, then fn(arg, 0)
 * or fn(arg, -1); -1 and no callback when nothing could be sent
 */
int
throttle_check(const char *client, const char *login,
    struct throttle_block *b, authd_done_fn *fn, void *arg)
{
	struct throttle_call	*c;
	char			 kip[AUTHD_KEY_MAX], klogin[AUTHD_KEY_MAX];
	const char		*argv[5];

	memset(b, 0, sizeof(*b));
	if (throttle_keys(client, login, kip, klogin) == -1)
		return -1;
	c = xcalloc(1, sizeof(*c));
	c->b = b;
	c->fn = fn;
	c->arg = arg;
	argv[0] = "EVAL";
	argv[1] = block_lua;
	argv[2] = "2";
	argv[3] = kip;
	argv[4] = klogin;
	if (authd_command(throttle_on_check, c, 5, argv) == -1) {
		free(c);
		return -1;
	}
	return 0;
}

/* throttle_on_check - {count, ttl} twice, or the lookup failed */
static void
throttle_on_check(redisAsyncContext *ac, void *r, void *arg)
{
	struct throttle_call	*c = arg;
	redisReply		*rep = r;
	long long		 v[4];
	size_t			 i;
	int			 ok = 0;

	if (rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
	    rep->elements == 4) {
		ok = 1;
		for (i = 0; i < 4; i++) {
			if (rep->element[i]->type != REDIS_REPLY_INTEGER)
				ok = 0;
			else
				v[i] = rep->element[i]->integer;
		}
	} else if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_warnx("%s: redis: failure counters: %.200s",
		    authd.env->name, rep->str);
	if (ok) {
		c->b->ip_count = v[0];
		c->b->ip_ttl = v[1];
		c->b->login_count = v[2];
		c->b->login_ttl = v[3];
	}
	c->fn(c->arg, ok ? 0 : -1);
	free(c);
}

/*
 * throttle_blocked - 1 when either counter is at limits.auth_failures,
 * with the seconds the longer block still lasts in *retry
 */
int
throttle_blocked(const struct throttle_block *b, uint32_t *retry)
{
	long long	 limit = authd.env->conf->limits.auth_failures;
	long long	 t = 0, ttl;
	int		 blocked = 0;

	if (b->ip_count >= limit) {
		blocked = 1;
		/* -1: no expiry (cannot be ours); -2: it just went */
		ttl = b->ip_ttl > 0 ? b->ip_ttl :
		    (long long)authd.env->conf->limits.auth_block;
		if (ttl > t)
			t = ttl;
	}
	if (b->login_count >= limit) {
		blocked = 1;
		ttl = b->login_ttl > 0 ? b->login_ttl :
		    (long long)authd.env->conf->limits.auth_block;
		if (ttl > t)
			t = ttl;
	}
	*retry = blocked ? (uint32_t)(t > 0 ? t : 1) : 0;
	return blocked;
}

/*
 * throttle_fail - count one failure against the address and the login,
 * then fn(arg, 0 or -1); -1 and no callback when nothing was sent
 */
int
throttle_fail(const char *client, const char *login, authd_done_fn *fn,
    void *arg)
{
	struct throttle_call	*c;
	char			 kip[AUTHD_KEY_MAX], klogin[AUTHD_KEY_MAX];
	char			 block[16];
	const char		*argv[6];

	if (throttle_keys(client, login, kip, klogin) == -1)
		return -1;
	snprintf(block, sizeof(block), "%u",
	    (unsigned)authd.env->conf->limits.auth_block);
	c = xcalloc(1, sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	argv[0] = "EVAL";
	argv[1] = fail_lua;
	argv[2] = "2";
	argv[3] = kip;
	argv[4] = klogin;
	argv[5] = block;
	if (authd_command(throttle_on_fail, c, 6, argv) == -1) {
		free(c);
		return -1;
	}
	return 0;
}

/* throttle_on_fail - the failure is counted (or Redis went away) */
static void
throttle_on_fail(redisAsyncContext *ac, void *r, void *arg)
{
	struct throttle_call	*c = arg;
	redisReply		*rep = r;
	int			 ok = rep != NULL &&
				    rep->type == REDIS_REPLY_INTEGER;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_warnx("%s: redis: count failure: %.200s",
		    authd.env->name, rep->str);
	c->fn(c->arg, ok ? 0 : -1);
	free(c);
}

/*
 * throttle_rate - take messages and recipients from login's allowance
 * of the last hour, then fn(arg, AP_OK | AP_LIMITED | AP_TEMPFAIL,
 * retry); -1 and no callback when nothing could be sent
 */
int
throttle_rate(const char *login, uint32_t messages, uint32_t recipients,
    throttle_rate_fn *fn, void *arg)
{
	const struct conf	*conf = authd.env->conf;
	struct throttle_call	*c;
	struct timespec		 ts;
	char			 kuser[AUTHD_KEY_MAX];
	char			 k[4][AUTHD_KEY_MAX], name[AP_MAX_LOGIN + 40];
	char			 now[32], nm[16], nr[16], dm[16], dr[16];
	const char		*argv[14];
	long long		 hour;
	int			 i;

	clock_gettime(CLOCK_REALTIME, &ts);
	hour = (long long)ts.tv_sec / RATE_WINDOW;
	if (authd_key(kuser, "user", login) == -1)
		return -1;
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "%s:%s:%lld", login,
		    i < 2 ? "msgs" : "rcpts", hour - (i % 2));
		if (authd_key(k[i], "rate", name) == -1)
			return -1;
	}
	snprintf(now, sizeof(now), "%lld.%03ld", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000000);
	snprintf(nm, sizeof(nm), "%u", messages);
	snprintf(nr, sizeof(nr), "%u", recipients);
	snprintf(dm, sizeof(dm), "%d", conf->limits.user_messages_per_hour);
	snprintf(dr, sizeof(dr), "%d",
	    conf->limits.user_recipients_per_hour);
	c = xcalloc(1, sizeof(*c));
	c->rfn = fn;
	c->arg = arg;
	argv[0] = "EVAL";
	argv[1] = rate_lua;
	argv[2] = "5";
	argv[3] = kuser;
	for (i = 0; i < 4; i++)
		argv[4 + i] = k[i];
	argv[8] = now;
	argv[9] = nm;
	argv[10] = nr;
	argv[11] = dm;
	argv[12] = dr;
	argv[13] = RATE_EXPIRE;
	if (authd_command(throttle_on_rate, c, 14, argv) == -1) {
		free(c);
		return -1;
	}
	return 0;
}

/* throttle_on_rate - {0, 0} taken, {1, retry} refused, else tempfail */
static void
throttle_on_rate(redisAsyncContext *ac, void *r, void *arg)
{
	struct throttle_call	*c = arg;
	redisReply		*rep = r;
	long long		 retry;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER) {
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
			log_warnx("%s: redis: rate check: %.200s",
			    authd.env->name, rep->str);
		c->rfn(c->arg, AP_TEMPFAIL, 0);
		free(c);
		return;
	}
	retry = rep->element[1]->integer;
	if (retry < 0)
		retry = 0;
	if (retry > RATE_WINDOW * 2)
		retry = RATE_WINDOW * 2;
	c->rfn(c->arg, rep->element[0]->integer == 0 ? AP_OK : AP_LIMITED,
	    (uint32_t)retry);
	free(c);
}
