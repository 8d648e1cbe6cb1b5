/*
 * enqueue.c - transactions from smtpd: envelope, body memfd, commit
 *
 * A transaction lives only in this process until its commit: nothing
 * reaches Redis before Q_COMMIT, so a client that leaves, an RSET or a
 * dying smtpd leave nothing behind.  The commit is one MULTI/EXEC and
 * Q_OK goes out from the EXEC reply, which Redis sends only after its
 * appendfsync always write.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "child.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "queue_proto.h"
#include "queued.h"
#include "redis_ev.h"
#include "xmalloc.h"

/* how long a commit waits for Redis to come (back) before 451 */
#define ENQUEUE_WAIT_MS	5000

struct txn {
	TAILQ_ENTRY(txn)	 entry;
	struct child_peer	*peer;		/* NULL once smtpd is gone */
	uint64_t		 reqid;
	uint32_t		 flags;
	char			*from, *envid, *user, *client, *helo, *proto,
				*tls;
	char			**to;
	char			**orcpt;
	uint32_t		*notify;
	size_t			 nrcpt, cap;
	int			 fd;		/* the body memfd */
	int			 committing;
	int			 pending;	/* Redis replies still to come */
	uint64_t		 parked;	/* ms since it waits for Redis */
	uint64_t		 opened;	/* ms, for the idle limit */
	int			 oom;		/* Redis refused: out of memory */
	int			 failed;	/* a command of the MULTI failed */
	char			 id[MSGID_SIZE];
	size_t			 size;
	int			 toomany;
};

TAILQ_HEAD(txn_list, txn);
static struct txn_list	txns = TAILQ_HEAD_INITIALIZER(txns);
static int		ntxns;

static struct txn	*txn_find(struct child_peer *, uint64_t);
static void		 txn_free(struct txn *);
static void		 txn_fail(struct txn *, int, const char *, const char *);
static void		 txn_open(struct child_peer *, struct ipc_msg *);
static void		 txn_rcpt(struct txn *, struct ipc_msg *);
static void		 txn_commit(struct txn *, struct ipc_msg *);
static void		 txn_on_reply(redisAsyncContext *, void *, void *);
static void		 txn_on_exec(redisAsyncContext *, void *, void *);
static void		 txn_settle(struct txn *);
static void		 txn_store(struct txn *);
static int		 txn_count(struct child_peer *);
static int		 txn_emit(struct rcmd *, void *);
static char		*txn_getstr(struct ipc_msg *, size_t, int *);

static struct txn *
txn_find(struct child_peer *p, uint64_t reqid)
{
	struct txn	*t;

	/* the newest transactions are the busy ones */
	TAILQ_FOREACH_REVERSE(t, &txns, txn_list, entry)
		if (t->peer == p && t->reqid == reqid)
			return t;
	return NULL;
}

static void
txn_free(struct txn *t)
{
	size_t	 i;

	if (t == NULL)
		return;
	TAILQ_REMOVE(&txns, t, entry);
	ntxns--;
	if (t->fd != -1)
		close(t->fd);
	for (i = 0; i < t->nrcpt; i++) {
		free(t->to[i]);
		free(t->orcpt[i]);
	}
	free(t->to);
	free(t->orcpt);
	free(t->notify);
	free(t->from);
	free(t->envid);
	free(t->user);
	free(t->client);
	free(t->helo);
	free(t->proto);
	free(t->tls);
	free(t);
}

/* txn_fail - tell smtpd why (when it is still there) and forget it all */
static void
txn_fail(struct txn *t, int code, const char *status, const char *text)
{
	struct ipc_frame	 f;

	if (t->peer != NULL) {
		ipc_frame_init(&f, IPC_Q_FAIL, t->reqid);
		ipc_put_u32(&f, (uint32_t)code);
		ipc_put_str(&f, status);
		ipc_put_str(&f, text);
		ipc_send(t->peer->ipc, &f, -1);
	}
	txn_free(t);
}

/* txn_getstr - one string field of at most max bytes, allocated */
static char *
txn_getstr(struct ipc_msg *m, size_t max, int *bad)
{
	char	 buf[QP_MAX_TEXT + 1];

	if (*bad || ipc_get_str(m, buf, max + 1 < sizeof(buf) ? max + 1 :
	    sizeof(buf)) == -1) {
		*bad = 1;
		return NULL;
	}
	return xstrdup(buf);
}

void
enqueue_peer_msg(struct child_peer *p, struct ipc_msg *m)
{
	struct txn	*t;

	if (m->type == IPC_Q_OPEN) {
		txn_open(p, m);
		return;
	}
	if ((t = txn_find(p, m->reqid)) == NULL) {
		/* an ABORT may cross our FAIL: not an error */
		if (m->type != IPC_Q_ABORT)
			log_debug("%s: %s for unknown transaction %llu",
			    ipc_name(p->ipc), ipc_type_str(m->type),
			    (unsigned long long)m->reqid);
		return;
	}
	switch (m->type) {
	case IPC_Q_RCPT:
		if (!t->committing)
			txn_rcpt(t, m);
		break;
	case IPC_Q_COMMIT:
		if (!t->committing)
			txn_commit(t, m);
		break;
	case IPC_Q_ABORT:
		if (t->committing && t->parked == 0)
			t->peer = NULL;	/* the EXEC reply will find nobody */
		else
			txn_free(t);
		break;
	default:
		log_warnx("%s: unexpected %s frame", ipc_name(p->ipc),
		    ipc_type_str(m->type));
	}
}

/* enqueue_peer_gone - smtpd died: its open transactions go with it */
void
enqueue_peer_gone(struct child_peer *p)
{
	struct txn	*t, *next;

	for (t = TAILQ_FIRST(&txns); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (t->peer != p)
			continue;
		/* in Redis's hands: let the reply find nobody */
		if (t->committing && t->parked == 0)
			t->peer = NULL;
		else
			txn_free(t);
	}
}

static void
txn_open(struct child_peer *p, struct ipc_msg *m)
{
	struct ipc_frame	 f;
	struct txn		*t;
	int			 bad = 0;

	if (txn_find(p, m->reqid) != NULL) {
		log_warnx("%s: transaction %llu opened twice",
		    ipc_name(p->ipc), (unsigned long long)m->reqid);
		return;
	}
	t = xcalloc(1, sizeof(*t));
	t->peer = p;
	t->reqid = m->reqid;
	t->fd = -1;
	t->opened = store_now_ms();
	TAILQ_INSERT_TAIL(&txns, t, entry);
	ntxns++;
	if (ipc_get_u32(m, &t->flags) == -1)
		bad = 1;
	t->from = txn_getstr(m, QP_MAX_ADDR, &bad);
	t->envid = txn_getstr(m, QP_MAX_PARAM, &bad);
	t->user = txn_getstr(m, QP_MAX_FIELD, &bad);
	t->client = txn_getstr(m, QP_MAX_FIELD, &bad);
	t->helo = txn_getstr(m, QP_MAX_FIELD, &bad);
	t->proto = txn_getstr(m, QP_MAX_FIELD, &bad);
	t->tls = txn_getstr(m, QP_MAX_FIELD, &bad);
	if (bad || ipc_end(m) == -1) {
		txn_fail(t, 554, "5.5.2", "malformed envelope");
		return;
	}
	if (ntxns > QP_MAX_TXN / 4 && txn_count(p) > QP_MAX_TXN) {
		txn_fail(t, 451, "4.3.2", "too many open transactions");
		return;
	}
	/*
	 * The body goes into a file in memory that smtpd writes and we
	 * read at commit, so it crosses between the processes once.
	 */
	t->fd = memfd_create("body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	/*
	 * Sized for the largest message and sealed at that size: smtpd
	 * cannot make it grow past the limit, and pages cost memory only
	 * once written.
	 */
	if (t->fd == -1 || ftruncate(t->fd, (off_t)(q.env->conf->limits.
	    message_size + QP_HEADROOM)) == -1 || fcntl(t->fd, F_ADD_SEALS,
	    F_SEAL_GROW | F_SEAL_SHRINK) == -1) {
		log_warn("body memfd");
		txn_fail(t, 451, "4.3.0", "cannot store the message now");
		return;
	}
	ipc_frame_init(&f, IPC_Q_OPENED, t->reqid);
	ipc_send(p->ipc, &f, t->fd);
}

static void
txn_rcpt(struct txn *t, struct ipc_msg *m)
{
	uint32_t	 notify;
	char		*to, *orcpt;
	int		 bad = 0;

	if (ipc_get_u32(m, &notify) == -1)
		bad = 1;
	to = txn_getstr(m, QP_MAX_ADDR, &bad);
	orcpt = txn_getstr(m, QP_MAX_PARAM, &bad);
	if (bad || ipc_end(m) == -1 || to[0] == '\0') {
		free(to);
		free(orcpt);
		txn_fail(t, 554, "5.5.2", "malformed recipient");
		return;
	}
	if (t->nrcpt >= (size_t)q.env->conf->limits.recipients ||
	    t->nrcpt >= QP_MAX_RCPT) {
		/* smtpd counts too; remember it and refuse at commit */
		t->toomany = 1;
		free(to);
		free(orcpt);
		return;
	}
	if (t->nrcpt == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4;
		t->to = xreallocarray(t->to, t->cap, sizeof(*t->to));
		t->orcpt = xreallocarray(t->orcpt, t->cap, sizeof(*t->orcpt));
		t->notify = xreallocarray(t->notify, t->cap,
		    sizeof(*t->notify));
	}
	t->to[t->nrcpt] = to;
	t->orcpt[t->nrcpt] = orcpt;
	t->notify[t->nrcpt] = notify & (QP_NOTIFY_NEVER | QP_NOTIFY_SUCCESS |
	    QP_NOTIFY_FAILURE | QP_NOTIFY_DELAY);
	t->nrcpt++;
}

static void
txn_commit(struct txn *t, struct ipc_msg *m)
{
	uint64_t	 size;
	off_t		 off;

	if (ipc_get_u64(m, &size) == -1 || ipc_end(m) == -1) {
		txn_fail(t, 554, "5.5.2", "malformed commit");
		return;
	}
	if (t->nrcpt == 0) {
		txn_fail(t, 554, "5.5.1", "no valid recipients");
		return;
	}
	if (t->toomany) {
		txn_fail(t, 452, "4.5.3", "too many recipients");
		return;
	}
	if (size > q.env->conf->limits.message_size + QP_HEADROOM) {
		txn_fail(t, 552, "5.3.4", "message size exceeds fixed limit");
		return;
	}
	/*
	 * Seal first, so that smtpd cannot change what we are about to
	 * read and acknowledge.  The file was sized for the largest
	 * message and its length sealed at open; smtpd's write offset,
	 * which the shared descriptor shows us, says how much it wrote.
	 */
	if (fcntl(t->fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) == -1) {
		/* a writable mapping in smtpd could change it under us */
		log_warnx("%s: cannot seal the body: %s", ipc_name(t->peer->ipc),
		    strerror(errno));
		txn_fail(t, 451, "4.3.0", "cannot store the message now");
		return;
	}
	if ((off = lseek(t->fd, 0, SEEK_CUR)) == -1 || (uint64_t)off != size) {
		txn_fail(t, 554, "5.3.0", "message size does not match "
		    "what was written");
		return;
	}
	t->size = (size_t)size;
	t->committing = 1;
	t->parked = store_now_ms();
	txn_store(t);
}

/* txn_count - open transactions of one smtpd */
static int
txn_count(struct child_peer *p)
{
	struct txn	*t;
	int		 n = 0;

	TAILQ_FOREACH(t, &txns, entry)
		if (t->peer == p)
			n++;
	return n;
}

/* enqueue_resume - Redis is usable again: store what waited for it */
void
enqueue_resume(void)
{
	struct txn	*t, *next;

	for (t = TAILQ_FIRST(&txns); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (t->committing && t->parked != 0)
			txn_store(t);
	}
}

/*
 * enqueue_expire - commits that waited too long for Redis fail, so
 * that the client hears 451 and tries again later
 */
void
enqueue_expire(void)
{
	const struct conf	*conf = q.env->conf;
	struct txn		*t, *next;
	uint64_t		 now = store_now_ms(), idle;

	/* longer than any client may take: smtpd lost track of it */
	idle = ((uint64_t)conf->timeouts.command + conf->timeouts.data_end +
	    2 * (uint64_t)conf->timeouts.data_block) * 1000;
	for (t = TAILQ_FIRST(&txns); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (t->committing && t->parked != 0 &&
		    now - t->parked >= ENQUEUE_WAIT_MS)
			txn_fail(t, 451, "4.3.0", "queue storage "
			    "unavailable; try again later");
		else if (!t->committing && now - t->opened >= idle) {
			log_warnx("transaction %llu open for %llu s; dropped",
			    (unsigned long long)t->reqid,
			    (unsigned long long)(now - t->opened) / 1000);
			txn_fail(t, 451, "4.4.2", "transaction timed out");
		}
	}
}

/*
 * txn_store - fix up, seal and write the message in one MULTI; while
 * Redis is down (or the queue key is not confirmed) the commit waits
 * up to ENQUEUE_WAIT_MS, so a restart of Redis costs clients nothing
 */
static void
txn_store(struct txn *t)
{
	struct store_new	 sn;
	struct rcmd		 c;
	const char		*body = NULL;
	char			*fixed = NULL;
	size_t			 flen = 0, len = t->size;

	if (!redis_ev_up(q.redis) || !q.key_ok)
		return;		/* parked: enqueue_resume or _expire */
	t->parked = 0;
	if (len > 0) {
		body = mmap(NULL, len, PROT_READ, MAP_PRIVATE, t->fd, 0);
		if (body == MAP_FAILED) {
			log_warn("mmap body");
			txn_fail(t, 451, "4.3.0", "cannot read the message");
			return;
		}
	}

	memset(&sn, 0, sizeof(sn));
	sn.from = t->from;
	sn.envid = t->envid;
	sn.user = t->user;
	sn.client = t->client;
	sn.helo = t->helo;
	sn.proto = t->proto;
	sn.tls = t->tls;
	sn.flags = t->flags;
	sn.nrcpt = t->nrcpt;
	sn.to = (const char *const *)t->to;
	sn.orcpt = (const char *const *)t->orcpt;
	sn.notify = t->notify;

	/* msgid first: a Message-ID we add names the queue id */
	msgid_new(t->id);
	if (store_fixup(body != NULL ? body : "", len, t->id, &fixed,
	    &flen) == 1) {
		if (flen > q.env->conf->limits.message_size + QP_HEADROOM) {
			free(fixed);
			munmap((void *)body, len);
			txn_fail(t, 552, "5.3.4", "message size exceeds "
			    "fixed limit");
			return;
		}
	}

	/*
	 * hiredis calls back every command it took, even on a disconnect:
	 * the transaction is settled when the last of them has answered.
	 */
	t->committing = 1;
	t->size = fixed != NULL ? flen : len;
	rcmd_init(&c);
	rcmd_str(&c, "MULTI");
	if (rcmd_send(&c, txn_on_reply, t) == 0) {
		t->pending++;
		if (store_add_message(&sn, fixed != NULL ? fixed :
		    (body != NULL ? body : ""), t->size, t->id, txn_emit,
		    t) == -1)
			t->failed = 1;
		/* EXEC even after a failure: it ends the MULTI (EXECABORT) */
		rcmd_init(&c);
		rcmd_str(&c, "EXEC");
		if (rcmd_send(&c, txn_on_exec, t) == 0)
			t->pending++;
		else
			t->failed = 1;
	} else
		t->failed = 1;
	free(fixed);
	if (body != NULL)
		munmap((void *)body, len);
	close(t->fd);
	t->fd = -1;
	if (t->pending == 0)
		txn_settle(t);
}

/* txn_emit - send one command of the commit, counting its reply */
static int
txn_emit(struct rcmd *c, void *arg)
{
	struct txn	*t = arg;

	if (rcmd_send(c, txn_on_reply, t) == -1)
		return -1;
	t->pending++;
	return 0;
}

/* txn_on_reply - MULTI and each queued command: "QUEUED", or why not */
static void
txn_on_reply(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*rep = r;
	struct txn	*t = arg;

	if (rep == NULL)
		t->failed = 1;
	else if (rep->type == REDIS_REPLY_ERROR) {
		t->failed = 1;
		if (strncmp(rep->str, "OOM", 3) == 0)
			t->oom = 1;
		else
			log_warnx("queue commit: redis: %.200s", rep->str);
	}
	if (--t->pending == 0)
		txn_settle(t);
}

static void
txn_on_exec(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply		*rep = r;
	struct txn		*t = arg;
	size_t			 i;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
		t->failed = 1;
	else
		for (i = 0; i < rep->elements; i++)
			if (rep->element[i]->type == REDIS_REPLY_ERROR) {
				if (strncmp(rep->element[i]->str, "OOM",
				    3) == 0)
					t->oom = 1;
				t->failed = 1;
			}
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR &&
	    strstr(rep->str, "OOM") != NULL)
		t->oom = 1;
	if (--t->pending == 0)
		txn_settle(t);
}

/* txn_settle - every command answered: acknowledge, or say why not */
static void
txn_settle(struct txn *t)
{
	struct ipc_frame	 f;
	char			 from[QP_MAX_ADDR * 4 + 1];

	if (t->failed) {
		if (t->oom) {
			log_warnx("queue commit refused: redis is out of "
			    "memory (maxmemory)");
			txn_fail(t, 452, "4.3.1", "insufficient system "
			    "storage; try again later");
		} else
			txn_fail(t, 451, "4.3.0", "queue storage unavailable; "
			    "try again later");
		return;
	}
	log_printable(from, sizeof(from), t->from, strlen(t->from));
	if (t->user[0] != '\0')
		log_info("%s: client=%s, sasl_username=%s", t->id, t->client,
		    t->user);
	log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", t->id,
	    from, t->size, t->nrcpt);
	if (t->peer != NULL) {
		ipc_frame_init(&f, IPC_Q_OK, t->reqid);
		ipc_put_str(&f, t->id);
		ipc_send(t->peer->ipc, &f, -1);
	}
	txn_free(t);
	queued_kick();
}
