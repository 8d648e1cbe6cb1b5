/*
 * proc.c - privilege separation: users, chroot, no_new_privs, descriptors
 */
#include "config.h"

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat/compat.h"
#include "log.h"
#include "proc.h"

#define PROC_PWBUF_MIN	1024
#define PROC_PWBUF_MAX	(1024 * 1024)

static int	proc_chroot(const struct proc_user *, const char *);
static int	proc_setids(const struct proc_user *);
static int	proc_verify(const struct proc_user *);
#ifndef HAVE_CLOSEFROM
static int	proc_closefrom_procfs(int);
#endif

/* proc_lookup_user - resolve an account name while /etc/passwd is in reach */
int
proc_lookup_user(const char *name, struct proc_user *pu, char *err,
    size_t errlen)
{
	struct passwd	 pw, *res = NULL;
	char		*buf = NULL, *nbuf;
	long		 sz;
	int		 rc;

	memset(pu, 0, sizeof(*pu));
	pu->extra_gid = (gid_t)-1;
	if (strlcpy(pu->name, name, sizeof(pu->name)) >= sizeof(pu->name)) {
		snprintf(err, errlen, "user name too long: %.64s...", name);
		return -1;
	}

	if ((sz = sysconf(_SC_GETPW_R_SIZE_MAX)) < PROC_PWBUF_MIN)
		sz = PROC_PWBUF_MIN;
	/* a huge NSS entry answers ERANGE: grow the buffer, within reason */
	for (;;) {
		if ((nbuf = realloc(buf, (size_t)sz)) == NULL) {
			snprintf(err, errlen, "getpwnam %s: %s", name,
			    strerror(errno));
			free(buf);
			return -1;
		}
		buf = nbuf;
		rc = getpwnam_r(name, &pw, buf, (size_t)sz, &res);
		if (rc != ERANGE || sz >= PROC_PWBUF_MAX)
			break;
		sz *= 2;
	}
	if (rc != 0) {
		snprintf(err, errlen, "getpwnam %s: %s", name, strerror(rc));
		free(buf);
		return -1;
	}
	if (res == NULL) {
		snprintf(err, errlen, "no such user: %s", name);
		free(buf);
		return -1;
	}
	pu->uid = pw.pw_uid;
	pu->gid = pw.pw_gid;
	free(buf);
	return 0;
}

/*
 * proc_drop - chroot, then give up root for good.  The order matters:
 * chroot needs root, and the groups must go before the uid does.
 */
int
proc_drop(const struct proc_user *pu, const char *root)
{
	/*
	 * glibc reads /etc/localtime the first time a local time is
	 * formatted (every log line); after chroot the file is gone and
	 * after the sandbox open(2) is fatal, so read it now.
	 */
	tzset();

	if (root != NULL && proc_chroot(pu, root) == -1)
		return -1;
	if (pu == NULL)
		return 0;
	if (proc_setids(pu) == -1)
		return -1;
	return proc_verify(pu);
}

/* proc_chroot - enter root and make sure the cwd is inside it */
static int
proc_chroot(const struct proc_user *pu, const char *root)
{
	const char	*who = pu != NULL ? pu->name : "(unchanged)";

	if (geteuid() != 0) {
		/* only root may chroot; the caller runs unprivileged */
		log_debug("proc_drop: not root, no chroot to %s", root);
		return 0;
	}
	if (chroot(root) == -1) {
		log_warn("proc_drop: chroot to %s for %s", root, who);
		return -1;
	}
	/* a cwd outside the new root would be a way out of it */
	if (chdir("/") == -1) {
		log_warn("proc_drop: chdir / in %s for %s", root, who);
		return -1;
	}
	return 0;
}

/* proc_setids - supplementary groups, then gid, then uid */
static int
proc_setids(const struct proc_user *pu)
{
	gid_t	 groups[2];
	size_t	 ngroups = 0;

	groups[ngroups++] = pu->gid;
	if (pu->extra_gid != (gid_t)-1 && pu->extra_gid != pu->gid)
		groups[ngroups++] = pu->extra_gid;

	/*
	 * Only root can change the group list.  An unprivileged caller
	 * keeps its own; setresgid/setresuid below still fail unless
	 * the target ids are the caller's.
	 */
	if (geteuid() == 0 && setgroups(ngroups, groups) == -1) {
		log_warn("proc_drop: setgroups for %s (gid %lu)", pu->name,
		    (unsigned long)pu->gid);
		return -1;
	}
	if (setresgid(pu->gid, pu->gid, pu->gid) == -1) {
		log_warn("proc_drop: setresgid to %s (gid %lu)", pu->name,
		    (unsigned long)pu->gid);
		return -1;
	}
	if (setresuid(pu->uid, pu->uid, pu->uid) == -1) {
		log_warn("proc_drop: setresuid to %s (uid %lu)", pu->name,
		    (unsigned long)pu->uid);
		return -1;
	}
	return 0;
}

/*
 * proc_verify - trust no return code: read the ids back and prove that
 * root cannot be regained (a kernel or a libc that ignored one of the
 * three ids would leave a saved uid 0 behind).
 */
static int
proc_verify(const struct proc_user *pu)
{
	uid_t	 ruid, euid, suid;
	gid_t	 rgid, egid, sgid;

	if (getresuid(&ruid, &euid, &suid) == -1) {
		log_warn("proc_drop: getresuid for %s", pu->name);
		return -1;
	}
	if (ruid != pu->uid || euid != pu->uid || suid != pu->uid) {
		log_warnx("proc_drop: %s: uids are %lu/%lu/%lu, not %lu",
		    pu->name, (unsigned long)ruid, (unsigned long)euid,
		    (unsigned long)suid, (unsigned long)pu->uid);
		return -1;
	}
	if (getresgid(&rgid, &egid, &sgid) == -1) {
		log_warn("proc_drop: getresgid for %s", pu->name);
		return -1;
	}
	if (rgid != pu->gid || egid != pu->gid || sgid != pu->gid) {
		log_warnx("proc_drop: %s: gids are %lu/%lu/%lu, not %lu",
		    pu->name, (unsigned long)rgid, (unsigned long)egid,
		    (unsigned long)sgid, (unsigned long)pu->gid);
		return -1;
	}
	if (pu->uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		log_warnx("proc_drop: %s (uid %lu) could regain root",
		    pu->name, (unsigned long)pu->uid);
		return -1;
	}
	if (pu->gid != 0 && pu->uid != 0 &&
	    (setgid(0) != -1 || setegid(0) != -1)) {
		log_warnx("proc_drop: %s (gid %lu) could regain group 0",
		    pu->name, (unsigned long)pu->gid);
		return -1;
	}
	return 0;
}

/* proc_no_new_privs - no setuid binary or file capability works after this */
int
proc_no_new_privs(void)
{
	int	 rc;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("proc_no_new_privs: prctl PR_SET_NO_NEW_PRIVS");
		return -1;
	}
	if ((rc = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)) != 1) {
		if (rc == -1)
			log_warn("proc_no_new_privs: prctl "
			    "PR_GET_NO_NEW_PRIVS");
		else
			log_warnx("proc_no_new_privs: flag reads back as %d",
			    rc);
		return -1;
	}
	return 0;
}

#ifndef HAVE_CLOSEFROM
/* proc_closefrom_procfs - close what /proc/self/fd lists at or above lowfd */
static int
proc_closefrom_procfs(int lowfd)
{
	DIR		*dir;
	struct dirent	*de;
	const char	*errstr;
	int		 fd, dfd;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return -1;
	dfd = dirfd(dir);
	/*
	 * Closing while reading is fine: a descriptor already closed
	 * simply does not show up again.
	 */
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fd = (int)strtonum(de->d_name, 0, INT_MAX, &errstr);
		if (errstr != NULL || fd < lowfd || fd == dfd)
			continue;
		close(fd);
	}
	closedir(dir);
	return 0;
}
#endif

/* proc_closefrom - close every descriptor >= lowfd */
void
proc_closefrom(int lowfd)
{
	if (lowfd < 0)
		lowfd = 0;
#ifdef HAVE_CLOSEFROM
	closefrom(lowfd);
#else
	{
		struct rlimit	 rl;
		long		 fd, max;

#ifdef SYS_close_range
		if (syscall(SYS_close_range, (unsigned int)lowfd, ~0U, 0) == 0)
			return;
#endif
		if (proc_closefrom_procfs(lowfd) == 0)
			return;
		/* no /proc (a chroot): try every possible number */
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
		    rl.rlim_max == RLIM_INFINITY || rl.rlim_max > INT_MAX)
			max = 65536;
		else
			max = (long)rl.rlim_max;
		for (fd = lowfd; fd < max; fd++)
			close((int)fd);
	}
#endif
}

/* proc_set_nonblock - O_NONBLOCK on, keeping the other status flags */
int
proc_set_nonblock(int fd)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		return -1;
	if (flags & O_NONBLOCK)
		return 0;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* proc_set_cloexec - set or clear FD_CLOEXEC */
int
proc_set_cloexec(int fd, int on)
{
	int	 flags, nflags;

	if ((flags = fcntl(fd, F_GETFD)) == -1)
		return -1;
	nflags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
	if (nflags == flags)
		return 0;
	return fcntl(fd, F_SETFD, nflags);
}
