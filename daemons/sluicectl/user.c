/*
 * user.c - sluicectl user add|passwd|del|show|disable|enable|senders|
 * limits|list
 *
 * Keys and fields are those of doc/redis-schema.md ("Users").  Every
 * change runs as WATCH user:LOGIN user:LOGIN:senders, a look at the
 * record, then one MULTI ... EXEC that also sets `updated`, increments
 * `gen` and publishes the login on P userchg, so that authd forgets
 * what it cached for the user at once; when another sluicectl changed
 * the user between our look and our write, EXEC fails and we look
 * again.
 *
 * A new user's gen starts at the creation time in milliseconds rather
 * than at 1: a login deleted and added again then never repeats a
 * generation an authd may still have cached.
 *
 * Passwords are hashed here (argon2id, crypto_pwhash_str with the
 * interactive limits, which authd's dummy hash uses too), read from
 * standard input one byte at a time so that no copy stays in a stdio
 * buffer, and wiped once hashed.  The hash is never printed.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <sodium.h>

#include "auth_proto.h"
#include "compat/compat.h"
#include "conf.h"
#include "json.h"
#include "log.h"
#include "sluicectl.h"
#include "xmalloc.h"

#define USER_KEY_MAX	512	/* prefix (<= 64) + "user:" + login + ... */
#define USER_TRIES	10	/* EXEC refused: someone changed the user */
#define USER_PW_LEN	20	/* characters of a generated password */
#define USER_MAX_SENDERS 256	/* --sender options of one add */
#define USER_MSGS_MAX	10000000	/* as limits.user_messages_per_hour */
#define USER_RCPTS_MAX	100000000	/* and user_recipients_per_hour */

/*
 * No 0/O, 1/l/I: a generated password is read off a screen and typed
 * into a mail client.  56 symbols, 20 of them: about 116 bits.
 */
static const char user_alphabet[] =
    "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";

struct ukeys {
	char	 login[AP_MAX_LOGIN];
	char	 user[USER_KEY_MAX];
	char	 senders[USER_KEY_MAX];
	char	 users[USER_KEY_MAX];
	char	 chg[USER_KEY_MAX];
};

/* the options a verb may take, and what was given */
#define UO_PASSWORD	0x01	/* --password-stdin */
#define UO_SENDER	0x02	/* --sender PATTERN */
#define UO_LIMITS	0x04	/* --messages-per-hour, --recipients-per-hour */

struct uopts {
	const char	*verb;
	const char	*usage;
	const char	*args[4];	/* positional words */
	int		 nargs;
	int		 pw_stdin;
	const char	*senders[USER_MAX_SENDERS];
	int		 nsenders;
	long long	 msgs;		/* -1: not given */
	long long	 rcpts;
};

/* a user record as read back */
struct urec {
	redisReply	*hash;		/* HGETALL */
	redisReply	*senders;	/* SMEMBERS */
};

static void	user_usage(const struct uopts *) __attribute__((noreturn));
static void	user_opts(struct uopts *, int, int, char **, int, int);
static void	user_keys(struct ctl *, struct ukeys *, const char *);
static int	user_login_norm(const char *, char *, size_t);
static int	user_pattern_norm(const char *, char *, size_t);
static int	user_domain_ok(const char *);
static void	user_password(int, char *, size_t, int *);
static void	user_hash(const char *, char *);
static int	user_watch(struct ctl *, const struct ukeys *);
static void	user_unwatch(struct ctl *);
static int	user_touch(struct ctl *, const struct ukeys *);
static int	user_exec(struct ctl *, int);
static void	user_retry_fail(const struct ukeys *) __attribute__((noreturn));
static void	user_gone(const struct ukeys *) __attribute__((noreturn));
static void	user_read(struct ctl *, const struct ukeys *, struct urec *);
static void	user_append_read(struct ctl *, const struct ukeys *);
static void	user_get_read(struct ctl *, struct urec *);
static void	user_free_rec(struct urec *);
static const char *user_field(const struct urec *, const char *);
static long long user_num(const struct urec *, const char *);
static int	user_own_limit(const struct urec *, const char *, long long *);
static int	user_sort_cmp(const void *, const void *);
static const char **user_sorted(const redisReply *, size_t *);
static void	user_print_text(struct ctl *, const struct ukeys *,
		    const struct urec *);
static void	user_print_json(struct json *, struct ctl *, const char *,
		    const struct urec *);
static void	user_json_kbool(struct json *, const char *, int);
static void	user_limit_text(struct ctl *, const struct urec *,
		    const char *, long long);
static int	user_set_enabled(struct ctl *, int, char **, int);

/* user_usage - the one usage line of a verb */
static void
user_usage(const struct uopts *o)
{
	fprintf(stderr, "usage: sluicectl [-c file] user %s %s\n", o->verb,
	    o->usage);
	exit(1);
}

/*
 * user_opts - a verb's words: nargs positional ones, and the options
 * of allowed (UO_*), as "--opt VALUE" or "--opt=VALUE", anywhere
 */
static void
user_opts(struct uopts *o, int allowed, int argc, char **argv, int minargs,
    int maxargs)
{
	const char	*w, *val, *errstr;
	size_t		 len;
	int		 i, opts = 1;

	o->msgs = o->rcpts = -1;
	for (i = 0; i < argc; i++) {
		w = argv[i];
		if (!opts || w[0] != '-' || w[1] == '\0') {
			if (o->nargs >= maxargs)
				user_usage(o);
			o->args[o->nargs++] = w;
			continue;
		}
		if (strcmp(w, "--") == 0) {
			opts = 0;
			continue;
		}
		if ((allowed & UO_PASSWORD) &&
		    strcmp(w, "--password-stdin") == 0) {
			o->pw_stdin = 1;
			continue;
		}
		/* the rest take a value */
		val = strchr(w, '=');
		len = val != NULL ? (size_t)(val - w) : strlen(w);
		if (val != NULL)
			val++;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			user_usage(o);
		if ((allowed & UO_SENDER) && len == 8 &&
		    strncmp(w, "--sender", len) == 0) {
			if (o->nsenders >= USER_MAX_SENDERS)
				ctl_die("user %s: more than %d --sender "
				    "options", o->verb, USER_MAX_SENDERS);
			o->senders[o->nsenders++] = val;
		} else if ((allowed & UO_LIMITS) && len == 19 &&
		    strncmp(w, "--messages-per-hour", len) == 0) {
			o->msgs = strtonum(val, 0, USER_MSGS_MAX, &errstr);
			if (errstr != NULL)
				ctl_die("--messages-per-hour: %s is %s (0 to "
				    "%d)", val, errstr, USER_MSGS_MAX);
		} else if ((allowed & UO_LIMITS) && len == 21 &&
		    strncmp(w, "--recipients-per-hour", len) == 0) {
			o->rcpts = strtonum(val, 0, USER_RCPTS_MAX, &errstr);
			if (errstr != NULL)
				ctl_die("--recipients-per-hour: %s is %s (0 to "
				    "%d)", val, errstr, USER_RCPTS_MAX);
		} else
			user_usage(o);
	}
	if (o->nargs < minargs)
		user_usage(o);
}

/* user_keys - the user's keys; dies on a malformed login */
static void
user_keys(struct ctl *ctl, struct ukeys *k, const char *login)
{
	const char	*prefix = ctl->conf->redis.prefix;
	char		 shown[300];

	if (user_login_norm(login, k->login, sizeof(k->login)) == -1)
		ctl_die("bad login: %s: 1 to %d characters of printable "
		    "ASCII, no space and no ':'",
		    ctl_shown(login, shown, sizeof(shown)), AP_MAX_LOGIN - 1);
	snprintf(k->user, sizeof(k->user), "%suser:%s", prefix, k->login);
	snprintf(k->senders, sizeof(k->senders), "%suser:%s:senders", prefix,
	    k->login);
	snprintf(k->users, sizeof(k->users), "%susers", prefix);
	snprintf(k->chg, sizeof(k->chg), "%suserchg", prefix);
}

/*
 * user_login_norm - a login in the stored form: lower case, 1 to
 * AP_MAX_LOGIN - 1 bytes of printable ASCII without space.  No ':':
 * the login "a:senders" would have the key of a's sender set.
 */
static int
user_login_norm(const char *s, char *dst, size_t dstlen)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n + 1 >= dstlen || s[n] <= 0x20 || s[n] >= 0x7f ||
		    s[n] == ':')
			return -1;
		dst[n] = (char)tolower((unsigned char)s[n]);
	}
	dst[n] = '\0';
	return n > 0 ? 0 : -1;
}

/*
 * user_pattern_norm - "*", "@domain" or "local@domain", in lower case
 * (smtpd compares addresses without regard to case); the local part
 * a dot-atom (RFC 5322 3.2.3), the domain host names (A-labels for
 * internationalised ones)
 */
static int
user_pattern_norm(const char *s, char *dst, size_t dstlen)
{
	static const char	 atext[] = "!#$%&'*+-/=?^_`{|}~.";
	const char		*at;
	size_t			 n, i;

	n = strlen(s);
	if (n == 0 || n >= dstlen || n >= AP_MAX_PATTERN)
		return -1;
	for (i = 0; i <= n; i++)
		dst[i] = (char)tolower((unsigned char)s[i]);
	if (strcmp(dst, "*") == 0)
		return 0;
	if ((at = strchr(dst, '@')) == NULL || strchr(at + 1, '@') != NULL)
		return -1;
	if (at - dst > 64)
		return -1;
	for (i = 0; dst + i < at; i++) {
		if (!isalnum((unsigned char)dst[i]) &&
		    strchr(atext, dst[i]) == NULL)
			return -1;
		if (dst[i] == '.' && (i == 0 || dst + i + 1 == at ||
		    dst[i + 1] == '.'))
			return -1;
	}
	return user_domain_ok(at + 1) ? 0 : -1;
}

/* user_domain_ok - labels of letters, digits and inner hyphens */
static int
user_domain_ok(const char *d)
{
	size_t	 n = strlen(d), label = 0, i;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i <= n; i++) {
		if (d[i] == '.' || d[i] == '\0') {
			if (label == 0 || label > 63 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)d[i]) && d[i] != '-')
			return 0;
		if (d[i] == '-' && label == 0)
			return 0;
		label++;
	}
	return 1;
}

/*
 * user_password - one line of standard input without its line end
 * (LF or CRLF), or, without from_stdin, a new random one; *generated
 * says which
 */
static void
user_password(int from_stdin, char *pw, size_t pwlen, int *generated)
{
	size_t	 n = 0;
	ssize_t	 r;
	char	 c;

	*generated = !from_stdin;
	if (!from_stdin) {
		for (n = 0; n < USER_PW_LEN; n++)
			pw[n] = user_alphabet[randombytes_uniform(
			    sizeof(user_alphabet) - 1)];
		pw[n] = '\0';
		return;
	}
	for (;;) {
		do {
			r = read(STDIN_FILENO, &c, 1);
		} while (r == -1 && errno == EINTR);
		if (r == -1)
			ctl_die("standard input: %s", strerror(errno));
		if (r == 0 || c == '\n')
			break;
		if (c == '\0') {
			sodium_memzero(pw, pwlen);
			ctl_die("password: contains a NUL byte");
		}
		if (n + 1 >= pwlen) {
			sodium_memzero(pw, pwlen);
			ctl_die("password: longer than %zu bytes", pwlen - 1);
		}
		pw[n++] = c;
	}
	if (n > 0 && pw[n - 1] == '\r')
		n--;
	pw[n] = '\0';
	if (n == 0)
		ctl_die("password: empty");
}

/* user_hash - argon2id with the limits authd's dummy hash has */
static void
user_hash(const char *pw, char *out)
{
	if (crypto_pwhash_str(out, pw, strlen(pw),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		ctl_die("crypto_pwhash_str: out of memory");
}

/* user_watch - WATCH the user's keys; does the record exist? */
static int
user_watch(struct ctl *ctl, const struct ukeys *k)
{
	redisReply	*r;
	int		 exists;

	freeReplyObject(ctl_redis(ctl, "WATCH", k->user, k->senders,
	    (char *)NULL));
	r = ctl_redis(ctl, "EXISTS", k->user, (char *)NULL);
	exists = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	return exists;
}

static void
user_unwatch(struct ctl *ctl)
{
	freeReplyObject(ctl_redis(ctl, "UNWATCH", (char *)NULL));
}

/* user_touch - what every change ends with; the number of commands */
static int
user_touch(struct ctl *ctl, const struct ukeys *k)
{
	char	 now[32];

	snprintf(now, sizeof(now), "%lld", ctl->now);
	ctl_redis_append(ctl, "HSET", k->user, "updated", now, (char *)NULL);
	ctl_redis_append(ctl, "HINCRBY", k->user, "gen", "1", (char *)NULL);
	ctl_redis_append(ctl, "PUBLISH", k->chg, k->login, (char *)NULL);
	return 3;
}

/*
 * user_exec - EXEC after MULTI and n commands; 0 done, -1 when a
 * watched key changed and nothing was written
 */
static int
user_exec(struct ctl *ctl, int n)
{
	redisReply	*r;
	size_t		 i;
	int		 rc = 0;

	ctl_redis_append(ctl, "EXEC", (char *)NULL);
	for (i = 0; i < (size_t)n + 1; i++)		/* OK, QUEUED ... */
		freeReplyObject(ctl_redis_get(ctl));
	r = ctl_redis_get(ctl);
	if (r->type == REDIS_REPLY_NIL)
		rc = -1;
	else if (r->type == REDIS_REPLY_ARRAY) {
		for (i = 0; i < r->elements; i++)
			if (r->element[i]->type == REDIS_REPLY_ERROR)
				ctl_die("redis: EXEC: %s", r->element[i]->str);
	}
	freeReplyObject(r);
	return rc;
}

static void
user_retry_fail(const struct ukeys *k)
{
	ctl_die("%s: changed by someone else %d times meanwhile; try again",
	    k->login, USER_TRIES);
}

static void
user_gone(const struct ukeys *k)
{
	ctl_die("no such user: %s", k->login);
}

/* user add LOGIN [--password-stdin] [--sender PATTERN]... */
int
user_add(struct ctl *ctl, int argc, char **argv)
{
	struct uopts	 o = { .verb = "add",
			    .usage = "LOGIN [--password-stdin] "
			    "[--sender PATTERN]..." };
	struct ukeys	 k;
	char		 pw[AP_MAX_PASSWORD], hash[crypto_pwhash_STRBYTES];
	char		 now[32], gen[32], shown[100];
	char		 (*pats)[AP_MAX_PATTERN];
	int		 i, n, try, generated;

	user_opts(&o, UO_PASSWORD | UO_SENDER, argc, argv, 1, 1);
	user_keys(ctl, &k, o.args[0]);
	pats = xcalloc((size_t)o.nsenders + 1, sizeof(*pats));
	for (i = 0; i < o.nsenders; i++)
		if (user_pattern_norm(o.senders[i], pats[i],
		    sizeof(pats[i])) == -1)
			ctl_die("bad sender pattern: %s: user@domain, @domain "
			    "or *", ctl_shown(o.senders[i], shown,
			    sizeof(shown)));

	/* before the password is asked for or hashed */
	if (user_watch(ctl, &k)) {
		user_unwatch(ctl);
		ctl_die("user exists: %s", k.login);
	}
	user_unwatch(ctl);
	user_password(o.pw_stdin, pw, sizeof(pw), &generated);
	user_hash(pw, hash);
	if (!generated)
		sodium_memzero(pw, sizeof(pw));

	snprintf(now, sizeof(now), "%lld", ctl->now);
	snprintf(gen, sizeof(gen), "%lld", ctl->now_ms);
	for (try = 0; try < USER_TRIES; try++) {
		if (user_watch(ctl, &k)) {
			user_unwatch(ctl);
			sodium_memzero(pw, sizeof(pw));
			ctl_die("user exists: %s", k.login);
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "HSET", k.user, "login", k.login,
		    "hash", hash, "enabled", "1", "created", now, "updated",
		    now, "gen", gen, (char *)NULL);
		ctl_redis_append(ctl, "DEL", k.senders, (char *)NULL);
		n = 2;
		for (i = 0; i < o.nsenders; i++, n++)
			ctl_redis_append(ctl, "SADD", k.senders, pats[i],
			    (char *)NULL);
		ctl_redis_append(ctl, "SADD", k.users, k.login, (char *)NULL);
		ctl_redis_append(ctl, "PUBLISH", k.chg, k.login, (char *)NULL);
		n += 2;
		if (user_exec(ctl, n) == 0)
			break;
	}
	sodium_memzero(hash, sizeof(hash));
	free(pats);
	if (try == USER_TRIES) {
		sodium_memzero(pw, sizeof(pw));
		user_retry_fail(&k);
	}
	/* the generated password, alone on its line, once */
	if (generated)
		printf("%s\n", pw);
	else
		printf("%s: added\n", k.login);
	sodium_memzero(pw, sizeof(pw));
	return 0;
}

/* user passwd LOGIN [--password-stdin] */
int
user_passwd(struct ctl *ctl, int argc, char **argv)
{
	struct uopts	 o = { .verb = "passwd",
			    .usage = "LOGIN [--password-stdin]" };
	struct ukeys	 k;
	char		 pw[AP_MAX_PASSWORD], hash[crypto_pwhash_STRBYTES];
	int		 try, n, generated;

	user_opts(&o, UO_PASSWORD, argc, argv, 1, 1);
	user_keys(ctl, &k, o.args[0]);
	if (!user_watch(ctl, &k)) {
		user_unwatch(ctl);
		user_gone(&k);
	}
	user_unwatch(ctl);
	user_password(o.pw_stdin, pw, sizeof(pw), &generated);
	user_hash(pw, hash);
	if (!generated)
		sodium_memzero(pw, sizeof(pw));
	for (try = 0; try < USER_TRIES; try++) {
		if (!user_watch(ctl, &k)) {
			user_unwatch(ctl);
			sodium_memzero(pw, sizeof(pw));
			user_gone(&k);
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "HSET", k.user, "hash", hash,
		    (char *)NULL);
		n = 1 + user_touch(ctl, &k);
		if (user_exec(ctl, n) == 0)
			break;
	}
	sodium_memzero(hash, sizeof(hash));
	if (try == USER_TRIES) {
		sodium_memzero(pw, sizeof(pw));
		user_retry_fail(&k);
	}
	if (generated)
		printf("%s\n", pw);
	else
		printf("%s: password changed\n", k.login);
	sodium_memzero(pw, sizeof(pw));
	return 0;
}

/* user del LOGIN */
int
user_del(struct ctl *ctl, int argc, char **argv)
{
	struct ukeys	 k;
	int		 try;

	user_keys(ctl, &k, argv[0]);
	for (try = 0; try < USER_TRIES; try++) {
		if (!user_watch(ctl, &k)) {
			user_unwatch(ctl);
			user_gone(&k);
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "DEL", k.user, k.senders, (char *)NULL);
		ctl_redis_append(ctl, "SREM", k.users, k.login, (char *)NULL);
		ctl_redis_append(ctl, "PUBLISH", k.chg, k.login, (char *)NULL);
		if (user_exec(ctl, 3) == 0)
			break;
	}
	if (try == USER_TRIES)
		user_retry_fail(&k);
	printf("%s: deleted\n", k.login);
	return 0;
}

int
user_disable(struct ctl *ctl, int argc, char **argv)
{
	return user_set_enabled(ctl, argc, argv, 0);
}

int
user_enable(struct ctl *ctl, int argc, char **argv)
{
	return user_set_enabled(ctl, argc, argv, 1);
}

/* user_set_enabled - disable or enable; doing it twice is no error */
static int
user_set_enabled(struct ctl *ctl, int argc, char **argv, int on)
{
	struct ukeys	 k;
	int		 try, n;

	user_keys(ctl, &k, argv[0]);
	for (try = 0; try < USER_TRIES; try++) {
		if (!user_watch(ctl, &k)) {
			user_unwatch(ctl);
			user_gone(&k);
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, "HSET", k.user, "enabled", on ? "1" : "0",
		    (char *)NULL);
		n = 1 + user_touch(ctl, &k);
		if (user_exec(ctl, n) == 0)
			break;
	}
	if (try == USER_TRIES)
		user_retry_fail(&k);
	printf("%s: %s\n", k.login, on ? "enabled" : "disabled");
	return 0;
}

/* user senders LOGIN add|del PATTERN */
int
user_senders(struct ctl *ctl, int argc, char **argv)
{
	struct uopts	 o = { .verb = "senders",
			    .usage = "LOGIN add|del PATTERN" };
	struct ukeys	 k;
	redisReply	*r;
	char		 pat[AP_MAX_PATTERN], shown[100];
	int		 try, n, add, member;

	if (strcmp(argv[1], "add") == 0)
		add = 1;
	else if (strcmp(argv[1], "del") == 0)
		add = 0;
	else
		user_usage(&o);
	user_keys(ctl, &k, argv[0]);
	if (user_pattern_norm(argv[2], pat, sizeof(pat)) == -1)
		ctl_die("bad sender pattern: %s: user@domain, @domain or *",
		    ctl_shown(argv[2], shown, sizeof(shown)));
	for (try = 0; try < USER_TRIES; try++) {
		if (!user_watch(ctl, &k)) {
			user_unwatch(ctl);
			user_gone(&k);
		}
		r = ctl_redis(ctl, "SISMEMBER", k.senders, pat, (char *)NULL);
		member = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
		freeReplyObject(r);
		if (!add && !member) {
			user_unwatch(ctl);
			ctl_warn("%s: no sender pattern %s", k.login, pat);
			return 1;
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		ctl_redis_append(ctl, add ? "SADD" : "SREM", k.senders, pat,
		    (char *)NULL);
		n = 1 + user_touch(ctl, &k);
		if (user_exec(ctl, n) == 0)
			break;
	}
	if (try == USER_TRIES)
		user_retry_fail(&k);
	printf("%s: sender %s %s\n", k.login, pat, add ? "added" : "removed");
	return 0;
}

/*
 * user limits LOGIN [--messages-per-hour N] [--recipients-per-hour N]
 *
 * N = 0 removes the user's own limit: the configuration's default
 * (limits.user_*_per_hour) applies again.  Without options the
 * limits are only shown.
 */
int
user_limits(struct ctl *ctl, int argc, char **argv)
{
	struct uopts	 o = { .verb = "limits",
			    .usage = "LOGIN [--messages-per-hour N] "
			    "[--recipients-per-hour N]" };
	struct ukeys	 k;
	struct urec	 u;
	char		 v[32];
	int		 try, n;

	user_opts(&o, UO_LIMITS, argc, argv, 1, 1);
	user_keys(ctl, &k, o.args[0]);
	for (try = 0; o.msgs != -1 || o.rcpts != -1; try++) {
		if (try == USER_TRIES)
			user_retry_fail(&k);
		if (!user_watch(ctl, &k)) {
			user_unwatch(ctl);
			user_gone(&k);
		}
		ctl_redis_append(ctl, "MULTI", (char *)NULL);
		n = 0;
		if (o.msgs == 0)
			ctl_redis_append(ctl, "HDEL", k.user,
			    "messages_per_hour", (char *)NULL);
		else if (o.msgs > 0) {
			snprintf(v, sizeof(v), "%lld", o.msgs);
			ctl_redis_append(ctl, "HSET", k.user,
			    "messages_per_hour", v, (char *)NULL);
		}
		n += o.msgs != -1;
		if (o.rcpts == 0)
			ctl_redis_append(ctl, "HDEL", k.user,
			    "recipients_per_hour", (char *)NULL);
		else if (o.rcpts > 0) {
			snprintf(v, sizeof(v), "%lld", o.rcpts);
			ctl_redis_append(ctl, "HSET", k.user,
			    "recipients_per_hour", v, (char *)NULL);
		}
		n += o.rcpts != -1;
		n += user_touch(ctl, &k);
		if (user_exec(ctl, n) == 0)
			break;
	}
	user_read(ctl, &k, &u);
	if (u.hash->elements == 0)
		user_gone(&k);
	user_limit_text(ctl, &u, "messages_per_hour",
	    ctl->conf->limits.user_messages_per_hour);
	user_limit_text(ctl, &u, "recipients_per_hour",
	    ctl->conf->limits.user_recipients_per_hour);
	user_free_rec(&u);
	return 0;
}

/* user show LOGIN [--json] */
int
user_show(struct ctl *ctl, int argc, char **argv)
{
	struct ukeys	 k;
	struct urec	 u;
	struct json	 j;

	user_keys(ctl, &k, argv[0]);
	user_read(ctl, &k, &u);
	if (u.hash->elements == 0)
		user_gone(&k);
	if (ctl->json) {
		json_init(&j, stdout);
		user_print_json(&j, ctl, k.login, &u);
		if (json_finish(&j) == -1)
			ctl_die("standard output: %s", strerror(errno));
	} else
		user_print_text(ctl, &k, &u);
	user_free_rec(&u);
	return 0;
}

/* user list [--json] - every user, in the order of their logins */
int
user_list(struct ctl *ctl, int argc, char **argv)
{
	struct ukeys	 k;
	struct urec	*recs;
	struct json	 j;
	redisReply	*all;
	const char	**logins;
	size_t		 i, m, n, shown = 0;
	long long	 v;

	snprintf(k.users, sizeof(k.users), "%susers", ctl->conf->redis.prefix);
	all = ctl_redis(ctl, "SMEMBERS", k.users, (char *)NULL);
	logins = user_sorted(all, &n);
	/* a member that is no login (written by hand) is passed over */
	for (i = m = 0; i < n; i++)
		if (user_login_norm(logins[i], k.login, sizeof(k.login)) == 0 &&
		    strcmp(k.login, logins[i]) == 0)
			logins[m++] = logins[i];
	n = m;
	recs = xcalloc(n + 1, sizeof(*recs));
	/* one round trip for all of them */
	for (i = 0; i < n; i++) {
		struct ukeys	 ki;

		user_keys(ctl, &ki, logins[i]);
		user_append_read(ctl, &ki);
	}
	for (i = 0; i < n; i++)
		user_get_read(ctl, &recs[i]);

	if (ctl->json) {
		json_init(&j, stdout);
		json_array_begin(&j);
	}
	for (i = 0; i < n; i++) {
		/* in the set but deleted meanwhile: not a user */
		if (recs[i].hash->elements == 0)
			continue;
		shown++;
		if (ctl->json) {
			user_print_json(&j, ctl, logins[i], &recs[i]);
			continue;
		}
		ctl_print(stdout, logins[i], strlen(logins[i]),
		    CTL_PRINT_LINE);
		printf(" %s senders=%zu",
		    strcmp(user_field(&recs[i], "enabled"), "1") == 0 ?
		    "enabled" : "disabled", recs[i].senders->elements);
		if (user_own_limit(&recs[i], "messages_per_hour", &v) == 0)
			printf(" messages_per_hour=%lld", v);
		else
			printf(" messages_per_hour=%d(default)",
			    ctl->conf->limits.user_messages_per_hour);
		if (user_own_limit(&recs[i], "recipients_per_hour", &v) == 0)
			printf(" recipients_per_hour=%lld\n", v);
		else
			printf(" recipients_per_hour=%d(default)\n",
			    ctl->conf->limits.user_recipients_per_hour);
	}
	if (ctl->json) {
		json_array_end(&j);
		if (json_finish(&j) == -1)
			ctl_die("standard output: %s", strerror(errno));
	} else
		printf("%zu user%s\n", shown, shown == 1 ? "" : "s");
	for (i = 0; i < n; i++)
		user_free_rec(&recs[i]);
	free(recs);
	free(logins);
	freeReplyObject(all);
	return 0;
}

/* user_read - the record and its senders, in one round trip */
static void
user_read(struct ctl *ctl, const struct ukeys *k, struct urec *u)
{
	user_append_read(ctl, k);
	user_get_read(ctl, u);
}

static void
user_append_read(struct ctl *ctl, const struct ukeys *k)
{
	ctl_redis_append(ctl, "HGETALL", k->user, (char *)NULL);
	ctl_redis_append(ctl, "SMEMBERS", k->senders, (char *)NULL);
}

static void
user_get_read(struct ctl *ctl, struct urec *u)
{
	u->hash = ctl_redis_get(ctl);
	u->senders = ctl_redis_get(ctl);
	if (u->hash->type != REDIS_REPLY_ARRAY ||
	    u->senders->type != REDIS_REPLY_ARRAY)
		ctl_die("redis: a user record is not a hash and a set");
}

static void
user_free_rec(struct urec *u)
{
	freeReplyObject(u->hash);
	freeReplyObject(u->senders);
}

/* user_field - a field of the record, "" when absent */
static const char *
user_field(const struct urec *u, const char *name)
{
	size_t	 i;

	for (i = 0; i + 1 < u->hash->elements; i += 2)
		if (u->hash->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(u->hash->element[i]->str, name) == 0 &&
		    u->hash->element[i + 1]->type == REDIS_REPLY_STRING)
			return u->hash->element[i + 1]->str;
	return "";
}

static long long
user_num(const struct urec *u, const char *name)
{
	long long	 v;

	return ctl_num(user_field(u, name), &v) == 0 ? v : 0;
}

/* user_own_limit - the user's own limit; -1 when the default applies */
static int
user_own_limit(const struct urec *u, const char *name, long long *v)
{
	return ctl_num(user_field(u, name), v) == 0 && *v > 0 ? 0 : -1;
}

static int
user_sort_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* user_sorted - the strings of a set reply, sorted; the reply owns them */
static const char **
user_sorted(const redisReply *r, size_t *np)
{
	const char	**v;
	size_t		 i, n = 0;

	if (r->type != REDIS_REPLY_ARRAY)
		ctl_die("redis: SMEMBERS: not a set");
	v = xcalloc(r->elements + 1, sizeof(*v));
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING)
			v[n++] = r->element[i]->str;
	qsort(v, n, sizeof(*v), user_sort_cmp);
	*np = n;
	return v;
}

/* user_limit_text - "name: N" or "name: N (default)" */
static void
user_limit_text(struct ctl *ctl, const struct urec *u, const char *name,
    long long def)
{
	long long	 v;

	if (user_own_limit(u, name, &v) == 0)
		printf("%s: %lld\n", name, v);
	else
		printf("%s: %lld (default)\n", name, def);
}

/* user_print_text - one "field: value" line each; never the hash */
static void
user_print_text(struct ctl *ctl, const struct ukeys *k, const struct urec *u)
{
	const char	**pats;
	char		 t[64];
	size_t		 i, n;

	printf("login: %s\n", k->login);
	printf("enabled: %s\n", strcmp(user_field(u, "enabled"), "1") == 0 ?
	    "yes" : "no");
	printf("password: %s\n", user_field(u, "hash")[0] != '\0' ? "set" :
	    "not set");
	pats = user_sorted(u->senders, &n);
	if (n == 0)
		printf("senders: none\n");
	for (i = 0; i < n; i++) {
		printf("sender: ");
		ctl_print(stdout, pats[i], strlen(pats[i]), CTL_PRINT_LINE);
		printf("\n");
	}
	free(pats);
	user_limit_text(ctl, u, "messages_per_hour",
	    ctl->conf->limits.user_messages_per_hour);
	user_limit_text(ctl, u, "recipients_per_hour",
	    ctl->conf->limits.user_recipients_per_hour);
	ctl_time(t, sizeof(t), user_num(u, "created"));
	printf("created: %s\n", t);
	ctl_time(t, sizeof(t), user_num(u, "updated"));
	printf("updated: %s\n", t);
}

/*
 * user_print_json - { login, enabled, senders, messages_per_hour,
 * recipients_per_hour (null: the default), created, updated }
 */
static void
user_print_json(struct json *j, struct ctl *ctl, const char *login,
    const struct urec *u)
{
	const char	**pats;
	size_t		 i, n;
	long long	 v;

	json_object_begin(j);
	json_kstr(j, "login", login);
	user_json_kbool(j, "enabled", strcmp(user_field(u, "enabled"),
	    "1") == 0);
	json_key(j, "senders");
	json_array_begin(j);
	pats = user_sorted(u->senders, &n);
	for (i = 0; i < n; i++)
		json_str(j, pats[i]);
	free(pats);
	json_array_end(j);
	json_key(j, "messages_per_hour");
	if (user_own_limit(u, "messages_per_hour", &v) == 0)
		json_int(j, v);
	else
		json_null(j);
	json_key(j, "recipients_per_hour");
	if (user_own_limit(u, "recipients_per_hour", &v) == 0)
		json_int(j, v);
	else
		json_null(j);
	json_kint(j, "created", user_num(u, "created"));
	json_kint(j, "updated", user_num(u, "updated"));
	json_object_end(j);
}

/*
 * user_json_kbool - json.h has no boolean; this is json_kint's shape
 * inside an object: json_key() wrote the separator, and after a value
 * the object wants its next key
 */
static void
user_json_kbool(struct json *j, const char *key, int v)
{
	json_key(j, key);
	fputs(v ? "true" : "false", j->fp);
	j->want_key = 1;
}
