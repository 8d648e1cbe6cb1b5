/*
 * NAME
 *	ipc - framed messages between sluice processes
 * SYNOPSIS
 *	#include "ipc.h"
 *
 *	struct ipc *ipc_new(int fd, struct event_base *base, const char *name,
 *	    ipc_dispatch_fn fn, void *arg);
 *	void ipc_free(struct ipc *ipc);
 *	const char *ipc_name(const struct ipc *ipc);
 *	size_t ipc_queued(const struct ipc *ipc);
 *
 *	void ipc_frame_init(struct ipc_frame *f, uint32_t type, uint64_t reqid);
 *	void ipc_put_u32(struct ipc_frame *f, uint32_t v);
 *	void ipc_put_u64(struct ipc_frame *f, uint64_t v);
 *	void ipc_put_str(struct ipc_frame *f, const char *s);
 *	void ipc_put_data(struct ipc_frame *f, const void *p, size_t n);
 *	int ipc_send(struct ipc *ipc, struct ipc_frame *f, int fd);
 *	int ipc_sendv(struct ipc *ipc, uint32_t type, uint64_t reqid, int fd);
 *
 *	int ipc_get_u32(struct ipc_msg *m, uint32_t *v);
 *	int ipc_get_u64(struct ipc_msg *m, uint64_t *v);
 *	int ipc_get_str(struct ipc_msg *m, char *dst, size_t dstlen);
 *	int ipc_get_data(struct ipc_msg *m, void *dst, size_t n);
 *	int ipc_end(struct ipc_msg *m);
 *
 *	int ipc_frame_parse(const uint8_t *p, size_t n, int nfds,
 *	    struct ipc_msg *m, char *err, size_t errlen);
 *	const char *ipc_type_str(uint32_t type);
 * DESCRIPTION
 *	Channels are AF_UNIX SOCK_SEQPACKET socketpairs made by sluiced, so
 *	one recvmsg() returns one whole frame together with the descriptor
 *	that rides along with it; nothing is reassembled from a stream.
 *
 *	A frame is a 16-byte header, { uint32 type; uint32 len; uint64
 *	reqid; } in host byte order (both ends are on one machine), then
 *	len <= IPC_MAX_PAYLOAD bytes of payload.  Every type is declared in
 *	one table with its payload bounds and whether exactly one
 *	descriptor must ride along; ipc_frame_parse() refuses anything
 *	else.  Bulk data (message bodies, configuration images,
 *	certificates) travels as a descriptor, never in frames.
 *
 *	Payloads are built with the ipc_put_*() helpers, which record an
 *	overflow in the frame instead of writing past it, and read with
 *	ipc_get_*(), each of which checks the remaining length; ipc_end()
 *	fails when bytes are left over.  Strings travel as a u32 length and
 *	the bytes, and are refused on receipt when they hold a NUL or do
 *	not fit the caller's buffer.
 *
 *	ipc_new() makes fd non-blocking and reads frames on the event
 *	base, calling fn(ipc, msg, arg) for each one.  The descriptor of a
 *	frame is in msg->fd; fn takes it by setting msg->fd to -1,
 *	otherwise it is closed after fn returns.  On end of file, on a
 *	malformed frame (logged as one line) and on a write error fn is
 *	called once with msg == NULL; the channel is then dead and the
 *	owner calls ipc_free(), which may be done from inside fn.
 *
 *	ipc_send() sends a frame (and a duplicate of fd, when fd >= 0:
 *	the caller keeps its own).  When the socket is full frames wait in
 *	an output queue bounded by IPC_MAX_QUEUED bytes; ipc_queued() says
 *	how many bytes wait there.
 * DIAGNOSTICS
 *	ipc_send() returns -1 when the frame overflowed, the queue is over
 *	its bound or the channel is dead.  ipc_get_*() and ipc_end()
 *	return -1 on a short or malformed payload.  ipc_frame_parse()
 *	returns -1 and describes the defect in err.
 */
#ifndef SLUICE_IPC_H
#define SLUICE_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_VERSION		1
#define IPC_HDR_SIZE		16
#define IPC_MAX_PAYLOAD		16384
#define IPC_MAX_FRAME		(IPC_HDR_SIZE + IPC_MAX_PAYLOAD)
#define IPC_MAX_QUEUED		(4 * 1024 * 1024)

/* The processes of sluice, as they name each other on the wire. */
enum ipc_proc {
	PROC_SLUICED = 0,
	PROC_SMTPD,
	PROC_AUTHD,
	PROC_QUEUED,
	PROC_DELIVERD,
	PROC_COUNT
};

/* Every message type; ipc.c declares each one's shape in ipc_types[]. */
enum ipc_type {
	IPC_HELLO = 1,		/* version, proc, instance; first on a channel */
	IPC_CONF,		/* fd: sealed memfd, config image; generation */
	IPC_CONF_DONE,		/* generation: all of a (re)configuration sent */
	IPC_LISTENER,		/* fd: listening socket; index */
	IPC_TLS_CERT,		/* fd: sealed memfd, PEM chain + key; generation */
	IPC_PEER,		/* fd: channel to a sibling; proc, instance */
	IPC_START,		/* setup is complete: drop privileges, run */
	IPC_READY,		/* child runs sandboxed; pid */
	IPC_HEARTBEAT,		/* reqid echoed in the ack */
	IPC_HEARTBEAT_ACK,
	IPC_SHUTDOWN,		/* finish what is in flight, then exit */

	/*
	 * smtpd -> queued: one transaction per reqid.  OPEN (envelope),
	 * RCPT per recipient, then the body is written into the memfd
	 * OPENED brought, then COMMIT; queued answers OK (the queue id,
	 * only once the message is durable) or FAIL.  ABORT, or the
	 * channel dying, throws the transaction away.  See queue_proto.h.
	 */
	IPC_Q_OPEN,		/* flags, sender, envid, user, client, helo, proto, tls */
	IPC_Q_RCPT,		/* notify, address, orcpt */
	IPC_Q_OPENED,		/* fd: memfd for the body */
	IPC_Q_COMMIT,		/* u64 size of the body written */
	IPC_Q_ABORT,
	IPC_Q_OK,		/* queue id */
	IPC_Q_FAIL,		/* code, enhanced status, text */

	/*
	 * queued -> deliverd: one job per reqid, all recipients for one
	 * destination.  DLV_RCPT frames first, then DLV_JOB with the body
	 * as a sealed memfd.  deliverd answers DLV_RESULT per recipient
	 * and then DLV_DONE.
	 */
	IPC_DLV_RCPT,		/* index, notify, address, orcpt */
	IPC_DLV_JOB,		/* fd; route, flags, nrcpt, id, sender, envid, destination */
	IPC_DLV_RESULT,		/* index, code, enhanced status, text */
	IPC_DLV_DONE,		/* flags, relay */
	IPC_DLV_CLOSED,		/* route, destination: an idle connection ended */

	/* smtpd <-> authd, one request per reqid; see auth_proto.h */
	IPC_AUTH_REQ,		/* login, password, client */
	IPC_AUTH_RES,		/* result, retry, login, limits, senders */
	IPC_RATE_REQ,		/* login, messages, recipients */
	IPC_RATE_RES,		/* result, retry */

	/* smtpd -> queued, every second; see stats_proto.h */
	IPC_SMTPD_STATS,	/* u64 sessions open, then what grew */
	IPC_TYPE_MAX
};

struct event_base;
struct ipc;

struct ipc_msg {
	uint32_t	 type;
	uint32_t	 len;
	uint64_t	 reqid;
	const uint8_t	*data;
	size_t		 pos;
	int		 fd;
};

struct ipc_frame {
	uint8_t		 data[IPC_MAX_FRAME];
	size_t		 len;
	int		 overflow;
};

typedef void (*ipc_dispatch_fn)(struct ipc *, struct ipc_msg *, void *);

struct ipc	*ipc_new(int, struct event_base *, const char *,
		    ipc_dispatch_fn, void *);
void		 ipc_free(struct ipc *);
const char	*ipc_name(const struct ipc *);
size_t		 ipc_queued(const struct ipc *);

void		 ipc_frame_init(struct ipc_frame *, uint32_t, uint64_t);
void		 ipc_put_u32(struct ipc_frame *, uint32_t);
void		 ipc_put_u64(struct ipc_frame *, uint64_t);
void		 ipc_put_str(struct ipc_frame *, const char *);
void		 ipc_put_data(struct ipc_frame *, const void *, size_t);
int		 ipc_send(struct ipc *, struct ipc_frame *, int);
int		 ipc_sendv(struct ipc *, uint32_t, uint64_t, int);

int		 ipc_get_u32(struct ipc_msg *, uint32_t *);
int		 ipc_get_u64(struct ipc_msg *, uint64_t *);
int		 ipc_get_str(struct ipc_msg *, char *, size_t);
int		 ipc_get_data(struct ipc_msg *, void *, size_t);
int		 ipc_end(struct ipc_msg *);

int		 ipc_frame_parse(const uint8_t *, size_t, int,
		    struct ipc_msg *, char *, size_t);
const char	*ipc_type_str(uint32_t);
const char	*ipc_proc_str(enum ipc_proc);

#endif
