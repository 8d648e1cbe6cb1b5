/*
 * NAME
 *	queue_proto - what smtpd, queued and deliverd say to each other
 * SYNOPSIS
 *	#include "queue_proto.h"
 * DESCRIPTION
 *	The enqueue protocol (smtpd -> queued), one transaction per reqid
 *	chosen by smtpd, fields in this order (u32 = 4 bytes host order,
 *	str = u32 length then bytes, u64 = 8 bytes host order):
 *
 *	  Q_OPEN    u32 flags (QP_BODY_*, QP_SMTPUTF8, QP_RET_*),
 *	            str sender ("" for <>), str envid (xtext as received,
 *	            "" if none), str user (authenticated login, "" if
 *	            none), str client (address), str helo, str proto
 *	            ("ESMTPSA"...), str tls ("TLSv1.3 TLS_AES_..." or "")
 *	  Q_RCPT    u32 notify (QP_NOTIFY_*; 0 = not given), str address,
 *	            str orcpt ("rfc822;addr" as received, "" if none)
 *	  Q_OPENED  (queued -> smtpd) carries a memfd; smtpd writes the
 *	            whole message into it (Received header first, CRLF
 *	            line ends, no dot-stuffing) with write(2), in order
 *	            from offset 0.  The file is already as long as the
 *	            largest message may be and cannot grow; the write
 *	            offset, not the length, says how much was written.
 *	  Q_COMMIT  u64 size: bytes written
 *	  Q_OK      (queued -> smtpd) str queue id: it is durable in Redis
 *	  Q_FAIL    (queued -> smtpd) u32 code (451, 452, 554), str
 *	            enhanced status ("4.3.0"), str text; the transaction
 *	            is gone
 *	  Q_ABORT   drop the transaction (RSET, client gone)
 *
 *	Q_OPENED answers Q_OPEN at once; Q_RCPT and Q_COMMIT may be sent
 *	before it arrives.  A transaction with no recipient, more than
 *	QP_MAX_RCPT, a size that is not the write offset, or over the
 *	message size limit (plus QP_HEADROOM) gets Q_FAIL.  A channel
 *	that dies takes its open
 *	transactions with it.
 *
 *	A commit that finds Redis down waits up to 5 seconds for it to
 *	come back before it fails with 451 4.3.0.
 *
 *	The delivery protocol (queued -> deliverd), one job per reqid
 *	chosen by queued:
 *
 *	  DLV_RCPT    u32 index (the recipient's index in the message),
 *	              u32 notify, str address, str orcpt
 *	  DLV_JOB     u32 route (index into delivery.routes), u32 flags
 *	              (as Q_OPEN), u32 nrcpt (DLV_RCPT frames before it),
 *	              str queue id, str sender, str envid, str destination
 *	              (the smarthost as written, or the recipient domain
 *	              for an MX route); carries the message as a sealed
 *	              memfd
 *	  DLV_RESULT  (deliverd -> queued) u32 index, u32 code (2xx, 4xx,
 *	              5xx), str enhanced status ("2.0.0"), str text (the
 *	              server's reply, lines joined by a space)
 *	  DLV_DONE    (deliverd -> queued) u32 flags (QP_DONE_*), str
 *	              relay ("host[addr]:port", "none"), u32 ms of
 *	              connection set-up, u32 ms of the transaction
 *	  DLV_CLOSED  (deliverd -> queued) u32 route, str destination: a
 *	              connection DLV_DONE said was kept (QP_DONE_KEPT) has
 *	              closed; reqid 0
 *
 *	A connection kept open after a job waits, idle, for the next job
 *	to the same route and destination; deliverd takes it for that job
 *	(RSET first) and opens a new one only when it is gone.  queued
 *	counts kept connections against the route's concurrency.
 *
 *	A recipient with no DLV_RESULT when DLV_DONE arrives counts as a
 *	temporary failure (4.4.0).  A worker whose channel dies has its
 *	jobs' recipients retried later.
 */
#ifndef SLUICE_QUEUE_PROTO_H
#define SLUICE_QUEUE_PROTO_H

/* Q_OPEN and DLV_JOB flags */
#define QP_BODY_8BITMIME	0x01
#define QP_BODY_BINARYMIME	0x02
#define QP_SMTPUTF8		0x04
#define QP_RET_FULL		0x08
#define QP_RET_HDRS		0x10

/* NOTIFY= (RFC 3461); 0 means the client gave none */
#define QP_NOTIFY_NEVER		0x01
#define QP_NOTIFY_SUCCESS	0x02
#define QP_NOTIFY_FAILURE	0x04
#define QP_NOTIFY_DELAY		0x08

/* DLV_DONE flags */
#define QP_DONE_DSN		0x01	/* the server took DSN parameters */
#define QP_DONE_KEPT		0x02	/* the connection stays open, idle */
#define QP_DONE_BACKOFF		0x04	/* 421 or "too many connections" */

/* bounds of the fields, checked on receipt */
#define QP_MAX_ADDR		512	/* a path, with room for UTF-8 */
#define QP_MAX_PARAM		1024	/* ENVID, ORCPT (xtext) */
#define QP_MAX_FIELD		256	/* user, client, helo, proto, tls */
#define QP_MAX_TEXT		4096	/* a reply */
#define QP_MAX_RCPT		100000	/* as limits.recipients allows */
#define QP_MAX_TXN		65536	/* open transactions per smtpd */

/*
 * queued takes up to limits.message_size + QP_HEADROOM bytes: smtpd
 * holds the client to limits.message_size and adds its Received
 * header; queued may add a Message-ID and a Date.
 */
#define QP_HEADROOM		(64 * 1024)

#endif
