/*
 * smtpsink - an SMTP server that takes every message at once and keeps
 * nothing but when each one arrived
 *
 *	smtpsink --port P [--address A] [--log FILE] [--hold]
 *
 * One process, one epoll loop, non-blocking sockets, no TLS.  It
 * answers EHLO with PIPELINING, 8BITMIME, SMTPUTF8, SIZE and
 * ENHANCEDSTATUSCODES, says 250 to MAIL, RCPT, RSET and NOOP, 354 to
 * DATA and 250 to the final dot, and 221 to QUIT.  All the replies to
 * what came in one read go out in one write, as PIPELINING wants.  The
 * body is scanned line by line and thrown away; only the first
 * X-Bench-Id header of each message is kept (or its Subject, when it
 * has none).
 *
 * For each message, when its final dot is read, one line goes to the
 * log:
 *
 *	ID USEC
 *
 * with ID the header's value ("-" when there was none) and USEC
 * CLOCK_MONOTONIC in microseconds, the clock smtpload stamps its
 * replies with, so that the two can be joined on ID.  The log is
 * written at most every 20 ms (and at exit), so that a caller can count
 * its lines while the sink runs, at the cost of one write per 20 ms.
 *
 * With --hold, connections are accepted but not greeted: an SMTP client
 * waits for the greeting, and whatever it has to deliver stays held
 * back.  SIGUSR1 greets every held connection and every later one, and
 * prints "released: N connections held at USEC".  That is how a queue
 * is filled with deliveries held back and then let go all at once.
 *
 * On start it prints "listening on A:P"; on SIGTERM or SIGINT it
 * prints its counters (messages, connections, the most open at once,
 * its own CPU time) and exits 0.  Every line to stdout is flushed.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define IN_SIZE		(16 * 1024)	/* a command or body line, at most */
#define OUT_MAX		(64 * 1024)	/* replies not yet written */
#define ID_MAX		128
#define LOG_EVERY_US	20000
#define MAX_EVENTS	256

enum cstate {
	CS_HELD,		/* accepted, not greeted (--hold) */
	CS_CMD,
	CS_HEADER,		/* DATA: the header block */
	CS_BODY,		/* DATA: past the empty line */
	CS_CLOSING		/* QUIT answered: close once written */
};

struct conn {
	int		 fd;
	enum cstate	 state;
	int		 wantout;	/* EPOLLOUT registered */
	int		 longline;	/* dropping the rest of an over-long line */
	int		 have_id;
	int		 dead;		/* closed; freed after this round */
	char		 id[ID_MAX];
	char		 in[IN_SIZE];
	size_t		 inlen;
	char		*out;
	size_t		 outlen, outoff;
	struct conn	*next_held;	/* in held, or in the dead list */
};

static int		 epfd, lfd, sfd;
static int		 hold;
static struct conn	*held;
static struct conn	*dead;		/* closed this round */
static int		 logfd = -1;
static char		*logbuf;
static size_t		 loglen, logcap;
static uint64_t		 log_last;

static struct {
	unsigned long	 messages;
	unsigned long	 connections;
	unsigned long	 open, max_open;
	unsigned long	 no_id;
} st;

static void	 usage(void) __attribute__((noreturn));
static void	 fatal(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static uint64_t	 now_us(void);
static void	 log_flush(int);
static void	 log_message(const char *);
static void	 on_accept(void);
static void	 conn_greet(struct conn *);
static void	 conn_close(struct conn *);
static void	 conn_read(struct conn *);
static int	 conn_write(struct conn *);
static void	 conn_reply(struct conn *, const char *);
static int	 conn_line(struct conn *, char *, size_t);
static void	 conn_update(struct conn *);
static void	 release(void);
static void	 reap(void);
static void	 report(void);

static void
usage(void)
{
	fprintf(stderr, "usage: smtpsink --port P [--address A] "
	    "[--log FILE] [--hold]\n");
	exit(2);
}

static void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	fputs("smtpsink: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

/* log_flush - what is buffered to the log; with force, however recent */
static void
log_flush(int force)
{
	uint64_t	 now = now_us();
	size_t		 off = 0;
	ssize_t		 w;

	if (loglen == 0 || (!force && now - log_last < LOG_EVERY_US))
		return;
	log_last = now;
	while (off < loglen) {
		if ((w = write(logfd, logbuf + off, loglen - off)) == -1) {
			if (errno == EINTR)
				continue;
			fatal("write log: %s", strerror(errno));
		}
		off += (size_t)w;
	}
	loglen = 0;
}

static void
log_message(const char *id)
{
	char	 line[ID_MAX + 32];
	int	 n;

	st.messages++;
	if (logfd == -1)
		return;
	n = snprintf(line, sizeof(line), "%s %llu\n", id,
	    (unsigned long long)now_us());
	if (loglen + (size_t)n > logcap) {
		logcap = logcap ? logcap * 2 : 1 << 16;
		if ((logbuf = realloc(logbuf, logcap)) == NULL)
			fatal("out of memory");
	}
	memcpy(logbuf + loglen, line, (size_t)n);
	loglen += (size_t)n;
}

static void
on_accept(void)
{
	struct epoll_event	 ev;
	struct conn		*c;
	int			 fd, one = 1;

	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE and the like: the client retries later */
			fprintf(stderr, "smtpsink: accept: %s\n",
			    strerror(errno));
			return;
		}
		/* replies are small and each one is waited for */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    (c->out = malloc(OUT_MAX)) == NULL)
			fatal("out of memory");
		c->fd = fd;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
			fatal("epoll_ctl: %s", strerror(errno));
		st.connections++;
		if (++st.open > st.max_open)
			st.max_open = st.open;
		if (hold) {
			c->state = CS_HELD;
			c->next_held = held;
			held = c;
		} else
			conn_greet(c);
	}
}

static void
conn_greet(struct conn *c)
{
	c->state = CS_CMD;
	conn_reply(c, "220 sink.test ESMTP smtpsink\r\n");
	if (conn_write(c) == 0)
		conn_update(c);
}

/* release - SIGUSR1: greet the held connections, hold no more */
static void
release(void)
{
	struct conn	*c, *next;
	unsigned long	 n = 0;
	uint64_t	 t = now_us();

	hold = 0;
	c = held;
	held = NULL;
	for (; c != NULL; c = next) {
		next = c->next_held;
		c->next_held = NULL;
		n++;
		conn_greet(c);
	}
	printf("released: %lu connections held at %llu\n", n,
	    (unsigned long long)t);
	fflush(stdout);
}

static void
conn_close(struct conn *c)
{
	struct conn	**pp;

	if (c->dead)
		return;
	if (c->state == CS_HELD)
		for (pp = &held; *pp != NULL; pp = &(*pp)->next_held)
			if (*pp == c) {
				*pp = c->next_held;
				break;
			}
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	st.open--;
	/* a later event of this round may still name it */
	c->dead = 1;
	c->next_held = dead;
	dead = c;
}

/* reap - free what was closed in the round that just ended */
static void
reap(void)
{
	struct conn	*c;

	while ((c = dead) != NULL) {
		dead = c->next_held;
		free(c->out);
		free(c);
	}
}

static void
conn_reply(struct conn *c, const char *s)
{
	size_t	 n = strlen(s);

	/* a client that never reads its replies: drop what does not fit */
	if (c->outlen + n > OUT_MAX)
		return;
	memcpy(c->out + c->outlen, s, n);
	c->outlen += n;
}

/* conn_write - 0, or -1 when the connection is gone (closed here) */
static int
conn_write(struct conn *c)
{
	ssize_t	 w;

	while (c->outoff < c->outlen) {
		w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return (0);
			conn_close(c);
			return (-1);
		}
		c->outoff += (size_t)w;
	}
	c->outoff = c->outlen = 0;
	if (c->state == CS_CLOSING) {
		conn_close(c);
		return (-1);
	}
	return (0);
}

/* conn_update - EPOLLOUT while replies wait for room */
static void
conn_update(struct conn *c)
{
	struct epoll_event	 ev;
	int			 want = c->outlen > c->outoff;

	if (want == c->wantout)
		return;
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.ptr = c;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->wantout = want;
}

/* header_value - the value if line is "name: value" (any case), else NULL */
static const char *
header_value(const char *line, size_t len, const char *name)
{
	size_t	 n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return (NULL);
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return (line);
}

/* conn_line - one line without its CRLF; -1 when the session ended */
static int
conn_line(struct conn *c, char *line, size_t len)
{
	const char	*v;

	switch (c->state) {
	case CS_HEADER:
	case CS_BODY:
		if (len == 1 && line[0] == '.') {
			log_message(c->have_id ? c->id : "-");
			if (!c->have_id)
				st.no_id++;
			c->state = CS_CMD;
			conn_reply(c, "250 2.0.0 Ok: queued as sunk\r\n");
			return (0);
		}
		if (c->state == CS_BODY)
			return (0);
		if (len == 0) {
			c->state = CS_BODY;
			return (0);
		}
		if ((v = header_value(line, len, "X-Bench-Id")) != NULL ||
		    (!c->have_id &&
		    (v = header_value(line, len, "Subject")) != NULL)) {
			snprintf(c->id, sizeof(c->id), "%s", v);
			/* one field: the log is "ID USEC" */
			c->id[strcspn(c->id, " \t")] = '\0';
			if (c->id[0] != '\0')
				c->have_id = 1;
		}
		return (0);
	case CS_CMD:
		break;
	default:
		return (0);
	}
	if (len >= 4 && (strncasecmp(line, "EHLO", 4) == 0)) {
		conn_reply(c, "250-sink.test\r\n250-PIPELINING\r\n"
		    "250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 0\r\n"
		    "250 ENHANCEDSTATUSCODES\r\n");
	} else if (len >= 4 && strncasecmp(line, "HELO", 4) == 0)
		conn_reply(c, "250 sink.test\r\n");
	else if (len >= 4 && strncasecmp(line, "MAIL", 4) == 0)
		conn_reply(c, "250 2.1.0 Ok\r\n");
	else if (len >= 4 && strncasecmp(line, "RCPT", 4) == 0)
		conn_reply(c, "250 2.1.5 Ok\r\n");
	else if (len == 4 && strncasecmp(line, "DATA", 4) == 0) {
		c->state = CS_HEADER;
		c->have_id = 0;
		c->id[0] = '\0';
		conn_reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
	} else if (len >= 4 && (strncasecmp(line, "RSET", 4) == 0 ||
	    strncasecmp(line, "NOOP", 4) == 0))
		conn_reply(c, "250 2.0.0 Ok\r\n");
	else if (len >= 4 && strncasecmp(line, "QUIT", 4) == 0) {
		conn_reply(c, "221 2.0.0 Bye\r\n");
		c->state = CS_CLOSING;
	} else
		conn_reply(c, "502 5.5.2 Command not recognized\r\n");
	return (0);
}

static void
conn_read(struct conn *c)
{
	size_t	 start, len;
	ssize_t	 n;
	char	*nl, *line;

	n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
	if (n == -1 && (errno == EINTR || errno == EAGAIN ||
	    errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	/* what a held client sends before its greeting waits in the buffer */
	c->inlen += (size_t)n;
	if (c->state == CS_HELD) {
		if (c->inlen == sizeof(c->in))
			conn_close(c);
		return;
	}
	start = 0;
	while (c->state != CS_CLOSING && (nl = memchr(c->in + start, '\n',
	    c->inlen - start)) != NULL) {
		line = c->in + start;
		len = (size_t)(nl - line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		start = (size_t)(nl - c->in) + 1;
		if (c->longline) {
			/* the tail of a line too long to keep: not a line */
			c->longline = 0;
			continue;
		}
		if (conn_line(c, line, len) == -1)
			return;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->inlen - start);
		c->inlen -= start;
	}
	if (c->inlen == sizeof(c->in)) {
		c->inlen = 0;
		c->longline = 1;
	}
	conn_write(c);
}

static void
report(void)
{
	struct rusage	 ru;

	printf("messages: %lu\n", st.messages);
	printf("messages without an id: %lu\n", st.no_id);
	printf("connections: %lu\n", st.connections);
	printf("most open at once: %lu\n", st.max_open);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		printf("sink cpu: %.3f s\n", (double)ru.ru_utime.tv_sec +
		    ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		    ru.ru_stime.tv_usec / 1e6);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "port",	required_argument, NULL, 'p' },
		{ "address",	required_argument, NULL, 'a' },
		{ "log",	required_argument, NULL, 'l' },
		{ "hold",	no_argument,	   NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	struct epoll_event	 ev, evs[MAX_EVENTS];
	struct sockaddr_in	 sin;
	struct signalfd_siginfo	 si;
	struct rlimit		 rl;
	const char		*address = "127.0.0.1", *logpath = NULL;
	sigset_t		 mask;
	struct conn		*c;
	long			 port = 0;
	char			*end;
	int			 ch, i, n, one = 1;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			port = strtol(optarg, &end, 10);
			if (*end != '\0' || port < 1 || port > 65535)
				usage();
			break;
		case 'a':
			address = optarg;
			break;
		case 'l':
			logpath = optarg;
			break;
		case 'H':
			hold = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || port == 0)
		usage();

	/* as many connections as the hard limit lets us take */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (logpath != NULL && (logfd = open(logpath, O_WRONLY | O_CREAT |
	    O_TRUNC | O_APPEND | O_CLOEXEC, 0644)) == -1)
		fatal("%s: %s", logpath, strerror(errno));

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1 ||
	    (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, address, &sin.sin_addr) != 1)
		fatal("%s: not an IPv4 address", address);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		fatal("bind %s:%ld: %s", address, port, strerror(errno));
	if (listen(lfd, 4096) == -1)
		fatal("listen: %s", strerror(errno));

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1: %s", strerror(errno));
	ev.events = EPOLLIN;
	ev.data.ptr = &lfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) == -1)
		fatal("epoll_ctl: %s", strerror(errno));
	ev.data.ptr = &sfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) == -1)
		fatal("epoll_ctl: %s", strerror(errno));

	printf("listening on %s:%ld%s\n", address, port,
	    hold ? " (holding)" : "");
	fflush(stdout);

	for (;;) {
		n = epoll_wait(epfd, evs, MAX_EVENTS,
		    loglen > 0 ? LOG_EVERY_US / 1000 : -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &lfd) {
				on_accept();
				continue;
			}
			if (evs[i].data.ptr == &sfd) {
				while (read(sfd, &si, sizeof(si)) ==
				    (ssize_t)sizeof(si)) {
					if (si.ssi_signo == SIGUSR1) {
						release();
						continue;
					}
					log_flush(1);
					report();
					return (0);
				}
				continue;
			}
			c = evs[i].data.ptr;
			if (c->dead)
				continue;
			if ((evs[i].events & EPOLLOUT) && conn_write(c) == -1)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_read(c);
			if (!c->dead)
				conn_update(c);
		}
		reap();
		log_flush(0);
	}
}
