/*
 * sandbox.c - one seccomp allow-list per process kind (libseccomp)
 *
 * Everything a process needs from the file system (certificates, keys,
 * the CA store, resolv.conf, the time zone) is loaded before the filter
 * goes on; after it no profile can open, exec, fork, trace, mount or
 * change ids.  A call outside the list traps (SIGSYS); the handler names
 * the call on stderr and dies of SIGSYS, so sluiced logs the cause.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "sandbox.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP	1	/* si_code of a seccomp SIGSYS (asm-generic) */
#endif
#ifndef CLONE_THREAD
#define CLONE_THREAD	0x00010000
#endif

/* the socket type without SOCK_NONBLOCK/SOCK_CLOEXEC */
#define SANDBOX_SOCK_TYPE_MASK	0xf

/* one bit per profile */
#define SB_SMTPD	(1U << SANDBOX_SMTPD)
#define SB_AUTHD	(1U << SANDBOX_AUTHD)
#define SB_QUEUED	(1U << SANDBOX_QUEUED)
#define SB_DELIVERD	(1U << SANDBOX_DELIVERD)
#define SB_TEST		(1U << SANDBOX_TEST)
#define SB_ALL		(SB_SMTPD | SB_AUTHD | SB_QUEUED | SB_DELIVERD | \
			    SB_TEST)
#define SB_THREADS	(SB_AUTHD | SB_QUEUED)
#define SB_INET		(SB_AUTHD | SB_QUEUED | SB_DELIVERD)

struct sandbox_call {
	const char	*name;
	unsigned int	 profiles;
};

struct sandbox_name {
	int		 nr;
	const char	*name;
};

static void	sandbox_sigsys(int, siginfo_t *, void *);
static size_t	sandbox_fmt_str(char *, size_t, size_t, const char *);
static size_t	sandbox_fmt_uint(char *, size_t, size_t, unsigned long);
static const char *sandbox_nr_name(int);
static struct scmp_arg_cmp sandbox_arg(unsigned int, enum scmp_compare,
		    scmp_datum_t, scmp_datum_t);
static int	sandbox_rule(scmp_filter_ctx, enum sandbox_profile, uint32_t,
		    const char *, unsigned int, const struct scmp_arg_cmp *);
static int	sandbox_plain_rules(scmp_filter_ctx, enum sandbox_profile);
static int	sandbox_arg_rules(scmp_filter_ctx, enum sandbox_profile);
static int	sandbox_socket_rules(scmp_filter_ctx, enum sandbox_profile);

/*
 * System calls allowed without looking at their arguments.  Names that
 * do not exist on the running architecture (the *64 and *_time64 forms
 * of 32-bit ports, legacy calls of x86) are skipped.
 */
static const struct sandbox_call sandbox_calls[] = {
	/* descriptors the process already holds */
	{ "read",			SB_ALL },
	{ "readv",			SB_ALL },
	{ "pread64",			SB_ALL },
	{ "write",			SB_ALL },
	{ "writev",			SB_ALL },
	{ "lseek",			SB_ALL },
	{ "_llseek",			SB_ALL },
	{ "close",			SB_ALL },
	{ "dup",			SB_ALL },
	{ "dup2",			SB_ALL },
	{ "dup3",			SB_ALL },
	{ "fcntl",			SB_ALL },	/* incl. F_ADD_SEALS */
	{ "fcntl64",			SB_ALL },
	/* glibc 2.33+ implements fstat(2) as fstatat(fd, "", AT_EMPTY_PATH) */
	{ "fstat",			SB_ALL },
	{ "fstat64",			SB_ALL },
	{ "newfstatat",			SB_ALL },
	{ "fstatat64",			SB_ALL },
	{ "pipe",			SB_ALL },
	{ "pipe2",			SB_ALL },
	{ "eventfd2",			SB_ALL },

	/* memory (mmap and mprotect are in sandbox_arg_rules) */
	{ "brk",			SB_ALL },
	{ "munmap",			SB_ALL },
	{ "mremap",			SB_ALL },
	{ "madvise",			SB_ALL },	/* stacks, free() */
	{ "mlock",			SB_ALL },	/* sodium_malloc */
	{ "munlock",			SB_ALL },

	/* threads and the C library's own bookkeeping */
	{ "futex",			SB_ALL },
	{ "futex_time64",		SB_ALL },
	{ "set_robust_list",		SB_ALL },
	{ "rseq",			SB_ALL },
	{ "restart_syscall",		SB_ALL },
	{ "exit",			SB_ALL },
	{ "exit_group",			SB_ALL },
	{ "getpid",			SB_ALL },
	{ "gettid",			SB_ALL },
	{ "getppid",			SB_ALL },
	{ "getuid",			SB_ALL },
	{ "geteuid",			SB_ALL },
	{ "getgid",			SB_ALL },
	{ "getegid",			SB_ALL },
	{ "uname",			SB_ALL },
	{ "sysinfo",			SB_ALL },
	{ "getrlimit",			SB_ALL },
	{ "ugetrlimit",			SB_ALL },
	{ "sched_getaffinity",		SB_ALL },	/* malloc arenas */
	{ "sched_yield",		SB_ALL },
	{ "getcpu",			SB_ALL },
	{ "getrandom",			SB_ALL },	/* libsodium, OpenSSL */

	/* signals: libevent, the SIGSYS handler itself, abort() */
	{ "rt_sigaction",		SB_ALL },
	{ "rt_sigprocmask",		SB_ALL },
	{ "rt_sigreturn",		SB_ALL },
	{ "sigaltstack",		SB_ALL },

	/* time (normally the vDSO; these are its fallbacks) */
	{ "clock_gettime",		SB_ALL },
	{ "clock_gettime64",		SB_ALL },
	{ "clock_getres",		SB_ALL },
	{ "gettimeofday",		SB_ALL },
	{ "time",			SB_ALL },
	{ "clock_nanosleep",		SB_ALL },
	{ "clock_nanosleep_time64",	SB_ALL },
	{ "nanosleep",			SB_ALL },
	{ "timerfd_create",		SB_ALL },
	{ "timerfd_settime",		SB_ALL },
	{ "timerfd_settime64",		SB_ALL },
	{ "timerfd_gettime",		SB_ALL },
	{ "timerfd_gettime64",		SB_ALL },

	/* the event loop */
	{ "poll",			SB_ALL },
	{ "ppoll",			SB_ALL },
	{ "ppoll_time64",		SB_ALL },
	{ "epoll_create",		SB_ALL },
	{ "epoll_create1",		SB_ALL },
	{ "epoll_ctl",			SB_ALL },
	{ "epoll_wait",			SB_ALL },
	{ "epoll_pwait",		SB_ALL },
	{ "epoll_pwait2",		SB_ALL },

	/*
	 * Sockets.  connect is safe for every profile because socket()
	 * is filtered by family: smtpd can only make AF_UNIX sockets
	 * (syslog reconnecting) and lives in an empty chroot; connect on
	 * the listeners or on accepted sockets fails with EISCONN.
	 */
	{ "sendmsg",			SB_ALL },	/* IPC, SCM_RIGHTS */
	{ "recvmsg",			SB_ALL },
	{ "sendto",			SB_ALL },	/* send(2), syslog */
	{ "recvfrom",			SB_ALL },	/* recv(2) */
	{ "send",			SB_ALL },
	{ "recv",			SB_ALL },
	{ "connect",			SB_ALL },
	{ "getsockopt",			SB_ALL },
	{ "setsockopt",			SB_ALL },
	{ "getsockname",		SB_ALL },
	{ "getpeername",		SB_ALL },
	{ "shutdown",			SB_ALL },

	/* per profile */
	{ "accept",			SB_SMTPD | SB_QUEUED },	/* metrics */
	{ "accept4",			SB_SMTPD | SB_QUEUED },
	{ "memfd_create",		SB_QUEUED },	/* message bodies */
	{ "ftruncate",			SB_QUEUED },
	{ "bind",			SB_DELIVERD },	/* c-ares */
};

/*
 * Names for the SIGSYS message.  The handler cannot call into
 * libseccomp (it allocates), so it looks numbers up here: the calls a
 * compromised or misbehaving process is likely to try, and those whose
 * arguments are filtered.
 */
static const struct sandbox_name sandbox_names[] = {
#ifdef __NR_open
	{ __NR_open,		"open" },
#endif
#ifdef __NR_openat
	{ __NR_openat,		"openat" },
#endif
#ifdef __NR_openat2
	{ __NR_openat2,		"openat2" },
#endif
#ifdef __NR_creat
	{ __NR_creat,		"creat" },
#endif
#ifdef __NR_stat
	{ __NR_stat,		"stat" },
#endif
#ifdef __NR_lstat
	{ __NR_lstat,		"lstat" },
#endif
#ifdef __NR_statx
	{ __NR_statx,		"statx" },
#endif
#ifdef __NR_access
	{ __NR_access,		"access" },
#endif
#ifdef __NR_faccessat
	{ __NR_faccessat,	"faccessat" },
#endif
#ifdef __NR_faccessat2
	{ __NR_faccessat2,	"faccessat2" },
#endif
#ifdef __NR_readlink
	{ __NR_readlink,	"readlink" },
#endif
#ifdef __NR_readlinkat
	{ __NR_readlinkat,	"readlinkat" },
#endif
#ifdef __NR_getdents64
	{ __NR_getdents64,	"getdents64" },
#endif
#ifdef __NR_unlink
	{ __NR_unlink,		"unlink" },
#endif
#ifdef __NR_unlinkat
	{ __NR_unlinkat,	"unlinkat" },
#endif
#ifdef __NR_rename
	{ __NR_rename,		"rename" },
#endif
#ifdef __NR_renameat2
	{ __NR_renameat2,	"renameat2" },
#endif
#ifdef __NR_mkdir
	{ __NR_mkdir,		"mkdir" },
#endif
#ifdef __NR_mkdirat
	{ __NR_mkdirat,		"mkdirat" },
#endif
#ifdef __NR_chmod
	{ __NR_chmod,		"chmod" },
#endif
#ifdef __NR_fchmod
	{ __NR_fchmod,		"fchmod" },
#endif
#ifdef __NR_chown
	{ __NR_chown,		"chown" },
#endif
#ifdef __NR_fchown
	{ __NR_fchown,		"fchown" },
#endif
#ifdef __NR_ftruncate
	{ __NR_ftruncate,	"ftruncate" },
#endif
#ifdef __NR_fsync
	{ __NR_fsync,		"fsync" },
#endif
#ifdef __NR_fdatasync
	{ __NR_fdatasync,	"fdatasync" },
#endif
#ifdef __NR_execve
	{ __NR_execve,		"execve" },
#endif
#ifdef __NR_execveat
	{ __NR_execveat,	"execveat" },
#endif
#ifdef __NR_fork
	{ __NR_fork,		"fork" },
#endif
#ifdef __NR_vfork
	{ __NR_vfork,		"vfork" },
#endif
#ifdef __NR_clone
	{ __NR_clone,		"clone" },
#endif
#ifdef __NR_clone3
	{ __NR_clone3,		"clone3" },
#endif
#ifdef __NR_wait4
	{ __NR_wait4,		"wait4" },
#endif
#ifdef __NR_waitid
	{ __NR_waitid,		"waitid" },
#endif
#ifdef __NR_kill
	{ __NR_kill,		"kill" },
#endif
#ifdef __NR_tkill
	{ __NR_tkill,		"tkill" },
#endif
#ifdef __NR_tgkill
	{ __NR_tgkill,		"tgkill" },
#endif
#ifdef __NR_ptrace
	{ __NR_ptrace,		"ptrace" },
#endif
#ifdef __NR_process_vm_readv
	{ __NR_process_vm_readv, "process_vm_readv" },
#endif
#ifdef __NR_process_vm_writev
	{ __NR_process_vm_writev, "process_vm_writev" },
#endif
#ifdef __NR_prctl
	{ __NR_prctl,		"prctl" },
#endif
#ifdef __NR_seccomp
	{ __NR_seccomp,		"seccomp" },
#endif
#ifdef __NR_bpf
	{ __NR_bpf,		"bpf" },
#endif
#ifdef __NR_perf_event_open
	{ __NR_perf_event_open,	"perf_event_open" },
#endif
#ifdef __NR_mount
	{ __NR_mount,		"mount" },
#endif
#ifdef __NR_umount2
	{ __NR_umount2,		"umount2" },
#endif
#ifdef __NR_pivot_root
	{ __NR_pivot_root,	"pivot_root" },
#endif
#ifdef __NR_chroot
	{ __NR_chroot,		"chroot" },
#endif
#ifdef __NR_chdir
	{ __NR_chdir,		"chdir" },
#endif
#ifdef __NR_unshare
	{ __NR_unshare,		"unshare" },
#endif
#ifdef __NR_setns
	{ __NR_setns,		"setns" },
#endif
#ifdef __NR_init_module
	{ __NR_init_module,	"init_module" },
#endif
#ifdef __NR_finit_module
	{ __NR_finit_module,	"finit_module" },
#endif
#ifdef __NR_kexec_load
	{ __NR_kexec_load,	"kexec_load" },
#endif
#ifdef __NR_kexec_file_load
	{ __NR_kexec_file_load,	"kexec_file_load" },
#endif
#ifdef __NR_reboot
	{ __NR_reboot,		"reboot" },
#endif
#ifdef __NR_setuid
	{ __NR_setuid,		"setuid" },
#endif
#ifdef __NR_setgid
	{ __NR_setgid,		"setgid" },
#endif
#ifdef __NR_setreuid
	{ __NR_setreuid,	"setreuid" },
#endif
#ifdef __NR_setregid
	{ __NR_setregid,	"setregid" },
#endif
#ifdef __NR_setresuid
	{ __NR_setresuid,	"setresuid" },
#endif
#ifdef __NR_setresgid
	{ __NR_setresgid,	"setresgid" },
#endif
#ifdef __NR_setgroups
	{ __NR_setgroups,	"setgroups" },
#endif
#ifdef __NR_setfsuid
	{ __NR_setfsuid,	"setfsuid" },
#endif
#ifdef __NR_capset
	{ __NR_capset,		"capset" },
#endif
#ifdef __NR_socket
	{ __NR_socket,		"socket" },
#endif
#ifdef __NR_socketpair
	{ __NR_socketpair,	"socketpair" },
#endif
#ifdef __NR_bind
	{ __NR_bind,		"bind" },
#endif
#ifdef __NR_listen
	{ __NR_listen,		"listen" },
#endif
#ifdef __NR_accept
	{ __NR_accept,		"accept" },
#endif
#ifdef __NR_accept4
	{ __NR_accept4,		"accept4" },
#endif
#ifdef __NR_sendmmsg
	{ __NR_sendmmsg,	"sendmmsg" },
#endif
#ifdef __NR_recvmmsg
	{ __NR_recvmmsg,	"recvmmsg" },
#endif
#ifdef __NR_ioctl
	{ __NR_ioctl,		"ioctl" },
#endif
#ifdef __NR_mmap
	{ __NR_mmap,		"mmap" },
#endif
#ifdef __NR_mmap2
	{ __NR_mmap2,		"mmap2" },
#endif
#ifdef __NR_mprotect
	{ __NR_mprotect,	"mprotect" },
#endif
#ifdef __NR_pkey_mprotect
	{ __NR_pkey_mprotect,	"pkey_mprotect" },
#endif
#ifdef __NR_memfd_create
	{ __NR_memfd_create,	"memfd_create" },
#endif
#ifdef __NR_prlimit64
	{ __NR_prlimit64,	"prlimit64" },
#endif
#ifdef __NR_setrlimit
	{ __NR_setrlimit,	"setrlimit" },
#endif
#ifdef __NR_select
	{ __NR_select,		"select" },
#endif
#ifdef __NR_pselect6
	{ __NR_pselect6,	"pselect6" },
#endif
#ifdef __NR_inotify_init1
	{ __NR_inotify_init1,	"inotify_init1" },
#endif
#ifdef __NR_signalfd4
	{ __NR_signalfd4,	"signalfd4" },
#endif
#ifdef __NR_io_uring_setup
	{ __NR_io_uring_setup,	"io_uring_setup" },
#endif
#ifdef __NR_userfaultfd
	{ __NR_userfaultfd,	"userfaultfd" },
#endif
#ifdef __NR_keyctl
	{ __NR_keyctl,		"keyctl" },
#endif
#ifdef __NR_add_key
	{ __NR_add_key,		"add_key" },
#endif
#ifdef __NR_personality
	{ __NR_personality,	"personality" },
#endif
#ifdef __NR_arch_prctl
	{ __NR_arch_prctl,	"arch_prctl" },
#endif
#ifdef __NR_iopl
	{ __NR_iopl,		"iopl" },
#endif
#ifdef __NR_ioperm
	{ __NR_ioperm,		"ioperm" },
#endif
#ifdef __NR_syslog
	{ __NR_syslog,		"syslog" },
#endif
#ifdef __NR_getdents
	{ __NR_getdents,	"getdents" },
#endif
};

/* sandbox_profile_str - the profile's name, for logs */
const char *
sandbox_profile_str(enum sandbox_profile profile)
{
	switch (profile) {
	case SANDBOX_SMTPD:
		return "smtpd";
	case SANDBOX_AUTHD:
		return "authd";
	case SANDBOX_QUEUED:
		return "queued";
	case SANDBOX_DELIVERD:
		return "deliverd";
	case SANDBOX_TEST:
		return "test";
	}
	return "unknown";
}

/* sandbox_fmt_str - append a string to buf; async-signal-safe */
static size_t
sandbox_fmt_str(char *buf, size_t len, size_t off, const char *s)
{
	while (*s != '\0' && off + 1 < len)
		buf[off++] = *s++;
	return off;
}

/* sandbox_fmt_uint - append a decimal number to buf; async-signal-safe */
static size_t
sandbox_fmt_uint(char *buf, size_t len, size_t off, unsigned long v)
{
	char	 digits[24];
	size_t	 n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && n < sizeof(digits));
	while (n > 0 && off + 1 < len)
		buf[off++] = digits[--n];
	return off;
}

/* sandbox_nr_name - a system call's name from the static table, or NULL */
static const char *
sandbox_nr_name(int nr)
{
	size_t	 i;

	for (i = 0; i < sizeof(sandbox_names) / sizeof(sandbox_names[0]); i++)
		if (sandbox_names[i].nr == nr)
			return sandbox_names[i].name;
	return NULL;
}

/*
 * sandbox_sigsys - a call outside the list: say which, then die of
 * SIGSYS so the parent's wait status shows the cause.  Only
 * async-signal-safe calls here, and only ones every profile allows.
 */
static void
sandbox_sigsys(int sig, siginfo_t *si, void *uctx)
{
	struct sigaction	 sa;
	sigset_t		 set;
	const char		*name;
	char			 msg[128];
	size_t			 off = 0;
	ssize_t			 w;

	(void)uctx;
	off = sandbox_fmt_str(msg, sizeof(msg), off,
	    "sandbox: blocked system call ");
	if (si != NULL && si->si_code == SYS_SECCOMP) {
		off = sandbox_fmt_uint(msg, sizeof(msg), off,
		    (unsigned long)(unsigned int)si->si_syscall);
		if ((name = sandbox_nr_name(si->si_syscall)) != NULL) {
			off = sandbox_fmt_str(msg, sizeof(msg), off, " (");
			off = sandbox_fmt_str(msg, sizeof(msg), off, name);
			off = sandbox_fmt_str(msg, sizeof(msg), off, ")");
		}
	} else
		off = sandbox_fmt_str(msg, sizeof(msg), off, "(unknown)");
	msg[off++] = '\n';
	w = write(STDERR_FILENO, msg, off);
	(void)w;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	_exit(128 + sig);
}

/*
 * sandbox_arg - one argument comparison, every field set (libseccomp's
 * SCMP_A* macros leave datum_b to the compiler's zero fill).
 */
static struct scmp_arg_cmp
sandbox_arg(unsigned int arg, enum scmp_compare op, scmp_datum_t a,
    scmp_datum_t b)
{
	struct scmp_arg_cmp	 c;

	c.arg = arg;
	c.op = op;
	c.datum_a = a;
	c.datum_b = b;
	return c;
}

/*
 * sandbox_rule - add one rule; a name this architecture does not have
 * (libseccomp gives a negative pseudo number or __NR_SCMP_ERROR) is
 * skipped, anything else that fails is an error.
 */
static int
sandbox_rule(scmp_filter_ctx ctx, enum sandbox_profile profile,
    uint32_t action, const char *name, unsigned int nargs,
    const struct scmp_arg_cmp *args)
{
	int	 nr, rc;

	if ((nr = seccomp_syscall_resolve_name(name)) < 0) {
		log_debug("sandbox: %s: no system call %s here, skipped",
		    sandbox_profile_str(profile), name);
		return 0;
	}
	if ((rc = seccomp_rule_add_array(ctx, action, nr, nargs, args)) < 0) {
		log_warnx("sandbox: %s: seccomp_rule_add %s: %s",
		    sandbox_profile_str(profile), name, strerror(-rc));
		return -1;
	}
	return 0;
}

/* sandbox_plain_rules - the calls allowed whatever their arguments */
static int
sandbox_plain_rules(scmp_filter_ctx ctx, enum sandbox_profile profile)
{
	unsigned int	 bit = 1U << profile;
	size_t		 i;

	for (i = 0; i < sizeof(sandbox_calls) / sizeof(sandbox_calls[0]);
	    i++) {
		if (!(sandbox_calls[i].profiles & bit))
			continue;
		if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW,
		    sandbox_calls[i].name, 0, NULL) == -1)
			return -1;
	}
	return 0;
}

/* sandbox_socket_rules - which sockets each profile may create */
static int
sandbox_socket_rules(scmp_filter_ctx ctx, enum sandbox_profile profile)
{
	static const int	 inet[] = { AF_INET, AF_INET6 };
	unsigned int		 bit = 1U << profile;
	struct scmp_arg_cmp	 a[2];
	size_t			 i;

	/*
	 * AF_UNIX everywhere: syslog reconnects with socket+connect, and
	 * libevent makes a socketpair for its signal events.
	 */
	a[0] = sandbox_arg(0, SCMP_CMP_EQ, AF_UNIX, 0);
	if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "socket", 1, a) == -1 ||
	    sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "socketpair", 1,
	    a) == -1)
		return -1;

	for (i = 0; i < sizeof(inet) / sizeof(inet[0]); i++) {
		a[0] = sandbox_arg(0, SCMP_CMP_EQ, (scmp_datum_t)inet[i], 0);
		/* TCP: Redis for authd and queued, SMTP for deliverd */
		if (bit & SB_INET) {
			a[1] = sandbox_arg(1, SCMP_CMP_MASKED_EQ,
			    SANDBOX_SOCK_TYPE_MASK, SOCK_STREAM);
			if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW,
			    "socket", 2, a) == -1)
				return -1;
		}
		/* UDP: DNS through c-ares */
		if (bit & SB_DELIVERD) {
			a[1] = sandbox_arg(1, SCMP_CMP_MASKED_EQ,
			    SANDBOX_SOCK_TYPE_MASK, SOCK_DGRAM);
			if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW,
			    "socket", 2, a) == -1)
				return -1;
		}
	}
	return 0;
}

/* sandbox_arg_rules - the calls allowed only with certain arguments */
static int
sandbox_arg_rules(scmp_filter_ctx ctx, enum sandbox_profile profile)
{
	static const char	*mem[] = { "mmap", "mmap2", "mprotect" };
	unsigned int		 bit = 1U << profile;
	struct scmp_arg_cmp	 a[1];
	size_t			 i;

	/*
	 * Memory, but never executable: every library is mapped before
	 * the filter goes on, and W^X leaves injected code nowhere to run.
	 */
	a[0] = sandbox_arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	for (i = 0; i < sizeof(mem) / sizeof(mem[0]); i++)
		if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, mem[i], 1,
		    a) == -1)
			return -1;

	/* ioctl: what libevent and c-ares use, nothing else */
	a[0] = sandbox_arg(1, SCMP_CMP_EQ, FIONREAD, 0);
	if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "ioctl", 1, a) == -1)
		return -1;
	a[0] = sandbox_arg(1, SCMP_CMP_EQ, FIONBIO, 0);
	if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "ioctl", 1, a) == -1)
		return -1;
	/* isatty() from stdio: "not a terminal" is the right answer */
	a[0] = sandbox_arg(1, SCMP_CMP_EQ, TCGETS, 0);
	if (sandbox_rule(ctx, profile, SCMP_ACT_ERRNO(ENOTTY), "ioctl", 1,
	    a) == -1)
		return -1;

	/*
	 * Signals only to ourselves: raise() and abort() use tgkill with
	 * our own pid.  The filter is built in the process it confines,
	 * and fork is forbidden, so getpid() stays right.
	 */
	a[0] = sandbox_arg(0, SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0);
	if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "kill", 1, a) == -1 ||
	    sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "tgkill", 1, a) == -1)
		return -1;

	/* getrlimit() is prlimit64(0, res, NULL, old): reading only */
	a[0] = sandbox_arg(2, SCMP_CMP_EQ, 0, 0);
	if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "prlimit64", 1,
	    a) == -1)
		return -1;

	if (bit & SB_THREADS) {
		/*
		 * Threads, never processes.  clone3 keeps its flags in
		 * memory, out of the filter's reach, so it answers ENOSYS
		 * and glibc falls back to clone(2), whose flags we can
		 * check.  CLONE_THREAD implies CLONE_VM and CLONE_SIGHAND.
		 */
#if defined(__s390__) || defined(__s390x__)
		a[0] = sandbox_arg(1, SCMP_CMP_MASKED_EQ, CLONE_THREAD,
		    CLONE_THREAD);
#else
		a[0] = sandbox_arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD,
		    CLONE_THREAD);
#endif
		if (sandbox_rule(ctx, profile, SCMP_ACT_ALLOW, "clone", 1,
		    a) == -1 ||
		    sandbox_rule(ctx, profile, SCMP_ACT_ERRNO(ENOSYS),
		    "clone3", 0, NULL) == -1)
			return -1;
	}
	return sandbox_socket_rules(ctx, profile);
}

/* sandbox_apply - no_new_privs, the SIGSYS handler, then the filter */
int
sandbox_apply(enum sandbox_profile profile)
{
	struct sigaction	 sa;
	scmp_filter_ctx		 ctx;
	const char		*pname = sandbox_profile_str(profile);
	int			 rc;

	switch (profile) {
	case SANDBOX_SMTPD:
	case SANDBOX_AUTHD:
	case SANDBOX_QUEUED:
	case SANDBOX_DELIVERD:
	case SANDBOX_TEST:
		break;
	default:
		log_warnx("sandbox: unknown profile %d", (int)profile);
		return -1;
	}

	/* the first local time read opens /etc/localtime; do it now */
	tzset();
	if (proc_no_new_privs() == -1)
		return -1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sandbox_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		log_warn("sandbox: %s: sigaction SIGSYS", pname);
		return -1;
	}

	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL) {
		log_warnx("sandbox: %s: seccomp_init failed", pname);
		return -1;
	}
	/*
	 * A foreign ABI (int 0x80, x32) would dodge the rules written for
	 * the native one: kill the whole process, not just the thread.
	 * TSYNC puts threads started before us under the filter too.
	 */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		log_warnx("sandbox: %s: seccomp_attr_set: %s", pname,
		    strerror(-rc));
		goto fail;
	}
	if (sandbox_plain_rules(ctx, profile) == -1 ||
	    sandbox_arg_rules(ctx, profile) == -1)
		goto fail;
	if ((rc = seccomp_load(ctx)) < 0) {
		log_warnx("sandbox: %s: seccomp_load: %s", pname,
		    strerror(-rc));
		goto fail;
	}
	seccomp_release(ctx);
	return 0;

fail:
	seccomp_release(ctx);
	return -1;
}
