/*
 * test_child.c - the life of a child, driven from a fake sluiced over a
 * real socketpair: setup frames, START, READY from inside the sandbox,
 * heartbeats, sibling greeting, reload, shutdown, and protocol errors.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
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

#include "child.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"

#define MAXGOT	32

struct fake {
	struct event_base	*base;
	struct ipc		*ipc;
	pid_t			 pid;
	uint32_t		 got[MAXGOT];
	uint64_t		 reqid[MAXGOT];
	uint32_t		 arg[MAXGOT];
	int			 ngot;
	int			 eof;
};

static const char conf_text[] =
    "listen = ( { address = \"127.0.0.1\"; port = 2587; } );\n"
    "state_dir = \"/tmp\";\n";

static int	peer_frames;

static void
test_peer_msg(struct child_env *env, struct child_peer *p, struct ipc_msg *m)
{
	if (m != NULL)
		peer_frames++;
}

static const struct child_ops test_ops = {
	.kind = PROC_AUTHD,
	.sandbox = SANDBOX_AUTHD,
	.peer_msg = test_peer_msg,
};

static void
fake_dispatch(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct fake	*f = arg;
	uint32_t	 v = 0;

	if (m == NULL) {
		f->eof = 1;
		return;
	}
	if (f->ngot < MAXGOT) {
		if (m->len >= 4)
			ipc_get_u32(m, &v);
		f->got[f->ngot] = m->type;
		f->reqid[f->ngot] = m->reqid;
		f->arg[f->ngot] = v;
		f->ngot++;
	}
}

/* run_until - spin the fake parent's loop until a frame type arrives */
static int
run_until(struct fake *f, uint32_t type, int tenths)
{
	struct timeval	 tv = { 0, 100000 };
	int		 i, k;

	for (i = 0; i < tenths; i++) {
		for (k = 0; k < f->ngot; k++)
			if (f->got[k] == type)
				return k;
		if (f->eof)
			return -1;
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	return -1;
}

static int
conf_memfd(void)
{
	char		 err[256];
	struct conf	*c;
	int		 fd, tfd;

	tfd = memfd_create("text", MFD_CLOEXEC);
	assert_true(tfd >= 0);
	assert_int_equal(write(tfd, conf_text, strlen(conf_text)),
	    (ssize_t)strlen(conf_text));
	c = conf_load_fd(tfd, "test", err, sizeof(err));
	if (c == NULL)
		fail_msg("conf: %s", err);
	close(tfd);
	fd = memfd_create("image", MFD_CLOEXEC);
	assert_int_equal(conf_export(c, fd), 0);
	conf_free(c);
	return fd;
}

static void
fake_start(struct fake *f, const char *instance)
{
	int	 sv[2];

	memset(f, 0, sizeof(*f));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		char	*argv[] = { "authd", "-i", (char *)instance, NULL };

		close(sv[0]);
		if (dup2(sv[1], 3) == -1)
			_exit(99);
		if (sv[1] != 3)
			close(sv[1]);
		optind = 1;
		child_main(3, argv, &test_ops);
		_exit(98);
	}
	close(sv[1]);
	f->base = event_base_new();
	f->ipc = ipc_new(sv[0], f->base, "child", fake_dispatch, f);
	assert_non_null(f->ipc);
}

static int
fake_wait(struct fake *f)
{
	int	 status, i;

	for (i = 0; i < 50; i++) {
		if (waitpid(f->pid, &status, WNOHANG) == f->pid)
			return status;
		usleep(100000);
	}
	kill(f->pid, SIGKILL);
	waitpid(f->pid, &status, 0);
	fail_msg("child did not exit");
	return -1;
}

static void
fake_free(struct fake *f)
{
	ipc_free(f->ipc);
	event_base_free(f->base);
}

static void
send_hello(struct fake *f, uint32_t version)
{
	struct ipc_frame	 fr;

	ipc_frame_init(&fr, IPC_HELLO, 0);
	ipc_put_u32(&fr, version);
	ipc_put_u32(&fr, PROC_SLUICED);
	ipc_put_u32(&fr, 0);
	assert_int_equal(ipc_send(f->ipc, &fr, -1), 0);
}

static void
send_conf(struct fake *f, uint32_t gen)
{
	struct ipc_frame	 fr;
	int			 fd = conf_memfd();

	ipc_frame_init(&fr, IPC_CONF, 0);
	ipc_put_u32(&fr, gen);
	assert_int_equal(ipc_send(f->ipc, &fr, fd), 0);
	close(fd);
}

static void
test_child_full_life(void **state)
{
	struct fake		 f;
	struct ipc_frame	 fr;
	int			 k, sv[2], status, n;
	uint8_t			 buf[64];
	uint32_t		 v;

	fake_start(&f, "7");
	send_hello(&f, IPC_VERSION);
	send_conf(&f, 1);
	/* a sibling channel, as sluiced would make it */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	ipc_frame_init(&fr, IPC_PEER, 0);
	ipc_put_u32(&fr, PROC_SMTPD);
	ipc_put_u32(&fr, 3);
	assert_int_equal(ipc_send(f.ipc, &fr, sv[1]), 0);
	close(sv[1]);
	assert_int_equal(ipc_sendv(f.ipc, IPC_START, 0, -1), 0);

	assert_true(run_until(&f, IPC_CONF_DONE, 50) >= 0);
	k = run_until(&f, IPC_READY, 50);
	assert_true(k >= 0);
	assert_int_equal(f.arg[k], (uint32_t)f.pid);

	/* the child greets the sibling with version, kind and instance */
	n = (int)recv(sv[0], buf, sizeof(buf), 0);
	assert_int_equal(n, IPC_HDR_SIZE + 12);
	memcpy(&v, buf, 4);
	assert_int_equal(v, IPC_HELLO);
	memcpy(&v, buf + IPC_HDR_SIZE + 4, 4);
	assert_int_equal(v, PROC_AUTHD);
	memcpy(&v, buf + IPC_HDR_SIZE + 8, 4);
	assert_int_equal(v, 7);
	close(sv[0]);

	/* heartbeats are answered with the same request id */
	assert_int_equal(ipc_sendv(f.ipc, IPC_HEARTBEAT, 4242, -1), 0);
	k = run_until(&f, IPC_HEARTBEAT_ACK, 50);
	assert_true(k >= 0);
	assert_int_equal(f.reqid[k], 4242);

	/* a reload reports its generation */
	f.ngot = 0;
	send_conf(&f, 2);
	k = run_until(&f, IPC_CONF_DONE, 50);
	assert_true(k >= 0);
	assert_int_equal(f.arg[k], 2);

	assert_int_equal(ipc_sendv(f.ipc, IPC_SHUTDOWN, 0, -1), 0);
	status = fake_wait(&f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	fake_free(&f);
}

static void
test_child_exits_when_parent_goes(void **state)
{
	struct fake	 f;
	int		 status;

	fake_start(&f, "0");
	send_hello(&f, IPC_VERSION);
	ipc_free(f.ipc);		/* EOF on descriptor 3 */
	f.ipc = NULL;
	status = fake_wait(&f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	event_base_free(f.base);
}

static void
test_child_refuses_protocol_version(void **state)
{
	struct fake	 f;
	int		 status;

	fake_start(&f, "0");
	send_hello(&f, IPC_VERSION + 1);
	status = fake_wait(&f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	fake_free(&f);
}

static void
test_child_refuses_start_without_conf(void **state)
{
	struct fake	 f;
	int		 status;

	fake_start(&f, "0");
	send_hello(&f, IPC_VERSION);
	assert_int_equal(ipc_sendv(f.ipc, IPC_START, 0, -1), 0);
	status = fake_wait(&f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	fake_free(&f);
}

static void
test_child_refuses_unexpected_frame(void **state)
{
	struct fake	 f;
	int		 status;

	fake_start(&f, "0");
	send_hello(&f, IPC_VERSION);
	/* READY goes child -> sluiced, never the other way */
	{
		struct ipc_frame	 fr;

		ipc_frame_init(&fr, IPC_READY, 0);
		ipc_put_u32(&fr, 1);
		assert_int_equal(ipc_send(f.ipc, &fr, -1), 0);
	}
	status = fake_wait(&f);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	fake_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_child_full_life),
		cmocka_unit_test(test_child_exits_when_parent_goes),
		cmocka_unit_test(test_child_refuses_protocol_version),
		cmocka_unit_test(test_child_refuses_start_without_conf),
		cmocka_unit_test(test_child_refuses_unexpected_frame),
	};

	log_init("test_child", LOG_F_NOSYSLOG);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
