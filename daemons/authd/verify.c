/*
 * verify.c - argon2id password checks on a small pool of threads
 *
 * crypto_pwhash_str_verify() costs tens of milliseconds and 64 MiB by
 * design; run on the event loop it would stall every other request.
 * AUTHD_VERIFY_THREADS workers take jobs from one queue and put them,
 * done, on another; a byte on a pipe wakes the loop, which runs the
 * callbacks.  The workers touch nothing but their job: no logging, no
 * Redis, no libevent.  They start after the sandbox (clone with
 * CLONE_THREAD is allowed for authd) with every signal blocked, so
 * signals keep going to the loop's thread.
 */
#include "config.h"

#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "authd.h"
#include "child.h"
#include "compat/compat.h"
#include "log.h"
#include "xmalloc.h"

struct verify_job {
	TAILQ_ENTRY(verify_job)	 entry;
	char			 hash[AUTHD_HASH_MAX];
	char			 password[AP_MAX_PASSWORD];
	size_t			 pwlen;
	int			 match;
	authd_done_fn		*fn;
	void			*arg;
};
TAILQ_HEAD(verify_list, verify_job);

static pthread_mutex_t		 verify_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 verify_cond = PTHREAD_COND_INITIALIZER;
static struct verify_list	 verify_todo =
				    TAILQ_HEAD_INITIALIZER(verify_todo);
static struct verify_list	 verify_done =
				    TAILQ_HEAD_INITIALIZER(verify_done);
static int			 verify_ntodo;
static int			 verify_pipe[2] = { -1, -1 };
static struct event		*verify_ev;

static void	*verify_worker(void *);
static void	 verify_on_done(evutil_socket_t, short, void *);

/* verify_init - the wake-up pipe and the workers */
void
verify_init(struct event_base *base)
{
	sigset_t	 all, old;
	pthread_t	 t;
	int		 i, rc;

	if (pipe2(verify_pipe, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("verify: pipe2");
	verify_ev = event_new(base, verify_pipe[0], EV_READ | EV_PERSIST,
	    verify_on_done, NULL);
	if (verify_ev == NULL || event_add(verify_ev, NULL) == -1)
		fatalx("verify: cannot watch the pipe");
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < AUTHD_VERIFY_THREADS; i++) {
		if ((rc = pthread_create(&t, NULL, verify_worker, NULL)) != 0) {
			errno = rc;
			fatal("verify: pthread_create");
		}
		pthread_detach(t);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/*
 * verify_submit - check password against hash, then fn(arg, match) on
 * the loop; -1 (no callback) when the queue is full.  The caller may
 * wipe its copy of the password as soon as this returns.
 */
int
verify_submit(const char *hash, const char *password, size_t pwlen,
    authd_done_fn *fn, void *arg)
{
	struct verify_job	*j;

	if (pwlen >= sizeof(j->password))
		return -1;
	pthread_mutex_lock(&verify_lock);
	if (verify_ntodo >= AUTHD_VERIFY_QUEUE) {
		pthread_mutex_unlock(&verify_lock);
		return -1;
	}
	pthread_mutex_unlock(&verify_lock);

	j = xcalloc(1, sizeof(*j));
	if (strlcpy(j->hash, hash, sizeof(j->hash)) >= sizeof(j->hash))
		j->hash[0] = '\0';	/* verifies as a mismatch */
	memcpy(j->password, password, pwlen);
	j->pwlen = pwlen;
	j->fn = fn;
	j->arg = arg;

	pthread_mutex_lock(&verify_lock);
	TAILQ_INSERT_TAIL(&verify_todo, j, entry);
	verify_ntodo++;
	pthread_cond_signal(&verify_cond);
	pthread_mutex_unlock(&verify_lock);
	return 0;
}

/* verify_worker - one thread: take a job, hash, hand it back, wake */
static void *
verify_worker(void *unused)
{
	struct verify_job	*j;
	const char		 b = 1;
	ssize_t			 w;

	for (;;) {
		pthread_mutex_lock(&verify_lock);
		while ((j = TAILQ_FIRST(&verify_todo)) == NULL)
			pthread_cond_wait(&verify_cond, &verify_lock);
		TAILQ_REMOVE(&verify_todo, j, entry);
		verify_ntodo--;
		pthread_mutex_unlock(&verify_lock);

		j->match = j->hash[0] != '\0' &&
		    crypto_pwhash_str_verify(j->hash, j->password,
		    j->pwlen) == 0;
		sodium_memzero(j->password, sizeof(j->password));

		pthread_mutex_lock(&verify_lock);
		TAILQ_INSERT_TAIL(&verify_done, j, entry);
		pthread_mutex_unlock(&verify_lock);
		/* a full pipe already holds a wake-up: nothing is lost */
		do {
			w = write(verify_pipe[1], &b, 1);
		} while (w == -1 && errno == EINTR);
	}
	return NULL;
}

/* verify_on_done - on the loop: run the callbacks of finished jobs */
static void
verify_on_done(evutil_socket_t fd, short ev, void *unused)
{
	struct verify_list	 done = TAILQ_HEAD_INITIALIZER(done);
	struct verify_job	*j;
	char			 buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&verify_lock);
	TAILQ_CONCAT(&done, &verify_done, entry);
	pthread_mutex_unlock(&verify_lock);
	while ((j = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, j, entry);
		j->fn(j->arg, j->match);
		free(j);
	}
}
