/*
 * redis_embed.c - the private redis-server of a single-node install
 *
 * With redis = { embedded = true; } sluiced runs Debian's redis-server
 * as its own unprivileged account, on a Unix socket under state_dir,
 * with the two settings a mail queue cannot do without: every write
 * fsync'd to the AOF before it is acknowledged (appendfsync always),
 * and no eviction (an evicted key would be a lost message).  It is
 * started first, restarted if it dies, and stopped last.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "xmalloc.h"

#define REDIS_START_TIMEOUT	20	/* seconds; a big AOF loads slowly */
#define REDIS_STOP_TIMEOUT	4	/* SIGTERM to SIGKILL */

static pid_t		 redis_pid;
static time_t		 redis_started;
static int		 redis_quick;
static int		 redis_stopping;
static struct event	*redis_timer;

static pid_t	redis_spawn(void);
static int	redis_wait_ready(void);
static void	redis_on_timer(evutil_socket_t, short, void *);

pid_t
redis_embed_pid(void)
{
	return redis_pid > 0 ? redis_pid : -1;
}

int
redis_embed_running(void)
{
	return redis_pid > 0;
}

/* redis_spawn - fork, become the redis account, exec redis-server */
static pid_t
redis_spawn(void)
{
	const struct conf	*c = sd->conf;
	char			*dir, *argv[40];
	const char		*perm = sd->as_root ? "770" : "700";
	int			 argc = 0, fd;
	pid_t			 pid;

	xasprintf(&dir, "%s/redis", c->state_dir);
	argv[argc++] = c->redis.server;
	argv[argc++] = "--port";		argv[argc++] = "0";
	argv[argc++] = "--unixsocket";		argv[argc++] = c->redis.unix_path;
	argv[argc++] = "--unixsocketperm";	argv[argc++] = (char *)perm;
	argv[argc++] = "--dir";			argv[argc++] = dir;
	argv[argc++] = "--daemonize";		argv[argc++] = "no";
	argv[argc++] = "--appendonly";		argv[argc++] = "yes";
	argv[argc++] = "--appendfsync";		argv[argc++] = "always";
	argv[argc++] = "--maxmemory-policy";	argv[argc++] = "noeviction";
	argv[argc++] = "--save";		argv[argc++] = "";
	argv[argc++] = "--logfile";		argv[argc++] = "redis.log";
	argv[argc++] = "--pidfile";		argv[argc++] = "";
	argv[argc] = NULL;

	if ((pid = fork()) == -1) {
		log_warn("redis-server: fork");
		free(dir);
		return -1;
	}
	if (pid == 0) {
		const struct proc_user	*u = &sd->redis_user;
		sigset_t		 set;

		/* its own process group: a terminal's ^C is for sluiced */
		setpgid(0, 0);
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (sd->as_root && (setgroups(1, &u->gid) == -1 ||
		    setresgid(u->gid, u->gid, u->gid) == -1 ||
		    setresuid(u->uid, u->uid, u->uid) == -1)) {
			dprintf(STDERR_FILENO, "sluiced: redis-server: cannot "
			    "become %s: %s\n", u->name, strerror(errno));
			_exit(127);
		}
		if (chdir(dir) == -1)
			_exit(127);
		if ((fd = open("/dev/null", O_RDWR)) != -1) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		proc_closefrom(3);
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "sluiced: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	free(dir);
	redis_started = time(NULL);
	log_debug("redis-server: started (pid %ld) on %s", (long)pid,
	    c->redis.unix_path);
	return pid;
}

/*
 * redis_wait_ready - at start only, before the event loop runs: block
 * until the server answers PING (not -LOADING) or gives up.
 */
static int
redis_wait_ready(void)
{
	struct timespec	 nap = { 0, 50 * 1000 * 1000 };
	struct timeval	 tv = { 0, 500 * 1000 };
	redisContext	*rc;
	redisReply	*r;
	time_t		 deadline = time(NULL) + REDIS_START_TIMEOUT;
	char		 how[96];
	int		 status, ok;

	while (time(NULL) < deadline) {
		if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) {
			redis_pid = 0;
			log_warnx("redis-server %s during start; see %s/redis/"
			    "redis.log", sluiced_exit_str(status, how,
			    sizeof(how)), sd->conf->state_dir);
			return -1;
		}
		rc = redisConnectUnixWithTimeout(sd->conf->redis.unix_path, tv);
		if (rc != NULL && rc->err == 0) {
			r = redisCommand(rc, "PING");
			ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
			    strcmp(r->str, "PONG") == 0;
			if (r != NULL)
				freeReplyObject(r);
			if (ok) {
				redisFree(rc);
				return 0;
			}
		}
		if (rc != NULL)
			redisFree(rc);
		nanosleep(&nap, NULL);
	}
	log_warnx("redis-server did not answer within %d seconds; see "
	    "%s/redis/redis.log", REDIS_START_TIMEOUT, sd->conf->state_dir);
	return -1;
}

int
redis_embed_start(void)
{
	if ((redis_timer = evtimer_new(sd->base, redis_on_timer, NULL)) == NULL)
		fatalx("redis_embed_start: evtimer_new");
	if ((redis_pid = redis_spawn()) == -1) {
		redis_pid = 0;
		return -1;
	}
	if (redis_wait_ready() == -1) {
		if (redis_pid > 0) {
			kill(redis_pid, SIGKILL);
			waitpid(redis_pid, NULL, 0);
			redis_pid = 0;
		}
		return -1;
	}
	log_info("redis-server: ready (pid %ld), socket %s", (long)redis_pid,
	    sd->conf->redis.unix_path);
	return 0;
}

/* redis_embed_reaped - it exited: at shutdown that is the plan */
void
redis_embed_reaped(pid_t pid, int status)
{
	struct timeval	 tv = { 0, 0 };
	char		 how[96];
	time_t		 up = time(NULL) - redis_started;

	redis_pid = 0;
	evtimer_del(redis_timer);
	sluiced_exit_str(status, how, sizeof(how));
	if (redis_stopping || sd->stopping) {
		log_info("redis-server: %s", how);
		if (sd->stopping && children_running() == 0)
			sluiced_all_stopped();
		return;
	}
	log_warnx("lost child: redis-server %s after %lds; see %s/redis/"
	    "redis.log", how, (long)up, sd->conf->state_dir);
	redis_quick = up >= SUP_STABLE_UPTIME ? 0 : redis_quick + 1;
	if (redis_quick >= SUP_CRASHLOOP)
		log_warnx("CRASH LOOP: redis-server exited %d times in a row; "
		    "queued and authd answer 4xx until it is back",
		    redis_quick);
	tv.tv_sec = (time_t)sup_backoff(redis_quick);
	evtimer_add(redis_timer, &tv);
}

static void
redis_on_timer(evutil_socket_t fd, short ev, void *arg)
{
	if (redis_stopping) {
		if (redis_pid > 0) {
			log_warnx("redis-server (pid %ld) still running; "
			    "killing it", (long)redis_pid);
			kill(redis_pid, SIGKILL);
		}
		return;
	}
	if (sd->stopping || redis_pid > 0)
		return;
	if ((redis_pid = redis_spawn()) == -1) {
		struct timeval	 tv = { SUP_BACKOFF_MAX, 0 };

		redis_pid = 0;
		evtimer_add(redis_timer, &tv);
		return;
	}
	log_info("redis-server: restarted (pid %ld)", (long)redis_pid);
}

/* redis_embed_stop - SIGTERM lets it finish its AOF; SIGKILL later */
void
redis_embed_stop(void)
{
	struct timeval	 tv = { REDIS_STOP_TIMEOUT, 0 };

	if (redis_pid <= 0)
		return;
	redis_stopping = 1;
	kill(redis_pid, SIGTERM);
	evtimer_add(redis_timer, &tv);
}
