/*
 * test_proc.c - user lookup, privilege drop into a chroot, no_new_privs
 * and descriptor helpers.  Everything that changes the process for
 * good runs in a fork()ed child that reports through its exit status.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "compat/compat.h"
#include "log.h"
#include "proc.h"

#define NOBODY	"nobody"

struct chroot_dir {
	char	 path[64];
	char	 marker[96];
};

/*
 * Looked up once, in the parent: a failing assertion in a child would
 * carry on with the next test there.
 */
static struct proc_user	 nobody_user, root_user;

static int	run_child(int (*)(void *), void *);
static int	setup_users(void **);
static void	lookup_or_fail(const char *, struct proc_user *);
static void	chroot_dir_make(struct chroot_dir *);
static void	chroot_dir_remove(struct chroot_dir *);
static void	require_root(void);

/* run_child - fork, run fn in the child, return its exit code (or 200+sig) */
static int
run_child(int (*fn)(void *), void *arg)
{
	pid_t	 pid;
	int	 status;

	fflush(NULL);
	if ((pid = fork()) == -1)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			fail_msg("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(status))
		return 200 + WTERMSIG(status);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
lookup_or_fail(const char *name, struct proc_user *pu)
{
	char	 err[128];

	if (proc_lookup_user(name, pu, err, sizeof(err)) == -1)
		fail_msg("lookup %s: %s", name, err);
}

static int
setup_users(void **state)
{
	lookup_or_fail(NOBODY, &nobody_user);
	lookup_or_fail("root", &root_user);
	return 0;
}

static void
require_root(void)
{
	if (geteuid() != 0)
		skip();
}

/* chroot_dir_make - an empty, world-searchable root with one file in it */
static void
chroot_dir_make(struct chroot_dir *cd)
{
	int	 fd;

	strlcpy(cd->path, "/tmp/test_proc.XXXXXX", sizeof(cd->path));
	assert_non_null(mkdtemp(cd->path));
	/* mkdtemp makes it 0700; the dropped user must be able to look */
	assert_int_equal(chmod(cd->path, 0755), 0);
	snprintf(cd->marker, sizeof(cd->marker), "%s/marker", cd->path);
	fd = open(cd->marker, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "inside\n", 7), 7);
	close(fd);
}

static void
chroot_dir_remove(struct chroot_dir *cd)
{
	unlink(cd->marker);
	rmdir(cd->path);
}

static void
test_proc_lookup_root(void **state)
{
	struct proc_user	 pu;

	lookup_or_fail("root", &pu);
	assert_string_equal(pu.name, "root");
	assert_int_equal(pu.uid, 0);
	assert_int_equal(pu.gid, 0);
	assert_int_equal(pu.extra_gid, (gid_t)-1);
}

static void
test_proc_lookup_nobody(void **state)
{
	struct proc_user	 pu;

	lookup_or_fail(NOBODY, &pu);
	assert_string_equal(pu.name, NOBODY);
	assert_true(pu.uid != 0);
	assert_int_equal(pu.extra_gid, (gid_t)-1);
}

static void
test_proc_lookup_unknown(void **state)
{
	struct proc_user	 pu;
	char			 err[128];

	assert_int_equal(proc_lookup_user("sluice-no-such-user", &pu, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "no such user: sluice-no-such-user");
}

/* 63 bytes fit struct proc_user's name, 64 do not */
static void
test_proc_lookup_name_length(void **state)
{
	struct proc_user	 pu;
	char			 name[80], err[160];

	memset(name, 'x', 63);
	name[63] = '\0';
	assert_int_equal(proc_lookup_user(name, &pu, err, sizeof(err)), -1);
	assert_true(strncmp(err, "no such user: ", 14) == 0);

	memset(name, 'x', 64);
	name[64] = '\0';
	assert_int_equal(proc_lookup_user(name, &pu, err, sizeof(err)), -1);
	assert_true(strncmp(err, "user name too long: ", 20) == 0);
}

/* the child side of test_proc_drop_chroot: every check its own code */
static int
drop_chroot_child(void *arg)
{
	struct chroot_dir	*cd = arg;
	struct proc_user	 pu = nobody_user;
	struct dirent		*de;
	DIR			*dir;
	char			 cwd[PATH_MAX], buf[16];
	int			 fd, n = 0;
	ssize_t			 r;

	if (proc_drop(&pu, cd->path) == -1)
		return 1;
	if (getuid() != pu.uid || geteuid() != pu.uid)
		return 2;
	if (getgid() != pu.gid || getegid() != pu.gid)
		return 3;
	if (setuid(0) != -1 || seteuid(0) != -1)
		return 4;
	if (getcwd(cwd, sizeof(cwd)) == NULL || strcmp(cwd, "/") != 0)
		return 5;
	if ((fd = open("/marker", O_RDONLY)) == -1)
		return 6;
	r = read(fd, buf, sizeof(buf));
	close(fd);
	if (r != 7 || memcmp(buf, "inside\n", 7) != 0)
		return 7;
	/* the new root holds the marker and nothing else */
	if ((dir = opendir("/")) == NULL)
		return 8;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (strcmp(de->d_name, "marker") != 0)
			return 9;
		n++;
	}
	closedir(dir);
	if (n != 1)
		return 10;
	if (access("/etc/passwd", F_OK) != -1)
		return 11;
	/* one supplementary group: the primary one */
	if (getgroups(0, NULL) != 1)
		return 12;
	return 0;
}

static void
test_proc_drop_chroot(void **state)
{
	struct chroot_dir	 cd;
	int			 rc;

	require_root();
	chroot_dir_make(&cd);
	rc = run_child(drop_chroot_child, &cd);
	chroot_dir_remove(&cd);
	assert_int_equal(rc, 0);
}

static int
drop_extra_gid_child(void *arg)
{
	struct proc_user	 pu = nobody_user;
	gid_t			 groups[8];
	int			 n, i, seen_primary = 0, seen_extra = 0;

	/* any gid that is neither 0 nor nobody's own */
	pu.extra_gid = pu.gid == 4242 ? 4243 : 4242;
	if (proc_drop(&pu, NULL) == -1)
		return 1;
	if ((n = getgroups(8, groups)) != 2)
		return 2;
	for (i = 0; i < n; i++) {
		if (groups[i] == pu.gid)
			seen_primary = 1;
		else if (groups[i] == pu.extra_gid)
			seen_extra = 1;
	}
	if (!seen_primary || !seen_extra)
		return 3;
	if (getegid() != pu.gid)
		return 4;
	return 0;
}

static void
test_proc_drop_extra_gid(void **state)
{
	require_root();
	assert_int_equal(run_child(drop_extra_gid_child, NULL), 0);
}

/* nobody trying to become root again must fail, and say so */
static int
drop_back_to_root_child(void *arg)
{
	if (proc_drop(&nobody_user, NULL) == -1)
		return 1;
	if (proc_drop(&root_user, NULL) != -1)
		return 2;
	if (getuid() != nobody_user.uid)
		return 3;
	return 0;
}

static void
test_proc_drop_cannot_regain_root(void **state)
{
	require_root();
	assert_int_equal(run_child(drop_back_to_root_child, NULL), 0);
}

/* without a user no ids change; unprivileged, the chroot is skipped */
static int
drop_null_user_child(void *arg)
{
	struct chroot_dir	*cd = arg;
	char			 before[PATH_MAX], after[PATH_MAX];
	uid_t			 uid = getuid();

	if (proc_drop(NULL, NULL) == -1)
		return 1;
	if (getuid() != uid)
		return 2;
	if (geteuid() == 0 && proc_drop(&nobody_user, NULL) == -1)
		return 3;
	if (getcwd(before, sizeof(before)) == NULL)
		return 4;
	if (proc_drop(NULL, cd->path) == -1)
		return 5;
	if (getcwd(after, sizeof(after)) == NULL || strcmp(before, after))
		return 6;
	if (access(cd->marker, F_OK) == -1)
		return 7;
	return 0;
}

static void
test_proc_drop_null_user(void **state)
{
	struct chroot_dir	 cd;
	int			 rc;

	chroot_dir_make(&cd);
	rc = run_child(drop_null_user_child, &cd);
	chroot_dir_remove(&cd);
	assert_int_equal(rc, 0);
}

/*
 * Unprivileged, proc_drop to one's own ids succeeds without chroot or
 * setgroups; to anyone else it fails.
 */
static int
drop_unprivileged_child(void *arg)
{
	struct chroot_dir	*cd = arg;
	struct proc_user	 self;
	char			 cwd[PATH_MAX];

	if (geteuid() == 0 && proc_drop(&nobody_user, NULL) == -1)
		return 1;
	memset(&self, 0, sizeof(self));
	strlcpy(self.name, "self", sizeof(self.name));
	self.uid = getuid();
	self.gid = getgid();
	self.extra_gid = (gid_t)-1;
	if (proc_drop(&self, cd->path) == -1)
		return 2;
	if (getcwd(cwd, sizeof(cwd)) == NULL || strcmp(cwd, "/") == 0)
		return 3;
	if (getuid() != self.uid || getgid() != self.gid)
		return 4;
	self.uid = self.uid == 12345 ? 12346 : 12345;
	if (proc_drop(&self, NULL) != -1)
		return 5;
	return 0;
}

static void
test_proc_drop_unprivileged(void **state)
{
	struct chroot_dir	 cd;
	int			 rc;

	chroot_dir_make(&cd);
	rc = run_child(drop_unprivileged_child, &cd);
	chroot_dir_remove(&cd);
	assert_int_equal(rc, 0);
}

static int
drop_bad_root_child(void *arg)
{
	if (proc_drop(&nobody_user, "/nonexistent/sluice-test-root") != -1)
		return 1;
	/* a failed chroot must not go on to change ids */
	if (getuid() != 0)
		return 2;
	return 0;
}

static void
test_proc_drop_bad_root(void **state)
{
	require_root();
	assert_int_equal(run_child(drop_bad_root_child, NULL), 0);
}

static int
no_new_privs_child(void *arg)
{
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0)
		return 1;
	if (proc_no_new_privs() == -1)
		return 2;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 3;
	/* setting it twice is harmless */
	if (proc_no_new_privs() == -1)
		return 4;
	return 0;
}

static void
test_proc_no_new_privs(void **state)
{
	assert_int_equal(run_child(no_new_privs_child, NULL), 0);
}

/* closefrom(20): 10..12 stay, 20..25 and a high one go */
static int
closefrom_child(void *arg)
{
	int	 fd, nul;

	if ((nul = open("/dev/null", O_RDONLY)) == -1)
		return 1;
	for (fd = 10; fd <= 12; fd++)
		if (dup2(nul, fd) == -1)
			return 2;
	for (fd = 20; fd <= 25; fd++)
		if (dup2(nul, fd) == -1)
			return 3;
	if (dup2(nul, 1000) == -1)
		return 4;
	close(nul);

	proc_closefrom(20);
	for (fd = 10; fd <= 12; fd++)
		if (fcntl(fd, F_GETFD) == -1)
			return 5;
	for (fd = 20; fd <= 25; fd++)
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			return 6;
	if (fcntl(1000, F_GETFD) != -1)
		return 7;
	/* the edge: lowfd itself is closed, lowfd - 1 is not */
	proc_closefrom(12);
	if (fcntl(12, F_GETFD) != -1 || fcntl(11, F_GETFD) == -1)
		return 8;
	if (fcntl(STDERR_FILENO, F_GETFD) == -1)
		return 9;
	return 0;
}

static void
test_proc_closefrom(void **state)
{
	assert_int_equal(run_child(closefrom_child, NULL), 0);
}

static void
test_proc_set_nonblock(void **state)
{
	int	 p[2];

	assert_int_equal(pipe(p), 0);
	assert_false(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	assert_int_equal(proc_set_nonblock(p[0]), 0);
	assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	/* idempotent */
	assert_int_equal(proc_set_nonblock(p[0]), 0);
	assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	/* other flags are left alone */
	assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);
	close(p[0]);
	close(p[1]);
	assert_int_equal(proc_set_nonblock(p[0]), -1);
	assert_int_equal(errno, EBADF);
}

static void
test_proc_set_cloexec(void **state)
{
	int	 p[2];

	assert_int_equal(pipe(p), 0);
	assert_false(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(proc_set_cloexec(p[0], 1), 0);
	assert_true(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(proc_set_cloexec(p[0], 1), 0);
	assert_true(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(proc_set_cloexec(p[0], 0), 0);
	assert_false(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	close(p[0]);
	close(p[1]);
	assert_int_equal(proc_set_cloexec(p[0], 1), -1);
	assert_int_equal(errno, EBADF);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proc_lookup_root),
		cmocka_unit_test(test_proc_lookup_nobody),
		cmocka_unit_test(test_proc_lookup_unknown),
		cmocka_unit_test(test_proc_lookup_name_length),
		cmocka_unit_test(test_proc_drop_chroot),
		cmocka_unit_test(test_proc_drop_extra_gid),
		cmocka_unit_test(test_proc_drop_cannot_regain_root),
		cmocka_unit_test(test_proc_drop_null_user),
		cmocka_unit_test(test_proc_drop_bad_root),
		cmocka_unit_test(test_proc_drop_unprivileged),
		cmocka_unit_test(test_proc_no_new_privs),
		cmocka_unit_test(test_proc_closefrom),
		cmocka_unit_test(test_proc_set_nonblock),
		cmocka_unit_test(test_proc_set_cloexec),
	};

	log_init("test_proc", LOG_F_STDERR | LOG_F_NOSYSLOG);
	return cmocka_run_group_tests(tests, setup_users, NULL);
}
