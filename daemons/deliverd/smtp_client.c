/*
 * smtp_client.c - one SMTP client session per job, to a smarthost or
 * to one address of an MX host (mx.c chooses the address)
 *
 * connect -> [TLS] -> greeting -> EHLO (HELO on 5xx) -> [STARTTLS ->
 * EHLO] -> [AUTH] -> MAIL, RCPT..., DATA (one write under PIPELINING)
 * -> body -> "." -> QUIT.  Everything runs on the event loop with a
 * timer per wait (RFC 5321 4.5.3.2: timeouts.connect, then
 * timeouts.upstream_command for every reply and every step of the body,
 * timeouts.data_end for the reply to the final dot).
 *
 * Outcomes: a failed connection or a greeting that is not 2xx (or
 * that never comes) goes back to mx.c, which tries the next address
 * and defers everyone with the last failure when none is left
 * (smtpc_next).  A failure of the session after that (TLS, time-out,
 * lost connection) defers every recipient; a failed MAIL gives its
 * reply to all; a refused RCPT keeps its own reply; the reply to the
 * final dot goes to every recipient whose RCPT was accepted.  The job
 * is answered as soon as that is known; QUIT follows on its own.
 *
 * Bounds: a reply line is at most SMTPC_LINE_MAX bytes, a reply at most
 * SMTPC_REPLY_LINES lines; input stops being read at SMTPC_IN_MAX
 * bytes; the body goes out as the output buffer drains below
 * SMTPC_OUT_LOW and never grows it past about SMTPC_OUT_HIGH; at most
 * SMTPC_PIPE_WINDOW commands are unanswered at any time.  Replies and
 * EHLO lines are read, and the body dot-stuffed, by lib/smtp_reply.
 */
#include "config.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "deliverd.h"
#include "log.h"
#include "netaddr.h"
#include "queue_proto.h"
#include "smtp_reply.h"
#include "xmalloc.h"

#define SMTPC_LINE_MAX		4096	/* a reply line, CRLF included */
#define SMTPC_REPLY_LINES	64
#define SMTPC_IN_MAX		(4 * SMTPC_LINE_MAX)
#define SMTPC_OUT_LOW		(16 * 1024)
#define SMTPC_OUT_HIGH		(64 * 1024)
#define SMTPC_PIPE_WINDOW	100
#define SMTPC_QUIT_TIMEOUT	10	/* seconds: nothing depends on it */
#define SMTPC_CMD_MAX		(QP_MAX_ADDR + QP_MAX_PARAM + 128)

/* smtpc_rcpt_reply() flags */
#define RR_OK			0x01	/* a 2xx is a success here */
#define RR_DEFER		0x02	/* a 5xx about the session: 4xx */

enum smtpc_state {
	SC_CONNECT,
	SC_TLS_WRAP,		/* implicit TLS handshake */
	SC_GREETING,
	SC_EHLO,
	SC_HELO,
	SC_STARTTLS,
	SC_TLS_START,		/* handshake after STARTTLS */
	SC_AUTH,		/* AUTH PLAIN, or the last step of LOGIN */
	SC_AUTH_USER,		/* AUTH LOGIN: waiting for the user prompt */
	SC_AUTH_PASS,		/* AUTH LOGIN: waiting for the password one */
	SC_ENVELOPE,		/* MAIL, RCPT..., DATA replies */
	SC_BODY,
	SC_DOT,
	SC_DOT_DISCARD,		/* a 354 nobody wanted; its "." reply */
	SC_QUIT,
	SC_RSET,		/* a kept connection taken for the next job */
	SC_IDLE			/* kept open, waiting for a job (no job) */
};

static const char *const smtpc_state_names[] = {
	"CONNECT", "TLS_WRAP", "GREETING", "EHLO", "HELO", "STARTTLS",
	"TLS_START", "AUTH", "AUTH_USER", "AUTH_PASS", "ENVELOPE", "BODY",
	"DOT", "DOT_DISCARD", "QUIT", "RSET", "IDLE"
};

/* a reply goes into recipients' outcomes as it is */
_Static_assert(sizeof(((struct smtp_reply *)0)->status) == DLV_STATUS_MAX,
    "reply status and DLV_STATUS_MAX differ");
_Static_assert(SMTP_REPLY_TEXT_MAX == QP_MAX_TEXT,
    "reply text and QP_MAX_TEXT differ");

struct smtpc {
	TAILQ_ENTRY(smtpc)	 entry;		/* in idle or in closing */
	struct dlv_job		*job;		/* NULL once kept (SC_IDLE, QUIT) */
	struct smtpcq		*listed;	/* &idle, &closing or NULL */
	/* what a kept connection serves, and whom to tell when it ends */
	uint32_t		 route;
	char			 dest[300];
	struct child_peer	*peer;
	unsigned		 gen;		/* smtpc_gen when it started */
	int			 nmsgs;		/* transactions so far */
	int			 max_msgs;
	uint32_t		 idle_timeout;
	char			 relay[300];	/* as dlv_job's */
	enum smtpc_state	 state;
	int			 fd;		/* until a bufferevent has it */
	struct event		*ev_conn;
	struct event		*timer;
	struct bufferevent	*bev;
	SSL			*ssl;		/* owned by bev */
	char			 tls_desc[128];

	/* from the route, copied: a reload may free the configuration */
	char			 host[NETADDR_HOST_MAX + 1];
	char			 addr[64];
	int			 port;
	char			 where[NETADDR_HOST_MAX + 80]; /* for texts */
	enum conf_route_tls	 tls;
	char			 helo[NETADDR_HOST_MAX + 1];
	char			*auth_user;
	const struct dlv_secret	*secret;
	uint32_t		 t_connect, t_cmd, t_data;

	unsigned		 caps;
	uint64_t		 size_max;	/* 0: none announced */
	unsigned		 ehlo_caps;	/* while the EHLO reply comes */
	uint64_t		 ehlo_size;
	struct smtp_reply	 rep;

	/* the envelope: commands 0 = MAIL, 1..nlist = RCPT, nlist+1 = DATA */
	size_t			*list;		/* indexes of job->rcpts */
	size_t			 nlist;
	size_t			 ncmds;
	size_t			 sent;
	size_t			 answered;
	size_t			 window;
	int			 stop;		/* send no more of the group */
	int			 mail_failed;
	int			 data_ok;	/* 354 */
	size_t			 naccepted;
	struct smtp_reply	 mail_rep;
	struct smtp_reply	 data_rep;

	size_t			 off;		/* body bytes queued */
};

static void	smtpc_enter(struct smtpc *, enum smtpc_state);
static void	smtpc_wait(struct smtpc *, uint32_t);
static void	smtpc_on_connect(evutil_socket_t, short, void *);
static void	smtpc_on_timeout(evutil_socket_t, short, void *);
static int	smtpc_attach(struct smtpc *, int);
static void	smtpc_readcb(struct bufferevent *, void *);
static void	smtpc_writecb(struct bufferevent *, void *);
static void	smtpc_eventcb(struct bufferevent *, short, void *);
static int	smtpc_line(struct smtpc *, const char *, size_t);
static int	smtpc_reply(struct smtpc *);
static int	smtpc_after_ehlo(struct smtpc *);
static int	smtpc_starttls(struct smtpc *);
static int	smtpc_auth(struct smtpc *);
static int	smtpc_envelope(struct smtpc *);
static int	smtpc_pump(struct smtpc *);
static void	smtpc_mail(struct smtpc *, char *, size_t);
static int	smtpc_envelope_reply(struct smtpc *);
static int	smtpc_envelope_done(struct smtpc *);
static void	smtpc_body(struct smtpc *);
static int	smtpc_final(struct smtpc *);
static void	smtpc_send(struct smtpc *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	smtpc_send_secret(struct smtpc *, const char *, const char *,
		    size_t);
static const char *smtpc_phase(const struct smtpc *);
static void	smtpc_rcpt_reply(struct dlv_rcpt *, const struct smtp_reply *,
		    int);
static void	smtpc_fail(struct smtpc *, int, const char *, const char *,
		    ...) __attribute__((format(printf, 4, 5)));
static void	smtpc_giveup(struct smtpc *, int, const char *, const char *,
		    ...) __attribute__((format(printf, 4, 5)));
static void	smtpc_fail_reply(struct smtpc *, const struct smtp_reply *,
		    int);
static void	smtpc_next(struct smtpc *, int, const char *, const char *,
		    ...) __attribute__((format(printf, 4, 5)));
static void	smtpc_outcome(const struct smtp_reply *, int, int *, char *,
		    char *, size_t);
static void	smtpc_quit(struct smtpc *);
static void	smtpc_done(struct smtpc *);
static int	smtpc_keep(struct smtpc *);
static void	smtpc_redo(struct smtpc *, const char *);
static void	smtpc_close(struct smtpc *);
static const char *smtpc_id(const struct smtpc *);
static void	smtpc_idle_quit(struct smtpc *);
static void	smtpc_list(struct smtpc *, struct smtpcq *);
static void	smtpc_unlist(struct smtpc *);

/*
 * kept connections, the most recently used first; and the kept ones
 * saying QUIT, which tell queued when they are gone
 */
TAILQ_HEAD(smtpcq, smtpc);
static struct smtpcq	idle = TAILQ_HEAD_INITIALIZER(idle);
static struct smtpcq	closing = TAILQ_HEAD_INITIALIZER(closing);
/* bumped by a reload: a connection made before serves no new job */
static unsigned			smtpc_gen;

/*
 * smtpc_start - connect to one address of host and run the session.
 * A failure before the greeting is in goes back to mx.c, which tries
 * the next address (dlv_path_next); so may this, at once.
 */
void
smtpc_start(struct dlv_job *j, const struct dlv_params *pr, const char *host,
    const struct sockaddr *sa, socklen_t salen, int port)
{
	struct sockaddr_storage	 ss;
	struct smtpc		*s;
	struct timeval		 tv;
	int			 fd;

	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, salen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port =
		    htons((uint16_t)port);

	s = xcalloc(1, sizeof(*s));
	s->job = j;
	j->sess = s;
	s->fd = -1;
	strlcpy(s->host, host, sizeof(s->host));
	netaddr_ntop((struct sockaddr *)&ss, s->addr, sizeof(s->addr));
	s->port = port;
	if (strcmp(s->host, s->addr) == 0)
		snprintf(s->where, sizeof(s->where), "%s%s%s:%d",
		    ss.ss_family == AF_INET6 ? "[" : "", s->addr,
		    ss.ss_family == AF_INET6 ? "]" : "", s->port);
	else
		snprintf(s->where, sizeof(s->where), "%s[%s]:%d", s->host,
		    s->addr, s->port);
	/* queued takes a relay of under 300 bytes; a long name is cut */
	snprintf(s->relay, sizeof(s->relay), "%.200s[%s]:%d", s->host,
	    s->addr, s->port);
	strlcpy(j->relay, s->relay, sizeof(j->relay));
	s->route = j->route;
	strlcpy(s->dest, j->dest, sizeof(s->dest));
	s->gen = smtpc_gen;
	s->max_msgs = pr->max_msgs;
	s->idle_timeout = pr->idle_timeout;
	s->tls = pr->tls;
	strlcpy(s->helo, pr->helo, sizeof(s->helo));
	if (pr->auth_user != NULL) {
		s->auth_user = xstrdup(pr->auth_user);
		s->secret = dlv_secret_get(pr->auth_password_file);
	}
	s->t_connect = pr->t_connect;
	s->t_cmd = pr->t_cmd;
	s->t_data = pr->t_data;
	s->timer = evtimer_new(dlv_env->base, smtpc_on_timeout, s);
	if (s->timer == NULL)
		fatalx("%s: evtimer_new", __func__);

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		smtpc_next(s, 451, "4.4.1", "connect to %s: %s", s->where,
		    strerror(errno));
		return;
	}
	s->fd = fd;
	if (connect(fd, (struct sockaddr *)&ss, salen) == -1 &&
	    errno != EINPROGRESS) {
		smtpc_next(s, 451, "4.4.1", "connect to %s: %s", s->where,
		    strerror(errno));
		return;
	}
	log_debug("%s: connecting to %s (tls %s)", j->id, j->relay,
	    conf_route_tls_str(s->tls));
	s->ev_conn = event_new(dlv_env->base, fd, EV_WRITE, smtpc_on_connect,
	    s);
	if (s->ev_conn == NULL)
		fatalx("%s: event_new", __func__);
	tv.tv_sec = s->t_connect;
	tv.tv_usec = 0;
	event_add(s->ev_conn, &tv);
	s->state = SC_CONNECT;
}

/* smtpc_free - the session and its connection; NULL is fine */
void
smtpc_free(struct smtpc *s)
{
	if (s == NULL)
		return;
	smtpc_unlist(s);
	if (s->ev_conn != NULL)
		event_free(s->ev_conn);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->bev != NULL)
		bufferevent_free(s->bev);	/* closes fd, frees ssl */
	else if (s->fd != -1)
		close(s->fd);
	free(s->list);
	free(s->auth_user);
	if (s->job != NULL)
		s->job->sess = NULL;
	free(s);
}

static void
smtpc_enter(struct smtpc *s, enum smtpc_state st)
{
	log_debug("%s: %s: %s -> %s", smtpc_id(s), s->where,
	    smtpc_state_names[s->state], smtpc_state_names[st]);
	s->state = st;
}

/* smtpc_wait - (re)arm the one timer of the session */
static void
smtpc_wait(struct smtpc *s, uint32_t secs)
{
	struct timeval	 tv;

	tv.tv_sec = secs;
	tv.tv_usec = 0;
	evtimer_add(s->timer, &tv);
}

static void
smtpc_on_connect(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpc	*s = arg;
	socklen_t	 len = sizeof(int);
	int		 err = 0, one = 1;

	event_free(s->ev_conn);
	s->ev_conn = NULL;
	if (ev & EV_TIMEOUT) {
		smtpc_next(s, 451, "4.4.1", "connect to %s: timed out after "
		    "%u s", s->where, s->t_connect);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		smtpc_next(s, 451, "4.4.1", "connect to %s: %s", s->where,
		    strerror(err));
		return;
	}
	/* a reply per round trip: Nagle would hold every command back */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	log_debug("%s: connected to %s", smtpc_id(s), s->job->relay);
	if (smtpc_attach(s, s->tls == CONF_ROUTE_TLS_IMPLICIT) == -1)
		return;
	if (s->tls == CONF_ROUTE_TLS_IMPLICIT) {
		smtpc_enter(s, SC_TLS_WRAP);
		smtpc_wait(s, s->t_cmd);
	} else {
		smtpc_enter(s, SC_GREETING);
		smtpc_wait(s, s->t_cmd);
	}
}

/*
 * smtpc_attach - put a bufferevent on the connection: plain, TLS from
 * the first byte (implicit), or TLS over the plain one (STARTTLS).
 * Callbacks are deferred so that a callback may free the session.
 */
static int
smtpc_attach(struct smtpc *s, int tls)
{
	struct bufferevent	*bev;
	char			 err[256];
	int			 opts = BEV_OPT_CLOSE_ON_FREE |
				    BEV_OPT_DEFER_CALLBACKS;

	if (tls) {
		if ((s->ssl = dlv_tls_new(s->tls, s->host, err,
		    sizeof(err))) == NULL) {
			smtpc_fail(s, 451, "4.7.5", "TLS with %s: %s",
			    s->where, err);
			return -1;
		}
		if (s->bev == NULL)
			bev = bufferevent_openssl_socket_new(dlv_env->base,
			    s->fd, s->ssl, BUFFEREVENT_SSL_CONNECTING, opts);
		else {
			/* the filter sets its own pace on the plain layer */
			bufferevent_setwatermark(s->bev, EV_READ | EV_WRITE, 0,
			    0);
			bev = bufferevent_openssl_filter_new(dlv_env->base,
			    s->bev, s->ssl, BUFFEREVENT_SSL_CONNECTING, opts);
		}
		if (bev == NULL) {
			SSL_free(s->ssl);
			s->ssl = NULL;
			smtpc_fail(s, 451, "4.7.5", "TLS with %s: cannot "
			    "start", s->where);
			return -1;
		}
		/* after QUIT a server may just close: that is no attack */
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else if ((bev = bufferevent_socket_new(dlv_env->base, s->fd,
	    opts)) == NULL)
		fatalx("%s: bufferevent_socket_new", __func__);
	s->bev = bev;
	s->fd = -1;
	bufferevent_setcb(bev, smtpc_readcb, smtpc_writecb, smtpc_eventcb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, SMTPC_IN_MAX);
	bufferevent_setwatermark(bev, EV_WRITE, SMTPC_OUT_LOW, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return 0;
}

static void
smtpc_on_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpc	*s = arg;

	if (s->state == SC_QUIT) {
		smtpc_close(s);
		return;
	}
	if (s->state == SC_IDLE) {
		/* nothing came for it in time: QUIT, and tell queued */
		smtpc_idle_quit(s);
		return;
	}
	if (s->state == SC_GREETING) {
		smtpc_next(s, 451, "4.4.2", "conversation with %s timed out "
		    "%s", s->where, smtpc_phase(s));
		return;
	}
	smtpc_fail(s, 451, "4.4.2", "conversation with %s timed out %s",
	    s->where, smtpc_phase(s));
}

/* smtpc_phase - where the session was, for messages */
static const char *
smtpc_phase(const struct smtpc *s)
{
	switch (s->state) {
	case SC_CONNECT:
		return "while connecting";
	case SC_TLS_WRAP:
	case SC_TLS_START:
		return "during the TLS handshake";
	case SC_GREETING:
		return "while receiving the initial server greeting";
	case SC_EHLO:
		return "after EHLO";
	case SC_HELO:
		return "after HELO";
	case SC_STARTTLS:
		return "after STARTTLS";
	case SC_AUTH:
	case SC_AUTH_USER:
	case SC_AUTH_PASS:
		return "after AUTH";
	case SC_ENVELOPE:
		return s->answered == 0 ? "after MAIL FROM" :
		    s->answered <= s->nlist ? "after RCPT TO" : "after DATA";
	case SC_BODY:
		return "while sending the message body";
	case SC_DOT:
	case SC_DOT_DISCARD:
		return "after the end of data";
	case SC_QUIT:
		return "after QUIT";
	case SC_RSET:
		return "after RSET";
	case SC_IDLE:
		return "while idle";
	}
	return "";
}

static void
smtpc_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpc	*s = arg;
	unsigned long	 e;
	char		 why[256];

	if (what & BEV_EVENT_CONNECTED) {
		/* the TLS handshake is complete */
		dlv_tls_describe(s->ssl, s->tls_desc, sizeof(s->tls_desc));
		log_debug("%s: TLS with %s: %s", smtpc_id(s), s->job->relay,
		    s->tls_desc);
		if (s->state == SC_TLS_WRAP) {
			smtpc_enter(s, SC_GREETING);
			smtpc_wait(s, s->t_cmd);
		} else if (s->state == SC_TLS_START) {
			/* RFC 3207 4.2: forget all we knew; ask again */
			s->caps = 0;
			s->size_max = 0;
			smtpc_enter(s, SC_EHLO);
			s->ehlo_caps = 0;
			s->ehlo_size = 0;
			smtpc_send(s, "EHLO %s", s->helo);
		}
		return;
	}
	if (s->state == SC_QUIT || s->state == SC_IDLE) {
		smtpc_close(s);
		return;
	}
	if (s->state == SC_GREETING && s->ssl == NULL) {
		smtpc_next(s, 451, "4.4.2", "lost connection with %s %s",
		    s->where, smtpc_phase(s));
		return;
	}
	if (s->state == SC_TLS_WRAP || s->state == SC_TLS_START) {
		e = bufferevent_get_openssl_error(bev);
		dlv_tls_error(s->ssl, e, why, sizeof(why));
		smtpc_fail(s, 451, "4.7.5", "TLS handshake with %s failed: %s",
		    s->where, why);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		e = s->ssl != NULL ? bufferevent_get_openssl_error(bev) : 0;
		if (e != 0) {
			dlv_tls_error(NULL, e, why, sizeof(why));
			smtpc_fail(s, 451, "4.4.2", "lost connection with %s "
			    "%s: %s", s->where, smtpc_phase(s), why);
		} else
			smtpc_fail(s, 451, "4.4.2", "lost connection with %s "
			    "%s: %s", s->where, smtpc_phase(s),
			    strerror(errno != 0 ? errno : ECONNRESET));
		return;
	}
	smtpc_fail(s, 451, "4.4.2", "lost connection with %s %s", s->where,
	    smtpc_phase(s));
}

/*
 * smtpc_readcb - whole reply lines, each bounded before it is copied
 * (PF-smtp: a line without an end is refused at the bound, not read on)
 */
static void
smtpc_readcb(struct bufferevent *bev, void *arg)
{
	struct smtpc		*s = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 p;
	char			 line[SMTPC_LINE_MAX + 1];
	size_t			 eol;
	int			 r;

	for (;;) {
		/* a server speaks to an idle client only to say goodbye */
		if (s->state == SC_IDLE) {
			if (evbuffer_get_length(in) > 0) {
				log_debug("%s: %s spoke on an idle connection; "
				    "closing it", smtpc_id(s), s->where);
				smtpc_close(s);
			}
			return;
		}
		/* the body is going out: replies wait, within the bound */
		if (s->state == SC_BODY || s->state == SC_CONNECT ||
		    s->state == SC_TLS_WRAP || s->state == SC_TLS_START)
			return;
		if (s->state == SC_ENVELOPE && s->answered >= s->sent) {
			if (evbuffer_get_length(in) > 0) {
				smtpc_fail(s, 451, "4.5.0", "%s sent a reply "
				    "nobody asked for %s", s->where,
				    smtpc_phase(s));
			}
			return;
		}
		p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF);
		if (p.pos == -1) {
			if (evbuffer_get_length(in) >= SMTPC_LINE_MAX)
				smtpc_fail(s, 451, "4.5.0", "%s sent a reply "
				    "line longer than %d bytes", s->where,
				    SMTPC_LINE_MAX);
			return;
		}
		if ((size_t)p.pos + eol > SMTPC_LINE_MAX) {
			smtpc_fail(s, 451, "4.5.0", "%s sent a reply line "
			    "longer than %d bytes", s->where, SMTPC_LINE_MAX);
			return;
		}
		evbuffer_remove(in, line, (size_t)p.pos);
		line[p.pos] = '\0';
		evbuffer_drain(in, eol);
		if ((r = smtpc_line(s, line, (size_t)p.pos)) == -1)
			return;		/* the session is gone */
		if (r == 1 && smtpc_reply(s) == -1)
			return;
	}
}

static void
smtpc_writecb(struct bufferevent *bev, void *arg)
{
	struct smtpc	*s = arg;

	if (s->state == SC_BODY)
		smtpc_body(s);
}

/*
 * smtpc_line - one line of a reply: 0 more to come, 1 complete, -1 the
 * session ended (a malformed reply)
 */
static int
smtpc_line(struct smtpc *s, const char *line, size_t len)
{
	char	 shown[SMTPC_LINE_MAX * 4 + 1];
	int	 rc;

	log_printable(shown, sizeof(shown), line, len);
	log_debug("%s: < %s: %s", smtpc_id(s), s->where, shown);
	switch ((rc = smtp_reply_line(&s->rep, line, len, SMTPC_REPLY_LINES))) {
	case SMTP_REPLY_MORE:
	case SMTP_REPLY_DONE:
		break;
	case SMTP_REPLY_ERR_SYNTAX:
		smtpc_fail(s, 451, "4.5.0", "%s sent a malformed reply %s: "
		    "\"%.200s\"", s->where, smtpc_phase(s), shown);
		return -1;
	case SMTP_REPLY_ERR_CODE:
		smtpc_fail(s, 451, "4.5.0", "%s changed the reply code within "
		    "a reply %s", s->where, smtpc_phase(s));
		return -1;
	case SMTP_REPLY_ERR_LINES:
		smtpc_fail(s, 451, "4.5.0", "%s sent a reply of more than %d "
		    "lines", s->where, SMTPC_REPLY_LINES);
		return -1;
	default:
		fatalx("%s: unexpected result %d", __func__, rc);
	}
	/* RFC 5321 4.1.1.1: an extension a line, after the first */
	if (s->state == SC_EHLO && s->rep.nlines > 1 && len > 4)
		smtp_reply_ehlo(line + 4, len - 4, &s->ehlo_caps,
		    &s->ehlo_size);
	return rc == SMTP_REPLY_DONE;
}

/*
 * smtpc_reply - a complete reply in s->rep: act on it.  0: read on;
 * -1: stop reading this input (the session may be gone, or have moved
 * on to a state that reads later or through another bufferevent)
 */
static int
smtpc_reply(struct smtpc *s)
{
	struct smtp_reply	*r = &s->rep;

	evtimer_del(s->timer);
	/* the server wants fewer of us: queued pauses the destination */
	if (s->job != NULL && s->state != SC_RSET && r->code / 100 == 4 &&
	    (r->code == 421 ||
	    strcasestr(r->text, "too many connections") != NULL))
		s->job->done_flags |= QP_DONE_BACKOFF;
	switch (s->state) {
	case SC_GREETING:
		if (r->code / 100 != 2) {
			char	 st[DLV_STATUS_MAX], text[QP_MAX_TEXT + 1];
			int	 code;

			/* RFC 5321 5.1: another address may serve */
			smtpc_outcome(r, RR_DEFER, &code, st, text,
			    sizeof(text));
			smtpc_next(s, code, st, "%s", text);
			return -1;
		}
		smtpc_enter(s, SC_EHLO);
		s->ehlo_caps = 0;
		s->ehlo_size = 0;
		smtpc_send(s, "EHLO %s", s->helo);
		return 0;
	case SC_EHLO:
		if (r->code / 100 == 5) {
			/* RFC 5321 3.2: a server without ESMTP */
			smtpc_enter(s, SC_HELO);
			smtpc_send(s, "HELO %s", s->helo);
			return 0;
		}
		if (r->code / 100 != 2) {
			smtpc_fail_reply(s, r, RR_DEFER);
			return -1;
		}
		s->caps = s->ehlo_caps;
		s->size_max = s->ehlo_size;
		return smtpc_after_ehlo(s);
	case SC_HELO:
		if (r->code / 100 != 2) {
			smtpc_fail_reply(s, r, RR_DEFER);
			return -1;
		}
		s->caps = 0;
		s->size_max = 0;
		return smtpc_after_ehlo(s);
	case SC_STARTTLS:
		if (r->code != 220) {
			if (s->tls == CONF_ROUTE_TLS_MAY) {
				char	 shown[sizeof(r->text) * 4];

				/* opportunistic: go on in clear */
				log_printable(shown, sizeof(shown), r->text,
				    r->len);
				log_info("%s: %s refused STARTTLS (%s); going "
				    "on without TLS", smtpc_id(s), s->where,
				    shown);
				s->caps &= ~SMTP_EXT_STARTTLS;
				return smtpc_after_ehlo(s);
			}
			smtpc_giveup(s, 451, "4.7.5", "TLS is required, but %s "
			    "refused STARTTLS: %s", s->where, r->text);
			return -1;
		}
		/*
		 * Anything after the 220 was sent before TLS and would be
		 * read as if it came through it (CVE-2011-0411 in reverse).
		 */
		if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
			smtpc_fail(s, 451, "4.7.5", "%s sent data after its "
			    "STARTTLS reply; refusing it", s->where);
			return -1;
		}
		smtpc_enter(s, SC_TLS_START);
		if (smtpc_attach(s, 1) == -1)
			return -1;
		smtpc_wait(s, s->t_cmd);
		return -1;	/* the input buffer is another one now */
	case SC_AUTH:
		if (r->code / 100 != 2) {
			/* the server's verdict stands: 535 5.7.8 bounces */
			smtpc_fail_reply(s, r, 0);
			return -1;
		}
		log_debug("%s: authenticated to %s as %s", smtpc_id(s),
		    s->where, s->auth_user);
		return smtpc_envelope(s);
	case SC_AUTH_USER:
	case SC_AUTH_PASS:
		if (r->code != 334) {
			smtpc_fail_reply(s, r, 0);
			return -1;
		}
		if (s->state == SC_AUTH_USER) {
			smtpc_send_secret(s, "", s->auth_user,
			    strlen(s->auth_user));
			smtpc_enter(s, SC_AUTH_PASS);
		} else {
			smtpc_send_secret(s, "", s->secret->value,
			    s->secret->len);
			smtpc_enter(s, SC_AUTH);
		}
		return 0;
	case SC_ENVELOPE:
		return smtpc_envelope_reply(s);
	case SC_DOT:
		return smtpc_final(s);
	case SC_DOT_DISCARD:
		smtpc_quit(s);
		return -1;
	case SC_QUIT:
		smtpc_close(s);
		return -1;
	case SC_RSET:
		if (r->code / 100 != 2) {
			smtpc_redo(s, r->text);
			return -1;
		}
		return smtpc_envelope(s);
	default:
		fatalx("%s: unexpected state %d", __func__, s->state);
	}
	/* NOTREACHED */
	return -1;
}

/* smtpc_after_ehlo - the TLS policy, then AUTH, then the envelope */
static int
smtpc_after_ehlo(struct smtpc *s)
{
	if (s->ssl == NULL && s->tls != CONF_ROUTE_TLS_NONE) {
		if (s->caps & SMTP_EXT_STARTTLS)
			return smtpc_starttls(s);
		if (s->tls != CONF_ROUTE_TLS_MAY) {
			/* a failure defers, never downgrades */
			smtpc_giveup(s, 451, "4.7.10", "TLS is required, but "
			    "was not offered by %s", s->where);
			return -1;
		}
	}
	if (s->auth_user != NULL)
		return smtpc_auth(s);
	return smtpc_envelope(s);
}

static int
smtpc_starttls(struct smtpc *s)
{
	smtpc_enter(s, SC_STARTTLS);
	smtpc_send(s, "STARTTLS");
	return 0;
}

/*
 * smtpc_auth - PLAIN with an initial response (RFC 4954 4), or LOGIN if
 * that is all the server has; never without TLS unless the route chose
 * tls = "none" in so many words
 */
static int
smtpc_auth(struct smtpc *s)
{
	char	*plain;
	size_t	 ul, pl, n;

	if (s->ssl == NULL && s->tls != CONF_ROUTE_TLS_NONE) {
		smtpc_giveup(s, 451, "4.7.10", "refusing to send credentials "
		    "to %s without TLS (it offered no STARTTLS)", s->where);
		return -1;
	}
	if (s->caps & SMTP_EXT_AUTH_PLAIN) {
		ul = strlen(s->auth_user);
		pl = s->secret->len;
		n = 1 + ul + 1 + pl;
		plain = sodium_malloc(n);
		if (plain == NULL)
			fatalx("%s: sodium_malloc", __func__);
		/* authorization id empty: act as the authenticated user */
		plain[0] = '\0';
		memcpy(plain + 1, s->auth_user, ul);
		plain[1 + ul] = '\0';
		memcpy(plain + 2 + ul, s->secret->value, pl);
		smtpc_enter(s, SC_AUTH);
		smtpc_send_secret(s, "AUTH PLAIN ", plain, n);
		sodium_free(plain);
		return 0;
	}
	if (s->caps & SMTP_EXT_AUTH_LOGIN) {
		smtpc_enter(s, SC_AUTH_USER);
		smtpc_send(s, "AUTH LOGIN");
		return 0;
	}
	smtpc_giveup(s, 451, "4.7.0", "%s offers no AUTH mechanism we can use "
	    "(PLAIN, LOGIN)", s->where);
	return -1;
}

/*
 * smtpc_envelope - what the server must support for this message,
 * then MAIL, RCPT..., DATA
 */
static int
smtpc_envelope(struct smtpc *s)
{
	struct dlv_job	*j = s->job;
	size_t		 i;

	if ((j->flags & QP_SMTPUTF8) && !(s->caps & SMTP_EXT_SMTPUTF8)) {
		smtpc_giveup(s, 553, "5.6.7", "SMTPUTF8 is required, but was "
		    "not offered by %s", s->where);
		return -1;
	}
	if (s->size_max > 0 && j->size > s->size_max) {
		smtpc_giveup(s, 552, "5.3.4", "message size %zu exceeds size "
		    "limit %llu of %s", j->size,
		    (unsigned long long)s->size_max, s->where);
		return -1;
	}
	s->list = xreallocarray(NULL, j->n, sizeof(*s->list));
	for (i = 0; i < j->n; i++)
		if (j->rcpts[i].code == 0)
			s->list[s->nlist++] = i;
	s->ncmds = s->nlist + 2;
	s->nmsgs++;
	j->t_mail = dlv_now_ms();
	s->window = (s->caps & SMTP_EXT_PIPELINING) ? SMTPC_PIPE_WINDOW : 1;
	if (s->caps & SMTP_EXT_DSN)
		j->done_flags |= QP_DONE_DSN;
	smtpc_enter(s, SC_ENVELOPE);
	return smtpc_pump(s);
}

/*
 * smtpc_pump - send what the window allows (RFC 2920: all of it in one
 * write when the server pipelines); DATA waits for a RCPT to pass when
 * the server does not
 */
static int
smtpc_pump(struct smtpc *s)
{
	struct dlv_job	*j = s->job;
	struct dlv_rcpt	*r;
	char		 mail[SMTPC_CMD_MAX], rcpt[SMTPC_CMD_MAX];
	static const char *const notify[] = { "NEVER", "SUCCESS", "FAILURE",
	    "DELAY" };
	size_t		 k, n;
	int		 dsn = (s->caps & SMTP_EXT_DSN) != 0, first;

	while (!s->stop && s->sent < s->ncmds &&
	    s->sent - s->answered < s->window) {
		if (s->sent == 0) {
			smtpc_mail(s, mail, sizeof(mail));
			smtpc_send(s, "%s", mail);
		} else if (s->sent <= s->nlist) {
			r = &j->rcpts[s->list[s->sent - 1]];
			n = (size_t)snprintf(rcpt, sizeof(rcpt), "RCPT TO:<%s>",
			    r->addr);
			if (dsn && r->notify != 0) {
				n += (size_t)snprintf(rcpt + n,
				    sizeof(rcpt) - n, " NOTIFY=");
				first = 1;
				for (k = 0; k < 4; k++)
					if (r->notify & (1U << k)) {
						n += (size_t)snprintf(rcpt + n,
						    sizeof(rcpt) - n, "%s%s",
						    first ? "" : ",",
						    notify[k]);
						first = 0;
					}
			}
			if (dsn && r->orcpt[0] != '\0')
				snprintf(rcpt + n, sizeof(rcpt) - n,
				    " ORCPT=%s", r->orcpt);
			smtpc_send(s, "%s", rcpt);
		} else {
			/*
			 * Without pipelining DATA goes only when a RCPT
			 * passed; with it, DATA rides along (RFC 2920 3.1)
			 * and a 354 with no recipient gets a lone dot.
			 */
			if (s->answered == s->sent && s->naccepted == 0) {
				s->stop = 1;
				break;
			}
			smtpc_send(s, "DATA");
		}
		s->sent++;
	}
	if (s->answered == s->sent &&
	    (s->stop || s->sent == s->ncmds))
		return smtpc_envelope_done(s);
	smtpc_wait(s, s->t_cmd);
	return 0;
}

/*
 * smtpc_mail - the MAIL command with what the server takes: SIZE (RFC
 * 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET and ENVID (RFC 3461)
 */
static void
smtpc_mail(struct smtpc *s, char *buf, size_t len)
{
	struct dlv_job	*j = s->job;
	size_t		 n;

	n = (size_t)snprintf(buf, len, "MAIL FROM:<%s>", j->sender);
	if ((s->caps & SMTP_EXT_SIZE) && n < len)
		n += (size_t)snprintf(buf + n, len - n, " SIZE=%zu", j->size);
	/*
	 * Without 8BITMIME an 8-bit message goes as it is, unlabelled
	 * (what Postfix does with its MIME conversion off); BDAT is not
	 * spoken, so BINARYMIME travels as 8BITMIME.
	 */
	if ((j->flags & (QP_BODY_8BITMIME | QP_BODY_BINARYMIME)) &&
	    (s->caps & SMTP_EXT_8BITMIME) && n < len)
		n += (size_t)snprintf(buf + n, len - n, " BODY=8BITMIME");
	if ((j->flags & QP_SMTPUTF8) && n < len)
		n += (size_t)snprintf(buf + n, len - n, " SMTPUTF8");
	if (!(s->caps & SMTP_EXT_DSN))
		return;
	if ((j->flags & (QP_RET_FULL | QP_RET_HDRS)) && n < len)
		n += (size_t)snprintf(buf + n, len - n, " RET=%s",
		    (j->flags & QP_RET_FULL) ? "FULL" : "HDRS");
	if (j->envid[0] != '\0' && n < len)
		snprintf(buf + n, len - n, " ENVID=%s", j->envid);
}

/* smtpc_envelope_reply - the reply to command s->answered of the group */
static int
smtpc_envelope_reply(struct smtpc *s)
{
	struct smtp_reply	*r = &s->rep;
	struct dlv_rcpt		*rc;
	size_t			 i = s->answered++;

	if (i == 0) {
		if (r->code / 100 != 2) {
			s->mail_failed = 1;
			s->stop = 1;
			s->mail_rep = *r;
		}
	} else if (i <= s->nlist) {
		rc = &s->job->rcpts[s->list[i - 1]];
		if (s->mail_failed)
			;	/* MAIL's reply speaks for all */
		else if (r->code / 100 == 2) {
			rc->accepted = 1;
			s->naccepted++;
		} else
			smtpc_rcpt_reply(rc, r, 0);
	} else {
		if (r->code == 354)
			s->data_ok = 1;
		else
			s->data_rep = *r;
	}
	return smtpc_pump(s);
}

/* smtpc_envelope_done - every reply of the group is in */
static int
smtpc_envelope_done(struct smtpc *s)
{
	struct dlv_job	*j = s->job;
	size_t		 i;

	evtimer_del(s->timer);
	if (s->mail_failed || s->naccepted == 0 || !s->data_ok) {
		for (i = 0; i < s->nlist; i++) {
			struct dlv_rcpt *rc = &j->rcpts[s->list[i]];

			if (s->mail_failed)
				smtpc_rcpt_reply(rc, &s->mail_rep, 0);
			else if (rc->accepted && !s->data_ok)
				smtpc_rcpt_reply(rc, &s->data_rep, 0);
		}
		if (s->data_ok) {
			/* nobody to send it to: end the empty message */
			dlv_job_report(j);
			smtpc_enter(s, SC_DOT_DISCARD);
			smtpc_send(s, ".");
			return 0;
		}
		smtpc_done(s);
		return -1;
	}
	smtpc_enter(s, SC_BODY);
	smtpc_body(s);
	return -1;	/* replies wait until the body is out */
}

/*
 * smtpc_body - queue more of the message as the output drains,
 * dot-stuffed (RFC 5321 4.5.2): a dot is added before every line that
 * begins with one; the rest goes as it is, in large pieces
 */
static void
smtpc_body(struct smtpc *s)
{
	struct dlv_job		*j = s->job;
	struct evbuffer		*out = bufferevent_get_output(s->bev);
	const uint8_t		*b = j->body;
	const char		*end;
	size_t			 n;
	int			 stuff;

	while (s->off < j->size && evbuffer_get_length(out) < SMTPC_OUT_HIGH) {
		n = smtp_reply_dot_span(b, j->size, s->off, SMTPC_OUT_HIGH,
		    &stuff);
		if (stuff)
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, b + s->off, n);
		s->off += n;
	}
	if (s->off < j->size) {
		smtpc_wait(s, s->t_cmd);
		return;
	}
	end = smtp_reply_dot_end(b, j->size, &n);
	evbuffer_add(out, end, n);
	log_debug("%s: > %s: [%zu bytes of message] .", j->id, s->where,
	    j->size);
	smtpc_enter(s, SC_DOT);
	smtpc_wait(s, s->t_data);
	/* replies may have waited while the body went out */
	smtpc_readcb(s->bev, s);
}

/* smtpc_final - the reply to the dot is every accepted recipient's */
static int
smtpc_final(struct smtpc *s)
{
	struct dlv_job	*j = s->job;
	size_t		 i;

	for (i = 0; i < j->n; i++)
		if (j->rcpts[i].accepted)
			smtpc_rcpt_reply(&j->rcpts[i], &s->rep, RR_OK);
	smtpc_done(s);
	return -1;
}

/* smtpc_send - one command line, logged */
static void
smtpc_send(struct smtpc *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	char		 line[QP_MAX_ADDR * 2 + QP_MAX_PARAM + 256];
	char		 shown[sizeof(line) * 4];
	va_list		 ap;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		fatalx("%s: command line too long", __func__);
	log_printable(shown, sizeof(shown), line, (size_t)n);
	log_debug("%s: > %s: %s", smtpc_id(s), s->where, shown);
	evbuffer_add(out, line, (size_t)n);
	evbuffer_add(out, "\r\n", 2);
	smtpc_wait(s, s->t_cmd);
}

/* smtpc_send_secret - prefix + base64(data); logged as stars, wiped */
static void
smtpc_send_secret(struct smtpc *s, const char *prefix, const char *data,
    size_t len)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	size_t		 blen = sodium_base64_encoded_len(len,
			    sodium_base64_VARIANT_ORIGINAL);
	char		*b64;

	if ((b64 = sodium_malloc(blen)) == NULL)
		fatalx("%s: sodium_malloc", __func__);
	sodium_bin2base64(b64, blen, (const unsigned char *)data, len,
	    sodium_base64_VARIANT_ORIGINAL);
	log_debug("%s: > %s: %s********", smtpc_id(s), s->where, prefix);
	evbuffer_add(out, prefix, strlen(prefix));
	evbuffer_add(out, b64, strlen(b64));
	evbuffer_add(out, "\r\n", 2);
	sodium_free(b64);
	smtpc_wait(s, s->t_cmd);
}

/*
 * smtpc_rcpt_reply - a server reply as one recipient's outcome.  With
 * RR_DEFER a 5xx about the session (greeting, EHLO) becomes a 4xx, as
 * Postfix does: one misconfigured smarthost must not bounce the queue.
 * A reply of a class that makes no outcome here (a 2xx where a failure
 * was meant, any 3xx) is a protocol error, never a delivery.
 */
static void
smtpc_rcpt_reply(struct dlv_rcpt *rc, const struct smtp_reply *r, int flags)
{
	char	 status[DLV_STATUS_MAX], text[QP_MAX_TEXT + 1];
	int	 code;

	smtpc_outcome(r, flags, &code, status, text, sizeof(text));
	dlv_rcpt_set(rc, code, status, "%s", text);
}

/* smtpc_outcome - what smtpc_rcpt_reply() makes of a reply */
static void
smtpc_outcome(const struct smtp_reply *r, int flags, int *codep,
    char *status, char *text, size_t len)
{
	int	 code = r->code;

	if ((code / 100 == 2 && !(flags & RR_OK)) || code / 100 == 3) {
		*codep = 451;
		strlcpy(status, "4.5.0", DLV_STATUS_MAX);
		strlcpy(text, "unexpected reply: ", len);
		strlcat(text, r->text, len);
		return;
	}
	if (r->status[0] != '\0')
		strlcpy(status, r->status, DLV_STATUS_MAX);
	else
		snprintf(status, DLV_STATUS_MAX, "%d.0.0", code / 100);
	if ((flags & RR_DEFER) && code / 100 == 5) {
		code -= 100;
		status[0] = '4';
	}
	*codep = code;
	strlcpy(text, r->text, len);
}

/*
 * smtpc_next - this address gave no session (connect, greeting): back
 * to mx.c with why, for the next one.  The session is gone after.
 */
static void
smtpc_next(struct smtpc *s, int code, const char *status, const char *fmt,
    ...)
{
	va_list	 ap;
	char	 text[QP_MAX_TEXT + 1];

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_info("%s: %s; trying the next address, if any", smtpc_id(s),
	    text);
	dlv_path_next(s->job, code, status, text);
}

/*
 * smtpc_fail - the session broke (time-out, lost connection, a
 * malformed reply, TLS): every recipient without an outcome gets this
 * one and the connection is dropped, as nothing more can be said on it
 */
static void
smtpc_fail(struct smtpc *s, int code, const char *status, const char *fmt,
    ...)
{
	va_list	 ap;
	char	 text[QP_MAX_TEXT + 1];

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("%s: %s", smtpc_id(s), text);
	if (s->job == NULL) {
		smtpc_close(s);		/* a kept one, saying goodbye */
		return;
	}
	if (s->state == SC_RSET) {
		smtpc_redo(s, text);
		return;
	}
	dlv_job_fail_all(s->job, code, status, "%s", text);
	smtpc_close(s);
}

/*
 * smtpc_giveup - the session works but this message cannot go on it
 * (policy, size, SMTPUTF8): the outcome for everyone left, then QUIT
 */
static void
smtpc_giveup(struct smtpc *s, int code, const char *status, const char *fmt,
    ...)
{
	va_list	 ap;
	char	 text[QP_MAX_TEXT + 1];

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("%s: %s", smtpc_id(s), text);
	dlv_job_fail_all(s->job, code, status, "%s", text);
	smtpc_quit(s);
}

/* smtpc_fail_reply - a server reply for everyone still without one */
static void
smtpc_fail_reply(struct smtpc *s, const struct smtp_reply *r, int flags)
{
	size_t	 i;

	for (i = 0; i < s->job->n; i++)
		if (s->job->rcpts[i].code == 0)
			smtpc_rcpt_reply(&s->job->rcpts[i], r, flags);
	if (r->code == 421)
		smtpc_close(s);		/* it is closing anyway */
	else
		smtpc_quit(s);
}

/* smtpc_quit - answer queued now, then QUIT politely */
static void
smtpc_quit(struct smtpc *s)
{
	dlv_job_report(s->job);
	smtpc_enter(s, SC_QUIT);
	smtpc_send(s, "QUIT");
	smtpc_wait(s, SMTPC_QUIT_TIMEOUT);
}

/* smtpc_done - the transaction is over: keep the connection, or QUIT */
static void
smtpc_done(struct smtpc *s)
{
	if (!smtpc_keep(s))
		smtpc_quit(s);
}

/*
 * smtpc_keep - answer queued and keep the connection open for the next
 * job to the same route and destination, if the route allows another
 * message on it; the job ends here and the session lives on without it
 */
static int
smtpc_keep(struct smtpc *s)
{
	struct dlv_job	*j = s->job;

	if (s->idle_timeout == 0 || s->nmsgs >= s->max_msgs ||
	    s->gen != smtpc_gen || j->peer == NULL ||
	    (j->done_flags & QP_DONE_BACKOFF) ||
	    evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		return 0;
	j->done_flags |= QP_DONE_KEPT;
	s->peer = j->peer;
	dlv_job_report(j);
	j->sess = NULL;
	s->job = NULL;
	dlv_job_free(j);
	log_debug("%s: %s: kept for %u s after %d message%s", smtpc_id(s),
	    s->where, s->idle_timeout, s->nmsgs, s->nmsgs == 1 ? "" : "s");
	smtpc_enter(s, SC_IDLE);
	smtpc_list(s, &idle);
	smtpc_wait(s, s->idle_timeout);
	return 1;
}

/*
 * smtpc_reuse - give the job a kept connection to its destination, if
 * there is one; RSET first, as the server may remember the last one
 */
int
smtpc_reuse(struct dlv_job *j)
{
	struct smtpc	*s;

	TAILQ_FOREACH(s, &idle, entry)
		if (s->route == j->route && s->peer == j->peer &&
		    s->gen == smtpc_gen && strcmp(s->dest, j->dest) == 0)
			break;
	if (s == NULL)
		return 0;
	smtpc_unlist(s);
	s->job = j;
	j->sess = s;
	strlcpy(j->relay, s->relay, sizeof(j->relay));
	free(s->list);
	s->list = NULL;
	s->nlist = s->ncmds = s->sent = s->answered = s->naccepted = 0;
	s->stop = s->mail_failed = s->data_ok = 0;
	s->off = 0;
	smtp_reply_init(&s->rep);
	log_debug("%s: reusing the connection to %s (message %d on it)",
	    j->id, s->where, s->nmsgs + 1);
	smtpc_enter(s, SC_RSET);
	smtpc_send(s, "RSET");
	return 1;
}

/*
 * smtpc_redo - a kept connection failed before this job's envelope
 * went out (the server closed it, or refused RSET): nothing was sent
 * for the job, so it starts over on a new connection
 */
static void
smtpc_redo(struct smtpc *s, const char *why)
{
	struct dlv_job	*j = s->job;
	char		 shown[QP_MAX_TEXT * 4 + 1];

	log_printable(shown, sizeof(shown), why, strlen(why));
	log_debug("%s: the kept connection to %s is gone (%s); opening a "
	    "new one", j->id, s->where, shown);
	j->sess = NULL;
	s->job = NULL;
	smtpc_free(s);
	dlv_job_route(j);
}

/*
 * smtpc_close - the end: the job goes, and the session with it; a kept
 * connection that ends tells queued, which counts it as open till then
 */
static void
smtpc_close(struct smtpc *s)
{
	struct ipc_frame	 f;

	if (s->job != NULL) {
		dlv_job_end(s->job);
		return;
	}
	if (s->peer != NULL) {
		ipc_frame_init(&f, IPC_DLV_CLOSED, 0);
		ipc_put_u32(&f, s->route);
		ipc_put_str(&f, s->dest);
		if (ipc_send(s->peer->ipc, &f, -1) == -1)
			log_warnx("cannot send DLV_CLOSED to %s",
			    ipc_name(s->peer->ipc));
	}
	smtpc_free(s);
}

/*
 * smtpc_flush_idle - a reload, or queued gone (peer): kept connections
 * QUIT now; with a peer, only those kept for it, and queued is not told
 */
void
smtpc_flush_idle(struct child_peer *gone)
{
	struct smtpc	*s, *next;

	if (gone == NULL)
		smtpc_gen++;
	else
		TAILQ_FOREACH(s, &closing, entry)
			if (s->peer == gone)
				s->peer = NULL;
	for (s = TAILQ_FIRST(&idle); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (gone != NULL && s->peer != gone)
			continue;
		if (gone != NULL)
			s->peer = NULL;
		smtpc_idle_quit(s);
	}
}

/* smtpc_idle_quit - a kept connection says QUIT; queued hears at close */
static void
smtpc_idle_quit(struct smtpc *s)
{
	smtpc_unlist(s);
	smtpc_list(s, &closing);
	smtpc_enter(s, SC_QUIT);
	smtpc_send(s, "QUIT");
	smtpc_wait(s, SMTPC_QUIT_TIMEOUT);
}

static void
smtpc_list(struct smtpc *s, struct smtpcq *q)
{
	TAILQ_INSERT_HEAD(q, s, entry);
	s->listed = q;
}

static void
smtpc_unlist(struct smtpc *s)
{
	if (s->listed != NULL)
		TAILQ_REMOVE(s->listed, s, entry);
	s->listed = NULL;
}

/* smtpc_id - the queue id the session works for, for log lines */
static const char *
smtpc_id(const struct smtpc *s)
{
	return s->job != NULL ? s->job->id : "-";
}
