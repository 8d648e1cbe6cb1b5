/*
 * store.c - Redis commands for queued: argv building, the write of a
 * new message, and the submission fix-ups of RFC 6409 section 8
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "child.h"
#include "conf.h"
#include "log.h"
#include "msghdr.h"
#include "qstore.h"
#include "queued.h"
#include "redis_ev.h"
#include "xmalloc.h"

/* recipients per HSET when a message is written */
#define STORE_RCPT_SLICE	200

static void	rcmd_grow(struct rcmd *);

void
rcmd_init(struct rcmd *c)
{
	memset(c, 0, sizeof(*c));
}

static void
rcmd_grow(struct rcmd *c)
{
	if (c->argc < c->cap)
		return;
	c->cap = c->cap ? c->cap * 2 : 16;
	c->argv = xreallocarray(c->argv, (size_t)c->cap, sizeof(*c->argv));
	c->lens = xreallocarray(c->lens, (size_t)c->cap, sizeof(*c->lens));
}

/* rcmd_add - one argument, binary safe; the bytes are copied */
void
rcmd_add(struct rcmd *c, const void *p, size_t n)
{
	rcmd_grow(c);
	c->argv[c->argc] = xmalloc(n + 1);
	memcpy(c->argv[c->argc], p, n);
	c->argv[c->argc][n] = '\0';
	c->lens[c->argc] = n;
	c->argc++;
}

void
rcmd_str(struct rcmd *c, const char *s)
{
	rcmd_add(c, s, strlen(s));
}

void
rcmd_addf(struct rcmd *c, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n == -1)
		fatal("rcmd_addf: vasprintf");
	rcmd_grow(c);
	c->argv[c->argc] = s;
	c->lens[c->argc] = (size_t)n;
	c->argc++;
}

void
rcmd_free(struct rcmd *c)
{
	int	 i;

	for (i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c->argv);
	free(c->lens);
	memset(c, 0, sizeof(*c));
}

/*
 * rcmd_send - queue the command on the Redis connection and free the
 * argv (hiredis has copied it into its output buffer)
 */
int
rcmd_send(struct rcmd *c, void (*fn)(redisAsyncContext *, void *, void *),
    void *arg)
{
	redisAsyncContext	*ac;
	int			 rc = -1;

	if (redis_ev_up(q.redis) && (ac = redis_ev_context(q.redis)) != NULL)
		rc = redisAsyncCommandArgv(ac, fn, arg, c->argc,
		    (const char **)c->argv, c->lens) == REDIS_OK ? 0 : -1;
	rcmd_free(c);
	return rc;
}

/* store_name - "PREFIXkind:{id}" (or "PREFIXkind"), allocated */
char *
store_name(const char *kind, const char *id)
{
	char	 buf[QSTORE_NAME_MAX];

	if (qstore_name(buf, sizeof(buf), q.env->conf->redis.prefix, kind,
	    id) == -1)
		fatalx("store_name: key name too long");
	return xstrdup(buf);
}

uint64_t
store_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * store_add_message - the commands that write one new message: the
 * envelope, the recipients, the sealed body, the schedule and ids
 * entries, the counter and the event.  The caller wraps them in
 * MULTI/EXEC so that they land together or not at all.
 */
int
store_add_message(const struct store_new *sn, const char *body, size_t len,
    const char *id, store_emit_fn emit, void *arg)
{
	struct rcmd	 c;
	unsigned char	*sealed;
	uint64_t	 now_ms = store_now_ms();
	size_t		 i, slen;
	char		*k;

	rcmd_init(&c);
	rcmd_str(&c, "HSET");
	k = store_name("msg", id);
	rcmd_str(&c, k);
	free(k);
	rcmd_str(&c, "id");		rcmd_str(&c, id);
	rcmd_str(&c, "from");		rcmd_str(&c, sn->from);
	rcmd_str(&c, "size");		rcmd_addf(&c, "%zu", len);
	rcmd_str(&c, "nrcpt");		rcmd_addf(&c, "%zu", sn->nrcpt);
	rcmd_str(&c, "created");	rcmd_addf(&c, "%llu",
	    (unsigned long long)(now_ms / 1000));
	rcmd_str(&c, "user");		rcmd_str(&c, sn->user);
	rcmd_str(&c, "client");		rcmd_str(&c, sn->client);
	rcmd_str(&c, "helo");		rcmd_str(&c, sn->helo);
	rcmd_str(&c, "proto");		rcmd_str(&c, sn->proto);
	rcmd_str(&c, "tls");		rcmd_str(&c, sn->tls);
	rcmd_str(&c, "flags");		rcmd_addf(&c, "%u", sn->flags);
	rcmd_str(&c, "envid");		rcmd_str(&c, sn->envid);
	rcmd_str(&c, "state");		rcmd_str(&c, "active");
	rcmd_str(&c, "attempts");	rcmd_str(&c, "0");
	rcmd_str(&c, "next");		rcmd_addf(&c, "%llu",
	    (unsigned long long)(now_ms / 1000));
	rcmd_str(&c, "last_error");	rcmd_str(&c, "");
	rcmd_str(&c, "lease");		rcmd_str(&c, "");
	rcmd_str(&c, "lease_until");	rcmd_str(&c, "0");
	rcmd_str(&c, "warned");		rcmd_str(&c, "0");
	rcmd_str(&c, "bounce");		rcmd_str(&c, sn->bounce ? "1" : "0");
	if (emit(&c, arg) == -1)
		return -1;

	/* in slices, so that no command (or script step) gets huge */
	for (i = 0; i < sn->nrcpt; i++) {
		if (i % STORE_RCPT_SLICE == 0) {
			rcmd_init(&c);
			rcmd_str(&c, "HSET");
			k = store_name("rcpt", id);
			rcmd_str(&c, k);
			free(k);
		}
		rcmd_addf(&c, "%zu:to", i);	rcmd_str(&c, sn->to[i]);
		rcmd_addf(&c, "%zu:notify", i);	rcmd_addf(&c, "%u",
		    sn->notify[i]);
		rcmd_addf(&c, "%zu:orcpt", i);	rcmd_str(&c, sn->orcpt[i]);
		rcmd_addf(&c, "%zu:state", i);	rcmd_str(&c, "pending");
		if ((i + 1) % STORE_RCPT_SLICE == 0 || i + 1 == sn->nrcpt)
			if (emit(&c, arg) == -1)
				return -1;
	}

	/* the body goes straight from the sealed copy into hiredis's buffer */
	slen = qstore_sealed_len(len);
	sealed = xmalloc(slen);
	qstore_seal(q.key, id, body, len, sealed);
	rcmd_init(&c);
	rcmd_str(&c, "SET");
	k = store_name("body", id);
	rcmd_str(&c, k);
	free(k);
	rcmd_grow(&c);
	c.argv[c.argc] = (char *)sealed;
	c.lens[c.argc++] = slen;
	if (emit(&c, arg) == -1)
		return -1;

	rcmd_init(&c);
	rcmd_str(&c, "ZADD");
	k = store_name("schedule", NULL);
	rcmd_str(&c, k);
	free(k);
	rcmd_addf(&c, "%llu", (unsigned long long)now_ms);
	rcmd_str(&c, id);
	if (emit(&c, arg) == -1)
		return -1;

	rcmd_init(&c);
	rcmd_str(&c, "ZADD");
	k = store_name("ids", NULL);
	rcmd_str(&c, k);
	free(k);
	rcmd_addf(&c, "%llu", (unsigned long long)now_ms);
	rcmd_str(&c, id);
	if (emit(&c, arg) == -1)
		return -1;

	rcmd_init(&c);
	rcmd_str(&c, "HINCRBY");
	k = store_name("stats", NULL);
	rcmd_str(&c, k);
	free(k);
	rcmd_str(&c, "accepted");
	rcmd_str(&c, "1");
	if (emit(&c, arg) == -1)
		return -1;

	rcmd_init(&c);
	queued_event(&c, id, "queued", NULL);
	if (emit(&c, arg) == -1)
		return -1;
	return 0;
}

/*
 * batch: KEYS msg, schedule; ARGV owner, mode, next_ms, id, then
 * commands as (argc, arg...).  Nothing runs unless the lease is still
 * ours; with mode "resched" the message goes back on the schedule at
 * next_ms, or stays off it when sluicectl held it meanwhile.  It may
 * run when Redis is full: finishing a message frees memory.
 */
static const char batch_lua[] =
"#!lua flags=allow-oom\n"
"if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end\n"
"local held = redis.call('HGET', KEYS[1], 'state') == 'held'\n"
"local i = 5\n"
"while i <= #ARGV do\n"
"  local n = tonumber(ARGV[i])\n"
"  redis.call(unpack(ARGV, i + 1, i + n))\n"
"  i = i + n + 1\n"
"end\n"
"if ARGV[2] == 'resched' then\n"
"  if held then\n"
"    redis.call('HSET', KEYS[1], 'state', 'held', 'next', 0)\n"
"    redis.call('ZREM', KEYS[2], ARGV[4])\n"
"  else\n"
"    redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[4])\n"
"  end\n"
"end\n"
"return 1\n";

/* rbatch_init - a batch for message id, mode "remove" or "resched" */
void
rbatch_init(struct rbatch *b, const char *id, const char *owner,
    const char *mode, uint64_t next_ms)
{
	char	*k;

	rcmd_init(&b->c);
	b->ncmds = 0;
	rcmd_str(&b->c, "EVAL");
	rcmd_str(&b->c, batch_lua);
	rcmd_str(&b->c, "2");
	k = store_name("msg", id);
	rcmd_str(&b->c, k);
	free(k);
	k = store_name("schedule", NULL);
	rcmd_str(&b->c, k);
	free(k);
	rcmd_str(&b->c, owner);
	rcmd_str(&b->c, mode);
	rcmd_addf(&b->c, "%llu", (unsigned long long)next_ms);
	rcmd_str(&b->c, id);
}

/* rbatch_add - a store_emit_fn: the command joins the batch */
int
rbatch_add(struct rcmd *c, void *arg)
{
	struct rbatch	*b = arg;
	int		 i;

	rcmd_addf(&b->c, "%d", c->argc);
	for (i = 0; i < c->argc; i++) {
		/* move, do not copy: bodies are large */
		rcmd_grow(&b->c);
		b->c.argv[b->c.argc] = c->argv[i];
		b->c.lens[b->c.argc++] = c->lens[i];
		c->argv[i] = NULL;
	}
	c->argc = 0;
	rcmd_free(c);
	b->ncmds++;
	return 0;
}

int
rbatch_send(struct rbatch *b, void (*fn)(redisAsyncContext *, void *,
    void *), void *arg)
{
	return rcmd_send(&b->c, fn, arg);
}

/*
 * store_fixup - RFC 6409 8.2 and 8.3: a submission server may add a
 * Message-ID and a Date the client left out.  Nothing else changes:
 * the new fields go at the end of the header section.  Returns 0 and
 * *out NULL when nothing is missing, 1 with a new copy in *out.
 */
int
store_fixup(const char *p, size_t n, const char *id, char **out,
    size_t *outlen)
{
	char		 add[512], date[64];
	struct tm	 tm;
	time_t		 now = time(NULL);
	size_t		 hlen, alen = 0;
	int		 need_nl;

	*out = NULL;
	*outlen = 0;
	hlen = msghdr_end(p, n);
	/* a header section whose last line has no line end yet */
	need_nl = hlen > 0 && p[hlen - 1] != '\n';
	if (need_nl)
		alen += (size_t)snprintf(add + alen, sizeof(add) - alen, "%s",
		    p[hlen - 1] == '\r' ? "\n" : "\r\n");
	if (!msghdr_has(p, hlen, "Message-ID"))
		alen += (size_t)snprintf(add + alen, sizeof(add) - alen,
		    "Message-ID: <%s@%s>\r\n", id, q.env->conf->hostname);
	if (!msghdr_has(p, hlen, "Date")) {
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		alen += (size_t)snprintf(add + alen, sizeof(add) - alen,
		    "Date: %s\r\n", date);
	}
	if (alen == (need_nl ? (p[hlen - 1] == '\r' ? 1u : 2u) : 0u))
		return 0;
	/* with no empty line after the header, the body needs one */
	*outlen = n + alen;
	*out = xmalloc(*outlen);
	memcpy(*out, p, hlen);
	memcpy(*out + hlen, add, alen);
	memcpy(*out + hlen + alen, p + hlen, n - hlen);
	return 1;
}
