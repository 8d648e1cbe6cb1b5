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
    const char *id, void (*fn)(redisAsyncContext *, void *, void *),
    void *arg, int *sent)
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
	if (rcmd_send(&c, fn, arg) == -1)
		return -1;
	(*sent)++;

	rcmd_init(&c);
	rcmd_str(&c, "HSET");
	k = store_name("rcpt", id);
	rcmd_str(&c, k);
	free(k);
	for (i = 0; i < sn->nrcpt; i++) {
		rcmd_addf(&c, "%zu:to", i);	rcmd_str(&c, sn->to[i]);
		rcmd_addf(&c, "%zu:notify", i);	rcmd_addf(&c, "%u",
		    sn->notify[i]);
		rcmd_addf(&c, "%zu:orcpt", i);	rcmd_str(&c, sn->orcpt[i]);
		rcmd_addf(&c, "%zu:state", i);	rcmd_str(&c, "pending");
	}
	if (rcmd_send(&c, fn, arg) == -1)
		return -1;
	(*sent)++;

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
	if (rcmd_send(&c, fn, arg) == -1)
		return -1;
	(*sent)++;

	rcmd_init(&c);
	rcmd_str(&c, "ZADD");
	k = store_name("schedule", NULL);
	rcmd_str(&c, k);
	free(k);
	rcmd_addf(&c, "%llu", (unsigned long long)now_ms);
	rcmd_str(&c, id);
	if (rcmd_send(&c, fn, arg) == -1)
		return -1;
	(*sent)++;

	rcmd_init(&c);
	rcmd_str(&c, "ZADD");
	k = store_name("ids", NULL);
	rcmd_str(&c, k);
	free(k);
	rcmd_addf(&c, "%llu", (unsigned long long)now_ms);
	rcmd_str(&c, id);
	if (rcmd_send(&c, fn, arg) == -1)
		return -1;
	(*sent)++;

	rcmd_init(&c);
	rcmd_str(&c, "HINCRBY");
	k = store_name("stats", NULL);
	rcmd_str(&c, k);
	free(k);
	rcmd_str(&c, "accepted");
	rcmd_str(&c, "1");
	if (rcmd_send(&c, fn, arg) == -1)
		return -1;
	(*sent)++;

	rcmd_init(&c);
	queued_event(&c, id, "queued");
	if (rcmd_send(&c, fn, arg) == -1)
		return -1;
	(*sent)++;
	return 0;
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
		alen += (size_t)snprintf(add + alen, sizeof(add) - alen,
		    "\r\n");
	if (!msghdr_has(p, hlen, "Message-ID"))
		alen += (size_t)snprintf(add + alen, sizeof(add) - alen,
		    "Message-ID: <%s@%s>\r\n", id, q.env->conf->hostname);
	if (!msghdr_has(p, hlen, "Date")) {
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		alen += (size_t)snprintf(add + alen, sizeof(add) - alen,
		    "Date: %s\r\n", date);
	}
	if (alen == (need_nl ? 2u : 0u))
		return 0;
	/* with no empty line after the header, the body needs one */
	*outlen = n + alen;
	*out = xmalloc(*outlen);
	memcpy(*out, p, hlen);
	memcpy(*out + hlen, add, alen);
	memcpy(*out + hlen + alen, p + hlen, n - hlen);
	return 1;
}
