/*
 * deliverd.h - what the files of deliverd share
 *
 * main.c receives jobs from queued (DLV_RCPT..., DLV_JOB) and answers
 * them (DLV_RESULT per recipient, DLV_DONE); it owns every struct
 * dlv_job.  smtp_client.c runs one SMTP client session per smarthost
 * job on the event loop; the job owns its session, and the session
 * ends the job with dlv_job_end() when its connection is closed.
 * tls.c holds the client TLS contexts, made before the sandbox.
 * mx.c finds where a job goes: the MX hosts of its domain (or the
 * smarthost's name) through dns.c, c-ares on the event loop, and
 * hands one address after another to smtp_client.c until one takes
 * the session.
 */
#ifndef SLUICE_DELIVERD_H
#define SLUICE_DELIVERD_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "conf.h"
#include "msgid.h"
#include "netaddr.h"
#include "queue_proto.h"

/* jobs in progress at once in one worker; more are deferred at once */
#define DLV_MAX_JOBS		1024

/* bounds of an enhanced status code as text ("4.7.10") */
#define DLV_STATUS_MAX		16

/* where a job may go: bounds on what DNS may make us try */
#define DLV_MX_HOSTS		10	/* MX hosts kept, best first */
#define DLV_HOST_ADDRS		8	/* addresses kept per host */
#define DLV_TRY_MAX		10	/* connections per job */
#define DLV_MX_PORT		25

struct child_env;
struct child_peer;
struct smtpc;
struct dlv_path;
struct dns_req;

struct dlv_rcpt {
	uint32_t	 index;		/* in the message, for queued */
	uint32_t	 notify;	/* QP_NOTIFY_* */
	char		*addr;
	char		*orcpt;		/* "" when none */
	int		 code;		/* 0: no outcome yet */
	char		 status[DLV_STATUS_MAX];
	char		*text;
	int		 accepted;	/* RCPT got a 2xx */
};

struct dlv_job {
	TAILQ_ENTRY(dlv_job)	 entry;
	struct child_peer	*peer;		/* NULL once answered or gone */
	uint64_t		 reqid;
	int			 received;	/* DLV_JOB came */
	int			 broken;	/* a frame of it was bad */
	uint32_t		 route;
	uint32_t		 flags;		/* as Q_OPEN: QP_BODY_*... */
	char			 id[MSGID_SIZE];
	char			*sender;
	char			*envid;
	char			*dest;
	struct dlv_rcpt		*rcpts;
	size_t			 n, cap;
	int			 fd;		/* sealed memfd, -1 when none */
	const uint8_t		*body;		/* read-only map of fd */
	size_t			 size;
	uint32_t		 done_flags;	/* QP_DONE_* */
	char			 relay[300];	/* "host[addr]:port", "none" */
	struct smtpc		*sess;
	struct dlv_path		*path;		/* mx.c: where it goes */
	uint64_t		 t_start;	/* ms: the job came */
	uint64_t		 t_mail;	/* ms: MAIL went, 0 before */
};

/*
 * what a session needs of its route, copied when the job starts: DNS
 * takes time, and a reload may free the configuration meanwhile
 */
struct dlv_params {
	enum conf_route_tls	 tls;
	char			 helo[NETADDR_HOST_MAX + 1];
	char			*smarthost;	/* as written; NULL for mx */
	char			*auth_user;	/* NULL: no AUTH */
	char			*auth_password_file;
	uint32_t		 t_connect, t_cmd, t_data;
	int			 max_msgs;	/* per connection */
	uint32_t		 idle_timeout;	/* 0: no connection is kept */
};

/* a secret read before the sandbox (auth_password_file) */
struct dlv_secret {
	const char	*path;
	char		*value;		/* sodium_malloc'd, NULL on error */
	size_t		 len;
	char		 error[256];
};

/* main.c */
extern struct child_env	*dlv_env;
void		 dlv_rcpt_set(struct dlv_rcpt *, int, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
void		 dlv_job_fail_all(struct dlv_job *, int, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
void		 dlv_job_report(struct dlv_job *);
void		 dlv_job_end(struct dlv_job *);
void		 dlv_job_route(struct dlv_job *);
void		 dlv_job_free(struct dlv_job *);
uint64_t	 dlv_now_ms(void);
const struct dlv_secret *dlv_secret_get(const char *);

/* smtp_client.c */
void		 smtpc_start(struct dlv_job *, const struct dlv_params *,
		    const char *, const struct sockaddr *, socklen_t, int);
void		 smtpc_free(struct smtpc *);
int		 smtpc_reuse(struct dlv_job *);
void		 smtpc_flush_idle(struct child_peer *);

/* mx.c */
int		 dlv_path_start(struct dlv_job *, const struct conf *,
		    const struct conf_route *);
void		 dlv_path_next(struct dlv_job *, int, const char *,
		    const char *);
void		 dlv_path_free(struct dlv_path *);

/* dns.c */
typedef void	 dns_cb(void *, int, const unsigned char *, int);
int		 dns_init(const struct conf *);
void		 dns_reconfigure(const struct conf *);
void		 dns_query(struct dns_req **, const char *, int, dns_cb *,
		    void *);
void		 dns_cancel(struct dns_req **);
const char	*dns_strerror(int);

/* tls.c */
int		 dlv_tls_init(const struct conf *);
void		 dlv_tls_reconfigure(const struct conf *, const struct conf *);
SSL		*dlv_tls_new(enum conf_route_tls, const char *, char *, size_t);
void		 dlv_tls_error(SSL *, unsigned long, char *, size_t);
void		 dlv_tls_describe(SSL *, char *, size_t);

#endif
