/*
 * child.c - start-up, privilege drop, sandbox and control of a child
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "sandbox.h"

/* The channel to sluiced; fork+exec in sluiced puts it here. */
#define CHILD_PARENT_FD	3

/* How long a child waits for START before it gives up on sluiced. */
#define CHILD_START_TIMEOUT	30

static struct child_env		 env;
static const struct child_ops	*ops;
static struct proc_user		 child_user;
static int			 child_have_user;
static const char		*child_root;

static void	child_usage(const char *) __attribute__((noreturn));
static int	child_parse_user(const char *, struct proc_user *);
static void	child_parent_dispatch(struct ipc *, struct ipc_msg *, void *);
static void	child_peer_dispatch(struct ipc *, struct ipc_msg *, void *);
static void	child_recv_conf(struct ipc_msg *);
static void	child_recv_peer(struct ipc_msg *);
static void	child_start(void);
static void	child_protocol_error(const char *, struct ipc_msg *)
		    __attribute__((noreturn));
static void	child_sigterm(evutil_socket_t, short, void *);
static void	child_start_timeout(evutil_socket_t, short, void *);

static void
child_usage(const char *prog)
{
	fprintf(stderr, "usage: %s -i instance [-u uid:gid[:gid]] [-r dir] "
	    "[-d] [-f]\n(this program is started by sluiced)\n", prog);
	exit(1);
}

/* child_parse_user - "uid:gid" or "uid:gid:extragid" from sluiced */
static int
child_parse_user(const char *s, struct proc_user *pu)
{
	unsigned long	 uid, gid, extra;
	int		 n;
	char		 tail;

	memset(pu, 0, sizeof(*pu));
	n = sscanf(s, "%lu:%lu:%lu%c", &uid, &gid, &extra, &tail);
	if (n == 2)
		extra = (unsigned long)(gid_t)-1;
	else if (n != 3)
		return -1;
	pu->uid = (uid_t)uid;
	pu->gid = (gid_t)gid;
	pu->extra_gid = (gid_t)extra;
	snprintf(pu->name, sizeof(pu->name), "uid %lu", uid);
	return 0;
}

int
child_main(int argc, char **argv, const struct child_ops *o)
{
	const char	*errstr;
	struct event	*ev_term, *ev_timeout;
	struct timeval	 tv = { CHILD_START_TIMEOUT, 0 };
	int		 ch, logflags = 0, instance = -1;

	ops = o;
	while ((ch = getopt(argc, argv, "dfi:r:u:")) != -1) {
		switch (ch) {
		case 'd':
			logflags |= LOG_F_DEBUG | LOG_F_STDERR;
			break;
		case 'f':
			logflags |= LOG_F_STDERR;
			break;
		case 'i':
			instance = (int)strtonum(optarg, 0, 4095, &errstr);
			if (errstr != NULL)
				child_usage(argv[0]);
			break;
		case 'r':
			child_root = optarg;
			break;
		case 'u':
			if (child_parse_user(optarg, &child_user) == -1)
				child_usage(argv[0]);
			child_have_user = 1;
			break;
		default:
			child_usage(argv[0]);
		}
	}
	if (instance < 0 || optind != argc)
		child_usage(argv[0]);

	memset(&env, 0, sizeof(env));
	env.kind = o->kind;
	env.instance = instance;
	snprintf(env.name, sizeof(env.name), "%s[%d]", ipc_proc_str(o->kind),
	    instance);
	log_init(ipc_proc_str(o->kind), logflags);

	if (sodium_init() == -1)
		fatalx("%s: sodium_init failed", env.name);
	/* A write to a closed socket is an error to handle, not a death. */
	signal(SIGPIPE, SIG_IGN);

	if ((env.base = event_base_new()) == NULL)
		fatalx("%s: event_base_new failed", env.name);
	env.parent = ipc_new(CHILD_PARENT_FD, env.base, "sluiced",
	    child_parent_dispatch, NULL);
	if (env.parent == NULL)
		fatalx("%s: no channel to sluiced on descriptor %d",
		    env.name, CHILD_PARENT_FD);

	/*
	 * sluiced coordinates the stop.  SIGINT from a terminal reaches
	 * the whole process group; only sluiced acts on it.
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	ev_term = evsignal_new(env.base, SIGTERM, child_sigterm, NULL);
	if (ev_term == NULL || evsignal_add(ev_term, NULL) == -1)
		fatalx("%s: cannot handle SIGTERM", env.name);

	ev_timeout = evtimer_new(env.base, child_start_timeout, NULL);
	evtimer_add(ev_timeout, &tv);
	env.data = ev_timeout;	/* until START; the daemon owns it after */

	event_base_dispatch(env.base);
	fatalx("%s: exited event loop", env.name);
}

static void
child_start_timeout(evutil_socket_t fd, short ev, void *arg)
{
	fatalx("%s: no START from sluiced within %d seconds", env.name,
	    CHILD_START_TIMEOUT);
}

static void
child_sigterm(evutil_socket_t fd, short ev, void *arg)
{
	log_debug("%s: SIGTERM; exiting", env.name);
	if (ops->shutdown != NULL)
		ops->shutdown(&env);
	exit(0);
}

static void
child_protocol_error(const char *what, struct ipc_msg *m)
{
	fatalx("%s: bad %s frame from sluiced: %s", env.name,
	    ipc_type_str(m->type), what);
}

static void
child_parent_dispatch(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	uint32_t	 version, kind, inst, gen, index;

	if (m == NULL) {
		/* sluiced is gone: nobody supervises us any more */
		log_info("%s: lost sluiced; exiting", env.name);
		exit(0);
	}
	switch (m->type) {
	case IPC_HELLO:
		if (ipc_get_u32(m, &version) == -1 ||
		    ipc_get_u32(m, &kind) == -1 ||
		    ipc_get_u32(m, &inst) == -1 || ipc_end(m) == -1)
			child_protocol_error("short", m);
		if (version != IPC_VERSION)
			fatalx("%s: sluiced speaks protocol %u, we speak %d; "
			    "restart sluiced after an upgrade", env.name,
			    version, IPC_VERSION);
		if (kind != PROC_SLUICED)
			child_protocol_error("not from sluiced", m);
		break;
	case IPC_CONF:
		child_recv_conf(m);
		break;
	case IPC_LISTENER:
		if (ipc_get_u32(m, &index) == -1 || ipc_end(m) == -1)
			child_protocol_error("short", m);
		if (ops->listener == NULL)
			child_protocol_error("unexpected", m);
		ops->listener(&env, (int)index, m->fd);
		m->fd = -1;
		break;
	case IPC_TLS_CERT:
		if (ipc_get_u32(m, &gen) == -1 || ipc_end(m) == -1)
			child_protocol_error("short", m);
		if (ops->tls_cert == NULL)
			child_protocol_error("unexpected", m);
		ops->tls_cert(&env, m->fd, gen);
		m->fd = -1;
		break;
	case IPC_PEER:
		child_recv_peer(m);
		break;
	case IPC_START:
		if (env.started)
			child_protocol_error("second START", m);
		child_start();
		break;
	case IPC_HEARTBEAT:
		ipc_sendv(ipc, IPC_HEARTBEAT_ACK, m->reqid, -1);
		break;
	case IPC_SHUTDOWN:
		log_debug("%s: shutdown requested", env.name);
		if (ops->shutdown != NULL)
			ops->shutdown(&env);
		exit(0);
	default:
		child_protocol_error("unexpected", m);
	}
}

/* child_recv_conf - install a configuration image (first or reload) */
static void
child_recv_conf(struct ipc_msg *m)
{
	struct ipc_frame	 f;
	struct conf		*conf, *old;
	char			 err[512];
	uint32_t		 gen;

	if (ipc_get_u32(m, &gen) == -1 || ipc_end(m) == -1)
		child_protocol_error("short", m);
	conf = conf_load_fd(m->fd, "sluiced", err, sizeof(err));
	if (conf == NULL) {
		/* sluiced validated it: this is a bug, not a user error */
		if (env.conf == NULL)
			fatalx("%s: configuration image: %s", env.name, err);
		log_warnx("%s: configuration image %u refused: %s; keeping %u",
		    env.name, gen, err, env.conf_gen);
		return;
	}
	old = env.conf;
	env.conf = conf;
	env.conf_gen = gen;
	/* Before START the first configuration just waits for setup. */
	if (env.started && ops->configure != NULL)
		ops->configure(&env, old);
	conf_free(old);
	if (old != NULL)
		log_info("%s: configuration %u installed", env.name, gen);
	ipc_frame_init(&f, IPC_CONF_DONE, 0);
	ipc_put_u32(&f, gen);
	ipc_send(env.parent, &f, -1);
}

/* child_recv_peer - a channel to a sibling: greet it */
static void
child_recv_peer(struct ipc_msg *m)
{
	struct child_peer	*p = NULL;
	struct ipc_frame	 f;
	char			 name[32];
	uint32_t		 kind, inst;
	int			 i;

	if (ipc_get_u32(m, &kind) == -1 || ipc_get_u32(m, &inst) == -1 ||
	    ipc_end(m) == -1 || kind == PROC_SLUICED || kind >= PROC_COUNT)
		child_protocol_error("malformed", m);

	/* A restarted sibling replaces its old channel. */
	if ((p = child_peer_get(&env, kind, (int)inst)) != NULL) {
		if (ops->peer_msg != NULL && p->greeted)
			ops->peer_msg(&env, p, NULL);
		ipc_free(p->ipc);
		memset(p, 0, sizeof(*p));
	}
	for (i = 0; i < CHILD_MAX_PEERS; i++)
		if (env.peers[i].ipc == NULL) {
			p = &env.peers[i];
			break;
		}
	if (p == NULL) {
		log_warnx("%s: more than %d sibling channels; refusing %s[%u]",
		    env.name, CHILD_MAX_PEERS, ipc_proc_str(kind), inst);
		return;
	}
	snprintf(name, sizeof(name), "%s[%u]", ipc_proc_str(kind), inst);
	p->kind = kind;
	p->instance = (int)inst;
	p->greeted = 0;
	p->ipc = ipc_new(m->fd, env.base, name, child_peer_dispatch, p);
	if (p->ipc == NULL) {
		memset(p, 0, sizeof(*p));
		return;
	}
	m->fd = -1;
	ipc_frame_init(&f, IPC_HELLO, 0);
	ipc_put_u32(&f, IPC_VERSION);
	ipc_put_u32(&f, env.kind);
	ipc_put_u32(&f, (uint32_t)env.instance);
	ipc_send(p->ipc, &f, -1);
}

struct child_peer *
child_peer_get(struct child_env *e, enum ipc_proc kind, int instance)
{
	int	 i;

	for (i = 0; i < CHILD_MAX_PEERS; i++)
		if (e->peers[i].ipc != NULL && e->peers[i].kind == kind &&
		    e->peers[i].instance == instance)
			return &e->peers[i];
	return NULL;
}

/*
 * child_peer_dispatch - frames from a sibling; the first must be a HELLO
 * naming the protocol version and the sender sluiced told us about.
 */
static void
child_peer_dispatch(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct child_peer	*p = arg;
	uint32_t		 version, kind, inst;

	if (m == NULL)
		goto drop;
	if (!p->greeted) {
		if (m->type != IPC_HELLO || ipc_get_u32(m, &version) == -1 ||
		    ipc_get_u32(m, &kind) == -1 ||
		    ipc_get_u32(m, &inst) == -1 || ipc_end(m) == -1) {
			log_warnx("%s: %s: first frame is not a HELLO",
			    env.name, ipc_name(ipc));
			goto drop;
		}
		if (version != IPC_VERSION || kind != p->kind ||
		    inst != (uint32_t)p->instance) {
			log_warnx("%s: %s: greeting mismatch (version %u, "
			    "%s[%u])", env.name, ipc_name(ipc), version,
			    ipc_proc_str(kind), inst);
			goto drop;
		}
		p->greeted = 1;
		log_debug("%s: peer %s connected", env.name, ipc_name(ipc));
		return;
	}
	if (ops->peer_msg == NULL) {
		log_warnx("%s: %s: unexpected %s frame", env.name,
		    ipc_name(ipc), ipc_type_str(m->type));
		goto drop;
	}
	ops->peer_msg(&env, p, m);
	return;
 drop:
	log_debug("%s: peer %s gone", env.name, ipc_name(ipc));
	if (p->greeted && ops->peer_msg != NULL)
		ops->peer_msg(&env, p, NULL);
	ipc_free(p->ipc);
	memset(p, 0, sizeof(*p));
}

/*
 * child_start - everything privileged is in hand: give up root, enter
 * the sandbox, and only then start reading input from the network.
 */
static void
child_start(void)
{
	struct ipc_frame	 f;
	struct event		*ev_timeout = env.data;

	if (env.conf == NULL)
		fatalx("%s: START before any configuration", env.name);
	event_free(ev_timeout);
	env.data = NULL;

	if (ops->setup != NULL)
		ops->setup(&env);
	if (proc_drop(child_have_user ? &child_user : NULL, child_root) == -1)
		fatalx("%s: cannot drop privileges", env.name);
	if (sandbox_apply(ops->sandbox) == -1)
		fatalx("%s: cannot enter the sandbox", env.name);
	env.started = 1;
	if (ops->configure != NULL)
		ops->configure(&env, NULL);

	ipc_frame_init(&f, IPC_READY, 0);
	ipc_put_u32(&f, (uint32_t)getpid());
	ipc_send(env.parent, &f, -1);
	log_debug("%s: ready: uid %ld, gid %ld%s%s, sandbox %s", env.name,
	    (long)getuid(), (long)getgid(), child_root ? ", chroot " : "",
	    child_root ? child_root : "", sandbox_profile_str(ops->sandbox));
}
