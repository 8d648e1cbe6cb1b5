/*
 * sluiced.h - the master process: state shared by its files
 *
 *	main.c		options, start-up order, signals, reload, shutdown
 *	children.c	fork+exec, channels, supervision, heartbeats
 *	listeners.c	binding the listen sockets
 *	redis_embed.c	the private redis-server
 *	tls_setup.c	certificate checks, the self-signed default
 *	notify.c	systemd notify protocol
 */
#ifndef SLUICED_H
#define SLUICED_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "conf.h"
#include "ipc.h"
#include "proc.h"

/* Supervision timing (seconds). */
#define SUP_HEARTBEAT_INTERVAL	5	/* between heartbeats */
#define SUP_HEARTBEAT_MISSES	3	/* unanswered before a kill */
#define SUP_START_TIMEOUT	15	/* spawn to READY */
#define SUP_STABLE_UPTIME	10	/* up this long: restart at once */
#define SUP_BACKOFF_MAX		60	/* longest restart delay */
#define SUP_CRASHLOOP		5	/* quick exits in a row: say so loudly */
#define SUP_STOP_TIMEOUT	5	/* SHUTDOWN to SIGKILL */

enum child_state {
	CHILD_IDLE,		/* not running, no restart planned */
	CHILD_WAITING,		/* restart timer armed */
	CHILD_STARTING,		/* forked, not READY yet */
	CHILD_READY,
	CHILD_STOPPING		/* SHUTDOWN sent */
};

struct child {
	enum ipc_proc	 kind;
	int		 instance;
	char		 name[32];
	enum child_state state;
	pid_t		 pid;
	struct ipc	*ipc;
	time_t		 started;
	int		 quick_exits;	/* consecutive exits before stable */
	int		 missed;	/* heartbeats unanswered */
	int		 retired;	/* instance above the configured count */
	uint32_t	 conf_gen;	/* last CONF_DONE */
	struct event	*timer;		/* restart or start timeout */
};

struct sluiced {
	struct conf		*conf;
	const char		*conf_path;
	uint32_t		 conf_gen;
	struct event_base	*base;
	const char		*libexec;
	int			 debug;
	int			 foreground;
	int			 as_root;
	struct proc_user	 users[PROC_COUNT];	/* when as_root */
	struct proc_user	 redis_user;
	char			*empty_dir;		/* chroot for smtpd, deliverd */
	int			*listen_fds;
	size_t			 nlisten;
	char			*tls_pem;		/* chain + key for smtpd */
	size_t			 tls_pem_len;
	int			 stopping;
	int			 ready_sent;		/* READY=1 told */
	int			 daemon_pipe;		/* -1, or tells the parent */
};

extern struct sluiced	*sd;

/* children.c */
void	children_init(void);
void	children_start_all(void);
void	children_reaped(pid_t, int);
void	children_reconfigure(void);
void	children_stop_all(void);
int	children_running(void);

/* listeners.c */
int	listeners_open(const struct conf *, int **, char *, size_t);
void	listeners_close(int *, size_t);

/* redis_embed.c */
int	redis_embed_start(void);
void	redis_embed_reaped(pid_t, int);
pid_t	redis_embed_pid(void);
void	redis_embed_stop(void);
int	redis_embed_running(void);

/* tls_setup.c */
int	tls_setup(const struct conf *, char **, size_t *, char *, size_t);
int	tls_check_files(const struct conf *, char *, size_t);

/* notify.c */
void	notify_systemd(const char *);

/* main.c */
int	sluiced_memfd(const char *, const void *, size_t);
int	sluiced_conf_memfd(const struct conf *);
void	sluiced_children_ready(void);
void	sluiced_all_stopped(void);
double	sup_backoff(int);
const char *sluiced_exit_str(int, char *, size_t);

#endif
