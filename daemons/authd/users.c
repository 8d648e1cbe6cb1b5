/*
 * users.c - read one user record: HGETALL P user:LOGIN and SMEMBERS
 * P user:LOGIN:senders, pipelined (one round trip)
 *
 * The fields are those of doc/redis-schema.md; a limit that is absent
 * (or not a number) is the configuration's default.  A stored hash that
 * does not fit or is not a crypto_pwhash_str string is unusable: auth.c
 * then verifies against the dummy hash, so the answer (and its time) is
 * that of a wrong password.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "authd.h"
#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "log.h"
#include "xmalloc.h"

struct users_fetch {
	struct auth_user	*u;
	authd_done_fn		*fn;
	void			*arg;
	int			 pending;	/* replies still to come */
	int			 err;
};

static void	users_on_hash(redisAsyncContext *, void *, void *);
static void	users_on_senders(redisAsyncContext *, void *, void *);
static void	users_reply_done(struct users_fetch *);
static int	users_cmp(const void *, const void *);
static uint32_t	users_limit(const char *, uint32_t);

/*
 * users_fetch - fill u for login, then fn(arg, 0), or fn(arg, -1) when
 * Redis failed; returns -1 (and never calls fn) when nothing was sent
 */
int
users_fetch(const char *login, struct auth_user *u, authd_done_fn *fn,
    void *arg)
{
	struct users_fetch	*f;
	char			 key[AUTHD_KEY_MAX], skey[AUTHD_KEY_MAX];
	const char		*argv[2];

	memset(u, 0, sizeof(*u));
	if (authd_key(key, "user", login) == -1 ||
	    snprintf(skey, sizeof(skey), "%s:senders", key) >=
	    (int)sizeof(skey))
		return -1;
	f = xcalloc(1, sizeof(*f));
	f->u = u;
	f->fn = fn;
	f->arg = arg;

	argv[0] = "HGETALL";
	argv[1] = key;
	if (authd_command(users_on_hash, f, 2, argv) == -1) {
		free(f);
		return -1;
	}
	f->pending++;
	argv[0] = "SMEMBERS";
	argv[1] = skey;
	if (authd_command(users_on_senders, f, 2, argv) == -1)
		f->err = 1;	/* the HGETALL callback finishes it */
	else
		f->pending++;
	return 0;
}

/* users_on_hash - the record's fields; absent limits are the defaults */
static void
users_on_hash(redisAsyncContext *ac, void *r, void *arg)
{
	struct users_fetch	*f = arg;
	struct auth_user	*u = f->u;
	const struct conf	*conf = authd.env->conf;
	redisReply		*rep = r, *k, *v;
	const char		*errstr;
	size_t			 i;

	u->messages = (uint32_t)conf->limits.user_messages_per_hour;
	u->recipients = (uint32_t)conf->limits.user_recipients_per_hour;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
			log_warnx("%s: redis: HGETALL user: %.200s",
			    authd.env->name, rep->str);
		f->err = 1;
		users_reply_done(f);
		return;
	}
	for (i = 0; i + 1 < rep->elements; i += 2) {
		k = rep->element[i];
		v = rep->element[i + 1];
		if (k->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING)
			continue;
		u->found = 1;
		if (strcmp(k->str, "hash") == 0) {
			if (v->len >= sizeof(u->hash) ||
			    strlen(v->str) != v->len ||
			    strncmp(v->str, "$argon2", 7) != 0 ||
			    strlcpy(u->hash, v->str, sizeof(u->hash)) >=
			    sizeof(u->hash))
				u->hash[0] = '\0';
		} else if (strcmp(k->str, "enabled") == 0)
			u->enabled = strcmp(v->str, "1") == 0;
		else if (strcmp(k->str, "gen") == 0) {
			u->gen = (uint64_t)strtonum(v->str, 0, LLONG_MAX,
			    &errstr);
			if (errstr != NULL)
				u->gen = 0;
		} else if (strcmp(k->str, "messages_per_hour") == 0)
			u->messages = users_limit(v->str, u->messages);
		else if (strcmp(k->str, "recipients_per_hour") == 0)
			u->recipients = users_limit(v->str, u->recipients);
	}
	users_reply_done(f);
}

/* users_on_senders - the patterns, sorted, joined by '\n', bounded */
static void
users_on_senders(redisAsyncContext *ac, void *r, void *arg)
{
	struct users_fetch	*f = arg;
	struct auth_user	*u = f->u;
	redisReply		*rep = r;
	const char		**v;
	size_t			 i, n = 0, off = 0, len;
	int			 dropped = 0;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		f->err = 1;
		users_reply_done(f);
		return;
	}
	/* hiredis caps the elements of a reply; this is small then */
	v = xreallocarray(NULL, rep->elements + 1, sizeof(*v));
	for (i = 0; i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING &&
		    rep->element[i]->len > 0 &&
		    rep->element[i]->len < AP_MAX_PATTERN &&
		    strlen(rep->element[i]->str) == rep->element[i]->len &&
		    strchr(rep->element[i]->str, '\n') == NULL)
			v[n++] = rep->element[i]->str;
	qsort(v, n, sizeof(*v), users_cmp);
	for (i = 0; i < n; i++) {
		len = strlen(v[i]);
		/* a pattern that does not fit whole is left out, not cut */
		if (off + (off > 0) + len >= sizeof(u->senders)) {
			dropped++;
			continue;
		}
		if (off > 0)
			u->senders[off++] = '\n';
		memcpy(u->senders + off, v[i], len);
		off += len;
	}
	u->senders[off] = '\0';
	if (dropped)
		log_warnx("%s: %d sender patterns left out: more than %d "
		    "bytes", authd.env->name, dropped, AP_MAX_SENDERS);
	free(v);
	users_reply_done(f);
}

/* users_reply_done - the last of the two replies hands the record over */
static void
users_reply_done(struct users_fetch *f)
{
	if (--f->pending > 0)
		return;
	f->fn(f->arg, f->err ? -1 : 0);
	free(f);
}

static int
users_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* users_limit - a per-hour limit from the record, or the default */
static uint32_t
users_limit(const char *s, uint32_t def)
{
	const char	*errstr;
	long long	 v;

	v = strtonum(s, 1, UINT32_MAX, &errstr);
	return errstr == NULL ? (uint32_t)v : def;
}
