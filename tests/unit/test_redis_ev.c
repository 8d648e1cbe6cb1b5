/*
 * test_redis_ev.c - the durability judgement, the password file, and a
 * real redis-server on a private socket: accepted when safe, refused by
 * name when not, noticed when fixed, reconnected after a restart.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "log.h"
#include "redis_ev.h"

static char	 dir[] = "/tmp/test_redis_ev.XXXXXX";
static char	 sock[256];
static pid_t	 server;
static int	 ups, downs;

/* server_start - redis-server on our socket, with one setting to vary */
static void
server_start(const char *fsync)
{
	redisContext	*c;
	int		 i;

	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	if ((server = fork()) == 0) {
		int	 fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		execlp("redis-server", "redis-server", "--port", "0",
		    "--unixsocket", sock, "--dir", dir, "--save", "",
		    "--appendonly", "yes", "--appendfsync", fsync,
		    "--maxmemory-policy", "noeviction", (char *)NULL);
		_exit(127);
	}
	assert_true(server > 0);
	for (i = 0; i < 100; i++) {
		c = redisConnectUnix(sock);
		if (c != NULL && c->err == 0) {
			redisFree(c);
			return;
		}
		redisFree(c);
		usleep(50000);
	}
	fail_msg("redis-server did not start");
}

static void
server_stop(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = 0;
	}
}

/* redis_cmd - a literal command with no arguments from outside */
static void
redis_cmd(const char *cmd)
{
	redisContext	*ctx = redisConnectUnix(sock);
	redisReply	*r;

	assert_non_null(ctx);
	r = redisCommand(ctx, cmd);
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(ctx);
}

static void
on_state(struct redis_ev *r, int up, void *arg)
{
	if (up)
		ups++;
	else
		downs++;
}

/* spin - run the loop until the counter reaches want, or ~tenths/10 s */
static int
spin(struct event_base *base, int *counter, int want, int tenths)
{
	struct timeval	 tv = { 0, 100000 };
	int		 i;

	for (i = 0; i < tenths && *counter < want; i++) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return *counter >= want;
}

static struct conf *
test_conf(void)
{
	struct conf	*c = calloc(1, sizeof(*c));

	c->redis.unix_path = sock;
	return c;
}

static void
test_redis_ev_check_settings(void **state)
{
	char	 err[256];

	assert_int_equal(redis_ev_check_settings("noeviction", "yes",
	    "always", 0, err, sizeof(err)), 0);
	assert_int_equal(redis_ev_check_settings("allkeys-lru", "yes",
	    "always", 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "maxmemory-policy is allkeys-lru"));
	assert_int_equal(redis_ev_check_settings("noeviction", "no",
	    "always", 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "appendonly is no"));
	assert_int_equal(redis_ev_check_settings("noeviction", "yes",
	    "everysec", 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "appendfsync is everysec; sluice needs always"));
	assert_int_equal(redis_ev_check_settings(NULL, NULL, NULL, 0, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown"));
	/* relaxed durability: only eviction is still refused */
	assert_int_equal(redis_ev_check_settings("noeviction", "no",
	    "everysec", 1, err, sizeof(err)), 0);
	assert_int_equal(redis_ev_check_settings("volatile-lru", "yes",
	    "always", 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "maxmemory-policy is volatile-lru"));
}

static void
test_redis_ev_password_file(void **state)
{
	char	 path[300], err[256], *pw;
	int	 fd;

	snprintf(path, sizeof(path), "%s/pass", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, "s3cret\nignored\n", 15), 15);
	close(fd);
	pw = redis_ev_read_password(path, err, sizeof(err));
	assert_non_null(pw);
	assert_string_equal(pw, "s3cret");
	free(pw);

	chmod(path, 0640);
	assert_null(redis_ev_read_password(path, err, sizeof(err)));
	assert_non_null(strstr(err, "readable by group or others"));

	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	chmod(path, 0600);
	assert_null(redis_ev_read_password(path, err, sizeof(err)));
	assert_non_null(strstr(err, "empty"));
	unlink(path);
	assert_null(redis_ev_read_password(path, err, sizeof(err)));
}

static void
test_redis_ev_safe_server_up(void **state)
{
	struct event_base	*base = event_base_new();
	struct conf		*c = test_conf();
	struct redis_ev		*r;

	server_start("always");
	ups = downs = 0;
	r = redis_ev_new(base, "test", c, NULL, on_state, NULL);
	assert_true(spin(base, &ups, 1, 50));
	assert_int_equal(redis_ev_up(r), 1);
	assert_non_null(redis_ev_context(r));

	/* the server goes away: down, then up again when it is back */
	server_stop();
	assert_true(spin(base, &downs, 1, 50));
	assert_int_equal(redis_ev_up(r), 0);
	assert_null(redis_ev_context(r));
	server_start("always");
	assert_true(spin(base, &ups, 2, 100));
	redis_ev_free(r);
	server_stop();
	free(c);
	event_base_free(base);
}

static void
test_redis_ev_unsafe_server_refused(void **state)
{
	struct event_base	*base = event_base_new();
	struct conf		*c = test_conf();
	struct redis_ev		*r;

	server_start("everysec");
	ups = downs = 0;
	r = redis_ev_new(base, "test", c, NULL, on_state, NULL);
	assert_false(spin(base, &ups, 1, 20));
	assert_int_equal(redis_ev_up(r), 0);
	/* fixed on the server: noticed at the next look, within 10 s */
	redis_cmd("CONFIG SET appendfsync always");
	assert_true(spin(base, &ups, 1, 150));
	redis_ev_free(r);
	server_stop();
	free(c);
	event_base_free(base);
}

static int
teardown(void **state)
{
	char	 cmd[300];

	server_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redis_ev_check_settings),
		cmocka_unit_test(test_redis_ev_password_file),
		cmocka_unit_test(test_redis_ev_safe_server_up),
		cmocka_unit_test(test_redis_ev_unsafe_server_refused),
	};

	if (mkdtemp(dir) == NULL)
		return 1;
	log_init("test_redis_ev", LOG_F_NOSYSLOG);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, teardown);
}
