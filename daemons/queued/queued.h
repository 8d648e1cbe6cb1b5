/*
 * queued.h - the queue manager's shared state
 *
 * enqueue.c takes transactions from smtpd and commits them (store.c
 * builds the Redis commands); scheduler.c claims due messages, hands
 * delivery jobs to deliverd and applies their results; bounce.c writes
 * RFC 3464 reports.  Everything runs on the one event loop.
 */
#ifndef SLUICE_QUEUED_H
#define SLUICE_QUEUED_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include "msgid.h"
#include "qstore.h"

struct child_env;
struct child_peer;
struct evbuffer;
struct ipc_msg;
struct redis_ev;
struct redisAsyncContext;

/* at most this many claimed messages in memory at once */
#define QUEUED_MAX_INFLIGHT	256
/* at most this many recipients in one delivery job */
#define QUEUED_JOB_RCPTS	1000
/* the event stream keeps about this many entries */
#define QUEUED_EVENTS_MAX	"100000"

/* a growing argv for redisAsyncCommandArgv; strings are copied */
struct rcmd {
	int		  argc;
	int		  cap;
	char		**argv;
	size_t		 *lens;
};

struct queued {
	struct child_env	*env;
	struct redis_ev		*redis;		/* commands */
	struct redis_ev		*sub;		/* SUBSCRIBE to P flush */
	unsigned char		*key;		/* sodium_malloc'd queue key */
	char			 owner[160];	/* lease token: host/pid/random */
	char			 keyid[40];	/* hex id of the queue key */
	int			 key_ok;	/* Redis agrees on the key id */
	int			 inflight;	/* claimed messages */
	int			 claiming;	/* a claim is on its way */
	int			 loading;	/* claimed ids still loading */
	struct event		*tick;
	struct event		*renew;
};

extern struct queued	 q;

struct qrcpt {
	char		*to;
	char		*orcpt;
	uint32_t	 notify;
	int		 state;		/* QR_* */
	int		 newly;		/* changed in this round: report it */
	int		 code;		/* last result */
	char		 dsn[16];
	char		*reply;
	char		*relay;
	int		 route;		/* -1: none matched */
	char		*label;		/* the route's name for counters */
	int		 dsn_passed;	/* the server took our DSN parameters */
	int		 touched;	/* has a result to write */
	const char	*outcome;	/* sent, bounced, deferred, expired */
};

#define QR_PENDING	0
#define QR_SENT		1
#define QR_FAILED	2

struct qmsg {
	TAILQ_ENTRY(qmsg)	 entry;
	char			 id[MSGID_SIZE];
	char			*from;
	char			*envid;
	uint32_t		 flags;
	uint64_t		 created;	/* seconds */
	uint64_t		 created_ms;
	uint64_t		 size;
	int			 attempts;
	int			 warned;
	int			 bounce;	/* a report we generated */
	struct qrcpt		*rcpts;
	size_t			 nrcpt;
	int			 fd;		/* sealed memfd: the plaintext */
	const char		*body;		/* its read-only mapping */
	uint64_t		 loaded_ms;	/* this attempt began */
	uint64_t		 postpone_ms;	/* a limit held a job back till */
	int			 jobs;		/* delivery jobs outstanding */
	int			 dispatching;	/* inside sched_dispatch() */
	char			 last_error[512];
};

/* one destination's delivery of some recipients of a message */
struct job_result {
	int		 have;
	int		 code;
	char		 status[16];
	char		*text;
};

struct dest;
struct job {
	TAILQ_ENTRY(job)	 entry;
	TAILQ_ENTRY(job)	 wentry;	/* in its destination's line */
	uint64_t		 id;
	struct child_peer	*worker;
	struct qmsg		*m;
	int			 route;
	char			 dest[300];
	struct dest		*d;		/* set by dest_submit() */
	int			 waiting;	/* in d's line */
	int			 counted;	/* holds one of d's connections */
	size_t			*idx;		/* recipient indexes in m */
	struct job_result	*res;
	size_t			 n, cap;
	uint64_t		 started;	/* ms */
	uint32_t		 setup_ms;	/* from DLV_DONE */
	uint32_t		 xfer_ms;
};

/* main.c */
void	queued_kick(void);
void	queued_event(struct rcmd *, const char *, const char *, ...)
	    __attribute__((sentinel));

/* enqueue.c */
void	enqueue_peer_msg(struct child_peer *, struct ipc_msg *);
void	enqueue_peer_gone(struct child_peer *);
void	enqueue_resume(void);
void	enqueue_expire(void);

/* store.c */
void	rcmd_init(struct rcmd *);
void	rcmd_add(struct rcmd *, const void *, size_t);
void	rcmd_str(struct rcmd *, const char *);
void	rcmd_addf(struct rcmd *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	rcmd_free(struct rcmd *);
int	rcmd_send(struct rcmd *, void (*)(struct redisAsyncContext *, void *,
	    void *), void *);
char	*store_name(const char *, const char *);
struct store_new {
	const char	*from;
	const char	*envid;
	const char	*user;
	const char	*client;
	const char	*helo;
	const char	*proto;
	const char	*tls;
	uint32_t	 flags;
	int		 bounce;
	size_t		 nrcpt;
	const char	*const *to;
	const char	*const *orcpt;
	const uint32_t	*notify;
};
/* where store_add_message() puts each command it builds */
typedef int (*store_emit_fn)(struct rcmd *, void *);
int	store_add_message(const struct store_new *, const char *, size_t,
	    const char *, store_emit_fn, void *);

/* an owner-checked batch: commands run in Redis only while ours */
struct rbatch {
	struct rcmd	 c;
	int		 ncmds;
};
void	rbatch_init(struct rbatch *, const char *, const char *,
	    const char *, uint64_t);
int	rbatch_add(struct rcmd *, void *);
int	rbatch_send(struct rbatch *, void (*)(struct redisAsyncContext *,
	    void *, void *), void *);
int	store_fixup(const char *, size_t, const char *, char **, size_t *);
uint64_t store_now_ms(void);

/* dest.c */
void	dest_submit(struct job *);
void	dest_job_done(struct job *, uint32_t);
void	dest_closed(struct child_peer *, int, const char *);
void	dest_worker_gone(struct child_peer *);
void	dest_sweep(void);
void	dest_reload(void);
void	dest_metrics(struct evbuffer *);

/* scheduler.c */
struct child_peer *sched_pick_worker(void);
int	sched_start_job(struct job *, struct child_peer *);
void	sched_job_failed(struct job *);
void	sched_postpone(struct job *, uint64_t, const char *);
void	sched_tick(void);
void	sched_renew(void);
void	sched_peer_msg(struct child_peer *, struct ipc_msg *);
void	sched_peer_gone(struct child_peer *);
void	sched_release_all(void);

/*
 * metrics.c: smtpd's counters into P stats, and the Prometheus
 * endpoint (metrics group of the configuration)
 */
struct conf;
void	metrics_setup(struct child_env *);
void	metrics_configure(struct child_env *, struct conf *);
void	metrics_smtpd_msg(struct child_peer *, struct ipc_msg *);
void	metrics_smtpd_gone(struct child_peer *);
void	metrics_family(struct evbuffer *, const char *, const char *,
	    const char *);
void	metrics_label_value(struct evbuffer *, const char *, size_t);

/* bounce.c */
enum bounce_kind {
	BOUNCE_FAILED,
	BOUNCE_DELAYED,
	BOUNCE_SUCCESS
};
int	bounce_wants(const struct qmsg *, const struct qrcpt *,
	    enum bounce_kind);
char	*bounce_build(const struct qmsg *, enum bounce_kind, const char *,
	    size_t *);

#endif
