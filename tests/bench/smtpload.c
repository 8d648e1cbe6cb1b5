/*
 * smtpload - SMTP submission load generator: many sessions, one process
 *
 *	smtpload [--host H] [--port P] [--tls none|starttls|implicit]
 *	    [--auth user:pass] [--connections N] [--messages TOTAL]
 *	    [--per-connection M] [--size BYTES] [--rcpts N] [--pipelining]
 *	    [--from ADDR] [--to DOMAIN] [--timeout SECS] [--idle SECS]
 *	    [--rate MSGS] [--stamps FILE]
 *
 * N sessions run at once on one libevent loop, each driving OpenSSL on a
 * non-blocking socket itself (no bufferevent filter, so that a pipelined
 * group is one SSL_write, one record, one segment, as a real client
 * sends it).  A session greets, EHLOs, STARTTLS or TLS from the first
 * byte, AUTH PLAIN, then sends M messages before QUIT; the slot then
 * reconnects until TOTAL transactions have been started.  Every reply
 * is checked against the code expected at its step; a message counts as
 * ok only when every reply of its transaction was the expected one and
 * the last says "queued as".  A failure before the first transaction
 * (connect, TLS, EHLO, AUTH) uses up one message of TOTAL, so a server
 * that refuses everything ends the run instead of looping forever.
 *
 * The message is a small header block (From, To, Subject, Date, a
 * Message-ID unique per message) and a body of exactly BYTES octets in
 * CRLF lines of 76 characters; the body never starts a line with ".", so
 * it goes out without dot-stuffing.  Latency is measured from the moment
 * the last byte of "<CRLF>.<CRLF>" was handed to the kernel to the
 * moment the final reply arrives: it is the server's queueing time
 * (parsing, IPC, encryption, Redis and its fsync) plus one loopback
 * round trip, without the client's own sending time.
 *
 * With --rate MSGS the transactions start on a schedule instead of as
 * fast as the sessions allow: the k-th at k/MSGS seconds after the
 * start, taken by whichever session is free first (one that is late
 * starts at once).  With enough sessions for the replies' latency that
 * is a steady MSGS per second whatever the server does.
 *
 * With --stamps FILE every message carries "X-Bench-Id: PID.N" (N its
 * number in the run), and at the end FILE gets one line per message
 * that was queued, "PID.N USEC", with USEC the CLOCK_MONOTONIC time in
 * microseconds when its "queued as" reply was read.  A sink on the same
 * machine that logs when each id arrives (tests/bench/smtpsink.c) gives
 * the time from accepted to delivered.
 *
 * With --idle SECS no mail is sent: the N sessions (opened at most 64 at
 * a time, so the server's listen backlog never overflows) finish setup
 * and then sit idle; when all are up "idle: N sessions established" is
 * printed and flushed, and the sessions stay open for SECS seconds or
 * until SIGTERM/SIGINT.  That is how a caller measures the server's
 * memory per idle session.
 *
 * The certificate is not verified (the point is the server's cost, and
 * a bench server uses a self-signed one) and sessions are not resumed:
 * every connection pays a full handshake, like a fresh client process.
 *
 * Exit status: 2 on a usage error, 1 when every message failed (or, with
 * --idle, no session came up), else 0.  Speed never fails a run.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define IN_MAX		4096	/* longest reply line we accept */
#define ERR_KINDS	64	/* distinct error kinds remembered */
#define IDLE_RAMP	64	/* sessions in setup at once with --idle */
#define LINE_CHARS	76	/* body line length, CRLF not counted */

enum tls_mode {
	TLS_NONE,
	TLS_STARTTLS,
	TLS_IMPLICIT
};

enum step {
	STEP_CONNECT,
	STEP_TLS,
	STEP_GREETING,
	STEP_EHLO,
	STEP_STARTTLS,
	STEP_AUTH,
	STEP_MAIL,
	STEP_RCPT,
	STEP_DATA,
	STEP_DOT,
	STEP_RSET,
	STEP_QUIT,
	STEP_IDLE
};

static const char *step_names[] = {
	"connect", "TLS handshake", "greeting", "EHLO", "STARTTLS", "AUTH",
	"MAIL", "RCPT", "DATA", "end of data", "RSET", "QUIT", "idle"
};

#define CAP_PIPELINING	0x01
#define CAP_STARTTLS	0x02

struct conn {
	int		 fd;		/* -1 while closed */
	SSL		*ssl;
	struct event	*rev;		/* persistent read */
	struct event	*wev;		/* persistent write, on while needed */
	struct event	*tev;		/* reply timeout; reconnect when closed */
	int		 wev_on;
	int		 connecting;	/* TCP connect not finished */
	int		 handshaking;	/* SSL_connect not finished */
	int		 want_write;	/* last I/O call asked for POLLOUT */
	int		 setup_done;	/* greeted, TLS, EHLO, AUTH done */
	int		 counted_setup;	/* in the ramp's in-progress count */
	int		 caps;		/* CAP_* from the last EHLO */
	int		 ehlo_caps;	/* CAP_* collected while it arrives */
	int		 idle;

	enum step	*expect;	/* replies outstanding, oldest first */
	size_t		 exp_head, exp_tail;

	char		 in[IN_MAX];
	size_t		 inlen;

	char		*out;		/* commands and headers */
	size_t		 outlen, outoff, outcap;
	const char	*body;		/* the shared body, while it is sent */
	size_t		 bodylen, bodyoff;

	int		 authed;
	int		 in_txn;	/* a message of TOTAL is in flight */
	int		 txn_failed;
	int		 pipelined;	/* this transaction went as one group */
	unsigned long	 rcpt_sent;
	unsigned long	 msgno;
	unsigned long	 quota;		/* messages this session may still start */
	uint64_t	 t_eod;		/* when the final dot left, usec */
	struct event	*pev;		/* --rate: waiting for its start time */
	int		 paced;		/* its start time has come */
};

static struct {
	const char	*host;
	const char	*port;
	enum tls_mode	 tls;
	char		*auth_b64;	/* AUTH PLAIN initial response */
	unsigned long	 connections;
	unsigned long	 messages;
	unsigned long	 per_conn;
	unsigned long	 size;
	unsigned long	 rcpts;
	int		 pipelining;
	const char	*from;
	const char	*to;
	unsigned long	 timeout;
	long		 idle_secs;	/* -1: send mail */
	unsigned long	 rate;		/* transactions started per second */
	const char	*stamps;
} opt = {
	.host = "127.0.0.1",
	.port = "587",
	.tls = TLS_STARTTLS,
	.connections = 10,
	.messages = 100,
	.per_conn = 1,
	.size = 4096,
	.rcpts = 1,
	.from = "smtpload@example.org",
	.to = "example.net",
	.timeout = 30,
	.idle_secs = -1,
};

static struct {
	unsigned long	 claimed;	/* messages promised to open sessions */
	unsigned long	 started;	/* messages of TOTAL begun or lost */
	unsigned long	 ok;
	unsigned long	 failed;
	unsigned long	 conn_ok;	/* sessions that finished setup */
	unsigned long	 conn_failed;
	unsigned long	 idle_up, idle_down;
	unsigned long	 active;	/* slots not yet finished for good */
	uint32_t	*lat;		/* usec, one per ok message */
	unsigned long	 nlat;
	uint64_t	*stamp;		/* --stamps: "queued as" at, by number */
	unsigned long	 paced;		/* --rate: start times handed out */
	uint64_t	 t_start, t_end;
} st;

static struct {
	char		 key[48];
	unsigned long	 count;
	char		 first[160];
} errkinds[ERR_KINDS];
static unsigned long	 errkinds_other;

static struct event_base	*base;
static SSL_CTX			*ssl_ctx;
static struct addrinfo		*addr;
static struct conn		*conns;
static unsigned long		 next_start;	/* slots opened so far */
static unsigned long		 in_setup;	/* --idle ramp */
static int			 stopping;
static char			*msg_body;	/* body plus ".\r\n" */
static size_t			 msg_bodylen;
static const struct timeval	*tv_timeout;	/* a libevent common timeout */
static struct event		*hold_ev;
static int			 sni;
static unsigned long		 nslots;
static int			 announced;

static void	 usage(void) __attribute__((noreturn));
static unsigned long parse_num(const char *, const char *, unsigned long,
		    unsigned long);
static void	 fatalx(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static uint64_t	 now_us(void);
static void	 make_body(void);
static void	 err_note(enum step, const char *, const char *);
static void	 start_more(void);
static void	 conn_open(struct conn *);
static void	 conn_close(struct conn *);
static int	 conn_fail(struct conn *, const char *, const char *);
static int	 conn_done(struct conn *);
static void	 slot_next(struct conn *);
static void	 tls_start(struct conn *);
static const char *tls_err(int);
static int	 conn_write(struct conn *, const char *, size_t);
static enum step conn_step(struct conn *);
static void	 reply_kind(char *, size_t, int, const char *);
static void	 idle_check(void);
static void	 conn_io(evutil_socket_t, short, void *);
static void	 conn_timer(evutil_socket_t, short, void *);
static int	 conn_connected(struct conn *);
static int	 conn_handshake(struct conn *);
static int	 conn_flush(struct conn *);
static int	 conn_read(struct conn *);
static int	 conn_line(struct conn *, char *, size_t);
static int	 conn_reply(struct conn *, int, const char *);
static int	 conn_bad_reply(struct conn *, enum step, int, const char *);
static int	 conn_setup_next(struct conn *);
static int	 conn_next_message(struct conn *);
static int	 conn_rset(struct conn *);
static void	 conn_txn_end(struct conn *, int);
static void	 conn_update(struct conn *);
static void	 conn_printf(struct conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 conn_expect(struct conn *, enum step);
static void	 on_signal(evutil_socket_t, short, void *);
static void	 on_hold(evutil_socket_t, short, void *);
static void	 conn_pace(evutil_socket_t, short, void *);
static void	 write_stamps(void);
static void	 stop_all(void);
static int	 cmp_u32(const void *, const void *);
static void	 report(void);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: smtpload [--host H] [--port P] [--tls none|starttls|implicit]\n"
	    "\t[--auth user:pass] [--connections N] [--messages TOTAL]\n"
	    "\t[--per-connection M] [--size BYTES] [--rcpts N] [--pipelining]\n"
	    "\t[--from ADDR] [--to DOMAIN] [--timeout SECS] [--idle SECS]\n"
	    "\t[--rate MSGS] [--stamps FILE]\n");
	exit(2);
}

static void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	fputs("smtpload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* parse_num - a decimal in [min, max], or a usage error naming the option */
static unsigned long
parse_num(const char *name, const char *s, unsigned long min,
    unsigned long max)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		fatalx("--%s: not a number: %s", name, s);
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		fatalx("--%s: %s: want %lu..%lu", name, s, min, max);
	return ((unsigned long)v);
}

static uint64_t
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}


/*
 * make_body - the shared body: opt.size octets in lines of 76
 * characters plus CRLF, then the end-of-data dot.  Each line starts one
 * character further along an alphabet (chargen style), so the body does
 * not compress to nothing, and no line starts with "." (no stuffing).
 * A remainder too short for a line of its own joins the line before it
 * (at most 78 characters, far below RFC 5321's 998); a body of one
 * octet becomes an empty line (two), the smallest that ends in CRLF.
 */
static void
make_body(void)
{
	static const char	 alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t			 n = opt.size, len, i, line = 0;
	char			*p;

	if ((msg_body = malloc(n + 8)) == NULL)
		fatalx("out of memory");
	p = msg_body;
	while (n > 0) {
		len = LINE_CHARS + 2;
		if (n < len + 3)
			len = n < 2 ? 2 : n;
		for (i = 0; i + 2 < len; i++)
			*p++ = alpha[(line + i) % (sizeof(alpha) - 1)];
		*p++ = '\r';
		*p++ = '\n';
		line++;
		n = n > len ? n - len : 0;
	}
	memcpy(p, ".\r\n", 3);
	p += 3;
	msg_bodylen = (size_t)(p - msg_body);
}

/*
 * err_note - count an error under its kind (the step and the reply code
 * with its enhanced code, or the step and a short cause) and print the
 * first of each kind at once, so a broken run says why without flooding
 */
static void
err_note(enum step step, const char *what, const char *text)
{
	char	 key[sizeof(errkinds[0].key)];
	size_t	 i;

	/* closing sessions on purpose is no error */
	if (stopping)
		return;
	snprintf(key, sizeof(key), "%s: %s", step_names[step], what);
	for (i = 0; i < ERR_KINDS && errkinds[i].count > 0; i++) {
		if (strcmp(errkinds[i].key, key) == 0) {
			errkinds[i].count++;
			return;
		}
	}
	if (i == ERR_KINDS) {
		errkinds_other++;
		return;
	}
	memcpy(errkinds[i].key, key, sizeof(key));
	snprintf(errkinds[i].first, sizeof(errkinds[i].first), "%s", text);
	errkinds[i].count = 1;
	fprintf(stderr, "smtpload: error: %s: %s\n", step_names[step], text);
}

/* reply_kind - "450 4.7.1": the code and, when present, the enhanced code */
static void
reply_kind(char *buf, size_t len, int code, const char *text)
{
	size_t	 n = 0;

	if (strlen(text) > 4 && isdigit((unsigned char)text[4]) &&
	    text[5] == '.') {
		while (n < 12 && text[4 + n] != '\0' &&
		    (isdigit((unsigned char)text[4 + n]) || text[4 + n] == '.'))
			n++;
	}
	snprintf(buf, len, "%03d%s%.*s", code, n > 0 ? " " : "", (int)n,
	    text + 4);
}

/* conn_step - where a session is, for error reports */
static enum step
conn_step(struct conn *c)
{
	if (c->connecting)
		return (STEP_CONNECT);
	if (c->handshaking)
		return (STEP_TLS);
	if (c->exp_head != c->exp_tail)
		return (c->expect[c->exp_head]);
	return (STEP_IDLE);
}

static const char *
tls_err(int e)
{
	unsigned long	 l;
	const char	*r;

	if ((l = ERR_peek_last_error()) != 0 &&
	    (r = ERR_reason_error_string(l)) != NULL)
		return (r);
	if (e == SSL_ERROR_SYSCALL && errno != 0)
		return (strerror(errno));
	return ("connection closed");
}

/* start_more - open slots not yet started, within the --idle ramp */
static void
start_more(void)
{
	static int	 running;
	struct conn	*c;

	/* a slot that fails at once calls back here: let the outer loop go on */
	if (running)
		return;
	running = 1;
	while (!stopping && next_start < nslots &&
	    (opt.idle_secs < 0 || in_setup < IDLE_RAMP)) {
		c = &conns[next_start++];
		st.active++;
		conn_open(c);
	}
	running = 0;
}

static void
conn_open(struct conn *c)
{
	int	 one = 1;

	c->inlen = c->outlen = c->outoff = 0;
	c->body = NULL;
	c->exp_head = c->exp_tail = 0;
	c->connecting = c->handshaking = c->want_write = c->wev_on = 0;
	c->setup_done = c->authed = c->caps = c->ehlo_caps = c->idle = 0;
	c->in_txn = 0;
	if (opt.idle_secs >= 0) {
		in_setup++;
		c->counted_setup = 1;
	} else {
		/*
		 * Promise the session its share now, not at its first
		 * MAIL: otherwise slots reconnect for messages that others
		 * take meanwhile, and open sessions that only QUIT.
		 */
		c->quota = opt.messages - st.claimed;
		if (c->quota > opt.per_conn)
			c->quota = opt.per_conn;
		if (c->quota == 0) {
			slot_next(c);
			return;
		}
		st.claimed += c->quota;
	}
	c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_fail(c, "socket", strerror(errno));
		return;
	}
	/*
	 * Nagle would hold a pipelined group's tail, or a command after a
	 * TLS record, until the server's delayed ACK: ~40 ms per step.
	 */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rev = event_new(base, c->fd, EV_READ | EV_PERSIST, conn_io, c);
	c->wev = event_new(base, c->fd, EV_WRITE | EV_PERSIST, conn_io, c);
	if (c->rev == NULL || c->wev == NULL)
		fatalx("event_new failed");
	c->connecting = 1;
	if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(c, "connect", strerror(errno));
		return;
	}
	event_add(c->rev, NULL);
	c->want_write = 1;
	conn_update(c);
}

/* conn_close - release the socket and TLS state; the slot stays */
static void
conn_close(struct conn *c)
{
	if (c->counted_setup) {
		c->counted_setup = 0;
		in_setup--;
	}
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	c->rev = c->wev = NULL;
	evtimer_del(c->tev);
	evtimer_del(c->pev);
	c->paced = 0;
	if (c->ssl != NULL) {
		/* close_notify, as a polite client sends; never waited for */
		if (!c->handshaking)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->connecting = c->handshaking = 0;
	c->exp_head = c->exp_tail = 0;
	/* what the session did not start goes back to the others */
	st.claimed -= c->quota;
	c->quota = 0;
}

/*
 * slot_next - after a close: reconnect while messages remain (from the
 * timer, never inside the caller's stack, which still holds c), else
 * the slot is done
 */
static void
slot_next(struct conn *c)
{
	static const struct timeval	 now = { 0, 0 };

	if (!stopping && opt.idle_secs < 0 && st.claimed < opt.messages) {
		evtimer_add(c->tev, &now);
		return;
	}
	if (opt.idle_secs >= 0)
		start_more();
	if (--st.active == 0 && opt.idle_secs < 0)
		event_base_loopbreak(base);
}

/*
 * conn_fail - the session is lost: count why, settle its message, close.
 * A failure before the first transaction uses up one message, so that a
 * server refusing everything ends the run.  Always returns -1: the
 * caller must not touch the session any more.
 */
static int
conn_fail(struct conn *c, const char *what, const char *text)
{
	enum step	 step = conn_step(c);

	err_note(step, what, text);
	if (c->in_txn)
		conn_txn_end(c, 0);
	else if (!c->setup_done && c->quota > 0) {
		c->quota--;
		st.started++;
		st.failed++;
	}
	if (!c->setup_done)
		st.conn_failed++;
	if (opt.idle_secs >= 0) {
		if (c->setup_done)
			st.idle_up--;
		st.idle_down++;
	}
	conn_close(c);
	slot_next(c);
	if (opt.idle_secs >= 0)
		idle_check();
	return (-1);
}

/* conn_done - an orderly end after QUIT; returns -1 like conn_fail */
static int
conn_done(struct conn *c)
{
	conn_close(c);
	slot_next(c);
	return (-1);
}

static void
conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	char		 buf[64];

	if (c->fd == -1) {
		conn_open(c);
		return;
	}
	snprintf(buf, sizeof(buf), "no reply in %lu s", opt.timeout);
	conn_fail(c, "timeout", buf);
}

/* conn_io - every readiness event: finish what is pending, then read */
static void
conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	/* whichever call blocks on output this round sets it again */
	c->want_write = 0;
	if (c->connecting && conn_connected(c) == -1)
		return;
	if (c->handshaking) {
		if (conn_handshake(c) == -1)
			return;
		if (c->handshaking) {
			conn_update(c);
			return;
		}
	}
	if (conn_flush(c) == -1 || conn_read(c) == -1)
		return;
	conn_update(c);
}

static int
conn_connected(struct conn *c)
{
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY) {
		c->want_write = 1;
		return (0);
	}
	if (err != 0)
		return (conn_fail(c, strerror(err), strerror(err)));
	c->connecting = 0;
	if (opt.tls == TLS_IMPLICIT) {
		tls_start(c);
		return (conn_handshake(c));
	}
	conn_expect(c, STEP_GREETING);
	return (0);
}

static void
tls_start(struct conn *c)
{
	if ((c->ssl = SSL_new(ssl_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1)
		fatalx("SSL_new failed");
	if (sni)
		SSL_set_tlsext_host_name(c->ssl, opt.host);
	SSL_set_connect_state(c->ssl);
	c->handshaking = 1;
}

static int
conn_handshake(struct conn *c)
{
	int	 r, e;

	/* SSL_get_error reads the thread's queue: clear what others left */
	ERR_clear_error();
	if ((r = SSL_do_handshake(c->ssl)) != 1) {
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			return (0);
		if (e == SSL_ERROR_WANT_WRITE) {
			c->want_write = 1;
			return (0);
		}
		return (conn_fail(c, "failed", tls_err(e)));
	}
	c->handshaking = 0;
	if (opt.tls == TLS_IMPLICIT) {
		conn_expect(c, STEP_GREETING);
		return (0);
	}
	/* RFC 3207: forget what was learnt before TLS, EHLO again */
	c->caps = 0;
	conn_printf(c, "EHLO smtpload.test\r\n");
	conn_expect(c, STEP_EHLO);
	return (conn_flush(c));
}

/* conn_write - 1..n octets written, 0 to wait, -1 when the session is gone */
static int
conn_write(struct conn *c, const char *p, size_t n)
{
	ssize_t	 w;
	int	 r, e;

	if (n > INT_MAX)
		n = INT_MAX;
	if (c->ssl != NULL) {
		ERR_clear_error();
		if ((r = SSL_write(c->ssl, p, (int)n)) > 0)
			return (r);
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE) {
			c->want_write = 1;
			return (0);
		}
		if (e == SSL_ERROR_WANT_READ)
			return (0);
		return (conn_fail(c, "write failed", tls_err(e)));
	}
	for (;;) {
		if ((w = send(c->fd, p, n, MSG_NOSIGNAL)) >= 0)
			return ((int)w);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want_write = 1;
			return (0);
		}
		return (conn_fail(c, "write failed", strerror(errno)));
	}
}

/* conn_flush - send queued commands, then the body; 0, or -1 when gone */
static int
conn_flush(struct conn *c)
{
	const char	*p;
	size_t		 n;
	int		 w;

	while (c->outoff < c->outlen || c->body != NULL) {
		if (c->outoff < c->outlen) {
			p = c->out + c->outoff;
			n = c->outlen - c->outoff;
		} else {
			p = c->body + c->bodyoff;
			n = c->bodylen - c->bodyoff;
		}
		if ((w = conn_write(c, p, n)) <= 0)
			return (w);
		if (c->outoff < c->outlen) {
			if ((c->outoff += (size_t)w) == c->outlen)
				c->outoff = c->outlen = 0;
		} else if ((c->bodyoff += (size_t)w) == c->bodylen) {
			c->body = NULL;
			c->t_eod = now_us();
		}
	}
	return (0);
}

/* conn_read - take what arrived, reply by reply; 0, or -1 when gone */
static int
conn_read(struct conn *c)
{
	size_t	 space, start;
	ssize_t	 n;
	char	*nl, *line;
	int	 r, e;

	for (;;) {
		if (c->handshaking)
			return (0);
		space = sizeof(c->in) - c->inlen;
		if (c->ssl != NULL) {
			ERR_clear_error();
			r = SSL_read(c->ssl, c->in + c->inlen, (int)space);
			if (r <= 0) {
				e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return (0);
				if (e == SSL_ERROR_WANT_WRITE) {
					c->want_write = 1;
					return (0);
				}
				return (conn_fail(c, "connection closed",
				    tls_err(e)));
			}
			n = r;
		} else {
			n = recv(c->fd, c->in + c->inlen, space, 0);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK))
				return (0);
			if (n <= 0)
				return (conn_fail(c, "connection closed",
				    n == 0 ? "connection closed by server" :
				    strerror(errno)));
		}
		c->inlen += (size_t)n;

		start = 0;
		while ((nl = memchr(c->in + start, '\n',
		    c->inlen - start)) != NULL) {
			line = c->in + start;
			*nl = '\0';
			if (nl > line && nl[-1] == '\r')
				nl[-1] = '\0';
			start = (size_t)(nl - c->in) + 1;
			if (conn_line(c, line, strlen(line)) == -1)
				return (-1);
			/*
			 * Anything the server sent after its 220 to STARTTLS
			 * came in the clear and must not be taken as if it
			 * had come under TLS (CVE-2011-0411 is the server
			 * side of the same mistake).
			 */
			if (c->handshaking && start != c->inlen)
				return (conn_fail(c, "plaintext after 220",
				    "data after the 220 reply to STARTTLS"));
		}
		if (start > 0) {
			memmove(c->in, c->in + start, c->inlen - start);
			c->inlen -= start;
		}
		if (c->inlen == sizeof(c->in))
			return (conn_fail(c, "line too long",
			    "reply line too long"));
		/* one write for all the replies that came in together */
		if (conn_flush(c) == -1)
			return (-1);
		/* a short plain read drained the socket: spare the EAGAIN */
		if (c->ssl == NULL && (size_t)n < space)
			return (0);
	}
}

/* conn_line - one reply line; the last line of a reply goes on */
static int
conn_line(struct conn *c, char *line, size_t len)
{
	const char	*p = line + 4;
	int		 code;

	if (len < 3 || !isdigit((unsigned char)line[0]) ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) ||
	    (len > 3 && line[3] != ' ' && line[3] != '-'))
		return (conn_fail(c, "malformed reply", line));
	if (c->exp_head != c->exp_tail &&
	    c->expect[c->exp_head] == STEP_EHLO && len > 4) {
		if (strncasecmp(p, "PIPELINING", 10) == 0 &&
		    (p[10] == '\0' || p[10] == ' '))
			c->ehlo_caps |= CAP_PIPELINING;
		else if (strncasecmp(p, "STARTTLS", 8) == 0 &&
		    (p[8] == '\0' || p[8] == ' '))
			c->ehlo_caps |= CAP_STARTTLS;
	}
	if (len > 3 && line[3] == '-')
		return (0);
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	return (conn_reply(c, code, line));
}

/*
 * conn_bad_reply - a reply that is not the one expected: counted by kind;
 * the caller decides whether the session goes on
 */
static int
conn_bad_reply(struct conn *c, enum step step, int code, const char *text)
{
	char	 kind[32];

	reply_kind(kind, sizeof(kind), code, text);
	err_note(step, kind, text);
	return (0);
}

/* conn_reply - a complete reply: check it against its step, go on */
static int
conn_reply(struct conn *c, int code, const char *text)
{
	enum step	 step;

	if (c->exp_head == c->exp_tail) {
		if (code == 421)
			return (conn_fail(c, "421 unsolicited", text));
		return (conn_fail(c, "unsolicited reply", text));
	}
	step = c->expect[c->exp_head++];
	if (c->exp_head == c->exp_tail)
		c->exp_head = c->exp_tail = 0;

	/* 421: the server is closing the session, whatever the step */
	if (code == 421 && step != STEP_QUIT) {
		char	 kind[32];

		reply_kind(kind, sizeof(kind), code, text);
		/* the step the reply belonged to, for the report */
		c->exp_head = c->exp_tail = 0;
		conn_expect(c, step);
		return (conn_fail(c, kind, text));
	}

	switch (step) {
	case STEP_GREETING:
		if (code != 220)
			break;
		conn_printf(c, "EHLO smtpload.test\r\n");
		conn_expect(c, STEP_EHLO);
		return (0);
	case STEP_EHLO:
		if (code != 250)
			break;
		c->caps = c->ehlo_caps;
		c->ehlo_caps = 0;
		return (conn_setup_next(c));
	case STEP_STARTTLS:
		if (code != 220)
			break;
		tls_start(c);
		return (conn_handshake(c));
	case STEP_AUTH:
		if (code != 235)
			break;
		c->authed = 1;
		return (conn_setup_next(c));
	case STEP_MAIL:
		if (code == 250) {
			if (!c->pipelined) {
				conn_printf(c, "RCPT TO:<u%lu.%lu@%s>\r\n",
				    c->msgno, c->rcpt_sent++, opt.to);
				conn_expect(c, STEP_RCPT);
			}
			return (0);
		}
		conn_bad_reply(c, step, code, text);
		c->txn_failed = 1;
		return (c->pipelined ? 0 : conn_rset(c));
	case STEP_RCPT:
		if (code == 250 || code == 251) {
			if (c->pipelined)
				return (0);
			if (c->rcpt_sent < opt.rcpts) {
				conn_printf(c, "RCPT TO:<u%lu.%lu@%s>\r\n",
				    c->msgno, c->rcpt_sent++, opt.to);
				conn_expect(c, STEP_RCPT);
			} else {
				conn_printf(c, "DATA\r\n");
				conn_expect(c, STEP_DATA);
			}
			return (0);
		}
		conn_bad_reply(c, step, code, text);
		c->txn_failed = 1;
		return (c->pipelined ? 0 : conn_rset(c));
	case STEP_DATA:
		if (code != 354) {
			conn_bad_reply(c, step, code, text);
			c->txn_failed = 1;
			return (conn_rset(c));
		}
		/*
		 * A pipelined group with some recipient refused still gets
		 * 354 for the others (RFC 2920); the message is sent so
		 * that the dialogue stays in step, but it counts as failed.
		 */
		conn_printf(c, "From: <%s>\r\nTo: <u%lu.0@%s>\r\n"
		    "Subject: smtpload %lu\r\n"
		    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
		    "Message-ID: <%lu.%ld.smtpload@%s>\r\n",
		    opt.from, c->msgno, opt.to, c->msgno, c->msgno,
		    (long)getpid(), opt.to);
		if (opt.stamps != NULL)
			conn_printf(c, "X-Bench-Id: %ld.%lu\r\n",
			    (long)getpid(), c->msgno);
		conn_printf(c, "\r\n");
		c->body = msg_body;
		c->bodylen = msg_bodylen;
		c->bodyoff = 0;
		conn_expect(c, STEP_DOT);
		return (0);
	case STEP_DOT:
		if (code == 250 && strstr(text, "queued as") != NULL) {
			uint64_t	 t = now_us(), d = t - c->t_eod;

			if (!c->txn_failed) {
				st.lat[st.nlat++] = d > UINT32_MAX ?
				    UINT32_MAX : (uint32_t)d;
				if (st.stamp != NULL)
					st.stamp[c->msgno - 1] = t;
			}
			conn_txn_end(c, !c->txn_failed);
		} else {
			conn_bad_reply(c, step, code, text);
			conn_txn_end(c, 0);
		}
		return (conn_next_message(c));
	case STEP_RSET:
		if (code != 250)
			break;
		return (conn_next_message(c));
	case STEP_QUIT:
		if (code != 221)
			conn_bad_reply(c, step, code, text);
		return (conn_done(c));
	default:
		break;
	}
	/* a setup step went wrong: this session cannot carry mail */
	{
		char	 kind[32];

		reply_kind(kind, sizeof(kind), code, text);
		c->exp_head = c->exp_tail = 0;
		conn_expect(c, step);
		return (conn_fail(c, kind, text));
	}
}

/* conn_setup_next - STARTTLS, then AUTH, then mail (or idling) */
static int
conn_setup_next(struct conn *c)
{
	if (opt.tls == TLS_STARTTLS && c->ssl == NULL) {
		if (!(c->caps & CAP_STARTTLS))
			return (conn_fail(c, "no STARTTLS",
			    "STARTTLS not advertised"));
		conn_printf(c, "STARTTLS\r\n");
		conn_expect(c, STEP_STARTTLS);
		return (0);
	}
	if (opt.auth_b64 != NULL && !c->authed) {
		conn_printf(c, "AUTH PLAIN %s\r\n", opt.auth_b64);
		conn_expect(c, STEP_AUTH);
		return (0);
	}
	c->setup_done = 1;
	st.conn_ok++;
	if (c->counted_setup) {
		c->counted_setup = 0;
		in_setup--;
	}
	if (opt.idle_secs >= 0) {
		c->idle = 1;
		st.idle_up++;
		start_more();
		idle_check();
		return (0);
	}
	return (conn_next_message(c));
}

/*
 * conn_next_message - the next transaction, or QUIT when this session
 * has sent its share or TOTAL is used up
 */
static int
conn_next_message(struct conn *c)
{
	unsigned long	 i;

	if (stopping || c->quota == 0) {
		conn_printf(c, "QUIT\r\n");
		conn_expect(c, STEP_QUIT);
		return (0);
	}
	if (opt.rate > 0 && !c->paced) {
		uint64_t	 due, now = now_us();
		struct timeval	 tv;

		due = st.t_start + (uint64_t)(st.paced++) * 1000000 / opt.rate;
		if (due > now) {
			c->paced = 1;
			tv.tv_sec = (time_t)((due - now) / 1000000);
			tv.tv_usec = (suseconds_t)((due - now) % 1000000);
			evtimer_add(c->pev, &tv);
			return (0);
		}
	}
	c->paced = 0;
	c->msgno = ++st.started;
	c->quota--;
	c->in_txn = 1;
	c->txn_failed = 0;
	c->rcpt_sent = 0;
	c->pipelined = opt.pipelining && (c->caps & CAP_PIPELINING);
	conn_printf(c, "MAIL FROM:<%s>\r\n", opt.from);
	conn_expect(c, STEP_MAIL);
	if (c->pipelined) {
		/* RFC 2920: DATA ends the group; one write for all of it */
		for (i = 0; i < opt.rcpts; i++) {
			conn_printf(c, "RCPT TO:<u%lu.%lu@%s>\r\n",
			    c->msgno, c->rcpt_sent++, opt.to);
			conn_expect(c, STEP_RCPT);
		}
		conn_printf(c, "DATA\r\n");
		conn_expect(c, STEP_DATA);
	}
	return (0);
}

/* conn_rset - give up the transaction, stay in the session */
static int
conn_rset(struct conn *c)
{
	if (c->in_txn)
		conn_txn_end(c, 0);
	conn_printf(c, "RSET\r\n");
	conn_expect(c, STEP_RSET);
	return (0);
}

static void
conn_txn_end(struct conn *c, int ok)
{
	c->in_txn = 0;
	if (ok)
		st.ok++;
	else
		st.failed++;
}

/* conn_update - POLLOUT only while something waits for it; the timer */
static void
conn_update(struct conn *c)
{
	int	 need;

	if (c->fd == -1)
		return;
	need = c->connecting || c->want_write;
	if (need && !c->wev_on)
		event_add(c->wev, NULL);
	else if (!need && c->wev_on)
		event_del(c->wev);
	c->wev_on = need;
	if (c->connecting || c->handshaking || c->exp_head != c->exp_tail)
		evtimer_add(c->tev, tv_timeout);
	else
		evtimer_del(c->tev);
}

static void
conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	size_t	 need;
	char	*p;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(c->out + c->outlen, c->outcap - c->outlen, fmt,
		    ap);
		va_end(ap);
		if (n < 0)
			fatalx("vsnprintf failed");
		if ((size_t)n < c->outcap - c->outlen)
			break;
		need = c->outlen + (size_t)n + 1;
		if (need < c->outcap * 2)
			need = c->outcap * 2;
		if ((p = realloc(c->out, need)) == NULL)
			fatalx("out of memory");
		c->out = p;
		c->outcap = need;
	}
	c->outlen += (size_t)n;
}

static void
conn_expect(struct conn *c, enum step step)
{
	if (c->exp_tail == opt.rcpts + 4)
		fatalx("expect queue overflow");
	c->expect[c->exp_tail++] = step;
}

/* idle_check - all --idle sessions are up (or failed): tell, then hold */
static void
idle_check(void)
{
	struct timeval	 tv;

	if (announced || stopping ||
	    st.idle_up + st.idle_down < opt.connections)
		return;
	announced = 1;
	printf("idle: %lu sessions established\n", st.idle_up);
	fflush(stdout);
	if (st.idle_up == 0) {
		stop_all();
		return;
	}
	tv.tv_sec = opt.idle_secs;
	tv.tv_usec = 0;
	evtimer_add(hold_ev, &tv);
}

static void
stop_all(void)
{
	unsigned long	 i;

	stopping = 1;
	for (i = 0; i < nslots; i++) {
		if (conns[i].fd != -1)
			conn_close(&conns[i]);
		evtimer_del(conns[i].tev);
		evtimer_del(conns[i].pev);
	}
	event_base_loopbreak(base);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	stop_all();
}

static void
on_hold(evutil_socket_t fd, short what, void *arg)
{
	stop_all();
}

/* conn_pace - --rate: the session's start time has come */
static void
conn_pace(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	if (c->fd == -1 || !c->paced)
		return;
	if (conn_next_message(c) == -1 || conn_flush(c) == -1)
		return;
	conn_update(c);
}

/* write_stamps - --stamps: "PID.N USEC" for every message queued */
static void
write_stamps(void)
{
	FILE		*f;
	unsigned long	 i;
	long		 pid = (long)getpid();

	if ((f = fopen(opt.stamps, "w")) == NULL) {
		fprintf(stderr, "smtpload: %s: %s\n", opt.stamps,
		    strerror(errno));
		return;
	}
	for (i = 0; i < opt.messages; i++)
		if (st.stamp[i] != 0)
			fprintf(f, "%ld.%lu %llu\n", pid, i + 1,
			    (unsigned long long)st.stamp[i]);
	if (fclose(f) != 0)
		fprintf(stderr, "smtpload: %s: %s\n", opt.stamps,
		    strerror(errno));
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x < y ? -1 : x > y);
}

static void
report(void)
{
	double		 el = (double)(st.t_end - st.t_start) / 1e6;
	struct rusage	 ru;
	size_t		 i;

	if (el <= 0)
		el = 1e-6;
	if (opt.idle_secs >= 0) {
		printf("idle sessions: %lu up, %lu failed\n", st.idle_up,
		    st.idle_down);
	} else {
		printf("messages ok: %lu\n", st.ok);
		printf("errors: %lu\n", st.failed);
		printf("elapsed: %.3f s\n", el);
		printf("messages/s: %.1f\n", (double)st.ok / el);
		printf("connections: %lu ok, %lu failed\n", st.conn_ok,
		    st.conn_failed);
		printf("connections/s: %.1f\n", (double)st.conn_ok / el);
		if (st.nlat > 0) {
			qsort(st.lat, st.nlat, sizeof(st.lat[0]), cmp_u32);
			printf("latency p50: %.2f ms\n",
			    st.lat[(st.nlat - 1) * 50 / 100] / 1000.0);
			printf("latency p99: %.2f ms\n",
			    st.lat[(st.nlat - 1) * 99 / 100] / 1000.0);
		} else
			printf("latency p50: -\nlatency p99: -\n");
	}
	/* the client shares the machine: say what it took from the server */
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		printf("client cpu: %.3f s\n", (double)ru.ru_utime.tv_sec +
		    ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		    ru.ru_stime.tv_usec / 1e6);
	for (i = 0; i < ERR_KINDS && errkinds[i].count > 0; i++)
		printf("error: %s: %lu (%s)\n", errkinds[i].key,
		    errkinds[i].count, errkinds[i].first);
	if (errkinds_other > 0)
		printf("error: other kinds: %lu\n", errkinds_other);
}

int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "host",		required_argument, NULL, 'h' },
		{ "port",		required_argument, NULL, 'p' },
		{ "tls",		required_argument, NULL, 'T' },
		{ "auth",		required_argument, NULL, 'a' },
		{ "connections",	required_argument, NULL, 'c' },
		{ "messages",		required_argument, NULL, 'n' },
		{ "per-connection",	required_argument, NULL, 'm' },
		{ "size",		required_argument, NULL, 's' },
		{ "rcpts",		required_argument, NULL, 'r' },
		{ "pipelining",		no_argument,	   NULL, 'P' },
		{ "from",		required_argument, NULL, 'f' },
		{ "to",			required_argument, NULL, 't' },
		{ "timeout",		required_argument, NULL, 'o' },
		{ "idle",		required_argument, NULL, 'i' },
		{ "rate",		required_argument, NULL, 'R' },
		{ "stamps",		required_argument, NULL, 'S' },
		{ "help",		no_argument,	   NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	struct addrinfo		 hints;
	struct in6_addr		 a6;
	struct timeval		 tv;
	struct event		*sigint_ev, *sigterm_ev;
	const char		*auth = NULL, *colon;
	unsigned char		*plain;
	size_t			 ulen, plen, i;
	int			 ch, r;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			opt.host = optarg;
			break;
		case 'p':
			parse_num("port", optarg, 1, 65535);
			opt.port = optarg;
			break;
		case 'T':
			if (strcmp(optarg, "none") == 0)
				opt.tls = TLS_NONE;
			else if (strcmp(optarg, "starttls") == 0)
				opt.tls = TLS_STARTTLS;
			else if (strcmp(optarg, "implicit") == 0)
				opt.tls = TLS_IMPLICIT;
			else
				fatalx("--tls: none, starttls or implicit");
			break;
		case 'a':
			auth = optarg;
			break;
		case 'c':
			opt.connections = parse_num("connections", optarg, 1,
			    1000000);
			break;
		case 'n':
			opt.messages = parse_num("messages", optarg, 1,
			    100000000);
			break;
		case 'm':
			opt.per_conn = parse_num("per-connection", optarg, 1,
			    100000000);
			break;
		case 's':
			opt.size = parse_num("size", optarg, 0, 1UL << 30);
			break;
		case 'r':
			opt.rcpts = parse_num("rcpts", optarg, 1, 100000);
			break;
		case 'P':
			opt.pipelining = 1;
			break;
		case 'f':
			opt.from = optarg;
			break;
		case 't':
			opt.to = optarg;
			break;
		case 'o':
			opt.timeout = parse_num("timeout", optarg, 1, 86400);
			break;
		case 'i':
			opt.idle_secs = (long)parse_num("idle", optarg, 0,
			    86400);
			break;
		case 'R':
			opt.rate = parse_num("rate", optarg, 1, 10000000);
			break;
		case 'S':
			opt.stamps = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	/* addresses go into commands: no CR, LF or angle brackets */
	if (strpbrk(opt.from, "\r\n<> ") != NULL ||
	    strpbrk(opt.to, "\r\n<>@ ") != NULL || *opt.to == '\0')
		fatalx("--from/--to: bad address or domain");

	if (auth != NULL) {
		/* RFC 4616: authzid (empty) NUL authcid NUL passwd */
		if ((colon = strchr(auth, ':')) == NULL || colon == auth)
			fatalx("--auth: want user:pass");
		ulen = (size_t)(colon - auth);
		plen = strlen(colon + 1);
		if (ulen + plen > 2048)
			fatalx("--auth: too long");
		if ((plain = malloc(ulen + plen + 2)) == NULL ||
		    (opt.auth_b64 = malloc(4 * ((ulen + plen + 4) / 3) + 1)) ==
		    NULL)
			fatalx("out of memory");
		plain[0] = '\0';
		memcpy(plain + 1, auth, ulen);
		plain[1 + ulen] = '\0';
		memcpy(plain + 2 + ulen, colon + 1, plen);
		EVP_EncodeBlock((unsigned char *)opt.auth_b64, plain,
		    (int)(ulen + plen + 2));
		free(plain);
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	/* once, before the loop starts: the blocking lookup costs nothing then */
	if ((r = getaddrinfo(opt.host, opt.port, &hints, &addr)) != 0)
		fatalx("%s: %s", opt.host, gai_strerror(r));
	sni = inet_pton(AF_INET, opt.host, &a6) != 1 &&
	    inet_pton(AF_INET6, opt.host, &a6) != 1;

	signal(SIGPIPE, SIG_IGN);
	if (opt.tls != TLS_NONE) {
		if ((ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			fatalx("SSL_CTX_new failed");
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
		/*
		 * Partial writes let a 100 KiB body go out record by
		 * record as the socket takes it; released buffers keep
		 * thousands of idle client sessions small, so that the
		 * client does not crowd the server it measures.
		 */
		SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		    SSL_MODE_RELEASE_BUFFERS);
		SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
	}

	make_body();
	if ((st.lat = calloc(opt.messages, sizeof(st.lat[0]))) == NULL)
		fatalx("out of memory");
	if (opt.stamps != NULL &&
	    (st.stamp = calloc(opt.messages, sizeof(st.stamp[0]))) == NULL)
		fatalx("out of memory");
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	tv.tv_sec = (time_t)opt.timeout;
	tv.tv_usec = 0;
	/* O(1) re-arming: every session re-arms the same timeout per event */
	tv_timeout = event_base_init_common_timeout(base, &tv);
	if ((sigint_ev = evsignal_new(base, SIGINT, on_signal, NULL)) == NULL ||
	    (sigterm_ev = evsignal_new(base, SIGTERM, on_signal, NULL)) ==
	    NULL || (hold_ev = evtimer_new(base, on_hold, NULL)) == NULL)
		fatalx("event_new failed");
	evsignal_add(sigint_ev, NULL);
	evsignal_add(sigterm_ev, NULL);

	nslots = opt.connections;
	if (opt.idle_secs < 0 && nslots > opt.messages)
		nslots = opt.messages;
	if ((conns = calloc(nslots, sizeof(*conns))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < nslots; i++) {
		conns[i].fd = -1;
		if ((conns[i].expect = calloc(opt.rcpts + 4,
		    sizeof(conns[i].expect[0]))) == NULL ||
		    (conns[i].tev = evtimer_new(base, conn_timer,
		    &conns[i])) == NULL ||
		    (conns[i].pev = evtimer_new(base, conn_pace,
		    &conns[i])) == NULL)
			fatalx("out of memory");
	}

	st.t_start = now_us();
	start_more();
	if (st.active > 0 || opt.idle_secs >= 0)
		event_base_dispatch(base);
	st.t_end = now_us();
	report();
	if (opt.stamps != NULL && opt.idle_secs < 0)
		write_stamps();

	if (opt.idle_secs >= 0)
		return (st.conn_ok == 0 ? 1 : 0);
	return (st.ok == 0 ? 1 : 0);
}
