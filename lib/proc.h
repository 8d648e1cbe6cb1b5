/*
 * NAME
 *	proc - privilege separation: users, chroot, no_new_privs, descriptors
 * SYNOPSIS
 *	#include "proc.h"
 *
 *	int proc_lookup_user(const char *name, struct proc_user *pu,
 *	    char *err, size_t errlen);
 *	int proc_drop(const struct proc_user *pu, const char *root);
 *	int proc_no_new_privs(void);
 *	void proc_closefrom(int lowfd);
 *	int proc_set_nonblock(int fd);
 *	int proc_set_cloexec(int fd, int on);
 * DESCRIPTION
 *	proc_lookup_user() resolves an account name to uid and primary
 *	gid; it is called by the root master before it forks, since a
 *	chrooted child can no longer read /etc/passwd.  pu->extra_gid may
 *	be set by the caller afterwards (-1: none) to add one supplementary
 *	group, e.g. the group that may reach the embedded Redis socket.
 *
 *	proc_drop() is the order every child follows after it has acquired
 *	what needs privilege: chroot(root) and chdir("/") when root is not
 *	NULL; setgroups() to the primary (+ extra) group; setresgid();
 *	setresuid(); then it checks that the old ids cannot be regained.
 *	With pu == NULL (not started as root) it changes no ids and only
 *	chroots if it can.
 *
 *	proc_no_new_privs() sets PR_SET_NO_NEW_PRIVS, which seccomp needs
 *	and which makes setuid binaries useless to a compromised child.
 *
 *	proc_closefrom() closes every descriptor >= lowfd.
 * DIAGNOSTICS
 *	proc_drop() and proc_no_new_privs() log one line naming the step
 *	that failed (log_warn) and return -1; the caller exits.
 *	proc_lookup_user() writes "no such user: NAME" into err.
 */
#ifndef SLUICE_PROC_H
#define SLUICE_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct proc_user {
	char	 name[64];
	uid_t	 uid;
	gid_t	 gid;
	gid_t	 extra_gid;	/* (gid_t)-1: none */
};

int	proc_lookup_user(const char *, struct proc_user *, char *, size_t);
int	proc_drop(const struct proc_user *, const char *);
int	proc_no_new_privs(void);
void	proc_closefrom(int);
int	proc_set_nonblock(int);
int	proc_set_cloexec(int, int);

#endif
