/*
 * sluiced - the sluice master: the only process that runs as root
 *
 * It validates the configuration, binds the listeners, starts the
 * private redis-server when asked to, and fork+execs every child with
 * its descriptors; then it supervises them, reloads on SIGHUP and stops
 * everything in order on SIGTERM.  It never reads from the network.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "compat/compat.h"
#include "conf.h"
#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "xmalloc.h"

static struct sluiced	 sluiced_state;
struct sluiced		*sd = &sluiced_state;

static int		 pid_fd = -1;

static void	usage(void) __attribute__((noreturn));
static void	sluiced_check_only(void);
static void	sluiced_programs(void);
static void	sluiced_users(void);
static void	sluiced_dirs(void);
static void	sluiced_pidfile(void);
static void	sluiced_pidfile_write(void);
static void	sluiced_daemonize(void);
static void	sluiced_signals(void);
static void	sluiced_on_signal(evutil_socket_t, short, void *);
static void	sluiced_reap(void);
static void	sluiced_reload(void);
static void	sluiced_shutdown(int);
static int	sluiced_reload_compatible(const struct conf *,
		    const struct conf *, char *, size_t);
static void	sluiced_mkdir(const char *, mode_t, uid_t, gid_t);
static int	memfd_open(const char *);
static int	memfd_seal(int, const char *);

static void
usage(void)
{
	fprintf(stderr, "usage: sluiced [-dfn] [-c file] [-x libexecdir]\n"
	    "       sluiced -V\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	char	 err[1024];
	int	 ch, check = 0;

	sd->conf_path = CONF_DEFAULT_FILE;
	sd->libexec = LIBEXECDIR;
	sd->daemon_pipe = -1;
	while ((ch = getopt(argc, argv, "c:dfnx:V")) != -1) {
		switch (ch) {
		case 'c':
			sd->conf_path = optarg;
			break;
		case 'd':
			sd->debug = 1;
			sd->foreground = 1;
			break;
		case 'f':
			sd->foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'x':
			sd->libexec = optarg;
			break;
		case 'V':
			printf("sluiced %s\n", SLUICE_VERSION);
			exit(0);
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	/*
	 * Configuration errors go to stderr as "FILE:LINE: ..." with
	 * nothing in front, so editors and scripts can jump to them.
	 */
	log_init("sluiced", LOG_F_NOSYSLOG | LOG_F_STDERR);
	if ((sd->conf = conf_load(sd->conf_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	if (check)
		sluiced_check_only();

	log_init("sluiced", (sd->foreground ? LOG_F_STDERR : 0) |
	    (sd->debug ? LOG_F_DEBUG : 0));
	if (sodium_init() == -1)
		fatalx("sodium_init failed");
	sd->as_root = geteuid() == 0;
	sluiced_programs();
	sluiced_users();
	sluiced_dirs();
	if (tls_setup(sd->conf, &sd->tls_pem, &sd->tls_pem_len, err,
	    sizeof(err)) == -1)
		fatalx("%s", err);
	/* before binding: a second sluiced says "already running" */
	sluiced_pidfile();
	sd->nlisten = sd->conf->nlisten;
	if (listeners_open(sd->conf, &sd->listen_fds, err, sizeof(err)) == -1)
		fatalx("%s", err);

	if (!sd->foreground) {
		sluiced_daemonize();
		sluiced_pidfile_write();	/* the lock came along */
	}
	signal(SIGPIPE, SIG_IGN);
	if ((sd->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	sluiced_signals();

	log_info("sluice %s starting: %zu listener(s), %d smtpd, %d deliverd, "
	    "redis %s", SLUICE_VERSION, sd->conf->nlisten,
	    sd->conf->smtpd_processes, sd->conf->delivery.workers,
	    sd->conf->redis.embedded ? "embedded" : sd->conf->redis.address);
	if (sd->conf->redis.embedded && redis_embed_start() == -1)
		fatalx("cannot start the embedded redis-server");

	children_init();
	children_start_all();
	event_base_dispatch(sd->base);

	if (pid_fd != -1)
		unlink(sd->conf->pid_file);
	log_info("sluice stopped");
	return 0;
}

/* sluiced_check_only - -n: the file is valid; say so and stop */
static void
sluiced_check_only(void)
{
	char	 err[1024];

	/* the real start checks them in tls_setup(), which also writes */
	if (tls_check_files(sd->conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	fprintf(stderr, "%s: configuration OK\n", sd->conf_path);
	conf_free(sd->conf);
	exit(0);
}

/* sluiced_programs - every child can be exec'd: say so now, not in a loop */
static void
sluiced_programs(void)
{
	enum ipc_proc	 k;
	char		*path;

	for (k = PROC_SMTPD; k < PROC_COUNT; k++) {
		xasprintf(&path, "%s/%s", sd->libexec, ipc_proc_str(k));
		if (access(path, X_OK) == -1)
			fatal("cannot run %s (use -x to name the directory "
			    "of the children)", path);
		free(path);
	}
}

/*
 * sluiced_users - resolve every account now, while /etc/passwd is
 * readable; a missing one stops the start with a line naming it.
 */
static void
sluiced_users(void)
{
	static const struct {
		enum ipc_proc	 kind;
		const char	*key;
		size_t		 off;
	} accounts[] = {
		{ PROC_SMTPD, "users.smtpd", offsetof(struct conf, users.smtpd) },
		{ PROC_AUTHD, "users.authd", offsetof(struct conf, users.authd) },
		{ PROC_QUEUED, "users.queued", offsetof(struct conf, users.queued) },
		{ PROC_DELIVERD, "users.deliverd",
		    offsetof(struct conf, users.deliverd) },
	};
	char	 err[256];
	size_t	 i;

	if (!sd->as_root) {
		log_info("not running as root: every process keeps uid %ld, "
		    "without chroot", (long)getuid());
		return;
	}
	for (i = 0; i < sizeof(accounts) / sizeof(accounts[0]); i++) {
		const char *name = *(char **)(void *)((char *)sd->conf +
		    accounts[i].off);

		if (proc_lookup_user(name, &sd->users[accounts[i].kind], err,
		    sizeof(err)) == -1)
			fatalx("%s (%s); create the accounts with "
			    "systemd-sysusers or scripts/mkusers", err,
			    accounts[i].key);
		if (sd->users[accounts[i].kind].uid == 0)
			fatalx("%s: %s must not be root", accounts[i].key, name);
	}
	if (sd->conf->redis.embedded) {
		if (proc_lookup_user(sd->conf->users.redis, &sd->redis_user,
		    err, sizeof(err)) == -1)
			fatalx("%s (users.redis); create the accounts with "
			    "systemd-sysusers or scripts/mkusers", err);
		/* authd and queued may reach the socket through its group */
		sd->users[PROC_AUTHD].extra_gid = sd->redis_user.gid;
		sd->users[PROC_QUEUED].extra_gid = sd->redis_user.gid;
	}
}

static void
sluiced_mkdir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat	 st;

	if (mkdir(path, mode) == -1 && errno != EEXIST)
		fatal("mkdir %s", path);
	if (stat(path, &st) == -1)
		fatal("stat %s", path);
	if (!S_ISDIR(st.st_mode))
		fatalx("%s: not a directory", path);
	if (sd->as_root && (st.st_uid != uid || st.st_gid != gid) &&
	    chown(path, uid, gid) == -1)
		fatal("chown %s", path);
	if ((st.st_mode & 07777) != mode && chmod(path, mode) == -1)
		fatal("chmod %s", path);
}

/*
 * sluiced_dirs - state_dir and what lives in it.  As root, state_dir is
 * 0711: the unprivileged redis-server and its clients must traverse it
 * to reach redis/, which carries its own 0750; nobody can list it.
 */
static void
sluiced_dirs(void)
{
	const struct conf	*c = sd->conf;
	char			*p;

	sluiced_mkdir(c->state_dir, sd->as_root ? 0711 : 0700, 0, 0);
	xasprintf(&sd->empty_dir, "%s/empty", c->state_dir);
	sluiced_mkdir(sd->empty_dir, 0755, 0, 0);
	xasprintf(&p, "%s/tls", c->state_dir);
	sluiced_mkdir(p, 0700, 0, 0);
	free(p);
	if (c->redis.embedded) {
		xasprintf(&p, "%s/redis", c->state_dir);
		sluiced_mkdir(p, 0750, sd->redis_user.uid, sd->redis_user.gid);
		free(p);
	}
}

/*
 * sluiced_pidfile - write our pid under an exclusive lock that lives as
 * long as we do, so a second sluiced on the same file refuses to start.
 */
static void
sluiced_pidfile(void)
{
	char	 buf[32];
	ssize_t	 n;
	char	*dir, *slash;

	/* the default lives in a directory of its own, e.g. /run/sluice */
	dir = xstrdup(sd->conf->pid_file);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST)
			fatal("mkdir %s", dir);
	}
	free(dir);
	pid_fd = open(sd->conf->pid_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (pid_fd == -1)
		fatal("pid file %s", sd->conf->pid_file);
	if (flock(pid_fd, LOCK_EX | LOCK_NB) == -1) {
		n = pread(pid_fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fatalx("sluiced is already running (pid %s, pid file %s)",
		    buf[0] ? buf : "?", sd->conf->pid_file);
	}
	sluiced_pidfile_write();
}

static void
sluiced_pidfile_write(void)
{
	char	 buf[32];
	int	 len;

	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(pid_fd, 0) == -1 || pwrite(pid_fd, buf, (size_t)len, 0)
	    != len)
		fatal("pid file %s", sd->conf->pid_file);
}

/*
 * sluiced_daemonize - detach, but let the starting shell learn whether
 * we came up: the parent waits on a pipe for one byte, written once
 * every child is READY, and exits 1 if the pipe closes without it.
 */
static void
sluiced_daemonize(void)
{
	int	 p[2], fd;
	char	 c;
	pid_t	 pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) == 1)
			_exit(0);
		_exit(1);
	}
	close(p[0]);
	sd->daemon_pipe = p[1];
	if (setsid() == -1)
		fatal("setsid");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	/* stderr stays until READY, so start-up errors reach the shell */
}

/* sluiced_children_ready - every child answered READY for the first time */
void
sluiced_children_ready(void)
{
	int	 fd;

	if (sd->ready_sent)
		return;
	sd->ready_sent = 1;
	notify_systemd("READY=1\nSTATUS=accepting mail");
	log_info("sluice ready");
	if (sd->daemon_pipe != -1) {
		(void)!write(sd->daemon_pipe, "", 1);
		close(sd->daemon_pipe);
		sd->daemon_pipe = -1;
		if ((fd = open("/dev/null", O_RDWR)) != -1) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	}
}

static void
sluiced_signals(void)
{
	static const int	 sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT };
	struct event		*ev;
	size_t			 i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ev = evsignal_new(sd->base, sigs[i], sluiced_on_signal, NULL);
		if (ev == NULL || evsignal_add(ev, NULL) == -1)
			fatalx("cannot handle signal %d", sigs[i]);
	}
}

/* sluiced_on_signal - libevent runs this in loop context: real work is fine */
static void
sluiced_on_signal(evutil_socket_t sig, short ev, void *arg)
{
	switch (sig) {
	case SIGCHLD:
		sluiced_reap();
		break;
	case SIGHUP:
		if (!sd->stopping)
			sluiced_reload();
		break;
	case SIGTERM:
	case SIGINT:
		sluiced_shutdown((int)sig);
		break;
	}
}

/* sluiced_reap - collect every child that exited since the last SIGCHLD */
static void
sluiced_reap(void)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == redis_embed_pid())
			redis_embed_reaped(pid, status);
		else
			children_reaped(pid, status);
	}
}

/* sluiced_exit_str - "exited with status N" / "terminated; signal N (NAME)" */
const char *
sluiced_exit_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "terminated; signal %d (%s)%s",
		    WTERMSIG(status), sigabbrev_np(WTERMSIG(status)) ?
		    sigabbrev_np(WTERMSIG(status)) : "?",
		    WTERMSIG(status) == SIGSYS ? ": sandbox violation" : "");
	else
		snprintf(buf, len, "stopped (status %#x)", status);
	return buf;
}

/* sup_backoff - restart delay after n quick exits in a row (seconds) */
double
sup_backoff(int n)
{
	double	 d;

	if (n <= 0)
		return 0;
	d = n >= 7 ? SUP_BACKOFF_MAX : (double)(1 << (n - 1));
	return d > SUP_BACKOFF_MAX ? SUP_BACKOFF_MAX : d;
}

/*
 * sluiced_reload_compatible - what a reload cannot change: sockets are
 * bound and accounts resolved once, as root, at start.
 */
static int
sluiced_reload_compatible(const struct conf *o, const struct conf *n,
    char *err, size_t errlen)
{
	size_t	 i;

	if (o->nlisten != n->nlisten)
		goto listen;
	for (i = 0; i < o->nlisten; i++)
		if (o->listen[i].sslen != n->listen[i].sslen ||
		    memcmp(&o->listen[i].ss, &n->listen[i].ss,
		    o->listen[i].sslen) != 0)
			goto listen;
	if (strcmp(o->state_dir, n->state_dir) != 0) {
		snprintf(err, errlen, "state_dir changed");
		return -1;
	}
	if (strcmp(o->pid_file, n->pid_file) != 0) {
		snprintf(err, errlen, "pid_file changed");
		return -1;
	}
	if (o->redis.embedded != n->redis.embedded) {
		snprintf(err, errlen, "redis.embedded changed");
		return -1;
	}
	if (strcmp(o->users.smtpd, n->users.smtpd) != 0 ||
	    strcmp(o->users.authd, n->users.authd) != 0 ||
	    strcmp(o->users.queued, n->users.queued) != 0 ||
	    strcmp(o->users.deliverd, n->users.deliverd) != 0 ||
	    strcmp(o->users.redis, n->users.redis) != 0) {
		snprintf(err, errlen, "users changed");
		return -1;
	}
	return 0;
 listen:
	snprintf(err, errlen, "listen addresses changed");
	return -1;
}

/*
 * sluiced_reload - SIGHUP: read the file and the certificates again.
 * Anything wrong leaves the running configuration exactly as it was.
 */
static void
sluiced_reload(void)
{
	struct conf	*n, *old;
	char		 err[1024];
	char		*pem = NULL;
	size_t		 pemlen = 0;

	notify_systemd("RELOADING=1");
	log_info("reload: reading %s", sd->conf_path);
	if ((n = conf_load(sd->conf_path, err, sizeof(err))) == NULL)
		goto refused;
	if (sluiced_reload_compatible(sd->conf, n, err, sizeof(err)) == -1) {
		strlcat(err, "; restart sluiced to apply it", sizeof(err));
		goto refused;
	}
	if (tls_setup(n, &pem, &pemlen, err, sizeof(err)) == -1)
		goto refused;

	sodium_memzero(sd->tls_pem, sd->tls_pem_len);
	free(sd->tls_pem);
	sd->tls_pem = pem;
	sd->tls_pem_len = pemlen;
	sd->conf_gen++;
	old = sd->conf;
	sd->conf = n;
	children_reconfigure();
	conf_free(old);
	log_info("reload: configuration %u in effect", sd->conf_gen);
	notify_systemd("READY=1");
	return;
 refused:
	log_warnx("reload: %s; keeping the running configuration", err);
	conf_free(n);
	notify_systemd("READY=1");
}

/* sluiced_shutdown - SIGTERM/SIGINT: children first, redis-server last */
static void
sluiced_shutdown(int sig)
{
	if (sd->stopping) {
		log_info("received %s while stopping; still waiting",
		    sigabbrev_np(sig));
		return;
	}
	sd->stopping = 1;
	notify_systemd("STOPPING=1");
	log_info("received SIG%s; stopping", sigabbrev_np(sig));
	children_stop_all();
	if (children_running() == 0)
		sluiced_all_stopped();
}

/* sluiced_all_stopped - the last child is gone: stop Redis, then exit */
void
sluiced_all_stopped(void)
{
	if (redis_embed_running()) {
		redis_embed_stop();
		return;		/* called again when it has exited */
	}
	event_base_loopexit(sd->base, NULL);
}

/* memfd_open / memfd_seal - a file in memory that nobody can change once sealed */
static int
memfd_open(const char *name)
{
	int	 fd;

	if ((fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) == -1)
		fatal("memfd_create %s", name);
	return fd;
}

static int
memfd_seal(int fd, const char *name)
{
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
	    F_SEAL_SEAL) == -1)
		fatal("seal %s", name);
	return fd;
}

/* sluiced_memfd - a sealed, read-only-from-now-on copy of data */
int
sluiced_memfd(const char *name, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;
	int		 fd = memfd_open(name);

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			fatal("write %s", name);
		}
		p += n;
		len -= (size_t)n;
	}
	return memfd_seal(fd, name);
}

/*
 * sluiced_conf_memfd - the validated configuration as the image children
 * parse; one per child, because a shared descriptor shares its offset.
 */
int
sluiced_conf_memfd(const struct conf *c)
{
	int	 fd = memfd_open("sluice.conf");

	if (conf_export(c, fd) == -1)
		fatal("conf_export");
	return memfd_seal(fd, "sluice.conf");
}
