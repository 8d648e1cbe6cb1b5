/*
 * queued - the queue manager
 *
 * For now it holds the one Redis connection the queue will use and
 * refuses a server that could lose acknowledged mail (see redis_ev.h);
 * the queue itself arrives with its own issue.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "child.h"
#include "conf.h"
#include "log.h"
#include "redis_ev.h"

static struct redis_ev	*redis;
static char		*redis_password;

static void	queued_setup(struct child_env *);
static void	queued_configure(struct child_env *, struct conf *);
static void	queued_redis_state(struct redis_ev *, int, void *);

static const struct child_ops queued_ops = {
	.kind = PROC_QUEUED,
	.sandbox = SANDBOX_QUEUED,
	.setup = queued_setup,
	.configure = queued_configure,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &queued_ops);
}

/* queued_setup - the password file is read while files can be opened */
static void
queued_setup(struct child_env *env)
{
	char	 err[512];

	if (env->conf->redis.password_file == NULL)
		return;
	redis_password = redis_ev_read_password(env->conf->redis.password_file,
	    err, sizeof(err));
	if (redis_password == NULL)
		fatalx("%s: %s", env->name, err);
}

static void
queued_configure(struct child_env *env, struct conf *old)
{
	if (old != NULL)
		return;		/* the Redis address cannot change on reload */
	redis = redis_ev_new(env->base, env->name, env->conf, redis_password,
	    queued_redis_state, env);
	if (redis_password != NULL) {
		sodium_memzero(redis_password, strlen(redis_password));
		free(redis_password);
		redis_password = NULL;
	}
}

static void
queued_redis_state(struct redis_ev *r, int up, void *arg)
{
	struct child_env	*env = arg;

	log_debug("%s: redis %s", env->name, up ? "up" : "down");
}
