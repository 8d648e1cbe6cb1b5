/*
 * authd - the authentication service: verifies credentials against the
 * user store in Redis
 *
 * smtpd sends the login and password of an AUTH command (AUTH_REQ) and
 * asks for hourly allowances (RATE_REQ); auth.c answers each.  One
 * Redis connection carries all commands; a second, quiet one only
 * listens on P userchg so that what sluicectl changes is forgotten
 * from the credential cache at once.  Passwords are checked on the
 * verify.c threads, the only ones in sluice (STYLE.md section 14).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <sodium.h>

#include "authd.h"
#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "log.h"
#include "redis_ev.h"

struct authd		 authd;
static char		*redis_password;

static void	authd_setup(struct child_env *);
static void	authd_configure(struct child_env *, struct conf *);
static void	authd_peer_msg(struct child_env *, struct child_peer *,
		    struct ipc_msg *);
static void	authd_redis_state(struct redis_ev *, int, void *);
static void	authd_sub_state(struct redis_ev *, int, void *);
static void	authd_on_userchg(redisAsyncContext *, void *, void *);
static void	authd_make_dummy(void);

static const struct child_ops authd_ops = {
	.kind = PROC_AUTHD,
	.sandbox = SANDBOX_AUTHD,
	.setup = authd_setup,
	.configure = authd_configure,
	.peer_msg = authd_peer_msg,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &authd_ops);
}

/* authd_setup - the Redis password file is still open to us here */
static void
authd_setup(struct child_env *env)
{
	char	 err[512];

	authd.env = env;
	if (env->conf->redis.password_file != NULL) {
		redis_password = redis_ev_read_password(
		    env->conf->redis.password_file, err, sizeof(err));
		if (redis_password == NULL)
			fatalx("%s: %s", env->name, err);
	}
}

/*
 * authd_configure - the first time: connections, workers, cache; a
 * reload changes only limits, which are read from env->conf at use
 */
static void
authd_configure(struct child_env *env, struct conf *old)
{
	authd.env = env;
	if (old != NULL)
		return;
	authd_make_dummy();
	cache_init();
	verify_init(env->base);
	authd.redis = redis_ev_new(env->base, env->name, env->conf,
	    redis_password, authd_redis_state, env);
	authd.sub = redis_ev_new(env->base, env->name, env->conf,
	    redis_password, authd_sub_state, env);
	redis_ev_quiet(authd.sub);
	if (redis_password != NULL) {
		sodium_memzero(redis_password, strlen(redis_password));
		free(redis_password);
		redis_password = NULL;
	}
}

/*
 * authd_make_dummy - a hash of a random password, made with the
 * parameters sluicectl uses, so that an unknown or disabled login costs
 * the same argon2id run as a known one and timing tells nothing
 */
static void
authd_make_dummy(void)
{
	unsigned char	 rnd[32];
	char		 pw[sizeof(rnd) * 2 + 1];

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(pw, sizeof(pw), rnd, sizeof(rnd));
	if (crypto_pwhash_str(authd.dummy_hash, pw, strlen(pw),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		fatalx("%s: crypto_pwhash_str: out of memory",
		    authd.env->name);
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(rnd, sizeof(rnd));
}

/* authd_peer_msg - only smtpd has business with us */
static void
authd_peer_msg(struct child_env *env, struct child_peer *p,
    struct ipc_msg *m)
{
	if (p->kind == PROC_SMTPD) {
		if (m == NULL)
			auth_peer_gone(p);
		else
			auth_peer_msg(p, m);
		return;
	}
	if (m != NULL)
		log_warnx("%s: %s sent %s; nothing to do with it", env->name,
		    ipc_name(p->ipc), ipc_type_str(m->type));
}

static void
authd_redis_state(struct redis_ev *r, int up, void *arg)
{
	struct child_env	*env = arg;

	log_debug("%s: redis %s", env->name, up ? "up" : "down");
}

/*
 * authd_sub_state - (re)subscribe; what was announced while we were
 * not listening is lost, so the cache starts over
 */
static void
authd_sub_state(struct redis_ev *r, int up, void *arg)
{
	redisAsyncContext	*ac;
	char			 chan[AUTHD_KEY_MAX];

	if (!up || (ac = redis_ev_context(r)) == NULL)
		return;
	cache_clear();
	if (authd_key(chan, "userchg", NULL) == -1)
		return;
	if (redisAsyncCommand(ac, authd_on_userchg, NULL, "SUBSCRIBE %s",
	    chan) != REDIS_OK)
		log_warnx("%s: cannot subscribe to %s", authd.env->name, chan);
}

/* authd_on_userchg - sluicectl changed a user: forget its verdicts */
static void
authd_on_userchg(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	char		 login[AP_MAX_LOGIN];
	size_t		 i;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements < 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(rep->element[0]->str, "message") != 0 ||
	    rep->element[2]->type != REDIS_REPLY_STRING)
		return;
	if (rep->element[2]->len >= sizeof(login)) {
		cache_clear();
		return;
	}
	for (i = 0; i < rep->element[2]->len; i++)
		login[i] = (char)tolower(
		    (unsigned char)rep->element[2]->str[i]);
	login[i] = '\0';
	log_debug("%s: userchg %s", authd.env->name,
	    authd_login_ok(login) ? login : "(bad login)");
	cache_forget(login);
}

/*
 * authd_key - "PREFIXkind" or "PREFIXkind:name" into a buffer of
 * AUTHD_KEY_MAX bytes; -1 if it does not fit
 */
int
authd_key(char *dst, const char *kind, const char *name)
{
	int	 n;

	if (name == NULL)
		n = snprintf(dst, AUTHD_KEY_MAX, "%s%s",
		    authd.env->conf->redis.prefix, kind);
	else
		n = snprintf(dst, AUTHD_KEY_MAX, "%s%s:%s",
		    authd.env->conf->redis.prefix, kind, name);
	return n < 0 || n >= AUTHD_KEY_MAX ? -1 : 0;
}

/*
 * authd_command - send one command of C-string words; -1 (and no
 * callback, ever) when Redis is not up or hiredis refuses it
 */
int
authd_command(void (*fn)(struct redisAsyncContext *, void *, void *),
    void *arg, int argc, const char **argv)
{
	redisAsyncContext	*ac;
	size_t			 lens[16];
	int			 i;

	if (authd.redis == NULL || (ac = redis_ev_context(authd.redis)) ==
	    NULL)
		return -1;
	log_assert(argc <= 16);
	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	return redisAsyncCommandArgv(ac, fn, arg, argc, argv, lens) ==
	    REDIS_OK ? 0 : -1;
}

/*
 * authd_login_ok - the shape sluicectl gives logins: lower case, 1 to
 * AP_MAX_LOGIN - 1 bytes of printable ASCII, no space and no ':' (a
 * ':' could make "user:a:senders" the record of another login)
 */
int
authd_login_ok(const char *s)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (s[n] <= 0x20 || s[n] >= 0x7f || s[n] == ':' ||
		    (s[n] >= 'A' && s[n] <= 'Z'))
			return 0;
	return n > 0 && n < AP_MAX_LOGIN;
}
