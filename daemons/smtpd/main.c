/*
 * smtpd - the submission front end
 *
 * This process owns the listening sockets sluiced bound for it and runs
 * the ESMTP sessions in the sandbox (smtp_session.c).  It loads the
 * certificate sluiced hands it, and a new one on every reload, without
 * touching the sessions that run: each keeps the context it started
 * with.  It talks to authd (credentials, rate limits) and queued (the
 * message itself); it never sees Redis, a password hash or the queue
 * key.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "child.h"
#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "smtpd.h"
#include "stats_proto.h"

#define SMTPD_MAX_LISTENERS	CONF_MAX_LISTEN
#define SMTPD_MAX_PEM		(1024 * 1024)

struct smtpd_listener {
	int		 fd;
	int		 index;
	struct event	*ev;
	struct event	*resume;	/* after running out of descriptors */
};

/* how long a listener rests when accept() finds no descriptor free */
#define SMTPD_EMFILE_PAUSE_MS	250

static struct smtpd_listener	 listeners[SMTPD_MAX_LISTENERS];
SSL_CTX				*smtpd_tls_ctx;

static void	smtpd_setup(struct child_env *);
static void	smtpd_configure(struct child_env *, struct conf *);
static void	smtpd_listener(struct child_env *, int, int);
static void	smtpd_tls_cert(struct child_env *, int, uint32_t);
static void	smtpd_accept(evutil_socket_t, short, void *);
static void	smtpd_resume(evutil_socket_t, short, void *);
static SSL_CTX	*smtpd_tls_load(int, char *, size_t);
static void	smtpd_peer_msg(struct child_env *, struct child_peer *,
		    struct ipc_msg *);
static void	smtpd_report(evutil_socket_t, short, void *);

struct child_env	*smtpd_env;

static const struct child_ops smtpd_ops = {
	.kind = PROC_SMTPD,
	.sandbox = SANDBOX_SMTPD,
	.setup = smtpd_setup,
	.configure = smtpd_configure,
	.listener = smtpd_listener,
	.tls_cert = smtpd_tls_cert,
	.peer_msg = smtpd_peer_msg,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &smtpd_ops);
}

/*
 * smtpd_setup - OpenSSL reads openssl.cnf on first use; do that while
 * files can still be opened, since the sandbox forbids open(2).
 */
static void
smtpd_setup(struct child_env *env)
{
	SSL_CTX	*ctx;

	smtpd_env = env;
	if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1)
		fatalx("%s: OpenSSL initialisation failed", env->name);
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		fatalx("%s: SSL_CTX_new failed", env->name);
	SSL_CTX_free(ctx);
}

/* smtpd_configure - start accepting once running in the sandbox */
static void
smtpd_configure(struct child_env *env, struct conf *old)
{
	struct timeval	 tv = { STATS_INTERVAL, 0 };
	struct event	*ev;
	int		 i;

	if (old != NULL)
		return;		/* listeners do not change on reload */
	ev = event_new(env->base, -1, EV_PERSIST, smtpd_report, NULL);
	if (ev == NULL || event_add(ev, &tv) == -1)
		fatalx("%s: cannot arm the counter report", env->name);
	for (i = 0; i < SMTPD_MAX_LISTENERS; i++) {
		if (listeners[i].ev == NULL)
			continue;
		if (event_add(listeners[i].ev, NULL) == -1)
			fatalx("%s: cannot watch listener %d", env->name, i);
	}
}

static void
smtpd_listener(struct child_env *env, int index, int fd)
{
	struct smtpd_listener	*l;

	if (index < 0 || index >= SMTPD_MAX_LISTENERS ||
	    listeners[index].ev != NULL || env->started)
		fatalx("%s: unexpected listener %d", env->name, index);
	if (proc_set_nonblock(fd) == -1)
		fatal("%s: listener %d", env->name, index);
	l = &listeners[index];
	l->fd = fd;
	l->index = index;
	l->ev = event_new(env->base, fd, EV_READ | EV_PERSIST, smtpd_accept, l);
	l->resume = evtimer_new(env->base, smtpd_resume, l);
	if (l->ev == NULL || l->resume == NULL)
		fatalx("%s: event_new", env->name);
}

/* smtpd_tls_cert - swap in a new certificate; keep the old on error */
static void
smtpd_tls_cert(struct child_env *env, int fd, uint32_t gen)
{
	SSL_CTX	*ctx;
	char	 err[256];

	smtpd_env = env;
	ctx = smtpd_tls_load(fd, err, sizeof(err));
	close(fd);
	if (ctx == NULL) {
		if (smtpd_tls_ctx == NULL)
			fatalx("%s: certificate %u: %s", env->name, gen, err);
		log_warnx("%s: certificate %u refused: %s; keeping the old one",
		    env->name, gen, err);
		return;
	}
	/* sessions hold their own reference: they keep the old one */
	SSL_CTX_free(smtpd_tls_ctx);
	smtpd_tls_ctx = ctx;
	log_debug("%s: certificate generation %u loaded", env->name, gen);
}

/* smtpd_tls_load - a server context from PEM chain + key in a memfd */
static SSL_CTX *
smtpd_tls_load(int fd, char *err, size_t errlen)
{
	struct stat	 st;
	SSL_CTX		*ctx = NULL;
	BIO		*bio = NULL;
	X509		*x = NULL;
	EVP_PKEY	*pkey = NULL;
	void		*map = MAP_FAILED;
	int		 ok = 0;

	if (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size > SMTPD_MAX_PEM) {
		snprintf(err, errlen, "bad certificate image size");
		return NULL;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "mmap: %s", strerror(errno));
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    (bio = BIO_new_mem_buf(map, (int)st.st_size)) == NULL)
		goto done;
	if (SSL_CTX_set_min_proto_version(ctx,
	    smtpd_env->conf->tls.min_version) != 1)
		goto done;
	/* no renegotiation: a client could make us do handshakes for free */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sluice",
	    6);
	/* one resumption ticket is enough for a client that comes back */
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL ||
	    SSL_CTX_use_certificate(ctx, x) != 1)
		goto done;
	X509_free(x);
	/* the rest of the chain, then the key */
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1)
			goto done;
		x = NULL;
	}
	ERR_clear_error();
	if (BIO_reset(bio) != 1)
		goto done;
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto done;
	ok = 1;
 done:
	if (!ok)
		snprintf(err, errlen, "%s",
		    ERR_reason_error_string(ERR_get_error()) ?
		    ERR_reason_error_string(ERR_get_error()) : "invalid PEM");
	X509_free(x);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	munmap(map, (size_t)st.st_size);
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * smtpd_accept - new sessions, within limits.connections and
 * limits.connections_per_ip (counted in this process)
 */
static void
smtpd_accept(evutil_socket_t lfd, short ev, void *arg)
{
	struct smtpd_listener	*l = arg;
	const struct conf	*conf = smtpd_env->conf;
	struct conf_listen	*cl;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 reply[160];
	int			 fd, i;

	if ((size_t)l->index >= conf->nlisten)
		return;
	cl = &conf->listen[l->index];
	for (i = 0; i < 64; i++) {
		sslen = sizeof(ss);
		if ((fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/*
				 * The connection stays in the backlog; the
				 * listener would fire again at once, so it
				 * rests until sessions have ended
				 */
				struct timeval tv = { 0,
				    SMTPD_EMFILE_PAUSE_MS * 1000 };

				log_warn("%s: accept (listening paused for "
				    "%d ms)", smtpd_env->name,
				    SMTPD_EMFILE_PAUSE_MS);
				event_del(l->ev);
				evtimer_add(l->resume, &tv);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ECONNABORTED && errno != EINTR)
				log_warn("%s: accept", smtpd_env->name);
			return;
		}
		if (smtpd_stats.sessions >= (uint64_t)conf->limits.connections ||
		    smtp_session_count_ip(&ss) >=
		    conf->limits.connections_per_ip) {
			/* RFC 5321 3.8; an implicit TLS client would not read it */
			snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too "
			    "many connections; try again later\r\n",
			    conf->hostname);
			if (cl->tls != CONF_TLS_IMPLICIT)
				(void)!write(fd, reply, strlen(reply));
			close(fd);
			smtpd_stats.refused++;
			continue;
		}
		smtp_session_new(fd, cl, l->index, &ss, sslen);
	}
}

/* smtpd_resume - listen again after a pause for descriptors */
static void
smtpd_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_listener	*l = arg;

	event_add(l->ev, NULL);
}

/* smtpd_peer - the greeted channel to authd[0] or queued[0], or NULL */
struct child_peer *
smtpd_peer(int kind)
{
	struct child_peer	*p = child_peer_get(smtpd_env, kind, 0);

	return p != NULL && p->greeted ? p : NULL;
}

/*
 * smtpd_report - the sessions open now and what every counter grew by
 * since the last report queued took (stats_proto.h); what cannot be
 * sent now goes with the next one
 */
static void
smtpd_report(evutil_socket_t fd, short ev, void *arg)
{
	static uint64_t		 sent[STATS_NFIELDS];
	uint64_t		 now[STATS_NFIELDS];
	struct child_peer	*p;
	struct ipc_frame	 f;
	int			 i;

	if ((p = smtpd_peer(PROC_QUEUED)) == NULL)
		return;
	now[STATS_OPEN] = smtpd_stats.sessions;
	now[STATS_SESSIONS] = smtpd_stats.accepted;
	now[STATS_REFUSED] = smtpd_stats.refused;
	now[STATS_TLS] = smtpd_stats.tls;
	now[STATS_TLS_FAILED] = smtpd_stats.tls_failed;
	now[STATS_AUTH_OK] = smtpd_stats.auth_ok;
	now[STATS_AUTH_FAILED] = smtpd_stats.auth_failed;
	now[STATS_AUTH_BLOCKED] = smtpd_stats.auth_blocked;
	ipc_frame_init(&f, IPC_SMTPD_STATS, 0);
	ipc_put_u64(&f, now[STATS_OPEN]);
	for (i = STATS_OPEN + 1; i < STATS_NFIELDS; i++)
		ipc_put_u64(&f, now[i] - sent[i]);
	if (ipc_send(p->ipc, &f, -1) == 0)
		memcpy(sent, now, sizeof(sent));
}

/* smtpd_peer_msg - answers from authd and queued, routed by reqid */
static void
smtpd_peer_msg(struct child_env *env, struct child_peer *p,
    struct ipc_msg *m)
{
	if (m == NULL) {
		smtp_session_peer_lost(p->kind);
		return;
	}
	switch (m->type) {
	case IPC_AUTH_RES:
		smtp_session_auth_result(m->reqid, m);
		break;
	case IPC_RATE_RES:
		smtp_session_rate_result(m->reqid, m);
		break;
	case IPC_Q_OPENED:
	case IPC_Q_OK:
	case IPC_Q_FAIL:
		smtp_session_queue_msg(m->reqid, m);
		break;
	default:
		log_warnx("%s: %s sent %s; nothing to do with it", env->name,
		    ipc_name(p->ipc), ipc_type_str(m->type));
	}
}
