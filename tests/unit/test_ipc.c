/*
 * test_ipc.c - framing, typed marshalling, descriptor passing, malformed
 * frames and back-pressure, over real SOCK_SEQPACKET socketpairs and a
 * real event loop.
 */
#include "config.h"

#include <sys/types.h>
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

#define MAXGOT	4096

struct side {
	struct event_base	*base;
	struct ipc		*ipc;
	int			 raw;		/* the other end, for raw writes */
	int			 ngot;
	uint32_t		 type[MAXGOT];
	uint64_t		 reqid[MAXGOT];
	int			 fd;		/* last descriptor taken */
	int			 eofs;
	int			 free_in_dispatch;
	char			 str[64];
	uint32_t		 u32;
	uint64_t		 u64;
};

static void
dispatch(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct side	*s = arg;

	if (m == NULL) {
		s->eofs++;
		if (s->free_in_dispatch) {
			ipc_free(ipc);
			s->ipc = NULL;
		}
		return;
	}
	if (s->ngot < MAXGOT) {
		s->type[s->ngot] = m->type;
		s->reqid[s->ngot] = m->reqid;
	}
	s->ngot++;
	if (m->type == IPC_LISTENER || m->type == IPC_PEER) {
		s->fd = m->fd;
		m->fd = -1;
	}
	if (m->type == IPC_HELLO) {
		assert_int_equal(ipc_get_u32(m, &s->u32), 0);
		assert_int_equal(ipc_get_u64(m, &s->u64), 0);
		assert_int_equal(ipc_end(m), 0);
	}
}

static void
side_open(struct side *s)
{
	int	 sv[2];

	memset(s, 0, sizeof(*s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	s->base = event_base_new();
	assert_non_null(s->base);
	s->ipc = ipc_new(sv[0], s->base, "test", dispatch, s);
	assert_non_null(s->ipc);
	s->raw = sv[1];
	s->fd = -1;
}

static void
side_close(struct side *s)
{
	ipc_free(s->ipc);
	if (s->raw != -1)
		close(s->raw);
	if (s->fd != -1)
		close(s->fd);
	event_base_free(s->base);
}

static void
spin(struct side *s)
{
	int	 i;

	for (i = 0; i < 20; i++)
		event_base_loop(s->base, EVLOOP_NONBLOCK);
}

/* raw_send - put bytes (and maybe a descriptor) on the wire unchecked */
static void
raw_send(int sock, const void *p, size_t n, int fd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct cmsghdr	*cm;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)p;
	iov.iov_len = n;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd != -1) {
		memset(&c, 0, sizeof(c));
		msg.msg_control = c.buf;
		msg.msg_controllen = sizeof(c.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &msg, 0), (ssize_t)n);
}

static size_t
raw_frame(uint8_t *p, uint32_t type, uint32_t len, uint64_t reqid)
{
	memcpy(p, &type, 4);
	memcpy(p + 4, &len, 4);
	memcpy(p + 8, &reqid, 8);
	memset(p + 16, 0, len);
	return 16 + len;
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
test_ipc_round_trip(void **state)
{
	struct side		 a, b;
	struct ipc_frame	 f;
	int			 sv[2];

	/* two channels on one loop, joined: a sends, b receives */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	b.base = a.base = event_base_new();
	a.ipc = ipc_new(sv[0], a.base, "a", dispatch, &a);
	b.ipc = ipc_new(sv[1], b.base, "b", dispatch, &b);
	a.raw = b.raw = a.fd = b.fd = -1;

	ipc_frame_init(&f, IPC_HELLO, 77);
	ipc_put_u32(&f, 0xdeadbeef);
	ipc_put_u64(&f, 0x0123456789abcdefULL);
	assert_int_equal(ipc_send(a.ipc, &f, -1), 0);
	assert_int_equal(ipc_sendv(a.ipc, IPC_START, 78, -1), 0);
	assert_int_equal(ipc_sendv(a.ipc, IPC_HEARTBEAT, UINT64_MAX, -1), 0);
	spin(&b);
	assert_int_equal(b.ngot, 3);
	assert_int_equal(b.type[0], IPC_HELLO);
	assert_int_equal(b.reqid[0], 77);
	assert_int_equal(b.u32, 0xdeadbeef);
	assert_true(b.u64 == 0x0123456789abcdefULL);
	assert_int_equal(b.type[1], IPC_START);
	assert_int_equal(b.type[2], IPC_HEARTBEAT);
	assert_true(b.reqid[2] == UINT64_MAX);
	assert_int_equal(b.eofs, 0);

	ipc_free(a.ipc);
	spin(&b);
	assert_int_equal(b.eofs, 1);	/* end of file: reported once */
	spin(&b);
	assert_int_equal(b.eofs, 1);
	ipc_free(b.ipc);
	event_base_free(a.base);
}

static void
test_ipc_fd_passing(void **state)
{
	struct side		 s;
	struct side		 r;
	struct ipc_frame	 f;
	int			 p[2], sv[2];
	char			 c = 0;

	memset(&s, 0, sizeof(s));
	memset(&r, 0, sizeof(r));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	s.base = r.base = event_base_new();
	s.ipc = ipc_new(sv[0], s.base, "s", dispatch, &s);
	r.ipc = ipc_new(sv[1], r.base, "r", dispatch, &r);
	r.fd = -1;
	assert_int_equal(pipe(p), 0);

	ipc_frame_init(&f, IPC_LISTENER, 0);
	ipc_put_u32(&f, 3);
	assert_int_equal(ipc_send(s.ipc, &f, p[1]), 0);
	/* ipc_send duplicates: the sender's descriptor is still its own */
	assert_int_equal(write(p[1], "x", 1), 1);
	spin(&r);
	assert_int_equal(r.ngot, 1);
	assert_true(r.fd >= 0);
	assert_true(r.fd != p[1]);
	assert_int_equal(write(r.fd, "y", 1), 1);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	close(r.fd);
	close(p[0]);
	close(p[1]);
	ipc_free(s.ipc);
	ipc_free(r.ipc);
	event_base_free(s.base);
}

static void
test_ipc_put_overflow(void **state)
{
	struct side		 s;
	struct ipc_frame	 f;
	static uint8_t		 big[IPC_MAX_PAYLOAD + 1];

	side_open(&s);
	/* exactly IPC_MAX_PAYLOAD fits the frame (the type table decides) */
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD);
	assert_int_equal(f.overflow, 0);
	assert_int_equal(f.len, IPC_HDR_SIZE + IPC_MAX_PAYLOAD);
	ipc_put_data(&f, big, 1);
	assert_int_equal(f.overflow, 1);
	assert_int_equal(ipc_send(s.ipc, &f, -1), -1);

	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_data(&f, big, IPC_MAX_PAYLOAD + 1);
	assert_int_equal(f.overflow, 1);
	assert_int_equal(f.len, IPC_HDR_SIZE);
	side_close(&s);
}

static void
test_ipc_getters_bounds(void **state)
{
	uint8_t		 buf[IPC_HDR_SIZE + 64];
	struct ipc_msg	 m;
	char		 err[128], str[8];
	uint32_t	 u32, n;
	uint64_t	 u64;

	/* a PEER payload is 8 bytes: one u64 fits, one more u32 does not */
	raw_frame(buf, IPC_PEER, 8, 0);
	assert_int_equal(ipc_frame_parse(buf, 24, 1, &m, err, sizeof(err)), 0);
	assert_int_equal(ipc_get_u64(&m, &u64), 0);
	assert_int_equal(ipc_end(&m), 0);
	assert_int_equal(ipc_get_u32(&m, &u32), -1);

	/* leftovers make ipc_end fail */
	assert_int_equal(ipc_frame_parse(buf, 24, 1, &m, err, sizeof(err)), 0);
	assert_int_equal(ipc_get_u32(&m, &u32), 0);
	assert_int_equal(ipc_end(&m), -1);

	/* strings: length over what is left, NUL inside, too big for dst */
	raw_frame(buf, IPC_PEER, 8, 0);
	n = 100;
	memcpy(buf + 16, &n, 4);
	assert_int_equal(ipc_frame_parse(buf, 24, 1, &m, err, sizeof(err)), 0);
	assert_int_equal(ipc_get_str(&m, str, sizeof(str)), -1);

	n = 4;
	memcpy(buf + 16, &n, 4);
	memcpy(buf + 20, "ab\0c", 4);
	assert_int_equal(ipc_frame_parse(buf, 24, 1, &m, err, sizeof(err)), 0);
	assert_int_equal(ipc_get_str(&m, str, sizeof(str)), -1);

	memcpy(buf + 20, "abcd", 4);
	assert_int_equal(ipc_frame_parse(buf, 24, 1, &m, err, sizeof(err)), 0);
	assert_int_equal(ipc_get_str(&m, str, 4), -1);	/* needs 5 */
	assert_int_equal(ipc_frame_parse(buf, 24, 1, &m, err, sizeof(err)), 0);
	assert_int_equal(ipc_get_str(&m, str, 5), 0);
	assert_string_equal(str, "abcd");
	assert_int_equal(ipc_end(&m), 0);
}

static void
test_ipc_parse_rejects(void **state)
{
	uint8_t		 buf[IPC_MAX_FRAME + 16];
	struct ipc_msg	 m;
	char		 err[128];
	uint32_t	 len;

	raw_frame(buf, IPC_HELLO, 12, 0);
	assert_int_equal(ipc_frame_parse(buf, 28, 0, &m, err, sizeof(err)), 0);
	/* truncated header */
	assert_int_equal(ipc_frame_parse(buf, 15, 0, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	/* length field disagrees with the frame */
	assert_int_equal(ipc_frame_parse(buf, 27, 0, &m, err, sizeof(err)), -1);
	/* over the maximum */
	len = IPC_MAX_PAYLOAD + 1;
	memcpy(buf + 4, &len, 4);
	assert_int_equal(ipc_frame_parse(buf, IPC_HDR_SIZE + len, 0, &m, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "over"));
	/* unknown types */
	raw_frame(buf, 0, 0, 0);
	assert_int_equal(ipc_frame_parse(buf, 16, 0, &m, err, sizeof(err)), -1);
	raw_frame(buf, IPC_TYPE_MAX, 0, 0);
	assert_int_equal(ipc_frame_parse(buf, 16, 0, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown type"));
	/* payload outside the type's bounds */
	raw_frame(buf, IPC_HELLO, 11, 0);
	assert_int_equal(ipc_frame_parse(buf, 27, 0, &m, err, sizeof(err)), -1);
	raw_frame(buf, IPC_START, 1, 0);
	assert_int_equal(ipc_frame_parse(buf, 17, 0, &m, err, sizeof(err)), -1);
	/* descriptors: required, forbidden, too many */
	raw_frame(buf, IPC_LISTENER, 4, 0);
	assert_int_equal(ipc_frame_parse(buf, 20, 0, &m, err, sizeof(err)), -1);
	assert_int_equal(ipc_frame_parse(buf, 20, 2, &m, err, sizeof(err)), -1);
	assert_int_equal(ipc_frame_parse(buf, 20, 1, &m, err, sizeof(err)), 0);
	raw_frame(buf, IPC_START, 0, 0);
	assert_int_equal(ipc_frame_parse(buf, 16, 1, &m, err, sizeof(err)), -1);
}

/* a malformed frame on a live channel kills it, closing any descriptor */
static void
test_ipc_malformed_live(void **state)
{
	struct side	 s;
	uint8_t		 buf[64];
	int		 p[2], before;

	side_open(&s);
	assert_int_equal(pipe(p), 0);
	before = count_fds();
	/* START takes no descriptor; send one anyway */
	raw_send(s.raw, buf, raw_frame(buf, IPC_START, 0, 0), p[0]);
	spin(&s);
	assert_int_equal(s.ngot, 0);
	assert_int_equal(s.eofs, 1);
	assert_int_equal(count_fds(), before);	/* the passed copy is closed */
	/* a dead channel sends nothing */
	assert_int_equal(ipc_sendv(s.ipc, IPC_START, 0, -1), -1);
	close(p[0]);
	close(p[1]);
	side_close(&s);

	side_open(&s);
	raw_send(s.raw, buf, raw_frame(buf, 999, 0, 0), -1);
	spin(&s);
	assert_int_equal(s.eofs, 1);
	side_close(&s);

	side_open(&s);
	raw_send(s.raw, buf, 10, -1);			/* truncated */
	spin(&s);
	assert_int_equal(s.eofs, 1);
	side_close(&s);
}

static void
test_ipc_oversized_record(void **state)
{
	struct side	 s;
	static uint8_t	 buf[IPC_MAX_FRAME + 100];
	int		 sz = (int)sizeof(buf) * 2;

	side_open(&s);
	setsockopt(s.raw, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	raw_frame(buf, IPC_HELLO, 12, 0);
	raw_send(s.raw, buf, sizeof(buf), -1);	/* longer than any frame */
	spin(&s);
	assert_int_equal(s.ngot, 0);
	assert_int_equal(s.eofs, 1);
	side_close(&s);
}

static void
test_ipc_free_inside_dispatch(void **state)
{
	struct side	 s;

	side_open(&s);
	s.free_in_dispatch = 1;
	close(s.raw);
	s.raw = -1;
	spin(&s);
	assert_int_equal(s.eofs, 1);
	assert_null(s.ipc);
	side_close(&s);
}

/* frames wait in the queue while the peer is slow, and arrive in order */
static void
test_ipc_backpressure(void **state)
{
	struct side		 a, b;
	struct ipc_frame	 f;
	int			 sv[2], i, n = 3000;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	a.base = event_base_new();
	b.base = event_base_new();
	a.ipc = ipc_new(sv[0], a.base, "a", dispatch, &a);
	b.ipc = ipc_new(sv[1], b.base, "b", dispatch, &b);
	for (i = 0; i < n; i++) {
		ipc_frame_init(&f, IPC_HELLO, (uint64_t)i);
		ipc_put_u32(&f, (uint32_t)i);
		ipc_put_u64(&f, 0);
		assert_int_equal(ipc_send(a.ipc, &f, -1), 0);
	}
	/* the socket holds far fewer than 3000 records: some wait in line */
	assert_true(ipc_queued(a.ipc) > 0);
	for (i = 0; i < 2000 && b.ngot < n; i++) {
		event_base_loop(b.base, EVLOOP_NONBLOCK);
		event_base_loop(a.base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(b.ngot, n);
	assert_int_equal(ipc_queued(a.ipc), 0);
	for (i = 0; i < n; i++)
		assert_true(b.reqid[i] == (uint64_t)i);
	ipc_free(a.ipc);
	ipc_free(b.ipc);
	event_base_free(a.base);
	event_base_free(b.base);
}

/* a peer that never reads: past IPC_MAX_QUEUED the channel is dead */
static void
test_ipc_queue_limit(void **state)
{
	struct side		 s;
	struct ipc_frame	 f;
	static uint8_t		 pad[12];
	int			 i, rc = 0;

	side_open(&s);
	for (i = 0; i < 1000000 && rc == 0; i++) {
		ipc_frame_init(&f, IPC_HELLO, 0);
		ipc_put_data(&f, pad, sizeof(pad));
		rc = ipc_send(s.ipc, &f, -1);
	}
	assert_int_equal(rc, -1);
	/* 28-byte frames: the limit is reached, not some other failure */
	assert_true((size_t)i * 28 >= IPC_MAX_QUEUED);
	spin(&s);
	assert_int_equal(s.eofs, 1);
	side_close(&s);
}

static void
test_ipc_names(void **state)
{
	assert_string_equal(ipc_type_str(IPC_HELLO), "HELLO");
	assert_string_equal(ipc_type_str(IPC_SHUTDOWN), "SHUTDOWN");
	assert_string_equal(ipc_type_str(0), "UNKNOWN");
	assert_string_equal(ipc_type_str(IPC_TYPE_MAX), "UNKNOWN");
	assert_string_equal(ipc_type_str(UINT32_MAX), "UNKNOWN");
	assert_string_equal(ipc_proc_str(PROC_SMTPD), "smtpd");
	assert_string_equal(ipc_proc_str(PROC_DELIVERD), "deliverd");
	assert_string_equal(ipc_proc_str(PROC_COUNT), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipc_round_trip),
		cmocka_unit_test(test_ipc_fd_passing),
		cmocka_unit_test(test_ipc_put_overflow),
		cmocka_unit_test(test_ipc_getters_bounds),
		cmocka_unit_test(test_ipc_parse_rejects),
		cmocka_unit_test(test_ipc_malformed_live),
		cmocka_unit_test(test_ipc_oversized_record),
		cmocka_unit_test(test_ipc_free_inside_dispatch),
		cmocka_unit_test(test_ipc_backpressure),
		cmocka_unit_test(test_ipc_queue_limit),
		cmocka_unit_test(test_ipc_names),
	};

	log_init("test_ipc", LOG_F_NOSYSLOG);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
