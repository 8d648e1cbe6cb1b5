/*
 * smtpd.h - the submission front end's shared state
 *
 * main.c owns the listeners, the certificate and the channels to authd
 * and queued; smtp_session.c runs the ESMTP sessions (one state
 * machine, commands from a table); smtp_ipc.c carries a session's
 * requests to authd and queued and routes the answers back by reqid.
 */
#ifndef SLUICE_SMTPD_H
#define SLUICE_SMTPD_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

struct child_env;
struct child_peer;
struct conf_listen;
struct ipc_msg;
struct ssl_ctx_st;

/* this process's counters; main.c reports them to queued (stats_proto.h) */
struct smtpd_stats {
	uint64_t	 sessions;	/* open now */
	uint64_t	 accepted;
	uint64_t	 refused;	/* over limits.connections(_per_ip) */
	uint64_t	 tls;		/* handshakes completed */
	uint64_t	 tls_failed;	/* sessions that ended in one */
	uint64_t	 auth_ok;
	uint64_t	 auth_failed;
	uint64_t	 auth_blocked;
};

extern struct child_env		*smtpd_env;
extern struct ssl_ctx_st	*smtpd_tls_ctx;
extern struct smtpd_stats	 smtpd_stats;

/* main.c */
struct child_peer	*smtpd_peer(int);	/* PROC_AUTHD or PROC_QUEUED */

/* smtp_session.c */
void	smtp_session_new(int, const struct conf_listen *, int,
	    const struct sockaddr_storage *, socklen_t);
void	smtp_session_auth_result(uint64_t, struct ipc_msg *);
void	smtp_session_rate_result(uint64_t, struct ipc_msg *);
void	smtp_session_queue_msg(uint64_t, struct ipc_msg *);
void	smtp_session_peer_lost(int);
int	smtp_session_count_ip(const struct sockaddr_storage *);

#endif
