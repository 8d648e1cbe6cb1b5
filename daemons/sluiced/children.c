/*
 * children.c - fork+exec the children, wire them, keep them alive
 *
 * Each child has a slot (kind, instance) that outlives its processes:
 * when a process dies the slot restarts it, at once if it had been up
 * for a while, with doubling delays if it keeps dying young (the
 * Postfix master's throttle).  Heartbeats catch a child that is alive
 * but stuck.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "compat/compat.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "xmalloc.h"

/* Which kinds talk to each other directly; sluiced makes the channels. */
static const struct {
	enum ipc_proc	 a, b;
} links[] = {
	{ PROC_SMTPD, PROC_AUTHD },
	{ PROC_SMTPD, PROC_QUEUED },
	{ PROC_DELIVERD, PROC_QUEUED },
};

static struct child	*slots[PROC_COUNT][CONF_MAX_PROCESSES];
static struct event	*ev_heartbeat;
static struct event	*ev_stop;
static uint64_t		 heartbeat_seq;

static int	 children_wanted(enum ipc_proc);
static struct child *child_slot(enum ipc_proc, int);
static void	 child_spawn(struct child *);
static void	 child_send_setup(struct child *);
static void	 child_send_conf(struct child *);
static void	 child_link_peers(struct child *);
static void	 child_dispatch(struct ipc *, struct ipc_msg *, void *);
static void	 child_kill(struct child *, const char *);
static void	 child_timer(evutil_socket_t, short, void *);
static void	 child_schedule(struct child *, double);
static void	 children_heartbeat(evutil_socket_t, short, void *);
static void	 children_stop_timeout(evutil_socket_t, short, void *);
static int	 child_live(const struct child *);

static int
children_wanted(enum ipc_proc kind)
{
	switch (kind) {
	case PROC_SMTPD:
		return sd->conf->smtpd_processes;
	case PROC_AUTHD:
	case PROC_QUEUED:
		return 1;
	case PROC_DELIVERD:
		return sd->conf->delivery.workers;
	default:
		return 0;
	}
}

static struct child *
child_slot(enum ipc_proc kind, int instance)
{
	struct child	*c;

	if ((c = slots[kind][instance]) != NULL)
		return c;
	c = xcalloc(1, sizeof(*c));
	c->kind = kind;
	c->instance = instance;
	snprintf(c->name, sizeof(c->name), "%s[%d]", ipc_proc_str(kind),
	    instance);
	c->timer = evtimer_new(sd->base, child_timer, c);
	if (c->timer == NULL)
		fatalx("evtimer_new");
	slots[kind][instance] = c;
	return c;
}

static int
child_live(const struct child *c)
{
	return c != NULL && c->pid > 0;
}

void
children_init(void)
{
	struct timeval	 tv = { SUP_HEARTBEAT_INTERVAL, 0 };

	ev_heartbeat = event_new(sd->base, -1, EV_PERSIST, children_heartbeat,
	    NULL);
	ev_stop = evtimer_new(sd->base, children_stop_timeout, NULL);
	if (ev_heartbeat == NULL || ev_stop == NULL ||
	    event_add(ev_heartbeat, &tv) == -1)
		fatalx("children_init: cannot create timers");
}

/* children_start_all - one process per slot the configuration asks for */
void
children_start_all(void)
{
	enum ipc_proc	 k;
	int		 i;

	/* queued and authd first, so smtpd and deliverd find their peers */
	static const enum ipc_proc order[] = {
		PROC_QUEUED, PROC_AUTHD, PROC_DELIVERD, PROC_SMTPD
	};
	size_t		 j;

	for (j = 0; j < sizeof(order) / sizeof(order[0]); j++) {
		k = order[j];
		for (i = 0; i < children_wanted(k); i++)
			child_spawn(child_slot(k, i));
	}
}

/*
 * child_spawn - socketpair, fork, put our end on the loop; the child
 * gets its end as descriptor 3 and nothing else but stdio (OS-main
 * start_child: dup2 to 3, closefrom 4, exec for a fresh address space).
 */
static void
child_spawn(struct child *c)
{
	char		 path[PATH_MAX], inst[16], user[64];
	char		*argv[12];
	const char	*prog = ipc_proc_str(c->kind);
	const struct proc_user *pu = &sd->users[c->kind];
	int		 sv[2], argc = 0, devnull;
	pid_t		 pid;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", sd->libexec, prog)
	    >= sizeof(path))
		fatalx("%s: path too long", sd->libexec);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("%s: socketpair", c->name);
		child_schedule(c, SUP_BACKOFF_MAX);
		return;
	}
	snprintf(inst, sizeof(inst), "%d", c->instance);
	argv[argc++] = (char *)prog;
	argv[argc++] = "-i";
	argv[argc++] = inst;
	if (sd->as_root) {
		if (pu->extra_gid != (gid_t)-1)
			snprintf(user, sizeof(user), "%lu:%lu:%lu",
			    (unsigned long)pu->uid, (unsigned long)pu->gid,
			    (unsigned long)pu->extra_gid);
		else
			snprintf(user, sizeof(user), "%lu:%lu",
			    (unsigned long)pu->uid, (unsigned long)pu->gid);
		argv[argc++] = "-u";
		argv[argc++] = user;
		/* smtpd and deliverd need no files once set up */
		if (c->kind == PROC_SMTPD || c->kind == PROC_DELIVERD) {
			argv[argc++] = "-r";
			argv[argc++] = sd->empty_dir;
		}
	}
	if (sd->debug)
		argv[argc++] = "-d";
	else if (sd->foreground)
		argv[argc++] = "-f";
	argv[argc] = NULL;

	if ((pid = fork()) == -1) {
		log_warn("%s: fork", c->name);
		close(sv[0]);
		close(sv[1]);
		child_schedule(c, SUP_BACKOFF_MAX);
		return;
	}
	if (pid == 0) {
		sigset_t	 set;

		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (sv[1] == 3) {
			if (fcntl(3, F_SETFD, 0) == -1)
				_exit(127);
		} else if (dup2(sv[1], 3) == -1)
			_exit(127);
		proc_closefrom(4);
		if ((devnull = open("/dev/null", O_RDONLY)) != -1) {
			dup2(devnull, STDIN_FILENO);
			if (devnull != STDIN_FILENO)
				close(devnull);
		}
		execv(path, argv);
		dprintf(STDERR_FILENO, "sluiced: exec %s: %s\n", path,
		    strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	c->pid = pid;
	c->state = CHILD_STARTING;
	c->started = time(NULL);
	c->missed = 0;
	c->ipc = ipc_new(sv[0], sd->base, c->name, child_dispatch, c);
	if (c->ipc == NULL) {
		child_kill(c, "no channel");
		return;
	}
	child_send_setup(c);
	log_debug("%s: started (pid %ld)", c->name, (long)pid);
	child_schedule(c, SUP_START_TIMEOUT);
}

/* child_send_conf - this generation's configuration (and certificate) */
static void
child_send_conf(struct child *c)
{
	struct ipc_frame	 f;
	int			 fd;

	fd = sluiced_conf_memfd(sd->conf);
	ipc_frame_init(&f, IPC_CONF, 0);
	ipc_put_u32(&f, sd->conf_gen);
	ipc_send(c->ipc, &f, fd);
	close(fd);
	if (c->kind == PROC_SMTPD) {
		fd = sluiced_memfd("tls.pem", sd->tls_pem, sd->tls_pem_len);
		ipc_frame_init(&f, IPC_TLS_CERT, 0);
		ipc_put_u32(&f, sd->conf_gen);
		ipc_send(c->ipc, &f, fd);
		close(fd);
	}
}

/* child_send_setup - everything a new child needs before it may START */
static void
child_send_setup(struct child *c)
{
	struct ipc_frame	 f;
	size_t			 i;

	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_u32(&f, IPC_VERSION);
	ipc_put_u32(&f, PROC_SLUICED);
	ipc_put_u32(&f, 0);
	ipc_send(c->ipc, &f, -1);
	child_send_conf(c);
	if (c->kind == PROC_SMTPD) {
		for (i = 0; i < sd->nlisten; i++) {
			ipc_frame_init(&f, IPC_LISTENER, 0);
			ipc_put_u32(&f, (uint32_t)i);
			ipc_send(c->ipc, &f, sd->listen_fds[i]);
		}
	}
	child_link_peers(c);
	ipc_sendv(c->ipc, IPC_START, 0, -1);
}

/*
 * child_link_peers - a fresh channel between the new child and every
 * running process of each kind it talks to; the old process's end of a
 * previous channel died with it.
 */
static void
child_link_peers(struct child *c)
{
	struct ipc_frame	 f;
	struct child		*p;
	enum ipc_proc		 other;
	size_t			 l;
	int			 i, sv[2];

	for (l = 0; l < sizeof(links) / sizeof(links[0]); l++) {
		if (links[l].a == c->kind)
			other = links[l].b;
		else if (links[l].b == c->kind)
			other = links[l].a;
		else
			continue;
		for (i = 0; i < CONF_MAX_PROCESSES; i++) {
			p = slots[other][i];
			if (!child_live(p) || p->ipc == NULL ||
			    p->state == CHILD_STOPPING)
				continue;
			if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC,
			    0, sv) == -1) {
				log_warn("%s: socketpair to %s", c->name,
				    p->name);
				continue;
			}
			ipc_frame_init(&f, IPC_PEER, 0);
			ipc_put_u32(&f, p->kind);
			ipc_put_u32(&f, (uint32_t)p->instance);
			ipc_send(c->ipc, &f, sv[0]);
			ipc_frame_init(&f, IPC_PEER, 0);
			ipc_put_u32(&f, c->kind);
			ipc_put_u32(&f, (uint32_t)c->instance);
			ipc_send(p->ipc, &f, sv[1]);
			close(sv[0]);
			close(sv[1]);
		}
	}
}

static int
children_all_ready(void)
{
	enum ipc_proc	 k;
	int		 i;

	for (k = PROC_SMTPD; k < PROC_COUNT; k++)
		for (i = 0; i < children_wanted(k); i++)
			if (slots[k][i] == NULL ||
			    slots[k][i]->state != CHILD_READY)
				return 0;
	return 1;
}

static void
child_dispatch(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct child	*c = arg;
	uint32_t	 v;

	if (m == NULL) {
		/* the process is dying or broke the protocol: reap decides */
		ipc_free(c->ipc);
		c->ipc = NULL;
		if (c->pid > 0)
			kill(c->pid, SIGKILL);
		return;
	}
	switch (m->type) {
	case IPC_READY:
		if (ipc_get_u32(m, &v) == -1 || ipc_end(m) == -1 ||
		    c->state != CHILD_STARTING)
			goto bad;
		c->state = CHILD_READY;
		c->missed = 0;
		evtimer_del(c->timer);
		log_info("%s: ready (pid %ld)", c->name, (long)c->pid);
		if (!sd->ready_sent && children_all_ready())
			sluiced_children_ready();
		break;
	case IPC_HEARTBEAT_ACK:
		c->missed = 0;
		break;
	case IPC_CONF_DONE:
		if (ipc_get_u32(m, &v) == -1 || ipc_end(m) == -1)
			goto bad;
		c->conf_gen = v;
		log_debug("%s: configuration %u installed", c->name, v);
		break;
	default:
		goto bad;
	}
	return;
 bad:
	log_warnx("%s: unexpected %s frame; killing it", c->name,
	    ipc_type_str(m->type));
	child_kill(c, NULL);
}

static void
child_kill(struct child *c, const char *why)
{
	if (why != NULL)
		log_warnx("%s (pid %ld): %s; killing it", c->name, (long)c->pid,
		    why);
	if (c->pid > 0)
		kill(c->pid, SIGKILL);
}

static void
child_schedule(struct child *c, double secs)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	evtimer_add(c->timer, &tv);
}

/* child_timer - a restart is due, or a start took too long */
static void
child_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct child	*c = arg;
	char		 why[64];

	switch (c->state) {
	case CHILD_WAITING:
		if (!sd->stopping && !c->retired)
			child_spawn(c);
		break;
	case CHILD_STARTING:
		snprintf(why, sizeof(why), "not ready after %d seconds",
		    SUP_START_TIMEOUT);
		child_kill(c, why);
		break;
	case CHILD_STOPPING:
		child_kill(c, "did not stop when asked");
		break;
	default:
		break;
	}
}

/* children_reaped - a child exited: log why, and plan its restart */
void
children_reaped(pid_t pid, int status)
{
	struct child	*c = NULL;
	enum ipc_proc	 k;
	char		 how[96];
	double		 delay;
	time_t		 up;
	int		 i;

	for (k = PROC_SMTPD; k < PROC_COUNT && c == NULL; k++)
		for (i = 0; i < CONF_MAX_PROCESSES; i++)
			if (slots[k][i] != NULL && slots[k][i]->pid == pid) {
				c = slots[k][i];
				break;
			}
	if (c == NULL) {
		log_debug("reaped unknown pid %ld", (long)pid);
		return;
	}
	sluiced_exit_str(status, how, sizeof(how));
	up = time(NULL) - c->started;
	ipc_free(c->ipc);
	c->ipc = NULL;
	c->pid = 0;
	evtimer_del(c->timer);

	if (sd->stopping || c->retired) {
		log_info("%s: %s", c->name, how);
		c->state = CHILD_IDLE;
		if (sd->stopping && children_running() == 0) {
			event_del(ev_stop);
			sluiced_all_stopped();
		}
		return;
	}
	log_warnx("lost child: %s %s after %lds", c->name, how, (long)up);

	/* died young: it never served, so it will likely die again */
	if (c->state == CHILD_READY && up >= SUP_STABLE_UPTIME)
		c->quick_exits = 0;
	else
		c->quick_exits++;
	delay = sup_backoff(c->quick_exits);
	if (c->quick_exits >= SUP_CRASHLOOP)
		log_warnx("CRASH LOOP: %s exited %d times in a row without "
		    "staying up %ds; next start in %.0fs; see the lines above "
		    "for the cause", c->name, c->quick_exits,
		    SUP_STABLE_UPTIME, delay);
	else if (delay > 0)
		log_info("%s: restarting in %.0fs", c->name, delay);
	c->state = CHILD_WAITING;
	child_schedule(c, delay);
}

int
children_running(void)
{
	enum ipc_proc	 k;
	int		 i, n = 0;

	for (k = PROC_SMTPD; k < PROC_COUNT; k++)
		for (i = 0; i < CONF_MAX_PROCESSES; i++)
			if (child_live(slots[k][i]))
				n++;
	return n;
}

/* children_heartbeat - every child that is READY must answer in time */
static void
children_heartbeat(evutil_socket_t fd, short ev, void *arg)
{
	struct child	*c;
	enum ipc_proc	 k;
	char		 why[64];
	int		 i;

	for (k = PROC_SMTPD; k < PROC_COUNT; k++)
		for (i = 0; i < CONF_MAX_PROCESSES; i++) {
			c = slots[k][i];
			if (c == NULL || c->state != CHILD_READY ||
			    c->ipc == NULL)
				continue;
			if (c->missed >= SUP_HEARTBEAT_MISSES) {
				snprintf(why, sizeof(why), "no answer to %d "
				    "heartbeats", c->missed);
				child_kill(c, why);
				continue;
			}
			c->missed++;
			ipc_sendv(c->ipc, IPC_HEARTBEAT, ++heartbeat_seq, -1);
		}
}

/*
 * children_reconfigure - a reload: every running child gets the new
 * image; slots the new process counts add are started, and processes
 * above them are asked to finish and are not restarted.
 */
void
children_reconfigure(void)
{
	struct child	*c;
	enum ipc_proc	 k;
	int		 i, want;

	for (k = PROC_SMTPD; k < PROC_COUNT; k++) {
		want = children_wanted(k);
		for (i = 0; i < CONF_MAX_PROCESSES; i++) {
			c = slots[k][i];
			if (i < want) {
				c = child_slot(k, i);
				c->retired = 0;
				if (c->ipc != NULL && c->state != CHILD_STOPPING)
					child_send_conf(c);
				else if (c->pid == 0 && c->state == CHILD_IDLE)
					child_spawn(c);
			} else if (c != NULL && !c->retired) {
				c->retired = 1;
				if (c->state == CHILD_WAITING) {
					evtimer_del(c->timer);
					c->state = CHILD_IDLE;
				} else if (c->ipc != NULL) {
					log_info("%s: no longer configured; "
					    "stopping it", c->name);
					ipc_sendv(c->ipc, IPC_SHUTDOWN, 0, -1);
					c->state = CHILD_STOPPING;
					child_schedule(c, SUP_STOP_TIMEOUT);
				}
			}
		}
	}
}

/* children_stop_all - ask everyone to finish; SIGKILL what is left later */
void
children_stop_all(void)
{
	struct timeval	 tv = { SUP_STOP_TIMEOUT, 0 };
	struct child	*c;
	enum ipc_proc	 k;
	int		 i;

	event_del(ev_heartbeat);
	for (k = PROC_SMTPD; k < PROC_COUNT; k++)
		for (i = 0; i < CONF_MAX_PROCESSES; i++) {
			if ((c = slots[k][i]) == NULL)
				continue;
			evtimer_del(c->timer);
			if (!child_live(c)) {
				c->state = CHILD_IDLE;
				continue;
			}
			if (c->ipc != NULL)
				ipc_sendv(c->ipc, IPC_SHUTDOWN, 0, -1);
			else
				kill(c->pid, SIGTERM);
			c->state = CHILD_STOPPING;
		}
	evtimer_add(ev_stop, &tv);
}

static void
children_stop_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct child	*c;
	enum ipc_proc	 k;
	int		 i;

	for (k = PROC_SMTPD; k < PROC_COUNT; k++)
		for (i = 0; i < CONF_MAX_PROCESSES; i++)
			if (child_live(c = slots[k][i]))
				child_kill(c, "still running at shutdown");
}
