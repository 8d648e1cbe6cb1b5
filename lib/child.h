/*
 * NAME
 *	child - the life of a process that sluiced started
 * SYNOPSIS
 *	#include "child.h"
 *
 *	int child_main(int argc, char **argv, const struct child_ops *ops);
 *	struct child_peer *child_peer_get(struct child_env *env,
 *	    enum ipc_proc kind, int instance);
 * DESCRIPTION
 *	Every child of sluiced is exec'd with its channel to sluiced on
 *	descriptor 3 and runs child_main(), which gives all of them the
 *	same shape (STYLE.md section 2):
 *
 *	  parse argv -> log -> event loop with the parent channel ->
 *	  receive HELLO, CONF, [LISTENER...], [TLS_CERT], [PEER...] ->
 *	  START: ops->setup() (still privileged) -> chroot, setgroups,
 *	  setresgid, setresuid -> no_new_privs + seccomp -> READY
 *
 *	after which the loop runs until sluiced says SHUTDOWN or goes
 *	away (end of file on descriptor 3: exit at once).  HEARTBEAT is
 *	answered here.  A new CONF later is a reload: the image is parsed,
 *	ops->configure() sees the new and the old configuration, and
 *	CONF_DONE reports the generation back.
 *
 *	Channels to siblings arrive as PEER frames, at start and whenever
 *	a sibling is restarted; the runtime greets each with HELLO, checks
 *	the answer (protocol version, the kind sluiced announced) and
 *	hands every later frame to ops->peer_msg().  A dead channel is
 *	reported with peer_msg(env, peer, NULL).
 *
 *	Options (set by sluiced): -i INSTANCE, -u UID:GID[:GID] (the
 *	unprivileged identity, only when started as root), -r DIR (chroot),
 *	-d (debug), -f (copy logs to stderr).
 * DIAGNOSTICS
 *	Setup failures (a step of the privilege drop, the sandbox, a bad
 *	frame from sluiced) are logged as one line and the process exits
 *	with status 1; sluiced restarts it.
 */
#ifndef SLUICE_CHILD_H
#define SLUICE_CHILD_H

#include <stdint.h>

#include "ipc.h"
#include "sandbox.h"

#define CHILD_MAX_PEERS	512

struct conf;
struct event_base;

struct child_peer {
	enum ipc_proc	 kind;
	int		 instance;
	struct ipc	*ipc;
	int		 greeted;	/* their HELLO arrived and matched */
	void		*data;		/* owned by the daemon */
};

struct child_env {
	enum ipc_proc		 kind;
	int			 instance;
	char			 name[32];	/* "smtpd[0]" */
	struct event_base	*base;
	struct ipc		*parent;
	struct conf		*conf;
	uint32_t		 conf_gen;
	int			 started;	/* privileges dropped, sandboxed */
	struct child_peer	 peers[CHILD_MAX_PEERS];
	void			*data;		/* owned by the daemon */
};

struct child_ops {
	enum ipc_proc		 kind;
	enum sandbox_profile	 sandbox;
	/* privileged setup, after the first configuration arrived */
	void	(*setup)(struct child_env *);
	/* a configuration was installed; old is NULL the first time */
	void	(*configure)(struct child_env *, struct conf *old);
	/* a listening socket; the callee owns fd */
	void	(*listener)(struct child_env *, int index, int fd);
	/* certificate chain + key as PEM in a sealed memfd; callee owns fd */
	void	(*tls_cert)(struct child_env *, int fd, uint32_t generation);
	/* a frame from a greeted sibling; msg NULL: the channel died */
	void	(*peer_msg)(struct child_env *, struct child_peer *,
		    struct ipc_msg *);
	/* SHUTDOWN: finish in-flight work, then exit; NULL: exit now */
	void	(*shutdown)(struct child_env *);
};

int			 child_main(int, char **, const struct child_ops *);
struct child_peer	*child_peer_get(struct child_env *, enum ipc_proc, int);

#endif
