/*
 * ipc.c - framed messages over SOCK_SEQPACKET socketpairs
 */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "compat/compat.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

/* At most this many descriptors are read per frame; extras are closed. */
#define IPC_MAX_RX_FDS	4

/* Frames dispatched per read event, so one busy peer cannot starve others. */
#define IPC_READ_BATCH	64

struct ipc_out {
	TAILQ_ENTRY(ipc_out)	 entry;
	size_t			 len;
	int			 fd;
	uint8_t			 data[];
};

struct ipc {
	int			 fd;
	char			 name[32];
	struct event		*ev_read;
	struct event		*ev_write;
	ipc_dispatch_fn		 fn;
	void			*arg;
	TAILQ_HEAD(, ipc_out)	 outq;
	size_t			 queued;
	int			 dead;		/* no more I/O */
	int			 reported;	/* fn(NULL) was called */
	int			 busy;		/* inside fn */
	int			 zombie;	/* ipc_free() called inside fn */
};

enum ipc_fdmode {
	IPC_FD_NONE,
	IPC_FD_ONE
};

struct ipc_type_info {
	const char	*name;
	uint32_t	 min_len;
	uint32_t	 max_len;
	enum ipc_fdmode	 fd;
};

/*
 * The shape of every message.  A frame whose type is not here, whose
 * payload is out of these bounds, or whose descriptor count differs is
 * malformed: the receiver closes the channel.
 */
static const struct ipc_type_info ipc_types[IPC_TYPE_MAX] = {
	[IPC_HELLO] =		{ "HELLO", 12, 12, IPC_FD_NONE },
	[IPC_CONF] =		{ "CONF", 4, 4, IPC_FD_ONE },
	[IPC_CONF_DONE] =	{ "CONF_DONE", 4, 4, IPC_FD_NONE },
	[IPC_LISTENER] =	{ "LISTENER", 4, 4, IPC_FD_ONE },
	[IPC_TLS_CERT] =	{ "TLS_CERT", 4, 4, IPC_FD_ONE },
	[IPC_PEER] =		{ "PEER", 8, 8, IPC_FD_ONE },
	[IPC_START] =		{ "START", 0, 0, IPC_FD_NONE },
	[IPC_READY] =		{ "READY", 4, 4, IPC_FD_NONE },
	[IPC_HEARTBEAT] =	{ "HEARTBEAT", 0, 0, IPC_FD_NONE },
	[IPC_HEARTBEAT_ACK] =	{ "HEARTBEAT_ACK", 0, 0, IPC_FD_NONE },
	[IPC_SHUTDOWN] =	{ "SHUTDOWN", 0, 0, IPC_FD_NONE },
	[IPC_Q_OPEN] =		{ "Q_OPEN", 32, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_Q_RCPT] =		{ "Q_RCPT", 12, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_Q_OPENED] =	{ "Q_OPENED", 0, 0, IPC_FD_ONE },
	[IPC_Q_COMMIT] =	{ "Q_COMMIT", 8, 8, IPC_FD_NONE },
	[IPC_Q_ABORT] =		{ "Q_ABORT", 0, 0, IPC_FD_NONE },
	[IPC_Q_OK] =		{ "Q_OK", 4, 256, IPC_FD_NONE },
	[IPC_Q_FAIL] =		{ "Q_FAIL", 12, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_DLV_RCPT] =	{ "DLV_RCPT", 16, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_DLV_JOB] =		{ "DLV_JOB", 28, IPC_MAX_PAYLOAD, IPC_FD_ONE },
	[IPC_DLV_RESULT] =	{ "DLV_RESULT", 16, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_DLV_DONE] =	{ "DLV_DONE", 8, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_DLV_CLOSED] =	{ "DLV_CLOSED", 8, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_AUTH_REQ] =	{ "AUTH_REQ", 12, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_AUTH_RES] =	{ "AUTH_RES", 24, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_RATE_REQ] =	{ "RATE_REQ", 12, IPC_MAX_PAYLOAD, IPC_FD_NONE },
	[IPC_RATE_RES] =	{ "RATE_RES", 8, 8, IPC_FD_NONE },
	/* STATS_NFIELDS u64 of stats_proto.h */
	[IPC_SMTPD_STATS] =	{ "SMTPD_STATS", 64, 64, IPC_FD_NONE },
};

static const char *ipc_procs[PROC_COUNT] = {
	[PROC_SLUICED] = "sluiced",
	[PROC_SMTPD] = "smtpd",
	[PROC_AUTHD] = "authd",
	[PROC_QUEUED] = "queued",
	[PROC_DELIVERD] = "deliverd",
};

static void	ipc_read_cb(evutil_socket_t, short, void *);
static void	ipc_write_cb(evutil_socket_t, short, void *);
static int	ipc_flush(struct ipc *);
static int	ipc_sendmsg(struct ipc *, const uint8_t *, size_t, int);
static void	ipc_fail(struct ipc *);
static void	ipc_destroy(struct ipc *);

/* One receive buffer per process: dispatch never reads recursively. */
static uint8_t	ipc_rxbuf[IPC_MAX_FRAME + 1];

const char *
ipc_type_str(uint32_t type)
{
	if (type >= IPC_TYPE_MAX || ipc_types[type].name == NULL)
		return "UNKNOWN";
	return ipc_types[type].name;
}

const char *
ipc_proc_str(enum ipc_proc p)
{
	if ((unsigned)p >= PROC_COUNT)
		return "unknown";
	return ipc_procs[p];
}

/* ipc_new - wrap one end of a socketpair in a channel on the event base */
struct ipc *
ipc_new(int fd, struct event_base *base, const char *name,
    ipc_dispatch_fn fn, void *arg)
{
	struct ipc	*ipc;
	int		 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		log_warn("ipc_new: %s: fcntl", name);
		return NULL;
	}
	ipc = xcalloc(1, sizeof(*ipc));
	ipc->fd = fd;
	strlcpy(ipc->name, name, sizeof(ipc->name));
	ipc->fn = fn;
	ipc->arg = arg;
	TAILQ_INIT(&ipc->outq);
	ipc->ev_read = event_new(base, fd, EV_READ | EV_PERSIST,
	    ipc_read_cb, ipc);
	ipc->ev_write = event_new(base, fd, EV_WRITE, ipc_write_cb, ipc);
	if (ipc->ev_read == NULL || ipc->ev_write == NULL ||
	    event_add(ipc->ev_read, NULL) == -1) {
		log_warnx("ipc_new: %s: cannot register events", name);
		ipc_destroy(ipc);
		return NULL;
	}
	return ipc;
}

const char *
ipc_name(const struct ipc *ipc)
{
	return ipc->name;
}

size_t
ipc_queued(const struct ipc *ipc)
{
	return ipc->queued;
}

/* ipc_free - close the channel; safe to call from inside its dispatch */
void
ipc_free(struct ipc *ipc)
{
	if (ipc == NULL)
		return;
	if (ipc->busy) {
		ipc->zombie = 1;
		ipc->dead = 1;
		return;
	}
	ipc_destroy(ipc);
}

static void
ipc_destroy(struct ipc *ipc)
{
	struct ipc_out	*o;

	while ((o = TAILQ_FIRST(&ipc->outq)) != NULL) {
		TAILQ_REMOVE(&ipc->outq, o, entry);
		if (o->fd != -1)
			close(o->fd);
		free(o);
	}
	if (ipc->ev_read != NULL)
		event_free(ipc->ev_read);
	if (ipc->ev_write != NULL)
		event_free(ipc->ev_write);
	close(ipc->fd);
	free(ipc);
}

void
ipc_frame_init(struct ipc_frame *f, uint32_t type, uint64_t reqid)
{
	memcpy(f->data, &type, 4);
	memset(f->data + 4, 0, 4);
	memcpy(f->data + 8, &reqid, 8);
	f->len = IPC_HDR_SIZE;
	f->overflow = 0;
}

void
ipc_put_data(struct ipc_frame *f, const void *p, size_t n)
{
	if (f->overflow || n > sizeof(f->data) - f->len) {
		f->overflow = 1;
		return;
	}
	memcpy(f->data + f->len, p, n);
	f->len += n;
}

void
ipc_put_u32(struct ipc_frame *f, uint32_t v)
{
	ipc_put_data(f, &v, sizeof(v));
}

void
ipc_put_u64(struct ipc_frame *f, uint64_t v)
{
	ipc_put_data(f, &v, sizeof(v));
}

void
ipc_put_str(struct ipc_frame *f, const char *s)
{
	size_t	 n = strlen(s);

	if (n > IPC_MAX_PAYLOAD) {
		f->overflow = 1;
		return;
	}
	ipc_put_u32(f, (uint32_t)n);
	ipc_put_data(f, s, n);
}

/* ipc_send - send a frame now, or queue it behind what is waiting */
int
ipc_send(struct ipc *ipc, struct ipc_frame *f, int fd)
{
	struct ipc_out	*o;
	uint32_t	 len;
	int		 dupfd = -1;

	if (ipc->dead)
		return -1;
	if (f->overflow) {
		uint32_t	 type;

		memcpy(&type, f->data, sizeof(type));
		log_warnx("ipc_send: %s: %s frame over %d bytes", ipc->name,
		    ipc_type_str(type), IPC_MAX_PAYLOAD);
		return -1;
	}
	len = (uint32_t)(f->len - IPC_HDR_SIZE);
	memcpy(f->data + 4, &len, 4);

	if (TAILQ_EMPTY(&ipc->outq)) {
		switch (ipc_sendmsg(ipc, f->data, f->len, fd)) {
		case 0:
			return 0;
		case 1:
			break;		/* would block: queue it */
		default:
			ipc_fail(ipc);
			return -1;
		}
	}
	if (ipc->queued + f->len > IPC_MAX_QUEUED) {
		log_warnx("ipc_send: %s: peer is not reading; %zu bytes queued",
		    ipc->name, ipc->queued);
		ipc_fail(ipc);
		return -1;
	}
	if (fd != -1 && (dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) == -1) {
		log_warn("ipc_send: %s: dup", ipc->name);
		return -1;
	}
	o = xmalloc(sizeof(*o) + f->len);
	o->len = f->len;
	o->fd = dupfd;
	memcpy(o->data, f->data, f->len);
	TAILQ_INSERT_TAIL(&ipc->outq, o, entry);
	ipc->queued += f->len;
	event_add(ipc->ev_write, NULL);
	return 0;
}

/* ipc_sendv - send a frame with no payload */
int
ipc_sendv(struct ipc *ipc, uint32_t type, uint64_t reqid, int fd)
{
	struct ipc_frame	 f;

	ipc_frame_init(&f, type, reqid);
	return ipc_send(ipc, &f, fd);
}

/* ipc_sendmsg - one frame, one sendmsg: 0 sent, 1 would block, -1 error */
static int
ipc_sendmsg(struct ipc *ipc, const uint8_t *p, size_t len, int fd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct cmsghdr	*cmsg;
	ssize_t		 n;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)p;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd != -1) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	do {
		n = sendmsg(ipc->fd, &msg, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return 1;
		if (errno != EPIPE && errno != ECONNRESET)
			log_warn("ipc: %s: sendmsg", ipc->name);
		return -1;
	}
	if ((size_t)n != len) {
		/* SOCK_SEQPACKET sends a record whole or not at all. */
		log_warnx("ipc: %s: short send %zd of %zu", ipc->name, n, len);
		return -1;
	}
	return 0;
}

/* ipc_flush - send what waits in the queue until the socket is full */
static int
ipc_flush(struct ipc *ipc)
{
	struct ipc_out	*o;
	int		 rc;

	while ((o = TAILQ_FIRST(&ipc->outq)) != NULL) {
		rc = ipc_sendmsg(ipc, o->data, o->len, o->fd);
		if (rc == 1) {
			event_add(ipc->ev_write, NULL);
			return 0;
		}
		if (rc == -1)
			return -1;
		TAILQ_REMOVE(&ipc->outq, o, entry);
		ipc->queued -= o->len;
		if (o->fd != -1)
			close(o->fd);
		free(o);
	}
	return 0;
}

static void
ipc_write_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ipc	*ipc = arg;

	if (ipc_flush(ipc) == -1)
		ipc_fail(ipc);
}

/*
 * ipc_fail - the channel is broken; tell the owner from the read event,
 * never from inside the caller's ipc_send(), which may hold state the
 * owner is about to free.
 */
static void
ipc_fail(struct ipc *ipc)
{
	ipc->dead = 1;
	event_active(ipc->ev_read, EV_READ, 0);
}

/* ipc_frame_parse - check a received frame against the type table */
int
ipc_frame_parse(const uint8_t *p, size_t n, int nfds, struct ipc_msg *m,
    char *err, size_t errlen)
{
	const struct ipc_type_info	*ti;

	if (n < IPC_HDR_SIZE) {
		snprintf(err, errlen, "truncated header (%zu bytes)", n);
		return -1;
	}
	memcpy(&m->type, p, 4);
	memcpy(&m->len, p + 4, 4);
	memcpy(&m->reqid, p + 8, 8);
	if (m->len > IPC_MAX_PAYLOAD) {
		snprintf(err, errlen, "payload length %u over %d",
		    m->len, IPC_MAX_PAYLOAD);
		return -1;
	}
	if ((size_t)m->len != n - IPC_HDR_SIZE) {
		snprintf(err, errlen, "payload length %u, frame holds %zu",
		    m->len, n - IPC_HDR_SIZE);
		return -1;
	}
	if (m->type == 0 || m->type >= IPC_TYPE_MAX) {
		snprintf(err, errlen, "unknown type %u", m->type);
		return -1;
	}
	ti = &ipc_types[m->type];
	if (m->len < ti->min_len || m->len > ti->max_len) {
		snprintf(err, errlen, "%s: payload length %u not in %u..%u",
		    ti->name, m->len, ti->min_len, ti->max_len);
		return -1;
	}
	if ((ti->fd == IPC_FD_ONE) != (nfds == 1) || nfds > 1) {
		snprintf(err, errlen, "%s: %d descriptors attached",
		    ti->name, nfds);
		return -1;
	}
	m->data = p + IPC_HDR_SIZE;
	m->pos = 0;
	m->fd = -1;
	return 0;
}

/* ipc_recv - read one frame: 1 got one, 0 nothing yet, -1 dead */
static int
ipc_recv(struct ipc *ipc, struct ipc_msg *m)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * IPC_MAX_RX_FDS)];
	} cmsgbuf;
	struct cmsghdr	*cmsg;
	int		 fds[IPC_MAX_RX_FDS];
	int		 nfds = 0, i;
	char		 err[128];
	ssize_t		 n;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = ipc_rxbuf;
	iov.iov_len = sizeof(ipc_rxbuf);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
	do {
		n = recvmsg(ipc->fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != ECONNRESET)
			log_warn("ipc: %s: recvmsg", ipc->name);
		return -1;
	}
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		size_t	 k, cnt;

		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int	 fd;

			memcpy(&fd, CMSG_DATA(cmsg) + k * sizeof(int),
			    sizeof(int));
			if (nfds < IPC_MAX_RX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0 && nfds == 0)
		return -1;		/* peer closed */

	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		log_warnx("ipc: %s: malformed frame: oversized", ipc->name);
		goto bad;
	}
	if (ipc_frame_parse(ipc_rxbuf, (size_t)n, nfds, m, err,
	    sizeof(err)) == -1) {
		log_warnx("ipc: %s: malformed frame: %s", ipc->name, err);
		goto bad;
	}
	if (nfds == 1)
		m->fd = fds[0];
	return 1;
 bad:
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return -1;
}

static void
ipc_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ipc	*ipc = arg;
	struct ipc_msg	 m;
	int		 i, rc;

	for (i = 0; i < IPC_READ_BATCH && !ipc->dead; i++) {
		if ((rc = ipc_recv(ipc, &m)) == 0)
			return;
		if (rc == -1) {
			ipc->dead = 1;
			break;
		}
		ipc->busy = 1;
		ipc->fn(ipc, &m, ipc->arg);
		ipc->busy = 0;
		if (m.fd != -1)
			close(m.fd);
		if (ipc->zombie) {
			ipc_destroy(ipc);
			return;
		}
	}
	if (ipc->dead && !ipc->reported) {
		ipc->reported = 1;
		event_del(ipc->ev_read);
		event_del(ipc->ev_write);
		ipc->busy = 1;
		ipc->fn(ipc, NULL, ipc->arg);
		ipc->busy = 0;
		if (ipc->zombie)
			ipc_destroy(ipc);
	}
}

int
ipc_get_data(struct ipc_msg *m, void *dst, size_t n)
{
	if (n > m->len - m->pos)
		return -1;
	memcpy(dst, m->data + m->pos, n);
	m->pos += n;
	return 0;
}

int
ipc_get_u32(struct ipc_msg *m, uint32_t *v)
{
	return ipc_get_data(m, v, sizeof(*v));
}

int
ipc_get_u64(struct ipc_msg *m, uint64_t *v)
{
	return ipc_get_data(m, v, sizeof(*v));
}

/* ipc_get_str - a length-prefixed string that must fit and hold no NUL */
int
ipc_get_str(struct ipc_msg *m, char *dst, size_t dstlen)
{
	uint32_t	 n;

	if (ipc_get_u32(m, &n) == -1 || n > m->len - m->pos ||
	    (size_t)n >= dstlen)
		return -1;
	if (memchr(m->data + m->pos, '\0', n) != NULL)
		return -1;
	memcpy(dst, m->data + m->pos, n);
	dst[n] = '\0';
	m->pos += n;
	return 0;
}

int
ipc_end(struct ipc_msg *m)
{
	return m->pos == m->len ? 0 : -1;
}
