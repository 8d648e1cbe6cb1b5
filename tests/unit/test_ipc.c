/*
 * test_ipc.c - framing, typed marshalling, descriptor passing, malformed
 * frames and back-pressure, over real SOCK_SEQPACKET socketpairs and a
 * real event loop.  The loop only ever runs non-blocking, a bounded
 * number of times, so a broken channel fails a test instead of hanging.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "ipc.h"
#include "log.h"

#define MAXGOT		4096
#define GOT_PAYLOAD	64
#define SPINS		50
#define LOGMAX		4096

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* what one dispatch call saw */
struct got {
	uint32_t	 type;
	uint32_t	 len;
	uint64_t	 reqid;
	uint8_t		 payload[GOT_PAYLOAD];
	int		 fd;		/* taken from the message, or -1 */
};

/* one channel under test and a record of its dispatch calls */
struct side {
	struct ipc	*ipc;
	int		 raw;		/* the other end, for raw frames */
	struct got	*got;
	int		 ngot;
	int		 eofs;		/* dispatch(NULL) calls */
	int		 take_fd;	/* take msg->fd instead of leaving it */
	int		 free_at;	/* ipc_free() inside the n-th frame */
	int		 free_on_eof;	/* ipc_free() inside dispatch(NULL) */
};

enum fd_kind {
	FDK_NONE,
	FDK_MEMFD,		/* a configuration image or certificate */
	FDK_PIPE		/* stands in for a socket */
};

/*
 * every message type with the shape of a valid payload: n u32 values,
 * the shortest the type takes; max is the longest, in bytes
 */
struct type_row {
	uint32_t	 type;
	const char	*name;
	int		 nu32;
	uint32_t	 max;
	enum fd_kind	 fd;
};

/* a frame the receiver must refuse */
struct bad_frame {
	const char	*what;
	uint32_t	 type;
	uint32_t	 len;		/* the header's length field */
	size_t		 n;		/* bytes actually sent */
	int		 nfds;
	const char	*parse_err;	/* ipc_frame_parse() on the same bytes */
	const char	*log_err;	/* in the one log line of a live channel */
};

static void	dispatch(struct ipc *, struct ipc_msg *, void *);
static void	side_init(struct side *);
static void	side_attach(struct side *, struct event_base *, int,
		    const char *);
static void	side_raw(struct side *, struct event_base *);
static void	side_pair(struct side *, struct side *, struct event_base *,
		    struct event_base *);
static void	side_done(struct side *);
static void	spin(struct event_base *);
static void	raw_send(int, const void *, size_t, const int *, int);
static size_t	raw_frame(uint8_t *, uint32_t, uint32_t, uint64_t);
static ssize_t	raw_recv(int, uint8_t *, size_t, int *);
static int	count_fds(void);
static void	nonblock(int);
static void	capture_begin(void);
static int	capture_end(char *, size_t);
static void	msg_over(struct ipc_msg *, const uint8_t *, size_t);
static int	memfd_with(const char *);

static void	test_ipc_round_trip_every_type(void **);
static void	test_ipc_type_bounds(void **);
static void	test_ipc_put_get_values(void **);
static void	test_ipc_str_on_the_wire(void **);
static void	test_ipc_put_max_payload(void **);
static void	test_ipc_get_short(void **);
static void	test_ipc_get_str_refused(void **);
static void	test_ipc_end_leftover(void **);
static void	test_ipc_fd_passing(void **);
static void	test_ipc_fd_queued_is_dup(void **);
static void	test_ipc_fd_untaken_closed(void **);
static void	test_ipc_parse_rejects(void **);
static void	test_ipc_malformed_live(void **);
static void	test_ipc_extra_fds_closed(void **);
static void	test_ipc_eof_once(void **);
static void	test_ipc_empty_record(void **);
static void	test_ipc_free_inside_dispatch_eof(void **);
static void	test_ipc_free_inside_dispatch_frame(void **);
static void	test_ipc_free_with_queued_fds(void **);
static void	test_ipc_backpressure(void **);
static void	test_ipc_queue_limit(void **);
static void	test_ipc_names(void **);

static const struct type_row type_rows[] = {
	{ IPC_HELLO,		"HELLO",		3, 12, FDK_NONE },
	{ IPC_CONF,		"CONF",			1, 4, FDK_MEMFD },
	{ IPC_CONF_DONE,	"CONF_DONE",		1, 4, FDK_NONE },
	{ IPC_LISTENER,		"LISTENER",		1, 4, FDK_PIPE },
	{ IPC_TLS_CERT,		"TLS_CERT",		1, 4, FDK_MEMFD },
	{ IPC_PEER,		"PEER",			2, 8, FDK_PIPE },
	{ IPC_START,		"START",		0, 0, FDK_NONE },
	{ IPC_READY,		"READY",		1, 4, FDK_NONE },
	{ IPC_HEARTBEAT,	"HEARTBEAT",		0, 0, FDK_NONE },
	{ IPC_HEARTBEAT_ACK,	"HEARTBEAT_ACK",	0, 0, FDK_NONE },
	{ IPC_SHUTDOWN,		"SHUTDOWN",		0, 0, FDK_NONE },
	{ IPC_Q_OPEN,		"Q_OPEN",		8, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_Q_RCPT,		"Q_RCPT",		3, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_Q_OPENED,		"Q_OPENED",		0, 0, FDK_MEMFD },
	{ IPC_Q_COMMIT,		"Q_COMMIT",		2, 8, FDK_NONE },
	{ IPC_Q_ABORT,		"Q_ABORT",		0, 0, FDK_NONE },
	{ IPC_Q_OK,		"Q_OK",			1, 256, FDK_NONE },
	{ IPC_Q_FAIL,		"Q_FAIL",		3, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_DLV_RCPT,		"DLV_RCPT",		4, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_DLV_JOB,		"DLV_JOB",		7, IPC_MAX_PAYLOAD,
	    FDK_MEMFD },
	{ IPC_DLV_RESULT,	"DLV_RESULT",		4, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_DLV_DONE,		"DLV_DONE",		2, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_DLV_CLOSED,	"DLV_CLOSED",		2, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_AUTH_REQ,		"AUTH_REQ",		3, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_AUTH_RES,		"AUTH_RES",		6, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_RATE_REQ,		"RATE_REQ",		3, IPC_MAX_PAYLOAD,
	    FDK_NONE },
	{ IPC_RATE_RES,		"RATE_RES",		2, 8, FDK_NONE },
	{ IPC_SMTPD_STATS,	"SMTPD_STATS",		16, 64, FDK_NONE },
};

static const struct bad_frame bad_frames[] = {
	{ "truncated header", IPC_HELLO, 12, 10, 0,
	    "truncated header", "truncated header" },
	{ "one byte short of a header", IPC_START, 0, 15, 0,
	    "truncated header", "truncated header" },
	{ "empty record with a descriptor", IPC_LISTENER, 4, 0, 1,
	    "truncated header", "truncated header" },
	{ "length field short of the frame", IPC_HELLO, 8, 28, 0,
	    "frame holds 12", "frame holds 12" },
	{ "length field past the frame", IPC_HELLO, 12, 24, 0,
	    "frame holds 8", "frame holds 8" },
	{ "length over the maximum", IPC_HELLO, IPC_MAX_PAYLOAD + 1,
	    IPC_MAX_FRAME + 1, 0, "over 16384", "over 16384" },
	{ "length field 2^32-1", IPC_HELLO, UINT32_MAX, 28, 0,
	    "over 16384", "over 16384" },
	{ "record longer than any frame", IPC_LISTENER, 4,
	    IPC_MAX_FRAME + 2, 1, "frame holds", "oversized" },
	{ "type 0", 0, 0, 16, 0, "unknown type 0", "unknown type 0" },
	{ "type IPC_TYPE_MAX", IPC_TYPE_MAX, 0, 16, 0,
	    "unknown type", "unknown type" },
	{ "type 2^32-1", UINT32_MAX, 0, 16, 0,
	    "unknown type 4294967295", "unknown type 4294967295" },
	{ "HELLO payload short", IPC_HELLO, 11, 27, 0,
	    "HELLO: payload length 11 not in 12..12",
	    "HELLO: payload length 11 not in 12..12" },
	{ "HELLO payload long", IPC_HELLO, 13, 29, 0,
	    "not in 12..12", "not in 12..12" },
	{ "START with a payload", IPC_START, 4, 20, 0,
	    "not in 0..0", "not in 0..0" },
	{ "PEER payload short", IPC_PEER, 4, 20, 1,
	    "not in 8..8", "not in 8..8" },
	{ "LISTENER without its descriptor", IPC_LISTENER, 4, 20, 0,
	    "LISTENER: 0 descriptors", "LISTENER: 0 descriptors" },
	{ "CONF without its descriptor", IPC_CONF, 4, 20, 0,
	    "0 descriptors", "0 descriptors" },
	{ "PEER with two descriptors", IPC_PEER, 8, 24, 2,
	    "PEER: 2 descriptors", "PEER: 2 descriptors" },
	{ "START with a descriptor", IPC_START, 0, 16, 1,
	    "START: 1 descriptors", "START: 1 descriptors" },
	{ "HELLO with a descriptor", IPC_HELLO, 12, 28, 1,
	    "HELLO: 1 descriptors", "HELLO: 1 descriptors" },

	/* the queue and delivery types: one byte past either end */
	{ "Q_COMMIT payload long", IPC_Q_COMMIT, 9, 25, 0,
	    "Q_COMMIT: payload length 9 not in 8..8",
	    "Q_COMMIT: payload length 9 not in 8..8" },
	{ "Q_COMMIT payload short", IPC_Q_COMMIT, 7, 23, 0,
	    "Q_COMMIT: payload length 7 not in 8..8",
	    "Q_COMMIT: payload length 7 not in 8..8" },
	{ "Q_OK queue id over 256", IPC_Q_OK, 257, 16 + 257, 0,
	    "Q_OK: payload length 257 not in 4..256",
	    "Q_OK: payload length 257 not in 4..256" },
	{ "Q_OK empty", IPC_Q_OK, 0, 16, 0,
	    "Q_OK: payload length 0 not in 4..256",
	    "Q_OK: payload length 0 not in 4..256" },
	{ "Q_OPEN envelope short", IPC_Q_OPEN, 31, 16 + 31, 0,
	    "Q_OPEN: payload length 31 not in 32..16384",
	    "Q_OPEN: payload length 31 not in 32..16384" },
	{ "Q_OPEN over the maximum", IPC_Q_OPEN, IPC_MAX_PAYLOAD + 1,
	    IPC_MAX_FRAME + 1, 0, "over 16384", "over 16384" },
	{ "DLV_JOB short, with its descriptor", IPC_DLV_JOB, 27, 16 + 27, 1,
	    "DLV_JOB: payload length 27 not in 28..16384",
	    "DLV_JOB: payload length 27 not in 28..16384" },
	{ "DLV_JOB without its descriptor", IPC_DLV_JOB, 28, 16 + 28, 0,
	    "DLV_JOB: 0 descriptors", "DLV_JOB: 0 descriptors" },
	{ "Q_OPENED with a payload", IPC_Q_OPENED, 4, 20, 1,
	    "Q_OPENED: payload length 4 not in 0..0",
	    "Q_OPENED: payload length 4 not in 0..0" },
	{ "DLV_RESULT payload short", IPC_DLV_RESULT, 15, 16 + 15, 0,
	    "DLV_RESULT: payload length 15 not in 16..16384",
	    "DLV_RESULT: payload length 15 not in 16..16384" },
};

static int	 cap_fd = -1, cap_saved = -1;

static void
dispatch(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct side	*s = arg;
	struct got	*g;

	/* record only: a failed assertion here would unwind through libevent */
	if (m == NULL) {
		s->eofs++;
		if (s->free_on_eof) {
			ipc_free(ipc);
			s->ipc = NULL;
		}
		return;
	}
	if (s->ngot < MAXGOT) {
		g = &s->got[s->ngot];
		g->type = m->type;
		g->len = m->len;
		g->reqid = m->reqid;
		memcpy(g->payload, m->data,
		    m->len < GOT_PAYLOAD ? m->len : GOT_PAYLOAD);
		g->fd = -1;
		if (s->take_fd) {
			g->fd = m->fd;
			m->fd = -1;
		}
	}
	s->ngot++;
	if (s->free_at == s->ngot) {
		ipc_free(ipc);
		s->ipc = NULL;
	}
}

static void
side_init(struct side *s)
{
	memset(s, 0, sizeof(*s));
	s->raw = -1;
	s->take_fd = 1;
	s->got = calloc(MAXGOT, sizeof(*s->got));
	assert_non_null(s->got);
}

static void
side_attach(struct side *s, struct event_base *base, int fd,
    const char *name)
{
	s->ipc = ipc_new(fd, base, name, dispatch, s);
	assert_non_null(s->ipc);
}

/* side_raw - a channel whose peer is a bare socket the test writes to */
static void
side_raw(struct side *s, struct event_base *base)
{
	int	 sv[2];

	side_init(s);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	side_attach(s, base, sv[0], "test");
	s->raw = sv[1];
}

/* side_pair - two channels joined to each other */
static void
side_pair(struct side *a, struct side *b, struct event_base *base_a,
    struct event_base *base_b)
{
	int	 sv[2];

	side_init(a);
	side_init(b);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	side_attach(a, base_a, sv[0], "a");
	side_attach(b, base_b, sv[1], "b");
}

static void
side_done(struct side *s)
{
	int	 i;

	ipc_free(s->ipc);
	s->ipc = NULL;
	if (s->raw != -1)
		close(s->raw);
	for (i = 0; i < s->ngot && i < MAXGOT; i++)
		if (s->got[i].fd != -1)
			close(s->got[i].fd);
	free(s->got);
}

static void
spin(struct event_base *base)
{
	int	 i;

	for (i = 0; i < SPINS; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

/* raw_send - put bytes and descriptors on the wire, unchecked */
static void
raw_send(int sock, const void *p, size_t n, const int *fds, int nfds)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 8)];
	} c;
	struct cmsghdr	*cm;

	assert_true(nfds >= 0 && nfds <= 8);
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)p;
	iov.iov_len = n;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&c, 0, sizeof(c));
		msg.msg_control = c.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(sock, &msg, 0), (ssize_t)n);
}

/* raw_frame - a header claiming len, then len zero bytes */
static size_t
raw_frame(uint8_t *p, uint32_t type, uint32_t len, uint64_t reqid)
{
	memcpy(p, &type, 4);
	memcpy(p + 4, &len, 4);
	memcpy(p + 8, &reqid, 8);
	memset(p + IPC_HDR_SIZE, 0, len);
	return IPC_HDR_SIZE + len;
}

/* raw_recv - one record from the bare end, with at most one descriptor */
static ssize_t
raw_recv(int sock, uint8_t *p, size_t n, int *fd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct cmsghdr	*cm;
	ssize_t		 r;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = p;
	iov.iov_len = n;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = c.buf;
	msg.msg_controllen = sizeof(c.buf);
	*fd = -1;
	r = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (r >= 0 && (cm = CMSG_FIRSTHDR(&msg)) != NULL &&
	    cm->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	return r;
}

static int
count_fds(void)
{
	int	 fd, n = 0;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static void
nonblock(int fd)
{
	assert_int_not_equal(fcntl(fd, F_SETFL,
	    fcntl(fd, F_GETFL) | O_NONBLOCK), -1);
}

/*
 * capture_begin - send log lines (stderr) to a memfd until capture_end;
 * no assertions run in between, since cmocka reports on stderr too.
 */
static void
capture_begin(void)
{
	fflush(stderr);
	cap_saved = dup(2);
	cap_fd = memfd_create("log", MFD_CLOEXEC);
	assert_true(cap_saved != -1 && cap_fd != -1);
	assert_int_not_equal(dup2(cap_fd, 2), -1);
	log_init("test_ipc", LOG_F_NOSYSLOG | LOG_F_STDERR);
}

/* capture_end - restore stderr; return the number of lines logged */
static int
capture_end(char *buf, size_t len)
{
	ssize_t	 n;
	int	 lines = 0;
	char	*p;

	fflush(stderr);
	log_init("test_ipc", LOG_F_NOSYSLOG);
	dup2(cap_saved, 2);
	close(cap_saved);
	n = pread(cap_fd, buf, len - 1, 0);
	close(cap_fd);
	cap_fd = cap_saved = -1;
	assert_true(n >= 0);
	buf[n] = '\0';
	for (p = buf; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	return lines;
}

/* msg_over - a received message over these payload bytes */
static void
msg_over(struct ipc_msg *m, const uint8_t *p, size_t n)
{
	memset(m, 0, sizeof(*m));
	m->type = IPC_HELLO;
	m->len = (uint32_t)n;
	m->data = p;
	m->fd = -1;
}

static int
memfd_with(const char *text)
{
	int	 fd;

	fd = memfd_create("ipc-test", MFD_CLOEXEC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

/* every type crosses a channel with a valid payload and its descriptor */
static void
test_ipc_round_trip_every_type(void **state)
{
	struct event_base	*base;
	struct side		 a, b;
	struct ipc_frame	 f;
	struct ipc_msg		 m;
	const struct type_row	*t;
	int			 sent[nitems(type_rows)], rd[nitems(type_rows)];
	int			 before, k, p[2];
	size_t			 i;
	uint32_t		 v;
	char			 text[32], back[32];

	/* the table below covers every type, in enum order */
	assert_int_equal(nitems(type_rows), IPC_TYPE_MAX - 1);
	before = count_fds();
	base = event_base_new();
	side_pair(&a, &b, base, base);

	for (i = 0; i < nitems(type_rows); i++) {
		t = &type_rows[i];
		assert_int_equal(t->type, i + 1);
		sent[i] = rd[i] = -1;
		if (t->fd == FDK_MEMFD) {
			snprintf(text, sizeof(text), "image of %s", t->name);
			sent[i] = memfd_with(text);
		} else if (t->fd == FDK_PIPE) {
			assert_int_equal(pipe(p), 0);
			rd[i] = p[0];
			sent[i] = p[1];
		}
		ipc_frame_init(&f, t->type, ((uint64_t)t->type << 40) | 7);
		for (k = 0; k < t->nu32; k++)
			ipc_put_u32(&f, t->type * 100 + (uint32_t)k);
		assert_int_equal(ipc_send(a.ipc, &f, sent[i]), 0);
	}
	spin(base);
	assert_int_equal(b.ngot, nitems(type_rows));
	assert_int_equal(b.eofs, 0);
	assert_int_equal(a.ngot, 0);

	for (i = 0; i < nitems(type_rows); i++) {
		struct got	*g = &b.got[i];

		t = &type_rows[i];
		assert_int_equal(g->type, t->type);
		assert_true(g->reqid == (((uint64_t)t->type << 40) | 7));
		assert_int_equal(g->len, t->nu32 * 4);
		msg_over(&m, g->payload, g->len);
		for (k = 0; k < t->nu32; k++) {
			assert_int_equal(ipc_get_u32(&m, &v), 0);
			assert_int_equal(v, t->type * 100 + (uint32_t)k);
		}
		assert_int_equal(ipc_end(&m), 0);

		if (t->fd == FDK_NONE) {
			assert_int_equal(g->fd, -1);
			continue;
		}
		assert_true(g->fd >= 0);
		assert_int_not_equal(g->fd, sent[i]);
		/* the sender still holds its own descriptor */
		assert_int_not_equal(fcntl(sent[i], F_GETFD), -1);
		if (t->fd == FDK_MEMFD) {
			snprintf(text, sizeof(text), "image of %s", t->name);
			memset(back, 0, sizeof(back));
			assert_int_equal(pread(g->fd, back, sizeof(back) - 1,
			    0), (ssize_t)strlen(text));
			assert_string_equal(back, text);
		} else {
			assert_int_equal(write(g->fd, "r", 1), 1);
			assert_int_equal(write(sent[i], "s", 1), 1);
			assert_int_equal(read(rd[i], back, 2), 2);
			assert_memory_equal(back, "rs", 2);
		}
	}
	for (i = 0; i < nitems(type_rows); i++) {
		if (sent[i] != -1)
			close(sent[i]);
		if (rd[i] != -1)
			close(rd[i]);
	}
	side_done(&a);
	side_done(&b);
	event_base_free(base);
	assert_int_equal(count_fds(), before);
}

/*
 * each type: its shortest and longest payloads accepted, one byte past
 * either end and a wrong descriptor count refused
 */
static void
test_ipc_type_bounds(void **state)
{
	static uint8_t		 buf[IPC_MAX_FRAME + 16];
	struct ipc_msg		 m;
	const struct type_row	*t;
	char			 err[128];
	uint32_t		 len;
	size_t			 i;
	int			 nfds;

	for (i = 0; i < nitems(type_rows); i++) {
		t = &type_rows[i];
		len = (uint32_t)t->nu32 * 4;
		nfds = t->fd == FDK_NONE ? 0 : 1;
		assert_true(len <= t->max);
		assert_true(t->max <= IPC_MAX_PAYLOAD);

		raw_frame(buf, t->type, len, 99);
		assert_int_equal(ipc_frame_parse(buf, IPC_HDR_SIZE + len,
		    nfds, &m, err, sizeof(err)), 0);
		assert_int_equal(m.type, t->type);
		assert_int_equal(m.len, len);
		assert_true(m.reqid == 99);
		assert_ptr_equal(m.data, buf + IPC_HDR_SIZE);
		assert_int_equal(m.pos, 0);
		assert_int_equal(m.fd, -1);

		assert_int_equal(ipc_frame_parse(buf, IPC_HDR_SIZE + len,
		    !nfds, &m, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "descriptors"));
		assert_int_equal(ipc_frame_parse(buf, IPC_HDR_SIZE + len,
		    2, &m, err, sizeof(err)), -1);

		if (len > 0) {
			raw_frame(buf, t->type, len - 1, 99);
			assert_int_equal(ipc_frame_parse(buf,
			    IPC_HDR_SIZE + len - 1, nfds, &m, err,
			    sizeof(err)), -1);
			assert_non_null(strstr(err, "not in"));
			assert_non_null(strstr(err, t->name));
		}

		raw_frame(buf, t->type, t->max, 99);
		assert_int_equal(ipc_frame_parse(buf, IPC_HDR_SIZE + t->max,
		    nfds, &m, err, sizeof(err)), 0);
		assert_int_equal(m.len, t->max);

		/* past IPC_MAX_PAYLOAD the header check speaks first */
		raw_frame(buf, t->type, t->max + 1, 99);
		assert_int_equal(ipc_frame_parse(buf, IPC_HDR_SIZE + t->max + 1,
		    nfds, &m, err, sizeof(err)), -1);
		if (t->max < IPC_MAX_PAYLOAD) {
			assert_non_null(strstr(err, "not in"));
			assert_non_null(strstr(err, t->name));
		} else
			assert_non_null(strstr(err, "over"));
	}
}

static void
test_ipc_put_get_values(void **state)
{
	struct ipc_frame	 f;
	struct ipc_msg		 m;
	uint32_t		 u32;
	uint64_t		 u64;
	char			 str[32];
	uint8_t			 data[3];
	size_t			 n;

	ipc_frame_init(&f, IPC_HELLO, 5);
	ipc_put_u32(&f, 0);
	ipc_put_u32(&f, UINT32_MAX);
	ipc_put_u64(&f, UINT64_MAX);
	ipc_put_u64(&f, 0x0102030405060708ULL);
	ipc_put_str(&f, "");
	ipc_put_str(&f, "relay.example");
	ipc_put_data(&f, "\0\377\177", 3);
	ipc_put_data(&f, "", 0);
	n = 4 + 4 + 8 + 8 + 4 + (4 + 13) + 3;
	assert_int_equal(f.overflow, 0);
	assert_int_equal(f.len, IPC_HDR_SIZE + n);
	/* a string is its u32 length, then the bytes, no NUL */
	u32 = 13;
	assert_memory_equal(f.data + IPC_HDR_SIZE + 28, &u32, 4);
	assert_memory_equal(f.data + IPC_HDR_SIZE + 32, "relay.example", 13);

	msg_over(&m, f.data + IPC_HDR_SIZE, n);
	assert_int_equal(ipc_get_u32(&m, &u32), 0);
	assert_int_equal(u32, 0);
	assert_int_equal(ipc_get_u32(&m, &u32), 0);
	assert_int_equal(u32, UINT32_MAX);
	assert_int_equal(ipc_get_u64(&m, &u64), 0);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(ipc_get_u64(&m, &u64), 0);
	assert_true(u64 == 0x0102030405060708ULL);
	memset(str, 'Z', sizeof(str));
	assert_int_equal(ipc_get_str(&m, str, sizeof(str)), 0);
	assert_string_equal(str, "");
	assert_int_equal(ipc_get_str(&m, str, sizeof(str)), 0);
	assert_string_equal(str, "relay.example");
	assert_int_equal(ipc_get_data(&m, data, 3), 0);
	assert_memory_equal(data, "\0\377\177", 3);
	assert_int_equal(ipc_get_data(&m, data, 0), 0);
	assert_int_equal(m.pos, n);
	assert_int_equal(ipc_end(&m), 0);
}

/* ipc_send fills in the length field; the bytes parse at the other end */
static void
test_ipc_str_on_the_wire(void **state)
{
	struct event_base	*base;
	struct side		 s;
	struct ipc_frame	 f;
	struct ipc_msg		 m;
	uint8_t			 buf[IPC_MAX_FRAME];
	char			 err[128], str[16];
	ssize_t			 n;
	int			 fd;

	base = event_base_new();
	side_raw(&s, base);
	assert_string_equal(ipc_name(s.ipc), "test");
	/* HELLO is 12 bytes: a 4-byte length and 8 characters fit it */
	ipc_frame_init(&f, IPC_HELLO, 0xfeedULL << 32);
	ipc_put_str(&f, "abcdefgh");
	assert_int_equal(ipc_send(s.ipc, &f, -1), 0);
	assert_int_equal(ipc_queued(s.ipc), 0);
	n = raw_recv(s.raw, buf, sizeof(buf), &fd);
	assert_int_equal(n, IPC_HDR_SIZE + 12);
	assert_int_equal(fd, -1);
	assert_int_equal(ipc_frame_parse(buf, (size_t)n, 0, &m, err,
	    sizeof(err)), 0);
	assert_int_equal(m.type, IPC_HELLO);
	assert_int_equal(m.len, 12);
	assert_true(m.reqid == 0xfeedULL << 32);
	assert_int_equal(ipc_get_str(&m, str, sizeof(str)), 0);
	assert_string_equal(str, "abcdefgh");
	assert_int_equal(ipc_end(&m), 0);

	assert_int_equal(ipc_sendv(s.ipc, IPC_SHUTDOWN, 3, -1), 0);
	n = raw_recv(s.raw, buf, sizeof(buf), &fd);
	assert_int_equal(ipc_frame_parse(buf, (size_t)n, 0, &m, err,
	    sizeof(err)), 0);
	assert_int_equal(m.type, IPC_SHUTDOWN);
	assert_int_equal(m.len, 0);
	side_done(&s);
	event_base_free(base);
}

/* exactly IPC_MAX_PAYLOAD is a frame; one byte more is flagged, and
 * ipc_send refuses it without killing the channel */
static void
test_ipc_put_max_payload(void **state)
{
	struct event_base	*base;
	struct side		 s;
	struct ipc_frame	 f;
	static uint8_t		 big[IPC_MAX_PAYLOAD + 1];
	static uint8_t		 buf[IPC_MAX_FRAME + 1];
	static char		 longstr[IPC_MAX_PAYLOAD + 2];
	char			 logbuf[LOGMAX];
	uint32_t		 len;
	ssize_t			 n;
	int			 fd, lines, rc;

	base = event_base_new();
	side_raw(&s, base);

	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD);
	assert_int_equal(f.overflow, 0);
	assert_int_equal(f.len, IPC_MAX_FRAME);
	/* the sender does not apply the type table: the frame goes out whole */
	assert_int_equal(ipc_send(s.ipc, &f, -1), 0);
	n = raw_recv(s.raw, buf, sizeof(buf), &fd);
	assert_int_equal(n, IPC_MAX_FRAME);
	memcpy(&len, buf + 4, 4);
	assert_int_equal(len, IPC_MAX_PAYLOAD);

	ipc_put_data(&f, big, 1);
	assert_int_equal(f.overflow, 1);
	assert_int_equal(f.len, IPC_MAX_FRAME);
	capture_begin();
	rc = ipc_send(s.ipc, &f, -1);
	lines = capture_end(logbuf, sizeof(logbuf));
	assert_int_equal(rc, -1);
	assert_int_equal(lines, 1);
	assert_non_null(strstr(logbuf, "HELLO frame over 16384 bytes"));

	/* the flag sticks: later puts that would fit change nothing */
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD + 1);
	assert_int_equal(f.overflow, 1);
	assert_int_equal(f.len, IPC_HDR_SIZE);
	ipc_put_u32(&f, 1);
	assert_int_equal(f.len, IPC_HDR_SIZE);
	assert_int_equal(f.overflow, 1);

	/* a full frame takes no u32, u64 or string more */
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD - 3);
	ipc_put_u32(&f, 1);
	assert_int_equal(f.overflow, 1);
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD - 7);
	ipc_put_u64(&f, 1);
	assert_int_equal(f.overflow, 1);
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD - 4);
	ipc_put_str(&f, "");
	assert_int_equal(f.overflow, 0);
	assert_int_equal(f.len, IPC_MAX_FRAME);
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD - 4);
	ipc_put_str(&f, "x");
	assert_int_equal(f.overflow, 1);
	memset(longstr, 'a', sizeof(longstr) - 1);
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_str(&f, longstr);
	assert_int_equal(f.overflow, 1);
	capture_begin();
	rc = ipc_send(s.ipc, &f, -1);
	capture_end(logbuf, sizeof(logbuf));
	assert_int_equal(rc, -1);

	/* the refused frames cost nothing: the channel still works */
	assert_int_equal(ipc_sendv(s.ipc, IPC_HEARTBEAT, 1, -1), 0);
	assert_int_equal(raw_recv(s.raw, buf, sizeof(buf), &fd),
	    IPC_HDR_SIZE);
	assert_int_equal(raw_recv(s.raw, buf, sizeof(buf), &fd), -1);
	spin(base);
	assert_int_equal(s.eofs, 0);
	side_done(&s);
	event_base_free(base);
}

/* a getter that does not fit what is left fails and consumes nothing */
static void
test_ipc_get_short(void **state)
{
	const uint8_t	 p[7] = { 1, 2, 3, 4, 5, 6, 7 };
	struct ipc_msg	 m;
	uint32_t	 u32;
	uint64_t	 u64;
	uint8_t		 d[8];
	char		 str[8];

	msg_over(&m, p, sizeof(p));
	assert_int_equal(ipc_get_u64(&m, &u64), -1);		/* 7 < 8 */
	assert_int_equal(m.pos, 0);
	assert_int_equal(ipc_get_data(&m, d, 8), -1);
	assert_int_equal(m.pos, 0);
	assert_int_equal(ipc_get_u32(&m, &u32), 0);
	assert_int_equal(m.pos, 4);
	assert_int_equal(ipc_get_u32(&m, &u32), -1);		/* 3 < 4 */
	assert_int_equal(ipc_get_str(&m, str, sizeof(str)), -1);
	assert_int_equal(m.pos, 4);
	assert_int_equal(ipc_get_data(&m, d, 4), -1);
	assert_int_equal(ipc_get_data(&m, d, SIZE_MAX), -1);
	assert_int_equal(ipc_get_data(&m, d, 3), 0);
	assert_memory_equal(d, p + 4, 3);
	assert_int_equal(ipc_get_data(&m, d, 1), -1);
	assert_int_equal(ipc_get_data(&m, d, 0), 0);
	assert_int_equal(ipc_end(&m), 0);

	/* an empty payload: nothing but a zero-length read */
	msg_over(&m, p, 0);
	assert_int_equal(ipc_get_u32(&m, &u32), -1);
	assert_int_equal(ipc_get_u64(&m, &u64), -1);
	assert_int_equal(ipc_get_str(&m, str, sizeof(str)), -1);
	assert_int_equal(ipc_get_data(&m, d, 1), -1);
	assert_int_equal(ipc_get_data(&m, d, 0), 0);
	assert_int_equal(ipc_end(&m), 0);
}

static void
test_ipc_get_str_refused(void **state)
{
	struct {
		const char	*what;
		uint32_t	 n;		/* length field */
		const char	*bytes;
		size_t		 nbytes;	/* bytes after the field */
		size_t		 dstlen;
		int		 ok;
	} const cases[] = {
		{ "plain", 4, "abcd", 4, 16, 1 },
		{ "empty", 0, "", 0, 1, 1 },
		{ "fits with its NUL", 4, "abcd", 4, 5, 1 },
		{ "length == dstlen", 4, "abcd", 4, 4, 0 },
		{ "dstlen 0", 0, "", 0, 0, 0 },
		{ "NUL inside", 4, "ab\0d", 4, 16, 0 },
		{ "NUL first", 4, "\0bcd", 4, 16, 0 },
		{ "NUL last", 4, "abc\0", 4, 16, 0 },
		{ "length past the payload", 5, "abcd", 4, 16, 0 },
		{ "length 2^32-1", UINT32_MAX, "abcd", 4, 16, 0 },
		{ "length but no bytes", 1, "", 0, 16, 0 },
		{ "shorter than the payload", 2, "abcd", 4, 16, 1 },
	};
	uint8_t		 p[64];
	char		 dst[32];
	struct ipc_msg	 m;
	size_t		 i;
	int		 rc;

	for (i = 0; i < nitems(cases); i++) {
		memcpy(p, &cases[i].n, 4);
		memcpy(p + 4, cases[i].bytes, cases[i].nbytes);
		msg_over(&m, p, 4 + cases[i].nbytes);
		memset(dst, 'Z', sizeof(dst));
		rc = ipc_get_str(&m, dst, cases[i].dstlen);
		if (rc != (cases[i].ok ? 0 : -1))
			fail_msg("%s: ipc_get_str returned %d", cases[i].what,
			    rc);
		/* never a byte written past dstlen */
		if (dst[cases[i].dstlen] != 'Z')
			fail_msg("%s: wrote past dstlen", cases[i].what);
		if (rc == 0 && (strlen(dst) != cases[i].n ||
		    memcmp(dst, cases[i].bytes, cases[i].n) != 0))
			fail_msg("%s: got \"%s\"", cases[i].what, dst);
	}
}

static void
test_ipc_end_leftover(void **state)
{
	const uint8_t	 p[8] = { 0 };
	struct ipc_msg	 m;
	uint32_t	 u32;

	msg_over(&m, p, sizeof(p));
	assert_int_equal(ipc_end(&m), -1);	/* nothing read */
	assert_int_equal(ipc_get_u32(&m, &u32), 0);
	assert_int_equal(ipc_end(&m), -1);	/* 4 bytes left over */
	assert_int_equal(ipc_get_u32(&m, &u32), 0);
	assert_int_equal(ipc_end(&m), 0);
	assert_int_equal(ipc_get_u32(&m, &u32), -1);
	assert_int_equal(ipc_end(&m), 0);
}

/* a pipe's write end rides on LISTENER and PEER; both ends keep theirs */
static void
test_ipc_fd_passing(void **state)
{
	static const uint32_t	 types[] = { IPC_LISTENER, IPC_PEER };
	struct event_base	*base;
	struct side		 a, b;
	struct ipc_frame	 f;
	size_t			 i;
	int			 p[2], before;
	char			 c[2];

	before = count_fds();
	base = event_base_new();
	side_pair(&a, &b, base, base);
	for (i = 0; i < nitems(types); i++) {
		assert_int_equal(pipe(p), 0);
		ipc_frame_init(&f, types[i], i);
		ipc_put_u32(&f, PROC_QUEUED);
		if (types[i] == IPC_PEER)
			ipc_put_u32(&f, 2);
		assert_int_equal(ipc_send(a.ipc, &f, p[1]), 0);
		/* ipc_send did not take it: the sender's copy still writes */
		assert_int_not_equal(fcntl(p[1], F_GETFD), -1);
		assert_int_equal(write(p[1], "s", 1), 1);
		spin(base);
		assert_int_equal(b.ngot, (int)i + 1);
		assert_int_equal(b.got[i].type, types[i]);
		assert_true(b.got[i].fd >= 0);
		assert_int_not_equal(b.got[i].fd, p[1]);
		/* descriptors arrive close-on-exec (MSG_CMSG_CLOEXEC) */
		assert_true(fcntl(b.got[i].fd, F_GETFD) & FD_CLOEXEC);
		assert_int_equal(write(b.got[i].fd, "r", 1), 1);
		assert_int_equal(read(p[0], c, 2), 2);
		assert_memory_equal(c, "sr", 2);
		/* with every write end gone the reader sees end of file */
		close(p[1]);
		close(b.got[i].fd);
		b.got[i].fd = -1;
		assert_int_equal(read(p[0], c, 1), 0);
		close(p[0]);
	}
	side_done(&a);
	side_done(&b);
	event_base_free(base);
	assert_int_equal(count_fds(), before);
}

/* a frame that waits in the queue holds its own copy of the descriptor */
static void
test_ipc_fd_queued_is_dup(void **state)
{
	struct event_base	*base_a, *base_b;
	struct side		 a, b;
	struct ipc_frame	 f;
	int			 p[2], i, before;
	char			 c;

	before = count_fds();
	base_a = event_base_new();
	base_b = event_base_new();
	side_pair(&a, &b, base_a, base_b);
	for (i = 0; i < 100000 && ipc_queued(a.ipc) == 0; i++)
		assert_int_equal(ipc_sendv(a.ipc, IPC_HEARTBEAT, i, -1), 0);
	assert_true(ipc_queued(a.ipc) > 0);

	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	ipc_frame_init(&f, IPC_LISTENER, UINT64_MAX);
	ipc_put_u32(&f, 0);
	assert_int_equal(ipc_send(a.ipc, &f, p[1]), 0);
	close(p[1]);			/* the caller's copy is gone now */

	for (i = 0; i < 10000 && ipc_queued(a.ipc) > 0; i++) {
		event_base_loop(base_b, EVLOOP_NONBLOCK);
		event_base_loop(base_a, EVLOOP_NONBLOCK);
	}
	spin(base_b);
	assert_int_equal(ipc_queued(a.ipc), 0);
	assert_true(b.ngot > 1);
	assert_int_equal(b.got[b.ngot - 1].type, IPC_LISTENER);
	assert_true(b.got[b.ngot - 1].reqid == UINT64_MAX);
	assert_int_equal(write(b.got[b.ngot - 1].fd, "q", 1), 1);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(c, 'q');
	close(b.got[b.ngot - 1].fd);
	b.got[b.ngot - 1].fd = -1;
	/* the sender closed its queued copy once it was sent */
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	side_done(&a);
	side_done(&b);
	event_base_free(base_a);
	event_base_free(base_b);
	assert_int_equal(count_fds(), before);
}

/* a descriptor the dispatch does not take is closed after it returns */
static void
test_ipc_fd_untaken_closed(void **state)
{
	struct event_base	*base;
	struct side		 s;
	uint8_t			 buf[64];
	int			 p[2], before;
	char			 c;

	base = event_base_new();
	side_raw(&s, base);
	s.take_fd = 0;
	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	before = count_fds();
	raw_send(s.raw, buf, raw_frame(buf, IPC_LISTENER, 4, 0), &p[1], 1);
	close(p[1]);
	spin(base);
	assert_int_equal(s.ngot, 1);
	assert_int_equal(s.eofs, 0);
	assert_int_equal(count_fds(), before - 1);
	assert_int_equal(read(p[0], &c, 1), 0);		/* not EAGAIN */
	close(p[0]);
	side_done(&s);
	event_base_free(base);
}

static void
test_ipc_parse_rejects(void **state)
{
	static uint8_t		 buf[IPC_MAX_FRAME + 16];
	const struct bad_frame	*b;
	struct ipc_msg		 m;
	char			 err[128];
	size_t			 i;

	for (i = 0; i < nitems(bad_frames); i++) {
		b = &bad_frames[i];
		memset(buf, 0, sizeof(buf));
		raw_frame(buf, b->type, 0, 1);
		memcpy(buf + 4, &b->len, 4);
		err[0] = '\0';
		if (ipc_frame_parse(buf, b->n, b->nfds, &m, err,
		    sizeof(err)) != -1)
			fail_msg("%s: accepted", b->what);
		if (strstr(err, b->parse_err) == NULL)
			fail_msg("%s: error \"%s\"", b->what, err);
	}
	/* a short error buffer is still terminated, and none is allowed */
	raw_frame(buf, 0, 0, 0);
	assert_int_equal(ipc_frame_parse(buf, 16, 0, &m, err, 4), -1);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(ipc_frame_parse(buf, 16, 0, &m, NULL, 0), -1);
}

/*
 * The same frames on a live channel: one log line, dispatch(NULL) once,
 * no frame dispatched, every descriptor that came along closed.
 */
static void
test_ipc_malformed_live(void **state)
{
	static uint8_t		 buf[IPC_MAX_FRAME + 16];
	const struct bad_frame	*b;
	struct event_base	*base;
	struct side		 s;
	char			 logbuf[LOGMAX];
	size_t			 i;
	int			 p[2], fds[2], before, after, lines, rc;
	ssize_t			 r;
	char			 c;

	for (i = 0; i < nitems(bad_frames); i++) {
		b = &bad_frames[i];
		base = event_base_new();
		side_raw(&s, base);
		assert_int_equal(pipe(p), 0);
		nonblock(p[0]);
		fds[0] = p[1];
		fds[1] = p[1];
		memset(buf, 0, sizeof(buf));
		raw_frame(buf, b->type, 0, 1);
		memcpy(buf + 4, &b->len, 4);
		raw_send(s.raw, buf, b->n, fds, b->nfds);
		close(p[1]);

		capture_begin();
		before = count_fds();
		spin(base);
		after = count_fds();
		lines = capture_end(logbuf, sizeof(logbuf));

		if (s.ngot != 0 || s.eofs != 1)
			fail_msg("%s: %d frames, %d eofs", b->what, s.ngot,
			    s.eofs);
		if (lines != 1 || strstr(logbuf, "test: malformed frame") ==
		    NULL || strstr(logbuf, b->log_err) == NULL)
			fail_msg("%s: %d lines: %s", b->what, lines, logbuf);
		if (after != before)
			fail_msg("%s: %d descriptors before, %d after",
			    b->what, before, after);
		/* no copy of the write end survives in the receiver */
		r = read(p[0], &c, 1);
		if (r != 0)
			fail_msg("%s: write end still open (%zd)", b->what, r);
		/* dead for good: nothing more is sent or reported */
		rc = ipc_sendv(s.ipc, IPC_HEARTBEAT, 0, -1);
		if (rc != -1)
			fail_msg("%s: dead channel sent", b->what);
		spin(base);
		assert_int_equal(s.eofs, 1);
		close(p[0]);
		side_done(&s);
		event_base_free(base);
	}
}

/* more descriptors than the receiver takes: all of them are closed */
static void
test_ipc_extra_fds_closed(void **state)
{
	struct event_base	*base;
	struct side		 s;
	uint8_t			 buf[64];
	char			 logbuf[LOGMAX];
	int			 p[2], fds[6], i, lines, before, after;
	char			 c;

	base = event_base_new();
	side_raw(&s, base);
	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	for (i = 0; i < 4; i++)
		fds[i] = p[1];
	raw_send(s.raw, buf, raw_frame(buf, IPC_PEER, 8, 0), fds, 4);
	close(p[1]);
	capture_begin();
	spin(base);
	lines = capture_end(logbuf, sizeof(logbuf));
	assert_int_equal(lines, 1);
	assert_non_null(strstr(logbuf, "4 descriptors"));
	assert_int_equal(s.ngot, 0);
	assert_int_equal(s.eofs, 1);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	side_done(&s);

	/* more than the control buffer holds: truncated, all closed */
	side_raw(&s, base);
	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	for (i = 0; i < 6; i++)
		fds[i] = p[1];
	raw_send(s.raw, buf, raw_frame(buf, IPC_PEER, 8, 0), fds, 6);
	close(p[1]);
	capture_begin();
	before = count_fds();
	spin(base);
	after = count_fds();
	lines = capture_end(logbuf, sizeof(logbuf));
	assert_int_equal(lines, 1);
	assert_non_null(strstr(logbuf, "malformed frame: oversized"));
	assert_int_equal(after, before);
	assert_int_equal(s.ngot, 0);
	assert_int_equal(s.eofs, 1);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	side_done(&s);
	event_base_free(base);
}

/* frames sent before the peer closed still arrive, then NULL once */
static void
test_ipc_eof_once(void **state)
{
	struct event_base	*base;
	struct side		 s;
	uint8_t			 buf[64];
	char			 logbuf[LOGMAX];
	int			 lines;

	base = event_base_new();
	side_raw(&s, base);
	raw_send(s.raw, buf, raw_frame(buf, IPC_HEARTBEAT, 0, 1), NULL, 0);
	raw_send(s.raw, buf, raw_frame(buf, IPC_READY, 4, 2), NULL, 0);
	close(s.raw);
	s.raw = -1;
	capture_begin();
	spin(base);
	spin(base);
	lines = capture_end(logbuf, sizeof(logbuf));
	assert_int_equal(s.ngot, 2);
	assert_true(s.got[0].reqid == 1 && s.got[1].reqid == 2);
	assert_int_equal(s.eofs, 1);
	assert_int_equal(lines, 0);		/* end of file is no error */
	assert_int_equal(ipc_sendv(s.ipc, IPC_HEARTBEAT, 0, -1), -1);
	spin(base);
	assert_int_equal(s.eofs, 1);
	side_done(&s);
	event_base_free(base);
}

/*
 * A zero-length record cannot be told from end of file by recvmsg(); the
 * channel ends as it would for any bad frame.
 */
static void
test_ipc_empty_record(void **state)
{
	struct event_base	*base;
	struct side		 s;

	base = event_base_new();
	side_raw(&s, base);
	raw_send(s.raw, "", 0, NULL, 0);
	spin(base);
	assert_int_equal(s.ngot, 0);
	assert_int_equal(s.eofs, 1);
	assert_int_equal(ipc_sendv(s.ipc, IPC_HEARTBEAT, 0, -1), -1);
	side_done(&s);
	event_base_free(base);
}

static void
test_ipc_free_inside_dispatch_eof(void **state)
{
	struct event_base	*base;
	struct side		 s;

	base = event_base_new();
	side_raw(&s, base);
	s.free_on_eof = 1;
	close(s.raw);
	s.raw = -1;
	spin(base);
	assert_int_equal(s.eofs, 1);
	assert_null(s.ipc);
	spin(base);
	assert_int_equal(s.eofs, 1);
	side_done(&s);
	event_base_free(base);
}

/*
 * ipc_free() while frames are still waiting to be read: no further
 * dispatch, not even NULL, and the frame's descriptor is closed.
 */
static void
test_ipc_free_inside_dispatch_frame(void **state)
{
	struct event_base	*base;
	struct side		 s;
	uint8_t			 buf[64];
	int			 p[2], i;
	char			 c;

	base = event_base_new();
	side_raw(&s, base);
	s.take_fd = 0;
	s.free_at = 2;
	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	raw_send(s.raw, buf, raw_frame(buf, IPC_HEARTBEAT, 0, 1), NULL, 0);
	raw_send(s.raw, buf, raw_frame(buf, IPC_LISTENER, 4, 2), &p[1], 1);
	close(p[1]);
	for (i = 0; i < 5; i++)
		raw_send(s.raw, buf, raw_frame(buf, IPC_HEARTBEAT, 0, 3),
		    NULL, 0);
	spin(base);
	assert_null(s.ipc);
	assert_int_equal(s.ngot, 2);
	assert_int_equal(s.eofs, 0);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	side_done(&s);
	event_base_free(base);
}

/* the owner frees a dead channel whose queue still holds descriptors */
static void
test_ipc_free_with_queued_fds(void **state)
{
	struct event_base	*base;
	struct side		 s;
	struct ipc_frame	 f;
	int			 p[2], i, before;
	char			 c;

	before = count_fds();
	base = event_base_new();
	side_raw(&s, base);
	s.free_on_eof = 1;
	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	for (i = 0; i < 100000 && ipc_queued(s.ipc) == 0; i++)
		assert_int_equal(ipc_sendv(s.ipc, IPC_HEARTBEAT, i, -1), 0);
	assert_true(ipc_queued(s.ipc) > 0);
	for (i = 0; i < 3; i++) {
		ipc_frame_init(&f, IPC_LISTENER, i);
		ipc_put_u32(&f, 0);
		assert_int_equal(ipc_send(s.ipc, &f, p[1]), 0);
	}
	close(p[1]);
	/* the peer goes away unread: copies in flight die with its socket */
	close(s.raw);
	s.raw = -1;
	spin(base);
	assert_int_equal(s.eofs, 1);
	assert_null(s.ipc);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	side_done(&s);
	event_base_free(base);
	assert_int_equal(count_fds(), before);
}

/*
 * Fill the socket until ipc_send() queues, queue many more behind it,
 * then let the peer read: every frame arrives, in order, none lost.
 */
static void
test_ipc_backpressure(void **state)
{
	struct event_base	*base_a, *base_b;
	struct side		 a, b;
	struct ipc_frame	 f;
	struct ipc_msg		 m;
	int			 sv[2], i, fill, total, before;
	int			 sz = 4096, p[2];
	uint32_t		 u32;
	size_t			 q;

	before = count_fds();
	base_a = event_base_new();
	base_b = event_base_new();
	side_init(&a);
	side_init(&b);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	/* a small send buffer fills after a few frames */
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz,
	    sizeof(sz)), 0);
	side_attach(&a, base_a, sv[0], "a");
	side_attach(&b, base_b, sv[1], "b");
	assert_int_equal(pipe(p), 0);

	for (fill = 0; fill < 1000 && ipc_queued(a.ipc) == 0; fill++) {
		ipc_frame_init(&f, IPC_READY, (uint64_t)fill);
		ipc_put_u32(&f, (uint32_t)fill);
		assert_int_equal(ipc_send(a.ipc, &f, -1), 0);
	}
	assert_true(ipc_queued(a.ipc) > 0);
	assert_true(fill > 1);
	total = fill + 1500;
	assert_true(total <= MAXGOT);
	for (i = fill; i < total; i++) {
		/*
		 * Halfway, the peer reads what the socket holds while the
		 * sender's loop does not run: the socket has room again, but
		 * a frame sent now must still wait behind the queue.
		 */
		if (i == fill + 750) {
			spin(base_b);
			assert_true(b.ngot > 0 && b.ngot < fill);
		}
		q = ipc_queued(a.ipc);
		/* now and then a frame carries a descriptor */
		if (i % 97 == 0) {
			ipc_frame_init(&f, IPC_LISTENER, (uint64_t)i);
			ipc_put_u32(&f, (uint32_t)i);
			assert_int_equal(ipc_send(a.ipc, &f, p[1]), 0);
		} else {
			ipc_frame_init(&f, IPC_READY, (uint64_t)i);
			ipc_put_u32(&f, (uint32_t)i);
			assert_int_equal(ipc_send(a.ipc, &f, -1), 0);
		}
		/* behind a queue nothing jumps ahead onto the socket */
		assert_int_equal(ipc_queued(a.ipc), q + IPC_HDR_SIZE + 4);
	}

	for (i = 0; i < 20000 && b.ngot < total; i++) {
		event_base_loop(base_b, EVLOOP_NONBLOCK);
		event_base_loop(base_a, EVLOOP_NONBLOCK);
	}
	assert_int_equal(b.ngot, total);
	assert_int_equal(ipc_queued(a.ipc), 0);
	assert_int_equal(a.eofs + b.eofs, 0);
	for (i = 0; i < total; i++) {
		struct got	*g = &b.got[i];

		assert_true(g->reqid == (uint64_t)i);
		msg_over(&m, g->payload, g->len);
		assert_int_equal(ipc_get_u32(&m, &u32), 0);
		assert_int_equal(u32, (uint32_t)i);
		assert_int_equal(ipc_end(&m), 0);
		if (i >= fill && i % 97 == 0) {
			assert_int_equal(g->type, IPC_LISTENER);
			assert_true(g->fd >= 0);
		} else {
			assert_int_equal(g->type, IPC_READY);
			assert_int_equal(g->fd, -1);
		}
	}
	close(p[0]);
	close(p[1]);
	side_done(&a);
	side_done(&b);
	event_base_free(base_a);
	event_base_free(base_b);
	assert_int_equal(count_fds(), before);
}

/* a peer that never reads: past IPC_MAX_QUEUED the channel is dead */
static void
test_ipc_queue_limit(void **state)
{
	struct event_base	*base;
	struct side		 s;
	struct ipc_frame	 f;
	static uint8_t		 pad[IPC_MAX_PAYLOAD];
	char			 logbuf[LOGMAX];
	size_t			 last = 0;
	int			 i, rc = 0, lines;

	base = event_base_new();
	side_raw(&s, base);
	capture_begin();
	for (i = 0; i < 10000 && rc == 0; i++) {
		last = ipc_queued(s.ipc);
		ipc_frame_init(&f, IPC_HELLO, 0);
		ipc_put_data(&f, pad, sizeof(pad));
		rc = ipc_send(s.ipc, &f, -1);
	}
	lines = capture_end(logbuf, sizeof(logbuf));
	assert_int_equal(rc, -1);
	/* it failed on the frame that would have passed the bound */
	assert_true(last <= IPC_MAX_QUEUED);
	assert_true(last + IPC_MAX_FRAME > IPC_MAX_QUEUED);
	assert_int_equal(lines, 1);
	assert_non_null(strstr(logbuf, "test: peer is not reading"));
	assert_int_equal(s.eofs, 0);		/* not from inside ipc_send */
	spin(base);
	assert_int_equal(s.eofs, 1);
	assert_int_equal(s.ngot, 0);
	assert_int_equal(ipc_sendv(s.ipc, IPC_HEARTBEAT, 0, -1), -1);
	spin(base);
	assert_int_equal(s.eofs, 1);
	side_done(&s);
	event_base_free(base);
}

static void
test_ipc_names(void **state)
{
	static const char	*procs[] = {
		"sluiced", "smtpd", "authd", "queued", "deliverd"
	};
	size_t			 i;

	for (i = 0; i < nitems(type_rows); i++)
		assert_string_equal(ipc_type_str(type_rows[i].type),
		    type_rows[i].name);
	assert_string_equal(ipc_type_str(0), "UNKNOWN");
	assert_string_equal(ipc_type_str(IPC_TYPE_MAX), "UNKNOWN");
	assert_string_equal(ipc_type_str(UINT32_MAX), "UNKNOWN");

	assert_int_equal(nitems(procs), PROC_COUNT);
	for (i = 0; i < nitems(procs); i++)
		assert_string_equal(ipc_proc_str((enum ipc_proc)i), procs[i]);
	assert_string_equal(ipc_proc_str(PROC_COUNT), "unknown");
	assert_string_equal(ipc_proc_str((enum ipc_proc)-1), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipc_round_trip_every_type),
		cmocka_unit_test(test_ipc_type_bounds),
		cmocka_unit_test(test_ipc_put_get_values),
		cmocka_unit_test(test_ipc_str_on_the_wire),
		cmocka_unit_test(test_ipc_put_max_payload),
		cmocka_unit_test(test_ipc_get_short),
		cmocka_unit_test(test_ipc_get_str_refused),
		cmocka_unit_test(test_ipc_end_leftover),
		cmocka_unit_test(test_ipc_fd_passing),
		cmocka_unit_test(test_ipc_fd_queued_is_dup),
		cmocka_unit_test(test_ipc_fd_untaken_closed),
		cmocka_unit_test(test_ipc_parse_rejects),
		cmocka_unit_test(test_ipc_malformed_live),
		cmocka_unit_test(test_ipc_extra_fds_closed),
		cmocka_unit_test(test_ipc_eof_once),
		cmocka_unit_test(test_ipc_empty_record),
		cmocka_unit_test(test_ipc_free_inside_dispatch_eof),
		cmocka_unit_test(test_ipc_free_inside_dispatch_frame),
		cmocka_unit_test(test_ipc_free_with_queued_fds),
		cmocka_unit_test(test_ipc_backpressure),
		cmocka_unit_test(test_ipc_queue_limit),
		cmocka_unit_test(test_ipc_names),
	};

	log_init("test_ipc", LOG_F_NOSYSLOG);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
