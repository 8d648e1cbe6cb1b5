/*
 * test_sandbox.c - every profile in a fork()ed child: what it allows
 * works, what it forbids dies of SIGSYS with a message naming the call,
 * and libevent, OpenSSL and libsodium still run inside it.
 *
 * A child reports through its exit status: 0 is success, a small
 * number names the check that failed, and the parent collects the
 * child's stderr to look for the SIGSYS message.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <cmocka.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "log.h"
#include "sandbox.h"

#define CHILD_ALARM	20	/* seconds before a stuck child is killed */
#define ERRMAX		4096
#define KEYBYTES	crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCEBYTES	crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

/* a forked child and what it wrote to stderr */
struct child {
	pid_t	 pid;
	int	 errfd;
	int	 status;
	char	 err[ERRMAX];
	size_t	 errlen;
};

/* both ends of a TLS handshake, set up before the sandbox */
struct tls_pair {
	SSL_CTX	*sctx;
	SSL_CTX	*cctx;
};

static const enum sandbox_profile all_profiles[] = {
	SANDBOX_SMTPD, SANDBOX_AUTHD, SANDBOX_QUEUED, SANDBOX_DELIVERD,
	SANDBOX_TEST
};
#define NPROFILES	(sizeof(all_profiles) / sizeof(all_profiles[0]))

static pid_t	child_fork(struct child *);
static void	child_wait(struct child *);
static void	child_enter(enum sandbox_profile);
static void	expect_exit0(struct child *);
static void	expect_sigsys(struct child *, long, const char *);
static void	*thread_main(void *);
static void	*trap_thread(void *);
static void	*early_thread(void *);
static int	threads_work(void);
static int	libevent_smoke(void);
static void	smoke_read_cb(evutil_socket_t, short, void *);
static void	smoke_timer_cb(evutil_socket_t, short, void *);
static void	smoke_signal_cb(evutil_socket_t, short, void *);
static int	tls_pair_make(struct tls_pair *);
static int	tls_handshake(struct tls_pair *);
static void	run_libevent(enum sandbox_profile);
static void	accept_in(enum sandbox_profile);
static void	redis_ping_cb(redisAsyncContext *, void *, void *);
static int	redis_ping(struct sockaddr_in *, const char *);
static void	redis_serve_pong(int);
static void	dns_cb(void *, int, int, unsigned char *, int);
static int	dns_answer(int);
static int	dns_query(void);

/* child_fork - fork with the child's stderr going into a pipe */
static pid_t
child_fork(struct child *c)
{
	int	 p[2];

	memset(c, 0, sizeof(*c));
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	if ((c->pid = fork()) == -1)
		fail_msg("fork: %s", strerror(errno));
	if (c->pid == 0) {
		close(p[0]);
		if (dup2(p[1], STDERR_FILENO) == -1)
			_exit(120);
		close(p[1]);
		/* a stuck child is killed, it never hangs the suite */
		alarm(CHILD_ALARM);
		return 0;
	}
	close(p[1]);
	c->errfd = p[0];
	return c->pid;
}

/* child_wait - collect stderr to EOF, then the exit status */
static void
child_wait(struct child *c)
{
	ssize_t	 n;

	for (;;) {
		n = read(c->errfd, c->err + c->errlen,
		    sizeof(c->err) - 1 - c->errlen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		c->errlen += (size_t)n;
		if (c->errlen == sizeof(c->err) - 1)
			break;
	}
	c->err[c->errlen] = '\0';
	close(c->errfd);
	while (waitpid(c->pid, &c->status, 0) == -1)
		if (errno != EINTR)
			fail_msg("waitpid: %s", strerror(errno));
}

/* child_enter - in the child: apply the profile or exit 100 */
static void
child_enter(enum sandbox_profile profile)
{
	if (sandbox_apply(profile) == -1)
		_exit(100);
}

static void
expect_exit0(struct child *c)
{
	if (WIFSIGNALED(c->status))
		fail_msg("child killed by signal %d; stderr: %s",
		    WTERMSIG(c->status), c->err);
	assert_true(WIFEXITED(c->status));
	if (WEXITSTATUS(c->status) != 0)
		fail_msg("child exited %d; stderr: %s",
		    WEXITSTATUS(c->status), c->err);
}

/* expect_sigsys - killed by SIGSYS, and stderr names the call */
static void
expect_sigsys(struct child *c, long nr, const char *name)
{
	char	 want[128];

	if (!WIFSIGNALED(c->status))
		fail_msg("child not killed (exit %d); stderr: %s",
		    WEXITSTATUS(c->status), c->err);
	assert_int_equal(WTERMSIG(c->status), SIGSYS);
	if (name != NULL)
		snprintf(want, sizeof(want),
		    "sandbox: blocked system call %ld (%s)\n", nr, name);
	else
		snprintf(want, sizeof(want),
		    "sandbox: blocked system call %ld", nr);
	if (strstr(c->err, want) == NULL)
		fail_msg("stderr lacks \"%s\": %s", want, c->err);
}

static void
test_sandbox_profile_str(void **state)
{
	assert_string_equal(sandbox_profile_str(SANDBOX_SMTPD), "smtpd");
	assert_string_equal(sandbox_profile_str(SANDBOX_AUTHD), "authd");
	assert_string_equal(sandbox_profile_str(SANDBOX_QUEUED), "queued");
	assert_string_equal(sandbox_profile_str(SANDBOX_DELIVERD),
	    "deliverd");
	assert_string_equal(sandbox_profile_str(SANDBOX_TEST), "test");
	assert_string_equal(sandbox_profile_str((enum sandbox_profile)99),
	    "unknown");
}

/* an unknown profile fails before it changes anything */
static void
test_sandbox_unknown_profile(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		if (sandbox_apply((enum sandbox_profile)99) != -1)
			_exit(1);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0)
			_exit(2);
		_exit(0);
	}
	child_wait(&c);
	expect_exit0(&c);
	assert_non_null(strstr(c.err, "sandbox: unknown profile 99"));
}

/* the base set: the calls every process makes all the time */
static void
test_sandbox_base_calls_allowed(void **state)
{
	struct child	 c;
	struct timespec	 ts;
	struct rlimit	 rl;
	char		*big, buf[8];
	int		 p[2], avail;

	if (child_fork(&c) == 0) {
		if (pipe(p) == -1)
			_exit(99);
		child_enter(SANDBOX_TEST);
		if (getpid() <= 1)
			_exit(1);
		if (write(p[1], "ping", 4) != 4)
			_exit(2);
		if (ioctl(p[0], FIONREAD, &avail) == -1 || avail != 4)
			_exit(3);
		if (read(p[0], buf, sizeof(buf)) != 4 ||
		    memcmp(buf, "ping", 4) != 0)
			_exit(4);
		if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1 ||
		    clock_gettime(CLOCK_REALTIME, &ts) == -1)
			_exit(5);
		if ((big = malloc(10 * 1024 * 1024)) == NULL)
			_exit(6);
		memset(big, 'x', 10 * 1024 * 1024);
		free(big);
		if (kill(getpid(), 0) == -1)
			_exit(7);
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			_exit(8);
		/* stdio asks TCGETS; the filter answers "not a tty" */
		if (isatty(p[1]) != 0 || errno != ENOTTY)
			_exit(9);
		/* logging: the stderr copy and syslog's (re)connect */
		log_warnx("still logging");
		_exit(0);
	}
	child_wait(&c);
	expect_exit0(&c);
	assert_non_null(strstr(c.err, "still logging"));
}

static void
test_sandbox_execve_killed(void **state)
{
	struct child	 c;
	char		*argv[] = { "true", NULL };
	char		*envp[] = { NULL };

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_SMTPD);
		execve("/bin/true", argv, envp);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_execve, "execve");
}

static void
test_sandbox_openat_killed(void **state)
{
	struct child	 c;
	size_t		 i;

	for (i = 0; i < NPROFILES; i++) {
		if (child_fork(&c) == 0) {
			child_enter(all_profiles[i]);
			open("/etc/passwd", O_RDONLY);
			_exit(1);
		}
		child_wait(&c);
		expect_sigsys(&c, SYS_openat, "openat");
	}
}

/* fork is clone(2) without CLONE_THREAD: no profile may do it */
static void
test_sandbox_fork_killed(void **state)
{
	struct child	 c;
	size_t		 i;
	pid_t		 pid;

	for (i = 0; i < NPROFILES; i++) {
		if (child_fork(&c) == 0) {
			child_enter(all_profiles[i]);
			pid = fork();
			_exit(pid == 0 ? 2 : 1);
		}
		child_wait(&c);
		expect_sigsys(&c, SYS_clone, "clone");
	}
}

static void
test_sandbox_socket_inet_smtpd_killed(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_SMTPD);
		socket(AF_INET, SOCK_STREAM, 0);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_socket, "socket");
}

/* AF_UNIX stays possible everywhere: syslog reconnects, libevent's pair */
static void
test_sandbox_socket_unix_allowed(void **state)
{
	struct child	 c;
	size_t		 i;
	int		 fd, sv[2];

	for (i = 0; i < NPROFILES; i++) {
		if (child_fork(&c) == 0) {
			child_enter(all_profiles[i]);
			if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC,
			    0)) == -1)
				_exit(1);
			close(fd);
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK,
			    0, sv) == -1)
				_exit(2);
			_exit(0);
		}
		child_wait(&c);
		expect_exit0(&c);
	}
}

/* deliverd: TCP and UDP out, a bound UDP socket for DNS answers */
static void
test_sandbox_socket_inet_deliverd_allowed(void **state)
{
	struct child		 c;
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	char			 buf[8];
	int			 fd, u;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_DELIVERD);
		if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK,
		    0)) == -1)
			_exit(1);
		close(fd);
		/* a host without IPv6 says so; it must not be SIGSYS */
		if ((fd = socket(AF_INET6, SOCK_STREAM, 0)) == -1 &&
		    errno != EAFNOSUPPORT)
			_exit(2);
		if (fd != -1)
			close(fd);
		if ((u = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
			_exit(3);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(u, (struct sockaddr *)&sin, sizeof(sin)) == -1)
			_exit(4);
		if (getsockname(u, (struct sockaddr *)&sin, &slen) == -1)
			_exit(5);
		if (connect(u, (struct sockaddr *)&sin, sizeof(sin)) == -1)
			_exit(6);
		if (send(u, "dns?", 4, 0) != 4)
			_exit(7);
		if (recv(u, buf, sizeof(buf), 0) != 4)
			_exit(8);
		_exit(0);
	}
	child_wait(&c);
	expect_exit0(&c);
}

static void
test_sandbox_socket_raw_deliverd_killed(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_DELIVERD);
		socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_socket, "socket");
}

/* authd and queued reach Redis over TCP, but cannot send UDP */
static void
test_sandbox_socket_redis_profiles(void **state)
{
	static const enum sandbox_profile p[] = {
		SANDBOX_AUTHD, SANDBOX_QUEUED
	};
	struct child	 c;
	size_t		 i;
	int		 fd;

	for (i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		if (child_fork(&c) == 0) {
			child_enter(p[i]);
			if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
				_exit(1);
			close(fd);
			socket(AF_INET, SOCK_DGRAM, 0);
			_exit(2);
		}
		child_wait(&c);
		expect_sigsys(&c, SYS_socket, "socket");
	}
}

/*
 * accept_in - a connection taken in the sandbox of profile p on a
 * listener made before it, as smtpd does with sluiced's and queued
 * with its metrics socket
 */
static void
accept_in(enum sandbox_profile p)
{
	struct child		 c;
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	char			 buf[8];
	int			 lfd, fd, s, on = 1;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);

	if (child_fork(&c) == 0) {
		child_enter(p);
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
			_exit(1);
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on)) == -1)
			_exit(2);
		if (write(fd, "220 ok\r\n", 8) != 8)
			_exit(3);
		shutdown(fd, SHUT_WR);
		close(fd);
		_exit(0);
	}
	close(lfd);
	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(read(s, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "220 ok\r\n", 8);
	close(s);
	child_wait(&c);
	expect_exit0(&c);
}

/* smtpd takes connections on a listener it was handed */
static void
test_sandbox_smtpd_accept(void **state)
{
	accept_in(SANDBOX_SMTPD);
}

/* queued takes them on its metrics endpoint */
static void
test_sandbox_queued_accept(void **state)
{
	accept_in(SANDBOX_QUEUED);
}

static void
test_sandbox_kill_other_killed(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_SMTPD);
		if (kill(getpid(), 0) == -1)
			_exit(1);
		kill(getppid(), 0);
		_exit(2);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_kill, "kill");
}

static void
test_sandbox_ioctl_filtered(void **state)
{
	struct child	 c;
	int		 on = 1;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_SMTPD);
		if (ioctl(STDERR_FILENO, FIONBIO, &on) == -1)
			_exit(1);
		ioctl(STDERR_FILENO, FIOCLEX);
		_exit(2);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_ioctl, "ioctl");
}

/* nothing new becomes executable once the sandbox is on */
static void
test_sandbox_exec_memory_killed(void **state)
{
	struct child	 c;
	void		*p;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_AUTHD);
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(1);
		if (mprotect(p, 4096, PROT_READ) == -1)
			_exit(2);
		mprotect(p, 4096, PROT_READ | PROT_EXEC);
		_exit(3);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_mprotect, "mprotect");

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_DELIVERD);
		mmap(NULL, 4096, PROT_READ | PROT_EXEC,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_mmap, "mmap");
}

static void
test_sandbox_setuid_killed(void **state)
{
	struct child	 c;
	size_t		 i;

	for (i = 0; i < NPROFILES; i++) {
		if (child_fork(&c) == 0) {
			child_enter(all_profiles[i]);
			syscall(SYS_setresuid, 0, 0, 0);
			_exit(1);
		}
		child_wait(&c);
		expect_sigsys(&c, SYS_setresuid, "setresuid");
	}
}

static void
test_sandbox_ptrace_killed(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_QUEUED);
		syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_ptrace, "ptrace");
}

static void *
thread_main(void *arg)
{
	char	*p;

	/* a new thread gets its own malloc arena: mmap, sched_getaffinity */
	if ((p = malloc(100000)) == NULL)
		return NULL;
	memset(p, 1, 100000);
	free(p);
	return arg;
}

/* threads_work - start and join a few threads; 0 on success */
static int
threads_work(void)
{
	pthread_t	 t[4];
	void		*ret;
	int		 i, tag[4];

	for (i = 0; i < 4; i++) {
		tag[i] = i;
		if (pthread_create(&t[i], NULL, thread_main, &tag[i]) != 0)
			return 1;
	}
	for (i = 0; i < 4; i++)
		if (pthread_join(t[i], &ret) != 0 || ret != &tag[i])
			return 2;
	return 0;
}

static void
test_sandbox_threads_allowed(void **state)
{
	static const enum sandbox_profile p[] = {
		SANDBOX_AUTHD, SANDBOX_QUEUED
	};
	struct child	 c;
	size_t		 i;

	for (i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		if (child_fork(&c) == 0) {
			child_enter(p[i]);
			_exit(threads_work());
		}
		child_wait(&c);
		expect_exit0(&c);
	}
}

/*
 * smtpd and deliverd have no threads: clone3 traps there.  glibc blocks
 * every signal around the clone, so the kernel kills without running
 * the handler: SIGSYS, but no message.
 */
static void
test_sandbox_threads_smtpd_killed(void **state)
{
	static const enum sandbox_profile p[] = {
		SANDBOX_SMTPD, SANDBOX_DELIVERD
	};
	struct child	 c;
	size_t		 i;

	for (i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		if (child_fork(&c) == 0) {
			child_enter(p[i]);
			_exit(threads_work() + 10);
		}
		child_wait(&c);
		assert_true(WIFSIGNALED(c.status));
		assert_int_equal(WTERMSIG(c.status), SIGSYS);
	}
}

/* the kernel's view: filter mode 2 and no_new_privs */
static void
test_sandbox_proc_status(void **state)
{
	struct child	 c;
	char		 buf[4096];
	ssize_t		 n;
	int		 fd;

	if (child_fork(&c) == 0) {
		/* opened now, read later: open(2) is gone in the sandbox */
		if ((fd = open("/proc/self/status", O_RDONLY)) == -1)
			_exit(99);
		child_enter(SANDBOX_SMTPD);
		if ((n = read(fd, buf, sizeof(buf) - 1)) <= 0)
			_exit(1);
		buf[n] = '\0';
		if (strstr(buf, "\nSeccomp:\t2\n") == NULL)
			_exit(2);
		if (strstr(buf, "\nNoNewPrivs:\t1\n") == NULL)
			_exit(3);
		_exit(0);
	}
	child_wait(&c);
	expect_exit0(&c);
}

/* queued: a sealed memfd body handed over a seqpacket socket */
static void
test_sandbox_memfd_queued(void **state)
{
	struct child	 c;
	struct msghdr	 msg;
	struct cmsghdr	*cm;
	struct iovec	 iov;
	struct stat	 st;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	}		 cbuf;
	char		 body[] = "Subject: x\r\n\r\nbody\r\n", b, *map;
	int		 sv[2], fd, rfd, seals;

	if (child_fork(&c) == 0) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == -1)
			_exit(99);
		child_enter(SANDBOX_QUEUED);
		if ((fd = memfd_create("body", MFD_CLOEXEC |
		    MFD_ALLOW_SEALING)) == -1)
			_exit(1);
		if (ftruncate(fd, 0) == -1 ||
		    write(fd, body, sizeof(body) - 1) != sizeof(body) - 1)
			_exit(2);
		if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
		    F_SEAL_WRITE | F_SEAL_SEAL) == -1)
			_exit(3);

		memset(&msg, 0, sizeof(msg));
		b = 'B';
		iov.iov_base = &b;
		iov.iov_len = 1;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		if (sendmsg(sv[0], &msg, 0) != 1)
			_exit(4);
		close(fd);

		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_controllen = sizeof(cbuf.buf);
		if (recvmsg(sv[1], &msg, MSG_CMSG_CLOEXEC) != 1 ||
		    (cm = CMSG_FIRSTHDR(&msg)) == NULL ||
		    cm->cmsg_type != SCM_RIGHTS)
			_exit(5);
		memcpy(&rfd, CMSG_DATA(cm), sizeof(int));
		seals = fcntl(rfd, F_GET_SEALS);
		if (seals == -1 || !(seals & F_SEAL_WRITE))
			_exit(6);
		if (fstat(rfd, &st) == -1 ||
		    st.st_size != (off_t)sizeof(body) - 1)
			_exit(7);
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED,
		    rfd, 0);
		if (map == MAP_FAILED ||
		    memcmp(map, body, sizeof(body) - 1) != 0)
			_exit(8);
		munmap(map, (size_t)st.st_size);
		if (lseek(rfd, 0, SEEK_SET) != 0 || pread(rfd, &b, 1, 0) != 1 ||
		    b != 'S')
			_exit(9);
		/* the seal holds */
		if (write(rfd, "x", 1) != -1)
			_exit(10);
		_exit(0);
	}
	child_wait(&c);
	expect_exit0(&c);
}

static void
test_sandbox_memfd_smtpd_killed(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_SMTPD);
		memfd_create("x", MFD_CLOEXEC);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_memfd_create, "memfd_create");
}

/* the handler's message for a call not in its table: just the number */
static void
test_sandbox_unnamed_call(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_TEST);
		syscall(SYS_getpgid, 0);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_getpgid, NULL);
	assert_null(strstr(c.err, "("));
}

/* a trapped call in a second thread still kills the whole process */
static void *
trap_thread(void *arg)
{
	syscall(SYS_getpgid, 0);
	return NULL;
}

static void
test_sandbox_thread_trap_kills_process(void **state)
{
	struct child	 c;
	pthread_t	 t;

	if (child_fork(&c) == 0) {
		child_enter(SANDBOX_AUTHD);
		if (pthread_create(&t, NULL, trap_thread, NULL) != 0)
			_exit(1);
		pthread_join(t, NULL);
		sleep(5);
		_exit(2);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_getpgid, NULL);
}

/* TSYNC: a thread that exists before the filter is confined as well */
static void *
early_thread(void *arg)
{
	int	*go = arg;

	while (__atomic_load_n(go, __ATOMIC_ACQUIRE) == 0)
		usleep(1000);
	open("/etc/passwd", O_RDONLY);
	return NULL;
}

static void
test_sandbox_tsync_existing_thread(void **state)
{
	struct child	 c;
	pthread_t	 t;
	int		 go = 0;

	if (child_fork(&c) == 0) {
		if (pthread_create(&t, NULL, early_thread, &go) != 0)
			_exit(99);
		child_enter(SANDBOX_QUEUED);
		__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
		pthread_join(t, NULL);
		_exit(1);
	}
	child_wait(&c);
	expect_sigsys(&c, SYS_openat, "openat");
}

static void
smoke_read_cb(evutil_socket_t fd, short what, void *arg)
{
	int	*fired = arg;
	char	 b;

	if (read(fd, &b, 1) == 1 && b == 'r')
		*fired |= 1;
}

static void
smoke_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	int	*fired = arg;

	*fired |= 2;
	/* libevent delivers it through its own socketpair */
	raise(SIGUSR1);
}

static void
smoke_signal_cb(evutil_socket_t fd, short what, void *arg)
{
	int	*fired = arg;

	*fired |= 4;
}

/*
 * libevent_smoke - an epoll base with a read event, a 10 ms timer and
 * a signal event, run until all three fired; 0 on success.
 */
static int
libevent_smoke(void)
{
	struct event_base	*base;
	struct event		*rd, *tm, *sg;
	struct timeval		 tv = { 0, 10000 };
	char			 rnd[16];
	int			 sv[2], fired = 0;

	if ((base = event_base_new()) == NULL)
		return 1;
	if (strcmp(event_base_get_method(base), "epoll") != 0)
		return 2;
	/* libevent's own RNG (evdns ids) seeds itself lazily */
	evutil_secure_rng_get_bytes(rnd, sizeof(rnd));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		return 3;
	rd = event_new(base, sv[0], EV_READ, smoke_read_cb, &fired);
	tm = evtimer_new(base, smoke_timer_cb, &fired);
	/* evsignal_new() would make it persistent */
	sg = event_new(base, SIGUSR1, EV_SIGNAL, smoke_signal_cb, &fired);
	if (rd == NULL || tm == NULL || sg == NULL)
		return 4;
	if (event_add(rd, NULL) == -1 || evtimer_add(tm, &tv) == -1 ||
	    evsignal_add(sg, NULL) == -1)
		return 5;
	if (write(sv[1], "r", 1) != 1)
		return 6;
	/* nothing persists: the loop ends once all three have fired */
	if (event_base_dispatch(base) == -1)
		return 7;
	if (fired != 7)
		return 10 + fired;
	event_free(rd);
	event_free(tm);
	event_free(sg);
	event_base_free(base);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static void
run_libevent(enum sandbox_profile profile)
{
	struct child	 c;

	if (child_fork(&c) == 0) {
		child_enter(profile);
		_exit(libevent_smoke());
	}
	child_wait(&c);
	expect_exit0(&c);
}

static void
test_sandbox_libevent_smtpd(void **state)
{
	run_libevent(SANDBOX_SMTPD);
}

static void
test_sandbox_libevent_authd(void **state)
{
	run_libevent(SANDBOX_AUTHD);
}

static void
test_sandbox_libevent_queued(void **state)
{
	run_libevent(SANDBOX_QUEUED);
}

static void
test_sandbox_libevent_deliverd(void **state)
{
	run_libevent(SANDBOX_DELIVERD);
}

static void
test_sandbox_libevent_test(void **state)
{
	run_libevent(SANDBOX_TEST);
}

/* redis_ping_cb - PONG came back: hang up, which ends the loop */
static void
redis_ping_cb(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*reply = r;
	int		*ok = arg;

	if (reply != NULL && reply->type == REDIS_REPLY_STATUS &&
	    strcmp(reply->str, "PONG") == 0)
		*ok = 1;
	redisAsyncDisconnect(ac);
}

/*
 * redis_ping - in the sandbox: hiredis on libevent connects (TCP when
 * sin is set, else the unix socket path), sends PING, gets PONG.
 */
static int
redis_ping(struct sockaddr_in *sin, const char *path)
{
	struct event_base	*base;
	redisAsyncContext	*ac;
	char			 ip[INET_ADDRSTRLEN];
	int			 ok = 0;

	if ((base = event_base_new()) == NULL)
		return 1;
	if (sin != NULL) {
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		ac = redisAsyncConnect(ip, ntohs(sin->sin_port));
	} else
		ac = redisAsyncConnectUnix(path);
	if (ac == NULL || ac->err)
		return 2;
	if (redisLibeventAttach(ac, base) != REDIS_OK)
		return 3;
	if (redisAsyncCommand(ac, redis_ping_cb, &ok, "PING") != REDIS_OK)
		return 4;
	if (event_base_dispatch(base) == -1)
		return 5;
	event_base_free(base);
	return ok ? 0 : 6;
}

/* redis_serve_pong - in the parent: one client, one PING, one PONG */
static void
redis_serve_pong(int lfd)
{
	char		 buf[256];
	size_t		 len = 0;
	struct pollfd	 pfd;
	ssize_t		 n;
	int		 fd;

	/* a child that died before connecting must not hang the suite */
	pfd.fd = lfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, CHILD_ALARM * 1000) != 1)
		fail_msg("no connection from the sandboxed child");
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	while (memmem(buf, len, "PING\r\n", 6) == NULL) {
		n = read(fd, buf + len, sizeof(buf) - len);
		assert_true(n > 0);
		len += (size_t)n;
		assert_true(len < sizeof(buf));
	}
	assert_int_equal(write(fd, "+PONG\r\n", 7), 7);
	/* until the client hangs up */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* hiredis reaches Redis over TCP and over a unix socket */
static void
test_sandbox_hiredis(void **state)
{
	static const enum sandbox_profile p[] = {
		SANDBOX_AUTHD, SANDBOX_QUEUED
	};
	struct child		 c;
	struct sockaddr_in	 sin;
	struct sockaddr_un	 sa_un;
	socklen_t		 slen;
	char			 dir[] = "/tmp/test_sandbox.XXXXXX";
	size_t			 i;
	int			 lfd, tcp;

	memset(&sa_un, 0, sizeof(sa_un));
	assert_non_null(mkdtemp(dir));
	for (i = 0; i < 2 * sizeof(p) / sizeof(p[0]); i++) {
		tcp = i % 2 == 0;
		if (tcp) {
			lfd = socket(AF_INET, SOCK_STREAM, 0);
			assert_true(lfd >= 0);
			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			slen = sizeof(sin);
			assert_int_equal(bind(lfd, (struct sockaddr *)&sin,
			    sizeof(sin)), 0);
			assert_int_equal(getsockname(lfd,
			    (struct sockaddr *)&sin, &slen), 0);
		} else {
			lfd = socket(AF_UNIX, SOCK_STREAM, 0);
			assert_true(lfd >= 0);
			memset(&sa_un, 0, sizeof(sa_un));
			sa_un.sun_family = AF_UNIX;
			snprintf(sa_un.sun_path, sizeof(sa_un.sun_path),
			    "%s/redis.sock", dir);
			unlink(sa_un.sun_path);
			assert_int_equal(bind(lfd, (struct sockaddr *)&sa_un,
			    sizeof(sa_un)), 0);
		}
		assert_int_equal(listen(lfd, 4), 0);
		if (child_fork(&c) == 0) {
			close(lfd);
			child_enter(p[i / 2]);
			_exit(redis_ping(tcp ? &sin : NULL, sa_un.sun_path));
		}
		redis_serve_pong(lfd);
		close(lfd);
		child_wait(&c);
		expect_exit0(&c);
	}
	unlink(sa_un.sun_path);
	rmdir(dir);
}

static void
dns_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	int	*result = arg;

	*result = status;
}

/* dns_answer - the fake server: NXDOMAIN to whatever was asked */
static int
dns_answer(int u)
{
	struct sockaddr_in	 from;
	socklen_t		 flen = sizeof(from);
	unsigned char		 pkt[512];
	ssize_t			 n;

	n = recvfrom(u, pkt, sizeof(pkt), 0, (struct sockaddr *)&from, &flen);
	if (n < 12)
		return -1;
	pkt[2] |= 0x80;				/* QR: a response */
	pkt[3] = (unsigned char)((pkt[3] & 0xf0) | 3);	/* NXDOMAIN */
	if (sendto(u, pkt, (size_t)n, 0, (struct sockaddr *)&from,
	    flen) != n)
		return -1;
	return 0;
}

/*
 * dns_query - c-ares set up before the sandbox (it reads resolv.conf),
 * an MX query inside it against a fake server on loopback.
 */
static int
dns_query(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	struct pollfd		 pfd[ARES_GETSOCK_MAXNUM + 1];
	ares_socket_t		 socks[ARES_GETSOCK_MAXNUM];
	ares_channel		 ch;
	char			 csv[64];
	unsigned int		 rd, wr;
	int			 u, bits, i, n, round, result = -1;

	if ((u = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return 90;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(u, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(u, (struct sockaddr *)&sin, &slen) == -1)
		return 91;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS ||
	    ares_init(&ch) != ARES_SUCCESS)
		return 92;
	snprintf(csv, sizeof(csv), "127.0.0.1:%u", ntohs(sin.sin_port));
	if (ares_set_servers_ports_csv(ch, csv) != ARES_SUCCESS)
		return 93;

	child_enter(SANDBOX_DELIVERD);
	ares_query(ch, "example.com", ns_c_in, ns_t_mx, dns_cb, &result);
	for (round = 0; round < 100 && result == -1; round++) {
		bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		/* ARES_GETSOCK_WRITABLE shifts into the sign bit: UB */
		for (n = 0, i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			rd = (unsigned int)bits & (1U << i);
			wr = (unsigned int)bits &
			    (1U << (i + ARES_GETSOCK_MAXNUM));
			if (!rd && !wr)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = (rd ? POLLIN : 0) | (wr ? POLLOUT : 0);
			n++;
		}
		pfd[n].fd = u;
		pfd[n].events = POLLIN;
		if (poll(pfd, (nfds_t)n + 1, 100) == -1)
			return 1;
		if (pfd[n].revents & POLLIN && dns_answer(u) == -1)
			return 2;
		if (n == 0)
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
		for (i = 0; i < n; i++)
			ares_process_fd(ch,
			    pfd[i].revents & POLLIN ? pfd[i].fd :
			    ARES_SOCKET_BAD,
			    pfd[i].revents & POLLOUT ? pfd[i].fd :
			    ARES_SOCKET_BAD);
	}
	ares_destroy(ch);
	return result == ARES_ENOTFOUND ? 0 : 3;
}

/* c-ares resolves over UDP inside deliverd's sandbox */
static void
test_sandbox_cares_deliverd(void **state)
{
	struct child	 c;

	if (child_fork(&c) == 0)
		_exit(dns_query());
	child_wait(&c);
	expect_exit0(&c);
}

/*
 * tls_pair_make - before the sandbox: a throwaway P-256 certificate, a
 * server and a client context.  0 on success.
 */
static int
tls_pair_make(struct tls_pair *tp)
{
	EVP_PKEY	*key;
	X509		*x;
	X509_NAME	*name;
	int		 rc = -1;

	memset(tp, 0, sizeof(*tp));
	if ((key = EVP_EC_gen("P-256")) == NULL)
		return -1;
	if ((x = X509_new()) == NULL)
		goto out;
	if (!X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
	    !X509_set_pubkey(x, key))
		goto out;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"sandbox.test", -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) ||
	    X509_sign(x, key, EVP_sha256()) == 0)
		goto out;
	if ((tp->sctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    (tp->cctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto out;
	if (SSL_CTX_use_certificate(tp->sctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(tp->sctx, key) != 1)
		goto out;
	SSL_CTX_set_verify(tp->cctx, SSL_VERIFY_NONE, NULL);
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* tls_handshake - in the sandbox: a TLS 1.3 handshake over a socketpair */
static int
tls_handshake(struct tls_pair *tp)
{
	SSL	*s, *cl;
	char	 buf[16];
	int	 sv[2], i, rs = 0, rc = 0, e;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		return 1;
	if ((s = SSL_new(tp->sctx)) == NULL ||
	    (cl = SSL_new(tp->cctx)) == NULL)
		return 2;
	if (!SSL_set_fd(s, sv[0]) || !SSL_set_fd(cl, sv[1]))
		return 3;
	SSL_set_accept_state(s);
	SSL_set_connect_state(cl);
	for (i = 0; i < 100 && (rs != 1 || rc != 1); i++) {
		if (rc != 1 && (rc = SSL_do_handshake(cl)) != 1) {
			e = SSL_get_error(cl, rc);
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				return 4;
		}
		if (rs != 1 && (rs = SSL_do_handshake(s)) != 1) {
			e = SSL_get_error(s, rs);
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				return 5;
		}
	}
	if (rs != 1 || rc != 1)
		return 6;
	if (SSL_write(cl, "EHLO x\r\n", 8) != 8)
		return 7;
	if (SSL_read(s, buf, sizeof(buf)) != 8 ||
	    memcmp(buf, "EHLO x\r\n", 8) != 0)
		return 8;
	SSL_free(s);
	SSL_free(cl);
	return 0;
}

/* OpenSSL (a full handshake) and libsodium work in every profile */
static void
test_sandbox_crypto_libraries(void **state)
{
	struct child		 c;
	struct tls_pair		 tp;
	unsigned char		 key[KEYBYTES], nonce[NONCEBYTES];
	unsigned char		 ct[64], pt[64], rnd[32];
	unsigned long long	 ctlen, ptlen;
	size_t			 i;
	int			 rc;

	for (i = 0; i < NPROFILES; i++) {
		if (child_fork(&c) == 0) {
			if (sodium_init() < 0 || tls_pair_make(&tp) == -1)
				_exit(99);
			child_enter(all_profiles[i]);
			if (RAND_bytes(rnd, sizeof(rnd)) != 1)
				_exit(1);
			randombytes_buf(key, sizeof(key));
			randombytes_buf(nonce, sizeof(nonce));
			if (crypto_aead_xchacha20poly1305_ietf_encrypt(ct,
			    &ctlen, (const unsigned char *)"body", 4, NULL, 0,
			    NULL, nonce, key) != 0)
				_exit(2);
			if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt,
			    &ptlen, NULL, ct, ctlen, NULL, 0, nonce,
			    key) != 0 || ptlen != 4 || memcmp(pt, "body", 4))
				_exit(3);
			if ((rc = tls_handshake(&tp)) != 0)
				_exit(10 + rc);
			_exit(0);
		}
		child_wait(&c);
		expect_exit0(&c);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox_profile_str),
		cmocka_unit_test(test_sandbox_unknown_profile),
		cmocka_unit_test(test_sandbox_base_calls_allowed),
		cmocka_unit_test(test_sandbox_execve_killed),
		cmocka_unit_test(test_sandbox_openat_killed),
		cmocka_unit_test(test_sandbox_fork_killed),
		cmocka_unit_test(test_sandbox_socket_inet_smtpd_killed),
		cmocka_unit_test(test_sandbox_socket_unix_allowed),
		cmocka_unit_test(test_sandbox_socket_inet_deliverd_allowed),
		cmocka_unit_test(test_sandbox_socket_raw_deliverd_killed),
		cmocka_unit_test(test_sandbox_socket_redis_profiles),
		cmocka_unit_test(test_sandbox_smtpd_accept),
		cmocka_unit_test(test_sandbox_queued_accept),
		cmocka_unit_test(test_sandbox_kill_other_killed),
		cmocka_unit_test(test_sandbox_ioctl_filtered),
		cmocka_unit_test(test_sandbox_exec_memory_killed),
		cmocka_unit_test(test_sandbox_setuid_killed),
		cmocka_unit_test(test_sandbox_ptrace_killed),
		cmocka_unit_test(test_sandbox_threads_allowed),
		cmocka_unit_test(test_sandbox_threads_smtpd_killed),
		cmocka_unit_test(test_sandbox_proc_status),
		cmocka_unit_test(test_sandbox_memfd_queued),
		cmocka_unit_test(test_sandbox_memfd_smtpd_killed),
		cmocka_unit_test(test_sandbox_unnamed_call),
		cmocka_unit_test(test_sandbox_thread_trap_kills_process),
		cmocka_unit_test(test_sandbox_tsync_existing_thread),
		cmocka_unit_test(test_sandbox_libevent_smtpd),
		cmocka_unit_test(test_sandbox_libevent_authd),
		cmocka_unit_test(test_sandbox_libevent_queued),
		cmocka_unit_test(test_sandbox_libevent_deliverd),
		cmocka_unit_test(test_sandbox_libevent_test),
		cmocka_unit_test(test_sandbox_crypto_libraries),
		cmocka_unit_test(test_sandbox_hiredis),
		cmocka_unit_test(test_sandbox_cares_deliverd),
	};

	log_init("test_sandbox", LOG_F_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
