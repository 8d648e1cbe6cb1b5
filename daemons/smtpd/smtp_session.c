/*
 * smtp_session.c - ESMTP sessions (RFC 5321, 6409) on one event loop
 *
 * Each session is a bufferevent (plain, or OpenSSL under it after
 * STARTTLS or on an implicit TLS listener) and one state.  Commands
 * are taken from the input one at a time, as Postfix does for
 * PIPELINING: a command that must ask authd or queued parks the
 * session in a WAIT state, and the rest of the input stays buffered
 * until the answer comes.  Replies accumulate in the output buffer and
 * leave together when the loop turns.
 *
 * The body goes straight into the memfd queued gave for the
 * transaction, through a small staging buffer; nothing of it is kept
 * here.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "auth_proto.h"
#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "netaddr.h"
#include "queue_proto.h"
#include "smtp_fsm.h"
#include "smtp_parse.h"
#include "smtpd.h"
#include "xmalloc.h"

/* the longest line we look for a LF in: an AUTH response line */
#define SMTP_LINE_MAX		(SMTP_AUTH_LINE_MAX + 2)
/* the longest command: MAIL with every parameter we offer */
#define SMTP_CMDLINE_MAX	(SMTP_CMD_MAX + SMTP_MAIL_EXTRA)
#define SMTP_TEXT_LINE_MAX	1000	/* RFC 5321 4.5.3.1.6, with CRLF */
#define SMTP_INPUT_MAX		(256 * 1024)	/* read high-watermark */
/* replies a client leaves unread before we stop reading its commands */
#define SMTP_OUTPUT_MAX		(64 * 1024)
/* RCPTs over limits.recipients answered 452 before they count as errors */
#define SMTP_RCPT_OVERSHOOT	1000
#define SMTP_STAGE_SIZE		(64 * 1024)
#define SMTP_HASH_SIZE		4096
#define SMTP_AUTH_PAUSE_MS	1000	/* after a failed AUTH */

enum smtp_state {
	S_CMD,			/* reading commands */
	S_AUTH_PLAIN,		/* waiting for the PLAIN response line */
	S_AUTH_USER,		/* LOGIN: the user name line */
	S_AUTH_PASS,		/* LOGIN: the password line */
	S_WAIT,			/* authd or queued has the next word */
	S_DATA,			/* DATA lines until <CRLF>.<CRLF> */
	S_BDAT,			/* the bytes of a BDAT chunk */
	S_TLS,			/* TLS handshake */
	S_CLOSING		/* flushing the last reply */
};

static const char *smtp_state_names[] = {
	"CMD", "AUTH_PLAIN", "AUTH_USER", "AUTH_PASS", "WAIT", "DATA",
	"BDAT", "TLS", "CLOSING"
};

/* session flags */
#define SF_EHLO		0x0001
#define SF_HELO		0x0002
#define SF_TLS		0x0004
#define SF_AUTH		0x0008
#define SF_TRUSTED	0x0010
#define SF_MAIL		0x0020
#define SF_SKIPLINE	0x0040	/* throwing away the rest of a long line */
#define SF_BDAT		0x0080	/* the transaction is in BDAT chunks */
#define SF_SMTPUTF8	0x0100	/* MAIL had SMTPUTF8 */
#define SF_OUTFULL	0x0200	/* reading paused: replies are not read */

/* what went wrong in a body: the message fails at its end */
#define BAD_LONGLINE	0x01
#define BAD_BARELF	0x02
#define BAD_BARECR	0x04
#define BAD_TOOBIG	0x08
#define BAD_WRITE	0x10

/* what the session waits for */
enum smtp_wait {
	W_NONE,
	W_AUTH,
	W_RATE,
	W_OPEN,
	W_COMMIT
};

struct smtp_rcpt {
	char		*addr;
	char		*orcpt;
	uint32_t	 notify;
};

struct smtp_session {
	TAILQ_ENTRY(smtp_session)	 hentry;
	uint64_t			 id;
	struct bufferevent		*bev;
	int				 lindex;
	struct sockaddr_storage		 ss;
	char				 addr[INET6_ADDRSTRLEN + 8];
	enum smtp_state			 state;
	enum smtp_wait			 wait;
	int				 flags;
	int				 errors;
	int				 commands;
	char				 helo[256];
	char				 tls_info[160];

	/* who: after AUTH */
	char				 user[AP_MAX_LOGIN];
	char				*senders;
	char				 auth_login[AP_MAX_LOGIN];
	struct event			*pause;
	struct event			*closer;
	struct event			*line_timer;	/* a line's deadline */
	int				 close_waits;
	int				 overshoot;	/* RCPTs over the limit */

	/* the transaction */
	char				 from[SMTP_PATH_MAX];
	uint32_t			 qflags;
	char				 envid[QP_MAX_PARAM];
	struct smtp_rcpt		*rcpts;
	size_t				 nrcpt;
	uint16_t			 txn_seq;
	int				 txn_open;	/* queued knows it */
	int				 qfd;
	uint64_t			 size;
	int				 bad;
	int				 data_crlf;	/* last line ended in CRLF */
	int				 data_cr;	/* last byte dropped was CR */
	int				 bdat_cr;	/* last byte was a CR */
	size_t				 bdat_linelen;
	uint64_t			 bdat_left;
	uint64_t			 bdat_chunk;
	struct smtp_verdict		 bdat_verdict;	/* for a refused chunk */
	int				 bdat_last;
	int				 bdat_discard;
	int				 bdat_pending;	/* chunk waits for OPENED */
	uint8_t				*stage;
	size_t				 stagelen;
	struct smtp_rcpt		 pending_rcpt;	/* during W_RATE */
};

TAILQ_HEAD(smtp_bucket, smtp_session);
static struct smtp_bucket	 sessions[SMTP_HASH_SIZE];
static int			 sessions_init;
static uint64_t			 session_next;
struct smtpd_stats		 smtpd_stats;

struct smtp_cmdent {
	enum smtp_verb	 verb;
	void		(*fn)(struct smtp_session *, const struct smtp_cmd *);
};

static struct smtp_session *smtp_lookup(uint64_t);
static const struct conf_listen *smtp_listen(const struct smtp_session *);
static void	smtp_free(struct smtp_session *);
static void	smtp_enter_state(struct smtp_session *, enum smtp_state);
static void	smtp_reply(struct smtp_session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	smtp_error(struct smtp_session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	smtp_close(struct smtp_session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	smtp_read_cb(struct bufferevent *, void *);
static void	smtp_write_cb(struct bufferevent *, void *);
static void	smtp_drain_cb(struct bufferevent *, void *);
static void	smtp_bev_setup(struct smtp_session *);
static void	smtp_line_wait(struct smtp_session *, int);
static void	smtp_line_timeout(evutil_socket_t, short, void *);
static void	smtp_close_check(evutil_socket_t, short, void *);
static void	smtp_event_cb(struct bufferevent *, short, void *);
static void	smtp_process(struct smtp_session *);
static int	smtp_getline(struct smtp_session *, char *, size_t, size_t *);
static void	smtp_command(struct smtp_session *, char *, size_t);
static void	smtp_reset(struct smtp_session *);
static void	smtp_set_timeout(struct smtp_session *, uint32_t);
static void	smtp_parse_error(struct smtp_session *, int, enum smtp_verb);
static void	smtp_fsm_of(const struct smtp_session *, struct smtp_fsm *);

static void	smtp_cmd_ehlo(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_helo(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_mail(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_rcpt(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_data(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_bdat(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_rset(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_noop(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_quit(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_vrfy(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_help(struct smtp_session *, const struct smtp_cmd *);
static void	smtp_cmd_starttls(struct smtp_session *,
		    const struct smtp_cmd *);
static void	smtp_cmd_auth(struct smtp_session *, const struct smtp_cmd *);

static void	smtp_auth_line(struct smtp_session *, char *, size_t);
static void	smtp_auth_send(struct smtp_session *, const char *,
		    const char *);
static void	smtp_auth_fail_reply(evutil_socket_t, short, void *);
static void	smtp_txn_begin(struct smtp_session *);
static void	smtp_txn_abort(struct smtp_session *);
static void	smtp_received(struct smtp_session *);
static void	smtp_stage(struct smtp_session *, const void *, size_t);
static void	smtp_stage_flush(struct smtp_session *);
static void	smtp_data_line(struct smtp_session *, const char *, size_t);
static void	smtp_data_drop(struct smtp_session *, size_t, int);
static int	smtp_input_byte(struct smtp_session *, size_t);
static void	smtp_bdat_bytes(struct smtp_session *);
static void	smtp_body_end(struct smtp_session *);
static int	smtp_trusted(const struct conf_listen *,
		    const struct sockaddr_storage *);
static int	smtp_same_host(const struct sockaddr_storage *,
		    const struct sockaddr_storage *);
static void	smtp_rcpt_accept(struct smtp_session *);

static const struct smtp_cmdent smtp_cmds[] = {
	{ SMTP_CMD_EHLO,	smtp_cmd_ehlo },
	{ SMTP_CMD_HELO,	smtp_cmd_helo },
	{ SMTP_CMD_MAIL,	smtp_cmd_mail },
	{ SMTP_CMD_RCPT,	smtp_cmd_rcpt },
	{ SMTP_CMD_DATA,	smtp_cmd_data },
	{ SMTP_CMD_BDAT,	smtp_cmd_bdat },
	{ SMTP_CMD_RSET,	smtp_cmd_rset },
	{ SMTP_CMD_NOOP,	smtp_cmd_noop },
	{ SMTP_CMD_QUIT,	smtp_cmd_quit },
	{ SMTP_CMD_VRFY,	smtp_cmd_vrfy },
	{ SMTP_CMD_HELP,	smtp_cmd_help },
	{ SMTP_CMD_STARTTLS,	smtp_cmd_starttls },
	{ SMTP_CMD_AUTH,	smtp_cmd_auth },
};

/* smtp_trusted - is the client in the listener's trusted_networks? */
static int
smtp_trusted(const struct conf_listen *l, const struct sockaddr_storage *ss)
{
	size_t	 i;

	for (i = 0; i < l->ntrusted; i++)
		if (netaddr_cidr_match(&l->trusted[i],
		    (const struct sockaddr *)ss))
			return 1;
	return 0;
}

static int
smtp_same_host(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		    &((const struct sockaddr_in *)b)->sin_addr,
		    sizeof(struct in_addr)) == 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr,
		    sizeof(struct in6_addr)) == 0;
	return 0;
}

/* smtp_listen - the session's listener in the configuration now in force */
static const struct conf_listen *
smtp_listen(const struct smtp_session *s)
{
	return &smtpd_env->conf->listen[s->lindex];
}

static struct smtp_session *
smtp_lookup(uint64_t id)
{
	struct smtp_session	*s;

	if (!sessions_init)
		return NULL;
	TAILQ_FOREACH(s, &sessions[id % SMTP_HASH_SIZE], hentry)
		if (s->id == id)
			return s;
	return NULL;
}

/* smtp_session_count_ip - open sessions from this client address */
int
smtp_session_count_ip(const struct sockaddr_storage *ss)
{
	struct smtp_session	*s;
	int			 i, n = 0;

	if (!sessions_init)
		return 0;
	for (i = 0; i < SMTP_HASH_SIZE; i++)
		TAILQ_FOREACH(s, &sessions[i], hentry)
			if (smtp_same_host(&s->ss, ss))
				n++;
	return n;
}

/* smtp_session_new - a connection accepted on listener index */
void
smtp_session_new(int fd, const struct conf_listen *l, int index,
    const struct sockaddr_storage *ss, socklen_t sslen)
{
	struct smtp_session	*s;
	struct event_base	*base = smtpd_env->base;
	SSL			*ssl;
	int			 one = 1, i;

	if (!sessions_init) {
		for (i = 0; i < SMTP_HASH_SIZE; i++)
			TAILQ_INIT(&sessions[i]);
		sessions_init = 1;
		session_next = ((uint64_t)randombytes_random() << 20);
	}
	/* Nagle plus delayed ACKs would add ~40 ms to every reply */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	s = xcalloc(1, sizeof(*s));
	s->id = ++session_next & 0xffffffffffffULL;
	/*
	 * Keep the index, not the pointer: a reload frees the old
	 * configuration (listeners themselves cannot change on reload).
	 */
	s->lindex = index;
	s->qfd = -1;
	memcpy(&s->ss, ss, sslen);
	if (netaddr_ntop((const struct sockaddr *)ss, s->addr,
	    sizeof(s->addr)) == NULL)
		strlcpy(s->addr, "unknown", sizeof(s->addr));
	if (smtp_trusted(l, ss))
		s->flags |= SF_TRUSTED;
	if (l->tls == CONF_TLS_IMPLICIT) {
		if (smtpd_tls_ctx == NULL || (ssl = SSL_new(smtpd_tls_ctx)) ==
		    NULL) {
			close(fd);
			free(s);
			return;
		}
		s->bev = bufferevent_openssl_socket_new(base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		s->state = S_TLS;
	} else
		s->bev = bufferevent_socket_new(base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warnx("%s: bufferevent for %s", smtpd_env->name, s->addr);
		close(fd);
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&sessions[s->id % SMTP_HASH_SIZE], s, hentry);
	smtpd_stats.sessions++;
	smtpd_stats.accepted++;
	if ((s->line_timer = evtimer_new(base, smtp_line_timeout, s)) ==
	    NULL)
		fatalx("%s: evtimer_new", __func__);
	smtp_bev_setup(s);
	smtp_set_timeout(s, smtpd_env->conf->timeouts.command);
	log_info("%016llx smtp connected address=%s listener=%d",
	    (unsigned long long)s->id, s->addr, index);
	if (s->state != S_TLS)
		smtp_reply(s, "220 %s ESMTP sluice", smtpd_env->conf->hostname);
}

static void
smtp_free(struct smtp_session *s)
{
	size_t	 i;

	if (s->txn_open)
		smtp_txn_abort(s);
	TAILQ_REMOVE(&sessions[s->id % SMTP_HASH_SIZE], s, hentry);
	smtpd_stats.sessions--;
	if (s->state == S_TLS)
		smtpd_stats.tls_failed++;
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->pause != NULL)
		event_free(s->pause);
	if (s->closer != NULL)
		event_free(s->closer);
	if (s->line_timer != NULL)
		event_free(s->line_timer);
	for (i = 0; i < s->nrcpt; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
	}
	free(s->rcpts);
	free(s->pending_rcpt.addr);
	free(s->pending_rcpt.orcpt);
	free(s->senders);
	free(s->stage);
	if (s->qfd != -1)
		close(s->qfd);
	log_info("%016llx smtp disconnected address=%s",
	    (unsigned long long)s->id, s->addr);
	sodium_memzero(s->auth_login, sizeof(s->auth_login));
	free(s);
}

static void
smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	/* a late answer from authd or queued does not reopen a session */
	if (s->state == S_CLOSING)
		return;
	log_debug("%016llx smtp state %s -> %s", (unsigned long long)s->id,
	    smtp_state_names[s->state], smtp_state_names[st]);
	s->state = st;
}

/*
 * smtp_set_timeout - how long the client may be silent, and how long
 * our replies may sit unread (a client that never reads is cut too)
 */
static void
smtp_set_timeout(struct smtp_session *s, uint32_t secs)
{
	struct timeval	 tv = { secs, 0 };

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* smtp_bev_setup - callbacks and bounds of a (new) bufferevent */
static void
smtp_bev_setup(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, smtp_read_cb, smtp_drain_cb, smtp_event_cb,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_INPUT_MAX);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_OUTPUT_MAX / 2, 0);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->flags &= ~SF_OUTFULL;
}

/*
 * smtp_line_wait - a line has begun: it must end within the timeout,
 * however slowly its bytes come (a read timeout alone restarts with
 * every byte, and a byte a second would hold the session for ever)
 */
static void
smtp_line_wait(struct smtp_session *s, int partial)
{
	const struct conf	*conf = smtpd_env->conf;
	struct timeval		 tv;

	if (!partial) {
		evtimer_del(s->line_timer);
		return;
	}
	if (evtimer_pending(s->line_timer, NULL))
		return;
	tv.tv_sec = s->state == S_DATA ? conf->timeouts.data_block :
	    conf->timeouts.command;
	tv.tv_usec = 0;
	evtimer_add(s->line_timer, &tv);
}

static void
smtp_line_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session	*s = arg;

	log_info("%016llx smtp timeout state=%s (a line that did not end)",
	    (unsigned long long)s->id, smtp_state_names[s->state]);
	if (s->state == S_CLOSING) {
		smtp_free(s);
		return;
	}
	smtp_close(s, "421 4.4.2 %s Error: timeout exceeded",
	    smtpd_env->conf->hostname);
}

/* smtp_drain_cb - replies drained: read commands again if we stopped */
static void
smtp_drain_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	if (!(s->flags & SF_OUTFULL) || s->state == S_CLOSING)
		return;
	s->flags &= ~SF_OUTFULL;
	bufferevent_enable(s->bev, EV_READ);
	smtp_process(s);
}

/* smtp_reply - one reply line (or lines, with "-" continuations given) */
static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/*
 * smtp_error - a 4xx/5xx reply to a command; too many of them and the
 * client is cut off (limits.errors)
 */
static void
smtp_error(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (++s->errors >= smtpd_env->conf->limits.errors)
		smtp_close(s, "421 4.7.0 %s Error: too many errors",
		    smtpd_env->conf->hostname);
}

/* smtp_close - a last reply, then close once it is written */
static void
smtp_close(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;

	if (s->state == S_CLOSING)
		return;
	if (fmt != NULL) {
		va_start(ap, fmt);
		evbuffer_add_vprintf(out, fmt, ap);
		va_end(ap);
		evbuffer_add(out, "\r\n", 2);
	}
	smtp_enter_state(s, S_CLOSING);
	/* nothing more is waited for: answers that come are dropped */
	s->wait = W_NONE;
	if (s->pause != NULL)
		evtimer_del(s->pause);
	if (s->line_timer != NULL)
		evtimer_del(s->line_timer);
	bufferevent_disable(s->bev, EV_READ);
	/* a write time-out disabled writing: on, so that it can end this */
	bufferevent_enable(s->bev, EV_WRITE);
	bufferevent_setcb(s->bev, NULL, smtp_write_cb, smtp_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(out) == 0)
		smtp_write_cb(s->bev, s);
}

/*
 * smtp_write_cb - closing: free the session once the last reply is on
 * the wire.  Under STARTTLS the filter's output drains into the socket
 * bufferevent below it, which must drain too, or the reply is lost.
 */
static void
smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;
	struct bufferevent	*u;
	struct timeval		 tv = { 0, 20000 };

	if (s->state != S_CLOSING ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) != 0)
		return;
	u = bufferevent_get_underlying(s->bev);
	if (u != NULL && evbuffer_get_length(bufferevent_get_output(u)) != 0 &&
	    s->close_waits++ < 500) {
		if (s->closer == NULL)
			s->closer = evtimer_new(smtpd_env->base,
			    smtp_close_check, s);
		if (s->closer != NULL && evtimer_add(s->closer, &tv) == 0)
			return;
	}
	smtp_free(s);
}

static void
smtp_close_check(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session	*s = arg;

	smtp_write_cb(s->bev, s);
}

static void
smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session	*s = arg;
	struct bufferevent	*u;
	SSL			*ssl;
	const SSL_CIPHER	*c;

	if (what & BEV_EVENT_CONNECTED) {
		/* the TLS handshake is done (RFC 3207 4.2: start over) */
		ssl = bufferevent_openssl_get_ssl(bev);
		c = ssl != NULL ? SSL_get_current_cipher(ssl) : NULL;
		snprintf(s->tls_info, sizeof(s->tls_info), "%s %s",
		    ssl != NULL ? SSL_get_version(ssl) : "TLS",
		    c != NULL ? SSL_CIPHER_get_name(c) : "unknown");
		s->flags |= SF_TLS;
		smtpd_stats.tls++;
		log_info("%016llx smtp tls %s", (unsigned long long)s->id,
		    s->tls_info);
		smtp_enter_state(s, S_CMD);
		if (smtp_listen(s)->tls == CONF_TLS_IMPLICIT)
			smtp_reply(s, "220 %s ESMTP sluice",
			    smtpd_env->conf->hostname);
		/*
		 * A client may send its first command in the same packet
		 * as its Finished (curl and msmtp do after STARTTLS).
		 * libevent may then have decrypted it before telling us
		 * of the handshake, when our read callback still saw
		 * S_TLS and left it; or it may still sit undecrypted in
		 * the socket bufferevent below, where the filter does not
		 * look again unless more arrives.  Have both read on the
		 * next turn of the loop.
		 */
		if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
			bufferevent_trigger(bev, EV_READ,
			    BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
		if ((u = bufferevent_get_underlying(bev)) != NULL &&
		    evbuffer_get_length(bufferevent_get_input(u)) > 0)
			bufferevent_trigger(u, EV_READ,
			    BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("%016llx smtp timeout state=%s",
		    (unsigned long long)s->id, smtp_state_names[s->state]);
		if (s->state == S_CLOSING || s->state == S_TLS) {
			smtp_free(s);
			return;
		}
		smtp_close(s, "421 4.4.2 %s Error: timeout exceeded",
		    smtpd_env->conf->hostname);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (what & BEV_EVENT_ERROR && s->state == S_TLS)
			log_info("%016llx smtp tls handshake failed",
			    (unsigned long long)s->id);
		smtp_free(s);
	}
}

static void
smtp_read_cb(struct bufferevent *bev, void *arg)
{
	smtp_process(arg);
}

/*
 * smtp_getline - the next line without its LF (and CR); 1 with a line,
 * 0 when none is complete yet.  A line longer than max is answered by
 * the caller (SF_SKIPLINE) and the rest of it thrown away.
 */
static int
smtp_getline(struct smtp_session *s, char *dst, size_t max, size_t *lenp)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr	 p;
	size_t			 avail = evbuffer_get_length(in), n;

	for (;;) {
		p = evbuffer_search(in, "\n", 1, NULL);
		if (p.pos == -1) {
			/* no LF yet: refuse to buffer more than a line */
			if (avail >= SMTP_LINE_MAX) {
				evbuffer_drain(in, avail);
				s->flags |= SF_SKIPLINE;
			}
			return 0;
		}
		n = (size_t)p.pos;
		if (s->flags & SF_SKIPLINE) {
			evbuffer_drain(in, n + 1);
			s->flags &= ~SF_SKIPLINE;
			*lenp = max + 1;	/* report it as too long */
			return 1;
		}
		if (n > max) {
			evbuffer_drain(in, n + 1);
			*lenp = max + 1;
			return 1;
		}
		evbuffer_remove(in, dst, n + 1);
		if (n > 0 && dst[n - 1] == '\r')
			n--;
		dst[n] = '\0';
		*lenp = n;
		return 1;
	}
}

/* smtp_process - take commands or body from the input until we must wait */
static void
smtp_process(struct smtp_session *s)
{
	struct evbuffer	*in;
	char		 line[SMTP_LINE_MAX + 2];
	size_t		 len;

	while (s->state != S_CLOSING && s->state != S_WAIT &&
	    s->state != S_TLS) {
		in = bufferevent_get_input(s->bev);
		/*
		 * A client that sends commands and never reads the replies
		 * (a pipelining flood) waits until it reads them: what it
		 * costs us is bounded by SMTP_OUTPUT_MAX, not by its input
		 */
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    SMTP_OUTPUT_MAX) {
			s->flags |= SF_OUTFULL;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->state == S_BDAT) {
			if (s->bdat_left > 0 && evbuffer_get_length(in) == 0)
				return;
			smtp_bdat_bytes(s);
			continue;
		}
		if (s->state == S_DATA) {
			struct evbuffer_ptr	 p;
			size_t			 n;

			p = evbuffer_search(in, "\n", 1, NULL);
			smtp_line_wait(s, p.pos == -1 &&
			    evbuffer_get_length(in) > 0);
			if (p.pos == -1) {
				n = evbuffer_get_length(in);
				/* an endless line: drop it as it comes */
				if (n > SMTP_TEXT_LINE_MAX + 1) {
					s->bad |= BAD_LONGLINE;
					smtp_data_drop(s, n, 0);
					s->flags |= SF_SKIPLINE;
				}
				return;
			}
			n = (size_t)p.pos + 1;
			if (s->flags & SF_SKIPLINE) {
				smtp_data_drop(s, n, 1);
				s->flags &= ~SF_SKIPLINE;
				continue;
			}
			/* 1000 octets with the CRLF, a doubled dot not counted */
			if (n > SMTP_TEXT_LINE_MAX + 1 ||
			    (n == SMTP_TEXT_LINE_MAX + 1 &&
			    smtp_input_byte(s, 0) != '.')) {
				s->bad |= BAD_LONGLINE;
				smtp_data_drop(s, n, 1);
				continue;
			}
			evbuffer_remove(in, line, n);
			smtp_data_line(s, line, n);
			continue;
		}
		if (!smtp_getline(s, line, s->state == S_CMD ?
		    SMTP_CMDLINE_MAX : SMTP_AUTH_LINE_MAX, &len)) {
			smtp_line_wait(s, evbuffer_get_length(in) > 0 ||
			    (s->flags & SF_SKIPLINE));
			return;
		}
		smtp_line_wait(s, 0);
		s->commands++;
		switch (s->state) {
		case S_AUTH_PLAIN:
		case S_AUTH_USER:
		case S_AUTH_PASS:
			smtp_auth_line(s, line, len);
			break;
		default:
			smtp_command(s, line, len);
		}
		sodium_memzero(line, sizeof(line));
	}
}

static void
smtp_parse_error(struct smtp_session *s, int err, enum smtp_verb verb)
{
	int		 code;
	const char	*status, *text;

	smtp_parse_reply(err, verb, &code, &status, &text);
	smtp_error(s, "%d %s %s", code, status, text);
}

/*
 * smtp_fsm_of - the session as lib/smtp_fsm sees it, so that the
 * rules on which command may come when live in one place, pure and
 * tested there
 */
static void
smtp_fsm_of(const struct smtp_session *s, struct smtp_fsm *f)
{
	const struct conf_listen	*l = smtp_listen(s);

	smtp_fsm_init(f, l->tls == CONF_TLS_STARTTLS ? SMTP_FSM_TLS_STARTTLS :
	    l->tls == CONF_TLS_IMPLICIT ? SMTP_FSM_TLS_IMPLICIT :
	    SMTP_FSM_TLS_NONE, l->auth == CONF_AUTH_REQUIRED,
	    (s->flags & SF_TRUSTED) != 0, smtpd_tls_ctx != NULL,
	    (size_t)smtpd_env->conf->limits.recipients);
	f->flags = 0;
	if (s->flags & (SF_EHLO | SF_HELO))
		f->flags |= SMTP_FSM_GREETED;
	if (s->flags & SF_TLS)
		f->flags |= SMTP_FSM_TLS;
	if (s->flags & SF_AUTH)
		f->flags |= SMTP_FSM_AUTH;
	if (s->flags & SF_MAIL)
		f->flags |= SMTP_FSM_MAIL;
	if (s->flags & SF_BDAT)
		f->flags |= SMTP_FSM_BDAT;
	f->nrcpt = s->nrcpt;
}

/* smtp_command - one command line, through the table */
static void
smtp_command(struct smtp_session *s, char *line, size_t len)
{
	struct smtp_cmd		 cmd;
	struct smtp_fsm		 fsm;
	struct smtp_verdict	 v;
	size_t			 i;
	int			 rc;

	if (len > SMTP_CMDLINE_MAX) {
		smtp_error(s, "500 5.5.2 Line too long");
		return;
	}
	if ((rc = smtp_parse_command(line, len, &cmd)) != SMTP_PARSE_OK) {
		smtp_parse_error(s, rc, cmd.verb);
		return;
	}
	if (cmd.verb == SMTP_CMD_AUTH)
		log_debug("%016llx smtp command AUTH ********",
		    (unsigned long long)s->id);
	else {
		char	 pl[SMTP_CMD_MAX * 4 + 1];

		log_printable(pl, sizeof(pl), line, len);
		log_debug("%016llx smtp command %s", (unsigned long long)s->id,
		    pl);
	}
	smtp_fsm_of(s, &fsm);
	if (smtp_fsm_check(&fsm, cmd.verb, &v) == -1) {
		/* RFC 3030 3: a refused chunk is still read, then refused */
		if (cmd.verb == SMTP_CMD_BDAT) {
			s->bdat_left = cmd.chunk;
			s->bdat_chunk = cmd.chunk;
			s->bdat_last = cmd.last;
			s->bdat_discard = 1;
			s->bdat_verdict = v;
			smtp_enter_state(s, S_BDAT);
			smtp_set_timeout(s, smtpd_env->conf->timeouts.
			    data_block);
			return;
		}
		/*
		 * RFC 5321 4.5.3.1.10: a client with more recipients than
		 * we take sends the rest later; that is no error, within
		 * reason
		 */
		if (cmd.verb == SMTP_CMD_RCPT && v.code == 452 &&
		    ++s->overshoot <= SMTP_RCPT_OVERSHOOT) {
			smtp_reply(s, "%d %s %s", v.code, v.status, v.text);
			return;
		}
		smtp_error(s, "%d %s %s", v.code, v.status, v.text);
		return;
	}
	for (i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]); i++)
		if (smtp_cmds[i].verb == cmd.verb) {
			smtp_cmds[i].fn(s, &cmd);
			return;
		}
	smtp_error(s, "502 5.5.2 Error: command not recognized");
}

/* smtp_reset - forget the transaction (RSET, EHLO, after each message) */
static void
smtp_reset(struct smtp_session *s)
{
	size_t	 i;

	if (s->txn_open)
		smtp_txn_abort(s);
	for (i = 0; i < s->nrcpt; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
	}
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpt = 0;
	s->flags &= ~(SF_MAIL | SF_BDAT | SF_SMTPUTF8);
	s->from[0] = '\0';
	s->envid[0] = '\0';
	s->qflags = 0;
	s->size = 0;
	s->bad = 0;
	s->bdat_cr = 0;
	s->bdat_linelen = 0;
	s->bdat_left = 0;
	s->bdat_last = 0;
	s->bdat_discard = 0;
	s->bdat_pending = 0;
	s->stagelen = 0;
	if (s->qfd != -1) {
		close(s->qfd);
		s->qfd = -1;
	}
}

static void
smtp_cmd_ehlo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	const struct conf	*conf = smtpd_env->conf;

	if (cmd->arglen == 0 || cmd->arglen >= sizeof(s->helo)) {
		smtp_error(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	smtp_reset(s);
	memcpy(s->helo, cmd->arg, cmd->arglen);
	s->helo[cmd->arglen] = '\0';
	s->flags |= SF_EHLO;
	smtp_reply(s, "250-%s", conf->hostname);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %llu",
	    (unsigned long long)conf->limits.message_size);
	if (!(s->flags & SF_TLS) && smtp_listen(s)->tls == CONF_TLS_STARTTLS &&
	    smtpd_tls_ctx != NULL)
		smtp_reply(s, "250-STARTTLS");
	/* RFC 4954 and 8314: credentials only over TLS */
	if (s->flags & SF_TLS && !(s->flags & SF_AUTH))
		smtp_reply(s, "250-AUTH PLAIN LOGIN");
	smtp_reply(s, "250-ENHANCEDSTATUSCODES");
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250-CHUNKING");
	smtp_reply(s, "250 DSN");
}

static void
smtp_cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arglen == 0 || cmd->arglen >= sizeof(s->helo)) {
		smtp_error(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	smtp_reset(s);
	memcpy(s->helo, cmd->arg, cmd->arglen);
	s->helo[cmd->arglen] = '\0';
	s->flags |= SF_HELO;
	smtp_reply(s, "250 %s", smtpd_env->conf->hostname);
}

static void
smtp_cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_path	 path;
	struct smtp_params	 params;
	int			 rc;

	/* the order of commands was checked by smtp_fsm in smtp_command */
	if ((rc = smtp_parse_args(cmd, 1, &path, &params)) !=
	    SMTP_PARSE_OK) {
		smtp_parse_error(s, rc, cmd->verb);
		return;
	}
	if (path.flags & SMTP_PATH_POSTMASTER) {
		smtp_error(s, "553 5.1.7 Error: sender address needs a domain");
		return;
	}
	/* we offer 8BITMIME, not BINARYMIME (RFC 3030 3) */
	if ((params.seen & SMTP_PARAM_BODY) &&
	    params.body == SMTP_BODY_BINARYMIME) {
		smtp_error(s, "555 5.5.4 Error: BODY=BINARYMIME not supported");
		return;
	}
	if (params.envidlen >= sizeof(s->envid)) {
		smtp_error(s, "501 5.5.4 Error: ENVID too long");
		return;
	}
	if (params.size > smtpd_env->conf->limits.message_size) {
		smtp_error(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	/* a user may only send as the addresses its patterns allow */
	if ((s->flags & SF_AUTH) && !smtp_sender_allowed(s->senders,
	    path.addr)) {
		char	 pa[SMTP_PATH_MAX * 4 + 1];

		log_printable(pa, sizeof(pa), path.addr, strlen(path.addr));
		log_info("%016llx smtp sender refused user=%s from=<%s>",
		    (unsigned long long)s->id, s->user, pa);
		smtp_error(s, "553 5.7.1 <%s>: Sender address rejected: not "
		    "owned by user %s", pa, s->user);
		return;
	}
	smtp_reset(s);
	strlcpy(s->from, path.addr, sizeof(s->from));
	s->flags |= SF_MAIL;
	s->qflags = 0;
	if (params.seen & SMTP_PARAM_SMTPUTF8) {
		s->flags |= SF_SMTPUTF8;
		s->qflags |= QP_SMTPUTF8;
	}
	if (params.body == SMTP_BODY_8BITMIME)
		s->qflags |= QP_BODY_8BITMIME;
	if (params.ret == SMTP_RET_FULL)
		s->qflags |= QP_RET_FULL;
	else if (params.ret == SMTP_RET_HDRS)
		s->qflags |= QP_RET_HDRS;
	if (params.envid != NULL) {
		memcpy(s->envid, params.envid, params.envidlen);
		s->envid[params.envidlen] = '\0';
	}
	smtp_reply(s, "250 2.1.0 Ok");
}

static void
smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_path	 path;
	struct smtp_params	 params;
	struct ipc_frame	 f;
	struct child_peer	*authd;
	int			 rc;

	if ((rc = smtp_parse_args(cmd, (s->flags & SF_SMTPUTF8) != 0, &path,
	    &params)) != SMTP_PARSE_OK) {
		smtp_parse_error(s, rc, cmd->verb);
		return;
	}
	free(s->pending_rcpt.addr);
	free(s->pending_rcpt.orcpt);
	s->pending_rcpt.addr = xstrdup(path.addr);
	if (params.orcpt != NULL) {
		/* as received: "addr-type;xtext" (RFC 3461 4.2) */
		if (asprintf(&s->pending_rcpt.orcpt, "%.*s;%.*s",
		    (int)params.orcpt_typelen, params.orcpt_type,
		    (int)params.orcptlen, params.orcpt) == -1)
			fatal("asprintf");
	} else
		s->pending_rcpt.orcpt = xstrdup("");
	s->pending_rcpt.notify = params.notify;
	if (!(s->flags & SF_AUTH)) {
		smtp_rcpt_accept(s);
		return;
	}
	/* the user's hourly allowance, shared by every node (authd) */
	if ((authd = smtpd_peer(PROC_AUTHD)) == NULL) {
		smtp_error(s, "451 4.3.0 Error: cannot check limits now");
		return;
	}
	ipc_frame_init(&f, IPC_RATE_REQ, s->id << 16);
	ipc_put_str(&f, s->user);
	ipc_put_u32(&f, s->nrcpt == 0 ? 1 : 0);
	ipc_put_u32(&f, 1);
	if (ipc_send(authd->ipc, &f, -1) == -1) {
		smtp_error(s, "451 4.3.0 Error: cannot check limits now");
		return;
	}
	s->wait = W_RATE;
	smtp_enter_state(s, S_WAIT);
}

static void
smtp_rcpt_accept(struct smtp_session *s)
{
	s->rcpts = xreallocarray(s->rcpts, s->nrcpt + 1, sizeof(*s->rcpts));
	s->rcpts[s->nrcpt++] = s->pending_rcpt;
	memset(&s->pending_rcpt, 0, sizeof(s->pending_rcpt));
	smtp_reply(s, "250 2.1.5 Ok");
}

void
smtp_session_rate_result(uint64_t reqid, struct ipc_msg *m)
{
	struct smtp_session	*s = smtp_lookup(reqid >> 16);
	uint32_t		 result, retry;

	if (s == NULL || s->wait != W_RATE)
		return;
	if (ipc_get_u32(m, &result) == -1 || ipc_get_u32(m, &retry) == -1 ||
	    ipc_end(m) == -1)
		result = AP_TEMPFAIL;
	s->wait = W_NONE;
	smtp_enter_state(s, S_CMD);
	switch (result) {
	case AP_OK:
		smtp_rcpt_accept(s);
		break;
	case AP_LIMITED:
		log_info("%016llx smtp rate limited user=%s",
		    (unsigned long long)s->id, s->user);
		smtp_error(s, "450 4.7.1 Error: message rate limit exceeded "
		    "for %s; try again in %u seconds", s->user, retry);
		break;
	default:
		smtp_error(s, "451 4.3.0 Error: cannot check limits now");
	}
	smtp_process(s);
}

static void
smtp_cmd_data(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arglen != 0) {
		smtp_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	smtp_txn_begin(s);
}

static void
smtp_cmd_bdat(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	s->bdat_left = cmd->chunk;
	s->bdat_chunk = cmd->chunk;
	s->bdat_last = cmd->last;
	s->bdat_discard = 0;
	s->flags |= SF_BDAT;
	if (!s->txn_open) {
		s->bdat_pending = 1;
		smtp_txn_begin(s);
		return;
	}
	smtp_enter_state(s, S_BDAT);
	smtp_set_timeout(s, smtpd_env->conf->timeouts.data_block);
}

static void
smtp_cmd_rset(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_noop(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_quit(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_close(s, "221 2.0.0 Bye");
}

static void
smtp_cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	/* RFC 5321 3.5.3: a submission server gives nothing away */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

static void
smtp_cmd_help(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

/*
 * smtp_cmd_starttls - RFC 3207.  Whatever the client sent after the
 * command in the same packets is thrown away: it was sent in the clear
 * and must not be read as if it came under TLS (CVE-2011-0411).
 */
static void
smtp_cmd_starttls(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct bufferevent	*tb;
	struct evbuffer		*in;
	SSL			*ssl;

	if (cmd->arglen != 0) {
		smtp_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if ((ssl = SSL_new(smtpd_tls_ctx)) == NULL) {
		smtp_error(s, "454 4.7.0 TLS not available due to temporary "
		    "reason");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	in = bufferevent_get_input(s->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	smtp_reset(s);
	s->flags &= ~(SF_EHLO | SF_HELO);
	s->helo[0] = '\0';
	/*
	 * The TLS layer hands what it writes to the plain one at once; a
	 * high-water mark there keeps unread replies in the TLS layer's
	 * output, where smtp_process() sees them (SMTP_OUTPUT_MAX)
	 */
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_OUTPUT_MAX / 2,
	    SMTP_OUTPUT_MAX);
	tb = bufferevent_openssl_filter_new(smtpd_env->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		smtp_close(s, NULL);
		return;
	}
	s->bev = tb;
	smtp_bev_setup(s);
	smtp_set_timeout(s, smtpd_env->conf->timeouts.command);
	smtp_enter_state(s, S_TLS);
}

static void
smtp_cmd_auth(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	char		 mech[16], login[AP_MAX_LOGIN], pass[AP_MAX_PASSWORD];
	char		 authz[AP_MAX_LOGIN];
	const char	*init;
	size_t		 ilen, n;
	int		 rc;

	if (cmd->mechlen == 0 || cmd->mechlen >= sizeof(mech)) {
		smtp_error(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, cmd->mech, cmd->mechlen);
	mech[cmd->mechlen] = '\0';
	init = cmd->resp;
	ilen = cmd->resplen;
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (init == NULL) {
			smtp_reply(s, "334 ");
			smtp_enter_state(s, S_AUTH_PLAIN);
			return;
		}
		rc = smtp_auth_plain(init, ilen, authz, sizeof(authz), login,
		    sizeof(login), pass, sizeof(pass));
		if (rc != SMTP_PARSE_OK) {
			smtp_parse_error(s, rc, cmd->verb);
			return;
		}
		smtp_auth_send(s, login, pass);
		sodium_memzero(pass, sizeof(pass));
		return;
	}
	if (strcasecmp(mech, "LOGIN") == 0) {
		if (init != NULL) {
			rc = smtp_base64_decode(init, ilen, s->auth_login,
			    sizeof(s->auth_login), &n);
			if (rc != SMTP_PARSE_OK || n == 0) {
				smtp_parse_error(s, rc != SMTP_PARSE_OK ? rc :
				    SMTP_ERR_AUTH_SYNTAX, SMTP_CMD_AUTH);
				return;
			}
			smtp_reply(s, "334 UGFzc3dvcmQ6");	/* Password: */
			smtp_enter_state(s, S_AUTH_PASS);
			return;
		}
		smtp_reply(s, "334 VXNlcm5hbWU6");		/* Username: */
		smtp_enter_state(s, S_AUTH_USER);
		return;
	}
	smtp_error(s, "504 5.5.4 Unrecognized authentication type");
}

/* smtp_auth_line - a continuation line of AUTH PLAIN or LOGIN */
static void
smtp_auth_line(struct smtp_session *s, char *line, size_t len)
{
	char	 login[AP_MAX_LOGIN], pass[AP_MAX_PASSWORD], authz[AP_MAX_LOGIN];
	size_t	 n;
	int	 rc;

	if (len == 1 && line[0] == '*') {
		smtp_enter_state(s, S_CMD);
		smtp_error(s, "501 5.7.0 Authentication aborted");
		return;
	}
	if (len > SMTP_AUTH_LINE_MAX) {
		smtp_enter_state(s, S_CMD);
		smtp_error(s, "500 5.5.6 Line too long");
		return;
	}
	switch (s->state) {
	case S_AUTH_PLAIN:
		smtp_enter_state(s, S_CMD);
		rc = smtp_auth_plain(line, len, authz, sizeof(authz), login,
		    sizeof(login), pass, sizeof(pass));
		if (rc != SMTP_PARSE_OK) {
			smtp_parse_error(s, rc, SMTP_CMD_AUTH);
			return;
		}
		smtp_auth_send(s, login, pass);
		sodium_memzero(pass, sizeof(pass));
		break;
	case S_AUTH_USER:
		rc = smtp_base64_decode(line, len, s->auth_login,
		    sizeof(s->auth_login), &n);
		if (rc != SMTP_PARSE_OK || n == 0) {
			smtp_enter_state(s, S_CMD);
			smtp_parse_error(s, rc != SMTP_PARSE_OK ? rc :
			    SMTP_ERR_AUTH_SYNTAX, SMTP_CMD_AUTH);
			return;
		}
		smtp_reply(s, "334 UGFzc3dvcmQ6");
		smtp_enter_state(s, S_AUTH_PASS);
		break;
	case S_AUTH_PASS:
		smtp_enter_state(s, S_CMD);
		rc = smtp_base64_decode(line, len, pass, sizeof(pass), &n);
		if (rc != SMTP_PARSE_OK || n == 0) {
			sodium_memzero(pass, sizeof(pass));
			smtp_parse_error(s, rc != SMTP_PARSE_OK ? rc :
			    SMTP_ERR_AUTH_SYNTAX, SMTP_CMD_AUTH);
			return;
		}
		smtp_auth_send(s, s->auth_login, pass);
		sodium_memzero(pass, sizeof(pass));
		break;
	default:
		fatalx("%s: unexpected state %d", __func__, s->state);
	}
}

/* smtp_auth_send - authd decides; the password is wiped by the caller */
static void
smtp_auth_send(struct smtp_session *s, const char *login, const char *pass)
{
	struct ipc_frame	 f;
	struct child_peer	*authd;

	if ((authd = smtpd_peer(PROC_AUTHD)) == NULL) {
		smtp_error(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	strlcpy(s->auth_login, login, sizeof(s->auth_login));
	ipc_frame_init(&f, IPC_AUTH_REQ, s->id << 16);
	ipc_put_str(&f, login);
	ipc_put_str(&f, pass);
	ipc_put_str(&f, s->addr);
	if (ipc_send(authd->ipc, &f, -1) == -1) {
		sodium_memzero(&f, sizeof(f));
		smtp_error(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	sodium_memzero(&f, sizeof(f));
	s->wait = W_AUTH;
	smtp_enter_state(s, S_WAIT);
}

void
smtp_session_auth_result(uint64_t reqid, struct ipc_msg *m)
{
	struct smtp_session	*s = smtp_lookup(reqid >> 16);
	uint32_t		 result, retry, mph, rph;
	char			 login[AP_MAX_LOGIN], pl[AP_MAX_LOGIN * 4 + 1];
	char			*senders;
	struct timeval		 tv;

	if (s == NULL || s->wait != W_AUTH)
		return;
	senders = xmalloc(AP_MAX_SENDERS + 1);
	if (ipc_get_u32(m, &result) == -1 || ipc_get_u32(m, &retry) == -1 ||
	    ipc_get_str(m, login, sizeof(login)) == -1 ||
	    ipc_get_u32(m, &mph) == -1 || ipc_get_u32(m, &rph) == -1 ||
	    ipc_get_str(m, senders, AP_MAX_SENDERS + 1) == -1 ||
	    ipc_end(m) == -1)
		result = AP_TEMPFAIL;
	s->wait = W_NONE;
	log_printable(pl, sizeof(pl), s->auth_login, strlen(s->auth_login));
	switch (result) {
	case AP_OK:
		smtp_enter_state(s, S_CMD);
		s->flags |= SF_AUTH;
		strlcpy(s->user, login, sizeof(s->user));
		free(s->senders);
		s->senders = senders;
		smtpd_stats.auth_ok++;
		log_info("%016llx smtp authentication user=%s result=ok",
		    (unsigned long long)s->id, pl);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		smtp_process(s);
		return;
	case AP_BLOCKED:
		free(senders);
		smtpd_stats.auth_blocked++;
		log_info("%016llx smtp authentication user=%s result=blocked",
		    (unsigned long long)s->id, pl);
		smtp_close(s, "421 4.7.0 %s Error: too many failed "
		    "authentications; try again in %u seconds",
		    smtpd_env->conf->hostname, retry);
		return;
	case AP_FAIL:
		free(senders);
		smtpd_stats.auth_failed++;
		log_info("%016llx smtp authentication user=%s result=fail",
		    (unsigned long long)s->id, pl);
		/* a pause makes guessing slow (OpenSMTPD does the same) */
		if (s->pause == NULL)
			s->pause = evtimer_new(smtpd_env->base,
			    smtp_auth_fail_reply, s);
		tv.tv_sec = 0;
		tv.tv_usec = (SMTP_AUTH_PAUSE_MS / 2 +
		    randombytes_uniform(SMTP_AUTH_PAUSE_MS / 2)) * 1000;
		s->wait = W_AUTH;
		s->auth_login[0] = '\0';
		if (s->pause != NULL && evtimer_add(s->pause, &tv) == 0)
			return;
		s->wait = W_NONE;
		smtp_auth_fail_reply(-1, 0, s);
		return;
	default:
		free(senders);
		smtp_enter_state(s, S_CMD);
		smtp_error(s, "454 4.7.0 Temporary authentication failure");
		smtp_process(s);
	}
}

static void
smtp_auth_fail_reply(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session	*s = arg;

	if (s->state == S_CLOSING)
		return;
	s->wait = W_NONE;
	smtp_enter_state(s, S_CMD);
	smtp_error(s, "535 5.7.8 Error: authentication failed");
	smtp_process(s);
}

/* smtp_txn_begin - tell queued about the envelope; it sends the body file */
static void
smtp_txn_begin(struct smtp_session *s)
{
	struct child_peer	*queued;
	struct ipc_frame	 f;
	const char		*proto;
	uint64_t		 reqid;
	size_t			 i;
	int			 esmtp = (s->flags & SF_EHLO) != 0;

	if ((queued = smtpd_peer(PROC_QUEUED)) == NULL) {
		smtp_error(s, "451 4.3.0 Error: queue unavailable; try again "
		    "later");
		if (s->bdat_pending) {
			s->bdat_pending = 0;
			s->bdat_discard = 1;
			smtp_enter_state(s, S_BDAT);
		}
		return;
	}
	/* RFC 3848 */
	if (s->flags & SF_AUTH)
		proto = (s->flags & SF_TLS) ? "ESMTPSA" : "ESMTPA";
	else if (s->flags & SF_TLS)
		proto = esmtp ? "ESMTPS" : "SMTPS";
	else
		proto = esmtp ? "ESMTP" : "SMTP";
	s->txn_seq++;
	reqid = (s->id << 16) | s->txn_seq;
	ipc_frame_init(&f, IPC_Q_OPEN, reqid);
	ipc_put_u32(&f, s->qflags);
	ipc_put_str(&f, s->from);
	ipc_put_str(&f, s->envid);
	ipc_put_str(&f, s->user);
	ipc_put_str(&f, s->addr);
	ipc_put_str(&f, s->helo);
	ipc_put_str(&f, proto);
	ipc_put_str(&f, s->tls_info);
	if (ipc_send(queued->ipc, &f, -1) == -1)
		goto fail;
	for (i = 0; i < s->nrcpt; i++) {
		ipc_frame_init(&f, IPC_Q_RCPT, reqid);
		ipc_put_u32(&f, s->rcpts[i].notify);
		ipc_put_str(&f, s->rcpts[i].addr);
		ipc_put_str(&f, s->rcpts[i].orcpt);
		if (ipc_send(queued->ipc, &f, -1) == -1)
			goto fail;
	}
	s->txn_open = 1;
	s->size = 0;
	s->bad = 0;
	s->wait = W_OPEN;
	smtp_enter_state(s, S_WAIT);
	return;
 fail:
	ipc_sendv(queued->ipc, IPC_Q_ABORT, reqid, -1);
	smtp_error(s, "451 4.3.0 Error: queue unavailable; try again later");
}

static void
smtp_txn_abort(struct smtp_session *s)
{
	struct child_peer	*queued;

	if ((queued = smtpd_peer(PROC_QUEUED)) != NULL)
		ipc_sendv(queued->ipc, IPC_Q_ABORT, (s->id << 16) | s->txn_seq,
		    -1);
	s->txn_open = 0;
	if (s->qfd != -1) {
		close(s->qfd);
		s->qfd = -1;
	}
}

/*
 * smtp_received - the trace header (RFC 5321 4.4), with the TLS facts
 * and the authenticated user (RFC 3848 protocol names)
 */
static void
smtp_received(struct smtp_session *s)
{
	char		 hdr[1024], date[64], helo[300], user[AP_MAX_LOGIN * 4];
	struct tm	 tm;
	time_t		 now = time(NULL);
	int		 n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	log_printable(helo, sizeof(helo), s->helo, strlen(s->helo));
	log_printable(user, sizeof(user), s->user, strlen(s->user));
	n = snprintf(hdr, sizeof(hdr), "Received: from %s ([%s])\r\n",
	    helo[0] != '\0' ? helo : "unknown", s->addr);
	if (s->flags & SF_TLS)
		n += snprintf(hdr + n, sizeof(hdr) - n,
		    "\t(using %s)\r\n", s->tls_info);
	if (s->flags & SF_AUTH)
		n += snprintf(hdr + n, sizeof(hdr) - n,
		    "\t(Authenticated sender: %s)\r\n", user);
	n += snprintf(hdr + n, sizeof(hdr) - n,
	    "\tby %s (sluice) with %s id %012llx;\r\n\t%s\r\n",
	    smtpd_env->conf->hostname, (s->flags & SF_AUTH) ?
	    ((s->flags & SF_TLS) ? "ESMTPSA" : "ESMTPA") :
	    (s->flags & SF_TLS) ? ((s->flags & SF_EHLO) ? "ESMTPS" : "SMTPS") :
	    ((s->flags & SF_EHLO) ? "ESMTP" : "SMTP"),
	    (unsigned long long)s->id, date);
	if (n > 0 && (size_t)n < sizeof(hdr))
		smtp_stage(s, hdr, (size_t)n);
}

/* smtp_session_queue_msg - Q_OPENED, Q_OK or Q_FAIL for a transaction */
void
smtp_session_queue_msg(uint64_t reqid, struct ipc_msg *m)
{
	struct smtp_session	*s = smtp_lookup(reqid >> 16);
	char			 id[64], status[16], text[QP_MAX_TEXT + 1];
	uint32_t		 code;

	if (s == NULL || (reqid & 0xffff) != s->txn_seq || !s->txn_open ||
	    s->state == S_CLOSING)
		return;		/* a late answer for a transaction gone */
	switch (m->type) {
	case IPC_Q_OPENED:
		if (s->wait != W_OPEN || m->fd == -1)
			return;
		s->qfd = m->fd;
		m->fd = -1;
		s->wait = W_NONE;
		if (s->stage == NULL)
			s->stage = xmalloc(SMTP_STAGE_SIZE);
		s->stagelen = 0;
		smtp_received(s);
		if (s->flags & SF_BDAT) {
			s->bdat_pending = 0;
			smtp_enter_state(s, S_BDAT);
		} else {
			smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
			/* the CRLF of the DATA line comes before the first */
			s->data_crlf = 1;
			s->data_cr = 0;
			smtp_enter_state(s, S_DATA);
			smtp_set_timeout(s, smtpd_env->conf->timeouts.
			    data_block);
		}
		break;
	case IPC_Q_OK:
		if (s->wait != W_COMMIT || ipc_get_str(m, id,
		    sizeof(id)) == -1 || ipc_end(m) == -1)
			return;
		s->txn_open = 0;
		s->wait = W_NONE;
		log_info("%016llx smtp message queued id=%s from=<%s> nrcpt=%zu "
		    "size=%llu", (unsigned long long)s->id, id, s->from,
		    s->nrcpt, (unsigned long long)s->size);
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", id);
		smtp_reset(s);
		smtp_enter_state(s, S_CMD);
		break;
	case IPC_Q_FAIL:
		if (ipc_get_u32(m, &code) == -1 ||
		    ipc_get_str(m, status, sizeof(status)) == -1 ||
		    ipc_get_str(m, text, sizeof(text)) == -1 ||
		    code < 400 || code > 599) {
			code = 451;
			strlcpy(status, "4.3.0", sizeof(status));
			strlcpy(text, "queue error", sizeof(text));
		}
		s->txn_open = 0;
		if (s->wait == W_OPEN && s->bdat_pending) {
			/* the chunk still has to be read, and dropped */
			s->bdat_pending = 0;
			s->bdat_discard = 1;
			s->wait = W_NONE;
			smtp_error(s, "%u %s %s", code, status, text);
			smtp_enter_state(s, S_BDAT);
			break;
		}
		s->wait = W_NONE;
		smtp_error(s, "%u %s %s", code, status, text);
		smtp_reset(s);
		smtp_enter_state(s, S_CMD);
		break;
	default:
		return;
	}
	smtp_set_timeout(s, s->state == S_DATA || s->state == S_BDAT ?
	    smtpd_env->conf->timeouts.data_block :
	    smtpd_env->conf->timeouts.command);
	if (s->state != S_CLOSING)
		smtp_process(s);
}

/* smtp_session_peer_lost - authd or queued died: nobody will answer */
void
smtp_session_peer_lost(int kind)
{
	struct smtp_session	*s, *next;
	int			 i;

	if (!sessions_init)
		return;
	for (i = 0; i < SMTP_HASH_SIZE; i++)
		for (s = TAILQ_FIRST(&sessions[i]); s != NULL; s = next) {
			next = TAILQ_NEXT(s, hentry);
			if (kind == PROC_QUEUED && s->txn_open) {
				s->txn_open = 0;
				if (s->qfd != -1) {
					close(s->qfd);
					s->qfd = -1;
				}
				if (s->state == S_WAIT) {
					s->wait = W_NONE;
					smtp_error(s, "451 4.3.0 Error: queue "
					    "unavailable; try again later");
					smtp_reset(s);
					smtp_enter_state(s, S_CMD);
					smtp_process(s);
				} else
					s->bad |= BAD_WRITE;
			}
			if (kind == PROC_AUTHD && s->state == S_WAIT &&
			    (s->wait == W_AUTH || s->wait == W_RATE)) {
				s->wait = W_NONE;
				smtp_enter_state(s, S_CMD);
				smtp_error(s, "454 4.7.0 Temporary "
				    "authentication failure");
				smtp_process(s);
			}
		}
}

/* smtp_stage - body bytes toward the memfd, 64 KiB at a time */
static void
smtp_stage(struct smtp_session *s, const void *p, size_t n)
{
	size_t	 limit = smtpd_env->conf->limits.message_size;

	if (n > limit || s->size > limit - n) {
		s->bad |= BAD_TOOBIG;
		s->size += n;
		return;
	}
	s->size += n;
	if (s->bad)
		return;		/* the message fails anyway: keep nothing */
	if (s->stagelen + n > SMTP_STAGE_SIZE)
		smtp_stage_flush(s);
	if (n >= SMTP_STAGE_SIZE) {
		if (s->qfd == -1 || write(s->qfd, p, n) != (ssize_t)n)
			s->bad |= BAD_WRITE;
		return;
	}
	memcpy(s->stage + s->stagelen, p, n);
	s->stagelen += n;
}

static void
smtp_stage_flush(struct smtp_session *s)
{
	const uint8_t	*p = s->stage;
	size_t		 left = s->stagelen;
	ssize_t		 w;

	while (left > 0 && !(s->bad & BAD_WRITE)) {
		if (s->qfd == -1 || (w = write(s->qfd, p, left)) <= 0) {
			s->bad |= BAD_WRITE;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	s->stagelen = 0;
}

/* smtp_input_byte - the octet at off in the session's input, or -1 */
static int
smtp_input_byte(struct smtp_session *s, size_t off)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr	 p;
	unsigned char		 c;

	if (evbuffer_ptr_set(in, &p, off, EVBUFFER_PTR_SET) == -1 ||
	    evbuffer_copyout_from(in, &p, &c, 1) != 1)
		return -1;
	return c;
}

/*
 * smtp_data_drop - throw away n octets of an overlong DATA line,
 * remembering how the line ended (eol: the last octet is its LF)
 */
static void
smtp_data_drop(struct smtp_session *s, size_t n, int eol)
{
	int	 c = n >= 2 ? smtp_input_byte(s, n - 2) : -1;

	if (eol) {
		s->data_crlf = n >= 2 ? c == '\r' : s->data_cr;
		s->data_cr = 0;
	} else
		s->data_cr = smtp_input_byte(s, n - 1) == '\r';
	evbuffer_drain(bufferevent_get_input(s->bev), n);
}

/*
 * smtp_data_line - one line of DATA with its LF: end of data only at
 * <CRLF>.<CRLF>, the dot line after a line that ended in CRLF too; a
 * bare LF or CR anywhere fails the message (SMTP smuggling: another
 * server might see the end where we do not, so we must not see it
 * where they do not: "<LF>.<CRLF>" is no end either)
 */
static void
smtp_data_line(struct smtp_session *s, const char *line, size_t n)
{
	size_t	 body = n;
	int	 after_crlf = s->data_crlf;

	if (n >= 2 && line[n - 2] == '\r') {
		body = n - 2;
		s->data_crlf = 1;
	} else {
		s->bad |= BAD_BARELF;
		body = n - 1;
		s->data_crlf = 0;
	}
	if (memchr(line, '\r', body) != NULL)
		s->bad |= BAD_BARECR;
	if (body == 1 && line[0] == '.' && n == 3 && after_crlf) {
		smtp_body_end(s);
		return;
	}
	/* RFC 5321 4.5.2: a leading dot was doubled by the client */
	if (line[0] == '.')
		smtp_stage(s, line + 1, n - 1);
	else
		smtp_stage(s, line, n);
}

/* smtp_bdat_bytes - as much of the current chunk as has arrived */
static void
smtp_bdat_bytes(struct smtp_session *s)
{
	struct evbuffer	*in = bufferevent_get_input(s->bev);
	uint8_t		 buf[16384];
	size_t		 n, i;

	while (s->bdat_left > 0 && (n = evbuffer_get_length(in)) > 0) {
		if (n > sizeof(buf))
			n = sizeof(buf);
		if (n > s->bdat_left)
			n = (size_t)s->bdat_left;
		evbuffer_remove(in, buf, n);
		s->bdat_left -= n;
		if (s->bdat_discard)
			continue;
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (!s->bdat_cr)
					s->bad |= BAD_BARELF;
				if (s->bdat_linelen + 1 > SMTP_TEXT_LINE_MAX)
					s->bad |= BAD_LONGLINE;
				s->bdat_linelen = 0;
			} else {
				if (s->bdat_cr)
					s->bad |= BAD_BARECR;
				s->bdat_linelen++;
			}
			s->bdat_cr = buf[i] == '\r';
		}
		smtp_stage(s, buf, n);
	}
	if (s->bdat_left > 0)
		return;
	if (s->bdat_discard) {
		s->bdat_discard = 0;
		smtp_enter_state(s, S_CMD);
		smtp_set_timeout(s, smtpd_env->conf->timeouts.command);
		if (s->bdat_verdict.code != 0)
			smtp_error(s, "%d %s %s", s->bdat_verdict.code,
			    s->bdat_verdict.status, s->bdat_verdict.text);
		memset(&s->bdat_verdict, 0, sizeof(s->bdat_verdict));
		if (s->bdat_last)
			smtp_reset(s);
		return;
	}
	if (s->bdat_last) {
		if (s->bdat_cr)
			s->bad |= BAD_BARECR;
		smtp_body_end(s);
		return;
	}
	smtp_reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)s->bdat_chunk);
	smtp_enter_state(s, S_CMD);
	smtp_set_timeout(s, smtpd_env->conf->timeouts.command);
}

/* smtp_body_end - the end of the message: commit it, or say why not */
static void
smtp_body_end(struct smtp_session *s)
{
	struct child_peer	*queued = smtpd_peer(PROC_QUEUED);
	struct ipc_frame	 f;
	uint64_t		 reqid = (s->id << 16) | s->txn_seq;

	smtp_stage_flush(s);
	smtp_enter_state(s, S_CMD);
	smtp_set_timeout(s, smtpd_env->conf->timeouts.command);
	if (s->bad || queued == NULL || !s->txn_open) {
		if (s->bad & BAD_TOOBIG)
			smtp_error(s, "552 5.3.4 Error: message file too big");
		else if (s->bad & BAD_BARELF)
			smtp_error(s, "550 5.6.0 Error: bare <LF> received; "
			    "lines must end in <CR><LF>");
		else if (s->bad & BAD_BARECR)
			smtp_error(s, "550 5.6.0 Error: bare <CR> received");
		else if (s->bad & BAD_LONGLINE)
			smtp_error(s, "550 5.5.6 Error: text line longer "
			    "than %d octets", SMTP_TEXT_LINE_MAX);
		else
			smtp_error(s, "451 4.3.0 Error: queue unavailable; "
			    "try again later");
		smtp_reset(s);
		return;
	}
	close(s->qfd);
	s->qfd = -1;
	ipc_frame_init(&f, IPC_Q_COMMIT, reqid);
	ipc_put_u64(&f, s->size);
	if (ipc_send(queued->ipc, &f, -1) == -1) {
		smtp_error(s, "451 4.3.0 Error: queue unavailable; try again "
		    "later");
		smtp_reset(s);
		return;
	}
	/* the client waits for us now: timeouts.data_end, not command */
	s->wait = W_COMMIT;
	smtp_enter_state(s, S_WAIT);
	smtp_set_timeout(s, smtpd_env->conf->timeouts.data_end);
}
