/*
 * deliverd - a delivery worker: the SMTP client that relays to smarthosts
 * and to the MX hosts of recipient domains
 *
 * queued hands it jobs (queue_proto.h): DLV_RCPT frames, then DLV_JOB
 * with the message as a sealed memfd.  mx.c finds the addresses of the
 * job's smarthost or MX hosts (DNS through c-ares on the one event
 * loop, dns.c) and each job gets its own SMTP client session
 * (smtp_client.c); every recipient's outcome goes back as DLV_RESULT,
 * then DLV_DONE.
 *
 * Privileged setup reads what the sandbox would hide: the upstream
 * passwords, the CA file (tls.c) and /etc/resolv.conf (dns.c).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "deliverd.h"
#include "ipc.h"
#include "log.h"
#include "queue_proto.h"
#include "xmalloc.h"

/* an auth_password_file holds one line; longer is a mistake */
#define DLV_SECRET_MAX	1024

struct child_env		*dlv_env;

static TAILQ_HEAD(, dlv_job)	 jobs = TAILQ_HEAD_INITIALIZER(jobs);
static size_t			 njobs;
static struct dlv_secret	*secrets;
static size_t			 nsecrets;

static void	deliverd_setup(struct child_env *);
static void	deliverd_configure(struct child_env *, struct conf *);
static void	deliverd_peer_msg(struct child_env *, struct child_peer *,
		    struct ipc_msg *);
static void	dlv_secret_load(const char *);
static struct dlv_job *dlv_job_find(struct child_peer *, uint64_t);
static struct dlv_job *dlv_job_new(struct child_peer *, uint64_t);

static void	dlv_recv_rcpt(struct child_peer *, struct ipc_msg *);
static void	dlv_recv_job(struct child_peer *, struct ipc_msg *);
static void	dlv_job_run(struct dlv_job *);
static int	dlv_job_map(struct dlv_job *, int, char *, size_t);
static void	dlv_peer_gone(struct child_peer *);
static int	dlv_path_ok(const char *);
static int	dlv_xtext_ok(const char *);

static const struct child_ops deliverd_ops = {
	.kind = PROC_DELIVERD,
	.sandbox = SANDBOX_DELIVERD,
	.setup = deliverd_setup,
	.configure = deliverd_configure,
	.peer_msg = deliverd_peer_msg,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &deliverd_ops);
}

/*
 * deliverd_setup - still privileged: the upstream passwords and the
 * TLS contexts, which cannot be had once the sandbox is on
 */
static void
deliverd_setup(struct child_env *env)
{
	const struct conf	*conf = env->conf;
	size_t			 i;

	dlv_env = env;
	for (i = 0; i < conf->delivery.nroutes; i++)
		if (conf->delivery.routes[i].auth_password_file != NULL)
			dlv_secret_load(
			    conf->delivery.routes[i].auth_password_file);
	if (dlv_tls_init(conf) == -1)
		fatalx("%s: TLS setup failed", env->name);
	/* without a resolver only literal smarthosts work; DNS jobs defer */
	if (dns_init(conf) == -1)
		log_warnx("%s: no DNS resolver; jobs that need one defer",
		    env->name);
}

static void
deliverd_configure(struct child_env *env, struct conf *old)
{
	const struct conf	*conf = env->conf;
	size_t			 i;

	dlv_env = env;
	if (old == NULL)
		return;
	/* route numbers may mean other routes now */
	smtpc_flush_idle(NULL);
	dlv_tls_reconfigure(conf, old);
	dns_reconfigure(conf);
	for (i = 0; i < conf->delivery.nroutes; i++) {
		const char *p = conf->delivery.routes[i].auth_password_file;

		if (p != NULL && dlv_secret_get(p) == NULL)
			log_warnx("%s: auth_password_file %s is new; it is "
			    "read when deliverd restarts, until then its route "
			    "defers", env->name, p);
	}
}

/*
 * dlv_secret_load - the first line of a file that only its owner may
 * read (as OpenSMTPD's check_file_secrecy); a bad file is remembered
 * with the reason, and its route defers until an operator fixes it
 */
static void
dlv_secret_load(const char *path)
{
	struct dlv_secret	*s;
	struct stat		 st;
	char			 buf[DLV_SECRET_MAX + 2];
	ssize_t			 n;
	int			 fd;

	if (dlv_secret_get(path) != NULL)
		return;
	secrets = xreallocarray(secrets, nsecrets + 1, sizeof(*secrets));
	s = &secrets[nsecrets++];
	memset(s, 0, sizeof(*s));
	s->path = xstrdup(path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(s->error, sizeof(s->error), "%s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(s->error, sizeof(s->error), "%s: not a regular file",
		    path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(s->error, sizeof(s->error), "%s: readable by group "
		    "or others (mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((n = read(fd, buf, sizeof(buf) - 1)) < 0) {
		snprintf(s->error, sizeof(s->error), "%s: %s", path,
		    strerror(errno));
		goto out;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	s->len = strlen(buf);
	if (s->len == 0 || s->len > DLV_SECRET_MAX) {
		snprintf(s->error, sizeof(s->error), "%s: %s", path,
		    s->len == 0 ? "empty" : "password too long");
		goto out;
	}
	if ((s->value = sodium_malloc(s->len + 1)) == NULL)
		fatalx("deliverd: sodium_malloc");
	memcpy(s->value, buf, s->len + 1);
	sodium_mprotect_readonly(s->value);
 out:
	sodium_memzero(buf, sizeof(buf));
	if (fd != -1)
		close(fd);
	if (s->error[0] != '\0') {
		s->len = 0;
		log_warnx("deliverd: auth_password_file %s; its route defers",
		    s->error);
	}
}

/* dlv_secret_get - what setup read from path, or NULL if it did not */
const struct dlv_secret *
dlv_secret_get(const char *path)
{
	size_t	 i;

	for (i = 0; i < nsecrets; i++)
		if (strcmp(secrets[i].path, path) == 0)
			return &secrets[i];
	return NULL;
}

static void
deliverd_peer_msg(struct child_env *env, struct child_peer *p,
    struct ipc_msg *m)
{
	if (m == NULL) {
		dlv_peer_gone(p);
		return;
	}
	if (p->kind != PROC_QUEUED) {
		log_warnx("%s: %s from %s ignored", env->name,
		    ipc_type_str(m->type), ipc_name(p->ipc));
		return;
	}
	switch (m->type) {
	case IPC_DLV_RCPT:
		dlv_recv_rcpt(p, m);
		break;
	case IPC_DLV_JOB:
		dlv_recv_job(p, m);
		break;
	default:
		/* well framed but not ours: one line, and go on */
		log_warnx("%s: unexpected %s from %s ignored", env->name,
		    ipc_type_str(m->type), ipc_name(p->ipc));
	}
}

static struct dlv_job *
dlv_job_find(struct child_peer *p, uint64_t reqid)
{
	struct dlv_job	*j;

	TAILQ_FOREACH(j, &jobs, entry)
		if (j->peer == p && j->reqid == reqid)
			return j;
	return NULL;
}

static struct dlv_job *
dlv_job_new(struct child_peer *p, uint64_t reqid)
{
	struct dlv_job	*j;

	j = xcalloc(1, sizeof(*j));
	j->peer = p;
	j->reqid = reqid;
	j->fd = -1;
	strlcpy(j->relay, "none", sizeof(j->relay));
	strlcpy(j->id, "?", sizeof(j->id));
	TAILQ_INSERT_TAIL(&jobs, j, entry);
	njobs++;
	return j;
}

void
dlv_job_free(struct dlv_job *j)
{
	size_t	 i;

	if (j == NULL)
		return;
	smtpc_free(j->sess);
	dlv_path_free(j->path);
	TAILQ_REMOVE(&jobs, j, entry);
	njobs--;
	for (i = 0; i < j->n; i++) {
		free(j->rcpts[i].addr);
		free(j->rcpts[i].orcpt);
		free(j->rcpts[i].text);
	}
	free(j->rcpts);
	free(j->sender);
	free(j->envid);
	free(j->dest);
	if (j->body != NULL)
		munmap((void *)j->body, j->size);
	if (j->fd != -1)
		close(j->fd);
	free(j);
}

/*
 * dlv_recv_rcpt - one recipient of a job to come.  A malformed one
 * spoils its job (answered, without a delivery, when DLV_JOB comes),
 * not the channel: queued and we are both still sane.
 */
static void
dlv_recv_rcpt(struct child_peer *p, struct ipc_msg *m)
{
	struct dlv_job	*j;
	struct dlv_rcpt	*r;
	char		 addr[QP_MAX_ADDR + 1], orcpt[QP_MAX_PARAM + 1];
	uint32_t	 index, notify;

	if ((j = dlv_job_find(p, m->reqid)) == NULL) {
		if (njobs >= DLV_MAX_JOBS + 64) {
			log_warnx("%s: too many jobs from %s; DLV_RCPT "
			    "dropped", dlv_env->name, ipc_name(p->ipc));
			return;
		}
		j = dlv_job_new(p, m->reqid);
	}
	if (j->received) {
		log_warnx("%s: DLV_RCPT for job %llu after its DLV_JOB; "
		    "ignored", dlv_env->name, (unsigned long long)m->reqid);
		return;
	}
	if (ipc_get_u32(m, &index) == -1 || ipc_get_u32(m, &notify) == -1 ||
	    ipc_get_str(m, addr, sizeof(addr)) == -1 ||
	    ipc_get_str(m, orcpt, sizeof(orcpt)) == -1 || ipc_end(m) == -1 ||
	    index >= QP_MAX_RCPT || notify > 15) {
		log_warnx("%s: malformed DLV_RCPT from %s", dlv_env->name,
		    ipc_name(p->ipc));
		j->broken = 1;
		return;
	}
	if (j->n >= QP_MAX_RCPT) {
		j->broken = 1;
		return;
	}
	if (j->n == j->cap) {
		j->cap = j->cap == 0 ? 8 : j->cap * 2;
		j->rcpts = xreallocarray(j->rcpts, j->cap, sizeof(*j->rcpts));
	}
	r = &j->rcpts[j->n++];
	memset(r, 0, sizeof(*r));
	r->index = index;
	r->notify = notify;
	r->addr = xstrdup(addr);
	r->orcpt = xstrdup(orcpt);
}

/* dlv_recv_job - the envelope and the body: deliver it */
static void
dlv_recv_job(struct child_peer *p, struct ipc_msg *m)
{
	struct dlv_job	*j;
	uint32_t	 route, flags, nrcpt;
	char		 id[MSGID_SIZE + 32], sender[QP_MAX_ADDR + 1];
	char		 envid[QP_MAX_PARAM + 1], dest[300], why[256];
	int		 ok;

	if ((j = dlv_job_find(p, m->reqid)) != NULL && j->received) {
		log_warnx("%s: second DLV_JOB for job %llu; ignored",
		    dlv_env->name, (unsigned long long)m->reqid);
		return;
	}
	if (j == NULL)
		j = dlv_job_new(p, m->reqid);
	j->received = 1;
	ok = ipc_get_u32(m, &route) == 0 && ipc_get_u32(m, &flags) == 0 &&
	    ipc_get_u32(m, &nrcpt) == 0 &&
	    ipc_get_str(m, id, sizeof(id)) == 0 &&
	    ipc_get_str(m, sender, sizeof(sender)) == 0 &&
	    ipc_get_str(m, envid, sizeof(envid)) == 0 &&
	    ipc_get_str(m, dest, sizeof(dest)) == 0 && ipc_end(m) == 0;
	if (ok && strlen(id) < sizeof(j->id))
		strlcpy(j->id, id, sizeof(j->id));
	else
		ok = 0;
	if (!ok || j->broken || nrcpt != j->n || j->n == 0) {
		log_warnx("%s: job %llu from %s is malformed (%s); answered "
		    "without delivery", dlv_env->name,
		    (unsigned long long)m->reqid, ipc_name(p->ipc),
		    !ok ? "DLV_JOB" : j->broken ? "a DLV_RCPT" :
		    "recipient count");
		dlv_job_fail_all(j, 451, "4.3.0", "malformed delivery job");
		dlv_job_report(j);
		dlv_job_free(j);
		return;
	}
	j->route = route;
	j->flags = flags;
	j->sender = xstrdup(sender);
	j->envid = xstrdup(envid);
	j->dest = xstrdup(dest);
	if (dlv_job_map(j, m->fd, why, sizeof(why)) == -1) {
		log_warnx("%s: %s", j->id, why);
		dlv_job_fail_all(j, 451, "4.3.0", "%s", why);
		dlv_job_report(j);
		dlv_job_free(j);
		return;
	}
	m->fd = -1;
	dlv_job_run(j);
}

/*
 * dlv_job_map - the body, mapped read-only.  Only a memfd sealed against
 * writing and shrinking may be mapped: a file that shrank under the
 * map would kill us with SIGBUS in the middle of a read.
 */
static int
dlv_job_map(struct dlv_job *j, int fd, char *why, size_t len)
{
	struct stat	 st;
	int		 seals;
	void		*map;

	j->fd = fd;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals == -1 || (seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) !=
	    (F_SEAL_WRITE | F_SEAL_SHRINK)) {
		snprintf(why, len, "message file is not sealed");
		return -1;
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0) {
		snprintf(why, len, "message file is empty");
		return -1;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, len, "mmap message: %s", strerror(errno));
		return -1;
	}
	j->body = map;
	j->size = (size_t)st.st_size;
	return 0;
}

/*
 * dlv_job_run - route it.  Addresses and DSN parameters go into SMTP
 * command lines, so anything that could end a line or split a
 * parameter is refused here, whatever queued was told.
 */
static void
dlv_job_run(struct dlv_job *j)
{
	const struct conf	*conf = dlv_env->conf;
	size_t			 i, live = 0;

	if (njobs > DLV_MAX_JOBS) {
		dlv_job_fail_all(j, 451, "4.3.2", "delivery worker busy "
		    "(%d jobs in progress)", DLV_MAX_JOBS);
		goto answer;
	}
	if (j->route >= conf->delivery.nroutes) {
		dlv_job_fail_all(j, 451, "4.3.5", "delivery route %u is not "
		    "configured", j->route);
		goto answer;
	}
	if (!dlv_path_ok(j->sender)) {
		dlv_job_fail_all(j, 553, "5.1.7", "sender address contains "
		    "characters that cannot be sent");
		goto answer;
	}
	if (!dlv_xtext_ok(j->envid)) {
		log_warnx("%s: ENVID is not xtext; not passed on", j->id);
		j->envid[0] = '\0';
	}
	for (i = 0; i < j->n; i++) {
		struct dlv_rcpt *r = &j->rcpts[i];

		if (r->addr[0] == '\0' || !dlv_path_ok(r->addr)) {
			dlv_rcpt_set(r, 553, "5.1.3", "recipient address "
			    "contains characters that cannot be sent");
			continue;
		}
		if (!dlv_xtext_ok(r->orcpt)) {
			log_warnx("%s: ORCPT is not xtext; not passed on",
			    j->id);
			r->orcpt[0] = '\0';
		}
		live++;
	}
	if (live == 0)
		goto answer;
	j->t_start = dlv_now_ms();
	if (smtpc_reuse(j))
		return;
	dlv_job_route(j);
	return;
 answer:
	dlv_job_report(j);
	dlv_job_free(j);
}

/*
 * dlv_job_route - a new connection for the job, where its route says;
 * dlv_path_start() sets the outcome when it cannot start
 */
void
dlv_job_route(struct dlv_job *j)
{
	const struct conf	*conf = dlv_env->conf;

	if (j->route >= conf->delivery.nroutes)
		dlv_job_fail_all(j, 451, "4.3.5", "delivery route %u is not "
		    "configured", j->route);
	else if (dlv_path_start(j, conf, &conf->delivery.routes[j->route]) ==
	    0)
		return;
	dlv_job_report(j);
	dlv_job_free(j);
}

/* dlv_path_ok - no byte that could end or reshape a command line */
static int
dlv_path_ok(const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return 0;
	return 1;
}

/* dlv_xtext_ok - RFC 3461 xtext (UTF-8 allowed for RFC 6533): no space */
static int
dlv_xtext_ok(const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '=')
			return 0;
	return 1;
}

/* dlv_rcpt_set - one recipient's outcome, unless it has one already */
void
dlv_rcpt_set(struct dlv_rcpt *r, int code, const char *status,
    const char *fmt, ...)
{
	va_list	 ap;
	char	 text[QP_MAX_TEXT + 1];

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	r->code = code;
	strlcpy(r->status, status, sizeof(r->status));
	free(r->text);
	r->text = xstrdup(text);
}

/* dlv_job_fail_all - the same outcome for every recipient without one */
void
dlv_job_fail_all(struct dlv_job *j, int code, const char *status,
    const char *fmt, ...)
{
	va_list	 ap;
	char	 text[QP_MAX_TEXT + 1];
	size_t	 i;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (i = 0; i < j->n; i++)
		if (j->rcpts[i].code == 0)
			dlv_rcpt_set(&j->rcpts[i], code, status, "%s", text);
}

/*
 * dlv_job_report - DLV_RESULT per recipient, then DLV_DONE; once.  The
 * job may live on a little (QUIT) but owes queued nothing more.
 */
void
dlv_job_report(struct dlv_job *j)
{
	struct ipc_frame	 f;
	struct dlv_rcpt		*r;
	char			 to[QP_MAX_ADDR * 4 + 1];
	char			 text[QP_MAX_TEXT * 4 + 1];
	size_t			 i;
	uint64_t		 now, mail;

	if (j->peer == NULL)
		return;
	for (i = 0; i < j->n; i++) {
		r = &j->rcpts[i];
		if (r->code == 0)
			dlv_rcpt_set(r, 451, "4.4.0", "the delivery attempt "
			    "did not finish");
		log_printable(to, sizeof(to), r->addr, strlen(r->addr));
		log_printable(text, sizeof(text), r->text, strlen(r->text));
		log_debug("%s: to=<%s>, relay=%s, dsn=%s, code=%d (%s)",
		    j->id, to, j->relay, r->status, r->code, text);
		ipc_frame_init(&f, IPC_DLV_RESULT, j->reqid);
		ipc_put_u32(&f, r->index);
		ipc_put_u32(&f, (uint32_t)r->code);
		ipc_put_str(&f, r->status);
		ipc_put_str(&f, r->text);
		if (ipc_send(j->peer->ipc, &f, -1) == -1)
			log_warnx("%s: cannot send DLV_RESULT to %s", j->id,
			    ipc_name(j->peer->ipc));
	}
	/* connection set-up, then the transaction (delays=a/b/c/d) */
	now = dlv_now_ms();
	mail = j->t_mail != 0 ? j->t_mail : now;
	ipc_frame_init(&f, IPC_DLV_DONE, j->reqid);
	ipc_put_u32(&f, j->done_flags);
	ipc_put_str(&f, j->relay);
	ipc_put_u32(&f, (uint32_t)(mail - j->t_start));
	ipc_put_u32(&f, (uint32_t)(now - mail));
	if (ipc_send(j->peer->ipc, &f, -1) == -1)
		log_warnx("%s: cannot send DLV_DONE to %s", j->id,
		    ipc_name(j->peer->ipc));
	j->peer = NULL;
}

/* dlv_now_ms - a monotonic clock, for the delays of log lines */
uint64_t
dlv_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* dlv_job_end - the session is over: answer if not yet, and forget it */
void
dlv_job_end(struct dlv_job *j)
{
	dlv_job_report(j);
	dlv_job_free(j);
}

/*
 * dlv_peer_gone - queued's channel died.  It retries every recipient
 * it had not heard about, so the sessions stop now rather than deliver
 * what will be delivered again.
 */
static void
dlv_peer_gone(struct child_peer *p)
{
	struct dlv_job	*j, *next;

	smtpc_flush_idle(p);
	for (j = TAILQ_FIRST(&jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->peer != p)
			continue;
		j->peer = NULL;
		if (j->sess != NULL)
			log_info("%s: %s went away; delivery abandoned", j->id,
			    ipc_name(p->ipc));
		dlv_job_free(j);
	}
}
