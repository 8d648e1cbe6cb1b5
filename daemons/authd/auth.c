/*
 * auth.c - one AUTH_REQ or RATE_REQ from smtpd, from frame to answer
 *
 * AUTH_REQ: the failure counters, the user record and its senders are
 * asked for in one pipelined round trip.  A block answers AP_BLOCKED
 * at once.  Otherwise the password is verified - against the user's
 * hash, or against the dummy hash when the login is unknown, disabled
 * or its hash unusable, so that every failure costs the same - unless
 * the credential cache vouches for this very record.  A failure is
 * counted in Redis before AP_FAIL goes back, so the next attempt
 * already sees it.
 *
 * A request outlives the channel it came on (Redis and the workers
 * still hold it); a dead channel only clears req->peer, and the answer
 * is then dropped.
 */
#include "config.h"

#include <sys/queue.h>

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "authd.h"
#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

enum auth_kind {
	AUTH_KIND_AUTH,
	AUTH_KIND_RATE
};

struct auth_req {
	TAILQ_ENTRY(auth_req)	 entry;
	enum auth_kind		 kind;
	struct child_peer	*peer;		/* NULL: smtpd went away */
	uint64_t		 reqid;
	char			 login[AP_MAX_LOGIN];
	char			 client[AUTHD_CLIENT_MAX];
	char			 password[AP_MAX_PASSWORD];
	size_t			 pwlen;
	unsigned char		 mac[AUTHD_MAC_SIZE];
	int			 pending;	/* lookups still to come */
	int			 lookup_failed;
	int			 good_login;	/* could be a stored login */
	struct throttle_block	 block;
	struct auth_user	 user;
	int			 judging;	/* past the block check */
	int			 parked;	/* waits for others' verdicts */
};
TAILQ_HEAD(auth_reqs, auth_req);

static struct auth_reqs	 reqs = TAILQ_HEAD_INITIALIZER(reqs);
static int		 nreqs;

static void	auth_request(struct child_peer *, struct ipc_msg *);
static void	rate_request(struct child_peer *, struct ipc_msg *);
static struct auth_req *auth_new(struct child_peer *, enum auth_kind,
		    uint64_t);
static void	auth_free(struct auth_req *);
static int	auth_must_wait(const struct auth_req *);
static void	auth_unpark(void);
static void	auth_lookup_done(void *, int);
static void	auth_decide(struct auth_req *);
static void	auth_verified(void *, int);
static void	auth_counted(void *, int);
static void	auth_answer(struct auth_req *, uint32_t, uint32_t,
		    const char *);
static void	auth_log(const struct auth_req *, const char *);
static void	rate_done(void *, int, uint32_t);
static void	rate_answer(struct child_peer *, uint64_t, uint32_t,
		    uint32_t);
static void	auth_lower(char *);
static int	auth_client_ok(const char *);
static void	auth_wipe_frame(struct ipc_msg *);

/* auth_peer_msg - a frame from smtpd */
void
auth_peer_msg(struct child_peer *p, struct ipc_msg *m)
{
	switch (m->type) {
	case IPC_AUTH_REQ:
		auth_request(p, m);
		break;
	case IPC_RATE_REQ:
		rate_request(p, m);
		break;
	default:
		log_warnx("%s: %s: unexpected %s frame; ignored",
		    authd.env->name, ipc_name(p->ipc), ipc_type_str(m->type));
	}
}

/* auth_peer_gone - smtpd died: its answers have nowhere to go */
void
auth_peer_gone(struct child_peer *p)
{
	struct auth_req	*r;

	TAILQ_FOREACH(r, &reqs, entry)
		if (r->peer == p)
			r->peer = NULL;
}

/* auth_new - a request, counted against AUTHD_MAX_REQUESTS */
static struct auth_req *
auth_new(struct child_peer *p, enum auth_kind kind, uint64_t reqid)
{
	struct auth_req	*r;

	r = xcalloc(1, sizeof(*r));
	r->kind = kind;
	r->peer = p;
	r->reqid = reqid;
	TAILQ_INSERT_TAIL(&reqs, r, entry);
	nreqs++;
	return r;
}

static void
auth_free(struct auth_req *r)
{
	int	 judged = r->judging;

	TAILQ_REMOVE(&reqs, r, entry);
	nreqs--;
	sodium_memzero(r, sizeof(*r));
	free(r);
	if (judged)
		auth_unpark();
}

/*
 * auth_wipe_frame - the receive buffer still holds the password; it
 * is ours to read and nobody reads it after us, so clear it now
 * rather than whenever the next frame happens to overwrite it
 */
static void
auth_wipe_frame(struct ipc_msg *m)
{
	sodium_memzero((void *)(uintptr_t)m->data, m->len);
}

/*
 * auth_request - AUTH_REQ: str login, str password, str client.  A
 * payload that does not parse is a broken smtpd, not a wrong password:
 * one line, AP_TEMPFAIL, and no failure counted.
 */
static void
auth_request(struct child_peer *p, struct ipc_msg *m)
{
	struct auth_req	*r;
	int		 bad;

	r = auth_new(p, AUTH_KIND_AUTH, m->reqid);
	bad = ipc_get_str(m, r->login, sizeof(r->login)) == -1 ||
	    ipc_get_str(m, r->password, sizeof(r->password)) == -1 ||
	    ipc_get_str(m, r->client, sizeof(r->client)) == -1 ||
	    ipc_end(m) == -1 || !auth_client_ok(r->client);
	auth_wipe_frame(m);
	if (bad) {
		log_warnx("%s: %s: malformed AUTH_REQ; answered tempfail",
		    authd.env->name, ipc_name(p->ipc));
		auth_answer(r, AP_TEMPFAIL, 0, NULL);
		return;
	}
	r->pwlen = strlen(r->password);
	auth_lower(r->login);
	r->good_login = authd_login_ok(r->login);
	if (nreqs > AUTHD_MAX_REQUESTS) {
		auth_log(r, "tempfail (busy)");
		auth_answer(r, AP_TEMPFAIL, 0, NULL);
		return;
	}
	cache_mac(r->login, r->password, r->pwlen, r->mac);

	/*
	 * A login that cannot exist still has its failures counted (keys
	 * are binary safe) and its password hashed, so an attacker cannot
	 * tell it from a real one by the blocking or by the time taken.
	 */
	if (throttle_check(r->client, r->login, &r->block, auth_lookup_done,
	    r) == 0)
		r->pending++;
	else
		r->lookup_failed = 1;
	if (r->good_login && !r->lookup_failed) {
		if (users_fetch(r->login, &r->user, auth_lookup_done, r) == 0)
			r->pending++;
		else
			r->lookup_failed = 1;
	}
	if (r->pending == 0) {
		auth_log(r, "tempfail");
		auth_answer(r, AP_TEMPFAIL, 0, NULL);
	}
}

/* auth_lookup_done - one of the pipelined lookups came back */
static void
auth_lookup_done(void *arg, int rc)
{
	struct auth_req	*r = arg;

	if (rc == -1)
		r->lookup_failed = 1;
	if (--r->pending > 0)
		return;
	if (r->lookup_failed) {
		auth_log(r, "tempfail");
		auth_answer(r, AP_TEMPFAIL, 0, NULL);
		return;
	}
	auth_decide(r);
}

/*
 * auth_must_wait - could the attempts now being judged for this login
 * or from this address, all failing, reach limits.auth_failures?
 */
static int
auth_must_wait(const struct auth_req *r)
{
	const struct auth_req	*o;
	long long		 limit = authd.env->conf->limits.auth_failures;
	long long		 nip = 0, nlogin = 0;

	TAILQ_FOREACH(o, &reqs, entry) {
		if (o == r || !o->judging || o->kind != r->kind)
			continue;
		if (strcmp(o->client, r->client) == 0)
			nip++;
		if (strcmp(o->login, r->login) == 0)
			nlogin++;
	}
	return (nip > 0 && r->block.ip_count + nip >= limit) ||
	    (nlogin > 0 && r->block.login_count + nlogin >= limit);
}

/* auth_unpark - a judgement is done: the waiting look at the counters again */
static void
auth_unpark(void)
{
	struct auth_req	*r;

	TAILQ_FOREACH(r, &reqs, entry) {
		if (!r->parked)
			continue;
		r->parked = 0;
		if (throttle_check(r->client, r->login, &r->block,
		    auth_lookup_done, r) == 0)
			r->pending++;
		else {
			r->lookup_failed = 1;
			r->pending++;
			auth_lookup_done(r, -1);
			return;		/* the list may have changed */
		}
	}
}

/* auth_decide - blocked, vouched for by the cache, or to be verified */
static void
auth_decide(struct auth_req *r)
{
	struct auth_user	*u = &r->user;
	const char		*hash;
	uint32_t		 retry;
	int			 usable;

	if (throttle_blocked(&r->block, &retry)) {
		auth_log(r, "blocked");
		auth_answer(r, AP_BLOCKED, retry, NULL);
		return;
	}
	/*
	 * A failure reaches Redis only once its hash is done.  While the
	 * attempts being judged could use up what is left of the allowance,
	 * this one waits for them and looks again: a burst of guesses is
	 * judged a few at a time and the rest find the block, while a
	 * burst of right passwords finds the cache filled by the first.
	 */
	if (auth_must_wait(r)) {
		r->parked = 1;
		return;
	}
	r->judging = 1;
	usable = r->good_login && u->found && u->enabled &&
	    u->hash[0] != '\0';
	if (usable && cache_lookup(r->mac, r->login, u->gen, u->hash)) {
		auth_log(r, "ok cache=hit");
		auth_answer(r, AP_OK, 0, r->login);
		return;
	}
	hash = usable ? u->hash : authd.dummy_hash;
	if (verify_submit(hash, r->password, r->pwlen, auth_verified,
	    r) == -1) {
		auth_log(r, "tempfail (busy)");
		auth_answer(r, AP_TEMPFAIL, 0, NULL);
		return;
	}
	sodium_memzero(r->password, sizeof(r->password));
}

/* auth_verified - a worker has judged the password */
static void
auth_verified(void *arg, int match)
{
	struct auth_req		*r = arg;
	struct auth_user	*u = &r->user;

	if (match && r->good_login && u->found && u->enabled &&
	    u->hash[0] != '\0') {
		cache_insert(r->mac, r->login, u->gen, u->hash);
		auth_log(r, "ok");
		auth_answer(r, AP_OK, 0, r->login);
		return;
	}
	if (throttle_fail(r->client, r->login, auth_counted, r) == -1)
		auth_counted(r, -1);
}

/* auth_counted - the failure is on record (or Redis just went away) */
static void
auth_counted(void *arg, int rc)
{
	struct auth_req	*r = arg;

	auth_log(r, "fail");
	auth_answer(r, AP_FAIL, 0, NULL);
}

/*
 * auth_answer - AUTH_RES, and the end of the request.  Only AP_OK
 * carries the login, limits and senders.
 */
static void
auth_answer(struct auth_req *r, uint32_t result, uint32_t retry,
    const char *login)
{
	struct ipc_frame	 f;

	if (r->peer != NULL) {
		ipc_frame_init(&f, IPC_AUTH_RES, r->reqid);
		ipc_put_u32(&f, result);
		ipc_put_u32(&f, retry);
		ipc_put_str(&f, login != NULL ? login : "");
		ipc_put_u32(&f, login != NULL ? r->user.messages : 0);
		ipc_put_u32(&f, login != NULL ? r->user.recipients : 0);
		ipc_put_str(&f, login != NULL ? r->user.senders : "");
		if (ipc_send(r->peer->ipc, &f, -1) == -1)
			log_warnx("%s: %s: cannot send AUTH_RES",
			    authd.env->name, ipc_name(r->peer->ipc));
	}
	auth_free(r);
}

/* auth_log - one line per verdict; never the password */
static void
auth_log(const struct auth_req *r, const char *result)
{
	char	 login[AP_MAX_LOGIN * 4 + 1], client[AUTHD_CLIENT_MAX * 4 + 1];

	log_printable(login, sizeof(login), r->login, strlen(r->login));
	log_printable(client, sizeof(client), r->client, strlen(r->client));
	log_info("%s: auth user=%s client=%s result=%s", authd.env->name,
	    login, client, result);
}

/*
 * rate_request - RATE_REQ: str login, u32 messages, u32 recipients.
 * A malformed one is answered AP_TEMPFAIL (451 4.3.0) so the session
 * does not wait for nothing.
 */
static void
rate_request(struct child_peer *p, struct ipc_msg *m)
{
	struct auth_req	*r;
	uint32_t	 msgs, rcpts;
	int		 bad;

	r = auth_new(p, AUTH_KIND_RATE, m->reqid);
	bad = ipc_get_str(m, r->login, sizeof(r->login)) == -1 ||
	    ipc_get_u32(m, &msgs) == -1 || ipc_get_u32(m, &rcpts) == -1 ||
	    ipc_end(m) == -1;
	if (!bad) {
		auth_lower(r->login);
		bad = !authd_login_ok(r->login);
	}
	if (bad) {
		log_warnx("%s: %s: malformed RATE_REQ; answered tempfail",
		    authd.env->name, ipc_name(p->ipc));
		rate_answer(p, m->reqid, AP_TEMPFAIL, 0);
		auth_free(r);
		return;
	}
	if (nreqs > AUTHD_MAX_REQUESTS ||
	    throttle_rate(r->login, msgs, rcpts, rate_done, r) == -1) {
		rate_answer(p, m->reqid, AP_TEMPFAIL, 0);
		auth_free(r);
	}
}

/* rate_done - the script's verdict; refusals are logged, takings not */
static void
rate_done(void *arg, int result, uint32_t retry)
{
	struct auth_req	*r = arg;
	char		 login[AP_MAX_LOGIN * 4 + 1];

	if (result != AP_OK) {
		log_printable(login, sizeof(login), r->login,
		    strlen(r->login));
		log_info("%s: rate user=%s result=%s retry=%u",
		    authd.env->name, login, result == AP_LIMITED ?
		    "limited" : "tempfail", retry);
	}
	if (r->peer != NULL)
		rate_answer(r->peer, r->reqid, (uint32_t)result, retry);
	auth_free(r);
}

static void
rate_answer(struct child_peer *p, uint64_t reqid, uint32_t result,
    uint32_t retry)
{
	struct ipc_frame	 f;

	ipc_frame_init(&f, IPC_RATE_RES, reqid);
	ipc_put_u32(&f, result);
	ipc_put_u32(&f, retry);
	if (ipc_send(p->ipc, &f, -1) == -1)
		log_warnx("%s: %s: cannot send RATE_RES", authd.env->name,
		    ipc_name(p->ipc));
}

/* auth_lower - logins are stored in lower case; smtpd passes them as typed */
static void
auth_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* auth_client_ok - an address smtpd formatted: printable, no space */
static int
auth_client_ok(const char *s)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (s[n] <= 0x20 || s[n] >= 0x7f)
			return 0;
	return n > 0;
}
